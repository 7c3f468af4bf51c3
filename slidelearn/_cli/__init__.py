"""The ``slidelearn`` command line (``slidelearn`` or ``python -m slidelearn``).

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

Modules: ``_parser`` (the argument parser), ``_params`` (the options made from an
estimator's parameters), ``_commands`` (the commands and :func:`main`),
``_model_file`` (the model files), ``_progress`` (the progress bar) and ``_io``
(errors and data files).
"""
from slidelearn._cli._commands import demo, main
from slidelearn._cli._parser import build_parser

__all__ = ["build_parser", "demo", "main"]
