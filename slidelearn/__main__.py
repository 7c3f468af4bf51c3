"""Command line of slidelearn.

``slidelearn demo`` trains a :class:`~slidelearn.SlideClassifier` on a generated
extreme-classification problem and prints P@1/P@3/P@5, training time and
samples/s: the library's main job on an embedded default, with no data to
download.

``slidelearn train``, ``slidelearn evaluate`` and ``slidelearn predict`` work on
files in the Extreme Classification Repository text format (read by
:func:`slidelearn.datasets.load_xc_repository`): a header line
``n_points n_features n_labels``, then one line ``l1,l2 f:v f:v ...`` per point,
with 0-based label and feature indices::

    slidelearn train train.txt model.joblib --max-iter 5
    slidelearn evaluate model.joblib test.txt -k 1 3 5
    slidelearn predict model.joblib test.txt predictions.txt -k 5

``train`` saves, with joblib, the fitted estimator together with the numbers of
features and labels of the training file and its label counts (the
propensities of PSP@k are estimated from them). ``evaluate`` prints P@k and
PSP@k; ``predict`` writes one line ``label:score label:score ...`` per row.
``slidelearn COMMAND --help`` lists every option.
"""
import argparse
import contextlib
import inspect
import io
import math
import os
import re
import sys
import textwrap
import time

import numpy as np

# Identifies the files written by ``slidelearn train``.
_MODEL_FORMAT = "slidelearn-xc-model"
_MODEL_FORMAT_VERSION = 1


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
    >>> from slidelearn.__main__ import demo
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
class _CLIError(Exception):
    """A problem to report as one line ``slidelearn: error: ...`` (exit status 1)."""


