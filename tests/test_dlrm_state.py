"""The typed state of the DLRM estimators (DLRMState, its workspace) and the models
pickled before it, whose state was string-keyed dictionaries."""
import pickle

import numpy as np
import pytest

from slidelearn import DLRMClassifier, DLRMRegressor
from slidelearn._dlrm import _testing


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 600
    X = np.column_stack([rng.normal(size=n), rng.normal(size=n), rng.integers(0, 20, n),
                         rng.integers(0, 7, n)])
    y = X[:, 0] + np.sin(X[:, 2]) + 0.2 * (X[:, 3] % 3)
    return X, y


def _est(Est=DLRMRegressor, **kw):
    params = dict(categorical_features=[2, 3], embedding_dim=4, bottom_mlp=(8,),
                  top_mlp=(8,), max_iter=2, batch_size=64, n_jobs=1, random_state=0)
    params.update(kw)
    return Est(**params)


class _OldPickle:
    """Pickles as an estimator of class ``cls`` whose ``__dict__`` was ``state``: loading
    makes a bare instance and hands it the dictionary (``__setstate__``)."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    def __reduce__(self):
        return object.__new__, (self.cls,), self.state


def _old_form(est, shard_state=None):
    """``est``'s pickled ``__dict__`` in the layout of the dict-based code: ``_model``,
    ``_spec``, ``_step`` and ``_shard_state`` instead of ``_state`` and ``_shards``."""
    d = est.__getstate__()
    st = d.pop("_state")
    d.pop("_shards", None)
    lay = st.layout
    d["_model"] = {"theta": st.theta, "grad": np.empty(0, np.float32), "acc": st.acc,
                   "E": st.tables.E, "E_acc": st.tables.E_acc,
                   "slot": np.empty(0, np.int32), "table_offsets": st.tables.offsets}
    d["_spec"] = {"n_dense": lay.n_dense, "n_tables": lay.n_tables, "d": lay.d,
                  "n_bottom": lay.n_bottom, "n_top": lay.n_top, "n_int": lay.n_int,
                  "interaction": lay.interaction, "k": lay.k, "layers": lay.layers,
                  "loss": st.loss, "optimizer": st.optimizer, "eps": float(est.epsilon),
                  "alpha": float(est.alpha), "max_width": lay.max_width}
    d["_step"] = st.step
    d["_shard_state"] = shard_state
    return pickle.dumps(_OldPickle(type(est), d))


@pytest.mark.parametrize("kw", [dict(), dict(solver="sgd", alpha=1e-3),
                                dict(precision="bfloat16"),
                                dict(Est=DLRMClassifier, warmup_steps=40)],
                         ids=["adagrad", "sgd-l2", "bf16", "classifier-warmup"])
def test_dict_based_pickle_loads_predicts_and_trains_on(data, kw):
    X, y = data
    est = _est(factorization_term=False, **kw)  # the dict-based form predates the term
    target = (y > 0.5).astype(int) if isinstance(est, DLRMClassifier) else y
    est.fit(X, target)
    old = pickle.loads(_old_form(est))
    assert not hasattr(old, "_model") and _testing.shards(old) is None
    state, ref = _testing.state(old), _testing.state(est)
    assert state.step == ref.step > 0 and state.bf16 == ref.bf16
    np.testing.assert_array_equal(state.layout.layers, ref.layout.layers)
    np.testing.assert_array_equal(old.predict(X), est.predict(X))
    # the step count (warm-up), the optimizer state and the weights carry on exactly
    new = pickle.loads(pickle.dumps(est))
    for m in (old, new):
        m.partial_fit(X, target)
    np.testing.assert_array_equal(old.predict(X), new.predict(X))
    assert old.loss_curve_ == new.loss_curve_


def test_dict_based_pickle_of_tables_spread_over_ranks(data):
    """A model whose tables stayed on 2 ranks: its shards come back as TableShards, and
    predicting without the ranks says so."""
    X, y = data
    est = _est().fit(X, y)
    st = _testing.state(est)
    E, E_acc, offs = st.tables.E, st.tables.E_acc, st.tables.offsets
    # rank 1 holds table 1 whole and this rank (0) table 0
    local = {"E": E[offs[0]:offs[1]].copy(), "E_acc": E_acc[offs[0]:offs[1]].copy(),
             "slot": np.full(offs[1], -1, np.int32), "table_offsets": offs[:2].copy()}
    shard_state = {"n_ranks": 2, "shards": [(0, 0, 0, int(offs[1])),
                                            (1, 1, 0, int(offs[2] - offs[1]))],
                   "local": local, "index_dtype": np.int32}
    st.tables.E, st.tables.E_acc = E[:0], E_acc[:0]
    old = pickle.loads(_old_form(est, shard_state))
    shards = _testing.shards(old)
    assert shards.n_ranks == 2 and shards.of_rank(1) == [(1, 1, 0, int(offs[2] - offs[1]))]
    np.testing.assert_array_equal(shards.local.E, local["E"])
    np.testing.assert_array_equal(shards.local_offsets(0), [0, offs[1]])
    np.testing.assert_array_equal(shards.table_offsets, offs)
    assert shards.index_dtype == np.int32
    with pytest.raises(ValueError, match="split over 2 ranks"):
        old.predict(X)


def test_state_survives_pickling_without_scratch(data):
    X, y = data
    est = _est(solver="adagrad").fit(X, y)
    assert _testing.gradient(est).shape == (_testing.state(est).layout.n_theta,)
    blob = pickle.dumps(est)
    back = pickle.loads(blob)
    assert not hasattr(back, "_work")  # the workspace is rebuilt by the next fit
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    back.partial_fit(X, y)
    assert _testing.slots(back).shape == (_testing.state(back).tables.n_rows,)


def test_factorization_term_survives_pickling_and_older_layouts_lack_it(data):
    X, y = data
    est = _est(factorization_term=True).fit(X, y)
    assert _testing.state(est).layout.fm
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    # a layout pickled before the field existed has no "fm" entry: it loads as False
    plain = _est(factorization_term=False).fit(X, y)
    object.__delattr__(_testing.state(plain).layout, "fm")
    old = pickle.loads(pickle.dumps(plain))
    assert _testing.state(old).layout.fm is False
    np.testing.assert_array_equal(old.predict(X),
                                  _est(factorization_term=False).fit(X, y).predict(X))


@pytest.mark.parametrize("Est,target,on", [(DLRMRegressor, "one", True),
                                           (DLRMClassifier, "two", True),
                                           (DLRMRegressor, "two", False),
                                           (DLRMClassifier, "three", False),
                                           (DLRMRegressor, "one table", False)])
def test_factorization_term_auto_is_on_where_it_applies(data, Est, target, on):
    """``"auto"`` (the default) adds the term for a single output over two or more
    tables, and leaves it out, without an error, where ``True`` would raise."""
    X, y = data
    kw = {}
    if target == "two":
        y = np.column_stack([y, y]) if Est is DLRMRegressor else (y > 0.5).astype(int)
    elif target == "three":
        y = (X[:, 3] % 3).astype(int)
    elif target == "one table":
        kw["categorical_features"] = [2]
    est = _est(Est, **kw).fit(X, y)
    assert est.get_params()["factorization_term"] == "auto"
    assert _testing.state(est).layout.fm is on


@pytest.mark.parametrize("Est,target", [(DLRMRegressor, "two"), (DLRMClassifier, "three"),
                                        (DLRMRegressor, "one table")])
def test_factorization_term_where_it_does_not_apply_raises(data, Est, target):
    X, y = data
    kw = dict(factorization_term=True)
    if target == "two":
        y = np.column_stack([y, y])
    elif target == "three":
        y = (X[:, 3] % 3).astype(int)
    else:
        kw["categorical_features"] = [2]
    with pytest.raises(ValueError, match="factorization_term=True needs a single output"):
        _est(Est, **kw).fit(X, y)


def test_snapshot_restore_and_precision_round_trip(data):
    X, y = data
    est = _est().fit(X, y)
    state = _testing.state(est)
    theta, E = _testing.weights(est)
    saved = state.snapshot()
    est.partial_fit(X, y)
    assert not np.array_equal(_testing.weights(est)[0], theta)
    state.restore(saved)
    np.testing.assert_array_equal(_testing.weights(est)[0], theta)
    np.testing.assert_array_equal(_testing.weights(est)[1], E)
    for precision in ("bfloat16", "float32"):
        _testing.set_precision(est, precision)
        assert state.bf16 == (precision == "bfloat16")
        np.testing.assert_array_equal(_testing.weights(est)[1].view(np.uint32),
                                      E.view(np.uint32))


def test_read_only_state_is_copied_before_training(data):
    X, y = data
    est = _est().fit(X, y)
    state = _testing.state(est)
    for a in (state.theta, state.acc, state.tables.E, state.tables.E_acc):
        a.flags.writeable = False
    pred = est.predict(X)  # a read-only (memory-mapped) model predicts as it is
    theta = state.theta
    est.partial_fit(X, y)
    assert state.theta is not theta and state.theta.flags.writeable
    assert not np.array_equal(est.predict(X), pred)


def test_embedding_learning_rate_auto_follows_lookups_per_id(data):
    """``"auto"``: a table learns at ``learning_rate_init`` times its first fit's
    lookups per distinct id over 10, clipped to [1, 5]; ids seen once (a hashed
    feature) keep the MLP's rate. A float or None gives every table one rate."""
    X, y = data
    n = len(y)
    rare = np.arange(n) * 7 % 1009  # 600 distinct ids out of a 1009-row table
    Xr = np.column_stack([X, rare])
    est = _est(categorical_features=[2, 3, 4], learning_rate_init=0.02).fit(Xr, y)
    per_id = np.array([n / len(np.unique(X[:, 2])), n / len(np.unique(X[:, 3])), 1.0])
    np.testing.assert_allclose(est.embedding_learning_rates_,
                               0.02 * np.clip(per_id / 10, 1, 5), rtol=1e-6)
    assert est.embedding_learning_rates_[2] == pytest.approx(0.02)
    # the rule is the first fit's: a later warm fit on other rows keeps it
    rates = est.embedding_learning_rates_.copy()
    est.set_params(warm_start=True).fit(Xr[:50], y[:50])
    np.testing.assert_array_equal(est.embedding_learning_rates_, rates)
    for value, expected in [(0.05, 0.05), (None, 0.02)]:
        fixed = _est(categorical_features=[2, 3, 4], learning_rate_init=0.02,
                     embedding_learning_rate=value).fit(Xr, y)
        np.testing.assert_allclose(fixed.embedding_learning_rates_, expected, rtol=1e-6)
    # a model pickled before the rule existed trains its tables at the MLP's rate
    old = pickle.loads(pickle.dumps(est))
    del old.__dict__["_lookups_per_id"]
    old.partial_fit(Xr, y)
    np.testing.assert_allclose(old.embedding_learning_rates_, 0.02, rtol=1e-6)
