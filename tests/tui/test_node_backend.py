"""The TUI against a running node, over its local socket (`NodeBackend`): feeds and threads
come from browse.*, a post is published by the node, the Sync screen shows a connected
peer's replication reaching "complete" and the node's sticks, and the Carry screen writes
through the node."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from ssbsync.bundle import CarrySpec, Stick
from ssbsync.node.bundles import Progress
from ssbsync.node.hotplug import StickEvent
from ssbsync.tui.app import SsbsyncApp
from ssbsync.tui.backend import BackendError, NodeBackend
from ssbsync.tui.screens.compose import ComposeScreen
from ssbsync.tui.screens.feeds import FeedsScreen
from ssbsync.tui.screens.sync import SyncScreen
from tests.node.nodes import run, running, tcp_address
from tests.tui.test_app import SIZE, feeds_loaded, until


def test_no_node_means_no_node_backend(tmp_path: Path) -> None:
    async def go() -> None:
        assert await NodeBackend.connect(tmp_path / "socket") is None
        (tmp_path / "socket").write_text("stale")  # a file left behind, nobody listening
        assert await NodeBackend.connect(tmp_path / "socket") is None

    run(go)


def test_app_over_the_socket_publishes_and_shows_sync(tmp_path: Path) -> None:
    async def go() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            b.api.publish({"type": "about", "about": b.id, "name": "bee"})
            a.api.publish({"type": "contact", "contact": b.id, "following": True})
            backend = await NodeBackend.connect(tmp_path / "a" / "socket")
            assert backend is not None and backend.live and backend.me == a.id
            try:
                app = SsbsyncApp(backend)
                async with app.run_test(size=SIZE) as pilot:
                    feeds = await feeds_loaded(app, pilot)
                    assert [f.id for f in feeds.feeds] == [a.id]
                    await pilot.press("f4")
                    await until(pilot, lambda: isinstance(app.screen, ComposeScreen))
                    await pilot.press(*"over the socket", "ctrl+s")
                    await until(pilot, lambda: isinstance(app.screen, FeedsScreen))
                    latest = a.api.get_latest(a.id)
                    assert latest["value"]["content"]["text"] == "over the socket"  # type: ignore[index]
                    await a.connect(tcp_address(b))
                    await pilot.press("f3")
                    await until(pilot, lambda: isinstance(app.screen, SyncScreen))
                    table = app.screen.query_one(DataTable)
                    await until(
                        pilot,
                        lambda: (
                            table.row_count == 1
                            and table.get_row_at(0)[2:] == ["connected", "complete"]
                        ),
                        seconds=15,
                    )
                    summary = str(app.screen.query_one("#sync-summary", Static).render())
                    assert summary.startswith("1 connected, 1 complete")
                    await pilot.press("f2")  # b's feed arrived by replication, with its name
                    await until(pilot, lambda: isinstance(app.screen, FeedsScreen))
                    await pilot.press("ctrl+r")
                    await until(pilot, lambda: len(feeds.feeds) == 2)
                    assert {f.name for f in feeds.feeds} == {None, "bee"}
            finally:
                await backend.close()

    run(go)


def test_sync_shows_sticks_in_words(tmp_path: Path) -> None:
    """The node's hotplug status (events injected: no USB here) under the peers, newest
    first: one syncing with its progress, one failed with why, one safe to remove."""

    async def go() -> None:
        async with running(tmp_path / "a") as a:
            events = a.sneakernet.hotplug.events
            events.append(
                StickEvent("/dev/sdc1", None, "failed", time.time(), "could not mount: busy")
            )
            syncing = StickEvent("/dev/sdb1", "STICK", "syncing", time.time(), "syncing /mnt")
            syncing.progress = {"phase": "import", "done": 2000, "total": 5000, "unit": "messages"}
            events.append(syncing)
            backend = await NodeBackend.connect(tmp_path / "a" / "socket")
            assert backend is not None
            try:
                app = SsbsyncApp(backend)
                async with app.run_test(size=SIZE) as pilot:
                    await pilot.press("f3")
                    await until(pilot, lambda: isinstance(app.screen, SyncScreen))
                    sticks = app.screen.query_one("#sticks", Static)
                    await until(pilot, lambda: sticks.display)
                    shown = str(sticks.render()).splitlines()
                    assert shown == [
                        "STICK (/dev/sdb1): syncing — taking from it: 2000 of 5000 messages",
                        "/dev/sdc1: failed — could not mount: busy",
                    ]
                    syncing.state, syncing.progress = "safe to remove", None
                    syncing.detail = "took 3 messages, gave 2 (0 other places known, …)"
                    await until(pilot, lambda: "safe to remove" in str(sticks.render()), 10)
                    assert str(sticks.render()).splitlines()[0] == (
                        "STICK (/dev/sdb1): safe to remove — took 3 messages, gave 2"
                        " (0 other places known, …)"
                    )
            finally:
                await backend.close()

    run(go)


def test_carry_over_the_socket(tmp_path: Path) -> None:
    """The Carry screen with a node running: the carry list and the bundle are written by
    the node (`stick.carry`, `bundle.export` with its progress), paths made absolute here."""

    async def go() -> None:
        async with running(tmp_path / "a") as a:
            for n in range(3):
                a.api.publish({"type": "post", "text": f"note {n}"})
            (tmp_path / "stick").mkdir()
            backend = await NodeBackend.connect(tmp_path / "a" / "socket")
            assert backend is not None
            try:
                feeds = await backend.carry_feeds()
                assert [(f.id, f.messages, f.hops) for f in feeds] == [(a.id, 3, 0)]
                with pytest.raises(BackendError, match="is not a folder"):
                    await backend.carry_target(str(tmp_path / "nowhere" / "x.bundle"))
                steps: list[Progress] = []
                bundle = tmp_path / "a.bundle"
                written = await backend.write_bundle(str(bundle), CarrySpec(), steps.append)
                assert written.messages == 3 and bundle.exists()
                assert steps[-1] == Progress("export", 3, 3, "messages")
                app = SsbsyncApp(backend)
                async with app.run_test(size=SIZE) as pilot:
                    await pilot.press("f5")
                    await until(pilot, lambda: bool(getattr(app.screen, "feeds", None)))
                    screen = app.screen
                    field = screen.query_one("#target", Input)
                    field.value = str(tmp_path / "stick")
                    await pilot.press("enter")
                    await until(pilot, lambda: getattr(screen, "target", None) is not None)
                    await pilot.press("space", "w")
                    result = screen.query_one("#carry-result", Static)
                    await until(pilot, lambda: "is now a stick" in str(result.render()))
                stick = Stick.open(tmp_path / "stick", a.config.network_key)
                assert stick.carry == CarrySpec((a.id,))
            finally:
                await backend.close()

    run(go)