class _Progress:
    """A small text progress bar on a stream (by default standard error).

    Redraws in place with a carriage return, at most every ``min_interval``
    seconds except for the last step; ``close`` ends the line. Does nothing
    when ``enabled`` is false.
    """

    def __init__(self, total, desc, *, enabled, unit="", stream=None, width=24,
                 min_interval=0.1):
        self.total = max(int(total), 0)
        self.desc = desc
        self.enabled = bool(enabled)
        self.unit = unit
        self.stream = stream
        self.width = width
        self.min_interval = min_interval
        self.n = 0
        self.note = ""
        self._t0 = time.perf_counter()
        self._last_draw = -math.inf
        self._last_len = 0
        self._drawn = None
        self._closed = False
        self._draw(force=True)

    @staticmethod
    def _clock(seconds):
        if not math.isfinite(seconds):
            return "--:--"
        seconds = int(round(seconds))
        h, rem = divmod(seconds, 3600)
        m, s = divmod(rem, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"

    def _draw(self, force=False):
        if not self.enabled or self._closed:
            return
        now = time.perf_counter()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self._drawn = (self.n, self.note)
        elapsed = now - self._t0
        frac = self.n / self.total if self.total else 1.0
        filled = min(self.width, int(self.width * frac))
        bar = "#" * filled + "-" * (self.width - filled)
        if 0 < self.n < self.total and elapsed > 0:
            eta = self._clock((self.total - self.n) * elapsed / self.n)
        else:
            eta = "00:00" if self.n >= self.total else "--:--"
        unit = f" {self.unit}" if self.unit else ""
        line = (f"{self.desc}: {frac:4.0%} |{bar}| {self.n:,}/{self.total:,}{unit} "
                f"[{self._clock(elapsed)}<{eta}]")
        if self.note:
            line += f" {self.note}"
        pad = " " * max(0, self._last_len - len(line))
        self._last_len = len(line)
        stream = sys.stderr if self.stream is None else self.stream
        stream.write("\r" + line + pad)
        stream.flush()

    def update(self, n=1, note=None):
        """Advance by ``n`` steps; ``note`` replaces the text after the bar."""
        self.n = min(self.total, self.n + n)
        if note is not None:
            self.note = note
        self._draw(force=self.n >= self.total)

    def close(self, note=None):
        """Draw the final state and end the line."""
        if self._closed:
            return
        if note is not None:
            self.note = note
        if self._drawn != (self.n, self.note):
            self._draw(force=True)
        self._closed = True
        if self.enabled:
            stream = sys.stderr if self.stream is None else self.stream
            stream.write("\n")
            stream.flush()


class _EpochWatcher(io.TextIOBase):
    """Text stream that reads SlideClassifier's verbose lines during ``fit``.

    Each ``Epoch e/N: loss ...`` line advances the progress bar; every line is
    also copied to ``forward`` (when given) for ``--verbose``.
    """

    _EPOCH = re.compile(r"^Epoch (\d+)/(\d+): loss (\S+?),")

    def __init__(self, progress, forward=None):
        super().__init__()
        self.progress = progress
        self.forward = forward
        self._buf = ""

    def writable(self):
        return True

    def write(self, text):
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._line(line)
        return len(text)

    def _line(self, line):
        m = self._EPOCH.match(line)
        if m:
            epoch = int(m.group(1))
            self.progress.update(epoch - self.progress.n, note=f"loss {m.group(3)}")
        if self.forward is not None and line:
            if self.progress.enabled:
                self.forward.write("\n")  # keep the bar and the message on their own lines
            self.forward.write(line + "\n")
            self.forward.flush()

    def flush(self):
        pass


def _info(args, message):
    """Information line on standard error, unless --quiet."""
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def _progress_enabled(args):
    if args.progress is not None:
        return args.progress
    return not args.quiet and sys.stderr.isatty()


def _load_xc(path, what):
    """load_xc_repository with file and format problems turned into _CLIError."""
    from slidelearn.datasets import load_xc_repository

    try:
        return load_xc_repository(path)
    except FileNotFoundError:
        raise _CLIError(f"{what} {path!r}: no such file") from None
    except IsADirectoryError:
        raise _CLIError(f"{what} {path!r} is a directory, not a file") from None
    except OSError as exc:
        raise _CLIError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        msg = str(exc)
        sep = ", " if msg.startswith("line ") else ": "
        raise _CLIError(f"{path}{sep}{msg}") from None


def _check_writable(path, what):
    """Fail early, before long work, if ``path`` cannot be created."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise _CLIError(f"{what} {path!r} is a directory")
    if not os.path.isdir(folder):
        raise _CLIError(f"cannot write {what} {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise _CLIError(f"cannot write {what} {path!r}: folder {folder!r} is not writable")


class _Model:
    """What evaluate and predict need from a model file."""

    def __init__(self, estimator, n_features, n_labels, n_train_rows=None,
                 label_counts=None):
        self.estimator = estimator
        self.n_features = int(n_features)
        self.n_labels = int(n_labels)
        self.n_train_rows = n_train_rows
        self.label_counts = label_counts


def _load_model(path):
    """Read a file written by ``slidelearn train`` (or a joblib-saved multi-label
    SlideClassifier); anything else is a _CLIError."""
    import joblib

    from slidelearn import SlideClassifier

    if not os.path.exists(path):
        raise _CLIError(f"MODEL_FILE {path!r}: no such file")
    if os.path.isdir(path):
        raise _CLIError(f"MODEL_FILE {path!r} is a directory, not a file")
    try:
        obj = joblib.load(path)
    except OSError as exc:
        raise _CLIError(f"cannot read MODEL_FILE {path!r}: {exc.strerror or exc}") from None
    except Exception as exc:  # unpickling raises many kinds of errors
        raise _CLIError(
            f"{path} is not a slidelearn model file (joblib cannot read it: "
            f"{type(exc).__name__}); write one with 'slidelearn train'"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == _MODEL_FORMAT:
        version = obj.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise _CLIError(f"{path} is damaged: its model format version is {version!r}")
        if version > _MODEL_FORMAT_VERSION:
            raise _CLIError(
                f"{path} was written by a newer slidelearn (model format version "
                f"{version!r}, this one reads up to {_MODEL_FORMAT_VERSION}); upgrade slidelearn"
            )
        est = obj.get("estimator")
        if not isinstance(est, SlideClassifier) or not hasattr(est, "classes_"):
            raise _CLIError(f"{path} is damaged: it holds no fitted SlideClassifier")
        _check_model_arrays(est, path)
        try:
            model = _Model(est, obj["n_features"], obj["n_labels"], int(obj["n_train_rows"]),
                           np.asarray(obj["label_counts"], dtype=np.int64))
        except (KeyError, TypeError, ValueError) as exc:
            raise _CLIError(f"{path} is damaged: {type(exc).__name__} {exc}") from None
        if (model.n_features != est.n_features_in_ or model.n_labels != len(est.classes_)
                or model.label_counts.shape != (model.n_labels,)):
            raise _CLIError(f"{path} is damaged: its sizes do not match its estimator")
        return model
    if isinstance(obj, SlideClassifier):
        if not hasattr(obj, "classes_"):
            raise _CLIError(f"{path} holds a SlideClassifier that is not fitted")
        _check_model_arrays(obj, path)
        classes = np.asarray(obj.classes_)
        if not obj.multilabel_ or not np.array_equal(classes, np.arange(classes.size)):
            raise _CLIError(
                f"{path} holds a SlideClassifier fitted on 1-D class labels; Extreme "
                "Classification Repository files need a model fitted on a label "
                "indicator matrix"
            )
        return _Model(obj, obj.n_features_in_, classes.size)
    raise _CLIError(
        f"{path} is not a slidelearn model file (it holds a {type(obj).__name__}); "
        "write one with 'slidelearn train'"
    )


def _check_model_arrays(est, path):
    """The weight arrays of a loaded SlideClassifier have the shapes its sizes give:
    the kernels index them without bounds checks, so a damaged file must not reach
    them."""
    try:
        m = est._model
        sizes = [int(h) for h in m["sizes"]]
        n_out = len(est.classes_)
        if getattr(est, "_label_slice", None) is not None:
            lo, hi = est._label_slice
            n_out = hi - lo  # a model spread over MPI ranks holds its slice
        expected = {"W_in": (int(est.n_features_in_), sizes[0]),
                    "W_out": (n_out, sizes[-1]), "b_out": (n_out,)}
        bad = [k for k, shape in expected.items() if np.shape(m[k]) != shape]
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise _CLIError(f"{path} is damaged: its estimator has no usable weights "
                        f"({type(exc).__name__}: {exc})") from None
    if bad:
        raise _CLIError(f"{path} is damaged: its {', '.join(bad)} weights do not have "
                        "the shapes of its model")


def _fit_test_shape(X, Y, model, test_path, check_labels):
    """Test matrices widened to the model's features and labels; more is an error."""
    import scipy.sparse as sp

    if X.shape[1] > model.n_features:
        raise _CLIError(
            f"{test_path} has {X.shape[1]:,} features (header) but the model was trained "
            f"on {model.n_features:,}"
        )
    if check_labels and Y.shape[1] > model.n_labels:
        raise _CLIError(
            f"{test_path} has {Y.shape[1]:,} labels (header) but the model was trained "
            f"on {model.n_labels:,}"
        )
    if X.shape[1] < model.n_features:
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], model.n_features))
    if check_labels and Y.shape[1] < model.n_labels:
        Y = sp.csr_matrix((Y.data, Y.indices, Y.indptr), shape=(Y.shape[0], model.n_labels))
    return X, Y


