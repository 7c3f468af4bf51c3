"""inference="norm": the output neurons of highest score bound at a typical query,
scored exactly (_norm.NormIndex)."""
import pickle

import numpy as np
import pytest

from slidelearn import SlideClassifier
from slidelearn._slide import _network, _norm, _testing


def _layer(rng, n=500, H=12):
    W = rng.normal(size=(n, H)).astype(np.float32) * rng.uniform(0.05, 2.0, (n, 1))
    b = rng.normal(size=n).astype(np.float32)
    return W.astype(np.float32), b


def test_index_keeps_the_rows_of_highest_bound_at_half_the_deviation():
    rng = np.random.default_rng(0)
    W, b = _layer(rng)
    m = rng.uniform(0, 1, 12).astype(np.float32)
    index = _norm.NormIndex(W, b, n_rows=40, hidden_mean=m, deviation=2.0)
    static = W.astype(np.float64) @ m + b
    c = W.astype(np.float64).mean(0)
    norms = np.sqrt(((W - c) ** 2).sum(1))
    expected = np.sort(np.argsort(-(static + 1.0 * norms), kind="stable")[:40])
    np.testing.assert_array_equal(index.ids, expected)
    np.testing.assert_array_equal(index.W_out, W[expected])
    np.testing.assert_array_equal(index.b_out, b[expected])
    assert index.n_rows == 40 and index.W_out.flags.c_contiguous
    # the tabulated bound of the left-out rows
    left = np.setdiff1d(np.arange(500), expected)
    t = index.bound_t[5]
    assert np.isclose(index.bound[5], np.max(static[left] + t * norms[left]))
    # no mean query (an old model): the longest centred rows
    old = _norm.NormIndex(W, b, n_rows=40)
    np.testing.assert_array_equal(old.ids, np.sort(np.argsort(-norms, kind="stable")[:40]))
    # more rows than the layer has: every row, and every answer certified
    whole = _norm.NormIndex(W, b, n_rows=10**6)
    assert whole.n_rows == 500
    H = rng.normal(size=(8, 12)).astype(np.float32)
    assert whole.certified(H, whole.topk(H, 3, 1)[1]).all()


def test_top_n_breaks_ties_by_the_lower_index():
    from slidelearn.utils._select import top_n
    values = np.array([1.0, 3.0, 2.0, 3.0, 2.0, 2.0])
    assert sorted(top_n(values, 3).tolist()) == [1, 2, 3]
    assert sorted(top_n(values, 4).tolist()) == [1, 2, 3, 4]
    assert top_n(values, 0).size == 0 and top_n(values, 9).size == 6


@pytest.mark.parametrize("n_threads", [1, 2])
def test_answers_are_exact_over_the_kept_rows_and_certified_when_the_bound_says(n_threads):
    rng = np.random.default_rng(1)
    W, b = _layer(rng)
    short = rng.permutation(500)[:420]  # most rows short: the long ones decide
    W[short] *= 0.02
    b[short] *= 0.02
    H = rng.normal(size=(64, 12)).astype(np.float32)
    m = np.abs(H).mean(0)
    index = _norm.NormIndex(W, b, n_rows=100, hidden_mean=m,
                            deviation=float(np.linalg.norm(H - m, axis=1).mean()))
    labels, scores = index.topk(H, 5, n_threads)
    kept = H @ index.W_out.T + index.b_out
    order = np.argsort(-kept, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(labels, index.ids[order])
    np.testing.assert_allclose(scores, np.take_along_axis(kept, order, 1), rtol=1e-5,
                               atol=1e-5)
    # a certified row's answer is the exact top-5 over the whole layer
    full = H @ W.T + b
    exact = np.argsort(-full, axis=1, kind="stable")[:, :5]
    ok = index.certified(H, scores)
    assert ok.any()
    np.testing.assert_array_equal(labels[ok], exact[ok])
    # and the bound holds: every row whose k-th score beats the best left-out neuron
    # by more than rounding is certified (the bound is never below the truth)
    left = np.setdiff1d(np.arange(500), index.ids)
    clear = scores[:, -1] > full[:, left].max(1) + 1e-4
    wrong = ok & (scores[:, -1] < full[:, left].max(1) - 1e-4)
    assert not wrong.any() and clear.sum() >= ok.sum()


def test_trained_layer_finds_the_exact_answers(small_xc_model):
    clf, Xte, _ = small_xc_model
    H, state = _testing.hidden(clf, Xte), _testing.state(clf)
    ex_idx, _ = _network.topk_exact(H, state, 5, 2)
    index = _norm.NormIndex(state.W_out, state.b_out, n_rows=600)
    idx, _ = index.topk(H, 5, 2)
    np.testing.assert_array_equal(idx, ex_idx)  # every row kept: exact inference
    assert _norm.auto_budget(600) == 600 and _norm.auto_budget(10**6) == 50000


def test_estimator_norm_inference(small_xc_model):
    clf, Xte, Yte = small_xc_model
    exact, _ = clf.predict_topk(Xte, k=5)
    model = pickle.loads(pickle.dumps(clf))
    # "auto" keeps 1,000 neurons or more: every one of these 600, exact inference
    np.testing.assert_array_equal(model.predict_topk(Xte, k=5, inference="norm")[0], exact)
    model.set_params(inference_budget=0.1)
    top, scores = model.predict_topk(Xte, k=5, inference="norm")
    assert model._norm_index.n_rows == 60
    assert top.shape == (Xte.shape[0], 5) and np.all(np.diff(scores, axis=1) <= 0)
    assert set(np.unique(top)) <= set(model._norm_index.ids.tolist())
    # the mean query comes from the training rows' hidden activations
    mean, deviation = model._hidden_stats
    assert mean.shape == (32,) and (mean >= 0).all() and deviation > 0
    np.testing.assert_array_equal(model._norm_index.hidden_mean, mean)
    # k beyond the kept rows: every neuron is ranked
    model.set_params(inference_budget=0.005)
    np.testing.assert_array_equal(model.predict_topk(Xte, k=5, inference="norm")[0], exact)
    # training drops the index; inference="norm" as the parameter builds it in fit
    model.set_params(inference="norm", inference_budget=0.5, warm_start=True, max_iter=1)
    model.fit(Xte, Yte)
    assert model._norm_index is not None and model._norm_index.n_rows == 300
    assert model.predict(Xte).shape == Yte.shape
    assert 0.0 <= model.score(Xte, Yte) <= 1.0
    model.partial_fit(Xte, Yte)
    assert model._norm_index is not None  # rebuilt at the end of the call
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_topk(Xte, 3)[0], model.predict_topk(Xte, 3)[0])


def test_norm_parameters_are_validated(small_xc_model):
    clf, Xte, Yte = small_xc_model
    for bad in (dict(inference_budget=0), dict(inference_budget=1.5),
                dict(inference_budget="half")):
        with pytest.raises(ValueError):
            SlideClassifier(**bad).fit(Xte, Yte)


@pytest.mark.parametrize("n", [0, 1, 5, 17, 40, 41])
def test_top_n_is_the_head_of_a_stable_argsort(n):
    # many ties, so that the boundary of the n largest falls inside a run of equals
    from slidelearn.utils._select import top_n
    values = np.random.default_rng(n).integers(0, 6, size=40)
    head = np.argsort(-values, kind="stable")[:n]
    np.testing.assert_array_equal(top_n(values, n, ordered=True), head)
    np.testing.assert_array_equal(np.sort(top_n(values, n)), np.sort(head))
