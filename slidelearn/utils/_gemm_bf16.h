/* BF16 GEMM with fp32 accumulation and runtime CPU dispatch.
 *
 *   C (m x n, fp32, row-major, leading dimension ldc)
 *       = alpha * op(A) op(B) + beta * C
 *
 * A and B hold bfloat16 bits (uint16), row-major with leading dimensions lda, ldb;
 * op(A) is m x k (A itself is m x k, or k x m when transa), op(B) is k x n (B is k x n,
 * or n x k when transb). That covers a dense layer: forward Y = X W^T (N, T), backward
 * dX = dY W (N, N), weight gradient dW = dY^T X (T, N). beta == 0 means C is not read
 * (NaNs in it are overwritten), as in BLAS.
 *
 * Algorithm (Goto / BLIS): loops jc (NC columns) -> pc (KC of k) -> pack a KC x NC block
 * of op(B) -> ic (MC rows) -> pack an MC x KC block of op(A) -> ir (MR) -> jr (NR) ->
 * register-blocked micro-kernel computing an MR x NR tile of C over KC. The A micro-panel
 * (KC x 14 bf16 = 14 KiB) stays in L1 while the B micro-panels stream from L2, and C is
 * walked along a band of 14 rows (the same pages). The kernel prefetches its C tile
 * before the k loop. The blocking (KC 512, MC 168, NC 3072) sizes the packed blocks for
 * a core with a 1 MiB L2; the macros can be overridden at compile time.
 *
 * Levels (see _cpu_features.h), each with its own packing and micro-kernel:
 *   avx512_bf16  14 x 32 tile, 28 zmm accumulators, vdpbf16ps. Panels are packed as
 *                k-pairs: each 32-bit word holds (x[k], x[k+1]) of one row of op(A) or
 *                column of op(B), so one vdpbf16ps does 16 x 2 multiply-adds. A's
 *                pair is broadcast to the 16 lanes. An odd k is padded with a zero.
 *   avx512       14 x 32 tile, fp32 FMA on panels converted to fp32 while packing.
 *   avx2         6 x 16 tile, fp32 FMA (ymm) on fp32 panels.
 *   generic      4 x 16 tile in portable C on fp32 panels.
 * The fp32 paths multiply the same bf16 values exactly (a bf16 x bf16 product is exact in
 * fp32) and accumulate in fp32, so all levels agree to fp32-accumulation rounding. They
 * are not bitwise equal: the order of the additions differs, and vdpbf16ps treats
 * denormal inputs and results as zero whatever MXCSR says (bf16 denormals are below
 * 1.2e-38, far outside anything a layer computes).
 *
 * Threads: sl_gemm_bf16_task(t, n_tasks, ...) computes the t-th of n_tasks disjoint
 * blocks of C (row strips, or column strips when n is the larger side), each with its
 * own packing buffers, so the caller runs the tasks in any parallel loop (prange).
 */
#ifndef SLIDELEARN_GEMM_BF16_H
#define SLIDELEARN_GEMM_BF16_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_bf16_split.h"  /* sl_bf16_to_f32 */
#include "_cpu_features.h"

#ifndef SL_GEMM_KC
#define SL_GEMM_KC 512   /* even: k-pairs never straddle two KC blocks */
#endif
#ifndef SL_GEMM_MC
#define SL_GEMM_MC 168   /* rows of A per packed block (rounded down to a multiple of MR) */
#endif
#ifndef SL_GEMM_NC
#define SL_GEMM_NC 3072  /* columns of B per packed block (rounded down to a multiple of NR) */
#endif

static int sl_gemm_level = SL_CPU_GENERIC;

static inline void sl_gemm_set_level(int level) { sl_gemm_level = level; }
static inline int sl_gemm_get_level(void) { return sl_gemm_level; }

/* micro-kernel: kk k-steps (k-pairs for the bf16 kernel) of packed panels Ap, Bp into the
 * mr x nr (<= MR x NR) tile at C: C = alpha * acc + beta * C, C not read when beta == 0. */
typedef void (*sl_gemm_kernel_t)(int64_t kk, const void *Ap, const void *Bp, float *C,
                                 int64_t ldc, float alpha, float beta, int mr, int nr);

