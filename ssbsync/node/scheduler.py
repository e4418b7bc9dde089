"""The connection scheduler of a running node: the IO side of `ssbsync.core.schedule`
(PROTOCOL.md §14; ssb-gossip 1.1.1 `index.js`, `init.js`, `schedule.js`).

It fills the peer table from config `seeds`, from `pub` messages in the store (at start and
after every commit) and from `gossip.add`; once a second (sooner when something changed) it
asks the policy what to do, dials with `node.connect`, records how each attempt and session
went, and writes the table to the store. Every session of the node is followed through a peer
task (`node.peer_tasks`), so sessions the user or the peer opened count as well.

Config, as ssb-config/ssb-gossip read it: `seeds` (an address or a list), `gossip.connections`
(3), `gossip.seed`/`gossip.global`/`gossip.local` (false: do not dial peers from seeds / from
anywhere else / from the LAN), `gossip.pub` or `gossip.autoPopulate` (false: do not learn
peers from `pub` messages), `offline` (true: no dialling at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssbsync.core import jsonv8
from ssbsync.core.address import AddressError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId, is_feed_id
from ssbsync.core.schedule import (
    Connection,
    PeerRecord,
    Policy,
    attempted,
    ended,
    failed,
    parse_peer_address,
    plan,
    pub_address,
    put_off,
    succeeded,
)
from ssbsync.node.config import SWITCHES
from ssbsync.node.peertable import PeerTable, peer_json
from ssbsync.node.session import CallError, Method, RpcSession
from ssbsync.node.store import Range

if TYPE_CHECKING:
    from ssbsync.node.server import Node

log = logging.getLogger("ssbsync.gossip")

TICK = 1.0  # seconds between scheduling rounds when nothing happens
MIN_ROUND = 0.2  # seconds at least between rounds (commits can come by the hundred)
DIAL_TIMEOUT = 20.0  # seconds for TCP connect + handshake
MAX_QUEUED_EVENTS = 1000  # per gossip.changes reader; a reader this far behind is ended


class Gossip:
    """The peer table and the scheduler of one node (`node.gossip`)."""

    def __init__(self, node: Node, clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.clock = clock
        self.settings = node.config.gossip
        self.switches = dict(self.settings.switches)
        self.policy = Policy(max_connections=self.settings.connections)
        self.table: PeerTable | None = None  # open while `run` runs
        self._dialling: dict[FeedId, str] = {}  # key -> address being dialled
        self._dialled: dict[FeedId, str] = {}  # key -> address of our live session with it
        self._scheduled: set[FeedId] = set()  # live sessions the scheduler dialled
        self._dropping: set[FeedId] = set()  # being closed to make room
        self._sessions: dict[FeedId, list[float]] = {}  # live sessions' start times
        self._pubs_read_up_to: float | None = None
        self._subscribers: set[asyncio.Queue[JSONValue | None]] = set()
        self._wake = asyncio.Event()
        node.peer_tasks.append(self._follow_session)

    # -- the loop --------------------------------------------------------------------------

    async def run(self, dial: bool = True) -> None:
        """Keep the table and, with `dial`, the connections; until cancelled."""
        self.table = PeerTable(self.node.api.store.path, self.node.id)
        try:
            self._add_seeds()
            async with asyncio.TaskGroup() as dials:
                while True:
                    try:
                        self._discover_pubs()
                        if dial and not self.settings.offline:
                            self._round(dials)
                        await self._save()
                    except (sqlite3.Error, OSError) as err:
                        log.warning("gossip: %s", err)
                    except Exception:  # a bug here must not take the node down with it
                        log.exception("gossip: the scheduling round failed")
                    await self._wait()
        finally:
            table, self.table = self.table, None
            try:
                table.flush()
            except sqlite3.Error as err:
                log.warning("gossip: the peer table could not be saved: %s", err)
            table.close()

    def _round(self, dials: asyncio.TaskGroup) -> None:
        assert self.table is not None
        now = self.clock()
        allowed = [s for s in ("stored", "pub", "manual", "invite") if self.switches["global"]]
        allowed += [s for s in ("seed", "local") if self.switches[s]]
        decision = plan(
            self.table,
            self._connections(),
            set(self._dialling),
            now,
            self.policy,
            me=self.node.id,
            blocked=self.node.social.blocked,
            allowed=allowed,
        )
        for record in decision.dial:
            self._dialling[record.key] = record.address
            dials.create_task(self._dial(record))
        for key in decision.drop:
            log.info("gossip: closing the idle connection to %s to let another peer in", key)
            self._dropping.add(key)
            dials.create_task(self._drop(self._dialled.get(key, key)))

    def _connections(self) -> list[Connection]:
        live = self.node.peers()
        assert isinstance(live, list)
        found: dict[FeedId, Connection] = {}
        for peer in live:
            assert isinstance(peer, dict)
            key = FeedId(str(peer["key"]))
            since = float(peer.get("stateChange") or 0) / 1000
            rotatable = key in self._scheduled and key not in self._dropping
            idle = self.node.replicator.is_complete(key)
            found[key] = Connection(key, since, rotatable, idle)
        return list(found.values())

    async def _dial(self, record: PeerRecord) -> None:
        assert self.table is not None
        self.table.put(attempted(record, self.clock()))
        try:
            async with asyncio.timeout(DIAL_TIMEOUT):
                await self.node.connect(record.address)
        except Exception as err:  # any failure to reach the peer is a failed attempt
            self._failed(record.address, err)
        else:
            self._connected(record.address, scheduled=True)
            if record.key in self.node.social.blocked:  # blocked while we dialled
                await self.node.disconnect(record.address)
        finally:
            self._dialling.pop(record.key, None)
            self._wake.set()

    async def _drop(self, address: str) -> None:
        try:
            await self.node.disconnect(address)
        except Exception as err:  # the session is going anyway
            log.info("gossip: closing %s: %s", address, err)

    def _connected(self, address: str, scheduled: bool) -> None:
        record = self.table.get(address) if self.table else None
        if record is not None:
            self.table.put(succeeded(record, self.clock()))  # type: ignore[union-attr]
            self._dialled[record.key] = address
            if scheduled:
                self._scheduled.add(record.key)

    def _failed(self, address: str, err: BaseException) -> None:
        log.info("gossip: could not connect to %s: %s", address, err or type(err).__name__)
        record = self.table.get(address) if self.table else None
        if record is not None:
            record = self.table.put(failed(record, self.clock(), self.policy))  # type: ignore[union-attr]
            self._emit("connect-failure", record)

    async def _save(self) -> None:
        assert self.table is not None
        upserts, deletes = self.table.changes()
        if upserts or deletes:
            try:
                await asyncio.to_thread(self.table.write, upserts, deletes)
            except sqlite3.Error:
                self.table.requeue(upserts, deletes)
                raise

    async def _wait(self) -> None:
        started = self.clock()
        waits = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self.node.appended.wait()),  # a commit: maybe a pub message
        ]
        try:
            await asyncio.wait(waits, timeout=TICK, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        self._wake.clear()
        await asyncio.sleep(max(0.0, MIN_ROUND - (self.clock() - started)))

    # -- where peers come from -------------------------------------------------------------

    def _add_seeds(self) -> None:
        if self.settings.offline:
            return
        for seed in self.settings.seeds:
            self.add(seed, "seed")

    def _discover_pubs(self) -> None:
        """`pub` messages stored since the last look (ssb-gossip `init.js`)."""
        if not self.switches["pub"]:
            return
        for row in self.node.api.store.by_type("pub", Range(gt=self._pubs_read_up_to)):
            self._pubs_read_up_to = row.received
            value = jsonv8.parse(row.value_json)
            address = pub_address(value.get("content") if isinstance(value, dict) else None)
            if address is not None:
                self.add(str(address), "pub")

    def add(self, what: object, source: str) -> PeerRecord | None:
        """Add an address to the table (AddressError if it is none); None for our own."""
        if self.table is None:
            raise CallError("the peer table is not open (the node is starting or stopping)")
        record, new = self.table.add(what, source, self.clock())
        if new and record is not None:
            log.info("gossip: learned %s (%s)", record.address, source)
            self._emit("discover", record)
        self._wake.set()
        return record

    # -- sessions --------------------------------------------------------------------------

    async def _follow_session(self, session: RpcSession, remote: FeedId, outgoing: bool) -> None:
        """Runs alongside every peer session; its end is the session's end."""
        since = self.clock()
        self._sessions.setdefault(remote, []).append(since)
        self._emit("connect", self._record_for(remote) or remote)
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            self._session_ended(remote, outgoing, since)

    def _session_ended(self, remote: FeedId, outgoing: bool, since: float) -> None:
        starts = self._sessions.get(remote, [])
        with contextlib.suppress(ValueError):
            starts.remove(since)
        record = self._record_for(remote)
        if not starts:
            self._sessions.pop(remote, None)
            self._scheduled.discard(remote)
            self._dropping.discard(remote)
            address = self._dialled.pop(remote, None)
            if outgoing and self.table is not None and record is not None:
                record = self.table.get(address or record.address) or record
                record = self.table.put(ended(record, self.clock(), since, self.policy))
        self._emit("disconnect", record or remote)
        self._wake.set()

    def _record_for(self, key: FeedId) -> PeerRecord | None:
        if self.table is None:
            return None
        address = self._dialled.get(key)
        record = self.table.get(address) if address else None
        return record or next(iter(self.table.with_key(key)), None)

    # -- events (gossip.changes) -----------------------------------------------------------

    def _emit(self, kind: str, peer: PeerRecord | FeedId) -> None:
        shown = {"key": peer} if isinstance(peer, str) else self._json(peer)
        event: dict[str, JSONValue] = {"type": kind, "peer": shown}
        if kind == "discover" and isinstance(peer, PeerRecord):
            event["source"] = peer.source
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a reader that stopped reading: end its stream
                self._subscribers.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    async def changes(self) -> AsyncIterator[JSONValue]:
        queue: asyncio.Queue[JSONValue | None] = asyncio.Queue(MAX_QUEUED_EVENTS)
        self._subscribers.add(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
            raise CallError(f"gossip.changes: more than {MAX_QUEUED_EVENTS} events unread")
        finally:
            self._subscribers.discard(queue)

    # -- reports ---------------------------------------------------------------------------

    def _json(self, record: PeerRecord, live_keys: set[object] | None = None) -> JSONValue:
        if live_keys is None:
            live_keys = {p.get("key") for p in self._live()}
        live = record.key in live_keys
        state = "connected" if live else "connecting" if record.key in self._dialling else None
        client = (record.key in self._dialled) if live else None
        return peer_json(record, state, client)

    def _live(self) -> list[dict[str, Any]]:
        peers = self.node.peers()
        return [p for p in peers if isinstance(p, dict)] if isinstance(peers, list) else []

    def peers(self) -> JSONValue:
        """The table (ssb-gossip's list), then live sessions with peers outside it (which
        ssb-gossip leaves out): `{key, address, state, source: "incoming"|"dial", ...}`."""
        table, live = list(self.table or ()), self._live()
        known, live_keys = {r.key for r in table}, {p.get("key") for p in live}
        listed: list[JSONValue] = [self._json(record, live_keys) for record in table]
        return listed + [p for p in live if p.get("key") not in known]

    # -- what the user asks (RPC) ----------------------------------------------------------

    async def connect(self, what: object) -> JSONValue:
        """gossip.connect: dial now; a peer reached this way joins the table as 'manual'."""
        address = self._address_of(what)
        try:
            async with asyncio.timeout(DIAL_TIMEOUT):
                peer = await self.node.connect(address)
        except Exception as err:
            self._failed(address, err)
            raise CallError(f"could not connect to {address}: {err}") from None
        if self.table is not None:
            with contextlib.suppress(AddressError):
                self.add(address, "manual")
                self._connected(str(parse_peer_address(address)), scheduled=False)
        return {"id": peer, "address": address}

    async def disconnect(self, what: object) -> JSONValue:
        """gossip.disconnect: hang up, and leave the peer alone for the longest back-off."""
        address = str(what)
        records = self.table.find(what) if self.table else []
        for record in records:
            self.table.put(put_off(record, self.clock(), self.policy))  # type: ignore[union-attr]
            address = record.address
        return await self.node.disconnect(address)

    def _address_of(self, what: object) -> str:
        if isinstance(what, dict) and is_feed_id(what.get("key")) and "host" not in what:
            what = what["key"]
        if is_feed_id(what):
            known = self.table.with_key(FeedId(str(what))) if self.table else []
            if not known:
                raise CallError(f"no known address for peer: {what}")
            return known[0].address
        try:
            return str(parse_peer_address(what))
        except AddressError as err:
            raise CallError(str(err)) from None

    def remove(self, what: object) -> JSONValue:
        records = self.table.find(what) if self.table else []
        for record in records:
            self.table.remove(record)  # type: ignore[union-attr]
            self._emit("remove", record)
        return bool(records)

    def switch(self, kind: object, on: bool) -> JSONValue:
        """gossip.enable/disable(type = 'global'): now, and in the config file (as ssb-gossip)."""
        kind = "global" if kind is None else kind
        if kind not in SWITCHES:
            raise CallError(f"gossip type must be one of {', '.join(SWITCHES)}, got {kind!r}")
        self.switches[str(kind)] = on
        _save_config_switch(self.node.config.path / "config", str(kind), on)
        self._wake.set()
        return f"{'enabled' if on else 'disabled'} gossip type {kind}"


def _save_config_switch(file: Path, name: str, on: bool) -> None:
    """Set `gossip.<name>` in the config file, atomically (temp file, fsync, rename)."""
    try:
        raw = json.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    except (OSError, ValueError) as err:
        raise CallError(f"{file} is not readable JSON, not changed: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.setdefault("gossip", {}), dict):
        raise CallError(f"{file}: gossip is not an object, not changed")
    raw["gossip"][name] = on
    temp = file.with_name(file.name + ".tmp")
    with open(temp, "w", encoding="utf-8") as out:
        out.write(json.dumps(raw, indent=2))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, file)


def gossip_methods(node: Node) -> dict[tuple[str, ...], Method]:
    """The master-only gossip.* methods (ssb-gossip 1.1.1 `manifest.json`); `node.gossip` is
    looked up at each call (the method table is built before it)."""

    def first(args: list[Any], what: str) -> Any:
        if not args:
            raise CallError(f"{what} is required")
        return args[0]

    async def add(args: list[Any]) -> JSONValue:
        source = args[1] if len(args) > 1 else "manual"
        if not isinstance(source, str):
            raise CallError(f"gossip.add: source must be a string, got {source!r}")
        try:
            record = node.gossip.add(first(args, "address"), source)
        except AddressError as err:
            raise CallError(f"not a valid address: {err}") from None
        return None if record is None else node.gossip._json(record)

    async def get(args: list[Any]) -> JSONValue:
        found = node.gossip.table.find(first(args, "id")) if node.gossip.table else []
        return node.gossip._json(found[0]) if found else None

    async def changes(args: list[Any]) -> AsyncIterator[JSONValue]:
        async for event in node.gossip.changes():
            yield event

    async def sync(fn: Callable[[], JSONValue]) -> JSONValue:
        return fn()

    return {
        ("gossip", "add"): Method("async", add),
        ("gossip", "remove"): Method(
            "async", lambda a: sync(lambda: node.gossip.remove(first(a, "address")))
        ),
        ("gossip", "get"): Method("async", get),
        ("gossip", "peers"): Method("async", lambda _: sync(node.gossip.peers)),
        ("gossip", "changes"): Method("source", changes),
        ("gossip", "connect"): Method("async", lambda a: node.gossip.connect(first(a, "address"))),
        ("gossip", "disconnect"): Method(
            "async", lambda a: node.gossip.disconnect(first(a, "address"))
        ),
        ("gossip", "enable"): Method(
            "async", lambda a: sync(lambda: node.gossip.switch(a[0] if a else None, True))
        ),
        ("gossip", "disable"): Method(
            "async", lambda a: sync(lambda: node.gossip.switch(a[0] if a else None, False))
        ),
    }
