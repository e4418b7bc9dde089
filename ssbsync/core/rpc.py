"""muxrpc call state over packet-stream (PROTOCOL.md §4.2–4.6), sans-IO, both roles at once.

`RpcConnection` has the h11 shape: `receive_data` only buffers, `next_event` returns an event,
`NEED_DATA` or `GOODBYE`; the methods that act (`call`, `respond`, `send`, `end`, …) return the
bytes to write. Request numbers: we number our calls 1, 2, 3, … (async and streams share the
counter, as JS does); the peer numbers its own. The caller sends on `+n`, the callee on `-n`.

Every call is two halves: *ours* (we may still send on it) and *theirs* (the peer may still
send on it). A call is forgotten once both halves have ended; an async call has one half only.

    call                      opened by            ours    theirs   S flag on the wire
    our async call            call()               -       open     0
    peer's async request      Request event        open    -        0
    our stream call           call()               open    open     1
    peer's stream request     Request event        open    open     1

Transitions of one call (state = (ours, theirs), "-" = ended):

    state            input                                   gives                next
    (-, open) async  -n S=0 E=0 arrives                      Response             forgotten
    (-, open) async  -n S=0 E=1 arrives                      ErrorResponse        forgotten
    (open, -) async  respond() / respond_error()             -n S=0 E=0 / E=1     forgotten
    (x, open) stream item arrives, direction allowed         StreamData           (x, open)
    (x, open) stream end arrives (`true` or an error)        StreamEnd            (x, -)
    (open, y) stream send(), direction allowed               S=1 E=0 item         (open, y)
    (open, y) stream end(id, ours, error=None)               S=1 E=1 true|error   (-, y)
    (-, y)    stream end() again                             b""                  (-, y)

Items flow caller→callee on sinks, callee→caller on sources, both ways on duplexes. The peer's
end does not end our half: the driver answers it with `end()` (the caller answers a source's
end, §4.4). A `(-, -)` state is never stored.

Routing of an incoming packet (§4.2: the sign of the number and S decide, as in packet-stream):

    number  S  E  what we know about n                    result
    0       *  *  -                                       stray (one-way message, unused)
    -n      0  *  our async call n                        Response / ErrorResponse
    -n      1  *  our stream call n, theirs open          StreamData / StreamEnd
    -n      *  *  anything else                           stray
    +n      1  *  peer stream n, theirs open              StreamData / StreamEnd
    +n      1  *  peer stream n, theirs ended             stray
    +n      *  *  peer call n open, the other kind        RemoteProtocolError(BAD_RPC)
    +n      0  *  peer async n still unanswered           RemoteProtocolError(BAD_RPC)
    +n      1  1  unknown                                 stray (a late end of a forgotten one)
    +n      0  *  unknown                                 new async request (E ignored, as JS)
    +n      1  0  unknown                                 new stream request

Strays are dropped as JS drops them, but counted: past `max_stray` they are a LIMIT error.
Items that flow against the call type (an item from the caller of a source) are strays too.
A forgotten number is free again: `+n S=1 E=0` after stream n was forgotten opens a new stream
(packet-stream does the same), so a late item becomes a (usually bad) request.

A new request becomes `Request`, or `BadRequest` when its body has the wrong shape; either way
it is registered as the peer's open call, and the driver must answer it: `respond` or
`respond_error` for async, `end` for streams. BadRequest carries the error JS would send:
`invalid request, args should be array, was:<body>`, `unsupported stream type:<t>`, or
`no <type>:<name>` for a missing or malformed name (texts built from peer input are cut at
1024 characters). A bad stream request carries no items either way: the driver ends our half
with the error, and the peer's half stays open until the peer ends it. A non-stream request is
always dispatched as async, whatever its `type` says (JS omits `type` for async; §4.3).

Bounds: at most `max_open` peer calls at once. One more is not answered with an error (that
would need output from `next_event`): `next_event` raises RemoteProtocolError(LIMIT) and the
driver drops the connection. A JS peer keeps few calls open (ssb-server's dialler opens about
four, §14; EBT is one duplex), but legacy replication opens one live `createHistoryStream` per
feed: a driver serving a legacy-only peer with a large follow graph needs a larger `max_open`.
Our own calls are not bounded here (we choose them). Bodies are limited to `max_body` by the
packet decoder, which buffers at most max(4 MiB, 2 × (max_body + 9)) bytes.

Invariants: keys of `_ours` are in [1, next number); keys of `_theirs` are positive and at
most `max_open` many; every stored call has at least one half open, an async one exactly one;
a number is handed out only when its request bytes were made. Errors from `next_event` are
sticky: once it has raised, it raises the same error again. After `goodbye()`, `call` raises
LocalProtocolError and `respond`, `respond_error`, `send`, `end` and `goodbye` return b""
(nothing can be sent any more). Misuse by our caller (answering twice, items on a half that
ended or on a call type that carries none from us, an unknown number) is LocalProtocolError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, TypeGuard, get_args

from ssbsync.core import jsonv8
from ssbsync.core.errors import LocalProtocolError, Reason, RemoteProtocolError
from ssbsync.core.events import Sentinel
from ssbsync.core.packets import (
    GOODBYE_BYTES,
    HEADER_SIZE,
    INT32_MAX,
    Packet,
    PacketDecoder,
    decode_body,
    encode_body,
    encode_packet,
)

CallType = Literal["async", "source", "sink", "duplex"]
StreamType = Literal["source", "sink", "duplex"]
CALL_TYPES: Final[tuple[CallType, ...]] = get_args(CallType)
STREAM_TYPES: Final[tuple[StreamType, ...]] = get_args(StreamType)
MAX_STRAY: Final = 10_000
_MAX_ERROR_TEXT = 1024  # error texts we build from a peer's input are cut here
_MISSING: Final = object()  # a key absent from a request (JS `undefined`)

# who sends items on a stream: (the caller, the callee)  (§4.4)
_ITEMS_FROM: Final[dict[StreamType, tuple[bool, bool]]] = {
    "source": (False, True),
    "sink": (True, False),
    "duplex": (True, True),
}


@dataclass(frozen=True, slots=True)
class RpcError:
    message: str
    name: str = "Error"

    def to_json(self) -> dict[str, object]:
        """The error object as packet-stream's `flat()` sends it (§4.5)."""
        return {"message": self.message, "name": self.name, "stack": ""}

    @classmethod
    def from_json(cls, value: object) -> RpcError:
        """Any value a peer sent as an error, made readable."""
        if isinstance(value, dict):
            message, name = value.get("message"), value.get("name")
            text = message if isinstance(message, str) else _describe(value)
            return cls(text, name if isinstance(name, str) and name else "Error")
        if isinstance(value, str):
            return cls(value)
        return cls(_describe(value))


