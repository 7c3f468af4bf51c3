"""Tests for slidelearn.metrics: precision@k and its scikit-learn scorer."""
import doctest

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, top_k_accuracy_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

from slidelearn import metrics
from slidelearn.metrics import make_precision_at_k_scorer, precision_at_k

# Three rows, five labels.
Y_IND = np.array(
    [
        [1, 0, 1, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 1, 1],
    ]
)
Y_LISTS = [[0, 2], [1], [3, 4]]
SCORES = np.array(
    [
        [0.9, 0.1, 0.2, 0.8, 0.0],   # ranking 0, 3, 2, 1, 4
        [0.3, 0.2, 0.1, 0.0, 0.5],   # ranking 4, 0, 1, 2, 3
        [0.1, 0.2, 0.3, 0.4, 0.5],   # ranking 4, 3, 2, 1, 0
    ]
)
# Same rankings as label indices, best first.
RANKED = np.array([[0, 3, 2, 1, 4], [4, 0, 1, 2, 3], [4, 3, 2, 1, 0]])
# Hand-computed precision@k for (Y_IND, SCORES):
#   k=1: rows 1/1, 0/1, 1/1                   -> 2/3
#   k=2: rows 1/2, 0/2, 2/2                   -> (0.5 + 0 + 1) / 3 = 0.5
#   k=3: rows 2/3, 1/3, 2/3                   -> 5/9
#   k=5: rows 2/5, 1/5, 2/5                   -> 1/3
EXPECTED = {1: 2 / 3, 2: 0.5, 3: 5 / 9, 5: 1 / 3}


@pytest.mark.parametrize("k", sorted(EXPECTED))
@pytest.mark.parametrize(
    "y_true",
    [
        Y_IND,
        Y_IND.astype(bool),
        Y_IND.astype(np.float32),
        sp.csr_matrix(Y_IND),
        sp.csc_matrix(Y_IND),
        sp.csr_array(Y_IND),
        Y_LISTS,
        [tuple(r) for r in Y_LISTS],
        np.array([np.array(r) for r in Y_LISTS], dtype=object),
    ],
    ids=["dense", "bool", "float", "csr", "csc", "csr_array", "lists", "tuples", "object"],
)
@pytest.mark.parametrize("pred", ["scores", "ranked"])
def test_precision_at_k_hand_computed(y_true, pred, k):
    y_pred = SCORES if pred == "scores" else RANKED
    assert precision_at_k(y_true, y_pred, k=k) == pytest.approx(EXPECTED[k])


def test_precision_at_k_multiclass_targets():
    y = np.array([0, 4, 2])
    # k=1: top labels 0, 4, 4 -> hits 1, 1, 0
    assert precision_at_k(y, SCORES, k=1) == pytest.approx(2 / 3)
    assert precision_at_k(y, RANKED, k=1) == pytest.approx(2 / 3)
    # k=3: row 2 ranks label 2 third -> all three rows hit once, each 1/3
    assert precision_at_k(y, SCORES, k=3) == pytest.approx(1 / 3)
    assert precision_at_k(list(y), RANKED, k=3) == pytest.approx(1 / 3)
    # 1-D integer predictions: one label per row (accuracy).
    assert precision_at_k(y, np.array([0, 1, 2]), k=1) == pytest.approx(2 / 3)


def test_precision_at_k_ranked_with_missing_predictions():
    ranked = np.array([[2, -1, -1], [-1, -1, -1], [3, 4, -1]])
    # k=2: rows 1/2, 0/2, 2/2 -> 0.5 ; k=3 denominators stay 3: (1 + 0 + 2) / 9
    assert precision_at_k(Y_IND, ranked, k=2) == pytest.approx(0.5)
    assert precision_at_k(Y_LISTS, ranked, k=3) == pytest.approx(3 / 9)
    # Extra columns beyond k are ignored.
    assert precision_at_k(Y_IND, ranked, k=1) == pytest.approx(2 / 3)


