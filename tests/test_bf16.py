"""BF16 conversions, split-SGD and the BF16 GEMM (slidelearn.utils._bf16), and the CPU
dispatch levels (slidelearn.utils._cpu): every level this machine has is run in its own
process, since the level is chosen at import."""
import doctest
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import slidelearn
from slidelearn.utils import _bf16 as bf
from slidelearn.utils import _cpu

# ---------------------------------------------------------------- shared checks
# Run in this process (current level) and in one subprocess per forced level.
CHECKS = r'''
import numpy as np
from slidelearn.utils import _bf16 as bf


def ref_bf16(x):
    """numpy reference: round to nearest even on the uint32 bits, NaN quieted."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((u >> 16) | 0x40) & 0xFFFF, r).astype(np.uint16)


EDGES = [  # (float32 bits, expected bfloat16 bits)
    (0x3F800000, 0x3F80), (0xBF800000, 0xBF80),          # +-1
    (0x3F808000, 0x3F80), (0x3F818000, 0x3F82),          # ties: down to even, up to even
    (0xBF808000, 0xBF80), (0xBF818000, 0xBF82),          # the same, negative
    (0x3F808001, 0x3F81), (0x3F807FFF, 0x3F80),          # just above / below a tie
    (0x7F800000, 0x7F80), (0xFF800000, 0xFF80),          # +-inf
    (0x7FC00000, 0x7FC0), (0xFFC00000, 0xFFC0),          # quiet NaNs
    (0x7F800001, 0x7FC0), (0xFF800001, 0xFFC0),          # signalling NaNs: quieted, not inf
    (0x7FFFFFFF, 0x7FFF), (0xFFFFFFFF, 0xFFFF),          # all mantissa bits: no wrap
    (0x7F7FFFFF, 0x7F80), (0xFF7FFFFF, 0xFF80),          # largest float: rounds to inf
    (0x7F7F8000, 0x7F80),                                # tie above max bf16, odd: inf
    (0x7F7F7FFF, 0x7F7F), (0x7F7F0000, 0x7F7F),          # below the tie: max bf16 stays
    (0x7F7E8000, 0x7F7E),                                # tie, even: stays finite
    (0x00008000, 0x0000), (0x00018000, 0x0002),          # denormal ties
    (0x00007FFF, 0x0000), (0x00000001, 0x0000),          # tiny denormals round to zero
    (0x80000001, 0x8000),                                # ... keeping the sign
    (0x00010000, 0x0001), (0x00010001, 0x0001),          # smallest bf16 denormal
    (0x007FFFFF, 0x0080),                                # largest denormal: to min normal
    (0x80000000, 0x8000), (0x00000000, 0x0000),          # -0.0, +0.0
]


def check_conversions(rng):
    bits = np.array([b for b, _ in EDGES], dtype=np.uint32)
    x = bits.view(np.float32)
    got = bf.to_bf16(x)
    assert [int(v) for v in got] == [e for _, e in EDGES], [hex(v) for v in got]
    assert np.array_equal(got, ref_bf16(x))
    back = bf.from_bf16(got)
    assert np.array_equal(np.isnan(back), np.isnan(x))
    assert np.array_equal(np.signbit(back), np.signbit(x))
    assert np.array_equal(np.isinf(back), np.isinf(x) | (np.abs(x) >= 3.3961776e38))
    for n in (1, 7, 15, 16, 17, 31, 33, 100, 1000, 40000):
        with np.errstate(over="ignore"):   # some overflow to inf, on purpose
            v = (rng.standard_normal(n) * 10.0 ** rng.integers(-45, 39, n)).astype(np.float32)
        v[rng.random(n) < 0.01] = np.nan
        for nt in (1, 2):
            assert np.array_equal(bf.to_bf16(v, n_threads=nt), ref_bf16(v))
        u = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
        assert np.array_equal(bf.to_bf16(u), ref_bf16(u))   # every bit pattern
        h = rng.integers(0, 2**16, n, dtype=np.uint16)
        assert np.array_equal(bf.from_bf16(h).view(np.uint32), h.astype(np.uint32) << 16)
    x2 = rng.standard_normal((3, 5, 7)).astype(np.float32)
    assert bf.to_bf16(x2).shape == x2.shape
    assert np.array_equal(bf.to_bf16(x2[:, ::2]), ref_bf16(x2[:, ::2]))  # strided input


def check_split_sgd(rng):
    special = np.array([0.0, -0.0, 1e-40, -1e-45, 3.4e38, np.inf, -np.inf, np.nan],
                       np.float32)
    for w in (rng.standard_normal(1037).astype(np.float32), special):
        hi, lo = bf.split(w)
        assert np.array_equal(bf.join(hi, lo).view(np.uint32), w.view(np.uint32))
        assert np.array_equal(hi, (w.view(np.uint32) >> 16).astype(np.uint16))  # truncated
    w = rng.standard_normal((37, 29)).astype(np.float32)
    hi, lo = bf.split(w)
    for step in range(300):
        g = (rng.standard_normal(w.shape) * 10.0 ** rng.integers(-8, 2)).astype(np.float32)
        lr = float(np.float32(10.0 ** rng.uniform(-4, 0)))
        w = w - np.float32(lr) * g
        bf.sgd_split_(hi, lo, g, lr, n_threads=1 + step % 2)
        assert np.array_equal(bf.join(hi, lo).view(np.uint32), w.view(np.uint32)), step
    big = rng.standard_normal(50000).astype(np.float32)   # several parallel chunks
    hi, lo = bf.split(big)
    g = rng.standard_normal(big.shape).astype(np.float32)
    bf.sgd_split_(hi, lo, g, 0.37, n_threads=2)
    assert np.array_equal(bf.join(hi, lo), big - np.float32(0.37) * g)


def op_ref(A, B, ta, tb):
    a = bf.from_bf16(A).astype(np.float64)
    b = bf.from_bf16(B).astype(np.float64)
    return (a.T if ta else a), (b.T if tb else b)


def check_close(C, a, b, alpha, beta, C0):
    """fp32 accumulation of exact bf16 products: error below k eps sum |a b|."""
    ref = alpha * (a @ b) + (beta * C0.astype(np.float64) if beta else 0.0)
    k = a.shape[1]
    bound = (k + 4) * 2.0**-23 * (abs(alpha) * (np.abs(a) @ np.abs(b))
                                  + abs(beta) * np.abs(C0)) + 1e-37
    err = np.abs(C.astype(np.float64) - ref)
    assert np.all(err <= bound), (float((err / bound).max()), C.shape)


SHAPES = [(1, 1, 1), (1, 7, 33), (7, 1, 100), (33, 100, 7), (100, 33, 1), (15, 31, 2),
          (29, 65, 513), (14, 32, 1024), (130, 70, 259), (3, 250, 40)]


def check_gemm(rng, record=None):
    for (m, n, k) in SHAPES:
        for ta in (False, True):
            for tb in (False, True):
                A = bf.to_bf16(rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32))
                B = bf.to_bf16(rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32))
                a, b = op_ref(A, B, ta, tb)
                for alpha, beta in ((1.0, 0.0), (1.0, 1.0), (-0.5, 0.25)):
                    C0 = rng.standard_normal((m, n)).astype(np.float32)
                    if beta == 0.0:
                        C0[:] = np.nan               # beta == 0: C is never read
                    C = C0.copy()
                    out = bf.gemm_bf16(A, B, ta, tb, alpha, beta, C, n_threads=2)
                    assert out is C
                    check_close(C, a, b, alpha, beta, C0 if beta else np.zeros_like(C0))
                    if alpha == 1.0:
                        # a fixed tile grid: the same bits for any number of threads
                        for nt in (1, 3):
                            C1 = bf.gemm_bf16(A, B, ta, tb, alpha, beta, C0.copy(),
                                              n_threads=nt)
                            assert np.array_equal(C1, C, equal_nan=True), (m, n, k, ta, tb)
                    if record is not None:
                        record.append(C)
    # k = 0: an empty sum; m or n = 0: nothing to do
    C = np.ones((3, 4), np.float32)
    bf.gemm_bf16(np.zeros((3, 0), np.uint16), np.zeros((0, 4), np.uint16), beta=0.5, C=C)
    assert np.all(C == 0.5)
    assert bf.gemm_bf16(np.zeros((3, 0), np.uint16), np.zeros((0, 4), np.uint16)).sum() == 0
    assert bf.gemm_bf16(np.zeros((0, 5), np.uint16), np.zeros((5, 4), np.uint16)).shape == (0, 4)
    # strided (non-contiguous) inputs are copied
    X = bf.to_bf16(rng.standard_normal((40, 66)).astype(np.float32))
    C = bf.gemm_bf16(X[:, ::2], X[::2, 1::2], transb="T")
    a, b = op_ref(np.ascontiguousarray(X[:, ::2]), np.ascontiguousarray(X[::2, 1::2]), 0, 1)
    check_close(C, a, b, 1.0, 0.0, np.zeros_like(C))


def check_dot(rng):
    """bf16 dot products: fp32 accumulation of the exact bf16 products."""
    for d in (1, 31, 32, 33, 131):
        a = bf.to_bf16(rng.standard_normal((7, d)).astype(np.float32))
        b = bf.to_bf16(rng.standard_normal((7, d)).astype(np.float32))
        exact = (bf.from_bf16(a).astype(np.float64) * bf.from_bf16(b)).sum(axis=1)
        np.testing.assert_allclose(bf.dot_bf16(a, b), exact, rtol=1e-5, atol=1e-5)
        assert abs(float(bf.dot_bf16(a[0], b[0])) - exact[0]) <= 1e-5 * max(1, abs(exact[0]))


def run_all(record=None):
    rng = np.random.default_rng(1234)
    check_conversions(rng)
    check_split_sgd(rng)
    check_dot(rng)
    check_gemm(rng, record)
'''

