"""DLRM kernels against a float64 numpy reference: forward outputs, and one training
step (forward, backward fused with the SGD / Adagrad update) against the update the
finite-difference gradient of the reference loss gives (the unfused computation)."""
import numpy as np
import pytest
import scipy.sparse as sp

from slidelearn import DLRMClassifier, DLRMRegressor
from slidelearn._dlrm import _testing
from slidelearn._dlrm._testing import CODES, column_runs, csr_to_bags


def _reference_loss(theta, E, state, dense, bags, Y, alpha=0.0, emb_alpha=None):
    """Mean loss of the batch in float64 (plus the L2 terms of the kernels: ``alpha``
    on the MLP, ``emb_alpha`` (default ``alpha``) on each looked-up row)."""
    emb_alpha = alpha if emb_alpha is None else emb_alpha
    lay = state.layout
    layers, nb, d = lay.layers, lay.n_bottom, lay.d
    n = Y.shape[0]
    T = lay.n_tables
    vecs = []
    if nb:
        h = dense.astype(np.float64)
        for l in range(nb):
            n_in, n_out, w, b, relu = layers[l]
            h = h @ theta[w:b].reshape(n_out, n_in).T + theta[b:b + n_out]
            h = np.maximum(h, 0) if relu else h
        vecs.append(h)
    reg = 0.0
    for t in range(T):
        pooled = np.zeros((n, d))
        for i in range(n):
            for j in range(bags.ptr[t, i], bags.ptr[t, i + 1]):
                wt = bags.wts[j] if bags.wts.size else 1.0
                pooled[i] += wt * E[bags.ids[j]]
                reg += 0.5 * emb_alpha * np.dot(E[bags.ids[j]], E[bags.ids[j]])
        vecs.append(pooled)
    Z = np.stack(vecs, axis=1)
    code = lay.interaction
    if code == CODES["cat"]:
        R = Z.reshape(n, -1)
    else:
        self_int = code == CODES["dot_self"]
        F = Z.shape[1]
        pairs = [np.einsum("nd,nd->n", Z[:, a], Z[:, c])
                 for a in range(F) for c in range(a + 1 if self_int else a)]
        R = np.column_stack(([Z[:, 0]] if nb else []) + [p[:, None] for p in pairs])
    h = R
    for l in range(nb, len(layers)):
        n_in, n_out, w, b, relu = layers[l]
        h = h @ theta[w:b].reshape(n_out, n_in).T + theta[b:b + n_out]
        h = np.maximum(h, 0) if relu else h
    if getattr(lay, "fm", False):  # the factorization term: the table vectors' pairs
        t0 = int(nb > 0)
        h = h.copy()
        h[:, 0] += sum(np.einsum("nd,nd->n", Z[:, a], Z[:, c])
                       for a in range(t0, Z.shape[1]) for c in range(t0, a))
    loss = state.loss
    if loss == CODES["squared_error"]:
        per = 0.5 * ((h - Y) ** 2).sum(1)
    elif loss == CODES["log_loss"]:
        per = np.logaddexp(0, h[:, 0]) - Y[:, 0] * h[:, 0]
    else:
        m = h.max(1, keepdims=True)
        per = np.log(np.exp(h - m).sum(1)) + m[:, 0] - (Y * h).sum(1)
    for n_in, n_out, w, b, _ in layers:
        reg += 0.5 * alpha * n * np.dot(theta[w:b], theta[w:b])
    return per.mean() + reg / n, h


def _fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


def _tiny(kind, interaction="dot", self_interaction=False, solver="sgd", alpha=0.0,
          n=7, index64=False, classes=2, seed=0, factorization_term=False,
          embedding_alpha=None, embedding_learning_rate=None):
    """An estimator with its initial model for random inputs, and the inputs."""
    rng = np.random.default_rng(seed)
    est_cls = DLRMClassifier if kind == "clf" else DLRMRegressor
    est = est_cls(embedding_dim=3, bottom_mlp=(4,), top_mlp=(5,), interaction=interaction,
                  self_interaction=self_interaction, solver=solver, alpha=alpha,
                  factorization_term=factorization_term, embedding_alpha=embedding_alpha,
                  embedding_learning_rate=embedding_learning_rate, random_state=seed,
                  batch_size=n)
    if kind == "sparse":
        # two multi-hot weighted fields (with a repeated column), two dense columns
        dense_part = rng.normal(size=(n, 2))
        f1 = sp.random(n, 4, density=0.6, random_state=seed, data_rvs=lambda k: rng.uniform(0.5, 2, k))
        f2 = sp.random(n, 3, density=0.7, random_state=seed + 1)
        X = sp.hstack([f1, sp.csr_matrix(dense_part), f2]).tocsr()
        groups = [np.arange(4), np.arange(6, 9)]
        est.set_params(feature_groups=groups)
        y = rng.normal(size=n)
    elif kind.startswith("nodense"):
        X = np.column_stack([rng.integers(0, 5, n), rng.integers(0, 4, n),
                             rng.integers(0, 3, n)]).astype(float)
        est.set_params(categorical_features=[0, 1, 2])
        # "nodense1": one target, so that the factorization term (over every slot) fits
        y = rng.normal(size=(n, 2)) if kind == "nodense" else rng.normal(size=n)
    else:
        X = np.column_stack([rng.normal(size=(n, 3)), rng.integers(0, 5, n),
                             rng.integers(0, 9, n)])
        est.set_params(categorical_features=[3, 4], table_sizes=[5, 6])  # 6: ids hashed
        y = rng.integers(0, classes, n) if kind == "clf" else rng.normal(size=n)
    dense, bags, Y = _testing.prepare(est, X, y, seed=seed, index64=index64)
    return est, dense, bags, Y


