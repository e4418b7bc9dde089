"""EBT replication (PROTOCOL.md §7.3) as a pure, deterministic reducer.

The host feeds events in (`EbtState.handle(event)`) and carries out the actions that come back:
it encodes `SendNotes` with `clock.encode_note`, reads the messages of `SendMessages` from its
store and sends them in order, and persists `StorePeerClock`. Time is an argument of the events
(`now`, in seconds; any monotonic origin); `Tick(now)` drives stall detection and
`next_deadline()` says when the next one is useful. Nothing here does I/O or reads a clock.

Contract with the host:
* Report every message that arrives from a peer with `MessageReceived` *before* it goes through
  the ingest path; then report `MessageAppended` (stored) or `MessageRejected` (fatal: fork or
  bad signature, §5.7). Report our own publishes and messages from any other source (legacy
  replication, sticks) with `MessageAppended` as well.
* The reducer does not filter incoming messages; the ingest path refuses feeds we do not
  replicate and anything that does not extend the stored feed.

Vocabulary: a peer's *claim* for a feed is the highest sequence it told us it has (notes, or
messages it sent us; -1 = "does not replicate"). The *source* of a feed is the one peer we
asked to send it (our last note to it had `receive` set); every other peer is *lazy* for that
feed and only tells us, by notes, how far it has got.

Invariants (checked by `check_invariants`, which the tests call after every event):
1. A feed has at most one source, and `_source[f] == p` exactly when our last note to `p` for
   `f` was `Note(True, _, receive=True)`.
2. A source is a connected, started peer with whom the feed is shared (wanted, not blocked
   globally nor for that peer).
3. `SendMessages` ranges start right after what the peer has or was already sent
   (`sent_upto`) and end at our clock: messages go out in order, at most once per connection
   (checked by the simulator, which sends only what its store holds).
4. Nothing is sent to a peer (notes or messages) before it has been started: the callee starts
   on connect, the caller on the callee's first notes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ssbsync.core.clock import Note, VectorClock
from ssbsync.core.errors import LocalProtocolError
from ssbsync.core.refs import FeedId

STALL_TIMEOUT = 3.0  # seconds; epidemic-broadcast-trees' default `timeout`
NOT_REPLICATING = Note(replicate=False)


# --- events in ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """An `ebt.replicate` stream opened. `is_client`: we called it (so we wait for notes)."""

    peer: FeedId
    now: float
    is_client: bool
    stored_clock: Mapping[FeedId, int] | None = None  # the StorePeerClock of a past session


@dataclass(frozen=True, slots=True)
class NotesReceived:
    peer: FeedId
    notes: Mapping[FeedId, Note]
    now: float


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message arrived from `peer` (before the ingest path judged it)."""

    peer: FeedId
    feed: FeedId
    sequence: int
    now: float


@dataclass(frozen=True, slots=True)
class MessageAppended:
    """Our store now holds `feed` up to `sequence` (from any source, our own publish too)."""

    feed: FeedId
    sequence: int
    now: float


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """The ingest path refused a message `peer` sent; `fatal` (fork, bad signature) blocks it."""

    peer: FeedId
    feed: FeedId
    sequence: int
    fatal: bool


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    peer: FeedId


@dataclass(frozen=True, slots=True)
class Tick:
    now: float


@dataclass(frozen=True, slots=True)
class WantFeed:
    feed: FeedId


@dataclass(frozen=True, slots=True)
class UnwantFeed:
    feed: FeedId


@dataclass(frozen=True, slots=True)
class BlockFeed:
    """Never replicate `feed` (with anyone if `peer` is None, else with that peer only)."""

    feed: FeedId
    peer: FeedId | None = None


Event = (
    PeerConnected
    | NotesReceived
    | MessageReceived
    | MessageAppended
    | MessageRejected
    | PeerDisconnected
    | Tick
    | WantFeed
    | UnwantFeed
    | BlockFeed
)


