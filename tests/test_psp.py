"""Tests for slidelearn.metrics.propensity_scored_precision_at_k and jain_propensity."""
import math

import numpy as np
import pytest
import scipy.sparse as sp

from slidelearn.metrics import (jain_propensity, precision_at_k,
                                propensity_scored_precision_at_k)

# Three rows, four labels; propensities 1, 1/2, 1/4, 1/5 (weights 1/p = 1, 2, 4, 5).
Y_IND = np.array(
    [
        [1, 0, 1, 0],
        [0, 1, 0, 0],
        [0, 1, 1, 1],
    ]
)
Y_LISTS = [[0, 2], [1], [1, 2, 3]]
PROP = np.array([1.0, 0.5, 0.25, 0.2])
SCORES = np.array(
    [
        [0.9, 0.1, 0.2, 0.8],   # ranking 0, 3, 2, 1
        [0.3, 0.2, 0.1, 0.0],   # ranking 0, 1, 2, 3
        [0.1, 0.5, 0.3, 0.4],   # ranking 1, 3, 2, 0
    ]
)
RANKED = np.array([[0, 3, 2, 1], [0, 1, 2, 3], [1, 3, 2, 0]])
# Hand-computed, weights w = (1, 2, 4, 5):
#   top-1 hits:  row 0 label 0 (w 1), row 1 none, row 2 label 1 (w 2)   -> gained 3
#   best top-1:  row 0 label 2 (4), row 1 label 1 (2), row 2 label 3 (5) -> best 11
#   top-2 hits:  row 0 {0} (1), row 1 {1} (2), row 2 {1, 3} (2 + 5)     -> gained 10
#   best top-2:  row 0 {2, 0} (5), row 1 {1} (2), row 2 {3, 2} (9)      -> best 16
#   top-3 hits:  row 0 {0, 2} (5), row 1 {1} (2), row 2 {1, 3, 2} (11)  -> gained 18
#   best top-3:  row 0 (5), row 1 (2), row 2 (11)                        -> best 18
EXPECTED = {
    1: (3 / 11, 3 / (3 * 1)),
    2: (10 / 16, 10 / (3 * 2)),
    3: (18 / 18, 18 / (3 * 3)),
}


def _psp_reference(y_lists, ranked_lists, propensities, k, normalize=True):
    """Plain-Python PSP@k: one loop per row, straight from the definition."""
    gained = best = 0.0
    for truth, ranking in zip(y_lists, ranked_lists):
        truth = set(truth)
        top = [lab for lab in ranking[:k] if lab >= 0]
        gained += sum(1.0 / propensities[lab] for lab in top if lab in truth)
        weights = sorted((1.0 / propensities[lab] for lab in truth), reverse=True)
        best += sum(weights[:k])
    if normalize:
        return gained / best if best else 0.0
    return gained / (len(y_lists) * k)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize(
    "y_true", [Y_IND, sp.csr_matrix(Y_IND), sp.csc_matrix(Y_IND), Y_LISTS],
    ids=["dense", "csr", "csc", "lists"],
)
@pytest.mark.parametrize("y_pred", [SCORES, RANKED], ids=["scores", "ranked"])
def test_hand_computed_values(k, y_true, y_pred):
    norm, raw = EXPECTED[k]
    assert propensity_scored_precision_at_k(y_true, y_pred, PROP, k) == pytest.approx(norm)
    assert propensity_scored_precision_at_k(
        y_true, y_pred, PROP, k, normalize=False
    ) == pytest.approx(raw)
    assert _psp_reference(Y_LISTS, RANKED.tolist(), PROP, k) == pytest.approx(norm)


def test_random_problems_match_reference():
    rng = np.random.RandomState(0)
    for trial in range(20):
        n, m = rng.randint(1, 30), rng.randint(2, 15)
        Y = (rng.rand(n, m) < 0.25).astype(int)
        prop = rng.uniform(0.05, 1.0, size=m)
        scores = rng.rand(n, m)
        ranked = np.argsort(-scores, axis=1, kind="stable")
        y_lists = [np.flatnonzero(r).tolist() for r in Y]
        for k in (1, 3, m + 2):
            for normalize in (True, False):
                expected = _psp_reference(y_lists, ranked.tolist(), prop, k, normalize)
                got = propensity_scored_precision_at_k(Y, scores, prop, k,
                                                       normalize=normalize)
                assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), (trial, k)
                if k <= m:
                    got_ranked = propensity_scored_precision_at_k(
                        sp.csr_matrix(Y), ranked, prop, k, normalize=normalize)
                    assert got_ranked == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_unit_propensities_give_precision_at_k():
    ones = np.ones(4)
    for k in (1, 2, 3, 4):
        assert propensity_scored_precision_at_k(
            Y_IND, SCORES, ones, k, normalize=False
        ) == pytest.approx(precision_at_k(Y_IND, SCORES, k))


