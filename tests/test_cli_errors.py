"""Malformed files through the loader and every command of the CLI (issue 21):
``load_xc_repository`` raises ValueError naming the line and the problem, and the
command line prints one ``slidelearn: error:`` line and exits with status 1,
without a traceback."""
import contextlib
import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

import slidelearn
from slidelearn import DLRMClassifier, SlideClassifier
from slidelearn._cli import main
from slidelearn._slide import _testing
from slidelearn.datasets import load_xc_repository

GOOD = "6 5 3\n0,1 0:1 3:0.5\n2 1:1\n1 2:2 4:1\n0 0:0.5\n2 1:0.25 4:1\n1 3:1\n"

# (file bytes, the line the error names, a fragment of the problem)
BAD_FILES = {
    "header_two_fields": (b"2 5\n0 0:1\n1 1:1\n", 1, "invalid header '2 5'"),
    "header_text": (b"a b c\n0 0:1\n", 1, "invalid header 'a b c'"),
    "header_negative": (b"-2 5 3\n0 0:1\n", 1, "invalid header"),
    "header_long": (b"2 5 3" + b" " * 300 + b"\n0 0:1\n1 1:1\n", 1, "305 bytes long"),
    "fewer_lines": (b"5 5 3\n0 0:1\n1 1:1\n", 4, "declares n_points=5 but only 2"),
    "more_lines": (b"1 5 3\n0 0:1\n1 1:1\n", 3, "unexpected data after the n_points=1"),
    "non_numeric_value": (b"2 5 3\n0 0:1\n1 1:abc\n", 3, "invalid feature value in '1:abc'"),
    "non_numeric_index": (b"2 5 3\n0 0:1\n1 x:1\n", 3, "invalid feature token 'x:1'"),
    "non_numeric_label": (b"2 5 3\nx 0:1\n1 1:1\n", 2, "invalid label list 'x'"),
    "feature_too_large": (b"2 5 3\n0 0:1\n1 5:1\n", 3, "feature index 5 out of range [0, 5)"),
    "feature_negative": (b"2 5 3\n0 0:1\n1 -1:1\n", 3, "invalid feature token '-1:1'"),
    "label_negative": (b"2 5 3\n0 0:1\n-1 1:1\n", 3, "invalid label list '-1'"),
    "label_too_large": (b"2 5 3\n0 0:1\n3 1:1\n", 3, "label index 3 out of range [0, 3)"),
    "missing_colon": (b"2 5 3\n0 0:1\n1 1 2:1\n", 3, "invalid feature token '1'"),
    "nan_value": (b"2 5 3\n0 0:1\n1 1:nan\n", 3, "invalid feature value in '1:nan'"),
    "inf_value": (b"2 5 3\n0 0:1\n1 1:inf\n", 3, "invalid feature value in '1:inf'"),
    "float32_overflow": (b"2 5 3\n0 0:1\n1 1:1e39\n", 3, "overflows float32"),
    "truncated_token": (b"2 5 3\n0 0:1\n1 1:", 3, "invalid feature value in '1:'"),
    "empty": (b"", 1, "empty file"),
    "binary": (bytes(range(256)) * 8, 1, "binary data"),
    "binary_after_header": (b"2 5 3\n" + bytes(range(256)), 2, "invalid label list"),
    "nul_byte": (b"2 5 3\n0 0:1\x00\n1 1:1\n", 2, "invalid feature value"),
    "gzip": (gzip.compress(GOOD.encode()), 1, "gzip-compressed; decompress it first"),
    "utf16": (GOOD.encode("utf-16"), 1, "UTF-16 text"),
    "bare_cr": (GOOD.replace("\n", "\r").encode(), 1, "bare carriage return"),
    "long_bad_line": (b"2 100000 3\n0 " + b" ".join(b"%d:1" % i for i in range(100000))
                      + b"x\n1 1:1\n", 2, "invalid feature value in '99999:1x'"),
    "duplicate_feature": (b"2 5 3\n0 0:1 0:2\n1 1:1\n", 2, "duplicate feature index 0"),
}


def _write(tmp_path, name, data):
    path = tmp_path / f"{name}.txt"
    path.write_bytes(data)
    return path


