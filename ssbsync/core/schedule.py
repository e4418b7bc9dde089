"""Which known peers to dial, and when (PROTOCOL.md §14; ssb-gossip 1.1.1 `schedule.js`).

Sans-IO: the peer table's entries are `PeerRecord` values; a dial attempt, its success or
failure and the end of a session are pure transitions on them, and `plan()` turns the table,
the live connections and the time into what to do now: which peers to dial, which idle
connection to drop so another peer gets a turn. Time is passed in (seconds since the epoch).

What is kept from ssb-gossip: at most a few connections at once (`gossip.connections`, 3 in
ssb-config 3.4.4), exponential back-off after failures (`2^failures * factor`, capped at
10 min, its seed group's numbers), and the least recently tried peer first. What differs: one
quota for every source instead of its per-group quotas, and rotation is explicit — a peer we
dialled that has been connected a while with nothing outstanding makes room for one waiting.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from ssbsync.core.address import Address, AddressError, parse_one
from ssbsync.core.refs import FeedId, is_feed_id

# Where an entry came from, weakest first: a stronger source replaces a weaker one when the
# same address is announced again (ssb-gossip lets 'friends' and 'local' override the rest).
SOURCES = ("stored", "pub", "local", "invite", "manual", "seed")
_HOST = re.compile(r"^[A-Za-z0-9._:%-]{1,253}$")  # names, IPv4, IPv6 (no spaces, no '~;')


@dataclass(frozen=True, slots=True)
class Policy:
    max_connections: int = 3  # gossip.connections (ssb-config 3.4.4)
    backoff_base: float = 2.0  # seconds: ssb-gossip's factor for seeds (2e3 ms) …
    backoff_cap: float = 600.0  # … and its cap (10 min)
    min_session: float = 10.0  # a session shorter than this counts as a failure
    rotate_after: float = 300.0  # connected this long and idle: may make room for another


def backoff(failures: int, policy: Policy) -> float:
    """Seconds to wait before the next attempt: base·2^failures, at most the cap."""
    return min(policy.backoff_base * 2.0 ** min(failures, 32), policy.backoff_cap)


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """One entry of the peer table: where a peer is, and how dialling it has gone."""

    address: str  # canonical multiserver address (`str(Address)`)
    key: FeedId
    source: str
    announcers: int = 1
    failures: int = 0  # consecutive failed attempts (or sessions cut short)
    state_change: float | None = None  # last attempt, connect or disconnect
    last_attempt: float | None = None
    last_success: float | None = None
    next_attempt: float = 0.0  # not dialled before this time
    sessions: int = 0  # sessions that ended
    connected_seconds: float = 0.0  # their total length

    @classmethod
    def new(cls, address: Address, source: str) -> PeerRecord:
        assert address.feed is not None, "a peer table entry needs the peer's key"
        return cls(str(address), address.feed, source)


def announced(peer: PeerRecord, source: str, now: float) -> PeerRecord:
    """The same address added again: a stronger source wins; a user's add means 'try now'."""
    if source == peer.source:
        changed = peer
    elif _rank(source) > _rank(peer.source):
        changed = dataclasses.replace(peer, source=source)
    else:
        changed = dataclasses.replace(peer, announcers=peer.announcers + 1)
    if source == "manual":
        changed = dataclasses.replace(changed, next_attempt=min(changed.next_attempt, now))
    return changed


def attempted(peer: PeerRecord, now: float) -> PeerRecord:
    return dataclasses.replace(peer, state_change=now, last_attempt=now)


def succeeded(peer: PeerRecord, now: float) -> PeerRecord:
    return dataclasses.replace(peer, failures=0, state_change=now, last_success=now)


def failed(peer: PeerRecord, now: float, policy: Policy) -> PeerRecord:
    failures = peer.failures + 1
    return dataclasses.replace(
        peer, failures=failures, state_change=now, next_attempt=now + backoff(failures, policy)
    )


def ended(peer: PeerRecord, now: float, since: float, policy: Policy) -> PeerRecord:
    """A session we dialled ended after `now - since` seconds. One cut short counts as a
    failure, so a peer that accepts and hangs up at once is not redialled in a tight loop."""
    length = max(now - since, 0.0)
    failures = peer.failures + 1 if length < policy.min_session else 0
    return dataclasses.replace(
        peer,
        failures=failures,
        state_change=now,
        next_attempt=now + backoff(failures, policy),
        sessions=peer.sessions + 1,
        connected_seconds=peer.connected_seconds + length,
    )


def put_off(peer: PeerRecord, now: float, policy: Policy) -> PeerRecord:
    """The user hung up on this peer: leave it alone for the longest back-off."""
    return dataclasses.replace(peer, state_change=now, next_attempt=now + policy.backoff_cap)


