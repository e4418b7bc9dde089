"""The records after the header, as the reader yields them, and their shape checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssbsync.bundle.format import MAX_CHUNK_BYTES
from ssbsync.core.refs import is_blob_id


class Damage(Exception):
    """Reading stops here; the message becomes `BundleReader.damage`."""


@dataclass(frozen=True, slots=True)
class MessageRecord:
    json: bytes  # the message's exact stored JSON, not yet checked


@dataclass(frozen=True, slots=True)
class BlobChunk:
    blob_id: str
    offset: int
    size: int  # the blob's total size
    data: bytes


def record_kind(record: Any, number: int) -> int:
    if type(record) is not list or not record or type(record[0]) is not int:
        raise Damage(f"record {number} is not an array starting with its type")
    kind: int = record[0]
    return kind


def message_json(record: list[Any], number: int) -> bytes:
    if len(record) != 2 or type(record[1]) is not bytes:
        raise Damage(f"record {number} (a message) must be [1, json bytes]")
    json: bytes = record[1]
    return json


def blob_chunk(record: list[Any], number: int) -> BlobChunk:
    if len(record) != 5:
        raise Damage(f"record {number} (a blob chunk) must be [2, id, offset, size, bytes]")
    _, blob_id, offset, size, data = record
    if not is_blob_id(blob_id):
        raise Damage(f"record {number}: not a blob id: {blob_id!r:.60}")
    if type(offset) is not int or type(size) is not int or offset < 0 or size < 0:
        raise Damage(f"record {number}: blob offset and size must be integers >= 0")
    if type(data) is not bytes or len(data) > MAX_CHUNK_BYTES:
        raise Damage(f"record {number}: a blob chunk is bytes of at most {MAX_CHUNK_BYTES}")
    return BlobChunk(blob_id, offset, size, data)
