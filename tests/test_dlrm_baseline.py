"""DLRMRegressor's baseline (the mean target plus a shrunk offset per table row, fitted
before the network, which learns the rest) and the pass over the held-out rows after
early stopping (``validation_pass``)."""
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from slidelearn import DLRMClassifier, DLRMRegressor


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 600
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 20, n), rng.integers(0, 7, n)])
    effect_a, effect_b = rng.normal(size=20), rng.normal(size=7)
    y = (3.0 + X[:, 0] + effect_a[X[:, 1].astype(int)] + effect_b[X[:, 2].astype(int)]
         + 0.1 * rng.normal(size=n))
    return X, y


def _est(Est=DLRMRegressor, **kw):
    params = dict(categorical_features=[1, 2], embedding_dim=4, bottom_mlp=(8,),
                  top_mlp=(8,), max_iter=3, batch_size=64, n_jobs=1, random_state=0)
    params.update(kw)
    return Est(**params)


def _ridge_offsets(X, y, sizes, shrinkage):
    """The offsets as one ridge regression of ``y - mean(y)`` on the one-hot ids
    (normal equations), which backfitting converges to."""
    n = len(y)
    A = sp.hstack([sp.csr_matrix((np.ones(n), (np.arange(n), X[:, c].astype(int))),
                                 shape=(n, size)) for c, size in zip((1, 2), sizes)])
    A = A.toarray()
    lhs = A.T @ A + shrinkage * np.eye(A.shape[1])
    # least squares, not solve: without shrinkage the one-hot columns of two tables are
    # collinear (each table's sum to one), and LAPACK may call that exactly singular
    return np.linalg.lstsq(lhs, A.T @ (y - y.mean()), rcond=None)[0]


@pytest.mark.parametrize("shrinkage", [0.5, 25.0])
def test_offsets_are_the_shrunk_least_squares_offsets(data, shrinkage):
    X, y = data
    est = _est(baseline_shrinkage=shrinkage).fit(X, y)
    assert est.baseline_mean_ == pytest.approx([y.mean()], rel=1e-6)
    expected = _ridge_offsets(X, y, est.table_sizes_, shrinkage)
    assert est.baseline_offsets_.shape == (27, 1)

    def fitted(offsets):
        return offsets[X[:, 1].astype(int)] + offsets[20 + X[:, 2].astype(int)]

    # a nearly free shift between the tables converges slowly at a small shrinkage;
    # the rows' baselines do not depend on it
    np.testing.assert_allclose(fitted(est.baseline_offsets_[:, 0]), fitted(expected),
                               atol=2e-3)
    if shrinkage >= 1:
        np.testing.assert_allclose(est.baseline_offsets_[:, 0], expected, atol=2e-3)


def test_rare_ids_get_small_offsets(data):
    """An id seen once keeps 1/26 of its residual at the default shrinkage of 25."""
    X, y = data
    X2 = np.vstack([X, [[0.0, 20, 0]]])  # id 20 of the first table, seen once
    y2 = np.append(y, y.mean() + 10.0)
    est = _est().fit(X2, y2)
    assert 0.2 < est.baseline_offsets_[20, 0] < 0.5
    frequent = _est().fit(X, y)
    # ids seen ~30 times keep most of their effect
    assert np.corrcoef(frequent.baseline_offsets_[:20, 0], _ridge_offsets(
        X, y, frequent.table_sizes_, 0.0)[:20])[0, 1] > 0.99


def test_prediction_is_the_network_plus_the_baseline(data):
    X, y = data
    est = _est(max_iter=5).fit(X, y)
    base = (est.baseline_mean_[0] + est.baseline_offsets_[X[:, 1].astype(int), 0]
            + est.baseline_offsets_[20 + X[:, 2].astype(int), 0])
    network = pickle.loads(pickle.dumps(est))
    network.baseline_mean_ = network.baseline_offsets_ = None  # as an older pickle
    pred = est.predict(X)
    np.testing.assert_allclose(pred - network.predict(X), base, atol=1e-4)
    # the network learned what the baseline left: better than the baseline alone
    assert np.mean((pred - y) ** 2) < np.mean((base - y) ** 2) < np.var(y)


def test_baseline_off_and_where_it_does_not_apply(data):
    X, y = data
    off = _est(baseline=False).fit(X, y)
    assert off.baseline_mean_ is None and off.baseline_offsets_ is None
    no_tables = _est(categorical_features=None).fit(X, y)
    assert no_tables.baseline_offsets_ is None
    # asked for without tables: the mean alone
    mean_only = _est(categorical_features=None, baseline=True).fit(X, y)
    assert mean_only.baseline_offsets_.shape == (0, 1)
    assert mean_only.baseline_mean_ == pytest.approx([y.mean()], rel=1e-6)
    assert np.isfinite(mean_only.predict(X)).all()
    clf = _est(DLRMClassifier).fit(X, y > np.median(y))
    assert clf.baseline_offsets_ is None
    with pytest.raises(ValueError, match="baseline=True is only available to DLRMRegressor"):
        _est(DLRMClassifier, baseline=True).fit(X, y > np.median(y))


