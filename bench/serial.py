#!/usr/bin/env python3
"""Serial benchmark: two ssbsync nodes replicate over a serial line (a pty link), at a few
line rates, in one run.

    python bench/serial.py [--count 2000] [--authors 10] [--seed 0]
                           [--bauds 0,1000000,115200] [--timeout 600] [--markdown]

The line is tests/transport/ptylink.py: two pty pairs and a relay in this process copying
between their masters; each node's device is a symlink to its pty's slave. `--bauds` lists
the line rates, bits/s with 10 bits per byte (8N1), enforced by the relay; 0 is "as fast as
the ptys and the relay go". For each rate, in this order:

1. **Source, filled before the clock starts:** a fresh node gets the dataset
   (`ssbsync.core.synthetic`, cached in bench/.data/ as JSON lines, as bench/ingest.py makes
   it) by `ssbsync import FILE` on its stopped store, then `ssbsync start`, answering on its
   end of the line (`connections.incoming.serial`) and listening on no TCP port.
2. **Destination,** fresh and empty, dials its end (`connections.outgoing.serial` with the
   source's key), and is told `replicate.request` for each author over its local socket. The
   line is down meanwhile: both devices are missing, and both nodes look for them every second.
3. **The line comes up** (the relay makes the ptys and the symlinks) but carries nothing yet:
   "devices s" is the time until both nodes have found and opened their device (their
   `status`: the source "waiting for a dialler", the destination "dialling"; the nodes look
   for a missing device once a second). **The clock starts when the relay starts carrying**,
   so it includes the link preamble, the secret handshake and the start of EBT, and stops
   when the destination's `getVectorClock` has every author at its last sequence (polled
   every 50 ms over a local-socket client).
4. Both nodes are stopped by PID (SIGTERM, SIGKILL after 15 s), whatever happened.

Payload bytes are the messages' JSON as stored (the dataset's lines, without newlines); line
bytes are everything the relay carried both ways, all of it while the clock ran (preamble,
handshake, box-stream framing, RPC headers, EBT notes, the messages as JSON with their key),
so line/payload is the protocol's overhead, and line bytes/s against the line rate is how
full the line was. The relay, both nodes and this script share the machine's cores. Every
wait is bounded (`--timeout` per rate); a rate that fails is reported with its reason and the
run goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _entry in (str(ROOT), str(BENCH)):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)

import ingest  # noqa: E402 - bench/ingest.py: dataset, machine and process helpers
import replication  # noqa: E402 - bench/replication.py: nodes, RPC over the local socket
from ingest import BenchError  # noqa: E402

from ssbsync.node.client import Client  # noqa: E402
from tests.transport.ptylink import PtyLink, serial_only_config  # noqa: E402

POLL_S = 0.05
OPENED = ("waiting for a dialler", "dialling")  # both nodes have their device open
Nodes = tuple[replication.RunningNode, replication.RunningNode]


@dataclass
class Measured:
    devices_s: float
    transfer_s: float
    line_bytes: int


@dataclass
class RateResult:
    baud: int
    measured: Measured | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.baud:,} bit/s" if self.baud else "unlimited (pty)"


@dataclass(frozen=True)
class Plan:
    data: Path
    count: int
    heads: dict[str, int]
    payload_bytes: int
    timeout: float


async def _link_state(client: Client) -> str | None:
    status = await replication._call(client, "status")
    links = status.get("serial") if isinstance(status, dict) else None
    return links[0].get("state") if links else None


async def _measure(line: PtyLink, nodes: Nodes, plan: Plan) -> Measured:
    source, destination = nodes
    await replication._request_all(destination.socket, list(plan.heads))
    async with (
        await Client.connect_local(source.socket) as answerer,
        await Client.connect_local(destination.socket) as dialler,
        asyncio.timeout(plan.timeout),
    ):
        line.connect(flowing=False)
        up_at = time.perf_counter()
        while (await _link_state(answerer), await _link_state(dialler)) != OPENED:
            source.check_alive()
            destination.check_alive()
            await asyncio.sleep(POLL_S)
        line.resume()
        started = time.perf_counter()
        while not replication.holds_all(
            await replication._call(dialler, "getVectorClock"), plan.heads
        ):
            destination.check_alive()
            await asyncio.sleep(POLL_S)
        ended = time.perf_counter()
    return Measured(started - up_at, ended - started, sum(line.relayed.values()))


def run_rate(baud: int, plan: Plan) -> RateResult:
    result = RateResult(baud)
    print(f"{result.name}: starting the nodes ...", flush=True)
    pairing = f"serial-{baud}"
    try:
        with tempfile.TemporaryDirectory(prefix="ssbsync-bench-serial-") as tmp:
            folder = Path(tmp)
            (folder / "line").mkdir()
            line = PtyLink(folder / "line", baud=baud or None)
            answer = serial_only_config([{"device": str(line.a)}], [])
            with replication.ssbsync_node(
                folder, "source", plan.data, plan.count, pairing, extra_config=answer
            ) as source:
                dial = serial_only_config([], [{"device": str(line.b), "key": source.id}])
                with replication.ssbsync_node(
                    folder, "destination", None, plan.count, pairing, extra_config=dial
                ) as destination:
                    print(f"{result.name}: replicating ...", flush=True)
                    result.measured = asyncio.run(_run(line, (source, destination), plan))
    except (BenchError, OSError, TimeoutError) as err:
        result.error = str(err) or type(err).__name__
        print(f"{result.name}: FAILED: {result.error}", file=sys.stderr, flush=True)
    return result


async def _run(line: PtyLink, nodes: Nodes, plan: Plan) -> Measured:
    try:
        return await _measure(line, nodes, plan)
    finally:
        await line.aclose()


# -- report ----------------------------------------------------------------------------------

HEADERS = [
    "line rate",
    "devices s",
    "transfer s",
    "msg/s",
    "payload KB/s",
    "line KB/s",
    "line / payload",
    "line used",
]


def rows(results: list[RateResult], plan: Plan) -> list[list[str]]:
    out = []
    for r in results:
        m = r.measured
        if m is None:
            out.append([r.name, "FAILED", *[""] * (len(HEADERS) - 2)])
            continue
        line_rate = m.line_bytes / m.transfer_s
        used = f"{line_rate / (r.baud / 10):.0%}" if r.baud else "-"
        out.append(
            [
                r.name,
                f"{m.devices_s:.2f}",
                f"{m.transfer_s:.2f}",
                f"{plan.count / m.transfer_s:,.0f}",
                f"{plan.payload_bytes / m.transfer_s / 1000:,.1f}",
                f"{line_rate / 1000:,.1f}",
                f"{m.line_bytes / plan.payload_bytes:.2f}",
                used,
            ]
        )
    return out


def print_table(results: list[RateResult], plan: Plan, authors: int) -> None:
    title = (
        f"Serial: {plan.count:,} messages of {authors} authors "
        f"({plan.payload_bytes / 1000:,.0f} KB of JSON) over a pty link"
    )
    ingest.show_table(title, HEADERS, rows(results, plan))


def print_markdown(results: list[RateResult], plan: Plan) -> None:
    ingest.show_markdown(HEADERS, rows(results, plan))


# -- main ------------------------------------------------------------------------------------


def _bauds(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated bits/s, 0 for unlimited")
    return [int(part) for part in parts]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="messages (default 2000)")
    parser.add_argument("--authors", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bauds",
        type=_bauds,
        default=[0, 1_000_000, 115_200],
        help="line rates in bits/s, comma-separated; 0 = unlimited (default 0,1000000,115200)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per line rate")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ingest.print_run_header()
    data = ingest.dataset(args.authors, args.count, args.seed)
    heads = replication.dataset_heads(data)
    if sum(heads.values()) != args.count or len(heads) != args.authors:
        print(f"FAILED: {data.name} is not {args.count} messages of {args.authors} authors")
        return 1
    payload = sum(len(line.rstrip(b"\n")) for line in data.read_bytes().splitlines())
    plan = Plan(data, args.count, heads, payload, args.timeout)
    results = [run_rate(baud, plan) for baud in args.bauds]
    print_table(results, plan, args.authors)
    if args.markdown:
        print_markdown(results, plan)
    for r in results:
        if r.error:
            print(f"{r.name}: FAILED: {r.error}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
