"""SlideClassifier: SLIDE (sub-linear deep learning) behind a scikit-learn estimator."""
import math
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d
from slidelearn.utils._threads import single_threaded_blas

from slidelearn._slide import _network
from slidelearn._slide._norm import NormIndex, auto_budget
from slidelearn._slide._ivf import ClusterIndex, auto_n_clusters, probe_budget
from slidelearn._slide._lsh import LSHIndex, RehashSchedule
from slidelearn._slide._sampling import LogUniformSampler
from slidelearn._slide._state import SlideParams, SlideState
from slidelearn.metrics import precision_at_k
from slidelearn.utils import _bf16, _epochs, _mpi
from slidelearn.utils._openmp_helpers import effective_n_threads
from slidelearn.utils._random import check_seed as _check_seed
from slidelearn.utils._select import top_n
from slidelearn.utils.validation import (check_csr_indices, feature_scale, scale_features,
                                         validate_sparse_X)

__all__ = ["SlideClassifier"]

# predict_proba / decision_function refuse dense outputs with more entries than this.
_MAX_DENSE_OUTPUT = 2**27
_INT_MAX = 2**31 - 1  # the largest C int
# min_active="auto" makes every label active up to this many labels: there the output
# layer is small enough that sampling saves little time and costs accuracy
_FULL_SOFTMAX_LABELS = 8192
# with every label active, a batch's logits are one (batch x labels) array scored by
# sgemm (SlideClassifier._dense_output) up to this many floats (128 MiB)
_DENSE_OUTPUT_FLOATS = 2**25
# early_stopping="auto" holds out rows above this many training rows (as scikit-learn's
# HistGradientBoosting does): below, the rows held out cost more than the epochs saved
_AUTO_EARLY_STOPPING_ROWS = 10_000
# held-out rows at most: P@1 over them decides the stop as well as more rows would, and
# scoring them over every label each epoch would otherwise cost as much as training
_MAX_VALIDATION_ROWS = 10_000
# output neurons hashed after each batch with rehash_drift: 256 rows x the tables'
# codes estimate the stale share to about +-3 points at a cost far below a batch's
_DRIFT_PROBE_ROWS = 256
# training rows whose hidden activations give the mean query of inference="norm"
_MOMENT_ROWS = 4096
# rows inference="ivf" probes at a time: its probe list (rows x clusters int32) then
# stays within tens of MB for a few thousand clusters
_IVF_CHUNK_ROWS = 4096


def _batch_labels(Y_indptr, Y_indices, rows):
    """The label lists of ``rows`` as (indptr int64 from 0, indices int32)."""
    starts = Y_indptr[rows]
    counts = Y_indptr[rows + 1] - starts
    y_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=y_ptr[1:])
    y_idx = np.ascontiguousarray(
        Y_indices[np.repeat(starts - y_ptr[:-1], counts) + np.arange(y_ptr[-1])],
        dtype=np.int32)
    return y_ptr, y_idx


def _as_label_csr(Y):
    """Indicator matrix -> CSR with int32 label indices and int64 indptr."""
    Y = sp.csr_matrix(Y)
    Y.sum_duplicates()
    Y.eliminate_zeros()
    check_csr_indices(Y, name="y")
    data = Y.data
    if data.size and not np.all((data == 1) | (data == 0)):
        raise ValueError("A multi-label y must be a binary indicator matrix (entries 0 or 1).")
    return (np.ascontiguousarray(Y.indptr, dtype=np.int64),
            np.ascontiguousarray(Y.indices, dtype=np.int32))


def _prior_log_odds(Y_indptr, Y_indices, n_labels):
    """Each label's log-odds among the rows that have labels, with half a count added
    to each side (a label never seen gets about -log(2 n), not minus infinity): the
    starting output biases of a one-vs-all model, which then starts at the prior."""
    n = np.count_nonzero(np.diff(Y_indptr))
    counts = np.bincount(Y_indices, minlength=n_labels).astype(np.float64)
    return (np.log(counts + 0.5) - np.log(n - counts + 0.5)).astype(np.float32)


def _input_energy(X, comm=None):
    """Mean squared norm of the rows of the csr matrix ``X`` (of the rows of all the
    ranks of ``comm``: collective), rounded to 4 significant digits so that a sum in
    another order (over MPI ranks) draws the same model. It sets the scale of the
    input layer (``_init_model``). Summed in float64 a block of 2**20 values at a time,
    without a float64 copy of all of ``X.data``."""
    data, step = X.data, 1 << 20
    total, n_rows = 0.0, X.shape[0]
    for s in range(0, data.shape[0], step):
        block = data[s:s + step].astype(np.float64)
        total += float(np.dot(block, block))
    if comm is not None:
        total, n_rows = comm.allreduce(total), comm.allreduce(n_rows)
    return float(f"{total / max(n_rows, 1):.4g}")


