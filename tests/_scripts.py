"""The benchmark scripts under ``benchmarks/`` for the tests: their paths, the module
of one loaded by path (they are not package modules), and the environment in which a
script run as a child process imports the slidelearn under test."""
import importlib.util
import os
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def script(name):
    """Path of ``benchmarks/<name>.py``."""
    return BENCHMARKS / f"{name}.py"


def load_script(name):
    """``benchmarks/<name>.py`` loaded as a module."""
    spec = importlib.util.spec_from_file_location(name, script(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_env():
    """``os.environ`` with the tested slidelearn first on ``PYTHONPATH``."""
    import slidelearn
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(slidelearn.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env
