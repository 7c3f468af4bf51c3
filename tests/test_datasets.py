"""Tests for slidelearn.datasets: XC repository format I/O and the synthetic generator."""
import doctest
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from slidelearn.datasets import (
    dump_xc_repository,
    load_xc_repository,
    make_extreme_classification,
)
from slidelearn.datasets import _samples_generator, _xc_format_io
from slidelearn.datasets._xc_format import format_float32, parse_float

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _write(tmp_path, content, name="data.txt"):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _assert_csr_equal(A, expected):
    expected = np.asarray(expected, dtype=np.float32)
    assert sp.isspmatrix_csr(A)
    assert A.dtype == np.float32
    assert A.shape == expected.shape
    np.testing.assert_array_equal(A.toarray(), expected)


# ---------------------------------------------------------------------------
# Loader
# ---------------------------------------------------------------------------

def test_load_hand_written_file(tmp_path):
    content = (
        "7 5 4\n"
        "0,2 0:0.084556 3:1\n"       # labels and features
        " 1:1e-3 4:-2.5\n"           # empty label list: line starts with a blank
        "\n"                         # no labels, no features
        "3\n"                        # labels only
        "2:+3 0:.5\n"                # no labels, first token is a feature; unsorted
        "3,1,0\t4:2.5E1   1:7\n"     # unsorted labels, tab and repeated blanks
        "1 2:6"                      # last line without trailing newline
    )
    X, Y = load_xc_repository(_write(tmp_path, content))
    _assert_csr_equal(
        X,
        [
            [np.float32(0.084556), 0, 0, 1, 0],
            [0, 1e-3, 0, 0, -2.5],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
            [0.5, 0, 3, 0, 0],
            [0, 7, 0, 0, 25],
            [0, 0, 6, 0, 0],
        ],
    )
    _assert_csr_equal(
        Y,
        [
            [1, 0, 1, 0],
            [0, 0, 0, 0],
            [0, 0, 0, 0],
            [0, 0, 0, 1],
            [0, 0, 0, 0],
            [1, 1, 0, 1],
            [0, 1, 0, 0],
        ],
    )
    assert X.data[0] == np.float32(0.084556)
    # Canonical CSR: sorted, unique indices per row; int32 indices.
    for M in (X, Y):
        assert M.indices.dtype == np.int32 and M.indptr.dtype == np.int32
        for i in range(M.shape[0]):
            row = M.indices[M.indptr[i] : M.indptr[i + 1]]
            assert np.all(np.diff(row) > 0)
    np.testing.assert_array_equal(X.indptr, [0, 2, 4, 4, 4, 6, 8, 9])
    np.testing.assert_array_equal(Y.indptr, [0, 2, 2, 2, 3, 3, 6, 7])


def test_load_trailing_blank_lines_crlf_and_bom(tmp_path):
    content = "\ufeff2 3 2 \r\n1 0:1 2:2\r\n\r\n  \n\t\n\n"
    X, Y = load_xc_repository(str(_write(tmp_path, content)))
    _assert_csr_equal(X, [[1, 0, 2], [0, 0, 0]])
    _assert_csr_equal(Y, [[0, 1], [0, 0]])


def test_load_empty_data(tmp_path):
    X, Y = load_xc_repository(_write(tmp_path, "0 10 3\n"))
    assert X.shape == (0, 10) and Y.shape == (0, 3) and X.nnz == 0 and Y.nnz == 0
    X, Y = load_xc_repository(_write(tmp_path, "0 10 3"))
    assert X.shape == (0, 10)


