"""BF16 building blocks for mixed-precision dense layers (issue 6): conversions,
split-SGD and a BF16 GEMM with fp32 accumulation, all with runtime CPU dispatch.

The code path is the level chosen by :mod:`slidelearn.utils._cpu` at import (the highest
the CPU supports, or the lower one set by ``SLIDELEARN_CPU_LEVEL``):

* conversions and split-SGD reuse the C of :mod:`slidelearn.utils._bfloat16`
  (``_bfloat16.h``: round to nearest even on the integer bits, AVX-512 integer code at
  the ``avx512`` levels, portable C below), :func:`split` and :func:`join` the
  truncating convention of ``_bf16_split.h``;
* :func:`gemm_bf16` (``_gemm_bf16.h``) uses a vdpbf16ps micro-kernel at
  ``avx512_bf16``, fp32 FMA kernels on panels widened to fp32 at ``avx512`` and
  ``avx2``, and portable C at ``generic``.
"""
import numpy as np

from cython.parallel import prange

from libc.stdint cimport int64_t, uint16_t

from slidelearn.utils import _cpu
from slidelearn.utils._cpu import available_levels, cpu_level  # noqa: F401 (re-exported)

cdef extern from "_bfloat16.h" nogil:
    void sl_bf16_set_level(int level)
    float sl_dot_bf16(const uint16_t *a, const uint16_t *b, int64_t n)
    void sl_to_bf16(const float *x, uint16_t *out, int64_t n)
    void sl_from_bf16(const uint16_t *h, float *out, int64_t n)
    void sl_sgd_split(uint16_t *hi, uint16_t *lo, const float *g, float lr, int64_t n)

cdef extern from "_bf16_split.h" nogil:
    void sl_split_trunc_n(const float *w, uint16_t *hi, uint16_t *lo, int64_t n)
    void sl_join_trunc_n(const uint16_t *hi, const uint16_t *lo, float *out, int64_t n)

cdef extern from "_gemm_bf16.h" nogil:
    void sl_gemm_set_level(int level)
    int sl_gemm_get_level()
    int64_t sl_gemm_n_tasks(int64_t m, int64_t n, int n_threads)
    int sl_gemm_bf16_task(int64_t t, int64_t n_tasks, int transa, int transb, int64_t m,
                          int64_t n, int64_t K, float alpha, const uint16_t *A, int64_t lda,
                          const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc)

# _cpu levels: generic 0, avx2 1, avx512 2, avx512_bf16 3.
# _bfloat16.h levels: generic 0, avx512 1, avx512_bf16 2 (it has no AVX2 code).
sl_gemm_set_level(_cpu._level_index())
sl_bf16_set_level((0, 0, 1, 2)[_cpu._level_index()])

cdef int64_t _CHUNK = 1 << 14  # elements per parallel chunk of the element-wise loops


def _f32(x, name):
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"{name} must be a float32 array; got {x.dtype}.")
    return np.ascontiguousarray(x)


def _u16(x, name):
    x = np.asarray(x)
    if x.dtype != np.uint16:
        raise TypeError(f"{name} must be a uint16 array of bfloat16 bits; got {x.dtype}.")
    return np.ascontiguousarray(x)


def _check_threads(n_threads):
    if isinstance(n_threads, bool) or int(n_threads) != n_threads or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer; got {n_threads!r}.")
    return int(n_threads)


def to_bf16(x, n_threads=1):
    """bfloat16 bits of a float32 array, rounded to nearest, ties to even.

    NaN stays NaN (quieted, sign kept, never rounded to infinity); infinities are kept;
    finite values beyond the largest bfloat16 round to infinity exactly where IEEE
    rounding says (from ``0x7F7F8000``, the tie above the largest bfloat16, up);
    denormals round like any other value, on the integer bits (no flush to zero).

    Parameters
    ----------
    x : array_like of float32
        Values to convert (any shape; copied if not C-contiguous).
    n_threads : int, default=1
        OpenMP threads.

    Returns
    -------
    bits : ndarray of uint16, same shape as ``x``
        The bfloat16 bit patterns.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bf16 import to_bf16
    >>> [hex(b) for b in to_bf16(np.array([1.0, -2.0, np.inf, 1.00390625], np.float32))]
    ['0x3f80', '0xc000', '0x7f80', '0x3f80']
    """
    x = _f32(x, "x")
    cdef int nt = _check_threads(n_threads)
    out = np.empty(x.shape, dtype=np.uint16)
    cdef const float[::1] xv = x.reshape(-1)
    cdef uint16_t[::1] ov = out.reshape(-1)
    cdef int64_t n = xv.shape[0], c, a, b, n_chunks = (n + _CHUNK - 1) // _CHUNK
    if n == 0:
        return out
    with nogil:
        for c in prange(n_chunks, schedule="static", num_threads=nt):
            a = c * _CHUNK
            b = min(a + _CHUNK, n)
            sl_to_bf16(&xv[a], &ov[a], b - a)
    return out


