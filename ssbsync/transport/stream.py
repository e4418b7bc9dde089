"""The byte-stream contract every medium meets, and its asyncio implementation.

Contract (the trio `Stream` discipline, ARCHITECTURE.md "I/O code"):
* `receive_some(max_bytes)` returns 1..max_bytes bytes, or b"" once the peer has closed its
  sending side; never b"" otherwise.
* `send_all(data)` returns when all of `data` was handed to the medium; it raises
  `StreamClosed` if the stream is closed or broken.
* `aclose()` is idempotent and never raises; after it, both other calls raise `StreamClosed`.
Errors from the medium (OSError and friends) are mapped to `StreamClosed` at this boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Protocol


class StreamClosed(Exception):
    """The stream is closed or broken; the message says how."""


class ByteStream(Protocol):
    async def receive_some(self, max_bytes: int = 65536) -> bytes: ...
    async def send_all(self, data: bytes) -> None: ...
    async def aclose(self) -> None: ...


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except (OSError, EOFError, asyncio.IncompleteReadError) as err:
        raise StreamClosed(str(err) or type(err).__name__) from err


class AsyncioStream:
    """A ByteStream over an asyncio (reader, writer) pair: TCP, unix sockets, ptys."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._closed = False

    @property
    def peer(self) -> str:
        name = self._writer.get_extra_info("peername")
        return str(name) if name else "local"

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        if self._closed:
            raise StreamClosed("receive on a closed stream")
        with _mapped():
            return await self._reader.read(max_bytes)

    async def send_all(self, data: bytes) -> None:
        if self._closed:
            raise StreamClosed("send on a closed stream")
        with _mapped():
            self._writer.write(data)
            await self._writer.drain()

    async def aclose(self) -> None:
        """Close gracefully if what we wrote can still be flushed, else abort at once.

        A peer that stopped reading would otherwise keep the socket (and its buffers) open
        for as long as it likes.
        """
        if self._closed:
            return
        self._closed = True
        transport = self._writer.transport
        if transport.get_write_buffer_size() > 0:
            transport.abort()
        else:
            self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._writer.wait_closed()
        if not transport.is_closing() or transport.get_write_buffer_size() > 0:
            transport.abort()
