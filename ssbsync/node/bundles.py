"""Bundles in and out of the store: what a destination lacks, written; a bundle, imported.

Export compares our clock with the destination's (`core.carry`) and writes those ranges
straight from the store, then the blobs they link to. Import never trusts the medium: every
message goes through the one ingest path (signatures, chains) and every blob is hashed by the
blob store while it is written; a damaged bundle gives everything before the damage (feeds are
prefix-valid) and says where it stopped. See docs/bundle-format.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ssbsync.bundle import (
    BlobChunk,
    BundleReader,
    BundleWriter,
    FeedRange,
    Header,
    MessageRecord,
    network_fingerprint,
)
from ssbsync.core import carry, jsonv8
from ssbsync.core.carry import CarryRange
from ssbsync.core.clock import VectorClock
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import BlobId, FeedId
from ssbsync.node.api import NodeAPI
from ssbsync.node.blobs import BlobError, BlobStore, BlobWriter
from ssbsync.node.ingest import IngestReport


@dataclass(frozen=True)
class Progress:
    """How far a long operation is: `done` of `total` (None: unknown) `unit`s."""

    phase: str  # "export", "import", "verify"
    done: int
    total: int | None
    unit: str  # "messages" or "bytes"

    def to_json(self) -> dict[str, JSONValue]:
        return {"phase": self.phase, "done": self.done, "total": self.total, "unit": self.unit}


OnProgress = Callable[[Progress], None]
PROGRESS_EVERY = 2000  # messages between two progress reports


@dataclass
class ExportSummary:
    messages: int = 0
    feeds: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    bytes_written: int = 0
    left_out: list[CarryRange] = field(default_factory=list)  # did not fit the budget

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "messages": self.messages,
            "feeds": self.feeds,
            "blobs": self.blobs,
            "blobBytes": self.blob_bytes,
            "bytes": self.bytes_written,
            "leftOut": sum(len(r) for r in self.left_out),
        }


@dataclass
class ImportSummary:
    writer: FeedId
    report: IngestReport
    blobs_stored: int = 0
    blobs_known: int = 0
    blob_problems: list[str] = field(default_factory=list)
    damage: str | None = None

    @property
    def ok(self) -> bool:
        return self.damage is None and not self.blob_problems and not self.report.rejected_total

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "writer": self.writer,
            "messages": self.report.to_json(examples=True),
            "blobsStored": self.blobs_stored,
            "blobsKnown": self.blobs_known,
            "blobProblems": list(self.blob_problems),
            "damage": self.damage,
        }


# -- export ---------------------------------------------------------------------------------


def plan(
    api: NodeAPI,
    destination: Mapping[FeedId, int] | None,
    feeds: Collection[FeedId] | None,
    budget: int | None,
) -> tuple[list[CarryRange], list[CarryRange]]:
    """(ranges to write, ranges left out by the byte budget) for a destination's clock."""
    store = api.store
    ranges = carry.missing_ranges(store.vector_clock(), destination or {}, feeds)
    if budget is None:
        return ranges, []

    def size_of(r: CarryRange) -> int:
        return sum(size for _, size in store.range_sizes(r.feed, r.first, r.last))

    def prefix_within(r: CarryRange, room: int) -> int:
        last = r.first - 1
        for sequence, size in store.range_sizes(r.feed, r.first, r.last):
            room -= size
            if room < 0:
                break
            last = sequence
        return last

    # Our own feed first: it is the one nobody else can carry for us.
    ranges.sort(key=lambda r: r.feed != api.keys.id)
    return carry.fit_budget(ranges, size_of, prefix_within, budget)


def export_bundle(
    api: NodeAPI,
    target: BinaryIO,
    *,
    network_key: bytes,
    destination: Mapping[FeedId, int] | None = None,
    feeds: Collection[FeedId] | None = None,
    blobs: BlobStore | None = None,
    budget: int | None = None,
    now_ms: int,
    progress: OnProgress | None = None,
) -> ExportSummary:
    """Write what `destination` (a clock; None: an empty one) lacks of `feeds` (None: all) to
    `target`; with `blobs`, the blobs those messages link to that we hold as well. `budget`
    bounds the stored bytes carried (messages and blobs); what does not fit is `left_out`."""
    ranges, left_out = plan(api, destination, feeds, budget)
    room = None if budget is None else budget - stored_bytes(api, ranges)
    chosen = _linked_blobs(api, ranges, blobs, room) if blobs is not None else []
    header = Header(
        network=network_fingerprint(network_key),
        writer=api.keys.id,
        created_ms=now_ms,
        clock=api.store.vector_clock(),
        feeds=tuple(FeedRange(r.feed, r.first, r.last) for r in ranges),
        blobs=tuple(chosen),
    )
    writer = BundleWriter(target, api.keys, header)
    total = header.message_count
    for r in ranges:
        for value in api.store.range_values(r.feed, r.first, r.last):
            writer.add_message(value)
            if progress and writer.messages_written % PROGRESS_EVERY == 0:
                progress(Progress("export", writer.messages_written, total, "messages"))
    for blob, size in chosen:
        assert blobs is not None
        writer.add_blob(blob, size, blobs.read(BlobId(blob)))
    trailer = writer.finish()
    if progress:
        progress(Progress("export", writer.messages_written, total, "messages"))
    return ExportSummary(
        trailer.messages, len(ranges), trailer.blobs, trailer.blob_bytes,
        writer.compressed_bytes, left_out,
    )  # fmt: skip


