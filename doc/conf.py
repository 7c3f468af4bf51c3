"""Sphinx configuration of the slidelearn documentation.

Build (from the repository root, with ``pip install ".[doc]"``)::

    sphinx-build -W --keep-going -b html doc doc/_build/html

Besides the usual configuration this file, when Sphinx loads it,

* writes the benchmark tables and figures from ``benchmarks/results/*.json``
  (``benchmarks/make_report.py``) into ``doc/generated/benchmarks``;
* renders ``slidelearn <command> --help`` of every subcommand of the command line
  into ``doc/generated/cli.inc``;
* checks that every name of the ``__all__`` of every public slidelearn module is
  listed in ``api.rst`` (the build fails otherwise);
* runs the gallery examples in quick mode (``SLIDELEARN_QUICK_EXAMPLES=1``) unless
  the environment says otherwise, pointing them (``SLIDELEARN_DATA``) at
  ``../shared/data`` relative to the repository root when that folder exists.

Nothing here needs the network: intersphinx is not used.
"""
import argparse
import contextlib
import importlib
import importlib.util
import os
import pkgutil
import re
import shutil
import sys
from pathlib import Path

from sphinx.errors import ConfigError
from sphinx.util import logging

logger = logging.getLogger("slidelearn.conf")

DOC = Path(__file__).resolve().parent
ROOT = DOC.parent
GENERATED = DOC / "generated"

# The gallery examples read this to pick their small settings.
os.environ.setdefault("SLIDELEARN_QUICK_EXAMPLES", "1")
# ... and find the shared data sets here (``../shared/data`` from the repository root):
# sphinx-gallery runs them without ``__file__``.
if (ROOT.parent / "shared" / "data").is_dir():
    os.environ.setdefault("SLIDELEARN_DATA", str(ROOT.parent / "shared" / "data"))

import slidelearn  # noqa: E402  (the installed package, or the one on PYTHONPATH)

# -- Project -----------------------------------------------------------------------
project = "slidelearn"
author = "the slidelearn developers"
copyright = "the slidelearn developers"
release = slidelearn.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"
# Every cross-reference must resolve. Names of other projects cannot (intersphinx is
# off: the build must not need the network), so they are accepted as plain text.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|scipy|sp|sklearn|pandas|pd|joblib|threadpoolctl|matplotlib)\..*"),
    (r"py:.*", r"(pathlib|io|argparse|collections|typing|os)\..*"),
]

# -- autodoc / autosummary / numpydoc ---------------------------------------------
autosummary_generate = True
autosummary_generate_overwrite = True
autodoc_default_options = {"inherited-members": True}
autodoc_typehints = "none"
# As in scikit-learn: numpydoc does not add its own member tables; the autosummary
# class template lists the methods.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- doctest builder (``sphinx-build -b doctest``: runs the quick start) ---------
# Only the ``testcode`` blocks of the pages: the docstrings' ``>>>`` examples are run by
# tests/test_docstrings.py already.
doctest_test_doctest_blocks = ""

# -- sphinx-gallery ----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": os.path.relpath(ROOT / "examples", DOC),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(__init__|conftest)\.py",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("slidelearn",),
    "backreferences_dir": os.path.join("generated", "backreferences"),
    "reference_url": {"slidelearn": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "matplotlib_animations": False,
    "plot_gallery": "True",
}

# -- HTML --------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"slidelearn {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}


# -- Build-time generated pages ----------------------------------------------------
def _reset_generated():
    """Remove the generated pages of an earlier build (stale autosummary stubs would be
    orphan documents); sphinx-gallery's back-references are kept, it maintains them."""
    shutil.rmtree(GENERATED / "api", ignore_errors=True)
    for inc in GENERATED.glob("*.inc"):
        inc.unlink()
    GENERATED.mkdir(exist_ok=True)


