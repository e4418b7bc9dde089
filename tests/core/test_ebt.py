"""EBT replication reducer (PROTOCOL.md §7.3) and a seeded multi-node simulation of it."""

from __future__ import annotations

import pytest

from ssbsync.core.clock import Note
from ssbsync.core.ebt import (
    NOT_REPLICATING,
    Action,
    BlockFeed,
    EbtState,
    Event,
    MessageAppended,
    MessageReceived,
    MessageRejected,
    NotesReceived,
    PeerConnected,
    PeerDisconnected,
    SendMessages,
    SendNotes,
    StorePeerClock,
    Tick,
    UnwantFeed,
    WantFeed,
)
from ssbsync.core.errors import LocalProtocolError
from ssbsync.core.refs import FeedId
from tests.core.ebt_simulator import converged, make_id, run_scenario

A, B, C = make_id(100), make_id(101), make_id(102)  # peers
F, G, H = make_id(0), make_id(1), make_id(2)  # feeds


def rx(seq: int) -> Note:
    return Note(True, seq, True)


def lazy(seq: int) -> Note:
    return Note(True, seq, False)


def make(clock: dict[FeedId, int] | None = None, wants: tuple[FeedId, ...] = (F,)) -> EbtState:
    state = EbtState(clock)
    for feed in wants:
        assert state.handle(WantFeed(feed)) == []  # nobody to tell yet
    return state


def step(state: EbtState, event: Event) -> list[Action]:
    actions = state.handle(event)
    state.check_invariants()
    return actions


def notes_to(actions: list[Action], peer: FeedId) -> dict[FeedId, Note] | None:
    found = [a.notes for a in actions if isinstance(a, SendNotes) and a.peer == peer]
    assert len(found) <= 1  # one notes object per peer per event
    return found[0] if found else None


def sends(actions: list[Action]) -> list[SendMessages]:
    return [a for a in actions if isinstance(a, SendMessages)]


def server_with(state: EbtState, peer: FeedId, now: float = 0.0) -> list[Action]:
    return step(state, PeerConnected(peer, now, is_client=False))


# --- who speaks first -------------------------------------------------------------------


def test_callee_sends_notes_on_connect_even_when_empty() -> None:
    state = make(wants=())
    assert step(state, PeerConnected(A, 0, is_client=False)) == [SendNotes(A, {})]


def test_callee_notes_list_wanted_feeds_with_our_sequence() -> None:
    state = make({F: 4}, wants=(F, G))
    assert notes_to(server_with(state, A), A) == {F: rx(4), G: rx(0)}


def test_caller_waits_for_the_callee_first_notes() -> None:
    state = make({F: 4})
    assert step(state, PeerConnected(A, 0, is_client=True)) == []
    actions = step(state, NotesReceived(A, {}, 0))
    assert notes_to(actions, A) == {F: rx(4)}
    assert step(state, NotesReceived(A, {}, 0)) == []  # later empty notes need no answer


def test_caller_always_answers_the_first_notes_even_with_nothing() -> None:
    state = make(wants=())
    step(state, PeerConnected(A, 0, is_client=True))
    assert step(state, NotesReceived(A, {}, 0)) == [SendNotes(A, {})]


def test_events_for_unknown_peers_and_double_connect_are_local_errors() -> None:
    state = make()
    with pytest.raises(LocalProtocolError):
        state.handle(NotesReceived(A, {}, 0))
    with pytest.raises(LocalProtocolError):
        state.handle(PeerDisconnected(A))
    server_with(state, A)
    with pytest.raises(LocalProtocolError):
        state.handle(PeerConnected(A, 0, is_client=True))


# --- request skipping -------------------------------------------------------------------


def test_request_skipping_with_the_stored_peer_clock() -> None:
    state = make({F: 5, G: 2, H: 7}, wants=(F, G, H, make_id(3)))
    stored = {F: 5, G: -1, H: 3}  # F unchanged, G not replicated by the peer, H changed
    actions = step(state, PeerConnected(A, 0, is_client=False, stored_clock=stored))
    assert notes_to(actions, A) == {H: rx(7), make_id(3): rx(0)}


