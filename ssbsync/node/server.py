"""The running node: listeners, connections, sessions (PROTOCOL.md §2–4, §12–14).

`Node.run()` serves until `stop()`: TCP with the secret handshake for peers, the local unix
socket without authentication for the CLI (mode 0600, like ssb-server's noauth socket). Each
connection is one RpcSession; who the peer is decides what it may call (methods.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssbsync import __version__
from ssbsync.core import jsonv8
from ssbsync.core.address import Address, AddressError, parse_one
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.message import FeedState
from ssbsync.core.refs import FeedId, feed_id
from ssbsync.node.api import NodeAPI
from ssbsync.node.blob_replication import Blobs
from ssbsync.node.blobs import BlobStore
from ssbsync.node.config import Config, Listener
from ssbsync.node.lan import LanDiscovery
from ssbsync.node.legacy import LegacyPull
from ssbsync.node.methods import Methods
from ssbsync.node.replication import Replicator
from ssbsync.node.scheduler import Gossip
from ssbsync.node.secure import SecureStream, secure_client, secure_server
from ssbsync.node.serial_links import SerialLinks
from ssbsync.node.session import RemoteError, RpcSession
from ssbsync.node.sneakernet import Sneakernet
from ssbsync.node.social import SocialGraph
from ssbsync.transport.stream import ByteStream, StreamClosed
from ssbsync.transport.tcp import connect_tcp, connect_unix, serve_tcp, serve_unix

log = logging.getLogger("ssbsync.node")

FIRST_CALL_WAIT = 2.0  # seconds to wait for a new peer's first call before pulling from it
SHUTDOWN_WAIT = 5.0  # seconds a connection gets to close when the node stops
EBT_WAIT = 1.0  # after a dialler's first call, how long its ebt.replicate may take to come
TICK = 1.0  # seconds between EBT timer events
MAX_CONNECTIONS = 1024  # beyond this, new connections are closed at once
# Two sessions with one peer, each dialled by one side, this close together: both dialled at
# once (LAN peers hear each other's beacons in the same second), not a reconnection.
CROSSED_DIALS = 10.0

# Work that runs alongside every authenticated peer session (replication, blob wants, ...):
# called with the session, the peer's id and whether we dialled; cancelled when it ends.
PeerTask = Callable[[RpcSession, FeedId, bool], Coroutine[Any, Any, None]]


@dataclass
class Peer:
    """One live connection."""

    id: FeedId | None  # None on the local noauth socket
    session: RpcSession
    address: str
    outgoing: bool
    since: float = field(default_factory=time.time)
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # set when fully closed

    def to_json(self) -> JSONValue:
        return {
            "key": self.id,
            "address": self.address,
            "state": "connected",
            "source": "dial" if self.outgoing else "incoming",
            "stateChange": int(self.since * 1000),
        }


class Node:
    def __init__(self, config: Config, *, listen: bool = True) -> None:
        self.config = config
        self.api = NodeAPI(config.path, hmac_key=config.sign_cap)
        self.id: FeedId = self.api.keys.id
        self.blobs = Blobs(BlobStore(config.path, config.blobs_max), config.inactivity_timeout)
        self.methods = Methods(self)
        self.replicator = Replicator(self.api, on_stall=self._stalled)
        self.social = SocialGraph(self.api, self.id, config.friends_hops)
        self.appended = asyncio.Event()  # replaced after every commit: a broadcast
        self._peers: dict[RpcSession, Peer] = {}
        self._servers: list[asyncio.Server] = []
        self._stop = asyncio.Event()
        self._started = time.time()
        self.ready = asyncio.Event()
        self.addresses: list[str] = []
        self._group: asyncio.TaskGroup | None = None  # owns the sessions we dial
        self._listen = listen  # False: a node that only dials (`ssbsync sync`)
        self._legacy: dict[FeedId, LegacyPull] = {}  # peers we replicate with legacy only
        # replication, then blob wants and haves (§8)
        self.peer_tasks: list[PeerTask] = [self._replicate, self.blobs.run_peer]
        self.gossip = Gossip(self)  # the peer table and the connection scheduler (§14)
        self.sneakernet = Sneakernet(self)  # bundles, sticks, USB hotplug
        self.serial = SerialLinks(self)  # serial / Bluetooth RFCOMM lines (serial_links.py)
        self.lan = LanDiscovery(self)  # beacons on the LAN -> peers to dial (§11)
        if config.replicate_lan_party:  # every feed of every peer met on the LAN (issue 6)
            self.lan.on_peer.append(lambda key, _: self.replicator.take_everything_from(key))
        self._follow_graph_changed(self.social.wanted, self.social.blocked)

    # -- life cycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until `stop()`; then end every session and close the store."""
        loop = asyncio.get_running_loop()

        def committed(heads: dict[FeedId, FeedState]) -> None:  # runs on the apply thread
            loop.call_soon_threadsafe(self._committed, heads)

        self.api.subscribe(committed)
        self.api.store  # noqa: B018 - take the store's writer lock before listening
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for listener in self.config.listeners if self._listen else ():
                    await self._start_listener(listener)
                if self._listen:
                    self._write_manifest()
                log.info("ssbsync %s listening on %s", self.id, ", ".join(self.addresses))
                ticker = group.create_task(self._tick())
                gossip = group.create_task(self.gossip.run(dial=self._listen))
                hotplug = group.create_task(self.sneakernet.run())
                serial = group.create_task(self.serial.run())
                lan = group.create_task(self.lan.run())
                self.ready.set()
                await self._stop.wait()
                ticker.cancel()
                await self._close_sessions()
                gossip.cancel()
                hotplug.cancel()
                serial.cancel()
                lan.cancel()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def _close_sessions(self) -> None:
        """Stop accepting, end every session, and wait until each connection is gone."""
        for server in self._servers:
            server.close()
        peers = list(self._peers.values())
        await asyncio.gather(*(p.session.close() for p in peers))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_WAIT):
                await asyncio.gather(*(p.gone.wait() for p in peers))

    async def _shutdown(self) -> None:
        await self._close_sessions()
        for server in self._servers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await server.wait_closed()
        self.api.close()
        if self._listen:
            with contextlib.suppress(FileNotFoundError):
                self.config.socket_path.unlink()
        log.info("ssbsync stopped")

    async def _start_listener(self, listener: Listener) -> None:
        if listener.kind == "unix":
            path = self.config.socket_path
            self._servers.append(await serve_unix(path, self._accept_local))
            self.addresses.append(f"unix:{path}~noauth")
            return
        accept = self._accept_peer if listener.transform == "shs" else self._accept_local
        server = await serve_tcp(listener.host, listener.port, accept)
        self._servers.append(server)
        port = server.sockets[0].getsockname()[1]
        host = listener.external or listener.host or "localhost"
        key = self.id[1:].removesuffix(".ed25519")
        suffix = f"~shs:{key}" if listener.transform == "shs" else "~noauth"
        self.addresses.append(f"net:{host}:{port}{suffix}")

    def _write_manifest(self) -> None:
        text = jsonv8.stringify_pretty(self.methods.manifest())
        (self.config.path / "manifest.json").write_text(text, encoding="utf-8")

    def _committed(self, heads: dict[FeedId, FeedState]) -> None:
        event, self.appended = self.appended, asyncio.Event()
        event.set()
        if self._stop.is_set():
            return  # a last ingest while stopping: the store may be closed by now
        self.replicator.appended(heads)
        self._follow_graph_changed(*self.social.refresh())

    def _follow_graph_changed(self, wanted: set[FeedId], blocked: set[FeedId]) -> None:
        for feed in wanted - {self.id}:
            self.replicator.want(feed)
        for feed in blocked:
            self.replicator.block(feed)
        for peer in self._peers.values():  # a peer we now block is dropped
            if peer.id in blocked and self._group is not None:
                self._group.create_task(peer.session.close())

    async def _tick(self) -> None:
        """Drive EBT's timers (stalled feeds move to another peer, §7.3)."""
        while True:
            await asyncio.sleep(TICK)
            self.replicator.tick()
            for pull in self._legacy.values():
                pull.tick()

    # -- connections -----------------------------------------------------------------------

    async def _accept_local(self, stream: ByteStream) -> None:
        """The noauth socket: the caller is this node's owner, with every permission."""
        await self.serve_session(stream, None, "local", outgoing=False, is_master=True)

    async def _accept_peer(self, stream: ByteStream) -> None:
        try:
            secure, is_master = await self.handshake_incoming(stream)
        except StreamClosed as err:
            log.info("incoming connection refused: %s", err)
            await stream.aclose()
            return
        address = getattr(stream, "peer", "?")
        await self.serve_session(secure, secure.remote_id, address, False, is_master)

    async def handshake_incoming(self, stream: ByteStream) -> tuple[SecureStream, bool]:
        """The server's side of the handshake on any byte stream (TCP, a serial line): the
        secure stream, and whether the peer is one of our masters. StreamClosed if it fails."""
        secure = await secure_server(
            stream,
            self.config.network_key,
            self.api.keys,
            # ssb-friends refuses peers we block at the handshake (no msg4, §2).
            authorize=lambda public: feed_id(public) not in self.social.blocked,
            timeout=self.config.handshake_timeout,
        )
        remote = secure.remote_id
        return secure, remote == self.id or remote in self.config.masters

    async def handshake_outgoing(self, stream: ByteStream, key: bytes) -> SecureStream:
        """The client's side of the handshake with the peer whose public key is `key`."""
        return await secure_client(
            stream,
            self.config.network_key,
            self.api.keys,
            key,
            timeout=self.config.handshake_timeout,
        )

    async def serve_session(
        self,
        stream: ByteStream,
        remote: FeedId | None,
        address: str,
        outgoing: bool,
        is_master: bool,
    ) -> None:
        if self._stop.is_set() or len(self._peers) >= MAX_CONNECTIONS:
            await stream.aclose()
            return
        session = RpcSession(
            stream,
            lambda request: self.methods.dispatch(request, is_master, remote),
            label=remote or "local",
            inactivity_timeout=self.config.inactivity_timeout,
        )
        peer = self._peers[session] = Peer(remote, session, address, outgoing)
        if remote is not None:
            log.info("%s %s (%s)", "dialled" if outgoing else "accepted", remote, address)
        duplicate = self._duplicate_to_close(peer) if remote is not None else None
        if duplicate is not None and self._group is not None:
            self._group.create_task(duplicate.session.close())
        try:
            async with asyncio.TaskGroup() as group:
                alongside = []
                # An invite guest (methods.restricted) only redeems its code: nothing runs.
                if (
                    remote is not None
                    and remote != self.id
                    and duplicate is not peer
                    and not self.methods.restricted(remote)
                ):
                    alongside = [
                        group.create_task(task(session, remote, outgoing))
                        for task in self.peer_tasks
                    ]
                try:
                    await session.run()
                finally:
                    for work in alongside:
                        work.cancel()
        finally:
            self._peers.pop(session, None)
            peer.gone.set()

    def _duplicate_to_close(self, new: Peer) -> Peer | None:
        """When both sides dialled each other at once, the session to end (one EBT stream per
        peer, §7.1): both sides pick the same one, keeping the one the smaller id dialled.

        Several sessions dialled by the same side are left alone: clients may hold more than
        one, and a stale one ends by its inactivity timer.
        """
        crossed = (
            p
            for p in self._peers.values()
            if p.id == new.id and p.outgoing != new.outgoing and new.since - p.since < CROSSED_DIALS
        )
        old = next(crossed, None)
        if old is None:
            return None
        we_dial_the_kept_one = self.id < str(new.id)
        return old if new.outgoing == we_dial_the_kept_one else new

    async def _replicate(self, session: RpcSession, remote: FeedId, outgoing: bool) -> None:
        """EBT with the peer; legacy replication of every wanted feed when it has none (§6–7).

        The dialler calls ebt.replicate (§7.1): on connections we dialled we call it; on the
        others we wait a moment for the peer's call. `replicate.ebt: false` skips EBT.
        """
        use_ebt = self.config.replicate_ebt
        if outgoing and use_ebt:
            try:
                if await self.replicator.call(session, remote):
                    return
            except (StreamClosed, RemoteError):
                return
        # A JS peer listens for our createHistoryStream only once its `rpc:connect` handlers
        # ran, and its first call to us shows they have; a call sent sooner is missed and it
        # never pulls from us (ssb-replicate legacy.js). A dialler's ebt.replicate follows.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_CALL_WAIT + (EBT_WAIT if use_ebt else 0)):
                await session.first_request.wait()
                while use_ebt and not outgoing and not self.replicator.has_session(remote):
                    await asyncio.sleep(0.05)
        if self.config.replicate_legacy and not self.replicator.has_session(remote):
            pull = self._legacy[remote] = LegacyPull(
                self.api, session, remote, self.replicator.wanted
            )
            try:
                await pull.run()
            finally:
                if self._legacy.get(remote) is pull:
                    del self._legacy[remote]

    def _stalled(self, peer: FeedId, feed: FeedId) -> None:
        """EBT gives us nothing of a feed `peer` claims: ask for it once by createHistoryStream."""
        session = next((p.session for p in self._peers.values() if p.id == peer), None)
        if session is None or self._group is None or not self.config.replicate_legacy:
            return
        self._group.create_task(LegacyPull(self.api, session, peer, set).once(feed))

    async def connect(self, address: str) -> FeedId:
        """Dial a peer (`gossip.connect`); the session runs until either side ends it."""
        try:
            target = parse_one(address)
        except AddressError as err:
            raise ValueError(str(err)) from None
        if target.transform == "noauth" or target.key is None:
            raise ValueError("dialling a noauth address is not supported")
        secure = await self.handshake_outgoing(await self._dial(target), target.key)
        remote = feed_id(target.key)
        # On connections we dialled, the remote gets the anonymous permissions (§12).
        assert self._group is not None, "connect() needs a running node"
        self._group.create_task(self.serve_session(secure, remote, str(target), True, False))
        await asyncio.sleep(0)
        return remote

    async def _dial(self, target: Address) -> ByteStream:
        if target.kind == "unix":
            return await connect_unix(Path(target.host))
        if target.kind == "serial":
            return await self.serial.dial(target.host)
        return await connect_tcp(target.host, target.port)

    async def disconnect(self, address: str) -> JSONValue:
        try:
            key = parse_one(address).feed
        except AddressError:
            key = FeedId(address) if address.startswith("@") else None
        closing = [p.session.close() for p in self._peers.values() if p.id == key]
        await asyncio.gather(*closing)
        return len(closing) > 0

    # -- reports ---------------------------------------------------------------------------

    def peers(self) -> JSONValue:
        return [p.to_json() for p in self._peers.values() if p.id is not None]

    def status(self) -> JSONValue:
        clock = self.api.store.vector_clock()
        return {
            "id": self.id,
            "version": __version__,
            "uptime": round(time.time() - self._started, 3),
            "addresses": self.addresses,
            "peers": self.peers(),
            "feeds": len(clock),
            "messages": sum(clock.values()),
            "replication": self.replication_progress(),
            "sticks": self.sneakernet.status(),
            "serial": self.serial.status(),
            "lan": self.lan.status(),
        }

    def replication_progress(self) -> dict[str, Any]:
        """Per connected peer, EBT or legacy: complete or not, and what is outstanding."""
        legacy: dict[str, Any] = {p: pull.progress() for p, pull in self._legacy.items()}
        return {**legacy, **self.replicator.progress()}

    def is_complete(self, peer: FeedId) -> bool:
        """Nothing left to replicate with `peer` (the "replication complete" of `sync`)."""
        pull = self._legacy.get(peer)
        return self.replicator.is_complete(peer) or (pull is not None and pull.complete)

    def progress(self) -> JSONValue:
        # ssbsync indexes as it commits, so nothing lags (ssb-db's shape: start/current/target).
        total = sum(self.api.store.vector_clock().values())
        return {
            "indexes": {"start": total, "current": total, "target": total},
            "replication": self.replication_progress(),
        }
