"""End-to-end tests of the ``slidelearn`` command line (train / evaluate / predict)."""
import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

import slidelearn
from slidelearn import SlideClassifier
from slidelearn._cli import build_parser, main
from slidelearn._cli._progress import Progress
from slidelearn.datasets import load_xc_repository
from slidelearn.metrics import (jain_propensity, precision_at_k,
                                propensity_scored_precision_at_k)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
BIBTEX = DATA / "bibtex"
needs_bibtex = pytest.mark.skipif(not BIBTEX.is_dir(),
                                  reason=f"shared data folder {BIBTEX} is absent")

EPOCHS = 4
TRAIN_ARGS = ["--epochs", str(EPOCHS), "--n-jobs", "1", "--random-state", "0"]


def run(argv):
    """main(argv) in-process; returns (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def metrics_from(stdout):
    """{k: (P@k, PSP@k or None)} from the output of ``evaluate``."""
    found = {}
    for m in re.finditer(r"^P@(\d+) (\d\.\d{4})(?:  PSP@\1 (\d\.\d{4}))?$", stdout, re.M):
        found[int(m.group(1))] = (float(m.group(2)),
                                  None if m.group(3) is None else float(m.group(3)))
    return found


@pytest.fixture(scope="module")
def bibtex():
    if not BIBTEX.is_dir():
        pytest.skip(f"shared data folder {BIBTEX} is absent")
    Xtr, Ytr = load_xc_repository(BIBTEX / "train.txt")
    Xte, Yte = load_xc_repository(BIBTEX / "test.txt")
    return Xtr, Ytr, Xte, Yte


@pytest.fixture(scope="module")
def trained(tmp_path_factory, bibtex):
    """A model trained once through the command line, and what it printed."""
    model = tmp_path_factory.mktemp("cli") / "bibtex.joblib"
    status, out, err = run(["train", BIBTEX / "train.txt", model, *TRAIN_ARGS, "--progress"])
    assert status == 0, err
    return model, out, err


# --------------------------------------------------------------------------- train
@needs_bibtex
def test_train_reports_speed_and_saves_a_model(trained, bibtex):
    model, out, err = trained
    Xtr, Ytr, _, _ = bibtex
    m = re.search(r"training time (\d+\.\d) s, ([\d,]+) samples/s", out)
    assert m, out
    assert float(m.group(1)) > 0 and int(m.group(2).replace(",", "")) > 0
    assert f"{EPOCHS} epochs on 4,880 labelled rows with 1 thread(s)" in out
    # The progress bar went through every epoch on standard error.
    assert f"{EPOCHS}/{EPOCHS} epochs" in err and "train: 100%" in err
    assert "Loaded" in err and "4,880 rows, 1,836 features, 159 labels" in err

    payload = joblib.load(model)
    assert payload["n_features"] == 1836 and payload["n_labels"] == 159
    assert payload["n_train_rows"] == 4880
    np.testing.assert_array_equal(payload["label_counts"],
                                  np.asarray(Ytr.sum(axis=0)).ravel().astype(np.int64))
    clf = payload["estimator"]
    assert isinstance(clf, SlideClassifier) and clf.n_iter_ == EPOCHS
    assert clf.verbose == 0


@needs_bibtex
def test_train_options_reach_the_estimator_like_the_python_api(trained, bibtex):
    model, _, _ = trained
    Xtr, Ytr, _, _ = bibtex
    clf = joblib.load(model)["estimator"]
    ref = SlideClassifier(max_iter=EPOCHS, n_jobs=1, random_state=0).fit(Xtr, Ytr)
    assert clf.get_params() == ref.get_params()
    for a, b in zip(clf.coefs_, ref.coefs_):
        np.testing.assert_array_equal(a, b)


def test_every_train_option_is_an_estimator_parameter_with_its_default():
    parser = build_parser()
    args = parser.parse_args(["train", "a.txt", "m.joblib"])
    defaults = SlideClassifier().get_params()
    names = args.estimator_params

    assert set(names) <= set(defaults)
    # comm and rank_memory_budget (MPI) are for SPMD scripts, not for a command that
    # reads one file; the command's progress bar is the callback
    assert set(defaults) - set(names) == {"warm_start", "verbose", "callback", "comm",
                                          "rank_memory_budget"}
    for name in names:
        value = getattr(args, name)
        expected = defaults[name]
        if name == "hidden_layer_sizes":
            value, expected = tuple(value), tuple(expected)
        assert value == expected, name
    args = parser.parse_args(["train", "a.txt", "m.joblib", "--hidden-layer-sizes", "64", "32",
                              "--hash-family", "simhash", "--n-codes", "6", "--n-tables", "20",
                              "--learning-rate", "0.01", "--batch-size", "64", "--no-shuffle",
                              "--early-stopping", "--inference", "lsh"])
    assert (args.hidden_layer_sizes, args.hash_family, args.n_codes, args.n_tables) == (
        [64, 32], "simhash", 6, 20)
    assert (args.learning_rate, args.batch_size, args.shuffle, args.early_stopping,
            args.inference) == (0.01, 64, False, True, "lsh")


def test_invalid_estimator_option_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", str(tmp_path / "absent.txt"), str(tmp_path / "m.joblib"),
              "--n-codes", "40"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --n-codes" in err and "[1, 32]" in err


# --------------------------------------------------------------------------- evaluate
@needs_bibtex
def test_evaluate_matches_the_python_api(trained, bibtex):
    model, _, _ = trained
    _, Ytr, Xte, Yte = bibtex
    status, out, err = run(["evaluate", model, BIBTEX / "test.txt", "-k", "1", "3", "5",
                            "--n-jobs", "1", "--no-progress"])
    assert status == 0, err
    found = metrics_from(out)
    assert sorted(found) == [1, 3, 5]
    assert found[1][0] >= 0.5, out

    clf = joblib.load(model)["estimator"]
    labels, _ = clf.predict_topk(Xte, k=5)
    prop = jain_propensity(Ytr)
    for k, (p_at_k, psp_at_k) in found.items():
        assert p_at_k == pytest.approx(precision_at_k(Yte, labels, k), abs=5e-5)
        assert psp_at_k == pytest.approx(
            propensity_scored_precision_at_k(Yte, labels, prop, k), abs=5e-5)
    assert "|" not in err  # --no-progress


@needs_bibtex
def test_evaluate_lsh_inference_and_propensity_options(trained, bibtex):
    model, _, _ = trained
    _, Ytr, Xte, Yte = bibtex
    status, out, err = run(["evaluate", model, BIBTEX / "test.txt", "-k", "2",
                            "--inference", "lsh", "--propensity-a", "0.6",
                            "--propensity-b", "2.6", "--train-file", BIBTEX / "train.txt",
                            "--n-jobs", "1", "--block-rows", "1000", "--progress"])
    assert status == 0, err
    assert "lsh inference" in out and "A=0.6, B=2.6" in out
    clf = joblib.load(model)["estimator"]
    labels, _ = clf.predict_topk(Xte, k=2, inference="lsh")
    p, psp = metrics_from(out)[2]
    assert p == pytest.approx(precision_at_k(Yte, labels, 2), abs=5e-5)
    assert psp == pytest.approx(propensity_scored_precision_at_k(
        Yte, labels, jain_propensity(Ytr, A=0.6, B=2.6), 2), abs=5e-5)
    assert "evaluate: 100%" in err and "2,515/2,515 rows" in err


@needs_bibtex
def test_evaluate_a_plain_joblib_estimator_needs_train_file(trained, tmp_path):
    model, _, _ = trained
    plain = tmp_path / "plain.joblib"
    joblib.dump(joblib.load(model)["estimator"], plain)
    status, out, err = run(["evaluate", plain, BIBTEX / "test.txt", "-k", "1", "--n-jobs", "1"])
    assert status == 0 and "--train-file" in err
    (p_only, psp) = metrics_from(out)[1]
    assert psp is None
    status, out2, _ = run(["evaluate", plain, BIBTEX / "test.txt", "-k", "1", "--n-jobs", "1",
                           "--train-file", BIBTEX / "train.txt"])
    status3, out3, _ = run(["evaluate", model, BIBTEX / "test.txt", "-k", "1", "--n-jobs", "1"])
    assert status == status3 == 0
    assert metrics_from(out2)[1] == metrics_from(out3)[1]
    assert metrics_from(out2)[1][0] == p_only


# --------------------------------------------------------------------------- predict
@needs_bibtex
def test_predict_writes_topk_labels_and_scores(trained, bibtex, tmp_path):
    model, _, _ = trained
    _, _, Xte, _ = bibtex
    out_file = tmp_path / "pred.txt"
    status, out, err = run(["predict", model, BIBTEX / "test.txt", out_file, "-k", "5",
                            "--n-jobs", "1", "--quiet"])
    assert status == 0 and err == ""
    lines = out_file.read_text().splitlines()
    assert len(lines) == Xte.shape[0] == 2515
    pairs = [[tok.split(":") for tok in line.split(" ")] for line in lines]
    assert all(len(row) == 5 for row in pairs)
    labels = np.array([[int(lab) for lab, _ in row] for row in pairs])
    scores = np.array([[float(s) for _, s in row] for row in pairs])
    clf = joblib.load(model)["estimator"]
    ref_labels, ref_scores = clf.predict_topk(Xte, k=5)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-6)


@needs_bibtex
def test_predict_in_blocks_with_progress_to_stdout(trained, bibtex):
    model, _, _ = trained
    _, _, Xte, _ = bibtex
    status, out, err = run(["predict", model, BIBTEX / "test.txt", "-", "-k", "3",
                            "--n-jobs", "1", "--block-rows", "500", "--progress"])
    assert status == 0, err
    assert "predict: 100%" in err and "2,515/2,515 rows" in err
    rows = [[tok.split(":") for tok in line.split(" ")] for line in out.splitlines()]
    assert len(rows) == 2515
    labels = np.array([[int(lab) for lab, _ in row] for row in rows])
    scores = np.array([[float(s) for _, s in row] for row in rows])
    clf = joblib.load(model)["estimator"]
    ref_labels, ref_scores = clf.predict_topk(Xte, k=3)
    # Blocks of rows may round the last bits of the logits differently: a label may
    # only differ from the one-call ranking where the scores are tied to that precision.
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    differ = np.flatnonzero((labels != ref_labels).any(axis=1))
    assert differ.size <= 5
    if differ.size:
        full = clf.decision_function(Xte[differ])
        for row, i in zip(full, differ):
            near_top = set(np.flatnonzero(row >= ref_scores[i, -1] - 1e-4).tolist())
            assert set(labels[i].tolist()) <= near_top


@needs_bibtex
def test_predict_k_larger_than_the_labels_lists_every_label(trained, tmp_path):
    model, _, _ = trained
    small = tmp_path / "small.txt"
    small.write_text("2 10 3\n0 1:1 4:2\n\n")   # fewer features and labels than the model
    out_file = tmp_path / "p.txt"
    status, _, err = run(["predict", model, small, out_file, "-k", "500", "-q"])
    assert status == 0, err
    lines = out_file.read_text().splitlines()
    assert len(lines) == 2 and all(len(line.split()) == 159 for line in lines)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "content, message",
    [
        ("2 3\n0 0:1\n1 1:1\n", r"bad\.txt, line 1: invalid header '2 3'"),
        ("2 3 2\n0 0:1 1:2\n1 0:x\n", r"bad\.txt, line 3: invalid feature value in '0:x'"),
        ("2 3 2\n0 0:1\n1 7:1\n", r"bad\.txt, line 3: feature index 7 out of range"),
        ("3 3 2\n0 0:1\n1 1:1\n", r"bad\.txt, line 4: unexpected end of file"),
    ],
    ids=["header", "token", "range", "truncated"],
)
def test_malformed_training_file(tmp_path, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_text(content)
    status, out, err = run(["train", bad, tmp_path / "m.joblib", "-q"])
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("slidelearn: error: "), err
    assert re.search(message, err), err
    assert not (tmp_path / "m.joblib").exists()


def test_malformed_file_through_python_m(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3 2\n0 0:1 1:2\n1 0:x\n")
    env = dict(os.environ)
    # the slidelearn this test imported (installed, or built in place), not the sources
    env["PYTHONPATH"] = os.pathsep.join([str(Path(slidelearn.__file__).resolve().parents[1]),
                                         env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "slidelearn", "train", str(bad),
                           str(tmp_path / "m.joblib")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("slidelearn: error: ") and "bad.txt, line 3:" in last, proc.stderr
    assert proc.stdout == ""


def test_missing_files(tmp_path):
    status, _, err = run(["train", tmp_path / "absent.txt", tmp_path / "m.joblib"])
    assert status == 1 and "TRAIN_FILE" in err and "no such file" in err
    status, _, err = run(["evaluate", tmp_path / "absent.joblib", tmp_path / "t.txt"])
    assert status == 1 and "MODEL_FILE" in err and "no such file" in err
    data = tmp_path / "d.txt"
    data.write_text("3 2 2\n0 0:1\n1 1:1\n0,1 0:1 1:1\n")
    status, _, err = run(["train", data, tmp_path / "no" / "dir" / "m.joblib"])
    assert status == 1 and "does not exist" in err


@needs_bibtex
def test_test_file_missing_or_wider_than_the_model(trained, tmp_path):
    model, _, _ = trained
    status, _, err = run(["predict", model, tmp_path / "absent.txt", tmp_path / "p.txt"])
    assert status == 1 and "TEST_FILE" in err and "no such file" in err
    wide = tmp_path / "wide.txt"
    wide.write_text("1 2000 159\n3 1999:1\n")
    for cmd in (["evaluate", model, wide], ["predict", model, wide, tmp_path / "p.txt"]):
        status, _, err = run([*cmd, "-q"])
        assert status == 1
        assert "2,000 features (header) but the model was trained on 1,836" in err
    assert not (tmp_path / "p.txt").exists()
    many = tmp_path / "many.txt"
    many.write_text("1 10 300\n299 1:1\n")
    status, _, err = run(["evaluate", model, many, "-q"])
    assert status == 1 and "300 labels (header) but the model was trained on 159" in err


def test_wrong_model_files(tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("3 2 2\n0 0:1\n1 1:1\n0,1 0:1 1:1\n")
    status, _, err = run(["evaluate", data, data])
    assert status == 1 and "is not a slidelearn model file" in err
    other = tmp_path / "other.joblib"
    joblib.dump({"weights": [1, 2, 3]}, other)
    status, _, err = run(["predict", other, data, tmp_path / "p.txt"])
    assert status == 1 and "is not a slidelearn model file (it holds a dict)" in err
    unfitted = tmp_path / "unfitted.joblib"
    joblib.dump(SlideClassifier(), unfitted)
    status, _, err = run(["evaluate", unfitted, data])
    assert status == 1 and "not fitted" in err
    multiclass = tmp_path / "multiclass.joblib"
    joblib.dump(SlideClassifier(max_iter=1, random_state=0).fit(
        np.eye(4), np.array([0, 1, 0, 1])), multiclass)
    status, _, err = run(["evaluate", multiclass, data])
    assert status == 1 and "1-D class labels" in err
    damaged = tmp_path / "damaged.joblib"
    joblib.dump({"format": "slidelearn-xc-model", "format_version": 1,
                 "estimator": joblib.load(multiclass)}, damaged)
    status, _, err = run(["evaluate", damaged, data])
    assert status == 1 and "is damaged" in err
    newer = tmp_path / "newer.joblib"
    joblib.dump({"format": "slidelearn-xc-model", "format_version": 99}, newer)
    status, _, err = run(["evaluate", newer, data])
    assert status == 1 and "newer slidelearn" in err
    status, _, err = run(["evaluate", data, data])
    assert err.startswith("slidelearn: error:") and err.count("\n") == 1


def tiny_file(folder):
    """60 rows, 8 features, 3 labels; label i % 3 has features i % 3 and 3 + i % 3."""
    rng = np.random.RandomState(0)
    lines = ["60 8 3"]
    for i in range(60):
        lab = i % 3
        feats = sorted({lab, 3 + lab, int(rng.randint(6, 8))})
        lines.append(f"{lab} " + " ".join(f"{f}:1" for f in feats))
    data = folder / "tiny.txt"
    data.write_text("\n".join(lines) + "\n")
    return data


def test_tiny_file_end_to_end(tmp_path):
    """Train, evaluate and predict on a small file (no shared data needed)."""
    data = tiny_file(tmp_path)
    model = tmp_path / "tiny.joblib"
    status, out, err = run(["train", data, model, "--epochs", "30", "--learning-rate", "0.05",
                            "--learning-rate-decay", "1", "--hidden-layer-sizes", "8",
                            "--bin-size", "4", "--n-jobs", "1", "--random-state", "0",
                            "--no-progress", "--verbose"])
    assert status == 0, err
    assert re.search(r"^Epoch 1/30: loss", err, re.M)  # --verbose forwards the epochs
    status, out, err = run(["evaluate", model, data, "-k", "1", "--n-jobs", "1", "-q"])
    assert status == 0 and err == ""
    assert metrics_from(out)[1] == (1.0, 1.0)
    status, out, _ = run(["predict", model, data, "-", "-k", "2", "--n-jobs", "1", "-q"])
    first = [line.split()[0].split(":")[0] for line in out.splitlines()]
    assert first == [str(i % 3) for i in range(60)]


def test_progress_bar_shows_early_stopping(tmp_path):
    data = tiny_file(tmp_path)
    # No epoch improves the loss by 1e9: training stops after the second epoch.
    status, out, err = run(["train", data, tmp_path / "m.joblib", "--epochs", "5",
                            "--tol", "1e9", "--n-iter-no-change", "1", "--hidden-layer-sizes",
                            "8", "--n-jobs", "1", "--random-state", "0", "--progress"])
    assert status == 0, err
    assert "2 epochs on 60 labelled rows" in out
    final = err.strip().split("\r")[-1]
    assert "2/5 epochs" in final and "(stopped early)" in final


# --------------------------------------------------------------------------- help
def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_help_explains_every_option():
    parser = build_parser()
    top = parser.format_help()
    for cmd in ("demo", "train", "evaluate", "predict"):
        assert cmd in top
    assert "n_points n_features n_labels" in top
    for name, sub in _subparsers(parser).items():
        text = sub.format_help()
        for action in sub._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            assert action.help, (name, action.option_strings)
            assert action.option_strings[-1] in text
            takes_value = action.nargs != 0
            if takes_value:
                assert "default" in action.help, (name, action.option_strings)
    predict_help = _subparsers(parser)["predict"].format_help()
    assert "label:score" in predict_help
    evaluate_help = _subparsers(parser)["evaluate"].format_help()
    assert "PSP@k" in evaluate_help and "Jain" in evaluate_help


@pytest.mark.parametrize("cmd", [[], ["train"], ["evaluate"], ["predict"], ["demo"]])
def test_help_exits_cleanly(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*cmd, "--help"])
    assert exc.value.code == 0
    assert "usage: slidelearn" in capsys.readouterr().out


# --------------------------------------------------------------------------- progress bar
def test_progress_bar_draws_only_when_enabled():
    stream = io.StringIO()
    bar = Progress(3, "work", enabled=True, unit="steps", stream=stream, min_interval=0)
    for _ in range(3):
        bar.update(1, note="ok")
    bar.close()
    text = stream.getvalue()
    assert "work:   0%" in text and "work: 100%" in text and "3/3 steps" in text
    assert text.endswith("\n") and text.count("\n") == 1 and text.count("\r") == 4
    quiet = io.StringIO()
    bar = Progress(3, "work", enabled=False, stream=quiet)
    bar.update(3)
    bar.close()
    assert quiet.getvalue() == ""


def test_progress_bar_writes_lines_above_itself():
    stream = io.StringIO()
    bar = Progress(2, "work", enabled=True, stream=stream, min_interval=0)
    bar.update(1)
    bar.write("a message")
    bar.close()
    # the message stands alone on its line, and the bar is drawn again below it
    lines = [chunk.split("\r")[-1] for chunk in stream.getvalue().split("\n")]
    assert lines[0] == "a message" and lines[1].startswith("work:  50%")


# ------------------------------------------------- options made from the estimator
def _train_actions(parser=None):
    """{dest: action} of the options of ``slidelearn train``."""
    sub = _subparsers(parser or build_parser())["train"]
    return {a.dest: a for a in sub._actions if a.option_strings}


def test_train_choices_come_from_the_parameter_constraints(monkeypatch):
    from sklearn.utils._param_validation import StrOptions

    constraints = SlideClassifier._parameter_constraints
    actions = _train_actions()
    for name in ("hash_family", "bucket_policy", "precision", "inference"):
        options = next(c for c in constraints[name] if isinstance(c, StrOptions))
        assert set(actions[name].choices) == options.options, name
    # in the order the docstring's type field lists (and its text explains) them
    assert actions["hash_family"].choices == ["auto", "dwta", "wta", "simhash", "doph", "mips"]
    monkeypatch.setitem(constraints, "hash_family", [StrOptions({"wta", "dwta", "new"})])
    assert _train_actions()["hash_family"].choices == ["dwta", "new", "wta"]


def test_train_defaults_and_bounds_come_from_the_estimator(monkeypatch, capsys):
    from numbers import Integral

    from sklearn.utils._param_validation import Interval

    monkeypatch.setitem(SlideClassifier.__init__.__kwdefaults__, "n_codes", 7)
    monkeypatch.setitem(SlideClassifier.__init__.__kwdefaults__, "shuffle", False)
    monkeypatch.setitem(SlideClassifier._parameter_constraints, "n_tables",
                        [Interval(Integral, 1, 8, closed="both")])
    parser = build_parser()
    args = parser.parse_args(["train", "a.txt", "m.joblib"])
    assert args.n_codes == 7 and args.shuffle is False
    actions = _train_actions(parser)
    assert actions["n_codes"].help.endswith("(default: 7)")
    assert actions["shuffle"].help.endswith("(default: off)")
    assert parser.parse_args(["train", "a", "m", "--n-tables", "8"]).n_tables == 8
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["train", "a", "m", "--n-tables", "9"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --n-tables: must be an int in the range [1, 8], got 9" in err


def test_train_help_comes_from_the_docstring(monkeypatch):
    actions = _train_actions()
    # the entry's first sentence, reST made plain, parameter names as options
    assert actions["bucket_size"].help == "Maximum neuron ids kept per bucket (default: 128)"
    assert actions["n_iter_no_change"].help == "See --tol (default: 3)"
    assert actions["inference_threshold"].help.startswith("With --inference lsh, ")
    # with a default of None, also the sentence that says what None means
    assert "None: no cap (default: None)" in actions["inference_max_candidates"].help
    assert "None uses all usable cores" in actions["n_jobs"].help
    doc = SlideClassifier.__doc__.replace(
        "Maximum neuron ids kept per bucket.",
        "Most ids of a bucket, e.g. 10. Or ``bin_size`` times 2. A second sentence.")
    monkeypatch.setattr(SlideClassifier, "__doc__", doc)
    assert _train_actions()["bucket_size"].help == (
        "Most ids of a bucket, e.g. 10 (default: 128)")


def test_estimator_options_need_a_documented_parameter():
    from slidelearn._cli._params import EstimatorOptions

    class Undocumented(SlideClassifier):
        """No Parameters section."""

    with pytest.raises(ValueError, match="no entry for the parameter 'n_codes'"):
        EstimatorOptions(Undocumented).help("n_codes")


def _epoch_counts(err, n_epochs):
    """The epoch counts of the train bar's successive draws."""
    return [int(n) for n in re.findall(rf"(\d+)/{n_epochs} epochs", err)]


