"""The shared epoch driver: stopping rule, callback and verbose lines of every estimator."""
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from _mpi_launch import requires_mpi, run_mpi
from slidelearn import DLRMClassifier, DLRMRegressor, SlideClassifier
from slidelearn.utils import EpochInfo
from slidelearn.utils._epochs import Validation, run_epochs


def _est(**kw):
    base = dict(max_iter=10, tol=1e-3, n_iter_no_change=2, shuffle=False, verbose=0,
                callback=None, loss_curve_=[], n_iter_=0)
    base.update(kw)
    return SimpleNamespace(**base)


def _data():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 20, 400), rng.normal(size=400)])
    return X, (X[:, 0] % 3).astype(int)


ESTIMATORS = [
    lambda **kw: SlideClassifier(hidden_layer_sizes=(16,), n_jobs=1, random_state=0, **kw),
    # every epoch runs unless a rule under test stops it (no held-out rows)
    lambda **kw: DLRMClassifier(categorical_features=[0], n_jobs=1, random_state=0,
                                early_stopping=False, **kw),
    lambda **kw: DLRMRegressor(categorical_features=[0], n_jobs=1, random_state=0,
                               early_stopping=False, **kw),
]


def test_loss_rule_stops_after_n_iter_no_change_epochs_without_progress():
    est = _est()
    losses = iter([1.0, 0.5, 0.4995, 0.4999, 0.3])
    run_epochs(est, np.arange(3), lambda order, epoch: (next(losses), {}),
               incremental=False, rng=np.random.default_rng)
    # 0.4995 is below the best by less than tol: no progress, nor is 0.4999
    assert est.loss_curve_ == [1.0, 0.5, 0.4995, 0.4999] and est.n_iter_ == 4


def test_validation_rule_keeps_the_best_epoch_and_its_direction():
    for higher, scores, best, kept in [(True, [0.2, 0.5, 0.4, 0.45], 0.5, 2),
                                       (False, [0.9, 0.3, 0.6, 0.35], 0.3, 2)]:
        est = _est()
        it, curve, state = iter(scores), [], {"epoch": 0}
        val = Validation(lambda: next(it), "score", higher, lambda: est.n_iter_,
                         lambda s: state.update(epoch=s), curve)
        got = run_epochs(est, np.arange(3), lambda order, epoch: (1.0, {}),
                         incremental=False, rng=np.random.default_rng, validation=val)
        assert got == best and curve == scores and est.n_iter_ == 4
        assert state["epoch"] == kept  # the weights of the best epoch were put back


def test_partial_fit_runs_one_epoch_without_stopping_rule():
    est = _est(n_iter_no_change=1, n_iter_=5, loss_curve_=[0.1] * 5)
    run_epochs(est, np.arange(3), lambda order, epoch: (0.9, {}), incremental=True,
               rng=np.random.default_rng)
    assert est.n_iter_ == 6 and est.loss_curve_[-1] == 0.9


def test_shuffled_order_comes_from_the_estimators_generator():
    seen = []
    est = _est(shuffle=True, max_iter=2, n_iter_no_change=5)
    rng = np.random.default_rng(3)
    run_epochs(est, np.arange(6), lambda order, epoch: (seen.append(order.copy()), (1.0, {}))[1],
               incremental=False, rng=lambda: rng)
    ref = np.random.default_rng(3)
    np.testing.assert_array_equal(seen[0], ref.permutation(np.arange(6)))
    np.testing.assert_array_equal(seen[1], ref.permutation(np.arange(6)))


def test_diverging_loss_raises_and_names_the_parameter():
    with pytest.raises(FloatingPointError, match="lower learning_rate_init"):
        run_epochs(_est(learning_rate_init=9.0), np.arange(3),
                   lambda order, epoch: (np.inf, {}), incremental=False,
                   rng=np.random.default_rng, lr_param="learning_rate_init")


@pytest.mark.parametrize("make", ESTIMATORS)
def test_callback_gets_every_epoch_and_can_stop(make):
    X, y = _data()
    infos = []
    make(max_iter=4, tol=0.0, callback=lambda est, info: infos.append(info)).fit(X, y)
    assert [i.epoch for i in infos] == [1, 2, 3, 4]
    assert all(isinstance(i, EpochInfo) and i.n_epochs == 4 and i.n_samples == len(X)
               and np.isfinite(i.loss) and i.seconds > 0 for i in infos)
    stopped = make(max_iter=10, callback=lambda est, info: info.epoch == 2).fit(X, y)
    assert stopped.n_iter_ == 2 and len(stopped.loss_curve_) == 2
    calls = []
    est = make(callback=lambda est, info: calls.append(info.n_iter))
    est.partial_fit(X, y, classes=np.unique(y)) if hasattr(est, "predict_proba") \
        else est.partial_fit(X, y)
    est.partial_fit(X, y)
    assert calls == [1, 2]


@pytest.mark.parametrize("make", ESTIMATORS)
def test_verbose_lines_have_one_form(make, capsys):
    X, y = _data()
    make(max_iter=2, tol=0.0, verbose=1).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Epoch 1/2: loss ") and lines[1].startswith("Epoch 2/2: loss ")
    assert all("samples/s" in line for line in lines)
    make(max_iter=2, tol=0.0, verbose=0).fit(X, y)
    assert capsys.readouterr().out == ""  # fit prints nothing unless verbose


SLIDE_MPI_TOL = r"""
import json
import numpy as np
from mpi4py import MPI
from slidelearn import SlideClassifier
comm = MPI.COMM_WORLD
rng = np.random.default_rng(comm.rank)
X = rng.normal(size=(200, 6))
y = (X[:, 0] > 0).astype(int)
seen = []
# tol so large that no epoch after the first counts as progress: stops after
# 1 + n_iter_no_change epochs, as without MPI
m = SlideClassifier(hidden_layer_sizes=(8,), max_iter=20, tol=1e9, n_iter_no_change=3,
                    n_jobs=1, random_state=0, comm=comm,
                    callback=lambda est, info: seen.append(info.epoch)).fit(X, y)
print("RESULT " + json.dumps({"n_iter": m.n_iter_, "seen": seen}), flush=True)
"""


@requires_mpi
def test_slide_over_mpi_honours_tol(tmp_path):
    proc = run_mpi(SLIDE_MPI_TOL, 2, tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # (the ranks' lines may interleave)
    results = [json.loads(m) for m in re.findall(r"RESULT (\{[^}]*\})", proc.stdout)]
    assert len(results) == 2  # every rank stopped at the same epoch
    assert all(r == {"n_iter": 4, "seen": [1, 2, 3, 4]} for r in results), results
