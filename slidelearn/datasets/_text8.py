"""Skip-gram extreme classification data from a text8-style corpus.

text8 (cleaned English Wikipedia, used to train word2vec) is one line of
lowercase words separated by single spaces. Predicting the words around a
word from the word itself is a multi-label problem with one label per
vocabulary word, the output layer SLIDE was built for.
"""
import errno
import numbers
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.utils import Bunch, check_random_state

__all__ = ["load_text8_skipgram"]


def _resolve(path):
    """The corpus file: ``path`` itself, or the one ``*.txt`` file of a folder."""
    path = Path(os.fspath(path))
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if len(files) != 1:
            raise FileNotFoundError(
                errno.ENOENT,
                f"expected one .txt corpus file in the folder, found {len(files)}",
                str(path),
            )
        return files[0]
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "text8 corpus not found", str(path))
    return path


def _check_int(name, value, low, none_ok=False):
    if value is None and none_ok:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _vocabulary(path):
    """Word ids of the corpus, ranked by decreasing count (ties: byte order).

    Returns ``(ids, words, counts)``: the id of every word of the corpus in
    order, the words as bytes in id order and their counts.
    """
    with open(path, "rb") as f:
        tokens = f.read().split()
    if not tokens:
        return np.empty(0, np.int64), np.empty(0, "S1"), np.empty(0, np.int64)
    # np.unique sorts the words bytewise; a stable sort by decreasing count
    # then breaks ties in that order, so ids never depend on the platform.
    words, inverse, counts = np.unique(
        np.array(tokens), return_inverse=True, return_counts=True
    )
    del tokens
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank[inverse.ravel()], words[order], counts[order].astype(np.int64)


def _keep_probability(counts, threshold):
    """word2vec's chance of keeping a word of count ``counts`` (its C code's formula)."""
    z = counts / counts.sum()
    return np.minimum(1.0, (np.sqrt(z / threshold) + 1.0) * threshold / z)


def _index_dtype(*sizes):
    return np.int32 if max(sizes) <= np.iinfo(np.int32).max else np.int64


