"""UDP for LAN discovery (PROTOCOL.md §11): a broadcast-capable endpoint, and the list of
interfaces a beacon can be broadcast on.

The endpoint is what dominictarr/broadcast-stream gives ssb-local: an IPv4 UDP socket bound to
a port on every interface, shared with other programs (SO_REUSEADDR as its `reuseAddr: true`,
plus SO_REUSEPORT where there is one) so that ssb-server and ssbsync on one machine can both
listen on 8008, with SO_BROADCAST so that it may send to broadcast addresses. It knows nothing
of beacons: datagrams go to a callback with the sender's IP, and a send goes to a list of
destinations, where a failure on one (no route, interface gone) is counted and logged and the
others are still tried. OSError from opening it is mapped to `LanError` here, at the boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from typing import NamedTuple

log = logging.getLogger("ssbsync.lan")

Receive = Callable[[bytes, str], None]  # (payload, sender's IP)
Destination = tuple[str, int]  # (IPv4 address, port)

# Linux <linux/sockios.h> and <net/if.h>: read one interface's flags and IPv4 addresses.
SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
SIOCGIFBRDADDR = 0x8919
IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
_IFREQ = 40  # struct ifreq: 16 bytes of name, then a union (a short of flags, a sockaddr)


class LanError(Exception):
    """The UDP endpoint or the interface list could not be had; the message says why."""


class BroadcastTarget(NamedTuple):
    address: str  # this machine's IPv4 address on the interface
    broadcast: str  # the interface's broadcast address
    interface: str = ""


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: UdpEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.endpoint._received(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        self.endpoint._error(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.endpoint._closed.set()


class UdpEndpoint:
    """One bound UDP socket. `open()` it, `send()` through it, `close()` it (or use
    `async with`). Never raises out of `send` or into the event loop on bad traffic."""

    def __init__(self, sock: socket.socket, receive: Receive) -> None:
        self._sock = sock
        self._receive = receive
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = asyncio.Event()  # set once the socket is really closed
        self.received = 0
        self.sent = 0
        self.send_errors = 0
        self.receive_errors = 0  # errors the kernel reported, and callbacks that raised
        self.last_error: str | None = None

    @classmethod
    async def open(cls, port: int, receive: Receive, host: str = "0.0.0.0") -> UdpEndpoint:
        """Bind to (host, port); port 0 takes any free one (see `port`)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                # OSError: the constant exists but this kernel does not have it
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setblocking(False)
            sock.bind((host, port))
            endpoint = cls(sock, receive)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(endpoint), sock=sock
            )
        except OSError as err:
            sock.close()
            raise LanError(f"cannot listen for UDP on {host}:{port}: {_why(err)}") from err
        except BaseException:
            sock.close()
            raise
        endpoint._transport = transport
        return endpoint

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    def send(self, payload: bytes, destinations: Iterable[Destination]) -> int:
        """Send `payload` to each destination; returns how many sends succeeded."""
        done = 0
        for host, port in destinations:
            if self._transport is None or self._transport.is_closing():
                break
            try:
                _check_destination(host, port)
                self._sock.sendto(payload, (host, port))
            except (OSError, ValueError) as err:
                self.send_errors += 1
                self.last_error = f"sending to {host}:{port}: {_why(err)}"
                log.debug("lan: %s", self.last_error)
            else:
                done += 1
        self.sent += done
        return done

    def close(self) -> None:
        """Stop receiving and sending; the socket is closed soon after (see `aclose`)."""
        if self._transport is not None:
            self._transport.close()  # closes the socket once pending callbacks ran
            self._transport = None
        elif not self._closed.is_set():
            self._sock.close()
            self._closed.set()

    async def aclose(self) -> None:
        """Close, and wait until the socket is closed."""
        self.close()
        await self._closed.wait()

    async def __aenter__(self) -> UdpEndpoint:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.shield(self.aclose())

    def _received(self, data: bytes, sender: str) -> None:
        self.received += 1
        try:
            self._receive(data, sender)
        except Exception:  # a bug in the receiver must not stop the endpoint
            self.receive_errors += 1
            log.exception("lan: handling a datagram from %s failed", sender)

    def _error(self, exc: Exception) -> None:
        self.receive_errors += 1
        self.last_error = _why(exc)
        log.debug("lan: socket error: %s", self.last_error)


def _check_destination(host: str, port: int) -> None:
    ipaddress.IPv4Address(host)  # ValueError: a name would mean a blocking DNS lookup here
    if not 0 < port < 65536:
        raise ValueError(f"not a port number: {port}")


def _why(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        return f"{errno.errorcode.get(err.errno, err.errno)} ({err.strerror})"
    return str(err) or type(err).__name__


# -- interfaces ----------------------------------------------------------------------------


def is_broadcast_target(flags: int, address: str, broadcast: str) -> bool:
    """Up, able to broadcast, not loopback, and with a real IPv4 address on both ends."""
    if flags & (IFF_UP | IFF_BROADCAST) != IFF_UP | IFF_BROADCAST or flags & IFF_LOOPBACK:
        return False
    try:
        ours, theirs = ipaddress.IPv4Address(address), ipaddress.IPv4Address(broadcast)
    except ValueError:
        return False
    return not (ours.is_loopback or ours.is_unspecified or theirs.is_unspecified)


def broadcast_targets() -> list[BroadcastTarget]:
    """Each up, non-loopback, broadcast-capable IPv4 interface as (our address, broadcast
    address, name). Read with the Linux ioctls; an interface's primary address only (as
    SIOCGIFADDR gives). LanError if the interfaces cannot be listed at all."""
    if not sys.platform.startswith("linux"):
        raise LanError("listing broadcast interfaces needs Linux (SIOCGIF* ioctls)")
    try:
        names = [name for _, name in socket.if_nameindex()]
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError as err:
        raise LanError(f"cannot list the network interfaces: {_why(err)}") from err
    with probe:
        found = (_read_interface(probe, name) for name in names)
        return [target for target in found if target is not None]


def _read_interface(probe: socket.socket, name: str) -> BroadcastTarget | None:
    try:
        flags = struct.unpack_from("H", _ioctl(probe, SIOCGIFFLAGS, name), 16)[0]
        if flags & IFF_LOOPBACK or not flags & IFF_BROADCAST:
            return None
        address = socket.inet_ntoa(_ioctl(probe, SIOCGIFADDR, name)[20:24])
        broadcast = socket.inet_ntoa(_ioctl(probe, SIOCGIFBRDADDR, name)[20:24])
    except OSError:  # no IPv4 address (EADDRNOTAVAIL), or the interface went away (ENODEV)
        return None
    if not is_broadcast_target(flags, address, broadcast):
        return None
    return BroadcastTarget(address, broadcast, name)


def _ioctl(probe: socket.socket, request: int, name: str) -> bytes:
    import fcntl  # Linux only; imported here so that the module loads anywhere

    request_buffer = struct.pack(f"{_IFREQ}s", name.encode()[:15])
    result: bytes = fcntl.ioctl(probe.fileno(), request, request_buffer)
    return result
