"""Which loops of the kernels the compiler vectorizes: GCC's vectorization report,
mapped back to the ``.pyx`` and ``.h`` lines it comes from.

The script compiles the C files that Cython generated for the kernel modules (run
``python setup.py build_ext --inplace`` first) with the package's own optimisation flags
plus ``-fopt-info-vec-optimized``, and lists every vectorized loop by source line and
function, with the vector width GCC chose. Loops inside the C helpers included from
Cython (``_simd.h``, ``_bfloat16.h``, ...) are reported at their header lines; loops of the
generated code at the ``.pyx`` line they were compiled from. Compiled functions carry
their ``target`` attribute, so a helper compiled for several levels shows up once per
vector width (16 bytes: SSE2 of the generic level, 32: AVX2, 64: AVX-512).

Run::

    python benchmarks/vectorization_report.py            # every kernel module
    python benchmarks/vectorization_report.py --missed   # also the loops it did not vectorize
"""
import argparse
import os
import re
import subprocess
import sys
import sysconfig
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["slidelearn/_slide/_network.c", "slidelearn/_slide/_hashing.c",
           "slidelearn/_dlrm/_kernels.c", "slidelearn/utils/_bf16.c"]
FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "-fopenmp", "-fPIC"]

_MSG = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):\d+: (?P<kind>optimized|missed): "
                  r"(?P<text>.*)$")
_PYX_MARK = re.compile(r'^\s*/\* "(?P<pyx>[^"]+\.pyx)":(?P<line>\d+)')
_C_FUNC = re.compile(r"^(?:static\s+|SL_\w+\s+|__attribute__\(\(.*?\)\)\s*|inline\s+)*"
                     r"[\w\s\*]+?\b(?P<name>\w+)\s*\([^;]*$")


def pyx_line(c_lines, lineno):
    """The ``.pyx`` source line of a line of Cython-generated C (the closest marker
    comment above it), or None."""
    for i in range(lineno - 1, -1, -1):
        m = _PYX_MARK.match(c_lines[i])
        if m:
            return m.group("pyx"), int(m.group("line"))
    return None


def c_function(lines, lineno):
    """Name of the C function defined around ``lineno`` (1-based) of a header."""
    for i in range(lineno - 1, -1, -1):
        line = lines[i]
        if line and not line[0].isspace() and "(" in line and not line.startswith(("#", "/*")):
            m = _C_FUNC.match(line)
            if m:
                return m.group("name")
    return "?"


def compile_report(c_file, missed=False):
    """Run GCC on ``c_file`` and return its vectorization messages."""
    import numpy as np

    cc = os.environ.get("CC", "gcc")
    opt = "-fopt-info-vec-all" if missed else "-fopt-info-vec-optimized"
    cmd = [cc, *FLAGS, opt, f"-I{np.get_include()}",
           f"-I{sysconfig.get_paths()['include']}", f"-I{Path(c_file).parent}",
           "-c", str(c_file), "-o", os.devnull]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return [m.groupdict() for m in map(_MSG.match, out.stderr.splitlines()) if m]


def summarize(c_file, messages):
    """{(source, line, function): {"widths": set of bytes, "missed": int}}."""
    c_path = ROOT / c_file
    c_lines = c_path.read_text(errors="replace").splitlines()
    headers = {}
    rows = defaultdict(lambda: {"widths": set(), "missed": 0})
    for msg in messages:
        path = Path(msg["file"])
        line = int(msg["line"])
        if path.suffix == ".c" and path.name == c_path.name:
            loc = pyx_line(c_lines, line)
            if loc is None:
                continue
            key = (loc[0], loc[1], "")
        elif path.suffix == ".h" and "slidelearn" in str(path.resolve()):
            rel = os.path.relpath(path.resolve(), ROOT)
            if rel not in headers:
                headers[rel] = (ROOT / rel).read_text().splitlines()
            key = (rel, line, c_function(headers[rel], line))
        else:
            continue  # numpy / Python headers
        m = re.search(r"using (\d+) byte vectors", msg["text"])
        if msg["kind"] == "optimized" and "loop vectorized" in msg["text"]:
            rows[key]["widths"].add(int(m.group(1)) if m else 0)
        elif msg["kind"] == "missed" and "not vectorized" in msg["text"]:
            rows[key]["missed"] += 1
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--missed", action="store_true",
                   help="also list loops GCC reports as not vectorized")
    args = p.parse_args(argv)
    missing = [f for f in MODULES if not (ROOT / f).exists()]
    if missing:
        sys.exit(f"{', '.join(missing)} not found: run python setup.py build_ext --inplace")
    cc = os.environ.get("CC", "gcc")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    print(f"# {' '.join([sys.executable, *sys.argv])}")
    print(f"# compiler: {version.splitlines()[0] if version else cc}; flags: {' '.join(FLAGS)}")
    for c_file in MODULES:
        rows = summarize(c_file, compile_report(ROOT / c_file, args.missed))
        print(f"\n== {c_file} ==")
        print(f"{'source:line':<42} {'function':<32} vectorized (bytes)")
        for (src, line, func), r in sorted(rows.items()):
            if not r["widths"] and not args.missed:
                continue
            widths = ", ".join(str(w) for w in sorted(r["widths"])) or "-"
            extra = f"   ({r['missed']} not vectorized)" if args.missed and r["missed"] else ""
            print(f"{src + ':' + str(line):<42} {func:<32} {widths}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
