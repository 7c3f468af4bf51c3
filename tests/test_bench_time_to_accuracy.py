"""benchmarks/bench_time_to_accuracy.py end to end on its smallest shape: a ``study
--quick`` on bibtex (two methods, each in its own process) writes a result that the
summary and ``report`` read back. Figures are not checked: the benchmark asserts nothing."""
import doctest
import json
import subprocess
import sys

import pytest

from _scripts import load_script, script, script_env

SCRIPT = script("bench_time_to_accuracy")


def _module():
    return load_script("bench_time_to_accuracy")


def _env():
    return script_env()


def test_examples():
    result = doctest.testmod(_module(), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_quick_study_on_bibtex(shared_data, tmp_path):
    methods = ["slide-hash"]
    try:
        import torch  # noqa: F401
        methods.append("torch-sampled")
    except ImportError:  # the PyTorch methods need the bench extra
        pass
    try:
        import matplotlib  # noqa: F401
        plot = ["--plot", str(tmp_path / "fig")]
    except ImportError:
        plot = []
    out = tmp_path / "tta.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "study", "--quick", "--data", "bibtex", "--methods",
         ",".join(methods), "--threads", "1", "--out", str(out), *plot],
        capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["complete"] and "slidelearn_path" not in result["machine"]
    records = result["records"]
    assert [r["method"] for r in records] == methods
    for rec in records:
        assert "error" not in rec, rec
        assert 1 <= rec["epochs"] <= 2 and len(rec["curve"]) == rec["epochs"]
        times = [c["train_s"] for c in rec["curve"]]
        assert times == sorted(times) and times[0] > 0
        assert all(0 <= c["p@1"] <= 1 and 0 <= c["p@5"] <= 1 for c in rec["curve"])
        assert rec["peak_rss_bytes"] > 0 and rec["shape"]["n_labels"] == 159
    summary = (tmp_path / "tta.txt").read_text()
    assert all(m in summary for m in methods)
    if plot:
        assert (tmp_path / "fig" / "tta_bibtex.png").is_file()

    rep = subprocess.run([sys.executable, str(SCRIPT), "report", str(out)],
                         capture_output=True, text=True, env=_env(), timeout=60)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert rep.stdout.startswith("bibtex")


def test_slide_random_disables_retrieval():
    """slide-random's threshold is one more table than there are."""
    module = _module()
    from slidelearn import SlideClassifier
    params = module.slide_method_params("slide-random", 1000, {"n_tables": 7})
    assert params == {"n_tables": 7, "active_threshold": 8, "negative_sampling": "lsh"}
    assert (module.slide_method_params("slide-random", 1000, {})["active_threshold"]
            == SlideClassifier().n_tables + 1)
    assert module.slide_method_params("slide-full", 1000, {}) == {"min_active": 1000}


@pytest.mark.parametrize("n_labels", [1, 5, 1000])
def test_log_uniform_sampler(n_labels):
    import numpy as np
    counts = np.random.default_rng(0).integers(0, 50, n_labels)
    sampler = _module().LogUniformSampler(counts, 64, np.random.default_rng(1))
    ids, log_q = sampler.draw()
    assert ids.dtype.kind == "i" and np.all(np.diff(ids) > 0)
    assert 0 <= ids.min() and ids.max() < n_labels
    assert np.all(log_q <= 1e-12) and np.all(np.isfinite(log_q))
    # the most frequent label has the largest probability of being drawn
    assert np.argmax(sampler.log_q) == np.argmax(counts)
