"""Probes: the trusted drivers that exercise a student's KVCache where it lives.

Each runs beside the student's module (in the worker when grading) and returns
plain data: tensors, numbers, storage addresses, counts. Expected values stay
in the tests. See grader/kit/probes.py for the rules a probe follows.
"""

import torch  # probes name torch as a global: worker_main.probe_namespace provides it


def cache_through_updates(impl, k_full, v_full, max_seq_len, splits):
    """Feed k_full/v_full [B, H_kv, T, D] in chunks of `splits` positions; record each step.

    Per step: seq_len, the returned keys/values (copied), and where they live:
    data_ptr of the returned views, of their storages and of k_cache/v_cache.
    """
    batch, heads, _, dim = k_full.shape
    cache = impl.KVCache(batch, max_seq_len, heads, dim, dtype=k_full.dtype)
    first = {"k": cache.k_cache.data_ptr(), "v": cache.v_cache.data_ptr()}
    steps, start = [], 0
    for n in splits:
        keys, values = cache.update(k_full[:, :, start:start + n], v_full[:, :, start:start + n])
        start += n
        steps.append({
            "seq_len": cache.seq_len,
            "k": keys.clone(), "v": values.clone(),
            "k_ptr": keys.data_ptr(), "v_ptr": values.data_ptr(),
            "k_storage": keys.untyped_storage().data_ptr(),
            "v_storage": values.untyped_storage().data_ptr(),
            "k_is_view_of_cache": keys._base is cache.k_cache or keys is cache.k_cache
            or (keys._base is not None and keys._base is cache.k_cache._base),
            "k_cache_ptr": cache.k_cache.data_ptr(), "v_cache_ptr": cache.v_cache.data_ptr(),
            "k_cache_storage": cache.k_cache.untyped_storage().data_ptr(),
            "v_cache_storage": cache.v_cache.untyped_storage().data_ptr(),
        })
    return {"first": first, "steps": steps,
            "k_cache_shape": list(cache.k_cache.shape), "k_cache_dtype": cache.k_cache.dtype}


def elements_written(impl, batch, heads, dim, prefix_splits, t_new, max_seq_len):
    """Fill a cache with sum(prefix_splits) positions, then count the tensor elements
    that torch operations write during one update of t_new positions, and during reset().

    Counted through a TorchDispatchMode: a view (slicing) or a read writes nothing; an
    out-of-place op writes its outputs; an in-place op (copy_, index_copy_, zero_, ...)
    writes its mutated argument, but no more elements than its largest tensor input
    holds (index_copy_ into a big cache writes only its source). Appending with
    torch.cat writes the prefix again.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    written = [0]

    def numel(value):
        return [t.numel() for t in tree_leaves(value) if isinstance(t, torch.Tensor)]

    class CountWrites(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            schema = func._schema
            if schema.is_mutable:
                mutated, inputs = [], []
                for i, arg in enumerate(schema.arguments):
                    value = args[i] if i < len(args) else kwargs.get(arg.name)
                    is_written = arg.alias_info is not None and arg.alias_info.is_write
                    (mutated if is_written else inputs).extend(numel(value))
                bound = max(inputs) if inputs else sum(mutated)
                written[0] += min(sum(mutated), bound)
            elif not func.is_view:
                written[0] += sum(numel(out))
            return out

    def chunk(n):
        return torch.randn(batch, heads, n, dim), torch.randn(batch, heads, n, dim)

    cache = impl.KVCache(batch, max_seq_len, heads, dim)
    for n in prefix_splits:
        cache.update(*chunk(n))
    k, v = chunk(t_new)
    with CountWrites():
        cache.update(k, v)
    during_update = written[0]
    written[0] = 0
    ptr = cache.k_cache.data_ptr()
    with CountWrites():
        cache.reset()
    return {"update": during_update, "reset": written[0], "seq_len_after_reset": cache.seq_len,
            "same_storage_after_reset": cache.k_cache.data_ptr() == ptr}


def overflowing_update(impl, k_full, v_full, max_seq_len, prefix, extra):
    """Fill `prefix` positions, then try to append `extra` more past max_seq_len.

    Returns whether a ValueError came, and the cache's whole state before and after.
    """
    batch, heads, _, dim = k_full.shape
    cache = impl.KVCache(batch, max_seq_len, heads, dim, dtype=k_full.dtype)
    if prefix:
        cache.update(k_full[:, :, :prefix], v_full[:, :, :prefix])
    before = (cache.seq_len, cache.k_cache.clone(), cache.v_cache.clone())
    try:
        cache.update(k_full[:, :, prefix:prefix + extra], v_full[:, :, prefix:prefix + extra])
        raised = None
    except ValueError:
        raised = "ValueError"
    except Exception as error:  # noqa: BLE001 - reported to the test by name
        raised = type(error).__name__
    after = (cache.seq_len, cache.k_cache.clone(), cache.v_cache.clone())
    # A cache still usable after the error: the remaining room takes the rest.
    room = max_seq_len - cache.seq_len
    keys, _ = cache.update(k_full[:, :, prefix:prefix + room], v_full[:, :, prefix:prefix + room])
    return {"raised": raised, "before": before, "after": after, "then_filled": keys.clone()}


def reset_then_update(impl, k_full, v_full, max_seq_len, first, second):
    """Update with `first` positions, reset, update with the next `second` positions."""
    batch, heads, _, dim = k_full.shape
    cache = impl.KVCache(batch, max_seq_len, heads, dim, dtype=k_full.dtype)
    ptr = cache.k_cache.data_ptr()
    cache.update(k_full[:, :, :first], v_full[:, :, :first])
    cache.reset()
    seq_len_after_reset = cache.seq_len
    keys, values = cache.update(k_full[:, :, first:first + second],
                                v_full[:, :, first:first + second])
    return {"seq_len_after_reset": seq_len_after_reset, "seq_len": cache.seq_len,
            "k": keys.clone(), "v": values.clone(),
            "same_storage": cache.k_cache.data_ptr() == ptr and keys.data_ptr() == ptr}


def bad_update(impl, cache_shape, k_shape, v_shape, dtype, device, prefill):
    """Make a float32 CPU cache [B, H_kv, max_len, D] holding `prefill` positions, then
    update it with zeros of the given shapes, dtype and device (the exception propagates)."""
    batch, heads, max_len, dim = cache_shape
    cache = impl.KVCache(batch, max_len, heads, dim)
    if prefill:
        cache.update(torch.ones(batch, heads, prefill, dim), torch.ones(batch, heads, prefill, dim))
    k = torch.zeros(k_shape, dtype=dtype, device=device)
    v = torch.zeros(v_shape, dtype=dtype, device=device)
    cache.update(k, v)
    return cache.seq_len


def new_cache(impl, args, kwargs):
    """KVCache(*args, **kwargs): its fields as plain data (the exception propagates)."""
    cache = impl.KVCache(*args, **kwargs)
    return {"k_shape": list(cache.k_cache.shape), "v_shape": list(cache.v_cache.shape),
            "k_dtype": cache.k_cache.dtype, "v_dtype": cache.v_cache.dtype,
            "device": str(cache.k_cache.device), "seq_len": cache.seq_len,
            "seq_len_type": type(cache.seq_len).__name__,
            "distinct": cache.k_cache.data_ptr() != cache.v_cache.data_ptr()}
