"""
Tuning the hash tables with GridSearchCV
========================================

:class:`~slidelearn.SlideClassifier` is a scikit-learn estimator, so its hash
parameters can be tuned with :class:`~sklearn.model_selection.GridSearchCV` and a
precision@k scorer from :func:`slidelearn.metrics.make_precision_at_k_scorer`. This
example searches over the hash family, the number of codes per bucket id (K,
``n_codes``) and the number of tables (L, ``n_tables``) on the Bibtex training set
with 3-fold cross-validation, then scores the best model on the test set.

The data are read from ``../shared/data/bibtex`` relative to the repository root (or
from ``$SLIDELEARN_DATA/bibtex``).
"""

# %%
# Load the data
# -------------
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV, KFold

from slidelearn import SlideClassifier
from slidelearn.datasets import load_xc_repository, find_shared_data
from slidelearn.metrics import make_precision_at_k_scorer, precision_at_k

# the examples folder (sphinx-gallery runs the examples there and defines no __file__)
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

# SLIDELEARN_QUICK_EXAMPLES=1 (set by the documentation build) searches fewer settings
# with fewer epochs.
QUICK = os.environ.get("SLIDELEARN_QUICK_EXAMPLES", "0") not in ("", "0")



data = find_shared_data("bibtex", start=HERE)
X_train, Y_train = load_xc_repository(data / "train.txt")
X_test, Y_test = load_xc_repository(data / "test.txt")
print(f"train {X_train.shape}, test {X_test.shape}, {Y_train.shape[1]} labels")

# %%
# The estimator and the grid
# --------------------------
# Bibtex has only 159 labels. With the default ``min_active="auto"`` every label would
# be in every active set and the tables would not matter for training; with
# ``min_active=20`` the active set is the true labels, the neurons the tables retrieve
# and random ones up to 20 neurons, as it would be with hundreds of thousands of
# labels, when ``negative_sampling="lsh"`` (SLIDE's sampling; the default draws
# negatives shared by a batch's rows instead). ``inference="lsh"`` makes
# ``predict_topk``, and so the scorer, rank only the retrieved neurons: the tables
# matter for prediction too. ``n_jobs=1`` gives reproducible fits.
slide = SlideClassifier(min_active=20, negative_sampling="lsh", inference="lsh",
                        max_iter=3 if QUICK else 6, n_jobs=1, random_state=0)

# K means different things for the two families: a DWTA code takes ``bin_size=8``
# values, a SimHash code only 2, so SimHash needs a larger K for the same selectivity.
if QUICK:
    param_grid = [
        {"hash_family": ["dwta"], "n_codes": [2, 4], "n_tables": [10, 50]},
        {"hash_family": ["simhash"], "n_codes": [6], "n_tables": [10, 50]},
    ]
else:
    param_grid = [
        {"hash_family": ["dwta"], "n_codes": [2, 3, 4], "n_tables": [10, 50]},
        {"hash_family": ["simhash"], "n_codes": [6, 9], "n_tables": [10, 50]},
    ]
scoring = {"P@1": make_precision_at_k_scorer(1), "P@5": make_precision_at_k_scorer(5)}
search = GridSearchCV(slide, param_grid, scoring=scoring, refit="P@1",
                      cv=KFold(3, shuffle=True, random_state=0))
t0 = time.perf_counter()
search.fit(X_train, Y_train)
print(f"{len(search.cv_results_['params'])} settings x 3 folds in "
      f"{time.perf_counter() - t0:.1f} s")

# %%
# The cross-validation results
# ----------------------------
results = pd.DataFrame(search.cv_results_)
table = results[["param_hash_family", "param_n_codes", "param_n_tables",
                 "mean_test_P@1", "std_test_P@1", "mean_test_P@5", "mean_fit_time",
                 "mean_score_time", "rank_test_P@1"]]
table.columns = ["family", "K", "L", "P@1", "P@1 std", "P@5", "fit s", "score s", "rank"]
print(table.sort_values("rank").round(4).to_string(index=False))

# %%
# Small K and many tables retrieve more neurons for each sample: better precision,
# usually for longer fits (the timings of such short fits are noisy). The best
# setting, refitted on the whole training set, scored on the test set with LSH
# inference, as in the search, and with exact inference over every label:
best = search.best_estimator_
print("best parameters:", search.best_params_)
for mode in ("lsh", "exact"):
    labels, _ = best.predict_topk(X_test, k=5, inference=mode)
    print(f"test, {mode:>5} inference: P@1 {precision_at_k(Y_test, labels, k=1):.4f}, "
          f"P@5 {precision_at_k(Y_test, labels, k=5):.4f}")

# %%
# Cross-validated precision@1 of every setting (bars: mean, lines: one standard
# deviation over the folds) and its mean fit time.
results["setting"] = [f"{p['hash_family']} K={p['n_codes']} L={p['n_tables']}"
                      for p in results["params"]]
results = results.sort_values("mean_test_P@1")
colors = results["param_hash_family"].map({"dwta": "tab:blue", "simhash": "tab:orange"})

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 0.35 * len(results) + 1.5), sharey=True)
ax1.barh(results["setting"], results["mean_test_P@1"], xerr=results["std_test_P@1"],
         color=colors)
ax1.set_xlabel("cross-validated precision@1 (LSH inference)")
ax1.set_xlim(0, 1.1 * results["mean_test_P@1"].max())
ax2.barh(results["setting"], results["mean_fit_time"], color=colors)
ax2.set_xlabel("mean fit time (s)")
fig.suptitle("GridSearchCV over SlideClassifier hash parameters, Bibtex")
fig.tight_layout()
plt.show()
