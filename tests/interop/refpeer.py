"""The reference peer, ssb-server 16.0.1: installed once into a cache, started on loopback.

The Python form of ../shared/refpeer's install.sh, start.sh and cli.sh, which the tests do not
use at run time: `refpeer/package.json` and `refpeer/package-lock.json` are that folder's
files with `ip` held at 1.1.5, as ssb-server 16.0.1's own shrinkwrap has it (tests/interop/
README.md says why). The install goes to `${XDG_CACHE_HOME:-~/.cache}/ssbsync-refpeer/<key>`,
where key is the first 16 hex digits of sha256(package.json ‖ package-lock.json), under the
lock file that install.sh uses, so concurrent installs wait for each other.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .helpers import free_port, json_values, parse_output, stop_process, tail

PACKAGE_DIR = Path(__file__).resolve().parent / "refpeer"
PACKAGE_FILES = (PACKAGE_DIR / "package.json", PACKAGE_DIR / "package-lock.json")
INSTALL_TIMEOUT = 900.0  # npm ci takes about 25 s on a good line; the lock wait is as long
START_TIMEOUT = 60.0
CLI_TIMEOUT = 60.0


class RefPeerUnavailable(Exception):
    """ssb-server cannot be installed here (no node/npm, npm ci failed): the tests skip."""


class RefPeerError(Exception):
    """ssb-server failed to start, or a CLI command failed."""


@dataclass(frozen=True)
class Installation:
    node: str  # the node binary
    bin: Path  # node_modules/.bin/ssb-server
    node_modules: Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ssbsync-refpeer"


def cache_key() -> str:
    digest = hashlib.sha256()
    for file in PACKAGE_FILES:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def install(root: Path | None = None) -> Installation:
    """`npm ci` into the cache unless it is there already; safe to run concurrently."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        raise RefPeerUnavailable(f"{missing} not found on PATH (apt-get install nodejs npm)")
    root = root or cache_root()
    target = root / cache_key()
    binary = target / "node_modules" / ".bin" / "ssb-server"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as lock:
        _lock(lock, INSTALL_TIMEOUT)
        if not os.access(binary, os.X_OK):
            _npm_ci(npm, target)
    return Installation(node, binary, target / "node_modules")


def _lock(file: IO[str], timeout: float) -> None:
    """flock the file (released when it is closed), waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise RefPeerUnavailable(f"{file.name} stayed locked for {timeout:.0f} s") from None
            time.sleep(0.5)


def _npm_ci(npm: str, target: Path) -> None:
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for file in PACKAGE_FILES:
        shutil.copyfile(file, staging / file.name)
    command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    # Its own process group, so that a timeout also ends npm's install scripts.
    process = subprocess.Popen(
        command, cwd=staging, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        raise RefPeerUnavailable(f"npm ci did not finish in {INSTALL_TIMEOUT:.0f} s") from None
    if process.returncode != 0:
        raise RefPeerUnavailable(f"npm ci failed (exit {process.returncode}): {tail(output, 15)}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def server_config(port: int) -> dict[str, Any]:
    """start.sh's config: shs on 127.0.0.1:PORT, noauth unix socket, no dialling of its own."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "connections": {
            "incoming": {
                "net": [
                    {
                        "scope": ["device", "local", "public"],
                        "host": "127.0.0.1",
                        "port": port,
                        "transform": "shs",
                    }
                ],
                "unix": [{"scope": "device", "transform": "noauth"}],
            },
            "outgoing": {"net": [{"transform": "shs"}]},
        },
        "gossip": {
            "connections": 2,
            "local": False,
            "pub": False,
            "friends": False,
            "seed": False,
            "global": False,
        },
        "allowPrivate": True,
    }


