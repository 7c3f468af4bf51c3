"""Time-to-accuracy study: test P@1 and P@5 against cumulative training time, for SLIDE
(hash-sampled, randomly sampled and full softmax) and PyTorch (full and sampled softmax).

Every method trains the same network (sparse input layer -> ReLU hidden layer ->
dropout -> one output neuron per label) epoch by epoch; after each epoch the test rows
are ranked over *all* labels (exact top-5) and P@1 / P@5 recorded against the training
wall time spent so far. Evaluation time is excluded from the time axis (and recorded
apart). Each (data set, method, seed) runs in a process of its own, so that no run
inherits another's threads, memory or OpenMP runtime; the driver collects one JSON
record a run, seed by seed across the methods.

Methods
-------
- ``slide-hash``: :class:`slidelearn.SlideClassifier` at its defaults (``random_state``
  the seed, ``n_jobs`` the threads) but with SLIDE's sampling,
  ``negative_sampling="lsh"``: above 8,192 labels one hidden layer of 128 units and an
  active set of ``min_active=1000`` output neurons a sample (its labels, the neurons the
  hash tables retrieve, random ones to fill); at most 8,192 labels the defaults are
  already a full softmax (512 hidden units), so the ``slide-*`` methods train the same
  model there (bibtex, and ``amazon`` at small ``--amazon-train``, since the preset
  scales its labels with the rows).
- ``slide-random``: the same without retrieval: ``active_threshold = n_tables + 1``.
  A neuron enters a sample's active set through the tables only when at least
  ``active_threshold`` of the L tables return it (``_network._active_set``: the bucket
  votes are counted per neuron in one byte, ``sl_take_voted`` keeps the counts
  ``>= threshold``); a neuron sits at most once in each table, so its count is at most L
  and none reaches L + 1. The active set is then the sample's labels plus uniform random
  neurons up to ``min_active``. The hashing, the bucket scans and the table rebuilds
  still run (and are timed): this isolates what retrieval does to accuracy, not what it
  costs.
- ``slide-mips``: the same with ``hash_family="mips"`` and ``n_codes=8``: SimHash of
  the output rows with their bias and a norm coordinate appended, against the queries
  ``[h, 1, 0]``, so that retrieval follows the scores ``w . h + b``.
- ``slide-drift``: ``slide-hash`` with ``rehash_drift=0.1``: the tables are rebuilt when
  a tenth of their entries is out of date (estimated on 256 neurons after each batch)
  instead of every ``rehash_interval`` samples.
- ``slide-shared``: ``negative_sampling="log_uniform"`` (what ``"auto"``, the default,
  picks on one process): the batch's labels and
  ``min_active`` log-uniform draws shared by its rows, with the log Q correction, one
  matrix product (what ``torch-sampled`` does, in slidelearn).
- ``slide-full``: every label active (``min_active = n_labels``); up to
  ``batch_size * n_labels <= 2**25`` the batch is scored by one sgemm
  (``SlideClassifier``'s dense output path), beyond by the sampled-softmax kernels over
  every neuron.
- ``torch-full``: PyTorch, the same network: ``nn.EmbeddingBag(n_features, H,
  mode="sum", sparse=True)`` weighted by the values of X, plus a bias, ReLU,
  ``nn.Dropout``, ``nn.Linear(H, n_labels)``; the loss ``SlideClassifier`` trains
  with the same parameters: where its ``loss="auto"`` is one-vs-all (every label
  scored densely: up to 8,192 labels), a logistic loss per label summed over the
  labels (``binary_cross_entropy_with_logits``), the output biases starting at each
  label's log-odds as ``SlideClassifier``'s do; otherwise cross-entropy against soft
  targets (``1 / |y|`` on each true label).
  H, dropout, batch size, Adam's step size, betas, epsilon and the per-epoch decay
  (``learning_rate * learning_rate_decay ** epoch``, as ``SlideClassifier.fit``) are
  read from ``SlideClassifier``'s defaults (or ``--slide-params``). The input layer
  starts as ``SlideClassifier``'s does (uniform in ``+-sqrt(3 / (64 e))``, ``e`` the
  mean squared norm of the training rows) and is updated by ``SparseAdam`` (lazy, as
  SLIDE's Adam); the rest by ``Adam``, PyTorch's initialisation.
- ``torch-sampled``: the same network with a sampled softmax. Per batch, ``S``
  (``--torch-negatives``) negatives shared by the rows are drawn with replacement from
  the log-uniform (Zipfian) distribution over the labels ranked by training frequency,
  ``P(k) = (log(k + 2) - log(k + 1)) / log(n + 1)`` (TensorFlow's
  ``log_uniform_candidate_sampler``), and deduplicated. The output rows of the union of
  the batch's true labels and the negatives are gathered (``nn.Embedding(sparse=True)``)
  and scored with one matmul. Each row's softmax runs over its own true labels
  (logits as they are) and the negatives, whose logits are corrected by ``- log Q``,
  ``Q`` the probability of being drawn at least once in S draws
  (``1 - (1 - P)**S``; TensorFlow's ``sampled_softmax_loss`` corrects the true logits
  too, this does not); a negative that is a true label of the row counts as that label
  only (accidental hits removed), the other rows' labels are masked out. The embeddings
  are updated by ``SparseAdam``.

SLIDE runs are exactly ``fit(max_iter=--epochs)`` with ``early_stopping=False`` and
``n_iter_no_change=--epochs`` (the training-loss rule never stops them): P@k is measured
in the ``callback``, the time axis sums the callback's ``info.seconds`` (the epochs'
training, shuffling included). ``partial_fit`` would not do: it always trains at
``learning_rate``, without the per-epoch decay of ``fit``. What ``fit`` does outside the
epochs (input validation, drawing the weights and filling the first hash tables,
the final rebuild of the tables) is recorded as ``setup_s``, off the time axis; so is the
construction of the PyTorch model (after importing ``torch._dynamo``, which the first
optimizer would otherwise import, for seconds). Points come at epoch ends only, for
every method alike: a run whose first epoch outlasts the budget has one point.

Data sets (``--data``)
----------------------
- ``bibtex``: ``../shared/data/bibtex``, the published train / test split, the label
  matrices padded to one width (``bench_defaults.load_xc``).
- ``text8``: skip-gram over ``../shared/data/text8-10M`` (whole vocabulary, window 2):
  the first ``--text8-train`` positions train, ``--text8-test`` positions drawn from the
  last 10% of the text test (``bench_defaults.load_text8``'s rows when it is 5,000).
- ``amazon``: ``make_extreme_classification_preset("amazon-670k", n_train=
  --amazon-train, n_test=--amazon-test, random_state=0)``; the preset scales the
  number of labels with the training rows.

Recorded per run: per epoch the epoch, cumulative training seconds, P@1, P@5, the
training loss (each method's own: a sampled loss runs over the sampled labels and is not
comparable with a full one) and the evaluation seconds (SLIDE: the mean active set
too); per run the method, data, seed, threads, the parameters, the data shape, the label
prior's P@1 / P@5 (the 5 most frequent training labels for every row), setup seconds,
peak RSS (``resource.getrusage``: the whole process, data included), why it stopped and
the process's total seconds. A run stops after ``--epochs`` epochs or after the epoch
whose cumulative training time reaches ``--budget`` seconds. Nothing is asserted.

Usage
-----
::

    # smoke test: tiny shapes (text8 2,000 positions, amazon 3,000 rows), every data
    # set and method, 2 epochs, 5 s budget
    PYTHONPATH=. python benchmarks/bench_time_to_accuracy.py study --quick

    # one run, printed as JSON (what the driver calls)
    PYTHONPATH=. python benchmarks/bench_time_to_accuracy.py run --data bibtex \\
        --method torch-sampled --seed 0 --threads 2

    # the recorded study: every data set and method, 3 seeds, 2 threads, a 600 s
    # budget a run; the .json, a .txt summary beside it, one P@1 figure a data set
    PYTHONPATH=. python benchmarks/bench_time_to_accuracy.py study \\
        --out benchmarks/results/tta_DATE.json --plot benchmarks/results/tta_DATE

    # the summary (and figures) of a recorded result again
    python benchmarks/bench_time_to_accuracy.py report benchmarks/results/tta_DATE.json

The summary is :func:`curves_rst` (reStructuredText simple tables, readable as text).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import slidelearn  # noqa: F401
except ImportError:  # a source checkout without PYTHONPATH
    sys.path.insert(0, os.path.dirname(HERE))

METHODS = ("slide-hash", "slide-random", "slide-mips", "slide-drift", "slide-shared",
           "slide-full", "torch-full", "torch-sampled")
DATASETS = ("bibtex", "text8", "amazon")
TOP_K = 5

# Shapes and stopping rules of the study and of --quick; explicit options override both.
PRESETS = {
    "full": {"epochs": 15, "budget": 600.0, "seeds": 3, "text8_train": 400_000,
             "text8_test": 5000, "amazon_train": 100_000, "amazon_test": 2000},
    # text8 keeps its whole vocabulary: a full-softmax epoch costs (rows x words x
    # hidden) however few rows there are, so --quick trains on few positions
    "quick": {"epochs": 2, "budget": 5.0, "seeds": 1, "text8_train": 2000,
              "text8_test": 1000, "amazon_train": 3000, "amazon_test": 300},
}
# Rows scored at once when the PyTorch models rank the test rows (bounds the logits
# held in memory to this many rows times the labels).
TORCH_EVAL_ROWS = 512
# The summary's time points, as fractions of the budget (of the longest run without one).
TIME_FRACTIONS = (0.125, 0.25, 0.5, 1.0)
# The summary's time to reach this fraction of the best mean P@1 of any method.
TARGET_FRACTION = 0.9


# ---------------------------------------------------------------------------- data
def _bench_defaults():
    """``benchmarks/bench_defaults.py`` (a script, not a package module), imported by path:
    its loaders and data folder are the defaults study's, reused here."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import bench_defaults
    return bench_defaults


