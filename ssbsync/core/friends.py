"""The follow graph: who follows and blocks whom, and which feeds to replicate (§6, §12).

A JS peer (ssb-server 16 runs ssb-friends 4.1.4) replicates every feed within `friends.hops`
of its own id (ssb-config default 2; §6) and refuses peers it blocks at the handshake with
"client is blocked" (§12). This module reproduces that computation as a pure value: the host
feeds in `ContactEdge`s in the order their messages were appended and asks for `hops`,
`wanted` and `blocked_by`.

Sources read (ssbc/ssb-friends@v4.1.4 = 502ed15; its dependencies layered-graph@1.1.3,
dynamic-dijkstra@1.0.1, flumeview-reduce 1.x):

* Edge value (ssb-friends `contacts.js:14-27`): for a message by `author` whose
  `content.contact` is a feed id, the edge author→contact becomes
  `blocking || flagged ? -1 : following === true ? 1 : -2` (JS truthiness for `blocking` and
  `flagged`, strict `=== true` for `following`). Each message *replaces* the edge, so the
  newest message alone decides it: `{blocking: false}` after a follow leaves the edge neutral
  (-2), not following (ssb-friends `test/friends.js`: "should not go back to following, after
  unblocking"); `{following: true, blocking: true}` is a block.
* No type check in JS: flumeview-reduce has no `map`, so ssb-friends reduces *every* message
  and only requires `content.contact` to be a feed id. `edge_from_content` requires
  `type == "contact"` by default (what clients publish); `require_type=False` gives the exact
  4.1.4 behaviour.
* `isFollowing` is `g[source][dest] >= 0`, `isBlocking` is `round(g[source][dest]) == -1`
  (`index.js:30-42`); the auth hook refuses `dest` when `isBlocking({source: our id, dest})`
  (`index.js:44-52`).
* Hops (layered-graph `index.js:50`, dynamic-dijkstra `index.js:37-62` `traverse` with the
  `simple.js` algebra): a Dijkstra from `start` (0) where a path length `a >= 0` crosses a
  follow edge to `a + 1`, a block edge to `-(a + 1)` and a neutral edge to `-(a + 2)`; negative
  lengths are never extended, and only lengths `0 <= a < max` are extended (`expand`), so
  feeds at exactly `max` are included but not traversed. Of two candidate lengths the one
  with the smaller absolute value wins, and on a tie the non-negative one (`simple.js:3-10`).
  The map therefore also holds negative entries: -1 for a feed `start` blocks, -2 for one it
  explicitly unfollowed or one blocked by a feed at hop 1, and so on.
* Consequences (the "closest opinion wins" rule): a block by `start` beats any follow by
  others; a block by a hop-1 friend (-2) loses to a follow by another hop-1 friend (2), who is
  then replicated *and traversed* (the README's "but their friends won't be" is not what
  `simple.js` does); it wins over a follow from hop 2 (3). An explicit unfollow by `start`
  (-2) likewise hides a feed unless a hop-1 friend follows it.
* Wanted (`index.js:57-66`): `replicate.request(feed, hops >= 0)` for every entry, so the
  feeds to replicate are those with non-negative hops, `start` itself included.

JS updates its hops incrementally (dynamic-dijkstra `update`), which its tests check against
a full `traverse`; here every query runs the full traversal, level by level (all weights are
whole numbers, so levels are Dijkstra's order).

Invariants (checked by the tests): the graph holds at most one value per (source, dest), the
one of the last edge applied; `hops(start, m)[start] == 0`; applying an edge twice changes
nothing; a feed that `start` blocks is never in `wanted(start, m)` (unless it is `start`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from ssbsync.core.refs import FeedId, is_feed_id

FOLLOW: Final = 1  # ssb-friends edge values (contacts.js:16-19)
BLOCK: Final = -1
NEUTRAL: Final = -2  # unfollowed, unblocked, or a contact message asserting neither

DEFAULT_MAX_HOPS: Final = 2  # ssb-config 3.4.4 `friends.hops` (§6)


@dataclass(frozen=True, slots=True)
class ContactEdge:
    """What one contact message by `source` says about `dest`.

    `following`: True for `following: true`, False if the field is present with any other
    value, None if absent. `blocking`: True if `blocking` or `flagged` is JS-truthy, False if
    either field is present but falsy, None if both are absent.
    """

    source: FeedId
    dest: FeedId
    following: bool | None
    blocking: bool | None

    @property
    def weight(self) -> int:
        """The ssb-friends edge value: BLOCK beats FOLLOW; anything else is NEUTRAL."""
        if self.blocking:
            return BLOCK
        if self.following:
            return FOLLOW
        return NEUTRAL


def _js_truthy(value: object) -> bool:
    """JavaScript truthiness of a JSON value (empty arrays and objects are truthy in JS)."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return True


