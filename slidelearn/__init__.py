"""slidelearn: sub-linear deep learning (SLIDE) and DLRM training on CPUs, behind
scikit-learn estimators."""
from slidelearn import _openmp_runtime

_openmp_runtime.load()  # before any other compiled module: see its docstring

from slidelearn._dlrm._estimators import DLRMClassifier, DLRMRegressor  # noqa: E402
from slidelearn._dlrm._inputs import feature_groups_from_encoder  # noqa: E402
from slidelearn._slide._classifier import SlideClassifier  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "DLRMClassifier",
    "DLRMRegressor",
    "SlideClassifier",
    "__version__",
    "feature_groups_from_encoder",
]
