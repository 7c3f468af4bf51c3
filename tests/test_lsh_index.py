"""LSHIndex and RehashSchedule: the hash tables over the output neurons."""
import numpy as np
from sklearn.datasets import make_multilabel_classification

from slidelearn import SlideClassifier
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
