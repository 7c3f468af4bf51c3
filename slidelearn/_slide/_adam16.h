/* Lazy Adam on one output neuron of SlideClassifier(precision="bfloat16"), whose
 * float32 weights are kept exactly in two 16-bit halves, in the ROUND convention of
 * ../utils/_bf16_split.h:
 *
 *   w row (H uint16):     hi = the weights rounded to bfloat16 (half up, on the bits)
 *   s row:                [ lo (H) | m (H) | v (H) | pad to 64 B ]
 *
 * lo is the lower half of each float32 weight; hi its upper half plus the carry of
 * rounding, which the join takes back (sl_join_round). The dot products and the
 * rehash read hi alone: a bfloat16 rounded to nearest, in a compact (n_labels, H)
 * array. The update joins the halves, takes the float32 Adam step and splits the
 * result again, as the split-SGD of the CPU-cluster DLRM work does with a truncated
 * upper half. (Weights in bfloat16 alone would lose the steps smaller than their
 * rounding, or with stochastic rounding keep them only in expectation, as noise.)
 * The moments are stored in bfloat16: m rounded to nearest (it moves by
 * 1 - beta_1 = 1/10 of g - m a step, far above bfloat16's relative spacing of 2^-8),
 * v rounded *stochastically*, so that its small per-step changes (1/1000 of g^2 - v
 * with beta_2 = 0.999, below half a bf16 ulp) survive in expectation instead of being
 * rounded away; the 16 random bits per value come from a counter hash of (seed,
 * element): reproducible, no state shared between threads. One sl_mix32 per element:
 * cheaper bits (one mix for two elements, a multiplicative hash) saved little time and
 * measured a higher bfloat16 loss (doc/user_guide/performance.rst). The bias and its
 * moments are float32 arrays of their own (the caller's).
 *
 * One row update moves 8 H bytes in and out, against 12 H bytes of float32 weights
 * and moments, but per element it also joins, splits, rounds two moments and hashes:
 * arithmetic that can cost as much as the memory it saves, hence the hand-written
 * AVX-512 block version (sl_adam16_row_avx512) beside the compiler's vectorisation of
 * the loop. sqrt and the division stay IEEE operations (not the approximate reciprocal
 * instructions), so that every version gives the loop's values bit for bit. */
#ifndef SLIDELEARN_ADAM16_H
#define SLIDELEARN_ADAM16_H
#include <stdint.h>
#include <string.h>
#include <math.h>
#include "../utils/_bfloat16.h"
#include "../utils/_simd.h"

/* x rounded to bf16 by adding r (below 2^16) under the kept bits and truncating: to
 * nearest, half up on the bits, with r = 0x8000; stochastically with 16 random bits.
 * No NaN test, for the moments only: their NaNs come from arithmetic (quiet, with the
 * payload in the upper half: x86's default NaN, or one carried from a bfloat16 value),
 * and adding r below the payload leaves such a NaN, and an inf, as they are. */
static inline uint16_t sl_bf16_add_round(float x, uint32_t r) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)((u + r) >> 16);
}

/* Elements [i0, n) of a row of n. */
#define SL_ADAM16_BODY                                                       \
    uint16_t *lo = s, *m = s + n, *v = s + 2 * n;                            \
    _Pragma("omp simd")                                                      \
    for (int i = i0; i < n; i++) {                                           \
        float wi = sl_join_round(w[i], lo[i]);                               \
        float gi = g[i] + alpha * wi;                                        \
        float mi = b1 * sl_bf16_to_f32(m[i]) + (1.0f - b1) * gi;             \
        float vi = b2 * sl_bf16_to_f32(v[i]) + (1.0f - b2) * gi * gi;        \
        m[i] = sl_bf16_add_round(mi, 0x8000u);                               \
        v[i] = sl_bf16_add_round(vi, sl_mix32(seed + (uint32_t)i) & 0xffffu); \
        wi = wi - lr_t * mi / (sqrtf(vi) + eps);                             \
        sl_split_round(wi, w + i, lo + i);                                   \
    }

