"""The argument parser of the ``slidelearn`` command.

The options of ``train`` that set :class:`~slidelearn.SlideClassifier` parameters, and
those of ``evaluate`` / ``predict`` that override a saved model's inference
parameters, are made by :class:`~slidelearn._cli._params.EstimatorOptions` from the
estimator itself (defaults, constraints, docstring); this module only says which
parameters are options and in which group of the help they appear. Options of the
command line alone (files, output, demo sizes) are written here.
"""
import argparse
import textwrap
from numbers import Integral, Real

from sklearn.utils._param_validation import Interval

from slidelearn._cli._params import EstimatorOptions, interval_type, seed

__all__ = ["NOT_OPTIONS", "TRAIN_GROUPS", "build_parser"]

# SlideClassifier parameters that ``slidelearn train`` sets, by group of its help.
# Parameters in no group and not in NOT_OPTIONS get an option in a last group, so a
# new estimator parameter reaches the command line without an edit here.
TRAIN_GROUPS = {
    "network and optimisation": (
        "hidden_layer_sizes", "max_iter", "learning_rate", "learning_rate_decay",
        "batch_size", "alpha", "dropout", "precision", "beta_1", "beta_2", "epsilon",
        "tol", "n_iter_no_change", "early_stopping", "validation_fraction", "shuffle",
        "loss"),
    "sampling of the output layer (shared negatives, or SLIDE's hash tables)": (
        "negative_sampling", "hash_family", "n_codes", "n_tables", "bin_size", "range_pow",
        "bucket_size", "bucket_policy", "min_active", "active_threshold", "rehash_interval",
        "rehash_drift", "rebuild_interval", "interval_growth"),
    "inference (saved with the model; evaluate and predict can override)": (
        "inference", "inference_threshold", "inference_max_candidates",
        "inference_head_labels", "inference_n_codes", "inference_n_tables",
        "inference_bucket_size", "inference_n_clusters", "inference_n_probe",
        "inference_budget"),
    "threads and randomness": ("n_jobs", "random_state"),
}
_OTHER_GROUP = "other estimator parameters"
# Parameters ``slidelearn train`` does not set, and why.
NOT_OPTIONS = {
    "warm_start": "every run trains a new model",
    "verbose": "-v/--verbose sets it",
    "callback": "the command's progress bar is the callback",
    "comm": "MPI: for SPMD scripts, not for a command that reads one file",
    "rank_memory_budget": "MPI, as comm",
}
# Values named in the estimator's docstring (K and L of the hash tables), and aliases.
_METAVARS = {"hidden_layer_sizes": "H", "n_codes": "K", "n_tables": "L"}
_ALIASES = {"max_iter": ("--epochs",)}
# The model parameters that evaluate and predict can override, with their metavars.
_INFERENCE_OVERRIDES = {"inference": None, "inference_threshold": "T",
                        "inference_max_candidates": "M", "inference_head_labels": "N"}

_positive_int = interval_type(Interval(Integral, 1, None, closed="left"))
_positive_float = interval_type(Interval(Real, 0, None, closed="neither"))
_compress_level = interval_type(Interval(Integral, 0, 9, closed="both"))


