"""Box-stream (PROTOCOL.md §3): the vector, round trips, nonces, damage and bounds.

box-stream-vector.json is a GPL-3.0 transcription kept in ../shared/vectors (never copied here).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl import bindings

from ssbsync.core.boxstream import MAX_BODY, BoxStreamDecoder, BoxStreamEncoder
from ssbsync.core.errors import LocalProtocolError, Reason, RemoteProtocolError
from ssbsync.core.events import GOODBYE, NEED_DATA, Sentinel
from ssbsync.core.keys import Keypair
from ssbsync.core.shs import BoxKeys, ClientHandshake, ServerHandshake
from tests.conftest import load_shared_vector

KEYS = BoxKeys(bytes(range(32)), bytes(range(100, 124)))
TOP_NONCE = b"\xff" * 24  # 2**192 - 1


def _events(decoder: BoxStreamDecoder) -> list[bytes | Sentinel]:
    """Every event until NEED_DATA, or up to and including GOODBYE."""
    out: list[bytes | Sentinel] = []
    while True:
        event = decoder.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)
        if event is GOODBYE:
            return out


def _decode(wire: bytes, chunks: list[int], keys: BoxKeys = KEYS) -> list[bytes | Sentinel]:
    decoder = BoxStreamDecoder(keys)
    out: list[bytes | Sentinel] = []
    start = 0
    for size in chunks:
        if start >= len(wire):
            break
        decoder.receive_data(wire[start : start + size])
        start += size
        out += _events(decoder)
    assert start >= len(wire)
    return out


def _random_chunks(total: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(rng.randint(1, 9000))
    return sizes


def _plain(events: list[bytes | Sentinel]) -> bytes:
    assert events[-1] is GOODBYE
    assert all(isinstance(e, bytes) for e in events[:-1])
    return b"".join(e for e in events[:-1] if isinstance(e, bytes))


def _nonce(n: int) -> bytes:
    return (n % (1 << 192)).to_bytes(24, "big")


def _open(box: bytes, nonce: bytes, key: bytes = KEYS.key) -> bytes:
    plain: bytes = bindings.crypto_secretbox_open_easy(box, nonce, key)
    return plain


# -- the vector (AljoschaMeyer/box-stream src/test.c, transcribed) ----------------------------


def _vector() -> tuple[dict[str, Any], BoxKeys]:
    v: dict[str, Any] = load_shared_vector("box-stream-vector.json")
    return v, BoxKeys(bytes.fromhex(v["key"]), bytes.fromhex(v["starting_nonce"]))


def test_vector_encrypts_exactly() -> None:
    v, keys = _vector()
    encoder = BoxStreamEncoder(keys)
    wire = b""
    for message in v["messages"]:
        box = encoder.encode(bytes.fromhex(message["plaintext"]))
        expected = bytes.fromhex(message["encrypted_header"] + message["encrypted_body"])
        assert box == expected
        wire += box
    goodbye = encoder.goodbye()
    assert goodbye == bytes.fromhex(v["goodbye_header"])
    assert wire + goodbye == bytes.fromhex(v["wire_bytes"])


def test_vector_nonces() -> None:
    v, keys = _vector()
    assert bytes.fromhex(v["messages"][0]["header_nonce"]) == keys.nonce
    goodbye = bytes.fromhex(v["goodbye_header"])
    assert _open(goodbye, bytes.fromhex(v["goodbye_nonce"]), keys.key) == bytes(18)
    start = int.from_bytes(keys.nonce, "big")
    assert bytes.fromhex(v["goodbye_nonce"]) == _nonce(start + 4)


@pytest.mark.parametrize("chunking", ["whole", "bytewise", "random"])
def test_vector_decrypts(chunking: str) -> None:
    v, keys = _vector()
    wire = bytes.fromhex(v["wire_bytes"])
    chunks = {"whole": [len(wire)], "bytewise": [1] * len(wire)}.get(chunking)
    events = _decode(wire, chunks or _random_chunks(len(wire), 7), keys)
    assert events == [bytes.fromhex(m["plaintext"]) for m in v["messages"]] + [GOODBYE]


def test_shs_vector_session_drives_the_box_stream_vector() -> None:
    """The box-stream vector's key/nonce are the SHS vector client's send keys."""
    h = load_shared_vector("shs1-handshake-vector.json")
    v, _ = _vector()

    def b(name: str) -> bytes:
        return bytes.fromhex(h[name])

    alice = Keypair(b("client_longterm_pk"), b("client_longterm_sk"))
    bob = Keypair(b("server_longterm_pk"), b("server_longterm_sk"))
    client = ClientHandshake(b("network_identifier"), alice, bob.public, b("client_ephemeral_sk"))
    server = ServerHandshake(b("network_identifier"), bob, b("server_ephemeral_sk"))
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    assert client.session is not None and server.session is not None
    encoder = BoxStreamEncoder(client.session.send)
    wire = b"".join(encoder.encode(bytes.fromhex(m["plaintext"])) for m in v["messages"])
    assert wire + encoder.goodbye() == bytes.fromhex(v["wire_bytes"])
    decoder = BoxStreamDecoder(server.session.receive)
    decoder.receive_data(bytes.fromhex(v["wire_bytes"]))
    assert _events(decoder)[-1] is GOODBYE


# -- round trips ------------------------------------------------------------------------------

SIZES = [0, 1, 4095, 4096, 4097, 100000]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("chunking", ["whole", "bytewise", "random"])
def test_round_trip(size: int, chunking: str) -> None:
    data = random.Random(size).randbytes(size)
    encoder = BoxStreamEncoder(KEYS)
    wire = encoder.encode(data) + encoder.goodbye()
    boxes = -(-size // MAX_BODY)
    assert len(wire) == size + 34 * boxes + 34
    chunks = {"whole": [len(wire)], "bytewise": [1] * len(wire)}.get(chunking)
    events = _decode(wire, chunks or _random_chunks(len(wire), size))
    assert _plain(events) == data
    assert [len(e) for e in events[:-1] if isinstance(e, bytes)] == [
        min(MAX_BODY, size - i) for i in range(0, size, MAX_BODY)
    ]


def test_empty_data_makes_no_box() -> None:
    encoder = BoxStreamEncoder(KEYS)
    assert encoder.encode(b"") == b""
    # ...and uses no nonce: the next box is the first one.
    assert encoder.encode(b"x") == BoxStreamEncoder(KEYS).encode(b"x")


def test_many_writes_decode_in_order() -> None:
    encoder = BoxStreamEncoder(KEYS)
    messages = [bytes([i]) * (i * 37 % 5000 + 1) for i in range(60)]
    wire = b"".join(encoder.encode(m) for m in messages) + encoder.goodbye()
    assert _plain(_decode(wire, _random_chunks(len(wire), 3))) == b"".join(messages)


@given(st.lists(st.binary(max_size=9000), max_size=5), st.integers(1, 5000))
def test_decode_of_encode_is_identity(writes: list[bytes], chunk: int) -> None:
    encoder = BoxStreamEncoder(KEYS)
    wire = b"".join(encoder.encode(w) for w in writes) + encoder.goodbye()
    chunks = [chunk] * (len(wire) // chunk + 1)
    assert _plain(_decode(wire, chunks)) == b"".join(writes)


# -- nonces -----------------------------------------------------------------------------------


def test_header_uses_n_body_n_plus_1_next_header_n_plus_2() -> None:
    encoder = BoxStreamEncoder(KEYS)
    first, second = encoder.encode(b"abc"), encoder.encode(b"defg")
    n = int.from_bytes(KEYS.nonce, "big")
    header = _open(first[:34], _nonce(n))
    assert header[:2] == b"\x00\x03"
    assert _open(header[2:] + first[34:], _nonce(n + 1)) == b"abc"
    assert _open(second[:34], _nonce(n + 2))[:2] == b"\x00\x04"
    assert _open(encoder.goodbye(), _nonce(n + 4)) == bytes(18)


def test_nonce_wraps_around_at_2_192() -> None:
    keys = BoxKeys(KEYS.key, TOP_NONCE)
    encoder = BoxStreamEncoder(keys)
    first, second = encoder.encode(b"abc"), encoder.encode(b"def")
    header = _open(first[:34], TOP_NONCE)
    assert _open(header[2:] + first[34:], bytes(24)) == b"abc"  # n+1 wrapped to zero
    assert _open(second[:34], _nonce(1))[:2] == b"\x00\x03"
    assert _open(encoder.goodbye(), _nonce(3)) == bytes(18)
    wire = first + second + BoxStreamEncoder(BoxKeys(KEYS.key, _nonce(3))).goodbye()
    assert _decode(wire, [len(wire)], keys) == [b"abc", b"def", GOODBYE]


def test_nonce_wraps_on_the_header_too() -> None:
    keys = BoxKeys(KEYS.key, _nonce((1 << 192) - 2))
    encoder = BoxStreamEncoder(keys)
    wire = encoder.encode(b"a" * 5000) + encoder.goodbye()
    assert _open(wire[-34:], _nonce(2)) == bytes(18)
    assert _plain(_decode(wire, [len(wire)], keys)) == b"a" * 5000


# -- goodbye and what may follow it ----------------------------------------------------------


def test_goodbye_is_detected_and_sticks() -> None:
    decoder = BoxStreamDecoder(KEYS)
    assert decoder.next_event() is NEED_DATA
    decoder.receive_data(BoxStreamEncoder(KEYS).goodbye())
    assert decoder.next_event() is GOODBYE
    assert decoder.next_event() is GOODBYE


def test_encoder_refuses_after_goodbye() -> None:
    encoder = BoxStreamEncoder(KEYS)
    assert len(encoder.goodbye()) == 34
    with pytest.raises(LocalProtocolError):
        encoder.encode(b"late")
    with pytest.raises(LocalProtocolError):
        encoder.goodbye()


@pytest.mark.parametrize("together", [True, False])
def test_data_after_goodbye_is_an_error(together: bool) -> None:
    encoder = BoxStreamEncoder(KEYS)
    goodbye = encoder.goodbye()
    after = BoxStreamEncoder(BoxKeys(KEYS.key, _nonce(int.from_bytes(KEYS.nonce, "big") + 2)))
    decoder = BoxStreamDecoder(KEYS)
    trailing = after.encode(b"sneaky")
    decoder.receive_data(goodbye + trailing if together else goodbye)
    assert decoder.next_event() is GOODBYE
    if not together:
        decoder.receive_data(trailing)
    with pytest.raises(RemoteProtocolError, match="after the goodbye") as info:
        decoder.next_event()
    assert info.value.reason is Reason.BAD_BOX


# -- damage and bounds ------------------------------------------------------------------------


def test_any_flipped_bit_in_header_or_body_is_rejected() -> None:
    encoder = BoxStreamEncoder(KEYS)
    wire = encoder.encode(b"0123456789") + encoder.encode(b"x")
    for position in range(34 + 10):
        for bit in (0x01, 0x80):
            damaged = bytearray(wire)
            damaged[position] ^= bit
            decoder = BoxStreamDecoder(KEYS)
            decoder.receive_data(bytes(damaged))
            with pytest.raises(RemoteProtocolError) as info:
                _events(decoder)
            assert info.value.reason is Reason.BAD_BOX
            what = "header" if position < 34 else "body"
            assert what in info.value.detail


def test_a_box_replayed_or_reordered_is_rejected() -> None:
    encoder = BoxStreamEncoder(KEYS)
    first, second = encoder.encode(b"one"), encoder.encode(b"two")
    for wire in (first + first, second + first):
        decoder = BoxStreamDecoder(KEYS)
        decoder.receive_data(wire)
        with pytest.raises(RemoteProtocolError, match="header"):
            _events(decoder)


def _crafted_header(length: int, mac: bytes = b"\x01" * 16) -> bytes:
    box: bytes = bindings.crypto_secretbox_easy(
        length.to_bytes(2, "big") + mac, KEYS.nonce, KEYS.key
    )
    return box


@pytest.mark.parametrize("length", [4097, 0xFFFF, 0])
def test_body_length_outside_1_to_4096_is_rejected(length: int) -> None:
    decoder = BoxStreamDecoder(KEYS)
    decoder.receive_data(_crafted_header(length))  # rejected before any body arrives
    with pytest.raises(RemoteProtocolError, match=f"length {length}") as info:
        decoder.next_event()
    assert info.value.reason is Reason.BAD_BOX


def test_errors_are_final() -> None:
    decoder = BoxStreamDecoder(KEYS)
    decoder.receive_data(bytes(34))
    with pytest.raises(RemoteProtocolError, match="header"):
        decoder.next_event()
    with pytest.raises(RemoteProtocolError, match="header"):
        decoder.next_event()
    with pytest.raises(RemoteProtocolError, match="header"):
        decoder.receive_data(b"")


def test_buffer_is_bounded() -> None:
    decoder = BoxStreamDecoder(KEYS, max_buffer=10_000)
    decoder.receive_data(bytes(10_000))
    with pytest.raises(RemoteProtocolError) as info:
        decoder.receive_data(b"\x00")
    assert info.value.reason is Reason.LIMIT
    with pytest.raises(LocalProtocolError):
        BoxStreamDecoder(KEYS, max_buffer=4000)  # could never hold a full box


def test_decoded_bytes_free_the_buffer() -> None:
    encoder = BoxStreamEncoder(KEYS)
    decoder = BoxStreamDecoder(KEYS, max_buffer=34 + MAX_BODY)
    for _ in range(50):
        decoder.receive_data(encoder.encode(bytes(MAX_BODY)))
        assert decoder.next_event() == bytes(MAX_BODY)


def test_bad_keys_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        BoxStreamEncoder(BoxKeys(bytes(31), bytes(24)))
    with pytest.raises(LocalProtocolError):
        BoxStreamDecoder(BoxKeys(bytes(32), bytes(23)))


# -- any bytes at all -------------------------------------------------------------------------

_VALID_PREFIX = BoxStreamEncoder(KEYS).encode(b"hello" * 1000)


@given(st.booleans(), st.binary(max_size=600), st.integers(1, 300))
def test_random_bytes_into_a_decoder_only_raise_remote_errors(
    valid_prefix: bool, junk: bytes, chunk: int
) -> None:
    decoder = BoxStreamDecoder(KEYS)
    data = (_VALID_PREFIX if valid_prefix else b"") + junk
    try:
        for start in range(0, len(data), chunk):
            decoder.receive_data(data[start : start + chunk])
            _events(decoder)
    except RemoteProtocolError:
        return
