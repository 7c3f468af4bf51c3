"""Negatives shared by the rows of a batch, for ``negative_sampling="log_uniform"``."""
import numpy as np

__all__ = ["LogUniformSampler"]


# Share of the draws that are uniform over the labels. Log-uniform draws alone reach a
# label of rank k about once in k ln(n) draws: on the Amazon-670K law most labels are
# drawn less than once an epoch, and a tail label never drawn as a negative is only
# ever pushed towards its rows' activations, whose common component then makes it
# score high on every row (see the defaults page of the user guide).
# Half uniform draws reach every label about draws / (2 n) times a batch (the
# time-to-accuracy benchmark measures what it does on text8 and that law).
UNIFORM_SHARE = 0.5


class LogUniformSampler:
    """Draws of the mixture of the log-uniform (Zipfian) law over the labels ranked by
    training frequency, where rank k (0 the most frequent) has probability
    ``log((k + 2) / (k + 1)) / log(n + 1)`` (TensorFlow's
    ``log_uniform_candidate_sampler``), and the uniform law, of weight
    ``uniform_share``.

    Parameters
    ----------
    label_counts : ndarray of shape (n_labels,)
        Training occurrences of each label (ties ranked by label index).
    n_draws : int
        Draws, with replacement, per call of :meth:`draw`.
    uniform_share : float in [0, 1], default=UNIFORM_SHARE
        Weight of the uniform law in the mixture.

    Attributes
    ----------
    log_q : ndarray of float32 of shape (n_labels,)
        Log of each label's probability of being drawn at least once in ``n_draws``
        draws: the correction a sampled softmax subtracts from a drawn negative's
        logit, so that its expectation is that of the full softmax.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn._slide._sampling import LogUniformSampler
    >>> s = LogUniformSampler(np.array([1, 50, 3, 7]), n_draws=3, uniform_share=0.5)
    >>> ids = s.draw(np.random.default_rng(0))
    >>> bool(np.all(np.diff(ids) > 0)), bool(np.all(s.log_q <= 0))
    (True, True)
    """

    def __init__(self, label_counts, n_draws, uniform_share=UNIFORM_SHARE):
        n = len(label_counts)
        self.n_labels, self.n_draws = n, int(n_draws)
        self.uniform_share = float(uniform_share)
        self.by_rank = np.argsort(-np.asarray(label_counts), kind="stable").astype(np.int32)
        k = np.arange(n, dtype=np.float64)
        p = ((1.0 - self.uniform_share) * np.log1p(1.0 / (k + 1.0)) / np.log(n + 1.0)
             + self.uniform_share / n)
        # P(drawn at least once) = 1 - (1 - p)^S; -inf never occurs as p > 0
        with np.errstate(divide="ignore"):
            log_q = np.log(-np.expm1(self.n_draws * np.log1p(-np.minimum(p, 1.0))))
        self.log_q = np.empty(n, dtype=np.float32)
        self.log_q[self.by_rank] = log_q

    def _draws(self, rng):
        """The labels of one batch's draws, with repeats, in draw order (int32)."""
        u = rng.random(self.n_draws)
        # inverse CDF: rank k covers u in [log(k + 1), log(k + 2)) / log(n + 1)
        rank = np.minimum(np.expm1(u * np.log(self.n_labels + 1.0)).astype(np.int64),
                          self.n_labels - 1)
        if self.uniform_share > 0:
            uniform = rng.random(self.n_draws) < self.uniform_share
            rank[uniform] = rng.integers(0, self.n_labels, int(uniform.sum()))
        return self.by_rank[rank]

    def draw(self, rng):
        """Distinct drawn labels of one batch, sorted (int32)."""
        return _sorted_distinct(self._draws(rng))

    def candidates(self, rng, labels):
        """One batch's candidates: its ``labels`` and the labels drawn for it.

        Parameters
        ----------
        rng : numpy.random.Generator
            Draws as :meth:`draw` does: the same state draws the same labels.
        labels : ndarray of int
            The batch's labels (repeats allowed).

        Returns
        -------
        cand : ndarray of int32
            The distinct labels of both, sorted.
        drawn : ndarray of bool of shape (len(cand),)
            Which of them were drawn.
        """
        draws = self._draws(rng)
        cand = _sorted_distinct(np.concatenate([draws, np.asarray(labels, np.int32)]))
        # a mark per label, set and cleared again, instead of np.isin's sort
        mark = getattr(self, "_mark", None)
        if mark is None:
            mark = self._mark = np.zeros(self.n_labels, dtype=bool)
        mark[draws] = True
        drawn = mark[cand]
        mark[draws] = False
        return cand, drawn


def _sorted_distinct(a):
    """The distinct values of ``a``, sorted: ``np.unique`` by a sort and a comparison
    of neighbours (np.unique's hash of integers took several times longer on the
    thousands of labels of a batch)."""
    a = np.sort(a)
    if a.size < 2:
        return a
    keep = np.empty(a.size, dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]