def test_load_long_unsorted_rows_are_sorted(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.permutation(300)[:150]
    labels = rng.permutation(100)[:40]
    vals = rng.standard_normal(150).astype(np.float32)
    line = ",".join(map(str, labels)) + " " + " ".join(
        f"{f}:{format_float32(v)}" for f, v in zip(feats, vals)
    )
    X, Y = load_xc_repository(_write(tmp_path, f"2 300 100\n{line}\n{line}\n"))
    order = np.argsort(feats)
    for i in range(2):
        np.testing.assert_array_equal(X.indices[X.indptr[i] : X.indptr[i + 1]], feats[order])
        np.testing.assert_array_equal(X.data[X.indptr[i] : X.indptr[i + 1]], vals[order])
        np.testing.assert_array_equal(Y.indices[Y.indptr[i] : Y.indptr[i + 1]], np.sort(labels))


@pytest.mark.parametrize("big_features, big_labels", [(True, True), (True, False), (False, True)])
def test_load_int64_indices_when_needed(tmp_path, big_features, big_labels):
    big = 3_000_000_000
    d = big if big_features else 10
    L = big if big_labels else 10
    text = f"2 {d} {L}\n{L - 1} {d - 1}:2\n0 0:1\n"
    X, Y = load_xc_repository(_write(tmp_path, text))
    assert X.shape == (2, d) and Y.shape == (2, L)
    assert X.indices.dtype == (np.int64 if big_features else np.int32)
    assert Y.indices.dtype == (np.int64 if big_labels else np.int32)
    np.testing.assert_array_equal(X.indices, [d - 1, 0])
    np.testing.assert_array_equal(Y.indices, [L - 1, 0])
    np.testing.assert_array_equal(X.data, [2, 1])
    # The writer handles int64 index arrays too.
    dump_xc_repository(X, Y, tmp_path / "again.txt")
    assert (tmp_path / "again.txt").read_text() == text


def test_load_memory_mapped_and_read_paths_agree(tmp_path):
    text = "3 4 3\n0 1:1\n 2:2\n1,2 3:3\n"
    path = _write(tmp_path, text)
    X1, Y1 = load_xc_repository(path)
    X2, Y2 = _xc_format_io._parse_buffer(text.encode())
    assert (X1 != X2).nnz == 0 and (Y1 != Y2).nnz == 0


@pytest.mark.parametrize(
    "content, match",
    [
        ("", r"line 1: empty file"),
        ("\n1 0:1\n", r"line 1: invalid header"),
        ("2 3\n0 0:1\n", r"line 1: invalid header"),
        ("2 3 4 5\n", r"line 1: invalid header"),
        ("-1 3 4\n", r"line 1: invalid header"),
        ("2 x 4\n", r"line 1: invalid header"),
        ("1 3 10000000000000000000000\n0 0:1\n", r"line 1: n_labels=.* too large"),
        ("3 3 2\n0 0:1\n1 1:1\n", r"line 4: unexpected end of file.*n_points=3.*only 2"),
        ("3 3 2\n0 0:1\n1 1:1", r"line 4: unexpected end of file"),
        ("1000 3 2\n0 0:1\n", r"line 3: unexpected end of file.*only 1"),
        ("1 3 2\n0 0:1\n1 1:1\n", r"line 3: unexpected data after the n_points=1"),
        ("1 3 2\n0 0:1\n\n\n1 1:1\n", r"line 5: unexpected data"),
        ("2 3 2\n0 0:1\n1 3:1\n", r"line 3: feature index 3 out of range \[0, 3\)"),
        ("2 3 2\n0 0:1\n1 99999999999999999999999:1\n", r"line 3: feature index 9999"),
        ("2 3 2\n0 0:1\n2 1:1\n", r"line 3: label index 2 out of range \[0, 2\)"),
        ("2 3 2\n0 0:1\n0,5 1:1\n", r"line 3: label index 5 out of range"),
        ("2 3 2\n0 0:1\n1 1:abc\n", r"line 3: invalid feature value in '1:abc'"),
        ("2 3 2\n0 0:1\n1 1:\n", r"line 3: invalid feature value"),
        ("2 3 2\n0 0:1\n1 1:1.5x\n", r"line 3: invalid feature value"),
        ("2 3 2\n0 0:1\n1 1:nan\n", r"line 3: invalid feature value"),
        ("2 3 2\n0 0:1\n1 1:1e\n", r"line 3: invalid feature value"),
        ("2 3 2\n0 0:1\n1 1:1e39\n", r"line 3: feature value in '1:1e39' overflows float32"),
        ("2 3 2\n0 0:1\n1 garbage\n", r"line 3: invalid feature token 'garbage'"),
        ("2 3 2\n0 0:1\n1 1:2 2\n", r"line 3: invalid feature token '2'"),
        ("2 3 2\n0 0:1\n1 -1:2\n", r"line 3: invalid feature token '-1:2'"),
        ("2 3 2\n0 0:1\n1 :2\n", r"line 3: invalid feature token"),
        ("2 3 2\nx 0:1\n", r"line 2: invalid label list 'x'"),
        ("2 3 2\n-1 0:1\n", r"line 2: invalid label list '-1'"),
        ("2 3 2\n0,,1 0:1\n", r"line 2: invalid label list '0,,1'"),
        ("2 3 2\n0, 0:1\n", r"line 2: invalid label list '0,'"),
        ("2 3 2\n0;1 0:1\n", r"line 2: invalid label list"),
        ("2 3 2\n1,1 0:1\n1\n", r"line 2: duplicate label index 1"),
        ("2 3 2\n1,0,1 0:1\n1\n", r"line 2: duplicate label index 1"),
        ("2 3 2\n1 0:1\n1 2:1 2:3\n", r"line 3: duplicate feature index 2"),
        ("2 3 2\n1 0:1\n1 2:1 0:1 2:3\n", r"line 3: duplicate feature index 2"),
    ],
)
def test_load_malformed_files(tmp_path, content, match):
    with pytest.raises(ValueError, match=match):
        load_xc_repository(_write(tmp_path, content))


def test_load_duplicate_in_long_unsorted_row(tmp_path):
    feats = list(range(60, 0, -1)) + [30]
    line = "0 " + " ".join(f"{f}:1" for f in feats)
    with pytest.raises(ValueError, match=r"line 2: duplicate feature index 30"):
        load_xc_repository(_write(tmp_path, f"1 100 1\n{line}\n"))


def test_load_binary_garbage_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"line 1: invalid header"):
        load_xc_repository(_write(tmp_path, bytes(range(256)) * 10))