def load_text8(n_train, n_test):
    """Skip-gram rows of text8 (whole vocabulary, window 2).

    Parameters
    ----------
    n_train : int
        Corpus positions from the start of the text that train.
    n_test : int
        Positions drawn (``default_rng(0)``, without replacement, sorted) from the last
        10% of the text that test: ``bench_defaults.load_text8``'s choice, which draws
        5,000.

    Returns
    -------
    X_train, Y_train, X_test, Y_test : scipy.sparse.csr_matrix
        One-hot centre words and context-word indicators over the whole vocabulary.
    """
    from slidelearn.datasets import load_text8_skipgram
    path = os.path.join(_bench_defaults().DATA, "text8-10M", "text8_first10M.txt")
    train = load_text8_skipgram(path, n_positions=n_train)
    test = load_text8_skipgram(path, start=int(0.9 * train.n_corpus_words))
    rows = np.random.default_rng(0).choice(test.data.shape[0], n_test, replace=False)
    rows.sort()
    return train.data, train.target.tocsr(), test.data[rows], test.target.tocsr()[rows]


def load_data(name, args):
    """The train and test rows of a data set.

    Parameters
    ----------
    name : {"bibtex", "text8", "amazon"}
        The data set.
    args : argparse.Namespace
        ``text8_train``, ``text8_test``, ``amazon_train`` and ``amazon_test``.

    Returns
    -------
    X_train, Y_train, X_test, Y_test : scipy.sparse.csr_matrix
        Features as float32, label indicators of one width.
    """
    if name == "bibtex":
        X_train, Y_train, X_test, Y_test = _bench_defaults().load_xc("bibtex")
    elif name == "text8":
        X_train, Y_train, X_test, Y_test = load_text8(args.text8_train, args.text8_test)
    elif name == "amazon":
        from slidelearn.datasets import make_extreme_classification_preset
        X_train, X_test, Y_train, Y_test = make_extreme_classification_preset(
            "amazon-670k", n_train=args.amazon_train, n_test=args.amazon_test,
            random_state=0)
    else:
        raise ValueError(f"unknown data set {name!r}")
    X_train, X_test = (sp.csr_matrix(X, dtype=np.float32) for X in (X_train, X_test))
    return X_train, sp.csr_matrix(Y_train), X_test, sp.csr_matrix(Y_test)


