"""Ranking metrics for extreme classification and scikit-learn scorers for them."""
import numbers

import numpy as np
import scipy.sparse as sp

__all__ = [
    "jain_propensity",
    "make_precision_at_k_scorer",
    "precision_at_k",
    "propensity_scored_precision_at_k",
]

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

    def unique_keys(self, width):
        """Sorted unique keys ``row * width + label`` of the positive labels.

        ``width`` must exceed every label index; keys that would overflow int64
        raise ``ValueError``.
        """
        if width > np.iinfo(np.int64).max // max(self.n_rows, 1):
            raise ValueError("label indices are too large")
        return np.unique(self.rows * width + self.cols)


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


class _RankedPairs:
    """Validated ``y_true`` and the (row, label) pairs of the top-k predictions.

    Attributes: ``truth`` (a ``_TrueLabels``), ``n`` (rows), ``kind``
    (``"scores"`` or ``"topk"``), ``n_pred_labels`` (columns of a score
    matrix, None for ranked labels), ``rows`` and ``cols`` (int64 arrays of
    the predicted pairs; ``-1`` entries of ranked labels are left out).
    """

    def __init__(self, truth, n, kind, n_pred_labels, rows, cols):
        self.truth, self.n, self.kind = truth, n, kind
        self.n_pred_labels = n_pred_labels
        self.rows, self.cols = rows, cols
        self._true_keys = None

    def _keys(self):
        """Width of the (row, label) key space and the sorted unique true keys."""
        if self._true_keys is None:
            truth = self.truth
            width = 1 + max(
                truth.cols.max() if truth.cols.size else 0,
                self.cols.max() if self.cols.size else 0,
            )
            self._true_keys = truth.unique_keys(width)
            self._width = width
        return self._width, self._true_keys

    def hits(self):
        """Boolean mask over the predicted pairs: is the label relevant for its row?"""
        width, true_keys = self._keys()
        if not true_keys.size:
            return np.zeros(self.cols.shape, dtype=bool)
        pred_keys = self.rows * width + self.cols
        pos = np.searchsorted(true_keys, pred_keys)
        pos[pos == true_keys.size] = 0
        return true_keys[pos] == pred_keys

    def unique_true_pairs(self):
        """Rows (ascending) and labels of the distinct relevant (row, label) pairs."""
        width, true_keys = self._keys()
        return true_keys // width, true_keys % width


def _ranked_pairs(y_true, y_pred, k, kind, caller):
    """Validate ``y_true`` and ``y_pred`` and rank the top-k labels of each row.

    Shared by the ranking metrics; ``caller`` names the metric in messages.
    """
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
        raise ValueError(f"{caller} needs at least one sample, got 0")

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
        return _RankedPairs(truth, n, kind, n_labels, p_rows, p_cols)

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
    return _RankedPairs(truth, n, kind, None, p_rows, p_cols)


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
    ranked = _ranked_pairs(y_true, y_pred, k, kind, "precision_at_k")
    hits = int(np.count_nonzero(ranked.hits()))
    return hits / (ranked.n * k)


def _check_positive_real(value, name):
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not np.isfinite(value) or value <= 0):
        raise ValueError(f"{name} must be a finite real number > 0, got {value!r}")
    return float(value)


def _jain_from_counts(label_counts, n_samples, A=0.55, B=1.5):
    """Jain et al. (2016) propensities from per-label counts and the row count."""
    A = _check_positive_real(A, "A")
    B = _check_positive_real(B, "B")
    if (isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, numbers.Integral)
            or n_samples < 3):
        raise ValueError(
            "the propensity model of Jain et al. needs at least 3 training rows "
            f"(its constant C = (log N - 1)(B + 1)^A must be positive), got N={n_samples!r}"
        )
    counts = np.asarray(label_counts, dtype=np.float64)
    if counts.ndim != 1 or (counts.size and (counts.min() < 0 or counts.max() > n_samples)):
        raise ValueError(
            "label counts must be a 1-D array of values in [0, n_samples]"
        )
    C = (np.log(n_samples) - 1.0) * (B + 1.0) ** A
    return 1.0 / (1.0 + C * np.exp(-A * np.log(counts + B)))


