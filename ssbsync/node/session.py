"""One muxrpc session over a ByteStream: the peer's calls to us and ours to it (PROTOCOL.md §4).

`ssbsync.core.rpc.RpcConnection` decides what the bytes mean; this module runs it on asyncio:
one read loop, one task per incoming call, and one writer task that sends queued frames in
large writes (all in one TaskGroup). Every queue is bounded and every wait has a timeout, so a
peer that floods us or stops reading costs one connection, never the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ssbsync.core.errors import Reason, RemoteProtocolError
from ssbsync.core.events import GOODBYE, NEED_DATA
from ssbsync.core.rpc import (
    BadRequest,
    CallType,
    ErrorResponse,
    Request,
    Response,
    RpcConnection,
    RpcError,
    StreamData,
    StreamEnd,
)
from ssbsync.transport.stream import ByteStream, StreamClosed

log = logging.getLogger("ssbsync.rpc")

MAX_INBOX = 4096  # items waiting to be consumed on one stream
MAX_INBOX_BYTES = 8 << 20  # and their bytes on the wire
# Past half of either, the read loop stops reading until the stream's consumer catches up:
# TCP then slows the peer down (backpressure), and what one read adds stays under the limit.
PAUSE_ITEMS, PAUSE_BYTES = MAX_INBOX // 2, MAX_INBOX_BYTES // 2
MAX_OPEN_CALLS = 8192  # concurrent calls a peer may have open with us (~3 KB each)
SEND_TIMEOUT = 60.0  # a peer that reads nothing for this long is dropped
HIGH_WATER = 256 << 10  # queued outgoing bytes before senders wait for the writer
GOODBYE_TIMEOUT = 1.0  # how long closing waits to flush our goodbye


class RemoteError(Exception):
    """The peer answered a call with an error."""

    def __init__(self, error: RpcError) -> None:
        super().__init__(error.message)
        self.error = error


class CallError(Exception):
    """A handler's refusal, sent to the peer as an RPC error with this message."""


@dataclass(frozen=True)
class Method:
    """How to serve one method: its call type and the function behind it.

    async: fn(args) -> Awaitable[value]; source: fn(args) -> AsyncIterator[value];
    sink: fn(args, incoming) -> Awaitable[None]; duplex: fn(args, incoming) -> AsyncIterator.
    """

    type: CallType
    fn: Callable[..., Any]


Dispatch = Callable[[Request], "Method | RpcError"]


class Inbox:
    """Items arriving on one stream, consumed as an async iterator."""

    def __init__(self) -> None:
        self._items: deque[tuple[object, int]] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()  # set while under the pause marks
        self._room.set()
        self._ended = False
        self.error: RpcError | None = None

    def put(self, item: object, size: int = 0) -> bool:
        """Queue an item; True when the reader should pause until `room()`."""
        if len(self._items) >= MAX_INBOX or self._bytes + size > MAX_INBOX_BYTES:
            raise RemoteProtocolError(Reason.LIMIT, "a stream sent more than we can queue")
        self._items.append((item, size))
        self._bytes += size
        self._ready.set()
        if len(self._items) >= PAUSE_ITEMS or self._bytes >= PAUSE_BYTES:
            self._room.clear()
        return not self._room.is_set()

    async def room(self) -> None:
        """Until the consumer has taken the queue down to half the pause marks (or it ended)."""
        await self._room.wait()

    def close(self, error: RpcError | None = None) -> None:
        self._ended = True
        self.error = self.error or error
        self._ready.set()
        self._room.set()

    def __aiter__(self) -> AsyncIterator[object]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[object]:
        while True:
            while self._items:
                item, size = self._items.popleft()
                self._bytes -= size
                if len(self._items) <= PAUSE_ITEMS // 2 and self._bytes <= PAUSE_BYTES // 2:
                    self._room.set()
                yield item
            if self._ended:
                if self.error is not None:
                    raise RemoteError(self.error)
                return
            self._ready.clear()
            await self._ready.wait()


