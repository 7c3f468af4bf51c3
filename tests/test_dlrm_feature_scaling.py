"""DLRM feature_scaling="auto": dense features are standardised, so that their scale does
not decide whether training works; nothing the user passed is changed."""
import numpy as np
import pytest

from slidelearn import DLRMClassifier, DLRMRegressor


def _problem(seed=0, n=3000, scale=1.0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 40, n)
    z = rng.normal(size=(n, 2))
    y = np.sin(ids) + z[:, 0] - 0.5 * z[:, 1] + 0.1 * rng.normal(size=n)
    X = np.column_stack([ids, scale * z + 5 * scale])
    return X, y


def test_dense_features_are_standardised():
    X, y = _problem(scale=1000.0)
    X_user = X.copy()
    reg = DLRMRegressor(categorical_features=[0], max_iter=8, n_jobs=1,
                        random_state=0).fit(X, y)
    np.testing.assert_array_equal(X, X_user)
    np.testing.assert_allclose(reg.dense_mean_, X[:, 1:].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(reg.dense_scale_, X[:, 1:].std(axis=0), rtol=1e-4)
    # the same model as on the unit-scale data (up to float rounding)
    Xu, _ = _problem(scale=1.0)
    ref = DLRMRegressor(categorical_features=[0], max_iter=8, n_jobs=1,
                        random_state=0).fit(Xu, y)
    np.testing.assert_allclose(reg.predict(X[:200]), ref.predict(Xu[:200]), atol=1e-3)
    assert reg.score(X, y) > 0.8


@pytest.mark.parametrize("scale", [1e3, 1e5])
def test_raw_scale_does_not_break_training(scale):
    X, y = _problem(seed=1, scale=scale)
    auto = DLRMRegressor(categorical_features=[0], max_iter=8, n_jobs=1, random_state=0)
    assert auto.fit(X, y).score(X, y) > 0.8
    raw = DLRMRegressor(categorical_features=[0], max_iter=8, n_jobs=1, random_state=0,
                        feature_scaling=None)
    try:
        raw_score = raw.fit(X, y).score(X, y)
    except FloatingPointError:
        raw_score = -np.inf
    assert raw.dense_mean_ is None
    assert raw_score < 0.8


def test_constant_and_missing_dense_columns():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 5, 500), np.full(500, 7.0), rng.normal(size=500)])
    y = (X[:, 2] > 0).astype(int)
    clf = DLRMClassifier(categorical_features=[0], max_iter=3, n_jobs=1,
                         random_state=0).fit(X, y)
    assert clf.dense_scale_[0] == 1.0  # a constant column is only centred
    assert np.all(np.isfinite(clf.predict_proba(X)))
    ids_only = DLRMClassifier(categorical_features=[0], max_iter=2, n_jobs=1,
                              interaction="cat", random_state=0).fit(X[:, :1], y)
    assert ids_only.dense_mean_ is None


def test_partial_fit_keeps_the_first_statistics():
    X, y = _problem(seed=2, scale=10.0)
    reg = DLRMRegressor(categorical_features=[0], n_jobs=1, random_state=0)
    reg.partial_fit(X[:1000], y[:1000])
    mean, scale = reg.dense_mean_.copy(), reg.dense_scale_.copy()
    reg.partial_fit(X[1000:] * 2, y[1000:])
    np.testing.assert_array_equal(reg.dense_mean_, mean)
    np.testing.assert_array_equal(reg.dense_scale_, scale)
