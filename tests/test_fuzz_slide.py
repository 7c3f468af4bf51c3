"""Property-based fuzzing of SlideClassifier: random small problems (1 to 30 labels,
multi-class and multi-label, dense / CSR / CSC / COO input with int32 or int64 indices,
float32 or float64, rows without features, rows with every label), every hash family,
every negative sampling, both precisions, 1 to 3 threads, fit or partial_fit, then
every prediction method, every inference mode (exact, lsh, ivf with few clusters and
probes, norm) and a pickle round trip. Each example runs in a worker process (see
_fuzz.py): an out-of-bounds write in the kernels fails the test through the worker's exit
status (glibc aborts at exit on a corrupted heap; under tools/sanitize.sh ASan aborts at
the write)."""
from hypothesis import example, given
from hypothesis import strategies as st

from _fuzz import fuzz_settings, run_worker

FAMILIES = ["auto", "dwta", "wta", "simhash", "doph", "mips"]


@st.composite
def slide_examples(draw):
    n_labels = draw(st.integers(1, 30))
    multilabel = draw(st.booleans())
    n = draw(st.integers(1, 40))
    rows = st.lists(st.integers(0, n - 1), max_size=n, unique=True)
    hidden = draw(st.lists(st.integers(2, 16), min_size=1, max_size=2))
    family = draw(st.sampled_from(FAMILIES))
    maybe = lambda s: st.none() | s  # noqa: E731
    params = {
        "hidden_layer_sizes": hidden,
        "hash_family": family,
        "n_codes": draw(st.integers(1, 6)),
        "n_tables": draw(st.integers(1, 8)),
        # WTA / DWTA (and "auto"'s training tables) compare bin_size coordinates of the
        # last hidden layer ("auto": 8)
        "bin_size": draw(st.integers(2, min(8, hidden[-1])
                                     if family in ("wta", "dwta", "auto") else 8)
                         | (st.just("auto") if family not in ("wta", "dwta", "auto")
                            or hidden[-1] >= 8 else st.nothing())),
        "range_pow": draw(st.integers(1, 12)),
        "bucket_size": draw(st.integers(1, 16)),
        "bucket_policy": draw(st.sampled_from(["fifo", "reservoir"])),
        # 1000 (the default) puts every label in every active set
        "min_active": draw(st.sampled_from([0, 1, 5, 1000])),
        "negative_sampling": draw(st.sampled_from(["auto", "lsh", "log_uniform"])),
        "active_threshold": draw(st.integers(1, 3)),
        "inference_threshold": draw(st.integers(1, 2)),
        "inference_max_candidates": draw(maybe(st.integers(1, 10))),
        "inference_head_labels": draw(st.integers(0, 5)),
        "inference_n_codes": draw(maybe(st.integers(1, 6))),
        "inference_n_tables": draw(maybe(st.integers(1, 8))),
        "inference_bucket_size": draw(maybe(st.integers(1, 8))),
        "inference_n_clusters": draw(st.sampled_from(["auto", 1, 2, 5])),
        "inference_n_probe": draw(st.sampled_from(["auto", 1, 2])),
        "rehash_interval": draw(st.integers(1, 64)),
        "rebuild_interval": draw(st.integers(1, 256)),
        "rehash_drift": draw(maybe(st.sampled_from([0.01, 0.3, 1.0]))),
        "precision": draw(st.sampled_from(["float32", "bfloat16"])),
        "dropout": draw(st.sampled_from([0.0, 0.3])),
        "loss": draw(st.sampled_from(["auto", "softmax", "pick_all", "bce"])),
        "batch_size": draw(st.integers(1, 16)),
        "max_iter": draw(st.integers(1, 2)),
        "learning_rate": 1e-2,
        "n_jobs": draw(st.integers(1, 3)),
        "random_state": draw(st.integers(0, 2**16)),
    }
    # loss="bce" is refused unless every label is scored densely
    if params["loss"] == "bce" and (params["min_active"] < 1000
                                    or params["precision"] != "float32"):
        params["loss"] = "auto"
    x_format = draw(st.sampled_from(["dense", "csr", "csc", "coo"]))
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "n_samples": n,
        "n_features": draw(st.integers(1, 20)),
        "n_labels": n_labels,
        "density": draw(st.sampled_from([0.05, 0.3, 1.0])),
        "multilabel": multilabel,
        # a dense (n, 1) indicator is a column of class labels, as in scikit-learn
        "y_sparse": draw(st.booleans()) if n_labels > 1 else True,
        "str_labels": draw(st.booleans()),
        "drop_class": draw(st.booleans()),
        "x_format": x_format,
        "index_dtype": draw(st.sampled_from(["int32", "int64"])),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "empty_rows": draw(rows),
        "full_rows": draw(rows) if multilabel else draw(st.booleans()),
        "unlabeled_rows": draw(rows) if multilabel else [],
        # predicted again from X in this form: the same answers
        "alt_format": [draw(st.sampled_from(["dense", "csr", "csc", "coo"])),
                       draw(st.sampled_from(["int32", "int64"])),
                       draw(st.sampled_from(["float32", "float64"]))],
        "mode": draw(st.sampled_from(["fit", "partial_fit"])),
        "k": draw(st.integers(1, n_labels + 2)),
        "pickle": draw(st.booleans()),
        "params": params,
    }


