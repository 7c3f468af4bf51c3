/* bfloat16 conversions, split-SGD and a bf16 dot product, with runtime CPU dispatch.
 *
 * A bfloat16 is the upper 16 bits of an IEEE float32. Conversion rounds to nearest,
 * ties to even, on the integer representation, so denormals round like any other
 * value; NaN stays NaN (quieted, sign kept) and never rounds to infinity; values
 * beyond the largest bf16 round to infinity as IEEE rounding says.
 *
 * Split-SGD (the CPU-cluster DLRM paper): an fp32 weight is stored as its upper half
 * `hi` (a bf16, TRUNCATED, not rounded: what forward passes read) and its lower half
 * `lo` (the TRUNC convention of _bf16_split.h); the update joins them back into the
 * exact fp32, applies w -= lr * g in fp32 and splits again, so training reproduces
 * fp32 SGD bit for bit at 4 bytes a weight.
 *
 * Dispatch: the level is chosen once (sl_bf16_set_level) among
 *   0 generic (portable C), 1 avx512 (AVX-512F/BW integer ops, same bits as generic),
 *   2 avx512_bf16 (also vdpbf16ps for dot products).
 * The AVX-512 code is compiled with per-function target attributes: one build runs on
 * any x86-64 CPU and uses the wide code only where the CPU has it.
 */
#ifndef SLIDELEARN_BFLOAT16_H
#define SLIDELEARN_BFLOAT16_H

#include <stdint.h>
#include <string.h>

#include "_bf16_split.h"  /* the halves, sl_bf16_to_f32 and SL_HAVE_X86_DISPATCH */

/* w - lr * g must round twice, as fp32 SGD elsewhere does: no fused multiply-add. */
#if defined(__GNUC__) && !defined(__clang__)
#define SL_NO_FMA __attribute__((optimize("fp-contract=off")))
#else
#define SL_NO_FMA
#endif

enum { SL_LEVEL_GENERIC = 0, SL_LEVEL_AVX512 = 1, SL_LEVEL_AVX512_BF16 = 2 };

static int sl_bf16_level = SL_LEVEL_GENERIC;

/* Highest level this CPU and this build support. */
static inline int sl_bf16_max_level(void) {
#if SL_HAVE_X86_DISPATCH
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")))
        return SL_LEVEL_GENERIC;
    if (__builtin_cpu_supports("avx512bf16"))
        return SL_LEVEL_AVX512_BF16;
    return SL_LEVEL_AVX512;
#else
    return SL_LEVEL_GENERIC;
#endif
}

static inline void sl_bf16_set_level(int level) { sl_bf16_level = level; }
static inline int sl_bf16_get_level(void) { return sl_bf16_level; }

/* ---------------------------------------------------------------- scalar */
static inline uint16_t sl_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)          /* NaN: quiet it, keep the sign */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);              /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

SL_NO_FMA static inline void sl_sgd_split_scalar(uint16_t *hi, uint16_t *lo, const float *g,
                                       float lr, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float w = sl_join_trunc(hi[i], lo[i]);
        w -= lr * g[i];
        sl_split_trunc(w, hi + i, lo + i);
    }
}

/* ---------------------------------------------------------------- AVX-512 */
#if SL_HAVE_X86_DISPATCH
__attribute__((target("avx512f,avx512bw")))
static void sl_to_bf16_avx512(const float *x, uint16_t *out, int64_t n) {
    const __m512i exp_mask = _mm512_set1_epi32(0x7fffffff);
    const __m512i inf = _mm512_set1_epi32(0x7f800000);
    const __m512i bias = _mm512_set1_epi32(0x7fff);
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i quiet = _mm512_set1_epi32(0x00400000);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_loadu_si512((const void *)(x + i));
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, exp_mask), inf);
        __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(bias, lsb));
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, quiet));
        _mm256_storeu_si256((__m256i *)(out + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
    }
    for (; i < n; i++)
        out[i] = sl_f32_to_bf16(x[i]);
}

__attribute__((target("avx512f,avx512bw")))
static void sl_from_bf16_avx512(const uint16_t *h, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + i)));
        _mm512_storeu_si512((void *)(out + i), _mm512_slli_epi32(u, 16));
    }
    for (; i < n; i++)
        out[i] = sl_bf16_to_f32(h[i]);
}

