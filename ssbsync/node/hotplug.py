"""Hotplug: a stick plugged in is synced and unmounted with no command typed.

For each filesystem the USB watcher reports (transport/usb): mount it (or use the automount),
look for the stick marker, sync both ways, flush, unmount, and say "safe to remove" — in the
log, in the node's status, and as an event the TUI shows. A volume without the marker is
unmounted again (if we mounted it) and otherwise left alone. One stick at a time: each sync
goes through the one ingest path, which takes one batch at a time anyway.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ssbsync.bundle import Stick, StickError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.node.bundles import OnProgress, Progress
from ssbsync.transport.usb import Mounted, UsbError, Volume, VolumeWatcher, mount, unmount

log = logging.getLogger(__name__)
RECENT = 20  # stick events kept for `status`

# Runs one stick sync (in a thread, or through the running node) and returns its summary.
SyncStick = Callable[[Path, OnProgress], Awaitable[dict[str, JSONValue]]]


@dataclass
class StickEvent:
    """What happened to one plugged-in volume; `state` moves along
    mounted → syncing → safe to remove (or: not a stick, failed)."""

    device: str
    label: str | None
    state: str
    at: float
    detail: str = ""
    progress: dict[str, JSONValue] | None = None
    summary: dict[str, JSONValue] | None = None

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "device": self.device, "label": self.label, "state": self.state, "at": self.at,
            "detail": self.detail, "progress": self.progress, "summary": self.summary,
        }  # fmt: skip


@dataclass
class Hotplug:
    sync: SyncStick
    mount_root: Path
    allow_loop: bool = False
    owner: tuple[int, int] | None = None  # (uid, gid) for the files of a FAT/exFAT stick
    on_event: Callable[[StickEvent], None] | None = None
    events: deque[StickEvent] = field(default_factory=lambda: deque(maxlen=RECENT))

    async def run(self) -> None:
        """Watch until cancelled; a failing volume is reported and never stops the watch."""
        async with VolumeWatcher(allow_loop=self.allow_loop) as watcher:
            log.info("watching for USB sticks (mounting under %s)", self.mount_root)
            async for volume in watcher:
                await self.handle(volume)

    async def handle(self, volume: Volume) -> StickEvent:
        event = StickEvent(volume.device, volume.label, "found", time.time())
        self.events.append(event)
        try:
            mounted = await mount(volume, self.mount_root, owner=self.owner)
        except UsbError as err:
            return self._set(event, "failed", f"could not mount: {err}")
        try:
            await self._sync_if_stick(mounted, event)
        finally:
            await self._release(mounted, event)
        return event

    async def _sync_if_stick(self, mounted: Mounted, event: StickEvent) -> None:
        if not Stick.is_stick(mounted.path):
            self._set(event, "not a stick", "no ssbsync-stick folder: left alone")
            return
        self._set(event, "syncing", f"syncing {mounted.path}")

        def progress(step: Progress) -> None:
            event.progress = step.to_json()
            self._report(event)

        try:
            event.summary = await self.sync(mounted.path, progress)
        except (StickError, OSError) as err:
            self._set(event, "failed", f"sync failed: {err}")

    async def _release(self, mounted: Mounted, event: StickEvent) -> None:
        try:
            if mounted.we_mounted or event.state != "not a stick":
                await unmount(mounted)
        except UsbError as err:
            self._set(event, "failed", f"{event.detail}; could not unmount: {err}")
            return
        if event.state == "syncing":
            self._set(event, "safe to remove", _said(event.summary))
        elif event.state == "failed":
            self._set(event, "failed", f"{event.detail}; unmounted, safe to remove")

    def _set(self, event: StickEvent, state: str, detail: str) -> StickEvent:
        event.state, event.detail, event.at = state, detail, time.time()
        level = logging.WARNING if state == "failed" else logging.INFO
        name = event.label or event.device
        log.log(level, "stick %s: %s%s", name, state, f" ({detail})" if detail else "")
        self._report(event)
        return event

    def _report(self, event: StickEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def status(self) -> list[JSONValue]:
        return [event.to_json() for event in self.events]


def _said(summary: dict[str, JSONValue] | None) -> str:
    if not summary:
        return ""
    text = summary.get("description")
    return text if isinstance(text, str) else ""
