"""Loop devices for the system tests: real block devices and kernel events, no hardware."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ssbsync.transport.usb import current_mounts

LABEL = "ssb stick"
TOOLS = ("losetup", "mkfs.ext4", "blkid", "mount", "umount", "debugfs")
LABEL = "ssb stick"


def require_loop_devices() -> None:
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


def run(*argv: str) -> str:
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


class Attached:
    """Loop devices attached by the test, detached (and unmounted) whatever happens."""

    def __init__(self) -> None:
        self.devices: list[str] = []

    def attach(self, image: Path) -> str:
        self.devices.append(run("losetup", "-f", "--show", str(image)))
        return self.devices[-1]

    def detach(self, device: str) -> None:
        self.devices.remove(device)
        run("losetup", "-d", device)

    def release_all(self) -> None:
        for device in self.devices:
            if device in current_mounts():
                subprocess.run(["umount", device], timeout=30, check=False)
            subprocess.run(["losetup", "-d", device], timeout=30, check=False)
