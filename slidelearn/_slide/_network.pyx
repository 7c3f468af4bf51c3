"""SLIDE network kernels: sparse input layer, dense hidden layers, LSH-sampled
softmax output layer, training over the samples of a batch in parallel, sparse
Adam, and exact / LSH top-k inference.

The kernels read and update the arrays of a ``SlideState`` (``_state.py``, which
describes their layout: ``W_in``, ``dense`` with the offsets ``w_off`` / ``b_off``,
``W_out``, ``b_out`` and their Adam state) and the scratch and gradient buffers of a
:class:`Workspace`.

Training keeps, per batch position, the activations and their gradients and the
output layer's (neuron, d loss / d logit) records; the input and hidden layers'
batch-mean gradients are then summed from them in batch order into ``g_in`` /
``g_dense`` (``_layer_grads``), the output layer's by ``output_adam`` from the
records (or, when the records would not fit, added by the threads into a shared
``g_out`` / ``gb_out``). ``adam_update`` then updates only the rows touched in the
batch and clears their gradients.
"""
import numpy as np

from cython.parallel import prange

from libc.math cimport expf, logf, log, fabsf, fmaxf, sqrt, INFINITY
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport malloc, calloc, free

from scipy.linalg.cython_blas cimport sgemm

from slidelearn._slide._hashing cimport (
    HashFn, Tables, hash_query, make_hash_fn, make_tables, splitmix64, rng_below, rng_next,
)
from slidelearn.utils._openmp_helpers cimport omp_get_thread_num

ctypedef fused index_t:
    int32_t
    int64_t

cdef extern from "../utils/_simd.h" nogil:
    void sl_vec_set_level(int level)
    int sl_vec_get_level()
    float sl_dot(const float *a, const float *b, int n)
    void sl_axpy(float alpha, const float *x, float *y, int n)
    void sl_adam_row(float *w, float *m, float *v, float *g, int n,
                     float lr_t, float b1, float b2, float eps, float alpha)
    void sl_sum_rows(const float *alpha, const int32_t *ids, int64_t n_rows,
                     const float *x, int64_t ld, float *y, int n)
    void sl_add_rows(const float *alpha, const int32_t *ids, int64_t n_rows,
                     const float *x, int64_t ld, float *y, int n, int pf)
    void sl_add_rows64(const float *alpha, const int64_t *ids, int64_t n_rows,
                       const float *x, int64_t ld, float *y, int n, int pf)
    void sl_prefetch_row(const float *p, int n)
    void sl_prefetchw_row(float *p, int n)
    void sl_dropout(float *h, int n, uint32_t key, uint32_t thr, float scale)
    uint32_t sl_mix32(uint32_t x)
    void sl_minmax(const float *x, int n, float *lo, float *hi)
    float sl_exp_shift_sum(float *x, int n, float m)
    void sl_bins(const float *x, int n, float lo, float scale, int top, uint16_t *out)

cdef extern from "_buckets.h" nogil:
    void sl_prefetch_ids(const int32_t *p, int64_t n)
    void sl_prefetch_int(const int32_t *p)
    int64_t sl_vote_bucket(const int32_t *ids, int64_t n, uint8_t *mark, int32_t *cand,
                           int64_t nc, int64_t ahead)
    int64_t sl_take_bucket(const int32_t *ids, int64_t n, uint8_t *mark, int32_t *act,
                           int64_t n_act, int64_t ahead)
    int64_t sl_take_voted(const int32_t *cand, int64_t nc, uint8_t *mark, int threshold,
                          int32_t *act, int64_t n_act, int64_t ahead)

cdef extern from "../utils/_bfloat16.h" nogil:
    void sl_bf16_set_level(int level)
    int sl_bf16_get_level()
    void sl_to_bf16(const float *x, uint16_t *out, int64_t n)
    float sl_dot_bf16(const uint16_t *a, const uint16_t *b, int64_t n)
    void sl_axpy_bf16(float alpha, const uint16_t *x, float *y, int64_t n)
    void sl_sum_rows_bf16(const float *alpha, const int32_t *ids, int64_t n_rows,
                          const uint16_t *x, int64_t ld, float *y, int64_t n)

cdef extern from "_radix.h" nogil:
    enum: SL_RADIX_SIZE
    void sl_radix_sort_kv(uint64_t *key, float *val, uint64_t *tk, float *tv, int64_t n,
                          int shift, int bits, int n_threads, int64_t *hist)
    int64_t sl_key_runs(const uint64_t *key, int64_t n, int64_t *runs, int n_threads,
                        int64_t *cnt)

cdef extern from "_adam16.h" nogil:
    void sl_adam16_row(uint16_t *w, uint16_t *s, const float *g, int n, float lr_t,
                       float b1, float b2, float eps, float alpha, uint32_t seed)
    void sl_adam16_row_loop(uint16_t *w, uint16_t *s, const float *g, int n, float lr_t,
                            float b1, float b2, float eps, float alpha, uint32_t seed)
    void sl_adam16_records(uint16_t *w, uint16_t *s, const float *dz, const uint64_t *keys,
                           int64_t n_rec, const uint16_t *Hb, int64_t ld, float *g, int n,
                           float lr_t, float b1, float b2, float eps, float alpha,
                           uint32_t seed)

cdef extern from "../utils/_bf16_split.h" nogil:
    void sl_join_round_n(const uint16_t *hi, const uint16_t *lo, float *out, int64_t n)
    void sl_split_round_n(const float *w, uint16_t *hi, uint16_t *lo, int64_t n)
    float sl_bf16_to_f32(uint16_t h)

from slidelearn.utils import _cpu

# Vector code for the CPU level chosen at import (SLIDELEARN_CPU_LEVEL forces a lower
# one): _cpu levels generic / avx2 / avx512 / avx512_bf16 -> _simd.h 0 / 1 / 2 / 2 and
# _bfloat16.h 0 / 0 / 1 / 2.
sl_vec_set_level((0, 1, 2, 2)[_cpu._level_index()])
sl_bf16_set_level((0, 0, 1, 2)[_cpu._level_index()])


# Per-thread marks of the output neurons while an active set is gathered: 0 = unseen,
# 1..n_tables = found in that many of the sample's buckets, SENT = in the set. One byte
# each, so that a thread's marks (n_labels bytes: 670 KB for Amazon-670K) stay in the
# L2 cache, where int32 marks would not; hence at most MAX_TABLES tables, so that a
# count never reaches SENT.
ctypedef uint8_t mark_t
cdef mark_t SENT = 255
cdef enum:
    MAX_TABLES_C = 254
MAX_TABLES = MAX_TABLES_C
# How many active rows ahead the output-layer loops prefetch.
cdef int PREFETCH = 6
# The forward pass of a training sample prefetches its active neurons' output rows and
# biases this many neurons ahead: a float32 row is 8 lines, a bfloat16 row 4, and the
# loop does little else, so that both wait on memory unless the rows are requested
# well ahead; a bfloat16 row being half the lines, it goes further ahead for the same
# lines in flight.
cdef int OUT_AHEAD = 12
cdef int OUT_AHEAD_BF16 = 20
# Output neurons ahead of the one being updated whose rows output_adam prefetches:
# each float32 update streams 1.5 KB of weights and moments (24 lines, and 3 of the
# bias arrays), so fewer rows ahead than for the dot products: too few leave the update
# waiting on memory, too many put more lines in flight than the core tracks. A bfloat16
# update streams 1 KB (16 lines and 3), so more of its rows fit in flight.
cdef int ADAM_AHEAD = 4
cdef int ADAM_AHEAD_BF16 = 8
# Hash tables ahead of the one being read whose bucket _voted_set prefetches.
cdef int BUCKETS_AHEAD = 4
# _active_set: lines of bucket ids its prefetch cursor runs ahead of the scan, and
# ids ahead of the one being counted whose marks it prefetches.
cdef int STREAM_AHEAD = 24
cdef int MARKS_AHEAD = 32
# precision="bfloat16" marks the output rows it updates in blocks of this many rows
cdef enum:
    DIRTY = 64
DIRTY_ROWS = DIRTY


cpdef int64_t active_capacity(int64_t n_labels, int64_t max_labels, int n_tables,
                              int bucket_size, int min_active):
    """Columns of an active-set buffer (``act``) for rows with at most ``max_labels``
    labels: the largest possible active set, plus one slot for the unconditional store
    of the branch-free bucket scans (sl_take_bucket and sl_take_voted write each id at
    ``act[n_act]`` before deciding whether to keep it, also once the set holds every
    label)."""
    return min(n_labels, max_labels + <int64_t>n_tables * bucket_size + min_active) + 1


cpdef int bf16_state_width(int H):
    """16-bit values in a row of a precision="bfloat16" output state ``s16_out``:
    ``[lo (H) | m (H) | v (H)]``, padded to 64 bytes (12 cache lines for H = 128)."""
    return (3 * H + 31) // 32 * 32


# Per-thread scalars (random state, list lengths) sit THREAD_STRIDE entries apart, one
# 64-byte cache line each, so that threads updating their own do not share a line.
THREAD_STRIDE = 8
cdef int STRIDE = THREAD_STRIDE


cdef struct Net:
    int n_features
    int n_labels
    int n_layers            # hidden layers
    int h_last              # width of the last hidden layer
    int max_width           # widest hidden layer
    const int64_t* sizes    # (n_layers,)
    const int64_t* w_off    # (n_layers,) offset of W_i in dense (unused for i = 0)
    const int64_t* b_off    # (n_layers,) offset of b_i in dense
    const int64_t* a_off    # (n_layers,) offset of layer i in the activation buffer
    float* W_in
    float* dense
    float* W_out
    float* b_out


cdef struct Work:
    # per thread
    float* acts             # the current sample's activations, row r of the records
    float* delta            # its d loss / d activation, row r of the records
    int32_t* codes
    uint32_t* buckets
    int32_t* act
    float* logits
    int32_t* cand
    mark_t* mark            # (n_labels,), all zero between samples
    uint64_t* rng
    int32_t* out_list
    int64_t* out_count
    int32_t* in_list
    int64_t* in_count
    # shared
    uint8_t* out_flag       # 1 = touched in this batch (listed by some thread), 2 = merged
    uint8_t* in_flag
    float* g_in
    float* g_out
    float* gb_out
    # Transposed output gradient (when rec_ids is not NULL): batch position r records
    # its active neurons and their d loss / d logit in row r of rec_ids / rec_dz, and
    # the last hidden activations it used in row r of Hb (in bfloat16, as the dot
    # products used them, in Hb16 with precision="bfloat16"); output_adam then forms
    # each touched neuron's gradient from them, so g_out / gb_out are not used.
    int32_t* rec_ids
    float* rec_dz
    int32_t* rec_n
    float* Hb
    uint16_t* Hb16
    int64_t rec_cap
    # the bfloat16 output weights of precision="bfloat16" (NULL: W_out, float32), row j
    # at W16 + j * H, and this thread's activations rounded to bfloat16
    const uint16_t* W16
    uint16_t* h16


cdef class Workspace:
    """The scratch and gradient buffers of training with ``n_threads`` threads: made
    once per fit (``Workspace.ensure``) and kept between batches while they fit, since
    faulting in buffers of ``n_labels`` or ``n_features`` rows at every batch would cost
    as much as the batch. Gradients, flags and list lengths are zero between batches
    (``adam_update`` and ``output_adam`` clear what a batch wrote).

    ``transposed``: each batch position records its output gradient (``rec_*``, ``Hb``
    or ``Hb16``) for ``output_adam``, instead of the threads adding it into the
    ``(n_labels, H)`` arrays ``g_out`` / ``gb_out`` (the label-parallel path). The
    buffers of the other mode, and ``Hb`` or ``Hb16`` and ``h16`` of the other
    precision (``bf16``), are empty. ``scatter``: whether ``g_out`` / ``gb_out`` exist
    (not transposed, and not made with ``scatter=False``: the bfloat16 shared
    softmax, which steps its candidates itself, needs neither them nor the records);
    the kernels that add into ``g_out`` refuse a Workspace without them.
    """
    # activations and their gradients, a row per batch position (_layer_grads)
    cdef readonly float[:, ::1] acts
    cdef readonly float[:, ::1] delta
    # per thread: hash codes and buckets, active set, logits, candidates, marks
    cdef readonly int32_t[:, ::1] codes
    cdef readonly uint32_t[:, ::1] buckets
    cdef readonly int32_t[:, ::1] act
    cdef readonly float[:, ::1] logits
    cdef readonly int32_t[:, ::1] cand
    cdef readonly mark_t[:, ::1] mark
    cdef readonly uint64_t[::1] rng          # THREAD_STRIDE apart
    # rows touched in a batch: listed per thread (lengths THREAD_STRIDE apart), flagged
    # in shared arrays, merged without duplicates by adam_update
    cdef readonly int32_t[:, ::1] out_list
    cdef readonly int64_t[::1] out_count
    cdef readonly int32_t[:, ::1] in_list
    cdef readonly int64_t[::1] in_count
    cdef readonly uint8_t[::1] out_flag
    cdef readonly uint8_t[::1] in_flag
    cdef readonly int32_t[::1] uniq_out
    cdef readonly int32_t[::1] uniq_in
    # batch gradients of the input and hidden layers (g_dense: one row)
    cdef readonly float[:, ::1] g_in
    cdef readonly float[:, ::1] g_dense
    # the output layer's, scattered (not transposed) ...
    cdef readonly float[:, ::1] g_out
    cdef readonly float[::1] gb_out
    # ... or recorded per batch position, with the buffers output_adam sorts them in
    cdef readonly int32_t[:, ::1] rec_ids
    cdef readonly float[:, ::1] rec_dz
    cdef readonly int32_t[::1] rec_n
    cdef readonly float[:, ::1] Hb           # the activations each position used
    cdef readonly uint16_t[:, ::1] Hb16      # the same in bfloat16 (precision="bfloat16")
    cdef readonly uint64_t[::1] sort_keys
    cdef readonly float[::1] sort_vals
    cdef readonly uint64_t[::1] sort_tkeys
    cdef readonly float[::1] sort_tvals
    cdef readonly int64_t[::1] runs
    cdef readonly float[:, ::1] gbuf
    # precision="bfloat16": each thread's activations rounded to bfloat16
    cdef readonly uint16_t[:, ::1] h16
    cdef readonly tuple key
    cdef readonly int n_threads
    cdef readonly int64_t act_cap
    cdef readonly bint transposed
    cdef readonly bint scatter
    cdef readonly bint bf16
    # the bucket codes of the last rebuild of the training tables (SlideState.hash_output)
    cdef public object hash_buckets

    def __init__(self, state, int n_threads, params, int64_t act_cap, bint transposed,
                 bint bf16, tuple key=None, bint scatter=True):
        n_features, H0 = state.W_in.shape
        n_labels, H = state.W_out.shape
        cdef int T = n_threads, L = params.n_tables
        cdef int64_t rows = params.batch_size, total = int(np.sum(state.sizes))
        self.key = key
        self.n_threads = T
        self.act_cap = act_cap
        self.transposed = transposed
        self.scatter = scatter and not transposed
        self.bf16 = bf16
        self.hash_buckets = None
        self.acts = np.zeros((rows, total), dtype=np.float32)
        self.delta = np.zeros((rows, total), dtype=np.float32)
        self.codes = np.zeros((T, params.n_codes * L), dtype=np.int32)
        self.buckets = np.zeros((T, L), dtype=np.uint32)
        self.act = np.zeros((T, act_cap), dtype=np.int32)
        self.logits = np.zeros((T, act_cap), dtype=np.float32)
        self.cand = np.zeros((T, max(1, L * params.bucket_size)), dtype=np.int32)
        self.mark = np.zeros((T, n_labels), dtype=np.uint8)
        self.g_dense = np.zeros((1, state.dense.shape[0]), dtype=np.float32)
        self.rng = np.zeros(T * STRIDE, dtype=np.uint64)
        self.out_list = np.zeros((T, n_labels), dtype=np.int32)
        self.out_count = np.zeros(T * STRIDE, dtype=np.int64)
        self.in_list = np.zeros((T, n_features), dtype=np.int32)
        self.in_count = np.zeros(T * STRIDE, dtype=np.int64)
        self.out_flag = np.zeros(n_labels, dtype=np.uint8)
        self.in_flag = np.zeros(n_features, dtype=np.uint8)
        self.uniq_out = np.zeros(n_labels, dtype=np.int32)
        self.uniq_in = np.zeros(n_features, dtype=np.int32)
        self.g_in = np.zeros((n_features, H0), dtype=np.float32)
        # the buffers of the other mode (and of the other precision) are left empty
        cdef int64_t out_rows = n_labels if self.scatter else 0
        cdef int64_t rec_rows = rows if transposed else 0, rec_cap = act_cap if transposed else 0
        self.g_out = np.zeros((out_rows, H), dtype=np.float32)
        self.gb_out = np.zeros(out_rows, dtype=np.float32)
        self.rec_ids = np.zeros((rec_rows, rec_cap), dtype=np.int32)
        self.rec_dz = np.zeros((rec_rows, rec_cap), dtype=np.float32)
        self.rec_n = np.zeros(rec_rows, dtype=np.int32)
        self.Hb = np.zeros((0 if bf16 else rec_rows, H), dtype=np.float32)
        self.Hb16 = np.zeros((rec_rows if bf16 else 0, H), dtype=np.uint16)
        self.sort_keys = np.zeros(rec_rows * rec_cap, dtype=np.uint64)
        self.sort_vals = np.zeros(rec_rows * rec_cap, dtype=np.float32)
        self.sort_tkeys = np.zeros(rec_rows * rec_cap, dtype=np.uint64)
        self.sort_tvals = np.zeros(rec_rows * rec_cap, dtype=np.float32)
        self.runs = np.zeros(n_labels + 1 if transposed else 0, dtype=np.int64)
        self.gbuf = np.zeros((T if transposed else 0, H), dtype=np.float32)
        self.h16 = np.zeros((T if bf16 else 0, H), dtype=np.uint16)

    @staticmethod
    def ensure(work, state, int n_threads, int64_t max_labels, params, bint transposed=True,
               bint scatter=True):
        """``work`` when it was made for the same sizes with room for active sets of
        rows of ``max_labels`` labels, else a new Workspace. ``transposed`` is granted
        only when the gradient records take at most the size of the output layer (or
        64 MiB); precision="bfloat16" (``params.precision``) needs them, unless
        ``scatter`` is False as well (no output gradient kept at all: the bfloat16
        shared softmax)."""
        n_features, H0 = state.W_in.shape
        n_labels, H = state.W_out.shape
        act_cap = int(active_capacity(n_labels, max_labels, params.n_tables,
                                      params.bucket_size, params.min_active))
        rows = int(params.batch_size)
        transposed = transposed and rows * act_cap * 32 <= max(64 << 20, n_labels * H * 4)
        bf16 = params.precision == "bfloat16"
        if bf16 and not transposed and scatter:
            raise ValueError("precision='bfloat16' needs batch_size * (max labels per row "
                             "+ n_tables * bucket_size + min_active) * 32 bytes of "
                             "gradient records at most the size of the output layer; "
                             "lower batch_size or use precision='float32'.")
        key = (n_threads, params.n_tables, params.n_codes, params.bucket_size, n_labels, H,
               n_features, H0, transposed, rows, bf16, scatter and not transposed)
        if work is not None and work.key == key and work.act_cap >= act_cap:
            return work
        return Workspace(state, n_threads, params, act_cap, transposed, bf16, key, scatter)

    cdef (Py_ssize_t, Py_ssize_t) records_shape(self) noexcept:
        """(rows, width) of the activations the transposed records keep: ``Hb16`` with
        ``bf16``, else ``Hb``."""
        if self.bf16:
            return self.Hb16.shape[0], self.Hb16.shape[1]
        return self.Hb.shape[0], self.Hb.shape[1]

    cdef void thread_work(self, Work* w, int t) noexcept:
        """Thread t's scratch (and the shared arrays) in ``w``; its activation rows
        and the transposed records are set by the caller."""
        w.codes = &self.codes[t, 0]
        w.buckets = &self.buckets[t, 0]
        w.act = &self.act[t, 0]
        w.logits = &self.logits[t, 0]
        w.cand = &self.cand[t, 0]
        w.mark = &self.mark[t, 0]
        w.rng = &self.rng[t * STRIDE]
        w.out_list = &self.out_list[t, 0]
        w.out_count = &self.out_count[t * STRIDE]
        w.in_list = &self.in_list[t, 0]
        w.in_count = &self.in_count[t * STRIDE]
        w.out_flag = &self.out_flag[0]
        w.in_flag = &self.in_flag[0]
        w.g_in = &self.g_in[0, 0]