CASES = [
    dict(kind="reg"),
    dict(kind="reg", factorization_term=True),
    dict(kind="reg", interaction="cat", factorization_term=True),
    dict(kind="reg", interaction="cat"),
    dict(kind="reg", self_interaction=True),
    dict(kind="reg", index64=True),
    dict(kind="clf"),
    dict(kind="clf", factorization_term=True),
    dict(kind="clf", classes=3),
    dict(kind="sparse"),
    dict(kind="sparse", factorization_term=True),
    dict(kind="nodense"),
    dict(kind="nodense", interaction="cat"),
    dict(kind="nodense1", interaction="cat", factorization_term=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_forward_matches_reference(case):
    est, dense, bags, Y = _tiny(**case)
    out = _testing.raw_output(est, dense, bags, 1)
    theta, E = _testing.weights(est)
    _, ref = _reference_loss(theta.astype(np.float64), E.astype(np.float64),
                             _testing.state(est), dense, bags, Y)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("solver,alpha", [("sgd", 0.0), ("sgd", 0.1), ("adagrad", 0.0),
                                          ("adagrad", 0.05)])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_fused_step_equals_unfused_reference(case, solver, alpha, n_threads):
    """One fused training step equals the update computed from the reference
    gradient (finite differences of the float64 loss) applied afterwards."""
    _check_fused_step(case, solver, alpha, n_threads)


@pytest.mark.parametrize("solver,alpha,emb_alpha,emb_scale", [
    ("sgd", 0.0, 0.2, 3.0), ("sgd", 0.1, 0.0, 0.5), ("adagrad", 0.0, 0.05, 5.0),
    ("adagrad", 0.05, 0.3, 1.0)])
@pytest.mark.parametrize("case", [dict(kind="reg", factorization_term=True),
                                  dict(kind="sparse")], ids=["reg-fm", "sparse"])
def test_tables_take_their_own_l2_and_learning_rate(case, solver, alpha, emb_alpha,
                                                    emb_scale):
    """``embedding_alpha`` and ``embedding_learning_rate`` reach the tables' update
    only: the step equals the reference with the two L2 terms apart and the tables'
    step scaled."""
    _check_fused_step(case, solver, alpha, 2, emb_alpha, emb_scale)


@pytest.mark.parametrize("solver,emb_alpha", [("sgd", 0.0), ("adagrad", 0.1)])
@pytest.mark.parametrize("case", [dict(kind="reg", factorization_term=True),
                                  dict(kind="sparse")], ids=["reg-fm", "sparse"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_each_table_takes_its_own_learning_rate(case, solver, emb_alpha, n_threads):
    """Per-table learning-rate scales (``embedding_learning_rate="auto"``) scale each
    table's rows' step, and only theirs."""
    _check_fused_step(case, solver, 0.0, n_threads, emb_alpha, table_scales=(0.5, 4.0))


def _check_fused_step(case, solver, alpha, n_threads, emb_alpha=None, emb_scale=1.0,
                      table_scales=None):
    lr = 0.5
    emb_lr = None if emb_alpha is None else lr * emb_scale
    est, dense, bags, Y = _tiny(solver=solver, alpha=alpha, embedding_alpha=emb_alpha,
                                embedding_learning_rate=emb_lr, **case)
    # the estimator's learning_rate_init is what the tables' rate is relative to
    est.set_params(learning_rate_init=lr)
    theta0, E0 = (a.astype(np.float64) for a in _testing.weights(est))
    state = _testing.state(est)
    th, Ev = theta0.copy(), E0.copy()

    def f():
        return _reference_loss(th, Ev, state, dense, bags, Y, alpha, emb_alpha)[0]

    g_theta = _fd_grad(f, th)
    g_E = _fd_grad(f, Ev)
    n = dense.shape[0]
    losses = _testing.train(est, dense, bags, Y, [lr], n, n_threads, lr_scales=table_scales)
    if table_scales is not None:  # each row's step is its table's
        emb_scale = np.repeat(table_scales, np.diff(state.tables.offsets))[:, None]
    # the reported loss is the data term (without the L2 penalty)
    np.testing.assert_allclose(losses[0], _reference_loss(th, Ev, state, dense, bags, Y)[0],
                               rtol=1e-5)
    if solver == "sgd":
        exp_theta = theta0 - lr * g_theta
        exp_E = E0 - lr * emb_scale * g_E
    else:
        eps = est.epsilon
        exp_theta = theta0 - lr * g_theta / (np.abs(g_theta) + eps)
        row_acc = (g_E ** 2).mean(axis=1, keepdims=True)
        exp_E = E0 - lr * emb_scale * g_E / (np.sqrt(row_acc) + eps)
        np.testing.assert_allclose(state.tables.E_acc, row_acc[:, 0], rtol=1e-3, atol=1e-9)
    # where adagrad divides ~0 by ~0 the direction is noise: compare only clear gradients
    keep_t = np.abs(g_theta) > 1e-6 if solver == "adagrad" else slice(None)
    theta, E = _testing.weights(est)
    np.testing.assert_allclose(theta[keep_t], exp_theta[keep_t], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(E, exp_E, rtol=1e-4, atol=1e-5)
    # only rows that appear in a bag changed
    untouched = np.setdiff1d(np.arange(E0.shape[0]), bags.ids)
    np.testing.assert_array_equal(E[untouched], E0[untouched].astype(np.float32))
    assert (_testing.slots(est) == -1).all()


def test_thread_count_does_not_change_training():
    """Row ownership makes the embedding update independent of the thread count."""
    results = []
    for n_threads in (1, 2):
        est, dense, bags, Y = _tiny(kind="sparse", solver="adagrad", n=64, seed=3)
        for _ in range(3):
            _testing.train(est, dense, bags, Y, np.full(4, 0.1), 16, n_threads)
        results.append(_testing.weights(est)[1])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("ids_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("layout", ["blocks", "interleaved", "unsorted"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_csr_to_bags_matches_column_slicing(index_dtype, ids_dtype, layout, n_threads):
    """The parallel CSR split equals slicing each field's columns with scipy, for
    contiguous one-hot blocks (few runs), interleaved fields (a run per column) and
    rows whose column indices are not sorted."""
    X = sp.random(50, 30, density=0.3, format="csr", random_state=0, dtype=np.float32)
    if layout == "interleaved":
        groups = [np.arange(0, 30, 3), np.array([1, 4, 28, 7]), np.arange(2, 30, 6)]
    else:
        groups = [np.arange(0, 7), np.arange(10, 12), np.arange(20, 30)]
    if layout == "unsorted":  # reverse the column order inside every row
        X.indices = np.concatenate([X.indices[a:b][::-1]
                                    for a, b in zip(X.indptr[:-1], X.indptr[1:])])
        X.data = np.concatenate([X.data[a:b][::-1]
                                 for a, b in zip(X.indptr[:-1], X.indptr[1:])])
        X.has_sorted_indices = False  # scipy caches the flag
        assert np.any(np.diff(X.indices[X.indptr[0]:X.indptr[1]].astype(np.int64)) < 0)
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    sizes = [len(g) for g in groups]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    dense_cols = np.setdiff1d(np.arange(30), np.concatenate(groups))
    runs = column_runs(30, groups, offsets)
    if layout != "interleaved":  # fields 0-6, 10-11, 20-29; dense 7-9 and 12-19
        np.testing.assert_array_equal(runs[0], [0, 7, 10, 12, 20, 30])
        np.testing.assert_array_equal(runs[1], [0, -1, 1, -1, 2])
        np.testing.assert_array_equal(runs[2], [0, 0, 7, 3, 9])
    dense = np.zeros((50, len(dense_cols)), np.float32)
    ptr, ids, wts = csr_to_bags(X.indptr.astype(np.int64), X.indices, X.data, *runs, 3,
                                dense, ids_dtype, n_threads)
    assert ids.dtype == ids_dtype
    np.testing.assert_array_equal(dense, X[:, dense_cols].toarray())
    for t, g in enumerate(groups):
        sub = X[:, g].toarray()
        np.testing.assert_array_equal(np.diff(ptr[t]), (sub != 0).sum(axis=1))
        for i in range(X.shape[0]):
            got = np.zeros(len(g), np.float32)
            got[ids[ptr[t, i]:ptr[t, i + 1]] - offsets[t]] = wts[ptr[t, i]:ptr[t, i + 1]]
            np.testing.assert_array_equal(got, sub[i])


def test_csr_to_bags_sums_duplicate_dense_entries():
    """A non-canonical CSR with a repeated dense column adds the entries, as scipy does."""
    X = sp.csr_matrix((np.array([1.0, 2.0, 5.0], np.float32), np.array([0, 0, 1]),
                       np.array([0, 3])), shape=(1, 3))
    runs = column_runs(3, [np.array([1, 2])], np.array([0, 2]))
    dense = np.zeros((1, 1), np.float32)
    ptr, ids, wts = csr_to_bags(X.indptr.astype(np.int64), X.indices, X.data, *runs, 1,
                                dense, np.int32, 1)
    assert dense[0, 0] == 3.0
    np.testing.assert_array_equal(ids, [0])
    np.testing.assert_array_equal(wts, [5.0])
