"""Tests of the SLIDE network kernels (slidelearn._slide._network) against numpy."""
import copy
import numpy as np
import pytest
import scipy.sparse as sp

from slidelearn import SlideClassifier
from slidelearn._slide import _hashing, _network, _testing
from slidelearn.utils import _bf16
from slidelearn.utils._threads import single_threaded_blas


# --------------------------------------------------------------------------- helpers
def _make_clf(n_features, n_labels, hidden=(8, 6), seed=0, **params):
    """A SlideClassifier with an initialised model (random biases too)."""
    params.setdefault("bin_size", 4)
    params.setdefault("n_tables", 4)
    params.setdefault("n_codes", 2)
    clf = SlideClassifier(hidden_layer_sizes=hidden, n_jobs=1, random_state=seed, **params)
    rng = np.random.default_rng(seed)
    st = _testing.init_model(clf, n_features, n_labels, rng, float(n_features))
    for off, size in zip(st.b_off, st.sizes):
        st.dense[off: off + size] = rng.uniform(-0.3, 0.3, size).astype(np.float32)
    st.b_out[:] = rng.uniform(-0.5, 0.5, n_labels).astype(np.float32)
    return clf


def _params64(clf):
    """(W_in, [b0, b1, ...], [W1, W2, ...], W_out, b_out) of clf as float64 copies."""
    coefs, intercepts = _testing.state(clf).coefs(), _testing.state(clf).intercepts()
    return (coefs[0].astype(np.float64), [b.astype(np.float64) for b in intercepts[:-1]],
            [W.astype(np.float64) for W in coefs[1:-1]], coefs[-1].astype(np.float64),
            intercepts[-1].astype(np.float64))


def _forward64(params, X):
    W_in, bs, Ws, W_out, b_out = params
    hs = [np.maximum(X @ W_in + bs[0], 0)]
    for W, b in zip(Ws, bs[1:]):
        hs.append(np.maximum(hs[-1] @ W + b, 0))
    return hs, hs[-1] @ W_out.T + b_out


def _target(Y_lists, n_labels, pick_all=False):
    """Target rows: 1 / |y| on each label (loss="softmax"), or 1 (pick_all,
    loss="pick_all": a softmax term per label)."""
    T = np.zeros((len(Y_lists), n_labels))
    for i, labels in enumerate(Y_lists):
        T[i, labels] = 1.0 if pick_all else 1.0 / len(labels)
    return T


def _loss64(params, X, T, bce=False):
    """Per-sample loss sum_t -T_t log softmax(z)_t, or with ``bce`` the one-vs-all
    logistic loss sum_t softplus(z_t) - T_t z_t (T of 0 / 1)."""
    _, z = _forward64(params, X)
    if bce:
        return (np.logaddexp(0, z) - T * z).sum(axis=1)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -(T * logp).sum(axis=1)


def _grads64(params, X, T, bce=False):
    """Analytic gradients of the batch-mean loss (of ``_loss64``)."""
    W_in, bs, Ws, W_out, b_out = params
    hs, z = _forward64(params, X)
    if bce:
        dz = (1 / (1 + np.exp(-z)) - T) / X.shape[0]
    else:
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        dz = (p * T.sum(axis=1, keepdims=True) - T) / X.shape[0]
    g = {"W_out": dz.T @ hs[-1], "b_out": dz.sum(axis=0), "Ws": [None] * len(Ws),
         "bs": [None] * len(bs)}
    dh = (dz @ W_out) * (hs[-1] > 0)
    for i in range(len(Ws), 0, -1):
        g["Ws"][i - 1] = hs[i - 1].T @ dh
        g["bs"][i] = dh.sum(axis=0)
        dh = (dh @ Ws[i - 1].T) * (hs[i - 1] > 0)
    g["bs"][0] = dh.sum(axis=0)
    g["W_in"] = X.T @ dh
    return g


