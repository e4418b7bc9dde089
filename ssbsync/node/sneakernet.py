"""The running node's sneakernet: hotplug sticks, and `bundle.*` / `stick.sync` over RPC.

The running node holds the store, so the CLI's bundle and stick commands run here when a node
runs (master only: they read and write files on this machine). Each is a source: progress items
(`{"progress": …}`) while it works, then one `{"summary": …}`; the work itself runs in a thread
so the node keeps replicating meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssbsync.bundle import BundleError, CarrySpec, StickError
from ssbsync.core.clock import VectorClock
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId
from ssbsync.node import bundles, sticks
from ssbsync.node.bundles import OnProgress, Progress
from ssbsync.node.hotplug import Hotplug
from ssbsync.node.session import CallError, Method

if TYPE_CHECKING:
    from ssbsync.node.server import Node

# A blocking job: (progress callback) -> summary.
Job = Callable[[OnProgress], JSONValue]


class Sneakernet:
    def __init__(self, node: Node) -> None:
        self.node = node
        usb = node.config.usb
        self.hotplug = Hotplug(self.sync_stick, usb.mount_root, usb.loop_devices)

    async def run(self) -> None:
        """The hotplug watcher, when `usb.enabled` (until cancelled)."""
        if self.node.config.usb.enabled:
            await self.hotplug.run()

    async def sync_stick(self, volume: Path, progress: OnProgress) -> dict[str, JSONValue]:
        node = self.node
        summary = await asyncio.to_thread(
            sticks.sync_stick, node.api, volume, network_key=node.config.network_key,
            blobs=node.blobs.store, now_ms=_now_ms(), progress=progress,
        )  # fmt: skip
        return summary.to_json()

    def status(self) -> JSONValue:
        return self.hotplug.status()

    # -- the jobs (args as the CLI sends them) ---------------------------------------------

    def export_job(self, args: list[Any]) -> Job:
        path, opts = _path(args, "bundle.export"), _options(args)
        node, config = self.node, self.node.config
        destination = opts.get("clock")
        hops = opts.get("hops")
        chosen = tuple(FeedId(f) for f in opts.get("feeds") or ())

        def job(progress: OnProgress) -> JSONValue:
            def write(out: Any) -> bundles.ExportSummary:
                return bundles.export_bundle(
                    node.api, out, network_key=config.network_key,
                    destination=None if destination is None else _clock(destination),
                    feeds=sticks.carried_feeds(node.api, CarrySpec(chosen, hops)),
                    blobs=node.blobs.store if opts.get("blobs") else None,
                    now_ms=_now_ms(), progress=progress,
                )  # fmt: skip

            return bundles.export_to_file(path, write).to_json()

        return job

    def import_job(self, args: list[Any]) -> Job:
        path, node = _path(args, "bundle.import"), self.node

        def job(progress: OnProgress) -> JSONValue:
            with open(path, "rb") as source:
                summary = bundles.import_bundle(
                    node.api, source, network_key=node.config.network_key,
                    blobs=node.blobs.store, progress=progress,
                )  # fmt: skip
            return summary.to_json()

        return job

    def sync_job(self, args: list[Any]) -> Job:
        path, node = _path(args, "stick.sync"), self.node

        def job(progress: OnProgress) -> JSONValue:
            summary = sticks.sync_stick(
                node.api, path, network_key=node.config.network_key, blobs=node.blobs.store,
                now_ms=_now_ms(), progress=progress,
            )  # fmt: skip
            return summary.to_json()

        return job


def sneakernet_methods(node: Node) -> dict[tuple[str, ...], Method]:
    """Master-only; `node.sneakernet` is looked up at each call (the method table is built
    before it)."""
    return {
        ("bundle", "export"): _job_source(lambda args: node.sneakernet.export_job(args)),
        ("bundle", "import"): _job_source(lambda args: node.sneakernet.import_job(args)),
        ("stick", "sync"): _job_source(lambda args: node.sneakernet.sync_job(args)),
    }


def _now_ms() -> int:
    return int(time.time() * 1000)


def _path(args: list[Any], name: str) -> Path:
    if not args or not isinstance(args[0], str):
        raise CallError(f"{name}: a file or folder path is required")
    return Path(args[0])


def _options(args: list[Any]) -> dict[str, Any]:
    opts = args[1] if len(args) > 1 else {}
    if not isinstance(opts, dict):
        raise CallError(f"options must be an object, got {opts!r}")
    return opts


def _clock(value: Any) -> dict[FeedId, int]:
    try:
        return dict(VectorClock.from_json(value))
    except ValueError as err:
        raise CallError(f"clock: {err}") from None


def _job_source(make: Callable[[list[Any]], Job]) -> Method:
    """A source method running `make(args)`'s job in a thread, streaming its progress."""

    async def run(args: list[Any]) -> AsyncIterator[JSONValue]:
        job = make(args)
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