def stored_bytes(api: NodeAPI, ranges: list[CarryRange]) -> int:
    """Bytes of the stored JSON of `ranges` (what a budget counts)."""
    return sum(size for r in ranges for _, size in api.store.range_sizes(r.feed, r.first, r.last))


def _linked_blobs(
    api: NodeAPI, ranges: list[CarryRange], blobs: BlobStore, room: int | None
) -> list[tuple[str, int]]:
    """Blobs linked from `ranges` that we hold, in id order, as many as fit in `room`."""
    linked: set[str] = set()
    for r in ranges:
        linked |= api.store.range_blobs(r.feed, r.first, r.last)
    chosen = []
    for blob in sorted(linked):
        size = blobs.size(BlobId(blob))
        if size is not None and (room is None or size <= room):
            chosen.append((blob, size))
            room = None if room is None else room - size
    return chosen


def export_to_file(path: Path, write: Callable[[BinaryIO], ExportSummary]) -> ExportSummary:
    """Run `write` into `path` so that the file is whole or absent: a temp name, fsync, rename."""
    temp = path.with_name(path.name + ".partial")
    try:
        with open(temp, "wb") as out:
            summary = write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return summary


# -- import ---------------------------------------------------------------------------------


def import_bundle(
    api: NodeAPI,
    source: BinaryIO,
    *,
    network_key: bytes,
    blobs: BlobStore | None = None,
    progress: OnProgress | None = None,
) -> ImportSummary:
    """Import a bundle through the one ingest path; `BundleError` when it has no usable header.

    Everything before any damage is imported; the summary names the damage and every
    rejected message or blob with its reason.
    """
    reader = BundleReader(source, network_key)
    summary = ImportSummary(reader.header.writer, IngestReport())
    total = reader.header.message_count

    def reported(done: int) -> None:
        if progress:
            progress(Progress("import", done, total, "messages"))

    messages = _messages_storing_blobs(reader, blobs, summary)
    summary.report = api.import_messages(messages, reported, parallel=True)
    summary.damage = reader.damage
    return summary


def _messages_storing_blobs(
    reader: BundleReader, blobs: BlobStore | None, summary: ImportSummary
) -> Iterator[bytes]:
    """The bundle's message records for the ingest path; blob chunks go to the blob store."""
    incoming = _IncomingBlobs(blobs, summary)
    try:
        for record in reader.records():
            if isinstance(record, MessageRecord):
                yield record.json
            else:
                incoming.add(record)
    finally:
        incoming.abort()


class _IncomingBlobs:
    """Writes blob chunks to the blob store, which checks each blob's hash when it ends."""

    def __init__(self, blobs: BlobStore | None, summary: ImportSummary) -> None:
        self._blobs = blobs
        self._summary = summary
        self._writer: BlobWriter | None = None
        self._skipping: str | None = None  # a blob we already hold or cannot take

    def add(self, chunk: BlobChunk) -> None:
        if self._blobs is None or chunk.blob_id == self._skipping:
            return
        if chunk.offset == 0:
            self.abort()
            if self._blobs.has(BlobId(chunk.blob_id)):
                self._summary.blobs_known += 1
                self._skipping = chunk.blob_id
                return
            self._writer = self._blobs.writer(BlobId(chunk.blob_id))
        if self._writer is None:
            return
        try:
            self._writer.write(chunk.data)
            if chunk.offset + len(chunk.data) >= chunk.size:
                self._writer.finish()
                self._writer = None
                self._summary.blobs_stored += 1
        except BlobError as err:
            self._summary.blob_problems.append(f"{chunk.blob_id}: {err}")
            self.abort()
            self._skipping = chunk.blob_id

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


# -- clock files ----------------------------------------------------------------------------

CLOCK_FORMAT = "ssbsync-clock"


def clock_file(
    me: FeedId, network_key: bytes, clock: Mapping[FeedId, int], now_ms: int
) -> dict[str, JSONValue]:
    """What `ssbsync clock export` writes: a clock, whose it is, of which network, when."""
    return {
        "format": CLOCK_FORMAT,
        "id": me,
        "network": network_fingerprint(network_key).hex(),
        "created": now_ms,
        "clock": dict(clock),
    }


def read_clock_file(path: Path) -> VectorClock:
    """A destination's clock: `ssbsync clock export`'s file, or a plain `{feed: seq}` object
    (what `getVectorClock` prints, ssb-server's included). ValueError names what is wrong."""
    try:
        value = jsonv8.parse(path.read_text(encoding="utf-8"))
        if isinstance(value, dict) and value.get("format") == CLOCK_FORMAT:
            value = value.get("clock")
        return VectorClock.from_json(value)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a vector clock ({err})") from None
