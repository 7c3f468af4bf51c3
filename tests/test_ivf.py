"""inference="ivf": the clustering index over the output neurons (_ivf.ClusterIndex) and
its kernel (_network.topk_probed)."""
import pickle

import numpy as np
import pytest

from slidelearn import SlideClassifier
from slidelearn._slide import _ivf, _network, _testing


def _hidden_and_state(clf, X):
    return _testing.hidden(clf, X), _testing.state(clf)


def test_index_partitions_the_labels_and_probes_distinct_clusters():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(700, 12)).astype(np.float32)
    b = rng.normal(size=700).astype(np.float32)
    index = _ivf.ClusterIndex(W, b, 30, rng)
    assert sorted(index.members.tolist()) == list(range(700))
    assert index.starts[0] == 0 and index.starts[-1] == 700
    assert np.all(np.diff(index.starts) >= 0)
    probe, counts = index.probe(W[:50], 7)
    assert probe.shape == (50, 7) and (counts == 7).all()
    assert all(len(set(row)) == 7 for row in probe.tolist())
    # with a budget: the fewest best clusters holding it, best first
    probe, counts = index.probe(W[:50], 30, budget=100)
    sizes = np.diff(index.starts)
    scores = W[:50] @ index.centroid_w.T + index.centroid_b
    for i in range(50):
        chosen = probe[i, :counts[i]]
        assert sizes[chosen].sum() >= 100 and sizes[chosen[:-1]].sum() < 100
        assert np.all(np.diff(scores[i, chosen]) <= 0) and len(set(chosen.tolist())) == len(chosen)
        # the best clusters of the row: none left out scores higher
        assert scores[i, chosen].min() >= np.delete(scores[i], chosen).max()
    with pytest.raises(ValueError, match="n_clusters"):
        _ivf.ClusterIndex(W, b, 701, rng)


