/* Split-SGD helpers of the bfloat16 DLRM (precision='bfloat16').
 *
 * A weight w (fp32) is stored as two uint16 halves in the TRUNC convention of
 * ../utils/_bf16_split.h: hi = the upper 16 bits (a bf16, what the forward and backward
 * GEMMs and the embedding sums read) and lo = the lower 16 bits. Every update joins the
 * halves into the exact fp32 weight, applies the same fp32 arithmetic as the float32
 * model (no fused multiply-add, see SL_NO_FMA) and splits the result again: 4 bytes a
 * weight, and the update is exact fp32. The w -= step * g update itself is sl_sgd_split
 * of _bfloat16.h (AVX-512 there); these are the pieces around it.
 */
#ifndef SLIDELEARN_DLRM_SPLIT_H
#define SLIDELEARN_DLRM_SPLIT_H

#include <math.h>
#include <stdint.h>

#include "../utils/_bfloat16.h"

/* g[i] += s * w[i]: the L2 term of the gradient, as the float32 model adds it */
SL_NO_FMA static inline void sl_split_add_scaled(float s, const uint16_t *hi,
                                                 const uint16_t *lo, float *g, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        g[i] += s * sl_join_trunc(hi[i], lo[i]);
}

/* Adagrad on split weights: acc += g^2; w -= lr * g / (sqrt(acc) + eps) */
SL_NO_FMA static inline void sl_adagrad_split(uint16_t *hi, uint16_t *lo, float *acc,
                                              const float *g, float lr, float eps,
                                              int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float w = sl_join_trunc(hi[i], lo[i]);
        acc[i] += g[i] * g[i];
        w -= lr * g[i] / (sqrtf(acc[i]) + eps);
        sl_split_trunc(w, hi + i, lo + i);
    }
}

/* rows x n fp32 block with leading dimension ld -> compact bf16 (round to nearest even) */
static inline void sl_rows_to_bf16(const float *x, int64_t ld, uint16_t *out, int64_t rows,
                                   int64_t n) {
    for (int64_t r = 0; r < rows; r++)
        sl_to_bf16(x + r * ld, out + r * n, n);
}

#endif