def run(argv):
    """main(argv) in-process; returns (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def assert_one_error_line(status, err, *fragments):
    assert status == 1, err
    assert err.count("\n") == 1 and err.startswith("slidelearn: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A model trained through the command line on GOOD."""
    tmp = tmp_path_factory.mktemp("model")
    train = tmp / "train.txt"
    train.write_text(GOOD)
    path = tmp / "model.joblib"
    status, _, err = run(["train", train, path, "--epochs", "1", "--n-jobs", "1",
                          "--random-state", "0", "-q"])
    assert status == 0, err
    return path


# ---------------------------------------------------------------------- loader
@pytest.mark.parametrize("name", BAD_FILES)
def test_loader_names_line_and_problem(tmp_path, name):
    data, line, problem = BAD_FILES[name]
    with pytest.raises(ValueError) as info:
        load_xc_repository(_write(tmp_path, name, data))
    assert str(info.value).startswith(f"line {line}: "), str(info.value)
    assert problem in str(info.value)


def test_loader_accepts_crlf_and_long_lines(tmp_path):
    X, Y = load_xc_repository(_write(tmp_path, "crlf", GOOD.replace("\n", "\r\n").encode()))
    X0, Y0 = load_xc_repository(_write(tmp_path, "lf", GOOD.encode()))
    assert (X != X0).nnz == 0 and (Y != Y0).nnz == 0
    long = b"1 100000 1\n0 " + b" ".join(b"%d:1" % i for i in range(100000)) + b"\n"
    X, _ = load_xc_repository(_write(tmp_path, "long", long))
    assert X.nnz == 100000


# ------------------------------------------------------------ CLI, data files
@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "evaluate_train_file"])
@pytest.mark.parametrize("name", BAD_FILES)
def test_cli_bad_data_file(tmp_path, model_file, command, name):
    data, line, problem = BAD_FILES[name]
    bad = _write(tmp_path, name, data)
    if command == "train":
        argv = ["train", bad, tmp_path / "m.joblib", "--epochs", "1", "-q"]
    elif command == "evaluate":
        argv = ["evaluate", model_file, bad, "-q"]
    elif command == "predict":
        argv = ["predict", model_file, bad, tmp_path / "out.txt", "-q"]
    else:  # the training labels of PSP@k read from a bad file
        good = _write(tmp_path, "good", GOOD.encode())
        argv = ["evaluate", model_file, good, "--train-file", bad, "-q"]
    status, out, err = run(argv)
    assert_one_error_line(status, err, f"{bad}, line {line}: ", problem)
    assert out == ""
    assert not (tmp_path / "m.joblib").exists() and not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("content,fragment", [
    ("0 5 3\n", "has no data rows (n_points=0"),
    ("2 0 3\n0\n1\n", "declares no feature (n_features=0"),
    ("2 5 0\n 0:1\n 1:1\n", "declares no label (n_labels=0"),
    ("2 5 3\n 0:1\n 1:1\n", "has no row with a label"),
])
def test_cli_train_data_without_anything_to_learn(tmp_path, content, fragment):
    path = tmp_path / "t.txt"
    path.write_text(content)
    status, out, err = run(["train", path, tmp_path / "m.joblib", "-q"])
    assert_one_error_line(status, err, str(path), fragment)
    assert not (tmp_path / "m.joblib").exists()


@pytest.mark.parametrize("header,fragment", [
    ("2 100000000000000 3", "100,000,000,000,000 features"),
    ("2 5 100000000000000", "100,000,000,000,000 labels"),
])
def test_cli_train_model_too_large_for_memory(tmp_path, header, fragment):
    path = tmp_path / "huge.txt"
    path.write_text(header + "\n0 0:1\n1 1:1\n")
    status, _, err = run(["train", path, tmp_path / "m.joblib", "-q", "--n-jobs", "1"])
    assert_one_error_line(status, err, "not enough memory", fragment, "huge.txt")


def test_cli_test_file_larger_than_the_model(tmp_path, model_file):
    path = tmp_path / "wide.txt"
    path.write_text("1 9 3\n0 8:1\n")
    for argv in (["evaluate", model_file, path], ["predict", model_file, path,
                                                  tmp_path / "o.txt"]):
        status, _, err = run(argv + ["-q"])
        assert_one_error_line(status, err, "has 9 features (header) but the model was "
                                           "trained on 5")


def test_cli_through_python_m_has_no_traceback(tmp_path):
    bad = _write(tmp_path, "bin", bytes(range(256)) * 8)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(slidelearn.__file__).resolve().parents[1]),
                                         env.get("PYTHONPATH", "")])
    for argv in (["train", bad, tmp_path / "m.joblib"], ["demo", "--n-samples", "1"]):
        proc = subprocess.run([sys.executable, "-m", "slidelearn", *map(str, argv)],
                              capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=120)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("slidelearn: error:")


