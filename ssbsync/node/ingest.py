"""The one ingest path: every message that enters the store comes through `Ingester.add`.

Two stages (PROTOCOL.md §5.7): `checking.check_batch` applies every rule that needs only the
message and verifies its signature — in worker processes for large inputs, so all cores
work — then one apply thread applies the chain rules in feed order and commits each batch
in one transaction. A message is stored whole or not at all; duplicates are no-ops; forks,
gaps and invalid messages are rejected with their reason and touch nothing.

Messages may arrive out of order (a shuffled file): one that is ahead of its feed waits in a
bounded buffer until its predecessor arrives; whatever still waits at the end is a gap.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice

from ssbsync.core.errors import Reason, RemoteProtocolError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.message import ChainPosition, FeedState, check_chain
from ssbsync.core.refs import FeedId
from ssbsync.node.checking import Checked, Rejection, check_batch, exit_with_parent
from ssbsync.node.store import NewMessage, Store

BATCH_SIZE = 500  # messages per unit of checking work (what crosses to a worker)
COMMIT_SIZE = 2000  # messages per transaction, at most (fewer at the end of an input)
MAX_WAITING = 100_000  # out-of-order messages held for their predecessors
MAX_EXAMPLES = 50
_BAD_SIG = "the signature does not verify"
_FORK = "another message has this sequence"

__all__ = ["BATCH_SIZE", "IngestReport", "Ingester", "Rejection"]


@dataclass
class IngestReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[Reason] = field(default_factory=Counter)
    examples: list[Rejection] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def reject(self, rejection: Rejection) -> None:
        self.rejected[rejection.reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(rejection)

    def to_json(self, examples: bool = False) -> dict[str, JSONValue]:
        summary: dict[str, JSONValue] = {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": dict(sorted((r.value, n) for r, n in self.rejected.items())),
        }
        if examples:
            summary["examples"] = [e._asdict() | {"reason": e.reason.value} for e in self.examples]
        return summary

    @classmethod
    def from_json(cls, value: JSONValue) -> IngestReport:
        """The report a node sent back (`to_json(examples=True)`)."""
        if not isinstance(value, dict):
            raise ValueError(f"not an import report: {value!r}")
        report = cls(int(value.get("accepted", 0)), int(value.get("duplicates", 0)))
        for reason, count in dict(value.get("rejected") or {}).items():
            report.rejected[Reason(reason)] = int(count)
        for example in value.get("examples") or []:
            report.examples.append(Rejection(**(example | {"reason": Reason(example["reason"])})))
        return report


Progress = Callable[[int], None]  # called with the number of messages handled so far
# Called (on the apply thread) after each commit with the new heads of the feeds it extended.
OnCommit = Callable[[dict[FeedId, FeedState]], None]
_Waiting = dict[FeedId, dict[int, list[Checked]]]


@dataclass
class _Batch:
    """Messages appended since the last commit, committed together."""

    messages: list[NewMessage] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    heads: dict[FeedId, FeedState] = field(default_factory=dict)


class _Inline(Executor):
    """Runs submitted work at once on the caller's thread (small inputs: no process start)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        future: Future[object] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


class _Borrowed(Executor):
    """The ingester's long-lived worker pool, lent to one `add` call (which ends by shutting
    its executor down: a borrowed one stays up for the next call)."""

    def __init__(self, pool: Executor) -> None:
        self._pool = pool

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


