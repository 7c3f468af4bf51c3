/* Winner-take-all codes over bins of 8 dims, the default bin size of the WTA / DWTA
 * hash families: codes[i] is the position of the first largest of the 8 values
 * vec[dims[8 i]], ..., vec[dims[8 i + 7]], or -1 (DWTA's empty bin) when ``dwta`` and
 * all 8 are zero. Same results as the scalar loop of _hashing.hash_vector.
 *
 * Branch-free: the winner changes unpredictably, and the mispredicted branch per bin
 * of the plain loop cost more than the loads (5.1 -> 1.15 us per 128-dim vector with
 * 200 codes on Zen 4). An AVX-512 version that gathers two bins per register was
 * measured too and was slower (1.4 us): gathers are microcoded on that CPU. */
#ifndef SLIDELEARN_WTA_H
#define SLIDELEARN_WTA_H
#include <stdint.h>

static inline void sl_wta8(const float *vec, const int32_t *dims, int n, int dwta,
                           int32_t *codes) {
    for (int i = 0; i < n; i++) {
        const int32_t *d = dims + 8 * (int64_t)i;
        float best = vec[d[0]];
        int bj = 0, nz = best != 0.0f;
        for (int j = 1; j < 8; j++) {
            float x = vec[d[j]];
            int gt = x > best;
            best = gt ? x : best;
            bj = gt ? j : bj;
            nz |= x != 0.0f;
        }
        codes[i] = (dwta && !nz) ? -1 : bj;
    }
}
#endif
