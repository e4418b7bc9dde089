"""The RPC methods a node serves, its manifest, and who may call what (PROTOCOL.md §12–13).

Permissions are ssb-server 16's: our own key and `master` ids may call everything; any other
peer only the anonymous list. A denied call gets muxrpc's exact error text, an unknown one
muxrpc's `no <type>:<name>`.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from ssbsync import __version__
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId, is_feed_id
from ssbsync.core.rpc import Request, RpcError
from ssbsync.node import blob_methods, browse, carrying, invites, private
from ssbsync.node.api import ApiError, NodeAPI, call_options
from ssbsync.node.ingest import IngestReport
from ssbsync.node.scheduler import gossip_methods
from ssbsync.node.session import CallError, Method
from ssbsync.node.sneakernet import sneakernet_methods
from ssbsync.node.wrapping import source as _source
from ssbsync.node.wrapping import sync as _sync

if TYPE_CHECKING:
    from ssbsync.node.server import Node

# ssb-server 16's anonymous list, for the methods ssbsync serves (§12); secret-stack adds
# `manifest` (lib/core.js), which ssb-client calls first.
ANONYMOUS = frozenset(
    {("manifest",), ("createHistoryStream",), ("gossip", "ping"), ("ebt", "replicate")}
    | {("blobs", name) for name in ("has", "get", "getSlice", "changes", "createWants")}
)
IMPORT_CHUNK = 500  # messages handed to the ingest thread at once


def _first(args: list[Any], what: str) -> Any:
    if not args:
        raise CallError(f"{what} is required")
    return args[0]


async def _writing(write: Callable[[JSONValue], JSONValue], value: JSONValue) -> JSONValue:
    """Run a store write off the event loop (it commits to disk)."""
    try:
        return await asyncio.to_thread(write, value)
    except ApiError as err:
        raise CallError(str(err)) from None


class Methods:
    """Builds the method table for one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.api: NodeAPI = node.api
        # secret-stack's auth hooks (§12): each names the methods a remote may call, or None
        # to pass; a peer no hook claims gets ANONYMOUS. Invites add one (invites.py).
        self.auth_hooks: list[Callable[[FeedId | None], frozenset[tuple[str, ...]] | None]] = []
        # Handlers that must know who calls (invite.use): name -> fn(remote) -> Method.
        self.per_caller: dict[tuple[str, ...], Callable[[FeedId | None], Method]] = {}
        self.table: dict[tuple[str, ...], Method] = self._build()

    def manifest(self) -> dict[str, Any]:
        """`{name: type}` with nested objects for namespaces, as secret-stack builds it."""
        manifest: dict[str, Any] = {}
        for name, method in self.table.items():
            target = manifest
            for part in name[:-1]:
                target = target.setdefault(part, {})
            target[name[-1]] = method.type
        return manifest

    def dispatch(
        self, request: Request, is_master: bool, remote: FeedId | None = None
    ) -> Method | RpcError:
        name = tuple(request.name)
        if not is_master and name not in self.allowed(remote):
            return RpcError(f"method:{'.'.join(name)} is not in list of allowed methods")
        if name == ("ebt", "replicate") and not self.node.config.replicate_ebt:
            return RpcError("no duplex:ebt,replicate")  # as a peer without ssb-ebt answers
        if name == ("ebt", "replicate") and request.type == "duplex" and remote is not None:
            replicator = self.node.replicator
            return Method("duplex", lambda args, incoming: replicator.serve(remote, args, incoming))
        method = self.table.get(name)
        if method is None or method.type != request.type:
            return RpcError(f"no {request.type}:{','.join(name)}")
        bind = self.per_caller.get(name)
        return method if bind is None else bind(remote)

    def allowed(self, remote: FeedId | None) -> frozenset[tuple[str, ...]]:
        """What a non-master peer may call: the first auth hook's answer, else ANONYMOUS."""
        for hook in self.auth_hooks:
            granted = hook(remote)
            if granted is not None:
                return granted
        return ANONYMOUS

    def restricted(self, remote: FeedId) -> bool:
        """True for a peer an auth hook limits (an invite guest): no replication with it."""
        return any(hook(remote) is not None for hook in self.auth_hooks)

    def _build(self) -> dict[tuple[str, ...], Method]:
        api, opts = self.api, call_options
        return {
            ("whoami",): _sync(lambda _: api.whoami()),
            ("manifest",): _sync(lambda _: self.manifest()),
            ("version",): _sync(lambda _: __version__),
            ("status",): _sync(lambda _: self.node.status()),
            ("progress",): _sync(lambda _: self.node.progress()),
            ("publish",): Method("async", self._publish),
            ("add",): Method("async", self._add),
            ("get",): _sync(lambda a: api.get(_first(a, "id"))),
            ("getLatest",): _sync(lambda a: api.get_latest(_first(a, "feed id"))),
            ("latestSequence",): _sync(lambda a: api.latest_sequence(_first(a, "feed id"))),
            ("getVectorClock",): _sync(lambda _: api.get_vector_clock()),
            ("createHistoryStream",): Method("source", self._history),
            # Streams send the stored JSON as it is (raw): nothing is parsed or re-encoded.
            ("createUserStream",): _source(
                lambda a: api.create_user_stream(opts(a, "id"), raw=True)
            ),
            ("createLogStream",): _source(lambda a: api.create_log_stream(opts(a), raw=True)),
            ("createFeedStream",): _source(lambda a: api.create_feed_stream(opts(a), raw=True)),
            ("messagesByType",): _source(lambda a: api.messages_by_type(opts(a, "type"), raw=True)),
            ("latest",): _source(lambda _: api.latest()),
            ("links",): _source(lambda a: api.links(opts(a))),
            ("createWriteStream",): Method("sink", self._write_stream),
            ("ssbsync", "import"): Method("duplex", self._import),
            ("gossip", "ping"): Method("duplex", self._ping),
            ("ebt", "replicate"): Method("duplex", self._no_ebt_locally),
            ("replicate", "request"): _sync(lambda a: self._replicate(_first(a, "feed id"))),
            ("ebt", "request"): _sync(lambda a: self._replicate(_first(a, "feed id"), *a[1:2])),
            ("ebt", "peerStatus"): _sync(lambda a: self._peer_status(_first(a, "feed id"))),
            ("friends", "hops"): _sync(lambda a: self._hops(opts(a, "start", "max"))),
            ("friends", "isFollowing"): _sync(lambda a: self._edge("is_following", a)),
            ("friends", "isBlocking"): _sync(lambda a: self._edge("is_blocking", a)),
            **sneakernet_methods(self.node),  # bundle.export/import, stick.sync
            **gossip_methods(self.node),  # gossip.add/remove/get/peers/changes/connect/...
            **invites.methods(self),
            **private.methods(self.api.keys),
            **blob_methods.methods(self),  # blobs.* (§8)
            **browse.methods(  # browse.* for the TUI (master only: not in ANONYMOUS)
                lambda: browse.Browser(self.api, self.node.social, refresh_social=False)
            ),
            **carrying.methods(lambda: self.node.sneakernet.place),  # browse.target, stick.carry
        }

    async def _publish(self, args: list[Any]) -> JSONValue:
        return await _writing(self.api.publish, _first(args, "content"))

    async def _add(self, args: list[Any]) -> JSONValue:
        return await _writing(self.api.add, _first(args, "msg"))

    async def _history(self, args: list[Any]) -> AsyncIterator[JSONValue]:
        """createHistoryStream (§6), with `live`: stored messages, then new ones as they come.

        Private messages are never decrypted on this path (it is what peers replicate from).
        """
        opts = call_options(args, "id", "seq", "live")
        if not is_feed_id(opts.get("id")):
            raise CallError(f"createHistoryStream needs a feed id, got {opts.get('id')!r}")
        feed = FeedId(str(opts["id"]))
        start_option = opts.get("sequence") or opts.get("seq") or 1
        limit = opts.get("limit")
        for name, value in (("seq", start_option), ("limit", limit)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise CallError(f"createHistoryStream: {name} must be a number, got {value!r}")
        start = int(start_option)
        remaining = int(limit) if isinstance(limit, int | float) and limit >= 0 else -1
        live, old = bool(opts.get("live")), opts.get("old", True) is not False
        if not old:
            start = max(start, self.api.store.vector_clock().sequence(feed) + 1)
        while remaining != 0:
            appended = self.node.appended  # take it before reading, so no commit is missed
            window = {**opts, "seq": start, "sequence": start, "limit": remaining}
            sent = 0
            for item in self.api.create_history_stream(window, raw=True):
                yield item
                sent += 1
                if sent % 256 == 0:
                    await asyncio.sleep(0)
            start += sent
            remaining = remaining - sent if remaining > 0 else remaining
            if not live:
                return
            await appended.wait()

    async def _write_stream(self, args: list[Any], incoming: AsyncIterator[Any]) -> None:
        """ssb-db's createWriteStream: messages in, through the one ingest path."""
        await self._ingest_stream(incoming)

    async def _import(self, args: list[Any], incoming: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """`ssbsync import` through a running node: messages in, then one report out."""
        report = await self._ingest_stream(incoming)
        yield report.to_json(examples=True)

    async def _ingest_stream(self, incoming: AsyncIterator[Any]) -> IngestReport:
        """Feed a stream of messages into ONE ingest call (so out-of-order input still
        works), handing them to its thread in chunks through a bounded queue."""
        chunks: queue.Queue[list[Any] | None] = queue.Queue(maxsize=8)

        def values() -> Iterator[Any]:
            while (chunk := chunks.get()) is not None:
                yield from chunk

        ingest = asyncio.create_task(
            asyncio.to_thread(self.api.import_messages, values(), parallel=True)
        )
        chunk: list[Any] = []
        try:
            async for item in incoming:
                chunk.append(item)
                if len(chunk) >= IMPORT_CHUNK:
                    await asyncio.to_thread(chunks.put, chunk)
                    chunk = []
        finally:  # whatever arrived is ingested, even if the caller went away
            if chunk:
                await asyncio.to_thread(chunks.put, chunk)
            await asyncio.to_thread(chunks.put, None)
            report = await ingest
        return report

    async def _no_ebt_locally(
        self, args: list[Any], incoming: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        raise CallError("ebt.replicate needs a peer: this connection has no identity")
        yield  # pragma: no cover - makes this an async generator

    def _replicate(self, feed: Any, replicating: Any = True) -> JSONValue:
        """replicate.request / ebt.request(feed, replicating?): replicate this feed too, or
        (with false) no longer."""
        if not is_feed_id(feed):
            raise ApiError(f"replicate.request needs a feed id, got {feed!r}")
        if not isinstance(replicating, bool):
            raise ApiError(f"replicating must be true or false, got {replicating!r}")
        change = self.node.replicator.want if replicating else self.node.replicator.unwant
        change(FeedId(str(feed)))
        return True

    def _peer_status(self, feed: Any) -> JSONValue:
        if not is_feed_id(feed):
            raise ApiError(f"ebt.peerStatus needs a feed id, got {feed!r}")
        return self.node.replicator.peer_status(FeedId(str(feed)))

    def _hops(self, opts: dict[str, Any]) -> JSONValue:
        """friends.hops({start?, max?}): {feed: hops} (negative: blocked or unfollowed)."""
        start, limit = opts.get("start"), opts.get("max")
        if start is not None and not is_feed_id(start):
            raise ApiError(f"friends.hops: start must be a feed id, got {start!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ApiError(f"friends.hops: max must be a whole number, got {limit!r}")
        return self.node.social.hops(FeedId(start) if start else None, limit)

    def _edge(self, test: str, args: list[Any]) -> JSONValue:
        """friends.isFollowing / isBlocking({source, dest})."""
        opts = call_options(args, "source", "dest")
        source, dest = opts.get("source"), opts.get("dest")
        if not (is_feed_id(source) and is_feed_id(dest)):
            raise ApiError("friends: source and dest must be feed ids")
        check = getattr(self.node.social.graph, test)
        return bool(check(FeedId(str(source)), FeedId(str(dest))))

    async def _ping(self, args: list[Any], incoming: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """gossip.ping (pull-ping): answer each timestamp the caller sends with ours."""
        async for _ in incoming:
            yield int(time.time() * 1000)
