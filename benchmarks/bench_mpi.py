"""Distributed DLRM training on 1, 2 and 4 MPI ranks of one machine: time per step
and the bytes each rank sends per step, by kind of traffic.

The model is the DLRM benchmark's shape ``a`` (d=64, bottom 13-512-256-64, top
512-256-1, 8 tables, one id per table, global batch 2048) with 500,000 rows per table,
trained with plain SGD on random Criteo-like rows. Every rank holds 1/N of the rows
and, through ``rank_memory_budget``, about 1/N of the tables, so that the tables stay
spread over the ranks as they would on a cluster. Each rank runs one thread unless
``--threads`` says otherwise.

What is reported per rank count (rank 0's view; every rank sends about the same):

* ``ms/step``: wall time of a training step (mean over the timed steps);
* ``comm ms``: the part of it spent waiting on communication;
* bytes sent to other ranks per step: bag ids (``ids``), pooled embeddings
  (``pooled``), their gradients (``grad``) and the MLP gradient allreduce
  (``allreduce``, counted as a ring allreduce sends it: 2 (N - 1) / N of its size).

On one machine the ranks share its cores and its memory bus: the figures show the
traffic and the overheads of the exchange, not a cluster's speed-up. See the issue
note / user guide for how they extrapolate to several nodes.

Run::

    python benchmarks/bench_mpi.py                    # 1, 2 and 4 ranks
    python benchmarks/bench_mpi.py --ranks 1 2 --steps 10 --out results/mpi.json
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = dict(n_dense=13, bottom=(512, 256), d=64, top=(512, 256), tables=8, rows=500_000,
             batch=2048)


def make_rows(n, seed):
    """Criteo-like rows: 13 dense features, 8 Zipf-distributed ids, a noisy label."""
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, SHAPE["n_dense"])).astype(np.float32)
    ids = np.minimum(rng.zipf(1.2, size=(n, SHAPE["tables"])) - 1, SHAPE["rows"] - 1)
    X = np.column_stack([dense, ids]).astype(np.float64)
    logit = dense[:, 0] - 0.5 * dense[:, 1] + 0.3 * np.sin(ids[:, 0])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


SLIDE_SHAPE = dict(n_features=50_000, n_labels=200_000, hidden=128, batch=1024,
                   min_active=1000, n_nonzeros=75, labels_per_row=5)
DLRM_KINDS = ("ids", "pooled", "grad", "allreduce")
SLIDE_KINDS = ("activations", "normalisers", "hidden_grad", "replicated_grad")


def worker(args):
    return slide_worker(args) if args.models == ["slide"] else dlrm_worker(args)


def _finish(comm, args, res):
    all_res = comm.gather(res, root=0)
    if comm.Get_rank() == 0:
        Path(args.worker_out).write_text(json.dumps(all_res))


def slide_worker(args):
    from mpi4py import MPI

    from slidelearn import SlideClassifier
    from slidelearn.datasets import make_extreme_classification

    comm = MPI.COMM_WORLD
    N, me = comm.Get_size(), comm.Get_rank()
    sh = SLIDE_SHAPE
    B = sh["batch"]
    X, Y = make_extreme_classification(
        n_samples=B * (args.steps + 2), n_features=sh["n_features"], n_labels=sh["n_labels"],
        n_nonzeros=sh["n_nonzeros"], n_labels_per_sample=sh["labels_per_row"],
        random_state=0)[:2]
    X, Y = X[me::N], Y[me::N]
    clf = SlideClassifier(hidden_layer_sizes=(sh["hidden"],), min_active=sh["min_active"],
                          batch_size=B, shuffle=False, n_jobs=args.threads, random_state=0,
                          comm=comm)
    warm = 2 * B // N
    clf.partial_fit(X[:warm], Y[:warm], classes=np.arange(sh["n_labels"]))  # builds, warms up
    comm.Barrier()
    t0 = time.perf_counter()
    clf.partial_fit(X[warm:], Y[warm:])
    wall = time.perf_counter() - t0
    st = clf.comm_stats_
    res = {"model": "slide", "ranks": N, "rank": me, "threads": clf.n_threads_,
           "steps": st["steps"], "ms_per_step": 1e3 * st["total_s"] / st["steps"],
           "comm_ms_per_step": 1e3 * st["comm_s"] / st["steps"], "partial_fit_s": wall,
           "loss": clf.loss_curve_[-1], "labels_held": int(-(-sh["n_labels"] // N))}
    for key in SLIDE_KINDS:
        res[f"{key}_bytes_per_step"] = st.get(f"{key}_bytes", 0) / st["steps"]
    _finish(comm, args, res)


def dlrm_worker(args):
    from mpi4py import MPI

    from slidelearn import DLRMClassifier
    from slidelearn._dlrm import _testing

    comm = MPI.COMM_WORLD
    N, me = comm.Get_size(), comm.Get_rank()
    B = SHAPE["batch"]
    n_local = B * (args.steps + 2) // N
    X, y = make_rows(n_local, seed=1000 + me)
    table_bytes = SHAPE["tables"] * SHAPE["rows"] * SHAPE["d"] * 4
    budget = table_bytes if N == 1 else 1.15 * table_bytes / N
    n_cat = SHAPE["tables"]
    clf = DLRMClassifier(
        categorical_features=list(range(SHAPE["n_dense"], SHAPE["n_dense"] + n_cat)),
        table_sizes=SHAPE["rows"], embedding_dim=SHAPE["d"], bottom_mlp=SHAPE["bottom"],
        top_mlp=SHAPE["top"], solver="sgd", learning_rate_init=0.05, batch_size=B,
        shuffle=False, n_jobs=args.threads, random_state=0, comm=comm,
        rank_memory_budget=budget,
        # the reference DLRM's model, as in the recorded runs
        factorization_term=False, embedding_alpha=0.0, embedding_learning_rate=None)
    warm = 2 * B // N
    clf.partial_fit(X[:warm], y[:warm], classes=[0, 1])  # builds the model, warms up
    comm.Barrier()
    t0 = time.perf_counter()
    clf.partial_fit(X[warm:], y[warm:])
    wall = time.perf_counter() - t0
    st = clf.comm_stats_
    shards = _testing.shards(clf)
    res = {"model": "dlrm", "ranks": N, "rank": me, "threads": clf.n_threads_,
           "steps": st["steps"],
           "ms_per_step": 1e3 * st["total_s"] / st["steps"],
           "comm_ms_per_step": 1e3 * st["comm_s"] / st["steps"],
           "partial_fit_s": wall, "loss": clf.loss_curve_[-1],
           "table_rows_held": int(sum(hi - lo for q, _, lo, hi in shards.shards
                                      if q == me)) if shards is not None else
           int(SHAPE["tables"] * SHAPE["rows"]),
           "n_theta": _testing.state(clf).layout.n_theta}
    for key in DLRM_KINDS:
        res[f"{key}_bytes_per_step"] = st.get(key, 0) / st["steps"]
    _finish(comm, args, res)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=12, help="timed steps")
    parser.add_argument("--threads", type=int, default=1, help="threads per rank")
    parser.add_argument("--models", nargs="+", choices=["dlrm", "slide"],
                        default=["dlrm", "slide"])
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    mpiexec = (str(Path(sys.executable).parent / "mpiexec")
               if (Path(sys.executable).parent / "mpiexec").exists() else shutil.which("mpiexec"))
    if mpiexec is None:
        sys.exit("bench_mpi: no mpiexec found; pip install slidelearn[mpi]")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_slide import machine_info

    info = machine_info()
    command = " ".join([sys.executable, *sys.argv])
    print(f"# command: {command}")
    print(f"# machine: {info['cpu']}, {info['usable_cores']} usable of "
          f"{info['logical_cores']} logical cores, {info['memory_gb']:.1f} GB; slidelearn "
          f"{info['slidelearn']} (git {info['git_revision']})")
    print(f"# DLRM: shape a with {SHAPE['rows']:,} rows/table, global batch {SHAPE['batch']}; "
          f"SLIDE: {SLIDE_SHAPE['n_features']:,} features, {SLIDE_SHAPE['n_labels']:,} labels, "
          f"hidden {SLIDE_SHAPE['hidden']}, global batch {SLIDE_SHAPE['batch']}; "
          f"{args.steps} timed steps, {args.threads} thread(s) per rank; bytes = sent by rank "
          "0 to other ranks per step")
    rows = []
    for model in args.models:
        kinds = DLRM_KINDS if model == "dlrm" else SLIDE_KINDS
        print(f"\n{model}")
        print(f"{'ranks':>5} {'ms/step':>9} {'comm ms':>8} "
              + " ".join(f"{k + ' B':>16}" for k in kinds) + f" {'sent MB/step':>13}")
        for n in args.ranks:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "res.json"
                env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
                           OPENBLAS_NUM_THREADS="1")
                cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "mpi4py", __file__,
                       "--worker", "--worker-out", str(out), "--steps", str(args.steps),
                       "--threads", str(args.threads), "--models", model]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                      timeout=1800)
                if proc.returncode != 0:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    sys.exit(f"bench_mpi: {model} on {n} ranks failed")
                res = json.loads(out.read_text())
            r0 = res[0]
            sent = sum(r0[f"{k}_bytes_per_step"] for k in kinds)
            print(f"{n:>5} {r0['ms_per_step']:>9.1f} {r0['comm_ms_per_step']:>8.1f} "
                  + " ".join(f"{r0[k + '_bytes_per_step']:>16,.0f}" for k in kinds)
                  + f" {sent / 1e6:>13.2f}", flush=True)
            rows.append(dict(r0, sent_bytes_per_step=sent, per_rank=res))
    if args.out:
        Path(args.out).write_text(json.dumps({
            "benchmark": "mpi", "command": command, "machine": info, "shape": SHAPE,
            "slide_shape": SLIDE_SHAPE,
            "options": vars(args), "results": rows}, indent=1))
        print(f"# wrote {args.out}")


if __name__ == "__main__":
    main()
