"""Ranking metrics for extreme classification and scikit-learn scorers for them."""
import numbers

import numpy as np
import scipy.sparse as sp

__all__ = ["precision_at_k", "make_precision_at_k_scorer"]

# Rows of a dense score matrix processed at a time by the top-k selection.
_SCORE_BLOCK_ENTRIES = 1 << 22


def _check_k(k):
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _is_sequence_row(row):
    return isinstance(row, (list, tuple, set, frozenset, range, np.ndarray))


def _label_array(values, what):
    """1-D int64 array of label indices from ``values``; checks they are integers >= 0."""
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must contain integer label indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False).ravel()
    if arr.min() < 0:
        raise ValueError(f"{what} contains a negative label index {arr.min()}")
    return arr


class _TrueLabels:
    """``y_true`` as sorted unique (row, column) pairs of its positive labels."""

    def __init__(self, y_true):
        self.n_labels = None   # known only for indicator matrices
        if sp.issparse(y_true):
            self._from_sparse(y_true)
            return
        if isinstance(y_true, (list, tuple)) and len(y_true) and any(
            _is_sequence_row(r) for r in y_true
        ):
            self._from_lists(y_true)
            return
        arr = np.asarray(y_true)
        if arr.dtype == object and arr.ndim == 1:
            self._from_lists(arr)
        elif arr.ndim == 2:
            self._from_dense_indicator(arr)
        elif arr.ndim == 1:
            self.n_rows = arr.shape[0]
            self.cols = _label_array(arr, "y_true")
            self.rows = np.arange(self.n_rows, dtype=np.int64)
        else:
            raise ValueError(
                "y_true must be a 2-D indicator matrix, a 1-D array of label indices or "
                f"a list of label-index lists; got an array of shape {arr.shape}"
            )

    def _from_sparse(self, y):
        if y.ndim != 2:
            raise ValueError(f"sparse y_true must be 2-D, got shape {y.shape}")
        y = sp.csr_matrix(y)
        if not y.has_canonical_format:
            y = y.copy()  # never modify the caller's matrix
            y.sum_duplicates()
        if not np.isin(y.data, (0, 1)).all():
            raise ValueError("y_true indicator matrix must contain only 0 and 1")
        rows = np.repeat(np.arange(y.shape[0], dtype=np.int64), np.diff(y.indptr))
        keep = y.data != 0
        self.n_rows, self.n_labels = y.shape
        self.rows = rows[keep]
        self.cols = y.indices[keep].astype(np.int64)

    def _from_dense_indicator(self, y):
        if y.dtype.kind not in "biuf":
            raise TypeError(f"y_true indicator matrix must be numeric, got dtype {y.dtype}")
        if y.dtype.kind != "b" and not ((y == 0) | (y == 1)).all():
            raise ValueError(
                "y_true indicator matrix must contain only 0 and 1 (to pass label "
                "indices, use a 1-D array or a list of lists)"
            )
        self.n_rows, self.n_labels = y.shape
        self.rows, self.cols = (a.astype(np.int64) for a in np.nonzero(y))

    def _from_lists(self, y):
        rows = []
        for i, r in enumerate(y):
            if not _is_sequence_row(r):
                raise TypeError(
                    f"y_true row {i} is {type(r).__name__}; a list of label lists must "
                    "hold one sequence of label indices per row"
                )
            rows.append(_label_array(list(r), f"y_true row {i}"))
        self.n_rows = len(rows)
        lengths = np.array([r.size for r in rows], dtype=np.int64)
        self.rows = np.repeat(np.arange(self.n_rows, dtype=np.int64), lengths)
        self.cols = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)


def _resolve_kind(arr, kind):
    if kind not in ("auto", "scores", "topk"):
        raise ValueError(f"kind must be 'auto', 'scores' or 'topk', got {kind!r}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"y_pred must be numeric, got dtype {arr.dtype}")
    if kind != "auto":
        return kind
    if arr.dtype.kind == "f":
        return "scores"
    if arr.dtype.kind in "iu":
        return "topk"
    raise TypeError(
        "boolean y_pred is ambiguous: pass float scores of shape (n_samples, n_labels) "
        "or integer label indices ranked best first of shape (n_samples, >= k)"
    )


def _topk_from_scores(scores, k):
    """Rows and columns of the k best scores per row; ties go to lower columns."""
    n, n_labels = scores.shape
    if k >= n_labels:
        rows = np.repeat(np.arange(n, dtype=np.int64), n_labels)
        return rows, np.tile(np.arange(n_labels, dtype=np.int64), n)
    block = max(1, _SCORE_BLOCK_ENTRIES // n_labels)
    out_rows, out_cols = [], []
    for r0 in range(0, n, block):
        s = scores[r0 : r0 + block]
        kth = -np.partition(-s, k - 1, axis=1)[:, k - 1 : k]   # k-th largest per row
        above = s > kth
        tied = s == kth
        room = k - above.sum(axis=1, keepdims=True)
        selected = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int64) <= room))
        rows, cols = np.nonzero(selected)
        out_rows.append(rows + r0)
        out_cols.append(cols)
    return np.concatenate(out_rows).astype(np.int64), np.concatenate(out_cols).astype(np.int64)


