"""The plain-words summaries of `ssbsync bundle …` and `ssbsync stick …`.

Each says what moved, for whom, and what was rejected or damaged and why; each returns the
exit status (1 when anything was rejected, damaged or left out).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, TextIO

from ssbsync.bundle import CarrySpec, Stick
from ssbsync.cli.transfer import print_summary
from ssbsync.node.ingest import IngestReport


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return str(count)


def carries(carry: CarrySpec) -> str:
    if not carry.feeds and carry.hops is None:
        what = "every feed"
    else:
        parts = [f"{len(carry.feeds)} chosen feeds"] if carry.feeds else []
        parts += [f"feeds within {carry.hops} hops of each place"] if carry.hops is not None else []
        what = " and ".join(parts)
    return f"carries {what}{', with their blobs' if carry.blobs else ''}"


def print_export(summary: dict[str, Any], path: Path, out: TextIO) -> int:
    out.write(
        f"wrote {path}: {summary['messages']} messages of {summary['feeds']} feeds,"
        f" {summary['blobs']} blobs ({_size(summary['blobBytes'])}), {_size(summary['bytes'])}\n"
    )
    if summary.get("leftOut"):
        out.write(f"  {summary['leftOut']} messages did not fit and were left out\n")
        return 1
    return 0


def _print_report(report_json: Any, out: TextIO, indent: str = "") -> int:
    text = io.StringIO()
    status = print_summary(IngestReport.from_json(report_json), text)
    out.write("".join(indent + line for line in text.getvalue().splitlines(True)))
    return status


def print_import(summary: dict[str, Any], path: Path, out: TextIO) -> int:
    out.write(f"{path}: written by {summary['writer']}\n")
    status = _print_report(summary["messages"], out, "  ")
    blobs = f"  blobs: {summary['blobsStored']} stored, {summary['blobsKnown']} already here"
    out.write(blobs + "\n")
    for problem in summary.get("blobProblems") or []:
        out.write(f"  rejected blob {problem}\n")
    if summary.get("damage"):
        out.write(f"  DAMAGED: {summary['damage']}; everything before it was imported\n")
    return 1 if status or summary.get("damage") or summary.get("blobProblems") else 0


def print_verify(summary: dict[str, Any], ok: bool, path: Path, out: TextIO) -> int:
    out.write(
        f"{path}: written by {summary['writer']}, {summary['messages']} messages of"
        f" {summary['feeds']} feeds, {summary['blobs']} blobs\n"
    )
    for problem in summary.get("problems") or []:
        out.write(f"  problem: {problem}\n")
    if summary.get("damage"):
        out.write(f"  DAMAGED: {summary['damage']}\n")
    out.write("  the bundle is intact\n" if ok else "  the bundle is NOT intact\n")
    return 0 if ok else 1


def print_stick(summary: dict[str, Any], path: Path, out: TextIO) -> int:
    out.write(f"stick {summary['stick']} at {path}: {summary['description']}\n")
    out.write("  taken from the stick:\n")
    status = _print_report(summary["taken"], out, "    ")
    given = summary.get("given")
    if given:
        out.write(
            f"  given to the stick: {given['messages']} messages of {given['feeds']} feeds,"
            f" {given['blobs']} blobs, {_size(given['bytes'])}\n"
        )
    else:
        out.write("  given to the stick: nothing it lacks\n")
    for problem in summary.get("problems") or []:
        out.write(f"  problem: {problem}\n")
    return 1 if status or summary.get("problems") else 0


def print_stick_status(stick: Stick, out: TextIO) -> int:
    segments = stick.segments()
    limit = "no size limit" if stick.max_size is None else f"max {_size(stick.max_size)}"
    out.write(f"stick {stick.id} at {stick.volume}: {carries(stick.carry)}; {limit}\n")
    out.write(
        f"  {len(segments)} segments, {_size(stick.used_bytes())} used,"
        f" {_size(stick.free_bytes())} free on the volume;"
        f" holds {sum(stick.clock().values())} messages of {len(stick.clock())} feeds\n"
    )
    for node, (clock, synced) in sorted(stick.node_clocks().items()):
        out.write(f"  place {node}: {sum(clock.values())} messages at its last sync ({synced})\n")
    for path, reason in stick.unreadable():
        out.write(f"  unreadable segment {path.name}: {reason}\n")
    return 0
