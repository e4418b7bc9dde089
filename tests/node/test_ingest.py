"""The one ingest path (`ssbsync.node.ingest.Ingester.add`), with deterministic inputs."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from ssbsync.core.errors import Reason
from ssbsync.core.message import Message
from ssbsync.node import ingest
from ssbsync.node.ingest import Ingester
from ssbsync.node.store import Range, Store

from .helpers import (
    Feeds,
    assert_chains_verify,
    assert_store_holds_exactly,
    fork_of,
    snapshot,
    stored_keys,
    tampered,
    with_field,
)


def values(messages: list[Message] | tuple[Message, ...]) -> list[dict[str, object]]:
    return [m.value for m in messages]


def shuffled(messages: list[Message] | tuple[Message, ...], seed: int) -> list[Message]:
    out = list(messages)
    random.Random(seed).shuffle(out)
    return out


def rejection_for(report: ingest.IngestReport, key: str) -> ingest.Rejection:
    found = [r for r in report.examples if r.key == key]
    assert len(found) == 1, f"expected one rejection of {key}, got {report.examples}"
    return found[0]


# -- in order, out of order ------------------------------------------------------------------


def test_in_order_feeds_are_accepted(feeds: Feeds, ingester: Ingester, store: Store) -> None:
    report = ingester.add(values(feeds.messages))

    assert (report.accepted, report.duplicates, report.rejected_total) == (
        len(feeds.messages),
        0,
        0,
    )
    assert dict(store.vector_clock()) == feeds.clock
    assert store.check() == []
    assert_store_holds_exactly(store, feeds.by_author)


def test_report_serialises(feeds: Feeds, ingester: Ingester) -> None:
    report = ingester.add(values(feeds.messages))

    assert report.to_json() == {"accepted": len(feeds.messages), "duplicates": 0, "rejected": {}}


@pytest.mark.parametrize("form", ["compact JSON text", "UTF-8 bytes"])
def test_json_text_and_bytes_are_accepted(
    feeds: Feeds, ingester: Ingester, store: Store, form: str
) -> None:
    texts = [m.compact_json() for m in feeds.messages]
    report = ingester.add([t.encode() for t in texts] if form == "UTF-8 bytes" else texts)

    assert report.accepted == len(feeds.messages)
    assert_store_holds_exactly(store, feeds.by_author)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_shuffled_feeds_are_fully_accepted(
    feeds: Feeds, ingester: Ingester, store: Store, seed: int
) -> None:
    report = ingester.add(values(shuffled(feeds.messages, seed)))

    assert (report.accepted, report.duplicates, report.rejected_total) == (
        len(feeds.messages),
        0,
        0,
    )
    assert_store_holds_exactly(store, feeds.by_author)


def test_reversed_feeds_are_fully_accepted(feeds: Feeds, ingester: Ingester, store: Store) -> None:
    report = ingester.add(values(feeds.messages[::-1]))

    assert report.accepted == len(feeds.messages)
    assert_store_holds_exactly(store, feeds.by_author)


def test_a_later_call_continues_the_stored_feeds(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    half = len(feeds.messages) // 2
    ingester.add(values(feeds.messages[:half]))
    report = ingester.add(values(shuffled(feeds.messages[half:], seed=5)))

    assert (report.accepted, report.rejected_total) == (len(feeds.messages) - half, 0)
    assert_store_holds_exactly(store, feeds.by_author)


def test_a_new_ingester_continues_what_another_stored(feeds: Feeds, store: Store) -> None:
    half = len(feeds.messages) // 2
    Ingester(store).add(values(feeds.messages[:half]))
    report = Ingester(store).add(values(feeds.messages[half:]))

    assert (report.accepted, report.rejected_total) == (len(feeds.messages) - half, 0)
    assert_store_holds_exactly(store, feeds.by_author)


# -- duplicates ------------------------------------------------------------------------------


def test_the_same_feeds_twice_are_duplicates(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    ingester.add(values(feeds.messages))
    report = ingester.add(values(feeds.messages))

    assert (report.accepted, report.duplicates, report.rejected_total) == (
        0,
        len(feeds.messages),
        0,
    )
    assert_store_holds_exactly(store, feeds.by_author)


def test_duplicates_inside_one_call_are_stored_once(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    report = ingester.add(values(feeds.messages) + values(feeds.messages))

    assert (report.accepted, report.duplicates, report.rejected_total) == (
        len(feeds.messages),
        len(feeds.messages),
        0,
    )
    assert_store_holds_exactly(store, feeds.by_author)


def test_adjacent_duplicates_are_stored_once(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    doubled = [v for m in feeds.messages for v in (m.value, m.value)]
    report = ingester.add(doubled)

    assert (report.accepted, report.duplicates) == (len(feeds.messages), len(feeds.messages))
    assert_store_holds_exactly(store, feeds.by_author)


def test_duplicates_of_a_waiting_message_are_stored_once(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    feed = feeds.longest()
    m1, m2, m3 = feed[:3]
    report = ingester.add(values([m3, m3, m2, m3, m1, m2, m3]))

    assert (report.accepted, report.duplicates, report.rejected_total) == (3, 4, 0)
    assert_store_holds_exactly(store, {m1.author: [m1, m2, m3]})


def test_duplicates_of_a_message_that_never_fits_are_gaps_once(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    m5 = feeds.longest()[4]
    report = ingester.add([m5.value, m5.value])

    assert (report.accepted, report.duplicates, report.rejected) == (0, 1, {Reason.GAP: 1})
    assert snapshot(store) == ({}, 0)


# -- forks -----------------------------------------------------------------------------------


FORK_POSITIONS = ["first", "middle", "latest"]


def _fork_index(feed: list[Message], where: str) -> int:
    return {"first": 0, "middle": len(feed) // 2, "latest": len(feed) - 1}[where]


@pytest.mark.parametrize("where", FORK_POSITIONS)
def test_a_fork_after_the_stored_original_is_rejected(
    feeds: Feeds, ingester: Ingester, store: Store, where: str
) -> None:
    feed = feeds.longest()
    fork = fork_of(feeds, feed[_fork_index(feed, where)])
    ingester.add(values(feed))
    before = snapshot(store)

    report = ingester.add([fork.value])

    assert (report.accepted, report.duplicates, report.rejected) == (0, 0, {Reason.FORK: 1})
    rejection = rejection_for(report, fork.key)
    assert (rejection.author, rejection.sequence) == (fork.author, fork.sequence)
    assert snapshot(store) == before
    assert_store_holds_exactly(store, {fork.author: feed})


@pytest.mark.parametrize("where", FORK_POSITIONS)
def test_a_fork_after_the_original_in_the_same_call_is_rejected(
    feeds: Feeds, ingester: Ingester, store: Store, where: str
) -> None:
    feed = feeds.longest()
    fork = fork_of(feeds, feed[_fork_index(feed, where)])

    report = ingester.add([*values(feed), fork.value])

    assert (report.accepted, report.rejected) == (len(feed), {Reason.FORK: 1})
    assert rejection_for(report, fork.key).reason is Reason.FORK
    assert_store_holds_exactly(store, {fork.author: feed})


def test_a_fork_of_the_next_message_after_the_original_is_rejected(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    """Original and fork both extend the stored head; the first one to arrive wins."""
    feed = feeds.longest()
    k = len(feed) // 2
    ingester.add(values(feed[:k]))
    fork = fork_of(feeds, feed[k])

    report = ingester.add([feed[k].value, fork.value, *values(feed[k + 1 :])])

    assert (report.accepted, report.rejected) == (len(feed) - k, {Reason.FORK: 1})
    assert_store_holds_exactly(store, {fork.author: feed})


@pytest.mark.parametrize("where", ["first", "middle"])
def test_a_fork_that_arrives_first_stores_exactly_one_of_the_two(
    feeds: Feeds, ingester: Ingester, store: Store, where: str
) -> None:
    feed = feeds.longest()
    k = _fork_index(feed, where)
    original = feed[k]
    fork = fork_of(feeds, original)

    report = ingester.add([fork.value, *values(feed)])

    stored = store.key_at(fork.author, fork.sequence)
    assert stored in (fork.key, original.key)
    loser = original if stored == fork.key else fork
    assert rejection_for(report, loser.key).reason is Reason.FORK
    assert report.accepted + report.duplicates + report.rejected_total == len(feed) + 1
    assert store.check() == []
    assert_chains_verify(store)
    # Whichever won, the stored feed is one valid chain from seq 1.
    winner = fork if stored == fork.key else original
    assert stored_keys(store, fork.author)[: k + 1] == [m.key for m in feed[:k]] + [winner.key]


def test_a_fork_and_its_original_both_waiting_store_exactly_one(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    feed = feeds.longest()
    k = len(feed) // 2
    original, fork = feed[k], fork_of(feeds, feed[k])

    report = ingester.add([original.value, fork.value, *values(feed[:k])])

    assert report.accepted == k + 1
    assert report.rejected == {Reason.FORK: 1}
    assert rejection_for(report, fork.key).reason is Reason.FORK
    assert_store_holds_exactly(store, {fork.author: feed[: k + 1]})


def test_a_message_after_a_fork_point_with_another_previous_is_a_fork(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    """A stored fork makes the original's successor unacceptable (its previous is wrong)."""
    feed = feeds.longest()
    k = len(feed) // 2
    fork = fork_of(feeds, feed[k])
    ingester.add([*values(feed[:k]), fork.value])
    before = snapshot(store)

    report = ingester.add([feed[k + 1].value])

    assert report.rejected == {Reason.FORK: 1}
    assert snapshot(store) == before
    assert store.check() == []
    assert_chains_verify(store)


