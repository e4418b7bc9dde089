"""Watch block devices come and go, and yield each removable filesystem once per insertion.

    async with VolumeWatcher(allow_loop=False) as watcher:
        async for volume in watcher:
            ...

The events come from a pyudev netlink Monitor hooked into the running loop (`add_reader`).
With udevd running (/run/udev/control exists) the "udev" source carries ID_FS_* properties;
without it (containers, CI, minimal systems) the "kernel" source does not, so each candidate
device is probed with blkid. Devices already present at start are enumerated too, so a stick
plugged in before the node started is seen. A volume is yielded once per Volume.key; a remove
event, or a change that leaves no filesystem (a loop device detached), forgets it.

pyudev is imported only when a watcher starts: importing ssbsync.node must not load it
(tests/core/test_layers.py).
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from ssbsync.transport.usb_mount import current_mounts, run_tool
from ssbsync.transport.usb_volumes import (
    UsbError,
    Volume,
    event_disk,
    is_candidate,
    parse_blkid_export,
)
from ssbsync.transport.usb_volumes import volume_from_event as decide

log = logging.getLogger(__name__)

Source = Literal["udev", "kernel"]
UDEV_CONTROL = Path("/run/udev/control")
SYS_BLOCK = Path("/sys/class/block")
QUEUE_LIMIT = 1024  # events waiting; past it the watcher rescans instead of queueing more
# Mount points whose disk is part of the system even when /proc/self/mounts calls it /dev/root
# or the root is an overlay (raspi-config's overlayfs keeps the real one at /media/root-ro).
SYSTEM_PATHS = ("/", "/media/root-ro", "/boot", "/boot/firmware")


def default_source() -> Source:
    return "udev" if UDEV_CONTROL.exists() else "kernel"


def system_disks_by_stat(paths: Iterable[str] = SYSTEM_PATHS) -> set[str]:
    """Kernel names of the disks holding `paths`, found through st_dev and /sys/dev/block."""
    disks: set[str] = set()
    for path in paths:
        try:
            dev = os.stat(path).st_dev
            node = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}").resolve(strict=True)
        except OSError:
            continue  # no such path, or an anonymous device (overlay, tmpfs, btrfs subvolume)
        disks.add(node.parent.name if (node / "partition").exists() else node.name)
    return disks


def with_disk_sequence(props: Mapping[str, str]) -> Mapping[str, str]:
    """DISKSEQ as the disk has it now, read from sysfs (Linux 5.15+). The kernel sends it for
    whole disks only, and an event handled late may carry an older one than the filesystem a
    probe finds now; the current value keeps Volume.key and the probe about the same medium."""
    if props.get("ACTION") == "remove":
        return props
    try:
        sequence = (SYS_BLOCK / event_disk(props) / "diskseq").read_text().strip()
    except (OSError, ValueError):
        return props  # an older kernel: Volume.key falls back to the filesystem UUID
    return {**props, "DISKSEQ": sequence} if sequence.isdigit() else props


class VolumeWatcher:
    def __init__(
        self,
        *,
        allow_loop: bool = False,
        source: Source | None = None,
        probe_timeout: float = 10.0,
    ) -> None:
        self.allow_loop = allow_loop
        self.source: Source = source or default_source()
        self.probe_timeout = probe_timeout
        self._monitor: Any = None
        self._pyudev: Any = None
        self._fd: int | None = None
        self._queue: asyncio.Queue[dict[str, str] | UsbError] = asyncio.Queue(QUEUE_LIMIT)
        self._pending: collections.deque[str] = collections.deque()  # sys paths at start
        self._overflowed = False
        self._seen: dict[str, str] = {}  # device -> Volume.key yielded for it
        self._system_disks: set[str] = set()

    async def __aenter__(self) -> VolumeWatcher:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Listen for events first, then list what is present, so nothing falls in between."""
        if self.source == "kernel" and shutil.which("blkid") is None:
            raise UsbError("cannot watch block devices: without udevd blkid is needed to probe")
        self._system_disks = system_disks_by_stat()
        try:
            import pyudev  # type: ignore[import-untyped]  # loaded only when watching

            context = pyudev.Context()
            monitor = pyudev.Monitor.from_netlink(context, source=self.source)
            monitor.filter_by("block")
            monitor.start()
            self._fd = monitor.fileno()
            self._monitor, self._pyudev = monitor, pyudev
            asyncio.get_running_loop().add_reader(self._fd, self._on_readable)
            self._list_present()
        except (ImportError, OSError, ValueError) as err:
            self.close()
            raise UsbError(f"cannot watch block devices ({self.source} events): {err}") from err

    def close(self) -> None:
        """Stop listening; idempotent. Dropping the monitor closes its netlink socket."""
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None
        self._monitor = None

    def _fail(self, error: UsbError) -> None:
        self.close()
        while not self._queue.empty():  # the error is the next thing __anext__ sees
            self._queue.get_nowait()
        self._queue.put_nowait(error)

    def _list_present(self) -> None:
        """Queue the block devices present now; each is read afresh when its turn comes (it
        may have changed meanwhile). A device no longer present is forgotten."""
        present = list(self._monitor.context.list_devices(subsystem="block"))
        names = {device.device_node for device in present}
        self._seen = {name: key for name, key in self._seen.items() if name in names}
        self._pending.extend(device.sys_path for device in present)

    def _read_present(self, sys_path: str) -> dict[str, str] | None:
        try:
            device = self._pyudev.Devices.from_sys_path(self._monitor.context, sys_path)
        except self._pyudev.DeviceNotFoundError:
            return None  # gone since it was listed
        return dict(device.properties)

    def _on_readable(self) -> None:
        while self._monitor is not None:
            try:
                device = self._monitor.poll(timeout=0)
            except OSError as err:
                if err.errno == errno.ENOBUFS:  # the kernel dropped events: list devices anew
                    self._overflowed = True
                    continue
                self._fail(UsbError(f"reading block device events failed: {err}"))
                return
            if device is None:
                return
            try:
                self._queue.put_nowait(dict(device.properties))
            except asyncio.QueueFull:
                self._overflowed = True  # __anext__ rescans; nothing is lost for good

    def __aiter__(self) -> VolumeWatcher:
        return self

    async def __anext__(self) -> Volume:
        while True:
            props = await self._next_props()
            volume = await self._decide(props)
            if volume is not None:
                return volume

    async def _next_props(self) -> dict[str, str]:
        if self._overflowed and self._monitor is not None:
            self._overflowed = False
            while not self._queue.empty():
                self._queue.get_nowait()
            self._list_present()
        while self._pending and self._monitor is not None:
            props = self._read_present(self._pending.popleft())
            if props is not None:
                return props
        if self._fd is None and self._queue.empty():
            raise UsbError("the block device watcher is closed")
        item = await self._queue.get()
        if isinstance(item, UsbError):
            raise item
        return item

    async def _decide(self, props: Mapping[str, str]) -> Volume | None:
        device = props.get("DEVNAME", "")
        props = with_disk_sequence(props)
        mounts = current_mounts()
        wanted = is_candidate(
            props, mounts, allow_loop=self.allow_loop, system_disks=self._system_disks
        )
        probed = await self._probe(device) if wanted and self.source == "kernel" else None
        volume = decide(
            props,
            mounts,
            allow_loop=self.allow_loop,
            probed=probed,
            system_disks=self._system_disks,
        )
        if volume is None:
            # Gone, or no filesystem yet (a loop device's first change event can come before
            # its size is set): forget it, so the next change event is looked at afresh.
            self._seen.pop(device, None)
            return None
        if self._seen.get(device) == volume.key:
            return None  # the same insertion again (udev's change after a close-for-write)
        self._seen[device] = volume.key
        return volume

    async def _probe(self, device: str) -> dict[str, str]:
        """blkid's low-level probe (-p: no cache, and it reports USAGE and PTTYPE); exit
        status 2 means it found nothing. A probe that fails is logged and counts as nothing,
        so the device is probed again on its next change event."""
        try:
            out = await run_tool(
                ["blkid", "-p", "-o", "export", device],
                device=device,
                what="probe the filesystem",
                timeout=self.probe_timeout,
                ok_codes=(0, 2),
            )
        except UsbError as err:
            log.warning("%s", err)
            return {}
        return parse_blkid_export(out)
