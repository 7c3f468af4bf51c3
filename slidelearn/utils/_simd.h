/* Small vector helpers shared by the SLIDE and DLRM kernels. The reductions carry an
 * OpenMP SIMD pragma (honoured with -fopenmp or -fopenmp-simd, ignored otherwise) so
 * that the compiler may reorder the sum into vector lanes without -ffast-math.
 *
 * The hot ones (dot, axpy, the Adam row) also have an AVX-512 version, compiled from
 * the same loop with a per-function target attribute (one build, no -march) and chosen
 * at run time through sl_vec_level, which the including module sets at import from
 * slidelearn.utils._cpu (0 = the portable build, SSE2 on x86-64; 1 = AVX2 + FMA;
 * 2 = AVX-512). The default, 0, keeps modules that never set it on the portable code. */
#ifndef SLIDELEARN_SIMD_H
#define SLIDELEARN_SIMD_H
#include <math.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#define SL_VEC_X86 1
#define SL_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma")))
#define SL_AVX2 __attribute__((target("avx2,fma")))
#else
#define SL_VEC_X86 0
#endif

/* A 32-bit integer hash (a bijection, every input bit reaching every output bit):
 * random bits from a key and a position, with no generator state to carry. */
static inline uint32_t sl_mix32(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352dU;
    x ^= x >> 15; x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static int sl_vec_level = 0;
static inline void sl_vec_set_level(int level) { sl_vec_level = level; }
static inline int sl_vec_get_level(void) { return sl_vec_level; }

#define SL_DOT_BODY                                              \
    float s = 0.0f;                                              \
    _Pragma("omp simd reduction(+:s)")                           \
    for (int i = 0; i < n; i++) s += a[i] * b[i];                \
    return s;
#define SL_AXPY_BODY                                             \
    _Pragma("omp simd")                                          \
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
/* Adam on one contiguous row; also applies L2 decay and clears the gradient. */
#define SL_ADAM_BODY                                             \
    _Pragma("omp simd")                                          \
    for (int i = 0; i < n; i++) {                                \
        float gi = g[i] + alpha * w[i];                          \
        float mi = b1 * m[i] + (1.0f - b1) * gi;                 \
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;            \
        m[i] = mi;                                               \
        v[i] = vi;                                               \
        w[i] -= lr_t * mi / (sqrtf(vi) + eps);                   \
        g[i] = 0.0f;                                             \
    }

/* Inverted dropout of h[0:n], in place: 0 where the hash of (key, i) is below thr
 * (dropout * 2^32), h[i] * scale elsewhere. One hash an element and no state, so the
 * loop vectorises, where a sequential generator draws one number at a time. */
#define SL_DROPOUT_BODY                                          \
    _Pragma("omp simd")                                          \
    for (int i = 0; i < n; i++) {                                \
        uint32_t u = sl_mix32(key + (uint32_t)i * 0x9E3779B9U);  \
        h[i] = u < thr ? 0.0f : h[i] * scale;                    \
    }

/* The smallest and largest of x[0:n], n >= 1 (a NaN may be passed over). */
#define SL_MINMAX_BODY                                           \
    float mn = x[0], mx = x[0];                                  \
    _Pragma("omp simd reduction(min:mn) reduction(max:mx)")      \
    for (int i = 1; i < n; i++) {                                \
        mn = x[i] < mn ? x[i] : mn;                              \
        mx = x[i] > mx ? x[i] : mx;                              \
    }                                                            \
    *lo = mn;                                                    \
    *hi = mx;
/* out[i] = the bin of x[i] among equal bins 0 .. top from lo, scale bins a unit;
 * clamped as floats first (NaN to 0), so that the conversion is always defined. */
#define SL_BINS_BODY                                             \
    const float ftop = (float)top;                               \
    _Pragma("omp simd")                                          \
    for (int i = 0; i < n; i++) {                                \
        float v = (x[i] - lo) * scale;                           \
        v = v > 0.0f ? v : 0.0f;                                 \
        v = v < ftop ? v : ftop;                                 \
        out[i] = (uint16_t)(int)v;                               \
    }

/* exp(x) for x <= 0 in arithmetic a loop vectorises (glibc's expf is a call per element):
 * Cephes' polynomial on |r| <= ln 2 / 2 times 2^n in the exponent bits. Exactly 0 below the
 * normal floats (and for -inf, a masked logit); n is clamped so no conversion overflows. */
static inline float sl_expf_nonpos(float x) {
    float t = x * 1.44269504088896341f;
    t = t > -126.0f ? t : -126.0f;
    t = t < 127.0f ? t : 127.0f;
    const float n = (t + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * (r * r) + r + 1.0f;
    union { int32_t i; float f; } scale;
    scale.i = ((int32_t)n + 127) << 23;
    return x < -87.33654475f ? 0.0f : y * scale.f;
}
/* x[i] = exp(x[i] - m) in place for m >= every x[i] (a row's largest logit); returns
 * their sum (in vector lanes: the order of the additions depends on the level). */
#define SL_EXP_SHIFT_SUM_BODY                                    \
    float s = 0.0f;                                              \
    _Pragma("omp simd reduction(+:s)")                           \
    for (int i = 0; i < n; i++) {                                \
        const float e = sl_expf_nonpos(x[i] - m);                \
        x[i] = e;                                                \
        s += e;                                                  \
    }                                                            \
    return s;

static inline float sl_dot_generic(const float *a, const float *b, int n) { SL_DOT_BODY }
static inline void sl_axpy_generic(float alpha, const float *x, float *y, int n) { SL_AXPY_BODY }
static inline void sl_adam_row_generic(float *w, float *m, float *v, float *g, int n,
                                       float lr_t, float b1, float b2, float eps,
                                       float alpha) { SL_ADAM_BODY }
#if SL_VEC_X86
SL_AVX512 static float sl_dot_avx512(const float *a, const float *b, int n) { SL_DOT_BODY }
SL_AVX512 static void sl_axpy_avx512(float alpha, const float *x, float *y, int n) { SL_AXPY_BODY }
SL_AVX512 static void sl_adam_row_avx512(float *w, float *m, float *v, float *g, int n,
                                         float lr_t, float b1, float b2, float eps,
                                         float alpha) { SL_ADAM_BODY }
SL_AVX512 static void sl_dropout_avx512(float *h, int n, uint32_t key, uint32_t thr,
                                       float scale) { SL_DROPOUT_BODY }
SL_AVX512 static void sl_minmax_avx512(const float *x, int n, float *lo, float *hi) {
    SL_MINMAX_BODY
}
SL_AVX512 static void sl_bins_avx512(const float *x, int n, float lo, float scale, int top,
                                     uint16_t *out) { SL_BINS_BODY }
SL_AVX512 static float sl_exp_shift_sum_avx512(float *x, int n, float m) {
    SL_EXP_SHIFT_SUM_BODY
}
SL_AVX2 static float sl_exp_shift_sum_avx2(float *x, int n, float m) {
    SL_EXP_SHIFT_SUM_BODY
}
SL_AVX2 static float sl_dot_avx2(const float *a, const float *b, int n) { SL_DOT_BODY }
SL_AVX2 static void sl_axpy_avx2(float alpha, const float *x, float *y, int n) { SL_AXPY_BODY }
SL_AVX2 static void sl_adam_row_avx2(float *w, float *m, float *v, float *g, int n,
                                     float lr_t, float b1, float b2, float eps,
                                     float alpha) { SL_ADAM_BODY }
#endif

static inline float sl_dot(const float *a, const float *b, int n) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) return sl_dot_avx512(a, b, n);
    if (sl_vec_level == 1) return sl_dot_avx2(a, b, n);
#endif
    return sl_dot_generic(a, b, n);
}