def jain_propensity(Y_train, A=0.55, B=1.5, *, n_labels=None):
    r"""Label propensities of Jain et al. (2016), estimated from training labels.

    The propensity ``p_l`` of label ``l`` models the probability that a
    relevant label is actually observed (tail labels go missing more often):

    .. math::

        p_l = \frac{1}{1 + C e^{-A \log(N_l + B)}} = \frac{1}{1 + C (N_l + B)^{-A}},
        \qquad C = (\log N - 1)(B + 1)^A,

    where ``N`` is the number of training rows, ``N_l`` the number of
    training rows that have label ``l`` and ``log`` the natural logarithm.
    Frequent labels get propensities close to 1, rare labels small ones.
    The usual constants are ``A=0.55, B=1.5`` (most data sets of the Extreme
    Classification Repository), ``A=0.5, B=0.4`` (Wikipedia data sets) and
    ``A=0.6, B=2.6`` (Amazon data sets).

    Parameters
    ----------
    Y_train : array-like or sparse matrix
        Training labels, in any form :func:`precision_at_k` accepts for
        ``y_true``: a binary indicator matrix of shape (n_samples, n_labels)
        (dense or sparse), a 1-D array of label indices (one per row) or a
        list of label-index lists. A label repeated within a row counts once.
    A : float, default=0.55
        Exponent ``A`` of the model (> 0).
    B : float, default=1.5
        Offset ``B`` of the model (> 0).
    n_labels : int, default=None
        Number of labels. Required to cover labels that never occur in a
        list or 1-D ``Y_train`` (default: the largest label index + 1); with
        an indicator matrix it defaults to, and must equal, its number of
        columns.

    Returns
    -------
    propensities : ndarray of shape (n_labels,), dtype float64
        ``p_l`` for every label, in (0, 1]. Their inverses ``1 / p_l`` are
        the label weights of :func:`propensity_scored_precision_at_k`.

    Raises
    ------
    ValueError
        If ``A`` or ``B`` is not a positive finite number, ``Y_train`` has
        fewer than 3 rows (the constant ``C`` would not be positive), or
        ``n_labels`` is invalid or smaller than a label index of ``Y_train``.
    TypeError
        If ``Y_train`` has an unsupported type.

    See Also
    --------
    propensity_scored_precision_at_k : The metric these propensities weight.

    References
    ----------
    H. Jain, Y. Prabhu and M. Varma, "Extreme Multi-label Loss Functions for
    Recommendation, Tagging, Ranking & Other Missing Label Applications",
    KDD 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.metrics import jain_propensity
    >>> Y_train = [[0, 1], [0], [0, 2], [0], [1]]   # label 0 in 4 rows, 1 in 2, 2 in 1
    >>> p = jain_propensity(Y_train, n_labels=4)   # label 3 never occurs
    >>> np.round(p, 3)
    array([0.717, 0.664, 0.621, 0.553])
    >>> N, counts = 5, np.array([4, 2, 1, 0])        # the formula by hand
    >>> C = (np.log(N) - 1) * (1.5 + 1) ** 0.55
    >>> bool(np.allclose(p, 1 / (1 + C * (counts + 1.5) ** -0.55)))
    True
    """
    truth = _TrueLabels(Y_train)
    width = truth.n_labels
    if n_labels is not None:
        if (isinstance(n_labels, (bool, np.bool_)) or not isinstance(n_labels, numbers.Integral)
                or n_labels < 1):
            raise ValueError(f"n_labels must be a positive integer, got {n_labels!r}")
        if width is not None and width != n_labels:
            raise ValueError(
                f"Y_train has {width} label columns but n_labels={n_labels}"
            )
        width = int(n_labels)
    if width is None:
        if not truth.cols.size:
            raise ValueError(
                "Y_train has no label at all; pass n_labels to set the number of labels"
            )
        width = int(truth.cols.max()) + 1
    if truth.cols.size and truth.cols.max() >= width:
        raise ValueError(
            f"Y_train contains label index {truth.cols.max()}, out of range for "
            f"n_labels={width}"
        )
    keys = truth.unique_keys(width)
    counts = np.bincount(keys % width, minlength=width)
    return _jain_from_counts(counts, truth.n_rows, A, B)


