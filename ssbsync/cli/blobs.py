"""`ssbsync blobs.*` through the running node (PROTOCOL.md §8, §13).

As ssb-server's CLI: `blobs.add FILE` (or data on stdin) streams the bytes to the node's
`blobs.add` sink and prints the blob's id; `blobs.get ID` (and `blobs.getSlice`) write the
content to stdout as bytes. Every other `blobs.*` command is an ordinary call printed as JSON.
Blobs live in the running node (it announces and serves them), so these need one.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path
from typing import IO, Any, TextIO

from ssbsync.cli.running import call_running_node
from ssbsync.core.refs import blob_id
from ssbsync.node.api import ApiError
from ssbsync.node.client import Client
from ssbsync.node.session import RemoteError
from ssbsync.transport.stream import StreamClosed

CHUNK = 64 * 1024
BINARY_SOURCES = ("blobs.get", "blobs.getSlice")


def run_blobs(folder: Path, name: str, args: list[Any], out: TextIO) -> int:
    try:
        if name == "blobs.add":
            return asyncio.run(_add(folder, args, out))
        if name in BINARY_SOURCES:
            return asyncio.run(_get(folder, name, args))
    except StreamClosed as err:
        raise ApiError(f"{name}: the connection to the node ended ({err})") from None
    result = call_running_node(folder, name, args, out)
    if result is None:
        raise _no_node(name)
    return result


def _no_node(name: str) -> ApiError:
    return ApiError(f"{name}: no node is running (start one with `ssbsync start`)")


async def _client(folder: Path, name: str) -> Client:
    socket = folder / "socket"
    try:
        if socket.exists():
            return await Client.connect_local(socket)
    except (StreamClosed, OSError, RemoteError):
        pass  # a stale socket: no node is running
    raise _no_node(name)


def _open_input(args: list[Any]) -> IO[bytes]:
    if args and not isinstance(args[0], dict) and str(args[0]) != "-":
        return open(str(args[0]), "rb")  # closed by the caller
    if sys.stdin.isatty() and not args:
        raise ApiError("usage: ssbsync blobs.add FILE  (or: SOURCE | ssbsync blobs.add)")
    return sys.stdin.buffer


async def _add(folder: Path, args: list[Any], out: TextIO) -> int:
    source = _open_input(args)
    client = await _client(folder, "blobs.add")
    digest = hashlib.sha256()
    try:
        sink = await client.session.sink(["blobs", "add"])
        while chunk := await asyncio.to_thread(source.read, CHUNK):
            digest.update(chunk)
            await sink.send(chunk)
        await sink.finish()
    finally:
        if source is not sys.stdin.buffer:
            source.close()
        await client.close()
    out.write(blob_id(digest.digest()) + "\n")
    return 0


async def _get(folder: Path, name: str, args: list[Any]) -> int:
    client = await _client(folder, name)
    target = sys.stdout.buffer
    try:
        async for chunk in client.session.source(name.split("."), *args):
            if isinstance(chunk, str):
                chunk = chunk.encode("utf-8")
            if not isinstance(chunk, bytes):
                raise ApiError(f"{name} sent a {type(chunk).__name__}, not bytes")
            target.write(chunk)
        target.flush()
    finally:
        await client.close()
    return 0