class Ingester:
    """Validates and appends messages to `store`; one per store, used from one thread."""

    def __init__(
        self,
        store: Store,
        hmac_key: bytes | None = None,
        *,
        clock: Callable[[], float] = time.time,
        workers: int | None = None,
        on_commit: OnCommit | None = None,
    ) -> None:
        self._store = store
        self._on_commit = on_commit
        self._hmac_key = hmac_key
        self._clock = clock
        self._workers = workers or os.cpu_count() or 1
        self._heads: dict[FeedId, FeedState | None] = {}
        self._waiting = 0  # messages held in `waiting` for their predecessors
        self._batch = _Batch()  # appended but not yet committed (apply thread only)
        self._last_received_us = store.last_received_us()
        # Worker processes, started on the first large input and kept until close(): a node
        # ingests replication bursts all day, and spawning costs ~0.5 s each time.
        self._pool: ProcessPoolExecutor | None = None

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def add(
        self,
        values: Iterable[JSONValue],
        progress: Progress | None = None,
        *,
        durable: bool = False,
        parallel: bool = False,
    ) -> IngestReport:
        """Ingest message values (parsed JSON, or JSON text/bytes of one message each).

        `durable`: each commit is on disk before returning (our own messages).
        `parallel`: check large inputs in worker processes (spawned, so a calling script
        needs the usual `if __name__ == "__main__":` guard).
        """
        report = IngestReport()
        waiting: _Waiting = defaultdict(dict)
        self._heads.clear()  # another writer may have run since the last call
        self._waiting = 0
        self._batch = _Batch()
        handled = 0
        chunks = _chunks(values, BATCH_SIZE)
        first = next(chunks, [])
        with ExitStack() as stack:
            checkers = stack.enter_context(self._checkers(parallel and len(first) >= BATCH_SIZE))
            applier = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="apply"))
            in_flight: deque[Future[int]] = deque()
            for chunk in _prepend(first, chunks):
                checked = checkers.submit(check_batch, chunk, self._hmac_key)
                in_flight.append(applier.submit(self._apply, checked, waiting, report, durable))
                while len(in_flight) > 2 * self._workers + 2:  # bounds memory
                    handled += in_flight.popleft().result()
                    if progress:
                        progress(handled)
            in_flight.append(applier.submit(self._commit, report, durable))
            while in_flight:
                handled += in_flight.popleft().result()
        for feed_waiting in waiting.values():
            for candidates in feed_waiting.values():
                for c in candidates:
                    report.reject(c.rejection(Reason.GAP, "an earlier message is missing"))
        if progress:
            progress(handled)
        return report

    def _checkers(self, large: bool) -> Executor:
        if not large or self._workers < 2:
            return _Inline()
        if self._pool is None:
            # spawn, not fork: this process has threads (the apply thread, maybe asyncio).
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=context, initializer=exit_with_parent
            )
        return _Borrowed(self._pool)

    def _apply(
        self,
        checked: Future[list[Checked | Rejection]],
        waiting: _Waiting,
        report: IngestReport,
        durable: bool,
    ) -> int:
        results = checked.result()
        batch = self._batch
        for item in results:
            if isinstance(item, Rejection):
                report.reject(item)
            elif self._consider(item, batch, waiting, report):
                self._drain(item.author, batch, waiting, report)
        if len(batch.messages) >= COMMIT_SIZE:
            self._commit(report, durable)
        return len(results)

    def _commit(self, report: IngestReport, durable: bool) -> int:
        """Store what the apply steps collected, in one transaction."""
        batch, self._batch = self._batch, _Batch()
        self._store.append(batch.messages, batch.heads, durable=durable)
        report.accepted += len(batch.messages)
        if batch.messages and self._on_commit is not None:
            self._on_commit(batch.heads)
        return 0

    def _consider(
        self, msg: Checked, batch: _Batch, waiting: _Waiting, report: IngestReport
    ) -> bool:
        """Append, hold, or reject one message; True when it was appended."""
        try:
            position = check_chain(self._head(msg.author), msg)
        except RemoteProtocolError as err:
            report.reject(msg.rejection(err.reason, err.detail))
            return False
        if position is ChainPosition.AHEAD:
            self._hold(msg, waiting, report)
            return False
        if position is ChainPosition.BEHIND:
            if msg.key in batch.keys or self._store.key_at(msg.author, msg.sequence) == msg.key:
                report.duplicates += 1
            elif not msg.signature_ok:
                report.reject(msg.rejection(Reason.BAD_SIGNATURE, _BAD_SIG))
            else:
                report.reject(msg.rejection(Reason.FORK, _FORK))
            return False
        if not msg.signature_ok:
            report.reject(msg.rejection(Reason.BAD_SIGNATURE, _BAD_SIG))
            return False
        now_us = int(self._clock() * 1_000_000)
        self._last_received_us = max(now_us, self._last_received_us + 1)
        fields = (msg.key, msg.author, msg.sequence, msg.timestamp, msg.kind, msg.json)
        batch.messages.append(NewMessage(*fields, msg.links, self._last_received_us))
        batch.keys.add(msg.key)
        batch.heads[msg.author] = self._heads[msg.author] = msg.state()
        return True

    def _drain(
        self, author: FeedId, batch: _Batch, waiting: _Waiting, report: IngestReport
    ) -> None:
        """Append held messages of `author` that now follow its head."""
        held = waiting.get(author)
        while held:
            head = self._heads[author]
            candidates = held.pop((head.sequence if head else 0) + 1, None)
            if candidates is None:
                break
            self._waiting -= len(candidates)
            appended = False
            for c in candidates:
                if appended:
                    report.reject(c.rejection(Reason.FORK, _FORK))
                else:
                    appended = self._consider(c, batch, waiting, report)
        if held is not None and not held:
            del waiting[author]

    def _hold(self, msg: Checked, waiting: _Waiting, report: IngestReport) -> None:
        slot = waiting[msg.author].setdefault(msg.sequence, [])
        if any(c.key == msg.key for c in slot):
            report.duplicates += 1
        elif self._waiting >= MAX_WAITING:
            report.reject(msg.rejection(Reason.GAP, "too far ahead of its feed"))
        else:
            slot.append(msg)
            self._waiting += 1

    def _head(self, author: FeedId) -> FeedState | None:
        if author not in self._heads:
            self._heads[author] = self._store.feed_state(author)
        return self._heads[author]


def _chunks(values: Iterable[JSONValue], size: int) -> Iterator[list[JSONValue]]:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _prepend(first: list[JSONValue], rest: Iterator[list[JSONValue]]) -> Iterator[list[JSONValue]]:
    if first:
        yield first
    yield from rest