class RpcSession:
    def __init__(
        self,
        stream: ByteStream,
        dispatch: Dispatch,
        *,
        label: str = "peer",
        inactivity_timeout: float = 600.0,
    ) -> None:
        self.stream = stream
        self.label = label
        self._dispatch = dispatch
        # Legacy replication opens one live createHistoryStream per feed, so a peer with a
        # large follow graph needs many concurrent calls.
        self._rpc = RpcConnection(max_open=MAX_OPEN_CALLS)
        self._pending: dict[int, asyncio.Future[object]] = {}
        self._our_streams: dict[int, Inbox] = {}
        self._their_streams: dict[int, Inbox] = {}
        self._our_types: dict[int, CallType] = {}
        self._handlers: dict[int, asyncio.Task[None]] = {}
        self._lagging: set[Inbox] = set()  # inboxes past their pause marks
        self._inactivity = inactivity_timeout
        self._closed = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self.first_request = asyncio.Event()  # the peer has called us at least once
        # Outgoing frames queue here; one writer task sends them in large writes (fewer
        # boxes, fewer system calls) and is the only place that waits on the peer.
        self._out = bytearray()
        self._out_ready = asyncio.Event()
        self._out_room = asyncio.Event()
        self._out_room.set()
        self._out_idle = asyncio.Event()
        self._out_idle.set()

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until the peer says goodbye, the stream breaks, or `close()` is called."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                reader = group.create_task(self._read_loop())
                writer = group.create_task(self._write_loop())
                await self._closed.wait()
                reader.cancel()
                writer.cancel()
                for task in list(self._handlers.values()):
                    task.cancel()
        finally:
            await self._shutdown()

    async def close(self) -> None:
        """End the session: RPC goodbye (if the peer is still reading), then the stream."""
        if not self._closed.is_set():
            # Nine bytes, queued past the backpressure limit: a peer that stopped reading
            # must not hold up closing.
            self._out += self._rpc.goodbye()
            self._out_idle.clear()
            self._out_ready.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GOODBYE_TIMEOUT):
                    await self._out_idle.wait()
            self._set_closed()

    def _set_closed(self) -> None:
        self._closed.set()
        self._out_room.set()  # wake senders waiting for room: they see the session closed

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def _shutdown(self) -> None:
        self._set_closed()
        gone = RpcError("connection closed", "ConnectionClosed")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RemoteError(gone))
        for inbox in [*self._our_streams.values(), *self._their_streams.values()]:
            inbox.close(gone)
        await self.stream.aclose()

    async def _read_loop(self) -> None:
        try:
            while not self.closed:
                async with asyncio.timeout(self._inactivity):
                    data = await self.stream.receive_some()
                if not data:
                    break
                self._rpc.receive_data(data)
                if not self._handle_events() or self.closed:
                    break
                while self._lagging:  # backpressure: read on once the consumer caught up
                    lagging = self._lagging.pop()
                    try:
                        async with asyncio.timeout(SEND_TIMEOUT):
                            await lagging.room()
                    except TimeoutError:
                        raise RemoteProtocolError(
                            Reason.LIMIT, "a stream sent more than we could take in time"
                        ) from None
        except (StreamClosed, TimeoutError) as err:
            log.info("%s: connection ended: %s", self.label, err or "inactive")
        except RemoteProtocolError as err:
            log.warning("%s: protocol error, dropping the connection: %s", self.label, err)
        finally:
            self._set_closed()

    def _handle_events(self) -> bool:
        """Act on every complete event; False once the peer said goodbye."""
        while True:
            event = self._rpc.next_event()
            if event is NEED_DATA:
                return True
            if event is GOODBYE:
                return False
            self._handle(event)

    def _handle(self, event: object) -> None:
        if isinstance(event, Request):
            self._start_handler(event)
        elif isinstance(event, BadRequest):
            self._spawn(self._refuse(event.id, event.stream, event.error))
        elif isinstance(event, Response | ErrorResponse):
            future = self._pending.pop(event.id, None)
            if future is not None and not future.done():
                if isinstance(event, Response):
                    future.set_result(event.value)
                else:
                    future.set_exception(RemoteError(event.error))
        elif isinstance(event, StreamData):
            inbox = (self._our_streams if event.ours else self._their_streams).get(event.id)
            if inbox is not None and inbox.put(event.value, event.size):
                self._lagging.add(inbox)
        elif isinstance(event, StreamEnd):
            self._stream_ended(event)

    def _stream_ended(self, event: StreamEnd) -> None:
        """The peer ended its half of a stream (§4.4)."""
        if event.ours:
            inbox = self._our_streams.get(event.id)
            if inbox is not None:
                inbox.close(event.error)
            # A source's or sink's caller answers the callee's end; a duplex half is ended by
            # whoever holds the Duplex.
            if self._our_types.get(event.id) != "duplex":
                if self._rpc.is_open(event.id, True):
                    self._spawn(self._send(self._rpc.end(event.id, True)))
            else:  # the Duplex keeps its inbox; we need not
                self._our_types.pop(event.id, None)
                self._our_streams.pop(event.id, None)
            return
        inbox = self._their_streams.get(event.id)
        if inbox is not None:
            inbox.close(event.error)  # a sink or duplex we serve: its input is complete
        elif (task := self._handlers.get(event.id)) is not None:
            task.cancel()  # the caller aborted a source we serve; _serve sends our end

    def _spawn(self, coro: Awaitable[None]) -> None:
        assert self._group is not None
        self._group.create_task(self._guard(coro))

    async def _guard(self, coro: Awaitable[None]) -> None:
        try:
            await coro
        except StreamClosed:
            self._set_closed()

    async def _send(self, data: bytes) -> None:
        """Queue frames for the writer; waits while too much is queued (backpressure)."""
        if not data:
            return
        while len(self._out) >= HIGH_WATER and not self._closed.is_set():
            self._out_room.clear()
            await self._out_room.wait()
        if self._closed.is_set():
            raise StreamClosed(f"the session with {self.label} is closed")
        self._out += data
        self._out_idle.clear()
        self._out_ready.set()

    async def _write_loop(self) -> None:
        """Send what is queued, in as few writes as possible; drop a peer that stops reading."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives as the send completes, and the loop would go on writing to a dead peer.
        try:
            while not self.closed:
                await self._out_ready.wait()
                self._out_ready.clear()
                while self._out and not self.closed:
                    data = bytes(self._out)
                    self._out.clear()
                    self._out_room.set()
                    async with asyncio.timeout(SEND_TIMEOUT):
                        await self.stream.send_all(data)
                self._out_idle.set()
        except (StreamClosed, TimeoutError) as err:
            log.info("%s: dropped while sending: %s", self.label, err or "the peer stopped reading")
            self._set_closed()

    # -- serving the peer's calls ----------------------------------------------------------

    def _start_handler(self, request: Request) -> None:
        if self.closed:
            return  # shutting down: the TaskGroup takes no new tasks
        self.first_request.set()
        method = self._dispatch(request)
        if isinstance(method, RpcError):
            self._spawn(self._refuse(request.id, request.type != "async", method))
            return
        incoming: Inbox | None = None
        if request.type in ("sink", "duplex"):
            incoming = self._their_streams[request.id] = Inbox()
        assert self._group is not None
        task = self._group.create_task(self._serve(request, method, incoming))
        self._handlers[request.id] = task

    async def _refuse(self, id: int, stream: bool, error: RpcError) -> None:
        await self._send(
            self._rpc.end(id, False, error) if stream else self._rpc.respond_error(id, error)
        )

    async def _serve(self, request: Request, method: Method, incoming: Inbox | None) -> None:
        id = request.id
        try:
            if request.type == "async":
                value = await method.fn(request.args)
                await self._send(self._rpc.respond(id, value))
            elif request.type == "sink":
                await method.fn(request.args, incoming)
                await self._send(self._rpc.end(id, False))
            else:
                args = (request.args,) if request.type == "source" else (request.args, incoming)
                async for item in method.fn(*args):
                    await self._send(self._rpc.send(id, False, item))
                await self._send(self._rpc.end(id, False))
        except asyncio.CancelledError:
            if request.type != "async" and not self.closed:  # the caller aborted our stream
                with contextlib.suppress(StreamClosed):
                    await self._send(self._rpc.end(id, False))
        except StreamClosed:
            self._set_closed()
        except Exception as err:  # a handler's failure is the caller's error, not ours
            await self._answer_failure(request, err)
        finally:
            self._handlers.pop(id, None)
            self._their_streams.pop(id, None)

    async def _answer_failure(self, request: Request, err: Exception) -> None:
        if not isinstance(err, CallError | RemoteError):
            log.exception("%s: %s failed", self.label, ".".join(request.name))
        error = err.error if isinstance(err, RemoteError) else RpcError(str(err))
        with contextlib.suppress(StreamClosed):
            await self._refuse(request.id, request.type != "async", error)

    # -- calling the peer ------------------------------------------------------------------

    def _new_call(
        self, name: str | list[str], args: tuple[object, ...], kind: CallType
    ) -> tuple[int, bytes]:
        if self.closed:
            raise StreamClosed(f"the session with {self.label} is closed")
        return self._rpc.call(name, list(args), kind)

    async def call(self, name: str | list[str], *args: object, timeout: float = 60.0) -> object:
        """An async call; returns the result or raises RemoteError."""
        id, data = self._new_call(name, args, "async")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._pending[id] = future
        await self._send(data)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._pending.pop(id, None)

    async def source(self, name: str | list[str], *args: object) -> AsyncIterator[object]:
        """A source call: the items the peer sends. Leaving the loop early aborts the stream."""
        id, data = self._new_call(name, args, "source")
        inbox = self._our_streams[id] = Inbox()
        self._our_types[id] = "source"
        await self._send(data)
        try:
            async for item in inbox:
                yield item
        finally:
            self._our_streams.pop(id, None)
            self._our_types.pop(id, None)
            if self._rpc.is_open(id, True) and not self.closed:
                with contextlib.suppress(StreamClosed):
                    await self._send(self._rpc.end(id, True))

    async def duplex(self, name: str | list[str], *args: object) -> Duplex:
        id, data = self._new_call(name, args, "duplex")
        inbox = self._our_streams[id] = Inbox()
        self._our_types[id] = "duplex"
        await self._send(data)
        return Duplex(self, id, inbox)

    async def sink(self, name: str | list[str], *args: object) -> Sink:
        """A sink call: `send()` items, then `finish()` waits for the callee's answer."""
        id, data = self._new_call(name, args, "sink")
        inbox = self._our_streams[id] = Inbox()
        self._our_types[id] = "sink"
        await self._send(data)
        return Sink(self, id, inbox)


