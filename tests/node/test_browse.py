"""The browse queries (ssbsync.node.browse): feed summaries, pages, threads with votes,
private messages opened for us, bad arguments refused with words; and browse.* over the
running node's local socket, where remote peers may not call them."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssbsync.core import privatebox as pb
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.keys import Keypair
from ssbsync.core.message import FeedState, Message, create
from ssbsync.core.rpc import Request
from ssbsync.node.api import ApiError, NodeAPI
from ssbsync.node.browse import Browser, FeedSummary, MessageView, Thread, direct_browser
from ssbsync.node.client import Client
from tests.node.nodes import run, running

ALICE, BOB, CAROL = (Keypair.from_seed(hashlib.sha256(n).digest()) for n in (b"a", b"b", b"c"))


class Feed:
    def __init__(self, keys: Keypair) -> None:
        self.keys, self.state, self.clock = keys, None, 1_600_000_000_000
        self.state: FeedState | None

    def add(self, content: JSONValue) -> Message:
        self.clock += 1000
        message = create(self.keys, self.state, content, self.clock)
        self.state = message.state()
        return message


def _fixed(count: int) -> bytes:
    return bytes(range(count))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[NodeAPI, dict[str, Message]]]:
    api = NodeAPI(tmp_path)
    me = api.keys
    alice, bob, carol = Feed(ALICE), Feed(BOB), Feed(CAROL)
    m: dict[str, Message] = {}
    m["a-name"] = alice.add({"type": "about", "about": ALICE.id, "name": "alice"})
    m["b-calls-a"] = bob.add({"type": "about", "about": ALICE.id, "name": "not her name"})
    m["a-rename"] = alice.add(
        {"type": "about", "about": ALICE.id, "name": "Alice", "description": "boats"}
    )
    m["root"] = alice.add({"type": "post", "text": "a *root*"})
    m["reply"] = bob.add({"type": "post", "text": "a reply", "root": m["root"].key})
    m["b-vote"] = bob.add({"type": "vote", "vote": {"link": m["root"].key, "value": 1}})
    m["c-vote"] = carol.add({"type": "vote", "vote": {"link": m["root"].key, "value": 1}})
    m["c-unvote"] = carol.add({"type": "vote", "vote": {"link": m["root"].key, "value": 0}})
    secret = {"type": "post", "text": "psst", "root": m["root"].key, "recps": [me.id, BOB.id]}
    boxed = pb.box_content(secret, [me.id, BOB.id], pb.BoxRandomness.draw(_fixed))
    m["private-reply"] = bob.add(boxed)
    other = pb.box_content(
        {"type": "post", "text": "not for us"}, [ALICE.id], pb.BoxRandomness.draw(_fixed)
    )
    m["not-for-us"] = carol.add(other)
    values = [x.value for x in m.values()]
    assert api.import_messages(values).accepted == len(values)
    api.publish({"type": "contact", "contact": ALICE.id, "following": True})
    api.publish({"type": "contact", "contact": CAROL.id, "blocking": True})
    yield api, m
    api.close()


def test_feed_summaries(world: tuple[NodeAPI, dict[str, Message]]) -> None:
    api, _ = world
    feeds = {f.id: f for f in direct_browser(api).feeds()}
    alice, bob, carol = feeds[ALICE.id], feeds[BOB.id], feeds[CAROL.id]
    assert (alice.name, alice.description) == ("Alice", "boats")  # her latest; not bob's
    assert bob.name is None and alice.messages == 3 and bob.messages == 4
    assert (alice.following, alice.hops) == (True, 1)
    assert (carol.blocking, carol.hops) == (True, -1)
    assert feeds[api.keys.id].hops == 0
    with sqlite3.connect(api.store.path) as db:
        total = db.execute("SELECT sum(length(CAST(value AS BLOB))) FROM messages").fetchone()[0]
    assert sum(f.bytes for f in feeds.values()) == total
    assert alice.last_activity == world[1]["root"].value["timestamp"]  # type: ignore[index]
    assert FeedSummary.from_json(alice.to_json()) == alice


def test_names_follow_new_about_messages(world: tuple[NodeAPI, dict[str, Message]]) -> None:
    api, _ = world
    browser = direct_browser(api)
    assert browser.feeds()
    api.publish({"type": "about", "about": api.keys.id, "name": "me"})
    assert {f.id: f.name for f in browser.feeds()}[api.keys.id] == "me"


def test_feed_pages_newest_first(world: tuple[NodeAPI, dict[str, Message]]) -> None:
    api, m = world
    browser = direct_browser(api)
    first = browser.feed_page(BOB.id, None, 2)
    assert [v.sequence for v in first] == [4, 3]
    assert first[0].key == m["private-reply"].key and first[0].text == "psst"  # opened
    rest = browser.feed_page(BOB.id, first[-1].sequence, 50)
    assert [v.sequence for v in rest] == [2, 1]
    unopened = browser.feed_page(CAROL.id, None, 1)[0]
    assert unopened.private and isinstance(unopened.content, str) and unopened.text is None
    assert MessageView.from_json(first[0].to_json()) == first[0]


@pytest.mark.parametrize(
    ("feed", "before", "limit", "error"),
    [
        ("bob", None, 5, "feed id"),
        (BOB.id, 0, 5, "before must be a sequence number"),
        (BOB.id, "2", 5, "before must be a sequence number"),
        (BOB.id, None, 0, "limit must be"),
        (BOB.id, None, 100_000, "limit must be"),
    ],
)
def test_feed_page_refuses_bad_arguments(
    world: tuple[NodeAPI, dict[str, Message]],
    feed: object,
    before: object,
    limit: object,
    error: str,
) -> None:
    with pytest.raises(ApiError, match=error):
        direct_browser(world[0]).feed_page(feed, before, limit)  # type: ignore[arg-type]


def test_thread_with_votes_and_private_reply(world: tuple[NodeAPI, dict[str, Message]]) -> None:
    api, m = world
    browser = direct_browser(api)
    for key in (m["root"].key, m["reply"].key):  # from the root or any reply: the same thread
        thread = browser.thread(key)
        assert thread.root is not None and thread.root.key == m["root"].key
        assert thread.root.votes == (BOB.id,)  # carol's latest vote took hers back
        assert [r.key for r in thread.replies] == [m["reply"].key, m["private-reply"].key]
        assert thread.replies[1].text == "psst"
    assert Thread.from_json(thread.to_json()) == thread
    with pytest.raises(ApiError, match="message id"):
        browser.thread("nope")
    missing = browser.thread("%" + "A" * 43 + "=.sha256")
    assert missing.root is None and missing.replies == ()


def test_browse_methods_are_for_the_master_only(tmp_path: Path) -> None:
    async def go() -> None:
        async with running(tmp_path / "n") as node:
            node.api.publish({"type": "about", "about": node.id, "name": "pi"})
            async with await Client.connect_local(tmp_path / "n" / "socket") as client:
                feeds = await client.session.call(["browse", "feeds"])
                assert [FeedSummary.from_json(f).name for f in feeds] == ["pi"]  # type: ignore[union-attr]
                page = await client.session.call(["browse", "feed"], {"id": node.id})
                assert MessageView.from_json(page[0]).type == "about"  # type: ignore[index]
            denied = node.methods.dispatch(Request(1, ["browse", "feeds"], "async", []), False)
            assert "not in list of allowed methods" in str(denied)

    run(go)


def test_browser_needs_no_refresh_when_the_node_keeps_the_graph(
    world: tuple[NodeAPI, dict[str, Message]],
) -> None:
    api, _ = world
    social = direct_browser(api).social
    browser = Browser(api, social, refresh_social=False)
    assert {f.id: f.hops for f in browser.feeds()}[ALICE.id] == 1
