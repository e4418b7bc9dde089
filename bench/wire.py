#!/usr/bin/env python3
"""Wire benchmark: ssbsync serving vs ssb-server 16 serving, over loopback, read by one client.

    python bench/wire.py [--messages 10000] [--seed 0] [--calls 1000] [--repeats 3]
                         [--connections 200] [--hold 5] [--no-ssb-server] [--markdown]

One feed of `--messages` signed messages (`ssbsync.core.synthetic`, one author, cached in
bench/.data/ like bench/ingest.py's datasets) is loaded into a fresh ssbsync store (imported
before the node starts) and into a fresh ssb-server (`add` over its noauth socket with
bench/ssb_server_add.js, until indexed). Each server then runs alone on a free 127.0.0.1
port and gets the same measurements:

- **whoami round trip** — bench/wire_client.js (ssb-client 4.9 from the reference peer, the
  one client for both servers) connects with the server's own key (whoami is master-only on
  both) and makes `--calls` sequential calls after 100 untimed ones: median and p99. The
  client sets TCP_NODELAY; a short second run with the stock client (Nagle on, as
  ssb-client ships) shows what applications see.
- **createHistoryStream** — the same client connects as a stranger (anonymous permissions,
  like any replicating peer), reads `{id, seq: 1, keys: false}` once to check it (count and
  the sha256 of every `JSON.stringify(value)`, which must be the dataset file's), then
  `--repeats` timed reads on the same connection; the best is reported, as msg/s and MB/s of
  message JSON (10^6 bytes). Server CPU time (/proc/PID/stat, all threads) is read around it.
- **Concurrent connections** — this script (asyncio, ssbsync's own `Client`) opens
  `--connections` SHS connections at once, each as a different stranger key, and on each
  calls createHistoryStream({limit: 1}) (whoami is master-only); it keeps them all open for
  `--hold` seconds, checks the server still has them (ESTABLISHED sockets on its port in
  /proc/net/tcp) and that each still answers a second call, then closes them all. Reported:
  how many succeeded, the wall time to open them, the server's VmRSS before, while held and
  after, and its VmHWM.

Every process started here is stopped by PID in a `finally`; every wait has a timeout. The
ssb-server part is skipped, with the reason printed, when node, npm or the reference peer
(`$SSBSYNC_REFPEER`, default ../shared/refpeer) is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _entry in (str(ROOT), str(BENCH)):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)

import ingest  # noqa: E402 - bench/ingest.py: dataset, refpeer, machine and process helpers
from ingest import BenchError  # noqa: E402

from ssbsync.core.keys import Keypair  # noqa: E402
from ssbsync.node import config as node_config  # noqa: E402
from ssbsync.node.api import NodeAPI  # noqa: E402
from ssbsync.node.client import Client  # noqa: E402
from ssbsync.node.identity import read_secret  # noqa: E402

CLIENT_SCRIPT = BENCH / "wire_client.js"
HOST = "127.0.0.1"
TARGET_RATIO = 3.0  # ssbsync must serve history at least this many times faster
TARGET_CONNECTIONS = 200  # held at once on loopback
WHOAMI_WARMUP = 100
STOCK_CALLS = 100  # whoami calls with the stock (Nagle) client: ~40-90 ms each
STOCK_WARMUP = 5
START_TIMEOUT_S = 60  # ssbsync node start-up
CLIENT_TIMEOUT_S = 900  # any one wire_client.js run
CONNECT_TIMEOUT_S = 60  # one connection of the concurrent test (TCP, then handshake)
CALL_TIMEOUT_S = 60  # one call of the concurrent test
CLOSE_TIMEOUT_S = 60  # closing all connections
SETTLE_S = 2.0  # after closing, before the last RSS sample
IDLE_S = 3.0  # how long the server's idle CPU use is sampled before the measurements
MANIFEST = {"whoami": "async", "createHistoryStream": "source"}


@dataclass
class Whoami:
    calls: int
    median_ms: float
    p99_ms: float
    mean_ms: float
    connect_ms: float
    cpu_s: float  # server CPU during the run, its idle CPU subtracted


@dataclass
class History:
    messages: int
    best_s: float
    all_s: list[float]
    first_s: float
    cpu_s: float  # server CPU per timed read (idle CPU subtracted)
    client_cpu_s: float  # the client's CPU during the best read

    def rate(self) -> float:
        return self.messages / self.best_s


@dataclass
class Held:
    wanted: int
    opened: int
    open_s: float
    per_connection_ms: float  # median time from connect to the first answer
    established: int  # server-side ESTABLISHED sockets while held
    still_served: int  # connections that answered a second call after the hold
    close_s: float
    rss_before_mb: float
    rss_held_mb: float
    rss_after_mb: float
    hwm_mb: float
    client_cpu_s: float
    failures: Counter[str] = field(default_factory=Counter)


@dataclass
class ServerResult:
    name: str
    load_s: float
    whoami: Whoami | None  # None: no node to run the client with
    stock: Whoami | None
    history: History | None
    held: Held | None
    log_problems: list[str]  # filled in once the server has stopped
    idle_cpu: float  # s/s


# -- processes -------------------------------------------------------------------------------


def _status_kib(pid: int, field_name: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError as err:
        raise BenchError(f"process {pid} is gone ({err})") from None
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {field_name} for process {pid}")


def rss_mb(pid: int) -> float:
    return _status_kib(pid, "VmRSS") / 1024


def hwm_mb(pid: int) -> float:
    return _status_kib(pid, "VmHWM") / 1024


def cpu_seconds(pid: int) -> float:
    """User + system time of a process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def established(port: int) -> int:
    """ESTABLISHED TCP sockets whose local port is `port` (the server's side) on 127.0.0.1."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "01":
                    count += 1
    return count


# What ssb-server logs for the readiness probe (bench/ingest.py's `_accepts`: a TCP connection
# closed before the handshake). Exactly one is expected per run, and not counted.
PROBE_LINE = "stream ended with:0 but wanted:64"


def log_problems(path: Path, probes: int = 0) -> list[str]:
    """Lines of a server log that report a failure (WARNING/ERROR/Traceback, JS errors),
    leaving out the first `probes` readiness-probe lines."""
    if not path.exists():
        return []
    marks = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback", "Error:", "error:")
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if probes and PROBE_LINE in line:
            probes -= 1
        elif any(m in line for m in marks):
            found.append(line)
    return found


# -- the JS client ---------------------------------------------------------------------------


def run_client(
    node_modules: Path, mode: str, args: list[str], nagle: bool = False
) -> dict[str, Any]:
    env = {**os.environ, "NODE_PATH": str(node_modules), "WIRE_CLIENT_NAGLE": "1" if nagle else "0"}
    command = ["node", str(CLIENT_SCRIPT), mode, *args]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=CLIENT_TIMEOUT_S
    )
    if done.returncode != 0:
        raise BenchError(
            f"wire_client.js {mode} failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@dataclass(frozen=True)
class Target:
    """A running server to measure."""

    name: str
    pid: int
    port: int
    id: str  # @….ed25519
    secret: Path  # its own secret file (for the master-only whoami)
    network_key: bytes
    idle_cpu: float = 0.0  # CPU seconds per second the server uses with nothing to do

    @property
    def address(self) -> str:
        return f"net:{HOST}:{self.port}~shs:{self.id[1:].removesuffix('.ed25519')}"


def idle_cpu(pid: int) -> float:
    """The server's CPU use (s/s) while nobody talks to it, over IDLE_S."""
    before, started = cpu_seconds(pid), time.perf_counter()
    time.sleep(IDLE_S)
    return (cpu_seconds(pid) - before) / (time.perf_counter() - started)


