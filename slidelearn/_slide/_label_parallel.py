"""Label-parallel SLIDE training over MPI (``SlideClassifier(comm=...)``).

Each rank owns a contiguous slice of the output neurons (rows of ``W_out``), their
Adam moments and their LSH hash tables (the hash functions are shared); the input
and hidden layers are replicated. A step of a global batch runs as follows:

1. every rank computes the hidden activations of its own rows;
2. the last hidden activations and the label lists of the global batch are shared
   with allgather;
3. every rank scores *its* slice for every sample of the global batch: the sample's
   true labels that fall in the slice, the neurons its tables retrieve and random
   neurons of the slice up to its share of ``min_active``;
4. the softmax normalisers are combined: an allgather of each rank's (max, sum of
   exp) per sample;
5. every rank computes the gradients of its active neurons and its part of d loss /
   d h, which a reduce-scatter sums and hands to the rows' owners;
6. every rank back-propagates its own rows through the hidden and input layers; the
   dense gradients are summed with an allreduce, the sparse input-layer gradients
   over the union of the rows any rank touched;
7. lazy Adam: each rank updates the output neurons of its slice that received
   gradients, and all ranks apply the same update to the replicated layers.

Batches follow the DLRM convention (``slidelearn._dlrm._distributed``): ``batch_size``
is the global batch, each rank contributes ``batch_size // N`` (+1 for the first
``batch_size % N`` ranks) of its rows per step.

The functions here take the model's parts (its ``SlideState``, ``LSHIndex``,
``RehashSchedule``, ``_network.Workspace`` and ``SlideParams``), not the estimator:
``SlideClassifier._fit_mpi`` validates, calls them and keeps the results.
"""
import time

import numpy as np

from slidelearn._slide import _hashing, _network
from slidelearn.utils._mpi import import_mpi, step_plan


def label_bounds(n_labels, n_ranks):
    """First label of each rank's slice, and the end (``n_ranks + 1`` values)."""
    return (np.arange(n_ranks + 1, dtype=np.int64) * n_labels) // n_ranks


def agree_classes(comm, classes):
    """Raise ``ValueError`` on every rank unless every rank has the same ``classes``
    (compared through a digest, so that long arrays cost one small allgather).
    Collective."""
    import hashlib
    classes = np.asarray(classes)
    digest = hashlib.sha1(repr(classes.tolist()).encode()).hexdigest()
    head = repr(classes[:5].tolist()) + ("..." if len(classes) > 5 else "")
    seen = comm.allgather((len(classes), digest, head))
    if len({d for _, d, _ in seen}) > 1:
        raise ValueError("All ranks must pass the same classes; got "
                         + ", ".join(f"rank {r}: {n} classes {text}"
                                     for r, (n, _, text) in enumerate(seen)))


# Parameters a rank may set on its own: they do not change the model it trains.
_LOCAL_PARAMS = ("comm", "n_jobs", "verbose", "callback", "random_state")


def agree_params(comm, params):
    """Raise ``ValueError`` on every rank, naming the parameters, unless every rank's
    estimator parameters ``params`` (``get_params(deep=False)``) are the same for
    training (all but ``comm``, ``n_jobs``, ``verbose``, ``callback`` and
    ``random_state``, whose seed rank 0 broadcasts). Collective."""
    mine = {k: repr(v) for k, v in params.items() if k not in _LOCAL_PARAMS}
    seen = comm.allgather(mine)
    bad = sorted(k for k in mine if any(p.get(k) != mine[k] for p in seen))
    if bad:
        raise ValueError("All ranks must fit with the same parameters; they differ in "
                         + "; ".join(f"{k} (" + ", ".join(f"rank {r}: {p.get(k)}"
                                                          for r, p in enumerate(seen)) + ")"
                                     for k in bad))


def to_slice(comm, state, lsh, label_slice, n_labels_total, rng, n_threads, bucket_size,
             reservoir):
    """Keep only this rank's slice of the output layer of ``state`` (and its Adam
    state), unless it holds just that slice already (``label_slice``), and rebuild the
    tables of ``lsh`` from it (local neuron ids), with a seed from ``rng``. Returns the
    slice (lo, hi). Collective."""
    bounds = label_bounds(n_labels_total, comm.Get_size())
    lo, hi = int(bounds[comm.Get_rank()]), int(bounds[comm.Get_rank() + 1])
    if label_slice != (lo, hi):
        state.set_output_arrays({k: np.ascontiguousarray(a[lo:hi])
                                 for k, a in state.output_arrays().items()})
    center = global_center(comm, state, n_threads)
    state.hash_output(lsh, int(rng.integers(0, 2**63 - 1)), n_threads, bucket_size,
                      reservoir, center=center)
    return lo, hi