def from_bf16(bits):
    """float32 values of bfloat16 bits (exact: the bits become the upper half).

    Parameters
    ----------
    bits : array_like of uint16
        bfloat16 bit patterns (any shape).

    Returns
    -------
    x : ndarray of float32, same shape as ``bits``

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bf16 import from_bf16
    >>> from_bf16(np.array([0x3f80, 0xc000, 0x3fc0], dtype=np.uint16))
    array([ 1. , -2. ,  1.5], dtype=float32)
    """
    bits = _u16(bits, "bits")
    out = np.empty(bits.shape, dtype=np.float32)
    cdef const uint16_t[::1] bv = bits.reshape(-1)
    cdef float[::1] ov = out.reshape(-1)
    if bv.shape[0]:
        with nogil:
            sl_from_bf16(&bv[0], &ov[0], bv.shape[0])
    return out


def split(x):
    """Split float32 weights into their upper and lower 16 bits for split-SGD.

    ``hi`` is the upper half TRUNCATED, not rounded: it is the bfloat16 the forward and
    backward passes read, and together with ``lo`` it is exactly the fp32 weight, which
    is what lets :func:`sgd_split_` reproduce fp32 SGD bit for bit. (Truncation moves a
    weight by less than one bfloat16 ulp, towards zero; rounding ``hi`` would need a
    signed ``lo`` and lose the exact, branch-free join.)

    Parameters
    ----------
    x : array_like of float32
        Weights (any shape).

    Returns
    -------
    hi : ndarray of uint16, same shape
        Upper 16 bits (truncated bfloat16).
    lo : ndarray of uint16, same shape
        Lower 16 bits.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bf16 import split, join
    >>> x = np.array([0.1, -3.5], dtype=np.float32)
    >>> hi, lo = split(x)
    >>> hex(int(hi[0])), hex(int(lo[0]))
    ('0x3dcc', '0xcccd')
    >>> bool(np.array_equal(join(hi, lo).view(np.uint32), x.view(np.uint32)))
    True
    """
    x = _f32(x, "x")
    hi = np.empty(x.shape, dtype=np.uint16)
    lo = np.empty(x.shape, dtype=np.uint16)
    cdef const float[::1] xv = x.reshape(-1)
    cdef uint16_t[::1] hv = hi.reshape(-1)
    cdef uint16_t[::1] lv = lo.reshape(-1)
    if xv.shape[0]:
        with nogil:
            sl_split_trunc_n(&xv[0], &hv[0], &lv[0], xv.shape[0])
    return hi, lo


def join(hi, lo):
    """The float32 values whose upper and lower 16 bits are ``hi`` and ``lo``.

    Parameters
    ----------
    hi, lo : array_like of uint16, same shape
        Halves from :func:`split` (or updated by :func:`sgd_split_`).

    Returns
    -------
    x : ndarray of float32, same shape

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bf16 import join
    >>> join(np.array([0x3f80, 0x3f80], np.uint16), np.array([0, 0x8000], np.uint16))
    array([1.       , 1.0039062], dtype=float32)
    """
    hi, lo = _u16(hi, "hi"), _u16(lo, "lo")
    if hi.shape != lo.shape:
        raise ValueError(f"hi and lo must have the same shape; got {hi.shape} and {lo.shape}.")
    out = np.empty(hi.shape, dtype=np.float32)
    cdef const uint16_t[::1] hv = hi.reshape(-1)
    cdef const uint16_t[::1] lv = lo.reshape(-1)
    cdef float[::1] ov = out.reshape(-1)
    if ov.shape[0]:
        with nogil:
            sl_join_trunc_n(&hv[0], &lv[0], &ov[0], ov.shape[0])
    return out


