"""The pure decision: is this block device a removable filesystem we should look at?

Everything here is a plain function of recorded inputs (udev properties, the text of
/proc/self/mounts, blkid's `-o export` output), so it is tested with fixtures/udev
(ARCHITECTURE.md: "Pure decisions (is this block device a stick of ours?) are plain functions
tested with recorded inputs"). The I/O around it is in usb_watch.py and usb_mount.py.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class UsbError(Exception):
    """A USB volume could not be watched, probed, mounted or unmounted; the message names the
    device and what failed."""


@dataclass(frozen=True)
class Volume:
    device: str  # /dev/sdb1
    fs_type: str  # vfat, exfat, ext4, ...
    label: str | None
    uuid: str | None
    mount_point: Path | None  # where it is mounted already (an automounter), else None
    key: str  # this insertion: device + DISKSEQ (or + uuid), to drop repeated change events


# Filesystems we mount read-write to carry feeds. A closed list on purpose: mounting whatever a
# stranger's stick claims to be exercises kernel filesystem drivers nobody needs here.
KNOWN_FS_TYPES = frozenset(
    {"vfat", "exfat", "ext2", "ext3", "ext4", "f2fs", "btrfs", "ntfs", "ntfs3", "xfs"}
)
# Read-only images (snaps, CDs), swap, and containers of other devices are never ours.
NEVER_FS_TYPES = frozenset(
    {"squashfs", "iso9660", "udf", "swap", "crypto_LUKS", "LVM2_member", "linux_raid_member"}
)
WANTED_ACTIONS = (None, "add", "change")  # None: present when the watcher started

# A device mounted anywhere but these places is part of the system (/, /boot/firmware, a data
# partition at /var/lib/ssbsync, raspi-config's overlayfs lower layer at /media/root-ro), and
# every partition of its disk is left alone: on a Raspberry Pi the SD card sits on the mmc bus
# like a removable card, and its vfat boot partition must never be taken for a stick.
REMOVABLE_MOUNT_PLACES = ("/media/", "/run/", "/mnt/", "/tmp/")
SYSTEM_MOUNTS_ANYWAY = ("/media/root-ro", "/media/root-rw")

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_BLKID_ESCAPE = re.compile(r"\\(.)")
_PARTITION_AFTER_DIGIT = re.compile(r"^(.*\d)p\d+$")  # mmcblk0p1, nvme0n1p2, loop0p1
_SCSI_PARTITION = re.compile(r"^((?:sd|hd|vd|xvd)[a-z]+)\d+$")  # sdb1, vda2


def parse_mounts(text: str) -> dict[str, Path]:
    """/proc/self/mounts text -> {device: first mount point}. The kernel writes space, tab,
    newline and backslash in a path as octal escapes (\\040 ...); they are decoded here."""
    found: dict[str, Path] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        device, point = (_unescape_octal(field) for field in fields[:2])
        found.setdefault(device, Path(point))
    return found


def _unescape_octal(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_blkid_export(text: str) -> dict[str, str]:
    """`blkid -o export` output -> {TYPE: ..., LABEL: ..., UUID: ..., USAGE: ...}. blkid
    escapes shell-special characters in values with a backslash (`LABEL=ssb\\ stick`)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.isidentifier():
            found[name] = _BLKID_ESCAPE.sub(lambda match: match.group(1), value)
    return found


def disk_name(device: str) -> str:
    """The whole disk a device node belongs to, by the kernel's naming: /dev/sdb1 -> sdb,
    /dev/mmcblk0p2 -> mmcblk0, /dev/nvme0n1p1 -> nvme0n1; a whole disk names itself."""
    name = PurePosixPath(device).name
    for pattern in (_PARTITION_AFTER_DIGIT, _SCSI_PARTITION):
        match = pattern.match(name)
        if match:
            return match.group(1)
    return name


def is_system_mount(point: Path) -> bool:
    text = str(point)
    if text in SYSTEM_MOUNTS_ANYWAY:
        return True
    return not any(text.startswith(place) for place in REMOVABLE_MOUNT_PLACES)


def system_disks_in(mounts: Mapping[str, Path]) -> set[str]:
    """The disks that hold a system mount (see REMOVABLE_MOUNT_PLACES)."""
    return {
        disk_name(device)
        for device, point in mounts.items()
        if device.startswith("/dev/") and is_system_mount(point)
    }


