"""The follow graph of a running node, kept current from the contact messages it stores.

`ssbsync.core.friends` computes; this module reads contact messages from the store as they
arrive (by the type index, from where the last read stopped) and tells the replicator what
changed: feeds within `friends.hops` to replicate, feeds we block to refuse (PROTOCOL.md §6,
§12: ssb-friends rejects blocked peers at the handshake).
"""

from __future__ import annotations

import logging

from ssbsync.core import jsonv8
from ssbsync.core.friends import FollowGraph, edge_from_content
from ssbsync.core.refs import FeedId
from ssbsync.node.api import NodeAPI
from ssbsync.node.store import Range

log = logging.getLogger("ssbsync.friends")


class SocialGraph:
    def __init__(self, api: NodeAPI, me: FeedId, max_hops: int) -> None:
        self.api = api
        self.me = me
        self.max_hops = max_hops
        self.graph = FollowGraph()
        self._read_up_to: float | None = None  # receive time of the last contact message read
        self.wanted: set[FeedId] = set()
        self.blocked: set[FeedId] = set()
        self.refresh()

    def refresh(self) -> tuple[set[FeedId], set[FeedId]]:
        """Read new contact messages; return (feeds newly wanted, feeds newly blocked)."""
        window = Range(gt=self._read_up_to)
        changed = False
        for row in self.api.store.by_type("contact", window):
            self._read_up_to = row.received
            value = jsonv8.parse(row.value_json)
            edge = edge_from_content(value.get("author"), value.get("content"))
            if edge is not None:
                self.graph.apply(edge)
                changed = True
        if not changed:
            return set(), set()
        wanted = self.graph.wanted(self.me, self.max_hops)
        blocked = self.graph.blocked_by(self.me)
        added, newly_blocked = wanted - self.wanted, blocked - self.blocked
        self.wanted, self.blocked = wanted, blocked
        if added or newly_blocked:
            log.info("follow graph: %d feeds within %d hops, %d blocked",
                     len(wanted), self.max_hops, len(blocked))  # fmt: skip
        return added, newly_blocked

    def hops(self, start: FeedId | None = None, max_hops: int | None = None) -> dict[str, int]:
        found = self.graph.hops(start or self.me, self.max_hops if max_hops is None else max_hops)
        return {str(feed): distance for feed, distance in found.items()}
