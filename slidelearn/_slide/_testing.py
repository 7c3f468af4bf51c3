"""What the tests of SlideClassifier need beyond its public API: the kernel entry points
that exist only for tests (a dispatched kernel against its portable loop, a one-vector
hash, a Python reference query of the tables), and helpers that hand a test the typed
internals of an estimator (its ``SlideState``, ``LSHIndex`` and ``_network.Workspace``)
or patch its training loop. Nothing in the package imports this module.
"""
from types import SimpleNamespace

import numpy as np

from slidelearn._slide import _network
from slidelearn._slide._classifier import SlideClassifier
from slidelearn._slide._hashing import hash_codes
from slidelearn._slide._network import (adam16_records, adam16_rows, exp_shift_sum, sum_rows,
                                        vector_levels)
from slidelearn.utils.validation import validate_sparse_X

__all__ = ["adam16_records", "adam16_rows", "buffers", "exp_shift_sum", "fail_on_batch",
           "hash_codes",
           "hidden", "init_model", "label_counts", "label_slice", "lsh", "query_tables", "rehash",
           "reset_gradients", "scattered_output_gradient", "state", "sum_rows", "train_batch",
           "vector_levels", "workspace"]

# the buffers of a _network.Workspace (those of the other mode are not allocated)
_BUFFERS = ("acts", "delta", "codes", "buckets", "act", "logits", "cand", "mark", "rng",
            "out_list", "out_count", "in_list", "in_count", "out_flag", "in_flag",
            "uniq_out", "uniq_in", "g_in", "g_dense", "g_out", "gb_out", "rec_ids", "rec_dz",
            "rec_n", "Hb", "Hb16", "sort_keys", "sort_vals", "sort_tkeys", "sort_tvals",
            "runs", "gbuf", "h16")


def state(clf):
    """The ``SlideState`` of a fitted (or initialised) classifier."""
    return clf._state


def lsh(clf, inference=False, build=True):
    """The ``LSHIndex`` of its training tables (filled first where the model deferred
    them, unless not ``build``), or with ``inference`` that of its tables for LSH
    inference only (None when the ``inference_*`` parameters ask for none)."""
    if inference:
        return clf._inference_lsh
    return clf._training_tables(1) if build else clf._lsh


def hidden(clf, X, n_threads=1):
    """The last hidden activations of the rows of ``X`` (validated as ``predict``
    does)."""
    return clf._hidden(validate_sparse_X(clf, X, reset=False), n_threads)


def label_slice(clf):
    """The (lo, hi) output neurons this rank holds of a model spread over MPI ranks, or
    None."""
    return getattr(clf, "_label_slice", None)


def label_counts(clf):
    """How many training rows had each label."""
    return clf._label_counts


def init_model(clf, n_features, n_labels, rng, input_energy):
    """Draw a model into ``clf`` as its first ``fit`` does (tables filled); returns its
    state. ``loss="auto"`` becomes the softmax here (``fit`` resolves it from ``y``),
    the loss the per-sample kernels train."""
    clf._init_model(n_features, n_labels, rng, input_energy)
    clf.loss_ = "softmax" if clf.loss == "auto" else clf.loss
    return clf._state


def rehash(clf, n_threads=1):
    """Rebuild its training tables from the current output weights."""
    clf._rehash(n_threads)


def workspace(clf, n_threads=None, max_labels=None, transposed=True, scatter=True):
    """The ``Workspace`` of the last fit, or with ``n_threads`` one for training on that
    many threads and rows of up to ``max_labels`` labels (kept by ``clf``, as ``fit``
    keeps it; ``transposed`` and ``scatter`` as ``Workspace.ensure`` takes them)."""
    if n_threads is None:
        return getattr(clf, "_work", None)
    return clf._get_work(n_threads, max_labels, transposed=transposed, scatter=scatter)


def buffers(work):
    """The allocated buffers of ``work`` as numpy arrays (views: writing to them writes
    the buffers), attributes of a namespace."""
    return SimpleNamespace(**{name: np.asarray(getattr(work, name)) for name in _BUFFERS
                              if hasattr(work, name)})


def reset_gradients(work):
    """Zero what a batch leaves in ``work`` for the Adam steps (gradients, touched lists,
    flags), as ``adam_update`` does, for tests that run ``train_batch`` alone."""
    b = buffers(work)
    for name in ("g_in", "g_out", "gb_out", "g_dense", "out_count", "in_count", "out_flag",
                 "in_flag"):
        if hasattr(b, name):
            getattr(b, name)[...] = 0


def train_batch(clf, X, Y_indptr, Y_indices, rows, work, *, min_active, threshold=1, seed=123,
                n_threads=1, dropout=0.0, tables=None, pick_all=False):
    """``_network.train_batch`` on ``clf``'s state and tables (or ``tables``) for the
    CSR matrix ``X`` and the label lists ``Y_indptr`` / ``Y_indices``; returns the summed
    loss and active-set size."""
    return _network.train_batch(X.data, X.indices, X.indptr, Y_indptr, Y_indices, rows,
                                clf._state, lsh(clf) if tables is None else tables, work,
                                min_active, threshold, seed, n_threads, dropout, pick_all)


def scattered_output_gradient(monkeypatch):
    """Make every SlideClassifier train with the output gradient added into an
    (n_labels, H) array instead of the transposed records (``monkeypatch``: pytest's
    fixture, which undoes it)."""
    get_work = SlideClassifier._get_work
    monkeypatch.setattr(SlideClassifier, "_get_work",
                        lambda self, n, m, transposed=True, scatter=True:
                        get_work(self, n, m, False, scatter))


def fail_on_batch(monkeypatch, n, exc=KeyboardInterrupt):
    """Make the ``n``-th training batch of any SlideClassifier from now on raise
    ``exc`` (the ones before train as usual)."""
    train = SlideClassifier._train_batch
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise exc
        return train(self, *args, **kwargs)

    monkeypatch.setattr(SlideClassifier, "_train_batch", failing)


def query_tables(params, offsets, ids, vec, threshold=1):
    """Ids found in at least ``threshold`` of the L buckets of ``vec`` in the tables
    ``offsets`` / ``ids`` built with the hash functions ``params``, sorted: a Python
    reference of the retrieval."""
    _, buckets = hash_codes(params, vec)
    counts = {}
    for t in range(offsets.shape[0]):
        b = buckets[t]
        for j in ids[t, offsets[t, b]:offsets[t, b + 1]].tolist():
            counts[j] = counts.get(j, 0) + 1
    return np.array(sorted(i for i, c in counts.items() if c >= threshold), dtype=np.int64)