SL_NO_FMA __attribute__((target("avx512f,avx512bw")))
static void sl_sgd_split_avx512(uint16_t *hi, uint16_t *lo, const float *g, float lr,
                                int64_t n) {
    const __m512 vlr = _mm512_set1_ps(lr);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 w = sl_join_trunc_x16(hi + i, lo + i);
        /* w - lr * g, rounded once per operation as the scalar code (no FMA) */
        w = _mm512_sub_ps(w, _mm512_mul_ps(vlr, _mm512_loadu_ps(g + i)));
        sl_split_trunc_x16(w, hi + i, lo + i);
    }
    sl_sgd_split_scalar(hi + i, lo + i, g + i, lr, n - i);
}

__attribute__((target("avx512f,avx512bw,avx512bf16")))
static float sl_dot_bf16_avx512bf16(const uint16_t *a, const uint16_t *b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh va = (__m512bh)_mm512_loadu_si512((const void *)(a + i));
        __m512bh vb = (__m512bh)_mm512_loadu_si512((const void *)(b + i));
        acc = _mm512_dpbf16_ps(acc, va, vb);
    }
    float s = _mm512_reduce_add_ps(acc);
    for (; i < n; i++)
        s += sl_bf16_to_f32(a[i]) * sl_bf16_to_f32(b[i]);
    return s;
}
#endif

/* ---------------------------------------------------------------- dispatch */
static inline void sl_to_bf16(const float *x, uint16_t *out, int64_t n) {
#if SL_HAVE_X86_DISPATCH
    if (sl_bf16_level >= SL_LEVEL_AVX512) { sl_to_bf16_avx512(x, out, n); return; }
#endif
    for (int64_t i = 0; i < n; i++)
        out[i] = sl_f32_to_bf16(x[i]);
}

static inline void sl_from_bf16(const uint16_t *h, float *out, int64_t n) {
#if SL_HAVE_X86_DISPATCH
    if (sl_bf16_level >= SL_LEVEL_AVX512) { sl_from_bf16_avx512(h, out, n); return; }
#endif
    for (int64_t i = 0; i < n; i++)
        out[i] = sl_bf16_to_f32(h[i]);
}

static inline void sl_sgd_split(uint16_t *hi, uint16_t *lo, const float *g, float lr,
                                int64_t n) {
#if SL_HAVE_X86_DISPATCH
    if (sl_bf16_level >= SL_LEVEL_AVX512) { sl_sgd_split_avx512(hi, lo, g, lr, n); return; }
#endif
    sl_sgd_split_scalar(hi, lo, g, lr, n);
}

/* y += alpha * x for a bf16 vector x and an fp32 vector y (x widened exactly) */
#if SL_HAVE_X86_DISPATCH
__attribute__((target("avx512f,avx512bw")))
static void sl_axpy_bf16_avx512(float alpha, const uint16_t *x, float *y, int64_t n) {
    const __m512 a = _mm512_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + i)));
        __m512 xv = _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_mul_ps(a, xv)));
    }
    for (; i < n; i++)
        y[i] += alpha * sl_bf16_to_f32(x[i]);
}
#endif

/* y = the sum over a = 0 .. n_rows - 1 of alpha[a] * (row ids[a] of x: bf16, ld
 * apart), added in that order from +0: element for element what zeroing y and n_rows
 * calls of sl_axpy_bf16 give, but with a block of 128 columns of y in 8 registers
 * across all the rows instead of a load and a store a row. A 64-byte load holds 32 bf16
 * values; as 16 32-bit lanes, lane i is elements 2i (low half) and 2i + 1 (high half),
 * so a shift and a mask widen them into an even and an odd vector of float32; the
 * sums are joined back into order once, at the store. (Each multiply and add is
 * written as sl_axpy_bf16_avx512 writes it, in the same file and with the same flags,
 * so the compiler fuses them alike; the tests compare the two bit for bit.) */
#if SL_HAVE_X86_DISPATCH
/* Columns [c, c + 32 nb) of the sum; nb is a constant where it is inlined, so that the
 * 2 nb sums stay in registers. */
