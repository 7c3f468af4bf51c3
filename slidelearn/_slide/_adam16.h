/* Lazy Adam on one output neuron of SlideClassifier(precision="bfloat16"), whose
 * float32 weights are kept exactly in two 16-bit halves:
 *
 *   w row (H uint16):     hi = the weights rounded to bfloat16 (half up, on the bits)
 *   s row:                [ lo (H) | m (H) | v (H) | pad to 64 B ]
 *
 * lo is the lower half of each float32 weight; hi its upper half plus the carry of
 * rounding, so that the weight is ((hi - (lo >= 0x8000)) << 16 | lo) exactly
 * (sl_join16). The dot products and the rehash read hi alone: a bfloat16 rounded to
 * nearest, in a compact (n_labels, H) array. The update joins the halves, takes the
 * float32 Adam step and splits the result again, as the split-SGD of the CPU-cluster
 * DLRM work does with a truncated upper half. The moments are stored in bfloat16:
 * m rounded to nearest (it moves by 1 - beta_1 = 10% of g - m a step, far above the
 * 0.4% spacing of bfloat16), v rounded *stochastically*, so that its small per-step
 * changes (0.1% with beta_2 = 0.999, below half a bf16 ulp) survive in expectation
 * instead of being rounded away; the 16 random bits per value come from a counter hash
 * of (seed, element): reproducible, no state shared between threads. The bias and
 * its moments are float32 arrays of their own (the caller's).
 *
 * One row update moves 8 H bytes in and out, against 12 H bytes of float32 weights
 * and moments. Still, on Zen 4 a row of 128 costs about as much arithmetic as memory
 * time: from L1, about 50 ns with both moments rounded stochastically and NaN-tested,
 * 38 ns as here, against 25 ns for the float32 update. (One multiplicative hash per
 * element instead of sl_mix32 took 34 ns, but no measurable time off training, and
 * bfloat16's final loss on the Amazon-shaped benchmark rose in 6 of 7 seeds; not
 * kept.) (Stored in bfloat16 alone,
 * with stochastic rounding, the weights trained to a measurably higher loss: 4.92
 * against 4.89 for float32 and 4.90 for these halves, one epoch of 30,000
 * Amazon-shaped samples.) */
#ifndef SLIDELEARN_ADAM16_H
#define SLIDELEARN_ADAM16_H
#include <stdint.h>
#include <string.h>
#include <math.h>
#include "../utils/_bfloat16.h"
#include "_vec.h"

static inline uint32_t sl_mix32(uint32_t x) {
    x ^= x >> 16; x *= 0x7feb352dU;
    x ^= x >> 15; x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

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

static inline float sl_b2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The float32 weight of the halves (hi, lo): exact for every bit pattern. */
static inline float sl_join16(uint16_t hi, uint16_t lo) {
    uint32_t u = ((uint32_t)(uint16_t)(hi - (lo >= 0x8000u)) << 16) | lo;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The upper half of w, rounded half up on the bits (the carry that sl_join16 takes
 * back); a NaN gives a quiet NaN whose join is a NaN. */
static inline uint16_t sl_split16_hi(float w) {
    uint32_t u;
    memcpy(&u, &w, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)0x7fc0u;
    return (uint16_t)((u + 0x8000u) >> 16);
}

static inline uint16_t sl_split16_lo(float w) {
    uint32_t u;
    memcpy(&u, &w, 4);
    return (uint16_t)(u & 0xffffu);
}

#define SL_ADAM16_BODY                                                       \
    uint16_t *lo = s, *m = s + n, *v = s + 2 * n;                            \
    _Pragma("omp simd")                                                      \
    for (int i = 0; i < n; i++) {                                            \
        float wi = sl_join16(w[i], lo[i]);                                   \
        float gi = g[i] + alpha * wi;                                        \
        float mi = b1 * sl_b2f(m[i]) + (1.0f - b1) * gi;                     \
        float vi = b2 * sl_b2f(v[i]) + (1.0f - b2) * gi * gi;                \
        m[i] = sl_bf16_add_round(mi, 0x8000u);                               \
        v[i] = sl_bf16_add_round(vi, sl_mix32(seed + (uint32_t)i) & 0xffffu); \
        wi = wi - lr_t * mi / (sqrtf(vi) + eps);                             \
        w[i] = sl_split16_hi(wi);                                            \
        lo[i] = sl_split16_lo(wi);                                           \
    }

static inline void sl_adam16_row_generic(uint16_t *w, uint16_t *s, const float *g, int n,
                                         float lr_t, float b1, float b2, float eps,
                                         float alpha, uint32_t seed) { SL_ADAM16_BODY }
#if SL_VEC_X86
SL_AVX512 static void sl_adam16_row_avx512(uint16_t *w, uint16_t *s, const float *g, int n,
                                           float lr_t, float b1, float b2, float eps,
                                           float alpha, uint32_t seed) { SL_ADAM16_BODY }
SL_AVX2 static void sl_adam16_row_avx2(uint16_t *w, uint16_t *s, const float *g, int n,
                                       float lr_t, float b1, float b2, float eps,
                                       float alpha, uint32_t seed) { SL_ADAM16_BODY }
#endif

static inline void sl_adam16_row(uint16_t *w, uint16_t *s, const float *g, int n, float lr_t,
                                 float b1, float b2, float eps, float alpha, uint32_t seed) {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_adam16_row_avx512(w, s, g, n, lr_t, b1, b2, eps, alpha, seed); return; }
    if (sl_vec_level == 1) { sl_adam16_row_avx2(w, s, g, n, lr_t, b1, b2, eps, alpha, seed); return; }
#endif
    sl_adam16_row_generic(w, s, g, n, lr_t, b1, b2, eps, alpha, seed);
}

/* out[i] = the float32 weights of the halves (hi[i], lo[i]), and back. */
static inline void sl_join16_row(const uint16_t *hi, const uint16_t *lo, float *out, int64_t n) {
    _Pragma("omp simd")
    for (int64_t i = 0; i < n; i++) out[i] = sl_join16(hi[i], lo[i]);
}

static inline void sl_split16_row(const float *w, uint16_t *hi, uint16_t *lo, int64_t n) {
    _Pragma("omp simd")
    for (int64_t i = 0; i < n; i++) {
        hi[i] = sl_split16_hi(w[i]);
        lo[i] = sl_split16_lo(w[i]);
    }
}
#endif
