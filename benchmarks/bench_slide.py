"""Benchmark slidelearn's SLIDE training and inference against a PyTorch full softmax.

The benchmark builds an Amazon-670K-shaped synthetic extreme classification
problem with :func:`slidelearn.datasets.make_extreme_classification`
(135,909 sparse features, 670,091 labels, about 75 non-zeros and 5 labels per
row; its default law puts about half of the label occurrences on the 1,000 most
frequent labels), or with ``--preset amazon-670k`` the calibrated law of
:func:`slidelearn.datasets.make_extreme_classification_preset` (its labels scale
with ``--n-train``), and, for every requested thread count, runs in a fresh
subprocess (so that the peak resident memory is that of one configuration):

1. ``slidelearn``: :class:`slidelearn.SlideClassifier` with one hidden layer
   of 128 ReLU units and SLIDE's sampling (``--negative-sampling lsh``, the hash
   tables; ``log_uniform`` is the estimator's default), trained for ``--epochs``
   epochs (one ``partial_fit`` call per epoch by default). It reports the training
   throughput (samples/s, measured on training only: data generation and model initialisation are
   excluded), the mean active-set size per sample, the peak RSS, and the
   precision@1/@5 and throughput of top-5 inference on the test rows, over all
   labels (``inference="exact"``) and over the labels that the hash tables
   retrieve (``inference="lsh"``).
2. A PyTorch peer with the same network and a *full* softmax:
   ``EmbeddingBag(n_features, 128, mode="sum")`` weighted by the values of X,
   plus a bias, ReLU, ``Linear(128, n_labels)``, a cross-entropy against soft
   targets with mass ``1/|y|`` on each true label, Adam and batches of 128. A
   full epoch would take hours, so a fixed number of batches is timed after a
   few warm-up batches. Its top-5 inference is timed on a subset of the test
   rows.

Figures are printed as tables, with the ratios against the peer measured in the
same run and the targets they are compared to; nothing is asserted. With
``--out`` every figure is also written as JSON.

Examples
--------
Smoke test on a tiny shape (well under a minute)::

    PYTHONPATH=. python benchmarks/bench_slide.py --quick

The Amazon-670K shape with 1 and 2 threads, results saved as JSON::

    PYTHONPATH=. python benchmarks/bench_slide.py --threads 1 2 --out results.json

The calibrated Amazon-670K law at 100,000 training rows (136,628 labels)::

    PYTHONPATH=. python benchmarks/bench_slide.py --preset amazon-670k --n-train 100000
"""
import argparse
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

try:
    import slidelearn  # noqa: F401
except ImportError:  # running from a source checkout without PYTHONPATH
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Shapes of the Amazon-670K data set of the Extreme Classification Repository.
AMAZON_670K = {"n_features": 135909, "n_labels": 670091}

# Defaults of the full run and of ``--quick``; explicit options override both.
PRESETS = {
    "full": {"n_features": AMAZON_670K["n_features"], "n_labels": AMAZON_670K["n_labels"],
             "n_train": 50000, "n_test": 2000, "epochs": 2, "torch_batches": 20,
             "torch_test_rows": 1024},
    "quick": {"n_features": 5000, "n_labels": 20000, "n_train": 2500, "n_test": 500,
              "epochs": 2, "torch_batches": 5, "torch_test_rows": 500},
}

# Targets of the issue this benchmark gives evidence for (printed, never asserted).
TARGET_TRAIN_RATIO = 25.0       # slidelearn / torch training samples/s at TARGET_THREADS
TARGET_THREADS = 2
TARGET_LSH_SPEEDUP = 10.0       # lsh / exact top-5 inference rows/s
TARGET_LSH_P1_DROP = 1.0        # at most this many points of P@1 lost by lsh

TOP_K = 5

# Optimisation levels (--levels), each a slidelearn configuration run in its own process:
# (result label, SLIDELEARN_CPU_LEVEL or None, precision, runs the --before checkout)
LEVELS = {
    "before": ("slidelearn[before]", None, "float32", True),
    "fp32-generic": ("slidelearn[fp32-generic]", "generic", "float32", False),
    "fp32": ("slidelearn", None, "float32", False),
    "bf16": ("slidelearn[bf16]", None, "bfloat16", False),
}
TARGET_VS_BEFORE = 2.0          # samples/s of the fastest level / the --before checkout
TARGET_BF16_RATIO = 1.25        # bf16 / fp32 samples/s
TARGET_BF16_P1_DROP = 0.5       # at most this many points of P@1 (exact) lost by bf16