def _rank(source: str) -> int:
    return SOURCES.index(source) if source in SOURCES else 0


@dataclass(frozen=True, slots=True)
class Connection:
    """A live session, as the policy sees it."""

    key: FeedId
    since: float
    rotatable: bool  # the scheduler dialled it (others are the user's or the peer's choice)
    idle: bool  # nothing outstanding with it


@dataclass(frozen=True, slots=True)
class Plan:
    dial: tuple[PeerRecord, ...] = ()
    drop: tuple[FeedId, ...] = ()
    wake_at: float | None = None  # the next time a waiting peer becomes due


def plan(
    peers: Iterable[PeerRecord],
    connections: Collection[Connection],
    dialling: Collection[FeedId],
    now: float,
    policy: Policy,
    *,
    me: FeedId,
    blocked: Collection[FeedId] = (),
    allowed: Collection[str] | None = None,
) -> Plan:
    """What to do at `now`.

    Never ourselves, a blocked peer, a peer we have a session with or are dialling, nor a
    source not `allowed` (None: all). Connections to peers of the table and dials under way
    count against `max_connections`; free slots go to due peers, least recently tried first,
    one address per key. When no slot is free but a peer is due, the idle connection we
    dialled longest ago (connected at least `rotate_after`) is dropped to make room.
    """
    table = list(peers)
    busy = {c.key for c in connections} | set(dialling)
    known = {p.key for p in table}
    in_use = len({c.key for c in connections if c.key in known} | set(dialling))
    waiting = [
        p
        for p in table
        if p.key != me
        and p.key not in blocked
        and p.key not in busy
        and (allowed is None or p.source in allowed)
    ]
    due = _one_per_key(sorted(
        (p for p in waiting if p.next_attempt <= now),
        key=lambda p: (p.state_change or 0.0, -_rank(p.source), p.address),
    ))  # fmt: skip
    free = max(policy.max_connections - in_use, 0)
    dial = tuple(due[:free])
    drop: tuple[FeedId, ...] = ()
    if not dial and due:
        stale = [
            c
            for c in connections
            if c.rotatable and c.idle and now - c.since >= policy.rotate_after
        ]
        if stale:
            drop = (min(stale, key=lambda c: c.since).key,)
    later = [p.next_attempt for p in waiting if p.next_attempt > now]
    return Plan(dial, drop, min(later, default=None))


def _one_per_key(peers: list[PeerRecord]) -> list[PeerRecord]:
    seen: set[FeedId] = set()
    chosen = []
    for peer in peers:
        if peer.key not in seen:
            seen.add(peer.key)
            chosen.append(peer)
    return chosen


# -- where addresses come from -----------------------------------------------------------


def parse_peer_address(value: object) -> Address:
    """An address a user or a message gives: a multiserver string, the legacy
    `host:port:@key.ed25519`, or ssb-gossip's object `{host, port, key}` / `{address}`.

    Only dialable addresses with the peer's key (`shs`) are accepted; AddressError says why
    not. A `serial:` address names a local device path, not a host: there is nothing to check.
    """
    if isinstance(value, dict):
        if isinstance(value.get("address"), str):
            value = value["address"]
        else:
            value = _from_parts(value.get("host"), value.get("port"), value.get("key"))
    if not isinstance(value, str):
        raise AddressError(f"an address must be a string or {{host, port, key}}, got {value!r}")
    address = parse_one(value)
    if address.key is None:
        raise AddressError(f"{value!r} names no key (an shs address is needed to dial a peer)")
    if address.kind == "net" and not _HOST.match(address.host):
        raise AddressError(f"not a host name or IP address: {address.host!r}")
    return address


def _from_parts(host: object, port: object, key: object) -> str:
    if not isinstance(host, str) or not _HOST.match(host):
        raise AddressError(f"host must be a host name or IP address, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int | str):
        raise AddressError(f"port must be a number, got {port!r}")
    if not is_feed_id(key):
        raise AddressError(f"key must be a feed id (@….ed25519), got {key!r}")
    bare = str(key)[1:].removesuffix(".ed25519")
    return f"net:{host.strip('[]')}:{port}~shs:{bare}"


def pub_address(content: object) -> Address | None:
    """The address a `{type: "pub", address}` message announces, or None if it announces
    none we could dial (ssb-gossip `init.js` checks `ref.isAddress` and skips the rest)."""
    if not isinstance(content, dict) or content.get("type") != "pub":
        return None
    try:
        address = parse_peer_address(content.get("address"))
    except AddressError:
        return None
    # A message from anyone must not make us open a local socket or serial device.
    return address if address.kind == "net" else None
