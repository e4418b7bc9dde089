"""What the TUI asks of a node, and the two ways of asking (ARCHITECTURE.md "TUI").

Screens never touch the store or a socket: they await a `Backend` inside a worker and get
plain values back (`ssbsync.node.browse` dataclasses, `SyncStatus`). `DirectBackend` reads
the store in-process (no node running), on ONE thread of its own, so the store's
connections are only ever used from there and the event loop never blocks on SQLite.
`NodeBackend` calls the running node over its local socket (`browse.*`, `publish`,
`status`, `gossip.peers`, `stick.carry`, `bundle.export`): the node holds the store, so
nothing is opened twice. Paths typed by the user are made absolute here, where they were
typed: the node runs in a folder of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ssbsync.node import browse
from ssbsync.node.api import NodeAPI
from ssbsync.node.browse import (
    Browser,
    BundleWritten,
    CarryFeed,
    CarrySpec,
    CarryTarget,
    FeedSummary,
    MessageView,
    Progress,
    Thread,
    direct_browser,
    number,
)
from ssbsync.node.client import Client

T = TypeVar("T")
OnProgress = Callable[[Progress], None]


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
class StickState:
    """A stick the node's hotplug watcher saw (`status().sticks`): mounted → syncing →
    safe to remove, or not a stick, or failed with the reason in `detail`."""

    device: str
    label: str | None
    state: str
    detail: str
    at: float | None  # seconds since the epoch
    progress: Progress | None


@dataclass(frozen=True, slots=True)
class SyncStatus:
    peers: tuple[PeerState, ...]
    sticks: tuple[StickState, ...] = ()


class Backend(Protocol):
    me: str
    live: bool  # a running node: peers and sync exist

    async def feeds(self) -> list[FeedSummary]: ...
    async def feed_page(self, feed: str, before: int | None, limit: int) -> list[MessageView]: ...
    async def thread(self, key: str) -> Thread: ...
    async def publish(self, content: dict[str, Any]) -> str: ...
    async def sync_status(self) -> SyncStatus | None: ...
    async def carry_feeds(self) -> list[CarryFeed]: ...
    async def carry_target(self, path: str) -> CarryTarget: ...
    async def write_carry(self, path: str, carry: CarrySpec) -> CarryTarget: ...
    async def write_bundle(
        self, path: str, carry: CarrySpec, progress: OnProgress
    ) -> BundleWritten: ...
    async def close(self) -> None: ...


def absolute(path: str) -> str:
    """A typed path as the node needs it (`~` expanded, relative to where we run)."""
    text = path.strip()
    return str(Path(text).expanduser().absolute()) if text else ""


class DirectBackend:
    """The store opened in this process; every call runs on the backend's one thread."""

    def __init__(self, api: NodeAPI) -> None:
        self.live = False
        self._api = api
        self.me: str = api.keys.id
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssbsync-store")
        self._browser: Browser | None = None
        self._place: browse.Place | None = None

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

    def _where(self) -> browse.Place:
        if self._place is None:  # the network key and blobs: only the Carry screen needs them
            self._place = browse.offline_place(self._api)
        return self._place

    async def carry_feeds(self) -> list[CarryFeed]:
        return await self._run(lambda: self._browse().carry_feeds())

    async def carry_target(self, path: str) -> CarryTarget:
        return await self._run(lambda: browse.carry_target(self._where(), absolute(path)))

    async def write_carry(self, path: str, carry: CarrySpec) -> CarryTarget:
        spec = carry.to_json()
        return await self._run(lambda: browse.write_carry(self._where(), absolute(path), spec))

    async def write_bundle(
        self, path: str, carry: CarrySpec, progress: OnProgress
    ) -> BundleWritten:
        """The export job of `bundle export`, on the store thread; its progress is handed to
        the event loop (where `progress` runs) as it comes."""
        loop = asyncio.get_running_loop()
        target = absolute(path)

        def handed_over(step: Progress) -> None:
            loop.call_soon_threadsafe(progress, step)

        return await self._run(
            lambda: browse.write_bundle(self._where(), target, carry, handed_over)
        )

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
        status = await self._call("status")
        peers = await self._call("gossip.peers")
        if not isinstance(status, dict):
            raise BackendError(f"the node's status is not an object: {status!r:.80}")
        replication = status.get("replication")
        found = sync_status(
            peers if isinstance(peers, list) else [],
            replication if isinstance(replication, dict) else {},
        )
        sticks = status.get("sticks")
        return SyncStatus(found.peers, stick_states(sticks if isinstance(sticks, list) else []))

    async def carry_feeds(self) -> list[CarryFeed]:
        return [CarryFeed.from_json(item) for item in await self._call("browse.carry")]

    async def carry_target(self, path: str) -> CarryTarget:
        return CarryTarget.from_json(await self._call("browse.target", absolute(path)))

    async def write_carry(self, path: str, carry: CarrySpec) -> CarryTarget:
        written = await self._call("stick.carry", absolute(path), carry.to_json())
        return CarryTarget.from_json(written)

    async def write_bundle(
        self, path: str, carry: CarrySpec, progress: OnProgress
    ) -> BundleWritten:
        """`bundle.export` on the node: progress items as it works, then the summary."""
        args = [absolute(path), browse.bundle_options(carry)]
        summary: Any = None
        try:
            async for item in self._client.session.source(["bundle", "export"], *args):
                if isinstance(item, dict) and "progress" in item:
                    progress(browse.progress_from_json(item["progress"]))
                elif isinstance(item, dict) and "summary" in item:
                    summary = item["summary"]
            return BundleWritten.from_json(summary)
        except Exception as err:
            raise BackendError(f"the node could not write the bundle: {err}") from err

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


def stick_states(events: list[Any]) -> tuple[StickState, ...]:
    """`status().sticks` (hotplug's StickEvent.to_json, oldest first), newest first; an
    entry that is not an object is skipped, a bad progress read as none."""
    found = []
    for event in reversed(events):
        if not isinstance(event, dict):
            continue
        label, progress = event.get("label"), event.get("progress")
        try:
            step = None if progress is None else browse.progress_from_json(progress)
        except ValueError:
            step = None
        found.append(
            StickState(
                device=str(event.get("device") or "a stick"),
                label=label if isinstance(label, str) and label else None,
                state=str(event.get("state") or "unknown"),
                detail=str(event.get("detail") or ""),
                at=number(event.get("at")),
                progress=step,
            )
        )
    return tuple(found)


def _complete(state: Any) -> bool | None:
    return bool(state.get("complete")) if isinstance(state, dict) else None


def _outstanding(state: Any) -> int:
    left = state.get("outstanding") if isinstance(state, dict) else None
    return len(left) if isinstance(left, dict) else 0