def assemble(comm, state, n_labels_total):
    """Gather every rank's slice: the whole output layer of ``state`` on every rank.
    Collective."""
    MPI = import_mpi()
    bounds = label_bounds(n_labels_total, comm.Get_size())
    sizes = np.diff(bounds)
    full_arrays = {}
    for k, part in state.output_arrays().items():
        part = np.ascontiguousarray(part)
        row = int(np.prod(part.shape[1:], dtype=np.int64))
        full = np.empty((n_labels_total,) + part.shape[1:], dtype=part.dtype)
        comm.Allgatherv(part, [full, (sizes * row, bounds[:-1] * row), MPI.FLOAT])
        full_arrays[k] = full
    state.set_output_arrays(full_arrays)


def output_bytes(n_labels, H):
    """Bytes of a whole output layer with its Adam moments (what fit gathers)."""
    return 3 * 4 * n_labels * (H + 1)


def check_sharded_comm(comm, n_ranks):
    """The communicator (the estimator's ``comm`` parameter) a model whose output layer
    is spread over ``n_ranks`` ranks predicts with."""
    from slidelearn.utils._mpi import check_comm
    comm = check_comm(comm)
    if comm is None or comm.Get_size() != n_ranks:
        raise ValueError(
            f"This model's output layer is split over {n_ranks} ranks (it exceeded "
            "rank_memory_budget, so fit did not gather it): predict collectively, each rank "
            "with its own rows, after set_params(comm=...) with a communicator of "
            f"{n_ranks} ranks in the order of the fit. decision_function and "
            "predict_proba, which are dense over all labels, are not available for it.")
    return comm


def topk(comm, state, lsh, Hm, k, mode, n_threads, *, label_slice, n_labels_total,
         label_counts, head_labels, threshold, max_candidates):
    """Top-k labels (indices) and scores of this rank's rows, of last hidden activations
    ``Hm``, for a model whose output layer is spread over the ranks: every rank ranks
    its slice ``label_slice`` of ``state`` for the rows of all ranks, and each row's
    owner merges the candidates. ``label_counts`` (of all labels), ``head_labels``,
    ``threshold`` and ``max_candidates``: the estimator's for LSH inference (see
    ``SlideClassifier``'s ``inference_*`` parameters). Collective."""
    from slidelearn.utils._threads import single_threaded_blas
    N, me = comm.Get_size(), comm.Get_rank()
    lo, hi = label_slice
    H_all, counts = _allgatherv(comm, Hm)
    k_loc = min(k, hi - lo)
    if mode == "lsh":
        local = label_counts[lo:hi]
        n_head = min(-(-head_labels * (hi - lo) // n_labels_total), hi - lo)
        order = np.argsort(-local, kind="stable")[:n_head + 2 * k_loc].astype(np.int32)
        with single_threaded_blas():  # dense SimHash projections: sgemv per row
            idx, sc, _ = _network.topk_lsh(H_all, state, lsh, k_loc, threshold, order,
                                           n_threads, max_candidates,
                                           min(n_head, len(order)))
    else:
        with single_threaded_blas():
            idx, sc = _network.topk_exact(H_all, state, k_loc, n_threads)
    cand = np.full((H_all.shape[0], k), -1, dtype=np.int32)
    score = np.full((H_all.shape[0], k), -np.inf, dtype=np.float32)
    cand[:, :k_loc] = np.where(idx >= 0, idx + lo, -1)
    score[:, :k_loc] = sc
    # each row's owner receives the candidates of every slice
    MPI = import_mpi()
    B = int(counts[me])
    send_counts = counts * k
    recv_c = np.empty((N, B, k), dtype=np.int32)
    recv_s = np.empty((N, B, k), dtype=np.float32)
    comm.Alltoallv([cand, send_counts, MPI.INT32_T], [recv_c, [B * k] * N, MPI.INT32_T])
    comm.Alltoallv([score, send_counts, MPI.FLOAT], [recv_s, [B * k] * N, MPI.FLOAT])
    all_c = recv_c.transpose(1, 0, 2).reshape(B, N * k)
    all_s = recv_s.transpose(1, 0, 2).reshape(B, N * k)
    best = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
    return (np.take_along_axis(all_c, best, axis=1),
            np.take_along_axis(all_s, best, axis=1))


def global_center(comm, state, n_threads):
    """Mean of the rows of the whole output layer (the tables hash centred rows).
    Collective."""
    MPI = import_mpi()
    W = state.W_out
    total = np.concatenate([_hashing.column_sums(W, n_threads), [W.shape[0]]])
    comm.Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
    return total[:-1] / max(total[-1], 1)


def _allgatherv(comm, arr):
    """Concatenation over ranks (in rank order) of the first axis of ``arr``."""
    MPI = import_mpi()
    arr = np.ascontiguousarray(arr)
    row = int(np.prod(arr.shape[1:], dtype=np.int64))
    counts = np.array(comm.allgather(arr.shape[0]), dtype=np.int64)
    out = np.empty((int(counts.sum()),) + arr.shape[1:], dtype=arr.dtype)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]]) * row
    comm.Allgatherv(arr, [out, (counts * row, displs), MPI._typedict[arr.dtype.char]])
    return out, counts


