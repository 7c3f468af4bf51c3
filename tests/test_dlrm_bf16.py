"""DLRM precision="bfloat16": split-SGD storage (hi | lo halves of every fp32 weight),
bf16 GEMMs, every CPU level (each in its own process, since the level is chosen at
import), and quality against float32 on the Criteo sample."""
import pickle

import numpy as np
import pytest
from conftest import level_result, run_at_every_level
from sklearn.utils._param_validation import InvalidParameterError

from slidelearn import DLRMClassifier, DLRMRegressor
from slidelearn._dlrm import _testing
from slidelearn.datasets import CRITEO_CATEGORICAL_FEATURES, iter_criteo
from slidelearn.utils import _cpu


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    n = 1500
    dense = rng.normal(size=(n, 6))
    ids = rng.integers(0, 40, size=(n, 3))
    X = np.column_stack([dense, ids]).astype(np.float64)
    score = dense[:, 0] - dense[:, 1] + (ids[:, 0] % 3 - 1) + 0.3 * rng.normal(size=n)
    return X, (score > 0).astype(int), score


def _clf(**kw):
    params = dict(categorical_features=[6, 7, 8], table_sizes=40, embedding_dim=8,
                  bottom_mlp=(16,), top_mlp=(16, 8), max_iter=4, random_state=0, n_jobs=1)
    params.update(kw)
    return DLRMClassifier(**params)


# ---------------------------------------------------------------- storage
def test_split_rows_is_exact_and_in_place():
    bits = np.array([0x3F800000, 0xBF808000, 0x7F800000, 0xFF800000, 0x7FC00001,
                     0x00000001, 0x807FFFFF, 0x80000000, 0x00000000, 0x3F818001,
                     0x7F7FFFFF, 0x12345678], dtype=np.uint32)
    rng = np.random.default_rng(0)
    a = np.concatenate([bits, rng.integers(0, 2**32, 36, dtype=np.uint64).astype(np.uint32)])
    a = a.view(np.float32).reshape(6, 8)
    orig = a.copy()
    s = _testing.split_rows(a)
    assert s.dtype == np.uint16 and s.shape == (6, 16) and np.shares_memory(s, a)
    u = orig.view(np.uint32)
    np.testing.assert_array_equal(s[:, :8], u >> 16)      # upper halves (truncated)
    np.testing.assert_array_equal(s[:, 8:], u & 0xFFFF)   # lower halves
    back = _testing.join_rows(s)
    assert back.dtype == np.float32 and np.shares_memory(back, a)
    np.testing.assert_array_equal(back.view(np.uint32), u)  # NaN payloads, -0.0, denormals


def test_bf16_model_layout_and_exact_switch(problem):
    X, y, _ = problem
    clf = _clf().fit(X, y)
    theta, E = _testing.weights(clf)
    p32 = clf.predict_proba(X)
    _testing.set_precision(clf, "bfloat16")
    state = _testing.state(clf)
    assert state.bf16
    assert state.theta.dtype == np.uint16 and state.theta.shape == (2 * theta.size,)
    E16 = state.tables.E
    assert E16.dtype == np.uint16 and E16.shape == (E.shape[0], 2 * E.shape[1])
    np.testing.assert_array_equal(state.theta[:theta.size], theta.view(np.uint32) >> 16)
    # the forward pass reads the bf16 halves: close to, not equal to, float32
    p16 = clf.predict_proba(X)
    assert not np.array_equal(p16, p32)
    np.testing.assert_allclose(p16, p32, atol=0.03)
    _testing.set_precision(clf, "float32")
    assert state.theta.dtype == np.float32
    np.testing.assert_array_equal(state.theta.view(np.uint32), theta.view(np.uint32))
    np.testing.assert_array_equal(state.tables.E.view(np.uint32), E.view(np.uint32))
    np.testing.assert_array_equal(clf.predict_proba(X), p32)


