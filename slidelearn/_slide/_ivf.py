"""A clustering index over the output layer for ``inference="ivf"``.

The rows ``[w_j, b_j]`` of the output layer are scaled by the largest norm M and given
one more coordinate, ``sqrt(1 - |[w_j, b_j]|^2 / M^2)``, so that every row has unit norm:
then the query ``[h, 1, 0]`` has the largest inner product with the row nearest to it,
and k-means clusters of the unit rows gather labels that score alike (the reduction of
maximum inner product search to nearest-neighbour search of Bachrach et al., 2014).
A query scores the centroids, then every label of its ``n_probe`` best clusters
(``_network.topk_probed``): an inverted-file index as vector-search libraries build them.
"""
import math

import numpy as np
import scipy.sparse as sp

from slidelearn._slide import _network
from slidelearn._slide._lsh import mips_rows
from slidelearn.utils._threads import _get_controller, single_threaded_blas

__all__ = ["ClusterIndex", "auto_n_clusters", "probe_budget"]

# Lloyd iterations on a sample of the rows, then one assignment of every row.
_KMEANS_ITERATIONS = 10
_KMEANS_SAMPLE_PER_CLUSTER = 16
_KMEANS_TOP_PER_CLUSTER = 16


def auto_n_clusters(n_labels):
    """``inference_n_clusters="auto"``: about 4 sqrt(n_labels) clusters (a cluster then
    holds about sqrt(n_labels) / 4 labels), at most one per label."""
    return int(max(1, min(n_labels, round(4 * math.sqrt(n_labels)))))


def probe_budget(n_labels, k):
    """``inference_n_probe="auto"``: a row scores its best clusters until they hold
    this many labels: one in 25, and at least 20 k (what budgets found is on the
    inference page of the user guide)."""
    return int(min(n_labels, max(math.ceil(n_labels / 25), 20 * k)))


def _unit_rows(W, b):
    """``[w, b, sqrt(1 - |[w, b]|^2)]`` of the rows scaled by their largest norm: the
    "mips" family's transform (``_lsh.mips_rows``, uncentred) over that norm."""
    sq = np.einsum("ij,ij->i", W, W, dtype=np.float64) + np.square(b, dtype=np.float64)
    top = float(np.sqrt(sq.max())) if sq.size and sq.max() > 0 else 1.0
    rows = mips_rows(W, b, np.zeros(W.shape[1], dtype=np.float32), top)
    rows /= np.float32(top)
    return rows


def _nearest(X, C):
    """Index of the nearest centroid of every row of X (squared distances up to the
    rows' own norms: ``|c|^2 / 2 - x . c``)."""
    half = 0.5 * np.einsum("ij,ij->i", C, C)
    out = np.empty(X.shape[0], dtype=np.int64)
    for s in range(0, X.shape[0], 8192):  # bounded memory: 8192 x n_clusters floats
        out[s:s + 8192] = np.argmax(X[s:s + 8192] @ C.T - half, axis=1)
    return out


def _kmeans(X, n_clusters, rng):
    """Lloyd's k-means of the rows of X from random rows, on a sample of
    ``_KMEANS_SAMPLE_PER_CLUSTER`` rows a cluster; an emptied centroid restarts at a
    random sample row."""
    n = X.shape[0]
    # the rows of largest norm (the last coordinate of a unit row is smallest for them)
    # win most inner products: always in the sample, so that centroids follow them
    n_top = min(n, n_clusters * _KMEANS_TOP_PER_CLUSTER)
    top = np.argpartition(X[:, -1], n_top - 1)[:n_top] if n_top < n else np.arange(n)
    rest = np.setdiff1d(np.arange(n), top, assume_unique=True)
    n_rest = min(rest.size, n_clusters * _KMEANS_SAMPLE_PER_CLUSTER)
    sample = X[np.concatenate([top, rng.choice(rest, n_rest, replace=False)])]
    C = sample[rng.choice(sample.shape[0], n_clusters, replace=False)].copy()
    m = sample.shape[0]
    for _ in range(_KMEANS_ITERATIONS):
        assign = _nearest(sample, C)
        counts = np.bincount(assign, minlength=n_clusters)
        # the sums of every cluster's rows as one sparse product (np.add.at is slow)
        members = sp.csr_matrix((np.ones(m, dtype=np.float32), (assign, np.arange(m))),
                                shape=(n_clusters, m))
        sums = members @ sample
        empty = counts == 0
        C[~empty] = (sums[~empty] / counts[~empty, None]).astype(np.float32)
        if empty.any():
            C[empty] = sample[rng.choice(sample.shape[0], int(empty.sum()), replace=False)]
    return C


