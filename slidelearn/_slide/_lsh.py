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

    def __init__(self, family, dim, n_codes, n_tables, bin_size, range_pow, rng):
        self.config = dict(family=family, dim=int(dim), n_codes=int(n_codes),
                           n_tables=int(n_tables), bin_size=int(bin_size),
                           range_pow=int(range_pow))
        self.params = None
        self.offsets = self.ids = self.bucket_size = None
        self.redraw(rng)

    def redraw(self, rng):
        """New hash functions (the tables must be filled again before use)."""
        c = self.config
        self.params = _hashing.draw_hash_functions(
            c["family"], c["dim"], c["n_codes"], c["n_tables"], c["bin_size"],
            c["range_pow"], rng)

    @classmethod
    def sharing_functions(cls, other):
        """A new index (no tables yet) with ``other``'s hash functions."""
        index = cls.__new__(cls)
        index.config = other.config
        index.params = other.params
        index.offsets = index.ids = index.bucket_size = None
        return index

    def fill(self, W, n_threads, seed, bucket_size, reservoir, center=None, buckets=None,
             reuse=False):
        """(Re)build the tables from the rows of ``W`` (one per output neuron).

        Rows are centred on ``center`` (default: their mean), which gives every query
        the same inner-product ranking and balances the buckets. With ``reuse`` the
        previous tables' arrays are written into when they fit, as ``buckets`` (a kept
        code buffer) is: fresh arrays would fault in (and zero) the pages of large
        tables at each rebuild. Returns the bucket codes of the rows (to keep as
        ``buckets``).
        """
        if center is None:
            center = _hashing.column_sums(W, n_threads) / max(W.shape[0], 1)
        codes = _hashing.hash_vectors(self.params, W, n_threads, center=center, out=buckets)
        old = (self.offsets, self.ids)
        reuse = reuse and all(a is not None and a.flags.writeable for a in old)
        self.offsets, self.ids = _hashing.build_tables(
            codes, self.params["n_buckets"], bucket_size, reservoir, int(seed), n_threads,
            out=old if reuse else None)
        self.bucket_size = int(bucket_size)
        return codes

    @classmethod
    def from_dict(cls, state):
        """An index from the dict form of models pickled before this class."""
        index = cls.__new__(cls)
        index.config = None
        index.params = state.get("params")
        index.offsets, index.ids = state.get("offsets"), state.get("ids")
        index.bucket_size = state.get("bucket_size")
        return index


class RehashSchedule:
    """After how many training samples the tables are rebuilt.

    A rehash every ``rehash_interval`` samples, with new hash functions drawn first
    once ``rebuild_interval`` samples have passed since the last draw; both intervals
    grow by the factor ``growth`` after each use (the weights move less as training
    goes on).

    Examples
    --------
    >>> from slidelearn._slide._lsh import RehashSchedule
    >>> s = RehashSchedule(rehash_interval=100, rebuild_interval=250, growth=1.0)
    >>> [s.advance(50) for _ in range(6)]  # doctest: +NORMALIZE_WHITESPACE
    [(False, False), (True, False), (False, False), (True, False), (False, False),
     (True, True)]
    """

    def __init__(self, rehash_interval, rebuild_interval, growth):
        self.rehash_every = float(rehash_interval)
        self.rebuild_every = float(rebuild_interval)
        self.growth = float(growth)
        self.since_rehash = 0
        self.since_rebuild = 0

    def advance(self, n_samples):
        """Count ``n_samples`` more training samples; returns ``(rehash, redraw)``:
        whether to rebuild the tables now, and whether to draw new hash functions
        before."""
        self.since_rehash += n_samples
        self.since_rebuild += n_samples
        if self.since_rehash < self.rehash_every:
            return False, False
        redraw = self.since_rebuild >= self.rebuild_every
        if redraw:
            self.since_rebuild = 0
            self.rebuild_every *= self.growth
        self.since_rehash = 0
        self.rehash_every *= self.growth
        return True, redraw

    def rehashed(self):
        """The tables were rebuilt outside the schedule (at the end of ``fit``)."""
        self.since_rehash = 0