static inline void sl_adam16_row_generic(uint16_t *w, uint16_t *s, const float *g, int n,
                                         float lr_t, float b1, float b2, float eps,
                                         float alpha, uint32_t seed, int i0) { SL_ADAM16_BODY }
#if SL_VEC_X86
#include <immintrin.h>
SL_AVX2 static void sl_adam16_row_avx2(uint16_t *w, uint16_t *s, const float *g, int n,
                                       float lr_t, float b1, float b2, float eps,
                                       float alpha, uint32_t seed, int i0) { SL_ADAM16_BODY }
SL_AVX512 static void sl_adam16_tail_avx512(uint16_t *w, uint16_t *s, const float *g, int n,
                                            float lr_t, float b1, float b2, float eps,
                                            float alpha, uint32_t seed, int i0) { SL_ADAM16_BODY }

/* The float32 step of one half (even or odd elements) of a block of 32: the
 * arithmetic of SL_ADAM16_BODY. */
#define SL_ADAM16_STEP(wv, gv, mv, vv)                                              \
    do {                                                                            \
        __m512 gi_ = _mm512_fmadd_ps(A, wv, gv);                                    \
        mv = _mm512_fmadd_ps(B1, mv, _mm512_mul_ps(C1, gi_));                       \
        vv = _mm512_fmadd_ps(B2, vv, _mm512_mul_ps(_mm512_mul_ps(C2, gi_), gi_));   \
        wv = _mm512_sub_ps(wv, _mm512_div_ps(_mm512_mul_ps(LR, mv),                 \
                                             _mm512_add_ps(_mm512_sqrt_ps(vv), E)));  \
    } while (0)

/* sl_mix32 on 16 lanes */
#define SL_MIX32_VEC(x)                                          \
    do {                                                         \
        x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));       \
        x = _mm512_mullo_epi32(x, K1);                           \
        x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));       \
        x = _mm512_mullo_epi32(x, K2);                           \
        x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));       \
    } while (0)

/* The constants of the block step, then the step of the block of 32 at i with its
 * gradient in gE (even elements) and gO (odd ones). */
#define SL_ADAM16_CONSTS \
    uint16_t *lo = s, *m = s + n, *v = s + 2 * n;                                                       \
    const __m512 A = _mm512_set1_ps(alpha), B1 = _mm512_set1_ps(b1), B2 = _mm512_set1_ps(b2);           \
    const __m512 C1 = _mm512_set1_ps(1.0f - b1), C2 = _mm512_set1_ps(1.0f - b2);                        \
    const __m512 LR = _mm512_set1_ps(lr_t), E = _mm512_set1_ps(eps);                                    \
    const __m512i LOW = _mm512_set1_epi32(0xffff), HIGH = _mm512_set1_epi32((int)0xffff0000u);          \
    const __m512i HALF = _mm512_set1_epi32(0x8000);                                                     \
    const __m512i K1 = _mm512_set1_epi32(0x7feb352d), K2 = _mm512_set1_epi32((int)0x846ca68bu);         \
    const __m512i ONE = _mm512_set1_epi32(1);                                                           \
    const __m512i EVEN = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);  \
    const __m512i ODD = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);   \

