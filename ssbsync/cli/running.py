"""`ssbsync start`, and commands sent to a running node through its local socket."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from ssbsync.cli.output import print_item, print_result
from ssbsync.cli.transfer import open_input, print_summary, values
from ssbsync.node import config as node_config
from ssbsync.node.api import ApiError
from ssbsync.node.client import Client
from ssbsync.node.ingest import IngestReport
from ssbsync.node.server import Node
from ssbsync.node.session import RemoteError
from ssbsync.transport.stream import StreamClosed

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def run_start(folder: Path, options: dict[str, Any]) -> int:
    """Run the node in the foreground until Ctrl-C or SIGTERM."""
    overrides = dict(_flatten(options))
    config = node_config.load(folder, overrides)
    logging.basicConfig(
        level=_LEVELS[config.log_level],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(_serve(Node(config)))
    return 0


def _flatten(options: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """{"logging": {"level": "info"}} → [("logging.level", "info")] (ssb-config overrides)."""
    pairs: list[tuple[str, Any]] = []
    for key, value in options.items():
        if isinstance(value, dict):
            pairs += _flatten(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


async def _serve(node: Node) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, node.stop)
    await node.run()


async def _connect(folder: Path) -> Client | None:
    socket = folder / "socket"
    if not socket.exists():
        return None
    try:
        return await Client.connect_local(socket)
    except (StreamClosed, OSError, RemoteError):
        return None  # a stale socket: no node is running


def run_sync(folder: Path, address: str, timeout: float, out: TextIO) -> int:
    """`ssbsync sync ADDR`: connect, replicate until nothing is outstanding, exit.

    Through the running node if there is one; else a node that only dials runs for the
    sync. Exit 0 when complete, 1 if `timeout` seconds passed first.
    """
    return asyncio.run(_sync(folder, address, timeout, out))


async def _sync(folder: Path, address: str, timeout: float, out: TextIO) -> int:
    client = await _connect(folder)
    if client is not None:
        async with client:
            peer = str((await client.session.call(["gossip", "connect"], address))["id"])  # type: ignore[index]

            async def complete() -> bool:
                progress = await client.session.call("progress")
                state = (
                    progress.get("replication", {}).get(peer)
                    if isinstance(progress, dict)
                    else None
                )
                return bool(state and state.get("complete"))

            done = await _wait(complete, timeout)
            clock = await client.session.call("getVectorClock")
    else:
        node = Node(node_config.load(folder), listen=False)
        running = asyncio.create_task(node.run())
        try:
            await node.ready.wait()
            peer = await node.connect(address)

            async def complete() -> bool:
                return node.is_complete(peer)

            done = await _wait(complete, timeout)
            clock = node.api.get_vector_clock()
        finally:
            node.stop()
            await running
    state = "complete" if done else f"NOT complete after {timeout:g} s"
    feeds = len(clock) if isinstance(clock, dict) else 0
    messages = sum(clock.values()) if isinstance(clock, dict) else 0
    out.write(f"replication with {peer} {state}: we hold {messages} messages of {feeds} feeds\n")
    return 0 if done else 1


async def _wait(complete: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await complete():
            return True
        await asyncio.sleep(0.5)
    return False


def node_is_running(folder: Path) -> bool:
    async def probe() -> bool:
        client = await _connect(folder)
        if client is None:
            return False
        await client.close()
        return True

    return asyncio.run(probe())


def import_through_node(folder: Path, name: str, out: TextIO) -> int | None:
    """`ssbsync import` while a node runs: stream to it, print its report; None if none runs."""
    return asyncio.run(_import(folder, name, out))


async def _import(folder: Path, name: str, out: TextIO) -> int | None:
    client = await _connect(folder)
    if client is None:
        return None
    source = open_input(name)
    try:
        duplex = await client.session.duplex(["ssbsync", "import"])
        for value in values(source):
            await duplex.send(value)
        await duplex.end()
        answers = [item async for item in duplex.incoming]
        if not answers:
            raise ApiError("the node sent no import report")
        return print_summary(IngestReport.from_json(answers[-1]), out)
    finally:
        if source is not sys.stdin:
            source.close()
        await client.close()


def call_running_node(folder: Path, name: str, args: list[Any], out: TextIO) -> int | None:
    """Run one command on the running node; None when no node is running."""
    return asyncio.run(_call(folder, name, args, out))


async def _call(folder: Path, name: str, args: list[Any], out: TextIO) -> int | None:
    client = await _connect(folder)
    if client is None:
        return None
    try:
        kind = _kind(client.methods, name.split("."))
        if kind is None:
            raise ApiError(f"unknown command: {name} (not in the node's manifest)")
        if kind == "source":
            async for item in client.session.source(name.split("."), *args):
                print_item(out, item)
        else:
            print_result(out, await client.session.call(name.split("."), *args))
        return 0
    finally:
        await client.close()


def _kind(manifest: dict[str, Any], path: list[str]) -> str | None:
    node: Any = manifest
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, str) else None
