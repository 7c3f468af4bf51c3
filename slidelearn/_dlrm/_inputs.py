"""Turning user inputs into the arrays the DLRM kernels read: dense features for the
bottom MLP, and for every embedding table a bag of (global row id, weight) per sample.

Two input kinds:

* a dense 2-D array or DataFrame whose ``categorical_features`` columns hold
  non-negative integer ids (one id per table and sample);
* a scipy sparse matrix whose one-hot / multi-hot columns are grouped into fields
  (``feature_groups``); a field's bag is the row's non-zeros in its columns,
  weighted by their values. Ungrouped columns are dense features.
"""
import numbers

import numpy as np

__all__ = ["feature_groups_from_encoder"]

# Largest table a derived size may give before we ask for explicit table_sizes.
MAX_DERIVED_TABLE_ROWS = 1 << 26


class Bags:
    """Embedding-table input of n samples: ``ptr`` (T, n + 1) int64 offsets into
    ``ids`` (global row ids, int32 or int64) and ``wts`` (float32, or empty when every
    weight is 1)."""

    __slots__ = ("ptr", "ids", "wts")

    def __init__(self, ptr, ids, wts):
        self.ptr, self.ids, self.wts = ptr, ids, wts


def _is_dataframe(X):
    return hasattr(X, "dtypes") and hasattr(X, "columns") and hasattr(X, "iloc")


def resolve_categorical(categorical_features, X, n_features, feature_names):
    """Boolean mask of the categorical columns (as HistGradientBoosting resolves it)."""
    cf = categorical_features
    if cf is None:
        return np.zeros(n_features, dtype=bool)
    if isinstance(cf, str):
        if cf != "from_dtype":
            raise ValueError(f"categorical_features={cf!r}: expected 'from_dtype', None, "
                             "indices, names or a boolean mask.")
        if _is_dataframe(X):
            return np.array([str(dt) == "category" for dt in X.dtypes], dtype=bool)
        return np.zeros(n_features, dtype=bool)
    cf = np.asarray(cf)
    if cf.size == 0:
        return np.zeros(n_features, dtype=bool)
    if cf.dtype.kind == "b":
        if cf.shape != (n_features,):
            raise ValueError(f"categorical_features is a boolean mask of shape {cf.shape}; "
                             f"expected ({n_features},).")
        return cf.copy()
    mask = np.zeros(n_features, dtype=bool)
    if cf.dtype.kind in "OUS":
        if feature_names is None:
            raise ValueError("categorical_features given as names but X has no feature "
                             "names (pass a DataFrame, or use column indices).")
        names = list(feature_names)
        for name in cf:
            if name not in names:
                raise ValueError(f"categorical feature {name!r} is not a column of X.")
            mask[names.index(name)] = True
        return mask
    if cf.dtype.kind not in "iu":
        raise ValueError("categorical_features must be indices, names, a boolean mask, "
                         f"'from_dtype' or None; got dtype {cf.dtype}.")
    if cf.min() < -n_features or cf.max() >= n_features:
        raise ValueError(f"categorical_features has an index out of range for "
                         f"{n_features} features.")
    mask[cf] = True
    return mask


def category_codes(X, mask):
    """Replace pandas category columns by their integer codes (a new frame)."""
    if not _is_dataframe(X):
        return X
    cat_cols = [c for c, dt in zip(X.columns, X.dtypes) if str(dt) == "category"]
    if not cat_cols:
        return X
    X = X.copy()
    for c in cat_cols:
        codes = X[c].cat.codes.to_numpy()
        if (codes < 0).any():
            raise ValueError(f"categorical feature {c!r} has missing values; encode them as "
                             "a category of their own.")
        X[c] = codes
    return X


# Ids are stored as int64: 2**63 and beyond cannot be one.
_ID_LIMIT = 2.0 ** 63


def _first(mask):
    return int(np.argmax(mask))


def _bad_id(where, row, problem):
    return ValueError(f"{where} {problem} (row {row}); categorical ids must be "
                      "non-negative integers below 2**63.")