def _n_jobs(text):
    """A thread count: positive, or negative to count back from the usable cores."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer: {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("must be a positive or a negative integer "
                                         "(-1: all cores), got 0")
    return value


_MAIN_DESCRIPTION = (
    "Sub-linear deep learning on CPUs: train, evaluate and apply SLIDE extreme "
    "classifiers on Extreme Classification Repository files."
)
_TRAIN_DESCRIPTION = (
    "Fit a SlideClassifier on TRAIN_FILE and save it to MODEL_FILE; prints the training "
    "time and samples/s. The options are the estimator's parameters (same names, in "
    "--kebab-case) with its defaults and the first sentence of their documentation."
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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' and epilogs' layout, and wraps option help without
    breaking the names of options (``--early-stopping``) at their hyphens."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _wrap(text):
    """Fill a description to 79 columns (the raw formatter keeps the epilogs' layout)."""
    return textwrap.fill(text, 79)


def _add_output_options(p):
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


def _add_inference_options(p, options):
    g = p.add_argument_group("inference")
    for name, metavar in _INFERENCE_OVERRIDES.items():
        options.add(g, name, metavar=metavar, override=True)
    g.add_argument("--n-jobs", type=_n_jobs, default=None,
                   help="OpenMP threads (default: all usable cores)")
    g.add_argument("--block-rows", type=_positive_int, default=8192, metavar="N",
                   help="rows predicted at a time; the progress bar advances by blocks "
                        "(default: %(default)s)")


def _add_train_options(p, options):
    """The estimator's parameters, by group; returns their names."""
    grouped = [name for names in TRAIN_GROUPS.values() for name in names]
    others = tuple(name for name in options.defaults
                   if name not in grouped and name not in NOT_OPTIONS)
    groups = dict(TRAIN_GROUPS, **({_OTHER_GROUP: others} if others else {}))
    for title, names in groups.items():
        g = p.add_argument_group(title)
        for name in names:
            options.add(g, name, aliases=_ALIASES.get(name, ()),
                        metavar=_METAVARS.get(name))
    return tuple(name for names in groups.values() for name in names)


def _add_demo(sub):
    p = sub.add_parser("demo", help="train SlideClassifier on a generated extreme "
                                    "classification problem and print P@k and speed",
                       description=_wrap("Train SlideClassifier on a generated extreme "
                                         "classification problem (90% train, 10% test) "
                                         "and print P@1/P@3/P@5, training time and "
                                         "samples/s."),
                       formatter_class=_HelpFormatter, allow_abbrev=False)
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
    p.add_argument("--random-state", type=seed, default=0,
                   help="seed, 0 to 2**32 - 1 (default: %(default)s)")
    p.set_defaults(subparser=p)


def _add_file_command(sub, name, summary, description):
    """A sub-command on data and model files (their formats in its epilog)."""
    p = sub.add_parser(name, help=summary, description=_wrap(description),
                       epilog=_FORMAT_HELP + "\n" + _MODEL_HELP,
                       formatter_class=_HelpFormatter, allow_abbrev=False)
    p.set_defaults(subparser=p)
    return p


def _add_model_and_test_files(p, test_help):
    p.add_argument("model_file", metavar="MODEL_FILE",
                   help="model written by 'slidelearn train'")
    p.add_argument("test_file", metavar="TEST_FILE", help=test_help)


def _add_train(sub, options):
    p = _add_file_command(sub, "train", "fit a SlideClassifier on a training file and "
                                        "save it", _TRAIN_DESCRIPTION)
    p.add_argument("train_file", metavar="TRAIN_FILE", help="training data")
    p.add_argument("model_file", metavar="MODEL_FILE",
                   help="where the model is saved (overwritten)")
    names = _add_train_options(p, options)
    g = _add_output_options(p)
    g.add_argument("--compress", type=_compress_level, default=0, metavar="LEVEL",
                   help="joblib compression level of MODEL_FILE, 0 (none, fastest) to 9 "
                        "(default: %(default)s)")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="print the estimator's line per epoch (loss, samples/s, active "
                        "neurons) on standard error (default: off)")
    p.set_defaults(estimator_params=names)


def _add_evaluate(sub, options):
    p = _add_file_command(sub, "evaluate", "print P@k and PSP@k of a model on a test file",
                          _EVALUATE_DESCRIPTION)
    _add_model_and_test_files(p, "test data with true labels")
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
    _add_inference_options(p, options)
    _add_output_options(p)


def _add_predict(sub, options):
    p = _add_file_command(sub, "predict", "write the top-k labels of every row of a file",
                          _PREDICT_DESCRIPTION)
    _add_model_and_test_files(p, "rows to predict")
    p.add_argument("output_file", metavar="OUTPUT_FILE",
                   help="where the predictions are written (overwritten; '-' for "
                        "standard output)")
    p.add_argument("-k", type=_positive_int, default=5,
                   help="labels per row (default: %(default)s)")
    _add_inference_options(p, options)
    _add_output_options(p)


def build_parser():
    """Return the argument parser of the ``slidelearn`` command.

    The parser has one sub-command per job: ``demo``, ``train``, ``evaluate`` and
    ``predict``; ``parser.format_help()`` and the ``--help`` of each sub-command
    describe every option with its default. The options of ``train`` are the
    parameters of :class:`~slidelearn.SlideClassifier`, made from the estimator (see
    :mod:`slidelearn._cli._params`); their names are ``args.estimator_params``.

    Returns
    -------
    parser : argparse.ArgumentParser
        The parser used by :func:`~slidelearn._cli.main`.

    Examples
    --------
    >>> from slidelearn._cli import build_parser
    >>> parser = build_parser()
    >>> args = parser.parse_args(["train", "train.txt", "model.joblib", "--epochs", "5",
    ...                           "--hidden-layer-sizes", "256", "128", "--n-codes", "6"])
    >>> args.max_iter, args.hidden_layer_sizes, args.n_codes, args.n_tables
    (5, [256, 128], 6, 50)
    >>> "PSP@k" in parser.parse_args(["evaluate", "m", "t"]).subparser.format_help()
    True
    """
    from slidelearn import SlideClassifier, __version__

    parser = argparse.ArgumentParser(
        prog="slidelearn",
        description=_wrap(_MAIN_DESCRIPTION),
        epilog=_FORMAT_HELP + "\nexamples:\n"
               "  slidelearn train train.txt model.joblib --epochs 5 --n-jobs 2\n"
               "  slidelearn evaluate model.joblib test.txt -k 1 3 5\n"
               "  slidelearn predict model.joblib test.txt predictions.txt -k 5\n"
               "\nRun 'slidelearn COMMAND --help' for the options of a command.",
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"slidelearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    options = EstimatorOptions(SlideClassifier)
    _add_demo(sub)
    _add_train(sub, options)
    _add_evaluate(sub, options)
    _add_predict(sub, options)
    return parser
