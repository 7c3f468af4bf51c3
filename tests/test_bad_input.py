"""Bad input to the estimators (issue 21): a clear exception naming the problem,
never a crash or a silently wrong model, and the user's arrays left as they were."""
import copy

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from slidelearn import DLRMClassifier, DLRMRegressor, SlideClassifier
from slidelearn._dlrm import _testing as _dlrm_testing

RNG = np.random.default_rng(0)
N = 40
# a dense feature, then the id column "user"
X_OK = np.column_stack([RNG.normal(size=N), RNG.integers(0, 5, N)])
Y_BIN = np.arange(N) % 2


def _same(a, b):
    """Equal contents and dtype (NaN equal to NaN), for arrays and frames."""
    if isinstance(a, pd.DataFrame):
        return a.equals(b) and list(a.dtypes) == list(b.dtypes)
    if sp.issparse(a):
        return (a.format == b.format and a.dtype == b.dtype and a.shape == b.shape
                and all(np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True)
                        for k in ("data", "indices", "indptr")))
    if a.dtype == object:
        return a.dtype == b.dtype and a.shape == b.shape and all(
            x is y or x == y or (x != x and y != y) for x, y in zip(a.ravel(), b.ravel()))
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def _is_data(a):
    return isinstance(a, (np.ndarray, pd.DataFrame)) or sp.issparse(a)


def _raises_unchanged(exc, match, call, *args):
    """``call(*args)`` raises ``exc`` matching ``match`` and leaves every array,
    frame and sparse matrix among ``args`` as it was."""
    before = [copy.deepcopy(a) for a in args]
    with pytest.raises(exc, match=match):
        call(*args)
    for a, b in zip(args, before):
        if _is_data(a):
            assert _same(b, a), "the input was modified"


def _with_user(value, kind):
    """X_OK with ``value`` in row 3 of the id column, as a float array, an object
    array, or a DataFrame with columns 'x' and 'user'."""
    if kind == "float":
        X = X_OK.copy()
    else:
        X = X_OK.astype(object)
        X[:, 1] = [int(v) for v in X_OK[:, 1]]
    X[3, 1] = value
    if kind == "frame":
        return pd.DataFrame({"x": X_OK[:, 0], "user": X[:, 1]})
    return X


# ----------------------------------------------------------- DLRM categorical ids
BAD_IDS = [
    (1.5, r"non-integer value 1\.5"),
    (np.nan, r"NaN \(a missing id\)"),
    (np.inf, r"contains infinity"),
    (-np.inf, r"contains -infinity"),
    (-1, r"negative id -1"),
    (1e30, r"id 1e\+30 beyond the int64 range"),
    (2.0**63, r"beyond the int64 range"),
]


@pytest.mark.parametrize("kind", ["float", "object", "frame"])
@pytest.mark.parametrize("value,match", BAD_IDS)
@pytest.mark.parametrize("Est", [DLRMRegressor, DLRMClassifier])
def test_dlrm_bad_categorical_value_in_fit(Est, value, match, kind):
    X = _with_user(value, kind)
    name = "'user'" if kind == "frame" else "1"
    cat = ["user"] if kind == "frame" else [1]
    _raises_unchanged(ValueError, rf"categorical feature {name} .*{match}.*\(row 3\)",
                      Est(categorical_features=cat, max_iter=1).fit, X, Y_BIN)


@pytest.mark.parametrize("value,match", BAD_IDS)
@pytest.mark.parametrize("method", ["predict", "partial_fit"])
def test_dlrm_bad_categorical_value_after_fit(value, match, method):
    clf = DLRMClassifier(categorical_features=[1], max_iter=1, n_jobs=1,
                         random_state=0).fit(X_OK, Y_BIN)
    theta = _dlrm_testing.weights(clf)[0]
    args = (Y_BIN,) if method == "partial_fit" else ()
    _raises_unchanged(ValueError, rf"categorical feature 1 .*{match}",
                      getattr(clf, method), _with_user(value, "float"), *args)
    assert np.array_equal(theta, _dlrm_testing.weights(clf)[0])  # nothing trained on it


