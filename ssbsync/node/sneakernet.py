"""The running node's sneakernet: hotplug sticks, and `bundle.*` / `stick.sync` over RPC.

The running node holds the store, so the CLI's bundle and stick commands run here when a node
runs (master only: they read and write files on this machine). Each is a source: progress items
(`{"progress": …}`) while it works, then one `{"summary": …}`; the work itself runs in a thread
so the node keeps replicating meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssbsync.bundle import BundleError, StickError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.node import jobs
from ssbsync.node.api import ApiError
from ssbsync.node.bundles import OnProgress, Progress
from ssbsync.node.hotplug import Hotplug
from ssbsync.node.session import CallError, Method

if TYPE_CHECKING:
    from ssbsync.node.server import Node


class Sneakernet:
    def __init__(self, node: Node) -> None:
        self.node = node
        usb = node.config.usb
        self.hotplug = Hotplug(self.sync_stick, usb.mount_root, usb.loop_devices)

    async def run(self) -> None:
        """The hotplug watcher, when `usb.enabled` (until cancelled)."""
        if self.node.config.usb.enabled:
            await self.hotplug.run()

    @property
    def place(self) -> jobs.Place:
        node = self.node
        return jobs.Place(node.api, node.config.network_key, node.blobs.store)

    async def sync_stick(self, volume: Path, progress: OnProgress) -> dict[str, JSONValue]:
        summary = await asyncio.to_thread(jobs.sync_job(self.place, [str(volume)]), progress)
        assert isinstance(summary, dict)
        return summary

    def status(self) -> JSONValue:
        return self.hotplug.status()


def sneakernet_methods(node: Node) -> dict[tuple[str, ...], Method]:
    """Master-only; `node.sneakernet` is looked up at each call (the method table is built
    before it)."""
    return {
        ("bundle", "export"): _job_source(lambda a: jobs.export_job(node.sneakernet.place, a)),
        ("bundle", "import"): _job_source(lambda a: jobs.import_job(node.sneakernet.place, a)),
        ("stick", "sync"): _job_source(lambda a: jobs.sync_job(node.sneakernet.place, a)),
    }


def _job_source(make: Callable[[list[Any]], jobs.Job]) -> Method:
    """A source method running `make(args)`'s job in a thread, streaming its progress."""

    async def run(args: list[Any]) -> AsyncIterator[JSONValue]:
        try:
            job = make(args)
        except ApiError as err:
            raise CallError(str(err)) from None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[JSONValue] = asyncio.Queue()

        def progress(step: Progress) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, {"progress": step.to_json()})

        work = asyncio.ensure_future(asyncio.to_thread(job, progress))
        # A caller that goes away cannot stop the thread; its outcome is then only logged.
        work.add_done_callback(lambda done: done.cancelled() or done.exception())
        while not work.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({work, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        try:
            result = work.result()
        except (BundleError, StickError, OSError, ValueError) as err:
            raise CallError(str(err)) from None
        yield {"summary": result}

    return Method("source", run)
