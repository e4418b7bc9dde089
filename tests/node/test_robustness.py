"""A running node against broken and hostile peers (PROTOCOL.md §2–4, session.py's limits).

Each test attacks one node over 127.0.0.1 with a hand-made peer (tests/node/hostile.py) and
checks that the offending connection is dropped (or its call refused), that other connections
carry on (a good session opened before the attack keeps working and a fresh one can call
whoami and createHistoryStream), and that the node's run() task is still running. Where the
attack is about buffering, the peak of Python allocations (tracemalloc) during the attack must
stay under MEMORY_BOUND.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ssbsync.core import message
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId
from ssbsync.core.shs import ClientHandshake
from ssbsync.node import config as node_config
from ssbsync.node import server as node_server
from ssbsync.node import session as node_session
from ssbsync.node.client import Client, collect
from ssbsync.node.server import Node
from ssbsync.transport.stream import StreamClosed

from .hostile import (
    RPC_GOODBYE,
    RawPeer,
    SecurePeer,
    Target,
    frame_header,
    node_end_is_open,
    request,
    stream_item,
)

TIMEOUT = 20  # seconds: the bound on any single wait
SCENARIO_TIMEOUT = 50  # seconds: the bound on a whole test
MEMORY_BOUND = 50 << 20  # bytes of Python allocations an attack may cost the process
GOOD = Keypair.from_seed(b"\x11" * 32)  # the well-behaved clients: a master, may call whoami
MANIFEST = {"whoami": "async", "publish": "async", "createHistoryStream": "source"}
WRONG_NETWORK_KEY = bytes(range(32))


def stranger(n: int) -> Keypair:
    """A peer the node knows nothing about: it may call only the anonymous methods."""
    return Keypair.from_seed(bytes([0x40 + n]) * 32)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), SCENARIO_TIMEOUT))


async def until(check: Callable[[], bool], seconds: float, what: str) -> float:
    """Wait (polling) until `check()`; returns the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@contextlib.contextmanager
def traced_peak() -> Iterator[Callable[[], int]]:
    """The peak of Python allocations made since entering (node and attacker alike)."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@functools.cache
def archive() -> tuple[FeedId, tuple[JSONValue, ...]]:
    """Someone's feed of 2,000 signed messages of about 1 KB each (a big history to serve)."""
    keys = Keypair.from_seed(b"\x22" * 32)
    state = None
    values: list[JSONValue] = []
    for i in range(2000):
        text = f"{i:05d} " + "abcdefghij" * 100
        msg = message.create(
            keys, state, {"type": "post", "text": text}, 1_600_000_000_000 + i * 1000
        )
        state = msg.state()
        values.append(msg.value)
    return keys.id, tuple(values)


@dataclass
class Harness:
    node: Node
    task: asyncio.Task[None]
    target: Target
    address: str

    @property
    def network_key(self) -> bytes:
        return self.node.config.network_key

    def peer_ids(self) -> list[Any]:
        peers = self.node.peers()
        assert isinstance(peers, list)
        return [p["key"] for p in peers]

    def import_archive(self) -> FeedId:
        feed, values = archive()
        assert self.node.api.import_messages(values).accepted == len(values)
        return feed

    async def good_client(self) -> Client:
        return await Client.connect(self.address, GOOD, self.network_key, 10, MANIFEST)

    async def secure_peer(self, keys: Keypair, receive_buffer: int | None = None) -> SecurePeer:
        peer = await SecurePeer.connect(
            self.target, keys, self.network_key, receive_buffer=receive_buffer
        )
        try:
            await until(lambda: keys.id in self.peer_ids(), 5, "the node lists the new peer")
        except BaseException:
            await peer.close()
            raise
        return peer

    async def assert_serving(self, *open_clients: Client) -> None:
        """The node runs; open sessions and a fresh one get whoami and the node's history."""
        assert not self.task.done(), "the node stopped"
        state = self.node.api.store.feed_state(self.node.id)
        expected = list(range(1, (state.sequence if state else 0) + 1))
        async with await asyncio.wait_for(self.good_client(), TIMEOUT) as fresh:
            for client in (*open_clients, fresh):
                assert await asyncio.wait_for(client.whoami(), TIMEOUT) == {"id": self.node.id}
                opts = {"id": self.node.id, "keys": False}
                history = await asyncio.wait_for(collect(client.createHistoryStream(opts)), TIMEOUT)
                assert [m["sequence"] for m in history] == expected
        assert not self.task.done(), "the node stopped"