def test_load_missing_file_and_bad_path_type(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_xc_repository(tmp_path / "does_not_exist.txt")
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        load_xc_repository(123)


# ---------------------------------------------------------------------------
# Writer and round trips
# ---------------------------------------------------------------------------

def test_dump_format_and_round_trip_small(tmp_path):
    X = np.array([[0.084556, 0, -2.5], [0, 0, 0], [0, 1e-3, 0], [1, 0, 0]])
    Y = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
    path = tmp_path / "out.txt"
    dump_xc_repository(X, Y, path)
    assert path.read_text() == "4 3 4\n0,2 0:0.084556 2:-2.5\n\n 1:0.001\n3 0:1\n"
    X2, Y2 = load_xc_repository(path)
    _assert_csr_equal(X2, X.astype(np.float32))
    _assert_csr_equal(Y2, Y)


def test_round_trip_random_sparse(tmp_path):
    rng = np.random.default_rng(42)
    X = sp.random(500, 300, density=0.05, format="csr", dtype=np.float32, random_state=rng)
    # Values over the whole float32 range, including tiny and huge magnitudes.
    X.data = (rng.standard_normal(X.nnz) * 10.0 ** rng.integers(-40, 38, X.nnz)).astype(np.float32)
    X.data[:5] = [1.0, -3.0, 16777216.0, 1e-45, 3.4028235e38]
    Y = sp.random(500, 50, density=0.04, format="csr", random_state=rng)
    Y.data[:] = 1
    Y.data[Y.indptr[3] : Y.indptr[4]] = 0    # a row without labels
    Y.eliminate_zeros()
    assert Y.indptr[3] == Y.indptr[4]
    path = tmp_path / "rt.txt"
    dump_xc_repository(X, Y, os.fspath(path))
    X2, Y2 = load_xc_repository(path)
    assert X2.shape == X.shape and Y2.shape == Y.shape
    np.testing.assert_array_equal(X2.indptr, X.indptr)
    np.testing.assert_array_equal(X2.indices, X.indices)
    np.testing.assert_array_equal(X2.data, X.data)   # bit-exact float32 round trip
    assert (Y2 != Y).nnz == 0


def test_float32_text_round_trip_exhaustive_sample():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    for v in values[:200_000]:
        text = format_float32(v)
        assert np.float32(parse_float(text.encode())) == v, text
        assert np.float32(float(text)) == v, text   # also standard decimal syntax


def test_number_parser_matches_python():
    cases = ["0", "1", "-2.5", "+3", ".5", "5.", "1e-3", "1E+2", "0.084556", "007",
             "123456789012345678901234567890", "0.000000000000000000000000000001234",
             "3.4028235e38", "1.401298464324817e-45", "2.2250738585072014e-308"]
    for text in cases:
        assert np.float32(parse_float(text.encode())) == np.float32(float(text)), text
    for bad in ["", ".", "e5", "1e", "1e+", "nan", "inf", "--1", "1.2.3", "0x10"]:
        with pytest.raises(ValueError):
            parse_float(bad.encode())


def test_dump_does_not_modify_inputs_and_sums_duplicates(tmp_path):
    X_csr = sp.csr_matrix((np.array([1.0, 2.0, 4.0]), np.array([1, 1, 0]),
                           np.array([0, 2, 3])), shape=(2, 3))
    before = (X_csr.data.copy(), X_csr.indices.copy(), X_csr.indptr.copy())
    Y = sp.csr_matrix(np.array([[1, 0], [0, 1]], dtype=np.float64))
    dump_xc_repository(X_csr, Y, tmp_path / "dup.txt")
    np.testing.assert_array_equal(X_csr.data, before[0])
    np.testing.assert_array_equal(X_csr.indices, before[1])
    np.testing.assert_array_equal(X_csr.indptr, before[2])
    X2, _ = load_xc_repository(tmp_path / "dup.txt")
    _assert_csr_equal(X2, [[0, 3, 0], [4, 0, 0]])


def test_dump_explicit_zero_labels_are_dropped(tmp_path):
    Y = sp.csr_matrix((np.array([1.0, 0.0, 1.0]), np.array([0, 1, 1]), np.array([0, 2, 3])),
                      shape=(2, 2))
    dump_xc_repository(np.ones((2, 1)), Y, tmp_path / "y.txt")
    assert (tmp_path / "y.txt").read_text() == "2 1 2\n0 0:1\n1 0:1\n"
    assert Y.nnz == 3   # input untouched


@pytest.mark.parametrize(
    "X, Y, exc, match",
    [
        (np.ones((2, 2)), np.ones((3, 2)), ValueError, "same number of rows"),
        (np.ones(3), np.ones((3, 2)), ValueError, "X must be 2-D"),
        (np.array([[np.nan, 1.0]]), np.ones((1, 1)), ValueError, "NaN or infinity"),
        (sp.csr_matrix(np.array([[np.inf, 1.0]])), np.ones((1, 1)), ValueError, "NaN or infinity"),
        (np.array([[1e300]]), np.ones((1, 1)), ValueError, "overflow float32"),
        (np.ones((1, 2)), np.array([[2, 0]]), ValueError, "binary label indicator"),
        (np.array([["a", "b"]]), np.ones((1, 1)), TypeError, "real numbers"),
    ],
)
def test_dump_invalid_inputs(tmp_path, X, Y, exc, match):
    path = tmp_path / "bad.txt"
    with pytest.raises(exc, match=match):
        dump_xc_repository(X, Y, path)


def test_dump_bad_path_type():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        dump_xc_repository(np.ones((1, 1)), np.ones((1, 1)), None)


# ---------------------------------------------------------------------------
# Real data: Bibtex
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not (DATA_DIR / "bibtex").is_dir(), reason="shared data folder is absent")
def test_load_bibtex():
    X, Y = load_xc_repository(DATA_DIR / "bibtex" / "train.txt")
    assert X.shape == (4880, 1836) and Y.shape == (4880, 159)
    assert X.dtype == np.float32 and Y.dtype == np.float32
    assert 2.3 < Y.getnnz(axis=1).mean() < 2.5
    assert Y.getnnz(axis=1).min() >= 1
    np.testing.assert_array_equal(np.unique(X.data), [1.0])   # binary features
    # The first line of the file: "122,158 44:1 51:1 95:1 ..."
    np.testing.assert_array_equal(Y[0].indices, [122, 158])
    np.testing.assert_array_equal(X[0].indices[:3], [44, 51, 95])
    Xt, Yt = load_xc_repository(DATA_DIR / "bibtex" / "test.txt")
    assert Xt.shape == (2515, 1836) and Yt.shape == (2515, 159)