def load_text8_skipgram(path, *, window=2, vocabulary_size="all", subsample=None,
                        n_positions=None, start=0, random_state=None):
    """Load a text8-style corpus as a skip-gram multi-label problem.

    Each row is a position of the corpus: its feature is the centre word
    (one-hot over the vocabulary), its labels are the distinct words at the
    ``2 * window`` positions around it (the centre position excluded; the
    centre word is a label only when it also occurs at one of those
    positions). Rows near the ends of the selected range have fewer
    context positions.

    The vocabulary holds the words of the whole file sorted by decreasing
    count, ties broken by the words' byte order, so word ``i`` is the same
    whatever ``start``, ``n_positions`` or ``subsample``. With an integer
    ``vocabulary_size`` only the most frequent words are kept and, as in
    word2vec, the other words are removed from the text before the windows
    are taken: they are neither centres nor labels, and the window of a kept
    word reaches the kept words on either side. Subsampled words are removed
    the same way.

    Parameters
    ----------
    path : str or path-like
        The corpus file (words separated by white space), or a folder
        holding exactly one ``.txt`` file, such as
        ``find_shared_data("text8-10M")``.
    window : int, default=2
        Number of positions on each side of the centre whose words are its
        labels.
    vocabulary_size : "all" or int, default="all"
        Number of most frequent words kept; "all" keeps every word.
    subsample : float or None, default=None
        word2vec's threshold ``t`` for discarding frequent words (``1e-3`` to
        ``1e-5`` are usual): a word of frequency ``z`` (its count over the
        kept vocabulary's total count) is kept with probability
        ``min(1, (sqrt(z / t) + 1) * t / z)``, independently at each
        position. None keeps every word.
    n_positions : int or None, default=None
        Number of corpus positions read from ``start`` (before words are
        removed); None: to the end.
    start : int, default=0
        First corpus position (word number) read.
    random_state : int, RandomState instance or None, default=None
        Seed or generator of the subsampling draws.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        Dictionary-like object with the attributes:

        data : scipy.sparse.csr_matrix of shape (n_rows, n_words), float32
            One-hot centre words.
        target : scipy.sparse.csr_matrix of shape (n_rows, n_words), int8
            Indicators of the context words (sorted indices, values 1).
        vocabulary : ndarray of str of shape (n_words,)
            The words, most frequent first; column ``j`` of ``data`` and
            ``target`` is ``vocabulary[j]``.
        frequencies : ndarray of shape (n_words,), dtype int64
            Count of each vocabulary word in the whole file.
        positions : ndarray of shape (n_rows,), dtype int64
            Corpus position (word number) of each row's centre word.
        n_corpus_words : int
            Number of words in the whole file.

    Raises
    ------
    FileNotFoundError
        If ``path`` is absent, or a folder without exactly one ``.txt`` file.

    See Also
    --------
    find_shared_data : Locate ``shared/data/text8-10M``.

    Examples
    --------
    >>> import os, tempfile
    >>> from slidelearn.datasets import load_text8_skipgram
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     file = os.path.join(tmp, "corpus.txt")
    ...     with open(file, "w") as f:
    ...         _ = f.write("the cat sat on the mat")
    ...     text = load_text8_skipgram(file, window=1)
    >>> text.vocabulary.tolist(), text.frequencies.tolist()
    (['the', 'cat', 'mat', 'on', 'sat'], [2, 1, 1, 1, 1])
    >>> text.data.shape, text.target.shape
    ((6, 5), (6, 5))
    >>> text.data[2].indices.tolist(), text.target[2].indices.tolist()  # sat: cat, on
    ([4], [1, 3])
    >>> text.target[0].indices.tolist(), text.target[5].indices.tolist()  # the ends
    ([1], [0])
    """
    window = _check_int("window", window, 1)
    start = _check_int("start", start, 0)
    n_positions = _check_int("n_positions", n_positions, 0, none_ok=True)
    if isinstance(vocabulary_size, str):
        if vocabulary_size != "all":
            raise ValueError(
                f'vocabulary_size must be "all" or an integer, got {vocabulary_size!r}'
            )
    else:
        vocabulary_size = _check_int("vocabulary_size", vocabulary_size, 1)
    if subsample is not None:
        if (isinstance(subsample, (bool, np.bool_)) or not isinstance(subsample, numbers.Real)
                or not subsample > 0):
            raise ValueError(f"subsample must be a positive number or None, got {subsample!r}")
    rs = check_random_state(random_state)

    ids, words, counts = _vocabulary(_resolve(path))
    n_corpus = ids.size
    n_words = words.size if vocabulary_size == "all" else min(vocabulary_size, words.size)
    words, counts = words[:n_words], counts[:n_words]

    stop = n_corpus if n_positions is None else min(n_corpus, start + n_positions)
    positions = np.arange(min(start, n_corpus), stop, dtype=np.int64)
    seq = ids[positions]
    keep = seq < n_words
    if subsample is not None:
        # One draw per position read, so the same seed drops the same
        # positions whatever the vocabulary size.
        u = rs.random_sample(seq.size)
        keep &= u < _keep_probability(counts, float(subsample))[np.minimum(seq, n_words - 1)]
    seq, positions = seq[keep], positions[keep]
    n = seq.size

    # Every (row, context word) pair, then duplicates removed: the labels of
    # a row are the distinct words of its window.
    rows, cols = [], []
    for d in range(1, window + 1):
        if d >= n:
            break
        left = np.arange(n - d, dtype=np.int64)
        rows += [left, left + d]
        cols += [seq[d:], seq[:-d]]
    keys = np.empty(0, dtype=np.int64)
    if rows:
        # Sort and drop repeats by hand: np.unique of plain int64 keys may
        # take a hash-based path that is many times slower here.
        keys = np.concatenate(rows) * n_words + np.concatenate(cols)
        keys.sort()
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    y_rows = keys // max(n_words, 1)
    y_cols = keys - y_rows * n_words
    y_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(y_rows, minlength=n), out=y_indptr[1:])

    xi = _index_dtype(n, n_words)
    yi = _index_dtype(keys.size, n_words)
    X = sp.csr_matrix(
        (np.ones(n, dtype=np.float32), seq.astype(xi), np.arange(n + 1, dtype=xi)),
        shape=(n, n_words),
    )
    Y = sp.csr_matrix(
        (np.ones(keys.size, dtype=np.int8), y_cols.astype(yi), y_indptr.astype(yi)),
        shape=(n, n_words),
    )
    X.has_canonical_format = True
    Y.has_canonical_format = True
    return Bunch(
        data=X,
        target=Y,
        vocabulary=np.char.decode(words, "utf-8") if n_words else np.empty(0, dtype=str),
        frequencies=counts,
        positions=positions,
        n_corpus_words=int(n_corpus),
    )
