#!/usr/bin/env bash
# Build a copy of slidelearn with AddressSanitizer and UndefinedBehaviorSanitizer
# (setup.py's SLIDELEARN_SANITIZE switch) and run tests against it.
#
#   tools/sanitize.sh [PYTEST ARGS...]
#
# Default tests (also when the arguments are options only, e.g. --durations=10): the
# kernel tests of both estimators and the fuzz tests. Any
# sanitizer report fails the run: ASan and UBSan abort at the first error (also
# inside the fuzz tests' worker processes, whose exit status the tests check).
#
# The copy is built in build/sanitize/src (git-ignored; SANITIZE_DIR overrides),
# never in place, so that the slow, instrumented .so files cannot shadow the normal
# build. It is rebuilt from scratch every run (setuptools would otherwise reuse object
# files compiled with other flags). Python itself is not instrumented: the ASan runtime
# is preloaded. Run it in an environment with the test requirements (pytest,
# hypothesis) and the build ones (Cython, setuptools); about 2.5 minutes on 2 cores.
set -euo pipefail
caller=$(pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$(realpath -m "${SANITIZE_DIR:-$root/build/sanitize}")
src=$dest/src
jobs=${SANITIZE_BUILD_JOBS:-2}

# Only ever remove a folder this script made (it leaves a marker file there).
if [ -e "$dest" ] && [ ! -e "$dest/.sanitize-build" ] && [ -n "$(ls -A "$dest")" ]; then
    echo "tools/sanitize.sh: $dest exists and was not made by this script; not removing it" >&2
    exit 1
fi
start=$SECONDS
rm -rf "$dest"
mkdir -p "$src"
touch "$dest/.sanitize-build"
# The package sources (tracked and new, untracked files; never build outputs).
cd "$root"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard -- slidelearn setup.py pyproject.toml \
        | tar --null -T - -cf - | tar -xf - -C "$src"
else
    tar --exclude='*.so' --exclude='*.c' --exclude='__pycache__' -cf - slidelearn setup.py \
        pyproject.toml | tar -xf - -C "$src"
fi
python -c "import Cython, setuptools" 2>/dev/null || {
    echo "tools/sanitize.sh: the build needs Cython and setuptools in this environment:" \
         "pip install 'Cython>=3.0.10' 'setuptools>=64'" >&2
    exit 1
}
(cd "$src" && SLIDELEARN_SANITIZE=address,undefined \
    python setup.py build_ext --inplace -j "$jobs" >"$dest/build.log" 2>&1) || {
    tail -n 40 "$dest/build.log" >&2
    echo "tools/sanitize.sh: the sanitized build failed (log: $dest/build.log)" >&2
    exit 1
}
echo "+ sanitized build in $((SECONDS - start)) s ($src)"

# gcc links the kernels against the shared runtimes (libasan, libubsan). ASan's must be
# the first library of the process, which an uninstrumented python only gets by
# preloading it; libubsan needs no preloading (the kernels load it).
preload=$(gcc -print-file-name=libasan.so)
[ -e "$preload" ] || { echo "tools/sanitize.sh: ASan runtime $preload not found" >&2; exit 1; }
export LD_PRELOAD="$preload"
# Leaks: CPython's own allocations at exit are not ours. abort_on_error: a report ends the
# process with SIGABRT (exit status 134 / -6), which no test mistakes for a clean error.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

# Run from the copy, so that the sanitized package comes first on sys.path whatever
# `python -m pytest` adds; check that it is the one imported.
cd "$src"
python - <<'PY'
import os, sys
import slidelearn._slide._network as m
want = os.environ["PYTHONPATH"].split(os.pathsep)[0]
if not os.path.realpath(m.__file__).startswith(os.path.realpath(want) + os.sep):
    sys.exit(f"tools/sanitize.sh: imported {m.__file__}, not the sanitized copy in {want}")
print(f"+ testing {os.path.dirname(os.path.dirname(m.__file__))}")
PY

only_options=1
for a in "$@"; do case $a in -*) ;; *) only_options=0 ;; esac; done
if [ "$only_options" = 1 ]; then
    # The kernel tests of both estimators, and the fuzz tests (examples in worker
    # processes that inherit this environment); options alone go with them.
    set -- "$@" "$root/tests/test_network_kernels.py" "$root/tests/test_hashing.py" \
        "$root/tests/test_lsh_index.py" "$root/tests/test_ivf.py" "$root/tests/test_norm_index.py" \
        "$root/tests/test_dlrm_kernels.py" "$root/tests/test_fuzz_slide.py" \
        "$root/tests/test_fuzz_dlrm.py" "$root/tests/test_fuzz_xc.py"
fi
# Test paths relative to where the script was called from (the run happens in the copy).
args=()
for a in "$@"; do
    case $a in
        -*|/*) args+=("$a") ;;
        *) if [ -e "$caller/${a%%::*}" ]; then args+=("$caller/$a"); else args+=("$a"); fi ;;
    esac
done
t0=$SECONDS
python -m pytest -q -p no:cacheprovider --rootdir="$root" "${args[@]}"
echo "+ sanitized tests passed in $((SECONDS - t0)) s (total $((SECONDS - start)) s)"
