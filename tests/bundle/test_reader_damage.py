"""Damage never crashes the reader (cut, flipped, random bytes); big bundles read in flat memory."""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import tracemalloc
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssbsync.bundle import (
    BlobChunk,
    BundleError,
    BundleReader,
    BundleWriter,
    FeedRange,
    MessageRecord,
)
from ssbsync.bundle.zstdframe import FrameReader, FrameWalker
from tests.bundle.helpers import (
    MAGIC,
    WRITER,
    blob,
    expected_records,
    feed_messages,
    header_record,
    make_header,
    message_record,
    raw_bundle,
    read_all,
    sealed,
    stored_frame,
    trailer_record,
    write_bundle,
)

SMALL_MESSAGES = feed_messages(2, 6)
SMALL_BLOBS = (blob(300),)
BIG_MESSAGES = feed_messages(5, 1500)
BIG_BLOBS = (blob(200_000, seed=4), blob(1, seed=5))


def _read(data: bytes) -> tuple[BundleReader, list[MessageRecord | BlobChunk]] | None:
    """The reader and its records, or None when the header is unusable (BundleError)."""
    try:
        reader = BundleReader(io.BytesIO(data))
    except BundleError:
        return None
    records = list(reader.records())  # must never raise
    assert (reader.damage is None) != (reader.trailer is None), (reader.damage, reader.trailer)
    assert reader.records_read == len(records)
    return reader, records


def _first_readable_cut(data: bytes) -> int:
    """The shortest prefix whose header reads: every longer prefix must read too."""
    return next(cut for cut in range(len(data) + 1) if _read(data[:cut]) is not None)


def _check_truncation(data: bytes, expected: list[MessageRecord | BlobChunk], cut: int) -> None:
    result = _read(data[:cut])
    assert result is not None, f"the header stopped reading at cut {cut}"
    reader, records = result
    assert records == expected[: len(records)], f"cut at {cut} yielded a record that is not real"
    if cut < len(data):
        assert reader.damage is not None and reader.trailer is None, f"cut at {cut}"
    else:
        assert reader.damage is None and records == expected


def test_truncated_at_every_byte_of_a_small_bundle() -> None:
    data = write_bundle(SMALL_MESSAGES, SMALL_BLOBS)
    expected = expected_records(SMALL_MESSAGES, SMALL_BLOBS)
    header_end = _first_readable_cut(data)
    assert header_end > 8
    for cut in range(header_end):
        assert _read(data[:cut]) is None
    messages = []
    for cut in range(header_end, len(data) + 1):
        _check_truncation(data, expected, cut)
        result = _read(data[:cut])
        assert result is not None
        messages.append(result[0].damage)
    assert messages[-1] is None
    assert any(m is not None and m.startswith("truncated after") for m in messages)
    assert any(m is not None and "frame" in m for m in messages)  # the checksum cut off


def test_truncated_at_random_bytes_of_a_bigger_bundle() -> None:
    data = write_bundle(BIG_MESSAGES, BIG_BLOBS)
    expected = expected_records(BIG_MESSAGES, BIG_BLOBS)
    header_end = _first_readable_cut(data[:70_000])
    rng = random.Random(5)
    cuts = sorted(rng.randrange(header_end, len(data)) for _ in range(150))
    counts = []
    for cut in [*cuts, len(data) - 1, len(data)]:
        _check_truncation(data, expected, cut)
        result = _read(data[:cut])
        assert result is not None
        counts.append(len(result[1]))
    assert counts == sorted(counts)  # a longer prefix never yields fewer records
    assert 0 < counts[len(counts) // 2] < len(expected)


def test_byte_flips_after_the_header_are_damage_or_harmless() -> None:
    data = write_bundle(BIG_MESSAGES, BIG_BLOBS)
    expected = expected_records(BIG_MESSAGES, BIG_BLOBS)
    header_end = _first_readable_cut(data[:70_000])
    rng = random.Random(7)
    damaged = 0
    for _ in range(120):
        flipped = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 5))):
            flipped[rng.randrange(header_end, len(data))] ^= 1 << rng.randrange(8)
        result = _read(bytes(flipped))
        assert result is not None, "a flip after the header made the header unreadable"
        reader, records = result
        if reader.damage is None:
            assert records == expected
        else:
            damaged += 1
    assert damaged > 100


