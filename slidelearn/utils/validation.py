"""Input validation shared by the slidelearn estimators."""
import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import validate_data

__all__ = ["check_csr_indices", "feature_scale", "scale_features", "validate_sparse_X"]


def check_csr_indices(X, name="X"):
    """Check that a CSR matrix's index arrays are consistent and in range.

    scipy does not re-check matrices built from raw ``(data, indices, indptr)``
    arrays, and a kernel reading such a matrix would read out of bounds; this
    check turns that into a clear ``ValueError``.

    Parameters
    ----------
    X : scipy.sparse CSR matrix or array
        The matrix to check.
    name : str, default="X"
        Name used in error messages.

    Raises
    ------
    ValueError
        If ``indptr`` is not non-decreasing from 0 to ``nnz``, or if a column
        index is negative or not smaller than ``X.shape[1]``.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from slidelearn.utils.validation import check_csr_indices
    >>> X = sp.csr_matrix((np.ones(2), np.array([0, 5]), np.array([0, 1, 2])), shape=(2, 3))
    >>> check_csr_indices(X)
    Traceback (most recent call last):
    ...
    ValueError: X has a column index 5 out of range for 3 columns (row 1).
    """
    indptr, indices = X.indptr, X.indices
    n_rows, n_cols = X.shape
    if indptr.shape[0] != n_rows + 1 or indptr[0] != 0 or indptr[-1] > indices.shape[0]:
        raise ValueError(f"{name} has a malformed CSR indptr array (expected {n_rows + 1} "
                         f"non-decreasing offsets from 0 to at most {indices.shape[0]}).")
    if n_rows and np.any(np.diff(indptr) < 0):
        raise ValueError(f"{name} has a malformed CSR indptr array (offsets decrease).")
    used = indices[: indptr[-1]]
    if used.size:
        lo, hi = used.min(), used.max()
        if lo < 0:
            row = int(np.searchsorted(indptr, int(np.argmax(used < 0)), side="right") - 1)
            raise ValueError(f"{name} has a negative column index {int(lo)} (row {row}).")
        if hi >= n_cols:
            row = int(np.searchsorted(indptr, int(np.argmax(used >= n_cols)), side="right") - 1)
            raise ValueError(f"{name} has a column index {int(hi)} out of range for "
                             f"{n_cols} columns (row {row}).")


def validate_sparse_X(estimator, X, *, reset, ensure_min_samples=1):
    """Validate X for a kernel: CSR float32 with int32/int64 indices, finite values.

    Sparse (CSR/CSC/COO) and dense inputs, float32 or float64 (or integers), are
    converted once to CSR float32; an input that is already CSR float32 is not
    copied and never modified. ``reset`` is passed to ``validate_data`` (it sets
    ``n_features_in_`` when True and checks it otherwise), and so is
    ``ensure_min_samples`` (0 for an MPI rank that joins a collective call with no
    rows of its own).

    Returns
    -------
    X : scipy.sparse.csr_matrix of float32
        Data, indices and indptr ready for the kernels (indices and indptr share
        one dtype, int32 or int64).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import BaseEstimator
    >>> from slidelearn.utils.validation import validate_sparse_X
    >>> Xc = validate_sparse_X(BaseEstimator(), np.eye(3), reset=True)
    >>> Xc.format, Xc.dtype
    ('csr', dtype('float32'))
    """
    X = validate_data(estimator, X, accept_sparse=["csr", "csc", "coo"], dtype=np.float32,
                      reset=reset, ensure_all_finite=True,
                      ensure_min_samples=ensure_min_samples)
    if not sp.issparse(X):
        X = sp.csr_matrix(X)
    elif X.format != "csr":
        X = X.tocsr()
    check_csr_indices(X)
    if X.indices.dtype != X.indptr.dtype or X.indices.dtype not in (np.int32, np.int64):
        X = sp.csr_matrix((X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                          shape=X.shape)
    if not (X.data.flags.c_contiguous and X.indices.flags.c_contiguous and X.indptr.flags.c_contiguous):
        X = X.copy()
    return X


def feature_scale(X, comm=None):
    """Per-feature factors that bring features of large magnitude to root mean square 1.

    Feature ``j`` gets the factor ``1 / max(1, rms_j)``, where ``rms_j`` is the root
    mean square of its values over the rows of ``X`` (zeros included): binary,
    tf-idf and other features whose values stay within about [-1, 1] keep factor 1,
    while raw measurements in the hundreds or thousands are shrunk to unit scale.
    A few such features would otherwise dominate every row's pre-activations and
    the gradient of the sparse input layer. Scaling (not centring) keeps ``X``
    sparse.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix of float32
        Training rows, as returned by :func:`validate_sparse_X`.
    comm : mpi4py.MPI.Intracomm or None, default=None
        When given, the mean is taken over the rows of every rank (collective).

    Returns
    -------
    scale : ndarray of float32 of shape (n_features,) or None
        The factors, or None when every factor is 1.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from slidelearn.utils.validation import feature_scale
    >>> X = sp.csr_matrix(np.array([[1.0, 300.0], [0.0, 400.0]], dtype=np.float32))
    >>> feature_scale(X).round(5)
    array([1.     , 0.00283], dtype=float32)
    """
    sq = np.zeros(X.shape[1], dtype=np.float64)
    np.add.at(sq, X.indices[: X.indptr[-1]],
              np.square(X.data[: X.indptr[-1]], dtype=np.float64))
    n_rows = X.shape[0]
    if comm is not None:
        from slidelearn.utils._mpi import allreduce_
        allreduce_(comm, sq)
        n_rows = comm.allreduce(n_rows)
    rms = np.sqrt(sq / max(n_rows, 1))
    if not np.any(rms > 1.0):
        return None
    # rounded to 4 significant digits, so that sums in another order (over MPI
    # ranks) give the same factors
    big = rms > 1.0
    digits = np.floor(np.log10(rms[big]))
    rms[big] = np.round(rms[big] / 10.0 ** digits, 3) * 10.0 ** digits
    return (1.0 / np.maximum(rms, 1.0)).astype(np.float32)


def scale_features(X, scale):
    """``X`` with its columns multiplied by ``scale`` (a new matrix; ``X`` is unchanged).

    Parameters
    ----------
    X : scipy.sparse.csr_matrix of float32
        Rows to scale.
    scale : ndarray of float32 of shape (n_features,) or None
        Factors from :func:`feature_scale`; None returns ``X`` itself.

    Returns
    -------
    X_scaled : scipy.sparse.csr_matrix of float32

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from slidelearn.utils.validation import scale_features
    >>> X = sp.csr_matrix(np.array([[2.0, 300.0]], dtype=np.float32))
    >>> scale_features(X, np.array([1.0, 0.01], dtype=np.float32)).toarray()
    array([[2., 3.]], dtype=float32)
    """
    if scale is None:
        return X
    data = X.data * scale[X.indices]
    return sp.csr_matrix((data, X.indices, X.indptr), shape=X.shape)
