"""Legacy replication (createHistoryStream, PROTOCOL.md §6) between ssbsync nodes: with EBT
off, and as the fall back when an EBT peer stops delivering a feed it claims."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ssbsync.core.ebt import SendMessages
from ssbsync.node import replication
from ssbsync.node.client import Client
from ssbsync.node.server import Node
from ssbsync.node.session import RemoteError

from .helpers import make_feeds
from .nodes import run, running, tcp_address, until

NO_EBT = {"replicate": {"ebt": False}}


def _holds(node: Node, clock: dict[str, int]) -> bool:
    held = node.api.store.vector_clock()
    return all(held.sequence(feed) == seq for feed, seq in clock.items())  # type: ignore[arg-type]


@pytest.mark.parametrize("ebt_off", ["dialler", "listener", "both"])
def test_without_ebt_every_wanted_feed_flows_both_ways(
    tmp_path: Path, ebt_off: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ssbsync")
    feeds = make_feeds(authors=5, messages=200, seed=3)

    async def scenario() -> None:
        listener_config = NO_EBT if ebt_off in ("listener", "both") else {}
        dialler_config = NO_EBT if ebt_off in ("dialler", "both") else {}
        async with (
            running(tmp_path / "a", **listener_config) as a,
            running(tmp_path / "b", **dialler_config) as b,
        ):
            a.api.import_messages(m.value for m in feeds.messages)
            for feed in feeds.clock:
                b.replicator.want(feed)
            b.api.publish({"type": "post", "text": "from b"})
            await b.connect(tcp_address(a))
            await until(lambda: b.is_complete(a.id), 20)
            await until(lambda: f"replication with {a.id} complete" in caplog.text)
            assert _holds(b, feeds.clock)  # complete: everything a had when b asked
            assert b.replication_progress()[a.id]["protocol"] == "createHistoryStream"
            await until(lambda: a.api.store.vector_clock().sequence(b.id) == 1)
            assert not a.replicator.has_session(b.id) and not b.replicator.has_session(a.id)
            b.replicator.want(a.id)  # wanted later: its stream opens while connected
            a.api.publish({"type": "post", "text": "live"})
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 1)

    run(scenario)


def test_a_feed_an_ebt_peer_claims_but_never_sends_comes_by_legacy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replication, "LEGACY_AFTER", 1.0)
    feeds = make_feeds(authors=3, messages=60, seed=4)

    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            a.api.import_messages(m.value for m in feeds.messages)
            send = a.replicator._do
            # a announces what it has over EBT but never sends a message: a stalled session
            monkeypatch.setattr(
                a.replicator,
                "_do",
                lambda act: None if isinstance(act, SendMessages) else send(act),
            )
            for feed in feeds.clock:
                b.replicator.want(feed)
            await b.connect(tcp_address(a))
            await until(lambda: b.replicator.has_session(a.id))
            await until(lambda: _holds(b, feeds.clock), 20)
            assert b.replicator.has_session(a.id)  # still EBT: only the stalled feeds moved

    run(scenario)


def test_an_ebt_callee_that_never_speaks_gets_legacy_replication(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replication, "FIRST_NOTES_WAIT", 0.5)
    feeds = make_feeds(authors=2, messages=20, seed=5)

    async def silent(
        peer: object, args: object, incoming: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        async for _ in incoming:  # takes the call, never sends notes (§7.3 says it must)
            pass
        yield  # pragma: no cover - makes this an async generator

    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            a.api.import_messages(m.value for m in feeds.messages)
            monkeypatch.setattr(a.replicator, "serve", silent)
            for feed in feeds.clock:
                b.replicator.want(feed)
            await b.connect(tcp_address(a))
            await until(lambda: _holds(b, feeds.clock), 20)
            assert not b.replicator.has_session(a.id)

    run(scenario)


def test_ebt_request_and_peer_status(tmp_path: Path) -> None:
    """ssb-ebt's request(feed, bool) and peerStatus(feed), through the local socket."""
    feeds = make_feeds(authors=2, messages=10, seed=6)
    wanted, unwanted = list(feeds.clock)

    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            a.api.import_messages(m.value for m in feeds.messages)
            async with await Client.connect_local(b.config.socket_path) as ssb:
                assert await ssb.session.call(["ebt", "request"], wanted, True) is True
                await ssb.session.call(["ebt", "request"], unwanted, True)
                await ssb.session.call(["ebt", "request"], unwanted, False)
                with pytest.raises(RemoteError, match="feed id"):
                    await ssb.session.call(["ebt", "request"], "not a feed")
                await b.connect(tcp_address(a))
                await until(lambda: _holds(b, {wanted: feeds.clock[wanted]}))
                status = await ssb.session.call(["ebt", "peerStatus"], wanted)
            assert isinstance(status, dict)
            assert status["seq"] == feeds.clock[wanted]
            assert status["peers"][a.id]["seq"] == feeds.clock[wanted]
            await asyncio.sleep(0.5)
            assert b.api.store.vector_clock().sequence(unwanted) == 0

    run(scenario)


def test_a_feed_waiting_behind_others_in_a_big_transfer_is_not_a_stall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """EBT sends one feed after another: the last feeds wait, stored sequence unchanged, for
    as long as the others take. While the peer keeps sending, that is not a stall (no feed is
    asked for again by createHistoryStream)."""
    caplog.set_level(logging.INFO, "ssbsync")
    monkeypatch.setattr(replication, "LEGACY_AFTER", 1.0)
    feeds = make_feeds(authors=40, messages=8000, seed=7)

    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            a.api.import_messages((m.value for m in feeds.messages), parallel=True)
            ingest = b.api.import_messages

            def slow_ingest(values: Any, *args: Any, **kwargs: Any) -> Any:
                time.sleep(0.05)  # a slower machine: bursts wait in line
                return ingest(values, *args, **kwargs)

            monkeypatch.setattr(b.api, "import_messages", slow_ingest)
            for feed in feeds.clock:
                b.replicator.want(feed)
            await b.connect(tcp_address(a))
            await until(lambda: _holds(b, feeds.clock), 60)
        assert "stalled" not in caplog.text

    run(scenario)
