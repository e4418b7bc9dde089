#!/usr/bin/env python3
"""Replication benchmark: one node replicates every feed of another over loopback, for the
four pairings of ssbsync and ssb-server 16, in one run.

    python bench/replication.py [--messages 100000] [--authors 100] [--seed 0]
                                [--pairs ssbsync:ssbsync,ssb-server:ssbsync,...]
                                [--timeout 300] [--check] [--trace] [--markdown]
                                [--profile DIR] [--destination-config JSON]

A pairing is SOURCE:DESTINATION. For each one, in this order:

1. **Source, filled before the clock starts.** The dataset (`ssbsync.core.synthetic`, cached in
   bench/.data/ as JSON lines, as bench/ingest.py makes it) goes into a fresh source: ssbsync
   gets `ssbsync import FILE` on its stopped store, then `ssbsync start`; ssb-server gets every
   line with `add` from bench/ssb_server_add.js until indexed, then `replicate.request` for
   each author (ssb-server only sends, over EBT, the feeds it wants itself; ssbsync replicates
   every feed it holds).
2. **Destination, fresh and empty,** is told to replicate the authors: `replicate.request` for
   each, which both implementations have (following the authors would need the destination to
   publish 100 contact messages and ssb-friends to recompute hops first; `replicate.request`
   is the same single call on both sides).
3. **The clock starts at the destination's `gossip.connect(SOURCE ADDRESS)`** (the destination
   dials, so it is the EBT caller, as in tests/interop/test_replication.py). The benchmark
   polls the destination's `getVectorClock` every 100 ms until every author is at its last
   sequence ("held"), then its `progress` until `indexes.current == indexes.target`
   ("indexed": ssb-server's flumedb views have caught up; ssbsync indexes in the commit that
   stores a message, so it reports current == target at once).
4. Both nodes are stopped by PID (SIGTERM, SIGKILL after 15 s), whatever happened. With
   `--check`, `ssbsync check` then runs on a stopped ssbsync destination's store (not timed).

All RPC calls go over each node's noauth unix socket as its owner, with ssbsync's own
`Client` (ssb-server's noauth socket speaks the same plain muxrpc). Peak memory: a sampler
thread reads VmRSS from /proc/<pid>/status for each node's process and all its descendants
every 100 ms from just before the connect until the end of the measurement, and keeps the
largest sum per node. CPU: user + system of each node's process tree (/proc/<pid>/stat) over
the same window. Every wait is bounded (`--timeout` per pairing); a pairing that fails is
reported with its reason and the run goes on with the next one.

With `--profile DIR`, every ssbsync *destination* runs under bench/profiled_node.py, which
profiles all of its threads with cProfile and writes DIR/<pairing>.pstats when it stops.
Profiling slows it down: figures from such a run are not the benchmark's.

`--trace` prints, about once a second, the messages the destination holds and both nodes'
RSS; the details also split the destination's CPU into its main thread, its other threads
and its child processes (/proc/<pid>/task). `--destination-config` merges a JSON object into
the config of ssbsync destinations (e.g. `{"replicate": {"legacy": false}}`), for
experiments. Node logs are kept as bench/.data/replication-<source>-to-<destination>-*.log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _entry in (str(ROOT), str(BENCH)):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)

import ingest  # noqa: E402 - bench/ingest.py: dataset, refpeer, machine and process helpers
from ingest import BenchError  # noqa: E402

from ssbsync.node.client import Client  # noqa: E402
from ssbsync.node.identity import read_secret  # noqa: E402

HOST = "127.0.0.1"
SSBSYNC, SSB_SERVER = "ssbsync", "ssb-server"
KINDS = (SSBSYNC, SSB_SERVER)
ALL_PAIRS = (
    (SSBSYNC, SSBSYNC),
    (SSB_SERVER, SSBSYNC),
    (SSBSYNC, SSB_SERVER),
    (SSB_SERVER, SSB_SERVER),
)
BASELINE = (SSB_SERVER, SSB_SERVER)  # the ratios are against this pairing
TARGET_SECONDS = 8.0  # ssbsync -> ssbsync, 100,000 messages
TARGET_PEAK_MB = 200  # each node
TARGET_MESSAGES = 100_000
POLL_S = 0.1  # getVectorClock / progress polling
SAMPLE_S = 0.1  # memory sampling
START_TIMEOUT_S = 60  # an ssbsync node's start-up
IMPORT_TIMEOUT_S = 600  # `ssbsync import` of the dataset
CHECK_TIMEOUT_S = 600  # `ssbsync check` afterwards
CALL_TIMEOUT_S = 60  # one RPC call
PROFILER = BENCH / "profiled_node.py"
PROFILED_STOP_TIMEOUT_S = 120  # a profiled node merges and writes its statistics on exit


# -- process trees ---------------------------------------------------------------------------


def _status_kib(pid: int, name: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return None  # a zombie has no VmRSS


def _cpu_seconds(pid: int) -> float:
    """User + system time of one live process (all its threads)."""
    return _cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def tree_rss_kib(root: int) -> int:
    return sum(_status_kib(pid, "VmRSS") or 0 for pid in ingest._descendants(root))


def tree_cpu_seconds(root: int) -> float:
    return sum(_cpu_seconds(pid) for pid in ingest._descendants(root))


def cpu_split(root: int) -> dict[str, float]:
    """CPU seconds so far of a node's main thread (ssbsync: the event loop), its other
    threads (ssbsync: store work in `asyncio.to_thread` and the ingest's own threads; the
    process total minus the main thread, so threads that have ended count too) and its child
    processes (ssbsync: ingest workers), from /proc/<pid>/stat and /proc/<pid>/task/<pid>/stat.
    """
    main = _cpu_seconds_of(Path(f"/proc/{root}/task/{root}/stat"))
    children = sum(_cpu_seconds(pid) for pid in ingest._descendants(root) if pid != root)
    return {
        "main thread": main,
        "other threads": _cpu_seconds(root) - main,
        "child processes": children,
    }


def _cpu_seconds_of(stat: Path) -> float:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakSampler:
    """Largest summed VmRSS of each process tree, sampled every SAMPLE_S in a thread."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.peak_kib = dict.fromkeys(roots, 0)
        self.processes = dict.fromkeys(roots, 0)  # most processes seen in each tree
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        for name, root in self.roots.items():
            pids = ingest._descendants(root)
            total = sum(_status_kib(pid, "VmRSS") or 0 for pid in pids)
            self.peak_kib[name] = max(self.peak_kib[name], total)
            self.processes[name] = max(self.processes[name], len(pids))

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def __enter__(self) -> PeakSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# -- nodes -----------------------------------------------------------------------------------


