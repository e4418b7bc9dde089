"""Feeds: every feed we hold, with name, follow state, hops, size and last activity.

Type to filter (by name, description or id); F6 changes the sort; Enter opens the feed;
Ctrl+R reloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from ssbsync.node.browse import FeedSummary
from ssbsync.tui import format as fmt
from ssbsync.tui.base import backend_of, tui_app

SORTS = ("activity", "name", "size", "hops")
MOVES = {"down": "cursor_down", "up": "cursor_up", "pagedown": "page_down", "pageup": "page_up"}


def sort_key(order: str, feed: FeedSummary) -> tuple[object, ...]:
    """Most interesting first: newest, alphabetical, biggest, nearest."""
    label = (feed.name or "~" + feed.id).casefold()
    if order == "activity":
        return (-(feed.last_activity or 0), label)
    if order == "size":
        return (-feed.bytes, label)
    if order == "hops":
        distance = feed.hops if feed.hops is not None and feed.hops >= 0 else 99
        return (distance, label)
    return (label,)


def matches(feed: FeedSummary, query: str) -> bool:
    words = query.casefold().split()
    haystack = " ".join(filter(None, (feed.name, feed.description, feed.id))).casefold()
    return all(word in haystack for word in words)


class FeedsScreen(Screen[None]):
    BINDINGS = [  # noqa: RUF012 - Textual's declaration style
        Binding("f6", "cycle_sort", "Sort"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("ctrl+r", "reload", "Reload"),  # F5 is the Carry screen
    ]

    @dataclass
    class Loaded(Message):
        feeds: list[FeedSummary]

    @dataclass
    class Failed(Message):
        error: str

    def __init__(self) -> None:
        super().__init__()
        self.feeds: list[FeedSummary] = []
        self.order = "activity"
        self.shown: list[FeedSummary] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="type to filter by name, description or id",
            id="filter",
            select_on_focus=False,
        )
        yield DataTable(id="feeds", cursor_type="row", zebra_stripes=True)
        yield Static("loading feeds…", id="detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key, width in (
            ("Name", "name", 24),
            ("Hops", "hops", 4),
            ("", "rel", 7),
            ("Msgs", "msgs", 6),
            ("Size", "size", 9),
            ("Last", "last", 16),
        ):
            table.add_column(label, key=key, width=width)
        table.focus()
        self.load()

    def on_screen_resume(self) -> None:
        if self.feeds:  # back from a feed or compose: counts may have changed
            self.load()

    @work(exclusive=True, group="feeds")
    async def load(self) -> None:
        try:
            self.post_message(self.Loaded(await backend_of(self).feeds()))
        except Exception as err:
            self.post_message(self.Failed(str(err)))

    def on_feeds_screen_loaded(self, message: Loaded) -> None:
        self.feeds = message.feeds
        tui_app(self).learn_names(message.feeds)
        self.refresh_table()

    def on_feeds_screen_failed(self, message: Failed) -> None:
        self.query_one("#detail", Static).update(f"Could not read the feeds: {message.error}")

    def refresh_table(self) -> None:
        query = self.query_one("#filter", Input).value
        self.shown = sorted(
            (f for f in self.feeds if matches(f, query)), key=lambda f: sort_key(self.order, f)
        )
        table, now, me = self.query_one(DataTable), tui_app(self).now(), backend_of(self).me
        current = self.current()
        table.clear()
        for feed in self.shown:
            table.add_row(
                feed.name or fmt.short_id(feed.id, 12),
                fmt.hops(feed),
                fmt.relation(feed, me),
                str(feed.messages),
                fmt.size(feed.bytes),
                fmt.ago(feed.last_activity, now),
                key=feed.id,
            )
        self.sub_title = f"{len(self.shown)} of {len(self.feeds)} feeds, by {self.order}"
        ids = [f.id for f in self.shown]
        if current is not None and current.id in ids:  # stay on the feed after a reload
            table.move_cursor(row=ids.index(current.id))
        self.show_detail()

    def show_detail(self) -> None:
        table = self.query_one(DataTable)
        if not self.shown:
            text = "no feed matches" if self.feeds else "no feeds held yet"
        else:
            feed = self.shown[min(max(table.cursor_row, 0), len(self.shown) - 1)]
            about = f" — {feed.description}" if feed.description else ""
            text = f"{feed.id}{about}"
        self.query_one("#detail", Static).update(text)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self.show_detail()

    @on(Input.Changed, "#filter")
    def _filter(self) -> None:
        self.refresh_table()

    @on(Input.Submitted, "#filter")
    def _open_from_filter(self) -> None:
        self.open_current()

    @on(DataTable.RowSelected)
    def _open(self) -> None:
        self.open_current()

    def current(self) -> FeedSummary | None:
        row = self.query_one(DataTable).cursor_row
        return self.shown[row] if 0 <= row < len(self.shown) else None

    def open_current(self) -> None:
        from ssbsync.tui.screens.feed import FeedScreen

        feed = self.current()
        if feed is not None:
            self.app.push_screen(FeedScreen(feed))

    def on_key(self, event: events.Key) -> None:
        """Type to filter: a printable key on the table goes to the filter box; arrows in
        the filter box move the table's cursor."""
        field = self.query_one("#filter", Input)
        table = self.query_one(DataTable)
        if self.focused is table and event.is_printable and event.character:
            field.focus()
            field.insert_text_at_cursor(event.character)
            event.stop()
        elif self.focused is field and event.key in MOVES:
            getattr(table, f"action_{MOVES[event.key]}")()  # typing can go on
            event.stop()

    def action_cycle_sort(self) -> None:
        self.order = SORTS[(SORTS.index(self.order) + 1) % len(SORTS)]
        self.refresh_table()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        self.load()
