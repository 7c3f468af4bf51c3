"""
Rating prediction on MovieLens 100K with DLRMRegressor
======================================================

:class:`~slidelearn.DLRMRegressor` predicts the 100,000 ratings (1 to 5 stars) of
MovieLens 100K from the user and item ids and their side information (gender,
occupation, zip-code region, age, release year and decade, genres). The ids go to
embedding tables, the numeric features to the bottom MLP, and a
:class:`~sklearn.compose.ColumnTransformer` prepares the columns inside a
:class:`~sklearn.pipeline.Pipeline`, so that everything is fitted on the training
ratings only. The estimator keeps its default parameters. The test RMSE on a fixed
random 80/20 split is compared with two baselines: the global mean rating and a user +
item bias model.

The data are read from ``../shared/data/ml-100k`` relative to the repository root (or
from ``$SLIDELEARN_DATA/ml-100k``). MovieLens 100K is for research use only and is not
distributed with slidelearn.
"""

# %%
# Load the ratings
# ----------------
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from slidelearn import DLRMRegressor
from slidelearn.datasets import load_movielens, find_shared_data

# the examples folder (sphinx-gallery runs the examples there and defines no __file__)
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()



ml = load_movielens(find_shared_data("ml-100k", start=HERE))
print(f"{ml.data.shape[0]:,} ratings, {ml.data.shape[1]} columns")
print("categorical:", ml.categorical_features)
print("numeric:", ml.feature_names[len(ml.categorical_features):][:4], "...")

X_train, X_test, y_train, y_test = train_test_split(
    ml.data, ml.target, test_size=0.2, random_state=0)

# %%
# Baselines
# ---------
# The global mean rating, and a user + item bias model
# ``mean + b_user + b_item`` fitted by a few rounds of regularised alternating
# averages (the classic baseline of collaborative filtering).


def fit_biases(users, items, ratings, reg=5.0, n_rounds=10):
    """Global mean and shrunk user and item offsets of the ratings."""
    mean = ratings.mean()
    n_users, n_items = users.max() + 1, items.max() + 1
    b_user, b_item = np.zeros(n_users), np.zeros(n_items)
    for _ in range(n_rounds):
        resid = ratings - mean - b_user[users]
        b_item = np.bincount(items, resid, n_items) / (np.bincount(items, None, n_items) + reg)
        resid = ratings - mean - b_item[items]
        b_user = np.bincount(users, resid, n_users) / (np.bincount(users, None, n_users) + reg)
    return mean, b_user, b_item


# user and item ids are the first two columns; a test id unseen in training gets offset 0
ids_train = X_train[:, :2].astype(int)
ids_test = X_test[:, :2].astype(int)
mean, b_user, b_item = fit_biases(ids_train[:, 0], ids_train[:, 1], y_train)
b_user = np.pad(b_user, (0, max(0, ids_test[:, 0].max() + 1 - len(b_user))))
b_item = np.pad(b_item, (0, max(0, ids_test[:, 1].max() + 1 - len(b_item))))
bias_pred = np.clip(mean + b_user[ids_test[:, 0]] + b_item[ids_test[:, 1]], 1, 5)
rmse_mean = root_mean_squared_error(y_test, np.full(len(y_test), y_train.mean()))
rmse_bias = root_mean_squared_error(y_test, bias_pred)
print(f"global mean      test RMSE {rmse_mean:.4f}")
print(f"user + item bias test RMSE {rmse_bias:.4f}")

# %%
# The DLRM pipeline
# -----------------
# The six id columns (user, item, gender, occupation, zip prefix, release decade) pass
# through unchanged to six embedding tables; the numeric side features go to the bottom
# MLP, which standardises them itself (``feature_scaling="auto"``). Every other
# parameter is a default: among them early stopping on a held-out tenth of the training
# ratings, a baseline of shrunk per-id offsets (``baseline="auto"``) that the network
# learns on from, and the factorization term. A callback records the test error after
# every epoch (the pipeline's preprocessing is fitted by then).
n_ids = len(ml.categorical_features)  # the id columns come first
prep = ColumnTransformer([
    ("ids", "passthrough", list(range(n_ids))),
    ("numeric", "passthrough", list(range(n_ids, ml.data.shape[1]))),
])
test_rmse = []


def record_test_rmse(est, info):
    test_rmse.append(root_mean_squared_error(y_test, model.predict(X_test)))
    print(f"epoch {info.epoch:2d}: held-out loss {info.validation_score:.4f}, "
          f"test RMSE {test_rmse[-1]:.4f}")


dlrm = DLRMRegressor(categorical_features=list(range(n_ids)),  # the ids come out first
                     random_state=0, callback=record_test_rmse)
model = make_pipeline(prep, dlrm)
model.fit(X_train, y_train)

# %%
# Results
# -------
# Early stopping put back the epoch of lowest held-out loss, and the held-out ratings
# then took one pass (``validation_pass``), so that the final model has seen every
# training rating.
best_epoch = int(np.argmin(dlrm.validation_loss_curve_)) + 1
y_pred = model.predict(X_test)
rmse_dlrm = root_mean_squared_error(y_test, y_pred)
print(f"stopped after {dlrm.n_iter_} epochs, kept epoch {best_epoch}")
print(f"{'model':<22}{'test RMSE':>10}")
for name, rmse in [("global mean", rmse_mean), ("user + item bias", rmse_bias),
                   ("DLRM", rmse_dlrm)]:
    print(f"{name:<22}{rmse:10.4f}")

# %%
# The left panel shows the test RMSE after every epoch and that of the final model
# (the global mean, far above, is left out of it); the right one the predicted
# ratings of the test set for each true rating (boxes: quartiles; whiskers: 5th to 95th
# percentiles). Predictions shrink towards the mean, as a squared-error model's should
# when the ratings are noisy.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
ax1.plot(np.arange(1, len(test_rmse) + 1), test_rmse, "o-", label="DLRM, each epoch")
ax1.plot([best_epoch], [rmse_dlrm], "*", ms=12, label="DLRM, final model")
ax1.axhline(rmse_bias, color="tab:orange", ls="--", label="user + item bias")
ax1.set_xlabel("epoch")
ax1.set_ylabel("test RMSE")
ax1.legend()
stars = np.arange(1, 6)
ax2.boxplot([y_pred[y_test == s] for s in stars], positions=stars, whis=(5, 95),
            showfliers=False)
ax2.plot(stars, stars, "k:", lw=1)
ax2.set_xlabel("true rating")
ax2.set_ylabel("predicted rating")
fig.suptitle("MovieLens 100K, 20% test split")
fig.tight_layout()
plt.show()
