"""Launch a test script on N MPI ranks with ``mpiexec ... python -m mpi4py``.

Tests that use it are skipped, with the reason, only where mpi4py or ``mpiexec`` is
missing (CI installs the ``mpi`` extra, whose ``mpich`` wheel provides both).
"""
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

def _mpiexec():
    # The mpiexec of the running environment first (the mpich wheel puts it next to
    # the interpreter), then the PATH.
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def _why_no_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install slidelearn[mpi])"
    if _mpiexec() is None:
        return "no mpiexec found (pip install mpich, or a system MPI)"
    return None


requires_mpi = pytest.mark.skipif(_why_no_mpi() is not None, reason=str(_why_no_mpi()))


def run_mpi(script, n_ranks, tmp_path, timeout=120, args=()):
    """Run ``script`` (Python source) on ``n_ranks`` ranks, one thread each.

    Returns the ``CompletedProcess``; its stdout/stderr are text. The script is
    started through ``python -m mpi4py`` so that an exception on one rank aborts the
    whole job instead of leaving the other ranks waiting.
    """
    path = Path(tmp_path) / f"mpi_script_{n_ranks}.py"
    path.write_text(textwrap.dedent(script))
    # Not the launcher variables of an MPI this process may itself run under.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "MPIR_", "OMPI_"))}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # The slidelearn this test imported (installed, or built in place), not the sources.
    import slidelearn
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(Path(slidelearn.__file__).resolve().parents[1]),
                    env.get("PYTHONPATH", "")] if p)
    cmd = [_mpiexec(), "-n", str(n_ranks), sys.executable, "-m", "mpi4py", str(path),
           *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(tmp_path))

