#!/usr/bin/env python3
"""LAN party benchmark (issue 6): time for NODES ssbsync nodes with MESSAGES posts each to
converge by LAN beacons alone, on a bridged segment of network namespaces made for the run.

    sudo python bench/lanparty.py [--nodes 5] [--messages 2000] [--ssb-server] [--timeout 600]
                                  [--markdown]

Each node is a fresh store holding only its own feed (written before the node starts) and a
config with `gossip.local` and `replicate.lanParty` on; none knows another's address. The clock
starts when the nodes are started, all at once, and stops when every node's `getVectorClock`
holds every feed at its last sequence (polled every 0.5 s); it includes the nodes' own start-up
(Python, the store, the listeners: about 2 s each on 2 cores). With `--ssb-server`, one
ssb-server 16 (LAN discovery on, following the ssbsync nodes) joins once the nodes are up and
must converge too. Needs root (ip netns); every process and namespace the run made
is removed at the end, whatever happened (tests/system/lanparty.py, tests/system/netns.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.interop.refpeer import install  # noqa: E402
from tests.system.lanparty import LanParty  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--ssb-server", action="store_true", help="one ssb-server 16 joins")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root: network namespaces", file=sys.stderr)
        return 2
    installation = install() if args.ssb_server else None
    with tempfile.TemporaryDirectory(prefix="ssbsync-lanparty-") as folder:
        started = time.monotonic()
        with LanParty(Path(folder), args.nodes, args.messages, installation) as party:
            setup = party.started_at - started
            seconds = party.wait_converged(args.timeout)
            starting = party.ready_at - party.started_at
            total = sum(party.expected.values())
    rows = [
        ("nodes", f"{args.nodes} ssbsync" + (" + 1 ssb-server" if args.ssb_server else "")),
        ("messages per ssbsync node", f"{args.messages:,}"),
        ("messages every node ends with", f"{total:,}"),
        ("set-up (namespaces, stores; not timed)", f"{setup:.1f} s"),
        ("every clock equal, from the nodes' start", f"{seconds:.1f} s"),
        ("of which the nodes' start-up (all answer on their socket)", f"{starting:.1f} s"),
        (
            "messages received per second, all nodes",
            f"{total * (len(party.expected) - 1) / seconds:,.0f}",
        ),
    ]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if args.markdown:
        print("| what | figure |\n|---|---|")
        print("\n".join(f"| {name} | {value} |" for name, value in rows))
    else:
        print("\n".join(f"{name:>50}: {value}" for name, value in rows))
    print(f"\nmachine: {machine}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