def edge_from_content(
    author: FeedId, content: object, *, require_type: bool = True
) -> ContactEdge | None:
    """The edge a message's content asserts, or None if it is not a usable contact message.

    None when: `author` is not a feed id; `content` is not an object (e.g. a private message's
    box string); `require_type` and `content["type"] != "contact"`; or `content["contact"]` is
    not a feed id.
    """
    if not is_feed_id(author) or not isinstance(content, dict):
        return None
    if require_type and content.get("type") != "contact":
        return None
    dest = content.get("contact")
    if not is_feed_id(dest):
        return None
    following: bool | None = None
    if "following" in content:
        following = content["following"] is True
    blocking: bool | None = None
    if "blocking" in content or "flagged" in content:
        blocking = _js_truthy(content.get("blocking")) or _js_truthy(content.get("flagged"))
    return ContactEdge(FeedId(author), FeedId(str(dest)), following, blocking)


def _closer(current: int | None, candidate: int) -> int:
    """dynamic-dijkstra `simple.js` min: smaller |length| wins; on a tie, non-negative wins."""
    if current is None:
        return candidate
    if abs(current) == abs(candidate):
        return max(current, candidate)
    return current if abs(current) < abs(candidate) else candidate


class FollowGraph:
    """The latest contact edge of every (source, dest) pair, and the hops computed from it."""

    __slots__ = ("_out",)

    def __init__(self, edges: Iterable[ContactEdge] = ()) -> None:
        self._out: dict[FeedId, dict[FeedId, int]] = {}
        for edge in edges:
            self.apply(edge)

    def apply(self, edge: ContactEdge) -> None:
        """Record `edge`; call in feed order, since a later edge replaces an earlier one."""
        self._out.setdefault(edge.source, {})[edge.dest] = edge.weight

    def weight(self, source: FeedId, dest: FeedId) -> int | None:
        """FOLLOW, BLOCK, NEUTRAL, or None if `source` never said anything about `dest`."""
        return self._out.get(source, {}).get(dest)

    def edges(self) -> Mapping[FeedId, Mapping[FeedId, int]]:
        """A copy of the graph as `{source: {dest: weight}}` (ssb-friends' `getGraph()`)."""
        return {source: dict(dests) for source, dests in self._out.items()}

    def is_following(self, source: FeedId, dest: FeedId) -> bool:
        return self.weight(source, dest) == FOLLOW

    def is_blocking(self, source: FeedId, dest: FeedId) -> bool:
        return self.weight(source, dest) == BLOCK

    def hops(self, start: FeedId, max_hops: int) -> dict[FeedId, int]:
        """ssb-friends' `hops({start, max})`: `start` is 0; negative entries are not wanted.

        Non-negative entries are at most `max_hops`; negative ones at most `max_hops + 1` in
        absolute value (a neutral edge from a feed at `max_hops - 1`).
        """
        if max_hops < 0:
            raise ValueError(f"max_hops must be >= 0, got {max_hops}")
        result: dict[FeedId, int] = {start: 0}
        frontier: dict[FeedId, None] = {start: None}
        for level in range(max_hops):
            reached: dict[FeedId, None] = {}
            for source in frontier:
                for dest, weight in self._out.get(source, {}).items():
                    if weight == FOLLOW:
                        candidate = level + 1
                    elif weight == BLOCK:
                        candidate = -(level + 1)
                    else:
                        candidate = -(level + 2)
                    value = _closer(result.get(dest), candidate)
                    result[dest] = value
                    if value == level + 1:
                        reached[dest] = None
            if not reached:
                break
            frontier = reached
        return result

    def wanted(self, me: FeedId, max_hops: int) -> set[FeedId]:
        """Feeds to replicate: non-negative hops from `me` (so `me` too), as ssb-friends asks."""
        return {feed for feed, hops in self.hops(me, max_hops).items() if hops >= 0}

    def blocked_by(self, me: FeedId) -> set[FeedId]:
        """Peers `me` blocks directly: refuse them at the handshake ("client is blocked")."""
        return {dest for dest, weight in self._out.get(me, {}).items() if weight == BLOCK}
