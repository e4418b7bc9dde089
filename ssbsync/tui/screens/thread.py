"""A thread: the root post and its replies in order, with votes, mentions and blobs.

`r` replies (to the same recipients when the thread is private).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ssbsync.node.browse import MessageView, Thread
from ssbsync.tui import format as fmt
from ssbsync.tui.base import backend_of, tui_app
from ssbsync.tui.screens.feed import message_body, message_header


def extras(view: MessageView, names: dict[str, str]) -> Text:
    """Votes and mentions under a message: who liked it, which feeds and blobs it names."""
    lines = Text()
    if view.votes:
        voters = ", ".join(fmt.feed_label(v, names) for v in view.votes[:5])
        more = f" and {len(view.votes) - 5} more" if len(view.votes) > 5 else ""
        lines.append(f"♥ {voters}{more}\n", "red")
    for mention in view.mentions:
        if mention.kind == "blob":
            size = fmt.size(mention.size) if mention.size is not None else "size unknown"
            lines.append(f"📎 {mention.name or 'blob'} ({size}) {fmt.short_id(mention.link)}\n")
        elif mention.kind == "feed":
            lines.append(f"@ {mention.name or fmt.feed_label(mention.link, names)}\n", "cyan")
        else:
            lines.append(f"↪ {fmt.short_id(mention.link)}\n", "dim")
    lines.rstrip()
    return lines


def recipients_of(view: MessageView | None) -> list[str]:
    """The recipients of a private message (so a reply stays among them)."""
    if view is None or not view.private or not isinstance(view.content, dict):
        return []
    recps = view.content.get("recps")
    found = (
        [r.get("link") if isinstance(r, dict) else r for r in recps or []]
        if isinstance(recps, list)
        else []
    )
    return [str(r) for r in found if isinstance(r, str)]


class ThreadScreen(Screen[None]):
    BINDINGS = [  # noqa: RUF012 - Textual's declaration style
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reply", "Reply"),
    ]

    @dataclass
    class Loaded(Message):
        thread: Thread

    @dataclass
    class Failed(Message):
        error: str

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.thread: Thread | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield VerticalScroll(Static("loading the thread…"), id="thread")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.key
        self.query_one("#thread").focus()
        self.load()

    def on_screen_resume(self) -> None:
        if self.thread is not None:  # back from writing a reply: show it
            self.load()

    @work(exclusive=True, group="thread")
    async def load(self) -> None:
        try:
            self.post_message(self.Loaded(await backend_of(self).thread(self.key)))
        except Exception as err:
            self.post_message(self.Failed(str(err)))

    async def on_thread_screen_loaded(self, message: Loaded) -> None:
        self.thread = message.thread
        names = tui_app(self).names
        box = self.query_one("#thread", VerticalScroll)
        await box.remove_children()
        parts: list[Static] = []
        if message.thread.root is None:
            parts.append(Static(f"The first message {fmt.short_id(message.thread.root_key)}"
                                " is not in this store.", classes="missing"))  # fmt: skip
        for view in ([message.thread.root] if message.thread.root else []) + list(
            message.thread.replies
        ):
            body = Group(
                message_header(view, names, True),
                message_body(view, names, True),
                extras(view, names),
            )
            parts.append(
                Static(body, classes="root" if view.key == message.thread.root_key else "reply")
            )
        await box.mount_all(parts)
        count = len(message.thread.replies)
        self.sub_title = f"thread, {count} repl{'y' if count == 1 else 'ies'}"

    def on_thread_screen_failed(self, message: Failed) -> None:
        self.notify(f"Could not read the thread: {message.error}", severity="error")

    def action_reply(self) -> None:
        from ssbsync.tui.screens.compose import ComposeScreen

        if self.thread is None:
            return
        replies = self.thread.replies
        branch = replies[-1].key if replies else self.thread.root_key
        self.app.push_screen(
            ComposeScreen(
                root=self.thread.root_key,
                branch=branch,
                recipients=recipients_of(self.thread.root),
            )
        )