def test_precision_at_k_ties_go_to_lower_label_index():
    scores = np.zeros((2, 4))
    y = np.array([[0, 0, 1, 1], [1, 1, 0, 0]])
    # All scores tie: the top-2 are labels 0 and 1 in every row.
    assert precision_at_k(y, scores, k=2) == pytest.approx(0.5)
    assert precision_at_k(y[::-1], scores, k=2) == pytest.approx(0.5)
    scores = np.array([[1.0, 0.5, 0.5, 0.5]])
    assert precision_at_k(np.array([[0, 1, 0, 0]]), scores, k=2) == 0.5   # label 1 wins the tie
    assert precision_at_k(np.array([[0, 0, 0, 1]]), scores, k=2) == 0.0   # label 3 loses it
    assert precision_at_k(np.array([[0, 0, 0, 1]]), scores, k=4) == 0.25


def test_precision_at_k_infinite_scores_and_integer_scores():
    scores = np.array([[-np.inf, np.inf, 0.0]])
    assert precision_at_k(np.array([[0, 1, 0]]), scores, k=1) == 1.0
    assert precision_at_k(np.array([[1, 0, 0]]), scores, k=2) == 0.0
    int_scores = np.array([[1, 5, 3]])
    assert precision_at_k(np.array([[0, 0, 1]]), int_scores, k=2, kind="scores") == 0.5
    # The same integers read as ranked labels: labels 1 and ... 5 is out of range.
    with pytest.raises(ValueError, match="out of range"):
        precision_at_k(np.array([[0, 0, 1]]), int_scores, k=2)


def test_precision_at_k_k_larger_than_n_labels():
    # Denominator stays k: all 5 labels predicted, rows have 2, 1, 2 relevant.
    assert precision_at_k(Y_IND, SCORES, k=7) == pytest.approx(5 / 21)


def test_precision_at_k_matches_sklearn_top_k_accuracy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 20, 500)
    scores = rng.standard_normal((500, 20))
    for k in (1, 3, 7):
        expected = top_k_accuracy_score(y, scores, k=k, labels=np.arange(20)) / k
        assert precision_at_k(y, scores, k=k) == pytest.approx(expected)


def test_precision_at_k_matches_brute_force_multilabel():
    rng = np.random.default_rng(1)
    Y = (rng.random((300, 40)) < 0.1).astype(int)
    scores = rng.standard_normal((300, 40)).astype(np.float32)
    order = np.argsort(-scores, axis=1, kind="stable")
    for k in (1, 2, 5, 10):
        expected = np.mean([Y[i, order[i, :k]].sum() / k for i in range(300)])
        assert precision_at_k(Y, scores, k=k) == pytest.approx(expected)
        assert precision_at_k(sp.csr_matrix(Y), order, k=k) == pytest.approx(expected)
        lists = [np.flatnonzero(r).tolist() for r in Y]
        assert precision_at_k(lists, order[:, :k], k=k) == pytest.approx(expected)


def test_precision_at_k_blocks_of_rows(monkeypatch):
    # Force the top-k selection to process a few rows at a time.
    monkeypatch.setattr(metrics, "_SCORE_BLOCK_ENTRIES", 7)
    rng = np.random.default_rng(2)
    Y = (rng.random((50, 6)) < 0.3).astype(int)
    scores = rng.standard_normal((50, 6))
    order = np.argsort(-scores, axis=1)
    for k in (1, 3):
        assert precision_at_k(Y, scores, k=k) == pytest.approx(precision_at_k(Y, order, k=k))


def test_precision_at_k_does_not_modify_inputs():
    y = sp.coo_matrix(([1, 1, 0], ([0, 1, 1], [0, 1, 2])), shape=(2, 3)).tocsr()
    y_dup = sp.csr_matrix((np.array([1, 1]), np.array([2, 0]), np.array([0, 2, 2])), shape=(2, 3))
    before = y_dup.indices.copy()
    scores = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    scores_before = scores.copy()
    assert precision_at_k(y_dup, scores, k=1) == 0.5
    np.testing.assert_array_equal(y_dup.indices, before)
    np.testing.assert_array_equal(scores, scores_before)
    # Explicitly stored zeros in a sparse indicator are not relevant labels.
    assert precision_at_k(y, np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), k=1) == 0.0


