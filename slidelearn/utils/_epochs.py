"""The epoch loop shared by every estimator, with and without MPI.

An estimator hands :func:`run_epochs` the pieces that are its own (how to train one
epoch over an order of rows, how to score held-out rows, how to save and restore its
weights) and the driver does the rest the same way for all of them: the order of the
rows, the stopping rule (``tol`` / ``n_iter_no_change``, on the training loss or on a
validation score), keeping the best epoch's weights, ``loss_curve_`` and ``n_iter_``,
the ``verbose`` lines and the user's ``callback``.
"""
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np

from . import _mpi

__all__ = ["EpochInfo", "Validation", "run_epochs"]


@dataclass(frozen=True)
class EpochInfo:
    """What an estimator reports to its ``callback`` after each training epoch.

    Attributes
    ----------
    epoch : int
        Epoch of this call, from 1.
    n_epochs : int
        Epochs this call runs at most (``max_iter`` for ``fit``, 1 for ``partial_fit``).
    n_iter : int
        The estimator's ``n_iter_`` after this epoch (epochs since the model was made).
    loss : float
        Mean training loss of the epoch.
    seconds : float
        Wall-clock time of the epoch's training (validation excluded).
    n_samples : int
        Training rows of the epoch (summed over the ranks under MPI).
    validation_score : float or None
        Score of the held-out rows after the epoch when ``early_stopping`` is on:
        precision@1 for :class:`~slidelearn.SlideClassifier`, the loss for DLRM.
    extra : mapping
        Estimator-specific figures, e.g. ``{"active neurons/sample": 1040.0}``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from slidelearn import SlideClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> seen = []
    >>> clf = SlideClassifier(max_iter=3, n_jobs=1, random_state=0,
    ...                       callback=lambda est, info: seen.append(info.epoch)).fit(X, y)
    >>> seen
    [1, 2, 3]
    """

    epoch: int
    n_epochs: int
    n_iter: int
    loss: float
    seconds: float
    n_samples: int
    validation_score: Optional[float] = None
    extra: Mapping[str, float] = field(default_factory=dict)

    @property
    def samples_per_second(self):
        """Training throughput of the epoch."""
        return self.n_samples / max(self.seconds, 1e-9)


def _line(info, incremental, validation):
    """The ``verbose`` line of an epoch."""
    head = (f"partial_fit (epoch {info.n_iter})" if incremental
            else f"Epoch {info.epoch}/{info.n_epochs}")
    parts = [f"{head}: loss {info.loss:.5f}", f"{info.samples_per_second:,.0f} samples/s"]
    parts += [f"{v:,.0f} {k}" for k, v in info.extra.items()]
    if validation is not None:
        parts.append(f"validation {validation.name} {info.validation_score:.5f}")
    return ", ".join(parts) + f", {info.seconds:.2f} s"


@dataclass
class Validation:
    """How the driver scores the held-out rows after each epoch (early stopping).

    ``score()`` returns the validation score (the same on every rank under MPI),
    ``name`` names it in the verbose lines and ``higher_is_better`` says its
    direction; ``snapshot()`` returns a copy of the weights that ``restore(copy)``
    puts back; ``curve`` is the estimator's list of validation scores (appended to).
    """

    score: Callable[[], float]
    name: str
    higher_is_better: bool
    snapshot: Callable[[], Any]
    restore: Callable[[Any], None]
    curve: list


def run_epochs(est, rows, train_epoch, *, incremental, rng, n_samples=None,
               validation=None, comm=None, lr_param="learning_rate"):
    """Train ``est`` for ``max_iter`` epochs (one for ``partial_fit``).

    Parameters
    ----------
    est : estimator
        Has ``max_iter``, ``tol``, ``n_iter_no_change``, ``shuffle``, ``verbose``,
        ``callback``, ``loss_curve_`` and ``n_iter_``.
    rows : ndarray of int64
        The training rows of this process.
    train_epoch : callable
        ``train_epoch(order, epoch)`` trains one epoch over the rows in ``order``
        (``epoch`` counts from 0 within this call) and returns ``(loss, extra)``:
        the mean training loss (the same on every rank) and a dict of figures for
        the verbose line and :class:`EpochInfo`.
    incremental : bool
        ``partial_fit``: one epoch, no stopping rule.
    rng : callable
        ``rng()`` returns the generator that shuffles the next epoch's rows.
    n_samples : int, optional
        Training rows of an epoch over all ranks (default ``len(rows)``).
    validation : Validation, optional
        Early stopping on a validation score instead of the training loss.
    comm : MPI communicator, optional
        Ranks agree on stopping; only rank 0 prints.
    lr_param : str
        The estimator's learning-rate parameter, named in the divergence error.

    Returns
    -------
    best_score : float or None
        The best validation score, when ``validation`` is given.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from slidelearn.utils._epochs import run_epochs
    >>> est = SimpleNamespace(max_iter=10, tol=1e-3, n_iter_no_change=2, shuffle=False,
    ...                       verbose=0, callback=None, loss_curve_=[], n_iter_=0)
    >>> losses = iter([1.0, 0.5, 0.5, 0.5, 0.5])
    >>> _ = run_epochs(est, np.arange(4), lambda order, epoch: (next(losses), {}),
    ...                incremental=False, rng=np.random.default_rng)
    >>> est.n_iter_, est.loss_curve_
    (4, [1.0, 0.5, 0.5, 0.5])
    """
    n_epochs = 1 if incremental else est.max_iter
    n_samples = len(rows) if n_samples is None else n_samples
    root = comm is None or comm.Get_rank() == 0
    best = top = -np.inf  # best signed score that counted as progress, best ever
    best_state = None
    no_improve = 0
    for epoch in range(n_epochs):
        t0 = time.perf_counter()
        order = rng().permutation(rows) if est.shuffle else rows
        loss, extra = train_epoch(order, epoch)
        dt = time.perf_counter() - t0
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"The training loss diverged to {loss} at epoch {epoch + 1}; lower "
                f"{lr_param} (now {getattr(est, lr_param)}).")
        est.loss_curve_.append(loss)
        est.n_iter_ += 1
        score = None
        if validation is not None:
            score = float(validation.score())
            validation.curve.append(score)
            signed = score if validation.higher_is_better else -score
            top = max(top, signed)
        else:
            signed = -loss
        if signed > best + est.tol:
            best, no_improve = signed, 0
            if validation is not None:
                best_state = validation.snapshot()
        else:
            no_improve += 1
            if validation is None:  # the loss may still have gone down by less than tol
                best = max(best, signed)
        info = EpochInfo(epoch + 1, n_epochs, est.n_iter_, float(loss), dt, int(n_samples),
                         score, dict(extra))
        if est.verbose and root:
            print(_line(info, incremental, validation), flush=True)
        asked = bool(est.callback(est, info)) if est.callback is not None else False
        converged = not incremental and no_improve >= est.n_iter_no_change
        if comm is not None:  # every rank stops at the same epoch, or the steps hang
            # One collective for both flags: each is set if it is set on any rank.
            flags = _mpi.allreduce_(comm, np.array([asked, converged], dtype=np.int64), "max")
            asked, converged = bool(flags[0]), bool(flags[1])
        if asked:
            if est.verbose and root:
                print("Stopping: the callback asked to stop.", flush=True)
            break
        if converged:
            if est.verbose and root:
                print(f"Stopping: no improvement above tol={est.tol} for "
                      f"{est.n_iter_no_change} epochs.", flush=True)
            break
    if best_state is not None:
        validation.restore(best_state)
    if validation is None or top == -np.inf:
        return None
    return top if validation.higher_is_better else -top
