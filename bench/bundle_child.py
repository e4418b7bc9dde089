"""The measured processes of bench/bundle.py: one operation on one node folder, one JSON line out.

    python bench/bundle_child.py export STORE OUT        # export_bundle of the whole store
    python bench/bundle_child.py import FOLDER BUNDLE    # import_bundle into a (fresh) node
    python bench/bundle_child.py sync FOLDER STICK       # sticks.sync_stick, both ways
    python bench/bundle_child.py publish FOLDER COUNT    # COUNT new messages of the node's own

Each runs in a fresh process so that every measured call starts alike (nothing cached in the
process, the same start-up), and is timed around the one call being measured. Kept apart from
bench/bundle.py (as bench/ingest_child.py is) because the import's worker processes re-import
the main module: they must load nothing of the benchmark's own (rich, ...).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _usage() -> dict[str, Any]:
    """CPU seconds (this process and its ended workers) and this process's peak RSS."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_seconds": own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime,
        "peak_kib": own.ru_maxrss,
    }


def export(store: Path, out: Path) -> dict[str, Any]:
    """Everything the store holds, as the CLI's `bundle export OUT` without --for writes it."""
    import os

    from ssbsync.cli.nodejobs import offline
    from ssbsync.node import bundles

    with offline(store) as (api, config):
        api.store.vector_clock()  # open the store (and run any migration) before the clock
        with out.open("wb") as target:
            started = time.perf_counter()
            summary = bundles.export_bundle(
                api, target, network_key=config.network_key, now_ms=int(time.time() * 1000)
            )
            seconds = time.perf_counter() - started
            os.fsync(target.fileno())
        # "JSON lines": each message's stored JSON (what the bundle carries) and a newline.
        ranges, _ = bundles.plan(api, None, None, None)
        json_lines = bundles.stored_bytes(api, ranges) + summary.messages
    return {
        "seconds": seconds,
        "messages": summary.messages,
        "feeds": summary.feeds,
        "bytes": out.stat().st_size,
        "json_lines_bytes": json_lines,
        **_usage(),
    }


def import_(folder: Path, bundle: Path) -> dict[str, Any]:
    """As the CLI's `bundle import FILE` on a stopped node (parallel ingest, blob store)."""
    from ssbsync.cli.nodejobs import offline
    from ssbsync.node import bundles
    from ssbsync.node.blobs import BlobStore

    with offline(folder) as (api, config), bundle.open("rb") as source:
        api.store.vector_clock()  # create the empty store before the clock starts
        blobs = BlobStore(folder, config.blobs_max)
        started = time.perf_counter()
        summary = bundles.import_bundle(api, source, network_key=config.network_key, blobs=blobs)
        seconds = time.perf_counter() - started
        clock = api.store.vector_clock().to_json()
    return {
        "seconds": seconds,
        "summary": summary.to_json(),
        "accepted": summary.report.accepted,
        "ok": summary.ok,
        "clock": clock,
        **_usage(),
    }


def sync(folder: Path, stick: Path) -> dict[str, Any]:
    """As the CLI's `stick sync DIR` on a stopped node."""
    from ssbsync.cli.nodejobs import offline
    from ssbsync.node import sticks
    from ssbsync.node.blobs import BlobStore

    with offline(folder) as (api, config):
        api.store.vector_clock()
        blobs = BlobStore(folder, config.blobs_max)
        started = time.perf_counter()
        summary = sticks.sync_stick(
            api, stick, network_key=config.network_key, blobs=blobs,
            now_ms=int(time.time() * 1000),
        )  # fmt: skip
        seconds = time.perf_counter() - started
        clock = api.store.vector_clock().to_json()
    return {
        "seconds": seconds,
        "took": summary.taken.accepted,
        "gave": summary.given.messages if summary.given else 0,
        "problems": summary.problems,
        "description": summary.to_json()["description"],
        "clock": clock,
        **_usage(),
    }


def publish(folder: Path, count: int) -> dict[str, Any]:
    """`count` posts on the node's own feed (not measured: setting up the round trip)."""
    from ssbsync.cli.nodejobs import offline

    with offline(folder) as (api, _config):
        for n in range(count):
            api.publish({"type": "post", "text": f"carried by stick, message {n + 1} of {count}"})
        return {"id": api.keys.id, "sequence": api.store.vector_clock().get(api.keys.id, 0)}


def main(argv: list[str]) -> dict[str, Any]:
    if len(argv) != 3:
        raise SystemExit(__doc__)
    verb, folder, other = argv[0], Path(argv[1]), argv[2]
    if verb == "export":
        return export(folder, Path(other))
    if verb == "import":
        return import_(folder, Path(other))
    if verb == "sync":
        return sync(folder, Path(other))
    if verb == "publish":
        return publish(folder, int(other))
    raise SystemExit(f"unknown operation {verb!r}\n{__doc__}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
