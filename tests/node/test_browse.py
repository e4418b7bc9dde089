"""The browse queries (ssbsync.node.browse): feed summaries, pages, threads with votes,
private messages opened for us, bad arguments refused with words; and browse.* over the
running node's local socket, where remote peers may not call them."""

from __future__ import annotations

import hashlib
import io
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from ssbsync.bundle import CarrySpec, Stick, StickError
from ssbsync.cli import main
from ssbsync.core import jsonv8
from ssbsync.core import privatebox as pb
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.keys import Keypair
from ssbsync.core.message import FeedState, Message, create
from ssbsync.core.refs import FeedId
from ssbsync.core.rpc import Request
from ssbsync.node import sticks
from ssbsync.node.api import ApiError, NodeAPI
from ssbsync.node.blobs import BlobStore
from ssbsync.node.browse import (
    Browser,
    CarryFeed,
    CarryTarget,
    FeedSummary,
    MessageView,
    Place,
    Thread,
    bundle_problem,
    carry_list_problem,
    carry_target,
    direct_browser,
    write_carry,
)
from ssbsync.node.client import Client
from ssbsync.node.session import RemoteError
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


# -- the Carry screen's queries (ssbsync.node.carrying, re-exported by browse) ----------------

NETWORK = bytes(range(32))


def _place(api: NodeAPI) -> Place:
    return Place(api, NETWORK, BlobStore(api.folder, 5 * 1024 * 1024))


def test_carry_feeds_hops_are_what_a_stick_with_hops_carries(tmp_path: Path) -> None:
    """Ticking "within N hops" ticks exactly the feeds `stick.json`'s hops carries from this
    node: a feed a friend blocks (negative hops) is neither, however near."""
    api = NodeAPI(tmp_path)
    alice, bob, carol = Feed(ALICE), Feed(BOB), Feed(CAROL)
    chain = [
        alice.add({"type": "contact", "contact": BOB.id, "blocking": True}),
        alice.add({"type": "contact", "contact": CAROL.id, "following": True}),
        bob.add({"type": "post", "text": "hi"}),
        carol.add({"type": "post", "text": "hi"}),
    ]
    assert api.import_messages([m.value for m in chain]).accepted == 4
    api.publish({"type": "contact", "contact": ALICE.id, "following": True})
    feeds = {f.id: f for f in direct_browser(api).carry_feeds()}
    assert {i: f.hops for i, f in feeds.items()} == {
        api.keys.id: 0, ALICE.id: 1, CAROL.id: 2, BOB.id: -2,
    }  # fmt: skip
    for hops in (0, 1, 2, 6):
        ticked = {i for i, f in feeds.items() if f.hops is not None and 0 <= f.hops <= hops}
        carried = sticks.carried_feeds(api, CarrySpec((), hops))
        assert carried is not None and ticked == carried & set(feeds)
    assert feeds[CAROL.id].bytes == len(chain[3].json.encode())
    assert CarryFeed.from_json(feeds[ALICE.id].to_json()) == feeds[ALICE.id]
    api.close()


def test_carry_targets_in_words(world: tuple[NodeAPI, dict[str, Message]], tmp_path: Path) -> None:
    place = _place(world[0])
    folder = tmp_path / "plain"
    folder.mkdir()
    target = carry_target(place, str(folder))
    assert (target.kind, target.writable, target.stick_id) == ("folder", True, None)
    assert target.room == shutil.disk_usage(folder).free or target.room > 0
    bundle = carry_target(place, str(folder / "x.bundle"))
    assert bundle.kind == "bundle" and bundle_problem(bundle) is None
    assert (
        carry_list_problem(bundle)
        == f"{folder / 'x.bundle'} is a file: a carry list goes on a stick (a folder)"
    )
    assert bundle_problem(target) is not None and "is a folder: a bundle is a file" in str(
        bundle_problem(target)
    )
    locked = CarryTarget(str(folder), "folder", 10, writable=False)
    assert carry_list_problem(locked) == f"{folder} is not writable"
    other = tmp_path / "other"
    other.mkdir()
    Stick.init(other, network_key=bytes(32), carry=CarrySpec(), max_size=None, now_ms=1,
               stick_id="0be")  # fmt: skip
    for path, error in (
        (str(other), "a stick of another network"),
        (str(tmp_path / "none" / "x.bundle"), "is not a folder: the bundle needs one"),
        ("relative/x.bundle", "not an absolute path"),
        ("  ", "give a stick folder or a bundle file"),
        (None, "give a stick folder or a bundle file"),
    ):
        with pytest.raises(ApiError, match=error):
            carry_target(place, path)
    with pytest.raises(ApiError, match="another network"):
        write_carry(place, str(other), CarrySpec().to_json())
    assert Stick.open(other).carry == CarrySpec()


