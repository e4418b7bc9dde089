"""blobs.* on running nodes (PROTOCOL.md §8): the methods over the local socket, permissions,
and want/have replication between two ssbsync nodes in one process, both directions."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from ssbsync.core.keys import Keypair
from ssbsync.core.refs import blob_id
from ssbsync.node.client import Client, collect
from ssbsync.node.session import RemoteError

from .nodes import TIMEOUT, run, running, tcp_address


def id_of(data: bytes) -> str:
    return blob_id(hashlib.sha256(data).digest())


async def add(ssb: Client, data: bytes, chunk: int = 10_000, *expected: str) -> None:
    sink = await ssb.session.sink(["blobs", "add"], *expected)
    for start in range(0, len(data), chunk):
        await sink.send(data[start : start + chunk])
    await sink.finish()


DATA = bytes(range(256)) * 1000  # 256,000 bytes: several 64 KiB items


def test_add_get_has_size_meta_ls_rm_over_the_local_socket(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running(tmp_path / "a") as node,
            await Client.connect_local(node.config.socket_path) as ssb,
        ):
            blob = id_of(DATA)
            assert await ssb.blobs.has(blob) is False
            assert await ssb.blobs.size(blob) is None
            await add(ssb, DATA)
            assert await ssb.blobs.has(blob) is True
            assert await ssb.blobs.has([blob, id_of(b"x")]) == [True, False]
            assert await ssb.blobs.size(blob) == len(DATA)
            meta = await ssb.blobs.meta(blob)
            assert (meta["id"], meta["size"]) == (blob, len(DATA))
            chunks = await collect(ssb.blobs.get(blob))
            assert all(isinstance(c, bytes) for c in chunks) and len(chunks) == 4
            assert b"".join(chunks) == DATA
            got = await collect(ssb.blobs.get({"key": blob, "size": len(DATA)}))
            assert b"".join(got) == DATA
            piece = await collect(ssb.blobs.getSlice({"id": blob, "start": 10, "end": 300}))
            assert b"".join(piece) == DATA[10:300]
            assert await collect(ssb.blobs.ls()) == [blob]
            assert (await collect(ssb.blobs.ls({"meta": True})))[0]["size"] == len(DATA)
            assert await collect(ssb.blobs.get(id_of(b""))) == []  # the empty blob
            # multiblob's layout: an ssb-server blobs folder works as it is
            hexdigest = hashlib.sha256(DATA).hexdigest()
            file = tmp_path / "a" / "blobs" / "sha256" / hexdigest[:2] / hexdigest[2:]
            assert file.read_bytes() == DATA
            await ssb.blobs.rm(blob)
            assert await ssb.blobs.has(blob) is False and not file.exists()

    run(scenario)


def test_errors_name_what_was_wrong(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running(tmp_path / "a", blobs={"max": 1000}) as node,
            await Client.connect_local(node.config.socket_path) as ssb,
        ):
            with pytest.raises(RemoteError, match="invalid hash:nonsense"):
                await ssb.blobs.has("nonsense")
            with pytest.raises(RemoteError, match="could not get blob"):
                await collect(ssb.blobs.get(id_of(b"absent")))
            with pytest.raises(RemoteError, match=r"multiblob.get: \{id\} is mandatory"):
                await collect(ssb.blobs.get({"key": "nope"}))
            with pytest.raises(RemoteError, match=r"\{start\} must be a number"):
                await collect(ssb.blobs.getSlice({"id": id_of(b""), "end": 3}))
            await add(ssb, b"small")
            with pytest.raises(RemoteError, match="incorrect file length, requested:3"):
                await collect(ssb.blobs.get({"key": id_of(b"small"), "size": 3}))
            with pytest.raises(RemoteError, match="requested:undefined file was:5"):
                await collect(ssb.blobs.get({"key": id_of(b"small"), "max": 4}))
            with pytest.raises(RemoteError, match="did not match expected id"):
                await add(ssb, b"these bytes", 100, id_of(b"other bytes"))
            with pytest.raises(RemoteError, match=r"larger than the limit of 1000 bytes"):
                await add(ssb, b"z" * 5000, 100)
            assert await collect(ssb.blobs.ls()) == [id_of(b"small")]
            # the session is still usable after the refusals
            assert await ssb.blobs.has(id_of(b"small")) is True
        assert list((tmp_path / "a" / "blobs" / "tmp").iterdir()) == []

    run(scenario)


def test_a_stranger_may_only_read(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as node:
            blob = node.blobs.store.add(b"public")
            stranger = Keypair.from_seed(b"\x42" * 32)
            manifest = {"blobs": {"has": "async", "get": "source", "rm": "async"}}
            key = node.config.network_key
            async with await Client.connect(tcp_address(node), stranger, key, 10, manifest) as ssb:
                assert await ssb.blobs.has(blob) is True
                assert b"".join(await collect(ssb.blobs.get(blob))) == b"public"
                # ssb-blobs' quirk: a peer asking about a blob we lack is taken as a want
                absent = id_of(b"absent")
                assert await ssb.blobs.has([absent]) == [False]
                assert node.blobs.wants.wants == {absent: -2}
                with pytest.raises(
                    RemoteError, match=r"method:blobs\.rm is not in list of allowed"
                ):
                    await ssb.blobs.rm(blob)
            assert node.blobs.store.has(blob)

    run(scenario)


def test_a_wanted_blob_is_fetched_from_a_peer_both_ways(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            on_a = a.blobs.store.add(b"held by a" * 1000)
            await b.connect(tcp_address(a))  # b dials a
            async with asyncio.timeout(TIMEOUT):
                assert await b.blobs.want(on_a) is True
            assert b"".join(b.blobs.store.read(on_a)) == b"held by a" * 1000
            # the other direction, on the same connection: a wants what b added after
            async with await Client.connect_local(b.config.socket_path) as ssb:
                await add(ssb, b"added on b")
            async with asyncio.timeout(TIMEOUT):
                assert await a.blobs.want(id_of(b"added on b")) is True

    run(scenario)


def test_want_before_connecting_is_sent_when_the_peer_comes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            blob = a.blobs.store.add(b"later")
            waiting = asyncio.create_task(b.blobs.want(blob))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            await a.connect(tcp_address(b))  # a dials b: b's want is in its first item
            assert await asyncio.wait_for(waiting, TIMEOUT) is True

    run(scenario)


def test_wants_are_forwarded_one_hop(tmp_path: Path) -> None:
    """c wants a blob only a holds; b sits between them: b forwards c's want (−2), fetches
    from a, then has it for c."""

    async def scenario() -> None:
        async with (
            running(tmp_path / "a") as a,
            running(tmp_path / "b") as b,
            running(tmp_path / "c") as c,
        ):
            blob = a.blobs.store.add(b"far away")
            await b.connect(tcp_address(a))
            await c.connect(tcp_address(b))
            async with asyncio.timeout(TIMEOUT):
                assert await c.blobs.want(blob) is True
            assert b.blobs.store.has(blob)

    run(scenario)


def test_a_blob_over_the_limit_is_not_fetched(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b", blobs={"max": 100}) as b:
            big = a.blobs.store.add(b"x" * 500)
            await b.connect(tcp_address(a))
            with pytest.raises(Exception, match="not obtained"):
                b.blobs.want_timeout = 1.0
                await b.blobs.want(big)
            assert not b.blobs.store.has(big)
            assert list(b.blobs.store.tmp.iterdir()) == []

    run(scenario)


def test_legacy_peer_without_create_wants(tmp_path: Path) -> None:
    """A peer whose createWants fails: changes + has polling (ssb-blobs' legacy mode)."""

    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            del a.methods.table[("blobs", "createWants")]
            original = a.methods.dispatch

            def no_create_wants(request: Any, *args: Any) -> Any:
                if tuple(request.name) == ("blobs", "createWants"):
                    from ssbsync.core.rpc import RpcError

                    return RpcError("no source:blobs,createWants")
                return original(request, *args)

            a.methods.dispatch = no_create_wants  # type: ignore[method-assign]
            blob = a.blobs.store.add(b"old style")
            await b.connect(tcp_address(a))
            async with asyncio.timeout(TIMEOUT):
                assert await b.blobs.want(blob) is True
            # and blobs added later on a are announced through a's `changes`
            later = id_of(b"announced")
            waiting = asyncio.create_task(b.blobs.want(later))
            await asyncio.sleep(0.3)
            async with await Client.connect_local(a.config.socket_path) as ssb:
                await add(ssb, b"announced")
            assert await asyncio.wait_for(waiting, TIMEOUT) is True

    run(scenario)