@asynccontextmanager
async def running(folder: Path, **extra: Any) -> AsyncIterator[Harness]:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"host": "127.0.0.1", "port": 0, "master": [GOOD.id], **extra}
    (folder / "config").write_text(json.dumps(settings))
    node = Node(node_config.load(folder))
    task = asyncio.create_task(node.run())
    try:
        await asyncio.wait_for(node.ready.wait(), TIMEOUT)
        for text in ("one", "two"):
            node.api.publish({"type": "post", "text": text})
        address = next(a for a in node.addresses if a.startswith("net:"))
        harness = Harness(node, task, Target.parse(address), address)
        yield harness
        # Let the sessions the test ended finish before stopping: that stop() itself ends
        # them is tested on its own (test_stop_ends_every_session_before_run_returns).
        with contextlib.suppress(AssertionError):
            await until(lambda: not harness.peer_ids(), 5, "every session ends")
    finally:
        node.stop()
        await asyncio.wait_for(task, TIMEOUT)  # also raises what the node died of, if it did


def history_call(number: int, feed: str, **opts: Any) -> bytes:
    return request(number, ["createHistoryStream"], [{"id": feed, **opts}], "source")


def _kernel_send_buffer() -> int:
    """The most a TCP socket may buffer for sending (tcp_wmem's maximum), 4 MB if unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return 4 << 20


def stalling_calls(feed: FeedId, *, live: bool = False) -> tuple[int, bytes]:
    """History calls (numbers 1..n) for the archive that ask for more than the kernel can
    buffer towards a peer that never reads: the node's own writes must then get stuck."""
    count = _kernel_send_buffer() // 2_400_000 + 2  # one call sends ~2.5 MB
    calls = [history_call(n, feed) for n in range(1, count + 1)]
    if live:
        calls[-1] = history_call(count, feed, live=True)
    return count, b"".join(calls)


STUCK = 1.0  # seconds after which the node's writes to a peer that never reads are stuck


# -- the hand-made peer itself -------------------------------------------------------------------


def test_the_hand_made_peer_speaks_the_protocol(tmp_path: Path) -> None:
    """hostile.py is right when it means to be, so the failures below are the node's."""

    async def scenario() -> None:
        async with running(tmp_path / "node") as h:
            peer = await h.secure_peer(stranger(0))
            async with peer:
                peer.start_reading()
                assert await peer.send_boxed(history_call(1, h.node.id, keys=False))
                await until(
                    lambda: any(p.number == -1 and p.end for p in peer.decoded()[0]),
                    5,
                    "the call is answered",
                )
                assert await peer.send_boxed(RPC_GOODBYE)
                assert await peer.dropped(5)
                packets, goodbye = peer.decoded()
            answers = [p for p in packets if p.number == -1]
            assert [json.loads(p.body)["sequence"] for p in answers[:-1]] == [1, 2]
            assert answers[-1].end and answers[-1].body == b"true"
            assert goodbye, "the node ends the box-stream with its goodbye"
            await h.assert_serving()

    run(scenario)


# -- 1-3: the handshake -----------------------------------------------------------------------


def test_random_bytes_instead_of_a_handshake_are_dropped(tmp_path: Path) -> None:
    async def scenario() -> None:
        rng = random.Random(1)
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            for size in (64, 4096, 65536):
                async with await RawPeer.open(h.target) as peer:
                    await peer.send(rng.randbytes(size))
                    assert await peer.dropped(5), f"{size} random bytes: still connected"
                    assert peer.received == b"", "a failed handshake is answered with silence"
            await h.assert_serving(good)

    run(scenario)


