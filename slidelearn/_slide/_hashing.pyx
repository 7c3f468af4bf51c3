"""Locality-sensitive hashing kernels: hash families and bounded bucket tables.

Hash families (for maximum-inner-product retrieval of output neurons):

* ``simhash``: signed random projections, each over ``bin_size`` random dims
  with random signs (sparse projections); one bit per code.
* ``wta``: winner-take-all; each code is the position of the largest value
  among ``bin_size`` dims of a random permutation.
* ``dwta``: densified WTA; as WTA, but a bin whose values are all zero (common
  in ReLU activations) is empty and takes the code of another, non-empty bin
  found by random probing.
* ``doph``: densified one-permutation minhash of the set of positive dims;
  per table, dims are split into K random bins, each code is the dim of minimum
  random rank in its bin, empty bins are densified by probing.

K codes make one bucket id per table: their concatenation when it fits in
``n_buckets``, otherwise a multiplicative hash of it folded to ``n_buckets``.
"""
import numpy as np

from cython.parallel import prange

from libc.stdint cimport int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, free

from slidelearn.utils._openmp_helpers cimport omp_get_thread_num

cdef extern from "_wta.h" nogil:
    void sl_wta8(const float *vec, const int32_t *dims, int n, int dwta, int32_t *codes)
    uint32_t sl_wta8_block16(const float *vt, const int32_t *dims, int n, int dim, int dwta,
                             int32_t *codes)
    void sl_transpose16(const float *V, int64_t stride, int cnt, int dim, const float *c,
                        float *vt)
    void sl_buckets_block16(const int32_t *codes, int n_tables, int n_codes, uint32_t base,
                            int exact, int range_bits, uint32_t *out, int64_t out_stride,
                            int cnt)
    void sl_wta_set_level(int level)
    int sl_wta_block_ok()

cdef extern from "_buckets.h" nogil:
    void sl_prefetchw_int(int32_t *p)

cdef extern from "../utils/_bfloat16.h" nogil:
    void sl_from_bf16(const uint16_t *h, float *out, int64_t n)
    void sl_bf16_set_level(int level)

from scipy.linalg.cython_blas cimport sgemm, sgemv

from slidelearn.utils import _cpu

# the batch WTA code runs at the avx512 levels only (_cpu levels 2 and 3)
sl_wta_set_level((0, 1, 2, 2)[_cpu._level_index()])
sl_bf16_set_level((0, 0, 1, 2)[_cpu._level_index()])  # widening bfloat16 rows

FAMILIES = {"simhash": FAMILY_SIMHASH, "wta": FAMILY_WTA, "dwta": FAMILY_DWTA, "doph": FAMILY_DOPH,
            "mips": FAMILY_MIPS}

cdef int MAX_PROBES = 64
# SimHash projections with at least one non-zero in _DENSE_SHARE dims are applied as
# one dense matrix-vector product (sgemv; callers limit BLAS to one thread, since it
# runs inside their OpenMP loops): gathering their non-zeros one by one, behind a
# branch per non-zero for "mips" queries, costs more than multiplying the zeros.
_DENSE_SHARE = 8
# build_tables fills every bucket's run of ids one id at a time, thousands of runs
# interleaved: the first write to each 64-byte line was a miss to memory that stalled
# the loop (the previous tables' ids are long evicted). A bucket's write also
# prefetches, for writing, the line IDS_AHEAD ids further into its run.
cdef int IDS_AHEAD = 16


