"""LAN discovery of running nodes (PROTOCOL.md §11), on 127.0.0.1 only: the service's seam
points each node's beacons at the UDP ports of the nodes of a pretend segment instead of the
broadcast addresses, so nothing leaves the machine."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ssbsync.core.keys import Keypair
from ssbsync.core.lan import encode_lan_beacon, encode_plain_beacon
from ssbsync.node import config as node_config
from ssbsync.node import lan as lan_module
from ssbsync.node.lan import LanDiscovery, Route, broadcast_routes
from ssbsync.node.server import Node
from ssbsync.transport.lan import BroadcastTarget, UdpEndpoint

from .nodes import TIMEOUT, config_in, run, running, until

HOST = "127.0.0.1"
STRANGER = Keypair.from_seed(bytes([3]) * 32)


class Segment:
    """A pretend LAN: every node's beacons go to every node's ports (its own included, as a
    broadcast comes back to the sender)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def routes(self, plain_port: int, lan_port: int) -> list[Route]:
        ports = [n.lan.ports for n in self.nodes if n.lan.ports]
        plain = tuple((HOST, p[0]) for p in ports)
        lan = tuple((HOST, p[1]) for p in ports if len(p) > 1)
        return [Route(HOST, plain, lan)]


@asynccontextmanager
async def lan_node(
    folder: Path, segment: Segment, expiry: float = 10.0, **config: Any
) -> AsyncIterator[Node]:
    node = Node(config_in(folder, **config))
    node.lan = LanDiscovery(
        node,
        routes=segment.routes,
        listen_host=HOST,
        plain_port=0,
        lan_port=0,
        expiry=expiry,
        interval=0.1,
        on_loopback=True,
    )
    segment.nodes.append(node)
    task = asyncio.create_task(node.run())
    try:
        await asyncio.wait_for(node.ready.wait(), TIMEOUT)
        yield node
    finally:
        segment.nodes.remove(node)
        node.stop()
        await asyncio.wait_for(task, TIMEOUT)


def lan_status(node: Node) -> dict[str, Any]:
    status = node.status()
    assert isinstance(status, dict)
    lan = status["lan"]
    assert isinstance(lan, dict)
    return lan


def table_source(node: Node, address: str) -> str | None:
    record = node.gossip.table.get(address) if node.gossip.table else None
    return None if record is None else record.source


def address_of(node: Node) -> str:
    return f"net:{HOST}:{node.lan._listening_port()}~shs:{node.id[1:-8]}"


def test_two_nodes_find_each_other_and_replicate(tmp_path: Path) -> None:
    async def scenario() -> None:
        segment = Segment()
        async with (
            lan_node(tmp_path / "a", segment) as a,
            lan_node(tmp_path / "b", segment) as b,
        ):
            met: list[tuple[str, str]] = []
            a.lan.on_peer.append(lambda key, address: met.append((key, address)))
            for i in range(3):
                a.api.publish({"type": "post", "text": f"a{i}"})
                b.api.publish({"type": "post", "text": f"b{i}"})
            await until(lambda: a.api.store.vector_clock().sequence(b.id) == 3, 20)
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 3, 20)

            assert table_source(a, address_of(b)) == "local"
            assert (b.id, address_of(b)) in met
            heard = {h["key"]: h for h in lan_status(a)["heard"]}
            assert set(heard) == {b.id}  # never itself, though its own beacons come back
            assert heard[b.id]["address"] == address_of(b)
            assert heard[b.id]["verified"] is True  # the signed ssb-lan beacon is kept
            status = lan_status(a)
            assert status["enabled"] is True and status["state"] == "on"
            assert status["announcing"] == [address_of(a)]
            assert status["dropped"] == {}

    run(scenario)


def test_gossip_local_false_keeps_a_node_quiet(tmp_path: Path) -> None:
    async def scenario() -> None:
        segment = Segment()
        async with (
            lan_node(tmp_path / "a", segment, gossip={"local": False}) as a,
            lan_node(tmp_path / "b", segment) as b,
        ):
            await asyncio.sleep(1.0)
            assert a.lan.ports is None
            status = lan_status(a)
            assert (status["enabled"], status["state"]) == (False, "off: gossip.local is off")
            assert table_source(b, address_of(a)) is None
            assert table_source(a, address_of(b)) is None
            assert not a.peers()

            a.gossip.switch("local", True)  # gossip.enable local
            await until(lambda: table_source(b, address_of(a)) == "local")
            await until(lambda: table_source(a, address_of(b)) == "local")
            a.gossip.switch("local", False)  # gossip.disable local
            await until(lambda: a.lan.ports is None)
            assert lan_status(a)["heard"] == []

    run(scenario)