def test_normalised_value_is_one_for_the_best_ranking_and_at_most_one():
    # Ranking each row's labels by decreasing weight reaches the maximum.
    best_scores = Y_IND / PROP
    for k in (1, 2, 3, 4):
        assert propensity_scored_precision_at_k(Y_IND, best_scores, PROP, k) == 1.0
    rng = np.random.RandomState(1)
    for _ in range(10):
        val = propensity_scored_precision_at_k(Y_IND, rng.rand(3, 4), PROP, 2)
        assert 0.0 <= val <= 1.0


def test_rows_without_labels_only_change_the_unnormalised_value():
    y = Y_LISTS + [[]]
    ranked = np.vstack([RANKED, [[3, 2, 1, 0]]])
    assert propensity_scored_precision_at_k(y, ranked, PROP, 2) == pytest.approx(10 / 16)
    assert propensity_scored_precision_at_k(
        y, ranked, PROP, 2, normalize=False
    ) == pytest.approx(10 / (4 * 2))
    # No relevant label at all: nothing to gain.
    assert propensity_scored_precision_at_k([[], []], RANKED[:2], PROP, 2) == 0.0


def test_missing_predictions_and_duplicate_true_labels():
    ranked = np.array([[2, -1], [-1, -1], [3, 1]])
    # Gained: row 0 label 2 (4), row 2 labels 3 and 1 (5 + 2); best as before: 16.
    y = [[0, 2, 2], [1], [1, 2, 3, 3]]
    assert propensity_scored_precision_at_k(y, ranked, PROP, 2) == pytest.approx(11 / 16)


def test_multiclass_and_one_column_predictions():
    y = np.array([0, 2, 3])
    pred = np.array([0, 1, 3])
    # Gained 1 + 5, best 1 + 4 + 5.
    assert propensity_scored_precision_at_k(y, pred, PROP, 1) == pytest.approx(6 / 10)


def test_inputs_are_not_modified():
    # A CSR matrix with an explicit zero and unsorted indices in row 0.
    Y = sp.csr_matrix((np.array([0.0, 1.0, 1.0]), np.array([1, 0, 1]), np.array([0, 2, 3])),
                      shape=(2, 2))
    prop = np.array([0.5, 0.25])
    scores = np.array([[0.2, 0.1], [0.3, 0.4]])
    copies = [Y.data.copy(), Y.indices.copy(), prop.copy(), scores.copy()]
    # Gained: row 0 label 0 (2), row 1 label 1 (4); best the same.
    assert propensity_scored_precision_at_k(Y, scores, prop, 1) == 1.0
    for before, after in zip(copies, [Y.data, Y.indices, prop, scores]):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize(
    "propensities, match",
    [
        (np.array([1.0, 2.0, 4.0, 5.0]), r"\(0, 1\].*inverse propensities"),
        (np.array([1.0, 0.5, 0.0, 0.2]), r"\(0, 1\]"),
        (np.array([1.0, 0.5, np.nan, 0.2]), r"\(0, 1\]"),
        (np.array([[1.0, 0.5, 0.25, 0.2]]), "1-D"),
        (np.array([]), "non-empty"),
        (np.array([1.0, 0.5, 0.25]), "3 entries"),
        (np.array([1.0, 0.5, 0.25, 0.2, 0.1]), "5 entries"),
    ],
)
def test_invalid_propensities(propensities, match):
    with pytest.raises(ValueError, match=match):
        propensity_scored_precision_at_k(Y_IND, SCORES, propensities, 1)


def test_label_indices_beyond_the_propensities():
    with pytest.raises(ValueError, match="y_pred contains label index 7"):
        propensity_scored_precision_at_k(Y_LISTS, np.array([[7], [0], [1]]), PROP, 1)
    with pytest.raises(ValueError, match="y_true contains label index 9"):
        propensity_scored_precision_at_k([[9], [0], [1]], RANKED, PROP, 1)


