"""Defaults study: slidelearn's estimators with given parameters against peers, on the
real data sets of ``../shared/data``.

Every configuration (data set, method, parameters, seed, threads) runs in a process of its
own, so that no run inherits another's threads, memory or OpenMP runtime; the driver
collects one JSON record a run. The runs go seed by seed across the configurations, so
that a slower stretch of the machine falls on every method alike.

Data sets and metrics
---------------------
- ``bibtex``, ``go-seq``, ``go-derisi`` (multi-label, the published train / test split):
  P@1/3/5, PSP@1/3/5 (Jain et al. propensities, A=0.55, B=1.5), the number of distinct
  top-1 labels and of distinct ranked top-5 lists over the test rows (one top-5 list for
  every row is a collapse to one answer; one top-1 label need not be, where one label is
  in nearly every row, as on the GO sets), fit and predict seconds, model bytes. The
  label prior (the 5 most frequent training labels for every row) is reported as a
  method.
- ``text8``: skip-gram over ``../shared/data/text8-10M`` with the whole vocabulary (centre
  word in, the distinct words within +-2 positions out): the first ``--text8-train``
  positions to train, 5,000 positions from the last 10% of the text to test.
- ``movielens`` (DLRM): ``u.data`` joined with ``u.user`` (user, item, age, occupation,
  sex; age numeric), a random 80/20 split (``random_state=0``): test RMSE. Baselines: the
  user + item bias model, and a matrix factorisation trained by SGD (biases + rank-32
  factors, in numpy, in this file).
- ``movielens-time``: the same rows, the earliest 80% of the ratings (by timestamp) to
  train and the latest 20% to test: a check kept apart from the random split that the
  DLRM options were chosen on.
- ``criteo`` (DLRM classifier): the 1,000 Criteo rows, a random 80/20 split: test log
  loss and ROC AUC; the base rate's log loss as baseline.

Peers: napkinXC (``PLT``) and omikuji (Parabel-like trees) from PyPI, at their defaults,
with the same number of threads and the same seeds (their fit times are compared with
ours, so they are repeated as often). On Bibtex and the GO sets also what a scikit-learn
user tries first: one logistic regression per label (``OneVsRestClassifier`` of
``LogisticRegression`` at its defaults after ``StandardScaler(with_mean=False)``), one
run (it has no seed).

Usage
-----
::

    # one run, printed as JSON (what the driver calls)
    python benchmarks/bench_defaults.py run --data bibtex --method slide \
        --params '{"alpha": 0}' --seed 0 --threads 2

    # the recorded study: defaults (as given by --slide-params / --dlrm-params, default:
    # the library defaults) and the peers, 5 seeds x 1 and 2 threads
    python benchmarks/bench_defaults.py study --out benchmarks/results/defaults_DATE.json

The JSON result holds the machine, command and every record; ``make_report.py`` renders it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("SLIDELEARN_DATA", os.path.join(HERE, "..", "..", "shared", "data"))

XC_SETS = {"bibtex": "bibtex", "go-seq": "go-yeast/seq", "go-derisi": "go-yeast/derisi"}


# ---------------------------------------------------------------- data
def load_xc(name):
    from slidelearn.datasets import load_xc_repository
    folder = os.path.join(DATA, XC_SETS[name])
    X_train, Y_train = load_xc_repository(os.path.join(folder, "train.txt"))
    X_test, Y_test = load_xc_repository(os.path.join(folder, "test.txt"))
    n_labels = max(Y_train.shape[1], Y_test.shape[1])
    Y_train.resize((Y_train.shape[0], n_labels))
    Y_test.resize((Y_test.shape[0], n_labels))
    return X_train, Y_train.tocsr(), X_test, Y_test.tocsr()


def load_text8(n_train):
    """Skip-gram rows of text8: train on the first ``n_train`` positions, test on 5,000
    positions drawn from the last 10% of the text (the vocabulary is the whole text's)."""
    from slidelearn.datasets import load_text8_skipgram
    path = os.path.join(DATA, "text8-10M", "text8_first10M.txt")
    train = load_text8_skipgram(path, n_positions=n_train)
    start = int(0.9 * train.n_corpus_words)
    test = load_text8_skipgram(path, start=start)
    rows = np.random.default_rng(0).choice(test.data.shape[0], 5000, replace=False)
    rows.sort()
    return train.data, train.target.tocsr(), test.data[rows], test.target.tocsr()[rows]


def load_movielens_frame(split="random"):
    """MovieLens 100K as (X_train, X_test, y_train, y_test): a random 80/20 split, or
    with ``split="time"`` the earliest 80% of the ratings against the latest 20%."""
    import pandas as pd
    folder = os.path.join(DATA, "ml-100k")
    ratings = pd.read_csv(os.path.join(folder, "u.data"), sep="\t",
                          names=["user", "item", "rating", "ts"])
    users = pd.read_csv(os.path.join(folder, "u.user"), sep="|",
                        names=["user", "age", "sex", "occ", "zip"])
    df = ratings.merge(users, on="user", how="left")
    X = df[["user", "item", "age", "occ", "sex"]].copy()
    X["occ"] = X["occ"].astype("category").cat.codes
    X["sex"] = (X["sex"] == "M").astype(int)
    X["age"] = X["age"].astype(float)
    y = df["rating"].to_numpy(dtype=np.float64)
    if split == "time":
        order = np.argsort(df["ts"].to_numpy(), kind="stable")
        cut = int(0.8 * len(order))
        tr, te = order[:cut], order[cut:]
        return X.iloc[tr], X.iloc[te], y[tr], y[te]
    from sklearn.model_selection import train_test_split
    return train_test_split(X, y, test_size=0.2, random_state=0)


def load_criteo_rows():
    from slidelearn.datasets import iter_criteo
    X, y = next(iter_criteo(os.path.join(DATA, "criteo-sample", "train.txt"),
                            n_hash_bins=10000))
    from sklearn.model_selection import train_test_split
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


# ---------------------------------------------------------------- metrics
def xc_metrics(top, Y_test, Y_train):
    from slidelearn.metrics import (jain_propensity, precision_at_k,
                                    propensity_scored_precision_at_k)
    prop = jain_propensity(Y_train, n_labels=Y_test.shape[1])
    out = {}
    for k in (1, 3, 5):
        out[f"p@{k}"] = float(precision_at_k(Y_test, top[:, :k], k=k))
        out[f"psp@{k}"] = float(propensity_scored_precision_at_k(Y_test, top[:, :k], prop, k=k))
    out["distinct_top1"] = int(np.unique(top[:, 0]).size)
    out["distinct_top5"] = int(np.unique(top[:, :5], axis=0).shape[0])
    return out


def model_bytes(obj):
    import pickle
    try:
        return len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # peers that keep their model in native memory
        return None


# ---------------------------------------------------------------- methods
def run_xc(data, method, params, seed, threads, text8_train):
    if data == "text8":
        X_train, Y_train, X_test, Y_test = load_text8(text8_train)
    else:
        X_train, Y_train, X_test, Y_test = load_xc(data)
    rec = {}
    if method == "prior":
        counts = np.asarray(Y_train.sum(axis=0)).ravel()
        top = np.tile(np.argsort(-counts, kind="stable")[:5], (X_test.shape[0], 1))
        rec.update(fit_s=0.0, predict_s=0.0)
    elif method == "slide":
        from slidelearn import SlideClassifier
        clf = SlideClassifier(random_state=seed, n_jobs=threads, **params)
        t = time.perf_counter()
        clf.fit(X_train, Y_train)
        rec["fit_s"] = time.perf_counter() - t
        t = time.perf_counter()
        top, _ = clf.predict_topk(X_test, k=5)
        rec["predict_s"] = time.perf_counter() - t
        rec.update(n_iter=clf.n_iter_, loss=clf.loss_curve_[-1], model_bytes=model_bytes(clf))
        if clf.validation_scores_ is not None:
            rec["best_validation"] = clf.best_validation_score_
    elif method == "napkinxc":
        from napkinxc.models import PLT
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            model = PLT(os.path.join(tmp, "m"), threads=threads, seed=seed, **params)
            rows = [Y_train.indices[Y_train.indptr[i]:Y_train.indptr[i + 1]].tolist()
                    for i in range(Y_train.shape[0])]
            t = time.perf_counter()
            model.fit(X_train, rows)
            rec["fit_s"] = time.perf_counter() - t
            t = time.perf_counter()
            pred = model.predict(X_test, top_k=5)
            rec["predict_s"] = time.perf_counter() - t
            rec["model_bytes"] = sum(os.path.getsize(os.path.join(r, f))
                                     for r, _, fs in os.walk(tmp) for f in fs)
        top = np.array([(p + [-1] * 5)[:5] for p in pred])
    elif method == "omikuji":
        import omikuji
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "train.txt")
            _write_xc(path, X_train, Y_train)
            hyper = omikuji.Model.default_hyper_param()
            for key, value in params.items():
                setattr(hyper, key, value)
            t = time.perf_counter()
            model = omikuji.Model.train_on_data(path, hyper, n_threads=threads)
            rec["fit_s"] = time.perf_counter() - t
            model.save(os.path.join(tmp, "model"))
            rec["model_bytes"] = sum(os.path.getsize(os.path.join(r, f))
                                     for r, _, fs in os.walk(os.path.join(tmp, "model"))
                                     for f in fs)
        X_test = X_test.tocsr()
        model.init_prediction_thread_pool(threads)
        t = time.perf_counter()
        top = np.full((X_test.shape[0], 5), -1)
        for i in range(X_test.shape[0]):
            lo, hi = X_test.indptr[i], X_test.indptr[i + 1]
            feats = list(zip(X_test.indices[lo:hi].tolist(), X_test.data[lo:hi].tolist()))
            pred = [label for label, _ in model.predict(feats, top_k=5)]
            top[i, :len(pred)] = pred
        rec["predict_s"] = time.perf_counter() - t
    elif method == "logreg":
        import warnings
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        model = make_pipeline(StandardScaler(with_mean=False), OneVsRestClassifier(
            LogisticRegression(**params), n_jobs=threads))
        t = time.perf_counter()
        with warnings.catch_warnings():
            # labels that no training row has get a constant predictor, with a warning each
            warnings.simplefilter("ignore", UserWarning)
            model.fit(X_train, Y_train)
        rec["fit_s"] = time.perf_counter() - t
        t = time.perf_counter()
        scores = model.decision_function(X_test)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
        rec["predict_s"] = time.perf_counter() - t
        rec["model_bytes"] = model_bytes(model)
    else:
        raise ValueError(f"unknown method {method!r} for {data}")
    rec.update(xc_metrics(top, Y_test, Y_train))
    return rec


