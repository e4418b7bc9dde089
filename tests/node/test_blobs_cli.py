"""`ssbsync blobs.*` on the command line, through a running node (as ssb-server's CLI)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ssbsync.core.refs import blob_id

from .conftest import REPO_ROOT, SUBPROCESS_TIMEOUT, ssbsync_env

Run = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Run]:
    """A running `ssbsync start` in tmp_path/node; yields a runner for CLI commands."""
    folder = tmp_path / "node"
    folder.mkdir()
    (folder / "config").write_text(json.dumps({"host": "127.0.0.1", "port": 0}))
    base = [sys.executable, "-m", "ssbsync", "--path", str(folder)]
    log = open(tmp_path / "node.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [*base, "start"], cwd=REPO_ROOT, env=ssbsync_env(), stdout=log, stderr=subprocess.STDOUT
    )

    def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*base, *args],
            cwd=REPO_ROOT,
            env=ssbsync_env(),
            input=input if input is not None else b"",
            capture_output=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )

    try:
        deadline = time.monotonic() + 30
        while not (folder / "manifest.json").exists() or run("status").returncode != 0:
            assert process.poll() is None, (tmp_path / "node.log").read_text()
            assert time.monotonic() < deadline, "the node did not start in 30 s"
            time.sleep(0.1)
        yield run
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def test_add_a_file_and_from_stdin_then_get_it_back(node: Run, tmp_path: Path) -> None:
    data = bytes(range(256)) * 700  # 179,200 bytes, not valid UTF-8
    file = tmp_path / "picture.bin"
    file.write_bytes(data)
    expected = blob_id(hashlib.sha256(data).digest())

    added = node("blobs.add", str(file))
    assert (added.returncode, added.stdout.decode().strip()) == (0, expected), added.stderr
    piped = node("blobs.add", input=b"from stdin")
    assert piped.stdout.decode().strip() == blob_id(hashlib.sha256(b"from stdin").digest())

    got = node("blobs.get", expected)
    assert got.returncode == 0 and got.stdout == data
    assert node("blobs.has", expected).stdout.strip() == b"true"
    assert json.loads(node("blobs.size", expected).stdout) == len(data)
    listed = node("blobs.ls").stdout.decode()
    assert expected in listed


def test_errors_are_reported_on_stderr(node: Run) -> None:
    missing = blob_id(hashlib.sha256(b"absent").digest())
    done = node("blobs.get", missing)
    assert done.returncode == 1 and b"could not get blob" in done.stderr
    done = node("blobs.has", "nonsense")
    assert done.returncode == 1 and b"invalid hash:nonsense" in done.stderr


def test_blobs_commands_need_a_running_node(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ssbsync", "--path", str(tmp_path / "x"), "blobs.ls"],
        cwd=REPO_ROOT,
        env=ssbsync_env(),
        capture_output=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    assert done.returncode == 1 and b"no node is running" in done.stderr
