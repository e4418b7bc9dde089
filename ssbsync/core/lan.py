"""LAN discovery beacons and the table of peers heard on the LAN (PROTOCOL.md §11).

Two beacon formats are in use:

* **plain** (ssb-local in ssb-server 16, ssb-lan's legacy mode; UDP port = the net port,
  8008 by default): the UTF-8 text of the announcer's multiserver address list
  (`net:IP:PORT~shs:KEY`, maybe `;ws://…`), or the older `host:port:@key.ed25519`. Unsigned:
  anyone can announce any address, which costs us at most a failed handshake, since the
  handshake proves the key (§2).
* **lan** (ssb-lan's normal mode; UDP 26830): `secretbox(JSON.stringify({address}),
  nonce = caps[0:24], key = caps)` followed by the raw 64-byte Ed25519 signature, by the key
  in the address, of `JSON.stringify({address}, null, 2)` (ssb-keys `signObj`). Only nodes of
  the same network can read it, and only the address's owner can have made it.

Decoders take bytes from anyone on the segment: they raise only `BeaconError`, whose `reason`
says what was wrong so that the node can count rejections by kind. `LanPeers` remembers who
was heard when and forgets a peer not heard for 10 s (ssb-local's expiry). Sans-IO: the time
is passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from nacl import bindings
from nacl.exceptions import CryptoError

from ssbsync.core import jsonv8
from ssbsync.core.address import Address, AddressError
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId, is_feed_id
from ssbsync.core.schedule import parse_peer_address

LAN_PORT = 26830  # ssb-lan's port for the encrypted, signed beacon (ssb-lan `port.js`)
MAX_BEACON = 2048  # bytes; a real beacon is ~100 (one address) to ~300 (a few); more is junk
EXPIRY = 10.0  # seconds a heard peer is remembered without another beacon (ssb-local)
MAX_LAN_PEERS = 256  # addresses remembered at once; a flood of fake ones cannot grow us more
SIGNATURE_BYTES = 64
_BOX_OVERHEAD = 16  # the secretbox MAC
_NONCE_BYTES = 24

BeaconFormat = Literal["plain", "lan"]


class BeaconReason(enum.StrEnum):
    """Why a beacon was dropped (the keys of `LanPeers.dropped` and of the node's status)."""

    TOO_LARGE = "too large"
    TOO_SHORT = "too short"
    NOT_UTF8 = "not utf-8"
    NO_ADDRESS = "no address"
    WRONG_NETWORK_KEY = "wrong network key"
    BAD_SIGNATURE = "bad signature"
    TOO_MANY_PEERS = "too many peers"


class BeaconError(ValueError):
    """A datagram that is not a beacon we can use; `reason` is machine-readable."""

    def __init__(self, reason: BeaconReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Beacon:
    """A usable beacon: the address to dial (net + shs, so it names the peer's key)."""

    address: Address
    text: str  # the announced text (plain) or the decrypted address string (lan)
    verified: bool  # signed by the key in the address (lan beacons only)
    format: BeaconFormat

    @property
    def feed(self) -> FeedId:
        feed = self.address.feed
        assert feed is not None, "a beacon address always has a key"
        return feed


# -- encoding ------------------------------------------------------------------------------


def encode_plain_beacon(addresses: Sequence[str]) -> bytes:
    """The ssb-local payload: the addresses, `;`-separated, as UTF-8."""
    if not addresses or any(not a or ";" in a for a in addresses):
        raise ValueError(f"a beacon needs addresses without ';', got {list(addresses)!r}")
    payload = ";".join(addresses).encode("utf-8")
    if len(payload) > MAX_BEACON:
        raise ValueError(f"a beacon of {len(payload)} bytes is over {MAX_BEACON}")
    return payload


def encode_lan_beacon(address: str, keys: Keypair, network_key: bytes) -> bytes:
    """The ssb-lan payload: secretbox of `{"address": …}` under the network key, then the
    signature of its pretty JSON (what ssb-keys `secretBox` and `signObj` produce)."""
    plain = jsonv8.utf8_bytes(jsonv8.stringify({"address": address}))
    box: bytes = bindings.crypto_secretbox(plain, network_key[:_NONCE_BYTES], network_key)
    payload = box + keys.sign(_signed_text(address))
    if len(payload) > MAX_BEACON:
        raise ValueError(f"a beacon of {len(payload)} bytes is over {MAX_BEACON}")
    return payload


def _signed_text(address: str) -> bytes:
    return jsonv8.utf8_bytes(jsonv8.stringify_pretty({"address": address}))


# -- decoding ------------------------------------------------------------------------------


def decode_plain_beacon(payload: bytes) -> Beacon:
    """A beacon from the plain port (ssb-local / ssb-lan legacy)."""
    _check_size(payload)
    text = _utf8(payload)
    return Beacon(beacon_address(text), text, verified=False, format="plain")


def decode_lan_beacon(payload: bytes, network_key: bytes) -> Beacon:
    """A beacon from port 26830: readable only with our network key, signed by its owner."""
    _check_size(payload)
    if len(payload) < _BOX_OVERHEAD + SIGNATURE_BYTES:
        raise BeaconError(BeaconReason.TOO_SHORT, f"{len(payload)} bytes")
    box, signature = payload[:-SIGNATURE_BYTES], payload[-SIGNATURE_BYTES:]
    try:
        plain = bindings.crypto_secretbox_open(box, network_key[:_NONCE_BYTES], network_key)
    except CryptoError:
        raise BeaconError(
            BeaconReason.WRONG_NETWORK_KEY, "it does not open with our network key"
        ) from None
    text = _utf8(plain)
    try:
        body = jsonv8.parse(text)
    except jsonv8.JSONParseError:
        raise BeaconError(BeaconReason.NO_ADDRESS, "the box holds no JSON") from None
    address_text = body.get("address") if isinstance(body, dict) else None
    if not isinstance(address_text, str):
        raise BeaconError(BeaconReason.NO_ADDRESS, "the box holds no {address} string")
    address = beacon_address(address_text)
    try:
        bindings.crypto_sign_open(signature + _signed_text(address_text), address.key or b"")
    except (CryptoError, ValueError):
        raise BeaconError(
            BeaconReason.BAD_SIGNATURE, f"not signed by the key of {address_text!r}"
        ) from None
    return Beacon(address, address_text, verified=True, format="lan")


def beacon_address(text: str) -> Address:
    """The address to dial in a beacon's text: the first `net` + `shs` element of a
    `;`-separated list (ssb-ref `parseAddress` takes the first net/ws/onion one; we dial
    only net), or the legacy `host:port:@key.ed25519`."""
    if "~" not in text:
        return _legacy_address(text)
    for part in text.split(";"):
        try:
            address = parse_peer_address(part.strip())
        except AddressError:
            continue
        if address.kind == "net" and address.transform == "shs":
            return address
    raise BeaconError(BeaconReason.NO_ADDRESS, f"no net:HOST:PORT~shs:KEY in {text[:200]!r}")


def _legacy_address(text: str) -> Address:
    # ssb-ref splits from the right (so an IPv6 host keeps its colons); the port may be empty.
    host, _, rest = text.strip().rpartition(":")
    host, _, port = host.rpartition(":")
    if not host or not is_feed_id(rest):
        raise BeaconError(BeaconReason.NO_ADDRESS, f"not an address: {text[:200]!r}")
    key = rest[1:].removesuffix(".ed25519")
    try:
        return parse_peer_address(f"net:{host}:{port or 8008}~shs:{key}")
    except AddressError as err:
        raise BeaconError(BeaconReason.NO_ADDRESS, str(err)) from None


def _check_size(payload: bytes) -> None:
    if len(payload) > MAX_BEACON:
        raise BeaconError(BeaconReason.TOO_LARGE, f"{len(payload)} bytes > {MAX_BEACON}")


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BeaconError(BeaconReason.NOT_UTF8, str(err)) from None


# -- who was heard -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heard:
    beacon: Beacon
    first: float
    last: float


class LanPeers:
    """Peers heard on the LAN, by announced address; and how many beacons were dropped, by
    reason. An address not heard for `expiry` seconds is forgotten (ssb-local)."""

    def __init__(self, expiry: float = EXPIRY, limit: int = MAX_LAN_PEERS) -> None:
        self.expiry = expiry
        self.limit = limit
        self.peers: dict[str, Heard] = {}  # str(address) -> when heard
        self.dropped: dict[str, int] = {}

    def drop(self, reason: BeaconReason) -> None:
        self.dropped[reason.value] = self.dropped.get(reason.value, 0) + 1

    def heard(self, beacon: Beacon, now: float) -> bool:
        """Note a beacon; True if its address was not known (a new peer, or a new address of
        one). A verified beacon is kept over an unverified one for the same address."""
        address = str(beacon.address)
        old = self.peers.get(address)
        if old is None and len(self.peers) >= self.limit:
            self.drop(BeaconReason.TOO_MANY_PEERS)
            return False
        kept = beacon if old is None or beacon.verified or not old.beacon.verified else old.beacon
        self.peers[address] = Heard(kept, now if old is None else old.first, now)
        return old is None

    def expire(self, now: float) -> list[Beacon]:
        """Forget (and return) the peers not heard for `expiry` seconds."""
        gone = [a for a, h in self.peers.items() if now - h.last > self.expiry]
        return [self.peers.pop(address).beacon for address in gone]

    def forget_all(self) -> list[Beacon]:
        gone = [heard.beacon for heard in self.peers.values()]
        self.peers.clear()
        return gone
