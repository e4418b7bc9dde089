"""ssbsync as the tests run it: `python -m ssbsync --path DIR start` in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from ssbsync.core.keys import Keypair
from ssbsync.node import config as node_config
from ssbsync.node.identity import read_secret

from .helpers import free_port, json_values, parse_output, stop_process, tail

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0


class SsbsyncError(Exception):
    """The node failed to start, or a command failed."""


def ssbsync_env() -> dict[str, str]:
    """The environment for a `python -m ssbsync` child: this checkout first on the path."""
    env = dict(os.environ)
    env.pop("SSBSYNC_PATH", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


class SsbsyncNode:
    """One ssbsync node in `folder` on 127.0.0.1:`port` (config {"port", "host"[, "caps"]}).
    Start with `start()`, always `stop()`."""

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        caps_shs: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.caps_shs = caps_shs
        self.extra_config = config or {}
        self.id = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.prefix: list[str] = []  # runs the node under it (`ip netns exec NS`)

    @property
    def address(self) -> str:
        return f"net:127.0.0.1:{self.port}~shs:{self.id[1:].removesuffix('.ed25519')}"

    @property
    def log_file(self) -> Path:
        return self.folder / "node.log"

    @property
    def keys(self) -> Keypair:
        return read_secret(self.folder / "secret")

    @property
    def network_key(self) -> bytes:
        return node_config.load(self.folder).network_key

    def start(self) -> SsbsyncNode:
        self.folder.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"port": self.port, "host": "127.0.0.1", **self.extra_config}
        if self.caps_shs is not None:
            config["caps"] = {"shs": self.caps_shs}
        (self.folder / "config").write_text(json.dumps(config))
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - closed in stop()
        command = [*self.prefix, sys.executable, "-m", "ssbsync", "--path", str(self.folder)]
        self.process = subprocess.Popen(
            [*command, "start", "--logging.level=info"],
            cwd=REPO_ROOT,
            env=ssbsync_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise SsbsyncError(f"ssbsync exited with {self.process.returncode}\n{self.log()}")
            if (self.folder / "manifest.json").exists():
                done = self.run_cli("status", timeout=20)
                if done.returncode == 0:
                    self.id = json.loads(done.stdout)["id"]
                    return
                last = done.stderr
            time.sleep(0.1)
        raise SsbsyncError(f"ssbsync not ready after {START_TIMEOUT:.0f} s: {last}\n{self.log()}")

    def log(self) -> str:
        try:
            return tail(self.log_file.read_text(errors="replace"))
        except OSError:
            return ""

    def run_cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ssbsync", "--path", str(self.folder), *args],
            cwd=REPO_ROOT,
            env=ssbsync_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            check=False,
        )

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> Any:
        """Run a command on the running node; its output as one JSON value, or as text."""
        done = self.run_cli(*args, timeout=timeout)
        if done.returncode != 0:
            raise SsbsyncError(f"ssbsync {' '.join(args)}: exit {done.returncode}: {done.stderr}")
        return parse_output(done.stdout)

    def cli_stream(self, *args: str, timeout: float = CLI_TIMEOUT) -> list[Any]:
        done = self.run_cli(*args, timeout=timeout)
        if done.returncode != 0:
            raise SsbsyncError(f"ssbsync {' '.join(args)}: exit {done.returncode}: {done.stderr}")
        return json_values(done.stdout)

    def stop(self) -> None:
        """SIGTERM by PID (ssbsync closes its sessions and store), wait, SIGKILL if needed."""
        if self.process is not None:
            stop_process(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None