def _write_xc(path, X, Y):
    X, Y = X.tocsr(), Y.tocsr()
    with open(path, "w") as f:
        f.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
        for i in range(X.shape[0]):
            labels = ",".join(map(str, Y.indices[Y.indptr[i]:Y.indptr[i + 1]]))
            lo, hi = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{j}:{v:.6g}" for j, v in zip(X.indices[lo:hi], X.data[lo:hi]))
            f.write(f"{labels} {feats}\n")


def fit_biases(users, items, ratings, reg=5.0, n_rounds=10):
    """Global mean and shrunk user and item offsets (alternating averages)."""
    mean = ratings.mean()
    n_users, n_items = users.max() + 1, items.max() + 1
    b_user = np.zeros(n_users)
    for _ in range(n_rounds):
        resid = ratings - mean - b_user[users]
        b_item = np.bincount(items, resid, n_items) / (np.bincount(items, None, n_items) + reg)
        resid = ratings - mean - b_item[items]
        b_user = np.bincount(users, resid, n_users) / (np.bincount(users, None, n_users) + reg)
    return mean, b_user, b_item


def fit_mf(users, items, ratings, seed, rank=32, epochs=40, lr=0.01, reg=0.05):
    """Biased matrix factorisation by SGD (Funk / Koren style), one rating at a time."""
    rng = np.random.default_rng(seed)
    n_users, n_items = users.max() + 1, items.max() + 1
    mean = ratings.mean()
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    P = rng.normal(0, 0.1, (n_users, rank))
    Q = rng.normal(0, 0.1, (n_items, rank))
    for _ in range(epochs):
        for r in rng.permutation(len(ratings)):
            u, i = users[r], items[r]
            err = ratings[r] - (mean + bu[u] + bi[i] + P[u] @ Q[i])
            bu[u] += lr * (err - reg * bu[u])
            bi[i] += lr * (err - reg * bi[i])
            pu = P[u].copy()
            P[u] += lr * (err * Q[i] - reg * P[u])
            Q[i] += lr * (err * pu - reg * Q[i])
    return mean, bu, bi, P, Q


