"""Two nodes replicating over a serial line only (a pty link, tests/transport/ptylink.py):
config, the supervised links of ssbsync/node/serial_links.py, gossip.connect serial:…"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ssbsync.core.serialpreamble import marker
from ssbsync.node.client import Client
from ssbsync.node.config import ConfigError
from ssbsync.node.server import Node
from ssbsync.node.session import RemoteError
from tests.transport.ptylink import PtyLink, serial_only_config

from .nodes import config_in, run, running, until

MESSAGES = 1000


@asynccontextmanager
async def answerer_and_dialler(folder: Path, line: PtyLink) -> AsyncIterator[tuple[Node, Node]]:
    """Node a answers on the line's end A; node b dials it from end B."""
    async with running(folder / "a", **serial_only_config([{"device": str(line.a)}], [])) as a:
        dial = [{"device": str(line.b), "baud": 115200, "key": a.id}]
        async with running(folder / "b", **serial_only_config([], dial)) as b:
            yield a, b


def publish(node: Node, count: int, prefix: str) -> None:
    for i in range(count):
        node.api.publish({"type": "post", "text": f"{prefix} {i} " + "·" * 100})


def clock(node: Node) -> dict[str, int]:
    return dict(node.api.store.vector_clock())


def link_status(node: Node) -> dict[str, Any]:
    (status,) = node.status()["serial"]  # type: ignore[call-overload,index]
    assert isinstance(status, dict)
    return status


async def in_state(node: Node, state: str) -> None:
    await until(lambda: link_status(node)["state"] == state)


def only_serial_peers(node: Node) -> bool:
    peers = node.peers()
    assert isinstance(peers, list)
    return all(str(p["address"]).startswith("serial:") for p in peers)  # type: ignore[index]


def test_two_nodes_replicate_a_thousand_messages_over_the_line(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            PtyLink(tmp_path / "line") as line,
            answerer_and_dialler(tmp_path, line) as (a, b),
        ):
            publish(a, MESSAGES, "from a")
            publish(b, 10, "from b")
            await until(lambda: clock(a) == clock(b), seconds=40)
            assert clock(b)[a.id] == MESSAGES and clock(a)[b.id] == 10
            assert link_status(a)["state"] == link_status(b)["state"] == "connected"
            assert link_status(a)["peer"] == b.id and link_status(b)["peer"] == a.id
            assert link_status(a)["role"] == "answer" and link_status(b)["role"] == "dial"
            assert only_serial_peers(a) and only_serial_peers(b)
            assert not [x for x in a.addresses + b.addresses if x.startswith("net:")]
            assert line.relayed["a->b"] > 100 * MESSAGES  # it all went over the line

    line_folder = tmp_path / "line"
    line_folder.mkdir()
    run(scenario)


def test_a_line_that_drops_mid_transfer_resumes_without_loss(tmp_path: Path) -> None:
    async def scenario() -> None:
        # at 1 Mbit/s the thousand messages take a few seconds: time to cut the line
        async with (
            PtyLink(tmp_path / "line", baud=1_000_000) as line,
            answerer_and_dialler(tmp_path, line) as (a, b),
        ):
            publish(a, MESSAGES, "from a")
            await in_state(b, "connected")
            await until(lambda: clock(b).get(a.id, 0) >= 50, seconds=30)
            held = clock(b)[a.id]
            assert held < MESSAGES, "the transfer ended before the line could drop"
            await line.drop(down_for=0.5)
            await until(lambda: link_status(b)["sessions"] >= 2, seconds=20)
            await until(lambda: clock(a) == clock(b), seconds=40)
            assert clock(b)[a.id] == MESSAGES
            assert link_status(a)["sessions"] >= 2
            assert b.api.store.count_messages() == MESSAGES

    (tmp_path / "line").mkdir()
    run(scenario)


def test_gossip_connect_dials_a_serial_address(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            PtyLink(tmp_path / "line") as line,
            running(tmp_path / "a", **serial_only_config([{"device": str(line.a)}], [])) as a,
            running(tmp_path / "b", **serial_only_config([], [])) as b,
        ):
            publish(a, 20, "from a")
            key = a.id[1:].removesuffix(".ed25519")
            async with await Client.connect_local(b.config.socket_path) as ssb:
                answer = await ssb.gossip.connect(f"serial:{line.b}~shs:{key}")
            assert answer["id"] == a.id
            await until(lambda: clock(b).get(a.id) == 20)
            assert b.status()["serial"] == []  # nothing configured: a one-off dial

    (tmp_path / "line").mkdir()
    run(scenario)


