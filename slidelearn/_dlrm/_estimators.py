"""DLRMRegressor and DLRMClassifier: DLRM recommender models trained on CPU."""
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from slidelearn.utils._threads import single_threaded_blas

from slidelearn._dlrm import _distributed, _inputs
from slidelearn._dlrm import _kernels
from slidelearn._dlrm._state import (DLRMLayout, DLRMState, EmbeddingTables, TableShards,
                                     TrainParams)
from slidelearn.utils import _epochs, _mpi
from slidelearn.utils._openmp_helpers import effective_n_threads
from slidelearn.utils._random import check_seed as _check_seed
from slidelearn.utils.validation import validate_sparse_X

# Rows per prediction block (every block is computed at this size, see forward()).
_PREDICT_BATCH = 512
# early_stopping="auto" holds out rows from this many training rows on: a tenth of
# them then makes a validation loss worth stopping on
_AUTO_EARLY_STOPPING_ROWS = 200
# embedding_learning_rate="auto": a table whose ids are looked up more than
# _AUTO_TABLE_LOOKUPS times each on average learns faster than the MLP, in proportion,
# up to _AUTO_TABLE_RATE_MAX times: frequent ids can take the larger steps that user and
# item tables need, while tables of rarely seen ids (hashed features) would only
# memorise their few rows with them (the defaults study, MovieLens and Criteo).
_AUTO_TABLE_LOOKUPS = 10.0
_AUTO_TABLE_RATE_MAX = 5.0
# baseline: rounds of backfitting the per-id offsets (each updates every table once); a
# fixed count, not a tolerance, so that the ranks of an MPI fit need not agree on stopping
_BASELINE_ROUNDS = 10
# set bits of each byte value (numpy < 2 has no bitwise_count)
_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)


