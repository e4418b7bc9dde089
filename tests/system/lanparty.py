"""A LAN party (issue 6): ssbsync nodes and one ssb-server 16 on a segment of network
namespaces, none told another's address. Each node announces itself with LAN beacons
(PROTOCOL.md §11), dials what it hears, and with `replicate.lanParty` takes every feed it
meets; ssb-server (LAN discovery on) follows the ssbsync nodes, as a person would, since it
replicates only what it follows. Used by tests/system/test_lan_party.py and bench/lanparty.py.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ssbsync.node.api import NodeAPI

from ..interop.refpeer import Installation, RefPeer
from ..interop.ssbsync_node import SsbsyncNode
from .netns import Segment

PORT = 8008  # ssb-server's default, the port its LAN beacons go to (§11)
SERVER_POSTS = 3


class LanParty:
    """`size` ssbsync nodes with `messages` posts each, plus one ssb-server if `installation`."""

    def __init__(
        self, root: Path, size: int, messages: int, installation: Installation | None
    ) -> None:
        self.root = root
        self.size = size
        self.messages = messages
        self.installation = installation
        self.segment: Segment | None = None
        self.nodes: list[SsbsyncNode] = []
        self.server: RefPeer | None = None
        self.expected: dict[str, int] = {}
        self.started_at = 0.0  # time.monotonic() when the nodes were started
        self.ready_at = 0.0  # ... and when the last of them answered on its socket

    def __enter__(self) -> LanParty:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self.segment = Segment(self.size + (1 if self.installation else 0))
        self.nodes = [self._prepare_node(index) for index in range(self.size)]
        # All at once: a node started early would otherwise replicate while the others start.
        self.started_at = time.monotonic()
        with ThreadPoolExecutor(len(self.nodes)) as starting:
            list(starting.map(SsbsyncNode.start, self.nodes))
        self.ready_at = time.monotonic()
        if self.installation is not None:
            self.server = self._start_server(self.installation)

    def _prepare_node(self, index: int) -> SsbsyncNode:
        assert self.segment is not None
        folder = self.root / f"ssbsync-{index}"
        with NodeAPI(folder) as api:  # its own feed, written before it meets anyone
            for n in range(self.messages):
                api.publish({"type": "post", "text": f"node {index} says {n}"})
            self.expected[api.keys.id] = self.messages
        config = {
            "host": self.segment.addresses[index],
            "gossip": {"local": True},
            "replicate": {"lanParty": True},
        }
        node = SsbsyncNode(folder, port=PORT, config=config)
        node.prefix = self.segment.exec_prefix(index)
        return node

    def _start_server(self, installation: Installation) -> RefPeer:
        assert self.segment is not None
        index = self.size
        host = self.segment.addresses[index]
        server = RefPeer(installation, self.root / "ssb-server", port=PORT)
        server.prefix = self.segment.exec_prefix(index)
        config: dict[str, Any] = server.config
        config["host"] = host
        config["connections"]["incoming"]["net"][0]["host"] = host
        config["gossip"] = {"connections": 3, "local": True, "pub": False, "seed": False}
        server.start()
        for n in range(SERVER_POSTS):
            server.cli("publish", "--type", "post", "--text", f"ssb-server says {n}")
        for feed in list(self.expected):
            server.cli("publish", "--type", "contact", "--contact", feed, "--following")
        self.expected[server.id] = SERVER_POSTS + self.size
        return server

    def clocks(self) -> list[dict[str, int]]:
        found = [node.cli("getVectorClock") for node in self.nodes]
        if self.server is not None:
            found.append(self.server.cli("getVectorClock"))
        return found

    def converged(self) -> bool:
        return all(clock == self.expected for clock in self.clocks())

    def wait_converged(self, timeout: float) -> float:
        """Seconds from the first node's start until every clock is the expected one (polled
        every 0.5 s); raises if that has not happened `timeout` seconds from now."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.converged():
                return time.monotonic() - self.started_at
            time.sleep(0.5)
        raise AssertionError(f"no convergence in {timeout:.0f} s: {self.report()}")

    def report(self) -> str:
        lines = [f"expected {self.expected}"]
        with contextlib.suppress(Exception):
            lines += [f"clock {n}: {clock}" for n, clock in enumerate(self.clocks())]
        lines += [f"node {n} log:\n{node.log()}" for n, node in enumerate(self.nodes)]
        if self.server is not None:
            lines.append(f"ssb-server log:\n{self.server.log()}")
        return "\n".join(lines)

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.server is not None:
            self.server.stop()
        if self.segment is not None:
            self.segment.close()