# --- actions out ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendNotes:
    """Send one notes object (possibly empty: the callee's first notes always go out)."""

    peer: FeedId
    notes: dict[FeedId, Note]


@dataclass(frozen=True, slots=True)
class SendMessages:
    """Send our messages `from_seq..to_seq` (inclusive) of `feed`, in order."""

    peer: FeedId
    feed: FeedId
    from_seq: int
    to_seq: int


@dataclass(frozen=True, slots=True)
class StorePeerClock:
    """Persist what the peer claimed (-1: does not replicate); pass it back on reconnect."""

    peer: FeedId
    clock: dict[FeedId, int]


Action = SendNotes | SendMessages | StorePeerClock


# --- state ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Peer:
    is_client: bool
    started: bool = False
    claims: dict[FeedId, int] = field(default_factory=dict)  # what it has; -1: not replicating
    wants: dict[FeedId, bool] = field(default_factory=dict)  # its `receive` flag per feed
    sent_upto: dict[FeedId, int] = field(default_factory=dict)  # it has or was sent up to
    our_notes: dict[FeedId, Note] = field(default_factory=dict)  # our last note per feed
    progress: dict[FeedId, float] = field(default_factory=dict)  # last useful delivery / ask
    stalled: dict[FeedId, None] = field(default_factory=dict)  # stalled while source; ordered
    heard: bool = False  # its notes have arrived at least once


