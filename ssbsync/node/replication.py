"""EBT replication on a running node: `ebt.replicate` in both roles (PROTOCOL.md §7).

`ssbsync.core.ebt.EbtState` decides everything; this module feeds it events (stream items,
commits, a timer) and carries out its actions: notes and messages go out through one outbox
per peer, messages are read from the store only when they are sent (memory stays flat
whatever the feed size), and received messages go through the one ingest path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ssbsync.core.clock import encode_note, notes_from_json
from ssbsync.core.ebt import (
    Action,
    BlockFeed,
    EbtState,
    Event,
    MessageAppended,
    MessageReceived,
    MessageRejected,
    NotesReceived,
    PeerConnected,
    PeerDisconnected,
    SendMessages,
    SendNotes,
    StorePeerClock,
    Tick,
    UnwantFeed,
    WantFeed,
)
from ssbsync.core.errors import Reason, RemoteProtocolError
from ssbsync.core.jsonv8 import RawJSON
from ssbsync.core.message import FeedState
from ssbsync.core.refs import FeedId, is_feed_id
from ssbsync.node.api import NodeAPI
from ssbsync.node.bursts import BurstIngest
from ssbsync.node.checking import Rejection
from ssbsync.node.session import CallError, RemoteError, RpcSession
from ssbsync.node.store import Range
from ssbsync.transport.stream import StreamClosed

log = logging.getLogger("ssbsync.ebt")

FATAL = frozenset({Reason.FORK, Reason.BAD_SIGNATURE})  # what makes EBT block a feed (§5.7)
FIRST_NOTES_WAIT = 10.0  # seconds an EBT callee may take to send its first notes (§7.3)
# Seconds a feed may stay behind what an EBT peer claims of it, with nothing arriving, before
# we ask that peer for it with createHistoryStream instead (§6): well above EBT's own
# 3 s switch between peers, so legacy is the last resort, not a race.
LEGACY_AFTER = 10.0
_CLOSED = object()


def is_message(item: object) -> bool:
    """ssb-ebt's `isMsg`: an integer sequence > 0, a string author, truthy content (§7.2)."""
    if not isinstance(item, dict):
        return False
    sequence = item.get("sequence")
    return (
        type(sequence) is int
        and sequence > 0
        and isinstance(item.get("author"), str)
        and bool(item.get("content"))
    )


def check_args(args: list[Any]) -> None:
    """ssb-ebt 5 accepts version 2 or 3; ssbsync speaks version 3 (and format classic)."""
    opts = args[0] if args and isinstance(args[0], dict) else {}
    if opts.get("version") != 3 or opts.get("format", "classic") != "classic":
        raise CallError("expected ebt.replicate({version: 3})")


