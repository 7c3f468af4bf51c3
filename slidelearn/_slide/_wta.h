/* Winner-take-all codes over bins of 8 dims, the default bin size of the WTA / DWTA
 * hash families: codes[i] is the position of the first largest of the 8 values
 * vec[dims[8 i]], ..., vec[dims[8 i + 7]], or -1 (DWTA's empty bin) when ``dwta`` and
 * all 8 are zero. Same results as the scalar loop of _hashing.hash_vector.
 *
 * Branch-free: the winner changes unpredictably, and the mispredicted branch per bin
 * of the plain loop cost more than the loads. No gather version: a bin's 8 dims are
 * scattered, and gathers are slow (microcoded) on some AVX-512 CPUs; the batch case
 * below transposes instead. */
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
 * vt holds the 16 vectors transposed, vt[16 * d + r] = vector r's coordinate d (see
 * sl_transpose16), so the 8 coordinates of a bin are 8 contiguous loads that fill one
 * zmm register, and masked compares and moves pick the winners of the 16 vectors at
 * once, with no gather and no branch. The codes are stored lane-major too:
 * codes[16 * i + r] is code i of vector r, the same as sl_wta8 gives (the same strict
 * comparisons in the same order; NaN never wins, and counts as non-zero). Returns the
 * mask of the vectors with an empty bin (dwta), which alone need densifying.
 * AVX-512 only: 16 lanes and mask registers carry a whole block of vectors; the AVX2 and
 * generic levels keep sl_wta8 row by row (8-lane and scalar versions of this loop were
 * no faster where measured: doc/user_guide/performance.rst). */
#define SL_WTA_LANES 16

static int sl_wta_level = 0;
static inline void sl_wta_set_level(int level) { sl_wta_level = level; }

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#include <immintrin.h>
#define SL_WTA_BLOCK 1

/* One pass of sl_wta8_block16's loop; `zeros` (a constant where it is inlined) says
 * whether to track the bins that are all zero. */
__attribute__((target("avx512f"), always_inline))
static inline __mmask16 sl_wta8_block16_pass(const float *vt, const int32_t *dims, int n,
                                             int zeros, int32_t *codes) {
    const __m512 zero = _mm512_setzero_ps();
    const __m512i empty = _mm512_set1_epi32(-1);
    __mmask16 any_empty = 0;
    for (int i = 0; i < n; i++) {
        const int32_t *d = dims + 8 * (int64_t)i;
        __m512 best = _mm512_loadu_ps(vt + SL_WTA_LANES * (int64_t)d[0]);
        __m512i bj = _mm512_setzero_si512();
        __mmask16 nz = zeros ? _mm512_cmp_ps_mask(best, zero, _CMP_NEQ_UQ) : 0;
        for (int j = 1; j < 8; j++) {
            __m512 x = _mm512_loadu_ps(vt + SL_WTA_LANES * (int64_t)d[j]);
            __mmask16 gt = _mm512_cmp_ps_mask(x, best, _CMP_GT_OQ);
            best = _mm512_mask_mov_ps(best, gt, x);
            bj = _mm512_mask_mov_epi32(bj, gt, _mm512_set1_epi32(j));
            if (zeros)
                nz = _kor_mask16(nz, _mm512_cmp_ps_mask(x, zero, _CMP_NEQ_UQ));
        }
        if (zeros) {
            bj = _mm512_mask_mov_epi32(bj, _knot_mask16(nz), empty);
            any_empty = _kor_mask16(any_empty, _knot_mask16(nz));
        }
        _mm512_storeu_si512((void *)(codes + SL_WTA_LANES * (int64_t)i), bj);
    }
    return any_empty;
}

/* dim: the coordinates in vt. With dwta, a bin is empty only if all its coordinates
 * are zero, and a centred row of output weights has none that is exactly zero: one
 * scan of the block finds whether any lane has a zero (NaN is no zero), and only
 * then are the bins tested for emptiness (8 compares and 8 mask ORs a bin, about a
 * third of the loop). */
