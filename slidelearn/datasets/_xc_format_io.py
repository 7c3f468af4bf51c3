"""Reader and writer for the Extreme Classification Repository text format.

The format (used by the Extreme Classification Repository for Bibtex,
Delicious, EURLex, Wiki10, AmazonCat, Amazon-670K, ...) is plain text::

    n_points n_features n_labels
    l1,l2,... f:v f:v ...
    ...

The first line is a header with three non-negative integers. Each of the
following ``n_points`` lines describes one point: a comma-separated list of
0-based label indices followed by blank-separated ``feature:value`` pairs with
0-based feature indices. The label list may be empty, in which case the line
starts with a blank or directly with the first ``feature:value`` pair; a
completely empty line is a point with no labels and no features.
"""
import mmap
import os

import numpy as np
import scipy.sparse as sp

from slidelearn.datasets._xc_format import count_separators, parse_xc_body, write_xc_rows

__all__ = ["load_xc_repository", "dump_xc_repository"]

_INT32_MAX = int(np.iinfo(np.int32).max)
# Header values must stay below the saturation point of the index parser.
_MAX_HEADER_VALUE = 10**18 - 1
_BOM = b"\xef\xbb\xbf"


def _fspath(path, name="path"):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(
            f"{name} must be a str or os.PathLike, got {type(path).__name__}"
        ) from None


# Signatures of files that are not (plain, 8-bit) text, for a clearer message.
_SIGNATURES = ((b"\x1f\x8b", "the file is gzip-compressed; decompress it first"),
               (b"BZh", "the file is bzip2-compressed; decompress it first"),
               (b"\xfd7zXZ", "the file is xz-compressed; decompress it first"),
               (b"PK\x03\x04", "the file is a zip archive; extract it first"),
               (b"\xff\xfe", "the file is UTF-16 text; save it as ASCII or UTF-8"),
               (b"\xfe\xff", "the file is UTF-16 text; save it as ASCII or UTF-8"))


