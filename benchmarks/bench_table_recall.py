"""What SLIDE's training tables retrieve while the model trains, with the tables rebuilt
by count (``rehash_interval``) or by drift (``rehash_drift``).

One epoch of :class:`slidelearn.SlideClassifier` with ``negative_sampling="lsh"`` (its
other parameters at the defaults) runs on the training rows of a data set (the loaders
and sizes of ``bench_time_to_accuracy.py``). Every ``--every`` batches, a fixed sample
of ``--probe-rows`` training rows is passed through the current network and looked up
in the current training tables, as a training step looks them up (the union of the
row's L buckets), and three figures are kept:

- "label recall": the share of the row's true labels among the retrieved neurons;
- "top-1 found": whether the neuron of highest score ``w . h + b`` over all labels
  is among them;
- "retrieved": how many distinct neurons the tables return;
- "stale": the share of the tables' entries that are out of date
  (``LSHIndex.stale_share`` on 256 neurons) just before the step.

Each setting runs in a process of its own. Prints a table per setting and, with
``--out``, writes the result as JSON beside a ``.txt`` copy; nothing is asserted.

Examples
--------
Smoke test (seconds)::

    PYTHONPATH=. python benchmarks/bench_table_recall.py --quick

The recorded run::

    PYTHONPATH=. python benchmarks/bench_table_recall.py --data amazon \\
        --settings '[{}, {"rehash_drift": 0.1}]' \\
        --out benchmarks/results/table_recall_2026-12-03.json
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import slidelearn  # noqa: F401
except ImportError:  # running from a source checkout without PYTHONPATH
    sys.path.insert(0, os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def retrieved(lsh, h):
    """The neurons of the union of ``h``'s buckets in ``lsh``'s tables (as training
    looks them up: the query hash of ``h``)."""
    from slidelearn._slide._hashing import hash_codes
    _, buckets = hash_codes(lsh.params, np.ascontiguousarray(h, dtype=np.float32), True)
    found = set()
    for t in range(lsh.offsets.shape[0]):
        b = buckets[t]
        found.update(lsh.ids[t, lsh.offsets[t, b]:lsh.offsets[t, b + 1]].tolist())
    return found


def run_setting(data, setting, args):
    """One epoch with the ``SlideClassifier`` parameters ``setting`` on ``data``'s
    training rows; returns the trace of the probed figures."""
    from slidelearn import SlideClassifier
    X, Y = data
    params = dict(random_state=args.seed, n_jobs=args.threads, negative_sampling="lsh",
                  max_iter=1, early_stopping=False)
    if args.quick:  # the quick shapes have few labels: sample them all the same
        params["min_active"] = 50
    params.update(setting)
    clf = SlideClassifier(**params)
    probe = np.sort(np.random.default_rng(1).choice(X.shape[0], min(args.probe_rows,
                                                                     X.shape[0]),
                                                    replace=False))
    trace, batches = [], [0]
    original = SlideClassifier._train_batch

    def train_batch(est, Xs, Y_indptr, Y_indices, rows, *a, **k):
        if batches[0] % args.every == 0 and est._output_mode() == "sample":
            st = est._state
            H = est._hidden(Xs[probe], args.threads)
            top1 = np.argmax(H @ st.W_out.T + st.b_out, axis=1)
            recall, found_top, size = [], [], []
            for r, i in enumerate(probe):
                found = retrieved(est._lsh, H[r])
                labels = Y_indices[Y_indptr[i]:Y_indptr[i + 1]]
                recall.append(np.mean([lab in found for lab in labels.tolist()])
                              if len(labels) else 0.0)
                found_top.append(int(top1[r]) in found)
                size.append(len(found))
            trace.append({"samples": int(batches[0] * est.batch_size),
                          "label_recall": float(np.mean(recall)),
                          "top1_found": float(np.mean(found_top)),
                          "retrieved": float(np.mean(size)),
                          "stale": est._lsh.stale_share(st.output_rows(), st.b_out,
                                                        args.threads)})
        batches[0] += 1
        return original(est, Xs, Y_indptr, Y_indices, rows, *a, **k)

    SlideClassifier._train_batch = train_batch
    t = time.perf_counter()
    try:
        clf.fit(X, Y)
    finally:
        SlideClassifier._train_batch = original
    mean = {key: float(np.mean([p[key] for p in trace])) if trace else None
            for key in ("label_recall", "top1_found", "retrieved", "stale")}
    return {"setting": setting, "rehashes": int(clf._schedule.n_rehashes),
            "fit_s_with_probes": time.perf_counter() - t, "trace": trace, "mean": mean,
            "n_train": int(X.shape[0]), "n_labels": int(Y.shape[1])}


def table(run):
    """Lines of the text report of one run."""
    lines = [f"{run['data']}: {run['n_train']} training rows, {run['n_labels']} labels, "
             f"setting {json.dumps(run['setting'])}, {run['rehashes']} rehashes",
             "samples   label recall  top-1 found  retrieved  stale"]
    step = max(1, len(run["trace"]) // 12)
    for p in run["trace"][::step]:
        lines.append(f"{p['samples']:8d}  {p['label_recall']:12.3f}  {p['top1_found']:11.3f}"
                     f"  {p['retrieved']:9.0f}  {p['stale']:5.3f}")
    m = run["mean"]
    if m["label_recall"] is not None:
        lines.append(f"mean      {m['label_recall']:12.3f}  {m['top1_found']:11.3f}  "
                     f"{m['retrieved']:9.0f}  {m['stale']:5.3f}")
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="amazon", choices=["amazon", "text8"])
    p.add_argument("--settings", default='[{}, {"rehash_drift": 0.1}]',
                   help="JSON list of SlideClassifier parameter dicts, one run each")
    p.add_argument("--probe-rows", type=int, default=200)
    p.add_argument("--every", type=int, default=40, help="batches between probes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="small shapes (a smoke test)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child's setting
    p.add_argument("--out", default=None, help="write the result as JSON (and .txt)")
    args = p.parse_args(argv)
    args.settings = json.loads(args.settings)
    q = args.quick
    args.text8_train, args.text8_test = (2000, 500) if q else (400_000, 5000)
    args.amazon_train, args.amazon_test = (3000, 300) if q else (100_000, 2000)
    if q:
        args.every = min(args.every, 4)
    return args


def main(argv=None):
    import bench_time_to_accuracy as tta
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.one is not None:  # a child process: one setting, its record on stdout
        X, Y, _, _ = tta.load_data(args.data, args)
        run = run_setting((X, Y), json.loads(args.one), args)
        run["data"] = args.data
        print("RESULT " + json.dumps(run))
        return run
    runs = []
    for setting in args.settings:  # each in its own process: no shared threads or heap
        proc = subprocess.run([sys.executable, os.path.abspath(__file__)] + argv
                              + ["--one", json.dumps(setting)],
                              capture_output=True, text=True, check=True)
        line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")][-1]
        runs.append(json.loads(line[len("RESULT "):]))
    command = " ".join(["bench_table_recall.py"] + argv)
    result = {"machine": tta.machine(), "command": command, "threads": args.threads,
              "runs": runs}
    from bench_lsh_inference import report
    report(result, table, args.out)
    return result


if __name__ == "__main__":
    main()