class EbtState:
    """The replication state of one node; `handle` is its only mutator."""

    def __init__(
        self, clock: Mapping[FeedId, int] | None = None, *, timeout: float = STALL_TIMEOUT
    ) -> None:
        self._clock: dict[FeedId, int] = {f: s for f, s in (clock or {}).items() if s > 0}
        self._timeout = timeout
        self._wanted: dict[FeedId, None] = {}
        self._blocked: dict[FeedId, None] = {}
        self._peer_blocks: dict[FeedId, dict[FeedId, None]] = {}  # peer -> feeds
        self._peers: dict[FeedId, _Peer] = {}  # in connection order
        self._source: dict[FeedId, FeedId] = {}
        self._pending_notes: dict[FeedId, dict[FeedId, Note]] = {}
        self._pending_msgs: list[Action] = []
        self._now = 0.0  # the latest time any event carried

    # --- queries ------------------------------------------------------------------------

    @property
    def clock(self) -> VectorClock:
        return VectorClock(self._clock)

    def source_of(self, feed: FeedId) -> FeedId | None:
        return self._source.get(feed)

    def peers(self) -> list[FeedId]:
        return list(self._peers)

    def replicated_by(self, peer: FeedId) -> list[FeedId]:
        """The feeds a connected peer's notes said it replicates, wanted by us or not."""
        state = self._peers.get(peer)
        return [] if state is None else [f for f, claim in state.claims.items() if claim >= 0]

    def outstanding(self, peer: FeedId) -> dict[FeedId, tuple[int, int]] | None:
        """Feeds where we and `peer` still differ: {feed: (our sequence, its sequence)}.

        None until the peer's notes have arrived (nothing can be said yet); {} once it has,
        or was sent, everything of ours it asked for and we have everything it offered.
        """
        state = self._peers.get(peer)
        if state is None or not state.heard:
            return None
        result: dict[FeedId, tuple[int, int]] = {}
        for feed in self._wanted:
            claim = state.claims.get(feed, -1)
            if claim < 0 or not self._shared(feed, peer):
                continue
            ours = self._local(feed)
            theirs = max(claim, state.sent_upto.get(feed, 0))
            if ours < claim or (state.wants.get(feed, False) and theirs < ours):
                result[feed] = (ours, theirs)
        return result

    def feed_status(self, feed: FeedId) -> dict[FeedId, tuple[int, bool, bool]]:
        """Per connected peer that has spoken of `feed`: (what it claims, -1 for "not
        replicating"; whether it asked us to send; whether we asked it to send)."""
        status: dict[FeedId, tuple[int, bool, bool]] = {}
        for peer, state in self._peers.items():
            if feed in state.claims:
                ours = state.our_notes.get(feed)
                status[peer] = (
                    state.claims[feed],
                    state.wants.get(feed, False),
                    ours is not None and ours.replicate and ours.receive,
                )
        return status

    def next_deadline(self) -> float | None:
        """When a `Tick` may next switch a stalled feed (None: no source owes us anything)."""
        times = [
            self._peers[p].progress.get(f, 0.0) + self._timeout
            for f, p in self._source.items()
            if self._claim(p, f) > self._local(f)
        ]
        return min(times, default=None)

    # --- the reducer --------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        self._pending_notes = {}
        self._pending_msgs = []
        now = getattr(event, "now", None)
        if isinstance(now, int | float) and now > self._now:
            self._now = float(now)
        match event:
            case PeerConnected():
                self._on_connected(event)
            case NotesReceived():
                self._on_notes(event)
            case MessageReceived():
                self._on_received(event)
            case MessageAppended():
                self._on_appended(event)
            case MessageRejected():
                if event.fatal:
                    self._block_for_peer(event.feed, event.peer)
            case PeerDisconnected():
                self._on_disconnected(event)
            case Tick():
                self._on_tick()
            case WantFeed():
                self._on_want(event.feed)
            case UnwantFeed():
                self._on_unwant(event.feed)
            case BlockFeed():
                if event.peer is None:
                    self._blocked[event.feed] = None
                    self._on_unwant(event.feed)
                else:
                    self._block_for_peer(event.feed, event.peer)
        actions: list[Action] = [SendNotes(p, n) for p, n in self._pending_notes.items()]
        actions += self._pending_msgs
        return actions

    # --- helpers ------------------------------------------------------------------------

    def _local(self, feed: FeedId) -> int:
        return self._clock.get(feed, 0)

    def _claim(self, peer: FeedId, feed: FeedId) -> int:
        return self._peers[peer].claims.get(feed, 0)

    def _shared(self, feed: FeedId, peer: FeedId) -> bool:
        return (
            feed in self._wanted
            and feed not in self._blocked
            and feed not in self._peer_blocks.get(peer, {})
        )

    def _get(self, peer: FeedId) -> _Peer:
        state = self._peers.get(peer)
        if state is None:
            raise LocalProtocolError(f"EBT event for a peer that is not connected: {peer}")
        return state

    def _note(self, peer: FeedId, feed: FeedId, note: Note) -> None:
        """Queue a note (unless the peer already has exactly this one) and track the source."""
        state = self._peers[peer]
        if note.replicate and note.receive:
            current = self._source.get(feed)
            if current is not None and current != peer:
                raise AssertionError("a feed must have one source")  # invariant 1
            self._source[feed] = peer
        elif self._source.get(feed) == peer:
            del self._source[feed]
        if state.our_notes.get(feed) == note:
            return
        state.our_notes[feed] = note
        self._pending_notes.setdefault(peer, {})[feed] = note

    def _set_rx(self, peer: FeedId, feed: FeedId, receive: bool) -> None:
        was = self._source.get(feed) == peer
        self._note(peer, feed, Note(True, self._local(feed), receive))
        if receive and not was:
            self._peers[peer].progress[feed] = self._now  # the stall clock starts now

    def _our_rx(self, peer: FeedId, feed: FeedId) -> bool:
        return self._source.get(feed) == peer

    def _send_range(self, peer: FeedId, feed: FeedId) -> None:
        """If the peer asked to receive `feed`, send it what it lacks of ours."""
        state = self._peers[peer]
        if not state.wants.get(feed, False) or not self._shared(feed, peer):
            return
        upto = state.sent_upto.get(feed, 0)
        local = self._local(feed)
        if local > upto:
            self._pending_msgs.append(SendMessages(peer, feed, upto + 1, local))
            state.sent_upto[feed] = local

    def _switch(self, feed: FeedId, new: FeedId) -> None:
        old = self._source.get(feed)
        if old == new:
            return
        if old is not None:
            self._set_rx(old, feed, False)
        self._set_rx(new, feed, True)

    def _candidates(self, feed: FeedId, after: FeedId | None) -> list[FeedId]:
        """Peers claiming more than we have, best first: not stalled, highest claim, and in
        connection order starting after `after` (so repeated stalls rotate through them)."""
        order = list(self._peers)
        start = order.index(after) + 1 if after in self._peers else 0
        rotated = order[start:] + order[:start]
        local = self._local(feed)
        found = [
            p
            for p in rotated
            if p != after
            and self._peers[p].started
            and self._shared(feed, p)
            and self._claim(p, feed) > local
        ]
        return sorted(
            found,
            key=lambda p: (feed in self._peers[p].stalled, -self._claim(p, feed)),
        )

    def _balance(self, feed: FeedId) -> None:
        """Make sure the feed is received from the best peer claiming more than we hold."""
        if feed not in self._wanted or feed in self._blocked:
            return
        local = self._local(feed)
        src = self._source.get(feed)
        best = self._candidates(feed, src)
        if not best:
            return
        top = best[0]
        if src is None:
            self._switch(feed, top)
            return
        src_claim = self._claim(src, feed)
        top_fresh = feed not in self._peers[top].stalled
        if src_claim <= local and (top_fresh or feed in self._peers[src].stalled):
            self._switch(feed, top)  # the source has nothing more; someone else has
        elif top_fresh and self._claim(top, feed) > src_claim:
            self._switch(feed, top)  # §7.3: switch to a peer that is further ahead

    # --- handlers -----------------------------------------------------------------------

    def _on_connected(self, ev: PeerConnected) -> None:
        if ev.peer in self._peers:
            raise LocalProtocolError(f"already replicating with {ev.peer}")
        state = _Peer(is_client=ev.is_client)
        if ev.stored_clock is not None:
            state.claims = {f: s for f, s in ev.stored_clock.items() if s >= -1}
        self._peers[ev.peer] = state
        if not ev.is_client:
            self._start(ev.peer)

    def _start(self, peer: FeedId) -> None:
        """Our first notes to a peer: every shared feed, minus request skipping (§7.3)."""
        state = self._peers[peer]
        state.started = True
        self._pending_notes.setdefault(peer, {})  # the first notes go out even if empty
        for feed in self._wanted:
            if not self._shared(feed, peer):
                continue
            stored = state.claims.get(feed)
            if stored is not None and (stored == -1 or stored == self._local(feed)):
                continue
            self._set_rx(peer, feed, feed not in self._source)

    def _on_notes(self, ev: NotesReceived) -> None:
        peer = ev.peer
        state = self._get(peer)
        state.heard = True
        if not state.started:
            self._start(peer)
        for feed, note in ev.notes.items():
            old = state.claims.get(feed)
            if not note.replicate:
                state.claims[feed] = -1
                state.wants.pop(feed, None)
                if self._source.get(feed) == peer:
                    self._note(peer, feed, Note(True, self._local(feed), False))
                    self._balance(feed)
                continue
            if old is None or old == -1 or note.sequence > old:
                state.claims[feed] = note.sequence
                state.stalled.pop(feed, None)  # a new claim earns a new chance
            if not self._shared(feed, peer):
                self._note(peer, feed, NOT_REPLICATING)  # answered once (deduplicated)
                continue
            self._balance(feed)
            ours = state.our_notes.get(feed)
            if ours is None or not ours.replicate:
                self._set_rx(peer, feed, False)  # answer a feed new to this peer
            state.wants[feed] = note.receive
            if note.receive:
                state.sent_upto[feed] = max(state.sent_upto.get(feed, 0), note.sequence)
                self._send_range(peer, feed)
            elif self._local(feed) > state.claims[feed]:
                self._set_rx(peer, feed, self._our_rx(peer, feed))  # "I have more"

    def _on_received(self, ev: MessageReceived) -> None:
        state = self._get(ev.peer)
        if state.claims.get(ev.feed, 0) < ev.sequence:
            state.claims[ev.feed] = ev.sequence
        state.sent_upto[ev.feed] = max(state.sent_upto.get(ev.feed, 0), ev.sequence)
        if ev.sequence > self._local(ev.feed):
            state.progress[ev.feed] = ev.now
            state.stalled.pop(ev.feed, None)

    def _on_appended(self, ev: MessageAppended) -> None:
        feed = ev.feed
        if ev.sequence <= self._local(feed):
            return
        self._clock[feed] = ev.sequence
        if feed not in self._wanted or feed in self._blocked:
            return
        for peer, state in self._peers.items():
            if not state.started or not self._shared(feed, peer):
                continue
            claim = state.claims.get(feed)
            if state.wants.get(feed, False) and claim != -1:
                self._send_range(peer, feed)  # live forwarding
            elif claim != -1 and (claim is None or claim < ev.sequence):
                self._set_rx(peer, feed, self._our_rx(peer, feed))  # tell lazy peers
        self._balance(feed)

    def _on_disconnected(self, ev: PeerDisconnected) -> None:
        state = self._peers.pop(ev.peer, None)
        if state is None:
            raise LocalProtocolError(f"EBT disconnect for a peer that is not connected: {ev.peer}")
        self._pending_notes.pop(ev.peer, None)
        self._pending_msgs.append(StorePeerClock(ev.peer, dict(state.claims)))
        lost = [f for f, p in self._source.items() if p == ev.peer]
        for feed in lost:
            del self._source[feed]
        for feed in lost:
            self._balance(feed)

    def _on_tick(self) -> None:
        now = self._now
        for feed, src in list(self._source.items()):
            state = self._peers[src]
            stale = state.progress.get(feed, 0.0) + self._timeout <= now
            if stale and self._claim(src, feed) > self._local(feed):
                state.stalled[feed] = None
                others = self._candidates(feed, src)
                if others:
                    self._switch(feed, others[0])
        for feed in self._wanted:  # a source with nothing more, or none: retry stalled peers
            current = self._source.get(feed)
            if current is None or self._claim(current, feed) <= self._local(feed):
                others = self._candidates(feed, current)
                if others:
                    self._switch(feed, others[0])

    def _on_want(self, feed: FeedId) -> None:
        if feed in self._blocked or feed in self._wanted:
            return
        self._wanted[feed] = None
        local = self._local(feed)
        for peer, state in self._peers.items():
            claim = state.claims.get(feed)
            if not state.started or not self._shared(feed, peer) or claim == -1:
                continue
            if claim is None or claim != local:
                self._set_rx(peer, feed, feed not in self._source)
        self._balance(feed)

    def _on_unwant(self, feed: FeedId) -> None:
        self._wanted.pop(feed, None)
        self._source.pop(feed, None)
        for peer, state in self._peers.items():
            ours = state.our_notes.get(feed)
            if state.started and ours is not None and ours.replicate:
                self._note(peer, feed, NOT_REPLICATING)
            state.wants.pop(feed, None)

    def _block_for_peer(self, feed: FeedId, peer: FeedId) -> None:
        self._peer_blocks.setdefault(peer, {})[feed] = None
        state = self._peers.get(peer)
        if state is None:
            return
        state.wants.pop(feed, None)
        if state.started:
            self._note(peer, feed, NOT_REPLICATING)
        self._balance(feed)

    # --- invariants ---------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise AssertionError if the header's invariants do not hold (for tests)."""
        for feed, src in self._source.items():
            state = self._peers.get(src)
            assert state is not None and state.started, (feed, src)
            assert self._shared(feed, src), (feed, src)
            assert state.our_notes.get(feed) == Note(True, state.our_notes[feed].sequence, True)
        for peer, state in self._peers.items():
            for feed, note in state.our_notes.items():
                if note.replicate and note.receive:
                    assert self._source.get(feed) == peer, (feed, peer)
            if not state.started:
                assert not state.our_notes, peer
