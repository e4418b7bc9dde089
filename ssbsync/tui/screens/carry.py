"""Carry: choose the feeds to take on a stick or into a bundle, see what they weigh against
the room there, and write the stick's carry list (w) or a bundle (b).

Type where (a stick folder, a folder to make a stick, or a bundle file) and Enter: a stick's
own carry list is loaded to be changed. Space ticks a feed; `a` ticks every feed within N hops
(+/- change N); `h` keeps "within N hops" itself (feeds that come nearer later are carried
too); `e` every feed; `n` none; `l` the blobs too. Sizes are what the target still lacks of
each feed, in stored bytes — the measure a stick sync budgets with (ssbsync.node.carrying).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, ProgressBar, Static

from ssbsync.node.browse import (
    BundleWritten,
    CarryFeed,
    CarryTarget,
    Progress,
    bundle_problem,
    carry_list_problem,
)
from ssbsync.tui import format as fmt
from ssbsync.tui.base import backend_of
from ssbsync.tui.choice import CarryChoice

KEYS_HINT = (
    "Type where to carry (a stick folder, or a file for a bundle) and Enter. Then: space"
    " ticks, a ticks within N hops (+/- N), h keeps 'within N hops', e every feed, n none,"
    " l blobs; w writes the stick's carry list, b a bundle."
)
WHERE = {"stick": "on the stick", "folder": "in the folder", "bundle": "for the bundle"}
TICKED, UNTICKED = Text("[x]", "bold green"), Text("[ ]")  # Text: a str would be markup


def sort_key(feed: CarryFeed) -> tuple[object, ...]:
    """Nearest first (us, then who we follow, …), then by name."""
    distance = feed.hops if feed.hops is not None and feed.hops >= 0 else 99
    return (distance, (feed.name or "~" + feed.id).casefold())


def target_line(target: CarryTarget) -> str:
    """What the target is, in words."""
    if target.kind == "stick":
        carry = target.carry
        what = "every feed" if carry is None else CarryChoice.from_spec(carry).describe([])
        limit = f", at most {fmt.size(target.max_size)}" if target.max_size else ""
        said = f"Stick {target.stick_id} carries {what}; {fmt.size(target.used)} on it{limit}."
    elif target.kind == "folder":
        said = f"{target.path} is not a stick yet: w makes it one."
    else:
        said = f"A bundle file: b writes {target.path}."
    return said if target.writable else f"{said} Not writable."


def total_line(count: int, total: int, target: CarryTarget | None) -> tuple[str, bool]:
    """The total against the room ("3 feeds, 1.2 MB of 2.0 GB free on the stick"), and
    whether it is more than fits."""
    chosen = f"{count} feed{'s' if count != 1 else ''}, {fmt.size(total)}"
    if target is None:
        return f"{chosen} (where to? type it above)", False
    where = WHERE[target.kind]
    if total > target.room:
        over = fmt.size(total - target.room)
        return f"{chosen}: {over} more than the {fmt.size(target.room)} free {where}!", True
    return f"{chosen} of {fmt.size(target.room)} free {where}", False


def written_line(path: str, written: BundleWritten) -> str:
    blobs = f", {written.blobs} blobs ({fmt.size(written.blob_bytes)})" if written.blobs else ""
    feeds = f"{written.feeds} feed{'s' if written.feeds != 1 else ''}"
    return (
        f"Wrote {path}: {written.messages} messages of {feeds}{blobs},"
        f" {fmt.size(written.bytes)} compressed."
    )


def progress_line(step: Progress) -> str:
    if step.total:
        return f"Writing the bundle: {step.done} of {step.total} {step.unit}…"
    return f"Writing the bundle: {step.done} {step.unit}…"


class CarryScreen(Screen[None]):
    BINDINGS = [  # noqa: RUF012 - Textual's declaration style
        Binding("space", "tick", "Tick"),
        Binding("a", "tick_within", "Within N", show=False),
        Binding("plus,equals_sign", "adjust(1)", "N+", show=False),
        Binding("minus", "adjust(-1)", "N-", show=False),
        Binding("h", "hops_mode", "Hops", show=False),
        Binding("e", "every", "Every feed", show=False),
        Binding("n", "clear", "None", show=False),
        Binding("l", "blobs", "Blobs", show=False),
        Binding("w", "write_carry", "Carry list"),
        Binding("b", "write_bundle", "Bundle"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    @dataclass
    class Loaded(Message):
        feeds: list[CarryFeed]

    @dataclass
    class Looked(Message):
        target: CarryTarget | None
        error: str | None = None

    @dataclass
    class Progressed(Message):
        step: Progress

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, CarryScreen.Progressed)  # only the latest counts

    @dataclass
    class Done(Message):
        said: str
        target: CarryTarget | None = None  # the stick after its carry list was written
        failed: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.feeds: list[CarryFeed] = []
        self.choice = CarryChoice()
        self.target: CarryTarget | None = None
        self.busy = False  # a write is running
        self.over_confirmed: tuple[str, int] | None = None  # (path, total) b was pressed for

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="where: /media/STICK, or ~/carry.bundle", id="target")
        yield Static(KEYS_HINT, id="target-info")
        yield DataTable(id="carry-feeds", cursor_type="row", zebra_stripes=True)
        yield Static("loading feeds…", id="carry-total")
        yield ProgressBar(id="carry-progress", show_eta=False)
        yield Static("", id="carry-result")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key, width in (
            ("", "tick", 3),
            ("Name", "name", 28),
            ("Hops", "hops", 4),
            ("Msgs", "msgs", 7),
            ("Size", "size", 9),
        ):
            table.add_column(label, key=key, width=width)
        self.query_one(ProgressBar).display = False
        self.query_one(Input).focus()
        self.load()

    def on_screen_resume(self) -> None:
        if self.feeds:  # back from another screen: feeds may have grown
            self.load()

    # -- reading -----------------------------------------------------------------------------

    @work(exclusive=True, group="carry-feeds")
    async def load(self) -> None:
        try:
            self.post_message(self.Loaded(await backend_of(self).carry_feeds()))
        except Exception as err:
            self.show_result(f"Could not read the feeds: {err}", failed=True)

    def on_carry_screen_loaded(self, message: Loaded) -> None:
        self.feeds = sorted(message.feeds, key=sort_key)
        self.refresh_table()

    @on(Input.Submitted, "#target")
    def _where(self, event: Input.Submitted) -> None:
        self.look(event.value)
        self.query_one(DataTable).focus()

    @work(exclusive=True, group="carry-target")
    async def look(self, path: str) -> None:
        try:
            self.post_message(self.Looked(await backend_of(self).carry_target(path)))
        except Exception as err:
            self.post_message(self.Looked(None, str(err)))

    def on_carry_screen_looked(self, message: Looked) -> None:
        self.set_target(message.target, message.error)

    def set_target(self, target: CarryTarget | None, error: str | None = None) -> None:
        info = self.query_one("#target-info", Static)
        if target is None:
            info.update(Text(f"Cannot carry there: {error}", "bold red"))
        else:
            info.update(target_line(target))
            stick_changed = target.kind == "stick" and (
                self.target is None or self.target.stick_id != target.stick_id
            )
            if stick_changed and target.carry is not None:  # show what it carries now
                self.choice = CarryChoice.from_spec(target.carry)
        self.target = target
        self.refresh_table()

    # -- showing -----------------------------------------------------------------------------

    def size_of(self, feed: CarryFeed) -> int:
        return feed.bytes if self.target is None else self.target.size_of(feed)

    def refresh_table(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for feed in self.feeds:
            table.add_row(
                TICKED if self.choice.carries(feed) else UNTICKED,
                feed.name or fmt.short_id(feed.id, 12),
                fmt.hops(feed),
                str(feed.messages),
                fmt.size(self.size_of(feed)),
                key=feed.id,
            )
        if self.feeds:
            table.move_cursor(row=min(max(row, 0), len(self.feeds) - 1))
        self.refresh_total()

    def refresh_total(self) -> None:
        carried = self.choice.carried(self.feeds)
        text, over = total_line(len(carried), self.total(), self.target)
        mode = self.choice.describe(self.feeds)
        line = self.query_one("#carry-total", Static)
        line.update(f"{text} · {mode}")
        line.set_class(over, "over")
        self.sub_title = f"carry {mode}"

    def total(self) -> int:
        return sum(self.size_of(feed) for feed in self.choice.carried(self.feeds))

    def show_result(self, said: str, failed: bool = False) -> None:
        result = self.query_one("#carry-result", Static)
        result.update(said)
        result.set_class(failed, "failed")

    # -- choosing ----------------------------------------------------------------------------

    def current(self) -> CarryFeed | None:
        row = self.query_one(DataTable).cursor_row
        return self.feeds[row] if 0 <= row < len(self.feeds) else None

    def action_tick(self) -> None:
        feed = self.current()
        if feed is not None:
            self.choice.toggle(feed, self.feeds)
            self.refresh_table()

    def action_tick_within(self) -> None:
        added = self.choice.tick_within(self.feeds)
        level = self.choice.level
        self.show_result(f"Ticked {added} more feeds within {level} hop{'s' * (level != 1)}.")
        self.refresh_table()

    def action_adjust(self, delta: int) -> None:
        self.choice.adjust(delta)
        level, hops = self.choice.level, f"{self.choice.level} hop{'s' * (self.choice.level != 1)}"
        doing = "carrying the feeds" if self.choice.hops is not None else "a ticks the feeds"
        self.show_result(f"N = {level}: {doing} within {hops}.")
        self.refresh_table()

    def action_hops_mode(self) -> None:
        self.choice.toggle_hops()
        self.refresh_table()

    def action_every(self) -> None:
        self.choice.toggle_every()
        self.refresh_table()

    def action_clear(self) -> None:
        self.choice.clear()
        self.refresh_table()

    def action_blobs(self) -> None:
        self.choice.blobs = not self.choice.blobs
        self.refresh_total()

    def action_reload(self) -> None:
        self.load()
        if self.target is not None:
            self.look(self.target.path)

    # -- writing -----------------------------------------------------------------------------

    def ready(self, problem: str | None) -> bool:
        """Whether a write may start; if not, say why."""
        if self.busy:
            problem = "Still writing: wait for it to finish."
        elif self.target is None:
            problem = "Where to? Type a stick folder or a bundle file above, then Enter."
        elif self.choice.empty:
            problem = "Nothing is ticked: space ticks a feed (h: within N hops, e: every feed)."
        if problem is not None:
            self.show_result(problem, failed=True)
            return False
        return True

    def action_write_carry(self) -> None:
        problem = None if self.target is None else carry_list_problem(self.target)
        if not self.ready(problem):
            return
        assert self.target is not None
        self.busy = True
        self.show_result(f"Writing the carry list to {self.target.path}…")
        self.write_carry(self.target)

    @work(exclusive=True, group="carry-write")
    async def write_carry(self, target: CarryTarget) -> None:
        spec = self.choice.spec(self.feeds)
        try:
            after = await backend_of(self).write_carry(target.path, spec)
        except Exception as err:
            self.post_message(self.Done(f"The carry list was not written: {err}", failed=True))
            return
        made = "is now a stick and carries" if target.kind == "folder" else "now carries"
        said = f"{target.path} {made} {self.choice.describe(self.feeds)}."
        if self.total() > after.room:
            said += " More than fits: each sync carries what fits, the rest the next time."
        self.post_message(self.Done(said, after))

    def action_write_bundle(self) -> None:
        problem = None if self.target is None else bundle_problem(self.target)
        if not self.ready(problem):
            return
        assert self.target is not None
        total, room = self.total(), self.target.room
        if total > room and self.over_confirmed != (self.target.path, total):
            self.over_confirmed = (self.target.path, total)
            self.show_result(
                f"No room: the bundle needs up to {fmt.size(total)} (compressed, it is often"
                f" smaller) and {fmt.size(room)} is free. Press b again to try anyway.",
                failed=True,
            )
            return
        self.busy = True
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.show_result(f"Writing {self.target.path}…")
        self.write_bundle(self.target)

    @work(exclusive=True, group="carry-write")
    async def write_bundle(self, target: CarryTarget) -> None:
        spec = self.choice.spec(self.feeds)
        try:
            written = await backend_of(self).write_bundle(target.path, spec, self._progressed)
        except Exception as err:
            self.post_message(self.Done(f"The bundle was not written: {err}", failed=True))
            return
        self.post_message(self.Done(written_line(target.path, written)))

    def _progressed(self, step: Progress) -> None:
        self.post_message(self.Progressed(step))  # replaced by the next if it is not shown yet

    def on_carry_screen_progressed(self, message: Progressed) -> None:
        if not self.busy:
            return  # a late report of a write that has ended
        step = message.step
        self.query_one(ProgressBar).update(total=step.total, progress=step.done)
        self.show_result(progress_line(step))

    def on_carry_screen_done(self, message: Done) -> None:
        self.busy = False
        self.over_confirmed = None
        self.query_one(ProgressBar).display = False
        if message.target is not None:
            self.set_target(message.target)
        self.show_result(message.said, failed=message.failed)
