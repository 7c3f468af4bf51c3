"""SlideClassifier's CPU levels and precisions: the transposed output gradient, the
dispatched vector kernels (each level in its own process, since the level is chosen at
import), the branch-free (D)WTA codes and precision="bfloat16"."""
import pickle

import numpy as np
import pytest
from conftest import level_result, run_at_every_level

from slidelearn import SlideClassifier
from slidelearn._slide import _hashing
from slidelearn.datasets import load_xc_repository, make_extreme_classification
from slidelearn.metrics import precision_at_k
from slidelearn.utils import _bf16, _cpu


@pytest.fixture(scope="module")
def problem():
    X, Y = make_extreme_classification(n_samples=1200, n_features=400, n_labels=60,
                                       random_state=0)
    return X[:1000], Y[:1000], X[1000:], Y[1000:]


def _fit(problem, **kw):
    Xtr, Ytr, _, _ = problem
    params = dict(hidden_layer_sizes=(32,), max_iter=3, batch_size=64, n_jobs=1,
                  random_state=0, n_tables=8, bucket_size=16, min_active=20)
    params.update(kw)
    return SlideClassifier(**params).fit(Xtr, Ytr)


def test_transposed_gradient_is_the_scattered_one(problem, monkeypatch):
    """The output gradient formed per neuron from the batch records equals the one
    scattered into an (n_labels, H) array, bit for bit (same sums, same order)."""
    transposed = _fit(problem)
    assert "rec_ids" in transposed._work and "g_out" not in transposed._work
    get_work = SlideClassifier._get_work
    monkeypatch.setattr(SlideClassifier, "_get_work",
                        lambda self, n, m, transposed=True: get_work(self, n, m, False))
    scattered = _fit(problem)
    assert "g_out" in scattered._work
    for key in ("W_out", "b_out", "W_in", "dense"):
        np.testing.assert_array_equal(transposed._model[key], scattered._model[key], key)
    for key in ("m_out", "v_out", "m_in"):
        np.testing.assert_array_equal(transposed._opt[key], scattered._opt[key], key)


