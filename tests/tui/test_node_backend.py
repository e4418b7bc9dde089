"""The TUI against a running node, over its local socket (`NodeBackend`): feeds and threads
come from browse.*, a post is published by the node, and the Sync screen shows a connected
peer's replication reaching "complete"."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from ssbsync.tui.app import SsbsyncApp
from ssbsync.tui.backend import NodeBackend
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
                    await pilot.press("f5")
                    await until(pilot, lambda: len(feeds.feeds) == 2)
                    assert {f.name for f in feeds.feeds} == {None, "bee"}
            finally:
                await backend.close()

    run(go)
