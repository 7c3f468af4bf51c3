"""LSH and IVF inference without head labels, against exact inference, on a model
trained with slidelearn's defaults.

For each data set (text8 skip-gram with the whole vocabulary, the Amazon-670K law of
:func:`slidelearn.datasets.make_extreme_classification_preset`; the loaders and sizes of
``bench_time_to_accuracy.py``), one :class:`slidelearn.SlideClassifier` is trained at its
defaults with ``hash_family`` set (``"mips"`` by default: SimHash over the scores
``w . h + b``; the defaults' shared negatives do not use the tables in training, which
``fit`` builds from the final weights). Then, for each setting of the inference tables
(``inference_n_codes``, ``inference_n_tables``, ``inference_bucket_size``; built with
``set_params`` and the estimator's own rebuild), top-5 inference with
``inference="lsh"`` and ``inference_head_labels=0`` is compared with
``inference="exact"`` on the test rows. A setting with ``"inference": "ivf"`` times
``inference="ivf"`` instead (the clustering index, with ``inference_n_clusters`` and
``inference_n_probe``; "build s" is then the index's k-means), and a setting with
``"inference": "norm"`` times ``inference="norm"`` (the neurons of highest static score
and of longest centred row; the "K/C" column is then ``inference_budget`` and "L/P"
the share of rows whose answer the norm bound certifies exact):

- the share of rows whose exact top-1 label LSH inference ranks first ("exact top-1
  found"; the issue's target is 90%);
- P@1 and P@5 of both, and the speed of LSH over exact inference (best of 3 calls each).

With ``--simhash-bound``, also the least work at which ideal SimHash tables over the
MIPS transform of the output layer would find 90% of the exact top-1 labels
(:func:`simhash_bound`): from the angles between the rows and the queries, the best that
any K and L of Gaussian SimHash tables can reach, without bucket caps and not counting
the reading of the buckets (``hash_family="mips"`` hashes with random +-1 projections,
dense with the default ``bin_size``, that approximate Gaussian ones).

Prints a table and, with ``--out``, writes it as JSON beside a ``.txt`` copy; nothing is
asserted.

Examples
--------
Smoke test (seconds)::

    PYTHONPATH=. python benchmarks/bench_lsh_inference.py --quick

The recorded runs::

    PYTHONPATH=. python benchmarks/bench_lsh_inference.py --data text8,amazon \\
        --out benchmarks/results/lsh_inference_2026-12-03.json
    PYTHONPATH=. python benchmarks/bench_lsh_inference.py --data text8,amazon \\
        --hash-family dwta --settings '[{"inference": "ivf"}, {"inference": "ivf", \\
        "inference_n_probe": 20}, {"inference": "ivf", "inference_n_probe": 60}]' \\
        --out benchmarks/results/lsh_inference_ivf_2026-12-03.json

(``--hash-family mips`` and ``--out`` ``lsh_inference_ivf_mips_2026-12-03.json`` for the
second model.) ``inference="norm"``::

    PYTHONPATH=. python benchmarks/bench_lsh_inference.py --data text8,amazon \
        --settings '[{"inference": "norm"}, {"inference": "norm", "inference_budget": 0.02}, \
        {"inference": "norm", "inference_budget": 0.1}]' \
        --out benchmarks/results/lsh_inference_norm_2026-12-03.json

(and with ``--epochs 8 --seed 1``, ``--out`` ``lsh_inference_norm_8epochs_2026-12-03.json``).
``inference="ivf"`` after its kernels grouped rows by cluster::

    PYTHONPATH=. python benchmarks/bench_lsh_inference.py --data text8,amazon \
        --settings '[{"inference": "ivf"}, {"inference": "ivf", "inference_n_probe": 20}, \
        {"inference": "ivf", "inference_n_probe": 80}]' \
        --out benchmarks/results/lsh_inference_ivf_grouped_2026-12-04.json

(and with ``--seed 1 --hash-family dwta`` and the settings ``[{"inference": "ivf"},
{"inference": "ivf", "inference_n_clusters": 2000}]``, ``--out``
``lsh_inference_ivf_grouped_seed1_dwta_2026-12-04.json``). What ideal SimHash tables
could do on the same models (:func:`simhash_bound`)::

    PYTHONPATH=. python benchmarks/bench_lsh_inference.py --data text8,amazon \
        --simhash-bound --settings '[{"inference": "ivf"}]' \
        --out benchmarks/results/lsh_simhash_bound_2026-12-05.json

(and with ``--seed 1 --hash-family dwta``, ``--out``
``lsh_simhash_bound_seed1_dwta_2026-12-05.json``).
"""
import argparse
import json
import os
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

