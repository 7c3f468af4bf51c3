"""Data set loaders, writers and synthetic generators for extreme classification."""
from slidelearn.datasets._samples_generator import make_extreme_classification
from slidelearn.datasets._xc_format_io import dump_xc_repository, load_xc_repository

__all__ = [
    "dump_xc_repository",
    "load_xc_repository",
    "make_extreme_classification",
]
