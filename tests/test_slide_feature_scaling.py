"""SlideClassifier(feature_scaling="auto"): raw, badly scaled features train as well as
scaled ones, and nothing the user passed is changed."""
import numpy as np
import pytest
import scipy.sparse as sp

from slidelearn import SlideClassifier
from slidelearn.metrics import precision_at_k
from slidelearn.utils.validation import feature_scale, scale_features


def _raw_problem(seed=0, n=1500, big=1e4):
    """Three classes told apart by a few informative columns, plus raw measurement
    columns in the thousands that carry little signal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    informative = np.eye(3)[y] + 0.3 * rng.normal(size=(n, 3))
    raw = big * (1.0 + 0.1 * rng.normal(size=(n, 4))) + 0.01 * big * y[:, None]
    return np.hstack([informative, raw]).astype(np.float32), y


def test_feature_scale_leaves_unit_features_alone():
    X = sp.random(200, 30, density=0.2, format="csr", random_state=0, dtype=np.float32)
    X.data[:] = 1.0
    assert feature_scale(X) is None
    X2 = X.copy()
    X2[:, 3] = X2[:, 3] * 500
    scale = feature_scale(sp.csr_matrix(X2))
    assert scale is not None and scale.dtype == np.float32
    assert np.all(scale[np.arange(30) != 3] == 1.0)
    rms = np.sqrt(np.mean(X2[:, 3].toarray() ** 2))
    np.testing.assert_allclose(scale[3], 1.0 / rms, rtol=1e-3)


def test_scale_features_returns_a_new_matrix():
    X = sp.csr_matrix(np.array([[1.0, 200.0], [0.0, 400.0]], dtype=np.float32))
    before = X.data.copy()
    out = scale_features(X, np.array([1.0, 0.01], dtype=np.float32))
    np.testing.assert_array_equal(X.data, before)
    np.testing.assert_allclose(out.toarray(), [[1.0, 2.0], [0.0, 4.0]])
    assert scale_features(X, None) is X


def test_auto_scaling_trains_on_raw_measurements():
    X, y = _raw_problem()
    X_user = X.copy()
    clf = SlideClassifier(random_state=0, n_jobs=1, max_iter=10).fit(X[:1000], y[:1000])
    np.testing.assert_array_equal(X, X_user)  # the user's array is untouched
    assert clf.feature_scale_ is not None
    assert np.all(clf.feature_scale_[:3] == 1.0) and np.all(clf.feature_scale_[3:] < 1e-3)
    acc = clf.score(X[1000:], y[1000:])
    prior = np.bincount(y[1000:]).max() / 500
    assert acc > prior + 0.3
    # the same data scaled by hand, without auto scaling: the same kind of model
    ref = SlideClassifier(random_state=0, n_jobs=1, max_iter=10, feature_scaling=None)
    ref.fit(X[:1000] * np.r_[np.ones(3), clf.feature_scale_[3:]].astype(np.float32), y[:1000])
    assert ref.feature_scale_ is None
    assert abs(ref.score(X[1000:] * np.r_[np.ones(3), clf.feature_scale_[3:]], y[1000:])
               - acc) < 0.05


def test_scaling_is_kept_for_prediction_and_partial_fit():
    X, y = _raw_problem(seed=1, n=600)
    clf = SlideClassifier(random_state=0, n_jobs=1, max_iter=3).fit(X, y)
    scale = clf.feature_scale_.copy()
    top_a, _ = clf.predict_topk(X[:50], k=2)
    clf.partial_fit(X[:100] * 3, y[:100])  # new data does not reset the factors
    np.testing.assert_array_equal(clf.feature_scale_, scale)
    clf2 = SlideClassifier(random_state=0, n_jobs=1, max_iter=3).fit(sp.csr_matrix(X), y)
    top_b, _ = clf2.predict_topk(sp.csr_matrix(X[:50]), k=2)
    np.testing.assert_array_equal(top_a, top_b)


@pytest.mark.parametrize("big", [1e3, 1e4, 1e6])
def test_feature_scaling_none_uses_x_as_given(big):
    """Without scaling, raw columns of this size wreck training (a model at chance
    level, or a diverging loss); with it, the scale of the raw columns does not matter."""
    X, y = _raw_problem(seed=2, n=300, big=big)
    try:
        raw = SlideClassifier(random_state=0, n_jobs=1, max_iter=3,
                              feature_scaling=None).fit(X, y).score(X, y)
    except FloatingPointError as exc:
        assert "diverged" in str(exc)
        raw = 0.0
    clf = SlideClassifier(random_state=0, n_jobs=1, max_iter=3).fit(X, y)
    assert clf.score(X, y) > 0.85 > raw + 0.3


def test_raw_go_yeast_trains_to_the_label_prior():
    """The GO yeast 'derisi' set has raw microarray features (rms in the thousands):
    the defaults must train without diverging and rank at least as well as the
    label prior at P@3 and P@5."""
    import os
    from slidelearn.datasets import load_xc_repository
    folder = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                          "go-yeast", "derisi")
    if not os.path.isdir(folder):
        pytest.skip(f"no GO yeast data at {folder}")
    X, Y = load_xc_repository(os.path.join(folder, "train.txt"))
    Xt, Yt = load_xc_repository(os.path.join(folder, "test.txt"))
    n = max(Y.shape[1], Yt.shape[1])
    Y.resize((Y.shape[0], n))
    Yt.resize((Yt.shape[0], n))
    clf = SlideClassifier(random_state=0, n_jobs=2).fit(X, Y)
    top, _ = clf.predict_topk(Xt, k=5)
    prior = np.argsort(-np.asarray(Y.sum(axis=0)).ravel(), kind="stable")[:5]
    prior_top = np.tile(prior, (Xt.shape[0], 1))
    for k in (3, 5):
        assert (precision_at_k(Yt, top[:, :k], k=k)
                >= precision_at_k(Yt, prior_top[:, :k], k=k) - 0.01)
