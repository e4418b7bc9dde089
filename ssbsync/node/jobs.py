"""The sneakernet jobs, one definition for both callers: the running node (`bundle.export`,
`bundle.import`, `stick.sync` over RPC, and hotplug) and the CLI on a store it opened itself.

A job is built from the call's arguments (as the CLI sends them: a path, then options), so bad
arguments fail before any work; running it takes a progress callback and returns the summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ssbsync.bundle import CarrySpec
from ssbsync.core.clock import VectorClock
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId
from ssbsync.node import bundles, sticks
from ssbsync.node.api import ApiError, NodeAPI
from ssbsync.node.blobs import BlobStore
from ssbsync.node.bundles import OnProgress

Job = Callable[[OnProgress], JSONValue]


@dataclass(frozen=True)
class Place:
    """What a job works on: a store, its network, its blobs."""

    api: NodeAPI
    network_key: bytes
    blobs: BlobStore


def export_job(place: Place, args: list[Any]) -> Job:
    """`[path, {clock?, feeds?, hops?, blobs?}]`: what that clock lacks, to the file at path."""
    path, opts = _path(args, "bundle.export"), _options(args)
    destination = None if opts.get("clock") is None else _clock(opts["clock"])
    spec = CarrySpec(tuple(FeedId(f) for f in opts.get("feeds") or ()), opts.get("hops"))

    def job(progress: OnProgress) -> JSONValue:
        def write(out: BinaryIO) -> bundles.ExportSummary:
            return bundles.export_bundle(
                place.api, out, network_key=place.network_key, destination=destination,
                feeds=sticks.carried_feeds(place.api, spec),
                blobs=place.blobs if opts.get("blobs") else None, now_ms=now_ms(),
                progress=progress,
            )  # fmt: skip

        return bundles.export_to_file(path, write).to_json()

    return job


def import_job(place: Place, args: list[Any]) -> Job:
    path = _path(args, "bundle.import")

    def job(progress: OnProgress) -> JSONValue:
        with open(path, "rb") as source:
            summary = bundles.import_bundle(
                place.api, source, network_key=place.network_key, blobs=place.blobs,
                progress=progress,
            )  # fmt: skip
        return summary.to_json()

    return job


def sync_job(place: Place, args: list[Any]) -> Job:
    path = _path(args, "stick.sync")

    def job(progress: OnProgress) -> JSONValue:
        summary = sticks.sync_stick(
            place.api, path, network_key=place.network_key, blobs=place.blobs,
            now_ms=now_ms(), progress=progress,
        )  # fmt: skip
        return summary.to_json()

    return job


def now_ms() -> int:
    return int(time.time() * 1000)


def _path(args: list[Any], name: str) -> Path:
    if not args or not isinstance(args[0], str):
        raise ApiError(f"{name}: a file or folder path is required")
    return Path(args[0])


def _options(args: list[Any]) -> dict[str, Any]:
    opts = args[1] if len(args) > 1 else {}
    if not isinstance(opts, dict):
        raise ApiError(f"options must be an object, got {opts!r}")
    return opts


def _clock(value: Any) -> VectorClock:
    try:
        return VectorClock.from_json(value)
    except ValueError as err:
        raise ApiError(f"clock: {err}") from None
