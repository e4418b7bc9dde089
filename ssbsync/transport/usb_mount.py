"""Mount a Volume, and flush and unmount it so the stick is safe to remove.

As root the node runs `mount`/`umount` itself; otherwise it asks udisks (`udisksctl ...
--no-user-interaction`, allowed by polkit for the active seat's user or by a rule, see
hardware/README.md). A mount made by an automounter is used as it is, but is still unmounted
at the end: "safe to remove" means nothing of the stick is mounted any more. Every failure,
from a missing program to a timeout, is a UsbError that names the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ssbsync.transport.usb_volumes import UsbError, Volume, parse_mounts

MOUNTS_FILE = Path("/proc/self/mounts")
# Sticks come from other people: no device files, no set-uid programs, nothing run from them.
MOUNT_OPTIONS = "nosuid,nodev,noexec"
LET_MOUNT_CHOOSE = frozenset({"ntfs"})  # ntfs3 (kernel) or ntfs-3g (FUSE), whichever is there
# Filesystems without Unix owners: who owns the files is a mount option.
OWNERLESS_FS_TYPES = frozenset({"vfat", "exfat", "ntfs", "ntfs3"})


@dataclass(frozen=True)
class Mounted:
    volume: Volume
    path: Path
    we_mounted: bool  # False: it was mounted already (automount); we still unmount it


def current_mounts() -> dict[str, Path]:
    try:
        return parse_mounts(MOUNTS_FILE.read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError as err:
        raise UsbError(f"cannot read {MOUNTS_FILE}: {err.strerror or err}") from err


def _as_root() -> bool:
    return os.geteuid() == 0


async def run_tool(
    argv: list[str], *, device: str, what: str, timeout: float, ok_codes: Collection[int] = (0,)
) -> str:
    """Run a helper (mount, blkid...); its stdout, or a UsbError naming the device, the step
    and why."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as err:
        raise UsbError(f"{device}: cannot {what}: {argv[0]}: {err.strerror or err}") from err
    try:
        async with asyncio.timeout(timeout):
            out, err_out = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise UsbError(f"{device}: cannot {what}: {argv[0]} took over {timeout:g} s") from None
    if process.returncode not in ok_codes:
        reason = err_out.decode(errors="replace").strip() or f"exit status {process.returncode}"
        raise UsbError(f"{device}: cannot {what}: {reason}")
    return out.decode(errors="replace")


async def mount(
    volume: Volume, mount_root: Path, *, timeout: float = 30, owner: tuple[int, int] | None = None
) -> Mounted:
    """Mount `volume` (or take the mount an automounter made) and say where it is. `owner`
    (uid, gid): who owns the files of a FAT/exFAT/NTFS stick mounted as root, for a node that
    runs as another user than the mounting watcher (hardware/README.md, set-up B)."""
    existing = current_mounts().get(volume.device)
    if existing is not None:
        return Mounted(volume, existing, we_mounted=False)
    if _as_root():
        return await _mount_as_root(volume, mount_root, timeout, _options(volume, owner))
    if shutil.which("udisksctl"):
        return await _mount_with_udisks(volume, timeout)
    raise UsbError(f"{volume.device}: cannot mount: not root and udisksctl is not installed")


def _options(volume: Volume, owner: tuple[int, int] | None) -> str:
    if owner is None or volume.fs_type not in OWNERLESS_FS_TYPES:
        return MOUNT_OPTIONS
    uid, gid = owner
    return f"{MOUNT_OPTIONS},uid={uid},gid={gid},umask=077"


async def _mount_as_root(volume: Volume, mount_root: Path, timeout: float, options: str) -> Mounted:
    path = mount_root / PurePosixPath(volume.device).name
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise UsbError(f"{volume.device}: cannot create {path}: {err.strerror or err}") from err
    argv = ["mount", "-o", options]
    if volume.fs_type not in LET_MOUNT_CHOOSE:
        argv += ["-t", volume.fs_type]
    try:
        await run_tool(
            [*argv, volume.device, str(path)],
            device=volume.device,
            what=f"mount on {path}",
            timeout=timeout,
        )
    except UsbError:
        _remove_folder(path)
        raise
    return Mounted(volume, path, we_mounted=True)


async def _mount_with_udisks(volume: Volume, timeout: float) -> Mounted:
    argv = ["udisksctl", "mount", "-b", volume.device, "--no-user-interaction"]
    argv += ["-o", MOUNT_OPTIONS]
    await run_tool(argv, device=volume.device, what="mount with udisksctl", timeout=timeout)
    path = current_mounts().get(volume.device)
    if path is None:
        raise UsbError(f"{volume.device}: udisksctl said it mounted it, but it is not mounted")
    return Mounted(volume, path, we_mounted=True)


async def unmount(mounted: Mounted, *, timeout: float = 30) -> None:
    """Flush, unmount (an automount too) and remove the folder we made: safe to remove."""
    device = mounted.volume.device
    try:
        async with asyncio.timeout(timeout):
            await asyncio.to_thread(os.sync)  # every dirty page of the stick is on it
    except TimeoutError:
        raise UsbError(f"{device}: cannot flush: sync took over {timeout:g} s") from None
    if _as_root() or not shutil.which("udisksctl"):
        argv = ["umount", str(mounted.path)]
    else:
        argv = ["udisksctl", "unmount", "-b", device, "--no-user-interaction"]
    await run_tool(argv, device=device, what=f"unmount {mounted.path}", timeout=timeout)
    still = current_mounts().get(device)
    if still is not None:
        raise UsbError(f"{device}: still mounted at {still} after unmounting {mounted.path}")
    if mounted.we_mounted and _as_root():
        _remove_folder(mounted.path)


def _remove_folder(path: Path) -> None:
    # rmdir, never a recursive delete: if something is still mounted there it fails harmlessly.
    with contextlib.suppress(OSError):
        path.rmdir()
