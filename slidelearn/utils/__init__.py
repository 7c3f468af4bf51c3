"""Utilities: the CPU dispatch level of the kernels (:func:`cpu_level`,
:func:`available_levels`), what the estimators report after each epoch
(:class:`EpochInfo`, given to their ``callback``) and, in
:mod:`slidelearn.utils.validation`, the input checks the estimators share."""
from slidelearn.utils._cpu import available_levels, cpu_level
from slidelearn.utils._epochs import EpochInfo

__all__ = ["EpochInfo", "available_levels", "cpu_level"]
