"""benchmarks/bench_lsh_inference.py end to end on its quick shape (the Amazon law at
3,000 rows): it writes a result whose figures are consistent. The figures themselves are
not checked: the benchmark asserts nothing."""
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_lsh_inference.py"


def test_quick_run_writes_its_result(tmp_path):
    import slidelearn
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(slidelearn.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    out = tmp_path / "lsh.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--data", "amazon",
                           "--threads", "1", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["data"] == "amazon" and run["n_test"] == 300
    assert len(run["settings"]) == 2
    for row in run["settings"]:
        assert 0.0 <= row["exact_top1_found"] <= 1.0
        assert row["speedup"] > 0 and row["lsh_rows_s"] > 0
        assert 0.0 <= row["p1_lsh"] <= 1.0
    assert "top-1 found" in (tmp_path / "lsh.txt").read_text()
