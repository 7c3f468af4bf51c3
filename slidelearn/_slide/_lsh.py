"""The hash tables over the output neurons, and when they are rebuilt.

:class:`LSHIndex` owns one set of hash functions and the bucket tables built with them
from the output weights: the training tables that choose each sample's active neurons,
and the separate inference tables that ``inference_*`` parameters ask for.
:class:`RehashSchedule` says after how many training samples the training tables are
rebuilt from the current weights (a *rehash*) and when the hash functions themselves are
redrawn first (a *rebuild*). Kernels read an index's ``params``, ``offsets``, ``ids``
and ``bucket_size``. A new hash family goes into ``_hashing.pyx`` (its draw and its
code kernels); nothing here changes.
"""
import numpy as np

from slidelearn._slide import _hashing

__all__ = ["LSHIndex", "RehashSchedule"]


class LSHIndex:
    """Hash functions and the bucket tables built with them.

    Parameters
    ----------
    family : str
        Hash family (see ``SlideClassifier``'s ``hash_family``).
    dim : int
        Width of the hashed vectors (the last hidden layer).
    n_codes, n_tables, bin_size, range_pow : int
        Codes per table, tables, and the family's bin size and code range.
    rng : numpy.random.Generator
        Draws the hash functions.

    Attributes
    ----------
    params : dict
        The drawn hash functions (``_hashing.draw_hash_functions``).
    offsets : ndarray of int32 of shape (n_tables, n_buckets + 1) or None
        Bucket b of table t holds ``ids[t, offsets[t, b]:offsets[t, b + 1]]``.
    ids : ndarray of int32 of shape (n_tables, n_items) or None
        Output neurons, bucket after bucket.
    bucket_size : int or None
        The most ids a bucket keeps.
    probe : tuple or None
        ``(rows, codes, center, max_norm)`` of a sample of rows at the last fill, for
        :meth:`stale_share`.
    deferred : int or None
        After :meth:`defer`: the seed of the fill its owner makes when the tables are
        next needed (there are none until then).

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn._slide._lsh import LSHIndex
    >>> rng = np.random.default_rng(0)
    >>> index = LSHIndex("dwta", 16, n_codes=2, n_tables=4, bin_size=4, range_pow=6,
    ...                  rng=rng)
    >>> W = rng.normal(size=(50, 16)).astype(np.float32)
    >>> codes = index.fill(W, n_threads=1, seed=0, bucket_size=8, reservoir=False)
    >>> index.ids.shape[0], index.bucket_size
    (4, 8)
    """

    deferred = None  # also for indexes pickled before defer existed

    def __init__(self, family, dim, n_codes, n_tables, bin_size, range_pow, rng):
        self.config = dict(family=family, dim=int(dim), n_codes=int(n_codes),
                           n_tables=int(n_tables), bin_size=int(bin_size),
                           range_pow=int(range_pow))
        self.params = None
        self.offsets = self.ids = self.bucket_size = self.probe = None
        self.redraw(rng)

    def redraw(self, rng):
        """New hash functions (the tables must be filled again before use)."""
        c = self.config
        # "mips" hashes the output rows with their bias and a norm coordinate appended
        dim = c["dim"] + 2 if c["family"] == "mips" else c["dim"]
        self.params = _hashing.draw_hash_functions(
            c["family"], dim, c["n_codes"], c["n_tables"], c["bin_size"],
            c["range_pow"], rng)
        self.probe = None  # codes of the old functions

    def __getstate__(self):
        state = self.__dict__.copy()
        if self.params is not None and "proj" in self.params:
            # the dense projections are the sparse ones written out (H + 2 floats a code
            # for "mips"): made again on first use rather than stored
            state["params"] = {k: v for k, v in self.params.items() if k != "proj"}
        return state

    @classmethod
    def sharing_functions(cls, other):
        """A new index (no tables yet) with ``other``'s hash functions."""
        index = cls.__new__(cls)
        index.config = other.config
        index.params = other.params
        index.offsets = index.ids = index.bucket_size = index.probe = None
        return index

    def fill(self, W, n_threads, seed, bucket_size, reservoir, center=None, buckets=None,
             reuse=False, bias=None, probe=0):
        """(Re)build the tables from the rows of ``W`` (one per output neuron).

        Rows are centred on ``center`` (default: their mean), which gives every query
        the same inner-product ranking and balances the buckets. The "mips" family
        hashes :func:`mips_rows` of the centred rows and ``bias`` (the output biases,
        required), so that retrieval follows the scores ``w . h + b``. With ``reuse`` the
        previous tables' arrays are written into when they fit, as ``buckets`` (a kept
        code buffer) is: fresh arrays would fault in (and zero) the pages of large
        tables at each rebuild. With ``probe``, the codes of that many rows drawn with
        ``seed`` are kept for :meth:`stale_share`. Returns the bucket codes of the rows
        (to keep as ``buckets``).
        """
        if center is None:
            center = _hashing.column_sums(W, n_threads) / max(W.shape[0], 1)
        max_norm = None
        if self.params["family"] == "mips":
            codes, max_norm = _hash_mips(self.params, W, bias, center, n_threads, buckets)
        else:
            codes = _hashing.hash_vectors(self.params, W, n_threads, center=center,
                                          out=buckets)
        self.probe = None
        if probe > 0 and W.shape[0] > 0:
            rows = np.random.default_rng(seed).choice(
                W.shape[0], min(int(probe), W.shape[0]), replace=False)
            rows.sort()
            self.probe = (rows, codes[:, rows].copy(), np.array(center, dtype=np.float32),
                          max_norm)
        old = (self.offsets, self.ids)
        reuse = reuse and all(a is not None and a.flags.writeable for a in old)
        self.offsets, self.ids = _hashing.build_tables(
            codes, self.params["n_buckets"], bucket_size, reservoir, int(seed), n_threads,
            out=old if reuse else None)
        self.bucket_size = int(bucket_size)
        self.deferred = None
        return codes

    def defer(self, seed):
        """Drop the tables (and the probe): the owner fills them with ``seed`` when it
        next needs them. A model that trains and predicts without its tables does not
        build them at every fit nor carry them: with a large ``range_pow`` they are
        ``n_tables x 2**range_pow`` offsets, however few the output neurons."""
        self.offsets = self.ids = self.probe = None
        self.deferred = int(seed)

    def stale_share(self, W, bias, n_threads):
        """The share of the probed rows' bucket codes (one per row and table) that the
        rows ``W`` (and ``bias``) hash to now differ from those of the last
        :meth:`fill`: the share of the tables' entries that are out of date, as far as
        a sample of rows tells. 1.0 when the last fill kept no probe.

        Rows are hashed as the fill hashed them: centred on its centre and, for
        "mips", scaled against its largest norm, so that an unchanged row keeps its
        codes.
        """
        probe = getattr(self, "probe", None)
        if probe is None:
            return 1.0
        rows, codes, center, max_norm = probe
        if self.params["family"] == "mips":
            now = _hashing.hash_vectors(
                self.params, mips_rows(W[rows], bias[rows], center, max_norm), n_threads)
        else:
            now = _hashing.hash_vectors(self.params, np.ascontiguousarray(W[rows]),
                                        n_threads, center=center)
        return float(np.count_nonzero(now != codes)) / codes.size

    @classmethod
    def from_dict(cls, state):
        """An index from the dict form of models pickled before this class."""
        index = cls.__new__(cls)
        index.config = None
        index.params = state.get("params")
        index.offsets, index.ids = state.get("offsets"), state.get("ids")
        index.bucket_size = state.get("bucket_size")
        return index


