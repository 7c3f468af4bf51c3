/* float32 weights kept exactly as two 16-bit halves: the split and the join, once per
 * convention, for every bfloat16 model of slidelearn.
 *
 * A kernel reads the upper half `hi` alone, as a bfloat16 (two bytes a weight to
 * stream); an update joins hi and the lower half `lo` into the exact float32 weight,
 * computes in float32 and splits the result again, so that training keeps float32
 * weights at 4 bytes each. In both conventions lo is the lower 16 bits of the weight;
 * they differ in hi:
 *
 *   TRUNC  hi = the upper 16 bits: the weight truncated (towards zero) to bfloat16.
 *          join: w = hi << 16 | lo. The split-SGD of the CPU-cluster DLRM work:
 *          DLRM's precision="bfloat16" (sl_sgd_split, _dlrm/_split.h) and
 *          slidelearn.utils._bf16.split / join.
 *   ROUND  hi = the upper 16 bits of w + 0x8000: the weight rounded to the nearest
 *          bfloat16, ties away from zero (half up on the magnitude bits); a NaN gives
 *          the quiet NaN 0x7fc0. The rounding carried into hi exactly when
 *          lo >= 0x8000, so join: w = (hi - (lo >= 0x8000)) << 16 | lo, exact for every
 *          bit pattern but NaN's (a NaN joins to a NaN). SlideClassifier's
 *          precision="bfloat16" output layer (_slide/_adam16.h): its dot products and
 *          hash codes read hi as the round-to-nearest bfloat16 of the weight.
 *
 * Both joins give the weight back exactly (ROUND: a NaN as a NaN). They differ in what
 * a kernel reading hi sees: TRUNC moves the weight by less than one bfloat16 ulp,
 * always towards zero; ROUND by at most half an ulp, either way, at the cost of the
 * carry in the join.
 *
 * Besides the scalar and row forms, AVX-512 forms for the kernels that move 16 or 32
 * weights a step (compiled with per-function target attributes, inlined into callers
 * whose own targets include them; SL_HAVE_X86_DISPATCH says whether they exist).
 */
#ifndef SLIDELEARN_BF16_SPLIT_H
#define SLIDELEARN_BF16_SPLIT_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#define SL_HAVE_X86_DISPATCH 1
#include <immintrin.h>
#else
#define SL_HAVE_X86_DISPATCH 0
#endif

/* ---------------------------------------------------------------- TRUNC */
static inline void sl_split_trunc(float w, uint16_t *hi, uint16_t *lo) {
    uint32_t u;
    memcpy(&u, &w, 4);
    *hi = (uint16_t)(u >> 16);
    *lo = (uint16_t)u;
}

static inline float sl_join_trunc(uint16_t hi, uint16_t lo) {
    uint32_t u = ((uint32_t)hi << 16) | lo;
    float w;
    memcpy(&w, &u, 4);
    return w;
}

/* The float32 value of a bfloat16 (exact: the bits become the upper half). */
static inline float sl_bf16_to_f32(uint16_t h) { return sl_join_trunc(h, 0); }

/* ---------------------------------------------------------------- ROUND
 * TRUNC's halves with the carry of rounding (lo >= 0x8000) added to hi by the split
 * and taken back by the join. */
static inline void sl_split_round(float w, uint16_t *hi, uint16_t *lo) {
    uint32_t u;
    memcpy(&u, &w, 4);
    sl_split_trunc(w, hi, lo);
    *hi = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)0x7fc0u : (uint16_t)(*hi + (*lo >= 0x8000u));
}

static inline float sl_join_round(uint16_t hi, uint16_t lo) {
    return sl_join_trunc((uint16_t)(hi - (lo >= 0x8000u)), lo);
}

/* ---------------------------------------------------------------- rows of n */
static inline void sl_split_trunc_n(const float *w, uint16_t *hi, uint16_t *lo, int64_t n) {
    _Pragma("omp simd")
    for (int64_t i = 0; i < n; i++) sl_split_trunc(w[i], hi + i, lo + i);
}

