"""Fingerprints of trained models, to show that a refactoring changed no arithmetic.

Run before and after a change (same machine, same build flags) and compare the lines::

    python tools/check_identity.py > before.txt
    ... change, rebuild ...
    python tools/check_identity.py > after.txt
    diff before.txt after.txt

Each line is one fixed-seed fit with ``n_jobs=1`` (and a few with 2 threads, which must give
the same model): the SHA-1 of the learned weights (SlideClassifier's ``coefs_`` and
``intercepts_``) or of the predictions on the training data (DLRM), and the last loss. Only
public attributes are read, so the fingerprints survive a change of the internal state.
"""
import hashlib
import os
import sys

import numpy as np

from slidelearn import DLRMClassifier, DLRMRegressor, SlideClassifier
from slidelearn.datasets import load_xc_repository, make_extreme_classification


def _digest(arrays):
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _slide(name, X, Y, **params):
    clf = SlideClassifier(random_state=0, **params).fit(X, Y)
    print(f"{name:<34} {_digest(clf.coefs_ + clf.intercepts_)} "
          f"loss {clf.loss_curve_[-1]!r} n_iter {clf.n_iter_}", flush=True)


def _dlrm(name, est, X, y):
    est.fit(X, y)
    out = est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)
    print(f"{name:<34} {_digest([out])} loss {est.loss_curve_[-1]!r} "
          f"n_iter {est.n_iter_}", flush=True)


def main():
    data = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    bibtex = os.path.join(data, "bibtex", "train.txt")
    if os.path.exists(bibtex):
        X, Y = load_xc_repository(bibtex)
        _slide("bibtex fp32 1 thread", X, Y, n_jobs=1, max_iter=3)
        _slide("bibtex fp32 2 threads", X, Y, n_jobs=2, max_iter=3)
        _slide("bibtex bf16 1 thread", X, Y, n_jobs=1, max_iter=3, precision="bfloat16")
        _slide("bibtex deep early-stop", X, Y, n_jobs=1, max_iter=4,
               hidden_layer_sizes=(64, 32), early_stopping=True)
    else:
        print(f"(no Bibtex at {bibtex})", file=sys.stderr)
    X, Y = make_extreme_classification(n_samples=3000, n_features=20000, n_labels=100000,
                                       random_state=0)[:2]
    _slide("synthetic 100k labels fp32", X, Y, n_jobs=1, max_iter=2, min_active=200)
    _slide("synthetic 100k labels bf16", X, Y, n_jobs=1, max_iter=2, min_active=200,
           precision="bfloat16")

    rng = np.random.default_rng(0)
    Xd = np.column_stack([rng.integers(0, 50, 3000), rng.integers(0, 30, 3000),
                          rng.normal(size=3000)])
    y = Xd[:, 0] % 7 + Xd[:, 2] + rng.normal(size=3000) * 0.1
    _dlrm("dlrm regressor", DLRMRegressor(categorical_features=[0, 1], max_iter=6, n_jobs=1,
                                          random_state=0), Xd, y)
    _dlrm("dlrm regressor early-stop",
          DLRMRegressor(categorical_features=[0, 1], max_iter=6, early_stopping=True, n_jobs=1,
                        random_state=0), Xd, y)
    _dlrm("dlrm regressor bf16",
          DLRMRegressor(categorical_features=[0, 1], max_iter=3, precision="bfloat16",
                        n_jobs=1, random_state=0), Xd, y)
    _dlrm("dlrm classifier", DLRMClassifier(categorical_features=[0, 1], max_iter=3, n_jobs=1,
                                            random_state=0), Xd, (y > 3).astype(int))


if __name__ == "__main__":
    main()
