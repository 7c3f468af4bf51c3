"""Tests for the realistic extreme data: generator presets and the text8 skip-gram loader."""
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.utils import check_random_state

from slidelearn.datasets import (
    load_text8_skipgram,
    make_extreme_classification,
    make_extreme_classification_preset,
)
from slidelearn.datasets import _samples_generator as gen_module
from slidelearn.datasets._samples_generator import _head_share, _preset_shape

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TEXT8 = DATA_DIR / "text8-10M"


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------

def _check_common(X_train, X_test, Y_train, Y_test, p):
    assert X_train.shape == (p["n_train"], p["n_features"])
    assert X_test.shape == (p["n_test"], p["n_features"])
    assert Y_train.shape == (p["n_train"], p["n_labels"])
    assert Y_test.shape == (p["n_test"], p["n_labels"])
    for M in (X_train, X_test, Y_train, Y_test):
        assert sp.issparse(M) and M.format == "csr" and M.dtype == np.float32
    # Every label occurs in the training part, by construction.
    rows_per_label = Y_train.getnnz(axis=0)
    assert rows_per_label.min() >= 1
    labels_per_row = Y_train.getnnz(axis=1)
    assert labels_per_row.min() >= 1
    assert abs(labels_per_row.mean() / p["n_labels_per_sample"] - 1) < 0.03
    assert abs(Y_test.getnnz(axis=1).mean() / p["n_labels_per_sample"] - 1) < 0.03
    published = p["n_labels_per_sample"] * p["n_train"] / p["n_labels"]
    assert abs(rows_per_label.mean() / published - 1) < 0.03
    assert abs(X_train.getnnz(axis=1).mean() / p["n_nonzeros"] - 1) < 0.03
    np.testing.assert_allclose(np.sqrt(X_train.multiply(X_train).sum(axis=1)).A1, 1, rtol=1e-5)
    return rows_per_label


def test_amazon_preset_scaled_down():
    n_train = 30_000
    X_train, X_test, Y_train, Y_test = make_extreme_classification_preset(
        "amazon-670k", n_train=n_train, random_state=0)
    p = _preset_shape("amazon-670k", n_train)
    assert p["n_labels"] == round(670_091 * n_train / 490_449)
    assert p["n_test"] == round(153_025 * n_train / 490_449)
    counts = _check_common(X_train, X_test, Y_train, Y_test, p)
    assert abs(counts.mean() - 3.99) < 0.1
    # The law keeps its shape in rank / n_labels: the top 1000/670,091 of the
    # labels hold about the full preset's 3.8% (docstring), not a big head.
    n_top = round(1000 * p["n_labels"] / 670_091)
    share = _head_share(Y_train, n_top)
    assert 0.025 < share < 0.055, share
    # The old default law (label_power=1) at the same shape is head-heavy.
    _, Y_old = make_extreme_classification(
        n_samples=n_train, n_features=100, n_labels=p["n_labels"], n_nonzeros=2,
        n_labels_per_sample=5.45, random_state=0)
    assert _head_share(Y_old, n_top) > 4 * share
    assert (Y_old.getnnz(axis=0) == 0).any()


def test_amazon_preset_full_size_label_law():
    """The label stage alone at the full Amazon-670K size: the docstring's head share."""
    p = _preset_shape("amazon-670k")
    assert (p["label_power"], p["label_offset"]) == (0.4991, 1.0)
    # The same random stream as make_extreme_classification_preset(random_state=0).
    rs = check_random_state(0)
    gen = np.random.default_rng(rs.randint(0, 2**32, size=4, dtype=np.uint64))
    gen.integers(0, np.iinfo(np.int64).max)
    cols, count, indptr = gen_module._draw_labels(
        gen, p["n_train"], p["n_labels"], p["n_labels_per_sample"], p["label_power"],
        p["label_offset"], n_covered=p["n_train"])
    Y = sp.csr_matrix((np.ones(cols.size, np.float32), cols, indptr),
                      shape=(p["n_train"], p["n_labels"]))
    counts = Y.getnnz(axis=0)
    assert counts.min() >= 1
    assert abs(counts.mean() - 3.99) < 0.02
    assert abs(_head_share(Y, 1000) - 0.038) < 0.003
    # The rarest labels expect two rows: the median label has a few.
    assert 2 <= np.median(counts) <= 4


