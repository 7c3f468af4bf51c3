"""SlideState (the arrays of a SLIDE network) and the training Workspace."""
import copy
import pickle

import numpy as np
import pytest

from slidelearn._slide import _network
from slidelearn._slide._state import SlideParams, SlideState


def _state(sizes=(8, 6), n_features=10, n_labels=7, seed=0):
    return SlideState.draw(sizes, n_features, n_labels, np.random.default_rng(seed), 2.0)


def _params(**kw):
    base = dict(batch_size=16, min_active=5, active_threshold=1, n_tables=3, n_codes=2,
                bucket_size=4, reservoir=False, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                alpha=0.0, dropout=0.0, precision="float32")
    base.update(kw)
    return SlideParams(**base)


def test_layout_and_views():
    st = _state()
    np.testing.assert_array_equal(st.sizes, [8, 6])
    np.testing.assert_array_equal(st.b_off, [0, 8 + 48])
    np.testing.assert_array_equal(st.w_off, [0, 8])
    np.testing.assert_array_equal(st.a_off, [0, 8])
    assert st.dense.shape == (8 + 48 + 6,) and st.step == 0
    assert [w.shape for w in st.coefs()] == [(10, 8), (8, 6), (7, 6)]
    assert [b.shape for b in st.intercepts()] == [(8,), (6,), (7,)]
    st.coefs()[1][0, 0] = 5.0  # views, not copies
    assert st.dense[8] == 5.0
    assert st.m_out is None and st.precision == "float32"  # made by set_output_precision
    st.set_output_precision("float32", 1)
    assert st.m_out.shape == (7, 6) and st.output_rows() is st.W_out


def test_a_label_slice_draws_the_rows_of_the_whole_draw():
    rng_whole, rng_slice = np.random.default_rng(3), np.random.default_rng(3)
    whole = SlideState.draw((5,), 4, 20, rng_whole, 1.0)
    part = SlideState.draw((5,), 4, 20, rng_slice, 1.0, label_slice=(6, 13))
    np.testing.assert_array_equal(part.W_out, whole.W_out[6:13])
    np.testing.assert_array_equal(part.W_in, whole.W_in)
    assert rng_whole.integers(1 << 62) == rng_slice.integers(1 << 62)  # left in step


def test_precision_round_trip_is_exact_for_the_weights():
    st = _state()
    st.set_output_precision("float32", 1)
    st.m_out[...] = 0.25
    W = st.W_out.copy()
    st.set_output_precision("bfloat16", 2)
    assert st.precision == "bfloat16" and st.m_out is None and st.output_rows() is st.w16_out
    assert st.s16_out.shape == (7, _network.bf16_state_width(6))
    st.set_output_precision("float32", 1)
    np.testing.assert_array_equal(st.W_out, W)
    np.testing.assert_array_equal(st.m_out, 0.25)  # exact in bfloat16
    assert st.w16_out is None and st.s16_out is None and st.dirty_out is None


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_pickle_snapshot_and_output_slices(precision):
    st = _state()
    st.set_output_precision(precision, 1)
    st.step = 7
    copy_ = pickle.loads(pickle.dumps(st))
    assert copy_.step == 7 and copy_.precision == precision
    assert sorted(copy_.arrays()) == sorted(st.arrays())
    for name, a in st.arrays().items():
        np.testing.assert_array_equal(getattr(copy_, name), a, name)
    snap = st.snapshot()
    st.W_in[...] = 1.0
    st.restore(snap)
    np.testing.assert_array_equal(st.W_in, copy_.W_in)
    # deepcopy goes through the same state
    assert copy.deepcopy(st).step == 7
    with pytest.raises(ValueError, match="not an output array"):
        st.set_output_arrays({"W_in": st.W_in})


def test_old_dict_form_loads():
    st = _state()
    st.set_output_precision("float32", 1)
    arrays = st.arrays()
    model = {k: arrays.pop(k) for k in ("W_in", "dense", "W_out", "b_out", "sizes",
                                        "w_off", "b_off", "a_off")}
    old = SlideState.from_dicts(model, arrays, 12)
    assert old.step == 12 and old.precision == "float32"
    for name, a in st.arrays().items():
        assert getattr(old, name) is a


def test_read_only_state_is_copied_before_training():
    st = _state()
    st.set_output_precision("float32", 1)
    for a in st.arrays().values():
        a.flags.writeable = False
    st.sync_output(1)  # nothing to do: float32
    st.ensure_writable()
    assert all(a.flags.writeable for a in st.arrays().values())
    st.align_rows()
    assert st.W_in.ctypes.data % 64 == 0 and st.m_out.ctypes.data % 64 == 0


def test_workspace_is_kept_while_it_fits():
    st = _state(n_labels=200)
    st.set_output_precision("float32", 1)
    params = _params()
    work = _network.Workspace.ensure(None, st, 2, 3, params)
    assert work.transposed and not work.bf16 and work.n_threads == 2
    assert np.asarray(work.g_out).size == 0 and np.asarray(work.rec_ids).shape[0] == 16
    assert np.asarray(work.act).shape == (2, work.act_cap)
    assert _network.Workspace.ensure(work, st, 2, 2, params) is work  # fewer labels a row
    assert _network.Workspace.ensure(work, st, 2, 50, params) is not work  # more
    assert _network.Workspace.ensure(work, st, 1, 3, params) is not work  # fewer threads
    scattered = _network.Workspace.ensure(None, st, 1, 3, params, transposed=False)
    assert not scattered.transposed and np.asarray(scattered.g_out).shape == (200, 6)
    assert np.asarray(scattered.rec_ids).size == 0 and scattered.hash_buckets is None
    with pytest.raises(ValueError, match="bfloat16"):
        _network.Workspace.ensure(None, st, 1, 3, _params(precision="bfloat16"),
                                  transposed=False)
