"""grader/isolation/wire.py: what the trusted side accepts from a worker.

A reply is hostile data until checked: its envelope, the types of its fields, the
number of values it holds (shared references counted at every visit) and, before
decoding, the archive it came in.
"""

import collections
import io
import zipfile

import pytest
import torch

from grader.isolation.wire import (
    MAX_ANSWER_BYTES,
    BadReply,
    check_frame,
    check_payload,
    check_reply,
)


def saved(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def test_a_plain_reply_passes():
    check_reply({"ok": True, "value": {"q": torch.zeros(3), "n": 2, "names": ["a", None]}})
    check_reply({"ok": False, "error": {"type": "ValueError", "builtin": True,
                                        "message": "x must be floating", "traceback": ""}})
    check_frame(saved({"ok": True, "value": torch.ones(4)}))


def test_shared_references_that_would_expand_exponentially_are_refused():
    value = [0]
    for _ in range(25):  # 26 distinct lists, 2^25 leaves
        value = [value, value]
    with pytest.raises(BadReply, match="more than 200000 values"):
        check_reply({"ok": True, "value": value})


@pytest.mark.parametrize("reply", [
    "ok",
    {"ok": 1, "value": 2},
    {"ok": True, "value": 1, "extra": 2},
    {"ok": False, "error": "boom"},
    {"ok": False, "error": {"type": 1, "builtin": True, "message": "", "traceback": ""}},
    {"ok": False, "error": {"type": "E", "builtin": "yes", "message": "", "traceback": ""}},
    {"ok": True, "value": {(1, 2): 3}},
    {"ok": True, "value": torch.nn.Parameter(torch.ones(2))},
])
def test_a_reply_of_the_wrong_shape_is_refused(reply):
    with pytest.raises(BadReply):
        check_reply(reply)


def test_deep_nesting_is_refused():
    value = 0
    for _ in range(100):
        value = [value]
    with pytest.raises(BadReply, match="deeper"):
        check_reply({"ok": True, "value": value})


def test_a_compressed_archive_is_refused_before_decoding():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * 100_000)
    with pytest.raises(BadReply, match="compressed"):
        check_frame(buffer.getvalue())


def test_garbage_is_refused_before_decoding():
    with pytest.raises(BadReply, match="not a torch.save archive"):
        check_frame(b"\x80\x04garbage")


def test_a_reply_is_read_within_its_requests_budget():
    assert check_payload(saved({"ok": True, "value": 3}), MAX_ANSWER_BYTES)["value"] == 3
    with pytest.raises(BadReply, match="more than the 65536"):
        check_payload(saved({"ok": True, "value": torch.zeros(20_000)}), MAX_ANSWER_BYTES)


@pytest.mark.parametrize("value, says", [
    (torch.zeros(1).expand(1 << 31), "more than the 1073741824 bytes"),  # by shape
    (10 ** 2000, "an integer of"),
    (collections.Counter(a=1), "the global collections.Counter"),
])
def test_declared_sizes_and_types_are_refused_before_they_are_used(value, says):
    with pytest.raises(BadReply, match=says):
        check_payload(saved({"ok": True, "value": value}), 1 << 30)
