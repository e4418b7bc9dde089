"""A real kernel hotplug event: attach an ext4 image to a loop device and watch it arrive.

Loop devices stand in for sticks (VolumeWatcher(allow_loop=True)); the events are the kernel's
own (without udevd, as here and in CI containers, the watcher listens to the kernel source and
probes with blkid). Needs root for losetup and mount.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ssbsync.transport.usb import (
    Mounted,
    Volume,
    VolumeWatcher,
    current_mounts,
    mount,
    unmount,
)

from .loops import LABEL, Attached, require_loop_devices, run

pytestmark = pytest.mark.system


async def _volume_for(watcher: VolumeWatcher, device: str) -> Volume:
    async for volume in watcher:
        if volume.device == device:
            return volume
    raise AssertionError("the watcher stopped")


async def _watch_the_stick_come_twice(
    image: Path, mount_root: Path, loops: Attached
) -> tuple[str, Mounted, Volume, Volume]:
    async with VolumeWatcher(allow_loop=True) as watcher:
        device = loops.attach(image)
        volume = await asyncio.wait_for(_volume_for(watcher, device), timeout=20)
        assert (volume.fs_type, volume.label, volume.mount_point) == ("ext4", LABEL, None)
        # The kernel sends more change events for the same attach: none is a new volume.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_volume_for(watcher, device), timeout=1.5)
        mounted = await mount(volume, mount_root)
        try:
            assert mounted.we_mounted
            assert mounted.path.parent == mount_root
            assert current_mounts()[device] == mounted.path
            (mounted.path / "hello.txt").write_text("carried by a stick\n", encoding="utf-8")
        finally:
            await unmount(mounted)
        loops.detach(device)
        # The same stick plugged in again is a new insertion, and is yielded again.
        again_device = loops.attach(image)
        again = await asyncio.wait_for(_volume_for(watcher, again_device), timeout=20)
        loops.detach(again_device)
    return device, mounted, volume, again


def test_a_loop_device_attached_is_seen_mounted_written_and_unmounted(tmp_path: Path) -> None:
    require_loop_devices()
    image = tmp_path / "stick.img"
    with image.open("wb") as file:
        file.truncate(8 * 1024 * 1024)
    run("mkfs.ext4", "-q", "-L", LABEL, str(image))
    mount_root = tmp_path / "usb"

    loops = Attached()
    try:
        device, mounted, volume, again = asyncio.run(
            _watch_the_stick_come_twice(image, mount_root, loops)
        )
    finally:
        loops.release_all()

    assert again.uuid == volume.uuid and again.key != volume.key
    assert device not in current_mounts()
    assert not mounted.path.exists()  # the folder we made is gone
    # What was written reached the image: read it back without mounting.
    assert run("debugfs", "-R", "cat /hello.txt", str(image)) == "carried by a stick"
