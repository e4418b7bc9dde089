"""The packet-stream codec that muxrpc runs on (PROTOCOL.md §4.1), sans-IO.

A frame is a 9-byte header and a body::

    offset 0  flags   bit 3 stream, bit 2 end/error, bits 1..0 body type (bits 7..4 unused)
    offset 1  uint32  body length, big-endian
    offset 5  int32   request number, big-endian, signed

Two JS rules shape this module. The JS decoder takes *any* header whose length is 0 as the
goodbye (9 zero bytes are only the canonical form) and stops reading, so an empty body must
never be sent: `encode_packet` refuses one, and `encode_body` sends an empty string as the JSON
text `""`. And the JS encoder picks the body type from the value: a string is type 1, a Buffer
type 0, anything else `JSON.stringify`-ed type 2 (`encode_body` does the same).

`PacketDecoder` has the h11 shape: `receive_data` only buffers, `next_event` returns a `Packet`,
`NEED_DATA` or `GOODBYE`. Invariants: the buffer never holds more than `max_buffer` bytes (more
is a `LIMIT` error from `receive_data`); a header is judged as soon as its 9 bytes are in (body
type 3 and bodies over `max_body` are refused before the body arrives); once the goodbye is
seen, `next_event` keeps answering `GOODBYE`, unless more bytes follow it, which is an error.
An error is raised again by every later `next_event`: the decoder never resynchronises.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from ssbsync.core import jsonv8
from ssbsync.core.errors import LocalProtocolError, Reason, RemoteProtocolError
from ssbsync.core.events import GOODBYE, NEED_DATA, Sentinel

HEADER: Final = struct.Struct(">BIi")
HEADER_SIZE: Final = HEADER.size  # 9
GOODBYE_BYTES: Final = bytes(HEADER_SIZE)
INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1

_STREAM: Final = 0x08
_END: Final = 0x04
_TYPE_MASK: Final = 0x03


class BodyType(enum.IntEnum):
    BINARY = 0
    STRING = 1
    JSON = 2


_BODY_TYPES: Final = frozenset(BodyType)


@dataclass(frozen=True, slots=True)
class Packet:
    number: int  # signed int32 request number as on the wire (+n from the caller, -n callee)
    stream: bool
    end: bool
    body_type: BodyType
    body: bytes


def encode_packet(packet: Packet) -> bytes:
    """Header and body of one frame. An empty body would read as goodbye in JS (§4.1)."""
    if not packet.body:
        raise LocalProtocolError("a packet body must not be empty (JS reads it as goodbye)")
    if not INT32_MIN <= packet.number <= INT32_MAX:
        raise LocalProtocolError(f"request number {packet.number} is outside int32")
    if packet.body_type not in _BODY_TYPES:
        raise LocalProtocolError(f"unknown body type {packet.body_type!r}")
    flags = (_STREAM if packet.stream else 0) | (_END if packet.end else 0) | packet.body_type
    return HEADER.pack(flags, len(packet.body), packet.number) + bytes(packet.body)


def encode_body(value: object) -> tuple[BodyType, bytes]:
    """Body type and bytes for a value, chosen as the JS codec chooses them (§4.1)."""
    if isinstance(value, bytes | bytearray):
        if not value:
            raise LocalProtocolError("an empty binary body cannot be sent (JS reads goodbye)")
        return BodyType.BINARY, bytes(value)
    if isinstance(value, jsonv8.RawJSON):
        return BodyType.JSON, value.encode("utf-8")
    if isinstance(value, str) and value:
        return BodyType.STRING, jsonv8.utf8_bytes(value)
    try:
        text = jsonv8.stringify(value)
    except (TypeError, RecursionError) as err:
        raise LocalProtocolError(f"cannot send {type(value).__name__} as JSON: {err}") from None
    return BodyType.JSON, text.encode("utf-8")


def decode_body(body_type: BodyType, body: bytes) -> object:
    """The value a JS peer meant: JSON.parse, Buffer.toString() or the raw bytes."""
    if body_type == BodyType.JSON:
        try:
            return jsonv8.parse(body)
        except jsonv8.JSONParseError as err:
            raise RemoteProtocolError(Reason.BAD_PACKET, f"body is not JSON: {err}") from None
    if body_type == BodyType.STRING:
        return body.decode("utf-8", errors="replace")
    return bytes(body)


class PacketDecoder:
    def __init__(self, max_body: int = 1 << 20, max_buffer: int = 4 << 20) -> None:
        if max_buffer < max_body + HEADER_SIZE:
            raise LocalProtocolError("max_buffer must hold at least one frame of max_body")
        self._max_body = max_body
        self._max_buffer = max_buffer
        self._buffer = bytearray()
        self._pos = 0  # start of the unread bytes in _buffer
        self._goodbye = False

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; decoding happens in `next_event`."""
        if len(self._buffer) - self._pos + len(data) > self._max_buffer:
            raise RemoteProtocolError(Reason.LIMIT, f"more than {self._max_buffer} bytes buffered")
        self._buffer += data

    def next_event(self) -> Packet | Sentinel:
        if self._goodbye:
            if len(self._buffer) > self._pos:
                raise RemoteProtocolError(Reason.BAD_PACKET, "data after goodbye")
            return GOODBYE
        available = len(self._buffer) - self._pos
        if available < HEADER_SIZE:
            return self._need_data()
        flags, length, number = HEADER.unpack_from(self._buffer, self._pos)
        if length == 0:  # any empty frame ends the stream in JS, not only 9 zero bytes
            self._goodbye = True
            self._pos += HEADER_SIZE
            self._compact()
            return GOODBYE
        self._check_header(flags, length)
        end = self._pos + HEADER_SIZE + length
        if end > len(self._buffer):
            return self._need_data()
        body = bytes(self._buffer[self._pos + HEADER_SIZE : end])
        self._pos = end
        stream, is_end = bool(flags & _STREAM), bool(flags & _END)
        return Packet(number, stream, is_end, BodyType(flags & _TYPE_MASK), body)

    def _check_header(self, flags: int, length: int) -> None:
        if flags & _TYPE_MASK == 3:
            raise RemoteProtocolError(Reason.BAD_PACKET, "unknown body type 3")
        if length > self._max_body:
            raise RemoteProtocolError(Reason.LIMIT, f"body of {length} > {self._max_body} bytes")

    def _need_data(self) -> Sentinel:
        self._compact()
        return NEED_DATA

    def _compact(self) -> None:
        if self._pos:
            del self._buffer[: self._pos]
            self._pos = 0
