"""Blobs on a running node: the store, want/have exchange with every peer, fetching
(PROTOCOL.md §8, "Protocol (inject.js)").

`ssbsync.core.blobwants.BlobWants` decides; this module does the I/O. On every authenticated
session (both directions) `run_peer` calls the peer's `blobs.createWants()` and feeds what
arrives to the reducer; the createWants streams we serve carry the reducer's answers. A peer
whose createWants fails at once (an old peer) is served by the legacy way: its
`blobs.changes()` tells us what it gets, and our wants are asked with `blobs.has([...])`.

Only explicitly wanted blobs are fetched (`blobs.want`, or a peer's want within sympathy), as
ssb-server 16 does: ssb-blobs does not follow links in messages; clients call `blobs.want`.
A fetched blob is written through the same checked path as `blobs.add` (hash verified before it
becomes visible, size limit enforced while streaming).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import cast

from ssbsync.core.blobwants import Action, BlobWants, Broadcast, Fetch, Pushed, SendTo, WantMap
from ssbsync.core.blobwants import parse_item as parse_want_item
from ssbsync.core.refs import BlobId, is_blob_id
from ssbsync.node.blobs import BlobError, BlobStore
from ssbsync.node.session import RemoteError, RpcSession
from ssbsync.transport.stream import StreamClosed

log = logging.getLogger("ssbsync.blobs")

FETCH_IDLE = 60.0  # seconds a peer may go without sending a chunk of a blob we fetch
LOCAL = "local"  # the createWants key of callers without an identity (the local socket)
UNKNOWN_SIZE = 1  # legacy peers announce no size; ssb-blobs records `true` (1) and fetches


class WantStream:
    """One createWants stream we serve: items merge while the peer is slow to read, so what
    waits is bounded by the number of distinct blobs, never by time."""

    def __init__(self, first: WantMap) -> None:
        self._pending: WantMap = dict(first)
        self._ready = asyncio.Event()
        self._ready.set()  # the first item goes out even when empty, as ssb-blobs sends it

    def put(self, item: WantMap) -> None:
        self._pending.update(item)
        self._ready.set()

    async def items(self) -> AsyncIterator[WantMap]:
        while True:
            await self._ready.wait()
            self._ready.clear()
            item, self._pending = self._pending, {}
            yield item


@dataclass
class PeerLink:
    """What we keep of one peer's session: where to fetch, and the fetches running."""

    session: RpcSession
    group: asyncio.TaskGroup
    legacy: WantStream | None = None  # set when the peer has no createWants
    fetches: set[BlobId] = field(default_factory=set)