def test_transposed_gradient_threads_agree(problem):
    """The per-neuron sums are race-free: after one batch (whose forward passes all
    read the weights from before the step), 1 and 2 threads give the same output
    layer up to rounding (each thread fills the active set in its own random order,
    which changes the order of the softmax sums, nothing else)."""
    one = _fit(problem, min_active=60, n_jobs=1, batch_size=1000, max_iter=1)
    two = _fit(problem, min_active=60, n_jobs=2, batch_size=1000, max_iter=1)
    np.testing.assert_allclose(one._model["W_out"], two._model["W_out"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(one._opt["v_out"], two._opt["v_out"], rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("family", ["wta", "dwta"])
def test_wta_codes_match_a_reference(family):
    """Branch-free (D)WTA codes: first position of the maximum of each bin of 8, -1 for
    an all-zero DWTA bin before densification."""
    rng = np.random.default_rng(0)
    p = _hashing.draw_hash_functions(family, 64, 4, 10, 8, 12, np.random.default_rng(1))
    dims = np.asarray(p["dims"]).reshape(-1, 8)
    for t in range(100):
        v = np.maximum(rng.normal(size=64), 0).astype(np.float32)
        v[rng.random(64) < 0.6] = 0
        if t % 2:
            v = np.round(v)  # many ties
        codes, _ = _hashing.hash_codes(p, v)
        vals = v[dims]
        want = vals.argmax(axis=1)  # numpy: first occurrence of the maximum
        empty = ~vals.any(axis=1)
        got = np.ravel(codes)
        if family == "wta":
            np.testing.assert_array_equal(got, want)
        else:  # empty bins were densified with the code of a non-empty one
            np.testing.assert_array_equal(got[~empty], want[~empty])
            assert np.isin(got[empty], want[~empty]).all() or not (~empty).any()


# ---------------------------------------------------------------- every CPU level
_LEVEL_SCRIPT = r'''
import json, sys
import numpy as np
from slidelearn import SlideClassifier
from slidelearn._slide import _network
from slidelearn.datasets import make_extreme_classification
from slidelearn.utils import _cpu
X, Y = make_extreme_classification(n_samples=700, n_features=300, n_labels=40,
                                   random_state=0)
out = {"level": _cpu.cpu_level(), "vector_levels": list(_network.vector_levels())}
arrays = []
for precision in ("float32", "bfloat16"):
    clf = SlideClassifier(hidden_layer_sizes=(32,), max_iter=3, batch_size=50, n_jobs=1,
                          random_state=0, n_tables=6, bucket_size=16, min_active=40,
                          precision=precision).fit(X[:600], Y[:600])
    out[precision] = clf.score(X[600:], Y[600:])
    arrays.append(clf._model["W_out"].ravel())
np.save(sys.argv[1], np.concatenate(arrays))
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def level_runs(tmp_path_factory):
    return run_at_every_level(_LEVEL_SCRIPT, lambda level: tmp_path_factory.mktemp(level),
                              output="w.npy")


@pytest.mark.parametrize("level", _cpu.LEVELS)
def test_every_level_trains(level, level_runs):
    res = level_result(level_runs, level)
    want_vec = {"generic": [0, 0], "avx2": [1, 0], "avx512": [2, 1], "avx512_bf16": [2, 2]}
    assert res["level"] == level and res["vector_levels"] == want_vec[level]
    assert res["float32"] > 0.3 and res["bfloat16"] > 0.3  # far above chance (1/40)


def test_levels_agree(level_runs):
    """Every all-neurons-active model agrees across levels up to rounding (the levels
    differ in FMA contraction and summation order, bfloat16 in its dot products)."""
    got = {lv: np.load(r[3]) for lv, r in level_runs.items() if r[0] == 0}
    assert len(got) == len(_cpu.available_levels())
    base = got["generic"]
    for level, w in got.items():
        np.testing.assert_allclose(w, base, rtol=0.05, atol=2e-3, err_msg=level)


# ---------------------------------------------------------------- bfloat16
def test_bfloat16_state_layout(problem):
    clf = _fit(problem, precision="bfloat16")
    W = clf._model["W_out"]
    H = W.shape[1]
    w16, mv16 = clf._opt["w16_out"], clf._opt["mv16_out"]
    assert w16.dtype == np.uint16 and w16.shape == W.shape
    assert mv16.dtype == np.uint16 and mv16.shape == (W.shape[0], 2 * H)
    assert "m_out" not in clf._opt and "v_out" not in clf._opt
    # the model's float32 weights are exactly the bfloat16 ones trained, synced after fit
    np.testing.assert_array_equal(W, _bf16.from_bf16(w16))
    assert not clf._opt["dirty_out"].any()
    m = _bf16.from_bf16(np.ascontiguousarray(mv16[:, :H]))
    v = _bf16.from_bf16(np.ascontiguousarray(mv16[:, H:]))
    assert np.isfinite(m).all() and (v >= 0).all() and v.max() > 0


def test_bfloat16_learns_like_float32(problem):
    _, _, Xte, Yte = problem
    f32 = _fit(problem, max_iter=6)
    b16 = _fit(problem, max_iter=6, precision="bfloat16")
    s32, s16 = f32.score(Xte, Yte), b16.score(Xte, Yte)
    assert s32 > 0.5
    assert abs(s32 - s16) <= 0.05


def test_bfloat16_stochastic_moments_track_float32():
    """Moments stored with stochastic rounding follow the float32 ones on average: the
    second moment is not stuck (a plain round-to-nearest bf16 v cannot decay by
    beta_2 = 0.999 per step)."""
    X, Y = make_extreme_classification(n_samples=600, n_features=200, n_labels=30,
                                       random_state=1)
    kw = dict(hidden_layer_sizes=(16,), max_iter=8, batch_size=30, n_jobs=1,
              random_state=0, min_active=30, learning_rate=1e-3)
    f32 = SlideClassifier(**kw).fit(X, Y)
    b16 = SlideClassifier(precision="bfloat16", **kw).fit(X, Y)
    H = 16
    v16 = _bf16.from_bf16(np.ascontiguousarray(b16._opt["mv16_out"][:, H:]))
    ratio = v16.sum() / f32._opt["v_out"].sum()
    assert 0.8 < ratio < 1.25, ratio


def test_bfloat16_precision_switch_and_pickle(problem):
    Xtr, Ytr, Xte, Yte = problem
    clf = _fit(problem, precision="bfloat16")
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone.predict_topk(Xte, k=3)[0], clf.predict_topk(Xte, k=3)[0])
    H = clf._model["W_out"].shape[1]
    m16 = clf._opt["mv16_out"][:, :H].copy()
    clf.set_params(precision="float32").partial_fit(Xtr[:64], Ytr[:64])
    assert "w16_out" not in clf._opt and clf._opt["m_out"].dtype == np.float32
    clone.set_params(precision="float32")._set_output_precision("float32")
    np.testing.assert_array_equal(clone._opt["m_out"], _bf16.from_bf16(m16))
    clf.set_params(precision="bfloat16").partial_fit(Xtr[:64], Ytr[:64])
    assert "w16_out" in clf._opt and "m_out" not in clf._opt
    assert clf.score(Xte, Yte) > 0.4


def test_bad_precision(problem):
    Xtr, Ytr, _, _ = problem
    with pytest.raises(ValueError, match="precision"):
        SlideClassifier(precision="float16").fit(Xtr, Ytr)


def test_bfloat16_bibtex(shared_data):
    """On real data (Bibtex) bfloat16 reaches the float32 model's P@1 within 3 points."""
    Xtr, Ytr = load_xc_repository(shared_data / "bibtex" / "train.txt")
    Xte, Yte = load_xc_repository(shared_data / "bibtex" / "test.txt")
    scores = {}
    for precision in ("float32", "bfloat16"):
        clf = SlideClassifier(hidden_layer_sizes=(128,), max_iter=5, random_state=0,
                              n_jobs=2, precision=precision).fit(Xtr, Ytr)
        top, _ = clf.predict_topk(Xte, k=1)
        scores[precision] = precision_at_k(Yte, top, k=1)
    assert scores["float32"] > 0.5
    assert abs(scores["float32"] - scores["bfloat16"]) < 0.03, scores