def _random_batch(rng, n, n_features, n_labels, density=0.4, max_labels=3, index_dtype=np.int32):
    X = sp.random(n, n_features, density=density, format="csr", dtype=np.float64,
                  random_state=np.random.RandomState(int(rng.integers(1 << 30))))
    X.data = rng.uniform(0.2, 1.5, X.nnz)
    X = X.astype(np.float32)
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    Y = [sorted(rng.choice(n_labels, int(rng.integers(1, max_labels + 1)), replace=False).tolist())
         for _ in range(n)]
    Y_indptr = np.concatenate([[0], np.cumsum([len(y) for y in Y])]).astype(np.int64)
    Y_indices = np.concatenate(Y).astype(np.int32)
    return X, Y, Y_indptr, Y_indices


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("hidden", [(8,), (8, 6), (7, 6, 5)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_forward_hidden_matches_numpy(index_dtype, hidden, n_threads):
    rng = np.random.default_rng(1)
    clf = _make_clf(20, 9, hidden=hidden)
    X, _, _, _ = _random_batch(rng, 13, 20, 9, index_dtype=index_dtype)
    X.data[X.indptr[3]: X.indptr[4]] = 0  # an empty row: relu(b0) propagated
    X.eliminate_zeros()
    assert X.indptr[3] == X.indptr[4]
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    assert X.indices.dtype == index_dtype
    H = _network.forward_hidden(X.data, X.indices, X.indptr, _testing.state(clf), n_threads)
    hs, _ = _forward64(_params64(clf), X.toarray().astype(np.float64))
    assert H.shape == (13, hidden[-1]) and H.dtype == np.float32
    np.testing.assert_allclose(H, hs[-1], rtol=1e-5, atol=1e-5)
    assert np.all(H >= 0) and (H == 0).any() and (H > 0).any()


def test_forward_hidden_empty_matrix():
    clf = _make_clf(5, 3)
    X = sp.csr_matrix((0, 5), dtype=np.float32)
    H = _network.forward_hidden(X.data, X.indices, X.indptr, _testing.state(clf), 1)
    assert H.shape == (0, 6)


# --------------------------------------------------------------------------- top-k
def _check_topk(idx, sc, ref_scores, k):
    n = ref_scores.shape[0]
    assert idx.shape == (n, k) and sc.shape == (n, k)
    assert idx.dtype == np.int32 and sc.dtype == np.float32
    order = np.argsort(-ref_scores, axis=1, kind="stable")[:, :k]
    ref_top = np.take_along_axis(ref_scores, order, axis=1)
    # Scores are the true scores of the returned ids, sorted best first ...
    np.testing.assert_allclose(sc, np.take_along_axis(ref_scores, idx.astype(np.int64), axis=1),
                               rtol=1e-5, atol=1e-5)
    assert np.all(np.diff(sc, axis=1) <= 0)
    # ... and are the k best (ids equal up to float32 near-ties).
    np.testing.assert_allclose(sc, ref_top, rtol=1e-5, atol=1e-5)
    same = idx == order
    near_tie = np.abs(np.take_along_axis(ref_scores, idx.astype(np.int64), axis=1) - ref_top) < 1e-5
    assert np.all(same | near_tie)
    assert same.mean() > 0.99
    for row in idx:
        assert len(set(row.tolist())) == k


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("blocks", [(64, 4096), (3, 7), (1, 1), (5, 23)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_topk_exact_matches_numpy(k, blocks, n_threads):
    rng = np.random.default_rng(2)
    n, d, n_labels = 11, 6, 23  # n and n_labels are not multiples of the blocks
    clf = _make_clf(4, n_labels)
    Hm = rng.standard_normal((n, d)).astype(np.float32)
    m = _testing.state(clf)
    idx, sc = _network.topk_exact(Hm, m, k, n_threads, row_block=blocks[0],
                                  label_block=blocks[1])
    ref = Hm.astype(np.float64) @ m.W_out.T.astype(np.float64) + m.b_out
    _check_topk(idx, sc, ref, k)


def test_topk_exact_k_larger_than_labels_and_mismatch():
    rng = np.random.default_rng(3)
    clf = _make_clf(4, 5)
    Hm = rng.standard_normal((4, 6)).astype(np.float32)
    idx, sc = _network.topk_exact(Hm, _testing.state(clf), 50, 1)
    assert idx.shape == (4, 5)
    np.testing.assert_array_equal(np.sort(idx, axis=1), np.tile(np.arange(5), (4, 1)))
    with pytest.raises(ValueError, match="hidden width"):
        _network.topk_exact(np.zeros((2, 5), dtype=np.float32), _testing.state(clf), 1, 1)


def test_topk_exact_ties_keep_smallest_index():
    clf = _make_clf(4, 10)
    st = _testing.state(clf)
    st.W_out[:] = 0
    st.b_out[:] = 1.0
    Hm = np.ones((3, 6), dtype=np.float32)
    idx, _ = _network.topk_exact(Hm, st, 4, 1, row_block=2, label_block=3)
    np.testing.assert_array_equal(idx, np.tile(np.arange(4), (3, 1)))


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_topk_lsh_with_full_tables_equals_exact(k, n_threads):
    # DOPH with K=1 over vectors whose every coordinate is positive: the code is the dim
    # of minimum rank, the same for every vector, so each table is a single bucket that
    # holds every neuron (bucket_size is huge) and LSH inference must equal exact.
    rng = np.random.default_rng(4)
    n, n_labels = 9, 30
    clf = _make_clf(4, n_labels, hash_family="doph", n_codes=1, n_tables=3,
                    bucket_size=10**6)
    st, lsh = _testing.state(clf), _testing.lsh(clf)
    st.W_out[:] = np.abs(st.W_out) + 0.01
    # Tables of the raw (uncentred) rows, so that every row is all-positive.
    params = lsh.params
    lsh.offsets, lsh.ids = _hashing.build_tables(
        _hashing.hash_vectors(params, st.W_out, 1), params["n_buckets"], 10**6, False, 0, 1)
    Hm = (np.abs(rng.standard_normal((n, 6))) + 0.01).astype(np.float32)
    fallback = np.arange(n_labels, dtype=np.int32)
    idx, sc, n_cand = _network.topk_lsh(Hm, st, lsh, k, 1, fallback, n_threads)
    assert n_cand == n * n_labels  # the premise: every neuron was retrieved (once)
    e_idx, e_sc = _network.topk_exact(Hm, st, k, 1)
    np.testing.assert_array_equal(idx, e_idx)
    np.testing.assert_allclose(sc, e_sc, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["dwta", "wta", "simhash", "doph"])
def test_topk_lsh_returns_valid_sorted_ids(family):
    rng = np.random.default_rng(5)
    n, n_labels, k = 20, 200, 7
    clf = _make_clf(4, n_labels, hash_family=family, n_codes=3, n_tables=3, bucket_size=2)
    _testing.rehash(clf)
    Hm = np.abs(rng.standard_normal((n, 6))).astype(np.float32)
    m = _testing.state(clf)
    ref = Hm.astype(np.float64) @ m.W_out.T.astype(np.float64) + m.b_out
    fallback = np.argsort(rng.random(n_labels)).astype(np.int32)
    idx, sc, n_cand = _network.topk_lsh(Hm, m, _testing.lsh(clf), k, 1, fallback, 2)
    assert idx.shape == (n, k) and sc.shape == (n, k)
    assert 0 < n_cand <= n * 3 * 2  # at most L * bucket_size candidates per row
    assert np.all((idx >= 0) & (idx < n_labels))
    for i in range(n):
        assert len(set(idx[i].tolist())) == k  # completed from the fallback, no duplicate
    assert np.all(np.diff(sc, axis=1) <= 0)
    np.testing.assert_allclose(sc, np.take_along_axis(ref, idx.astype(np.int64), axis=1),
                               rtol=1e-5, atol=1e-5)
    # Threshold above L: no candidate, so the fallback order decides (first k, by score).
    idx2, sc2, n_cand2 = _network.topk_lsh(Hm, m, _testing.lsh(clf), k, 4, fallback, 1)
    assert n_cand2 == 0
    for i in range(n):
        assert set(idx2[i].tolist()) == set(fallback[:k].tolist())
    assert np.all(np.diff(sc2, axis=1) <= 0)


@pytest.mark.parametrize("threshold", [1, 2])
@pytest.mark.parametrize("max_cand", [1, 3, 8, 1000])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_topk_lsh_max_candidates_keeps_the_most_voted(threshold, max_cand, n_threads):
    """With a candidate cap, the scored neurons are those found in the most tables
    (ties in retrieval order: table by table, bucket order), as a Python reference
    over the same buckets computes them."""
    rng = np.random.default_rng(11)
    n, n_labels, L = 25, 120, 6
    clf = _make_clf(4, n_labels, hash_family="dwta", n_codes=2, n_tables=L, bucket_size=6)
    _testing.rehash(clf)
    Hm = np.abs(rng.standard_normal((n, 6))).astype(np.float32)
    m, lsh = _testing.state(clf), _testing.lsh(clf)
    fallback = np.argsort(rng.random(n_labels)).astype(np.int32)
    k = min(max_cand, 8)
    idx, sc, n_cand = _network.topk_lsh(Hm, m, lsh, k, threshold, fallback, n_threads,
                                        max_cand)
    total = 0
    for i in range(n):
        _, buckets = _testing.hash_codes(lsh.params, Hm[i])
        votes, first = {}, {}
        for t in range(L):
            b = buckets[t]
            for p in range(lsh.offsets[t, b], lsh.offsets[t, b + 1]):
                j = int(lsh.ids[t, p])
                first.setdefault(j, len(first))
                votes[j] = votes.get(j, 0) + 1
        eligible = sorted((j for j in votes if votes[j] >= threshold),
                          key=lambda j: (-votes[j], first[j]))
        chosen = eligible[:max_cand]
        total += len(chosen)
        if len(chosen) >= k:  # the top k of the chosen ones, by exact score
            scores = Hm[i].astype(np.float64) @ m.W_out[chosen].T.astype(np.float64) \
                + m.b_out[chosen]
            best = set(np.array(chosen)[np.argsort(-scores, kind="stable")[:k]].tolist())
            assert set(idx[i].tolist()) == best
        else:  # all chosen ones, completed from the fallback
            assert set(chosen) <= set(idx[i].tolist())
    assert n_cand == total
    assert 0 < total


@pytest.mark.parametrize("threshold, max_cand", [(1, 0), (135, 0), (1, 10), (120, 25)])
def test_lsh_votes_are_exact_with_the_most_tables(threshold, max_cand):
    """The vote counts are one byte per neuron: with the largest number of tables
    (254) and buckets that each hold half the labels, neurons get well over 127 votes,
    and both the threshold and the most-voted cap still select what a Python count
    over the same buckets selects."""
    L = _network.MAX_TABLES
    rng = np.random.default_rng(2)
    n, n_labels = 6, 40
    clf = _make_clf(4, n_labels, hash_family="wta", n_codes=1, bin_size=2, n_tables=L,
                    bucket_size=n_labels)
    _testing.rehash(clf)
    Hm = rng.standard_normal((n, 6)).astype(np.float32)
    m, lsh = _testing.state(clf), _testing.lsh(clf)
    fallback = np.arange(n_labels, dtype=np.int32)
    k = 3
    idx, _, n_cand = _network.topk_lsh(Hm, m, lsh, k, threshold, fallback, 2, max_cand)
    total, top = 0, 0
    for i in range(n):
        _, buckets = _testing.hash_codes(lsh.params, Hm[i])
        votes, first = {}, {}
        for t in range(L):
            for p in range(lsh.offsets[t, buckets[t]], lsh.offsets[t, buckets[t] + 1]):
                j = int(lsh.ids[t, p])
                first.setdefault(j, len(first))
                votes[j] = votes.get(j, 0) + 1
        top = max(top, max(votes.values()))
        eligible = sorted((j for j in votes if votes[j] >= threshold),
                          key=lambda j: (-votes[j], first[j]))
        chosen = eligible[:max_cand] if max_cand else eligible
        total += len(chosen)
        if len(chosen) >= k:
            scores = Hm[i].astype(np.float64) @ m.W_out[chosen].T.astype(np.float64) \
                + m.b_out[chosen]
            best = set(np.array(chosen)[np.argsort(-scores, kind="stable")[:k]].tolist())
            assert set(idx[i].tolist()) == best
    assert n_cand == total > 0
    assert top > 127  # counts beyond a signed byte were exercised


def test_more_tables_than_the_vote_counters_hold_are_rejected():
    with pytest.raises(ValueError, match="n_tables"):
        SlideClassifier(n_tables=_network.MAX_TABLES + 1).fit(np.eye(3), [0, 1, 2])
    with pytest.raises(ValueError, match="inference_n_tables"):
        SlideClassifier(inference_n_tables=_network.MAX_TABLES + 1).fit(np.eye(3), [0, 1, 2])
    clf = _make_clf(4, 10)
    _testing.rehash(clf)
    lsh = copy.copy(_testing.lsh(clf))
    lsh.offsets = np.zeros((_network.MAX_TABLES + 1, lsh.offsets.shape[1]), np.int32)
    lsh.ids = np.zeros((_network.MAX_TABLES + 1, lsh.ids.shape[1]), np.int32)
    with pytest.raises(ValueError, match="at most 254 hash tables"):
        _network.topk_lsh(np.ones((1, 6), np.float32), _testing.state(clf), lsh, 1, 1,
                          np.arange(10, dtype=np.int32), 1)


# --------------------------------------------------------------------------- training
def _train_once(clf, X, Y_indptr, Y_indices, rows, min_active, n_threads=1, lsh=None,
                pick_all=False):
    """One train_batch on a fresh Workspace; returns (buffers of the Workspace, the
    Workspace, loss, n_active)."""
    work = _testing.workspace(clf, n_threads, int(np.diff(Y_indptr).max()), transposed=False)
    b = _testing.buffers(work)
    for key in ("g_in", "g_out", "gb_out", "g_dense"):
        assert not getattr(b, key).any()  # fresh buffers start at zero
    loss, n_active = _testing.train_batch(clf, X, Y_indptr, Y_indices, rows, work,
                                          min_active=min_active, n_threads=n_threads,
                                          tables=lsh, pick_all=pick_all)
    return b, work, loss, n_active


def test_reference_gradients_match_finite_differences():
    # Validate the numpy reference itself (float64 central differences).
    rng = np.random.default_rng(6)
    clf = _make_clf(10, 7, hidden=(8, 6))
    X, Y, _, _ = _random_batch(rng, 6, 10, 7)
    Xd, T = X.toarray().astype(np.float64), _target(Y, 7)
    params = _params64(clf)
    g = _grads64(params, Xd, T)

    def L(p):
        return _loss64(p, Xd, T).mean()

    eps = 1e-6
    checks = [(params[0], g["W_in"]), (params[1][0], g["bs"][0]), (params[1][1], g["bs"][1]),
              (params[2][0], g["Ws"][0]), (params[3], g["W_out"]), (params[4], g["b_out"])]
    for arr, grad in checks:
        for _ in range(4):
            j = tuple(rng.integers(0, s) for s in arr.shape)
            old = arr[j]
            arr[j] = old + eps
            up = L(params)
            arr[j] = old - eps
            down = L(params)
            arr[j] = old
            np.testing.assert_allclose((up - down) / (2 * eps), grad[j], rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("pick_all", [False, True])
@pytest.mark.parametrize("hidden", [(8,), (8, 6)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_train_batch_gradients_full_softmax(hidden, index_dtype, pick_all):
    rng = np.random.default_rng(7)
    n_features, n_labels = 30, 7
    clf = _make_clf(n_features, n_labels, hidden=hidden)
    X, Y, Y_indptr, Y_indices = _random_batch(rng, 8, n_features, n_labels, density=0.15,
                                              index_dtype=index_dtype)
    rows = np.array([5, 0, 3, 7, 1], dtype=np.int64)  # a batch that is a subset, shuffled
    b, _, loss, n_active = _train_once(clf, X, Y_indptr, Y_indices, rows, min_active=n_labels,
                                       pick_all=pick_all)

    Xd = X.toarray().astype(np.float64)[rows]
    T = _target([Y[r] for r in rows], n_labels, pick_all)
    params = _params64(clf)
    ref = _grads64(params, Xd, T)

    # Loss: the sum over the batch of the per-sample losses; every neuron was active.
    np.testing.assert_allclose(loss, _loss64(params, Xd, T).sum(), rtol=1e-5)
    assert n_active == len(rows) * n_labels

    def close(actual, desired):
        scale = np.abs(desired).max()
        assert scale > 1e-4  # not a vacuous comparison
        np.testing.assert_allclose(actual, desired, rtol=2e-4, atol=2e-5 * scale)

    close(b.g_out, ref["W_out"])
    close(b.gb_out, ref["b_out"])
    present = np.unique(X[rows].indices)
    absent = np.setdiff1d(np.arange(n_features), present)
    assert absent.size  # some features are absent from the batch
    close(b.g_in[present], ref["W_in"][present])
    assert not b.g_in[absent].any()
    m = _testing.state(clf)
    g_dense = b.g_dense[0]
    close(g_dense[m.b_off[0]: m.b_off[0] + hidden[0]], ref["bs"][0])
    for i in range(1, len(hidden)):
        W = g_dense[m.w_off[i]: m.w_off[i] + hidden[i - 1] * hidden[i]]
        close(W.reshape(hidden[i - 1], hidden[i]), ref["Ws"][i - 1])
        close(g_dense[m.b_off[i]: m.b_off[i] + hidden[i]], ref["bs"][i])

    # The touched rows are listed for the sparse Adam update.
    out_touched = b.out_list[0, : b.out_count[0]]
    in_touched = b.in_list[0, : b.in_count[0]]
    np.testing.assert_array_equal(np.sort(out_touched), np.arange(n_labels))
    np.testing.assert_array_equal(np.sort(in_touched), present)
    assert not b.mark.any()  # scratch marks are cleared between samples


def _dense_once(clf, X, Y, rows, n_threads=1, loss="softmax", row_block=32, label_block=256,
                col_block=128):
    """forward_acts + dense_output + hidden_backward on a fresh Workspace that is not
    transposed, as SlideClassifier's dense path runs them (no dropout); returns (buffers
    of the Workspace, loss, dH)."""
    st = _testing.state(clf)
    n_labels, H = st.W_out.shape
    work = _testing.workspace(clf, n_threads, max(len(y) for y in Y), transposed=False)
    acts = np.empty((len(rows), int(np.sum(st.sizes))), dtype=np.float32)
    _network.forward_acts(X.data, X.indices, X.indptr, rows, st, acts, n_threads)
    h = np.ascontiguousarray(acts[:, int(st.a_off[-1]):])
    y_ptr = np.concatenate([[0], np.cumsum([len(Y[r]) for r in rows])]).astype(np.int64)
    y_idx = np.concatenate([Y[r] for r in rows]).astype(np.int32)
    dZ = np.empty((len(rows), n_labels), dtype=np.float32)
    dH = np.empty((len(rows), H), dtype=np.float32)
    with single_threaded_blas():
        loss = _network.dense_output(h, y_ptr, y_idx, st, work, dZ, dH, 1.0 / len(rows),
                                     loss, n_threads, row_block, label_block,
                                     col_block)
    _network.hidden_backward(X.data, X.indices, X.indptr, rows, acts, dH, st, work, n_threads)
    return _testing.buffers(work), loss, dH


@pytest.mark.parametrize("loss", ["softmax", "pick_all", "bce"])
@pytest.mark.parametrize("hidden", [(8,), (8, 6)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_dense_output_gradients_match_reference(hidden, index_dtype, loss, n_threads):
    # Small blocks, so that rows, labels and hidden units span several blocks and the
    # last is partial.
    rng = np.random.default_rng(8)
    n_features, n_labels = 30, 11
    clf = _make_clf(n_features, n_labels, hidden=hidden)
    X, Y, _, _ = _random_batch(rng, 9, n_features, n_labels, density=0.15,
                               index_dtype=index_dtype)
    rows = np.array([5, 0, 3, 7, 1, 8, 2], dtype=np.int64)
    b, total, _ = _dense_once(clf, X, Y, rows, n_threads, loss, row_block=3, label_block=4,
                              col_block=3)

    Xd = X.toarray().astype(np.float64)[rows]
    bce = loss == "bce"
    # bce: a target of 1 on each label, as pick_all's
    T = _target([Y[r] for r in rows], n_labels, pick_all=loss != "softmax")
    params = _params64(clf)
    ref = _grads64(params, Xd, T, bce)
    np.testing.assert_allclose(total, _loss64(params, Xd, T, bce).sum(), rtol=1e-5)

    def close(actual, desired):
        scale = np.abs(desired).max()
        assert scale > 1e-4  # not a vacuous comparison
        np.testing.assert_allclose(actual, desired, rtol=2e-4, atol=2e-5 * scale)

    close(b.g_out, ref["W_out"])
    close(b.gb_out, ref["b_out"])
    present = np.unique(X[rows].indices)
    close(b.g_in[present], ref["W_in"][present])
    m = _testing.state(clf)
    close(b.g_dense[0][m.b_off[0]: m.b_off[0] + hidden[0]], ref["bs"][0])
    # every output neuron is listed for adam_update, once
    np.testing.assert_array_equal(np.sort(b.out_list[0, : b.out_count[0]]), np.arange(n_labels))
    assert not b.out_count[1:].any()


def test_dense_output_bce_loss_over_many_labels():
    # the logistic loss sums the logs of 32 labels at a time: 70 labels, 2 full blocks
    # and a partial one; logits far from 0 on both sides
    rng = np.random.default_rng(12)
    n_features, n_labels = 25, 70
    clf = _make_clf(n_features, n_labels, hidden=(8,))
    _testing.state(clf).b_out[:] = rng.uniform(-30, 30, n_labels)
    X, Y, _, _ = _random_batch(rng, 6, n_features, n_labels, density=0.3)
    rows = np.arange(6, dtype=np.int64)
    b, total, _ = _dense_once(clf, X, Y, rows, 1, "bce")
    Xd = X.toarray().astype(np.float64)
    T = _target([Y[r] for r in rows], n_labels, pick_all=True)
    params = _params64(clf)
    np.testing.assert_allclose(total, _loss64(params, Xd, T, bce=True).sum(), rtol=1e-5)
    np.testing.assert_allclose(b.gb_out, _grads64(params, Xd, T, bce=True)["b_out"],
                               rtol=1e-4, atol=1e-6)


def test_dense_output_equals_train_batch_and_ignores_threads():
    rng = np.random.default_rng(9)
    n_features, n_labels = 40, 13
    X, Y, Y_indptr, Y_indices = _random_batch(rng, 12, n_features, n_labels, density=0.2)
    rows = np.arange(12, dtype=np.int64)[::-1].copy()
    clf = _make_clf(n_features, n_labels, hidden=(16,))
    sparse, _, loss_s, _ = _train_once(clf, X, Y_indptr, Y_indices, rows, min_active=n_labels,
                                       pick_all=True)
    outs = [_dense_once(_make_clf(n_features, n_labels, hidden=(16,)), X, Y, rows, t, "pick_all",
                        row_block=5, label_block=6, col_block=5) for t in (1, 2)]
    # the same gradients as the per-sample kernel with every label active ...
    np.testing.assert_allclose(outs[0][1], loss_s, rtol=1e-5)
    for key in ("g_out", "gb_out", "g_in"):
        scale = np.abs(getattr(sparse, key)).max()
        np.testing.assert_allclose(getattr(outs[0][0], key), getattr(sparse, key),
                                   rtol=1e-4, atol=1e-5 * scale)
    # ... and bit for bit the same on 1 and 2 threads (fixed blocks)
    for key in ("g_out", "gb_out", "g_in", "g_dense"):
        np.testing.assert_array_equal(getattr(outs[0][0], key), getattr(outs[1][0], key))
    np.testing.assert_array_equal(outs[0][2], outs[1][2])


@pytest.mark.parametrize("hidden", [(32,), (24, 20)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_dropout_of_forward_acts_and_its_gradient(hidden, index_dtype):
    # forward_acts(dropout=p) zeroes about p of the last layer and scales the rest by
    # 1 / (1 - p), the same on any number of threads; hidden_backward(dropout=p) on
    # those activations gives the gradients of the undropped activations with d loss /
    # d h scaled by the mask (what the dense path did with a numpy mask before).
    rng = np.random.default_rng(12)
    n_features, n_labels, p = 50, 7, 0.4
    clf = _make_clf(n_features, n_labels, hidden=hidden)
    st = _testing.state(clf)
    X, Y, _, _ = _random_batch(rng, 40, n_features, n_labels, density=0.2,
                               index_dtype=index_dtype)
    rows = rng.permutation(40).astype(np.int64)
    width, last = int(np.sum(st.sizes)), int(st.a_off[-1])

    def forward(dropout, n_threads):
        acts = np.empty((len(rows), width), dtype=np.float32)
        _network.forward_acts(X.data, X.indices, X.indptr, rows, st, acts, n_threads,
                              dropout, 99)
        return acts

    plain, dropped = forward(0.0, 1), forward(p, 1)
    np.testing.assert_array_equal(dropped, forward(p, 2))
    np.testing.assert_array_equal(dropped[:, :last], plain[:, :last])
    on = plain[:, last:] > 0
    kept = dropped[:, last:] > 0
    assert not (kept & ~on).any()
    np.testing.assert_allclose(dropped[:, last:][kept], plain[:, last:][kept] / (1 - p),
                               rtol=1e-6)
    share = 1 - kept[on].mean()
    assert abs(share - p) < 0.06, share  # about 600 active units: 4 standard errors
    # another seed drops other units
    other = np.empty_like(dropped)
    _network.forward_acts(X.data, X.indices, X.indptr, rows, st, other, 1, p, 100)
    assert ((other[:, last:] > 0) != kept).any()

    dH = rng.standard_normal((len(rows), hidden[-1])).astype(np.float32)
    scale = np.where(kept, np.float32(1 / (1 - p)), np.float32(0))
    grads = []
    for acts, dh, dropout in ((dropped, dH, p), (plain, dH * scale, 0.0)):
        work = _testing.workspace(clf, 2, 3, transposed=False)
        _network.hidden_backward(X.data, X.indices, X.indptr, rows, acts, dh, st, work, 2,
                                 dropout)
        grads.append(_testing.buffers(work))
    assert np.abs(grads[1].g_in).max() > 0
    np.testing.assert_allclose(grads[0].g_in, grads[1].g_in, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grads[0].g_dense, grads[1].g_dense, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="dropout"):
        _network.forward_acts(X.data, X.indices, X.indptr, rows, st, plain, 1, 1.0, 0)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_input_adam_fused_into_hidden_backward(index_dtype, n_threads):
    # hidden_backward(adam=...) steps the touched input rows as adam_update does after
    # an unfused hidden_backward, bit for bit, lists no input row for it and leaves
    # g_in zero; untouched rows keep their weights and moments (lazy Adam).
    rng = np.random.default_rng(13)
    n_features, n_labels = 60, 7
    X, Y, _, _ = _random_batch(rng, 30, n_features, n_labels, density=0.1,
                               index_dtype=index_dtype)
    rows = rng.permutation(30)[:20].astype(np.int64)
    hp = (0.01, 0.9, 0.999, 1e-8, 1e-3)
    m0 = rng.normal(size=(n_features, 24)).astype(np.float32) * 1e-3
    out = []
    for fused in (False, True):
        clf = _make_clf(n_features, n_labels, hidden=(24, 16))
        st = _testing.state(clf)
        st.step = 4
        st.m_in[...] = m0  # moments of earlier steps
        st.v_in[...] = 1e-6
        before = st.W_in.copy()
        acts = np.empty((len(rows), int(np.sum(st.sizes))), dtype=np.float32)
        _network.forward_acts(X.data, X.indices, X.indptr, rows, st, acts, n_threads)
        dH = np.random.default_rng(1).standard_normal((len(rows), 16)).astype(np.float32)
        work = _testing.workspace(clf, n_threads, 3, transposed=False)
        _network.hidden_backward(X.data, X.indices, X.indptr, rows, acts, dH, st, work,
                                 n_threads, 0.0, hp + (st.step + 1,) if fused else None)
        if fused:
            b = _testing.buffers(work)
            assert not b.in_count.any() and not b.g_in.any()
        st.step += 1
        _network.adam_update(st, work, *hp, st.step, n_threads)
        out.append((before, st.W_in.copy(), st.m_in.copy(), st.v_in.copy(), st.dense.copy()))
    for a, b in zip(out[0][1:], out[1][1:]):
        np.testing.assert_array_equal(a, b)
    touched = np.unique(X[rows].indices)
    untouched = np.setdiff1d(np.arange(n_features), touched)
    assert len(untouched) and (out[1][1][touched] != out[1][0][touched]).all(axis=1).any()
    np.testing.assert_array_equal(out[1][1][untouched], out[1][0][untouched])
    with pytest.raises(ValueError, match="step"):
        _network.hidden_backward(X.data, X.indices, X.indptr, rows, acts, dH, st, work,
                                 n_threads, 0.0, hp + (0,))


def test_dense_output_rejects_bad_labels_and_shapes():
    rng = np.random.default_rng(10)
    clf = _make_clf(10, 5, hidden=(8,))
    st = _testing.state(clf)
    work = _testing.workspace(clf, 1, 3, transposed=False)
    h = rng.random((3, 8), dtype=np.float32)
    dZ = np.empty((3, 5), np.float32)
    dH = np.empty((3, 8), np.float32)
    ptr = np.array([0, 1, 2, 3], np.int64)

    def call(y_ptr=ptr, y_idx=np.array([0, 4, 2], np.int32), dZ=dZ, dH=dH, work=work):
        return _network.dense_output(h, y_ptr, y_idx, st, work, dZ, dH, 1 / 3, "softmax", 1)

    assert np.isfinite(call())
    with pytest.raises(ValueError, match="label out of range"):
        call(y_idx=np.array([0, 5, 2], np.int32))
    with pytest.raises(ValueError, match="label out of range"):
        call(y_idx=np.array([0, -1, 2], np.int32))
    with pytest.raises(ValueError, match="at least one label"):
        call(y_ptr=np.array([0, 1, 1, 3], np.int64))
    with pytest.raises(ValueError, match="pointers out of range"):
        call(y_ptr=np.array([0, 1, 2, 4], np.int64))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        call(dZ=np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        call(dH=np.empty((2, 8), np.float32))
    with pytest.raises(ValueError, match="not transposed"):
        call(work=_testing.workspace(clf, 1, 3, transposed=True))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        _network.dense_output(h, ptr, np.array([0, 4, 2], np.int32), st, work, dZ, dH, 1 / 3,
                              "hinge", 1)


def _shared_case(seed=11, n_features=30, n_labels=40, n_rows=9, hidden=(8,)):
    """A model, a batch and its shared candidates: the batch's labels and some drawn
    negatives (some of them labels too), sorted; offsets on the drawn ones, the other
    labels masked."""
    rng = np.random.default_rng(seed)
    clf = _make_clf(n_features, n_labels, hidden=hidden)
    X, Y, _, _ = _random_batch(rng, n_rows, n_features, n_labels, density=0.2)
    rows = np.array([4, 0, 7, 2, 8, 1], dtype=np.int64)
    labels = np.concatenate([Y[r] for r in rows])
    neg = np.unique(np.concatenate([rng.choice(n_labels, 9, replace=False), labels[:2]]))
    cand = np.union1d(labels, neg).astype(np.int32)
    drawn = np.isin(cand, neg)
    offset = np.where(drawn, -rng.uniform(0.5, 3.0, len(cand)), 0).astype(np.float32)
    masked = (~drawn).astype(np.uint8)
    y_ptr = np.concatenate([[0], np.cumsum([len(Y[r]) for r in rows])]).astype(np.int64)
    y_pos = np.searchsorted(cand, labels).astype(np.int32)
    return clf, X, Y, rows, cand, offset, masked, y_ptr, y_pos


def _shared_once(clf, X, rows, cand, offset, masked, y_ptr, y_pos, n_threads=1,
                 pick_all=False, row_block=32, label_block=256, adam=None):
    st = _testing.state(clf)
    work = _testing.workspace(clf, n_threads, 4, transposed=False)
    acts = np.empty((len(rows), int(np.sum(st.sizes))), dtype=np.float32)
    _network.forward_acts(X.data, X.indices, X.indptr, rows, st, acts, n_threads)
    h = np.ascontiguousarray(acts[:, int(st.a_off[-1]):])
    dZ = np.empty((len(rows), len(cand)), dtype=np.float32)
    dH = np.empty((len(rows), h.shape[1]), dtype=np.float32)
    with single_threaded_blas():
        loss = _network.shared_output(h, y_ptr, y_pos, cand, offset, masked, st, work, dZ,
                                      dH, 1.0 / len(rows), pick_all, n_threads, row_block,
                                      label_block, adam=adam)
    _network.hidden_backward(X.data, X.indices, X.indptr, rows, acts, dH, st, work, n_threads)
    return _testing.buffers(work), loss, h


@pytest.mark.parametrize("pick_all", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_shared_output_gradients_match_numpy(pick_all, n_threads):
    clf, X, Y, rows, cand, offset, masked, y_ptr, y_pos = _shared_case()
    b, loss, _ = _shared_once(clf, X, rows, cand, offset, masked, y_ptr, y_pos, n_threads,
                              pick_all, row_block=4, label_block=5)
    W_in, bs, _, W_out, b_out = _params64(clf)
    Xd = X.toarray().astype(np.float64)[rows]
    h = np.maximum(Xd @ W_in + bs[0], 0)
    z = h @ W_out[cand].T + b_out[cand] + offset
    z[:, masked.astype(bool)] = -np.inf
    T = np.zeros_like(z)
    for i in range(len(rows)):
        own = y_pos[y_ptr[i]:y_ptr[i + 1]]
        z[i, own] = h[i] @ W_out[cand[own]].T + b_out[cand[own]]  # plain logits
        T[i, own] = 1.0 if pick_all else 1.0 / len(own)
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(loss, -(T * np.where(T > 0, logp, 0)).sum(), rtol=1e-5)
    dz = (np.exp(logp) * T.sum(axis=1, keepdims=True) - T) / len(rows)
    g_out = np.zeros_like(W_out)
    g_out[cand] = dz.T @ h
    g_b = np.zeros_like(b_out)
    g_b[cand] = dz.sum(axis=0)
    g_in = Xd.T @ ((dz @ W_out[cand]) * (h > 0))

    def close(actual, desired):
        scale = np.abs(desired).max()
        assert scale > 1e-4
        np.testing.assert_allclose(actual, desired, rtol=2e-4, atol=2e-5 * scale)

    close(b.g_out, g_out)
    close(b.gb_out, g_b)
    close(b.g_in, g_in)
    np.testing.assert_array_equal(np.sort(b.out_list[0, : b.out_count[0]]), cand)


def test_shared_output_ignores_threads_and_rejects_bad_input():
    clf, X, Y, rows, cand, offset, masked, y_ptr, y_pos = _shared_case(seed=12)
    one = _shared_once(clf, X, rows, cand, offset, masked, y_ptr, y_pos, 1, row_block=4,
                       label_block=5)
    two = _shared_once(_shared_case(seed=12)[0], X, rows, cand, offset, masked, y_ptr, y_pos,
                       2, row_block=4, label_block=5)
    for key in ("g_out", "gb_out", "g_in", "g_dense"):
        np.testing.assert_array_equal(getattr(one[0], key), getattr(two[0], key))
    st = _testing.state(clf)
    work = _testing.workspace(clf, 1, 4, transposed=False)
    h = one[2]
    dZ = np.empty((len(rows), len(cand)), np.float32)
    dH = np.empty_like(h)

    def call(y_pos=y_pos, cand=cand, offset=offset, y_ptr=y_ptr, dZ=dZ):
        return _network.shared_output(h, y_ptr, y_pos, cand, offset, masked, st, work, dZ,
                                      dH, 1.0, False, 1)

    bad = cand.copy()
    bad[-1] = 40
    with pytest.raises(ValueError, match="candidate out of range"):
        call(cand=bad)
    with pytest.raises(ValueError, match="sorted and distinct"):
        call(cand=cand[::-1].copy())
    with pytest.raises(ValueError, match="label position out of range"):
        call(y_pos=np.full_like(y_pos, len(cand)))
    with pytest.raises(ValueError, match="at least one label"):
        call(y_ptr=np.concatenate([[0, 0], y_ptr[2:]]).astype(np.int64))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        call(offset=offset[:-1].copy())
    with pytest.raises(ValueError, match="inconsistent shapes"):
        call(dZ=np.empty((len(rows), len(cand) + 1), np.float32))



def _mix32(x):
    """``sl_mix32`` of ``_simd.h`` (the random bits of a neuron's bfloat16 step)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def _shared_bf16_once(clf, X, rows, cand, offset, masked, y_ptr, y_pos, n_threads, adam):
    """shared_output on a bfloat16 copy of ``clf``'s model, with the activations rounded
    to bfloat16; returns the copy's state before and after, the loss, dH and h."""
    b16 = copy.deepcopy(clf).set_params(precision="bfloat16")
    st = _testing.state(b16)
    st.set_output_precision("bfloat16", 1)
    before = copy.deepcopy(st)
    # what fit makes for it: no output gradient, no records
    work = _testing.workspace(b16, n_threads, 4, transposed=False, scatter=False)
    b = _testing.buffers(work)
    assert b.g_out.size == b.gb_out.size == b.rec_ids.size == b.Hb16.size == 0
    acts = np.empty((len(rows), int(np.sum(st.sizes))), dtype=np.float32)
    _network.forward_acts(X.data, X.indices, X.indptr, rows, st, acts, n_threads)
    h = _bf16.from_bf16(_bf16.to_bf16(np.ascontiguousarray(acts[:, int(st.a_off[-1]):])))
    dZ = np.empty((len(rows), len(cand)), dtype=np.float32)
    dH = np.empty((len(rows), h.shape[1]), dtype=np.float32)
    with single_threaded_blas():
        loss = _network.shared_output(h, y_ptr, y_pos, cand, offset, masked, st, work, dZ,
                                      dH, 1.0 / len(rows), False, n_threads, 4, 5, adam=adam)
    return before, st, loss, dH, h


@pytest.mark.parametrize("n_threads", [1, 2])
def test_shared_output_bfloat16_steps_the_candidates_as_output_adam(n_threads):
    """At precision="bfloat16" the shared softmax scores the rounded weights and takes
    the candidates' Adam step itself: its loss and dH are those of the float32 kernel on
    the rounded weights, and each candidate's halves and moments those of the bfloat16
    Adam row on the float32 kernel's gradient, with the random bits output_adam gives
    each neuron; the biases take float32 Adam; nothing else moves."""
    clf, X, Y, rows, cand, offset, masked, y_ptr, y_pos = _shared_case(seed=13)
    lr, b1, b2, eps, alpha, step, seed = 1e-2, 0.9, 0.999, 1e-8, 1e-4, 3, 12345
    before, st, loss, dH, h = _shared_bf16_once(clf, X, rows, cand, offset, masked, y_ptr,
                                                y_pos, n_threads,
                                                (lr, b1, b2, eps, alpha, step, seed))
    # the float32 kernel on the rounded weights, with the same activations
    ref = copy.deepcopy(clf)
    st_ref = _testing.state(ref)
    st_ref.W_out[:] = _bf16.from_bf16(before.w16_out)
    work = _testing.workspace(ref, n_threads, 4, transposed=False)
    dZ = np.empty((len(rows), len(cand)), dtype=np.float32)
    dH_ref = np.empty_like(dH)
    with single_threaded_blas():
        loss_ref = _network.shared_output(h, y_ptr, y_pos, cand, offset, masked, st_ref,
                                          work, dZ, dH_ref, 1.0 / len(rows), False,
                                          n_threads, 4, 5)
    assert loss == loss_ref
    np.testing.assert_array_equal(dH, dH_ref)
    g = _testing.buffers(work)
    H = st.W_out.shape[1]
    # as every Adam kernel takes it (_adam_lr_t): float32 lr, betas and powers
    f = np.float32
    lr_t = f(float(f(lr)) * np.sqrt(1 - float(f(b2) ** f(step)))
             / (1 - float(f(b1) ** f(step))))
    w16, s16 = before.w16_out[cand].copy(), before.s16_out[cand].copy()
    seed32 = (seed ^ (seed >> 32)) & 0xFFFFFFFF
    for i, q in enumerate(cand):  # each neuron's random bits, as output_adam draws them
        _network.adam16_rows(w16[i:i + 1], s16[i:i + 1], g.g_out[q:q + 1], lr_t, b1, b2,
                             eps, alpha, _mix32(seed32 ^ int(q)))
    np.testing.assert_array_equal(st.w16_out[cand], w16)
    np.testing.assert_array_equal(st.s16_out[cand, :3 * H], s16[:, :3 * H])
    others = np.setdiff1d(np.arange(st.W_out.shape[0]), cand)
    np.testing.assert_array_equal(st.w16_out[others], before.w16_out[others])
    np.testing.assert_array_equal(st.s16_out[others], before.s16_out[others])
    gb = g.gb_out[cand]
    m = b1 * before.mb_out[cand] + (1 - b1) * gb
    v = b2 * before.vb_out[cand] + (1 - b2) * gb * gb
    np.testing.assert_allclose(st.b_out[cand], before.b_out[cand] - lr_t * m / (np.sqrt(v) + eps),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(st.mb_out[cand], m, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(st.b_out[others], before.b_out[others])
    assert (st.dirty_out[cand // _network.DIRTY_ROWS] == 1).all()
    assert not np.array_equal(st.w16_out[cand], before.w16_out[cand])


def test_shared_output_bfloat16_ignores_threads_and_needs_its_step():
    case = _shared_case(seed=14)
    adam = (1e-2, 0.9, 0.999, 1e-8, 0.0, 1, 99)
    one = _shared_bf16_once(*case[:2], *case[3:], 1, adam)[1]
    two = _shared_bf16_once(*case[:2], *case[3:], 2, adam)[1]
    for name in ("w16_out", "s16_out", "b_out", "mb_out", "vb_out", "dirty_out"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    with pytest.raises(ValueError, match="pass adam"):
        _shared_bf16_once(*case[:2], *case[3:], 1, None)
    with pytest.raises(ValueError, match="counts from 1"):
        _shared_bf16_once(*case[:2], *case[3:], 1, adam[:5] + (0, 99))
    clf, X, Y, rows, cand, offset, masked, y_ptr, y_pos = case
    with pytest.raises(ValueError, match="adam= is for"):
        _shared_once(clf, X, rows, cand, offset, masked, y_ptr, y_pos, adam=adam)


def test_kernels_that_add_into_g_out_refuse_a_workspace_without_it():
    """A Workspace made for the bfloat16 shared softmax has no g_out: every float32
    kernel that adds into it must refuse it rather than write past its 0 rows."""
    clf, X, Y, rows, cand, offset, masked, y_ptr, y_pos = _shared_case(seed=15)
    work = _testing.workspace(clf, 1, 4, transposed=False, scatter=False)
    assert not work.scatter and not work.transposed and _testing.buffers(work).g_out.size == 0
    st = _testing.state(clf)
    h = np.zeros((len(rows), st.W_out.shape[1]), np.float32)
    dZ = np.empty((len(rows), len(cand)), np.float32)
    with pytest.raises(ValueError, match="not transposed"):
        _network.shared_output(h, y_ptr, y_pos, cand, offset, masked, st, work, dZ,
                               np.empty_like(h), 1.0, False, 1)
    y_idx = np.concatenate([Y[r] for r in rows]).astype(np.int32)
    with pytest.raises(ValueError, match="not transposed"):
        _network.dense_output(h, y_ptr, y_idx, st, work,
                              np.empty((len(rows), st.W_out.shape[0]), np.float32),
                              np.empty_like(h), 1.0, "softmax", 1)
    Y_indptr = np.concatenate([[0], np.cumsum([len(y) for y in Y])]).astype(np.int64)
    Y_indices = np.concatenate(Y).astype(np.int32)
    with pytest.raises(ValueError, match="keeps no output gradient"):
        _testing.train_batch(clf, X, Y_indptr, Y_indices, rows, work, min_active=4)
    # adam_update leaves the output layer alone
    W0 = st.W_out.copy()
    _network.adam_update(st, work, 0.1, 0.9, 0.999, 1e-8, 0.0, 1, 1)
    np.testing.assert_array_equal(st.W_out, W0)

def test_train_batch_empty_rows_and_thread_check():
    clf = _make_clf(6, 4)
    rng = np.random.default_rng(8)
    X, _, Y_indptr, Y_indices = _random_batch(rng, 3, 6, 4)
    work = _testing.workspace(clf, 1, 3, transposed=False)
    out = _testing.train_batch(clf, X, Y_indptr, Y_indices, np.zeros(0, dtype=np.int64), work,
                               min_active=4, seed=0)
    assert out == (0.0, 0)
    with pytest.raises(ValueError, match="fewer threads"):
        _testing.train_batch(clf, X, Y_indptr, Y_indices, np.arange(3, dtype=np.int64), work,
                             min_active=4, seed=0, n_threads=2)


def _empty_tables(lsh):
    out = copy.copy(lsh)
    out.offsets = np.zeros_like(lsh.offsets)
    return out


def test_train_batch_active_set_is_labels_when_tables_empty():
    # min_active=0 and empty tables: the active set is exactly the true labels, so the
    # gradient touches only those output neurons.
    rng = np.random.default_rng(9)
    clf = _make_clf(10, 40)
    X, Y, Y_indptr, Y_indices = _random_batch(rng, 6, 10, 40)
    rows = np.arange(6, dtype=np.int64)
    b, _, loss, n_active = _train_once(clf, X, Y_indptr, Y_indices, rows, 0,
                                       lsh=_empty_tables(_testing.lsh(clf)))
    assert n_active == len(Y_indices)
    labels = np.unique(Y_indices)
    np.testing.assert_array_equal(np.sort(b.out_list[0, : b.out_count[0]]), labels)
    others = np.setdiff1d(np.arange(40), labels)
    assert not b.g_out[others].any() and not b.gb_out[others].any()
    # The softmax over the true labels only: loss_i = log|y_i| - mean(z_y) + logsumexp(z_y)
    _, z = _forward64(_params64(clf), X.toarray().astype(np.float64))
    ref = 0.0
    for i, y in enumerate(Y):
        zy = z[i, y]
        ref += np.log(np.exp(zy - zy.max()).sum()) + zy.max() - zy.mean()
    np.testing.assert_allclose(loss, ref, rtol=1e-5, atol=1e-6)


def test_train_batch_min_active_adds_random_neurons():
    rng = np.random.default_rng(10)
    clf = _make_clf(10, 200)
    X, _, Y_indptr, Y_indices = _random_batch(rng, 6, 10, 200)
    rows = np.arange(6, dtype=np.int64)
    b, _, _, n_active = _train_once(clf, X, Y_indptr, Y_indices, rows, 25,
                                    lsh=_empty_tables(_testing.lsh(clf)))
    assert n_active == 6 * 25
    touched = b.out_list[0, : b.out_count[0]]
    assert set(np.unique(Y_indices).tolist()) <= set(touched.tolist())
    assert 25 <= len(np.unique(touched)) <= 6 * 25


@pytest.mark.parametrize("threshold", [1, 2, 3])
def test_train_batch_active_set_matches_a_python_count(threshold):
    """A training sample's active set, in order: its labels, then every neuron found in
    at least ``threshold`` of its buckets, in order of first retrieval (table by table).
    Buckets of up to 90 ids span several cache lines and more ids than the marks are
    prefetched ahead, so the prefetch cursor crosses buckets and tables."""
    rng = np.random.default_rng(12)
    n_labels, L = 300, 12
    clf = _make_clf(10, n_labels, hidden=(16,), hash_family="dwta", n_codes=1, bin_size=4,
                    n_tables=L, bucket_size=90)
    _testing.rehash(clf)
    lsh, m = _testing.lsh(clf), _testing.state(clf)
    sizes = np.diff(lsh.offsets, axis=1)
    assert sizes.max() > 40  # longer than the marks' prefetch distance
    X, Y, Y_indptr, Y_indices = _random_batch(rng, 5, 10, n_labels)
    work = _testing.workspace(clf, 1, int(np.diff(Y_indptr).max()), transposed=False)
    b = _testing.buffers(work)
    for r in range(5):
        _testing.reset_gradients(work)
        _, n_active = _testing.train_batch(clf, X, Y_indptr, Y_indices, np.array([r], np.int64),
                                           work, min_active=0, threshold=threshold, seed=7)
        h = b.acts[0, m.a_off[-1]:].copy()
        _, buckets = _testing.hash_codes(lsh.params, h)
        votes, order = {}, []
        for t in range(L):
            for p in range(lsh.offsets[t, buckets[t]], lsh.offsets[t, buckets[t] + 1]):
                j = int(lsh.ids[t, p])
                if j not in votes:
                    order.append(j)
                votes[j] = votes.get(j, 0) + 1
        want = list(Y[r]) + [j for j in order if votes[j] >= threshold and j not in Y[r]]
        assert b.act[0, :n_active].tolist() == want
        assert not b.mark.any()  # every mark is cleared after the sample


def test_train_batch_n_active_is_exact_with_threads():
    # The active-set size of every sample must be summed exactly with several threads.
    # Empty tables and min_active=0: a sample's active set is its labels (1 to 5).
    rng = np.random.default_rng(11)
    n, d, n_labels = 400, 50, 30
    clf = _make_clf(d, n_labels, hidden=(1024,), min_active=0, n_tables=2, bucket_size=1,
                    batch_size=n)  # the work buffers hold one batch of n rows
    X, _, Y_indptr, Y_indices = _random_batch(rng, n, d, n_labels, density=0.3, max_labels=5)
    lsh = _empty_tables(_testing.lsh(clf))
    work = _testing.workspace(clf, 2, 5, transposed=False)
    rows = np.arange(n, dtype=np.int64)
    results = []
    for rep in range(20):
        _, n_active = _testing.train_batch(clf, X, Y_indptr, Y_indices, rows, work,
                                           min_active=0, seed=rep, n_threads=2, tables=lsh)
        results.append(n_active)
        _testing.reset_gradients(work)
    assert results == [len(Y_indices)] * 20


def test_train_batch_dropout_single_sample():
    # Inverted dropout on the last hidden layer: for a one-sample batch, the dropped units
    # are the zero columns of g_out; the gradients must be those of the network whose
    # last hidden activation is h * mask / (1 - p).
    rng = np.random.default_rng(13)
    n_features, n_labels, p = 20, 6, 0.5
    clf = _make_clf(n_features, n_labels, hidden=(16,))
    X, Y, Y_indptr, Y_indices = _random_batch(rng, 1, n_features, n_labels, density=0.5)
    params = _params64(clf)
    W_in, bs, _, W_out, b_out = params
    x = X.toarray().astype(np.float64)[0]
    h = np.maximum(x @ W_in + bs[0], 0)
    t = _target(Y, n_labels)[0]
    work = _testing.workspace(clf, 1, 3, transposed=False)
    b = _testing.buffers(work)
    rows = np.zeros(1, dtype=np.int64)
    kept, alive = 0, 0
    for rep in range(30):
        _testing.reset_gradients(work)
        loss, _ = _testing.train_batch(clf, X, Y_indptr, Y_indices, rows, work,
                                       min_active=n_labels, seed=1000 + rep, dropout=p)
        mask = np.any(b.g_out != 0, axis=0)
        assert not np.any(mask & (h <= 0))  # inactive units get no gradient anyway
        kept += int(mask.sum())
        alive += int((h > 0).sum())
        hd = np.where(mask, h / (1 - p), 0.0)
        z = hd @ W_out.T + b_out
        prob = np.exp(z - z.max())
        prob /= prob.sum()
        np.testing.assert_allclose(loss, -(t * np.log(prob)).sum(), rtol=1e-5)
        dz = prob - t
        np.testing.assert_allclose(b.g_out, np.outer(dz, hd), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b.gb_out, dz, rtol=1e-4, atol=1e-6)
        dh = (dz @ W_out) * mask / (1 - p)
        b0 = _testing.state(clf).b_off[0]
        np.testing.assert_allclose(b.g_dense[0][b0: b0 + 16], dh, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b.g_in, np.outer(x, dh), rtol=1e-4, atol=1e-6)
    assert abs(kept / alive - (1 - p)) < 0.12  # about half of the active units are kept
    # dropout=0 is the default
    _testing.reset_gradients(work)
    first = _network.train_batch(X.data, X.indices, X.indptr, Y_indptr, Y_indices, rows,
                                 _testing.state(clf), _testing.lsh(clf), work, n_labels, 1, 5,
                                 1)
    g_a = b.g_out.copy()
    _testing.reset_gradients(work)
    second = _testing.train_batch(clf, X, Y_indptr, Y_indices, rows, work, min_active=n_labels,
                                  seed=5, dropout=0.0)
    assert first == second
    np.testing.assert_array_equal(g_a, b.g_out)
    assert np.all(np.any(g_a != 0, axis=0) == (h > 0))


# --------------------------------------------------------------------------- Adam
@pytest.mark.parametrize("alpha", [0.0, 1e-2])
def test_adam_update_matches_numpy_on_touched_rows(alpha):
    rng = np.random.default_rng(12)
    n_features, n_labels = 15, 40
    clf = _make_clf(n_features, n_labels, hidden=(8, 6))
    st = _testing.state(clf)
    # Non-trivial moments so that the update depends on them.
    for key in ("m_in", "v_in", "m_dense", "v_dense", "m_out", "v_out", "mb_out", "vb_out"):
        arr = getattr(st, key)
        arr[...] = rng.uniform(0.0, 1e-3, arr.shape) if key.startswith("v") \
            else rng.uniform(-1e-2, 1e-2, arr.shape)
    X, _, Y_indptr, Y_indices = _random_batch(rng, 6, n_features, n_labels, density=0.25)
    rows = np.arange(6, dtype=np.int64)
    b, work, _, _ = _train_once(clf, X, Y_indptr, Y_indices, rows, 0,
                                lsh=_empty_tables(_testing.lsh(clf)))
    out_rows = np.unique(b.out_list[0, : b.out_count[0]])
    in_rows = np.unique(b.in_list[0, : b.in_count[0]])
    out_other = np.setdiff1d(np.arange(n_labels), out_rows)
    in_other = np.setdiff1d(np.arange(n_features), in_rows)
    assert out_other.size and in_other.size

    before = st.snapshot()
    g = {k: getattr(b, k).astype(np.float64) for k in ("g_in", "g_out", "gb_out")}
    g["g_dense"] = b.g_dense.astype(np.float64).sum(axis=0)
    lr, b1, b2, eps, step = 1e-2, 0.9, 0.999, 1e-8, 3
    n_out, n_in = _network.adam_update(st, work, lr, b1, b2, eps, alpha, step, 1)
    assert (n_out, n_in) == (len(out_rows), len(in_rows))
    lr_t = lr * np.sqrt(1 - b2**step) / (1 - b1**step)

    def adam(w, m, v, grad, decay):
        grad = grad + decay * w
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad**2
        return w - lr_t * m / (np.sqrt(v) + eps), m, v

    def check(wkey, mkey, vkey, gkey, idx, decay):
        w, mm, vv = adam(before[wkey][idx].astype(np.float64), before[mkey][idx].astype(np.float64),
                         before[vkey][idx].astype(np.float64), g[gkey][idx], decay)
        np.testing.assert_allclose(getattr(st, wkey)[idx], w, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(getattr(st, mkey)[idx], mm, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(getattr(st, vkey)[idx], vv, rtol=1e-5, atol=1e-12)
        assert not np.array_equal(getattr(st, wkey)[idx], before[wkey][idx])

    check("W_out", "m_out", "v_out", "g_out", out_rows, alpha)
    check("b_out", "mb_out", "vb_out", "gb_out", out_rows, 0.0)  # no decay of biases
    check("W_in", "m_in", "v_in", "g_in", in_rows, alpha)
    check("dense", "m_dense", "v_dense", "g_dense", slice(None), 0.0)
    # Untouched rows: weights and moments unchanged (lazy Adam).
    for wkey, mkey, vkey, idx in [("W_out", "m_out", "v_out", out_other),
                                  ("b_out", "mb_out", "vb_out", out_other),
                                  ("W_in", "m_in", "v_in", in_other)]:
        for key in (wkey, mkey, vkey):
            np.testing.assert_array_equal(getattr(st, key)[idx], before[key][idx])
    # Gradients and touched lists are cleared for the next batch.
    for key in ("g_in", "g_out", "gb_out", "g_dense"):
        assert not getattr(b, key).any()
    assert not b.out_count.any() and not b.in_count.any()
