"""The stick layout: init/open, yank-safe segments, the clock, node acknowledgements, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssbsync.bundle import (
    MARKER,
    BundleWriter,
    CarrySpec,
    NotAStick,
    Stick,
    StickError,
    network_fingerprint,
)
from ssbsync.bundle.stick import node_file_name
from ssbsync.core.clock import VectorClock
from ssbsync.core.refs import FeedId
from tests.bundle.helpers import (
    NETWORK_KEY,
    OTHER_NETWORK_KEY,
    WRITER,
    feed_messages,
    make_header,
    write_bundle,
)

MESSAGES = feed_messages(2, 30)
FEED_A, FEED_B = sorted({m[0] for m in MESSAGES})
NODE_1, NODE_2 = FeedId(WRITER.id), FeedId(FEED_A)
CARRY = CarrySpec(feeds=(FEED_A,), hops=1, blobs=True)


def _feed(feed: FeedId, first: int, last: int) -> tuple[tuple[FeedId, int, str], ...]:
    return tuple(m for m in MESSAGES if m[0] == feed and first <= m[1] <= last)


def _init(volume: Path, max_size: int | None = None) -> Stick:
    return Stick.init(
        volume,
        network_key=NETWORK_KEY,
        carry=CARRY,
        max_size=max_size,
        now_ms=1_700_000_000_000,
        stick_id="0123abcd",
    )


def _add_segment(stick: Stick, messages: tuple[tuple[FeedId, int, str], ...]) -> None:
    with stick.new_segment() as handle:
        writer = BundleWriter(handle, WRITER, make_header(messages))
        for _, _, json_text in messages:
            writer.add_message(json_text)
        writer.finish()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_init_then_open(tmp_path: Path) -> None:
    assert not Stick.is_stick(tmp_path)
    stick = _init(tmp_path, max_size=10_000_000)
    assert Stick.is_stick(tmp_path) and stick.folder == tmp_path / MARKER
    assert _files(stick.folder) == ["clock.json", "nodes", "segments", "stick.json"]
    opened = Stick.open(tmp_path, NETWORK_KEY)
    assert (opened.id, opened.network, opened.created_ms) == (
        "0123abcd",
        network_fingerprint(NETWORK_KEY),
        1_700_000_000_000,
    )
    assert opened.carry == CARRY and opened.max_size == 10_000_000
    meta = json.loads((stick.folder / "stick.json").read_text())
    assert meta["format"] == "ssbsync-stick" and meta["network"] == opened.network.hex()
    assert opened.segments() == [] and opened.clock() == VectorClock()


def test_init_twice_is_refused(tmp_path: Path) -> None:
    _init(tmp_path)
    with pytest.raises(StickError, match="is already a stick"):
        _init(tmp_path)


def test_init_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(StickError, match="is not a folder"):
        _init(tmp_path / "missing")


def test_init_refuses_a_bad_id(tmp_path: Path) -> None:
    with pytest.raises(StickError, match="'id' must be lowercase hex"):
        Stick.init(
            tmp_path, network_key=NETWORK_KEY, carry=CARRY, max_size=None, now_ms=0, stick_id="X"
        )
    assert not Stick.is_stick(tmp_path)


def test_init_leftover_from_a_pull_is_cleared(tmp_path: Path) -> None:
    (tmp_path / f"{MARKER}.partial" / "segments").mkdir(parents=True)
    _init(tmp_path)
    assert not (tmp_path / f"{MARKER}.partial").exists()


def test_open_a_volume_that_is_no_stick(tmp_path: Path) -> None:
    with pytest.raises(NotAStick, match="is not an ssbsync stick"):
        Stick.open(tmp_path)


def test_open_a_stick_of_another_network(tmp_path: Path) -> None:
    _init(tmp_path)
    with pytest.raises(StickError, match="stick of another network"):
        Stick.open(tmp_path, OTHER_NETWORK_KEY)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (None, "not valid JSON"),
        ({"format": "x"}, "'format' is 'x'"),
        ({"version": 2}, "stick format 2 is newer"),
        ({"id": 5}, "'id' must be lowercase hex"),
        ({"network": "zz"}, "'network' must be 16 lowercase hex digits"),
        ({"created": -5}, "'created' must be an integer >= 0"),
        ({"maxSize": 0}, "'maxSize' must be null or a positive integer"),
        ({"carry": {"feeds": ["@x"]}}, "carry: not a feed id"),
        ({"carry": {"hops": "2"}}, "carry 'hops' must be null or an integer"),
        ({"carry": {"blobs": 1}}, "carry 'blobs' must be true or false"),
        ({"carry": {"more": 1}}, "carry has unknown field 'more'"),
    ],
)
def test_a_bad_stick_json_is_named(
    tmp_path: Path, change: dict[str, object] | None, message: str
) -> None:
    stick = _init(tmp_path)
    path = stick.folder / "stick.json"
    if change is None:
        path.write_text("{not json")
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(StickError, match=message) as caught:
        Stick.open(tmp_path)
    assert str(path) in str(caught.value)


def test_set_carry_is_kept(tmp_path: Path) -> None:
    stick = _init(tmp_path)
    carry = CarrySpec(feeds=(FEED_A, FEED_B), hops=None, blobs=False)
    stick.set_carry(carry, 5_000)
    reopened = Stick.open(tmp_path)
    assert reopened.carry == carry and reopened.max_size == 5_000
    assert CarrySpec.from_json(carry.to_json()) == carry
    with pytest.raises(StickError, match="'hops' must be null or an integer >= 0"):
        CarrySpec(hops=-1)


def test_new_segment_commits_and_raises_the_clock(tmp_path: Path) -> None:
    stick = _init(tmp_path)
    _add_segment(stick, _feed(FEED_A, 1, 5))
    _add_segment(stick, _feed(FEED_A, 6, 8) + _feed(FEED_B, 1, 4))
    segments = stick.segments()
    assert [(s.number, s.path.name) for s in segments] == [
        (1, "00000001.bundle"),
        (2, "00000002.bundle"),
    ]
    assert segments[0].size == segments[0].path.stat().st_size
    assert segments[1].header.message_count == 7
    assert stick.clock() == VectorClock({FEED_A: 8, FEED_B: 4})
    stored = json.loads((stick.folder / "clock.json").read_text())
    assert stored == {"clock": {FEED_A: 8, FEED_B: 4}}
    assert stick.used_bytes() == sum(s.size for s in segments)
    assert not [p for p in stick.folder.rglob("*") if p.name.endswith(".partial")]


def test_new_segment_exception_leaves_nothing(tmp_path: Path) -> None:
    stick = _init(tmp_path)
    before = _files(stick.folder)
    with pytest.raises(RuntimeError, match="pulled"), stick.new_segment() as handle:
        handle.write(b"SSBSYNC\x01 half a bundle")
        raise RuntimeError("pulled")
    assert _files(stick.folder) == before
    assert stick.segments() == [] and stick.clock() == VectorClock()


def test_new_segment_that_is_no_bundle_is_refused(tmp_path: Path) -> None:
    stick = _init(tmp_path)
    before = _files(stick.folder)
    refused = pytest.raises(StickError, match=r"00000001\.bundle: the new segment is not a usable")
    with refused, stick.new_segment() as handle:
        handle.write(b"garbage")
    assert _files(stick.folder) == before


def test_new_segment_of_another_network_is_refused(tmp_path: Path) -> None:
    stick = _init(tmp_path)
    with pytest.raises(StickError, match="of another network"), stick.new_segment() as handle:
        handle.write(write_bundle(MESSAGES[:2], network_key=OTHER_NETWORK_KEY))
    assert stick.segments() == []


def test_a_leftover_partial_is_ignored_then_removed(tmp_path: Path) -> None:
    stick = _init(tmp_path)
    _add_segment(stick, _feed(FEED_A, 1, 3))
    leftover = stick.folder / "segments" / "00000002.bundle.partial"
    leftover.write_bytes(b"SSBSYNC\x01 cut here")
    (stick.folder / "clock.json.partial").write_text("{")
    (stick.folder / "nodes" / "abc.json.partial").write_text("{")
    assert [s.number for s in stick.segments()] == [1] and stick.unreadable() == []
    Stick.open(tmp_path)
    assert not [p for p in stick.folder.rglob("*") if p.name.endswith(".partial")]


def test_unreadable_segments_are_listed_not_used(tmp_path: Path) -> None:
    stick = _init(tmp_path)
    _add_segment(stick, _feed(FEED_A, 1, 3))
    bad = stick.folder / "segments" / "00000002.bundle"
    bad.write_bytes(b"not a bundle")
    foreign = stick.folder / "segments" / "00000003.bundle"
    foreign.write_bytes(write_bundle(MESSAGES[:1], network_key=OTHER_NETWORK_KEY))
    assert [s.number for s in stick.segments()] == [1]
    reasons = dict(stick.unreadable())
    assert "not an ssbsync bundle" in reasons[bad]
    assert "another network" in reasons[foreign]
    _add_segment(stick, _feed(FEED_B, 1, 2))  # numbering continues after them
    assert [s.number for s in stick.segments()] == [1, 4]


@pytest.mark.parametrize("damage", ["missing", "not json", "bad clock"])
def test_clock_json_is_rebuilt(tmp_path: Path, damage: str) -> None:
    stick = _init(tmp_path)
    _add_segment(stick, _feed(FEED_A, 1, 5))
    _add_segment(stick, _feed(FEED_B, 1, 2))
    path = stick.folder / "clock.json"
    if damage == "missing":
        path.unlink()
    elif damage == "not json":
        path.write_text("{")
    else:
        path.write_text(json.dumps({"clock": {"@nope": 1}}))
    assert Stick.open(tmp_path).clock() == VectorClock({FEED_A: 5, FEED_B: 2})
    assert json.loads(path.read_text()) == {"clock": {FEED_A: 5, FEED_B: 2}}


def test_record_node_and_node_clocks(tmp_path: Path) -> None:
    stick = _init(tmp_path)
    stick.record_node(NODE_1, {FEED_A: 3}, now_ms=1000)
    stick.record_node(NODE_2, VectorClock({FEED_B: 7}), now_ms=2000)
    stick.record_node(NODE_1, {FEED_A: 4, FEED_B: 1}, now_ms=3000)  # replaces its first record
    clocks = Stick.open(tmp_path).node_clocks()
    assert clocks == {
        NODE_1: (VectorClock({FEED_A: 4, FEED_B: 1}), 3000),
        NODE_2: (VectorClock({FEED_B: 7}), 2000),
    }
    assert (stick.folder / "nodes" / node_file_name(NODE_1)).exists()
    assert len(node_file_name(NODE_1)) == len("0123456789abcdef.json")


def test_prunable_needs_every_node(tmp_path: Path) -> None:
    stick = _init(tmp_path)
    _add_segment(stick, _feed(FEED_A, 1, 5))
    _add_segment(stick, _feed(FEED_A, 6, 8))
    _add_segment(stick, _feed(FEED_B, 1, 3))
    assert stick.prunable() == []  # nobody has acknowledged anything yet
    stick.record_node(NODE_1, {FEED_A: 8, FEED_B: 3}, now_ms=1)
    assert [s.number for s in stick.prunable()] == [1, 2, 3]
    stick.record_node(NODE_2, {FEED_A: 5, FEED_B: 3}, now_ms=2)
    assert [s.number for s in stick.prunable()] == [1, 3]
    (stick.folder / "nodes" / "ffffffffffffffff.json").write_text("{")
    assert stick.prunable() == []  # an unreadable acknowledgement counts as none
    assert set(stick.node_clocks()) == {NODE_1, NODE_2}


def test_room_and_prune(tmp_path: Path) -> None:
    stick = _init(tmp_path, max_size=1_000_000)
    _add_segment(stick, _feed(FEED_A, 1, 5))
    _add_segment(stick, _feed(FEED_A, 6, 8))
    _add_segment(stick, _feed(FEED_B, 1, 3))
    sizes = [s.size for s in stick.segments()]
    assert stick.room() == min(stick.free_bytes(), 1_000_000 - sum(sizes))
    stick.set_carry(CARRY, sum(sizes) - 10)
    assert stick.room() == 0  # over the limit: never negative
    stick.set_carry(CARRY, sum(sizes) + 100)
    assert stick.prune(sizes[0] + 50) == []  # nothing is acknowledged
    stick.record_node(NODE_1, {FEED_A: 8, FEED_B: 1}, now_ms=1)  # covers segments 1 and 2
    deleted = stick.prune(sizes[0] + 50)
    assert [s.number for s in deleted] == [1]
    assert stick.room() == 100 + sizes[0]
    assert [s.number for s in stick.prune(10**9)] == [2]  # all it can, segment 3 stays
    assert [s.number for s in stick.segments()] == [3]
    # the high-water mark outlives the pruned segments
    assert Stick.open(tmp_path).clock() == VectorClock({FEED_A: 8, FEED_B: 3})


def test_room_without_a_limit_is_the_free_space(tmp_path: Path) -> None:
    stick = _init(tmp_path)
    assert stick.room() == stick.free_bytes() > 0
    assert stick.prune(0) == []