def run_movielens(method, params, seed, threads, split="random"):
    from sklearn.metrics import root_mean_squared_error
    X_train, X_test, y_train, y_test = load_movielens_frame(split)
    users, items = X_train["user"].to_numpy(), X_train["item"].to_numpy()
    tu, ti = X_test["user"].to_numpy(), X_test["item"].to_numpy()
    n_u, n_i = max(users.max(), tu.max()) + 1, max(items.max(), ti.max()) + 1
    rec = {}
    t = time.perf_counter()
    if method == "biases":
        mean, bu, bi = fit_biases(users, items, y_train)
        bu, bi = np.pad(bu, (0, n_u - len(bu))), np.pad(bi, (0, n_i - len(bi)))
        rec["fit_s"] = time.perf_counter() - t
        pred = mean + bu[tu] + bi[ti]
    elif method == "mf":
        mean, bu, bi, P, Q = fit_mf(users, items, y_train, seed, **params)
        rec["fit_s"] = time.perf_counter() - t
        bu, bi = np.pad(bu, (0, n_u - len(bu))), np.pad(bi, (0, n_i - len(bi)))
        P = np.pad(P, ((0, n_u - len(P)), (0, 0)))
        Q = np.pad(Q, ((0, n_i - len(Q)), (0, 0)))
        pred = mean + bu[tu] + bi[ti] + np.einsum("ij,ij->i", P[tu], Q[ti])
    elif method == "dlrm":
        from slidelearn import DLRMRegressor
        params = dict(params)
        params.setdefault("categorical_features", ["user", "item", "occ", "sex"])
        est = DLRMRegressor(random_state=seed, n_jobs=threads, **params)
        est.fit(X_train, y_train)
        rec["fit_s"] = time.perf_counter() - t
        rec.update(n_iter=est.n_iter_, model_bytes=model_bytes(est))
        pred = est.predict(X_test)
    else:
        raise ValueError(f"unknown method {method!r} for movielens")
    pred = np.clip(pred, 1, 5)
    rec["rmse"] = float(root_mean_squared_error(y_test, pred))
    rec["distinct_pred"] = int(np.unique(np.round(pred, 4)).size)
    return rec


