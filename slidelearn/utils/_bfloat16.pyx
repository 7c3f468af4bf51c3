"""bfloat16 building blocks: conversions, split-SGD and a bf16 dot product, with
runtime CPU dispatch (see ``_bfloat16.h``).

The level is chosen at import: the highest this CPU supports (``generic``,
``avx512``, ``avx512_bf16``), or a lower one named by the environment variable
``SLIDELEARN_CPU_LEVEL`` (tests use it to cover every path on one machine). Asking
for a level the CPU lacks warns and uses the highest available one.
"""
import os
import warnings

import numpy as np

from cython.parallel import prange

from libc.stdint cimport int64_t, uint16_t

cdef extern from "_bfloat16.h" nogil:
    int sl_bf16_max_level()
    void sl_bf16_set_level(int level)
    int sl_bf16_get_level()
    void sl_to_bf16(const float *x, uint16_t *out, int64_t n)
    void sl_from_bf16(const uint16_t *h, float *out, int64_t n)
    void sl_sgd_split(uint16_t *hi, uint16_t *lo, const float *g, float lr, int64_t n)
    float sl_dot_bf16(const uint16_t *a, const uint16_t *b, int64_t n)

LEVELS = ("generic", "avx512", "avx512_bf16")


def _choose_level():
    best = sl_bf16_max_level()
    wanted = os.environ.get("SLIDELEARN_CPU_LEVEL", "").strip().lower()
    if not wanted:
        return best
    if wanted not in LEVELS:
        raise ValueError(f"SLIDELEARN_CPU_LEVEL={wanted!r} is not one of {LEVELS}.")
    level = LEVELS.index(wanted)
    if level > best:
        warnings.warn(f"SLIDELEARN_CPU_LEVEL={wanted!r} is above what this CPU supports; "
                      f"using {LEVELS[best]!r}.", RuntimeWarning, stacklevel=2)
        return best
    return level


sl_bf16_set_level(_choose_level())


def cpu_level():
    """The code path in use.

    Returns
    -------
    level : str
        One of ``"generic"``, ``"avx512"``, ``"avx512_bf16"``.

    Examples
    --------
    >>> from slidelearn.utils._bfloat16 import cpu_level, LEVELS
    >>> cpu_level() in LEVELS
    True
    """
    return LEVELS[sl_bf16_get_level()]


def available_levels():
    """The code paths this CPU can run, lowest first.

    Returns
    -------
    levels : tuple of str

    Examples
    --------
    >>> from slidelearn.utils._bfloat16 import available_levels
    >>> available_levels()[0]
    'generic'
    """
    return LEVELS[:sl_bf16_max_level() + 1]


def _as_f32(x, name):
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"{name} must be a float32 array; got {x.dtype}.")
    return np.ascontiguousarray(x)


def _as_u16(x, name):
    x = np.asarray(x)
    if x.dtype != np.uint16:
        raise TypeError(f"{name} must be a uint16 array of bfloat16 bits; got {x.dtype}.")
    return np.ascontiguousarray(x)


def to_bf16(x):
    """bfloat16 bits of a float32 array, rounded to nearest, ties to even.

    NaN stays NaN (quieted, sign kept); values beyond the largest bfloat16 become
    infinity, as IEEE rounding says; denormals round like any other value.

    Parameters
    ----------
    x : ndarray of float32

    Returns
    -------
    bits : ndarray of uint16, same shape

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bfloat16 import to_bf16
    >>> [hex(b) for b in to_bf16(np.array([1.0, -2.0, np.inf], dtype=np.float32))]
    ['0x3f80', '0xc000', '0x7f80']
    """
    x = _as_f32(x, "x")
    out = np.empty(x.shape, dtype=np.uint16)
    cdef const float[::1] xv = x.reshape(-1)
    cdef uint16_t[::1] ov = out.reshape(-1)
    if xv.shape[0]:
        with nogil:
            sl_to_bf16(&xv[0], &ov[0], xv.shape[0])
    return out


def from_bf16(bits):
    """float32 values of bfloat16 bits (exact).

    Parameters
    ----------
    bits : ndarray of uint16

    Returns
    -------
    x : ndarray of float32, same shape

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bfloat16 import from_bf16
    >>> from_bf16(np.array([0x3f80, 0xc000], dtype=np.uint16))
    array([ 1., -2.], dtype=float32)
    """
    bits = _as_u16(bits, "bits")
    out = np.empty(bits.shape, dtype=np.float32)
    cdef const uint16_t[::1] bv = bits.reshape(-1)
    cdef float[::1] ov = out.reshape(-1)
    if bv.shape[0]:
        with nogil:
            sl_from_bf16(&bv[0], &ov[0], bv.shape[0])
    return out


