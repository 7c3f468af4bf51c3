"""Build script for slidelearn: cythonizes the kernels, with OpenMP when the
compiler supports it and a serial fallback (with a warning) when it does not.

Environment variables
---------------------
SLIDELEARN_NATIVE=1
    Compile with ``-march=native`` (off by default so that builds are portable).
SLIDELEARN_NO_OPENMP=1
    Build without OpenMP even if the compiler supports it.
SLIDELEARN_CYTHON_BOUNDSCHECK=1
    Turn Cython bounds checking and wraparound back on (debugging).
SLIDELEARN_SANITIZE=address,undefined
    Compile and link the kernels with ``-fsanitize=...`` (any list that gcc/clang accept),
    frame pointers and debug information, for finding out-of-bounds accesses. Python itself
    is not instrumented, so run with the sanitizer runtime preloaded, e.g.
    ``LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 pytest``
    (``tools/sanitize.sh`` does both steps).
"""
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

EXTENSIONS = [
    "slidelearn.utils._openmp_helpers",
    "slidelearn.utils._cpu",
    "slidelearn.utils._bf16",
    "slidelearn._slide._hashing",
    "slidelearn._slide._network",
    "slidelearn.datasets._xc_format",
    "slidelearn._dlrm._kernels",
]

# What the .c files and the compiled modules in the tree were made with (see _extensions
# and BuildExt): build outputs made otherwise are not reused.
CYTHON_STAMP = os.path.join("build", "slidelearn-cython.json")


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _probe_openmp(compiler_cmd):
    """Return True if the C compiler builds and runs a small OpenMP program."""
    code = textwrap.dedent(
        """
        #include <omp.h>
        #include <stdio.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            printf("%d", n > 0);
            return 0;
        }
        """
    )
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(code)
        cmd = list(compiler_cmd) + ["-fopenmp", src, "-o", exe]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            return False
        r = subprocess.run([exe], capture_output=True, text=True)
        return r.returncode == 0 and r.stdout.strip() == "1"
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext that adds OpenMP and optimisation flags after probing the compiler."""

    def finalize_options(self):
        super().finalize_options()
        # one compiler per core: pip passes no -j, and the modules compile independently
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        compiler_cmd = getattr(self.compiler, "compiler_so", None) or ["cc"]
        compiler_cmd = [c for c in compiler_cmd if not c.startswith("-")][:1] or ["cc"]
        use_openmp = not _env_flag("SLIDELEARN_NO_OPENMP") and self.compiler.compiler_type != "msvc"
        if use_openmp and not _probe_openmp(compiler_cmd):
            warnings.warn(
                "slidelearn: the C compiler does not support OpenMP; building the serial "
                "fallback. Training and inference will use a single thread. Install an "
                "OpenMP-capable compiler (gcc, or clang with libomp) and rebuild for threads."
            )
            use_openmp = False
        elif not use_openmp:
            warnings.warn("slidelearn: building without OpenMP (serial fallback).")
        compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"]
        link_args = []
        if use_openmp:
            compile_args.append("-fopenmp")
            link_args.append("-fopenmp")
        if _env_flag("SLIDELEARN_NATIVE"):
            compile_args.append("-march=native")
        sanitize = os.environ.get("SLIDELEARN_SANITIZE", "").strip()
        if sanitize:
            # -O1 (ASan's recommended level) and line tables only (-g1): instrumenting
            # _network.c at -O3 with full debug information took 4 times as long to
            # compile, and every access our code makes is checked at either level. The
            # compiler fuses other operations here, so tests that compare two kernels
            # bit for bit do not hold in this build.
            flags = [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g1", "-O1"]
            if "undefined" in sanitize:
                flags.append("-fno-sanitize-recover=undefined")
            compile_args = [a for a in compile_args if a != "-O3"] + flags
            link_args += [f"-fsanitize={sanitize}"]
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args or []) + compile_args
            ext.extra_link_args = list(ext.extra_link_args or []) + link_args
        print(f"slidelearn: OpenMP {'enabled' if use_openmp else 'disabled'}; flags {compile_args}")
        # setuptools keeps a module newer than its .c; not one compiled with other flags
        stamp = os.path.join(self.build_temp, "slidelearn-flags.json")
        key = json.dumps([self.compiler.compiler_so, compile_args, link_args])
        if not _same_stamp(stamp, key):
            self.force = True
        super().build_extensions()
        _write_stamp(stamp, key)


def _own_sources_mtime():
    """Newest modification time of setup.py and the package's Cython and C sources."""
    times = [os.path.getmtime(__file__)]
    for folder, _, files in os.walk("slidelearn"):
        times += [os.path.getmtime(os.path.join(folder, f)) for f in files
                  if f.endswith((".pyx", ".pxd", ".pxi", ".h"))]
    return max(times)


def _fresh_c(pyx, newest_source, cython_version):
    """The .c that Cython wrote for ``pyx`` if it is newer than every source of ours
    and came from Cython ``cython_version``, else None.

    Cython itself also counts scipy's cython_blas.pxd as a dependency, and pip's
    isolated build environment installs scipy anew for every build, so each
    ``pip install .`` would translate and compile every module again."""
    c_file = pyx[:-len(".pyx")] + ".c"
    try:
        if os.path.getmtime(c_file) <= newest_source:
            return None
        with open(c_file, encoding="utf-8", errors="replace") as f:
            header = f.readline()
    except OSError:
        return None
    return c_file if header.strip() == f"/* Generated by Cython {cython_version} */" else None


def _same_stamp(path, key):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read() == key
    except OSError:
        return False


def _write_stamp(path, key):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(key)


def _extensions():
    import Cython
    from Cython.Build import cythonize

    bounds = _env_flag("SLIDELEARN_CYTHON_BOUNDSCHECK")
    directives = {
        "language_level": 3,
        "boundscheck": bounds,
        "wraparound": bounds,
        "cdivision": True,
        "initializedcheck": False,
        "nonecheck": False,
        "cpow": True,
    }
    # The .c files of another Cython or other directives are never reused.
    key = json.dumps([Cython.__version__, directives], sort_keys=True)
    same = _same_stamp(CYTHON_STAMP, key)
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]
    exts, fresh = [], []
    newest = _own_sources_mtime()
    for name in EXTENSIONS:
        pyx = name.replace(".", os.sep) + ".pyx"
        c_file = _fresh_c(pyx, newest, Cython.__version__) if same else None
        if c_file is None:
            exts.append(Extension(name, [pyx], define_macros=macros))
        else:
            fresh.append(Extension(name, [c_file], define_macros=macros))
    if not exts:
        return fresh
    translated = cythonize(
        exts,
        compiler_directives=directives,
        force=not same,
        quiet=True,
        # the pyx files translate independently; a pool only pays off for several
        nthreads=min(len(exts), os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else 0,
    )
    _write_stamp(CYTHON_STAMP, key)
    return fresh + translated


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
