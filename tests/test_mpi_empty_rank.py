"""MPI ranks with no rows of their own (issue 21): such a rank joins every training
step with an empty batch, and the model is the one a single process trains on the
other ranks' rows; every rank empty is a clear ValueError on every rank. Each test
launches ``mpiexec -n 2 python -m mpi4py`` on a script.

With one of 2 ranks empty, each global step holds only the other rank's share of
``batch_size`` (``local_batches``: half of it), so the reference single-process
model is trained with ``batch_size // 2``.
"""
import json

import pytest

from _mpi_launch import requires_mpi, run_mpi

pytestmark = requires_mpi

SLIDE = r"""
import json
import numpy as np
from mpi4py import MPI
from slidelearn import SlideClassifier
from slidelearn.datasets import make_extreme_classification

comm = MPI.COMM_WORLD
me = comm.rank
X, Y = make_extreme_classification(n_samples=192, n_features=100, n_labels=20,
                                   random_state=0)[:2]
y1 = np.asarray(Y.argmax(axis=1)).ravel()
B = 32
# every neuron active and no shuffling: the model is set by the global batches
# no dropout: its masks are drawn per rank, so they differ from one process's; the
# softmax: loss="auto" is one-vs-all on one process only
kw = dict(dropout=0.0, loss="softmax", hidden_layer_sizes=(16,), min_active=1000, max_iter=2,
          shuffle=False, n_jobs=1,
          random_state=0, n_tables=4, n_codes=2, bucket_size=8, rehash_interval=64)


def diff(a, b):
    return max(float(np.abs(wa - wb).max())
               for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))


res = {}
for empty in (0, 1):  # rank 0 (which broadcasts the seed) empty, then rank 1
    for name, y in [("multilabel", Y), ("multiclass", y1)]:
        ref = SlideClassifier(**kw, batch_size=B // 2).fit(X, y)
        if me == empty:
            # no rows; a 1-D y=[] is float64, which must not turn classes_ into floats
            Xm, ym = X[:0], (Y[:0] if name == "multilabel" else [])
        else:
            Xm, ym = X, y
        m = SlideClassifier(**kw, batch_size=B, comm=comm).fit(Xm, ym)
        res[f"fit_{name}_{empty}"] = {
            "diff": diff(m, ref), "loss": m.loss_curve_, "loss_ref": ref.loss_curve_,
            "classes": m.classes_.tolist(), "classes_ref": ref.classes_.tolist(),
            "decision": float(np.abs(m.decision_function(X) - ref.decision_function(X)).max())}
# partial_fit: the first call's rows all on rank 0, the second's all on rank 1
ref = SlideClassifier(**kw, batch_size=B // 2)
m = SlideClassifier(**kw, batch_size=B, comm=comm)
for owner, (lo, hi) in [(0, (0, 96)), (1, (96, 192))]:
    ref.partial_fit(X[lo:hi], Y[lo:hi], classes=np.arange(20))
    rows = slice(lo, hi) if me == owner else slice(0, 0)
    m.partial_fit(X[rows], Y[rows], classes=np.arange(20))
res["partial_fit"] = {"diff": diff(m, ref), "loss": m.loss_curve_, "loss_ref": ref.loss_curve_}
# the output layer left spread over the ranks: collective prediction, one rank empty
sh = SlideClassifier(**kw, batch_size=B, comm=comm, rank_memory_budget=1000).fit(
    X if me == 0 else X[:0], Y if me == 0 else Y[:0])
ref = SlideClassifier(**kw, batch_size=B // 2).fit(X, Y)
labels, _ = sh.predict_topk(X if me == 0 else X[:0], k=3)
res["sharded"] = {"spread": sh._label_slice is not None, "rows": labels.shape[0],
                  "same": bool(me == 1 or np.array_equal(labels, ref.predict_topk(X, k=3)[0]))}
# every rank empty: the same clear error everywhere (and no hang)
for call in ("fit", "partial_fit"):
    try:
        est = SlideClassifier(**kw, comm=comm)
        if call == "fit":
            est.fit(X[:0], Y[:0])
        else:
            est.partial_fit(X[:0], Y[:0], classes=np.arange(20))
        res[f"all_empty_{call}"] = None
    except ValueError as exc:
        res[f"all_empty_{call}"] = str(exc)
json.dump(res, open(f"slide_{me}.json", "w"))
"""


