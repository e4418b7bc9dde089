"""One feed's messages, newest first, a page at a time; Enter opens the thread.

Posts show their text as markdown (the start of it; the thread shows all), other messages
one line saying what they do. Private messages to us are shown opened, marked "private".
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from ssbsync.node.browse import FeedSummary, MessageView
from ssbsync.tui import format as fmt
from ssbsync.tui.base import backend_of, tui_app

PAGE = 50


def message_header(view: MessageView, names: dict[str, str], with_author: bool) -> Text:
    header = Text()
    if with_author:
        header.append(fmt.feed_label(view.author, names), "bold")
        header.append("  ")
    header.append(f"#{view.sequence}  {fmt.date(view.timestamp)}", "dim")
    if view.private:
        header.append("  private", "bold magenta")
    if view.root:
        header.append("  reply", "cyan")
    if view.votes:
        header.append(f"  ♥ {len(view.votes)}", "red")
    return header


def message_body(view: MessageView, names: dict[str, str], full: bool) -> RenderableType:
    if view.text is None:
        return Text(fmt.summary(view, names), "italic")
    return Markdown(view.text if full else fmt.preview(view.text))


class FeedScreen(Screen[None]):
    BINDINGS = [  # noqa: RUF012 - Textual's declaration style
        Binding("escape", "app.pop_screen", "Back"),
        Binding("m", "message", "Private message"),
    ]

    @dataclass
    class Loaded(Message):
        views: list[MessageView]

    @dataclass
    class Failed(Message):
        error: str

    def __init__(self, feed: FeedSummary) -> None:
        super().__init__()
        self.feed = feed
        self.views: list[MessageView] = []
        self.more = True  # older messages left to load
        self.loading = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self._title(), id="feed-title")
        yield OptionList(id="messages")
        yield Footer()

    def _title(self) -> str:
        name = self.feed.name or fmt.short_id(self.feed.id, 12)
        return f"{name}  {self.feed.messages} messages, {fmt.size(self.feed.bytes)}"

    def on_mount(self) -> None:
        self.sub_title = self.feed.id
        self.query_one(OptionList).focus()
        self.load_older()

    @work(exclusive=True, group="feed")
    async def load_older(self) -> None:
        self.loading = True
        before = self.views[-1].sequence if self.views else None
        try:
            views = await backend_of(self).feed_page(self.feed.id, before, PAGE)
        except Exception as err:
            self.post_message(self.Failed(str(err)))
        else:
            self.post_message(self.Loaded(views))

    def on_feed_screen_loaded(self, message: Loaded) -> None:
        self.loading = False
        self.more = len(message.views) == PAGE and message.views[-1].sequence > 1
        self.views += message.views
        names = tui_app(self).names
        options = self.query_one(OptionList)
        for view in message.views:
            if options.option_count:
                options.add_option(None)  # a rule between messages
            body = message_body(view, names, full=False)
            options.add_option(Option(Group(message_header(view, names, False), body), id=view.key))
        if options.highlighted is None and options.option_count:
            options.highlighted = 0
        if not self.views:
            self.query_one("#feed-title", Static).update(f"{self._title()} — nothing held")

    def on_feed_screen_failed(self, message: Failed) -> None:
        self.loading = False
        self.notify(f"Could not read the feed: {message.error}", severity="error")

    @on(OptionList.OptionHighlighted)
    def _near_end(self, event: OptionList.OptionHighlighted) -> None:
        if (
            self.more
            and not self.loading
            and event.option_index >= self.query_one(OptionList).option_count - 10
        ):
            self.load_older()

    @on(OptionList.OptionSelected)
    def _open(self, event: OptionList.OptionSelected) -> None:
        from ssbsync.tui.screens.thread import ThreadScreen

        if event.option.id is not None:
            self.app.push_screen(ThreadScreen(self._thread_of(event.option.id)))

    def _thread_of(self, key: str) -> str:
        """A vote opens the thread of what it votes on; anything else its own thread."""
        view = next((v for v in self.views if v.key == key), None)
        content = view.content if view is not None else None
        vote = content.get("vote") if isinstance(content, dict) else None
        link = vote.get("link") if isinstance(vote, dict) and view and view.type == "vote" else None
        return link if isinstance(link, str) and link.startswith("%") else key

    def action_message(self) -> None:
        from ssbsync.tui.screens.compose import ComposeScreen

        self.app.push_screen(ComposeScreen(recipients=[self.feed.id]))
