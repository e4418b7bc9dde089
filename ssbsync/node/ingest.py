"""The one ingest path: every message that enters the store comes through `Ingester.add`.

Pipeline per batch (PROTOCOL.md §5.7): parse and check each message on this thread, verify
the signatures of the whole batch in a thread pool (PyNaCl releases the GIL, so two cores
verify at once) while the next batch is parsed, then apply the chain rules in feed order and
commit the batch in one transaction. A message is stored whole or not at all; duplicates are
no-ops; forks, gaps and invalid messages are rejected with their reason and touch nothing.

Messages may arrive out of order (a shuffled file): one that is ahead of its feed waits in a
bounded buffer until its predecessor arrives; whatever still waits at the end is a gap.
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

from ssbsync.core import jsonv8, links
from ssbsync.core.errors import Reason, RemoteProtocolError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.message import (
    ChainPosition,
    FeedState,
    Prepared,
    check_chain,
    prepare,
    verify_signature,
)
from ssbsync.core.refs import FeedId, MsgId
from ssbsync.node.store import NewMessage, Store

BATCH_SIZE = 2000
MAX_WAITING = 100_000  # out-of-order messages held for their predecessors
MAX_EXAMPLES = 50
_BAD_SIG = "the signature does not verify"
_FORK = "another message has this sequence"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str
    key: str | None = None
    author: str | None = None
    sequence: int | None = None


@dataclass
class IngestReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[Reason] = field(default_factory=Counter)
    examples: list[Rejection] = field(default_factory=list)
    accepted_keys: list[MsgId] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def reject(self, rejection: Rejection) -> None:
        self.rejected[rejection.reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(rejection)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": dict(sorted((r.value, n) for r, n in self.rejected.items())),
        }


@dataclass(slots=True)
class _Candidate:
    prepared: Prepared
    signature_ok: bool


Progress = Callable[[int], None]  # called with the number of messages handled so far


class Ingester:
    """Validates and appends messages to `store`; one per store, used from one thread."""

    def __init__(
        self,
        store: Store,
        hmac_key: bytes | None = None,
        *,
        clock: Callable[[], float] = time.time,
        workers: int | None = None,
    ) -> None:
        self._store = store
        self._hmac_key = hmac_key
        self._clock = clock
        self._workers = workers or os.cpu_count() or 1
        self._heads: dict[FeedId, FeedState | None] = {}
        self._waiting = 0  # messages held in `waiting` for their predecessors
        self._last_received = store.last_received()

    def add(
        self,
        values: Iterable[JSONValue],
        progress: Progress | None = None,
        *,
        durable: bool = False,
    ) -> IngestReport:
        """Ingest message values (parsed JSON, or JSON text/bytes of one message each).

        Three stages overlap: this thread parses and checks batch k+1 while the pool verifies
        signatures and one apply thread (chain rules, SQLite, which releases the GIL) commits
        batch k. All report and store mutation happens on the apply thread.
        """
        report = IngestReport()
        waiting: dict[FeedId, dict[int, list[_Candidate]]] = defaultdict(dict)
        self._heads.clear()  # another writer may have run since the last call
        self._waiting = 0
        handled = 0
        with (
            ThreadPoolExecutor(self._workers, thread_name_prefix="verify") as verifiers,
            ThreadPoolExecutor(1, thread_name_prefix="apply") as applier,
        ):
            in_flight: deque[Future[int]] = deque()
            for chunk in _chunks(values, BATCH_SIZE):
                prepared, bad = self._prepare_all(chunk)
                checks = self._verify_async(verifiers, prepared)
                in_flight.append(
                    applier.submit(self._apply, prepared, checks, bad, waiting, report, durable)
                )
                while len(in_flight) > 2:  # bounds memory to a few batches
                    handled += in_flight.popleft().result()
                    if progress:
                        progress(handled)
            while in_flight:
                handled += in_flight.popleft().result()
        for feed_waiting in waiting.values():
            for candidates in feed_waiting.values():
                for c in candidates:
                    report.reject(
                        _rejection(c.prepared, Reason.GAP, "an earlier message is missing")
                    )
        if progress:
            progress(handled)
        return report

    def _prepare_all(self, chunk: list[JSONValue]) -> tuple[list[Prepared], list[Rejection]]:
        prepared, rejected = [], []
        for value in chunk:
            try:
                if isinstance(value, str | bytes):
                    value = jsonv8.parse(value)
                prepared.append(prepare(value, self._hmac_key))
            except jsonv8.JSONParseError as err:
                rejected.append(Rejection(Reason.BAD_JSON, str(err)))
            except RemoteProtocolError as err:
                rejected.append(_describe(value, err))
        return prepared, rejected

    def _verify_async(
        self, pool: ThreadPoolExecutor, prepared: list[Prepared]
    ) -> list[Future[list[bool]]]:
        step = max(1, -(-len(prepared) // (self._workers * 2)))
        return [
            pool.submit(lambda part: [verify_signature(p) for p in part], prepared[i : i + step])
            for i in range(0, len(prepared), step)
        ]

    def _apply(
        self,
        prepared: list[Prepared],
        verified: list[Future[list[bool]]],
        bad: list[Rejection],
        waiting: dict[FeedId, dict[int, list[_Candidate]]],
        report: IngestReport,
        durable: bool,
    ) -> int:
        for rejection in bad:
            report.reject(rejection)
        results = [ok for future in verified for ok in future.result()]
        batch: list[NewMessage] = []
        new_heads: dict[FeedId, FeedState] = {}
        batch_keys: set[str] = set()
        for p, ok in zip(prepared, results, strict=True):
            candidate = _Candidate(p, ok)
            if self._consider(candidate, batch, batch_keys, new_heads, waiting, report):
                self._drain(p.message.author, batch, batch_keys, new_heads, waiting, report)
        self._store.append(batch, new_heads, durable=durable)
        report.accepted += len(batch)
        report.accepted_keys.extend(n.message.key for n in batch)
        return len(prepared) + len(bad)

    def _consider(
        self,
        candidate: _Candidate,
        batch: list[NewMessage],
        batch_keys: set[str],
        new_heads: dict[FeedId, FeedState],
        waiting: dict[FeedId, dict[int, list[_Candidate]]],
        report: IngestReport,
    ) -> bool:
        """Append, hold, or reject one message; True when it was appended."""
        msg = candidate.prepared.message
        head = self._head(msg.author)
        try:
            position = check_chain(head, msg)
        except RemoteProtocolError as err:
            report.reject(_rejection(candidate.prepared, err.reason, err.detail))
            return False
        if position is ChainPosition.AHEAD:
            self._hold(candidate, waiting, report)
            return False
        if position is ChainPosition.BEHIND:
            if msg.key in batch_keys or self._store.key_at(msg.author, msg.sequence) == msg.key:
                report.duplicates += 1
            elif not candidate.signature_ok:
                report.reject(_rejection(candidate.prepared, Reason.BAD_SIGNATURE, _BAD_SIG))
            else:
                report.reject(_rejection(candidate.prepared, Reason.FORK, _FORK))
            return False
        if not candidate.signature_ok:
            report.reject(_rejection(candidate.prepared, Reason.BAD_SIGNATURE, _BAD_SIG))
            return False
        self._last_received = max(self._clock() * 1000, self._last_received + 0.001)
        batch.append(NewMessage(msg, self._last_received, links.content_links(msg.content)))
        batch_keys.add(msg.key)
        new_heads[msg.author] = self._heads[msg.author] = msg.state()
        return True

    def _drain(
        self,
        author: FeedId,
        batch: list[NewMessage],
        batch_keys: set[str],
        new_heads: dict[FeedId, FeedState],
        waiting: dict[FeedId, dict[int, list[_Candidate]]],
        report: IngestReport,
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
                    report.reject(_rejection(c.prepared, Reason.FORK, _FORK))
                else:
                    appended = self._consider(c, batch, batch_keys, new_heads, waiting, report)
        if held is not None and not held:
            del waiting[author]

    def _hold(
        self,
        candidate: _Candidate,
        waiting: dict[FeedId, dict[int, list[_Candidate]]],
        report: IngestReport,
    ) -> None:
        msg = candidate.prepared.message
        slot = waiting[msg.author].setdefault(msg.sequence, [])
        if any(c.prepared.message.key == msg.key for c in slot):
            report.duplicates += 1
        elif self._waiting >= MAX_WAITING:
            report.reject(_rejection(candidate.prepared, Reason.GAP, "too far ahead of its feed"))
        else:
            slot.append(candidate)
            self._waiting += 1

    def _head(self, author: FeedId) -> FeedState | None:
        if author not in self._heads:
            self._heads[author] = self._store.feed_state(author)
        return self._heads[author]


def _rejection(prepared: Prepared, reason: Reason, detail: str) -> Rejection:
    m = prepared.message
    return Rejection(reason, detail, m.key, m.author, m.sequence)


def _describe(value: JSONValue, err: RemoteProtocolError) -> Rejection:
    if isinstance(value, dict):
        author, seq = value.get("author"), value.get("sequence")
        return Rejection(
            err.reason,
            err.detail,
            None,
            author if isinstance(author, str) else None,
            seq if type(seq) is int else None,
        )
    return Rejection(err.reason, err.detail)


def _chunks(values: Iterable[JSONValue], size: int) -> Iterator[list[JSONValue]]:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk
