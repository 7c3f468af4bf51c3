"""DLRM kernels: embedding bags, MLP layers through BLAS sgemm with fused bias and
ReLU, the dot / cat feature interaction, and a whole training step (forward,
backward fused with the SGD or Adagrad update) in one call without the GIL.

The model arrays come from a ``_state.DLRMState`` (``state.theta``, ``state.acc``,
``state.tables``) and the scratch the kernels write from a ``Workspace``. Layout (all
float32, C-contiguous):

* ``theta``: every MLP parameter in one flat vector; for layer ``l`` the weight
  ``W_l`` (out, in) row-major starts at ``layers[l, 2]`` and the bias (out,) at
  ``layers[l, 3]``. Bottom layers come first, then top layers. A flat vector keeps
  the optimizer one loop and makes the gradient one buffer (one allreduce).
* ``E`` (n_rows, d): every embedding table stacked; table ``t`` holds rows
  ``offsets[t]:offsets[t + 1]`` (``EmbeddingTables``). Bags hold global row ids.
* Bags: for table ``t`` and sample ``i`` the bag is
  ``bag_ids[bag_ptr[t, i]:bag_ptr[t, i + 1]]`` with weights ``bag_wts`` at the same
  positions (an empty ``bag_wts`` means every weight is 1).
* Interaction input ``Z`` (B, F, d): slot 0 is the bottom MLP output (when there are
  dense features), then one pooled embedding per table.

The embedding update is race-free without atomics: each of ``n_threads`` owners
holds a contiguous range of every table's rows and applies only the gradients
that fall in it, in batch order, so the result does not depend on the number of
threads. Plain SGD scatters each occurrence directly into its row; Adagrad (and
L2 decay) first reduce the occurrences of a row into one gradient.

``precision='bfloat16'`` (split-SGD): ``theta`` is a uint16 vector of twice the
parameters, ``[hi | lo]`` (the upper and lower 16 bits of every fp32 weight), and
``E`` a uint16 (n_rows, 2 d) array, each row ``[hi | lo]`` of its fp32 row. The
layers multiply bf16 activations by the ``hi`` halves (``_gemm_bf16.h``, fp32
accumulation), the bags sum ``hi`` rows, and every update joins the halves, applies
the fp32 step and splits again (``_split.h``). The kernels choose the path from the
dtype of ``state.theta``.
"""
import numpy as np

from cython.parallel import prange

from libc.math cimport expf, logf, log1pf, sqrtf, fabsf
from libc.stdint cimport int32_t, int64_t, uint16_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from scipy.linalg.cython_blas cimport sgemm

ctypedef fused index_t:
    int32_t
    int64_t

cdef extern from "../utils/_simd.h" nogil:
    float sl_dot(const float *a, const float *b, int n)
    void sl_axpy(float alpha, const float *x, float *y, int n)
    void sl_prefetch_row(const float *p, int n)
    void sl_prefetchw_row(float *p, int n)
    void sl_relu_mask(float *dy, const float *y, int n)
    void sl_bias_act(float *y, const float *b, int n, int relu)
    void sl_add(float *y, const float *x, int n)
    void sl_vec_set_level(int level)

cdef extern from "../utils/_bfloat16.h" nogil:
    void sl_bf16_set_level(int level)
    void sl_sgd_split(uint16_t *hi, uint16_t *lo, const float *g, float lr, int64_t n)
    void sl_axpy_bf16(float alpha, const uint16_t *x, float *y, int64_t n)

cdef extern from "../utils/_gemm_bf16.h" nogil:
    void sl_gemm_set_level(int level)
    int64_t sl_gemm_n_tasks(int64_t m, int64_t n, int n_threads)
    int sl_gemm_task(int in_f32, int64_t t, int64_t n_tasks, int transa, int transb,
                     int64_t m, int64_t n, int64_t K, float alpha, const void *A, int64_t lda,
                     const void *B, int64_t ldb, float beta, float *C, int64_t ldc)

cdef extern from "../utils/_bf16_split.h" nogil:
    void sl_join_trunc_n(const uint16_t *hi, const uint16_t *lo, float *out, int64_t n)

cdef extern from "_split.h" nogil:
    void sl_split_add_scaled(float s, const uint16_t *hi, const uint16_t *lo, float *g,
                             int64_t n)
    void sl_adagrad_split(uint16_t *hi, uint16_t *lo, float *acc, const float *g, float lr,
                          float eps, int64_t n)
    void sl_rows_to_bf16(const float *x, int64_t ld, uint16_t *out, int64_t rows, int64_t n)

from slidelearn.utils import _cpu

# Vector code for the CPU level chosen at import (SLIDELEARN_CPU_LEVEL forces a lower
# one): _cpu levels generic / avx2 / avx512 / avx512_bf16 -> _simd.h 0 / 1 / 2 / 2,
# _bfloat16.h 0 / 0 / 1 / 2 and _gemm_bf16.h 0 / 1 / 2 / 3.
sl_vec_set_level((0, 1, 2, 2)[_cpu._level_index()])
sl_bf16_set_level((0, 0, 1, 2)[_cpu._level_index()])
sl_gemm_set_level(_cpu._level_index())

# Interaction and loss codes shared with the Python side.
cdef enum:
    INTERACTION_DOT = 0
    INTERACTION_DOT_SELF = 1
    INTERACTION_CAT = 2
    LOSS_SQUARED = 0
    LOSS_LOGISTIC = 1
    LOSS_SOFTMAX = 2
    OPT_SGD = 0
    OPT_ADAGRAD = 1

CODES = {
    "dot": INTERACTION_DOT, "dot_self": INTERACTION_DOT_SELF, "cat": INTERACTION_CAT,
    "squared_error": LOSS_SQUARED, "log_loss": LOSS_LOGISTIC, "softmax": LOSS_SOFTMAX,
    "sgd": OPT_SGD, "adagrad": OPT_ADAGRAD,
}

cdef int PREFETCH = 8  # ids ahead within a bag
cdef int AHEAD = 2  # samples ahead


cdef struct Net:
    int n_dense          # dense input width (0 = no bottom MLP)
    int n_tables
    int d
    int F                # vectors entering the interaction
    int zslot0           # slot of the first table in Z (1 with a bottom MLP, else 0)
    int n_bottom         # bottom layers
    int n_top            # top layers (the last one is the output layer)
    int n_int            # width of the top MLP input
    int interaction
    bint fm              # the factorization term: output 0 += sum of the table pairs' dots
    int k                # outputs
    const int64_t* layers    # (n_bottom + n_top, 5): in, out, w_off, b_off, relu
    int64_t max_w        # widest layer input or output
    float* theta
    float* grad
    float* acc
    float* E
    bint bf16            # split storage: theta16 = [hi | lo] of n_theta weights, E16 rows [hi | lo]
    int64_t n_theta
    uint16_t* theta16
    uint16_t* E16
    float* E_acc
    int32_t* slot
    const int64_t* table_offsets


cdef struct Work:
    int B                # capacity in rows
    float* Xb            # (B, n_dense) gathered dense rows
    float* acts          # layer outputs, one block per layer (B * out each)
    int64_t* act_off     # (n_layers,) offsets of each layer's output in acts
    float* Z             # (B, F, d)
    float* R             # (B, n_int) top input (aliases Z for 'cat')
    float* dZ            # (B, F, d)
    float* dR            # (B, n_int) (aliases dZ for 'cat')
    float* d0            # (B, max_width) delta ping
    float* d1            # (B, max_width) delta pong
    float* row_loss      # (B,)
    float* g_out         # (B,) d loss / d output of each row (the factorization term's)
    float* fm_sum        # (B, d) running sums of the factorization term (NULL without it)
    uint16_t* x16        # (B, max_width) bf16 layer input (bf16 models only)
    uint16_t* dy16       # (B, max_width) bf16 output gradient
    float* bias          # (max_width,) fp32 bias of the current layer
    int err              # a bf16 GEMM could not allocate its packing buffers
    bint own_gemm        # fp32 forward through _gemm_tasks instead of BLAS (prediction)


cdef struct BagsRef:
    const int64_t* ptr   # (n_tables, stride): bag of table t, sample i at [t * stride + i]
    int64_t stride
    const float* wts     # NULL when every weight is 1
    bint has_wts


cdef BagsRef _bags_ref(const int64_t[:, ::1] bag_ptr, const float[::1] bag_wts) noexcept:
    """Pointers to the bags of a call (the ids, of either dtype, are passed apart)."""
    cdef BagsRef bags
    bags.ptr = &bag_ptr[0, 0] if bag_ptr.shape[0] > 0 else NULL
    bags.stride = bag_ptr.shape[1]
    bags.has_wts = bag_wts.shape[0] > 0
    bags.wts = &bag_wts[0] if bags.has_wts else NULL
    return bags


cdef int64_t _work_size(int B, Net* net) noexcept nogil:
    """Floats of scratch a batch of ``B`` rows needs (see ``_work``); a bf16 model adds
    the bf16 copies of a layer's input and output gradient."""
    cdef int64_t total = 0, max_w = net.max_w
    cdef int l
    for l in range(net.n_bottom + net.n_top):
        total += B * net.layers[5 * l + 1]
    total += <int64_t>B * (net.n_dense + 2 * net.F * net.d + 2 * net.n_int + 2 * max_w + 2)
    if net.fm:
        total += <int64_t>B * net.d
    if net.bf16:
        # two (B, max_w) uint16 blocks, the bias, alignment
        total += <int64_t>B * max_w + max_w + 32
    return total


cdef void _work(Work* w, float* buf, int B, Net* net, int64_t* act_off) noexcept nogil:
    cdef int64_t pos = 0, max_w = net.max_w
    cdef int l, n_layers = net.n_bottom + net.n_top
    w.B = B
    w.Xb = buf + pos
    pos += B * net.n_dense
    w.act_off = act_off
    for l in range(n_layers):
        act_off[l] = pos
        pos += B * net.layers[5 * l + 1]
    w.acts = buf
    w.Z = buf + pos
    pos += B * net.F * net.d
    w.dZ = buf + pos
    pos += B * net.F * net.d
    w.R = buf + pos
    pos += B * net.n_int
    w.dR = buf + pos
    pos += B * net.n_int
    if net.interaction == INTERACTION_CAT:
        w.R = w.Z
        w.dR = w.dZ
    w.d0 = buf + pos
    pos += B * max_w
    w.d1 = buf + pos
    pos += B * max_w
    w.row_loss = buf + pos
    pos += B
    w.g_out = buf + pos
    pos += B
    w.fm_sum = NULL
    if net.fm:
        w.fm_sum = buf + pos
        pos += <int64_t>B * net.d
    w.err = 0
    w.own_gemm = False
    w.x16 = NULL
    w.dy16 = NULL
    w.bias = NULL
    if net.bf16:
        pos += 16 - pos % 16  # blocks on 64-byte boundaries relative to buf
        w.x16 = <uint16_t*>(buf + pos)
        pos += (B * max_w + 1) // 2
        pos += 16 - pos % 16
        w.dy16 = <uint16_t*>(buf + pos)
        pos += (B * max_w + 1) // 2
        w.bias = buf + pos


# ---------------------------------------------------------------------------
# MLP layer: Y = act(X W^T + b) with BLAS; row-major arrays seen by the
# column-major BLAS as their transposes.
# ---------------------------------------------------------------------------

cdef struct Rows:
    int lo               # first row
    int hi               # one past the last
    int n                # hi - lo


