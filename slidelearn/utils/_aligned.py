"""Arrays whose first byte sits on a cache-line boundary.

numpy only guarantees 16-byte alignment. A kernel that streams the rows of an array one
at a time touches one cache line more per row than it needs when a row whose size is a
multiple of 64 bytes does not start on a line (a float32 row of 128 is 8 lines, 9 when
misaligned)."""
import numpy as np

__all__ = ["CACHE_LINE", "aligned_empty", "aligned_zeros", "cache_aligned"]

CACHE_LINE = 64  # bytes


def aligned_empty(shape, dtype):
    """An uninitialised array whose first byte sits on a cache-line boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.empty(nbytes + CACHE_LINE, dtype=np.uint8)
    off = (-buf.ctypes.data) % CACHE_LINE
    return buf[off:off + nbytes].view(dtype).reshape(shape)


def aligned_zeros(shape, dtype):
    """Zeros whose first byte sits on a cache-line boundary. Written, not calloc'ed: the
    pages are faulted in here, at initialisation, not by the first training batches
    that touch each row."""
    out = aligned_empty(shape, dtype)
    out.fill(0)
    return out


def cache_aligned(a):
    """``a``, or its copy starting on a cache-line boundary (after unpickling)."""
    if a.size == 0 or a.ctypes.data % CACHE_LINE == 0:
        return a
    out = aligned_zeros(a.shape, a.dtype)
    out[...] = a
    return out
