"""slidelearn.utils._mpi helpers that need no MPI launch (stub communicators)."""
import types

import numpy as np
import pytest

from slidelearn._dlrm import _testing
from slidelearn.utils import _mpi


class _NodeComm:
    def __init__(self, size):
        self.size, self.freed = size, False

    def Get_size(self):
        return self.size

    def Free(self):
        self.freed = True


class _Comm:
    def __init__(self, on_node):
        self.node = _NodeComm(on_node)

    def Split_type(self, kind):
        assert kind == "shared"
        return self.node


def test_rank_threads_share_the_node(monkeypatch):
    monkeypatch.setattr(_mpi, "import_mpi", lambda: types.SimpleNamespace(COMM_TYPE_SHARED="shared"))
    monkeypatch.setattr(_mpi, "effective_n_threads",
                        lambda n_jobs: 16 if n_jobs is None else int(n_jobs))
    comm = _Comm(on_node=4)
    assert _mpi.rank_threads(comm, None) == 4 and comm.node.freed
    assert _mpi.rank_threads(_Comm(on_node=32), None) == 1  # never 0
    assert _mpi.rank_threads(_Comm(on_node=4), 3) == 3      # explicit n_jobs wins


def test_plan_shards_places_whole_tables_then_splits():
    # no budget: whole tables, largest first on the least loaded rank
    shards = _testing.plan_shards([10, 400, 300, 20], 4, 2, None)
    assert sorted((t, lo, hi) for _, t, lo, hi in shards) == [
        (0, 0, 10), (1, 0, 400), (2, 0, 300), (3, 0, 20)]
    assert {t: q for q, t, _, _ in shards}[1] != {t: q for q, t, _, _ in shards}[2]
    # a 400-row table of 4-byte rows does not fit a 1,000-byte rank: split over ranks
    shards = _testing.plan_shards([400, 30], 4, 2, 1000)
    split = sorted((lo, hi) for _, t, lo, hi in shards if t == 0)
    assert split[0][0] == 0 and split[-1][1] == 400 and len(split) == 2
    assert all(a[1] == b[0] for a, b in zip(split, split[1:]))
    loads = np.zeros(2)
    for q, t, lo, hi in shards:
        loads[q] += 4 * (hi - lo)
    assert loads.max() <= 1000
    with pytest.raises(ValueError, match="rank_memory_budget"):
        _testing.plan_shards([400, 300], 4, 2, 600)


def test_table_rows_do_not_depend_on_the_split():
    n, d = 3 * _testing.ROWS_PER_BLOCK // 2, 4
    full = _testing.init_table_rows(np.empty((n, d), np.float32), 7, 2, 0, n, n)
    part = _testing.init_table_rows(np.empty((n - 1000 - 5, d), np.float32), 7, 2, 1000,
                                        n - 5, n)
    np.testing.assert_array_equal(full[1000:n - 5], part)
    bound = np.sqrt(1.0 / n)
    assert np.abs(full).max() <= bound and full.std() > bound / 3


def test_check_comm_rejects_non_communicators():
    pytest.importorskip("mpi4py")
    assert _mpi.check_comm(None) is None
    with pytest.raises(TypeError, match="communicator"):
        _mpi.check_comm("COMM_WORLD")
