"""A hand-made Scuttlebutt peer that misbehaves on purpose (for test_robustness.py).

`RawPeer` is a bare TCP connection to a node. `SecurePeer` completes a real secret handshake
(`ssbsync.core.shs.ClientHandshake`) and then writes whatever box-stream or RPC bytes a test
wants, including ones no honest peer would send: its `Boxer` holds the session keys, so it can
also forge box headers. Neither reads unless asked to, so a test can play a peer that stops
reading; `close()` always releases the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from nacl import bindings

from ssbsync.core import jsonv8
from ssbsync.core.address import parse_one
from ssbsync.core.boxstream import MAX_BODY, BoxStreamDecoder
from ssbsync.core.events import GOODBYE, NEED_DATA
from ssbsync.core.keys import Keypair
from ssbsync.core.packets import BodyType, Packet, PacketDecoder, encode_packet
from ssbsync.core.shs import BoxKeys, ClientHandshake, Session

_NONCE_MODULUS = 1 << 192
_MAC = 16


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    key: bytes  # the node's long-term public key

    @classmethod
    def parse(cls, address: str) -> Target:
        parsed = parse_one(address)
        assert parsed.kind == "net" and parsed.key is not None, address
        return cls(parsed.host, parsed.port, parsed.key)


class RawPeer:
    """One TCP connection to the node, read only when the test says so."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = bytearray()
        self.hung_up = asyncio.Event()  # the node closed (or reset) the connection
        self._reading: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, target: Target, *, receive_buffer: int | None = None) -> RawPeer:
        """Connect; `receive_buffer` shrinks SO_RCVBUF first (a slow or stalled reader)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if receive_buffer is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, (target.host, target.port)), 5)
            reader, writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        return cls(reader, writer)

    @property
    def local_port(self) -> int:
        port: int = self.writer.get_extra_info("sockname")[1]
        return port

    async def send(self, data: bytes, timeout: float = 5.0) -> bool:
        """Write `data`; False if the node has already closed the connection."""
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), timeout)
        except (ConnectionError, OSError):
            return False
        return True

    async def read_some(self, timeout: float) -> bytes:
        """One read (b"" at end of stream or on a reset)."""
        try:
            return await asyncio.wait_for(self.reader.read(65536), timeout)
        except (ConnectionError, OSError):
            return b""

    def start_reading(self) -> asyncio.Task[None]:
        """Read (and keep) everything the node sends, in the background, until it hangs up."""
        if self._reading is None:
            self._reading = asyncio.create_task(self._read_all())
        return self._reading

    async def _read_all(self) -> None:
        try:
            while data := await self.reader.read(65536):
                self.received += data
        except (ConnectionError, OSError):
            pass
        finally:
            self.hung_up.set()

    async def dropped(self, timeout: float) -> bool:
        """Whether the node closes the connection within `timeout` seconds (reads meanwhile)."""
        self.start_reading()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.hung_up.wait(), timeout)
        return self.hung_up.is_set()

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)

    async def __aenter__(self) -> RawPeer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


class Boxer:
    """Box-stream sealing (PROTOCOL.md §3) that will also seal what a real encoder refuses."""

    def __init__(self, keys: BoxKeys) -> None:
        self._key = keys.key
        self._nonce = int.from_bytes(keys.nonce, "big")

    def _seal(self, plain: bytes, offset: int) -> bytes:
        nonce = ((self._nonce + offset) % _NONCE_MODULUS).to_bytes(24, "big")
        box: bytes = bindings.crypto_secretbox_easy(plain, nonce, self._key)
        return box

    def box(self, chunk: bytes) -> bytes:
        """One box for 1..65535 bytes (honest peers stop at 4096)."""
        body = self._seal(chunk, 1)
        header = self._seal(len(chunk).to_bytes(2, "big") + body[:_MAC], 0)
        self._nonce += 2
        return header + body[_MAC:]

    def boxes(self, data: bytes) -> bytes:
        return b"".join(self.box(data[i : i + MAX_BODY]) for i in range(0, len(data), MAX_BODY))

    def forged_header(self, length: int) -> bytes:
        """An authentic header announcing `length` bytes (with a made-up body MAC)."""
        header = self._seal(length.to_bytes(2, "big") + bytes(_MAC), 0)
        self._nonce += 2
        return header

    def goodbye(self) -> bytes:
        return self._seal(bytes(18), 0)


class SecurePeer(RawPeer):
    """A peer that completed the secret handshake; `send_boxed` writes box-stream bytes."""

    session: Session
    boxer: Boxer

    @classmethod
    async def connect(
        cls,
        target: Target,
        keys: Keypair,
        network_key: bytes,
        *,
        receive_buffer: int | None = None,
        timeout: float = 5.0,
    ) -> SecurePeer:
        peer = await cls.open(target, receive_buffer=receive_buffer)
        try:
            handshake = ClientHandshake(network_key, keys, target.key, os.urandom(32))
            async with asyncio.timeout(timeout):
                while handshake.session is None:
                    assert await peer.send(handshake.data_to_send()), "hung up in the handshake"
                    if handshake.session is not None:
                        break
                    data = await peer.reader.read(4096)
                    if not data:
                        raise ConnectionError("the node hung up during the handshake")
                    handshake.receive_data(data)
        except BaseException:
            await peer.close()
            raise
        assert handshake.session is not None
        peer.session = handshake.session
        peer.boxer = Boxer(handshake.session.send)
        peer.received += handshake.leftover()
        return peer

    async def send_boxed(self, plain: bytes, timeout: float = 5.0) -> bool:
        return await self.send(self.boxer.boxes(plain), timeout)

    def decoded(self) -> tuple[list[Packet], bool]:
        """The RPC packets in everything received so far, and whether the node ended the
        box-stream with its goodbye (a clean close)."""
        boxes = BoxStreamDecoder(self.session.receive, max_buffer=1 << 21)
        packets = PacketDecoder(max_body=1 << 20, max_buffer=1 << 22)
        found: list[Packet] = []
        goodbye = False
        for start in range(0, len(self.received), 65536):
            boxes.receive_data(bytes(self.received[start : start + 65536]))
            while (event := boxes.next_event()) is not NEED_DATA:
                if event is GOODBYE:
                    goodbye = True
                    break
                assert isinstance(event, bytes)
                packets.receive_data(event)
                while isinstance(packet := packets.next_event(), Packet):
                    found.append(packet)
            if goodbye:
                break
        return found, goodbye


# -- muxrpc frames, honest and not (PROTOCOL.md §4.1) -----------------------------------------

FRAME_HEADER = struct.Struct(">BIi")
RPC_GOODBYE = bytes(9)


def request(number: int, name: list[str], args: list[object], type: str | None = None) -> bytes:
    """A call frame: `type` None is an async call, else "source", "sink" or "duplex"."""
    body: dict[str, object] = {"name": name, "args": args}
    if type is not None:
        body["type"] = type
    text = jsonv8.stringify(body).encode()
    return encode_packet(Packet(number, type is not None, False, BodyType.JSON, text))


def stream_item(number: int, body: bytes) -> bytes:
    """One binary item on stream `number` (positive: we are the caller)."""
    return encode_packet(Packet(number, True, False, BodyType.BINARY, body))


def frame_header(number: int, length: int, flags: int = 0x02) -> bytes:
    """Only the 9-byte header of a frame, announcing a body of `length` bytes."""
    return FRAME_HEADER.pack(flags, length, number)


# -- who holds the node's end of a TCP connection (Linux) -------------------------------------


def node_end_is_open(node_port: int, peer_port: int) -> bool | None:
    """Whether this process still has a socket for the node's end of the connection from
    `peer_port`; None where /proc does not tell (not Linux)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        return None
    ours: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            ours.add(os.readlink(f"/proc/self/fd/{fd}"))
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        mine = f"socket:[{inode}]" in ours
        if mine and _port(local) == node_port and _port(remote) == peer_port:
            return True
    return False


def _port(hex_address: str) -> int:
    return int(hex_address.rsplit(":", 1)[1], 16)