# ----------------------------------------------------------- CLI, model files
def _bad_models(tmp_path, model_file):
    """{name: (path, fragment of the error)} of damaged or foreign model files."""
    good = model_file.read_bytes()
    payload = joblib.load(model_file)
    out = {}

    def raw(name, data, fragment):
        path = tmp_path / f"{name}.joblib"
        path.write_bytes(data)
        out[name] = (path, fragment)

    def dumped(name, obj, fragment):
        path = tmp_path / f"{name}.joblib"
        joblib.dump(obj, path)
        out[name] = (path, fragment)

    raw("empty", b"", "is not a slidelearn model file (joblib cannot read it")
    raw("text", b"hello\n", "is not a slidelearn model file")
    raw("garbage", bytes(range(256)) * 4, "is not a slidelearn model file")
    raw("truncated", good[: len(good) // 2], "is not a slidelearn model file")
    dumped("dict", {"a": 1}, "it holds a dict")
    dumped("array", np.arange(3), "it holds a ndarray")
    dumped("dlrm", DLRMClassifier(), "it holds a DLRMClassifier")
    dumped("unfitted", SlideClassifier(), "SlideClassifier that is not fitted")
    dumped("newer", dict(payload, format_version=99), "written by a newer slidelearn")
    dumped("bad_version", dict(payload, format_version="1"), "damaged: its model format")
    dumped("no_counts", {k: v for k, v in payload.items() if k != "label_counts"},
           "damaged: KeyError")
    dumped("wrong_sizes", dict(payload, n_features=7), "its sizes do not match")
    dumped("no_estimator", dict(payload, estimator=None), "holds no fitted SlideClassifier")
    est = joblib.load(model_file)["estimator"]
    del est._state
    dumped("no_weights", dict(payload, estimator=est), "has no usable weights")
    est = joblib.load(model_file)["estimator"]
    _testing.state(est).W_out = _testing.state(est).W_out[:1]
    dumped("short_weights", dict(payload, estimator=est), "its W_out weights")
    est = joblib.load(model_file)["estimator"]
    _testing.state(est).W_in = _testing.state(est).W_in[:, :3]
    dumped("narrow_weights", dict(payload, estimator=est), "its W_in weights")
    rng = np.random.default_rng(0)
    dumped("one_d", SlideClassifier(max_iter=1, n_jobs=1).fit(rng.random((20, 5)),
                                                             np.arange(20) % 3),
           "fitted on 1-D class labels")
    (tmp_path / "dir.joblib").mkdir()
    out["directory"] = (tmp_path / "dir.joblib", "is a directory")
    out["missing"] = (tmp_path / "absent.joblib", "no such file")
    return out


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_cli_bad_model_files(tmp_path, model_file, command):
    data = _write(tmp_path, "good", GOOD.encode())
    for name, (path, fragment) in _bad_models(tmp_path, model_file).items():
        argv = [command, path, data] + ([tmp_path / "out.txt"] if command == "predict" else [])
        status, out, err = run(argv + ["-q"])
        assert_one_error_line(status, err, fragment)
        assert out == "" and not (tmp_path / "out.txt").exists(), name


# ------------------------------------------------------------------------ demo
def test_cli_demo_bad_sizes(capsys):
    status, _, err = run(["demo", "--n-samples", "1"])
    assert_one_error_line(status, err, "n_samples must be at least 2")
    for argv in (["--n-samples", "0"], ["--n-jobs", "0"], ["--random-state", "-1"],
                 ["--epochs", "0"], ["--n-labels", "x"]):
        with pytest.raises(SystemExit) as info:
            main(["demo"] + argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {argv[0]}" in err and "Traceback" not in err


def test_cli_demo_with_fewer_labels_than_k():
    # P@5 of 3 labels: the ranking padded with "no label", as evaluate does
    status, out, err = run(["demo", "--n-samples", "60", "--n-features", "20",
                            "--n-labels", "3", "--epochs", "1", "--n-jobs", "1"])
    assert status == 0, err
    p = [float(v) for v in out.splitlines()[-1].split()[2::2]]
    assert len(p) == 3 and 0 <= p[2] <= 3 / 5
