"""Hidden properties of KVCache (Task 3.1, SPEC §3.3): a static cache, O(T_new) updates."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.kit.checks import assert_equal, assert_raises
from grader.kit.probes import run_probe
from tests.kv_cache.probes import (
    bad_update,
    cache_through_updates,
    elements_written,
    new_cache,
    overflowing_update,
    reset_then_update,
)

pytestmark = pytest.mark.task("3.1")
points = pytest.mark.points
CACHE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


@st.composite
def sequences(draw, min_len=1, max_len=12):
    """Keys and values [B, H_kv, T, D] of distinct sizes, seeded random values, any dtype."""
    batch, heads, dim = draw(st.lists(st.integers(1, 4), min_size=3, max_size=3, unique=True))
    length = draw(st.integers(min_len, max_len))
    dtype = draw(st.sampled_from(CACHE_DTYPES))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    k = torch.randn(batch, heads, length, dim, generator=g).to(dtype)
    v = torch.randn(batch, heads, length, dim, generator=g).to(dtype)
    return k, v


@st.composite
def splits_of(draw, length):
    """Chunk sizes summing to `length`: multi-token, single-token and empty updates
    (the gaps between sorted cut points; a repeated cut is an empty update)."""
    cuts = sorted(draw(st.lists(st.integers(0, length), max_size=8)))
    bounds = [0, *cuts, length]
    return [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


# -------------------------------------------------------------- construction --
@points(1)
def test_a_new_cache_is_empty_with_preallocated_storage(student):
    """KVCache(B, max_len, H_kv, D) holds k_cache, v_cache [B, H_kv, max_len, D] and seq_len 0."""
    got = run_probe(student, new_cache, (2, 7, 3, 5), {"dtype": torch.float16})
    assert got["k_shape"] == [2, 3, 7, 5] and got["v_shape"] == [2, 3, 7, 5], got
    assert got["k_dtype"] == torch.float16 and got["v_dtype"] == torch.float16, got
    assert got["device"] == "cpu", got
    assert got["seq_len"] == 0 and got["seq_len_type"] == "int", got
    assert got["distinct"], "k_cache and v_cache must be separate storage"


@points(1)
@pytest.mark.parametrize("bad", [(0, 8, 2, 4), (1, 0, 2, 4), (1, 8, 0, 4), (1, 8, 2, -1)],
                         ids=["batch_size=0", "max_seq_len=0", "n_kv_heads=0", "head_dim=-1"])
def test_sizes_below_one_raise_value_error(student, bad):
    """A cache size (batch_size, max_seq_len, n_kv_heads, head_dim) below 1 raises ValueError."""
    assert_raises(ValueError, run_probe, student, new_cache, bad, {}, what=f"KVCache{bad}")


# -------------------------------------------------------------------- errors --
BAD_SHAPES = {
    # name: (k shape, v shape) for a cache [B=2, H_kv=3, max_len=8, D=4]
    "wrong batch": ((1, 3, 2, 4), (1, 3, 2, 4)),
    "wrong kv heads": ((2, 1, 2, 4), (2, 1, 2, 4)),
    "wrong head_dim": ((2, 3, 2, 5), (2, 3, 2, 5)),
    "k 3-D": ((2, 3, 4), (2, 3, 2, 4)),
    "v 3-D": ((2, 3, 2, 4), (3, 2, 4)),
    "k and v differ in T": ((2, 3, 2, 4), (2, 3, 1, 4)),
    "v wrong head_dim": ((2, 3, 2, 4), (2, 3, 2, 3)),
}


@points(2)
@pytest.mark.parametrize("name", list(BAD_SHAPES))
def test_keys_or_values_of_the_wrong_shape_raise_value_error(student, name):
    """k and v must both be [B, H_kv, T_new, D] with the cache's B, H_kv and D."""
    k_shape, v_shape = BAD_SHAPES[name]
    assert_raises(ValueError, run_probe, student, bad_update, (2, 3, 8, 4), k_shape, v_shape,
                  torch.float32, "cpu", 1, what=f"{name}: k {list(k_shape)}, v {list(v_shape)}")


@points(1)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int64],
                         ids=lambda d: str(d).replace("torch.", ""))
