"""Entry points of the DLRM internals for the tests, in one place: the tests go through
these (or the public API) instead of the estimators' private attributes, so that the
internals can move without rewriting the tests. Not used by the package itself.
"""
import numpy as np

from . import _kernels
from ._distributed import plan_shards
from ._inputs import column_runs
from ._state import ROWS_PER_BLOCK, init_table_rows, join_rows, split_rows

__all__ = ["CODES", "ROWS_PER_BLOCK", "column_runs", "csr_to_bags", "init_table_rows",
           "join_rows", "plan_shards", "split_rows", "state", "prepare", "train",
           "raw_output", "weights", "gradient", "slots", "set_precision", "shards",
           "mlp_update", "mlp_bottom_forward"]

CODES = _kernels.CODES
csr_to_bags = _kernels.csr_to_bags


def state(est):
    """The ``DLRMState`` of a fitted (or :func:`prepare`-d) estimator."""
    return est._state


def prepare(est, X, y, seed=0, index64=False):
    """Validate ``(X, y)`` and make ``est``'s initial model as the first ``fit`` would
    (with ``seed`` for ``random_state``), without training.

    Returns ``(dense, bags, Y)``, the kernels' inputs; ``index64`` gives int64 bag ids.
    """
    dense, bags = est._inputs(X, reset=True)
    if index64:
        bags.ids = bags.ids.astype(np.int64)
    Y = est._encode_y(y, dense.shape[0], first=True)
    est._seed = seed
    est._init_model(dense.shape[1], Y.shape[1], est._output_bias(Y.mean(axis=0)),
                    np.random.default_rng(seed))
    return dense, bags, Y


def train(est, dense, bags, Y, lrs, batch_size, n_threads, order=None, lr_scales=None):
    """Train ``est``'s model with the fused kernel on the rows ``order`` (default all, in
    order) in batches of ``batch_size`` with learning rates ``lrs`` (one per batch),
    with the estimator's ``epsilon`` and L2 terms and its tables' learning-rate scales
    (or ``lr_scales``, one per table). Returns the per-batch mean losses."""
    st = est._state
    if order is None:
        order = np.arange(dense.shape[0], dtype=np.int64)
    params = est._train_params(*est._penalty())
    work = est._workspace().reserve(st, batch_size, train=True,
                                    slots=params.needs_slots(st))
    return _kernels.train_epoch(dense, Y, bags.ptr, bags.ids, bags.wts, order, batch_size,
                                np.asarray(lrs, dtype=np.float32), st, work,
                                params.epsilon, params.alpha, params.embedding_alpha,
                                params.table_scales(len(est.table_sizes_))
                                if lr_scales is None
                                else np.asarray(lr_scales, dtype=np.float32), n_threads)


def raw_output(est, dense, bags, n_threads):
    """Outputs of the model before the link function (prediction kernel)."""
    return est._raw_output(dense, bags, n_threads)


def weights(est):
    """Copies of ``(theta, E)``, the MLP parameters and the embedding tables, as float32
    whatever the precision (bfloat16 halves joined)."""
    st = est._state
    if not st.bf16:
        return st.theta.copy(), st.tables.E.copy()
    return join_rows(st.theta[None, :].copy())[0], join_rows(st.tables.E.copy())


def gradient(est):
    """A copy of the MLP gradient of the last training step."""
    return est._work.grad.copy()


def slots(est):
    """A copy of the per-row reduction slots of the tables (all -1 between steps)."""
    return est._work.slot.copy()


def set_precision(est, precision):
    """Convert the fitted model's weights to ``precision`` (exact both ways)."""
    est._state.set_precision(precision)


def shards(est):
    """``None`` when the model holds its tables, else the ``TableShards`` of a model
    whose tables stayed spread over the ranks of its distributed fit."""
    return getattr(est, "_shards", None)


def mlp_update(est, lr, n_threads=1):
    """The distributed MLP update on ``est``'s model (a zero gradient)."""
    st = est._state
    work = _kernels.Workspace().reserve(st, 1, train=True)
    _kernels.mlp_update(st, work, lr, float(est.epsilon), n_threads)


def mlp_bottom_forward(est, X, n_threads=1):
    """The distributed bottom-MLP kernel on ``est``'s model for the rows of ``X``."""
    st = est._state
    work = _kernels.Workspace().reserve(st, max(len(X), 1))
    _kernels.mlp_bottom_forward(np.ascontiguousarray(X, dtype=np.float32), st, work,
                                n_threads)