def test_delicious_preset_scaled_down():
    n_train = 5000
    X_train, X_test, Y_train, Y_test = make_extreme_classification_preset(
        "delicious-200k", n_train=n_train, random_state=1)
    p = _preset_shape("delicious-200k", n_train)
    counts = _check_common(X_train, X_test, Y_train, Y_test, p)
    assert abs(counts.mean() - 72.29) < 2.5
    # The most frequent label is drawn at most half a time a row.
    assert counts.max() <= 0.5 * n_train
    assert p["label_offset"] > 48.2553 * p["n_labels"] / 205_443


def test_preset_full_size_shapes_and_offsets():
    amazon, delicious = _preset_shape("amazon-670k"), _preset_shape("delicious-200k")
    assert (amazon["n_train"], amazon["n_test"], amazon["n_features"], amazon["n_labels"]) == (
        490_449, 153_025, 135_909, 670_091)
    assert (delicious["n_train"], delicious["n_test"], delicious["n_features"],
            delicious["n_labels"]) == (196_606, 100_095, 782_585, 205_443)
    # The stored offsets already satisfy the head cap at full size.
    assert delicious["label_offset"] == 48.2553 and amazon["label_offset"] == 1.0


def test_preset_determinism_dtype_and_n_test():
    a = make_extreme_classification_preset("amazon-670k", n_train=500, random_state=3)
    b = make_extreme_classification_preset(
        "amazon-670k", n_train=500, random_state=np.random.RandomState(3))
    for A, B in zip(a, b):
        assert (A != B).nnz == 0
    X_train, X_test, Y_train, Y_test = make_extreme_classification_preset(
        "amazon-670k", n_train=500, n_test=0, random_state=3, dtype=np.float64)
    assert X_test.shape[0] == 0 and Y_test.shape[0] == 0
    assert X_train.dtype == np.float64 and Y_train.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(name="amazon"), ValueError),
        (dict(name=None), ValueError),
        (dict(name="amazon-670k", n_train=0), ValueError),
        (dict(name="amazon-670k", n_train=10.5), TypeError),
        (dict(name="amazon-670k", n_train=10, n_test=-1), ValueError),
        (dict(name="amazon-670k", n_train=10, dtype=np.int32), ValueError),
    ],
)
def test_preset_validation(kwargs, exc):
    name = kwargs.pop("name")
    with pytest.raises(exc):
        make_extreme_classification_preset(name, **kwargs)


def test_covering_needs_enough_label_slots():
    gen = np.random.default_rng(0)
    with pytest.raises(ValueError, match="cannot hold"):
        gen_module._draw_labels(gen, 3, 100, 2.0, 0.5, n_covered=3)


def test_head_share():
    Y = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [1, 0, 0]]))
    assert _head_share(Y, 1) == 0.6
    assert _head_share(Y, 3) == 1.0
    assert _head_share(sp.csr_matrix((2, 3)), 1) == 0.0


# ---------------------------------------------------------------------------
# text8 skip-gram loader
# ---------------------------------------------------------------------------