def test_a_truncated_handshake_is_dropped_after_the_handshake_timeout(tmp_path: Path) -> None:
    async def scenario() -> None:
        keys = stranger(2)
        async with (
            running(tmp_path / "node", timers={"handshake": 800}) as h,
            await h.good_client() as good,
        ):
            handshake = ClientHandshake(h.network_key, keys, h.target.key, os.urandom(32))
            msg1 = handshake.data_to_send()
            start = time.monotonic()
            async with contextlib.AsyncExitStack() as stack:
                silent, half_msg1, msg1_only, half_msg3 = [
                    await stack.enter_async_context(await RawPeer.open(h.target)) for _ in range(4)
                ]
                assert await half_msg1.send(msg1[:32])
                assert await msg1_only.send(msg1)
                assert await half_msg3.send(msg1)
                handshake.receive_data(await asyncio.wait_for(half_msg3.reader.readexactly(64), 5))
                assert await half_msg3.send(handshake.data_to_send()[:56])
                # while four handshakes hang, everybody else is served
                await h.assert_serving(good)
                for name, peer in [
                    ("silent", silent),
                    ("half of msg1", half_msg1),
                    ("msg1 only", msg1_only),
                    ("half of msg3", half_msg3),
                ]:
                    assert await peer.dropped(5), f"{name}: still connected"
                    assert time.monotonic() - start >= 0.7, f"{name}: dropped before the timeout"
                assert len(msg1_only.received) == 64  # msg2, then nothing
            await h.assert_serving(good)

    run(scenario)


def test_wrong_keys_in_the_handshake_fail_cleanly(tmp_path: Path) -> None:
    async def scenario() -> None:
        keys = stranger(3)
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            # another network: msg1's hmac does not match; the node says nothing and hangs up
            wrong = ClientHandshake(WRONG_NETWORK_KEY, keys, h.target.key, os.urandom(32))
            async with await RawPeer.open(h.target) as peer:
                assert await peer.send(wrong.data_to_send())
                assert await peer.dropped(5)
                assert peer.received == b""
            # the right network, then a msg3 that does not open
            handshake = ClientHandshake(h.network_key, keys, h.target.key, os.urandom(32))
            async with await RawPeer.open(h.target) as peer:
                assert await peer.send(handshake.data_to_send())
                handshake.receive_data(await asyncio.wait_for(peer.reader.readexactly(64), 5))
                assert await peer.send(random.Random(3).randbytes(112))
                assert await peer.dropped(5)
                assert peer.received == b""
            # the client side: a wrong network key or a wrong server key is a clean StreamClosed
            with pytest.raises(StreamClosed, match=r"hung up|handshake"):
                await Client.connect(h.address, keys, WRONG_NETWORK_KEY, 5, MANIFEST)
            other_server = stranger(4).id[1:].removesuffix(".ed25519")
            impostor = h.address.rsplit("~shs:", 1)[0] + "~shs:" + other_server
            with pytest.raises(StreamClosed, match=r"hung up|handshake"):
                await Client.connect(impostor, keys, h.network_key, 5, MANIFEST)
            assert keys.id not in h.peer_ids()
            await h.assert_serving(good)

    run(scenario)


# -- 4-5: box-stream and packet-stream after a good handshake ---------------------------------


def test_bad_box_stream_bytes_after_the_handshake_are_dropped(tmp_path: Path) -> None:
    async def scenario() -> None:
        rng = random.Random(4)
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            peers = [await h.secure_peer(stranger(10 + i)) for i in range(4)]
            async with contextlib.AsyncExitStack() as stack:
                for peer in peers:
                    await stack.enter_async_context(peer)
                garbage, tampered_body, tampered_header, replayed = peers
                box = tampered_body.boxer.box(history_call(1, h.node.id))
                flipped = bytearray(box)
                flipped[40] ^= 1
                await tampered_body.send(bytes(flipped))
                box = tampered_header.boxer.box(history_call(1, h.node.id))
                flipped = bytearray(box)
                flipped[3] ^= 1
                await tampered_header.send(bytes(flipped))
                box = replayed.boxer.box(history_call(1, h.node.id))
                await replayed.send(box + box)
                await garbage.send(rng.randbytes(4096))
                for name, peer in zip(
                    ["garbage", "tampered body", "tampered header", "replayed box"],
                    peers,
                    strict=True,
                ):
                    assert await peer.dropped(5), f"{name}: still connected"
                ids = {stranger(10 + i).id for i in range(4)}
                await until(lambda: not ids & set(h.peer_ids()), 5, "the sessions are gone")
            await h.assert_serving(good)

    run(scenario)


