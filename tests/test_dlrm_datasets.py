"""Tests of the DLRM data loaders: ``iter_criteo`` and ``load_movielens``."""
import gzip
import math

import numpy as np
import pytest

from slidelearn.datasets import CRITEO_CATEGORICAL_FEATURES, iter_criteo, load_movielens
from slidelearn.datasets import _movielens

# ---------------------------------------------------------------------------
# iter_criteo
# ---------------------------------------------------------------------------


@pytest.fixture
def criteo_path(shared_data):
    return shared_data / "criteo-sample" / "train.txt"


def _read_all(path, **kwargs):
    chunks = list(iter_criteo(path, **kwargs))
    X = np.vstack([X for X, _ in chunks]) if chunks else np.empty((0, 39))
    y = np.concatenate([y for _, y in chunks]) if chunks else np.empty(0, dtype=np.int64)
    return chunks, X, y


def _write(tmp_path, text, name="train.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("ascii") if isinstance(text, str) else text)
    return path


def _line(label="0", ints=(), cats=()):
    """A Criteo line with the given leading fields (the rest missing)."""
    ints = list(ints) + [""] * (13 - len(ints))
    cats = list(cats) + [""] * (26 - len(cats))
    return "\t".join([label] + ints + cats)


def test_criteo_constant():
    np.testing.assert_array_equal(CRITEO_CATEGORICAL_FEATURES, np.arange(13, 39))


def test_criteo_sample_known_cells(criteo_path):
    # The first lines of the sample, read by hand:
    # 1: 0 | 1 1 5 0 1382 4 15 2 181 1 2 <missing> 2 | 68fd1e64 80e26c9b ... C22 missing
    # 3: 0 | 2 0 1 14 767 ... 45 | 287e684f ... C22 = ad3062eb, C25 C26 absent (38 fields)
    # 4: 0 | <missing> 893 ...
    # 5: 0 | 3 -1 ...
    chunks, X, y = _read_all(criteo_path)
    assert X.dtype == np.float64 and X.shape == (1000, 39)
    assert y[:5].tolist() == [0, 0, 0, 0, 0]
    assert X[0, 0] == math.log(2)  # I1 = 1
    assert X[0, 2] == math.log(6)  # I3 = 5
    assert X[0, 3] == 0.0  # I4 = 0
    assert X[0, 4] == math.log(1383)  # I5 = 1382
    assert X[0, 11] == 0.0  # I12 missing
    assert X[0, 12] == math.log(3)  # I13 = 2
    assert X[0, 13] == int("68fd1e64", 16) + 1
    assert X[0, 14] == int("80e26c9b", 16) + 1
    assert X[0, 13 + 21] == 0.0  # C22 missing
    assert X[2, 12] == math.log(46)
    assert X[2, 13] == int("287e684f", 16) + 1
    assert X[2, 13 + 21] == int("ad3062eb", 16) + 1
    assert X[2, 37] == 0.0 and X[2, 38] == 0.0  # absent trailing fields
    assert X[3, 0] == 0.0 and X[3, 1] == math.log(894)
    assert X[4, 0] == math.log(4) and X[4, 1] == 0.0  # I2 = -1 is clipped to 0
    # The last line (no trailing newline): 0 | 0 1 ... | 5a9ed9b0 ...
    assert y[-1] == 0 and X[-1, 0] == 0.0 and X[-1, 1] == math.log(2)
    assert X[-1, 13] == int("5a9ed9b0", 16) + 1
    assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    assert int(y.sum()) == 205


def test_criteo_sample_matches_naive_parser(criteo_path):
    _, X, y = _read_all(criteo_path, chunksize=128)
    expected_X, expected_y = [], []
    with open(criteo_path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            fields += [""] * (40 - len(fields))
            expected_y.append(int(fields[0]))
            expected_X.append(
                [math.log(max(int(v), 0) + 1) if v else 0.0 for v in fields[1:14]]
                + [int(v, 16) + 1 if v else 0 for v in fields[14:]]
            )
    np.testing.assert_array_equal(X, np.array(expected_X))
    np.testing.assert_array_equal(y, expected_y)


@pytest.mark.parametrize("chunksize", [1, 7, 300, 1000, 65536])
def test_criteo_sample_chunks(criteo_path, chunksize):
    chunks, X, y = _read_all(criteo_path, chunksize=chunksize)
    sizes = [len(c[1]) for c in chunks]
    assert sum(sizes) == 1000
    assert all(s == chunksize for s in sizes[:-1]) and 0 < sizes[-1] <= chunksize
    assert all(c[0].shape == (len(c[1]), 39) for c in chunks)
    _, X_ref, y_ref = _read_all(criteo_path, chunksize=1000)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)


@pytest.mark.parametrize("n_hash_bins", [2, 3, 1000, 2**20])
def test_criteo_sample_hashing(criteo_path, n_hash_bins):
    _, X, _ = _read_all(criteo_path, chunksize=333, n_hash_bins=n_hash_bins)
    _, X_raw, _ = _read_all(criteo_path)
    ids = X[:, CRITEO_CATEGORICAL_FEATURES]
    raw = X_raw[:, CRITEO_CATEGORICAL_FEATURES]
    assert ids.min() >= 0 and ids.max() < n_hash_bins
    np.testing.assert_array_equal(ids, np.floor(ids))
    # 0 stays reserved for missing values.
    np.testing.assert_array_equal(ids == 0, raw == 0)
    present = raw > 0
    np.testing.assert_array_equal(
        ids[present], 1 + (raw[present].astype(np.int64) - 1) % (n_hash_bins - 1)
    )
    np.testing.assert_array_equal(X[:, :13], X_raw[:, :13])
    assert X[0, 13] == 1 + int("68fd1e64", 16) % (n_hash_bins - 1)


def test_criteo_sample_ids_are_exact_integers(criteo_path):
    _, X, _ = _read_all(criteo_path)
    ids = X[:, CRITEO_CATEGORICAL_FEATURES]
    assert ids.min() >= 0 and ids.max() < 2**53
    np.testing.assert_array_equal(ids, np.round(ids))
    assert ids.max() <= 2**32  # 8-digit hexadecimal values, plus one


def test_criteo_max_rows(criteo_path):
    chunks, X, y = _read_all(criteo_path, chunksize=64, max_rows=150)
    assert [len(c[1]) for c in chunks] == [64, 64, 22]
    _, X_all, _ = _read_all(criteo_path)
    np.testing.assert_array_equal(X, X_all[:150])
    assert list(iter_criteo(criteo_path, max_rows=0)) == []
    assert sum(len(c[1]) for c in iter_criteo(criteo_path, max_rows=5000)) == 1000


def test_criteo_streams_lazily(tmp_path):
    # The generator reads no further than the chunk it yields.
    good = _line("1", ["1"], ["a"])
    path = _write(tmp_path, "\n".join([good, good, "x"]))
    it = iter_criteo(path, chunksize=2)
    X, y = next(it)
    assert y.tolist() == [1, 1]
    with pytest.raises(ValueError, match="line 3"):
        next(it)


def test_criteo_missing_short_and_no_newline(tmp_path):
    text = (
        "1\t3\t\t-7\t0\n"  # short line: only 5 fields
        "\n"  # blank line, skipped
        + _line("0", ["", "12"], ["ff", "", "0", "ABCDEF"])
        + "\r\n"  # CRLF line ending
        + "   \n"  # whitespace only, skipped
        + "0"  # label only, no trailing newline
    )
    path = _write(tmp_path, text)
    chunks, X, y = _read_all(path)
    assert y.tolist() == [1, 0, 0]
    expected_counts = np.zeros((3, 13))
    expected_counts[0, 0] = math.log(4)
    expected_counts[1, 1] = math.log(13)
    np.testing.assert_array_equal(X[:, :13], expected_counts)
    expected_ids = np.zeros((3, 26))
    expected_ids[1, [0, 2, 3]] = [256, 1, 0xABCDEF + 1]
    np.testing.assert_array_equal(X[:, 13:], expected_ids)


def test_criteo_exactly_40_fields_with_trailing_tabs(tmp_path):
    path = _write(tmp_path, "1" + "\t" * 39 + "\n")
    _, X, y = _read_all(path)
    assert y.tolist() == [1] and X.shape == (1, 39) and not X.any()


def test_criteo_long_fields(tmp_path):
    big_hex = "1" + "0" * 20  # 16**20, beyond uint64
    small_long_hex = "0" * 20 + "ff"  # leading zeros: 255
    big_count = "9" * 30
    path = _write(
        tmp_path, _line("1", [big_count, "-" + big_count], [big_hex, small_long_hex])
    )
    _, X, _ = _read_all(path, n_hash_bins=1001)
    assert X[0, 0] == np.log(float(big_count) + 1) and X[0, 1] == 0.0
    assert X[0, 13] == 1 + 16**20 % 1000 and X[0, 14] == 1 + 255 % 1000
    # Without hashing, values of 2**53 - 1 and more cannot be exact ids.
    with pytest.raises(ValueError, match=r"line 1: .*C1 .*n_hash_bins"):
        list(iter_criteo(path))
    path = _write(tmp_path, _line("1", [], ["", small_long_hex]), "b.txt")
    assert _read_all(path)[1][0, 14] == 256
    limit = 2**53 - 2  # the largest value whose id (value + 1) is exact
    path = _write(tmp_path, _line("1", [], [format(limit, "x")]), "c.txt")
    assert _read_all(path)[1][0, 13] == 2**53 - 1
    path = _write(tmp_path, _line("1", [], [format(limit + 1, "x")]), "d.txt")
    with pytest.raises(ValueError, match="line 1"):
        list(iter_criteo(path))


def test_criteo_gzip(tmp_path, criteo_path):
    raw = criteo_path.read_bytes()
    gz = tmp_path / "train.txt.gz"
    with gzip.open(gz, "wb") as f:
        f.write(raw)
    _, X_gz, y_gz = _read_all(gz, chunksize=100, n_hash_bins=500)
    _, X, y = _read_all(criteo_path, n_hash_bins=500)
    np.testing.assert_array_equal(X_gz, X)
    np.testing.assert_array_equal(y_gz, y)


def test_criteo_gzip_tiny(tmp_path):
    gz = tmp_path / "tiny.gz"
    with gzip.open(gz, "wb") as f:
        f.write(b"1\t1\t-2\t\t\t\t\t\t\t\t\t\t\t\tff")
    _, X, y = _read_all(gz)
    assert y.tolist() == [1]
    assert X[0, 0] == math.log(2) and X[0, 1] == 0.0 and X[0, 13] == 256


def test_criteo_empty_files(tmp_path):
    assert list(iter_criteo(_write(tmp_path, ""))) == []
    assert list(iter_criteo(_write(tmp_path, "\n\n  \n", "blank.txt"))) == []


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("0" + "\t" * 40, r"41 fields, expected at most 40"),
        (_line("2"), r"label must be 0 or 1, got '2'"),
        (_line(""), r"label must be 0 or 1, got ''"),
        (_line("01"), r"label must be 0 or 1"),
        ("\t" * 39, r"label must be 0 or 1"),
        (_line("1", ["1.5"]), r"I1 \(field 2\) is not an integer: '1.5'"),
        (_line("1", ["1", "x"]), r"I2 \(field 3\) is not an integer: 'x'"),
        (_line("1", ["-"]), r"I1 .*not an integer: '-'"),
        (_line("1", ["+3"]), r"I1 .*not an integer"),
        (_line("1", [" 3"]), r"I1 .*not an integer"),
        (_line("1", ["3-"]), r"I1 .*not an integer"),
        (_line("1", ["--3"]), r"I1 .*not an integer"),
        (_line("1", ["1" * 30 + "x"]), r"I1 .*not an integer"),
        (_line("1", [], ["68fd1e6g"]), r"C1 \(field 15\) is not a hexadecimal string"),
        (_line("1", [], ["", "0x1f"]), r"C2 \(field 16\) is not a hexadecimal string"),
        (_line("1", [], ["-1"]), r"C1 .*hexadecimal"),
        (_line("1", [], ["a" * 20 + "z"]), r"C1 .*hexadecimal"),
        (_line("1", [], ["ab\x00"]), r"C1 .*hexadecimal"),
    ],
)
def test_criteo_malformed_lines(tmp_path, bad_line, message):
    good = _line("1", ["1", "2"], ["68fd1e64"])
    # The bad line is line 4 (after a blank line), in the second chunk.
    path = _write(tmp_path, "\n".join([good, good, "", bad_line, good]) + "\n")
    with pytest.raises(ValueError, match=rf"train\.txt, line 4: .*{message}") as info:
        for _ in iter_criteo(path, chunksize=2):
            pass
    assert str(path) in str(info.value)