def propensity_scored_precision_at_k(y_true, y_pred, propensities, k=1, *, kind="auto",
                                     normalize=True):
    r"""Propensity-scored precision at k (PSP@k): precision@k that weights each
    correct label by its inverse propensity, so rare labels count more.

    With relevant labels ``T_i`` and top-k predicted labels ``P_i`` of row
    ``i`` (of ``n`` rows) and label propensities ``p_l``, the unnormalised
    PSP@k of Jain et al. (2016) is

    .. math::

        \mathrm{PSP@k} = \frac{1}{n} \sum_{i=1}^{n} \frac{1}{k}
        \sum_{l \in P_i \cap T_i} \frac{1}{p_l}.

    With ``normalize=True`` (the default, and the figure the Extreme
    Classification Repository, pyxclib and napkinXC report) it is divided by
    the largest value any prediction can reach on the same ``y_true``: for
    row ``i``, the sum of the ``min(k, |T_i|)`` largest ``1 / p_l`` over its
    relevant labels. The division is done once, for the sums over all rows
    (a ratio of means, not a mean of per-row ratios), so rows without any
    relevant label count neither in the numerator nor in the denominator,
    and the result lies in [0, 1], 1 meaning that every row ranks first its
    relevant labels of rarest propensity. Without normalisation the value
    is not bounded by 1. With all propensities equal to 1, the unnormalised
    PSP@k equals :func:`precision_at_k`.

    Parameters
    ----------
    y_true : array-like or sparse matrix
        Relevant labels, in the forms :func:`precision_at_k` accepts: a 2-D
        binary indicator matrix (dense or scipy sparse), a 1-D array of
        label indices (one per row) or a list of label-index sequences.
    y_pred : array-like
        A float score matrix of shape (n_samples, n_labels) (the k best
        labels of each row are used, ties going to the lower column index),
        or an integer matrix of label indices ranked best first of shape
        (n_samples, >= k) (``-1`` means no prediction), as for
        :func:`precision_at_k`.
    propensities : array-like of shape (n_labels,)
        Propensity ``p_l`` of every label, in (0, 1], for example from
        :func:`jain_propensity` on the training labels. Every label index of
        ``y_true`` and ``y_pred`` must be below ``len(propensities)``, which
        must equal the number of columns of an indicator ``y_true`` or a
        score matrix ``y_pred``.
    k : int, default=1
        Number of top-ranked labels.
    kind : {"auto", "scores", "topk"}, default="auto"
        How to read ``y_pred`` (see :func:`precision_at_k`).
    normalize : bool, default=True
        Divide by the best achievable value (see above). If ``y_true`` holds
        no relevant label at all, the normalised value is 0.0.

    Returns
    -------
    psp : float
        PSP@k; in [0, 1] when ``normalize`` is True.

    Raises
    ------
    ValueError
        For the invalid inputs :func:`precision_at_k` rejects, and if
        ``propensities`` is not 1-D, holds values outside (0, 1] (inverse
        propensities, which are >= 1, must be inverted first) or has fewer
        entries than the label indices need.
    TypeError
        If an input has an unsupported type.

    See Also
    --------
    jain_propensity : Propensities estimated from training label counts.
    precision_at_k : The unweighted metric.

    References
    ----------
    H. Jain, Y. Prabhu and M. Varma, "Extreme Multi-label Loss Functions for
    Recommendation, Tagging, Ranking & Other Missing Label Applications",
    KDD 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.metrics import propensity_scored_precision_at_k
    >>> propensities = np.array([1.0, 0.5, 0.25])   # weights 1 / p = 1, 2, 4
    >>> y_true = [[0, 2], [1]]
    >>> ranked = np.array([[0, 1], [1, 2]])          # label indices, best first
    >>> # row 0 hits label 0 (weight 1) but its best is label 2 (weight 4);
    >>> # row 1 hits its only label 1 (weight 2): (1 + 2) / (4 + 2)
    >>> propensity_scored_precision_at_k(y_true, ranked, propensities, k=1)
    0.5
    >>> # k=2: hits weigh 1 and 2; the best rankings reach (1 + 4) and 2
    >>> round(propensity_scored_precision_at_k(y_true, ranked, propensities, k=2), 4)
    0.4286
    >>> # unnormalised: mean over rows of (hit weights) / k = ((1) + (2)) / 2 / 2
    >>> propensity_scored_precision_at_k(y_true, ranked, propensities, k=2,
    ...                                  normalize=False)
    0.75
    """
    k = _check_k(k)
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be a bool, got {normalize!r}")
    if sp.issparse(propensities):
        raise TypeError("propensities must be a dense 1-D array, got a sparse matrix")
    try:
        prop = np.asarray(propensities, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("propensities must be a 1-D array of real numbers") from None
    if prop.ndim != 1 or prop.size == 0:
        raise ValueError(
            f"propensities must be a non-empty 1-D array, got shape {prop.shape}"
        )
    if not np.isfinite(prop).all() or prop.min() <= 0 or prop.max() > 1:
        bad = prop[~(np.isfinite(prop) & (prop > 0) & (prop <= 1))][0]
        raise ValueError(
            f"propensities must lie in (0, 1], got {bad!r} (inverse propensities, "
            "which are >= 1, must be inverted first)"
        )
    ranked = _ranked_pairs(y_true, y_pred, k, kind, "propensity_scored_precision_at_k")
    n_labels = prop.shape[0]
    truth = ranked.truth
    if truth.n_labels is not None and truth.n_labels != n_labels:
        raise ValueError(
            f"y_true has {truth.n_labels} label columns but propensities has "
            f"{n_labels} entries"
        )
    if ranked.n_pred_labels is not None and ranked.n_pred_labels != n_labels:
        raise ValueError(
            f"y_pred scores have {ranked.n_pred_labels} columns but propensities has "
            f"{n_labels} entries"
        )
    for what, cols in (("y_true", truth.cols), ("y_pred", ranked.cols)):
        if cols.size and cols.max() >= n_labels:
            raise ValueError(
                f"{what} contains label index {cols.max()}, out of range for "
                f"propensities with {n_labels} entries"
            )
    weights = 1.0 / prop
    gained = float(weights[ranked.cols[ranked.hits()]].sum())
    if not normalize:
        return gained / (ranked.n * k)
    # Best achievable: per row, the min(k, |T_i|) largest weights of its labels.
    rows, cols = ranked.unique_true_pairs()
    if not rows.size:
        return 0.0
    w = weights[cols]
    order = np.lexsort((-w, rows))          # by row, heaviest label first
    rows, w = rows[order], w[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, rows, side="left")
    best = float(w[rank < k].sum())
    return gained / best


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