def test_skipped_feed_still_gets_live_notes_when_we_get_ahead() -> None:
    state = make({F: 5})
    step(state, PeerConnected(A, 0, is_client=False, stored_clock={F: 5}))
    actions = step(state, MessageAppended(F, 6, 1))
    assert notes_to(actions, A) == {F: lazy(6)}


def test_disconnect_stores_the_peer_clock_for_next_time() -> None:
    state = make({F: 1}, wants=(F, G))
    server_with(state, A)
    step(state, NotesReceived(A, {F: lazy(3), G: NOT_REPLICATING}, 0))
    assert step(state, PeerDisconnected(A)) == [StorePeerClock(A, {F: 3, G: -1})]
    assert state.peers() == []


# --- answering notes --------------------------------------------------------------------


def test_unknown_feed_is_answered_with_minus_one_once() -> None:
    state = make()
    server_with(state, A)
    assert notes_to(step(state, NotesReceived(A, {G: rx(3)}, 0)), A) == {G: NOT_REPLICATING}
    assert step(state, NotesReceived(A, {G: rx(4)}, 0)) == []
    assert sends(step(state, MessageAppended(G, 1, 0))) == []  # nor do we send it


def test_a_feed_new_to_the_peer_is_answered_with_our_note() -> None:
    state = make({G: 2}, wants=(F, G))
    step(state, PeerConnected(A, 0, is_client=False, stored_clock={G: 2, F: 0}))
    # the peer mentions G (we skipped it): we answer, not receiving since it has nothing more
    actions = step(state, NotesReceived(A, {G: lazy(2)}, 0))
    assert notes_to(actions, A) == {G: lazy(2)}


def test_peer_that_does_not_want_but_is_behind_is_told_our_sequence() -> None:
    state = make({F: 9})
    step(state, PeerConnected(A, 0, is_client=False, stored_clock={F: 9}))
    actions = step(state, NotesReceived(A, {F: lazy(4)}, 0))
    assert notes_to(actions, A) == {F: lazy(9)}
    assert sends(actions) == []


# --- sending ----------------------------------------------------------------------------


def test_sends_the_range_the_peer_lacks_then_forwards_live() -> None:
    state = make({F: 5})
    server_with(state, A)
    actions = step(state, NotesReceived(A, {F: rx(2)}, 0))
    assert sends(actions) == [SendMessages(A, F, 3, 5)]
    assert sends(step(state, MessageAppended(F, 6, 1))) == [SendMessages(A, F, 6, 6)]
    # a repeated or older note does not make us resend
    assert sends(step(state, NotesReceived(A, {F: rx(2)}, 1))) == []


def test_nothing_is_sent_to_a_peer_that_does_not_ask() -> None:
    state = make({F: 5})
    server_with(state, A)
    assert sends(step(state, NotesReceived(A, {F: lazy(2)}, 0))) == []
    assert sends(step(state, MessageAppended(F, 6, 1))) == []


def test_messages_received_from_a_peer_are_not_echoed_back() -> None:
    state = make({F: 1})
    server_with(state, A)
    step(state, NotesReceived(A, {F: rx(3)}, 0))  # it wants F and has more: it is our source
    assert state.source_of(F) == A
    step(state, MessageReceived(A, F, 2, 1))
    assert sends(step(state, MessageAppended(F, 2, 1))) == []


def test_peer_minus_one_stops_sending_and_receiving() -> None:
    state = make({F: 1})
    server_with(state, A)
    step(state, NotesReceived(A, {F: rx(3)}, 0))
    step(state, NotesReceived(A, {F: NOT_REPLICATING}, 0))
    assert state.source_of(F) is None
    assert sends(step(state, MessageAppended(F, 2, 1))) == []


# --- partitioning and switching ---------------------------------------------------------


def test_a_feed_is_received_from_one_peer_only() -> None:
    state = make({F: 1})
    assert notes_to(server_with(state, A), A) == {F: rx(1)}
    assert notes_to(server_with(state, B), B) == {F: lazy(1)}  # already received from A
    assert state.source_of(F) == A


