"""Utilities: the CPU dispatch level of the kernels (:func:`cpu_level`,
:func:`available_levels`) and, in :mod:`slidelearn.utils.validation`, the input checks
the estimators share."""
from slidelearn.utils._cpu import available_levels, cpu_level

__all__ = ["available_levels", "cpu_level"]
