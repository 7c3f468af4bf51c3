"""
How many true labels do the hash tables retrieve?
=================================================

For every sample, :class:`~slidelearn.SlideClassifier` hashes the last hidden
activation and *retrieves* the output neurons in its buckets of the L hash tables:
these are the neurons the hash-sampled softmax computes in training, and the only ones
``inference="lsh"`` ranks. A good table setting retrieves the sample's true labels (the
neurons that should score highest) while retrieving few neurons in all.

This example trains a model for each of several settings (hash family, K codes per
bucket id, L tables) on the Bibtex training set and measures, on the test set, the
mean number of neurons retrieved per row against the *recall*: the fraction of a row's
true labels that are among them, averaged over rows. It also prints the precision@1 of
LSH inference, which a low recall bounds. The data are read from
``../shared/data/bibtex`` relative to the repository root (or from
``$SLIDELEARN_DATA/bibtex``).
"""

# %%
# Load the data
# -------------
import os
from functools import lru_cache
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp

from slidelearn import SlideClassifier
from slidelearn.datasets import load_xc_repository, find_shared_data
from slidelearn.metrics import precision_at_k

# the examples folder (sphinx-gallery runs the examples there and defines no __file__)
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

# SLIDELEARN_QUICK_EXAMPLES=1 (set by the documentation build) tries fewer settings
# with fewer epochs.
QUICK = os.environ.get("SLIDELEARN_QUICK_EXAMPLES", "0") not in ("", "0")



data = find_shared_data("bibtex", start=HERE)
X_train, Y_train = load_xc_repository(data / "train.txt")
X_test, Y_test = load_xc_repository(data / "test.txt")
n_labels = Y_train.shape[1]
print(f"train {X_train.shape}, test {X_test.shape}, {n_labels} labels")

# %%
# What the tables retrieve
# ------------------------
# The last hidden activation of a row follows from the fitted weights (``coefs_`` and
# ``intercepts_``). Reading the buckets needs the estimator's hash functions and tables,
# which slidelearn does not expose publicly: ``retrieved_votes`` uses the private
# attribute ``_lsh`` (the tables that training and LSH inference use) and the private
# kernel ``hash_vectors``. They may change without notice.
from slidelearn._slide._hashing import hash_vectors  # noqa: E402  (private)


def last_hidden(clf, X):
    """Activations of the last hidden layer (ReLU) of the rows of X."""
    h = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = np.maximum(h @ W + b, 0)
    return np.ascontiguousarray(h, dtype=np.float32)


def retrieved_votes(clf, X):
    """Sparse (n_rows, n_labels) matrix: in how many of the L tables each output
    neuron was found for each row (absent: 0)."""
    lsh = clf._lsh
    buckets = hash_vectors(lsh.params, last_hidden(clf, X))  # (L, n_rows)
    # bucket b of table t holds ids[t, offsets[t, b]:offsets[t, b + 1]]
    offsets, ids = lsh.offsets, lsh.ids
    n_rows = X.shape[0]
    rows, cols = [], []
    for t, b in enumerate(buckets):
        start = offsets[t, b].astype(np.int64)
        size = offsets[t, b + 1] - start
        # positions start[i], ..., start[i] + size[i] - 1 of every row, concatenated
        pos = np.repeat(start - np.cumsum(size) + size, size) + np.arange(size.sum())
        rows.append(np.repeat(np.arange(n_rows), size))
        cols.append(ids[t, pos])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    # duplicate (row, neuron) entries are summed: the number of tables that found it
    return sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)),
                         shape=(n_rows, len(clf.classes_)))


def size_and_recall(votes, Y, threshold=1):
    """Mean retrieved neurons per row and mean recall of the true labels, counting
    the neurons found in at least ``threshold`` tables."""
    found = votes >= threshold
    n_true = np.asarray(Y.sum(axis=1)).ravel()
    hits = np.asarray(found.multiply(Y).sum(axis=1)).ravel()
    keep = n_true > 0
    return found.sum() / votes.shape[0], np.mean(hits[keep] / n_true[keep])