def test_oversized_lengths_are_dropped_on_the_header_alone(tmp_path: Path) -> None:
    """Only a header is sent: a node that waited for the announced body would hang on."""
    attacks: dict[str, Callable[[SecurePeer], bytes]] = {
        "box of 4097 bytes": lambda peer: peer.boxer.forged_header(4097),
        "box of 65535 bytes": lambda peer: peer.boxer.forged_header(65535),
        "box of 0 bytes": lambda peer: peer.boxer.forged_header(0),
        "frame of 100 MB": lambda peer: peer.boxer.box(frame_header(1, 100_000_000)),
        "frame of 1 MiB + 1": lambda peer: peer.boxer.box(frame_header(1, (1 << 20) + 1)),
        "frame of body type 3": lambda peer: peer.boxer.box(frame_header(1, 10, 0x03)),
    }

    async def scenario() -> None:
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            keys = [stranger(20 + i) for i in range(len(attacks))]
            async with contextlib.AsyncExitStack() as stack:
                peers = [await stack.enter_async_context(await h.secure_peer(k)) for k in keys]
                for peer, forge in zip(peers, attacks.values(), strict=True):
                    assert await peer.send(forge(peer))
                for peer, name in zip(peers, attacks, strict=True):
                    assert await peer.dropped(5), f"{name}: the node waits for the body"
            ids = {k.id for k in keys}
            await until(lambda: not ids & set(h.peer_ids()), 5, "the sessions are gone")
            await h.assert_serving(good)

    run(scenario)


# -- 6: thousands of open calls ----------------------------------------------------------------