# ------------------------------------------------------------------------- helpers
def peak_rss_bytes():
    """Peak resident set size of this process so far, in bytes (``getrusage``)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return int(kib) * (1 if sys.platform == "darwin" else 1024)


def precisions(Y_test, top):
    """P@1 and P@5 of ranked label indices ``top`` (n_rows, 5) against ``Y_test``."""
    from slidelearn.metrics import precision_at_k
    top = np.asarray(top, dtype=np.int64)
    return (float(precision_at_k(Y_test, top[:, :1], k=1)),
            float(precision_at_k(Y_test, top[:, :TOP_K], k=TOP_K)))


def label_prior(Y_train, Y_test):
    """P@1 and P@5 of the label prior: the 5 most frequent training labels for every
    test row (what a model that learnt only the label frequencies scores)."""
    counts = np.bincount(sp.csr_matrix(Y_train).indices, minlength=Y_train.shape[1])
    top = np.argsort(-counts, kind="stable")[:TOP_K]
    p1, p5 = precisions(Y_test, np.tile(top, (Y_test.shape[0], 1)))
    return {"p@1": p1, "p@5": p5}


def slide_estimator(slide_params):
    """An unfitted ``SlideClassifier`` with ``slide_params`` (a dict, may be empty): the
    source of every default the methods share."""
    from slidelearn import SlideClassifier
    return SlideClassifier(**slide_params)


# ------------------------------------------------------------------------ SLIDE runs
def slide_method_params(method, n_labels, slide_params):
    """The ``SlideClassifier`` parameters that make ``method``, over ``slide_params``.

    Parameters
    ----------
    method : {"slide-hash", "slide-random", "slide-mips", "slide-drift", "slide-shared",
              "slide-full"}
    n_labels : int
        Labels of the data set.
    slide_params : dict
        Parameters given by ``--slide-params`` (they hold for every method).

    Returns
    -------
    params : dict
    """
    params = dict(slide_params)
    if method in ("slide-hash", "slide-random", "slide-mips", "slide-drift"):  # the tables
        params.setdefault("negative_sampling", "lsh")
    if method == "slide-random":
        # No neuron is found in more than n_tables tables: retrieval never reaches the
        # threshold, the active set is the labels plus random neurons (module docstring).
        params["active_threshold"] = slide_estimator(slide_params).n_tables + 1
    elif method == "slide-mips":
        # SimHash over the asymmetric MIPS transform (bias included): one bit a code, so
        # more codes a table than DWTA's 6 for selective buckets
        params.setdefault("hash_family", "mips")
        params.setdefault("n_codes", 8)
    elif method == "slide-drift":
        params.setdefault("rehash_drift", 0.1)
    elif method == "slide-shared":
        params["negative_sampling"] = "log_uniform"
    elif method == "slide-full":
        params["min_active"] = n_labels
    elif method != "slide-hash":
        raise ValueError(f"unknown SLIDE method {method!r}")
    return params


def run_slide(method, data, seed, threads, args):
    """Train one ``slide-*`` method with ``fit``, scoring the test rows after each epoch.

    Parameters
    ----------
    method : str
        One of the ``slide-*`` methods.
    data : tuple
        ``(X_train, Y_train, X_test, Y_test)``.
    seed, threads : int
        ``random_state`` and ``n_jobs``.
    args : argparse.Namespace
        ``epochs``, ``budget`` and ``slide_params`` (JSON).

    Returns
    -------
    rec : dict
        ``params``, ``curve`` (one dict an epoch), ``setup_s``, ``stopped``.
    """
    from slidelearn import SlideClassifier
    X_train, Y_train, X_test, Y_test = data
    n_labels = Y_train.shape[1]
    params = slide_method_params(method, n_labels, json.loads(args.slide_params))
    curve = []
    clock = {"train": 0.0, "callback": 0.0}

    def callback(est, info):
        t0 = time.perf_counter()
        clock["train"] += info.seconds  # the epoch's training only
        top, _ = est.predict_topk(X_test, k=TOP_K)  # exact: every label
        p1, p5 = precisions(Y_test, top)
        eval_s = time.perf_counter() - t0
        curve.append({"epoch": info.epoch, "train_s": clock["train"], "p@1": p1, "p@5": p5,
                      "loss": info.loss, "eval_s": eval_s,
                      "mean_active": info.extra.get("active neurons/sample")})
        print(f"  [{args.data} {method} seed {seed}] epoch {info.epoch}: "
              f"{clock['train']:.2f} s, P@1 {p1:.4f}, P@5 {p5:.4f}", file=sys.stderr,
              flush=True)
        clock["callback"] += time.perf_counter() - t0
        return args.budget is not None and clock["train"] >= args.budget

    # n_iter_no_change = epochs: the training-loss rule cannot stop fit before max_iter
    clf = SlideClassifier(**params, early_stopping=False, max_iter=args.epochs,
                          n_iter_no_change=args.epochs, random_state=seed, n_jobs=threads,
                          callback=callback)
    t0 = time.perf_counter()
    clf.fit(X_train, Y_train)
    fit_s = time.perf_counter() - t0
    resolved = {k: v for k, v in clf.get_params().items() if not callable(v) and k != "comm"}
    resolved["hidden_sizes"] = [int(c.shape[1]) for c in clf.coefs_[:-1]]
    return {
        "params": resolved, "curve": curve,
        # what fit did outside the epochs and the callbacks: validation, the initial
        # weights and tables, the final rebuild of the tables
        "setup_s": fit_s - clock["train"] - clock["callback"],
        "stopped": "epochs" if len(curve) >= args.epochs else "budget",
    }


# ------------------------------------------------------------------------ torch runs
class LogUniformSampler:
    """Shared negatives from the log-uniform (Zipfian) distribution over labels ranked by
    training frequency, as TensorFlow's ``log_uniform_candidate_sampler``.

    Parameters
    ----------
    label_counts : ndarray of shape (n_labels,)
        Training occurrences of each label; rank 0 is the most frequent (ties by index).
    n_draws : int
        Draws (with replacement) per call of :meth:`draw`.
    rng : numpy.random.Generator
        The draws' generator.

    Examples
    --------
    >>> import numpy as np
    >>> s = LogUniformSampler(np.array([1, 50, 3, 7]), 2, np.random.default_rng(0))
    >>> ids, log_q = s.draw()
    >>> bool(np.all(np.diff(ids) > 0)), bool(np.all(log_q <= 0))
    (True, True)
    """

    def __init__(self, label_counts, n_draws, rng):
        n = len(label_counts)
        self.n_labels, self.n_draws, self.rng = n, int(n_draws), rng
        self.by_rank = np.argsort(-np.asarray(label_counts), kind="stable")
        k = np.arange(n, dtype=np.float64)
        p = (np.log(k + 2) - np.log(k + 1)) / np.log(n + 1)
        # log of the probability of being drawn at least once in n_draws draws (p = 1,
        # one label: log1p(-1) = -inf gives probability 1, as it should)
        with np.errstate(divide="ignore"):
            log_q = np.log(-np.expm1(self.n_draws * np.log1p(-p)))
        self.log_q = np.empty(n)
        self.log_q[self.by_rank] = log_q

    def draw(self):
        """Distinct negatives of one batch.

        Returns
        -------
        ids : ndarray of int64
            Label indices, sorted, distinct.
        log_q : ndarray of float64
            ``log(1 - (1 - P(rank))**n_draws)`` of each.
        """
        u = self.rng.random(self.n_draws)
        # inverse CDF: rank k has u in [log(k + 1), log(k + 2)) / log(n + 1)
        rank = np.minimum((np.exp(u * np.log(self.n_labels + 1)) - 1).astype(np.int64),
                          self.n_labels - 1)
        ids = np.unique(self.by_rank[rank])
        return ids, self.log_q[ids]


def run_torch(method, data, seed, threads, args):
    """Train ``torch-full`` or ``torch-sampled`` epoch by epoch, scoring the test rows
    after each epoch.

    Parameters
    ----------
    method : {"torch-full", "torch-sampled"}
    data : tuple
        ``(X_train, Y_train, X_test, Y_test)``.
    seed, threads : int
        ``torch.manual_seed`` / shuffling seed and ``torch.set_num_threads``.
    args : argparse.Namespace
        ``epochs``, ``budget``, ``torch_negatives`` and ``slide_params`` (JSON: the
        ``SlideClassifier`` whose defaults set the network and Adam).

    Returns
    -------
    rec : dict
        ``params``, ``curve`` (one dict an epoch), ``setup_s``, ``stopped``.
    """
    import torch
    from torch import nn
    from slidelearn.utils.validation import feature_scale, scale_features

    try:  # imported by the first optimizer, for seconds: an import, not the model's setup
        import torch._dynamo  # noqa: F401
    except ImportError:
        pass

    t_setup = time.perf_counter()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X_train, Y_train, X_test, Y_test = data
    n_features, n_labels = X_train.shape[1], Y_train.shape[1]
    ref = slide_estimator(json.loads(args.slide_params))
    sizes = ref._hidden_sizes(n_labels)  # "auto" resolved as SlideClassifier does
    if len(sizes) != 1:
        raise ValueError(f"the PyTorch methods build one hidden layer, got {sizes}")
    if ref.alpha != 0:
        raise ValueError("the PyTorch methods use SparseAdam, which has no L2 penalty: "
                         "alpha must be 0")
    H, sampled = sizes[0], method == "torch-sampled"
    # the loss SlideClassifier trains on this multi-label y (its "auto" rule)
    from slidelearn._slide._classifier import _prior_log_odds
    bce = not sampled and (ref.loss == "bce" or (
        ref.loss == "auto" and ref._auto_loss(True, n_labels) == "bce"))
    if ref.feature_scaling == "auto":  # the data as SlideClassifier sees it
        scale = feature_scale(X_train)
        X_train, X_test = scale_features(X_train, scale), scale_features(X_test, scale)
    Y_train = Y_train.tocsr()
    Y_train.sum_duplicates()
    Y_train.eliminate_zeros()
    rows = np.flatnonzero(np.diff(Y_train.indptr) > 0)  # rows without labels: skipped

    class Net(nn.Module):
        """Weighted bag of input embeddings + bias, ReLU, dropout, output layer."""

        def __init__(self):
            super().__init__()
            self.embed = nn.EmbeddingBag(n_features, H, mode="sum", sparse=True)
            energy = float(X_train.multiply(X_train).sum()) / max(X_train.shape[0], 1)
            bound = np.sqrt(3.0 / (64.0 * max(energy, 1e-30)))  # SlideClassifier's rule
            nn.init.uniform_(self.embed.weight, -bound, bound)
            self.bias = nn.Parameter(torch.zeros(H))
            self.drop = nn.Dropout(ref.dropout)
            out = nn.Linear(H, n_labels)  # PyTorch's initialisation for both methods
            if sampled:  # rows gathered per batch, updated lazily
                self.out_w = nn.Embedding.from_pretrained(out.weight.detach().clone(),
                                                          freeze=False, sparse=True)
                self.out_b = nn.Embedding.from_pretrained(
                    out.bias.detach().clone()[:, None], freeze=False, sparse=True)
            else:
                self.out = out
                if bce:  # each label's log-odds, as SlideClassifier's one-vs-all
                    with torch.no_grad():
                        out.bias.copy_(torch.from_numpy(_prior_log_odds(
                            Y_train.indptr, Y_train.indices, n_labels)))

        def hidden(self, indices, offsets, weights):
            return torch.relu(self.embed(indices, offsets, per_sample_weights=weights)
                              + self.bias)

        def output(self):
            """The whole output layer (weights, biases)."""
            if sampled:
                return self.out_w.weight, self.out_b.weight[:, 0]
            return self.out.weight, self.out.bias

    def sparse_batch(X, batch):
        sub = X[batch]
        return (torch.from_numpy(sub.indices.astype(np.int64)),
                torch.from_numpy(sub.indptr[:-1].astype(np.int64)),
                torch.from_numpy(np.ascontiguousarray(sub.data, dtype=np.float32)))

    model = Net()
    betas = (ref.beta_1, ref.beta_2)
    if sampled:
        sparse_params = [model.embed.weight, model.out_w.weight, model.out_b.weight]
        dense_params = [model.bias]
        label_counts = np.bincount(Y_train.indices, minlength=n_labels)
        sampler = LogUniformSampler(label_counts, args.torch_negatives, rng)
    else:
        sparse_params = [model.embed.weight]
        dense_params = [model.bias, *model.out.parameters()]
    optimizers = [torch.optim.SparseAdam(sparse_params, lr=ref.learning_rate, betas=betas,
                                         eps=ref.epsilon),
                  torch.optim.Adam(dense_params, lr=ref.learning_rate, betas=betas,
                                   eps=ref.epsilon)]
    setup_s = time.perf_counter() - t_setup

    def train_step(batch):
        indices, offsets, weights = sparse_batch(X_train, batch)
        h = model.drop(model.hidden(indices, offsets, weights))
        sub = Y_train[batch]
        counts = np.diff(sub.indptr)
        row_of = torch.from_numpy(np.repeat(np.arange(len(batch)), counts))
        target = torch.from_numpy(np.repeat(1.0 / counts, counts).astype(np.float32))
        if sampled:
            neg, log_q = sampler.draw()
            cand, where = np.unique(np.concatenate([sub.indices, neg]), return_inverse=True)
            pos_col = torch.from_numpy(where[:len(sub.indices)].astype(np.int64))
            # - log Q on the negatives; +inf (logit -inf) on the other rows' labels
            corr = np.full(len(cand), np.inf, dtype=np.float32)
            corr[where[len(sub.indices):]] = log_q
            cand_t = torch.from_numpy(cand.astype(np.int64))
            logits = h @ model.out_w(cand_t).T + model.out_b(cand_t)[:, 0]
            pos = logits[row_of, pos_col]
            # a row's true labels keep their logits, also when drawn as negatives
            z = (logits - torch.from_numpy(corr)).index_put((row_of, pos_col), pos)
        else:
            z = model.out(h)
            pos = z[row_of, torch.from_numpy(sub.indices.astype(np.int64))]
        if bce:
            y = torch.zeros_like(z).index_put_(
                (row_of, torch.from_numpy(sub.indices.astype(np.int64))), torch.tensor(1.0))
            loss = nn.functional.binary_cross_entropy_with_logits(
                z, y, reduction="sum") / len(batch)
        else:
            mean_pos = torch.zeros(len(batch)).index_add_(0, row_of, target * pos)
            loss = (torch.logsumexp(z, dim=1) - mean_pos).mean()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
        return float(loss.detach()) * len(batch)

    def evaluate():
        model.eval()
        W, b = model.output()
        parts = []
        with torch.inference_mode():
            for start in range(0, X_test.shape[0], TORCH_EVAL_ROWS):
                batch = np.arange(start, min(start + TORCH_EVAL_ROWS, X_test.shape[0]))
                z = torch.addmm(b, model.hidden(*sparse_batch(X_test, batch)), W.T)
                parts.append(torch.topk(z, min(TOP_K, n_labels), dim=1).indices)
        model.train()
        return torch.cat(parts).numpy()

    curve, train_s = [], 0.0
    for epoch in range(args.epochs):
        lr = ref.learning_rate * ref.learning_rate_decay ** epoch  # as SlideClassifier.fit
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = lr
        t0 = time.perf_counter()
        order = rng.permutation(rows)
        total = 0.0
        for start in range(0, len(order), ref.batch_size):
            total += train_step(order[start:start + ref.batch_size])
        train_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        p1, p5 = precisions(Y_test, evaluate())
        curve.append({"epoch": epoch + 1, "train_s": train_s, "p@1": p1, "p@5": p5,
                      "loss": total / max(len(order), 1),
                      "eval_s": time.perf_counter() - t0})
        print(f"  [{args.data} {method} seed {seed}] epoch {epoch + 1}: "
              f"{train_s:.2f} s, P@1 {p1:.4f}, P@5 {p5:.4f}", file=sys.stderr, flush=True)
        if args.budget is not None and train_s >= args.budget:
            break
    params = {"hidden_sizes": [H], "dropout": ref.dropout, "batch_size": ref.batch_size,
              "learning_rate": ref.learning_rate,
              "learning_rate_decay": ref.learning_rate_decay, "beta_1": ref.beta_1,
              "beta_2": ref.beta_2, "epsilon": ref.epsilon,
              "feature_scaling": ref.feature_scaling, "torch_version": torch.__version__}
    if sampled:
        params["negatives_drawn"] = args.torch_negatives
    return {"params": params, "curve": curve, "setup_s": setup_s,
            "stopped": "epochs" if len(curve) >= args.epochs else "budget"}


# ----------------------------------------------------------------------- one run
def run_one(args):
    """The ``run`` subcommand: one method, data set and seed; prints one JSON line."""
    t0 = time.perf_counter()
    data = load_data(args.data, args)
    data_s = time.perf_counter() - t0
    X_train, Y_train, X_test, Y_test = data
    prior = label_prior(Y_train, Y_test)
    run = run_slide if args.method.startswith("slide-") else run_torch
    rec = run(args.method, data, args.seed, args.threads, args)
    rec.update(
        method=args.method, data=args.data, seed=args.seed, threads=args.threads,
        epochs=len(rec["curve"]),
        train_s=rec["curve"][-1]["train_s"] if rec["curve"] else 0.0,
        eval_s=sum(c["eval_s"] for c in rec["curve"]),
        shape={"n_train": X_train.shape[0], "n_test": X_test.shape[0],
               "n_features": X_train.shape[1], "n_labels": Y_train.shape[1]},
        prior=prior, budget=args.budget, max_epochs=args.epochs, data_s=data_s,
        peak_rss_bytes=peak_rss_bytes(), total_s=time.perf_counter() - t0)
    print(json.dumps(rec), flush=True)


# ------------------------------------------------------------------------- driver
_KEPT = "  (runs of other methods kept from: "
_KEPT_BEFORE = "  (with the other methods' runs of: "  # how earlier records nested them


def kept_command(command, kept):
    """``command`` followed by the distinct commands of the kept study ``kept`` (itself
    possibly a study with kept runs), one level deep.

    >>> kept_command("b.py --methods y", "b.py --methods x")
    'b.py --methods y  (runs of other methods kept from: b.py --methods x)'
    >>> kept_command("c", kept_command("b", "a"))
    'c  (runs of other methods kept from: b; a)'
    """
    earlier = []
    for marker in (_KEPT, _KEPT_BEFORE):
        kept = kept.replace(marker, "\0")
    for part in kept.split("\0"):
        part = part.strip().rstrip(")").strip() if "\0" in kept else part.strip()
        for one in part.split("; "):
            if one and one not in earlier:
                earlier.append(one)
    return f"{command}{_KEPT}{'; '.join(earlier)})"


SIZE_OPTIONS = ("epochs", "budget", "text8_train", "text8_test", "amazon_train",
                "amazon_test", "torch_negatives", "slide_params")


def spawn(data, method, seed, threads, args):
    """Run one configuration in a fresh process (``run``) and return its record; a record
    with ``error`` when it failed or ran past ``args.timeout`` seconds."""
    cmd = [sys.executable, os.path.abspath(__file__), "run", "--data", data,
           "--method", method, "--seed", str(seed), "--threads", str(threads)]
    for name in SIZE_OPTIONS:
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name) or 0)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    head = dict(data=data, method=method, seed=seed, threads=threads)
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env,
                             timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return dict(head, error=f"timeout after {args.timeout} s")
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return dict(head, error=f"exit status {out.returncode} (its stderr is above)")
    return json.loads(lines[-1])


def machine():
    """CPU model, cores, memory, OS and the versions of Python, NumPy, SciPy, PyTorch and
    slidelearn (``bench_slide.machine_info`` without the local path of the package)."""
    try:
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        from bench_slide import machine_info
        info = machine_info()
    except Exception as exc:  # an older or broken bench_slide: the essentials
        import importlib.metadata
        versions = {}
        for name in ("scipy", "torch", "slidelearn"):
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                versions[name] = None
        info = {"cpu": platform.processor() or platform.machine(),
                "logical_cores": os.cpu_count(), "os": platform.platform(),
                "python": platform.python_version(), "numpy": np.__version__, **versions,
                "machine_info_error": repr(exc)}
    info.pop("slidelearn_path", None)
    return info


def run_study(args):
    """The ``study`` subcommand: every data set x method x seed, each in its own process;
    the result is rewritten after every run (a study cut short keeps what it ran)."""
    datasets = _choices(args.data, DATASETS, "--data")
    methods = _choices(args.methods, METHODS, "--methods")
    command = " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])
    config = {name: getattr(args, name) for name in SIZE_OPTIONS}
    config.update(threads=args.threads, seeds=args.seeds, data=datasets, methods=methods,
                  quick=args.quick)
    result = dict(benchmark="time_to_accuracy", machine=machine(), command=command,
                  config=config, seconds=None, complete=False, records=[])
    if args.keep:
        # an earlier study's runs of other methods join this one's (same sizes only)
        kept = json.load(open(args.keep))
        for name in SIZE_OPTIONS:
            if kept["config"].get(name) != config.get(name) and name != "budget":
                raise SystemExit(f"--keep: {args.keep} ran with {name}="
                                 f"{kept['config'].get(name)!r}, this study {config[name]!r}")
        result["records"] = [r for r in kept["records"] if r["method"] not in methods]
        result["command"] = kept_command(result["command"], kept["command"])
        config["methods"] = sorted({r["method"] for r in result["records"]} | set(methods),
                                   key=_method_order)
    t0 = time.time()
    for data in datasets:
        # seed by seed across the methods, so that a slower stretch of the machine falls
        # on every method alike rather than on the one running then
        for seed in range(args.seeds):
            for method in methods:
                rec = spawn(data, method, seed, args.threads, args)
                result["records"].append(rec)
                print(json.dumps(rec), flush=True)
                result["seconds"] = time.time() - t0
                if args.out:
                    write_result(result, args.out, quiet=True)
    result["complete"] = True
    write_result(result, args.out)
    if args.plot:
        for path in plot_curves(result, args.plot):
            print(f"wrote {path}")


def _choices(text, allowed, option):
    values = [v for v in text.split(",") if v]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise SystemExit(f"{option}: unknown {unknown}; choose from {', '.join(allowed)}")
    return values


def write_result(result, out, quiet=False):
    """Print the summary and, with ``out``, write the JSON result and a ``.txt`` summary
    (machine, command, :func:`curves_rst`) beside it."""
    text = "\n".join(curves_rst(result))
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.splitext(out)[0] + ".txt", "w") as f:
            f.write(f"machine: {json.dumps(result['machine'])}\n"
                    f"command: {result['command']}\n\n{text}")
    if not quiet:
        print(text)


# ------------------------------------------------------------------------ summary
def _mean_spread(values, digits):
    """``mean ± half the range`` (the defaults study's convention), or the one value."""
    if not values:
        return None
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(max(values) - min(values)) / 2:.{digits}f}"


