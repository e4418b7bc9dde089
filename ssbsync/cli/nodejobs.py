"""Jobs run on the running node (when one runs: it holds the store) or on the store here."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssbsync.cli.progress import progress_bar
from ssbsync.node import config as node_config
from ssbsync.node.api import ApiError, NodeAPI
from ssbsync.node.client import Client
from ssbsync.node.session import RemoteError
from ssbsync.transport.stream import StreamClosed


@contextmanager
def offline(folder: Path) -> Iterator[tuple[NodeAPI, node_config.Config]]:
    config = node_config.load(folder)
    with NodeAPI(folder, hmac_key=config.sign_cap) as api:
        yield api, config


def on_node(folder: Path, method: str, args: list[Any], what: str) -> Any:
    """Run a job on the running node, showing its progress; its summary, or None if no node
    runs. A call result (not a stream) is returned as is."""
    return asyncio.run(node_job(folder, method, args, what))


async def node_job(folder: Path, method: str, args: list[Any], what: str) -> Any:
    socket = folder / "socket"
    try:
        client = await Client.connect_local(socket) if socket.exists() else None
    except (StreamClosed, OSError, RemoteError):
        client = None  # a stale socket: no node is running
    if client is None:
        return None
    try:
        if method == "getVectorClock":
            return await client.session.call([method])
        summary = None
        with progress_bar(what) as show:
            async for item in client.session.source(method.split("."), *args):
                if isinstance(item, dict) and "progress" in item:
                    show(item["progress"])
                elif isinstance(item, dict):
                    summary = item.get("summary")
        return summary
    except RemoteError as err:
        raise ApiError(f"{method}: {err}") from None
    finally:
        await client.close()
