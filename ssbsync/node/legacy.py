"""Legacy replication with `createHistoryStream` (PROTOCOL.md §6), the caller's side.

Used with peers that have no EBT (or when ours is off: `replicate.legacy` and `replicate.ebt`
in config), and for single feeds an EBT session has stalled on. As ssb-replicate does, every
wanted feed gets a live stream from our latest sequence + 1; feeds wanted later get theirs
when they come. Each feed is first read without `live`: when every such read has ended, we
hold all the peer had when we asked, which is what "complete" means for a legacy peer (its
live streams carry on). Our calls are also what makes ssb-server start pulling from us (§6: it waits
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
        self._catching_up: dict[FeedId, int] = {}  # feeds whose first read has not ended
        self._arriving: dict[FeedId, int] = {}  # read to here, maybe not yet stored
        self.started = False  # set once the wanted feeds have been asked for
        self._announced = False

    @property
    def complete(self) -> bool:
        """Every wanted feed has been read, and stored, up to what the peer had when we
        asked."""
        if not self.started or self._catching_up:
            return False
        for feed, last in list(self._arriving.items()):
            if self._head(feed) < last:
                return False
            del self._arriving[feed]
        return True

    def tick(self) -> None:
        """Called every second: says "replication with PEER complete" once, as EBT does."""
        if not self._announced and self.complete:
            self._announced = True
            log.info("replication with %s complete", self._remote)

    def progress(self) -> dict[str, object]:
        """`progress`/`status` for this peer, in the shape the EBT peers have."""
        return {
            "complete": self.complete,
            "protocol": "createHistoryStream",
            "outstanding": {f: {"ours": seq} for f, seq in self._catching_up.items()},
        }

    async def run(self) -> None:
        """Live streams for every wanted feed and the peer's own (as with EBT, a peer we are
        connected to is replicated), that one first: it surely has it."""
        streaming: set[FeedId] = set()
        async with BurstIngest(self._api, self._refused) as ingest, asyncio.TaskGroup() as group:
            while not self._session.closed:
                feeds = (self._wanted() | {self._remote}) - streaming
                for feed in sorted(feeds, key=lambda f: f != self._remote):
                    streaming.add(feed)
                    self._catching_up[feed] = self._head(feed)
                    group.create_task(self._follow(feed, ingest))
                self.started = True
                await asyncio.sleep(RESCAN)

    async def _follow(self, feed: FeedId, ingest: BurstIngest) -> None:
        """Catch up on `feed`, then stay live from where that ended."""
        last = self._arriving[feed] = await self._stream(feed, ingest, live=False)
        self._catching_up.pop(feed, None)
        if not self._session.closed:
            await self._stream(feed, ingest, live=True, after=last)

    async def once(self, feed: FeedId) -> None:
        """What the peer has of `feed` beyond ours, without `live`."""
        async with BurstIngest(self._api, self._refused) as ingest:
            await self._stream(feed, ingest, live=False)

    def _head(self, feed: FeedId) -> int:
        head = self._api.store.feed_state(feed)
        return head.sequence if head else 0

    async def _stream(
        self, feed: FeedId, ingest: BurstIngest, *, live: bool, after: int = 0
    ) -> int:
        """Read `feed` from after what we hold (or `after`, what is queued for ingest but
        may not be stored yet); returns the last sequence that came (or where it started)."""
        last = max(self._head(feed), after)
        opts = {"id": feed, "seq": last + 1, "live": live, "keys": False}
        try:
            async for value in self._session.source("createHistoryStream", opts):
                await ingest.put(value)
                sequence = value.get("sequence") if isinstance(value, dict) else None
                if sequence == last + 1:  # in order; a bogus one is refused at ingest
                    last = sequence
        except RemoteError as err:
            if not self._session.closed:
                log.info("%s refused createHistoryStream of %s: %s", self._remote, feed, err)
        except (StreamClosed, TimeoutError):
            pass  # the session ends too; nothing more to pull
        return last

    def _refused(self, rejection: Rejection) -> None:
        """Logged once per peer: the rest of that stream follows from the first refusal."""
        if not self._warned:
            self._warned = True
            log.warning("%s sent a message we refuse: %s", self._remote, rejection.detail)
