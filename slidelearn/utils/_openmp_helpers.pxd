# Safe OpenMP shim: these compile to serial stand-ins when the build has no OpenMP,
# so kernels can call them unconditionally.

cdef extern from *:
    """
    #ifndef SLIDELEARN_OPENMP_SHIM
    #define SLIDELEARN_OPENMP_SHIM
    #ifdef _OPENMP
    #include <omp.h>
    #define SLIDELEARN_USING_OPENMP 1
    #else
    #define SLIDELEARN_USING_OPENMP 0
    static inline int omp_get_thread_num(void) { return 0; }
    static inline int omp_get_max_threads(void) { return 1; }
    #endif
    #endif
    """
    bint SLIDELEARN_USING_OPENMP
    int omp_get_thread_num() noexcept nogil
    int omp_get_max_threads() noexcept nogil
