"""A real kernel hotplug event: attach an ext4 image to a loop device and watch it arrive.

Loop devices stand in for sticks (VolumeWatcher(allow_loop=True)); the events are the kernel's
own (without udevd, as here and in CI containers, the watcher listens to the kernel source and
probes with blkid). Needs root for losetup and mount.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
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

pytestmark = pytest.mark.system
TOOLS = ("losetup", "mkfs.ext4", "blkid", "mount", "umount", "debugfs")
LABEL = "ssb stick"


def _require_loop_devices() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: attaching loop devices and mounting them is root-only")
    if not Path("/dev/loop-control").exists():
        pytest.skip("no /dev/loop-control: this kernel or container has no loop devices")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (util-linux, e2fsprogs)")
    free = subprocess.run(["losetup", "-f"], capture_output=True, text=True, timeout=30)
    if free.returncode != 0:
        pytest.skip(f"no free loop device: {free.stderr.strip()}")
    try:
        import pyudev  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as err:
        pytest.skip(f"pyudev cannot load libudev: {err}")


def _run(*argv: str) -> str:
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


async def _volume_for(watcher: VolumeWatcher, device: str) -> Volume:
    async for volume in watcher:
        if volume.device == device:
            return volume
    raise AssertionError("the watcher stopped")


class Attached:
    """Loop devices attached by the test, detached (and unmounted) whatever happens."""

    def __init__(self) -> None:
        self.devices: list[str] = []

    def attach(self, image: Path) -> str:
        self.devices.append(_run("losetup", "-f", "--show", str(image)))
        return self.devices[-1]

    def detach(self, device: str) -> None:
        self.devices.remove(device)
        _run("losetup", "-d", device)

    def release_all(self) -> None:
        for device in self.devices:
            if device in current_mounts():
                subprocess.run(["umount", device], timeout=30, check=False)
            subprocess.run(["losetup", "-d", device], timeout=30, check=False)


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
    _require_loop_devices()
    image = tmp_path / "stick.img"
    with image.open("wb") as file:
        file.truncate(8 * 1024 * 1024)
    _run("mkfs.ext4", "-q", "-L", LABEL, str(image))
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
    assert _run("debugfs", "-R", "cat /hello.txt", str(image)) == "carried by a stick"
