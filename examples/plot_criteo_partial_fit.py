"""
Click-through rate on a Criteo stream with partial_fit
======================================================

Click logs arrive as a stream too large to hold in memory.
:func:`slidelearn.datasets.iter_criteo` reads a file of the Criteo display-advertising
format chunk by chunk, and :meth:`DLRMClassifier.partial_fit
<slidelearn.DLRMClassifier.partial_fit>` trains on each chunk as it comes. After every
chunk we measure the log-loss and ROC AUC on held-out rows and compare the log-loss with
that of the base rate (predicting the click rate seen so far for every row).

The rows are read from ``../shared/data/criteo-sample/train.txt`` relative to the
repository root (or from ``$SLIDELEARN_DATA/criteo-sample``): 1,000 real rows of the
Criteo challenge data, each a click label, 13 integer counts and 26 hashed categorical
values. That is a tiny sample, so the numbers are noisy; the same loop runs unchanged
on the full 45-million-row file. The example takes a few seconds.
"""

# %%
# Read the stream
# ---------------
# ``iter_criteo`` takes ``log(1 + count)`` of the counts and maps each categorical
# value to an id below ``n_hash_bins`` (id 0 is "missing"), the size of each embedding
# table. With only 1,000 rows we keep the chunks in a list and hold out the last two
# (200 rows) for testing; on a real stream the training chunks would be consumed as
# they are read.
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from slidelearn import DLRMClassifier
from slidelearn.datasets import CRITEO_CATEGORICAL_FEATURES, iter_criteo, find_shared_data

# the examples folder (sphinx-gallery runs the examples there and defines no __file__)
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

n_hash_bins = 1000
criteo = find_shared_data("criteo-sample", start=HERE) / "train.txt"
chunks = list(iter_criteo(criteo, chunksize=100,
                          n_hash_bins=n_hash_bins))
train_chunks, test_chunks = chunks[:-2], chunks[-2:]
X_test = np.vstack([X for X, _ in test_chunks])
y_test = np.concatenate([y for _, y in test_chunks])
print(f"{len(train_chunks)} training chunks of {len(train_chunks[0][1])} rows; "
      f"{len(y_test)} test rows with click rate {y_test.mean():.3f}")
print(f"columns: 13 counts, then {len(CRITEO_CATEGORICAL_FEATURES)} categorical ids")

# %%
# Train chunk by chunk
# --------------------
# One embedding table of ``n_hash_bins`` rows per categorical column, small MLPs (the
# sample is small), Adagrad. ``classes`` must be given on the first ``partial_fit``
# call, since a chunk may lack one of the classes.
clf = DLRMClassifier(
    categorical_features=CRITEO_CATEGORICAL_FEATURES,
    table_sizes=n_hash_bins,
    embedding_dim=8,
    bottom_mlp=(16,),
    top_mlp=(16,),
    n_jobs=1,
    random_state=0,
)
rows_seen, clicks_seen = 0, 0
history = []  # (rows seen, model log-loss, base-rate log-loss, ROC AUC)
for X, y in train_chunks:
    clf.partial_fit(X, y, classes=[0, 1])
    rows_seen += len(y)
    clicks_seen += y.sum()
    p_click = clf.predict_proba(X_test)[:, 1]
    base = np.full(len(y_test), clicks_seen / rows_seen)
    history.append((rows_seen, log_loss(y_test, p_click), log_loss(y_test, base),
                    roc_auc_score(y_test, p_click)))

print(f"{'rows seen':>9} {'log-loss':>9} {'base rate':>10} {'ROC AUC':>8}")
for rows, ll, ll_base, auc in history:
    print(f"{rows:9d} {ll:9.4f} {ll_base:10.4f} {auc:8.3f}")

# %%
# The model ranks the held-out clicks better than chance (an AUC above 0.5) from the
# first chunks on, and its log-loss stays below the base rate's. With 200 test rows (a
# few dozen clicks) the curves are noisy: the same loop on millions of rows gives smooth
# ones.
rows, ll, ll_base, auc = np.array(history).T
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
ax1.plot(rows, ll, "o-", label="DLRMClassifier")
ax1.plot(rows, ll_base, "s--", label="base rate")
ax1.set_xlabel("training rows seen")
ax1.set_ylabel("held-out log-loss")
ax1.legend()
ax2.plot(rows, auc, "o-")
ax2.axhline(0.5, color="gray", ls=":", label="chance")
ax2.set_xlabel("training rows seen")
ax2.set_ylabel("held-out ROC AUC")
ax2.legend()
fig.suptitle("Criteo sample, one partial_fit call per chunk of 100 rows")
fig.tight_layout()
plt.show()