def run_criteo(method, params, seed, threads):
    from sklearn.metrics import log_loss, roc_auc_score
    X_train, X_test, y_train, y_test = load_criteo_rows()
    rec = {}
    if method == "base-rate":
        proba = np.full(len(y_test), y_train.mean())
        rec["fit_s"] = 0.0
    elif method == "dlrm":
        from slidelearn import DLRMClassifier
        params = dict(params)
        params.setdefault("categorical_features", list(range(13, 39)))
        est = DLRMClassifier(random_state=seed, n_jobs=threads, **params)
        t = time.perf_counter()
        est.fit(X_train, y_train)
        rec["fit_s"] = time.perf_counter() - t
        rec["n_iter"] = est.n_iter_
        proba = est.predict_proba(X_test)[:, 1]
    else:
        raise ValueError(f"unknown method {method!r} for criteo")
    rec["log_loss"] = float(log_loss(y_test, proba, labels=[0, 1]))
    rec["auc"] = float(roc_auc_score(y_test, proba))
    return rec


def run_one(args):
    params = json.loads(args.params)
    if args.data in ("movielens", "movielens-time"):
        rec = run_movielens(args.method, params, args.seed, args.threads,
                            "time" if args.data == "movielens-time" else "random")
    elif args.data == "criteo":
        rec = run_criteo(args.method, params, args.seed, args.threads)
    else:
        rec = run_xc(args.data, args.method, params, args.seed, args.threads, args.text8_train)
    rec.update(data=args.data, method=args.method, params=params, seed=args.seed,
               threads=args.threads, label=args.label)
    print(json.dumps(rec))


