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

/* The same codes for 16 vectors at once, the batch case (rehashing every output row):
 * vt holds the 16 vectors transposed, vt[16 * d + r] = vector r's coordinate d, so the
 * 8 coordinates of a bin are 8 contiguous loads that fill one zmm register, and masked
 * compares and moves pick the winners of the 16 vectors at once, with no gather and no
 * branch. codes[n * r + i] gets code i of vector r, the same as sl_wta8 gives (the same
 * strict comparisons in the same order; NaN never wins, and counts as non-zero).
 * Returns the mask of the vectors with an empty bin (dwta), which alone need densifying.
 * AVX-512 only (measured on Zen 4: 1.3 -> 0.3 us a 128-dim row with 200 codes, bucket
 * keys included); the AVX2 and generic levels keep sl_wta8 row by row, which their
 * 8-lane or scalar versions of this loop did not beat. */
#define SL_WTA_LANES 16

static int sl_wta_level = 0;
static inline void sl_wta_set_level(int level) { sl_wta_level = level; }

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#include <immintrin.h>
#define SL_WTA_BLOCK 1

__attribute__((target("avx512f")))
static uint32_t sl_wta8_block16(const float *vt, const int32_t *dims, int n, int dwta,
                                int32_t *codes) {
    const __m512 zero = _mm512_setzero_ps();
    const __m512i empty = _mm512_set1_epi32(-1);
    __mmask16 any_empty = 0;
    int32_t lane[SL_WTA_LANES];
    for (int i = 0; i < n; i++) {
        const int32_t *d = dims + 8 * (int64_t)i;
        __m512 best = _mm512_loadu_ps(vt + SL_WTA_LANES * (int64_t)d[0]);
        __m512i bj = _mm512_setzero_si512();
        __mmask16 nz = _mm512_cmp_ps_mask(best, zero, _CMP_NEQ_UQ);
        for (int j = 1; j < 8; j++) {
            __m512 x = _mm512_loadu_ps(vt + SL_WTA_LANES * (int64_t)d[j]);
            __mmask16 gt = _mm512_cmp_ps_mask(x, best, _CMP_GT_OQ);
            best = _mm512_mask_mov_ps(best, gt, x);
            bj = _mm512_mask_mov_epi32(bj, gt, _mm512_set1_epi32(j));
            nz = _kor_mask16(nz, _mm512_cmp_ps_mask(x, zero, _CMP_NEQ_UQ));
        }
        if (dwta) {
            bj = _mm512_mask_mov_epi32(bj, _knot_mask16(nz), empty);
            any_empty = _kor_mask16(any_empty, _knot_mask16(nz));
        }
        _mm512_storeu_si512((void *)lane, bj);
        for (int r = 0; r < SL_WTA_LANES; r++)
            codes[(int64_t)n * r + i] = lane[r];
    }
    return (uint32_t)any_empty;
}
#else
#define SL_WTA_BLOCK 0
static uint32_t sl_wta8_block16(const float *vt, const int32_t *dims, int n, int dwta,
                                int32_t *codes) {
    (void)vt; (void)dims; (void)n; (void)dwta; (void)codes;
    return 0;  /* never called: sl_wta_block_ok() is false */
}
#endif

/* Whether hash_vectors may use sl_wta8_block16 (the AVX-512 level of a GCC build). */
static inline int sl_wta_block_ok(void) { return SL_WTA_BLOCK && sl_wta_level >= 2; }
#endif