def event_disk(props: Mapping[str, str]) -> str:
    """The disk of the device an event is about, from its sysfs path: a partition's DEVPATH
    ends in .../block/<disk>/<partition>."""
    parts = PurePosixPath(props.get("DEVPATH", "")).parts
    if props.get("DEVTYPE") == "partition" and len(parts) >= 2:
        return parts[-2]
    return parts[-1] if parts else disk_name(props.get("DEVNAME", ""))


def is_loop(props: Mapping[str, str]) -> bool:
    return PurePosixPath(props.get("DEVNAME", "")).name.startswith("loop")


def on_removable_bus(props: Mapping[str, str]) -> bool:
    devpath = props.get("DEVPATH", "")
    return props.get("ID_BUS") == "usb" or "/usb" in devpath or "/mmc" in devpath


def is_candidate(
    props: Mapping[str, str],
    mounts: Mapping[str, Path],
    *,
    allow_loop: bool = False,
    system_disks: Collection[str] = (),
) -> bool:
    """Everything but the filesystem: a block device on a removable bus (or a loop device when
    allowed), wanted action, not on a system disk. The watcher probes only these with blkid."""
    if props.get("ACTION") not in WANTED_ACTIONS or props.get("SUBSYSTEM") != "block":
        return False
    if not props.get("DEVNAME"):
        return False
    if not (on_removable_bus(props) or (allow_loop and is_loop(props))):
        return False
    disk = event_disk(props)
    return disk not in system_disks and disk not in system_disks_in(mounts)


def volume_from_event(
    props: Mapping[str, str],
    mounts: Mapping[str, Path],
    *,
    allow_loop: bool = False,
    probed: Mapping[str, str] | None = None,
    system_disks: Collection[str] = (),
) -> Volume | None:
    """A Volume when the udev event `props` is about a removable filesystem we should look at,
    else None. With the kernel netlink source there are no ID_FS_* properties: `probed` then
    carries blkid's keys (TYPE, LABEL, UUID, USAGE, PTTYPE) for the device. `system_disks`
    adds disks found to hold the system by other means (the watcher stats / for /dev/root)."""
    if not is_candidate(props, mounts, allow_loop=allow_loop, system_disks=system_disks):
        return None
    fs = _filesystem_keys(props, probed)
    fs_type = fs.get("TYPE", "")
    if fs_type in NEVER_FS_TYPES or fs_type not in KNOWN_FS_TYPES:
        return None
    if fs.get("USAGE", "filesystem") != "filesystem":
        return None
    if props.get("DEVTYPE") == "disk" and fs.get("PTTYPE"):
        return None  # a partitioned whole disk: its partitions come as their own events
    device = props["DEVNAME"]
    return Volume(
        device=device,
        fs_type=fs_type,
        label=fs.get("LABEL") or None,
        uuid=fs.get("UUID") or None,
        mount_point=mounts.get(device),
        key=_insertion_key(device, props.get("DISKSEQ"), fs.get("UUID")),
    )


def _filesystem_keys(props: Mapping[str, str], probed: Mapping[str, str] | None) -> dict[str, str]:
    """udev's ID_FS_* / ID_PART_TABLE_TYPE in blkid's names, with a probe's keys on top."""
    keys = {
        "TYPE": props.get("ID_FS_TYPE", ""),
        "USAGE": props.get("ID_FS_USAGE", ""),
        "LABEL": _udev_unescape(props.get("ID_FS_LABEL_ENC", "")) or props.get("ID_FS_LABEL", ""),
        "UUID": props.get("ID_FS_UUID", ""),
        "PTTYPE": props.get("ID_PART_TABLE_TYPE", ""),
    }
    keys.update(probed or {})
    return {name: value for name, value in keys.items() if value}


def _udev_unescape(text: str) -> str:
    # ID_FS_LABEL has spaces turned into "_"; ID_FS_LABEL_ENC keeps them as \x20 escapes.
    return _HEX_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), text)


def _insertion_key(device: str, diskseq: str | None, uuid: str | None) -> str:
    # DISKSEQ (Linux 5.15+) grows with every media change, so a stick pulled and put back is a
    # new insertion while udev's change events after a close-for-write are not.
    return f"{device}#seq={diskseq}" if diskseq else f"{device}#uuid={uuid or ''}"