def _binary_kind(head, raw):
    """Why a file that fails the header check is not text: a known signature, or
    control bytes in the header; None for a text header."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if any(b < 32 and b not in b"\t\r\v\f" for b in raw):
        return ("the file holds binary data, not the text of an Extreme "
                "Classification Repository file")
    return None


def _parse_header(buf):
    """Return ``(n_points, n_features, n_labels, data_start)`` for ``buf``."""
    start = len(_BOM) if bytes(buf[: len(_BOM)]) == _BOM else 0
    if len(buf) <= start:
        raise ValueError(
            "line 1: empty file; expected the header 'n_points n_features n_labels'"
        )
    nl = buf.find(b"\n", start)
    end = len(buf) if nl < 0 else nl
    raw = bytes(buf[start : min(end, start + 200)])
    fields = raw.split()
    shown = raw.decode("ascii", "backslashreplace")[:80]
    if end - start > 200 or len(fields) != 3 or not all(f.isdigit() for f in fields):
        kind = _binary_kind(bytes(buf[:4]), raw)
        if kind:
            raise ValueError(f"line 1: invalid header: {kind}")
        if b"\r" in raw.rstrip(b"\r"):
            raise ValueError("line 1: invalid header: the lines end with a bare carriage "
                             "return (\\r); convert the file to \\n or \\r\\n line endings")
        long = f" ({end - start:,} bytes long)" if end - start > 200 else ""
        raise ValueError(
            f"line 1: invalid header {shown!r}{long}; expected three non-negative "
            "integers 'n_points n_features n_labels'"
        )
    values = [int(f) for f in fields]
    for name, value in zip(("n_points", "n_features", "n_labels"), values):
        if value > _MAX_HEADER_VALUE:
            raise ValueError(f"line 1: {name}={value} in the header is too large")
    return values[0], values[1], values[2], (len(buf) if nl < 0 else nl + 1)


def _index_dtype(*values):
    return np.int64 if max(values) > _INT32_MAX else np.int32


def _parse_buffer(buf):
    n_points, n_features, n_labels, start = _parse_header(buf)
    n_colons, n_commas = count_separators(buf, start)
    if n_points > len(buf) - start + 1:
        # Cheap guard before allocating ``n_points + 1`` row pointers.
        n_lines = bytes(buf[start:]).count(b"\n") + (
            1 if len(buf) > start and bytes(buf[-1:]) != b"\n" else 0
        )
        raise ValueError(
            f"line {n_lines + 2}: unexpected end of file: the header (line 1) declares "
            f"n_points={n_points} but only {n_lines} data line(s) follow"
        )
    y_cap = n_commas + n_points
    x_dtype = _index_dtype(n_colons, n_features)
    y_dtype = _index_dtype(y_cap, n_labels)
    x_indptr = np.empty(n_points + 1, dtype=x_dtype)
    x_indices = np.empty(n_colons, dtype=x_dtype)
    x_data = np.empty(n_colons, dtype=np.float32)
    y_indptr = np.empty(n_points + 1, dtype=y_dtype)
    y_indices = np.empty(y_cap, dtype=y_dtype)
    y_data = np.ones(y_cap, dtype=np.float32)
    x_nnz, y_nnz = parse_xc_body(
        buf, start, n_points, n_features, n_labels,
        x_indptr, x_indices, x_data, y_indptr, y_indices, y_data,
    )
    if x_nnz < len(x_indices):
        x_indices, x_data = x_indices[:x_nnz].copy(), x_data[:x_nnz].copy()
    if y_nnz < len(y_indices):
        y_indices, y_data = y_indices[:y_nnz].copy(), y_data[:y_nnz].copy()
    X = sp.csr_matrix((x_data, x_indices, x_indptr), shape=(n_points, n_features))
    Y = sp.csr_matrix((y_data, y_indices, y_indptr), shape=(n_points, n_labels))
    # The parser sorts each row and rejects repeated indices.
    X.has_canonical_format = True
    Y.has_canonical_format = True
    return X, Y


def load_xc_repository(path):
    """Load a data set in the Extreme Classification Repository text format.

    The file starts with a header line ``n_points n_features n_labels``
    followed by one line per point::

        l1,l2,... f:v f:v ...

    where ``l1,l2,...`` are 0-based label indices (the list may be empty: the
    line then starts with a blank, or directly with the first ``f:v`` pair,
    or is completely empty) and each ``f:v`` is a 0-based feature index and
    its value. Blank lines after the ``n_points`` data lines are ignored; a
    missing newline at the end of the file is accepted. ``\\r\\n`` line
    endings and a UTF-8 byte order mark are accepted.

    The file is memory-mapped and parsed by a compiled two-pass parser (count
    separators, then parse into preallocated arrays): no Python work per line,
    and the CSR arrays are allocated once.

    Parameters
    ----------
    path : str or os.PathLike
        Path of the text file (not compressed).

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_points, n_features), dtype float32
        Feature values. Indices are int32 unless the matrix is too large for
        them (then int64); each row has sorted, unique column indices.
    Y : scipy.sparse.csr_matrix of shape (n_points, n_labels), dtype float32
        Label indicator matrix: ``Y[i, j] == 1.0`` if point ``i`` has label
        ``j``. Same index conventions as ``X``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    TypeError
        If ``path`` is not a str or path-like object.
    ValueError
        If the file is malformed. The message starts with ``line N:`` (1-based,
        the header is line 1) and names the problem: a file that is not text
        (binary data, compressed, UTF-16), an invalid header, an
        invalid label list or ``index:value`` token, an index out of the range
        given by the header, a feature or label repeated within a line, a
        value that overflows float32, fewer data lines than ``n_points`` or
        non-blank lines after them.

    See Also
    --------
    dump_xc_repository : Write matrices in this format.

    Examples
    --------
    >>> import os, tempfile
    >>> from slidelearn.datasets import load_xc_repository
    >>> text = "3 4 2\\n0,1 0:1.5 3:2\\n 1:0.25\\n1\\n"
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "tiny.txt")
    ...     with open(path, "w") as f:
    ...         _ = f.write(text)
    ...     X, Y = load_xc_repository(path)
    >>> X.shape, Y.shape
    ((3, 4), (3, 2))
    >>> X.toarray()
    array([[1.5 , 0.  , 0.  , 2.  ],
           [0.  , 0.25, 0.  , 0.  ],
           [0.  , 0.  , 0.  , 0.  ]], dtype=float32)
    >>> Y.toarray()
    array([[1., 1.],
           [0., 0.],
           [0., 1.]], dtype=float32)
    """
    path = _fspath(path)
    with open(path, "rb") as f:
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):
            # Empty files and special files cannot be mapped.
            return _parse_buffer(f.read())
        with mm:
            return _parse_buffer(mm)


def _as_csr(A, name):
    """CSR float32 copy-on-write view of ``A`` with no duplicate entries."""
    if sp.issparse(A):
        dtype = A.dtype
    else:
        try:
            A = np.asarray(A)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a 2-D array or sparse matrix: {exc}") from None
        dtype = A.dtype
    if dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got an array of shape {A.shape}")
    if dtype.kind == "f" and not sp.issparse(A) and not np.isfinite(A).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if sp.issparse(A) and dtype.kind == "f" and not np.isfinite(A.data).all():
        raise ValueError(f"{name} contains NaN or infinity")
    with np.errstate(over="ignore"):
        C = sp.csr_matrix(A, dtype=np.float32)
    if not C.has_canonical_format:
        # csr_matrix may share arrays with the input: never modify it in place.
        C = C.copy()
        C.sum_duplicates()
    if not np.isfinite(C.data).all():
        raise ValueError(f"{name} has values that overflow float32 (or sum to infinity)")
    indptr = np.ascontiguousarray(C.indptr)
    indices = np.ascontiguousarray(C.indices, dtype=indptr.dtype)
    data = np.ascontiguousarray(C.data, dtype=np.float32)
    return C.shape, indptr, indices, data


def dump_xc_repository(X, Y, path):
    """Write a data set in the Extreme Classification Repository text format.

    Writes the header ``n_points n_features n_labels`` (taken from
    ``X.shape[0]``, ``X.shape[1]`` and ``Y.shape[1]``) then one line per row:
    the comma-separated label indices of the row of ``Y`` followed by
    ``index:value`` pairs for the stored entries of ``X`` (explicitly stored
    zeros are written too). A row with no labels is written as a line starting
    with a blank. Values are written at float32 precision with the fewest
    digits (7 or 9 significant, integers exactly) that read back to the same
    float32, independently of the C locale, so ``load_xc_repository`` returns
    exactly the matrices that were dumped (as float32).

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Feature matrix of real numbers; must be finite and representable in
        float32. Repeated entries of a sparse matrix are summed. ``X`` is not
        modified.
    Y : {array-like, sparse matrix} of shape (n_samples, n_labels)
        Binary label indicator matrix (entries 0 or 1).
    path : str or os.PathLike
        Output file; overwritten if it exists.

    Raises
    ------
    TypeError
        If ``X`` or ``Y`` is not numeric or ``path`` is not path-like.
    ValueError
        If the shapes disagree, ``X`` has non-finite values or ``Y`` is not
        binary.

    See Also
    --------
    load_xc_repository : Read files in this format.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from slidelearn.datasets import dump_xc_repository, load_xc_repository
    >>> X = np.array([[0.5, 0.0, 2.0], [0.0, 0.0, 0.0]])
    >>> Y = np.array([[1, 0], [0, 0]])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "out.txt")
    ...     dump_xc_repository(X, Y, path)
    ...     with open(path) as f:
    ...         print(f.read(), end="")
    ...     X2, Y2 = load_xc_repository(path)
    2 3 2
    0 0:0.5 2:2
    <BLANKLINE>
    >>> bool((X2.toarray() == X).all() and (Y2.toarray() == Y).all())
    True
    """
    path = _fspath(path)
    (n, d), x_indptr, x_indices, x_data = _as_csr(X, "X")
    (n_y, n_labels), y_indptr, y_indices, y_data = _as_csr(Y, "Y")
    if n_y != n:
        raise ValueError(f"X and Y must have the same number of rows, got {n} and {n_y}")
    if not np.isin(y_data, (0.0, 1.0)).all():
        raise ValueError("Y must be a binary label indicator matrix (entries 0 or 1)")
    if (y_data == 0).any():
        keep = y_data != 0
        row_of = np.repeat(np.arange(n), np.diff(y_indptr))
        y_indices = y_indices[keep]
        y_indptr = np.concatenate(
            [[0], np.cumsum(np.bincount(row_of[keep], minlength=n))]
        ).astype(y_indices.dtype)
    with open(path, "wb") as f:
        f.write(f"{n} {d} {n_labels}\n".encode("ascii"))
        write_xc_rows(f.write, x_indptr, x_indices, x_data, y_indptr, y_indices)