def test_bad_beacons_are_counted_and_the_node_keeps_going(tmp_path: Path) -> None:
    async def scenario() -> None:
        segment = Segment()
        async with (
            lan_node(tmp_path / "a", segment) as a,
            await UdpEndpoint.open(0, lambda *_: None, HOST) as attacker,
        ):
            await until(lambda: a.lan.ports is not None)
            assert a.lan.ports is not None
            plain, lan = a.lan.ports
            stranger = f"net:{HOST}:1~shs:{base64.b64encode(STRANGER.public).decode()}"
            network = a.config.network_key
            sends = {
                plain: [b"garbage", bytes(3000), b"net:\xff", b""],
                lan: [
                    b"short",
                    encode_lan_beacon(stranger, STRANGER, bytes(32)),  # another network
                    encode_lan_beacon(stranger, Keypair.from_seed(bytes(32)), network),  # forged
                    bytes(5000),
                ],
            }
            for _ in range(3):
                for port, payloads in sends.items():
                    for payload in payloads:
                        attacker.send(payload, [(HOST, port)])
            expected = {
                "no address": 6,
                "too large": 6,
                "not utf-8": 3,
                "too short": 3,
                "wrong network key": 3,
                "bad signature": 3,
            }
            await until(lambda: lan_status(a)["dropped"] == expected)
            assert a.lan.status()["heard"] == []

            # Still listening: a good beacon is heard after all that.
            attacker.send(encode_plain_beacon([stranger]), [(HOST, plain)])
            await until(lambda: table_source(a, stranger) == "local")
            heard = lan_status(a)["heard"]
            assert [(h["key"], h["format"], h["verified"]) for h in heard] == [
                (STRANGER.id, "plain", False)
            ]

    run(scenario)


def test_a_peer_not_heard_is_forgotten(tmp_path: Path) -> None:
    async def scenario() -> None:
        segment = Segment()
        async with (
            lan_node(tmp_path / "a", segment, expiry=0.5) as a,
            await UdpEndpoint.open(0, lambda *_: None, HOST) as stranger_socket,
        ):
            await until(lambda: a.lan.ports is not None)
            assert a.lan.ports is not None
            key = base64.b64encode(STRANGER.public).decode()
            address = f"net:{HOST}:1~shs:{key}"  # nobody listens there: dials fail
            beacon = encode_lan_beacon(address, STRANGER, a.config.network_key)
            for _ in range(5):
                stranger_socket.send(beacon, [(HOST, a.lan.ports[1])])
                await asyncio.sleep(0.1)
            assert table_source(a, address) == "local"
            await until(lambda: table_source(a, address) is None, 5)  # 0.5 s without a beacon
            assert lan_status(a)["heard"] == []

    run(scenario)


def test_a_connected_peer_stays_until_its_session_ends(tmp_path: Path) -> None:
    async def scenario() -> None:
        segment = Segment()
        async with (
            lan_node(tmp_path / "a", segment, expiry=0.5) as a,
            lan_node(tmp_path / "b", segment) as b,
        ):
            await until(lambda: any(p["key"] == b.id for p in a.peers()), 20)
            b.gossip.switch("local", False)  # b stops announcing; the session stays
            await until(lambda: not lan_status(a)["heard"])
            await asyncio.sleep(0.5)
            assert table_source(a, address_of(b)) == "local"  # connected: kept
            await a.gossip.disconnect(address_of(b))
            await until(lambda: table_source(a, address_of(b)) is None)

    run(scenario)


def test_a_node_on_loopback_stays_off_the_lan(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as a:  # the real service, host 127.0.0.1
            await until(lambda: lan_status(a)["state"] != "starting")
            status = lan_status(a)
            assert status["enabled"] is False and status["ports"] == []
            assert "loopback" in status["state"]
            assert a.lan.ports is None

    run(scenario)


def test_broadcast_routes_reach_every_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    targets = [
        BroadcastTarget("192.168.1.5", "192.168.1.255", "eth0"),
        BroadcastTarget("10.0.0.7", "10.0.0.255", "wlan0"),
    ]
    monkeypatch.setattr(lan_module, "broadcast_targets", lambda: targets)
    assert broadcast_routes(8008, 26830) == [
        Route(
            "192.168.1.5",
            (("192.168.1.255", 8008), ("255.255.255.255", 8008)),  # once a round, as ssb-local
            (("192.168.1.255", 26830),),
        ),
        Route("10.0.0.7", (("10.0.0.255", 8008),), (("10.0.0.255", 26830),)),
    ]
    monkeypatch.setattr(lan_module, "broadcast_targets", list)
    assert broadcast_routes(8008, 26830) == []


@pytest.mark.parametrize(
    ("config", "announced", "why_off"),
    [
        ({}, "", None),  # every interface: announce on each
        ({"host": "0.0.0.0"}, "", None),
        ({"host": "192.168.1.5"}, "192.168.1.5", None),  # that interface only
        ({"host": "127.0.0.1"}, None, "the net listener is on loopback only (127.0.0.1)"),
        ({"host": "localhost"}, None, "the net listener is on loopback only (localhost)"),
        ({"host": "::1"}, None, "the net listener is on loopback only (::1)"),
        ({"host": "pi.local"}, None, "the net listener's host 'pi.local' is a name, not an IP"),
        ({"gossip": {"local": False}}, None, "gossip.local is off"),
        (
            {"connections": {"incoming": {"unix": [{"scope": "device"}]}}},
            None,
            "no shs net listener",
        ),
    ],
)
def test_when_discovery_runs(
    tmp_path: Path, config: dict[str, Any], announced: str | None, why_off: str | None
) -> None:
    (tmp_path / "config").write_text(json.dumps({"port": 8008, **config}))
    node = Node(node_config.load(tmp_path))
    try:
        host = config.get("host", "localhost")
        node.addresses = [f"net:{host}:8008~shs:{node.id[1:-8]}", "unix:/x/socket~noauth"]
        listener, reason = node.lan._listener()
        assert reason == why_off
        assert (listener.host if listener else None) == announced
        if listener is not None:
            assert (listener.port, listener.feed) == (8008, node.id)
    finally:
        node.api.close()
