"""Helpers for SPMD training over MPI (the optional ``slidelearn[mpi]`` extra).

mpi4py is imported only when an estimator is given a communicator: single-machine use
never loads it. Every function here is collective: all ranks of ``comm`` must call it,
in the same order.
"""
from contextlib import contextmanager

import numpy as np

from ._openmp_helpers import effective_n_threads


def import_mpi():
    """The ``mpi4py.MPI`` module, with a clear message when it is missing.

    Returns
    -------
    MPI : module
        ``mpi4py.MPI``.

    Examples
    --------
    >>> from slidelearn.utils._mpi import import_mpi
    >>> import_mpi().COMM_WORLD.Get_size() >= 1  # doctest: +SKIP
    True
    """
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "comm= needs mpi4py; install it with `pip install slidelearn[mpi]` (which "
            "brings mpi4py and, where no MPI is installed, the mpich wheel).") from exc
    return MPI


def check_comm(comm):
    """Validate an estimator's ``comm`` parameter.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm or None
        The communicator of the ranks that train together.

    Returns
    -------
    comm : mpi4py.MPI.Intracomm or None
        ``comm`` itself; None stays None (single-machine training).

    Examples
    --------
    >>> from slidelearn.utils._mpi import check_comm
    >>> check_comm(None) is None
    True
    """
    if comm is None:
        return None
    MPI = import_mpi()
    if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
        raise TypeError(f"comm must be an mpi4py intra-communicator such as "
                        f"MPI.COMM_WORLD, or None; got {comm!r}.")
    return comm


def rank_threads(comm, n_jobs):
    """Threads for this rank: an explicit ``n_jobs`` wins; otherwise this rank's
    share of the cores it may use, divided among the ranks on its node.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The training communicator.
    n_jobs : int or None
        The estimator's ``n_jobs``.

    Returns
    -------
    n_threads : int
        At least 1.

    Examples
    --------
    >>> from mpi4py import MPI  # doctest: +SKIP
    >>> from slidelearn.utils._mpi import rank_threads
    >>> rank_threads(MPI.COMM_WORLD, None) >= 1  # doctest: +SKIP
    True
    """
    if n_jobs is not None:
        return effective_n_threads(n_jobs)
    MPI = import_mpi()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        on_node = node.Get_size()
    finally:
        node.Free()
    return max(1, effective_n_threads(None) // on_node)


@contextmanager
def raise_together(comm):
    """Run a block on every rank and raise on every rank if it raised on any.

    Input validation is local, but the collectives that follow it are not: a rank
    that raised alone would leave the others waiting. Wrapped in this, the rank that
    failed raises its own exception and the others raise a ``ValueError`` naming
    that rank and its message.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The training communicator.

    Examples
    --------
    >>> from mpi4py import MPI  # doctest: +SKIP
    >>> from slidelearn.utils._mpi import raise_together
    >>> with raise_together(MPI.COMM_WORLD):  # doctest: +SKIP
    ...     pass
    """
    err = None
    try:
        yield
    except Exception as exc:  # re-raised below, after the others know
        err = exc
    msgs = comm.allgather(None if err is None else f"{type(err).__name__}: {err}")
    if err is not None:
        raise err
    for r, msg in enumerate(msgs):
        if msg is not None:
            raise ValueError(f"rank {r} of {len(msgs)} failed: {msg}")


def agree(comm, value, what):
    """Check that every rank passes the same ``value`` (compared with ``==`` on
    ``repr``); raise ``ValueError`` naming ``what`` and the values otherwise.

    Examples
    --------
    >>> from mpi4py import MPI  # doctest: +SKIP
    >>> from slidelearn.utils._mpi import agree
    >>> agree(MPI.COMM_WORLD, 3, "n_features")  # doctest: +SKIP
    3
    """
    values = comm.allgather(value)
    if any(repr(v) != repr(values[0]) for v in values[1:]):
        raise ValueError(f"All ranks must agree on {what}; got "
                         + ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values)))
    return value


def shared_seed(comm, seed):
    """Rank 0's seed, on every rank (so every rank draws the same initial model).

    Examples
    --------
    >>> from mpi4py import MPI  # doctest: +SKIP
    >>> from slidelearn.utils._mpi import shared_seed
    >>> shared_seed(MPI.COMM_WORLD, 7)  # doctest: +SKIP
    7
    """
    return comm.bcast(int(seed), root=0)


def allreduce_(comm, arr, op="sum"):
    """In-place Allreduce of a contiguous numpy array (sum, max, min, or bitwise or:
    "bor").

    Examples
    --------
    >>> import numpy as np
    >>> from mpi4py import MPI  # doctest: +SKIP
    >>> from slidelearn.utils._mpi import allreduce_
    >>> allreduce_(MPI.COMM_WORLD, np.ones(3))  # doctest: +SKIP
    array([1., 1., 1.])
    """
    MPI = import_mpi()
    if not arr.flags.c_contiguous:
        raise ValueError("allreduce_ needs a C-contiguous array")
    comm.Allreduce(MPI.IN_PLACE, arr, op={"sum": MPI.SUM, "max": MPI.MAX,
                                          "min": MPI.MIN, "bor": MPI.BOR}[op])
    return arr


