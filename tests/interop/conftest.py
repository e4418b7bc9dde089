"""Fixtures for the interop tests: the installed reference peer, and factories that start
ssb-server and ssbsync nodes in the test's temporary folder and stop every one of them (by PID)
when the test ends, whatever happened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .refpeer import Installation, RefPeer, RefPeerUnavailable, install
from .ssbsync_node import SsbsyncNode

StartRefPeer = Callable[[], RefPeer]
StartSsbsync = Callable[..., SsbsyncNode]


@pytest.fixture(scope="session")
def refpeer_install() -> Installation:
    """ssb-server 16.0.1, installed once (npm ci into the cache; instant when cached)."""
    try:
        return install()
    except RefPeerUnavailable as err:
        pytest.skip(f"the reference peer (ssb-server 16.0.1) is not available: {err}")


@pytest.fixture
def start_refpeer(refpeer_install: Installation, tmp_path: Path) -> Iterator[StartRefPeer]:
    started: list[RefPeer] = []

    def start() -> RefPeer:
        peer = RefPeer(refpeer_install, tmp_path / f"ssb-server-{len(started)}")
        started.append(peer)
        return peer.start()

    try:
        yield start
    finally:
        for peer in started:
            peer.stop()


@pytest.fixture
def start_ssbsync(tmp_path: Path) -> Iterator[StartSsbsync]:
    started: list[SsbsyncNode] = []

    def start(caps_shs: str | None = None, config: dict[str, Any] | None = None) -> SsbsyncNode:
        folder = tmp_path / f"ssbsync-{len(started)}"
        node = SsbsyncNode(folder, caps_shs=caps_shs, config=config)
        started.append(node)
        return node.start()

    try:
        yield start
    finally:
        for node in started:
            node.stop()
