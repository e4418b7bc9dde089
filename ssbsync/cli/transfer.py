"""`ssbsync import` and `ssbsync export`: messages in and out as JSON streams."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from ssbsync.cli.output import print_items
from ssbsync.core.jsonstream import BadJSON, JSONStreamReader
from ssbsync.node.api import NodeAPI
from ssbsync.node.ingest import IngestReport

CHUNK_CHARS = 1 << 20


def values(source: TextIO, on_read: Any = None) -> Iterator[Any]:
    """Message values from `{key, value, timestamp}` objects or bare values; bad text as str."""
    reader = JSONStreamReader()
    while True:
        text = source.read(CHUNK_CHARS)
        items = reader.feed(text) if text else reader.close()
        if on_read is not None and text:
            on_read(len(text.encode("utf-8", errors="surrogatepass")))
        for item in items:
            if isinstance(item, BadJSON):
                yield item.text  # the ingest path reports it as bad_json
            elif isinstance(item, dict) and isinstance(item.get("value"), dict) and "key" in item:
                yield item["value"]
            else:
                yield item
        if not text:
            return


def open_input(name: str) -> TextIO:
    if name == "-":
        return sys.stdin
    return open(name, encoding="utf-8", errors="surrogateescape")


def run_import(api: NodeAPI, name: str, stdout: TextIO) -> int:
    source = open_input(name)
    try:
        size = os.fstat(source.fileno()).st_size if name != "-" else None
        report = _import_with_progress(api, source, size)
    finally:
        if source is not sys.stdin:
            source.close()
    return print_summary(report, stdout)


def _import_with_progress(api: NodeAPI, source: TextIO, size: int | None) -> IngestReport:
    console = Console(stderr=True)
    if not console.is_terminal:
        return api.import_messages(values(source), parallel=True)
    columns = [TextColumn("importing"), BarColumn(), DownloadColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("import", total=size)
        return api.import_messages(values(source, lambda n: bar.advance(task, n)), parallel=True)


def print_summary(report: IngestReport, out: TextIO) -> int:
    """The import summary; returns the exit status (1 if anything was rejected)."""
    total = report.accepted + report.duplicates + report.rejected_total
    out.write(
        f"{total} messages read: {report.accepted} accepted, {report.duplicates} duplicates,"
        f" {report.rejected_total} rejected\n"
    )
    for reason, count in sorted(report.rejected.items(), key=lambda i: -i[1]):
        out.write(f"  rejected {count}: {reason.value}\n")
    for example in report.examples[:10]:
        where = f"{example.author} seq {example.sequence}" if example.author else "input"
        out.write(f"  e.g. {where}: {example.reason.value}: {example.detail}\n")
    return 1 if report.rejected_total else 0


def run_export(api: NodeAPI, feed: Any, stdout: TextIO) -> int:
    print_items(stdout, api.export(feed))
    return 0
