"""SlideClassifier over MPI, label parallel: N ranks train the model one process
trains; each test launches ``mpiexec -n N python -m mpi4py`` on a script."""
import json

import pytest

from _mpi_launch import requires_mpi, run_mpi

pytestmark = requires_mpi

# Every neuron active (min_active >= labels), no shuffling, one thread: the model is
# determined by the global batches, which rank r's share of every block of
# batch_size rows reproduces.
EQUIVALENCE = r"""
import hashlib, json, pickle
import numpy as np
from mpi4py import MPI
from slidelearn import SlideClassifier
from slidelearn._slide import _testing
from slidelearn.datasets import make_extreme_classification
from slidelearn.utils._mpi import local_batches

comm = MPI.COMM_WORLD
N, me = comm.size, comm.rank
X, Y = make_extreme_classification(n_samples=320, n_features=200, n_labels=40,
                                   random_state=0)[:2]
B, n = 32, X.shape[0]
# no dropout: its masks are drawn per rank, so they differ from one process's; the
# softmax: loss="auto" is one-vs-all on one process only
kw = dict(dropout=0.0, loss="softmax", hidden_layer_sizes=(16, 12), min_active=1000,
          batch_size=B, max_iter=2,
          shuffle=False, n_jobs=1, random_state=0, n_tables=4, n_codes=2, bucket_size=8,
          rehash_interval=64)
start = np.concatenate([[0], np.cumsum(local_batches(B, N))])
mine = np.concatenate([np.arange(b + start[me], min(b + start[me + 1], n))
                       for b in range(0, n, B)])
res = {}
for name, y in [("multilabel", Y), ("multiclass", np.array(Y.argmax(axis=1)).ravel())]:
    ref = SlideClassifier(**kw).fit(X, y)
    m = SlideClassifier(**kw, comm=comm).fit(X[mine], y[mine])
    r = {k: float(np.abs(getattr(_testing.state(ref), k) - getattr(_testing.state(m), k)).max())
         for k in ("W_in", "dense", "W_out", "b_out")}
    r["loss"], r["loss_ref"] = m.loss_curve_, ref.loss_curve_
    r["decision"] = float(np.abs(ref.decision_function(X) - m.decision_function(X)).max())
    r["classes"] = bool(np.array_equal(ref.classes_, m.classes_))
    digest = hashlib.sha1(b"".join(w.tobytes() for w in (m.coefs_[0], m.coefs_[-1]))).hexdigest()
    r["same_on_all_ranks"] = len(set(comm.allgather(digest))) == 1
    loaded = pickle.loads(pickle.dumps(m))
    r["pickle"] = float(np.abs(loaded.decision_function(X) - m.decision_function(X)).max())
    r["comm_after_pickle"] = repr(loaded.comm)
    res[name] = r
# partial_fit, three calls: the output layer and its Adam moments are gathered at the
# end of every call and sliced again at the start of the next.
ref, m = SlideClassifier(**kw), SlideClassifier(**kw, comm=comm)
for lo, hi in [(0, 96), (96, n), (0, n)]:
    r = np.concatenate([np.arange(b + start[me], min(b + start[me + 1], hi))
                        for b in range(lo, hi, B)])
    ref.partial_fit(X[lo:hi], Y[lo:hi], classes=np.arange(40))
    m.partial_fit(X[r], Y[r], classes=np.arange(40))
# the weights and every Adam array
pf = {k: float(np.abs(a - getattr(_testing.state(m), k)).max())
      for k, a in _testing.state(ref).arrays().items()}
res["partial_fit"] = pf
res["partial_fit_loss"] = [m.loss_curve_, ref.loss_curve_]
# A budget below the output layer's size: it stays spread over the ranks after fit,
# each rank having drawn and trained only its slice, and the model predicts collectively.
ref = SlideClassifier(**kw).fit(X, Y)
m = SlideClassifier(**kw, comm=comm, rank_memory_budget=1000).fit(X[mine], Y[mine])
lo, hi = _testing.label_slice(m)
sh = {"slice": [lo, hi], "W_out_rows": m.coefs_[-1].shape[0],
      "W_out": float(np.abs(ref.coefs_[-1][lo:hi] - m.coefs_[-1]).max())}
labels, scores = m.predict_topk(X[mine], k=5)
ref_labels, ref_scores = ref.predict_topk(X[mine], k=5)
sh["topk_same"] = bool(np.array_equal(labels, ref_labels))
sh["topk_scores"] = float(np.abs(scores - ref_scores).max())
sh["score"], sh["score_ref"] = m.score(X[mine], Y[mine]), ref.score(X[mine], Y[mine])
sh["lsh_shape"] = list(m.predict_topk(X[mine], k=5, inference="lsh")[0].shape)
try:
    m.decision_function(X[:2])
    sh["dense_error"] = None
except ValueError as exc:
    sh["dense_error"] = str(exc)
loaded = pickle.loads(pickle.dumps(m))
try:
    loaded.predict(X[:2])
    sh["no_comm_error"] = None
except ValueError as exc:
    sh["no_comm_error"] = str(exc)
loaded.set_params(comm=comm)
sh["reloaded_same"] = bool(np.array_equal(loaded.predict_topk(X[mine], k=5)[0], labels))
res["sharded"] = sh
with open(f"result_{me}.json", "w") as f:
    json.dump(res, f)
"""


