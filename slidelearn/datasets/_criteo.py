"""Streaming reader for the Criteo display-advertising text format.

The Criteo data sets (the Kaggle display-advertising challenge and the
Terabyte click logs) are tab-separated text without a header. Each line is::

    label  I1 ... I13  C1 ... C26

``label`` is 0 or 1 (click), ``I1``-``I13`` are integer counts and
``C1``-``C26`` are hashed categorical values written as hexadecimal strings
(usually 8 digits). Any field may be empty (missing); trailing empty fields
are sometimes dropped, so a line may hold fewer than 40 fields.
"""
import errno
import gzip
import numbers
import os
import re

import numpy as np

__all__ = ["iter_criteo", "CRITEO_CATEGORICAL_FEATURES"]

_N_INT = 13
_N_CAT = 26
_N_FIELDS = 1 + _N_INT + _N_CAT
#: Columns of the ``X`` chunks from :func:`iter_criteo` that hold categorical ids.
CRITEO_CATEGORICAL_FEATURES = np.arange(_N_INT, _N_INT + _N_CAT)
# Largest id that float64 holds exactly together with all smaller integers.
_MAX_EXACT_ID = 2**53 - 1
_PADS = [b"\t" * k for k in range(_N_FIELDS)]

_IS_DIGIT = np.zeros(256, dtype=bool)
_IS_DIGIT[ord("0") : ord("9") + 1] = True
_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate("0123456789abcdef"):
    _HEX_VALUE[ord(_c)] = _i
    _HEX_VALUE[ord(_c.upper())] = _i
_IS_HEX = _HEX_VALUE != 255
_HEX_VALUE[~_IS_HEX] = 0
_HEX_VALUE = _HEX_VALUE.astype(np.uint64)
_INTEGER = re.compile(rb"-?[0-9]+")
_HEX = re.compile(rb"[0-9a-fA-F]+")


