"""Private messages in the node (PROTOCOL.md §9): publish boxes, ingest opens once, only the
master sees opened content, in ssb-db 20's shapes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ssbsync.core import message as msgs
from ssbsync.core import privatebox as pb
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId
from ssbsync.node import identity, private
from ssbsync.node.api import ApiError, NodeAPI
from ssbsync.node.client import Client, collect
from ssbsync.node.ingest import Ingester
from ssbsync.node.private import PrivateMessages
from ssbsync.node.session import RemoteError
from ssbsync.node.store import Store

from .nodes import run, running, tcp_address, until

FRIEND = Keypair.from_seed(b"\x21" * 32)
STRANGER = Keypair.from_seed(b"\x22" * 32)
OTHERS = [Keypair.from_seed(bytes([0x30 + i]) * 32) for i in range(8)]


def _boxed_by(
    author: Keypair, state: msgs.FeedState | None, content: Any, recps: list[str]
) -> msgs.Message:
    """A message by `author`, after `state`, whose content is boxed for `recps`."""
    randomness = pb.BoxRandomness.draw(lambda n: bytes(range(n)))
    text = pb.box_content(content, [FeedId(r) for r in recps], randomness)
    timestamp = 1_700_000_000_000 + (state.sequence if state else 0)
    return msgs.create(author, state, text, timestamp)


def _rows(api: NodeAPI, table: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(api.folder / identity.DATABASE)
    try:
        return db.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        db.close()


# -- publishing ------------------------------------------------------------------------------


def test_publish_with_recps_stores_a_box_for_them_and_us(tmp_path: Path) -> None:
    with NodeAPI(tmp_path) as api:
        content = {"type": "post", "text": "only for you", "recps": FRIEND.id}
        published: Any = api.publish(content)
        stored = published["value"]["content"]
        assert isinstance(stored, str) and stored.endswith(".box")
        # the friend opens it; recps became an array inside, as ssb-db's autobox makes it
        theirs = pb.open_content(stored, pb.curve_secret_key(FRIEND.secret))
        assert theirs is not None
        assert theirs.content == {"type": "post", "text": "only for you", "recps": [FRIEND.id]}
        # we are in the box too (a second slot), so we can read what we sent
        ours = pb.open_content(stored, pb.curve_secret_key(api.keys.secret))
        assert ours is not None and ours.unbox_key[0] == 2
        assert pb.open_content(stored, pb.curve_secret_key(STRANGER.secret)) is None
        # a plain get serves what is stored; private: true shows it opened
        assert api.get(published["key"]) == published["value"]
        shown: Any = api.get({"id": published["key"], "private": True})
        assert shown["content"] == theirs.content


def test_the_opened_value_has_ssb_db_20s_shape(tmp_path: Path) -> None:
    with NodeAPI(tmp_path) as api:
        published: Any = api.publish({"type": "post", "text": "x", "recps": [FRIEND.id]})
        ciphertext = published["value"]["content"]
        shown: Any = api.get({"id": published["key"], "private": True, "meta": True})
        assert set(shown) == {"key", "value", "timestamp"}
        value = shown["value"]
        assert list(value) == [
            "previous", "sequence", "author", "timestamp", "hash", "content", "signature",
            "meta", "cyphertext", "private", "unbox",
        ]  # fmt: skip
        unbox_key = pb.open_content(ciphertext, pb.curve_secret_key(api.keys.secret))
        assert unbox_key is not None
        assert value["meta"] == {
            "original": {"content": ciphertext},
            "private": True,
            "unbox": unbox_key.unbox_key_text,
        }
        assert (value["cyphertext"], value["private"], value["unbox"]) == (
            ciphertext,
            True,
            unbox_key.unbox_key_text,
        )


def test_seven_other_recipients_leave_no_slot_for_us(tmp_path: Path) -> None:
    with NodeAPI(tmp_path) as api:
        recps = [k.id for k in OTHERS[:7]]
        published: Any = api.publish({"type": "post", "text": "seven", "recps": recps})
        stored = published["value"]["content"]
        assert pb.open_content(stored, pb.curve_secret_key(api.keys.secret)) is None
        assert pb.open_content(stored, pb.curve_secret_key(OTHERS[6].secret)) is not None
        assert api.get({"id": published["key"], "private": True}) == published["value"]
        # listing ourselves among the seven works: no extra slot is needed
        mine: Any = api.publish({"type": "post", "text": "x", "recps": [*recps[:6], api.keys.id]})
        assert api.get({"id": mine["key"], "private": True})["content"]["text"] == "x"


@pytest.mark.parametrize(
    ("recps", "error"),
    [
        ([], "at least one recipient"),
        ([f"{FRIEND.id}x"], "must be feed ids"),
        (["%" + "A" * 43 + "=.sha256"], "must be feed ids"),
        ({"id": FRIEND.id}, "expects an array"),
        ([k.id for k in OTHERS], "at most 7 recipients, got 8"),
    ],
)
def test_bad_recps_are_refused_and_nothing_is_stored(
    tmp_path: Path, recps: Any, error: str
) -> None:
    with NodeAPI(tmp_path) as api:
        with pytest.raises(ApiError, match=error):
            api.publish({"type": "post", "text": "never in the clear", "recps": recps})
        assert api.store.count_messages() == 0


@pytest.mark.parametrize("falsy", [None, "", 0, False])
def test_falsy_recps_publish_in_the_clear_as_ssb_server(tmp_path: Path, falsy: Any) -> None:
    with NodeAPI(tmp_path) as api:
        published: Any = api.publish({"type": "post", "text": "public", "recps": falsy})
        assert published["value"]["content"]["recps"] == falsy


# -- opening what arrives -----------------------------------------------------------------------


def _friend_feed(count: int, to: str) -> list[msgs.Message]:
    """FRIEND's feed: public posts, with every other message a private one to `to`."""
    feed: list[msgs.Message] = []
    for i in range(count):
        state = feed[-1].state() if feed else None
        if i % 2:
            content = {"type": "post", "text": f"private {i}", "recps": [to, FRIEND.id]}
            feed.append(_boxed_by(FRIEND, state, content, [to, FRIEND.id]))
        else:
            text = {"type": "post", "text": f"public {i}"}
            feed.append(msgs.create(FRIEND, state, text, 1_700_000_000_000 + i))
    return feed


