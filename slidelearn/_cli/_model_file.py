"""The model files of ``slidelearn train``: what they hold, writing and checked reading.

A model file is a joblib pickle of a dict::

    {"format": "slidelearn-xc-model", "format_version": 1,
     "slidelearn_version": "...", "estimator": <fitted SlideClassifier>,
     "n_features": int, "n_labels": int, "n_train_rows": int,
     "label_counts": int64 array of n_labels, "train_file": absolute path}

``n_features`` and ``n_labels`` are the sizes of the training file's header (test
files narrower than them are widened); ``label_counts`` and ``n_train_rows`` give the
propensities of PSP@k. :func:`load_model` also takes a multi-label
:class:`~slidelearn.SlideClassifier` saved with ``joblib.dump``. Everything a file
could get wrong (another object, a newer format, sizes or weights that do not match)
is a :class:`~slidelearn._cli._io.CLIError`: the kernels index the weights without
bounds checks, so a damaged file must not reach them.
"""
import os

import numpy as np

from slidelearn._cli._io import CLIError

__all__ = ["FORMAT", "FORMAT_VERSION", "Model", "load_model", "save_model"]

# Identifies the files written by ``slidelearn train``.
FORMAT = "slidelearn-xc-model"
# Raised when a change makes files unreadable by older versions (they refuse newer ones).
FORMAT_VERSION = 1


class Model:
    """What ``evaluate`` and ``predict`` need from a model file.

    Attributes
    ----------
    estimator : SlideClassifier
        The fitted, multi-label estimator.
    n_features, n_labels : int
        Sizes of the training data.
    n_train_rows : int or None
        Rows of the training file (None for a plain joblib-saved estimator).
    label_counts : ndarray of int64 or None
        Training rows per label (None for a plain joblib-saved estimator).
    """

    def __init__(self, estimator, n_features, n_labels, n_train_rows=None,
                 label_counts=None):
        self.estimator = estimator
        self.n_features = int(n_features)
        self.n_labels = int(n_labels)
        self.n_train_rows = n_train_rows
        self.label_counts = label_counts


