"""scikit-learn compatibility of the DLRM estimators: the common checks, a Pipeline
with a ColumnTransformer, GridSearchCV, and persistence."""
import pickle

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from slidelearn import DLRMClassifier, DLRMRegressor, feature_groups_from_encoder


@parametrize_with_checks([
    # every epoch on the checks' small data sets (early stopping would hold out rows)
    DLRMRegressor(max_iter=30, learning_rate_init=0.02, early_stopping=False, n_jobs=1,
                  random_state=0),
    DLRMClassifier(max_iter=30, learning_rate_init=0.02, early_stopping=False, n_jobs=1,
                   random_state=0),
    DLRMRegressor(),
    DLRMClassifier(),
])
def test_sklearn_common_checks(estimator, check):
    check(estimator)


def _ratings(n=3000, seed=0):
    """A small recommender problem: user, item (ids), a city (string), an age."""
    rng = np.random.default_rng(seed)
    user, item = rng.integers(0, 60, n), rng.integers(0, 40, n)
    city = rng.choice(["paris", "oslo", "lima"], n)
    age = rng.uniform(18, 70, n)
    u, v = rng.normal(size=(60, 3)), rng.normal(size=(40, 3))
    y = (u[user] * v[item]).sum(1) + (city == "oslo") + 0.02 * age
    X = np.empty((n, 4), dtype=object)
    X[:, 0], X[:, 1], X[:, 2], X[:, 3] = user, item, city, age
    return X, y


def _column_transformer():
    return ColumnTransformer([("num", StandardScaler(), [3]),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), [0, 1, 2])])


def test_pipeline_with_column_transformer_finds_onehot_fields():
    X, y = _ratings()
    pipe = Pipeline([("prep", _column_transformer()),
                     ("dlrm", DLRMRegressor(max_iter=20, learning_rate_init=0.03,
                                            random_state=0))])
    pipe.fit(X[:2500], y[:2500])
    model = pipe[-1]
    # 'auto' found exactly the encoder's fields: one table per categorical column
    expected = feature_groups_from_encoder(pipe[0])
    assert [g.tolist() for g in model.feature_groups_] == [g.tolist() for g in expected]
    assert model.table_sizes_.tolist() == [60, 40, 3]
    assert pipe.score(X[2500:], y[2500:]) > 0.6


def test_explicit_feature_groups_match_auto():
    X, y = _ratings(800)
    ct = _column_transformer().fit(X)
    Xt = ct.transform(X)
    kw = dict(max_iter=3, random_state=0, n_jobs=1)
    a = DLRMRegressor(**kw).fit(Xt, y)
    b = DLRMRegressor(feature_groups=feature_groups_from_encoder(ct), **kw).fit(Xt, y)
    np.testing.assert_array_equal(a.predict(Xt), b.predict(Xt))


def test_grid_search_over_pipeline():
    X, y = _ratings(1500)
    pipe = Pipeline([("prep", _column_transformer()),
                     ("dlrm", DLRMRegressor(max_iter=5, n_jobs=1, random_state=0))])
    grid = GridSearchCV(pipe, {"dlrm__embedding_dim": [4, 8],
                               "dlrm__interaction": ["dot", "cat"]}, cv=2, n_jobs=2)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"dlrm__embedding_dim", "dlrm__interaction"}
    assert np.isfinite(grid.best_score_)


@pytest.mark.parametrize("Est", [DLRMRegressor, DLRMClassifier])
def test_pickle_and_joblib_roundtrip(Est, tmp_path):
    X, y = _ratings(600)
    X = np.column_stack([X[:, 3].astype(float), X[:, 0], X[:, 1]]).astype(float)
    if Est is DLRMClassifier:
        y = (y > np.median(y)).astype(int)
    est = Est(categorical_features=[1, 2], max_iter=2, random_state=0, n_jobs=1).fit(X, y)
    out = est.predict(X)
    clone = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(clone.predict(X), out)
    joblib.dump(est, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib", mmap_mode="r")
    np.testing.assert_array_equal(loaded.predict(X), out)
    # training continues after loading, also from a read-only memory map
    kwargs = {"classes": [0, 1]} if Est is DLRMClassifier else {}
    loaded.partial_fit(X, y, **kwargs)
    est.partial_fit(X, y, **kwargs)
    np.testing.assert_allclose(loaded.predict_proba(X) if Est is DLRMClassifier
                               else loaded.predict(X),
                               est.predict_proba(X) if Est is DLRMClassifier
                               else est.predict(X), rtol=1e-5, atol=1e-6)


def test_reproducible_with_one_thread():
    X, y = _ratings(1000)
    X = np.column_stack([X[:, 3].astype(float), X[:, 0], X[:, 1]]).astype(float)
    kw = dict(categorical_features=[1, 2], max_iter=3, n_jobs=1, random_state=7)
    a = DLRMRegressor(**kw).fit(X, y).predict(X)
    b = DLRMRegressor(**kw).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)


