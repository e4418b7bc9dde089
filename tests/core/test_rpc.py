"""muxrpc call state (PROTOCOL.md §4.2–4.6): two RpcConnections wired together, JS bytes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssbsync.core import jsonv8
from ssbsync.core.errors import LocalProtocolError, Reason, RemoteProtocolError
from ssbsync.core.events import GOODBYE, NEED_DATA
from ssbsync.core.packets import GOODBYE_BYTES, BodyType, Packet, encode_body, encode_packet
from ssbsync.core.rpc import (
    BadRequest,
    CallType,
    ErrorResponse,
    Request,
    Response,
    RpcConnection,
    RpcError,
    StreamData,
    StreamEnd,
)


def drain(conn: RpcConnection) -> list[object]:
    """Every event `conn` has ready, up to NEED_DATA (or GOODBYE)."""
    events: list[object] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        if event is GOODBYE:
            break
    return events


def deliver(conn: RpcConnection, data: bytes) -> list[object]:
    conn.receive_data(data)
    return drain(conn)


def js_packet(number: int, stream: bool, end: bool, value: object) -> bytes:
    """A frame as a JS peer would write it (§4.1)."""
    body_type, body = encode_body(value)
    return encode_packet(Packet(number, stream, end, body_type, body))


@dataclass
class Pair:
    """Two connections; `a` and `b` each play caller and callee (h11's ConnectionPair)."""

    a: RpcConnection = field(default_factory=RpcConnection)
    b: RpcConnection = field(default_factory=RpcConnection)

    def to_b(self, data: bytes) -> list[object]:
        return deliver(self.b, data)

    def to_a(self, data: bytes) -> list[object]:
        return deliver(self.a, data)


# -- async ----------------------------------------------------------------------------------------


def test_exact_bytes_of_a_js_style_async_request() -> None:
    id, data = RpcConnection().call(["whoami"], [], "async")
    body = b'{"name":["whoami"],"args":[]}'
    assert id == 1
    assert data == b"\x02" + len(body).to_bytes(4, "big") + b"\x00\x00\x00\x01" + body


def test_async_call_and_response() -> None:
    pair = Pair()
    id, data = pair.a.call(["whoami"], [], "async")
    assert pair.to_b(data) == [Request(1, ["whoami"], [], "async")]
    answer = pair.b.respond(1, {"id": "@me"})
    assert answer[:9] == bytes.fromhex("02 0000000c ffffffff")  # {"id":"@me"}: 12 bytes
    assert pair.to_a(answer) == [Response(id, {"id": "@me"})]
    assert not pair.a.is_open(id, True) and not pair.b.is_open(1, False)
    with pytest.raises(LocalProtocolError):
        pair.b.respond(1, "twice")


def test_string_and_empty_string_results() -> None:
    pair = Pair()
    pair.to_b(pair.a.call(["invite", "create"], [1], "async")[1])
    pair.to_b(pair.a.call(["get"], ["%x"], "async")[1])
    code = pair.b.respond(1, "net:host:8008~shs:key:seed")
    assert code[0] == 0x01  # a string result is a type-1 body, as JS sends it
    assert pair.to_a(code) == [Response(1, "net:host:8008~shs:key:seed")]
    empty = pair.b.respond(2, "")
    assert empty[0] == 0x02 and empty[9:] == b'""'  # never an empty body
    assert pair.to_a(empty) == [Response(2, "")]


def test_async_error_shape() -> None:
    pair = Pair()
    pair.to_b(pair.a.call(["blobs", "foo"], [], "async")[1])
    data = pair.b.respond_error(1, RpcError("no async:blobs,foo"))
    assert data[:1] == b"\x06"  # E=1, JSON, S=0
    assert data[5:9] == b"\xff\xff\xff\xff"
    assert data[9:] == b'{"message":"no async:blobs,foo","name":"Error","stack":""}'
    assert pair.to_a(data) == [ErrorResponse(1, RpcError("no async:blobs,foo"))]


def test_error_json_round_trip_and_leniency() -> None:
    error = RpcError("method:publish is not in list of allowed methods", "TypeError")
    assert error.to_json() == {"message": error.message, "name": "TypeError", "stack": ""}
    assert RpcError.from_json(error.to_json()) == error
    assert RpcError.from_json({"message": "m", "stack": "at x"}) == RpcError("m")
    assert RpcError.from_json("plain") == RpcError("plain")
    assert RpcError.from_json(False) == RpcError("false")
    assert RpcError.from_json({"code": 5}) == RpcError('{"code":5}')
    assert RpcError.from_json({"message": 5, "name": 7}) == RpcError('{"message":5,"name":7}')
    assert RpcError.from_json(b"\x00\x01") == RpcError("<2 bytes>")
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    assert RpcError.from_json(deep).message  # readable, never RecursionError


def test_manifest_is_called_with_a_plain_string_name() -> None:
    pair = Pair()
    _, data = pair.a.call("manifest", [], "async")
    assert data[9:] == b'{"name":"manifest","args":[]}'  # as ssb-client sends it (§13)
    assert pair.to_b(data) == [Request(1, ["manifest"], [], "async")]


def test_a_js_async_request_has_no_type() -> None:
    conn = RpcConnection()
    events = deliver(conn, js_packet(1, False, False, {"name": ["whoami"], "args": []}))
    assert events == [Request(1, ["whoami"], [], "async")]


@pytest.mark.parametrize("type", ["async", "sync", "source", "nonsense"])
def test_a_non_stream_request_is_always_async(type: str) -> None:
    body = {"name": ["whoami"], "args": [], "type": type}
    events = deliver(RpcConnection(), js_packet(5, False, False, body))
    assert events == [Request(5, ["whoami"], [], "async")]


# -- streams --------------------------------------------------------------------------------------


def test_source_items_then_end_then_the_caller_answers() -> None:
    pair = Pair()
    id, data = pair.a.call(["createHistoryStream"], [{"id": "@f", "seq": 1}], "source")
    assert data[0] == 0x0A  # S=1, JSON
    assert jsonv8.parse(data[9:])["type"] == "source"
    assert pair.to_b(data) == [
        Request(1, ["createHistoryStream"], [{"id": "@f", "seq": 1}], "source")
    ]
    items = b"".join(pair.b.send(1, False, {"seq": n}) for n in (1, 2, 3))
    assert pair.to_a(items) == [StreamData(id, True, {"seq": n}) for n in (1, 2, 3)]
    end = pair.b.end(1, False)
    assert end == bytes.fromhex("0e 00000004 ffffffff") + b"true"
    assert not pair.b.is_open(1, False)
    assert pair.to_a(end) == [StreamEnd(id, True, None)]
    assert pair.a.is_open(id, True)  # our half stays open until we answer
    answer = pair.a.end(id, True)
    assert answer == bytes.fromhex("0e 00000004 00000001") + b"true"
    assert pair.to_b(answer) == [StreamEnd(1, False, None)]
    assert pair.a.end(id, True) == b"" and pair.b.end(1, False) == b""  # idempotent, forgotten
    assert not pair.a.is_open(id, True)


def test_the_caller_of_a_source_sends_no_items() -> None:
    pair = Pair()
    id, _ = pair.a.call(["blobs", "get"], ["&b"], "source")
    with pytest.raises(LocalProtocolError):
        pair.a.send(id, True, "item")


def test_caller_aborts_a_source_early() -> None:
    pair = Pair()
    id, data = pair.a.call(["blobs", "createWants"], [], "source")
    pair.to_b(data)
    in_flight = pair.b.send(1, False, {"&b": -1})
    assert pair.to_b(pair.a.end(id, True)) == [StreamEnd(1, False, None)]
    assert pair.b.is_open(1, False)  # the callee still has to end its half
    assert pair.to_a(in_flight) == [StreamData(id, True, {"&b": -1})]
    assert pair.to_a(pair.b.end(1, False)) == [StreamEnd(id, True, None)]
    assert pair.to_b(pair.a.end(id, True)) == []  # nothing more to send, nothing arrives


def test_abort_with_an_error() -> None:
    pair = Pair()
    id, data = pair.a.call(["ebt", "replicate"], [{"version": 3}], "duplex")
    pair.to_b(data)
    assert pair.to_a(pair.b.end(1, False, RpcError("no duplex:ebt,replicate"))) == [
        StreamEnd(id, True, RpcError("no duplex:ebt,replicate"))
    ]


def test_sink() -> None:
    pair = Pair()
    id, data = pair.a.call(["blobs", "add"], [], "sink")
    assert pair.to_b(data) == [Request(1, ["blobs", "add"], [], "sink")]
    chunks = pair.a.send(id, True, b"\x00chunk") + pair.a.send(id, True, b"two")
    assert chunks[0] == 0x08  # S=1, binary
    assert pair.to_b(chunks) == [StreamData(1, False, b"\x00chunk"), StreamData(1, False, b"two")]
    with pytest.raises(LocalProtocolError):
        pair.b.send(1, False, "a sink sends nothing back")
    assert pair.to_b(pair.a.end(id, True)) == [StreamEnd(1, False, None)]
    assert pair.to_a(pair.b.end(1, False)) == [StreamEnd(id, True, None)]
    assert not pair.a.is_open(id, True) and not pair.b.is_open(1, False)


def test_duplex_halves_end_independently() -> None:
    pair = Pair()
    id, data = pair.a.call(["gossip", "ping"], [{"timeout": 300000}], "duplex")
    pair.to_b(data)
    assert pair.to_b(pair.a.send(id, True, 1700000000000)) == [StreamData(1, False, 1700000000000)]
    assert pair.to_a(pair.b.send(1, False, 1700000000042)) == [StreamData(id, True, 1700000000042)]
    assert pair.to_a(pair.b.end(1, False)) == [StreamEnd(id, True, None)]
    with pytest.raises(LocalProtocolError):
        pair.b.send(1, False, 1)  # b's half has ended
    # a's half is still open: it keeps sending and b keeps receiving
    assert pair.to_b(pair.a.send(id, True, 2)) == [StreamData(1, False, 2)]
    assert pair.b.is_open(1, False) is False and pair.a.is_open(id, True) is True
    assert pair.to_b(pair.a.end(id, True)) == [StreamEnd(1, False, None)]
    assert not pair.a.is_open(id, True)


def test_request_numbers_as_js_assigns_them() -> None:
    pair = Pair()
    numbers = [pair.a.call(["x"], [], t)[0] for t in ("async", "source", "duplex", "async")]
    assert numbers == [1, 2, 3, 4]  # one counter for every call type
    assert pair.b.call(["y"], [], "async")[0] == 1  # each side counts its own


def test_interleaved_concurrent_calls_both_ways() -> None:
    pair = Pair()
    mine: list[tuple[str, CallType]] = [
        ("whoami", "async"),
        ("createHistoryStream", "source"),
        ("get", "async"),
    ]
    wire_ab = b"".join(pair.a.call([name], [], type)[1] for name, type in mine)
    wire_ba = pair.b.call(["ebt", "replicate"], [{"version": 3}], "duplex")[1]
    wire_ba += pair.b.call(["blobs", "has"], ["&x"], "async")[1]
    assert [e.id for e in pair.to_b(wire_ab) if isinstance(e, Request)] == [1, 2, 3]
    assert [e.type for e in pair.to_a(wire_ba) if isinstance(e, Request)] == ["duplex", "async"]
    # answers in a different order, mixed with b's own stream and a's answers
    to_a = pair.b.respond(3, "got") + pair.b.send(2, False, "m1") + pair.b.send(1, True, "note")
    to_a += pair.b.respond(1, {"id": "@b"})
    assert pair.to_a(to_a) == [
        Response(3, "got"),
        StreamData(2, True, "m1"),
        StreamData(1, False, "note"),  # on b's duplex 1, not on a's call 1
        Response(1, {"id": "@b"}),
    ]
    to_b = pair.a.respond(2, False) + pair.a.send(1, False, "notes back")
    assert pair.to_b(to_b) == [Response(2, False), StreamData(1, True, "notes back")]


def test_goodbye() -> None:
    pair = Pair()
    id, data = pair.a.call(["createHistoryStream"], [], "source")
    pair.to_b(data)
    bye = pair.a.goodbye()
    assert bye == GOODBYE_BYTES
    assert pair.to_b(bye) == [GOODBYE]
    assert pair.b.next_event() is GOODBYE  # sticky
    assert pair.a.goodbye() == b""
    with pytest.raises(LocalProtocolError):
        pair.a.call(["whoami"], [], "async")
    assert pair.a.end(id, True) == b""  # clean-up after goodbye sends nothing
    assert pair.a.send(id, True, 1) == b"" and pair.a.end(99, False) == b""
    pair.b.receive_data(b"more")
    with pytest.raises(RemoteProtocolError):
        pair.b.next_event()


# -- malformed requests: answered as JS answers them ----------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": ["whoami"]}, 'invalid request, args should be array, was:{"name":["whoami"]}'),
        (
            {"name": "x", "args": {}},
            'invalid request, args should be array, was:{"name":"x","args":{}}',
        ),
        ("whoami", 'invalid request, args should be array, was:"whoami"'),
        (None, "invalid request, args should be array, was:null"),
        ({"args": []}, "no async:undefined"),
        ({"name": None, "args": []}, "no async:null"),
        ({"name": ["blobs", 1], "args": []}, "no async:blobs,1"),
        ({"name": [], "args": []}, "no async:"),
        ({"name": {"a": 1}, "args": []}, "no async:[object Object]"),
    ],
)
def test_bad_async_request(body: object, message: str) -> None:
    conn = RpcConnection()
    assert deliver(conn, js_packet(1, False, False, body)) == [
        BadRequest(1, False, RpcError(message))
    ]
    assert conn.respond_error(1, RpcError(message))[:1] == b"\x06"
    assert not conn.is_open(1, False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": ["x"], "args": []}, "unsupported stream type:undefined"),
        ({"name": ["x"], "args": [], "type": "async"}, "unsupported stream type:async"),
        ([1, 2], "unsupported stream type:undefined"),
        (
            {"name": ["x"], "type": "source"},
            'invalid request, args should be array, was:{"name":["x"],"type":"source"}',
        ),
        ({"args": [], "type": "duplex"}, "no duplex:undefined"),
    ],
)
def test_bad_stream_request(body: object, message: str) -> None:
    conn = RpcConnection()
    assert deliver(conn, js_packet(1, True, False, body)) == [
        BadRequest(1, True, RpcError(message))
    ]
    end = conn.end(1, False, RpcError(message))
    assert end[:1] == b"\x0e" and end[5:9] == b"\xff\xff\xff\xff"
    assert jsonv8.parse(end[9:]) == {"message": message, "name": "Error", "stack": ""}