# ---------------------------------------------------------------- driver
def spawn(data, method, params, seed, threads, label, text8_train, timeout=3600):
    cmd = [sys.executable, os.path.abspath(__file__), "run", "--data", data, "--method", method,
           "--params", json.dumps(params), "--seed", str(seed), "--threads", str(threads),
           "--label", label, "--text8-train", str(text8_train)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(data=data, method=method, params=params, seed=seed, threads=threads,
                    label=label, error=f"timeout after {timeout} s")
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return dict(data=data, method=method, params=params, seed=seed, threads=threads,
                    label=label, error=(out.stderr.strip().splitlines() or ["?"])[-1])
    return json.loads(lines[-1])


def machine():
    sys.path.insert(0, HERE)
    from bench_slide import machine_info
    return machine_info()


# The configurations of the study: (label, data, method, params, seeds, threads).
# "old defaults" are the parameters the estimators had before this study (the
# parameters that did not exist then at the values that reproduce the old behaviour);
# "defaults" are the estimators' defaults now.
OLD_SLIDE = {"hidden_layer_sizes": [128], "alpha": 1e-3, "dropout": 0.0, "n_codes": 4,
             "min_active": 1000, "early_stopping": False, "feature_scaling": None}
# DLRM's defaults before the baseline and the pass over the held-out rows
PREVIOUS_DLRM = {"baseline": False, "validation_pass": False}
# ... and before the tables had their own L2 term and rates and the factorization term
FIRST_STUDY_DLRM = dict(PREVIOUS_DLRM, factorization_term=False, embedding_alpha=None,
                        embedding_learning_rate=None)
OLD_DLRM = dict(FIRST_STUDY_DLRM, interaction="dot", early_stopping=False,
                feature_scaling=None)
# each part of the DLRM defaults taken away in turn (the "fm" group)
DLRM_PARTS = [("without baseline", {"baseline": False}),
              ("without held-out pass", {"validation_pass": False}),
              ("without factorization term", {"factorization_term": False}),
              ("tables at the MLP's rate", {"embedding_learning_rate": None}),
              ("without tables' L2", {"embedding_alpha": None}),
              ("previous defaults", PREVIOUS_DLRM),
              ("first study's defaults", FIRST_STUDY_DLRM)]
XC = ["bibtex", "go-seq", "go-derisi", "text8"]


def study_configs(which, seeds, threads, text8_seeds=1):
    """Every configuration of the study; ``which`` names the groups to include
    ("defaults", "old", "peers", "bf16", "loss": each ``loss`` on the sets with every
    label active, "fm": each part of DLRM's defaults taken away, ``DLRM_PARTS``). text8
    (minutes a fit) runs ``text8_seeds`` seeds."""
    few = seeds[:1]
    two = [max(threads)]
    configs = []
    for data in XC:
        s = seeds[:text8_seeds] if data == "text8" else seeds
        if "defaults" in which:
            configs.append(("defaults", data, "slide", {}, s, threads))
        if "old" in which:
            configs.append(("old defaults", data, "slide", OLD_SLIDE, s, two))
        if "loss" in which and data != "text8":
            for loss in ("softmax", "pick_all", "bce"):
                configs.append((f"loss {loss}", data, "slide", {"loss": loss}, s, two))
        if "bf16" in which and data in ("bibtex", "text8"):
            configs.append(("defaults bfloat16", data, "slide", {"precision": "bfloat16"},
                            s, two))
            if data == "text8":  # what bfloat16 trained with before its shared path
                configs.append(("bfloat16, hash tables", data, "slide",
                                {"precision": "bfloat16", "negative_sampling": "lsh"},
                                s, two))
        if "peers" in which:
            configs.append(("label prior", data, "prior", {}, few, two))
            if data != "text8":  # every seed: their fit times are compared with ours
                configs.append(("napkinXC PLT", data, "napkinxc", {}, s, threads))
                configs.append(("omikuji", data, "omikuji", {}, s, threads))
                configs.append(("logistic regression", data, "logreg", {}, few, two))
    for data in ("movielens", "movielens-time", "criteo"):
        if "defaults" in which:
            configs.append(("defaults", data, "dlrm", {}, seeds, threads))
        if "old" in which:
            configs.append(("old defaults", data, "dlrm", OLD_DLRM, seeds, two))
        if "bf16" in which:
            configs.append(("defaults bfloat16", data, "dlrm", {"precision": "bfloat16"},
                            seeds, two))
        if "fm" in which:  # each part of the defaults taken away in turn
            for label, params in DLRM_PARTS:
                configs.append((label, data, "dlrm", params, seeds, two))
    if "peers" in which:
        for data in ("movielens", "movielens-time"):
            configs.append(("user + item biases", data, "biases", {}, few, two))
            configs.append(("matrix factorisation (SGD)", data, "mf", {}, few, two))
        configs.append(("base rate", "criteo", "base-rate", {}, few, two))
    return configs


def summarize(records):
    groups = {}
    for r in records:
        if "error" in r:
            continue
        groups.setdefault((r["data"], r["label"], r["threads"]), []).append(r)
    lines = []
    keys = ["p@1", "p@3", "p@5", "psp@1", "psp@5", "rmse", "log_loss", "auc", "fit_s"]
    for (data, label, threads), rs in sorted(groups.items()):
        cells = []
        for k in keys:
            vals = [r[k] for r in rs if r.get(k) is not None]
            if vals:
                spread = (max(vals) - min(vals)) if len(vals) > 1 else 0.0
                cells.append(f"{k} {statistics.mean(vals):.4f}±{spread / 2:.4f}")
        if "distinct_top1" in rs[0]:
            cells.append(f"min distinct top-1 {min(r['distinct_top1'] for r in rs)}")
        if "distinct_top5" in rs[0]:
            cells.append(f"top-5 lists {min(r['distinct_top5'] for r in rs)}")
        lines.append(f"{data:<10} {label:<16} {threads}t n={len(rs)}  " + "  ".join(cells))
    return "\n".join(lines)


def run_study(args):
    seeds = list(range(args.seeds))
    records = []
    t0 = time.time()
    jobs = []
    for c, (label, data, method, params, run_seeds, run_threads) in enumerate(study_configs(
            args.which, seeds, args.threads_list, args.text8_seeds)):
        if args.data and data not in args.data.split(","):
            continue
        for threads in run_threads:
            for i, seed in enumerate(run_seeds):
                jobs.append((i, c, (data, method, params, seed, threads, label)))
    # seed by seed across the configurations, so that a slower stretch of the machine
    # falls on every method alike rather than on the one running then
    for _, _, job in sorted(jobs, key=lambda j: j[:2]):
        rec = spawn(*job, args.text8_train)
        records.append(rec)
        print(json.dumps(rec), flush=True)
    command = " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])
    seconds = time.time() - t0
    if args.keep:
        # the records of the configurations not run again, from an earlier study's result
        kept = json.load(open(args.keep))
        ran = {(r["data"], r["label"]) for r in records}
        records += [r for r in kept["records"] if (r["data"], r["label"]) not in ran]
        command += (f"  (records of other configurations kept from: {kept['command']}, on "
                    f"{kept.get('machine', {}).get('cpu', 'a machine not recorded')})")
    write_result(records, args.out, command, seconds)


def write_result(records, out, command, seconds):
    """Print the summary and, with ``out``, write the JSON result (machine, command,
    every record) and a ``.txt`` summary beside it."""
    result = dict(benchmark="defaults", machine=machine(), command=command,
                  seconds=seconds, records=records)
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.splitext(out)[0] + ".txt", "w") as f:
            f.write(f"machine: {result['machine']}\ncommand: {result['command']}\n\n")
            f.write(summarize(records) + "\n")
    print(summarize(records))