def test_criteo_reports_first_malformed_line(tmp_path):
    # A bad categorical before a bad label, then a line with too many fields.
    lines = [_line("1"), _line("1", [], ["zz"]), _line("5"), "0" + "\t" * 45]
    path = _write(tmp_path, "\n".join(lines))
    with pytest.raises(ValueError, match="line 2: categorical feature C1"):
        list(iter_criteo(path))
    path = _write(tmp_path, "\n".join([lines[0], lines[3], lines[1]]), "b.txt")
    with pytest.raises(ValueError, match="line 2: 46 fields"):
        list(iter_criteo(path))


def test_criteo_missing_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        iter_criteo(missing)  # raised by the call, before iterating


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chunksize": 0},
        {"chunksize": -1},
        {"chunksize": 2.0},
        {"chunksize": True},
        {"chunksize": None},
        {"n_hash_bins": 1},
        {"n_hash_bins": 0},
        {"n_hash_bins": 10.0},
        {"n_hash_bins": 2**53 + 1},
        {"max_rows": -1},
        {"max_rows": 1.5},
    ],
)
def test_criteo_invalid_parameters(tmp_path, kwargs):
    path = _write(tmp_path, _line("1"))
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        iter_criteo(path, **kwargs)


def test_criteo_numpy_integer_parameters(tmp_path):
    path = _write(tmp_path, _line("1", [], ["ff"]))
    chunks = list(iter_criteo(path, np.int64(4), n_hash_bins=np.int32(10), max_rows=np.int64(3)))
    assert chunks[0][0][0, 13] == 1 + 255 % 9


