"""BLAS thread control for kernels that call BLAS from inside their own OpenMP loops."""
import threading

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_controller = None


def _get_controller():
    # Inspecting the loaded libraries reads and parses /proc/self/maps, far more work
    # than the call it guards: do it once. The BLAS our kernels call (scipy's) is
    # loaded with the kernels, before the first call, so a controller created then
    # sees it.
    global _controller
    with _lock:
        if _controller is None:
            _controller = ThreadpoolController()
        return _controller


def single_threaded_blas():
    """Context manager limiting BLAS to one thread.

    Our kernels run BLAS calls inside their own OpenMP threads; a multithreaded BLAS
    underneath would start a second pool competing for the same cores, each thread
    then waiting on the time slices of the others. Same as
    ``threadpool_limits(limits=1, user_api="blas")`` but without re-scanning the loaded
    libraries on every call, which matters for ``partial_fit`` on small batches.

    Returns
    -------
    limiter : context manager
        Restores the previous BLAS thread counts on exit.

    Examples
    --------
    >>> from slidelearn.utils._threads import single_threaded_blas
    >>> with single_threaded_blas():
    ...     pass
    """
    return _get_controller().limit(limits=1, user_api="blas")