def test_incoming_boxes_for_us_are_opened_once_and_indexed_by_type(tmp_path: Path) -> None:
    with NodeAPI(tmp_path) as api:
        feed = _friend_feed(6, api.keys.id)
        other = _boxed_by(STRANGER, None, {"type": "secret"}, [OTHERS[0].id])
        report = api.import_messages([*(m.value for m in feed), other.value])
        assert report.accepted == 7
        opened = _rows(api, "private_messages")
        assert len(opened) == 3 and {row[2] for row in opened} == {"post"}
        assert _rows(api, "private_progress") == [(api.store.last_received_us(),)]
        # messagesByType finds them by their opened type, shown boxed unless private: true
        by_type: Any = list(api.messages_by_type({"type": "post"}))
        assert [m["key"] for m in by_type] == [m.key for m in feed]
        assert [m["value"] for m in by_type] == [m.value for m in feed]
        shown: Any = list(api.messages_by_type({"type": "post", "private": True}))
        assert [m["value"]["content"]["text"] for m in shown] == [
            f"{'private' if i % 2 else 'public'} {i}" for i in range(6)
        ]
        limited: Any = list(api.messages_by_type({"type": "post", "limit": 2, "reverse": True}))
        assert [m["key"] for m in limited] == [feed[5].key, feed[4].key]
        assert list(api.messages_by_type({"type": "secret"})) == []


def test_private_true_streams_show_opened_content_history_never(tmp_path: Path) -> None:
    with NodeAPI(tmp_path) as api:
        feed = _friend_feed(4, api.keys.id)
        api.import_messages(m.value for m in feed)
        plain = [m.value for m in feed]
        streams = {
            "log": api.create_log_stream,
            "user": lambda o: api.create_user_stream({"id": FRIEND.id, **o}),
            "feed": api.create_feed_stream,
        }
        for name, stream in streams.items():
            values = [item["value"] for item in stream({})]  # type: ignore[index]
            assert values == plain, name
            opened = [item["value"] for item in stream({"private": True})]  # type: ignore[index]
            assert opened[1]["content"]["text"] == "private 1", name
            assert opened[1]["meta"]["original"]["content"] == plain[1]["content"], name
            assert opened[0] == plain[0], name
            truthy_but_not_true = [item["value"] for item in stream({"private": "yes"})]  # type: ignore[index]
            assert truthy_but_not_true == plain, name
        history = list(api.create_history_stream({"id": FRIEND.id, "private": True, "keys": False}))
        assert history == plain


def test_a_crash_before_opening_is_made_good_on_the_next_start(tmp_path: Path) -> None:
    with NodeAPI(tmp_path) as api:
        us = api.keys.id
    feed = _friend_feed(4, us)
    # Commit as the ingest path does, but with no one opening afterwards: a crash right
    # after the commit.
    store = Store(tmp_path / identity.DATABASE)
    try:
        Ingester(store).add(m.value for m in feed)
        assert store.count_messages() == 4
    finally:
        store.close()
    with NodeAPI(tmp_path) as api:
        shown: Any = api.get({"id": feed[3].key, "private": True})
        assert shown["content"]["text"] == "private 3"
        assert len(_rows(api, "private_messages")) == 2


def test_a_long_backlog_is_opened_page_by_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(private, "INDEX_PAGE", 2)
    with NodeAPI(tmp_path) as api:
        feed = _friend_feed(11, api.keys.id)  # 5 private, 6 public
        strangers = _boxed_by(STRANGER, None, {"type": "post"}, [OTHERS[0].id])
        api.import_messages([strangers.value, *(m.value for m in feed)])
        assert len(_rows(api, "private_messages")) == 5
        assert _rows(api, "private_progress") == [(api.store.last_received_us(),)]
        shown: Any = list(api.messages_by_type({"type": "post", "private": True}))
        assert len(shown) == 11 and sum(bool(m["value"].get("private")) for m in shown) == 5


