"""Running nodes in a test: each in its own folder on 127.0.0.1 (any free port), stopped when
the test's `async with` ends, whatever happened; and the bounded waits the tests use."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ssbsync.node import config as node_config
from ssbsync.node.server import Node

TIMEOUT = 20  # seconds for a node to start or stop


def config_in(folder: Path, **extra: Any) -> node_config.Config:
    """A config file in `folder` for loopback, any port, plus `extra` top-level fields."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config").write_text(json.dumps({"host": "127.0.0.1", "port": 0, **extra}))
    return node_config.load(folder)


@asynccontextmanager
async def running(folder: Path, **extra: Any) -> AsyncIterator[Node]:
    node = Node(config_in(folder, **extra))
    task = asyncio.create_task(node.run())
    try:
        await asyncio.wait_for(node.ready.wait(), TIMEOUT)
        yield node
    finally:
        node.stop()
        await asyncio.wait_for(task, TIMEOUT)


def tcp_address(node: Node) -> str:
    return next(a for a in node.addresses if a.startswith("net:"))


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


async def until(check: Callable[[], bool], seconds: float = 10) -> None:
    for _ in range(int(seconds * 20)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")
