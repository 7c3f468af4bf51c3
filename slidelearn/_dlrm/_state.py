"""The state of a DLRM model: its layout, weights and optimizer state, as typed objects.

* :class:`DLRMLayout`: the shapes (dense width, tables, embedding size, MLP layers,
  interaction, outputs) and where each layer's weights sit in ``theta``.
* :class:`EmbeddingTables`: stacked embedding tables with their row-wise Adagrad
  accumulators; a DLRM model holds all of them, a rank of a distributed fit its shards.
* :class:`DLRMState`: what a fitted estimator keeps (and pickles): the layout, the MLP
  weights ``theta`` and the tables, the optimizer state and the step count.
* :class:`TableShards`: tables left spread over the ranks of a distributed fit.
* :class:`TrainParams`: the hyper-parameters one epoch of training reads.

The kernels (``_kernels.pyx``) read these objects' arrays; the scratch they write
lives apart, in a ``_kernels.Workspace``.
"""
from dataclasses import dataclass

import numpy as np

from slidelearn.utils import _bf16

from . import _kernels

ROWS_PER_BLOCK = 1 << 16  # rows drawn from one random stream at initialisation


def split_rows(a):
    """float32 (n, d) -> uint16 (n, 2 d), each row the upper 16 bits of its d weights
    then their lower 16 bits (``_bf16.split``). Done in place, in blocks of rows: the
    result is a view of ``a``'s memory (the tables are the largest arrays of the model)."""
    n, d = a.shape
    out = a.view(np.uint16).reshape(n, 2 * d)
    step = max(1, (1 << 20) // max(d, 1))
    for r in range(0, n, step):
        hi, lo = _bf16.split(a[r:r + step])
        out[r:r + step, :d] = hi
        out[r:r + step, d:] = lo
    return out


def join_rows(a):
    """Inverse of ``split_rows``, in place: uint16 (n, 2 d) -> float32 (n, d)."""
    n, d = a.shape[0], a.shape[1] // 2
    out = a.view(np.float32).reshape(n, d)
    step = max(1, (1 << 20) // max(d, 1))
    for r in range(0, n, step):
        out[r:r + step] = _bf16.join(a[r:r + step, :d], a[r:r + step, d:])
    return out


def init_table_rows(out, seed, t, lo, hi, n_rows):
    """Initial values of rows ``lo:hi`` of table ``t`` (of ``n_rows`` rows), written
    to ``out`` (hi - lo, d): uniform in +-sqrt(1 / n_rows), as the reference DLRM.

    Each block of ``ROWS_PER_BLOCK`` rows comes from its own random stream, so a rank
    draws only the rows it holds and a row's value does not depend on how the table
    is split over ranks (or not split at all).
    """
    if hi <= lo:
        return out
    d = out.shape[1]
    for blk in range(lo // ROWS_PER_BLOCK, (hi - 1) // ROWS_PER_BLOCK + 1):
        a = blk * ROWS_PER_BLOCK
        b = min(a + ROWS_PER_BLOCK, n_rows)
        rng = np.random.default_rng([seed, 0x7AB1E, t, blk])
        s, e = max(a, lo), min(b, hi)
        if s == a and e == b:  # the whole block: drawn in place
            rng.random(out=out[a - lo:b - lo], dtype=np.float32)
        else:
            out[s - lo:e - lo] = rng.random((b - a, d), dtype=np.float32)[s - a:e - a]
    bound = np.float32(np.sqrt(1.0 / n_rows))
    out *= 2 * bound
    out -= bound
    return out


@dataclass(frozen=True, eq=False)
class DLRMLayout:
    """Shapes of a DLRM network.

    ``layers`` (n_bottom + n_top, 5) int64 holds, per layer, its input and output
    widths, the offsets of its weight (out, in) and bias in ``theta`` and whether a
    ReLU follows; bottom layers come first. ``interaction`` is a ``_kernels.CODES``
    value.
    """

    n_dense: int
    n_tables: int
    d: int
    n_bottom: int
    n_top: int
    n_int: int
    interaction: int
    k: int
    layers: np.ndarray
    # the factorization term (sum of the table vectors' pairwise dots added to the
    # output); False for models pickled before it existed
    fm: bool = False

    @classmethod
    def build(cls, n_dense, n_tables, d, bottom_mlp, top_mlp, interaction,
              self_interaction, k, fm=False):
        """The layout of the estimator parameters of the same names, for ``n_dense``
        dense features, ``n_tables`` tables and ``k`` outputs; ``fm`` adds the
        factorization term.

        Raises ``ValueError`` for a non-positive layer size, for a 'dot'
        interaction with nothing to interact and for ``fm`` with more than one output
        or fewer than two tables.
        """
        bottom = [int(h) for h in np.atleast_1d(bottom_mlp)] if len(bottom_mlp) else []
        top = [int(h) for h in np.atleast_1d(top_mlp)] if len(top_mlp) else []
        if any(h < 1 for h in bottom + top):
            raise ValueError("bottom_mlp and top_mlp layer sizes must be positive.")
        has_bottom = n_dense > 0
        F = n_tables + int(has_bottom)
        if interaction == "cat":
            n_int = F * d
            code = _kernels.CODES["cat"]
        else:
            n_pairs = F * (F + 1) // 2 if self_interaction else F * (F - 1) // 2
            n_int = (d if has_bottom else 0) + n_pairs
            code = _kernels.CODES["dot_self" if self_interaction else "dot"]
        if n_int == 0:
            raise ValueError("interaction='dot' over a single embedding table and no dense "
                             "features has nothing to interact: use interaction='cat' or "
                             "self_interaction=True.")
        if fm and (k != 1 or n_tables < 2):
            raise ValueError("factorization_term=True needs a single output (one regression "
                             "target, or two classes) and at least two embedding tables; "
                             f"this model has {k} outputs and {n_tables} tables.")
        dims = []
        if has_bottom:
            sizes = [n_dense] + bottom + [d]
            dims += [(sizes[i], sizes[i + 1], 1) for i in range(len(sizes) - 1)]
        n_bottom = len(dims)
        sizes = [n_int] + top + [k]
        dims += [(sizes[i], sizes[i + 1], int(i < len(sizes) - 2))
                 for i in range(len(sizes) - 1)]
        layers = np.zeros((len(dims), 5), dtype=np.int64)
        pos = 0
        for l, (n_in, n_out, relu) in enumerate(dims):
            layers[l] = (n_in, n_out, pos, pos + n_in * n_out, relu)
            pos += n_in * n_out + n_out
        return cls(n_dense, n_tables, d, n_bottom, len(dims) - n_bottom, n_int, code, k,
                   layers, bool(fm))

    @property
    def n_theta(self):
        """Number of MLP parameters (weights and biases of every layer)."""
        return int(self.layers[-1, 3] + self.layers[-1, 1])

    @property
    def max_width(self):
        """The widest layer input or output."""
        return int(self.layers[:, :2].max())


@dataclass(eq=False)
class EmbeddingTables:
    """Embedding tables stacked by rows.

    ``E`` (n_rows, d) float32, or (n_rows, 2 d) uint16 ``[hi | lo]`` rows when
    split for ``precision='bfloat16'``; ``E_acc`` (n_rows,) the row-wise Adagrad
    accumulators (empty with plain SGD); table ``t`` holds rows
    ``offsets[t]:offsets[t + 1]``.
    """

    E: np.ndarray
    E_acc: np.ndarray
    offsets: np.ndarray

    @property
    def n_rows(self):
        """Rows of all tables together."""
        return self.E.shape[0]

    def snapshot(self):
        """Copies of the rows and accumulators, for :meth:`restore`."""
        return self.E.copy(), self.E_acc.copy()

    def restore(self, saved):
        """Put back (in place) what :meth:`snapshot` returned."""
        self.E[...], self.E_acc[...] = saved


@dataclass(eq=False)
class DLRMState:
    """Everything a fitted DLRM estimator knows about its model.

    Attributes
    ----------
    layout : DLRMLayout
        Shapes of the network.
    theta : ndarray
        Every MLP parameter in one flat float32 vector (see ``layout.layers``), or the
        uint16 ``[hi | lo]`` halves of them all with ``precision='bfloat16'``.
    acc : ndarray of float32
        Adagrad accumulators of ``theta`` (empty with plain SGD).
    tables : EmbeddingTables
        The embedding tables; empty while (and, with tables spread over ranks, after)
        a distributed fit, whose ranks hold them (see :class:`TableShards`).
    loss, optimizer : int
        ``_kernels.CODES`` of the loss and the solver.
    step : int
        Batches trained so far (the learning-rate warm-up counts them).
    """

    layout: DLRMLayout
    theta: np.ndarray
    acc: np.ndarray
    tables: EmbeddingTables
    loss: int
    optimizer: int
    step: int = 0

    @classmethod
    def initial(cls, layout, table_offsets, *, loss, solver, y_bias, rng, seed,
                tables=True):
        """A new model: MLP weights drawn from ``rng`` (the output bias set to
        ``y_bias``), tables from ``seed`` (see :func:`init_table_rows`).

        ``tables=False`` leaves the tables empty (a distributed fit draws them on the
        ranks that hold them).
        """
        d, k = layout.d, layout.k
        theta = np.empty(layout.n_theta, dtype=np.float32)
        for n_in, n_out, w_off, b_off, _ in layout.layers:
            theta[w_off:b_off] = rng.normal(0.0, np.sqrt(2.0 / (n_in + n_out)), n_in * n_out)
            theta[b_off:b_off + n_out] = rng.normal(0.0, np.sqrt(1.0 / n_out), n_out)
        out_b = layout.layers[-1, 3]
        theta[out_b:out_b + k] = y_bias
        # Tables: drawn in place, in blocks of rows with their own random streams, so
        # that ranks holding parts of a table (comm=...) draw the same values.
        n_rows = int(table_offsets[-1]) if tables else 0
        E = np.empty((n_rows, d), dtype=np.float32)
        for t in range(layout.n_tables if tables else 0):
            lo, hi = table_offsets[t], table_offsets[t + 1]
            init_table_rows(E[lo:hi], seed, t, 0, hi - lo, hi - lo)
        adagrad = solver == "adagrad"
        return cls(layout, theta,
                   np.zeros(theta.shape[0] if adagrad else 0, dtype=np.float32),
                   EmbeddingTables(E, np.zeros(n_rows if adagrad else 0, dtype=np.float32),
                                   table_offsets),
                   _kernels.CODES[loss], _kernels.CODES[solver])

    @classmethod
    def from_dicts(cls, model, spec, step):
        """The state of an estimator pickled before this class: its ``_model`` and
        ``_spec`` dictionaries and its ``_step``."""
        layout = DLRMLayout(*(int(spec[key]) for key in (
            "n_dense", "n_tables", "d", "n_bottom", "n_top", "n_int", "interaction", "k")),
            layers=np.asarray(spec["layers"], dtype=np.int64))
        tables = EmbeddingTables(model["E"], model["E_acc"],
                                 np.asarray(model["table_offsets"], dtype=np.int64))
        return cls(layout, model["theta"], model["acc"], tables, int(spec["loss"]),
                   int(spec["optimizer"]), int(step))

    @property
    def bf16(self):
        """Whether the weights are split into bfloat16 halves."""
        return self.theta.dtype == np.uint16

    @property
    def adagrad(self):
        """Whether the solver is Adagrad (which keeps accumulators)."""
        return self.optimizer == _kernels.CODES["adagrad"]

    def ensure_writeable(self):
        """Copy every array when a weight array is read-only (a memory-mapped model),
        so that training does not write to the file."""
        E = self.tables.E
        if self.theta.flags.writeable and (not E.size or E.flags.writeable):
            return
        self.theta, self.acc = np.array(self.theta), np.array(self.acc)
        self.tables = EmbeddingTables(np.array(E), np.array(self.tables.E_acc),
                                      np.array(self.tables.offsets))

    def set_precision(self, precision):
        """Convert the weights to the layout of ``precision`` (exact both ways)."""
        if self.bf16 == (precision == "bfloat16"):
            return
        convert = split_rows if precision == "bfloat16" else join_rows
        self.theta = convert(self.theta[None, :])[0]
        self.tables.E = convert(self.tables.E)

    def snapshot(self, tables=True):
        """Copies of the weights and optimizer state (of the tables too unless
        ``tables=False``), for :meth:`restore`."""
        return (self.theta.copy(), self.acc.copy(),
                self.tables.snapshot() if tables else None)

    def restore(self, saved):
        """Put back (in place) what :meth:`snapshot` returned."""
        self.theta[...], self.acc[...], tables = saved
        if tables is not None:
            self.tables.restore(tables)


@dataclass(eq=False)
class TableShards:
    """Embedding tables spread over the ranks of a distributed fit.

    ``shards`` lists ``(rank, table, lo, hi)`` (rows ``lo:hi`` of the table) for every
    rank, sorted; ``local`` holds this rank's shards stacked in that order (its
    ``offsets`` are local row offsets of the shards); ``table_offsets`` are the global
    row offsets of the tables; ``index_dtype`` the dtype of local row ids.
    """

    n_ranks: int
    shards: list
    table_offsets: np.ndarray
    local: EmbeddingTables = None
    index_dtype: type = np.int64

    @property
    def d(self):
        """Embedding size."""
        return self.local.E.shape[1]

    def of_rank(self, q):
        """The shards of rank ``q``."""
        return [s for s in self.shards if s[0] == q]

    def local_offsets(self, q):
        """Offsets of rank ``q``'s shards in its stacked rows."""
        return np.concatenate([[0], np.cumsum([hi - lo for _, _, lo, hi in self.of_rank(q)])]
                              ).astype(np.int64)

    @classmethod
    def from_dict(cls, state, table_offsets):
        """The shards of an estimator pickled before this class (its ``_shard_state``)."""
        local = state["local"]
        return cls(int(state["n_ranks"]), [tuple(s) for s in state["shards"]],
                   np.asarray(table_offsets, dtype=np.int64),
                   EmbeddingTables(local["E"], local["E_acc"],
                                   np.asarray(local["table_offsets"], dtype=np.int64)),
                   state["index_dtype"])


@dataclass(frozen=True)
class TrainParams:
    """The hyper-parameters of a training epoch (the estimator's parameters of the
    same names)."""

    batch_size: int
    learning_rate_init: float
    learning_rate_decay: float
    warmup_steps: int
    epsilon: float
    alpha: float
    # the tables' L2 term, and each table's learning rate over the MLP's (float32, one
    # per table; None: 1), from ``embedding_alpha`` and ``embedding_learning_rate``
    embedding_alpha: float = 0.0
    embedding_lr_scales: object = None

    def table_scales(self, n_tables):
        """``embedding_lr_scales`` as the kernels take them: float32, one per table."""
        if self.embedding_lr_scales is None:
            return np.ones(n_tables, dtype=np.float32)
        return np.ascontiguousarray(self.embedding_lr_scales, dtype=np.float32)

    def needs_slots(self, state):
        """Whether training ``state`` with these parameters needs the Workspace's
        per-row slots: Adagrad's accumulators, or the tables' L2 term."""
        return bool(state.adagrad or self.embedding_alpha > 0)

    def learning_rates(self, step, n_batches, epoch):
        """float32 learning rates of ``n_batches`` batches from batch ``step`` on, in
        the ``epoch``-th epoch of this call (decay per epoch, linear warm-up)."""
        steps = step + np.arange(n_batches, dtype=np.float64)
        lr = self.learning_rate_init * self.learning_rate_decay ** epoch * np.ones(n_batches)
        if self.warmup_steps > 0:
            lr *= np.minimum(1.0, (steps + 1) / self.warmup_steps)
        return lr.astype(np.float32)
