"""The pure USB decisions, with recorded udev property sets (fixtures/udev/README.md), and the
boundary of the mount helpers: every failure is a UsbError naming the device."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ssbsync.transport import usb_mount, usb_watch
from ssbsync.transport.usb import (
    Mounted,
    UsbError,
    Volume,
    VolumeWatcher,
    mount,
    parse_blkid_export,
    parse_mounts,
    unmount,
    volume_from_event,
)
from ssbsync.transport.usb_mount import run_tool
from ssbsync.transport.usb_volumes import disk_name
from ssbsync.transport.usb_watch import with_disk_sequence
from tests.conftest import FIXTURES

UDEV = FIXTURES / "udev"
CASES = sorted(UDEV.glob("*.json"))


def _case(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def _probed(case: dict[str, Any]) -> dict[str, str] | None:
    return parse_blkid_export(case["blkid_export"]) if "blkid_export" in case else None


def _expected(expect: dict[str, Any] | None) -> Volume | None:
    if expect is None:
        return None
    point = expect["mount_point"]
    return Volume(**{**expect, "mount_point": None if point is None else Path(point)})


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_recorded_events_are_decided_as_expected(path: Path) -> None:
    case = _case(path)
    assert case["checks"], "a fixture with nothing to check"
    for check in case["checks"]:
        found = volume_from_event(
            case["props"],
            parse_mounts(case["mounts"]),
            allow_loop=check["allow_loop"],
            probed=_probed(case),
        )
        assert found == _expected(check["expect"]), check


def test_the_fixtures_cover_the_cases_named_in_the_readme() -> None:
    readme = (UDEV / "README.md").read_text(encoding="utf-8")
    for path in CASES:
        assert f"`{path.name}`" in readme, f"{path.name} is not described in the README"


def test_mounts_decode_octal_escapes_and_keep_the_first_mount_point() -> None:
    text = (
        "/dev/sda1 /media/pi/SSB\\040STICK vfat rw 0 0\n"
        "/dev/sda1 /mnt/again vfat rw 0 0\n"
        "/dev/sdb1 /mnt/tab\\011new\\012line\\134slash ext4 rw 0 0\n"
        "garbage\n"
        "\n"
    )
    assert parse_mounts(text) == {
        "/dev/sda1": Path("/media/pi/SSB STICK"),
        "/dev/sdb1": Path("/mnt/tab\tnew\nline\\slash"),
    }


def test_blkid_export_unescapes_values_and_skips_other_lines() -> None:
    text = "DEVNAME=/dev/sda1\nLABEL=my\\ \\$tick\\\\\nTYPE=vfat\nnot a pair\n=x\n"
    assert parse_blkid_export(text) == {
        "DEVNAME": "/dev/sda1",
        "LABEL": "my $tick\\",
        "TYPE": "vfat",
    }


@pytest.mark.parametrize(
    ("device", "disk"),
    [
        ("/dev/sdb1", "sdb"),
        ("/dev/sdaa12", "sdaa"),
        ("/dev/vda", "vda"),
        ("/dev/mmcblk0p2", "mmcblk0"),
        ("/dev/mmcblk0", "mmcblk0"),
        ("/dev/nvme0n1p1", "nvme0n1"),
        ("/dev/nvme0n1", "nvme0n1"),
        ("/dev/loop0p1", "loop0"),
        ("/dev/loop7", "loop7"),
    ],
)
def test_disk_name_follows_kernel_naming(device: str, disk: str) -> None:
    assert disk_name(device) == disk


STICK = _case(UDEV / "usb-stick-vfat-partition-udev.json")
BOOT = _case(UDEV / "raspberry-pi-sd-boot-partition-udev.json")


def _decide(props: dict[str, str], mounts: str = "", **options: Any) -> Volume | None:
    return volume_from_event(props, parse_mounts(mounts), **options)


def test_a_root_named_dev_root_is_found_through_system_disks() -> None:
    # Older Raspberry Pi OS lists / as /dev/root; the watcher finds its disk through st_dev.
    mounts = "/dev/root / ext4 rw 0 0\n"
    assert _decide(BOOT["props"], mounts) is not None  # nothing says mmcblk0 is the system
    assert _decide(BOOT["props"], mounts, system_disks={"mmcblk0"}) is None


def test_overlayfs_root_keeps_its_lower_disk_a_system_disk() -> None:
    mounts = "overlayroot / overlay rw 0 0\n/dev/mmcblk0p2 /media/root-ro ext4 ro 0 0\n"
    assert _decide(BOOT["props"], mounts) is None


def test_a_stick_mounted_somewhere_unusual_counts_as_a_system_disk() -> None:
    # Unknown places are not ours to unmount: only /media, /mnt, /run and /tmp are sticks'.
    assert _decide(STICK["props"], "/dev/sda1 /srv/data vfat rw 0 0\n") is None
    assert _decide(STICK["props"], "/dev/sda1 /run/media/pi/X vfat rw 0 0\n") is not None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"ID_FS_TYPE": "hfsplus"}, "a filesystem we do not mount"),
        ({"ID_FS_TYPE": "crypto_LUKS", "ID_FS_USAGE": "crypto"}, "an encrypted container"),
        ({"ID_FS_TYPE": "iso9660"}, "a CD image"),
        ({"ID_FS_TYPE": "swap", "ID_FS_USAGE": "other"}, "swap"),
        ({"ID_FS_TYPE": "LVM2_member", "ID_FS_USAGE": "raid"}, "an LVM member"),
        ({"ID_FS_TYPE": "ext4", "ID_FS_USAGE": "raid"}, "a usage other than filesystem"),
        ({"ACTION": "bind"}, "an action we do not follow"),
        ({"SUBSYSTEM": "usb"}, "not a block device"),
        ({"DEVNAME": ""}, "no device node"),
        ({"DEVTYPE": "disk", "DEVPATH": STICK["props"]["DEVPATH"][:-5]}, "a partitioned disk"),
    ],
)
def test_what_is_never_a_volume(change: dict[str, str], why: str) -> None:
    assert _decide({**STICK["props"], **change}) is None, why


def test_a_superfloppy_whole_disk_without_partition_table_is_a_volume() -> None:
    props = {**STICK["props"], "DEVNAME": "/dev/sda", "DEVTYPE": "disk"}
    props["DEVPATH"] = props["DEVPATH"][: -len("/sda1")]
    del props["ID_PART_TABLE_TYPE"]
    found = _decide(props)
    assert found is not None and found.device == "/dev/sda"


def test_the_key_tells_insertions_apart_not_repeated_events() -> None:
    first = _decide(STICK["props"])
    again = _decide({**STICK["props"], "ACTION": "change", "SEQNUM": "4300"})
    replugged = _decide({**STICK["props"], "DISKSEQ": "13"})
    assert first is not None and again is not None and replugged is not None
    assert first.key == again.key != replugged.key


def test_a_probe_fills_in_for_the_kernel_source_and_an_empty_probe_is_nothing() -> None:
    case = _case(UDEV / "usb-stick-vfat-partition-kernel.json")
    assert _decide(case["props"], probed={}) is None
    assert _decide(case["props"]) is None  # without a probe the kernel event says nothing


@pytest.fixture
def no_real_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The watcher's view of sysfs and mounts, made empty: the recorded sda is not this
    machine's sda."""
    monkeypatch.setattr(usb_watch, "SYS_BLOCK", tmp_path / "sys-class-block")
    monkeypatch.setattr(usb_watch, "current_mounts", dict)
    return tmp_path / "sys-class-block"