def precision_at_k(y_true, y_pred, k=1, *, kind="auto"):
    """Precision at k: the mean fraction of the k top-ranked labels that are relevant.

    For each row ``i`` with relevant labels ``T_i`` and top-k predicted labels
    ``P_i``, precision@k is ``|P_i & T_i| / k`` (the denominator is always
    ``k``, as in the Extreme Classification Repository, even if a row has
    fewer than ``k`` relevant labels or predictions); the result is the mean
    over rows. For single-label (multi-class) targets, precision@1 equals
    accuracy and precision@k equals top-k accuracy divided by ``k``.

    Parameters
    ----------
    y_true : array-like or sparse matrix
        Relevant labels, in one of three forms:

        - a 2-D binary indicator matrix of shape (n_samples, n_labels), dense
          (numpy array) or scipy sparse;
        - a 1-D array of integer column indices of shape (n_samples,), one
          true label per row (multi-class);
        - a list (or 1-D object array) of sequences of column indices, one
          sequence per row (may be empty).

        A Python list whose items are sequences is read as label lists, never
        as an indicator matrix.
    y_pred : array-like
        Either a float score matrix of shape (n_samples, n_labels), from which
        the k best labels of each row are taken (ties go to the lower column
        index; NaN is not allowed), or an integer matrix of shape
        (n_samples, m) with ``m >= k`` of label indices ranked best first, of
        which the first k columns are used (``-1`` means no prediction and
        counts as a miss). A 1-D integer array is taken as one predicted label
        per row (``m = 1``).
    k : int, default=1
        Number of top-ranked labels. With a score matrix, ``k`` may exceed
        the number of labels (all labels are then predicted).
    kind : {"auto", "scores", "topk"}, default="auto"
        How to read ``y_pred``. ``"auto"`` reads floating point arrays as
        scores and integer arrays as ranked labels.

    Returns
    -------
    precision : float
        Precision at k, in [0, 1].

    Raises
    ------
    ValueError
        If ``k`` is not a positive integer, the numbers of rows differ, a
        label index is out of range, ``y_pred`` has fewer than ``k`` columns
        of ranked labels or repeats a label in a row, scores contain NaN or
        the indicator matrix is not binary.
    TypeError
        If an input has an unsupported type (for example sparse scores).

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.metrics import precision_at_k
    >>> y_true = np.array([[1, 0, 1, 0],
    ...                    [0, 1, 0, 0]])
    >>> scores = np.array([[0.9, 0.8, 0.1, 0.3],
    ...                    [0.2, 0.7, 0.4, 0.1]])
    >>> precision_at_k(y_true, scores, k=1)  # both top-1 labels are relevant
    1.0
    >>> precision_at_k(y_true, scores, k=2)  # (1/2 + 1/2) / 2
    0.5
    >>> ranked = np.array([[2, 0, -1], [1, 3, 0]])  # label indices, best first
    >>> precision_at_k(y_true, ranked, k=2)
    0.75
    >>> precision_at_k([[0, 2], [1]], ranked, k=1)
    1.0
    >>> precision_at_k(np.array([2, 1]), scores, k=1)  # multi-class: accuracy
    0.5
    """
    k = _check_k(k)
    if sp.issparse(y_pred):
        raise TypeError(
            "y_pred must be a dense array; pass dense scores or the top-k label "
            "indices (e.g. from predict_topk) instead of a sparse matrix"
        )
    pred = np.asarray(y_pred)
    kind = _resolve_kind(pred, kind)
    truth = _TrueLabels(y_true)
    n = truth.n_rows
    if kind == "topk" and pred.ndim == 1:
        pred = pred[:, None]
    if pred.ndim != 2:
        raise ValueError(
            "y_pred must be 2-D: scores of shape (n_samples, n_labels) or ranked label "
            f"indices of shape (n_samples, >= k); got shape {pred.shape}"
        )
    if pred.shape[0] != n:
        raise ValueError(f"y_true has {n} rows but y_pred has {pred.shape[0]}")
    if n == 0:
        raise ValueError("precision_at_k needs at least one sample, got 0")

    if kind == "scores":
        n_labels = pred.shape[1]
        if n_labels == 0:
            raise ValueError("y_pred score matrix has no columns")
        if truth.n_labels is not None and truth.n_labels != n_labels:
            raise ValueError(
                f"y_true has {truth.n_labels} label columns but y_pred has {n_labels}"
            )
        if truth.cols.size and truth.cols.max() >= n_labels:
            raise ValueError(
                f"y_true contains label index {truth.cols.max()}, out of range for "
                f"y_pred scores with {n_labels} columns"
            )
        scores = pred if pred.dtype.kind == "f" else pred.astype(np.float64)
        if np.isnan(scores).any():
            raise ValueError("y_pred scores contain NaN")
        p_rows, p_cols = _topk_from_scores(scores, k)
    else:
        if pred.dtype.kind not in "iu":
            raise TypeError(
                f"ranked label indices in y_pred must be integers, got dtype {pred.dtype}"
            )
        if pred.shape[1] < k:
            raise ValueError(
                f"y_pred holds {pred.shape[1]} ranked labels per row, fewer than k={k}"
            )
        top = pred[:, :k].astype(np.int64)
        if top.size and top.min() < -1:
            raise ValueError(
                f"y_pred contains label index {top.min()}; use -1 for 'no prediction'"
            )
        if truth.n_labels is not None and top.size and top.max() >= truth.n_labels:
            raise ValueError(
                f"y_pred contains label index {top.max()}, out of range for y_true with "
                f"{truth.n_labels} label columns"
            )
        if k > 1:
            srt = np.sort(top, axis=1)
            dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
            if dup.any():
                i, j = np.argwhere(dup)[0]
                raise ValueError(
                    f"y_pred row {i} lists label {srt[i, j + 1]} more than once in its "
                    "top k"
                )
        p_rows, p_cols = np.nonzero(top >= 0)
        p_cols = top[p_rows, p_cols]
        p_rows = p_rows.astype(np.int64)

    width = 1 + max(
        truth.cols.max() if truth.cols.size else 0,
        p_cols.max() if p_cols.size else 0,
    )
    if width > np.iinfo(np.int64).max // max(n, 1):
        raise ValueError("label indices are too large")
    true_keys = np.unique(truth.rows * width + truth.cols)
    pred_keys = p_rows * width + p_cols
    pos = np.searchsorted(true_keys, pred_keys)
    pos[pos == true_keys.size] = 0
    hits = int(np.count_nonzero(true_keys[pos] == pred_keys)) if true_keys.size else 0
    return hits / (n * k)