# %%
# Train one model per setting
# ---------------------------
# As in :ref:`sphx_glr_auto_examples_plot_grid_search_hash.py`, ``min_active=20`` keeps
# the active sets small, as they are with hundreds of thousands of labels, so that the
# tables shape training too (with the default ``min_active="auto"`` every one of the 159
# labels would be active). K ranges differ by family: a SimHash code is one bit, a
# WTA / DWTA code takes ``bin_size=8`` values and a DOPH code up to 128.
if QUICK:
    family_K = {"simhash": [6, 9], "wta": [2, 3], "dwta": [2, 3], "doph": [4, 8]}
    dwta_L = {2: [10, 50], 3: [10, 50]}
else:
    family_K = {"simhash": [4, 6, 9, 12], "wta": [1, 2, 3, 4], "dwta": [1, 2, 3, 4],
                "doph": [3, 4, 6, 8]}
    dwta_L = {2: [5, 10, 25, 50, 100], 3: [5, 10, 25, 50, 100]}
max_iter = 3 if QUICK else 6


@lru_cache  # a setting of both panels is trained once
def evaluate(hash_family, n_codes, n_tables):
    """Fit a model with these hash parameters; print its test retrieval and LSH P@1,
    return the mean retrieved neurons per row and the recall (threshold 1)."""
    # negative_sampling="lsh": SLIDE's sampling, where the tables choose the active
    # sets in training too (the default draws shared negatives instead)
    clf = SlideClassifier(hash_family=hash_family, n_codes=n_codes, n_tables=n_tables,
                          min_active=20, negative_sampling="lsh", max_iter=max_iter,
                          random_state=0)
    clf.fit(X_train, Y_train)
    votes = retrieved_votes(clf, X_test)
    size1, recall1 = size_and_recall(votes, Y_test, threshold=1)
    size2, recall2 = size_and_recall(votes, Y_test, threshold=2)
    top1, _ = clf.predict_topk(X_test, k=1, inference="lsh")
    p1 = precision_at_k(Y_test, top1, k=1)
    print(f"{hash_family:>8} K={n_codes:<2} L={n_tables:<3} "
          f"retrieved {size1:6.1f} recall {recall1:.3f} | threshold 2: retrieved "
          f"{size2:6.1f} recall {recall2:.3f} | LSH P@1 {p1:.4f}")
    return size1, recall1


by_family = {fam: [evaluate(fam, K, 50) for K in Ks] for fam, Ks in family_K.items()}
by_L = {K: [evaluate("dwta", K, L) for L in Ls] for K, Ls in dwta_L.items()}

# %%
# Recall against retrieved neurons
# --------------------------------
# Left: the four families with L=50 tables, each point a value of K (labelled); larger
# K makes buckets smaller, so fewer neurons and fewer true labels are retrieved. WTA
# and DWTA nearly coincide: they differ only for bins of 8 coordinates that are all
# zero, rare in this network's hidden activations. Right: DWTA with K=2 and K=3 and a
# growing number of tables L (labelled), which retrieves more of both. The dotted line
# is the recall of as many neurons drawn at random. Points up and to the left are
# better.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
for fam, points in by_family.items():
    size, recall = zip(*points)
    ax1.plot(size, recall, "o-", label=fam)
    for s, r, K in zip(size, recall, family_K[fam]):
        ax1.annotate(f"K={K}", (s, r), textcoords="offset points", fontsize=7,
                     xytext=(4, 4) if fam == "wta" else (4, -10))
ax1.set_title("hash families, L=50 tables")
for K, points in by_L.items():
    size, recall = zip(*points)
    ax2.plot(size, recall, "o-", label=f"dwta, K={K}")
    for s, r, L in zip(size, recall, dwta_L[K]):
        ax2.annotate(f"L={L}", (s, r), textcoords="offset points", xytext=(4, -10),
                     fontsize=7)
ax2.set_title("number of tables")
for ax in (ax1, ax2):
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    grid = np.geomspace(lo, min(hi, n_labels), 50)
    ax.plot(grid, grid / n_labels, "k:", lw=1, label="random neurons")
    ax.set_xlabel(f"neurons retrieved per test row (of {n_labels})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
ax1.set_ylabel("recall of the true labels")
ax1.set_ylim(0, 1.02)
fig.suptitle("Bibtex: what the hash tables of a trained SlideClassifier retrieve")
fig.tight_layout()
plt.show()

# %%
# Every setting retrieves the true labels far better than random neurons, but with
# only 159 labels a high recall needs a large share of them. On a larger problem the
# same measurement on held-out rows is how to choose K and L: a setting that keeps
# ``mean_active_`` small without losing the true labels (see :ref:`slide_hashing`).
