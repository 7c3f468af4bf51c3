"""
Training cost against the number of labels (Amazon-670K shape)
==============================================================

The cost of a full softmax grows with the number of labels: every training sample
computes, and updates, every output neuron. SLIDE computes only the neurons in the
sample's *active set* (its true labels, the neurons its hash buckets retrieve, and
random ones up to ``min_active``), whose size grows far more slowly.

This example measures both on synthetic data of the shape of Amazon-670K
(:func:`~slidelearn.datasets.make_extreme_classification` with 135,909 features, about
75 non-zeros and 5 labels per row, no real data needed) for 10,000, 100,000 and
670,091 labels (2,000, 10,000 and 50,000 in quick mode, which the documentation build
uses): training samples per second and output neurons computed per sample (the
``mean_active_`` attribute). The network is the same in both cases (sparse input, 128
ReLU units, one output per label). The full softmax is
:class:`~slidelearn.SlideClassifier` itself with ``min_active`` equal to the number of
labels, so that every output neuron is in every active set: same code, same threads,
no sampling.
"""

# %%
# Settings
# --------
import os
import time

import matplotlib.pyplot as plt
import numpy as np

from slidelearn import SlideClassifier
from slidelearn.datasets import make_extreme_classification

# SLIDELEARN_QUICK_EXAMPLES=1 (quick mode, set by the documentation build) uses
# smaller label counts and fewer rows.
QUICK = os.environ.get("SLIDELEARN_QUICK_EXAMPLES", "0") not in ("", "0")

label_counts = [2_000, 10_000, 50_000] if QUICK else [10_000, 100_000, 670_091]
n_features = 135_909
n_warmup = 256  # the first partial_fit call also allocates the model: not timed
n_timed = {"SLIDE": 2_048 if QUICK else 6_400, "full softmax": 256}


def make_estimator(kind, n_labels):
    """A SlideClassifier with hash-sampled ("SLIDE") or full softmax training."""
    if kind == "SLIDE":
        # SLIDE's sampling (the tables, DWTA K=4, L=50); the default draws shared
        # negatives (half log-uniform, half uniform), see the time-to-accuracy benchmark
        return SlideClassifier(negative_sampling="lsh", random_state=0)
    # Every output neuron is active: min_active = n_labels. The hash tables are then
    # of no use, so one table and no rehash keep their cost out of the timing.
    return SlideClassifier(min_active=n_labels, n_tables=1, rehash_interval=10**9,
                           random_state=0)


# %%
# Measure
# -------
# For each label count we generate the rows, make one untimed ``partial_fit`` call (it
# allocates the weights and Adam moments and builds the hash tables), then time a
# second ``partial_fit`` call over fresh rows. ``partial_fit`` trains one epoch over the
# rows it is given, so samples/s is rows divided by the time of that call. SLIDE's
# default ``rehash_interval`` is 6,400 samples: in full mode its timed call includes
# one rebuild of the tables from the current weights.
results = []  # (n_labels, kind, samples/s, mean active neurons per sample)
for n_labels in label_counts:
    n_rows = n_warmup + max(n_timed.values())
    X, Y = make_extreme_classification(n_samples=n_rows, n_features=n_features,
                                       n_labels=n_labels, n_nonzeros=75,
                                       n_labels_per_sample=5, random_state=0)
    for kind in ("SLIDE", "full softmax"):
        clf = make_estimator(kind, n_labels)
        clf.partial_fit(X[:n_warmup], Y[:n_warmup], classes=np.arange(n_labels))
        timed = slice(n_warmup, n_warmup + n_timed[kind])
        t0 = time.perf_counter()
        clf.partial_fit(X[timed], Y[timed])
        seconds = time.perf_counter() - t0
        results.append((n_labels, kind, n_timed[kind] / seconds, clf.mean_active_))
        print(f"{n_labels:>8,} labels  {kind:<13} {n_timed[kind] / seconds:9,.0f} samples/s"
              f"  {clf.mean_active_:9,.0f} active neurons/sample  ({clf.n_threads_} threads)")
        del clf  # free the weights before the next model

# %%
# Results
# -------
# First a check that the full softmax computed every output neuron for every sample.
full = [(n, act) for n, kind, _, act in results if kind == "full softmax"]
print("full softmax: mean_active_ == number of labels:", all(act == n for n, act in full))
print(f"{'labels':>8} {'SLIDE samples/s':>16} {'full samples/s':>15} {'speed-up':>9} "
      f"{'SLIDE active':>13} {'share of labels':>16}")
by = {(n, k): (sps, act) for n, k, sps, act in results}
for n in label_counts:
    (s_sps, s_act), (f_sps, _) = by[n, "SLIDE"], by[n, "full softmax"]
    print(f"{n:8,} {s_sps:16,.0f} {f_sps:15,.0f} {s_sps / f_sps:8.1f}x "
          f"{s_act:13,.0f} {s_act / n:16.2%}")

# %%
# The throughput of the full softmax falls about in proportion to the number of
# labels, since every sample computes every neuron. SLIDE computes a small, slowly
# growing number of neurons per sample (right panel), so its throughput falls much more
# slowly and the speed-up is large at the larger label counts. (Timings on a machine
# shared with other work vary from run to run; the neuron counts do not.)
#
# SLIDE still slows down somewhat. Its active set grows: with the default K=4 DWTA
# codes of 8 values a table has 8**4 = 4,096 buckets, so 670,091 neurons fill most
# buckets up to ``bucket_size=128`` and the union of L=50 buckets approaches 6,400
# neurons (a larger K makes more, smaller buckets). Larger weight matrices also fit the
# CPU caches less well, and rebuilding the tables hashes every output neuron. The
# recorded :ref:`benchmarks` use tuned tables (``bucket_size=512``,
# ``active_threshold=2``).
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
for kind, marker in (("SLIDE", "o-"), ("full softmax", "s--")):
    n, sps, act = zip(*[(r[0], r[2], r[3]) for r in results if r[1] == kind])
    ax1.loglog(n, sps, marker, label=kind)
    ax2.loglog(n, act, marker, label=kind)
ax1.set_xlabel("number of labels")
ax1.set_ylabel("training samples / s")
ax1.legend()
ax2.set_xlabel("number of labels")
ax2.set_ylabel("output neurons computed per sample")
ax2.legend()
fig.suptitle(f"Amazon-670K shape ({n_features:,} features, hidden 128), synthetic data")
fig.tight_layout()
plt.show()
