"""What to carry given two clocks (core/carry.py): the missing ranges, and the budget cut."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from ssbsync.core.carry import CarryRange, fit_budget, missing_ranges
from ssbsync.core.refs import FeedId

A, B, C = (FeedId(f"@{c * 43}=.ed25519") for c in "ABC")


def test_missing_ranges_are_what_we_hold_past_their_clock() -> None:
    ours = {A: 10, B: 5, C: 3}
    theirs = {A: 4, B: 5, C: -1}  # -1: they do not replicate C (EBT's note)
    assert missing_ranges(ours, theirs) == [CarryRange(A, 5, 10)]
    assert missing_ranges(ours, {}) == [
        CarryRange(A, 1, 10),
        CarryRange(B, 1, 5),
        CarryRange(C, 1, 3),
    ]
    assert missing_ranges(ours, {}, [B, FeedId("@" + "D" * 43 + "=.ed25519")]) == [
        CarryRange(B, 1, 5)
    ]
    assert missing_ranges({A: 3}, {A: 9}) == []  # they are ahead: nothing to carry


def test_a_range_that_does_not_fit_is_cut_to_a_prefix() -> None:
    ranges = [CarryRange(A, 1, 10), CarryRange(B, 1, 4)]
    taken, left = fit_budget(ranges, len, lambda r, room: r.first + room - 1, 12)
    assert taken == [CarryRange(A, 1, 10), CarryRange(B, 1, 2)]
    assert left == [CarryRange(B, 3, 4)]


sizes = st.lists(st.integers(1, 20), min_size=1, max_size=8)


@given(st.lists(sizes, min_size=1, max_size=4), st.integers(0, 200))
def test_the_cut_fits_the_budget_and_loses_nothing(per_feed: list[list[int]], budget: int) -> None:
    feeds = [FeedId(f"@{chr(65 + i) * 43}=.ed25519") for i in range(len(per_feed))]
    size_table = dict(zip(feeds, per_feed, strict=True))

    def size_of(r: CarryRange) -> int:
        return sum(size_table[r.feed][r.first - 1 : r.last])

    def prefix_within(r: CarryRange, room: int) -> int:
        last = r.first - 1
        for seq in range(r.first, r.last + 1):
            room -= size_table[r.feed][seq - 1]
            if room < 0:
                break
            last = seq
        return last

    ranges = [CarryRange(f, 1, len(s)) for f, s in size_table.items()]
    taken, left = fit_budget(ranges, size_of, prefix_within, budget)
    assert sum(size_of(r) for r in taken) <= budget
    for feed, sizes_ in size_table.items():  # each feed: a taken prefix, then the rest left
        mine = sorted([r for r in taken + left if r.feed == feed], key=lambda r: r.first)
        assert mine[0].first == 1 and mine[-1].last == len(sizes_)
        assert all(a.last + 1 == b.first for a, b in pairwise(mine))
