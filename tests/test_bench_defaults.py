"""benchmarks/bench_defaults.py's bookkeeping: the multi-label metrics it records and the
records an earlier study's result keeps (no fit is run here)."""
import json
import types

import numpy as np
import scipy.sparse as sp

from _scripts import load_script

bench = load_script("bench_defaults")


def test_xc_metrics_counts_distinct_top1_labels_and_top5_lists():
    Y = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0],
                                [1, 0, 0, 1, 0, 0]], dtype=np.float32))
    # one top-1 label for every row, but two different ranked top-5 lists
    top = np.array([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 2, 1, 3, 4]])
    m = bench.xc_metrics(top, Y, Y)
    assert m["distinct_top1"] == 1 and m["distinct_top5"] == 2
    assert m["p@1"] == 1.0
    # the same labels in another order are another list
    m = bench.xc_metrics(np.tile(top[0], (3, 1)), Y, Y)
    assert m["distinct_top5"] == 1


def test_keep_replaces_only_the_configurations_run_again(tmp_path, monkeypatch):
    old = [dict(data="bibtex", label="defaults", seed=0, threads=2, **{"p@1": 0.1}),
           dict(data="bibtex", label="old defaults", seed=0, threads=2, **{"p@1": 0.2}),
           dict(data="go-seq", label="defaults", seed=0, threads=2, **{"p@1": 0.3})]
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(dict(command="earlier", machine={"cpu": "x"}, records=old)))
    new = dict(data="bibtex", label="defaults", seed=0, threads=2, **{"p@1": 0.9})
    monkeypatch.setattr(bench, "spawn", lambda *args: dict(new))
    monkeypatch.setattr(bench, "machine", lambda: {"cpu": "y"})
    out = tmp_path / "out.json"
    args = types.SimpleNamespace(seeds=1, which="defaults", threads_list=[2], data="bibtex",
                                 text8_train=10, text8_seeds=1, keep=str(kept), out=str(out))
    bench.run_study(args)
    records = json.loads(out.read_text())["records"]
    got = sorted((r["data"], r["label"], r["p@1"]) for r in records)
    # bibtex's defaults ran again (once a thread count); its "old defaults" and the
    # other set are kept from the earlier result
    assert got == [("bibtex", "defaults", 0.9), ("bibtex", "old defaults", 0.2),
                   ("go-seq", "defaults", 0.3)]


def test_text8_runs_its_own_number_of_seeds():
    def seeds_of(data, **kw):
        configs = bench.study_configs("defaults", [0, 1, 2, 3, 4], [1, 2], **kw)
        return next(c[4] for c in configs if c[0] == "defaults" and c[1] == data)
    assert seeds_of("text8") == [0] and seeds_of("bibtex") == [0, 1, 2, 3, 4]
    assert seeds_of("text8", text8_seeds=5) == [0, 1, 2, 3, 4]
