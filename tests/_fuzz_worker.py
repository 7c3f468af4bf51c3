"""Worker process of the fuzz tests (tests/test_fuzz_*.py).

    python tests/_fuzz_worker.py KIND < examples.json

KIND is ``slide``, ``dlrm`` or ``xc``. Reads a JSON list of examples drawn by the
tests, runs each (building its data from the example's seed), and prints one JSON line:
a list with, for each example, a dict of what was observed (shapes, whether
probabilities sum to 1, whether a pickled copy predicts the same, the exception a bad
input raised, ...). The tests assert on those facts and on the exit status: examples
run here, in a process of their own, so that memory corruption (glibc's abort at exit,
a segfault, a sanitizer report) shows as a failed exit status instead of killing
pytest or going unnoticed.

    python tests/_fuzz_worker.py serve

A fork server (``_fuzz.run_worker`` and ``_fuzz.run_cli`` use it): it imports
slidelearn once, then for each JSON request line on stdin forks a child that runs the
examples (or the ``slidelearn`` command line) with its stdout and stderr in the files
the request names, and exits as a worker process would, through the interpreter's
normal shutdown. The server answers a line with the child's exit status. A worker
process spends most of its time importing scikit-learn; a fork costs milliseconds.
"""
import json
import pickle
import sys
import traceback
import warnings

import numpy as np
import scipy.sparse as sp


def _error(exc):
    return {"type": type(exc).__name__, "value_error": isinstance(exc, ValueError),
            "message": str(exc)}


def _to_format(X, fmt, index_dtype, dtype):
    """Dense X (float64) as ``fmt`` (dense, csr, csc, coo) of ``dtype`` with sparse
    indices of ``index_dtype``."""
    X = X.astype(dtype)
    if fmt == "dense":
        return X
    M = getattr(sp, f"{fmt}_matrix")(X)
    if fmt == "coo":
        M.row, M.col = M.row.astype(index_dtype), M.col.astype(index_dtype)
    else:
        M.indices, M.indptr = M.indices.astype(index_dtype), M.indptr.astype(index_dtype)
    return M


# --------------------------------------------------------------------------- SLIDE
def _slide_data(ex):
    if "make_multilabel" in ex:  # a problem of sklearn.datasets (a reported bug's input)
        from sklearn.datasets import make_multilabel_classification

        X, Y = make_multilabel_classification(**ex["make_multilabel"])
        return _to_format(X.astype(np.float64), ex["x_format"], np.dtype(ex["index_dtype"]),
                          np.dtype(ex["dtype"])), Y, list(range(Y.shape[1])), not Y.any()
    rng = np.random.default_rng(ex["seed"])
    n, d, L = ex["n_samples"], ex["n_features"], ex["n_labels"]
    X = rng.uniform(0.05, 2.0, (n, d)) * (rng.random((n, d)) < ex["density"])
    X[ex["empty_rows"]] = 0.0  # rows with no features
    if ex["multilabel"]:
        Y = np.zeros((n, L), dtype=np.int64)
        for i in range(n):
            Y[i, rng.choice(L, int(rng.integers(1, min(L, 4) + 1)), replace=False)] = 1
        Y[ex["full_rows"]] = 1      # rows with every label
        Y[ex["unlabeled_rows"]] = 0
        y = sp.csr_matrix(Y) if ex["y_sparse"] else Y
        labels = list(range(L))
        all_unlabeled = not Y.any()
    else:
        y = rng.integers(0, L, n)
        if ex["full_rows"]:  # every class present when there are rows enough
            y[: min(n, L)] = np.arange(min(n, L))
        if ex["drop_class"] and L > 1:  # partial_fit's classes= names a label y lacks
            y[y == L - 1] = 0
        labels = list(range(L))
        if ex["str_labels"]:
            y = np.array([f"c{v:02d}" for v in y])
            labels = [f"c{v:02d}" for v in labels]
        all_unlabeled = False
    return _to_format(X, ex["x_format"], np.dtype(ex["index_dtype"]), np.dtype(ex["dtype"])), \
        y, labels, all_unlabeled