def test_thousands_of_open_streams_hit_the_limit_and_memory_stays_bounded(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        count = 20_000
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            peer = await h.secure_peer(stranger(6))
            async with peer:
                peer.start_reading()
                # live streams of an empty feed: each call stays open, waiting for news
                frames = [history_call(n, stranger(7).id, live=True) for n in range(1, count + 1)]
                with traced_peak() as peak:
                    assert await peer.send_boxed(b"".join(frames[:1000]))
                    await asyncio.sleep(0.3)
                    assert stranger(6).id in h.peer_ids(), "dropped while under the limit"
                    for start in range(1000, count, 1000):
                        if not await peer.send_boxed(b"".join(frames[start : start + 1000])):
                            break
                    assert await peer.dropped(TIMEOUT), f"{count} open calls are accepted"
                    memory = peak()
                assert count > node_session.MAX_OPEN_CALLS
            assert memory < MEMORY_BOUND, f"{memory >> 20} MB for {count} open calls"
            await until(lambda: stranger(6).id not in h.peer_ids(), 5, "the session is gone")
            await h.assert_serving(good)

    run(scenario)


# -- 7: a peer that stops reading ----------------------------------------------------------------


def test_a_peer_that_stops_reading_is_dropped_and_costs_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_timeout = 1.0
    monkeypatch.setattr(node_session, "SEND_TIMEOUT", send_timeout)

    async def scenario() -> None:
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            feed = h.import_archive()
            keys = stranger(7)
            peer = await h.secure_peer(keys, receive_buffer=4096)
            async with peer:
                with traced_peak() as peak:
                    count, calls = stalling_calls(feed, live=True)
                    assert await peer.send_boxed(calls)
                    await asyncio.sleep(STUCK)
                    await h.assert_serving(good)  # meanwhile, everybody else is served
                    # The node gives up after SEND_TIMEOUT, then its goodbye and close wait
                    # up to 2 s each. (That every open stream may add a SEND_TIMEOUT is
                    # tolerated here, and tested below.)
                    await until(
                        lambda: keys.id not in h.peer_ids(),
                        count * send_timeout + 4 + 3,
                        "the node drops the stalled peer",
                    )
                    memory = peak()
            assert memory < MEMORY_BOUND, f"{memory >> 20} MB for one stalled peer"
            await h.assert_serving(good)

    run(scenario)


def test_a_stalled_peer_with_many_open_streams_is_dropped_as_fast_as_with_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the node gives up on a peer, ending each open stream must not wait another
    SEND_TIMEOUT: 30 streams would keep a dead peer for 30 × SEND_TIMEOUT."""
    send_timeout = 0.5
    monkeypatch.setattr(node_session, "SEND_TIMEOUT", send_timeout)

    async def scenario() -> None:
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            feed = h.import_archive()
            keys = stranger(8)
            peer = await h.secure_peer(keys, receive_buffer=4096)
            async with peer:
                calls = b"".join(history_call(n, feed) for n in range(1, 31))
                assert await peer.send_boxed(calls)
                await until(
                    lambda: keys.id not in h.peer_ids(),
                    send_timeout + 4 + 3,
                    "the node drops the stalled peer with 30 open streams",
                )
            await h.assert_serving(good)

    run(scenario)


def test_the_node_releases_the_socket_of_a_stalled_peer_it_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropping a peer that never reads again must not leave the node's socket open forever
    (waiting to flush bytes the peer will never read): each such peer would leak a file."""
    send_timeout = 0.5
    monkeypatch.setattr(node_session, "SEND_TIMEOUT", send_timeout)

    async def scenario() -> None:
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            feed = h.import_archive()
            keys = stranger(9)
            peer = await h.secure_peer(keys, receive_buffer=4096)
            async with peer:
                if node_end_is_open(h.target.port, peer.local_port) is None:
                    pytest.skip("needs /proc/net/tcp to see the node's end of a connection")
                assert node_end_is_open(h.target.port, peer.local_port)
                count, calls = stalling_calls(feed)
                assert await peer.send_boxed(calls)
                await until(
                    lambda: keys.id not in h.peer_ids(),
                    count * send_timeout + 4 + 3,
                    "the node drops the stalled peer",
                )
                await until(
                    lambda: not node_end_is_open(h.target.port, peer.local_port),
                    3,
                    "the node closes its socket of the peer it dropped",
                )
            await h.assert_serving(good)

    run(scenario)


def test_a_stalled_stream_does_not_freeze_what_others_read(tmp_path: Path) -> None:
    """A peer stops reading in the middle of a history: other clients can still publish,
    and still see what is published."""

    async def scenario() -> None:
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            feed = h.import_archive()
            peer = await h.secure_peer(stranger(12), receive_buffer=4096)
            async with peer:
                assert await peer.send_boxed(stalling_calls(feed)[1])
                await asyncio.sleep(STUCK)
                published = await asyncio.wait_for(
                    good.publish({"type": "post", "text": "while a peer stalls"}), TIMEOUT
                )
                assert published["value"]["sequence"] == 3
                history = await collect(good.createHistoryStream({"id": h.node.id}))
                assert [m["key"] for m in history][-1] == published["key"]
            await h.assert_serving(good)

    run(scenario)


def test_a_flooded_duplex_stream_costs_bounded_memory(tmp_path: Path) -> None:
    """gossip.ping (anonymous) while the node's writes to the peer are stuck: what arrives on
    the stream waits in a queue, which must be bounded in bytes, not only in items."""

    async def scenario() -> None:
        item = bytes(1_000_000)  # just under packet-stream's 1 MiB body limit
        items = 100
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            feed = h.import_archive()
            peer = await h.secure_peer(stranger(13), receive_buffer=4096)
            async with peer:
                count, calls = stalling_calls(feed)
                ping = request(count + 1, ["gossip", "ping"], [{}], "duplex")
                assert await peer.send_boxed(calls)
                await asyncio.sleep(STUCK)
                assert await peer.send_boxed(ping)
                sent = 0
                with traced_peak() as peak:
                    for _ in range(items):
                        try:
                            item_sent = await peer.send_boxed(stream_item(count + 1, item), 2)
                        except TimeoutError:
                            break  # the node stopped reading from us: bounded too
                        if not item_sent:
                            break  # the node dropped us
                        sent += 1
                    await asyncio.sleep(0.2)
                    memory = peak()
            assert memory < MEMORY_BOUND, f"{memory >> 20} MB after {sent} items of 1 MB"
            await h.assert_serving(good)

    run(scenario)


@pytest.mark.parametrize("peer", ["reading", "stalled"])
def test_stop_ends_every_session_before_run_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, peer: str
) -> None:
    """`await node.run()` returns once every session has ended ("then end every session and
    close the store"), and a peer that stopped reading does not hold stop() up for
    SEND_TIMEOUT (or one SEND_TIMEOUT per open stream)."""
    monkeypatch.setattr(node_session, "SEND_TIMEOUT", 10.0)

    async def scenario() -> None:
        ours = set(asyncio.all_tasks())
        async with running(tmp_path / "node") as h:
            feed = h.import_archive()
            buffer = 4096 if peer == "stalled" else None
            async with await h.secure_peer(stranger(15), receive_buffer=buffer) as hostile:
                if node_end_is_open(h.target.port, hostile.local_port) is None:
                    pytest.skip("needs /proc/net/tcp to see the node's end of a connection")
                if peer == "stalled":
                    assert await hostile.send_boxed(stalling_calls(feed)[1])
                    await asyncio.sleep(STUCK)
                else:
                    ours.add(hostile.start_reading())
                start = time.monotonic()
                h.node.stop()
                # its goodbye and close may wait 2 s each for a peer that does not read
                done, _ = await asyncio.wait({h.task}, timeout=2 + 2 + 2)
                elapsed = time.monotonic() - start
                still_open = node_end_is_open(h.target.port, hostile.local_port)
                left = [t.get_coro() for t in asyncio.all_tasks() - ours if not t.done()]
            assert done, f"run() still running {elapsed:.1f} s after stop()"
            assert not still_open, "run() returned with a connection still open"
            assert not left, f"run() returned with the node's tasks still running: {left}"

    run(scenario)


