"""Sync: the peers the running node knows, which are connected, how far replication with
each has come ("complete" when nothing is outstanding), and connection failures in words;
under them the sticks the node's hotplug watcher saw (syncing with its progress, "safe to
remove", or failed with the reason), newest first.

Refreshed every two seconds; a refresh still running is replaced by the next (exclusive
worker), so a slow node never queues them up. Without a running node it says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ssbsync.tui import format as fmt
from ssbsync.tui.backend import PeerState, StickState, SyncStatus
from ssbsync.tui.base import backend_of, tui_app

REFRESH_SECONDS = 2.0
NO_NODE = (
    "No node is running for this folder, so nothing is syncing.\n"
    "Start one with `ssbsync start` (in another terminal or as a service), then come back."
)


def replication(peer: PeerState) -> str:
    if not peer.connected:
        return "—"
    if peer.complete is None:
        return "starting"
    if peer.complete:
        return "complete"
    return f"{peer.outstanding} feed{'s' if peer.outstanding != 1 else ''} to go"


STICK_STYLES = {"safe to remove": "bold green", "failed": "bold red", "syncing": "bold yellow"}
PHASES = {"import": "taking from it", "export": "writing to it"}


def stick_line(stick: StickState) -> Text:
    """One stick in words: `STICK (/dev/sdb1): safe to remove — took 3 messages, gave 2 …`."""
    name = f"{stick.label} ({stick.device})" if stick.label else stick.device
    line = Text(f"{name}: ")
    line.append(stick.state, STICK_STYLES.get(stick.state, "bold"))
    step = stick.progress
    if stick.state == "syncing" and step is not None:
        doing = PHASES.get(step.phase, step.phase)
        of = f" of {step.total}" if step.total else ""
        line.append(f" — {doing}: {step.done}{of} {step.unit}")
    elif stick.detail:
        line.append(f" — {stick.detail}")
    return line


def problems(status: SyncStatus, names: dict[str, str], now: float) -> list[str]:
    """Peers we fail to reach, as sentences."""
    found = []
    for peer in status.peers:
        if peer.connected or peer.failures == 0:
            continue
        where = peer.address.split("~")[0] if peer.address else "its address"
        again = ""
        if peer.next_attempt is not None:
            wait = max(0, int(peer.next_attempt / 1000 - now))
            again = (
                f"; trying again in {wait // 60} min"
                if wait >= 60
                else f"; trying again in {wait} s"
            )
        tries = f"{peer.failures} attempt{'s' if peer.failures != 1 else ''}"
        found.append(
            f"Could not reach {fmt.feed_label(peer.key, names)} at {where} ({tries}{again})."
        )
    return found


class SyncScreen(Screen[None]):
    @dataclass
    class Updated(Message):
        status: SyncStatus | None

    @dataclass
    class Failed(Message):
        error: str

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("asking the node…", id="sync-summary")
        yield DataTable(id="peers", cursor_type="row")
        yield Static("", id="sticks")
        yield Static("", id="sync-errors")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, width in (("Peer", 20), ("Address", 30), ("State", 10), ("Replication", 13)):
            table.add_column(label, key=label.lower(), width=width)
        self.query_one("#sticks", Static).display = False
        self.poll()
        self.timer = self.set_interval(REFRESH_SECONDS, self.poll, pause=not backend_of(self).live)

    def on_screen_suspend(self) -> None:
        self.timer.pause()  # another mode is showing: no need to ask the node

    def on_screen_resume(self) -> None:
        if backend_of(self).live:
            self.timer.resume()
            self.poll()

    @work(exclusive=True, group="sync")
    async def poll(self) -> None:
        try:
            self.post_message(self.Updated(await backend_of(self).sync_status()))
        except Exception as err:
            self.post_message(self.Failed(str(err)))

    def on_sync_screen_updated(self, message: Updated) -> None:
        summary = self.query_one("#sync-summary", Static)
        table = self.query_one(DataTable)
        sticks = self.query_one("#sticks", Static)
        if message.status is None:
            summary.update(NO_NODE)
            table.display = sticks.display = False
            return
        sticks.display = bool(message.status.sticks)
        sticks.update(Text("\n").join(stick_line(s) for s in message.status.sticks))
        names, now = tui_app(self).names, tui_app(self).now()
        peers = message.status.peers
        connected = [p for p in peers if p.connected]
        done = [p for p in connected if p.complete]
        summary.update(
            f"{len(connected)} connected, {len(done)} complete, {len(peers)} peers known"
        )
        table.clear()
        for peer in sorted(peers, key=lambda p: (not p.connected, p.key)):
            table.add_row(
                fmt.feed_label(peer.key, names),
                (peer.address or "incoming").split("~")[0],
                "connected" if peer.connected else "idle",
                replication(peer),
                key=peer.key,
            )
        errors = problems(message.status, names, now)
        self.query_one("#sync-errors", Static).update("\n".join(errors))

    def on_sync_screen_failed(self, message: Failed) -> None:
        self.query_one("#sync-summary", Static).update(f"The node did not answer: {message.error}")
