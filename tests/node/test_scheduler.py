"""The connection scheduler on running nodes (loopback, one process): peers found through a
seed and a `pub` message are dialled by themselves; a peer that goes away is redialled with
back-off; blocked peers are never dialled; the gossip.* methods (ssbsync.node.scheduler)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from ssbsync.core.keys import Keypair
from ssbsync.core.schedule import Policy
from ssbsync.node.client import Client
from ssbsync.node.server import Node
from ssbsync.node.session import RemoteError

from .nodes import run, running, tcp_address, until
from .test_running_node import _cli

FAST = Policy(max_connections=3, backoff_base=0.2, backoff_cap=1.6, min_session=0.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def entry(node: Node, key: str) -> dict[str, Any]:
    peers = node.gossip.peers()
    assert isinstance(peers, list)
    found = [p for p in peers if isinstance(p, dict) and p["key"] == key]
    return found[0] if found else {}


def connected(node: Node, key: str) -> bool:
    return entry(node, key).get("state") == "connected"


def pub_message(node: Node) -> dict[str, Any]:
    port = int(tcp_address(node).split(":")[2].split("~")[0])
    return {"type": "pub", "address": {"host": "127.0.0.1", "port": port, "key": node.id}}


def test_a_node_finds_and_dials_peers_through_a_seed_and_a_pub_message(tmp_path: Path) -> None:
    """A knows only B's address (a seed); C's address is in a `pub` message in B's feed. A
    dials B, replicates B's feed, learns C from it, dials C and replicates C's feed."""

    async def scenario() -> None:
        async with running(tmp_path / "c") as c, running(tmp_path / "b") as b:
            c.api.publish({"type": "post", "text": "only c has this"})
            b.api.publish(pub_message(c))
            async with running(tmp_path / "a", seeds=[tcp_address(b)]) as a:
                a.api.publish({"type": "contact", "contact": b.id, "following": True})
                a.api.publish({"type": "contact", "contact": c.id, "following": True})
                await until(lambda: a.api.store.vector_clock().sequence(c.id) == 1, 30)
                await until(lambda: connected(a, c.id))
                assert a.api.store.vector_clock().sequence(b.id) == 1
                seed, pub = entry(a, b.id), entry(a, c.id)
                assert (seed["source"], seed["state"], seed["client"]) == (
                    "seed",
                    "connected",
                    True,
                )
                assert (pub["source"], pub["state"]) == ("pub", "connected")
                assert pub["address"] == tcp_address(c)
                assert not any(p.get("key") == a.id for p in a.gossip.peers())  # type: ignore[union-attr]

    run(scenario)


def test_a_peer_that_goes_away_is_redialled_with_back_off(tmp_path: Path) -> None:
    port = free_port()

    async def scenario() -> None:
        async with running(tmp_path / "b", port=port) as b:
            b_id, b_address = b.id, tcp_address(b)
            async with running(tmp_path / "a", seeds=[b_address]) as a:
                a.gossip.policy = FAST
                await until(lambda: connected(a, b_id))
                # B stops: the session ends, then every dial fails and the wait grows.
                waits: list[int] = []

                def note_waits() -> bool:
                    seen = entry(a, b_id)
                    if seen.get("failure", 0) > len(waits) and "stateChange" in seen:
                        waits.append(seen["nextAttempt"] - seen["stateChange"])
                    return len(waits) >= 4

                await b_stopped(b)
                await until(note_waits, 15)
                assert waits == sorted(waits) and waits[-1] > waits[0]
                assert max(waits) <= FAST.backoff_cap * 1000
                async with running(tmp_path / "b", port=port):
                    await until(lambda: connected(a, b_id), 10)
                    assert entry(a, b_id)["failure"] == 0

    async def b_stopped(b: Node) -> None:
        b.stop()
        await until(lambda: b.ready.is_set() and not b.peers(), 10)

    run(scenario)


def test_blocked_peers_are_never_dialled(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running(tmp_path / "b", port=port) as b,
            running(tmp_path / "a", seeds=[tcp_address(b)]) as a,
        ):
            a.gossip.policy = FAST
            a.api.publish({"type": "contact", "contact": b.id, "blocking": True})
            await until(lambda: b.id in a.social.blocked)
            await until(lambda: not a.peers())  # a session made before the block ends
            await asyncio.sleep(2)
            assert not a.peers() and not b.peers()
        async with (
            running(tmp_path / "b", port=port) as b,
            running(tmp_path / "a", seeds=[tcp_address(b)]) as a,
        ):
            a.gossip.policy = FAST
            assert a.gossip.table is not None
            tried = a.gossip.table.with_key(b.id)[0].last_attempt  # in the first run
            await asyncio.sleep(2)
            assert a.gossip.table.with_key(b.id)[0].last_attempt == tried  # not since
            assert not a.peers() and not b.peers()

    port = free_port()
    run(scenario)


def test_only_gossip_connections_peers_are_dialled_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running(tmp_path / "b") as b,
            running(tmp_path / "c") as c,
            running(tmp_path / "d") as d,
        ):
            seeds = [tcp_address(n) for n in (b, c, d)]
            async with running(tmp_path / "a", seeds=seeds, gossip={"connections": 2}) as a:
                await until(lambda: len(a.peers()) == 2)  # type: ignore[arg-type]
                await asyncio.sleep(1.5)
                assert len(a.peers()) == 2  # type: ignore[arg-type]

    run(scenario)


def test_gossip_methods_through_the_local_socket(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running(tmp_path / "b") as b,
            running(tmp_path / "a") as a,
            await Client.connect_local(a.config.socket_path) as ssb,
        ):
            seen: list[dict[str, Any]] = []

            async def read_changes() -> None:
                async for event in ssb.gossip.changes():
                    seen.append(event)

            reader = asyncio.create_task(read_changes())
            await until(lambda: bool(a.gossip._subscribers))
            host_port = tcp_address(b).split("~")[0].removeprefix("net:")
            added = await ssb.gossip.add(
                {"host": host_port.split(":")[0], "port": int(host_port.split(":")[1]),
                 "key": b.id},
                "invite",
            )  # fmt: skip
            assert added["address"] == tcp_address(b) and added["source"] == "invite"
            await until(lambda: len(seen) >= 2)  # the scheduler dials it at once
            assert [(e["type"], e["peer"]["key"]) for e in seen[:2]] == [
                ("discover", b.id),
                ("connect", b.id),
            ]
            assert (await ssb.gossip.get(b.id))["state"] == "connected"
            assert await ssb.gossip.add(a.addresses[0]) is None  # ourselves: ignored
            with pytest.raises(RemoteError, match="not a valid address"):
                await ssb.gossip.add("net:nowhere~shs:nothing")
            assert await ssb.gossip.disconnect(b.id) is True
            await until(lambda: seen[-1]["type"] == "disconnect")
            await asyncio.sleep(1.5)
            assert not a.peers()  # a peer the user hung up on is left alone
            assert await ssb.gossip.disable() == "disabled gossip type global"
            saved = json.loads((a.config.path / "config").read_text())
            assert saved["gossip"] == {"global": False} and saved["port"] == 0
            assert await ssb.gossip.remove(tcp_address(b)) is True
            assert await ssb.gossip.peers() == []
            assert seen[-1]["type"] == "remove"
            reader.cancel()

    run(scenario)


def test_gossip_connect_adds_a_manual_peer(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running(tmp_path / "b") as b,
            running(tmp_path / "a") as a,
            await Client.connect_local(a.config.socket_path) as ssb,
        ):
            answer = await ssb.gossip.connect(tcp_address(b))
            assert answer == {"id": b.id, "address": tcp_address(b)}
            seen = await ssb.gossip.get(tcp_address(b))
            assert (seen["source"], seen["state"], seen["client"]) == (
                "manual",
                "connected",
                True,
            )
            with pytest.raises(RemoteError, match="could not connect"):
                await ssb.gossip.connect(tcp_address(b).replace("127.0.0.1", "127.0.0.9"))

    run(scenario)


async def ssbsync_cli(folder: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *_cli(folder, *args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode or 0, out.decode(), err.decode()


def test_the_cli_adds_lists_and_removes_peers_of_the_running_node(tmp_path: Path) -> None:
    stranger = "net:127.0.0.1:9~shs:" + Keypair.from_seed(b"\x07" * 32).id[1:-8]

    async def scenario() -> None:
        async with running(tmp_path / "a", gossip={"global": False}) as a:
            code, out, _ = await ssbsync_cli(a.config.path, "gossip.add", stranger)
            assert code == 0 and json.loads(out)["address"] == stranger
            code, out, _ = await ssbsync_cli(a.config.path, "gossip.peers")
            assert [p["source"] for p in json.loads(out)] == ["manual"]
            code, _, err = await ssbsync_cli(a.config.path, "gossip.add", "nonsense")
            assert code == 1 and "not a valid address" in err
            code, out, _ = await ssbsync_cli(a.config.path, "gossip.remove", stranger)
            assert code == 0 and json.loads(out) is True
            assert len(a.gossip.table or ()) == 0

    run(scenario)
