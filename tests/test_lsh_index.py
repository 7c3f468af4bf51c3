"""LSHIndex and RehashSchedule: the hash tables over the output neurons."""
import numpy as np
import pytest
from sklearn.datasets import make_multilabel_classification

from slidelearn import SlideClassifier
from slidelearn._slide import _hashing, _testing
from slidelearn._slide._lsh import LSHIndex, RehashSchedule


def test_schedule_rehashes_and_redraws_at_growing_intervals():
    s = RehashSchedule(rehash_interval=10, rebuild_interval=25, growth=2.0)
    events = [(i, s.advance(5)) for i in range(1, 21)]
    rehash_at = [5 * i for i, (rehash, _) in events if rehash]
    redraw_at = [5 * i for i, (_, redraw) in events if redraw]
    # rehash intervals 10, 20, 40, ...: after 10, 30 and 70 samples; a redraw at the
    # first rehash once 25 samples passed since the last one (the interval then 50)
    assert rehash_at == [10, 30, 70] and redraw_at == [30]
    s.rehashed()
    assert s.since_rehash == 0


def test_drift_schedule_rehashes_when_the_stale_share_reaches_the_threshold():
    s = RehashSchedule(rehash_interval=10, rebuild_interval=100, growth=2.0, drift=0.2)
    # the count does not matter, the stale share does; redraws stay by count and
    # rebuild the tables whatever the drift
    assert s.advance(50, 0.19) == (False, False)
    assert s.advance(5, 0.2) == (True, False)
    assert s.advance(40, 0.0) == (False, False)
    assert s.advance(10, 0.0) == (True, True)
    assert s.advance(150, 0.0) == (False, False)  # rebuild interval now 200
    assert s.n_rehashes == 2 and s.rehash_every == 10


def test_stale_share_is_zero_on_the_filled_weights_and_grows_with_the_move():
    rng = np.random.default_rng(0)
    for family in ("dwta", "mips", "simhash"):
        index = LSHIndex(family, 16, n_codes=4, n_tables=6, bin_size=4, range_pow=8,
                         rng=rng)
        W = rng.normal(size=(500, 16)).astype(np.float32)
        b = rng.normal(size=500).astype(np.float32)
        assert index.stale_share(W, b, 1) == 1.0  # no fill yet: everything is stale
        index.fill(W, n_threads=2, seed=3, bucket_size=64, reservoir=False, bias=b,
                   probe=100)
        rows, codes = index.probe[:2]
        assert len(rows) == 100 and codes.shape == (6, 100)
        assert index.stale_share(W, b, 2) == 0.0
        shares = []
        for scale in (0.05, 0.5, 5.0):
            noise = rng.normal(size=W.shape).astype(np.float32)
            shares.append(index.stale_share(W + scale * noise, b, 1))
        assert 0.0 < shares[0] < shares[1] < shares[2] <= 1.0, (family, shares)
        index.redraw(rng)  # codes of other functions say nothing
        assert index.probe is None and index.stale_share(W, b, 1) == 1.0


def test_classifier_with_rehash_drift_follows_the_weights():
    X, Y = make_multilabel_classification(n_samples=600, n_features=30, n_classes=80,
                                          random_state=1)
    base = dict(hidden_layer_sizes=16, min_active=10, negative_sampling="lsh", n_tables=8,
                n_codes=3, batch_size=16, max_iter=3, rehash_interval=10**6,
                random_state=0, n_jobs=2)
    by_count = SlideClassifier(**base).fit(X, Y)
    by_drift = SlideClassifier(rehash_drift=0.05, **base).fit(X, Y)
    # by count nothing happens in 1800 samples but the end-of-fit rebuild; by drift the
    # tables are rebuilt during training
    assert by_count._schedule.n_rehashes == 0
    assert by_drift._schedule.n_rehashes > 3
    assert np.isfinite(by_drift.loss_curve_).all()
    st = by_drift._state
    assert by_drift._lsh.stale_share(st.output_rows(), st.b_out, 1) == 0.0
    # set_params between warm fits reaches the schedule
    by_drift.set_params(rehash_drift=None, warm_start=True, max_iter=1)
    n = by_drift._schedule.n_rehashes
    by_drift.fit(X, Y)
    assert by_drift._schedule.drift is None and by_drift._schedule.n_rehashes == n


def test_index_tables_hold_every_neuron_once_a_table_when_buckets_are_large():
    rng = np.random.default_rng(0)
    index = LSHIndex("dwta", 16, n_codes=2, n_tables=3, bin_size=4, range_pow=6, rng=rng)
    W = rng.normal(size=(40, 16)).astype(np.float32)
    index.fill(W, n_threads=1, seed=1, bucket_size=40, reservoir=False)
    for t in range(3):
        assert sorted(index.ids[t, :index.offsets[t, -1]].tolist()) == list(range(40))
    shared = LSHIndex.sharing_functions(index)
    assert shared.params is index.params and shared.offsets is None


