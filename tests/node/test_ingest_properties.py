"""Property: whatever order, repetition or truncation the input has, the store holds exactly the
contiguous prefix of each feed that the input contained, and stays consistent."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssbsync.core.errors import Reason
from ssbsync.core.message import Message
from ssbsync.core.refs import FeedId
from ssbsync.node import ingest
from ssbsync.node.ingest import Ingester
from ssbsync.node.store import Store

from .helpers import assert_store_holds_exactly, fork_of, make_feeds

FEEDS = make_feeds(authors=3, messages=24, seed=3)
AUTHORS = sorted(FEEDS.by_author)
FORKS = {(m.author, m.sequence): fork_of(FEEDS, m) for m in FEEDS.messages}


@dataclass(frozen=True)
class Case:
    inputs: list[Message]  # in arrival order, duplicates included
    fork: Message | None
    as_text: bool  # hand the ingester JSON text instead of parsed values
    batch_size: int


@st.composite
def cases(draw: st.DrawFn, with_fork: bool) -> Case:
    chosen: list[Message] = []
    for author in AUTHORS:
        feed = FEEDS.by_author[author]
        kept = draw(st.integers(0, len(feed)), label=f"kept of {author[:8]}")
        dropped = draw(st.sets(st.integers(1, len(feed)), max_size=2), label="dropped seqs")
        chosen += [m for m in feed[:kept] if m.sequence not in dropped]
    repeats = draw(st.lists(st.sampled_from(chosen), max_size=12)) if chosen else []
    fork = draw(st.sampled_from(list(FORKS.values()))) if with_fork else None
    forks = [fork] * draw(st.integers(1, 2)) if fork else []
    inputs = draw(st.permutations(chosen + repeats + forks))
    return Case(inputs, fork, draw(st.booleans()), draw(st.integers(1, 10)))


def expected_feeds(case: Case) -> dict[FeedId, list[Message]]:
    """Each feed's longest contiguous prefix in the input; a fork wins if it came first."""
    present = {m.key for m in case.inputs}
    expected: dict[FeedId, list[Message]] = {}
    for author, feed in FEEDS.by_author.items():
        prefix = 0
        while prefix < len(feed) and feed[prefix].key in present:
            prefix += 1
        expected[author] = feed[:prefix]
    fork = case.fork
    if fork is not None and len(expected[fork.author]) >= fork.sequence - 1:
        original = FEEDS.by_author[fork.author][fork.sequence - 1]
        order = [m.key for m in case.inputs]
        if original.key not in order or order.index(fork.key) < order.index(original.key):
            expected[fork.author] = [*expected[fork.author][: fork.sequence - 1], fork]
    return expected


def run(case: Case) -> None:
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest, "BATCH_SIZE", case.batch_size)
        store = Store(Path(folder) / "db.sqlite")
        try:
            inputs = [m.compact_json() if case.as_text else m.value for m in case.inputs]
            report = Ingester(store, workers=2).add(inputs)

            expected = expected_feeds(case)
            assert_store_holds_exactly(store, expected)
            assert report.accepted == sum(len(feed) for feed in expected.values())
            assert report.accepted + report.duplicates + report.rejected_total == len(inputs)
            allowed = {Reason.GAP, Reason.FORK} if case.fork else {Reason.GAP}
            assert set(report.rejected) <= allowed, report.examples
        finally:
            store.close()


def test_the_pre_generated_feeds_are_long_enough() -> None:
    assert len(FEEDS.by_author) == 3
    assert Counter(len(f) >= 5 for f in FEEDS.by_author.values()) == {True: 3}


@settings(max_examples=30, deadline=None)
@given(cases(with_fork=False))
def test_any_arrival_order_stores_each_feeds_contiguous_prefix(case: Case) -> None:
    run(case)


@settings(max_examples=30, deadline=None)
@given(cases(with_fork=True))
def test_one_fork_in_any_arrival_order_stores_one_valid_chain(case: Case) -> None:
    run(case)