def _topk_facts(clf, X, k, mode, logits):
    labels, scores = clf.predict_topk(X, k=k, inference=mode)
    classes = list(clf.classes_)
    pos = {c: i for i, c in enumerate(classes)}
    kk = min(k, len(classes))
    cols = np.array([[pos.get(v, -1) for v in row] for row in labels.tolist()],
                    dtype=np.int64).reshape(labels.shape)
    facts = {
        "shape": list(labels.shape), "expected_shape": [X.shape[0], kk],
        "labels_in_classes": bool((cols >= 0).all()),
        "distinct": all(len(set(r)) == len(r) for r in cols.tolist()),
        "finite": bool(np.isfinite(scores).all()),
        "sorted": bool((np.diff(scores, axis=1) <= 0).all()),
    }
    if logits is not None and cols.size and (cols >= 0).all():
        ref = np.take_along_axis(logits, cols, axis=1)
        facts["scores_match_logits"] = bool(np.allclose(scores, ref, rtol=1e-4, atol=1e-4))
        if mode == "exact":
            # the best score is the best logit (ties may pick another label)
            facts["top1_is_max"] = bool(np.allclose(scores[:, 0], logits.max(axis=1),
                                                    rtol=1e-4, atol=1e-4))
    return facts, (labels, scores)


# every inference mode is checked on the same facts (ivf: clusters chosen and scored
# by their own kernels; norm: a compact copy of the rows)
TOPK_MODES = ("exact", "lsh", "ivf", "norm")


def run_slide(ex):
    from slidelearn import SlideClassifier

    X, y, labels, all_unlabeled = _slide_data(ex)
    clf = SlideClassifier(**ex["params"])
    out = {"all_unlabeled": all_unlabeled}
    try:
        if ex["mode"] == "fit":
            clf.fit(X, y)
        else:
            classes = np.array(labels)
            clf.partial_fit(X, y, classes=classes)
            clf.partial_fit(X, y)  # a second call continues the same model
    except ValueError as exc:
        out["fit_error"] = _error(exc)
        return out
    out["fit_error"] = None
    C = len(clf.classes_)
    out["n_classes"] = C
    out["classes"] = [str(c) for c in clf.classes_]
    out["multilabel"] = bool(clf.multilabel_)
    out["loss"] = clf.loss_

    pred = clf.predict(X)
    proba = clf.predict_proba(X)
    dec = clf.decision_function(X)
    logits = dec if dec.ndim == 2 else None
    out["predict"] = {"shape": list(pred.shape), "sparse": bool(sp.issparse(pred)),
                      "dtype": str(pred.dtype)}
    if clf.multilabel_:
        P = pred.toarray() if sp.issparse(pred) else pred
        out["predict"].update(binary=bool(np.isin(P, (0, 1)).all()),
                              min_labels_per_row=int(P.sum(axis=1).min(initial=1)))
    else:
        out["predict"]["in_classes"] = bool(np.isin(pred, clf.classes_).all())
        if logits is not None:  # the predicted class has the best logit (up to ties)
            col = np.searchsorted(clf.classes_, pred)
            best = np.take_along_axis(logits, col[:, None], axis=1)[:, 0]
            out["predict"]["is_argmax"] = bool(np.allclose(best, logits.max(axis=1),
                                                           rtol=1e-4, atol=1e-4))
        elif dec.ndim == 1:  # binary: the logit difference of classes_[1] over classes_[0]
            sure = np.abs(dec) > 1e-4
            out["predict"]["is_argmax"] = bool(np.array_equal(
                pred[sure], clf.classes_[(dec[sure] > 0).astype(int)]))
    out["proba"] = {"shape": list(proba.shape), "finite": bool(np.isfinite(proba).all()),
                    "in_01": bool(((proba >= 0) & (proba <= 1)).all()),
                    "max_sum_error": float(np.abs(proba.sum(axis=1) - 1).max(initial=0))}
    out["decision_shape"] = list(dec.shape)
    out["topk"] = {}
    results = {}
    for mode in TOPK_MODES:
        out["topk"][mode], results[mode] = _topk_facts(clf, X, ex["k"], mode, logits)

    if "alt_format" in ex:  # the same rows in another format, index type and dtype
        fmt, index_dtype, dtype = ex["alt_format"]
        Xa = _to_format(X.toarray() if sp.issparse(X) else np.asarray(X), fmt,
                        np.dtype(index_dtype), np.dtype(dtype))
        same = True
        for mode in TOPK_MODES:
            labels2, scores2 = clf.predict_topk(Xa, k=ex["k"], inference=mode)
            same &= bool(np.array_equal(labels2, results[mode][0])
                         and np.array_equal(scores2, results[mode][1]))
        out["formats_agree"] = same
    if ex["pickle"]:
        clone = pickle.loads(pickle.dumps(clf))
        same = bool(np.array_equal(clone.predict_proba(X), proba))
        for mode in TOPK_MODES:
            labels2, scores2 = clone.predict_topk(X, k=ex["k"], inference=mode)
            same &= bool(np.array_equal(labels2, results[mode][0])
                         and np.array_equal(scores2, results[mode][1]))
        p2 = clone.predict(X)
        same &= bool((abs(p2 - pred).sum() == 0) if sp.issparse(pred)
                     else np.array_equal(p2, pred))
        out["pickle_same"] = same
        if ex["mode"] == "partial_fit":  # the copy trains on
            clone.partial_fit(X, y)
        else:
            clone.fit(X, y)
        out["refit_after_pickle"] = bool(np.isfinite(clone.predict_proba(X)).all())
    return out


