"""Property-based fuzzing of the Extreme Classification Repository parser
(``load_xc_repository``, a compiled byte-level parser) and of the command line
(``python -m slidelearn train / evaluate / predict``) on random, valid and malformed
files. A valid file must load to exactly the matrices it describes; any other file must
load to consistent matrices or raise a ValueError naming the line; the command line must
succeed or exit with status 1 and a one-line error, never a traceback or a crash.
Parsing runs in a worker process and the command line in its own, so that memory
corruption fails the test through the exit status (see _fuzz.py)."""
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from _fuzz import describe_status, fuzz_settings, run_cli, run_worker

# --------------------------------------------------------------------------- files
# Numbers written the ways files in the wild write them; all finite in float32.
_VALUES = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.tuples(st.integers(-999, 999), st.integers(0, 999999)).map(lambda t: f"{t[0]}.{t[1]}"),
    st.tuples(st.integers(1, 99999), st.integers(-30, 30),
              st.sampled_from(["e", "E"])).map(lambda t: f"{t[0]}{t[2]}{t[1]}"),
    st.tuples(st.integers(-99, 99), st.integers(0, 30)).map(lambda t: f"{t[0]}e+{t[1]}"),
    st.sampled_from(["0", "-0", "+1.5", "0.0", "1e-45", "3.4028234e38", "007", "1.000000001"]),
)


@st.composite
def xc_documents(draw):
    """(file bytes, header, rows): a valid file with variations of layout. ``rows`` is a
    list of (labels, {feature: value text})."""
    n_points = draw(st.integers(0, 8))
    n_features = draw(st.integers(0, 12))
    n_labels = draw(st.integers(0, 6))
    rows = []
    for _ in range(n_points):
        labels = draw(st.lists(st.integers(0, n_labels - 1), unique=True, max_size=4)) \
            if n_labels else []
        feats = draw(st.dictionaries(st.integers(0, n_features - 1), _VALUES, max_size=6)) \
            if n_features else {}
        rows.append((labels, feats))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    gap = st.sampled_from([" ", "  ", "\t", " \t"])
    lines = []
    for labels, feats in rows:
        pairs = [f"{f}:{v}" for f, v in draw(st.permutations(list(feats.items())))]
        label_text = ",".join(map(str, labels))
        if not labels and pairs and draw(st.booleans()):
            head = ""          # no label list: the line starts with the first pair
        else:
            head = label_text + (draw(gap) if pairs else "")
        text = head + "".join(p + draw(gap) for p in pairs[:-1]) + (pairs[-1] if pairs else "")
        if draw(st.booleans()):
            text += draw(gap)  # trailing blanks
        lines.append(text)
    header = f"{n_points} {n_features} {n_labels}"
    body = eol.join([header] + lines)
    # (a file that ends with a newline has no empty line after it)
    if draw(st.booleans()) or (lines and not lines[-1]):
        body += eol
    if draw(st.booleans()):
        body += eol * draw(st.integers(1, 2))  # blank lines after the data
    data = body.encode("ascii")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data    # UTF-8 byte order mark
    return data, (n_points, n_features, n_labels), rows


_NOISE = st.sampled_from(list(b"0123456789:,. \t\n\r-+eEx") + [0, 0xFF, 0x80])