def test_write_carry_makes_a_stick_then_changes_only_its_carry_list(
    world: tuple[NodeAPI, dict[str, Message]], tmp_path: Path
) -> None:
    place = _place(world[0])
    volume = tmp_path / "stick"
    volume.mkdir()
    made = write_carry(place, str(volume), CarrySpec((FeedId(ALICE.id),)).to_json())
    assert made.kind == "stick" and made.carry == CarrySpec((FeedId(ALICE.id),))
    stick = Stick.open(volume, NETWORK)
    stick.set_carry(stick.carry, 1_000_000)  # as `stick init --max-size` would have
    changed = write_carry(place, str(volume), CarrySpec((), 2, True).to_json())
    assert (changed.stick_id, changed.max_size) == (made.stick_id, 1_000_000)
    assert Stick.open(volume, NETWORK).carry == CarrySpec((), 2, True)
    assert changed.room <= 1_000_000
    with pytest.raises(ApiError, match="carry 'hops' must be null or an integer"):
        write_carry(place, str(volume), {"hops": "2"})
    assert CarryTarget.from_json(changed.to_json()) == changed


def test_a_stick_target_counts_only_what_the_stick_lacks(
    world: tuple[NodeAPI, dict[str, Message]], tmp_path: Path
) -> None:
    api = world[0]
    volume = tmp_path / "stick"
    volume.mkdir()
    sticks.init_stick(volume, network_key=NETWORK, carry=CarrySpec(), max_size=None, now_ms=1)
    fresh = carry_target(_place(api), str(volume))
    assert fresh.lacking == {} and fresh.used == 0  # a fresh stick lacks every feed whole
    sticks.sync_stick(api, volume, network_key=NETWORK, blobs=None, now_ms=2)
    new = api.publish({"type": "post", "text": "after the sync"})
    after = carry_target(_place(api), str(volume))
    assert after.used > 0
    assert after.lacking[api.keys.id] == len(jsonv8.stringify(new["value"]).encode())
    assert after.lacking[ALICE.id] == 0 and after.lacking[BOB.id] == 0
    feeds = {f.id: f for f in direct_browser(api).carry_feeds()}
    assert after.size_of(feeds[ALICE.id]) == 0


def test_carry_methods_are_for_the_master_only(tmp_path: Path) -> None:
    async def go() -> None:
        async with running(tmp_path / "n") as node:
            volume = tmp_path / "stick"
            volume.mkdir()
            node.api.publish({"type": "post", "text": "to carry"})
            async with await Client.connect_local(tmp_path / "n" / "socket") as client:
                feeds = await client.session.call(["browse", "carry"])
                assert isinstance(feeds, list)
                assert [CarryFeed.from_json(f).id for f in feeds] == [node.id]
                target = await client.session.call(["browse", "target"], str(volume))
                assert CarryTarget.from_json(target).kind == "folder"
                spec = CarrySpec((), 1).to_json()
                made = await client.session.call(["stick", "carry"], str(volume), spec)
                assert CarryTarget.from_json(made).carry == CarrySpec((), 1)
                with pytest.raises(RemoteError, match="not an absolute path"):
                    await client.session.call(["browse", "target"], "stick")
            for name in (["browse", "carry"], ["browse", "target"], ["stick", "carry"]):
                denied = node.methods.dispatch(Request(1, name, "async", []), False)
                assert "not in list of allowed methods" in str(denied)

    run(go)


def test_the_cli_writes_a_carry_list_as_the_carry_screen_does(tmp_path: Path) -> None:
    """`ssbsync stick carry` is `sticks.write_carry_list`, as `stick.carry` is: a folder
    becomes a stick; a stick keeps its id and gets the new list; another network's is refused."""
    folder, volume = tmp_path / "node", tmp_path / "stick"
    volume.mkdir()
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--path", str(folder), "stick", "carry", str(volume), "--hops", "1"]) == 0
    made = Stick.open(volume)
    assert made.carry == CarrySpec((), 1) and "is now stick" in out.getvalue()
    with redirect_stdout(out):
        assert main(["--path", str(folder), "stick", "carry", str(volume), "--blobs"]) == 0
    assert Stick.open(volume).carry == CarrySpec(blobs=True)
    assert Stick.open(volume).id == made.id
    assert f"stick {made.id} at {volume} now carries every feed" in out.getvalue()
    with pytest.raises(StickError, match="another network"):
        sticks.write_carry_list(
            volume, network_key=NETWORK, carry=CarrySpec(), max_size=None, now_ms=1
        )