def busy_cpu(target: Target, run: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], float]:
    """What `run` returns, and the server CPU it caused (idle use subtracted)."""
    before, started = cpu_seconds(target.pid), time.perf_counter()
    out = run()
    used = cpu_seconds(target.pid) - before
    return out, max(0.0, used - target.idle_cpu * (time.perf_counter() - started))


def measure_whoami(
    target: Target, node_modules: Path, calls: int, warmup: int, nagle: bool
) -> Whoami:
    args = [HOST, str(target.port), target.id, str(target.secret), str(calls), str(warmup)]
    out, cpu = busy_cpu(target, lambda: run_client(node_modules, "whoami", args, nagle=nagle))
    return Whoami(
        calls=out["calls"],
        median_ms=out["median_ms"],
        p99_ms=out["p99_ms"],
        mean_ms=out["mean_ms"],
        connect_ms=out["connect_ms"],
        cpu_s=cpu,
    )


def measure_history(
    target: Target, node_modules: Path, feed: str, messages: int, digest: str, repeats: int
) -> History:
    args = [HOST, str(target.port), target.id, feed, str(messages), str(repeats)]
    out, cpu = busy_cpu(target, lambda: run_client(node_modules, "history", args))
    if out["sha256"] != digest:
        raise BenchError(
            f"{target.name} served other bytes than the dataset: sha256 {out['sha256']}, "
            f"expected {digest}"
        )
    # The CPU also covers the untimed checking read: scale to the timed ones.
    timed = sum(out["seconds"])
    share = timed / (timed + out["first_seconds"])
    best = min(range(repeats), key=lambda i: out["seconds"][i])
    return History(
        messages=out["messages"],
        best_s=out["seconds"][best],
        all_s=out["seconds"],
        first_s=out["first_seconds"],
        cpu_s=cpu * share / repeats,
        client_cpu_s=out["client_cpu_seconds"][best],
    )


