"""How long the threads of the OpenMP runtime spin before they sleep.

The kernels end every parallel loop on a barrier, many times per training batch. GNU
OpenMP's threads wait at a barrier by spinning for ``GOMP_SPINCOUNT`` iterations
(300,000 by default) before they sleep. On a quiet machine the spin saves the wake-up;
when other processes want the same cores, a spinning thread burns the time slice that
the thread it waits for needs, and training slows down many times more than the share
of the CPU it lost. A short spin keeps most of the quiet-machine speed and lets waiting
threads give their core away under contention.

libgomp reads its settings once, when it is loaded, so the setting is made in the
environment just around the first import of a compiled module of the package, and
removed afterwards (the user's environment and child processes are left as they were).
It is skipped when the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` (theirs
apply), and has no effect when a libgomp of the same name was already loaded by
another package (for example by ``import torch`` before ``import slidelearn``): that
runtime is then shared, with the settings it was loaded with.
"""
import os

#: Spin iterations before a waiting thread sleeps (libgomp's default is 300,000).
SPIN_COUNT = 10_000

_USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

#: Whether this package's setting reached the runtime (None: not loaded yet).
applied = None


def _libgomp_loaded():
    try:
        with open("/proc/self/maps") as f:
            return any(line.rstrip().endswith("/libgomp.so.1") for line in f)
    except OSError:  # not Linux: no /proc, and no way to tell
        return False


def load():
    """Import the first compiled module with the spin setting in the environment."""
    global applied
    if applied is not None:
        return
    if any(os.environ.get(k) for k in _USER_SETTINGS) or _libgomp_loaded():
        applied = False
        from slidelearn.utils import _openmp_helpers  # noqa: F401
        return
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    try:
        from slidelearn.utils import _openmp_helpers  # noqa: F401  (loads libgomp)
    finally:
        del os.environ["GOMP_SPINCOUNT"]
    applied = True
