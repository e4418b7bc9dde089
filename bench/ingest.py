#!/usr/bin/env python3
"""Ingest benchmark: import synthetic feeds into ssbsync, and the same data into ssb-server 16.

    python bench/ingest.py [--messages 100000] [--authors 100] [--seed 0] [--serial]
                           [--no-ssb-server]

The dataset (signed messages from `ssbsync.core.synthetic`, one `JSON.stringify(value)` per
line) is generated once and cached in bench/.data/; generating it is not measured.

ssbsync: a fresh process (bench/ingest_child.py) streams the file line by line into
`NodeAPI.import_messages` (with `parallel=True` where the API has it, unless --serial) in a
fresh folder; the rate is messages / wall time of that call. Peak memory: the import
process's ru_maxrss, and the sum of the peak RSS of it and the worker processes it starts
(sampled from /proc every 50 ms), which the 150 MB target is checked against.

ssb-server: when node, npm and the reference peer are there (`$SSBSYNC_REFPEER`, default
../shared/refpeer next to the repository), a fresh server on a free loopback port receives
every line with `add` from bench/ssb_server_add.js (up to 50 calls in flight); the rates are
messages / time to the last `add` answered and to all indexes caught up, the peak is the
server's VmHWM.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".data"
ADD_SCRIPT = BENCH / "ssb_server_add.js"
CHILD = BENCH / "ingest_child.py"
REFPEER_ENV = "SSBSYNC_REFPEER"
DEFAULT_REFPEER = ROOT.parent / "shared" / "refpeer"

TARGET_RATE = 15_000  # messages/s
TARGET_PEAK_MB = 150
ADD_WINDOW = 50  # `add` calls in flight
RUN_TIMEOUT_S = 1800  # any one measured run
READY_TIMEOUT_S = 120  # ssb-server start-up
INSTALL_TIMEOUT_S = 600  # refpeer `npm ci` on first use
STOP_TIMEOUT_S = 15
SAMPLE_INTERVAL_S = 0.05  # memory of the ssbsync import processes


@dataclass(frozen=True, slots=True)
class SsbsyncRun:
    seconds: float
    cpu_seconds: float  # user + system of the import process and its workers
    parallel: bool  # `import_messages(..., parallel=True)` was used
    processes: int  # the import process, its workers and helpers
    main_peak_mb: float  # ru_maxrss of the import process
    all_peak_mb: float  # sum of the peak RSS of each of those processes

    def rate(self, messages: int) -> float:
        return messages / self.seconds


@dataclass(frozen=True, slots=True)
class ServerRun:
    add_seconds: float
    indexed_seconds: float
    peak_mb: float


class BenchError(Exception):
    """A run that did not do what it must (lost messages, a server that did not start, ...)."""


# -- dataset ---------------------------------------------------------------------------------


def _import_ssbsync() -> None:
    """Make `import ssbsync` work when run as `python bench/ingest.py` from a checkout."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _generator_digest() -> str:
    """Part of the cache key: a changed generator must not reuse an old dataset."""
    _import_ssbsync()
    from ssbsync.core import synthetic

    return hashlib.sha256(Path(synthetic.__file__).read_bytes()).hexdigest()[:12]


def dataset(authors: int, messages: int, seed: int) -> Path:
    """The JSON-lines file for these parameters, generated on first use."""
    name = f"synthetic-{authors}a-{messages}m-seed{seed}-{_generator_digest()}.jsonl"
    path = CACHE / name
    if path.exists():
        return path
    from ssbsync.core.synthetic import generate

    CACHE.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    started = time.perf_counter()
    with partial.open("w", encoding="utf-8", newline="\n") as out:
        for message in generate(authors, messages, seed):
            out.write(message.compact_json())
            out.write("\n")
    partial.replace(path)
    print(f"generated {path.name} in {time.perf_counter() - started:.1f} s", flush=True)
    return path


# -- ssbsync ---------------------------------------------------------------------------------


