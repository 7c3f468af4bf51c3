"""The commands of ``slidelearn``: demo, train, evaluate and predict, and :func:`main`."""
import contextlib
import os
import re
import sys
import time

import numpy as np

from slidelearn._cli._io import CLIError, check_writable, load_xc
from slidelearn._cli._model_file import load_model, save_model
from slidelearn._cli._parser import build_parser
from slidelearn._cli._progress import EpochProgress, LinesAbove, Progress

__all__ = ["demo", "main"]


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

    Raises
    ------
    ValueError
        If ``n_samples`` is below 2 (the train and test parts need a row each),
        another size or ``epochs`` is below 1, or ``random_state`` is not a seed.

    Examples
    --------
    >>> import io
    >>> from slidelearn._cli import demo
    >>> res = demo(n_samples=2000, n_features=1000, n_labels=500, epochs=2, out=io.StringIO())
    >>> sorted(res)
    ['p@1', 'p@3', 'p@5', 'samples_per_second', 'train_seconds']
    """
    from slidelearn import SlideClassifier
    from slidelearn.datasets import make_extreme_classification
    from slidelearn.metrics import precision_at_k

    out = sys.stdout if out is None else out
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 (90% train, 10% test, each at "
                         f"least one row), got {n_samples}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")

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
    # fewer than 5 labels: the ranking padded with -1 (no label), as evaluate does
    ranked = np.full((labels.shape[0], 5), -1, dtype=np.int64)
    ranked[:, :labels.shape[1]] = labels
    res = {f"p@{k}": float(precision_at_k(Yte, ranked, k=k, kind="topk")) for k in (1, 3, 5)}
    res["train_seconds"] = train_s
    res["samples_per_second"] = n_train * clf.n_iter_ / train_s
    print(f"SlideClassifier: {clf.n_iter_} epochs on {n_train:,} rows with {clf.n_threads_} "
          f"thread(s), {clf.mean_active_:.0f} of {n_labels:,} output neurons active per sample",
          file=out)
    print(f"training time {train_s:.1f} s, {res['samples_per_second']:,.0f} samples/s", file=out)
    print(f"test P@1 {res['p@1']:.4f}  P@3 {res['p@3']:.4f}  P@5 {res['p@5']:.4f}", file=out)
    return res


# --------------------------------------------------------------------------- helpers
def _info(args, message):
    """Information line on standard error, unless --quiet."""
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def _progress_enabled(args):
    if args.progress is not None:
        return args.progress
    return not args.quiet and sys.stderr.isatty()


def _fit_test_shape(X, Y, model, test_path, check_labels):
    """Test matrices widened to the model's features and labels; more is an error."""
    import scipy.sparse as sp

    if X.shape[1] > model.n_features:
        raise CLIError(
            f"{test_path} has {X.shape[1]:,} features (header) but the model was trained "
            f"on {model.n_features:,}"
        )
    if check_labels and Y.shape[1] > model.n_labels:
        raise CLIError(
            f"{test_path} has {Y.shape[1]:,} labels (header) but the model was trained "
            f"on {model.n_labels:,}"
        )
    if X.shape[1] < model.n_features:
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], model.n_features))
    if check_labels and Y.shape[1] < model.n_labels:
        Y = sp.csr_matrix((Y.data, Y.indices, Y.indptr), shape=(Y.shape[0], model.n_labels))
    return X, Y


def _set_params(args, estimator, params):
    """set_params + the estimator's own validation: a value the option types let
    through but the estimator refuses (e.g. a combination) is a usage error."""
    estimator.set_params(**params)
    try:
        estimator._validate_params()
    except ValueError as exc:
        msg = str(exc)
        m = re.search(r"The '(\w+)' parameter", msg)
        flag = f"argument --{m.group(1).replace('_', '-')}: " if m else ""
        args.subparser.error(flag + msg)