def test_dataframe_categories_and_names():
    pd = pytest.importorskip("pandas")
    X, y = _ratings(1200)
    df = pd.DataFrame({"user": X[:, 0].astype(int), "item": X[:, 1].astype(int),
                       "city": pd.Categorical(X[:, 2]), "age": X[:, 3].astype(float)})
    reg = DLRMRegressor(categorical_features=["user", "item", "city"], max_iter=3,
                        random_state=0).fit(df, y)
    assert reg.is_categorical_.tolist() == [True, True, True, False]
    assert reg.table_sizes_.tolist() == [60, 40, 3]
    # 'from_dtype' takes only the category column
    reg2 = DLRMRegressor(max_iter=1, random_state=0).fit(df, y)
    assert reg2.is_categorical_.tolist() == [False, False, True, False]
    assert list(reg.feature_names_in_) == ["user", "item", "city", "age"]
    assert reg.predict(df).shape == (1200,)


def test_multiclass_and_multioutput():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 9, 2000)
    X = np.column_stack([rng.normal(size=2000), ids]).astype(float)
    y = ids % 3
    clf = DLRMClassifier(categorical_features=[1], max_iter=20, learning_rate_init=0.05,
                         random_state=0).fit(X, y)
    assert clf.predict_proba(X).shape == (2000, 3)
    assert clf.score(X, y) > 0.95
    Y = np.column_stack([ids % 2, X[:, 0]])
    reg = DLRMRegressor(categorical_features=[1], max_iter=20, learning_rate_init=0.05,
                        random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (2000, 2)
    assert reg.score(X, Y) > 0.8


def test_ids_beyond_table_size_are_hashed():
    X = np.array([[0.0, 1], [1.0, 12], [2.0, 5]] * 10)
    reg = DLRMRegressor(categorical_features=[1], table_sizes=4, max_iter=2,
                        random_state=0).fit(X, X[:, 0])
    # id 12 shares row 12 % 4 = 0 with id 0 (and 5 shares row 1 with id 1)
    a = reg.predict(np.array([[0.5, 12], [0.5, 5]]))
    b = reg.predict(np.array([[0.5, 0], [0.5, 1]]))
    np.testing.assert_array_equal(a, b)


def test_early_stopping_keeps_best_model():
    X, y = _ratings(2000)
    X = np.column_stack([X[:, 3].astype(float), X[:, 0], X[:, 1]]).astype(float)
    reg = DLRMRegressor(categorical_features=[1, 2], max_iter=30, early_stopping=True,
                        n_iter_no_change=2, random_state=0).fit(X, y)
    assert len(reg.validation_loss_curve_) == reg.n_iter_
    assert reg.best_validation_loss_ == min(reg.validation_loss_curve_)


# ---------------------------------------------------------------------------
# Bad inputs: clear exceptions
# ---------------------------------------------------------------------------

_XOK = np.array([[0.5, 1, 2], [1.5, 0, 1], [2.5, 1, 0]] * 5)


@pytest.mark.parametrize("X,match", [
    (np.where(np.arange(45).reshape(15, 3) == 4, -1.0, _XOK), "negative id"),
    (np.where(np.arange(45).reshape(15, 3) == 0, np.nan, _XOK), "NaN"),
    (np.where(np.arange(45).reshape(15, 3) == 4, 1.5, _XOK), "non-integer"),
    (np.where(np.arange(45).reshape(15, 3) == 3, np.inf, _XOK), "infinity"),
    (_XOK[:0], "0 sample"),
])
def test_bad_fit_inputs(X, match):
    with pytest.raises(ValueError, match=match):
        DLRMRegressor(categorical_features=[1, 2], max_iter=1).fit(X, np.ones(len(X)))


def test_bad_predict_inputs_and_params():
    reg = DLRMRegressor(categorical_features=[1, 2], max_iter=1).fit(_XOK, _XOK[:, 0])
    with pytest.raises(ValueError, match="3 features"):
        reg.predict(_XOK[:, :2])
    with pytest.raises(ValueError, match="negative id"):
        reg.predict(np.array([[0.5, -3, 0]]))
    with pytest.raises(ValueError, match="samples"):
        DLRMRegressor(categorical_features=[1, 2]).fit(_XOK, np.ones(3))
    with pytest.raises(ValueError, match="index out of range"):
        DLRMRegressor(categorical_features=[5]).fit(_XOK, _XOK[:, 0])
    with pytest.raises(ValueError, match="no feature names"):
        DLRMRegressor(categorical_features=["nope"]).fit(_XOK, _XOK[:, 0])
    with pytest.raises(ValueError, match="nothing to interact"):
        DLRMRegressor(categorical_features=[0], interaction="dot").fit(_XOK[:, 1:2], _XOK[:, 0])
    with pytest.raises(ValueError, match="table_sizes"):
        DLRMRegressor(categorical_features=[1, 2], table_sizes=[3]).fit(_XOK, _XOK[:, 0])
    with pytest.raises(ValueError, match="would not fit in memory"):
        DLRMRegressor(categorical_features=[1]).fit(np.array([[0.0, 2.0**40]] * 3), np.ones(3))
    with pytest.raises(ValueError, match="not in classes_"):
        clf = DLRMClassifier(categorical_features=[1]).partial_fit(
            _XOK[:, :2], np.arange(15) % 2, classes=[0, 1])
        clf.partial_fit(_XOK[:, :2], np.full(15, 7))
    with pytest.raises(ValueError, match="classes must be passed"):
        DLRMClassifier().partial_fit(_XOK, np.arange(15) % 2)


def test_bad_sparse_groups():
    X = sp.random(20, 6, density=0.5, format="csr", random_state=0)
    with pytest.raises(ValueError, match="share columns"):
        DLRMRegressor(feature_groups=[[0, 1], [1, 2]]).fit(X, np.ones(20))
    with pytest.raises(ValueError, match="out of range"):
        DLRMRegressor(feature_groups=[[0, 9]]).fit(X, np.ones(20))
    with pytest.raises(ValueError, match="sparse"):
        DLRMRegressor(categorical_features=[0]).fit(X, np.ones(20))


def test_user_data_not_modified():
    X = _XOK.copy()
    y = X[:, 0].copy()
    DLRMRegressor(categorical_features=[1, 2], max_iter=2).fit(X, y)
    np.testing.assert_array_equal(X, _XOK)
    np.testing.assert_array_equal(y, _XOK[:, 0])


def test_criteo_stream_with_partial_fit(shared_data):
    from slidelearn.datasets import CRITEO_CATEGORICAL_FEATURES, iter_criteo
    from sklearn.metrics import log_loss

    path = shared_data / "criteo-sample" / "train.txt"
    clf = DLRMClassifier(categorical_features=CRITEO_CATEGORICAL_FEATURES, table_sizes=1000,
                         embedding_dim=8, bottom_mlp=(16,), top_mlp=(16,), n_jobs=1,
                         random_state=0)
    chunks = list(iter_criteo(path, chunksize=200, n_hash_bins=1000))
    assert sum(len(y) for _, y in chunks) == 1000
    for X, y in chunks[:4]:
        clf.partial_fit(X, y, classes=[0, 1])
    X_test, y_test = chunks[4]
    proba = clf.predict_proba(X_test)
    assert clf.n_iter_ == 4 and clf.table_sizes_.tolist() == [1000] * 26
    assert np.all((proba >= 0) & (proba <= 1))
    # after 800 rows the model already ranks clicks and beats the base rate
    from sklearn.metrics import roc_auc_score
    base = np.concatenate([y for _, y in chunks[:4]]).mean()
    assert log_loss(y_test, proba[:, 1]) < log_loss(y_test, np.full(len(y_test), base))
    assert roc_auc_score(y_test, proba[:, 1]) > 0.6
