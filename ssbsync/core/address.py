"""Multiserver addresses (PROTOCOL.md §11, §13): `net:HOST:PORT~shs:KEY`, `unix:PATH~noauth`,
`;`-separated lists, and the legacy `HOST:PORT:@KEY.ed25519` form.

`serial:DEVICE~shs:KEY` (a serial line or Bluetooth RFCOMM device, docs/serial-link.md) is
ssbsync's own: ssb-server has no serial transport.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from ssbsync.core.refs import FeedId, decode_key32, feed_id, is_feed_id


class AddressError(ValueError):
    """Not an address ssbsync can dial; says why."""


@dataclass(frozen=True, slots=True)
class Address:
    kind: str  # "net", "unix" or "serial"
    host: str  # host for net, path for unix, device path for serial
    port: int  # 0 for unix and serial
    transform: str  # "shs" or "noauth"
    key: bytes | None  # the peer's public key (shs)

    @property
    def feed(self) -> FeedId | None:
        return None if self.key is None else feed_id(self.key)

    def __str__(self) -> str:
        where = f"net:{self.host}:{self.port}" if self.kind == "net" else f"{self.kind}:{self.host}"
        if self.key is None:
            return f"{where}~{self.transform}"
        return f"{where}~shs:{base64.b64encode(self.key).decode()}"


def _key(text: str) -> bytes:
    try:
        return decode_key32(text.removeprefix("@").removesuffix(".ed25519"))
    except ValueError as err:
        raise AddressError(f"the key {err}") from None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise AddressError(f"not a port number: {text!r}")
    return int(text)


def parse_one(text: str) -> Address:
    """One address (the first usable one of a `;`-separated list)."""
    errors = []
    for part in text.strip().split(";"):
        try:
            return _parse_single(part.strip())
        except AddressError as err:
            errors.append(str(err))
    raise AddressError("; ".join(errors) or "empty address")


def _parse_single(text: str) -> Address:
    if "~" not in text:
        return _parse_legacy(text)
    where, _, transform = text.partition("~")
    if where.startswith("net:"):
        host, _, port = where[4:].rpartition(":")
        if not host:
            raise AddressError(f"net address needs host:port: {where!r}")
        kind, port_number = "net", _port(port)
        host = host.strip("[]")
    elif where.startswith("unix:"):
        kind, host, port_number = "unix", where[5:], 0
    elif where.startswith("serial:"):
        kind, host, port_number = "serial", where[7:], 0
        if not host.startswith("/"):
            raise AddressError(f"serial address needs a device path (/dev/…): {where!r}")
    else:
        raise AddressError(f"unsupported transport in {text!r} (net:, unix: and serial: are)")
    if transform == "noauth":
        return Address(kind, host, port_number, "noauth", None)
    if transform.startswith("shs:"):
        return Address(kind, host, port_number, "shs", _key(transform[4:].split(":")[0]))
    raise AddressError(f"unsupported transform in {text!r} (shs: and noauth are)")


def _parse_legacy(text: str) -> Address:
    host, _, rest = text.partition(":")
    port, _, key = rest.partition(":")
    if not host or not is_feed_id(key):
        raise AddressError(f"not an address: {text!r} (expected net:HOST:PORT~shs:KEY)")
    return Address("net", host, _port(port), "shs", _key(key))