def test_switches_to_a_peer_further_ahead_than_the_source() -> None:
    state = make({F: 1})
    server_with(state, A)
    server_with(state, B)
    step(state, NotesReceived(A, {F: lazy(3)}, 0))
    actions = step(state, NotesReceived(B, {F: lazy(8)}, 0))
    assert state.source_of(F) == B
    assert notes_to(actions, A) == {F: lazy(1)}
    assert notes_to(actions, B) == {F: rx(1)}


def test_source_that_has_caught_us_up_hands_over_to_one_with_more() -> None:
    state = make({F: 1})
    server_with(state, A)
    server_with(state, B)
    step(state, NotesReceived(A, {F: lazy(3)}, 0))
    step(state, NotesReceived(B, {F: lazy(3)}, 0))
    assert state.source_of(F) == A
    step(state, NotesReceived(B, {F: lazy(4)}, 0))  # B is now ahead of the source's claim
    assert state.source_of(F) == B


def test_stalled_source_is_replaced_after_the_timeout() -> None:
    state = make({F: 1})
    server_with(state, A, now=0)
    server_with(state, B, now=0)
    step(state, NotesReceived(A, {F: lazy(10)}, 0))  # A claims 10 (maybe a lie)
    step(state, NotesReceived(B, {F: lazy(6)}, 0))
    assert state.source_of(F) == A
    assert state.next_deadline() == 3.0
    assert step(state, Tick(2.9)) == []
    actions = step(state, Tick(3.0))
    assert state.source_of(F) == B
    assert notes_to(actions, A) == {F: lazy(1)}
    assert notes_to(actions, B) == {F: rx(1)}
    # B delivers, and a stalled A is not taken back just because it still claims more
    for seq in range(2, 7):
        step(state, MessageReceived(B, F, seq, 3.5))
        step(state, MessageAppended(F, seq, 3.5))
    step(state, Tick(10))
    assert state.source_of(F) == A  # the only one left claiming more: a new chance
    assert state.next_deadline() == 13.0


def test_a_delivering_source_is_not_stalled() -> None:
    state = make({F: 1})
    server_with(state, A)
    server_with(state, B)
    step(state, NotesReceived(A, {F: lazy(10)}, 0))
    step(state, NotesReceived(B, {F: lazy(10)}, 0))
    for t in range(1, 9):
        step(state, MessageReceived(A, F, t + 1, float(t)))
        step(state, MessageAppended(F, t + 1, float(t)))
        step(state, Tick(float(t)))
    assert state.source_of(F) == A


def test_disconnected_source_is_replaced_at_once() -> None:
    state = make({F: 1})
    server_with(state, A)
    server_with(state, B)
    step(state, NotesReceived(A, {F: lazy(5)}, 0))
    step(state, NotesReceived(B, {F: lazy(4)}, 0))
    actions = step(state, PeerDisconnected(A))
    assert state.source_of(F) == B
    assert notes_to(actions, B) == {F: rx(1)}


# --- blocking ---------------------------------------------------------------------------


def test_fatal_rejection_blocks_the_feed_from_that_peer() -> None:
    state = make({F: 1})
    server_with(state, A)
    server_with(state, B)
    step(state, NotesReceived(A, {F: rx(5)}, 0))
    step(state, NotesReceived(B, {F: lazy(5)}, 0))
    step(state, MessageReceived(A, F, 2, 1))
    actions = step(state, MessageRejected(A, F, 2, fatal=True))
    assert notes_to(actions, A) == {F: NOT_REPLICATING}
    assert notes_to(actions, B) == {F: rx(1)}
    assert sends(step(state, MessageAppended(F, 2, 2))) == []  # A no longer gets F
    step(state, NotesReceived(A, {F: lazy(50)}, 2))
    assert state.source_of(F) == B
    # the block outlives the connection
    step(state, PeerDisconnected(A))
    assert F not in (notes_to(server_with(state, A), A) or {})


def test_non_fatal_rejection_changes_nothing() -> None:
    state = make({F: 1})
    server_with(state, A)
    step(state, NotesReceived(A, {F: lazy(5)}, 0))
    assert step(state, MessageRejected(A, F, 4, fatal=False)) == []
    assert state.source_of(F) == A


