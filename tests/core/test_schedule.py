"""The connection policy on fake time: back-off, the connection quota, rotation, and what is
never dialled (ssbsync.core.schedule; PROTOCOL.md §14)."""

from __future__ import annotations

import dataclasses

import pytest

from ssbsync.core.address import AddressError
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId
from ssbsync.core.schedule import (
    Connection,
    PeerRecord,
    Policy,
    announced,
    attempted,
    backoff,
    ended,
    failed,
    parse_peer_address,
    plan,
    pub_address,
    succeeded,
)

POLICY = Policy(max_connections=2, backoff_base=2.0, backoff_cap=60.0, rotate_after=100.0)
ME = Keypair.from_seed(b"\x00" * 32).id


def key(n: int) -> FeedId:
    return Keypair.from_seed(bytes([n]) * 32).id


def peer(n: int, source: str = "pub", **fields: object) -> PeerRecord:
    address = parse_peer_address({"host": "10.0.0.1", "port": 8000 + n, "key": key(n)})
    return dataclasses.replace(PeerRecord.new(address, source), **fields)  # type: ignore[arg-type]


def keys(records: tuple[PeerRecord, ...]) -> list[FeedId]:
    return [r.key for r in records]


def test_backoff_doubles_and_caps() -> None:
    assert [backoff(n, POLICY) for n in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff(10_000, POLICY) == 60  # no overflow however long a peer stays away


def test_failures_push_the_next_attempt_out_until_a_success_resets_them() -> None:
    record, now, waits = peer(1), 1000.0, []
    for _ in range(7):
        record = failed(attempted(record, now), now, POLICY)
        waits.append(record.next_attempt - now)
        assert not plan([record], [], [], record.next_attempt - 0.01, POLICY, me=ME).dial
        assert plan([record], [], [], record.next_attempt, POLICY, me=ME).dial == (record,)
        now = record.next_attempt
    assert waits == [4, 8, 16, 32, 60, 60, 60]
    record = succeeded(record, now)
    assert record.failures == 0 and record.last_success == now


def test_a_session_cut_short_counts_as_a_failure_a_long_one_does_not() -> None:
    short = ended(peer(1, failures=2), 500.0, since=499.0, policy=POLICY)
    assert short.failures == 3 and short.next_attempt == 500 + 16
    long = ended(peer(1, failures=2), 500.0, since=100.0, policy=POLICY)
    assert long.failures == 0 and long.next_attempt == 502
    assert (long.sessions, long.connected_seconds) == (1, 400.0)


def test_at_most_max_connections_least_recently_tried_first() -> None:
    table = [peer(1, state_change=30.0), peer(2), peer(3, state_change=10.0), peer(4)]
    first = plan(table, [], [], 100.0, POLICY, me=ME)
    assert keys(first.dial) == [key(2), key(4)]  # never tried before tried, then by address
    connected = [Connection(key(2), 100.0, True, False)]
    second = plan(table, connected, [key(4)], 101.0, POLICY, me=ME)
    assert second.dial == ()  # one connected + one dialling = 2
    table[3] = failed(attempted(table[3], 100.0), 100.0, POLICY)  # peer 4 did not answer
    after = plan(table, connected, [], 101.0, POLICY, me=ME)
    assert keys(after.dial) == [key(3)]  # the oldest attempt of those due


def test_connections_outside_the_table_do_not_use_the_quota() -> None:
    strangers = [Connection(key(50 + i), 0.0, False, False) for i in range(5)]
    assert len(plan([peer(1), peer(2)], strangers, [], 1.0, POLICY, me=ME).dial) == 2


def test_never_ourselves_blocked_connected_dialling_or_twice_the_same_key() -> None:
    me = dataclasses.replace(peer(1), key=ME)
    other_address = dataclasses.replace(peer(5), address="net:10.0.0.9:1~shs:x", key=key(5))
    table = [me, peer(2), peer(3), peer(4), peer(5), other_address]
    wide = Policy(max_connections=10)
    decision = plan(
        table,
        [Connection(key(3), 0.0, False, False)],
        [key(4)],
        1.0,
        wide,
        me=ME,
        blocked={key(2)},
    )
    assert keys(decision.dial) == [key(5)]


def test_sources_can_be_switched_off() -> None:
    table = [peer(1, "seed"), peer(2, "pub")]
    assert keys(plan(table, [], [], 1.0, POLICY, me=ME, allowed={"seed"}).dial) == [key(1)]
    assert plan(table, [], [], 1.0, POLICY, me=ME, allowed=set()).dial == ()


def test_rotation_drops_the_oldest_idle_connection_we_dialled_when_someone_waits() -> None:
    table = [peer(1), peer(2), peer(3)]
    connections = [
        Connection(key(1), 0.0, True, True),
        Connection(key(2), 50.0, True, True),
    ]
    assert plan(table, connections, [], 120.0, POLICY, me=ME).drop == (key(1),)
    busy = [dataclasses.replace(c, idle=False) for c in connections]
    assert plan(table, busy, [], 120.0, POLICY, me=ME).drop == ()  # replication under way
    young = plan(table, connections, [], 99.0, POLICY, me=ME)
    assert young.drop == ()  # not connected long enough yet
    users = [dataclasses.replace(c, rotatable=False) for c in connections]
    assert plan(table, users, [], 120.0, POLICY, me=ME).drop == ()  # not ours to rotate
    nobody_waits = plan(table[:2], connections, [], 120.0, POLICY, me=ME)
    assert nobody_waits.drop == ()


def test_a_rotated_peer_goes_to_the_back_of_the_queue() -> None:
    table = [peer(1, state_change=0.0), peer(2, state_change=0.0), peer(3, state_change=5.0)]
    rotated = ended(table[0], 200.0, since=0.0, policy=POLICY)
    table[0] = rotated
    decision = plan(table, [], [], 300.0, Policy(max_connections=1), me=ME)
    assert keys(decision.dial) == [key(2)]


def test_wake_at_is_when_the_next_waiting_peer_is_due() -> None:
    table = [peer(1, next_attempt=50.0), peer(2, next_attempt=20.0)]
    assert plan(table, [], [], 10.0, POLICY, me=ME).wake_at == 20.0
    assert plan(table, [], [], 60.0, POLICY, me=ME).wake_at is None


def test_announcing_again_counts_announcers_and_a_stronger_source_wins() -> None:
    record = peer(1, "pub")
    assert announced(record, "pub", 0.0) == record
    assert announced(record, "local", 0.0).source == "local"
    assert announced(record, "stored", 0.0).announcers == 2
    waiting = dataclasses.replace(record, next_attempt=500.0)
    assert announced(waiting, "manual", 100.0).next_attempt == 100.0  # the user says: now


@pytest.mark.parametrize(
    "given",
    [
        "net:example.org:8008~shs:" + key(1)[1:-8],
        f"example.org:8008:{key(1)}",
        {"host": "example.org", "port": 8008, "key": key(1)},
        {"address": "net:example.org:8008~shs:" + key(1)[1:-8]},
    ],
)
def test_address_forms_all_become_one_canonical_string(given: object) -> None:
    assert str(parse_peer_address(given)) == "net:example.org:8008~shs:" + key(1)[1:-8]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "net:example.org:8008~noauth",
        "net:example.org:99999~shs:" + key(1)[1:-8],
        "net:exa mple.org:8008~shs:" + key(1)[1:-8],
        {"host": "example.org", "port": 8008, "key": "@nope.ed25519"},
        {"host": "", "port": 8008, "key": key(1)},
        {"host": "example.org", "port": True, "key": key(1)},
        42,
        None,
    ],
)
def test_bad_addresses_are_refused_with_a_reason(bad: object) -> None:
    with pytest.raises(AddressError):
        parse_peer_address(bad)