_ns = {}
exec(compile(CHECKS, "<bf16 checks>", "exec"), _ns)


def test_conversions():
    _ns["check_conversions"](np.random.default_rng(0))


def test_split_and_sgd_split_are_exact():
    _ns["check_split_sgd"](np.random.default_rng(1))


def test_dot_bf16():
    _ns["check_dot"](np.random.default_rng(5))


def test_gemm_bf16():
    _ns["check_gemm"](np.random.default_rng(2))


def test_gemm_dense_layer_products():
    """Forward, dX and dW of a dense layer against float64 on the bf16 values."""
    rng = np.random.default_rng(3)
    X = bf.to_bf16(rng.standard_normal((64, 48)).astype(np.float32))
    W = bf.to_bf16(rng.standard_normal((40, 48)).astype(np.float32))
    dY = bf.to_bf16(rng.standard_normal((64, 40)).astype(np.float32))
    x, w, dy = (bf.from_bf16(v).astype(np.float64) for v in (X, W, dY))
    np.testing.assert_allclose(bf.gemm_bf16(X, W, "N", "T"), x @ w.T, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bf.gemm_bf16(dY, W), dy @ w, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(bf.gemm_bf16(dY, X, "T", "N"), dy.T @ x, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------- dispatch levels
_LEVEL_SCRIPT = CHECKS + r'''
import json, sys
from slidelearn.utils import _cpu
record = []
run_all(record)
np.save(sys.argv[1], np.concatenate([c.ravel() for c in record]))
print(json.dumps({"level": _cpu.cpu_level(), "bf16_level": bf.cpu_level()}))
'''


def _start_level(level, path, script=_LEVEL_SCRIPT, args=()):
    """Start the script in a fresh interpreter with SLIDELEARN_CPU_LEVEL=level."""
    env = dict(os.environ, SLIDELEARN_CPU_LEVEL=level)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(slidelearn.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    path.write_text(textwrap.dedent(script))
    return subprocess.Popen([sys.executable, str(path), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc):
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def level_results(tmp_path_factory):
    """Run the checks once per available level (concurrently: importing the package
    takes most of the time); keep the GEMM outputs of each."""
    started = {}
    for level in _cpu.available_levels():
        tmp = tmp_path_factory.mktemp(level)
        started[level] = (_start_level(level, tmp / "checks.py", args=(str(tmp / "gemm.npy"),)),
                          tmp / "gemm.npy")
    return {level: (_finish(proc), out) for level, (proc, out) in started.items()}


@pytest.mark.parametrize("level", _cpu.LEVELS)
def test_every_dispatch_level(level, level_results):
    if level not in _cpu.available_levels():
        pytest.skip(f"this CPU cannot run the {level} code path")
    proc, _ = level_results[level]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"level": level,
                                                                  "bf16_level": level}


def test_levels_agree(level_results):
    """All levels compute the same products up to fp32 accumulation order."""
    results = {lv: np.load(p) for lv, (proc, p) in level_results.items()
               if proc.returncode == 0}
    assert len(results) == len(_cpu.available_levels())
    base = results["generic"]
    for level, got in results.items():
        assert got.shape == base.shape
        np.testing.assert_allclose(got, base, rtol=2e-5, atol=2e-4, err_msg=level)


def test_level_variable(tmp_path):
    script = "from slidelearn.utils import _bf16, _cpu; print(_cpu.cpu_level())"
    top = _cpu.available_levels()[-1]
    cases = {"avx9000": None, " AVX2 ": "avx2", "": top, "avx512_bf16": top}
    procs = {name: _start_level(name, tmp_path / f"s{i}.py", script=script)
             for i, name in enumerate(cases)}
    res = {name: _finish(p) for name, p in procs.items()}
    assert res["avx9000"].returncode != 0 and "SLIDELEARN_CPU_LEVEL" in res["avx9000"].stderr
    for name, want in cases.items():
        if want is not None:  # case and spaces ignored; unset: the highest level
            assert res[name].returncode == 0, res[name].stderr
            assert res[name].stdout.split() == [want]
    if top != "avx512_bf16":  # above the CPU: warns and uses the highest level
        assert "RuntimeWarning" in res["avx512_bf16"].stderr


def test_cpu_module():
    assert _cpu.cpu_level() in _cpu.available_levels()
    assert _cpu.available_levels() == _cpu.LEVELS[:len(_cpu.available_levels())]
    assert bf.cpu_level() == _cpu.cpu_level()


# ---------------------------------------------------------------- errors
def test_bad_inputs_raise():
    a = np.zeros((4, 3), np.uint16)
    b = np.zeros((3, 5), np.uint16)
    with pytest.raises(TypeError, match="float32"):
        bf.to_bf16(np.ones(3))
    with pytest.raises(TypeError, match="uint16"):
        bf.from_bf16(np.ones(3, dtype=np.int16))
    with pytest.raises(ValueError, match="n_threads"):
        bf.to_bf16(np.ones(3, np.float32), n_threads=0)
    hi, lo = bf.split(np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match="same shape"):
        bf.sgd_split_(hi, lo, np.ones(3, dtype=np.float32), 0.1)
    with pytest.raises(ValueError, match="C-contiguous"):
        bf.sgd_split_(hi[::2], lo[::2], np.ones(2, dtype=np.float32), 0.1)
    with pytest.raises(TypeError, match="uint16"):
        bf.sgd_split_(hi.astype(np.int32), lo, np.ones(4, dtype=np.float32), 0.1)
    with pytest.raises(TypeError, match="float32"):
        bf.sgd_split_(hi, lo, np.ones(4), 0.1)
    with pytest.raises(ValueError, match="overlap"):
        bf.sgd_split_(hi, hi, np.ones(4, dtype=np.float32), 0.1)
    with pytest.raises(ValueError, match="same shape"):
        bf.join(hi, lo[:2])
    with pytest.raises(TypeError, match="uint16"):
        bf.gemm_bf16(a.astype(np.float32), b)
    with pytest.raises(ValueError, match="2-D"):
        bf.gemm_bf16(a[0], b)
    with pytest.raises(ValueError, match="inner dimensions"):
        bf.gemm_bf16(a, b, transa=True)
    with pytest.raises(ValueError, match="transb"):
        bf.gemm_bf16(a, b, transb="X")
    with pytest.raises(ValueError, match="transa"):
        bf.gemm_bf16(a, b, transa=2)
    with pytest.raises(ValueError, match="shape"):
        bf.gemm_bf16(a, b, C=np.zeros((5, 4), np.float32))
    with pytest.raises(TypeError, match="float32"):
        bf.gemm_bf16(a, b, C=np.zeros((4, 5)))
    with pytest.raises(ValueError, match="C-contiguous"):
        bf.gemm_bf16(a, b, C=np.zeros((5, 4), np.float32).T)
    ro = np.zeros((4, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        bf.gemm_bf16(a, b, C=ro)
    with pytest.raises(ValueError, match="beta"):
        bf.gemm_bf16(a, b, beta=1.0)
    with pytest.raises(ValueError, match="n_threads"):
        bf.gemm_bf16(a, b, n_threads=0)
    aliased = np.zeros(20, np.float32)
    with pytest.raises(ValueError, match="share memory"):
        bf.gemm_bf16(aliased.view(np.uint16)[:12].reshape(4, 3), b, C=aliased.reshape(4, 5))


@pytest.mark.parametrize("module", [bf, _cpu])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