class Replicator:
    """One EbtState for the node, one outbox per connected EBT peer."""

    def __init__(
        self,
        api: NodeAPI,
        clock: Callable[[], float] = time.monotonic,
        on_stall: Callable[[FeedId, FeedId], None] = lambda peer, feed: None,
    ) -> None:
        self.api = api
        self._clock = clock
        self._on_stall = on_stall  # (peer, feed): EBT gives us nothing of a feed it claims
        self._behind: dict[tuple[FeedId, FeedId], tuple[int, float]] = {}  # since when
        self._arrived: dict[FeedId, float] = {}  # when a peer last sent us a message
        self.state = EbtState(api.store.vector_clock())
        self._outboxes: dict[FeedId, asyncio.Queue[object]] = {}
        self._peer_clocks: dict[FeedId, dict[FeedId, int]] = {}
        self._wanted: set[FeedId] = set()
        self._blocked: set[FeedId] = set()
        self._complete: set[FeedId] = set()  # peers with nothing outstanding at the last tick
        # LAN party (`replicate.lanParty`): peers every feed of which we take, followed or not
        self._take_everything: set[FeedId] = set()
        for feed in {api.keys.id, *self.state.clock}:
            self.want(feed)

    # -- events in -------------------------------------------------------------------------

    def want(self, feed: FeedId) -> None:
        if feed not in self._wanted:
            self._wanted.add(feed)
            self._run(WantFeed(feed))

    def unwant(self, feed: FeedId) -> None:
        """Stop replicating `feed` (ebt.request(feed, false))."""
        if feed in self._wanted:
            self._wanted.discard(feed)
            self._run(UnwantFeed(feed))

    def take_everything_from(self, peer: FeedId) -> None:
        """Replicate `peer` and every feed it replicates (LAN party, issue 6): its notes name
        the feeds it holds and wants (§7.2), and each of them becomes one we want: those of
        its notes that came before this call as well (a LAN peer may dial us before we hear
        its beacon, and we answered "not replicating" then)."""
        self._take_everything.add(peer)
        for feed in self.state.replicated_by(peer):
            if feed not in self._blocked:
                self.want(feed)

    def peer_status(self, feed: FeedId) -> dict[str, Any]:
        """ssb-ebt's peerStatus: our sequence of `feed` and what each peer says of it."""
        peers = {
            peer: {"seq": claim, "replicating": {"tx": send, "rx": receive}}
            for peer, (claim, send, receive) in self.state.feed_status(feed).items()
        }
        return {"id": feed, "seq": self.state.clock.sequence(feed), "peers": peers}

    def block(self, feed: FeedId) -> None:
        """Never replicate `feed` again (we block it)."""
        self._blocked.add(feed)
        self._run(BlockFeed(feed))

    def wanted(self) -> set[FeedId]:
        """Every feed we replicate (for legacy replication, which has no notes to say it)."""
        return self._wanted - self._blocked

    def appended(self, heads: dict[FeedId, FeedState]) -> None:
        """Our store grew. A feed we hold is a feed we replicate (and serve), however it came."""
        now = self._clock()
        for feed, head in heads.items():
            self.want(feed)
            self._run(MessageAppended(feed, head.sequence, now))

    def tick(self) -> None:
        now = self._clock()
        self._run(Tick(now))
        behind: dict[tuple[FeedId, FeedId], tuple[int, float]] = {}
        for peer in self._outboxes:
            left = self.state.outstanding(peer)
            complete = left == {}
            if complete and peer not in self._complete:
                log.info("replication with %s complete", peer)
            (self._complete.add if complete else self._complete.discard)(peer)
            for feed, (ours, theirs) in (left or {}).items():
                if theirs > ours:
                    behind[peer, feed] = self._still_behind(peer, feed, ours, now)
        self._behind = behind

    def _still_behind(self, peer: FeedId, feed: FeedId, ours: int, now: float) -> tuple[int, float]:
        """Since when we have had `ours` of a feed that `peer` claims more of, with nothing at
        all arriving from it; a stall of LEGACY_AFTER is reported (again every LEGACY_AFTER
        while it lasts)."""
        seen, since = self._behind.get((peer, feed), (ours, now))
        if seen != ours or self._arrived.get(peer, since) > since:
            # stored more, or the peer is sending (EBT sends one feed after another, so a
            # feed can wait long behind others in a big transfer): not stalled
            return ours, now
        if now - since >= LEGACY_AFTER:
            log.info(
                "EBT with %s stalled on %s at %d: asking with createHistoryStream", peer, feed, ours
            )
            self._on_stall(peer, feed)
            return ours, now
        return ours, since

    def is_complete(self, peer: FeedId) -> bool:
        """Nothing outstanding either way with `peer` (as of the last tick)."""
        return peer in self._complete

    def progress(self) -> dict[str, Any]:
        """Per connected EBT peer: complete or not, and the feeds still outstanding."""
        report: dict[str, Any] = {}
        for peer in self._outboxes:
            left = self.state.outstanding(peer)
            report[peer] = {
                "complete": left == {},
                "outstanding": {f: {"ours": a, "theirs": b} for f, (a, b) in (left or {}).items()},
            }
        return report

    def has_session(self, peer: FeedId) -> bool:
        return peer in self._outboxes

    def _run(self, event: Event) -> None:
        for action in self.state.handle(event):
            self._do(action)

    def _do(self, action: Action) -> None:
        if isinstance(action, StorePeerClock):
            self._peer_clocks[action.peer] = action.clock
            self._save_peer_clock(action.peer, action.clock)
            return
        outbox = self._outboxes.get(action.peer)
        if outbox is None:
            return
        if isinstance(action, SendNotes):
            outbox.put_nowait({feed: encode_note(note) for feed, note in action.notes.items()})
        elif isinstance(action, SendMessages):
            outbox.put_nowait(action)  # read from the store when it is its turn to go out

    # -- sessions --------------------------------------------------------------------------

    def _open(self, peer: FeedId, is_client: bool) -> asyncio.Queue[object]:
        if peer in self._outboxes:
            raise CallError(f"already replicating with {peer}")
        outbox: asyncio.Queue[object] = asyncio.Queue()
        self._outboxes[peer] = outbox
        log.info("EBT replication with %s (%s)", peer, "we called" if is_client else "it called")
        self.want(peer)
        stored = self._peer_clocks.get(peer) or self._load_peer_clock(peer)
        self._run(PeerConnected(peer, self._clock(), is_client, stored))
        return outbox

    # -- what each peer had, across restarts (ssb-ebt keeps these in ~/.ssb/ebt/) -----------

    def _clock_file(self, peer: FeedId) -> Path:
        name = peer[1:45].replace("/", "_").replace("+", "-")
        return self.api.folder / "ebt" / f"{name}.json"

    def _save_peer_clock(self, peer: FeedId, clock: dict[FeedId, int]) -> None:
        file = self._clock_file(peer)
        try:
            file.parent.mkdir(exist_ok=True)
            temporary = file.with_suffix(".tmp")
            temporary.write_text(json.dumps(clock), encoding="utf-8")
            os.replace(temporary, file)
        except OSError as err:  # only an optimisation: the next session sends full notes
            log.warning("cannot keep %s's EBT clock: %s", peer, err)

    def _load_peer_clock(self, peer: FeedId) -> dict[FeedId, int] | None:
        try:
            stored = json.loads(self._clock_file(peer).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict):
            return None
        return {
            FeedId(feed): seq
            for feed, seq in stored.items()
            if is_feed_id(feed) and type(seq) is int and seq >= -1
        }

    def _close(self, peer: FeedId) -> None:
        outbox = self._outboxes.pop(peer, None)
        self._complete.discard(peer)
        self._arrived.pop(peer, None)
        if outbox is not None:
            outbox.put_nowait(_CLOSED)
            self._run(PeerDisconnected(peer))

    async def _outgoing(self, outbox: asyncio.Queue[object]) -> AsyncIterator[object]:
        while (item := await outbox.get()) is not _CLOSED:
            if isinstance(item, SendMessages):
                window = Range(gte=item.from_seq, lte=item.to_seq)
                for row in self.api.store.history(item.feed, window):
                    yield RawJSON(row.value_json)
            else:
                yield item

    async def _incoming(self, peer: FeedId, items: AsyncIterator[Any]) -> None:
        """Notes are handled as they come; messages are ingested in bursts, in order."""
        async with BurstIngest(self.api, lambda r: self._rejected(peer, r)) as ingest:
            async for item in items:
                if is_message(item):
                    author, sequence = item["author"], item["sequence"]
                    if is_feed_id(author):
                        now = self._clock()
                        self._arrived[peer] = now  # queued for ingest: progress
                        self._run(MessageReceived(peer, FeedId(author), sequence, now))
                        await ingest.put(item)
                    continue
                try:
                    notes = notes_from_json(item)
                except RemoteProtocolError as err:
                    raise CallError(f"bad EBT notes from {peer}: {err.detail}") from None
                if peer in self._take_everything:
                    for feed, note in notes.items():
                        if note.replicate and feed not in self._blocked:
                            self.want(feed)
                self._run(NotesReceived(peer, notes, self._clock()))

    def _rejected(self, peer: FeedId, rejection: Rejection) -> None:
        if rejection.author is not None and rejection.sequence is not None:
            fatal = rejection.reason in FATAL
            self._run(MessageRejected(peer, FeedId(rejection.author), rejection.sequence, fatal))

    async def serve(
        self, peer: FeedId, args: list[Any], incoming: AsyncIterator[Any]
    ) -> AsyncIterator[object]:
        """The callee's side: the duplex handler of `ebt.replicate`."""
        check_args(args)
        outbox = self._open(peer, is_client=False)
        reader = asyncio.create_task(self._incoming(peer, incoming))
        reader.add_done_callback(lambda _: self._close(peer))
        try:
            async for item in self._outgoing(outbox):
                yield item
        finally:
            self._close(peer)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, RemoteError, CallError):
                await reader

    async def call(self, session: RpcSession, peer: FeedId) -> bool:
        """The caller's side, on a connection we dialled; False if the peer has no EBT."""
        duplex = await session.duplex(["ebt", "replicate"], {"version": 3})
        incoming = aiter(duplex.incoming)
        try:
            async with asyncio.timeout(FIRST_NOTES_WAIT):
                first = await anext(incoming)  # the callee speaks first (§7.3)
        except (RemoteError, StopAsyncIteration) as err:
            log.info("%s has no EBT (%s): legacy replication", peer, err)
            return False
        except TimeoutError:
            log.info("%s sent no EBT notes in %.0f s: legacy replication", peer, FIRST_NOTES_WAIT)
            await duplex.end()
            return False
        try:
            outbox = self._open(peer, is_client=True)
        except CallError as err:  # EBT runs on another session with this peer (crossed dials)
            log.info("EBT with %s: %s; this stream ends", peer, err)
            await duplex.end()
            return True
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(self._incoming(peer, _prepend(first, incoming)))
                reader.add_done_callback(lambda _: self._close(peer))  # its half ended: ours too
                async for item in self._outgoing(outbox):
                    await duplex.send(item)
        except* (RemoteError, StreamClosed, CallError) as errors:
            log.info("EBT with %s ended: %s", peer, errors.exceptions[0])
        finally:
            self._close(peer)
        return True


async def _prepend(first: object, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for item in rest:
        yield item
