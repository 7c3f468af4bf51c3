"""Property-based fuzzing of DLRMRegressor and DLRMClassifier: dense id columns (ids at
both edges of a table, and ids beyond table_sizes, which are hashed into it, at fit and at
predict time) or sparse one-hot / multi-hot fields (empty bags, weighted bags, shuffled
columns, CSR / CSC / COO with int32 or int64 indices), zero to three tables, one row,
every interaction, both solvers and precisions, 1 to 3 threads, fit or partial_fit, a
pickle round trip. Each example runs in a worker process (see _fuzz.py), so that memory
corruption in the kernels fails the test through the worker's exit status."""
import numpy as np
from hypothesis import event, example, given
from hypothesis import strategies as st

from _fuzz import fuzz_settings, run_worker


@st.composite
def dlrm_examples(draw):
    task = draw(st.sampled_from(["regression", "classification"]))
    inp = draw(st.sampled_from(["dense", "sparse"]))
    n = draw(st.integers(1, 30))
    n_dense = draw(st.integers(0, 3))
    # at least one input column: a table, or a dense feature
    T = draw(st.integers(0 if n_dense else 1, 3))
    sizes = draw(st.lists(st.integers(1, 12), min_size=T, max_size=T))
    layers = st.lists(st.integers(1, 8), max_size=2)
    n_outputs = draw(st.integers(1, 2))
    params = {
        "embedding_dim": draw(st.integers(1, 8)),
        "bottom_mlp": draw(layers),
        "top_mlp": draw(layers),
        "interaction": draw(st.sampled_from(["dot", "cat"])),
        "self_interaction": draw(st.booleans()),
        "solver": draw(st.sampled_from(["sgd", "adagrad"])),
        "learning_rate_init": 0.01,
        "warmup_steps": draw(st.integers(0, 3)),
        "alpha": draw(st.sampled_from([0.0, 1e-3])),
        "embedding_alpha": draw(st.sampled_from([None, 0.0, 0.05])),
        "embedding_learning_rate": draw(st.sampled_from([None, 0.05])),
        # only where it applies (one output, two tables); its error: test_dlrm_state
        "factorization_term": draw(st.booleans()) and task == "regression"
        and n_outputs == 1 and T >= 2,
        # the baseline applies to the regressor only (its error: test_dlrm_baseline)
        "baseline": draw(st.sampled_from(["auto", False])) if task == "regression"
        else "auto",
        # early stopping holds out at least one row, and at least one must remain
        "early_stopping": draw(st.booleans()) and n >= 2,
        "validation_pass": draw(st.booleans()),
        "batch_size": draw(st.integers(1, 16)),
        "max_iter": draw(st.integers(1, 2)),
        "n_jobs": draw(st.integers(1, 3)),
        "precision": draw(st.sampled_from(["float32", "bfloat16"])),
        "random_state": draw(st.integers(0, 2**16)),
    }
    return {
        "seed": draw(st.integers(0, 2**31)),
        "task": task,
        "n_outputs": n_outputs,
        "n_classes": draw(st.integers(2, 4)),
        "input": inp,
        "n_samples": n,
        "n_tables": T,
        "n_dense": n_dense,
        "sizes": sizes,
        # (table_sizes=[] for zero tables is refused: test_empty_table_sizes_without_tables)
        "table_sizes": draw(st.sampled_from([None, "small", "int"]))
        if inp == "dense" and T else None,
        "max_hot": draw(st.integers(1, 3)),
        "weights": draw(st.sampled_from(["ones", "random"])),
        "empty_bag_rows": draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True)),
        "shuffle_columns": draw(st.booleans()),
        "x_format": draw(st.sampled_from(["csr", "csc", "coo"])),
        "index_dtype": draw(st.sampled_from(["int32", "int64"])),
        # sparse X predicted again in this form: the same answers
        "alt_format": [draw(st.sampled_from(["csr", "csc", "coo"])),
                       draw(st.sampled_from(["int32", "int64"]))],
        "mode": draw(st.sampled_from(["fit", "partial_fit"])),
        "pickle": draw(st.booleans()),
        "params": params,
    }


