/* Hash-bucket helpers of the SLIDE kernels: prefetches of bucket ids and the
 * branch-free votes that gather a sample's active set of output neurons. The shared
 * vector helpers (and SL_PREFETCH) are in ../utils/_simd.h. */
#ifndef SLIDELEARN_BUCKETS_H
#define SLIDELEARN_BUCKETS_H
#include <stdint.h>
#include "../utils/_simd.h"

/* The lines of n int32 ids starting at p (a hash bucket), the last one included when
 * the bucket does not start on a line. */
static inline void sl_prefetch_ids(const int32_t *p, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) SL_PREFETCH(p + i, 0);
    if (n > 0) SL_PREFETCH(p + n - 1, 0);
}
static inline void sl_prefetch_int(const int32_t *p) { SL_PREFETCH(p, 0); }
static inline void sl_prefetchw_int(int32_t *p) { SL_PREFETCH(p, 1); }

#if defined(__GNUC__)
#define SL_BUCKET_INLINE static inline __attribute__((always_inline))
#else
#define SL_BUCKET_INLINE static inline
#endif

/* One hash bucket's ids against the one-byte marks of the neurons: each id is written
 * at out[n_out], and kept (n_out grows) when its mark was 0, that is, seen for the first
 * time. `take` = 0 votes: the mark counts one more table (255, taken, stays). `take` = 1
 * is a threshold of one table: a kept id is marked taken. Returns the new n_out.
 * Without branches: whether an id was seen before follows no pattern, so that a
 * branch on it would be mispredicted about half of the time. The marks of the ids
 * `ahead` positions on are prefetched (they are random bytes of an n_labels array).
 * Always inlined with a constant `take`, so that each caller gets its own loop. */
SL_BUCKET_INLINE int64_t sl_scan_bucket(const int32_t *restrict ids, int64_t n,
                                        unsigned char *restrict mark,
                                        int32_t *restrict out, int64_t n_out,
                                        int64_t ahead, const int take) {
    for (int64_t p = 0; p < n; p++) {
        if (p + ahead < n) SL_PREFETCH(mark + ids[p + ahead], 1);
        int32_t j = ids[p];
        unsigned char mk = mark[j];
        int fresh = mk == 0;
        out[n_out] = j;
        n_out += fresh;
        mark[j] = take ? (unsigned char)(fresh ? 255 : mark[j])
                       : (unsigned char)(mk + (mk < 255));
    }
    return n_out;
}

/* The votes of a bucket (the active-set count of SlideClassifier): new ids are appended
 * to cand. Returns the new length of cand. */
static inline int64_t sl_vote_bucket(const int32_t *restrict ids, int64_t n,
                                     unsigned char *restrict mark, int32_t *restrict cand,
                                     int64_t nc, int64_t ahead) {
    return sl_scan_bucket(ids, n, mark, cand, nc, ahead, 0);
}

/* A bucket with a threshold of one table: new ids are appended to act and marked
 * taken (255). Returns the new length of act. */
static inline int64_t sl_take_bucket(const int32_t *restrict ids, int64_t n,
                                     unsigned char *restrict mark, int32_t *restrict act,
                                     int64_t n_act, int64_t ahead) {
    return sl_scan_bucket(ids, n, mark, act, n_act, ahead, 1);
}

/* After the votes: the candidates with at least `threshold` votes are appended to act
 * (marked 255, taken) and the others' marks cleared. Returns the new length of act.
 * Without branches, and prefetching marks `ahead` candidates on, as sl_vote_bucket. */
static inline int64_t sl_take_voted(const int32_t *restrict cand, int64_t nc,
                                    unsigned char *restrict mark, int threshold,
                                    int32_t *restrict act, int64_t n_act, int64_t ahead) {
    for (int64_t q = 0; q < nc; q++) {
        if (q + ahead < nc) SL_PREFETCH(mark + cand[q + ahead], 1);
        int32_t j = cand[q];
        int keep = mark[j] >= threshold;
        act[n_act] = j;
        n_act += keep;
        mark[j] = (unsigned char)(keep ? 255 : 0);
    }
    return n_act;
}
#endif
