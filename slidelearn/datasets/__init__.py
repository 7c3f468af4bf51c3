"""Data set loaders, writers and synthetic generators (extreme classification, recommenders, skip-gram)."""
from slidelearn.datasets._criteo import CRITEO_CATEGORICAL_FEATURES, iter_criteo
from slidelearn.datasets._movielens import load_movielens
from slidelearn.datasets._samples_generator import (
    make_extreme_classification,
    make_extreme_classification_preset,
)
from slidelearn.datasets._shared import find_shared_data
from slidelearn.datasets._text8 import load_text8_skipgram
from slidelearn.datasets._xc_format_io import dump_xc_repository, load_xc_repository

__all__ = [
    "CRITEO_CATEGORICAL_FEATURES",
    "dump_xc_repository",
    "find_shared_data",
    "iter_criteo",
    "load_movielens",
    "load_text8_skipgram",
    "load_xc_repository",
    "make_extreme_classification",
    "make_extreme_classification_preset",
]