# -- many connections ------------------------------------------------------------------------


async def _history_one(client: Client, feed: str) -> None:
    async def first() -> list[Any]:
        return [
            x
            async for x in client.createHistoryStream(
                {"id": feed, "seq": 1, "limit": 1, "keys": False}
            )
        ]

    items = await asyncio.wait_for(first(), CALL_TIMEOUT_S)
    if len(items) != 1 or not isinstance(items[0], dict) or items[0].get("sequence") != 1:
        raise BenchError(f"createHistoryStream limit 1 answered {str(items)[:200]}")


async def _hold(target: Target, feed: str, count: int, hold_s: float) -> Held:
    rss_before = rss_mb(target.pid)
    keys = [Keypair.from_seed(os.urandom(32)) for _ in range(count)]
    cpu_before = time.process_time()

    async def one(key: Keypair) -> tuple[Client, float]:
        started = time.perf_counter()
        client = await Client.connect(
            target.address, key, target.network_key, timeout=CONNECT_TIMEOUT_S, manifest=MANIFEST
        )
        try:
            await _history_one(client, feed)
        except BaseException:
            with contextlib.suppress(Exception):
                await client.close()
            raise
        return client, time.perf_counter() - started

    started = time.perf_counter()
    results = await asyncio.gather(*(one(k) for k in keys), return_exceptions=True)
    open_s = time.perf_counter() - started
    clients = [r[0] for r in results if isinstance(r, tuple)]
    times = [r[1] for r in results if isinstance(r, tuple)]
    failures = Counter(
        f"{type(r).__name__}: {str(r)[:120]}" for r in results if isinstance(r, BaseException)
    )
    try:
        # Hold them; sample the server's memory along the way.
        rss_held = rss_mb(target.pid)
        deadline = time.monotonic() + hold_s
        while time.monotonic() < deadline:
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            rss_held = max(rss_held, rss_mb(target.pid))
        held_sockets = established(target.port)
        again = await asyncio.gather(
            *(_history_one(c, feed) for c in clients), return_exceptions=True
        )
        still = sum(1 for r in again if not isinstance(r, BaseException))
        for r in again:
            if isinstance(r, BaseException):
                failures[f"after the hold: {type(r).__name__}: {str(r)[:120]}"] += 1
    finally:
        closing = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(c.close() for c in clients), return_exceptions=True),
                CLOSE_TIMEOUT_S,
            )
        close_s = time.perf_counter() - closing
    client_cpu = time.process_time() - cpu_before
    await asyncio.sleep(SETTLE_S)
    return Held(
        wanted=count,
        opened=len(clients),
        open_s=open_s,
        per_connection_ms=statistics.median(times) * 1000 if times else float("nan"),
        established=held_sockets,
        still_served=still,
        close_s=close_s,
        rss_before_mb=rss_before,
        rss_held_mb=rss_held,
        rss_after_mb=rss_mb(target.pid),
        hwm_mb=hwm_mb(target.pid),
        client_cpu_s=client_cpu,
        failures=failures,
    )


def measure_held(target: Target, feed: str, count: int, hold_s: float) -> Held:
    return asyncio.run(_hold(target, feed, count, hold_s))


# -- the servers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    data: Path
    messages: int
    feed: str
    digest: str
    calls: int
    repeats: int
    connections: int
    hold_s: float


