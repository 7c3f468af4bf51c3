"""The output neurons that can score high, for ``inference="norm"``.

Write a query as the mean hidden activation plus a deviation, ``h = m + d``, and centre
the output rows on their mean ``c``. A label's score is then

    w . h + b = (w . m + b) + (w - c) . d + c . d,

where ``c . d`` is the same for every label. The first term, the label's score for the
mean query ("static score"), is one number a label; the second is at most
``|w - c| |d|``. Hidden activations are ReLU outputs, which share a large common
component, so a label wins either by scoring high for the mean query (frequent labels,
and labels whose weights drift along that component when they are rarely pushed down)
or by having a long centred row that a query's deviation can align with. The index
keeps the rows of highest bound ``w . m + b + |w - c| t`` at a typical ``t``, half the
root-mean-square ``|d|`` of training rows (the whole of it ranks rows that a query
rarely reaches; the exact top-1 of most rows is found well inside the bound), in a
compact copy that a query scores exactly (``_network.topk_exact`` on the copy): a
fixed share of the labels, in one blocked matrix product, with no hashing or
clustering to miss the answer.

The same bound tells when an answer is exact: when a row's k-th best score beats
``max(a_i + |w_i - c| t)`` over the rows left out, at ``t = |d|`` (``certified``).
"""
import math

import numpy as np

from slidelearn._slide import _network
from slidelearn.utils._select import top_n

__all__ = ["NormIndex", "auto_budget"]

# rows whose norms are computed at a time: a bounded transient copy of the layer
_CHUNK = 1 << 16
# points of t at which the bound over the left-out rows is tabulated
_BOUND_POINTS = 64


def auto_budget(n_labels):
    """``inference_budget="auto"``: the neurons a row scores, one in 20 and at least
    1,000 (every label below 1,000)."""
    return int(min(n_labels, max(math.ceil(n_labels / 20), 1000)))


class NormIndex:
    """The output neurons of highest score bound at a typical query.

    Parameters
    ----------
    W : ndarray of shape (n_labels, H), float32
        Output weights.
    b : ndarray of shape (n_labels,), float32
        Output biases.
    n_rows : int
        Neurons kept (at most ``n_labels``): those of highest
        ``w . m + b + |w - c| deviation / 2``.
    hidden_mean : ndarray of shape (H,) or None
        The mean hidden activation ``m`` (of training rows); None (models pickled
        before it was kept): zeros, and the longest centred rows are kept.
    deviation : float, default=0.0
        The root-mean-square ``|h - m|`` of training rows; the bound of the left-out
        rows is tabulated up to 8 times it and extrapolated beyond.

    Attributes
    ----------
    ids : ndarray of int32 of shape (n_rows,)
        The kept neurons, in increasing order.
    W_out, b_out : ndarray
        Their weights and biases (the names ``_network.topk_exact`` reads).
    center, hidden_mean : ndarray of float32 of shape (H,)
        The mean row and the mean query.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn._slide._norm import NormIndex
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(100, 8)).astype(np.float32)
    >>> W[:90] *= 0.01  # ninety short rows that never win
    >>> b = np.zeros(100, dtype=np.float32)
    >>> index = NormIndex(W, b, n_rows=20)
    >>> H = rng.normal(size=(5, 8)).astype(np.float32)
    >>> labels, scores = index.topk(H, k=1, n_threads=1)
    >>> bool((labels[:, 0] == np.argmax(H @ W.T, axis=1)).all())
    True
    >>> bool(index.certified(H, scores).all())
    True
    """

    def __init__(self, W, b, n_rows, hidden_mean=None, deviation=0.0):
        W = np.asarray(W, dtype=np.float32)
        b = np.asarray(b, dtype=np.float32)
        n_labels, dim = W.shape
        n_rows = int(min(max(n_rows, 1), n_labels))
        self.center = (np.einsum("ij->j", W, dtype=np.float64)
                       / max(n_labels, 1)).astype(np.float32)
        self.hidden_mean = (np.zeros(dim, dtype=np.float32) if hidden_mean is None
                            else np.asarray(hidden_mean, dtype=np.float32).reshape(dim))
        static = np.empty(n_labels, dtype=np.float64)
        norm = np.empty(n_labels, dtype=np.float64)
        for s in range(0, n_labels, _CHUNK):
            Wc = W[s:s + _CHUNK]
            static[s:s + _CHUNK] = Wc.astype(np.float64) @ self.hidden_mean + b[s:s + _CHUNK]
            D = Wc - self.center
            norm[s:s + _CHUNK] = np.sqrt(np.einsum("ij,ij->i", D, D, dtype=np.float64))
        # without a mean query, the length of the rows alone
        key = norm if hidden_mean is None else static + 0.5 * float(deviation) * norm
        keep = np.zeros(n_labels, dtype=bool)
        keep[top_n(key, n_rows)] = True
        self.ids = np.flatnonzero(keep).astype(np.int32)
        self.W_out = np.ascontiguousarray(W[self.ids])
        self.b_out = np.ascontiguousarray(b[self.ids])
        self.n_labels = n_labels
        # max over the left-out rows of static + norm * t, at t_j; convex in t, so the
        # chords between the points lie above it (an upper bound between them)
        left = ~keep
        top_t = 8.0 * float(deviation) if deviation > 0 else 1.0
        self.bound_t = np.linspace(0.0, top_t, _BOUND_POINTS)
        if left.any():
            s_left, n_left = static[left], norm[left]
            self.bound = np.array([np.max(s_left + t * n_left) for t in self.bound_t])
            self.bound_slope = float(n_left.max())
        else:
            self.bound = np.full(_BOUND_POINTS, -np.inf)
            self.bound_slope = 0.0

    @property
    def n_rows(self):
        """Neurons kept."""
        return self.ids.shape[0]

    def topk(self, H, k, n_threads):
        """The top ``k`` (at most ``n_rows``) kept neurons of every row of ``H`` and
        their scores, best first (label indices of the whole layer)."""
        idx, scores = _network.topk_exact(np.ascontiguousarray(H, dtype=np.float32), self,
                                          k, n_threads)
        return self.ids[idx], scores

    def certified(self, H, scores):
        """Whether each row's answer is exact: its k-th best ``scores`` (as
        :meth:`topk` returned them) beat every neuron left out, by the bound."""
        H = np.asarray(H, dtype=np.float64)
        d = H - self.hidden_mean
        t = np.sqrt(np.einsum("ij,ij->i", d, d))
        inside = np.interp(t, self.bound_t, self.bound)
        beyond = self.bound[-1] + self.bound_slope * (t - self.bound_t[-1])
        bound = np.where(t <= self.bound_t[-1], inside, beyond)
        return scores[:, -1] - d @ self.center.astype(np.float64) >= bound