def _inference_params(args):
    params = {"n_jobs": args.n_jobs}
    for name in ("inference_threshold", "inference_max_candidates", "inference_head_labels"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    return params


def _predict_blocks(args, model, X, k, desc):
    """Yield ``(start, labels, scores)`` over blocks of rows, with a progress bar."""
    clf = model.estimator
    n = X.shape[0]
    progress = Progress(n, desc, enabled=_progress_enabled(args), unit="rows")
    try:
        for start in range(0, n, args.block_rows):
            stop = min(n, start + args.block_rows)
            labels, scores = clf.predict_topk(X[start:stop], k=k, inference=args.inference)
            progress.update(stop - start)
            yield start, labels, scores
    finally:
        progress.close()


def _check_trainable(X, Y, path):
    """The training data has rows, features and a labelled row; returns the number of
    labelled rows (those the estimator trains on)."""
    if Y.shape[1] == 0:
        raise CLIError(f"{path} declares no label (n_labels=0 in the header)")
    if X.shape[0] == 0:
        raise CLIError(f"{path} has no data rows (n_points=0 in the header)")
    if X.shape[1] == 0:
        raise CLIError(f"{path} declares no feature (n_features=0 in the header)")
    n_labelled = int(np.count_nonzero(np.diff(Y.indptr)))
    if n_labelled == 0:
        raise CLIError(f"{path} has no row with a label: there is nothing to learn from")
    return n_labelled


# --------------------------------------------------------------------------- commands
def _cmd_demo(args):
    demo(args.n_samples, args.n_features, args.n_labels, args.epochs, args.n_jobs,
         args.random_state)
    return 0


def _cmd_train(args):
    from slidelearn import SlideClassifier

    params = {name: getattr(args, name) for name in args.estimator_params}
    # nargs="+" gives lists; the estimator's sequence defaults are tuples
    # nargs="+" gives lists; a lone word ("auto") is the parameter's own string value
    params = {k: (v[0] if len(v) == 1 and isinstance(v[0], str) else tuple(v))
              if isinstance(v, list) else v for k, v in params.items()}
    clf = SlideClassifier()
    _set_params(args, clf, params)
    check_writable(args.model_file, "MODEL_FILE")

    t0 = time.perf_counter()
    X, Y = load_xc(args.train_file, "TRAIN_FILE")
    _info(args, f"Loaded {args.train_file}: {X.shape[0]:,} rows, {X.shape[1]:,} features, "
                f"{Y.shape[1]:,} labels in {time.perf_counter() - t0:.2f} s")
    n_labelled = _check_trainable(X, Y, args.train_file)

    progress = Progress(clf.max_iter, "train", enabled=_progress_enabled(args),
                        unit="epochs")
    clf.set_params(callback=EpochProgress(progress), verbose=1 if args.verbose else 0)
    # The estimator prints its verbose lines on standard output: they go to standard
    # error, above the bar, so that standard output holds the results only.
    lines = contextlib.redirect_stdout(LinesAbove(progress)) if args.verbose else \
        contextlib.nullcontext()
    t0 = time.perf_counter()
    try:
        with lines:
            clf.fit(X, Y)
        train_s = time.perf_counter() - t0
        if clf.n_iter_ < clf.max_iter:
            progress.note += " (stopped early)"
    except MemoryError as exc:  # the header's sizes set the size of the model
        raise CLIError(f"not enough memory for a model of {X.shape[1]:,} features and "
                       f"{Y.shape[1]:,} labels ({args.train_file}'s header): "
                       f"{exc or 'allocation failed'}") from None
    finally:
        progress.close()
        # the saved model must not hold the bar (nor print when used again)
        clf.set_params(callback=None, verbose=0)

    save_model(args.model_file, clf, X, Y, args.train_file, compress=args.compress)
    out = sys.stdout
    rate = n_labelled * clf.n_iter_ / max(train_s, 1e-9)
    print(f"SlideClassifier: {clf.n_iter_} epochs on {n_labelled:,} labelled rows with "
          f"{clf.n_threads_} thread(s), {clf.mean_active_:.0f} of {Y.shape[1]:,} output "
          f"neurons active per sample", file=out)
    print(f"training time {train_s:.1f} s, {rate:,.0f} samples/s", file=out)
    size = os.path.getsize(args.model_file)
    print(f"model saved to {args.model_file} ({size / 2**20:.1f} MiB)", file=out)
    return 0


def _propensities(args, model):
    """Jain et al. propensities from the saved or --train-file label counts, with the
    number of training rows and where the counts come from; None when unknown."""
    from slidelearn.metrics import _jain_from_counts

    if args.train_file is not None:
        _, Ytr = load_xc(args.train_file, "--train-file")
        if Ytr.shape[1] > model.n_labels:
            raise CLIError(
                f"{args.train_file} has {Ytr.shape[1]:,} labels (header) but the model was "
                f"trained on {model.n_labels:,}"
            )
        counts = np.zeros(model.n_labels, dtype=np.int64)
        counts[: Ytr.shape[1]] = np.diff(Ytr.tocsc().indptr)
        n_train, source = Ytr.shape[0], args.train_file
    elif model.label_counts is not None:
        counts, n_train, source = model.label_counts, model.n_train_rows, "the model file"
    else:
        return None, None, None
    try:
        return (_jain_from_counts(counts, n_train, args.propensity_a, args.propensity_b),
                n_train, source)
    except ValueError as exc:
        raise CLIError(f"cannot compute propensities: {exc}") from None


def _cmd_evaluate(args):
    from slidelearn.metrics import precision_at_k, propensity_scored_precision_at_k

    out = sys.stdout
    ks = sorted(set(args.k))
    model = load_model(args.model_file)
    _set_params(args, model.estimator, _inference_params(args))
    propensities, n_train, source = _propensities(args, model)

    t0 = time.perf_counter()
    X, Y = load_xc(args.test_file, "TEST_FILE")
    _info(args, f"Loaded {args.test_file}: {X.shape[0]:,} rows, {X.shape[1]:,} features, "
                f"{Y.shape[1]:,} labels in {time.perf_counter() - t0:.2f} s")
    X, Y = _fit_test_shape(X, Y, model, args.test_file, check_labels=True)
    if X.shape[0] == 0:
        raise CLIError(f"{args.test_file} has no rows to evaluate")

    k_max = ks[-1]
    ranked = np.full((X.shape[0], k_max), -1, dtype=np.int64)
    t0 = time.perf_counter()
    for start, labels, _ in _predict_blocks(args, model, X, k_max, "evaluate"):
        ranked[start: start + labels.shape[0], : labels.shape[1]] = labels
    pred_s = time.perf_counter() - t0
    mode = args.inference or model.estimator.inference
    print(f"{X.shape[0]:,} rows of {args.test_file}, {mode} inference: "
          f"{pred_s:.2f} s, {X.shape[0] / max(pred_s, 1e-9):,.0f} rows/s", file=out)
    if propensities is not None:
        print(f"PSP@k: Jain et al. propensities (A={args.propensity_a:g}, "
              f"B={args.propensity_b:g}) from the label counts of {n_train:,} training "
              f"rows ({source})", file=out)
    else:
        _info(args, "PSP@k skipped: the model file has no training label counts "
                    "(pass --train-file)")
    for k in ks:
        line = f"P@{k} {precision_at_k(Y, ranked, k, kind='topk'):.4f}"
        if propensities is not None:
            psp = propensity_scored_precision_at_k(Y, ranked, propensities, k, kind="topk")
            line += f"  PSP@{k} {psp:.4f}"
        print(line, file=out)
    return 0


def _cmd_predict(args):
    out_path = args.output_file
    model = load_model(args.model_file)
    _set_params(args, model.estimator, _inference_params(args))
    t0 = time.perf_counter()
    X, Y = load_xc(args.test_file, "TEST_FILE")
    _info(args, f"Loaded {args.test_file}: {X.shape[0]:,} rows, {X.shape[1]:,} features "
                f"in {time.perf_counter() - t0:.2f} s")
    X, _ = _fit_test_shape(X, Y, model, args.test_file, check_labels=False)

    if out_path == "-":
        stream, close = sys.stdout, False
    else:
        check_writable(out_path, "OUTPUT_FILE")
        try:
            stream, close = open(out_path, "w", encoding="ascii", newline="\n"), True
        except OSError as exc:
            raise CLIError(f"cannot write OUTPUT_FILE {out_path!r}: "
                           f"{exc.strerror or exc}") from None
    done = False
    t0 = time.perf_counter()
    try:
        try:
            for _, labels, scores in _predict_blocks(args, model, X, args.k, "predict"):
                lines = [" ".join(f"{lab}:{s:.6g}" for lab, s in zip(row_l, row_s))
                         for row_l, row_s in zip(labels.tolist(), scores.tolist())]
                if lines:
                    stream.write("\n".join(lines) + "\n")
            stream.flush()
        finally:
            if close:
                stream.close()  # (the data left in the buffer is written here)
        done = True
    except OSError as exc:
        raise CLIError(f"cannot write OUTPUT_FILE {out_path!r}: "
                       f"{exc.strerror or exc}") from None
    finally:
        if close and not done and os.path.exists(out_path):
            os.remove(out_path)
    dt = time.perf_counter() - t0
    _info(args, f"Wrote the top {min(args.k, model.n_labels)} labels of {X.shape[0]:,} rows "
                f"to {out_path} in {dt:.2f} s ({X.shape[0] / max(dt, 1e-9):,.0f} rows/s)")
    return 0


_COMMANDS = {"demo": _cmd_demo, "train": _cmd_train, "evaluate": _cmd_evaluate,
             "predict": _cmd_predict}


def main(argv=None):
    """Entry point of the ``slidelearn`` console command.

    Problems with the files (missing, malformed, not a model, shapes that
    do not match the model), data the estimator cannot learn from and a model
    too large for the memory are reported as one line ``slidelearn: error:
    ...`` on standard error with exit status 1 (a malformed file as
    ``FILE, line N: problem``); invalid options print the usage and exit with
    status 2 (``SystemExit``).

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
    >>> from slidelearn._cli import main
    >>> main(["demo", "--n-samples", "1000", "--n-features", "500", "--n-labels", "200",
    ...       "--epochs", "1"])  # doctest: +ELLIPSIS
    Generated ...
    0
    >>> main(["evaluate", "no-such-model.joblib", "test.txt"])
    1
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (CLIError, ValueError) as exc:  # ValueError: e.g. data the estimator refuses
        sys.stdout.flush()
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # e.g. a header declaring billions of features
        sys.stdout.flush()
        print(f"{parser.prog}: error: not enough memory: {exc or 'allocation failed'}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted", file=sys.stderr)
        return 130