class Duplex:
    """Our side of a duplex call: `send()` items, `end()` our half, iterate what arrives."""

    def __init__(self, session: RpcSession, id: int, inbox: Inbox) -> None:
        self._session = session
        self.id = id
        self.incoming = inbox

    async def send(self, item: object) -> None:
        await self._session._send(self._session._rpc.send(self.id, True, item))

    async def end(self, error: RpcError | None = None) -> None:
        await self._session._send(self._session._rpc.end(self.id, True, error))


class Sink:
    """Our side of a sink call. The callee may end it early with an error (then `send` raises
    that RemoteError); `finish()` ends our half and returns once the callee has ended its."""

    def __init__(self, session: RpcSession, id: int, inbox: Inbox) -> None:
        self._session = session
        self.id = id
        self._answer = inbox

    async def send(self, item: object) -> None:
        if not self._session._rpc.is_open(self.id, True):
            await self.finish()  # the callee ended it: raise its error
            raise StreamClosed("the callee ended this sink")
        await self._session._send(self._session._rpc.send(self.id, True, item))

    async def finish(self, timeout: float = 60.0) -> None:
        """End our half; RemoteError if the callee ended with an error."""
        try:
            await self._session._send(self._session._rpc.end(self.id, True))
            async with asyncio.timeout(timeout):
                async for _ in self._answer:
                    pass  # a sink's callee sends no items
        finally:
            self._session._our_streams.pop(self.id, None)
            self._session._our_types.pop(self.id, None)