@dataclass
class RunningNode:
    kind: str
    role: str  # "source" | "destination"
    folder: Path
    process: subprocess.Popen[bytes]
    port: int
    id: str
    log_path: Path
    kept_log: Path | None = None  # the copy in bench/.data/, once the node has stopped

    @property
    def address(self) -> str:
        return f"net:{HOST}:{self.port}~shs:{self.id[1:].removesuffix('.ed25519')}"

    @property
    def socket(self) -> Path:
        return self.folder / "socket"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(
                f"{self.kind} {self.role} exited with {self.process.returncode}\n"
                f"-- its log --\n{ingest._tail(self.log_path)}"
            )


def _ssbsync_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SSBSYNC_PATH", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def ssbsync_import(folder: Path, data: Path, messages: int) -> float:
    """`ssbsync import FILE` on the stopped store; seconds taken."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ssbsync", "--path", str(folder), "import", str(data)],
        cwd=ROOT,
        env=_ssbsync_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_S,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0 or f"{messages} accepted" not in done.stdout:
        raise BenchError(
            f"ssbsync import failed (exit {done.returncode}): {done.stdout[-2000:]}"
            f"{done.stderr[-2000:]}"
        )
    return seconds


@contextlib.contextmanager
def ssbsync_node(
    tmp: Path,
    role: str,
    data: Path | None,
    messages: int,
    pairing: str,
    profile: Path | None = None,
    extra_config: dict[str, Any] | None = None,
) -> Iterator[RunningNode]:
    """A fresh ssbsync node on a free loopback port (filled from `data` first when given);
    stopped by PID on the way out."""
    folder, log_path = tmp / f"ssbsync-{role}", tmp / f"ssbsync-{role}.log"
    folder.mkdir()
    port = ingest.free_port()
    config = {**(extra_config or {}), "host": HOST, "port": port}
    (folder / "config").write_text(json.dumps(config))
    if data is not None:
        seconds = ssbsync_import(folder, data, messages)
        print(f"  ssbsync {role}: imported {messages:,} messages in {seconds:.1f} s", flush=True)
    runner = [str(PROFILER), str(profile)] if profile is not None else ["-m", "ssbsync"]
    command = [sys.executable, *runner, "--path", str(folder), "start", "--logging.level=info"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=_ssbsync_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    node = RunningNode(SSBSYNC, role, folder, process, port, "", log_path)
    try:
        try:
            ingest.wait_until(
                lambda: (
                    node.socket.exists() and "listening on" in log_path.read_text(errors="replace")
                ),
                lambda: process.poll() is None,
                START_TIMEOUT_S,
                f"ssbsync {role}",
            )
        except BenchError as err:
            raise BenchError(f"{err}\n-- ssbsync {role} log --\n{ingest._tail(log_path)}") from None
        node.id = read_secret(folder / "secret").id
        yield node
    finally:
        _stop(process, PROFILED_STOP_TIMEOUT_S if profile is not None else ingest.STOP_TIMEOUT_S)
        _keep_log(node, pairing)


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM by PID, then SIGKILL if it is still there after `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(ingest.STOP_TIMEOUT_S)


@contextlib.contextmanager
def ssb_server_node(
    role: str, data: Path | None, messages: int, heads: dict[str, int], pairing: str
) -> Iterator[RunningNode]:
    """A fresh ssb-server (bench/ingest.py's `ref_server`, stopped by PID on the way out);
    filled with `add` until indexed and made to want every author when `data` is given."""
    with ingest.ref_server(f"ssbsync-bench-repl-{role}-") as server:
        node = RunningNode(
            SSB_SERVER, role, server.folder, server.process, server.port, "", server.log_path
        )
        try:
            node.id = str(asyncio.run(_call_once(node.socket, "whoami"))["id"])
            if data is not None:
                add_s, indexed_s = ingest.add_all(
                    server.folder, data, server.node_modules, messages
                )
                print(
                    f"  ssb-server {role}: added {messages:,} messages in {add_s:.1f} s "
                    f"(indexed {indexed_s:.1f} s)",
                    flush=True,
                )
                asyncio.run(_request_all(node.socket, list(heads)))
            yield node
        finally:
            ingest.stop(server.process)
            _keep_log(node, pairing)


def _keep_log(node: RunningNode, pairing: str) -> None:
    """A copy of the node's log in bench/.data/ (its temporary folder goes away)."""
    keep = BENCH / ".data" / f"replication-{pairing.replace(':', '-to-')}-{node.role}.log"
    node.kept_log = keep
    with contextlib.suppress(OSError):
        keep.parent.mkdir(exist_ok=True)
        keep.write_bytes(node.log_path.read_bytes())


# -- RPC over the noauth socket -------------------------------------------------------------


async def _call(client: Client, name: str, *args: Any) -> Any:
    async with asyncio.timeout(CALL_TIMEOUT_S):
        return await client.session.call(name.split("."), *args)


async def _call_once(socket: Path, name: str, *args: Any) -> Any:
    async with await Client.connect_local(socket) as client:
        return await _call(client, name, *args)


async def _request_all(socket: Path, feeds: list[str]) -> None:
    async with await Client.connect_local(socket) as client:
        for feed in feeds:
            await _call(client, "replicate.request", feed)


def holds_all(clock: Any, heads: dict[str, int]) -> bool:
    return isinstance(clock, dict) and all(clock.get(f) == s for f, s in heads.items())


def indexes_current(progress: Any) -> bool:
    """ssb-db's progress: `indexes: {start, current, target}`, caught up when current ==
    target (ssb-server's flumedb views; ssbsync answers the same shape)."""
    indexes = progress.get("indexes") if isinstance(progress, dict) else None
    return isinstance(indexes, dict) and indexes.get("current") == indexes.get("target")


def held_count(clock: Any, heads: dict[str, int]) -> int:
    if not isinstance(clock, dict):
        return 0
    return sum(min(int(clock.get(f) or 0), s) for f, s in heads.items())


@dataclass
class Measured:
    held_s: float  # connect -> getVectorClock shows every author at its last sequence
    indexed_s: float  # connect -> that, and progress shows the indexes caught up
    source_peak_mb: float
    destination_peak_mb: float
    source_processes: int
    destination_processes: int
    source_cpu_s: float
    destination_cpu_s: float
    polls: int
    # (seconds since connect, messages held, source MB, destination MB), about once a second
    timeline: list[tuple[float, int, float, float]] = field(default_factory=list)
    destination_cpu_split: dict[str, float] = field(default_factory=dict)


async def _replicate(
    source: RunningNode, destination: RunningNode, heads: dict[str, int], timeout: float
) -> Measured:
    async with await Client.connect_local(destination.socket) as client:
        for feed in heads:
            await _call(client, "replicate.request", feed)
        roots = {"source": source.process.pid, "destination": destination.process.pid}
        cpu_before = {name: tree_cpu_seconds(pid) for name, pid in roots.items()}
        split_before = cpu_split(destination.process.pid)
        polls = 0
        timeline: list[tuple[float, int, float, float]] = []
        with PeakSampler(roots) as sampler:
            started = time.perf_counter()
            deadline = time.monotonic() + timeout
            await _call(client, "gossip.connect", source.address)
            clock: Any = None
            while not holds_all(clock, heads):
                if polls:
                    await asyncio.sleep(POLL_S)
                source.check_alive()
                destination.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"the destination held {held_count(clock, heads):,} of "
                        f"{sum(heads.values()):,} messages after {timeout:.0f} s"
                    )
                clock = await _call(client, "getVectorClock")
                polls += 1
                now = time.perf_counter() - started
                if not timeline or now - timeline[-1][0] >= 1.0:
                    rss = [tree_rss_kib(roots[n]) / 1024 for n in ("source", "destination")]
                    timeline.append((now, held_count(clock, heads), rss[0], rss[1]))
            held_s = time.perf_counter() - started
            progress: Any = None
            while not indexes_current(progress):
                if progress is not None:
                    await asyncio.sleep(POLL_S)
                destination.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"the destination's indexes were not caught up after {timeout:.0f} s: "
                        f"{json.dumps(progress)[:500]}"
                    )
                progress = await _call(client, "progress")
            indexed_s = time.perf_counter() - started
        cpu = {name: tree_cpu_seconds(pid) - cpu_before[name] for name, pid in roots.items()}
        split = cpu_split(destination.process.pid)
        split = {part: seconds - split_before[part] for part, seconds in split.items()}
    return Measured(
        held_s=held_s,
        indexed_s=indexed_s,
        source_peak_mb=sampler.peak_kib["source"] / 1024,
        destination_peak_mb=sampler.peak_kib["destination"] / 1024,
        source_processes=sampler.processes["source"],
        destination_processes=sampler.processes["destination"],
        source_cpu_s=cpu["source"],
        destination_cpu_s=cpu["destination"],
        polls=polls,
        timeline=timeline,
        destination_cpu_split=split,
    )