# ---------------------------------------------------------------------------
# load_movielens
# ---------------------------------------------------------------------------

GENRE_NAMES = [f"genre_{g}" for g in _movielens.GENRES]
SIDE_NAMES = [
    "user_id", "item_id", "gender", "occupation", "zip_prefix", "release_decade",
    "age", "release_year",
] + GENRE_NAMES
CATEGORICAL = ["user_id", "item_id", "gender", "occupation", "zip_prefix", "release_decade"]


@pytest.fixture(scope="module")
def ml100k(shared_data):
    return load_movielens(shared_data / "ml-100k")


@pytest.fixture
def ml_path(shared_data):
    return shared_data / "ml-100k"


def test_movielens_shape_and_first_row(ml100k, ml_path):
    ml = ml100k
    assert ml.data.shape == (100000, 27) and ml.data.dtype == np.float64
    assert ml.target.shape == (100000,) and ml.target.dtype == np.float32
    assert ml.timestamp.dtype == np.int64 and ml.frame is None
    assert ml.feature_names == SIDE_NAMES
    assert ml.categorical_features == CATEGORICAL
    assert ml.table_sizes == [943, 1682, 2, 21, 11, 8]
    # u.data line 1: 196 242 3 881250949
    row = dict(zip(ml.feature_names, ml.data[0]))
    assert row["user_id"] == 195 and row["item_id"] == 241
    assert ml.target[0] == 3 and ml.timestamp[0] == 881250949
    # u.user: 196|49|M|writer|55105
    assert row["age"] == 49 and row["gender"] == 1 and row["zip_prefix"] == 5
    occupations = sorted(
        line.split("|")[3] for line in (ml_path / "u.user").read_text().splitlines()
    )
    assert row["occupation"] == sorted(set(occupations)).index("writer")
    # u.item 242: Kolya (1996)|24-Jan-1997||...|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0
    assert row["release_year"] == 1997 and row["release_decade"] == 7  # 1920s..1990s
    genres = [row[g] for g in GENRE_NAMES]
    assert genres == [0] * 5 + [1] + [0] * 13