def _float_ids(col, where):
    """int64 ids of a float column: every value finite, >= 0, < 2**63 and whole."""
    finite = np.isfinite(col)
    if not finite.all():
        i = _first(~finite)
        raise _bad_id(where, i, "contains NaN (a missing id)" if np.isnan(col[i])
                      else "contains " + ("-" if col[i] < 0 else "") + "infinity")
    if col.size and col.min() < 0:
        i = _first(col < 0)
        raise _bad_id(where, i, f"has a negative id {float(col[i]):g}")
    if col.size and col.max() >= _ID_LIMIT:
        # checked before the cast, which would wrap such values silently
        i = _first(col >= _ID_LIMIT)
        raise _bad_id(where, i, f"has an id {float(col[i])!r} beyond the int64 range")
    ids = col.astype(np.int64)
    whole = ids == col
    if not whole.all():
        i = _first(~whole)
        raise _bad_id(where, i, f"has a non-integer value {float(col[i])!r}")
    return ids


def _object_ids(col, where):
    """int64 ids of an object column (Python ints of any size, floats, None, str...)."""
    for i, v in enumerate(col):
        # strings would convert ("3" -> 3.0): an id column of text needs an encoder
        if isinstance(v, (str, bytes)):
            raise ValueError(f"{where} holds the string {v!r} (row {i}); categorical ids "
                             "must be non-negative integers: encode text with "
                             "OrdinalEncoder, or pass it as a pandas 'category' column.")
    try:
        f = col.astype(np.float64)
    except OverflowError:  # an int beyond float64: beyond int64 too
        f = None
    except (TypeError, ValueError):
        for i, v in enumerate(col):
            try:
                float(v)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{where} holds {v!r} (row {i}), which is not a number "
                                f"({exc}); categorical ids must be non-negative integers "
                                "below 2**63.") from None
        raise  # pragma: no cover - astype failed on values float() accepts
    if f is not None:
        ok = np.isfinite(f) & (f >= 0)
        if not ok.all():
            _float_ids(f, where)  # raises, naming NaN / infinity / the negative id
        whole = np.floor(f) == f
        if not whole.all():
            i = _first(~whole)
            raise _bad_id(where, i, f"has a non-integer value {col[i]!r}")
    # exact, element by element: a Python int above 2**53 keeps every digit (a float64
    # detour would round it), and one of 2**63 or more raises instead of wrapping
    try:
        return col.astype(np.int64)
    except OverflowError:
        for i, v in enumerate(col):
            if int(v) >= 2**63:
                raise _bad_id(where, i, f"has an id {v!r} beyond the int64 range") from None
        raise  # pragma: no cover


def check_ids(col, name):
    """int64 ids of one categorical column, or a ValueError naming the column, the
    row and the problem (NaN, infinity, negative, not whole, beyond int64, text).

    ``col`` is the column at its own dtype (integers are not routed through float64,
    which would round ids above 2**53); it is never modified.
    """
    where = f"categorical feature {name}"
    kind = col.dtype.kind
    if kind == "b":
        return col.astype(np.int64)
    if kind in "iu":
        if col.size and kind == "i" and col.min() < 0:
            i = _first(col < 0)
            raise _bad_id(where, i, f"has a negative id {int(col[i])}")
        if col.size and kind == "u" and col.max() >= 2**63:
            i = _first(col >= np.uint64(2**63))
            raise _bad_id(where, i, f"has an id {int(col[i])} beyond the int64 range")
        return col.astype(np.int64)
    if kind == "f":
        return _float_ids(col, where)
    if kind == "O":
        return _object_ids(col, where)
    raise ValueError(f"{where} has dtype {col.dtype}; categorical ids must be non-negative "
                     "integers (encode text with OrdinalEncoder, or pass it as a pandas "
                     "'category' column).")


def dense_features(X, cols, names):
    """The dense (non-categorical) columns ``cols`` of the validated 2-D array ``X``,
    as a new C-contiguous float32 array; ValueError naming the first column with a
    value that is not a number, NaN, infinite or beyond float32 (which would train
    on infinity). ``names``: column names of the messages, or None."""
    D = X[:, cols]
    if D.dtype.kind not in "biuf":
        try:
            D = D.astype(np.float64)
        except (TypeError, ValueError):
            for j, c in enumerate(cols):
                try:
                    D[:, j].astype(np.float64)
                except (TypeError, ValueError) as exc:
                    name = repr(names[c]) if names is not None else c
                    # the type numpy gave (TypeError for objects, as check_array)
                    raise type(exc)(f"feature {name} is not numeric: {exc} (encode text "
                                    "with categorical_features or an encoder)") from None
            raise  # pragma: no cover
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(D, dtype=np.float32)
    finite = np.isfinite(out)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        v = float(D[i, j])
        problem = ("NaN" if np.isnan(v) else "infinity" if np.isinf(v)
                   else f"{v:g}, beyond the float32 range (it would be infinity)")
        name = repr(names[cols[j]]) if names is not None else int(cols[j])
        raise ValueError(f"Input X contains {problem} in feature {name} (row {i}).")
    return out


