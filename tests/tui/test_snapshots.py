"""The layout of each screen at 80x24, as SVG snapshots (pytest-textual-snapshot), on the
seeded store with the clock fixed. Update after a deliberate change with
`pytest tests/tui --snapshot-update` and look at the report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from ssbsync.tui.app import SsbsyncApp
from ssbsync.tui.screens.compose import ComposeScreen
from ssbsync.tui.screens.feed import FeedScreen
from ssbsync.tui.screens.feeds import FeedsScreen
from ssbsync.tui.screens.sync import SyncScreen
from ssbsync.tui.screens.thread import ThreadScreen

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