def measure(target: Target, node_modules: Path | None, plan: Plan, load_s: float) -> ServerResult:
    whoami = stock = history = None
    target = dataclasses.replace(target, idle_cpu=idle_cpu(target.pid))
    if node_modules is None:
        print(f"  {target.name}: whoami and history skipped (no node/refpeer for the client)")
    else:
        print(f"  {target.name}: whoami x {plan.calls} ...", flush=True)
        whoami = measure_whoami(target, node_modules, plan.calls, WHOAMI_WARMUP, nagle=False)
        print(
            f"  {target.name}: whoami x {STOCK_CALLS} with the stock client (Nagle) ...", flush=True
        )
        stock = measure_whoami(target, node_modules, STOCK_CALLS, STOCK_WARMUP, nagle=True)
        print(f"  {target.name}: createHistoryStream x {plan.repeats + 1} ...", flush=True)
        history = measure_history(
            target, node_modules, plan.feed, plan.messages, plan.digest, plan.repeats
        )
    held = None
    if plan.connections > 0:
        print(
            f"  {target.name}: {plan.connections} connections held {plan.hold_s:g} s ...",
            flush=True,
        )
        held = measure_held(target, plan.feed, plan.connections, plan.hold_s)
    return ServerResult(target.name, load_s, whoami, stock, history, held, [], target.idle_cpu)


