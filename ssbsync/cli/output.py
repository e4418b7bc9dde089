"""How results are printed: muxrpcli's format, which scripts written for ssb-server parse.

An async result is `JSON.stringify(result, null, 2)` and a newline (nothing for undefined);
each item of a source is the same followed by a blank line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TextIO

from ssbsync.core import jsonv8


def print_result(out: TextIO, result: Any) -> None:
    if result is not None:
        out.write(jsonv8.stringify_pretty(result) + "\n")


def print_item(out: TextIO, item: Any) -> None:
    out.write(jsonv8.stringify_pretty(item) + "\n\n")


def print_items(out: TextIO, items: Iterable[Any]) -> None:
    for item in items:
        print_item(out, item)