def test_models_pickled_with_dict_tables_still_load_and_train():
    X, Y = make_multilabel_classification(n_samples=300, n_features=20, n_classes=30,
                                          random_state=0)
    clf = SlideClassifier(max_iter=2, n_jobs=1, random_state=0).fit(X, Y)
    _testing.lsh(clf)  # models of that time carried their training tables
    state = clf.__getstate__()
    lsh, schedule = state["_lsh"], state.pop("_schedule")
    state["_lsh"] = {"params": lsh.params, "offsets": lsh.offsets, "ids": lsh.ids,
                     "bucket_size": lsh.bucket_size}
    state.update(_rehash_every=schedule.rehash_every, _rebuild_every=schedule.rebuild_every,
                 _since_rehash=schedule.since_rehash, _since_rebuild=schedule.since_rebuild)
    old = SlideClassifier.__new__(SlideClassifier)
    old.__setstate__(state)
    assert isinstance(old._lsh, LSHIndex) and isinstance(old._schedule, RehashSchedule)
    np.testing.assert_array_equal(old.predict_topk(X, 3, inference="lsh")[0],
                                  clf.predict_topk(X, 3, inference="lsh")[0])
    old.partial_fit(X, Y)
    assert old.n_iter_ == clf.n_iter_ + 1


# --------------------------------------------------------------------------- "mips"
from slidelearn._slide._lsh import mips_rows  # noqa: E402


def _mips_layer(rng, n=3000, H=16):
    W = rng.normal(size=(n, H)).astype(np.float32) * rng.uniform(0.2, 2.0, (n, 1)).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    return W, b


def test_mips_rows_have_one_norm_and_keep_the_score_order():
    rng = np.random.default_rng(0)
    W, b = _mips_layer(rng, 200, 8)
    c = W.mean(axis=0)
    M = float(np.sqrt(((W - c) ** 2).sum(axis=1) + b ** 2).max())
    R = mips_rows(W, b, c, M)
    np.testing.assert_allclose(np.linalg.norm(R, axis=1), M, rtol=1e-5)
    h = rng.uniform(0, 1, 8).astype(np.float32)
    q = np.concatenate([h, [1.0, 0.0]]).astype(np.float32)
    np.testing.assert_allclose(R @ q, W @ h + b - c @ h, rtol=1e-4, atol=1e-4)
    # bfloat16 bits are read as the float32 values they stand for
    W16 = (W.view(np.uint32) >> 16).astype(np.uint16)
    R16 = mips_rows(W16, b, c, M * 1.01)
    np.testing.assert_allclose(R16[:, :-2], (W16.astype(np.uint32) << 16).view(np.float32) - c)


@pytest.mark.parametrize("dense", [True, False])
def test_mips_query_hash_is_the_hash_of_the_padded_query(dense, monkeypatch):
    # both ways of applying the projections: dense (one sgemv) and gathered non-zeros
    monkeypatch.setattr(_hashing, "_DENSE_SHARE", 10**6 if dense else 0)
    rng = np.random.default_rng(1)
    params = _hashing.draw_hash_functions("mips", 12 + 2, 5, 7, 4, 18, rng)
    for _ in range(20):
        h = rng.uniform(-1, 1, 12).astype(np.float32)
        padded = np.concatenate([h, [1.0, 0.0]]).astype(np.float32)
        cq, bq = _hashing.hash_codes(params, h, query=True)
        cv, bv = _hashing.hash_codes(params, padded)
        np.testing.assert_array_equal(cq, cv)
        np.testing.assert_array_equal(bq, bv)
    with np.testing.assert_raises(ValueError):
        _hashing.hash_codes(params, padded, query=True)  # a query has dim - 2 floats