@pytest.mark.skipif(not (DATA_DIR / "bibtex").is_dir(), reason="shared data folder is absent")
def test_bibtex_round_trip(tmp_path):
    X, Y = load_xc_repository(DATA_DIR / "bibtex" / "test.txt")
    dump_xc_repository(X, Y, tmp_path / "bibtex.txt")
    X2, Y2 = load_xc_repository(tmp_path / "bibtex.txt")
    assert (X2 != X).nnz == 0 and (Y2 != Y).nnz == 0


# ---------------------------------------------------------------------------
# Synthetic generator
# ---------------------------------------------------------------------------

def test_make_extreme_classification_shape_and_layout():
    X, Y = make_extreme_classification(
        n_samples=2000, n_features=3000, n_labels=400, n_nonzeros=30,
        n_labels_per_sample=4, random_state=0,
    )
    assert sp.isspmatrix_csr(X) and sp.isspmatrix_csr(Y)
    assert X.shape == (2000, 3000) and Y.shape == (2000, 400)
    assert X.dtype == np.float32 and Y.dtype == np.float32
    assert X.indices.dtype == np.int32 and Y.indices.dtype == np.int32
    assert X.has_canonical_format and Y.has_canonical_format
    X.check_format(full_check=True)
    Y.check_format(full_check=True)
    assert np.all(X.data > 0)
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1, 1.0, rtol=1e-5)
    np.testing.assert_array_equal(Y.data, 1.0)
    nnz, n_lab = X.getnnz(axis=1), Y.getnnz(axis=1)
    assert nnz.min() >= 1 and n_lab.min() >= 1
    assert abs(nnz.mean() - 30) < 1.5
    assert abs(n_lab.mean() - 4) < 0.3
    # Power-law label frequencies: a heavy head and a long tail.
    freq = np.sort(Y.getnnz(axis=0))[::-1]
    assert freq[0] > 10 * np.median(freq)


