/* Small vector helpers for the SLIDE kernels. The reductions carry an OpenMP SIMD
 * pragma (honoured with -fopenmp or -fopenmp-simd, ignored otherwise) so that the
 * compiler may reorder the sum into vector lanes without -ffast-math. */
#ifndef SLIDELEARN_VEC_H
#define SLIDELEARN_VEC_H
#include <math.h>

static inline float sl_dot(const float *a, const float *b, int n) {
    float s = 0.0f;
    #pragma omp simd reduction(+:s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y += alpha * x */
static inline void sl_axpy(float alpha, const float *x, float *y, int n) {
    #pragma omp simd
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* Adam on one contiguous row; also applies L2 decay and clears the gradient. */
static inline void sl_adam_row(float *w, float *m, float *v, float *g, int n,
                               float lr_t, float b1, float b2, float eps, float alpha) {
    #pragma omp simd
    for (int i = 0; i < n; i++) {
        float gi = g[i] + alpha * w[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= lr_t * mi / (sqrtf(vi) + eps);
        g[i] = 0.0f;
    }
}

/* Software prefetch of a whole row of n floats (one hint per 64-byte line); the rows
 * of the output layer are visited in random order, so the hardware prefetcher alone
 * leaves most of their cache misses exposed. */
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