@pytest.mark.parametrize(
    "y_true, y_pred, k, exc, match",
    [
        (Y_IND, SCORES, 0, ValueError, "k must be a positive integer"),
        (Y_IND, SCORES, 1.5, ValueError, "k must be a positive integer"),
        (Y_IND, SCORES, True, ValueError, "k must be a positive integer"),
        (Y_IND[:2], SCORES, 1, ValueError, "y_true has 2 rows but y_pred has 3"),
        (Y_IND[:, :4], SCORES, 1, ValueError, "4 label columns but y_pred has 5"),
        ([[0], [7], [1]], SCORES, 1, ValueError, "label index 7.*5 columns"),
        (np.array([0, 5, 1]), SCORES, 1, ValueError, "label index 5"),
        (np.array([0, -1, 1]), SCORES, 1, ValueError, "negative label index -1"),
        ([[0], [-2], [1]], RANKED, 1, ValueError, "negative label index"),
        (Y_IND, np.array([[0, 5], [1, 2], [3, 4]]), 2, ValueError, "label index 5, out of range"),
        (Y_IND, RANKED[:, :2], 3, ValueError, "2 ranked labels per row, fewer than k=3"),
        (Y_IND, np.array([[0, -2], [1, 2], [3, 4]]), 2, ValueError, "-1 for 'no prediction'"),
        (Y_IND, np.array([[0, 0], [1, 2], [3, 4]]), 2, ValueError, "row 0 lists label 0 more"),
        (Y_IND, np.where(SCORES > 0.85, np.nan, SCORES), 1, ValueError, "NaN"),
        (Y_IND * 2, SCORES, 1, ValueError, "only 0 and 1"),
        (sp.csr_matrix(Y_IND * 2), SCORES, 1, ValueError, "only 0 and 1"),
        (Y_IND, sp.csr_matrix(SCORES), 1, TypeError, "must be a dense array"),
        (Y_IND, SCORES > 0.5, 1, TypeError, "boolean y_pred is ambiguous"),
        (Y_IND, np.array([["a"] * 5] * 3), 1, TypeError, "must be numeric"),
        (np.array([0.0, 1.0, 2.0]), SCORES, 1, TypeError, "integer label indices"),
        ([[0], 1, [2]], SCORES, 1, TypeError, "row 1 is int"),
        (np.zeros((2, 2, 2)), SCORES, 1, ValueError, "shape"),
        (Y_IND, SCORES[0], 1, ValueError, "y_pred must be 2-D"),
        (np.zeros((0, 5)), np.zeros((0, 5)), 1, ValueError, "at least one sample"),
    ],
)
def test_precision_at_k_errors(y_true, y_pred, k, exc, match):
    with pytest.raises(exc, match=match):
        precision_at_k(y_true, y_pred, k=k)


def test_precision_at_k_kind_override():
    with pytest.raises(TypeError, match="must be integers"):
        precision_at_k(Y_IND, RANKED.astype(float), k=2, kind="topk")
    with pytest.raises(ValueError, match="kind must be"):
        precision_at_k(Y_IND, SCORES, kind="labels")
    assert precision_at_k(Y_IND, RANKED.astype(np.int8), k=2, kind="topk") == 0.5


# ---------------------------------------------------------------------------
# Scorer
# ---------------------------------------------------------------------------

def test_scorer_repr_and_validation():
    assert repr(make_precision_at_k_scorer(3)) == "make_precision_at_k_scorer(k=3)"
    with pytest.raises(ValueError, match="k must be a positive integer"):
        make_precision_at_k_scorer(0)