def test_a_stopped_node_leaves_its_store_to_the_next_one(tmp_path: Path) -> None:
    """Nothing of a node touches its store once `run()` returned: a new node on the same
    folder (a restart) can open it, even after the old sessions' timers ran out."""

    async def scenario() -> None:
        folder = tmp_path / "node"
        async with running(folder) as h:
            peer = await h.secure_peer(stranger(16))  # it never calls anything
            async with peer:
                peer.start_reading()
                h.node.stop()
                await asyncio.wait_for(h.task, TIMEOUT)
                # past any wait a session may still be in (e.g. for the peer's first call)
                await asyncio.sleep(getattr(node_server, "FIRST_CALL_WAIT", 0) + 0.5)
        try:
            restarted = Node(node_config.load(folder))
            try:
                assert restarted.api.store.feed_state(h.node.id) is not None
            finally:
                restarted.api.close()
        finally:
            h.node.api.close()  # whatever the old node reopened

    run(scenario)


# -- 8: goodbye, then more ---------------------------------------------------------------------


@pytest.mark.parametrize("goodbye", ["rpc", "box-stream"])
def test_bytes_after_goodbye_are_ignored_and_the_connection_closes(
    tmp_path: Path, goodbye: str
) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "node") as h, await h.good_client() as good:
            keys = stranger(14)
            peer = await h.secure_peer(keys)
            async with peer:
                peer.start_reading()
                assert await peer.send_boxed(history_call(1, h.node.id))
                await until(
                    lambda: any(p.number == -1 and p.end for p in peer.decoded()[0]),
                    5,
                    "the first call is answered",
                )
                if goodbye == "rpc":
                    after = peer.boxer.boxes(RPC_GOODBYE + history_call(2, h.node.id))
                else:
                    after = peer.boxer.goodbye() + peer.boxer.boxes(history_call(2, h.node.id))
                await peer.send(after)
                for _ in range(20):  # and it keeps talking
                    if not await peer.send(random.Random(8).randbytes(1024)):
                        break
                    await asyncio.sleep(0.01)
                assert await peer.dropped(5)
                packets, clean = peer.decoded()
            assert clean, "the node ends with a box-stream goodbye"
            assert not [p for p in packets if p.number == -2], "answered a call after goodbye"
            await until(lambda: keys.id not in h.peer_ids(), 5, "the session is gone")
            await h.assert_serving(good)

    run(scenario)


# -- 9: many clients at once --------------------------------------------------------------------


def test_fifty_concurrent_clients_are_all_served(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "node") as h:

            async def one() -> list[int]:
                async with await h.good_client() as client:
                    whoami, history = await asyncio.gather(
                        client.whoami(),
                        collect(client.createHistoryStream({"id": h.node.id, "keys": False})),
                    )
                    assert whoami == {"id": h.node.id}
                    return [m["sequence"] for m in history]

            results = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(50))), 30)
            assert results == [[1, 2]] * 50
            await until(lambda: not h.peer_ids(), 5, "every session ends")
            await h.assert_serving()

    run(scenario)