@st.composite
def mutated(draw, documents=xc_documents()):
    """The bytes of a valid file after 1 to 3 random edits, or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))
    data = bytearray(draw(documents)[0])
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "header"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "replace" and data:
            data[pos] = draw(_NOISE)
        elif op == "insert":
            data[pos:pos] = bytes(draw(st.lists(_NOISE, min_size=1, max_size=3)))
        elif op == "delete" and data:
            del data[pos]
        elif op == "truncate":
            del data[pos:]
        elif op == "header":  # sizes that are huge, zero or off by one
            nl = data.find(b"\n")
            numbers = [draw(st.sampled_from([0, 1, 2, 7, 2**31, 2**63, 10**18, 10**19]))
                       for _ in range(3)]
            data[: nl if nl >= 0 else len(data)] = " ".join(map(str, numbers)).encode()
    return bytes(data)


def _expected(header, rows):
    """Dense X (float32) and Y of a valid document, computed in Python."""
    n_points, n_features, n_labels = header
    X = np.zeros((n_points, n_features), dtype=np.float32)
    Y = np.zeros((n_points, n_labels), dtype=np.float32)
    for i, (labels, feats) in enumerate(rows):
        Y[i, labels] = 1
        for f, v in feats.items():
            X[i, f] = np.float32(float(v))
    return X, Y


def _dense(m):
    from scipy.sparse import csr_matrix

    return csr_matrix((np.array(m["data"], dtype=np.float32), m["indices"], m["indptr"]),
                      shape=m["shape"]).toarray()


def _check_consistent(m):
    """A CSR matrix of the parser: float32, int32/int64 indices, rows sorted and unique,
    indices in range, indptr from 0 to nnz without decreasing."""
    indptr, indices = np.array(m["indptr"]), np.array(m["indices"])
    assert m["format"] == "csr" and m["dtype"] == "float32"
    assert set(m["index_dtypes"]) <= {"int32", "int64"}
    assert len(indptr) == m["shape"][0] + 1 and indptr[0] == 0
    assert indptr[-1] == len(indices) == len(m["data"])
    assert (np.diff(indptr) >= 0).all()
    assert ((indices >= 0) & (indices < m["shape"][1])).all()
    for a, b in zip(indptr[:-1], indptr[1:]):
        assert (np.diff(indices[a:b]) > 0).all()
    assert np.isfinite(m["data"]).all()


def _write(files, tmp):
    paths = []
    for i, data in enumerate(files):
        path = os.path.join(tmp, f"f{i}.txt")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return paths


@fuzz_settings(max_examples=6)
@given(st.lists(xc_documents(), min_size=1, max_size=15))
def test_valid_files_load_exactly(documents):
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write([d[0] for d in documents], tmp)
        facts = run_worker("xc", [{"path": p} for p in paths])
    for (data, header, rows), got in zip(documents, facts):
        assert got["error"] is None, (data, got["error"])
        X, Y = _expected(header, rows)
        assert got["X"]["shape"] == list(X.shape) and got["Y"]["shape"] == list(Y.shape)
        _check_consistent(got["X"])
        _check_consistent(got["Y"])
        np.testing.assert_array_equal(_dense(got["X"]), X, err_msg=repr(data))
        np.testing.assert_array_equal(_dense(got["Y"]), Y, err_msg=repr(data))
        assert got["roundtrip_same"]


@fuzz_settings(max_examples=6)
@given(st.lists(mutated(), min_size=1, max_size=20))
def test_malformed_files_load_or_raise_a_line_error(files):
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write(files, tmp)
        facts = run_worker("xc", [{"path": p} for p in paths])
    for data, got in zip(files, facts):
        err = got["error"]
        event("loaded" if err is None else "ValueError" if err["value_error"] else err["type"])
        if err is not None:
            # the documented error: a ValueError whose message starts with "line N:"
            assert err["value_error"], (data, err)
            assert err["message"].startswith("line "), (data, err)
            continue
        _check_consistent(got["X"])
        _check_consistent(got["Y"])
        assert set(got["Y"]["data"]) <= {1.0}
        assert got["roundtrip_same"], data


# --------------------------------------------------------------------------- CLI
def _cli(args, cwd, timeout=120):
    """Run ``python -m slidelearn ARGS`` in a process of its own (cwd: a scratch folder,
    so that the package comes from PYTHONPATH)."""
    return run_cli(args, cwd, timeout)


def _check_clean_outcome(proc, args):
    """Success, or exit status 1 with one line 'slidelearn: error: ...' on stderr."""
    what = (f"slidelearn {' '.join(args)}: {describe_status(proc.returncode)}\n"
            f"{proc.stderr[-3000:]}")
    assert proc.returncode in (0, 1), what
    assert "Traceback" not in proc.stderr, what
    if proc.returncode == 1:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("slidelearn: error: "), what


def _train_file(seed, n=40, n_features=15, n_labels=6):
    """A small learnable training file."""
    rng = np.random.default_rng(seed)
    lines = [f"{n} {n_features} {n_labels}"]
    for _ in range(n):
        labels = sorted(rng.choice(n_labels, int(rng.integers(1, min(n_labels, 2) + 1)),
                                   replace=False))
        feats = sorted(rng.choice(n_features, int(rng.integers(1, min(n_features, 5) + 1)),
                                  replace=False))
        lines.append(",".join(map(str, labels)) + " "
                     + " ".join(f"{f}:{rng.uniform(0.1, 2):.3f}" for f in feats))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    """A model written by ``slidelearn train`` on a small file (trained once)."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "train.txt").write_bytes(_train_file(0))
    args = ["train", "train.txt", "model.joblib", "--max-iter", "2", "--hidden-layer-sizes",
            "8", "--n-jobs", "2", "--random-state", "0", "-q"]
    proc = _cli(args, tmp)
    assert proc.returncode == 0, proc.stderr
    return tmp / "model.joblib"


