#!/usr/bin/env python3
"""TUI benchmark (issue 7): time to first paint of the Feeds screen, and to open a
10,000-message feed, on a store of 100,000 messages from 100 authors. Target: < 1 s each.

    python bench/tui.py [--messages 100000] [--authors 100] [--big 10000] [--runs 3]

The store (synthetic signed messages: `authors - 1` feeds sharing `messages - big`, plus one
feed of `big` messages) is built once in bench/.data/ and reused; building it is not
measured. Each run starts a fresh app (80x24, headless) on the store opened directly, as
`ssbsync tui` does with no node running:

- first paint: from creating the backend (the store is opened then) until the Feeds table
  holds every feed;
- open feed: from Enter on the big feed until its first page of messages is on screen.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ssbsync.core import synthetic  # noqa: E402
from ssbsync.node.api import NodeAPI  # noqa: E402
from ssbsync.tui.app import SsbsyncApp  # noqa: E402
from ssbsync.tui.backend import DirectBackend  # noqa: E402
from ssbsync.tui.screens.feed import FeedScreen  # noqa: E402
from ssbsync.tui.screens.feeds import FeedsScreen  # noqa: E402

CACHE = ROOT / "bench" / ".data"
TARGET_S = 1.0
STEP_S = 0.005  # how often the screens are looked at while waiting
WAIT_LIMIT_S = 60


def build_store(folder: Path, messages: int, authors: int, big: int) -> str:
    """The store (built once); returns the big feed's id."""
    big_feed = synthetic.author_keys(1, seed=1)[0].id
    if (folder / "done").exists():
        return big_feed
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    with NodeAPI(folder) as api:
        shared = (m.value for m in synthetic.generate(authors - 1, messages - big, seed=0))
        api.import_messages(shared, parallel=True)
        api.import_messages((m.value for m in synthetic.generate(1, big, seed=1)), parallel=True)
        assert api.store.count_messages() == messages
    (folder / "done").write_text("ok")
    print(f"built the store in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return big_feed


async def _until(check: object, pilot: object) -> None:
    deadline = time.perf_counter() + WAIT_LIMIT_S
    while not check():  # type: ignore[operator]
        if time.perf_counter() > deadline:
            raise TimeoutError("the screen did not show in time")
        await pilot.pause(STEP_S)  # type: ignore[attr-defined]


async def one_run(folder: Path, big_feed: str) -> tuple[float, float]:
    started = time.perf_counter()
    backend = DirectBackend(NodeAPI(folder))
    app = SsbsyncApp(backend)
    try:
        async with app.run_test(size=(80, 24)) as pilot:

            def feeds_painted() -> bool:
                screen = app.screen
                return isinstance(screen, FeedsScreen) and bool(screen.shown)

            await _until(feeds_painted, pilot)
            first_paint = time.perf_counter() - started
            feeds = app.screen
            assert isinstance(feeds, FeedsScreen)
            row = next(i for i, f in enumerate(feeds.shown) if f.id == big_feed)
            feeds.query_one("DataTable").move_cursor(row=row)  # type: ignore[attr-defined]
            await pilot.pause()
            opening = time.perf_counter()
            feeds.open_current()

            def feed_painted() -> bool:
                screen = app.screen
                return isinstance(screen, FeedScreen) and bool(screen.views)

            await _until(feed_painted, pilot)
            open_feed = time.perf_counter() - opening
    finally:
        await backend.close()
    return first_paint, open_feed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--authors", type=int, default=100)
    parser.add_argument("--big", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    folder = CACHE / f"tui-{args.messages}-{args.authors}-{args.big}"
    big_feed = build_store(folder, args.messages, args.authors, args.big)
    results = [asyncio.run(one_run(folder, big_feed)) for _ in range(args.runs)]
    table = Table(title=f"TUI on {args.messages:,} messages, {args.authors} authors")
    for column in ("measure", "median s", "runs (s)", f"target < {TARGET_S:g} s"):
        table.add_column(column)
    for name, values in (
        ("first paint of Feeds", [r[0] for r in results]),
        (f"open a {args.big:,}-message feed", [r[1] for r in results]),
    ):
        median = statistics.median(values)
        runs = ", ".join(f"{v:.3f}" for v in values)
        table.add_row(name, f"{median:.3f}", runs, "met" if median < TARGET_S else "MISSED")
    Console().print(table)


if __name__ == "__main__":
    main()