def test_keys_of_another_dtype_raise_value_error(student, dtype):
    """k and v must have the cache's dtype (no silent conversion)."""
    shape = (2, 3, 2, 4)
    assert_raises(ValueError, run_probe, student, bad_update, (2, 3, 8, 4), shape, shape,
                  dtype, "cpu", 1, what=f"{dtype} keys for a float32 cache")


@points(1)
def test_keys_on_another_device_raise_value_error(student):
    """k and v must be on the cache's device ("meta" tensors for a CPU cache here)."""
    shape = (2, 3, 2, 4)
    assert_raises(ValueError, run_probe, student, bad_update, (2, 3, 8, 4), shape, shape,
                  torch.float32, "meta", 1, what="meta-device keys for a CPU cache")


# ------------------------------------------------------ updates, fixed cases --
@points(1)
def test_zero_new_positions_change_nothing(student):
    """update with T_new = 0 returns the same positions and leaves seq_len as it was."""
    k = torch.randn(2, 3, 4, 5)
    v = torch.randn(2, 3, 4, 5)
    got = run_probe(student, cache_through_updates, k, v, 6, [3, 0, 0, 1, 0])
    assert [s["seq_len"] for s in got["steps"]] == [3, 3, 3, 4, 4]
    assert_equal(got["steps"][2]["k"], k[:, :, :3], "keys after an empty update")
    assert_equal(got["steps"][4]["v"], v, "values after an empty update")


@points(1)
def test_filling_the_cache_to_max_seq_len_is_allowed(student):
    """Updates that end exactly at max_seq_len succeed (the check is > max_seq_len, not >=)."""
    k = torch.randn(1, 2, 5, 3)
    v = torch.randn(1, 2, 5, 3)
    got = run_probe(student, cache_through_updates, k, v, 5, [4, 1])
    assert got["steps"][-1]["seq_len"] == 5
    assert_equal(got["steps"][-1]["k"], k, "keys of a full cache")


@points(1)
def test_reset_rewinds_to_an_empty_cache_in_the_same_storage(student):
    """reset() sets seq_len to 0; the next update writes from position 0 of the same storage."""
    k = torch.randn(2, 1, 9, 4)
    v = torch.randn(2, 1, 9, 4)
    got = run_probe(student, reset_then_update, k, v, 6, 5, 4)
    assert got["seq_len_after_reset"] == 0 and got["seq_len"] == 4, got
    assert_equal(got["k"], k[:, :, 5:9], "keys after reset and a new update")
    assert_equal(got["v"], v[:, :, 5:9], "values after reset and a new update")
    assert got["same_storage"], "reset or the update after it re-allocated the cache"


@points(1)
def test_reset_is_constant_time(student):
    """reset() only rewinds seq_len: it writes no tensor data and keeps the storage."""
    got = run_probe(student, elements_written, 2, 2, 4, [10], 1, 16)
    assert got["seq_len_after_reset"] == 0, got
    assert got["same_storage_after_reset"], "reset re-allocated k_cache"
    assert got["reset"] <= 16, f"reset wrote {got['reset']} tensor elements (O(max_seq_len))"


@points(2)
@pytest.mark.parametrize("prefix,t_new", [((12, 1, 1, 10), 1), ((24,), 3), ((5, 19), 2)],
                         ids=["decode", "short-chunk", "after-two-chunks"])
def test_an_update_writes_only_its_new_positions(student, prefix, t_new):
    """An update costs O(T_new): the tensor elements written while appending T_new positions
    after a long prefix are a small multiple of T_new's, never the prefix again
    (no torch.cat, no clone, no rewrite of the cache)."""
    batch, heads, dim = 2, 3, 4
    got = run_probe(student, elements_written, batch, heads, dim, list(prefix), t_new, 32)
    new = 2 * batch * heads * t_new * dim  # the new keys and values
    prefix_len = sum(prefix)
    assert got["update"] <= 4 * new + 64, (
        f"appending {t_new} position(s) after {prefix_len} wrote {got['update']} tensor elements; "
        f"the new keys and values are {new} (the whole sequence so far would be "
        f"{2 * batch * heads * (prefix_len + t_new) * dim})")