def test_public_only_ingest_writes_nothing_for_private_messages(tmp_path: Path) -> None:
    with NodeAPI(tmp_path) as api:
        feed = _friend_feed(1, api.keys.id)  # one public message
        api.import_messages(m.value for m in feed)
        api.publish({"type": "post", "text": "public"})
        assert _rows(api, "private_progress") == [(0,)]  # not even the mark was written
        assert _rows(api, "private_messages") == []


def test_a_failure_while_opening_keeps_the_commit_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("a bug while opening")

    with NodeAPI(tmp_path) as api:
        feed = _friend_feed(2, api.keys.id)
        with monkeypatch.context() as patched:
            patched.setattr(PrivateMessages, "_open", broken)
            report = api.import_messages(m.value for m in feed)
        assert report.accepted == 2 and api.store.count_messages() == 2
        assert _rows(api, "private_messages") == []
        assert _rows(api, "private_progress") == [(0,)]
        api.publish({"type": "post", "text": "the next commit"})
        shown: Any = api.get({"id": feed[1].key, "private": True})
        assert shown["content"]["text"] == "private 1"


def test_a_shared_unbox_key_opens_a_message_we_were_not_sent(tmp_path: Path) -> None:
    sender_folder, reader_folder = tmp_path / "sender", tmp_path / "reader"
    with NodeAPI(sender_folder) as sender:
        published: Any = sender.publish({"type": "post", "text": "shh", "recps": [FRIEND.id]})
        key = sender.get({"id": published["key"], "private": True})["unbox"]  # type: ignore[index]
    with NodeAPI(reader_folder) as reader:
        reader.add(published["value"])
        assert reader.get({"id": published["key"], "private": True}) == published["value"]
        link = f"{published['key']}?unbox={key.replace('+', ' ')}"
        assert reader.get(link)["content"]["text"] == "shh"  # type: ignore[index]
        with pytest.raises(ApiError, match="unbox key"):
            reader.get({"id": published["key"], "private": True, "unbox": "AAAA"})


# -- who sees what, over RPC ---------------------------------------------------------------------


def test_remote_peers_only_ever_get_the_stored_box(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as node:
            published: Any = node.api.publish(
                {"type": "post", "text": "private", "recps": [STRANGER.id]}
            )
            key = node.config.network_key
            manifest = {
                "createHistoryStream": "source",
                "get": "async",
                "createLogStream": "source",
                "private": {"unbox": "async"},
            }
            # Even a recipient, connecting as a peer, is served only what is stored.
            async with await Client.connect(tcp_address(node), STRANGER, key, 10, manifest) as ssb:
                for opts in ({"private": True}, {"private": True, "meta": True, "unbox": "x"}):
                    history = await collect(
                        ssb.createHistoryStream({"id": node.id, "keys": False, **opts})
                    )
                    assert history == [published["value"]]
                with pytest.raises(RemoteError, match="method:get is not in list of allowed"):
                    await ssb.get({"id": published["key"], "private": True})
                with pytest.raises(RemoteError, match="createLogStream is not in list"):
                    await collect(ssb.createLogStream({"private": True}))
                with pytest.raises(RemoteError, match=r"private\.unbox is not in list"):
                    await ssb.private.unbox(published["value"]["content"])
            # The owner, on the local socket, may ask for it opened.
            async with await Client.connect_local(node.config.socket_path) as ssb:
                value = await ssb.get({"id": published["key"], "private": True})
                assert value["content"]["text"] == "private"

    run(scenario)


def test_private_unbox_rpc(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as node:
            published: Any = node.api.publish({"type": "post", "text": "hi", "recps": [FRIEND.id]})
            not_ours = _boxed_by(FRIEND, None, {"type": "post"}, [STRANGER.id])
            async with await Client.connect_local(node.config.socket_path) as ssb:
                ciphertext = published["value"]["content"]
                content = {"type": "post", "text": "hi", "recps": [FRIEND.id]}
                assert await ssb.private.unbox(ciphertext) == content
                assert await ssb.private.unbox(ciphertext.removesuffix(".box")) == content
                msg = await ssb.private.unbox(published)
                assert msg["key"] == published["key"]
                assert msg["value"]["content"] == content and msg["value"]["private"] is True
                assert await ssb.private.unbox(not_ours.value["content"]) is None
                assert await ssb.private.unbox("garbage") is None
                with pytest.raises(RemoteError, match="ciphertext string or a message"):
                    await ssb.private.unbox({"value": {"content": {"type": "post"}}})

    run(scenario)


def test_a_private_message_replicates_boxed_and_its_recipient_opens_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            published: Any = a.api.publish({"type": "post", "text": "to b", "recps": [b.id]})
            await b.connect(tcp_address(a))
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 1)
            assert b.api.get(published["key"]) == published["value"]
            for _ in range(100):  # opened right after the commit, on the ingest thread
                shown: Any = b.api.get({"id": published["key"], "private": True})
                if shown.get("private"):
                    break
                await asyncio.sleep(0.05)
            assert shown["content"]["text"] == "to b"

    run(scenario)
