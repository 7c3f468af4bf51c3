"""Selecting the largest entries of an array without sorting all of it."""
import numpy as np

__all__ = ["top_n"]


def top_n(values, n, *, ordered=False):
    """Indices of the ``n`` largest ``values``, ties broken by the lower index: the
    first ``n`` of a stable argsort of ``-values``, in O(len) time (plus ``n log n``
    with ``ordered``).

    Parameters
    ----------
    values : ndarray of shape (m,)
        Values to rank.
    n : int
        How many indices to return (all ``m`` when ``n >= m``, none when ``n <= 0``).
    ordered : bool, default=False
        Return them largest first (ties by lower index); otherwise in no particular
        order.

    Returns
    -------
    indices : ndarray of int64 of shape (min(max(n, 0), m),)

    Examples
    --------
    >>> import numpy as np
    >>> from slidelearn.utils._select import top_n
    >>> top_n(np.array([3, 1, 4, 1, 5, 4]), 3, ordered=True).tolist()
    [4, 2, 5]
    """
    values = np.asarray(values)
    m = values.shape[0]
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    if n >= m:
        idx = np.arange(m)
    else:
        # argpartition breaks ties at the boundary arbitrarily: take every value above
        # the n-th largest, then the lowest indices of those equal to it
        nth = values[np.argpartition(-values, n - 1)[n - 1]]
        above = np.flatnonzero(values > nth)
        at = np.flatnonzero(values == nth)[:n - above.shape[0]]
        idx = np.concatenate([above, at])
    if ordered:
        idx = np.sort(idx)
        idx = idx[np.argsort(-values[idx], kind="stable")]
    return idx.astype(np.int64, copy=False)
