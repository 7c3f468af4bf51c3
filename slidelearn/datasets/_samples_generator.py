"""Synthetic extreme multi-label classification data."""
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

__all__ = ["make_extreme_classification", "make_extreme_classification_preset"]

# Fraction of prototype slots filled with "common" features shared by many
# labels (drawn from a Zipf law over features, like frequent words); the other
# slots hold a feature drawn uniformly, specific to the label.
_SHARED_FRACTION = 0.25
_FEATURE_POWER = 1.0
# Within a prototype, slot r is drawn with weight (r + 1) ** -_SLOT_POWER, so
# the first slots are the label's core features.
_SLOT_POWER = 0.5
# Rounds of redrawing to reach the requested number of distinct entries.
_MAX_ROUNDS = 12
# Rows generated at a time in the feature stage (bounds temporary memory).
_CHUNK_ROWS = 1 << 16

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix64(x):
    """SplitMix64 finaliser: a well mixed uint64 hash of every entry of ``x``."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def _unit(h):
    """Uniform floats in [0, 1) from uint64 hashes."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def _power_law(n, power, offset=1.0):
    """Cumulative distribution of ``P(rank r) ~ (r + offset) ** -power``, r < n."""
    cdf = np.cumsum((np.arange(n, dtype=np.float64) + offset) ** -float(power))
    cdf /= cdf[-1]
    return cdf


