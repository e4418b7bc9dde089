"""LAN beacons and the heard-peers table (PROTOCOL.md §11).

The two golden payloads were produced by the JS code ssb-server 16.0.1 installs (its
npm-shrinkwrap; the refpeer cache of tests/interop): the plain one is
`MultiServer([[Net({host: "192.168.1.5", port: 8008, scope: ["local"]}), Shs], [WS({…8989…}),
Shs]]).stringify("local")` of multiserver 3.8.2 — what ssb-local broadcasts for a default
ssb-config on a LAN (`getAddress("private")` is empty, so `getAddress("local")`); the ssb-lan
one is `secretBox({address}, caps) ‖ signObj(keys, {address}).signature` of ssb-keys 7.2.2
(what ssb-lan `writeNormal` sends), with `keys = generate("ed25519", 32 bytes of 7)`.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.secret import SecretBox
from nacl.signing import VerifyKey

from ssbsync.core import jsonv8
from ssbsync.core.keys import Keypair
from ssbsync.core.lan import (
    MAX_BEACON,
    Beacon,
    BeaconError,
    BeaconReason,
    LanPeers,
    beacon_address,
    decode_lan_beacon,
    decode_plain_beacon,
    encode_lan_beacon,
    encode_plain_beacon,
)

CAPS = base64.b64decode("1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s=")
OTHER_CAPS = bytes(range(32))
KEYS = Keypair.from_seed(bytes([7]) * 32)
KEY = "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw="
ADDRESS = f"net:192.168.1.5:8008~shs:{KEY}"
SSB_SERVER_BEACON = f"{ADDRESS};ws://192.168.1.5:8989~shs:{KEY}".encode()
SSB_LAN_BEACON = base64.b64decode(
    "1Eq7YqFjrzQbu9gk7e7rG88xNaN++EnhWJLH2I5H9nOv4bFzjk+3+pJIlH/Zp3pX02o9XchozIM2Qgm7IF0rf5lef/0G"
    "9lqeeoi9Qmt/+kyz5/HVF9qUVoW+1T0P9xTVweJIuf+rcbm3YmUu2mD1JL7r5ywpz+h1WtjRam2dy75brN7BW6DU95Ey"
    "QPDNFiAvxVwUrBZm3Ni21Lnf9SiGt6C+AQ=="
)


def reason_of(payload: bytes, lan: bool = False) -> BeaconReason:
    with pytest.raises(BeaconError) as caught:
        decode_lan_beacon(payload, CAPS) if lan else decode_plain_beacon(payload)
    return caught.value.reason


# -- plain beacons -------------------------------------------------------------------------


def test_key_matches_the_js_vectors() -> None:
    assert KEYS.id == f"@{KEY}.ed25519"


def test_plain_beacon_is_the_bytes_ssb_server_sends() -> None:
    ws = f"ws://192.168.1.5:8989~shs:{KEY}"
    assert encode_plain_beacon([ADDRESS, ws]) == SSB_SERVER_BEACON
    beacon = decode_plain_beacon(SSB_SERVER_BEACON)
    assert str(beacon.address) == ADDRESS
    assert beacon.feed == KEYS.id
    assert (beacon.text, beacon.verified, beacon.format) == (
        SSB_SERVER_BEACON.decode(),
        False,
        "plain",
    )


def test_plain_round_trip() -> None:
    beacon = decode_plain_beacon(encode_plain_beacon([ADDRESS]))
    assert beacon == Beacon(beacon_address(ADDRESS), ADDRESS, False, "plain")


@pytest.mark.parametrize(
    "text",
    [
        f"ws://192.168.1.5:8989~shs:{KEY};{ADDRESS}",  # the first *net* one is taken
        f"unix:/tmp/socket~noauth;onion:xyz.onion:8008~shs:{KEY};{ADDRESS}",
        f"net:192.168.1.5:8008~noauth;{ADDRESS}",
        f" {ADDRESS}\n",
        f"{ADDRESS};net:10.0.0.1:9~shs:{KEY}",
        f"serial:/dev/ttyS0~shs:{KEY};unix:/tmp/socket~shs:{KEY};{ADDRESS}",
    ],
)
def test_multi_address_beacons_give_the_first_usable_net_shs(text: str) -> None:
    assert str(decode_plain_beacon(text.encode()).address) == ADDRESS


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        (f"192.168.1.5:8008:@{KEY}.ed25519", "192.168.1.5", 8008),
        (f"laptop.local:9000:@{KEY}.ed25519", "laptop.local", 9000),
        (f"fe80::1:8008:@{KEY}.ed25519", "fe80::1", 8008),  # split from the right
        (f"192.168.1.5::@{KEY}.ed25519", "192.168.1.5", 8008),  # ssb-ref's default port
    ],
)
def test_legacy_form(text: str, host: str, port: int) -> None:
    beacon = decode_plain_beacon(text.encode())
    assert (beacon.address.host, beacon.address.port, beacon.feed) == (host, port, KEYS.id)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"hello",
        f"net:192.168.1.5:8008~shs:{KEY[:-2]}".encode(),  # a truncated key
        f"net:192.168.1.5:99999~shs:{KEY}".encode(),
        f"net:bad host:8008~shs:{KEY}".encode(),
        f"ws://192.168.1.5:8989~shs:{KEY}".encode(),  # nothing we can dial
        b"unix:/tmp/socket~noauth",
        f"unix:/tmp/socket~shs:{KEY}".encode(),  # a beacon never opens a local socket …
        f"serial:/dev/ttyUSB0~shs:{KEY}".encode(),  # … nor a serial device
        f"192.168.1.5:8008:{KEY}".encode(),  # legacy without @….ed25519
        f"192.168.1.5:port:@{KEY}.ed25519".encode(),
    ],
)
def test_plain_without_address(payload: bytes) -> None:
    assert reason_of(payload) == BeaconReason.NO_ADDRESS


def test_plain_bad_utf8_and_size() -> None:
    assert reason_of(b"net:\xff\xfe") == BeaconReason.NOT_UTF8
    assert reason_of(SSB_SERVER_BEACON + b";" + b"x" * MAX_BEACON) == BeaconReason.TOO_LARGE
    with pytest.raises(ValueError, match="over"):
        encode_plain_beacon([ADDRESS] * 40)
    with pytest.raises(ValueError, match="without ';'"):
        encode_plain_beacon([f"{ADDRESS};{ADDRESS}"])


# -- ssb-lan beacons -----------------------------------------------------------------------


def test_lan_beacon_is_the_bytes_ssb_lan_sends() -> None:
    assert encode_lan_beacon(ADDRESS, KEYS, CAPS) == SSB_LAN_BEACON
    beacon = decode_lan_beacon(SSB_LAN_BEACON, CAPS)
    assert beacon == Beacon(beacon_address(ADDRESS), ADDRESS, True, "lan")


def test_lan_beacon_checked_independently() -> None:
    address = f"net:10.1.2.3:8008~shs:{KEY};ws://10.1.2.3:8989~shs:{KEY}"
    payload = encode_lan_beacon(address, KEYS, CAPS)
    box, signature = payload[:-64], payload[-64:]
    plain = SecretBox(CAPS).decrypt(box, CAPS[:24])
    assert plain == b'{"address":"' + address.encode() + b'"}'
    pretty = '{\n  "address": "' + address + '"\n}'
    VerifyKey(KEYS.public).verify(pretty.encode(), signature)  # raises if wrong
    assert decode_lan_beacon(payload, CAPS).text == address


def test_lan_beacon_with_non_ascii_is_signed_over_v8_json() -> None:
    address = f'net:192.168.1.5:8008~shs:{KEY};x:"ü\u2028'
    payload = encode_lan_beacon(address, KEYS, CAPS)
    pretty = jsonv8.stringify_pretty({"address": address}).encode()
    VerifyKey(KEYS.public).verify(pretty, payload[-64:])
    assert decode_lan_beacon(payload, CAPS).text == address


def test_wrong_network_key() -> None:
    assert reason_of(encode_lan_beacon(ADDRESS, KEYS, OTHER_CAPS), lan=True) == (
        BeaconReason.WRONG_NETWORK_KEY
    )


def test_signed_by_someone_else() -> None:
    mallory = Keypair.from_seed(bytes([9]) * 32)
    forged = encode_lan_beacon(ADDRESS, mallory, CAPS)  # claims KEYS's address
    assert reason_of(forged, lan=True) == BeaconReason.BAD_SIGNATURE


@pytest.mark.parametrize("index", [0, 5, 40, len(SSB_LAN_BEACON) - 64, len(SSB_LAN_BEACON) - 1])
def test_flipped_bits(index: int) -> None:
    damaged = bytearray(SSB_LAN_BEACON)
    damaged[index] ^= 0x10
    in_box = index < len(SSB_LAN_BEACON) - 64
    expected = BeaconReason.WRONG_NETWORK_KEY if in_box else BeaconReason.BAD_SIGNATURE
    assert reason_of(bytes(damaged), lan=True) == expected


def _boxed(plain: bytes) -> bytes:
    return bytes(SecretBox(CAPS).encrypt(plain, CAPS[:24]).ciphertext) + bytes(64)


@pytest.mark.parametrize(
    ("plain", "reason"),
    [
        (b"\xff\xfe", BeaconReason.NOT_UTF8),
        (b"not json", BeaconReason.NO_ADDRESS),
        (b'["net:1.2.3.4:1~shs:x"]', BeaconReason.NO_ADDRESS),
        (b'{"address": 7}', BeaconReason.NO_ADDRESS),
        (b'{"address": "hello"}', BeaconReason.NO_ADDRESS),
        (f'{{"address": "{ADDRESS}"}}'.encode(), BeaconReason.BAD_SIGNATURE),  # zero signature
    ],
)
def test_lan_box_contents(plain: bytes, reason: BeaconReason) -> None:
    assert reason_of(_boxed(plain), lan=True) == reason


def test_lan_sizes() -> None:
    assert reason_of(SSB_LAN_BEACON[:79], lan=True) == BeaconReason.TOO_SHORT
    assert reason_of(bytes(MAX_BEACON + 1), lan=True) == BeaconReason.TOO_LARGE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MAX_BEACON + 50))
def test_any_bytes_raise_only_beacon_error(payload: bytes) -> None:
    for decode in (decode_plain_beacon, lambda p: decode_lan_beacon(p, CAPS)):
        try:
            beacon = decode(payload)
        except BeaconError as err:
            assert isinstance(err.reason, BeaconReason)
        else:
            assert beacon.address.kind == "net" and beacon.address.key is not None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_raises_only_beacon_error(text: str) -> None:
    try:
        decode_plain_beacon(text.encode("utf-8", errors="replace"))
    except BeaconError as err:
        assert isinstance(err.reason, BeaconReason)
    unsigned = _boxed(jsonv8.utf8_bytes(jsonv8.stringify({"address": text})))
    with pytest.raises(BeaconError):  # a zero signature never verifies
        decode_lan_beacon(unsigned, CAPS)


# -- the heard-peers table -----------------------------------------------------------------


def _plain(host: str, keys: Keypair = KEYS) -> Beacon:
    key = base64.b64encode(keys.public).decode()
    return decode_plain_beacon(f"net:{host}:8008~shs:{key}".encode())


def test_heard_and_expired() -> None:
    peers = LanPeers(expiry=10.0)
    a, b = _plain("10.0.0.1"), _plain("10.0.0.2", Keypair.from_seed(bytes([1]) * 32))
    assert peers.heard(a, 100.0) is True
    assert peers.heard(a, 101.0) is False  # heard again: not new
    assert peers.heard(b, 105.0) is True
    assert peers.expire(111.0) == []  # a last heard at 101: 10 s is not more than 10 s
    assert peers.expire(111.5) == [a]
    assert list(peers.peers) == [str(b.address)]
    assert peers.heard(a, 112.0) is True  # back again: new again
    assert peers.forget_all() == [b, a] and not peers.peers


def test_a_new_address_of_the_same_key_is_new() -> None:
    peers = LanPeers()
    assert peers.heard(_plain("10.0.0.1"), 1.0) is True
    assert peers.heard(_plain("10.0.0.9"), 2.0) is True
    assert peers.heard(decode_lan_beacon(SSB_LAN_BEACON, CAPS), 3.0) is True


def test_a_verified_beacon_is_kept_over_a_plain_one() -> None:
    peers = LanPeers()
    lan = decode_lan_beacon(SSB_LAN_BEACON, CAPS)
    plain = decode_plain_beacon(SSB_SERVER_BEACON)
    assert str(lan.address) == str(plain.address)
    peers.heard(plain, 1.0)
    peers.heard(lan, 2.0)
    peers.heard(plain, 3.0)
    heard = peers.peers[str(lan.address)]
    assert (heard.beacon, heard.first, heard.last) == (lan, 1.0, 3.0)


def test_the_table_is_bounded_and_drops_are_counted() -> None:
    peers = LanPeers(limit=3)
    for i in range(5):
        peers.heard(_plain(f"10.0.0.{i}"), 1.0)
    peers.drop(BeaconReason.BAD_SIGNATURE)
    assert len(peers.peers) == 3
    assert peers.dropped == {"too many peers": 2, "bad signature": 1}