def test_progress_bar_advances_once_per_epoch_through_the_callback():
    from slidelearn._cli._progress import EpochProgress
    from slidelearn.utils import EpochInfo

    X, y = np.eye(6), np.arange(6) % 3
    stream = io.StringIO()
    bar = Progress(4, "train", enabled=True, unit="epochs", stream=stream, min_interval=0)
    seen = []
    feed = EpochProgress(bar)
    clf = SlideClassifier(max_iter=4, tol=0, n_jobs=1, random_state=0, verbose=0,
                          callback=lambda est, info: seen.append(info) or feed(est, info))
    clf.fit(X, y)
    bar.close()
    assert [info.epoch for info in seen] == [1, 2, 3, 4]
    # one draw at the start, then one per epoch, each with that epoch's loss
    assert _epoch_counts(stream.getvalue(), 4) == [0, 1, 2, 3, 4]
    final = stream.getvalue().split("\r")[-1]
    assert final.startswith("train: 100%") and f"loss {seen[-1].loss:.5f}" in final
    assert "Epoch" not in stream.getvalue()  # nothing printed by the estimator
    # the validation score of early stopping is shown too
    feed(clf, EpochInfo(4, 4, 4, 0.5, 0.1, 6, validation_score=0.75))
    assert bar.note == "loss 0.50000, validation 0.7500"


