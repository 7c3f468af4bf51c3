"""
Word embeddings from text8 with SlideClassifier
===============================================

A word2vec-style model is a classifier with one output per word of the vocabulary:
the input is the centre word (a one-hot sparse row), the labels are the words around
it. Its output layer is as wide as the vocabulary, the kind of layer a sampled softmax
is made for, and its input layer learns one vector per word: words used in the
same contexts get similar vectors.

We train :class:`~slidelearn.SlideClassifier` on the first 10 MB of text8 (cleaned
English Wikipedia, about 1.7 million words), read from
``../shared/data/text8-10M/text8_first10M.txt`` relative to the repository root (or from
``$SLIDELEARN_DATA/text8-10M``), then look at the nearest neighbours of a few words in
the learned input embeddings.
"""

# %%
# Read the text and build the vocabulary
# --------------------------------------
import os
import time
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA

from slidelearn.datasets import find_shared_data
from slidelearn import SlideClassifier

# the examples folder (sphinx-gallery runs the examples there and defines no __file__)
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

# SLIDELEARN_QUICK_EXAMPLES=1 (set by the documentation build) uses fewer words.
QUICK = os.environ.get("SLIDELEARN_QUICK_EXAMPLES", "0") not in ("", "0")



words = (find_shared_data("text8-10M", start=HERE) / "text8_first10M.txt").read_text().split()
print(f"{len(words):,} words")

# The most frequent words form the vocabulary; the others are dropped from the text.
vocab_size = 5_000 if QUICK else 10_000
vocab, counts = zip(*Counter(words).most_common(vocab_size))
vocab, counts = np.array(vocab), np.array(counts)
index = {w: i for i, w in enumerate(vocab)}
ids = np.array([index.get(w, -1) for w in words])
print(f"vocabulary of {vocab_size:,} words covers {np.mean(ids >= 0):.1%} of the text")
ids = ids[ids >= 0]

# %%
# Subsample frequent words as word2vec does: a word of frequency ``f`` is kept with
# probability ``sqrt(t / f) + t / f`` (``t = 1e-4``), so "the" and "of" no longer
# dominate the contexts.
rng = np.random.default_rng(0)
freq = counts / counts.sum()
keep = np.minimum(1.0, np.sqrt(1e-4 / freq) + 1e-4 / freq)
ids = ids[rng.random(len(ids)) < keep[ids]]
print(f"{len(ids):,} words after subsampling")

# %%
# Centre word in, context words out
# ---------------------------------
# Row ``i`` of ``X`` is the one-hot vector of a centre word; row ``i`` of ``Y`` marks
# the words up to ``window`` positions before and after it (a multi-label indicator
# with up to ``2 * window`` labels).
window = 4
centre = np.arange(window, len(ids) - window)
if QUICK:  # 400,000 positions drawn at random
    centre = np.sort(rng.choice(centre, size=400_000, replace=False))
offsets = [o for o in range(-window, window + 1) if o != 0]
context = np.stack([ids[centre + o] for o in offsets], axis=1)

n = len(centre)
X = sp.csr_matrix((np.ones(n, dtype=np.float32), ids[centre], np.arange(n + 1)),
                  shape=(n, vocab_size))
Y = sp.csr_matrix((np.ones(context.size, dtype=np.float32),
                   (np.repeat(np.arange(n), len(offsets)), context.ravel())),
                  shape=(n, vocab_size))
Y.data[:] = 1.0  # a word seen twice in a window is still one label
print(f"X {X.shape}, Y {Y.shape}, {Y.nnz / n:.1f} context words per row")

# %%
# Train
# -----
# One hidden layer of 100 units: the input layer's weight matrix holds one
# 100-dimensional vector per word. Each batch scores its rows' context words and 250
# "negatives" (as word2vec has them) drawn for the whole batch, half from the
# log-uniform law over frequency ranks and half uniformly, out of the ``vocab_size``
# outputs: the default
# ``negative_sampling="auto"`` (``negative_sampling="lsh"`` would have SLIDE's hash
# tables choose a per-row active set instead). No L2 penalty (``alpha=0``): it would
# shrink the vector of a word at each of its updates. Quick mode trains one epoch over
# 400,000 rows with a larger step size; full mode three epochs over all rows.
clf = SlideClassifier(
    hidden_layer_sizes=(100,),
    min_active=250,
    alpha=0.0,
    learning_rate=1e-2 if QUICK else 3e-3,
    learning_rate_decay=1.0,
    batch_size=256,
    max_iter=1 if QUICK else 3,
    random_state=0,
    verbose=1,
)
t0 = time.perf_counter()
clf.fit(X, Y)
print(f"trained {clf.n_iter_} epoch(s) on {n:,} rows in {time.perf_counter() - t0:.1f} s, "
      f"{clf.mean_active_:.0f} active output neurons per row (of {vocab_size:,})")

# %%
# Nearest neighbours
# ------------------
# ``coefs_[0]`` is the input layer, of shape (n_features, hidden units): row ``w`` is
# the embedding of word ``w``. Neighbours are ranked by cosine similarity.
# (``coefs_[-1]``, the output layer, holds a second vector per word, its "context"
# vector, which can be used the same way.)
emb = clf.coefs_[0]
emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)


def neighbours(word, n_neighbours=8):
    """The words of highest cosine similarity to ``word``, best first."""
    sim = emb @ emb[index[word]]
    best = np.argsort(-sim)[: n_neighbours + 1]
    return [vocab[j] for j in best if j != index[word]][:n_neighbours]


for word in ["king", "france", "computer", "three", "music", "war"]:
    print(f"{word:>9}: {', '.join(neighbours(word))}")

# %%
# Words of a few groups in the plane of the first two principal components of their
# embeddings: words of the same group sit together.
groups = {
    "numbers": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "countries": ["france", "germany", "spain", "italy", "russia", "china", "japan",
                  "england"],
    "music": ["music", "jazz", "rock", "opera", "piano", "guitar", "songs"],
    "computing": ["computer", "software", "hardware", "internet", "program", "data"],
}
plot_words = [w for ws in groups.values() for w in ws if w in index]
xy = PCA(n_components=2).fit_transform(emb[[index[w] for w in plot_words]])
pos = dict(zip(plot_words, xy))

fig, ax = plt.subplots(figsize=(6.5, 5))
for group, ws in groups.items():
    pts = np.array([pos[w] for w in ws if w in pos])
    ax.scatter(pts[:, 0], pts[:, 1], label=group)
    for w in ws:
        if w in pos:
            ax.annotate(w, pos[w], textcoords="offset points", xytext=(3, 3), fontsize=8)
ax.set_xlabel("first principal component")
ax.set_ylabel("second principal component")
ax.set_title("text8 word embeddings (SlideClassifier input layer)")
ax.legend()
fig.tight_layout()
plt.show()