/* edge tiles and the generic kernel: combine a computed tile into C */
static inline void sl_gemm_store_tile(const float *tile, int ldt, float *C, int64_t ldc,
                                      float alpha, float beta, int mr, int nr) {
    for (int i = 0; i < mr; i++) {
        float *c = C + i * ldc;
        const float *t = tile + i * ldt;
        if (beta == 0.0f)
            for (int j = 0; j < nr; j++) c[j] = alpha * t[j];
        else if (beta == 1.0f)
            for (int j = 0; j < nr; j++) c[j] += alpha * t[j];
        else
            for (int j = 0; j < nr; j++) c[j] = alpha * t[j] + beta * c[j];
    }
}

/* ------------------------------------------------------------------ packing
 * op(A)[i, k] = transa ? A[k * lda + i] : A[i * lda + k]
 * op(B)[k, j] = transb ? B[j * ldb + k] : B[k * ldb + j]
 * Blocks are given by their origin (i0 or j0, k0) and size (rows/cols, kb); panels are
 * padded with zeros to MR rows / NR columns and, for pairs, to an even kb.
 * The columns of op(B) are the rows of op(B)^T, whose transpose flag is !transb, so B is
 * packed by the A packings with the flag flipped (sl_gemm_pack). */

/* A block -> MR-row panels of k-pairs: dst[panel][p][r] = (a[r, 2p], a[r, 2p + 1]) */
static void sl_pack_a_pairs(int transa, const uint16_t *A, int64_t lda, int64_t i0,
                            int64_t k0, int64_t mb, int64_t kb, int MR, uint32_t *dst) {
    const int64_t kp = (kb + 1) / 2, kfull = kb / 2;
    for (int64_t ip = 0; ip < mb; ip += MR) {
        const int rows = (int)(mb - ip < MR ? mb - ip : MR);
        uint32_t *d = dst + ip * kp;  /* panel ip / MR starts at ip * kp words */
        if (!transa) {
            for (int r = 0; r < rows; r++) {
                const uint16_t *a = A + (i0 + ip + r) * lda + k0;
                for (int64_t p = 0; p < kfull; p++) {
                    uint32_t w;
                    memcpy(&w, a + 2 * p, 4);  /* little endian: a[2p] in the low half */
                    d[p * MR + r] = w;
                }
                if (kp > kfull) d[kfull * MR + r] = a[2 * kfull];
            }
        } else {
            for (int64_t p = 0; p < kp; p++) {
                const uint16_t *a0 = A + (k0 + 2 * p) * lda + i0 + ip;
                uint32_t *dp = d + p * MR;
                if (2 * p + 1 < kb) {
                    const uint16_t *a1 = a0 + lda;
                    for (int r = 0; r < rows; r++)
                        dp[r] = (uint32_t)a0[r] | ((uint32_t)a1[r] << 16);
                } else {
                    for (int r = 0; r < rows; r++) dp[r] = a0[r];
                }
            }
        }
        if (rows < MR)
            for (int64_t p = 0; p < kp; p++)
                for (int r = rows; r < MR; r++) d[p * MR + r] = 0;
    }
}

/* A block -> MR-row panels of fp32, dst[panel][k][r] = a[r, k]; generated for bf16
 * operands (widened exactly) and for fp32 ones (copied; sl_gemm_task with in_f32). */
#define SL_GEMM_LOAD_BF16(x) sl_bf16_to_f32(x)
#define SL_GEMM_LOAD_F32(x) (x)
#define SL_DEFINE_PACK_F32(SUFFIX, T, LOAD)                                                \
static void sl_pack_a_##SUFFIX(int transa, const T *A, int64_t lda, int64_t i0, int64_t k0,  \
                               int64_t mb, int64_t kb, int MR, float *dst) {              \
    for (int64_t ip = 0; ip < mb; ip += MR) {                                             \
        const int rows = (int)(mb - ip < MR ? mb - ip : MR);                              \
        float *d = dst + ip * kb;                                                         \
        if (!transa) {                                                                    \
            for (int r = 0; r < rows; r++) {                                              \
                const T *a = A + (i0 + ip + r) * lda + k0;                                \
                for (int64_t k = 0; k < kb; k++) d[k * MR + r] = LOAD(a[k]);              \
            }                                                                             \
        } else {                                                                          \
            for (int64_t k = 0; k < kb; k++) {                                            \
                const T *a = A + (k0 + k) * lda + i0 + ip;                                \
                for (int r = 0; r < rows; r++) d[k * MR + r] = LOAD(a[r]);                \
            }                                                                             \
        }                                                                                 \
        if (rows < MR)                                                                    \
            for (int64_t k = 0; k < kb; k++)                                              \
                for (int r = rows; r < MR; r++) d[k * MR + r] = 0.0f;                     \
    }                                                                                     \
}

