"""bfloat16 conversions, split-SGD and the bf16 dot product, on every CPU dispatch level
this machine has (each level in its own process: the level is chosen at import)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import slidelearn
from slidelearn.utils import _bfloat16 as bf

CHECKS = r'''
import numpy as np
from slidelearn.utils import _bfloat16 as bf


def ref_bf16(x):
    """Round to nearest, ties to even, on the bits; NaN quieted with its sign."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((u >> 16) | 0x40) & 0xFFFF, r).astype(np.uint16)


bits = np.array([
    0x3F800000, 0xBF800000,          # +-1
    0x3F808000, 0x3F818000,          # ties: to even down (lsb 0), up (lsb 1)
    0x3F808001, 0x3F807FFF,          # just above / below a tie
    0x7F800000, 0xFF800000,          # +-inf
    0x7FC00000, 0xFFC00000,          # quiet NaNs
    0x7F800001, 0xFF800001,          # signalling NaNs (must not become inf)
    0x7FFFFFFF,                      # NaN with all mantissa bits (must not wrap)
    0x7F7FFFFF, 0x7F7F7FFF,          # largest float: rounds to inf; below the tie: not
    0x00008000, 0x00018000,          # denormal ties
    0x00007FFF, 0x00000001,          # small denormals round to zero
    0x007FFFFF,                      # largest denormal rounds up to the smallest normal
    0x80000000, 0x00000000,          # -0.0, +0.0
], dtype=np.uint32)
x = bits.view(np.float32)
got = bf.to_bf16(x)
assert np.array_equal(got, ref_bf16(x)), [hex(v) for v in got]
expect = [0x3F80, 0xBF80, 0x3F80, 0x3F82, 0x3F81, 0x3F80, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0,
          0x7FC0, 0xFFC0, 0x7FFF, 0x7F80, 0x7F7F, 0x0000, 0x0002, 0x0000, 0x0000, 0x0080,
          0x8000, 0x0000]
assert [int(v) for v in got] == expect, [hex(v) for v in got]
back = bf.from_bf16(got)
assert np.all(np.isnan(back[8:13])) and np.array_equal(np.signbit(back), np.signbit(x))

rng = np.random.default_rng(0)
for n in (1, 15, 16, 17, 33, 1000):
    v = (rng.standard_normal(n) * 10.0 ** rng.integers(-40, 38, n)).astype(np.float32)
    assert np.array_equal(bf.to_bf16(v), ref_bf16(v))
    h = rng.integers(0, 2**16, n, dtype=np.uint16)
    assert np.array_equal(bf.from_bf16(h).view(np.uint32), h.astype(np.uint32) << 16)

# split-SGD reproduces fp32 SGD bit for bit, over many steps
w = rng.standard_normal(1037).astype(np.float32)
hi, lo = bf.split(w)
for step in range(200):
    g = (rng.standard_normal(w.shape) * 10.0 ** rng.integers(-8, 2)).astype(np.float32)
    lr = np.float32(10.0 ** rng.uniform(-4, 0))
    w = w - lr * g
    bf.sgd_split_(hi, lo, g, float(lr), n_threads=2)
    assert np.array_equal(bf.join(hi, lo).view(np.uint32), w.view(np.uint32)), step
assert np.array_equal(hi, bf.split(w)[0])

# bf16 dot products: fp32 accumulation of the exact bf16 products
a = bf.to_bf16(rng.standard_normal((7, 131)).astype(np.float32))
b = bf.to_bf16(rng.standard_normal((7, 131)).astype(np.float32))
exact = (bf.from_bf16(a).astype(np.float64) * bf.from_bf16(b)).sum(axis=1)
np.testing.assert_allclose(bf.dot_bf16(a, b), exact, rtol=1e-5, atol=1e-5)
print("ok", bf.cpu_level())
'''


def _run(level, tmp_path):
    env = dict(os.environ, SLIDELEARN_CPU_LEVEL=level)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(slidelearn.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    script = tmp_path / "checks.py"
    script.write_text(textwrap.dedent(CHECKS))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("level", bf.LEVELS)
def test_every_dispatch_level(level, tmp_path):
    if level not in bf.available_levels():
        pytest.skip(f"this CPU cannot run the {level} code path")
    proc = _run(level, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["ok", level]


def test_level_above_the_cpu_warns_and_unknown_level_fails(tmp_path):
    proc = _run("avx9000", tmp_path)
    assert proc.returncode != 0 and "SLIDELEARN_CPU_LEVEL" in proc.stderr
    if bf.available_levels()[-1] != "avx512_bf16":
        proc = _run("avx512_bf16", tmp_path)
        assert proc.returncode == 0 and "RuntimeWarning" in proc.stderr


def test_bad_inputs_raise():
    with pytest.raises(TypeError, match="float32"):
        bf.to_bf16(np.ones(3))
    with pytest.raises(TypeError, match="uint16"):
        bf.from_bf16(np.ones(3, dtype=np.int16))
    hi, lo = bf.split(np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match="one shape"):
        bf.sgd_split_(hi, lo, np.ones(3, dtype=np.float32), 0.1)
    with pytest.raises(TypeError, match="writeable"):
        bf.sgd_split_(hi[::2], lo[::2], np.ones(2, dtype=np.float32), 0.1)
    with pytest.raises(ValueError, match="same shape"):
        bf.join(hi, lo[:2])