cdef inline uint64_t splitmix64(uint64_t x) noexcept nogil:
    x = x + <uint64_t>0x9E3779B97F4A7C15
    x = (x ^ (x >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    x = (x ^ (x >> 27)) * <uint64_t>0x94D049BB133111EB
    return x ^ (x >> 31)


cdef inline uint64_t rng_next(uint64_t* state) noexcept nogil:
    # xorshift64*; the state must never be 0 (seeded through splitmix64 | 1).
    cdef uint64_t x = state[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return x * <uint64_t>0x2545F4914F6CDD1D


cdef inline uint32_t rng_below(uint64_t* state, uint32_t n) noexcept nogil:
    return <uint32_t>(((rng_next(state) >> 32) * <uint64_t>n) >> 32)


cdef void hash_vector(const HashFn* fn, const float* vec, int32_t* codes,
                      uint32_t* buckets) noexcept nogil:
    cdef int n_hashes = fn.n_codes * fn.n_tables
    cdef int i, j, t, d, best_j, b
    cdef float s, best
    cdef bint nonzero
    cdef const int32_t* dims
    cdef const float* signs
    cdef uint32_t r
    if (fn.family == FAMILY_SIMHASH or fn.family == FAMILY_MIPS) and fn.proj != NULL:
        _dense_codes(fn, vec, codes, False)
    elif fn.family == FAMILY_SIMHASH or fn.family == FAMILY_MIPS:
        for i in range(n_hashes):
            dims = fn.dims + <int64_t>i * fn.bin_size
            signs = fn.signs + <int64_t>i * fn.bin_size
            s = 0
            for j in range(fn.bin_size):
                s = s + signs[j] * vec[dims[j]]
            codes[i] = 1 if s >= 0 else 0
    elif (fn.family == FAMILY_WTA or fn.family == FAMILY_DWTA) and fn.bin_size == 8:
        sl_wta8(vec, fn.dims, n_hashes, fn.family == FAMILY_DWTA, codes)
        if fn.family == FAMILY_DWTA:
            _densify(fn, codes, 0, n_hashes)
    elif fn.family == FAMILY_WTA or fn.family == FAMILY_DWTA:
        for i in range(n_hashes):
            dims = fn.dims + <int64_t>i * fn.bin_size
            best = vec[dims[0]]
            best_j = 0
            nonzero = best != 0
            for j in range(1, fn.bin_size):
                if vec[dims[j]] > best:
                    best = vec[dims[j]]
                    best_j = j
                nonzero = nonzero or vec[dims[j]] != 0
            if fn.family == FAMILY_DWTA and not nonzero:
                codes[i] = -1
            else:
                codes[i] = best_j
        if fn.family == FAMILY_DWTA:
            # Probe over all K * L hashes; the marker is a snapshot of the codes before filling.
            _densify(fn, codes, 0, n_hashes)
    else:  # DOPH
        for t in range(fn.n_tables):
            for b in range(fn.n_codes):
                codes[t * fn.n_codes + b] = -1
            for d in range(fn.dim):
                if vec[d] > 0:
                    b = t * fn.n_codes + fn.doph_bin[<int64_t>t * fn.dim + d]
                    r = fn.doph_rank[<int64_t>t * fn.dim + d]
                    if codes[b] < 0 or r < fn.doph_rank[<int64_t>t * fn.dim + codes[b]]:
                        codes[b] = d
            _densify(fn, codes, t * fn.n_codes, fn.n_codes)
    _buckets(fn, codes, buckets)


cdef void hash_query(const HashFn* fn, const float* h, int32_t* codes,
                     uint32_t* buckets) noexcept nogil:
    """``hash_vector`` of a query. "mips" hashes the query ``[h, 1, 0]`` (``h`` has
    dim - 2 floats) against the rows ``[w, b, sqrt(M^2 - |w|^2 - b^2)]`` of the tables
    (``mips_rows``): the two appended coordinates are read as constants instead of
    copying ``h`` into a longer buffer."""
    cdef int n_hashes = fn.n_codes * fn.n_tables, H = fn.dim - 2, i, j, d
    cdef float s
    cdef const int32_t* dims
    cdef const float* signs
    if fn.family != FAMILY_MIPS:
        hash_vector(fn, h, codes, buckets)
        return
    if fn.proj != NULL:
        _dense_codes(fn, h, codes, True)
        _buckets(fn, codes, buckets)
        return
    for i in range(n_hashes):
        dims = fn.dims + <int64_t>i * fn.bin_size
        signs = fn.signs + <int64_t>i * fn.bin_size
        s = 0
        for j in range(fn.bin_size):
            d = dims[j]
            if d < H:
                s = s + signs[j] * h[d]
            elif d == H:
                s = s + signs[j]
        codes[i] = 1 if s >= 0 else 0
    _buckets(fn, codes, buckets)


cdef enum:
    MAX_DENSE_HASHES = 8192  # K * L of the dense path: 32 KB of projected values on the stack


cdef inline void _project(const HashFn* fn, const float* vec, int n,
                          float* y) noexcept nogil:
    """y = the K * L projections of ``vec`` over the first ``n`` dims (one sgemv)."""
    cdef char trans = b'T'
    cdef int m = n, k = fn.n_codes * fn.n_tables, lda = fn.dim, inc = 1
    cdef float one = 1, zero = 0
    sgemv(&trans, &m, &k, &one, <float*>fn.proj, &lda, <float*>vec, &inc, &zero, y, &inc)


cdef inline void _dense_codes(const HashFn* fn, const float* vec, int32_t* codes,
                              bint query) noexcept nogil:
    """SimHash bits from the dense projections. "mips" rows end in the bias and the
    norm-completing coordinate, added after the product over the first dim - 2, so
    that a query ``h`` (``query``: dim - 2 floats) gets the bits of the padded
    ``[h, 1, 0]`` bit for bit."""
    cdef float y[MAX_DENSE_HASHES]
    _project(fn, vec, fn.dim - 2 if fn.family == FAMILY_MIPS else fn.dim, y)
    _codes_of(fn, y, vec, query, codes)


cdef inline void _codes_of(const HashFn* fn, const float* y, const float* vec,
                           bint query, int32_t* codes) noexcept nogil:
    """The K * L bits from ``vec``'s projections ``y`` over its first dim (dim - 2 for
    "mips", whose last two coordinates are added here: ``vec``'s own, or 1 and 0 for
    a ``query``, which has dim - 2 floats)."""
    cdef int i, n_hashes = fn.n_codes * fn.n_tables, n = fn.dim - 2
    cdef float s, last, pad
    cdef const float* p
    for i in range(n_hashes):
        s = y[i]
        if fn.family == FAMILY_MIPS:
            p = fn.proj + <int64_t>i * fn.dim
            last = 1 if query else vec[n]
            pad = 0 if query else vec[n + 1]
            s = s + p[n] * last + p[n + 1] * pad
        codes[i] = 1 if s >= 0 else 0


cdef inline void _buckets(const HashFn* fn, const int32_t* codes,
                          uint32_t* buckets) noexcept nogil:
    """The bucket of each table from its K codes."""
    cdef int t, i
    cdef uint64_t key
    for t in range(fn.n_tables):
        key = 0
        for i in range(fn.n_codes):
            key = key * fn.code_base + <uint64_t>codes[t * fn.n_codes + i]
        if fn.exact_buckets:
            buckets[t] = <uint32_t>key
        else:
            buckets[t] = <uint32_t>((key * <uint64_t>0x9E3779B97F4A7C15) >> (64 - fn.range_bits))


cdef inline void _densify(const HashFn* fn, int32_t* codes, int first, int n) noexcept nogil:
    # Empty codes (-1) of codes[first:first+n] take the code of a random non-empty one, found
    # by up to MAX_PROBES deterministic probes (0 if none). Filled codes are written as
    # -(code + 2) until the end so that probes only ever read codes that were non-empty.
    cdef int i, a, j
    cdef uint64_t h
    for i in range(n):
        if codes[first + i] != -1:
            continue
        codes[first + i] = -2
        for a in range(1, MAX_PROBES + 1):
            h = splitmix64(fn.seed ^ ((<uint64_t>(first + i) << 20) + <uint64_t>a))
            j = <int>(h % <uint64_t>n)
            if codes[first + j] >= 0:
                codes[first + i] = -(codes[first + j] + 2)
                break
    for i in range(n):
        if codes[first + i] < 0:
            codes[first + i] = -codes[first + i] - 2


# ---------------------------------------------------------------------------
# Python-facing helpers: drawing hash functions, hashing many vectors, tables.
# ---------------------------------------------------------------------------

def draw_hash_functions(str family, int dim, int n_codes, int n_tables, int bin_size,
                        int range_pow, rng):
    """Draw the random parameters of L tables of K hash codes over ``dim``-vectors.

    Returns a dict of numpy arrays and integers (picklable) understood by the
    other kernels of this module.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown hash family {family!r}; expected one of {sorted(FAMILIES)}")
    n_hashes = n_codes * n_tables
    dims = np.zeros((1, 1), dtype=np.int32)
    signs = np.zeros((1, 1), dtype=np.float32)
    doph_bin = np.zeros((1, 1), dtype=np.int32)
    doph_rank = np.zeros((1, 1), dtype=np.uint32)
    if family in ("simhash", "mips"):
        # sparse projections: one dim in three, or bin_size dims for "mips" (few
        # non-zeros give narrower buckets around the inner-product winners)
        width = max(1, -(-dim // 3)) if family == "simhash" else min(max(bin_size, 1), dim)
        dims = np.empty((n_hashes, width), dtype=np.int32)
        for i in range(n_hashes):
            dims[i] = rng.choice(dim, size=width, replace=False)
        signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(n_hashes, width))
        code_base = 2
    elif family in ("wta", "dwta"):
        if bin_size < 2 or bin_size > dim:
            raise ValueError(
                f"bin_size must be in [2, {dim}] (the width of the hashed layer) for the "
                f"{family!r} family, got {bin_size}"
            )
        width = bin_size
        n_perm = -(-(n_hashes * bin_size) // dim)
        flat = np.concatenate([rng.permutation(dim) for _ in range(n_perm)])
        dims = np.ascontiguousarray(flat[: n_hashes * bin_size].reshape(n_hashes, bin_size), dtype=np.int32)
        code_base = bin_size
    else:  # doph
        width = 1
        doph_bin = rng.integers(0, n_codes, size=(n_tables, dim), dtype=np.int32)
        doph_rank = rng.integers(0, 2**32 - 1, size=(n_tables, dim), dtype=np.uint32)
        code_base = dim
    total = float(code_base) ** n_codes
    if total <= 2.0 ** range_pow:
        n_buckets = int(round(total))
        exact = 1
    else:
        n_buckets = 1 << range_pow
        exact = 0
    return {
        "family": family,
        "dim": int(dim),
        "n_codes": int(n_codes),
        "n_tables": int(n_tables),
        "width": int(width),
        "dims": np.ascontiguousarray(dims, dtype=np.int32),
        "signs": np.ascontiguousarray(signs, dtype=np.float32),
        "doph_bin": np.ascontiguousarray(doph_bin, dtype=np.int32),
        "doph_rank": np.ascontiguousarray(doph_rank, dtype=np.uint32),
        "code_base": int(code_base),
        "n_buckets": int(n_buckets),
        "exact_buckets": int(exact),
        "range_bits": int(range_pow),
        "seed": int(rng.integers(0, 2**63 - 1)),
    }


cdef HashFn make_hash_fn(dict p) except *:
    """Fill a HashFn from the dict of draw_hash_functions (which keeps the arrays alive)."""
    cdef HashFn fn
    cdef const int32_t[:, ::1] dims = p["dims"]
    cdef const float[:, ::1] signs = p["signs"]
    cdef const int32_t[:, ::1] doph_bin = p["doph_bin"]
    cdef const uint32_t[:, ::1] doph_rank = p["doph_rank"]
    fn.family = FAMILIES[p["family"]]
    fn.dim = p["dim"]
    fn.n_codes = p["n_codes"]
    fn.n_tables = p["n_tables"]
    fn.bin_size = p["width"]
    fn.dims = &dims[0, 0]
    fn.signs = &signs[0, 0]
    fn.doph_bin = &doph_bin[0, 0]
    fn.doph_rank = &doph_rank[0, 0]
    fn.proj = NULL
    cdef const float[:, ::1] proj
    if (p["family"] in ("simhash", "mips") and p["width"] * _DENSE_SHARE >= p["dim"]
            and p["dims"].shape[0] <= MAX_DENSE_HASHES):
        if "proj" not in p:
            # written out once and kept with the functions (pickled with them; an index
            # pickled before it existed gets it on its first use)
            dense = np.zeros((p["dims"].shape[0], p["dim"]), dtype=np.float32)
            np.put_along_axis(dense, p["dims"].astype(np.intp), p["signs"], axis=1)
            p["proj"] = dense
        proj = p["proj"]
        fn.proj = &proj[0, 0]
    fn.code_base = p["code_base"]
    fn.n_buckets = p["n_buckets"]
    fn.exact_buckets = p["exact_buckets"]
    fn.range_bits = p["range_bits"]
    fn.seed = <uint64_t>p["seed"]
    return fn


cdef Tables make_tables(const int32_t[:, ::1] offsets, const int32_t[:, ::1] ids) noexcept:
    cdef Tables tb
    tb.n_tables = offsets.shape[0]
    tb.n_buckets = offsets.shape[1] - 1
    tb.stride = ids.shape[1]
    tb.offsets = &offsets[0, 0]
    tb.ids = &ids[0, 0]
    return tb


cdef struct Rows:
    # n rows of dim values, row i at base + i * dim: float32 (f32), or bfloat16 bit
    # patterns (b16; the weights of a precision="bfloat16" output layer)
    const float* f32
    const uint16_t* b16
    int64_t n
    int64_t dim


cdef Rows _rows(V) except *:
    """View ``V`` as rows: a C-contiguous float32 matrix, or a C-contiguous uint16
    matrix of bfloat16 values (the weights of a precision="bfloat16" output layer)."""
    cdef Rows rows
    cdef const float[:, ::1] vf
    cdef const uint16_t[:, ::1] vh
    rows.f32 = NULL
    rows.b16 = NULL
    if isinstance(V, np.ndarray) and V.dtype == np.uint16:
        vh = V
        rows.n, rows.dim = vh.shape[0], vh.shape[1]
        if rows.n > 0 and rows.dim > 0:
            rows.b16 = &vh[0, 0]
    else:
        vf = V
        rows.n, rows.dim = vf.shape[0], vf.shape[1]
        if rows.n > 0 and rows.dim > 0:
            rows.f32 = &vf[0, 0]
    return rows


cdef inline const float* _rows_at(const Rows* v, int64_t i, int64_t cnt,
                                  float* buf) noexcept nogil:
    """Rows ``i`` to ``i + cnt - 1`` as contiguous float32: in place, or widened from
    bfloat16 into ``buf``."""
    if v.b16 != NULL:
        sl_from_bf16(v.b16 + i * v.dim, buf, cnt * v.dim)
        return buf
    return v.f32 + i * v.dim


def hash_vectors(dict params, V, int n_threads=1, center=None, out=None):
    """Bucket ids of every row of ``V`` in every table, as a (L, n_rows) uint32 array.

    ``V``: a C-contiguous float32 matrix, or a C-contiguous uint16 matrix of bfloat16
    values (the weights of a precision="bfloat16" output layer).
    With ``center`` (a vector of ``dim`` floats), the rows ``V[i] - center`` are
    hashed instead. Subtracting one vector from every item leaves the ranking of
    the items by inner product with any query unchanged, so retrieval quality is
    kept, while the component the rows share (output weights of rarely seen labels
    all drift along the same direction) no longer piles them into a few buckets.
    ``out``: an array of that shape and dtype to write into (reused between rehashes:
    no fresh pages to fault in), else a new one.
    """
    cdef HashFn fn = make_hash_fn(params)
    cdef Rows v = _rows(V)
    if v.dim != fn.dim:
        raise ValueError(f"vectors have {v.dim} dims, the hash functions expect {fn.dim}")
    cdef Py_ssize_t n = v.n, i
    cdef int L = fn.n_tables, t, tid, d, dim = fn.dim
    cdef int n_hashes = fn.n_codes * fn.n_tables
    cdef bint centered = center is not None
    cdef const float* x
    center_np = np.zeros(dim, dtype=np.float32) if center is None else \
        np.ascontiguousarray(center, dtype=np.float32)
    if center_np.shape != (dim,):
        raise ValueError(f"center must have {dim} entries, got shape {center_np.shape}")
    cdef const float[::1] c = center_np
    if out is None or out.shape != (L, n) or out.dtype != np.uint32:
        out = np.empty((L, n), dtype=np.uint32)
    cdef uint32_t[:, ::1] out_v = out
    if n == 0:
        return out
    if ((fn.family == FAMILY_WTA or fn.family == FAMILY_DWTA) and fn.bin_size == 8
            and sl_wta_block_ok()):
        _hash_blocks16(&fn, &v, c, centered, out_v, n_threads)
        return out
    if fn.proj != NULL:
        _hash_dense_blocks(&fn, &v, c, centered, out_v, n_threads)
        return out
    T = max(n_threads, 1)
    codes_np = np.empty((T, n_hashes), dtype=np.int32)
    buckets_np = np.empty((T, L), dtype=np.uint32)
    row_np = np.empty((T, dim), dtype=np.float32)
    cdef int32_t[:, ::1] codes = codes_np
    cdef uint32_t[:, ::1] buck = buckets_np
    cdef float[:, ::1] row = row_np
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            tid = omp_get_thread_num()
            x = _rows_at(&v, i, 1, &row[tid, 0])
            if centered:
                for d in range(dim):
                    row[tid, d] = x[d] - c[d]
                x = &row[tid, 0]
            hash_vector(&fn, x, &codes[tid, 0], &buck[tid, 0])
            for t in range(L):
                out_v[t, i] = buck[tid, t]
    return out


cdef void _hash_blocks16(const HashFn* fn, const Rows* v, const float[::1] c,
                        bint centered, uint32_t[:, ::1] out_v, int n_threads) except *:
    """``hash_vectors`` for the (D)WTA families with bins of 8, 16 rows at a time with
    AVX-512: the rows transposed in registers (``sl_transpose16``; bfloat16 rows are
    widened into a buffer of 16 rows first), their codes compared lane by lane
    (``sl_wta8_block16``) and combined into buckets lane by lane
    (``sl_buckets_block16``, when ``code_base ** K`` fits 32 bits), so that the 16
    buckets of a table are one store. Rows with an empty bin (dwta) are densified and
    bucketed one by one, as ``hash_vector`` does; so are all rows when the keys need 64
    bits. The same buckets as ``hash_vector``."""
    cdef Py_ssize_t n = v.n, blk, n_blocks = (n + 15) // 16
    cdef int L = fn.n_tables, K = fn.n_codes, t, tid, r, cnt, i, dim = fn.dim
    cdef int n_hashes = K * L
    cdef bint dwta = fn.family == FAMILY_DWTA
    cdef uint64_t span = 1
    for i in range(K):
        span *= fn.code_base
        if span > (<uint64_t>1 << 32):
            break
    cdef bint lanes = span <= (<uint64_t>1 << 32)
    T = max(n_threads, 1)
    vt_np = np.zeros((T, dim * 16), dtype=np.float32)
    wide_np = np.zeros((T, dim * 16 if v.b16 != NULL else 1), dtype=np.float32)
    codes_np = np.empty((T, 16 * n_hashes), dtype=np.int32)
    row_np = np.empty((T, n_hashes), dtype=np.int32)
    buckets_np = np.empty((T, L), dtype=np.uint32)
    cdef float[:, ::1] vt = vt_np
    cdef float[:, ::1] wide = wide_np
    cdef int32_t[:, ::1] codes = codes_np
    cdef int32_t[:, ::1] row = row_np
    cdef uint32_t[:, ::1] buck = buckets_np
    cdef Py_ssize_t i0
    cdef uint32_t empty
    with nogil:
        for blk in prange(n_blocks, schedule="static", num_threads=n_threads):
            tid = omp_get_thread_num()
            i0 = blk * 16
            cnt = <int>min(<Py_ssize_t>16, n - i0)
            sl_transpose16(_rows_at(v, i0, cnt, &wide[tid, 0]), dim, cnt, dim,
                           &c[0] if centered else NULL, &vt[tid, 0])
            empty = sl_wta8_block16(&vt[tid, 0], fn.dims, n_hashes, dim, dwta,
                                    &codes[tid, 0])
            if lanes:
                sl_buckets_block16(&codes[tid, 0], L, K, <uint32_t>fn.code_base,
                                   fn.exact_buckets, fn.range_bits, &out_v[0, i0], n, cnt)
            for r in range(cnt):
                if lanes and not (dwta and (empty >> r) & 1):
                    continue
                for i in range(n_hashes):  # this row's codes, out of the lane-major block
                    row[tid, i] = codes[tid, 16 * i + r]
                if dwta and (empty >> r) & 1:
                    _densify(fn, &row[tid, 0], 0, n_hashes)
                _buckets(fn, &row[tid, 0], &buck[tid, 0])
                for t in range(L):
                    out_v[t, i0 + r] = buck[tid, t]


cdef enum:
    DENSE_BLOCK = 32  # rows a thread projects with one sgemm


cdef void _hash_dense_blocks(const HashFn* fn, const Rows* v, const float[::1] c,
                             bint centered, uint32_t[:, ::1] out_v,
                             int n_threads) except *:
    """``hash_vectors`` for dense SimHash / "mips" projections: DENSE_BLOCK rows at a
    time (widened from bfloat16 and centred into a buffer) projected by one sgemm, which
    reads the (K * L, dim) projections once per block where one sgemv a row read them
    for every row. "mips" rows add their last two coordinates after the product over
    the first dim - 2, as ``_dense_codes`` does. The order of the sums is sgemm's, so a
    projection within float32 rounding of zero may take the other bit than
    ``hash_vector`` gives it."""
    cdef Py_ssize_t n = v.n, blk, n_blocks = (n + DENSE_BLOCK - 1) // DENSE_BLOCK, i0
    cdef int L = fn.n_tables, n_hashes = fn.n_codes * fn.n_tables, dim = fn.dim
    cdef int t, tid, r, d, cnt
    cdef int m = fn.dim - 2 if fn.family == FAMILY_MIPS else fn.dim  # as _dense_codes
    T = max(n_threads, 1)
    x_np = np.zeros((T, DENSE_BLOCK * dim), dtype=np.float32)
    y_np = np.zeros((T, DENSE_BLOCK * n_hashes), dtype=np.float32)
    codes_np = np.empty((T, n_hashes), dtype=np.int32)
    buckets_np = np.empty((T, L), dtype=np.uint32)
    cdef float[:, ::1] xb = x_np
    cdef float[:, ::1] yb = y_np
    cdef int32_t[:, ::1] codes = codes_np
    cdef uint32_t[:, ::1] buck = buckets_np
    cdef const float* x
    cdef char tr = b'T', nt = b'N'
    cdef float one = 1, zero = 0
    with nogil:
        for blk in prange(n_blocks, schedule="static", num_threads=n_threads):
            tid = omp_get_thread_num()
            i0 = blk * DENSE_BLOCK
            cnt = <int>min(<Py_ssize_t>DENSE_BLOCK, n - i0)
            x = _rows_at(v, i0, cnt, &xb[tid, 0])  # widened into the buffer if bfloat16
            if centered:
                for r in range(cnt):
                    for d in range(dim):
                        xb[tid, r * dim + d] = x[r * dim + d] - c[d]
                x = &xb[tid, 0]
            # y (K*L x cnt, column-major) = proj[:, :m] . x[:, :m]^T
            sgemm(&tr, &nt, &n_hashes, &cnt, &m, &one, <float*>fn.proj, &dim,
                  <float*>x, &dim, &zero, &yb[tid, 0], &n_hashes)
            for r in range(cnt):
                _codes_of(fn, &yb[tid, r * n_hashes], x + r * dim, False, &codes[tid, 0])
                _buckets(fn, &codes[tid, 0], &buck[tid, 0])
                for t in range(L):
                    out_v[t, i0 + r] = buck[tid, t]


def column_sums(V, int n_threads=1):
    """Sums of the columns of ``V`` in float64, as ``V.sum(axis=0, dtype=np.float64)``
    but without a float64 copy of ``V``: fixed blocks of 4096 rows are summed in
    parallel, then the block sums in block order (the result does not depend on
    ``n_threads``). The centre of the rehashed rows is their mean. ``V``: as for
    ``hash_vectors`` (float32, or bfloat16 bit patterns)."""
    cdef Rows v = _rows(V)
    cdef Py_ssize_t n = v.n, dim = v.dim, blk, n_blocks = (n + 4095) // 4096
    cdef Py_ssize_t i, d, b
    cdef int tid, T = max(n_threads, 1)
    cdef const float* x
    part_np = np.zeros((max(n_blocks, 1), dim), dtype=np.float64)
    buf_np = np.zeros((T, max(dim, 1)), dtype=np.float32)
    cdef double[:, ::1] part = part_np
    cdef float[:, ::1] buf = buf_np
    with nogil:
        for blk in prange(n_blocks, schedule="static", num_threads=T):
            tid = omp_get_thread_num()
            for i in range(blk * 4096, min(n, (blk + 1) * 4096)):
                x = _rows_at(&v, i, 1, &buf[tid, 0])
                for d in range(dim):
                    part[blk, d] += x[d]
    out = np.zeros(dim, dtype=np.float64)
    cdef double[::1] o = out
    for b in range(n_blocks):
        for d in range(dim):
            o[d] += part[b, d]
    return out


def hash_codes(dict params, const float[::1] vec, bint query=False):
    """The K * L raw codes of one vector, before they are combined into buckets, and
    its buckets (slidelearn._slide._testing); with ``query``, those of ``hash_query``
    (for "mips", ``vec`` is then a hidden activation of dim - 2 floats)."""
    cdef HashFn fn = make_hash_fn(params)
    cdef int want = fn.dim - 2 if query and fn.family == FAMILY_MIPS else fn.dim
    if vec.shape[0] != want:
        raise ValueError(f"vector has {vec.shape[0]} dims, the hash functions expect {want}")
    codes = np.empty(fn.n_codes * fn.n_tables, dtype=np.int32)
    buckets = np.empty(fn.n_tables, dtype=np.uint32)
    cdef int32_t[::1] c = codes
    cdef uint32_t[::1] b = buckets
    if query:
        hash_query(&fn, &vec[0], &c[0], &b[0])
    else:
        hash_vector(&fn, &vec[0], &c[0], &b[0])
    return codes, buckets


def build_tables(const uint32_t[:, ::1] buckets, Py_ssize_t n_buckets, int bucket_size,
                 bint reservoir, uint64_t seed, int n_threads=1, out=None):
    """Build L bucket tables in CSR form from the (L, n_items) bucket ids of the items.

    Items are inserted in index order into buckets that keep at most ``bucket_size``
    ids: FIFO keeps the last ``bucket_size`` inserted, reservoir sampling keeps a
    uniform random subset of that size. Only the ids kept are stored, so memory
    is ``L * (n_buckets + 1 + n_items)`` integers however skewed the buckets are.

    Returns ``offsets`` of shape (L, n_buckets + 1) and ``ids`` of shape
    (L, n_items); bucket ``b`` of table ``t`` is ``ids[t, offsets[t, b]:offsets[t, b + 1]]``.
    ``out``: ``(offsets, ids)`` arrays of those shapes to overwrite (a rebuild reuses
    the previous tables' memory), else new ones.
    """
    cdef Py_ssize_t L = buckets.shape[0], n = buckets.shape[1], i, b
    cdef int t, tid, cap = bucket_size
    cdef int32_t r, slot, c
    cdef uint64_t state
    if bucket_size < 1:
        raise ValueError("bucket_size must be >= 1")
    offsets_np, ids_np = out if out is not None else (None, None)
    if (offsets_np is None or offsets_np.shape != (L, n_buckets + 1)
            or offsets_np.dtype != np.int32):
        offsets_np = np.empty((L, n_buckets + 1), dtype=np.int32)
    if ids_np is None or ids_np.shape != (L, max(n, 1)) or ids_np.dtype != np.int32:
        ids_np = np.empty((L, max(n, 1)), dtype=np.int32)
    cdef int32_t[:, ::1] offsets = offsets_np
    cdef int32_t[:, ::1] ids = ids_np
    n_threads = max(1, min(n_threads, L))
    # per bucket, side by side (one cache line for both): [count (then the bucket's first
    # slot), next insert position]
    scratch_np = np.empty((n_threads, n_buckets, 2), dtype=np.int32)
    cdef int32_t[:, :, ::1] scratch = scratch_np
    cdef int32_t p
    with nogil:
        for t in prange(L, schedule="static", num_threads=n_threads):
            tid = omp_get_thread_num()
            for b in range(n_buckets):
                scratch[tid, b, 0] = 0
            for i in range(n):
                if buckets[t, i] >= n_buckets:
                    continue  # cannot happen with ids from hash_vectors
                scratch[tid, buckets[t, i], 0] += 1
            offsets[t, 0] = 0
            for b in range(n_buckets):
                c = scratch[tid, b, 0]
                offsets[t, b + 1] = offsets[t, b] + (c if c < cap else cap)
            # FIFO keeps the last `cap` of a bucket's c items, so its r-th item goes to
            # offsets[b] + r - max(c - cap, 0), when that is inside the bucket; reservoir
            # sampling puts the first `cap` in order, then the r-th (r >= cap) into a
            # random slot with probability cap / (r + 1)
            if reservoir:
                state = splitmix64(seed + <uint64_t>t) | 1
            for b in range(n_buckets):
                c = scratch[tid, b, 0]
                scratch[tid, b, 0] = offsets[t, b]
                scratch[tid, b, 1] = offsets[t, b] - (c - cap if c > cap and not reservoir
                                                      else 0)
            for i in range(n):
                b = buckets[t, i]
                if b >= n_buckets:
                    continue  # cannot happen with ids from hash_vectors
                p = scratch[tid, b, 1]
                scratch[tid, b, 1] = p + 1
                if reservoir and p >= offsets[t, b + 1]:  # a full bucket
                    r = p - scratch[tid, b, 0]
                    slot = <int32_t>rng_below(&state, <uint32_t>(r + 1))
                    if slot < cap:
                        ids[t, scratch[tid, b, 0] + slot] = <int32_t>i
                elif p >= scratch[tid, b, 0]:
                    ids[t, p] = <int32_t>i
                    if p + IDS_AHEAD < n:
                        sl_prefetchw_int(&ids[t, p + IDS_AHEAD])
    return offsets_np, ids_np