def test_other_invalid_inputs():
    with pytest.raises(ValueError, match="k must be a positive integer"):
        propensity_scored_precision_at_k(Y_IND, SCORES, PROP, 0)
    with pytest.raises(TypeError, match="normalize must be a bool"):
        propensity_scored_precision_at_k(Y_IND, SCORES, PROP, 1, normalize="yes")
    with pytest.raises(TypeError, match="sparse"):
        propensity_scored_precision_at_k(Y_IND, sp.csr_matrix(SCORES), PROP, 1)
    with pytest.raises(TypeError, match="sparse"):
        propensity_scored_precision_at_k(Y_IND, SCORES, sp.csr_matrix(PROP), 1)
    with pytest.raises(ValueError, match="3 rows but y_pred has 2"):
        propensity_scored_precision_at_k(Y_IND, SCORES[:2], PROP, 1)
    with pytest.raises(ValueError, match="propensity_scored_precision_at_k needs at least"):
        propensity_scored_precision_at_k(np.zeros((0, 4)), np.zeros((0, 4)), PROP, 1)
    with pytest.raises(ValueError, match="fewer than k=5"):
        propensity_scored_precision_at_k(Y_IND, RANKED, PROP, 5)


# ----------------------------------------------------------------- jain_propensity
def _jain_by_hand(counts, n, A=0.55, B=1.5):
    C = (math.log(n) - 1.0) * (B + 1.0) ** A
    return np.array([1.0 / (1.0 + C * math.exp(-A * math.log(c + B))) for c in counts])


@pytest.mark.parametrize(
    "Y_train",
    [
        np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]]),
        sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0],
                                [0, 1, 0, 0]])),
        [[0, 1], [0], [0, 2, 2], [0], [1]],   # a repeated label counts once
    ],
    ids=["dense", "csr", "lists"],
)
def test_jain_propensity_matches_the_formula(Y_train):
    p = jain_propensity(Y_train, n_labels=4)
    # N = 5 rows; label counts 4, 2, 1, 0.
    np.testing.assert_allclose(p, _jain_by_hand([4, 2, 1, 0], 5), rtol=1e-13)
    # The same numbers written out: C = (ln 5 - 1) * 2.5 ** 0.55.
    C = (math.log(5) - 1) * 2.5 ** 0.55
    assert p[0] == pytest.approx(1 / (1 + C * 5.5 ** -0.55))
    assert p[3] == pytest.approx(1 / (1 + C * 1.5 ** -0.55))
    # More frequent labels are more likely observed.
    assert np.all(np.diff(p) < 0) and np.all((p > 0) & (p <= 1))


def test_jain_propensity_constants_and_defaults():
    Y = sp.random(200, 30, density=0.1, format="csr", random_state=0)
    Y.data[:] = 1
    counts = np.asarray((Y != 0).sum(axis=0)).ravel()
    np.testing.assert_allclose(jain_propensity(Y, 0.6, 2.6), _jain_by_hand(counts, 200, 0.6, 2.6))
    np.testing.assert_allclose(jain_propensity(Y), _jain_by_hand(counts, 200))
    # 1-D multi-class labels; without n_labels the width is the largest label + 1.
    p = jain_propensity(np.array([0, 0, 2, 1, 0]))
    np.testing.assert_allclose(p, _jain_by_hand([3, 1, 1], 5))


def test_jain_propensity_feeds_psp():
    Y_train = [[0], [0], [0, 1], [2], [0, 3], [1]]
    p = jain_propensity(Y_train, n_labels=4)
    val = propensity_scored_precision_at_k(Y_IND, SCORES, p, 2)
    assert val == pytest.approx(_psp_reference(Y_LISTS, RANKED.tolist(), p, 2))


def test_jain_propensity_errors():
    Y = [[0], [1], [0, 1]]
    with pytest.raises(ValueError, match="A must be"):
        jain_propensity(Y, A=0)
    with pytest.raises(ValueError, match="B must be"):
        jain_propensity(Y, B=-1.0)
    with pytest.raises(ValueError, match="B must be"):
        jain_propensity(Y, B=float("nan"))
    with pytest.raises(ValueError, match="at least 3 training rows"):
        jain_propensity([[0], [1]])
    with pytest.raises(ValueError, match="n_labels=2"):
        jain_propensity(np.eye(3, dtype=int), n_labels=2)
    with pytest.raises(ValueError, match="out of range for n_labels=1"):
        jain_propensity(Y, n_labels=1)
    with pytest.raises(ValueError, match="n_labels must be a positive integer"):
        jain_propensity(Y, n_labels=0)
    with pytest.raises(ValueError, match="no label at all"):
        jain_propensity([[], [], []])
    with pytest.raises(ValueError, match="only 0 and 1"):
        jain_propensity(np.full((3, 2), 2))
