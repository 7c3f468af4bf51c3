"""Tests of the LSH kernels (slidelearn._slide._hashing) against numpy references."""
import numpy as np
import pytest

from slidelearn._slide import _hashing, _testing
from slidelearn.utils import _bf16

FAMILIES = ["simhash", "wta", "dwta", "doph"]
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _draw(family, dim=32, n_codes=3, n_tables=4, bin_size=8, range_pow=18, seed=0):
    rng = np.random.default_rng(seed)
    return _hashing.draw_hash_functions(family, dim, n_codes, n_tables, bin_size, range_pow, rng)


# --------------------------------------------------------------------------- references
def _ref_simhash(p, vec):
    """Reference sign bits, and the margin |s| of each (to skip float32 near-ties)."""
    s = (p["signs"].astype(np.float64) * vec.astype(np.float64)[p["dims"]]).sum(axis=1)
    return (s >= 0).astype(np.int32), np.abs(s)


def _ref_wta(p, vec):
    # np.argmax returns the first maximum, as the kernel (strict '>' comparisons).
    return np.argmax(vec[p["dims"]], axis=1).astype(np.int32)


def _ref_doph_raw(p, vec):
    """DOPH codes before densification: -1 for an empty bin."""
    K, L = p["n_codes"], p["n_tables"]
    codes = np.full((L, K), -1, dtype=np.int64)
    for t in range(L):
        for b in range(K):
            dims = np.flatnonzero((p["doph_bin"][t] == b) & (vec > 0))
            if dims.size:
                ranks = p["doph_rank"][t, dims]
                codes[t, b] = dims[np.argmin(ranks)]  # first minimum = smallest dim on ties
    return codes


def _ref_buckets(p, codes):
    """Combine K codes per table: Horner concatenation, folded by a multiplicative hash."""
    K, L = p["n_codes"], p["n_tables"]
    codes = np.asarray(codes).reshape(L, K)
    out = np.empty(L, dtype=np.uint64)
    for t in range(L):
        key = 0
        for k in range(K):
            key = (key * p["code_base"] + int(codes[t, k])) & MASK64
        if p["exact_buckets"]:
            out[t] = key
        else:
            out[t] = ((key * GOLDEN) & MASK64) >> (64 - p["range_bits"])
    return out.astype(np.uint32)


# --------------------------------------------------------------------------- drawing
@pytest.mark.parametrize("family", FAMILIES)
def test_draw_hash_functions_shapes_and_ranges(family):
    dim, K, L, bs = 32, 3, 4, 8
    p = _draw(family, dim, K, L, bs)
    assert p["family"] == family
    assert (p["dim"], p["n_codes"], p["n_tables"]) == (dim, K, L)
    if family in ("wta", "dwta"):
        assert p["dims"].shape == (K * L, bs)
        assert p["code_base"] == bs
        # Each hash compares distinct dims (they come from permutations).
        for row in p["dims"]:
            assert len(set(row.tolist())) == bs
    elif family == "simhash":
        assert p["dims"].shape[0] == K * L
        assert p["code_base"] == 2
        assert set(np.unique(p["signs"]).tolist()) <= {-1.0, 1.0}
    else:
        assert p["doph_bin"].shape == (L, dim)
        assert p["doph_bin"].min() >= 0 and p["doph_bin"].max() < K
        assert p["code_base"] == dim
    assert p["dims"].min() >= 0 and p["dims"].max() < dim
    # Exact buckets when code_base ** K fits in 2 ** range_pow.
    assert p["exact_buckets"] == 1
    assert p["n_buckets"] == p["code_base"] ** K


def test_draw_hash_functions_folds_large_code_spaces():
    p = _draw("wta", dim=32, n_codes=8, n_tables=2, bin_size=8, range_pow=10)
    assert p["exact_buckets"] == 0
    assert p["n_buckets"] == 2**10