static inline float sl_exp_shift_sum(float *x, int n, float m) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) return sl_exp_shift_sum_avx512(x, n, m);
    if (sl_vec_level == 1) return sl_exp_shift_sum_avx2(x, n, m);
#endif
    SL_EXP_SHIFT_SUM_BODY
}

static inline void sl_minmax(const float *x, int n, float *lo, float *hi) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_minmax_avx512(x, n, lo, hi); return; }
#endif
    SL_MINMAX_BODY
}

/* top < 65536 */
static inline void sl_bins(const float *x, int n, float lo, float scale, int top,
                           uint16_t *out) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_bins_avx512(x, n, lo, scale, top, out); return; }
#endif
    SL_BINS_BODY
}

static inline void sl_dropout(float *h, int n, uint32_t key, uint32_t thr, float scale) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_dropout_avx512(h, n, key, thr, scale); return; }
#endif
    SL_DROPOUT_BODY
}

/* y += alpha * x */
static inline void sl_axpy(float alpha, const float *x, float *y, int n) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_axpy_avx512(alpha, x, y, n); return; }
    if (sl_vec_level == 1) { sl_axpy_avx2(alpha, x, y, n); return; }
#endif
    sl_axpy_generic(alpha, x, y, n);
}

/* y = the sum over a = 0 .. n_rows - 1 of alpha[a] * (row ids[a] of x, rows ld apart),
 * added in that order from +0 (sl_sum_rows), or from y's own values (sl_add_rows,
 * sl_add_rows64: y += the sum): what zeroing y (or not) and n_rows calls of sl_axpy give
 * (fused multiply-adds, as the compiler makes of SL_AXPY_BODY at this level), but
 * with a block of 128 columns of y in 8 registers across all the rows instead of
 * loaded and stored once a row. */
