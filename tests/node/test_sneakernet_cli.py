"""`ssbsync clock|bundle|stick …` as a person types them: with no node running (the store
directly) and through a running node (which holds the store)."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

import pytest

from ssbsync.cli import main
from ssbsync.node.api import NodeAPI

from .nodes import running


def _cli(folder: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        status = main(["--path", str(folder), *argv])
    finally:
        sys.stdout = saved
    return status, out.getvalue()


def _seed(folder: Path, count: int) -> str:
    with NodeAPI(folder) as api:
        for n in range(count):
            api.publish({"type": "post", "text": f"note {n}"})
        return api.keys.id


def test_two_places_and_a_stick(tmp_path: Path) -> None:
    a, b, stick = tmp_path / "a", tmp_path / "b", tmp_path / "stick"
    stick.mkdir()
    _seed(a, 3)
    _seed(b, 2)
    assert _cli(a, "stick", "init", str(stick))[0] == 0
    status, text = _cli(a, "stick", "sync", str(stick))
    assert status == 0 and "gave 3" in text
    status, text = _cli(b, "stick", "sync", str(stick))
    assert status == 0 and "took 3 messages, gave 2" in text
    status, text = _cli(a, "stick", "sync", str(stick))
    assert status == 0 and "took 2 messages, gave 0" in text
    status, text = _cli(a, "stick", "status", str(stick))
    assert status == 0 and "2 segments" in text and text.count("place @") == 2
    assert _cli(a, "stick", "init", str(stick))[0] == 1  # already a stick


def test_bundle_for_a_clock_file_then_import(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _seed(a, 4)
    _seed(b, 1)
    clock, bundle = tmp_path / "b.clock", tmp_path / "out.bundle"
    assert _cli(b, "clock", "export", str(clock))[0] == 0
    status, text = _cli(a, "bundle", "export", str(bundle), "--for", str(clock))
    assert status == 0 and "4 messages of 1 feeds" in text
    status, text = _cli(b, "bundle", "verify", str(bundle))
    assert status == 0 and "intact" in text
    status, text = _cli(b, "bundle", "import", str(bundle))
    assert status == 0 and "4 accepted" in text


def test_a_damaged_bundle_says_so_and_exits_1(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _seed(a, 400)  # several zstd blocks: a cut one leaves the blocks before it readable
    bundle = tmp_path / "out.bundle"
    assert _cli(a, "bundle", "export", str(bundle))[0] == 0
    data = bundle.read_bytes()
    bundle.write_bytes(data[: len(data) * 3 // 4])
    status, text = _cli(b, "bundle", "import", str(bundle))
    assert status == 1 and "DAMAGED" in text
    status, text = _cli(b, "bundle", "verify", str(bundle))
    assert status == 1 and "NOT intact" in text


def test_bad_arguments_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(tmp_path, "bundle", "export")[0] == 1
    assert "usage: ssbsync bundle export" in capsys.readouterr().err
    assert _cli(tmp_path, "bundle", "export", "x", "--feeds", "nope")[0] == 1
    assert "not a feed id: nope" in capsys.readouterr().err
    assert _cli(tmp_path, "bundle", "import", str(tmp_path / "missing"))[0] == 1
    assert "missing" in capsys.readouterr().err
    assert _cli(tmp_path, "stick", "sync", str(tmp_path))[0] == 1
    assert "stick" in capsys.readouterr().err
    assert (
        _cli(tmp_path, "bundle", "export", "x", "--for-peer", "@" + "A" * 43 + "=.ed25519")[0] == 1
    )
    assert "no clock known" in capsys.readouterr().err


def test_through_the_running_node(tmp_path: Path) -> None:
    a, b, stick = tmp_path / "a", tmp_path / "b", tmp_path / "stick"
    stick.mkdir()
    _seed(a, 5)
    _seed(b, 2)
    assert _cli(b, "stick", "init", str(stick))[0] == 0
    assert _cli(b, "stick", "sync", str(stick))[0] == 0

    async def scenario() -> None:
        async with running(a) as node:
            status, text = await asyncio.to_thread(_cli, a, "stick", "sync", str(stick))
            assert status == 0 and "took 2 messages, gave 5" in text
            assert node.api.store.count_messages() == 7
            bundle = tmp_path / "from-node.bundle"
            status, text = await asyncio.to_thread(_cli, a, "bundle", "export", str(bundle))
            assert status == 0 and "7 messages of 2 feeds" in text
            status, text = await asyncio.to_thread(_cli, a, "bundle", "import", str(bundle))
            assert status == 0 and "7 duplicates" in text
            status, text = await asyncio.to_thread(_cli, a, "clock", "export", "-")
            assert json.loads(text)["clock"] == dict(node.api.store.vector_clock())

    asyncio.run(asyncio.wait_for(scenario(), 60))