# Inference-table settings tried by default: K bits a SimHash key, L tables, bucket cap.
DEFAULT_SETTINGS = [
    {"inference_n_codes": 10, "inference_n_tables": 50},
    {"inference_n_codes": 12, "inference_n_tables": 50},
    {"inference_n_codes": 14, "inference_n_tables": 50},
    {"inference_n_codes": 10, "inference_n_tables": 50, "inference_bucket_size": 1024},
    {"inference_n_codes": 12, "inference_n_tables": 100},
]
TARGET_FOUND = 0.90  # the issue's share of rows whose exact top-1 LSH finds
TARGET_SPEEDUP = 10.0
TARGET_P1_DROP = 0.01
# Tables per query tried by --simhash-bound: SLIDE's L, a large practical L, and no cap.
BOUND_TABLES = (50, 1024, None)


def collision_chances(clf, X, n_threads, n_bins=16384, block=256):
    """The chances that one Gaussian SimHash bit puts a query row and an output neuron
    on the same side, over the output layer's MIPS transform.

    The rows of the output layer are transformed as ``inference="lsh"`` transforms them
    for ``hash_family="mips"`` (:func:`slidelearn._slide._lsh.mips_rows`, centred on
    the mean row), the queries are ``[h, 1, 0]``. A random Gaussian hyperplane puts a
    query and a row at the angle ``t`` on the same side with probability ``1 - t / pi``.

    Parameters
    ----------
    clf : SlideClassifier
        A fitted model.
    X : sparse matrix
        Query rows.
    n_threads : int
    n_bins : int
        Bins of the histogram of the chances over every row and neuron.
    block : int
        Rows scored at a time.

    Returns
    -------
    chances : dict
        ``top``: the chance of each row's exact top-1 neuron; ``weights`` and
        ``centers``: the histogram of the chances of every row and neuron (shares
        summing to 1, bin centres); ``n_labels``; ``median_top1_cosine`` and
        ``label_cosine_quantiles`` (the medians over rows of each row's 50%, 90%, 99%
        and 99.9% quantiles of the neurons' cosines).
    """
    from slidelearn._slide._lsh import mips_rows
    H = clf._hidden(clf._validate_X_predict(X), n_threads).astype(np.float64)
    W = np.asarray(clf.coefs_[-1], dtype=np.float64)
    b = np.asarray(clf.intercepts_[-1], dtype=np.float64)
    center = W.mean(axis=0)
    max_norm = float(np.sqrt(((W - center) ** 2).sum(axis=1) + b ** 2).max())
    R = mips_rows(W.astype(np.float32), b.astype(np.float32), center.astype(np.float32),
                  max_norm).astype(np.float64) / max_norm
    hist = np.zeros(n_bins)
    cos_top, quantiles = [], []
    for start in range(0, H.shape[0], block):
        h = H[start:start + block]
        Q = np.hstack([h, np.ones((len(h), 1)), np.zeros((len(h), 1))])
        Q /= np.linalg.norm(Q, axis=1, keepdims=True)
        cos = np.clip(Q @ R.T, -1.0, 1.0)
        top = (h @ W.T + b).argmax(axis=1)
        cos_top.append(cos[np.arange(len(h)), top])
        quantiles.append(np.quantile(cos, [0.5, 0.9, 0.99, 0.999], axis=1).T)
        p = 1.0 - np.arccos(cos) / np.pi
        hist += np.bincount(np.minimum((p * n_bins).astype(np.int64), n_bins - 1).ravel(),
                            minlength=n_bins)
    cos_top = np.concatenate(cos_top)
    return {"top": 1.0 - np.arccos(cos_top) / np.pi, "weights": hist / hist.sum(),
            "centers": (np.arange(n_bins) + 0.5) / n_bins, "n_labels": W.shape[0],
            "median_top1_cosine": float(np.median(cos_top)),
            "label_cosine_quantiles": np.median(np.vstack(quantiles), axis=0).tolist()}