#if SL_VEC_X86
#include <immintrin.h>
/* Columns [c, c + 16 nb) of the sum; nb and add are constants where it is inlined, so
 * that the nb sums stay in registers. pf > 0: prefetch the first pf floats of the row
 * 8 rows ahead (the first block's pass, over rows met in random order). */
#define SL_ROWS_BLOCK(NAME, IDT)                                                        \
SL_AVX512 __attribute__((always_inline))                                                \
static inline void NAME(const float *alpha, const IDT *ids, int64_t n_rows,             \
                        const float *x, int64_t ld, float *y, int c, const int nb,      \
                        const int add, int pf) {                                        \
    __m512 acc[8];                                                                      \
    for (int b = 0; b < nb; b++)                                                        \
        acc[b] = add ? _mm512_loadu_ps(y + c + 16 * b) : _mm512_setzero_ps();           \
    for (int64_t a = 0; a < n_rows; a++) {                                              \
        const float *p = x + (int64_t)ids[a] * ld + c;                                  \
        if (pf > 0 && a + 8 < n_rows) {                                                 \
            const float *q = x + (int64_t)ids[a + 8] * ld;                              \
            for (int i = 0; i < pf; i += 16) __builtin_prefetch(q + i, 0, 3);           \
        }                                                                               \
        const __m512 va = _mm512_set1_ps(alpha[a]);                                     \
        for (int b = 0; b < nb; b++)                                                    \
            acc[b] = _mm512_fmadd_ps(va, _mm512_loadu_ps(p + 16 * b), acc[b]);          \
    }                                                                                   \
    for (int b = 0; b < nb; b++) _mm512_storeu_ps(y + c + 16 * b, acc[b]);              \
}

#define SL_ROWS_AVX512(NAME, BLOCK, IDT, ADD)                                           \
SL_AVX512 static void NAME(const float *alpha, const IDT *ids, int64_t n_rows,          \
                           const float *x, int64_t ld, float *y, int n, int pf) {       \
    int c = 0;                                                                          \
    for (; c + 128 <= n; c += 128) BLOCK(alpha, ids, n_rows, x, ld, y, c, 8, ADD,       \
                                         c == 0 ? pf : 0);                              \
    for (; c + 16 <= n; c += 16) BLOCK(alpha, ids, n_rows, x, ld, y, c, 1, ADD,         \
                                       c == 0 ? pf : 0);                                \
    if (c < n) {                                                                        \
        if (!(ADD)) for (int i = c; i < n; i++) y[i] = 0.0f;                            \
        for (int64_t a = 0; a < n_rows; a++)                                            \
            sl_axpy_avx512(alpha[a], x + (int64_t)ids[a] * ld + c, y + c, n - c);       \
    }                                                                                   \
}