def test_the_disk_sequence_is_read_from_sysfs_as_it_is_now(no_real_devices: Path) -> None:
    props = STICK["props"]
    assert with_disk_sequence(props) == props  # no diskseq file: an older kernel
    (no_real_devices / "sda").mkdir(parents=True)
    (no_real_devices / "sda" / "diskseq").write_text("40\n", encoding="utf-8")
    assert with_disk_sequence(props)["DISKSEQ"] == "40"  # the partition's disk, sda
    assert with_disk_sequence({**props, "ACTION": "remove"})["DISKSEQ"] == "12"


@pytest.mark.usefixtures("no_real_devices")
def test_the_watcher_yields_each_insertion_once() -> None:
    async def decisions() -> list[Volume | None]:
        watcher = VolumeWatcher(source="udev")  # not started: only its decisions are used
        stick = STICK["props"]
        events = [
            stick,
            {**stick, "ACTION": "change"},  # udev's change after a close-for-write
            {**stick, "ACTION": "remove"},
            stick,  # plugged in again, same DISKSEQ: still a new insertion after the remove
            {**stick, "ACTION": "change", "DISKSEQ": "13"},  # media changed under us
        ]
        return [await watcher._decide(event) for event in events]

    found = asyncio.run(decisions())
    assert [volume is not None for volume in found] == [True, False, False, True, True]


