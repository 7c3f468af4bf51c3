"""scikit-learn compatibility: the common estimator checks, pipelines and grid search."""
import os

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from slidelearn import SlideClassifier


# Small and fast parameters for the tiny data sets of the common checks (few labels:
# the active set covers every label and training is an exact softmax); and the defaults,
# as a new user runs them (every core: several threads on a few labels).
@parametrize_with_checks(
    [SlideClassifier(hidden_layer_sizes=(32,), learning_rate=1e-2, learning_rate_decay=1.0, max_iter=20,
                     n_tables=4, n_jobs=1, random_state=0),
     SlideClassifier(n_jobs=2)],
)
def test_sklearn_common_checks(estimator, check):
    check(estimator)


def test_predict_returns_the_format_of_the_fitted_y():
    # As OneVsRestClassifier: a dense indicator in, a dense array of its dtype out; a
    # sparse indicator in, a sparse CSR indicator out (the form for many labels).
    rng = np.random.RandomState(0)
    X = rng.rand(40, 5)
    Y = (rng.rand(40, 4) < 0.4).astype(np.int32)
    Y[Y.sum(axis=1) == 0, 0] = 1
    params = dict(hidden_layer_sizes=(16,), max_iter=3, random_state=0, n_jobs=1)
    dense = SlideClassifier(**params).fit(X, Y)
    pred = dense.predict(X)
    assert isinstance(pred, np.ndarray) and pred.shape == Y.shape and pred.dtype == Y.dtype
    assert not dense.sparse_output_
    sparse = SlideClassifier(**params).fit(X, sp.csr_matrix(Y))
    spred = sparse.predict(X)
    assert sp.issparse(spred) and spred.shape == Y.shape and sparse.sparse_output_
    np.testing.assert_array_equal(spred.toarray(), pred)
    boolean = SlideClassifier(**params).fit(X, Y.astype(bool)).predict(X)
    assert boolean.dtype == np.int64
    np.testing.assert_array_equal(boolean, pred)


def test_multilabel_representation_invariance():
    # What check_classifiers_multilabel_representation_invariance verifies, for a sparse
    # predict: y as an array, a list of lists or a list of arrays gives the same model.
    rng = np.random.RandomState(1)
    X = rng.rand(60, 6)
    Y = (rng.rand(60, 5) < 0.4).astype(int)
    Y[Y.sum(axis=1) == 0, 1] = 1
    params = dict(hidden_layer_sizes=(16,), max_iter=3, random_state=0, n_jobs=1)
    preds, probas = [], []
    for y in (Y, Y.tolist(), list(Y), sp.csr_matrix(Y)):
        clf = SlideClassifier(**params).fit(X, y)
        preds.append(clf.predict(X))
        probas.append(clf.predict_proba(X))
    assert sp.issparse(preds[3])
    for p, q in zip(preds[1:], probas[1:]):
        p = p.toarray() if sp.issparse(p) else p
        np.testing.assert_array_equal(p, preds[0])
        np.testing.assert_array_equal(q, probas[0])


# --------------------------------------------------------------------------- composition
_TOPICS = {
    "sports": "team match goal player score league coach season win stadium ball referee",
    "cooking": "recipe oven flour sugar butter bake dish sauce kitchen spice pan taste",
    "space": "planet orbit rocket star galaxy telescope astronaut moon launch comet nasa",
}
_FILLER = "the a of and to in with on for very quite some".split()


def _corpus(n_per_topic, seed):
    rng = np.random.RandomState(seed)
    docs, labels = [], []
    for topic, words in _TOPICS.items():
        words = words.split()
        for _ in range(n_per_topic):
            doc = rng.choice(words, 6).tolist() + rng.choice(_FILLER, 6).tolist()
            rng.shuffle(doc)
            docs.append(" ".join(doc))
            labels.append(topic)
    return docs, np.array(labels)


def test_pipeline_with_tfidf():
    docs, labels = _corpus(40, 0)
    test_docs, test_labels = _corpus(10, 1)
    pipe = Pipeline([
        ("tfidf", TfidfVectorizer()),
        ("clf", SlideClassifier(hidden_layer_sizes=(32,), learning_rate=1e-2, max_iter=15,
                                random_state=0, n_jobs=1)),
    ])
    pipe.fit(docs, labels)
    pred = pipe.predict(test_docs)
    assert pred.shape == (30,)
    assert np.mean(pred == test_labels) > 0.9
    assert pipe.score(test_docs, test_labels) == pytest.approx(np.mean(pred == test_labels))
    # Pipeline only forwards the standard methods: predict_topk goes through the steps.
    labels_top, scores = pipe[-1].predict_topk(pipe[:-1].transform(test_docs), k=2)
    assert labels_top.shape == (30, 2)
    np.testing.assert_array_equal(labels_top[:, 0], pred)
    assert pipe.predict_proba(test_docs).shape == (30, 3)
    assert pipe.named_steps["clf"].n_features_in_ == len(pipe.named_steps["tfidf"].vocabulary_)


def test_grid_search_parallel_without_oversubscription():
    docs, labels = _corpus(30, 2)
    X = TfidfVectorizer().fit_transform(docs)
    est = SlideClassifier(hidden_layer_sizes=(16,), learning_rate=1e-2, max_iter=5,
                          random_state=0)  # n_jobs=None: as many threads as allowed
    scoring = {
        "accuracy": "accuracy",
        "threads": lambda est, X, y: est.n_threads_,
    }
    search = GridSearchCV(est, {"hidden_layer_sizes": [(16,), (24,)],
                                "learning_rate": [1e-2, 3e-2]},
                          cv=2, n_jobs=2, scoring=scoring, refit="accuracy")
    search.fit(X, labels)
    res = search.cv_results_
    assert len(res["params"]) == 4
    assert np.all(res["mean_test_accuracy"] > 0.5)
    # joblib's loky workers set OMP_NUM_THREADS = cpus // n_jobs, which the estimator
    # honours (n_jobs=None): no oversubscription, one thread per worker on 2 cpus.
    n_cpus = len(os.sched_getaffinity(0))
    threads = np.concatenate([res["split0_test_threads"], res["split1_test_threads"]])
    assert np.all(threads >= 1)
    assert np.all(threads <= max(1, n_cpus // 2)), threads
    if n_cpus <= 3:
        np.testing.assert_array_equal(threads, 1)
    assert search.best_estimator_.predict(X).shape == (X.shape[0],)


def test_clone_and_params():
    est = SlideClassifier(hidden_layer_sizes=(8, 4), bin_size=4, n_tables=3)
    c = clone(est)
    assert c.get_params() == est.get_params()
    assert not hasattr(c, "classes_")
    c.set_params(max_iter=2, random_state=3)
    assert c.max_iter == 2 and est.max_iter == 12
