"""The serial transport (ssbsync/transport/serial.py) over pty pairs, and the stream kit run
against it and against TCP on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from ssbsync.core.keys import Keypair
from ssbsync.core.serialpreamble import marker
from ssbsync.node.secure import secure_client, secure_server
from ssbsync.transport import serial as link
from ssbsync.transport.serial import DeviceMissing, answer_serial, dial_serial, open_serial
from ssbsync.transport.stream import AsyncioStream, ByteStream, StreamClosed
from ssbsync.transport.tcp import connect_tcp, serve_tcp

from .ptylink import PtyLink
from .streamkit import StreamPair, check_streams, pattern, receive_exactly

NONCE = "0123456789abcdef"
OLD = "fedcba9876543210"


def run(coro_fn: object) -> None:
    asyncio.run(asyncio.wait_for(coro_fn, 120))  # type: ignore[arg-type]


# -- the stream kit --------------------------------------------------------------------------


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[StreamPair]:
    accepted: asyncio.Queue[AsyncioStream] = asyncio.Queue()

    async def handler(stream: AsyncioStream) -> None:
        await accepted.put(stream)

    server = await serve_tcp("127.0.0.1", 0, handler)
    try:
        left = await connect_tcp("127.0.0.1", server.sockets[0].getsockname()[1])
        right = await asyncio.wait_for(accepted.get(), 5)

        async def vanish(end: ByteStream) -> None:
            assert isinstance(end, AsyncioStream)
            sock = end._writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            end._writer.transport.abort()  # with SO_LINGER 0: a reset, no goodbye

        yield StreamPair(left, right, vanish, signals_eof=True)
        await left.aclose()
        await right.aclose()
    finally:
        server.close()
        await server.wait_closed()


def serial_pair(folder: Path) -> object:
    @asynccontextmanager
    async def make() -> AsyncIterator[StreamPair]:
        async with PtyLink(folder) as line:
            left, right = await asyncio.gather(
                dial_serial(str(line.a), timeout=5), answer_serial(str(line.b))
            )

            async def vanish(end: ByteStream) -> None:
                await line.drop(down_for=-1)

            try:
                yield StreamPair(left, right, vanish, signals_eof=False)
            finally:
                await left.aclose()
                await right.aclose()

    return make


def test_tcp_loopback_meets_the_stream_contract() -> None:
    run(check_streams(tcp_pair))


def test_a_serial_line_meets_the_stream_contract(tmp_path: Path) -> None:
    run(check_streams(serial_pair(tmp_path)))  # type: ignore[arg-type]


# -- opening ---------------------------------------------------------------------------------


def test_a_missing_device_says_so(tmp_path: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(DeviceMissing, match="no such device"):
            await open_serial(str(tmp_path / "rfcomm0"))

    run(scenario())


def test_a_file_that_is_not_a_serial_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"not a tty")

    async def scenario() -> None:
        with pytest.raises(StreamClosed, match="plain") as caught:
            await open_serial(str(tmp_path / "plain"))
        assert not isinstance(caught.value, DeviceMissing)

    run(scenario())


def test_a_device_is_opened_by_one_link_at_a_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with PtyLink(tmp_path) as line:
            first = await open_serial(str(line.a))
            try:
                with pytest.raises(StreamClosed, match="in use"):
                    await open_serial(str(line.a))
            finally:
                await first.aclose()
            second = await open_serial(str(line.a))  # free again once closed
            await second.aclose()

    run(scenario())


# -- the preamble ----------------------------------------------------------------------------


def test_a_dialler_with_no_answer_gives_up_in_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with PtyLink(tmp_path) as line:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(StreamClosed, match=r"no answer in 0\.5 s"):
                await dial_serial(str(line.a), timeout=0.5)
            assert loop.time() - started < 3
            # ... and the device is closed again: it can be opened at once
            await (await open_serial(str(line.a))).aclose()

    run(scenario())


def test_stale_bytes_and_markers_on_both_sides_are_skipped(tmp_path: Path) -> None:
    """What a dropped session leaves behind: its data, its markers, line noise."""
    stale = b"\x00\xffold box-stream bytes" + marker("SYNC", OLD) + b"\x16ssbsync-link/1 ST"
    stale_answers = marker("ACK", OLD) + marker("READY", OLD) + os.urandom(300)

    async def scenario() -> None:
        async with PtyLink(tmp_path) as line:
            answering = asyncio.ensure_future(answer_serial(str(line.b)))
            left = await open_serial(str(line.a))
            await asyncio.sleep(0.2)  # both have the device open (opening flushes its input)
            await line.inject("b", stale)
            await line.inject("a", stale_answers)
            await asyncio.sleep(0.05)
            _, right = await asyncio.gather(link._dial_preamble(left, NONCE), answering)
            try:
                data = pattern(5000)
                await left.send_all(data)
                assert await receive_exactly(right, len(data)) == data
                await right.send_all(b"and back")
                assert await receive_exactly(left, 8) == b"and back"
            finally:
                await left.aclose()
                await right.aclose()

    run(scenario())


def test_an_answerer_keeps_listening_through_garbage_and_a_dialler_that_went(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with PtyLink(tmp_path) as line:
            answering = asyncio.ensure_future(answer_serial(str(line.b)))
            await asyncio.sleep(0.1)
            await line.inject("b", os.urandom(10_000) + marker("SYNC", OLD))  # a dialler that left
            await asyncio.sleep(0.3)
            assert not answering.done()
            left = await dial_serial(str(line.a), timeout=5)
            right = await asyncio.wait_for(answering, 5)
            await left.send_all(b"hello")
            assert await receive_exactly(right, 5) == b"hello"
            await left.aclose()
            await right.aclose()

    run(scenario())


def test_a_new_session_starts_in_step_after_the_line_dropped(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with PtyLink(tmp_path) as line:
            for round in range(3):
                left, right = await asyncio.gather(
                    dial_serial(str(line.a), timeout=5), answer_serial(str(line.b))
                )
                # half a message in flight when the line goes
                await left.send_all(pattern(3000, seed=round))
                await right.send_all(b"unanswered")
                await line.drop(down_for=0.1)
                for stream in (left, right):
                    with pytest.raises(StreamClosed):
                        for _ in range(100):
                            await stream.receive_some()
                    await stream.aclose()

    run(scenario())


def test_a_secret_handshake_runs_over_the_line(tmp_path: Path) -> None:
    network = bytes(range(32))
    client_keys, server_keys = Keypair.from_seed(b"c" * 32), Keypair.from_seed(b"s" * 32)

    async def scenario() -> None:
        async with PtyLink(tmp_path) as line:
            left, right = await asyncio.gather(
                dial_serial(str(line.a), timeout=5), answer_serial(str(line.b))
            )
            client, server = await asyncio.gather(
                secure_client(left, network, client_keys, server_keys.public),
                secure_server(right, network, server_keys, lambda key: True),
            )
            assert server.remote_id == client_keys.id
            data = pattern(100_000, seed=9)
            _, got = await asyncio.gather(client.send_all(data), receive_exactly(server, len(data)))
            assert got == data
            await client.aclose()
            assert await server.receive_some() == b""  # the box-stream goodbye
            await server.aclose()

    run(scenario())


def test_the_sync_interval_is_short_enough_to_start_quickly() -> None:
    assert link.SYNC_INTERVAL <= 0.5 and link.DIAL_TIMEOUT >= 5
