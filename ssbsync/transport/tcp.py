"""TCP and unix-socket byte streams (asyncio)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from ssbsync.transport.stream import AsyncioStream, StreamClosed

Handler = Callable[[AsyncioStream], Awaitable[None]]
LIMIT = 1 << 20  # asyncio's per-stream read buffer


async def connect_tcp(host: str, port: int, timeout: float = 10.0) -> AsyncioStream:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=LIMIT)
    except (OSError, TimeoutError) as err:
        raise StreamClosed(f"could not connect to {host}:{port}: {err or 'timed out'}") from err
    return AsyncioStream(reader, writer)


async def connect_unix(path: Path, timeout: float = 10.0) -> AsyncioStream:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=LIMIT)
    except (OSError, TimeoutError) as err:
        raise StreamClosed(f"could not connect to {path}: {err or 'timed out'}") from err
    return AsyncioStream(reader, writer)


def _adapt(
    handler: Handler,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handler(AsyncioStream(reader, writer))

    return accepted


async def serve_tcp(host: str | None, port: int, handler: Handler) -> asyncio.Server:
    try:
        return await asyncio.start_server(_adapt(handler), host, port, limit=LIMIT)
    except OSError as err:
        raise StreamClosed(f"cannot listen on {host or '*'}:{port}: {err.strerror}") from err


async def serve_unix(path: Path, handler: Handler) -> asyncio.Server:
    """Listen on a unix socket readable by this user only (mode 0600, as ssb-unix-socket)."""
    if path.exists():
        path.unlink()  # a stale socket from a node that did not shut down cleanly
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(_adapt(handler), str(path), limit=LIMIT)
    except OSError as err:
        raise StreamClosed(f"cannot listen on {path}: {err.strerror}") from err
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return server