@pytest.mark.parametrize("value,match", [
    (2**64, r"id 18446744073709551616 beyond the int64 range"),
    (2**63, r"id 9223372036854775808 beyond the int64 range"),
    (-(2**70), r"negative id"),
    ("a", r"the string 'a' \(row 3\).*OrdinalEncoder"),
    ("3", r"the string '3'"),
    (None, r"NaN \(a missing id\)"),
])
def test_dlrm_bad_python_object_ids(value, match):
    _raises_unchanged(ValueError, rf"categorical feature 1 .*{match}",
                      DLRMRegressor(categorical_features=[1], max_iter=1).fit,
                      _with_user(value, "object"), Y_BIN)


def test_dlrm_non_number_object_id_is_a_type_error():
    _raises_unchanged(TypeError, r"categorical feature 1 holds \{'a': 1\} \(row 3\)",
                      DLRMRegressor(categorical_features=[1], max_iter=1).fit,
                      _with_user({"a": 1}, "object"), Y_BIN)


def test_dlrm_unsigned_id_beyond_int64():
    X = pd.DataFrame({"x": X_OK[:, 0], "user": X_OK[:, 1].astype(np.uint64)})
    X.loc[3, "user"] = np.uint64(2**63 + 5)
    _raises_unchanged(ValueError, r"'user' has an id 9223372036854775813 beyond the int64",
                      DLRMRegressor(categorical_features=["user"], table_sizes=10).fit,
                      X, Y_BIN)