def test_a_bad_stream_request_is_open_until_the_peer_ends_it() -> None:
    conn = RpcConnection()
    deliver(conn, js_packet(4, True, False, {"name": ["x"], "args": []}))
    end = conn.end(4, False, RpcError("unsupported stream type:undefined"))
    assert end[0] == 0x0E and jsonv8.parse(end[9:])["message"].startswith("unsupported")
    assert deliver(conn, js_packet(4, True, False, "item")) == []  # no items on a bad stream
    assert deliver(conn, js_packet(4, True, True, True)) == [StreamEnd(4, False, None)]
    assert conn.end(4, False) == b""


def test_long_error_texts_are_cut() -> None:
    body = {"name": ["x"], "args": "y" * 5000}
    (event,) = deliver(RpcConnection(), js_packet(1, False, False, body))
    assert isinstance(event, BadRequest) and len(event.error.message) <= 1024


def test_a_number_in_use_is_a_remote_error() -> None:
    conn = RpcConnection()
    deliver(conn, js_packet(1, False, False, {"name": ["a"], "args": []}))
    with pytest.raises(RemoteProtocolError) as info:
        deliver(conn, js_packet(1, False, False, {"name": ["a"], "args": []}))
    assert info.value.reason is Reason.BAD_RPC
    with pytest.raises(RemoteProtocolError):  # sticky
        conn.next_event()