cdef Net _make_net(state, bint writable) except *:
    """Pointers into the arrays of ``state`` (a ``SlideState``). Training
    (writable=True) requires writable arrays; inference also accepts read-only ones
    (e.g. a memory-mapped model)."""
    cdef Net net
    cdef float[:, ::1] W_in_w, W_out_w
    cdef float[::1] dense_w, b_out_w
    cdef const float[:, ::1] W_in = state.W_in
    cdef const float[::1] dense = state.dense
    cdef const float[:, ::1] W_out = state.W_out
    cdef const float[::1] b_out = state.b_out
    cdef const int64_t[::1] sizes = state.sizes
    cdef const int64_t[::1] w_off = state.w_off
    cdef const int64_t[::1] b_off = state.b_off
    cdef const int64_t[::1] a_off = state.a_off
    if writable:  # raises a clear error on read-only arrays instead of writing into them
        W_in_w = state.W_in
        dense_w = state.dense
        W_out_w = state.W_out
        b_out_w = state.b_out
    net.n_features = W_in.shape[0]
    net.n_labels = W_out.shape[0]
    net.n_layers = sizes.shape[0]
    net.h_last = W_out.shape[1]
    net.max_width = int(max(state.sizes))
    net.sizes = &sizes[0]
    net.w_off = &w_off[0]
    net.b_off = &b_off[0]
    net.a_off = &a_off[0]
    net.W_in = <float*>&W_in[0, 0]
    net.dense = <float*>&dense[0]
    net.W_out = <float*>&W_out[0, 0]
    net.b_out = <float*>&b_out[0]
    return net


cdef void _forward_hidden(const Net* net, const float* xd, const index_t* xi,
                          index_t start, index_t end, float* acts) noexcept nogil:
    """Hidden activations (ReLU) of one sparse row; layer i at acts + a_off[i]."""
    cdef int H0 = <int>net.sizes[0], i, k, n_in, n_out
    cdef index_t p
    cdef float* a = acts
    cdef const float* b = net.dense + net.b_off[0]
    cdef float* prev
    for k in range(H0):
        a[k] = b[k]
    # the row's sum in registers, a block of columns at a time (its rows prefetched)
    if index_t is int32_t:
        sl_add_rows(xd + start, xi + start, end - start, net.W_in, H0, a, H0, H0)
    else:
        sl_add_rows64(xd + start, xi + start, end - start, net.W_in, H0, a, H0, H0)
    for k in range(H0):
        if a[k] < 0:
            a[k] = 0
    for i in range(1, net.n_layers):
        n_in = <int>net.sizes[i - 1]
        n_out = <int>net.sizes[i]
        prev = acts + net.a_off[i - 1]
        a = acts + net.a_off[i]
        b = net.dense + net.b_off[i]
        for k in range(n_out):
            a[k] = b[k]
        for k in range(n_in):
            if prev[k] != 0:
                sl_axpy(prev[k], net.dense + net.w_off[i] + <int64_t>k * n_out, a, n_out)
        for k in range(n_out):
            if a[k] < 0:
                a[k] = 0


cdef Tables _tables(lsh) except *:
    """The bucket tables of ``lsh``, at most MAX_TABLES of them (one-byte marks)."""
    cdef Tables tb = make_tables(lsh.offsets, lsh.ids)
    if tb.n_tables > MAX_TABLES:
        raise ValueError(f"at most {MAX_TABLES} hash tables are supported, got {tb.n_tables}")
    return tb


cdef inline void _prefetch_neuron(const Net* net, int32_t j, int H) noexcept nogil:
    """An output neuron's weight row and its bias (one random line of n_labels floats)."""
    sl_prefetch_row(net.W_out + <int64_t>j * H, H)
    sl_prefetch_row(net.b_out + j, 1)


cdef inline const int32_t* _bucket_offset(const Tables* tb, const Work* w,
                                          int t) noexcept nogil:
    return tb.offsets + <int64_t>t * (tb.n_buckets + 1) + w.buckets[t]


cdef inline void _prefetch_bucket(const Tables* tb, const Work* w, int t) noexcept nogil:
    cdef const int32_t* off = _bucket_offset(tb, w, t)
    sl_prefetch_ids(tb.ids + <int64_t>t * tb.stride + off[0], off[1] - off[0])


cdef struct IdStream:
    # The prefetch cursor of _active_set: table t, id position p in its bucket.
    const int32_t* ids
    int64_t stride
    const int64_t* lo
    const int64_t* hi
    int t
    int L
    int64_t p


cdef inline void _stream_next(IdStream* s) noexcept nogil:
    """Prefetch the next line of the concatenated buckets (then move the cursor)."""
    while s.t < s.L and s.p >= s.hi[s.t]:
        if s.hi[s.t] > s.lo[s.t]:  # the bucket's last line, when it starts mid-line
            sl_prefetch_int(s.ids + s.t * s.stride + s.hi[s.t] - 1)
        s.t += 1
        if s.t < s.L:
            s.p = s.lo[s.t]
    if s.t < s.L:
        sl_prefetch_int(s.ids + s.t * s.stride + s.p)
        s.p += 16


cdef int _active_set(const Net* net, const Tables* tb, Work* w, const int32_t* labels,
                     int m, int min_active, int threshold) noexcept nogil:
    """Fill w.act: true labels first, then retrieved neurons, then random ones.

    The buckets are random runs of lines in tables of hundreds of MB. All L bucket
    offsets are read first; then a prefetch cursor runs STREAM_AHEAD lines ahead of
    the scan through the buckets (one line per 16 ids), and the marks of the ids
    MARKS_AHEAD positions on are prefetched (670 KB of random bytes for Amazon-670K,
    which the row traffic of the output layer keeps pushing out of L2). The counting
    itself is branch-free C (sl_vote_bucket and the helpers beside it in _buckets.h):
    whether an id was seen before follows no pattern, so a branch on it mispredicts.
    Prefetching whole buckets some tables ahead instead left the loads of the ids, then
    those of the marks, waiting on memory."""
    cdef int n_act = 0, q, t, nc = 0, target, s, start, L = tb.n_tables
    cdef int32_t j, n = net.n_labels
    cdef mark_t* mark = w.mark
    cdef int64_t lo, hi
    cdef const int32_t* ids
    cdef const int32_t* off
    cdef int64_t blo[MAX_TABLES_C]
    cdef int64_t bhi[MAX_TABLES_C]
    cdef IdStream st
    for t in range(L):
        sl_prefetch_int(_bucket_offset(tb, w, t))
    for q in range(m):
        j = labels[q]
        if mark[j] == 0:
            mark[j] = SENT
            w.act[n_act] = j
            n_act += 1
    for t in range(L):
        off = _bucket_offset(tb, w, t)
        blo[t] = off[0]
        bhi[t] = off[1]
    st.ids = tb.ids
    st.stride = tb.stride
    st.lo = blo
    st.hi = bhi
    st.t = 0
    st.L = L
    st.p = blo[0] if L > 0 else 0
    for q in range(STREAM_AHEAD):
        _stream_next(&st)
    for t in range(L):
        lo = blo[t]
        hi = bhi[t]
        for q in range((hi - lo + 15) >> 4):  # as many lines ahead as this bucket has
            _stream_next(&st)
        ids = tb.ids + <int64_t>t * tb.stride + lo
        if threshold <= 1:
            n_act = sl_take_bucket(ids, hi - lo, mark, w.act, n_act, MARKS_AHEAD)
        else:
            nc = sl_vote_bucket(ids, hi - lo, mark, w.cand, nc, MARKS_AHEAD)
    if threshold > 1:
        n_act = sl_take_voted(w.cand, nc, mark, threshold, w.act, n_act, MARKS_AHEAD)
    target = min_active if min_active < n else n
    if n_act < target:
        if 2 * target > n:
            start = <int>rng_below(w.rng, <uint32_t>n)
            for s in range(n):
                j = (start + s) % n
                if w.mark[j] == 0:
                    w.mark[j] = SENT
                    w.act[n_act] = j
                    n_act += 1
                    if n_act >= target:
                        break
        else:
            while n_act < target:
                j = <int32_t>rng_below(w.rng, <uint32_t>n)
                if w.mark[j] == 0:
                    w.mark[j] = SENT
                    w.act[n_act] = j
                    n_act += 1
    return n_act


cdef inline float _logit_grad(float e, float total, bint is_label, float inv_m,
                              float inv_batch) noexcept nogil:
    """d loss / d logit of one active neuron, over the batch: (softmax - target) /
    batch, with e its exp(logit - max) and each of the sample's m labels a target
    of 1 / m."""
    cdef float dz = e / total
    if is_label:
        dz = dz - inv_m
    return dz * inv_batch