SL_DEFINE_PACK_F32(f32, uint16_t, SL_GEMM_LOAD_BF16)
SL_DEFINE_PACK_F32(f32_f32, float, SL_GEMM_LOAD_F32)

/* Pack rb rows (from r0) of op(X), X an operand of sl_gemm_block, into R-row panels at
 * dst for the kernel: fp32 operands copied (in_f32), bf16 ones as k-pairs (pairs) or
 * widened to fp32. A is packed with transa, B (rows of op(B)^T) with !transb. */
static inline void sl_gemm_pack(int in_f32, int pairs, int trans, const void *X, int64_t ldx,
                                int64_t r0, int64_t k0, int64_t rb, int64_t kb, int R,
                                char *dst) {
    if (in_f32)
        sl_pack_a_f32_f32(trans, (const float *)X, ldx, r0, k0, rb, kb, R, (float *)dst);
    else if (pairs)
        sl_pack_a_pairs(trans, (const uint16_t *)X, ldx, r0, k0, rb, kb, R, (uint32_t *)dst);
    else
        sl_pack_a_f32(trans, (const uint16_t *)X, ldx, r0, k0, rb, kb, R, (float *)dst);
}

/* ------------------------------------------------------------------ generic kernel */
#define SL_GEN_MR 4
#define SL_GEN_NR 16

static void sl_kernel_generic(int64_t kk, const void *Ap_, const void *Bp_, float *C,
                              int64_t ldc, float alpha, float beta, int mr, int nr) {
    const float *Ap = (const float *)Ap_, *Bp = (const float *)Bp_;
    float acc[SL_GEN_MR][SL_GEN_NR];
    memset(acc, 0, sizeof(acc));
    for (int64_t k = 0; k < kk; k++) {
        for (int r = 0; r < SL_GEN_MR; r++) {
            const float a = Ap[r];
            for (int c = 0; c < SL_GEN_NR; c++) acc[r][c] += a * Bp[c];
        }
        Ap += SL_GEN_MR;
        Bp += SL_GEN_NR;
    }
    sl_gemm_store_tile(&acc[0][0], SL_GEN_NR, C, ldc, alpha, beta, mr, nr);
}

#if SL_X86_DISPATCH
/* ------------------------------------------------------------------ AVX2 kernel */
#define SL_AVX2_MR 6
#define SL_AVX2_NR 16