#define SL_ADAM16_BLOCK \
        __m512i W = _mm512_loadu_si512((const void *)(w + i));                                                           \
        __m512i L = _mm512_loadu_si512((const void *)(lo + i));                                                          \
        __m512i M = _mm512_loadu_si512((const void *)(m + i));                                                           \
        __m512i V = _mm512_loadu_si512((const void *)(v + i));                                                           \
        __m512 wE, wO;                                                                                                   \
        sl_join_round_eo(W, L, &wE, &wO);                                                                                \
        __m512 mE = _mm512_castsi512_ps(_mm512_slli_epi32(M, 16));                                                       \
        __m512 mO = _mm512_castsi512_ps(_mm512_and_si512(M, HIGH));                                                      \
        __m512 vE = _mm512_castsi512_ps(_mm512_slli_epi32(V, 16));                                                       \
        __m512 vO = _mm512_castsi512_ps(_mm512_and_si512(V, HIGH));                                                      \
        SL_ADAM16_STEP(wE, gE, mE, vE);                                                                                  \
        SL_ADAM16_STEP(wO, gO, mO, vO);                                                                                  \
        /* sl_mix32 of seed + element: elements i + 2 lane (xE) and i + 2 lane + 1 (xO) */                               \
        __m512i xE = _mm512_add_epi32(_mm512_set1_epi32((int)(seed + (uint32_t)i)), EVEN);                               \
        __m512i xO = _mm512_add_epi32(xE, ONE);                                                                          \
        SL_MIX32_VEC(xE);                                                                                                \
        SL_MIX32_VEC(xO);                                                                                                \
        /* sl_bf16_add_round: the sums' upper halves, the even ones shifted down */                                      \
        __m512i mrE = _mm512_add_epi32(_mm512_castps_si512(mE), HALF);                                                   \
        __m512i mrO = _mm512_add_epi32(_mm512_castps_si512(mO), HALF);                                                   \
        __m512i vrE = _mm512_add_epi32(_mm512_castps_si512(vE), _mm512_and_si512(xE, LOW));                              \
        __m512i vrO = _mm512_add_epi32(_mm512_castps_si512(vO), _mm512_and_si512(xO, LOW));                              \
        sl_split_round_eo(wE, wO, &W, &L);                                                                               \
        _mm512_storeu_si512((void *)(w + i), W);                                                                         \
        _mm512_storeu_si512((void *)(lo + i), L);                                                                        \
        _mm512_storeu_si512((void *)(m + i), _mm512_or_si512(_mm512_srli_epi32(mrE, 16), _mm512_and_si512(mrO, HIGH)));  \
        _mm512_storeu_si512((void *)(v + i), _mm512_or_si512(_mm512_srli_epi32(vrE, 16), _mm512_and_si512(vrO, HIGH)));  \

/* AVX-512: 32 elements a step, as their even and their odd halves. A 32-bit lane of a
 * vector of 16-bit values holds an even element in its lower half and the next odd one
 * in its upper half, so that widening a bfloat16 is a shift (even) or a mask (odd), and
 * narrowing two float32 vectors back into one of 16-bit values is a shift and a blend,
 * with no lane permutes but the two that split the float32 gradient (fewer
 * instructions than the compiler's version of the loop above, which widens and
 * packs across lanes). The same values as SL_ADAM16_BODY, random bits included; the
 * last n % 32 elements go through that loop. */
SL_AVX512 static void sl_adam16_row_avx512(uint16_t *w, uint16_t *s, const float *g, int n,
                                           float lr_t, float b1, float b2, float eps,
                                           float alpha, uint32_t seed) {
    SL_ADAM16_CONSTS
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 g0 = _mm512_loadu_ps(g + i), g1 = _mm512_loadu_ps(g + i + 16);
        __m512 gE = _mm512_permutex2var_ps(g0, EVEN, g1), gO = _mm512_permutex2var_ps(g0, ODD, g1);
        SL_ADAM16_BLOCK
    }
    if (i < n)
        sl_adam16_tail_avx512(w, s, g, n, lr_t, b1, b2, eps, alpha, seed, i);
}

/* The update of one output neuron from its n_rec records: g = the sum of dz[q] *
 * (row (uint32_t)keys[q] of Hb, ld apart) over them, then sl_adam16_row's step. Hb
 * holds the batch's last hidden activations in bfloat16, so each block of g is summed
 * straight into its even and odd halves from 64-byte loads (a shift and a mask): no
 * float32 row of g to zero, store, load and split. The values of zeroing g, one
 * sl_axpy_bf16 a record and sl_adam16_row, bit for bit (the multiplies and adds are
 * written as sl_axpy_bf16_avx512's, so the compiler fuses them alike; tested); g
 * (n floats) serves the tail of n % 32 elements only. */