def _set_params(args, estimator, params):
    """set_params + parameter validation; an invalid value is a usage error."""
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
    progress = _Progress(n, desc, enabled=_progress_enabled(args), unit="rows")
    try:
        for start in range(0, n, args.block_rows):
            stop = min(n, start + args.block_rows)
            labels, scores = clf.predict_topk(X[start:stop], k=k, inference=args.inference)
            progress.update(stop - start)
            yield start, labels, scores
    finally:
        progress.close()


# --------------------------------------------------------------------------- commands
def _cmd_train(args):
    import joblib

    from slidelearn import SlideClassifier, __version__

    out = sys.stdout
    params = {name: getattr(args, name) for name in _TRAIN_PARAMS}
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    clf = SlideClassifier()
    _set_params(args, clf, params)
    _check_writable(args.model_file, "MODEL_FILE")

    t0 = time.perf_counter()
    X, Y = _load_xc(args.train_file, "TRAIN_FILE")
    _info(args, f"Loaded {args.train_file}: {X.shape[0]:,} rows, {X.shape[1]:,} features, "
                f"{Y.shape[1]:,} labels in {time.perf_counter() - t0:.2f} s")
    if Y.shape[1] == 0:
        raise _CLIError(f"{args.train_file} declares no label (n_labels=0 in the header)")
    if X.shape[0] == 0:
        raise _CLIError(f"{args.train_file} has no data rows (n_points=0 in the header)")
    if X.shape[1] == 0:
        raise _CLIError(f"{args.train_file} declares no feature (n_features=0 in the "
                        "header)")
    n_labelled = int(np.count_nonzero(np.diff(Y.indptr)))
    if n_labelled == 0:
        raise _CLIError(f"{args.train_file} has no row with a label: there is nothing "
                        "to learn from")

    progress = _Progress(clf.max_iter, "train", enabled=_progress_enabled(args),
                         unit="epochs")
    watch = progress.enabled or args.verbose
    clf.set_params(verbose=1 if watch else 0)
    t0 = time.perf_counter()
    try:
        if watch:
            watcher = _EpochWatcher(progress, sys.stderr if args.verbose else None)
            with contextlib.redirect_stdout(watcher):
                clf.fit(X, Y)
        else:
            clf.fit(X, Y)
        train_s = time.perf_counter() - t0
        # Also right if the estimator's epoch lines were not recognised.
        progress.update(clf.n_iter_ - progress.n)
        if clf.n_iter_ < clf.max_iter:
            progress.note += " (stopped early)"
    except MemoryError as exc:  # the header's sizes set the size of the model
        raise _CLIError(f"not enough memory for a model of {X.shape[1]:,} features and "
                        f"{Y.shape[1]:,} labels ({args.train_file}'s header): "
                        f"{exc or 'allocation failed'}") from None
    finally:
        progress.close()
    clf.set_params(verbose=0)

    payload = {
        "format": _MODEL_FORMAT,
        "format_version": _MODEL_FORMAT_VERSION,
        "slidelearn_version": __version__,
        "estimator": clf,
        "n_features": int(X.shape[1]),
        "n_labels": int(Y.shape[1]),
        "n_train_rows": int(X.shape[0]),
        "label_counts": np.diff(Y.tocsc().indptr).astype(np.int64),
        "train_file": os.path.abspath(args.train_file),
    }
    tmp = f"{args.model_file}.partial-{os.getpid()}"
    try:
        joblib.dump(payload, tmp, compress=args.compress)
        os.replace(tmp, args.model_file)
    except OSError as exc:
        raise _CLIError(f"cannot write MODEL_FILE {args.model_file!r}: "
                        f"{exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

    rate = n_labelled * clf.n_iter_ / max(train_s, 1e-9)
    print(f"SlideClassifier: {clf.n_iter_} epochs on {n_labelled:,} labelled rows with "
          f"{clf.n_threads_} thread(s), {clf.mean_active_:.0f} of {Y.shape[1]:,} output "
          f"neurons active per sample", file=out)
    print(f"training time {train_s:.1f} s, {rate:,.0f} samples/s", file=out)
    size = os.path.getsize(args.model_file)
    print(f"model saved to {args.model_file} ({size / 2**20:.1f} MiB)", file=out)
    return 0


def _cmd_evaluate(args):
    from slidelearn.metrics import (_jain_from_counts, precision_at_k,
                                    propensity_scored_precision_at_k)

    out = sys.stdout
    ks = sorted(set(args.k))
    model = _load_model(args.model_file)
    _set_params(args, model.estimator, _inference_params(args))

    if args.train_file is not None:
        _, Ytr = _load_xc(args.train_file, "--train-file")
        if Ytr.shape[1] > model.n_labels:
            raise _CLIError(
                f"{args.train_file} has {Ytr.shape[1]:,} labels (header) but the model was "
                f"trained on {model.n_labels:,}"
            )
        counts = np.zeros(model.n_labels, dtype=np.int64)
        counts[: Ytr.shape[1]] = np.diff(Ytr.tocsc().indptr)
        n_train, source = Ytr.shape[0], args.train_file
    elif model.label_counts is not None:
        counts, n_train, source = model.label_counts, model.n_train_rows, "the model file"
    else:
        counts = None
    propensities = None
    if counts is not None:
        try:
            propensities = _jain_from_counts(counts, n_train, args.propensity_a,
                                             args.propensity_b)
        except ValueError as exc:
            raise _CLIError(f"cannot compute propensities: {exc}") from None

    t0 = time.perf_counter()
    X, Y = _load_xc(args.test_file, "TEST_FILE")
    _info(args, f"Loaded {args.test_file}: {X.shape[0]:,} rows, {X.shape[1]:,} features, "
                f"{Y.shape[1]:,} labels in {time.perf_counter() - t0:.2f} s")
    X, Y = _fit_test_shape(X, Y, model, args.test_file, check_labels=True)
    if X.shape[0] == 0:
        raise _CLIError(f"{args.test_file} has no rows to evaluate")

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
    model = _load_model(args.model_file)
    _set_params(args, model.estimator, _inference_params(args))
    t0 = time.perf_counter()
    X, Y = _load_xc(args.test_file, "TEST_FILE")
    _info(args, f"Loaded {args.test_file}: {X.shape[0]:,} rows, {X.shape[1]:,} features "
                f"in {time.perf_counter() - t0:.2f} s")
    X, _ = _fit_test_shape(X, Y, model, args.test_file, check_labels=False)

    if out_path == "-":
        stream, close = sys.stdout, False
    else:
        _check_writable(out_path, "OUTPUT_FILE")
        try:
            stream, close = open(out_path, "w", encoding="ascii", newline="\n"), True
        except OSError as exc:
            raise _CLIError(f"cannot write OUTPUT_FILE {out_path!r}: "
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
        raise _CLIError(f"cannot write OUTPUT_FILE {out_path!r}: "
                        f"{exc.strerror or exc}") from None
    finally:
        if close and not done and os.path.exists(out_path):
            os.remove(out_path)
    dt = time.perf_counter() - t0
    _info(args, f"Wrote the top {min(args.k, model.n_labels)} labels of {X.shape[0]:,} rows "
                f"to {out_path} in {dt:.2f} s ({X.shape[0] / max(dt, 1e-9):,.0f} rows/s)")
    return 0


# --------------------------------------------------------------------------- parser
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _n_jobs(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("must be a positive or a negative integer "
                                         "(-1: all cores), got 0")
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**32 - 1, got {value}")
    return value


def _compress_level(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"must be between 0 and 9, got {value}")
    return value


# SlideClassifier parameters exposed by ``slidelearn train`` (the same names, in
# --kebab-case), by group, with their help; defaults come from the estimator.
_TRAIN_GROUPS = {
    "network and optimisation": [
        ("hidden_layer_sizes", "widths of the hidden ReLU layers, first the sparse input "
                               "layer (e.g. --hidden-layer-sizes 256 128)"),
        ("max_iter", "training epochs (alias: --epochs); training may stop earlier, see "
                     "--tol"),
        ("learning_rate", "Adam step size"),
        ("learning_rate_decay", "the step size is multiplied by this factor after every "
                                "epoch"),
        ("batch_size", "samples per batch"),
        ("alpha", "L2 penalty on the updated rows of the input and output layers"),
        ("dropout", "dropout probability of the last hidden layer"),
        ("precision", "arithmetic of the output layer's dot products in training: float32, "
                      "or bfloat16 (a bf16 copy of the weights and bf16 Adam moments; "
                      "fastest on CPUs with AVX512-BF16)"),
        ("beta_1", "Adam beta_1"),
        ("beta_2", "Adam beta_2"),
        ("epsilon", "Adam epsilon"),
        ("tol", "stop when the loss (validation P@1 with --early-stopping) has not "
                "improved by this much for --n-iter-no-change epochs"),
        ("n_iter_no_change", "see --tol"),
        ("early_stopping", "hold out --validation-fraction of the rows, score P@1 on them "
                           "after each epoch and keep the best weights"),
        ("validation_fraction", "see --early-stopping"),
        ("shuffle", "shuffle the rows at every epoch | keep the rows in file order"),
    ],
    "hash tables (SLIDE sampling of the output layer)": [
        ("hash_family", "hash family of the output-layer tables"),
        ("n_codes", "K: hash codes concatenated into one bucket id per table"),
        ("n_tables", "L: number of hash tables"),
        ("bin_size", "coordinates compared by one WTA / DWTA code"),
        ("range_pow", "at most 2**RANGE_POW buckets per table"),
        ("bucket_size", "maximum neuron ids kept per bucket"),
        ("bucket_policy", "which ids a full bucket keeps"),
        ("min_active", "random output neurons are added until each training sample has at "
                       "least this many active neurons"),
        ("active_threshold", "a retrieved neuron is active only if found in at least this "
                             "many tables"),
        ("rehash_interval", "samples between two rebuilds of the tables"),
        ("rebuild_interval", "samples between two draws of new hash functions"),
        ("interval_growth", "both intervals are multiplied by this factor after each use"),
    ],
    "inference (saved with the model; evaluate and predict can override)": [
        ("inference", "rank all output neurons (exact) or only those the hash tables "
                      "retrieve (lsh)"),
        ("inference_threshold", "with lsh inference, a neuron is scored only if found in "
                                "at least this many tables"),
        ("inference_max_candidates", "with lsh inference, score at most this many retrieved "
                                     "neurons per row (default: no cap)"),
        ("inference_head_labels", "with lsh inference, also score this many of the most "
                                  "frequent training labels for every row"),
        ("inference_n_codes", "K of separate tables built after training for lsh inference "
                              "(default: use the training tables)"),
        ("inference_n_tables", "L of separate tables built after training for lsh "
                               "inference (default: use the training tables)"),
        ("inference_bucket_size", "build tables for lsh inference after training whose "
                                  "buckets keep a random sample of at most this many "
                                  "neurons (default: use the training tables)"),
    ],
    "threads and randomness": [
        ("n_jobs", "OpenMP threads (default: all usable cores; results are reproducible "
                   "with 1)"),
        ("random_state", "seed of the weights, hash functions and shuffling (default: a "
                         "fresh seed at every run)"),
    ],
}
_TRAIN_PARAMS = [name for group in _TRAIN_GROUPS.values() for name, _ in group]
_CHOICES = {
    "hash_family": ["dwta", "wta", "simhash", "doph"],
    "bucket_policy": ["fifo", "reservoir"],
    "inference": ["exact", "lsh"],
    "precision": ["float32", "bfloat16"],
}


def _estimator_defaults():
    from slidelearn import SlideClassifier

    sig = inspect.signature(SlideClassifier.__init__)
    return {name: p.default for name, p in sig.parameters.items() if name != "self"}


def _add_train_option(group, name, help_text, default):
    flag = "--" + name.replace("_", "-")
    if name == "hidden_layer_sizes":
        default = list(default)
        group.add_argument(flag, type=_positive_int, nargs="+", default=default,
                           metavar="H", help=f"{help_text} (default: "
                                             f"{' '.join(map(str, default))})")
        return
    if isinstance(default, bool):
        if default:
            on_help, off_help = help_text.split(" | ")
            group.add_argument(flag, dest=name, action="store_true", default=True,
                               help=f"{on_help} (default: on)")
            group.add_argument("--no-" + flag[2:], dest=name, action="store_false",
                               help=off_help)
        else:
            group.add_argument(flag, dest=name, action="store_true", default=False,
                               help=f"{help_text} (default: off)")
        return
    flags = [flag, "--epochs"] if name == "max_iter" else [flag]
    kwargs = {"dest": name, "default": default}
    if name in _CHOICES:
        kwargs["choices"] = _CHOICES[name]
    elif isinstance(default, float):
        kwargs["type"] = float
    else:  # int or None (all optional integers)
        kwargs["type"] = int
    shown = "" if default is None else f" (default: {default})"
    if default is None and "default:" not in help_text:
        shown = " (default: None)"
    metavar = {"n_codes": "K", "n_tables": "L"}.get(name)
    if metavar:
        kwargs["metavar"] = metavar
    group.add_argument(*flags, help=help_text + shown, **kwargs)


def _add_common_options(p):
    """--progress, --no-progress and --quiet; returns their "output" group."""
    g = p.add_argument_group("output")
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="always show progress bars on standard error (default: only when "
                        "standard error is a terminal and --quiet is not given)")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="never show progress bars")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no information lines on standard error "
                        "(results and errors are still printed)")
    return g