__attribute__((target("avx2,fma")))
static void sl_kernel_avx2(int64_t kk, const void *Ap_, const void *Bp_, float *C,
                           int64_t ldc, float alpha, float beta, int mr, int nr) {
    const float *Ap = (const float *)Ap_, *Bp = (const float *)Bp_;
    __m256 acc[SL_AVX2_MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < SL_AVX2_MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kk; k++) {
        const __m256 b0 = _mm256_loadu_ps(Bp), b1 = _mm256_loadu_ps(Bp + 8);
#pragma GCC unroll 6
        for (int r = 0; r < SL_AVX2_MR; r++) {
            const __m256 a = _mm256_broadcast_ss(Ap + r);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
        Ap += SL_AVX2_MR;
        Bp += SL_AVX2_NR;
    }
    if (mr == SL_AVX2_MR && nr == SL_AVX2_NR) {
        const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
        for (int r = 0; r < SL_AVX2_MR; r++) {
            float *c = C + r * ldc;
            if (beta == 0.0f) {
                _mm256_storeu_ps(c, _mm256_mul_ps(va, acc[r][0]));
                _mm256_storeu_ps(c + 8, _mm256_mul_ps(va, acc[r][1]));
            } else {
                _mm256_storeu_ps(c, _mm256_fmadd_ps(va, acc[r][0],
                                                    _mm256_mul_ps(vb, _mm256_loadu_ps(c))));
                _mm256_storeu_ps(c + 8, _mm256_fmadd_ps(va, acc[r][1],
                                                        _mm256_mul_ps(vb, _mm256_loadu_ps(c + 8))));
            }
        }
    } else {
        float tile[SL_AVX2_MR * SL_AVX2_NR];
        for (int r = 0; r < SL_AVX2_MR; r++) {
            _mm256_storeu_ps(tile + r * SL_AVX2_NR, acc[r][0]);
            _mm256_storeu_ps(tile + r * SL_AVX2_NR + 8, acc[r][1]);
        }
        sl_gemm_store_tile(tile, SL_AVX2_NR, C, ldc, alpha, beta, mr, nr);
    }
}

/* ------------------------------------------------------------------ AVX-512 kernels */
#define SL_Z_MR 14
#define SL_Z_NR 32

/* fetch the C tile while the k loop runs (its rows are ldc apart: one page each when
 * ldc is large, and not in cache, so that the tile's loads would otherwise wait on
 * memory after the k loop) */
#define SL_Z_PREFETCH_C()                                                                 \
    do {                                                                                  \
        for (int r_ = 0; r_ < mr; r_++) {                                                 \
            _mm_prefetch((const char *)(C + r_ * ldc), _MM_HINT_T0);                      \
            _mm_prefetch((const char *)(C + r_ * ldc + 16), _MM_HINT_T0);                 \
        }                                                                                 \
    } while (0)

/* store the 14 x 32 accumulator tile (shared by the fp32 and the bf16 kernels) */
#define SL_Z_STORE(acc)                                                                   \
    do {                                                                                  \
        if (mr == SL_Z_MR && nr == SL_Z_NR) {                                             \
            const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);          \
            if (beta == 0.0f) {                                                           \
                _Pragma("GCC unroll 14") for (int r = 0; r < SL_Z_MR; r++) {              \
                    _mm512_storeu_ps(C + r * ldc, _mm512_mul_ps(va, acc[r][0]));          \
                    _mm512_storeu_ps(C + r * ldc + 16, _mm512_mul_ps(va, acc[r][1]));     \
                }                                                                         \
            } else {                                                                      \
                _Pragma("GCC unroll 14") for (int r = 0; r < SL_Z_MR; r++) {              \
                    float *c = C + r * ldc;                                               \
                    _mm512_storeu_ps(c, _mm512_fmadd_ps(va, acc[r][0],                    \
                                     _mm512_mul_ps(vb, _mm512_loadu_ps(c))));             \
                    _mm512_storeu_ps(c + 16, _mm512_fmadd_ps(va, acc[r][1],               \
                                     _mm512_mul_ps(vb, _mm512_loadu_ps(c + 16))));        \
                }                                                                         \
            }                                                                             \
        } else {                                                                          \
            float tile[SL_Z_MR * SL_Z_NR];                                                \
            for (int r = 0; r < SL_Z_MR; r++) {                                           \
                _mm512_storeu_ps(tile + r * SL_Z_NR, acc[r][0]);                          \
                _mm512_storeu_ps(tile + r * SL_Z_NR + 16, acc[r][1]);                     \
            }                                                                             \
            sl_gemm_store_tile(tile, SL_Z_NR, C, ldc, alpha, beta, mr, nr);               \
        }                                                                                 \
    } while (0)

__attribute__((target("avx512f,avx512bw,avx512vl,fma")))
static void sl_kernel_avx512(int64_t kk, const void *Ap_, const void *Bp_, float *C,
                             int64_t ldc, float alpha, float beta, int mr, int nr) {
    const float *Ap = (const float *)Ap_, *Bp = (const float *)Bp_;
    __m512 acc[SL_Z_MR][2];
    SL_Z_PREFETCH_C();
#pragma GCC unroll 14
    for (int r = 0; r < SL_Z_MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kk; k++) {
        const __m512 b0 = _mm512_loadu_ps(Bp), b1 = _mm512_loadu_ps(Bp + 16);
#pragma GCC unroll 14
        for (int r = 0; r < SL_Z_MR; r++) {
            const __m512 a = _mm512_set1_ps(Ap[r]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
        Ap += SL_Z_MR;
        Bp += SL_Z_NR;
    }
    SL_Z_STORE(acc);
}

/* kk = number of k-pairs; Ap: MR words per pair, Bp: NR words (2 zmm) per pair */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))
static void sl_kernel_avx512_bf16(int64_t kk, const void *Ap_, const void *Bp_, float *C,
                                  int64_t ldc, float alpha, float beta, int mr, int nr) {
    const uint32_t *Ap = (const uint32_t *)Ap_, *Bp = (const uint32_t *)Bp_;
    __m512 acc[SL_Z_MR][2];
    SL_Z_PREFETCH_C();
#pragma GCC unroll 14
    for (int r = 0; r < SL_Z_MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kk; p++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)Bp);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(Bp + 16));