def test_a_number_is_reused_once_the_call_is_forgotten() -> None:
    conn = RpcConnection()
    request = js_packet(1, False, False, {"name": ["a"], "args": []})
    assert len(deliver(conn, request)) == 1
    conn.respond(1, True)
    assert deliver(conn, request) == [Request(1, ["a"], [], "async")]


# -- bounds ---------------------------------------------------------------------------------------


def test_max_open_peer_calls() -> None:
    pair = Pair(b=RpcConnection(max_open=2))
    calls = [pair.a.call(["x"], [], t)[1] for t in ("source", "async", "async")]
    assert len(pair.to_b(calls[0] + calls[1])) == 2
    pair.b.respond(2, "done")  # a slot is free again
    assert len(pair.to_b(calls[2])) == 1
    extra = pair.a.call(["x"], [], "async")[1]
    with pytest.raises(RemoteProtocolError) as info:
        pair.to_b(extra)
    assert info.value.reason is Reason.LIMIT


def test_stray_packets_are_ignored_then_limited() -> None:
    conn = RpcConnection(max_stray=5)
    conn.call(["x"], [], "duplex")
    strays = [
        js_packet(-9, False, False, "response to nothing"),
        js_packet(-9, True, False, "data on nothing"),
        js_packet(9, True, True, True),  # a late end of a forgotten stream
        js_packet(0, False, False, ["emit"]),  # a one-way message
        js_packet(-1, False, False, "async reply on a stream"),
    ]
    assert deliver(conn, b"".join(strays)) == []
    assert conn.is_open(1, True)
    with pytest.raises(RemoteProtocolError) as info:
        deliver(conn, js_packet(-9, True, True, True))
    assert info.value.reason is Reason.LIMIT


