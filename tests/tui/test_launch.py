"""`ssbsync tui` picks its backend: the store directly when no node answers on the socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssbsync import cli
from ssbsync.tui import app as tui_app
from ssbsync.tui.backend import DirectBackend


def test_tui_without_a_node_opens_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []

    async def fake_run(self: tui_app.SsbsyncApp) -> None:
        seen.append(self.backend)
        seen.append(await self.backend.feeds())  # the store opens, and is readable

    monkeypatch.setattr(tui_app.SsbsyncApp, "run_async", fake_run)
    assert cli.main(["--path", str(tmp_path), "tui"]) == 0
    assert isinstance(seen[0], DirectBackend) and seen[1] == []
    assert (tmp_path / "secret").exists()


def test_help_lists_tui(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["help"])
    assert "tui" in capsys.readouterr().out