def train_epoch(comm, state, lsh, schedule, work, params, rng, X, Y_indptr, Y_indices, rows,
                n_threads, lr, stats, *, label_slice, n_labels_total, max_labels):
    """One pass of every rank over its rows ``rows`` (already in training order).

    ``state`` holds this rank's slice ``label_slice`` of the ``n_labels_total`` output
    neurons, ``lsh`` its tables (rebuilt when ``schedule`` says so); ``work`` is a
    ``_network.Workspace`` that is not transposed, ``params`` the ``SlideParams`` of the
    estimator and ``rng`` its generator (the same draws on every rank); ``max_labels``
    bounds the labels of a row over all ranks. ``stats``: a dict the communication
    times and volumes are added to, or None. Returns (mean loss, mean active neurons
    per sample over all ranks, training samples of all ranks). Collective."""
    MPI = import_mpi()
    N, me = comm.Get_size(), comm.Get_rank()
    lo, hi = label_slice
    n_local, lbs, steps = step_plan(comm, len(rows), params.batch_size)
    H = int(state.sizes[-1])
    a_last = int(state.a_off[-1])
    total_acts = int(np.sum(state.sizes))
    n_slice = hi - lo
    min_active = int(-(-params.min_active * n_slice // n_labels_total))
    cap = int(_network.active_capacity(n_slice, max_labels, params.n_tables,
                                       params.bucket_size, min_active))
    totals = np.zeros(2, dtype=np.float64)  # loss, active neurons
    n_seen = 0
    t_start = time.perf_counter()
    for s in range(steps):
        sizes = np.clip(n_local - s * lbs, 0, lbs)
        B = int(sizes.sum())
        batch = np.ascontiguousarray(rows[s * lbs[me]: s * lbs[me] + sizes[me]], dtype=np.int64)
        acts = np.empty((len(batch), total_acts), dtype=np.float32)
        # inverted dropout of this rank's rows, in place (hidden_backward masks alike)
        drop_seed = int(np.random.default_rng([int(rng.integers(0, 2**63 - 1)), me])
                        .integers(0, 2**63 - 1)) if params.dropout > 0 else 0
        _network.forward_acts(X.data, X.indices, X.indptr, batch, state, acts, n_threads,
                              params.dropout, drop_seed)
        h_mine = acts[:, a_last:a_last + H]
        t0 = time.perf_counter()
        H_all, _ = _allgatherv(comm, h_mine)
        counts = (Y_indptr[batch + 1] - Y_indptr[batch]).astype(np.int64)
        labels = (np.concatenate([Y_indices[Y_indptr[i]:Y_indptr[i + 1]] for i in batch])
                  if len(batch) else np.empty(0, np.int32)).astype(np.int32)
        counts_all, _ = _allgatherv(comm, counts)
        labels_all, _ = _allgatherv(comm, labels)
        comm_s = time.perf_counter() - t0
        # the true labels in this slice, in local ids
        owner = np.repeat(np.arange(B), counts_all)
        inside = (labels_all >= lo) & (labels_all < hi)
        y_ptr = np.concatenate([[0], np.cumsum(np.bincount(owner[inside], minlength=B))])
        y_loc = np.ascontiguousarray(labels_all[inside] - lo, dtype=np.int32)
        seed = int(rng.integers(0, 2**63 - 1))  # the same draw on every rank
        act = np.empty((B, max(cap, 1)), dtype=np.int32)
        n_act = np.empty(B, dtype=np.int32)
        logits = np.empty((B, max(cap, 1)), dtype=np.float32)
        mx = np.empty(B, dtype=np.float32)
        se = np.empty(B, dtype=np.float32)
        _network.slice_forward(H_all, y_ptr.astype(np.int64), y_loc, state, lsh, work,
                               min_active, params.active_threshold,
                               (seed ^ (0x9E3779B97F4A7C15 * (me + 1))) & (2**64 - 1),
                               act, n_act, logits, mx, se, n_threads)
        t0 = time.perf_counter()
        norms = np.empty((N, 2, B), dtype=np.float32)
        comm.Allgather(np.stack([mx, se]), norms)
        comm_s += time.perf_counter() - t0
        M = norms[:, 0].max(axis=0)
        with np.errstate(invalid="ignore", over="ignore"):
            S = np.where(norms[:, 1] > 0, norms[:, 1] * np.exp(norms[:, 0] - M), 0).sum(axis=0)
        inv_m = (1.0 / np.maximum(counts_all, 1)).astype(np.float32)
        weight = (counts_all.astype(np.float32) if params.pick_all
                  else np.ones(B, dtype=np.float32))
        dH = np.empty((B, H), dtype=np.float32)
        loss = _network.slice_backward(H_all, act, n_act, y_ptr.astype(np.int64), logits,
                                       M.astype(np.float32), S.astype(np.float32), inv_m,
                                       weight, 1.0 / B, state, work, dH, n_threads)
        t0 = time.perf_counter()
        dH_mine = np.empty((int(sizes[me]), H), dtype=np.float32)
        comm.Reduce_scatter(dH, dH_mine, recvcounts=(sizes * H).tolist(), op=MPI.SUM)
        comm_s += time.perf_counter() - t0
        _network.hidden_backward(X.data, X.indices, X.indptr, batch, acts, dH_mine, state,
                                 work, n_threads, params.dropout)
        dt, replicated_bytes = _combine_replicated(comm, work)
        comm_s += dt
        state.step += 1
        _network.adam_update(state, work, lr, params.beta_1, params.beta_2, params.epsilon,
                             params.alpha, state.step, n_threads)
        totals += (loss, float(n_act.sum()))
        n_seen += B
        rehash, redraw = schedule.advance(B)
        if redraw:
            lsh.redraw(rng)
        if rehash:
            center = global_center(comm, state, n_threads)
            state.hash_output(lsh, int(rng.integers(0, 2**63 - 1)), n_threads,
                              params.bucket_size, params.reservoir, center=center, work=work)
        if stats is not None:
            stats["comm_s"] = stats.get("comm_s", 0.0) + comm_s
            stats["steps"] = stats.get("steps", 0) + 1
            sent = {"activations": acts[:, :H].nbytes * (N - 1),
                    "normalisers": 8 * B * (N - 1),
                    "hidden_grad": dH.nbytes - dH_mine.nbytes,
                    "replicated_grad": replicated_bytes}
            for k, v in sent.items():
                stats[f"{k}_bytes"] = stats.get(f"{k}_bytes", 0) + v
    if stats is not None:
        stats["total_s"] = stats.get("total_s", 0.0) + time.perf_counter() - t_start
    comm.Allreduce(MPI.IN_PLACE, totals, op=MPI.SUM)  # losses: only slices' parts
    n_all = max(int(n_local.sum()), 1)
    return float(totals[0] / n_all), float(totals[1] / n_all), n_seen


def _combine_replicated(comm, work):
    """Sum the gradients of the replicated layers over the ranks: the dense layers
    whole, the input layer over the union of the rows any rank touched. Leaves them
    as ``adam_update`` expects (the touched rows in thread 0's list). Returns the seconds
    spent communicating and the bytes this rank sent."""
    MPI = import_mpi()
    stride = _network.THREAD_STRIDE
    g_dense = np.asarray(work.g_dense)
    g_in = np.asarray(work.g_in)
    in_list, in_count = np.asarray(work.in_list), np.asarray(work.in_count)
    # rows of the input layer this rank touched
    T = in_list.shape[0]
    mine = np.unique(np.concatenate([in_list[t, :in_count[t * stride]] for t in range(T)]))
    t0 = time.perf_counter()
    comm.Allreduce(MPI.IN_PLACE, g_dense[0], op=MPI.SUM)
    union = np.unique(np.concatenate(comm.allgather(mine))).astype(np.int32)
    G = np.ascontiguousarray(g_in[union])
    comm.Allreduce(MPI.IN_PLACE, G, op=MPI.SUM)
    dt = time.perf_counter() - t0
    g_in[union] = G
    np.asarray(work.in_flag)[union] = 1
    in_count[:] = 0
    in_list[0, :len(union)] = union
    in_count[0] = len(union)
    N = comm.Get_size()
    sent = int((g_dense[0].nbytes + G.nbytes) * 2 * (N - 1) // N + 4 * len(mine) * (N - 1))
    return dt, sent