def test_packets_after_the_peer_ended_are_strays() -> None:
    pair = Pair(a=RpcConnection(max_stray=1))
    id, data = pair.a.call(["createHistoryStream"], [], "source")
    pair.to_b(data)
    end = pair.b.end(1, False)
    assert pair.to_a(end) == [StreamEnd(id, True, None)]
    assert pair.to_a(js_packet(-1, True, False, "late item")) == []
    with pytest.raises(RemoteProtocolError):
        pair.to_a(end)


def test_oversize_bodies_are_refused() -> None:
    conn = RpcConnection(max_body=100)
    with pytest.raises(RemoteProtocolError) as info:
        deliver(conn, js_packet(1, False, False, {"name": ["x"], "args": ["y" * 200]}))
    assert info.value.reason is Reason.LIMIT


# -- misuse by our own caller ---------------------------------------------------------------------


def test_local_misuse() -> None:
    conn = RpcConnection()
    with pytest.raises(LocalProtocolError):
        conn.call(["x"], [], "sync")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        conn.call([], [], "async")
    with pytest.raises(LocalProtocolError):
        conn.call(["x"], ("a",), "async")  # type: ignore[arg-type]
    id, _ = conn.call(["x"], [], "async")
    with pytest.raises(LocalProtocolError):
        conn.end(id, True)  # async calls have no end
    with pytest.raises(LocalProtocolError):
        conn.end(99, True)  # never made
    with pytest.raises(LocalProtocolError):
        conn.send(id, True, 1)
    with pytest.raises(LocalProtocolError):
        conn.respond(7, 1)
    with pytest.raises(LocalProtocolError):
        conn.send(7, False, 1)
    assert conn.end(7, False) == b""  # the peer's stream 7: unknown means already forgotten