def save_model(path, estimator, X, Y, train_file, compress=0):
    """Write ``estimator``, fitted on ``X, Y`` (read from ``train_file``), to ``path``.

    The file is written under a temporary name and renamed, so an interrupted or
    failed write leaves no partial model under ``path``.

    Parameters
    ----------
    path : str
        The model file (overwritten).
    estimator : SlideClassifier
        Fitted on ``X`` and the indicator matrix ``Y``.
    X, Y : scipy.sparse.csr_matrix
        The training data (their sizes and label counts are saved, not the data).
    train_file : str
        Where the data was read from (saved as an absolute path).
    compress : int, default=0
        joblib compression level, 0 to 9.

    Examples
    --------
    >>> import os, tempfile
    >>> from slidelearn import SlideClassifier
    >>> from slidelearn.datasets import make_extreme_classification
    >>> X, Y = make_extreme_classification(n_samples=200, n_features=50, n_labels=20,
    ...                                    random_state=0)
    >>> clf = SlideClassifier(max_iter=1, n_jobs=1, random_state=0).fit(X, Y)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.joblib")
    >>> save_model(path, clf, X, Y, "train.txt")
    >>> model = load_model(path)
    >>> model.n_features, model.n_labels, model.n_train_rows, int(model.label_counts.sum())
    (50, 20, 200, ...)
    """
    import joblib

    from slidelearn import __version__

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "slidelearn_version": __version__,
        "estimator": estimator,
        "n_features": int(X.shape[1]),
        "n_labels": int(Y.shape[1]),
        "n_train_rows": int(X.shape[0]),
        "label_counts": np.diff(Y.tocsc().indptr).astype(np.int64),
        "train_file": os.path.abspath(train_file),
    }
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        joblib.dump(payload, tmp, compress=compress)
        os.replace(tmp, path)
    except OSError as exc:
        raise CLIError(f"cannot write MODEL_FILE {path!r}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_model(path):
    """Read a file written by :func:`save_model` (or a joblib-saved multi-label
    SlideClassifier) and check it; anything else is a
    :class:`~slidelearn._cli._io.CLIError`.

    Parameters
    ----------
    path : str
        The model file.

    Returns
    -------
    model : Model

    Examples
    --------
    >>> try:
    ...     load_model("no-such-model.joblib")
    ... except CLIError as exc:
    ...     print(exc)
    MODEL_FILE 'no-such-model.joblib': no such file
    """
    import joblib

    from slidelearn import SlideClassifier

    if not os.path.exists(path):
        raise CLIError(f"MODEL_FILE {path!r}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"MODEL_FILE {path!r} is a directory, not a file")
    try:
        obj = joblib.load(path)
    except OSError as exc:
        raise CLIError(f"cannot read MODEL_FILE {path!r}: {exc.strerror or exc}") from None
    except Exception as exc:  # unpickling raises many kinds of errors
        raise CLIError(
            f"{path} is not a slidelearn model file (joblib cannot read it: "
            f"{type(exc).__name__}); write one with 'slidelearn train'"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return _from_payload(obj, path)
    if isinstance(obj, SlideClassifier):
        if not hasattr(obj, "classes_"):
            raise CLIError(f"{path} holds a SlideClassifier that is not fitted")
        _check_weights(obj, path)
        classes = np.asarray(obj.classes_)
        if not obj.multilabel_ or not np.array_equal(classes, np.arange(classes.size)):
            raise CLIError(
                f"{path} holds a SlideClassifier fitted on 1-D class labels; Extreme "
                "Classification Repository files need a model fitted on a label "
                "indicator matrix"
            )
        return Model(obj, obj.n_features_in_, classes.size)
    raise CLIError(
        f"{path} is not a slidelearn model file (it holds a {type(obj).__name__}); "
        "write one with 'slidelearn train'"
    )


def _from_payload(obj, path):
    """The Model of a dict written by save_model, after checking its version and sizes."""
    from slidelearn import SlideClassifier

    version = obj.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CLIError(f"{path} is damaged: its model format version is {version!r}")
    if version > FORMAT_VERSION:
        raise CLIError(
            f"{path} was written by a newer slidelearn (model format version "
            f"{version!r}, this one reads up to {FORMAT_VERSION}); upgrade slidelearn"
        )
    est = obj.get("estimator")
    if not isinstance(est, SlideClassifier) or not hasattr(est, "classes_"):
        raise CLIError(f"{path} is damaged: it holds no fitted SlideClassifier")
    _check_weights(est, path)
    try:
        model = Model(est, obj["n_features"], obj["n_labels"], int(obj["n_train_rows"]),
                      np.asarray(obj["label_counts"], dtype=np.int64))
    except (KeyError, TypeError, ValueError) as exc:
        raise CLIError(f"{path} is damaged: {type(exc).__name__} {exc}") from None
    if (model.n_features != est.n_features_in_ or model.n_labels != len(est.classes_)
            or model.label_counts.shape != (model.n_labels,)):
        raise CLIError(f"{path} is damaged: its sizes do not match its estimator")
    return model


def _check_weights(est, path):
    """The weight arrays of a loaded SlideClassifier have the shapes its sizes give."""
    try:
        m = est._state
        sizes = [int(h) for h in m.sizes]
        n_out = len(est.classes_)
        if getattr(est, "_label_slice", None) is not None:
            lo, hi = est._label_slice
            n_out = hi - lo  # a model spread over MPI ranks holds its slice
        expected = {"W_in": (int(est.n_features_in_), sizes[0]),
                    "W_out": (n_out, sizes[-1]), "b_out": (n_out,)}
        bad = [k for k, shape in expected.items() if np.shape(getattr(m, k)) != shape]
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise CLIError(f"{path} is damaged: its estimator has no usable weights "
                       f"({type(exc).__name__}: {exc})") from None
    if bad:
        raise CLIError(f"{path} is damaged: its {', '.join(bad)} weights do not have "
                       "the shapes of its model")