# --------------------------------------------------- properties (hypothesis) --
@points(3)
@given(seq=sequences(), data=st.data())
def test_any_split_of_a_sequence_gives_the_same_cache_contents(student, seq, data):
    """Updates of any sizes (multi-token, single-token, empty) return exactly every
    position so far, and seq_len counts them."""
    k, v = seq
    splits = data.draw(splits_of(k.shape[2]), label="splits")
    max_len = k.shape[2] + data.draw(st.integers(0, 3), label="spare room")
    got = run_probe(student, cache_through_updates, k, v, max_len, splits)
    end = 0
    for n, step in zip(splits, got["steps"], strict=True):
        end += n
        assert step["seq_len"] == end, f"seq_len is {step['seq_len']} after updates {splits}"
        assert_equal(step["k"], k[:, :, :end], f"keys returned after {end} positions",
                     splits=splits)
        assert_equal(step["v"], v[:, :, :end], f"values returned after {end} positions",
                     splits=splits)


@points(2)
@given(seq=sequences(min_len=2), data=st.data())
def test_update_returns_views_of_the_preallocated_storage(student, seq, data):
    """update never re-allocates: k_cache/v_cache keep their address, and the returned
    keys and values are views that start at the caches' own first element."""
    k, v = seq
    splits = data.draw(splits_of(k.shape[2]), label="splits")
    got = run_probe(student, cache_through_updates, k, v, k.shape[2] + 2, splits)
    first = got["first"]
    for i, step in enumerate(got["steps"]):
        if step["seq_len"] == 0:
            continue  # an empty view may report any address
        where = f"after update {i} of {splits}"
        assert step["k_cache_ptr"] == first["k"] and step["v_cache_ptr"] == first["v"], \
            f"k_cache/v_cache were re-allocated {where}"
        assert step["k_ptr"] == first["k"] and step["v_ptr"] == first["v"], \
            f"the returned keys/values do not start at k_cache/v_cache's data {where}"
        assert step["k_storage"] == step["k_cache_storage"] and \
            step["v_storage"] == step["v_cache_storage"], \
            f"the returned keys/values are not views of the cache's storage {where}"
        assert step["k_is_view_of_cache"], f"the returned keys are not a view of k_cache {where}"


@points(3)
@given(seq=sequences(min_len=2), data=st.data())
def test_overflow_raises_value_error_and_leaves_the_cache_unchanged(student, seq, data):
    """An update past max_seq_len raises ValueError before writing anything: seq_len,
    k_cache and v_cache (every position) are exactly as before, and the cache still works."""
    k, v = seq
    total = k.shape[2]
    max_len = data.draw(st.integers(1, total - 1), label="max_seq_len")
    prefix = data.draw(st.integers(0, max_len), label="prefix")
    extra = data.draw(st.integers(max_len - prefix + 1, total - prefix), label="new positions")
    got = run_probe(student, overflowing_update, k, v, max_len, prefix, extra)
    assert got["raised"] == "ValueError", (
        f"{prefix} positions + {extra} new > max_seq_len={max_len}: expected ValueError, "
        f"got {got['raised'] or 'no exception'}")
    (len0, k0, v0), (len1, k1, v1) = got["before"], got["after"]
    assert len1 == len0 == prefix, f"seq_len changed from {len0} to {len1} on a failed update"
    # Before and after both come from the worker: anchor the filled part to the inputs.
    assert_equal(k0[:, :, :prefix], k[:, :, :prefix], "k_cache's first positions before it")
    assert_equal(v0[:, :, :prefix], v[:, :, :prefix], "v_cache's first positions before it")
    assert_equal(k1, k0, "k_cache after the failed update equals k_cache before it")
    assert_equal(v1, v0, "v_cache after the failed update equals v_cache before it")
    assert_equal(got["then_filled"], k[:, :, :max_len], "keys after filling the remaining room")


# ----------------------------------------------------------------------- GPU --
@pytest.mark.gpu
@points(0)
def test_a_cuda_cache_keeps_its_storage_on_the_gpu(student):
    """KVCache(..., device="cuda") allocates k_cache and v_cache on the GPU."""
    got = run_probe(student, new_cache, (1, 6, 2, 8), {"dtype": torch.float16, "device": "cuda"})
    assert got["device"].startswith("cuda"), got
