"""The node's serial links: answer or dial each configured serial device, for as long as the
node runs (issue 6; docs/serial-link.md; the transport is ssbsync/transport/serial.py).

Config: `connections.incoming.serial` entries are answered, `connections.outgoing.serial`
entries (with the peer's `key`) are dialled. Each runs in its own supervised loop:

    open the device (absent: look again every second; RFCOMM devices come and go)
    -> link preamble -> secret handshake (PROTOCOL.md §2; the dialler is the client)
    -> one session through `Node._serve`, exactly as over TCP (EBT, blobs, gossip all run)
    -> the session ends or the line drops: close, wait, go again

The wait is 1 s, doubling up to 15 s while attempts fail or sessions end quickly, and back to
1 s after a session that lasted. `status()` tells, per link, what it is doing and the last
error in words. `dial()` serves `gossip.connect serial:DEVICE~shs:KEY` (Node._dial).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ssbsync.core.address import Address
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId, public_key
from ssbsync.node.config import SerialLink
from ssbsync.node.secure import SecureStream
from ssbsync.transport.serial import (
    DEFAULT_BAUD,
    DIAL_TIMEOUT,
    DeviceMissing,
    SerialStream,
    answer_serial,
    dial_serial,
)
from ssbsync.transport.stream import StreamClosed

if TYPE_CHECKING:
    from ssbsync.node.server import Node

log = logging.getLogger("ssbsync.serial")

MISSING_RETRY = 1.0  # seconds between looks for a device that is not there
FIRST_WAIT, MAX_WAIT = 1.0, 15.0  # back-off between attempts
LASTED = 10.0  # a session at least this long resets the back-off


@dataclass
class LinkStatus:
    """What one configured link is doing, for `status()`."""

    link: SerialLink
    state: str = "starting"
    error: str | None = None  # the last thing that went wrong, in words
    peer: FeedId | None = None  # while connected
    sessions: int = 0  # sessions started

    def to_json(self) -> JSONValue:
        return {
            "device": self.link.device,
            "role": self.link.role,
            "baud": self.link.baud,
            "state": self.state,
            "peer": self.peer,
            "sessions": self.sessions,
            "error": self.error,
        }

    def set(self, state: str, error: str | None = None) -> None:
        """A new state; an error (kept until the next one or a session) is logged once."""
        self.state = state
        if error is not None and error != self.error:
            log.info("serial %s: %s: %s", self.link.device, state, error)
        self.error = error if error is not None else self.error


class SerialLinks:
    """Every configured serial link of one node (`node.serial`)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.links = [LinkStatus(link) for link in node.config.serial]

    async def run(self) -> None:
        """Supervise every link until cancelled (returns at once when there are none)."""
        async with asyncio.TaskGroup() as group:
            for status in self.links:
                group.create_task(self._supervise(status))

    def status(self) -> JSONValue:
        return [status.to_json() for status in self.links]

    async def dial(self, device: str, timeout: float = DIAL_TIMEOUT) -> SerialStream:
        """Open `device` and run the dialler's preamble, at its configured baud if it has one."""
        bauds = (link.baud for link in self.node.config.serial if link.device == device)
        return await dial_serial(device, next(bauds, DEFAULT_BAUD), timeout)

    async def _supervise(self, status: LinkStatus) -> None:
        wait = FIRST_WAIT
        while True:
            try:
                lasted = await self._attempt(status)
            except DeviceMissing as err:
                status.set("waiting for the device", str(err))
                await asyncio.sleep(MISSING_RETRY)
                continue
            except StreamClosed as err:
                status.set("failed", str(err))
                lasted = 0.0
            except Exception as err:  # a bug must cost this link an attempt, not the node
                log.exception("serial %s: unexpected error", status.link.device)
                status.set("failed", f"unexpected error: {err!r}")
                lasted = 0.0
            if lasted >= LASTED:
                wait = FIRST_WAIT
            status.set(f"retrying in {wait:g} s")
            await asyncio.sleep(wait)
            wait = min(wait * 2, MAX_WAIT)

    async def _attempt(self, status: LinkStatus) -> float:
        """One open → preamble → handshake → session; how long the session ran."""
        link = status.link
        if link.role == "dial":
            assert link.key is not None, "config.SerialLink requires a key to dial"
            status.set("dialling")
            stream = await self.dial(link.device)
            status.set("handshake")
            secure = await self.node.handshake_outgoing(stream, public_key(link.key))
            return await self._serve(status, secure, outgoing=True, is_master=False)
        status.set("waiting for a dialler")
        stream = await answer_serial(link.device, link.baud)
        status.set("handshake")
        secure, is_master = await self.node.handshake_incoming(stream)
        return await self._serve(status, secure, outgoing=False, is_master=is_master)

    async def _serve(
        self, status: LinkStatus, secure: SecureStream, outgoing: bool, is_master: bool
    ) -> float:
        remote, device = secure.remote_id, status.link.device
        address = str(Address("serial", device, 0, "shs", public_key(remote)))
        status.peer, status.error = remote, None
        status.sessions += 1
        status.set("connected")
        log.info("serial %s: session with %s", device, remote)
        started = time.monotonic()
        try:
            await self.node.serve_session(secure, remote, address, outgoing, is_master)
        finally:
            status.peer = None
        lasted = time.monotonic() - started
        status.set(f"session ended after {lasted:.1f} s")
        log.info("serial %s: session with %s ended after %.1f s", device, remote, lasted)
        return lasted
