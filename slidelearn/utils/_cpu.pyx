"""Runtime CPU dispatch level of the vectorised kernels.

The level is chosen once, at import: the highest this CPU (and this build) supports
among ``generic``, ``avx2`` (AVX2 + FMA), ``avx512`` (AVX-512 F/BW/VL) and
``avx512_bf16`` (AVX-512 with the AVX512_BF16 instructions), or a lower one named by the
environment variable ``SLIDELEARN_CPU_LEVEL``, which lets tests and benchmarks run every
code path on one machine.

Asking for a level above what the CPU supports does not fail: it warns
(``RuntimeWarning``) and uses the highest available level, the same policy as
:mod:`slidelearn.utils._bfloat16`, so a setting exported for a fleet of mixed machines
keeps working on the older ones. A name that is not a level raises ``ValueError`` at
import.
"""
import os
import warnings

cdef extern from "_cpu_features.h" nogil:
    int sl_cpu_max_level()

LEVELS = ("generic", "avx2", "avx512", "avx512_bf16")

_MAX_LEVEL = sl_cpu_max_level()


def _choose_level():
    wanted = os.environ.get("SLIDELEARN_CPU_LEVEL", "").strip().lower()
    if not wanted:
        return _MAX_LEVEL
    if wanted not in LEVELS:
        raise ValueError(f"SLIDELEARN_CPU_LEVEL={wanted!r} is not one of {LEVELS}.")
    level = LEVELS.index(wanted)
    if level > _MAX_LEVEL:
        warnings.warn(f"SLIDELEARN_CPU_LEVEL={wanted!r} is above what this CPU supports; "
                      f"using {LEVELS[_MAX_LEVEL]!r}.", RuntimeWarning, stacklevel=2)
        return _MAX_LEVEL
    return level


_LEVEL = _choose_level()


def cpu_level():
    """The dispatch level in use by the kernels.

    Returns
    -------
    level : str
        One of ``"generic"``, ``"avx2"``, ``"avx512"``, ``"avx512_bf16"``: the highest
        level this CPU supports, or the lower one set by ``SLIDELEARN_CPU_LEVEL``.

    See Also
    --------
    available_levels : the levels this CPU can run.

    Examples
    --------
    >>> from slidelearn.utils import available_levels, cpu_level
    >>> cpu_level() in available_levels()
    True
    """
    return LEVELS[_LEVEL]


def available_levels():
    """The dispatch levels this CPU (and this build) can run, lowest first.

    Returns
    -------
    levels : tuple of str
        Always starts with ``"generic"``; each level implies the ones before it.

    Examples
    --------
    >>> from slidelearn.utils import available_levels
    >>> available_levels()[0]
    'generic'
    """
    return LEVELS[:_MAX_LEVEL + 1]


def _level_index():
    return _LEVEL
