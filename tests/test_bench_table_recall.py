"""benchmarks/bench_table_recall.py end to end on its quick shape (the Amazon law at
3,000 rows): it writes a result whose figures are consistent. The figures themselves are
not checked: the benchmark asserts nothing."""
import json
import subprocess
import sys

from _scripts import script, script_env

SCRIPT = script("bench_table_recall")


def test_quick_run_writes_its_result(tmp_path):
    env = script_env()
    out = tmp_path / "recall.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1",
                           "--settings", '[{}, {"rehash_drift": 0.5}]', "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    by_count, by_drift = result["runs"]
    assert by_drift["setting"] == {"rehash_drift": 0.5}
    for run in (by_count, by_drift):
        assert run["n_train"] == 3000 and len(run["trace"]) >= 3
        for p in run["trace"]:
            assert 0.0 <= p["label_recall"] <= 1.0 and 0.0 <= p["top1_found"] <= 1.0
            assert 0.0 <= p["stale"] <= 1.0 and p["retrieved"] >= 0
    # by drift, a probe never sees the tables past the threshold (they were rebuilt
    # after the batch that crossed it)
    assert max(p["stale"] for p in by_drift["trace"]) < 0.5
    assert "label recall" in (tmp_path / "recall.txt").read_text()