# --------------------------------------------------------------------------- DLRM
def _dlrm_data(ex):
    """(X, X to predict, estimator parameters that describe X, ids per field): dense id
    columns and features (the rows to predict hold ids beyond the tables), or sparse
    one-hot / multi-hot fields and features (predicted as they are)."""
    rng = np.random.default_rng(ex["seed"])
    n, T, n_dense = ex["n_samples"], ex["n_tables"], ex["n_dense"]
    sizes = ex["sizes"]                      # distinct ids (columns) per field
    feats = rng.normal(size=(n, n_dense))
    params = {}
    if ex["input"] == "dense":
        ids = np.column_stack([rng.integers(0, s, n) for s in sizes]) if T else \
            np.zeros((n, 0), dtype=np.int64)
        for t in range(T):  # ids at both edges of the table
            ids[0, t], ids[-1, t] = 0, sizes[t] - 1
        X = np.hstack([ids.astype(np.float64), feats])
        params["categorical_features"] = list(range(T))
        if ex["table_sizes"] == "small":   # ids beyond the table are hashed into it
            params["table_sizes"] = [max(1, s // 2) for s in sizes]
        elif ex["table_sizes"] == "int":
            params["table_sizes"] = max(1, min(sizes) - 1) if T else 1
        # predict on ids the fit never saw, beyond table_sizes_
        Xp = X.copy()
        if T:
            Xp[:, :T] += np.array(sizes) * rng.integers(1, 4, (n, T))
        return X, Xp, params, sizes
    blocks, groups, pos = [], [], n_dense
    for t, s in enumerate(sizes):
        B = np.zeros((n, s))
        for i in range(n):
            m = int(rng.integers(1, ex["max_hot"] + 1))
            B[i, rng.choice(s, min(m, s), replace=False)] = (
                1.0 if ex["weights"] == "ones" else rng.uniform(0.1, 2.0, min(m, s)))
        B[ex["empty_bag_rows"]] = 0.0  # an all-zero field: an empty bag
        B[0, 0], B[-1, s - 1] = 1.0, 1.0   # rows 0 and s-1 of the table
        blocks.append(B)
        groups.append(list(range(pos, pos + s)))
        pos += s
    X = np.hstack([feats] + blocks)
    perm = np.arange(X.shape[1])
    if ex["shuffle_columns"]:
        perm = rng.permutation(X.shape[1])
        inv = np.argsort(perm)
        groups = [sorted(int(inv[c]) for c in g) for g in groups]
    X = X[:, perm]
    params["feature_groups"] = groups
    M = _to_format(X, ex["x_format"], np.dtype(ex["index_dtype"]), np.float64)
    return M, M, params, sizes


def run_dlrm(ex):
    from slidelearn import DLRMClassifier, DLRMRegressor

    X, Xp, data_params, sizes = _dlrm_data(ex)
    rng = np.random.default_rng(ex["seed"] + 1)
    n = ex["n_samples"]
    if ex["task"] == "regression":
        y = rng.normal(size=(n, ex["n_outputs"]) if ex["n_outputs"] > 1 else n)
        Est = DLRMRegressor
    else:
        y = rng.integers(0, ex["n_classes"], n)
        y[: min(n, 2)] = [0, 1][: min(n, 2)]
        Est = DLRMClassifier
    est = Est(**ex["params"], **data_params)
    out = {}
    try:
        if ex["mode"] == "fit":
            est.fit(X, y)
        elif ex["task"] == "regression":
            est.partial_fit(X, y)
            est.partial_fit(X, y)
        else:
            classes = np.arange(max(ex["n_classes"], 2))
            est.partial_fit(X, y, classes=classes)
            est.partial_fit(X, y)
    except ValueError as exc:
        out["fit_error"] = _error(exc)
        return out
    out["fit_error"] = None
    out["table_sizes"] = [int(s) for s in est.table_sizes_]
    pred = est.predict(Xp)
    out["predict"] = {"shape": list(pred.shape)}
    if ex["task"] == "regression":
        out["predict"]["finite"] = bool(np.isfinite(pred).all())
    else:
        out["predict"]["in_classes"] = bool(np.isin(pred, est.classes_).all())
        proba = est.predict_proba(Xp)
        out["proba"] = {"shape": list(proba.shape), "finite": bool(np.isfinite(proba).all()),
                        "in_01": bool(((proba >= 0) & (proba <= 1)).all()),
                        "max_sum_error": float(np.abs(proba.sum(axis=1) - 1).max(initial=0))}
        out["n_classes"] = len(est.classes_)
    if ex["input"] == "sparse" and "alt_format" in ex:  # another format and index type
        fmt, index_dtype = ex["alt_format"]
        Xa = _to_format(Xp.toarray(), fmt, np.dtype(index_dtype), np.float32)
        out["formats_agree"] = bool(np.array_equal(est.predict(Xa), pred))
    if ex["pickle"]:
        clone = pickle.loads(pickle.dumps(est))
        out["pickle_same"] = bool(np.array_equal(clone.predict(Xp), pred))
        if ex["task"] != "regression":
            out["pickle_same"] &= bool(np.array_equal(clone.predict_proba(Xp), proba))
        if ex["mode"] == "partial_fit":  # the copy trains on
            clone.partial_fit(X, y)
        else:
            clone.fit(X, y)
        p2 = clone.predict(Xp)
        out["refit_after_pickle"] = bool(p2.shape == pred.shape)
    return out


# --------------------------------------------------------------------------- XC format
def run_xc(ex):
    """Parse one file; on success also write it back and read that again."""
    import os
    import tempfile

    from slidelearn.datasets import dump_xc_repository, load_xc_repository

    try:
        X, Y = load_xc_repository(ex["path"])
    except Exception as exc:  # noqa: BLE001 (the test judges which types are fine)
        return {"error": _error(exc)}
    out = {"error": None}
    for name, M in (("X", X), ("Y", Y)):
        out[name] = {"format": M.format, "shape": list(M.shape), "dtype": str(M.dtype),
                     "indptr": M.indptr.tolist(), "indices": M.indices.tolist(),
                     "data": M.data.astype(np.float64).tolist(),
                     "index_dtypes": [str(M.indptr.dtype), str(M.indices.dtype)]}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "again.txt")
        dump_xc_repository(X, Y, path)
        X2, Y2 = load_xc_repository(path)
    out["roundtrip_same"] = bool(
        X2.shape == X.shape and Y2.shape == Y.shape and (X2 != X).nnz == 0
        and (Y2 != Y).nnz == 0)
    return out


def run_abort(ex):
    """Dies by SIGABRT, as glibc does on heap corruption (tests of the harness)."""
    import os

    os.abort()


RUNNERS = {"slide": run_slide, "dlrm": run_dlrm, "xc": run_xc, "abort": run_abort}


def _child(req):
    """In the forked child: the request's files as stdin/stdout/stderr, then the run.
    Raises SystemExit (or the run's exception), which ends the child through the
    interpreter's shutdown, freeing what the run left, like a worker process's exit."""
    import io
    import os
    import runpy

    for fd, path, mode in ((0, os.devnull, os.O_RDONLY),
                           (1, req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                           (2, req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        new = os.open(path, mode, 0o600)
        os.dup2(new, fd)
        os.close(new)
    os.chdir(req.get("cwd") or os.getcwd())
    if "cli" in req:  # as ``python -m slidelearn ARGS``
        sys.argv = ["slidelearn", *req["cli"]]
        runpy.run_module("slidelearn", run_name="__main__", alter_sys=True)
        sys.exit(0)
    sys.argv = [sys.argv[0], req["kind"]]
    sys.stdin = io.StringIO(json.dumps(req["examples"]))
    sys.exit(main())


def serve():
    """The fork server (see the module's docstring)."""
    import os
    import signal
    import time

    # What the children need, imported once. Nothing here may start an OpenMP team: a
    # forked child could not use one its parent started.
    import sklearn.datasets  # noqa: F401
    import slidelearn._cli  # noqa: F401
    from slidelearn import DLRMRegressor, SlideClassifier  # noqa: F401
    from slidelearn.datasets import load_xc_repository  # noqa: F401

    reply = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        reply.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(req)  # never returns
        deadline = time.monotonic() + req["timeout"]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                answer = {"status": os.waitstatus_to_exitcode(status)}
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                answer = {"timeout": True}
                break
            time.sleep(0.002)
        reply.write(json.dumps(answer) + "\n")
        reply.flush()
    return 0


def main():
    if sys.argv[1] == "serve":
        return serve()
    kind = sys.argv[1]
    examples = json.load(sys.stdin)
    results = []
    warnings.simplefilter("ignore")
    for i, ex in enumerate(examples):
        try:
            results.append(RUNNERS[kind](ex))
        except Exception:
            # an unexpected exception: the test shows it with the example
            print(f"example {i}: {json.dumps(ex)}", file=sys.stderr)
            traceback.print_exc()
            return 3
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