SL_AVX512 static void sl_adam16_records_avx512(uint16_t *w, uint16_t *s, const float *dz,
                                               const uint64_t *keys, int64_t n_rec,
                                               const uint16_t *Hb, int64_t ld, float *g,
                                               int n, float lr_t, float b1, float b2,
                                               float eps, float alpha, uint32_t seed) {
    SL_ADAM16_CONSTS
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 gE = _mm512_setzero_ps(), gO = _mm512_setzero_ps();
        for (int64_t q = 0; q < n_rec; q++) {
            __m512i u = _mm512_loadu_si512((const void *)(Hb + (int64_t)(uint32_t)keys[q] * ld + i));
            __m512 d = _mm512_set1_ps(dz[q]);
            gE = _mm512_add_ps(gE, _mm512_mul_ps(d, _mm512_castsi512_ps(_mm512_slli_epi32(u, 16))));
            gO = _mm512_add_ps(gO, _mm512_mul_ps(d, _mm512_castsi512_ps(_mm512_and_si512(u, HIGH))));
        }
        SL_ADAM16_BLOCK
    }
    if (i < n) {
        memset(g + i, 0, (size_t)(n - i) * sizeof(float));
        for (int64_t q = 0; q < n_rec; q++)
            sl_axpy_bf16_avx512(dz[q], Hb + (int64_t)(uint32_t)keys[q] * ld + i, g + i, n - i);
        sl_adam16_tail_avx512(w, s, g, n, lr_t, b1, b2, eps, alpha, seed, i);
    }
}
#undef SL_ADAM16_STEP
#undef SL_MIX32_VEC
#undef SL_ADAM16_CONSTS
#undef SL_ADAM16_BLOCK
#endif

static inline void sl_adam16_row(uint16_t *w, uint16_t *s, const float *g, int n, float lr_t,
                                 float b1, float b2, float eps, float alpha, uint32_t seed) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_adam16_row_avx512(w, s, g, n, lr_t, b1, b2, eps, alpha, seed); return; }
    if (sl_vec_level == 1) { sl_adam16_row_avx2(w, s, g, n, lr_t, b1, b2, eps, alpha, seed, 0); return; }
#endif
    sl_adam16_row_generic(w, s, g, n, lr_t, b1, b2, eps, alpha, seed, 0);
}

/* The update of one output neuron from its records (see sl_adam16_records_avx512);
 * below AVX-512: zero g, add the records one axpy each, sl_adam16_row. */
static inline void sl_adam16_records(uint16_t *w, uint16_t *s, const float *dz,
                                     const uint64_t *keys, int64_t n_rec, const uint16_t *Hb,
                                     int64_t ld, float *g, int n, float lr_t, float b1,
                                     float b2, float eps, float alpha, uint32_t seed) {
#if SL_VEC_X86
    if (sl_vec_level >= 2 && sl_bf16_level >= SL_LEVEL_AVX512) {
        sl_adam16_records_avx512(w, s, dz, keys, n_rec, Hb, ld, g, n, lr_t, b1, b2, eps,
                                 alpha, seed);
        return;
    }
#endif
    memset(g, 0, (size_t)n * sizeof(float));
    for (int64_t q = 0; q < n_rec; q++)
        sl_axpy_bf16(dz[q], Hb + (int64_t)(uint32_t)keys[q] * ld, g, n);
    sl_adam16_row(w, s, g, n, lr_t, b1, b2, eps, alpha, seed);
}

/* The same update through the loop SL_ADAM16_BODY alone, compiled for the level in use
 * (at AVX-512, the loop sl_adam16_row_avx512 leaves the tail to): for the test that
 * the block version gives its values bit for bit. */
static inline void sl_adam16_row_loop(uint16_t *w, uint16_t *s, const float *g, int n,
                                      float lr_t, float b1, float b2, float eps, float alpha,
                                      uint32_t seed) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_adam16_tail_avx512(w, s, g, n, lr_t, b1, b2, eps, alpha, seed, 0); return; }
#endif
    sl_adam16_row(w, s, g, n, lr_t, b1, b2, eps, alpha, seed);
}

#endif
