"""Training beside other work: busy cores and a second OpenMP runtime in the process.

Two situations users meet (GridSearchCV, notebooks, shared servers), each measured
against the same work in a quiet, fresh process:

- *busy cores*: ``SlideClassifier`` trains the demo problem
  (``make_extreme_classification(20000, 20000, 20000)``, 3 epochs) while as many
  busy processes as the machine has cores spin beside it, so that every core is also
  wanted by another process. A fair share of the CPU would make training 2x slower
  than alone (each core shared by two runnable threads); the target is at most 3x for
  2 threads.
- *after torch*: ``DLRMClassifier`` trains (shape (a) of ``bench_dlrm.py``, partial_fit
  steps of 2048 rows) in a process that has just trained the PyTorch DLRM of
  ``bench_dlrm.py``, so that torch's OpenMP runtime and thread pool live in the same
  process as ours. The target is within 1.3x of a fresh process.

Every configuration runs ``--repeats`` times, each in its own process, one after
another; the script prints every run, the median and the spread, and the ratios
against the targets. It asserts nothing.

    python benchmarks/bench_contention.py --out results/contention.json
    python benchmarks/bench_contention.py --skip-torch --repeats 3
    python benchmarks/bench_contention.py --before /tmp/old_checkout   # and an old build
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

TARGET_BUSY = 3.0      # 2-thread training beside busy cores / alone
TARGET_TORCH = 1.3     # DLRM after torch in the same process / fresh process


def run_slide(threads):
    from slidelearn import SlideClassifier
    from slidelearn.datasets import make_extreme_classification

    X, Y = make_extreme_classification(n_samples=20000, n_features=20000, n_labels=20000,
                                       random_state=0)
    clf = SlideClassifier(max_iter=3, n_jobs=threads, random_state=0, alpha=0.0,
                          learning_rate_decay=1.0, tol=0.0)
    t0 = time.perf_counter()
    c0 = time.process_time()
    clf.fit(X, Y)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


def run_dlrm(threads, after_torch, steps):
    from bench_dlrm import run_slidelearn, run_torch
    if after_torch:
        run_torch("a", threads, 8, 2, 0.1)
    times, _ = run_slidelearn("a", threads, steps, 2, 0.1)
    return {"seconds": float(sum(times)), "samples_per_s": 2048 * len(times) / sum(times)}


def worker(args):
    if args.task == "slide":
        res = run_slide(args.threads)
    else:
        res = run_dlrm(args.threads, args.after_torch, args.steps)
    print(json.dumps(res))


def busy_processes(n):
    """n processes that keep a core busy each until killed (pure Python, no threads)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def one_run(args, task, threads, busy=0, after_torch=False, code=None):
    """One configuration in a fresh process; ``code``: the checkout to import slidelearn
    from (default: this one)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--task", task,
           "--threads", str(threads), "--steps", str(args.steps)]
    if after_torch:
        cmd.append("--after-torch")
    env = dict(os.environ)
    env["PYTHONPATH"] = code or os.path.dirname(HERE)
    procs = busy_processes(busy)
    try:
        time.sleep(0.5 if busy else 0)  # let the busy processes get going
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(name, runs, key):
    vals = np.array([r[key] for r in runs])
    print(f"  {name:<44} median {np.median(vals):8.2f}  range {vals.min():.2f}-{vals.max():.2f}"
          f"  runs {', '.join(f'{v:.2f}' for v in vals)}", flush=True)
    return float(np.median(vals))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=12, help="timed DLRM steps a run")
    p.add_argument("--skip-torch", action="store_true", help="skip the mixed-runtime case")
    p.add_argument("--skip-busy", action="store_true", help="skip the busy-cores case")
    p.add_argument("--out", help="write the figures as JSON")
    p.add_argument("--before", metavar="PATH",
                   help="also run the 2-thread configurations with slidelearn imported "
                        "from this checkout (built in place)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--task", choices=["slide", "dlrm"], help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--after-torch", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    from bench_slide import machine_info
    info = machine_info()
    cores = len(os.sched_getaffinity(0))
    print(f"# {info['cpu']}, {info['usable_cores']} usable cores, {info['memory_gb']:.0f} GB; "
          f"python {info['python']}, numpy {info['numpy']}, torch {info['torch']}, "
          f"slidelearn git {info['git_revision']}")
    print(f"# {' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:])}; {cores} usable cores; "
          f"{args.repeats} runs a configuration, each in its own process")
    result = {"machine": info, "command": sys.argv[1:], "cores": cores}
    codes = [("", None)] + ([("before: ", args.before)] if args.before else [])
    if not args.skip_busy:
        print(f"SlideClassifier, demo problem, 3 epochs: training seconds "
              f"({cores} busy processes beside it where said)")
        configs = [("2 threads alone", 2, 0), (f"2 threads, {cores} busy processes", 2, cores),
                   ("1 thread alone", 1, 0), (f"1 thread, {cores} busy processes", 1, cores)]
        for tag, code in codes:
            runs = {tag + name: [one_run(args, "slide", threads, busy, code=code)
                                 for _ in range(args.repeats)]
                    for name, threads, busy in configs if not code or threads == 2}
            med = {k: summary(k, v, "seconds") for k, v in runs.items()}
            ratio = med[f"{tag}2 threads, {cores} busy processes"] / med[f"{tag}2 threads alone"]
            print(f"  {tag}busy / alone, 2 threads: {ratio:.2f}x (target <= {TARGET_BUSY}x; "
                  f"a fair share is 2x)")
            result["busy_before" if code else "busy"] = {
                "runs": runs, "median_seconds": med, "ratio": ratio, "target": TARGET_BUSY,
                "met": bool(ratio <= TARGET_BUSY)}
    if not args.skip_torch:
        print(f"DLRMClassifier shape (a), 2 threads, {args.steps} steps of 2048 rows: samples/s")
        for tag, code in codes:
            runs = {tag + name: [one_run(args, "dlrm", 2, after_torch=after, code=code)
                                 for _ in range(args.repeats)]
                    for name, after in [("fresh process", False), ("after torch training", True)]}
            med = {k: summary(k, v, "samples_per_s") for k, v in runs.items()}
            ratio = med[f"{tag}fresh process"] / med[f"{tag}after torch training"]
            print(f"  {tag}fresh / after torch: {ratio:.2f}x (target <= {TARGET_TORCH}x)")
            result["torch_before" if code else "torch"] = {
                "runs": runs, "median_samples_per_s": med, "ratio": ratio,
                "target": TARGET_TORCH, "met": bool(ratio <= TARGET_TORCH)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