SL_ROWS_BLOCK(sl_rows_block32, int32_t)
SL_ROWS_BLOCK(sl_rows_block64, int64_t)
SL_ROWS_AVX512(sl_sum_rows_avx512, sl_rows_block32, int32_t, 0)
SL_ROWS_AVX512(sl_add_rows_avx512, sl_rows_block32, int32_t, 1)
SL_ROWS_AVX512(sl_add_rows64_avx512, sl_rows_block64, int64_t, 1)
#endif

static inline void sl_sum_rows(const float *alpha, const int32_t *ids, int64_t n_rows,
                               const float *x, int64_t ld, float *y, int n) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_sum_rows_avx512(alpha, ids, n_rows, x, ld, y, n, 0); return; }
#endif
    for (int i = 0; i < n; i++) y[i] = 0.0f;
    for (int64_t a = 0; a < n_rows; a++) sl_axpy(alpha[a], x + (int64_t)ids[a] * ld, y, n);
}

/* pf: as in SL_ROWS_BLOCK (the AVX-512 kernel only) */
static inline void sl_add_rows(const float *alpha, const int32_t *ids, int64_t n_rows,
                               const float *x, int64_t ld, float *y, int n, int pf) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_add_rows_avx512(alpha, ids, n_rows, x, ld, y, n, pf); return; }
#endif
    for (int64_t a = 0; a < n_rows; a++) sl_axpy(alpha[a], x + (int64_t)ids[a] * ld, y, n);
}

static inline void sl_add_rows64(const float *alpha, const int64_t *ids, int64_t n_rows,
                                 const float *x, int64_t ld, float *y, int n, int pf) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_add_rows64_avx512(alpha, ids, n_rows, x, ld, y, n, pf); return; }
#endif
    for (int64_t a = 0; a < n_rows; a++) sl_axpy(alpha[a], x + ids[a] * ld, y, n);
}

static inline void sl_adam_row(float *w, float *m, float *v, float *g, int n,
                               float lr_t, float b1, float b2, float eps, float alpha) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_adam_row_avx512(w, m, v, g, n, lr_t, b1, b2, eps, alpha); return; }
    if (sl_vec_level == 1) { sl_adam_row_avx2(w, m, v, g, n, lr_t, b1, b2, eps, alpha); return; }
#endif
    sl_adam_row_generic(w, m, v, g, n, lr_t, b1, b2, eps, alpha);
}

/* Software prefetch of a whole row of n floats (one hint per 64-byte line); rows
 * visited in random order (output neurons, embedding rows) defeat the hardware
 * prefetcher, which leaves most of their cache misses exposed. */
#if defined(__GNUC__) || defined(__clang__)
#define SL_PREFETCH(p, rw) __builtin_prefetch((p), (rw), 3)
#else
#define SL_PREFETCH(p, rw) ((void)0)
#endif
static inline void sl_prefetch_row(const float *p, int n) {
    for (int i = 0; i < n; i += 16) SL_PREFETCH(p + i, 0);
}
static inline void sl_prefetchw_row(float *p, int n) {
    for (int i = 0; i < n; i += 16) SL_PREFETCH(p + i, 1);
}

/* Backward of ReLU: dy[i] = 0 where the layer's output y[i] is not positive. Written
 * as a select so that it compiles to a vector blend instead of a branch per element
 * (about half of the outputs are zero, in no predictable pattern). */
static inline void sl_relu_mask(float *restrict dy, const float *restrict y, int n) {
    #pragma omp simd
    for (int i = 0; i < n; i++) dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* y = max(y + b, 0) (relu) or y + b */
static inline void sl_bias_act(float *restrict y, const float *restrict b, int n, int relu) {
    if (relu) {
        #pragma omp simd
        for (int i = 0; i < n; i++) { float v = y[i] + b[i]; y[i] = v > 0.0f ? v : 0.0f; }
    } else {
        #pragma omp simd
        for (int i = 0; i < n; i++) y[i] += b[i];
    }
}

/* y += x */
static inline void sl_add(float *restrict y, const float *restrict x, int n) {
    #pragma omp simd
    for (int i = 0; i < n; i++) y[i] += x[i];
}
#endif