def test_later_fits_keep_the_first_fits_baseline_and_y_is_not_changed(data):
    X, y = data
    y_in = y.copy()
    est = _est()
    est.partial_fit(X[:300], y_in[:300])
    first = est.baseline_offsets_.copy()
    est.partial_fit(X[300:], y_in[300:])
    np.testing.assert_array_equal(est.baseline_offsets_, first)
    warm = _est(warm_start=True).fit(X[:300], y_in[:300])
    before = warm.baseline_offsets_.copy()
    warm.fit(X[300:], y_in[300:])
    np.testing.assert_array_equal(warm.baseline_offsets_, before)
    np.testing.assert_array_equal(y_in, y)
    # a new (cold) fit sets it anew
    cold = _est().fit(X[300:], y[300:])
    assert not np.array_equal(cold.baseline_offsets_, first)


def test_multi_output_and_weighted_multi_hot_bags_do_not_overshoot():
    """Each output has its offsets; a bag of m ids shares its row's residual, so the
    baseline of a row stays within the targets' range."""
    rng = np.random.default_rng(1)
    n = 400
    bags = sp.csr_matrix((rng.uniform(0.5, 2.0, n * 4),
                          (np.repeat(np.arange(n), 4), rng.integers(0, 12, n * 4))),
                         shape=(n, 12))
    X = sp.hstack([sp.csr_matrix(rng.normal(size=(n, 1))), bags]).tocsr()
    Y = np.column_stack([np.asarray(bags[:, :6].sum(axis=1)).ravel(),
                         -np.asarray(bags[:, 6:].sum(axis=1)).ravel()])
    est = DLRMRegressor(feature_groups=[np.arange(1, 13)], embedding_dim=4,
                        bottom_mlp=(8,), top_mlp=(8,), max_iter=2, n_jobs=1,
                        random_state=0).fit(X, Y)
    assert est.baseline_offsets_.shape == (12, 2) and est.baseline_mean_.shape == (2,)
    W = bags.toarray()
    base = est.baseline_mean_ + W @ est.baseline_offsets_
    for j in range(2):
        assert Y[:, j].min() - 0.5 < base[:, j].min() and base[:, j].max() < Y[:, j].max() + 0.5
        assert np.corrcoef(base[:, j], Y[:, j])[0, 1] > 0.9


def test_pickle_keeps_the_baseline(data):
    X, y = data
    est = _est().fit(X, y)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


@pytest.mark.parametrize("Est", [DLRMRegressor, DLRMClassifier])
def test_validation_pass_trains_the_held_out_rows_once(data, Est):
    """The held-out rows take one pass after early stopping: the validation curve,
    n_iter_ and the stopping are those without the pass; the model is not."""
    X, y = data
    target = y if Est is DLRMRegressor else y > np.median(y)
    kw = dict(early_stopping=True, max_iter=4)
    with_pass = _est(Est, **kw).fit(X, target)
    without = _est(Est, **kw, validation_pass=False).fit(X, target)
    assert with_pass.validation_loss_curve_ == without.validation_loss_curve_
    assert with_pass.n_iter_ == without.n_iter_
    out = with_pass.predict(X) if Est is DLRMRegressor else with_pass.predict_proba(X)
    ref = without.predict(X) if Est is DLRMRegressor else without.predict_proba(X)
    assert np.abs(out - ref).max() > 1e-4
    # without early stopping there are no held-out rows: the parameter changes nothing
    a = _est(Est, early_stopping=False).fit(X, target)
    b = _est(Est, early_stopping=False, validation_pass=False).fit(X, target)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_weights_of_both_signs_give_a_finite_baseline():
    """A bag's weights may be negative (sparse values): the step's denominator uses
    their absolute values, so that it cannot vanish (ids weighted +1 beside -2 in 25
    rows would cancel a signed count of rows plus the shrinkage of 25)."""
    rng = np.random.default_rng(2)
    n = 200
    rows = np.repeat(np.arange(n), 2)
    # 25 rows hold id 0 at +1 beside id 1 at -2 (a signed total of -1 a row); the
    # others ids 2 and 3 at +1, and one of ids 2 to 4 at +1
    cols = np.column_stack([np.where(np.arange(n) < 25, 0, 2),
                            np.where(np.arange(n) < 25, 1, rng.integers(3, 5, n))]).ravel()
    vals = np.column_stack([np.ones(n), np.where(np.arange(n) < 25, -2.0, 1.0)]).ravel()
    bags = sp.csr_matrix((vals, (rows, cols)), shape=(n, 5))
    X = sp.hstack([sp.csr_matrix(rng.normal(size=(n, 1))), bags]).tocsr()
    y = rng.normal(size=n) + 5.0
    est = DLRMRegressor(feature_groups=[np.arange(1, 6)], embedding_dim=4, bottom_mlp=(8,),
                        top_mlp=(8,), max_iter=2, n_jobs=1, random_state=0).fit(X, y)
    assert np.isfinite(est.baseline_offsets_).all()
    assert np.abs(est.baseline_offsets_).max() < 5.0
    assert np.isfinite(est.predict(X)).all()


def test_no_shrinkage_leaves_unseen_ids_at_zero(data):
    """With ``baseline_shrinkage=0`` an id no training row looks up has no count: its
    offset stays 0 (not 0 / 0), and rows with it predict finite values."""
    X, y = data
    est = _est(baseline_shrinkage=0.0, table_sizes=[30, 10]).fit(X, y)
    assert np.isfinite(est.baseline_offsets_).all()
    np.testing.assert_array_equal(est.baseline_offsets_[20:30], 0.0)
    X_new = X[:3].copy()
    X_new[:, 1] = 25  # an id of the table that no training row had
    assert np.isfinite(est.predict(X_new)).all()