def alltoallv(comm, send, counts, request=False):
    """Exchange variable-size blocks: ``send`` holds, in rank order, ``counts[q]``
    items (rows of ``send``) for each rank ``q``. Returns ``(recv, recv_counts)``, or
    ``(recv, recv_counts, req)`` for a non-blocking exchange (``recv`` is valid once
    ``req.Wait()`` returned).

    Examples
    --------
    >>> import numpy as np
    >>> from mpi4py import MPI  # doctest: +SKIP
    >>> from slidelearn.utils._mpi import alltoallv
    >>> comm = MPI.COMM_WORLD  # doctest: +SKIP
    >>> recv, counts = alltoallv(comm, np.arange(comm.size), np.ones(comm.size, int))  # doctest: +SKIP
    """
    send = np.ascontiguousarray(send)
    counts = np.asarray(counts, dtype=np.int64)
    recv_counts = np.empty_like(counts)
    comm.Alltoall(counts, recv_counts)
    row = int(np.prod(send.shape[1:], dtype=np.int64)) if send.ndim > 1 else 1
    recv = np.empty((int(recv_counts.sum()),) + send.shape[1:], dtype=send.dtype)
    req = alltoallv_known(comm, send, counts * row, recv, recv_counts * row, request)
    return (recv, recv_counts, req) if request else (recv, recv_counts)


def alltoallv_known(comm, send, send_counts, recv, recv_counts, request=False):
    """Exchange with counts both sides already know (in elements, per rank):
    ``send`` and ``recv`` are contiguous arrays of one dtype, blocks in rank order.
    Returns the request of a non-blocking exchange when ``request`` is true.

    Examples
    --------
    >>> import numpy as np
    >>> from mpi4py import MPI  # doctest: +SKIP
    >>> from slidelearn.utils._mpi import alltoallv_known
    >>> comm = MPI.COMM_WORLD  # doctest: +SKIP
    >>> ones = np.ones(comm.size, int)  # doctest: +SKIP
    >>> recv = np.empty(comm.size)  # doctest: +SKIP
    >>> alltoallv_known(comm, np.arange(comm.size, dtype=float), ones, recv, ones)  # doctest: +SKIP
    """
    MPI = import_mpi()
    if send.dtype != recv.dtype or not (send.flags.c_contiguous and recv.flags.c_contiguous):
        raise ValueError("alltoallv_known needs contiguous arrays of one dtype")
    sc = np.asarray(send_counts, dtype=np.int64)
    rc = np.asarray(recv_counts, dtype=np.int64)
    sd = np.concatenate([[0], np.cumsum(sc)[:-1]]).astype(np.int64)
    rd = np.concatenate([[0], np.cumsum(rc)[:-1]]).astype(np.int64)
    mtype = MPI._typedict[send.dtype.char]
    args = ([send.reshape(-1), (sc, sd), mtype], [recv.reshape(-1), (rc, rd), mtype])
    if request:
        return comm.Ialltoallv(*args)
    comm.Alltoallv(*args)
    return None


def local_batches(batch_size, n_ranks):
    """Rows each rank contributes to a global batch of ``batch_size``: ``batch_size //
    n_ranks``, one more for the first ``batch_size % n_ranks`` ranks.

    Examples
    --------
    >>> from slidelearn.utils._mpi import local_batches
    >>> local_batches(10, 4).tolist()
    [3, 3, 2, 2]
    """
    return np.array([batch_size // n_ranks + (q < batch_size % n_ranks)
                     for q in range(n_ranks)], dtype=np.int64)


def step_plan(comm, n_rows, batch_size):
    """The steps of an epoch in which every rank trains on its ``n_rows`` rows.
    Collective.

    Returns
    -------
    n_local : ndarray of int64
        Rows of every rank.
    lbs : ndarray of int64
        Rows every rank contributes per step (:func:`local_batches`).
    steps : int
        Steps of the epoch: until the last rank runs out of rows.

    Examples
    --------
    >>> from mpi4py import MPI  # doctest: +SKIP
    >>> from slidelearn.utils._mpi import step_plan
    >>> step_plan(MPI.COMM_WORLD, 100, 32)[2]  # doctest: +SKIP
    4
    """
    N = comm.Get_size()
    n_local = np.array(comm.allgather(int(n_rows)), dtype=np.int64)
    lbs = local_batches(int(min(batch_size, max(n_local.sum(), 1))), N)
    live = lbs > 0
    if np.any(n_local[~live] > 0):
        raise ValueError(f"batch_size={batch_size} gives some of the {N} ranks no rows per "
                         "step; use batch_size >= the number of ranks.")
    steps = int(max(-(-n_local[live] // lbs[live]))) if live.any() else 0
    return n_local, lbs, steps
