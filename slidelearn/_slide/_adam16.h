/* Lazy Adam on one output neuron stored wholly in bfloat16, for
 * SlideClassifier(precision="bfloat16"):
 *
 *   w row (H uint16): the weights     mv row (2 H uint16): [ m (H) | v (H) ]
 *
 * The weights w are read (dot products, rehashing) and updated in bfloat16 alone; the
 * step is computed in float32 and the new w, m and v are stored rounded
 * *stochastically* to bfloat16, so that changes below half a bf16 ulp (a step of
 * lr = 1e-3 on a weight of 0.05 is a fifth of one; v moves by 0.1% a step with
 * beta_2 = 0.999) survive in expectation instead of being rounded away. The random
 * bits come from a counter hash of (seed, element): reproducible, no state shared
 * between threads.
 *
 * One row update moves 6 H bytes in and out, against 12 H bytes of float32 weights
 * and moments: the update is bound by memory traffic, not arithmetic. */
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

/* x rounded to bf16 by adding 16 random bits below the kept ones and truncating;
 * NaN stays NaN. */
static inline uint16_t sl_bf16_stochastic(float x, uint32_t r) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + (r & 0xffffu)) >> 16);
}

static inline float sl_b2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#define SL_ADAM16_BODY                                                       \
    uint16_t *m = mv, *v = mv + n;                                           \
    _Pragma("omp simd")                                                      \
    for (int i = 0; i < n; i++) {                                            \
        float wi = sl_b2f(w[i]);                                             \
        float gi = g[i] + alpha * wi;                                        \
        float mi = b1 * sl_b2f(m[i]) + (1.0f - b1) * gi;                     \
        float vi = b2 * sl_b2f(v[i]) + (1.0f - b2) * gi * gi;                \
        uint32_t r = sl_mix32(seed + (uint32_t)i);                           \
        m[i] = sl_bf16_stochastic(mi, r);                                    \
        v[i] = sl_bf16_stochastic(vi, r >> 16);                              \
        w[i] = sl_bf16_stochastic(wi - lr_t * mi / (sqrtf(vi) + eps),        \
                                    (r * 0x9e3779b1u) >> 16);                \
    }

#define SL_ADAM16_ARGS                                                       \
    (uint16_t *w, uint16_t *mv, const float *g, int n, float lr_t, float b1, float b2, \
     float eps, float alpha, uint32_t seed)

static inline void sl_adam16_row_generic SL_ADAM16_ARGS { SL_ADAM16_BODY }
#if SL_VEC_X86
SL_AVX512 static void sl_adam16_row_avx512 SL_ADAM16_ARGS { SL_ADAM16_BODY }
SL_AVX2 static void sl_adam16_row_avx2 SL_ADAM16_ARGS { SL_ADAM16_BODY }
#endif

static inline void sl_adam16_row SL_ADAM16_ARGS {
#if SL_VEC_X86
    if (sl_vec_level >= 2) { sl_adam16_row_avx512(w, mv, g, n, lr_t, b1, b2, eps, alpha, seed); return; }
    if (sl_vec_level == 1) { sl_adam16_row_avx2(w, mv, g, n, lr_t, b1, b2, eps, alpha, seed); return; }
#endif
    sl_adam16_row_generic(w, mv, g, n, lr_t, b1, b2, eps, alpha, seed);
}
#endif