def test_scorer_equals_accuracy_and_top_k_on_iris():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = LogisticRegression(max_iter=1000).fit(X[::2], names[::2])
    scorer1 = make_precision_at_k_scorer(1)
    acc = accuracy_score(names[1::2], clf.predict(X[1::2]))
    assert scorer1(clf, X[1::2], names[1::2]) == pytest.approx(acc)
    assert acc < 1.0  # the check is not vacuous
    proba = clf.predict_proba(X[1::2])
    top2 = top_k_accuracy_score(names[1::2], proba, k=2, labels=clf.classes_)
    assert make_precision_at_k_scorer(2)(clf, X[1::2], names[1::2]) == pytest.approx(top2 / 2)
    # A (n, 1) column of labels is accepted too.
    assert scorer1(clf, X[1::2], names[1::2, None]) == pytest.approx(acc)


def test_scorer_unseen_labels_are_misses():
    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    y_unseen = y.copy()
    y_unseen[:50] = 7            # a class the model never saw
    expected = accuracy_score(y[50:], clf.predict(X[50:])) * 100 / 150
    assert make_precision_at_k_scorer(1)(clf, X, y_unseen) == pytest.approx(expected)
    assert make_precision_at_k_scorer(1)(clf, X, np.full(150, 9)) == 0.0


def test_scorer_binary_decision_function():
    X, y = load_iris(return_X_y=True)
    mask = y > 0
    X, y = X[mask], y[mask]
    clf = LinearSVC().fit(X, y)
    assert not hasattr(clf, "predict_proba")
    assert make_precision_at_k_scorer(1)(clf, X, y) == pytest.approx(clf.score(X, y))
    assert make_precision_at_k_scorer(2)(clf, X, y) == pytest.approx(0.5)


def test_scorer_in_grid_search_and_cross_val_score():
    X, y = load_iris(return_X_y=True)
    grid = {"C": [0.01, 1.0]}
    gs = GridSearchCV(LogisticRegression(max_iter=1000), grid, cv=3,
                      scoring=make_precision_at_k_scorer(1)).fit(X, y)
    gs_acc = GridSearchCV(LogisticRegression(max_iter=1000), grid, cv=3,
                          scoring="accuracy").fit(X, y)
    np.testing.assert_allclose(gs.cv_results_["mean_test_score"],
                               gs_acc.cv_results_["mean_test_score"])
    assert gs.best_params_ == gs_acc.best_params_
    scores = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=3,
                             scoring=make_precision_at_k_scorer(2))
    assert scores.shape == (3,) and np.all((scores > 0.4) & (scores <= 0.5))


class _CentroidTopK(ClassifierMixin, BaseEstimator):
    """Nearest-centroid ranker exposing predict_topk (labels in classes_ space)."""

    def __init__(self, shrink=0.0, pad=False):
        self.shrink = shrink
        self.pad = pad

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        if sp.issparse(y) or np.ndim(y) == 2:
            Y = np.asarray(y.toarray() if sp.issparse(y) else y, dtype=float)
            self.classes_ = np.arange(Y.shape[1])
        else:
            self.classes_, inv = np.unique(y, return_inverse=True)
            Y = np.eye(len(self.classes_))[inv]
        self.centroids_ = (Y.T @ X) / np.maximum(Y.sum(axis=0)[:, None], 1) * (1 - self.shrink)
        return self

    def predict_topk(self, X, k):
        d = ((np.asarray(X)[:, None, :] - self.centroids_[None]) ** 2).sum(-1)
        order = np.argsort(d, axis=1, kind="stable")[:, : min(k, len(self.classes_))]
        labels = self.classes_[order].astype(object)
        if self.pad:
            labels[:, 1:] = -1     # only one real prediction per row
        return labels, -np.take_along_axis(d, order, axis=1)

    def predict(self, X):
        return self.predict_topk(X, 1)[0][:, 0]


