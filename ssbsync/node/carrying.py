"""What the Carry screen asks (issue 7): what each feed would take to carry, how much room a
target has, and the two writes — a stick's carry list and a bundle.

A target is a path typed by the user: a stick (a folder with `ssbsync-stick/`), a plain folder
(it becomes a stick when its carry list is written) or a bundle file (new or to be replaced).
Room is `Stick.room()` for a stick (free space, and what its `maxSize` leaves), else the free
space of the folder. Sizes are stored message bytes, the measure a stick sync budgets with
(`sticks.SEGMENT_MARGIN` aside): a feed's total is kept by the store (`feed_bytes`), and for a
stick only the tail it lacks is measured, from its clock (docs/bundle-format.md, "The stick").
The writes are the CLI's: `sticks.write_carry_list` (`ssbsync stick carry`) and the export job
(`bundle export`, `jobs.export_job`), so each exists once. `browse` re-exports this module's
values: the TUI sees the node only through the api, the client and browse.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssbsync.bundle import CarrySpec, Stick, StickError
from ssbsync.core.carry import CarryRange
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId
from ssbsync.node import config as node_config
from ssbsync.node import jobs, sticks
from ssbsync.node.api import ApiError, NodeAPI
from ssbsync.node.blobs import BlobStore
from ssbsync.node.bundles import OnProgress, Progress, stored_bytes
from ssbsync.node.jobs import Place
from ssbsync.node.session import CallError, Method

__all__ = [
    "MAX_CARRY_HOPS",
    "BundleWritten",
    "CarryFeed",
    "CarrySpec",
    "CarryTarget",
    "Place",
    "Progress",
    "bundle_options",
    "carry_target",
    "methods",
    "offline_place",
    "progress_from_json",
    "write_bundle",
    "write_carry",
]

MAX_CARRY_HOPS = 6  # the farthest "within N hops" offered (ssb-friends' default is 2)
KINDS = ("stick", "folder", "bundle")


@dataclass(frozen=True, slots=True)
class CarryFeed:
    """One feed we hold, as the Carry screen lists it: bytes stored, hops (to MAX_CARRY_HOPS;
    negative: blocked or unfollowed, as ssb-friends counts; None: farther)."""

    id: str
    name: str | None
    messages: int
    bytes: int
    hops: int | None

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "id": self.id, "name": self.name, "messages": self.messages, "bytes": self.bytes,
            "hops": self.hops,
        }  # fmt: skip

    @classmethod
    def from_json(cls, item: Any) -> CarryFeed:
        if not isinstance(item, dict):
            raise ValueError(f"expected a carry feed object, got {item!r:.80}")
        hops, name = item.get("hops"), item.get("name")
        return cls(
            str(item["id"]),
            name if isinstance(name, str) else None,
            _count(item.get("messages"), "messages"),
            _count(item.get("bytes"), "bytes"),
            hops if type(hops) is int else None,
        )


@dataclass(frozen=True, slots=True)
class CarryTarget:
    """Where the chosen feeds would go, and how much fits there."""

    path: str  # absolute
    kind: str  # "stick", "folder" (a stick once its carry list is written), "bundle" (a file)
    room: int  # bytes that may be written there now
    writable: bool
    stick_id: str | None = None
    carry: CarrySpec | None = None  # the stick's carry list
    max_size: int | None = None
    used: int = 0  # bytes of the stick's segments
    # feed -> stored bytes the stick still lacks, for each feed it holds a part of; a feed
    # not named here would take all its bytes
    lacking: Mapping[str, int] = field(default_factory=dict)

    def size_of(self, feed: CarryFeed) -> int:
        """Bytes carrying `feed` there would add."""
        return self.lacking.get(feed.id, feed.bytes)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "path": self.path, "kind": self.kind, "room": self.room, "writable": self.writable,
            "stickId": self.stick_id, "carry": None if self.carry is None else self.carry.to_json(),
            "maxSize": self.max_size, "used": self.used, "lacking": dict(self.lacking),
        }  # fmt: skip

    @classmethod
    def from_json(cls, item: Any) -> CarryTarget:
        if not isinstance(item, dict) or item.get("kind") not in KINDS:
            raise ValueError(f"expected a carry target object, got {item!r:.80}")
        carry, stick_id, max_size = item.get("carry"), item.get("stickId"), item.get("maxSize")
        lacking = item.get("lacking") or {}
        if not isinstance(lacking, dict):
            raise ValueError("carry target: 'lacking' must be an object")
        return cls(
            str(item["path"]),
            str(item["kind"]),
            _count(item.get("room"), "room"),
            item.get("writable") is True,
            stick_id if isinstance(stick_id, str) else None,
            None if carry is None else CarrySpec.from_json(carry),
            max_size if type(max_size) is int else None,
            _count(item.get("used", 0), "used"),
            {str(feed): _count(size, "lacking") for feed, size in lacking.items()},
        )


@dataclass(frozen=True, slots=True)
class BundleWritten:
    """What `bundle export` reports (`ExportSummary.to_json`)."""

    messages: int
    feeds: int
    blobs: int
    blob_bytes: int
    bytes: int

    @classmethod
    def from_json(cls, item: Any) -> BundleWritten:
        if not isinstance(item, dict):
            raise ValueError(f"expected an export summary, got {item!r:.80}")
        return cls(
            *(_count(item.get(k), k) for k in ("messages", "feeds", "blobs", "blobBytes", "bytes"))
        )


def _count(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r:.40}")
    return value


def progress_from_json(item: Any) -> Progress:
    """A `{"progress": …}` item of the sneakernet sources, back into a Progress."""
    if not isinstance(item, dict):
        raise ValueError(f"expected a progress object, got {item!r:.80}")
    total = item.get("total")
    return Progress(
        str(item.get("phase")),
        _count(item.get("done"), "done"),
        total if type(total) is int and total >= 0 else None,
        str(item.get("unit")),
    )


# -- the target ---------------------------------------------------------------------------------


def carry_target(place: Place, path: JSONValue) -> CarryTarget:
    """What `path` is as a place to carry to; ApiError in words when it cannot be one (no
    such folder, a stick of another network, an unreadable stick)."""
    target = _absolute(path)
    try:
        if target.is_dir():
            if Stick.is_stick(target):
                return _stick_target(place.api, Stick.open(target, place.network_key))
            return CarryTarget(str(target), "folder", _free(target), _writable(target))
        if target.exists() and not target.is_file():
            raise ApiError(f"{target} is neither a folder nor a file")
        folder = target.parent
        if not folder.is_dir():
            raise ApiError(f"{folder} is not a folder: the bundle needs one to go in")
        return CarryTarget(str(target), "bundle", _free(folder), _writable(folder))
    except StickError as err:
        raise ApiError(str(err)) from None
    except OSError as err:
        raise ApiError(f"cannot look at {target}: {err.strerror or err}") from None


def _absolute(path: JSONValue) -> Path:
    if not isinstance(path, str) or not path.strip():
        raise ApiError("give a stick folder or a bundle file to carry to")
    target = Path(path.strip())
    if not target.is_absolute():
        raise ApiError(f"{path!r} is not an absolute path")
    return target


def _stick_target(api: NodeAPI, stick: Stick) -> CarryTarget:
    return CarryTarget(
        str(stick.volume), "stick", stick.room(), _writable(stick.folder), stick.id,
        stick.carry, stick.max_size, stick.used_bytes(), _lacking(api, stick),
    )  # fmt: skip


def _lacking(api: NodeAPI, stick: Stick) -> dict[str, int]:
    """For each feed the stick holds part of, the stored bytes of the rest (only that tail
    is read: a fresh stick costs nothing here)."""
    ours = api.store.vector_clock()
    found: dict[str, int] = {}
    for feed, held in stick.clock().items():
        have = ours.get(feed, 0)
        if held > 0 and have > 0:
            tail = [CarryRange(FeedId(feed), held + 1, have)] if have > held else []
            found[str(feed)] = stored_bytes(api, tail)
    return found


def _free(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


# -- writing ------------------------------------------------------------------------------------


def carry_list_problem(target: CarryTarget) -> str | None:
    """Why the carry list cannot be written at `target`, in words; None when it can."""
    if target.kind == "bundle":
        return f"{target.path} is a file: a carry list goes on a stick (a folder)"
    if not target.writable:
        return f"{target.path} is not writable"
    return None


def bundle_problem(target: CarryTarget) -> str | None:
    """Why a bundle cannot be written at `target`, in words; None when it can."""
    if target.kind != "bundle":
        return (
            f"{target.path} is a folder: a bundle is a file; give its name,"
            f" e.g. {os.path.join(target.path, 'carry.bundle')}"
        )
    if not target.writable:
        return f"{os.path.dirname(target.path)} is not writable"
    return None


def write_carry(
    place: Place, path: JSONValue, carry: JSONValue, now_ms: int | None = None
) -> CarryTarget:
    """Write what the stick at `path` carries (a folder becomes a stick); the target after."""
    target = carry_target(place, path)
    problem = carry_list_problem(target)
    if problem is not None:
        raise ApiError(problem)
    try:
        spec = CarrySpec.from_json(carry)
        sticks.write_carry_list(
            Path(target.path), network_key=place.network_key, carry=spec, max_size=None,
            now_ms=jobs.now_ms() if now_ms is None else now_ms,
        )  # fmt: skip
    except StickError as err:
        raise ApiError(str(err)) from None
    return carry_target(place, path)


def bundle_options(carry: CarrySpec) -> dict[str, JSONValue]:
    """The `bundle.export` options for a choice of feeds (a bundle for an empty clock)."""
    return {"feeds": list(carry.feeds) or None, "hops": carry.hops, "blobs": carry.blobs}


def write_bundle(place: Place, path: str, carry: CarrySpec, progress: OnProgress) -> BundleWritten:
    """`bundle export PATH --feeds … | --hops N [--blobs]`: the same job, run here."""
    return BundleWritten.from_json(jobs.export_job(place, [path, bundle_options(carry)])(progress))


def offline_place(api: NodeAPI) -> Place:
    """The place the jobs work on for a store opened without a node (the TUI on its own)."""
    config = node_config.load(api.folder)
    return Place(api, config.network_key, BlobStore(api.folder, config.blobs_max))


def methods(place: Callable[[], Place]) -> dict[tuple[str, ...], Method]:
    """`browse.target [path]` and `stick.carry [path, carry]` for the running node's master;
    in a thread each: a stick may be slow to answer. Bundles go through `bundle.export`."""
    return {
        ("browse", "target"): _threaded(lambda a: carry_target(place(), _arg(a, 0)).to_json()),
        ("stick", "carry"): _threaded(
            lambda a: write_carry(place(), _arg(a, 0), _arg(a, 1)).to_json()
        ),
    }


def _arg(args: list[Any], index: int) -> JSONValue:
    return args[index] if len(args) > index else None


def _threaded(fn: Callable[[list[Any]], JSONValue]) -> Method:
    async def run(args: list[Any]) -> JSONValue:
        try:
            return await asyncio.to_thread(fn, args)
        except ApiError as err:
            raise CallError(str(err)) from None

    return Method("async", run)