class ClusterIndex:
    """Clusters of the output neurons, and the probe of a batch of hidden rows.

    Parameters
    ----------
    W : ndarray of shape (n_labels, H), float32
        Output weights.
    b : ndarray of shape (n_labels,), float32
        Output biases.
    n_clusters : int
        Number of clusters (at most ``n_labels``).
    rng : numpy.random.Generator
        Draws the k-means sample and starting centroids.
    n_threads : int, default=1
        BLAS threads of the k-means products.

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn._slide._ivf import ClusterIndex
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(500, 8)).astype(np.float32)
    >>> index = ClusterIndex(W, np.zeros(500, np.float32), 20, rng)
    >>> int(index.starts[-1]), sorted(index.members) == list(range(500))
    (500, True)
    >>> probe, counts = index.probe(W[:3], 4)
    >>> probe.shape, counts.tolist()
    ((3, 4), [4, 4, 4])
    """

    def __init__(self, W, b, n_clusters, rng, n_threads=1):
        W = np.asarray(W, dtype=np.float32)
        b = np.asarray(b, dtype=np.float32)
        n_labels, H = W.shape
        if not 1 <= n_clusters <= n_labels:
            raise ValueError(f"n_clusters must be in [1, {n_labels}], got {n_clusters}")
        with _get_controller().limit(limits=max(int(n_threads), 1), user_api="blas"):
            U = _unit_rows(W, b)
            C = _kmeans(U, int(n_clusters), rng)
            assign = _nearest(U, C)
        self.n_clusters = int(n_clusters)
        self.members = np.argsort(assign, kind="stable").astype(np.int32)
        self.starts = np.zeros(self.n_clusters + 1, dtype=np.int64)
        np.cumsum(np.bincount(assign, minlength=self.n_clusters), out=self.starts[1:])
        # a query [h, 1, 0] scores centroid c as h . c[:H] + c[H]
        self.centroid_w = np.ascontiguousarray(C[:, :H], dtype=np.float32)
        self.centroid_b = np.ascontiguousarray(C[:, H], dtype=np.float32)

    def probe(self, Hm, n_probe, budget=None, n_threads=1):
        """The clusters of highest centroid score for every row of ``Hm``: the
        ``n_probe`` best, or with ``budget`` the fewest best that hold at least that
        many labels, at most ``n_probe``.

        Parameters
        ----------
        Hm : ndarray of shape (n_rows, H), float32
            Hidden rows (the queries).
        n_probe : int
            Most clusters a row scores (clipped to [1, n_clusters]).
        budget : int, default=None
            Labels the chosen clusters must hold (None: exactly ``n_probe`` clusters).
        n_threads : int, default=1
            Threads of the centroid scores and the choice.

        Returns
        -------
        probe : ndarray of shape (n_rows, n_probe), int32
            Cluster indices; a row's first ``counts`` are its chosen clusters, distinct
            and in no set order, later entries repeat its first
            (``_network.probe_clusters``).
        counts : ndarray of shape (n_rows,), int32
            How many of a row's first entries to score (``n_probe`` for all rows
            without ``budget``).
        """
        n_probe = int(min(max(n_probe, 1), self.n_clusters))
        with single_threaded_blas():
            return _network.probe_clusters(
                np.ascontiguousarray(Hm, dtype=np.float32), self.centroid_w,
                self.centroid_b, self.starts, n_probe,
                0 if budget is None else max(int(budget), 1), max(int(n_threads), 1))
