"""`python -m ssbsync ARGS...` with cProfile on in every thread, for bench/replication.py.

    python bench/profiled_node.py OUT.pstats --path DIR start ...

cProfile alone sees only the thread that enabled it, and a node does its store work in
`asyncio.to_thread` workers; so every new thread gets its own profiler (through
`threading.setprofile`), and when the node exits (SIGTERM: it closes and returns) the main
thread's and every thread's statistics are merged into OUT.pstats, and the main thread's
(the event loop) also go alone to OUT-main.pstats (read them with `python -m pstats`).
Worker processes, if any, are not profiled.
"""

from __future__ import annotations

import cProfile
import pstats
import runpy
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _start_thread_profile(frame: FrameType, event: str, arg: Any) -> None:
    """Installed in each new thread by threading.setprofile; swaps itself for a profiler."""
    sys.setprofile(None)
    profile = cProfile.Profile()
    with _lock:
        _profiles.append(profile)
    profile.enable()


def main() -> int:
    out, sys.argv = Path(sys.argv[1]), [sys.argv[0], *sys.argv[2:]]
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    threading.setprofile(_start_thread_profile)
    main_profile = cProfile.Profile()
    main_profile.enable()
    code: Any = 0
    try:
        runpy.run_module("ssbsync", run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
    finally:
        main_profile.disable()
        threading.setprofile(None)
        pstats.Stats(main_profile).dump_stats(out.with_name(out.stem + "-main.pstats"))
        stats = pstats.Stats(main_profile)
        with _lock:
            for profile in _profiles:
                stats.add(profile)
        stats.dump_stats(out)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