def test_args_that_cannot_be_sent_use_no_request_number() -> None:
    conn = RpcConnection()
    with pytest.raises(LocalProtocolError):
        conn.call(["x"], [object()], "source")
    assert conn.call(["x"], [], "source")[0] == 1
    with pytest.raises(LocalProtocolError):
        conn.end(2, True)  # number 2 was never handed out


def test_a_value_that_cannot_be_sent_keeps_the_call_unanswered() -> None:
    conn = RpcConnection()
    deliver(conn, js_packet(1, False, False, {"name": ["x"], "args": []}))
    with pytest.raises(LocalProtocolError):
        conn.respond(1, b"")
    assert conn.is_open(1, False)
    assert conn.respond(1, b"\x00")[0] == 0x00


# -- properties -----------------------------------------------------------------------------------

BODIES = [
    {"name": ["whoami"], "args": []},
    {"name": "manifest", "args": []},
    {"name": ["createHistoryStream"], "args": [{}], "type": "source"},
    {"name": ["blobs", "add"], "args": [], "type": "sink"},
    {"name": ["ebt", "replicate"], "args": [{"version": 3}], "type": "duplex"},
    {"name": ["x"], "args": [], "type": "bogus"},
    {"name": 5, "args": []},
    {"message": "boom", "name": "Error", "stack": ""},
    True,
    False,
    None,
    "text",
    b"\x00bin",
    [1, 2],
]
raw_packets = st.builds(
    lambda number, stream, end, body: (
        js_packet(number, stream, end, body)
        if not isinstance(body, str) or body != "bad json"
        else encode_packet(Packet(number, stream, end, BodyType.JSON, b"{bad"))
    ),
    number=st.integers(-4, 4) | st.sampled_from([-(2**31), 2**31 - 1]),
    stream=st.booleans(),
    end=st.booleans(),
    body=st.sampled_from([*BODIES, *BODIES, *BODIES, "bad json"]),  # bad JSON ends it: rarely
)
call_types: st.SearchStrategy[CallType] = st.sampled_from(["async", "source", "sink", "duplex"])