class TreeMemory:
    """Peak RSS of a process and its descendants (import workers), sampled from /proc."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.hwm_kib: dict[int, int] = {}  # last VmHWM seen for each process of the tree

    def sample(self) -> None:
        for pid in _descendants(self.root):
            hwm = _hwm_kib(pid)
            if hwm is not None:
                self.hwm_kib[pid] = hwm

    def watch(self, stop: threading.Event) -> None:
        while not stop.wait(SAMPLE_INTERVAL_S):
            self.sample()


def _hwm_kib(pid: int) -> int | None:
    """VmHWM of a process; None when it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def _descendants(root: int) -> list[int]:
    """`root` and every process under it (one scan of /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


@dataclass(frozen=True, slots=True)
class ChildRun:
    """A measured child process: its answer and the peak memory of its process tree."""

    result: dict[str, Any]  # the last line the child printed, as JSON
    processes: int  # the child, its workers and helpers
    main_peak_kib: int  # the child's own peak RSS
    all_peak_kib: int  # sum of the peak RSS of each of those processes


def run_measured(command: list[str], what: str, timeout: float = RUN_TIMEOUT_S) -> ChildRun:
    """Run a child that prints one JSON line (with its `peak_kib`, its ru_maxrss) last,
    sampling the peak RSS of it and every process under it; BenchError if it fails."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory, stop = TreeMemory(child.pid), threading.Event()
    watcher = threading.Thread(target=memory.watch, args=(stop,), daemon=True)
    watcher.start()
    try:
        out, err = child.communicate(timeout=timeout)
    finally:
        stop.set()
        child.kill()  # no-op when it has exited; stops it on a timeout
        watcher.join()
    if child.returncode != 0:
        raise BenchError(f"{what} failed ({child.returncode}):\n{err[-4000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    main_kib = max(int(result.get("peak_kib", 0)), memory.hwm_kib.get(child.pid, 0))
    others_kib = sum(kib for pid, kib in memory.hwm_kib.items() if pid != child.pid)
    return ChildRun(result, len(memory.hwm_kib), main_kib, main_kib + others_kib)


def run_ssbsync(data: Path, messages: int, parallel: bool) -> SsbsyncRun:
    command = [sys.executable, str(CHILD), str(data), "parallel" if parallel else "serial"]
    run = run_measured(command, "ssbsync import")
    result = run.result
    report = result["report"]
    if report["accepted"] != messages:
        raise BenchError(f"ssbsync accepted {report['accepted']} of {messages}: {report}")
    return SsbsyncRun(
        seconds=result["seconds"],
        cpu_seconds=result["cpu_seconds"],
        parallel=result["parallel"],
        processes=run.processes,
        main_peak_mb=run.main_peak_kib / 1024,
        all_peak_mb=run.all_peak_kib / 1024,
    )


# -- ssb-server ------------------------------------------------------------------------------


def refpeer_dir() -> Path:
    return Path(os.environ.get(REFPEER_ENV) or DEFAULT_REFPEER).resolve()


def ssb_server_missing() -> str | None:
    """Why the ssb-server part cannot run, or None when it can."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    refpeer = refpeer_dir()
    for script in ("install.sh", "start.sh"):
        if not (refpeer / script).is_file():
            return f"no reference peer at {refpeer} (set {REFPEER_ENV})"
    return None


def install_refpeer(refpeer: Path) -> Path:
    """node_modules of the installed reference peer (installs it on first use)."""
    done = subprocess.run(
        [str(refpeer / "install.sh")], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
    )
    if done.returncode != 0:
        raise BenchError(f"refpeer install.sh failed:\n{done.stderr[-4000:]}")
    binary = Path(done.stdout.strip().splitlines()[-1])
    return binary.parent.parent  # node_modules/.bin/ssb-server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(
    ready: Callable[[], bool], alive: Callable[[], bool], timeout: float, what: str = "ssb-server"
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive():
            raise BenchError(f"{what} exited while starting")
        if time.monotonic() > deadline:
            raise BenchError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.1)


@dataclass
class RefServer:
    """A reference ssb-server started by `ref_server()` on a free loopback port."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    node_modules: Path


@contextlib.contextmanager
def ref_server(prefix: str) -> Iterator[RefServer]:
    """Start ssb-server (refpeer's start.sh) in a temp folder, wait until it answers, and
    stop it by PID on the way out (callers may stop it first to read its log)."""
    refpeer = refpeer_dir()
    node_modules = install_refpeer(refpeer)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        peer, log_path = Path(tmp) / "peer", Path(tmp) / "server.log"
        port = free_port()
        with log_path.open("wb") as log:
            # start.sh execs node, so this PID is the server's own.
            server = subprocess.Popen(
                [str(refpeer / "start.sh"), str(peer), str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(
                lambda: (peer / "socket").exists() and _accepts(port),
                lambda: server.poll() is None,
                READY_TIMEOUT_S,
            )
            yield RefServer(peer, port, server, log_path, node_modules)
        except BenchError as err:
            raise BenchError(f"{err}\n-- ssb-server log --\n{_tail(log_path)}") from None
        finally:
            stop(server)


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MiB."""
    kib = _hwm_kib(pid)
    if kib is None:
        raise BenchError(f"no VmHWM for process {pid}")
    return kib / 1024


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def add_all(peer: Path, data: Path, node_modules: Path, messages: int) -> tuple[float, float]:
    """Run the Node.js client; (seconds to the last `add`, seconds to fully indexed)."""
    command = ["node", str(ADD_SCRIPT), str(peer), str(data), str(ADD_WINDOW), str(RUN_TIMEOUT_S)]
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S + 60
    )
    if done.returncode != 0:
        raise BenchError(f"ssb_server_add.js failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["messages"] != messages:
        raise BenchError(f"ssb_server_add.js sent {result['messages']} of {messages}")
    return result["add_seconds"], result["indexed_seconds"]


def run_ssb_server(data: Path, messages: int) -> ServerRun:
    with ref_server("ssbsync-bench-peer-") as server:
        add_seconds, indexed_seconds = add_all(server.folder, data, server.node_modules, messages)
        peak = peak_rss_mb(server.process.pid)
    return ServerRun(add_seconds, indexed_seconds, peak)


# -- report ----------------------------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    node = shutil.which("node")
    node_version = (
        subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if node
        else "none"
    )
    return (
        f"nproc {os.cpu_count()}, {cpu}, {ram_gib:.1f} GiB RAM, "
        f"Python {platform.python_version()}, node {node_version}, {platform.platform()}"
    )


def code_version() -> str:
    """The commit measured, and whether ssbsync/ had uncommitted changes (with their digest)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "ssbsync"], capture_output=True, text=True
    )
    text = f"code: {head.stdout.strip() or 'unknown commit'}"
    if dirty.stdout.strip():
        digest = hashlib.sha256()
        for source in sorted((ROOT / "ssbsync").rglob("*.py")):
            digest.update(source.read_bytes())
        text += f" + uncommitted changes in ssbsync/ (sources sha256 {digest.hexdigest()[:12]})"
    return text


def table_rows(
    messages: int, authors: int, ours: SsbsyncRun, theirs: ServerRun | None
) -> list[tuple[str, str]]:
    rate = ours.rate(messages)
    rows = [
        ("messages", f"{messages:,}"),
        ("authors", f"{authors:,}"),
        ("ssbsync msg/s", f"{rate:,.0f}  ({ours.seconds:.1f} s)"),
        ("ssbsync mode", "parallel=True" if ours.parallel else "serial (default)"),
        ("ssbsync CPU s (all processes)", f"{ours.cpu_seconds:.1f}"),
        ("ssbsync peak MB (import process)", f"{ours.main_peak_mb:.0f}"),
        (f"ssbsync peak MB (sum of {ours.processes} processes)", f"{ours.all_peak_mb:.0f}"),
    ]
    if theirs is None:
        return [*rows, ("ssb-server", "skipped")]
    add_rate = messages / theirs.add_seconds
    indexed_rate = messages / theirs.indexed_seconds
    return [
        *rows,
        ("ssb-server msg/s (add)", f"{add_rate:,.0f}  ({theirs.add_seconds:.1f} s)"),
        ("ssb-server msg/s (indexed)", f"{indexed_rate:,.0f}  ({theirs.indexed_seconds:.1f} s)"),
        ("ssb-server peak MB", f"{theirs.peak_mb:.0f}"),
        ("ratio ssbsync/ssb-server (add)", f"{rate / add_rate:.1f}x"),
        ("ratio ssbsync/ssb-server (indexed)", f"{rate / indexed_rate:.1f}x"),
    ]


def print_table(rows: list[tuple[str, str]]) -> None:
    table = Table(title="Ingest benchmark")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


def verdict(messages: int, ours: SsbsyncRun) -> str:
    rate_ok = ours.rate(messages) >= TARGET_RATE
    peak_ok = ours.all_peak_mb < TARGET_PEAK_MB
    return (
        f"target {TARGET_RATE:,} msg/s: {'met' if rate_ok else 'NOT met'}; "
        f"peak under {TARGET_PEAK_MB} MB: {'met' if peak_ok else 'NOT met'}"
    )


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--authors", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ssb-server", action="store_true", help="measure ssbsync only")
    parser.add_argument(
        "--serial", action="store_true", help="import without worker processes (parallel=False)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(machine(), flush=True)
    print(code_version(), flush=True)
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    data = dataset(args.authors, args.messages, args.seed)
    try:
        print(f"ssbsync: importing {args.messages:,} messages ...", flush=True)
        ours = run_ssbsync(data, args.messages, parallel=not args.serial)
        theirs = None
        missing = "--no-ssb-server given" if args.no_ssb_server else ssb_server_missing()
        if missing:
            print(f"ssb-server: skipped ({missing})", flush=True)
        else:
            print(f"ssb-server: adding {args.messages:,} messages ...", flush=True)
            theirs = run_ssb_server(data, args.messages)
    except (BenchError, subprocess.TimeoutExpired) as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    print_table(table_rows(args.messages, args.authors, ours, theirs))
    print(verdict(args.messages, ours))
    return 0


def print_run_header() -> None:
    """The machine, the code and the load, printed before a benchmark's figures."""
    print(machine(), flush=True)
    print(code_version(), flush=True)
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)


def show_table(title: str, headers: list[str], rows: list[list[str]], width: int = 160) -> None:
    """A rich table: the first column left-aligned, the figures right-aligned."""
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=width).print(table)


def show_markdown(headers: list[str], rows: list[list[str]]) -> None:
    """The same table as Markdown, for BENCHMARKS.md."""
    print("| " + " | ".join(headers) + " |")
    print("|---|" + "---:|" * (len(headers) - 1))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    sys.exit(main())
