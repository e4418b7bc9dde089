"""What every screen reaches for: the app (names, clock) and its Backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.dom import DOMNode

from ssbsync.tui.backend import Backend

if TYPE_CHECKING:
    from ssbsync.tui.app import SsbsyncApp


def tui_app(node: DOMNode) -> SsbsyncApp:
    return cast("SsbsyncApp", node.app)


def backend_of(node: DOMNode) -> Backend:
    return tui_app(node).backend
