"""USB sticks and SD cards: hotplug events in, mounted folders out (ARCHITECTURE.md, transport).

The node's hotplug loop uses only this module:

    async with VolumeWatcher(allow_loop=config_loop_devices) as watcher:
        async for volume in watcher:
            mounted = await mount(volume, mount_root)
            try:
                ...  # sync the stick if it has the ssbsync-stick/ folder
            finally:
                await unmount(mounted)  # flushed and unmounted: safe to remove

The pure decision (usb_volumes), the event source (usb_watch) and the mount helpers
(usb_mount) live in their own modules; every failure at this boundary is a UsbError.
"""

from __future__ import annotations

from ssbsync.transport.usb_mount import Mounted, current_mounts, mount, unmount
from ssbsync.transport.usb_volumes import (
    UsbError,
    Volume,
    is_candidate,
    parse_blkid_export,
    parse_mounts,
    volume_from_event,
)
from ssbsync.transport.usb_watch import VolumeWatcher

__all__ = [
    "Mounted",
    "UsbError",
    "Volume",
    "VolumeWatcher",
    "current_mounts",
    "is_candidate",
    "mount",
    "parse_blkid_export",
    "parse_mounts",
    "unmount",
    "volume_from_event",
]