def test_scorer_with_predict_topk_multiclass_strings():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    est = _CentroidTopK().fit(X, names)
    top = est.predict_topk(X, 2)[0]
    for k in (1, 2):
        expected = np.mean([names[i] in top[i, :k] for i in range(150)]) / k
        assert make_precision_at_k_scorer(k)(est, X, names) == pytest.approx(expected)
    assert make_precision_at_k_scorer(1)(est, X, names) == pytest.approx(
        accuracy_score(names, est.predict(X)))
    # k above the number of classes: the estimator returns only 3 columns.
    assert make_precision_at_k_scorer(5)(est, X, names) == pytest.approx(1 / 5)
    padded = _CentroidTopK(pad=True).fit(X, names)
    assert make_precision_at_k_scorer(2)(padded, X, names) == pytest.approx(
        accuracy_score(names, est.predict(X)) / 2)
    gs = GridSearchCV(_CentroidTopK(), {"shrink": [0.0, 0.5]}, cv=3,
                      scoring=make_precision_at_k_scorer(1)).fit(X, names)
    assert gs.best_params_ == {"shrink": 0.0} and gs.best_score_ > 0.8


def test_scorer_with_predict_topk_and_indicator_targets():
    rng = np.random.default_rng(0)
    Y = (rng.random((120, 6)) < 0.3).astype(int)
    X = Y @ rng.standard_normal((6, 4)) + 0.3 * rng.standard_normal((120, 4))
    est = _CentroidTopK().fit(X, Y)
    labels = est.predict_topk(X, 3)[0].astype(int)
    for k in (1, 3):
        expected = precision_at_k(Y, labels, k=k)
        assert make_precision_at_k_scorer(k)(est, X, Y) == pytest.approx(expected)
        assert make_precision_at_k_scorer(k)(est, X, sp.csr_matrix(Y)) == pytest.approx(expected)
    assert make_precision_at_k_scorer(1)(est, X, Y) > Y.mean() + 0.2
    # k above the number of labels: all 6 labels are returned, denominator stays 8.
    assert make_precision_at_k_scorer(8)(est, X, Y) == pytest.approx(Y.sum() / (120 * 8))
    # Labels named by classes_ (here strings) are mapped back to indicator columns.
    named = _CentroidTopK().fit(X, Y)
    named.classes_ = np.array(list("abcdef"))
    assert make_precision_at_k_scorer(3)(named, X, Y) == pytest.approx(
        precision_at_k(Y, labels, k=3))


def test_scorer_with_multilabel_one_vs_rest():
    rng = np.random.default_rng(3)
    Y = (rng.random((200, 5)) < 0.4).astype(int)
    X = Y @ rng.standard_normal((5, 8)) + 0.5 * rng.standard_normal((200, 8))
    clf = OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(X, Y)
    for k in (1, 2):
        expected = precision_at_k(Y, clf.predict_proba(X), k=k)
        assert make_precision_at_k_scorer(k)(clf, X, Y) == pytest.approx(expected)
        assert make_precision_at_k_scorer(k)(clf, X, sp.csr_matrix(Y)) == pytest.approx(expected)
    with pytest.raises(ValueError, match="label columns"):
        make_precision_at_k_scorer(1)(clf, X, Y[:, :4])


def test_scorer_rejects_sample_weight_and_unusable_estimators():
    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    with pytest.raises(TypeError, match="does not support sample_weight"):
        make_precision_at_k_scorer(1)(clf, X, y, sample_weight=np.ones(150))
    # sample_weight=None is accepted.
    assert make_precision_at_k_scorer(1)(clf, X, y, sample_weight=None) > 0.9

    class NoScores(BaseEstimator):
        classes_ = np.arange(3)

        def predict(self, X):
            return np.zeros(len(X), dtype=int)

    with pytest.raises(TypeError, match="predict_topk, predict_proba or decision_function"):
        make_precision_at_k_scorer(1)(NoScores(), X, y)


def test_docstring_examples_run():
    result = doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
