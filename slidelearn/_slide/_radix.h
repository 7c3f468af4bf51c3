/* Stable LSD radix sort of 64-bit keys with a float payload, on the bits
 * [shift, shift + bits) of the keys only (11 bits a pass: 2048 counters stay in L1).
 *
 * SlideClassifier sorts the output-gradient records of a batch, key (neuron << 32 | row)
 * and payload d loss / d logit, by neuron: a few sequential passes instead of a random
 * access into neuron-sized arrays per record, and, the sort being stable, each neuron's
 * records stay in batch order (the gradient sums keep their order). The result is in
 * key / val; tk / tv are scratch of the same length. */
#ifndef SLIDELEARN_RADIX_H
#define SLIDELEARN_RADIX_H
#include <stdint.h>
#include <string.h>

#define SL_RADIX_BITS 11
#define SL_RADIX_SIZE (1 << SL_RADIX_BITS)

static void sl_radix_sort_kv(uint64_t *key, float *val, uint64_t *tk, float *tv, int64_t n,
                             int shift, int bits) {
    int64_t count[SL_RADIX_SIZE];
    uint64_t *src_k = key, *dst_k = tk;
    float *src_v = val, *dst_v = tv;
    int passes = 0;
    for (int s = shift; s < shift + bits; s += SL_RADIX_BITS) {
        memset(count, 0, sizeof(count));
        for (int64_t i = 0; i < n; i++)
            count[(src_k[i] >> s) & (SL_RADIX_SIZE - 1)]++;
        int64_t total = 0;
        for (int d = 0; d < SL_RADIX_SIZE; d++) {
            int64_t c = count[d];
            count[d] = total;
            total += c;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t p = count[(src_k[i] >> s) & (SL_RADIX_SIZE - 1)]++;
            dst_k[p] = src_k[i];
            dst_v[p] = src_v[i];
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
#endif
