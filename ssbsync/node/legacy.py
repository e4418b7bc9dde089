"""Legacy replication with `createHistoryStream` (PROTOCOL.md §6), the caller's side.

Used with peers that have no EBT (or when ours is off: `replicate.legacy` and `replicate.ebt`
in config), and for single feeds an EBT session has stalled on. As ssb-replicate does, every
wanted feed gets one live stream from our latest sequence + 1; feeds wanted later get theirs
when they come. Our calls are also what makes ssb-server start pulling from us (§6: it waits
for the peer's first createHistoryStream). Everything received goes through the one ingest
path, in bursts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ssbsync.core.refs import FeedId
from ssbsync.node.api import NodeAPI
from ssbsync.node.bursts import BurstIngest
from ssbsync.node.checking import Rejection
from ssbsync.node.session import RemoteError, RpcSession
from ssbsync.transport.stream import StreamClosed

log = logging.getLogger("ssbsync.legacy")

RESCAN = 1.0  # seconds between looks for newly wanted feeds


class LegacyPull:
    """Pull feeds from one peer over createHistoryStream, until the session ends."""

    def __init__(
        self,
        api: NodeAPI,
        session: RpcSession,
        remote: FeedId,
        wanted: Callable[[], set[FeedId]],
    ) -> None:
        self._api = api
        self._session = session
        self._remote = remote
        self._wanted = wanted
        self._warned = False

    async def run(self) -> None:
        """Live streams for every wanted feed and the peer's own (as with EBT, a peer we are
        connected to is replicated), that one first: it surely has it."""
        streaming: set[FeedId] = set()
        async with BurstIngest(self._api, self._refused) as ingest, asyncio.TaskGroup() as group:
            while not self._session.closed:
                feeds = (self._wanted() | {self._remote}) - streaming
                for feed in sorted(feeds, key=lambda f: f != self._remote):
                    streaming.add(feed)
                    group.create_task(self._stream(feed, ingest, live=True))
                await asyncio.sleep(RESCAN)

    async def once(self, feed: FeedId) -> int:
        """What the peer has of `feed` beyond ours, without `live`; returns how many came."""
        async with BurstIngest(self._api, self._refused) as ingest:
            return await self._stream(feed, ingest, live=False)

    async def _stream(self, feed: FeedId, ingest: BurstIngest, *, live: bool) -> int:
        head = self._api.store.feed_state(feed)
        start = (head.sequence if head else 0) + 1
        opts = {"id": feed, "seq": start, "live": live, "keys": False}
        received = 0
        try:
            async for value in self._session.source("createHistoryStream", opts):
                ingest.put(value)
                received += 1
        except RemoteError as err:
            if not self._session.closed:
                log.info("%s refused createHistoryStream of %s: %s", self._remote, feed, err)
        except (StreamClosed, TimeoutError):
            pass  # the session ends too; nothing more to pull
        return received

    def _refused(self, rejection: Rejection) -> None:
        """Logged once per peer: the rest of that stream follows from the first refusal."""
        if not self._warned:
            self._warned = True
            log.warning("%s sent a message we refuse: %s", self._remote, rejection.detail)
