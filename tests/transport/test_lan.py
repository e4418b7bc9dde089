"""The UDP endpoint of LAN discovery, on 127.0.0.1 only (unicast between ephemeral ports),
and the interface filter with recorded inputs (PROTOCOL.md §11)."""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Awaitable, Callable

import pytest

from ssbsync.transport.lan import (
    IFF_BROADCAST,
    IFF_LOOPBACK,
    IFF_UP,
    LanError,
    UdpEndpoint,
    broadcast_targets,
    is_broadcast_target,
)

HOST = "127.0.0.1"


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


async def until(check: Callable[[], bool], seconds: float = 5) -> None:
    for _ in range(int(seconds * 100)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


class Inbox:
    def __init__(self) -> None:
        self.items: list[tuple[bytes, str]] = []

    def __call__(self, payload: bytes, sender: str) -> None:
        self.items.append((payload, sender))


def test_datagrams_go_both_ways() -> None:
    async def scenario() -> None:
        a_inbox, b_inbox = Inbox(), Inbox()
        async with (
            await UdpEndpoint.open(0, a_inbox, HOST) as a,
            await UdpEndpoint.open(0, b_inbox, HOST) as b,
        ):
            assert a.port != b.port and a.port > 0
            assert a.send(b"hello b", [(HOST, b.port)]) == 1
            assert b.send(b"hello a", [(HOST, a.port)]) == 1
            await until(lambda: bool(a_inbox.items and b_inbox.items))
            assert b_inbox.items == [(b"hello b", HOST)]
            assert a_inbox.items == [(b"hello a", HOST)]
            assert (a.sent, b.received) == (1, 1)

    run(scenario)


def test_a_bad_destination_is_counted_and_the_others_still_get_it() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        async with (
            await UdpEndpoint.open(0, Inbox(), HOST) as a,
            await UdpEndpoint.open(0, inbox, HOST) as b,
        ):
            bad = [("not-an-ip", b.port), (HOST, 0), (HOST, 70000), ("::1", b.port)]
            assert a.send(b"x", [*bad, (HOST, b.port)]) == 1
            assert a.send_errors == len(bad)
            assert a.send(bytes(70_000), [(HOST, b.port)]) == 0  # EMSGSIZE from the kernel
            assert a.last_error is not None and "EMSGSIZE" in a.last_error
            await until(lambda: len(inbox.items) == 1)
            assert a.send(b"still fine", [(HOST, b.port)]) == 1
            await until(lambda: len(inbox.items) == 2)

    run(scenario)


def test_a_flood_of_garbage_leaves_the_endpoint_working() -> None:
    async def scenario() -> None:
        seen: list[int] = []

        def fussy(payload: bytes, sender: str) -> None:
            seen.append(len(payload))
            if payload[:1] == b"\xff":
                raise ValueError("a receiver with a bug")

        rng = random.Random(6)
        async with (
            await UdpEndpoint.open(0, fussy, HOST) as target,
            await UdpEndpoint.open(0, Inbox(), HOST) as sender,
        ):
            for i in range(600):
                size = rng.choice([0, 1, 100, 2049, 9000, 65_000])
                payload = bytes([0xFF if i % 3 == 0 else 0x00]) + rng.randbytes(size)
                sender.send(payload, [(HOST, target.port)])
                if i % 50 == 0:
                    await asyncio.sleep(0)  # let the receiver drain (the kernel may drop some)
            await until(lambda: target.received > 0)
            await asyncio.sleep(0.2)
            assert target.receive_errors > 0  # the receiver's bug was caught, not raised
            received_before = target.received
            sender.send(b"the last one", [(HOST, target.port)])
            await until(lambda: target.received > received_before)
            assert seen[-1] == len(b"the last one")
            assert max(seen) == 65_001  # a big datagram arrives whole; judging it is not ours

    run(scenario)


def test_the_port_can_be_shared() -> None:
    async def scenario() -> None:
        async with (
            await UdpEndpoint.open(0, Inbox(), HOST) as first,
            await UdpEndpoint.open(first.port, Inbox(), HOST) as second,
        ):
            assert second.port == first.port

    run(scenario)


def test_an_address_not_ours_cannot_be_bound() -> None:
    async def scenario() -> None:
        with pytest.raises(LanError, match=r"cannot listen for UDP on 203\.0\.113\.1"):
            await UdpEndpoint.open(0, Inbox(), "203.0.113.1")  # TEST-NET-3: not on this host

    run(scenario)


def test_a_closed_endpoint_sends_nothing_and_raises_nothing() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        async with await UdpEndpoint.open(0, inbox, HOST) as target:
            sender = await UdpEndpoint.open(0, Inbox(), HOST)
            await sender.aclose()
            assert sender.send(b"x", [(HOST, target.port)]) == 0
            sender.close()  # twice is fine
            await sender.aclose()
            await asyncio.sleep(0.05)
            assert inbox.items == []

    run(scenario)


UP_BROADCAST = IFF_UP | IFF_BROADCAST


@pytest.mark.parametrize(
    ("flags", "address", "broadcast", "usable"),
    [
        (UP_BROADCAST | 0x40 | 0x1000, "192.168.1.5", "192.168.1.255", True),  # eth0, RUNNING
        (UP_BROADCAST, "10.0.0.2", "10.255.255.255", True),
        (IFF_UP | IFF_LOOPBACK, "127.0.0.1", "0.0.0.0", False),  # lo
        (UP_BROADCAST | IFF_LOOPBACK, "127.0.0.1", "127.255.255.255", False),
        (IFF_BROADCAST, "192.168.1.5", "192.168.1.255", False),  # down
        (IFF_UP | 0x10, "10.8.0.2", "0.0.0.0", False),  # point-to-point (a VPN tun)
        (UP_BROADCAST, "0.0.0.0", "192.168.1.255", False),
        (UP_BROADCAST, "192.168.1.5", "0.0.0.0", False),
        (UP_BROADCAST, "fe80::1", "ff02::1", False),
    ],
)
def test_which_interfaces_are_broadcast_targets(
    flags: int, address: str, broadcast: str, usable: bool
) -> None:
    assert is_broadcast_target(flags, address, broadcast) is usable


def test_the_interfaces_of_this_machine() -> None:
    for target in broadcast_targets():
        assert not ipaddress.IPv4Address(target.address).is_loopback
        assert ipaddress.IPv4Address(target.broadcast) != ipaddress.IPv4Address("0.0.0.0")
        assert target.interface and target.interface != "lo"