def table_sizes_from(table_sizes, max_ids, n_tables, names=None):
    """Rows of each table: given (int or sequence) or derived (max id + 1).
    ``names``: how messages name each table's column (default: its table index)."""
    if table_sizes is None:
        max_ids = np.asarray(max_ids, dtype=np.int64)
        # compared before the + 1, which would wrap for an id of 2**63 - 1
        big = np.flatnonzero(max_ids >= MAX_DERIVED_TABLE_ROWS)
        if big.size:
            t = int(big[0])
            raise ValueError(
                f"categorical feature {t if names is None else names[t]} has ids up to "
                f"{int(max_ids[t]):,}; "
                f"a table that size would not fit in memory. Pass table_sizes to hash the ids "
                f"into smaller tables (the reference DLRM's max_ind_range).")
        return max_ids + 1
    if isinstance(table_sizes, numbers.Integral):
        sizes = np.full(n_tables, int(table_sizes), dtype=np.int64)
    else:
        sizes = np.asarray(table_sizes)
        if sizes.size == 0:  # an empty list is float64 to numpy, and means no table
            sizes = sizes.astype(np.int64)
        if sizes.dtype.kind not in "iu" or sizes.shape != (n_tables,):
            raise ValueError(f"table_sizes must be an int or {n_tables} integers (one per "
                             f"categorical feature); got {table_sizes!r}.")
        sizes = sizes.astype(np.int64)
    if n_tables and sizes.min() < 1:
        raise ValueError("table_sizes must be positive.")
    return sizes


def dense_bags(ids_cols, sizes, offsets, index_dtype):
    """Bags of one id per table and sample; ids beyond a table's size are hashed
    into it (modulo, as the reference's max_ind_range)."""
    n = ids_cols.shape[0]
    T = ids_cols.shape[1]
    ids = np.empty((T, n), dtype=index_dtype)
    for t in range(T):
        ids[t] = ids_cols[:, t] % sizes[t] + offsets[t]
    ptr = (np.arange(T, dtype=np.int64)[:, None] * n
           + np.arange(n + 1, dtype=np.int64)[None, :])
    return Bags(np.ascontiguousarray(ptr), ids.ravel(), np.empty(0, np.float32))


def bag_positions(ptr, rows):
    """Where the bags of samples ``rows`` of one table lie in the bags' ids.

    ``ptr`` is the table's row of ``Bags.ptr``. Returns ``(idx, lens)``: the positions
    of every id of those bags, sample after sample in the order of ``rows``, and the
    length of each bag.
    """
    starts, ends = ptr[rows], ptr[rows + 1]
    lens = ends - starts
    idx = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) \
        + np.arange(int(lens.sum()))
    return idx, lens


def column_runs(n_features, groups, table_offsets):
    """Describe where each column of a sparse X goes, as runs for ``csr_to_bags``.

    Column ``c`` of field ``t`` (``groups[t][p] == c``) is row
    ``table_offsets[t] + p`` of the stacked tables; the ungrouped columns are the
    dense features, in column order. Consecutive columns whose destinations are
    consecutive form one run, so the usual contiguous one-hot blocks give a handful
    of runs (a few bytes, always in cache) instead of two arrays of the width of X.

    Returns
    -------
    run_start : ndarray of int64, shape (n_runs + 1,)
        First column of each run, then ``n_features``.
    run_table : ndarray of int32, shape (n_runs,)
        The run's table, or -1 for dense columns.
    run_base : ndarray of int64, shape (n_runs,)
        Destination (stacked-table row or dense position) of the run's first column.
    """
    col_table = np.full(n_features, -1, dtype=np.int64)
    dest = np.zeros(n_features, dtype=np.int64)
    for t, g in enumerate(groups):
        col_table[g] = t
        dest[g] = table_offsets[t] + np.arange(len(g))
    dense_cols = col_table < 0
    dest[dense_cols] = np.arange(np.count_nonzero(dense_cols))
    brk = np.flatnonzero((col_table[1:] != col_table[:-1]) | (dest[1:] != dest[:-1] + 1)) + 1
    run_start = np.concatenate([[0], brk, [n_features]]).astype(np.int64)
    return (run_start, col_table[run_start[:-1]].astype(np.int32),
            dest[run_start[:-1]].astype(np.int64))