def _best_prefix(scores, sizes, n_probe, budget):
    """The clusters probe_clusters must choose, by brute force: best first (ties by
    lower index), the fewest holding ``budget`` labels, at most ``n_probe``."""
    order = np.lexsort((np.arange(scores.size), -scores))[:n_probe]
    if budget > 0:
        held = np.cumsum(sizes[order])
        if held[-1] >= budget:
            order = order[:int(np.argmax(held >= budget)) + 1]
    return order


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("n_clusters", [40, 700])
def test_cluster_choice_is_the_best_prefix(n_clusters, n_threads):
    # 700 clusters take the histogram path of _probe_row, 40 rank every cluster; ties
    # (coarse scores), a few labels a cluster or none, and rows whose scores have no
    # finite range (an infinite score: every cluster ranked) are all drawn
    rng = np.random.default_rng(n_clusters)
    sizes = rng.integers(0, 30, size=n_clusters)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    scores = rng.normal(size=(60, n_clusters)).astype(np.float32)
    scores[:20] = np.round(scores[:20] * 4) / 4
    scores[20:25] = rng.exponential(size=(5, n_clusters)) ** 3
    scores[25, 3] = np.inf
    scores[26, :] = 1.5
    no_hidden = np.zeros((1, 1), dtype=np.float32), np.zeros((n_clusters, 1), np.float32)
    for n_probe, budget in [(1, 0), (7, 0), (n_clusters, 0), (n_clusters // 3, 50),
                            (n_clusters, 400), (n_clusters, 10 ** 9), (5, 10 ** 9)]:
        for i in range(60):
            # a row's scores as the centroid biases of a zero query
            probe, counts = _network.probe_clusters(*no_hidden, scores[i], starts, n_probe,
                                                    budget, n_threads)
            assert probe.shape == (1, n_probe)
            chosen = probe[0, :counts[0]]
            want = _best_prefix(scores[i], sizes, n_probe, budget)
            assert sorted(chosen.tolist()) == sorted(want.tolist()), (n_probe, budget, i)
            assert (probe[0, counts[0]:] == probe[0, 0]).all()
    # many rows at once, in blocks over threads: each row as when alone
    rng_h = rng.normal(size=(200, 8)).astype(np.float32)
    cw = rng.normal(size=(n_clusters, 8)).astype(np.float32)
    cb = rng.normal(size=n_clusters).astype(np.float32)
    probe, counts = _network.probe_clusters(rng_h, cw, cb, starts, 9, 60, n_threads, 7)
    full = rng_h.astype(np.float64) @ cw.T + cb
    for i in range(200):
        want = _best_prefix(full[i], sizes, 9, 60)
        assert sorted(probe[i, :counts[i]].tolist()) == sorted(want.tolist())


@pytest.mark.parametrize("n_threads", [1, 2])
def test_probing_every_cluster_is_exact_inference(small_xc_model, n_threads):
    clf, Xte, _ = small_xc_model
    H, state = _hidden_and_state(clf, Xte)
    index = _ivf.ClusterIndex(state.W_out, state.b_out, 25, np.random.default_rng(1))
    probe, counts = index.probe(H, 25)
    fallback = np.arange(10, dtype=np.int32)
    idx, sc, total = _network.topk_probed(H, state, index.members, index.starts, probe,
                                          counts, 5, fallback, n_threads)
    ex_idx, ex_sc = _network.topk_exact(H, state, 5, n_threads)
    np.testing.assert_array_equal(idx, ex_idx)
    np.testing.assert_allclose(sc, ex_sc, rtol=1e-5, atol=1e-5)
    assert total == H.shape[0] * 600
    # small row and label blocks (more blocks, clusters in several sgemm calls, and
    # clusters probed by fewer than 4 rows of a block, scored one dot at a time)
    for row_block, label_block in [(1, 1), (3, 7), (50, 4096)]:
        got = _network.topk_probed(H, state, index.members, index.starts, probe, counts,
                                   5, fallback, n_threads, row_block, label_block)
        np.testing.assert_array_equal(got[0], ex_idx)
        np.testing.assert_allclose(got[1], ex_sc, rtol=1e-5, atol=1e-5)
        assert got[2] == total


def test_a_cluster_listed_twice_is_read_safely(small_xc_model):
    # probe_clusters never lists a cluster twice for a row, but the kernel takes any
    # probe: a block then holds more (row, cluster) pairs than rows, which must not
    # overrun the block's buffers (scored one dot at a time instead)
    clf, Xte, _ = small_xc_model
    H, state = _hidden_and_state(clf, Xte[:16])
    index = _ivf.ClusterIndex(state.W_out, state.b_out, 5, np.random.default_rng(1))
    probe = np.zeros((16, 6), dtype=np.int32)
    counts = np.full(16, 6, dtype=np.int32)
    idx, sc, total = _network.topk_probed(H, state, index.members, index.starts, probe,
                                          counts, 3, np.arange(5, dtype=np.int32), 2, 16)
    size = index.starts[1] - index.starts[0]
    assert total == 16 * 6 * size
    members = set(index.members[:size].tolist())
    assert set(idx.ravel().tolist()) <= members


def test_rows_with_few_candidates_are_completed_from_the_fallback(small_xc_model):
    clf, Xte, _ = small_xc_model
    H, state = _hidden_and_state(clf, Xte[:20])
    # one cluster of 2 labels probed by every row, k = 5: 3 labels from the fallback
    members = np.array([3, 7] + [j for j in range(600) if j not in (3, 7)], dtype=np.int32)
    starts = np.array([0, 2, 600], dtype=np.int64)
    probe = np.zeros((20, 1), dtype=np.int32)
    counts = np.ones(20, dtype=np.int32)
    fallback = np.array([7, 11, 12, 13, 14], dtype=np.int32)
    idx, sc, total = _network.topk_probed(H, state, members, starts, probe, counts, 5,
                                          fallback, 2)
    assert total == 40
    for row in idx.tolist():
        assert sorted(row) == [3, 7, 11, 12, 13]
    assert np.all(np.diff(sc, axis=1) <= 0)


def test_bad_index_is_refused(small_xc_model):
    clf, Xte, _ = small_xc_model
    H, state = _hidden_and_state(clf, Xte[:4])
    members = np.arange(600, dtype=np.int32)
    starts = np.array([0, 300, 600], dtype=np.int64)
    probe = np.zeros((4, 1), dtype=np.int32)
    counts = np.ones(4, dtype=np.int32)
    fb = np.arange(10, dtype=np.int32)
    call = _network.topk_probed
    with pytest.raises(ValueError, match="starts"):
        call(H, state, members, np.array([0, 700, 600]), probe, counts, 5, fb, 1)
    with pytest.raises(ValueError, match="starts"):
        call(H, state, members, np.array([0, 300, 500]), probe, counts, 5, fb, 1)
    with pytest.raises(ValueError, match="members"):
        call(H, state, np.full(600, 600, np.int32), starts, probe, counts, 5, fb, 1)
    with pytest.raises(ValueError, match="probe"):
        call(H, state, members, starts, np.full((4, 1), 2, np.int32), counts, 5, fb, 1)
    with pytest.raises(ValueError, match="counts"):
        call(H, state, members, starts, probe, np.full(4, 2, np.int32), 5, fb, 1)
    with pytest.raises(ValueError, match="rows"):
        call(H, state, members, starts, probe[:3], counts[:3], 5, fb, 1)
    with pytest.raises(ValueError, match="fallback"):
        call(H, state, members, starts, probe, counts, 5, np.array([-1], np.int32), 1)
    with pytest.raises(ValueError, match="hidden width"):
        call(H[:, :5].copy(), state, members, starts, probe, counts, 5, fb, 1)


def test_estimator_ivf_inference(small_xc_model):
    clf, Xte, Yte = small_xc_model
    exact, _ = clf.predict_topk(Xte, k=5)
    ivf, scores = clf.predict_topk(Xte, k=5, inference="ivf")
    assert ivf.shape == (Xte.shape[0], 5) and np.all(np.diff(scores, axis=1) <= 0)
    # most rows find their exact top-1 label, and every label comes from classes_
    assert np.mean(ivf[:, 0] == exact[:, 0]) > 0.5
    # probing every cluster is exact inference
    every = pickle.loads(pickle.dumps(clf))
    every.set_params(inference_n_probe=10**6)
    np.testing.assert_array_equal(every.predict_topk(Xte, k=5, inference="ivf")[0], exact)
    # the index follows inference_n_clusters, and a refit drops the old one
    every.set_params(inference_n_clusters=7)
    every.predict_topk(Xte[:3], inference="ivf")
    assert every._ivf.n_clusters == 7
    every.partial_fit(Xte, Yte)
    assert every._ivf is None
    # inference="ivf" as the parameter: built by fit, used by predict and score
    model = pickle.loads(pickle.dumps(clf)).set_params(inference="ivf", warm_start=True,
                                                       max_iter=1)
    model.fit(Xte, Yte)
    assert model._ivf is not None
    assert model.predict(Xte).shape == Yte.shape
    assert 0.0 <= model.score(Xte, Yte) <= 1.0
    with pytest.raises(ValueError, match="inference must be"):
        clf.predict_topk(Xte, inference="cluster")


def test_ivf_parameters_are_validated(small_xc_model):
    clf, Xte, Yte = small_xc_model
    for bad in (dict(inference_n_clusters=0), dict(inference_n_probe=0),
                dict(inference_n_probe="many"), dict(inference="cluster")):
        with pytest.raises(ValueError):
            SlideClassifier(**bad).fit(Xte, Yte)


def test_ivf_in_row_chunks_is_the_same(small_xc_model, monkeypatch):
    # predict probes a bounded number of rows at a time; chunks change nothing
    clf, Xte, _ = small_xc_model
    whole = clf.predict_topk(Xte, k=5, inference="ivf")
    from slidelearn._slide import _classifier
    monkeypatch.setattr(_classifier, "_IVF_CHUNK_ROWS", 7)
    chunked = clf.predict_topk(Xte, k=5, inference="ivf")
    assert Xte.shape[0] > 7 and Xte.shape[0] % 7
    np.testing.assert_array_equal(chunked[0], whole[0])
    # a cluster fewer rows probe is scored by dot products instead of one sgemm: the
    # same sums in another order
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-5, atol=1e-5)
    # no rows: empty answers from both kernels
    H, state = _hidden_and_state(clf, Xte[:1])
    index = clf._ivf
    probe, counts = index.probe(H[:0], 3, n_threads=2)
    assert probe.shape == (0, 3) and counts.shape == (0,)
    idx, sc, total = _network.topk_probed(H[:0], state, index.members, index.starts, probe,
                                          counts, 5, np.arange(5, dtype=np.int32), 2)
    assert idx.shape == sc.shape == (0, 5) and total == 0