def _secs(x):
    """Seconds with about three significant digits."""
    if x is None:
        return None
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _simple_table(header, rows):
    """A reStructuredText simple table (also plain text) as a list of lines; empty cells
    are an em dash (a lone "-" would read as a bullet)."""
    cells = [["\u2014" if c in (None, "", "-") else str(c) for c in row]
             for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)

    def fmt(row):
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

    return [rule, fmt(cells[0]), rule, *[fmt(r) for r in cells[1:]], rule, ""]


def _first_time(curve, threshold):
    """Training seconds at the first epoch whose P@1 reaches ``threshold``, or None."""
    return next((c["train_s"] for c in curve if c["p@1"] >= threshold), None)


def _p1_at(curve, t):
    """P@1 of the last epoch done by ``t`` training seconds, or None."""
    done = [c for c in curve if c["train_s"] <= t]
    return done[-1]["p@1"] if done else None


def _partial(values, n, digits):
    """Mean ± half-range over the runs that have a value, with ``(k/n)`` when some lack it."""
    have = [v for v in values if v is not None]
    text = _mean_spread(have, digits)
    if text is not None and len(have) < n:
        text += f" ({len(have)}/{n})"
    return text


def curves_rst(result, underline="^", curves=True):
    """The summary of a study as reStructuredText (simple tables, readable as text).

    Parameters
    ----------
    result : dict
        What ``study --out`` writes: ``config`` and ``records``.
    underline : str, default="^"
        Underline character of the per-data-set headings.
    curves : bool, default=True
        Also a table of every method's mean curve (one line an epoch).

    Returns
    -------
    lines : list of str
        Per data set, a heading, the shape and stopping rules, and a table with, per
        method: runs, epochs, the best test P@1 and P@5, the training seconds to the best
        P@1 and to ``TARGET_FRACTION`` of the best mean P@1 of any method, seconds per
        epoch, setup seconds, peak RSS, and P@1 at fractions ``TIME_FRACTIONS`` of the
        budget (the last epoch done by then). Every figure is the mean over seeds and,
        after ``±``, half the range; ``(k/n)``: only k of the n seeds have the figure.
        Failed runs are listed last.

    Examples
    --------
    >>> rec = dict(data="bibtex", method="slide-hash", seed=0, threads=2, epochs=2,
    ...            shape=dict(n_train=10, n_test=5, n_features=8, n_labels=3),
    ...            setup_s=0.01, peak_rss_bytes=10**8, stopped="epochs",
    ...            curve=[{"epoch": 1, "train_s": 1.0, "p@1": 0.5, "p@5": 0.3, "loss": 2.0},
    ...                   {"epoch": 2, "train_s": 2.0, "p@1": 0.6, "p@5": 0.3, "loss": 1.5}])
    >>> lines = curves_rst({"config": {"budget": 2.0, "epochs": 2, "threads": 2},
    ...                     "records": [rec]}, curves=False)
    >>> print("\\n".join(lines[:2]))
    bibtex
    ^^^^^^
    >>> print(lines[8].split()[:5])
    ['slide-hash', '1', '2', '0.6000', '0.3000']
    """
    config = result.get("config", {})
    records = [r for r in result["records"] if "error" not in r]
    failed = [r for r in result["records"] if "error" in r]
    lines = []
    for data in sorted({r["data"] for r in records}, key=_data_order):
        runs = [r for r in records if r["data"] == data]
        budget = (config.get("budget")
                  or max((r["train_s"] for r in runs if r["curve"]), default=0.0) or 1.0)
        points = [f * budget for f in TIME_FRACTIONS]
        by_method = {}
        for r in runs:
            by_method.setdefault(r["method"], []).append(r)
        best_mean = {m: statistics.mean(max((c["p@1"] for c in r["curve"]), default=0.0)
                                        for r in rs) for m, rs in by_method.items()}
        reference = max(best_mean.values())
        shape = runs[0]["shape"]
        lines += [data, underline * len(data), "",
                  f"{shape['n_train']:,} training rows, {shape['n_test']:,} test rows, "
                  f"{shape['n_features']:,} features, {shape['n_labels']:,} labels; "
                  f"{runs[0]['threads']} threads; at most {config.get('epochs', '?')} "
                  f"epochs, stopped after the epoch that reaches "
                  f"{_secs(config['budget']) + ' s' if config.get('budget') else 'no budget'}"
                  f" of training. Seconds are training seconds (evaluation and setup "
                  f"excluded).{_prior_text(runs[0])}", ""]
        header = ["method", "runs", "epochs", "best P@1", "best P@5", "s to best P@1",
                  f"s to {TARGET_FRACTION:.0%} of {reference:.4f}", "s / epoch",
                  "setup s", "peak RSS GB"] + [f"P@1 @ {_secs(t)} s" for t in points]
        rows = []
        for method in sorted(by_method, key=_method_order):
            rs = by_method[method]
            n = len(rs)
            best = [max(r["curve"], key=lambda c: c["p@1"]) if r["curve"] else None
                    for r in rs]
            rows.append([
                method, n, _mean_spread([r["epochs"] for r in rs], 1 if n > 1 else 0),
                _partial([b and b["p@1"] for b in best], n, 4),
                _partial([max(c["p@5"] for c in r["curve"]) if r["curve"] else None
                          for r in rs], n, 4),
                _partial([b and b["train_s"] for b in best], n, 2),
                _partial([_first_time(r["curve"], TARGET_FRACTION * reference)
                          for r in rs], n, 2),
                _partial([r["curve"][-1]["train_s"] / len(r["curve"]) if r["curve"]
                          else None for r in rs], n, 2),
                _partial([r.get("setup_s") for r in rs], n, 2),
                _partial([r["peak_rss_bytes"] / 1e9 for r in rs], n, 2),
            ] + [_partial([_p1_at(r["curve"], t) for r in rs], n, 4) for t in points])
        lines += _simple_table(header, rows)
        if curves:
            rows = []
            for method in sorted(by_method, key=_method_order):
                rs = by_method[method]
                for e in range(max(len(r["curve"]) for r in rs)):
                    at = [r["curve"][e] for r in rs if len(r["curve"]) > e]
                    rows.append([method, e + 1, len(at),
                                 _mean_spread([c["train_s"] for c in at], 2),
                                 _mean_spread([c["p@1"] for c in at], 4),
                                 _mean_spread([c["p@5"] for c in at], 4),
                                 _mean_spread([c["loss"] for c in at], 4)])
            lines += [f"Curves on {data}: the runs that reached each epoch.", ""]
            lines += _simple_table(["method", "epoch", "runs", "train s", "P@1", "P@5",
                                    "training loss"], rows)
    if failed:
        lines += ["Runs that failed: " + "; ".join(
            f"{r['data']} {r['method']} seed {r['seed']}: {r['error']}" for r in failed), ""]
    return lines


