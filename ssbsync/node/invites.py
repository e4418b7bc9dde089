"""Pub invites, both sides (PROTOCOL.md §10, as ssb-invite 2.1.4 in ssb-server 16).

Pub side: `invite.create` stores a new invite (the `invites` table) under the id of a fresh key
pair and returns a code holding that key pair's seed. A peer that connects with such a key is a
guest: an auth hook limits it to `invite.use` and `getAddress` (§12), and `invite.use({feed})`
makes this node follow `feed` with a `contact` message marked `pub: true`.

Guest side: `invite.accept(code)` dials the pub with the invite key pair as our long-term key,
calls `invite.use({feed: our id})`, then publishes that we follow the pub and where it is (a
`pub` message), and dials the pub as ourselves so that replication starts.

One deliberate difference: ssb-invite lets an exhausted invite key in as an anonymous peer,
which then hears muxrpc's "not in list of allowed methods"; we keep it a guest, so it hears
"invite has expired", which says what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssbsync.core.address import AddressError, parse_one
from ssbsync.core.invite import Invite, InviteError, is_host, parse_invite
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId, is_feed_id
from ssbsync.node.api import ApiError
from ssbsync.node.client import Client
from ssbsync.node.session import CallError, Method, RemoteError
from ssbsync.transport.stream import StreamClosed

if TYPE_CHECKING:
    from ssbsync.node.methods import Methods
    from ssbsync.node.server import Node

log = logging.getLogger("ssbsync.invites")

# What an invite key may call on the pub (ssb-invite 2.1.4 stores these permissions).
GUEST_METHODS = frozenset({("invite", "use"), ("getAddress",)})
# The pub's methods as the guest knows them without asking (ssb-invite's accept).
PUB_MANIFEST = {"invite": {"use": "async"}, "getAddress": "async"}
DIAL_ATTEMPTS = 3  # ssb-invite's accept retries its connection 3 times
RETRY_WAIT = 0.5  # seconds between attempts
USE_TIMEOUT = 30.0  # seconds the pub gets to answer invite.use
MAX_USES = 2**53  # JavaScript's largest safe integer; SQLite's INTEGER holds it
NO_ADDRESS = (
    "no address available for creating an invite, configuration needed for server: "
    "set connections.incoming.net[].external (or host) in the config, or pass --external HOST"
)
PRIVATE_ADDRESS = "Server has no public ip address, cannot create useable invitation"


@dataclass(frozen=True)
class StoredInvite:
    id: FeedId
    total: int
    used: int
    note: str | None


class InviteBook:
    """The `invites` table. Each call is one short SQLite transaction on its own connection
    (the store's connection belongs to the ingest path), so a crash keeps all or nothing."""

    def __init__(self, database: Path) -> None:
        self.database = database

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(sqlite3.connect(self.database, timeout=30)) as db, db:
            yield db

    def ids(self) -> set[FeedId]:
        with self._transaction() as db:
            return {FeedId(row[0]) for row in db.execute("SELECT id FROM invites")}

    def add(self, invite_id: FeedId, total: int, note: str | None, created_ms: int) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO invites (id, total, used, note, created) VALUES (?, ?, 0, ?, ?)",
                (invite_id, total, note, created_ms),
            )

    def get(self, invite_id: FeedId) -> StoredInvite | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, total, used, note FROM invites WHERE id = ?", (invite_id,)
            ).fetchone()
        return None if row is None else StoredInvite(FeedId(row[0]), row[1], row[2], row[3])

    def take_use(self, invite_id: FeedId) -> bool:
        """Count one use if any is left: one conditional UPDATE, so two guests racing for the
        last use cannot both get it (ssb-invite's known race, fixed)."""
        with self._transaction() as db:
            done = db.execute(
                "UPDATE invites SET used = used + 1 WHERE id = ? AND used < total", (invite_id,)
            )
            return done.rowcount == 1

    def give_back(self, invite_id: FeedId) -> None:
        """Undo `take_use` when the follow could not be published."""
        with self._transaction() as db:
            db.execute("UPDATE invites SET used = used - 1 WHERE id = ? AND used > 0", (invite_id,))


@dataclass(frozen=True)
class CreateOptions:
    uses: int
    note: str | None
    external: str | None
    modern: bool


