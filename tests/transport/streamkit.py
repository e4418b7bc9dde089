"""One conformance kit for every ByteStream (ssbsync/transport/stream.py states the contract;
the idea is trio's `check_two_way_stream`).

A medium provides `make()`: an async context manager that yields a connected `StreamPair` and
cleans everything up afterwards. `check_streams(make)` runs each check on a fresh pair, each
bounded in time, so a stream that hangs fails instead of blocking the run:

* bytes arrive complete and in order, both ways at once, and a receive returns 1..max_bytes;
* a large send completes while the other side reads in small pieces;
* what is sent just before `aclose()` still arrives; then the other side reads b"" if the
  medium carries an end of stream (TCP), or nothing more (a serial line has no such signal);
* `aclose()` is idempotent, wakes a receive blocked on the same stream, and afterwards
  `send_all` and `receive_some` raise `StreamClosed`;
* when the peer vanishes (`vanish(peer)`: a TCP reset, a serial line that drops), receiving
  and sending raise `StreamClosed` promptly: never a hang, never b"" forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import pytest

from ssbsync.transport.stream import ByteStream, StreamClosed

CHECK_TIMEOUT = 20.0  # seconds for any one check
LARGE = 1 << 20  # bytes in the large send


@dataclass
class StreamPair:
    left: ByteStream
    right: ByteStream
    # The medium fails under the given end: it is gone without a word (a TCP reset; a
    # serial line that drops takes both ends with it).
    vanish: Callable[[ByteStream], Awaitable[None]]
    signals_eof: bool  # the peer's aclose() reaches the other end as b""


PairMaker = Callable[[], AbstractAsyncContextManager[StreamPair]]


def pattern(size: int, seed: int = 0) -> bytes:
    """Bytes that show any reordering, loss or duplication (not a repeating short cycle)."""
    return bytes((i * 7 + (i >> 8) * 13 + seed) % 251 for i in range(size))


async def receive_exactly(stream: ByteStream, size: int, max_bytes: int = 65536) -> bytes:
    got = bytearray()
    while len(got) < size:
        data = await stream.receive_some(max_bytes)
        assert data, f"end of stream after {len(got)} of {size} bytes"
        assert len(data) <= max_bytes
        got += data
    return bytes(got)


async def order_both_ways(pair: StreamPair) -> None:
    chunks = [pattern(n * 37 % 1500 + 1, seed=n) for n in range(200)]
    expected = b"".join(chunks)

    async def send(stream: ByteStream) -> None:
        for chunk in chunks:
            await stream.send_all(chunk)

    _, _, at_right, at_left = await asyncio.gather(
        send(pair.left),
        send(pair.right),
        receive_exactly(pair.right, len(expected), max_bytes=999),
        receive_exactly(pair.left, len(expected)),
    )
    assert at_right == expected and at_left == expected


async def large_send(pair: StreamPair) -> None:
    data = pattern(LARGE, seed=5)
    _, got = await asyncio.gather(
        pair.left.send_all(data), receive_exactly(pair.right, LARGE, max_bytes=1000)
    )
    assert got == data


async def last_words_then_close(pair: StreamPair) -> None:
    await pair.left.send_all(b"last words")
    await pair.left.aclose()
    assert await receive_exactly(pair.right, 10) == b"last words"
    if pair.signals_eof:
        async with asyncio.timeout(5):
            assert await pair.right.receive_some() == b""
    else:
        with pytest.raises(TimeoutError):  # no end-of-stream signal, and no stray bytes
            async with asyncio.timeout(0.3):
                await pair.right.receive_some()


async def close_is_final_and_idempotent(pair: StreamPair) -> None:
    await pair.left.aclose()
    await pair.left.aclose()
    with pytest.raises(StreamClosed):
        await pair.left.send_all(b"x")
    with pytest.raises(StreamClosed):
        await pair.left.receive_some()


async def close_wakes_a_blocked_receive(pair: StreamPair) -> None:
    receiving = asyncio.ensure_future(pair.left.receive_some())
    await asyncio.sleep(0.1)
    assert not receiving.done()
    await pair.left.aclose()
    async with asyncio.timeout(5):
        with contextlib.suppress(StreamClosed):
            assert await receiving == b""


async def vanished_peer_is_stream_closed(pair: StreamPair) -> None:
    await pair.vanish(pair.left)
    async with asyncio.timeout(5):
        with pytest.raises(StreamClosed):
            await pair.right.receive_some()
    async with asyncio.timeout(5):
        with pytest.raises(StreamClosed):
            for _ in range(1000):  # a socket may take a write or two to learn of a reset
                await pair.right.send_all(b"anyone there?")
                await asyncio.sleep(0.005)
    await pair.right.aclose()  # still never raises


CHECKS = (
    order_both_ways,
    large_send,
    last_words_then_close,
    close_is_final_and_idempotent,
    close_wakes_a_blocked_receive,
    vanished_peer_is_stream_closed,
)


async def check_streams(make: PairMaker) -> None:
    """Every check on a fresh pair, in both orientations (left/right swapped)."""
    for check in CHECKS:
        for swapped in (False, True):
            async with make() as pair:
                if swapped:
                    pair = StreamPair(pair.right, pair.left, pair.vanish, pair.signals_eof)
                try:
                    async with asyncio.timeout(CHECK_TIMEOUT):
                        await check(pair)
                except TimeoutError:
                    pytest.fail(f"{check.__name__} (swapped={swapped}) hung")
                finally:
                    for stream in (pair.left, pair.right):
                        with contextlib.suppress(asyncio.CancelledError):
                            await stream.aclose()