@pytest.mark.parametrize("alpha", [0.0, 1e-3])
def test_split_sgd_step_is_the_fp32_sgd_step(problem, alpha):
    """One SGD step of a bfloat16 model: the joined weights after it are exactly the
    fp32 SGD update ``w - lr * g`` (two roundings) of the gradient the step computed
    (left in ``grad``, L2 term included)."""
    X, y, _ = problem
    clf = _clf(solver="sgd", learning_rate_init=0.05, alpha=alpha, precision="bfloat16",
               batch_size=len(y), shuffle=False)
    clf.partial_fit(X, y, classes=[0, 1])           # initialises, one step
    before, _ = _testing.weights(clf)
    clf.partial_fit(X, y)                          # one more step
    after, _ = _testing.weights(clf)
    g = _testing.gradient(clf)
    assert np.abs(g).max() > 0
    want = before - np.float32(0.05) * g
    np.testing.assert_array_equal(after.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("solver", ["sgd", "adagrad"])
@pytest.mark.parametrize("alpha", [0.0, 1e-4])
def test_bf16_learns_like_float32(problem, solver, alpha):
    X, y, _ = problem
    lr = 0.05 if solver == "sgd" else 0.02
    fits = {p: _clf(solver=solver, alpha=alpha, learning_rate_init=lr, precision=p).fit(X, y)
            for p in ("float32", "bfloat16")}
    l32, l16 = (fits[p].loss_curve_ for p in ("float32", "bfloat16"))
    assert l32[-1] < l32[0] and l16[-1] < l16[0]
    assert abs(l16[-1] / l32[-1] - 1) < 0.02, (l32, l16)
    assert abs(fits["bfloat16"].score(X, y) - fits["float32"].score(X, y)) < 0.02


def test_bf16_regressor_threads_and_pickle(problem):
    X, _, score = problem
    reg = DLRMRegressor(categorical_features=[6, 7, 8], table_sizes=40, embedding_dim=8,
                        bottom_mlp=(16,), top_mlp=(16,), max_iter=3, random_state=0,
                        precision="bfloat16", solver="sgd", learning_rate_init=0.02,
                        batch_size=64)
    one = reg.set_params(n_jobs=1).fit(X, score)
    pred1 = one.predict(X)
    two = pickle.loads(pickle.dumps(reg.set_params(n_jobs=2)))
    two.fit(X, score)
    # the row split of the GEMMs changes nothing but summation order
    np.testing.assert_allclose(two.predict(X), pred1, rtol=1e-3, atol=1e-3)
    back = pickle.loads(pickle.dumps(one))
    assert _testing.state(back).bf16
    np.testing.assert_array_equal(back.predict(X), pred1)
    assert one.score(X, score) > 0.5


def test_precision_change_between_fits(problem):
    X, y, _ = problem
    clf = _clf(warm_start=True, max_iter=2).fit(X, y)
    theta, _ = _testing.weights(clf)
    clf.set_params(precision="bfloat16").fit(X, y)  # converts, then trains on
    assert _testing.state(clf).bf16
    clf.set_params(precision="float32").fit(X, y)
    assert _testing.state(clf).theta.dtype == np.float32
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert not np.array_equal(_testing.weights(clf)[0], theta)


def test_bad_precision(problem):
    X, y, _ = problem
    with pytest.raises(InvalidParameterError, match="precision"):
        _clf(precision="float16").fit(X, y)


def test_bf16_with_comm_raises(problem):
    MPI = pytest.importorskip("mpi4py.MPI")
    X, y, _ = problem
    with pytest.raises(ValueError, match="not available with comm"):
        _clf(precision="bfloat16", comm=MPI.COMM_SELF).fit(X, y)
    clf = _clf(precision="bfloat16", max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="float32 models only"):
        _testing.mlp_update(clf, 0.1)
    with pytest.raises(ValueError, match="float32 models only"):
        _testing.mlp_bottom_forward(clf, np.zeros((2, 6)))


# ---------------------------------------------------------------- every level
_LEVEL_SCRIPT = r'''
import json, sys
import numpy as np
from slidelearn import DLRMClassifier
from slidelearn.utils import _cpu
rng = np.random.default_rng(0)
n = 1200
dense = rng.normal(size=(n, 6))
ids = rng.integers(0, 40, size=(n, 3))
X = np.column_stack([dense, ids]).astype(np.float64)
y = (dense[:, 0] - dense[:, 1] + (ids[:, 0] % 3 - 1) > 0).astype(int)
out = {"level": _cpu.cpu_level()}
probs = []
for precision in ("float32", "bfloat16"):
    for solver in ("sgd", "adagrad"):
        clf = DLRMClassifier(categorical_features=[6, 7, 8], table_sizes=40, embedding_dim=8,
                             bottom_mlp=(16,), top_mlp=(24, 8), max_iter=3, n_jobs=2,
                             solver=solver, learning_rate_init=0.05 if solver == "sgd" else 0.02,
                             random_state=0, precision=precision).fit(X, y)
        out[precision + "-" + solver] = [clf.loss_curve_[0], clf.loss_curve_[-1]]
        probs.append(clf.predict_proba(X)[:, 1])
np.save(sys.argv[1], np.array(probs))
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def level_runs(tmp_path_factory):
    return run_at_every_level(_LEVEL_SCRIPT, lambda level: tmp_path_factory.mktemp("dlrm-" + level),
                              output="p.npy")


@pytest.mark.parametrize("level", _cpu.LEVELS)
def test_every_level_trains(level, level_runs):
    res = level_result(level_runs, level)
    assert res["level"] == level
    for key in ("float32-sgd", "float32-adagrad", "bfloat16-sgd", "bfloat16-adagrad"):
        first, last = res[key]
        assert last < first, (key, res[key])


def test_levels_agree(level_runs):
    """The levels differ in summation order and FMA contraction only (the bf16 GEMM
    kernels multiply the same bf16 values exactly): predictions agree closely."""
    got = {lv: np.load(r[3]) for lv, r in level_runs.items() if r[0] == 0}
    assert len(got) == len(_cpu.available_levels())
    for level, p in got.items():
        np.testing.assert_allclose(p, got["generic"], atol=0.02, err_msg=level)


# ---------------------------------------------------------------- real data
def test_bf16_criteo_sample_loss_within_one_percent(shared_data):
    """Same steps on the Criteo sample: the bfloat16 model's training and held-out
    log-loss within 1% of float32's."""
    from sklearn.metrics import log_loss

    chunks = list(iter_criteo(shared_data / "criteo-sample" / "train.txt", chunksize=1000,
                              n_hash_bins=1000))
    X = np.vstack([c[0] for c in chunks])
    y = np.concatenate([c[1] for c in chunks])
    X_tr, y_tr, X_te, y_te = X[:800], y[:800], X[800:], y[800:]
    res = {}
    for precision in ("float32", "bfloat16"):
        clf = DLRMClassifier(categorical_features=CRITEO_CATEGORICAL_FEATURES, table_sizes=1000,
                             embedding_dim=8, bottom_mlp=(16,), top_mlp=(16,), max_iter=5,
                             batch_size=64, random_state=0, n_jobs=1, precision=precision,
                             interaction="dot", early_stopping=False)  # the same steps
        clf.fit(X_tr, y_tr)
        res[precision] = (clf.loss_curve_[-1], log_loss(y_te, clf.predict_proba(X_te)[:, 1]))
    (tr32, te32), (tr16, te16) = res["float32"], res["bfloat16"]
    assert abs(tr16 / tr32 - 1) < 0.01, res
    assert abs(te16 / te32 - 1) < 0.01, res


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_prediction_does_not_depend_on_row_position(problem, precision):
    """A row's output is the same wherever it sits among the rows predicted with it
    (the fp32 prediction GEMM accumulates every element in the same order)."""
    X, y, _ = problem
    clf = _clf(precision=precision, max_iter=1, n_jobs=2).fit(X, y)
    idx = np.random.default_rng(3).permutation(len(y))[:700]
    np.testing.assert_array_equal(clf.predict_proba(X[idx]), clf.predict_proba(X)[idx])
    np.testing.assert_array_equal(clf.predict_proba(X[idx[:3]]), clf.predict_proba(X)[idx[:3]])