class _BaseDLRM(BaseEstimator):
    """Shared core of the DLRM estimators (inputs, model, training loop)."""

    _parameter_constraints = {
        "categorical_features": ["array-like", StrOptions({"from_dtype"}), None],
        "feature_groups": [list, StrOptions({"auto"}), None],
        "table_sizes": [Interval(Integral, 1, None, closed="left"), "array-like", None],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "bottom_mlp": ["array-like"],
        "top_mlp": ["array-like"],
        "interaction": [StrOptions({"dot", "cat"})],
        "self_interaction": ["boolean"],
        "factorization_term": [StrOptions({"auto"}), "boolean"],
        "solver": [StrOptions({"sgd", "adagrad"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_decay": [Interval(Real, 0, 1, closed="right")],
        "warmup_steps": [Interval(Integral, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "embedding_alpha": [Interval(Real, 0, None, closed="left"), None],
        "embedding_learning_rate": [Interval(Real, 0, None, closed="neither"),
                                    StrOptions({"auto"}), None],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": [StrOptions({"auto"}), "boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "validation_pass": ["boolean"],
        "shuffle": ["boolean"],
        "warm_start": ["boolean"],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callback": [callable, None],
        "comm": "no_validation",
        "rank_memory_budget": [Interval(Real, 0, None, closed="neither"), None],
        "precision": [StrOptions({"float32", "bfloat16"})],
        "feature_scaling": [StrOptions({"auto"}), None],
        "baseline": [StrOptions({"auto"}), "boolean"],
        "baseline_shrinkage": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        categorical_features="from_dtype",
        feature_groups="auto",
        table_sizes=None,
        embedding_dim=16,
        bottom_mlp=(64,),
        top_mlp=(64,),
        interaction="cat",
        self_interaction=False,
        factorization_term="auto",
        solver="adagrad",
        learning_rate_init=0.01,
        learning_rate_decay=1.0,
        warmup_steps=0,
        alpha=0.0,
        embedding_alpha=0.1,
        embedding_learning_rate="auto",
        epsilon=1e-8,
        batch_size=256,
        max_iter=10,
        tol=1e-4,
        n_iter_no_change=3,
        early_stopping="auto",
        validation_fraction=0.1,
        validation_pass=True,
        shuffle=True,
        warm_start=False,
        n_jobs=None,
        random_state=None,
        verbose=0,
        callback=None,
        comm=None,
        rank_memory_budget=None,
        precision="float32",
        feature_scaling="auto",
        baseline="auto",
        baseline_shrinkage=25.0,
    ):
        self.categorical_features = categorical_features
        self.feature_groups = feature_groups
        self.table_sizes = table_sizes
        self.embedding_dim = embedding_dim
        self.bottom_mlp = bottom_mlp
        self.top_mlp = top_mlp
        self.interaction = interaction
        self.self_interaction = self_interaction
        self.factorization_term = factorization_term
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate_decay = learning_rate_decay
        self.warmup_steps = warmup_steps
        self.alpha = alpha
        self.embedding_alpha = embedding_alpha
        self.embedding_learning_rate = embedding_learning_rate
        self.epsilon = epsilon
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_pass = validation_pass
        self.shuffle = shuffle
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.callback = callback
        self.comm = comm
        self.rank_memory_budget = rank_memory_budget
        self.precision = precision
        self.feature_scaling = feature_scaling
        self.baseline = baseline
        self.baseline_shrinkage = baseline_shrinkage

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_work", None)  # scratch, rebuilt on demand
        state["comm"] = None  # a communicator belongs to the job that ran the fit
        return state

    def __setstate__(self, state):
        if "_model" in state:
            # pickled before DLRMState: the model, its layout and tables spread over
            # ranks were dictionaries
            state = dict(state)
            state["_state"] = DLRMState.from_dicts(state.pop("_model"), state.pop("_spec"),
                                                   state.pop("_step", 0))
            shards = state.pop("_shard_state", None)
            state["_shards"] = (None if shards is None else
                                TableShards.from_dict(shards, state["_table_offsets"]))
        super().__setstate__(state)

    # ------------------------------------------------------------ inputs
    def _inputs(self, X, reset, min_samples=1):
        """Validate X and return (dense features float32 (n, n_dense), Bags).

        ``min_samples=0`` lets an MPI rank with no rows join a collective fit or
        predict (the caller checks that some rank has rows). ``X`` is never modified.
        """
        if reset:
            self._sparse_input = sp.issparse(X)
        if self._sparse_input:
            if reset and self.categorical_features not in (None, "from_dtype"):
                raise ValueError("categorical_features applies to dense input; with a "
                                 "sparse X, group its one-hot columns with feature_groups.")
            if reset and self.table_sizes is not None and self.feature_groups is not None:
                raise ValueError("table_sizes applies to categorical_features of dense "
                                 "input; a sparse field's table has one row per column.")
            X = validate_sparse_X(self, X, reset=reset, ensure_min_samples=min_samples)
            if reset:
                fg = self.feature_groups
                if fg is None:
                    groups = []
                elif isinstance(fg, str):
                    groups = _inputs.detect_onehot_groups(X)
                else:
                    groups = _inputs.check_groups(fg, X.shape[1])
                self._set_groups(groups, X.shape[1])
            dense = np.zeros((X.shape[0], len(self._dense_cols)), dtype=np.float32)
            ptr, ids, wts = _kernels.csr_to_bags(
                X.indptr.astype(np.int64, copy=False), X.indices, X.data, *self._col_runs,
                len(self.feature_groups_), dense, self._index_dtype,
                effective_n_threads(self.n_jobs))
            if wts.size and np.all(wts == 1.0):
                wts = np.empty(0, np.float32)  # every weight 1: the kernels skip them
            return dense, _inputs.Bags(ptr, ids, wts)

        if reset:
            if self.feature_groups not in (None, "auto"):
                raise ValueError("feature_groups applies to sparse input; with a dense X, "
                                 "name the id columns with categorical_features.")
            names = getattr(X, "columns", None)
            n_cols = X.shape[1] if hasattr(X, "shape") and len(X.shape) == 2 else None
            if n_cols is None:
                mask = None
            else:
                mask = _inputs.resolve_categorical(
                    self.categorical_features, X, n_cols,
                    None if names is None else [str(c) for c in names])
        X = _inputs.category_codes(X, None)
        frame = X if _inputs._is_dataframe(X) else None
        # dtype=None: the id columns are read at their own dtype (a float64 copy would
        # round int64 ids above 2**53), and finiteness is checked per column below,
        # with messages that name the column.
        Xv = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False,
                           ensure_min_samples=min_samples)
        if reset:
            if mask is None:
                mask = _inputs.resolve_categorical(self.categorical_features, Xv,
                                                   Xv.shape[1], None)
            self.is_categorical_ = mask
            self._cat_cols = np.flatnonzero(mask)
            self._dense_cols = np.flatnonzero(~mask)
        col_names = getattr(self, "feature_names_in_", None)
        ids = np.empty((Xv.shape[0], len(self._cat_cols)), dtype=np.int64)
        for t, c in enumerate(self._cat_cols):
            name = repr(col_names[c]) if col_names is not None else f"{c}"
            # a DataFrame's own column: its dtype, not the common dtype of all columns
            col = frame.iloc[:, c].to_numpy() if frame is not None else Xv[:, c]
            ids[:, t] = _inputs.check_ids(col, name)
        dense = _inputs.dense_features(Xv, self._dense_cols, col_names)
        if reset:
            names = [repr(col_names[c]) if col_names is not None else f"{c}"
                     for c in self._cat_cols]
            sizes = _inputs.table_sizes_from(self.table_sizes, ids.max(axis=0, initial=0),
                                             len(self._cat_cols), names)
            self._set_tables(sizes)
        bags = _inputs.dense_bags(ids, self.table_sizes_, self._table_offsets,
                                  self._index_dtype)
        return dense, bags

    def _early_stopping_on(self, n_rows):
        """``early_stopping`` as a bool for a fit on ``n_rows`` rows (all ranks')."""
        if isinstance(self.early_stopping, str):
            return n_rows >= _AUTO_EARLY_STOPPING_ROWS
        return bool(self.early_stopping)

    def _scale_dense(self, dense, reset, comm=None):
        """The dense features standardised by ``dense_mean_`` / ``dense_scale_`` (a new
        array); ``reset`` (a first fit) sets them from ``dense``, over the rows of
        every rank of ``comm``."""
        if reset:
            self.dense_mean_ = self.dense_scale_ = None
            if self.feature_scaling == "auto" and dense.shape[1]:
                stats = np.concatenate([dense.sum(axis=0, dtype=np.float64),
                                        np.square(dense, dtype=np.float64).sum(axis=0),
                                        [dense.shape[0]]])
                if comm is not None:
                    _mpi.allreduce_(comm, stats)
                k, n = dense.shape[1], max(stats[-1], 1.0)
                mean = stats[:k] / n
                std = np.sqrt(np.maximum(stats[k:2 * k] / n - mean * mean, 0.0))
                # a constant column keeps its scale (nothing to learn from it)
                self.dense_mean_ = mean.astype(np.float32)
                self.dense_scale_ = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0),
                                             std, 1.0).astype(np.float32)
        mean = getattr(self, "dense_mean_", None)
        if mean is None or not dense.shape[1]:
            return dense
        return (dense - mean) / self.dense_scale_

    def _set_groups(self, groups, n_features):
        """Fields of sparse input: tables, dense columns and the column runs."""
        self.feature_groups_ = groups
        grouped = np.zeros(n_features, dtype=bool)
        for g in groups:
            grouped[g] = True
        self._dense_cols = np.flatnonzero(~grouped)
        self._set_tables(np.array([len(g) for g in groups], dtype=np.int64))
        self._col_runs = _inputs.column_runs(n_features, groups, self._table_offsets)

    def _set_tables(self, sizes):
        self.table_sizes_ = np.asarray(sizes, dtype=np.int64)
        self._table_offsets = np.concatenate([[0], np.cumsum(self.table_sizes_)]).astype(np.int64)
        self._index_dtype = np.int32 if self._table_offsets[-1] < 2**31 else np.int64

    # ------------------------------------------------------------- model
    def _factorization_term_on(self, k):
        """``factorization_term``; ``"auto"``: on where it applies (a single output
        and at least two tables)."""
        if self.factorization_term == "auto":
            return k == 1 and len(self.table_sizes_) >= 2
        return bool(self.factorization_term)

    def _init_model(self, n_dense, k, y_bias, rng, tables=True):
        layout = DLRMLayout.build(n_dense, len(self.table_sizes_), int(self.embedding_dim),
                                  self.bottom_mlp, self.top_mlp, self.interaction,
                                  self.self_interaction, k, self._factorization_term_on(k))
        # tables=False (distributed training) leaves the tables to the ranks
        self._state = DLRMState.initial(layout, self._table_offsets, loss=self._loss_name,
                                        solver=self.solver, y_bias=y_bias, rng=rng,
                                        seed=self._seed, tables=tables)
        self.n_iter_ = 0
        self.loss_curve_ = []
        self.validation_loss_curve_ = None
        self.best_validation_loss_ = None

    def _workspace(self):
        """The kernels' scratch of this estimator's fits (not pickled)."""
        work = getattr(self, "_work", None)
        if work is None:
            work = self._work = _kernels.Workspace()
        return work

    def _penalty(self):
        """``epsilon``, ``alpha`` and the tables' L2 term (``embedding_alpha``, None:
        ``alpha``), fixed for a whole fit."""
        emb = self.alpha if self.embedding_alpha is None else self.embedding_alpha
        return float(self.epsilon), float(self.alpha), float(emb)

    def _table_rate_scales(self):
        """Each table's learning rate over ``learning_rate_init`` (float32, one per
        table): ``embedding_learning_rate`` over it, 1 for None, and for ``"auto"``
        the rule of ``_AUTO_TABLE_LOOKUPS`` on the first fit's lookups per id (1 for a
        model fitted before the rule existed)."""
        n_tables = len(self.table_sizes_)
        emb_lr = self.embedding_learning_rate
        if emb_lr is None:
            return np.ones(n_tables, dtype=np.float32)
        if isinstance(emb_lr, str):  # "auto"
            per_id = getattr(self, "_lookups_per_id", None)
            if per_id is None:
                return np.ones(n_tables, dtype=np.float32)
            return np.clip(per_id / _AUTO_TABLE_LOOKUPS, 1.0,
                           _AUTO_TABLE_RATE_MAX).astype(np.float32)
        return np.full(n_tables, float(emb_lr) / float(self.learning_rate_init),
                       dtype=np.float32)

    def _count_lookups(self, bags, comm=None):
        """``_lookups_per_id``: per table, the lookups of the first fit's rows over the
        number of distinct ids they look up (over every rank's rows under ``comm``).

        Under ``comm`` the distinct ids of a table are the union of the ranks' ids: one
        bit per table row, OR-reduced a table at a time, so that no rank holds a map of
        every table, whose rows may be spread over the ranks for lack of memory."""
        offsets = self._table_offsets
        n_tables = len(offsets) - 1
        lookups = np.zeros(n_tables, dtype=np.float64)
        distinct = np.zeros(n_tables, dtype=np.float64)
        for t in range(n_tables):
            lo, hi = bags.ptr[t, 0], bags.ptr[t, -1]
            lookups[t] = hi - lo
            ids = np.unique(bags.ids[lo:hi]).astype(np.int64) - offsets[t]
            if comm is None:
                distinct[t] = len(ids)
                continue
            bits = np.zeros((int(offsets[t + 1] - offsets[t]) + 7) // 8, dtype=np.uint8)
            np.bitwise_or.at(bits, ids >> 3, (128 >> (ids & 7)).astype(np.uint8))
            _mpi.allreduce_(comm, bits, "bor")
            distinct[t] = _POPCOUNT[bits].sum(dtype=np.int64)
        if comm is not None:
            _mpi.allreduce_(comm, lookups)
        self._lookups_per_id = lookups / np.maximum(distinct, 1)

    def _baseline_on(self):
        """``baseline`` as a bool; ``"auto"``: on for the squared error with at least
        one table."""
        if self.baseline == "auto":
            return self._loss_name == "squared_error" and len(self.table_sizes_) > 0
        if self.baseline and self._loss_name != "squared_error":
            raise ValueError(f"baseline=True is only available to DLRMRegressor (the "
                             f"squared error), not to {type(self).__name__}.")
        return bool(self.baseline)

    def _fit_baseline(self, Y, bags, comm=None):
        """``baseline_mean_`` and ``baseline_offsets_`` from the first fit's rows (of
        every rank under ``comm``), or None for both with the baseline off.

        Backfitting: each round sets the offsets of one table after another to their
        rows' residual (the target less the mean and the other tables' offsets) summed
        over the rows, over the rows' count plus ``baseline_shrinkage``. With bags of
        several ids (or weights other than 1), an id's weight in a row times the row's
        total absolute weight stands for the count: a bound on the least-squares
        curvature, so that a bag's ids share its residual (m ids of weight 1 take 1/m
        each) and the step cannot overshoot, whatever the weights' signs."""
        self.baseline_mean_ = self.baseline_offsets_ = None
        if not self._baseline_on():
            return
        n, k = Y.shape
        stats = np.concatenate([Y.sum(axis=0, dtype=np.float64), [n]])
        if comm is not None:
            _mpi.allreduce_(comm, stats)
        mean = stats[:k] / max(stats[-1], 1.0)
        offsets = self._table_offsets
        n_tables = len(offsets) - 1
        table = [np.zeros((offsets[t + 1] - offsets[t], k)) for t in range(n_tables)]
        resid = Y.astype(np.float64) - mean
        # one table's lookups at a time, and its share of each row recomputed from its
        # offsets: memory stays at the residual plus one table's lookups
        for _ in range(_BASELINE_ROUNDS):
            for t in range(n_tables):
                ids, rows, w, bag_w = self._table_lookups(bags, t, n)
                size = len(table[t])
                resid += self._lookup_sum(table[t], ids, rows, w, n)  # the others' residual
                sums = np.empty((k + 1, size))
                for j in range(k):
                    sums[j] = np.bincount(ids, w * resid[rows, j], minlength=size)
                sums[k] = np.bincount(ids, np.abs(w) * bag_w[rows], minlength=size)
                if comm is not None:
                    _mpi.allreduce_(comm, sums)
                den = sums[k] + float(self.baseline_shrinkage)
                # an id no row looks up keeps 0 (0 / 0 with baseline_shrinkage=0)
                table[t] = np.divide(sums[:k], den, out=np.zeros_like(sums[:k]),
                                     where=den > 0).T
                resid -= self._lookup_sum(table[t], ids, rows, w, n)
        self.baseline_mean_ = mean.astype(np.float32)
        self.baseline_offsets_ = (np.concatenate(table) if table
                                  else np.zeros((0, k))).astype(np.float32)

    def _table_lookups(self, bags, t, n):
        """Table ``t``'s lookups of ``n`` rows: (local ids, row of each, weight of
        each, each row's total absolute weight)."""
        lo, hi = bags.ptr[t, 0], bags.ptr[t, -1]
        ids = (bags.ids[lo:hi] - self._table_offsets[t]).astype(np.int64)
        rows = np.repeat(np.arange(n), np.diff(bags.ptr[t]))
        w = (bags.wts[lo:hi].astype(np.float64) if bags.wts.size
             else np.ones(hi - lo))
        return ids, rows, w, np.bincount(rows, np.abs(w), minlength=n)

    @staticmethod
    def _lookup_sum(table, ids, rows, w, n):
        """Each row's weighted sum of ``table``'s rows at its lookups, (n, k)."""
        out = np.empty((n, table.shape[1]))
        for j in range(table.shape[1]):
            out[:, j] = np.bincount(rows, w * table[ids, j], minlength=n)
        return out

    def _with_baseline(self, out, bags, sign=1.0):
        """``out`` (n, k) plus (``sign=-1``: less) the baseline of its rows, as a new
        float32 array; ``out`` itself with the baseline off."""
        mean = getattr(self, "baseline_mean_", None)  # None: off, or an older pickle
        if mean is None:
            return out
        n = out.shape[0]
        base = np.tile(mean.astype(np.float64), (n, 1))
        for t in range(len(self._table_offsets) - 1):
            ids, rows, w, _ = self._table_lookups(bags, t, n)
            base += self._lookup_sum(self.baseline_offsets_[self._table_offsets[t]:], ids,
                                     rows, w, n)
        return np.ascontiguousarray(out + sign * base, dtype=np.float32)

    def _train_params(self, epsilon, alpha, embedding_alpha):
        """The hyper-parameters of the next epoch. The learning-rate schedule and the
        batch size are read anew every epoch; the penalty terms are the values of the
        whole fit."""
        scales = self._table_rate_scales()
        self.embedding_learning_rates_ = float(self.learning_rate_init) * scales.astype(
            np.float64)
        return TrainParams(self.batch_size, self.learning_rate_init,
                           self.learning_rate_decay, self.warmup_steps, epsilon, alpha,
                           embedding_alpha, scales)

    # --------------------------------------------------------- training
    def _train_rows(self, dense, bags, Y, order, epoch, n_threads, params):
        state = self._state
        B = int(min(params.batch_size, max(len(order), 1)))
        n_batches = -(-len(order) // B)
        work = self._workspace().reserve(state, B, train=True,
                                         slots=params.needs_slots(state))
        with single_threaded_blas():
            losses = _kernels.train_epoch(dense, Y, bags.ptr, bags.ids, bags.wts,
                                          order.astype(np.int64, copy=False), B,
                                          params.learning_rates(state.step, n_batches, epoch),
                                          state, work, params.epsilon, params.alpha,
                                          params.embedding_alpha,
                                          params.table_scales(len(self.table_sizes_)),
                                          n_threads)
        state.step += n_batches
        sizes = np.full(n_batches, B, dtype=np.float64)
        sizes[-1] = len(order) - B * (n_batches - 1)
        return float(np.dot(losses, sizes) / len(order))

    def _raw_output(self, dense, bags, n_threads):
        n = dense.shape[0]
        out = np.empty((n, self._state.layout.k), dtype=np.float32)
        B = _PREDICT_BATCH
        # a workspace of its own: prediction leaves the estimator untouched
        work = _kernels.Workspace().reserve(self._state, B)
        with single_threaded_blas():
            _kernels.forward(dense, bags.ptr, bags.ids, bags.wts, B, self._state, work, out,
                             n_threads)
        return out

    def _fit(self, X, y, *, incremental, classes=None):
        comm = _mpi.check_comm(self.comm)
        if comm is not None:
            if self.precision != "float32":
                raise ValueError("precision='bfloat16' is not available with comm: "
                                 "distributed training keeps float32 weights.")
            return self._fit_mpi(X, y, comm, incremental=incremental, classes=classes)
        if getattr(self, "_shards", None) is not None and (incremental or self.warm_start):
            self._sharded_tables(None)  # raises: the tables are spread over ranks
        self._shards = None
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             "y is None.")
        first = not hasattr(self, "_state") or not (incremental or self.warm_start)
        dense, bags = self._inputs(X, reset=first)
        dense = self._scale_dense(dense, reset=first)
        Y = self._encode_y(y, dense.shape[0], first=first, classes=classes)
        if first:
            self._fit_baseline(Y, bags)
        Y = self._with_baseline(Y, bags, -1.0)  # the network learns what it leaves
        if first:
            self._seed = _check_seed(self.random_state)
            self._rng = np.random.default_rng(self._seed)
            self._init_model(dense.shape[1], Y.shape[1], self._output_bias(Y.mean(axis=0)),
                             self._rng)
            self._count_lookups(bags)
        state = self._state
        state.ensure_writeable()
        state.set_precision(self.precision)
        penalty = self._penalty()
        n_threads = effective_n_threads(self.n_jobs)
        self.n_threads_ = n_threads
        n = dense.shape[0]
        rows = np.arange(n, dtype=np.int64)
        validation = None
        if self._early_stopping_on(n) and not incremental:
            if self.validation_loss_curve_ is None:
                self.validation_loss_curve_ = []
            perm = self._rng.permutation(rows)
            n_val = max(1, int(round(self.validation_fraction * n)))
            if n_val >= n:
                raise ValueError("validation_fraction leaves no training rows.")
            val, rows = np.sort(perm[:n_val]), perm[n_val:]

            def score():
                out = self._raw_output(dense[val], self._subset_bags(bags, val), n_threads)
                return self._loss_value(out, Y[val])

            validation = _epochs.Validation(score, "loss", False, state.snapshot, state.restore,
                                            self.validation_loss_curve_)
        n_iter = self.n_iter_
        best = _epochs.run_epochs(
            self, rows, lambda order, epoch: (self._train_rows(
                dense, bags, Y, order, epoch, n_threads, self._train_params(*penalty)), {}),
            incremental=incremental, rng=lambda: self._rng, validation=validation,
            lr_param="learning_rate_init")
        if validation is not None and self.validation_pass:
            # the held-out rows, unused so far, take one pass at the kept model
            self._train_rows(dense, bags, Y, self._rng.permutation(val),
                             self.n_iter_ - n_iter, n_threads, self._train_params(*penalty))
        if best is not None:
            self.best_validation_loss_ = best
        return self

    @staticmethod
    def _subset_bags(bags, rows):
        """Bags of a subset of samples (same global ids)."""
        T = bags.ptr.shape[0]
        ptr = np.empty((T, len(rows) + 1), dtype=np.int64)
        ids_parts, wts_parts, base = [], [], 0
        for t in range(T):
            idx, lens = _inputs.bag_positions(bags.ptr[t], rows)
            ptr[t, 0] = base
            ptr[t, 1:] = base + np.cumsum(lens)
            ids_parts.append(bags.ids[idx])
            if bags.wts.size:
                wts_parts.append(bags.wts[idx])
            base += lens.sum()
        ids = np.concatenate(ids_parts) if ids_parts else bags.ids[:0]
        wts = np.concatenate(wts_parts) if wts_parts else np.empty(0, np.float32)
        return _inputs.Bags(ptr, ids, wts)

    def _forward_X(self, X):
        check_is_fitted(self, "_state")
        if getattr(self, "_shards", None) is not None:
            return self._forward_sharded(X)
        dense, bags = self._inputs(X, reset=False)
        out = self._raw_output(self._scale_dense(dense, reset=False), bags,
                               effective_n_threads(self.n_jobs))
        return self._with_baseline(out, bags)

    # ------------------------------------------------------ MPI (comm=...)
    def _sharded_tables(self, comm):
        """The ``TableShards`` of this model, after checking that ``comm`` has the
        ranks they are spread over."""
        st = self._shards
        if comm is None or comm.Get_size() != st.n_ranks:
            raise ValueError(
                f"This model's embedding tables are split over {st.n_ranks} ranks "
                "(they exceeded rank_memory_budget, so fit did not gather them): predict "
                "collectively, each rank with its own rows, after "
                f"set_params(comm=...) with a communicator of {st.n_ranks} ranks in "
                "the order of the fit.")
        return st

    def _forward_sharded(self, X):
        comm = _mpi.check_comm(self.comm)
        st = self._sharded_tables(comm)
        with _mpi.raise_together(comm):
            # a rank with no rows still joins every step of the collective forward
            dense, bags = self._inputs(X, reset=False, min_samples=0)
            dense = self._scale_dense(dense, reset=False)
        with single_threaded_blas():
            out = _distributed.forward(comm, self._state, st, dense, bags,
                                       _mpi.rank_threads(comm, self.n_jobs))
        return self._with_baseline(out, bags)

    def _fit_mpi(self, X, y, comm, *, incremental, classes=None):
        """SPMD fit / partial_fit: every rank passes its own rows (see ``comm``)."""
        first = not hasattr(self, "_state") or not (incremental or self.warm_start)
        N, me = comm.Get_size(), comm.Get_rank()
        local_classes = None
        with _mpi.raise_together(comm):
            if y is None:
                raise ValueError(f"{type(self).__name__} requires y to be passed, but the "
                                 "target y is None.")
            if not first and getattr(self, "_shards", None) is not None:
                self._sharded_tables(comm)  # the same number of ranks as before
            # a rank with no rows joins every step with an empty batch
            dense, bags = self._inputs(X, reset=first, min_samples=0)
            if first and classes is None and isinstance(self, ClassifierMixin):
                local_classes = np.unique(column_or_1d(y))
        if comm.allreduce(dense.shape[0]) == 0:
            raise ValueError(f"X has 0 samples on every one of the {N} ranks of comm: "
                             "there is nothing to train on.")
        refresh = False
        if first:
            if self._sparse_input and isinstance(self.feature_groups, str):
                # 'auto' finds the fields in the data: a rank without rows found none
                # and takes those of the first rank that has rows
                found = comm.allgather([g.tolist() for g in self.feature_groups_]
                                       if dense.shape[0] else None)
                if not dense.shape[0]:
                    groups = next(g for g in found if g is not None)
                    self._set_groups([np.asarray(g, dtype=np.int64) for g in groups],
                                     self.n_features_in_)
                    refresh = True
            if not self._sparse_input and self.table_sizes is None:
                sizes = _mpi.allreduce_(comm, self.table_sizes_.copy(), "max")
                if not np.array_equal(sizes, self.table_sizes_):
                    self._set_tables(sizes)  # the largest id of every rank's rows
                    refresh = True
            _mpi.agree(comm, (self._sparse_input, int(self.n_features_in_),
                              self._dense_cols.tolist(), self.table_sizes_.tolist()),
                       "the input layout (sparse or dense, columns, categorical columns and "
                       "table sizes)")
            if local_classes is not None:
                # (without the empty arrays of ranks with no rows, whose dtype may
                # differ: a y=[] is float64)
                classes = np.unique(np.concatenate(
                    [c for c in comm.allgather(local_classes) if c.size]))
        with _mpi.raise_together(comm):
            if refresh:
                dense, bags = self._inputs(X, reset=False, min_samples=0)
            Y = self._encode_y(y, dense.shape[0], first=first, classes=classes)
        dense = self._scale_dense(dense, reset=first, comm=comm)
        if first:
            _mpi.agree(comm, int(Y.shape[1]), "the number of outputs (columns of y)")
            self._fit_baseline(Y, bags, comm)
            Y = self._with_baseline(Y, bags, -1.0)
            self._seed = _mpi.shared_seed(comm, _check_seed(self.random_state))
            self._rng = np.random.default_rng(self._seed)
            stats = np.concatenate([Y.sum(axis=0, dtype=np.float64), [Y.shape[0]]])
            _mpi.allreduce_(comm, stats)
            self._init_model(dense.shape[1], Y.shape[1],
                             self._output_bias(stats[:-1] / max(stats[-1], 1)), self._rng,
                             tables=False)
            self._count_lookups(bags, comm)
            self._shards = None
        else:
            Y = self._with_baseline(Y, bags, -1.0)
        state = self._state
        state.ensure_writeable()
        state.set_precision("float32")  # a bfloat16 model trained without comm before
        penalty = self._penalty()
        n_threads = _mpi.rank_threads(comm, self.n_jobs)
        self.n_threads_ = n_threads
        d = state.layout.d
        st = getattr(self, "_shards", None)
        if st is not None:
            self._sharded_tables(comm)
        else:
            st = _distributed.make_tables(
                comm, d, self.table_sizes_, self._table_offsets, state.adagrad,
                self.rank_memory_budget, seed=self._seed, full=None if first else state.tables)
            state.tables = EmbeddingTables(  # the shards hold them
                np.empty((0, d), dtype=np.float32), np.empty(0, dtype=np.float32),
                self._table_offsets)
        has_wts = bool(comm.allreduce(int(bags.wts.size > 0)))
        n = dense.shape[0]
        rows = np.arange(n, dtype=np.int64)
        validation = None
        if self._early_stopping_on(comm.allreduce(n)) and not incremental:
            if self.validation_loss_curve_ is None:
                self.validation_loss_curve_ = []
            perm = np.random.default_rng([self._seed, 1, me]).permutation(rows)
            # a rank with no rows holds out none (the others' rows score the epochs)
            n_val = max(1, int(round(self.validation_fraction * n))) if n else 0
            with _mpi.raise_together(comm):
                if n and n_val >= n:
                    raise ValueError("validation_fraction leaves no training rows.")
            val, rows = np.sort(perm[:n_val]), perm[n_val:]
            val_bags = self._subset_bags(bags, val)

            def score():  # the mean loss over every rank's held-out rows
                out = _distributed.forward(comm, state, st, dense[val], val_bags, n_threads)
                total = np.array([self._loss_value(out, Y[val]) * len(val) if len(val)
                                  else 0.0, len(val)])
                _mpi.allreduce_(comm, total)
                return float(total[0] / total[1])

            def restore(saved):
                state.restore(saved[0])
                st.local.restore(saved[1])

            validation = _epochs.Validation(
                score, "loss", False, lambda: (state.snapshot(tables=False), st.local.snapshot()),
                restore, self.validation_loss_curve_)
        stats = {}
        work = self._workspace()
        n_iter = self.n_iter_
        with single_threaded_blas():
            # each rank shuffles its own rows, from the shared seed, its rank and the epoch
            best = _epochs.run_epochs(
                self, rows, lambda order, epoch: (_distributed.train_epoch(
                    comm, state, st, self._train_params(*penalty), work, dense, bags, Y,
                    order, epoch, n_threads, has_wts, stats), {}),
                incremental=incremental, comm=comm, validation=validation,
                rng=lambda: np.random.default_rng([self._seed, 2, me, self.n_iter_]),
                n_samples=comm.allreduce(len(rows)), lr_param="learning_rate_init")
            if validation is not None and self.validation_pass:
                _distributed.train_epoch(
                    comm, state, st, self._train_params(*penalty), work, dense, bags, Y,
                    np.random.default_rng([self._seed, 3, me]).permutation(val),
                    self.n_iter_ - n_iter, n_threads, has_wts, stats)
        if best is not None:
            self.best_validation_loss_ = best
        self.comm_stats_ = stats
        row_bytes = 4 * d + (4 if state.adagrad else 0)
        n_rows = int(self._table_offsets[-1])
        if self.rank_memory_budget is None or n_rows * row_bytes <= self.rank_memory_budget:
            state.tables = _distributed.assemble(comm, st, n_rows, state.adagrad)
            self._shards = None
        else:
            self._shards = st
        return self

    def fit(self, X, y):
        """Train the model on (X, y) for up to ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, DataFrame, sparse matrix} of shape (n_samples, n_features)
            Dense input whose ``categorical_features`` columns hold non-negative
            integer ids (one embedding table each) and whose other columns feed the
            bottom MLP; or a sparse matrix whose ``feature_groups`` columns are the
            bags of the embedding tables (weighted by their values) and whose other
            columns are dense features.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets (regression) or class labels (classification).

        Returns
        -------
        self : object
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from slidelearn import DLRMRegressor
        >>> X = np.array([[0.5, 3], [1.5, 0], [2.5, 1]] * 10)
        >>> reg = DLRMRegressor(categorical_features=[1], max_iter=2, random_state=0)
        >>> reg.fit(X, X[:, 0]).table_sizes_
        array([4])
        """
        self._validate_params()
        return self._fit(X, y, incremental=False)


class DLRMRegressor(RegressorMixin, _BaseDLRM):
    """DLRM recommender model for regression (squared error), trained on CPU.

    A bottom MLP maps the dense features to a vector of ``embedding_dim``; one
    embedding table per categorical feature maps its id (or a bag of ids) to a
    vector of the same size; the interaction takes the pairwise dot products of
    these vectors (or concatenates them) and a top MLP predicts the target. Training
    is mini-batch SGD or Adagrad (row-wise for the tables) whose embedding update is
    fused with the backward pass and touches only the rows seen in the batch.

    Parameters
    ----------
    categorical_features : array-like of int, str or bool, 'from_dtype' or None, default='from_dtype'
        Columns of a dense ``X`` that hold categorical ids, as column indices,
        feature names or a boolean mask. ``'from_dtype'`` takes the pandas
        ``category`` columns of a DataFrame (their codes are the ids) and none for
        arrays. Ids must be non-negative integers below 2**63 (integer columns are
        read exactly; float columns must hold whole numbers): a missing, infinite,
        negative, fractional or too large id, or text, raises ``ValueError`` naming
        the column and row. An id not smaller than its table's size is hashed into it
        (``id % size``).
    feature_groups : list of array-like of int, 'auto' or None, default='auto'
        For sparse ``X``: the column indices of each categorical field (one
        embedding table each; a row's bag is its non-zeros in those columns,
        weighted by their values). ``'auto'`` finds the fields of one-hot encoded
        columns (consecutive 0/1 columns with at most one non-zero per row, as a
        ``OneHotEncoder`` writes them), so that a ``ColumnTransformer`` with a
        ``OneHotEncoder`` can precede the model in a ``Pipeline``; for exact groups
        of a fitted encoder use :func:`~slidelearn.feature_groups_from_encoder`.
        Ungrouped columns are dense features. ``None`` makes every column dense.
    table_sizes : int, array-like of int or None, default=None
        Rows of each categorical feature's table (an int applies to all). ``None``
        derives them from the first ``fit`` / ``partial_fit`` data as the largest id
        plus one.
    feature_scaling : {"auto"} or None, default="auto"
        ``"auto"``: the first ``fit`` standardises every dense feature (the inputs of
        the bottom MLP) to mean 0 and variance 1 over the training rows
        (``dense_mean_``, ``dense_scale_``), in training and prediction alike, so that
        raw counts, ages or prices train as well as scaled ones. None: the dense
        features are used as given.
    baseline : "auto" or bool, default="auto"
        Fit, before the network, the mean target plus an offset per table row (each
        id's mean residual over its rows, shrunk by ``baseline_shrinkage``, backfitted
        over the tables), and train the network on what it leaves; ``predict`` adds
        it back (``baseline_mean_``, ``baseline_offsets_``). ``"auto"``: on when there
        is a table. With each id's main effect taken out, the network learns what the
        ids do together: it lowered the error on both MovieLens splits in the
        defaults study (see "Defaults, and choosing parameters" in the user guide).
        The first ``fit`` / ``partial_fit`` sets it; later
        ``partial_fit`` or warm-started calls keep it. Under ``comm`` every rank keeps
        the offsets of every table (4 bytes per table row and output).
    baseline_shrinkage : float, default=25.0
        Pseudo-rows of residual 0 added to each id's rows in ``baseline``: an id seen
        n times keeps n / (n + 25) of its mean residual, so that rare ids get small
        offsets.
    embedding_dim : int, default=16
        Size of the embedding vectors and of the bottom MLP's output.
    bottom_mlp : array-like of int, default=(64,)
        Hidden layer sizes of the bottom MLP (ReLU); a last layer of
        ``embedding_dim`` units (ReLU) is added.
    top_mlp : array-like of int, default=(64,)
        Hidden layer sizes of the top MLP (ReLU); a linear output layer is added.
        Its input size is derived from the interaction.
    interaction : {'dot', 'cat'}, default='cat'
        ``'dot'``: the bottom output concatenated with the pairwise dot products
        (strict lower triangle) of the bottom output and the pooled embeddings;
        ``'cat'``: all those vectors concatenated. ``'cat'`` lets the top MLP see
        each embedding, not only their products: it was as good or better on every
        data set of the defaults study; ``'dot'`` is the reference DLRM's, and
        smaller with many tables.
    self_interaction : bool, default=False
        With ``'dot'``, also include each vector's dot product with itself.
    factorization_term : bool or 'auto', default='auto'
        Add to the output the sum of the pairwise dot products of the pooled
        embeddings (a factorization machine's second-order term, as in DeepFM), so
        that products such as user x item reach the output without the top MLP having
        to learn them. ``True`` needs a single target and at least two tables;
        ``'auto'`` adds the term wherever that holds. It lowered the error on
        MovieLens (both splits) and the Criteo sample in the defaults study, together
        with the tables' own L2 term and rates (see "Defaults, and choosing
        parameters" in the user guide).
    solver : {'adagrad', 'sgd'}, default='adagrad'
        Adagrad (row-wise for the embedding tables: one accumulator per row) or
        plain SGD.
    learning_rate_init : float, default=0.01
        Learning rate.
    learning_rate_decay : float in (0, 1], default=1.0
        Factor applied to the learning rate after every epoch of ``fit``.
    warmup_steps : int, default=0
        Batches over which the learning rate ramps up linearly.
    alpha : float, default=0.0
        L2 penalty on the MLP weights (and on each looked-up embedding row with
        ``embedding_alpha=None``).
    embedding_alpha : float or None, default=0.1
        L2 penalty on each looked-up embedding row (averaged over the batch, as the
        loss), apart from the MLP's ``alpha``: tables overfit on few rows per id
        where the same decay would stop the MLP from learning. None: ``alpha``.
    embedding_learning_rate : float, 'auto' or None, default='auto'
        Learning rate of the embedding tables; they follow the same decay and warm-up
        as ``learning_rate_init``. Row-wise Adagrad divides by one accumulator per row,
        which makes the tables' steps smaller than the MLP's at the same rate.
        ``'auto'``: each table learns at ``learning_rate_init`` times its ids'
        mean number of lookups in the first fit's rows over 10, clipped to [1, 5]:
        user and item tables, whose ids recur, learn up to 5 times faster, while
        tables of rarely seen (e.g. hashed) ids keep the MLP's rate, where a larger
        step would only memorise their few rows. None: ``learning_rate_init``.
    epsilon : float, default=1e-8
        Adagrad's numerical stability constant.
    batch_size : int, default=256
        Samples per mini-batch.
    max_iter : int, default=10
        Epochs of ``fit``.
    tol : float, default=1e-4
        Improvement of the (validation) loss below which an epoch counts as no
        improvement.
    n_iter_no_change : int, default=3
        Epochs without improvement after which ``fit`` stops.
    early_stopping : "auto" or bool, default="auto"
        Hold out ``validation_fraction`` of the rows, stop on their loss and keep
        the best model. ``"auto"``: on when ``fit`` gets at least 200 rows (over all
        ranks of ``comm``): embedding tables overfit within a few epochs, so the
        epoch count is best left to the validation loss.
    validation_fraction : float, default=0.1
        Share of the rows held out for early stopping.
    validation_pass : bool, default=True
        After early stopping has put back the best epoch's model, train one pass
        over the held-out rows, so that no row goes unused (the strategy of
        continuing training on the validation data in Goodfellow et al., Deep
        Learning, 7.8). ``validation_loss_curve_`` and ``best_validation_loss_``
        describe the model before this pass, and ``n_iter_`` does not count it.
    shuffle : bool, default=True
        Shuffle the rows every epoch.
    warm_start : bool, default=False
        Continue from the current model when ``fit`` is called again.
    n_jobs : int or None, default=None
        Threads (OpenMP and BLAS); ``None`` uses all usable cores, honouring
        ``OMP_NUM_THREADS`` and CPU affinity. With ``comm``, ``None`` gives each rank
        its share of its node's cores (usable cores / ranks on the node).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and shuffling; with ``n_jobs=1`` and a fixed seed
        two fits are identical.
    verbose : int, default=0
        Print the loss and samples/s of every epoch.
    callback : callable or None, default=None
        Called after every training epoch (of ``fit``, and the one of each
        ``partial_fit``) as ``callback(estimator, info)`` with an
        :class:`~slidelearn.utils.EpochInfo`; training stops after the epoch when it
        returns True (under ``comm``: on any rank).
    comm : mpi4py.MPI.Intracomm or None, default=None
        Train on several processes (one machine or a cluster) over MPI. ``fit`` and
        ``partial_fit`` then run SPMD: every rank of ``comm`` calls them with its own
        rows (a rank may have none, as long as some rank has rows), and afterwards
        every rank holds the same fitted model. Hybrid parallel,
        as in the CPU-cluster DLRM work: the MLPs are replicated (one allreduce of
        their gradient per step), each embedding table lives on one rank (split by
        rows when it exceeds ``rank_memory_budget``) and pooled embeddings and their
        gradients travel by all-to-all. ``batch_size`` is the global batch: each rank
        contributes its share of it per step. Launch with ``mpiexec -n 4 python -m
        mpi4py script.py`` (needs ``pip install slidelearn[mpi]``). The communicator
        is not pickled (a loaded model has ``comm=None``).
    rank_memory_budget : float or None, default=None
        With ``comm``: the most bytes of embedding tables (with their Adagrad state)
        one rank may hold. Tables are placed whole on the least loaded rank; a table
        that fits on no rank is split by rows. When all tables together exceed the
        budget they stay spread over the ranks after ``fit``: such a model predicts
        collectively (every rank calls ``predict`` with its rows, ``comm`` set to the
        same number of ranks). ``None``: no limit.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"``: split-SGD, as in the CPU-cluster DLRM work. Every weight of
        the MLPs and the tables is kept as its upper 16 bits (a bfloat16, which the
        layers and the embedding sums read) and a separate array of its lower 16 bits:
        still 4 bytes a weight, and each update joins the halves, applies the fp32
        step and splits again, so the weights follow fp32 SGD / Adagrad exactly for
        the gradients they get. The MLP products run on bfloat16 inputs with fp32
        accumulation (``vdpbf16ps`` on CPUs with AVX-512 BF16, exact fp32 products of
        the same values elsewhere). Faster on such CPUs (see the performance guide);
        gradients and losses differ from float32 training by bfloat16 rounding of the
        activations. A change between fits converts the model exactly. Not available
        with ``comm``.

    Attributes
    ----------
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` had them.
    is_categorical_ : ndarray of bool
        Categorical columns of dense input.
    feature_groups_ : list of ndarray
        Fields of sparse input.
    table_sizes_ : ndarray of int64
        Rows of each embedding table.
    embedding_learning_rates_ : ndarray of shape (n_tables,)
        Each table's learning rate in the last fit, before decay and warm-up
        (``embedding_learning_rate`` resolved).
    dense_mean_, dense_scale_ : ndarray of shape (n_dense,) or None
        Standardisation of the dense features (see ``feature_scaling``); None
        when it is off or there is no dense feature.
    baseline_mean_ : ndarray of shape (n_outputs,) or None
        Mean target of the first fit's rows, with ``baseline`` on (else None).
    baseline_offsets_ : ndarray of shape (n_table_rows, n_outputs) or None
        Offset of every table row (the tables one after another, in
        ``table_sizes_`` order; 0 for ids the first fit did not see), with
        ``baseline`` on (else None).
    n_iter_ : int
        Epochs run (``partial_fit`` calls count one each).
    loss_curve_ : list of float
        Mean training loss of each epoch (half the squared error).
    validation_loss_curve_ : list of float or None
        Validation loss of each epoch with early stopping.
    best_validation_loss_ : float or None
        Best validation loss with early stopping.
    comm_stats_ : dict
        With ``comm``: this rank's traffic in the last ``fit`` / ``partial_fit``:
        ``steps``, bytes sent to other ranks (``ids``, ``pooled``, ``grad``,
        ``allreduce``), seconds waiting on communication ``comm_s`` and in total
        ``total_s``.

    See Also
    --------
    DLRMClassifier : The same model with a logistic / softmax output (CTR).

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn import DLRMRegressor
    >>> rng = np.random.default_rng(0)
    >>> user, item = rng.integers(0, 50, 2000), rng.integers(0, 40, 2000)
    >>> u, v = rng.normal(size=(50, 4)), rng.normal(size=(40, 4))
    >>> y = (u[user] * v[item]).sum(1)
    >>> X = np.column_stack([user, item])
    >>> reg = DLRMRegressor(categorical_features=[0, 1], embedding_dim=8, max_iter=30,
    ...                     interaction="dot", learning_rate_init=0.05,
    ...                     random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.8
    True
    """

    _loss_name = "squared_error"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _encode_y(self, y, n, *, first, classes=None):
        y = np.asarray(y) if not sp.issparse(y) else y
        if sp.issparse(y):
            raise TypeError("y must be dense for DLRMRegressor.")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D; got shape {y.shape}.")
        if y.dtype.kind not in "biuf":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"y must be numeric for regression; got dtype {y.dtype}.")
        Y = np.asarray(y, dtype=np.float32)
        Y = Y[:, None] if Y.ndim == 1 else Y  # (reshape(n, -1) fails for n = 0)
        if not np.all(np.isfinite(Y)):
            raise ValueError("y contains NaN or infinity.")
        if Y.shape[0] != n:
            raise ValueError(f"X has {n} samples but y has {Y.shape[0]}.")
        if first:
            self._y_ndim = y.ndim
        elif Y.shape[1] != self._state.layout.k:
            raise ValueError(f"y has {Y.shape[1]} outputs; the model was fitted with "
                             f"{self._state.layout.k}.")
        return np.ascontiguousarray(Y)

    def _output_bias(self, mean):
        return mean

    def _loss_value(self, out, Y):
        return float(0.5 * np.mean(np.sum((out - Y) ** 2, axis=1)))

    def partial_fit(self, X, y):
        """Train one pass over (X, y), continuing from the current model.

        The first call builds the model from this data (table sizes from
        ``table_sizes``, or the ids of this first chunk); ``fit`` is not needed.

        Parameters
        ----------
        X : {array-like, DataFrame, sparse matrix} of shape (n_samples, n_features)
            Input, as for ``fit``.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self : DLRMRegressor
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from slidelearn import DLRMRegressor
        >>> rng = np.random.default_rng(0)
        >>> X = np.column_stack([rng.normal(size=400), rng.integers(0, 10, 400)])
        >>> y = X[:, 0] + (X[:, 1] % 2)
        >>> reg = DLRMRegressor(categorical_features=[1], table_sizes=10, random_state=0)
        >>> for chunk in np.array_split(np.arange(400), 4):
        ...     reg = reg.partial_fit(X[chunk], y[chunk])
        >>> reg.n_iter_
        4
        """
        self._validate_params()
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predict targets.

        Parameters
        ----------
        X : {array-like, DataFrame, sparse matrix} of shape (n_samples, n_features)
            Input, as for ``fit``.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Predictions (float32... returned as float64 for scikit-learn metrics).

        Examples
        --------
        >>> import numpy as np
        >>> from slidelearn import DLRMRegressor
        >>> X = np.array([[0.0, 1], [1.0, 0], [2.0, 1]] * 20)
        >>> reg = DLRMRegressor(categorical_features=[1], random_state=0).fit(X, X[:, 0])
        >>> reg.predict(X[:3]).shape
        (3,)
        """
        out = self._forward_X(X).astype(np.float64)
        return out[:, 0] if self._y_ndim == 1 else out


class DLRMClassifier(ClassifierMixin, _BaseDLRM):
    """DLRM recommender model for classification (log loss), e.g. click-through rate.

    The same model as :class:`DLRMRegressor` with a logistic output for two
    classes (one output unit, as CTR models) or a softmax over the classes.

    Parameters
    ----------
    categorical_features : array-like of int, str or bool, 'from_dtype' or None, default='from_dtype'
        Columns of a dense ``X`` holding categorical ids (see :class:`DLRMRegressor`).
    feature_groups : list of array-like of int, 'auto' or None, default='auto'
        Fields of a sparse ``X`` (see :class:`DLRMRegressor`).
    table_sizes : int, array-like of int or None, default=None
        Rows of each categorical feature's table; larger ids are hashed into it.
    feature_scaling : {"auto"} or None, default="auto"
        ``"auto"``: the first ``fit`` standardises every dense feature (the inputs of
        the bottom MLP) to mean 0 and variance 1 over the training rows
        (``dense_mean_``, ``dense_scale_``), in training and prediction alike, so that
        raw counts, ages or prices train as well as scaled ones. None: the dense
        features are used as given.
    baseline : "auto" or bool, default="auto"
        The per-id offsets of :class:`DLRMRegressor` (``baseline``), fitted for the
        squared error only: ``"auto"`` is off here and ``True`` raises ``ValueError``.
    baseline_shrinkage : float, default=25.0
        Unused here (see ``baseline``).
    embedding_dim : int, default=16
        Size of the embedding vectors and of the bottom MLP's output.
    bottom_mlp : array-like of int, default=(64,)
        Hidden layer sizes of the bottom MLP; a layer of ``embedding_dim`` is added.
    top_mlp : array-like of int, default=(64,)
        Hidden layer sizes of the top MLP; the output layer is added.
    interaction : {'dot', 'cat'}, default='cat'
        Feature interaction.
    self_interaction : bool, default=False
        Include each vector's dot product with itself.
    factorization_term : bool or 'auto', default='auto'
        Add the sum of the pairwise dot products of the pooled embeddings to the
        logit (a factorization machine's second-order term, as in DeepFM). ``True``
        needs binary targets and at least two tables; ``'auto'`` adds the term
        wherever that holds (it lowered the Criteo sample's log loss in the defaults
        study).
    solver : {'adagrad', 'sgd'}, default='adagrad'
        Optimizer (row-wise Adagrad for the tables).
    learning_rate_init : float, default=0.01
        Learning rate.
    learning_rate_decay : float in (0, 1], default=1.0
        Per-epoch learning-rate factor.
    warmup_steps : int, default=0
        Batches of linear learning-rate warm-up.
    alpha : float, default=0.0
        L2 penalty on the MLP weights (and on each looked-up embedding row with
        ``embedding_alpha=None``).
    embedding_alpha : float or None, default=0.1
        L2 penalty on each looked-up embedding row. None: ``alpha``.
    embedding_learning_rate : float, 'auto' or None, default='auto'
        Learning rate of the embedding tables (same decay and warm-up as
        ``learning_rate_init``). ``'auto'``: per table, ``learning_rate_init`` times
        its ids' mean number of lookups in the first fit's rows over 10, clipped to
        [1, 5] (see :class:`DLRMRegressor`). None: ``learning_rate_init``.
    epsilon : float, default=1e-8
        Adagrad's stability constant.
    batch_size : int, default=256
        Samples per mini-batch.
    max_iter : int, default=10
        Epochs of ``fit``.
    tol : float, default=1e-4
        Minimum loss improvement per epoch.
    n_iter_no_change : int, default=3
        Epochs without improvement before stopping.
    early_stopping : "auto" or bool, default="auto"
        Stop on a held-out validation loss and keep the best model; ``"auto"``:
        with at least 200 rows.
    validation_fraction : float, default=0.1
        Share of rows held out for early stopping.
    validation_pass : bool, default=True
        After early stopping has put back the best epoch's model, train one pass
        over the held-out rows (see :class:`DLRMRegressor`).
    shuffle : bool, default=True
        Shuffle rows every epoch.
    warm_start : bool, default=False
        Continue from the current model on ``fit``.
    n_jobs : int or None, default=None
        Threads; ``None`` uses all usable cores.
    random_state : int, RandomState instance or None, default=None
        Seed of initialisation and shuffling.
    verbose : int, default=0
        Print progress per epoch.
    callback : callable or None, default=None
        Called after every training epoch (of ``fit``, and the one of each
        ``partial_fit``) as ``callback(estimator, info)`` with an
        :class:`~slidelearn.utils.EpochInfo`; training stops after the epoch when it
        returns True (under ``comm``: on any rank).
    comm : mpi4py.MPI.Intracomm or None, default=None
        Train on several processes (one machine or a cluster) over MPI. ``fit`` and
        ``partial_fit`` then run SPMD: every rank of ``comm`` calls them with its own
        rows (a rank may have none, as long as some rank has rows), and afterwards
        every rank holds the same fitted model. Hybrid parallel,
        as in the CPU-cluster DLRM work: the MLPs are replicated (one allreduce of
        their gradient per step), each embedding table lives on one rank (split by
        rows when it exceeds ``rank_memory_budget``) and pooled embeddings and their
        gradients travel by all-to-all. ``batch_size`` is the global batch: each rank
        contributes its share of it per step. Launch with ``mpiexec -n 4 python -m
        mpi4py script.py`` (needs ``pip install slidelearn[mpi]``). The communicator
        is not pickled (a loaded model has ``comm=None``).
    rank_memory_budget : float or None, default=None
        With ``comm``: the most bytes of embedding tables (with their Adagrad state)
        one rank may hold. Tables are placed whole on the least loaded rank; a table
        that fits on no rank is split by rows. When all tables together exceed the
        budget they stay spread over the ranks after ``fit``: such a model predicts
        collectively (every rank calls ``predict`` with its rows, ``comm`` set to the
        same number of ranks). ``None``: no limit.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"``: split-SGD, as in the CPU-cluster DLRM work. Every weight of
        the MLPs and the tables is kept as its upper 16 bits (a bfloat16, which the
        layers and the embedding sums read) and a separate array of its lower 16 bits:
        still 4 bytes a weight, and each update joins the halves, applies the fp32
        step and splits again, so the weights follow fp32 SGD / Adagrad exactly for
        the gradients they get. The MLP products run on bfloat16 inputs with fp32
        accumulation (``vdpbf16ps`` on CPUs with AVX-512 BF16, exact fp32 products of
        the same values elsewhere). Faster on such CPUs (see the performance guide);
        gradients and losses differ from float32 training by bfloat16 rounding of the
        activations. A change between fits converts the model exactly. Not available
        with ``comm``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` had them.
    is_categorical_ : ndarray of bool
        Categorical columns of dense input.
    feature_groups_ : list of ndarray
        Fields of sparse input.
    table_sizes_ : ndarray of int64
        Rows of each embedding table.
    embedding_learning_rates_ : ndarray of shape (n_tables,)
        Each table's learning rate in the last fit, before decay and warm-up
        (``embedding_learning_rate`` resolved).
    dense_mean_, dense_scale_ : ndarray of shape (n_dense,) or None
        Standardisation of the dense features (see ``feature_scaling``); None
        when it is off or there is no dense feature.
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Mean training log loss of each epoch.
    validation_loss_curve_ : list of float or None
        Validation log loss per epoch with early stopping.
    best_validation_loss_ : float or None
        Best validation log loss with early stopping.

    See Also
    --------
    DLRMRegressor : The same model for regression.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn import DLRMClassifier
    >>> rng = np.random.default_rng(0)
    >>> ad, site = rng.integers(0, 30, 3000), rng.integers(0, 20, 3000)
    >>> y = ((ad + site) % 3 == 0).astype(int)
    >>> X = np.column_stack([rng.normal(size=3000), ad, site])
    >>> clf = DLRMClassifier(categorical_features=[1, 2], max_iter=20,
    ...                      learning_rate_init=0.05, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    _loss_name = "log_loss"

    def _encode_y(self, y, n, *, first, classes=None):
        if sp.issparse(y):
            raise TypeError("y must be a 1-D array of class labels for DLRMClassifier.")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if y.shape[0] != n:
            raise ValueError(f"X has {n} samples but y has {y.shape[0]}.")
        if first:
            classes_ = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if len(classes_) < 2:
                raise ValueError("DLRMClassifier needs samples of at least 2 classes; got "
                                 f"1 class ({classes_[0]!r})." if len(classes_)
                                 else "y is empty.")
            self.classes_ = classes_
            self._loss_name = "log_loss" if len(classes_) == 2 else "softmax"
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)),
                                                        self.classes_):
            raise ValueError(f"classes={classes!r} differs from the first call's "
                             f"{self.classes_!r}.")
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if unknown.any():
            raise ValueError(f"y contains labels not in classes_: {np.unique(y[unknown])!r}.")
        if len(self.classes_) == 2:
            return idx.astype(np.float32).reshape(-1, 1)
        Y = np.zeros((n, len(self.classes_)), dtype=np.float32)
        Y[np.arange(n), idx] = 1.0
        return Y

    def _output_bias(self, mean):
        p = np.clip(mean, 1e-3, 1 - 1e-3)
        return np.log(p / (1 - p)) if p.shape[0] == 1 else np.log(p)

    def _loss_value(self, out, Y):
        if Y.shape[1] == 1:
            z = out[:, 0].astype(np.float64)
            return float(np.mean(np.logaddexp(0, z) - Y[:, 0] * z))
        z = out.astype(np.float64)
        lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
        return float(np.mean(lse - (Y * z).sum(1)))

    def partial_fit(self, X, y, classes=None):
        """Train one pass over (X, y), continuing from the current model.

        Parameters
        ----------
        X : {array-like, DataFrame, sparse matrix} of shape (n_samples, n_features)
            Input, as for ``fit``.
        y : array-like of shape (n_samples,)
            Class labels.
        classes : array-like of shape (n_classes,), default=None
            Every class that will ever appear; required on the first call.

        Returns
        -------
        self : DLRMClassifier
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from slidelearn import DLRMClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = np.column_stack([rng.normal(size=400), rng.integers(0, 5, 400)])
        >>> y = (X[:, 0] > 0).astype(int)
        >>> clf = DLRMClassifier(categorical_features=[1], table_sizes=5, random_state=0)
        >>> for chunk in np.array_split(np.arange(400), 4):
        ...     clf = clf.partial_fit(X[chunk], y[chunk], classes=[0, 1])
        >>> clf.classes_
        array([0, 1])
        """
        self._validate_params()
        if not hasattr(self, "_state") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, incremental=True, classes=classes)

    def decision_function(self, X):
        """Raw model outputs (logits).

        Parameters
        ----------
        X : {array-like, DataFrame, sparse matrix} of shape (n_samples, n_features)
            Input, as for ``fit``.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The logit of ``classes_[1]`` for two classes, else one logit per class.

        Examples
        --------
        >>> import numpy as np
        >>> from slidelearn import DLRMClassifier
        >>> X = np.array([[0.0, 1], [1.0, 0]] * 30)
        >>> clf = DLRMClassifier(categorical_features=[1], random_state=0).fit(X, X[:, 1])
        >>> clf.decision_function(X[:2]).shape
        (2,)
        """
        out = self._forward_X(X).astype(np.float64)
        return out[:, 0] if out.shape[1] == 1 else out

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : {array-like, DataFrame, sparse matrix} of shape (n_samples, n_features)
            Input, as for ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probability of each class in ``classes_``.

        Examples
        --------
        >>> import numpy as np
        >>> from slidelearn import DLRMClassifier
        >>> X = np.array([[0.0, 1], [1.0, 0]] * 30)
        >>> clf = DLRMClassifier(categorical_features=[1], random_state=0).fit(X, X[:, 1])
        >>> proba = clf.predict_proba(X[:2])
        >>> bool(np.allclose(proba.sum(axis=1), 1))
        True
        """
        z = self.decision_function(X)
        if z.ndim == 1:
            p1 = np.exp(-np.logaddexp(0.0, -z))
            return np.column_stack([1.0 - p1, p1])
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, DataFrame, sparse matrix} of shape (n_samples, n_features)
            Input, as for ``fit``.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The most probable class of each row.

        Examples
        --------
        >>> import numpy as np
        >>> from slidelearn import DLRMClassifier
        >>> X = np.array([[0.0, 1], [1.0, 0]] * 30)
        >>> clf = DLRMClassifier(categorical_features=[1], random_state=0).fit(X, X[:, 1])
        >>> clf.predict(X[:2]).tolist()
        [1.0, 0.0]
        """
        z = self.decision_function(X)
        idx = (z > 0).astype(np.int64) if z.ndim == 1 else z.argmax(axis=1)
        return self.classes_[idx]