def test_unwant_and_global_block_say_minus_one() -> None:
    state = make({F: 1, G: 1}, wants=(F, G))
    server_with(state, A)
    assert notes_to(step(state, UnwantFeed(F)), A) == {F: NOT_REPLICATING}
    assert notes_to(step(state, BlockFeed(G)), A) == {G: NOT_REPLICATING}
    assert step(state, WantFeed(G)) == []  # a blocked feed stays blocked
    assert notes_to(step(state, WantFeed(F)), A) == {F: rx(1)}


def test_want_feed_asks_connected_peers() -> None:
    state = make(wants=())
    server_with(state, A)
    server_with(state, B)
    actions = step(state, WantFeed(F))
    assert notes_to(actions, A) == {F: rx(0)}
    assert notes_to(actions, B) == {F: lazy(0)}


# --- the simulated network --------------------------------------------------------------

SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_simulation_converges_despite_stallers_liars_and_forgers(seed: int) -> None:
    outcome = run_scenario(seed)
    net = outcome.net
    honest = [n for n in net.nodes.values() if n.kind == "honest"]
    assert outcome.settle_time is not None
    assert outcome.settle_time <= 30.0 + 15.0  # within 15 s of the last churn
    assert converged(net, [n.id for n in honest], outcome.authors)
    assert all(net.nodes[f].height(f) > 0 for f in outcome.authors)
    for node in net.nodes.values():  # the ingest never stored an invalid message
        assert all(m.valid for log in node.store.values() for m in log)
    # not grossly redundant: each message reaches each node at most a few times
    assert max(c for n in honest for c in n.deliveries.values()) <= 4
    needed = sum(net.nodes[f].height(f) for f in outcome.authors) * len(honest)
    assert sum(sum(n.deliveries.values()) for n in honest) <= 1.5 * needed


@pytest.mark.parametrize("seed", range(6))
def test_simulation_with_many_bad_peers(seed: int) -> None:
    bad = ("staller", "staller", "liar", "liar", "forger", "forger")
    outcome = run_scenario(seed, honest=5, bad=bad, authors=2)
    net = outcome.net
    assert outcome.settle_time is not None and outcome.settle_time <= 30.0 + 20.0
    assert sum(n.invalid_offered for n in net.nodes.values()) > 0  # forgers did try
    for node in net.nodes.values():
        assert all(m.valid for log in node.store.values() for m in log)


def test_simulation_is_deterministic() -> None:
    one, two = run_scenario(7), run_scenario(7)
    assert one.settle_time == two.settle_time
    assert one.net.events_handled == two.net.events_handled
    for node_id, node in one.net.nodes.items():
        assert node.deliveries == two.net.nodes[node_id].deliveries


def test_simulation_only_stallers_and_liars_as_bridges_cannot_cheat_convergence() -> None:
    # a staller and a liar are the only peers of one honest node until the final ring
    outcome = run_scenario(3, honest=4, bad=("staller", "liar"), authors=1, churn_until=10.0)
    assert outcome.settle_time is not None


def test_outstanding_says_what_is_left_with_a_peer() -> None:
    from ssbsync.core.clock import Note
    from ssbsync.core.ebt import (
        EbtState,
        MessageAppended,
        NotesReceived,
        PeerConnected,
        SendMessages,
        WantFeed,
    )
    from ssbsync.core.keys import Keypair

    me, peer, other = (Keypair.from_seed(bytes([i]) * 32).id for i in (1, 2, 3))
    state = EbtState({me: 3})
    for feed in (me, other):
        state.handle(WantFeed(feed))
    state.handle(PeerConnected(peer, 0.0, is_client=False))
    assert state.outstanding(peer) is None  # nothing heard yet
    actions = state.handle(
        NotesReceived(peer, {me: Note(True, 1, True), other: Note(True, 2, True)}, 1.0)
    )
    assert state.outstanding(peer) == {other: (0, 2)}  # it has 2 of `other`; we have none
    assert any(isinstance(a, SendMessages) and a.feed == me for a in actions)  # ours: sent
    state.handle(MessageAppended(other, 2, 2.0))
    assert state.outstanding(peer) == {}
