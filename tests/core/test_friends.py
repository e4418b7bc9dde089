"""The follow graph (§6, §12): contact edges, hops as ssb-friends 4.1.4 computes them."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssbsync.core.friends import (
    BLOCK,
    FOLLOW,
    NEUTRAL,
    ContactEdge,
    FollowGraph,
    edge_from_content,
)
from ssbsync.core.refs import FeedId, feed_id

FEEDS = [feed_id(bytes([i]) * 32) for i in range(12)]
ME, A, B, C, D, E, F, G = FEEDS[:8]


def follow(source: FeedId, dest: FeedId) -> ContactEdge:
    return ContactEdge(source, dest, following=True, blocking=None)


def unfollow(source: FeedId, dest: FeedId) -> ContactEdge:
    return ContactEdge(source, dest, following=False, blocking=None)


def block(source: FeedId, dest: FeedId) -> ContactEdge:
    return ContactEdge(source, dest, following=None, blocking=True)


def unblock(source: FeedId, dest: FeedId) -> ContactEdge:
    return ContactEdge(source, dest, following=None, blocking=False)


# --- edge_from_content ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "following", "blocking", "weight"),
    [
        ({"type": "contact", "contact": A, "following": True}, True, None, FOLLOW),
        ({"type": "contact", "contact": A, "following": False}, False, None, NEUTRAL),
        ({"type": "contact", "contact": A, "blocking": True}, None, True, BLOCK),
        ({"type": "contact", "contact": A, "blocking": False}, None, False, NEUTRAL),
        ({"type": "contact", "contact": A}, None, None, NEUTRAL),
        # a block wins over a follow in the same message (contacts.js:16-19)
        ({"type": "contact", "contact": A, "following": True, "blocking": True}, True, True, BLOCK),
        ({"type": "contact", "contact": A, "following": True, "blocking": False}, True, False, 1),
        # legacy `flagged` is a block, with JS truthiness
        ({"type": "contact", "contact": A, "flagged": {"reason": "spam"}}, None, True, BLOCK),
        ({"type": "contact", "contact": A, "following": False, "flagged": True}, False, True, -1),
        ({"type": "contact", "contact": A, "blocking": "yes"}, None, True, BLOCK),
        ({"type": "contact", "contact": A, "blocking": []}, None, True, BLOCK),
        ({"type": "contact", "contact": A, "blocking": 0}, None, False, NEUTRAL),
        ({"type": "contact", "contact": A, "blocking": ""}, None, False, NEUTRAL),
        ({"type": "contact", "contact": A, "blocking": None}, None, False, NEUTRAL),
        # `following` must be exactly true (=== true)
        ({"type": "contact", "contact": A, "following": 1}, False, None, NEUTRAL),
        ({"type": "contact", "contact": A, "following": "true"}, False, None, NEUTRAL),
    ],
)
def test_edge_from_valid_content(
    content: dict[str, object], following: bool | None, blocking: bool | None, weight: int
) -> None:
    edge = edge_from_content(ME, content)
    assert edge == ContactEdge(ME, A, following, blocking)
    assert edge is not None and edge.weight == weight


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("c2VjcmV0.box", id="private-box string"),
        pytest.param(None, id="null content"),
        pytest.param([{"type": "contact", "contact": A}], id="array content"),
        pytest.param({"contact": A, "following": True}, id="no type"),
        pytest.param({"type": "post", "contact": A, "following": True}, id="other type"),
        pytest.param({"type": "contact", "following": True}, id="no contact"),
        pytest.param({"type": "contact", "contact": None, "following": True}, id="null contact"),
        pytest.param({"type": "contact", "contact": "%" + A[1:-8] + ".sha256"}, id="msg id"),
        pytest.param({"type": "contact", "contact": A[:-1]}, id="truncated feed id"),
        pytest.param({"type": "contact", "contact": [A]}, id="contact array"),
    ],
)
def test_edge_from_invalid_content(content: object) -> None:
    assert edge_from_content(ME, content) is None


def test_edge_from_content_rejects_a_bad_author() -> None:
    assert edge_from_content(FeedId("@nope"), {"type": "contact", "contact": A}) is None


def test_require_type_false_is_ssb_friends_4_1_4() -> None:
    """flumeview-reduce without `map` reduces every message: only `contact` is checked."""
    content = {"type": "post", "contact": A, "following": True}
    assert edge_from_content(ME, content, require_type=False) == follow(ME, A)
    assert edge_from_content(ME, {"contact": A}, require_type=False) == ContactEdge(
        ME, A, None, None
    )
    assert edge_from_content(ME, "box", require_type=False) is None
    assert edge_from_content(ME, {"type": "post", "contact": "x"}, require_type=False) is None


# --- edges: follow / unfollow / block / unblock -----------------------------------------------


def test_sequences_later_overrides_earlier() -> None:
    g = FollowGraph()
    assert not g.is_following(ME, A) and not g.is_blocking(ME, A) and g.weight(ME, A) is None
    g.apply(follow(ME, A))
    assert g.is_following(ME, A) and not g.is_blocking(ME, A)
    assert not g.is_following(A, ME)  # directed
    g.apply(block(ME, A))
    assert g.is_blocking(ME, A) and not g.is_following(ME, A)
    assert g.blocked_by(ME) == {A}
    g.apply(unblock(ME, A))  # does not go back to following (ssb-friends test/friends.js)
    assert not g.is_blocking(ME, A) and not g.is_following(ME, A)
    assert g.weight(ME, A) == NEUTRAL and g.blocked_by(ME) == set()
    g.apply(follow(ME, A))
    g.apply(unfollow(ME, A))
    assert g.weight(ME, A) == NEUTRAL
    g.apply(follow(ME, A))
    g.apply(unblock(ME, A))  # {blocking: false} also ends a follow: the newest message decides
    assert not g.is_following(ME, A)


def test_edges_are_per_source_and_dest() -> None:
    g = FollowGraph([follow(ME, A), block(ME, B), follow(A, B), block(B, ME)])
    assert g.edges() == {ME: {A: FOLLOW, B: BLOCK}, A: {B: FOLLOW}, B: {ME: BLOCK}}
    assert g.blocked_by(ME) == {B}
    assert g.blocked_by(B) == {ME}
    assert g.blocked_by(A) == set()
    copy = g.edges()
    assert copy is not g.edges()


# --- hops -------------------------------------------------------------------------------------


def test_hops_of_an_empty_graph() -> None:
    assert FollowGraph().hops(ME, 3) == {ME: 0}
    assert FollowGraph().wanted(ME, 3) == {ME}


def test_negative_max_hops_is_refused() -> None:
    with pytest.raises(ValueError, match="max_hops"):
        FollowGraph().hops(ME, -1)


CHAIN = [follow(ME, A), follow(A, B), follow(B, C), follow(C, D)]


@pytest.mark.parametrize(
    ("max_hops", "expected"),
    [
        (0, {ME: 0}),
        (1, {ME: 0, A: 1}),
        (2, {ME: 0, A: 1, B: 2}),
        (3, {ME: 0, A: 1, B: 2, C: 3}),
        (9, {ME: 0, A: 1, B: 2, C: 3, D: 4}),
    ],
)
def test_hops_of_a_chain(max_hops: int, expected: dict[FeedId, int]) -> None:
    g = FollowGraph(CHAIN)
    assert g.hops(ME, max_hops) == expected
    assert g.wanted(ME, max_hops) == set(expected)


def test_hops_of_a_diamond_take_the_shortest_path() -> None:
    # ME -> A -> C -> E and ME -> B -> C; then ME -> E directly
    g = FollowGraph([follow(ME, A), follow(ME, B), follow(A, C), follow(B, C), follow(C, E)])
    assert g.hops(ME, 3) == {ME: 0, A: 1, B: 1, C: 2, E: 3}
    g.apply(follow(ME, E))
    assert g.hops(ME, 3) == {ME: 0, A: 1, B: 1, C: 2, E: 1}


def test_hops_through_cycles() -> None:
    g = FollowGraph([follow(ME, A), follow(A, B), follow(B, ME), follow(B, A), follow(A, A)])
    assert g.hops(ME, 5) == {ME: 0, A: 1, B: 2}
    assert g.hops(B, 5) == {B: 0, ME: 1, A: 1}  # any start, as hops({start})


def test_hops_from_another_start() -> None:
    g = FollowGraph(CHAIN)
    assert g.hops(B, 2) == {B: 0, C: 1, D: 2}
    assert g.wanted(D, 2) == {D}


def test_our_block_is_minus_one_and_stops_traversal() -> None:
    g = FollowGraph([follow(ME, A), follow(A, B), follow(B, C), block(ME, B)])
    assert g.hops(ME, 3) == {ME: 0, A: 1, B: -1}  # ssb-friends test/hops.js: -1
    assert g.wanted(ME, 3) == {ME, A}
    g.apply(unblock(ME, B))  # back to 2 because A follows (test/hops.js)
    assert g.hops(ME, 3) == {ME: 0, A: 1, B: 2, C: 3}


def test_unblocked_with_no_other_path_is_minus_two() -> None:
    g = FollowGraph([block(ME, F)])
    assert g.hops(ME, 2) == {ME: 0, F: -1}
    g.apply(unblock(ME, F))
    assert g.hops(ME, 2) == {ME: 0, F: -2}  # ssb-friends test/hops.js
    assert g.wanted(ME, 2) == {ME}


def test_our_block_beats_everyone_elses_follow() -> None:
    g = FollowGraph([follow(ME, A), follow(ME, B), follow(A, C), follow(B, C), block(ME, C)])
    assert g.hops(ME, 3)[C] == -1
    assert C not in g.wanted(ME, 3)


def test_block_by_a_friend_loses_to_a_follow_by_another_friend() -> None:
    """Same distance: -2 vs 2, the non-negative wins (simple.js min); C is traversed too."""
    g = FollowGraph([follow(ME, A), follow(ME, B), block(A, C), follow(B, C), follow(C, D)])
    assert g.hops(ME, 3) == {ME: 0, A: 1, B: 1, C: 2, D: 3}
    assert g.wanted(ME, 2) == {ME, A, B, C}


def test_block_by_a_friend_alone_excludes() -> None:
    g = FollowGraph([follow(ME, A), block(A, C), follow(C, D)])
    assert g.hops(ME, 3) == {ME: 0, A: 1, C: -2}
    assert g.wanted(ME, 3) == {ME, A}


def test_closer_block_beats_a_farther_follow() -> None:
    # A (hop 1) blocks C: -2; B (hop 2) follows C: 3. |-2| < 3, the block wins.
    g = FollowGraph([follow(ME, A), follow(A, B), block(A, C), follow(B, C)])
    assert g.hops(ME, 3) == {ME: 0, A: 1, B: 2, C: -2}
    # a farther block loses to a closer follow: B (hop 2) blocks D: -3; A follows D: 2.
    g = FollowGraph([follow(ME, A), follow(A, B), follow(A, D), block(B, D)])
    assert g.hops(ME, 3) == {ME: 0, A: 1, B: 2, D: 2}


def test_our_explicit_unfollow_hides_a_feed_only_a_farther_friend_follows() -> None:
    g = FollowGraph([follow(ME, A), follow(A, B), follow(B, C), unfollow(ME, C)])
    assert g.hops(ME, 3)[C] == -2  # -2 beats 3
    g.apply(follow(A, C))
    assert g.hops(ME, 3)[C] == 2  # 2 ties -2, the follow wins


def test_blocks_and_follows_at_max_are_not_expanded() -> None:
    g = FollowGraph([follow(ME, A), follow(A, B), block(B, C), follow(B, D), unfollow(A, E)])
    # B is at max 2: its edges count for nothing; A's unfollow of E gives -3 (|.| = max + 1)
    assert g.hops(ME, 2) == {ME: 0, A: 1, B: 2, E: -3}
    assert g.hops(ME, 3) == {ME: 0, A: 1, B: 2, C: -3, D: 3, E: -3}


def test_edges_into_start_do_not_move_it() -> None:
    g = FollowGraph([follow(ME, A), block(A, ME), unfollow(A, B), follow(B, ME)])
    assert g.hops(ME, 3)[ME] == 0
    assert ME in g.wanted(ME, 3)


def test_self_block_is_reported_but_start_stays_wanted() -> None:
    """JS would refuse its own id at the handshake too (isBlocking is a plain edge lookup)."""
    g = FollowGraph([block(ME, ME)])
    assert g.blocked_by(ME) == {ME}
    assert g.hops(ME, 2) == {ME: 0}


# --- properties ------------------------------------------------------------------------------

NODES = FEEDS[:8]
node = st.sampled_from(NODES)
kind = st.sampled_from([follow, unfollow, block, unblock])
edge_list = st.lists(st.builds(lambda k, s, d: k(s, d), kind, node, node), max_size=40)
follow_list = st.lists(st.builds(follow, node, node), max_size=30)
max_hops_st = st.integers(min_value=0, max_value=5)


def bfs(edges: list[ContactEdge], start: FeedId, max_hops: int) -> dict[FeedId, int]:
    """Plain BFS shortest path lengths over follow edges, up to `max_hops`."""
    out: dict[FeedId, set[FeedId]] = {}
    for e in edges:
        out.setdefault(e.source, set()).add(e.dest)
    dist = {start: 0}
    queue = deque([start])
    while queue:
        j = queue.popleft()
        if dist[j] >= max_hops:
            continue
        for k in out.get(j, ()):
            if k not in dist:
                dist[k] = dist[j] + 1
                queue.append(k)
    return dist


def reference_hops(edges: list[ContactEdge], start: FeedId, max_hops: int) -> dict[FeedId, int]:
    """The documented rule as a pull-style fixpoint over the reversed final edge set.

    Each feed's value is recomputed from all its in-edges from extendable feeds (0 <= v < max):
    follow -> v+1, block -> -(v+1), neutral -> -(v+2); the smallest |value| wins, a tie goes
    to the non-negative one. Iterated until nothing changes.
    """
    final: dict[tuple[FeedId, FeedId], int] = {}
    for e in edges:
        final[(e.source, e.dest)] = e.weight
    into: dict[FeedId, list[tuple[FeedId, int]]] = {}
    for (s, d), w in final.items():
        into.setdefault(d, []).append((s, w))
    values: dict[FeedId, int] = {start: 0}
    for _ in range(len(NODES) + 2):
        new: dict[FeedId, int] = {start: 0}
        for dest, sources in into.items():
            if dest == start:
                continue
            candidates = []
            for s, w in sources:
                v = values.get(s)
                if v is None or not 0 <= v < max_hops:
                    continue
                candidates.append(v + 1 if w == FOLLOW else -(v + 1) if w == BLOCK else -(v + 2))
            if candidates:
                new[dest] = min(candidates, key=lambda c: (abs(c), c < 0))
        if new == values:
            return values
        values = new
    raise AssertionError("reference did not converge")


@given(follow_list, node, max_hops_st)
def test_follow_only_hops_are_bfs_distances(
    edges: list[ContactEdge], start: FeedId, max_hops: int
) -> None:
    g = FollowGraph(edges)
    assert g.hops(start, max_hops) == bfs(edges, start, max_hops)
    assert g.wanted(start, max_hops) == set(bfs(edges, start, max_hops))


@settings(max_examples=300)
@given(edge_list, node, max_hops_st)
def test_hops_match_the_reference(edges: list[ContactEdge], start: FeedId, max_hops: int) -> None:
    g = FollowGraph(edges)
    hops = g.hops(start, max_hops)
    assert hops == reference_hops(edges, start, max_hops)
    assert hops[start] == 0
    assert all(-(max_hops + 1) <= h <= max_hops for h in hops.values())
    # non-negative hops are never shorter than plain BFS over the final follow edges
    follows = [e for e in edges if g.is_following(e.source, e.dest)]
    plain = bfs(follows, start, max_hops)
    wanted = g.wanted(start, max_hops)
    assert wanted == {f for f, h in hops.items() if h >= 0}
    assert all(f in plain and hops[f] >= plain[f] for f in wanted)
    assert not (g.blocked_by(start) - {start}) & wanted
    # every wanted feed but start has a follower one hop closer
    for f in wanted - {start}:
        assert any(g.is_following(p, f) and hops.get(p) == hops[f] - 1 for p in hops)


@given(edge_list, node, max_hops_st)
def test_applying_the_same_edges_twice_is_idempotent(
    edges: list[ContactEdge], start: FeedId, max_hops: int
) -> None:
    once = FollowGraph(edges)
    twice = FollowGraph(edges + edges)
    assert twice.edges() == once.edges()
    assert twice.hops(start, max_hops) == once.hops(start, max_hops)
    for e in edges:  # replaying the whole log again changes nothing
        once.apply(e)
    assert once.edges() == twice.edges()
    assert once.hops(start, max_hops) == twice.hops(start, max_hops)


@given(edge_list)
def test_last_edge_per_pair_decides(edges: list[ContactEdge]) -> None:
    g = FollowGraph(edges)
    last: dict[tuple[FeedId, FeedId], ContactEdge] = {}
    for e in edges:
        last[(e.source, e.dest)] = e
    assert FollowGraph(reversed(list(last.values()))).edges() == g.edges()
    for (s, d), e in last.items():
        assert g.is_following(s, d) == (e.weight == FOLLOW)
        assert g.is_blocking(s, d) == (e.weight == BLOCK)