def test_slide_rank_without_rows_joins_training(tmp_path):
    proc = run_mpi(SLIDE, 2, tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in range(2):
        res = json.loads((tmp_path / f"slide_{rank}.json").read_text())
        for empty in (0, 1):
            for name in ("multilabel", "multiclass"):
                r = res[f"fit_{name}_{empty}"]
                assert r["diff"] < 1e-5 and r["decision"] < 1e-4, (name, empty, r)
                assert r["loss"] == pytest.approx(r["loss_ref"], rel=1e-5)
                assert r["classes"] == r["classes_ref"]
                assert all(isinstance(c, int) for c in r["classes"])
        pf = res["partial_fit"]
        assert pf["diff"] < 1e-5 and pf["loss"] == pytest.approx(pf["loss_ref"], rel=1e-5)
        sh = res["sharded"]
        assert sh["spread"] and sh["same"] and sh["rows"] == (192 if rank == 0 else 0)
        for call in ("fit", "partial_fit"):
            assert "0 samples on every one of the 2 ranks" in res[f"all_empty_{call}"]


DLRM = r"""
import json
import numpy as np, scipy.sparse as sp
from mpi4py import MPI
from slidelearn import DLRMClassifier, DLRMRegressor
from slidelearn._dlrm._testing import shards, weights

comm = MPI.COMM_WORLD
me = comm.rank
rng = np.random.default_rng(0)
n, B = 256, 64
X = np.column_stack([rng.normal(size=n), rng.integers(0, 30, n), rng.integers(0, 50, n)])
y = X[:, 0] + np.sin(X[:, 1]) + 0.1 * (X[:, 2] % 7)
labels = np.array(["a", "b", "c"])[(X[:, 2] % 3).astype(int)]
# the id columns one-hot encoded: sparse input whose fields are found automatically
Xs = sp.hstack([sp.csr_matrix(X[:, :1]),
                sp.csr_matrix(np.eye(30)[X[:, 1].astype(int)]),
                sp.csr_matrix(np.eye(50)[X[:, 2].astype(int)])]).tocsr()
# no early stopping: the rows it holds out differ between one process and ranks
kw = dict(early_stopping=False, embedding_dim=8, bottom_mlp=(16,), top_mlp=(16,), learning_rate_init=0.05,
          max_iter=2, shuffle=False, n_jobs=1, random_state=0)
dense_kw = dict(kw, categorical_features=[1, 2])


def diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(weights(a), weights(b)))


res = {}
cases = [("dense_reg", DLRMRegressor, dense_kw, X, y, "sgd"),
         ("dense_clf", DLRMClassifier, dense_kw, X, labels, "adagrad"),
         ("sparse_reg", DLRMRegressor, kw, Xs, y, "adagrad")]
for empty in (0, 1):
    for name, Est, params, Xa, target, solver in cases:
        ref = Est(**params, solver=solver, batch_size=B // 2).fit(Xa, target)
        # no rows; a 1-D y=[] is float64, which must not change classes_
        Xm, ym = (Xa[:0], []) if me == empty else (Xa, target)
        m = Est(**params, solver=solver, batch_size=B, comm=comm).fit(Xm, ym)
        out, out_ref = ((m.predict_proba(Xa), ref.predict_proba(Xa)) if name == "dense_clf"
                        else (m.predict(Xa), ref.predict(Xa)))
        res[f"{name}_{empty}"] = {
            "diff": diff(m, ref), "pred": float(np.abs(out - out_ref).max()),
            "loss": m.loss_curve_, "loss_ref": ref.loss_curve_,
            "tables": m.table_sizes_.tolist(), "tables_ref": ref.table_sizes_.tolist(),
            "classes": getattr(m, "classes_", np.empty(0)).tolist()}
# partial_fit: the first call's rows all on rank 0, the second's all on rank 1
ref = DLRMClassifier(**dense_kw, batch_size=B // 2, table_sizes=50)
m = DLRMClassifier(**dense_kw, batch_size=B, table_sizes=50, comm=comm)
for owner, (lo, hi) in [(0, (0, 128)), (1, (128, n))]:
    ref.partial_fit(X[lo:hi], labels[lo:hi], classes=["a", "b", "c"])
    rows = slice(lo, hi) if me == owner else slice(0, 0)
    m.partial_fit(X[rows], labels[rows], classes=["a", "b", "c"])
res["partial_fit"] = {"diff": diff(m, ref), "loss": m.loss_curve_, "loss_ref": ref.loss_curve_}
# early stopping: the empty rank holds out no rows, the validation loss stays finite
m = DLRMRegressor(**dict(dense_kw, early_stopping=True), batch_size=B, comm=comm).fit(
    X if me == 0 else X[:0], y if me == 0 else y[:0])
res["early_stopping"] = m.validation_loss_curve_
# tables left spread over the ranks: collective prediction, one rank empty
ref = DLRMRegressor(**dense_kw, batch_size=B // 2).fit(X, y)
sh = DLRMRegressor(**dense_kw, batch_size=B, comm=comm, rank_memory_budget=2000).fit(
    X if me == 0 else X[:0], y if me == 0 else y[:0])
pred = sh.predict(X if me == 1 else X[:0])
res["sharded"] = {"spread": shards(sh) is not None, "rows": len(pred),
                  "pred": float(np.abs(pred - ref.predict(X)).max()) if len(pred) else 0.0}
# every rank empty: the same clear error everywhere (and no hang)
for name, Est, params, Xa, target, _ in cases:
    try:
        Est(**params, comm=comm).fit(Xa[:0], target[:0])
        res[f"all_empty_{name}"] = None
    except ValueError as exc:
        res[f"all_empty_{name}"] = str(exc)
json.dump(res, open(f"dlrm_{me}.json", "w"))
"""


def test_dlrm_rank_without_rows_joins_training(tmp_path):
    proc = run_mpi(DLRM, 2, tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in range(2):
        res = json.loads((tmp_path / f"dlrm_{rank}.json").read_text())
        for empty in (0, 1):
            for name in ("dense_reg", "dense_clf", "sparse_reg"):
                r = res[f"{name}_{empty}"]
                assert r["diff"] < 1e-5 and r["pred"] < 1e-4, (name, empty, r)
                assert r["loss"] == pytest.approx(r["loss_ref"], rel=1e-5)
                assert r["tables"] == r["tables_ref"], (name, r)
            assert res[f"dense_clf_{empty}"]["classes"] == ["a", "b", "c"]
        pf = res["partial_fit"]
        assert pf["diff"] < 1e-5 and pf["loss"] == pytest.approx(pf["loss_ref"], rel=1e-5)
        curve = res["early_stopping"]
        assert curve and all(v == v and v < float("inf") for v in curve), curve
        sh = res["sharded"]
        assert sh["spread"] and sh["pred"] < 1e-4 and sh["rows"] == (256 if rank == 1 else 0)
        for name in ("dense_reg", "dense_clf", "sparse_reg"):
            assert "0 samples on every one of the 2 ranks" in res[f"all_empty_{name}"]
