"""The connection scheduler against ssb-server 16: ssbsync dials ssb-server by itself when it
is a seed in its config, and finds a second ssb-server through a `pub` message that the first
one published (ssbsync.node.scheduler; PROTOCOL.md §14). ssb-server's own gossip is off
(refpeer config), so every connection here is one ssbsync made."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ssbsync.node.server import Node
from tests.node.nodes import running

from .conftest import StartRefPeer
from .refpeer import RefPeer

pytestmark = pytest.mark.interop

TIMEOUT = 60.0


async def until(check: Callable[[], bool], what: str, seconds: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not in {seconds:.0f} s: {what}")
        await asyncio.sleep(0.1)


def publish_posts(ref: RefPeer, count: int) -> None:
    for i in range(count):
        ref.cli("publish", "--type", "post", "--text", f"from ssb-server {i}")


def table_entry(node: Node, key: str) -> dict[str, Any]:
    peers = node.gossip.peers()
    assert isinstance(peers, list)
    return next((p for p in peers if isinstance(p, dict) and p.get("key") == key), {})


def test_ssbsync_dials_a_seed_by_itself_and_replicates(
    start_refpeer: StartRefPeer, tmp_path: Path
) -> None:
    ref = start_refpeer()
    publish_posts(ref, 3)

    async def scenario() -> None:
        async with running(tmp_path / "ssbsync", seeds=[ref.address]) as ours:
            ours.api.publish({"type": "contact", "contact": ref.id, "following": True})
            await until(
                lambda: ours.api.store.vector_clock().sequence(ref.id) == 3,
                "ssb-server's 3 messages to reach ssbsync",
            )
            seen = table_entry(ours, ref.id)
            assert (seen["source"], seen["state"], seen["client"]) == ("seed", "connected", True)

    asyncio.run(scenario())


def test_ssbsync_finds_a_pub_announced_in_ssb_servers_feed(
    start_refpeer: StartRefPeer, tmp_path: Path
) -> None:
    """The `pub` message is published by ssb-server (its object form, as ssb-invite writes
    it); ssbsync replicates it from the seed and then dials the pub it names."""
    seed, pub = start_refpeer(), start_refpeer()
    publish_posts(pub, 2)
    announcement = {
        "type": "pub",
        "address": {"host": "127.0.0.1", "port": pub.port, "key": pub.id},
    }
    seed.cli("publish", ".", stdin=json.dumps(announcement))

    async def scenario() -> None:
        async with running(tmp_path / "ssbsync", seeds=[seed.address]) as ours:
            for peer in (seed, pub):
                ours.api.publish({"type": "contact", "contact": peer.id, "following": True})
            await until(
                lambda: ours.api.store.vector_clock().sequence(pub.id) == 2,
                "the announced pub's messages to reach ssbsync",
            )
            found = table_entry(ours, pub.id)
            assert (found["source"], found["address"]) == ("pub", pub.address)
            assert found["state"] == "connected"

    asyncio.run(scenario())
