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
#endif
