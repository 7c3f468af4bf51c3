"""benchmarks/bench_lsh_inference.py end to end on its quick shape (the Amazon law at
3,000 rows): it writes a result whose figures are consistent. The figures themselves are
not checked (the benchmark asserts nothing), but the formula of its bound on ideal SimHash
tables is, against tables drawn at random."""
import json
import subprocess
import sys

import pytest

from _scripts import load_script, script, script_env

SCRIPT = script("bench_lsh_inference")


def test_quick_run_writes_its_result(tmp_path):
    env = script_env()
    out = tmp_path / "lsh.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--data", "amazon",
                           "--threads", "1", "--simhash-bound", "--out", str(out)],
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
    bound = run["simhash_bound"]
    assert len(bound["best"]) == 3
    for row in bound["best"]:
        assert row["share"] is None or 0.0 < row["share"] <= row["work"]
    text = (tmp_path / "lsh.txt").read_text()
    assert "top-1 found" in text and "Ideal SimHash" in text


def _module():
    return load_script("bench_lsh_inference")


def test_examples():
    import doctest
    result = doctest.testmod(_module(), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_simhash_retrieval_matches_tables_drawn_at_random():
    """The expected recall of the exact top-1 and share of labels retrieved are those of
    SimHash tables of Gaussian hyperplanes, averaged over many draws of the tables; the
    bound keeps K and L that reach its target at the least work."""
    import numpy as np
    import scipy.sparse as sp
    from slidelearn import SlideClassifier
    from slidelearn._slide._lsh import mips_rows

    bench = _module()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 60, 1200)
    prototypes = rng.random((60, 80)) < 0.08
    X = sp.csr_matrix((prototypes[y] | (rng.random((1200, 80)) < 0.03)).astype(np.float32))
    clf = SlideClassifier(hidden_layer_sizes=(16,), max_iter=10, random_state=0).fit(X, y)
    Xq = X[:300]
    chances = bench.collision_chances(clf, Xq, 1, n_bins=4096)

    H = clf._hidden(clf._validate_X_predict(Xq), 1).astype(np.float64)
    W = np.asarray(clf.coefs_[-1], dtype=np.float64)
    b = np.asarray(clf.intercepts_[-1], dtype=np.float64)
    center = W.mean(axis=0)
    max_norm = float(np.sqrt(((W - center) ** 2).sum(axis=1) + b ** 2).max())
    R = mips_rows(W.astype(np.float32), b.astype(np.float32), center.astype(np.float32),
                  max_norm).astype(np.float64)
    Q = np.hstack([H, np.ones((len(H), 1)), np.zeros((len(H), 1))])
    top = (H @ W.T + b).argmax(axis=1)
    for K, L in ((1, 3), (3, 2), (5, 4), (8, 8)):
        found, share = [], []
        for _ in range(40):
            planes = rng.standard_normal((R.shape[1], K * L))
            bits = 1 << np.arange(K)
            keys_r = ((R @ planes > 0).reshape(len(R), L, K) * bits).sum(axis=2)
            keys_q = ((Q @ planes > 0).reshape(len(Q), L, K) * bits).sum(axis=2)
            hit = (keys_q[:, None, :] == keys_r[None, :, :]).any(axis=2)  # rows x labels
            found.append(hit[np.arange(len(Q)), top].mean())
            share.append(hit.mean())
        expected_found, expected_share = bench.retrieval(chances, K, L)
        assert np.mean(found) == pytest.approx(expected_found, abs=0.03), (K, L)
        assert np.mean(share) == pytest.approx(expected_share, abs=0.02), (K, L)

    bound = bench.simhash_bound(clf, Xq, 1, target=0.9, max_tables=(3, 20))
    assert [row["max_tables"] for row in bound["best"]] == [3, 20]
    for row in bound["best"]:
        assert row["K"] is not None and row["L"] <= row["max_tables"]
        assert row["found"] >= 0.9
        assert (row["found"], row["share"]) == pytest.approx(
            bench.retrieval(bench.collision_chances(clf, Xq, 1), row["K"], row["L"]))
        assert row["work"] == pytest.approx(row["share"] + row["K"] * row["L"] / 60)