class SlideClassifier(ClassifierMixin, BaseEstimator):
    """Neural network classifier for extreme multi-class and multi-label problems,
    trained with SLIDE's hash-sampled softmax.

    The network is a sparse input layer, dense ReLU hidden layers and one output
    neuron per label. For every training sample, locality-sensitive hash tables
    over the output weights retrieve the few output neurons likely to score
    high for the sample's last hidden activation; the softmax, its gradient and
    the Adam update are computed over that *active set* only (retrieved neurons,
    the sample's true labels, and random neurons up to ``min_active``). The
    samples of a batch are processed in parallel by ``n_jobs`` OpenMP threads,
    and their gradients summed in batch order. With the default ``min_active="auto"``
    and at most 8,192 labels the active set covers every label: training is exact
    (no sampling), one-vs-all for multi-label ``y`` (see ``loss``).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int or "auto", default="auto"
        Widths of the hidden ReLU layers; the first one is the sparse input layer.
        ``"auto"``: one layer of 512 units up to 8,192 labels (where the output
        layer is small, the width buys accuracy), 128 beyond (where the output layer,
        ``12 * n_classes * width`` bytes with Adam's moments, dominates memory).
    feature_scaling : {"auto"} or None, default="auto"
        ``"auto"``: the first ``fit`` divides every feature whose root mean square
        over the training rows exceeds 1 by it (``feature_scale_``), in training and
        prediction alike; binary, tf-idf and other features within about [-1, 1]
        are left as they are. Raw measurements (counts, lengths, intensities in the
        thousands) would otherwise dominate the input layer and can make training
        diverge. Scaling keeps X sparse. None: use X as given (put your own scaler,
        e.g. :class:`~sklearn.preprocessing.MaxAbsScaler`, in a pipeline).
    hash_family : {"auto", "dwta", "wta", "simhash", "doph", "mips"}, default="auto"
        Hash family of the output-layer tables. ``"auto"``: ``"dwta"`` for the
        training tables (SLIDE's), and where training does not sample from them
        (the default shared negatives, or every label active) ``inference="lsh"``
        uses ``"mips"`` tables of ``n_codes`` x ``n_tables`` instead, built on first
        use, whose codes follow the scores inference ranks by (see the inference
        guide). Otherwise the family of every table: densified winner-take-all,
        winner-take-all, signed random projections, densified one-permutation
        minhash of the positive coordinates, or ``"mips"``: signed random
        projections (one bit a code, where a DWTA code has ``bin_size`` values) of
        the output rows with their bias and a norm coordinate appended against the
        queries ``[h, 1, 0]``, so that retrieval follows the scores ``w . h + b``
        (maximum inner product search).
    n_codes : int, default=6
        K, hash codes concatenated into one bucket id per table. Larger K makes
        smaller, more selective buckets (fewer neurons retrieved). K=4 retrieves
        thousands of neurons a row on large label sets, which swamps the sampled
        softmax; 6 is the original SLIDE's setting.
    n_tables : int, default=50
        L, number of hash tables, at most 254 (a neuron's count of the tables that
        retrieve it is kept in one byte, so that a thread's counts over all labels
        stay in the L2 cache).
    bin_size : int or "auto", default="auto"
        Coordinates compared by one WTA / DWTA code (must not exceed the last
        hidden width), or the non-zeros of one ``"mips"`` projection. ``"auto"``:
        8 for WTA / DWTA (SLIDE's setting); every coordinate for ``"mips"``, whose
        dense projections see the bias coordinate in every code and are applied as
        one matrix-vector product (sparse ones find far fewer of the exact answers:
        see the inference guide).
    range_pow : int, default=18
        At most ``2**range_pow`` buckets per table; larger code spaces are folded
        by hashing.
    bucket_size : int, default=128
        Maximum neuron ids kept per bucket.
    bucket_policy : {"fifo", "reservoir"}, default="fifo"
        Which ids a full bucket keeps: the last inserted (neurons are inserted in
        index order), or a uniform random sample. FIFO keeps the highest label
        indices in every table: where indices follow label frequency, prefer
        ``"reservoir"`` (see the SLIDE page of the user guide).
    min_active : int or "auto", default="auto"
        Random output neurons are added to each training sample's active set until
        it has at least this many neurons (or all of them). ``"auto"``: every label
        (exact training, no sampling) when there are at most 8,192 labels, where
        the output layer costs little next to the input layer and sampling only
        loses accuracy; 1000 beyond.
    negative_sampling : {"auto", "lsh", "log_uniform"}, default="auto"
        Where a training sample's negatives come from when not every label is
        active. ``"lsh"``: SLIDE's, an active set per sample of the neurons its
        hash tables retrieve and random neurons up to ``min_active``.
        ``"log_uniform"``: ``min_active`` draws for the whole batch, half from the
        log-uniform law over the labels ranked by training frequency and half
        uniform (so that rare labels are drawn too), shared by
        its rows with the batch's labels, each drawn negative's logit lowered by
        the log of its chance of being drawn (the sampled-softmax correction, so
        that frequent labels are not pushed down for being drawn often), scored
        with one matrix product; the tables are not used in training. A single
        process only. ``"auto"``: ``"log_uniform"`` without ``comm``, else
        ``"lsh"`` (and ``"lsh"`` in bfloat16 when every label is active: each
        sample then scores all of them). On text8 and the Amazon-670K shape it reached
        a higher P@1 several times sooner than the hash tables (the
        time-to-accuracy benchmark); with every label active neither is used.
    active_threshold : int, default=1
        A retrieved neuron joins the active set only if it was found in at least
        this many of the L tables (1 = union of the buckets).
    inference_threshold : int, default=1
        With ``inference="lsh"``, a retrieved neuron is scored only if it was found in
        at least this many of the L tables.
    inference_max_candidates : int or None, default=None
        With ``inference="lsh"``, score at most this many retrieved neurons per row:
        those found in the most tables (ties in retrieval order). Between the union
        of the buckets (``inference_threshold=1``: best recall, most work) and a
        higher threshold (little work, lower recall), it bounds the work per row
        while keeping the neurons the tables agree on. None: no cap.
    inference_head_labels : int, default=0
        With ``inference="lsh"``, also score this many of the most frequent training
        labels for every row, whether the tables retrieve them or not: frequent
        labels are the answer to many rows, and scoring a fixed few hundred or
        thousand of them exactly costs little next to the retrieved candidates. 0:
        retrieved neurons only.
    inference_n_codes, inference_n_tables : int or None, default=None
        When either is set, ``fit`` and ``partial_fit`` end by building a second set
        of tables from the final weights, with these K and L (None: the training
        value; L at most 254), used only by ``inference="lsh"``, with newly drawn
        hash functions, at the cost of ``L * (n_classes + buckets)`` integers of
        memory and a rebuild at the end of every ``fit`` / ``partial_fit`` call.
        None for both: LSH inference uses the training functions. New functions
        retrieve the true labels less often than the training ones (see
        ``inference_bucket_size``).
    inference_bucket_size : int or None, default=None
        When set, ``fit`` and ``partial_fit`` end by building tables for
        ``inference="lsh"`` whose buckets keep a uniform random sample of at most this
        many neurons (reservoir sampling), with the training hash functions (or the
        new ones of ``inference_n_codes`` / ``inference_n_tables``). Smaller buckets
        mean fewer candidates per row: faster LSH inference for some loss of recall.
        Keep the training functions where you can: training shapes the network so
        that true labels collide with their inputs under those functions, and freshly
        drawn ones retrieve them far less often.
    inference_n_clusters : int or "auto", default="auto"
        With ``inference="ivf"``: the number of k-means clusters of the output
        neurons. ``"auto"``: about ``4 * sqrt(n_classes)``.
    inference_n_probe : int or "auto", default="auto"
        With ``inference="ivf"``: how many clusters, those of highest centroid score,
        each row scores every neuron of. ``"auto"``: the fewest best clusters that
        hold one label in 25 (at least 20 k; see the inference page of the user guide
        for what it found on text8 and the Amazon-670K law). More finds the exact
        answer more often, at a cost proportional to the labels scored.
    inference_budget : float in (0, 1] or "auto", default="auto"
        With ``inference="norm"``: the share of the output neurons each row scores,
        those of highest score bound at a typical query (see ``inference``).
        ``"auto"``: one in 20, at least 1,000 neurons (see the inference page of
        the user guide for what it found on text8 and the Amazon-670K law).
    rehash_interval : int, default=6400
        Samples between two rebuilds of the tables from the current weights.
    rebuild_interval : int, default=128000
        Samples between two draws of new hash functions.
    rehash_drift : float in (0, 1] or None, default=None
        With SLIDE's sampling (``negative_sampling="lsh"``): rebuild the tables when
        this share of their entries is out of date, instead of every
        ``rehash_interval`` samples. After each batch a sample of 256 output neurons
        is hashed with the current weights and compared with the codes of the last
        build; early in training, when the weights move fast, the tables are rebuilt
        more often, later less. ``None``: by count (fresher tables retrieved few more
        true labels and trained no better model on the Amazon-670K law; see the user
        guide's "Rebuild schedule").
    interval_growth : float, default=1.0
        Both intervals are multiplied by this factor after each use (> 1 rebuilds
        less and less often as training settles).
    learning_rate : float, default=3e-3
        Adam step size.
    learning_rate_decay : float, default=0.75
        ``fit`` multiplies the step size by this factor after every epoch (epoch
        ``e`` uses ``learning_rate * learning_rate_decay ** e``); ``partial_fit``
        always uses ``learning_rate``.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam parameters. Only rows and neurons that received a gradient in a batch
        are updated (lazy Adam, as PyTorch's ``SparseAdam``).
    precision : {"float32", "bfloat16"}, default="float32"
        Storage and arithmetic of the output layer during training. The weights and
        their updates are float32 either way. ``"bfloat16"`` stores each weight as
        two 16-bit halves: its rounding to bfloat16, in an array of its own, and the
        16 bits that make it exact again, beside Adam's two moments stored in
        bfloat16 (the second one rounded stochastically, so that its updates below
        half a bfloat16 step survive in expectation): 8 bytes of weights and
        optimizer state per output weight instead of 12. Each sample's logits and
        its gradient with respect to the last hidden layer come from the rounded
        weights and the activations rounded to bfloat16, with float32 accumulation
        (``vdpbf16ps`` on CPUs with AVX512-BF16, or one float32 matrix product of
        the rounded values with the shared negatives of ``negative_sampling``); so
        does rehashing. On text8 it trained the float32 model's P@1 (the defaults
        study of the user guide). Prediction uses
        the float32 weights, which are kept as well (written back when training
        returns), so memory is about that of ``"float32"``. Single process only (not
        with ``comm``). See the CPU performance page of the user guide for what it
        gains.
    loss : {"auto", "softmax", "pick_all", "bce"}, default="auto"
        The training loss of the output layer. ``"softmax"``: the softmax
        cross-entropy over the active output neurons, with a target of 1 / m on
        each of a row's m labels, so every row weighs the same. ``"pick_all"``: one
        cross-entropy term per label, so a row weighs m. ``"bce"``: one-vs-all, a
        logistic loss per output neuron (target 1 on the row's labels, 0 on every
        other label); it scores every label, so it needs them all active (see
        ``min_active``), ``precision="float32"``, ``batch_size * n_classes`` at most
        2**25 and no ``comm``. Its output biases start at each label's log-odds in
        the first fit's rows (the label prior), not at probability 1/2 for every
        label. The softmax ranks labels by their expected share of a row's labels,
        one-vs-all by their chance to be one of them, which is what P@k rewards.
        ``"auto"``: ``"bce"`` for a multi-label ``y`` where it is possible (up to
        8,192 labels by default), ``"softmax"`` otherwise. In the defaults study
        one-vs-all was ahead on P@1, P@3 and P@5 on Bibtex (2.4 labels a row) and
        on the GO sets (31 a row), where the softmax fell below the label prior's
        P@1. The loss used is ``loss_``.
    dropout : float, default=0.5
        Probability of zeroing each unit of the last hidden layer during training
        (inverted dropout; inference uses every unit). The output layer has a
        weight vector per label and few rows per label to fit it: dropping half
        the units is the regulariser that held up on every data set of the
        defaults study (see the user guide).
    alpha : float, default=0.0
        L2 penalty added to the gradient of each updated row of the input and
        output layers (the large sparse layers; dense hidden layers and biases
        are not penalised). Off by default: a penalty applied only to the rows a
        batch updates shrinks the rarely sampled labels of a large output layer
        towards zero, down to the label prior.
    batch_size : int, default=128
        Samples per batch.
    max_iter : int, default=12
        Epochs of ``fit``.
    tol : float, default=1e-4
        Training stops when the loss (or, with ``early_stopping``, the validation
        precision@1) has not improved by ``tol`` for ``n_iter_no_change`` epochs.
    n_iter_no_change : int, default=3
        See ``tol``.
    early_stopping : "auto" or bool, default="auto"
        Hold out ``validation_fraction`` of the training rows, score P@1 on them
        after each epoch, stop when it stops improving and keep the best weights.
        ``"auto"``: on when ``fit`` gets more than 10,000 rows (and not under
        ``comm``), where a tenth of the rows costs little and one or two epochs
        may already be the best; off below, where every row counts.
    validation_fraction : float, default=0.1
        Share of the training rows held out by ``early_stopping``, at most 10,000
        rows.
    shuffle : bool, default=True
        Shuffle the rows at every epoch.
    inference : {"exact", "lsh", "ivf", "norm"}, default="exact"
        How ``predict``, ``predict_topk`` and ``score`` rank labels: over all output
        neurons (blocked matrix product with a running top-k), over the neurons
        the hash tables retrieve (sub-linear), over the neurons of the clusters
        whose centroids score highest (``"ivf"``: an inverted-file index, k-means of
        the output rows made comparable by their norm), or over a fixed
        ``inference_budget`` of neurons (``"norm"``): a neuron's score is its score
        for the mean hidden activation of the training rows plus at most the norm of
        its centred output row times the query's distance to that mean, and the
        neurons of highest such bound at a typical distance are kept. The ``"ivf"``
        and ``"norm"`` indexes are built at the end of
        ``fit`` when ``inference`` asks for them, else on first use, and after every
        change of the weights.
    warm_start : bool, default=False
        Continue from the current weights when ``fit`` is called again.
    n_jobs : int, default=None
        OpenMP threads. None uses all usable cores (honouring ``OMP_NUM_THREADS``
        and the CPU affinity mask); negative values count back from the number of
        usable cores. A fixed ``random_state`` gives the same model, bit for bit,
        for any ``n_jobs`` (see the user guide's page on threads for the one
        exception, very large active sets).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, hash functions, shuffling and the per-sample random
        streams. None: a seed drawn from the operating system's entropy.
    verbose : int, default=0
        Print loss, samples/s, active-set size, validation P@1 and time per epoch.
    callback : callable or None, default=None
        Called after every training epoch (of ``fit``, and the one of each
        ``partial_fit``) as ``callback(estimator, info)`` with an
        :class:`~slidelearn.utils.EpochInfo` (epoch, loss, seconds, validation
        score...), e.g. to draw a progress bar or log to a tracker. Training stops
        after the epoch when it returns True. Under ``comm`` it is called on every
        rank, and training stops when it returns True on any rank.
    comm : mpi4py.MPI.Intracomm or None, default=None
        Train on several processes (one machine or a cluster) over MPI. ``fit`` and
        ``partial_fit`` then run SPMD: every rank of ``comm`` calls them with its own
        rows (a rank may have none, as long as some rank has rows), and afterwards
        every rank holds the same fitted model. Label parallel:
        each rank owns a slice of the output neurons, their Adam state and their hash
        tables; the hidden activations of the global batch are shared with
        allgather, the softmax normalisers combined across ranks, and the input and
        hidden layers are replicated (their gradients summed). ``batch_size`` is the
        global batch, ``min_active`` is split among the slices, and ``n_jobs=None``
        gives each rank its share of its node's cores. Launch with ``mpiexec -n 4
        python -m mpi4py script.py`` (``pip install slidelearn[mpi]``). Every rank
        builds the estimator with the same parameters (``n_jobs``, ``verbose`` and
        ``random_state`` aside: rank 0's seed is used) and, for ``partial_fit``, the
        same ``classes``; ``classes_`` is otherwise the union of the ranks' labels.
        Not combined with ``early_stopping=True`` (``"auto"`` is off under
        ``comm``). With ``dropout``, each rank draws the dropped units of its own
        rows, so the model differs from a single process's fit. The communicator is
        not pickled.
    rank_memory_budget : float or None, default=None
        With ``comm``: the most bytes of output layer one rank may hold after ``fit``.
        Each rank draws and trains only its slice of the output neurons; at the end
        the slices are gathered on every rank when the whole output layer with its
        Adam moments (``12 * n_classes * (H + 1)`` bytes) fits this budget. Otherwise
        it stays spread over the ranks: the model then predicts collectively (every
        rank calls ``predict`` / ``predict_topk`` / ``score`` with its own rows,
        ``comm`` set to as many ranks), each pickle holds its rank's slice, and
        ``decision_function`` / ``predict_proba`` are unavailable. ``None``: always
        gather.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (multi-class) or the column indices of the indicator
        (multi-label).
    n_features_in_ : int
        Number of input features.
    feature_names_in_ : ndarray of str
        Names of the features, when X was a DataFrame with string column names.
    feature_scale_ : ndarray of shape (n_features,) or None
        Factors applied to the columns of X (see ``feature_scaling``); None when
        no feature needed scaling.
    multilabel_ : bool
        Whether the model was fitted on a 2-D indicator y.
    sparse_output_ : bool
        Whether ``predict`` returns a sparse CSR indicator: True when the model was
        fitted on a sparse indicator y. Fit on ``MultiLabelBinarizer(sparse_output=True)``
        output when there are many labels.
    coefs_ : list of ndarray
        Weights: the input layer (n_features, H0), the dense hidden layers
        (H_{i-1}, H_i), and the output layer stored neuron-major (n_classes, H_last).
    intercepts_ : list of ndarray
        Biases of the hidden layers and of the output layer.
    loss_ : str
        The loss trained with (``loss`` with ``"auto"`` resolved by the first fit).
    loss_curve_ : list of float
        Mean training loss (of ``loss_``) of every epoch.
    validation_scores_ : list of float or None
        Validation P@1 per epoch when ``early_stopping``.
    best_validation_score_ : float or None
        Best validation P@1 when ``early_stopping``.
    n_iter_ : int
        Epochs run (partial_fit counts one per call).
    t_ : int
        Training samples seen.
    n_threads_ : int
        Threads used by the last fit.
    mean_active_ : float
        Mean active-set size per sample during the last epoch.

    See Also
    --------
    slidelearn.metrics.precision_at_k : The usual metric of extreme classification.

    Notes
    -----
    ``predict`` for a multi-label model returns a ``scipy.sparse.csr_matrix``
    indicator: label ``j`` is predicted for a row when its probability is at
    least half that of the row's most probable label (``z_j >= z_max - log 2``
    for the logits ``z``), among the row's ``max(10, 2 * m)`` best labels, where
    ``m`` is the largest label count of a training row; with ``loss_ == "bce"``,
    among the same labels, when its own probability is at least 1/2 (``z_j >= 0``),
    and the most probable label in any case. Multi-class ``predict``
    returns the most probable class. Rows without any label are skipped in
    training.

    The weights of the input layer start uniform in ``[-b, b]`` with
    ``b = sqrt(3 / (64 e))``, where ``e`` is the mean squared norm of the rows of
    the first ``fit`` (or ``partial_fit``) data (at least 1e-30; 1 for all-zero
    rows): a typical row's pre-activations then have rms 1/8 whatever the number
    of features and the scale of the values.
    The hidden and output layers use Glorot's uniform initialisation, as
    :class:`~sklearn.neural_network.MLPClassifier` does.

    Examples
    --------
    >>> from slidelearn import SlideClassifier
    >>> from slidelearn.datasets import make_extreme_classification
    >>> X, Y = make_extreme_classification(n_samples=2000, n_features=500, n_labels=100,
    ...                                    random_state=0)
    >>> clf = SlideClassifier(max_iter=5, random_state=0).fit(X[:1500], Y[:1500])
    >>> labels, scores = clf.predict_topk(X[1500:], k=5)
    >>> labels.shape
    (500, 5)
    >>> clf.score(X[1500:], Y[1500:]) > 0.5
    True
    """

    # (parameters the kernels take as C ints stop at 2**31 - 1: beyond, the call
    # would raise OverflowError deep inside fit)
    _parameter_constraints = {
        "hidden_layer_sizes": [StrOptions({"auto"}), "array-like",
                               Interval(Integral, 1, None, closed="left")],
        "feature_scaling": [StrOptions({"auto"}), None],
        "hash_family": [StrOptions({"auto", "dwta", "wta", "simhash", "doph", "mips"})],
        "n_codes": [Interval(Integral, 1, 32, closed="both")],
        "n_tables": [Interval(Integral, 1, _network.MAX_TABLES, closed="both")],
        "bin_size": [Interval(Integral, 2, None, closed="left"), StrOptions({"auto"})],
        "range_pow": [Interval(Integral, 1, 30, closed="both")],
        "bucket_size": [Interval(Integral, 1, _INT_MAX, closed="both")],
        "bucket_policy": [StrOptions({"fifo", "reservoir"})],
        "min_active": [StrOptions({"auto"}), Interval(Integral, 0, _INT_MAX, closed="both")],
        "active_threshold": [Interval(Integral, 1, _INT_MAX, closed="both")],
        "inference_threshold": [Interval(Integral, 1, _INT_MAX, closed="both")],
        "inference_max_candidates": [Interval(Integral, 1, _INT_MAX, closed="both"), None],
        "inference_head_labels": [Interval(Integral, 0, None, closed="left")],
        "inference_n_codes": [Interval(Integral, 1, 32, closed="both"), None],
        "inference_bucket_size": [Interval(Integral, 1, _INT_MAX, closed="both"), None],
        "inference_n_tables": [Interval(Integral, 1, _network.MAX_TABLES, closed="both"), None],
        "inference_n_clusters": [StrOptions({"auto"}),
                                 Interval(Integral, 1, _INT_MAX, closed="both")],
        "inference_n_probe": [StrOptions({"auto"}), Interval(Integral, 1, _INT_MAX, closed="both")],
        "inference_budget": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="right")],
        "rehash_interval": [Interval(Integral, 1, None, closed="left")],
        "rebuild_interval": [Interval(Integral, 1, None, closed="left")],
        "rehash_drift": [Interval(Real, 0, 1, closed="right"), None],
        "interval_growth": [Interval(Real, 1.0, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_decay": [Interval(Real, 0, 1, closed="right")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "precision": [StrOptions({"float32", "bfloat16"})],
        "loss": [StrOptions({"auto", "softmax", "pick_all", "bce"})],
        "negative_sampling": [StrOptions({"auto", "lsh", "log_uniform"})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": [StrOptions({"auto"}), "boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "shuffle": ["boolean"],
        "inference": [StrOptions({"exact", "lsh", "ivf", "norm"})],
        "warm_start": ["boolean"],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callback": [callable, None],
        "comm": "no_validation",
        "rank_memory_budget": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        hidden_layer_sizes="auto",
        *,
        feature_scaling="auto",
        hash_family="auto",
        n_codes=6,
        n_tables=50,
        bin_size="auto",
        range_pow=18,
        bucket_size=128,
        bucket_policy="fifo",
        min_active="auto",
        negative_sampling="auto",
        active_threshold=1,
        inference_threshold=1,
        inference_max_candidates=None,
        inference_head_labels=0,
        inference_n_codes=None,
        inference_n_tables=None,
        inference_bucket_size=None,
        inference_n_clusters="auto",
        inference_n_probe="auto",
        inference_budget="auto",
        rehash_interval=6400,
        rebuild_interval=128000,
        rehash_drift=None,
        interval_growth=1.0,
        learning_rate=3e-3,
        learning_rate_decay=0.75,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        precision="float32",
        loss="auto",
        dropout=0.5,
        alpha=0.0,
        batch_size=128,
        max_iter=12,
        tol=1e-4,
        n_iter_no_change=3,
        early_stopping="auto",
        validation_fraction=0.1,
        shuffle=True,
        inference="exact",
        warm_start=False,
        n_jobs=None,
        random_state=None,
        verbose=0,
        callback=None,
        comm=None,
        rank_memory_budget=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.feature_scaling = feature_scaling
        self.hash_family = hash_family
        self.n_codes = n_codes
        self.n_tables = n_tables
        self.bin_size = bin_size
        self.range_pow = range_pow
        self.bucket_size = bucket_size
        self.bucket_policy = bucket_policy
        self.min_active = min_active
        self.negative_sampling = negative_sampling
        self.active_threshold = active_threshold
        self.inference_threshold = inference_threshold
        self.inference_max_candidates = inference_max_candidates
        self.inference_head_labels = inference_head_labels
        self.inference_n_codes = inference_n_codes
        self.inference_n_tables = inference_n_tables
        self.inference_bucket_size = inference_bucket_size
        self.inference_n_clusters = inference_n_clusters
        self.inference_n_probe = inference_n_probe
        self.inference_budget = inference_budget
        self.rehash_interval = rehash_interval
        self.rebuild_interval = rebuild_interval
        self.rehash_drift = rehash_drift
        self.interval_growth = interval_growth
        self.learning_rate = learning_rate
        self.learning_rate_decay = learning_rate_decay
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.precision = precision
        self.loss = loss
        self.dropout = dropout
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.inference = inference
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.callback = callback
        self.comm = comm
        self.rank_memory_budget = rank_memory_budget

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags

    # ------------------------------------------------------------- pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_work", None)  # gradient buffers and scratch: zero between batches
        state["comm"] = None  # a communicator belongs to the job that ran the fit
        return state

    def __setstate__(self, state):
        # models pickled before the loss parameter trained with loss="softmax", and
        # before loss="auto" with the loss they were given
        state.setdefault("loss", "softmax")
        if "_state" in state or "_model" in state:
            state.setdefault("loss_", state["loss"])
        state.setdefault("negative_sampling", "lsh")
        # models pickled before SlideState kept the arrays in dicts, the step apart
        if "_model" in state:
            state["_state"] = SlideState.from_dicts(state.pop("_model"), state.pop("_opt"),
                                                    state.pop("_step", 0))
        # models pickled before LSHIndex / RehashSchedule kept them as dicts and counters
        for key in ("_lsh", "_inference_lsh"):
            if isinstance(state.get(key), dict):
                state[key] = LSHIndex.from_dict(state[key])
        if "_rehash_every" in state:
            schedule = RehashSchedule(state.pop("_rehash_every"), state.pop("_rebuild_every"),
                                      state.get("interval_growth", 1.0))
            schedule.since_rehash = state.pop("_since_rehash")
            schedule.since_rebuild = state.pop("_since_rebuild")
            state["_schedule"] = schedule
        self.__dict__.update(state)

    # ------------------------------------------------------------ utilities
    def _hidden_sizes(self, n_labels):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, str):  # "auto"
            return (512,) if n_labels <= _FULL_SOFTMAX_LABELS else (128,)
        if isinstance(sizes, Integral):
            sizes = (sizes,)
        sizes = tuple(sizes)
        if len(sizes) == 0 or not all(isinstance(s, Integral) and s >= 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be a non-empty sequence of positive "
                             f"integers, got {self.hidden_layer_sizes!r}")
        return tuple(int(s) for s in sizes)

    @property
    def coefs_(self):
        check_is_fitted(self, "_state")
        return self._state.coefs()

    @property
    def intercepts_(self):
        check_is_fitted(self, "_state")
        return self._state.intercepts()

    def _encode_y(self, y, classes=None, first=False):
        """Return (indptr, indices) of the label sets, and set/check classes_."""
        if not sp.issparse(y):
            y = np.asarray(y)
        if sp.issparse(y) or (y.ndim == 2 and y.shape[1] != 1):
            if not sp.issparse(y) and type_of_target(y) != "multilabel-indicator":
                raise ValueError(
                    f"2-D y must be a binary label indicator matrix (multi-label); got "
                    f"target type {type_of_target(y)!r}. Unknown label type for this "
                    f"estimator.")
            n_labels = y.shape[1]
            if first:
                if classes is None:
                    classes = np.arange(n_labels)
                classes = np.asarray(classes)
                if classes.ndim != 1 or len(classes) != n_labels:
                    raise ValueError(f"classes has {classes.size} entries but the indicator y has "
                                     f"{n_labels} columns.")
                self.classes_ = classes
                self.multilabel_ = True
                # predict answers in the form of this y, as OneVsRestClassifier does
                self.sparse_output_ = sp.issparse(y)
                self._y_dtype = y.dtype if y.dtype != np.bool_ else np.dtype(np.int64)
            else:
                if not self.multilabel_:
                    raise ValueError("This model was fitted on 1-D class labels; got a 2-D indicator y.")
                if n_labels != len(self.classes_):
                    raise ValueError(f"y has {n_labels} label columns, the model has "
                                     f"{len(self.classes_)} classes.")
            return _as_label_csr(y)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first:
            if classes is None:
                classes = np.unique(y)
            else:
                classes = np.asarray(classes)
                if classes.ndim != 1 or len(classes) == 0:
                    raise ValueError("classes must be a non-empty 1-D array of labels.")
                uniq = np.unique(classes)
                if len(uniq) != len(classes):
                    raise ValueError("classes contains duplicate labels.")
                classes = uniq
            self.classes_ = classes
            self.multilabel_ = False
            self.sparse_output_ = False
        elif self.multilabel_:
            raise ValueError("This model was fitted on a multi-label indicator y; got 1-D labels.")
        classes = self.classes_
        idx = np.searchsorted(classes, y)
        idx_c = np.clip(idx, 0, len(classes) - 1)
        unknown = classes[idx_c] != y
        if np.any(unknown):
            raise ValueError(f"y contains labels not in classes: {np.unique(y[unknown])[:10].tolist()}"
                             f" (classes_ has {len(classes)} labels; pass all labels with "
                             f"`classes=` on the first partial_fit call).")
        return (np.arange(len(y) + 1, dtype=np.int64), np.ascontiguousarray(idx_c, dtype=np.int32))

    # -------------------------------------------------------------- model
    def _init_model(self, n_features, n_labels, rng, input_energy, label_slice=None):
        """Draw the initial model (``SlideState.draw``). ``input_energy`` is the mean
        squared norm of the training rows (``_input_energy``), which sets the scale of
        the input layer. With ``label_slice`` (lo, hi), only output neurons lo:hi are
        drawn (label-parallel training), with the values a whole draw gives them, and
        the hash tables are left to the caller."""
        sizes = self._hidden_sizes(n_labels)
        H = sizes[-1]
        family = self._training_family()
        bin_size = self._bin_size(H, family)
        if family in ("wta", "dwta") and bin_size > H:
            raise ValueError(f"bin_size={bin_size} exceeds the width of the last hidden "
                             f"layer ({H}); set bin_size to at most {H}.")
        # Glorot's bound shrinks with the number of labels: beyond a few thousand the
        # output starts so small that a sampled softmax learns several times slower (the
        # time-to-accuracy benchmark); nn.Linear's bound does not
        self._state = SlideState.draw(
            sizes, n_features, n_labels, rng, input_energy, label_slice,
            output_init="fan_in" if n_labels > _FULL_SOFTMAX_LABELS else "glorot")
        self._work = None
        self._label_counts = np.zeros(n_labels, dtype=np.int64)
        self._max_labels = 1
        self._rng = rng
        self._schedule = RehashSchedule(self.rehash_interval, self.rebuild_interval,
                                        self.interval_growth, drift=self.rehash_drift)
        self.t_ = 0
        # the output layer's Adam state in the layout of the precision (float32 on ranks)
        self._state.set_output_precision(
            self.precision if label_slice is None else "float32",
            effective_n_threads(self.n_jobs))
        self.n_iter_ = 0
        self.loss_curve_ = []
        self.validation_scores_ = None
        self.best_validation_score_ = None
        self._lsh = LSHIndex(family, H, self.n_codes, self.n_tables, bin_size,
                             self.range_pow, self._rng)
        if label_slice is None:
            self._rehash(effective_n_threads(self.n_jobs))
        else:  # the draw _rehash makes, so that the stream stays that of a whole model
            self._rng.integers(0, 2**63 - 1)

    def _training_family(self):
        """The training tables' hash family (``"auto"``: SLIDE's DWTA)."""
        return "dwta" if self.hash_family == "auto" else self.hash_family

    def _inference_family(self):
        """The hash family of ``inference="lsh"``: with ``"auto"``, "mips" where
        training does not sample from the tables (one process, and the dense or shared
        output path), whose codes follow the scores ``w . h + b``; the training
        tables' family otherwise, so that inference uses the tables training shaped
        the network for."""
        if self.hash_family == "auto" and self.comm is None and self._output_mode() != "sample":
            return "mips"
        return self._lsh.params["family"]

    def _bin_size(self, H, family):
        """``bin_size`` for a last hidden layer of ``H`` units and the hash ``family``
        (``"auto"`` resolved)."""
        if self.bin_size != "auto":
            return self.bin_size
        return H + 2 if family == "mips" else 8

    def _rehash(self, n_threads):
        """Rebuild the training tables from the output layer, or, where training does
        not use them (the dense and shared paths on one process), defer them to their
        first use (``_training_tables``) with the seed a fill would draw now."""
        if self.comm is None and self._output_mode() != "sample":
            self._lsh.defer(self._rng.integers(0, 2**63 - 1))
        else:
            self._fill_tables(self._lsh, n_threads)

    def _training_tables(self, n_threads):
        """The training ``LSHIndex``, its tables filled first if they were deferred."""
        if self._lsh.deferred is not None:
            self._fill_tables(self._lsh, n_threads, seed=self._lsh.deferred)
        return self._lsh

    def _build_inference_tables(self, n_threads, lazy=True):
        """Tables used only by LSH inference, when inference_n_codes/_n_tables or
        inference_bucket_size ask for them, or when their hash family is not the
        training tables' (``_inference_family``; ``lazy``: left for the first LSH
        predict to build, since most models never use them)."""
        family = self._inference_family()
        new_functions = (self.inference_n_codes is not None
                         or self.inference_n_tables is not None
                         or family != self._lsh.params["family"])
        if (not new_functions and self.inference_bucket_size is None) or (
                lazy and family != self._lsh.params["family"]):
            self._inference_lsh = None
            return
        # A stream of its own (from the model's seed and the number of epochs run), so that
        # asking for inference tables never changes how the model trains.
        rng = np.random.default_rng([self._seed, 1, self.n_iter_])
        if new_functions:
            H = int(self._state.sizes[-1])
            self._inference_lsh = LSHIndex(
                family, H,
                self.n_codes if self.inference_n_codes is None else self.inference_n_codes,
                self.n_tables if self.inference_n_tables is None else self.inference_n_tables,
                self._bin_size(H, family), self.range_pow, rng)
        else:
            # the training hash functions: training shapes the network so that the true
            # labels collide with the inputs under these very functions
            self._inference_lsh = LSHIndex.sharing_functions(self._lsh)
        if self.inference_bucket_size is None:
            self._fill_tables(self._inference_lsh, n_threads, rng)
        else:
            self._fill_tables(self._inference_lsh, n_threads, rng,
                              bucket_size=self.inference_bucket_size, reservoir=True)

    def _fill_tables(self, lsh, n_threads, rng=None, bucket_size=None, reservoir=None,
                     center=None, seed=None):
        """(Re)build the bucket tables of ``lsh`` from the current output weights
        (bucket size and policy: the estimator's unless given; rows centred on
        ``center``, by default the mean row; ``seed`` drawn from ``rng``, or the
        estimator's stream, unless given)."""
        bucket_size = self.bucket_size if bucket_size is None else bucket_size
        if reservoir is None:
            reservoir = self.bucket_policy == "reservoir"
        if seed is None:
            seed = int((self._rng if rng is None else rng).integers(0, 2**63 - 1))
        # the training tables keep their arrays and a code buffer between rebuilds
        work = getattr(self, "_work", None) if lsh is self._lsh else None
        self._state.hash_output(lsh, seed, n_threads, bucket_size, reservoir, center=center,
                                work=work, probe=_DRIFT_PROBE_ROWS if lsh is self._lsh else 0)

    def _check_same_classes(self, classes):
        """On a later ``partial_fit`` call: ``classes``, when given, must be ``classes_``."""
        if classes is None:
            return
        c = np.asarray(classes)
        same = (c.shape == self.classes_.shape and np.array_equal(c, self.classes_)
                if self.multilabel_ else
                len(c) == len(self.classes_) and np.array_equal(np.unique(c), self.classes_))
        if not same:
            raise ValueError(f"`classes={classes!r}` is not the same as on the first call "
                             f"to partial_fit, was: {self.classes_!r}")

    def _early_stopping_on(self, n_rows):
        """``early_stopping`` as a bool for a fit on ``n_rows`` rows (``"auto"``: more
        than ``_AUTO_EARLY_STOPPING_ROWS``, and not under ``comm``)."""
        if isinstance(self.early_stopping, str):
            return self.comm is None and n_rows > _AUTO_EARLY_STOPPING_ROWS
        return bool(self.early_stopping)

    def _min_active(self, n_labels=None):
        """``min_active`` as a number: ``"auto"`` is every label up to
        ``_FULL_SOFTMAX_LABELS`` labels, 1000 beyond (``n_labels``: of the model, by
        default)."""
        if isinstance(self.min_active, str):
            n = n_labels
            if n is None:
                n = (len(self.classes_) if hasattr(self, "classes_")
                     else self._state.W_out.shape[0])
            return n if n <= _FULL_SOFTMAX_LABELS else 1000
        return int(self.min_active)

    def _dense_output(self, n_labels=None):
        """Whether training scores every output neuron of a batch with sgemm
        (``_network.dense_output``) instead of sample by sample: when every label is
        active anyway (``min_active`` at least the number of labels), in float32, and
        a batch's logits take at most ``_DENSE_OUTPUT_FLOATS`` floats. The hash tables
        are then not used in training and not rebuilt during it. ``n_labels``: of the
        model (default), or of one not made yet."""
        min_active = self._min_active(n_labels)
        if n_labels is None:
            n_labels = self._state.W_out.shape[0]
        return (self.precision == "float32" and min_active >= n_labels
                and self.batch_size * n_labels <= _DENSE_OUTPUT_FLOATS)

    def _output_mode(self):
        """How training scores the output layer: ``"dense"`` (every label, sgemm:
        ``_dense_output``), ``"shared"`` (negative_sampling="log_uniform": the batch's
        labels and negatives drawn for the whole batch, sgemm) or ``"sample"`` (an
        active set per sample from the hash tables and random neurons)."""
        if self._dense_output():
            return "dense"
        return "shared" if self._negative_sampling() == "log_uniform" else "sample"

    def _auto_loss(self, multilabel, n_labels=None):
        """What ``loss="auto"`` trains: one-vs-all for a multi-label ``y`` where every
        label is scored densely, the softmax otherwise (``n_labels`` as in
        ``_dense_output``)."""
        dense = self.comm is None and self._dense_output(n_labels)
        return "bce" if dense and multilabel else "softmax"

    def _resolve_loss(self, first):
        """``loss`` with ``"auto"`` resolved (a warm fit keeps the resolved loss);
        refuses ``"bce"`` where not every label is scored densely."""
        dense = self.comm is None and self._dense_output()
        if self.loss != "auto":
            loss = self.loss
        elif not first and getattr(self, "loss_", None) is not None:
            loss = self.loss_
        else:
            loss = self._auto_loss(self.multilabel_)
        if loss == "bce" and not dense:
            raise ValueError(
                "loss='bce' scores every label of a batch with one matrix product: it "
                "needs min_active >= n_classes (min_active='auto' up to 8,192 labels), "
                "precision='float32', batch_size * n_classes <= 2**25 and no comm; use "
                "loss='softmax' here.")
        return loss

    def _negative_sampling(self):
        """``negative_sampling`` with ``"auto"`` resolved: shared log-uniform negatives
        on one process, the tables otherwise (under ``comm``), and in bfloat16 when
        every label is active (each sample then scores every label, exactly; float32
        scores them with ``_dense_output``)."""
        if self.negative_sampling != "auto":
            return self.negative_sampling
        if self.comm is not None:
            return "lsh"
        if self.precision == "float32":
            return "log_uniform"
        return ("lsh" if self._min_active() >= self._state.W_out.shape[0]
                else "log_uniform")

    def _hidden_and_dropout(self, X, rows, n_threads, seed):
        """Activations of every hidden layer of ``rows``, the last one after dropout
        (``hidden_backward`` takes ``self.dropout`` to mask its gradient alike), and a
        contiguous view of that last layer."""
        state = self._state
        H = int(state.sizes[-1])
        a_last = int(state.a_off[-1])
        acts = np.empty((len(rows), int(np.sum(state.sizes))), dtype=np.float32)
        _network.forward_acts(X.data, X.indices, X.indptr, rows, state, acts, n_threads,
                              self.dropout, seed)
        return acts, np.ascontiguousarray(acts[:, a_last:a_last + H])

    def _shared_batch(self, X, Y_indptr, Y_indices, rows, work, n_threads, seed, sampler,
                      lr):
        """Forward and backward of the batch ``rows`` with a sampled softmax over its
        labels and the negatives ``sampler`` draws for it (``_network.shared_output``);
        returns the summed loss and the number of candidates."""
        state = self._state
        acts, h = self._hidden_and_dropout(X, rows, n_threads, seed)
        adam = None
        if state.w16_out is not None:
            # bfloat16: logits and gradients from the rounded weights and activations,
            # as the sample-by-sample path computes them; the output rows' Adam step is
            # the kernel's (no float32 gradient of the output layer is kept)
            h = _bf16.from_bf16(_bf16.to_bf16(h))
            adam = (lr, self.beta_1, self.beta_2, self.epsilon, self.alpha,
                    state.step + 1, seed)
        y_ptr, y_idx = _batch_labels(Y_indptr, Y_indices, rows)
        cand, drawn = sampler.candidates(np.random.default_rng([seed, 1]), y_idx)
        offset = np.where(drawn, -sampler.log_q[cand], 0).astype(np.float32)
        masked = (~drawn).astype(np.uint8)  # the other rows' labels that were not drawn
        y_pos = np.searchsorted(cand, y_idx).astype(np.int32)
        dZ = np.empty((len(rows), len(cand)), dtype=np.float32)
        dH = np.empty((len(rows), h.shape[1]), dtype=np.float32)
        loss = _network.shared_output(h, y_ptr, y_pos, cand, offset, masked, state, work,
                                      dZ, dH, 1.0 / len(rows), self.loss_ == "pick_all",
                                      n_threads, adam=adam)
        _network.hidden_backward(X.data, X.indices, X.indptr, rows, acts, dH, state, work,
                                 n_threads, self.dropout, self._input_step(lr))
        return loss, len(cand)

    def _input_step(self, lr):
        """The ``adam`` argument of ``hidden_backward``: the input layer's Adam step of
        this batch (the step counter is advanced after the batch)."""
        return (lr, self.beta_1, self.beta_2, self.epsilon, self.alpha,
                self._state.step + 1)

    def _dense_batch(self, X, Y_indptr, Y_indices, rows, work, n_threads, seed, lr):
        """Forward and backward of the batch ``rows`` with the output layer as a dense
        layer, the input layer's Adam step included; returns the summed loss (the other
        gradients left in ``work`` for ``adam_update``)."""
        state = self._state
        n = len(rows)
        acts, h = self._hidden_and_dropout(X, rows, n_threads, seed)
        y_ptr, y_idx = _batch_labels(Y_indptr, Y_indices, rows)
        dZ = np.empty((n, state.W_out.shape[0]), dtype=np.float32)
        dH = np.empty((n, h.shape[1]), dtype=np.float32)
        loss = _network.dense_output(h, y_ptr, y_idx, state, work, dZ, dH, 1.0 / n,
                                     self.loss_, n_threads)
        _network.hidden_backward(X.data, X.indices, X.indptr, rows, acts, dH, state, work,
                                 n_threads, self.dropout, self._input_step(lr))
        return loss

    def _train_params(self):
        """The parameters the training kernels take (a ``SlideParams``)."""
        return SlideParams(
            batch_size=self.batch_size, min_active=self._min_active(),
            active_threshold=self.active_threshold, n_tables=self.n_tables,
            n_codes=self.n_codes, bucket_size=self.bucket_size,
            reservoir=self.bucket_policy == "reservoir", beta_1=self.beta_1,
            beta_2=self.beta_2, epsilon=self.epsilon, alpha=self.alpha,
            dropout=self.dropout, precision=self.precision,
            pick_all=self.loss_ == "pick_all")

    def _get_work(self, n_threads, max_labels, transposed=True, scatter=True):
        """The ``_network.Workspace`` for training with ``n_threads`` threads (kept
        between calls while it fits). ``transposed``: record each batch position's
        output gradient for ``_network.output_adam`` instead of adding it into an
        ``(n_labels, H)`` array, when the records take less memory than that array
        (or at most 64 MiB); the label-parallel path passes False. ``scatter=False``
        with ``transposed=False``: neither (the bfloat16 shared softmax)."""
        self._work = _network.Workspace.ensure(getattr(self, "_work", None), self._state,
                                               n_threads, max_labels, self._train_params(),
                                               transposed, scatter)
        return self._work

    def _train_batch(self, X, Y_indptr, Y_indices, rows, work, n_threads, lr,
                     mode="sample", sampler=None):
        state = self._state
        seed = int(self._rng.integers(0, 2**63 - 1))
        dense = mode != "sample"  # the tables are not used
        if mode == "dense":
            loss = self._dense_batch(X, Y_indptr, Y_indices, rows, work, n_threads, seed, lr)
            n_active = len(rows) * state.W_out.shape[0]
        elif mode == "shared":
            loss, n_cand = self._shared_batch(X, Y_indptr, Y_indices, rows, work,
                                              n_threads, seed, sampler, lr)
            n_active = len(rows) * n_cand
        else:
            loss, n_active = _network.train_batch(
                X.data, X.indices, X.indptr, Y_indptr, Y_indices, rows, state,
                self._training_tables(n_threads),
                work, self._min_active(), self.active_threshold, seed, n_threads,
                self.dropout, self.loss_ == "pick_all")
        state.step += 1
        if work.transposed:
            _network.output_adam(state, work, len(rows), lr, self.beta_1, self.beta_2,
                                 self.epsilon, self.alpha, state.step, n_threads, seed=seed)
        # input and hidden layers (and the output layer without the transposed gradient)
        _network.adam_update(state, work, lr, self.beta_1, self.beta_2, self.epsilon,
                             self.alpha, state.step, n_threads)
        self.t_ += len(rows)
        stale = None
        if self.rehash_drift is not None and not dense:
            stale = self._lsh.stale_share(state.output_rows(), state.b_out, n_threads)
        rehash, redraw = self._schedule.advance(len(rows), stale)
        if redraw and not dense:
            self._lsh.redraw(self._rng)
        if rehash and not dense:
            self._rehash(n_threads)
        return loss, n_active

    def _run_epoch(self, X, Y_indptr, Y_indices, rows, n_threads, lr):
        """One pass over ``rows`` (in that order), in batches; returns the mean loss and
        the mean active-set size."""
        mode = self._output_mode()
        self._schedule.drift = self.rehash_drift  # set_params between warm fits
        # the bfloat16 shared softmax steps its candidates itself: no output gradient
        work = self._get_work(n_threads, self._max_labels, transposed=mode == "sample",
                              scatter=not (mode == "shared" and self.precision == "bfloat16"))
        sampler = (LogUniformSampler(self._label_counts, self._min_active())
                   if mode == "shared" else None)
        total_loss = 0.0
        total_active = 0
        bs = self.batch_size
        # every path may call BLAS inside its OpenMP loop (the sample path: the dense
        # SimHash projections of "mips" tables)
        with single_threaded_blas():
            for start in range(0, len(rows), bs):
                batch = np.ascontiguousarray(rows[start: start + bs], dtype=np.int64)
                loss, n_active = self._train_batch(X, Y_indptr, Y_indices, batch, work,
                                                   n_threads, lr, mode, sampler)
                total_loss += loss
                total_active += n_active
        n = max(len(rows), 1)
        return total_loss / n, total_active / n

    # ------------------------------------------------------------ fitting
    def _fit(self, X, y, *, incremental, classes=None):
        # the indexes of weights that training is about to change
        self._ivf = self._norm_index = None
        comm = _mpi.check_comm(self.comm)
        if comm is not None:
            return self._fit_mpi(X, y, comm, incremental=incremental, classes=classes)
        first = not hasattr(self, "_state") or not (incremental or self.warm_start)
        if getattr(self, "_label_slice", None) is not None:
            if not first:
                from slidelearn._slide import _label_parallel
                # raises: continuing needs the ranks the output layer is spread over
                _label_parallel.check_sharded_comm(self.comm, self._n_ranks)
            self._label_slice = None
        X = self._check_X(X, reset=first)
        if first:
            Y_indptr, Y_indices = self._encode_y(y, classes=classes, first=True)
        else:
            self._check_same_classes(classes)
            Y_indptr, Y_indices = self._encode_y(y)
        if Y_indptr.shape[0] - 1 != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {Y_indptr.shape[0] - 1}.")
        n_threads = effective_n_threads(self.n_jobs)
        self.n_threads_ = n_threads
        if not first:
            # a model loaded read-only (e.g. joblib mmap_mode="r") trains on a private
            # copy; an unpickled one on rows aligned to cache lines again
            self._state.ensure_writable()
            self._state.align_rows()
        if first:
            self._seed = _check_seed(self.random_state)
            rng = np.random.default_rng(self._seed)
            self._init_model(X.shape[1], len(self.classes_), rng, _input_energy(X))
        self._state.set_output_precision(self.precision, n_threads)
        self.loss_ = self._resolve_loss(first)
        if first and self.loss_ == "bce":
            self._state.b_out[:] = _prior_log_odds(Y_indptr, Y_indices, len(self.classes_))
        try:
            return self._fit_epochs(X, Y_indptr, Y_indices, n_threads, incremental)
        finally:
            self._state.sync_output(n_threads)  # also when training stops on an error

    def _fit_epochs(self, X, Y_indptr, Y_indices, n_threads, incremental):
        counts = np.diff(Y_indptr)
        self._label_counts += np.bincount(Y_indices, minlength=len(self.classes_))
        self._max_labels = max(self._max_labels, int(counts.max(initial=1)))
        rows = np.flatnonzero(counts > 0).astype(np.int64)
        if rows.size == 0:
            raise ValueError("Every row of y is empty: there is no label to learn from.")
        validation = None
        if self._early_stopping_on(len(rows)) and not incremental:
            if self.validation_scores_ is None:
                self.validation_scores_ = []
            perm = self._rng.permutation(rows)
            n_val = min(max(1, int(round(self.validation_fraction * len(rows)))),
                        _MAX_VALIDATION_ROWS)
            if n_val >= len(rows):
                raise ValueError("validation_fraction leaves no training rows.")
            val_rows, rows = np.sort(perm[:n_val]), perm[n_val:]
            # The held-out rows and their label sets, once for all epochs.
            Xv = X[val_rows]
            Yv = sp.csr_matrix((np.ones(len(Y_indices), dtype=np.int8), Y_indices, Y_indptr),
                               shape=(X.shape[0], len(self.classes_)))[val_rows]

            # the "ivf" and "norm" indexes are of the weights of their build: exact
            # inference judges the epoch's model
            mode = self.inference if self.inference in ("exact", "lsh") else "exact"

            def score():
                self._state.sync_output(n_threads)
                labels, _ = self._topk_indices(Xv, 1, mode, n_threads)
                return float(precision_at_k(Yv, labels, k=1))

            validation = _epochs.Validation(score, "P@1", True, self._state.snapshot,
                                            self._state.restore, self.validation_scores_)

        def train_epoch(order, epoch):
            lr = self.learning_rate * self.learning_rate_decay ** epoch
            loss, active = self._run_epoch(X, Y_indptr, Y_indices, order, n_threads, lr)
            self.mean_active_ = active
            if self.callback is not None:
                # the callback may predict or read coefs_: both read the float32 W_out,
                # which bfloat16 training leaves stale until joined from its halves
                self._state.sync_output(n_threads)
            return loss, {"active neurons/sample": active}

        best = _epochs.run_epochs(self, rows, train_epoch, incremental=incremental,
                                  rng=lambda: self._rng, validation=validation)
        if best is not None:
            self.best_validation_score_ = best
        if not incremental or self._output_mode() != "sample":
            # Tables from the final weights, so that LSH inference sees the trained model
            # (the dense and shared paths do not maintain them while training, so a
            # partial_fit through them leaves them stale otherwise).
            self._rehash(n_threads)
            self._schedule.rehashed()
        self._hidden_stats = self._hidden_moments(X, rows, n_threads)
        self._build_inference_tables(n_threads)
        self._build_inference_index(n_threads)
        return self

    def _hidden_moments(self, X, rows, n_threads, comm=None):
        """The mean last hidden activation of (up to ``_MOMENT_ROWS`` evenly spaced)
        training ``rows`` and the root-mean-square distance to it, over every rank
        with ``comm``: the mean query of ``inference="norm"``."""
        if len(rows) > _MOMENT_ROWS:  # no draw: the model's random stream stays as is
            rows = rows[np.linspace(0, len(rows) - 1, _MOMENT_ROWS).astype(np.int64)]
        H = self._hidden(X[np.sort(rows)], n_threads).astype(np.float64)
        moments = np.concatenate([H.sum(axis=0), [np.einsum("ij,ij->", H, H), len(rows)]])
        if comm is not None:
            _mpi.allreduce_(comm, moments)
        n = max(moments[-1], 1.0)
        mean = moments[:-2] / n
        deviation = math.sqrt(max(moments[-2] / n - float(mean @ mean), 0.0))
        return mean.astype(np.float32), deviation

    def _fit_mpi(self, X, y, comm, *, incremental, classes=None):
        """SPMD fit / partial_fit, label parallel (see ``comm`` and _label_parallel)."""
        from slidelearn._slide import _label_parallel
        _label_parallel.agree_params(comm, self.get_params(deep=False))
        first = not hasattr(self, "_state") or not (incremental or self.warm_start)
        _mpi.agree(comm, (first, None if first else (self._state.step, len(self.classes_))),
                   "whether this call starts a new model, and else the training steps "
                   "and classes of the model it continues")
        local_classes = None
        with _mpi.raise_together(comm):
            if not isinstance(self.early_stopping, str) and self.early_stopping:
                raise ValueError("comm= does not support early_stopping yet.")
            if self.precision != "float32":
                raise ValueError(f"comm= does not support precision={self.precision!r} "
                                 "yet; use precision='float32'.")
            if self.negative_sampling == "log_uniform":
                raise ValueError("comm= does not support negative_sampling="
                                 f"{self.negative_sampling!r} yet; use 'lsh'.")
            if self.rehash_drift is not None:
                raise ValueError("comm= does not support rehash_drift yet; use "
                                 "rehash_interval.")
            # a rank with no rows joins every step with an empty batch
            X = validate_sparse_X(self, X, reset=first, ensure_min_samples=0)
            if y is None:
                raise ValueError("SlideClassifier requires y to be passed, but the target y "
                                 "is None.")
            two_d = sp.issparse(y) or np.ndim(y) == 2 and np.shape(y)[1] != 1
            if first and classes is None and not two_d:
                local_classes = np.unique(column_or_1d(y))
        if first:  # collective: after every rank has validated its rows
            self._set_feature_scale(X, comm)
        X = scale_features(X, getattr(self, "feature_scale_", None))
        if comm.allreduce(X.shape[0]) == 0:
            raise ValueError(f"X has 0 samples on every one of the {comm.Get_size()} ranks "
                             "of comm: there is nothing to train on.")
        if first:
            _mpi.agree(comm, (int(X.shape[1]), bool(two_d),
                              int(np.shape(y)[1]) if two_d else None),
                       "the number of features and the kind of y")
            if local_classes is not None:
                # (without the empty arrays of ranks with no rows, whose dtype may
                # differ: a y=[] is float64)
                classes = np.unique(np.concatenate(
                    [c for c in comm.allgather(local_classes) if c.size]))
        with _mpi.raise_together(comm):
            if first:
                Y_indptr, Y_indices = self._encode_y(y, classes=classes, first=True)
            else:
                self._check_same_classes(classes)
                Y_indptr, Y_indices = self._encode_y(y)
            if Y_indptr.shape[0] - 1 != X.shape[0]:
                raise ValueError(f"X has {X.shape[0]} samples but y has "
                                 f"{Y_indptr.shape[0] - 1}.")
        if first and local_classes is None:
            # classes= given on every rank (or indicator columns): the same everywhere,
            # else the ranks would build output layers of different sizes
            _label_parallel.agree_classes(comm, self.classes_)
        n_threads = _mpi.rank_threads(comm, self.n_jobs)
        self.n_threads_ = n_threads
        if not first:
            self._state.ensure_writable()
            self._state.align_rows()
        if first:
            self._seed = _mpi.shared_seed(comm, _check_seed(self.random_state))
            bounds = _label_parallel.label_bounds(len(self.classes_), comm.Get_size())
            me = comm.Get_rank()
            self._init_model(X.shape[1], len(self.classes_), np.random.default_rng(self._seed),
                             _input_energy(X, comm),
                             label_slice=(int(bounds[me]), int(bounds[me + 1])))
            self._label_slice = (int(bounds[me]), int(bounds[me + 1]))
        elif getattr(self, "_label_slice", None) is not None:
            _label_parallel.check_sharded_comm(self.comm, self._n_ranks)
        # float32 moments (a bfloat16 model converts)
        self._state.set_output_precision("float32", n_threads)
        self.loss_ = self._resolve_loss(first)
        counts = np.diff(Y_indptr)
        label_counts = np.bincount(Y_indices, minlength=len(self.classes_)).astype(np.int64)
        _mpi.allreduce_(comm, label_counts)
        self._label_counts += label_counts
        self._max_labels = max(self._max_labels,
                               comm.allreduce(int(counts.max(initial=1)), op=_mpi.import_mpi().MAX))
        rows = np.flatnonzero(counts > 0).astype(np.int64)
        with _mpi.raise_together(comm):
            if comm.allreduce(rows.size) == 0:
                raise ValueError("Every row of y is empty: there is no label to learn "
                                 "from.")
        self._n_labels_total = len(self.classes_)
        # the tables of the slice from a stream of their own: the estimator's stays in
        # step with a single-process fit
        self._label_slice = _label_parallel.to_slice(
            comm, self._state, self._lsh, getattr(self, "_label_slice", None),
            self._n_labels_total, np.random.default_rng([self._seed, 4, self.n_iter_]),
            n_threads, self.bucket_size, self.bucket_policy == "reservoir")
        self._n_ranks = comm.Get_size()
        self._work = None
        self.comm_stats_ = stats = {}
        me = comm.Get_rank()

        def train_epoch(order, epoch):
            lr = self.learning_rate * self.learning_rate_decay ** epoch
            work = self._get_work(n_threads, self._max_labels, transposed=False)
            loss, active, n_seen = _label_parallel.train_epoch(
                comm, self._state, self._lsh, self._schedule, work, self._train_params(),
                self._rng, X, Y_indptr, Y_indices, order, n_threads, lr, stats,
                label_slice=self._label_slice, n_labels_total=self._n_labels_total,
                max_labels=self._max_labels)
            self.t_ += n_seen
            self.mean_active_ = active
            return loss, {"active neurons/sample": active}

        # each rank shuffles its own rows, from the shared seed, its rank and the epoch
        _epochs.run_epochs(
            self, rows, train_epoch, incremental=incremental, comm=comm,
            rng=lambda: np.random.default_rng([self._seed, 3, me, self.n_iter_]),
            n_samples=comm.allreduce(len(rows)))
        H = int(self._state.sizes[-1])
        if (self.rank_memory_budget is None or _label_parallel.output_bytes(
                self._n_labels_total, H) <= self.rank_memory_budget):
            _label_parallel.assemble(comm, self._state, self._n_labels_total)
            self._label_slice = None
            self._work = None
            if not incremental:
                self._rehash(n_threads)
                self._schedule.rehashed()
            self._hidden_stats = self._hidden_moments(X, rows, n_threads, comm)
            self._build_inference_tables(n_threads)
            self._build_inference_index(n_threads)
        else:  # the output layer stays spread over the ranks: collective inference
            if not incremental:
                self._fill_tables(self._lsh, n_threads, center=_label_parallel.global_center(
                    comm, self._state, n_threads))
                self._schedule.rehashed()
            self._inference_lsh = None
        return self

    def fit(self, X, y):
        """Train the network on (X, y) for ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input features (CSR, CSC or COO sparse, or dense; float32 or float64,
            converted once to CSR float32).
        y : array-like of shape (n_samples,) or {array-like, sparse matrix} of shape (n_samples, n_classes)
            Class labels of any type (multi-class), or a binary indicator matrix
            (multi-label), e.g. from ``MultiLabelBinarizer(sparse_output=True)``.

        Returns
        -------
        self : SlideClassifier
            The fitted estimator.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from slidelearn import SlideClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SlideClassifier(max_iter=50, learning_rate=1e-2, learning_rate_decay=1.0,
        ...                       n_jobs=1, random_state=0).fit(X, y)
        >>> clf.score(X, y) > 0.9
        True
        """
        self._validate_params()
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """Train one epoch on (X, y), continuing from the current weights.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input features.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Labels or indicator matrix, as for ``fit``.
        classes : array-like of shape (n_classes,), default=None
            Required on the first call: every class label that will ever appear
            (multi-class), or one entry per indicator column (multi-label).
            Later calls may omit it; if given it must equal ``classes_``.

        Returns
        -------
        self : SlideClassifier
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from slidelearn import SlideClassifier
        >>> rng = np.random.RandomState(0)
        >>> X = rng.rand(100, 20); y = (X[:, 0] > 0.5).astype(int)
        >>> clf = SlideClassifier(random_state=0)
        >>> for chunk in np.array_split(np.arange(100), 4):
        ...     clf = clf.partial_fit(X[chunk], y[chunk], classes=[0, 1])
        >>> clf.n_iter_
        4
        """
        self._validate_params()
        if not hasattr(self, "_state") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, incremental=True, classes=classes)

    # ------------------------------------------------------------ inference
    def _hidden(self, X, n_threads):
        return _network.forward_hidden(X.data, X.indices, X.indptr, self._state, n_threads)

    def _topk_indices(self, X, k, mode, n_threads):
        """Top-k label indices and scores of validated CSR X."""
        if mode in ("ivf", "norm") and getattr(self, "_label_slice", None) is not None:
            raise ValueError(f"inference={mode!r} needs the whole output layer in one "
                             "process; this model's is spread over MPI ranks")
        if getattr(self, "_label_slice", None) is not None:
            from slidelearn._slide import _label_parallel
            comm = _label_parallel.check_sharded_comm(self.comm, self._n_ranks)
            return _label_parallel.topk(
                comm, self._state, self._lsh, self._hidden(X, n_threads), k, mode, n_threads,
                label_slice=self._label_slice, n_labels_total=self._n_labels_total,
                label_counts=self._label_counts, head_labels=self.inference_head_labels,
                threshold=self.inference_threshold,
                max_candidates=self.inference_max_candidates or 0)
        Hm = self._hidden(X, n_threads)
        if mode == "norm":
            index = self._norm_inference_index()
            if k > index.n_rows:  # fewer neurons kept than asked for: all of them
                with single_threaded_blas():
                    return _network.topk_exact(Hm, self._state, k, n_threads)
            with single_threaded_blas():
                return index.topk(Hm, k, n_threads)
        if mode == "ivf":
            index = self._cluster_index(n_threads)
            if self.inference_n_probe == "auto":
                n_probe = index.n_clusters
                budget = probe_budget(len(self.classes_), k)
            else:
                n_probe, budget = self.inference_n_probe, None
            fallback = self._most_frequent_labels(2 * k)
            parts = []
            # in chunks of rows: the probe list is rows x n_probe (with "auto", every
            # cluster), many times the hidden rows themselves
            for start in range(0, max(Hm.shape[0], 1), _IVF_CHUNK_ROWS):
                H = Hm[start:start + _IVF_CHUNK_ROWS]
                probe, counts = index.probe(H, n_probe, budget=budget, n_threads=n_threads)
                with single_threaded_blas():
                    parts.append(_network.topk_probed(H, self._state, index.members,
                                                      index.starts, probe, counts, k,
                                                      fallback, n_threads)[:2])
            if len(parts) == 1:
                return parts[0]
            return (np.concatenate([p[0] for p in parts]),
                    np.concatenate([p[1] for p in parts]))
        if mode == "lsh":
            # Filling a row needs at most 2k - 1 fallback labels (up to k - 1 are skipped
            # as already found), so only those are ranked, not every label on every call.
            n_head = min(self.inference_head_labels, len(self.classes_))
            order = self._most_frequent_labels(n_head + 2 * k)
            tables = getattr(self, "_inference_lsh", None)
            if tables is None and self._inference_family() != self._lsh.params["family"]:
                self._build_inference_tables(n_threads, lazy=False)  # first use
                tables = self._inference_lsh
            if tables is None:
                tables = self._training_tables(n_threads)
            with single_threaded_blas():  # dense SimHash projections: sgemv per row
                idx, scores, _ = _network.topk_lsh(Hm, self._state, tables, k,
                                                   self.inference_threshold, order,
                                                   n_threads,
                                                   self.inference_max_candidates or 0,
                                                   min(n_head, len(order)))
            return idx, scores
        with single_threaded_blas():
            return _network.topk_exact(Hm, self._state, k, n_threads)

    def _build_inference_index(self, n_threads):
        """The index of ``inference`` ("ivf", "norm") at the end of a fit, so that the
        first predict does not pay for it."""
        if self.inference == "ivf":
            self._cluster_index(n_threads)
        elif self.inference == "norm":
            self._norm_inference_index()

    def _norm_inference_index(self):
        """The ``NormIndex`` of the current output layer with ``inference_budget``,
        built on first use after training changed the weights."""
        n_labels = len(self.classes_)
        n_rows = (auto_budget(n_labels) if self.inference_budget == "auto"
                  else max(1, math.ceil(float(self.inference_budget) * n_labels)))
        index = getattr(self, "_norm_index", None)
        if index is None or index.n_rows != min(n_rows, n_labels):
            # models pickled before the moments were kept: the static score is the bias
            mean, deviation = getattr(self, "_hidden_stats", (None, 0.0))
            index = NormIndex(self._state.W_out, self._state.b_out, n_rows, mean, deviation)
            self._norm_index = index
        return index

    def _cluster_index(self, n_threads):
        """The ``ClusterIndex`` of the current output layer with ``inference_n_clusters``
        clusters, built on first use after training changed the weights (its seed: the
        model's and the number of epochs run, so that it never changes training)."""
        n_labels = len(self.classes_)
        n_clusters = (auto_n_clusters(n_labels) if self.inference_n_clusters == "auto"
                      else min(int(self.inference_n_clusters), n_labels))
        index = getattr(self, "_ivf", None)
        if index is None or index.n_clusters != n_clusters:
            rng = np.random.default_rng([self._seed, 2, self.n_iter_])
            index = ClusterIndex(self._state.W_out, self._state.b_out, n_clusters, rng,
                                 n_threads)
            self._ivf = index
        return index

    def _most_frequent_labels(self, n):
        """The n most frequent training labels, most frequent first, ties by lower index
        (the first n of a stable argsort of -counts, in O(n_classes) time)."""
        return top_n(self._label_counts, n, ordered=True).astype(np.int32)

    def predict_topk(self, X, k=5, *, inference=None):
        """The k best labels of each row, with their scores (logits).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input features.
        k : int, default=5
            Labels per row (at most ``n_classes``).
        inference : {"exact", "lsh", "ivf", "norm"} or None, default=None
            Rank all output neurons, only those the hash tables retrieve
            (sub-linear; rows with fewer than k candidates are completed with the
            most frequent training labels), those of the ``inference_n_probe``
            best clusters of the output neurons, or the ``inference_budget``
            neurons of highest score bound at a typical query.
            None uses the ``inference`` parameter.

        Returns
        -------
        labels : ndarray of shape (n_samples, k)
            Labels from ``classes_``, best first.
        scores : ndarray of shape (n_samples, k), dtype float32
            Their logits (the softmax is monotone in them).

        Examples
        --------
        >>> from slidelearn import SlideClassifier
        >>> from slidelearn.datasets import make_extreme_classification
        >>> X, Y = make_extreme_classification(n_samples=500, n_features=200, n_labels=50,
        ...                                    random_state=0)
        >>> clf = SlideClassifier(max_iter=3, random_state=0).fit(X, Y)
        >>> labels, scores = clf.predict_topk(X[:4], k=3)
        >>> labels.shape, bool((scores[:, 0] >= scores[:, 1]).all())
        ((4, 3), True)
        """
        check_is_fitted(self, "_state")
        if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        mode = self.inference if inference is None else inference
        if mode not in ("exact", "lsh", "ivf", "norm"):
            raise ValueError("inference must be 'exact', 'lsh', 'ivf' or 'norm', got "
                             f"{mode!r}")
        X = self._validate_X_predict(X)
        k = min(int(k), len(self.classes_))
        idx, scores = self._topk_indices(X, k, mode, effective_n_threads(self.n_jobs))
        return self.classes_[idx], scores

    def _check_X(self, X, *, reset, ensure_min_samples=1):
        """X validated for the kernels (CSR float32) and scaled by ``feature_scale_``;
        ``reset`` (a first fit) sets the factors from X first (under MPI, ``_fit_mpi``
        sets them collectively once every rank has validated its rows)."""
        X = validate_sparse_X(self, X, reset=reset, ensure_min_samples=ensure_min_samples)
        if reset:
            self._set_feature_scale(X)
        return scale_features(X, getattr(self, "feature_scale_", None))

    def _set_feature_scale(self, X, comm=None):
        """``feature_scale_`` from the training rows X (of every rank of ``comm``)."""
        self.feature_scale_ = (feature_scale(X, comm) if self.feature_scaling == "auto"
                               else None)

    def _validate_X_predict(self, X):
        """X for prediction; a model spread over ranks predicts collectively, so
        there a rank with no rows is allowed (it still joins every step)."""
        sharded = getattr(self, "_label_slice", None) is not None
        return self._check_X(X, reset=False, ensure_min_samples=0 if sharded else 1)

    def _check_dense_size(self, n_rows, what):
        size = n_rows * len(self.classes_)
        if size > _MAX_DENSE_OUTPUT:
            raise ValueError(
                f"{what} would return a dense {n_rows} x {len(self.classes_)} array "
                f"({size * 4 / 2**30:.1f} GiB). Use predict_topk(X, k) for the k best labels "
                f"and their scores, or call {what} on smaller batches of rows.")

    def _logits(self, X):
        if getattr(self, "_label_slice", None) is not None:
            raise ValueError(f"decision_function and predict_proba need the whole output "
                             f"layer, which is split over {self._n_ranks} ranks: use "
                             "predict_topk or predict, collectively.")
        n_threads = effective_n_threads(self.n_jobs)
        Hm = self._hidden(X, n_threads)
        return Hm @ self._state.W_out.T + self._state.b_out

    def decision_function(self, X):
        """Logits of every class (before the softmax, or with ``loss_ == "bce"`` the
        logistic function).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes), or (n_samples,) for a binary problem
            For binary 1-D targets, the logit difference of ``classes_[1]`` over
            ``classes_[0]``, as scikit-learn's convention. Refused with a
            ``ValueError`` when the dense result would be too large: use
            ``predict_topk``.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from slidelearn import SlideClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SlideClassifier(max_iter=5, random_state=0).fit(X, y)
        >>> clf.decision_function(X[:2]).shape
        (2, 3)
        """
        check_is_fitted(self, "_state")
        X = self._check_X(X, reset=False)
        self._check_dense_size(X.shape[0], "decision_function")
        z = self._logits(X)
        if not self.multilabel_ and len(self.classes_) == 2:
            return z[:, 1] - z[:, 0]
        return z

    def predict_proba(self, X):
        """Probability of every class.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            The softmax of the logits: rows sum to 1 (for multi-label models, the
            predicted share of the label mass). A model trained with
            ``loss_ == "bce"`` gives each label's own probability (the logistic
            function of its logit) when multi-label, and those normalised to sum to 1
            otherwise, as one-vs-rest classifiers do. Refused with a ``ValueError``
            when the dense result would be too large: use ``predict_topk``.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from slidelearn import SlideClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SlideClassifier(max_iter=5, random_state=0).fit(X, y)
        >>> clf.predict_proba(X[:2]).sum(axis=1).round(4)
        array([1., 1.])
        """
        check_is_fitted(self, "_state")
        X = self._check_X(X, reset=False)
        self._check_dense_size(X.shape[0], "predict_proba")
        z = self._logits(X).astype(np.float64)
        if self.loss_ == "bce":
            p = expit(z)
            if not self.multilabel_:
                p /= p.sum(axis=1, keepdims=True)
            return p
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def predict(self, X):
        """Predict the class of each row, or the label set (multi-label).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_classes), or scipy.sparse.csr_matrix
            Multi-class: the most probable class. Multi-label: an indicator of the
            labels whose probability is at least half the row's best, or at least
            1/2 with ``loss_ == "bce"`` (see Notes of the class), sparse CSR when the
            ``y`` given to ``fit`` was sparse and a dense array of its dtype otherwise
            (as ``OneVsRestClassifier``).

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from slidelearn import SlideClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SlideClassifier(max_iter=50, learning_rate=1e-2, learning_rate_decay=1.0,
        ...                       n_jobs=1, random_state=0).fit(X, y)
        >>> clf.predict(X[:3])
        array([0, 0, 0])
        """
        check_is_fitted(self, "_state")
        X = self._validate_X_predict(X)
        n_threads = effective_n_threads(self.n_jobs)
        if not self.multilabel_:
            idx, _ = self._topk_indices(X, 1, self.inference, n_threads)
            return self.classes_[idx[:, 0]]
        k = min(len(self.classes_), max(10, 2 * self._max_labels))
        idx, scores = self._topk_indices(X, k, self.inference, n_threads)
        if self.loss_ == "bce":  # one-vs-all: each label's own probability
            keep = ((scores >= 0) | (np.arange(k) == 0)) & (idx >= 0)
        else:
            keep = (scores >= scores[:, :1] - np.log(2.0)) & (idx >= 0)
        indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int64)
        indices = idx[keep]
        dtype = getattr(self, "_y_dtype", np.dtype(np.int8))
        Y = sp.csr_matrix((np.ones(indices.shape[0], dtype=dtype), indices, indptr),
                          shape=(X.shape[0], len(self.classes_)))
        if getattr(self, "sparse_output_", True):
            return Y
        self._check_dense_size(X.shape[0], "predict")
        return Y.toarray()

    def score(self, X, y, sample_weight=None):
        """Precision@1: the fraction of rows whose top-ranked label is a true label.

        For multi-class targets this is the accuracy.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input features.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            True labels or indicator matrix.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the mean.

        Returns
        -------
        score : float
            Mean precision@1.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from slidelearn import SlideClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SlideClassifier(max_iter=50, learning_rate=1e-2, learning_rate_decay=1.0,
        ...                       n_jobs=1, random_state=0).fit(X, y)
        >>> round(clf.score(X, y), 2) > 0.9
        True
        """
        check_is_fitted(self, "_state")
        X = self._check_X(X, reset=False)
        idx, _ = self._topk_indices(X, 1, self.inference, effective_n_threads(self.n_jobs))
        top = idx[:, 0]
        if self.multilabel_:
            Y = sp.csr_matrix(y)
            if Y.shape != (len(top), len(self.classes_)):
                raise ValueError(f"y has shape {Y.shape}, expected {(len(top), len(self.classes_))}.")
            hits = np.asarray(Y[np.arange(len(top)), top]).ravel() != 0
        else:
            y = column_or_1d(y)
            if len(y) != len(top):
                raise ValueError(f"y has {len(y)} rows, X has {len(top)}.")
            hits = self.classes_[top] == y
        return float(np.average(hits, weights=sample_weight))