# -- gaps ------------------------------------------------------------------------------------


def test_a_gap_is_rejected_and_nothing_after_it_is_stored(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    feed = feeds.longest()
    without_4 = feed[:3] + feed[4:]

    report = ingester.add(values(without_4))

    assert report.accepted == 3
    assert report.rejected == {Reason.GAP: len(feed) - 4}
    gap_sequences = sorted(r.sequence for r in report.examples if r.reason is Reason.GAP)
    assert gap_sequences == list(range(5, len(feed) + 1))
    assert_store_holds_exactly(store, {feed[0].author: feed[:3]})


def test_supplying_the_missing_message_later_completes_the_feed(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    feed = feeds.longest()
    ingester.add(values(feed[:3] + feed[4:]))

    report = ingester.add(values(feed[3:]))

    assert (report.accepted, report.rejected_total) == (len(feed) - 3, 0)
    assert_store_holds_exactly(store, {feed[0].author: feed})


def test_a_feed_without_its_first_message_stores_nothing(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    feed = feeds.longest()

    report = ingester.add(values(feed[1:]))

    assert (report.accepted, report.rejected) == (0, {Reason.GAP: len(feed) - 1})
    assert snapshot(store) == ({}, 0)


def test_a_gap_in_one_feed_does_not_hold_back_the_others(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    feed = feeds.longest()
    gap_key = feed[3].key
    expected = {a: (f[:3] if a == feed[0].author else f) for a, f in feeds.by_author.items()}

    report = ingester.add([m.value for m in shuffled(feeds.messages, 9) if m.key != gap_key])

    assert report.rejected == {Reason.GAP: len(feed) - 4}
    assert_store_holds_exactly(store, expected)


# -- invalid messages ------------------------------------------------------------------------


def _store_with_first_half(feeds: Feeds, ingester: Ingester) -> tuple[list[Message], int]:
    feed = feeds.longest()
    k = len(feed) // 2
    ingester.add(values(feed[:k]))
    return feed, k


@pytest.mark.parametrize("target", ["next", "already stored"])
def test_a_tampered_message_is_rejected_as_bad_signature(
    feeds: Feeds, ingester: Ingester, store: Store, target: str
) -> None:
    feed, k = _store_with_first_half(feeds, ingester)
    victim = feed[k] if target == "next" else feed[k - 2]
    before = snapshot(store)

    report = ingester.add([tampered(victim)])

    assert (report.accepted, report.duplicates, report.rejected) == (
        0,
        0,
        {Reason.BAD_SIGNATURE: 1},
    )
    assert snapshot(store) == before
    assert_store_holds_exactly(store, {feed[0].author: feed[:k]})


def test_a_tampered_message_does_not_block_the_genuine_one(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    feed, k = _store_with_first_half(feeds, ingester)

    report = ingester.add([tampered(feed[k]), *values(feed[k:])])

    assert (report.accepted, report.rejected) == (len(feed) - k, {Reason.BAD_SIGNATURE: 1})
    assert_store_holds_exactly(store, {feed[0].author: feed})


def test_a_waiting_tampered_message_does_not_block_the_genuine_one(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    feed = feeds.longest()

    report = ingester.add([tampered(feed[2]), *values(feed[2:]), *values(feed[:2])])

    assert (report.accepted, report.rejected) == (len(feed), {Reason.BAD_SIGNATURE: 1})
    assert_store_holds_exactly(store, {feed[0].author: feed})


@pytest.mark.parametrize(
    ("make_value", "reason"),
    [
        pytest.param(lambda m: with_field(m, "hash", "sha512"), Reason.BAD_HASH, id="sha512"),
        pytest.param(lambda m: with_field(m, "sequence", "2"), Reason.BAD_SEQUENCE, id="seq-str"),
        pytest.param(lambda m: with_field(m, "author", "@bob"), Reason.BAD_AUTHOR, id="author"),
        pytest.param(lambda m: with_field(m, "content", "hi"), Reason.BAD_CONTENT, id="content"),
        pytest.param(
            lambda m: with_field(m, "signature", "nope"), Reason.BAD_SIGNATURE_FORMAT, id="sig"
        ),
        pytest.param(lambda m: [m.value], Reason.BAD_SHAPE, id="array"),
        pytest.param(lambda m: "{not json", Reason.BAD_JSON, id="not-json-text"),
        pytest.param(lambda m: b"\xff\xfe not json", Reason.BAD_JSON, id="not-json-bytes"),
        pytest.param(lambda m: m.compact_json()[:-1], Reason.BAD_JSON, id="truncated-json"),
    ],
)
def test_a_malformed_message_is_rejected_with_its_reason(
    feeds: Feeds,
    ingester: Ingester,
    store: Store,
    make_value: Callable[[Message], object],
    reason: Reason,
) -> None:
    feed, k = _store_with_first_half(feeds, ingester)
    before = snapshot(store)

    report = ingester.add([make_value(feed[k])])

    assert (report.accepted, report.duplicates, report.rejected) == (0, 0, {reason: 1})
    assert report.examples[0].reason is reason
    assert snapshot(store) == before
    assert store.check() == []


def test_rejections_are_counted_and_the_valid_rest_is_stored(
    feeds: Feeds, ingester: Ingester, store: Store
) -> None:
    feed = feeds.longest()
    other = next(f for f in feeds.by_author.values() if f is not feed)
    bad = ["{not json", with_field(feed[0], "hash", "sha512"), tampered(other[0])]

    report = ingester.add([bad[0], *values(feed), bad[1], bad[2]])

    assert report.accepted == len(feed)
    assert report.rejected == {Reason.BAD_JSON: 1, Reason.BAD_HASH: 1, Reason.BAD_SIGNATURE: 1}
    assert report.to_json()["rejected"] == {"bad_hash": 1, "bad_json": 1, "bad_signature": 1}
    assert_store_holds_exactly(store, {feed[0].author: feed})


# -- batches ---------------------------------------------------------------------------------


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(ingest, "BATCH_SIZE", 7)
    return 7


def test_many_batches_in_order(
    feeds: Feeds, ingester: Ingester, store: Store, small_batches: int
) -> None:
    assert len(feeds.messages) > 5 * small_batches
    report = ingester.add(values(feeds.messages))

    assert report.accepted == len(feeds.messages)
    assert_store_holds_exactly(store, feeds.by_author)


@pytest.mark.parametrize("seed", [0, 1])
def test_many_batches_out_of_order_across_boundaries(
    feeds: Feeds, ingester: Ingester, store: Store, small_batches: int, seed: int
) -> None:
    report = ingester.add(values(shuffled(feeds.messages, seed)))

    assert (report.accepted, report.rejected_total) == (len(feeds.messages), 0)
    assert_store_holds_exactly(store, feeds.by_author)


def test_many_batches_reversed_everything_waits_for_the_last_batch(
    feeds: Feeds, ingester: Ingester, store: Store, small_batches: int
) -> None:
    report = ingester.add(values(feeds.messages[::-1]))

    assert (report.accepted, report.rejected_total) == (len(feeds.messages), 0)
    assert_store_holds_exactly(store, feeds.by_author)


def test_many_batches_duplicates_across_boundaries(
    feeds: Feeds, ingester: Ingester, store: Store, small_batches: int
) -> None:
    report = ingester.add(values(shuffled(feeds.messages * 2, seed=4)))

    assert (report.accepted, report.duplicates, report.rejected_total) == (
        len(feeds.messages),
        len(feeds.messages),
        0,
    )
    assert_store_holds_exactly(store, feeds.by_author)


def test_many_batches_a_fork_in_a_later_batch_is_rejected(
    feeds: Feeds, ingester: Ingester, store: Store, small_batches: int
) -> None:
    feed = feeds.longest()
    fork = fork_of(feeds, feed[1])

    report = ingester.add([*values(feeds.messages), fork.value])

    assert report.rejected == {Reason.FORK: 1}
    assert_store_holds_exactly(store, feeds.by_author)


def test_progress_counts_every_message_handled(
    feeds: Feeds, ingester: Ingester, small_batches: int
) -> None:
    seen: list[int] = []
    inputs = [*values(feeds.messages), "{not json"]

    ingester.add(inputs, progress=seen.append)

    assert seen == sorted(seen)
    assert seen[-1] == len(inputs)


def test_parallel_checking_gives_the_same_result_as_inline(
    feeds: Feeds, store: Store, tmp_path: Path, small_batches: int
) -> None:
    feed = feeds.longest()
    fork = fork_of(feeds, feed[2])
    mixed = [
        *values(shuffled(feeds.messages * 2, seed=8)),
        fork.value,
        tampered(feed[0]),
        with_field(feed[1], "hash", "sha512"),
        "{not json",
    ]
    inline_store = Store(tmp_path / "inline.sqlite")
    try:
        inline = Ingester(inline_store, workers=2).add(mixed)
        inline_clock = dict(inline_store.vector_clock())
    finally:
        inline_store.close()

    report = Ingester(store, workers=2).add(mixed, parallel=True)

    assert report.to_json() == inline.to_json()
    assert report.rejected == {
        Reason.FORK: 1,
        Reason.BAD_SIGNATURE: 1,
        Reason.BAD_HASH: 1,
        Reason.BAD_JSON: 1,
    }
    assert dict(store.vector_clock()) == inline_clock == feeds.clock
    assert_store_holds_exactly(store, feeds.by_author)


def test_nothing_to_add_gives_an_empty_report(ingester: Ingester, store: Store) -> None:
    report = ingester.add([])

    assert report.to_json() == {"accepted": 0, "duplicates": 0, "rejected": {}}
    assert snapshot(store) == ({}, 0)


# -- limits and receive times ----------------------------------------------------------------


def test_when_the_waiting_room_is_full_the_excess_is_a_gap_and_the_store_a_prefix(
    feeds: Feeds, ingester: Ingester, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "MAX_WAITING", 3)
    feed = feeds.longest()

    report = ingester.add(values(feed[::-1]))  # every message but the last waits

    assert report.accepted == 1
    assert report.rejected == {Reason.GAP: len(feed) - 1}
    assert_store_holds_exactly(store, {feed[0].author: feed[:1]})
    assert ingester.add(values(feed)).accepted == len(feed) - 1


def test_rejection_examples_are_capped_but_the_counts_are_not(ingester: Ingester) -> None:
    report = ingester.add(["{not json"] * (ingest.MAX_EXAMPLES + 10))

    assert report.rejected == {Reason.BAD_JSON: ingest.MAX_EXAMPLES + 10}
    assert len(report.examples) == ingest.MAX_EXAMPLES


def test_receive_times_strictly_increase_even_when_the_clock_goes_back(
    feeds: Feeds, store: Store
) -> None:
    readings = iter([1000.0, 500.0, 500.0, 0.0] * len(feeds.messages))
    half = len(feeds.messages) // 2
    Ingester(store, clock=lambda: next(readings)).add(values(feeds.messages[:half]))
    Ingester(store, clock=lambda: 0.0).add(values(feeds.messages[half:]))

    received = [row.received for row in store.log(Range())]
    assert len(received) == len(feeds.messages)
    assert all(a < b for a, b in itertools.pairwise(received))