# Test files: valid ones of any shape (more features or labels than the model is an
# error), files with a few edits, random bytes.
_test_files = st.one_of(xc_documents().map(lambda d: d[0]), mutated(),
                        st.builds(_train_file, st.integers(0, 100), st.integers(0, 5),
                                  st.integers(1, 20), st.integers(1, 8)))


@fuzz_settings(max_examples=6)
@given(data=_test_files, command=st.sampled_from(["evaluate", "predict"]),
       k=st.integers(1, 8), inference=st.sampled_from(["exact", "lsh"]),
       n_jobs=st.integers(1, 3),
       model_damage=st.sampled_from([None, None, None, "truncate", "garbage"]))
def test_cli_evaluate_and_predict_fail_cleanly(cli_model, data, command, k, inference,
                                               n_jobs, model_damage):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "test.txt").write_bytes(data)
        model = cli_model
        if model_damage:
            blob = cli_model.read_bytes()
            model = tmp / "damaged.joblib"
            model.write_bytes(blob[: len(blob) // 2] if model_damage == "truncate"
                              else bytes(np.random.default_rng(len(data)).integers(
                                  0, 256, 200, dtype=np.uint8)))
        args = [command, str(model), "test.txt"]
        args += ["out.txt", "-k", str(k)] if command == "predict" else ["-k", str(k)]
        args += ["--inference", inference, "--n-jobs", str(n_jobs), "-q"]
        proc = _cli(args, tmp)
        event(f"{command}: exit status {proc.returncode}")
        _check_clean_outcome(proc, args)
        if model_damage:
            assert proc.returncode == 1  # never a model, whatever the test file
        if proc.returncode == 0 and command == "predict":
            out = (tmp / "out.txt").read_text().splitlines()
            n_rows = int(data.lstrip(b"\xef\xbb\xbf").split()[0])
            assert len(out) == n_rows
            for line in out:  # k (or all 6) labels of the model, best first
                pairs = [p.split(":") for p in line.split()]
                assert len(pairs) == min(k, 6)
                assert all(0 <= int(lab) < 6 for lab, _ in pairs)
                scores = [float(s) for _, s in pairs]
                assert scores == sorted(scores, reverse=True)
        if proc.returncode == 0 and command == "evaluate":
            assert f"P@{k} " in proc.stdout


@fuzz_settings(max_examples=4)
@given(data=st.one_of(mutated(), st.builds(_train_file, st.integers(0, 100),
                                           st.integers(1, 30), st.integers(1, 20),
                                           st.integers(1, 8))),
       family=st.sampled_from(["dwta", "wta", "simhash", "doph"]),
       precision=st.sampled_from(["float32", "bfloat16"]), n_jobs=st.integers(1, 3))
def test_cli_train_fails_cleanly(data, family, precision, n_jobs):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "train.txt").write_bytes(data)
        args = ["train", "train.txt", "model.joblib", "--max-iter", "1",
                "--hidden-layer-sizes", "8", "--bin-size", "4", "--hash-family", family,
                "--precision", precision, "--n-jobs", str(n_jobs), "--random-state", "0",
                "-q"]
        proc = _cli(args, tmp)
        event(f"train: exit status {proc.returncode}")
        _check_clean_outcome(proc, args)
        assert (Path(tmp) / "model.joblib").exists() == (proc.returncode == 0)