def test_make_extreme_classification_determinism_and_dtype():
    kw = dict(n_samples=300, n_features=200, n_labels=50, n_nonzeros=10,
              n_labels_per_sample=2)
    X1, Y1 = make_extreme_classification(**kw, random_state=3)
    X2, Y2 = make_extreme_classification(**kw, random_state=np.random.RandomState(3))
    X3, _ = make_extreme_classification(**kw, random_state=4)
    assert (X1 != X2).nnz == 0 and (Y1 != Y2).nnz == 0
    assert (X1 != X3).nnz > 0
    X64, Y64 = make_extreme_classification(**kw, random_state=3, dtype=np.float64)
    assert X64.dtype == np.float64 and Y64.dtype == np.float64
    np.testing.assert_allclose(X64.toarray(), X1.toarray(), rtol=1e-6)


def _precision_at_1(Y_true, scores):
    top = np.asarray(scores.argmax(axis=1)).ravel()
    return Y_true[np.arange(Y_true.shape[0]), top].mean()


def test_make_extreme_classification_is_learnable():
    X, Y = make_extreme_classification(
        n_samples=4000, n_features=2000, n_labels=100, n_nonzeros=30,
        n_labels_per_sample=3, random_state=0,
    )
    Xtr, Ytr, Xte, Yte = X[:3000], Y[:3000], X[3000:], Y[3000:].toarray()
    # Nearest prototype: score labels by similarity to their training centroid.
    centroids = (Ytr.T @ Xtr).toarray()
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    p1 = _precision_at_1(Yte, Xte @ centroids.T)
    prior = Ytr.getnnz(axis=0)   # always predicting the most frequent label
    baseline = Yte[:, prior.argmax()].mean()
    assert p1 > baseline + 0.3, (p1, baseline)
    assert p1 > 0.6
    # With pure noise nothing is learnable.
    Xn, Yn = make_extreme_classification(
        n_samples=4000, n_features=2000, n_labels=100, n_nonzeros=30,
        n_labels_per_sample=3, noise=1.0, random_state=0,
    )
    c = (Yn[:3000].T @ Xn[:3000]).toarray()
    c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    assert _precision_at_1(Yn[3000:].toarray(), Xn[3000:] @ c.T) < p1 - 0.3