# rows transformed at a time by the "mips" fill: a bounded transient copy of the layer
_MIPS_CHUNK = 1 << 16


def mips_rows(W, bias, center, max_norm):
    """The rows ``[w - center, b, sqrt(max_norm**2 - |w - center|**2 - b**2)]``.

    With the query ``[h, 1, 0]`` their inner product is the score ``w . h + b``
    less ``center . h`` (the same for every row), and all rows have the norm
    ``max_norm``, so the angle to the query, which SimHash estimates, orders the rows
    by score (the asymmetric transform of Neyshabur and Srebro, 2015, with the bias
    as one more coordinate).

    Parameters
    ----------
    W : ndarray of shape (n, H), float32 or uint16 (bfloat16 bits)
        Output weights.
    bias : ndarray of shape (n,)
        Output biases.
    center : ndarray of shape (H,)
        Subtracted from every row.
    max_norm : float
        At least the largest norm of ``[w - center, b]`` over all rows of the layer.

    Returns
    -------
    rows : ndarray of shape (n, H + 2), float32

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn._slide._lsh import mips_rows
    >>> W = np.array([[3.0, 4.0], [0.0, 1.0]], dtype=np.float32)
    >>> R = mips_rows(W, np.zeros(2, np.float32), np.zeros(2, np.float32), 5.0)
    >>> np.round(np.linalg.norm(R, axis=1), 4).tolist()
    [5.0, 5.0]
    """
    W = _as_float32(W)
    out = np.empty((W.shape[0], W.shape[1] + 2), dtype=np.float32)
    np.subtract(W, np.asarray(center, dtype=np.float32), out=out[:, :-2])
    out[:, -2] = bias
    sq = np.einsum("ij,ij->i", out[:, :-1], out[:, :-1], dtype=np.float64)
    out[:, -1] = np.sqrt(np.maximum(float(max_norm) ** 2 - sq, 0.0))
    return out


