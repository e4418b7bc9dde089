"""A seeded store per test, and the app on it (the direct backend: no node running)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssbsync.node.api import NodeAPI
from ssbsync.tui.app import SsbsyncApp
from ssbsync.tui.backend import DirectBackend
from tests.tui.seed import NOW, seed_store


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "node"
    return folder, seed_store(folder)


@pytest.fixture
def backend(seeded: tuple[Path, dict[str, str]]) -> Iterator[DirectBackend]:
    direct = DirectBackend(NodeAPI(seeded[0], clock=lambda: NOW))
    yield direct
    asyncio.run(direct.close())


@pytest.fixture
def app(backend: DirectBackend) -> SsbsyncApp:
    return SsbsyncApp(backend, now=lambda: NOW)