static inline void sl_split_round_n(const float *w, uint16_t *hi, uint16_t *lo, int64_t n) {
    _Pragma("omp simd")
    for (int64_t i = 0; i < n; i++) sl_split_round(w[i], hi + i, lo + i);
}

static inline void sl_join_trunc_n(const uint16_t *hi, const uint16_t *lo, float *out,
                                   int64_t n) {
    _Pragma("omp simd")
    for (int64_t i = 0; i < n; i++) out[i] = sl_join_trunc(hi[i], lo[i]);
}

static inline void sl_join_round_n(const uint16_t *hi, const uint16_t *lo, float *out,
                                   int64_t n) {
    _Pragma("omp simd")
    for (int64_t i = 0; i < n; i++) out[i] = sl_join_round(hi[i], lo[i]);
}

/* ---------------------------------------------------------------- AVX-512 */
#if SL_HAVE_X86_DISPATCH
#define SL_SPLIT_AVX512 __attribute__((target("avx512f,avx512bw"), always_inline))

/* TRUNC, 16 weights: from hi[0..16) and lo[0..16), and back into them. */
SL_SPLIT_AVX512 static inline __m512 sl_join_trunc_x16(const uint16_t *hi, const uint16_t *lo) {
    __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)hi));
    __m512i l = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)lo));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_slli_epi32(h, 16), l));
}

SL_SPLIT_AVX512 static inline void sl_split_trunc_x16(__m512 w, uint16_t *hi, uint16_t *lo) {
    __m512i u = _mm512_castps_si512(w);
    _mm256_storeu_si256((__m256i *)hi, _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
    _mm256_storeu_si256((__m256i *)lo, _mm512_cvtepi32_epi16(u));
}

/* ROUND, 32 weights as their even and odd halves. H and L hold 32 halves each (a
 * 32-bit lane: an even element in its lower 16 bits, the next odd one in its upper
 * 16), so that widening is a shift (even) or a mask (odd) and narrowing a shift and a
 * blend, with no lane permutes. */
SL_SPLIT_AVX512 static inline void sl_join_round_eo(__m512i H, __m512i L, __m512 *wE,
                                                    __m512 *wO) {
    const __m512i LOW = _mm512_set1_epi32(0xffff), HIGH = _mm512_set1_epi32((int)0xffff0000u);
    /* the upper halves less the carry of their rounding, then the words */
    __m512i Hc = _mm512_sub_epi16(H, _mm512_srli_epi16(L, 15));
    *wE = _mm512_castsi512_ps(_mm512_or_si512(_mm512_slli_epi32(Hc, 16), _mm512_and_si512(L, LOW)));
    *wO = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(Hc, HIGH), _mm512_srli_epi32(L, 16)));
}

SL_SPLIT_AVX512 static inline void sl_split_round_eo(__m512 wE, __m512 wO, __m512i *H,
                                                     __m512i *L) {
    const __m512i LOW = _mm512_set1_epi32(0xffff), HIGH = _mm512_set1_epi32((int)0xffff0000u);
    const __m512i HALF = _mm512_set1_epi32(0x8000), QNAN = _mm512_set1_epi32(0x7fc00000);
    __m512i uE = _mm512_castps_si512(wE), uO = _mm512_castps_si512(wO);
    __m512i hE = _mm512_mask_mov_epi32(_mm512_add_epi32(uE, HALF),
                                       _mm512_cmp_ps_mask(wE, wE, _CMP_UNORD_Q), QNAN);
    __m512i hO = _mm512_mask_mov_epi32(_mm512_add_epi32(uO, HALF),
                                       _mm512_cmp_ps_mask(wO, wO, _CMP_UNORD_Q), QNAN);
    *H = _mm512_or_si512(_mm512_srli_epi32(hE, 16), _mm512_and_si512(hO, HIGH));
    *L = _mm512_or_si512(_mm512_and_si512(uE, LOW), _mm512_slli_epi32(uO, 16));
}
#undef SL_SPLIT_AVX512
#endif

#endif