def _write_benchmark_report():
    """Tables and figures of the recorded benchmarks, from benchmarks/make_report.py;
    kept from an earlier build whose inputs (names, sizes and times of the scripts and
    the results) were the same: the figures take a while, and the doctest build
    after the HTML one would draw them again."""
    script = ROOT / "benchmarks" / "make_report.py"
    out = GENERATED / "benchmarks"
    inputs = [*sorted((ROOT / "benchmarks").glob("*.py")),  # it loads other scripts
              *sorted((ROOT / "benchmarks" / "results").iterdir())]
    key = "\n".join(f"{p.name} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in inputs)
    stamp = out / ".inputs"
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == key:
        logger.info("[slidelearn] benchmark report: up to date")
        return
    shutil.rmtree(out, ignore_errors=True)
    spec = importlib.util.spec_from_file_location("_slidelearn_make_report", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.make_report(ROOT / "benchmarks" / "results", out,
                                 image_prefix="/generated/benchmarks/")
    stamp.write_text(key, encoding="utf-8")
    logger.info(f"[slidelearn] benchmark report: {len(written)} files")


# Subcommands the command line documentation describes.
CLI_COMMANDS = ("demo", "train", "evaluate", "predict")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def _plain_help_environment():
    """Fixed help width and no colours, whatever the terminal of the build."""
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR", "FORCE_COLOR",
                                            "PYTHON_COLORS")}
    os.environ.update(COLUMNS="90", NO_COLOR="1", PYTHON_COLORS="0")
    os.environ.pop("FORCE_COLOR", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _help_from_parser(parser):
    """``{None: main help, name: (summary, help)}`` from an argparse parser."""
    out = {None: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {a.dest: a.help for a in action._choices_actions}
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # aliases
                    continue
                seen.add(id(sub))
                out[name] = (summaries.get(name), sub.format_help())
    return out


def _indent(text, prefix="   "):
    return "\n".join(prefix + line if line.strip() else "" for line in text.splitlines())


def _write_cli_help():
    """``doc/generated/cli.inc``: the ``--help`` of the command and of each subcommand,
    from ``slidelearn._cli.build_parser()``. A missing parser or subcommand is a
    warning (so an error with ``-W``): the pages describe all of ``CLI_COMMANDS``."""
    cli = importlib.import_module("slidelearn._cli")
    lines = []
    if not hasattr(cli, "build_parser"):
        logger.warning("slidelearn._cli has no build_parser(): the command line "
                       "reference cannot be generated")
        helps = {}
    else:
        with _plain_help_environment():
            helps = _help_from_parser(cli.build_parser())
    if helps.get(None):
        lines += ["``slidelearn --help``", "~" * len("``slidelearn --help``"), "",
                  ".. code-block:: text", "", _indent(_ANSI.sub("", helps[None])), ""]
    names = [n for n in CLI_COMMANDS if n in helps]
    names += sorted(n for n in helps if n is not None and n not in CLI_COMMANDS)
    for name in names:
        summary, text = helps[name]
        title = f"``slidelearn {name}``"
        lines += [f".. _cli-{name}:", "", title, "~" * len(title), ""]
        if summary:
            lines += [summary[:1].upper() + summary[1:].rstrip(".") + ".", ""]
        lines += [".. code-block:: text", "", _indent(_ANSI.sub("", text)), ""]
    missing = [n for n in CLI_COMMANDS if n not in helps]
    if helps and missing:
        logger.warning(f"the slidelearn command has no {', '.join(missing)} subcommand, "
                       "which doc/user_guide/cli.rst describes")
    (GENERATED / "cli.inc").write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- API completeness --------------------------------------------------------------
def public_modules():
    """Every importable slidelearn module without a ``_private`` part in its name."""
    names = ["slidelearn"]
    for info in pkgutil.walk_packages(slidelearn.__path__, "slidelearn."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def documented_api_names(api_rst):
    """Full names listed in the ``autosummary`` directives of ``api_rst``."""
    names, module, in_block = set(), None, False
    for line in Path(api_rst).read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*\.\. (?:current)?module::\s*(\S+)", line)
        if m:
            module, in_block = m.group(1), False
            continue
        if re.match(r"\s*\.\. autosummary::", line):
            in_block = True
            continue
        if in_block:
            stripped = line.strip()
            if not stripped or stripped.startswith(":"):
                continue
            if not line.startswith((" ", "\t")):
                in_block = False
                continue
            name = stripped.lstrip("~")
            names.add(name if module is None or name.startswith("slidelearn.")
                      else f"{module}.{name}")
    return names


def check_api_complete(api_rst=DOC / "api.rst"):
    """Raise ``ConfigError`` listing the public names that ``api.rst`` lacks."""
    documented = documented_api_names(api_rst)
    missing = []
    for modname in public_modules():
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", ()):
            if name.startswith("__"):  # __version__
                continue
            if f"{modname}.{name}" not in documented:
                missing.append(f"{modname}.{name}")
    if missing:
        raise ConfigError(
            "doc/api.rst does not list these public names (add them to an autosummary "
            "table): " + ", ".join(sorted(missing)))


_reset_generated()
_write_benchmark_report()
_write_cli_help()
check_api_complete()


# -- Docstrings from other projects and data ---------------------------------------
_ROLE = re.compile(r":(?:ref|term|doc):`([^`<]*?)\s*(?:<[^`>]*>)?`")


def _plain_foreign_roles(app, what, name, obj, options, lines):
    """Methods inherited from scikit-learn (``score``, ``get_params``, metadata routing)
    refer to labels of scikit-learn's own documentation, which cannot resolve here
    (intersphinx is off): keep their text, drop the link."""
    module = getattr(obj, "__module__", None) or ""
    if module.split(".")[0] != "sklearn":
        return
    lines[:] = [_ROLE.sub(lambda m: m.group(1), line) for line in lines]


def _data_doc_comment(app, what, name, obj, options, lines):
    """A module constant such as ``CRITEO_CATEGORICAL_FEATURES`` is documented by the
    ``#:`` comment where it is defined (often a private submodule), never by the
    docstring of its type (numpy.ndarray): an instance has no docstring of its own."""
    if what != "data":
        return
    from sphinx.pycode import ModuleAnalyzer

    modname, _, attr = name.rpartition(".")
    comment = []
    for other, module in sorted(sys.modules.items()):
        if not (other == modname or other.startswith(modname + ".")) or module is None:
            continue
        if getattr(module, attr, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(other).find_attr_docs()
        except Exception:  # no source (compiled module)
            continue
        comment = list(docs.get(("", attr), []))
        if comment:
            break
    lines[:] = comment


def setup(app):
    """Connect the docstring fixes above."""
    app.connect("autodoc-process-docstring", _plain_foreign_roles)
    app.connect("autodoc-process-docstring", _data_doc_comment)
    return {"parallel_read_safe": True}