def test_train_progress_bar_is_fed_by_the_callback(tmp_path, monkeypatch):
    from slidelearn._cli import _progress

    # draw every update, however fast the epochs
    monkeypatch.setitem(_progress.Progress.__init__.__kwdefaults__, "min_interval", 0)
    data = tiny_file(tmp_path)
    argv = ["train", data, tmp_path / "m.joblib", "--epochs", "6", "--tol", "0",
            "--hidden-layer-sizes", "8", "--n-jobs", "1", "--random-state", "0",
            "--progress"]
    status, out, err = run(argv)
    assert status == 0, err
    assert "6 epochs on 60 labelled rows" in out
    assert _epoch_counts(err, 6) == [0, 1, 2, 3, 4, 5, 6]
    assert "Epoch" not in err  # the estimator printed nothing: no --verbose
    assert err.strip().split("\r")[-1].startswith("train: 100%")
    assert joblib.load(tmp_path / "m.joblib")["estimator"].callback is None

    # --verbose: the estimator's lines, each on a line of its own above the bar
    status, out, err = run([*argv, "--verbose"])
    assert status == 0, err
    lines = [chunk.split("\r")[-1] for chunk in err.split("\n")]
    epochs = [line for line in lines if line.startswith("Epoch ")]
    assert [line.split(":")[0] for line in epochs] == [f"Epoch {e}/6" for e in range(1, 7)]
    assert lines[-2].startswith("train: 100%") and lines[-1] == ""
    assert "Epoch" not in out


def test_console_script_and_python_m_run_the_same_main():
    tomllib = pytest.importorskip("tomllib")
    import importlib

    import slidelearn.__main__ as entry

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["slidelearn"].partition(":")
    assert getattr(importlib.import_module(module), func) is main is entry.main


def test_auto_words_and_none_reach_the_estimator():
    parser = build_parser()
    args = parser.parse_args(["train", "a.txt", "m.joblib", "--min-active", "500",
                              "--hidden-layer-sizes", "auto", "--early-stopping", "false",
                              "--feature-scaling", "none"])
    assert (args.min_active, args.hidden_layer_sizes, args.early_stopping,
            args.feature_scaling) == (500, ["auto"], False, None)
    args = parser.parse_args(["train", "a.txt", "m.joblib", "--min-active", "auto",
                              "--early-stopping", "--feature-scaling", "auto"])
    assert (args.min_active, args.early_stopping, args.feature_scaling) == ("auto", True, "auto")
    for bad in (["--min-active", "most"], ["--early-stopping", "maybe"],
                ["--feature-scaling", "off"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", "a.txt", "m.joblib", *bad])
