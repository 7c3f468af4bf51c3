"""Hybrid-parallel DLRM training over MPI (the estimators' ``comm`` parameter).

As in the CPU-cluster DLRM work:

* the MLPs are data-parallel: every rank holds them whole, runs its own rows through
  them and the flat gradient vector ``grad`` is summed with one (non-blocking)
  allreduce per step, after which every rank applies the same update;
* the embedding tables are model-parallel: each table lives on one rank, or, when it
  is larger than a rank's ``rank_memory_budget``, is split by rows over several.
  Per step the ids of every rank's bags are sent to the ranks that own them
  (all-to-all), the owners pool them and send the pooled embeddings back (all-to-all,
  overlapped with the bottom MLP), and in the backward pass the gradients of the
  pooled embeddings travel the same way back to the owners, which apply the fused
  backward + update. A bag of a row-split table is the sum of its shards' partial
  pools.

Step semantics (``slidelearn.utils._mpi.step_plan``): ``batch_size`` is the global
batch. Rank ``r`` takes
``batch_size // N + (r < batch_size % N)`` of its own rows per step; a step's global
batch is the concatenation, in rank order, of the ranks' local batches, and the
gradient is the mean over it. With a deterministic configuration the model is
therefore the one a single process trains on those global batches.

The functions take the model (``_state.DLRMState``), this rank's ``TableShards``, the
epoch's ``TrainParams`` and a ``_kernels.Workspace`` (whose ``grad`` is the allreduced
gradient), not the estimator.
"""
import time

import numpy as np

from ..utils._mpi import alltoallv, alltoallv_known, import_mpi, local_batches, step_plan
from . import _kernels
from ._inputs import bag_positions
from ._state import EmbeddingTables, TableShards, init_table_rows


def plan_shards(table_sizes, row_bytes, n_ranks, budget):
    """Place the tables on ranks: whole tables, largest first, on the least loaded
    rank that has room; a table that fits on no rank is split by rows over the ranks
    in proportion to their free budget.

    Returns a list of ``(rank, table, lo, hi)`` (rows ``lo:hi`` of the table), sorted.
    Raises ``ValueError`` when the tables do not fit in ``n_ranks * budget``.
    """
    sizes = np.asarray(table_sizes, dtype=np.int64)
    loads = np.zeros(n_ranks, dtype=np.float64)
    shards = []
    for t in sorted(range(len(sizes)), key=lambda t: (-sizes[t], t)):
        n, nbytes = int(sizes[t]), float(sizes[t]) * row_bytes
        r = int(np.argmin(loads))
        if budget is None or loads[r] + nbytes <= budget:
            shards.append((r, t, 0, n))
            loads[r] += nbytes
            continue
        free = np.maximum(budget - loads, 0.0)
        rows_free = np.floor(free / row_bytes)
        if rows_free.sum() < n:
            raise ValueError(
                f"The embedding tables need {_nbytes(float(sizes.sum()) * row_bytes)} (with "
                f"their optimizer state), more than {n_ranks} ranks x rank_memory_budget="
                f"{_nbytes(budget)} can hold once placed: raise rank_memory_budget, add ranks "
                "or lower table_sizes / embedding_dim.")
        cum = np.minimum(np.floor(np.cumsum(rows_free) * n / rows_free.sum()), n)
        bounds = np.concatenate([[0], cum]).astype(np.int64)
        bounds[-1] = n
        for q in range(n_ranks):
            if bounds[q + 1] > bounds[q]:
                shards.append((q, t, int(bounds[q]), int(bounds[q + 1])))
                loads[q] += (bounds[q + 1] - bounds[q]) * row_bytes
    return sorted(shards)


def _nbytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} bytes" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024


def make_tables(comm, d, table_sizes, table_offsets, adagrad, budget, seed=None,
                full=None):
    """This rank's ``TableShards`` (rows of ``d`` entries, with Adagrad accumulators
    when ``adagrad``) placed within ``budget`` bytes a rank, initialised from ``seed``
    or sliced from ``full`` (an ``EmbeddingTables`` holding every table)."""
    row_bytes = 4 * d + (4 if adagrad else 0)
    shards = plan_shards(table_sizes, row_bytes, comm.Get_size(), budget)
    st = TableShards(comm.Get_size(), shards, np.asarray(table_offsets, dtype=np.int64))
    mine = st.of_rank(comm.Get_rank())
    offs = st.local_offsets(comm.Get_rank())
    n_local = int(offs[-1])
    E = np.empty((n_local, d), dtype=np.float32)
    E_acc = np.zeros(n_local if adagrad else 0, dtype=np.float32)
    for (_, t, lo, hi), a in zip(mine, offs[:-1]):
        if full is None:
            init_table_rows(E[a:a + hi - lo], seed, t, lo, hi, int(table_sizes[t]))
        else:
            g = int(table_offsets[t])
            E[a:a + hi - lo] = full.E[g + lo:g + hi]
            if adagrad:
                E_acc[a:a + hi - lo] = full.E_acc[g + lo:g + hi]
    st.local = EmbeddingTables(E, E_acc, offs)
    largest = max((int(st.local_offsets(q)[-1]) for q in range(comm.Get_size())), default=0)
    st.index_dtype = np.int32 if largest < 2**31 else np.int64
    return st


