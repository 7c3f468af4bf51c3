/* Stable LSD radix sort of 64-bit keys with a float payload, on the bits
 * [shift, shift + bits) of the keys only (11 bits a pass: 2048 counters stay in L1).
 *
 * SlideClassifier sorts the output-gradient records of a batch, key (neuron << 32 | row)
 * and payload d loss / d logit, by neuron: a few sequential passes instead of a random
 * access into neuron-sized arrays per record, and, the sort being stable, each neuron's
 * records stay in batch order (the gradient sums keep their order). The result is in
 * key / val; tk / tv are scratch of the same length.
 *
 * With n_threads > 1 each pass splits the records into n_threads contiguous chunks:
 * every chunk counts its digits in a row of hist (n_threads * SL_RADIX_SIZE), the
 * write positions are laid out digit by digit and, within a digit, chunk by chunk,
 * and the chunks then scatter at once. That is the order the one-thread pass writes,
 * so the result is the same for any number of threads. Built without OpenMP, the
 * chunks run one after the other. */
#ifndef SLIDELEARN_RADIX_H
#define SLIDELEARN_RADIX_H
#include <stdint.h>
#include <string.h>

#define SL_RADIX_BITS 11
#define SL_RADIX_SIZE (1 << SL_RADIX_BITS)

static void sl_radix_sort_kv(uint64_t *key, float *val, uint64_t *tk, float *tv, int64_t n,
                             int shift, int bits, int n_threads, int64_t *hist) {
    uint64_t *src_k = key, *dst_k = tk;
    float *src_v = val, *dst_v = tv;
    int passes = 0, T = n_threads < 1 ? 1 : n_threads;
    for (int s = shift; s < shift + bits; s += SL_RADIX_BITS) {
        #pragma omp parallel for schedule(static) num_threads(T)
        for (int t = 0; t < T; t++) {
            int64_t *count = hist + (int64_t)t * SL_RADIX_SIZE;
            memset(count, 0, SL_RADIX_SIZE * sizeof(int64_t));
            for (int64_t i = n * t / T; i < n * (t + 1) / T; i++)
                count[(src_k[i] >> s) & (SL_RADIX_SIZE - 1)]++;
        }
        int64_t total = 0;
        for (int d = 0; d < SL_RADIX_SIZE; d++)
            for (int t = 0; t < T; t++) {
                int64_t c = hist[(int64_t)t * SL_RADIX_SIZE + d];
                hist[(int64_t)t * SL_RADIX_SIZE + d] = total;
                total += c;
            }
        #pragma omp parallel for schedule(static) num_threads(T)
        for (int t = 0; t < T; t++) {
            int64_t *next = hist + (int64_t)t * SL_RADIX_SIZE;
            for (int64_t i = n * t / T; i < n * (t + 1) / T; i++) {
                int64_t p = next[(src_k[i] >> s) & (SL_RADIX_SIZE - 1)]++;
                dst_k[p] = src_k[i];
                dst_v[p] = src_v[i];
            }
        }
        uint64_t *xk = src_k; src_k = dst_k; dst_k = xk;
        float *xv = src_v; src_v = dst_v; dst_v = xv;
        passes++;
    }
    if (passes & 1) {
        memcpy(key, src_k, (size_t)n * sizeof(uint64_t));
        memcpy(val, src_v, (size_t)n * sizeof(float));
    }
}

/* The runs of equal key >> 32 in the sorted keys: runs[u] is the first record of the
 * u-th run, runs[n_runs] = n; returns n_runs. Chunks of the keys count their run
 * starts (cnt, n_threads entries), then write them at their offsets. */
static int64_t sl_key_runs(const uint64_t *key, int64_t n, int64_t *runs, int n_threads,
                           int64_t *cnt) {
    int T = n_threads < 1 ? 1 : n_threads;
    #pragma omp parallel for schedule(static) num_threads(T)
    for (int t = 0; t < T; t++) {
        int64_t c = 0;
        for (int64_t q = n * t / T; q < n * (t + 1) / T; q++)
            c += q == 0 || (key[q] >> 32) != (key[q - 1] >> 32);
        cnt[t] = c;
    }
    int64_t total = 0;
    for (int t = 0; t < T; t++) {
        int64_t c = cnt[t];
        cnt[t] = total;
        total += c;
    }
    #pragma omp parallel for schedule(static) num_threads(T)
    for (int t = 0; t < T; t++) {
        int64_t u = cnt[t];
        for (int64_t q = n * t / T; q < n * (t + 1) / T; q++)
            if (q == 0 || (key[q] >> 32) != (key[q - 1] >> 32))
                runs[u++] = q;
    }
    runs[total] = n;
    return total;
}
#endif