# --------------------------------------------------------------------------- options
def parse_args(argv=None):
    """Parse the command line.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments without the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    args : argparse.Namespace
        The options, with the shape defaults of ``--quick`` or of the full run
        filled in where they were not given.
    """
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data and run")
    g.add_argument("--quick", action="store_true",
                   help="tiny shape for smoke testing (20k labels, 5k features, 3k rows)")
    g.add_argument("--xc-data", default=None, metavar="DIR",
                   help="train and test on DIR/train.txt and DIR/test.txt (Extreme "
                        "Classification Repository format, e.g. ../shared/data/bibtex) "
                        "instead of generated data; --n-train / --n-test then cap the rows")
    g.add_argument("--preset", choices=["amazon-670k", "delicious-200k"], default=None,
                   help="generate the data with make_extreme_classification_preset(PRESET, "
                        "n_train=--n-train, n_test=--n-test) (label law calibrated to the "
                        "published statistics; labels scale with the training rows) instead "
                        "of make_extreme_classification's head-heavy default law")
    g.add_argument("--n-train", type=int, default=None,
                   help="training rows (default 50000; 2500 with --quick)")
    g.add_argument("--n-test", type=int, default=None,
                   help="test rows (default 2000; 500 with --quick)")
    g.add_argument("--n-features", type=int, default=None,
                   help="features (default 135909, Amazon-670K; 5000 with --quick)")
    g.add_argument("--n-labels", type=int, default=None,
                   help="labels (default 670091, Amazon-670K; 20000 with --quick)")
    g.add_argument("--n-nonzeros", type=int, default=75, help="mean non-zeros per row")
    g.add_argument("--labels-per-sample", type=float, default=5.0, help="mean labels per row")
    g.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts; each one runs in fresh subprocesses")
    g.add_argument("--epochs", type=int, default=None,
                   help="slidelearn training epochs (default 2)")
    g.add_argument("--train-api", choices=["partial_fit", "fit"], default="partial_fit",
                   help="train slidelearn with one partial_fit call per epoch, or with one "
                        "warm-started fit call (which rebuilds the hash tables from the final "
                        "weights before LSH inference)")
    g.add_argument("--inference-repeats", type=int, default=1,
                   help="time each top-k inference this many times and keep the fastest")
    g.add_argument("--seed", type=int, default=0, help="seed of the data and of the models")
    g.add_argument("--skip-torch", action="store_true", help="do not run the PyTorch peer")
    g.add_argument("--levels", nargs="+", choices=list(LEVELS), default=["fp32"],
                   help="slidelearn optimisation levels, each in its own process: 'before' "
                        "= the checkout given by --before (the code before the CPU "
                        "optimisations), 'fp32-generic' = this build with "
                        "SLIDELEARN_CPU_LEVEL=generic (no AVX2 / AVX-512 kernels), 'fp32' "
                        "= this build at the CPU's level, 'bf16' = precision='bfloat16'")
    g.add_argument("--before", default=None,
                   help="root of a built slidelearn checkout to time as the 'before' level "
                        "(e.g. a git worktree of an older commit, built in place)")
    g.add_argument("--torch-batches", type=int, default=None,
                   help="timed PyTorch training batches (default 20; 5 with --quick)")
    g.add_argument("--torch-warmup", type=int, default=2,
                   help="untimed PyTorch warm-up batches before the timed ones")
    g.add_argument("--torch-test-rows", type=int, default=None,
                   help="test rows for PyTorch top-k inference (default 1024; 500 with --quick)")
    g.add_argument("--out", default=None, help="write every figure to this JSON file")

    h = p.add_argument_group("network and SLIDE hyper-parameters (both libraries where they apply)")
    h.add_argument("--hidden", type=int, default=128, help="hidden layer width")
    h.add_argument("--dropout", type=float, default=0.0,
                   help="dropout of the last hidden layer (slidelearn only)")
    h.add_argument("--batch-size", type=int, default=128, help="samples per batch")
    h.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    h.add_argument("--alpha", type=float, default=0.0,
                   help="L2 penalty (slidelearn alpha, PyTorch Adam weight_decay)")
    h.add_argument("--lr-decay", type=float, default=1.0,
                   help="slidelearn learning_rate_decay per epoch (used by --train-api fit only)")
    h.add_argument("--hash-family", default="dwta",
                   choices=["dwta", "wta", "simhash", "doph", "mips"])
    h.add_argument("--negative-sampling", default="lsh",
                   choices=["lsh", "log_uniform", "auto"],
                   help="slidelearn's negatives: SLIDE's tables (what this benchmark measures "
                        "by default), shared log-uniform draws, or the estimator's rule")
    h.add_argument("--n-tables", type=int, default=50, help="L, hash tables")
    h.add_argument("--n-codes", type=int, default=6, help="K, codes per table")
    h.add_argument("--bin-size", type=int, default=8, help="coordinates per (D)WTA code")
    h.add_argument("--range-pow", type=int, default=18, help="log2 of the buckets per table")
    h.add_argument("--bucket-size", type=int, default=128, help="neuron ids per bucket")
    h.add_argument("--min-active", type=int, default=1000,
                   help="active output neurons per training sample, at least")
    h.add_argument("--active-threshold", type=int, default=1,
                   help="tables a neuron must be retrieved from to be active in training")
    h.add_argument("--inference-threshold", type=int, nargs="+", default=[1],
                   help="the same threshold for LSH inference (several: one row each)")
    h.add_argument("--inference-max-candidates", type=int, nargs="+", default=[],
                   help="also time LSH inference scoring at most this many of the most-voted "
                        "retrieved neurons per row, at the first threshold (one row each)")
    h.add_argument("--inference-head-labels", type=int, nargs="+", default=[],
                   help="also time LSH inference that scores this many of the most frequent "
                        "training labels for every row besides the retrieved ones, at every "
                        "threshold (one row each)")
    h.add_argument("--inference-bucket-size", type=int, default=None,
                   help="bucket size of inference-only tables (random sample of each bucket; "
                        "training hash functions unless --inference-n-codes/-n-tables)")
    h.add_argument("--inference-n-codes", type=int, default=None,
                   help="K of separate inference-only tables (default: use the training tables)")
    h.add_argument("--inference-n-tables", type=int, default=None,
                   help="L of separate inference-only tables (default: use the training tables)")
    h.add_argument("--rehash-interval", type=int, default=6400,
                   help="samples between two rebuilds of the hash tables")
    h.add_argument("--rebuild-interval", type=int, default=128000,
                   help="samples between two draws of new hash functions")

    # Internal: the parent runs each configuration as `--worker KIND`.
    p.add_argument("--worker", choices=["slidelearn", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-level", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)

    args = p.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("n_train", "n_test", "n_features", "n_labels", "epochs", "torch_batches",
                 "torch_test_rows", "inference_repeats", "hidden", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if any(t < 1 for t in args.threads):
        p.error("--threads must be positive")
    if "before" in args.levels and not args.before:
        p.error("--levels before needs --before PATH")
    return args


# ------------------------------------------------------------------ machine and memory
def _proc_status_kib(field):
    """A ``kB`` field of ``/proc/self/status`` in KiB, or None where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_bytes():
    """Peak resident set size of this process (``VmHWM``), in bytes.

    Returns
    -------
    int
        Bytes; falls back to ``getrusage`` where ``/proc`` is missing.
    """
    kib = _proc_status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib * 1024


def current_rss_bytes():
    """Current resident set size of this process (``VmRSS``), in bytes, or None."""
    kib = _proc_status_kib("VmRSS")
    return None if kib is None else kib * 1024


def _package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info():
    """Describe the machine and the software versions.

    Returns
    -------
    info : dict
        CPU model, logical cores, usable cores (affinity mask), memory, OS,
        and the versions of Python, NumPy, SciPy, PyTorch and slidelearn (with
        the git revision of the checkout when there is one).
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_total = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_total = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    import slidelearn

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "-C", repo, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        rev = "none"
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gb": None if mem_total is None else mem_total / 1e9,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": _package_version("scipy"),
        "torch": _package_version("torch"),
        "slidelearn": getattr(slidelearn, "__version__", None),
        "slidelearn_path": os.path.dirname(slidelearn.__file__),
        "git_revision": rev,
    }


# ----------------------------------------------------------------------------- data
def make_data(args, path):
    """Generate the train and test sets once and save them for the workers.

    Train and test rows come from one call of ``make_extreme_classification``
    (so they share the label prototypes); the first ``n_train`` rows train.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options (shape and seed).
    path : str
        ``.npz`` file to write.

    Returns
    -------
    stats : dict
        Shape, mean non-zeros and labels per row, distinct training labels,
        the generation time, and the test P@1 and P@5 of the label-prior
        baseline (the most frequent training labels for every row).
    """
    from slidelearn.datasets import (load_xc_repository, make_extreme_classification,
                                     make_extreme_classification_preset)

    t0 = time.perf_counter()
    if args.xc_data:  # a real data set: its own train / test split, capped by the options
        Xtr, Ytr = load_xc_repository(os.path.join(args.xc_data, "train.txt"))
        Xte, Yte = load_xc_repository(os.path.join(args.xc_data, "test.txt"))
        if Xte.shape[1] != Xtr.shape[1] or Yte.shape[1] != Ytr.shape[1]:
            raise ValueError(f"{args.xc_data}: train and test disagree on the shape")
        args.n_train = min(args.n_train, Xtr.shape[0])
        args.n_test = min(args.n_test, Xte.shape[0])
        X = sp.vstack([Xtr[:args.n_train], Xte[:args.n_test]])
        Y = sp.vstack([Ytr[:args.n_train], Yte[:args.n_test]])
        args.n_features, args.n_labels = X.shape[1], Y.shape[1]
    elif args.preset:
        Xtr, Xte, Ytr, Yte = make_extreme_classification_preset(
            args.preset, n_train=args.n_train, n_test=args.n_test, random_state=args.seed)
        X, Y = sp.vstack([Xtr, Xte]), sp.vstack([Ytr, Yte])
        args.n_features, args.n_labels = X.shape[1], Y.shape[1]
    else:
        X, Y = make_extreme_classification(
            n_samples=args.n_train + args.n_test, n_features=args.n_features,
            n_labels=args.n_labels, n_nonzeros=args.n_nonzeros,
            n_labels_per_sample=args.labels_per_sample, random_state=args.seed)
    gen_s = time.perf_counter() - t0
    X = sp.csr_matrix(X, dtype=np.float32)
    Y = sp.csr_matrix(Y)
    np.savez(path, X_data=X.data, X_indices=X.indices, X_indptr=X.indptr,
             Y_indices=Y.indices, Y_indptr=Y.indptr, shape=np.array([*X.shape, Y.shape[1]]),
             n_train=np.array(args.n_train))
    Ytr, Yte = Y[:args.n_train], Y[args.n_train:]
    # Label-prior baseline: every test row gets the most frequent training labels.
    prior = np.argsort(-np.bincount(Ytr.indices, minlength=Y.shape[1]), kind="stable")[:TOP_K]
    prior_p1, prior_pk = precisions(Yte, np.tile(prior, (Yte.shape[0], 1)))
    return {
        "n_train": args.n_train, "n_test": args.n_test,
        "n_features": X.shape[1], "n_labels": Y.shape[1],
        "mean_nonzeros": X.nnz / X.shape[0], "mean_labels": Y.nnz / Y.shape[0],
        "distinct_train_labels": int(np.unique(Ytr.indices).size),
        "generation_s": gen_s, "prior_p1": prior_p1, "prior_p5": prior_pk,
    }


def load_data(path):
    """Load the data saved by :func:`make_data`.

    Parameters
    ----------
    path : str
        The ``.npz`` file.

    Returns
    -------
    X_train, Y_train, X_test, Y_test : scipy.sparse.csr_matrix
        Features (float32) and binary label indicators (int8).
    """
    with np.load(path) as d:
        n_rows, n_features, n_labels = (int(v) for v in d["shape"])
        n_train = int(d["n_train"])
        X = sp.csr_matrix((d["X_data"], d["X_indices"], d["X_indptr"]),
                          shape=(n_rows, n_features))
        Y = sp.csr_matrix((np.ones(d["Y_indices"].shape[0], dtype=np.int8), d["Y_indices"],
                           d["Y_indptr"]), shape=(n_rows, n_labels))
    return X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]


def precisions(Y, labels):
    """Precision at 1 and at ``TOP_K`` of ranked label indices.

    Parameters
    ----------
    Y : scipy.sparse.csr_matrix of shape (n_rows, n_labels)
        True label indicator.
    labels : ndarray of shape (n_rows, TOP_K)
        Predicted label indices, best first.

    Returns
    -------
    p1, pk : float
    """
    from slidelearn.metrics import precision_at_k

    labels = np.asarray(labels, dtype=np.int64)
    return (float(precision_at_k(Y, labels, k=1)), float(precision_at_k(Y, labels, k=TOP_K)))


# -------------------------------------------------------------------------- workers
def run_slidelearn(args, threads, data):
    """Train and evaluate :class:`slidelearn.SlideClassifier` in this process.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options.
    threads : int
        ``n_jobs`` of the classifier.
    data : tuple
        ``(X_train, Y_train, X_test, Y_test)`` from :func:`load_data`.

    Returns
    -------
    result : dict
        Training throughput and losses, mean active set, exact and LSH
        inference throughput and precisions.
    """
    from slidelearn import SlideClassifier

    Xtr, Ytr, Xte, Yte = data
    n_labels = Ytr.shape[1]
    extra = {}
    if "learning_rate_decay" in SlideClassifier().get_params():
        extra["learning_rate_decay"] = args.lr_decay
    if args.inference_n_codes is not None or args.inference_n_tables is not None:
        extra["inference_n_codes"] = args.inference_n_codes
        extra["inference_n_tables"] = args.inference_n_tables
    if args.inference_bucket_size is not None:
        extra["inference_bucket_size"] = args.inference_bucket_size
    params = SlideClassifier().get_params()
    if "dropout" in params:
        extra["dropout"] = args.dropout
    extra["early_stopping"] = False  # every epoch timed, as for the PyTorch peer
    if "negative_sampling" in params:
        extra["negative_sampling"] = args.negative_sampling
    if "feature_scaling" in params:  # the data as the PyTorch peer gets it
        extra["feature_scaling"] = None
    label, _, precision, _ = LEVELS[args.worker_level]
    if precision != "float32":
        extra["precision"] = precision
    clf = SlideClassifier(
        **extra, alpha=args.alpha, hidden_layer_sizes=(args.hidden,), hash_family=args.hash_family,
        n_codes=args.n_codes, n_tables=args.n_tables, bin_size=args.bin_size,
        range_pow=args.range_pow, bucket_size=args.bucket_size, min_active=args.min_active,
        active_threshold=args.active_threshold, inference_threshold=args.inference_threshold[0],
        rehash_interval=args.rehash_interval, rebuild_interval=args.rebuild_interval,
        learning_rate=args.lr, batch_size=args.batch_size, max_iter=args.epochs,
        n_iter_no_change=args.epochs + 1, warm_start=True, n_jobs=threads,
        random_state=args.seed)

    # Model initialisation (weights, Adam state, first hash tables, work buffers) happens
    # on the first partial_fit call: make it one batch, timed apart from training.
    t0 = time.perf_counter()
    clf.partial_fit(Xtr[:args.batch_size], Ytr[:args.batch_size], classes=np.arange(n_labels))
    init_s = time.perf_counter() - t0
    rss_after_init = current_rss_bytes()

    epoch_s, losses, active = [], [], []
    if args.train_api == "partial_fit":
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            clf.partial_fit(Xtr, Ytr)
            epoch_s.append(time.perf_counter() - t0)
            losses.append(float(clf.loss_curve_[-1]))
            active.append(float(clf.mean_active_))
            print(f"  [{label} x{threads}] epoch {epoch + 1}/{args.epochs}: "
                  f"{Xtr.shape[0] / epoch_s[-1]:,.0f} samples/s, loss {losses[-1]:.4f}, "
                  f"{active[-1]:.0f} active/sample", flush=True)
        train_s = sum(epoch_s)
    else:
        n_before = len(clf.loss_curve_)
        t0 = time.perf_counter()
        clf.fit(Xtr, Ytr)
        train_s = time.perf_counter() - t0
        losses = [float(v) for v in clf.loss_curve_[n_before:]]
        active.append(float(clf.mean_active_))
        print(f"  [{label} x{threads}] fit, {len(losses)} epochs: "
              f"{len(losses) * Xtr.shape[0] / train_s:,.0f} samples/s, loss {losses[-1]:.4f}",
              flush=True)
    n_epochs = len(losses)
    result = {
        "library": label, "level": args.worker_level, "threads": threads,
        "cpu_level": _cpu_level(), "train_api": args.train_api,
        "init_s": init_s, "train_s": train_s, "epoch_s": epoch_s, "epochs": n_epochs,
        "train_samples_per_s": n_epochs * Xtr.shape[0] / train_s,
        "loss_curve": losses, "mean_active": active[-1], "mean_active_per_epoch": active,
        "rss_after_init_bytes": rss_after_init,
        "peak_rss_train_bytes": peak_rss_bytes(),
        # Samples trained since the hash tables were last rebuilt from the weights
        # (a private counter, read for this diagnostic only; None if it is gone).
        "samples_since_rehash": (clf._schedule.since_rehash if hasattr(clf, "_schedule")
                                 else getattr(clf, "_since_rehash", None)),  # older checkouts
        "inference": {},
    }

    warm = Xte[:min(32, Xte.shape[0])]
    # "lsh" is the first --inference-threshold; every threshold is also kept as "lsh@t",
    # and every --inference-max-candidates value M (at the first threshold) as "lsh@cM".
    # Every --inference-head-labels value N at every threshold t is "lsh@thN".
    runs = ([("exact", "exact", None, None, 0)]
            + [("lsh" if i == 0 else f"lsh@{t}", "lsh", t, None, 0)
               for i, t in enumerate(args.inference_threshold)]
            + [(f"lsh@c{m}", "lsh", args.inference_threshold[0], m, 0)
               for m in args.inference_max_candidates]
            + [(f"lsh@{t}h{h}", "lsh", t, None, h)
               for h in args.inference_head_labels for t in args.inference_threshold])
    for key, mode, thr, cap, head in runs:
        if thr is not None:
            clf.set_params(inference_threshold=thr, inference_max_candidates=cap,
                           inference_head_labels=head)
        clf.predict_topk(warm, k=TOP_K, inference=mode)  # first-call allocations
        best = np.inf
        for _ in range(args.inference_repeats):
            t0 = time.perf_counter()
            labels, _ = clf.predict_topk(Xte, k=TOP_K, inference=mode)
            best = min(best, time.perf_counter() - t0)
        p1, p5 = precisions(Yte, labels)
        result["inference"][key] = {"rows": Xte.shape[0], "seconds": best, "threshold": thr,
                                    "max_candidates": cap, "head_labels": head,
                                    "rows_per_s": Xte.shape[0] / best, "p1": p1, "p5": p5}
        if key == "lsh":
            result["inference"][f"lsh@{thr}"] = result["inference"]["lsh"]
        if key == "exact" and args.inference_head_labels:
            # How much of the exact answer the head labels alone hold: the context of
            # every "+N head" figure (a model that mostly predicts frequent labels
            # gains the most from scoring them).
            shares = {}
            for h in args.inference_head_labels:
                head_ix = clf._most_frequent_labels(h)
                shares[str(h)] = float(np.isin(labels[:, 0], clf.classes_[head_ix]).mean())
                print(f"  [{label} x{threads}] exact top-1 among the {h} most frequent "
                      f"labels: {100 * shares[str(h)]:.1f}% of rows", flush=True)
            result["inference"][key]["top1_share_in_head"] = shares
        print(f"  [{label} x{threads}] top-{TOP_K} {mode}"
              f"{'' if thr is None else f' (threshold {thr})'}"
              f"{'' if cap is None else f' (at most {cap} candidates)'}"
              f"{'' if not head else f' (+{head} head labels)'}: "
              f"{Xte.shape[0] / best:,.0f} rows/s, "
              f"P@1 {p1:.4f}, P@5 {p5:.4f}", flush=True)
    result["peak_rss_bytes"] = peak_rss_bytes()
    return result


def run_torch(args, threads, data):
    """Train a few batches of the full-softmax PyTorch peer and time its inference.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options.
    threads : int
        ``torch.set_num_threads`` value.
    data : tuple
        ``(X_train, Y_train, X_test, Y_test)`` from :func:`load_data`.

    Returns
    -------
    result : dict
        Training throughput over the timed batches, their losses, inference
        throughput and precisions on a subset of the test rows.
    """
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    Xtr, Ytr, Xte, Yte = data
    n_features, n_labels, H = Xtr.shape[1], Ytr.shape[1], args.hidden

    class FullSoftmaxNet(nn.Module):
        """Sparse input layer (weighted bag of embeddings + bias), ReLU, dense output."""

        def __init__(self):
            super().__init__()
            self.embed = nn.EmbeddingBag(n_features, H, mode="sum")
            self.bias = nn.Parameter(torch.zeros(H))
            self.out = nn.Linear(H, n_labels)

        def forward(self, indices, offsets, weights):
            h = self.embed(indices, offsets, per_sample_weights=weights) + self.bias
            return self.out(torch.relu(h))

    def sparse_batch(X, rows):
        sub = X[rows]
        return (torch.from_numpy(sub.indices.astype(np.int64)),
                torch.from_numpy(sub.indptr[:-1].astype(np.int64)),
                torch.from_numpy(sub.data.astype(np.float32, copy=False)))

    def soft_target(Y, rows):
        sub = Y[rows]
        counts = np.diff(sub.indptr)
        target = torch.zeros(len(rows), n_labels)
        r = torch.from_numpy(np.repeat(np.arange(len(rows)), counts))
        c = torch.from_numpy(sub.indices.astype(np.int64))
        w = torch.from_numpy(np.repeat(1.0 / np.maximum(counts, 1), counts).astype(np.float32))
        target[r, c] = w
        return target

    model = FullSoftmaxNet()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.alpha)
    rss_after_init = current_rss_bytes()

    rng = np.random.default_rng(args.seed)
    n_batches = args.torch_warmup + args.torch_batches
    order = np.concatenate([rng.permutation(Xtr.shape[0])
                            for _ in range(-(-n_batches * args.batch_size // Xtr.shape[0]))])

    def train_step(b):
        rows = order[b * args.batch_size:(b + 1) * args.batch_size]
        indices, offsets, weights = sparse_batch(Xtr, rows)
        target = soft_target(Ytr, rows)
        logits = model(indices, offsets, weights)
        loss = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    model.train()
    for b in range(args.torch_warmup):
        train_step(b)
    losses = []
    t0 = time.perf_counter()
    for b in range(args.torch_warmup, n_batches):
        losses.append(train_step(b))
    train_s = time.perf_counter() - t0
    n_samples = args.torch_batches * args.batch_size
    print(f"  [torch x{threads}] {args.torch_batches} batches: {n_samples / train_s:,.1f} "
          f"samples/s, loss {losses[0]:.4f} -> {losses[-1]:.4f}", flush=True)
    peak_train = peak_rss_bytes()

    n_rows = min(args.torch_test_rows, Xte.shape[0])
    model.eval()
    with torch.inference_mode():
        model(*sparse_batch(Xte, np.arange(min(32, n_rows))))  # warm-up
        best, labels = np.inf, None
        for _ in range(args.inference_repeats):
            t0 = time.perf_counter()
            parts = []
            for start in range(0, n_rows, args.batch_size):
                rows = np.arange(start, min(start + args.batch_size, n_rows))
                parts.append(torch.topk(model(*sparse_batch(Xte, rows)), TOP_K, dim=1).indices)
            labels = torch.cat(parts).numpy()
            best = min(best, time.perf_counter() - t0)
    p1, p5 = precisions(Yte[:n_rows], labels)
    print(f"  [torch x{threads}] top-{TOP_K} full softmax: {n_rows / best:,.0f} rows/s, "
          f"P@1 {p1:.4f}, P@5 {p5:.4f} (after {n_batches} batches)", flush=True)
    return {
        "library": "torch", "threads": threads, "torch_version": torch.__version__,
        "timed_batches": args.torch_batches, "warmup_batches": args.torch_warmup,
        "train_s": train_s, "train_samples_per_s": n_samples / train_s, "losses": losses,
        "rss_after_init_bytes": rss_after_init, "peak_rss_train_bytes": peak_train,
        "inference": {"full": {"rows": n_rows, "seconds": best, "rows_per_s": n_rows / best,
                               "p1": p1, "p5": p5}},
        "peak_rss_bytes": peak_rss_bytes(),
    }


def _cpu_level():
    try:
        from slidelearn.utils import _cpu
        return _cpu.cpu_level()
    except ImportError:  # a checkout from before the dispatch levels
        return None


def worker_main(args):
    """Entry point of a ``--worker`` subprocess: run one configuration, write its JSON."""
    t0 = time.perf_counter()
    data = load_data(args.data)
    load_s = time.perf_counter() - t0
    rss_data = current_rss_bytes()
    run = run_slidelearn if args.worker == "slidelearn" else run_torch
    if args.worker == "slidelearn":
        import slidelearn
        print(f"  [{LEVELS[args.worker_level][0]}] slidelearn from "
              f"{os.path.dirname(slidelearn.__file__)}, CPU level {_cpu_level()}", flush=True)
    result = run(args, args.worker_threads, data)
    result["rss_after_data_bytes"] = rss_data
    result["data_load_s"] = load_s
    result["process_s"] = time.perf_counter() - t0
    with open(args.result, "w") as f:
        json.dump(result, f)


def level_env(env, level, before=None):
    """Set up ``env`` (a dict, changed in place) for a worker of optimisation ``level``.

    Parameters
    ----------
    env : dict
        Environment of the worker process.
    level : str or None
        A key of ``LEVELS``; None (a peer library) imports this checkout at its CPU level.
    before : str or None
        Checkout whose slidelearn the "before" level imports.

    Returns
    -------
    env : dict
        The same dict: ``SLIDELEARN_CPU_LEVEL`` set or removed, and this checkout (or
        ``before``) first on ``PYTHONPATH``.

    Examples
    --------
    >>> env = level_env({"SLIDELEARN_CPU_LEVEL": "avx2"}, "fp32-generic")
    >>> env["SLIDELEARN_CPU_LEVEL"], env["PYTHONPATH"].endswith(os.path.basename(
    ...     os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    ('generic', True)
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cpu_level = None
    if level is not None:
        _, cpu_level, _, use_before = LEVELS[level]
        if use_before:
            root = os.path.abspath(before)
    env.pop("SLIDELEARN_CPU_LEVEL", None)
    if cpu_level is not None:
        env["SLIDELEARN_CPU_LEVEL"] = cpu_level
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def launch_worker(kind, threads, data_path, result_path, level="fp32", before=None):
    """Run one configuration in a fresh Python process limited to ``threads`` threads.

    Parameters
    ----------
    kind : {"slidelearn", "torch"}
        Which library to run.
    level : str, default="fp32"
        slidelearn's configuration, a key of ``LEVELS``.
    before : str or None
        Checkout whose slidelearn the "before" level imports.
    threads : int
        Thread count; also exported as ``OMP_NUM_THREADS`` and the BLAS variables.
    data_path, result_path : str
        Data file from :func:`make_data` and the JSON file the worker writes.

    Returns
    -------
    result : dict
        The worker's figures, or ``{"library", "threads", "error"}`` if it failed.
    """
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    level_env(env, level, before)
    cmd = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--worker", kind,
           "--worker-threads", str(threads), "--worker-level", level, "--data", data_path,
           "--result", result_path]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0 or not os.path.exists(result_path):
        return {"library": LEVELS[level][0] if kind == "slidelearn" else kind,
                "level": level, "threads": threads,
                "error": f"worker exited with status {proc.returncode}"}
    with open(result_path) as f:
        result = json.load(f)
    result["wall_s"] = time.perf_counter() - t0
    return result


# -------------------------------------------------------------------------- report
def _gb(n):
    return "-" if n is None else f"{n / 1e9:.2f}"


def _target(ok):
    return "met" if ok else "NOT met"


def summarize(results, threads):
    """Ratios against the peer and the targets, per thread count.

    Parameters
    ----------
    results : list of dict
        Worker results.
    threads : list of int
        Thread counts run.

    Returns
    -------
    summary : dict
        For each thread count: slidelearn/torch training speed ratio, LSH/exact
        inference speed ratio, P@1 difference (points) and whether each target
        is met.
    """
    def find(lib, t):
        for r in results:
            if r["library"] == lib and r["threads"] == t and "error" not in r:
                return r
        return None

    out = {}
    for t in threads:
        s, tr = find("slidelearn", t), find("torch", t)
        row = {}
        if s is not None and tr is not None:
            row["train_speed_ratio"] = s["train_samples_per_s"] / tr["train_samples_per_s"]
            row["inference_speed_ratio_exact_vs_torch"] = (
                s["inference"]["exact"]["rows_per_s"] / tr["inference"]["full"]["rows_per_s"])
            if t == TARGET_THREADS:
                row["train_target_met"] = row["train_speed_ratio"] >= TARGET_TRAIN_RATIO
        if s is not None:
            # "lsh": the first threshold; "lsh_variants": every LSH setting timed
            ex = s["inference"]["exact"]
            variants = {}
            for key, lsh in s["inference"].items():
                if key.startswith("lsh@"):
                    speedup = lsh["rows_per_s"] / ex["rows_per_s"]
                    diff = 100.0 * (lsh["p1"] - ex["p1"])
                    variants[key] = {"lsh_speedup": speedup, "p1_diff_points": diff,
                                     "met": bool(speedup >= TARGET_LSH_SPEEDUP
                                                 and diff >= -TARGET_LSH_P1_DROP)}
            first = variants[f"lsh@{s['inference']['lsh']['threshold']}"]
            row["lsh_speedup"] = first["lsh_speedup"]
            row["p1_diff_points"] = first["p1_diff_points"]
            row["lsh_variants"] = variants
            row["lsh_target_met"] = any(v["met"] for v in variants.values())
        out[str(t)] = row
    return out


def summarize_levels(results, threads):
    """Each optimisation level against the 'before' checkout and against fp32.

    Parameters
    ----------
    results : list of dict
        Worker results (slidelearn ones carry their ``level``).
    threads : list of int
        Thread counts run.

    Returns
    -------
    summary : dict
        Per thread count and level: samples/s, P@1 of exact and of LSH inference (at
        the first threshold), the last epoch's training loss, the speed ratio to
        'before' and to 'fp32' and the P@1 differences to 'fp32' in points, where
        those levels ran; and whether the targets are met (on exact P@1).
    """
    out = {}
    for t in threads:
        runs = {r["level"]: r for r in results
                if r.get("level") and r["threads"] == t and "error" not in r}
        before, fp32 = runs.get("before"), runs.get("fp32")
        rows = {}
        for level, r in runs.items():
            row = {"samples_per_s": r["train_samples_per_s"],
                   "p1": r["inference"]["exact"]["p1"],
                   "p1_lsh": r["inference"]["lsh"]["p1"] if "lsh" in r["inference"] else None,
                   "loss": r["loss_curve"][-1] if r.get("loss_curve") else None}
            if before is not None:
                row["vs_before"] = r["train_samples_per_s"] / before["train_samples_per_s"]
                row["p1_diff_vs_before_points"] = 100.0 * (row["p1"]
                                                           - before["inference"]["exact"]["p1"])
            if fp32 is not None:
                row["vs_fp32"] = r["train_samples_per_s"] / fp32["train_samples_per_s"]
                row["p1_diff_vs_fp32_points"] = 100.0 * (row["p1"]
                                                         - fp32["inference"]["exact"]["p1"])
                if row["p1_lsh"] is not None and "lsh" in fp32["inference"]:
                    row["p1_lsh_diff_vs_fp32_points"] = 100.0 * (
                        row["p1_lsh"] - fp32["inference"]["lsh"]["p1"])
            rows[level] = row
        best = max((rows[lv]["vs_before"] for lv in rows if lv != "before"
                    and "vs_before" in rows[lv]), default=None)
        targets = {}
        if best is not None:
            targets["vs_before_met"] = bool(best >= TARGET_VS_BEFORE)
        if "bf16" in rows and "vs_fp32" in rows["bf16"]:
            b = rows["bf16"]
            targets["bf16_met"] = bool(b["vs_fp32"] >= TARGET_BF16_RATIO
                                       and b["p1_diff_vs_fp32_points"] >= -TARGET_BF16_P1_DROP)
        out[str(t)] = {"levels": rows, **targets}
    return out


def print_levels(summary, threads):
    """Print the optimisation-level table (from :func:`summarize_levels`)."""
    if not any(len(summary[str(t)]["levels"]) > 1 for t in threads):
        return
    print("\nOptimisation levels (training samples/s; P@1 of exact and of LSH top-5 inference "
          "and the last epoch's training loss after the same training)")
    hdr = (f"{'threads':>7}  {'level':<14}{'samples/s':>11}{'x before':>10}{'x fp32':>9}"
           f"{'P@1':>8}{'vs fp32':>9}{'P@1 lsh':>9}{'vs fp32':>9}{'loss':>8}")
    print(hdr)
    print("-" * len(hdr))
    for t in threads:
        s = summary[str(t)]
        for level in LEVELS:
            row = s["levels"].get(level)
            if row is None:
                continue
            vb = f"{row['vs_before']:.2f}x" if "vs_before" in row else "-"
            vf = f"{row['vs_fp32']:.2f}x" if "vs_fp32" in row else "-"
            dp = (f"{row['p1_diff_vs_fp32_points']:+.2f}" if "p1_diff_vs_fp32_points" in row
                  else "-")
            lp = (f"{100 * row['p1_lsh']:.2f}" if row.get("p1_lsh") is not None else "-")
            ld = (f"{row['p1_lsh_diff_vs_fp32_points']:+.2f}"
                  if "p1_lsh_diff_vs_fp32_points" in row else "-")
            loss = f"{row['loss']:.4f}" if row.get("loss") is not None else "-"
            print(f"{t:>7}  {level:<14}{row['samples_per_s']:>11,.0f}{vb:>10}{vf:>9}"
                  f"{100 * row['p1']:>8.2f}{dp:>9}{lp:>9}{ld:>9}{loss:>8}")
        if "vs_before_met" in s:
            print(f"{'':>9}target: fastest level >= {TARGET_VS_BEFORE:g}x before: "
                  f"{_target(s['vs_before_met'])}")
        if "bf16_met" in s:
            print(f"{'':>9}target: bf16 >= {TARGET_BF16_RATIO:g}x fp32 at <= "
                  f"{TARGET_BF16_P1_DROP:g} pt lower P@1: {_target(s['bf16_met'])}")


def print_report(info, data_stats, results, summary, args, command):
    """Print machine information, data statistics and the result tables."""
    print("\n" + "=" * 100)
    print("SLIDE benchmark: slidelearn (hash-sampled softmax) vs PyTorch (full softmax)")
    print("=" * 100)
    print(f"command     : {command}")
    print(f"cpu         : {info['cpu']} ({info['logical_cores']} logical cores, "
          f"{info['usable_cores']} usable, {info['memory_gb']:.1f} GB RAM)")
    print(f"software    : Python {info['python']}, NumPy {info['numpy']}, SciPy {info['scipy']}, "
          f"torch {info['torch']}, slidelearn {info['slidelearn']} "
          f"(git {info['git_revision']}, {info['slidelearn_path']})")
    print(f"data        : {data_stats['n_train']:,} train + {data_stats['n_test']:,} test rows, "
          f"{data_stats['n_features']:,} features, {data_stats['n_labels']:,} labels, "
          f"{data_stats['mean_nonzeros']:.1f} non-zeros and {data_stats['mean_labels']:.2f} labels "
          f"per row, {data_stats['distinct_train_labels']:,} distinct training labels "
          f"(generated in {data_stats['generation_s']:.1f} s)")
    source = (args.xc_data or (f"make_extreme_classification_preset({args.preset!r})"
                               if args.preset else
                               "make_extreme_classification (head-heavy default law)"))
    print(f"source      : {source}")
    print(f"baseline    : label prior (the {TOP_K} most frequent training labels for every "
          f"row): P@1 {100 * data_stats['prior_p1']:.2f}, P@{TOP_K} "
          f"{100 * data_stats['prior_p5']:.2f} (percent)")
    print(f"network     : sparse input -> {args.hidden} ReLU -> {data_stats['n_labels']:,} "
          f"softmax, Adam lr={args.lr:g}, L2 alpha={args.alpha:g}, batch {args.batch_size}")
    print(f"SLIDE       : negative_sampling={args.negative_sampling!r} "
          f"{args.hash_family} K={args.n_codes} L={args.n_tables} "
          f"bin={args.bin_size} range_pow={args.range_pow} bucket={args.bucket_size} "
          f"min_active={args.min_active} active_threshold={args.active_threshold} "
          f"inference_threshold={args.inference_threshold} "
          f"inference_max_candidates={args.inference_max_candidates or None} "
          f"inference_head_labels={args.inference_head_labels or None} "
          f"inference_tables=K{args.inference_n_codes}/L{args.inference_n_tables}/bucket{args.inference_bucket_size} "
          f"rehash={args.rehash_interval} "
          f"rebuild={args.rebuild_interval}; {args.epochs} epoch(s) via {args.train_api}")
    if not args.skip_torch:
        print(f"torch peer  : {args.torch_batches} timed batches after {args.torch_warmup} "
              f"warm-up; inference on {min(args.torch_test_rows, args.n_test)} test rows")
    over = [t for t in args.threads if t > (info["usable_cores"] or t)]
    if over:
        print(f"warning     : thread counts {over} exceed the {info['usable_cores']} usable cores")

    errors = [r for r in results if "error" in r]
    for r in errors:
        print(f"FAILED      : {r['library']} x{r['threads']}: {r['error']}")

    print("\nTraining")
    hdr = (f"{'config':<25}{'threads':>8}{'samples/s':>14}{'mean active':>13}"
           f"{'peak RSS GB':>13}{'x torch':>10}   target")
    print(hdr)
    print("-" * len(hdr) + "-" * 24)
    for r in results:
        if "error" in r:
            continue
        t = r["threads"]
        ratio = summary[str(t)].get("train_speed_ratio")
        if r["library"].startswith("slidelearn"):
            if r["library"] != "slidelearn":
                ratio = None  # the torch ratio and its target are the default level's
            active = f"{r['mean_active']:,.0f}"
            rtxt = "-" if ratio is None else f"{ratio:.1f}x"
            tgt = ""
            if ratio is not None and t == TARGET_THREADS:
                met = _target(ratio >= TARGET_TRAIN_RATIO)
                tgt = f">= {TARGET_TRAIN_RATIO:g}x at {t} threads: {met}"
        else:
            active, rtxt, tgt = f"{data_stats['n_labels']:,}", "1.0x", "(full softmax)"
        print(f"{r['library']:<25}{t:>8}{r['train_samples_per_s']:>14,.1f}{active:>13}"
              f"{_gb(r['peak_rss_bytes']):>13}{rtxt:>10}   {tgt}")

    print(f"\nTop-{TOP_K} inference on {args.n_test:,} test rows (slidelearn)")
    hdr = (f"{'threads':>7}{'exact rows/s':>14}{'lsh rows/s':>13}{'lsh/exact':>11}"
           f"{'P@1 exact':>11}{'P@1 lsh':>10}{'diff pts':>10}{'P@5 exact':>11}{'P@5 lsh':>10}"
           f"   target")
    print(hdr)
    print("-" * len(hdr) + "-" * 40)
    for r in results:
        if "error" in r or r["library"] != "slidelearn":
            continue
        ex = r["inference"]["exact"]
        variants = ([(f"lsh@{t}", f"t={t}") for t in args.inference_threshold]
                    + [(f"lsh@c{m}", f"t={args.inference_threshold[0]},M={m}")
                       for m in args.inference_max_candidates]
                    + [(f"lsh@{t}h{h}", f"t={t},+{h} head")
                       for h in args.inference_head_labels for t in args.inference_threshold])
        for key, label in variants:
            lsh = r["inference"][key]
            speedup = lsh["rows_per_s"] / ex["rows_per_s"]
            diff = 100.0 * (lsh["p1"] - ex["p1"])
            met = speedup >= TARGET_LSH_SPEEDUP and diff >= -TARGET_LSH_P1_DROP
            print(f"{r['threads']:>7}{ex['rows_per_s']:>14,.0f}{lsh['rows_per_s']:>13,.0f}"
                  f"{speedup:>10.1f}x{100 * ex['p1']:>11.2f}{100 * lsh['p1']:>10.2f}"
                  f"{diff:>+10.2f}{100 * ex['p5']:>11.2f}{100 * lsh['p5']:>10.2f}"
                  f"   {label}: >= {TARGET_LSH_SPEEDUP:g}x at <= {TARGET_LSH_P1_DROP:g} pt lower "
                  f"P@1: {_target(met)}")
        stale = r.get("samples_since_rehash")
        if stale:
            print(f"{'':>7}note: LSH inference used hash tables built {stale:,} training samples "
                  f"before the end of training ({r['train_api']} does not rebuild them at the end; "
                  f"compare --train-api fit)")

    print_levels(summary["levels"], args.threads)

    torch_rows = [r for r in results if r["library"] == "torch" and "error" not in r]
    if torch_rows:
        print(f"\nTop-{TOP_K} inference, PyTorch full softmax (after its short training; "
              f"precision near chance is expected)")
        hdr = (f"{'threads':>7}{'rows':>7}{'rows/s':>11}{'P@1':>8}{'P@5':>8}"
               f"{'slidelearn exact / torch':>27}")
        print(hdr)
        print("-" * len(hdr))
        for r in torch_rows:
            inf = r["inference"]["full"]
            ratio = summary[str(r["threads"])].get("inference_speed_ratio_exact_vs_torch")
            rtxt = "-" if ratio is None else f"{ratio:.1f}x"
            print(f"{r['threads']:>7}{inf['rows']:>7}{inf['rows_per_s']:>11,.0f}"
                  f"{100 * inf['p1']:>8.2f}{100 * inf['p5']:>8.2f}{rtxt:>27}")

    base = [r["rss_after_data_bytes"] for r in results
            if "error" not in r and r.get("rss_after_data_bytes")]
    print("\nNotes: timings exclude data generation and model initialisation (slidelearn's "
          "first one-batch\npartial_fit call, timed as init_s in the JSON). Peak RSS is the "
          "VmHWM of each configuration's own\nprocess, interpreter, libraries and data included "
          f"({_gb(min(base) if base else None)} GB resident after loading the data). "
          "Precisions are in percent.")


# ----------------------------------------------------------------------------- main
def main(argv=None):
    """Run the benchmark: generate data, run every configuration, print and save.

    Parameters
    ----------
    argv : list of str or None, default=None
        Command line arguments; None reads ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0, or 1 if a configuration failed.
    """
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0

    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    info = machine_info()
    print(f"Command: {command}")
    print(f"Machine: {info['cpu']}, {info['usable_cores']} usable cores; torch {info['torch']}, "
          f"slidelearn {info['slidelearn']}")
    with tempfile.TemporaryDirectory(prefix="bench_slide_") as tmp:
        data_path = os.path.join(tmp, "data.npz")
        if args.xc_data:
            print(f"Loading {args.xc_data} ...", flush=True)
        elif args.preset:
            print(f"Generating the {args.preset} preset with {args.n_train:,} training rows ...",
                  flush=True)
        else:
            print(f"Generating {args.n_train + args.n_test:,} rows x {args.n_features:,} "
                  f"features, {args.n_labels:,} labels ...", flush=True)
        data_stats = make_data(args, data_path)
        results = []
        kinds = ["slidelearn"] + ([] if args.skip_torch else ["torch"])
        for t in args.threads:
            for level in args.levels:
                print(f"Running {LEVELS[level][0]} with {t} thread(s) in a fresh process ...",
                      flush=True)
                results.append(launch_worker("slidelearn", t, data_path,
                                             os.path.join(tmp, f"slidelearn_{level}_{t}.json"),
                                             level=level, before=args.before))
            for kind in kinds[1:]:
                print(f"Running {kind} with {t} thread(s) in a fresh process ...", flush=True)
                results.append(launch_worker(kind, t, data_path,
                                             os.path.join(tmp, f"{kind}_{t}.json")))
    summary = summarize(results, args.threads)
    summary["levels"] = summarize_levels(results, args.threads)
    print_report(info, data_stats, results, summary, args, command)
    if args.out:
        payload = {
            "command": command, "machine": info, "data": data_stats,
            "options": {k: v for k, v in vars(args).items()
                        if k not in ("worker", "worker_threads", "data", "result")},
            "targets": {"train_speed_ratio": TARGET_TRAIN_RATIO, "at_threads": TARGET_THREADS,
                        "levels_vs_before": TARGET_VS_BEFORE, "bf16_vs_fp32": TARGET_BF16_RATIO,
                        "bf16_max_p1_drop_points": TARGET_BF16_P1_DROP,
                        "lsh_speedup": TARGET_LSH_SPEEDUP, "lsh_max_p1_drop_points":
                        TARGET_LSH_P1_DROP},
            "results": results, "summary": summary,
        }
        with open(args.out, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"\nWrote {args.out}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
