"""slidelearn: sub-linear deep learning (SLIDE) and DLRM training on CPUs, behind
scikit-learn estimators."""
from slidelearn._dlrm._estimators import DLRMClassifier, DLRMRegressor
from slidelearn._dlrm._inputs import feature_groups_from_encoder
from slidelearn._slide._classifier import SlideClassifier

__version__ = "0.1.0"

__all__ = [
    "DLRMClassifier",
    "DLRMRegressor",
    "SlideClassifier",
    "__version__",
    "feature_groups_from_encoder",
]
