"""Small bundles for the bundle tests: real messages, a blob, and hand-made records."""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterable
from typing import Any

import cbor2
import zstandard

from ssbsync.bundle import (
    MAGIC,
    BlobChunk,
    BundleReader,
    BundleWriter,
    FeedRange,
    Header,
    MessageRecord,
    network_fingerprint,
)
from ssbsync.bundle.format import HEADER_DOMAIN, TRAILER_DOMAIN, header_to_map, sign_map
from ssbsync.core.clock import VectorClock
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId, blob_id
from ssbsync.core.synthetic import author_keys, generate

NETWORK_KEY = hashlib.sha256(b"test network").digest()
OTHER_NETWORK_KEY = hashlib.sha256(b"another network").digest()
WRITER, STRANGER = author_keys(2, seed=77)


@functools.cache
def feed_messages(authors: int, count: int) -> tuple[tuple[FeedId, int, str], ...]:
    """(author, sequence, json) of synthetic messages, grouped feed by feed."""
    by_feed: dict[FeedId, list[tuple[FeedId, int, str]]] = {}
    for msg in generate(authors, count):
        by_feed.setdefault(msg.author, []).append((msg.author, msg.sequence, msg.json))
    return tuple(item for items in by_feed.values() for item in items)


def ranges_of(messages: Iterable[tuple[FeedId, int, str]]) -> tuple[FeedRange, ...]:
    bounds: dict[FeedId, tuple[int, int]] = {}
    for author, seq, _ in messages:
        first, _last = bounds.get(author, (seq, seq))
        bounds[author] = (first, seq)
    return tuple(FeedRange(f, a, b) for f, (a, b) in bounds.items())


def blob(size: int, seed: int = 0) -> tuple[str, bytes]:
    data = bytes((i * 7 + seed) % 251 for i in range(size))
    return blob_id(hashlib.sha256(data).digest()), data


def make_header(
    messages: Iterable[tuple[FeedId, int, str]] = (),
    blobs: Iterable[tuple[str, bytes]] = (),
    *,
    writer: Keypair = WRITER,
    network_key: bytes = NETWORK_KEY,
    feeds: tuple[FeedRange, ...] | None = None,
) -> Header:
    ranges = ranges_of(messages) if feeds is None else feeds
    return Header(
        network=network_fingerprint(network_key),
        writer=writer.id,
        created_ms=1_700_000_000_000,
        clock=VectorClock({r.feed: r.last for r in ranges}),
        feeds=ranges,
        blobs=tuple((b, len(d)) for b, d in blobs),
    )


def write_bundle(
    messages: tuple[tuple[FeedId, int, str], ...] = (),
    blobs: tuple[tuple[str, bytes], ...] = (),
    *,
    writer: Keypair = WRITER,
    network_key: bytes = NETWORK_KEY,
) -> bytes:
    out = io.BytesIO()
    w = BundleWriter(
        out, writer, make_header(messages, blobs, writer=writer, network_key=network_key)
    )
    for _, _, json in messages:
        w.add_message(json)
    for blob_ref, data in blobs:
        w.add_blob(blob_ref, len(data), [data[i : i + 10_000] for i in range(0, len(data), 10_000)])
    w.finish()
    return out.getvalue()


def read_all(
    data: bytes, network_key: bytes | None = NETWORK_KEY
) -> tuple[BundleReader, list[MessageRecord | BlobChunk]]:
    reader = BundleReader(io.BytesIO(data), network_key)
    return reader, list(reader.records())


def expected_records(
    messages: tuple[tuple[FeedId, int, str], ...], blobs: tuple[tuple[str, bytes], ...]
) -> list[MessageRecord | BlobChunk]:
    records: list[MessageRecord | BlobChunk] = [MessageRecord(j.encode()) for _, _, j in messages]
    for blob_ref, data in blobs:
        for offset in range(0, max(len(data), 1), 64 * 1024):
            records.append(BlobChunk(blob_ref, offset, len(data), data[offset : offset + 65536]))
    return records


# --- hand-made bundles, for forgeries and damage the writer would never produce ----------


def header_record(header: Header, signer: Keypair = WRITER, **changes: Any) -> bytes:
    """`[0, map, signature]`: signed by `signer`, then (to forge) fields changed after signing."""
    value = header_to_map(header)
    signature = sign_map(signer, HEADER_DOMAIN, value)
    value.update(changes)
    return cbor2.dumps([0, value, signature], canonical=True)


def trailer_record(
    content: bytes,
    messages: int,
    *,
    signer: Keypair = WRITER,
    blobs: int = 0,
    blob_bytes: int = 0,
    digest: bytes | None = None,
) -> bytes:
    value = {
        "messages": messages,
        "blobs": blobs,
        "blobBytes": blob_bytes,
        "sha256": hashlib.sha256(content).digest() if digest is None else digest,
    }
    return cbor2.dumps([3, value, sign_map(signer, TRAILER_DOMAIN, value)], canonical=True)


def message_record(json: bytes) -> bytes:
    return cbor2.dumps([1, json])


def raw_bundle(records: Iterable[bytes], *, magic: bytes = MAGIC) -> bytes:
    """MAGIC and one zstd frame of the given record bytes, exactly as given."""
    return magic + zstandard.ZstdCompressor(write_checksum=True).compress(b"".join(records))


def sealed(header: Header, body: list[bytes], messages: int, **trailer: Any) -> bytes:
    """A bundle of a header, `body` records and a correct (or `trailer`-altered) trailer."""
    head = header_record(header)
    content = head + b"".join(body)
    return raw_bundle([content, trailer_record(content, messages, **trailer)])


def stored_frame(content: bytes, block: int = 1000) -> bytes:
    """A zstd frame of raw (stored) blocks and no checksum: every content byte at a known place.

    RFC 8878 §3.1.1: magic, descriptor 0x00 (no checksum, no size, not single-segment), window
    descriptor 0x38 (128 KiB), then blocks whose 3-byte header is last | type 0 << 1 | size << 3.
    """
    out = bytearray(b"\x28\xb5\x2f\xfd\x00\x38")
    pieces = [content[i : i + block] for i in range(0, len(content), block)] or [b""]
    for index, piece in enumerate(pieces):
        last = 1 if index == len(pieces) - 1 else 0
        out += (last | len(piece) << 3).to_bytes(3, "little") + piece
    return bytes(out)
