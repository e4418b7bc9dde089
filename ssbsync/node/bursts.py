"""Messages arriving from a peer, ingested in order in bursts while more keep arriving.

Used by EBT and legacy replication alike: the reading side only queues (so the session's
inbox never fills up behind a slow ingest), and one task hands everything queued so far to
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


class BurstIngest:
    def __init__(self, api: NodeAPI, on_rejected: Callable[[Rejection], None]) -> None:
        self._api = api
        self._on_rejected = on_rejected
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def put(self, message: Any) -> None:
        self._queue.put_nowait(message)

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
        self._queue.put_nowait(None)
        assert self._task is not None
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