def _as_float32(W):
    if W.dtype == np.uint16:  # bfloat16 bits: the float32 with the same top half
        return (W.astype(np.uint32) << 16).view(np.float32)
    return np.asarray(W, dtype=np.float32)


def _hash_mips(params, W, bias, center, n_threads, out):
    """Bucket codes (L, n) of :func:`mips_rows` of ``W``, a chunk of rows at a time,
    and the largest norm the transform used."""
    if bias is None or len(bias) != W.shape[0]:
        raise ValueError("the 'mips' hash family needs the output biases, one per row")
    n, L = W.shape[0], params["n_tables"]
    if out is None or out.shape != (L, n) or out.dtype != np.uint32:
        out = np.empty((L, n), dtype=np.uint32)
    center = np.asarray(center, dtype=np.float32)
    max_norm = 0.0
    for s in range(0, n, _MIPS_CHUNK):
        Wc = _as_float32(W[s:s + _MIPS_CHUNK]) - center
        sq = (np.einsum("ij,ij->i", Wc, Wc, dtype=np.float64)
              + np.asarray(bias[s:s + _MIPS_CHUNK], dtype=np.float64) ** 2)
        max_norm = max(max_norm, float(np.sqrt(sq.max())) if len(sq) else 0.0)
    for s in range(0, n, _MIPS_CHUNK):
        rows = mips_rows(W[s:s + _MIPS_CHUNK], bias[s:s + _MIPS_CHUNK], center, max_norm)
        out[:, s:s + rows.shape[0]] = _hashing.hash_vectors(params, rows, n_threads)
    return out, max_norm


class RehashSchedule:
    """When the tables are rebuilt during training.

    By count: a rehash every ``rehash_interval`` samples, with new hash functions
    drawn first once ``rebuild_interval`` samples have passed since the last draw;
    both intervals grow by the factor ``growth`` after each use (the weights move
    less as training goes on).

    By drift (``drift`` set): a rehash as soon as the share of out-of-date table
    entries (``LSHIndex.stale_share``, passed to :meth:`advance` as ``stale``)
    reaches ``drift``, so that the tables follow the weights as fast as they move,
    early in training more often, later less; new functions are still drawn by
    count, and a draw rebuilds the tables whatever the drift.

    Examples
    --------
    >>> from slidelearn._slide._lsh import RehashSchedule
    >>> s = RehashSchedule(rehash_interval=100, rebuild_interval=250, growth=1.0)
    >>> [s.advance(50) for _ in range(6)]  # doctest: +NORMALIZE_WHITESPACE
    [(False, False), (True, False), (False, False), (True, False), (False, False),
     (True, True)]
    >>> s = RehashSchedule(100, 1000, 1.0, drift=0.1)
    >>> [s.advance(50, stale) for stale in (0.02, 0.12, 0.01)]
    [(False, False), (True, False), (False, False)]
    """

    def __init__(self, rehash_interval, rebuild_interval, growth, drift=None):
        self.rehash_every = float(rehash_interval)
        self.rebuild_every = float(rebuild_interval)
        self.growth = float(growth)
        self.drift = None if drift is None else float(drift)
        self.since_rehash = 0
        self.since_rebuild = 0
        self.n_rehashes = 0

    def advance(self, n_samples, stale=None):
        """Count ``n_samples`` more training samples (after which ``stale`` of the
        tables' entries are out of date, with ``drift``); returns ``(rehash, redraw)``:
        whether to rebuild the tables now, and whether to draw new hash functions
        before."""
        self.since_rehash += n_samples
        self.since_rebuild += n_samples
        drift = getattr(self, "drift", None)  # schedules pickled before drift
        if drift is None:
            if self.since_rehash < self.rehash_every:
                return False, False
        elif self.since_rebuild < self.rebuild_every and (stale is None or stale < drift):
            return False, False
        redraw = self.since_rebuild >= self.rebuild_every
        if redraw:
            self.since_rebuild = 0
            self.rebuild_every *= self.growth
        self.since_rehash = 0
        if drift is None:
            self.rehash_every *= self.growth
        self.n_rehashes = getattr(self, "n_rehashes", 0) + 1
        return True, redraw

    def rehashed(self):
        """The tables were rebuilt outside the schedule (at the end of ``fit``)."""
        self.since_rehash = 0