def _add_inference_options(p):
    g = p.add_argument_group("inference")
    g.add_argument("--inference", choices=["exact", "lsh"], default=None,
                   help="rank all output neurons (exact) or only those the hash tables "
                        "retrieve (lsh, sub-linear) (default: the model's inference "
                        "parameter, exact unless trained with --inference lsh)")
    g.add_argument("--inference-threshold", type=_positive_int, default=None, metavar="T",
                   help="with lsh inference, score a neuron only if found in at least T "
                        "tables (default: the model's value)")
    g.add_argument("--inference-max-candidates", type=_positive_int, default=None,
                   metavar="M", help="with lsh inference, score at most M retrieved neurons "
                                     "per row (default: the model's value)")
    g.add_argument("--inference-head-labels", type=_non_negative_int, default=None,
                   metavar="N", help="with lsh inference, also score the N most frequent "
                                     "training labels for every row (default: the model's "
                                     "value)")
    g.add_argument("--n-jobs", type=_n_jobs, default=None,
                   help="OpenMP threads (default: all usable cores)")
    g.add_argument("--block-rows", type=_positive_int, default=8192, metavar="N",
                   help="rows predicted at a time; the progress bar advances by blocks "
                        "(default: %(default)s)")


_MAIN_DESCRIPTION = (
    "Sub-linear deep learning on CPUs: train, evaluate and apply SLIDE extreme "
    "classifiers on Extreme Classification Repository files."
)
_TRAIN_DESCRIPTION = (
    "Fit a SlideClassifier on TRAIN_FILE and save it to MODEL_FILE; prints the training "
    "time and samples/s. The options are the estimator's parameters (same names, in "
    "--kebab-case) with its defaults."
)
_EVALUATE_DESCRIPTION = (
    "Rank the labels of every row of TEST_FILE with the model and print precision at k "
    "(P@k: correct labels among the top k, divided by k, averaged over all rows) and "
    "propensity-scored precision at k (PSP@k of Jain et al. 2016, normalised as in the "
    "Extreme Classification Repository: the sum over all rows of 1/p_l over the correct "
    "labels among the top k, divided by the same sum for the best possible ranking, "
    "which puts first the true labels of smallest propensity). Propensities: "
    "p_l = 1/(1 + C (N_l+B)^-A) with C = (ln N - 1)(B+1)^A, N the number of training "
    "rows and N_l the number of those with label l, counted at training time and saved "
    "in MODEL_FILE."
)
_PREDICT_DESCRIPTION = (
    "Write the k best labels of every row of TEST_FILE to OUTPUT_FILE, one line per row "
    "in the order of TEST_FILE: 'label:score label:score ...', best first, with 0-based "
    "label indices and the scores (logits of the output layer; the softmax is monotone in "
    "them) printed with 6 significant digits. With fewer than k labels in the model, "
    "every label is listed. The labels of TEST_FILE, if any, are ignored."
)

