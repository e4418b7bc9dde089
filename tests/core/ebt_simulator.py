"""A seeded, discrete-event network of EBT nodes (in the spirit of epidemic-broadcast-trees'
test/simulator.js, written afresh): no crypto, a message is (feed, sequence, valid).

Every node runs an `EbtState` and a toy store whose ingest accepts only the next sequence of a
feed and only valid messages (an invalid one is a fatal rejection, like a fork or a bad
signature). Notes travel through the real wire encoding (`encode_note` / `notes_from_json`).
Each direction of a connection is a FIFO stream with random delays under a fake clock.

Misbehaving kinds: "staller" (speaks notes, never sends messages), "liar" (claims more than it
has), "forger" (every message it sends is invalid).
"""

from __future__ import annotations

import functools
import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ssbsync.core.clock import encode_note, notes_from_json
from ssbsync.core.ebt import (
    Action,
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
    WantFeed,
)
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId, feed_id

LIE = 50  # how much further a liar claims to be
KINDS = ("honest", "staller", "liar", "forger")


def make_id(i: int) -> FeedId:
    return feed_id(bytes([i + 1]) * 32)


@dataclass(frozen=True, slots=True)
class SimMsg:
    feed: FeedId
    sequence: int
    valid: bool = True


@dataclass
class Node:
    id: FeedId
    kind: str
    ebt: EbtState = field(default_factory=EbtState)
    store: dict[FeedId, list[SimMsg]] = field(default_factory=dict)
    stored_clocks: dict[FeedId, dict[FeedId, int]] = field(default_factory=dict)
    deliveries: Counter[tuple[FeedId, int]] = field(default_factory=Counter)
    invalid_offered: int = 0
    notes_sent: int = 0

    def height(self, feed: FeedId) -> int:
        return len(self.store.get(feed, []))