def _react(conn: RpcConnection, event: object, choice: int) -> None:
    """A driver that answers, sends or ends at random, always through the public API."""
    if isinstance(event, Request | BadRequest):
        stream = event.stream if isinstance(event, BadRequest) else event.type != "async"
        if choice % 3 == 0:
            return
        if stream:
            conn.end(event.id, False, RpcError("x") if choice % 2 else None)
        else:
            conn.respond(event.id, choice)
    elif (
        isinstance(event, StreamData | StreamEnd)
        and choice % 2
        and conn.is_open(event.id, event.ours)
    ):
        conn.end(event.id, event.ours)


def _check_invariants(conn: RpcConnection, max_open: int) -> None:
    theirs = conn._theirs  # the documented invariants of the module docstring
    assert len(theirs) <= max_open
    for table in (conn._ours, theirs):
        for call in table.values():
            assert call.ours_open or call.theirs_open
            if not call.stream:
                assert call.ours_open != call.theirs_open


@settings(max_examples=300)
@given(
    st.lists(st.tuples(call_types, st.booleans()), max_size=6),
    st.lists(raw_packets, max_size=25),
    st.lists(st.integers(0, 11), min_size=1, max_size=10),
    st.integers(1, 64),
)
def test_any_state_and_packets_give_events_or_remote_errors(
    calls: list[tuple[CallType, bool]], packets: list[bytes], choices: list[int], step: int
) -> None:
    conn = RpcConnection(max_open=3, max_stray=20)
    for type, end_early in calls:
        id, _ = conn.call(["m"], [], type)
        if end_early and type != "async":
            conn.end(id, True)
    data = b"".join(packets)
    n = 0
    try:
        for i in range(0, len(data), step):
            conn.receive_data(data[i : i + step])
            while (event := conn.next_event()) is not NEED_DATA and event is not GOODBYE:
                _react(conn, event, choices[n % len(choices)])
                n += 1
                _check_invariants(conn, 3)
    except RemoteProtocolError:
        with pytest.raises(RemoteProtocolError):
            conn.next_event()


@given(st.binary(max_size=300))
def test_any_bytes_give_events_or_remote_errors(data: bytes) -> None:
    conn = RpcConnection(max_body=64)
    with contextlib.suppress(RemoteProtocolError):
        deliver(conn, data)


@given(st.lists(st.tuples(call_types, st.sampled_from([[], [1], [{"a": "é"}]])), max_size=6))
def test_every_call_arrives_as_the_request_that_was_made(
    calls: list[tuple[CallType, list[object]]],
) -> None:
    pair = Pair()
    wire = b"".join(pair.a.call(["p", "q"], args, type)[1] for type, args in calls)
    expected = [Request(i + 1, ["p", "q"], args, type) for i, (type, args) in enumerate(calls)]
    assert pair.to_b(wire) == expected