_FORMAT_HELP = """\
Files are in the Extreme Classification Repository text format: a header line
'n_points n_features n_labels', then one line per point: comma-separated 0-based
label indices, then blank-separated 0-based 'feature:value' pairs, e.g.
'3,17 0:1 52:0.5'.
"""

_MODEL_HELP = """\
MODEL_FILE is written by 'slidelearn train' with joblib: the fitted
SlideClassifier, the numbers of features and labels of the training file and its
label counts. It is a pickle: load only model files you trust.
"""


def _wrap(text):
    """Fill a description to 79 columns (the raw formatter keeps the epilogs' layout)."""
    return textwrap.fill(text, 79)


def build_parser():
    """Return the argument parser of the ``slidelearn`` command.

    The parser has one sub-command per job: ``demo``, ``train``,
    ``evaluate`` and ``predict``; ``parser.format_help()`` and the
    ``--help`` of each sub-command describe every option with its default.

    Returns
    -------
    parser : argparse.ArgumentParser
        The parser used by :func:`main`.

    Examples
    --------
    >>> from slidelearn.__main__ import build_parser
    >>> parser = build_parser()
    >>> args = parser.parse_args(["train", "train.txt", "model.joblib", "--epochs", "5",
    ...                           "--hidden-layer-sizes", "256", "128", "--n-codes", "6"])
    >>> args.max_iter, args.hidden_layer_sizes, args.n_codes, args.n_tables
    (5, [256, 128], 6, 50)
    >>> "PSP@k" in parser.parse_args(["evaluate", "m", "t"]).subparser.format_help()
    True
    """
    from slidelearn import __version__

    parser = argparse.ArgumentParser(
        prog="slidelearn",
        description=_wrap(_MAIN_DESCRIPTION),
        epilog=_FORMAT_HELP + "\nexamples:\n"
               "  slidelearn train train.txt model.joblib --epochs 5 --n-jobs 2\n"
               "  slidelearn evaluate model.joblib test.txt -k 1 3 5\n"
               "  slidelearn predict model.joblib test.txt predictions.txt -k 5\n"
               "\nRun 'slidelearn COMMAND --help' for the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"slidelearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # demo ---------------------------------------------------------------
    p = sub.add_parser("demo", help="train SlideClassifier on a generated extreme "
                                    "classification problem and print P@k and speed",
                       description="Train SlideClassifier on a generated extreme "
                                   "classification problem (90% train, 10% test) and "
                                   "print P@1/P@3/P@5, training time and samples/s.",
                       allow_abbrev=False)
    p.add_argument("--n-samples", type=_positive_int, default=20000,
                   help="rows to generate (90%% train, at least 2) (default: %(default)s)")
    p.add_argument("--n-features", type=_positive_int, default=20000,
                   help="input features (default: %(default)s)")
    p.add_argument("--n-labels", type=_positive_int, default=20000,
                   help="labels (output neurons) (default: %(default)s)")
    p.add_argument("--epochs", type=_positive_int, default=3,
                   help="training epochs (default: %(default)s)")
    p.add_argument("--n-jobs", type=_n_jobs, default=None,
                   help="threads (default: all usable cores)")
    p.add_argument("--random-state", type=_seed, default=0,
                   help="seed, 0 to 2**32 - 1 (default: %(default)s)")
    p.set_defaults(subparser=p)

    # train --------------------------------------------------------------
    p = sub.add_parser(
        "train", help="fit a SlideClassifier on a training file and save it",
        description=_wrap(_TRAIN_DESCRIPTION),
        epilog=_FORMAT_HELP + "\n" + _MODEL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("train_file", metavar="TRAIN_FILE", help="training data")
    p.add_argument("model_file", metavar="MODEL_FILE",
                   help="where the model is saved (overwritten)")
    defaults = _estimator_defaults()
    for title, options in _TRAIN_GROUPS.items():
        g = p.add_argument_group(title)
        for name, help_text in options:
            _add_train_option(g, name, help_text, defaults[name])
    g = _add_common_options(p)
    g.add_argument("--compress", type=_compress_level, default=0, metavar="LEVEL",
                   help="joblib compression level of MODEL_FILE, 0 (none, fastest) to 9 "
                        "(default: %(default)s)")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="print the estimator's line per epoch (loss, samples/s, active "
                        "neurons) on standard error (default: off)")
    p.set_defaults(handler=_cmd_train, subparser=p)

    # evaluate -----------------------------------------------------------
    p = sub.add_parser(
        "evaluate", help="print P@k and PSP@k of a model on a test file",
        description=_wrap(_EVALUATE_DESCRIPTION),
        epilog=_FORMAT_HELP + "\n" + _MODEL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("model_file", metavar="MODEL_FILE", help="model written by "
                                                             "'slidelearn train'")
    p.add_argument("test_file", metavar="TEST_FILE", help="test data with true labels")
    p.add_argument("-k", type=_positive_int, nargs="+", default=[1, 3, 5], metavar="K",
                   help="ranks at which P@k and PSP@k are reported (default: 1 3 5)")
    g = p.add_argument_group("propensities (PSP@k)")
    g.add_argument("--propensity-a", type=_positive_float, default=0.55, metavar="A",
                   help="A of the propensity model; 0.5 for Wikipedia and 0.6 for Amazon "
                        "data sets (default: %(default)s)")
    g.add_argument("--propensity-b", type=_positive_float, default=1.5, metavar="B",
                   help="B of the propensity model; 0.4 for Wikipedia and 2.6 for Amazon "
                        "data sets (default: %(default)s)")
    g.add_argument("--train-file", default=None, metavar="FILE",
                   help="count the training labels in this file (needed for a "
                        "SlideClassifier saved with joblib.dump rather than by 'slidelearn "
                        "train') (default: the counts saved in MODEL_FILE)")
    _add_inference_options(p)
    _add_common_options(p)
    p.set_defaults(handler=_cmd_evaluate, subparser=p)

    # predict ------------------------------------------------------------
    p = sub.add_parser(
        "predict", help="write the top-k labels of every row of a file",
        description=_wrap(_PREDICT_DESCRIPTION),
        epilog=_FORMAT_HELP + "\n" + _MODEL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("model_file", metavar="MODEL_FILE", help="model written by "
                                                             "'slidelearn train'")
    p.add_argument("test_file", metavar="TEST_FILE", help="rows to predict")
    p.add_argument("output_file", metavar="OUTPUT_FILE",
                   help="where the predictions are written (overwritten; '-' for "
                        "standard output)")
    p.add_argument("-k", type=_positive_int, default=5,
                   help="labels per row (default: %(default)s)")
    _add_inference_options(p)
    _add_common_options(p)
    p.set_defaults(handler=_cmd_predict, subparser=p)
    return parser


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
    >>> from slidelearn.__main__ import main
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
        if args.command == "demo":
            demo(args.n_samples, args.n_features, args.n_labels, args.epochs, args.n_jobs,
                 args.random_state)
            return 0
        return args.handler(args)
    except _CLIError as exc:
        sys.stdout.flush()
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # e.g. a training file the estimator cannot learn from
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


if __name__ == "__main__":
    sys.exit(main())