# The input of the bug fixed in 821ba6e: every label of a 5-label problem active (the
# default min_active), rows with all of them, two threads; the branch-free bucket scans
# wrote one int32 past the active-set buffer, and the process aborted at exit (free():
# invalid pointer).
_BUG_821BA6E = {
    "make_multilabel": {"n_samples": 100, "n_features": 10, "n_classes": 5, "n_labels": 3,
                        "length": 50, "allow_unlabeled": True, "random_state": 0},
    "n_samples": 100, "n_features": 10, "n_labels": 5, "multilabel": True,
    "y_sparse": False, "str_labels": False, "x_format": "dense", "index_dtype": "int32",
    "dtype": "float64", "mode": "fit", "k": 3, "pickle": False,
    "params": {"random_state": 0, "n_jobs": 2},
}


def check_slide_facts(ex, facts):
    """The outcomes every example must have (see _fuzz_worker.run_slide)."""
    if facts["all_unlabeled"]:
        assert facts["fit_error"] is not None and facts["fit_error"]["value_error"], facts
        assert "empty" in facts["fit_error"]["message"]
        return
    assert facts["fit_error"] is None, facts["fit_error"]
    n, L = ex["n_samples"], ex["n_labels"]
    labels = [f"c{v:02d}" if ex["str_labels"] and not ex["multilabel"] else str(v)
              for v in range(L)]
    C = facts["n_classes"]
    assert set(facts["classes"]) <= set(labels)
    if ex["multilabel"] or ex["mode"] == "partial_fit":
        # every indicator column / every label of classes=
        assert sorted(facts["classes"]) == sorted(labels)
    assert facts["multilabel"] == ex["multilabel"]

    pred = facts["predict"]
    if ex["multilabel"]:
        assert pred["shape"] == [n, L]
        assert pred["sparse"] == ex["y_sparse"]  # the form of the fitted y
        assert pred["dtype"] == "int64"
        assert pred["binary"] and pred["min_labels_per_row"] >= 1
    else:
        assert pred["shape"] == [n] and not pred["sparse"] and pred["in_classes"]
        assert pred.get("is_argmax", True)
    proba = facts["proba"]
    assert proba["shape"] == [n, C] and proba["finite"] and proba["in_01"]
    # a multi-label one-vs-all model gives each label's own probability
    if not (facts["loss"] == "bce" and ex["multilabel"]):
        assert proba["max_sum_error"] < 1e-6
    binary = not ex["multilabel"] and C == 2
    assert facts["decision_shape"] == ([n] if binary else [n, C])
    for mode, topk in facts["topk"].items():
        assert topk["shape"] == topk["expected_shape"] == [n, min(ex["k"], C)], mode
        assert topk["labels_in_classes"] and topk["distinct"], (mode, topk)
        assert topk["finite"] and topk["sorted"], (mode, topk)
        assert topk.get("scores_match_logits", True), (mode, topk)
        assert topk.get("top1_is_max", True), (mode, topk)
    assert facts.get("formats_agree", True)
    if ex["pickle"]:
        assert facts["pickle_same"] and facts["refit_after_pickle"]


@fuzz_settings(max_examples=8)
@given(st.lists(slide_examples(), min_size=1, max_size=3))
@example([_BUG_821BA6E])
def test_slide_classifier_fuzz(examples):
    for ex, facts in zip(examples, run_worker("slide", examples)):
        check_slide_facts(ex, facts)


def test_worker_reports_a_crash_as_a_failure():
    """The harness itself: a worker that dies by a signal (as on heap corruption) fails
    the test, with the example in the message."""
    import subprocess
    import sys

    import pytest

    from _fuzz import describe_status, package_env

    proc = subprocess.run([sys.executable, "-c", "import os, signal; "
                           "os.kill(os.getpid(), signal.SIGABRT)"], env=package_env())
    assert describe_status(proc.returncode) == "killed by SIGABRT (-6)"
    with pytest.raises(AssertionError, match="worker slide exit status 3"):
        run_worker("slide", [{"not": "an example"}])
    with pytest.raises(AssertionError, match=r"worker abort killed by SIGABRT \(-6\)"):
        run_worker("abort", [{}])