# The mount helpers: failures are UsbErrors that name the device and the step.


def _volume(device: str = "/dev/ssbsync-test-nothing") -> Volume:
    return Volume(device, "ext4", None, None, None, f"{device}#seq=1")


def test_run_tool_names_the_device_and_the_reason() -> None:
    async def failures() -> list[str]:
        messages = []
        for argv, timeout in [
            (["/nonexistent/ssbsync-tool"], 5.0),
            ([sys.executable, "-c", "import sys; sys.exit('no medium found')"], 5.0),
            ([sys.executable, "-c", "import time; time.sleep(30)"], 0.3),
        ]:
            with pytest.raises(UsbError) as caught:
                await run_tool(argv, device="/dev/sdz1", what="do it", timeout=timeout)
            messages.append(str(caught.value))
        return messages

    missing, failed, slow = asyncio.run(failures())
    assert missing.startswith("/dev/sdz1: cannot do it: /nonexistent/ssbsync-tool")
    assert failed == "/dev/sdz1: cannot do it: no medium found"
    assert "took over 0.3 s" in slow


def test_run_tool_accepts_the_exit_codes_it_is_told() -> None:
    argv = [sys.executable, "-c", "import sys; print('x'); sys.exit(2)"]
    out = asyncio.run(run_tool(argv, device="d", what="probe", timeout=5, ok_codes=(0, 2)))
    assert out == "x\n"


def test_an_existing_mount_is_used_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sdz1 /media/pi/SSB\\040STICK vfat rw 0 0\n", encoding="utf-8")
    monkeypatch.setattr(usb_mount, "MOUNTS_FILE", mounts)
    volume = _volume("/dev/sdz1")
    found = asyncio.run(mount(volume, tmp_path / "root"))
    assert found == Mounted(volume, Path("/media/pi/SSB STICK"), we_mounted=False)
    assert not (tmp_path / "root").exists()


def test_without_root_or_udisks_mounting_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usb_mount, "_as_root", lambda: False)
    monkeypatch.setattr(usb_mount.shutil, "which", lambda name: None)
    with pytest.raises(UsbError, match="ssbsync-test-nothing: cannot mount: not root"):
        asyncio.run(mount(_volume(), tmp_path))


def test_a_failed_mount_leaves_no_folder_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usb_mount, "_as_root", lambda: True)  # `mount` itself then refuses
    with pytest.raises(UsbError, match="ssbsync-test-nothing: cannot mount on"):
        asyncio.run(mount(_volume(), tmp_path / "usb"))
    assert list((tmp_path / "usb").iterdir()) == []


def test_unmounting_what_is_not_mounted_is_a_usb_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usb_mount, "_as_root", lambda: True)
    mounted = Mounted(_volume(), tmp_path, we_mounted=True)
    with pytest.raises(UsbError, match=r"ssbsync-test-nothing: cannot unmount"):
        asyncio.run(unmount(mounted))
    assert tmp_path.exists()  # a folder is removed only after a successful unmount


def test_an_owner_is_a_mount_option_only_where_the_filesystem_has_none() -> None:
    fat = Volume("/dev/sdz1", "vfat", None, None, None, "k")
    ext4 = Volume("/dev/sdz1", "ext4", None, None, None, "k")
    assert (
        usb_mount._options(fat, (1001, 1002)) == "nosuid,nodev,noexec,uid=1001,gid=1002,umask=077"
    )
    assert usb_mount._options(ext4, (1001, 1002)) == "nosuid,nodev,noexec"
    assert usb_mount._options(fat, None) == "nosuid,nodev,noexec"


def test_watching_without_udevd_needs_blkid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usb_watch.shutil, "which", lambda name: None)

    async def start() -> None:
        async with VolumeWatcher(source="kernel"):
            raise AssertionError("started without blkid")

    with pytest.raises(UsbError, match="blkid is needed"):
        asyncio.run(start())
