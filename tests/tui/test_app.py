"""The TUI's behaviour at 80x24 on a seeded store: filter, sort, open a feed and a thread,
write a post, a reply and a private message and find them in the store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Input, Static

from ssbsync.core import jsonv8
from ssbsync.tui.app import SsbsyncApp
from ssbsync.tui.backend import DirectBackend
from ssbsync.tui.screens.compose import ComposeScreen
from ssbsync.tui.screens.feed import FeedScreen
from ssbsync.tui.screens.feeds import FeedsScreen
from ssbsync.tui.screens.sync import NO_NODE, SyncScreen
from ssbsync.tui.screens.thread import ThreadScreen
from tests.tui.seed import AUTHORS, ME, PRIVATE_TEXT

SIZE = (80, 24)


async def until(pilot: Pilot[None], check: Callable[[], bool], seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await pilot.pause(0.02)
    raise AssertionError("the screen did not get there in time")


def run(test: Callable[[], object]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))  # type: ignore[arg-type]


async def feeds_loaded(app: SsbsyncApp, pilot: Pilot[None]) -> FeedsScreen:
    await until(pilot, lambda: isinstance(app.screen, FeedsScreen) and bool(app.screen.feeds))
    assert isinstance(app.screen, FeedsScreen)
    return app.screen


async def open_feed(app: SsbsyncApp, pilot: Pilot[None], query: str) -> FeedScreen:
    await feeds_loaded(app, pilot)
    await pilot.press(*query, "enter")
    await until(pilot, lambda: isinstance(app.screen, FeedScreen) and bool(app.screen.views))
    assert isinstance(app.screen, FeedScreen)
    return app.screen


def test_feeds_lists_every_feed_with_names_and_relations(app: SsbsyncApp) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            feeds = await feeds_loaded(app, pilot)
            by_id = {f.id: f for f in feeds.feeds}
            assert len(by_id) == 7
            assert by_id[ME.id].name == "me-on-the-boat" and by_id[ME.id].hops == 0
            assert by_id[AUTHORS[0].id].following and by_id[AUTHORS[0].id].hops == 1
            assert by_id[AUTHORS[3].id].blocking and by_id[AUTHORS[3].id].hops == -1
            assert by_id[AUTHORS[2].id].description == "fishing co-op"

    run(go)


def test_typing_filters_and_escape_clears(app: SsbsyncApp) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            feeds = await feeds_loaded(app, pilot)
            await pilot.press(*"fishing")  # the description matches, typed from the table
            assert feeds.query_one("#filter", Input).value == "fishing"
            assert [f.id for f in feeds.shown] == [AUTHORS[2].id]
            await pilot.press("escape")
            assert len(feeds.shown) == 7
            await pilot.press(*"node-", "down", "enter")  # arrows move the list while typing
            await until(pilot, lambda: isinstance(app.screen, FeedScreen))
            assert isinstance(app.screen, FeedScreen)
            assert app.screen.feed == feeds.shown[1]
            await pilot.press("escape")  # back: the reload keeps the cursor on that feed
            await until(pilot, lambda: app.screen is feeds)
            await pilot.pause(0.3)
            assert feeds.current() == feeds.shown[1]

    run(go)


def test_f6_cycles_the_sort(app: SsbsyncApp) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            feeds = await feeds_loaded(app, pilot)
            activity = [f.last_activity or 0 for f in feeds.shown]
            assert activity == sorted(activity, reverse=True)
            await pilot.press("f6")
            assert feeds.order == "name"
            named = [f.name for f in feeds.shown if f.name]
            assert named == sorted(named, key=str.casefold)
            await pilot.press("f6")
            sizes = [f.bytes for f in feeds.shown]
            assert feeds.order == "size" and sizes == sorted(sizes, reverse=True)
            await pilot.press("f6")
            assert feeds.order == "hops" and feeds.shown[0].id == ME.id

    run(go)


def test_feed_shows_private_message_opened_and_enter_opens_the_thread(
    app: SsbsyncApp, seeded: tuple[object, dict[str, str]]
) -> None:
    keys = seeded[1]

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            feed = await open_feed(app, pilot, "wu2x")  # AUTHORS[0], named node-wu2xeC
            newest = feed.views[0]
            assert newest.key == keys["private"] and newest.private
            assert newest.text == PRIVATE_TEXT  # opened for us
            # newest first: the private message, the vote, then the reply
            await pilot.press("down", "down", "enter")
            await until(pilot, lambda: isinstance(app.screen, ThreadScreen))
            thread_screen = app.screen
            assert isinstance(thread_screen, ThreadScreen)
            await until(pilot, lambda: thread_screen.thread is not None)
            thread = thread_screen.thread
            assert thread is not None and thread.root is not None
            assert thread.root.key == keys["photo"]
            assert thread.root.votes == (AUTHORS[0].id,)
            assert [r.key for r in thread.replies] == [keys["reply"]]
            assert thread.root.mentions[0].name == "harbour.jpg"
            await pilot.press("escape", "up", "enter")  # the vote (above the reply): its subject
            await until(pilot, lambda: app.screen is not thread_screen)
            voted = app.screen
            assert isinstance(voted, ThreadScreen) and voted.key == keys["photo"]

    run(go)


def test_compose_publishes_a_post(app: SsbsyncApp, backend: DirectBackend) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await feeds_loaded(app, pilot)
            await pilot.press("f4")
            await until(pilot, lambda: isinstance(app.screen, ComposeScreen))
            await pilot.press(*"Hello **harbour**", "ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, FeedsScreen))
            mine = await backend.feed_page(ME.id, None, 1)
            assert mine[0].text == "Hello **harbour**" and not mine[0].private

    run(go)


def test_reply_from_the_thread_joins_it(
    app: SsbsyncApp, seeded: tuple[object, dict[str, str]]
) -> None:
    keys = seeded[1]

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await open_feed(app, pilot, "wu2x")
            await pilot.press("down", "down", "enter")
            await until(pilot, lambda: getattr(app.screen, "thread", None) is not None)
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, ComposeScreen))
            await pilot.press(*"thanks!", "ctrl+s")
            screen = app.screen
            await until(
                pilot,
                lambda: (
                    isinstance(screen, ThreadScreen)
                    and screen.thread is not None
                    and len(screen.thread.replies) == 2
                ),
            )
            assert isinstance(screen, ThreadScreen) and screen.thread is not None
            reply = screen.thread.replies[-1]
            assert reply.author == ME.id and reply.text == "thanks!"
            assert isinstance(reply.content, dict)
            assert reply.content["root"] == keys["photo"]
            assert reply.content["branch"] == keys["reply"]  # the latest reply

    run(go)


def test_private_message_is_boxed_and_readable_by_us(
    app: SsbsyncApp, backend: DirectBackend
) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await open_feed(app, pilot, "wu2x")
            await pilot.press("m")  # a private message to this feed
            await until(pilot, lambda: isinstance(app.screen, ComposeScreen))
            assert app.screen.query_one("#recipients", Input).value == "node-wu2xeC"
            await pilot.press(*"see you at noon", "ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, FeedScreen))
            shown = (await backend.feed_page(ME.id, None, 1))[0]
            assert shown.private and shown.text == "see you at noon"
            assert isinstance(shown.content, dict)
            assert shown.content["recps"] == [AUTHORS[0].id]
            stored = backend._api.store.get(shown.key)  # as peers get it: a box
            assert stored is not None
            assert str(jsonv8.parse(stored.value_json)["content"]).endswith(".box")  # type: ignore[index]

    run(go)


def test_compose_refuses_unknown_recipients_and_empty_text(
    app: SsbsyncApp, backend: DirectBackend
) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await feeds_loaded(app, pilot)
            before = (await backend.feed_page(ME.id, None, 1))[0].key
            await pilot.press("f4")
            await until(pilot, lambda: isinstance(app.screen, ComposeScreen))
            compose = app.screen
            error = compose.query_one("#compose-error", Static)
            await pilot.press("ctrl+s")
            assert "write something first" in str(error.render())
            await pilot.press(*"hi", "shift+tab", *"nobody", "ctrl+s")
            assert "no feed we hold is called 'nobody'" in str(error.render())
            await pilot.press("escape")
            assert (await backend.feed_page(ME.id, None, 1))[0].key == before

    run(go)


def test_sync_says_no_node_is_running(app: SsbsyncApp) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await feeds_loaded(app, pilot)
            await pilot.press("f3")
            await until(pilot, lambda: isinstance(app.screen, SyncScreen))
            summary = app.screen.query_one("#sync-summary", Static)
            await until(pilot, lambda: str(summary.render()) == NO_NODE)

    run(go)


def test_command_palette_switches_screens(app: SsbsyncApp) -> None:
    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await feeds_loaded(app, pilot)
            await pilot.press("ctrl+p")
            await pilot.pause(0.2)
            await pilot.press(*"Sync")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, SyncScreen))

    run(go)
