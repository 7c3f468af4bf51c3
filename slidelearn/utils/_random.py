"""Seeds shared by the slidelearn estimators."""
import numpy as np

__all__ = ["check_seed"]


def check_seed(random_state):
    """An int seed for numpy's Generator from a scikit-learn ``random_state``.

    Parameters
    ----------
    random_state : None, int or numpy.random.RandomState
        As scikit-learn estimators take it. A ``RandomState`` instance is advanced by
        one draw; ``None`` draws from numpy's global generator.

    Returns
    -------
    seed : int
        In ``[0, 2**31 - 1)``.

    Examples
    --------
    >>> from slidelearn.utils._random import check_seed
    >>> check_seed(0) == check_seed(0)
    True
    """
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    return int(np.random.RandomState(random_state).randint(0, 2**31 - 1))
