"""Plug in, wait for "safe to remove", no command typed: a running node with `usb.enabled`
sees a real kernel event for a stick (an ext4 image on a loop device), mounts it, syncs both
ways, unmounts it, and says so in its status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ssbsync.bundle import CarrySpec, Stick
from ssbsync.node import sticks
from ssbsync.node.api import NodeAPI
from ssbsync.transport.usb import current_mounts

from ..node.nodes import config_in, running
from .loops import LABEL, Attached, require_loop_devices, run

pytestmark = pytest.mark.system
WAIT = 30  # seconds for the node to notice, sync and unmount


def _stick_image(tmp_path: Path, elsewhere: Path) -> Path:
    """An ext4 image made a stick, carrying 5 messages of another place."""
    image = tmp_path / "stick.img"
    with image.open("wb") as file:
        file.truncate(16 * 1024 * 1024)
    run("mkfs.ext4", "-q", "-L", LABEL, str(image))
    folder = tmp_path / "prepare"
    folder.mkdir()
    run("mount", "-o", "loop", str(image), str(folder))
    try:
        with NodeAPI(elsewhere) as api:
            for n in range(5):
                api.publish({"type": "post", "text": f"from elsewhere {n}"})
            network = config_in(elsewhere).network_key
            sticks.init_stick(
                folder, network_key=network, carry=CarrySpec(), max_size=None, now_ms=1
            )
            sticks.sync_stick(api, folder, network_key=network, blobs=None, now_ms=2)
    finally:
        run("umount", str(folder))
    return image


async def _plug_in(node_folder: Path, image: Path, loops: Attached) -> dict[str, object]:
    usb = {"enabled": True, "loopDevices": True, "mountRoot": str(node_folder / "usb")}
    async with running(node_folder, usb=usb) as node:
        node.api.publish({"type": "post", "text": "from here"})
        await asyncio.sleep(0.5)  # the watcher is listening
        loops.attach(image)
        for _ in range(WAIT * 10):
            states = [event["state"] for event in node.sneakernet.status()]  # type: ignore[index]
            if "safe to remove" in states or "failed" in states:
                break
            await asyncio.sleep(0.1)
        status = node.status()
        assert isinstance(status, dict)
        return {"sticks": status["sticks"], "messages": node.api.store.count_messages()}


def test_a_stick_plugged_into_a_running_node_syncs_and_is_safe_to_remove(
    tmp_path: Path,
) -> None:
    require_loop_devices()
    image = _stick_image(tmp_path, tmp_path / "elsewhere")
    loops = Attached()
    try:
        seen = asyncio.run(asyncio.wait_for(_plug_in(tmp_path / "here", image, loops), 90))
        device = loops.devices[0]
        assert device not in current_mounts()  # unmounted by the node
    finally:
        loops.release_all()
    (event,) = seen["sticks"]  # type: ignore[misc]
    assert event["state"] == "safe to remove", event
    assert "took 5 messages, gave 1" in event["detail"]
    assert seen["messages"] == 6
    # The stick now holds this place's message and its clock (read it back by mounting).
    check = tmp_path / "check"
    check.mkdir()
    run("mount", "-o", "loop,ro", str(image), str(check))
    try:
        stick = Stick.open(check)
        assert sum(stick.clock().values()) == 6 and len(stick.node_clocks()) == 2
    finally:
        run("umount", str(check))