def _scores_from_estimator(estimator, X):
    """Score matrix (n_samples, n_classes) from predict_proba or decision_function."""
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        if isinstance(proba, list):
            # Multi-output estimators: one (n_samples, n_classes_j) array per label.
            classes = getattr(estimator, "classes_", None)
            cols = []
            for j, p in enumerate(proba):
                p = np.asarray(p)
                cls = np.asarray(classes[j]) if isinstance(classes, list) else np.array([0, 1])
                where = np.flatnonzero(cls == 1)
                cols.append(p[:, where[0]] if where.size else np.zeros(p.shape[0]))
            return np.column_stack(cols)
        return np.asarray(proba)
    if hasattr(estimator, "decision_function"):
        scores = np.asarray(estimator.decision_function(X))
        if scores.ndim == 1:  # binary: the score of classes_[1]
            scores = np.column_stack([-scores, scores])
        return scores
    raise TypeError(
        f"{type(estimator).__name__} has none of predict_topk, predict_proba or "
        "decision_function, which the precision@k scorer needs"
    )


def _map_to_columns(values, classes):
    """Column of each entry of ``values`` in ``classes``, -1 where absent."""
    values = np.asarray(values)
    classes = np.asarray(classes)
    if values.dtype.kind in "biuf" and classes.dtype.kind in "biuf":
        order = np.argsort(classes, kind="stable")
        srt = classes[order]
        pos = np.clip(np.searchsorted(srt, values), 0, max(srt.size - 1, 0))
        found = srt[pos] == values if srt.size else np.zeros(values.shape, dtype=bool)
        return np.where(found, order[pos], -1).astype(np.int64)
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    flat = [lookup.get(v, -1) for v in values.ravel().tolist()]
    return np.asarray(flat, dtype=np.int64).reshape(values.shape)


