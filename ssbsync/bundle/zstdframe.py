"""Decompress a bundle's zstd frame one block at a time, knowing where the frame really ends.

Why not zstd's own streaming reader: it returns end-of-data quietly when its input stops
mid-frame (a bundle cut inside its checksum would read as whole); one read() may decode many
blocks, so a corrupt block throws away the good output decoded before it in the same call;
and a few compressed bytes may expand to gigabytes in one call. Walking the frame layout
(RFC 8878 §3.1.1: a frame header, blocks each behind a 3-byte header, an optional 4-byte
checksum) fixes all three: zstd is fed one block at a time, and no block holds more than
128 KiB of content (RFC 8878 §3.1.1.2.4, Block_Maximum_Size), so memory stays bounded.
"""

from __future__ import annotations

from collections import deque
from typing import BinaryIO

import zstandard

_MAGIC = b"\x28\xb5\x2f\xfd"
_HEADER, _HEADER_REST, _BLOCK, _CHECKSUM, _DONE, _FOREIGN = range(6)
_DICT_ID_BYTES = (0, 1, 2, 4)
_CONTENT_SIZE_BYTES = (0, 2, 4, 8)  # the first is 1 in a single-segment frame


class FrameWalker:
    """Feed it every compressed byte in order; it says where blocks and the frame end."""

    __slots__ = ("_checksum", "_last", "_need", "_pending", "_skip", "_state", "extra")

    def __init__(self) -> None:
        self._state = _HEADER
        self._need = 5  # magic number and frame header descriptor
        self._pending = bytearray()
        self._skip = 0  # block content bytes still to pass over
        self._last = False  # the current block is the frame's last
        self._checksum = False
        self.extra = False  # bytes came after the end of the frame

    @property
    def complete(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> list[int]:
        """Offsets in `data` just after each block that ends in it, and last the end of the
        frame's part of `data` (bytes after the frame's end are left out and set `extra`)."""
        cuts: list[int] = []
        index, size = 0, len(data)
        while index < size:
            if self._skip:
                step = min(self._skip, size - index)
                self._skip -= step
                index += step
                if not self._skip:
                    self._block_done(cuts, index)
                continue
            if self._state == _DONE:
                self.extra = True
                break
            if self._state == _FOREIGN:
                index = size  # not zstd: hand it over whole, and zstd says what is wrong
                break
            step = min(self._need - len(self._pending), size - index)
            self._pending += data[index : index + step]
            index += step
            if len(self._pending) == self._need:
                field = bytes(self._pending)
                self._pending.clear()
                self._advance(field, cuts, index)
        if not cuts or cuts[-1] != index:
            cuts.append(index)
        return cuts

    def _advance(self, field: bytes, cuts: list[int], index: int) -> None:
        if self._state == _HEADER:
            if field[:4] != _MAGIC:
                self._state = _FOREIGN
                return
            descriptor = field[4]
            single_segment = (descriptor >> 5) & 1
            content_size = _CONTENT_SIZE_BYTES[descriptor >> 6] or single_segment
            self._checksum = bool((descriptor >> 2) & 1)
            rest = (1 - single_segment) + _DICT_ID_BYTES[descriptor & 3] + content_size
            self._state, self._need = (_HEADER_REST, rest) if rest else (_BLOCK, 3)
        elif self._state == _HEADER_REST:
            self._state, self._need = _BLOCK, 3
        elif self._state == _BLOCK:
            value = int.from_bytes(field, "little")
            self._last, kind, length = bool(value & 1), (value >> 1) & 3, value >> 3
            self._skip = 1 if kind == 1 else length  # an RLE block stores one byte
            if not self._skip:
                self._block_done(cuts, index)
        elif self._state == _CHECKSUM:
            self._state = _DONE
            cuts.append(index)

    def _block_done(self, cuts: list[int], index: int) -> None:
        cuts.append(index)
        if self._last:
            if self._checksum:
                self._state, self._need = _CHECKSUM, 4
            else:
                self._state = _DONE


class FrameReader:
    """The decompressed content of the zstd frame that `source` holds, a block at a time."""

    def __init__(self, source: BinaryIO, read_size: int = 64 * 1024) -> None:
        self._source = source
        self._read_size = read_size
        self._zstd = zstandard.ZstdDecompressor().decompressobj()
        self._walker = FrameWalker()
        self._pieces: deque[bytes] = deque()  # compressed input, cut at block ends
        self._at_end = False
        self.compressed = 0  # bytes read from `source`

    @property
    def complete(self) -> bool:
        """The whole frame, checksum included, went through zstd."""
        return self._walker.complete and not self._pieces

    @property
    def extra(self) -> bool:
        """Bytes follow the frame (looked for only once the frame is complete)."""
        if self._walker.complete and not self._walker.extra and not self._at_end:
            self._take(self._source.read(1))
        return self._walker.extra

    def read(self) -> bytes:
        """The next piece of content (at most about 128 KiB); b"" at the end of the data.

        Raises zstandard.ZstdError for corrupt data, after all the good content before it.
        """
        while True:
            if self._pieces:
                out: bytes = self._zstd.decompress(self._pieces.popleft())
                if out:
                    return out
                continue
            if self._at_end or self._walker.complete:
                return b""
            self._take(self._source.read(self._read_size))

    def _take(self, data: bytes) -> None:
        if not data:
            self._at_end = True
            return
        self.compressed += len(data)
        start = 0
        for cut in self._walker.feed(data):
            if cut > start:
                self._pieces.append(data[start:cut])
                start = cut