cdef double _train_sample(const Net* net, const HashFn* fn, const Tables* tb, Work* w,
                          const float* xd, const index_t* xi, index_t start, index_t end,
                          const int32_t* labels, int m, int min_active, int threshold,
                          float inv_batch, float dropout, int64_t r,
                          int* n_act_out) noexcept nogil:
    cdef int H = net.h_last, a, n_act, k, L = net.n_layers, ahead
    cdef int32_t j
    cdef float* h = w.acts + net.a_off[L - 1]
    cdef float* dh = w.delta + net.a_off[L - 1]
    cdef float zmax, z, total, dz, inv_m = 1.0 / m, keep_scale = 1.0
    cdef double loss = 0
    cdef const float* wrow
    cdef float* grow

    _forward_hidden(net, xd, xi, start, end, w.acts)
    hash_query(fn, h, w.codes, w.buckets)
    n_act = _active_set(net, tb, w, labels, m, min_active, threshold)
    n_act_out[0] = n_act
    if dropout > 0:
        # Inverted dropout on the last hidden layer (after hashing, so retrieval sees
        # the full activation); dropped units are 0 and get no gradient below.
        keep_scale = 1.0 / (1.0 - dropout)
        for k in range(H):
            if (rng_next(w.rng) >> 40) * (1.0 / 16777216.0) < dropout:
                h[k] = 0
            else:
                h[k] = h[k] * keep_scale

    # Sampled softmax over the active neurons (true labels are act[0:m]).
    zmax = -INFINITY
    if w.W16 != NULL:
        sl_to_bf16(h, w.h16, H)
    ahead = OUT_AHEAD_BF16 if w.W16 != NULL else OUT_AHEAD
    for a in range(n_act):
        j = w.act[a]
        if a + ahead < n_act:  # the bias too: one random line of n_labels floats
            sl_prefetch_row(net.b_out + w.act[a + ahead], 1)
            if w.W16 != NULL:
                sl_prefetch_row(<const float*>(w.W16 + <int64_t>w.act[a + ahead] * H), H // 2)
            else:
                sl_prefetch_row(net.W_out + <int64_t>w.act[a + ahead] * H, H)
        if w.W16 != NULL:
            z = net.b_out[j] + sl_dot_bf16(w.h16, w.W16 + <int64_t>j * H, H)
        else:
            z = net.b_out[j] + sl_dot(h, net.W_out + <int64_t>j * H, H)
        w.logits[a] = z
        if z > zmax:
            zmax = z
    total = sl_exp_shift_sum(w.logits, n_act, zmax)
    for a in range(m):
        loss -= inv_m * logf(w.logits[a] / total)
    if w.rec_ids != NULL:
        # Record (neuron, dz) per active neuron for output_adam; dh = the sum of dz * row
        # over the active rows, in their order, in one kernel.
        if w.Hb16 != NULL:
            memcpy(w.Hb16 + r * H, w.h16, H * sizeof(uint16_t))
        else:
            memcpy(w.Hb + r * H, h, H * sizeof(float))
        w.rec_n[r] = n_act
        for a in range(n_act):
            j = w.act[a]
            w.rec_ids[r * w.rec_cap + a] = j
            w.rec_dz[r * w.rec_cap + a] = _logit_grad(w.logits[a], total, a < m, inv_m,
                                                      inv_batch)
            w.mark[j] = 0
        if w.W16 != NULL:
            sl_sum_rows_bf16(w.rec_dz + r * w.rec_cap, w.rec_ids + r * w.rec_cap, n_act,
                             w.W16, H, dh, H)
        else:
            sl_sum_rows(w.rec_dz + r * w.rec_cap, w.rec_ids + r * w.rec_cap, n_act,
                        net.W_out, H, dh, H)
    else:
        for k in range(H):
            dh[k] = 0
        for a in range(n_act):
            j = w.act[a]
            if a + PREFETCH < n_act:
                sl_prefetch_row(net.W_out + <int64_t>w.act[a + PREFETCH] * H, H)
                sl_prefetchw_row(w.g_out + <int64_t>w.act[a + PREFETCH] * H, H)
            dz = _logit_grad(w.logits[a], total, a < m, inv_m, inv_batch)
            wrow = net.W_out + <int64_t>j * H
            grow = w.g_out + <int64_t>j * H
            if w.W16 != NULL:
                sl_axpy_bf16(dz, w.W16 + <int64_t>j * H, dh, H)
            else:
                sl_axpy(dz, wrow, dh, H)
            sl_axpy(dz, h, grow, H)
            w.gb_out[j] += dz
            w.mark[j] = 0
            if w.out_flag[j] == 0:
                w.out_flag[j] = 1
                w.out_list[w.out_count[0]] = j
                w.out_count[0] += 1

    # Back through the hidden layers (ReLU); their gradients are formed from the
    # records after the batch (_layer_grads).
    for k in range(H):
        if h[k] <= 0:
            dh[k] = 0
        elif dropout > 0:
            dh[k] = dh[k] * keep_scale
    _backprop_sample(net, w.acts, w.delta)
    return loss


cdef void _backprop_sample(const Net* net, const float* acts, float* delta) noexcept nogil:
    """d loss / d activation of every hidden layer of one sample, from that of the last
    one (already masked by its ReLU) at ``delta + a_off[L - 1]``; layer i's at
    ``delta + a_off[i]``, beside its activations at ``acts + a_off[i]``."""
    cdef int i, k, n_in, n_out
    cdef const float* prev
    cdef const float* dh
    cdef float* dprev
    for i in range(net.n_layers - 1, 0, -1):
        n_in = <int>net.sizes[i - 1]
        n_out = <int>net.sizes[i]
        prev = acts + net.a_off[i - 1]
        dh = delta + net.a_off[i]
        dprev = delta + net.a_off[i - 1]
        for k in range(n_in):
            if prev[k] > 0:
                dprev[k] = sl_dot(net.dense + net.w_off[i] + <int64_t>k * n_out, dh, n_out)
            else:
                dprev[k] = 0


cdef void _layer_grads(const Net* net, Py_ssize_t n, const float* acts,
                       const float* delta, int64_t S, float* g_dense, int share,
                       int n_shares) noexcept nogil:
    """Share ``share`` of ``n_shares`` of the batch gradients of the hidden layers (the
    dense rows and biases; ``_input_grads`` forms the input layer's), from the
    per-position records ``acts`` / ``delta`` (S floats a position).

    Each dense row and bias belongs to one share and sums its terms in batch order, so
    that the gradients are the same whichever thread ran which sample and however many
    threads there are (no two threads add into one row either)."""
    cdef int i, k, n_in, n_out
    cdef Py_ssize_t r
    cdef float a
    for i in range(net.n_layers):
        if i % n_shares == share:
            for r in range(n):
                sl_axpy(1.0, delta + r * S + net.a_off[i], g_dense + net.b_off[i],
                        <int>net.sizes[i])
    for i in range(1, net.n_layers):
        n_in = <int>net.sizes[i - 1]
        n_out = <int>net.sizes[i]
        k = share
        while k < n_in:
            for r in range(n):
                a = acts[r * S + net.a_off[i - 1] + k]
                if a > 0:
                    sl_axpy(a, delta + r * S + net.a_off[i],
                            g_dense + net.w_off[i] + <int64_t>k * n_out, n_out)
            k += n_shares


cdef struct InputBufs:
    # _input_grads' scratch, n_entries each (runs: one more; hist: n_threads rows)
    uint64_t* keys
    uint64_t* tkeys
    float* vals
    float* tvals
    int32_t* rid
    int64_t* runs
    int64_t* hist


cdef class _InputScratch:
    """The buffers of ``_input_grads`` for a batch of ``n_entries`` non-zeros (a few
    arrays of that length, made per batch: small beside the batch's work); ``bufs``
    holds their addresses while this object lives."""
    cdef object arrays
    cdef InputBufs bufs

    def __cinit__(self, int64_t n_entries, int n_threads):
        n_entries = max(n_entries, 1)
        cdef uint64_t[::1] keys = np.empty(n_entries, dtype=np.uint64)
        cdef uint64_t[::1] tkeys = np.empty(n_entries, dtype=np.uint64)
        cdef float[::1] vals = np.empty(n_entries, dtype=np.float32)
        cdef float[::1] tvals = np.empty(n_entries, dtype=np.float32)
        cdef int32_t[::1] rid = np.empty(n_entries, dtype=np.int32)
        cdef int64_t[::1] runs = np.empty(n_entries + 1, dtype=np.int64)
        cdef int64_t[:, ::1] hist = np.empty((max(n_threads, 1), SL_RADIX_SIZE),
                                             dtype=np.int64)
        self.arrays = (keys, tkeys, vals, tvals, rid, runs, hist)
        self.bufs.keys = &keys[0]
        self.bufs.tkeys = &tkeys[0]
        self.bufs.vals = &vals[0]
        self.bufs.tvals = &tvals[0]
        self.bufs.rid = &rid[0]
        self.bufs.runs = &runs[0]
        self.bufs.hist = &hist[0, 0]


cdef struct InputAdam:
    # The Adam step _input_grads applies to each input row as soon as its gradient is
    # summed; W NULL: no step, the gradients go to g_in for adam_update.
    float* W
    float* m
    float* v
    float* gbuf  # n_threads rows of H0 zeros
    float lr_t
    float b1
    float b2
    float eps
    float alpha


cdef void _input_grads(const Net* net, const float* xd, const index_t* xi,
                       const index_t* indptr, const int64_t* rows, Py_ssize_t n,
                       const float* delta, int64_t S, float* g_in, uint8_t* in_flag,
                       int32_t[:, ::1] in_list, int64_t[::1] in_count,
                       const InputBufs* buf, int n_threads,
                       const InputAdam* adam) noexcept nogil:
    """The input layer's batch gradient: ``g_in[f] += sum x * delta[r]`` over the batch's
    non-zeros ``(r, f, x)`` (the delta of the first hidden layer at ``delta + r * S``),
    or with ``adam.W``, that sum's lazy Adam step on row ``f`` at once (``g_in`` is
    neither read nor written).

    The non-zeros are gathered as keys ``f << 32 | r`` with their values and radix-sorted
    by feature (stable: each feature's terms stay in batch order), so that each touched
    row of ``g_in`` is read and written once, its sum held in registers
    (``sl_add_rows``), rather than once per non-zero: the rows of a large input layer
    do not stay in cache between a batch's non-zeros. Threads take contiguous runs of
    features; every sum is in batch order, the same for any number of threads. Without
    ``adam.W``, the rows thread ``t`` touches are appended to ``in_list[t]``
    (``in_count[t * STRIDE]``) for ``adam_update``."""
    cdef int H0 = <int>net.sizes[0], bits = 1, T = n_threads if n_threads > 0 else 1, t
    cdef Py_ssize_t r
    cdef index_t p, lo
    cdef int64_t n_keys = 0, n_runs, u, u0, u1, q, nxt
    cdef int32_t f
    cdef float* g
    cdef uint64_t* keys = buf.keys
    cdef float* vals = buf.vals
    cdef int32_t* rid = buf.rid
    cdef int64_t* runs = buf.runs
    while (<int64_t>1 << bits) < net.n_features:
        bits += 1
    for r in range(n):
        lo = indptr[rows[r]]
        for p in range(lo, indptr[rows[r] + 1]):
            keys[n_keys] = (<uint64_t>xi[p] << 32) | <uint64_t>r
            vals[n_keys] = xd[p]
            n_keys += 1
    if n_keys == 0:
        return
    sl_radix_sort_kv(keys, vals, buf.tkeys, buf.tvals, n_keys, 32, bits, T, buf.hist)
    n_runs = sl_key_runs(keys, n_keys, runs, T, buf.hist)
    for t in prange(T, schedule="static", num_threads=T):
        u0 = n_runs * t // T
        u1 = n_runs * (t + 1) // T
        for q in range(runs[u0], runs[u1]):
            rid[q] = <int32_t>(keys[q] & <uint64_t>0xFFFFFFFF)
        for u in range(u0, u1):
            f = <int32_t>(keys[runs[u]] >> 32)
            if adam.W != NULL:
                if u + 1 < u1:
                    nxt = <int64_t>(keys[runs[u + 1]] >> 32) * H0
                    sl_prefetchw_row(adam.W + nxt, H0)
                    sl_prefetchw_row(adam.m + nxt, H0)
                    sl_prefetchw_row(adam.v + nxt, H0)
                # the sum from zeros, as in g_in; the step leaves the buffer zeroed
                g = adam.gbuf + <int64_t>t * H0
                sl_add_rows(vals + runs[u], rid + runs[u], runs[u + 1] - runs[u], delta,
                            S, g, H0, 0)
                sl_adam_row(adam.W + <int64_t>f * H0, adam.m + <int64_t>f * H0,
                            adam.v + <int64_t>f * H0, g, H0, adam.lr_t, adam.b1, adam.b2,
                            adam.eps, adam.alpha)
                continue
            sl_add_rows(vals + runs[u], rid + runs[u], runs[u + 1] - runs[u], delta, S,
                        g_in + <int64_t>f * H0, H0, 0)
            if in_flag[f] == 0:
                in_flag[f] = 1
                in_list[t, in_count[t * STRIDE]] = f
                in_count[t * STRIDE] += 1


cdef int64_t _check_rows(const index_t[::1] X_indices, const index_t[::1] X_indptr,
                         const int64_t[::1] rows, int n_features) except -1:
    """Refuse rows of X, or feature ids in them, that the kernels would read through
    raw pointers past X or past the input layer; returns the rows' number of
    non-zeros (what ``_InputScratch`` is sized for)."""
    cdef Py_ssize_t n_rows = X_indptr.shape[0] - 1, r
    cdef int64_t i, total = 0
    cdef index_t q
    for r in range(rows.shape[0]):
        i = rows[r]
        if i < 0 or i >= n_rows:
            raise ValueError(f"row {i} is outside X's {n_rows} rows")
        if (X_indptr[i] < 0 or X_indptr[i + 1] < X_indptr[i]
                or X_indptr[i + 1] > X_indices.shape[0]):
            raise ValueError(f"X's indptr is invalid at row {i}")
        for q in range(X_indptr[i], X_indptr[i + 1]):
            if X_indices[q] < 0 or X_indices[q] >= n_features:
                raise ValueError(f"feature index {X_indices[q]} is outside "
                                 f"[0, {n_features})")
        total += X_indptr[i + 1] - X_indptr[i]
    return total


def train_batch(const float[::1] X_data, const index_t[::1] X_indices,
                const index_t[::1] X_indptr, const int64_t[::1] Y_indptr,
                const int32_t[::1] Y_indices, const int64_t[::1] rows,
                state, lsh, Workspace work, int min_active, int threshold,
                uint64_t seed, int n_threads, float dropout=0.0, bint pick_all=False):
    """Forward/backward of the samples ``rows`` in parallel.

    Every batch position r keeps its activations and their gradients in row r of
    ``work.acts`` / ``work.delta`` and draws its random numbers (negatives, dropout)
    from ``seed`` and r; the batch-mean gradients of the input and hidden layers are
    then summed from these rows in batch order into ``g_in`` / ``g_dense[0]``
    (``_layer_grads``), and the input rows they touch listed for ``adam_update``. So
    these gradients do not depend on the number of threads nor on which thread ran
    which sample. The output layer's go to ``g_out`` / ``gb_out`` likewise, or, with
    ``work.transposed``, are recorded per batch position for ``output_adam``. With
    ``state.w16_out`` (precision="bfloat16": the output weights rounded to bfloat16,
    see ``output_adam``) the output logits and d loss / d h read it instead of
    ``W_out``, against the last hidden activations rounded to bfloat16. A sample's
    loss is the cross-entropy of its softmax against a target of 1 / m on each of its
    m labels, times m with ``pick_all`` (loss="pick_all": a softmax term per label).
    Returns the summed loss and the summed active-set size of the batch.
    """
    cdef Net net = _make_net(state, True)
    cdef HashFn fn = make_hash_fn(lsh.params)
    cdef Tables tb = _tables(lsh)
    cdef float[:, ::1] acts = work.acts
    cdef float[:, ::1] delta = work.delta
    cdef int32_t[:, ::1] codes = work.codes
    cdef int32_t[:, ::1] act = work.act
    cdef float[:, ::1] logits = work.logits
    cdef int32_t[:, ::1] cand = work.cand
    cdef float[:, ::1] g_dense = work.g_dense
    cdef uint64_t[::1] rng = work.rng
    cdef double[::1] sample_loss
    cdef int32_t[:, ::1] in_list = work.in_list
    cdef int64_t[::1] in_count = work.in_count
    cdef uint8_t[::1] in_flag = work.in_flag
    cdef float[:, ::1] g_in = work.g_in
    cdef float[:, ::1] g_out
    cdef float[::1] gb_out
    cdef int32_t[:, ::1] rec_ids
    cdef float[:, ::1] rec_dz
    cdef int32_t[::1] rec_n
    cdef float[:, ::1] Hb
    cdef uint16_t[:, ::1] Hb16
    cdef const uint16_t[:, ::1] W16
    cdef uint16_t[:, ::1] h16
    cdef bint rec = work.transposed, bf16 = state.w16_out is not None
    cdef Py_ssize_t n = rows.shape[0], r, hb_rows = 0, hb_cols = 0
    cdef int tid, t, m, na
    cdef float wgt
    cdef int64_t i
    cdef double loss = 0
    cdef int64_t n_active = 0
    cdef float inv_batch
    cdef Work* works
    if n == 0:
        return 0.0, 0
    if codes.shape[0] < n_threads or rng.shape[0] < n_threads * STRIDE:
        raise ValueError("work buffers were sized for fewer threads")
    if (acts.shape[0] < n or delta.shape[0] < n or acts.shape[1] != delta.shape[1]
            or acts.shape[1] < net.a_off[net.n_layers - 1] + net.h_last):
        raise ValueError("activation records are too small for this batch")
    # Refuse a batch whose rows, labels or features would index past the model or the
    # work buffers: the kernels below read and write through raw pointers.
    if Y_indptr.shape[0] != X_indptr.shape[0]:
        raise ValueError("X and Y have different numbers of rows")
    cdef int64_t n_entries = _check_rows(X_indices, X_indptr, rows, net.n_features)
    cdef Py_ssize_t q
    cdef int64_t max_m = 0
    for r in range(n):
        i = rows[r]
        if (Y_indptr[i] < 0 or Y_indptr[i + 1] < Y_indptr[i]
                or Y_indptr[i + 1] > Y_indices.shape[0]):
            raise ValueError(f"Y's indptr is invalid at row {i}")
        max_m = max(max_m, Y_indptr[i + 1] - Y_indptr[i])
        for q in range(Y_indptr[i], Y_indptr[i + 1]):
            if Y_indices[q] < 0 or Y_indices[q] >= net.n_labels:
                raise ValueError(f"label index {Y_indices[q]} is outside [0, {net.n_labels})")
    need = active_capacity(net.n_labels, max_m, tb.n_tables, lsh.bucket_size, min_active)
    if act.shape[1] < need or logits.shape[1] < need - 1:
        raise ValueError(f"active-set buffers have {act.shape[1]} columns, the batch "
                         f"needs {need}")
    if cand.shape[1] < <int64_t>tb.n_tables * lsh.bucket_size:
        raise ValueError("candidate buffer is smaller than n_tables * bucket_size")
    if bf16 and not rec:
        raise ValueError("precision='bfloat16' needs the transposed output gradient "
                         "(a transposed Workspace)")
    if rec and work.bf16 != bf16:
        raise ValueError("the work buffers were made for the other precision")
    if rec:
        rec_ids = work.rec_ids
        rec_dz = work.rec_dz
        rec_n = work.rec_n
        Hb = work.Hb  # (the one of the other precision is empty)
        Hb16 = work.Hb16
        hb_rows, hb_cols = work.records_shape()
        if (rec_ids.shape[0] < n or rec_ids.shape[1] < act.shape[1]
                or rec_dz.shape[0] != rec_ids.shape[0] or rec_dz.shape[1] != rec_ids.shape[1]
                or rec_n.shape[0] < n or hb_rows < n or hb_cols != net.h_last):
            raise ValueError("transposed-gradient buffers are too small for this batch")
    elif not work.scatter:
        raise ValueError("train_batch: the Workspace keeps no output gradient")
    else:
        g_out = work.g_out
        gb_out = work.gb_out
    if bf16:
        W16 = state.w16_out
        h16 = work.h16
        if (W16.shape[0] != net.n_labels or W16.shape[1] != net.h_last
                or h16.shape[0] < n_threads or h16.shape[1] < net.h_last):
            raise ValueError("the bfloat16 weights of the output layer do not match the model")
    inv_batch = 1.0 / n
    sample_loss = np.empty(n, dtype=np.float64)
    cdef _InputScratch scratch = _InputScratch(n_entries, n_threads)
    cdef InputAdam no_step
    no_step.W = NULL
    works = <Work*>calloc(n_threads, sizeof(Work))
    if works == NULL:
        raise MemoryError()
    for t in range(n_threads):
        work.thread_work(&works[t], t)
        works[t].g_out = NULL if rec else &g_out[0, 0]
        works[t].gb_out = NULL if rec else &gb_out[0]
        works[t].rec_ids = &rec_ids[0, 0] if rec else NULL
        works[t].rec_dz = &rec_dz[0, 0] if rec else NULL
        works[t].rec_n = &rec_n[0] if rec else NULL
        works[t].Hb = &Hb[0, 0] if rec and not bf16 else NULL
        works[t].Hb16 = &Hb16[0, 0] if rec and bf16 else NULL
        works[t].rec_cap = rec_ids.shape[1] if rec else 0
        works[t].W16 = &W16[0, 0] if bf16 else NULL
        works[t].h16 = &h16[t, 0] if bf16 else NULL
    try:
        with nogil:
            for r in prange(n, schedule="dynamic", chunksize=4, num_threads=n_threads):
                tid = omp_get_thread_num()
                na = 0  # assigned in the loop body, so private to each thread
                i = rows[r]
                m = <int>(Y_indptr[i + 1] - Y_indptr[i])
                wgt = <float>m if pick_all else 1.0
                works[tid].acts = &acts[r, 0]
                works[tid].delta = &delta[r, 0]
                works[tid].rng[0] = splitmix64(seed ^ splitmix64(<uint64_t>r + 1)) | 1
                sample_loss[r] = wgt * _train_sample(
                    &net, &fn, &tb, &works[tid], &X_data[0], &X_indices[0], X_indptr[i],
                    X_indptr[i + 1], &Y_indices[Y_indptr[i]], m, min_active, threshold,
                    inv_batch * wgt, dropout, r, &na)
                n_active += na
            for t in prange(n_threads, schedule="static", num_threads=n_threads):
                _layer_grads(&net, n, &acts[0, 0], &delta[0, 0], acts.shape[1],
                             &g_dense[0, 0], t, n_threads)
            _input_grads(&net, &X_data[0], &X_indices[0], &X_indptr[0], &rows[0], n,
                         &delta[0, 0], acts.shape[1], &g_in[0, 0], &in_flag[0], in_list,
                         in_count, &scratch.bufs, n_threads, &no_step)
            for r in range(n):
                loss += sample_loss[r]
    finally:
        free(works)
    return loss, n_active


cdef inline void _prefetch_adam(float* w, float* m, float* v, float* g, int n) noexcept nogil:
    sl_prefetchw_row(w, n)
    sl_prefetchw_row(m, n)
    sl_prefetchw_row(v, n)
    sl_prefetchw_row(g, n)


cdef inline float _adam_lr_t(float lr, float beta1, float beta2, int64_t step) noexcept nogil:
    """Adam's step size with both bias corrections at global step ``step`` (from 1),
    in float32 arguments: every Adam kernel takes it from here, so that the paths of
    one model step alike."""
    return lr * sqrt(1.0 - beta2 ** <float>step) / (1.0 - beta1 ** <float>step)


cdef inline void _adam_scalar(float* w, float* m, float* v, float* g, float lr_t,
                              float b1, float b2, float eps) noexcept nogil:
    cdef float gi = g[0]
    m[0] = b1 * m[0] + (1 - b1) * gi
    v[0] = b2 * v[0] + (1 - b2) * gi * gi
    w[0] -= lr_t * m[0] / (<float>sqrt(v[0]) + eps)
    g[0] = 0


cdef int64_t _merge_lists(int32_t[:, ::1] lists, int64_t[::1] counts, uint8_t[::1] flag,
                          int32_t[::1] out) noexcept nogil:
    """Concatenate the per-thread lists of touched rows without duplicates (two threads
    may both list a row they touched in the same batch)."""
    cdef int64_t n = 0, q
    cdef int t
    cdef int32_t j
    for t in range(lists.shape[0]):
        for q in range(counts[t * STRIDE]):
            j = lists[t, q]
            if flag[j] == 1:
                flag[j] = 2
                out[n] = j
                n += 1
        counts[t * STRIDE] = 0
    return n


def adam_update(state, Workspace work, float lr, float beta1, float beta2, float eps,
                float alpha, int64_t step, int n_threads):
    """Adam step on the rows of ``state`` touched by the last ``train_batch`` (and the
    dense layers).

    Rows that received no gradient keep their weights and moments unchanged (lazy
    Adam, as PyTorch's SparseAdam). With ``work.transposed`` the output layer is left
    to ``output_adam``, and without ``work.scatter`` to the kernel that stepped it
    (``shared_output`` in bfloat16). ``step`` is the global step used in the bias
    correction; ``alpha`` is an L2 penalty applied to the updated rows. Returns the
    number of output neurons and input rows updated.
    """
    cdef float[:, ::1] W_in = state.W_in
    cdef float[::1] dense = state.dense
    cdef float[:, ::1] W_out = state.W_out
    cdef float[::1] b_out = state.b_out
    cdef float[:, ::1] m_in = state.m_in
    cdef float[:, ::1] v_in = state.v_in
    cdef float[::1] m_dense = state.m_dense
    cdef float[::1] v_dense = state.v_dense
    cdef float[:, ::1] m_out
    cdef float[:, ::1] v_out
    cdef float[::1] mb_out = state.mb_out
    cdef float[::1] vb_out = state.vb_out
    cdef float[:, ::1] g_in = work.g_in
    cdef float[:, ::1] g_out
    cdef float[::1] gb_out
    cdef bint has_out = work.scatter
    cdef float[:, ::1] g_dense = work.g_dense
    cdef int32_t[:, ::1] out_list = work.out_list
    cdef int64_t[::1] out_count = work.out_count
    cdef int32_t[:, ::1] in_list = work.in_list
    cdef int64_t[::1] in_count = work.in_count
    cdef uint8_t[::1] out_flag = work.out_flag
    cdef uint8_t[::1] in_flag = work.in_flag
    cdef int32_t[::1] uniq_out = work.uniq_out
    cdef int32_t[::1] uniq_in = work.uniq_in
    cdef int H = W_out.shape[1], H0 = W_in.shape[1]
    cdef int64_t n_out, n_in, q, n_dense = dense.shape[0]
    cdef int32_t j
    cdef float lr_t = _adam_lr_t(lr, beta1, beta2, step)
    if has_out:  # else the output layer is output_adam's (transposed gradient)
        g_out = work.g_out
        gb_out = work.gb_out
        m_out = state.m_out
        v_out = state.v_out
    with nogil:
        n_out = _merge_lists(out_list, out_count, out_flag, uniq_out) if has_out else 0
        n_in = _merge_lists(in_list, in_count, in_flag, uniq_in)
        for q in prange(n_out, schedule="static", num_threads=n_threads):
            j = uniq_out[q]
            out_flag[j] = 0
            if q + PREFETCH < n_out:
                _prefetch_adam(&W_out[uniq_out[q + PREFETCH], 0], &m_out[uniq_out[q + PREFETCH], 0],
                               &v_out[uniq_out[q + PREFETCH], 0], &g_out[uniq_out[q + PREFETCH], 0], H)
            sl_adam_row(&W_out[j, 0], &m_out[j, 0], &v_out[j, 0], &g_out[j, 0], H,
                        lr_t, beta1, beta2, eps, alpha)
            _adam_scalar(&b_out[j], &mb_out[j], &vb_out[j], &gb_out[j], lr_t, beta1, beta2, eps)
        for q in prange(n_in, schedule="static", num_threads=n_threads):
            j = uniq_in[q]
            in_flag[j] = 0
            if q + PREFETCH < n_in:
                _prefetch_adam(&W_in[uniq_in[q + PREFETCH], 0], &m_in[uniq_in[q + PREFETCH], 0],
                               &v_in[uniq_in[q + PREFETCH], 0], &g_in[uniq_in[q + PREFETCH], 0], H0)
            sl_adam_row(&W_in[j, 0], &m_in[j, 0], &v_in[j, 0], &g_in[j, 0], H0,
                        lr_t, beta1, beta2, eps, alpha)
        sl_adam_row(&dense[0], &m_dense[0], &v_dense[0], &g_dense[0, 0], <int>n_dense,
                    lr_t, beta1, beta2, eps, 0.0)
    return n_out, n_in


def output_adam(state, Workspace work, int64_t n_rows, float lr, float beta1,
                float beta2, float eps, float alpha, int64_t step, int n_threads,
                uint64_t seed=0):
    """Gradient and lazy Adam step of the output neurons of ``state`` touched by the
    last ``train_batch`` of ``n_rows`` rows, run with a transposed ``work``.

    The records of the batch (``rec_ids`` / ``rec_dz`` / ``rec_n``, one row per batch
    position) are gathered as keys ``neuron << 32 | row`` with their d loss / d logit
    and radix-sorted by neuron (stable: each neuron's records stay in batch order).
    Each run of one neuron's records then gives its gradient ``sum dz * Hb[row]``
    (``Hb16``, in bfloat16, with precision="bfloat16"), formed in a per-thread buffer
    and applied at once by Adam (L2 penalty ``alpha`` as in ``adam_update``); threads
    take contiguous blocks of neurons, in increasing order (the rows of ``W_out`` are
    walked forwards). No ``(n_labels, H)`` gradient
    array is read or written, no two threads touch one neuron, and the sums do not
    depend on the number of threads. The gathering of the keys, the sort and the search
    for the runs are split among the threads as well, in the same order on any number
    of them (``_radix.h``).

    With ``state.w16_out`` (precision="bfloat16", see ``_adam16.h``) the weights are
    the float32 values of the halves ``w16_out`` (bfloat16, rounded) and the first
    ``H`` values of a row of ``state.s16_out`` (the lower 16 bits); the next ``2 H``
    hold the moments in bfloat16, m rounded to nearest and v stochastically with bits
    drawn from ``seed`` (``bf16_state_width``). The biases and their moments are the
    float32 ``b_out``, ``mb_out`` and ``vb_out`` in both precisions: 8 MB for 670k
    neurons, which the forward pass reads from the last-level cache, where a bias in
    each state row cost a line from memory. ``W_out`` is neither read nor written
    during training: each updated neuron's block of ``DIRTY_ROWS`` rows is marked in
    ``state.dirty_out`` for ``sync_bf16_rows`` (a flag a block: 10 KB for 670k
    neurons, which stays in cache). Otherwise ``W_out``,
    its float32 moments ``state.m_out`` / ``state.v_out`` and the biases are updated.
    Returns the number of neurons updated.
    """
    cdef float[:, ::1] W_out = state.W_out
    cdef float[::1] b_out = state.b_out
    cdef float[:, ::1] m_out
    cdef float[:, ::1] v_out
    cdef uint16_t[:, ::1] w16
    cdef uint16_t[:, ::1] s16
    cdef uint8_t[::1] dirty
    cdef float[::1] mb_out = state.mb_out
    cdef float[::1] vb_out = state.vb_out
    cdef const int32_t[:, ::1] rec_ids
    cdef const float[:, ::1] rec_dz
    cdef const int32_t[::1] rec_n
    cdef const float[:, ::1] Hb
    cdef const uint16_t[:, ::1] Hb16
    cdef uint64_t[::1] keys
    cdef float[::1] vals
    cdef uint64_t[::1] tkeys
    cdef float[::1] tvals
    cdef int64_t[::1] runs
    cdef float[:, ::1] gbuf
    cdef bint bf16 = state.w16_out is not None
    cdef int H = W_out.shape[1], T = max(n_threads, 1), t, bits = 1
    cdef int64_t n_labels = W_out.shape[0], r, a, n, n_runs, q, u, u0, u1, nxt
    cdef Py_ssize_t hb_rows, hb_cols
    cdef int32_t j
    cdef float gb
    cdef float* g
    cdef int width = bf16_state_width(H)
    cdef int ahead = ADAM_AHEAD_BF16 if bf16 else ADAM_AHEAD
    cdef uint32_t seed32 = <uint32_t>(seed ^ (seed >> 32))
    cdef float lr_t = _adam_lr_t(lr, beta1, beta2, step)
    if not work.transposed or work.bf16 != bf16:
        raise ValueError("output_adam needs the transposed gradient records of this "
                         "precision")
    rec_ids = work.rec_ids
    rec_dz = work.rec_dz
    rec_n = work.rec_n
    keys = work.sort_keys
    vals = work.sort_vals
    tkeys = work.sort_tkeys
    tvals = work.sort_tvals
    runs = work.runs
    gbuf = work.gbuf
    Hb = work.Hb  # (the one of the other precision is empty)
    Hb16 = work.Hb16
    hb_rows, hb_cols = work.records_shape()
    if n_rows > rec_n.shape[0] or n_rows > hb_rows or hb_cols != H:
        raise ValueError("transposed-gradient buffers do not match the batch")
    if gbuf.shape[0] < n_threads or gbuf.shape[1] < H:
        raise ValueError("work buffers were sized for fewer threads")
    if (keys.shape[0] < rec_ids.shape[0] * rec_ids.shape[1] or tkeys.shape[0] < keys.shape[0]
            or vals.shape[0] < keys.shape[0] or tvals.shape[0] < keys.shape[0]
            or runs.shape[0] < n_labels + 1):
        raise ValueError("work buffers do not match the model")
    if bf16:
        w16 = state.w16_out
        s16 = state.s16_out
        dirty = state.dirty_out
        _check_bf16(w16, s16, n_labels, H, dirty.shape[0] == (n_labels + DIRTY - 1) // DIRTY)
    else:
        m_out = state.m_out
        v_out = state.v_out
    while (<int64_t>1 << bits) < n_labels:
        bits += 1
    # where each batch row's records start among the keys; radix counts, one row a thread
    start_np = np.empty(n_rows + 1, dtype=np.int64)
    hist_np = np.empty((T, SL_RADIX_SIZE), dtype=np.int64)
    cdef int64_t[::1] start = start_np
    cdef int64_t[:, ::1] hist = hist_np
    with nogil:
        start[0] = 0
        for r in range(n_rows):
            start[r + 1] = start[r] + rec_n[r]
        n = start[n_rows]
        for r in prange(n_rows, schedule="static", num_threads=T):
            for a in range(rec_n[r]):
                keys[start[r] + a] = (<uint64_t>rec_ids[r, a] << 32) | <uint64_t>r
                vals[start[r] + a] = rec_dz[r, a]
        sl_radix_sort_kv(&keys[0], &vals[0], &tkeys[0], &tvals[0], n, 32, bits, T,
                         &hist[0, 0])
        # runs[u]: first record of the u-th neuron (hist's first row counts the chunks)
        n_runs = sl_key_runs(&keys[0], n, &runs[0], T, &hist[0, 0])
        for t in prange(T, schedule="static", num_threads=T):
            u0 = n_runs * t // T
            u1 = n_runs * (t + 1) // T
            g = &gbuf[t, 0]
            for u in range(u0, u1):
                j = <int32_t>(keys[runs[u]] >> 32)
                if u + ahead < u1:
                    nxt = <int64_t>(keys[runs[u + ahead]] >> 32)
                    sl_prefetchw_row(&b_out[nxt], 1)
                    sl_prefetchw_row(&mb_out[nxt], 1)
                    sl_prefetchw_row(&vb_out[nxt], 1)
                    if bf16:
                        sl_prefetchw_row(<float*>&w16[nxt, 0], H // 2)
                        sl_prefetchw_row(<float*>&s16[nxt, 0], width // 2)
                    else:
                        sl_prefetchw_row(&W_out[nxt, 0], H)
                        sl_prefetchw_row(&m_out[nxt, 0], H)
                        sl_prefetchw_row(&v_out[nxt, 0], H)
                gb = 0
                for q in range(runs[u], runs[u + 1]):
                    gb = gb + vals[q]
                if bf16:
                    # the gradient row, sum of dz * h over the records, and the step at once
                    sl_adam16_records(&w16[j, 0], &s16[j, 0], &vals[runs[u]], &keys[runs[u]],
                                      runs[u + 1] - runs[u], &Hb16[0, 0], H, g, H, lr_t,
                                      beta1, beta2, eps, alpha, sl_mix32(seed32 ^ <uint32_t>j))
                    dirty[j // DIRTY] = 1
                else:
                    memset(g, 0, H * sizeof(float))
                    for q in range(runs[u], runs[u + 1]):
                        sl_axpy(vals[q], &Hb[<int64_t>(keys[q] & <uint64_t>0xFFFFFFFF), 0], g, H)
                    sl_adam_row(&W_out[j, 0], &m_out[j, 0], &v_out[j, 0], g, H,
                                lr_t, beta1, beta2, eps, alpha)
                _adam_scalar(&b_out[j], &mb_out[j], &vb_out[j], &gb, lr_t, beta1, beta2, eps)
    return n_runs


def sync_bf16_rows(const uint16_t[:, ::1] w16, const uint16_t[:, ::1] s16,
                   float[:, ::1] W_out, uint8_t[::1] dirty, int n_threads):
    """For every row ``j`` of the blocks of ``DIRTY_ROWS`` rows marked in ``dirty``
    (then cleared), ``W_out[j]`` = the float32 weights of the halves ``w16[j]`` and
    ``s16[j, :H]`` (see ``output_adam``): the float32 view of the output layer that
    precision="bfloat16" trains. Returns the number of rows written."""
    cdef int64_t n = W_out.shape[0], j, b, count = 0
    cdef int64_t n_blocks = (n + DIRTY - 1) // DIRTY
    cdef int H = W_out.shape[1]
    _check_bf16(w16, s16, n, H, dirty.shape[0] == n_blocks)
    with nogil:
        for b in prange(n_blocks, schedule="static", num_threads=max(n_threads, 1)):
            if dirty[b]:
                for j in range(b * DIRTY, min(n, (b + 1) * DIRTY)):
                    sl_join_round_n(&w16[j, 0], &s16[j, 0], &W_out[j, 0], H)
                dirty[b] = 0
                count += min(n, (b + 1) * DIRTY) - b * DIRTY
    return count


def split_bf16_rows(const float[:, ::1] W_out, uint16_t[:, ::1] w16, uint16_t[:, ::1] s16,
                    int n_threads):
    """Store the float32 weights ``W_out`` as their halves, rounded upper halves in
    ``w16``, lower halves in ``s16[:, :H]`` (exact; ``sync_bf16_rows`` joins them)."""
    cdef int64_t n = W_out.shape[0], j
    cdef int H = W_out.shape[1]
    _check_bf16(w16, s16, n, H, True)
    with nogil:
        for j in prange(n, schedule="static", num_threads=max(n_threads, 1)):
            sl_split_round_n(&W_out[j, 0], &w16[j, 0], &s16[j, 0], H)


cdef void _check_bf16(const uint16_t[:, ::1] w16, const uint16_t[:, ::1] s16, int64_t n,
                      int H, bint rest_ok) except *:
    """The bfloat16 weights ``w16`` (n, H) and state ``s16`` of an output layer of ``n``
    neurons of width ``H``, and the caller's own checks of its other arrays."""
    if (not rest_ok or w16.shape[0] != n or w16.shape[1] != H or s16.shape[0] != n
            or s16.shape[1] != bf16_state_width(H)):
        raise ValueError("the bfloat16 state of the output layer does not match the model")


# ---------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------

def forward_hidden(const float[::1] X_data, const index_t[::1] X_indices,
                   const index_t[::1] X_indptr, state, int n_threads):
    """Activations of the last hidden layer of ``state`` for every row of a CSR
    matrix."""
    cdef Net net = _make_net(state, False)
    cdef Py_ssize_t n = X_indptr.shape[0] - 1, i
    cdef int tid
    cdef int64_t off = net.a_off[net.n_layers - 1]
    total = int(np.sum(state.sizes))
    out_np = np.empty((n, net.h_last), dtype=np.float32)
    acts_np = np.empty((n_threads, total), dtype=np.float32)
    cdef float[:, ::1] out = out_np
    cdef float[:, ::1] acts = acts_np
    cdef int k
    if n == 0:
        return out_np
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            tid = omp_get_thread_num()
            _forward_hidden(&net, &X_data[0], &X_indices[0], X_indptr[i], X_indptr[i + 1],
                            &acts[tid, 0])
            for k in range(net.h_last):
                out[i, k] = acts[tid, off + k]
    return out_np


cdef inline bint _less(float sa, int32_t ia, float sb, int32_t ib) noexcept nogil:
    # Heap order: lower score first; among equal scores the larger index is "lower",
    # so that ties keep the smallest label index.
    return sa < sb or (sa == sb and ia > ib)


cdef inline void _sift_down(float* sc, int32_t* ix, int size, int pos) noexcept nogil:
    cdef int c
    cdef float s = sc[pos]
    cdef int32_t i = ix[pos]
    while True:
        c = 2 * pos + 1
        if c >= size:
            break
        if c + 1 < size and _less(sc[c + 1], ix[c + 1], sc[c], ix[c]):
            c += 1
        if not _less(sc[c], ix[c], s, i):
            break
        sc[pos] = sc[c]
        ix[pos] = ix[c]
        pos = c
    sc[pos] = s
    ix[pos] = i


cdef inline void _heap_push(float* sc, int32_t* ix, int* size, int k, float s,
                            int32_t j) noexcept nogil:
    """Keep the k best (score, index) pairs in a min-heap of current size size[0]."""
    cdef int pos, parent
    if size[0] < k:
        pos = size[0]
        size[0] += 1
        while pos > 0:
            parent = (pos - 1) // 2
            if not _less(s, j, sc[parent], ix[parent]):
                break
            sc[pos] = sc[parent]
            ix[pos] = ix[parent]
            pos = parent
        sc[pos] = s
        ix[pos] = j
    elif _less(sc[0], ix[0], s, j):
        sc[0] = s
        ix[0] = j
        _sift_down(sc, ix, k, 0)


cdef inline void _heap_sort_desc(float* sc, int32_t* ix, int size) noexcept nogil:
    """Turn a min-heap into an array sorted best first (heapsort)."""
    cdef float s
    cdef int32_t i
    cdef int end
    for end in range(size - 1, 0, -1):
        s = sc[0]
        i = ix[0]
        sc[0] = sc[end]
        ix[0] = ix[end]
        sc[end] = s
        ix[end] = i
        _sift_down(sc, ix, end, 0)


cdef inline void _complete_from(const float* h, const float* W, const float* b, int d,
                                const int32_t[::1] labels, int q, float* sc,
                                int32_t* ix, int* size, int k) noexcept nogil:
    """Fill a row's heap of ``size[0]`` < k entries with ``labels[q:]`` in order,
    skipping those already in it."""
    cdef int a
    cdef int32_t j
    while size[0] < k and q < labels.shape[0]:
        j = labels[q]
        q = q + 1
        for a in range(size[0]):
            if ix[a] == j:
                break
        else:
            _heap_push(sc, ix, size, k, b[j] + sl_dot(h, W + <int64_t>j * d, d), j)


def topk_exact(const float[:, ::1] Hm, state, int k, int n_threads,
               int row_block=64, int label_block=4096):
    """Top-k output neurons of every row over all labels.

    Scores are computed block by block (``row_block`` rows x ``label_block``
    labels, one single-threaded sgemm each) and folded into a running top-k per
    row, in parallel over row blocks: memory is O(threads * block), never
    O(rows * labels). Returns (indices int32, scores float32), best first.
    """
    cdef const float[:, ::1] W_out = state.W_out
    cdef const float[::1] b_out = state.b_out
    cdef int n = Hm.shape[0], d = Hm.shape[1], n_labels = W_out.shape[0]
    cdef int n_blocks, blk, r0, nr, l0, nl, r, j, tid
    cdef float one = 1.0, zero = 0.0
    cdef char transa = b'T', transb = b'N'
    if d != W_out.shape[1]:
        raise ValueError("hidden width does not match the output layer")
    k = min(k, n_labels)
    idx_np = np.full((n, k), -1, dtype=np.int32)
    sc_np = np.full((n, k), -np.inf, dtype=np.float32)
    cdef int32_t[:, ::1] idx = idx_np
    cdef float[:, ::1] sc = sc_np
    buf_np = np.empty((max(n_threads, 1), row_block * label_block), dtype=np.float32)
    sizes_np = np.zeros(n, dtype=np.intc)
    cdef float[:, ::1] buf = buf_np
    cdef int[::1] sizes = sizes_np
    if n == 0 or k == 0:
        return idx_np, sc_np
    n_blocks = (n + row_block - 1) // row_block
    with nogil:
        for blk in prange(n_blocks, schedule="dynamic", num_threads=n_threads):
            tid = omp_get_thread_num()
            r0 = blk * row_block
            nr = min(row_block, n - r0)
            l0 = 0
            while l0 < n_labels:
                nl = min(label_block, n_labels - l0)
                # buf (nr x nl, row-major) = H[r0:r0+nr] @ W_out[l0:l0+nl].T
                sgemm(&transa, &transb, &nl, &nr, &d, &one, <float*>&W_out[l0, 0], &d,
                      <float*>&Hm[r0, 0], &d, &zero, &buf[tid, 0], &nl)
                for r in range(nr):
                    for j in range(nl):
                        _heap_push(&sc[r0 + r, 0], &idx[r0 + r, 0], &sizes[r0 + r], k,
                                   buf[tid, r * nl + j] + b_out[l0 + j], l0 + j)
                l0 = l0 + nl
            for r in range(nr):
                _heap_sort_desc(&sc[r0 + r, 0], &idx[r0 + r, 0], sizes[r0 + r])
    return idx_np, sc_np


cdef int _voted_set(const Tables* tb, Work* w, int32_t* hist, int threshold,
                   int max_cand) noexcept nogil:
    """Fill w.act with at most ``max_cand`` retrieved neurons, those found in the most
    tables first (ties in retrieval order), each found in at least ``threshold``
    tables. ``hist`` has room for n_tables + 2 counts. Leaves w.mark all zero."""
    cdef int t, q, nc = 0, n_act = 0, v, level, above, L = tb.n_tables
    cdef int32_t j
    cdef int64_t p, lo, hi
    cdef const int32_t* ids
    cdef const int32_t* off
    for t in range(min(BUCKETS_AHEAD, L)):
        _prefetch_bucket(tb, w, t)
    for t in range(L):
        if t + BUCKETS_AHEAD < L:
            _prefetch_bucket(tb, w, t + BUCKETS_AHEAD)
        off = _bucket_offset(tb, w, t)
        lo = off[0]
        hi = off[1]
        ids = tb.ids + <int64_t>t * tb.stride
        for p in range(lo, hi):
            j = ids[p]
            if w.mark[j] == 0:
                w.cand[nc] = j
                nc += 1
            w.mark[j] += 1
    # votes are at most L: a counting pass finds the lowest vote level that fits
    for v in range(L + 2):
        hist[v] = 0
    for q in range(nc):
        hist[w.mark[w.cand[q]]] += 1
    level = L + 1
    above = 0                      # candidates with more than `level` votes
    while level > threshold and above + hist[level - 1] <= max_cand:
        level -= 1
        above += hist[level]
    # every candidate with at least `level` votes fits (`above` of them); the next
    # level down fills what is left of max_cand, in retrieval order
    for q in range(nc):
        j = w.cand[q]
        if w.mark[j] >= level:
            w.act[n_act] = j
            n_act += 1
    if level > threshold:
        for q in range(nc):
            if n_act >= max_cand:
                break
            j = w.cand[q]
            if w.mark[j] == level - 1:
                w.act[n_act] = j
                n_act += 1
    for q in range(nc):
        w.mark[w.cand[q]] = 0
    return n_act


def topk_lsh(const float[:, ::1] Hm, state, lsh, int k, int threshold,
             const int32_t[::1] fallback, int n_threads, int max_cand=0, int n_head=0):
    """Top-k among the output neurons the hash tables retrieve for each row.

    With ``max_cand`` > 0 at most that many retrieved neurons are scored per row,
    those found in the most tables first. The first ``n_head`` labels of
    ``fallback`` (labels in decreasing training frequency) are scored for every row
    besides the retrieved ones; rows with fewer than k candidates are completed from
    the rest of ``fallback``. Returns (indices, scores, n_candidates).
    """
    cdef Net net = _make_net(state, False)
    cdef HashFn fn = make_hash_fn(lsh.params)
    cdef Tables tb = _tables(lsh)
    cdef int n = Hm.shape[0], d = Hm.shape[1], n_labels = net.n_labels
    cdef int i, tid, a, n_act, q, size
    cdef int32_t j
    cdef int64_t total_cand = 0
    if d != net.h_last:
        raise ValueError("hidden width does not match the output layer")
    if n_head < 0 or n_head > fallback.shape[0]:
        raise ValueError("n_head must be between 0 and len(fallback)")
    k = min(k, n_labels)
    idx_np = np.full((n, k), -1, dtype=np.int32)
    sc_np = np.full((n, k), -np.inf, dtype=np.float32)
    cdef int32_t[:, ::1] idx = idx_np
    cdef float[:, ::1] sc = sc_np
    T = max(n_threads, 1)
    L = tb.n_tables
    cap = int(min(n_labels, L * lsh.bucket_size)) + 1
    codes_np = np.empty((T, fn.n_codes * L), dtype=np.int32)
    buckets_np = np.empty((T, L), dtype=np.uint32)
    act_np = np.empty((T, cap), dtype=np.int32)
    cand_np = np.empty((T, max(cap, 1)), dtype=np.int32)
    mark_np = np.zeros((T, n_labels), dtype=np.uint8)
    hist_np = np.zeros((T, L + 2), dtype=np.int32)
    cdef int32_t[:, ::1] hist = hist_np
    cdef int32_t[:, ::1] codes = codes_np
    cdef uint32_t[:, ::1] buckets = buckets_np
    cdef int32_t[:, ::1] act = act_np
    cdef int32_t[:, ::1] cand = cand_np
    cdef mark_t[:, ::1] mark = mark_np
    cdef Work* works = <Work*>calloc(T, sizeof(Work))
    if works == NULL:
        raise MemoryError()
    for tid in range(T):
        works[tid].codes = &codes[tid, 0]
        works[tid].buckets = &buckets[tid, 0]
        works[tid].act = &act[tid, 0]
        works[tid].cand = &cand[tid, 0]
        works[tid].mark = &mark[tid, 0]
        works[tid].rng = NULL
    try:
        with nogil:
            for i in prange(n, schedule="dynamic", chunksize=8, num_threads=n_threads):
                tid = omp_get_thread_num()
                hash_query(&fn, &Hm[i, 0], &codes[tid, 0], &buckets[tid, 0])
                if max_cand > 0:
                    n_act = _voted_set(&tb, &works[tid], &hist[tid, 0], threshold, max_cand)
                    if n_head > 0:  # marks for the duplicate check below
                        for a in range(n_act):
                            mark[tid, act[tid, a]] = SENT
                else:
                    n_act = _active_set(&net, &tb, &works[tid], NULL, 0, 0, threshold)
                total_cand += n_act
                size = 0
                # head labels not retrieved: scored for every row
                for q in range(n_head):
                    j = fallback[q]
                    if mark[tid, j] == 0:
                        if q + PREFETCH < n_head:
                            _prefetch_neuron(&net, fallback[q + PREFETCH], d)
                        _heap_push(&sc[i, 0], &idx[i, 0], &size, k,
                                   net.b_out[j] + sl_dot(&Hm[i, 0], net.W_out + <int64_t>j * d, d), j)
                        total_cand += 1
                for a in range(n_act):
                    j = act[tid, a]
                    mark[tid, j] = 0
                    if a + PREFETCH < n_act:
                        _prefetch_neuron(&net, act[tid, a + PREFETCH], d)
                    _heap_push(&sc[i, 0], &idx[i, 0], &size, k,
                               net.b_out[j] + sl_dot(&Hm[i, 0], net.W_out + <int64_t>j * d, d), j)
                _complete_from(&Hm[i, 0], net.W_out, net.b_out, d, fallback, n_head,
                               &sc[i, 0], &idx[i, 0], &size, k)
                _heap_sort_desc(&sc[i, 0], &idx[i, 0], size)
    finally:
        free(works)
    return idx_np, sc_np, total_cand


cdef inline void _score_direct(const float* h, const float[:, ::1] W_out,
                               const float[::1] b_out, const int32_t* labels, int n_lab,
                               int d, float* sc, int32_t* ix, int* size,
                               int k) noexcept nogil:
    """Push ``b_j + h . w_j`` of every label of ``labels[:n_lab]`` into a row's heap."""
    cdef int m
    cdef int32_t j
    for m in range(n_lab):
        j = labels[m]
        if m + PREFETCH < n_lab:
            sl_prefetch_row(&W_out[labels[m + PREFETCH], 0], d)
        _heap_push(sc, ix, size, k, b_out[j] + sl_dot(h, &W_out[j, 0], d), j)


def topk_probed(const float[:, ::1] Hm, state, const int32_t[::1] members,
                const int64_t[::1] starts, const int32_t[:, ::1] probe,
                const int32_t[::1] counts, int k, const int32_t[::1] fallback,
                int n_threads, int row_block=1024, int label_block=256):
    """Top-k of each row among the output neurons of the clusters it probes.

    ``members`` lists the labels cluster by cluster, cluster c being
    ``members[starts[c]:starts[c + 1]]``; row i scores the clusters
    ``probe[i, :counts[i]]``, distinct (``_ivf.ClusterIndex.probe``). Rows with fewer
    than k candidates are completed from ``fallback`` (labels in decreasing training
    frequency). Returns (indices int32, scores float32, number of scored neurons), best
    first.

    The rows are taken ``row_block`` at a time (in parallel over blocks) and grouped by
    cluster: a cluster's weights are then read once for all the rows of the block that
    probe it, ``label_block`` labels at a time, gathered and scored by one sgemm, where
    reading them once for every row made the scoring bound by memory latency. A cluster
    probed by few rows, or of few labels, is scored with one dot product a pair instead.
    """
    cdef const float[:, ::1] W_out = state.W_out
    cdef const float[::1] b_out = state.b_out
    cdef int n = Hm.shape[0], d = Hm.shape[1], n_labels = W_out.shape[0]
    cdef int n_clusters = starts.shape[0] - 1, n_probe = probe.shape[1]
    cdef int T = max(n_threads, 1), rb, lb = max(label_block, 1), n_blocks, blk, tid
    cdef int r0, nr, r, p, c, R, nl, q, i
    cdef int64_t m0, m1, lo, hi, total = 0
    cdef int32_t* rows
    cdef int64_t* ends
    cdef float* hbuf
    cdef float* wbuf
    cdef float* sbuf
    cdef float one = 1.0, zero = 0.0
    cdef char transa = b'T', transb = b'N'
    if d != W_out.shape[1]:
        raise ValueError("hidden width does not match the output layer")
    if probe.shape[0] != n or counts.shape[0] != n:
        raise ValueError(f"probe and counts need {n} rows, as Hm")
    if n and (np.min(counts) < 0 or np.max(counts) > n_probe):
        raise ValueError("counts must be between 0 and probe.shape[1]")
    # the index is checked once here, so that the loops below read only valid memory
    starts_np = np.asarray(starts)
    if n_clusters < 1 or starts[0] != 0 or starts[n_clusters] != members.shape[0] or \
            np.any(np.diff(starts_np) < 0):
        raise ValueError("starts must rise from 0 to len(members)")
    if members.shape[0] and (np.min(members) < 0 or np.max(members) >= n_labels):
        raise ValueError("members must be labels of the output layer")
    if probe.size and (np.min(probe) < 0 or np.max(probe) >= n_clusters):
        raise ValueError("probe must hold cluster indices")
    if fallback.shape[0] and (np.min(fallback) < 0 or np.max(fallback) >= n_labels):
        raise ValueError("fallback must be labels of the output layer")
    k = min(k, n_labels)
    idx_np = np.full((n, k), -1, dtype=np.int32)
    sc_np = np.full((n, k), -np.inf, dtype=np.float32)
    cdef int32_t[:, ::1] idx = idx_np
    cdef float[:, ::1] sc = sc_np
    if n == 0 or k == 0:
        return idx_np, sc_np, 0
    rb = max(1, min(max(row_block, 1), (n + T - 1) // T))
    n_blocks = (n + rb - 1) // rb
    # per thread: the block's (row, cluster) pairs cluster by cluster (ends[c]: where
    # cluster c's rows end), the gathered hidden rows, one label block's gathered
    # weights and its scores
    pairs = int(np.add.reduceat(np.asarray(counts, dtype=np.int64),
                                np.arange(0, n, rb)).max())
    sizes_np = np.zeros(n, dtype=np.intc)
    ends_np = np.empty((T, n_clusters + 1), dtype=np.int64)
    rows_np = np.empty((T, max(pairs, 1)), dtype=np.int32)
    hbuf_np = np.empty((T, rb * d), dtype=np.float32)
    wbuf_np = np.empty((T, lb * d), dtype=np.float32)
    sbuf_np = np.empty((T, rb * lb), dtype=np.float32)
    cdef int[::1] sizes = sizes_np
    cdef int64_t[:, ::1] ends_v = ends_np
    cdef int32_t[:, ::1] rows_v = rows_np
    cdef float[:, ::1] hbuf_v = hbuf_np
    cdef float[:, ::1] wbuf_v = wbuf_np
    cdef float[:, ::1] sbuf_v = sbuf_np
    with nogil:
        for blk in prange(n_blocks, schedule="dynamic", num_threads=T):
            tid = omp_get_thread_num()
            ends = &ends_v[tid, 0]
            rows = &rows_v[tid, 0]
            hbuf = &hbuf_v[tid, 0]
            wbuf = &wbuf_v[tid, 0]
            sbuf = &sbuf_v[tid, 0]
            r0 = blk * rb
            nr = min(rb, n - r0)
            # counting sort of the block's (row, cluster) pairs by cluster
            memset(ends, 0, (n_clusters + 1) * sizeof(int64_t))
            for r in range(r0, r0 + nr):
                for p in range(counts[r]):
                    ends[probe[r, p] + 1] += 1
            for c in range(n_clusters):
                ends[c + 1] += ends[c]
            for r in range(r0, r0 + nr):
                for p in range(counts[r]):
                    c = probe[r, p]
                    rows[ends[c]] = r
                    ends[c] += 1
            # now ends[c] is where cluster c's rows end; they start at ends[c - 1]
            for c in range(n_clusters):
                lo = ends[c - 1] if c > 0 else 0
                hi = ends[c]
                R = <int>(hi - lo)
                m0 = starts[c]
                m1 = starts[c + 1]
                if R == 0 or m1 == m0:
                    continue
                total += R * (m1 - m0)
                # (more rows than the block holds only if a row lists a cluster twice)
                if R < 2 or R > rb or R * (m1 - m0) < 128:
                    for q in range(R):
                        i = rows[lo + q]
                        _score_direct(&Hm[i, 0], W_out, b_out, &members[m0], <int>(m1 - m0),
                                      d, &sc[i, 0], &idx[i, 0], &sizes[i], k)
                    continue
                for q in range(R):
                    memcpy(&hbuf[q * d], &Hm[rows[lo + q], 0], d * sizeof(float))
                while m0 < m1:
                    nl = <int>min(<int64_t>lb, m1 - m0)
                    for q in range(nl):
                        if q + PREFETCH < nl:
                            sl_prefetch_row(&W_out[members[m0 + q + PREFETCH], 0], d)
                        memcpy(&wbuf[q * d], &W_out[members[m0 + q], 0], d * sizeof(float))
                    # sbuf (R x nl, row-major) = hbuf @ wbuf.T
                    sgemm(&transa, &transb, &nl, &R, &d, &one, wbuf, &d, hbuf, &d, &zero,
                          sbuf, &nl)
                    for q in range(R):
                        i = rows[lo + q]
                        for p in range(nl):
                            _heap_push(&sc[i, 0], &idx[i, 0], &sizes[i], k,
                                       sbuf[q * nl + p] + b_out[members[m0 + p]],
                                       members[m0 + p])
                    m0 = m0 + nl
            for i in range(r0, r0 + nr):
                _complete_from(&Hm[i, 0], &W_out[0, 0], &b_out[0], d, fallback, 0,
                               &sc[i, 0], &idx[i, 0], &sizes[i], k)
                _heap_sort_desc(&sc[i, 0], &idx[i, 0], sizes[i])
    return idx_np, sc_np, total


cdef int _best_clusters(const float* key, const int32_t* cand, int n_cand, int m,
                        float* best, int32_t* out) noexcept nogil:
    """The ``m`` clusters of highest ``key`` among ``cand[:n_cand]`` (all clusters
    0 .. n_cand - 1 where ``cand`` is NULL) into ``out``, best first (their keys into
    ``best``); returns how many (m, or n_cand if fewer)."""
    cdef int q, size = 0
    cdef int32_t c
    for q in range(n_cand):
        c = q if cand == NULL else cand[q]
        _heap_push(best, out, &size, m, key[c], c)
    _heap_sort_desc(best, out, size)
    return size


# Score bins of the cluster choice (_probe_row); below this many clusters a heap of
# them all is as quick.
cdef int PROBE_BINS = 512
cdef int PROBE_MIN_CLUSTERS = 64


cdef int _probe_row(const float* key, const int64_t* starts, int n_clusters, int n_probe,
                    int64_t budget, float* best, int32_t* out, int64_t* mass,
                    int32_t* cand, uint16_t* bins) noexcept nogil:
    """How many of the best clusters the row scores, written into ``out``: the fewest
    best holding ``budget`` labels, at most ``n_probe`` (the ``n_probe`` best with
    budget <= 0); entries of ``out`` past the count repeat its first.

    A histogram of the scores over equal bins (label mass and count a bin) finds the
    highest bin b down to which the clusters hold the budget or number asked for:
    every cluster above bin b is taken, and only bin b's are ranked (by a heap), where
    ranking every cluster cost more than scoring their labels. ``mass`` has room for
    2 * PROBE_BINS counts, ``cand`` and ``bins`` for n_clusters entries; below
    PROBE_MIN_CLUSTERS clusters (or for scores without a finite range) all are ranked,
    and ``out`` is then best first."""
    cdef int c, b, nb = PROBE_BINS, n_cand = 0, size = 0
    cdef float lo, hi
    cdef int64_t held = 0, got = 0
    sl_minmax(key, n_clusters, &lo, &hi)
    if n_clusters < PROBE_MIN_CLUSTERS or not (hi > lo and hi - lo < INFINITY):
        size = _best_clusters(key, NULL, n_clusters, n_probe, best, out)
    else:
        sl_bins(key, n_clusters, lo, (nb - 1) / (hi - lo), nb - 1, bins)
        memset(mass, 0, 2 * nb * sizeof(int64_t))
        for c in range(n_clusters):
            mass[bins[c]] += starts[c + 1] - starts[c]
            mass[nb + bins[c]] += 1
        b = nb - 1
        while b > 0:
            if (budget > 0 and held + mass[b] >= budget) or got + mass[nb + b] >= n_probe:
                break
            held += mass[b]
            got += mass[nb + b]
            b -= 1
        # the clusters above bin b hold less than asked for: all of them are taken
        for c in range(n_clusters):
            out[size] = c
            size += bins[c] > b
            cand[n_cand] = c
            n_cand += bins[c] == b
        # bin b's, best first, complete the count
        size += _best_clusters(key, cand, n_cand, n_probe - size, best, out + size)
        held = 0  # the budget walk below counts from the first entry again
    if budget > 0:
        for c in range(size):
            held += starts[out[c] + 1] - starts[out[c]]
            if held >= budget:
                size = c + 1
                break
    for c in range(size, n_probe):
        out[c] = out[0]
    return size


def probe_clusters(const float[:, ::1] Hm, const float[:, ::1] centroid_w,
                   const float[::1] centroid_b, const int64_t[::1] starts, int n_probe,
                   int64_t budget, int n_threads, int row_block=64):
    """The clusters of highest score of every row of ``Hm`` for ``topk_probed``.

    Row i scores cluster c, whose labels are ``members[starts[c]:starts[c + 1]]``, as
    ``Hm[i] . centroid_w[c] + centroid_b[c]``. Returns (probe int32 (n_rows, n_probe),
    counts int32): row i scores the distinct clusters ``probe[i, :counts[i]]``: its
    fewest best (ties by lower index) holding ``budget`` labels, at most ``n_probe``,
    or its ``n_probe`` best with ``budget`` <= 0; later entries repeat the row's first
    cluster. The chosen clusters are in no set order (best first below 64 clusters).

    In parallel over blocks of ``row_block`` rows: one single-threaded sgemm scores a
    block's clusters (call it with BLAS limited to one thread), and a histogram of each
    row's scores narrows the clusters to rank (``_probe_row``).
    """
    cdef int n = Hm.shape[0], d = Hm.shape[1], n_clusters = centroid_w.shape[0]
    cdef int T = max(n_threads, 1), rb = max(row_block, 1), n_blocks, blk, r0, nr, r
    cdef int tid
    cdef float* key
    cdef float one = 1.0, zero = 0.0
    cdef char transa = b'T', transb = b'N'
    if centroid_w.shape[1] != d or centroid_b.shape[0] != n_clusters:
        raise ValueError(f"centroid_w must be (n_clusters, {d}) and centroid_b "
                         "(n_clusters,)")
    if starts.shape[0] != n_clusters + 1:
        raise ValueError(f"starts needs {n_clusters + 1} entries, one more than the clusters")
    if n_clusters and (starts[0] != 0 or np.any(np.diff(np.asarray(starts)) < 0)):
        raise ValueError("starts must rise from 0")
    if n_clusters == 0 or not 1 <= n_probe <= n_clusters:
        raise ValueError(f"n_probe must be in [1, {n_clusters}], got {n_probe}")
    probe_np = np.empty((n, n_probe), dtype=np.int32)
    counts_np = np.empty(n, dtype=np.int32)
    if n == 0:
        return probe_np, counts_np
    n_blocks = (n + rb - 1) // rb
    sbuf_np = np.empty((T, min(rb, n) * n_clusters), dtype=np.float32)
    best_np = np.empty((T, n_probe), dtype=np.float32)
    mass_np = np.empty((T, 2 * PROBE_BINS), dtype=np.int64)
    cand_np = np.empty((T, n_clusters), dtype=np.int32)
    bins_np = np.empty((T, n_clusters), dtype=np.uint16)
    cdef int32_t[:, ::1] probe = probe_np
    cdef int32_t[::1] counts = counts_np
    cdef float[:, ::1] sbuf = sbuf_np
    cdef float[:, ::1] best = best_np
    cdef int64_t[:, ::1] mass = mass_np
    cdef int32_t[:, ::1] cand = cand_np
    cdef uint16_t[:, ::1] bins = bins_np
    with nogil:
        for blk in prange(n_blocks, schedule="dynamic", num_threads=T):
            tid = omp_get_thread_num()
            r0 = blk * rb
            nr = min(rb, n - r0)
            # sbuf (nr x n_clusters, row-major) = Hm[r0:r0+nr] @ centroid_w.T
            sgemm(&transa, &transb, &n_clusters, &nr, &d, &one, <float*>&centroid_w[0, 0],
                  &d, <float*>&Hm[r0, 0], &d, &zero, &sbuf[tid, 0], &n_clusters)
            for r in range(nr):
                key = &sbuf[tid, r * n_clusters]
                sl_axpy(1.0, &centroid_b[0], key, n_clusters)
                counts[r0 + r] = _probe_row(key, &starts[0], n_clusters, n_probe, budget,
                                            &best[tid, 0], &probe[r0 + r, 0],
                                            &mass[tid, 0], &cand[tid, 0], &bins[tid, 0])
    return probe_np, counts_np


# ---------------------------------------------------------------------------
# Label-parallel training over MPI (see _label_parallel.py): a rank holds a slice of
# the output neurons and scores it for every sample of the global batch; the softmax
# normalisers and the gradients of the hidden activations are combined across ranks
# between these kernels.
# ---------------------------------------------------------------------------

def forward_acts(const float[::1] X_data, const index_t[::1] X_indices,
                 const index_t[::1] X_indptr, const int64_t[::1] rows, state,
                 float[:, ::1] acts, int n_threads, float dropout=0.0, uint64_t seed=0):
    """Activations of every hidden layer (``acts[r]``, layer i at ``a_off[i]``) of the
    CSR rows ``rows``.

    ``dropout`` > 0: inverted dropout on the last hidden layer, in place (dropped units
    0, kept ones scaled by ``1 / (1 - dropout)``), with the random stream of batch
    position ``r`` drawn from ``seed`` and ``r`` (the same for any ``n_threads``);
    ``hidden_backward`` takes the same ``dropout``."""
    cdef Net net = _make_net(state, False)
    cdef Py_ssize_t n = rows.shape[0], r
    cdef int64_t i
    cdef int hd = net.h_last
    cdef float keep_scale
    cdef uint32_t thr = <uint32_t>(dropout * 4294967296.0)
    if acts.shape[0] != n or acts.shape[1] != int(np.sum(state.sizes)):
        raise ValueError("forward_acts: acts has the wrong shape")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if n == 0:
        return
    _check_rows(X_indices, X_indptr, rows, net.n_features)
    keep_scale = 1.0 / (1.0 - dropout)
    with nogil:
        for r in prange(n, schedule="static", num_threads=n_threads):
            i = rows[r]
            _forward_hidden(&net, &X_data[0], &X_indices[0], X_indptr[i], X_indptr[i + 1],
                            &acts[r, 0])
            if dropout > 0:
                sl_dropout(&acts[r, 0] + net.a_off[net.n_layers - 1], hd,
                           <uint32_t>splitmix64(seed ^ splitmix64(<uint64_t>r + 1)), thr,
                           keep_scale)


def slice_forward(const float[:, ::1] H, const int64_t[::1] Y_indptr,
                  const int32_t[::1] Y_local, state, lsh, Workspace work, int min_active,
                  int threshold, uint64_t seed, int32_t[:, ::1] act, int32_t[::1] n_act,
                  float[:, ::1] logits, float[::1] mx, float[::1] se, int n_threads):
    """Active sets and logits of this rank's output neurons for every row of ``H``.

    Row ``i``'s true labels in the slice are ``Y_local[Y_indptr[i]:Y_indptr[i + 1]]``
    (ids local to the slice; they come first in ``act[i]``). Writes ``n_act``, the
    logits, and the row's local maximum logit ``mx`` and ``se`` = sum of exp(logit -
    mx) (0 and -inf for a row without active neurons)."""
    cdef Net net = _make_net(state, False)
    cdef HashFn fn = make_hash_fn(lsh.params)
    cdef Tables tb = _tables(lsh)
    cdef int32_t[:, ::1] codes = work.codes
    cdef int32_t[:, ::1] cand = work.cand
    cdef mark_t[:, ::1] mark = work.mark
    cdef uint64_t[::1] rng = work.rng
    cdef Py_ssize_t n = H.shape[0], i
    cdef int tid, t, a, na, hd = net.h_last
    cdef int32_t j
    cdef float z, m, s
    cdef Work* works
    if H.shape[1] != hd or act.shape[0] != n or logits.shape[0] != n or n_act.shape[0] != n:
        raise ValueError("slice_forward: inconsistent shapes")
    need = active_capacity(net.n_labels, int(np.max(np.diff(Y_indptr), initial=0)),
                           tb.n_tables, lsh.bucket_size, min_active)
    if act.shape[1] < need or logits.shape[1] < need - 1:
        raise ValueError("slice_forward: act has too few columns")
    if cand.shape[1] < <int64_t>tb.n_tables * lsh.bucket_size:
        raise ValueError("slice_forward: cand has too few columns")
    if Y_indptr.shape[0] != n + 1 or (Y_local.shape[0] > 0 and (
            np.min(Y_local) < 0 or np.max(Y_local) >= net.n_labels)):
        raise ValueError("slice_forward: labels outside the slice")
    if codes.shape[0] < n_threads or rng.shape[0] < n_threads * STRIDE:
        raise ValueError("work buffers were sized for fewer threads")
    for t in range(n_threads):
        rng[t * STRIDE] = splitmix64(seed ^ splitmix64(<uint64_t>t + 1)) | 1
    works = <Work*>calloc(n_threads, sizeof(Work))
    if works == NULL:
        raise MemoryError()
    for t in range(n_threads):
        work.thread_work(&works[t], t)  # its act: a row of the output ``act`` below
    try:
        with nogil:
            for i in prange(n, schedule="dynamic", chunksize=4, num_threads=n_threads):
                tid = omp_get_thread_num()
                works[tid].act = &act[i, 0]
                hash_query(&fn, &H[i, 0], works[tid].codes, works[tid].buckets)
                na = _active_set(&net, &tb, &works[tid],
                                 &Y_local[Y_indptr[i]] if Y_indptr[i + 1] > Y_indptr[i] else NULL,
                                 <int>(Y_indptr[i + 1] - Y_indptr[i]), min_active, threshold)
                n_act[i] = na
                m = -INFINITY
                for a in range(na):
                    j = act[i, a]
                    mark[tid, j] = 0
                    if a + PREFETCH < na:
                        _prefetch_neuron(&net, act[i, a + PREFETCH], hd)
                    z = net.b_out[j] + sl_dot(&H[i, 0], net.W_out + <int64_t>j * hd, hd)
                    logits[i, a] = z
                    if z > m:
                        m = z
                s = 0
                for a in range(na):
                    s = s + expf(logits[i, a] - m)
                mx[i] = m
                se[i] = s
    finally:
        free(works)


def slice_backward(const float[:, ::1] H, const int32_t[:, ::1] act,
                   const int32_t[::1] n_act, const int64_t[::1] Y_indptr,
                   const float[:, ::1] logits, const float[::1] M, const float[::1] S,
                   const float[::1] inv_m, const float[::1] weight, float inv_batch,
                   state, Workspace work, float[:, ::1] dH, int n_threads):
    """Softmax gradients of this rank's active neurons given the global maximum ``M``
    and normaliser ``S`` of every row (``inv_m``: 1 / the row's number of true labels
    over all ranks; ``weight``: the row's weight in the loss, 1 or, for
    loss="pick_all", that number). Adds to ``g_out`` / ``gb_out`` and lists the touched neurons,
    as ``train_batch``; writes this slice's part of d loss / d h to ``dH``. Returns
    this slice's part of the summed loss."""
    cdef Net net = _make_net(state, False)
    cdef float[:, ::1] g_out
    cdef float[::1] gb_out
    cdef int32_t[:, ::1] out_list = work.out_list
    cdef int64_t[::1] out_count = work.out_count
    cdef uint8_t[::1] out_flag = work.out_flag
    cdef Py_ssize_t n = H.shape[0], i
    cdef int tid, a, k, m_true, hd = net.h_last
    cdef int32_t j
    cdef float dz, logS
    cdef double loss = 0
    if (dH.shape[0] != n or dH.shape[1] != hd or H.shape[1] != hd
            or inv_m.shape[0] < n or weight.shape[0] < n):
        raise ValueError("slice_backward: inconsistent shapes")
    if not work.scatter:
        raise ValueError("slice_backward adds into g_out: it needs a Workspace that is "
                         "not transposed")
    g_out = work.g_out
    gb_out = work.gb_out
    if out_list.shape[0] < n_threads:
        raise ValueError("work buffers were sized for fewer threads")
    with nogil:
        for i in prange(n, schedule="dynamic", chunksize=4, num_threads=n_threads):
            tid = omp_get_thread_num()
            m_true = <int>(Y_indptr[i + 1] - Y_indptr[i])
            logS = logf(S[i])
            for k in range(hd):
                dH[i, k] = 0
            for a in range(n_act[i]):
                j = act[i, a]
                dz = expf(logits[i, a] - M[i]) / S[i]
                if a < m_true:
                    dz = dz - inv_m[i]
                    loss += weight[i] * inv_m[i] * (logS + M[i] - logits[i, a])
                dz = dz * (inv_batch * weight[i])
                sl_axpy(dz, net.W_out + <int64_t>j * hd, &dH[i, 0], hd)
                sl_axpy(dz, &H[i, 0], &g_out[j, 0], hd)
                gb_out[j] += dz
                if out_flag[j] == 0:
                    out_flag[j] = 1
                    out_list[tid, out_count[tid * STRIDE]] = j
                    out_count[tid * STRIDE] += 1
    return loss


cdef inline void _bce_row(float* z, const float* b, int L, const int32_t* labels,
                         int64_t m, float inv_batch, double* loss) noexcept nogil:
    """One row of the one-vs-all logistic loss: ``z`` (the row's h . w_j, without the
    bias ``b``) becomes d loss / d logit times ``inv_batch``; ``loss`` gets
    sum_j softplus(z_j + b_j) - sum over the row's (distinct) labels of their logit."""
    cdef int j
    cdef int64_t p
    cdef float zj, e
    cdef double total = 0, prod = 1
    for p in range(m):
        total -= z[labels[p]] + b[labels[p]]
    for j in range(L):
        zj = z[j] + b[j]
        e = expf(-fabsf(zj))
        # softplus(z) = max(z, 0) + log(1 + e): the logs of 32 labels as one log of
        # their product (each factor in [1, 2]), not a log per label
        total += fmaxf(zj, 0)
        prod *= 1.0 + e
        if (j & 31) == 31:
            total += log(prod)
            prod = 1
        # sigmoid without overflow: e / (1 + e) below 0, 1 / (1 + e) above
        z[j] = (1.0 / (1.0 + e) if zj >= 0 else e / (1.0 + e)) * inv_batch
    total += log(prod)
    for p in range(m):
        z[labels[p]] -= inv_batch
    loss[0] += total


def dense_output(const float[:, ::1] H, const int64_t[::1] Y_indptr,
                 const int32_t[::1] Y_indices, state, Workspace work, float[:, ::1] dZ,
                 float[:, ::1] dH, float inv_batch, str loss, int n_threads,
                 int row_block=32, int label_block=256, int col_block=128):
    """The loss over every output neuron of a batch, with sgemm: the output layer as
    a dense layer, for when every label is active anyway (``min_active`` at least the
    number of labels), where scoring the rows one by one against the whole layer
    costs several times a blocked product.

    ``H``: the batch's last hidden activations (after dropout), ``Y_indptr`` /
    ``Y_indices``: its label lists (row r's labels at ``Y_indices[Y_indptr[r]:
    Y_indptr[r + 1]]``, distinct, in range). Writes d loss / d logit (``dZ``, batch x
    labels, scratch) and d loss / d h (``dH``), adds the output gradients to
    ``g_out`` / ``gb_out`` and lists every neuron, as ``train_batch`` does on a
    Workspace that is not transposed. The loss and gradient are those of
    ``train_batch`` with every label active; blocks have fixed sizes, so the result
    does not depend on ``n_threads``. The output gradient is formed in blocks of
    ``label_block`` neurons x ``col_block`` hidden units. Call with single-threaded
    BLAS. Returns the summed loss.

    ``loss``: ``"softmax"`` (a target of 1 / m on each of a row's m labels),
    ``"pick_all"`` (a cross-entropy term per label) or ``"bce"`` (a logistic loss per
    output neuron, target 1 on the row's labels and 0 elsewhere: one-vs-all)."""
    cdef const float[:, ::1] W_out = state.W_out
    cdef const float[::1] b_out = state.b_out
    cdef float[:, ::1] g_out
    cdef float[::1] gb_out
    cdef int32_t[:, ::1] out_list = work.out_list
    cdef int64_t[::1] out_count = work.out_count
    cdef uint8_t[::1] out_flag = work.out_flag
    cdef int n = H.shape[0], d = H.shape[1], L = W_out.shape[0]
    cdef int blk, r0, nr, l0, nl, c0, nc, r, j, n_blocks, n_cols
    cdef int64_t p, m
    cdef float one = 1.0, zero = 0.0, zmax, total, wgt, inv_m
    cdef char tr = b'T', nt = b'N'
    cdef bint pick_all = loss == "pick_all", bce = loss == "bce"
    if loss not in ("softmax", "pick_all", "bce"):
        raise ValueError(f"dense_output: unknown loss {loss!r}")
    if row_block < 1 or label_block < 1 or col_block < 1:
        raise ValueError("dense_output: block sizes must be positive")
    if not work.scatter:
        raise ValueError("dense_output adds into g_out: it needs a Workspace that is "
                         "not transposed")
    if (d != W_out.shape[1] or Y_indptr.shape[0] != n + 1 or dZ.shape[0] < n
            or dZ.shape[1] != L or dH.shape[0] != n or dH.shape[1] != d):
        raise ValueError("dense_output: inconsistent shapes")
    if n == 0:
        return 0.0
    if Y_indptr[0] < 0 or Y_indptr[n] > Y_indices.shape[0]:
        raise ValueError("dense_output: label pointers out of range")
    for r in range(n):
        if Y_indptr[r + 1] <= Y_indptr[r]:
            raise ValueError("dense_output: every row needs at least one label")
        for p in range(Y_indptr[r], Y_indptr[r + 1]):
            if Y_indices[p] < 0 or Y_indices[p] >= L:
                raise ValueError("dense_output: label out of range")
    g_out = work.g_out
    gb_out = work.gb_out
    loss_np = np.zeros(n, dtype=np.float64)
    cdef double[::1] row_loss = loss_np
    n_blocks = (n + row_block - 1) // row_block
    with nogil:
        for blk in prange(n_blocks, schedule="dynamic", num_threads=n_threads):
            r0 = blk * row_block
            nr = min(row_block, n - r0)
            # dZ[r0:r0+nr] (nr x L, row-major) = H[r0:r0+nr] @ W_out.T
            sgemm(&tr, &nt, &L, &nr, &d, &one, <float*>&W_out[0, 0], &d,
                  <float*>&H[r0, 0], &d, &zero, &dZ[r0, 0], &L)
            for r in range(r0, r0 + nr):
                if bce:
                    _bce_row(&dZ[r, 0], &b_out[0], L, &Y_indices[Y_indptr[r]],
                             Y_indptr[r + 1] - Y_indptr[r], inv_batch, &row_loss[r])
                    continue
                zmax = -INFINITY
                for j in range(L):
                    dZ[r, j] = dZ[r, j] + b_out[j]
                    if dZ[r, j] > zmax:
                        zmax = dZ[r, j]
                total = sl_exp_shift_sum(&dZ[r, 0], L, zmax)
                m = Y_indptr[r + 1] - Y_indptr[r]
                inv_m = 1.0 / m
                wgt = <float>m if pick_all else 1.0
                for p in range(Y_indptr[r], Y_indptr[r + 1]):
                    row_loss[r] -= wgt * inv_m * logf(dZ[r, Y_indices[p]] / total)
                for j in range(L):
                    dZ[r, j] = dZ[r, j] / total * (wgt * inv_batch)
                for p in range(Y_indptr[r], Y_indptr[r + 1]):
                    dZ[r, Y_indices[p]] -= wgt * inv_m * inv_batch
            # dH[r0:r0+nr] (nr x d) = dZ[r0:r0+nr] @ W_out
            sgemm(&nt, &nt, &d, &nr, &L, &one, <float*>&W_out[0, 0], &d, &dZ[r0, 0], &L,
                  &zero, &dH[r0, 0], &d)
        # blocks of labels x hidden units: a few hundred labels make one label block,
        # which alone would leave the other threads idle
        n_cols = (d + col_block - 1) // col_block
        n_blocks = (L + label_block - 1) // label_block * n_cols
        for blk in prange(n_blocks, schedule="dynamic", num_threads=n_threads):
            l0 = (blk // n_cols) * label_block
            nl = min(label_block, L - l0)
            c0 = (blk % n_cols) * col_block
            nc = min(col_block, d - c0)
            # g_out[l0:l0+nl, c0:c0+nc] += dZ[:, l0:l0+nl].T @ H[:, c0:c0+nc]
            sgemm(&nt, &tr, &nc, &nl, &n, &one, <float*>&H[0, c0], &d, &dZ[0, l0], &L,
                  &one, &g_out[l0, c0], &d)
            if c0 == 0:
                for j in range(l0, l0 + nl):
                    for r in range(n):
                        gb_out[j] += dZ[r, j]
    # every neuron was touched: list them for adam_update as thread 0's
    for j in range(L):
        if out_flag[j] == 0:
            out_flag[j] = 1
            out_list[0, out_count[0]] = j
            out_count[0] += 1
    return float(loss_np.sum())


def shared_output(const float[:, ::1] H, const int64_t[::1] Y_indptr,
                  const int32_t[::1] Y_pos, const int32_t[::1] cand,
                  const float[::1] offset, const uint8_t[::1] masked, state,
                  Workspace work, float[:, ::1] dZ, float[:, ::1] dH, float inv_batch,
                  bint pick_all, int n_threads, int row_block=32, int label_block=256,
                  adam=None):
    """Softmax of a batch over a set of candidate neurons shared by its rows, with
    sgemm: the sampled softmax of negative_sampling="log_uniform".

    ``cand``: the candidates (distinct neuron ids), the batch's labels and the drawn
    negatives; row r's labels are the candidates at positions ``Y_pos[Y_indptr[r]:
    Y_indptr[r + 1]]``. A row's logit of candidate j is ``h . w_j + b_j``, plus
    ``offset[j]`` (minus the log of its sampling probability) when j is not one of the
    row's labels, and minus infinity when ``masked[j]`` (a label of another row that
    was not drawn: it is not a sample of the negatives' distribution). Writes
    d loss / d logit (``dZ``, batch x candidates, scratch) and d loss / d h (``dH``),
    adds the gradients of the candidates' rows to ``g_out`` / ``gb_out`` and lists
    them, as ``train_batch`` does on a Workspace that is not transposed. Fixed blocks:
    the result does not depend on ``n_threads``. Call with single-threaded BLAS.

    With ``state.w16_out`` (precision="bfloat16") the candidates' weights are their
    bfloat16 halves (``H`` should hold activations rounded to bfloat16, as the
    sample-by-sample path uses), and the candidates' Adam step is taken here, as
    ``output_adam`` takes it (``_adam16.h``, the biases in float32), with ``adam`` =
    ``(lr, beta1, beta2, eps, alpha, step, seed)``: every candidate is distinct, so its
    gradient row is whole once its block is summed, and no ``(n_labels, H)`` gradient is
    stored. ``g_out`` is not used (a Workspace made with ``scatter=False`` has none);
    nothing is listed for ``adam_update``.
    Returns the summed loss."""
    cdef const float[:, ::1] W_out = state.W_out
    cdef const float[::1] b_out = state.b_out
    cdef float[:, ::1] g_out
    cdef float[::1] gb_out
    cdef int32_t[:, ::1] out_list = work.out_list
    cdef int64_t[::1] out_count = work.out_count
    cdef uint8_t[::1] out_flag = work.out_flag
    cdef int n = H.shape[0], d = H.shape[1], C = cand.shape[0], L = W_out.shape[0]
    cdef int blk, r0, nr, l0, nl, r, j, n_blocks
    cdef int64_t p, m
    cdef int32_t q
    cdef float one = 1.0, zero = 0.0, zmax, total, wgt, inv_m, gb
    cdef char tr = b'T', nt = b'N'
    cdef bint bf16 = state.w16_out is not None
    cdef uint16_t[:, ::1] w16
    cdef uint16_t[:, ::1] s16
    cdef uint8_t[::1] dirty
    cdef float[::1] b_upd
    cdef float[::1] mb_out
    cdef float[::1] vb_out
    cdef float lr_t = 0, beta1 = 0, beta2 = 0, eps = 0, alpha = 0
    cdef uint32_t seed32 = 0
    cdef int k, width = bf16_state_width(d)
    cdef int32_t nxt
    if bf16:
        if adam is None:
            raise ValueError("shared_output: precision='bfloat16' takes the Adam step "
                             "here; pass adam=(lr, beta1, beta2, eps, alpha, step, seed)")
        lr, beta1, beta2, eps, alpha, step, seed = adam
        if step < 1:
            raise ValueError("shared_output: the Adam step counts from 1")
        lr_t = _adam_lr_t(lr, beta1, beta2, step)
        seed32 = <uint32_t>((<uint64_t>seed) ^ ((<uint64_t>seed) >> 32))
        w16 = state.w16_out
        s16 = state.s16_out
        dirty = state.dirty_out
        b_upd = state.b_out
        mb_out = state.mb_out
        vb_out = state.vb_out
        _check_bf16(w16, s16, L, d, dirty.shape[0] == (L + DIRTY - 1) // DIRTY
                    and mb_out.shape[0] == L and vb_out.shape[0] == L)
    elif not work.scatter:
        raise ValueError("shared_output adds into g_out: it needs a Workspace that is "
                         "not transposed")
    elif adam is not None:
        raise ValueError("shared_output: adam= is for precision='bfloat16'; in float32 "
                         "adam_update takes the step")
    if (d != W_out.shape[1] or Y_indptr.shape[0] != n + 1 or dZ.shape[0] < n
            or dZ.shape[1] != C or dH.shape[0] != n or dH.shape[1] != d
            or offset.shape[0] != C or masked.shape[0] != C or b_out.shape[0] != L):
        raise ValueError("shared_output: inconsistent shapes")
    if n == 0:
        return 0.0
    if C == 0:
        raise ValueError("shared_output: no candidates")
    for j in range(C):
        if cand[j] < 0 or cand[j] >= L:
            raise ValueError("shared_output: candidate out of range")
        if j > 0 and cand[j] <= cand[j - 1]:
            raise ValueError("shared_output: candidates must be sorted and distinct")
    if Y_indptr[0] != 0 or Y_indptr[n] > Y_pos.shape[0]:
        raise ValueError("shared_output: label pointers out of range")
    for r in range(n):
        if Y_indptr[r + 1] <= Y_indptr[r]:
            raise ValueError("shared_output: every row needs at least one label")
        for p in range(Y_indptr[r], Y_indptr[r + 1]):
            if Y_pos[p] < 0 or Y_pos[p] >= C:
                raise ValueError("shared_output: label position out of range")
    if not bf16:
        g_out = work.g_out
        gb_out = work.gb_out
    Wc_np = np.empty((C, d), dtype=np.float32)
    Gc_np = np.empty((C, d), dtype=np.float32)
    raw_np = np.empty(max(Y_indptr[n], 1), dtype=np.float32)
    loss_np = np.zeros(n, dtype=np.float64)
    colsum_np = np.zeros(C, dtype=np.float32)
    cdef float[:, ::1] Wc = Wc_np
    cdef float[:, ::1] Gc = Gc_np
    cdef float[::1] raw = raw_np
    cdef double[::1] row_loss = loss_np
    cdef float[::1] colsum = colsum_np
    with nogil:
        for j in prange(C, schedule="static", num_threads=n_threads):
            if bf16:  # the weights training sees: the rounded halves
                for k in range(d):
                    Wc[j, k] = sl_bf16_to_f32(w16[cand[j], k])
            else:
                memcpy(&Wc[j, 0], &W_out[cand[j], 0], d * sizeof(float))
        n_blocks = (n + row_block - 1) // row_block
        for blk in prange(n_blocks, schedule="dynamic", num_threads=n_threads):
            r0 = blk * row_block
            nr = min(row_block, n - r0)
            # dZ[r0:r0+nr] (nr x C) = H[r0:r0+nr] @ Wc.T
            sgemm(&tr, &nt, &C, &nr, &d, &one, &Wc[0, 0], &d, <float*>&H[r0, 0], &d, &zero,
                  &dZ[r0, 0], &C)
            for r in range(r0, r0 + nr):
                # the row's labels keep their plain logits (each label's range of
                # Y_pos belongs to its row: no two threads write the same raw entry)
                for p in range(Y_indptr[r], Y_indptr[r + 1]):
                    raw[p] = dZ[r, Y_pos[p]] + b_out[cand[Y_pos[p]]]
                for j in range(C):
                    if masked[j]:
                        dZ[r, j] = -INFINITY
                    else:
                        dZ[r, j] = dZ[r, j] + b_out[cand[j]] + offset[j]
                for p in range(Y_indptr[r], Y_indptr[r + 1]):
                    dZ[r, Y_pos[p]] = raw[p]
                zmax = -INFINITY
                for j in range(C):
                    if dZ[r, j] > zmax:
                        zmax = dZ[r, j]
                total = sl_exp_shift_sum(&dZ[r, 0], C, zmax)
                m = Y_indptr[r + 1] - Y_indptr[r]
                inv_m = 1.0 / m
                wgt = <float>m if pick_all else 1.0
                for p in range(Y_indptr[r], Y_indptr[r + 1]):
                    row_loss[r] -= wgt * inv_m * logf(dZ[r, Y_pos[p]] / total)
                for j in range(C):
                    dZ[r, j] = dZ[r, j] / total * (wgt * inv_batch)
                for p in range(Y_indptr[r], Y_indptr[r + 1]):
                    dZ[r, Y_pos[p]] -= wgt * inv_m * inv_batch
            # dH[r0:r0+nr] (nr x d) = dZ[r0:r0+nr] @ Wc
            sgemm(&nt, &nt, &d, &nr, &C, &one, &Wc[0, 0], &d, &dZ[r0, 0], &C, &zero,
                  &dH[r0, 0], &d)
        n_blocks = (C + label_block - 1) // label_block
        for blk in prange(n_blocks, schedule="dynamic", num_threads=n_threads):
            l0 = blk * label_block
            nl = min(label_block, C - l0)
            # Gc[l0:l0+nl] (nl x d) = dZ[:, l0:l0+nl].T @ H, then into the rows of g_out
            sgemm(&nt, &tr, &d, &nl, &n, &one, <float*>&H[0, 0], &d, &dZ[0, l0], &C,
                  &zero, &Gc[l0, 0], &d)
            # the biases' gradients: dZ's column sums, added row by row along the
            # contiguous rows (each column in row order, as a column walk would), where
            # walking each column took a strided load a row
            for r in range(n):
                sl_axpy(1.0, &dZ[r, l0], &colsum[l0], nl)
            if bf16:  # each candidate's whole gradient is here: its step at once
                for j in range(l0, l0 + nl):
                    if j + PREFETCH < l0 + nl:
                        nxt = cand[j + PREFETCH]
                        sl_prefetchw_row(<float*>&w16[nxt, 0], d // 2)
                        sl_prefetchw_row(<float*>&s16[nxt, 0], width // 2)
                    sl_adam16_row(&w16[cand[j], 0], &s16[cand[j], 0], &Gc[j, 0], d, lr_t,
                                  beta1, beta2, eps, alpha,
                                  sl_mix32(seed32 ^ <uint32_t>cand[j]))
                    dirty[cand[j] // DIRTY] = 1
                    gb = colsum[j]
                    _adam_scalar(&b_upd[cand[j]], &mb_out[cand[j]], &vb_out[cand[j]], &gb,
                                 lr_t, beta1, beta2, eps)
            else:
                for j in range(l0, l0 + nl):
                    if j + PREFETCH < l0 + nl:
                        sl_prefetchw_row(&g_out[cand[j + PREFETCH], 0], d)
                    sl_axpy(1.0, &Gc[j, 0], &g_out[cand[j], 0], d)
                for j in range(l0, l0 + nl):
                    gb_out[cand[j]] += colsum[j]
    if not bf16:
        for j in range(C):
            q = cand[j]
            if out_flag[q] == 0:
                out_flag[q] = 1
                out_list[0, out_count[0]] = q
                out_count[0] += 1
    return float(loss_np.sum())


def hidden_backward(const float[::1] X_data, const index_t[::1] X_indices,
                    const index_t[::1] X_indptr, const int64_t[::1] rows,
                    const float[:, ::1] acts, const float[:, ::1] dH, state,
                    Workspace work, int n_threads, float dropout=0.0, adam=None):
    """Back-propagate d loss / d h (``dH``, one row per row of ``rows``) through the
    hidden layers and the sparse input layer: gradients added to ``g_dense[0]`` and
    ``g_in`` and touched input rows listed, in batch order, as ``train_batch`` does.

    ``acts`` is what ``forward_acts`` gave with the same ``dropout``: the last layer's
    dropped units are 0 there and get no gradient, the kept ones that of their
    ``1 / (1 - dropout)`` scaling.

    ``adam``: ``(lr, beta1, beta2, eps, alpha, step)`` to apply the input layer's lazy
    Adam step here, each row's as soon as its gradient is summed, the step
    ``adam_update`` would make with these arguments (which then has no input row to
    update): the gradient rows are never stored. A single process only: the
    label-parallel path sums ``g_in`` over the ranks first."""
    cdef Net net = _make_net(state, False)
    cdef float[:, ::1] g_dense = work.g_dense
    cdef float[:, ::1] g_in = work.g_in
    cdef int32_t[:, ::1] in_list = work.in_list
    cdef int64_t[::1] in_count = work.in_count
    cdef uint8_t[::1] in_flag = work.in_flag
    cdef Py_ssize_t n = rows.shape[0], r, S = acts.shape[1]
    cdef int L = net.n_layers, hd = net.h_last, k, t
    cdef const float* h
    cdef float* dh
    if acts.shape[0] != n or dH.shape[0] != n or dH.shape[1] != hd:
        raise ValueError("hidden_backward: inconsistent shapes")
    if S < net.a_off[L - 1] + hd:
        raise ValueError("hidden_backward: acts has too few columns")
    if in_list.shape[0] < n_threads or in_count.shape[0] < n_threads * STRIDE:
        raise ValueError("work buffers were sized for fewer threads")
    if n == 0:
        return
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    cdef int64_t n_entries = _check_rows(X_indices, X_indptr, rows, net.n_features)
    delta_np = np.empty((n, S), dtype=np.float32)
    cdef float[:, ::1] delta = delta_np
    cdef float keep_scale = 1.0 / (1.0 - dropout)
    cdef _InputScratch scratch = _InputScratch(n_entries, n_threads)
    cdef InputAdam step
    cdef float[:, ::1] W_in, m_in, v_in, gbuf
    cdef float lr, beta1, beta2  # float32, as every Adam kernel takes them (_adam_lr_t)
    cdef int64_t t_step
    step.W = NULL
    if adam is not None:
        lr, beta1, beta2, eps, alpha, t_step = adam
        W_in = state.W_in
        m_in = state.m_in
        v_in = state.v_in
        if (W_in.shape[0] != net.n_features or W_in.shape[1] != net.sizes[0]
                or m_in.shape[0] != W_in.shape[0] or m_in.shape[1] != W_in.shape[1]
                or v_in.shape[0] != W_in.shape[0] or v_in.shape[1] != W_in.shape[1]):
            raise ValueError("hidden_backward: the input layer's Adam state does not "
                             "match the model")
        if t_step < 1:
            raise ValueError("hidden_backward: the Adam step counts from 1")
        gbuf = np.zeros((max(n_threads, 1), W_in.shape[1]), dtype=np.float32)
        step.W = &W_in[0, 0]
        step.m = &m_in[0, 0]
        step.v = &v_in[0, 0]
        step.gbuf = &gbuf[0, 0]
        step.lr_t = _adam_lr_t(lr, beta1, beta2, t_step)
        step.b1 = beta1
        step.b2 = beta2
        step.eps = eps
        step.alpha = alpha
    with nogil:
        for r in prange(n, schedule="dynamic", chunksize=4, num_threads=n_threads):
            h = &acts[r, 0] + net.a_off[L - 1]
            dh = &delta[r, 0] + net.a_off[L - 1]
            for k in range(hd):
                dh[k] = dH[r, k] * keep_scale if h[k] > 0 else 0
            _backprop_sample(&net, &acts[r, 0], &delta[r, 0])
        for t in prange(n_threads, schedule="static", num_threads=n_threads):
            _layer_grads(&net, n, &acts[0, 0], &delta[0, 0], S, &g_dense[0, 0], t,
                         n_threads)
        _input_grads(&net, &X_data[0], &X_indices[0], &X_indptr[0], &rows[0], n,
                     &delta[0, 0], S, &g_in[0, 0], &in_flag[0], in_list, in_count,
                     &scratch.bufs, n_threads, &step)


# ---------------------------------------------------------------------------
# Entry points for tests only (slidelearn._slide._testing re-exports them): the
# dispatched kernels against their portable loops, compiled here with the kernels
# they check.
# ---------------------------------------------------------------------------

def exp_shift_sum(float[::1] x, float m):
    """``x[i] = exp(x[i] - m)`` in place, as the softmax kernels take it (the level's
    vector loop; ``m`` at least every finite ``x[i]``), and the sum of the results."""
    if x.shape[0] == 0:
        return 0.0
    return sl_exp_shift_sum(&x[0], x.shape[0], m)


def vector_levels():
    """The kernel levels in use: ``(vec, bf16)`` as set at import."""
    return sl_vec_get_level(), sl_bf16_get_level()


ctypedef fused row_t:
    float
    uint16_t


cdef void _sum_rows(const float* alpha, const int32_t* ids, int64_t n, const row_t* X,
                    int H, float* y, bint loop) noexcept nogil:
    """``y = sum(alpha[a] * X[ids[a]])`` over float32 or bfloat16 rows of width H: the
    dispatched kernel, or with ``loop`` zeroing and one dispatched axpy a row."""
    cdef int64_t a
    if not loop:
        if row_t is float:
            sl_sum_rows(alpha, ids, n, X, H, y, H)
        else:
            sl_sum_rows_bf16(alpha, ids, n, X, H, y, H)
        return
    memset(y, 0, H * sizeof(float))
    for a in range(n):
        if row_t is float:
            sl_axpy(alpha[a], X + <int64_t>ids[a] * H, y, H)
        else:
            sl_axpy_bf16(alpha[a], X + <int64_t>ids[a] * H, y, H)


def sum_rows(const float[::1] alpha, const int32_t[::1] ids, X, bint loop=False):
    """``sum(alpha[a] * X[ids[a]])`` over ``a`` in order, as ``train_batch`` takes the
    gradient of the last hidden layer from the active output rows.

    ``X`` is float32, or uint16 holding bfloat16 values. ``loop``: zero the result and
    add one row at a time with the dispatched axpy, instead of the kernel that keeps
    the sums in registers (both must agree bit for bit)."""
    cdef const float[:, ::1] Xf
    cdef const uint16_t[:, ::1] X16
    cdef int64_t n = ids.shape[0], a, n_labels = X.shape[0]
    cdef int H = X.shape[1]
    if alpha.shape[0] != n:
        raise ValueError("alpha and ids differ in length")
    for a in range(n):
        if ids[a] < 0 or ids[a] >= n_labels:
            raise ValueError(f"row id {ids[a]} is out of range for {n_labels} rows")
    y_np = np.zeros(H, dtype=np.float32)
    cdef float[::1] y = y_np
    cdef const float* alpha_p = &alpha[0] if n else NULL
    cdef const int32_t* ids_p = &ids[0] if n else NULL
    if H == 0 or n_labels == 0:
        return y_np
    if X.dtype == np.uint16:
        X16 = X
        with nogil:
            _sum_rows(alpha_p, ids_p, n, &X16[0, 0], H, &y[0], loop)
    else:
        Xf = X
        with nogil:
            _sum_rows(alpha_p, ids_p, n, &Xf[0, 0], H, &y[0], loop)
    return y_np


def adam16_rows(uint16_t[:, ::1] w16, uint16_t[:, ::1] s16, const float[:, ::1] g,
                float lr_t, float beta1, float beta2, float eps, float alpha, uint32_t seed,
                bint loop=False):
    """The bfloat16 Adam step of ``output_adam`` on every row ``j`` of ``w16`` / ``s16``
    with gradient ``g[j]`` and random bits from ``seed + j``. ``loop``:
    through the portable loop compiled for the level in use instead of the kernel
    dispatched to (at AVX-512, the block version)."""
    cdef int64_t n = w16.shape[0], j
    cdef int H = w16.shape[1]
    _check_bf16(w16, s16, n, H, g.shape[0] == n and g.shape[1] == H)
    with nogil:
        for j in range(n):
            if loop:
                sl_adam16_row_loop(&w16[j, 0], &s16[j, 0], &g[j, 0], H, lr_t, beta1, beta2,
                                   eps, alpha, seed + <uint32_t>j)
            else:
                sl_adam16_row(&w16[j, 0], &s16[j, 0], &g[j, 0], H, lr_t, beta1, beta2, eps,
                              alpha, seed + <uint32_t>j)


def adam16_records(uint16_t[:, ::1] w16, uint16_t[:, ::1] s16, const float[::1] dz,
                   const int32_t[::1] rows, const uint16_t[:, ::1] Hb16, float lr_t,
                   float beta1, float beta2, float eps, float alpha, uint32_t seed,
                   bint loop=False):
    """The bfloat16 Adam step of ``output_adam`` on every row ``j`` of ``w16`` /
    ``s16``, with the gradient ``sum(dz[q] * Hb16[rows[q]])`` over all ``q`` (as
    bfloat16 activations) and random bits from ``seed + j``. ``loop``: sum
    the gradient row into a buffer first, one axpy a record, then ``sl_adam16_row``,
    instead of the kernel that sums it in registers."""
    cdef int64_t n = w16.shape[0], j, q, n_rec = rows.shape[0]
    cdef int H = w16.shape[1]
    _check_bf16(w16, s16, n, H, Hb16.shape[1] == H and dz.shape[0] == n_rec)
    for q in range(n_rec):
        if rows[q] < 0 or rows[q] >= Hb16.shape[0]:
            raise ValueError(f"record row {rows[q]} is out of range")
    keys_np = np.asarray(rows, dtype=np.uint64) | (np.uint64(7) << np.uint64(32))
    cdef const uint64_t[::1] keys = keys_np
    g_np = np.empty(max(H, 1), dtype=np.float32)
    cdef float[::1] g = g_np
    if n_rec == 0 or n == 0 or H == 0:
        raise ValueError("adam16_records needs records, rows and columns")
    with nogil:
        for j in range(n):
            if loop:
                memset(&g[0], 0, H * sizeof(float))
                for q in range(n_rec):
                    sl_axpy_bf16(dz[q], &Hb16[rows[q], 0], &g[0], H)
                sl_adam16_row(&w16[j, 0], &s16[j, 0], &g[0], H, lr_t, beta1, beta2, eps,
                              alpha, seed + <uint32_t>j)
            else:
                sl_adam16_records(&w16[j, 0], &s16[j, 0], &dz[0], &keys[0], n_rec,
                                  &Hb16[0, 0], H, &g[0], H, lr_t, beta1, beta2, eps, alpha,
                                  seed + <uint32_t>j)