class _PrecisionAtKScorer:
    """Scorer ``scorer(estimator, X, y)`` returning precision@k (greater is better)."""

    def __init__(self, k):
        self.k = _check_k(k)

    def __repr__(self):
        return f"make_precision_at_k_scorer(k={self.k})"

    def __call__(self, estimator, X, y_true, **kwargs):
        unsupported = sorted(name for name, value in kwargs.items() if value is not None)
        if unsupported:
            raise TypeError(
                f"the precision@k scorer does not support {', '.join(unsupported)}"
            )
        k = self.k
        if not sp.issparse(y_true):
            y_true = np.asarray(y_true)
            if y_true.ndim == 2 and y_true.shape[1] == 1:
                y_true = y_true.ravel()
        indicator = sp.issparse(y_true) or y_true.ndim == 2
        n = y_true.shape[0]
        classes = getattr(estimator, "classes_", None)

        if hasattr(estimator, "predict_topk"):
            labels = estimator.predict_topk(X, k)
            if isinstance(labels, tuple):
                labels = labels[0]
            labels = np.asarray(labels)
            if labels.ndim != 2 or labels.shape[0] != n:
                raise ValueError(
                    f"predict_topk returned labels of shape {labels.shape}; expected "
                    f"({n}, k)"
                )
            # Fewer than k columns (e.g. k > n_classes) means missing predictions.
            labels = labels[:, :k]
            if indicator:
                cols = labels if classes is None else _map_to_columns(labels, classes)
                if cols.shape[1] < k:
                    pad = np.full((n, k - cols.shape[1]), -1, dtype=np.int64)
                    cols = np.hstack([np.asarray(cols, dtype=np.int64), pad])
                return precision_at_k(y_true, cols, k, kind="topk")
            # Single-label y: compare in the label space directly; padding
            # entries (e.g. -1 or None) and labels unseen in training never match.
            hits = (labels == y_true[:, None]).any(axis=1)
            return float(np.count_nonzero(hits)) / (n * k)

        scores = _scores_from_estimator(estimator, X)
        if scores.ndim != 2 or scores.shape[0] != n:
            raise ValueError(
                f"{type(estimator).__name__} returned scores of shape {scores.shape}; "
                f"expected ({n}, n_classes)"
            )
        if indicator:
            return precision_at_k(y_true, scores, k, kind="scores")
        if classes is None:
            raise TypeError(
                f"{type(estimator).__name__} has no classes_ attribute to map the "
                "labels of y to score columns"
            )
        cols = _map_to_columns(y_true, classes)
        seen = cols >= 0
        n_seen = int(np.count_nonzero(seen))
        if n_seen == 0:
            return 0.0
        # Labels unseen during fit are misses: they count in the denominator only.
        return precision_at_k(cols[seen], scores[seen], k, kind="scores") * n_seen / n


def make_precision_at_k_scorer(k=1):
    """Make a scikit-learn scorer that computes precision at k.

    The returned object is a callable ``scorer(estimator, X, y)`` that can be
    passed as ``scoring`` to :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_val_score` and friends (greater is
    better). It ranks labels with, in order of preference:

    - ``estimator.predict_topk(X, k)``, which must return the ranked labels
      (or a ``(labels, scores)`` tuple) of shape (n_samples, k), in the space
      of ``estimator.classes_`` (labels such as strings for single-label
      targets, column indices or ``classes_`` entries for indicator targets);
      padding entries such as ``-1`` and missing columns (fewer than ``k``,
      for example when ``k`` exceeds the number of classes) count as misses;
    - ``estimator.predict_proba(X)`` or ``estimator.decision_function(X)``,
      with columns ordered as ``estimator.classes_`` (a binary 1-D decision
      function is read as the score of ``classes_[1]``; multi-output lists of
      probabilities use the probability of class 1 of each output).

    ``y`` may be a 1-D array of labels (mapped to columns through
    ``classes_``; labels the estimator never saw count as misses) or a 2-D
    binary indicator matrix, dense or sparse, whose columns match the
    estimator's label columns.

    Parameters
    ----------
    k : int, default=1
        Number of top-ranked labels.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)`` returning precision@k as a float.

    See Also
    --------
    precision_at_k : The metric itself.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import cross_val_score
    >>> from slidelearn.metrics import make_precision_at_k_scorer
    >>> X, y = load_iris(return_X_y=True)
    >>> scorer = make_precision_at_k_scorer(k=1)
    >>> scorer
    make_precision_at_k_scorer(k=1)
    >>> scores = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=3,
    ...                          scoring=scorer)
    >>> bool(scores.mean() > 0.9)
    True
    """
    return _PrecisionAtKScorer(k)
