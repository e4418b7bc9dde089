"""The blob want/have reducer (PROTOCOL.md §8, ssb-blobs 1.2.2 inject.js behaviour)."""

from __future__ import annotations

import hashlib

from ssbsync.core.blobwants import (
    MAX_FORWARDED_WANTS,
    MAX_HAVES_PER_PEER,
    BlobWants,
    Broadcast,
    Fetch,
    Pushed,
    SendTo,
    parse_item,
)
from ssbsync.core.refs import BlobId, blob_id

A = BlobId(blob_id(hashlib.sha256(b"a").digest()))
B = BlobId(blob_id(hashlib.sha256(b"b").digest()))
P, Q, R = "@peer-p", "@peer-q", "@peer-r"


def connected(*peers: str, max_size: int = 1000) -> BlobWants:
    wants = BlobWants(max_size=max_size)
    for peer in peers:
        wants.connected(peer)
    return wants


def test_items_keep_only_blob_ids_with_integer_values() -> None:
    item = {A: -1, B: 5, "nonsense": -1, "&x.sha256": 3}
    assert parse_item(item) == {A: -1, B: 5}
    assert parse_item({A: True}) == {} and parse_item({A: 1.5}) == {}
    assert parse_item([A]) == {} and parse_item(None) == {}


def test_a_want_for_a_blob_we_hold_is_answered_to_that_peer_only() -> None:
    wants = connected(P, Q)
    assert wants.received(P, {A: -1}, {A: 42}) == [SendTo(P, {A: 42})]
    assert wants.wants == {}


def test_a_want_for_a_blob_we_lack_is_forwarded_one_hop_further() -> None:
    wants = connected(P, Q)
    assert wants.received(P, {A: -1}, {A: None}) == [Broadcast({A: -2})]
    assert wants.wants == {A: -2}
    # a farther want for the same blob changes nothing; a closer one is forwarded again
    assert wants.received(Q, {A: -2}, {A: None}) == []
    assert wants.received(Q, {A: 0}, {A: None}) == [Broadcast({A: -1})]


def test_sympathy_bounds_how_far_wants_travel() -> None:
    wants = connected(P)
    assert wants.received(P, {A: -2}, {A: None}) == [Broadcast({A: -3})]
    assert wants.received(P, {B: -3}, {B: None}) == []  # −4 would be beyond sympathy 3
    assert B not in wants.wants


def test_a_have_for_a_wanted_blob_under_the_limit_starts_one_fetch() -> None:
    wants = connected(P, Q)
    assert wants.want(A) == [Broadcast({A: -1})]
    assert wants.received(P, {A: 10}, {}) == [Fetch(P, A)]
    assert wants.received(Q, {A: 10}, {}) == []  # already fetching from P
    assert wants.added(A, 10) == [Broadcast({A: 10})]
    assert wants.wants == {} and wants.fetching == {}


def test_a_have_over_the_limit_is_not_fetched() -> None:
    wants = connected(P, max_size=100)
    wants.want(A)
    assert wants.received(P, {A: 100}, {}) == []  # ssb-blobs fetches only size < max
    assert wants.received(P, {A: 99}, {}) == [Fetch(P, A)]


def test_want_goes_straight_to_a_known_holder() -> None:
    wants = connected(P)
    wants.received(P, {A: 7}, {})  # not wanted yet: only remembered
    assert wants.want(A) == [Fetch(P, A)]


def test_a_failed_fetch_moves_to_another_holder_or_asks_again() -> None:
    wants = connected(P, Q)
    wants.want(A)
    wants.received(P, {A: 7}, {})
    wants.received(Q, {A: 7}, {})
    assert wants.fetch_failed(P, A) == [Fetch(Q, A)]
    assert wants.fetch_failed(Q, A) == [Broadcast({A: -1})]
    assert wants.fetching == {}


def test_a_disconnected_peer_is_no_longer_a_holder() -> None:
    wants = connected(P)
    wants.received(P, {A: 7}, {})
    wants.disconnected(P)
    assert wants.want(A) == [Broadcast({A: -1})]


def test_the_first_item_carries_wants_and_pushes() -> None:
    wants = connected(P, Q, R)
    assert wants.first_item() == {}
    wants.want(A)
    assert wants.push(B) == [Broadcast({B: -1})]
    assert wants.first_item() == {A: -1, B: -1}
    wants.received(P, {B: 3}, {})
    wants.received(Q, {B: 3}, {})
    assert wants.received(R, {B: 3}, {}) == [Pushed(B, (P, Q, R))]
    assert wants.first_item() == {A: -1}


def test_haves_are_answered_before_forwarded_wants_in_one_item() -> None:
    wants = connected(P)
    actions = wants.received(P, {A: -1, B: -1}, {A: 5, B: None})
    assert actions == [SendTo(P, {A: 5}), Broadcast({B: -2})]


def many_ids(count: int) -> list[BlobId]:
    return [BlobId(blob_id(hashlib.sha256(str(n).encode()).digest())) for n in range(count)]


def test_a_flood_of_wants_and_haves_is_bounded() -> None:
    wants = connected(P)
    flood = many_ids(MAX_FORWARDED_WANTS + 5)
    wants.received(P, dict.fromkeys(flood, -1), {})
    assert len(wants.wants) == MAX_FORWARDED_WANTS
    assert wants.want(A) == [Broadcast({A: -1})]  # our own wants still count
    haves = many_ids(MAX_HAVES_PER_PEER + 50)[-(MAX_HAVES_PER_PEER + 5) :]
    wants.received(P, dict.fromkeys(haves, 9), {})
    assert len(wants.available[P]) <= MAX_HAVES_PER_PEER + MAX_FORWARDED_WANTS
    wants.received(P, {B: 9}, {})
    assert B not in wants.available[P]  # not wanted, and the peer's quota is used up
