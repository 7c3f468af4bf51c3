# Locality-sensitive hash families for the output layer of SLIDE: declarations shared
# with the network kernels.
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

cdef enum:
    FAMILY_SIMHASH = 0
    FAMILY_WTA = 1
    FAMILY_DWTA = 2
    FAMILY_DOPH = 3
    FAMILY_MIPS = 4

cdef struct HashFn:
    int family
    int dim            # length of the hashed vectors
    int n_codes        # K: codes per table
    int n_tables       # L
    int bin_size       # dims per hash (wta/dwta bins, simhash non-zeros)
    const int32_t* dims      # (K * L, bin_size) dims of each hash (simhash, wta, dwta)
    const float* signs       # (K * L, bin_size) simhash projection signs
    const float* proj        # (K * L, dim) the same projections written out dense, or
                             # NULL where they are sparse enough to gather (_DENSE_SHARE)
    const int32_t* doph_bin  # (L, dim) bin in [0, K) of every dim, per table
    const uint32_t* doph_rank  # (L, dim) random rank of every dim, per table
    uint64_t code_base      # codes of one hash lie in [0, code_base)
    uint64_t n_buckets      # buckets per table
    int exact_buckets       # 1 when code_base ** K <= n_buckets (no folding)
    int range_bits          # log2(n_buckets) when folding
    uint64_t seed           # seed of the densification probes

cdef struct Tables:
    int n_tables
    int64_t n_buckets
    int64_t stride          # row stride of ids (items per table)
    const int32_t* offsets  # (L, n_buckets + 1)
    const int32_t* ids      # (L, stride)

cdef uint64_t splitmix64(uint64_t x) noexcept nogil
cdef uint64_t rng_next(uint64_t* state) noexcept nogil
cdef uint32_t rng_below(uint64_t* state, uint32_t n) noexcept nogil

# Fill buckets[0:L] with the bucket of vec in every table; codes is scratch of K*L ints.
cdef void hash_vector(const HashFn* fn, const float* vec, int32_t* codes,
                      uint32_t* buckets) noexcept nogil
# The same for a query (a last hidden activation of dim - 2 floats with the "mips"
# family, whose tables hold the transformed output rows; other families: hash_vector).
cdef void hash_query(const HashFn* fn, const float* h, int32_t* codes,
                     uint32_t* buckets) noexcept nogil

cdef HashFn make_hash_fn(dict p) except *
cdef Tables make_tables(const int32_t[:, ::1] offsets, const int32_t[:, ::1] ids) noexcept
