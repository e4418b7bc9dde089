"""A USB stick as an offline peer: the same clock comparison as a live one, both ways.

Sync (docs/bundle-format.md, "The stick"): the node takes from the stick's segments what it
lacks, through the one ingest path; the stick takes what the node has of the feeds it carries
and it lacks, as one new segment; then the node's clock is written on the stick — that is the
acknowledgement that lets a later sync prune segments every known place already holds (as
NNCP does). The clocks of every other place the stick has visited are learned on the way, so
`bundle export --for-peer` can use them. Every message is signed, so the stick needs no trust.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ssbsync.bundle import BundleError, CarrySpec, Stick
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId
from ssbsync.node import peerclocks
from ssbsync.node.api import NodeAPI
from ssbsync.node.blobs import BlobStore
from ssbsync.node.bundles import (
    ExportSummary,
    ImportSummary,
    OnProgress,
    export_bundle,
    import_bundle,
    plan,
    stored_bytes,
)
from ssbsync.node.ingest import IngestReport
from ssbsync.node.social import SocialGraph

log = logging.getLogger(__name__)
SEGMENT_MARGIN = 64 * 1024  # room kept free beyond a segment's planned size (its framing)


@dataclass
class StickSummary:
    stick: str
    taken: IngestReport = field(default_factory=IngestReport)
    segments_read: int = 0
    segments_skipped: int = 0  # everything in them we already held
    problems: list[str] = field(default_factory=list)  # per segment: damage, bad blobs
    given: ExportSummary | None = None
    pruned: int = 0
    places: int = 0  # other nodes this stick has synced with

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "stick": self.stick,
            "taken": self.taken.to_json(examples=True),
            "segmentsRead": self.segments_read,
            "segmentsSkipped": self.segments_skipped,
            "problems": list(self.problems),
            "given": None if self.given is None else self.given.to_json(),
            "pruned": self.pruned,
            "places": self.places,
            "description": describe(self),
        }


def init_stick(
    volume: Path, *, network_key: bytes, carry: CarrySpec, max_size: int | None, now_ms: int
) -> Stick:
    return Stick.init(
        volume, network_key=network_key, carry=carry, max_size=max_size,
        now_ms=now_ms, stick_id=secrets.token_hex(8),
    )  # fmt: skip


def write_carry_list(
    volume: Path, *, network_key: bytes, carry: CarrySpec, max_size: int | None, now_ms: int
) -> tuple[Stick, bool]:
    """What `volume` carries (`stick carry`, the TUI's Carry screen): a folder that is not a
    stick yet becomes one; a stick of this network keeps its id, segments and clocks and
    gets the new carry list. `max_size` None keeps the stick's own. True: a new stick."""
    if not Stick.is_stick(volume):
        return init_stick(volume, network_key=network_key, carry=carry, max_size=max_size,
                          now_ms=now_ms), True  # fmt: skip
    stick = Stick.open(volume, network_key)
    stick.set_carry(carry, stick.max_size if max_size is None else max_size)
    return stick, False


def sync_stick(
    api: NodeAPI,
    volume: Path,
    *,
    network_key: bytes,
    blobs: BlobStore | None,
    now_ms: int,
    progress: OnProgress | None = None,
) -> StickSummary:
    """Reconcile the node and the stick at `volume` both ways; `StickError` if it is none."""
    stick = Stick.open(volume, network_key)
    summary = StickSummary(stick.id)
    for path, reason in stick.unreadable():
        summary.problems.append(f"{path.name}: {reason}")
    _take(api, stick, network_key, blobs, summary, progress)
    _learn_places(api, stick, summary)
    feeds = carried_feeds(api, stick.carry)
    _give(api, stick, network_key, blobs, feeds, now_ms, summary, progress)
    stick.record_node(api.keys.id, api.store.vector_clock(), now_ms)
    log.info("stick %s synced: %s", stick.id, describe(summary))
    return summary


def carried_feeds(api: NodeAPI, spec: CarrySpec) -> set[FeedId] | None:
    """The feeds a stick carries, seen from this node (None: every feed). `--hops N` counts
    from this node's own feed in its follow graph, so a stick carrying "2 hops" carries each
    place's friends and their friends."""
    if not spec.feeds and spec.hops is None:
        return None
    feeds = set(spec.feeds)
    if spec.hops is not None:
        graph = SocialGraph(api, api.keys.id, spec.hops)
        within = {FeedId(feed) for feed, distance in graph.hops().items() if distance >= 0}
        feeds |= within - graph.blocked  # negative hops: not wanted (ssb-friends, §6)
    return feeds


def _take(
    api: NodeAPI,
    stick: Stick,
    network_key: bytes,
    blobs: BlobStore | None,
    summary: StickSummary,
    progress: OnProgress | None,
) -> None:
    for segment in stick.segments():
        if segment.header.covered_by(api.store.vector_clock()) and not segment.header.blobs:
            summary.segments_skipped += 1
            continue
        try:
            with open(segment.path, "rb") as source:
                got = import_bundle(
                    api, source, network_key=network_key, blobs=blobs, progress=progress
                )
        except (BundleError, OSError) as err:
            summary.problems.append(f"{segment.path.name}: {err}")
            continue
        summary.segments_read += 1
        _add_report(summary.taken, got)
        if got.damage:
            summary.problems.append(f"{segment.path.name}: {got.damage}")
        summary.problems.extend(f"{segment.path.name}: {p}" for p in got.blob_problems)


def _add_report(total: IngestReport, got: ImportSummary) -> None:
    total.accepted += got.report.accepted
    total.duplicates += got.report.duplicates
    for rejection in got.report.examples:
        if len(total.examples) < 50:
            total.examples.append(rejection)
    total.rejected.update(got.report.rejected)


def _learn_places(api: NodeAPI, stick: Stick, summary: StickSummary) -> None:
    places = stick.node_clocks()
    places.pop(api.keys.id, None)
    summary.places = len(places)
    peerclocks.remember(api.store.path, places, source="stick")


def _give(
    api: NodeAPI,
    stick: Stick,
    network_key: bytes,
    blobs: BlobStore | None,
    feeds: set[FeedId] | None,
    now_ms: int,
    summary: StickSummary,
    progress: OnProgress | None,
) -> None:
    """Write what the stick lacks of `feeds` as one new segment, pruning to make room."""
    stick_clock = stick.clock()
    ranges, _ = plan(api, stick_clock, feeds, None)
    if not ranges:
        return
    needed = stored_bytes(api, ranges) + SEGMENT_MARGIN
    if needed > stick.room():
        summary.pruned = len(stick.prune(needed))
    budget = stick.room() - SEGMENT_MARGIN
    fitting, left_out = plan(api, stick_clock, feeds, max(budget, 0))
    if left_out:
        left = sum(len(r) for r in left_out)
        summary.problems.append(
            f"{left} messages did not fit on the stick (max size or free space)"
        )
    if not fitting:
        return
    with stick.new_segment() as out:
        summary.given = export_bundle(
            api, out, network_key=network_key, destination=stick_clock, feeds=feeds,
            blobs=blobs if stick.carry.blobs else None, budget=budget, now_ms=now_ms,
            progress=progress,
        )  # fmt: skip


def describe(summary: StickSummary) -> str:
    """One line for the log and the CLI."""
    given = summary.given.messages if summary.given else 0
    return (
        f"took {summary.taken.accepted} messages, gave {given}"
        f" ({summary.places} other places known, {summary.pruned} segments pruned"
        f", {len(summary.problems)} problems)"
    )