def test_gossip_connect_to_a_missing_device_says_so(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "b", **serial_only_config([], [])) as b:
            key = b.id[1:].removesuffix(".ed25519")
            async with await Client.connect_local(b.config.socket_path) as ssb:
                with pytest.raises(RemoteError, match="rfcomm9: no such device"):
                    await ssb.gossip.connect(f"serial:{tmp_path}/rfcomm9~shs:{key}")

    run(scenario)


def test_a_device_that_is_not_there_yet_is_picked_up_when_it_appears(tmp_path: Path) -> None:
    async def scenario() -> None:
        line = PtyLink(tmp_path / "line")  # not connected: neither device exists
        try:
            async with answerer_and_dialler(tmp_path, line) as (a, b):
                publish(a, 5, "from a")
                for node in (a, b):
                    await in_state(node, "waiting for the device")
                    assert "no such device" in link_status(node)["error"]
                await asyncio.sleep(1.5)  # a few looks at the missing device
                line.connect()
                await until(lambda: clock(b).get(a.id) == 5, seconds=20)
        finally:
            await line.aclose()

    (tmp_path / "line").mkdir()
    run(scenario)


def test_garbage_on_the_line_before_the_preamble_is_skipped(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with PtyLink(tmp_path / "line") as line:
            answer = serial_only_config([{"device": str(line.a)}], [])
            async with running(tmp_path / "a", **answer) as a:
                publish(a, 5, "from a")
                await in_state(a, "waiting for a dialler")
                await asyncio.sleep(0.2)
                stale = marker("SYNC", "00" * 8) + marker("START", "11" * 8)
                await line.inject("a", os.urandom(20_000) + stale + b"\x16ssbsync-link/1 SY")
                dial = [{"device": str(line.b), "key": a.id}]
                async with running(tmp_path / "b", **serial_only_config([], dial)) as b:
                    await until(lambda: clock(b).get(a.id) == 5, seconds=20)

    (tmp_path / "line").mkdir()
    run(scenario)


@pytest.mark.parametrize(
    ("connections", "complaint"),
    [
        ({"incoming": {"serial": {"device": "/dev/x"}}}, r"connections\.incoming\.serial must"),
        ({"incoming": {"serial": ["/dev/x"]}}, r"serial\[0\] must be an object"),
        ({"incoming": {"serial": [{"device": "ttyS0"}]}}, r"serial\[0\]\.device"),
        ({"incoming": {"serial": [{"device": "/dev/x", "baud": "fast"}]}}, r"\.baud"),
        ({"incoming": {"serial": [{"device": "/dev/x", "baud": 0}]}}, r"\.baud"),
        ({"outgoing": {"serial": [{"device": "/dev/x"}]}}, r"outgoing\.serial\[0\]\.key"),
        (
            {
                "incoming": {"serial": [{"device": "/dev/x"}]},
                "outgoing": {"serial": [{"device": "/dev/x", "key": "@" + "A" * 43 + "=.ed25519"}]},
            },
            "configured more than once",
        ),
    ],
)
def test_bad_serial_config_names_the_field(
    tmp_path: Path, connections: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=complaint):
        config_in(tmp_path, connections=connections)


def test_serial_config_is_read(tmp_path: Path) -> None:
    key = "@" + "A" * 43 + "=.ed25519"
    config = config_in(
        tmp_path,
        connections={
            "incoming": {"serial": [{"device": "/dev/rfcomm0", "baud": 9600}]},
            "outgoing": {"serial": [{"device": "/dev/rfcomm1", "key": key}]},
        },
    )
    answer, dial = config.serial
    assert (answer.device, answer.baud, answer.role, answer.key) == (
        "/dev/rfcomm0",
        9600,
        "answer",
        None,
    )
    assert (dial.device, dial.baud, dial.role, dial.key) == ("/dev/rfcomm1", 115200, "dial", key)
