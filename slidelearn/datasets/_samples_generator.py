"""Synthetic extreme multi-label classification data."""
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

__all__ = ["make_extreme_classification"]

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


def _power_law(n, power):
    """Cumulative distribution of ``P(rank r) ~ (r + 1) ** -power``, r < n."""
    cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -float(power))
    cdf /= cdf[-1]
    return cdf


def _sample_cdf(cdf, u):
    """Ranks drawn by inverting ``cdf`` at the uniforms ``u``."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _draw_distinct(targets, sampler, n_cols):
    """Draw ``targets[i]`` distinct columns for every row ``i``.

    ``sampler(rows)`` returns one random column for each entry of ``rows``.
    Rows that drew a column more than once draw again for the missing ones,
    for at most ``_MAX_ROUNDS`` rounds (a row whose distribution has too little
    mass outside its current columns can end with fewer). Returns the sorted
    unique keys ``row * n_cols + col`` and how many times each was drawn.
    """
    n = targets.shape[0]
    need = targets.astype(np.int64)
    keys = np.empty(0, dtype=np.int64)
    counts = np.empty(0, dtype=np.int64)
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
        frequencies, larger values a heavier head and a longer tail.
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

    rs = check_random_state(random_state)
    gen = np.random.default_rng(rs.randint(0, 2**32, size=4, dtype=np.uint64))
    proto_seed = np.uint64(gen.integers(0, np.iinfo(np.int64).max))

    # --- labels -------------------------------------------------------------
    label_cdf = _power_law(n_labels, label_power)
    label_perm = gen.permutation(n_labels)
    k = np.minimum(1 + gen.poisson(n_labels_per_sample - 1.0, n_samples), n_labels)
    y_keys, _ = _draw_distinct(
        k, lambda rows: label_perm[_sample_cdf(label_cdf, gen.random(rows.size))], n_labels
    )
    y_rows = y_keys // n_labels
    y_cols = y_keys - y_rows * n_labels
    y_count = np.bincount(y_rows, minlength=n_samples)
    y_indptr = np.zeros(n_samples + 1, dtype=np.int64)
    np.cumsum(y_count, out=y_indptr[1:])
    del y_keys, y_rows

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
