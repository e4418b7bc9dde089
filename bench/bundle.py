#!/usr/bin/env python3
"""Sneakernet benchmark: bundle export, size and import, a big bundle's memory, a stick round trip.

    python bench/bundle.py [--messages 100000] [--authors 100] [--seed 0] [--big 1000000]
                           [--check] [--markdown]

The dataset is bench/ingest.py's (`ssbsync.core.synthetic`, JSON lines cached in bench/.data/).
Nothing that prepares a measurement is measured: the source node (`ssbsync import` of the
dataset into a node folder) is cached in bench/.data/ too, and so is the big bundle.

1. **Export:** a fresh process (bench/bundle_child.py) runs `export_bundle` of the whole source
   store into a file, as `ssbsync bundle export OUT` does; messages / wall time of that call
   (target >= 100,000 msg/s).
2. **Size:** the bundle's bytes against the same messages as JSON lines (each message's stored
   JSON, the bytes the bundle carries, and a newline; target <= 35 %).
3. **Import:** a fresh process imports that bundle into an empty node with `import_bundle`
   (parallel ingest, as `ssbsync bundle import`); messages / wall time of that call, and the
   peak memory of its process tree: the sum of the peak RSS of the process, its ingest
   workers and helpers, sampled from /proc (bench/ingest.py's measure). Against the ingest
   target (15,000 msg/s, 150 MB) and against bench/ingest.py's plain `import_messages` of the
   dataset's JSON lines in a fresh process in the same run.
4. **Big bundle** (`--big M`, 0 skips): M messages straight from the generator, written with
   `BundleWriter` feed by feed (no store; cached), imported into an empty node as in 3: its
   peak process-tree memory (target < 150 MB: memory flat whatever the bundle size) and rate.
5. **Stick round trip:** node A (a copy of the source node), node B (empty), a stick folder.
   `ssbsync stick init` (the CLI), A syncs, B syncs, B publishes 100 messages (not timed) and
   syncs, A syncs: each sync is `sticks.sync_stick` in a fresh process, timed around the
   call. A and B must end with the same vector clock and the expected messages moved;
   `--check` makes any difference fail the run (exit 1) and runs `ssbsync check` on B.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _entry in (str(ROOT), str(BENCH)):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)

import ingest  # noqa: E402 - bench/ingest.py: dataset, measured child runs, machine
import replication  # noqa: E402 - bench/replication.py: `ssbsync import`, `ssbsync check`
from ingest import BenchError, ChildRun  # noqa: E402

CHILD = BENCH / "bundle_child.py"
CACHE = ingest.CACHE
TARGET_EXPORT_RATE = 100_000  # messages/s
TARGET_SIZE_RATIO = 0.35  # of the JSON lines
TARGET_IMPORT_RATE = ingest.TARGET_RATE  # the ingest target
TARGET_PEAK_MB = ingest.TARGET_PEAK_MB
STICK_PUBLISHED = 100  # messages B publishes before its second sync
RUN_TIMEOUT_S = ingest.RUN_TIMEOUT_S
INIT_TIMEOUT_S = 60
BIG_WRITER_SEED = b"ssbsync-bench-bundle-writer"  # the big bundle's writer key


@dataclass
class Row:
    what: str
    figure: str
    target: str = ""
    met: bool | None = None  # None: no target

    def cells(self) -> list[str]:
        verdict = "—" if self.met is None else ("yes" if self.met else "NO")
        return [self.what, self.figure, self.target or "—", verdict]


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # what --check fails on

    def add(self, what: str, figure: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(what, figure, target, met))


# -- cached inputs ---------------------------------------------------------------------------


def _sources_digest(folder: Path) -> str:
    """Part of a cache key: changed code must not reuse an old artefact."""
    digest = hashlib.sha256()
    for source in sorted(folder.rglob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def source_node(data: Path, messages: int) -> Path:
    """A stopped node folder holding the dataset (`ssbsync import`), made on first use."""
    folder = CACHE / f"bundle-source-{data.stem}"
    if (folder / "secret").exists() and (folder / "done").exists():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    seconds = replication.ssbsync_import(partial, data, messages)
    (partial / "done").write_text(f"{messages}\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    print(f"source node: imported {messages:,} messages in {seconds:.1f} s", flush=True)
    return folder


def big_bundle(authors: int, messages: int, seed: int) -> Path:
    """A bundle of `messages` synthetic messages, feed by feed, made on first use.

    The generator interleaves feeds and a bundle holds each feed's messages together (its
    header lists the ranges first), so the generator's messages go to a JSON-lines file
    (bench/ingest.py's cached dataset) whose line offsets, per feed, give the writing order:
    memory stays at 8 bytes per message, whatever M.
    """
    code = f"{ingest._generator_digest()}-{_sources_digest(ROOT / 'ssbsync' / 'bundle')}"
    path = CACHE / f"big-{authors}a-{messages}m-seed{seed}-{code}.bundle"
    if path.exists():
        return path
    from ssbsync.bundle import BundleWriter, FeedRange, Header, network_fingerprint
    from ssbsync.core.clock import VectorClock
    from ssbsync.core.keys import Keypair
    from ssbsync.core.refs import FeedId
    from ssbsync.node import config as node_config

    data = ingest.dataset(authors, messages, seed)
    started = time.perf_counter()
    offsets: dict[FeedId, array[int]] = {}
    position = 0
    with data.open("rb") as lines:
        for line in lines:
            value = json.loads(line)
            feed = offsets.setdefault(FeedId(value["author"]), array("q"))
            if value["sequence"] != len(feed) + 1:
                raise BenchError(f"{data.name}: {value['author']} out of order")
            feed.append(position)
            position += len(line)
    with tempfile.TemporaryDirectory(prefix="ssbsync-bench-config-") as empty:
        network_key = node_config.load(Path(empty)).network_key  # the default network
    keys = Keypair.from_seed(hashlib.sha256(BIG_WRITER_SEED).digest())
    header = Header(
        network=network_fingerprint(network_key),
        writer=keys.id,
        created_ms=1_600_000_000_000,
        clock=VectorClock({feed: len(seqs) for feed, seqs in offsets.items()}),
        feeds=tuple(FeedRange(feed, 1, len(seqs)) for feed, seqs in offsets.items()),
    )
    partial = path.with_name(path.name + ".partial")
    try:
        with data.open("rb") as lines, partial.open("wb") as out:
            writer = BundleWriter(out, keys, header)
            for seqs in offsets.values():
                for offset in seqs:
                    lines.seek(offset)
                    writer.add_message(lines.readline().rstrip(b"\n"))
            writer.finish()
            out.flush()
            os.fsync(out.fileno())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    print(f"big bundle: wrote {path.name} ({path.stat().st_size:,} bytes) in {seconds:.1f} s")
    return path


# -- measured steps --------------------------------------------------------------------------


def child(*args: str | Path) -> ChildRun:
    command = [sys.executable, str(CHILD), *map(str, args)]
    return ingest.run_measured(command, f"bundle_child {args[0]}", RUN_TIMEOUT_S)


def _mb(kib: int) -> float:
    return kib / 1024


def _rate(messages: int, seconds: float) -> str:
    return f"{messages / seconds:,.0f} msg/s ({seconds:.2f} s)"


def _import(bundle: Path, folder: Path, expected: int) -> ChildRun:
    folder.mkdir()
    run = child("import", folder, bundle)
    result = run.result
    if result["accepted"] != expected or not result["ok"]:
        summary = json.dumps(result["summary"])[:2000]
        took = f"took {result['accepted']} of {expected}"
        raise BenchError(f"import of {bundle.name} {took}: {summary}")
    return run


def measure_bundle(source: Path, data: Path, messages: int, tmp: Path, results: Results) -> None:
    """Steps 1-3: export, size, import (and the plain JSON-lines import to compare)."""
    bundle = tmp / "export.bundle"
    print(f"export: {messages:,} messages ...", flush=True)
    exported = child("export", source, bundle).result
    if exported["messages"] != messages:
        raise BenchError(f"export wrote {exported['messages']} of {messages} messages")
    rate = messages / exported["seconds"]
    results.add(
        "export (export_bundle, whole store)",
        _rate(messages, exported["seconds"]),
        f">= {TARGET_EXPORT_RATE:,} msg/s",
        rate >= TARGET_EXPORT_RATE,
    )
    ratio = exported["bytes"] / exported["json_lines_bytes"]
    results.add(
        "bundle size vs JSON lines",
        f"{ratio:.1%} ({exported['bytes'] / 1e6:,.1f} MB / "
        f"{exported['json_lines_bytes'] / 1e6:,.1f} MB)",
        f"<= {TARGET_SIZE_RATIO:.0%}",
        ratio <= TARGET_SIZE_RATIO,
    )

    print("import: the bundle into an empty node ...", flush=True)
    imported = _import(bundle, tmp / "imported", messages)
    seconds = imported.result["seconds"]
    ours = messages / seconds
    results.add(
        "import (import_bundle, parallel)",
        _rate(messages, seconds),
        f">= {TARGET_IMPORT_RATE:,} msg/s",
        ours >= TARGET_IMPORT_RATE,
    )
    results.add(
        f"import peak MB (sum of {imported.processes} processes)",
        f"{_mb(imported.all_peak_kib):.1f} (import process {_mb(imported.main_peak_kib):.1f})",
        f"< {TARGET_PEAK_MB} MB",
        _mb(imported.all_peak_kib) < TARGET_PEAK_MB,
    )
    print("import: the same messages as JSON lines (import_messages) ...", flush=True)
    plain = ingest.run_ssbsync(data, messages, parallel=True)
    results.add(
        "import vs plain import_messages of JSON lines",
        f"{ours / plain.rate(messages):.2f}x (JSON lines {_rate(messages, plain.seconds)}, "
        f"{plain.all_peak_mb:.0f} MB)",
    )


def measure_big(authors: int, big: int, seed: int, tmp: Path, results: Results) -> None:
    """Step 4: memory importing a big bundle."""
    bundle = big_bundle(authors, big, seed)
    print(f"big import: {big:,} messages ({bundle.stat().st_size:,} bytes) ...", flush=True)
    run = _import(bundle, tmp / "big", big)
    peak = _mb(run.all_peak_kib)
    results.add(
        f"big import peak MB ({big:,} messages, sum of {run.processes} processes)",
        f"{peak:.1f} (import process {_mb(run.main_peak_kib):.1f})",
        f"< {TARGET_PEAK_MB} MB",
        peak < TARGET_PEAK_MB,
    )
    results.add(f"big import ({big:,} messages)", _rate(big, run.result["seconds"]))


def stick_init(node: Path, stick: Path) -> float:
    """`ssbsync stick init DIR` through the CLI; seconds (the whole command)."""
    stick.mkdir()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ssbsync", "--path", str(node), "stick", "init", str(stick)],
        cwd=ROOT,
        env=replication._ssbsync_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=INIT_TIMEOUT_S,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"stick init failed ({done.returncode}): {done.stdout}{done.stderr}")
    return seconds


def measure_stick(source: Path, messages: int, tmp: Path, check: bool, results: Results) -> None:
    """Step 5: A -> stick -> B, then B's new messages back to A."""
    a, b, stick = tmp / "node-a", tmp / "node-b", tmp / "stick"
    shutil.copytree(source, a)
    b.mkdir()
    print("stick: init, A syncs, B syncs, B publishes and syncs, A syncs ...", flush=True)
    init_s = stick_init(a, stick)
    results.add("stick init (CLI, whole command)", f"{init_s:.2f} s")
    steps = [
        ("stick sync A (gives all)", a, 0, messages),
        ("stick sync B (takes all)", b, messages, 0),
        (f"stick sync B (gives its {STICK_PUBLISHED} new)", b, 0, STICK_PUBLISHED),
        (f"stick sync A (takes B's {STICK_PUBLISHED})", a, STICK_PUBLISHED, 0),
    ]
    clocks: dict[str, dict[str, int]] = {}
    total = 0.0
    for n, (what, node, took, gave) in enumerate(steps):
        if n == 2:
            child("publish", b, str(STICK_PUBLISHED))
        run = child("sync", node, stick).result
        total += run["seconds"]
        moved = f"took {run['took']:,}, gave {run['gave']:,}"
        expected = (run["took"], run["gave"]) == (took, gave) and not run["problems"]
        if not expected:
            results.failures.append(
                f"{what}: {moved}, expected took {took:,}, gave {gave:,}; {run['problems']}"
            )
        results.add(
            what, f"{run['seconds']:.2f} s ({moved})", f"took {took:,}, gave {gave:,}", expected
        )
        clocks[node.name] = run["clock"]
    same = clocks[a.name] == clocks[b.name]
    results.add(
        "stick round trip: A and B same vector clock",
        f"{'yes' if same else 'NO'} ({len(clocks[a.name])} feeds; syncs {total:.2f} s in all)",
        "same",
        same,
    )
    if not same:
        differ = sorted(set(clocks[a.name].items()) ^ set(clocks[b.name].items()))[:5]
        results.failures.append(f"A and B end with different clocks, e.g. {differ}")
    if check:
        print("stick: ssbsync check on B ...", flush=True)
        problems = replication.ssbsync_check(b)
        results.add("ssbsync check on B", problems or "consistent", "consistent", not problems)
        if problems:
            results.failures.append(f"ssbsync check on B: {problems}")


# -- report ----------------------------------------------------------------------------------

HEADERS = ["what", "figure", "target", "met?"]


def print_table(results: Results, messages: int, authors: int) -> None:
    table = Table(title=f"Sneakernet: {messages:,} messages of {authors} authors")
    for header in HEADERS:
        table.add_column(header)
    for row in results.rows:
        table.add_row(*row.cells())
    Console(width=160).print(table)


def print_markdown(results: Results) -> None:
    print("| " + " | ".join(HEADERS) + " |")
    print("|---|---:|---|---|")
    for row in results.rows:
        print("| " + " | ".join(row.cells()) + " |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--authors", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--big", type=int, default=1_000_000, help="messages in the big bundle (0: skip it)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="fail (exit 1) unless the stick round trip ends with A and B alike; "
        "run `ssbsync check` on B",
    )
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.authors < 1 or args.big < 0:
        parser.error("--messages and --authors must be >= 1, --big >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ingest.print_run_header()
    results = Results()
    try:
        data = ingest.dataset(args.authors, args.messages, args.seed)
        source = source_node(data, args.messages)
        with tempfile.TemporaryDirectory(prefix="ssbsync-bench-bundle-") as tmp_name:
            tmp = Path(tmp_name)
            measure_bundle(source, data, args.messages, tmp, results)
            if args.big:
                measure_big(args.authors, args.big, args.seed, tmp, results)
            measure_stick(source, args.messages, tmp, args.check, results)
    except (BenchError, OSError, subprocess.TimeoutExpired) as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    print_table(results, args.messages, args.authors)
    if args.markdown:
        print_markdown(results)
    for failure in results.failures:
        print(f"check: {failure}", file=sys.stderr)
    return 1 if args.check and results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