@dataclass(frozen=True, slots=True)
class Request:
    """The peer calls us; answer on -id."""

    id: int
    name: list[str]
    args: list[object]
    type: CallType


@dataclass(frozen=True, slots=True)
class BadRequest:
    """The peer sent a request we cannot dispatch; answer `error` with respond_error/end."""

    id: int
    stream: bool
    error: RpcError


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    value: object


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    id: int
    error: RpcError


@dataclass(frozen=True, slots=True)
class StreamData:
    id: int
    ours: bool
    value: object
    # body bytes on the wire, so receivers can bound what they queue; not part of equality
    size: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class StreamEnd:
    id: int
    ours: bool
    error: RpcError | None  # None = normal end (body `true`)


Event = Request | BadRequest | Response | ErrorResponse | StreamData | StreamEnd


@dataclass(slots=True)
class _Call:
    stream: bool
    ours_open: bool  # we may still send on it
    theirs_open: bool  # the peer may still send on it
    we_send_items: bool = False
    they_send_items: bool = False


class RpcConnection:
    def __init__(
        self, *, max_open: int = 1024, max_body: int = 1 << 20, max_stray: int = MAX_STRAY
    ) -> None:
        max_buffer = max(4 << 20, 2 * (max_body + HEADER_SIZE))
        self._decoder = PacketDecoder(max_body=max_body, max_buffer=max_buffer)
        self._max_open = max_open
        self._max_stray = max_stray
        self._strays = 0
        self._next_id = 1
        self._ours: dict[int, _Call] = {}
        self._theirs: dict[int, _Call] = {}
        self._error: RemoteProtocolError | None = None
        self._said_goodbye = False

    # -- what we send ------------------------------------------------------------------------

    def call(self, name: list[str] | str, args: list[object], type: CallType) -> tuple[int, bytes]:
        """Start a call; returns our request number and the request bytes (§4.3)."""
        if self._said_goodbye:
            raise LocalProtocolError("call after goodbye")
        _check_call(name, args, type)
        if self._next_id > INT32_MAX:
            raise LocalProtocolError("request numbers exhausted")
        id = self._next_id
        body: dict[str, object] = {"name": name if isinstance(name, str) else list(name)}
        body["args"] = args
        if type == "async":  # JS sends no type for async calls (§4.3)
            call = _Call(stream=False, ours_open=False, theirs_open=True)
        else:
            body["type"] = type
            call = _Call(True, True, True, *_ITEMS_FROM[type])
        request = self._packet(id, call.stream, False, body)  # may raise: then nothing changed
        self._ours[id] = call
        self._next_id += 1
        return id, request

    def respond(self, id: int, value: object) -> bytes:
        """The result of the peer's async request `id`."""
        return self._answer(id, False, value)

    def respond_error(self, id: int, error: RpcError) -> bytes:
        return self._answer(id, True, error.to_json())

    def send(self, id: int, ours: bool, value: object) -> bytes:
        """One stream item, on our call `id` (ours=True) or on the peer's request `id`."""
        if self._said_goodbye:
            return b""
        call = self._stream(id, ours)
        if not call.ours_open:
            raise LocalProtocolError(f"stream {id} (ours={ours}): our half already ended")
        if not call.we_send_items:
            raise LocalProtocolError(f"stream {id} (ours={ours}) carries no items from us")
        return self._packet(id if ours else -id, True, False, value)

    def end(self, id: int, ours: bool, error: RpcError | None = None) -> bytes:
        """End (or abort with `error`) our half of a stream; b"" if it has already ended."""
        if self._said_goodbye:
            return b""
        table = self._ours if ours else self._theirs
        call = table.get(id)
        if call is None:
            if ours and not 1 <= id < self._next_id:
                raise LocalProtocolError(f"we never made call {id}")
            return b""  # forgotten: both halves ended
        if not call.stream:
            raise LocalProtocolError(f"call {id} (ours={ours}) is async, not a stream")
        if not call.ours_open:
            return b""
        call.ours_open = False
        if not call.theirs_open:
            del table[id]
        value: object = True if error is None else error.to_json()
        return self._packet(id if ours else -id, True, True, value)

    def goodbye(self) -> bytes:
        if self._said_goodbye:
            return b""
        self._said_goodbye = True
        return GOODBYE_BYTES

    def is_open(self, id: int, ours: bool) -> bool:
        """Whether we may still send on that call (our half of a stream, or an unanswered
        request of the peer)."""
        call = (self._ours if ours else self._theirs).get(id)
        return call is not None and call.ours_open

    def _answer(self, id: int, is_error: bool, value: object) -> bytes:
        if self._said_goodbye:
            return b""
        call = self._theirs.get(id)
        if call is None or call.stream:
            raise LocalProtocolError(f"no unanswered async request {id} from the peer")
        payload = self._packet(-id, False, is_error, value)  # may raise: then keep the call
        del self._theirs[id]
        return payload

    def _stream(self, id: int, ours: bool) -> _Call:
        call = (self._ours if ours else self._theirs).get(id)
        if call is None or not call.stream:
            raise LocalProtocolError(f"no open stream {id} (ours={ours})")
        return call

    @staticmethod
    def _packet(number: int, stream: bool, end: bool, value: object) -> bytes:
        body_type, body = encode_body(value)
        return encode_packet(Packet(number, stream, end, body_type, body))

    # -- what we receive ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; everything else happens in `next_event`."""
        self._decoder.receive_data(data)

    def next_event(self) -> Event | Sentinel:
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except RemoteProtocolError as err:
            self._error = err
            raise

    def _next_event(self) -> Event | Sentinel:
        while True:
            packet = self._decoder.next_event()
            if isinstance(packet, Sentinel):
                return packet
            event = self._route(packet)
            if event is not None:
                return event

    def _route(self, packet: Packet) -> Event | None:
        number = packet.number
        if number < 0:
            return self._on_reply(-number, packet)
        call = self._theirs.get(number)
        if call is None and number != 0 and not (packet.stream and packet.end):
            return self._on_request(number, packet)
        if call is not None and not (packet.stream and call.stream):
            raise RemoteProtocolError(Reason.BAD_RPC, f"request number {number} is in use")
        if call is None or not call.theirs_open:
            self._stray()
            return None
        return self._on_stream(self._theirs, number, False, call, packet)

    def _on_reply(self, id: int, packet: Packet) -> Event | None:
        call = self._ours.get(id)
        if call is None or call.stream != packet.stream or not call.theirs_open:
            self._stray()
            return None
        if call.stream:
            return self._on_stream(self._ours, id, True, call, packet)
        value = decode_body(packet.body_type, packet.body)
        del self._ours[id]
        if packet.end:
            return ErrorResponse(id, RpcError.from_json(value))
        return Response(id, value)

    def _on_stream(
        self, table: dict[int, _Call], id: int, ours: bool, call: _Call, packet: Packet
    ) -> Event | None:
        if not packet.end and not call.they_send_items:
            self._stray()
            return None
        value = decode_body(packet.body_type, packet.body)
        if not packet.end:
            return StreamData(id, ours, value, len(packet.body))
        call.theirs_open = False
        if not call.ours_open:
            del table[id]
        return StreamEnd(id, ours, None if value is True else RpcError.from_json(value))

    def _on_request(self, id: int, packet: Packet) -> Event:
        if len(self._theirs) >= self._max_open:
            raise RemoteProtocolError(Reason.LIMIT, f"more than {self._max_open} open calls")
        value = decode_body(packet.body_type, packet.body)
        if not packet.stream:
            self._theirs[id] = _Call(stream=False, ours_open=True, theirs_open=False)
            return _parse_request(id, value, "async")
        type = value.get("type", _MISSING) if isinstance(value, dict) else _MISSING
        if type not in STREAM_TYPES:
            self._theirs[id] = _Call(stream=True, ours_open=True, theirs_open=True)
            error = RpcError(_cut(f"unsupported stream type:{_js_string(type)}"))
            return BadRequest(id, True, error)
        caller_sends, callee_sends = _ITEMS_FROM[type]
        self._theirs[id] = _Call(True, True, True, callee_sends, caller_sends)
        return _parse_request(id, value, type)

    def _stray(self) -> None:
        self._strays += 1
        if self._strays > self._max_stray:
            raise RemoteProtocolError(Reason.LIMIT, f"more than {self._max_stray} stray packets")


