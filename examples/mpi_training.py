"""
Training on several processes with MPI
======================================

The estimators take an MPI communicator as ``comm``. Every process (rank) then runs
this same script on its own share of the rows; ``fit`` trains one model together and
leaves every rank with the whole fitted model. This script is not run by the gallery
build (it needs ``mpiexec``); launch it from the repository root with::

    pip install ".[mpi]"
    mpiexec -n 2 python -m mpi4py examples/mpi_training.py

(on a cluster: ``srun -n 8 python -m mpi4py examples/mpi_training.py``, see the user
guide's multi-node page). ``python -m mpi4py`` makes an exception on one rank abort
the whole job instead of leaving the other ranks waiting.

Two models train, on data from ``../shared/data`` relative to the repository root (or
``$SLIDELEARN_DATA``); each rank reads the files and keeps every N-th row (on real data
each rank would read its own files):

* a :class:`~slidelearn.SlideClassifier` on Bibtex (159 labels), label parallel: each
  rank owns a slice of the output neurons and their hash tables;
* a :class:`~slidelearn.DLRMClassifier` on the Criteo sample (1,000 real rows of click
  logs), hybrid parallel: the MLPs replicated on every rank, the 26 embedding tables
  spread over the ranks.
"""
from pathlib import Path

import numpy as np
from mpi4py import MPI
from sklearn.metrics import log_loss, roc_auc_score

from slidelearn import DLRMClassifier, SlideClassifier
from slidelearn.datasets import (
    CRITEO_CATEGORICAL_FEATURES, iter_criteo, load_xc_repository, find_shared_data)
from slidelearn.metrics import precision_at_k

# the examples folder (sphinx-gallery runs the examples there and defines no __file__)
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

comm = MPI.COMM_WORLD
rank, n_ranks = comm.Get_rank(), comm.Get_size()

# SlideClassifier on Bibtex: this rank's rows only.
X_train, Y_train = load_xc_repository(find_shared_data("bibtex", start=HERE) / "train.txt")
X_test, Y_test = load_xc_repository(find_shared_data("bibtex", start=HERE) / "test.txt")
slide = SlideClassifier(max_iter=20, random_state=0, comm=comm)
slide.fit(X_train[rank::n_ranks], Y_train[rank::n_ranks])
if rank == 0:  # every rank holds the same model; rank 0 reports
    labels, _ = slide.predict_topk(X_test, k=5)
    print(f"SlideClassifier on {n_ranks} ranks ({slide.n_threads_} thread(s) each): Bibtex "
          f"P@1 {precision_at_k(Y_test, labels, k=1):.3f}, "
          f"P@5 {precision_at_k(Y_test, labels, k=5):.3f}")

n_hash_bins = 1000
criteo = find_shared_data("criteo-sample", start=HERE) / "train.txt"
chunks = list(iter_criteo(criteo, chunksize=1000,
                          n_hash_bins=n_hash_bins))
X = np.vstack([c[0] for c in chunks])
y = np.concatenate([c[1] for c in chunks])
X_train, y_train, X_test, y_test = X[:800], y[:800], X[800:], y[800:]

# This rank's rows. One epoch: on a sample this small, more epochs overfit.
X_rank, y_rank = X_train[rank::n_ranks], y_train[rank::n_ranks]

params = dict(categorical_features=CRITEO_CATEGORICAL_FEATURES, table_sizes=n_hash_bins,
              embedding_dim=8, bottom_mlp=(16,), top_mlp=(16,), batch_size=64, max_iter=1,
              n_jobs=1, random_state=0)
clf = DLRMClassifier(**params, comm=comm).fit(X_rank, y_rank)

# Every rank now holds the same model; rank 0 reports. The model predicts (and
# pickles) like one trained in a single process.
if rank == 0:
    p = clf.predict_proba(X_test)[:, 1]
    base = np.full_like(p, y_train.mean())
    print(f"{n_ranks} ranks, {clf.n_threads_} thread(s) each: trained on {len(y_train)} rows "
          f"({len(y_rank)} on rank 0) in {clf.n_iter_} epochs")
    print(f"test log-loss {log_loss(y_test, p):.4f} (base rate {log_loss(y_test, base):.4f}), "
          f"ROC AUC {roc_auc_score(y_test, p):.3f}")
    sent = sum(clf.comm_stats_.get(k, 0) for k in ("ids", "pooled", "grad", "allreduce"))
    print(f"rank 0 sent {sent / clf.comm_stats_['steps'] / 1e3:.1f} kB per step to the other "
          f"ranks over {clf.comm_stats_['steps']} steps")
