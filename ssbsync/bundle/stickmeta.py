"""The small JSON files of a stick: `stick.json`, `clock.json`, `nodes/*.json`.

Each reader validates strictly and raises ValueError saying which field is wrong; Stick
prefixes the file's path. These files come from a medium anyone may have edited.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ssbsync.bundle.stickfiles import read_json
from ssbsync.core.clock import VectorClock
from ssbsync.core.errors import RemoteProtocolError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId, is_feed_id

STICK_FORMAT = "ssbsync-stick"
STICK_VERSION = 1
_HEX_ID = re.compile(r"[0-9a-f]{1,64}")
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
_MAX_INT = 2**53 - 1


class StickError(Exception):
    """A stick that cannot be used as asked; the message names the file and what is wrong."""


def _nonnegative(value: JSONValue, field: str) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_INT:
        raise ValueError(f"{field!r} must be an integer >= 0: {value!r:.60}")
    return value


@dataclass(frozen=True)
class CarrySpec:
    """What a stick carries: these feeds, plus (with `hops`) the feeds the node follows that
    far, plus (with `blobs`) the blobs those messages link to."""

    feeds: tuple[FeedId, ...] = ()
    hops: int | None = None
    blobs: bool = False

    def __post_init__(self) -> None:
        for feed in self.feeds:
            if not is_feed_id(feed):
                raise StickError(f"carry: not a feed id: {feed!r:.80}")
        if self.hops is not None and (type(self.hops) is not int or self.hops < 0):
            raise StickError(f"carry: 'hops' must be null or an integer >= 0: {self.hops!r}")

    def to_json(self) -> dict[str, JSONValue]:
        return {"feeds": list(self.feeds), "hops": self.hops, "blobs": self.blobs}

    @classmethod
    def from_json(cls, value: JSONValue) -> CarrySpec:
        if type(value) is not dict:
            raise StickError("carry must be an object {feeds, hops, blobs}")
        unknown = set(value) - {"feeds", "hops", "blobs"}
        if unknown:
            raise StickError(f"carry has unknown field {sorted(unknown)[0]!r}")
        feeds = value.get("feeds", [])
        if type(feeds) is not list:
            raise StickError("carry 'feeds' must be a list of feed ids")
        blobs = value.get("blobs", False)
        if type(blobs) is not bool:
            raise StickError("carry 'blobs' must be true or false")
        hops = value.get("hops")
        if hops is not None and type(hops) is not int:
            raise StickError("carry 'hops' must be null or an integer")
        return cls(tuple(FeedId(f) for f in feeds), hops, blobs)


def stick_json(
    stick_id: str, network: bytes, created_ms: int, carry: CarrySpec, max_size: int | None
) -> dict[str, JSONValue]:
    """The content of `stick.json`; raises StickError for values it could not read back."""
    value: dict[str, JSONValue] = {
        "format": STICK_FORMAT,
        "version": STICK_VERSION,
        "id": stick_id,
        "network": network.hex(),
        "created": created_ms,
        "carry": carry.to_json(),
        "maxSize": max_size,
    }
    try:
        stick_from_json(value)
    except ValueError as err:
        raise StickError(str(err)) from None
    return value


def stick_from_json(
    value: JSONValue,
) -> tuple[str, bytes, int, CarrySpec, int | None]:
    """(id, network fingerprint, created ms, carry, max size) from `stick.json`."""
    if type(value) is not dict:
        raise ValueError("must hold a JSON object")
    if value.get("format") != STICK_FORMAT:
        raise ValueError(f"'format' is {value.get('format')!r:.60}, not {STICK_FORMAT!r}")
    version = value.get("version")
    if type(version) is not int or version < 1:
        raise ValueError(f"'version' must be a positive integer: {version!r:.60}")
    if version > STICK_VERSION:
        raise ValueError(f"stick format {version} is newer than this ssbsync ({STICK_VERSION})")
    stick_id = value.get("id")
    if type(stick_id) is not str or not _HEX_ID.fullmatch(stick_id):
        raise ValueError(f"'id' must be lowercase hex, at most 64 digits: {stick_id!r:.80}")
    network = value.get("network")
    if type(network) is not str or not _FINGERPRINT.fullmatch(network):
        raise ValueError(f"'network' must be 16 lowercase hex digits: {network!r:.60}")
    created = _nonnegative(value.get("created"), "created")
    max_size = value.get("maxSize")
    if max_size is not None and (type(max_size) is not int or not 0 < max_size <= 2**62):
        raise ValueError(f"'maxSize' must be null or a positive integer: {max_size!r:.60}")
    try:
        carry = CarrySpec.from_json(value.get("carry", {}))
    except StickError as err:
        raise ValueError(str(err)) from None
    return stick_id, bytes.fromhex(network), created, carry, max_size


def _clock(value: JSONValue, field: str) -> VectorClock:
    try:
        return VectorClock.from_json(value)
    except RemoteProtocolError as err:
        raise ValueError(f"{field!r}: {err}") from None


def clock_from_json(value: JSONValue) -> VectorClock:
    """`clock.json`: {"clock": {feed: seq}}."""
    if type(value) is not dict or "clock" not in value:
        raise ValueError("must hold an object with a 'clock'")
    return _clock(value["clock"], "clock")


def node_from_json(value: JSONValue) -> tuple[FeedId, VectorClock, int]:
    """`nodes/<hash>.json`: {"id": feed, "clock": {...}, "synced": ms}."""
    if type(value) is not dict:
        raise ValueError("must hold a JSON object")
    node = value.get("id")
    if not is_feed_id(node):
        raise ValueError(f"'id' is not a feed id: {node!r:.80}")
    return (
        FeedId(str(node)),
        _clock(value.get("clock"), "clock"),
        _nonnegative(value.get("synced"), "synced"),
    )


def node_file_name(node: FeedId) -> str:
    """`nodes/<first 16 hex digits of sha256(feed id)>.json`: fixed length, safe on FAT."""
    return hashlib.sha256(node.encode("utf-8")).hexdigest()[:16] + ".json"


def read_nodes(folder: Path) -> tuple[dict[FeedId, tuple[VectorClock, int]], list[str]]:
    """The `nodes/*.json` acknowledgements, and a reason for each file that cannot be used."""
    nodes: dict[FeedId, tuple[VectorClock, int]] = {}
    bad: list[str] = []
    try:
        paths = sorted(p for p in folder.iterdir() if p.name.endswith(".json"))
    except OSError as err:
        return nodes, [f"{folder}: {err}"]
    for path in paths:
        try:
            node, clock, synced = node_from_json(read_json(path))
            if path.name != node_file_name(node):
                raise ValueError(f"it is about {node}, whose file is {node_file_name(node)}")
        except (OSError, ValueError) as err:
            bad.append(f"{path}: {err}")
            continue
        nodes[node] = (clock, synced)
    return nodes, bad
