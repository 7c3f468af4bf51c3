"""slidelearn: sub-linear deep learning (SLIDE) and DLRM training on CPUs, behind
scikit-learn estimators."""
from slidelearn._slide._classifier import SlideClassifier

__version__ = "0.1.0"

__all__ = ["SlideClassifier", "__version__"]