#pragma GCC unroll 14
        for (int r = 0; r < SL_Z_MR; r++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)Ap[r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
        }
        Ap += SL_Z_MR;
        Bp += SL_Z_NR;
    }
    SL_Z_STORE(acc);
}
#endif /* SL_X86_DISPATCH */

/* ------------------------------------------------------------------ driver */
typedef struct {
    int mr, nr, pairs;
    sl_gemm_kernel_t kernel;
} sl_gemm_impl_t;

static inline sl_gemm_impl_t sl_gemm_impl(int level, int in_f32) {
    sl_gemm_impl_t im = {SL_GEN_MR, SL_GEN_NR, 0, sl_kernel_generic};
#if SL_X86_DISPATCH
    if (level >= SL_CPU_AVX512_BF16 && !in_f32) {
        im.mr = SL_Z_MR; im.nr = SL_Z_NR; im.pairs = 1; im.kernel = sl_kernel_avx512_bf16;
    } else if (level >= SL_CPU_AVX512) {
        im.mr = SL_Z_MR; im.nr = SL_Z_NR; im.kernel = sl_kernel_avx512;
    } else if (level >= SL_CPU_AVX2) {
        im.mr = SL_AVX2_MR; im.nr = SL_AVX2_NR; im.kernel = sl_kernel_avx2;
    }
#else
    (void)level;
#endif
    return im;
}

/* The register tile of a level (used to align the task split). */
static inline void sl_gemm_tile(int *mr, int *nr) {
    sl_gemm_impl_t im = sl_gemm_impl(sl_gemm_level, 0);  /* the fp32 kernels share it */
    *mr = im.mr;
    *nr = im.nr;
}

static void sl_gemm_scale_block(float *C, int64_t ldc, int64_t m0, int64_t m1, int64_t n0,
                                int64_t n1, float beta) {
    for (int64_t i = m0; i < m1; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            for (int64_t j = n0; j < n1; j++) c[j] = 0.0f;
        else
            for (int64_t j = n0; j < n1; j++) c[j] *= beta;
    }
}

/* Serial GEMM on the block C[m0:m1, n0:n1] of bf16 operands (in_f32 = 0) or fp32 ones
 * (in_f32 = 1: the fp32 kernels, at the avx512_bf16 level the avx512 one). Returns 0, or
 * -1 when out of memory. */