def test_movielens_id_ranges(ml100k):
    ml = ml100k
    ids = ml.data[:, : len(CATEGORICAL)]
    np.testing.assert_array_equal(ids, np.round(ids))
    assert ids.min() >= 0
    for j, size in enumerate(ml.table_sizes):
        assert ids[:, j].max() < size
    assert ids[:, 0].min() == 0 and ids[:, 0].max() == 942
    assert ids[:, 1].min() == 0 and ids[:, 1].max() == 1681
    assert len(np.unique(ids[:, 0])) == 943 and len(np.unique(ids[:, 1])) == 1682
    assert set(np.unique(ml.target)) == {1, 2, 3, 4, 5}
    # Canadian postal codes (and others not starting with a digit) share id 10.
    assert set(np.unique(ids[:, 4])) == set(range(11))


def test_movielens_numeric_side_features(ml100k, ml_path):
    ml = ml100k
    col = {name: ml.data[:, j] for j, name in enumerate(ml.feature_names)}
    assert 7 <= col["age"].min() and col["age"].max() <= 73
    assert 1922 <= col["release_year"].min() and col["release_year"].max() <= 1998
    assert not np.isnan(ml.data).any()
    genres = np.column_stack([col[g] for g in GENRE_NAMES])
    assert set(np.unique(genres)) == {0.0, 1.0}
    # Item 267 has no release date: it gets the median year of u.item.
    rows = np.flatnonzero(col["item_id"] == 266)
    assert len(rows) > 0
    years = []
    for line in (ml_path / "u.item").read_text(encoding="latin-1").splitlines():
        date = line.split("|")[2]
        if date:
            years.append(int(date[-4:]))
    assert np.all(col["release_year"][rows] == np.median(years))


