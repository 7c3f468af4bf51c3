"""Helpers of the property-based fuzz tests (tests/test_fuzz_*.py).

Every drawn example runs in a worker process (``_fuzz_worker.py``), so that heap
corruption, which may only abort the process at exit, fails the test instead of
passing unnoticed or killing pytest. ``tools/sanitize.sh`` runs the same tests
against a build with AddressSanitizer, whose environment the workers inherit.

Those processes are forked from one server process per test session that has imported
slidelearn already (``_fuzz_worker.py serve``): a fresh interpreter spends seconds
importing scikit-learn, a fork milliseconds. Off Linux (no ``os.fork``, or macOS, where
system frameworks do not survive a fork), each example list runs in a new interpreter.

The number of examples is fixed and their draw derandomized, so that CI runs the
same examples every time; ``SLIDELEARN_FUZZ_EXAMPLES=N`` runs N per test instead
(more, to search longer locally).
"""
import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings

WORKER = Path(__file__).resolve().with_name("_fuzz_worker.py")


def fuzz_settings(max_examples):
    """Reproducible settings: derandomized, no example database, no deadline (a worker
    process takes a second or more to start). No explain phase: it reruns a failing
    example a hundred times, minutes of worker processes, after shrinking."""
    n = int(os.environ.get("SLIDELEARN_FUZZ_EXAMPLES", max_examples))
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow])


def package_env():
    """The environment of a child process that imports the slidelearn of this test
    session (the source tree, an installed copy or the sanitized build) first."""
    import slidelearn

    env = dict(os.environ)
    root = str(Path(slidelearn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH")] if p)
    return env


def describe_status(rc):
    """'exit status 1' or 'killed by SIGSEGV (-11)'."""
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name} ({rc})"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}" + (" (abort)" if rc == 134 else "")


class _ForkServer:
    """The client side of ``_fuzz_worker.py serve``: started on first use, ended with
    the test session (its stdin closes)."""

    proc = None

    def run(self, request, timeout):
        """Run one request in a forked child; a CompletedProcess like subprocess.run's."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, str(WORKER), "serve"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, env=package_env())
        with tempfile.TemporaryDirectory() as tmp:
            out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            self.proc.stdin.write(json.dumps(dict(request, stdout=out, stderr=err,
                                                  timeout=timeout)) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the fuzz fork server ended "
                                   f"({describe_status(self.proc.wait())})")
            answer = json.loads(line)
            if answer.get("timeout"):
                raise subprocess.TimeoutExpired(request, timeout)
            with open(out, errors="replace") as f_out, open(err, errors="replace") as f_err:
                return subprocess.CompletedProcess(request, answer["status"], f_out.read(),
                                                   f_err.read())

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


_SERVER = _ForkServer()
atexit.register(_SERVER.close)
_FORK = hasattr(os, "fork") and sys.platform.startswith("linux")


def run_cli(args, cwd, timeout=120):
    """``python -m slidelearn ARGS`` in ``cwd``, in a forked child (off Linux, a new
    process); a CompletedProcess with text stdout and stderr."""
    if not _FORK:
        return subprocess.run([sys.executable, "-m", "slidelearn", *args], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout,
                              env=package_env())
    return _SERVER.run({"cli": list(args), "cwd": str(cwd)}, timeout)


def run_worker(kind, examples, timeout=120):
    """Run ``examples`` in one worker process; return its list of facts.

    Fails (AssertionError, with the examples and the end of stderr) when the worker
    does not exit with status 0: an unexpected exception, a crash, an abort at exit, or
    a sanitizer report."""
    if _FORK:
        proc = _SERVER.run({"kind": kind, "examples": examples}, timeout)
    else:
        proc = subprocess.run([sys.executable, str(WORKER), kind],
                              input=json.dumps(examples), capture_output=True, text=True,
                              timeout=timeout, env=package_env())
    assert proc.returncode == 0, (
        f"worker {kind} {describe_status(proc.returncode)} on {json.dumps(examples)}\n"
        f"stderr:\n{proc.stderr[-4000:]}")
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(examples)
    return results