def assemble(comm, st, n_rows, adagrad):
    """The full tables (an ``EmbeddingTables``) on every rank, each shard broadcast
    from its owner into place."""
    d, me = st.d, comm.Get_rank()
    E = np.empty((n_rows, d), dtype=np.float32)
    E_acc = np.zeros(n_rows if adagrad else 0, dtype=np.float32)
    for q in range(comm.Get_size()):
        offs = st.local_offsets(q)
        for (_, t, lo, hi), a in zip(st.of_rank(q), offs[:-1]):
            g = int(st.table_offsets[t])
            block = E[g + lo:g + hi]
            if q == me:
                block[...] = st.local.E[a:a + hi - lo]
            comm.Bcast(block, root=q)
            if adagrad:
                acc = E_acc[g + lo:g + hi]
                if q == me:
                    acc[...] = st.local.E_acc[a:a + hi - lo]
                comm.Bcast(acc, root=q)
    return EmbeddingTables(E, E_acc, st.table_offsets)


class _Exchange:
    """The bags of one step, moved to the ranks owning their rows."""

    def __init__(self, comm, st, bags, rows, batch_sizes, has_wts):
        me, N = comm.Get_rank(), comm.Get_size()
        B = len(rows)
        T = bags.ptr.shape[0]
        # this rank's ids (stacked global rows) per table, with their sample index
        per_table = []
        for t in range(T):
            idx, lens = bag_positions(bags.ptr[t], rows)
            per_table.append((bags.ids[idx].astype(np.int64), np.repeat(np.arange(B), lens),
                              bags.wts[idx] if bags.wts.size else None, lens))
        int_parts, wt_parts, int_counts = [], [], np.zeros(N, dtype=np.int64)
        for q in range(N):
            mine_q = st.of_rank(q)
            offs = st.local_offsets(q)
            lens_q, ids_q, wts_q = [], [], []
            for (_, t, lo, hi), a in zip(mine_q, offs[:-1]):
                ids, sample, wts, lens = per_table[t]
                g = int(st.table_offsets[t])
                if lo == 0 and hi == st.table_offsets[t + 1] - g:  # the whole table
                    sel_ids, sel_lens, sel_wts = ids, lens, wts
                else:
                    m = (ids >= g + lo) & (ids < g + hi)
                    sel_ids, sel_lens = ids[m], np.bincount(sample[m], minlength=B)
                    sel_wts = wts[m] if wts is not None else None
                lens_q.append(sel_lens)
                ids_q.append(sel_ids - (g + lo) + a)
                if has_wts:
                    wts_q.append(sel_wts if sel_wts is not None
                                 else np.ones(len(sel_ids), dtype=np.float32))
            part = np.concatenate(lens_q + ids_q) if lens_q else np.empty(0, np.int64)
            int_parts.append(part.astype(np.int64, copy=False))
            int_counts[q] = len(part)
            if has_wts:
                wt_parts.append(np.concatenate(wts_q) if wts_q else np.empty(0, np.float32))
        others = np.arange(N) != me
        t0 = time.perf_counter()
        recv, recv_counts = alltoallv(comm, np.concatenate(int_parts), int_counts)
        self.sent = {"ids": int(int_counts[others].sum()) * 8}
        if has_wts:
            w_counts = np.array([len(w) for w in wt_parts], dtype=np.int64)
            recv_w, _ = alltoallv(comm, np.concatenate(wt_parts).astype(np.float32), w_counts)
            self.sent["ids"] += int(w_counts[others].sum()) * 4
        self.comm_time = time.perf_counter() - t0
        # assemble this rank's bags over the global batch (senders in rank order)
        mine = st.of_rank(me)
        S = len(mine)
        n_glob = int(sum(batch_sizes))
        bounds = np.concatenate([[0], np.cumsum(recv_counts)])
        w_pos = 0
        lens_all = np.zeros((S, n_glob), dtype=np.int64)
        id_chunks = [[] for _ in range(S)]
        wt_chunks = [[] for _ in range(S)]
        col = 0
        for p in range(N):
            msg = recv[bounds[p]:bounds[p + 1]]
            Bp = int(batch_sizes[p])
            lens_p = msg[:S * Bp].reshape(S, Bp)
            lens_all[:, col:col + Bp] = lens_p
            pos = S * Bp
            for s in range(S):
                k = int(lens_p[s].sum())
                id_chunks[s].append(msg[pos:pos + k])
                if has_wts:
                    wt_chunks[s].append(recv_w[w_pos:w_pos + k])
                    w_pos += k
                pos += k
            col += Bp
        ptr = np.zeros((S, n_glob + 1), dtype=np.int64)
        base = 0
        for s in range(S):
            ptr[s, 1:] = np.cumsum(lens_all[s])
            ptr[s] += base
            base = int(ptr[s, -1])
        ids = (np.concatenate([c for ch in id_chunks for c in ch]) if S
               else np.empty(0, np.int64)).astype(st.index_dtype)
        wts = (np.concatenate([c for ch in wt_chunks for c in ch]).astype(np.float32)
               if has_wts and S else np.empty(0, np.float32))
        self.ptr, self.ids, self.wts = ptr, ids, wts
        self.comm, self.st = comm, st
        self.batch_sizes, self.n_glob, self.n_tables = batch_sizes, n_glob, T

    def pool(self, work, n_threads):
        """Pool this rank's shards for the global batch and start sending each rank the
        rows of its samples; ``finish_pool`` waits and sums the shards per table."""
        comm, st = self.comm, self.st
        N, me = comm.Get_size(), comm.Get_rank()
        d, S = st.d, len(st.of_rank(me))
        P = np.empty((self.n_glob, S, d), dtype=np.float32)
        _kernels.bags_pool(self.ptr, self.ids, self.wts, st.local, work, P, n_threads)
        Bme = int(self.batch_sizes[me])
        self._S = [len(st.of_rank(q)) for q in range(N)]
        self._recv = np.empty(Bme * sum(self._S) * d, dtype=np.float32)
        send_counts = np.asarray(self.batch_sizes, dtype=np.int64) * S * d
        recv_counts = Bme * np.asarray(self._S, dtype=np.int64) * d
        self._P = P
        self.sent["pooled"] = int(send_counts[np.arange(N) != me].sum()) * 4
        self._req = alltoallv_known(comm, P, send_counts, self._recv, recv_counts,
                                    request=True)

    def finish_pool(self):
        st, N = self.st, self.comm.Get_size()
        t0 = time.perf_counter()
        self._req.Wait()
        self.comm_time += time.perf_counter() - t0
        d, Bme = st.d, int(self.batch_sizes[self.comm.Get_rank()])
        Z = np.zeros((Bme, self.n_tables, d), dtype=np.float32)
        pos = 0
        for q in range(N):
            block = self._recv[pos:pos + Bme * self._S[q] * d].reshape(Bme, self._S[q], d)
            pos += block.size
            for s, (_, t, _, _) in enumerate(st.of_rank(q)):
                Z[:, t] += block[:, s]
        del self._P, self._recv
        return Z

    def push_grad(self, dZ, optimizer, lr, lr_scales, eps, alpha, work, n_threads):
        """Send the gradients of the pooled embeddings to the shard owners, which
        apply the fused backward + update to their rows (shard ``j`` of this rank at
        ``lr * lr_scales[j]``)."""
        comm, st = self.comm, self.st
        N, me, d = comm.Get_size(), comm.Get_rank(), st.d
        S = [len(st.of_rank(q)) for q in range(N)]
        send = np.concatenate(
            [dZ[:, [t for _, t, _, _ in st.of_rank(q)]].reshape(-1) for q in range(N)]
        ).astype(np.float32, copy=False) if N else np.empty(0, np.float32)
        Bme = int(self.batch_sizes[me])
        send_counts = Bme * np.asarray(S, dtype=np.int64) * d
        recv_counts = np.asarray(self.batch_sizes, dtype=np.int64) * S[me] * d
        G = np.empty((self.n_glob, S[me], d), dtype=np.float32)
        self.sent["grad"] = int(send_counts[np.arange(N) != me].sum()) * 4
        t0 = time.perf_counter()
        alltoallv_known(comm, np.ascontiguousarray(send), send_counts, G, recv_counts)
        self.comm_time += time.perf_counter() - t0
        _kernels.bags_update(self.ptr, self.ids, self.wts, G, st.local, work, optimizer, lr,
                             eps, alpha, n_threads, lr_scales)


