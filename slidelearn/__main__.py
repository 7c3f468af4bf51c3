"""Command line of slidelearn.

``slidelearn demo`` trains a :class:`~slidelearn.SlideClassifier` on a generated
extreme-classification problem and prints P@1/P@3/P@5, training time and
samples/s: the library's main job on an embedded default, with no data to
download.
"""
import argparse
import sys
import time

import numpy as np


def demo(n_samples=20000, n_features=20000, n_labels=20000, epochs=3, n_jobs=None,
         random_state=0, out=None):
    """Train SlideClassifier on a generated problem and print its figures.

    Parameters
    ----------
    n_samples : int, default=20000
        Rows generated; 90% train, 10% test.
    n_features : int, default=20000
        Input features.
    n_labels : int, default=20000
        Labels (output neurons).
    epochs : int, default=3
        Training epochs.
    n_jobs : int or None, default=None
        Threads (None: all usable cores).
    random_state : int, default=0
        Seed of the data and the model.
    out : file-like, default=None
        Where the report is written (None: standard output).

    Returns
    -------
    results : dict
        ``p@1``, ``p@3``, ``p@5``, ``train_seconds`` and ``samples_per_second``.

    Examples
    --------
    >>> import io
    >>> from slidelearn.__main__ import demo
    >>> res = demo(n_samples=2000, n_features=1000, n_labels=500, epochs=2, out=io.StringIO())
    >>> sorted(res)
    ['p@1', 'p@3', 'p@5', 'samples_per_second', 'train_seconds']
    """
    from slidelearn import SlideClassifier
    from slidelearn.datasets import make_extreme_classification
    from slidelearn.metrics import precision_at_k

    out = sys.stdout if out is None else out

    t0 = time.perf_counter()
    X, Y = make_extreme_classification(n_samples=n_samples, n_features=n_features,
                                       n_labels=n_labels, random_state=random_state)
    n_train = int(0.9 * n_samples)
    Xtr, Ytr, Xte, Yte = X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]
    print(f"Generated {n_samples:,} rows x {n_features:,} features, {n_labels:,} labels "
          f"({Y.nnz / n_samples:.1f} labels/row, {X.nnz / n_samples:.0f} non-zeros/row) in "
          f"{time.perf_counter() - t0:.1f} s", file=out)
    # Many labels with few examples each: no L2 penalty and no step decay (the
    # defaults are set for small, easily over-fitted label sets such as Bibtex).
    clf = SlideClassifier(max_iter=epochs, n_jobs=n_jobs, random_state=random_state,
                          alpha=0.0, learning_rate_decay=1.0, tol=0.0)
    t0 = time.perf_counter()
    clf.fit(Xtr, Ytr)
    train_s = time.perf_counter() - t0
    labels, _ = clf.predict_topk(Xte, k=5)
    res = {f"p@{k}": float(precision_at_k(Yte, labels, k=k)) for k in (1, 3, 5)}
    res["train_seconds"] = train_s
    res["samples_per_second"] = n_train * clf.n_iter_ / train_s
    print(f"SlideClassifier: {clf.n_iter_} epochs on {n_train:,} rows with {clf.n_threads_} "
          f"thread(s), {clf.mean_active_:.0f} of {n_labels:,} output neurons active per sample",
          file=out)
    print(f"training time {train_s:.1f} s, {res['samples_per_second']:,.0f} samples/s", file=out)
    print(f"test P@1 {res['p@1']:.4f}  P@3 {res['p@3']:.4f}  P@5 {res['p@5']:.4f}", file=out)
    return res


def main(argv=None):
    """Entry point of the ``slidelearn`` console command.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        Exit status.

    Examples
    --------
    >>> from slidelearn.__main__ import main
    >>> main(["demo", "--n-samples", "1000", "--n-features", "500", "--n-labels", "200",
    ...       "--epochs", "1"])  # doctest: +ELLIPSIS
    Generated ...
    0
    """
    parser = argparse.ArgumentParser(
        prog="slidelearn", description="Sub-linear deep learning on CPUs.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train SlideClassifier on a generated extreme "
                                    "classification problem and print P@k and speed")
    p.add_argument("--n-samples", type=int, default=20000, help="rows to generate (90%% train)")
    p.add_argument("--n-features", type=int, default=20000, help="input features")
    p.add_argument("--n-labels", type=int, default=20000, help="labels (output neurons)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs")
    p.add_argument("--n-jobs", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--random-state", type=int, default=0, help="seed")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.n_samples, args.n_features, args.n_labels, args.epochs, args.n_jobs,
             args.random_state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