def retrieval(chances, K, L):
    """Expected retrieval of ``L`` SimHash tables of ``K`` Gaussian bits each.

    A table holds a query and a neuron in one bucket with probability ``p ** K``, and
    ``L`` tables retrieve the neuron with ``1 - (1 - p ** K) ** L``.

    Parameters
    ----------
    chances : dict
        What :func:`collision_chances` returns.
    K, L : int

    Returns
    -------
    found : float
        Expected share of the rows' exact top-1 neurons retrieved.
    share : float
        Expected share of all neurons retrieved, over every row.
    """
    found = float(np.mean(-np.expm1(L * np.log1p(-chances["top"] ** K))))
    share = float(chances["weights"] @ -np.expm1(L * np.log1p(-chances["centers"] ** K)))
    return found, share


def simhash_bound(clf, X, n_threads, target=TARGET_FOUND, max_tables=BOUND_TABLES):
    """The least work at which ideal SimHash tables over the output layer's MIPS
    transform find a row's exact top-1 label with probability ``target``.

    For every ``K`` from 1 to 40 and every ``L`` up to each cap of ``max_tables``
    (geometric steps of 15%), :func:`retrieval` gives the expected share of the rows'
    exact top-1 labels retrieved and of all labels retrieved, from the chances of
    :func:`collision_chances`. This keeps the ``K`` and ``L`` of least work at which
    the first reaches ``target``: the labels scored plus the ``K * L`` hyperplanes a
    query is projected on, both dot products of the same length, as a share of the
    labels exact inference scores. Its inverse bounds the speed-up over exact
    inference of LSH inference with such tables: reading the buckets, and capping
    them, only add work or lose labels. (The ``"mips"`` family's random +-1 projections
    approximate Gaussian ones.)

    Parameters
    ----------
    clf : SlideClassifier
        A fitted model.
    X : sparse matrix
        Query rows.
    n_threads : int
    target : float
        Expected share of the exact top-1 labels to retrieve.
    max_tables : tuple of int or None
        Caps on ``L`` (None: no cap).

    Returns
    -------
    bound : dict
        ``median_top1_cosine`` and ``label_cosine_quantiles`` of
        :func:`collision_chances`, and ``best``: one dict per cap with
        ``max_tables``, ``K``, ``L``, ``found``, ``share`` (of the labels retrieved)
        and ``work`` (``share + K * L / n_labels``); None where no ``K`` and ``L``
        reach ``target``.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from slidelearn import SlideClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = sp.random(300, 40, density=0.2, format="csr", random_state=0)
    >>> y = rng.integers(0, 30, 300)
    >>> clf = SlideClassifier(hidden_layer_sizes=(16,), max_iter=2,
    ...                       random_state=0).fit(X, y)
    >>> b = simhash_bound(clf, X, 1)
    >>> [row["max_tables"] for row in b["best"]]
    [50, 1024, None]
    """
    chances = collision_chances(clf, X, n_threads)
    tables = np.unique(np.round(1.15 ** np.arange(160))).astype(np.int64)
    best = []
    for cap in max_tables:
        choice = None
        for K in range(1, 41):
            for L in tables[tables <= cap] if cap is not None else tables:
                found, share = retrieval(chances, K, int(L))
                if found >= target:
                    # the first L that reaches the target is the least work for this K
                    work = share + K * L / chances["n_labels"]
                    if choice is None or work < choice["work"]:
                        choice = {"K": K, "L": int(L), "found": found, "share": share,
                                  "work": float(work)}
                    break
        best.append({"max_tables": cap, **(choice or dict.fromkeys(
            ("K", "L", "found", "share", "work")))})
    return {"median_top1_cosine": chances["median_top1_cosine"],
            "label_cosine_quantiles": chances["label_cosine_quantiles"], "best": best}


def _timed(clf, X, **kw):
    best, out = None, None
    for _ in range(3):
        t0 = time.perf_counter()
        out = clf.predict_topk(X, k=5, **kw)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return out[0], best