def test_make_extreme_classification_linear_ovr_beats_prior():
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    X, Y = make_extreme_classification(
        n_samples=1500, n_features=500, n_labels=20, n_nonzeros=20,
        n_labels_per_sample=2, random_state=1,
    )
    Ytr = Y[:1000].toarray().astype(int)
    keep = Ytr.any(axis=0) & ~Ytr.all(axis=0)
    clf = OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=500)).fit(X[:1000], Ytr[:, keep])
    p1 = _precision_at_1(Y[1000:].toarray()[:, keep], clf.decision_function(X[1000:]))
    baseline = Y[1000:].toarray()[:, Ytr.sum(axis=0).argmax()].mean()
    assert p1 > baseline + 0.3, (p1, baseline)


def test_make_extreme_classification_edge_shapes():
    X, Y = make_extreme_classification(n_samples=5, n_features=3, n_labels=2,
                                       n_nonzeros=10, n_labels_per_sample=5, random_state=0)
    assert X.getnnz(axis=1).max() <= 3 and Y.getnnz(axis=1).max() <= 2
    assert X.getnnz(axis=1).min() >= 1 and Y.getnnz(axis=1).min() >= 1


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(n_samples=0), ValueError),
        (dict(n_features=2.5), TypeError),
        (dict(n_labels=True), TypeError),
        (dict(n_nonzeros=0), ValueError),
        (dict(n_labels_per_sample=0.5), ValueError),
        (dict(label_power=-1), ValueError),
        (dict(noise=1.5), ValueError),
        (dict(n_prototype_features=0), ValueError),
        (dict(dtype=np.int32), ValueError),
    ],
)
def test_make_extreme_classification_validation(kwargs, exc):
    params = dict(n_samples=10, n_features=10, n_labels=5, n_nonzeros=3)
    params.update(kwargs)
    with pytest.raises(exc):
        make_extreme_classification(**params)


@pytest.mark.parametrize("module", [_xc_format_io, _samples_generator])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_find_shared_data(tmp_path, monkeypatch):
    from slidelearn.datasets import find_shared_data
    monkeypatch.delenv("SLIDELEARN_DATA", raising=False)
    (tmp_path / "shared" / "data" / "bibtex").mkdir(parents=True)
    inner = tmp_path / "repo" / "examples"
    inner.mkdir(parents=True)
    assert find_shared_data("bibtex", start=inner) == tmp_path / "shared" / "data" / "bibtex"
    monkeypatch.chdir(inner)
    assert find_shared_data("bibtex") == tmp_path.resolve() / "shared" / "data" / "bibtex"
    with pytest.raises(FileNotFoundError, match="SLIDELEARN_DATA"):
        find_shared_data("text9", start=inner)
    monkeypatch.setenv("SLIDELEARN_DATA", "/somewhere")
    assert str(find_shared_data("bibtex", start=inner)) == "/somewhere/bibtex"