def split(x):
    """Split float32 values into their upper (bfloat16, truncated) and lower 16 bits.

    Parameters
    ----------
    x : ndarray of float32

    Returns
    -------
    hi, lo : ndarray of uint16
        ``hi`` is what bf16 forward passes read; ``join(hi, lo)`` gives ``x`` back.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bfloat16 import split, join
    >>> x = np.array([0.1, -3.5], dtype=np.float32)
    >>> hi, lo = split(x)
    >>> bool(np.array_equal(join(hi, lo), x))
    True
    """
    u = _as_f32(x, "x").view(np.uint32)
    return (u >> 16).astype(np.uint16), (u & 0xFFFF).astype(np.uint16)


def join(hi, lo):
    """The float32 values whose upper and lower 16 bits are ``hi`` and ``lo``.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bfloat16 import join
    >>> join(np.array([0x3f80], np.uint16), np.array([0], np.uint16))
    array([1.], dtype=float32)
    """
    hi, lo = _as_u16(hi, "hi"), _as_u16(lo, "lo")
    if hi.shape != lo.shape:
        raise ValueError(f"hi and lo must have the same shape; got {hi.shape} and {lo.shape}.")
    return ((hi.astype(np.uint32) << 16) | lo).view(np.float32)


def sgd_split_(hi, lo, grad, float lr, int n_threads=1):
    """Split-SGD step in place: ``w -= lr * grad`` on weights stored as (hi, lo).

    The fp32 weight is joined from its halves, updated in fp32 (``lr * grad`` rounded,
    then the difference rounded, no fused multiply-add) and split again, so the
    result equals fp32 SGD bit for bit.

    Parameters
    ----------
    hi, lo : ndarray of uint16, C-contiguous, writeable
        Upper and lower halves of the weights (from :func:`split`); updated in place.
    grad : ndarray of float32, same shape
        Gradient.
    lr : float
        Learning rate.
    n_threads : int, default=1
        OpenMP threads.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bfloat16 import split, join, sgd_split_
    >>> w = np.array([0.5, 1.25], dtype=np.float32)
    >>> g = np.array([0.1, -0.2], dtype=np.float32)
    >>> hi, lo = split(w)
    >>> sgd_split_(hi, lo, g, 0.01)
    >>> bool(np.array_equal(join(hi, lo), w - np.float32(0.01) * g))
    True
    """
    for arr, name in ((hi, "hi"), (lo, "lo")):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint16 \
                or not arr.flags.c_contiguous or not arr.flags.writeable:
            raise TypeError(f"{name} must be a writeable C-contiguous uint16 array.")
    grad = _as_f32(grad, "grad")
    if hi.shape != lo.shape or hi.shape != grad.shape:
        raise ValueError(f"hi, lo and grad must have one shape; got {hi.shape}, {lo.shape} "
                         f"and {grad.shape}.")
    if n_threads < 1:
        raise ValueError("n_threads must be at least 1.")
    cdef uint16_t[::1] h = hi.reshape(-1)
    cdef uint16_t[::1] l = lo.reshape(-1)
    cdef const float[::1] g = grad.reshape(-1)
    cdef int64_t n = h.shape[0], chunk = 4096, c, n_chunks = (n + chunk - 1) // chunk, a, b
    if n == 0:
        return
    with nogil:
        for c in prange(n_chunks, schedule="static", num_threads=n_threads):
            a = c * chunk
            b = min(a + chunk, n)
            sl_sgd_split(&h[a], &l[a], &g[a], lr, b - a)


def dot_bf16(a, b):
    """Row-wise fp32-accumulated dot products of bfloat16 matrices.

    Parameters
    ----------
    a, b : ndarray of uint16, shape (n, d) or (d,)
        bfloat16 bits.

    Returns
    -------
    dots : ndarray of float32, shape (n,) (or a 0-d array for 1-D input)

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bfloat16 import dot_bf16, to_bf16
    >>> x = to_bf16(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    >>> float(dot_bf16(x, x))
    14.0
    """
    a, b = _as_u16(a, "a"), _as_u16(b, "b")
    if a.shape != b.shape or a.ndim not in (1, 2):
        raise ValueError(f"a and b must be 1-D or 2-D of one shape; got {a.shape} and {b.shape}.")
    # (the module compiles with wraparound=False: no negative indices, even on tuples)
    d_ = a.shape[a.ndim - 1]
    a2, b2 = a.reshape(-1, d_), b.reshape(-1, d_)
    out = np.zeros(a2.shape[0], dtype=np.float32)
    cdef const uint16_t[:, ::1] av = a2
    cdef const uint16_t[:, ::1] bv = b2
    cdef float[::1] ov = out
    cdef Py_ssize_t i, d = av.shape[1]
    if d:
        with nogil:
            for i in range(av.shape[0]):
                ov[i] = sl_dot_bf16(&av[i, 0], &bv[i, 0], d)
    return out.reshape(a.shape[:a.ndim - 1])