def test_a_serial_address_is_a_peer_address_with_no_host_check() -> None:
    given = "serial:/dev/rfcomm0~shs:" + key(1)[1:-8]
    address = parse_peer_address(given)
    assert (address.kind, address.host, address.port) == ("serial", "/dev/rfcomm0", 0)
    assert str(address) == given and address.feed == key(1)
    with pytest.raises(AddressError, match="names no key"):
        parse_peer_address("serial:/dev/rfcomm0~noauth")


def test_pub_messages_never_point_at_local_devices_or_sockets() -> None:
    bare = key(1)[1:-8]
    for local in (f"serial:/dev/ttyS0~shs:{bare}", f"unix:/tmp/socket~shs:{bare}"):
        assert pub_address({"type": "pub", "address": local}) is None


def test_pub_messages_announce_addresses_and_bad_ones_are_ignored() -> None:
    good = {"type": "pub", "address": {"host": "1.2.3.4", "port": 8008, "key": key(1)}}
    assert pub_address(good) is not None and pub_address(good).feed == key(1)  # type: ignore[union-attr]
    assert pub_address({"type": "pub", "address": f"1.2.3.4:8008:{key(1)}"}) is not None
    for bad in (
        {"type": "pub", "address": {"host": "1.2.3.4", "port": "x", "key": key(1)}},
        {"type": "pub"},
        {"type": "post", "address": good["address"]},
        "a private message (a string)",
    ):
        assert pub_address(bad) is None