__attribute__((target("avx512f")))
static uint32_t sl_wta8_block16(const float *vt, const int32_t *dims, int n, int dim,
                                int dwta, int32_t *codes) {
    __mmask16 has_zero = 0;
    if (dwta)
        for (int d = 0; d < dim; d++)
            has_zero = _kor_mask16(has_zero, _mm512_cmp_ps_mask(
                _mm512_loadu_ps(vt + SL_WTA_LANES * (int64_t)d), _mm512_setzero_ps(),
                _CMP_EQ_OQ));
    if (has_zero)
        return (uint32_t)sl_wta8_block16_pass(vt, dims, n, 1, codes);
    sl_wta8_block16_pass(vt, dims, n, 0, codes);
    return 0;
}

/* vt[16 * d + r] = V[r * stride + d] - c[d] (c may be NULL: no centring) for the
 * first cnt <= 16 rows, 0 for the rows after them: 16 x 16 tiles transposed in
 * registers (unpacks, then 128-bit lane shuffles), instead of 16 scalar strided
 * stores per column. */
__attribute__((target("avx512f")))
static void sl_transpose16(const float *V, int64_t stride, int cnt, int dim, const float *c,
                           float *vt) {
    __m512 r[16], t[16];
    for (int d0 = 0; d0 < dim; d0 += 16) {
        int w = dim - d0 < 16 ? dim - d0 : 16;
        __mmask16 m = (__mmask16)(w == 16 ? 0xffffu : (1u << w) - 1u);
        __m512 cv = c ? _mm512_maskz_loadu_ps(m, c + d0) : _mm512_setzero_ps();
        for (int k = 0; k < 16; k++)
            r[k] = k < cnt ? _mm512_sub_ps(_mm512_maskz_loadu_ps(m, V + k * stride + d0), cv)
                           : _mm512_setzero_ps();
        /* 32-bit pairs, then 64-bit pairs: t[4 a + b] holds, in each 128-bit lane q,
         * elements 4 q + b of rows 4 a .. 4 a + 3 */
        for (int k = 0; k < 16; k += 4) {
            __m512 a0 = _mm512_unpacklo_ps(r[k], r[k + 1]);
            __m512 a1 = _mm512_unpackhi_ps(r[k], r[k + 1]);
            __m512 a2 = _mm512_unpacklo_ps(r[k + 2], r[k + 3]);
            __m512 a3 = _mm512_unpackhi_ps(r[k + 2], r[k + 3]);
            t[k] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a0), _mm512_castps_pd(a2)));
            t[k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a0), _mm512_castps_pd(a2)));
            t[k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a1), _mm512_castps_pd(a3)));
            t[k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a1), _mm512_castps_pd(a3)));
        }
        /* 128-bit lanes: column 4 q + b gathers lane q of t[b], t[4 + b], t[8 + b], t[12 + b] */
        for (int b = 0; b < 4; b++) {
            __m512 e0 = _mm512_shuffle_f32x4(t[b], t[4 + b], 0x88);      /* lanes 0,2 | 0,2 */
            __m512 e1 = _mm512_shuffle_f32x4(t[b], t[4 + b], 0xdd);      /* lanes 1,3 | 1,3 */
            __m512 e2 = _mm512_shuffle_f32x4(t[8 + b], t[12 + b], 0x88);
            __m512 e3 = _mm512_shuffle_f32x4(t[8 + b], t[12 + b], 0xdd);
            __m512 col[4];
            col[0] = _mm512_shuffle_f32x4(e0, e2, 0x88);                  /* lane 0 */
            col[2] = _mm512_shuffle_f32x4(e0, e2, 0xdd);                  /* lane 2 */
            col[1] = _mm512_shuffle_f32x4(e1, e3, 0x88);                  /* lane 1 */
            col[3] = _mm512_shuffle_f32x4(e1, e3, 0xdd);                  /* lane 3 */
            for (int q = 0; q < 4; q++) {
                int d = 4 * q + b;
                if (d < w)
                    _mm512_storeu_ps(vt + SL_WTA_LANES * (int64_t)(d0 + d), col[q]);
            }
        }
    }
}

