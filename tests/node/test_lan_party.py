"""LAN party replication (`replicate.lanParty`, issue 6): from a peer met on the LAN a node
takes every feed that peer replicates, not only the ones it follows."""

from __future__ import annotations

from pathlib import Path

from .nodes import run, running, tcp_address, until


def test_a_lan_party_peer_gives_every_feed_it_holds(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running(tmp_path / "a") as a,
            running(tmp_path / "b") as b,
            running(tmp_path / "c") as c,
            running(tmp_path / "d") as d,
        ):
            for i in range(3):
                c.api.publish({"type": "post", "text": f"c{i}"})
            await b.connect(tcp_address(c))
            await until(lambda: b.api.store.vector_clock().sequence(c.id) == 3)

            # Without the party, d takes only b's own feed (the peer it met), not c's.
            b.api.publish({"type": "post", "text": "b0"})
            await d.connect(tcp_address(b))
            await until(lambda: d.api.store.vector_clock().sequence(b.id) == 1)
            assert d.api.store.vector_clock().sequence(c.id) == 0

            a.replicator.take_everything_from(b.id)
            await a.connect(tcp_address(b))
            await until(lambda: a.api.store.vector_clock().sequence(c.id) == 3)
            assert a.api.store.vector_clock().sequence(b.id) == 1
            c.api.publish({"type": "post", "text": "c3"})  # and it keeps flowing, live
            await until(lambda: a.api.store.vector_clock().sequence(c.id) == 4)
            assert d.api.store.vector_clock().sequence(c.id) == 0

    run(scenario)


def test_a_lan_party_never_takes_a_blocked_feed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running(tmp_path / "a") as a,
            running(tmp_path / "b") as b,
            running(tmp_path / "c") as c,
            running(tmp_path / "d") as d,
        ):
            c.api.publish({"type": "post", "text": "from c"})
            d.api.publish({"type": "post", "text": "from d"})
            await b.connect(tcp_address(c))
            await b.connect(tcp_address(d))
            await until(lambda: b.api.store.vector_clock().sequence(d.id) == 1)
            await until(lambda: b.api.store.vector_clock().sequence(c.id) == 1)
            a.api.publish({"type": "contact", "contact": d.id, "blocking": True})
            await until(lambda: d.id in a.social.blocked)
            a.replicator.take_everything_from(b.id)
            await a.connect(tcp_address(b))
            await until(lambda: a.api.store.vector_clock().sequence(c.id) == 1)
            assert a.api.store.vector_clock().sequence(d.id) == 0

    run(scenario)


def test_a_peer_marked_after_its_notes_came_still_gives_every_feed(tmp_path: Path) -> None:
    """A LAN peer may dial us before we hear its beacon: its notes came, we answered "not
    replicating" for the feeds we do not follow, and only then is it marked."""

    async def scenario() -> None:
        async with (
            running(tmp_path / "a") as a,
            running(tmp_path / "b") as b,
            running(tmp_path / "c") as c,
        ):
            c.api.publish({"type": "post", "text": "from c"})
            await b.connect(tcp_address(c))
            await until(lambda: b.api.store.vector_clock().sequence(c.id) == 1)
            await b.connect(tcp_address(a))
            await until(lambda: a.replicator.is_complete(b.id))
            assert a.api.store.vector_clock().sequence(c.id) == 0
            a.replicator.take_everything_from(b.id)
            await until(lambda: a.api.store.vector_clock().sequence(c.id) == 1)

    run(scenario)