def _sample_cdf(cdf, u):
    """Ranks drawn by inverting ``cdf`` at the uniforms ``u``."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _draw_distinct(targets, sampler, n_cols, initial=None):
    """Draw ``targets[i]`` distinct columns for every row ``i``.

    ``sampler(rows)`` returns one random column for each entry of ``rows``.
    Rows that drew a column more than once draw again for the missing ones,
    for at most ``_MAX_ROUNDS`` rounds (a row whose distribution has too little
    mass outside its current columns can end with fewer). Returns the sorted
    unique keys ``row * n_cols + col`` and how many times each was drawn.
    ``initial`` (sorted unique keys, each counted once) are entries already
    placed: they count towards ``targets``.
    """
    n = targets.shape[0]
    need = targets.astype(np.int64)
    keys = np.empty(0, dtype=np.int64)
    counts = np.empty(0, dtype=np.int64)
    if initial is not None and initial.size:
        keys = initial.astype(np.int64)
        counts = np.ones(keys.size, dtype=np.int64)
        need = need - np.bincount(keys // n_cols, minlength=n)
    row_ids = np.arange(n, dtype=np.int64)
    for _ in range(_MAX_ROUNDS):
        if not need.any():
            break
        rows = np.repeat(row_ids, need)
        new, new_counts = np.unique(rows * n_cols + sampler(rows), return_counts=True)
        if keys.size == 0:
            keys, counts = new, new_counts
        else:
            pos = np.searchsorted(keys, new)
            found = pos < keys.size
            found[found] = keys[pos[found]] == new[found]
            counts[pos[found]] += new_counts[found]
            fresh = ~found
            keys = np.insert(keys, pos[fresh], new[fresh])
            counts = np.insert(counts, pos[fresh], new_counts[fresh])
        need = targets - np.bincount(keys // n_cols, minlength=n)
    return keys, counts


def _check_int(name, value, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_real(name, value, low, high=np.inf):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (low <= value <= high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return float(value)


def make_extreme_classification(
    n_samples=10000,
    n_features=10000,
    n_labels=1000,
    n_nonzeros=75,
    n_labels_per_sample=5,
    label_power=1.0,
    n_prototype_features=None,
    noise=0.2,
    random_state=None,
    dtype=np.float32,
):
    """Generate a random, learnable extreme multi-label classification problem.

    The generative model mimics bag-of-words extreme classification data such
    as Amazon-670K:

    1. Label frequencies follow a power law: the label of popularity rank
       ``r`` (labels are randomly permuted) has weight ``(r + 1) ** -label_power``.
    2. Each label owns a sparse prototype of ``n_prototype_features`` feature
       slots. Slot ``r`` is used with weight ``(r + 1) ** -0.5`` (the first
       slots are the label's core features). A quarter of the slots hold a
       "common" feature drawn from a Zipf law over features and shared by
       many labels (like frequent words); the others hold a feature drawn
       uniformly, specific to the label.
    3. Sample ``i`` gets ``1 + Poisson(n_labels_per_sample - 1)`` distinct
       labels (at most ``n_labels``) drawn from the label distribution
       without replacement.
    4. It then gets ``1 + Poisson(n_nonzeros - 1)`` distinct features (at most
       ``n_features``): each draw is, with probability ``noise``, a uniformly
       random feature, and otherwise a slot of the prototype of one of its
       labels (chosen uniformly). Features drawn several times count as term
       frequencies.
    5. Values are tf-idf weights ``(1 + log tf) * (log((1 + n) / (1 + df)) + 1)``
       and every row is scaled to unit L2 norm.

    Labels therefore share predictive features with their prototypes and a
    linear one-vs-rest model or a nearest-prototype classifier beats the
    label-prior baseline by a wide margin. Generation is vectorised (no loop
    per sample) and works in chunks of rows, so that the Amazon-670K shape
    (``n_features=135909, n_labels=670091``) costs no Python work per row and
    bounded temporary memory.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of rows.
    n_features : int, default=10000
        Number of features (columns of ``X``).
    n_labels : int, default=1000
        Number of labels (columns of ``Y``).
    n_nonzeros : int, default=75
        Mean number of distinct non-zero features per row. Rows can end with
        fewer when their labels' prototypes and the noise cannot supply
        enough distinct features (small ``n_prototype_features`` with
        ``noise=0``).
    n_labels_per_sample : float, default=5
        Mean number of labels per row (at least 1). Rows can end with fewer
        when ``label_power`` concentrates almost all the mass on a few labels.
    label_power : float, default=1.0
        Exponent of the power law of label frequencies; 0 gives uniform label
        frequencies, larger values a heavier head and a longer tail. The
        default is head-heavy at extreme sizes: with 670,091 labels the 1,000
        most frequent hold about half of the occurrences and many labels
        never occur (see :func:`make_extreme_classification_preset` for laws
        fitted to real data sets).
    n_prototype_features : int, default=None
        Number of feature slots in each label's prototype. ``None`` means
        ``max(20, ceil(2 * n_nonzeros / n_labels_per_sample))``.
    noise : float, default=0.2
        Probability in [0, 1] that a feature draw is uniform noise instead of
        coming from a label prototype. ``noise=1`` gives unlearnable data.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible output.
    dtype : {np.float32, np.float64}, default=np.float32
        Data type of ``X`` and ``Y``.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features)
        Non-negative tf-idf features with L2-normalised rows, sorted indices
        (int32 when they fit).
    Y : scipy.sparse.csr_matrix of shape (n_samples, n_labels)
        Binary label indicator matrix (values 1.0 of type ``dtype``).

    See Also
    --------
    make_extreme_classification_preset : Train/test splits shaped like
        Amazon-670K or Delicious-200K, every label in the training part.
    load_xc_repository : Load real data sets with the same output layout.
    sklearn.datasets.make_multilabel_classification : Dense, small-scale
        multi-label generator.

    Examples
    --------
    >>> from slidelearn.datasets import make_extreme_classification
    >>> X, Y = make_extreme_classification(
    ...     n_samples=1000, n_features=500, n_labels=100, n_nonzeros=20,
    ...     n_labels_per_sample=3, random_state=0)
    >>> X.shape, Y.shape, X.dtype
    ((1000, 500), (1000, 100), dtype('float32'))
    >>> bool(abs(X.multiply(X).sum(axis=1) - 1).max() < 1e-5)
    True
    >>> bool(15 < X.getnnz(axis=1).mean() < 25 and 2 < Y.getnnz(axis=1).mean() < 4)
    True
    """
    n_samples = _check_int("n_samples", n_samples, 1)
    n_features = _check_int("n_features", n_features, 1)
    n_labels = _check_int("n_labels", n_labels, 1)
    n_nonzeros = _check_int("n_nonzeros", n_nonzeros, 1)
    n_labels_per_sample = _check_real("n_labels_per_sample", n_labels_per_sample, 1.0)
    label_power = _check_real("label_power", label_power, 0.0)
    noise = _check_real("noise", noise, 0.0, 1.0)
    if n_prototype_features is None:
        n_prototype_features = max(20, int(np.ceil(2 * n_nonzeros / n_labels_per_sample)))
    n_prototype_features = _check_int("n_prototype_features", n_prototype_features, 1)
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    dtype = np.dtype(dtype)

    return _generate(
        n_samples, n_features, n_labels, n_nonzeros, n_labels_per_sample, label_power,
        n_prototype_features, noise, random_state, dtype,
    )


def _draw_labels(gen, n_samples, n_labels, n_labels_per_sample, label_power,
                 label_offset=1.0, n_covered=0):
    """Label stage of the generator: ``(y_cols, y_count, y_indptr)`` of the rows.

    With ``n_covered > 0`` every label is placed in one of the first
    ``n_covered`` rows before any random draw, and those rows then draw
    their other labels from the law minus that one guaranteed occurrence,
    so a label's expected count in them stays what the power law gives
    (where the law gives it at least one).
    """
    label_cdf = _power_law(n_labels, label_power, label_offset)
    label_perm = gen.permutation(n_labels)
    k = np.minimum(1 + gen.poisson(n_labels_per_sample - 1.0, n_samples), n_labels)
    if n_covered:
        # Each label takes one distinct label slot of the covered rows: a row
        # never gets more covering labels than it has slots.
        slots = np.repeat(np.arange(n_covered, dtype=np.int64), k[:n_covered])
        if slots.size < n_labels:
            raise ValueError(
                f"{n_covered} rows with {slots.size} label slots in all cannot hold "
                f"each of the {n_labels} labels at least once"
            )
        chosen = slots[gen.permutation(slots.size)[:n_labels]]
        initial = np.sort(chosen * n_labels + label_perm)
        prob = np.diff(label_cdf, prepend=0.0)
        fill_cdf = np.cumsum(np.maximum(slots.size * prob - 1.0, 0.0))
        fill_cdf /= fill_cdf[-1] if fill_cdf[-1] > 0 else 1.0

        def sampler(rows):
            u = gen.random(rows.size)
            ranks = np.where(rows < n_covered, _sample_cdf(fill_cdf, u),
                             _sample_cdf(label_cdf, u))
            return label_perm[ranks]
    else:
        initial = None

        def sampler(rows):
            return label_perm[_sample_cdf(label_cdf, gen.random(rows.size))]

    y_keys, _ = _draw_distinct(k, sampler, n_labels, initial=initial)
    y_rows = y_keys // n_labels
    y_cols = y_keys - y_rows * n_labels
    y_count = np.bincount(y_rows, minlength=n_samples)
    y_indptr = np.zeros(n_samples + 1, dtype=np.int64)
    np.cumsum(y_count, out=y_indptr[1:])
    return y_cols, y_count, y_indptr


def _generate(n_samples, n_features, n_labels, n_nonzeros, n_labels_per_sample, label_power,
              n_prototype_features, noise, random_state, dtype,
              label_offset=1.0, n_covered=0):
    """The generator once its parameters are checked (see its docstring)."""
    rs = check_random_state(random_state)
    gen = np.random.default_rng(rs.randint(0, 2**32, size=4, dtype=np.uint64))
    proto_seed = np.uint64(gen.integers(0, np.iinfo(np.int64).max))

    # --- labels -------------------------------------------------------------
    y_cols, y_count, y_indptr = _draw_labels(
        gen, n_samples, n_labels, n_labels_per_sample, label_power, label_offset, n_covered
    )

    # --- prototypes (hashed: no table of n_labels x n_prototype_features) ----
    feature_cdf = _power_law(n_features, _FEATURE_POWER)
    feature_perm = gen.permutation(n_features)
    slot_cdf = _power_law(n_prototype_features, _SLOT_POWER)

    def prototype_feature(labels, slots):
        key = (labels.astype(np.uint64) * np.uint64(n_prototype_features)
               + slots.astype(np.uint64)) ^ proto_seed
        h1 = _mix64(key)
        h2 = _mix64(h1)
        shared = _unit(h1) < _SHARED_FRACTION
        out = (h2 % np.uint64(n_features)).astype(np.int64)
        out[shared] = feature_perm[_sample_cdf(feature_cdf, _unit(h2[shared]))]
        return out

    # --- features, chunk by chunk --------------------------------------------
    m = np.minimum(1 + gen.poisson(n_nonzeros - 1.0, n_samples), n_features)
    x_cols, x_tf, x_count = [], [], []
    for c0 in range(0, n_samples, _CHUNK_ROWS):
        c1 = min(c0 + _CHUNK_ROWS, n_samples)

        def sampler(rows, c0=c0):
            out = np.empty(rows.size, dtype=np.int64)
            is_noise = gen.random(rows.size) < noise
            n_noise = int(is_noise.sum())
            out[is_noise] = gen.integers(0, n_features, n_noise)
            r = rows[~is_noise] + c0
            pick = (gen.random(r.size) * y_count[r]).astype(np.int64)
            labels = y_cols[y_indptr[r] + pick]
            slots = _sample_cdf(slot_cdf, gen.random(r.size))
            out[~is_noise] = prototype_feature(labels, slots)
            return out

        keys, tf = _draw_distinct(m[c0:c1], sampler, n_features)
        rows = keys // n_features
        x_cols.append(keys - rows * n_features)
        x_tf.append(tf)
        x_count.append(np.bincount(rows, minlength=c1 - c0))
        del keys, rows
    x_cols = np.concatenate(x_cols)
    x_tf = np.concatenate(x_tf)
    x_count = np.concatenate(x_count)
    x_indptr = np.zeros(n_samples + 1, dtype=np.int64)
    np.cumsum(x_count, out=x_indptr[1:])

    # --- tf-idf values, unit rows -------------------------------------------
    df = np.bincount(x_cols, minlength=n_features)
    idf = np.log((1.0 + n_samples) / (1.0 + df)) + 1.0
    values = (1.0 + np.log(x_tf)) * idf[x_cols]
    del x_tf
    x_rows = np.repeat(np.arange(n_samples), x_count)
    norms = np.sqrt(np.bincount(x_rows, weights=values * values, minlength=n_samples))
    values /= norms[x_rows]
    del x_rows

    def index_dtype(nnz, n_cols):
        return np.int32 if max(nnz, n_cols) <= np.iinfo(np.int32).max else np.int64

    xi = index_dtype(x_cols.size, n_features)
    yi = index_dtype(y_cols.size, n_labels)
    X = sp.csr_matrix(
        (values.astype(dtype), x_cols.astype(xi), x_indptr.astype(xi)),
        shape=(n_samples, n_features),
    )
    Y = sp.csr_matrix(
        (np.ones(y_cols.size, dtype=dtype), y_cols.astype(yi), y_indptr.astype(yi)),
        shape=(n_samples, n_labels),
    )
    X.has_canonical_format = True
    Y.has_canonical_format = True
    return X, Y


# Published shapes (Extreme Classification Repository; feature density from the
# SLIDE paper) and the label law fitted to them: see the preset function's
# docstring for how label_power and label_offset were solved.
_PRESETS = {
    "amazon-670k": dict(
        n_train=490_449, n_test=153_025, n_features=135_909, n_labels=670_091,
        n_nonzeros=75, n_labels_per_sample=5.45, label_power=0.4991, label_offset=1.0,
    ),
    "delicious-200k": dict(
        n_train=196_606, n_test=100_095, n_features=782_585, n_labels=205_443,
        n_nonzeros=300, n_labels_per_sample=75.54, label_power=1.2927, label_offset=48.2553,
    ),
}


def _head_share(Y, n_top=1000):
    """Share of the label occurrences of ``Y`` held by its ``n_top`` most frequent labels."""
    counts = np.sort(np.asarray(sp.csr_matrix(Y).getnnz(axis=0)))[::-1]
    return float(counts[:n_top].sum() / max(counts.sum(), 1))


def _preset_shape(name, n_train=None, n_test=None):
    """The generator's arguments for preset ``name``, scaled to ``n_train`` rows."""
    if not isinstance(name, str) or name not in _PRESETS:
        raise ValueError(f"name must be one of {sorted(_PRESETS)}, got {name!r}")
    p = dict(_PRESETS[name])
    full_train, full_test, full_labels = p["n_train"], p["n_test"], p["n_labels"]
    if n_train is not None:
        p["n_train"] = _check_int("n_train", n_train, 1)
    scale = p["n_train"] / full_train
    p["n_test"] = (round(full_test * scale) if n_test is None
                   else _check_int("n_test", n_test, 0))
    p["n_labels"] = max(1, round(full_labels * scale))
    # The offset is a number of ranks: scaled with the labels, the law keeps
    # its shape as a function of rank / n_labels ...
    offset = max(1.0, p["label_offset"] * p["n_labels"] / full_labels)
    # ... unless that would give the most frequent label more than half the
    # training rows (Delicious-200K scaled down), as no row subsample would.
    p["label_offset"] = _cap_head_offset(
        p["n_labels"], p["n_train"] * p["n_labels_per_sample"], 0.5 * p["n_train"],
        p["label_power"], offset,
    )
    return p