def _parse_request(id: int, body: object, type: CallType) -> Request | BadRequest:
    """Request or BadRequest for a request body, checked in the order muxrpc checks (§4.3)."""
    stream = type != "async"
    args = body.get("args") if isinstance(body, dict) else None
    if not isinstance(args, list):
        text = f"invalid request, args should be array, was:{_describe(body)}"
        return BadRequest(id, stream, RpcError(_cut(text)))
    raw_name = body.get("name", _MISSING) if isinstance(body, dict) else _MISSING
    name = [raw_name] if isinstance(raw_name, str) else raw_name
    if not _is_name(name):
        text = f"no {type}:{_js_string(raw_name)}"
        return BadRequest(id, stream, RpcError(_cut(text)))
    return Request(id, name, args, type)


def _is_name(name: object) -> TypeGuard[list[str]]:
    return isinstance(name, list) and bool(name) and all(isinstance(p, str) for p in name)


def _check_call(name: object, args: object, type: object) -> None:
    if type not in CALL_TYPES:
        raise LocalProtocolError(f"unknown call type {type!r}")
    if not (isinstance(name, str) and name) and not _is_name(name):
        raise LocalProtocolError(f"a method name is a string or a list of strings: {name!r}")
    if not isinstance(args, list):
        raise LocalProtocolError("args must be a list (JS rejects anything else)")


def _js_string(value: object, depth: int = 0) -> str:
    """`String(value)` as JS prints it, for error texts (`no async:blobs,get`)."""
    if value is _MISSING:
        return "undefined"
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return jsonv8.format_number(value)
    if isinstance(value, list):
        if depth > 8:
            return "..."
        return ",".join("" if v is None else _js_string(v, depth + 1) for v in value)
    return "[object Object]"


def _describe(value: object) -> str:
    """A readable rendering of any received value (JSON text where possible)."""
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    try:
        text = jsonv8.stringify(value)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"