def _check_positive_int(value, name, minimum=1, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _show(field):
    text = field.decode("ascii", "backslashreplace")
    return repr(text if len(text) <= 40 else text[:37] + "...")


class _Chunk:
    """Pending lines of one chunk and their 1-based line numbers.

    :meth:`parse` joins the (padded) lines with tabs and locates the 40 fields
    of every line from the tab positions, so that the fields are validated
    and converted by vectorised passes over their bytes. Fields longer than
    what the 64-bit passes hold (rare) are handled one by one.
    """

    # Longest count (sign included) and hexadecimal string parsed in int64 / uint64.
    _INT_WIDTH = 18
    _HEX_WIDTH = 16

    def __init__(self, name, n_hash_bins):
        self.name = name
        self.n_hash_bins = n_hash_bins
        self.lines = []
        self.linenos = []

    def error(self, row, message):
        return ValueError(f"{self.name}, line {self.linenos[row]}: {message}")

    def parse(self):
        """Return ``(X, y)`` for the pending lines and clear them."""
        n = len(self.lines)
        self.lines.append(b"")
        buf = b"\t".join(self.lines)  # every field now ends with a tab
        self.lines.pop()
        # The padding lets the passes read ``width`` bytes from any field start.
        u8 = np.frombuffer(buf + bytes(self._INT_WIDTH + self._HEX_WIDTH), dtype=np.uint8)
        ends = np.flatnonzero(u8 == 9)
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        lens = (ends - starts).reshape(n, _N_FIELDS)
        starts = starts.reshape(n, _N_FIELDS)
        self._buf, self._starts, self._lens = buf, starts, lens

        first = u8[starts[:, 0]]
        bad_label = (lens[:, 0] != 1) | ((first != ord("0")) & (first != ord("1")))
        int_value, int_missing, int_negative, bad_int = self._counts(u8)
        cat_value, cat_missing, long_hex, bad_cat = self._hex(u8)
        bad_rows = bad_label | bad_int.any(axis=1) | bad_cat.any(axis=1)
        if bad_rows.any():
            row = int(np.argmax(bad_rows))
            if bad_label[row]:
                raise self.error(row, f"the label must be 0 or 1, got {self._field(row, 0)}")
            if bad_int[row].any():
                j = int(np.argmax(bad_int[row]))
                raise self.error(
                    row,
                    f"integer feature I{j + 1} (field {j + 2}) is not an integer: "
                    f"{self._field(row, 1 + j)}",
                )
            j = int(np.argmax(bad_cat[row]))
            raise self.error(
                row,
                f"categorical feature C{j + 1} (field {j + 15}) is not a hexadecimal "
                f"string: {self._field(row, 1 + _N_INT + j)}",
            )

        X = np.empty((n, _N_FIELDS - 1), dtype=np.float64)
        counts = X[:, :_N_INT]
        counts[...] = int_value
        counts[int_missing | int_negative] = 0.0
        np.log(counts + 1.0, out=counts)
        X[:, _N_INT:] = self._ids(cat_value, cat_missing, long_hex)
        y = (first == ord("1")).astype(np.int64)
        self.lines, self.linenos = [], []
        self._buf = self._starts = self._lens = None
        return X, y

    def _field(self, row, col, quoted=True):
        start = self._starts[row, col]
        field = self._buf[start : start + self._lens[row, col]]
        return _show(field) if quoted else field

    def _long_fields(self, mask, cols):
        for row, j in zip(*np.nonzero(mask)):
            yield row, j, self._field(row, cols.start + j, quoted=False)

    def _counts(self, u8):
        """Values (float64), missing, negative and invalid masks of the counts."""
        cols = slice(1, 1 + _N_INT)
        starts, lens = self._starts[:, cols], self._lens[:, cols]
        negative = u8[starts] == ord("-")
        bad = negative & (lens == 1)
        value = np.zeros(lens.shape, dtype=np.int64)
        for k in range(min(int(lens.max()), self._INT_WIDTH)):
            c = u8[starts + k]
            inside = lens > k
            digit = _IS_DIGIT[c] & inside
            invalid = inside & ~digit
            if k == 0:
                invalid &= ~negative
            bad |= invalid
            value = np.where(digit, value * 10 + (c - ord("0")), value)
        value = value.astype(np.float64)
        for row, j, field in self._long_fields(lens > self._INT_WIDTH, cols):
            if _INTEGER.fullmatch(field):
                value[row, j] = float(field)
            else:
                bad[row, j] = True
        return value, lens == 0, negative, bad

    def _hex(self, u8):
        """Values (uint64), missing, too-long and invalid masks of the categoricals."""
        cols = slice(1 + _N_INT, _N_FIELDS)
        starts, lens = self._starts[:, cols], self._lens[:, cols]
        bad = np.zeros(lens.shape, dtype=bool)
        value = np.zeros(lens.shape, dtype=np.uint64)
        shift = np.uint64(4)
        for k in range(min(int(lens.max()), self._HEX_WIDTH)):
            c = u8[starts + k]
            inside = lens > k
            bad |= inside & ~_IS_HEX[c]
            value = np.where(inside, (value << shift) | _HEX_VALUE[c], value)
        long = lens > self._HEX_WIDTH
        for row, j, field in self._long_fields(long, cols):
            bad[row, j] = _HEX.fullmatch(field) is None
        return value, lens == 0, long, bad

    def _ids(self, value, missing, long):
        """Float64 ids of validated hexadecimal values (see :func:`iter_criteo`)."""
        present = ~missing
        m = self.n_hash_bins
        ids = np.zeros(value.shape, dtype=np.float64)
        if m is None:
            too_large = present & ~long & (value > np.uint64(_MAX_EXACT_ID - 1))
            ids[present] = (value[present] + np.uint64(1)).astype(np.float64)
        else:
            too_large = np.zeros(value.shape, dtype=bool)
            ids[present] = (value[present] % np.uint64(m - 1) + np.uint64(1)).astype(
                np.float64
            )
        # Strings of more than 16 digits do not fit the uint64 pass.
        for row, j, field in self._long_fields(long, slice(1 + _N_INT, _N_FIELDS)):
            v = int(field, 16)
            if m is not None:
                ids[row, j] = 1 + v % (m - 1)
            elif v > _MAX_EXACT_ID - 1:
                too_large[row, j] = True
            else:
                ids[row, j] = v + 1
        if too_large.any():
            row = int(np.argmax(too_large.any(axis=1)))
            j = int(np.argmax(too_large[row]))
            raise self.error(
                row,
                f"categorical feature C{j + 1} = {self._field(row, 1 + _N_INT + j)} is "
                "too large to be an exact float64 id; pass n_hash_bins to hash it",
            )
        return ids


def iter_criteo(path, chunksize=65536, *, n_hash_bins=None, max_rows=None):
    """Stream a Criteo display-advertising text file in ``(X, y)`` chunks.

    The file is tab-separated with no header; each line holds a 0/1 label,
    13 integer counts ``I1``-``I13`` and 26 hexadecimal categorical values
    ``C1``-``C26``. Any field may be empty (missing) and trailing fields may
    be absent: short lines are padded to 40 fields. Blank lines are skipped,
    the last line may lack its newline and ``\\r\\n`` line endings are
    accepted. A path ending with ``.gz`` is read as gzip. The file is read
    line by line: at most ``chunksize`` lines are held in memory at a time.

    The features follow the preprocessing of the reference DLRM
    implementation:

    - columns 0-12 (counts): a missing count is 0, negative counts are
      clipped to 0, then ``log(x + 1)`` is taken;
    - columns 13-38 (categorical, see ``CRITEO_CATEGORICAL_FEATURES``): id 0
      is reserved for a missing value; a present hexadecimal string with
      unsigned value ``v`` gets id ``v + 1`` if ``n_hash_bins`` is None, or
      ``1 + v % (n_hash_bins - 1)`` otherwise, so that all ids lie in
      ``[0, n_hash_bins)`` and ``n_hash_bins`` is the embedding table size.
      (The reference's ``max_ind_range`` maps ``v`` to ``v % max_ind_range``
      and so mixes missing values with the values that hash to 0.)

    All ids are integers held exactly by float64.

    Parameters
    ----------
    path : str or os.PathLike
        Path of the text file, gzip-compressed if it ends with ``.gz``.
    chunksize : int, default=65536
        Largest number of rows per chunk. Every chunk but the last has
        exactly ``chunksize`` rows.
    n_hash_bins : int >= 2 or None, default=None
        Number of categorical ids per column (the embedding table size),
        including id 0 for missing values. None keeps the raw values (plus
        one), which requires them to be below ``2**53 - 1``.
    max_rows : int >= 0 or None, default=None
        Stop after this many rows (None reads the whole file).

    Yields
    ------
    X : ndarray of shape (n_rows, 39), dtype float64
        The transformed counts in columns 0-12 and the categorical ids in
        columns 13-38.
    y : ndarray of shape (n_rows,), dtype int64
        The 0/1 click labels.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (raised by the call itself).
    ValueError
        If ``chunksize``, ``n_hash_bins`` or ``max_rows`` is invalid (raised
        by the call itself), or, while iterating, if a line is malformed: more
        than 40 fields, a label other than 0/1, a count that is not a
        (possibly negative) decimal integer, a categorical value that is not a
        hexadecimal string, or one too large for an exact id without
        ``n_hash_bins``. The message names the file and the 1-based line
        number. Chunks before the malformed line have been yielded already.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from slidelearn.datasets import CRITEO_CATEGORICAL_FEATURES, iter_criteo
    >>> lines = [
    ...     "1\\t1\\t\\t-5" + "\\t" * 11 + "ff",  # short line: C2-C26 missing
    ...     "0" + "\\t3" * 13 + "\\t" * 26,        # all categorical values missing
    ...     "0\\t0",                             # only the label and I1
    ... ]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "train.txt")
    ...     with open(path, "w") as f:
    ...         _ = f.write("\\n".join(lines))
    ...     chunks = list(iter_criteo(path, chunksize=2, n_hash_bins=100))
    >>> [X.shape for X, y in chunks]
    [(2, 39), (1, 39)]
    >>> X = np.vstack([X for X, y in chunks])
    >>> np.round(np.expm1(X[:, :4]))  # missing and negative counts are 0
    array([[1., 0., 0., 0.],
           [3., 3., 3., 3.],
           [0., 0., 0., 0.]])
    >>> X[:, CRITEO_CATEGORICAL_FEATURES[:2]]  # 1 + 0xff % 99, 0 = missing
    array([[58.,  0.],
           [ 0.,  0.],
           [ 0.,  0.]])
    >>> np.concatenate([y for X, y in chunks])
    array([1, 0, 0])
    """
    path = os.fspath(path)
    name = os.fsdecode(path)
    chunksize = _check_positive_int(chunksize, "chunksize")
    n_hash_bins = _check_positive_int(n_hash_bins, "n_hash_bins", 2, allow_none=True)
    if n_hash_bins is not None and n_hash_bins > _MAX_EXACT_ID + 1:
        raise ValueError(
            f"n_hash_bins must be at most 2**53 so that ids are exact in float64, "
            f"got {n_hash_bins}"
        )
    max_rows = _check_positive_int(max_rows, "max_rows", 0, allow_none=True)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    return _iter_criteo(path, name, chunksize, n_hash_bins, max_rows)


def _iter_criteo(path, name, chunksize, n_hash_bins, max_rows):
    remaining = max_rows
    if remaining == 0:
        return
    compressed = name.lower().endswith(".gz")
    chunk = _Chunk(name, n_hash_bins)
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
        lineno = 0
        for line in f:
            lineno += 1
            line = line.rstrip(b"\r\n")
            if not line or (b"\t" not in line and line.isspace()):
                continue
            n_tabs = line.count(b"\t")
            if n_tabs >= _N_FIELDS:
                # Report an earlier malformed line of this chunk first.
                if chunk.lines:
                    chunk.parse()
                raise ValueError(
                    f"{name}, line {lineno}: {n_tabs + 1} fields, expected at most "
                    f"{_N_FIELDS} (label, 13 integer and 26 categorical features)"
                )
            chunk.lines.append(line + _PADS[_N_FIELDS - 1 - n_tabs])
            chunk.linenos.append(lineno)
            if remaining is not None:
                remaining -= 1
            if len(chunk.lines) == chunksize or remaining == 0:
                yield chunk.parse()
                if remaining == 0:
                    return
        if chunk.lines:
            yield chunk.parse()