def sgd_split_(hi, lo, grad, lr, n_threads=1):
    """Split-SGD step in place: ``w -= lr * grad`` on weights stored as ``(hi, lo)``.

    Each weight is joined from its halves into the exact fp32 value, updated in fp32
    (``lr * grad`` rounded to fp32, then the difference rounded: no fused multiply-add,
    exactly what ``w - np.float32(lr) * grad`` computes in numpy) and split again, so any
    number of steps equals fp32 SGD bit for bit while forward passes read ``hi``.

    Parameters
    ----------
    hi, lo : ndarray of uint16, C-contiguous, writeable
        Upper and lower halves of the weights (from :func:`split`), updated in place.
    grad : array_like of float32, same shape
        Gradient.
    lr : float
        Learning rate (rounded to float32).
    n_threads : int, default=1
        OpenMP threads.

    Returns
    -------
    None

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bf16 import split, join, sgd_split_
    >>> w = np.array([0.5, 1.25, -3.0], dtype=np.float32)
    >>> g = np.array([0.1, -0.2, 7.0], dtype=np.float32)
    >>> hi, lo = split(w)
    >>> sgd_split_(hi, lo, g, 0.01)
    >>> bool(np.array_equal(join(hi, lo), w - np.float32(0.01) * g))
    True
    """
    for arr, name in ((hi, "hi"), (lo, "lo")):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint16:
            raise TypeError(f"{name} must be a uint16 ndarray; got {type(arr).__name__} "
                            f"of {getattr(arr, 'dtype', None)}.")
        if not arr.flags.c_contiguous or not arr.flags.writeable:
            raise ValueError(f"{name} must be a writeable C-contiguous array (it is "
                             f"updated in place).")
    grad = _f32(grad, "grad")
    if hi.shape != lo.shape or hi.shape != grad.shape:
        raise ValueError(f"hi, lo and grad must have the same shape; got {hi.shape}, "
                         f"{lo.shape} and {grad.shape}.")
    if np.may_share_memory(hi, lo):
        raise ValueError("hi and lo must not overlap in memory.")
    cdef int nt = _check_threads(n_threads)
    cdef float flr = lr
    cdef uint16_t[::1] h = hi.reshape(-1)
    cdef uint16_t[::1] l = lo.reshape(-1)
    cdef const float[::1] g = grad.reshape(-1)
    cdef int64_t n = h.shape[0], c, a, b, n_chunks = (n + _CHUNK - 1) // _CHUNK
    if n == 0:
        return
    with nogil:
        for c in prange(n_chunks, schedule="static", num_threads=nt):
            a = c * _CHUNK
            b = min(a + _CHUNK, n)
            sl_sgd_split(&h[a], &l[a], &g[a], flr, b - a)


def _trans(flag, name):
    if isinstance(flag, str):
        f = flag.strip().upper()
        if f in ("N", "T"):
            return f == "T"
    elif isinstance(flag, (bool, np.bool_, int, np.integer)) and flag in (0, 1):
        return bool(flag)
    raise ValueError(f"{name} must be a bool or one of 'N', 'T'; got {flag!r}.")


