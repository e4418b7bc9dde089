"""Write a bundle: MAGIC, then one zstd frame of CBOR records (docs/bundle-format.md).

Export speed is the point here (the target is 100,000 messages/s), so a message record is
encoded by hand — it is always `[1, json_bytes]`, a three-to-seven byte prefix and the JSON —
and records are gathered in a buffer that is hashed and compressed a few hundred KiB at a time
instead of one call per message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import IO, BinaryIO, cast

import zstandard

from ssbsync.bundle.format import (
    HEADER_DOMAIN,
    MAGIC,
    MAX_CHUNK_BYTES,
    MAX_RECORD_BYTES,
    RECORD_BLOB,
    RECORD_HEADER,
    RECORD_TRAILER,
    TRAILER_DOMAIN,
    Header,
    Trailer,
    canonical,
    header_from_map,
    header_to_map,
    sign_map,
    trailer_to_map,
)
from ssbsync.core.keys import Keypair

_FLUSH_AT = 256 * 1024  # buffered record bytes before they go to sha256 and zstd
# `[1, bytes(n)]`: 0x82 (array of 2), 0x01, then the byte-string head (RFC 8949 §3.1).
_MESSAGE_HEAD = b"\x82\x01"
_MAX_JSON = MAX_RECORD_BYTES - 7  # the longest head is 7 bytes


class _Counter:
    """Passes writes through to the target and counts them (the progress of an export)."""

    __slots__ = ("count", "target")

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.count = 0

    def write(self, data: bytes) -> int:
        self.target.write(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        self.target.flush()


def message_record(data: bytes) -> bytes:
    """The CBOR bytes of `[1, data]` (what cbor2 would encode, without its per-call cost)."""
    n = len(data)
    if n < 24:
        return bytes((0x82, 0x01, 0x40 | n)) + data
    if n < 0x100:
        return bytes((0x82, 0x01, 0x58, n)) + data
    if n < 0x10000:
        return _MESSAGE_HEAD + b"\x59" + n.to_bytes(2, "big") + data
    return _MESSAGE_HEAD + b"\x5a" + n.to_bytes(4, "big") + data


class BundleWriter:
    """Streams one bundle to `target`; the caller opens, fsyncs and closes the file."""

    def __init__(self, target: BinaryIO, keys: Keypair, header: Header, *, level: int = 3) -> None:
        if header.writer != keys.id:
            raise ValueError(
                f"the header's writer {header.writer} is not the signing key {keys.id}"
            )
        header_map = header_to_map(header)
        header_from_map(header_map)  # the same checks a reader makes, so we never write junk
        self._header = header
        self._expected_messages = header.message_count
        self._keys = keys
        self._out = _Counter(target)
        self._out.write(MAGIC)
        # One background thread compresses while this one reads the store and frames
        # records (the export's two halves then overlap on two cores).
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=1)
        self._zstd = compressor.stream_writer(cast(IO[bytes], self._out), closefd=False)
        self._sha256 = hashlib.sha256()
        self._buffer = bytearray()
        self._messages = 0
        self._blobs_done = 0
        self._blob_bytes = 0
        self._finished = False
        signature = sign_map(keys, HEADER_DOMAIN, header_map)
        self._buffer += canonical([RECORD_HEADER, header_map, signature])
        self._drain()
        # The header ends its own zstd block: a reader decodes it from the first bytes of the
        # file, and damage further on can never make the header unreadable.
        self._zstd.flush(zstandard.FLUSH_BLOCK)

    @property
    def compressed_bytes(self) -> int:
        """Bytes handed to the target so far (zstd holds some back until it fills a block)."""
        return self._out.count

    @property
    def messages_written(self) -> int:
        return self._messages

    def add_message(self, json: str | bytes) -> None:
        """Append one message's exact stored JSON; messages go feed by feed, as the header says."""
        data = json.encode("utf-8") if isinstance(json, str) else json
        if self._messages >= self._expected_messages or self._blobs_done or self._finished:
            self._refuse_message()
        if len(data) > _MAX_JSON:
            raise ValueError(f"a message of {len(data)} bytes is larger than a bundle record")
        self._buffer += message_record(data)
        self._messages += 1
        if len(self._buffer) >= _FLUSH_AT:
            self._drain()

    def _refuse_message(self) -> None:
        if self._finished:
            raise ValueError("the bundle is finished")
        if self._blobs_done:
            raise ValueError("messages must come before blobs")
        raise ValueError(f"the header declares {self._expected_messages} messages, no more")

    def add_blob(self, blob_id: str, size: int, chunks: Iterable[bytes]) -> None:
        """Append the next blob the header lists, re-cut into chunks of at most 64 KiB."""
        if self._finished:
            raise ValueError("the bundle is finished")
        if self._messages != self._expected_messages:
            raise ValueError(
                f"blobs go after all {self._expected_messages} messages "
                f"({self._messages} written so far)"
            )
        listed = self._header.blobs
        if self._blobs_done >= len(listed) or listed[self._blobs_done] != (blob_id, size):
            expected = listed[self._blobs_done] if self._blobs_done < len(listed) else "none"
            raise ValueError(
                f"blob {blob_id} ({size} bytes) is not the next the header lists: {expected}"
            )
        offset = 0
        pending = bytearray()
        for piece in chunks:
            pending += piece
            while len(pending) >= MAX_CHUNK_BYTES:
                offset = self._blob_chunk(blob_id, size, offset, bytes(pending[:MAX_CHUNK_BYTES]))
                del pending[:MAX_CHUNK_BYTES]
        if pending or offset == 0:  # a zero-byte blob still gets its one (empty) record
            offset = self._blob_chunk(blob_id, size, offset, bytes(pending))
        if offset != size:
            raise ValueError(f"blob {blob_id} gave {offset} bytes, the header says {size}")
        self._blobs_done += 1
        self._blob_bytes += size

    def _blob_chunk(self, blob_id: str, size: int, offset: int, data: bytes) -> int:
        end = offset + len(data)
        if end > size:
            raise ValueError(f"blob {blob_id} gave more than the {size} bytes the header says")
        self._buffer += canonical([RECORD_BLOB, blob_id, offset, size, data])
        if len(self._buffer) >= _FLUSH_AT:
            self._drain()
        return end

    def finish(self) -> Trailer:
        """Write the signed trailer and end the zstd frame; flushes but does not close `target`."""
        if self._finished:
            raise ValueError("the bundle is finished")
        if self._messages != self._expected_messages:
            raise ValueError(
                f"the header declares {self._expected_messages} messages, "
                f"{self._messages} were written"
            )
        if self._blobs_done != len(self._header.blobs):
            raise ValueError(
                f"the header lists {len(self._header.blobs)} blobs, {self._blobs_done} were written"
            )
        self._drain()
        trailer = Trailer(self._messages, self._blobs_done, self._blob_bytes, self._sha256.digest())
        trailer_map = trailer_to_map(trailer)
        signature = sign_map(self._keys, TRAILER_DOMAIN, trailer_map)
        self._zstd.write(canonical([RECORD_TRAILER, trailer_map, signature]))
        self._zstd.flush(zstandard.FLUSH_FRAME)
        self._out.flush()
        self._finished = True
        return trailer

    def _drain(self) -> None:
        if self._buffer:
            self._sha256.update(self._buffer)
            self._zstd.write(self._buffer)
            self._buffer.clear()
