"""Turn the recorded benchmark results into reStructuredText tables and figures.

Reads the JSON files in ``benchmarks/results/``:

* ``slide_*.json``, written by ``benchmarks/bench_slide.py --out``: the command,
  the machine, the data shape, the options and one result per (library, thread
  count) with training throughput, peak memory and exact / LSH top-5 inference;
* ``dlrm_*.json``, written by ``benchmarks/bench_dlrm.py --out``: rows with the
  keys ``impl``, ``shape``, ``threads``, ``samples_per_s``, ``ms_per_step``,
  ``peak_rss_gb`` and ``final_loss`` (a list of rows, JSON lines, or an object
  holding them under ``results`` or ``rows`` beside optional ``command`` and
  ``machine`` entries). There may be none yet.

* ``levels_slide_*.json`` and ``levels_dlrm_*.json``: runs of the same two scripts with
  ``--levels`` (the CPU optimisation levels of issue 6, each in its own process), for
  ``levels.inc``;

* ``contention_*.json``, written by ``benchmarks/bench_contention.py --out``: training
  beside busy processes and after a PyTorch model, for ``contention.inc``;

* ``defaults_*.json``, written by ``benchmarks/bench_defaults.py study --out``: the
  defaults study on the real data sets, every run a record, for ``defaults.inc``;

and writes, into one output folder, ``slide.inc``, ``dlrm.inc``, ``levels.inc``,
``contention.inc`` and ``lsh_summary.inc`` (reStructuredText to ``.. include::``) and one PNG figure per
recorded run. Every number comes from the JSON files: nothing is typed by hand.
The documentation build (``doc/conf.py``) runs it into ``doc/generated/benchmarks``.

Examples
--------
Regenerate the report of the recorded runs into a folder of your choice::

    python benchmarks/make_report.py --out /tmp/bench_report
"""
import argparse
import json
import math
import os
import re
import statistics
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Default output folder (git-ignored).
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "bench_results" / "report"

# Section underlines used in the generated files: they sit below the ``-`` sections
# of the page that includes them.
_RUN_UNDERLINE = "~"
_PART_UNDERLINE = "^"


