"""Compose: a post, a reply (root and branch from the thread), or a private message.

Recipients (names or @ids, comma-separated) make it private: `content.recps`, which the
node boxes for them and for us (PROTOCOL.md §9; private-box allows 7). Ctrl+S sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, Static, TextArea

from ssbsync.core.refs import is_feed_id
from ssbsync.tui import format as fmt
from ssbsync.tui.base import backend_of, tui_app

MAX_RECIPIENTS = 7  # private-box's limit (§9)


class ComposeError(ValueError):
    """What is wrong with the draft, in words for the writer."""


def resolve_recipients(text: str, names: Mapping[str, str]) -> list[str]:
    """`alice, @Xy…=.ed25519` → feed ids; a name must belong to exactly one feed we hold."""
    by_name: dict[str, list[str]] = {}
    for feed, name in names.items():
        by_name.setdefault(name.casefold(), []).append(feed)
    found: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if is_feed_id(part):
            feed = part
        else:
            owners = by_name.get(part.lstrip("@").casefold(), [])
            if len(owners) != 1:
                problem = "no feed we hold is" if not owners else f"{len(owners)} feeds are"
                raise ComposeError(f"{problem} called {part!r}: give the @id instead")
            feed = owners[0]
        if feed not in found:
            found.append(feed)
    if len(found) > MAX_RECIPIENTS:
        raise ComposeError(f"a private message can have at most {MAX_RECIPIENTS} recipients")
    return found


def draft(text: str, root: str | None, branch: str | None, recipients: list[str]) -> dict[str, Any]:
    """The content to publish (ssb's post shape: type, text, root, branch, recps)."""
    if not text.strip():
        raise ComposeError("write something first")
    content: dict[str, Any] = {"type": "post", "text": text}
    if root is not None:
        content["root"] = root
        content["branch"] = branch or root
    if recipients:
        content["recps"] = recipients
    return content


class ComposeScreen(Screen[str | None]):
    BINDINGS = [  # noqa: RUF012 - Textual's declaration style
        Binding("ctrl+s", "send", "Send", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    @dataclass
    class Sent(Message):
        key: str

    @dataclass
    class Failed(Message):
        error: str

    def __init__(
        self,
        *,
        root: str | None = None,
        branch: str | None = None,
        recipients: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.root, self.branch = root, branch
        self.recipients = recipients or []
        self.sending = False

    def compose(self) -> ComposeResult:
        names = tui_app(self).names
        yield Header()
        title = "Private message" if self.recipients else "New post"
        if self.root:
            kind = "Private reply" if self.recipients else "Reply"
            title = f"{kind} to {fmt.short_id(self.root)}"
        yield Label(title, id="compose-title")
        yield Input(
            ", ".join(fmt.feed_label(r, names) if r in names else r for r in self.recipients),
            placeholder="private to: names or @ids, comma-separated (empty: public)",
            id="recipients",
        )
        yield TextArea(id="text", soft_wrap=True, show_line_numbers=False)
        yield Static("", id="compose-error")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "markdown; ctrl+s sends"
        self.query_one(TextArea).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_send(self) -> None:
        if self.sending:
            return
        names = tui_app(self).names
        try:
            recipients = resolve_recipients(self.query_one("#recipients", Input).value, names)
            content = draft(self.query_one(TextArea).text, self.root, self.branch, recipients)
        except ComposeError as err:
            self.query_one("#compose-error", Static).update(str(err))
            return
        self.sending = True
        self.query_one("#compose-error", Static).update("sending…")
        self.send(content)

    @work(exclusive=True, group="compose")
    async def send(self, content: dict[str, Any]) -> None:
        try:
            self.post_message(self.Sent(await backend_of(self).publish(content)))
        except Exception as err:
            self.post_message(self.Failed(str(err)))

    def on_compose_screen_sent(self, message: Sent) -> None:
        self.app.notify(f"Published {fmt.short_id(message.key)}")
        self.dismiss(message.key)

    def on_compose_screen_failed(self, message: Failed) -> None:
        self.sending = False
        self.query_one("#compose-error", Static).update(f"Not sent: {message.error}")
