"""Serial lines as byte streams: `/dev/rfcomm0` (Bluetooth RFCOMM), `/dev/ttyUSB0`, a pty.

The device is opened with pyserial (raw 8N1 at the given baud, no flow control, an exclusive
lock so two programs never share a line) and then read and written non-blocking from the
event loop. A hangup (read of 0 bytes, EIO, the device removed) is `StreamClosed`, never a
hang. A serial line has no end-of-stream signal: a peer that closes its device is seen only
when the line itself drops (RFCOMM does drop it), otherwise by the box-stream goodbye above.

The link preamble (ssbsync's own; ssb-server has no serial transport; docs/serial-link.md).
A serial line has no "connect", and bytes of a dropped session may still sit in a buffer on
either side, so before the secret handshake both ends agree on where the new session begins.
Four 39-byte ASCII markers, `\\x16ssbsync-link/1 KIND  NONCE\\n` (KIND padded to 5, NONCE 16
hex digits the dialler picks afresh for every attempt; ssbsync/core/serialpreamble.py):

    dialler                                  answerer
    SYNC n, again every 0.25 s      ->       scans its input for markers, drops the rest
                                    <-       ACK n   (one per SYNC n seen)
    first ACK n: START n, once      ->
                                    <-       READY n (on START n after a SYNC n)
    drops everything before READY n         SHS starts with the byte after START n
    SHS starts with the byte after it

Markers of another nonce (a stale session) and anything between markers are discarded; what
is kept while scanning is at most one marker's length. The dialler gives up after `timeout`;
the answerer waits for a dialler as long as its caller likes. The dialler is the SHS client.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
import termios
from collections.abc import Iterator

import serial  # type: ignore[import-untyped]

from ssbsync.core.serialpreamble import MarkerScanner, marker
from ssbsync.transport.stream import StreamClosed

DEFAULT_BAUD = 115200
DIAL_TIMEOUT = 10.0  # seconds a dialler sends SYNC before giving up
SYNC_INTERVAL = 0.25  # seconds between SYNC markers
DRAIN_WAIT = 1.0  # seconds aclose() lets queued output (the box-stream goodbye) leave

_MISSING = (errno.ENOENT, errno.ENODEV, errno.ENXIO)  # not there (yet), or gone
_BUSY = (errno.EAGAIN, errno.EBUSY)


class DeviceMissing(StreamClosed):
    """The device does not exist (yet): an RFCOMM device appears when its link comes up."""


# -- the device as a ByteStream ------------------------------------------------------------


class SerialStream:
    """A ByteStream over an open serial device (see the module docstring for hangups)."""

    def __init__(self, port: serial.Serial, device: str) -> None:
        self._port = port
        self._fd: int = port.fileno()
        os.set_blocking(self._fd, False)
        self.device = device
        self._pending = b""  # read past the preamble: the first bytes of the session
        self._waiters: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def peer(self) -> str:
        return f"serial:{self.device}"

    def unread(self, data: bytes) -> None:
        """Give back bytes read too early; the next receive returns them first."""
        self._pending = data + self._pending

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        while True:
            self._check_open("receive")
            if self._pending:
                data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
                return data
            try:
                data = os.read(self._fd, max_bytes)
            except BlockingIOError:
                await self._ready(writing=False)
                continue
            except OSError as err:
                raise self._broken(err) from err
            if not data:  # a tty reads 0 bytes once hung up: the line dropped
                raise StreamClosed(f"{self.device}: the line hung up")
            return data

    async def send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while True:
            self._check_open("send")
            if not view:
                return
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                await self._ready(writing=True)
            except OSError as err:
                raise self._broken(err) from err

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._fd)
        loop.remove_writer(self._fd)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(StreamClosed(f"{self.device}: closed"))
        drained = False
        try:
            drained = await self._drain()
        finally:  # even when cancelled while draining
            if not drained:  # close() would wait for the line (up to 30 s): drop the rest
                with contextlib.suppress(OSError, termios.error):
                    termios.tcflush(self._fd, termios.TCOFLUSH)
            with contextlib.suppress(Exception):
                self._port.close()

    async def _drain(self) -> bool:
        """Give what is queued in the driver (our goodbye) a moment to leave; True if it did.
        Only what is still queued then is flushed: on a pty, where the queue reads empty,
        flushing would drop what the other side has not read yet."""
        for _ in range(int(DRAIN_WAIT / 0.02)):
            try:
                queued = fcntl.ioctl(self._fd, termios.TIOCOUTQ, b"\0\0\0\0")
            except OSError:
                return False  # hung up: nothing will leave
            if struct.unpack("i", queued)[0] == 0:
                return True
            await asyncio.sleep(0.02)
        return False

    async def _ready(self, writing: bool) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        (loop.add_writer if writing else loop.add_reader)(self._fd, wake)
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)
            if not self._closed:
                (loop.remove_writer if writing else loop.remove_reader)(self._fd)

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise StreamClosed(f"{what} on a closed stream ({self.device})")

    def _broken(self, err: OSError) -> StreamClosed:
        if err.errno in (errno.EIO, *_MISSING):
            return StreamClosed(f"{self.device}: the line dropped ({err.strerror})")
        return StreamClosed(f"{self.device}: {err.strerror or err}")


# -- opening, dialling, answering ------------------------------------------------------------


def _configured(device: str, baud: int) -> serial.Serial:
    port = serial.Serial()
    port.port = device
    port.baudrate = baud
    port.bytesize, port.parity, port.stopbits = serial.EIGHTBITS, serial.PARITY_NONE, 1
    port.xonxoff = port.rtscts = port.dsrdtr = False
    port.exclusive = True
    return port


def _open(port: serial.Serial) -> None:
    """Open and make reads say what happened: pyserial leaves VMIN = VTIME = 0, where a read
    with nothing to read returns 0 bytes, the same as a hangup; with VMIN = 1 a non-blocking
    read of an idle line fails with EAGAIN instead, and 0 bytes means the line hung up."""
    port.open()
    try:
        attributes = termios.tcgetattr(port.fileno())
        attributes[6][termios.VMIN], attributes[6][termios.VTIME] = 1, 0
        termios.tcsetattr(port.fileno(), termios.TCSANOW, attributes)
    except BaseException:
        port.close()
        raise


def _open_error(device: str, err: Exception) -> StreamClosed:
    code = getattr(err, "errno", None)
    if code in _MISSING:
        return DeviceMissing(f"{device}: no such device (yet)")
    if code in _BUSY:
        return StreamClosed(f"{device} is in use by another program or link (opened exclusively)")
    if code == errno.EACCES:
        return StreamClosed(f"{device}: permission denied (is the user in the dialout group?)")
    # pyserial's own message repeats the device name: say it once, with the system's words
    return StreamClosed(f"could not open {device}: {os.strerror(code) if code else err}")


async def open_serial(device: str, baud: int = DEFAULT_BAUD) -> SerialStream:
    """Open and configure `device`; DeviceMissing if it is not there, StreamClosed if unusable.

    Opening an RFCOMM device bound with `rfcomm bind` makes the Bluetooth connection and can
    take seconds, so it runs in a thread; a port opened after we were cancelled is closed.
    """
    port = _configured(device, baud)
    loop = asyncio.get_running_loop()
    opening = loop.run_in_executor(None, _open, port)
    try:
        await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(lambda done: done.exception() or port.close())
        raise
    except (OSError, ValueError, termios.error, serial.SerialException) as err:
        raise _open_error(device, err) from err
    return SerialStream(port, device)


async def _markers(stream: SerialStream, scanner: MarkerScanner) -> Iterator[tuple[str, str]]:
    data = await stream.receive_some(4096)
    scanner.feed(data)
    return scanner.markers()


async def _dial_preamble(stream: SerialStream, nonce: str) -> None:
    scanner = MarkerScanner()
    acked = False
    while not acked:  # SYNC until the first ACK of our nonce
        await stream.send_all(marker("SYNC", nonce))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SYNC_INTERVAL):
                while not acked:
                    found = await _markers(stream, scanner)
                    acked = ("ACK", nonce) in found
    # What followed that ACK is still in the scanner: more ACKs, then READY.
    await stream.send_all(marker("START", nonce))
    while ("READY", nonce) not in scanner.markers():
        scanner.feed(await stream.receive_some(4096))
    stream.unread(scanner.rest())


async def _answer_preamble(stream: SerialStream) -> None:
    scanner = MarkerScanner()
    synced: str | None = None
    while True:
        for kind, nonce in await _markers(stream, scanner):
            if kind == "SYNC":
                synced = nonce
                await stream.send_all(marker("ACK", nonce))
            elif kind == "START" and nonce == synced:
                await stream.send_all(marker("READY", nonce))
                stream.unread(scanner.rest())
                return


async def dial_serial(
    device: str, baud: int = DEFAULT_BAUD, timeout: float = DIAL_TIMEOUT, nonce: str | None = None
) -> SerialStream:
    """Open `device` and run the dialler's preamble: a stream in step with the answerer."""
    stream = await open_serial(device, baud)
    try:
        async with asyncio.timeout(timeout):
            await _dial_preamble(stream, nonce or os.urandom(8).hex())
    except TimeoutError:
        await stream.aclose()
        raise StreamClosed(
            f"{device}: no answer in {timeout:g} s (is the other end answering?)"
        ) from None
    except BaseException:
        await stream.aclose()
        raise
    return stream


async def answer_serial(device: str, baud: int = DEFAULT_BAUD) -> SerialStream:
    """Open `device` and wait for a dialler's preamble (for as long as the caller lets it)."""
    stream = await open_serial(device, baud)
    try:
        await _answer_preamble(stream)
    except BaseException:
        await stream.aclose()
        raise
    return stream