@pytest.mark.parametrize("family", ["mips", "simhash"])
def test_dense_and_gathered_projections_give_the_same_codes(family, monkeypatch):
    """The dense projections (written out from the sparse ones) give the codes of the
    gathered non-zeros wherever a projection is not a float32 near-tie, for rows and
    for "mips" queries, at every width; the dense matrix is made once, kept with the
    functions, and made on first use for functions drawn without it (older pickles)."""
    rng = np.random.default_rng(5)
    dim = 20
    for width in (2, 7, dim):
        params = _hashing.draw_hash_functions(family, dim, 6, 9, width, 18, rng)
        rows = rng.normal(size=(40, dim)).astype(np.float32)
        got = {}
        for mode, share in (("dense", 10**6), ("gathered", 0)):
            monkeypatch.setattr(_hashing, "_DENSE_SHARE", share)
            p = dict(params)
            p.pop("proj", None)
            got[mode] = [_hashing.hash_codes(p, r)[0] for r in rows]
            if family == "mips":
                got[mode] += [_hashing.hash_codes(p, r[:-2], query=True)[0] for r in rows]
            assert ("proj" in p) == (mode == "dense")
            if mode == "dense":
                proj = p["proj"]
                _hashing.hash_codes(p, rows[0])
                assert p["proj"] is proj  # kept, not made again
                ref = np.zeros((params["dims"].shape[0], dim), dtype=np.float32)
                for i, (d, sgn) in enumerate(zip(params["dims"], params["signs"])):
                    ref[i, d] = sgn
                np.testing.assert_array_equal(proj, ref)
        # the margin of every projection, to leave out float32 near-ties
        margins = []
        for r in rows:
            margins.append(np.abs(ref @ r.astype(np.float64)))
        if family == "mips":
            for r in rows:
                q = np.concatenate([r[:-2], [1.0, 0.0]])
                margins.append(np.abs(ref @ q))
        for a, b, m in zip(got["dense"], got["gathered"], margins):
            clear = m > 1e-4
            np.testing.assert_array_equal(a[clear], b[clear])


def test_classifier_resolves_bin_size_auto_by_family():
    X, Y = make_multilabel_classification(n_samples=200, n_features=20, n_classes=30,
                                          random_state=0)
    common = dict(hidden_layer_sizes=64, min_active=5, negative_sampling="lsh", max_iter=1,
                  random_state=0)
    mips = SlideClassifier(hash_family="mips", **common).fit(X, Y)
    assert mips._lsh.params["width"] == 64 + 2 and "proj" in mips._lsh.params
    dwta = SlideClassifier(hash_family="dwta", **common).fit(X, Y)
    assert dwta._lsh.params["width"] == 8
    # 4 non-zeros in 66 dims: gathered, with no dense copy
    set_ = SlideClassifier(hash_family="mips", bin_size=4, **common).fit(X, Y)
    assert set_._lsh.params["width"] == 4 and "proj" not in set_._lsh.params
    # the inference tables resolve it the same way
    mips.set_params(inference_n_codes=5)
    mips._build_inference_tables(1)
    assert mips._inference_lsh.params["width"] == 66


def test_mips_tables_retrieve_the_top_scoring_neuron_far_above_chance():
    rng = np.random.default_rng(2)
    W, b = _mips_layer(rng)
    index = LSHIndex("mips", 16, n_codes=8, n_tables=24, bin_size=6, range_pow=18, rng=rng)
    assert index.params["dim"] == 18
    index.fill(W, n_threads=2, seed=0, bucket_size=4096, reservoir=False, bias=b)
    hits = found = 0
    for _ in range(200):
        h = np.maximum(rng.normal(size=16), 0).astype(np.float32)
        _, buckets = _hashing.hash_codes(index.params, h, query=True)
        cand = np.unique(np.concatenate([index.ids[t, index.offsets[t, k]:index.offsets[t, k + 1]]
                                         for t, k in enumerate(buckets)]))
        found += len(cand)
        hits += int(np.argmax(W @ h + b) in cand)
    share = found / 200 / len(W)  # what random candidates of that number would find
    assert share < 0.2
    assert hits / 200 > 4 * share, (hits, share)


def test_mips_needs_the_biases():
    rng = np.random.default_rng(3)
    W, _ = _mips_layer(rng, 50, 8)
    index = LSHIndex("mips", 8, n_codes=4, n_tables=2, bin_size=4, range_pow=10, rng=rng)
    with np.testing.assert_raises(ValueError):
        index.fill(W, n_threads=1, seed=0, bucket_size=8, reservoir=False)


def test_classifier_trains_and_predicts_with_mips_tables():
    import pickle
    X, Y = make_multilabel_classification(n_samples=400, n_features=40, n_classes=60,
                                          random_state=0)
    for precision in ("float32", "bfloat16"):
        clf = SlideClassifier(hidden_layer_sizes=16, hash_family="mips", n_codes=6,
                              n_tables=8, min_active=10, max_iter=3, dropout=0.0,
                              precision=precision, random_state=0, n_jobs=2).fit(X, Y)
        assert not clf._dense_output()
        assert np.isfinite(clf.loss_curve_).all()
        top, _ = clf.predict_topk(X[:50], 3, inference="lsh")
        assert top.shape == (50, 3) and (top >= 0).all()
        again = pickle.loads(pickle.dumps(clf))
        np.testing.assert_array_equal(again.predict_topk(X[:50], 3, inference="lsh")[0], top)