@pytest.mark.parametrize("n_ranks", [2, 4])
def test_ranks_train_the_single_process_model(tmp_path, n_ranks):
    proc = run_mpi(EQUIVALENCE, n_ranks, tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in range(n_ranks):
        res = json.loads((tmp_path / f"result_{rank}.json").read_text())
        sh = res.pop("sharded")
        pf = res.pop("partial_fit")
        assert max(pf.values()) < 1e-5, pf
        loss, loss_ref = res.pop("partial_fit_loss")
        assert loss == pytest.approx(loss_ref, rel=1e-5)
        assert sh["W_out_rows"] == sh["slice"][1] - sh["slice"][0] < 40  # only its slice
        assert sh["W_out"] < 1e-5 and sh["topk_same"] and sh["topk_scores"] < 1e-4, sh
        assert sh["score"] == pytest.approx(sh["score_ref"]) and sh["lsh_shape"][1] == 5
        assert "split over" in sh["dense_error"] and "split over" in sh["no_comm_error"]
        assert sh["reloaded_same"]
        for name, r in res.items():
            for k in ("W_in", "dense", "W_out", "b_out"):
                assert r[k] < 1e-5, (name, k, r)
            assert r["decision"] < 1e-4 and r["classes"] and r["same_on_all_ranks"], r
            assert r["loss"] == pytest.approx(r["loss_ref"], rel=1e-5)
            assert r["pickle"] == 0.0 and r["comm_after_pickle"] == "None"


# Hash sampling on: each rank samples its own slice. Rank 0 never sees the last
# class of a multi-class problem, which must still be in classes_.
LSH = r"""
import json
import numpy as np
from mpi4py import MPI
from slidelearn import SlideClassifier
from slidelearn.datasets import make_extreme_classification
from slidelearn.metrics import precision_at_k

comm = MPI.COMM_WORLD
N, me = comm.size, comm.rank
X, Y = make_extreme_classification(n_samples=2400, n_features=1000, n_labels=300,
                                   random_state=0)[:2]
Xtr, Ytr, Xte, Yte = X[:2000], Y[:2000], X[2000:], Y[2000:]
m = SlideClassifier(hidden_layer_sizes=(64,), min_active=40, max_iter=4, batch_size=64,
                    random_state=0, comm=comm).fit(Xtr[me::N], Ytr[me::N])
y1 = np.array(Ytr.argmax(axis=1)).ravel()
rows = np.arange(me, 2000, N)
keep = rows[y1[rows] != y1.max()] if me == 0 else rows
c = SlideClassifier(hidden_layer_sizes=(32,), min_active=20, max_iter=1, random_state=0,
                    comm=comm).fit(Xtr[keep], y1[keep])
d = SlideClassifier(hidden_layer_sizes=(64,), min_active=40, max_iter=4, batch_size=64,
                    dropout=0.5, random_state=0, comm=comm).fit(Xtr[me::N], Ytr[me::N])
d_p1 = float(precision_at_k(Yte, d.predict_topk(Xte, 1)[0], k=1))
if me == 0:
    json.dump({"loss": m.loss_curve_, "threads": m.n_threads_,
               "p1": float(precision_at_k(Yte, m.predict_topk(Xte, 1)[0], k=1)),
               "p1_lsh": float(precision_at_k(Yte, m.predict_topk(Xte, 1, inference="lsh")[0], k=1)),
               "stats": m.comm_stats_, "last_class": bool(y1.max() in c.classes_),
               "dropout_loss": d.loss_curve_, "dropout_p1": d_p1},
              open("lsh.json", "w"))
"""


def test_hash_sampled_training_on_two_ranks(tmp_path):
    proc = run_mpi(LSH, 2, tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "lsh.json").read_text())
    assert res["loss"][-1] < res["loss"][0]
    assert res["p1"] > 0.5 and res["p1_lsh"] > 0.3, res  # chance is below 0.05
    assert res["threads"] == 1  # OMP_NUM_THREADS=1 shared by 2 ranks
    assert res["last_class"]
    # dropout under comm: each rank drops units of its own rows
    assert res["dropout_loss"][-1] < res["dropout_loss"][0] and res["dropout_p1"] > 0.5, res
    st = res["stats"]
    assert st["steps"] > 0 and st["activations_bytes"] > 0 and st["hidden_grad_bytes"] > 0