def _corpus(tmp_path, text, name="corpus.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(M):
    return [M.indices[M.indptr[i]:M.indptr[i + 1]].tolist() for i in range(M.shape[0])]


def _reference(words, window, vocabulary_size=None, start=0, n_positions=None):
    """Plain Python skip-gram rows, to check the vectorised loader against."""
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    vocab = sorted(counts, key=lambda w: (-counts[w], w.encode()))
    if vocabulary_size is not None:
        vocab = vocab[:vocabulary_size]
    ids = {w: i for i, w in enumerate(vocab)}
    stop = len(words) if n_positions is None else min(len(words), start + n_positions)
    kept = [(p, ids[words[p]]) for p in range(start, stop) if words[p] in ids]
    centres, labels = [], []
    for i, (_, c) in enumerate(kept):
        centres.append([c])
        context = {kept[j][1] for j in range(max(0, i - window), min(len(kept), i + window + 1))
                   if j != i}
        labels.append(sorted(context))
    return vocab, [p for p, _ in kept], centres, labels


def test_text8_tiny_corpus_exact(tmp_path):
    path = _corpus(tmp_path, "a b a c b a d\n")
    text = load_text8_skipgram(path, window=2)
    assert text.vocabulary.tolist() == ["a", "b", "c", "d"]   # c and d tie: byte order
    assert text.frequencies.tolist() == [3, 2, 1, 1]
    assert text.n_corpus_words == 7
    X, Y = text.data, text.target
    assert X.format == "csr" and Y.format == "csr"
    assert X.dtype == np.float32 and Y.dtype == np.int8
    assert X.shape == Y.shape == (7, 4)
    assert _rows(X) == [[0], [1], [0], [2], [1], [0], [3]]
    np.testing.assert_array_equal(X.data, 1)
    np.testing.assert_array_equal(Y.data, 1)
    # Distinct words within two positions; a neighbour equal to the centre
    # word is a label (row 2), the centre position never is (row 0).
    assert _rows(Y) == [[0, 1], [0, 2], [0, 1, 2], [0, 1], [0, 2, 3], [1, 2, 3], [0, 1]]
    assert text.positions.tolist() == list(range(7))


def test_text8_window_edges_and_slice(tmp_path):
    path = _corpus(tmp_path, "a b a c b a d")
    text = load_text8_skipgram(path, window=1)
    assert _rows(text.target) == [[1], [0], [1, 2], [0, 1], [0, 2], [1, 3], [0]]
    # A slice: windows stop at its ends, ids stay those of the whole file.
    text = load_text8_skipgram(path, window=2, start=2, n_positions=3)
    assert text.vocabulary.tolist() == ["a", "b", "c", "d"]
    assert text.positions.tolist() == [2, 3, 4]
    assert _rows(text.data) == [[0], [2], [1]]
    assert _rows(text.target) == [[1, 2], [0, 1], [0, 2]]
    # A window wider than the text.
    text = load_text8_skipgram(path, window=50, start=5)
    assert _rows(text.target) == [[3], [0]]
    # Past the end: no rows.
    assert load_text8_skipgram(path, start=10).data.shape == (0, 4)


def test_text8_vocabulary_cut_removes_words(tmp_path):
    path = _corpus(tmp_path, "a b a c b a d")
    text = load_text8_skipgram(path, window=1, vocabulary_size=2)
    assert text.vocabulary.tolist() == ["a", "b"]
    assert text.frequencies.tolist() == [3, 2]
    # c (position 3) and d (6) are removed before the windows are taken:
    # position 2's right neighbour is then position 4.
    assert text.positions.tolist() == [0, 1, 2, 4, 5]
    assert _rows(text.data) == [[0], [1], [0], [1], [0]]
    assert _rows(text.target) == [[1], [0], [1], [0], [1]]
    assert text.data.shape == (5, 2)
    # A vocabulary larger than the corpus's keeps every word.
    assert load_text8_skipgram(path, vocabulary_size=100).vocabulary.size == 4


@pytest.mark.parametrize("window, vocabulary_size, start, n_positions",
                         [(1, None, 0, None), (3, 7, 0, None), (5, 12, 40, 200), (2, 1, 0, 50)])
def test_text8_matches_plain_python(tmp_path, window, vocabulary_size, start, n_positions):
    rng = np.random.default_rng(window)
    alphabet = [f"w{i}" for i in range(20)]
    p = 1.0 / np.arange(1, 21)
    words = list(rng.choice(alphabet, size=400, p=p / p.sum()))
    path = _corpus(tmp_path, "  ".join(words) + "\n")   # any white space separates words
    text = load_text8_skipgram(
        path, window=window, start=start, n_positions=n_positions,
        vocabulary_size="all" if vocabulary_size is None else vocabulary_size)
    vocab, positions, centres, labels = _reference(words, window, vocabulary_size, start,
                                                   n_positions)
    assert text.vocabulary.tolist() == vocab
    assert text.positions.tolist() == positions
    assert _rows(text.data) == centres
    assert _rows(text.target) == labels
    text.data.check_format(full_check=True)
    text.target.check_format(full_check=True)


def test_text8_subsampling(tmp_path):
    words = ["a"] * 9000 + ["b"] * 900 + [f"r{i}" for i in range(100)]
    rng = np.random.default_rng(0)
    path = _corpus(tmp_path, " ".join(rng.permutation(words)))
    t = 1e-3
    text = load_text8_skipgram(path, subsample=t, random_state=0)
    again = load_text8_skipgram(path, subsample=t, random_state=0)
    assert text.positions.tolist() == again.positions.tolist()
    assert (text.target != again.target).nnz == 0
    kept = np.bincount(text.data.indices, minlength=text.vocabulary.size)
    for word, count in (("a", 9000), ("b", 900)):
        j = text.vocabulary.tolist().index(word)
        z = count / 10000
        expected = (np.sqrt(z / t) + 1) * t / z
        assert abs(kept[j] / count - expected) < 4 * np.sqrt(expected / count), word
    # Rare words (z <= t) are always kept.
    assert kept[2:].tolist() == [1] * 100
    # A huge threshold keeps everything.
    everything = load_text8_skipgram(path, subsample=1.0, random_state=0)
    assert everything.data.shape[0] == 10000
    other = load_text8_skipgram(path, subsample=t, random_state=1)
    assert other.positions.tolist() != text.positions.tolist()


def test_text8_folder_and_errors(tmp_path):
    _corpus(tmp_path, "x y z")
    assert load_text8_skipgram(tmp_path).vocabulary.tolist() == ["x", "y", "z"]
    _corpus(tmp_path, "x", name="other.txt")
    with pytest.raises(FileNotFoundError):
        load_text8_skipgram(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_text8_skipgram(tmp_path / "absent.txt")
    path = tmp_path / "corpus.txt"
    for kwargs, exc in [(dict(window=0), ValueError), (dict(window=1.5), TypeError),
                        (dict(vocabulary_size="most"), ValueError),
                        (dict(vocabulary_size=0), ValueError), (dict(subsample=0), ValueError),
                        (dict(subsample="1e-3"), ValueError), (dict(start=-1), ValueError),
                        (dict(n_positions=-1), ValueError)]:
        with pytest.raises(exc):
            load_text8_skipgram(path, **kwargs)
    empty = load_text8_skipgram(_corpus(tmp_path, "\n", name="empty.txt"))
    assert empty.data.shape == empty.target.shape == (0, 0)
    single = load_text8_skipgram(_corpus(tmp_path, "solo", name="single.txt"))
    assert single.data.shape == (1, 1) and single.target.nnz == 0


@pytest.mark.skipif(not TEXT8.is_dir(), reason="shared data folder is absent")
def test_text8_real_file():
    text = load_text8_skipgram(TEXT8, window=2, vocabulary_size=10_000,
                               start=100_000, n_positions=200_000)
    assert 1_600_000 < text.n_corpus_words < 1_800_000
    assert text.vocabulary[0] == "the" and text.vocabulary.size == 10_000
    assert np.all(np.diff(text.frequencies) <= 0)
    X, Y = text.data, text.target
    assert X.shape == Y.shape and X.shape[1] == 10_000
    # Words outside the 10,000 most frequent are removed: most positions stay.
    assert 0.85 * 200_000 < X.shape[0] < 200_000
    assert np.all(np.diff(X.indptr) == 1)
    assert text.positions.min() >= 100_000 and text.positions.max() < 300_000
    labels_per_row = Y.getnnz(axis=1)
    assert labels_per_row.max() <= 4 and 3.5 < labels_per_row.mean() <= 4