ITEMS_FROM: dict[str, tuple[bool, bool]] = {  # (caller sends items, callee sends items), §4.4
    "source": (False, True),
    "sink": (True, False),
    "duplex": (True, True),
}


@dataclass
class Side:
    """A well-behaved peer: its connection, what it may still do, what must still arrive."""

    conn: RpcConnection = field(default_factory=RpcConnection)
    inbox: bytearray = field(default_factory=bytearray)  # sent to this side, not yet delivered
    halves: dict[tuple[int, bool], bool] = field(default_factory=dict)  # open half -> sends items
    unanswered: list[int] = field(default_factory=list)
    expected: list[object] = field(default_factory=list)

    def receive(self) -> None:
        for event in deliver(self.conn, bytes(self.inbox)):
            assert self.expected and event == self.expected.pop(0)
            if isinstance(event, Request) and event.type == "async":
                self.unanswered.append(event.id)
            elif isinstance(event, Request):
                self.halves[event.id, False] = ITEMS_FROM[event.type][1]
        self.inbox.clear()


def _call(me: Side, peer: Side, type: CallType) -> None:
    id, wire = me.conn.call(["m"], [type], type)
    peer.expected.append(Request(id, ["m"], [type], type))
    if type != "async":
        me.halves[id, True] = ITEMS_FROM[type][0]
    peer.inbox += wire


def _send(me: Side, peer: Side, id: int, ours: bool, value: object) -> None:
    peer.inbox += me.conn.send(id, ours, value)
    peer.expected.append(StreamData(id, not ours, value))


def _end(me: Side, peer: Side, id: int, ours: bool, error: RpcError | None) -> None:
    peer.inbox += me.conn.end(id, ours, error)
    del me.halves[id, ours]
    peer.expected.append(StreamEnd(id, not ours, error))


def _answer(me: Side, peer: Side, index: int, ok: bool) -> None:
    id = me.unanswered.pop(index)
    if ok:
        peer.inbox += me.conn.respond(id, [id])
        peer.expected.append(Response(id, [id]))
    else:
        peer.inbox += me.conn.respond_error(id, RpcError("no"))
        peer.expected.append(ErrorResponse(id, RpcError("no")))


def _random_step(me: Side, peer: Side, data: st.DataObject) -> None:
    action = data.draw(st.sampled_from(["call", "send", "send", "end", "answer", "deliver"]))
    senders = sorted(k for k, items in me.halves.items() if items)
    if action == "call":
        _call(me, peer, data.draw(call_types))
    elif action == "send" and senders:
        id, ours = data.draw(st.sampled_from(senders))
        _send(me, peer, id, ours, data.draw(st.sampled_from([1, "s", b"b", {"k": [None]}, ""])))
    elif action == "end" and me.halves:
        id, ours = data.draw(st.sampled_from(sorted(me.halves)))
        _end(me, peer, id, ours, data.draw(st.sampled_from([None, RpcError("x", "AbortError")])))
    elif action == "answer" and me.unanswered:
        index = data.draw(st.integers(0, len(me.unanswered) - 1))
        _answer(me, peer, index, data.draw(st.booleans()))
    else:
        me.receive()


@settings(max_examples=200)
@given(st.data())
def test_two_well_behaved_peers_agree_and_forget_everything(data: st.DataObject) -> None:
    a, b = Side(), Side()
    for _ in range(data.draw(st.integers(0, 80))):
        _random_step(*data.draw(st.sampled_from([(a, b), (b, a)])), data)
    for _ in range(2):  # wind down: deliver, then end every half and answer every request
        for me, peer in ((a, b), (b, a)):
            me.receive()
            for id, ours in sorted(me.halves):
                _end(me, peer, id, ours, None)
            while me.unanswered:
                _answer(me, peer, 0, True)
    for side in (a, b):
        side.receive()
        assert side.expected == [] and side.halves == {} and side.unanswered == []
        # the module's invariants: every call forgotten, and no packet was a stray
        assert side.conn._ours == {} and side.conn._theirs == {} and side.conn._strays == 0