/* Bucket of each of 16 vectors in each of L tables from their lane-major codes (as
 * sl_wta8_block16 leaves them): key = sum of code i * base^(K - 1 - i), kept as is
 * (exact) or folded as (key * 0x9E3779B97F4A7C15) >> (64 - range_bits), exactly as
 * _hashing._buckets computes them in 64 bits. Requires base^K <= 2^32, so that the key
 * fits a 32-bit lane. out[t * out_stride + r] for r < cnt. */
__attribute__((target("avx512f")))
static void sl_buckets_block16(const int32_t *codes, int n_tables, int n_codes, uint32_t base,
                               int exact, int range_bits, uint32_t *out, int64_t out_stride,
                               int cnt) {
    const __m512i vb = _mm512_set1_epi32((int)base);
    const __m512i glo = _mm512_set1_epi64(0x7F4A7C15LL), ghi = _mm512_set1_epi64(0x9E3779B9LL);
    const __m128i sh = _mm_cvtsi32_si128(64 - range_bits);
    __mmask16 m = (__mmask16)(cnt >= 16 ? 0xffffu : (1u << cnt) - 1u);
    for (int t = 0; t < n_tables; t++) {
        const int32_t *ct = codes + SL_WTA_LANES * (int64_t)t * n_codes;
        __m512i key = _mm512_setzero_si512();
        for (int i = 0; i < n_codes; i++)
            key = _mm512_add_epi32(_mm512_mullo_epi32(key, vb),
                                   _mm512_loadu_si512((const void *)(ct + SL_WTA_LANES * i)));
        if (!exact) {
            /* 64-bit key * G mod 2^64 = key * G_lo + ((key * G_hi) << 32), 8 lanes at a time */
            __m256i half[2] = {_mm512_castsi512_si256(key), _mm512_extracti64x4_epi64(key, 1)};
            __m256i res[2];
            for (int h = 0; h < 2; h++) {
                __m512i k64 = _mm512_cvtepu32_epi64(half[h]);
                __m512i p = _mm512_add_epi64(_mm512_mul_epu32(k64, glo),
                                             _mm512_slli_epi64(_mm512_mul_epu32(k64, ghi), 32));
                res[h] = _mm512_cvtepi64_epi32(_mm512_srl_epi64(p, sh));
            }
            key = _mm512_inserti64x4(_mm512_castsi256_si512(res[0]), res[1], 1);
        }
        _mm512_mask_storeu_epi32((void *)(out + (int64_t)t * out_stride), m, key);
    }
}
#else
#define SL_WTA_BLOCK 0
static uint32_t sl_wta8_block16(const float *vt, const int32_t *dims, int n, int dim,
                                int dwta, int32_t *codes) {
    (void)vt; (void)dims; (void)n; (void)dim; (void)dwta; (void)codes;
    return 0;  /* never called: sl_wta_block_ok() is false */
}
static void sl_transpose16(const float *V, int64_t stride, int cnt, int dim, const float *c,
                           float *vt) {
    (void)V; (void)stride; (void)cnt; (void)dim; (void)c; (void)vt;  /* never called */
}
static void sl_buckets_block16(const int32_t *codes, int n_tables, int n_codes, uint32_t base,
                               int exact, int range_bits, uint32_t *out, int64_t out_stride,
                               int cnt) {
    (void)codes; (void)n_tables; (void)n_codes; (void)base; (void)exact; (void)range_bits;
    (void)out; (void)out_stride; (void)cnt;  /* never called */
}
#endif

/* Whether hash_vectors may use sl_wta8_block16 (the AVX-512 level of a GCC build). */
static inline int sl_wta_block_ok(void) { return SL_WTA_BLOCK && sl_wta_level >= 2; }
#endif