# ------------------------------------------------------------------------ reading
def _load_json_or_lines(path):
    """A JSON document, or a list of objects when the file is JSON lines."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {i} is not JSON ({exc.msg})") from None
        return rows


def load_slide_run(path):
    """Read one ``bench_slide.py --out`` file.

    Parameters
    ----------
    path : str or path-like
        The JSON file.

    Returns
    -------
    run : dict
        The file's content with ``name`` (the file name without ``.json``) added.

    Raises
    ------
    ValueError
        If the file lacks the ``results`` list or the ``options`` of a
        ``bench_slide.py`` run.

    Examples
    --------
    >>> run = load_slide_run(sorted(RESULTS_DIR.glob("slide_*.json"))[0])
    >>> sorted(k for k in run if k in ("command", "machine", "results"))
    ['command', 'machine', 'results']
    """
    path = Path(path)
    run = _load_json_or_lines(path)
    if not isinstance(run, dict) or not isinstance(run.get("results"), list) \
            or not isinstance(run.get("options"), dict):
        raise ValueError(f"{path} is not a bench_slide.py result: it needs 'results' and "
                         "'options' entries")
    run = dict(run)
    run["name"] = path.stem
    return run


def load_dlrm_run(path):
    """Read one ``bench_dlrm.py --out`` file.

    Parameters
    ----------
    path : str or path-like
        A JSON list of rows, JSON lines, or a JSON object with the rows under
        ``results`` or ``rows`` (and optionally ``command`` and ``machine``).

    Returns
    -------
    run : dict
        ``name``, ``rows`` (list of dict), ``command`` and ``machine`` (None
        when the file does not record them).

    Raises
    ------
    ValueError
        If a row misses one of the keys ``impl``, ``shape``, ``threads`` and
        ``samples_per_s``.

    Examples
    --------
    >>> import json, tempfile, os
    >>> rows = [{"impl": "torch", "shape": "a", "threads": 1, "samples_per_s": 100.0}]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "dlrm_test.json")
    ...     with open(path, "w") as f:
    ...         json.dump(rows, f)
    ...     run = load_dlrm_run(path)
    >>> run["name"], len(run["rows"]), run["command"]
    ('dlrm_test', 1, None)
    """
    path = Path(path)
    data = _load_json_or_lines(path)
    meta = {}
    if isinstance(data, dict):
        meta = data
        rows = data.get("results", data.get("rows"))
    else:
        rows = data
    if not isinstance(rows, list):
        raise ValueError(f"{path} holds no list of DLRM result rows")
    for i, row in enumerate(rows):
        missing = [k for k in ("impl", "shape", "threads", "samples_per_s")
                   if not isinstance(row, dict) or k not in row]
        if missing:
            raise ValueError(f"{path}: row {i} lacks {', '.join(missing)}")
    return {"name": path.stem, "rows": rows, "command": meta.get("command"),
            "machine": meta.get("machine"), "meta": meta}


# ----------------------------------------------------------------------- formatting
def _num(x, digits=0):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _pct(x, digits=2):
    return "-" if x is None else f"{100 * x:.{digits}f}"


def _gb_from_bytes(n):
    return "-" if n is None else f"{n / 1e9:.2f}"


def _no_paths(text):
    """``text`` with every absolute path cut to its last part (``/home/me/.venv/bin/python``
    becomes ``python``): the pages show commands, not the folders of the machine that
    ran them.

    >>> _no_paths("/opt/venv/bin/python bench.py --out /tmp/run/a.json --n 3")
    'python bench.py --out a.json --n 3'
    """
    return re.sub(r"(?<![\w.~])/(?:[^\s/]+/)+([^\s/]+)", r"\1", str(text))


def _literal(text):
    """Inline literal that survives backquotes in ``text`` (absolute paths cut to their
    last part, :func:`_no_paths`)."""
    text = _no_paths(str(text).replace("\n", " "))
    if "``" in text:
        return ":code:`" + text.replace("`", "\\`") + "`"
    return f"``{text}``"


def _heading(title, char):
    return [title, char * len(title), ""]


def _list_table(header, rows, caption=None):
    """A ``list-table`` directive as a list of lines."""
    lines = [f".. list-table:: {caption}" if caption else ".. list-table::",
             "   :header-rows: 1", ""]
    for row in [header, *rows]:
        # A lone "-" would start a nested bullet list: missing values are an em dash.
        cells = ["\u2014" if c in (None, "", "-") else str(c) for c in row]
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {c}" for c in cells[1:])
    lines.append("")
    return lines


def _field_list(fields):
    lines = []
    for name, value in fields:
        if value not in (None, ""):
            lines.append(f":{name}: {value}")
    lines.append("")
    return lines


def _machine_text(machine):
    """One line describing the machine and software of a run."""
    if machine is None:
        return None
    if isinstance(machine, str):
        return machine
    parts = []
    cpu = machine.get("cpu")
    if cpu:
        cores = []
        if machine.get("logical_cores") is not None:
            cores.append(f"{machine['logical_cores']} logical cores")
        if machine.get("usable_cores") is not None:
            cores.append(f"{machine['usable_cores']} usable")
        if machine.get("memory_gb") is not None:
            cores.append(f"{machine['memory_gb']:.1f} GB RAM")
        parts.append(cpu + (f" ({', '.join(cores)})" if cores else ""))
    if machine.get("os"):
        parts.append(machine["os"])
    known = {"cpu", "logical_cores", "usable_cores", "memory_gb", "os", "python", "numpy",
             "scipy", "torch", "slidelearn", "slidelearn_path", "git_revision"}
    extra = [f"{k}: {v}" for k, v in machine.items() if k not in known and v is not None]
    return "; ".join(parts + extra) or None


def _software_text(machine):
    if not isinstance(machine, dict):
        return None
    names = [("python", "Python"), ("numpy", "NumPy"), ("scipy", "SciPy"),
             ("torch", "PyTorch"), ("slidelearn", "slidelearn")]
    parts = [f"{label} {machine[k]}" for k, label in names if machine.get(k)]
    if machine.get("git_revision") and machine["git_revision"] != "none":
        parts.append(f"git revision {machine['git_revision']}")
    return ", ".join(parts) or None


def _dims(value):
    """``(512, 256)`` as ``512-256``."""
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    return value


def _date_of(name):
    m = re.search(r"(\d{4}-\d{2}-\d{2})", name)
    return m.group(1) if m else None


# --------------------------------------------------------------------------- SLIDE
def _lsh_entries(inference):
    """``[(threshold, max_candidates, entry)]`` of a slidelearn result's LSH inference.

    ``lsh@t`` entries (threshold t, no cap) come first by threshold, then ``lsh@cM``
    entries (at most M candidates) by M, then ``lsh@tHN`` entries (threshold t plus
    the N most frequent labels scored for every row); a file with only ``lsh`` gives
    that one.
    """
    out = []
    for key, entry in inference.items():
        m = re.fullmatch(r"lsh@(\d+)(h\d+)?", key)
        if m:
            out.append((int(m.group(1)), entry.get("max_candidates"), entry))
            continue
        m = re.fullmatch(r"lsh@c(\d+)", key)
        if m:
            out.append((entry.get("threshold"), int(m.group(1)), entry))
    if not out and "lsh" in inference:
        lsh = inference["lsh"]
        out.append((lsh.get("threshold"), lsh.get("max_candidates"), lsh))
    return sorted(out, key=lambda e: (e[2].get("head_labels") or 0, e[1] is not None,
                                      e[1] or 0, e[0] is None, e[0] or 0))


def _lsh_label(threshold, cap, head=None):
    label = "lsh" if threshold is None else f"lsh t={threshold}"
    label = label if cap is None else f"{label} M={cap}"
    return label if not head else f"{label} +{head} head"


def _ok(results):
    return [r for r in results if "error" not in r]


def _slide_settings(opts):
    parts = [f"{opts.get('hash_family', '?')}",
             f"K={opts.get('n_codes')}", f"L={opts.get('n_tables')}",
             f"bin_size={opts.get('bin_size')}", f"range_pow={opts.get('range_pow')}",
             f"bucket_size={opts.get('bucket_size')}", f"min_active={opts.get('min_active')}",
             f"active_threshold={opts.get('active_threshold')}",
             f"rehash_interval={opts.get('rehash_interval')}",
             f"rebuild_interval={opts.get('rebuild_interval')}"]
    if opts.get("inference_max_candidates"):
        parts.append("inference_max_candidates="
                     + ", ".join(str(m) for m in opts["inference_max_candidates"]))
    if opts.get("inference_n_codes") is not None or opts.get("inference_n_tables") is not None:
        parts.append(f"inference tables K={opts.get('inference_n_codes')} "
                     f"L={opts.get('inference_n_tables')}")
    else:
        parts.append("LSH inference with the training tables")
    return ", ".join(parts)


def _slide_figure(run, path):
    """Training throughput by thread count and the inference speed / P@1 trade-off."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = _ok(run["results"])
    threads = sorted({r["threads"] for r in results})
    libs = [lib for lib in ("slidelearn", "torch") if any(r["library"] == lib for r in results)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")

    width = 0.8 / max(1, len(libs))
    for j, lib in enumerate(libs):
        xs, ys = [], []
        for i, t in enumerate(threads):
            r = next((r for r in results if r["library"] == lib and r["threads"] == t), None)
            if r is not None:
                xs.append(i + (j - (len(libs) - 1) / 2) * width)
                ys.append(r["train_samples_per_s"])
        label = "slidelearn (SLIDE)" if lib == "slidelearn" else "PyTorch (full softmax)"
        bars = ax1.bar(xs, ys, width=width, label=label)
        ax1.bar_label(bars, labels=[_num(y, 0 if y >= 100 else 1) for y in ys], fontsize=8)
    ax1.set_xticks(range(len(threads)), [str(t) for t in threads])
    ax1.set_xlabel("threads")
    ax1.set_ylabel("training samples / s (log scale)")
    ax1.set_yscale("log")
    ax1.set_title("Training throughput")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.margins(y=0.2)

    markers = {1: "o", 2: "s", 4: "^", 8: "D"}
    for r in results:
        if r["library"] != "slidelearn" or "inference" not in r:
            continue
        inf = r["inference"]
        pts = [("exact", inf["exact"])] if "exact" in inf else []
        pts += [(_lsh_label(t, c, e.get("head_labels")), e) for t, c, e in _lsh_entries(inf)]
        xs = [e["rows_per_s"] for _, e in pts]
        ys = [100 * e["p1"] for _, e in pts]
        line, = ax2.plot(xs, ys, marker=markers.get(r["threads"], "o"), linestyle="none",
                         label=f"{r['threads']} thread(s)")
        for (label, _), x, y in zip(pts, xs, ys):
            ax2.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                         color=line.get_color())
    prior = run.get("data", {}).get("prior_p1")
    if prior is not None:
        ax2.axhline(100 * prior, color="grey", linewidth=0.8, linestyle="--",
                    label="label-prior baseline")
    ax2.set_xscale("log")
    ax2.margins(x=0.12)
    ax2.set_xlabel("top-5 inference rows / s (log scale)")
    ax2.set_ylabel("test P@1 (%)")
    ax2.set_title("Exact vs LSH inference (slidelearn)")
    ax2.legend(fontsize=8)
    fig.suptitle(run["name"], fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def slide_run_rst(run, image=None):
    """reStructuredText for one SLIDE benchmark run.

    Parameters
    ----------
    run : dict
        A run from :func:`load_slide_run`.
    image : str or None, default=None
        Path of its figure as the documentation should reference it (None: no
        figure).

    Returns
    -------
    lines : list of str
        A section with the run's command, machine, threads and settings, the
        training table, the inference tables and the figure.

    Examples
    --------
    >>> run = load_slide_run(RESULTS_DIR / "slide_amazon670k_2026-11-22.json")
    >>> lines = slide_run_rst(run)
    >>> lines[0]
    'slide_amazon670k_2026-11-22'
    >>> any(line.startswith(":Command:") for line in lines)
    True
    """
    opts, data = run["options"], run.get("data", {})
    results = run["results"]
    lines = _heading(run["name"], _RUN_UNDERLINE)
    threads = opts.get("threads") or sorted({r["threads"] for r in results})
    data_txt = None
    if data:
        data_txt = (f"{_num(data.get('n_train'))} training and {_num(data.get('n_test'))} test "
                    f"rows ({_slide_source(opts)}), "
                    f"{_num(data.get('n_features'))} features, {_num(data.get('n_labels'))} "
                    f"labels, {_num(data.get('mean_nonzeros'), 1)} non-zeros and "
                    f"{_num(data.get('mean_labels'), 2)} labels per row")
    baseline = None
    if data.get("prior_p1") is not None:
        baseline = (f"label prior (the 5 most frequent training labels for every row): "
                    f"P@1 {_pct(data['prior_p1'])} %, P@5 {_pct(data.get('prior_p5'))} %")
    network = (f"sparse input -> {opts.get('hidden')} ReLU -> {_num(data.get('n_labels'))} "
               f"outputs, Adam lr={opts.get('lr')}, L2 alpha={opts.get('alpha')}, batch "
               f"{opts.get('batch_size')}, {opts.get('epochs')} epoch(s) via "
               f"``{opts.get('train_api')}``")
    lines += _field_list([
        ("Date", _date_of(run["name"])),
        ("Command", _literal(run.get("command", "not recorded"))),
        ("Machine", _machine_text(run.get("machine"))),
        ("Software", _software_text(run.get("machine"))),
        ("Threads", ", ".join(str(t) for t in threads)
         + " (each configuration in its own process)"),
        ("Data", data_txt),
        ("Baseline", baseline),
        ("Network", network),
        ("SLIDE", _slide_settings(opts)),
    ])
    failed = [r for r in results if "error" in r]
    for r in failed:
        lines += [f".. note:: {r.get('library')} with {r.get('threads')} thread(s) failed: "
                  f"{r['error']}", ""]

    summary = run.get("summary", {})
    targets = run.get("targets", {})
    rows = []
    for r in _ok(results):
        ratio = summary.get(str(r["threads"]), {}).get("train_speed_ratio")
        if r["library"] == "slidelearn":
            active, rtxt = _num(r.get("mean_active")), (
                "-" if ratio is None else f"{ratio:.1f}x")
        else:
            active, rtxt = f"{_num(data.get('n_labels'))} (full softmax)", "1.0x"
        rows.append([r["library"], r["threads"],
                     _num(r["train_samples_per_s"], 0 if r["train_samples_per_s"] >= 100 else 1),
                     active, _gb_from_bytes(r.get("peak_rss_bytes")), rtxt])
    lines += _heading("Training", _PART_UNDERLINE)
    lines += _list_table(["library", "threads", "training samples/s",
                          "active output neurons per sample", "peak RSS (GB)",
                          "speed vs PyTorch"], rows)
    if targets.get("train_speed_ratio") is not None:
        lines += [f"Target: at least {targets['train_speed_ratio']:g}x the PyTorch training "
                  f"throughput with {targets.get('at_threads')} threads. Timings exclude data "
                  "generation and model initialisation; peak RSS is that of the "
                  "configuration's own process.", ""]

    rows = []
    for r in _ok(results):
        if r["library"] != "slidelearn" or "inference" not in r:
            continue
        ex = r["inference"].get("exact")
        if ex is not None:
            rows.append([r["threads"], "exact", "-", "-", "-", _num(ex["rows_per_s"]), "1.0x",
                         _pct(ex["p1"]), _pct(ex["p5"]), "-"])
        for t, cap, e in _lsh_entries(r["inference"]):
            speed = None if ex is None else e["rows_per_s"] / ex["rows_per_s"]
            diff = None if ex is None else 100 * (e["p1"] - ex["p1"])
            rows.append([r["threads"], "lsh", t, cap, e.get("head_labels") or "-",
                         _num(e["rows_per_s"]),
                         "-" if speed is None else f"{speed:.1f}x", _pct(e["p1"]),
                         _pct(e["p5"]), "-" if diff is None else f"{diff:+.2f}"])
    if rows:
        n_test = _num(data.get("n_test")) if data else "the"
        lines += _heading("Top-5 inference", _PART_UNDERLINE)
        lines += _list_table(["threads", "inference", "threshold", "max candidates",
                              "head labels", "rows/s", "speed vs exact", "P@1 (%)", "P@5 (%)",
                              "P@1 vs exact (points)"], rows)
        lines += [f"On {n_test} test rows. ``exact`` ranks all output neurons, ``lsh`` only "
                  "those retrieved from at least *threshold* hash tables (at most *max "
                  "candidates* of them, the most-voted, where that is set)."]
        prior = data.get("prior_p1") if data else None
        weak = sorted({r["threads"] for r in _ok(results) if r["library"] == "slidelearn"
                       and prior is not None and "exact" in r.get("inference", {})
                       and r["inference"]["exact"]["p1"] < prior})
        if weak:
            lines[-1] += (" Note: with " + ", ".join(str(t) for t in weak) + " thread(s) the "
                          "exact P@1 of this run is below the label-prior baseline, so the "
                          "model trained poorly and its LSH comparison says little.")
        if targets.get("lsh_speedup") is not None:
            lines[-1] += (f" Target: ``lsh`` at least {targets['lsh_speedup']:g}x faster than "
                          f"``exact`` with at most {targets.get('lsh_max_p1_drop_points'):g} "
                          "point lower P@1.")
        lines.append("")

    torch_rows = [r for r in _ok(results) if r["library"] == "torch" and "inference" in r]
    if torch_rows:
        rows = []
        for r in torch_rows:
            inf = r["inference"].get("full", {})
            ratio = summary.get(str(r["threads"]), {}).get(
                "inference_speed_ratio_exact_vs_torch")
            rows.append([r["threads"], _num(inf.get("rows")), _num(inf.get("rows_per_s")),
                         _pct(inf.get("p1")), _pct(inf.get("p5")),
                         "-" if ratio is None else f"{ratio:.1f}x"])
        lines += _heading("PyTorch full-softmax inference", _PART_UNDERLINE)
        lines += _list_table(["threads", "rows", "rows/s", "P@1 (%)", "P@5 (%)",
                              "slidelearn exact vs PyTorch"], rows)
        batches = {r.get("timed_batches") for r in torch_rows}
        lines += [f"The PyTorch peer trains only {', '.join(str(b) for b in sorted(batches))} "
                  "timed batches (a full epoch would take hours), so its precision is near "
                  "chance; its row is there for the speed.", ""]

    if image is not None:
        lines += [f".. figure:: {image}", "   :width: 100%",
                  f"   :alt: training throughput and inference trade-off of {run['name']}", "",
                  "   Left: training samples/s by thread count. Right: top-5 inference rows/s "
                  "against test P@1 for exact and LSH inference (thresholds t).", ""]
    return lines


def lsh_summary_rst(runs):
    """A compact table of LSH against exact inference over all SLIDE runs.

    Parameters
    ----------
    runs : list of dict
        Runs from :func:`load_slide_run`.

    Returns
    -------
    lines : list of str
        A ``list-table`` (or a sentence when there is no run).

    Examples
    --------
    >>> runs = [load_slide_run(p) for p in sorted(RESULTS_DIR.glob("slide_*.json"))]
    >>> lsh_summary_rst(runs)[0]
    '.. list-table::'
    """
    rows, weak = [], False
    for run in runs:
        opts = run["options"]
        prior = run.get("data", {}).get("prior_p1")
        tables = ("training tables" if opts.get("inference_n_codes") is None
                  and opts.get("inference_n_tables") is None else
                  f"K={opts.get('inference_n_codes')}, L={opts.get('inference_n_tables')}")
        for r in _ok(run["results"]):
            ex = r.get("inference", {}).get("exact")
            if r["library"] != "slidelearn" or ex is None:
                continue
            mark = ""
            if prior is not None and ex["p1"] < prior:
                mark, weak = " (\\*)", True
            for t, cap, e in _lsh_entries(r["inference"]):
                rows.append([f":ref:`{run['name']} <bench-{run['name']}>`", tables,
                             r["threads"], t, cap, e.get("head_labels") or "-",
                             f"{e['rows_per_s'] / ex['rows_per_s']:.1f}x",
                             _pct(ex["p1"]) + mark, _pct(e["p1"]),
                             f"{100 * (e['p1'] - ex['p1']):+.2f}"])
    if not rows:
        return ["No recorded SLIDE benchmark run.", ""]
    lines = _list_table(["run", "LSH tables", "threads", "threshold", "max candidates",
                         "head labels", "speed vs exact", "P@1 exact (%)", "P@1 lsh (%)",
                         "difference (points)"], rows)
    if weak:
        lines += ["(\\*) The exact P@1 of this model is below the label-prior baseline of its "
                  "run (always predicting the most frequent training labels): the model "
                  "trained poorly, and its LSH comparison says little.", ""]
    return lines


# ---------------------------------------------------------------------------- DLRM
def _dlrm_figure(run, path):
    """Training samples/s of each implementation by thread count, one panel per shape."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run["rows"]
    shapes = sorted({str(r["shape"]) for r in rows})
    impls = sorted({r["impl"] for r in rows}, key=lambda s: (s != "slidelearn", s))
    fig, axes = plt.subplots(1, len(shapes), figsize=(4.5 * len(shapes), 3.8),
                             layout="constrained", squeeze=False)
    width = 0.8 / max(1, len(impls))
    for ax, shape in zip(axes[0], shapes):
        threads = sorted({int(r["threads"]) for r in rows if str(r["shape"]) == shape})
        for j, impl in enumerate(impls):
            xs, ys = [], []
            for i, thr in enumerate(threads):
                vals = [r["samples_per_s"] for r in rows if r["impl"] == impl
                        and str(r["shape"]) == shape and int(r["threads"]) == thr]
                if vals:
                    xs.append(i + (j - (len(impls) - 1) / 2) * width)
                    ys.append(vals[-1])
            bars = ax.bar(xs, ys, width=width, label=impl, color=f"C{j}")
            ax.bar_label(bars, labels=[_num(y) for y in ys], fontsize=8)
        ax.set_xticks(range(len(threads)), [str(t) for t in threads])
        ax.set_xlabel("threads")
        ax.set_ylabel("training samples / s")
        ax.set_title(f"shape {shape}")
        ax.set_xlim(-0.6, len(threads) - 0.4)
        ax.margins(y=0.15)
        ax.legend(fontsize=8)
    fig.suptitle(f"DLRM training throughput ({run['name']})", fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def dlrm_rst(runs, images=None):
    """reStructuredText for the DLRM benchmark runs.

    Parameters
    ----------
    runs : list of dict
        Runs from :func:`load_dlrm_run` (may be empty).
    images : dict or None, default=None
        Path of each run's throughput figure, by run name, as the documentation
        references it (runs without one get no figure).

    Returns
    -------
    lines : list of str
        One section per run (command, machine, threads, table) and the figure,
        or a sentence saying that no DLRM result is recorded yet.

    Examples
    --------
    >>> dlrm_rst([])[0]
    'No DLRM benchmark result is recorded yet (no ``benchmarks/results/dlrm_*.json``).'
    """
    if not runs:
        return ["No DLRM benchmark result is recorded yet (no "
                "``benchmarks/results/dlrm_*.json``).", ""]
    lines = []
    for run in runs:
        lines += [f".. _bench-{run['name']}:", ""]
        lines += _heading(run["name"], _RUN_UNDERLINE)
        meta = run.get("meta", {})
        opts = meta.get("options") or {}
        threads = sorted({int(r["threads"]) for r in run["rows"]})
        steps = None
        if opts.get("steps") is not None:
            steps = f"{opts['steps']} timed"
            if opts.get("warmup") is not None:
                steps += f" after {opts['warmup']} warm-up"
            steps += " per configuration"
            if opts.get("lr") is not None:
                steps += f", SGD learning rate {opts['lr']}"
            if opts.get("tail") is not None:
                steps += f"; final loss = mean of the last {opts['tail']} steps"
        targets = meta.get("targets")
        target_txt = None
        if isinstance(targets, dict) and targets:
            target_txt = (", ".join(f"shape {k}: {v:g}x" if isinstance(v, (int, float))
                                    else f"shape {k}: {v}" for k, v in targets.items())
                          + " (slidelearn vs torch training samples/s, as recorded)")
        lines += _field_list([
            ("Date", _date_of(run["name"])),
            ("Command", _literal(run["command"]) if run.get("command") else
             "not recorded in the file"),
            ("Machine", _machine_text(run.get("machine")) or "not recorded in the file"),
            ("Software", _software_text(run.get("machine"))),
            ("Threads", ", ".join(str(t) for t in threads)
             + " (each configuration in its own process)"),
            ("Steps", steps),
            ("Targets", target_txt),
        ])
        shapes = meta.get("shapes")
        if isinstance(shapes, dict) and shapes:
            used = sorted({str(r["shape"]) for r in run["rows"]})
            srows = []
            for name in used:
                sh = shapes.get(name)
                if not isinstance(sh, dict):
                    continue
                srows.append([name, sh.get("n_dense"), _dims(sh.get("bottom")), sh.get("d"),
                              _dims(sh.get("top")), sh.get("tables"), _num(sh.get("rows")),
                              sh.get("bag"), _num(sh.get("batch"))])
            if srows:
                lines += _list_table(["shape", "dense features", "bottom MLP hidden",
                                      "embedding dim", "top MLP hidden", "tables",
                                      "rows per table", "ids per bag", "batch"], srows)
        rows = []
        by_cfg = {}
        for r in run["rows"]:
            by_cfg.setdefault((str(r["shape"]), int(r["threads"])), {})[r["impl"]] = r
        for (shape, thr), impls in sorted(by_cfg.items()):
            ref = impls.get("torch")
            for impl in sorted(impls, key=lambda s: (s != "slidelearn", s)):
                r = impls[impl]
                ratio = "-"
                if ref is not None and impl != "torch" and ref.get("samples_per_s"):
                    ratio = f"{r['samples_per_s'] / ref['samples_per_s']:.2f}x"
                rows.append([shape, thr, impl, _num(r["samples_per_s"]),
                             _num(r.get("ms_per_step"), 1), _num(r.get("peak_rss_gb"), 2),
                             _num(r.get("final_loss"), 4), ratio])
        lines += _list_table(["shape", "threads", "implementation", "samples/s", "ms/step",
                              "peak RSS (GB)", "final loss", "speed vs torch"], rows)
        image = (images or {}).get(run["name"])
        if image is not None:
            lines += [f".. figure:: {image}", "   :width: 90%",
                      f"   :alt: DLRM training throughput of {run['name']}", "",
                      "   Training samples/s of each implementation by shape and thread "
                      "count.", ""]
    return lines


def _slide_source(opts):
    """Where a bench_slide run's rows came from, from its options.

    >>> _slide_source({"preset": "amazon-670k"})
    "synthetic, ``make_extreme_classification_preset('amazon-670k')``"
    >>> _slide_source({})
    'synthetic, ``make_extreme_classification`` (head-heavy default law)'
    """
    if opts.get("xc_data"):
        return f"``{opts['xc_data']}``"
    if opts.get("preset"):
        return f"synthetic, ``make_extreme_classification_preset({opts['preset']!r})``"
    return "synthetic, ``make_extreme_classification`` (head-heavy default law)"


def _slide_data_text(run):
    data, opts = run.get("data", {}), run.get("options", {})
    source = _slide_source(opts)
    return (f"{_num(data.get('n_train'))} training and {_num(data.get('n_test'))} test rows "
            f"({source}), {_num(data.get('n_features'))} features, "
            f"{_num(data.get('n_labels'))} labels")


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if n == 0 else (xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2]))


def levels_pooled(slide_runs):
    """Per data set, thread count and level: the runs' figures pooled.

    HOGWILD training with several threads takes a different path in every run (and a
    different seed draws other data and weights), so that one run's speed and P@1 are
    one draw each. Pooling pairs each level with the ``before`` and ``fp32`` levels of
    the same run.

    Parameters
    ----------
    slide_runs : list of dict
        ``bench_slide.py --levels`` runs from :func:`load_slide_run`.

    Returns
    -------
    rows : list of list
        ``[data, threads, level, runs, median samples/s, median vs before, median vs
        fp32, mean P@1 (%), mean P@1 vs fp32 (points), mean LSH P@1 (%), mean LSH P@1
        vs fp32 (points)]``, the ratios and differences taken within each run first
        (P@1 of exact and of LSH top-5 inference; "-" where a run did not record it).

    Examples
    --------
    >>> run = {"data": {"n_labels": 3}, "options": {}, "summary": {"levels": {"1": {
    ...     "levels": {"fp32": {"samples_per_s": 10.0, "p1": 0.5, "vs_fp32": 1.0},
    ...                "bf16": {"samples_per_s": 12.0, "p1": 0.52, "vs_fp32": 1.2}}}}}}
    >>> [r[2:5] for r in levels_pooled([run, run])]
    [['fp32', 2, '10'], ['bf16', 2, '12']]
    """
    pooled = {}
    for run in slide_runs:
        opts, n_labels = run.get("options", {}), run.get("data", {}).get("n_labels")
        data = (Path(opts["xc_data"]).name if opts.get("xc_data")
                else f"{opts['preset']}, {_num(n_labels)} labels" if opts.get("preset")
                else f"synthetic, {_num(n_labels)} labels")
        for thr, entry in run.get("summary", {}).get("levels", {}).items():
            fp32 = entry["levels"].get("fp32", {}).get("p1")
            fp32_lsh = entry["levels"].get("fp32", {}).get("p1_lsh")
            for level, r in entry["levels"].items():
                acc = pooled.setdefault((data, int(thr), level), {
                    "speed": [], "before": [], "fp32": [], "p1": [], "dp1": [], "lsh": [],
                    "dlsh": []})
                acc["speed"].append(r["samples_per_s"])
                for key in ("before", "fp32"):
                    if f"vs_{key}" in r:
                        acc[key].append(r[f"vs_{key}"])
                if r.get("p1") is not None:
                    acc["p1"].append(r["p1"])
                    if fp32 is not None:
                        acc["dp1"].append(100 * (r["p1"] - fp32))
                if r.get("p1_lsh") is not None:
                    acc["lsh"].append(r["p1_lsh"])
                    if fp32_lsh is not None:
                        acc["dlsh"].append(100 * (r["p1_lsh"] - fp32_lsh))
    rows = []
    for (data, thr, level), acc in pooled.items():
        mean = (lambda xs: sum(xs) / len(xs) if xs else None)
        rows.append([data, thr, level, len(acc["speed"]), _num(_median(acc["speed"])),
                     f"{_median(acc['before']):.2f}x" if acc["before"] else "-",
                     f"{_median(acc['fp32']):.2f}x" if acc["fp32"] else "-",
                     _pct(mean(acc["p1"])),
                     f"{mean(acc['dp1']):+.2f}" if acc["dp1"] else "-",
                     _pct(mean(acc["lsh"])),
                     f"{mean(acc['dlsh']):+.2f}" if acc["dlsh"] else "-"])
    return rows


def levels_rst(slide_runs, dlrm_runs):
    """reStructuredText for the optimisation-level runs of both benchmarks.

    Parameters
    ----------
    slide_runs : list of dict
        ``bench_slide.py --levels`` runs from :func:`load_slide_run`.
    dlrm_runs : list of dict
        ``bench_dlrm.py --levels`` runs from :func:`load_dlrm_run`.

    Returns
    -------
    lines : list of str
        One section per run with its command, machine, data and a table of every
        level: samples/s, the ratios to ``before`` and ``fp32``, and the model quality
        (P@1 of exact and of LSH top-5 inference and the last epoch's training loss for
        SLIDE, the final loss for DLRM).

    Examples
    --------
    >>> levels_rst([], [])[0]
    'No optimisation-level run is recorded (no ``benchmarks/results/levels_*.json``).'
    """
    if not slide_runs and not dlrm_runs:
        return ["No optimisation-level run is recorded (no "
                "``benchmarks/results/levels_*.json``).", ""]
    lines = []
    pooled = levels_pooled(slide_runs)
    if len(slide_runs) > 1:
        lines += _heading("SlideClassifier, all runs pooled", _RUN_UNDERLINE)
        lines += ["The runs below, per data set, thread count and level: the median "
                  "speed, the median of each run's ratios to its own ``before`` and "
                  "``fp32`` levels, and the mean P@1 (of exact and of LSH top-5 inference) "
                  "and mean P@1 difference to ``fp32`` over the runs (runs with another "
                  "``--seed`` have other data and initial weights).", ""]
        lines += _list_table(["data", "threads", "level", "runs", "median samples/s",
                              "vs before", "vs fp32", "mean P@1 (%)",
                              "mean P@1 vs fp32 (points)", "mean LSH P@1 (%)",
                              "mean LSH P@1 vs fp32 (points)"], pooled)
    for run in slide_runs:
        lines += [f".. _bench-{run['name']}:", ""]
        lines += _heading(run["name"], _RUN_UNDERLINE)
        opts = run["options"]
        lines += _field_list([
            ("Date", _date_of(run["name"])),
            ("Command", _literal(run.get("command", "not recorded"))),
            ("Machine", _machine_text(run.get("machine"))),
            ("Data", _slide_data_text(run)),
            ("Training", f"{opts.get('epochs')} epoch(s) via ``{opts.get('train_api')}``, "
                         f"hidden {opts.get('hidden')}, batch {opts.get('batch_size')}"),
        ])
        levels = run.get("summary", {}).get("levels", {})
        rows = []
        for thr in sorted(levels, key=int):
            for level, r in levels[thr]["levels"].items():
                rows.append([thr, level, _num(r["samples_per_s"]),
                             f"{r['vs_before']:.2f}x" if "vs_before" in r else "-",
                             f"{r['vs_fp32']:.2f}x" if "vs_fp32" in r else "-",
                             _pct(r.get("p1")),
                             f"{r['p1_diff_vs_fp32_points']:+.2f}"
                             if "p1_diff_vs_fp32_points" in r else "-",
                             _pct(r.get("p1_lsh")),
                             f"{r['p1_lsh_diff_vs_fp32_points']:+.2f}"
                             if "p1_lsh_diff_vs_fp32_points" in r else "-",
                             _num(r.get("loss"), 4)])
        lines += _list_table(["threads", "level", "samples/s", "vs before", "vs fp32",
                              "P@1 (%)", "P@1 vs fp32 (points)", "LSH P@1 (%)",
                              "LSH P@1 vs fp32 (points)", "training loss"], rows)
    for run in dlrm_runs:
        lines += [f".. _bench-{run['name']}:", ""]
        lines += _heading(run["name"], _RUN_UNDERLINE)
        opts = run.get("meta", {}).get("options") or {}
        lines += _field_list([
            ("Date", _date_of(run["name"])),
            ("Command", _literal(run["command"]) if run.get("command") else "not recorded"),
            ("Machine", _machine_text(run.get("machine"))),
            ("Steps", f"{opts.get('steps')} timed after {opts.get('warmup')} warm-up, SGD "
                      f"learning rate {opts.get('lr')}; final loss = mean of the last "
                      f"{opts.get('tail')} steps" if opts else None),
        ])
        by_cfg = {}
        for r in run["rows"]:
            by_cfg.setdefault((str(r["shape"]), int(r["threads"])), {})[
                r.get("level") or r["impl"]] = r
        rows = []
        for (shape, thr), impls in sorted(by_cfg.items()):
            before, fp32 = impls.get("before"), impls.get("fp32")
            for name, r in impls.items():
                rows.append([shape, thr, name, _num(r["samples_per_s"]),
                             _num(r.get("ms_per_step"), 1),
                             f"{r['samples_per_s'] / before['samples_per_s']:.2f}x"
                             if before else "-",
                             f"{r['samples_per_s'] / fp32['samples_per_s']:.2f}x"
                             if fp32 else "-",
                             _num(r.get("final_loss"), 4),
                             f"{100 * (r['final_loss'] / fp32['final_loss'] - 1):+.2f}%"
                             if fp32 and r.get("final_loss") is not None else "-"])
        lines += _list_table(["shape", "threads", "level", "samples/s", "ms/step",
                              "vs before", "vs fp32", "final loss", "loss vs fp32"], rows)
    return lines


def load_mpi_run(path):
    """Read one ``bench_mpi.py --out`` file.

    Parameters
    ----------
    path : str or path-like
        A JSON object with the rows under ``results`` (and ``command``, ``machine``).

    Returns
    -------
    run : dict
        ``name``, ``rows``, ``command``, ``machine`` and ``meta`` (the whole object).

    Raises
    ------
    ValueError
        If a row misses one of the keys ``model``, ``ranks`` and ``ms_per_step``.

    Examples
    --------
    >>> import json, tempfile, os
    >>> rows = [{"model": "dlrm", "ranks": 2, "ms_per_step": 40.0}]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "mpi_test.json")
    ...     with open(path, "w") as f:
    ...         json.dump({"results": rows}, f)
    ...     run = load_mpi_run(path)
    >>> run["name"], len(run["rows"])
    ('mpi_test', 1)
    """
    path = Path(path)
    data = _load_json_or_lines(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError(f"{path} holds no list of MPI result rows under 'results'")
    for i, row in enumerate(data["results"]):
        missing = [k for k in ("model", "ranks", "ms_per_step")
                   if not isinstance(row, dict) or k not in row]
        if missing:
            raise ValueError(f"{path}: row {i} lacks {', '.join(missing)}")
    return {"name": path.stem, "rows": data["results"], "command": data.get("command"),
            "machine": data.get("machine"), "meta": data}


def mpi_rst(runs):
    """reStructuredText for the MPI benchmark runs.

    Parameters
    ----------
    runs : list of dict
        Runs from :func:`load_mpi_run` (may be empty).

    Returns
    -------
    lines : list of str
        One section per run: command, machine, and a table of the time per step
        and the bytes rank 0 sends per step by rank count.

    Examples
    --------
    >>> mpi_rst([])[0]
    'No MPI benchmark result is recorded yet (no ``benchmarks/results/mpi_*.json``).'
    """
    if not runs:
        return ["No MPI benchmark result is recorded yet (no "
                "``benchmarks/results/mpi_*.json``).", ""]
    lines = []
    for run in runs:
        lines += [f".. _bench-{run['name']}:", ""]
        lines += _heading(run["name"], _RUN_UNDERLINE)
        opts = run["meta"].get("options") or {}
        lines += _field_list([
            ("Date", _date_of(run["name"])),
            ("Command", _literal(run["command"]) if run.get("command") else
             "not recorded in the file"),
            ("Machine", _machine_text(run.get("machine")) or "not recorded in the file"),
            ("Software", _software_text(run.get("machine"))),
            ("Threads", f"{opts.get('threads', '?')} per rank, all ranks on this machine"),
            ("Steps", f"{opts.get('steps', '?')} timed, after 2 warm-up steps"),
        ])
        rows = []
        for r in run["rows"]:
            mb = [_num((r.get(f"{k}_bytes_per_step") or 0) / 1e6, 3)
                  for k in ("ids", "pooled", "grad", "allreduce", "activations", "normalisers",
                            "hidden_grad", "replicated_grad")]
            rows.append([r["model"], r["ranks"], _num(r["ms_per_step"], 1),
                         _num(r.get("comm_ms_per_step"), 1),
                         _num((r.get("sent_bytes_per_step") or 0) / 1e6, 2)]
                        + mb)
        # keep only the traffic columns some row uses
        names = ["ids", "pooled", "grad", "allreduce", "hidden activations",
                 "normalisers", "d loss/d hidden", "replicated-layer gradients"]
        used = [i for i in range(len(names)) if any(row[5 + i] not in ("0", "0.000")
                                                    for row in rows)]
        rows = [row[:5] + [row[5 + i] for i in used] for row in rows]
        lines += _list_table(["model", "ranks", "ms/step", "of which comm. wait (ms)",
                              "MB sent/step"] + [f"{names[i]} (MB)" for i in used], rows)
    return lines


# ---------------------------------------------------------------------------- main
def make_report(results_dir=RESULTS_DIR, out_dir=DEFAULT_OUT, image_prefix=None):
    """Write the benchmark tables and figures from the recorded JSON results.

    Parameters
    ----------
    results_dir : str or path-like, default=benchmarks/results
        Folder holding ``slide_*.json``, ``dlrm_*.json`` and ``mpi_*.json``.
    out_dir : str or path-like, default=bench_results/report
        Folder to write into (created if needed); the default, at the root of
        the repository, is git-ignored.
    image_prefix : str or None, default=None
        Prefix of the figure paths written into the reStructuredText (for
        Sphinx, e.g. ``"/generated/benchmarks/"``); None references the figures
        by file name, relative to ``out_dir``.

    Returns
    -------
    written : list of pathlib.Path
        The files written: ``slide.inc``, ``lsh_summary.inc``, ``dlrm.inc``,
        ``mpi.inc``, ``levels.inc``, ``contention.inc``, ``defaults.inc``, ``tta.inc``
        and the PNG figures.

    Raises
    ------
    FileNotFoundError
        If ``results_dir`` is not a folder.
    ValueError
        If a result file does not have the expected schema.

    Examples
    --------
    One recorded run (the documentation build writes the report of them all):

    >>> import shutil, tempfile
    >>> with tempfile.TemporaryDirectory() as res, tempfile.TemporaryDirectory() as tmp:
    ...     _ = shutil.copy(RESULTS_DIR / "slide_amazon670k_2026-11-22.json", res)
    ...     names = sorted(p.name for p in make_report(res, out_dir=tmp))
    >>> [name for name in names if name.endswith(".inc")]
    ['contention.inc', 'defaults.inc', 'dlrm.inc', 'levels.inc', 'lsh_summary.inc', 'mpi.inc', 'slide.inc', 'tta.inc']
    >>> any(name.startswith("slide_") and name.endswith(".png") for name in names)
    True
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = "" if image_prefix is None else str(image_prefix)
    written = []

    slide_runs = [load_slide_run(p) for p in sorted(results_dir.glob("slide_*.json"))]
    lines = []
    if not slide_runs:
        lines = ["No SLIDE benchmark result is recorded (no "
                 "``benchmarks/results/slide_*.json``).", ""]
    for run in slide_runs:
        png = out_dir / f"{run['name']}.png"
        figure = None
        if _ok(run["results"]):
            _slide_figure(run, png)
            written.append(png)
            figure = prefix + png.name
        lines += [f".. _bench-{run['name']}:", ""]
        lines += slide_run_rst(run, image=figure)
    written.append(_write(out_dir / "slide.inc", lines))
    written.append(_write(out_dir / "lsh_summary.inc", lsh_summary_rst(slide_runs)))

    dlrm_runs = [load_dlrm_run(p) for p in sorted(results_dir.glob("dlrm_*.json"))]
    figures = {}
    for run in dlrm_runs:
        if run["rows"]:
            png = out_dir / f"{run['name']}.png"
            _dlrm_figure(run, png)
            written.append(png)
            figures[run["name"]] = prefix + png.name
    written.append(_write(out_dir / "dlrm.inc", dlrm_rst(dlrm_runs, images=figures)))
    mpi_runs = [load_mpi_run(p) for p in sorted(results_dir.glob("mpi_*.json"))]
    written.append(_write(out_dir / "mpi.inc", mpi_rst(mpi_runs)))
    written.append(_write(out_dir / "contention.inc", contention_rst(
        [dict(_load_json_or_lines(p), name=p.stem)
         for p in sorted(results_dir.glob("contention_*.json"))])))
    written.append(_write(out_dir / "defaults.inc", defaults_rst(
        [dict(_load_json_or_lines(p), name=p.stem)
         for p in sorted(results_dir.glob("defaults_*.json"))])))
    tta_lines, tta_figures = tta_rst(
        [dict(_load_json_or_lines(p), name=p.stem)
         for p in sorted(results_dir.glob("tta_*.json"))], out_dir, prefix)
    written += tta_figures
    written.append(_write(out_dir / "tta.inc", tta_lines))
    written.append(_write(out_dir / "levels.inc", levels_rst(
        [load_slide_run(p) for p in sorted(results_dir.glob("levels_slide_*.json"))],
        [load_dlrm_run(p) for p in sorted(results_dir.glob("levels_dlrm_*.json"))])))
    return sorted(written)