def gemm_bf16(A, B, transa=False, transb=False, alpha=1.0, beta=0.0, C=None, n_threads=1):
    """BF16 matrix product with fp32 accumulation: ``C = alpha op(A) op(B) + beta C``.

    ``op(A)`` is ``A`` (m x k) or, with ``transa``, ``A.T`` (``A`` is k x m); likewise
    ``op(B)`` is k x n. The three products of a dense layer with weights ``W``
    (out x in) are ``Y = X W^T`` (``transb=True``), ``dX = dY W`` and
    ``dW = dY^T X`` (``transa=True``). The products of bfloat16 values are exact in fp32
    and are summed in fp32; at the ``avx512_bf16`` level with vdpbf16ps, which treats
    denormal inputs and partial sums as zero.

    Parameters
    ----------
    A : array_like of uint16, 2-D
        bfloat16 bits of ``A`` (copied if not C-contiguous).
    B : array_like of uint16, 2-D
        bfloat16 bits of ``B`` (copied if not C-contiguous).
    transa, transb : bool or {'N', 'T'}, default=False
        Whether to use the transposes of ``A`` and ``B``.
    alpha : float, default=1.0
        Scale of the product.
    beta : float, default=0.0
        Scale of the existing ``C``. With ``beta == 0``, ``C`` is not read (NaNs in it
        are overwritten), as in BLAS.
    C : ndarray of float32, shape (m, n), C-contiguous, writeable, optional
        Output, updated in place. ``None`` allocates it (``beta`` must then be 0).
    n_threads : int, default=1
        OpenMP threads (disjoint blocks of ``C``; 1 without an OpenMP build).

    Returns
    -------
    C : ndarray of float32, shape (m, n)
        The result (the ``C`` passed in, if any).

    Raises
    ------
    TypeError
        If ``A`` or ``B`` is not uint16, or ``C`` not a float32 ndarray.
    ValueError
        On mismatched shapes, a non-contiguous or read-only ``C``, ``C`` sharing memory
        with ``A`` or ``B``, a bad ``transa``/``transb`` or ``n_threads``.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bf16 import gemm_bf16, to_bf16, from_bf16
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((5, 8)).astype(np.float32)   # batch x in
    >>> W = rng.standard_normal((3, 8)).astype(np.float32)   # out x in
    >>> Xb, Wb = to_bf16(X), to_bf16(W)
    >>> Y = gemm_bf16(Xb, Wb, transb=True)                    # forward: X W^T
    >>> ref = from_bf16(Xb).astype(np.float64) @ from_bf16(Wb).T
    >>> Y.shape, bool(np.allclose(Y, ref, rtol=1e-5, atol=1e-5))
    ((5, 3), True)
    >>> dY = to_bf16(np.ones((5, 3), np.float32))
    >>> dW = np.zeros((3, 8), np.float32)
    >>> _ = gemm_bf16(dY, Xb, transa="T", C=dW, beta=1.0)    # dW += dY^T X
    >>> bool(np.allclose(dW, np.ones((3, 5)) @ from_bf16(Xb), rtol=1e-5, atol=1e-5))
    True
    """
    A = _u16(A, "A")
    B = _u16(B, "B")
    if A.ndim != 2 or B.ndim != 2:
        raise ValueError(f"A and B must be 2-D; got {A.ndim}-D and {B.ndim}-D.")
    ta, tb = _trans(transa, "transa"), _trans(transb, "transb")
    cdef int nt = _check_threads(n_threads)
    cdef int64_t m = A.shape[1] if ta else A.shape[0]
    cdef int64_t K = A.shape[0] if ta else A.shape[1]
    cdef int64_t K2 = B.shape[1] if tb else B.shape[0]
    cdef int64_t n = B.shape[0] if tb else B.shape[1]
    if K != K2:
        raise ValueError(f"op(A) is {m} x {K} but op(B) is {K2} x {n}: inner dimensions "
                         f"differ (transa={ta}, transb={tb}).")
    cdef float falpha = alpha, fbeta = beta
    if C is None:
        if fbeta != 0.0:
            raise ValueError("beta must be 0 when C is None (there is no C to scale).")
        C = np.empty((m, n), dtype=np.float32)
    else:
        if not isinstance(C, np.ndarray) or C.dtype != np.float32:
            raise TypeError(f"C must be a float32 ndarray; got {type(C).__name__} of "
                            f"{getattr(C, 'dtype', None)}.")
        if C.shape != (m, n):
            raise ValueError(f"C must have shape ({m}, {n}); got {C.shape}.")
        if not C.flags.c_contiguous or not C.flags.writeable:
            raise ValueError("C must be a writeable C-contiguous array (it is updated in "
                             "place).")
        if np.may_share_memory(C, A) or np.may_share_memory(C, B):
            raise ValueError("C must not share memory with A or B.")
    if m == 0 or n == 0:
        return C
    if K == 0:  # an empty sum: C = beta C
        if fbeta == 0.0:
            C[...] = 0.0
        else:
            C *= np.float32(fbeta)
        return C
    cdef const uint16_t[:, ::1] av = A
    cdef const uint16_t[:, ::1] bv = B
    cdef float[:, ::1] cv = C
    cdef int64_t lda = av.shape[1], ldb = bv.shape[1], ldc = cv.shape[1]
    cdef int itA = ta, itB = tb
    cdef int64_t t, n_tasks = sl_gemm_n_tasks(m, n, nt)
    cdef int n_team = <int>min(nt, n_tasks)
    cdef int err = 0
    with nogil:
        for t in prange(n_tasks, schedule="static", num_threads=n_team):
            err += sl_gemm_bf16_task(t, n_tasks, itA, itB, m, n, K, falpha, &av[0, 0], lda,
                                     &bv[0, 0], ldb, fbeta, &cv[0, 0], ldc)
    if err != 0:
        raise MemoryError("gemm_bf16: could not allocate the packing buffers.")
    return C


def dot_bf16(a, b):
    """Row-wise fp32-accumulated dot products of bfloat16 matrices.

    Parameters
    ----------
    a, b : ndarray of uint16, shape (n, d) or (d,)
        bfloat16 bits.

    Returns
    -------
    dots : ndarray of float32, shape (n,) (a 0-d array for 1-D input)

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._bf16 import dot_bf16, to_bf16
    >>> x = to_bf16(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    >>> float(dot_bf16(x, x))
    14.0
    """
    a, b = _u16(a, "a"), _u16(b, "b")
    if a.shape != b.shape or a.ndim not in (1, 2):
        raise ValueError(f"a and b must be 1-D or 2-D of one shape; got {a.shape} and {b.shape}.")
    # (compiled with wraparound=False: no negative indices, even on tuples)
    d_ = a.shape[a.ndim - 1]
    out = np.zeros(a.size // max(d_, 1) if d_ else (a.shape[0] if a.ndim == 2 else 1),
                   dtype=np.float32)
    cdef const uint16_t[:, ::1] av = a.reshape(-1, d_) if d_ else np.zeros((out.shape[0], 1), np.uint16)
    cdef const uint16_t[:, ::1] bv = b.reshape(-1, d_) if d_ else np.zeros((out.shape[0], 1), np.uint16)
    cdef float[::1] ov = out
    cdef Py_ssize_t i
    cdef int64_t d = d_
    if d:
        with nogil:
            for i in range(av.shape[0]):
                ov[i] = sl_dot_bf16(&av[i, 0], &bv[i, 0], d)
    return out.reshape(a.shape[:a.ndim - 1])