def train_epoch(comm, state, st, params, work, dense, bags, Y, order, epoch, n_threads,
                has_wts, stats=None):
    """One pass of every rank over its rows ``order`` (epoch ``epoch`` of this call);
    returns the mean loss over all ranks' rows. Collective.

    ``state`` is the model (``DLRMState``, its MLP replicated on every rank), ``st``
    this rank's ``TableShards``, ``params`` the ``TrainParams`` of the epoch and
    ``work`` the ``_kernels.Workspace`` the steps write their scratch to (reserved
    here). ``state.step`` counts the steps.

    ``stats`` (a dict), when given, accumulates this rank's ``steps``, the bytes it
    sent to other ranks (``ids``: bag ids and weights, ``pooled``: pooled
    embeddings, ``grad``: their gradients, ``allreduce``: the MLP gradient, counted
    as a ring allreduce sends it, 2 (N - 1) / N of its size) and the seconds spent
    waiting on communication (``comm_s``) out of the total (``total_s``)."""
    MPI = import_mpi()
    N, me = comm.Get_size(), comm.Get_rank()
    n_local, lbs, steps = step_plan(comm, len(order), params.batch_size)
    lrs = params.learning_rates(state.step, steps, epoch)
    alpha, eps = float(params.alpha), float(params.epsilon)
    emb_alpha = float(params.embedding_alpha)
    # each shard this rank owns learns at its table's scale (shards in st.local's order)
    scales = params.table_scales(len(st.table_offsets) - 1)[
        [t for _, t, _, _ in st.of_rank(me)]]
    work.reserve(state, int(lbs[me]) if lbs[me] else 1, train=True, tables=st.local,
                 slots=params.needs_slots(state))
    total = np.zeros(1, dtype=np.float64)
    t_start = time.perf_counter()
    for s in range(steps):
        sizes = np.clip(n_local - s * lbs, 0, lbs)
        n_glob = int(sizes.sum())
        rows = np.ascontiguousarray(order[s * lbs[me]: s * lbs[me] + sizes[me]], dtype=np.int64)
        ex = _Exchange(comm, st, bags, rows, sizes, has_wts)
        ex.pool(work, n_threads)
        Xb = np.ascontiguousarray(dense[rows])
        _kernels.mlp_bottom_forward(Xb, state, work, n_threads)  # overlaps the pooling
        Z = ex.finish_pool()
        dZ = np.empty_like(Z)
        loss = _kernels.mlp_backward(Z, np.ascontiguousarray(Y[rows]), 1.0 / n_glob,
                                     alpha / N, state, work, dZ, n_threads)
        total += loss
        req = comm.Iallreduce(MPI.IN_PLACE, work.grad, op=MPI.SUM)
        ex.push_grad(dZ, state.optimizer, float(lrs[s]), scales, eps, emb_alpha, work,
                     n_threads)
        t1 = time.perf_counter()
        req.Wait()
        ex.comm_time += time.perf_counter() - t1
        _kernels.mlp_update(state, work, float(lrs[s]), eps, n_threads)
        if stats is not None:
            ex.sent["allreduce"] = int(work.grad.nbytes * 2 * (N - 1) // N)
            for key, v in ex.sent.items():
                stats[key] = stats.get(key, 0) + v
            stats["comm_s"] = stats.get("comm_s", 0.0) + ex.comm_time
            stats["steps"] = stats.get("steps", 0) + 1
    state.step += steps
    if stats is not None:
        stats["total_s"] = stats.get("total_s", 0.0) + time.perf_counter() - t_start
    comm.Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
    return float(total[0] / max(n_local.sum(), 1))


def forward(comm, state, st, dense, bags, n_threads, batch_size=4096):
    """Outputs (before the link function) of this rank's rows of the model ``state``
    whose tables are spread as ``st``. Collective."""
    N, me = comm.Get_size(), comm.Get_rank()
    n = dense.shape[0]
    n_local = np.array(comm.allgather(n), dtype=np.int64)
    lbs = local_batches(batch_size * N, N)
    steps = int(max(-(-n_local // lbs)))
    work = _kernels.Workspace().reserve(state, int(lbs[me]))
    out = np.empty((n, state.layout.k), dtype=np.float32)
    has_wts = bool(comm.allreduce(int(bags.wts.size > 0)))
    for s in range(steps):
        sizes = np.clip(n_local - s * lbs, 0, lbs)
        rows = np.arange(s * lbs[me], s * lbs[me] + sizes[me], dtype=np.int64)
        ex = _Exchange(comm, st, bags, rows, sizes, has_wts)
        ex.pool(work, n_threads)
        _kernels.mlp_bottom_forward(np.ascontiguousarray(dense[rows]), state, work,
                                    n_threads)
        Z = ex.finish_pool()
        _kernels.mlp_forward_top(Z, state, work, out[rows[0]:rows[0] + len(rows)]
                                 if len(rows) else out[:0], n_threads)
    return out
