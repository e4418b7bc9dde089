"""Sentinels shared by the sans-IO machines (the h11 shape, ARCHITECTURE.md).

`next_event()` returns an event, `NEED_DATA` when more bytes must arrive first, or `GOODBYE`
when the peer ended its stream cleanly.
"""

from __future__ import annotations

from typing import Final


class Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = Sentinel("NEED_DATA")
GOODBYE: Final = Sentinel("GOODBYE")
