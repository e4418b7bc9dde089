"""What the TUI asks of a node, and the two ways of asking (ARCHITECTURE.md "TUI").

Screens never touch the store or a socket: they await a `Backend` inside a worker and get
plain values back (`ssbsync.node.browse` dataclasses, `SyncStatus`). `DirectBackend` reads
the store in-process (no node running), on ONE thread of its own, so the store's
connections are only ever used from there and the event loop never blocks on SQLite.
`NodeBackend` calls the running node over its local socket (`browse.*`, `publish`,
`progress`, `gossip.peers`): the node holds the store, so nothing is opened twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ssbsync.node.api import NodeAPI
from ssbsync.node.browse import (
    Browser,
    FeedSummary,
    MessageView,
    Thread,
    direct_browser,
    number,
)
from ssbsync.node.client import Client

T = TypeVar("T")


class BackendError(Exception):
    """A node call failed; the text says what went wrong, in words for the user."""


@dataclass(frozen=True, slots=True)
class PeerState:
    """One peer as the Sync screen shows it (gossip.peers joined with progress)."""

    key: str
    address: str | None
    connected: bool
    complete: bool | None  # None: not replicating with it (yet)
    outstanding: int  # feeds still to exchange
    failures: int  # consecutive failed attempts to reach it
    next_attempt: float | None  # ms since the epoch


@dataclass(frozen=True, slots=True)
class SyncStatus:
    peers: tuple[PeerState, ...]


class Backend(Protocol):
    me: str
    live: bool  # a running node: peers and sync exist

    async def feeds(self) -> list[FeedSummary]: ...
    async def feed_page(self, feed: str, before: int | None, limit: int) -> list[MessageView]: ...
    async def thread(self, key: str) -> Thread: ...
    async def publish(self, content: dict[str, Any]) -> str: ...
    async def sync_status(self) -> SyncStatus | None: ...
    async def close(self) -> None: ...


class DirectBackend:
    """The store opened in this process; every call runs on the backend's one thread."""

    def __init__(self, api: NodeAPI) -> None:
        self.live = False
        self._api = api
        self.me: str = api.keys.id
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssbsync-store")
        self._browser: Browser | None = None

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn)
        except Exception as err:  # shown to the user; the store is unchanged by a read
            raise BackendError(str(err) or type(err).__name__) from err

    def _browse(self) -> Browser:
        if self._browser is None:  # built on the store thread: it reads the follow graph
            self._browser = direct_browser(self._api)
        return self._browser

    async def feeds(self) -> list[FeedSummary]:
        return await self._run(lambda: self._browse().feeds())

    async def feed_page(self, feed: str, before: int | None, limit: int) -> list[MessageView]:
        return await self._run(lambda: self._browse().feed_page(feed, before, limit))

    async def thread(self, key: str) -> Thread:
        return await self._run(lambda: self._browse().thread(key))

    async def publish(self, content: dict[str, Any]) -> str:
        item = await self._run(lambda: self._api.publish(content))
        assert isinstance(item, dict)
        return str(item["key"])

    async def sync_status(self) -> SyncStatus | None:
        return None

    async def close(self) -> None:
        await self._run(self._api.close)
        self._thread.shutdown(wait=True)


class NodeBackend:
    """The running node, over its local socket (master rights: `browse.*`, `publish`)."""

    def __init__(self, client: Client, me: str) -> None:
        self.live = True
        self._client = client
        self.me = me

    @classmethod
    async def connect(cls, socket: Path) -> NodeBackend | None:
        """None when no node answers on `socket` (none runs, or a stale socket file)."""
        if not socket.exists():
            return None
        try:
            client = await Client.connect_local(socket)
        except Exception:  # refused, stale, or not a node: run without one
            return None
        try:
            me = await client.session.call("whoami")
        except Exception:
            await client.close()
            return None
        return cls(client, str(me["id"]) if isinstance(me, dict) else "")

    async def _call(self, name: str, *args: Any) -> Any:
        try:
            return await self._client.session.call(name.split("."), *args)
        except Exception as err:
            raise BackendError(f"the node could not answer {name}: {err}") from err

    async def feeds(self) -> list[FeedSummary]:
        return [FeedSummary.from_json(item) for item in await self._call("browse.feeds")]

    async def feed_page(self, feed: str, before: int | None, limit: int) -> list[MessageView]:
        opts = {"id": feed, "before": before, "limit": limit}
        return [MessageView.from_json(item) for item in await self._call("browse.feed", opts)]

    async def thread(self, key: str) -> Thread:
        return Thread.from_json(await self._call("browse.thread", key))

    async def publish(self, content: dict[str, Any]) -> str:
        item = await self._call("publish", content)
        return str(item["key"])

    async def sync_status(self) -> SyncStatus | None:
        progress = await self._call("progress")
        peers = await self._call("gossip.peers")
        replication = progress.get("replication", {}) if isinstance(progress, dict) else {}
        return sync_status(peers if isinstance(peers, list) else [], replication)

    async def close(self) -> None:
        await self._client.close()


def sync_status(peers: list[Any], replication: dict[str, Any]) -> SyncStatus:
    """gossip.peers (the peer table plus live sessions) joined with `progress().replication`
    (per connected peer: complete, outstanding feeds); a peer in either is listed once."""
    found: dict[str, PeerState] = {}
    for peer in peers:
        if not isinstance(peer, dict) or not isinstance(peer.get("key"), str):
            continue
        key = peer["key"]
        state = replication.get(key)
        next_attempt = peer.get("nextAttempt")
        found.setdefault(
            key,
            PeerState(
                key=key,
                address=peer.get("address") if isinstance(peer.get("address"), str) else None,
                connected=peer.get("state") == "connected",
                complete=_complete(state),
                outstanding=_outstanding(state),
                failures=int(peer.get("failure") or 0),
                next_attempt=number(next_attempt),
            ),
        )
    for key, state in replication.items():
        if key not in found:
            found[key] = PeerState(key, None, True, _complete(state), _outstanding(state), 0, None)
    return SyncStatus(tuple(found.values()))


def _complete(state: Any) -> bool | None:
    return bool(state.get("complete")) if isinstance(state, dict) else None


def _outstanding(state: Any) -> int:
    left = state.get("outstanding") if isinstance(state, dict) else None
    return len(left) if isinstance(left, dict) else 0