def create_options(args: list[Any]) -> CreateOptions:
    """`invite.create(n)` or `invite.create({uses, note, external, modern})` (§10 step 1)."""
    given = args[0] if args else {}
    opts: dict[str, Any] = {"uses": given} if _is_number(given) else given
    if not isinstance(opts, dict):
        raise CallError(f"invite.create takes a number of uses or an options object, got {given!r}")
    uses = opts.get("uses") or 1  # ssb-invite: `+opts.uses || 1`
    if not _is_number(uses) or not 1 <= uses <= MAX_USES or uses != int(uses):
        raise CallError(f"invite.create: uses must be a whole number of at least 1, got {uses!r}")
    note, external = opts.get("note"), opts.get("external")
    if note is not None and not isinstance(note, str):
        raise CallError(f"invite.create: note must be a string, got {note!r}")
    if external is not None and not (isinstance(external, str) and is_host(external)):
        raise CallError(f"invite.create: external must be a host name or IP, got {external!r}")
    modern = bool(opts.get("modern"))
    # A modern invite is single-use (ssb-invite forces it).
    return CreateOptions(1 if modern else int(uses), note or None, external, modern)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_private_host(host: str) -> bool:
    """What ssb-invite refuses without `allowPrivate`: `localhost`, empty, or a private,
    loopback, link-local or unspecified IP (its `ip.isPrivate`)."""
    if host in ("", "localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a domain name
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified


class Invites:
    """Both sides of invites for one node; `methods(...)` wires them into its RPC table."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._book: InviteBook | None = None
        self._ids: set[FeedId] | None = None  # every invite id we issued (read once, then kept)

    @property
    def book(self) -> InviteBook:
        if self._book is None:
            self._book = InviteBook(self.node.api.store.path)
        return self._book

    def _known(self) -> set[FeedId]:
        if self._ids is None:
            self._ids = self.book.ids()
        return self._ids

    def permissions(self, remote: FeedId | None) -> frozenset[tuple[str, ...]] | None:
        """The auth hook: a peer holding one of our invite keys is a guest (§10 step 2)."""
        return GUEST_METHODS if remote is not None and remote in self._known() else None

    # -- pub side --------------------------------------------------------------------------

    async def create(self, args: list[Any]) -> JSONValue:
        opts = create_options(args)
        host, port = self._invite_address(opts.external)
        seed = os.urandom(32)
        guest = Keypair.from_seed(seed)
        created = int(time.time() * 1000)
        await asyncio.to_thread(self.book.add, guest.id, opts.uses, opts.note, created)
        self._known().add(guest.id)
        invite = Invite("net", host, port, self.node.api.keys.public, seed)
        log.info("invite created for %d use(s): %s", opts.uses, guest.id)
        # ssb-invite's `modern` form names its ws address; we serve none, so it names the net
        # address, in the multiserver form that every `invite.accept` reads.
        return invite.multiserver() if opts.modern else invite.legacy()

    def _invite_address(self, external: str | None) -> tuple[str, int]:
        """Host and port for a new code: ssb-invite's `getAddress('public')`, or any scope
        with `allowPrivate`; `external` (option, then config) replaces the host."""
        config = self.node.config
        listeners = [x for x in config.listeners if x.kind == "net" and x.transform == "shs"]
        bound = []
        for text in self.node.addresses:
            with contextlib.suppress(AddressError):
                address = parse_one(text)
                if address.kind == "net" and address.transform == "shs":
                    bound.append(address)
        for listener, address in zip(listeners, bound, strict=False):
            if "public" not in listener.scope and not config.allow_private:
                continue
            host = external or listener.external or listener.host
            if not host or host in ("0.0.0.0", "::"):
                continue
            if not config.allow_private and is_private_host(host):
                raise CallError(PRIVATE_ADDRESS)
            return host, address.port
        raise CallError(NO_ADDRESS)

    async def use(self, remote: FeedId | None, args: list[Any]) -> JSONValue:
        """`invite.use({feed})` from a guest (§10 step 4), with ssb-invite's error texts."""
        stored = None if remote is None else await asyncio.to_thread(self.book.get, remote)
        if remote is None or stored is None:
            raise CallError(
                "invite.use: this connection was not made with one of our invite keys "
                "(to redeem a code, use invite.accept CODE)"
            )
        opts = args[0] if args and isinstance(args[0], dict) else {}
        feed = opts.get("feed")
        if is_feed_id(feed) and self.node.social.graph.is_following(
            self.node.id, FeedId(str(feed))
        ):
            raise CallError("already following")
        if not feed:
            raise CallError("feed to follow is missing")
        if not is_feed_id(feed):
            raise CallError(f"invite.use: feed must be a feed id (@…=.ed25519), got {feed!r}")
        if not await asyncio.to_thread(self.book.take_use, remote):
            raise CallError("invite has expired")
        content: dict[str, JSONValue] = {
            "type": "contact",
            "contact": feed,
            "following": True,
            "pub": True,
        }
        if stored.note:
            content["note"] = stored.note
        try:
            followed = await asyncio.to_thread(self.node.api.publish, content)
        except ApiError as err:
            await asyncio.to_thread(self.book.give_back, remote)
            raise CallError(f"invite.use: could not follow {feed}: {err}") from None
        log.info("invite %s used by %s", remote, feed)
        return followed

    async def get_address(self, args: list[Any]) -> JSONValue:
        """secret-stack's `getAddress`: our net addresses, `;`-separated."""
        return ";".join(a for a in self.node.addresses if a.startswith("net:")) or None

    # -- guest side ------------------------------------------------------------------------

    async def accept(self, args: list[Any]) -> JSONValue:
        """Redeem a code (§10 steps 2–5); the published `[contact, pub]` messages."""
        code = args[0] if args else None
        if isinstance(code, dict):
            code = code.get("invite")
        try:
            invite = parse_invite(code)
        except InviteError as err:
            raise CallError(f"invite.accept: {err}") from None
        if invite.transport != "net":
            raise CallError(f"invite.accept: cannot dial {invite.remote} (only net: addresses)")
        if invite.pub_id == self.node.id:
            raise CallError("invite.accept: this invite was made by this node")
        await self._redeem(invite)
        publish = self.node.api.publish
        follow = {"type": "contact", "following": True, "autofollow": True}
        try:
            contact = await asyncio.to_thread(publish, {**follow, "contact": invite.pub_id})
            pub = await asyncio.to_thread(publish, {"type": "pub", "address": invite.pub_address})
        except ApiError as err:
            raise CallError(f"invite accepted, but publishing the follow failed: {err}") from None
        try:
            await self.node.connect(invite.remote)
        except (ValueError, StreamClosed, OSError) as err:
            log.warning("invite accepted, but dialling %s failed: %s", invite.remote, err)
        return [contact, pub]

    async def _redeem(self, invite: Invite) -> None:
        """Dial the pub as the invite key and call invite.use; "already following" is fine."""
        client = await self._dial_as_guest(invite)
        try:
            await client.session.call(
                ["invite", "use"], {"feed": self.node.id}, timeout=USE_TIMEOUT
            )
        except RemoteError as err:
            if "already following" not in str(err):
                raise CallError(f"invite not accepted: {err}") from None
            log.info("%s already follows us", invite.pub_id)
        except (StreamClosed, TimeoutError) as err:
            raise CallError(f"invite not accepted: the pub did not answer ({err})") from None
        finally:
            await client.close()

    async def _dial_as_guest(self, invite: Invite) -> Client:
        config = self.node.config
        problem: Exception | None = None
        for attempt in range(DIAL_ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_WAIT * attempt)
            try:
                return await Client.connect(
                    invite.remote,
                    invite.keypair,
                    config.network_key,
                    timeout=config.handshake_timeout,
                    manifest=PUB_MANIFEST,
                )
            except (StreamClosed, OSError, TimeoutError) as err:
                problem = err
        raise CallError(f"could not connect to server {invite.remote}: {problem}")


def methods(table: Methods) -> dict[tuple[str, ...], Method]:
    """Register the invite auth hook and the caller-bound `invite.use`; the table entries."""
    invites = Invites(table.node)
    table.auth_hooks.append(invites.permissions)
    table.per_caller[("invite", "use")] = lambda remote: Method(
        "async", lambda args: invites.use(remote, args)
    )
    return {
        ("invite", "create"): Method("async", invites.create),
        ("invite", "accept"): Method("async", invites.accept),
        ("invite", "use"): Method("async", lambda args: invites.use(None, args)),
        ("getAddress",): Method("async", invites.get_address),
    }
