"""The peer table: kept in the store across restarts, written next to the ingest path, fed by
config seeds and `pub` messages (ssbsync.node.peertable, ssbsync.node.scheduler)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from ssbsync.core.address import AddressError
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId
from ssbsync.core.schedule import Policy, attempted, failed
from ssbsync.node import config as node_config
from ssbsync.node.config import ConfigError
from ssbsync.node.peertable import PeerTable
from ssbsync.node.store import Store

from .nodes import run, running, until

ME = Keypair.from_seed(b"\x01" * 32).id


def key(n: int) -> FeedId:
    return Keypair.from_seed(bytes([n]) * 32).id


def bare(feed: FeedId) -> str:
    return feed[1:].removesuffix(".ed25519")


def address(n: int, port: int = 8008) -> str:
    return f"net:10.0.0.{n}:{port}~shs:{bare(key(n))}"


def open_table(folder: Path) -> tuple[Store, PeerTable]:
    store = Store(folder / "db.sqlite")  # runs the migrations
    return store, PeerTable(store.path, ME)


def test_the_table_survives_a_restart(tmp_path: Path) -> None:
    store, table = open_table(tmp_path)
    try:
        record, new = table.add(address(2), "seed", 100.0)
        assert new and record is not None and record.key == key(2)
        table.add({"host": "10.0.0.3", "port": 8008, "key": key(3)}, "pub", 100.0)
        table.put(failed(attempted(record, 200.0), 200.0, Policy()))
        table.add(address(4), "local", 100.0)  # found on the LAN: not kept
        table.flush()
    finally:
        table.close()
        store.close()
    store, again = open_table(tmp_path)
    try:
        assert sorted(p.address for p in again) == [address(2), address(3)]
        seed = again.get(address(2))
        assert seed is not None and seed.source == "seed"
        assert (seed.failures, seed.last_attempt, seed.next_attempt) == (1, 200.0, 204.0)
        removed = again.find(key(3))
        assert len(removed) == 1
        again.remove(removed[0])
        again.flush()
    finally:
        again.close()
        store.close()
    store, third = open_table(tmp_path)
    try:
        assert [p.address for p in third] == [address(2)]
    finally:
        third.close()
        store.close()


def test_bad_addresses_are_refused_and_our_own_is_ignored(tmp_path: Path) -> None:
    store, table = open_table(tmp_path)
    try:
        for bad in ("nonsense", "net:10.0.0.1:8008~noauth", {"host": "h", "port": 1}):
            with pytest.raises(AddressError):
                table.add(bad, "manual", 0.0)
        assert table.add(f"net:10.0.0.1:8008~shs:{bare(ME)}", "manual", 0.0) == (None, False)
        assert len(table) == 0
    finally:
        table.close()
        store.close()


def test_writes_wait_for_a_writer_holding_the_store_and_then_land(tmp_path: Path) -> None:
    """The ingest path writes on its own connection; the table's flush waits for its
    transaction instead of joining it or failing."""
    store, table = open_table(tmp_path)
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        table.add(address(2), "seed", 0.0)
        done = threading.Event()
        writer = threading.Thread(target=lambda: (table.flush(), done.set()))
        writer.start()
        time.sleep(0.3)
        assert not done.is_set()  # waiting for the other writer
        other.execute("ROLLBACK")  # the other transaction fails: ours is not part of it
        writer.join(10)
        assert done.is_set()
        rows = other.execute("SELECT address, source FROM peers").fetchall()
        assert rows == [(address(2), "seed")]
    finally:
        other.close()
        table.close()
        store.close()


def test_seeds_and_pub_messages_fill_the_table_and_bad_ones_are_ignored(tmp_path: Path) -> None:
    good = {"type": "pub", "address": {"host": "127.0.0.1", "port": 1, "key": key(5)}}
    legacy = {"type": "pub", "address": f"127.0.0.2:2:{key(6)}"}
    bad = [
        {"type": "pub", "address": {"host": "127.0.0.1", "port": "no", "key": key(7)}},
        {"type": "pub", "address": "not an address"},
        {"type": "pub"},
    ]
    seeds = [address(2), f"10.0.0.3:8008:{key(3)}"]
    no_dialling = {"seed": False, "global": False}

    async def scenario() -> None:
        async with running(tmp_path / "a", seeds=seeds, gossip=no_dialling) as node:
            for content in [good, *bad]:
                node.api.publish(content)
            await until(lambda: len(node.gossip.table or ()) == 3)
            node.api.publish(legacy)  # after the start: picked up after the commit
            await until(lambda: len(node.gossip.table or ()) == 4)
            found = {p.key: p.source for p in node.gossip.table or ()}
            assert found == {key(2): "seed", key(3): "seed", key(5): "pub", key(6): "pub"}
        async with running(tmp_path / "a", gossip=no_dialling) as node:  # no seeds now
            assert {p.key for p in node.gossip.table or ()} == {key(2), key(3), key(5), key(6)}

    run(scenario)


def test_a_bad_seed_or_gossip_setting_is_a_config_error_naming_it(tmp_path: Path) -> None:
    for raw, field in (
        ({"seeds": ["net:10.0.0.1:8008~shs:abc"]}, "seeds[0]"),
        ({"gossip": {"connections": -1}}, "gossip.connections"),
        ({"gossip": "on"}, "gossip must"),
    ):
        folder = tmp_path / field.replace(" ", "_")
        folder.mkdir()
        (folder / "config").write_text(json.dumps(raw))
        with pytest.raises(ConfigError, match=field.replace("[", r"\[")):
            node_config.load(folder)  # at load, like every other field