static int sl_gemm_block(int in_f32, int transa, int transb, int64_t m0, int64_t m1,
                         int64_t n0, int64_t n1, int64_t K, float alpha, const void *A,
                         int64_t lda, const void *B, int64_t ldb, float beta, float *C,
                         int64_t ldc) {
    if (m1 <= m0 || n1 <= n0) return 0;
    if (K == 0 || alpha == 0.0f) {
        if (beta != 1.0f) sl_gemm_scale_block(C, ldc, m0, m1, n0, n1, beta);
        return 0;
    }
    const sl_gemm_impl_t im = sl_gemm_impl(sl_gemm_level, in_f32);
    const int MR = im.mr, NR = im.nr;
    const int64_t kc = K < SL_GEMM_KC ? K : SL_GEMM_KC;
    const int64_t kpad = kc + (kc & 1);
    int64_t mc = (SL_GEMM_MC / MR) * MR, nc = (SL_GEMM_NC / NR) * NR;
    if (mc > m1 - m0) mc = ((m1 - m0 + MR - 1) / MR) * MR;
    if (nc > n1 - n0) nc = ((n1 - n0 + NR - 1) / NR) * NR;
    /* 4 bytes an element covers both the fp32 panels and the k-pair words */
    char *bufa = (char *)aligned_alloc(64, (size_t)((mc * kpad * 4 + 63) / 64 * 64));
    char *bufb = (char *)aligned_alloc(64, (size_t)((nc * kpad * 4 + 63) / 64 * 64));
    if (bufa == NULL || bufb == NULL) {
        free(bufa);
        free(bufb);
        return -1;
    }
    for (int64_t jc = n0; jc < n1; jc += nc) {
        const int64_t nb = n1 - jc < nc ? n1 - jc : nc;
        for (int64_t pc = 0; pc < K; pc += kc) {
            const int64_t kb = K - pc < kc ? K - pc : kc;
            const int64_t kk = im.pairs ? (kb + 1) / 2 : kb;  /* k-steps of the kernel */
            const float beta_eff = pc == 0 ? beta : 1.0f;
            sl_gemm_pack(in_f32, im.pairs, !transb, B, ldb, jc, pc, nb, kb, NR, bufb);
            for (int64_t ic = m0; ic < m1; ic += mc) {
                const int64_t mb = m1 - ic < mc ? m1 - ic : mc;
                sl_gemm_pack(in_f32, im.pairs, transa, A, lda, ic, pc, mb, kb, MR, bufa);
                for (int64_t ir = 0; ir < mb; ir += MR) {
                    const int mr = (int)(mb - ir < MR ? mb - ir : MR);
                    const char *ap = bufa + (size_t)(ir * kk) * 4;
                    for (int64_t jr = 0; jr < nb; jr += NR) {
                        const int nr = (int)(nb - jr < NR ? nb - jr : NR);
                        const char *bp = bufb + (size_t)(jr * kk) * 4;  /* panel jr / NR */
                        im.kernel(kk, ap, bp, C + (ic + ir) * ldc + jc + jr, ldc, alpha,
                                  beta_eff, mr, nr);
                    }
                }
            }
        }
    }
    free(bufa);
    free(bufb);
    return 0;
}

/* How many tasks (disjoint blocks of C) to split an m x n product into for n_threads. */
static inline int64_t sl_gemm_n_tasks(int64_t m, int64_t n, int n_threads) {
    int mr, nr;
    sl_gemm_tile(&mr, &nr);
    const int64_t tiles = m / mr >= n / nr ? (m + mr - 1) / mr : (n + nr - 1) / nr;
    int64_t t = n_threads < 1 ? 1 : n_threads;
    if (t > tiles) t = tiles;
    return t < 1 ? 1 : t;
}

/* Task t of n_tasks: a strip of rows (or of columns when the column tiles outnumber the
 * row tiles), aligned to the register tile. Returns 0, or -1 when out of memory.
 * in_f32 = 1 takes fp32 operands (DLRM prediction): every element of C is accumulated
 * over k in the same order whatever its row or column (edge tiles run the full kernel
 * on zero padding), so a row's result does not depend on its position in the product,
 * unlike BLAS kernels that treat edge columns differently. */
static int sl_gemm_task(int in_f32, int64_t t, int64_t n_tasks, int transa, int transb,
                        int64_t m, int64_t n, int64_t K, float alpha, const void *A,
                        int64_t lda, const void *B, int64_t ldb, float beta, float *C,
                        int64_t ldc) {
    int mr, nr;
    sl_gemm_tile(&mr, &nr);
    const int by_rows = m / mr >= n / nr;
    const int64_t len = by_rows ? m : n, tile = by_rows ? mr : nr;
    const int64_t tiles = (len + tile - 1) / tile, per = (tiles + n_tasks - 1) / n_tasks;
    int64_t a = t * per * tile, b = (t + 1) * per * tile;
    if (b > len) b = len;
    if (a >= b) return 0;
    return sl_gemm_block(in_f32, transa, transb, by_rows ? a : 0, by_rows ? b : m,
                         by_rows ? 0 : a, by_rows ? n : b, K, alpha, A, lda, B, ldb, beta, C,
                         ldc);
}

static int sl_gemm_bf16_task(int64_t t, int64_t n_tasks, int transa, int transb, int64_t m,
                             int64_t n, int64_t K, float alpha, const uint16_t *A,
                             int64_t lda, const uint16_t *B, int64_t ldb, float beta,
                             float *C, int64_t ldc) {
    return sl_gemm_task(0, t, n_tasks, transa, transb, m, n, K, alpha, A, lda, B, ldb, beta,
                        C, ldc);
}


#endif
