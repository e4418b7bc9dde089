"""The bundle format: roundtrips, the writer's refusals, header and trailer checks, forgeries."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import cbor2
import pytest

from ssbsync.bundle import (
    FORMAT_VERSION,
    MAGIC,
    BlobChunk,
    BundleError,
    BundleReader,
    BundleWriter,
    FeedRange,
    MessageRecord,
    network_fingerprint,
    read_header,
)
from ssbsync.bundle.format import header_from_map, header_to_map
from ssbsync.core.clock import VectorClock
from tests.bundle.helpers import (
    NETWORK_KEY,
    OTHER_NETWORK_KEY,
    STRANGER,
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
    trailer_record,
    write_bundle,
)

MESSAGES = feed_messages(3, 40)
BLOBS = (blob(150_000), blob(0, seed=1), blob(5, seed=2))


def test_roundtrip_header_messages_blobs_trailer() -> None:
    out = io.BytesIO()
    header = make_header(MESSAGES, BLOBS)
    writer = BundleWriter(out, WRITER, header)
    for _, _, json in MESSAGES:
        writer.add_message(json)
    assert writer.messages_written == len(MESSAGES)
    for blob_ref, data in BLOBS:  # chunks of odd sizes are re-cut to 64 KiB
        writer.add_blob(
            blob_ref, len(data), [data[i : i + 7_000] for i in range(0, len(data), 7_000)]
        )
    trailer = writer.finish()
    data = out.getvalue()
    assert data.startswith(MAGIC) and writer.compressed_bytes == len(data)

    reader, records = read_all(data)
    assert reader.header == header
    assert reader.damage is None and reader.trailer == trailer
    assert records == expected_records(MESSAGES, BLOBS)
    assert [len(r.data) for r in records if isinstance(r, BlobChunk)] == [65536, 65536, 18928, 0, 5]
    assert trailer.messages == 40 and trailer.blobs == 3 and trailer.blob_bytes == 150_005
    assert reader.records_read == len(records)
    assert reader.compressed_bytes_read == len(data)


def test_an_empty_bundle_is_complete() -> None:
    reader, records = read_all(write_bundle())
    assert records == [] and reader.damage is None and reader.trailer is not None
    assert reader.header.message_count == 0


def test_message_records_of_every_head_size() -> None:
    """The hand-encoded record heads (1, 2, 3 and 5 length bytes) are what cbor2 encodes."""
    from ssbsync.bundle.writer import message_record as fast

    for size in (0, 23, 24, 255, 256, 65535, 65536, 200_000):
        data = b"x" * size
        assert fast(data) == cbor2.dumps([1, data])


def test_header_helpers() -> None:
    header = make_header(MESSAGES)
    assert header.message_count == 40
    clock = dict(header.clock)
    assert header.covered_by(clock)
    first = header.feeds[0]
    assert not header.covered_by({**clock, first.feed: first.last - 1})
    assert not header.covered_by({})
    assert network_fingerprint(NETWORK_KEY) == header.network and len(header.network) == 8
    with pytest.raises(ValueError, match="bad range"):
        FeedRange(first.feed, 3, 2)


def test_read_header_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "b.bundle"
    path.write_bytes(write_bundle(MESSAGES))
    assert read_header(path, NETWORK_KEY) == make_header(MESSAGES)
    with pytest.raises(BundleError, match="another network"):
        read_header(path, OTHER_NETWORK_KEY)


# --- the writer refuses to write a bundle that would lie -----------------------------------


def test_writer_refuses_a_header_of_another_writer() -> None:
    with pytest.raises(ValueError, match="not the signing key"):
        BundleWriter(io.BytesIO(), STRANGER, make_header(MESSAGES))


def test_writer_refuses_a_bad_header() -> None:
    header = dataclasses.replace(make_header(MESSAGES), network=b"short")
    with pytest.raises(BundleError, match="'network' must be 8 bytes"):
        BundleWriter(io.BytesIO(), WRITER, header)


def test_writer_refuses_more_or_fewer_messages_than_declared() -> None:
    writer = BundleWriter(io.BytesIO(), WRITER, make_header(MESSAGES[:2]))
    writer.add_message(MESSAGES[0][2])
    with pytest.raises(ValueError, match="declares 2 messages, 1 were written"):
        writer.finish()
    writer.add_message(MESSAGES[1][2].encode())
    with pytest.raises(ValueError, match="declares 2 messages, no more"):
        writer.add_message(MESSAGES[2][2])
    writer.finish()
    with pytest.raises(ValueError, match="finished"):
        writer.finish()


def test_writer_refuses_blobs_out_of_order_or_of_the_wrong_size() -> None:
    (a, data_a), (b, data_b) = blob(10), blob(20, seed=3)
    writer = BundleWriter(
        io.BytesIO(), WRITER, make_header(MESSAGES[:1], ((a, data_a), (b, data_b)))
    )
    with pytest.raises(ValueError, match="blobs go after all 1 messages"):
        writer.add_blob(a, 10, [data_a])
    writer.add_message(MESSAGES[0][2])
    with pytest.raises(ValueError, match="not the next the header lists"):
        writer.add_blob(b, 20, [data_b])
    writer.add_blob(a, 10, [data_a])
    with pytest.raises(ValueError, match="messages must come before blobs"):
        writer.add_message(MESSAGES[0][2])
    with pytest.raises(ValueError, match="gave 19 bytes, the header says 20"):
        writer.add_blob(b, 20, [data_b[:19]])


def test_writer_refuses_an_oversize_message() -> None:
    header = make_header(MESSAGES[:1])
    writer = BundleWriter(io.BytesIO(), WRITER, header)
    with pytest.raises(ValueError, match="larger than a bundle record"):
        writer.add_message(b"x" * 300_000)


# --- the header: every field checked, the signature, the network, the version -------------

GOOD = header_to_map(make_header(MESSAGES, BLOBS))
FEED = str(MESSAGES[0][0])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("format", "ssb-bundle", "'format' is 'ssb-bundle'"),
        ("version", "1", "'version' must be an integer"),
        ("version", 0, "bundle format 0 is not supported"),
        ("version", 2, "bundle format 2 is newer than this ssbsync \\(1\\)"),
        ("network", "abcdefgh", "'network' must be 8 bytes"),
        ("writer", "@nope", "'writer' is not a feed id"),
        ("created", -1, "'created' must be an integer >= 0"),
        ("created", True, "'created' must be an integer"),
        ("clock", [], "'clock' must be a map"),
        ("clock", {"x": 1}, "'clock' key is not a feed id"),
        ("clock", {FEED: 0}, "'clock' sequence of .* must be an integer >= 1"),
        ("feeds", {}, "'feeds' must be a list"),
        ("feeds", [[FEED, 1]], "'feeds' item 0 must be"),
        ("feeds", [[FEED, 0, 3]], "'feeds' item 0 first must be an integer >= 1"),
        ("feeds", [[FEED, 5, 3]], "'feeds' item 0 last must be an integer >= 5"),
        ("feeds", [[FEED, 1, 3], [FEED, 4, 5]], "'feeds' item 1 lists .* a second time"),
        ("blobs", [["&x", 1]], "'blobs' item 0 must be \\[blob id, size\\]"),
        ("blobs", [[BLOBS[0][0], -1]], "'blobs' item 0 size must be an integer >= 0"),
    ],
)
def test_every_header_field_is_checked(field: str, value: Any, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        header_from_map({**GOOD, field: value})


def test_header_fields_missing_or_unknown() -> None:
    with pytest.raises(BundleError, match="the header has no 'clock'"):
        header_from_map({k: v for k, v in GOOD.items() if k != "clock"})
    with pytest.raises(BundleError, match="unknown field 'extra'"):
        header_from_map({**GOOD, "extra": 1})
    with pytest.raises(BundleError, match="must be a CBOR map"):
        header_from_map([GOOD])


def test_header_limits_are_refused() -> None:
    from ssbsync.bundle import format as fmt

    too_many = fmt.MAX_FEEDS + 1
    with pytest.raises(BundleError, match=f"{too_many} ranges, more than"):
        header_from_map({**GOOD, "feeds": [None] * too_many})


def test_a_header_signed_by_another_key_is_refused() -> None:
    header = make_header(MESSAGES[:1])
    data = raw_bundle([header_record(header, signer=STRANGER)])
    with pytest.raises(BundleError, match="the header signature does not verify"):
        read_all(data)


def test_a_header_altered_after_signing_is_refused() -> None:
    header = make_header(MESSAGES[:1])
    data = raw_bundle([header_record(header, created=1)])
    with pytest.raises(BundleError, match="the header signature does not verify"):
        read_all(data)


def test_a_bundle_of_another_network_is_refused() -> None:
    data = write_bundle(MESSAGES[:3], network_key=OTHER_NETWORK_KEY)
    with pytest.raises(BundleError, match="bundle of another network"):
        read_all(data, NETWORK_KEY)
    reader, records = read_all(data, None)  # without a key: no check, the caller decides
    assert reader.damage is None and len(records) == 3


def test_a_newer_format_is_refused() -> None:
    data = write_bundle(MESSAGES[:1])
    with pytest.raises(BundleError, match="bundle format 7 is newer than this ssbsync \\(1\\)"):
        read_all(b"SSBSYNC\x07" + data[8:])
    assert FORMAT_VERSION == 1


@pytest.mark.parametrize(
    "data", [b"", b"SSBSYN", b"hello world, not a bundle", b"\x28\xb5\x2f\xfd"]
)
def test_not_a_bundle(data: bytes) -> None:
    with pytest.raises(BundleError, match="not an ssbsync bundle"):
        read_all(data)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "nothing follows"),
        (cbor2.dumps([1, b"{}"]), "first record is not \\[0, header, signature\\]"),
        (b"\x9f\x00\xff", "unusable header: the header is not valid CBOR: indefinite"),
        (b"\x83\x00\xa1", "unusable header: truncated"),
    ],
)
def test_unusable_header(content: bytes, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        read_all(raw_bundle([content]))


def test_garbage_instead_of_compressed_data() -> None:
    with pytest.raises(BundleError, match="unusable header: corrupt compressed data"):
        read_all(MAGIC + b"this is not zstd at all" * 3)


# --- the trailer and the records after the header: problems are damage, never exceptions ----

HEADER3 = make_header(MESSAGES[:3])
BODY3 = [message_record(j.encode()) for _, _, j in MESSAGES[:3]]


def test_hand_made_bundle_reads_complete() -> None:
    reader, records = read_all(sealed(HEADER3, BODY3, 3))
    assert reader.damage is None and reader.trailer is not None
    assert records == [MessageRecord(j.encode()) for _, _, j in MESSAGES[:3]]


@pytest.mark.parametrize(
    ("body", "trailer", "damage"),
    [
        (BODY3, {"signer": STRANGER}, "trailer signature does not verify"),
        (BODY3, {"digest": bytes(32)}, "trailer digest does not match the content"),
        (BODY3[:2], {}, "trailer counts 3 messages, the bundle has 2"),
        (BODY3, {"blobs": 1}, "trailer counts 1 blobs of 0 bytes, the bundle has 0 of 0"),
        ([*BODY3, cbor2.dumps([9, 1])], {}, "record 4 has unknown type 9"),
        ([*BODY3, b"\xc1\x01"], {}, "record 4 is not valid CBOR: a CBOR tag"),
        ([*BODY3, b"\xf9\x00\x00"], {}, "record 4 is not valid CBOR: a float"),
        ([*BODY3, b"\x82\x01a\xff"], {}, "record 4 is not valid CBOR"),  # bad UTF-8
        ([*BODY3, cbor2.dumps("text")], {}, "record 4 is not an array"),
        ([*BODY3, cbor2.dumps([1, "json as text"])], {}, "record 4 \\(a message\\) must be"),
        ([*BODY3, message_record(b"{}")], {}, "record 4 is a message beyond the 3"),
        ([*BODY3, cbor2.dumps([1, b"x" * 270000])], {}, "record 4 is 270007 bytes, more than"),
        ([*BODY3, cbor2.dumps([2, "x" * 270000])], {}, "record 4 is larger than 262144 bytes"),
    ],
)
def test_record_and_trailer_damage(body: list[bytes], trailer: dict[str, Any], damage: str) -> None:
    reader, records = read_all(sealed(HEADER3, body, 3, **trailer))
    assert reader.trailer is None
    assert reader.damage is not None
    assert pytest.approx(0) == 0
    import re

    assert re.search(damage, reader.damage), reader.damage
    assert records == [MessageRecord(j.encode()) for _, _, j in MESSAGES[: len(records)]]


def test_header_count_must_match_the_bundle() -> None:
    reader, _ = read_all(sealed(HEADER3, BODY3[:2], 2))
    assert reader.damage == "the header declares 3 messages, the bundle has 2"


def test_data_after_the_trailer_is_damage() -> None:
    content = header_record(HEADER3) + b"".join(BODY3)
    trailer = trailer_record(content, 3)
    reader, _ = read_all(raw_bundle([content, trailer, message_record(b"{}")]))
    assert reader.damage == "data after the trailer"
    good = raw_bundle([content, trailer])
    for extra in (raw_bundle([b""])[8:], raw_bundle([b"\x00"])[8:], b"junk"):
        reader, records = read_all(good + extra)
        assert reader.damage == "data after the end of the compressed frame"
        assert len(records) == 3 and reader.trailer is None


BLOB_A, BLOB_B = blob(70_000), blob(10, seed=5)
BLOB_HEADER = make_header(MESSAGES[:1], (BLOB_A, BLOB_B))
ONE_MESSAGE = [message_record(MESSAGES[0][2].encode())]


def _chunk(blob_id: str, offset: int, size: int, data: bytes) -> bytes:
    return cbor2.dumps([2, blob_id, offset, size, data])


def test_blob_records_read_complete() -> None:
    (a, da), (b, db) = BLOB_A, BLOB_B
    body = [
        *ONE_MESSAGE,
        _chunk(a, 0, 70000, da[:65536]),
        _chunk(a, 65536, 70000, da[65536:]),
        _chunk(b, 0, 10, db),
    ]
    reader, records = read_all(sealed(BLOB_HEADER, body, 1, blobs=2, blob_bytes=70_010))
    assert reader.damage is None and len(records) == 4


@pytest.mark.parametrize(
    ("chunks", "damage"),
    [
        ([(BLOB_A[0], 5, 70_000, b"x")], f"blob {BLOB_A[0]} chunk at offset 5 expected at 0"),
        ([(BLOB_B[0], 0, 10, BLOB_B[1])], f"record 2: blob {BLOB_B[0]} \\(10 bytes\\) where the"),
        ([(BLOB_A[0], 0, 69_999, b"x")], "\\(69999 bytes\\) where the header lists"),
        ([(BLOB_A[0], 0, 70_000, b"x" * 65537)], "a blob chunk is bytes of at most 65536"),
        ([(BLOB_A[0], 0, 70_000, b"")], "chunk overruns or is empty"),
        ([(BLOB_A[0], 0, 70_000, BLOB_A[1][:100])], "the header lists 2 blobs, the bundle has 0"),
        ([(BLOB_A[0], -1, 70_000, b"x")], "offset and size must be integers >= 0"),
        ([("&nope", 0, 70_000, b"x")], "not a blob id"),
    ],
)
def test_blob_damage(chunks: list[tuple[str, int, int, bytes]], damage: str) -> None:
    body = ONE_MESSAGE + [_chunk(*c) for c in chunks]
    reader, _ = read_all(sealed(BLOB_HEADER, body, 1, blobs=2, blob_bytes=70_010))
    import re

    assert reader.damage is not None and re.search(damage, reader.damage), reader.damage


def test_a_message_after_blobs_is_damage() -> None:
    (a, da), _ = BLOB_A, BLOB_B
    body = [*ONE_MESSAGE, _chunk(a, 0, 70000, da[:100]), message_record(b"{}")]
    reader, _ = read_all(sealed(BLOB_HEADER, body, 1))
    assert reader.damage == "record 3 is a message after the blobs began"


def test_a_blob_the_header_does_not_list_is_damage() -> None:
    b, db = blob(3, seed=9)
    reader, _ = read_all(sealed(HEADER3, [*BODY3, _chunk(b, 0, 3, db)], 3))
    assert reader.damage == f"record 4: blob {b} is not in the header"


def test_records_can_be_read_once() -> None:
    reader = BundleReader(io.BytesIO(write_bundle(MESSAGES[:2])))
    assert len(list(reader.records())) == 2
    with pytest.raises(RuntimeError, match="only once"):
        list(reader.records())


def test_vector_clock_in_header_roundtrips() -> None:
    header = dataclasses.replace(make_header(MESSAGES), clock=VectorClock({MESSAGES[0][0]: 99}))
    out = io.BytesIO()
    writer = BundleWriter(out, WRITER, header)
    for _, _, json in MESSAGES:
        writer.add_message(json)
    writer.finish()
    reader, _ = read_all(out.getvalue())
    assert dict(reader.header.clock) == {MESSAGES[0][0]: 99}