def run_data(name, args):
    """Train once on ``name`` and compare every inference setting; returns a dict."""
    import bench_time_to_accuracy as tta
    from slidelearn import SlideClassifier

    Xtr, Ytr, Xte, Yte = tta.load_data(name, args)
    clf = SlideClassifier(random_state=args.seed, n_jobs=args.threads,
                          hash_family=args.hash_family, early_stopping=False,
                          max_iter=args.epochs, inference_head_labels=0)
    t0 = time.perf_counter()
    clf.fit(Xtr, Ytr)
    fit_s = time.perf_counter() - t0
    exact, t_exact = _timed(clf, Xte, inference="exact")
    p1_exact, p5_exact = tta.precisions(Yte, exact)
    rows = []
    for setting in args.settings:
        params = {key: v for key, v in setting.items() if key != "inference"}
        mode = setting.get("inference", "lsh")
        clf.set_params(**params)
        t0 = time.perf_counter()
        if mode == "ivf":
            clf._ivf = None
            clf._cluster_index(args.threads)  # what fit does at its end with "ivf"
        elif mode == "norm":
            clf._norm_index = None
            clf._norm_inference_index()  # what fit does at its end with "norm"
        else:
            clf._build_inference_tables(args.threads, lazy=False)  # as fit, built now
        build_s = time.perf_counter() - t0
        lsh, t_lsh = _timed(clf, Xte, inference=mode)
        p1, p5 = tta.precisions(Yte, lsh)
        certified = None
        if mode == "norm":  # rows whose answer the bound proves exact
            H = clf._hidden(clf._validate_X_predict(Xte), args.threads)
            _, scores = clf._norm_index.topk(H, 5, args.threads)
            certified = float(np.mean(clf._norm_index.certified(H, scores)))
        rows.append({"setting": setting, "build_s": build_s, "certified": certified,
                     "exact_top1_found": float(np.mean(lsh[:, 0] == exact[:, 0])),
                     "p1_lsh": p1, "p5_lsh": p5, "lsh_rows_s": Xte.shape[0] / t_lsh,
                     "speedup": t_exact / t_lsh})
    return {"data": name, "n_train": Xtr.shape[0], "n_test": Xte.shape[0],
            "n_labels": Ytr.shape[1], "epochs": clf.n_iter_, "fit_s": fit_s,
            "training": clf._output_mode(), "hash_family": args.hash_family,
            "p1_exact": p1_exact, "p5_exact": p5_exact,
            "exact_rows_s": Xte.shape[0] / t_exact,
            "distinct_exact_top1": int(np.unique(exact[:, 0]).size), "settings": rows,
            "simhash_bound": (simhash_bound(clf, Xte, args.threads) if args.simhash_bound
                              else None)}


# setting keys that have a column of the table; any other is listed after the row
_SHOWN = {"inference", "inference_n_codes", "inference_n_tables", "inference_bucket_size",
          "inference_n_clusters", "inference_n_probe", "inference_budget"}


