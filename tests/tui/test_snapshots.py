"""The layout of each screen at 80x24, as SVG snapshots (pytest-textual-snapshot), on the
seeded store with the clock fixed. Update after a deliberate change with
`pytest tests/tui --snapshot-update` and look at the report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from ssbsync.bundle import CarrySpec, Stick
from ssbsync.core.refs import FeedId
from ssbsync.node import config as node_config
from ssbsync.node.api import NodeAPI
from ssbsync.node.browse import Progress
from ssbsync.tui.app import SsbsyncApp
from ssbsync.tui.backend import DirectBackend, PeerState, StickState, SyncStatus
from ssbsync.tui.screens.carry import CarryScreen
from ssbsync.tui.screens.compose import ComposeScreen
from ssbsync.tui.screens.feed import FeedScreen
from ssbsync.tui.screens.feeds import FeedsScreen
from ssbsync.tui.screens.sync import SyncScreen
from ssbsync.tui.screens.thread import ThreadScreen
from tests.tui.seed import AUTHORS, NOW

SIZE = (80, 24)
SnapCompare = Callable[..., bool]


async def until(pilot: Pilot[Any], check: Callable[[], bool]) -> None:
    for _ in range(500):
        if check():
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError("the screen did not get there in time")


async def feeds_shown(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, FeedsScreen) and bool(app.screen.shown))


async def feed_shown(pilot: Pilot[Any]) -> None:
    await feeds_shown(pilot)
    await pilot.press(*"wu2x", "enter")
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, FeedScreen) and bool(app.screen.views))


def test_feeds_screen(snap_compare: SnapCompare, app: SsbsyncApp) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=feeds_shown)


def test_feed_screen(snap_compare: SnapCompare, app: SsbsyncApp) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=feed_shown)


def test_thread_screen(snap_compare: SnapCompare, app: SsbsyncApp) -> None:
    async def thread_shown(pilot: Pilot[Any]) -> None:
        await feed_shown(pilot)
        await pilot.press("down", "down", "enter")
        screen = pilot.app.screen
        await until(pilot, lambda: isinstance(pilot.app.screen, ThreadScreen))
        screen = pilot.app.screen
        assert isinstance(screen, ThreadScreen)
        await until(pilot, lambda: screen.thread is not None)

    assert snap_compare(app, terminal_size=SIZE, run_before=thread_shown)


def test_compose_screen(snap_compare: SnapCompare, app: SsbsyncApp) -> None:
    async def composing(pilot: Pilot[Any]) -> None:
        await feed_shown(pilot)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(pilot.app.screen, ComposeScreen))
        await pilot.press(*"Meet you at the **harbour**?")

    assert snap_compare(app, terminal_size=SIZE, run_before=composing)


def test_sync_screen_without_a_node(snap_compare: SnapCompare, app: SsbsyncApp) -> None:
    async def syncing(pilot: Pilot[Any]) -> None:
        await feeds_shown(pilot)
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(pilot.app.screen, SyncScreen))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=SIZE, run_before=syncing)


def test_carry_screen_over_a_sticks_room(
    snap_compare: SnapCompare,
    app: SsbsyncApp,
    seeded: tuple[Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stick (fixed id, a max size so its room does not depend on this disk) carrying one
    chosen feed and those within 1 hop: more than fits, so the total is a warning."""
    monkeypatch.chdir(tmp_path)  # the path typed is relative: the same on every machine
    (tmp_path / "stick").mkdir()
    Stick.init(
        tmp_path / "stick", network_key=node_config.load(seeded[0]).network_key,
        carry=CarrySpec((FeedId(AUTHORS[2].id),), 1), max_size=50_000, now_ms=1,
        stick_id="5ca1ab1e",
    )  # fmt: skip

    async def carrying(pilot: Pilot[Any]) -> None:
        await feeds_shown(pilot)
        await pilot.press("f5")
        screen = pilot.app.screen
        await until(pilot, lambda: isinstance(screen, CarryScreen) and bool(screen.feeds))
        assert isinstance(screen, CarryScreen)
        await pilot.press(*"stick", "enter")
        await until(pilot, lambda: screen.target is not None)

    assert snap_compare(app, terminal_size=SIZE, run_before=carrying)


class FixedSync(DirectBackend):
    """The seeded store, with a running node's sync status made up: the layout of peers and
    sticks, the same on every run (tests/tui/test_node_backend.py has the real node)."""

    def __init__(self, api: NodeAPI) -> None:
        super().__init__(api)
        self.live = True

    async def sync_status(self) -> SyncStatus | None:
        near = PeerState(AUTHORS[0].id, "net:10.0.0.5:8008~shs:x", True, True, 0, 0, None)
        again = (NOW + 300) * 1000
        far = PeerState(AUTHORS[1].id, "net:10.0.0.7:8008~shs:y", False, None, 0, 3, again)
        step = Progress("export", 1200, 4800, "messages")
        said = "took 12 messages, gave 40 (2 other places known, 0 segments pruned, 0 problems)"
        sticks = (
            StickState("/dev/sdc1", None, "syncing", "", NOW, step),
            StickState("/dev/sdb1", "HARBOUR", "safe to remove", said, NOW - 60, None),
        )
        return SyncStatus((near, far), sticks)


@pytest.fixture
def live_app(seeded: tuple[Path, dict[str, str]]) -> Iterator[SsbsyncApp]:
    backend = FixedSync(NodeAPI(seeded[0], clock=lambda: NOW))
    yield SsbsyncApp(backend, now=lambda: NOW)
    asyncio.run(backend.close())


def test_sync_screen_with_peers_and_sticks(snap_compare: SnapCompare, live_app: SsbsyncApp) -> None:
    async def syncing(pilot: Pilot[Any]) -> None:
        await feeds_shown(pilot)
        await pilot.press("f3")
        screen = pilot.app.screen
        await until(pilot, lambda: isinstance(screen, SyncScreen))
        await until(pilot, lambda: screen.query_one("#sticks").display)

    assert snap_compare(live_app, terminal_size=SIZE, run_before=syncing)
