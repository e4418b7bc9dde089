"""Messages arriving from a peer, ingested in order in bursts while more keep arriving.

Used by EBT and legacy replication alike: the reading side queues (up to MAX_QUEUED, then it
waits, which stops the session reading from the peer), and one task hands everything queued to
the one ingest path in a single call — one transaction, with the batch's signatures checked
together — then reports what was refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ssbsync.node.api import NodeAPI
from ssbsync.node.checking import Rejection

MAX_BURST = 2000  # messages in one ingest call at most
MAX_QUEUED = 2 * MAX_BURST  # messages waiting for the ingest call after this one


class BurstIngest:
    def __init__(self, api: NodeAPI, on_rejected: Callable[[Rejection], None]) -> None:
        self._api = api
        self._on_rejected = on_rejected
        self._queue: asyncio.Queue[Any] = asyncio.Queue(MAX_QUEUED)
        self._task: asyncio.Task[None] | None = None

    async def put(self, message: Any) -> None:
        """Queue a message; waits while MAX_QUEUED are waiting (the stream then stops being
        read, and the peer is slowed down: memory stays flat however fast it sends)."""
        if self._task is not None and self._task.done():
            self._task.result()  # the ingest task failed: raise why
        await self._queue.put(message)

    async def __aenter__(self) -> BurstIngest:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Whatever was queued is still ingested, however the stream ended."""
        assert self._task is not None
        end = asyncio.ensure_future(self._queue.put(None))
        await asyncio.wait({end, self._task}, return_when=asyncio.FIRST_COMPLETED)
        end.cancel()  # the ingest task failed: nobody will take it
        await self._task

    async def _run(self) -> None:
        done = False
        while not done:
            burst: list[Any] = []
            item = await self._queue.get()
            while item is not None:
                burst.append(item)
                if len(burst) >= MAX_BURST or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            done = item is None
            if burst:
                # `parallel`: bursts of BATCH_SIZE or more are checked in the ingester's
                # worker processes, so signatures are verified on every core.
                report = await asyncio.to_thread(self._api.import_messages, burst, parallel=True)
                for rejection in report.examples:
                    self._on_rejected(rejection)
