"""`ssbsync usb watch`: only the hotplug watcher, without the network node.

Each stick found is synced through the running node when one runs (it holds the store; this
lets the watcher run as root while the node does not), else against the store directly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from ssbsync.cli.nodejobs import node_job, offline
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.node.api import ApiError
from ssbsync.node.blobs import BlobStore
from ssbsync.node.bundles import OnProgress
from ssbsync.node.config import load
from ssbsync.node.hotplug import Hotplug, StickEvent
from ssbsync.node.jobs import Place, sync_job


def run_usb_watch(folder: Path, _target: str, options: dict[str, Any], out: TextIO) -> int:
    config = load(folder)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr, force=True
    )

    async def sync(volume: Path, progress: OnProgress) -> dict[str, JSONValue]:
        summary = await node_job(folder, "stick.sync", [str(volume)], "")
        if summary is not None:
            return dict(summary)
        return await asyncio.to_thread(_sync_here, folder, volume, progress)

    hotplug = Hotplug(sync, config.usb.mount_root, config.usb.loop_devices, _owner(folder))

    shown: dict[str, str] = {}

    def show(event: StickEvent) -> None:  # each change of state once, not every progress step
        if shown.get(event.device) == event.state:
            return
        shown[event.device] = event.state
        detail = f" — {event.detail}" if event.detail else ""
        out.write(f"{event.label or event.device}: {event.state}{detail}\n")
        out.flush()

    hotplug.on_event = show
    return asyncio.run(_watch(hotplug))


def _owner(folder: Path) -> tuple[int, int] | None:
    """Who the node is: the owner of its data folder. A watcher running as root mounts a
    FAT/exFAT stick with that owner, so a node running as another user can write it
    (hardware/README.md, set-up B)."""
    try:
        stat = folder.stat()
    except OSError:
        return None
    return None if stat.st_uid == 0 else (stat.st_uid, stat.st_gid)


def _sync_here(folder: Path, volume: Path, progress: OnProgress) -> dict[str, JSONValue]:
    with offline(folder) as (api, config):
        place = Place(api, config.network_key, BlobStore(folder, config.blobs_max))
        summary = sync_job(place, [str(volume)])(progress)
    assert isinstance(summary, dict)
    return summary


async def _watch(hotplug: Hotplug) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await hotplug.run()
    except asyncio.CancelledError:
        return 0
    except OSError as err:
        raise ApiError(f"usb watch: {err}") from None
    return 0