def test_movielens_no_side_features(ml_path, tmp_path):
    ml = load_movielens(ml_path, side_features=False)
    assert ml.feature_names == ["user_id", "item_id"]
    assert ml.categorical_features == ["user_id", "item_id"]
    assert ml.table_sizes == [943, 1682]
    assert ml.data.shape == (100000, 2)
    assert ml.data[0].tolist() == [195, 241]
    # Only u.data is needed.
    (tmp_path / "u.data").write_bytes((ml_path / "u.data").read_bytes())
    ml2 = load_movielens(tmp_path, side_features=False)
    np.testing.assert_array_equal(ml2.data, ml.data)
    np.testing.assert_array_equal(ml2.target, ml.target)


def test_movielens_as_frame(ml_path, ml100k):
    pd = pytest.importorskip("pandas")
    ml = load_movielens(ml_path, as_frame=True)
    assert isinstance(ml.data, pd.DataFrame) and isinstance(ml.frame, pd.DataFrame)
    assert list(ml.data.columns) == SIDE_NAMES
    assert list(ml.frame.columns) == SIDE_NAMES + ["rating", "timestamp"]
    for name in CATEGORICAL:
        assert ml.data[name].dtype == np.int64
    assert ml.data["age"].dtype == np.float64
    np.testing.assert_array_equal(ml.data.to_numpy(dtype=np.float64), ml100k.data)
    assert isinstance(ml.target, pd.Series) and ml.target.name == "rating"
    np.testing.assert_array_equal(ml.target.to_numpy(), ml100k.target)
    np.testing.assert_array_equal(ml.frame["timestamp"].to_numpy(), ml100k.timestamp)
    assert ml.frame.loc[0, "user_id"] == 195 and ml.frame.loc[0, "rating"] == 3


def test_movielens_as_frame_without_pandas(ml_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="as_frame=True.*pandas"):
        load_movielens(ml_path, side_features=False, as_frame=True)


FLAGS = "|".join(["0"] * 19)


def _ml_folder(tmp_path, data=None, user=None, item=None):
    files = {
        "u.data": "1\t2\t5\t100\n2\t1\t3\t200\n" if data is None else data,
        "u.user": "1|24|M|technician|85711\n2|53|F|other|T8H1N\n" if user is None else user,
        "u.item": (
            f"1|A (1995)|01-Jan-1995||url|{FLAGS}\n2|B|||url|{FLAGS}\n" if item is None else item
        ),
    }
    for name, text in files.items():
        if text is not False:
            (tmp_path / name).write_bytes(text.encode("latin-1"))
    return tmp_path


def test_movielens_tiny_folder(tmp_path):
    item = (
        "1|Caf\xe9 (1995)|01-Jan-1995||url|" + "|".join("1" + "0" * 18) + "\n"
        "2|A | B (1971)|4-Feb-1971||url|" + "|".join("0" * 18 + "1") + "\n"  # '|' in title
        "3|C (1988)|1988||url|" + FLAGS + "\n"
    )
    data = "1\t2\t5\t100\n\n2\t1\t3\t200\r\n3 3 4.5 300"
    user = "1|24|M|technician|85711\n2|53|F|other|T8H1N\n3|30|F|artist|\n"
    ml = load_movielens(_ml_folder(tmp_path, data=data, user=user, item=item))
    col = {name: ml.data[:, j] for j, name in enumerate(ml.feature_names)}
    assert col["user_id"].tolist() == [0, 1, 2]
    assert col["item_id"].tolist() == [1, 0, 2]
    assert col["gender"].tolist() == [1, 0, 0]  # F=0, M=1
    assert col["occupation"].tolist() == [2, 1, 0]  # artist, other, technician
    assert col["zip_prefix"].tolist() == [8, 10, 10]
    assert col["age"].tolist() == [24, 53, 30]
    assert col["release_year"].tolist() == [1971, 1995, 1988]
    assert col["release_decade"].tolist() == [0, 2, 1]  # 1970s, 1980s, 1990s
    assert col["genre_unknown"].tolist() == [0, 1, 0]
    assert col["genre_western"].tolist() == [1, 0, 0]
    assert ml.target.tolist() == [5, 3, 4.5]
    assert ml.timestamp.tolist() == [100, 200, 300]
    assert ml.table_sizes == [3, 3, 2, 3, 11, 3]