def ssbsync_check(folder: Path) -> str:
    """`ssbsync check` on a stopped store: '' when consistent, else what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "ssbsync", "--path", str(folder), "check"],
        cwd=ROOT,
        env=_ssbsync_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
    )
    if done.returncode == 0:
        return ""
    return f"exit {done.returncode}: {(done.stdout + done.stderr)[-2000:]}"


# -- one pairing -----------------------------------------------------------------------------


@dataclass
class Plan:
    data: Path
    messages: int
    authors: int
    heads: dict[str, int]
    timeout: float
    check: bool
    profile: Path | None
    destination_config: dict[str, Any] | None = None


@dataclass
class PairResult:
    source: str
    destination: str
    measured: Measured | None = None
    error: str = ""
    check: str = "not run"  # ssbsync destination: result of `ssbsync check`
    log_problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.source}:{self.destination}"


@contextlib.contextmanager
def _node(
    kind: str,
    role: str,
    tmp: Path,
    plan: Plan,
    pairing: str,
    filled: bool,
    profile: Path | None = None,
) -> Iterator[RunningNode]:
    data = plan.data if filled else None
    if kind == SSBSYNC:
        extra = plan.destination_config if role == "destination" else None
        with ssbsync_node(tmp, role, data, plan.messages, pairing, profile, extra) as node:
            yield node
    else:
        with ssb_server_node(role, data, plan.messages, plan.heads, pairing) as node:
            yield node


def run_pair(source_kind: str, destination_kind: str, plan: Plan) -> PairResult:
    result = PairResult(source_kind, destination_kind)
    print(f"{result.name}: preparing the source ...", flush=True)
    profile = None
    if plan.profile is not None and destination_kind == SSBSYNC:
        profile = plan.profile / f"{source_kind}-{destination_kind}.pstats"
    nodes: list[RunningNode] = []
    with tempfile.TemporaryDirectory(prefix="ssbsync-bench-repl-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            with (
                _node(source_kind, "source", tmp, plan, result.name, True) as source,
                _node(
                    destination_kind, "destination", tmp, plan, result.name, False, profile
                ) as destination,
            ):
                nodes = [source, destination]
                print(f"{result.name}: replicating ...", flush=True)
                result.measured = asyncio.run(
                    _replicate(source, destination, plan.heads, plan.timeout)
                )
                m = result.measured
                print(
                    f"{result.name}: held all in {m.held_s:.2f} s, indexed {m.indexed_s:.2f} s, "
                    f"peak {m.source_peak_mb:.0f} / {m.destination_peak_mb:.0f} MB "
                    f"(load average {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
        except (BenchError, OSError, TimeoutError, subprocess.TimeoutExpired) as err:
            result.error = str(err) or type(err).__name__
            print(f"{result.name}: FAILED: {result.error}", file=sys.stderr, flush=True)
        # Both nodes are stopped here (the context managers ended them by PID).
        for node in nodes:
            result.log_problems[f"{node.kind} {node.role}"] = _log_problems(node)
        if plan.check and result.measured is not None and destination_kind == SSBSYNC:
            print(f"{result.name}: ssbsync check on the destination ...", flush=True)
            problems = ssbsync_check(tmp / "ssbsync-destination")
            result.check = problems or "consistent"
    return result


def _log_problems(node: RunningNode) -> list[str]:
    """Lines of a stopped node's log that report a failure (bench/wire.py's rule)."""
    import wire  # bench/wire.py; imported here so that --help does not need it

    # ingest.ref_server's readiness probe is a TCP connection closed before the handshake,
    # which ssb-server logs once.
    probes = 1 if node.kind == SSB_SERVER else 0
    return wire.log_problems(node.kept_log or node.log_path, probes)


# -- report ----------------------------------------------------------------------------------


def _ratio(base: float, value: float) -> str:
    return f"{base / value:.2f}x" if value > 0 else "-"


def rows(results: list[PairResult], messages: int) -> list[list[str]]:
    baseline = next(
        (r.measured for r in results if (r.source, r.destination) == BASELINE and r.measured),
        None,
    )
    out = []
    for r in results:
        m = r.measured
        if m is None:
            out.append([r.name, "FAILED", "", "", "", "", "", "", "", "", ""])
            continue
        speed = _ratio(baseline.indexed_s, m.indexed_s) if baseline else "-"
        source_memory = _ratio(baseline.source_peak_mb, m.source_peak_mb) if baseline else "-"
        destination_memory = (
            _ratio(baseline.destination_peak_mb, m.destination_peak_mb) if baseline else "-"
        )
        out.append(
            [
                r.name,
                f"{m.held_s:.2f}",
                f"{m.indexed_s:.2f}",
                f"{messages / m.indexed_s:,.0f}",
                f"{m.source_peak_mb:.0f} ({m.source_processes})",
                f"{m.destination_peak_mb:.0f} ({m.destination_processes})",
                f"{m.source_cpu_s:.1f}",
                f"{m.destination_cpu_s:.1f}",
                speed,
                source_memory,
                destination_memory,
            ]
        )
    return out


HEADERS = [
    "source:destination",
    "held s",
    "indexed s",
    "msg/s (indexed)",
    "source peak MB (processes)",
    "destination peak MB (processes)",
    "source CPU s",
    "destination CPU s",
    "speed vs ssb-server:ssb-server",
    "source memory vs",
    "destination memory vs",
]


def print_table(results: list[PairResult], messages: int, authors: int) -> None:
    title = f"Replication: {messages:,} messages of {authors} authors"
    ingest.show_table(title, HEADERS, rows(results, messages), width=200)


def print_markdown(results: list[PairResult], messages: int) -> None:
    ingest.show_markdown(HEADERS, rows(results, messages))


def print_details(results: list[PairResult]) -> None:
    for r in results:
        if r.error:
            print(f"{r.name}: FAILED: {r.error}")
        if r.measured is not None:
            split = ", ".join(f"{p} {s:.1f}" for p, s in r.measured.destination_cpu_split.items())
            print(f"{r.name}: destination CPU s: {split}")
        if r.destination == SSBSYNC and r.measured is not None:
            print(f"{r.name}: ssbsync check on the destination: {r.check}")
        for node, problems in r.log_problems.items():
            if problems:
                print(f"{r.name}: {node} log: {len(problems)} warning/error lines, first:")
                for line in problems[:5]:
                    print(f"    {line[:300]}")


def print_timelines(results: list[PairResult]) -> None:
    for r in results:
        if r.measured is None:
            continue
        print(f"{r.name}: seconds, messages held, source MB, destination MB")
        for seconds, held, source_mb, destination_mb in r.measured.timeline:
            print(f"    {seconds:6.1f} {held:8,} {source_mb:6.0f} {destination_mb:6.0f}")


def verdict(results: list[PairResult], messages: int) -> str:
    ours = next((r for r in results if (r.source, r.destination) == (SSBSYNC, SSBSYNC)), None)
    if ours is None or ours.measured is None:
        return "ssbsync:ssbsync not measured: no verdict"
    m = ours.measured
    scaled = TARGET_SECONDS * messages / TARGET_MESSAGES
    fast = m.indexed_s <= scaled
    light = max(m.source_peak_mb, m.destination_peak_mb) < TARGET_PEAK_MB
    return (
        f"ssbsync:ssbsync target {scaled:.2f} s ({TARGET_MESSAGES / TARGET_SECONDS:,.0f} msg/s): "
        f"{'met' if fast else 'NOT met'} ({m.indexed_s:.2f} s, "
        f"{messages / m.indexed_s:,.0f} msg/s); each node under {TARGET_PEAK_MB} MB: "
        f"{'met' if light else 'NOT met'}"
    )


# -- main ------------------------------------------------------------------------------------


def _pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        source, _, destination = item.partition(":")
        if source not in KINDS or destination not in KINDS:
            raise argparse.ArgumentTypeError(
                f"{item!r}: a pairing is SOURCE:DESTINATION, each one of {', '.join(KINDS)}"
            )
        pairs.append((source, destination))
    if not pairs:
        raise argparse.ArgumentTypeError("no pairing given")
    return pairs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=TARGET_MESSAGES)
    parser.add_argument("--authors", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pairs",
        type=_pairs,
        default=list(ALL_PAIRS),
        help="comma-separated SOURCE:DESTINATION pairings (default: all four)",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per pairing")
    parser.add_argument(
        "--check", action="store_true", help="run `ssbsync check` on ssbsync destinations"
    )
    parser.add_argument(
        "--profile", type=Path, help="profile ssbsync destinations; .pstats files go here"
    )
    parser.add_argument(
        "--destination-config",
        type=json.loads,
        help="JSON merged into ssbsync destinations' config, "
        """e.g. '{"replicate": {"legacy": false}}'""",
    )
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument(
        "--trace", action="store_true", help="print messages held and RSS about once a second"
    )
    return parser.parse_args(argv)


def dataset_heads(data: Path) -> dict[str, int]:
    """Each author's last sequence in the dataset (messages are in feed order per author)."""
    heads: dict[str, int] = {}
    with data.open(encoding="utf-8", newline="\n") as lines:
        for line in lines:
            value = json.loads(line)
            heads[value["author"]] = value["sequence"]
    return heads


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ingest.print_run_header()
    wants_ssb_server = any(SSB_SERVER in pair for pair in args.pairs)
    missing = ingest.ssb_server_missing() if wants_ssb_server else None
    if missing:
        print(f"FAILED: ssb-server is needed and cannot run: {missing}", file=sys.stderr)
        return 1
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()
    data = ingest.dataset(args.authors, args.messages, args.seed)
    heads = dataset_heads(data)
    if sum(heads.values()) != args.messages or len(heads) != args.authors:
        print(f"FAILED: {data.name} is not {args.messages} messages of {args.authors} authors")
        return 1
    if args.destination_config is not None:
        if not isinstance(args.destination_config, dict):
            print("FAILED: --destination-config must be a JSON object", file=sys.stderr)
            return 1
        print(f"ssbsync destinations' config adds {json.dumps(args.destination_config)}")
    plan = Plan(
        data,
        args.messages,
        args.authors,
        heads,
        args.timeout,
        args.check,
        args.profile,
        args.destination_config,
    )
    results = [run_pair(source, destination, plan) for source, destination in args.pairs]
    print_table(results, args.messages, args.authors)
    if args.markdown:
        print_markdown(results, args.messages)
    print_details(results)
    if args.trace:
        print_timelines(results)
    print(verdict(results, args.messages))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
