"""The stick: a mounted volume that carries bundle segments between nodes (docs/bundle-format.md).

`<volume>/ssbsync-stick/` holds `stick.json` (what the stick is for), `segments/` (bundles,
append-only, numbered from 1), `clock.json` (the high-water mark of every message the stick ever
held) and `nodes/` (the clock each node had at its last sync: the acknowledgement that lets old
segments be pruned once every node holds them, as NNCP does with its tx/rx spools).
Every write goes through stickfiles.write_atomic or `new_segment`, so pulling the stick at any
instant leaves at worst a `.partial` file, deleted at the next open.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ssbsync.bundle.format import BundleError, Header, network_fingerprint
from ssbsync.bundle.reader import read_header
from ssbsync.bundle.stickfiles import (
    PARTIAL,
    fsync_folder,
    read_json,
    remove_partials,
    sync_file,
    write_json,
)
from ssbsync.bundle.stickmeta import (
    CarrySpec,
    StickError,
    clock_from_json,
    node_file_name,
    read_nodes,
    stick_from_json,
    stick_json,
)
from ssbsync.core.clock import VectorClock
from ssbsync.core.refs import FeedId

__all__ = [
    "MARKER",
    "CarrySpec",
    "NotAStick",
    "SegmentInfo",
    "Stick",
    "StickError",
    "node_file_name",
]

MARKER = "ssbsync-stick"
_SEGMENT = re.compile(r"(\d{8})\.bundle")
_INIT_TEMP = MARKER + ".partial"


class NotAStick(StickError):
    """The volume has no `ssbsync-stick/` folder."""


@dataclass(frozen=True)
class SegmentInfo:
    path: Path
    number: int
    size: int
    header: Header


@dataclass
class Stick:
    volume: Path
    folder: Path
    id: str
    network: bytes
    created_ms: int
    carry: CarrySpec
    max_size: int | None
    # segment file name -> (size, mtime_ns, header or the reason it is unreadable)
    _headers: dict[str, tuple[int, int, Header | str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @staticmethod
    def is_stick(volume: Path) -> bool:
        return (volume / MARKER).is_dir()

    @classmethod
    def init(
        cls,
        volume: Path,
        *,
        network_key: bytes,
        carry: CarrySpec,
        max_size: int | None,
        now_ms: int,
        stick_id: str,
    ) -> Stick:
        """Make `volume` a stick: the marker folder appears whole (built aside, then renamed)."""
        if not volume.is_dir():
            raise StickError(f"{volume} is not a folder")
        if cls.is_stick(volume):
            raise StickError(f"{volume} is already a stick ({volume / MARKER} exists)")
        stick = cls(
            volume,
            volume / MARKER,
            stick_id,
            network_fingerprint(network_key),
            now_ms,
            carry,
            max_size,
        )
        meta = stick_json(stick.id, stick.network, now_ms, carry, max_size)  # validates
        temp = volume / _INIT_TEMP
        shutil.rmtree(temp, ignore_errors=True)  # an earlier init pulled half-way
        try:
            (temp / "segments").mkdir(parents=True)
            (temp / "nodes").mkdir()
            write_json(temp / "clock.json", {"clock": {}})
            write_json(temp / "stick.json", meta)
            fsync_folder(temp)
            os.replace(temp, stick.folder)
        except OSError as err:
            shutil.rmtree(temp, ignore_errors=True)
            raise StickError(f"cannot make {volume} a stick: {err}") from None
        fsync_folder(volume)
        return stick

    @classmethod
    def open(cls, volume: Path, network_key: bytes | None = None) -> Stick:
        """Read `stick.json` and drop the leftovers of interrupted writes."""
        folder = volume / MARKER
        if not folder.is_dir():
            raise NotAStick(f"{volume} is not an ssbsync stick (no {MARKER} folder)")
        path = folder / "stick.json"
        try:
            stick_id, network, created, carry, max_size = stick_from_json(read_json(path))
        except (OSError, ValueError) as err:
            raise StickError(f"{path}: {err}") from None
        if network_key is not None and network != network_fingerprint(network_key):
            raise StickError(
                f"{volume} is a stick of another network (fingerprint {network.hex()})"
            )
        for sub in ("segments", "nodes"):
            with contextlib.suppress(OSError):  # read-only mounts stay readable
                (folder / sub).mkdir(exist_ok=True)
        for leftovers in (folder, folder / "segments", folder / "nodes"):
            remove_partials(leftovers)
        return cls(volume, folder, stick_id, network, created, carry, max_size)

    def set_carry(self, carry: CarrySpec, max_size: int | None) -> None:
        path = self.folder / "stick.json"
        meta = stick_json(self.id, self.network, self.created_ms, carry, max_size)
        try:
            write_json(path, meta)
        except OSError as err:
            raise StickError(f"{path}: cannot write: {err}") from None
        self.carry, self.max_size = carry, max_size

    # --- segments -------------------------------------------------------------------------

    def _scan(self) -> list[tuple[Path, int, Header | str]]:
        """Every segment file by number, with its header or why it is unusable."""
        seg_folder = self.folder / "segments"
        try:
            entries = sorted(seg_folder.iterdir())
        except OSError as err:
            raise StickError(f"{seg_folder}: cannot list: {err}") from None
        found: list[tuple[Path, int, Header | str]] = []
        for path in entries:
            match = _SEGMENT.fullmatch(path.name)
            if match is None:
                continue
            found.append((path, int(match.group(1)), self._header_of(path)))
        return found

    def _header_of(self, path: Path) -> Header | str:
        try:
            stat = path.stat()
        except OSError as err:
            return f"cannot read: {err}"
        cached = self._headers.get(path.name)
        if cached is not None and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return cached[2]
        result: Header | str
        try:
            result = read_header(path)
            if result.network != self.network:
                result = f"a bundle of another network ({result.network.hex()})"
        except (BundleError, OSError) as err:
            result = str(err)
        self._headers[path.name] = (stat.st_size, stat.st_mtime_ns, result)
        return result

    def segments(self) -> list[SegmentInfo]:
        """The readable segments, by number."""
        result = []
        for path, number, header in self._scan():
            if isinstance(header, Header):
                size = self._headers[path.name][0]
                result.append(SegmentInfo(path, number, size, header))
        return result

    def unreadable(self) -> list[tuple[Path, str]]:
        """Segments whose header is unusable, with the reason (they are never pruned)."""
        return [(path, header) for path, _, header in self._scan() if isinstance(header, str)]

    @contextmanager
    def new_segment(self) -> Iterator[BinaryIO]:
        """A file to write the next segment into; it becomes a segment only on normal exit."""
        numbers = [number for _, number, _ in self._scan()]
        number = max(numbers, default=0) + 1
        final = self.folder / "segments" / f"{number:08d}.bundle"
        partial = final.with_name(final.name + PARTIAL)
        handle = partial.open("wb")
        try:
            yield handle
            if handle.closed:  # the caller closed it: reopen to make its bytes durable
                with partial.open("rb") as reopened:
                    os.fsync(reopened.fileno())
            else:
                sync_file(handle)
                handle.close()
            try:
                header = read_header(partial)
            except BundleError as err:
                raise StickError(
                    f"{final}: the new segment is not a usable bundle: {err}"
                ) from None
            if header.network != self.network:
                raise StickError(f"{final}: the new segment is of another network")
            os.replace(partial, final)
        except BaseException:
            handle.close()
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        fsync_folder(final.parent)
        self._write_clock(self.clock().merged(_ranges_clock(header)))

    def used_bytes(self) -> int:
        total = 0
        for path, _, _ in self._scan():
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.folder).free

    def room(self) -> int:
        """Bytes a new segment may take: the free space, and what `max_size` leaves."""
        room = self.free_bytes()
        if self.max_size is not None:
            room = min(room, self.max_size - self.used_bytes())
        return max(room, 0)

    # --- clocks ---------------------------------------------------------------------------

    def clock(self) -> VectorClock:
        """Every message the stick ever held: `clock.json` merged with the segments' ranges.

        A missing or unreadable `clock.json` is rebuilt from the segments (losing only what
        pruned segments held, which every node had already acknowledged).
        """
        path = self.folder / "clock.json"
        stored: VectorClock | None
        try:
            stored = clock_from_json(read_json(path))
        except (OSError, ValueError):
            stored = None
        clock = stored or VectorClock()
        for info in self.segments():
            clock = clock.merged(_ranges_clock(info.header))
        if stored is None or clock != stored:
            with contextlib.suppress(OSError):  # read-only: the rebuilt clock still answers
                self._write_clock(clock)
        return clock

    def _write_clock(self, clock: VectorClock) -> None:
        path = self.folder / "clock.json"
        try:
            write_json(path, {"clock": clock.to_json()})
        except OSError as err:
            raise StickError(f"{path}: cannot write: {err}") from None

    def record_node(self, node: FeedId, clock: Mapping[FeedId, int], now_ms: int) -> None:
        """Remember what `node` held when it synced with this stick (its acknowledgement)."""
        path = self.folder / "nodes" / node_file_name(node)
        value = {"id": str(node), "clock": VectorClock(clock).to_json(), "synced": now_ms}
        try:
            write_json(path, value)
        except OSError as err:
            raise StickError(f"{path}: cannot write: {err}") from None

    def node_clocks(self) -> dict[FeedId, tuple[VectorClock, int]]:
        """node -> (its clock, when it synced, ms); unreadable node files are skipped."""
        return read_nodes(self.folder / "nodes")[0]

    def prunable(self) -> list[SegmentInfo]:
        """Segments every recorded node already holds, oldest first.

        None while no node is recorded, and none while a node file is unreadable: an
        acknowledgement we cannot read must not count as one.
        """
        nodes, bad = read_nodes(self.folder / "nodes")
        if not nodes or bad:
            return []
        clocks = [clock for clock, _ in nodes.values()]
        return [s for s in self.segments() if all(s.header.covered_by(c) for c in clocks)]

    def prune(self, needed: int) -> list[SegmentInfo]:
        """Delete prunable segments, oldest first, until `room()` reaches `needed`."""
        deleted: list[SegmentInfo] = []
        candidates = self.prunable()
        if candidates and self.room() < needed:
            self._write_clock(self.clock())  # the high-water mark must outlive the segments
        for info in candidates:
            if self.room() >= needed:
                break
            try:
                info.path.unlink()
            except OSError as err:
                raise StickError(f"{info.path}: cannot delete: {err}") from None
            self._headers.pop(info.path.name, None)
            deleted.append(info)
        if deleted:
            fsync_folder(self.folder / "segments")
        return deleted


def _ranges_clock(header: Header) -> VectorClock:
    return VectorClock({r.feed: r.last for r in header.feeds})