def test_movielens_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_movielens(tmp_path / "nope")
    d = tmp_path / "a"
    d.mkdir()
    _ml_folder(d, data=False)
    with pytest.raises(FileNotFoundError, match=r"u\.data"):
        load_movielens(d)
    with pytest.raises(FileNotFoundError, match=r"u\.data"):
        load_movielens(d, side_features=False)
    d = tmp_path / "b"
    d.mkdir()
    _ml_folder(d, user=False)
    with pytest.raises(FileNotFoundError, match=r"u\.user"):
        load_movielens(d)
    assert load_movielens(d, side_features=False).data.shape == (2, 2)
    d = tmp_path / "c"
    d.mkdir()
    _ml_folder(d, item=False)
    with pytest.raises(FileNotFoundError, match=r"u\.item"):
        load_movielens(d)


@pytest.mark.parametrize(
    "file, text, message",
    [
        ("u.data", "1\t2\t5\t100\n\n1\t2\t5\n", r"u\.data, line 3: expected 'user item"),
        ("u.data", "1\t2\t5\t100\n1\tx\t5\t100\n", r"u\.data, line 2"),
        ("u.data", "1\t2\t5\t100\n0\t2\t5\t100\n", r"u\.data, line 2: the user"),
        ("u.data", "1\t2\t5\t100\n1\t0\t5\t100\n", r"u\.data, line 2: the item"),
        ("u.data", "1\t2\t5\t100\n1\t2\t-5\t100\n", r"u\.data, line 2"),
        ("u.data", "1\t2\t5\t100\n3\t2\t5\t100\n", r"u\.data, line 2: user 3 is not in .*u\.user"),
        ("u.data", "1\t2\t5\t100\n1\t9\t5\t100\n", r"u\.data, line 2: item 9 is not in .*u\.item"),
        ("u.user", "1|24|M|technician|85711\n2|53|F|other\n", r"u\.user, line 2: expected 5"),
        ("u.user", "1|24|M|technician|85711\n2|x|F|other|1\n", r"u\.user, line 2: the age"),
        (
            "u.user",
            "1|24|M|technician|85711\n1|3|F|other|1\n",
            r"u\.user, line 2: user 1 is repeated",
        ),
        ("u.user", "1|24||technician|85711\n", r"u\.user, line 1: the gender"),
        ("u.item", f"1|A|01-Jan-1995||url|{FLAGS}\n2|B|||url\n", r"u\.item, line 2: expected 24"),
        ("u.item", f"1|A|Jan-95||url|{FLAGS}\n", r"u\.item, line 1: the release date"),
        ("u.item", "1|A|||url|" + "|".join("2" * 19) + "\n", r"u\.item, line 1: the genre flag"),
        (
            "u.item",
            f"1|A|||url|{FLAGS}\n1|B|||url|{FLAGS}\n",
            r"u\.item, line 2: item 1 is repeated",
        ),
    ],
)
def test_movielens_malformed(tmp_path, file, text, message):
    default_item = f"1|A (1995)|01-Jan-1995||url|{FLAGS}\n2|B|||url|{FLAGS}\n"
    default_user = "1|24|M|technician|85711\n2|53|F|other|T8H1N\n"
    kwargs = {"data": "1\t2\t5\t100\n", "user": default_user, "item": default_item}
    kwargs[{"u.data": "data", "u.user": "user", "u.item": "item"}[file]] = text
    with pytest.raises(ValueError, match=message):
        load_movielens(_ml_folder(tmp_path, **kwargs))