@pytest.mark.parametrize("column,match", [
    (pd.array([1, None] * (N // 2), dtype="Int64"), r"NaN \(a missing id\) \(row 1\)"),
    (pd.array(["a", "b"] * (N // 2), dtype="string"), r"the string 'a' \(row 0\)"),
    (pd.Categorical(["a", None] * (N // 2)), r"'user' has missing values"),
])
def test_dlrm_dataframe_id_columns(column, match):
    X = pd.DataFrame({"x": X_OK[:, 0], "user": column})
    cat = "from_dtype" if isinstance(column, pd.Categorical) else ["user"]
    _raises_unchanged(ValueError, rf"categorical feature 'user' .*{match}|{match}",
                      DLRMRegressor(categorical_features=cat, max_iter=1).fit, X, Y_BIN)


def test_dlrm_table_too_large_names_the_column():
    # the third column is the only categorical one: the message names column 2
    X = np.column_stack([X_OK, X_OK[:, 1].astype(np.int64)]).astype(np.int64)
    X[0, 2] = 2**63 - 1  # max id + 1 would wrap around int64
    _raises_unchanged(ValueError, r"categorical feature 2 has ids up to "
                      r"9,223,372,036,854,775,807.*table_sizes",
                      DLRMRegressor(categorical_features=[2]).fit, X, Y_BIN)


def test_dlrm_int64_ids_above_2_53_are_exact():
    # ids of 54+ bits (hashed ids) hashed into 7 rows: each keeps its own residue,
    # as if the user had taken ids % 7 (a float64 detour rounds odd ids to even ones)
    ids = 2**53 + RNG.integers(0, 50, N)
    X_big = np.column_stack([X_OK[:, 0].astype(np.int64), ids])
    X_mod = np.column_stack([X_OK[:, 0].astype(np.int64), ids % 7])
    kw = dict(categorical_features=[1], table_sizes=7, max_iter=2, n_jobs=1, random_state=0)
    big = DLRMRegressor(**kw).fit(X_big, X_OK[:, 0])
    ref = DLRMRegressor(**kw).fit(X_mod, X_OK[:, 0])
    assert np.array_equal(big.predict(X_big), ref.predict(X_mod))


@pytest.mark.parametrize("value,match", [
    (np.nan, r"Input X contains NaN in feature 0 \(row 3\)"),
    (np.inf, r"Input X contains infinity in feature 0"),
    (1e39, r"1e\+39, beyond the float32 range"),
])
def test_dlrm_bad_dense_value_names_the_feature(value, match):
    X = X_OK.copy()
    X[3, 0] = value
    _raises_unchanged(ValueError, match, DLRMRegressor(categorical_features=[1]).fit,
                      X, Y_BIN)


def test_dlrm_text_in_a_dense_column():
    X = pd.DataFrame({"x": ["0.5", "abc"] * (N // 2), "user": X_OK[:, 1].astype(int)})
    _raises_unchanged(ValueError, r"feature 'x' is not numeric.*'abc'",
                      DLRMRegressor(categorical_features=["user"]).fit, X, Y_BIN)


def test_dlrm_valid_ids_of_every_dtype_train_the_same_model():
    """bool, small ints, exact floats, Python ints and -0.0 are valid ids."""
    kw = dict(categorical_features=[1], max_iter=1, n_jobs=1, random_state=0)
    ref = DLRMRegressor(**kw).fit(X_OK, Y_BIN).predict(X_OK)
    for X in (X_OK.astype(object), np.where(X_OK == 0, -0.0, X_OK),
              np.column_stack([X_OK[:, 0], X_OK[:, 1].astype(np.float32)])):
        assert np.array_equal(DLRMRegressor(**kw).fit(X, Y_BIN).predict(X_OK), ref)


# ------------------------------------------------------------- DLRM sparse input
def _onehot():
    return sp.csr_matrix(np.column_stack([X_OK[:, :1], np.eye(5)[X_OK[:, 1].astype(int)]]))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("value,match", [
    (np.nan, r"NaN"), (np.inf, r"infinity"), (1e300, r"too large for dtype\('float32'\)")])
def test_dlrm_sparse_non_finite_weights(value, match):
    X = _onehot()
    X.data[3] = value
    _raises_unchanged(ValueError, match,
                      DLRMRegressor(feature_groups=[np.arange(1, 6)], max_iter=1).fit,
                      X, Y_BIN)


@pytest.mark.parametrize("weight", [-3.0, 0.0, 1e4])
def test_dlrm_sparse_unusual_weights_train_a_finite_model(weight):
    # weighted bags may hold any finite weight: no crash, a finite model
    X = _onehot()
    X.data[X.data == 1] = weight
    reg = DLRMRegressor(feature_groups=[np.arange(1, 6)], max_iter=2, n_jobs=1,
                        learning_rate_init=1e-3, random_state=0)
    before = X.copy()
    pred = reg.fit(X, Y_BIN).predict(X)
    assert np.isfinite(pred).all() and _same(before, X)


def test_dlrm_sparse_malformed_matrix_and_groups():
    X = _onehot()
    bad = sp.csr_matrix((X.data, X.indices.copy(), X.indptr), shape=X.shape)
    bad.indices[0] = 50
    _raises_unchanged(ValueError, r"column index 50 out of range for 6 columns",
                      DLRMRegressor().fit, bad, Y_BIN)
    _raises_unchanged(ValueError, r"feature_groups has a column index out of range",
                      DLRMRegressor(feature_groups=[[0, 99]]).fit, X, Y_BIN)
    _raises_unchanged(ValueError, r"must not share columns",
                      DLRMRegressor(feature_groups=[[1, 2], [2, 3]]).fit, X, Y_BIN)


# -------------------------------------------------------- labels outside classes
@pytest.mark.parametrize("Est", [SlideClassifier, DLRMClassifier])
def test_partial_fit_labels_outside_classes(Est):
    kw = dict(categorical_features=[1]) if Est is DLRMClassifier else {}
    est = Est(**kw, n_jobs=1, random_state=0)
    y = Y_BIN + 5
    _raises_unchanged(ValueError, r"not in classes.*\b5\b", est.partial_fit, X_OK, y,
                      [0, 1])
    assert np.array_equal(y, Y_BIN + 5)
    est.partial_fit(X_OK, Y_BIN, classes=[0, 1])
    _raises_unchanged(ValueError, r"not in classes.*\b3\b", est.partial_fit, X_OK, Y_BIN * 3)
    with pytest.raises(ValueError, match=r"classes"):
        est.partial_fit(X_OK, Y_BIN, classes=[0, 1, 2])
    assert est.n_iter_ == 1  # the refused calls trained nothing


@pytest.mark.parametrize("Est", [SlideClassifier, DLRMClassifier])
def test_partial_fit_first_call_needs_classes(Est):
    with pytest.raises(ValueError, match=r"classes must be passed on the first call"):
        Est().partial_fit(X_OK, Y_BIN)


# ---------------------------------------------------- feature counts that change
ESTIMATORS = {
    "SlideClassifier": lambda: SlideClassifier(n_jobs=1, random_state=0, max_iter=1),
    "DLRMClassifier": lambda: DLRMClassifier(categorical_features=[1], n_jobs=1,
                                             random_state=0, max_iter=1),
    "DLRMRegressor": lambda: DLRMRegressor(categorical_features=[1], n_jobs=1,
                                           random_state=0, max_iter=1),
}


def _partial_fit(est, X, y):
    if isinstance(est, DLRMRegressor):
        return est.partial_fit(X, y)
    return est.partial_fit(X, y, classes=[0, 1])


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("start", ["fit", "partial_fit"])
@pytest.mark.parametrize("name", ESTIMATORS)
def test_feature_count_change(name, start, sparse):
    est = ESTIMATORS[name]()
    X = sp.csr_matrix(X_OK) if sparse else X_OK
    X3 = sp.hstack([X, X[:, :1]]).tocsr() if sparse else np.column_stack([X_OK, X_OK[:, 0]])
    if sparse and isinstance(est, (DLRMClassifier, DLRMRegressor)):
        est.set_params(categorical_features=None)
    est.fit(X, Y_BIN) if start == "fit" else _partial_fit(est, X, Y_BIN)
    match = rf"X has 3 features, but {name} is expecting 2 features"
    _raises_unchanged(ValueError, match, est.predict, X3)
    _raises_unchanged(ValueError, match, _partial_fit, est, X3, Y_BIN)
    _raises_unchanged(ValueError, r"X has 1 features", est.predict, X[:, :1])


@pytest.mark.parametrize("name", ESTIMATORS)
def test_dataframe_columns_change(name):
    est = ESTIMATORS[name]()
    df = pd.DataFrame(X_OK, columns=["x", "user"])
    if not isinstance(est, SlideClassifier):
        est.set_params(categorical_features=["user"])
    _partial_fit(est, df, Y_BIN)
    renamed = pd.DataFrame(X_OK, columns=["x", "item"])
    _raises_unchanged(ValueError, r"(?s)feature names should match.*unseen at fit "
                      r"time:\n- item", _partial_fit, est, renamed, Y_BIN)
    _raises_unchanged(ValueError, r"must be in the same order", est.predict,
                      df[["user", "x"]])
    extra = df.assign(z=1.0)
    _raises_unchanged(ValueError, r"unseen at fit time:\n- z", est.predict, extra)


def test_dlrm_sparse_after_dense_is_refused():
    reg = DLRMRegressor(categorical_features=[1], max_iter=1).fit(X_OK, Y_BIN)
    _raises_unchanged(TypeError, r"Sparse data was passed", reg.predict, sp.csr_matrix(X_OK))
    _raises_unchanged(TypeError, r"Sparse data was passed", reg.partial_fit,
                      sp.csr_matrix(X_OK), Y_BIN)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_no_rows(name):
    est = ESTIMATORS[name]()
    _raises_unchanged(ValueError, r"0 sample\(s\)", est.fit, X_OK[:0], Y_BIN[:0])
    _raises_unchanged(ValueError, r"0 sample\(s\)", _partial_fit, est, X_OK[:0], Y_BIN[:0])


@pytest.mark.parametrize("param", ["min_active", "bucket_size", "active_threshold",
                                   "inference_threshold", "inference_max_candidates",
                                   "inference_bucket_size"])
def test_slide_integer_parameters_beyond_c_int(param):
    # the kernels take them as C ints: refused up front, not an OverflowError in fit
    with pytest.raises(ValueError, match=rf"'{param}' parameter .* range \[\d, 2147483647\]"):
        SlideClassifier(**{param: 2**40}).fit(X_OK, Y_BIN)


def test_slide_training_that_diverges_raises():
    # A loss of inf or NaN means weights of inf or NaN: say so instead of returning them.
    X = np.random.default_rng(0).normal(size=(60, 5)) * 1e6
    y = np.arange(60) % 3
    with pytest.raises(FloatingPointError, match="diverged"):
        SlideClassifier(learning_rate=1e10, max_iter=3, n_jobs=1, random_state=0).fit(X, y)