class Network:
    def __init__(self, rng: random.Random, kinds: list[str], *, max_delay: float = 0.3) -> None:
        self.rng = rng
        self.max_delay = max_delay
        self.now = 0.0
        self.nodes = {make_id(i): Node(make_id(i), kind) for i, kind in enumerate(kinds)}
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = 0
        self._conns: dict[frozenset[FeedId], int] = {}
        self._next_conn = 0
        self._fifo: dict[tuple[int, FeedId], float] = {}  # (conn, sender) -> last delivery
        self.events_handled = 0

    # --- scheduling -------------------------------------------------------------------

    def at(self, when: float, fn: Callable[[], None]) -> None:
        self._counter += 1
        heapq.heappush(self._queue, (when, self._counter, fn))

    def run_until(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            when, _, fn = heapq.heappop(self._queue)
            self.now = when
            fn()
        self.now = until

    def ticks(self, every: float, until: float) -> None:
        t = every
        while t <= until:
            for node_id in self.nodes:
                self.at(t, functools.partial(self._tick, node_id))
            t += every

    # --- node operations --------------------------------------------------------------

    def _tick(self, node_id: FeedId) -> None:
        self.handle(node_id, Tick(self.now))

    def handle(self, node_id: FeedId, event: Event) -> None:
        node = self.nodes[node_id]
        self.events_handled += 1
        actions = node.ebt.handle(event)
        node.ebt.check_invariants()
        for action in actions:
            self._perform(node, action)

    def want_all(self, feeds: list[FeedId]) -> None:
        for node_id in self.nodes:
            for feed in feeds:
                self.handle(node_id, WantFeed(feed))

    def publish(self, node_id: FeedId) -> None:
        node = self.nodes[node_id]
        log = node.store.setdefault(node_id, [])
        log.append(SimMsg(node_id, len(log) + 1))
        self.handle(node_id, MessageAppended(node_id, len(log), self.now))

    def connected(self, a: FeedId, b: FeedId) -> bool:
        return frozenset((a, b)) in self._conns

    def connect(self, client: FeedId, server: FeedId) -> None:
        key = frozenset((client, server))
        if client == server or key in self._conns:
            return
        self._next_conn += 1
        self._conns[key] = self._next_conn
        for me, other, is_client in ((server, client, False), (client, server, True)):
            stored = self.nodes[me].stored_clocks.get(other)
            self.handle(me, PeerConnected(other, self.now, is_client, stored))

    def disconnect(self, a: FeedId, b: FeedId) -> None:
        if self._conns.pop(frozenset((a, b)), None) is None:
            return
        self.handle(a, PeerDisconnected(b))
        self.handle(b, PeerDisconnected(a))

    # --- the wire ---------------------------------------------------------------------

    def _send(self, sender: FeedId, to: FeedId, deliver: Callable[[], None]) -> None:
        conn = self._conns.get(frozenset((sender, to)))
        if conn is None:
            return
        when = max(
            self.now + self.rng.uniform(0.01, self.max_delay), self._fifo.get((conn, sender), 0)
        )
        self._fifo[(conn, sender)] = when

        def arrive() -> None:
            if self._conns.get(frozenset((sender, to))) == conn:  # dropped with the connection
                deliver()

        self.at(when, arrive)

    def _perform(self, node: Node, action: Action) -> None:
        match action:
            case SendNotes(peer, notes):
                node.notes_sent += 1
                wire: dict[str, JSONValue] = {}
                for feed, note in notes.items():
                    value = encode_note(note)
                    if node.kind == "liar" and value >= 0:
                        value += 2 * LIE  # claims LIE more messages than it holds
                    wire[str(feed)] = value
                decoded = notes_from_json(wire)
                self._send(
                    node.id,
                    peer,
                    lambda: self.handle(peer, NotesReceived(node.id, decoded, self.now)),
                )
            case SendMessages(peer, feed, first, last):
                log = node.store.get(feed, [])
                assert 1 <= first <= last <= len(log), (action, len(log))  # only what we hold
                if node.kind == "staller":
                    return
                for seq in range(first, last + 1):
                    msg = log[seq - 1]
                    if node.kind == "forger":
                        msg = SimMsg(msg.feed, msg.sequence, valid=False)
                    self._send(node.id, peer, functools.partial(self._receive, peer, node.id, msg))
            case StorePeerClock(peer, clock):
                node.stored_clocks[peer] = clock

    def _receive(self, node_id: FeedId, sender: FeedId, msg: SimMsg) -> None:
        node = self.nodes[node_id]
        self.handle(node_id, MessageReceived(sender, msg.feed, msg.sequence, self.now))
        if not msg.valid:  # the ingest path: a fork / bad signature is fatal
            node.invalid_offered += 1
            self.handle(node_id, MessageRejected(sender, msg.feed, msg.sequence, fatal=True))
            return
        node.deliveries[(msg.feed, msg.sequence)] += 1
        log = node.store.setdefault(msg.feed, [])
        if msg.sequence == len(log) + 1:
            log.append(msg)
            self.handle(node_id, MessageAppended(msg.feed, msg.sequence, self.now))
        elif msg.sequence > len(log) + 1:  # a gap: not fatal, just not stored
            self.handle(node_id, MessageRejected(sender, msg.feed, msg.sequence, fatal=False))


@dataclass
class Outcome:
    net: Network
    authors: list[FeedId]
    settle_time: float | None  # when every honest node had every feed


def run_scenario(
    seed: int,
    *,
    honest: int = 6,
    bad: tuple[str, ...] = ("staller", "liar", "forger"),
    authors: int = 3,
    churn_until: float = 30.0,
    settle_for: float = 60.0,
) -> Outcome:
    """Churn and publish until `churn_until`, then connect the honest nodes (plus every bad
    node to a few of them) and let things settle."""
    rng = random.Random(seed)
    kinds = ["honest"] * honest + list(bad)
    net = Network(rng, kinds)
    ids = list(net.nodes)
    honest_ids = ids[:honest]
    feeds = honest_ids[:authors]
    net.want_all(feeds)
    end = churn_until + settle_for
    net.ticks(0.5, end)

    t = 0.0
    while t < churn_until:
        t += rng.uniform(0.05, 0.6)
        choice = rng.random()
        if choice < 0.4:
            author = rng.choice(feeds)
            net.at(t, functools.partial(net.publish, author))
        elif choice < 0.75:
            a, b = rng.sample(ids, 2)
            net.at(t, functools.partial(net.connect, a, b))
        else:
            a, b = rng.sample(ids, 2)
            net.at(t, functools.partial(net.disconnect, a, b))

    def final_topology() -> None:
        order = honest_ids[:]
        rng.shuffle(order)
        for a, b in zip(order, order[1:] + order[:1], strict=True):  # a ring of honest nodes
            net.connect(a, b)
        for node_id in ids[honest:]:
            for target in rng.sample(honest_ids, 3):
                net.connect(node_id, target)

    net.at(churn_until, final_topology)
    net.run_until(churn_until)

    settled: float | None = None
    step = churn_until
    while step < end:
        step += 0.5
        net.run_until(step)
        if settled is None and converged(net, honest_ids, feeds):
            settled = step
    return Outcome(net, feeds, settled)


def converged(net: Network, honest_ids: list[FeedId], feeds: list[FeedId]) -> bool:
    return all(net.nodes[n].height(f) == net.nodes[f].height(f) for n in honest_ids for f in feeds)