__attribute__((target("avx512f,avx512bw"), always_inline))
static inline void sl_sum_rows_bf16_block(const float *alpha, const int32_t *ids,
                                          int64_t n_rows, const uint16_t *x, int64_t ld,
                                          float *y, int64_t c, const int nb) {
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    const __m512i join_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19,
                                              4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i join_hi = _mm512_add_epi32(join_lo, _mm512_set1_epi32(8));
    __m512 e[4], o[4];
    for (int b = 0; b < nb; b++) e[b] = o[b] = _mm512_setzero_ps();
    for (int64_t a = 0; a < n_rows; a++) {
        const uint16_t *p = x + (int64_t)ids[a] * ld + c;
        const __m512 va = _mm512_set1_ps(alpha[a]);
        for (int b = 0; b < nb; b++) {
            __m512i u = _mm512_loadu_si512((const void *)(p + 32 * b));
            e[b] = _mm512_add_ps(e[b], _mm512_mul_ps(
                       va, _mm512_castsi512_ps(_mm512_slli_epi32(u, 16))));
            o[b] = _mm512_add_ps(o[b], _mm512_mul_ps(
                       va, _mm512_castsi512_ps(_mm512_and_si512(u, hi_mask))));
        }
    }
    for (int b = 0; b < nb; b++) {
        _mm512_storeu_ps(y + c + 32 * b, _mm512_permutex2var_ps(e[b], join_lo, o[b]));
        _mm512_storeu_ps(y + c + 32 * b + 16, _mm512_permutex2var_ps(e[b], join_hi, o[b]));
    }
}

__attribute__((target("avx512f,avx512bw")))
static void sl_sum_rows_bf16_avx512(const float *alpha, const int32_t *ids, int64_t n_rows,
                                    const uint16_t *x, int64_t ld, float *y, int64_t n) {
    int64_t c = 0;
    for (; c + 128 <= n; c += 128)
        sl_sum_rows_bf16_block(alpha, ids, n_rows, x, ld, y, c, 4);
    for (; c + 32 <= n; c += 32)
        sl_sum_rows_bf16_block(alpha, ids, n_rows, x, ld, y, c, 1);
    if (c < n) {
        memset(y + c, 0, (size_t)(n - c) * sizeof(float));
        for (int64_t a = 0; a < n_rows; a++)
            sl_axpy_bf16_avx512(alpha[a], x + (int64_t)ids[a] * ld + c, y + c, n - c);
    }
}
#endif

#if SL_HAVE_X86_DISPATCH
/* dot product of two bf16 vectors on AVX-512F without the bf16 instructions */
__attribute__((target("avx512f,avx512bw")))
static float sl_dot_bf16_avx512(const uint16_t *a, const uint16_t *b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i ua = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512i ub = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(b + i)));
        acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(ua, 16)),
                              _mm512_castsi512_ps(_mm512_slli_epi32(ub, 16)), acc);
    }
    float s = _mm512_reduce_add_ps(acc);
    for (; i < n; i++)
        s += sl_bf16_to_f32(a[i]) * sl_bf16_to_f32(b[i]);
    return s;
}
#endif

static inline void sl_axpy_bf16(float alpha, const uint16_t *x, float *y, int64_t n) {
#if SL_HAVE_X86_DISPATCH
    if (sl_bf16_level >= SL_LEVEL_AVX512) { sl_axpy_bf16_avx512(alpha, x, y, n); return; }
#endif
    for (int64_t i = 0; i < n; i++)
        y[i] += alpha * sl_bf16_to_f32(x[i]);
}

static inline void sl_sum_rows_bf16(const float *alpha, const int32_t *ids, int64_t n_rows,
                                    const uint16_t *x, int64_t ld, float *y, int64_t n) {
#if SL_HAVE_X86_DISPATCH
    if (sl_bf16_level >= SL_LEVEL_AVX512) {
        sl_sum_rows_bf16_avx512(alpha, ids, n_rows, x, ld, y, n);
        return;
    }
#endif
    memset(y, 0, (size_t)n * sizeof(float));
    for (int64_t a = 0; a < n_rows; a++)
        sl_axpy_bf16(alpha[a], x + (int64_t)ids[a] * ld, y, n);
}

/* fp32-accumulated dot product of two bf16 vectors */
static inline float sl_dot_bf16(const uint16_t *a, const uint16_t *b, int64_t n) {
#if SL_HAVE_X86_DISPATCH
    if (sl_bf16_level >= SL_LEVEL_AVX512_BF16) return sl_dot_bf16_avx512bf16(a, b, n);
    if (sl_bf16_level >= SL_LEVEL_AVX512) return sl_dot_bf16_avx512(a, b, n);
#endif
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += sl_bf16_to_f32(a[i]) * sl_bf16_to_f32(b[i]);
    return s;
}

#endif
