"""Which feeds to carry, as the Carry screen builds it up: ticked feeds, "within N hops",
or every feed — and the stick carry list (`CarrySpec`) or bundle options that says the same.

Pure (no I/O): the screen keeps one and redraws from it. The three ways to choose mirror
`stick.json`'s carry list (docs/bundle-format.md, "The stick"): named feeds, plus feeds within
`hops` of the place syncing, or, with neither, every feed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ssbsync.core.refs import FeedId
from ssbsync.node.browse import MAX_CARRY_HOPS, CarryFeed, CarrySpec


@dataclass
class CarryChoice:
    ticked: set[str] = field(default_factory=set)  # feeds chosen one by one
    hops: int | None = None  # "within N hops" is on: feeds that near are carried too
    every: bool = False  # every feed (a carry list naming none)
    blobs: bool = False  # the blobs the carried messages link to, too
    level: int = 1  # N, adjusted with +/-; `a` ticks the feeds within it

    @classmethod
    def from_spec(cls, spec: CarrySpec) -> CarryChoice:
        """A stick's carry list, to be shown and changed."""
        if not spec.feeds and spec.hops is None:
            return cls(every=True, blobs=spec.blobs)
        level = 1 if spec.hops is None else min(spec.hops, MAX_CARRY_HOPS)
        return cls(set(spec.feeds), spec.hops, False, spec.blobs, level)

    def within(self, feed: CarryFeed, level: int | None) -> bool:
        """Within `level` hops of us (blocked and unfollowed feeds never are)."""
        return level is not None and feed.hops is not None and 0 <= feed.hops <= level

    def carries(self, feed: CarryFeed) -> bool:
        return self.every or feed.id in self.ticked or self.within(feed, self.hops)

    def carried(self, feeds: Iterable[CarryFeed]) -> list[CarryFeed]:
        return [feed for feed in feeds if self.carries(feed)]

    @property
    def empty(self) -> bool:
        return not (self.every or self.ticked or self.hops is not None)

    def toggle(self, feed: CarryFeed, feeds: Iterable[CarryFeed]) -> None:
        """Tick or untick one feed; unticking one that a mode carries turns the mode into
        the ticks it stood for, less that feed."""
        if self.carries(feed) and feed.id not in self.ticked:
            self.ticked |= {f.id for f in self.carried(feeds)}
            self.every, self.hops = False, None
        self.ticked ^= {feed.id}

    def tick_within(self, feeds: Iterable[CarryFeed]) -> int:
        """Tick every feed within `level` hops; how many were not ticked before."""
        new = {f.id for f in feeds if self.within(f, self.level)} - self.ticked
        self.ticked |= new
        return len(new)

    def toggle_hops(self) -> None:
        self.hops = None if self.hops is not None else self.level
        self.every = False

    def toggle_every(self) -> None:
        self.every = not self.every

    def adjust(self, delta: int) -> None:
        self.level = max(0, min(MAX_CARRY_HOPS, self.level + delta))
        if self.hops is not None:
            self.hops = self.level

    def clear(self) -> None:
        self.ticked.clear()
        self.hops, self.every = None, False

    def spec(self, feeds: Iterable[CarryFeed]) -> CarrySpec:
        """The carry list: the ticks "within N hops" does not already cover, and N."""
        if self.every:
            return CarrySpec(blobs=self.blobs)
        covered = {f.id for f in feeds if self.within(f, self.hops)}
        chosen = tuple(FeedId(feed) for feed in sorted(self.ticked - covered))
        return CarrySpec(chosen, self.hops, self.blobs)

    def describe(self, feeds: Iterable[CarryFeed]) -> str:
        """What is carried, in words: "2 chosen feeds and feeds within 1 hop"."""
        spec = self.spec(feeds)
        parts = []
        if self.every:
            parts.append("every feed")
        if spec.feeds:
            parts.append(f"{len(spec.feeds)} chosen feed{'s' if len(spec.feeds) != 1 else ''}")
        if spec.hops is not None:
            parts.append(f"feeds within {spec.hops} hop{'s' if spec.hops != 1 else ''}")
        what = " and ".join(parts) or "nothing yet"
        return what + (", with their blobs" if self.blobs else "")
