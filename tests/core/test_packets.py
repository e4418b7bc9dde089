"""The packet-stream codec (PROTOCOL.md §4.1): header bytes by hand, feeding, bounds."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssbsync.core.errors import LocalProtocolError, Reason, RemoteProtocolError
from ssbsync.core.events import GOODBYE, NEED_DATA, Sentinel
from ssbsync.core.packets import (
    GOODBYE_BYTES,
    BodyType,
    Packet,
    PacketDecoder,
    decode_body,
    encode_body,
    encode_packet,
)

REQUEST = b'{"name":["whoami"],"args":[]}'


def _decode_all(data: bytes, step: int | None = None) -> list[Packet | Sentinel]:
    """Every event from `data` fed in chunks of `step` bytes (NEED_DATA left out)."""
    decoder = PacketDecoder()
    out: list[Packet | Sentinel] = []
    step = step or max(len(data), 1)
    for i in range(0, len(data), step):
        decoder.receive_data(data[i : i + step])
        while (event := decoder.next_event()) is not NEED_DATA:
            out.append(event)
            if event is GOODBYE:
                return out
    return out


# -- header layout, checked by hand against §4.1 -------------------------------------------------


def test_async_request_header_by_hand() -> None:
    packet = Packet(1, False, False, BodyType.JSON, REQUEST)
    assert encode_packet(packet) == b"\x02" + b"\x00\x00\x00\x1d" + b"\x00\x00\x00\x01" + REQUEST


def test_stream_end_from_the_callee_by_hand() -> None:
    # S=1 (0x08) | E=1 (0x04) | JSON (2) = 0x0e; number -3 as int32 big-endian
    packet = Packet(-3, True, True, BodyType.JSON, b"true")
    assert encode_packet(packet) == bytes.fromhex("0e 00000004 fffffffd") + b"true"


def test_lengths_are_big_endian_and_numbers_signed_int32() -> None:
    body = b"x" * 300
    packet = Packet(-(2**31), True, False, BodyType.BINARY, body)
    assert encode_packet(packet)[:9] == bytes.fromhex("08 0000012c 80000000")
    top = Packet(2**31 - 1, False, False, BodyType.STRING, b"s")
    assert encode_packet(top)[:9] == bytes.fromhex("01 00000001 7fffffff")


@pytest.mark.parametrize(
    ("stream", "end", "body_type"),
    list(itertools.product([False, True], [False, True], list(BodyType))),
)
def test_every_flag_combination_and_body_type(stream: bool, end: bool, body_type: BodyType) -> None:
    packet = Packet(-7 if end else 7, stream, end, body_type, b"[1]")
    data = encode_packet(packet)
    assert data[0] == (stream << 3) | (end << 2) | body_type
    assert _decode_all(data) == [packet]


def test_goodbye_is_nine_zero_bytes() -> None:
    assert bytes(9) == GOODBYE_BYTES


@pytest.mark.parametrize("number", [2**31, -(2**31) - 1])
def test_numbers_outside_int32_are_refused(number: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_packet(Packet(number, False, False, BodyType.JSON, b"1"))


def test_an_empty_body_is_never_encoded() -> None:
    with pytest.raises(LocalProtocolError):
        encode_packet(Packet(1, False, False, BodyType.BINARY, b""))


# -- bodies ---------------------------------------------------------------------------------------


def test_body_types_chosen_as_the_js_codec_chooses() -> None:
    assert encode_body(b"\x00\x01") == (BodyType.BINARY, b"\x00\x01")
    assert encode_body(bytearray(b"ab")) == (BodyType.BINARY, b"ab")
    assert encode_body("héllo") == (BodyType.STRING, "héllo".encode())
    assert encode_body(True) == (BodyType.JSON, b"true")
    assert encode_body(None) == (BodyType.JSON, b"null")
    assert encode_body(1.5) == (BodyType.JSON, b"1.5")
    assert encode_body({"b": [1, "é"], "1": 0}) == (BodyType.JSON, '{"1":0,"b":[1,"é"]}'.encode())


def test_empty_values_never_become_empty_bodies() -> None:
    assert encode_body("") == (BodyType.JSON, b'""')
    with pytest.raises(LocalProtocolError):
        encode_body(b"")


def test_lone_surrogates_are_sent_as_node_sends_them() -> None:
    assert encode_body("a\ud800") == (BodyType.STRING, "a\ufffd".encode())
    assert encode_body(["\ud800"]) == (BodyType.JSON, b'["\\ud800"]')


def test_values_that_are_not_json_are_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        encode_body({"x": object()})


def test_decode_body_by_type() -> None:
    assert decode_body(BodyType.JSON, b'{"a":[1,2.5,null]}') == {"a": [1, 2.5, None]}
    assert decode_body(BodyType.STRING, b"ok \xff") == "ok \ufffd"
    assert decode_body(BodyType.BINARY, b"\xff") == b"\xff"


@pytest.mark.parametrize("body", [b"{", b"NaN", b"tru", b"\xff", b"1 2"])
def test_bad_json_bodies_are_a_remote_error(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_body(BodyType.JSON, body)
    assert info.value.reason is Reason.BAD_PACKET


# -- feeding the decoder --------------------------------------------------------------------------

PACKETS = [
    Packet(1, False, False, BodyType.JSON, REQUEST),
    Packet(-1, False, False, BodyType.STRING, b"an invite code"),
    Packet(2, True, False, BodyType.BINARY, bytes(range(256))),
    Packet(-2, True, True, BodyType.JSON, b"true"),
]
WIRE = b"".join(encode_packet(p) for p in PACKETS)


@pytest.mark.parametrize("step", [None, 1, 2, 8, 9, 10, 100])
def test_decode_whole_and_in_chunks(step: int | None) -> None:
    assert _decode_all(WIRE + GOODBYE_BYTES, step) == [*PACKETS, GOODBYE]


def test_trailing_partial_frame_waits_for_more() -> None:
    decoder = PacketDecoder()
    decoder.receive_data(WIRE + b"\x02\x00\x00\x00\x05\x00\x00\x00\x09ab")
    assert [decoder.next_event() for _ in PACKETS] == PACKETS
    assert decoder.next_event() is NEED_DATA
    decoder.receive_data(b"cde")
    assert decoder.next_event() == Packet(9, False, False, BodyType.JSON, b"abcde")


def test_trailing_garbage_does_not_disturb_earlier_packets() -> None:
    decoder = PacketDecoder()
    decoder.receive_data(WIRE + b"\xff\xff")
    assert [decoder.next_event() for _ in PACKETS] == PACKETS
    assert decoder.next_event() is NEED_DATA  # only 2 bytes: not a header yet
    decoder.receive_data(b"\x00" * 7)
    with pytest.raises(RemoteProtocolError):  # 0xff flags: body type 3
        decoder.next_event()


def test_goodbye_is_sticky() -> None:
    decoder = PacketDecoder()
    decoder.receive_data(GOODBYE_BYTES)
    assert decoder.next_event() is GOODBYE
    assert decoder.next_event() is GOODBYE


@pytest.mark.parametrize("header", ["0e 00000000 00000005", "ff 00000000 ffffffff"])
def test_any_header_of_length_zero_is_goodbye(header: str) -> None:
    decoder = PacketDecoder()
    decoder.receive_data(bytes.fromhex(header))
    assert decoder.next_event() is GOODBYE


def test_data_after_goodbye_is_a_remote_error() -> None:
    decoder = PacketDecoder()
    decoder.receive_data(GOODBYE_BYTES)
    assert decoder.next_event() is GOODBYE
    decoder.receive_data(encode_packet(PACKETS[0]))
    with pytest.raises(RemoteProtocolError):
        decoder.next_event()


def test_body_type_3_is_refused_as_soon_as_the_header_is_in() -> None:
    decoder = PacketDecoder()
    decoder.receive_data(bytes.fromhex("03 00000010 00000001"))
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_event()
    assert info.value.reason is Reason.BAD_PACKET
    with pytest.raises(RemoteProtocolError):  # and again: no resynchronisation
        decoder.next_event()


def test_unused_flag_bits_are_ignored() -> None:
    decoder = PacketDecoder()
    decoder.receive_data(bytes.fromhex("fa 00000001 00000004") + b"7")
    assert decoder.next_event() == Packet(4, True, False, BodyType.JSON, b"7")


def test_oversize_body_is_refused_before_it_arrives() -> None:
    decoder = PacketDecoder(max_body=100)
    decoder.receive_data(bytes.fromhex("02 00000065 00000001"))  # 101 bytes announced
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_event()
    assert info.value.reason is Reason.LIMIT


def test_max_body_is_allowed() -> None:
    body = b"1" * 100
    assert _decode_all(encode_packet(Packet(1, False, False, BodyType.JSON, body)))[0] == Packet(
        1, False, False, BodyType.JSON, body
    )


def test_buffer_bound() -> None:
    decoder = PacketDecoder(max_body=10, max_buffer=30)
    decoder.receive_data(b"\x00" * 30)
    with pytest.raises(RemoteProtocolError) as info:
        decoder.receive_data(b"\x00")
    assert info.value.reason is Reason.LIMIT


def test_consumed_frames_free_buffer_space() -> None:
    frame = encode_packet(Packet(1, False, False, BodyType.JSON, b"12"))  # 11 bytes
    decoder = PacketDecoder(max_body=10, max_buffer=22)
    for _ in range(50):
        decoder.receive_data(frame + frame)
        assert decoder.next_event() == decoder.next_event() != NEED_DATA
        assert decoder.next_event() is NEED_DATA


def test_buffer_must_hold_one_frame() -> None:
    with pytest.raises(LocalProtocolError):
        PacketDecoder(max_body=100, max_buffer=100)


# -- properties -----------------------------------------------------------------------------------

packets = st.builds(
    Packet,
    number=st.integers(-(2**31), 2**31 - 1),
    stream=st.booleans(),
    end=st.booleans(),
    body_type=st.sampled_from(BodyType),
    body=st.binary(min_size=1, max_size=64),
)


@given(packets)
def test_decode_of_encode_is_identity(packet: Packet) -> None:
    assert _decode_all(encode_packet(packet)) == [packet]


@given(st.lists(packets, max_size=8), st.lists(st.integers(1, 40), min_size=1, max_size=20))
def test_chunking_never_changes_the_result(items: list[Packet], cuts: list[int]) -> None:
    data = b"".join(encode_packet(p) for p in items) + GOODBYE_BYTES
    decoder = PacketDecoder()
    out: list[Packet | Sentinel] = []
    pos = 0
    for size in itertools.cycle(cuts):
        if pos >= len(data):
            break
        decoder.receive_data(data[pos : pos + size])
        pos += size
        while (event := decoder.next_event()) is not NEED_DATA and event is not GOODBYE:
            out.append(event)
    assert out == items
    assert decoder.next_event() is GOODBYE


@given(st.binary(max_size=200), st.integers(1, 30))
def test_any_bytes_raise_only_remote_protocol_error(data: bytes, step: int) -> None:
    decoder = PacketDecoder(max_body=64, max_buffer=128)
    try:
        for i in range(0, len(data), step):
            decoder.receive_data(data[i : i + step])
            while decoder.next_event() not in (NEED_DATA, GOODBYE):
                pass
    except RemoteProtocolError:
        pass


@given(st.sampled_from(BodyType), st.binary(max_size=64))
def test_any_body_decodes_or_raises_remote_protocol_error(body_type: BodyType, body: bytes) -> None:
    try:
        decode_body(body_type, body)
    except RemoteProtocolError as err:
        assert body_type is BodyType.JSON and err.reason is Reason.BAD_PACKET