class Blobs:
    def __init__(self, store: BlobStore, want_timeout: float) -> None:
        self.store = store
        self.want_timeout = want_timeout
        self.wants = BlobWants(max_size=store.max_size)
        self._streams: dict[str, list[WantStream]] = {}
        self._links: dict[str, PeerLink] = {}
        self._waiters: dict[BlobId, list[asyncio.Future[bool]]] = {}
        self._listeners: list[asyncio.Queue[tuple[BlobId, int]]] = []

    # -- what happens here ---------------------------------------------------------------

    def added(self, blob: BlobId, size: int) -> None:
        """A blob was stored (by `blobs.add` or a fetch): wake waiters, tell every peer."""
        for waiter in self._waiters.pop(blob, []):
            if not waiter.done():
                waiter.set_result(True)
        for queue in self._listeners:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((blob, size))
        self._apply(self.wants.added(blob, size))

    async def want(self, blob: BlobId) -> bool:
        """Wait until the blob is here (bounded by `want_timeout`)."""
        if self.store.has(blob):
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(blob, []).append(waiter)
        self._apply(self.wants.want(blob))
        try:
            async with asyncio.timeout(self.want_timeout):
                return await waiter
        except TimeoutError:
            raise BlobError(
                f"blobs.want: {blob} was not obtained within {self.want_timeout:g} s"
            ) from None
        finally:
            waiters = self._waiters.get(blob, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(blob, None)

    def wanted_by(self, peer: str, blobs: list[BlobId]) -> None:
        """A peer's `blobs.has` for blobs we lack: a want from it (−1, forwarded as −2)."""
        if blobs:
            self._apply(self.wants.received(peer, dict.fromkeys(blobs, -1), {}))

    def push(self, blob: BlobId) -> None:
        self._apply(self.wants.push(blob))

    def listen(self) -> asyncio.Queue[tuple[BlobId, int]]:
        """New blobs as (id, size), for `changes` and live `ls`; `unlisten` when done."""
        queue: asyncio.Queue[tuple[BlobId, int]] = asyncio.Queue(maxsize=10_000)
        self._listeners.append(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[tuple[BlobId, int]]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(queue)

    async def create_wants(self, peer: str | None) -> AsyncIterator[WantMap]:
        """The createWants stream we serve to `peer` (None: the local socket)."""
        key = peer or LOCAL
        stream = WantStream(self.wants.first_item())
        self._streams.setdefault(key, []).append(stream)
        try:
            async for item in stream.items():
                yield item
        finally:
            streams = self._streams.get(key, [])
            if stream in streams:
                streams.remove(stream)
            if not streams:
                self._streams.pop(key, None)

    # -- acting on the reducer's decisions -----------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendTo):
                self._send(action.peer, action.item)
            elif isinstance(action, Broadcast):
                for key in list(self._streams):
                    self._send(key, action.item)
                for link in self._links.values():
                    if link.legacy is not None:
                        link.legacy.put(action.item)
            elif isinstance(action, Fetch):
                self._start_fetch(action.peer, action.blob)
            elif isinstance(action, Pushed):
                log.info("%s is now held by %d peers", action.blob, len(action.peers))

    def _send(self, key: str, item: WantMap) -> None:
        for stream in self._streams.get(key, []):
            stream.put(item)

    def _start_fetch(self, peer: str, blob: BlobId) -> None:
        link = self._links.get(peer)
        if link is None or link.session.closed:
            self._apply(self.wants.fetch_failed(peer, blob))
            return
        link.fetches.add(blob)
        link.group.create_task(self._fetch(peer, link, blob))

    async def _fetch(self, peer: str, link: PeerLink, blob: BlobId) -> None:
        """`blobs.get({key, max})` from the peer into the store, hash-checked."""
        writer = self.store.writer(blob)
        items = cast(
            AsyncGenerator[object, None],
            link.session.source(["blobs", "get"], {"key": blob, "max": self.store.max_size}),
        )
        stored = False
        try:
            while True:
                async with asyncio.timeout(FETCH_IDLE):
                    chunk = await anext(items, None)
                if chunk is None:
                    break
                if isinstance(chunk, str):
                    chunk = chunk.encode("utf-8")  # multiblob hashes strings as UTF-8
                if not isinstance(chunk, bytes):
                    raise BlobError(f"blobs.get sent a {type(chunk).__name__}, not bytes")
                writer.write(chunk)
            await asyncio.to_thread(writer.finish)
            stored = True
        except (BlobError, RemoteError, StreamClosed, TimeoutError, OSError) as err:
            log.info("fetching %s from %s failed: %s", blob, peer, err or "no data in time")
        finally:
            link.fetches.discard(blob)
            if not stored:  # failed or cancelled: nothing half-written stays, ask elsewhere
                writer.abort()
                self._apply(self.wants.fetch_failed(peer, blob))
            with contextlib.suppress(Exception):
                await items.aclose()
        if not stored:
            return
        log.info("fetched %s (%d bytes) from %s", blob, writer.size, peer)
        self.added(blob, writer.size)

    # -- one peer ------------------------------------------------------------------------

    async def run_peer(self, session: RpcSession, remote: str, outgoing: bool) -> None:
        """Alongside a peer session: read its createWants (or the legacy calls) until it ends."""
        async with asyncio.TaskGroup() as group:
            link = PeerLink(session, group)
            self._links[remote] = link
            self.wants.connected(remote)
            try:
                await self._read_wants(link, remote)
            finally:
                if self._links.get(remote) is link:
                    del self._links[remote]
                    self._apply(self.wants.disconnected(remote))

    async def _read_wants(self, link: PeerLink, remote: str) -> None:
        modern = False
        try:
            async for item in link.session.source(["blobs", "createWants"]):
                modern = True
                entries = parse_want_item(item)
                sizes = {b: self.store.size(b) for b, n in entries.items() if n <= 0}
                self._apply(self.wants.received(remote, entries, sizes))
        except RemoteError as err:
            if modern or link.session.closed:
                return
            log.info("%s has no blobs.createWants (%s): legacy blob exchange", remote, err)
            await self._legacy(link, remote)
        except (StreamClosed, TimeoutError):
            return

    async def _legacy(self, link: PeerLink, remote: str) -> None:
        """ssb-blobs' legacy mode: the peer's `changes`, and `has` for each of our wants."""
        link.legacy = WantStream(dict(self.wants.wants))
        link.group.create_task(self._legacy_changes(link, remote))
        async for item in link.legacy.items():
            asked = [blob for blob, n in item.items() if n < 0]
            if not asked:
                continue
            try:
                answer = await link.session.call(["blobs", "has"], asked)
            except (RemoteError, StreamClosed, TimeoutError) as err:
                log.info("%s: legacy blobs.has failed: %s", remote, err)
                return
            if isinstance(answer, list):
                for blob, held in zip(asked, answer, strict=False):
                    if held is True:
                        self._apply(self.wants.has(remote, blob, UNKNOWN_SIZE))

    async def _legacy_changes(self, link: PeerLink, remote: str) -> None:
        with contextlib.suppress(RemoteError, StreamClosed, TimeoutError):
            async for blob in link.session.source(["blobs", "changes"]):
                if is_blob_id(blob):
                    self._apply(self.wants.has(remote, BlobId(str(blob)), UNKNOWN_SIZE))