def detect_onehot_groups(X):
    """Fields of one-hot columns found in a sparse matrix.

    Consecutive columns whose values are all 1 form one field while no row has a
    non-zero in two of them (a one-hot encoder's output has exactly one per row and
    field, so a new field starts where a row has two). Fields of fewer than two
    columns, and columns with other values, stay dense features.
    """
    X = X.tocsc()
    n_rows, n_cols = X.shape
    mark = np.full(n_rows, -1, dtype=np.int64)
    groups, current = [], []
    indptr, indices, data = X.indptr, X.indices, X.data

    def close():
        if len(current) >= 2:
            groups.append(np.asarray(current, dtype=np.int64))

    for c in range(n_cols):
        rows = indices[indptr[c]:indptr[c + 1]]
        vals = data[indptr[c]:indptr[c + 1]]
        if rows.size == 0 or not np.all(vals == 1):
            close()
            current = []
            continue
        if current and np.any(mark[rows] == current[0]):
            close()
            current = []
        if not current:
            current = [c]
        else:
            current.append(c)
        mark[rows] = current[0]
    close()
    return groups


def check_groups(groups, n_features):
    """Validate user feature groups: disjoint, in range, non-empty."""
    out, seen = [], np.zeros(n_features, dtype=bool)
    for g in groups:
        g = np.asarray(g)
        if g.ndim != 1 or g.size == 0 or g.dtype.kind not in "iu":
            raise ValueError("feature_groups must be a list of non-empty sequences of "
                             f"column indices; got {g!r}.")
        if g.min() < 0 or g.max() >= n_features:
            raise ValueError(f"feature_groups has a column index out of range for "
                             f"{n_features} features.")
        if seen[g].any() or len(np.unique(g)) != g.size:
            raise ValueError("feature_groups must not share columns.")
        seen[g] = True
        out.append(g.astype(np.int64))
    return out


def feature_groups_from_encoder(encoder):
    """Column groups (one per categorical field) of a fitted encoder's output.

    Use the result as ``feature_groups`` of :class:`~slidelearn.DLRMRegressor` or
    :class:`~slidelearn.DLRMClassifier` when the encoder is fitted outside the
    estimator: each one-hot encoded input feature becomes one embedding table.

    Parameters
    ----------
    encoder : OneHotEncoder or ColumnTransformer
        A fitted :class:`~sklearn.preprocessing.OneHotEncoder`, or a fitted
        :class:`~sklearn.compose.ColumnTransformer` (its ``OneHotEncoder``
        transformers, also inside a ``Pipeline``, give the groups; columns of other
        transformers are dense features).

    Returns
    -------
    groups : list of ndarray of int64
        For each categorical field, the indices of its output columns.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.preprocessing import OneHotEncoder, StandardScaler
    >>> from slidelearn import feature_groups_from_encoder
    >>> X = np.array([[0.5, 0, 2], [1.5, 1, 0], [2.5, 1, 1]])
    >>> ct = ColumnTransformer([("num", StandardScaler(), [0]),
    ...                         ("cat", OneHotEncoder(), [1, 2])]).fit(X)
    >>> [g.tolist() for g in feature_groups_from_encoder(ct)]
    [[1, 2], [3, 4, 5]]
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(encoder)
    if isinstance(encoder, OneHotEncoder):
        return _onehot_groups(encoder, 0)
    if isinstance(encoder, ColumnTransformer):
        groups = []
        for name, trans, _ in encoder.transformers_:
            if isinstance(trans, Pipeline):
                trans = trans.steps[-1][1]
            if isinstance(trans, OneHotEncoder):
                sl = encoder.output_indices_[name]
                groups.extend(_onehot_groups(trans, sl.start))
        return groups
    raise TypeError("feature_groups_from_encoder expects a fitted OneHotEncoder or "
                    f"ColumnTransformer, got {type(encoder).__name__}.")


def _onehot_groups(enc, start):
    groups, pos = [], start
    drop = getattr(enc, "drop_idx_", None)
    # (the attribute exists only when infrequent categories are enabled)
    infrequent = getattr(enc, "infrequent_categories_", None)
    for i, cats in enumerate(enc.categories_):
        n_out = len(cats)
        if infrequent is not None and infrequent[i] is not None:
            n_out -= len(infrequent[i]) - 1
        if drop is not None and drop[i] is not None:
            n_out -= 1
        if n_out > 0:
            groups.append(np.arange(pos, pos + n_out, dtype=np.int64))
        pos += n_out
    return groups