def _cap_head_offset(n_labels, n_occurrences, cap, power, offset):
    """The smallest offset >= ``offset`` giving rank 0 at most ``cap`` expected occurrences."""
    def top(q):
        w = (np.arange(n_labels, dtype=np.float64) + q) ** -power
        return n_occurrences * w[0] / w.sum()

    if top(offset) <= cap or n_labels * cap < n_occurrences:
        return offset
    low, high = offset, 2.0 * offset
    while top(high) > cap:
        low, high = high, 2.0 * high
    for _ in range(40):
        mid = np.sqrt(low * high)
        low, high = (mid, high) if top(mid) > cap else (low, mid)
    return float(high)


def make_extreme_classification_preset(name, *, n_train=None, n_test=None,
                                       random_state=None, dtype=np.float32):
    """Generate a train/test split shaped like a published extreme classification data set.

    The data come from :func:`make_extreme_classification`'s generative model
    (label prototypes, tf-idf rows) with the preset's shape, and two changes
    to the label stage that make the label frequencies realistic:

    * every label occurs in the training part, by construction: each label
      first takes one label slot of a random training row, and the other
      slots are then drawn from the power law minus that occurrence;
    * the power law ``(r + label_offset) ** -label_power`` over the label
      ranks ``r`` is fitted to the published averages (see below) instead of
      :func:`make_extreme_classification`'s head-heavy default
      ``label_power=1``.

    ================  ==================  ====================
    preset            ``"amazon-670k"``   ``"delicious-200k"``
    ================  ==================  ====================
    train / test      490,449 / 153,025   196,606 / 100,095
    features          135,909             782,585
    labels            670,091             205,443
    labels a row      5.45                75.54
    rows a label      3.99                72.29
    non-zeros a row   75                  300
    label_power       0.4991              1.2927
    label_offset      1                   48.26
    top-1000 share    3.8%                63.4%
    ================  ==================  ====================

    Shapes and averages are those of the Extreme Classification Repository;
    the non-zeros a row follow from the feature densities reported in the
    SLIDE paper (0.055% and 0.038%). How the tail was chosen: the mean rows
    per label is fixed by the other averages, so the law was solved (at full
    size) for the rarest label to expect 2 training rows, as in the real
    data where every label occurs and the rare ones occur once or twice.
    For Amazon-670K this gives an exponent near 0.5 and the most frequent
    label about 1,600 rows (0.3% of them). For Delicious-200K (75 labels a
    row) the same rule with ``label_offset=1`` would give the most frequent
    labels more rows than there are, so the offset flattens the head until
    the most frequent label is drawn half a time a row on average (it ends
    in about 40% of the training rows, as a row holds a label once): a
    modelling choice, the published tables give no head statistic.
    The "top-1000 share" is the share of the training label occurrences
    held by the 1,000 most frequent labels, measured on a full-size draw
    (``random_state=0``) of the generator; the test part gives the same to
    0.1%. :func:`make_extreme_classification` with its defaults
    (``label_power=1``) and Amazon-670K's shape gives about 53%.

    Parameters
    ----------
    name : {"amazon-670k", "delicious-200k"}
        The preset.
    n_train : int, default=None
        Number of training rows; None: the preset's. A different number
        scales the test rows and the labels in proportion (features and
        non-zeros a row unchanged), so labels a row and rows a label are
        kept, with the same exponent. The offset is scaled with the labels
        too, which keeps the law's shape as a function of
        ``rank / n_labels`` (for Amazon-670K the share held by the top
        ``1000 * n_labels / 670,091`` labels stays about 3.8%), except that
        it never drops below 1 nor below what keeps the most frequent label
        drawn at most half a time a row: for Delicious-200K this bound
        decides, the offset stays about 50 to 65 ranks at any size and
        small draws are flatter than the full one.
    n_test : int, default=None
        Number of test rows; None: the preset's, scaled like the labels.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for reproducible output.
    dtype : {np.float32, np.float64}, default=np.float32
        Data type of the ``X`` and ``Y`` matrices.

    Returns
    -------
    X_train : scipy.sparse.csr_matrix of shape (n_train, n_features)
        Non-negative tf-idf features with L2-normalised rows.
    X_test : scipy.sparse.csr_matrix of shape (n_test, n_features)
        The same for the test rows.
    Y_train : scipy.sparse.csr_matrix of shape (n_train, n_labels)
        Binary label indicators; every column has at least one entry.
    Y_test : scipy.sparse.csr_matrix of shape (n_test, n_labels)
        Binary label indicators (drawn from the law, without the guarantee).

    See Also
    --------
    make_extreme_classification : The generator with every parameter exposed.
    load_xc_repository : Load the real data sets.

    Notes
    -----
    The full presets are heavy (Amazon-670K: about 48 million non-zeros,
    Delicious-200K about 90 million); use ``n_train`` of a few thousand for
    quick experiments.
    Train and test rows come from one draw (the test rows only lack the
    guarantee that every label occurs), so they share the label prototypes
    and the tf-idf weights.

    The presets are a function of their own rather than a ``preset``
    parameter of :func:`make_extreme_classification`: a preset fixes every
    shape parameter, returns a train/test split instead of one ``(X, Y)``,
    and uses label-stage options (the offset, the covering of every label)
    that the plain generator does not expose; scikit-learn's generators keep
    one return type and explicit parameters.

    Examples
    --------
    >>> from slidelearn.datasets import make_extreme_classification_preset
    >>> X_train, X_test, Y_train, Y_test = make_extreme_classification_preset(
    ...     "amazon-670k", n_train=2000, random_state=0)
    >>> X_train.shape, X_test.shape, Y_train.shape
    ((2000, 135909), (624, 135909), (2000, 2733))
    >>> bool(Y_train.getnnz(axis=0).min() >= 1)  # every label occurs in training
    True
    >>> labels_a_row, rows_a_label = Y_train.getnnz(axis=1).mean(), Y_train.getnnz(axis=0).mean()
    >>> bool(abs(labels_a_row - 5.45) < 0.2 and abs(rows_a_label - 3.99) < 0.2)
    True
    """
    p = _preset_shape(name, n_train, n_test)
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    n_prototype_features = max(20, int(np.ceil(2 * p["n_nonzeros"] / p["n_labels_per_sample"])))
    X, Y = _generate(
        p["n_train"] + p["n_test"], p["n_features"], p["n_labels"], p["n_nonzeros"],
        p["n_labels_per_sample"], p["label_power"], n_prototype_features, 0.2,
        random_state, np.dtype(dtype), label_offset=p["label_offset"], n_covered=p["n_train"],
    )
    n = p["n_train"]
    return X[:n], X[n:], Y[:n], Y[n:]
