"""A serial link that can drop, made of two pty pairs and a relay (no hardware needed).

    node A opens  <folder>/ttyA -> /dev/pts/N (slave A)      master A \\
                                                                        relay copies both ways
    node B opens  <folder>/ttyB -> /dev/pts/M (slave B)      master B /

"The line drops" (`drop()`): the relay closes both masters, so each node's open device hangs
up (reads give 0 bytes, writes EIO), the symlinks disappear for `down_for` seconds, then new
pty pairs are made and the symlinks point at their slaves: what /dev/rfcomm0 does when a
Bluetooth link goes and comes back. The relay keeps its own descriptor of each slave open (in
raw mode) so a node closing its device does not drop the line, as on a real serial cable.

`baud` limits the relay to that line rate (10 bits per byte, 8N1); None copies as fast as the
ptys go. `connect(flowing=False)` makes the devices but holds what is written to them until
`resume()` (the benchmark starts its clock there). `await inject(side, data)` puts bytes
on the line towards `side`'s node (line noise). Every task belongs to the link and ends in
`aclose()`; every descriptor is closed there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

CHUNK = 4096


@dataclass
class _Pair:
    master: int
    slave: int

    @classmethod
    def new(cls) -> _Pair:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing before a node configures it
        os.set_blocking(master, False)
        return cls(master, slave)

    @property
    def slave_path(self) -> str:
        return os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class PtyLink:
    folder: Path
    baud: int | None = None
    relayed: dict[str, int] = field(default_factory=lambda: {"a->b": 0, "b->a": 0})
    drops: int = 0
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)
    _pairs: dict[str, _Pair] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def a(self) -> Path:
        return self.folder / "ttyA"

    @property
    def b(self) -> Path:
        return self.folder / "ttyB"

    @property
    def up(self) -> bool:
        return bool(self._pairs)

    async def __aenter__(self) -> PtyLink:
        self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def connect(self, flowing: bool = True) -> None:
        """Make the pty pairs, point the device symlinks at them, start relaying."""
        assert not self._pairs, "the link is up already"
        if flowing:
            self._flowing.set()
        self._pairs = {"a": _Pair.new(), "b": _Pair.new()}
        for side, path in (("a", self.a), ("b", self.b)):
            temporary = path.with_suffix(".new")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(self._pairs[side].slave_path)
            temporary.replace(path)  # atomic: a node never sees a half-made device
        loop = asyncio.get_running_loop()
        pairs = self._pairs
        self._tasks = [
            loop.create_task(self._copy(pairs["a"].master, pairs["b"].master, "a->b")),
            loop.create_task(self._copy(pairs["b"].master, pairs["a"].master, "b->a")),
        ]

    def resume(self) -> None:
        """Let bytes flow (after `connect(flowing=False)`)."""
        self._flowing.set()

    async def drop(self, down_for: float = 0.0) -> None:
        """The line drops; it comes back after `down_for` seconds (never, if negative)."""
        self.drops += 1
        await self._disconnect()
        if down_for >= 0:
            await asyncio.sleep(down_for)
            self.connect()

    async def inject(self, side: str, data: bytes) -> None:
        """Bytes arriving at `side`'s node as if from the line (noise, a stale session)."""
        await _send(asyncio.get_running_loop(), self._pairs[side].master, data)

    async def aclose(self) -> None:
        await self._disconnect()

    async def _disconnect(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for path in (self.a, self.b):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        for pair in self._pairs.values():
            pair.close()
        self._pairs = {}

    async def _copy(self, source: int, target: int, direction: str) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._flowing.wait()
            try:
                data = os.read(source, CHUNK)
            except BlockingIOError:
                await _wait(loop, source, writing=False)
                continue
            except OSError:
                return  # EIO: cannot happen while we hold the slave; end quietly if it does
            await _send(loop, target, data)
            self.relayed[direction] += len(data)
            if self.baud:
                await asyncio.sleep(len(data) * 10 / self.baud)


async def _send(loop: asyncio.AbstractEventLoop, fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _wait(loop, fd, writing=True)


async def _wait(loop: asyncio.AbstractEventLoop, fd: int, writing: bool) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if writing else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if writing else loop.remove_reader)(fd)


def serial_only_config(
    incoming: list[dict[str, Any]], outgoing: list[dict[str, Any]]
) -> dict[str, Any]:
    """A node config with these serial links, no TCP at all (only the local socket) and no LAN
    discovery: nodes on a link can reach each other over the serial line only."""
    return {
        "connections": {
            "incoming": {"unix": [{"transform": "noauth"}], "serial": incoming},
            "outgoing": {"serial": outgoing},
        },
        "gossip": {"local": False},
    }
