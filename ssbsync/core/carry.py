"""What to carry to a destination, given two vector clocks (sneakernet: bundles and sticks).

The same comparison a live EBT peer makes from notes (PROTOCOL.md §7): for each feed, the
destination holds a prefix up to its sequence, so what it lacks is the range after it. A
bundle or a stick is then just an offline peer whose clock came in a file.

Pure: clocks in, ranges out, deterministic order (by feed id), so a bundle written twice from
the same store is the same bundle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ssbsync.core.refs import FeedId


@dataclass(frozen=True, order=True)
class CarryRange:
    """Messages `first`..`last` (inclusive) of `feed`."""

    feed: FeedId
    first: int
    last: int

    def __len__(self) -> int:
        return self.last - self.first + 1


def missing_ranges(
    ours: Mapping[FeedId, int],
    theirs: Mapping[FeedId, int],
    feeds: Iterable[FeedId] | None = None,
) -> list[CarryRange]:
    """The ranges of `feeds` (every feed we hold when None) that we hold and they lack.

    A negative sequence in `theirs` is EBT's "do not replicate this feed" (§7.2): skipped.
    """
    chosen = sorted(ours if feeds is None else set(feeds))
    ranges = []
    for feed in chosen:
        have, held = ours.get(feed, 0), theirs.get(feed, 0)
        if held >= 0 and have > held:
            ranges.append(CarryRange(feed, held + 1, have))
    return ranges


def fit_budget(
    ranges: Iterable[CarryRange],
    size_of: Callable[[CarryRange], int],
    prefix_within: Callable[[CarryRange, int], int],
    budget: int,
) -> tuple[list[CarryRange], list[CarryRange]]:
    """Split `ranges` into what fits in `budget` bytes and what is left for the next time.

    Whole ranges are taken in order while they fit; a range that does not fit is cut to the
    prefix that does (`prefix_within(range, bytes)` gives its last sequence that fits, below
    `first` when none does) — feeds are prefix-valid, so a cut feed is still importable.
    """
    taken: list[CarryRange] = []
    left: list[CarryRange] = []
    for item in ranges:
        size = size_of(item)
        if size <= budget:
            taken.append(item)
            budget -= size
            continue
        last = prefix_within(item, budget) if budget > 0 else item.first - 1
        if last >= item.first:
            taken.append(CarryRange(item.feed, item.first, last))
            budget -= size_of(taken[-1])
            left.append(CarryRange(item.feed, last + 1, item.last))
        else:
            left.append(item)
    return taken, left