def _prior_text(rec):
    prior = rec.get("prior")
    if not prior:
        return ""
    return (f" The label prior (the {TOP_K} most frequent training labels for every row) "
            f"scores P@1 {prior['p@1']:.4f}, P@5 {prior['p@5']:.4f}.")


def _data_order(name):
    return DATASETS.index(name) if name in DATASETS else len(DATASETS)


def _method_order(name):
    return METHODS.index(name) if name in METHODS else len(METHODS)


def plot_curves(result, folder):
    """One PNG a data set: test P@1 against training seconds, one line a method (the
    mean over the seeds that reached each epoch), the label prior dashed; the time axis
    is logarithmic when the runs' times span more than a factor of 20.

    Parameters
    ----------
    result : dict
        What ``study --out`` writes.
    folder : str
        Created if needed.

    Returns
    -------
    paths : list of str
        The files written.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    records = [r for r in result["records"] if "error" not in r and r["curve"]]
    paths = []
    for data in sorted({r["data"] for r in records}, key=_data_order):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        times = []
        for method in sorted({r["method"] for r in records if r["data"] == data},
                             key=_method_order):
            rs = [r for r in records if r["data"] == data and r["method"] == method]
            xs, ys = [], []
            for e in range(max(len(r["curve"]) for r in rs)):
                at = [r["curve"][e] for r in rs if len(r["curve"]) > e]
                xs.append(statistics.mean(c["train_s"] for c in at))
                ys.append(statistics.mean(c["p@1"] for c in at))
            times += xs
            ax.plot(xs, ys, marker="o", markersize=3,
                    label=f"{method} ({len(rs)} seed{'s' if len(rs) > 1 else ''})")
        prior = next((r["prior"] for r in records if r["data"] == data and r.get("prior")),
                     None)
        if prior:
            ax.axhline(prior["p@1"], color="grey", linestyle="--", linewidth=1,
                       label="label prior")
        if min(times) > 0 and max(times) / min(times) > 20:
            ax.set_xscale("log")
        ax.set_xlabel("training seconds (evaluation excluded)")
        ax.set_ylabel("test P@1")
        ax.set_title(f"{data}: time to accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(folder, f"tta_{data}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def report(args):
    """The ``report`` subcommand: the summary (and figures) of a recorded result."""
    with open(args.result) as f:
        result = json.load(f)
    print("\n".join(curves_rst(result)))
    if args.plot:
        for path in plot_curves(result, args.plot):
            print(f"wrote {path}")


# -------------------------------------------------------------------------- options
def _matplotlib_available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _add_shared(p):
    """Options of ``run`` and ``study``: stopping rules, sizes, method settings."""
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes (text8 2,000 positions, amazon 3,000 rows), "
                        "2 epochs, 5 s budget, 1 seed")
    p.add_argument("--epochs", type=int, default=None, help="most epochs (default 15)")
    p.add_argument("--budget", type=float, default=None,
                   help="stop after the epoch whose cumulative training seconds reach this "
                        "(default 600; 0: no budget)")
    p.add_argument("--text8-train", type=int, default=None,
                   help="text8 training positions (default 400000)")
    p.add_argument("--text8-test", type=int, default=None,
                   help="text8 test positions, from the last 10%% of the text (default 5000)")
    p.add_argument("--amazon-train", type=int, default=None,
                   help="amazon-670k preset training rows (default 100000)")
    p.add_argument("--amazon-test", type=int, default=None,
                   help="amazon-670k preset test rows (default 2000)")
    p.add_argument("--torch-negatives", type=int, default=1000,
                   help="log-uniform draws of shared negatives per batch (torch-sampled)")
    p.add_argument("--slide-params", default="{}",
                   help="JSON of SlideClassifier parameters for every method (the PyTorch "
                        "methods read the network and Adam settings from them)")
    p.add_argument("--threads", type=int, default=2, help="threads of each run")


def parse_args(argv=None):
    """Parse the command line, filling the sizes of ``--quick`` or of the study.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments without the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    args : argparse.Namespace
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("run", help="one method, data set and seed, printed as JSON")
    one.add_argument("--data", required=True, choices=DATASETS)
    one.add_argument("--method", required=True, choices=METHODS)
    one.add_argument("--seed", type=int, default=0)
    _add_shared(one)
    study = sub.add_parser("study", help="data sets x methods x seeds, each run in a "
                                         "process of its own")
    study.add_argument("--data", default=",".join(DATASETS),
                       help="comma-separated data sets")
    study.add_argument("--methods", default=",".join(METHODS),
                       help="comma-separated methods")
    study.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3)")
    study.add_argument("--out", help="write the result here (JSON) and a .txt summary "
                                     "beside it")
    study.add_argument("--timeout", type=float, default=4 * 3600,
                       help="seconds after which a run is killed and recorded as failed")
    study.add_argument("--keep", metavar="RESULT",
                       help="an earlier study's JSON result whose runs of the methods not "
                            "run now are kept in this one")
    study.add_argument("--plot", metavar="DIR",
                       help="write one P@1-vs-seconds PNG a data set into DIR "
                            "(needs matplotlib)")
    _add_shared(study)
    rep = sub.add_parser("report", help="the summary of a recorded result")
    rep.add_argument("result", help="a JSON file written by study --out")
    rep.add_argument("--plot", metavar="DIR", help="also write the figures into DIR")
    args = parser.parse_args(argv)
    if getattr(args, "plot", None) and not _matplotlib_available():
        parser.error("--plot needs matplotlib, which does not import here")
    if args.cmd == "report":
        return args
    preset = PRESETS["quick" if args.quick else "full"]
    for name, value in preset.items():
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, value)
    if not args.budget or args.budget <= 0:
        args.budget = None
    for name in ("epochs", "text8_train", "text8_test", "amazon_train", "amazon_test",
                 "torch_negatives", "threads") + (("seeds",) if args.cmd == "study" else ()):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        if not isinstance(json.loads(args.slide_params), dict):
            raise ValueError
    except ValueError:
        parser.error("--slide-params must be a JSON object")
    return args


def main(argv=None):
    args = parse_args(argv)
    {"run": run_one, "study": run_study, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