def table(result):
    """The printed report of one data set's result (a list of lines)."""
    r = result
    lines = [f"{r['data']}: {r['n_train']:,} training / {r['n_test']:,} test rows, "
             f"{r['n_labels']:,} labels; {r['epochs']} epochs at the defaults "
             f"({r['training']} training, {r['fit_s']:.1f} s), hash_family="
             f"{r['hash_family']!r}; exact: P@1 {r['p1_exact']:.4f}, P@5 {r['p5_exact']:.4f}, "
             f"{r['exact_rows_s']:,.0f} rows/s, {r['distinct_exact_top1']} distinct top-1 "
             "labels", "",
             f"{'mode':>4} {'K/C':>5} {'L/P':>4} {'bucket':>7} {'top-1 found':>12} {'P@1':>8} "
             f"{'P@5':>8} {'rows/s':>9} {'speed-up':>9} {'build s':>8}  target"]
    for row in r["settings"]:
        s = row["setting"]
        ok = (row["exact_top1_found"] >= TARGET_FOUND and row["speedup"] >= TARGET_SPEEDUP
              and r["p1_exact"] - row["p1_lsh"] <= TARGET_P1_DROP)
        mode = s.get("inference", "lsh")
        if mode == "ivf":
            first, second = s.get("inference_n_clusters", "auto"), s.get("inference_n_probe", "auto")
        elif mode == "norm":  # the share of labels scored; certified exact rows
            first = s.get("inference_budget", "auto")
            second = "-" if row.get("certified") is None else f"{row['certified']:.2f}"
        else:
            first, second = s.get("inference_n_codes", "-"), s.get("inference_n_tables", "-")
        lines.append(f"{s.get('inference', 'lsh'):>4} {first:>5} {second:>4} "
                     f"{str(s.get('inference_bucket_size', '-')):>7} "
                     f"{row['exact_top1_found']:>12.3f} {row['p1_lsh']:>8.4f} "
                     f"{row['p5_lsh']:>8.4f} {row['lsh_rows_s']:>9,.0f} "
                     f"{row['speedup']:>8.1f}x {row['build_s']:>8.2f}  "
                     f"{'met' if ok else 'NOT met'}"
                     + (f"  ({', '.join(f'{k}={v}' for k, v in s.items() if k not in _SHOWN)})"
                        if set(s) - _SHOWN else ""))
    bound = r.get("simhash_bound")
    if bound:
        q = ", ".join(f"{v:.3f}" for v in bound["label_cosine_quantiles"])
        lines += ["", "Ideal SimHash over the MIPS transform (simhash_bound): median cosine of "
                  f"a row's exact top-1 label {bound['median_top1_cosine']:.3f}; of all labels "
                  f"(50/90/99/99.9% quantiles) {q}", "",
                  f"{'L at most':>10} {'K':>3} {'L':>12} {'top-1 found':>12} "
                  f"{'labels scored':>14} {'work':>8} {'speed bound':>12}"]
        for row in bound["best"]:
            cap = "no cap" if row["max_tables"] is None else f"{row['max_tables']:,}"
            if row["share"] is None:
                lines.append(f"{cap:>10} {'-':>3} {'-':>12} {'-':>12} {'-':>14} {'-':>8} "
                             f"{'-':>12}")
            else:
                lines.append(f"{cap:>10} {row['K']:>3} {row['L']:>12,} {row['found']:>12.3f} "
                             f"{row['share']:>14.4f} {row['work']:>8.4f} "
                             f"{1 / row['work']:>11.1f}x")
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="text8,amazon", help="comma-separated: text8, amazon")
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes (text8 2,000 positions, amazon 3,000 rows), 1 epoch")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 3)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hash-family", default="mips",
                   choices=["auto", "dwta", "wta", "simhash", "doph", "mips"])
    p.add_argument("--settings", type=json.loads, default=None,
                   help="JSON list of dicts of inference_* parameters")
    p.add_argument("--simhash-bound", action="store_true",
                   help="also report simhash_bound: the fewest labels ideal SimHash tables "
                        "must score to find 90%% of the exact top-1 labels")
    p.add_argument("--out", default=None, help="write the result as JSON (and .txt)")
    args = p.parse_args(argv)
    args.data = [d for d in args.data.split(",") if d]
    unknown = set(args.data) - {"text8", "amazon"}
    if unknown:
        p.error(f"--data: unknown {sorted(unknown)}")
    q = args.quick
    args.text8_train, args.text8_test = (2000, 500) if q else (400_000, 5000)
    args.amazon_train, args.amazon_test = (3000, 300) if q else (100_000, 2000)
    if args.epochs is None:
        args.epochs = 1 if q else 3
    if args.settings is None:
        args.settings = DEFAULT_SETTINGS[:2] if q else DEFAULT_SETTINGS
    return args


def main(argv=None):
    import bench_time_to_accuracy as tta
    args = parse_args(argv)
    command = " ".join(["bench_lsh_inference.py"] + (sys.argv[1:] if argv is None else argv))
    result = {"machine": tta.machine(), "command": command, "threads": args.threads,
              "runs": [run_data(name, args) for name in args.data]}
    report(result, table, args.out)
    return result


def report(result, table, out):
    """Print the ``table`` lines of every run of ``result`` and, with ``out``, write
    ``result`` there as JSON and the machine, the command and the tables beside it
    as ``.txt`` (the benchmarks' record format)."""
    text = []
    for run in result["runs"]:
        text += table(run) + [""]
    print("\n".join(text))
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.splitext(out)[0] + ".txt", "w") as f:
            f.write(f"machine: {json.dumps(result['machine'])}\n"
                    f"command: {result['command']}\n\n" + "\n".join(text))


if __name__ == "__main__":
    main()
