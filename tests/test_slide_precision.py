"""SlideClassifier's CPU levels and precisions: the transposed output gradient, the
dispatched vector kernels (each level in its own process, since the level is chosen at
import), the branch-free (D)WTA codes and precision="bfloat16"."""
import pickle

import numpy as np
import pytest
from conftest import level_result, run_at_every_level

from slidelearn import SlideClassifier
from slidelearn._slide import _hashing, _network, _testing
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
                  random_state=0, n_tables=8, bucket_size=16, min_active=20,
                  negative_sampling="lsh")
    params.update(kw)
    return SlideClassifier(**params).fit(Xtr, Ytr)


def test_transposed_gradient_is_the_scattered_one(problem, monkeypatch):
    """The output gradient formed per neuron from the batch records equals the one
    scattered into an (n_labels, H) array, bit for bit (same sums, same order)."""
    transposed = _fit(problem)
    assert _testing.workspace(transposed).transposed
    _testing.scattered_output_gradient(monkeypatch)
    scattered = _fit(problem)
    assert not _testing.workspace(scattered).transposed
    a, b = _testing.state(transposed), _testing.state(scattered)
    for key in ("W_out", "b_out", "W_in", "dense", "m_out", "v_out", "m_in"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), key)


def test_transposed_gradient_threads_agree(problem):
    """The per-neuron sums are race-free: after one batch (whose forward passes all
    read the weights from before the step), 1 and 2 threads give the same output
    layer up to rounding (each thread fills the active set in its own random order,
    which changes the order of the softmax sums, nothing else)."""
    one = _fit(problem, min_active=60, n_jobs=1, batch_size=1000, max_iter=1)
    two = _fit(problem, min_active=60, n_jobs=2, batch_size=1000, max_iter=1)
    one, two = _testing.state(one), _testing.state(two)
    np.testing.assert_allclose(one.W_out, two.W_out, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(one.v_out, two.v_out, rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_output_adam_is_the_same_on_any_number_of_threads(problem, precision):
    """Threads apply the sorted records of contiguous blocks of neurons, no two to one
    neuron: the same batch records give bit-identical weights, moments and biases on
    1, 2 and 3 threads."""
    import copy

    Xtr, Ytr, _, _ = problem
    clf = _fit(problem, max_iter=1, precision=precision)
    X = Xtr.tocsr().astype(np.float32)
    Y = Ytr.tocsr()
    work = _testing.workspace(clf, 3, int(np.diff(Y.indptr).max()))
    rows = np.arange(clf.batch_size, dtype=np.int64)
    _testing.train_batch(clf, X, Y.indptr.astype(np.int64), Y.indices.astype(np.int32), rows,
                         work, min_active=clf.min_active, threshold=clf.active_threshold,
                         seed=7)
    got = []
    for T in (1, 2, 3):
        state = copy.deepcopy(_testing.state(clf))
        n = _network.output_adam(state, work, len(rows), 1e-2, 0.9, 0.999, 1e-8, 1e-4, 5, T,
                                 seed=3)
        got.append((n, state))
    n1, state1 = got[0]
    assert 40 < n1 <= Ytr.shape[1]  # 64 rows with min_active 20: most of the 60
    # the step happened (bfloat16: in the halves; W_out is synced by the estimator)
    key = "w16_out" if precision == "bfloat16" else "W_out"
    before = _testing.state(clf)
    assert not np.array_equal(getattr(state1, key), getattr(before, key))
    assert not np.array_equal(state1.b_out, before.b_out)
    for n, state in got[1:]:
        assert n == n1
        for key, arr in state1.arrays().items():
            np.testing.assert_array_equal(getattr(state, key), arr, key)


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
        codes, _ = _testing.hash_codes(p, v)
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
from slidelearn._slide import _testing
from slidelearn.datasets import make_extreme_classification
from slidelearn.utils import _cpu
X, Y = make_extreme_classification(n_samples=700, n_features=300, n_labels=40,
                                   random_state=0)
out = {"level": _cpu.cpu_level(), "vector_levels": list(_testing.vector_levels())}
arrays = []
for precision in ("float32", "bfloat16"):
    clf = SlideClassifier(hidden_layer_sizes=(32,), max_iter=3, batch_size=50, n_jobs=1,
                          random_state=0, n_tables=6, bucket_size=16, min_active=40,
                          precision=precision).fit(X[:600], Y[:600])
    out[precision] = clf.score(X[600:], Y[600:])
    arrays.append(clf.coefs_[-1].ravel())
# the sum-of-rows kernel of this level against its loop (H = 136: blocks and a tail)
from slidelearn.utils import _bf16
rng = np.random.default_rng(0)
R = rng.standard_normal((30, 136)).astype(np.float32)
ids = rng.integers(0, 30, size=200).astype(np.int32)
alpha = rng.standard_normal(200).astype(np.float32)
out["sum_rows_exact"] = [
    bool(np.array_equal(_testing.sum_rows(alpha, ids, M), _testing.sum_rows(alpha, ids, M, loop=True)))
    for M in (R, _bf16.to_bf16(R))]
# the softmax kernels' exp at this level against float64: shifted, down to where exp
# leaves the normal floats, with -inf (a masked logit) and NaN
x = np.concatenate([rng.uniform(-95.0, 0.0, 20000), [0.0, -1e-30, -87.33, -87.34, -88.0],
                    -np.logspace(-8, 2, 2000)]).astype(np.float32) + np.float32(3.5)
x = np.append(x, np.float32(-np.inf))
e = x.copy()
total = _testing.exp_shift_sum(e, np.float32(3.5))
ref = np.exp(x.astype(np.float64) - 3.5)
normal = ref >= np.finfo(np.float32).tiny
out["exp_rel_err"] = float(np.max(np.abs(e[normal] - ref[normal]) / ref[normal]))
out["exp_zero_below"] = bool(np.all(e[~normal] <= ref[~normal] * 1.01 + 1e-44)
                             and e[-1] == 0.0 and np.all(e[x - 3.5 < -87.34] == 0.0))
out["exp_sum_rel_err"] = float(abs(total - e.astype(np.float64).sum()) / e.sum())
nan = np.array([0.0, np.nan, -1.0], np.float32)
_testing.exp_shift_sum(nan, np.float32(0.0))
out["exp_nan"] = [bool(np.isnan(v)) for v in nan]
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
    assert res["sum_rows_exact"] == [True, True]
    # the vectorised exp: within a few float32 ulps, 0 below the normal floats and for
    # -inf, NaN kept; its sum in lanes within float32 rounding of the float64 sum
    assert res["exp_rel_err"] < 2.5e-7, res["exp_rel_err"]
    assert res["exp_zero_below"] and res["exp_nan"] == [False, True, False]
    assert res["exp_sum_rel_err"] < 1e-5


def test_levels_agree(level_runs):
    """Every all-neurons-active model agrees across levels up to rounding (the levels
    differ in FMA contraction and summation order, bfloat16 in its dot products)."""
    got = {lv: np.load(r[3]) for lv, r in level_runs.items() if r[0] == 0}
    assert len(got) == len(_cpu.available_levels())
    base = got["generic"]
    for level, w in got.items():
        np.testing.assert_allclose(w, base, rtol=0.05, atol=2e-3, err_msg=level)


# ---------------------------------------------------------------- bfloat16
def _join(w16, s16):
    """The float32 weights of the halves (reference for sl_join_round)."""
    H = w16.shape[1]
    lo = s16[:, :H].astype(np.uint32)
    hi = (w16.astype(np.int64) - (lo >= 0x8000)).astype(np.uint32) & 0xFFFF
    return ((hi << 16) | lo).view(np.float32)


def test_bfloat16_state_layout(problem):
    clf = _fit(problem, precision="bfloat16")
    st = _testing.state(clf)
    W = st.W_out
    H = W.shape[1]
    w16, s16 = st.w16_out, st.s16_out
    assert w16.dtype == np.uint16 and w16.shape == W.shape
    assert s16.dtype == np.uint16 and s16.shape == (W.shape[0], 3 * H)  # H = 32: 3 H
    assert _network.bf16_state_width(H) == 3 * H  # is a multiple of 64 bytes
    assert st.m_out is None and st.v_out is None and st.precision == "bfloat16"
    # W_out is exactly the float32 weights the halves hold (synced after fit), and the
    # upper halves are their rounding to nearest bfloat16; an exact tie (lower half
    # 0x8000, one weight in 65,536) is rounded half up on the bits (_adam16.h), where
    # to_bf16 rounds it to even
    np.testing.assert_array_equal(W, _join(w16, s16))
    bits = W.view(np.uint32)
    tie = (bits & 0xFFFF) == 0x8000
    np.testing.assert_array_equal(w16[~tie], _bf16.to_bf16(W)[~tie])
    np.testing.assert_array_equal(w16[tie], (bits[tie] >> 16) + 1)
    assert not st.dirty_out.any()
    m = _bf16.from_bf16(np.ascontiguousarray(s16[:, H:2 * H]))
    v = _bf16.from_bf16(np.ascontiguousarray(s16[:, 2 * H:3 * H]))
    assert np.isfinite(m).all() and (v >= 0).all() and v.max() > 0
    # the biases train in float32 arrays of their own, as with precision="float32"
    assert st.b_out.dtype == np.float32 and st.b_out.any()
    assert (st.vb_out > 0).any()
    assert [_network.bf16_state_width(h) for h in (1, 16, 20, 128)] == [32, 64, 64, 384]


def _split(W, n_threads=1):
    """W in the bfloat16 state."""
    n, H = W.shape
    w16 = np.zeros((n, H), dtype=np.uint16)
    s16 = np.zeros((n, _network.bf16_state_width(H)), dtype=np.uint16)
    _network.split_bf16_rows(W, w16, s16, n_threads)
    return w16, s16


def test_bfloat16_halves_are_exact_for_every_bit_pattern():
    """split_bf16_rows / sync_bf16_rows round-trip every float32 bit pattern class
    (signed zeros, denormals, ties, the largest finite values, infinities); NaN stays
    NaN, and the upper half
    is the round-to-nearest bfloat16 except at exact ties (rounded up in magnitude) and
    for NaN."""
    rng = np.random.default_rng(0)
    bits = np.concatenate([
        np.array([0, 0x80000000, 1, 0x8000ffff, 0x00008000, 0x3f808000, 0x3f818000,
                  0x7f7fffff, 0xff7f8000, 0x7f800000, 0xff800000, 0x7fc00000,
                  0x7fffffff, 0xffff8001, 0x3f7fffff, 0x0000ffff], dtype=np.uint32),
        rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)])
    W = np.ascontiguousarray(bits.reshape(-1, 8).view(np.float32))
    n, H = W.shape
    w16, s16 = _split(W, 2)
    back = np.full_like(W, -1.0)
    dirty = np.ones(-(-n // _network.DIRTY_ROWS), dtype=np.uint8)
    assert _network.sync_bf16_rows(w16, s16, back, dirty, 2) == n
    nan = np.isnan(W)
    np.testing.assert_array_equal(back.view(np.uint32)[~nan], W.view(np.uint32)[~nan])
    assert np.isnan(back[nan]).all() and nan.any()
    u = W.view(np.uint32)
    tie = (u & 0xFFFF) == 0x8000
    rne = _bf16.to_bf16(W)
    np.testing.assert_array_equal(w16[~tie & ~nan], rne[~tie & ~nan])
    np.testing.assert_array_equal(w16[tie & ~nan], ((u[tie & ~nan] >> 16) + 1).astype(np.uint16))


def test_bfloat16_learns_like_float32(problem):
    _, _, Xte, Yte = problem
    f32 = _fit(problem, max_iter=6)
    b16 = _fit(problem, max_iter=6, precision="bfloat16")
    s32, s16 = f32.score(Xte, Yte), b16.score(Xte, Yte)
    assert s32 > 0.5
    assert abs(s32 - s16) <= 0.05


def _random_bf16_rows(rng, n, H):
    """n output rows at precision="bfloat16": rounded weights ``w16`` and state rows
    ``s16`` (random lower halves, small bfloat16 moments, random padding)."""
    w16 = _bf16.to_bf16((rng.standard_normal((n, H)) * 0.1).astype(np.float32))
    s16 = rng.integers(0, 2**16, size=(n, _network.bf16_state_width(H)), dtype=np.uint16)
    s16[:, H:3 * H] = _bf16.to_bf16(
        np.abs(rng.standard_normal((n, 2 * H)) * 1e-3).astype(np.float32))
    return w16, s16


@pytest.mark.parametrize("H", [7, 31, 32, 48, 100, 128, 130])
def test_bfloat16_adam_block_kernel_is_the_loop(H):
    """At the AVX-512 levels the bfloat16 Adam row runs 32 elements a step as even and
    odd halves (``_adam16.h``); it must give the values of the portable loop compiled
    for the same level bit for bit: weights, lower halves and both moments, random bits
    of v included, with NaN and infinite weights and gradients, zero moments, and row
    widths that leave a tail of 1 to 31 elements (or no block at all)."""
    if _testing.vector_levels()[0] < 2:
        pytest.skip("this process runs below the AVX-512 level: no block kernel")
    rng = np.random.default_rng(H)
    n = 40
    w16, s16 = _random_bf16_rows(rng, n, H)
    s16[0, H:3 * H] = 0  # fresh moments
    w16[1, :3] = [0x7FC1, 0x7F80, 0xFF80]  # NaN, +inf, -inf weights
    g = (rng.standard_normal((n, H)) * 1e-2).astype(np.float32)
    g[2, 0], g[3, H - 1] = np.nan, np.inf
    w_a, s_a, w_b, s_b = w16.copy(), s16.copy(), w16.copy(), s16.copy()
    for step in range(5):
        _testing.adam16_rows(w_a, s_a, g, 1e-3, 0.9, 0.999, 1e-8, 1e-4, 77 * step)
        _testing.adam16_rows(w_b, s_b, g, 1e-3, 0.9, 0.999, 1e-8, 1e-4, 77 * step, loop=True)
    np.testing.assert_array_equal(w_a, w_b)
    np.testing.assert_array_equal(s_a[:, :3 * H], s_b[:, :3 * H])
    assert not np.array_equal(w_a, w16)  # the rows did move
    assert np.isnan(_bf16.from_bf16(w_a[1, :1])).all()


@pytest.mark.parametrize("H", [7, 31, 32, 48, 100, 128, 130])
@pytest.mark.parametrize("n_rec", [1, 2, 9])
def test_bfloat16_adam_from_records_is_gradient_then_step(H, n_rec):
    """``output_adam`` at precision="bfloat16" sums a neuron's gradient from its
    records (dz times the sample's bfloat16 activations) inside the Adam kernel: the
    weights, lower halves and moments must be those of summing the gradient row first
    (one axpy a record) and then the row step, bit for bit, at every width."""
    rng = np.random.default_rng(100 * H + n_rec)
    n = 12
    w16, s16 = _random_bf16_rows(rng, n, H)
    Hb16 = _bf16.to_bf16(np.maximum(rng.standard_normal((20, H)), 0).astype(np.float32))
    Hb16[5, 0] = 0x7FC1  # a NaN activation
    rows = rng.integers(0, 20, size=n_rec).astype(np.int32)
    dz = (rng.standard_normal(n_rec) * 1e-2).astype(np.float32)
    w_a, s_a, w_b, s_b = w16.copy(), s16.copy(), w16.copy(), s16.copy()
    for step in range(4):
        _testing.adam16_records(w_a, s_a, dz, rows, Hb16, 1e-3, 0.9, 0.999, 1e-8, 1e-4,
                                31 * step)
        _testing.adam16_records(w_b, s_b, dz, rows, Hb16, 1e-3, 0.9, 0.999, 1e-8, 1e-4,
                                31 * step, loop=True)
    np.testing.assert_array_equal(w_a, w_b)
    np.testing.assert_array_equal(s_a[:, :3 * H], s_b[:, :3 * H])
    assert not np.array_equal(w_a, w16)


@pytest.mark.parametrize("H", [8, 16, 31, 32, 48, 100, 128, 130, 160, 264])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_sum_of_rows_kernel_is_the_loop(H, precision):
    """The gradient of the last hidden layer, the sum of dz * (output row) over a
    sample's active neurons, keeps its sums in registers (``sl_sum_rows`` and its
    bfloat16 version): it must equal zeroing and one axpy a row bit for bit, for
    widths with blocks of 128, 32 (16) and a tail, repeated rows, NaN and inf, and
    no rows at all; and the exact sum up to float32 rounding."""
    rng = np.random.default_rng(H)
    X = rng.standard_normal((50, H)).astype(np.float32)
    X[3, 0], X[4, H - 1] = np.nan, np.inf
    if precision == "bfloat16":
        X = _bf16.to_bf16(X)
        Xf = _bf16.from_bf16(X).astype(np.float64)
    else:
        Xf = X.astype(np.float64)
    ids = rng.integers(5, 50, size=300).astype(np.int32)
    ids[:40] = 7  # one row many times
    alpha = rng.standard_normal(300).astype(np.float32)
    got = _testing.sum_rows(alpha, ids, X)
    np.testing.assert_array_equal(got, _testing.sum_rows(alpha, ids, X, loop=True))
    want = alpha.astype(np.float64) @ Xf[ids]
    scale = np.abs(alpha).astype(np.float64) @ np.abs(Xf[ids])  # bounds the rounding
    assert (np.abs(got - want) <= 1e-5 * scale).all()
    # the NaN and inf rows poison the columns they sit in, as the loop does
    bad = np.append(ids[:5], [3, 4]).astype(np.int32)
    got = _testing.sum_rows(np.ones(7, np.float32), bad, X)
    assert np.isnan(got[0]) and not np.isfinite(got[H - 1])
    np.testing.assert_array_equal(got, _testing.sum_rows(np.ones(7, np.float32), bad, X,
                                                         loop=True))
    empty = _testing.sum_rows(np.zeros(0, np.float32), np.zeros(0, np.int32), X)
    assert empty.shape == (H,) and not empty.any()
    with pytest.raises(ValueError, match="out of range"):
        _testing.sum_rows(alpha[:1], np.array([50], np.int32), X)


def test_bfloat16_stochastic_moments_track_float32():
    """The second moment, stored with stochastic rounding, follows the float32 one on
    average: it is not stuck (a plain round-to-nearest bf16 v cannot decay by
    beta_2 = 0.999 per step); the first, rounded to nearest, follows it too."""
    X, Y = make_extreme_classification(n_samples=600, n_features=200, n_labels=30,
                                       random_state=1)
    # the softmax (bfloat16 trains nothing else; loss="auto" would be one-vs-all here)
    kw = dict(hidden_layer_sizes=(16,), max_iter=8, batch_size=30, n_jobs=1,
              random_state=0, min_active=30, learning_rate=1e-3, loss="softmax")
    f32 = SlideClassifier(**kw).fit(X, Y)
    b16 = SlideClassifier(precision="bfloat16", **kw).fit(X, Y)
    H = 16
    s16 = _testing.state(b16).s16_out
    v16 = _bf16.from_bf16(np.ascontiguousarray(s16[:, 2 * H:3 * H]))
    ratio = v16.sum() / _testing.state(f32).v_out.sum()
    assert 0.8 < ratio < 1.25, ratio
    m16 = _bf16.from_bf16(np.ascontiguousarray(s16[:, H:2 * H]))
    m32 = _testing.state(f32).m_out
    assert np.corrcoef(m16.ravel(), m32.ravel())[0, 1] > 0.9


def test_bfloat16_weights_take_steps_below_their_rounding(problem):
    """Adam steps far below half a bfloat16 step of the weights (lr 1e-5 on weights of
    about 0.2, whose bfloat16 spacing is about 1e-3) move the weights as in float32
    training: the update is exact, in the lower halves. Weights stored in bfloat16
    alone, rounded to nearest, would not move at all."""
    Xtr, Ytr, _, _ = problem
    kw = dict(hidden_layer_sizes=(32,), batch_size=100, n_jobs=1, random_state=0,
              min_active=60, learning_rate=1e-5, alpha=0.0, loss="softmax")
    f32 = SlideClassifier(**kw).partial_fit(Xtr, Ytr, classes=np.arange(Ytr.shape[1]))
    b16 = pickle.loads(pickle.dumps(f32)).set_params(precision="bfloat16")
    _testing.state(b16).set_output_precision("bfloat16", 1)
    W0 = f32.coefs_[-1].copy()
    np.testing.assert_array_equal(b16.coefs_[-1], W0)  # converted exactly
    for _ in range(10):
        f32.partial_fit(Xtr, Ytr)
        b16.partial_fit(Xtr, Ytr)
    d_f = (f32.coefs_[-1] - W0).ravel()
    d_b = (b16.coefs_[-1] - W0).ravel()
    steps = _testing.state(b16).step - 10  # Adam steps after the conversion (10 a call)
    assert steps == 100 and np.abs(W0).mean() > 0.1
    assert np.abs(d_f).max() / steps < 3e-5  # each step: a few % of a bfloat16 spacing
    assert np.count_nonzero(d_b) > 0.9 * d_b.size
    assert np.corrcoef(d_f, d_b)[0, 1] > 0.9
    assert 0.8 < d_b.sum() / d_f.sum() < 1.25


def test_sync_bf16_rows_writes_the_marked_rows():
    """Rows are synced by marked blocks of DIRTY_ROWS rows, the last one short."""
    B = _network.DIRTY_ROWS
    n = 3 * B + 5
    W0 = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)
    w16, s16 = _split(W0)
    W = np.zeros((n, 16), dtype=np.float32)
    dirty = np.zeros(4, dtype=np.uint8)
    dirty[[1, 3]] = 1
    assert _network.sync_bf16_rows(w16, s16, W, dirty, 2) == B + 5
    written = np.r_[B:2 * B, 3 * B:n]
    untouched = np.setdiff1d(np.arange(n), written)
    np.testing.assert_array_equal(W[written], W0[written])
    assert not W[untouched].any() and not dirty.any()
    with pytest.raises(ValueError, match="does not match"):
        _network.sync_bf16_rows(w16, s16, W, np.zeros(3, dtype=np.uint8), 1)
    with pytest.raises(ValueError, match="does not match"):
        _network.sync_bf16_rows(w16[:, :8].copy(), s16, W, dirty, 1)
    with pytest.raises(ValueError, match="does not match"):
        _network.split_bf16_rows(W0, w16, s16[:, :32].copy(), 1)
    with pytest.raises(ValueError, match="does not match"):
        _network.split_bf16_rows(W0[:5].copy(), w16, s16, 1)


def test_bfloat16_early_stopping_restores_a_consistent_model(problem):
    """Early stopping scores W_out (synced before each score) and restores the best
    epoch's state: afterwards W_out is still exactly the halves, and nothing is marked
    as unsynced."""
    clf = _fit(problem, precision="bfloat16", max_iter=8, early_stopping=True,
               n_iter_no_change=2, tol=0.05)
    assert clf.n_iter_ < 8  # stopped early: the state was restored from a snapshot
    st = _testing.state(clf)
    np.testing.assert_array_equal(st.W_out, _join(st.w16_out, st.s16_out))
    assert not st.dirty_out.any()


def test_bfloat16_weights_synced_when_training_fails(problem, monkeypatch):
    """W_out follows the bfloat16 weights even when a fit stops on an error."""
    Xtr, Ytr, _, _ = problem
    clf = _fit(problem, precision="bfloat16", max_iter=1)
    _testing.fail_on_batch(monkeypatch, 3, KeyboardInterrupt)
    W0 = clf.coefs_[-1].copy()
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(Xtr, Ytr)
    st = _testing.state(clf)
    assert not np.array_equal(st.W_out, W0)
    np.testing.assert_array_equal(st.W_out, _join(st.w16_out, st.s16_out))
    assert not st.dirty_out.any()


def test_bfloat16_precision_switch_and_pickle(problem):
    Xtr, Ytr, Xte, Yte = problem
    clf = _fit(problem, precision="bfloat16")
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone.predict_topk(Xte, k=3)[0], clf.predict_topk(Xte, k=3)[0])
    st = _testing.state(clf)
    H = st.W_out.shape[1]
    m16 = st.s16_out[:, H:2 * H].copy()
    clf.set_params(precision="float32").partial_fit(Xtr[:64], Ytr[:64])
    assert st.w16_out is None and st.m_out.dtype == np.float32 and st.precision == "float32"
    _testing.state(clone.set_params(precision="float32")).set_output_precision("float32", 1)
    np.testing.assert_array_equal(_testing.state(clone).m_out, _bf16.from_bf16(m16))
    clf.set_params(precision="bfloat16").partial_fit(Xtr[:64], Ytr[:64])
    assert st.w16_out is not None and st.m_out is None
    assert clf.score(Xte, Yte) > 0.4


def test_bfloat16_model_with_bias_tails_trains_on(problem):
    """A model pickled with the earlier state rows [lo | m | v | b, mb, vb] (the bias
    state was synced into b_out / mb_out / vb_out) keeps its weights and moments and
    trains on."""
    Xtr, Ytr, Xte, Yte = problem
    clf = _fit(problem, precision="bfloat16")
    st = _testing.state(clf)
    H = st.W_out.shape[1]
    s16 = st.s16_out
    old = np.zeros((s16.shape[0], 3 * H + 32), dtype=np.uint16)  # H = 32: tails + pad
    old[:, :3 * H] = s16
    old[:, 3 * H:3 * H + 6] = 12345  # stale tails: must not be read
    st.s16_out = old
    clone = pickle.loads(pickle.dumps(clf))
    _testing.state(clone).align_rows()  # what the next fit does first with an unpickled model
    np.testing.assert_array_equal(_testing.state(clone).s16_out, s16)
    clone.partial_fit(Xtr[:64], Ytr[:64])
    assert clone.score(Xte, Yte) > 0.4
    cs = _testing.state(clone)
    np.testing.assert_array_equal(cs.W_out, _join(cs.w16_out, cs.s16_out))
    f32 = _testing.state(pickle.loads(pickle.dumps(clf)).set_params(precision="float32"))
    f32.align_rows()
    f32.set_output_precision("float32", 1)
    np.testing.assert_array_equal(f32.m_out,
                                  _bf16.from_bf16(np.ascontiguousarray(s16[:, H:2 * H])))


@pytest.mark.parametrize("sampling", ["lsh", "log_uniform"])
def test_bfloat16_callback_sees_the_epochs_model(problem, sampling):
    """A callback that predicts during a bfloat16 fit sees the weights trained so far,
    not the float32 copy of before the fit (training steps the bfloat16 halves)."""
    Xtr, Ytr, Xte, _ = problem
    seen = []

    def callback(est, info):
        seen.append((est.coefs_[-1].copy(), est.predict_topk(Xte, k=3)[0]))

    clf = SlideClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0, n_jobs=2,
                          min_active=10, negative_sampling=sampling, precision="bfloat16",
                          early_stopping=False, callback=callback).fit(Xtr, Ytr)
    assert len(seen) == 3
    assert not np.array_equal(seen[0][0], seen[2][0])  # each epoch's own weights
    np.testing.assert_array_equal(seen[-1][0], clf.coefs_[-1])
    np.testing.assert_array_equal(seen[-1][1], clf.predict_topk(Xte, k=3)[0])


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