cdef inline Rows _block(int n, int o, int n_threads) noexcept nogil:
    """The rows of the ``n`` that thread ``o`` of ``n_threads`` takes (contiguous,
    balanced). Returned, not written through a pointer: a prange variable is private
    to the thread only when the loop body assigns it."""
    cdef Rows rs
    rs.lo = <int>(<int64_t>n * o // n_threads)
    rs.hi = <int>(<int64_t>n * (o + 1) // n_threads)
    rs.n = rs.hi - rs.lo
    return rs


cdef void _layer_forward(const float* X, int ldx, const float* W, const float* b,
                         float* Y, int ldy, int B, int n_in, int n_out, bint relu,
                         int n_threads, Work* w) noexcept nogil:
    """Each thread multiplies its own block of rows (single-threaded BLAS inside our
    parallel region: no second thread pool competing for the cores) and applies
    bias and ReLU to the block while it is still in cache. With ``w.own_gemm`` the
    product is ``_gemm_tasks`` on fp32 operands instead, whose result for a row does
    not depend on the row's position in the batch (prediction: a row's output must not
    change with the other rows it is predicted with)."""
    cdef char ta = b'T', tb = b'N'
    cdef float one = 1.0, zero = 0.0
    cdef int o, i
    cdef Rows rs
    if w.own_gemm:
        _gemm_tasks(w, True, 0, 1, B, n_out, n_in, X, ldx, W, n_in, Y, ldy, n_threads)
        for i in prange(B, nogil=True, schedule='static', num_threads=n_threads):
            sl_bias_act(Y + <int64_t>i * ldy, b, n_out, relu)
        return
    for o in prange(n_threads, nogil=True, schedule='static', num_threads=n_threads):
        rs = _block(B, o, n_threads)
        if rs.n <= 0:
            continue
        sgemm(&ta, &tb, &n_out, &rs.n, &n_in, &one, <float*>W, &n_in,
              <float*>X + <int64_t>rs.lo * ldx, &ldx, &zero, Y + <int64_t>rs.lo * ldy,
              &ldy)
        for i in range(rs.lo, rs.hi):
            sl_bias_act(Y + <int64_t>i * ldy, b, n_out, relu)


cdef inline void _bias_grad(float* gb, const float* dY, int lddy, int B, int r0,
                            int nr) noexcept nogil:
    """Bias gradient of neurons ``[r0, r0 + nr)``: column sums of dY over the batch."""
    cdef int i
    memset(gb + r0, 0, nr * sizeof(float))
    for i in range(B):
        sl_add(gb + r0, dY + <int64_t>i * lddy + r0, nr)


cdef void _layer_backward(const float* X, int ldx, float* W, const float* Y, int ldy,
                          float* dY, int lddy, float* dX, int lddx, float* gW, float* gb,
                          float* b, int B, int n_in, int n_out, bint relu, bint fused_sgd,
                          float lr, float alpha, int n_threads) noexcept nogil:
    """Backward of one layer. ``dY`` is masked by the ReLU in place; ``dX`` (may be
    NULL) receives dY W with the weights before the update. With ``fused_sgd`` the
    weights are updated in the gradient GEMM itself (beta = 1 - lr * alpha carries
    the L2 decay) and the bias in the column-sum pass; otherwise the gradients go
    to ``gW`` / ``gb``. Threads split the batch rows for the mask and dX, and the
    output neurons (rows of W) for the weight gradient, so no reduction is needed."""
    cdef char tn = b'N', tt = b'T'
    cdef float one = 1.0, zero = 0.0, beta = 1.0 - lr * alpha, a = -lr
    cdef int o, i, j
    cdef Rows rs
    for o in prange(n_threads, nogil=True, schedule='static', num_threads=n_threads):
        rs = _block(B, o, n_threads)
        if rs.n <= 0:
            continue
        if relu:
            for i in range(rs.lo, rs.hi):
                sl_relu_mask(dY + <int64_t>i * lddy, Y + <int64_t>i * ldy, n_out)
        if dX != NULL:
            sgemm(&tn, &tn, &n_in, &rs.n, &n_out, &one, W, &n_in,
                  dY + <int64_t>rs.lo * lddy, &lddy, &zero, dX + <int64_t>rs.lo * lddx, &lddx)
    for o in prange(n_threads, nogil=True, schedule='static', num_threads=n_threads):
        rs = _block(n_out, o, n_threads)
        if rs.n <= 0:
            continue
        _bias_grad(gb, dY, lddy, B, rs.lo, rs.n)
        if fused_sgd:
            sgemm(&tn, &tt, &n_in, &rs.n, &B, &a, <float*>X, &ldx, dY + rs.lo, &lddy,
                  &beta, W + <int64_t>rs.lo * n_in, &n_in)
            for j in range(rs.lo, rs.hi):
                b[j] -= lr * gb[j]
        else:
            sgemm(&tn, &tt, &n_in, &rs.n, &B, &one, <float*>X, &ldx, dY + rs.lo, &lddy,
                  &zero, gW + <int64_t>rs.lo * n_in, &n_in)
            if alpha != 0.0:
                for i in range(rs.lo * n_in, rs.hi * n_in):
                    gW[i] += alpha * W[i]


cdef void _gemm_tasks(Work* w, bint in_f32, int transa, int transb, int64_t m, int64_t n,
                      int64_t K, const void* A, int64_t lda, const void* Bm, int64_t ldb,
                      float* C, int64_t ldc, int n_threads) noexcept nogil:
    """C = op(A) op(B) with ``_gemm_bf16.h`` (fp32 accumulation) on bf16 operands, or on
    fp32 ones with ``in_f32``; its tasks are disjoint blocks of C, one per prange
    iteration. A failed allocation sets ``w.err``."""
    cdef int64_t t, nt = sl_gemm_n_tasks(m, n, n_threads)
    cdef int rc
    for t in prange(nt, nogil=True, schedule='static', num_threads=n_threads):
        rc = sl_gemm_task(in_f32, t, nt, transa, transb, m, n, K, 1.0, A, lda, Bm, ldb, 0.0,
                          C, ldc)
        if rc != 0:
            w.err = 1


cdef void _layer_forward16(Net* net, Work* w, const float* X, int ldx, const int64_t* L,
                           float* Y, int ldy, int B, int n_threads) noexcept nogil:
    """``_layer_forward`` of a bf16 model: the input rounded to bf16 times the ``hi``
    halves of W, accumulated in fp32; the exact fp32 bias and the ReLU after."""
    cdef int i, n_in = <int>L[0], n_out = <int>L[1]
    cdef const uint16_t* hi = net.theta16
    cdef const uint16_t* lo = net.theta16 + net.n_theta
    for i in prange(B, nogil=True, schedule='static', num_threads=n_threads):
        sl_rows_to_bf16(X + <int64_t>i * ldx, ldx, w.x16 + <int64_t>i * n_in, 1, n_in)
    _gemm_tasks(w, False, 0, 1, B, n_out, n_in, w.x16, n_in, hi + L[2], n_in, Y, ldy,
                n_threads)
    sl_join_trunc_n(hi + L[3], lo + L[3], w.bias, n_out)
    for i in prange(B, nogil=True, schedule='static', num_threads=n_threads):
        sl_bias_act(Y + <int64_t>i * ldy, w.bias, n_out, L[4] != 0)


cdef void _layer_backward16(Net* net, Work* w, const float* X, int ldx, const int64_t* L,
                            const float* Y, int ldy, float* dY, int lddy, float* dX, int lddx,
                            int B, bint sgd, float lr, float alpha,
                            int n_threads) noexcept nogil:
    """``_layer_backward`` of a bf16 model. The GEMMs take bf16 copies of the input and
    of the (ReLU-masked) output gradient; the fp32 weight gradient goes to
    ``net.grad``. With ``sgd`` the weights are updated by split-SGD, exactly as fp32
    SGD would update them with that gradient (``W -= lr * (gW + alpha W)``, the bias
    ``b -= lr * gb``); otherwise the gradient (L2 term included) is left for Adagrad."""
    cdef int o, i, n_in = <int>L[0], n_out = <int>L[1]
    cdef int64_t r0
    cdef Rows rs
    cdef uint16_t* hi = net.theta16
    cdef uint16_t* lo = net.theta16 + net.n_theta
    cdef float* gW = net.grad + L[2]
    cdef float* gb = net.grad + L[3]
    for i in prange(B, nogil=True, schedule='static', num_threads=n_threads):
        if L[4] != 0:
            sl_relu_mask(dY + <int64_t>i * lddy, Y + <int64_t>i * ldy, n_out)
        sl_rows_to_bf16(dY + <int64_t>i * lddy, lddy, w.dy16 + <int64_t>i * n_out, 1, n_out)
        sl_rows_to_bf16(X + <int64_t>i * ldx, ldx, w.x16 + <int64_t>i * n_in, 1, n_in)
    if dX != NULL:  # dX = dY W, with the weights before the update
        _gemm_tasks(w, False, 0, 0, B, n_in, n_out, w.dy16, n_out, hi + L[2], n_in, dX,
                    lddx, n_threads)
    _gemm_tasks(w, False, 1, 0, n_out, n_in, B, w.dy16, n_out, w.x16, n_in, gW, n_in,
                n_threads)
    for o in prange(n_threads, nogil=True, schedule='static', num_threads=n_threads):
        rs = _block(n_out, o, n_threads)
        if rs.n <= 0:
            continue
        _bias_grad(gb, dY, lddy, B, rs.lo, rs.n)
        r0 = L[2] + <int64_t>rs.lo * n_in  # the first weight of these neurons
        if alpha != 0.0:
            sl_split_add_scaled(alpha, hi + r0, lo + r0, net.grad + r0, <int64_t>rs.n * n_in)
        if sgd:
            sl_sgd_split(hi + r0, lo + r0, net.grad + r0, lr, <int64_t>rs.n * n_in)
            sl_sgd_split(hi + L[3] + rs.lo, lo + L[3] + rs.lo, gb + rs.lo, lr, rs.n)


cdef inline void _forward_layer(Net* net, Work* w, const float* X, int ldx, const int64_t* L,
                                float* Y, int ldy, int B, int n_threads) noexcept nogil:
    """Layer ``L`` forward in the model's precision."""
    if net.bf16:
        _layer_forward16(net, w, X, ldx, L, Y, ldy, B, n_threads)
    else:
        _layer_forward(X, ldx, net.theta + L[2], net.theta + L[3], Y, ldy, B, <int>L[0],
                       <int>L[1], L[4] != 0, n_threads, w)


cdef inline void _backward_layer(Net* net, Work* w, const float* X, int ldx, const int64_t* L,
                                 const float* Y, int ldy, float* dY, int lddy, float* dX,
                                 int lddx, int B, bint fused, float lr, float alpha,
                                 int n_threads) noexcept nogil:
    """Layer ``L`` backward in the model's precision (see the two functions)."""
    if net.bf16:
        _layer_backward16(net, w, X, ldx, L, Y, ldy, dY, lddy, dX, lddx, B, fused, lr,
                          alpha, n_threads)
    else:
        _layer_backward(X, ldx, net.theta + L[2], Y, ldy, dY, lddy, dX, lddx,
                        net.grad + L[2], net.grad + L[3], net.theta + L[3], B, <int>L[0],
                        <int>L[1], L[4] != 0, fused, lr, alpha, n_threads)


# ---------------------------------------------------------------------------
# Embedding bags
# ---------------------------------------------------------------------------

cdef void _bags_forward(Net* net, Work* w, const int64_t* rows, int B,
                        const int64_t* bag_ptr, int64_t ptr_stride, const index_t* ids,
                        const float* wts, bint has_wts, int n_threads) noexcept nogil:
    cdef int i, t, d = net.d
    cdef int64_t j, j0, j1, r
    cdef float* z
    cdef float wt
    for i in prange(B, nogil=True, schedule='static', num_threads=n_threads):
        if i + AHEAD < B:  # the first rows of a later sample's bags (one id per bag is common)
            _prefetch_bags(net, rows[i + AHEAD], bag_ptr, ptr_stride, ids, -1, -1, 0)
        r = rows[i]
        for t in range(net.n_tables):
            z = w.Z + (<int64_t>i * net.F + net.zslot0 + t) * d
            memset(z, 0, d * sizeof(float))
            j0 = bag_ptr[t * ptr_stride + r]
            j1 = bag_ptr[t * ptr_stride + r + 1]
            for j in range(j0, j1):
                wt = wts[j] if has_wts else 1.0
                if net.bf16:  # the hi halves: the first half of each [hi | lo] row
                    if j + PREFETCH < j1:
                        sl_prefetch_row(_erow(net, ids[j + PREFETCH]), (d + 1) // 2)
                    sl_axpy_bf16(wt, net.E16 + 2 * <int64_t>ids[j] * d, z, d)
                else:
                    if j + PREFETCH < j1:
                        sl_prefetch_row(net.E + <int64_t>ids[j + PREFETCH] * d, d)
                    sl_axpy(wt, net.E + <int64_t>ids[j] * d, z, d)


cdef inline float* _erow(Net* net, int64_t row) noexcept nogil:
    """Start of a table row: ``d`` floats, or ``2 d`` uint16 ``[hi | lo]`` (the same
    bytes) in a bf16 model."""
    if net.bf16:
        return <float*>(net.E16 + 2 * row * net.d)
    return net.E + row * net.d


cdef inline void _prefetch_bags(Net* net, int64_t r, const int64_t* bag_ptr, int64_t ptr_stride,
                                const index_t* ids, int t_only, int64_t lo, int64_t hi) noexcept nogil:
    """Prefetch the first PREFETCH rows of each bag of sample ``r`` (of table
    ``t_only`` only, and of the rows in ``[lo, hi)``, for writing, when ``t_only`` >= 0)."""
    cdef int t
    cdef int64_t j, j0, j1, row
    for t in range(net.n_tables):
        if t_only >= 0 and t != t_only:
            continue
        j0 = bag_ptr[t * ptr_stride + r]
        j1 = min(bag_ptr[t * ptr_stride + r + 1], j0 + PREFETCH)
        for j in range(j0, j1):
            row = ids[j]
            if t_only < 0:
                sl_prefetch_row(_erow(net, row), net.d)
            elif row >= lo and row < hi:
                sl_prefetchw_row(_erow(net, row), net.d)


cdef void _bags_update(Net* net, Work* w, const int64_t* rows, int B,
                       const int64_t* bag_ptr, int64_t ptr_stride, const index_t* ids,
                       const float* wts, bint has_wts, int optimizer, float lr0,
                       const float* lr_scales, float eps, float alpha,
                       int n_threads) noexcept nogil:
    """Embedding backward fused with the update; owner ``o`` of ``n_threads`` holds
    rows ``[lo, hi)`` of each table. Table ``t`` learns at ``lr0 * lr_scales[t]``
    (``lr0`` when ``lr_scales`` is NULL)."""
    cdef int o, i, t, d = net.d, c
    cdef int64_t j, j1, r, row, lo, hi, n_rows, cnt, n_uniq, s
    cdef const float* g
    cdef float wt, gsq, step, scale, lr
    cdef bint direct = optimizer == OPT_SGD and alpha == 0.0
    cdef float* buf
    cdef int64_t* uniq
    cdef float* e
    cdef uint16_t* e16
    cdef float* gb
    scale = alpha / B
    for o in prange(n_threads, nogil=True, schedule='static', num_threads=n_threads):
        for t in range(net.n_tables):
            n_rows = net.table_offsets[t + 1] - net.table_offsets[t]
            lo = net.table_offsets[t] + n_rows * o // n_threads
            hi = net.table_offsets[t] + n_rows * (o + 1) // n_threads
            lr = lr0 * lr_scales[t] if lr_scales != NULL else lr0
            if direct:
                for i in range(B):
                    if i + AHEAD < B:
                        _prefetch_bags(net, rows[i + AHEAD], bag_ptr, ptr_stride, ids, t, lo, hi)
                    r = rows[i]
                    g = w.dZ + (<int64_t>i * net.F + net.zslot0 + t) * d
                    j1 = bag_ptr[t * ptr_stride + r + 1]
                    for j in range(bag_ptr[t * ptr_stride + r], j1):
                        if j + PREFETCH < j1:
                            row = ids[j + PREFETCH]
                            if row >= lo and row < hi:
                                sl_prefetchw_row(_erow(net, row), d)
                        row = ids[j]
                        if row >= lo and row < hi:
                            wt = wts[j] if has_wts else 1.0
                            if net.bf16:
                                sl_sgd_split(net.E16 + 2 * row * d, net.E16 + 2 * row * d + d,
                                             g, lr * wt, d)
                            else:
                                sl_axpy(-lr * wt, g, net.E + row * d, d)
                continue
            # reduce the occurrences of each owned row, then one update per row
            cnt = 0
            for i in range(B):
                r = rows[i]
                for j in range(bag_ptr[t * ptr_stride + r], bag_ptr[t * ptr_stride + r + 1]):
                    row = ids[j]
                    if row >= lo and row < hi:
                        cnt = cnt + 1
            if cnt == 0:
                continue
            buf = <float*>malloc(cnt * (d + 1) * sizeof(float))
            uniq = <int64_t*>malloc(cnt * sizeof(int64_t))
            n_uniq = 0
            for i in range(B):
                r = rows[i]
                g = w.dZ + (<int64_t>i * net.F + net.zslot0 + t) * d
                for j in range(bag_ptr[t * ptr_stride + r], bag_ptr[t * ptr_stride + r + 1]):
                    row = ids[j]
                    if row >= lo and row < hi:
                        s = net.slot[row]
                        if s < 0:
                            s = n_uniq
                            n_uniq = n_uniq + 1
                            net.slot[row] = <int32_t>s
                            uniq[s] = row
                            memset(buf + s * (d + 1), 0, (d + 1) * sizeof(float))
                        wt = wts[j] if has_wts else 1.0
                        sl_axpy(wt, g, buf + s * (d + 1), d)
                        buf[s * (d + 1) + d] += 1.0      # occurrences, for the L2 term
            for s in range(n_uniq):
                row = uniq[s]
                net.slot[row] = -1
                gb = buf + s * (d + 1)
                e = net.E + row * d if not net.bf16 else NULL
                e16 = net.E16 + 2 * row * d if net.bf16 else NULL
                if alpha != 0.0:
                    if net.bf16:
                        sl_split_add_scaled(scale * gb[d], e16, e16 + d, gb, d)
                    else:
                        sl_axpy(scale * gb[d], e, gb, d)
                step = lr
                if optimizer != OPT_SGD:
                    gsq = sl_dot(gb, gb, d) / d
                    net.E_acc[row] += gsq
                    step = lr / (sqrtf(net.E_acc[row]) + eps)
                if net.bf16:  # w -= step * g in fp32 on the joined halves
                    sl_sgd_split(e16, e16 + d, gb, step, d)
                else:
                    sl_axpy(-step, gb, e, d)
            free(buf)
            free(uniq)


# ---------------------------------------------------------------------------
# Interaction
# ---------------------------------------------------------------------------

cdef void _interact(Net* net, Work* w, int B, bint backward, int n_threads) noexcept nogil:
    """The dot interaction: ``R`` from ``Z`` or, with ``backward``, ``dZ`` from ``dR``
    (one enumeration of the pairs for both). Nothing for 'cat', whose ``R`` is ``Z``."""
    if net.interaction == INTERACTION_CAT:
        return
    cdef int i, a, c, p, d = net.d, F = net.F
    cdef bint self_int = net.interaction == INTERACTION_DOT_SELF
    cdef float* z
    cdef float* r
    cdef float* dz
    cdef int off = d if net.n_dense > 0 else 0  # the bottom MLP output leads R
    for i in prange(B, nogil=True, schedule='static', num_threads=n_threads):
        z = w.Z + <int64_t>i * F * d
        if backward:
            r = w.dR + <int64_t>i * net.n_int
            dz = w.dZ + <int64_t>i * F * d
            memset(dz, 0, F * d * sizeof(float))
            if off:
                memcpy(dz, r, d * sizeof(float))
        else:
            r = w.R + <int64_t>i * net.n_int
            if off:
                memcpy(r, z, d * sizeof(float))
        p = off
        for a in range(F):
            for c in range(a + 1 if self_int else a):
                if not backward:
                    r[p] = sl_dot(z + a * d, z + c * d, d)
                elif a == c:
                    sl_axpy(2.0 * r[p], z + a * d, dz + a * d, d)
                else:
                    sl_axpy(r[p], z + c * d, dz + a * d, d)
                    sl_axpy(r[p], z + a * d, dz + c * d, d)
                p = p + 1


cdef void _fm(Net* net, Work* w, int B, bint backward, int n_threads) noexcept nogil:
    """The factorization term of single-output models: output 0 of each row gets the
    sum of the dot products of its table vectors (pairs of slots ``zslot0..F-1``),
    a path from the embeddings to the output that no MLP has to learn. With
    ``backward``, ``dZ`` gets its gradient (``w.g_out`` times the other vectors).

    Both directions go through the running sum of a row's vectors (``w.fm_sum``),
    O(F d) a row instead of O(F^2 d) over the pairs."""
    cdef int i, a, d = net.d, F = net.F
    cdef float s, g
    cdef float* z
    cdef float* dz
    cdef float* acc
    cdef float* out = _layer_out(net, w, net.n_bottom + net.n_top - 1)
    for i in prange(B, nogil=True, schedule='static', num_threads=n_threads):
        z = w.Z + <int64_t>i * F * d
        # acc: the sum of the slots before a (forward), or of all slots (backward)
        acc = w.fm_sum + <int64_t>i * d
        memset(acc, 0, d * sizeof(float))
        s = 0.0
        for a in range(net.zslot0, F):
            if not backward:
                s = s + sl_dot(z + a * d, acc, d)
            sl_axpy(1.0, z + a * d, acc, d)
        if backward:
            g = w.g_out[i]
            dz = w.dZ + <int64_t>i * F * d
            for a in range(net.zslot0, F):  # d/dz_a = g (sum - z_a)
                sl_axpy(g, acc, dz + a * d, d)
                sl_axpy(-g, z + a * d, dz + a * d, d)
        else:
            out[<int64_t>i * net.k] += s


# ---------------------------------------------------------------------------
# Whole network
# ---------------------------------------------------------------------------

cdef float* _layer_out(Net* net, Work* w, int l) noexcept nogil:
    return w.acts + w.act_off[l]


cdef inline float* _bottom_out(Net* net, Work* w, int l, int* ld) noexcept nogil:
    """Output of bottom layer ``l``, and its row stride in ``ld``: the last bottom
    layer writes slot 0 of Z, the interaction's input, directly."""
    if l == net.n_bottom - 1:
        ld[0] = net.F * net.d
        return w.Z
    ld[0] = <int>net.layers[5 * l + 1]
    return _layer_out(net, w, l)


cdef void _bottom_forward(Net* net, Work* w, const float* X, int64_t n_dense_stride,
                         const int64_t* rows, int B, int n_threads) noexcept nogil:
    """Bottom MLP of the rows ``rows`` of ``X``; its last layer writes slot 0 of Z."""
    cdef int i, l, ldx, ldy
    cdef const float* inp
    cdef float* out
    if net.n_bottom == 0:
        return
    for i in prange(B, nogil=True, schedule='static', num_threads=n_threads):
        memcpy(w.Xb + <int64_t>i * net.n_dense, X + rows[i] * n_dense_stride,
               net.n_dense * sizeof(float))
    inp = w.Xb
    ldx = net.n_dense
    for l in range(net.n_bottom):
        out = _bottom_out(net, w, l, &ldy)
        _forward_layer(net, w, inp, ldx, net.layers + 5 * l, out, ldy, B, n_threads)
        inp = out
        ldx = ldy


cdef void _top_forward(Net* net, Work* w, int B, int n_threads) noexcept nogil:
    """Interaction and top MLP, once every slot of Z is filled."""
    cdef int l
    cdef const int64_t* L
    cdef const float* inp
    cdef float* out
    cdef int ldx, nb = net.n_bottom, nt = net.n_top
    _interact(net, w, B, False, n_threads)
    inp = w.R
    ldx = net.n_int
    for l in range(nb, nb + nt):
        L = net.layers + 5 * l
        out = _layer_out(net, w, l)
        _forward_layer(net, w, inp, ldx, L, out, <int>L[1], B, n_threads)
        inp = out
        ldx = <int>L[1]
    if net.fm:
        _fm(net, w, B, False, n_threads)


cdef void _forward(Net* net, Work* w, const float* X, int64_t n_dense_stride,
                   const int64_t* rows, int B, const BagsRef* bags, const index_t* ids,
                   int n_threads) noexcept nogil:
    _bottom_forward(net, w, X, n_dense_stride, rows, B, n_threads)
    _bags_forward(net, w, rows, B, bags.ptr, bags.stride, ids, bags.wts, bags.has_wts,
                  n_threads)
    _top_forward(net, w, B, n_threads)


cdef double _loss_grad(Net* net, Work* w, const float* Y, const int64_t* rows, int B,
                       int loss, float invB, float* dout, int n_threads) noexcept nogil:
    """Summed loss of the batch's rows; ``dout`` gets ``invB`` times d(loss)/d(output)
    (``invB`` = 1 / the rows the gradient averages over: the batch, or the global
    batch of all ranks)."""
    cdef int i, j, k = net.k
    cdef const float* z
    cdef const float* y
    cdef float* g
    cdef float m, s, p
    cdef double total = 0.0
    cdef float* out = _layer_out(net, w, net.n_bottom + net.n_top - 1)
    for i in prange(B, nogil=True, schedule='static', num_threads=n_threads):
        z = out + <int64_t>i * k
        y = Y + rows[i] * k
        g = dout + <int64_t>i * k
        if loss == LOSS_SQUARED:
            s = 0.0
            for j in range(k):
                g[j] = (z[j] - y[j]) * invB
                s = s + 0.5 * (z[j] - y[j]) * (z[j] - y[j])
            w.row_loss[i] = s
        elif loss == LOSS_LOGISTIC:
            # softplus(z) - y z, computed stably; gradient sigmoid(z) - y
            if z[0] >= 0:
                p = 1.0 / (1.0 + expf(-z[0]))
                w.row_loss[i] = z[0] + log1pf(expf(-z[0])) - y[0] * z[0]
            else:
                p = expf(z[0]) / (1.0 + expf(z[0]))
                w.row_loss[i] = log1pf(expf(z[0])) - y[0] * z[0]
            g[0] = (p - y[0]) * invB
        else:
            m = z[0]
            for j in range(1, k):
                m = max(m, z[j])
            s = 0.0
            for j in range(k):
                s = s + expf(z[j] - m)
            p = 0.0
            for j in range(k):
                g[j] = (expf(z[j] - m) / s - y[j]) * invB
                p = p + y[j] * (z[j] - m)
            w.row_loss[i] = logf(s) - p
    for i in range(B):
        total += w.row_loss[i]
    return total


cdef double _backward(Net* net, Work* w, const float* Y, const int64_t* rows, int B,
                      int loss, float invB, bint fused, float lr, float alpha,
                      int n_threads) noexcept nogil:
    """Loss and backward pass through the top MLP, the interaction and the bottom
    MLP after ``_forward``: the MLP weights are updated in place (``fused`` plain
    SGD) or their gradients written to ``net.grad``; ``w.dZ`` receives the gradients
    of the interaction inputs. Returns the summed loss of the rows."""
    cdef int l, n_in, n_out, ldx, ldy, lddy, nb = net.n_bottom, nt = net.n_top
    cdef const int64_t* L
    cdef const float* inp
    cdef const float* outp
    cdef float* dY
    cdef float* dX
    cdef double total_loss
    dY = w.d0
    total_loss = _loss_grad(net, w, Y, rows, B, loss, invB, dY, n_threads)
    lddy = net.k
    if net.fm:  # the top MLP's backward reuses d0
        for l in range(B):
            w.g_out[l] = dY[<int64_t>l * net.k]
    # top MLP, last layer first
    for l in range(nb + nt - 1, nb - 1, -1):
        L = net.layers + 5 * l
        n_in = <int>L[0]
        n_out = <int>L[1]
        if l > nb:
            inp = _layer_out(net, w, l - 1)
            dX = w.d1 if dY == w.d0 else w.d0
        else:
            inp = w.R
            dX = w.dR
        _backward_layer(net, w, inp, n_in, L, _layer_out(net, w, l), n_out, dY, lddy, dX,
                        n_in, B, fused, lr, alpha, n_threads)
        dY = dX
        lddy = n_in
    _interact(net, w, B, True, n_threads)
    if net.fm:
        _fm(net, w, B, True, n_threads)
    # bottom MLP, from slot 0 of dZ
    if nb > 0:
        dY = w.dZ
        lddy = net.F * net.d
        for l in range(nb - 1, -1, -1):
            L = net.layers + 5 * l
            n_in = <int>L[0]
            outp = _bottom_out(net, w, l, &ldy)
            if l > 0:
                inp = _layer_out(net, w, l - 1)
                ldx = n_in
                dX = w.d1 if dY == w.d0 else w.d0
            else:
                inp = w.Xb
                ldx = net.n_dense
                dX = NULL
            _backward_layer(net, w, inp, ldx, L, outp, ldy, dY, lddy, dX, n_in, B, fused, lr,
                            alpha, n_threads)
            dY = dX
            lddy = n_in
    return total_loss


cdef void _adagrad(Net* net, int64_t n_theta, float lr, float eps, int n_threads) noexcept nogil:
    cdef int64_t q, c, n_chunks = (n_theta + 4095) // 4096
    cdef float g
    if net.bf16:
        for c in prange(n_chunks, nogil=True, schedule='static', num_threads=n_threads):
            q = c * 4096
            sl_adagrad_split(net.theta16 + q, net.theta16 + net.n_theta + q, net.acc + q,
                             net.grad + q, lr, eps, min(<int64_t>4096, n_theta - q))
        return
    for q in prange(n_theta, nogil=True, schedule='static', num_threads=n_threads):
        g = net.grad[q]
        net.acc[q] += g * g
        net.theta[q] -= lr * g / (sqrtf(net.acc[q]) + eps)


cdef double _step(Net* net, Work* w, const float* X, int64_t n_dense_stride,
                  const float* Y, const int64_t* rows, int B, const BagsRef* bags,
                  const index_t* ids, int loss, int optimizer, float lr, float eps,
                  float alpha, float emb_alpha, const float* emb_lr_scales,
                  int n_threads) noexcept nogil:
    """One training step of a batch; returns its mean loss. Table ``t`` takes
    ``lr * emb_lr_scales[t]`` and the L2 term ``emb_alpha``, the MLP ``lr`` and
    ``alpha``."""
    cdef double total_loss
    _forward(net, w, X, n_dense_stride, rows, B, bags, ids, n_threads)
    total_loss = _backward(net, w, Y, rows, B, loss, 1.0 / B, optimizer == OPT_SGD, lr,
                           alpha, n_threads)
    _bags_update(net, w, rows, B, bags.ptr, bags.stride, ids, bags.wts, bags.has_wts,
                 optimizer, lr, emb_lr_scales, eps, emb_alpha, n_threads)
    if optimizer == OPT_ADAGRAD:
        _adagrad(net, net.n_theta, lr, eps, n_threads)
    return total_loss / B


# ---------------------------------------------------------------------------
# Python entry points: the model arrays come from a ``_state.DLRMState`` (or, for a
# rank's shards, an ``EmbeddingTables``), the scratch from a ``Workspace``.
# ---------------------------------------------------------------------------

cdef class Workspace:
    """Scratch the kernels write during a fit or a prediction, kept between calls and
    grown when a call needs more (``reserve``), so that no batch allocates.

    Holds the per-batch blocks (layer outputs, interaction input and output, deltas,
    bf16 copies), the offsets of the layer outputs in them, the MLP gradient (one entry
    per parameter, summed over the ranks by a distributed fit) and, per embedding row,
    the slot of the row while an update reduces its occurrences (-1 between batches).
    Not pickled: an estimator makes a new one when it needs one.
    """
    cdef float[::1] buf
    cdef int64_t[::1] act_off
    cdef int64_t[::1] iota      # 0, 1, 2, ...: the rows of a batch already gathered
    cdef float[::1] grad_
    cdef int32_t[::1] slot_

    def __cinit__(self):
        self.buf = np.empty(0, dtype=np.float32)
        self.act_off = np.zeros(1, dtype=np.int64)
        self.iota = np.arange(0, dtype=np.int64)
        self.grad_ = np.zeros(0, dtype=np.float32)
        self.slot_ = np.zeros(0, dtype=np.int32)

    def reserve(self, state, int batch_size, *, bint train=False, bint slots=False,
                tables=None):
        """Make room for batches of up to ``batch_size`` rows of ``state``'s model.

        ``train`` adds the MLP gradient; ``slots`` the reduction slots of the rows of
        ``tables`` (default ``state.tables``), which Adagrad and L2 updates of the
        embeddings need. Returns the workspace.
        """
        cdef Net net = _net_of(state, self)
        cdef int64_t size = max(_work_size(batch_size, &net), 1)
        cdef int n_layers = net.n_bottom + net.n_top
        if self.buf.shape[0] < size:
            self.buf = np.empty(size, dtype=np.float32)
        if self.act_off.shape[0] < n_layers + 1:
            self.act_off = np.zeros(n_layers + 1, dtype=np.int64)
        if train and self.grad_.shape[0] != net.n_theta:
            self.grad_ = np.zeros(net.n_theta, dtype=np.float32)
        n_rows = (state.tables if tables is None else tables).n_rows
        if slots and self.slot_.shape[0] != n_rows:
            self.slot_ = np.full(n_rows, -1, dtype=np.int32)
        return self

    @property
    def grad(self):
        """The MLP gradient of the last step (a view)."""
        return np.asarray(self.grad_)

    @property
    def slot(self):
        """The reduction slot of every embedding row (a view; all -1 between steps)."""
        return np.asarray(self.slot_)

    cdef const int64_t* _rows(self, int64_t n) except NULL:
        """``0, 1, ..., n - 1`` (at least one entry, so that an empty batch has a
        pointer too)."""
        if self.iota.shape[0] < max(n, 1):
            self.iota = np.arange(max(n, 1), dtype=np.int64)
        return &self.iota[0]


cdef int _bind_tables(Net* net, tables, Workspace ws) except -1:
    """Point ``net`` at the rows of ``tables`` (of ``net``'s precision) and at the
    reduction slots of ``ws``. Const views: a read-only (memory-mapped) model still
    predicts; the training entry points check writeability first."""
    E = tables.E
    cdef const float[:, ::1] E32
    cdef const uint16_t[:, ::1] E16
    cdef const float[::1] E_acc = tables.E_acc
    cdef const int64_t[::1] offsets = tables.offsets
    if net.bf16:
        if E.ndim != 2 or E.dtype != np.uint16 or (E.shape[0] and E.shape[1] != 2 * net.d):
            raise ValueError("a bfloat16 model needs E as an (n_rows, 2 d) uint16 array")
        E16 = E
        net.E16 = <uint16_t*>&E16[0, 0] if E16.shape[0] > 0 else NULL
    else:
        E32 = E
        if E32.shape[1] != net.d:
            raise ValueError("the tables' rows do not have embedding_dim entries")
        net.E = <float*>&E32[0, 0] if E32.shape[0] > 0 else NULL
    net.E_acc = <float*>&E_acc[0] if E_acc.shape[0] > 0 else NULL
    net.slot = &ws.slot_[0] if ws.slot_.shape[0] > 0 else NULL
    net.table_offsets = &offsets[0]
    return 0


cdef Net _net_of(state, Workspace ws) except *:
    """Pointers into the arrays of ``state`` (either precision) and ``ws``."""
    lay = state.layout
    cdef const int64_t[:, ::1] layers = lay.layers
    cdef const float[::1] theta, acc = state.acc
    cdef const uint16_t[::1] theta16
    cdef Net net
    memset(&net, 0, sizeof(Net))
    net.n_dense = lay.n_dense
    net.n_tables = lay.n_tables
    net.d = lay.d
    net.n_bottom = lay.n_bottom
    net.n_top = lay.n_top
    net.zslot0 = 1 if net.n_bottom > 0 else 0
    net.F = net.n_tables + net.zslot0
    net.n_int = lay.n_int
    net.interaction = lay.interaction
    net.fm = lay.fm
    net.k = lay.k
    net.layers = &layers[0, 0]
    net.max_w = lay.max_width
    net.bf16 = state.bf16
    if net.bf16:
        theta16 = state.theta
        if theta16.shape[0] % 2:
            raise ValueError("a bfloat16 model needs theta as [hi | lo] uint16 halves")
        net.n_theta = theta16.shape[0] // 2
        net.theta16 = <uint16_t*>&theta16[0]
    else:
        theta = state.theta
        net.n_theta = theta.shape[0]
        net.theta = <float*>&theta[0]
    net.acc = <float*>&acc[0] if acc.shape[0] > 0 else NULL
    net.grad = &ws.grad_[0] if ws.grad_.shape[0] > 0 else NULL
    _bind_tables(&net, state.tables, ws)
    return net


cdef Net _tables_net(tables, Workspace ws, int d, int n_tables) except *:
    """A Net over embedding tables only (a rank's shards, local row ids, no MLP)."""
    cdef Net net
    memset(&net, 0, sizeof(Net))
    net.d = d
    net.n_tables = n_tables
    net.F = n_tables
    _bind_tables(&net, tables, ws)
    return net


cdef int _bind(Work* w, Workspace ws, Net* net, int B) except -1:
    """Lay out ``ws``'s scratch for a batch of ``B`` rows."""
    if ws.buf.shape[0] < max(_work_size(B, net), 1) or \
            ws.act_off.shape[0] < net.n_bottom + net.n_top + 1:
        raise ValueError("the workspace is too small for the batch (Workspace.reserve)")
    _work(w, &ws.buf[0], B, net, &ws.act_off[0])
    return 0


cdef int _check_training(state, Workspace ws, Net* net, tables, bint needs_slots) except -1:
    """The arrays a training step writes: writeable weights, a gradient buffer, and
    the reduction slots of every row when the update reduces occurrences."""
    arrays = [tables.E, tables.E_acc] if state is None else \
        [state.theta, state.acc, tables.E, tables.E_acc]
    if not all(a.flags.writeable for a in arrays):
        raise ValueError("the model's arrays are read-only")
    if state is not None and ws.grad_.shape[0] != net.n_theta:
        raise ValueError("the workspace has no gradient of this model (reserve(train=True))")
    if needs_slots and net.n_tables > 0 and ws.slot_.shape[0] != tables.n_rows:
        raise ValueError("the workspace has no slot per table row (reserve(slots=True))")
    return 0


def train_epoch(const float[:, ::1] X, const float[:, ::1] Y,
                const int64_t[:, ::1] bag_ptr, const index_t[::1] bag_ids,
                const float[::1] bag_wts, const int64_t[::1] order, int batch_size,
                const float[::1] lrs, state, Workspace work, float eps, float alpha,
                float emb_alpha, const float[::1] emb_lr_scales, int n_threads):
    """Train ``state``'s model on the rows ``order`` in consecutive batches of
    ``batch_size``, with Adagrad's ``eps`` and the L2 penalties ``alpha`` (MLP) and
    ``emb_alpha`` (each looked-up embedding row).

    ``lrs[b]`` is the learning rate of batch ``b`` (of table ``t``: ``emb_lr_scales[t]``
    times it); ``work`` must be reserved for ``batch_size`` rows with ``train=True``
    (and ``slots=True`` for Adagrad or an embedding L2 term).
    Returns the per-batch mean losses (float64 array). All validation of the inputs
    happens in Python before the call.
    """
    cdef Net net = _net_of(state, work)
    cdef int loss = state.loss, optimizer = state.optimizer
    _check_training(state, work, &net, state.tables, optimizer != OPT_SGD or emb_alpha != 0.0)
    cdef int64_t n = order.shape[0], start
    cdef int nb, b, n_batches = (n + batch_size - 1) // batch_size if n else 0
    cdef double[::1] losses = np.zeros(n_batches, dtype=np.float64)
    cdef Work w
    cdef BagsRef bags = _bags_ref(bag_ptr, bag_wts)
    cdef const index_t* ids = &bag_ids[0] if bag_ids.shape[0] > 0 else NULL
    cdef const float* Xp = &X[0, 0] if X.shape[0] > 0 and X.shape[1] > 0 else NULL
    if lrs.shape[0] < n_batches:
        raise ValueError("lrs is shorter than the number of batches")
    if emb_lr_scales.shape[0] != net.n_tables:
        raise ValueError(f"emb_lr_scales has {emb_lr_scales.shape[0]} entries for "
                         f"{net.n_tables} tables")
    cdef const float* scales = &emb_lr_scales[0] if net.n_tables > 0 else NULL
    _bind(&w, work, &net, batch_size)
    with nogil:
        for b in range(n_batches):
            start = <int64_t>b * batch_size
            nb = <int>min(<int64_t>batch_size, n - start)
            losses[b] = _step(&net, &w, Xp, X.shape[1], &Y[0, 0], &order[start], nb, &bags,
                              ids, loss, optimizer, lrs[b], eps, alpha, emb_alpha,
                              scales, n_threads)
            if w.err:
                break
    if w.err:
        raise MemoryError("could not allocate the GEMM packing buffers")
    return np.asarray(losses)


def forward(const float[:, ::1] X, const int64_t[:, ::1] bag_ptr,
            const index_t[::1] bag_ids, const float[::1] bag_wts, int batch_size,
            state, Workspace work, float[:, ::1] out, int n_threads):
    """Outputs (before the link function) of every row of ``state``'s model, written to
    ``out`` (n, k); ``work`` reserved for ``batch_size`` rows."""
    cdef Net net = _net_of(state, work)
    cdef int64_t n = out.shape[0], start
    cdef int nb, b, n_batches = (n + batch_size - 1) // batch_size if n else 0
    # Every block has exactly batch_size rows (the last one padded with copies of the
    # last row), so each row meets the same GEMM shapes whatever n is: a row's
    # output does not depend on which other rows are predicted with it.
    cdef int64_t[::1] rows = np.minimum(np.arange(max(n_batches, 1) * <int64_t>batch_size,
                                                  dtype=np.int64), max(n - 1, 0))
    cdef Work w
    cdef BagsRef bags = _bags_ref(bag_ptr, bag_wts)
    cdef const index_t* ids = &bag_ids[0] if bag_ids.shape[0] > 0 else NULL
    cdef const float* Xp = &X[0, 0] if X.shape[0] > 0 and X.shape[1] > 0 else NULL
    cdef float* last
    cdef int k = net.k
    _bind(&w, work, &net, batch_size)
    w.own_gemm = True
    with nogil:
        for b in range(n_batches):
            start = <int64_t>b * batch_size
            nb = <int>min(<int64_t>batch_size, n - start)
            _forward(&net, &w, Xp, X.shape[1], &rows[start], batch_size, &bags, ids,
                     n_threads)
            last = _layer_out(&net, &w, net.n_bottom + net.n_top - 1)
            memcpy(&out[start, 0], last, <int64_t>nb * k * sizeof(float))
            if w.err:
                break
    if w.err:
        raise MemoryError("could not allocate the GEMM packing buffers")
    return np.asarray(out)


# ---------------------------------------------------------------------------
# The pieces of a distributed (MPI) step: the embedding tables live on their owner
# ranks, so the step is split where the pooled embeddings and their gradients are
# exchanged (see ``_distributed.py``). The MLP gradients are not fused with the
# update: they are summed over the ranks first.
# ---------------------------------------------------------------------------

cdef Net _fp32_net(state, Workspace ws) except *:
    if state.bf16:
        raise ValueError("the distributed (MPI) kernels take float32 models only")
    return _net_of(state, ws)


cdef int _check_pooled(Net* net, const float[:, :, ::1] Z, int64_t B, str name) except -1:
    if Z.shape[0] != B or Z.shape[1] != net.n_tables or Z.shape[2] != net.d:
        raise ValueError(f"{name} is not (batch, n_tables, embedding_dim)")
    return 0


cdef void _copy_pooled(Net* net, float* Z, const float* P, bint to_z, int B,
                       int n_threads) noexcept nogil:
    """Between the table slots of the interaction input ``Z`` (B, F, d) (or of its
    gradient) and the pooled embeddings ``P`` (B, n_tables, d): into ``Z`` with
    ``to_z``, out of it otherwise."""
    cdef int i
    cdef int64_t n = <int64_t>net.n_tables * net.d
    cdef float* z
    cdef float* p
    if net.n_tables == 0:
        return
    for i in prange(B, nogil=True, schedule='static', num_threads=n_threads):
        z = Z + (<int64_t>i * net.F + net.zslot0) * net.d
        p = <float*>P + i * n
        if to_z:
            memcpy(z, p, n * sizeof(float))
        else:
            memcpy(p, z, n * sizeof(float))


def mlp_bottom_forward(const float[:, ::1] X, state, Workspace work, int n_threads):
    """Bottom MLP of every row of ``X`` (a local batch) into ``work`` (reserved for
    ``len(X)`` rows); ``mlp_backward`` or ``mlp_forward_top`` continues from it."""
    cdef Net net = _fp32_net(state, work)
    cdef int B = X.shape[0]
    cdef const float* Xp = &X[0, 0] if X.shape[0] > 0 and X.shape[1] > 0 else NULL
    cdef const int64_t* rows = work._rows(B)
    cdef Work w
    if B == 0:
        return
    _bind(&w, work, &net, B)
    with nogil:
        _bottom_forward(&net, &w, Xp, X.shape[1], rows, B, n_threads)


def mlp_backward(const float[:, :, ::1] Zemb, const float[:, ::1] Y, float invB, float alpha,
                 state, Workspace work, float[:, :, ::1] dZemb, int n_threads):
    """After ``mlp_bottom_forward`` on the same rows: the pooled embeddings ``Zemb``
    (B, n_tables, d) enter the interaction; the top MLP, the loss (its gradient scaled
    by ``invB``) and the backward pass follow. The MLP gradients (with ``alpha``
    times the weights added) are written to ``work.grad``, nothing is updated;
    ``dZemb`` receives the gradients of the pooled embeddings. Returns the summed loss."""
    cdef Net net = _fp32_net(state, work)
    cdef int B = Zemb.shape[0]
    cdef const int64_t* rows = work._rows(B)
    cdef Work w
    cdef double total
    cdef int loss = state.loss
    if work.grad_.shape[0] != net.n_theta:
        raise ValueError("the workspace has no gradient of this model (reserve(train=True))")
    _check_pooled(&net, Zemb, B, "Zemb")
    _check_pooled(&net, dZemb, B, "dZemb")
    if Y.shape[0] != B or Y.shape[1] != net.k:
        raise ValueError("mlp_backward: Y is not (batch, n_outputs)")
    if B == 0:
        work.grad_[:] = 0
        return 0.0
    _bind(&w, work, &net, B)
    with nogil:
        _copy_pooled(&net, w.Z, &Zemb[0, 0, 0], True, B, n_threads)
        _top_forward(&net, &w, B, n_threads)
        total = _backward(&net, &w, &Y[0, 0], rows, B, loss, invB, False, 0.0, alpha,
                          n_threads)
        _copy_pooled(&net, w.dZ, &dZemb[0, 0, 0], False, B, n_threads)
    return total


def mlp_forward_top(const float[:, :, ::1] Zemb, state, Workspace work, float[:, ::1] out,
                    int n_threads):
    """After ``mlp_bottom_forward`` on the same rows: the interaction and the top
    MLP from the pooled embeddings ``Zemb``; the outputs (before the link function)
    are written to ``out`` (B, k)."""
    cdef Net net = _fp32_net(state, work)
    cdef int B = Zemb.shape[0]
    cdef Work w
    _check_pooled(&net, Zemb, B, "Zemb")
    if out.shape[0] != B or out.shape[1] != net.k:
        raise ValueError("mlp_forward_top: out is not (batch, n_outputs)")
    if B == 0:
        return np.asarray(out)
    _bind(&w, work, &net, B)
    with nogil:
        _copy_pooled(&net, w.Z, &Zemb[0, 0, 0], True, B, n_threads)
        _top_forward(&net, &w, B, n_threads)
        memcpy(&out[0, 0], _layer_out(&net, &w, net.n_bottom + net.n_top - 1),
               <int64_t>B * net.k * sizeof(float))
    return np.asarray(out)


def mlp_update(state, Workspace work, float lr, float eps, int n_threads):
    """Apply the (summed) gradient ``work.grad`` to ``state.theta`` with ``state``'s
    solver (SGD, or Adagrad with its accumulator ``state.acc`` and ``eps``)."""
    cdef Net net = _fp32_net(state, work)
    cdef int64_t q, n = net.n_theta
    cdef bint sgd = state.optimizer == OPT_SGD
    _check_training(state, work, &net, state.tables, False)
    if not sgd and state.acc.shape[0] != n:
        raise ValueError("mlp_update: acc does not match theta")
    with nogil:
        if sgd:
            for q in prange(n, schedule='static', num_threads=n_threads):
                net.theta[q] -= lr * net.grad[q]
        else:
            _adagrad(&net, n, lr, eps, n_threads)


cdef int _shard_bags(const int64_t[:, ::1] bag_ptr, const index_t[::1] bag_ids,
                     const float[::1] bag_wts, float[:, :, ::1] P, tables, Workspace work,
                     bint update, int optimizer, float lr, const float* lr_scales,
                     float eps, float alpha, int n_threads) except -1:
    """``bags_pool`` (``P`` receives the pooled bags) or, with ``update``,
    ``bags_update`` (``P`` holds their gradients)."""
    cdef int T = bag_ptr.shape[0]
    cdef int64_t n = P.shape[0]
    if P.shape[1] != T or (T > 0 and bag_ptr.shape[1] != n + 1):
        raise ValueError("the pooled bags do not match bag_ptr")
    if T == 0 or n == 0:
        return 0
    cdef Net net = _tables_net(tables, work, P.shape[2], T)
    if update:
        _check_training(None, work, &net, tables, optimizer != OPT_SGD or alpha != 0.0)
    cdef Work w
    cdef const int64_t* rows = work._rows(n)
    cdef BagsRef bags = _bags_ref(bag_ptr, bag_wts)
    cdef const index_t* ids = &bag_ids[0] if bag_ids.shape[0] > 0 else NULL
    memset(&w, 0, sizeof(Work))
    w.Z = &P[0, 0, 0]
    w.dZ = w.Z
    with nogil:
        if update:
            _bags_update(&net, &w, rows, <int>n, bags.ptr, bags.stride, ids, bags.wts,
                         bags.has_wts, optimizer, lr, lr_scales, eps, alpha, n_threads)
        else:
            _bags_forward(&net, &w, rows, <int>n, bags.ptr, bags.stride, ids, bags.wts,
                          bags.has_wts, n_threads)
    return 0


def bags_pool(const int64_t[:, ::1] bag_ptr, const index_t[::1] bag_ids,
              const float[::1] bag_wts, tables, Workspace work, float[:, :, ::1] out,
              int n_threads):
    """Pooled (weighted-sum) embeddings of every bag: ``out[i, t]`` is the bag of
    sample ``i`` in table ``t`` of ``tables`` (an ``EmbeddingTables``, row ids local
    to it)."""
    _shard_bags(bag_ptr, bag_ids, bag_wts, out, tables, work, False, OPT_SGD, 0.0, NULL, 0.0,
                0.0, n_threads)
    return np.asarray(out)


def bags_update(const int64_t[:, ::1] bag_ptr, const index_t[::1] bag_ids,
                const float[::1] bag_wts, float[:, :, ::1] grad, tables, Workspace work,
                int optimizer, float lr, float eps, float alpha, int n_threads,
                const float[::1] lr_scales=None):
    """Embedding backward fused with the update of ``tables``: ``grad[i, t]`` is the
    gradient of the pooled bag of sample ``i`` in table ``t``; the L2 term ``alpha`` is
    averaged over the ``len(grad)`` samples, as in ``train_epoch``. Table ``t`` learns
    at ``lr * lr_scales[t]`` (``lr`` when ``lr_scales`` is None). ``work`` holds the
    tables' reduction slots for Adagrad or L2."""
    if lr_scales is not None and lr_scales.shape[0] != grad.shape[1]:
        raise ValueError(f"lr_scales has {lr_scales.shape[0]} entries for "
                         f"{grad.shape[1]} tables")
    cdef const float* scales = (&lr_scales[0] if lr_scales is not None and grad.shape[1] > 0
                                else NULL)
    _shard_bags(bag_ptr, bag_ids, bag_wts, grad, tables, work, True, optimizer, lr, scales,
                eps, alpha, n_threads)


cdef inline int64_t _find_run(const int64_t* start, int64_t n_runs, int64_t c,
                              int64_t hint) noexcept nogil:
    """The run holding column ``c``: ``start[r] <= c < start[r + 1]``. Columns of a
    CSR row usually come in increasing order, so the run of the previous non-zero
    (``hint``) or the next one is checked before a binary search."""
    cdef int64_t lo, hi, mid
    if start[hint] <= c:
        if c < start[hint + 1]:
            return hint
        if hint + 2 <= n_runs and c < start[hint + 2]:
            return hint + 1
    lo = 0
    hi = n_runs
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if start[mid] <= c:
            lo = mid
        else:
            hi = mid
    return lo


cdef struct Runs:
    const int64_t* start   # (n + 1,) first column of each run, then the column count
    const int64_t* base    # (n,) stacked table row (or dense column) of its first column
    int64_t n


cdef inline int64_t _place(const Runs* runs, int64_t c, int64_t* r) noexcept nogil:
    """Where column ``c`` goes: its stacked table row, or its dense column when its run
    has no table. ``r`` holds the run of the row's previous column (a hint) and
    receives ``c``'s (the caller's prange assigns it, so each thread has its own)."""
    r[0] = _find_run(runs.start, runs.n, c, r[0])
    return runs.base[r[0]] + c - runs.start[r[0]]


def csr_to_bags(const int64_t[::1] indptr, const index_t[::1] indices, const float[::1] data,
                const int64_t[::1] run_start, const int32_t[::1] run_table,
                const int64_t[::1] run_base, int n_tables, float[:, ::1] dense, ids_dtype,
                int n_threads):
    """Split a CSR matrix into embedding bags and dense features, in parallel over rows.

    The columns are described by runs (see ``_inputs.column_runs``): run ``r`` covers
    columns ``run_start[r]:run_start[r + 1]`` (``run_start`` ends with the column
    count) and maps them to consecutive rows ``run_base[r] + (c - run_start[r])`` of
    the stacked tables when ``run_table[r] >= 0`` (that table's field), or to
    consecutive columns of ``dense`` (zeroed by the caller; duplicate entries are
    summed) otherwise. Returns ``(ptr, ids, wts)``: the bag of table ``t`` and sample
    ``i`` is ``ptr[t, i]:ptr[t, i + 1]``, in the row's column order.
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1, i, t
    cdef int64_t j, pos, r, k, at, n_runs = run_table.shape[0]
    cdef int32_t tb
    cdef Runs runs
    ptr_arr = np.zeros((n_tables, n + 1), dtype=np.int64)
    cdef int64_t[:, ::1] ptr = ptr_arr
    if run_start.shape[0] != n_runs + 1 or run_base.shape[0] != n_runs or n_runs == 0:
        raise ValueError("malformed column runs")
    runs.start, runs.base, runs.n = &run_start[0], &run_base[0], n_runs
    with nogil:
        for i in prange(n, schedule='static', num_threads=n_threads):
            r = 0
            for j in range(indptr[i], indptr[i + 1]):
                at = _place(&runs, indices[j], &r)
                if run_table[r] >= 0:
                    ptr[run_table[r], i + 1] += 1
                else:
                    dense[i, at] += data[j]
        pos = 0
        for t in range(n_tables):
            ptr[t, 0] = pos
            for i in range(n):
                pos += ptr[t, i + 1]
                ptr[t, i + 1] = pos
    total = int(pos)
    ids_arr = np.empty(total, dtype=ids_dtype)
    wts_arr = np.empty(total, dtype=np.float32)
    cursor_arr = ptr_arr[:, :n].copy() if n_tables else np.zeros((0, n), np.int64)
    cdef int64_t[:, ::1] cursor = cursor_arr
    cdef float[::1] wts = wts_arr
    cdef int32_t[::1] ids32
    cdef int64_t[::1] ids64
    cdef bint wide = ids_dtype != np.int32
    if wide:
        ids64 = ids_arr
    else:
        ids32 = ids_arr
    with nogil:
        for i in prange(n, schedule='static', num_threads=n_threads):
            r = 0
            for j in range(indptr[i], indptr[i + 1]):
                at = _place(&runs, indices[j], &r)
                tb = run_table[r]
                if tb < 0:
                    continue
                k = cursor[tb, i]
                if wide:
                    ids64[k] = at
                else:
                    ids32[k] = <int32_t>at
                wts[k] = data[j]
                cursor[tb, i] = k + 1
    return ptr_arr, ids_arr, wts_arr
