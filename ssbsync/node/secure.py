"""Secret handshake then box-stream over any ByteStream (PROTOCOL.md §2–3).

The same code runs over TCP, a unix socket or a serial line (docs/serial-link.md): the medium
only has to be a `ByteStream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from ssbsync.core.boxstream import BoxStreamDecoder, BoxStreamEncoder
from ssbsync.core.errors import RemoteProtocolError
from ssbsync.core.events import GOODBYE, NEED_DATA
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId, feed_id
from ssbsync.core.shs import ClientHandshake, ServerHandshake, Session
from ssbsync.transport.stream import ByteStream, StreamClosed

Handshake = ClientHandshake | ServerHandshake


class SecureStream:
    """A ByteStream whose bytes travel in box-stream boxes under an SHS session."""

    def __init__(self, inner: ByteStream, session: Session, leftover: bytes) -> None:
        self._inner = inner
        self.remote_id: FeedId = feed_id(session.remote_public)
        self._encoder = BoxStreamEncoder(session.send)
        self._decoder = BoxStreamDecoder(session.receive)
        self._decoder.receive_data(leftover)
        self._ended = False
        self._closed = False

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        while not self._ended:
            event = self._decoder.next_event()
            if isinstance(event, bytes):
                return event
            if event is GOODBYE:
                self._ended = True
                break
            assert event is NEED_DATA
            data = await self._inner.receive_some(max_bytes)
            if not data:
                raise StreamClosed("the peer hung up without a box-stream goodbye")
            self._decoder.receive_data(data)
        return b""

    async def send_all(self, data: bytes) -> None:
        if self._closed:
            raise StreamClosed("send on a closed stream")
        if data:
            await self._inner.send_all(self._encoder.encode(data))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(StreamClosed, TimeoutError):
            async with asyncio.timeout(2):
                await self._inner.send_all(self._encoder.goodbye())
        await self._inner.aclose()


async def _pump(handshake: Handshake, stream: ByteStream) -> Session:
    while True:
        outgoing = handshake.data_to_send()
        if outgoing:
            await stream.send_all(outgoing)
        if handshake.session is not None:
            return handshake.session
        data = await stream.receive_some(4096)
        if not data:
            raise StreamClosed("the peer hung up during the handshake")
        handshake.receive_data(data)


async def _secure(handshake: Handshake, stream: ByteStream, timeout: float) -> SecureStream:
    """Run the handshake; on any failure the underlying stream is closed (SHS sends nothing)."""
    try:
        async with asyncio.timeout(timeout):
            session = await _pump(handshake, stream)
    except TimeoutError:
        await stream.aclose()
        raise StreamClosed(f"handshake timed out after {timeout:g} s") from None
    except RemoteProtocolError as err:
        await stream.aclose()
        raise StreamClosed(f"handshake failed: {err.detail}") from err
    except BaseException:
        await stream.aclose()
        raise
    return SecureStream(stream, session, handshake.leftover())


async def secure_client(
    stream: ByteStream,
    network_key: bytes,
    keys: Keypair,
    server_public: bytes,
    timeout: float = 5.0,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> SecureStream:
    handshake = ClientHandshake(network_key, keys, server_public, random_bytes(32))
    return await _secure(handshake, stream, timeout)


async def secure_server(
    stream: ByteStream,
    network_key: bytes,
    keys: Keypair,
    authorize: Callable[[bytes], bool],
    timeout: float = 5.0,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> SecureStream:
    handshake = ServerHandshake(network_key, keys, random_bytes(32), authorize)
    return await _secure(handshake, stream, timeout)
