"""The hotplug decisions around one volume, with mounting replaced by folders: a stick is
synced then unmounted and reported safe to remove; anything else is left alone; a failure at
any step is reported and the volume is still released. (tests/system does it for real.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ssbsync.bundle import CarrySpec, StickError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.node import hotplug, sticks
from ssbsync.node.bundles import OnProgress, Progress
from ssbsync.node.hotplug import Hotplug
from ssbsync.transport.usb import Mounted, UsbError, Volume

NETWORK = bytes(32)


class FakeMedia:
    """mount/unmount as folders under `root`; records what happened."""

    def __init__(self, root: Path, fail_mount: bool = False) -> None:
        self.root, self.fail_mount = root, fail_mount
        self.unmounted: list[Path] = []

    async def mount(
        self, volume: Volume, mount_root: Path, owner: tuple[int, int] | None = None
    ) -> Mounted:
        if self.fail_mount:
            raise UsbError(f"{volume.device}: wrong fs type")
        if volume.mount_point is not None:
            return Mounted(volume, volume.mount_point, we_mounted=False)
        return Mounted(volume, self.root / Path(volume.device).name, we_mounted=True)

    async def unmount(self, mounted: Mounted) -> None:
        self.unmounted.append(mounted.path)


def _volume(name: str, mount_point: Path | None = None) -> Volume:
    return Volume(f"/dev/{name}", "vfat", "STICK", None, mount_point, f"/dev/{name}:1")


@pytest.fixture
def media(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeMedia:
    fake = FakeMedia(tmp_path)
    monkeypatch.setattr(hotplug, "mount", fake.mount)
    monkeypatch.setattr(hotplug, "unmount", fake.unmount)
    return fake


def _hotplug(tmp_path: Path, calls: list[Path], fail: Exception | None = None) -> Hotplug:
    async def sync(volume: Path, progress: OnProgress) -> dict[str, JSONValue]:
        calls.append(volume)
        progress(Progress("import", 1, 2, "messages"))
        if fail is not None:
            raise fail
        return {"description": "took 1 messages, gave 0"}

    return Hotplug(sync, tmp_path / "mnt")


def _stick_at(folder: Path) -> None:
    folder.mkdir(parents=True)
    sticks.init_stick(folder, network_key=NETWORK, carry=CarrySpec(), max_size=None, now_ms=1)


def test_a_stick_is_synced_unmounted_and_safe_to_remove(tmp_path: Path, media: FakeMedia) -> None:
    _stick_at(tmp_path / "sdb1")
    calls: list[Path] = []
    plug = _hotplug(tmp_path, calls)
    states: list[str] = []
    plug.on_event = lambda event: states.append(event.state)
    event = asyncio.run(plug.handle(_volume("sdb1")))
    assert calls == [tmp_path / "sdb1"] and media.unmounted == [tmp_path / "sdb1"]
    assert event.state == "safe to remove" and "took 1" in event.detail
    assert states[0] == "syncing" and states[-1] == "safe to remove"
    assert plug.status()[-1]["state"] == "safe to remove"  # type: ignore[index]


def test_a_volume_without_the_marker_is_left_alone(tmp_path: Path, media: FakeMedia) -> None:
    (tmp_path / "sdc1").mkdir()
    calls: list[Path] = []
    event = asyncio.run(_hotplug(tmp_path, calls).handle(_volume("sdc1")))
    assert event.state == "not a stick" and calls == []
    assert media.unmounted == [tmp_path / "sdc1"]  # we mounted it to look: we unmount it
    automounted = tmp_path / "media" / "photos"
    automounted.mkdir(parents=True)
    event = asyncio.run(_hotplug(tmp_path, calls).handle(_volume("sdd1", automounted)))
    assert event.state == "not a stick" and automounted not in media.unmounted


def test_failures_are_reported_and_the_stick_still_released(
    tmp_path: Path, media: FakeMedia
) -> None:
    _stick_at(tmp_path / "sdb1")
    calls: list[Path] = []
    event = asyncio.run(
        _hotplug(tmp_path, calls, StickError("bad stick.json")).handle(_volume("sdb1"))
    )
    assert event.state == "failed" and "bad stick.json" in event.detail
    assert "safe to remove" in event.detail and media.unmounted == [tmp_path / "sdb1"]
    media.fail_mount = True
    event = asyncio.run(_hotplug(tmp_path, calls).handle(_volume("sde1")))
    assert event.state == "failed" and "could not mount" in event.detail
