"""The ssbsync TUI: Feeds, Sync and Carry as modes (F2, F3, F5), Compose on F4, the command
palette on Ctrl+P; feed and thread views are pushed from Feeds (ARCHITECTURE.md "TUI", issue 7).

`run_tui` picks the backend: the running node over `<folder>/socket` when one answers,
else the store opened in-process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from ssbsync.node.api import NodeAPI
from ssbsync.node.browse import FeedSummary
from ssbsync.tui.backend import Backend, DirectBackend, NodeBackend
from ssbsync.tui.screens.carry import CarryScreen
from ssbsync.tui.screens.compose import ComposeScreen
from ssbsync.tui.screens.feeds import FeedsScreen
from ssbsync.tui.screens.sync import SyncScreen


class SsbsyncApp(App[None]):
    TITLE = "ssbsync"
    CSS_PATH = "ssbsync.tcss"
    # The screens a person switches between; each keeps its place.
    MODES: ClassVar[dict[str, Callable[[], Screen[None]]]] = {  # type: ignore[assignment]
        "feeds": FeedsScreen,
        "sync": SyncScreen,
        "carry": CarryScreen,
    }
    DEFAULT_MODE = "feeds"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "switch_mode('feeds')", "Feeds"),
        Binding("f3", "switch_mode('sync')", "Sync"),
        Binding("f4", "compose", "Compose"),
        Binding("f5", "switch_mode('carry')", "Carry"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, backend: Backend, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.backend = backend
        self.now = now  # the clock "3d ago" is measured against (fixed in snapshot tests)
        self.names: dict[str, str] = {}  # feed id -> its self-assigned name, from Feeds

    def learn_names(self, feeds: Iterable[FeedSummary]) -> None:
        self.names.update({f.id: f.name for f in feeds if f.name})

    def on_mount(self) -> None:
        self.sub_title = "node running" if self.backend.live else "no node running: offline"

    def action_compose(self) -> None:
        self.push_screen(ComposeScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Feeds", "Every feed we hold", lambda: self.switch_mode("feeds"))
        yield SystemCommand("Sync", "Peers and replication", lambda: self.switch_mode("sync"))
        yield SystemCommand("Compose", "Write a post or private message", self.action_compose)
        yield SystemCommand(
            "Carry", "Feeds to a stick or a bundle", lambda: self.switch_mode("carry")
        )


def run_tui(folder: Path, open_store: Callable[[], NodeAPI]) -> int:
    """`ssbsync tui`: through the running node if there is one, else on the store."""
    asyncio.run(_run(folder, open_store))
    return 0


async def _run(folder: Path, open_store: Callable[[], NodeAPI]) -> None:
    # Connected on the loop the app runs on: the client's session belongs to it.
    backend: Backend = await NodeBackend.connect(folder / "socket") or DirectBackend(open_store())
    try:
        await SsbsyncApp(backend).run_async()
    finally:
        await backend.close()
