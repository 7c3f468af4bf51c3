"""Run the Examples sections of the public docstrings (they must stay runnable)."""
import doctest
import importlib

import pytest

MODULES = [
    "slidelearn._slide._classifier",
    "slidelearn._slide._state",
    "slidelearn.metrics",
    "slidelearn.datasets._xc_format_io",
    "slidelearn.datasets._samples_generator",
    "slidelearn.datasets._shared",
    "slidelearn.utils.validation",
    "slidelearn._cli._commands",
    "slidelearn._cli._io",
    "slidelearn._cli._model_file",
    "slidelearn._cli._params",
    "slidelearn._cli._parser",
    "slidelearn._cli._progress",
    "slidelearn._dlrm._estimators",
    "slidelearn._dlrm._inputs",
    "slidelearn.datasets._criteo",
    "slidelearn.datasets._movielens",
    "slidelearn.datasets._text8",
    "slidelearn.utils._bf16",
    "slidelearn.utils._cpu",
    "slidelearn.utils._mpi",
    "slidelearn.utils._random",
    "slidelearn.utils._select",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no runnable examples"
    assert result.failed == 0


def test_benchmark_report_examples():
    """benchmarks/make_report.py is not a package module: load it by path."""
    from _scripts import load_script
    result = doctest.testmod(load_script("make_report"), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
