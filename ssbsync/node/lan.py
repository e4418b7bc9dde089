"""LAN discovery of a running node (`node.lan`): announce ourselves with beacons, and turn
the beacons we hear into peers for the connection scheduler (PROTOCOL.md §11, §14).

Once a second, for each broadcast-capable interface, the plain beacon
`net:IFADDR:PORT~shs:KEY` goes to the interface's broadcast address on PORT (the net
listener's port, 8008 by default; ssb-server 16's ssb-local listens there), the first
interface's also to 255.255.255.255 as ssb-local sends it, and the ssb-lan beacon (encrypted
with the network key, signed) to the broadcast address on 26830. Both ports are listened on. A
beacon that decodes names a peer: it joins the peer table with source `local` (the scheduler
dials such peers while the `local` switch is on) and `on_peer` callbacks hear of it. A peer
not heard for 10 s leaves the table again unless we are connected to it (ssb-local). Our own
beacons come back to us and are ignored; bad ones are counted by reason (`status()`).

It runs only while `gossip.local` is on (config, or `gossip.enable/disable local`) and the
node has an shs net listener that is not on loopback: a node on 127.0.0.1 has nothing to
announce and stays off the LAN (which also keeps every test that does not ask for it off the
real network). Destinations, ports, expiry and pace are constructor arguments: the seam the
tests use to point two nodes at each other over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ssbsync.core.address import Address, AddressError, parse_one
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.lan import (
    EXPIRY,
    LAN_PORT,
    Beacon,
    BeaconError,
    LanPeers,
    decode_lan_beacon,
    decode_plain_beacon,
    encode_lan_beacon,
    encode_plain_beacon,
)
from ssbsync.core.refs import FeedId
from ssbsync.node.session import CallError
from ssbsync.transport.lan import Destination, LanError, UdpEndpoint, broadcast_targets

if TYPE_CHECKING:
    from ssbsync.node.server import Node

log = logging.getLogger("ssbsync.lan")

INTERVAL = 1.0  # seconds between beacons (ssb-local sends every second)
RETRY = 10.0  # seconds before trying again to open a port that could not be opened
LIMITED_BROADCAST = "255.255.255.255"
_ALL_INTERFACES = (None, "", "0.0.0.0", "::")


@dataclass(frozen=True)
class Route:
    """One segment to announce on: our address there, and where each beacon goes."""

    interface: str  # our IPv4 address on the segment: the host in the announced address
    plain: tuple[Destination, ...]
    lan: tuple[Destination, ...]


Routes = Callable[[int, int], list[Route]]  # (plain port, lan port) -> routes


def broadcast_routes(plain_port: int, lan_port: int) -> list[Route]:
    """Every broadcast interface of this machine, as ssb-local and ssb-lan reach them."""
    routes = [
        Route(t.address, ((t.broadcast, plain_port),), ((t.broadcast, lan_port),))
        for t in broadcast_targets()
    ]
    if routes:  # one limited broadcast a round, as ssb-local's single beacon
        first = routes[0]
        routes[0] = dataclasses.replace(
            first, plain=(*first.plain, (LIMITED_BROADCAST, plain_port))
        )
    return routes


class LanDiscovery:
    """The LAN discovery service of one node; `run()` until cancelled."""

    def __init__(
        self,
        node: Node,
        *,
        routes: Routes = broadcast_routes,
        listen_host: str = "0.0.0.0",
        plain_port: int | None = None,  # None: the net listener's port, as ssb-local
        lan_port: int = LAN_PORT,
        expiry: float = EXPIRY,
        interval: float = INTERVAL,
        on_loopback: bool = False,  # run even when the node listens on loopback only (tests)
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.routes = routes
        self.listen_host = listen_host
        self.plain_port = plain_port
        self.lan_port = lan_port
        self.interval = interval
        self.on_loopback = on_loopback
        self.clock = clock
        self.peers = LanPeers(expiry)
        self.on_peer: list[Callable[[FeedId, str], None]] = []  # (key, address) when first heard
        self.announcing: list[str] = []
        self.state = "starting"
        self._plain: UdpEndpoint | None = None
        self._lan: UdpEndpoint | None = None
        self._leaving: dict[str, Beacon] = {}  # expired, still in the table while connected
        self._signed: dict[str, bytes] = {}  # address -> its ssb-lan beacon (signing once)
        self._routes_error: str | None = None

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Discover while allowed, until cancelled; a failure pauses it for RETRY seconds."""
        while True:
            reason = self._why_off()
            if reason is None:
                try:
                    await self._serve()
                except LanError as err:
                    self.state = f"error: {err}"
                    log.warning("lan: discovery is off for now: %s", err)
                    await asyncio.sleep(RETRY)
                    continue
                except Exception as err:  # a bug here must not take the node down with it
                    self.state = f"error: {type(err).__name__}: {err}"
                    log.exception("lan: discovery failed")
                    await asyncio.sleep(RETRY)
                    continue
            else:
                self.state = f"off: {reason}"
            self._remove_leaving()
            await asyncio.sleep(self.interval)

    async def _serve(self) -> None:
        """Announce and listen until the switch goes off (LanError if the port is taken)."""
        announced = self._announced()
        assert announced is not None, "_serve runs only when there is something to announce"
        plain_port = announced.port if self.plain_port is None else self.plain_port
        async with contextlib.AsyncExitStack() as stack:
            self._plain = await stack.enter_async_context(
                await UdpEndpoint.open(plain_port, self._plain_received, self.listen_host)
            )
            try:
                self._lan = await stack.enter_async_context(
                    await UdpEndpoint.open(self.lan_port, self._lan_received, self.listen_host)
                )
            except LanError as err:  # the plain beacon alone is what ssb-server 16 speaks
                log.warning("lan: no ssb-lan beacons: %s", err)
            self.state = "on" if self._lan is not None else "on (plain beacons only)"
            log.info("lan: discovery on (UDP %s)", ", ".join(map(str, self.ports or ())))
            try:
                while (announced := self._announced()) is not None:
                    self._announce(announced)
                    self._expire()
                    await asyncio.sleep(self.interval)
            finally:
                self._plain = self._lan = None
                self.announcing = []
                self._leaving.update((str(b.address), b) for b in self.peers.forget_all())
                log.info("lan: discovery off")

    # -- announcing ------------------------------------------------------------------------

    def _announce(self, listener: Address) -> None:
        assert self._plain is not None
        lan_port = self._lan.port if self._lan is not None else self.lan_port
        try:
            routes = self.routes(self._plain.port, lan_port)
        except LanError as err:
            if str(err) != self._routes_error:  # once, not every second
                log.warning("lan: %s", err)
            self._routes_error, routes = str(err), []
        else:
            self._routes_error = None
        key = self.node.id[1:].removesuffix(".ed25519")
        announcing = []
        for route in routes:
            if listener.host and route.interface != listener.host:
                continue  # the node listens on another interface only
            address = f"net:{route.interface}:{listener.port}~shs:{key}"
            announcing.append(address)
            self._plain.send(encode_plain_beacon([address]), route.plain)
            if self._lan is not None:
                self._lan.send(self._lan_beacon(address), route.lan)
        self.announcing = announcing

    def _lan_beacon(self, address: str) -> bytes:
        if address not in self._signed:
            if len(self._signed) > 16:  # addresses change with DHCP leases; keep a few
                self._signed.clear()
            self._signed[address] = encode_lan_beacon(
                address, self.node.api.keys, self.node.config.network_key
            )
        return self._signed[address]

    # -- hearing ---------------------------------------------------------------------------

    def _plain_received(self, payload: bytes, sender: str) -> None:
        try:
            self._heard(decode_plain_beacon(payload))
        except BeaconError as err:
            self._dropped(err, sender)

    def _lan_received(self, payload: bytes, sender: str) -> None:
        try:
            self._heard(decode_lan_beacon(payload, self.node.config.network_key))
        except BeaconError as err:
            self._dropped(err, sender)

    def _dropped(self, err: BeaconError, sender: str) -> None:
        self.peers.drop(err.reason)
        log.debug("lan: dropped a beacon from %s: %s", sender, err)

    def _heard(self, beacon: Beacon) -> None:
        if beacon.feed == self.node.id or beacon.feed in self.node.social.blocked:
            return  # our own beacon, back from the broadcast; or a peer we will not talk to
        address = str(beacon.address)
        new = self.peers.heard(beacon, self.clock())
        if address not in self.peers.peers:
            return  # the table is full (counted as dropped)
        self._leaving.pop(address, None)
        table = self.node.gossip.table
        if new or (table is not None and table.get(address) is None):
            try:
                self.node.gossip.add(address, "local")
            except (CallError, AddressError) as err:  # the table is not open (starting)
                log.debug("lan: %s not added: %s", address, err)
        if new:
            log.info("lan: heard %s (%s beacon)", address, beacon.format)
            for callback in list(self.on_peer):
                try:
                    callback(beacon.feed, address)
                except Exception:  # a hook's bug must not stop discovery
                    log.exception("lan: an on_peer callback failed")

    # -- forgetting ------------------------------------------------------------------------

    def _expire(self) -> None:
        for beacon in self.peers.expire(self.clock()):
            log.info("lan: %s not heard for %.0f s", beacon.address, self.peers.expiry)
            self._leaving[str(beacon.address)] = beacon
        self._remove_leaving()

    def _remove_leaving(self) -> None:
        """Drop the expired peers from the table, except those we are connected to (they
        stay until the session ends) and those that came to it by other means."""
        if not self._leaving:
            return
        live = self.node.peers()
        connected = {p.get("key") for p in live if isinstance(p, dict)} if live else set()
        table = self.node.gossip.table
        for address, beacon in list(self._leaving.items()):
            if beacon.feed in connected:
                continue
            del self._leaving[address]
            record = table.get(address) if table is not None else None
            if record is not None and record.source == "local":
                self.node.gossip.remove(address)

    # -- when to run -----------------------------------------------------------------------

    def _why_off(self) -> str | None:
        return self._listener()[1]

    def _announced(self) -> Address | None:
        return self._listener()[0]

    def _listener(self) -> tuple[Address | None, str | None]:
        """What the beacons announce: the first shs net listener, with the address it is
        bound to ("" for every interface) and its actual port; or None and why discovery
        must not run."""
        if not self.node.gossip.switches.get("local", True):
            return None, "gossip.local is off"
        listener = next(
            (x for x in self.node.config.listeners if x.kind == "net" and x.transform == "shs"),
            None,
        )
        port = self._listening_port()
        if listener is None or port is None:
            return None, "no shs net listener"
        bound = ""
        if listener.host not in _ALL_INTERFACES:
            host = str(listener.host)
            try:
                ip = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
            except ValueError:
                return None, f"the net listener's host {host!r} is a name, not an IP"
            if ip.is_loopback and not self.on_loopback:
                return None, f"the net listener is on loopback only ({host})"
            bound = "" if ip.is_loopback else str(ip)
        return Address("net", bound, port, "shs", self.node.api.keys.public), None

    def _listening_port(self) -> int | None:
        for text in self.node.addresses:
            with contextlib.suppress(AddressError):
                address = parse_one(text)
                if address.kind == "net" and address.transform == "shs":
                    return address.port
        return None

    # -- reports ---------------------------------------------------------------------------

    @property
    def ports(self) -> tuple[int, ...] | None:
        """The UDP ports listened on (plain, then lan), or None while off."""
        if self._plain is None:
            return None
        return (self._plain.port,) + ((self._lan.port,) if self._lan is not None else ())

    def status(self) -> JSONValue:
        heard: list[JSONValue] = [
            {
                "key": h.beacon.feed,
                "address": address,
                "format": h.beacon.format,
                "verified": h.beacon.verified,
                "lastHeard": int(h.last * 1000),
            }
            for address, h in self.peers.peers.items()
        ]
        return {
            "enabled": self._plain is not None,
            "state": self.state,
            "ports": list(self.ports or ()),
            "announcing": list(self.announcing),
            "heard": heard,
            "dropped": dict(self.peers.dropped),
        }
