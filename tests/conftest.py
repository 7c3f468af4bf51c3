"""Shared fixtures of the slidelearn test suite."""
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def small_xc_model():
    """A SlideClassifier (32 hidden units, 600 labels, 3 epochs) fitted on 1,200 rows
    of a synthetic extreme-classification set, and the 300 held-out rows ``(clf,
    X_test, Y_test)``: trained once per test module that asks for it."""
    from slidelearn import SlideClassifier
    from slidelearn.datasets import make_extreme_classification
    X, Y = make_extreme_classification(n_samples=1500, n_features=300, n_labels=600,
                                       n_nonzeros=20, random_state=0)
    clf = SlideClassifier(hidden_layer_sizes=(32,), max_iter=3, n_jobs=2,
                          random_state=0).fit(X[:1200], Y[:1200])
    return clf, X[1200:], Y[1200:]


@pytest.fixture(scope="session")
def shared_data():
    """The folder of the shared data sets (``<workspace>/shared/data``)."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent")
    return path


def run_at_every_level(script, tmp_dir_of, output="out.npy", timeout=300):
    """Run ``script`` once per CPU dispatch level of this machine, each in its own
    process with ``SLIDELEARN_CPU_LEVEL`` set (the level is chosen at import), all at
    once. The script gets the path of an output file as its argument.

    Returns ``{level: (returncode, stdout, stderr, output path)}``.
    """
    import os
    import subprocess
    import sys
    import textwrap

    import slidelearn
    from slidelearn.utils import available_levels

    procs = {}
    for level in available_levels():
        tmp = tmp_dir_of(level)
        (tmp / "run.py").write_text(textwrap.dedent(script))
        env = dict(os.environ, SLIDELEARN_CPU_LEVEL=level)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(slidelearn.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
        procs[level] = (subprocess.Popen(
            [sys.executable, str(tmp / "run.py"), str(tmp / output)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env), tmp / output)
    runs = {}
    for level, (proc, path) in procs.items():
        out, err = proc.communicate(timeout=timeout)
        runs[level] = (proc.returncode, out, err, path)
    return runs


def level_result(runs, level):
    """The JSON the script printed last at ``level`` (from ``run_at_every_level``);
    skips the test when this CPU cannot run that level, fails when the run failed."""
    import json

    from slidelearn.utils import available_levels

    if level not in available_levels():
        pytest.skip(f"this CPU cannot run the {level} code path")
    rc, out, err, _ = runs[level]
    assert rc == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])