BAD = r"""
import numpy as np
from mpi4py import MPI
from slidelearn import SlideClassifier
from slidelearn.datasets import make_extreme_classification

comm = MPI.COMM_WORLD
X, Y = make_extreme_classification(n_samples=100, n_features=50, n_labels=10,
                                   random_state=comm.rank)[:2]
X = X.toarray()
# Parameters or classes that differ between ranks: a clear error on every rank
y3 = np.asarray(Y.argmax(axis=1)).ravel() % 3
for params, classes in [({"learning_rate": 1e-3 * (1 + comm.rank)}, [0, 1, 2]),
                        ({}, [0, 1, 2] if comm.rank else [0, 1, 2, 3])]:
    try:
        SlideClassifier(comm=comm, **params).partial_fit(X, y3, classes=classes)
        print(f"rank {comm.rank}: not detected", flush=True)
    except ValueError as exc:
        print(f"rank {comm.rank}: caught: {exc}", flush=True)
if comm.rank == 1:
    X[5, 3] = np.inf
try:
    SlideClassifier(max_iter=1, comm=comm).fit(X, Y)
except ValueError as exc:
    print(f"rank {comm.rank}: ValueError: {exc}", flush=True)
    raise
print("unreachable")
"""


def test_bad_input_on_one_rank_fails_every_rank(tmp_path):
    proc = run_mpi(BAD, 2, tmp_path, timeout=60)
    assert proc.returncode != 0 and "unreachable" not in proc.stdout
    assert "rank 1: ValueError" in proc.stdout and "inf" in proc.stdout.lower(), proc.stdout
    assert "rank 0: ValueError: rank 1 of 2 failed" in proc.stdout, proc.stdout
    assert "not detected" not in proc.stdout
    for rank in range(2):
        assert (f"rank {rank}: caught: All ranks must fit with the same parameters; they "
                "differ in learning_rate") in proc.stdout, proc.stdout
        assert f"rank {rank}: caught: All ranks must pass the same classes" in proc.stdout


# Raw features: the factors of feature_scaling="auto" are computed over all ranks' rows
# and equal those of one process given every row.
SCALE = r"""
import json
import numpy as np
from mpi4py import MPI
from slidelearn import SlideClassifier

comm = MPI.COMM_WORLD
rng = np.random.default_rng(0)
X = np.hstack([rng.random((300, 4)), 1000 * rng.random((300, 3))]).astype(np.float32)
y = (X[:, 0] + X[:, 4] / 1000 > 1).astype(int)
kw = dict(hidden_layer_sizes=(16,), dropout=0.0, max_iter=2, shuffle=False, n_jobs=1,
          random_state=0)
ref = SlideClassifier(**kw).fit(X, y)
m = SlideClassifier(**kw, comm=comm).fit(X[comm.rank::comm.size], y[comm.rank::comm.size])
if comm.rank == 0:
    json.dump({"ref": ref.feature_scale_.tolist(), "mpi": m.feature_scale_.tolist()},
              open("scale.json", "w"))
"""


@requires_mpi
def test_feature_scale_is_collective(tmp_path):
    proc = run_mpi(SCALE, 2, tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "scale.json").read_text())
    assert res["mpi"] == res["ref"]
    assert res["ref"][:4] == [1.0] * 4 and max(res["ref"][4:]) < 0.01
