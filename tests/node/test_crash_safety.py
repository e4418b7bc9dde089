"""Crash safety: `ssbsync import` killed with SIGKILL at random moments never leaves a store
that is inconsistent or holds anything but a contiguous prefix of each feed."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ssbsync.core import synthetic
from ssbsync.core.refs import FeedId
from ssbsync.node import identity
from ssbsync.node.store import Range, Store

from .conftest import REPO_ROOT, SUBPROCESS_TIMEOUT, ssbsync_env

pytestmark = pytest.mark.slow

TOTAL = 30_000
AUTHORS = 20
ROUNDS = 4
KILL_AFTER = (0.2, 2.0)  # seconds, bounds of the random delay before SIGKILL
EXIT_GRACE = 5.0  # seconds a killed import's helper processes get to exit by themselves


@dataclass(frozen=True)
class Corpus:
    file: Path
    keys: dict[FeedId, list[str]]  # each feed's message ids, in sequence order


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    file = tmp_path_factory.mktemp("corpus") / "messages.jsonl"
    keys: dict[FeedId, list[str]] = defaultdict(list)
    with file.open("w", encoding="utf-8") as out:
        for msg in synthetic.generate(AUTHORS, TOTAL, seed=42):
            out.write(msg.compact_json() + "\n")
            keys[msg.author].append(msg.key)
    return Corpus(file, dict(keys))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    node = tmp_path / "node"
    identity.load_or_create(node)  # the identity exists before any kill: only the store is at risk
    return node


# -- processes -------------------------------------------------------------------------------


def process_group(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(entry))
    return members


def wait_for_group_exit(pgid: int, timeout: float) -> list[int]:
    """Wait up to `timeout` for group `pgid` to be empty; return who is still there."""
    deadline = time.monotonic() + timeout
    while (left := process_group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def describe(pids: list[int]) -> list[str]:
    """`pid: command line` of each process, for failure messages."""
    described = []
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            command = "(gone)"
        described.append(f"{pid}: {command.strip()}")
    return described


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
            os.kill(pid, signal.SIGKILL)


@dataclass
class ImportRun:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


StartImport = Callable[[Path, Path], ImportRun]


@pytest.fixture
def start_import(tmp_path: Path) -> Iterator[StartImport]:
    """Start `python -m ssbsync import` in its own session; everything it started is ended
    (by PID) and waited for when the test ends, whatever happens."""
    runs: list[ImportRun] = []

    def start(node: Path, file: Path) -> ImportRun:
        log = tmp_path / f"import-{len(runs)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "ssbsync", "--path", str(node), "import", str(file)],
                cwd=REPO_ROOT,
                env=ssbsync_env(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its helpers share its process group: findable by PID
            )
        runs.append(ImportRun(process, log))
        return runs[-1]

    try:
        yield start
    finally:
        for run in runs:
            run.process.kill()  # by its PID, and only while it has not been waited for
            run.process.wait(timeout=SUBPROCESS_TIMEOUT)
            kill_pids(process_group(run.pid))
            assert wait_for_group_exit(run.pid, EXIT_GRACE) == []


def kill_after(run: ImportRun, delay: float) -> int:
    """SIGKILL `run` after `delay` seconds (unless it ended first); its exit status."""
    try:
        run.process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        run.process.send_signal(signal.SIGKILL)
    return run.process.wait(timeout=SUBPROCESS_TIMEOUT)


# -- the store -------------------------------------------------------------------------------


def assert_consistent_prefixes(node: Path, corpus: Corpus) -> int:
    """The store is sound and each feed is a prefix of its generated feed; how many it holds."""
    store = Store(node / identity.DATABASE)
    try:
        assert store.check() == []
        clock = store.vector_clock()
        assert set(clock) <= set(corpus.keys)
        for author, sequence in clock.items():
            stored = [row.key for row in store.history(author, Range())]
            assert stored == corpus.keys[author][:sequence], f"feed {author} is not a prefix"
        held = store.count_messages()
        assert held == sum(clock.values())
        return held
    finally:
        store.close()


# -- tests -----------------------------------------------------------------------------------


def test_kill_9_during_import_leaves_a_consistent_prefix(
    corpus: Corpus, folder: Path, start_import: StartImport
) -> None:
    rng = random.Random(20240917)
    statuses, held = [], []
    for _ in range(ROUNDS):
        run = start_import(folder, corpus.file)
        statuses.append(kill_after(run, rng.uniform(*KILL_AFTER)))
        kill_pids(process_group(run.pid))  # helpers of the killed import, if any linger
        held.append(assert_consistent_prefixes(folder, corpus))

    assert held == sorted(held), "a later round lost messages an earlier round had stored"
    assert -signal.SIGKILL in statuses, f"no round was killed before it finished: {statuses}"

    final = start_import(folder, corpus.file)
    assert final.process.wait(timeout=SUBPROCESS_TIMEOUT) == 0, final.log.read_text()
    assert f"{TOTAL - held[-1]} accepted" in final.log.read_text()
    assert assert_consistent_prefixes(folder, corpus) == TOTAL


def test_a_killed_import_leaves_no_worker_processes_behind(
    corpus: Corpus, folder: Path, start_import: StartImport
) -> None:
    """SIGKILL of the import must not orphan the processes it started (they would wait
    forever on pipes to the dead parent and pile up with every crashed import)."""
    run = start_import(folder, corpus.file)
    deadline = time.monotonic() + 20
    while len(process_group(run.pid)) < 3 and time.monotonic() < deadline:  # + tracker, worker
        if run.process.poll() is not None:
            pytest.skip("this import ran without helper processes (one CPU)")
        time.sleep(0.05)
    time.sleep(0.5)  # let the helpers get busy

    kill_after(run, 0)

    orphans = wait_for_group_exit(run.pid, EXIT_GRACE)
    assert orphans == [], f"still running {EXIT_GRACE}s after the import died: {describe(orphans)}"