# One row, one table of one row (ids 0 and beyond it), both precisions' edge.
_ONE_ROW = {
    "seed": 0, "task": "regression", "n_outputs": 1, "n_classes": 2, "input": "dense",
    "n_samples": 1, "n_tables": 1, "n_dense": 0, "sizes": [1], "table_sizes": None,
    "max_hot": 1, "weights": "ones", "empty_bag_rows": [], "shuffle_columns": False,
    "x_format": "csr", "index_dtype": "int32", "mode": "fit", "pickle": True,
    "params": {"embedding_dim": 2, "bottom_mlp": [], "top_mlp": [], "interaction": "cat",
               "self_interaction": False, "solver": "adagrad", "learning_rate_init": 0.01,
               "warmup_steps": 0, "alpha": 0.0, "batch_size": 4, "max_iter": 1,
               "n_jobs": 3, "precision": "bfloat16", "random_state": 0},
}


def expected_fit_errors(ex):
    """The ValueErrors an example must raise (words of their messages; the first problem
    found is reported), or an empty list."""
    p = ex["params"]
    errors = []
    if ex["task"] == "classification" and ex["mode"] == "fit" and ex["n_samples"] == 1:
        errors.append("at least 2 classes")
    if p["interaction"] == "dot" and not p["self_interaction"] and ex["n_tables"] == 1 \
            and ex["n_dense"] == 0:
        errors.append("nothing to interact")
    return errors


def check_dlrm_facts(ex, facts):
    errors = expected_fit_errors(ex)
    event(f"{ex['task']}, {ex['input']} input: " + (errors[0] if errors else "fitted"))
    if errors:
        assert facts["fit_error"] is not None and facts["fit_error"]["value_error"], facts
        assert any(e in facts["fit_error"]["message"] for e in errors), facts["fit_error"]
        return
    assert facts["fit_error"] is None, facts["fit_error"]
    n, sizes = ex["n_samples"], ex["sizes"]
    if ex["table_sizes"] == "small":
        want = [max(1, s // 2) for s in sizes]
    elif ex["table_sizes"] == "int":
        want = [max(1, min(sizes) - 1)] * len(sizes)
    else:  # derived from the largest id, or one row per sparse column
        want = sizes
    assert facts["table_sizes"] == want
    pred = facts["predict"]
    if ex["task"] == "regression":
        assert pred["shape"] == ([n] if ex["n_outputs"] == 1 else [n, ex["n_outputs"]])
        assert pred["finite"]
    else:
        assert pred["shape"] == [n] and pred["in_classes"]
        C = facts["n_classes"]
        if ex["mode"] == "partial_fit":
            assert C == ex["n_classes"]  # the classes= of the first call
        else:
            assert 2 <= C <= ex["n_classes"]
        proba = facts["proba"]
        assert proba["shape"] == [n, C] and proba["finite"] and proba["in_01"]
        assert proba["max_sum_error"] < 1e-5
    assert facts.get("formats_agree", True)
    if ex["pickle"]:
        assert facts["pickle_same"] and facts["refit_after_pickle"]


@fuzz_settings(max_examples=8)
@given(st.lists(dlrm_examples(), min_size=1, max_size=3))
@example([_ONE_ROW])
def test_dlrm_fuzz(examples):
    for ex, facts in zip(examples, run_worker("dlrm", examples)):
        check_dlrm_facts(ex, facts)


def test_empty_table_sizes_without_tables():
    # Found by test_dlrm_fuzz: a list with one size per categorical feature is accepted
    # for every number of features but zero.
    from slidelearn import DLRMRegressor

    X = np.random.default_rng(0).normal(size=(20, 3))
    est = DLRMRegressor(categorical_features=[], table_sizes=[], max_iter=1, n_jobs=1,
                        random_state=0).fit(X, X[:, 0])
    assert est.table_sizes_.tolist() == []
    assert np.isfinite(est.predict(X)).all()