def test_flips_in_stored_blocks_change_only_the_records_flipped() -> None:
    """In a frame of stored blocks a flip changes exactly one content byte: every record that
    ends before it must come out intact, and nothing may raise."""
    header = header_record(make_header(SMALL_MESSAGES))
    body = [message_record(j.encode()) for _, _, j in SMALL_MESSAGES]
    content = header + b"".join(body)
    content += trailer_record(content, len(body))
    data = MAGIC + stored_frame(content)
    reader, records = read_all(data)
    assert reader.damage is None and len(records) == len(body)
    ends = list(itertools.accumulate([len(header), *map(len, body)]))[1:]
    rng = random.Random(11)
    for _ in range(400):
        at = rng.randrange(len(header), len(content))
        flipped = bytearray(MAGIC + stored_frame(content))
        flipped[8 + 6 + 3 * (at // 1000 + 1) + at] ^= 1 << rng.randrange(8)
        result = _read(bytes(flipped))
        assert result is not None
        reader, got = result
        assert reader.damage is not None  # the trailer's sha256 always notices
        intact = sum(1 for end in ends if end <= at)
        assert got[:intact] == [MessageRecord(j.encode()) for _, _, j in SMALL_MESSAGES[:intact]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_are_refused_or_read_to_an_end(data: bytes) -> None:
    _read(data)
    _read(MAGIC + data)
    _read(raw_bundle([data]))


_HEADER = make_header(SMALL_MESSAGES)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=6), st.integers(0, 8))
def test_any_records_after_a_good_header_end_cleanly(body: list[bytes], count: int) -> None:
    result = _read(sealed(_HEADER, body, count))
    assert result is not None


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_mutation_of_a_good_bundle_is_refused_or_read_to_an_end(data: st.DataObject) -> None:
    good = write_bundle(SMALL_MESSAGES, SMALL_BLOBS)
    bad = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(bad) - 1))
        action = data.draw(st.sampled_from(("flip", "delete", "insert")))
        if action == "flip":
            bad[at] ^= data.draw(st.integers(1, 255))
        elif action == "delete":
            del bad[at]
        else:
            bad.insert(at, data.draw(st.integers(0, 255)))
    result = _read(bytes(bad))
    if result is not None and result[0].damage is None:
        assert result[1] == expected_records(SMALL_MESSAGES, SMALL_BLOBS)


@pytest.mark.slow
def test_memory_stays_flat_over_200k_records(tmp_path: Path) -> None:
    count = 200_000
    path = tmp_path / "big.bundle"
    feed = WRITER.id
    header = make_header(feeds=(FeedRange(feed, 1, count),))
    with path.open("wb") as out:
        writer = BundleWriter(out, WRITER, header)
        for n in range(count):
            noise = hashlib.sha256(n.to_bytes(4, "big")).hexdigest().encode()
            writer.add_message(b'{"n":%d,"text":"%s"}' % (n, noise))
        writer.finish()
    assert path.stat().st_size > 6_000_000  # twice the memory bound
    tracemalloc.start()
    try:
        with path.open("rb") as source:
            reader = BundleReader(source)
            seen = 0
            for record in reader.records():
                assert isinstance(record, MessageRecord)
                seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.damage is None and seen == count
    assert peak < 3 * 1024 * 1024, f"peak {peak} bytes"


class _FailingFile(io.BytesIO):
    """A file on a stick that is pulled after `limit` bytes."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__(data)
        self.limit = limit

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.limit:
            raise OSError(5, "Input/output error")
        return super().read(size)


def test_an_io_error_after_the_header_is_damage() -> None:
    data = write_bundle(BIG_MESSAGES)
    reader = BundleReader(_FailingFile(data, 200_000))
    records = list(reader.records())
    assert 0 < len(records) < len(BIG_MESSAGES)
    assert reader.damage is not None and "Input/output error" in reader.damage
    assert reader.damage.startswith(f"the file failed after {len(records)} records")


@pytest.mark.parametrize("checksum", [True, False])
@pytest.mark.parametrize("content_size", [True, False])
@pytest.mark.parametrize("size", [0, 10, 300_000])
def test_frame_walker_finds_the_end_of_any_frame(
    checksum: bool, content_size: bool, size: int
) -> None:
    rng = random.Random(size)
    content = bytes(rng.choice(b"abcdefgh") for _ in range(size))
    compressor = zstandard.ZstdCompressor(write_checksum=checksum, write_content_size=content_size)
    frame = compressor.compress(content)
    walker = FrameWalker()
    cuts: list[int] = []
    at = 0
    while at < len(frame):
        assert not walker.complete
        piece = frame[at : at + rng.randint(1, 5000)]
        cuts += [at + c for c in walker.feed(piece)]
        at += len(piece)
    assert walker.complete and not walker.extra
    assert cuts == sorted(cuts) and cuts[-1] == len(frame)
    assert walker.feed(b"\x00") == [0] and walker.extra
    out = io.BytesIO(frame + b"trailing")
    reader = FrameReader(out, read_size=777)
    pieces = []
    while piece := reader.read():
        assert len(piece) <= 128 * 1024
        pieces.append(piece)
    assert b"".join(pieces) == content and reader.complete and reader.extra
