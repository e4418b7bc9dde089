"""Fixtures for the node tests: a fresh store and ingester per test, shared synthetic feeds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ssbsync.node.ingest import Ingester
from ssbsync.node.store import Store

from .helpers import Feeds, make_feeds

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT = 120  # seconds; no child process may outlive a test


@pytest.fixture(scope="session")
def feeds() -> Feeds:
    """4 feeds, 80 messages: enough for gaps, forks and several batches."""
    generated = make_feeds(authors=4, messages=80, seed=11)
    assert len(generated.by_author) == 4
    assert min(len(feed) for feed in generated.by_author.values()) >= 10
    return generated


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "db.sqlite")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def ingester(store: Store) -> Ingester:
    return Ingester(store, workers=2)


def ssbsync_env(**extra: str) -> dict[str, str]:
    """The environment for a `python -m ssbsync` child: this checkout first on the path."""
    env = dict(os.environ)
    env.pop("SSBSYNC_PATH", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@pytest.fixture
def run_ssbsync(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m ssbsync --path <tmp>/node ARGS…` to completion (with a timeout);
    `path=None` leaves out `--path`."""
    folder = tmp_path / "node"

    def run(
        *args: str,
        path: Path | None = folder,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ssbsync"]
        if path is not None:
            command += ["--path", str(path)]
        return subprocess.run(
            [*command, *args],
            cwd=REPO_ROOT,
            env=env or ssbsync_env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )

    return run
