"""Read a bundle as a stream of records, in flat memory, whatever state the file is in.

The header must be whole and signed, or the bundle is refused (BundleError). After it, the
reader never raises: a bundle cut short by a pulled stick, or with flipped bits, yields the
records before the damage and then stops with `damage` saying what and where. Records yielded
before the damage was found may themselves be corrupt; the node checks every message's
signature and every blob's hash anyway, so a good prefix is still worth importing.

Records are numbered from 1 after the header (record 0); `records_read` counts those yielded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import cbor2
import zstandard

from ssbsync.bundle.cborscan import CborShapeError, Incomplete, item_end
from ssbsync.bundle.format import (
    HEADER_DOMAIN,
    MAGIC_PREFIX,
    MAX_HEADER_BYTES,
    MAX_RECORD_BYTES,
    RECORD_BLOB,
    RECORD_HEADER,
    RECORD_MESSAGE,
    RECORD_TRAILER,
    TRAILER_DOMAIN,
    BundleError,
    Header,
    Trailer,
    check_version,
    header_from_map,
    header_to_map,
    network_fingerprint,
    trailer_from_map,
    trailer_to_map,
    verify_map,
)
from ssbsync.bundle.records import (
    BlobChunk,
    Damage,
    MessageRecord,
    blob_chunk,
    message_json,
    record_kind,
)
from ssbsync.bundle.zstdframe import FrameReader

__all__ = ["BlobChunk", "BundleReader", "MessageRecord", "read_header"]

_READ_SIZE = 64 * 1024


class BundleReader:
    """Checks the magic and the signed header at once; `records()` streams the rest."""

    def __init__(self, source: BinaryIO, network_key: bytes | None = None) -> None:
        self.damage: str | None = None
        self.trailer: Trailer | None = None
        self.records_read = 0
        self._messages = 0
        self._blob_index = 0  # the blob being read is header.blobs[_blob_index]
        self._blob_offset = 0  # and its next chunk must start here
        self._started = False
        _check_magic(_read_exactly(source, len(MAGIC_PREFIX) + 1))
        self._frame = FrameReader(source, _READ_SIZE)
        self._buf = b""
        self._pos = 0  # records before `_pos` are consumed; `_buf[:_pos]` is not yet hashed
        self._item_start = 0
        self._sha256 = hashlib.sha256()
        try:
            value = self._next_item(MAX_HEADER_BYTES, "the header")
        except Damage as err:
            raise BundleError(f"unusable header: {err}") from None
        if value is None:
            raise BundleError("not an ssbsync bundle: nothing follows the first 8 bytes")
        self.header = _header(value)
        if network_key is not None and self.header.network != network_fingerprint(network_key):
            raise BundleError(
                f"bundle of another network (fingerprint {self.header.network.hex()}, "
                f"this network's is {network_fingerprint(network_key).hex()})"
            )

    @property
    def compressed_bytes_read(self) -> int:
        """File bytes consumed so far, to show progress against the file size."""
        return len(MAGIC_PREFIX) + 1 + self._frame.compressed

    def records(self) -> Iterator[MessageRecord | BlobChunk]:
        """Messages, then blob chunks; stops quietly at damage (see the module docstring)."""
        if self._started:
            raise RuntimeError("records() can be iterated only once")
        self._started = True
        try:
            while True:
                yield from self._plain_messages()
                number = self.records_read + 1
                record = self._next_item(MAX_RECORD_BYTES, f"record {number}")
                if record is None:
                    raise Damage(f"truncated after {self.records_read} records (no trailer)")
                kind = record_kind(record, number)
                if kind == RECORD_MESSAGE:
                    yield self._message(message_json(record, number))
                elif kind == RECORD_BLOB:
                    yield self._blob(blob_chunk(record, number))
                elif kind == RECORD_TRAILER:
                    self._trailer(record, number)
                    return
                elif kind == RECORD_HEADER:
                    raise Damage(f"record {number} is a second header")
                else:
                    raise Damage(f"record {number} has unknown type {kind}")
        except Damage as err:
            self.damage = str(err)

    def _plain_messages(self) -> Iterator[MessageRecord]:
        """Message records encoded the usual way, parsed by hand: they are most of a bundle.

        Returns at the first record that is anything else, for `records()` to decode in full.
        """
        while True:
            if len(self._buf) - self._pos < 7:
                self._fill(7)  # a short read just means the end is near
            buf, pos = self._buf, self._pos
            have = len(buf) - pos
            if have < 3 or buf[pos] != 0x82 or buf[pos + 1] != RECORD_MESSAGE:
                return
            head = buf[pos + 2]
            if 0x40 <= head < 0x58:
                start, length = pos + 3, head - 0x40
            elif head == 0x58 and have >= 4:
                start, length = pos + 4, buf[pos + 3]
            elif head == 0x59 and have >= 5:
                start, length = pos + 5, int.from_bytes(buf[pos + 3 : pos + 5], "big")
            elif head == 0x5A and have >= 7:
                start, length = pos + 7, int.from_bytes(buf[pos + 3 : pos + 7], "big")
            else:
                return
            end = start + length
            if end - pos > MAX_RECORD_BYTES:
                number = self.records_read + 1
                raise Damage(f"record {number} is {end - pos} bytes, more than {MAX_RECORD_BYTES}")
            if end > len(buf):
                if not self._fill(end - pos):
                    raise Damage(f"truncated after {self.records_read} records (no trailer)")
                continue  # the buffer moved: parse the head again
            self._pos = end
            yield self._message(buf[start:end])

    def _message(self, json: bytes) -> MessageRecord:
        number = self.records_read + 1
        if self._blob_index or self._blob_offset:
            raise Damage(f"record {number} is a message after the blobs began")
        if self._messages >= self.header.message_count:
            raise Damage(
                f"record {number} is a message beyond the "
                f"{self.header.message_count} the header declares"
            )
        self._messages += 1
        self.records_read = number
        return MessageRecord(json)

    def _blob(self, chunk: BlobChunk) -> BlobChunk:
        """Check that the chunk continues the blobs the header lists, in order, without gaps."""
        number = self.records_read + 1
        listed = self.header.blobs
        if self._blob_index >= len(listed):
            raise Damage(f"record {number}: blob {chunk.blob_id} is not in the header")
        blob_id, size = listed[self._blob_index]
        if chunk.blob_id != blob_id or chunk.size != size:
            raise Damage(
                f"record {number}: blob {chunk.blob_id} ({chunk.size} bytes) where the "
                f"header lists {blob_id} ({size} bytes)"
            )
        if chunk.offset != self._blob_offset:
            raise Damage(
                f"blob {blob_id} chunk at offset {chunk.offset} expected at {self._blob_offset}"
            )
        end = chunk.offset + len(chunk.data)
        if end > size or (not chunk.data and size):
            raise Damage(f"record {number}: blob {blob_id} chunk overruns or is empty")
        self._blob_offset = end
        if end == size:
            self._blob_index, self._blob_offset = self._blob_index + 1, 0
        self.records_read = number
        return chunk

    def _trailer(self, record: list[Any], number: int) -> None:
        """Check the trailer against what was read: sets `trailer` or raises Damage."""
        self._sha256.update(memoryview(self._buf)[: self._item_start])
        content_digest = self._sha256.digest()
        if len(record) != 3:
            raise Damage(f"record {number} (the trailer) must be [3, map, signature]")
        try:
            trailer = trailer_from_map(record[1])
        except BundleError as err:
            raise Damage(f"record {number} (the trailer) is unusable: {err}") from None
        header = self.header
        if not verify_map(header.writer, TRAILER_DOMAIN, trailer_to_map(trailer), record[2]):
            raise Damage("trailer signature does not verify")
        if trailer.digest != content_digest:
            raise Damage("trailer digest does not match the content")
        if trailer.messages != self._messages:
            raise Damage(
                f"trailer counts {trailer.messages} messages, the bundle has {self._messages}"
            )
        if self._messages != header.message_count:
            raise Damage(
                f"the header declares {header.message_count} messages, "
                f"the bundle has {self._messages}"
            )
        if self._blob_offset or self._blob_index != len(header.blobs):
            raise Damage(
                f"the header lists {len(header.blobs)} blobs, "
                f"the bundle has {self._blob_index} complete"
            )
        if trailer.blobs != self._blob_index or trailer.blob_bytes != header.blob_bytes:
            raise Damage(
                f"trailer counts {trailer.blobs} blobs of {trailer.blob_bytes} bytes, the "
                f"bundle has {self._blob_index} of {header.blob_bytes}"
            )
        if self._fill(1):
            raise Damage("data after the trailer")
        if not self._frame.complete:
            raise Damage("truncated: the compressed data stops before the end of its frame")
        if self._frame.extra:
            raise Damage("data after the end of the compressed frame")
        self.trailer = trailer

    def _next_item(self, limit: int, what: str) -> Any:
        """Decode the next whole CBOR item (None at a clean end), reading more as needed."""
        while True:
            buf, pos = self._buf, self._pos
            if pos >= len(buf) and not self._fill(1):
                return None
            buf, pos = self._buf, self._pos
            try:
                end = item_end(buf, pos)
            except Incomplete as more:
                if more.min_end - pos > limit:
                    raise Damage(f"{what} is larger than {limit} bytes") from None
                have = len(buf) - pos
                # Ask for at least double (the scan restarts each time: keep it linear).
                self._fill(min(max(more.min_end - pos, 2 * have, _READ_SIZE), limit + 1))
                if len(self._buf) - self._pos == have:
                    raise Damage(
                        f"truncated after {self.records_read} records (no trailer)"
                    ) from None
                continue
            except CborShapeError as err:
                raise Damage(f"{what} is not valid CBOR: {err}") from None
            if end - pos > limit:
                raise Damage(f"{what} is {end - pos} bytes, more than {limit}")
            try:
                value = cbor2.loads(memoryview(buf)[pos:end], allow_duplicate_keys=False)
            except Exception as err:  # untrusted bytes: any decoder complaint is damage
                raise Damage(f"{what} is not valid CBOR: {err}") from None
            self._item_start, self._pos = pos, end
            return value

    def _fill(self, need: int) -> bool:
        """Make `need` unread bytes available; False when the data ends first.

        Consumed bytes are hashed and dropped here, so memory holds about one read.
        """
        buf, pos = self._buf, self._pos
        have = len(buf) - pos
        if have >= need:
            return True
        pieces = [buf[pos:]] if have else []
        try:
            while have < need:
                piece = self._frame.read()
                if not piece:
                    break
                pieces.append(piece)
                have += len(piece)
        except zstandard.ZstdError as err:
            raise Damage(
                f"corrupt compressed data after {self.records_read} records: {err}"
            ) from None
        except OSError as err:  # a stick pulled mid-read: what came before is still good
            raise Damage(f"the file failed after {self.records_read} records: {err}") from None
        finally:
            if pos:
                self._sha256.update(memoryview(buf)[:pos])
            self._buf = b"".join(pieces)
            self._pos = 0
        return have >= need


def read_header(path: Path, network_key: bytes | None = None) -> Header:
    """The checked header of the bundle at `path`, reading no further than it."""
    with path.open("rb") as source:
        return BundleReader(source, network_key).header


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    """`size` bytes, fewer only at the end of the data (pipes return short reads)."""
    data = b""
    while len(data) < size:
        piece = source.read(size - len(data))
        if not piece:
            break
        data += piece
    return data


def _check_magic(first: bytes) -> None:
    if len(first) < len(MAGIC_PREFIX) + 1 or not first.startswith(MAGIC_PREFIX):
        raise BundleError("not an ssbsync bundle (it does not start with 'SSBSYNC')")
    check_version(first[-1])


def _header(value: Any) -> Header:
    if type(value) is not list or len(value) != 3 or value[0] != RECORD_HEADER:
        raise BundleError("unusable header: the first record is not [0, header, signature]")
    header = header_from_map(value[1])
    if not verify_map(header.writer, HEADER_DOMAIN, header_to_map(header), value[2]):
        raise BundleError("the header signature does not verify")
    return header
