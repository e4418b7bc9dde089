"""The measured process of bench/ingest.py: one import into a fresh node, one JSON line out.

    python bench/ingest_child.py FILE parallel|serial

Kept apart from ingest.py so that worker processes spawned by the import (which re-import
the main module) load nothing of the benchmark's own (rich, ...).
"""

from __future__ import annotations

import inspect
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(data: Path, parallel: bool) -> dict[str, object]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from ssbsync.node.api import NodeAPI

    with (
        tempfile.TemporaryDirectory(prefix="ssbsync-bench-") as folder,
        NodeAPI(Path(folder)) as api,
        data.open(encoding="utf-8", newline="\n") as lines,
    ):
        # `parallel` (worker processes) is the bulk-import mode where the API offers it.
        parallel = parallel and "parallel" in inspect.signature(api.import_messages).parameters
        started = time.perf_counter()
        # One JSON text per line, read as the import goes.
        report = (
            api.import_messages(lines, parallel=True) if parallel else api.import_messages(lines)
        )
        seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)  # the exited worker processes
    return {
        "seconds": seconds,
        "parallel": parallel,
        "cpu_seconds": own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime,
        "peak_kib": own.ru_maxrss,
        "worker_peak_kib": workers.ru_maxrss,
        "report": report.to_json(),
    }


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]), sys.argv[2] == "parallel")))