class RefPeer:
    """One ssb-server in `folder`, listening on 127.0.0.1:`port`. Start with `start()`, always
    `stop()` (in a finally block or fixture teardown)."""

    def __init__(self, installation: Installation, folder: Path, port: int | None = None) -> None:
        self.installation = installation
        self.folder = folder
        self.port = port or free_port()
        self.id = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.config: dict[str, Any] = server_config(self.port)  # change before start()
        self.prefix: list[str] = []  # runs server and CLI under it (`ip netns exec NS`)

    @property
    def config_file(self) -> Path:
        return self.folder / "config"

    @property
    def address(self) -> str:
        return f"net:127.0.0.1:{self.port}~shs:{self.id[1:].removesuffix('.ed25519')}"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.lower().startswith("ssb_")}
        env["HOME"] = str(self.folder)  # nothing may land in the real ~/.ssb
        return env

    def start(self) -> RefPeer:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(self.config, indent=2))
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - closed in stop()
        inst = self.installation
        command = [*self.prefix, inst.node, str(inst.bin), "start"]
        self.process = subprocess.Popen(
            [*command, "--config", str(self.config_file), "--path", str(self.folder)],
            cwd=self.folder,
            env=self._env(),
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
        # The CLI must not run before manifest.json exists: CLI and server would race to create
        # the secret and the server dies with EEXIST.
        deadline = time.monotonic() + START_TIMEOUT
        manifest = self.folder / "manifest.json"
        while not manifest.exists():
            self._check_alive()
            if time.monotonic() >= deadline:
                raise RefPeerError(f"no {manifest} after {START_TIMEOUT:.0f} s\n{self.log()}")
            time.sleep(0.1)
        last: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self.id = self.cli("whoami", timeout=20)["id"]
                return
            except (RefPeerError, subprocess.TimeoutExpired) as err:
                last = err
                time.sleep(0.3)
        raise RefPeerError(
            f"`whoami` did not answer in {START_TIMEOUT:.0f} s: {last}\n{self.log()}"
        )

    def _check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RefPeerError(f"ssb-server exited with {self.process.returncode}\n{self.log()}")

    def log(self) -> str:
        try:
            return tail(self.log_file.read_text(errors="replace"))
        except OSError:
            return ""

    def manifest(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.folder / "manifest.json").read_text())
        return loaded

    def run_cli(
        self, *args: str, stdin: str | None = None, timeout: float = CLI_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """The ssb-server CLI (as cli.sh runs it: config and path through the environment).

        Every `--option` also reaches ssb-config (rc reads process.argv), so `--port N` clashes
        with the configured port; pass such arguments as JSON on `stdin` with the argument `.`
        (muxrpcli's stdin mode), e.g. run_cli("gossip.add", ".", stdin='{"port": …}').
        """
        env = self._env()
        env.update(ssb_config=str(self.config_file), ssb_path=str(self.folder))
        inst = self.installation
        # Never the test's own stdin: muxrpcli reads a non-TTY stdin when the argument is `.`.
        feed: dict[str, Any] = {"stdin": subprocess.DEVNULL} if stdin is None else {"input": stdin}
        return subprocess.run(
            [*self.prefix, inst.node, str(inst.bin), *args],
            cwd=self.folder,
            env=env,
            **feed,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            check=False,
        )

    def cli(self, *args: str, stdin: str | None = None, timeout: float = CLI_TIMEOUT) -> Any:
        """Run a CLI command; its output as one JSON value, or as text. Raises on failure."""
        done = self.run_cli(*args, stdin=stdin, timeout=timeout)
        if done.returncode != 0:
            raise RefPeerError(
                f"ssb-server {' '.join(args)}: exit {done.returncode}: {done.stderr}"
            )
        return parse_output(done.stdout)

    def cli_stream(self, *args: str, timeout: float = CLI_TIMEOUT) -> list[Any]:
        """A source command (log, hist, …): every item it printed."""
        done = self.run_cli(*args, timeout=timeout)
        if done.returncode != 0:
            raise RefPeerError(
                f"ssb-server {' '.join(args)}: exit {done.returncode}: {done.stderr}"
            )
        return json_values(done.stdout)

    def stop(self) -> None:
        """SIGTERM by PID, wait, SIGKILL if needed."""
        if self.process is not None:
            stop_process(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None


JS_CLIENT = Path(__file__).resolve().parent / "js" / "client.js"
JS_FEED = Path(__file__).resolve().parent / "js" / "feed.js"


def feed_refpeer(installation: Installation, peer: RefPeer, spec: dict[str, Any]) -> dict[str, Any]:
    """Run js/feed.js on a running RefPeer: `add` a JSON-lines file, replicate.request feeds."""
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("ssb_")}
    env.update(NODE_PATH=str(installation.node_modules), HOME=str(peer.folder))
    done = subprocess.run(
        [installation.node, str(JS_FEED), str(peer.folder), json.dumps(spec)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=75,
        check=False,
    )
    if done.returncode != 0:
        raise RefPeerError(f"feed.js: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def run_js_client(installation: Installation, spec: dict[str, Any], home: Path) -> dict[str, Any]:
    """Run js/client.js (ssb-client from the installed node_modules) with `spec`; its report.

    The script bounds itself (spec["timeout"], ms); the process gets a little longer."""
    spec = {"timeout": 30_000, **spec}
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("ssb_")}
    env.update(NODE_PATH=str(installation.node_modules), HOME=str(home))
    done = subprocess.run(
        [installation.node, str(JS_CLIENT), json.dumps(spec)],
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=spec["timeout"] / 1000 + 15,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RefPeerError(f"client.js: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report