def resume(args):
    """Write the result of a study from the JSON lines it printed (``--from-log``), e.g.
    after it was interrupted; the command is recorded as the study's."""
    records = [json.loads(line) for line in open(args.log) if line.startswith("{")]
    write_result(records, args.out, args.command, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("run", help="one configuration, printed as JSON")
    one.add_argument("--data", required=True,
                     choices=sorted(XC_SETS) + ["text8", "movielens", "movielens-time",
                                                 "criteo"])
    one.add_argument("--method", required=True)
    one.add_argument("--params", default="{}")
    one.add_argument("--seed", type=int, default=0)
    one.add_argument("--threads", type=int, default=2)
    one.add_argument("--label", default="")
    one.add_argument("--text8-train", type=int, default=400_000)
    study = sub.add_parser("study", help="the recorded study")
    study.add_argument("--out")
    study.add_argument("--seeds", type=int, default=5)
    study.add_argument("--threads-list", type=int, nargs="+", default=[1, 2])
    study.add_argument("--which", default="defaults,old,peers,bf16,loss")
    study.add_argument("--keep", help="an earlier study's JSON result whose records of the "
                       "configurations (data set and method) not run now are kept in "
                       "this one")
    study.add_argument("--data", default="", help="comma-separated subset of the data sets")
    study.add_argument("--text8-train", type=int, default=200_000)
    study.add_argument("--text8-seeds", type=int, default=1,
                       help="seeds of text8's runs (minutes a fit; the other sets run "
                       "--seeds)")
    log = sub.add_parser("from-log", help="write a study's result from its printed lines")
    log.add_argument("log")
    log.add_argument("--out", required=True)
    log.add_argument("--command", required=True, help="the study's command line")
    args = parser.parse_args()
    {"run": run_one, "study": run_study, "from-log": resume}[args.cmd](args)


if __name__ == "__main__":
    main()