def test_draw_hash_functions_is_reproducible():
    a, b = _draw("dwta", seed=3), _draw("dwta", seed=3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_draw_hash_functions_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown hash family"):
        _hashing.draw_hash_functions("nope", 16, 2, 2, 4, 10, rng)
    with pytest.raises(ValueError, match="bin_size must be in"):
        _hashing.draw_hash_functions("wta", 16, 2, 2, 17, 10, rng)
    with pytest.raises(ValueError, match="bin_size must be in"):
        _hashing.draw_hash_functions("dwta", 16, 2, 2, 1, 10, rng)


def test_hash_codes_rejects_wrong_dimension():
    p = _draw("wta", dim=32)
    with pytest.raises(ValueError, match="dims"):
        _testing.hash_codes(p, np.zeros(31, dtype=np.float32))
    with pytest.raises(ValueError, match="dims"):
        _hashing.hash_vectors(p, np.zeros((3, 31), dtype=np.float32), 1)


# --------------------------------------------------------------------------- codes
@pytest.mark.parametrize("seed", range(5))
def test_simhash_codes_match_reference(seed):
    p = _draw("simhash", dim=30, n_codes=5, n_tables=6, seed=seed)
    rng = np.random.default_rng(100 + seed)
    for _ in range(10):
        vec = rng.standard_normal(30).astype(np.float32)
        codes, buckets = _testing.hash_codes(p, vec)
        ref, margin = _ref_simhash(p, vec)
        assert codes.shape == (5 * 6,) and codes.dtype == np.int32
        clear = margin > 1e-4  # float32 sums can flip a near-zero projection
        assert clear.mean() > 0.9
        np.testing.assert_array_equal(codes[clear], ref[clear])
        np.testing.assert_array_equal(buckets, _ref_buckets(p, codes))


@pytest.mark.parametrize("seed", range(5))
def test_wta_codes_match_reference(seed):
    p = _draw("wta", dim=24, n_codes=3, n_tables=5, bin_size=6, seed=seed)
    rng = np.random.default_rng(200 + seed)
    for _ in range(10):
        vec = rng.standard_normal(24).astype(np.float32)  # negatives included: plain WTA
        codes, buckets = _testing.hash_codes(p, vec)
        np.testing.assert_array_equal(codes, _ref_wta(p, vec))
        assert codes.min() >= 0 and codes.max() < 6
        np.testing.assert_array_equal(buckets, _ref_buckets(p, codes))


def test_wta_ties_take_the_first_maximum():
    p = _draw("wta", dim=16, n_codes=2, n_tables=3, bin_size=4)
    vec = np.ones(16, dtype=np.float32)  # every bin is a tie
    codes, _ = _testing.hash_codes(p, vec)
    np.testing.assert_array_equal(codes, np.zeros(6, dtype=np.int32))


@pytest.mark.parametrize("seed", range(5))
def test_dwta_without_empty_bins_equals_wta(seed):
    p = _draw("dwta", dim=24, n_codes=3, n_tables=5, bin_size=6, seed=seed)
    rng = np.random.default_rng(300 + seed)
    for _ in range(10):
        # no zero coordinate, so no empty bin (negative bins are not empty: they are ranked)
        vec = (rng.standard_normal(24) + 0.01).astype(np.float32)
        vec[vec == 0] = 1.0
        codes, buckets = _testing.hash_codes(p, vec)
        np.testing.assert_array_equal(codes, _ref_wta(p, vec))
        np.testing.assert_array_equal(buckets, _ref_buckets(p, codes))


@pytest.mark.parametrize("seed", range(5))
def test_dwta_densifies_empty_bins(seed):
    dim, K, L, bs = 64, 4, 6, 4
    p = _draw("dwta", dim=dim, n_codes=K, n_tables=L, bin_size=bs, seed=seed)
    rng = np.random.default_rng(400 + seed)
    vec = np.zeros(dim, dtype=np.float32)
    vec[rng.choice(dim, 6, replace=False)] = rng.random(6).astype(np.float32) + 0.5
    ref = _ref_wta(p, vec)
    nonempty = (vec[p["dims"]] != 0).any(axis=1)
    assert nonempty.any() and not nonempty.all()  # the case under test
    codes, buckets = _testing.hash_codes(p, vec)
    assert codes.min() >= 0 and codes.max() < bs
    # Non-empty bins keep their WTA code; an empty bin copies the code of a non-empty one.
    np.testing.assert_array_equal(codes[nonempty], ref[nonempty])
    assert set(codes[~nonempty].tolist()) <= set(ref[nonempty].tolist())
    np.testing.assert_array_equal(buckets, _ref_buckets(p, codes))
    # Deterministic.
    codes2, buckets2 = _testing.hash_codes(p, vec)
    np.testing.assert_array_equal(codes, codes2)
    np.testing.assert_array_equal(buckets, buckets2)


def test_dwta_all_empty_vector_gives_code_zero():
    p = _draw("dwta", dim=32, n_codes=3, n_tables=4, bin_size=8)
    codes, buckets = _testing.hash_codes(p, np.zeros(32, dtype=np.float32))
    np.testing.assert_array_equal(codes, 0)
    np.testing.assert_array_equal(buckets, 0)


def test_dwta_negative_bins_are_ranked_not_empty():
    # Regression: trained output weights are often negative in whole bins; treating such
    # bins as empty made every rehash probe for replacements (tens of times slower) and
    # threw away their ranking.
    p = _draw("dwta", dim=32, n_codes=3, n_tables=4, bin_size=8)
    vec = -np.random.default_rng(7).random(32).astype(np.float32) - 0.1
    codes, _ = _testing.hash_codes(p, vec)
    np.testing.assert_array_equal(codes, _ref_wta(p, vec))


@pytest.mark.parametrize("seed", range(5))
def test_doph_codes_match_reference(seed):
    dim, K, L = 40, 4, 5
    p = _draw("doph", dim=dim, n_codes=K, n_tables=L, seed=seed)
    rng = np.random.default_rng(500 + seed)
    n_partial = 0
    for density in (0.05, 0.15, 0.5, 1.0):
        for _ in range(5):
            vec = np.where(rng.random(dim) < density, rng.random(dim) + 0.1,
                           -rng.random(dim)).astype(np.float32)
            raw = _ref_doph_raw(p, vec)
            codes, buckets = _testing.hash_codes(p, vec)
            codes2d = codes.reshape(L, K)
            assert codes.min() >= 0 and codes.max() < dim
            for t in range(L):
                full = raw[t] >= 0
                np.testing.assert_array_equal(codes2d[t, full], raw[t, full])
                if full.any():
                    # Densified bins take some other bin's code of the same table.
                    assert set(codes2d[t, ~full].tolist()) <= set(raw[t, full].tolist())
                    n_partial += int((~full).any())
                else:
                    np.testing.assert_array_equal(codes2d[t], 0)
            np.testing.assert_array_equal(buckets, _ref_buckets(p, codes))
    assert n_partial > 0  # the densification path was exercised


@pytest.mark.parametrize("family", FAMILIES)
def test_folded_buckets_match_reference(family):
    # Large code spaces are folded by a multiplicative hash of the Horner key.
    p = _draw(family, dim=32, n_codes=7, n_tables=4, bin_size=8, range_pow=6)
    if family != "simhash":
        assert p["exact_buckets"] == 0
    rng = np.random.default_rng(7)
    p_fold = dict(p, exact_buckets=0, n_buckets=2**6, range_bits=6)
    for _ in range(10):
        vec = np.abs(rng.standard_normal(32)).astype(np.float32)
        codes, buckets = _testing.hash_codes(p_fold, vec)
        np.testing.assert_array_equal(buckets, _ref_buckets(p_fold, codes))
        assert buckets.max() < 2**6


# --------------------------------------------------------------------------- many vectors
@pytest.mark.parametrize("family", FAMILIES)
def test_hash_vectors_matches_hash_codes_and_threads(family):
    p = _draw(family, dim=32, n_codes=3, n_tables=7, bin_size=8, seed=11)
    rng = np.random.default_rng(12)
    V = rng.standard_normal((57, 32)).astype(np.float32)
    V[::3] = np.maximum(V[::3], 0)  # some sparse rows for dwta / doph
    B1 = _hashing.hash_vectors(p, V, 1)
    B2 = _hashing.hash_vectors(p, V, 2)
    assert B1.shape == (7, 57) and B1.dtype == np.uint32
    np.testing.assert_array_equal(B1, B2)
    for i in range(V.shape[0]):
        _, b = _testing.hash_codes(p, V[i])
        if family == "simhash" and _ref_simhash(p, V[i])[1].min() < 1e-4:
            continue  # rows projected in blocks (sgemm) may flip a float32 near-tie
        np.testing.assert_array_equal(B1[:, i], b)
    assert B1.max() < p["n_buckets"]
    assert _hashing.hash_vectors(p, np.zeros((0, 32), dtype=np.float32), 2).shape == (7, 0)


@pytest.mark.parametrize("family", ["wta", "dwta"])
@pytest.mark.parametrize("n_codes, range_pow", [(4, 18), (4, 6), (11, 20)],
                         ids=["exact", "folded", "64-bit-keys"])
def test_hash_vectors_batch_path_edge_rows(family, n_codes, range_pow):
    """Bins of 8 go through the 16-rows-at-a-time WTA at the AVX-512 levels: rows of
    zeros (DWTA's empty bins), NaN, ties, negative values, a width that is not a multiple
    of 16 and a short last block give the buckets of the one-row path, whether the keys
    are kept (exact), folded in 32-bit lanes, or need 64 bits (8 ** 11 > 2 ** 32: the
    rows are bucketed one by one). Rows 16 to 31 have no zero, so that their block
    takes the DWTA pass that skips the empty-bin test; the blocks around them do not."""
    p = _draw(family, dim=40, n_codes=n_codes, n_tables=9, bin_size=8, range_pow=range_pow,
              seed=3)
    assert bool(p["exact_buckets"]) == (n_codes == 4 and range_pow == 18)
    rng = np.random.default_rng(4)
    V = rng.standard_normal((35, 40)).astype(np.float32)
    V[1] = 0
    V[2, ::2] = 0
    V[3, 5] = np.nan
    V[4] = 1.0  # every bin tied
    V[5] = -np.abs(V[5])
    V[6, :20] = np.inf
    assert np.all(V[16:32] != 0) and np.any(V[:16] == 0)
    V[33, 7] = 0
    center = rng.standard_normal(40).astype(np.float32)
    for kw in ({}, {"center": center}):
        B = _hashing.hash_vectors(p, V, 2, **kw)
        for i in range(V.shape[0]):
            row = V[i] - center if kw else V[i]
            np.testing.assert_array_equal(B[:, i], _testing.hash_codes(p, row)[1])


@pytest.mark.parametrize("family", ["simhash", "mips"])
def test_dense_projections_hash_rows_in_blocks_as_one_by_one(family):
    """Dense projections hash the rows DENSE_BLOCK (32) at a time with one sgemm: the
    codes of the one-row path wherever a projection is clear of float32 rounding, for
    full and short blocks, centred or not, float32 or bfloat16 rows, at 1 and 2
    threads; "mips" rows add their bias and norm coordinates after the product."""
    dim = 26
    rng = np.random.default_rng(21)
    p = _hashing.draw_hash_functions(family, dim, 5, 6, dim, 18, rng)
    V = rng.standard_normal((70, dim)).astype(np.float32)  # 2 full blocks, 1 short
    center = rng.standard_normal(dim).astype(np.float32)
    _testing.hash_codes(p, V[0])
    proj = p["proj"].astype(np.float64)
    for kw in ({}, {"center": center}):
        B1 = _hashing.hash_vectors(p, V, 1, **kw)
        np.testing.assert_array_equal(B1, _hashing.hash_vectors(p, V, 2, **kw))
        rows = V - center if kw else V
        checked = 0
        for i, row in enumerate(rows):
            if np.abs(proj @ row.astype(np.float64)).min() < 1e-4:
                continue
            np.testing.assert_array_equal(B1[:, i], _testing.hash_codes(p, row)[1])
            checked += 1
        assert checked > 60
    V16 = _bf16.to_bf16(V)
    np.testing.assert_array_equal(_hashing.hash_vectors(p, V16, 2, center=center),
                                  _hashing.hash_vectors(p, _bf16.from_bf16(V16), 1,
                                                        center=center))


@pytest.mark.parametrize("family", FAMILIES)
def test_bfloat16_rows_hash_as_their_float32_values(family):
    """The weights of a precision="bfloat16" output layer are hashed and summed straight
    from their bfloat16 bits (uint16): the same buckets and column sums as the float32
    matrix of the same values, in the 16-row batch path (wta/dwta, bins of 8) and in
    the one-row path (other families), with and without a centre, short last block
    included."""
    p = _draw(family, dim=40, n_codes=4, n_tables=9, bin_size=8, seed=7)
    rng = np.random.default_rng(8)
    V = rng.standard_normal((37, 40)).astype(np.float32)
    V[::4] = np.maximum(V[::4], 0)
    V[1] = 0
    V[2, 3] = np.nan
    V16 = _bf16.to_bf16(V)
    V32 = _bf16.from_bf16(V16)
    center = rng.standard_normal(40).astype(np.float32)
    for kw in ({}, {"center": center}):
        np.testing.assert_array_equal(_hashing.hash_vectors(p, V16, 2, **kw),
                                      _hashing.hash_vectors(p, V32, 1, **kw))
    np.testing.assert_array_equal(_hashing.column_sums(V16, 2), _hashing.column_sums(V32, 1))
    assert _hashing.hash_vectors(p, V16[:0], 2).shape == (9, 0)
    with pytest.raises(ValueError, match="dims"):
        _hashing.hash_vectors(p, V16[:, :32].copy(), 1)


# --------------------------------------------------------------------------- tables
def _check_csr_tables(buckets, offsets, ids, n_buckets, bucket_size):
    L, n = buckets.shape
    assert offsets.shape == (L, n_buckets + 1)
    assert ids.shape == (L, max(n, 1))
    assert offsets.dtype == np.int32 and ids.dtype == np.int32
    for t in range(L):
        sizes = np.diff(offsets[t])
        assert offsets[t, 0] == 0
        assert np.all(sizes >= 0)
        assert np.all(sizes <= bucket_size)
        counts = np.bincount(buckets[t].astype(np.int64), minlength=n_buckets)
        np.testing.assert_array_equal(sizes, np.minimum(counts, bucket_size))
        for b in np.flatnonzero(sizes):
            kept = ids[t, offsets[t, b]: offsets[t, b + 1]]
            assert np.all((kept >= 0) & (kept < n))
            assert len(np.unique(kept)) == len(kept)
            # every stored id belongs to this bucket
            np.testing.assert_array_equal(buckets[t, kept], b)


@pytest.mark.parametrize("reservoir", [False, True])
def test_build_tables_large_buckets_store_everything(reservoir):
    rng = np.random.default_rng(0)
    L, n, nb = 5, 300, 17
    buckets = rng.integers(0, nb, size=(L, n)).astype(np.uint32)
    offsets, ids = _hashing.build_tables(buckets, nb, 10**6, reservoir, 42, 1)
    _check_csr_tables(buckets, offsets, ids, nb, 10**6)
    for t in range(L):
        # every item appears exactly once per table
        np.testing.assert_array_equal(np.sort(ids[t, : offsets[t, -1]]), np.arange(n))
    o2, i2 = _hashing.build_tables(buckets, nb, 10**6, reservoir, 42, 2)
    np.testing.assert_array_equal(offsets, o2)
    for t in range(L):
        np.testing.assert_array_equal(ids[t, : offsets[t, -1]], i2[t, : o2[t, -1]])


def test_build_tables_fifo_keeps_last_inserted():
    rng = np.random.default_rng(1)
    L, n, nb, cap = 4, 400, 9, 6
    buckets = rng.integers(0, nb, size=(L, n)).astype(np.uint32)
    offsets, ids = _hashing.build_tables(buckets, nb, cap, False, 0, 2)
    _check_csr_tables(buckets, offsets, ids, nb, cap)
    n_overflow = 0
    for t in range(L):
        for b in range(nb):
            members = np.flatnonzero(buckets[t] == b)  # insertion (index) order
            kept = ids[t, offsets[t, b]: offsets[t, b + 1]]
            np.testing.assert_array_equal(np.sort(kept), members[-cap:])
            n_overflow += len(members) > cap
    assert n_overflow > 0


def test_build_tables_reservoir_keeps_a_uniform_subset():
    # One bucket of 20 items, cap 5, in many tables (each with its own random stream).
    L, n, cap = 400, 20, 5
    buckets = np.zeros((L, n), dtype=np.uint32)
    offsets, ids = _hashing.build_tables(buckets, 2, cap, True, 123, 2)
    _check_csr_tables(buckets, offsets, ids, 2, cap)
    kept = ids[:, :cap]
    assert np.all(offsets[:, 1] == cap) and np.all(offsets[:, 2] == cap)
    for t in range(L):
        assert len(np.unique(kept[t])) == cap
    freq = np.bincount(kept.ravel(), minlength=n) / L
    # Each item is kept with probability cap / n = 0.25 (std ~0.022 over 400 tables).
    assert np.all(np.abs(freq - cap / n) < 0.11), freq
    # Not FIFO and not "first come": both the first and last items are often kept and dropped.
    assert 0.1 < freq[:cap].mean() < 0.4 and 0.1 < freq[-cap:].mean() < 0.4
    # Deterministic for a seed, and the seed matters.
    # (ids past offsets[t, -1] are unused scratch and not compared.)
    _, i2 = _hashing.build_tables(buckets, 2, cap, True, 123, 1)
    np.testing.assert_array_equal(kept, i2[:, :cap])
    _, i3 = _hashing.build_tables(buckets, 2, cap, True, 124, 1)
    assert not np.array_equal(kept, i3[:, :cap])


def test_build_tables_rejects_bad_bucket_size_and_handles_empty():
    with pytest.raises(ValueError, match="bucket_size"):
        _hashing.build_tables(np.zeros((2, 3), dtype=np.uint32), 4, 0, False, 0, 1)
    offsets, ids = _hashing.build_tables(np.zeros((2, 0), dtype=np.uint32), 4, 3, False, 0, 1)
    assert offsets.shape == (2, 5)
    np.testing.assert_array_equal(offsets, 0)


# --------------------------------------------------------------------------- retrieval
def _retrieval_rates(family, items, queries, n_codes, n_tables, bin_size=8, seed=0):
    rng = np.random.default_rng(seed)
    dim = items.shape[1]
    p = _hashing.draw_hash_functions(family, dim, n_codes, n_tables, bin_size, 18, rng)
    B = _hashing.hash_vectors(p, items, 2)
    offsets, ids = _hashing.build_tables(B, p["n_buckets"], 10**6, False, 1, 2)
    hits, others = 0, 0.0
    n = items.shape[0]
    for i, q in enumerate(queries):
        found = _testing.query_tables(p, offsets, ids, q, 1)
        assert np.all(np.diff(found) > 0)  # sorted, distinct
        assert found.size == 0 or (found.min() >= 0 and found.max() < n)
        hits += i in found
        others += (len(found) - (i in found)) / (n - 1)
    return hits / len(queries), others / len(queries)


@pytest.mark.parametrize("family,n_codes,relu", [
    ("wta", 3, True), ("dwta", 3, True), ("dwta", 4, False), ("simhash", 12, False),
])
def test_query_retrieves_near_neighbours(family, n_codes, relu):
    rng = np.random.default_rng(5)
    n, dim = 200, 64
    items = rng.standard_normal((n, dim)).astype(np.float32)
    noise = 0.05 * rng.standard_normal((50, dim)).astype(np.float32)
    queries = items[:50] + noise
    if relu:
        items, queries = np.maximum(items, 0), np.maximum(queries, 0)
    hit, other = _retrieval_rates(family, items, np.ascontiguousarray(queries), n_codes, 10)
    assert hit >= 0.9, (hit, other)
    assert other <= 0.2 and other < hit / 4, (hit, other)


def test_doph_query_retrieves_near_neighbours():
    rng = np.random.default_rng(6)
    n, dim = 200, 128
    items = ((rng.random((n, dim)) < 0.15) * (rng.random((n, dim)) + 0.1)).astype(np.float32)
    queries = items[:50].copy()
    for q in queries:  # drop 2 of the ~19 positive dims: Jaccard similarity ~0.9
        q[rng.choice(np.flatnonzero(q), 2, replace=False)] = 0
    hit, other = _retrieval_rates("doph", items, queries, 3, 10)
    assert hit >= 0.9, (hit, other)
    assert other <= 0.2 and other < hit / 4, (hit, other)


def test_query_threshold_intersects_tables():
    rng = np.random.default_rng(8)
    items = rng.standard_normal((100, 32)).astype(np.float32)
    p = _hashing.draw_hash_functions("wta", 32, 2, 8, 4, 18, rng)
    B = _hashing.hash_vectors(p, items, 1)
    offsets, ids = _hashing.build_tables(B, p["n_buckets"], 10**6, False, 0, 1)
    q = items[3]
    _, qb = _testing.hash_codes(p, q)
    counts = (B == qb[:, None]).sum(axis=0)  # tables in which each item collides with q
    for thr in (1, 2, 4, 8):
        found = _testing.query_tables(p, offsets, ids, q, thr)
        np.testing.assert_array_equal(found, np.flatnonzero(counts >= thr))
    assert 3 in _testing.query_tables(p, offsets, ids, q, 8)


@pytest.mark.parametrize("family", ["simhash", "wta", "dwta", "doph"])
def test_hash_vectors_center_hashes_the_centred_rows(family):
    p = _draw(family, dim=16, n_codes=3, n_tables=5, bin_size=4)
    rng = np.random.default_rng(11)
    V = rng.standard_normal((40, 16)).astype(np.float32) - 0.5
    center = V.mean(axis=0)
    expected = _hashing.hash_vectors(p, np.ascontiguousarray(V - center), 1)
    np.testing.assert_array_equal(_hashing.hash_vectors(p, V, 2, center=center), expected)
    with pytest.raises(ValueError, match="center must have 16 entries"):
        _hashing.hash_vectors(p, V, 1, center=np.zeros(3))


def test_centering_balances_buckets_of_rows_sharing_a_direction():
    # Output rows of rarely seen labels drift along one shared direction; hashed as they
    # are they fall into a handful of buckets, centred they spread out again.
    p = _draw("dwta", dim=32, n_codes=3, n_tables=4, bin_size=8)
    rng = np.random.default_rng(12)
    shared = 5.0 * rng.standard_normal(32)
    V = (shared + 0.1 * rng.standard_normal((2000, 32))).astype(np.float32)
    raw = _hashing.hash_vectors(p, V, 1)
    centred = _hashing.hash_vectors(p, V, 1, center=V.mean(axis=0))
    n_raw = np.mean([len(np.unique(raw[t])) for t in range(4)])
    n_centred = np.mean([len(np.unique(centred[t])) for t in range(4)])
    assert n_centred > 10 * n_raw


def test_column_sums_matches_numpy_for_any_thread_count():
    """The centre of the rehashed rows: float64 column sums of a float32 matrix, the
    same for every thread count (fixed blocks of rows, added in block order)."""
    rng = np.random.default_rng(5)
    V = rng.standard_normal((9000, 37)).astype(np.float32)
    s1 = _hashing.column_sums(V, 1)
    assert s1.dtype == np.float64 and s1.shape == (37,)
    np.testing.assert_allclose(s1, V.sum(axis=0, dtype=np.float64), rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(_hashing.column_sums(V, 2), s1)
    np.testing.assert_array_equal(_hashing.column_sums(V[:0], 2), np.zeros(37))
