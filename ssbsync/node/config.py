"""Node configuration: `<path>/config` in ssb-config 3.4's shape, plus command-line overrides.

Only what ssbsync uses is read; unknown keys are kept and ignored (a config shared with
ssb-server keeps working). Defaults are ssb-server's: port 8008 on all interfaces, the main
network's caps. A bad value is a `ConfigError` that names the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssbsync.core.address import AddressError
from ssbsync.core.refs import FeedId, decode_key32, is_feed_id
from ssbsync.core.schedule import parse_peer_address

MAIN_CAPS_SHS = "1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s="  # PROTOCOL.md §1.3
DEFAULT_PORT = 8008
LOG_LEVELS = ("debug", "info", "notice", "warning", "error")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Listener:
    """One `connections.incoming` entry we serve."""

    kind: str  # "net" or "unix"
    host: str | None
    port: int
    transform: str  # "shs" or "noauth"
    scope: tuple[str, ...]
    external: str | None = None


SWITCHES = ("global", "seed", "local", "pub")  # gossip.enable/disable types (ssb-gossip)


@dataclass(frozen=True)
class GossipSettings:
    connections: int = 3
    seeds: tuple[str, ...] = ()
    offline: bool = False
    switches: Mapping[str, bool] = field(default_factory=lambda: dict.fromkeys(SWITCHES, True))

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> GossipSettings:
        """Read the gossip part of the config file; ConfigError names a bad field."""
        gossip = raw.get("gossip") or {}
        if not isinstance(gossip, dict):
            raise ConfigError("gossip must be an object")
        connections = gossip.get("connections", 3)
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 0:
            raise ConfigError(f"gossip.connections must be a whole number, got {connections!r}")
        switches = {name: gossip.get(name, True) is not False for name in SWITCHES}
        switches["pub"] = switches["pub"] and gossip.get("autoPopulate", True) is not False
        seeds = raw.get("seeds") or []
        seeds = [seeds] if isinstance(seeds, str | dict) else seeds
        if not isinstance(seeds, list):
            raise ConfigError("seeds must be an address or a list of addresses")
        for i, seed in enumerate(seeds):
            try:
                parse_peer_address(seed)
            except AddressError as err:
                raise ConfigError(f"seeds[{i}]: {err}") from None
        return cls(connections, tuple(seeds), raw.get("offline") is True, switches)


@dataclass(frozen=True)
class UsbSettings:
    """`usb`: hotplug sync of sticks (docs/bundle-format.md; hardware/README.md)."""

    enabled: bool = False
    mount_root: Path = Path("/run/ssbsync/usb")
    loop_devices: bool = False  # also look at loop devices (attached images; tests)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> UsbSettings:
        usb = raw.get("usb") or {}
        if not isinstance(usb, dict):
            raise ConfigError("usb must be an object")
        root = usb.get("mountRoot", str(cls.mount_root))
        if not isinstance(root, str) or not root.startswith("/"):
            raise ConfigError(f"usb.mountRoot must be an absolute path, got {root!r}")
        return cls(
            _flag(raw, "usb", "enabled", False), Path(root), _flag(raw, "usb", "loopDevices", False)
        )


@dataclass(frozen=True)
class SerialLink:
    """A serial device the node answers on (`connections.incoming.serial`) or dials
    (`connections.outgoing.serial`, with the peer's key); docs/serial-link.md."""

    device: str
    baud: int
    role: str  # "answer" or "dial"
    key: FeedId | None = None  # the peer we dial (the handshake needs its key)

    @classmethod
    def all_from_raw(cls, raw: Mapping[str, Any]) -> tuple[SerialLink, ...]:
        connections = raw.get("connections") or {}
        found = []
        for direction, role in (("incoming", "answer"), ("outgoing", "dial")):
            name = f"connections.{direction}.serial"
            section = connections.get(direction) if isinstance(connections, dict) else None
            entries = section.get("serial", []) if isinstance(section, dict) else []
            if not isinstance(entries, list):
                raise ConfigError(f"{name} must be a list")
            found += [cls.from_raw(e, f"{name}[{i}]", role) for i, e in enumerate(entries)]
        devices = [link.device for link in found]
        twice = next((d for d in devices if devices.count(d) > 1), None)
        if twice is not None:
            raise ConfigError(f"connections: serial device {twice} is configured more than once")
        return tuple(found)

    @classmethod
    def from_raw(cls, entry: Any, name: str, role: str) -> SerialLink:
        if not isinstance(entry, dict):
            raise ConfigError(f"{name} must be an object")
        device, baud, key = entry.get("device"), entry.get("baud", 115200), entry.get("key")
        if not isinstance(device, str) or not device.startswith("/") or "~" in device:
            raise ConfigError(f"{name}.device must be a device path (/dev/…), got {device!r}")
        if isinstance(baud, bool) or not isinstance(baud, int) or not 0 < baud <= 4_000_000:
            raise ConfigError(f"{name}.baud must be a line speed in bits/s, got {baud!r}")
        if role == "dial" and not is_feed_id(key):
            raise ConfigError(f"{name}.key must be the peer's feed id (@….ed25519), got {key!r}")
        return cls(device, baud, role, FeedId(str(key)) if role == "dial" else None)


@dataclass(frozen=True)
class Config:
    path: Path
    network_key: bytes
    sign_cap: bytes | None
    listeners: tuple[Listener, ...]
    masters: tuple[FeedId, ...] = ()
    log_level: str = "notice"
    friends_hops: int = 2  # friends.hops: replicate feeds this far in the follow graph
    handshake_timeout: float = 5.0  # timers.handshake, ms in the file
    inactivity_timeout: float = 600.0  # timers.inactivity
    allow_private: bool = False  # allowPrivate: invites may name a private/loopback host (§10)
    blobs_max: int = 5 * 1024 * 1024  # blobs.max: largest blob stored or fetched (ssb-blobs)
    replicate_ebt: bool = True  # replicate.ebt: false serves and calls no ebt.replicate
    replicate_legacy: bool = True  # replicate.legacy, as ssb-replicate: createHistoryStream
    # replicate.lanParty: take every feed that peers found on the LAN hold, followed or not
    replicate_lan_party: bool = False
    gossip: GossipSettings = field(default_factory=GossipSettings)
    usb: UsbSettings = field(default_factory=UsbSettings)
    serial: tuple[SerialLink, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def socket_path(self) -> Path:
        return self.path / "socket"

    def net_listener(self) -> Listener | None:
        return next((item for item in self.listeners if item.kind == "net"), None)


def _key32(value: Any, name: str) -> bytes:
    try:
        return decode_key32(value)
    except ValueError as err:
        raise ConfigError(f"{name} {err}") from None


def _port(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be a port number (0-65535), got {value!r}")
    return value


def _listeners(raw: Mapping[str, Any], port: int, host: str | None) -> tuple[Listener, ...]:
    incoming = raw.get("connections", {}).get("incoming")
    if incoming is None:
        # ssb-config's default: net on every interface (ws is not served by ssbsync yet), plus
        # the local noauth socket that ssbsync's CLI uses (ssb-server needs it configured).
        return (
            Listener("net", host, port, "shs", ("device", "local", "public")),
            Listener("unix", None, 0, "noauth", ("device",)),
        )
    if not isinstance(incoming, dict):
        raise ConfigError("connections.incoming must be an object")
    found: list[Listener] = []
    for kind, entries in incoming.items():
        if kind not in ("net", "unix"):
            continue  # ws, onion, …: not served by ssbsync
        if not isinstance(entries, list):
            raise ConfigError(f"connections.incoming.{kind} must be a list")
        for i, entry in enumerate(entries):
            found.append(_listener(kind, entry, f"connections.incoming.{kind}[{i}]", port, host))
    return tuple(found)


def _listener(kind: str, entry: Any, name: str, port: int, host: str | None) -> Listener:
    if not isinstance(entry, dict):
        raise ConfigError(f"{name} must be an object")
    transform = entry.get("transform", "shs" if kind == "net" else "noauth")
    if transform not in ("shs", "noauth"):
        raise ConfigError(f"{name}.transform must be 'shs' or 'noauth', got {transform!r}")
    scope = entry.get("scope", "device" if kind == "unix" else ["device", "local", "public"])
    scopes = (scope,) if isinstance(scope, str) else tuple(scope)
    if not all(isinstance(s, str) for s in scopes):
        raise ConfigError(f"{name}.scope must be a string or a list of strings")
    entry_host = entry.get("host", host)
    if entry_host is not None and not isinstance(entry_host, str):
        raise ConfigError(f"{name}.host must be a string")
    external = entry.get("external")
    if isinstance(external, list):
        external = external[0] if external else None
    if external is not None and not isinstance(external, str):
        raise ConfigError(f"{name}.external must be a string")
    entry_port = _port(entry.get("port", port), f"{name}.port") if kind == "net" else 0
    return Listener(kind, entry_host, entry_port, transform, scopes, external)


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[last] = value


def load(path: Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read `<path>/config` (if present) and apply overrides such as {"logging.level": "info"}."""
    raw: dict[str, Any] = {}
    file = path / "config"
    if file.exists():
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{file}: not readable JSON ({err})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{file}: must hold a JSON object")
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return _parse(path, raw)


def _parse(path: Path, raw: dict[str, Any]) -> Config:
    caps = raw.get("caps") or {}
    if not isinstance(caps, dict):
        raise ConfigError("caps must be an object")
    sign = caps.get("sign")
    port = _port(raw.get("port", DEFAULT_PORT), "port")
    host = raw.get("host")
    if host is not None and not isinstance(host, str):
        raise ConfigError("host must be a string")
    masters = raw.get("master", [])
    masters = [masters] if isinstance(masters, str) else masters
    if not isinstance(masters, list) or not all(is_feed_id(m) for m in masters):
        raise ConfigError("master must be a feed id or a list of feed ids (@…=.ed25519)")
    level = (raw.get("logging") or {}).get("level", "notice")
    if level not in LOG_LEVELS:
        raise ConfigError(f"logging.level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    timers = raw.get("timers") or {}
    hops = (raw.get("friends") or {}).get("hops", 2)
    if isinstance(hops, bool) or not isinstance(hops, int) or hops < 0:
        raise ConfigError(f"friends.hops must be a whole number >= 0, got {hops!r}")
    return Config(
        path=path,
        network_key=_key32(caps.get("shs", MAIN_CAPS_SHS), "caps.shs"),
        sign_cap=None if sign is None else _key32(sign, "caps.sign"),
        listeners=_listeners(raw, port, host),
        masters=tuple(FeedId(m) for m in masters),
        log_level=level,
        friends_hops=hops,
        handshake_timeout=_millis(timers.get("handshake", 5000), "timers.handshake"),
        inactivity_timeout=_millis(timers.get("inactivity", 600_000), "timers.inactivity"),
        allow_private=_boolean(raw.get("allowPrivate", False), "allowPrivate"),
        blobs_max=_blobs_max(raw),
        replicate_ebt=_flag(raw, "replicate", "ebt"),
        replicate_legacy=_flag(raw, "replicate", "legacy"),
        replicate_lan_party=_flag(raw, "replicate", "lanParty", False),
        gossip=GossipSettings.from_raw(raw),
        usb=UsbSettings.from_raw(raw),
        serial=SerialLink.all_from_raw(raw),
        raw=raw,
    )


def _flag(raw: Mapping[str, Any], section: str, name: str, default: bool = True) -> bool:
    value = (raw.get(section) or {}).get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{section}.{name} must be true or false, got {value!r}")
    return value


def _blobs_max(raw: Mapping[str, Any]) -> int:
    section = raw.get("blobs") or {}
    if not isinstance(section, dict):
        raise ConfigError("blobs must be an object")
    value = section.get("max", 5 * 1024 * 1024)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"blobs.max must be a positive number of bytes, got {value!r}")
    return value


def _millis(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of milliseconds, got {value!r}")
    return float(value) / 1000


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value