def test_models_that_train_without_tables_build_them_on_first_use():
    # Every label active (the dense path): the training tables are deferred, so the
    # model neither builds nor carries them (50 tables x 2**14 offsets here) until LSH
    # inference or a sampled fit needs them, and then they are those of the deferred
    # seed, in a copy as in the original.
    import pickle
    X, Y = make_multilabel_classification(n_samples=200, n_features=20, n_classes=12,
                                          random_state=0)
    clf = SlideClassifier(max_iter=2, n_jobs=1, random_state=0, range_pow=14,
                          hash_family="dwta").fit(X, Y)  # inference on the training tables
    assert _testing.lsh(clf, build=False).offsets is None
    blob = pickle.dumps(clf)
    assert len(blob) < 50 * 2**14 * 4 // 4
    copy = pickle.loads(blob)
    top = clf.predict_topk(X, 3, inference="lsh")[0]
    built = _testing.lsh(clf, build=False)
    assert built.offsets.shape == (50, 2**14 + 1) and built.deferred is None
    np.testing.assert_array_equal(copy.predict_topk(X, 3, inference="lsh")[0], top)
    np.testing.assert_array_equal(_testing.lsh(copy, build=False).ids, built.ids)
    # a later fit through the sampled path trains with (and keeps) built tables
    copy.set_params(negative_sampling="lsh", min_active=4, loss="softmax").partial_fit(X, Y)
    assert _testing.lsh(copy, build=False).offsets is not None
    assert copy.n_iter_ == clf.n_iter_ + 1


def test_auto_family_infers_with_mips_tables_where_training_does_not_use_tables():
    """hash_family="auto": the training tables are DWTA, drawn as before (the model
    trains exactly as with "dwta"); where training does not sample from them, LSH
    inference builds "mips" tables of n_codes x n_tables on first use, from a stream of
    their own, and a further fit drops them for the next use to rebuild."""
    import pickle
    from slidelearn.datasets import make_extreme_classification
    X, Y = make_extreme_classification(n_samples=500, n_features=200, n_labels=300,
                                       random_state=1)
    common = dict(hidden_layer_sizes=(24,), n_codes=5, n_tables=6, max_iter=2, n_jobs=1,
                  random_state=0, min_active=20)
    auto = SlideClassifier(**common).fit(X, Y)  # the shared negatives: no tables used
    dwta = SlideClassifier(**common, hash_family="dwta").fit(X, Y)
    assert auto._output_mode() == "shared"
    np.testing.assert_array_equal(auto.coefs_[-1], dwta.coefs_[-1])
    assert auto._lsh.params["family"] == "dwta"
    assert _testing.lsh(auto, inference=True) is None  # lazy
    top, scores = auto.predict_topk(X[:40], 5, inference="lsh")
    tables = _testing.lsh(auto, inference=True)
    assert tables.params["family"] == "mips" and tables.params["n_codes"] == 5
    assert tables.params["n_tables"] == 6 and tables.params["width"] == 24 + 2
    assert _testing.lsh(auto, build=False).offsets is None  # training tables never built
    # scored exactly, and the same on a second call and after a pickle round trip
    z = auto.decision_function(X[:40])
    np.testing.assert_allclose(scores, np.take_along_axis(z, top, axis=1), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(auto.predict_topk(X[:40], 5, inference="lsh")[0], top)
    again = pickle.loads(pickle.dumps(auto))
    # the dense projections are not stored (made again on first use)
    assert "proj" in tables.params and "proj" not in _testing.lsh(again, inference=True).params
    np.testing.assert_array_equal(again.predict_topk(X[:40], 5, inference="lsh")[0], top)
    assert "proj" in _testing.lsh(again, inference=True).params
    # a further fit drops them; the next LSH predict builds them from the new weights
    auto.partial_fit(X, Y)
    assert _testing.lsh(auto, inference=True) is None
    auto.predict_topk(X[:5], 5, inference="lsh")
    assert _testing.lsh(auto, inference=True) is not tables
    # inference_n_codes: mips tables of that K (built on first use too)
    sep = SlideClassifier(**common, inference_n_codes=7).fit(X, Y)
    sep.predict_topk(X[:5], 5, inference="lsh")
    assert _testing.lsh(sep, inference=True).params["n_codes"] == 7
    assert _testing.lsh(sep, inference=True).params["family"] == "mips"
    # inference_bucket_size: the same tables with sampled buckets of that size
    small = SlideClassifier(**common, inference_bucket_size=3).fit(X, Y)
    assert _testing.lsh(small, inference=True) is None
    small.predict_topk(X[:5], 5, inference="lsh")
    tables = _testing.lsh(small, inference=True)
    assert tables.params["family"] == "mips" and tables.bucket_size == 3
    assert np.diff(tables.offsets, axis=1).max() <= 3
    # training that samples from the tables infers with them (DWTA, shared functions)
    lsh = SlideClassifier(**common, negative_sampling="lsh").fit(X, Y)
    lsh.predict_topk(X[:5], 5, inference="lsh")
    assert _testing.lsh(lsh, inference=True) is None
    assert _testing.lsh(lsh).params["family"] == "dwta"
