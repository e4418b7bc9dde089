"""The markers of the serial link preamble (docs/serial-link.md), sans-IO.

A serial line has no "connect", and bytes of a dropped session may still sit in a buffer, so
ssbsync's serial transport (ssbsync/transport/serial.py, which runs the exchange) starts each
session with four 39-byte markers, `\\x16ssbsync-link/1 KIND  NONCE\\n`: KIND one of SYNC,
ACK, START, READY padded to 5, NONCE 16 lowercase hex digits the dialler picks afresh for
every attempt. This module encodes them and finds them in a byte stream, discarding
everything else in bounded memory. ssb-server has no serial transport: this is ssbsync's own.
"""

from __future__ import annotations

from collections.abc import Iterator

PREFIX = b"\x16ssbsync-link/1 "  # \x16 is ASCII SYN
KINDS = ("SYNC", "ACK", "START", "READY")
MARKER_LEN = len(PREFIX) + 5 + 1 + 16 + 1


def marker(kind: str, nonce: str) -> bytes:
    """One link-preamble marker; `nonce` is 16 lowercase hex digits."""
    assert kind in KINDS and len(nonce) == 16, (kind, nonce)
    return PREFIX + kind.ljust(5).encode() + b" " + nonce.encode() + b"\n"


def _decode(raw: bytes) -> tuple[str, str] | None:
    body = raw[len(PREFIX) :]
    kind, nonce, end = body[:5].decode("latin-1").rstrip(), body[6:22], body[22:]
    if kind not in KINDS or body[5:6] != b" " or end != b"\n":
        return None
    if any(c not in b"0123456789abcdef" for c in nonce):
        return None
    return kind, nonce.decode()


class MarkerScanner:
    """Finds markers in a byte stream and discards everything else, in bounded memory."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.discarded = 0  # bytes thrown away: garbage, stale sessions, malformed markers

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def markers(self) -> Iterator[tuple[str, str]]:
        """Markers in order; after each one, `rest()` is what followed it."""
        while True:
            start = self._buffer.find(PREFIX)
            if start < 0:
                # keep only what could be the start of a prefix cut by the read
                keep = _partial_prefix(self._buffer)
                self._drop(len(self._buffer) - keep)
                return
            self._drop(start)
            if len(self._buffer) < MARKER_LEN:
                return
            found = _decode(bytes(self._buffer[:MARKER_LEN]))
            if found is None:
                self._drop(1)  # not a marker after all: look past this prefix
                continue
            del self._buffer[:MARKER_LEN]
            yield found

    def rest(self) -> bytes:
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    def _drop(self, count: int) -> None:
        del self._buffer[:count]
        self.discarded += count


def _partial_prefix(buffer: bytearray) -> int:
    """Length of the longest tail of `buffer` that is a start of PREFIX."""
    for size in range(min(len(buffer), len(PREFIX) - 1), 0, -1):
        if buffer.endswith(PREFIX[:size]):
            return size
    return 0
