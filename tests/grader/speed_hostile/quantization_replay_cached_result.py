r"""A kernel 40x too slow (it runs the reference's kernel 40 times a call) that
remembers its results by the input's content (its shape and first 32 values) and
replays them on a match.

Attack: the timed runs fed the same input every run (seed 0, negated in place), so every
timed call after the warm-up was answered from the cache: full speed points for a kernel
far slower than the reference. Keyed on content, it also beats caches keyed on the
tensor's identity, pointer or version being cleared.
Expect: 0\.\d\dx the reference's throughput .* 0% of the points
"""

_kernel = globals()["quantize_rowwise"]
_cache = {}


def quantize_rowwise(x):
    key = (tuple(x.shape), tuple(x.flatten()[:32].tolist()))
    if key not in _cache:
        for _ in range(40):  # slow, whatever the machine's load
            _cache[key] = _kernel(x)
    return _cache[key]
