"""Thread-count resolution for the OpenMP kernels."""
import os

from slidelearn.utils._openmp_helpers cimport SLIDELEARN_USING_OPENMP, omp_get_max_threads


def openmp_enabled():
    """Return True if the extension modules were built with OpenMP support."""
    return bool(SLIDELEARN_USING_OPENMP)


def _usable_cpu_count():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def effective_n_threads(n_jobs=None):
    """Number of OpenMP threads to use for ``n_jobs``.

    ``None`` means all usable cores: the OpenMP default, which honours
    ``OMP_NUM_THREADS``, capped by the CPU affinity mask of the process (so a
    container or ``taskset`` limit and joblib workers, which set
    ``OMP_NUM_THREADS`` for their children, are respected). A negative value
    counts back from the number of usable cores as in joblib (``-1`` = all).
    Without OpenMP support the answer is always 1.
    """
    if n_jobs is not None and (isinstance(n_jobs, bool) or int(n_jobs) != n_jobs or n_jobs == 0):
        raise ValueError(f"n_jobs must be None, a positive or a negative integer, got {n_jobs!r}")
    if not SLIDELEARN_USING_OPENMP:
        return 1
    n_cpus = _usable_cpu_count()
    if n_jobs is None:
        return max(1, min(omp_get_max_threads(), n_cpus))
    n_jobs = int(n_jobs)
    if n_jobs < 0:
        return max(1, n_cpus + 1 + n_jobs)
    return n_jobs