def _tta_module():
    """``bench_time_to_accuracy.py`` (beside this file) as a module: its summary
    tables and figures are the ones its ``report`` command prints."""
    import importlib.util
    path = Path(__file__).resolve().with_name("bench_time_to_accuracy.py")
    spec = importlib.util.spec_from_file_location("_slidelearn_bench_tta", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tta_rst(runs, out_dir, prefix=""):
    """reStructuredText and figures for the runs of ``bench_time_to_accuracy.py study``.

    Parameters
    ----------
    runs : list of dict
        The recorded ``tta_*.json`` files, each with ``name`` added.
    out_dir : pathlib.Path
        Where the figures are written (a folder per run).
    prefix : str, default=""
        Prefix of the figure paths in the reStructuredText.

    Returns
    -------
    lines : list of str
        Per run: the command, machine and software, the summary tables of every data
        set (``curves_rst``) and one P@1-against-seconds figure per data set.
    figures : list of pathlib.Path
        The figures written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     lines, figures = tta_rst([], Path(tmp))
    >>> lines[0].startswith("No time-to-accuracy")
    True
    """
    if not runs:
        return ["No time-to-accuracy result is recorded (no "
                "``benchmarks/results/tta_*.json``).", ""], []
    module = _tta_module()
    lines, figures = [], []
    for run in runs:
        lines += _run_header(run, run.get("command", "bench_time_to_accuracy.py"))
        lines += module.curves_rst(run, underline=_PART_UNDERLINE, curves=False)
        for path in module.plot_curves(run, str(out_dir / run["name"])):
            path = Path(path)
            figures.append(path)
            lines += [f".. image:: {prefix}{run['name']}/{path.name}", "   :width: 80%", ""]
    return lines, figures


def _run_header(run, command):
    """Anchor, heading and the Date / Command / Machine / Software fields of a recorded
    run; ``command`` is the script and its arguments, relative to ``benchmarks/``."""
    return ([f".. _bench-{run['name']}:", ""] + _heading(run["name"], _RUN_UNDERLINE)
            + _field_list([
                ("Date", _date_of(run["name"])),
                ("Command", _literal("python benchmarks/" + command)),
                ("Machine", _machine_text(run.get("machine")) or "not recorded in the file"),
                ("Software", _software_text(run.get("machine"))),
            ]))


def contention_rst(runs):
    """reStructuredText for the runs of ``benchmarks/bench_contention.py``.

    Parameters
    ----------
    runs : list of dict
        The recorded ``contention_*.json`` files, each with ``name`` added.

    Returns
    -------
    lines : list of str
        One section per run: command, machine, and a table per case (every
        configuration's median, range and runs) with the ratio against its target.

    Examples
    --------
    >>> contention_rst([])[0]
    'No contention benchmark result is recorded yet (no ``benchmarks/results/contention_*.json``).'
    """
    if not runs:
        return ["No contention benchmark result is recorded yet (no "
                "``benchmarks/results/contention_*.json``).", ""]
    cases = [("busy", "SlideClassifier beside busy processes", "seconds", "training s", 2,
              "busy / alone"),
             ("busy_before", "The same, before (the checkout given to ``--before``)",
              "seconds", "training s", 2, "busy / alone"),
             ("torch", "DLRMClassifier after a PyTorch model in the same process",
              "samples_per_s", "samples/s", 0, "fresh / after torch"),
             ("torch_before", "The same, before", "samples_per_s", "samples/s", 0,
              "fresh / after torch")]
    lines = []
    for run in runs:
        lines += _run_header(run, "bench_contention.py " + " ".join(run.get("command") or []))
        for key, title, field, unit, digits, ratio_name in cases:
            case = run.get(key)
            if not case:
                continue
            rows = []
            for name, values in case["runs"].items():
                v = [r[field] for r in values]
                rows.append([name, _num(float(statistics.median(v)), digits),
                             f"{_num(min(v), digits)} - {_num(max(v), digits)}",
                             ", ".join(_num(x, digits) for x in v)])
            lines += _list_table(
                ["configuration", f"median {unit}", "range", "runs"], rows,
                caption=f"{title}: {ratio_name} {case['ratio']:.2f}x (target at most "
                        f"{case['target']}x: {'met' if case['met'] else 'not met'})")
    return lines


# Columns of the defaults tables, per kind of data set: (record key, header, digits)
_DEFAULTS_COLUMNS = {
    "xc": [("p@1", "P@1", 4), ("p@3", "P@3", 4), ("p@5", "P@5", 4), ("psp@1", "PSP@1", 4),
           ("psp@3", "PSP@3", 4), ("psp@5", "PSP@5", 4), ("fit_s", "fit s", 2),
           ("predict_s", "predict s", 2), ("model_bytes", "model MB", 1)],
    "movielens": [("rmse", "RMSE", 4), ("fit_s", "fit s", 2), ("model_bytes", "model MB", 1)],
    "criteo": [("log_loss", "log loss", 4), ("auc", "AUC", 4), ("fit_s", "fit s", 2)],
}


def defaults_rst(runs):
    """reStructuredText for the runs of ``benchmarks/bench_defaults.py study``.

    Parameters
    ----------
    runs : list of dict
        The recorded ``defaults_*.json`` files, each with ``name`` added.

    Returns
    -------
    lines : list of str
        One section per run (command, machine) and one table per data set: every
        method and thread count with the mean over seeds and, after ``±``, half the
        range between the worst and best seed; the last columns give the fewest
        distinct top-1 labels and distinct ranked top-5 lists of any seed (one top-5
        list is a collapse to one answer; one top-1 label is not, where one label is in
        nearly every row).

    Examples
    --------
    >>> defaults_rst([])[0]
    'No defaults study is recorded yet (no ``benchmarks/results/defaults_*.json``).'
    """
    if not runs:
        return ["No defaults study is recorded yet (no "
                "``benchmarks/results/defaults_*.json``).", ""]
    lines = []
    for run in runs:
        lines += _run_header(run, run.get("command", ""))
        records = [r for r in run["records"] if "error" not in r]
        failed = [r for r in run["records"] if "error" in r]
        for data in sorted({r["data"] for r in records}):
            kind = ("movielens" if data.startswith("movielens") else
                    data if data in _DEFAULTS_COLUMNS else "xc")
            cols = _DEFAULTS_COLUMNS[kind]
            groups = {}
            for r in records:
                if r["data"] == data:
                    groups.setdefault((r["label"], r["threads"]), []).append(r)
            rows = []
            for (label, threads), rs in sorted(groups.items()):
                row = [label, threads, len(rs)]
                for key, _, digits in cols:
                    vals = [r[key] for r in rs if r.get(key) is not None]
                    if key == "model_bytes":
                        vals = [v / 1e6 for v in vals]
                    if not vals:
                        row.append("-")
                        continue
                    half = (max(vals) - min(vals)) / 2
                    row.append(f"{statistics.mean(vals):.{digits}f}"
                               + (f" ± {half:.{digits}f}" if len(vals) > 1 else ""))
                if kind == "xc":
                    row.append(min(r["distinct_top1"] for r in rs))
                    # recorded since 2026-12-05; earlier runs have only the top-1 count
                    lists = [r["distinct_top5"] for r in rs if "distinct_top5" in r]
                    row.append(min(lists) if lists else "-")
                rows.append(row)
            header = ["method", "threads", "seeds"] + [h for _, h, _ in cols]
            header += ["distinct top-1 (min)", "top-5 lists (min)"] if kind == "xc" else []
            lines += _list_table(header, rows, caption=data)
        if failed:
            lines += ["Runs that failed: " + "; ".join(
                f"{r['data']} {r['label']} seed {r['seed']}: {r['error']}" for r in failed), ""]
    return lines


def _write(path, lines):
    text = "\n".join(lines).rstrip("\n") + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def main(argv=None):
    """Command line: ``python benchmarks/make_report.py [--results DIR] [--out DIR]``.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success.

    Examples
    --------
    An empty results folder (``make_report``'s example runs the recorded ones):

    >>> import io, tempfile, contextlib
    >>> with tempfile.TemporaryDirectory() as res, tempfile.TemporaryDirectory() as tmp:
    ...     with contextlib.redirect_stdout(io.StringIO()) as out:
    ...         status = main(["--results", res, "--out", tmp])
    >>> status, sorted(os.path.basename(p) for p in out.getvalue().split())[:2]
    (0, ['contention.inc', 'defaults.inc'])
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS_DIR),
                   help="folder of the recorded JSON results (default: benchmarks/results)")
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="folder to write into (default: bench_results/report, git-ignored)")
    p.add_argument("--image-prefix", default=None,
                   help="prefix of the figure paths in the generated reStructuredText")
    args = p.parse_args(argv)
    for path in make_report(args.results, args.out, args.image_prefix):
        print(os.fspath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