def start_ssbsync(folder: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("SSBSYNC_PATH", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ssbsync",
                "--path",
                str(folder),
                "start",
                "--logging.level=info",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _finish(process: subprocess.Popen[bytes], name: str, log_path: Path, probes: int) -> list[str]:
    """Stop a server by its PID; keep a copy of its log in bench/.data/; its problem lines."""
    ingest.stop(process)
    problems = log_problems(log_path, probes)
    if process.returncode not in (0, -15):  # a clean exit, or the SIGTERM it was sent
        problems.append(f"{name} exited with {process.returncode}")
    keep = BENCH / ".data" / f"wire-{name}-last.log"
    with contextlib.suppress(OSError):
        keep.write_bytes(log_path.read_bytes())
    if problems:
        print(f"  {name} log: {len(problems)} warning/error lines (copy in {keep})", flush=True)
    return problems


def run_ssbsync(plan: Plan, node_modules: Path | None) -> ServerResult:
    with tempfile.TemporaryDirectory(prefix="ssbsync-bench-wire-") as tmp:
        folder, log_path = Path(tmp) / "node", Path(tmp) / "node.log"
        folder.mkdir()
        port = ingest.free_port()
        (folder / "config").write_text(json.dumps({"host": HOST, "port": port}))
        started = time.perf_counter()
        with NodeAPI(folder) as api, plan.data.open(encoding="utf-8", newline="\n") as lines:
            report = api.import_messages(lines, parallel=False)
        load_s = time.perf_counter() - started
        if report.accepted != plan.messages:
            raise BenchError(
                f"ssbsync imported {report.accepted} of {plan.messages}: {report.to_json()}"
            )
        node = start_ssbsync(folder, port, log_path)
        try:
            ingest.wait_until(
                lambda: "listening on" in log_path.read_text(errors="replace"),
                lambda: node.poll() is None,
                START_TIMEOUT_S,
                "ssbsync",
            )
            target = Target(
                "ssbsync",
                node.pid,
                port,
                read_secret(folder / "secret").id,
                folder / "secret",
                node_config.load(folder).network_key,
            )
            result = measure(target, node_modules, plan, load_s)
        except BenchError as err:
            raise BenchError(f"{err}\n-- ssbsync log --\n{ingest._tail(log_path)}") from None
        finally:
            problems = _finish(node, "ssbsync", log_path, probes=0)
        result.log_problems = problems  # including what it logged while stopping
        return result


def run_ssb_server(plan: Plan) -> ServerResult:
    problems: list[str] = []
    with ingest.ref_server("ssbsync-bench-wire-peer-") as server:
        try:
            node_modules = server.node_modules
            _, indexed_s = ingest.add_all(server.folder, plan.data, node_modules, plan.messages)
            secret = server.folder / "secret"
            target = Target(
                "ssb-server",
                server.process.pid,
                server.port,
                _ssb_keys_id(secret),
                secret,
                base64.b64decode(node_config.MAIN_CAPS_SHS),  # start.sh keeps the main caps
            )
            result = measure(target, node_modules, plan, indexed_s)
        finally:
            problems = _finish(server.process, "ssb-server", server.log_path, probes=1)
    result.log_problems = problems
    return result


def _ssb_keys_id(secret: Path) -> str:
    """The id in an ssb-keys secret file (JSON after comment lines)."""
    text = "\n".join(line for line in secret.read_text().splitlines() if not line.startswith("#"))
    return str(json.loads(text)["id"])


# -- report ----------------------------------------------------------------------------------


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}×" if theirs > 0 else "—"


Row = tuple[str, str, str, str]


def table_rows(plan: Plan, ours: ServerResult, theirs: ServerResult | None) -> Iterator[Row]:
    """(measure, ssbsync, ssb-server, ssbsync's advantage) rows; "skipped" where not measured."""
    mb = plan.data.stat().st_size / 1e6

    def row(
        name: str,
        part: Callable[[ServerResult], Any],
        fmt: Callable[[Any], str],
        advantage: Callable[[Any, Any], str] | None = None,
    ) -> Row:
        a = part(ours)
        b = part(theirs) if theirs is not None else None
        return (
            name,
            fmt(a) if a is not None else "skipped",
            fmt(b) if b is not None else "skipped",
            advantage(a, b) if advantage and a is not None and b is not None else "",
        )

    def whoami(r: ServerResult) -> Whoami | None:
        return r.whoami

    def stock(r: ServerResult) -> Whoami | None:
        return r.stock

    def history(r: ServerResult) -> History | None:
        return r.history

    def held(r: ServerResult) -> Held | None:
        return r.held

    yield row(
        "messages in the feed", lambda r: r, lambda r: f"{plan.messages:,} ({mb:.2f} MB JSON)"
    )
    yield row("load into the store (s)", lambda r: r, lambda r: f"{r.load_s:.1f}")
    yield row(
        f"whoami median ms ({plan.calls:,} sequential calls)",
        whoami,
        lambda w: f"{w.median_ms:.3f}",
        lambda a, b: _ratio(b.median_ms, a.median_ms),
    )
    yield row(
        "whoami p99 ms",
        whoami,
        lambda w: f"{w.p99_ms:.3f}",
        lambda a, b: _ratio(b.p99_ms, a.p99_ms),
    )
    yield row(
        "server CPU µs per whoami (idle use subtracted)",
        whoami,
        lambda w: f"{w.cpu_s / (w.calls + WHOAMI_WARMUP) * 1e6:.0f}",
        lambda a, b: _ratio(b.cpu_s, a.cpu_s),
    )
    yield row(
        f"whoami median ms, stock ssb-client (Nagle on, {STOCK_CALLS} calls)",
        stock,
        lambda w: f"{w.median_ms:.1f}",
        lambda a, b: _ratio(b.median_ms, a.median_ms),
    )
    yield row("SHS connect + setup ms (one connection)", whoami, lambda w: f"{w.connect_ms:.1f}")
    yield row(
        f"createHistoryStream msg/s (best of {plan.repeats})",
        history,
        lambda h: f"{h.rate():,.0f} ({h.best_s:.3f} s)",
        lambda a, b: _ratio(a.rate(), b.rate()),
    )
    yield row("createHistoryStream MB/s (message JSON)", history, lambda h: f"{mb / h.best_s:.1f}")
    yield row(
        "createHistoryStream runs (s), then the check read",
        history,
        lambda h: " / ".join(f"{x:.3f}" for x in h.all_s) + f"; {h.first_s:.3f}",
    )
    yield row(
        "server CPU s per full read (µs per message)",
        history,
        lambda h: f"{h.cpu_s:.2f} ({h.cpu_s / plan.messages * 1e6:.0f})",
        lambda a, b: _ratio(b.cpu_s, a.cpu_s),
    )
    yield row("client CPU s in the best read", history, lambda h: f"{h.client_cpu_s:.2f}")
    yield row("server idle CPU %", lambda r: r, lambda r: f"{r.idle_cpu * 100:.1f}")
    n, hold = plan.connections, plan.hold_s
    if n > 0:
        yield row(
            f"{n} connections: opened, first call answered",
            held,
            lambda x: f"{x.opened}/{x.wanted}",
        )
        yield row(
            "  wall time to open all (s)",
            held,
            lambda x: f"{x.open_s:.2f}",
            lambda a, b: _ratio(b.open_s, a.open_s),
        )
        yield row(
            "  median per connection, connect to first answer (ms)",
            held,
            lambda x: f"{x.per_connection_ms:.0f}",
        )
        yield row(
            f"  after {hold:g} s held: ESTABLISHED at server; answered again",
            held,
            lambda x: f"{x.established}; {x.still_served}",
        )
        yield row("  close all (s)", held, lambda x: f"{x.close_s:.2f}")
        yield row(
            "  server VmRSS MB: before; held; after",
            held,
            lambda x: f"{x.rss_before_mb:.0f}; {x.rss_held_mb:.0f}; {x.rss_after_mb:.0f}",
        )
        yield row(
            "  server RSS per held connection (KiB)",
            held,
            lambda x: f"{(x.rss_held_mb - x.rss_before_mb) * 1024 / max(1, x.opened):.0f}",
        )
        yield row("  server VmHWM MB (whole run)", held, lambda x: f"{x.hwm_mb:.0f}")
        yield row(
            "  client CPU s (Python, all connections)", held, lambda x: f"{x.client_cpu_s:.1f}"
        )
    yield row("server log: warning/error lines", lambda r: r, lambda r: str(len(r.log_problems)))


def print_table(rows: list[Row]) -> None:
    table = Table(title="Wire benchmark (loopback)")
    for name, justify in (
        ("measure", "left"),
        ("ssbsync", "right"),
        ("ssb-server 16", "right"),
        ("ssbsync advantage", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def markdown(rows: list[Row]) -> str:
    lines = ["| measure | ssbsync | ssb-server 16 | ssbsync advantage |", "|---|---:|---:|---:|"]
    lines += [f"| {' | '.join(cell.replace('|', '/') for cell in row)} |" for row in rows]
    return "\n".join(lines)


def verdict(plan: Plan, ours: ServerResult, theirs: ServerResult | None) -> list[str]:
    lines = []
    if theirs is not None and ours.history is not None and theirs.history is not None:
        ratio = ours.history.rate() / theirs.history.rate()
        met = "met" if ratio >= TARGET_RATIO else "NOT met"
        lines.append(f"history: ssbsync/ssb-server = {ratio:.2f}x; target {TARGET_RATIO:g}x: {met}")
    if ours.held is not None:
        h = ours.held
        ok = h.opened == h.wanted and h.still_served == h.wanted and h.established >= h.wanted
        target = (
            f"target {TARGET_CONNECTIONS}: {'met' if ok else 'NOT met'}; "
            if (h.wanted >= TARGET_CONNECTIONS)
            else ""
        )
        lines.append(
            f"{h.wanted} concurrent connections to ssbsync: {target}"
            f"({h.opened} opened, {h.established} established while held, "
            f"{h.still_served} answered again)"
        )
        for failure, n in ours.held.failures.most_common(5):
            lines.append(f"  ssbsync connection failure x{n}: {failure}")
    if theirs is not None and theirs.held is not None:
        for failure, n in theirs.held.failures.most_common(5):
            lines.append(f"  ssb-server connection failure x{n}: {failure}")
    for result in (ours, theirs):
        if result and result.log_problems:
            lines.append(
                f"{result.name} log: {len(result.log_problems)} warning/error lines, e.g.:"
            )
            lines += [f"  {line[:300]}" for line in result.log_problems[:5]]
    return lines


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages in the one feed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calls", type=int, default=1000, help="timed whoami calls")
    parser.add_argument("--repeats", type=int, default=3, help="timed history reads")
    parser.add_argument("--connections", type=int, default=200, help="held at once (0: skip)")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds to hold them")
    parser.add_argument("--no-ssb-server", action="store_true", help="measure ssbsync only")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ingest.print_run_header()
    data = ingest.dataset(1, args.messages, args.seed)
    with data.open(encoding="utf-8") as first:
        feed = json.loads(first.readline())["author"]
    plan = Plan(
        data=data,
        messages=args.messages,
        feed=feed,
        digest=hashlib.sha256(data.read_bytes()).hexdigest(),
        calls=args.calls,
        repeats=args.repeats,
        connections=args.connections,
        hold_s=args.hold,
    )
    missing = "--no-ssb-server given" if args.no_ssb_server else ingest.ssb_server_missing()
    node_modules: Path | None = None
    try:
        if ingest.ssb_server_missing() is None:
            node_modules = ingest.install_refpeer(ingest.refpeer_dir())
        print(f"ssbsync: {args.messages:,} messages of {feed} ...", flush=True)
        ours = run_ssbsync(plan, node_modules)
        theirs = None
        if missing:
            print(f"ssb-server: skipped ({missing})", flush=True)
        else:
            print(f"ssb-server: {args.messages:,} messages ...", flush=True)
            theirs = run_ssb_server(plan)
    except (BenchError, subprocess.TimeoutExpired) as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    rows = list(table_rows(plan, ours, theirs))
    print_table(rows)
    if args.markdown:
        print(markdown(rows))
    for line in verdict(plan, ours, theirs):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
