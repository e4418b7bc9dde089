"""A running node: sessions over TCP and the local socket, permissions, live streams."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssbsync.core import message
from ssbsync.core.keys import Keypair
from ssbsync.node import config as node_config
from ssbsync.node.client import Client, collect
from ssbsync.node.session import RemoteError

from .nodes import TIMEOUT, config_in, run, running, tcp_address, until


def test_local_socket_gives_the_owner_every_method(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as node:
            ssb = await Client.connect_local(node.config.socket_path)
            async with ssb:
                assert await ssb.whoami() == {"id": node.id}
                published = await ssb.publish({"type": "post", "text": "héllo"})
                log = await collect(ssb.createLogStream({}))
                assert [m["key"] for m in log] == [published["key"]]
                assert "createHistoryStream" in await ssb.manifest()
        assert not node.config.socket_path.exists()
        assert json.loads((tmp_path / "a" / "manifest.json").read_text())["whoami"] == "async"

    run(scenario)


def test_a_stranger_gets_only_the_anonymous_methods(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as node:
            node.api.publish({"type": "post", "text": "public"})
            stranger = Keypair.from_seed(b"\x42" * 32)
            key = node.config.network_key
            manifest = {"publish": "async", "createHistoryStream": "source"}
            async with await Client.connect(tcp_address(node), stranger, key, 10, manifest) as ssb:
                with pytest.raises(RemoteError, match="method:publish is not in list of allowed"):
                    await ssb.publish({"type": "post", "text": "spoof"})
                history = await collect(ssb.createHistoryStream({"id": node.id, "keys": False}))
                assert message.validate(None, None, history[0]).author == node.id

    run(scenario)


def test_the_nodes_own_key_and_masters_are_masters(tmp_path: Path) -> None:
    async def scenario() -> None:
        master = Keypair.from_seed(b"\x07" * 32)
        async with running(tmp_path / "a", master=[master.id]) as node:
            key = node.config.network_key
            for keys in (node.api.keys, master):
                async with await Client.connect(tcp_address(node), keys, key) as ssb:
                    assert (await ssb.whoami())["id"] == node.id

    run(scenario)


def test_wrong_network_key_is_refused_and_the_node_keeps_serving(tmp_path: Path) -> None:
    async def scenario() -> None:
        other_caps = "qfvLx2H4BMRk8WjVj0Ge2mbCjlaRvb/y4e16tQnBwnc="
        async with running(tmp_path / "a") as node:
            outsider = Keypair.from_seed(b"\x01" * 32)
            wrong = node_config.load(config_in(tmp_path / "x", caps={"shs": other_caps}).path)
            with pytest.raises(Exception, match=r"hung up|handshake"):
                await Client.connect(tcp_address(node), outsider, wrong.network_key, timeout=5)
            async with await Client.connect(
                tcp_address(node), outsider, node.config.network_key
            ) as ssb:
                assert await collect(ssb.createHistoryStream({"id": node.id})) == []

    run(scenario)


def test_two_nodes_connect_and_pull_each_others_feed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            for i in range(3):
                a.api.publish({"type": "post", "text": f"a{i}"})
            assert await b.connect(tcp_address(a)) == a.id
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 3)
            assert [p["key"] for p in b.peers()] == [a.id]  # type: ignore[index,union-attr]
            # live: a new message reaches b over the open stream
            a.api.publish({"type": "post", "text": "later"})
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 4)
            assert await b.disconnect(tcp_address(a)) is True
            await until(lambda: not b.peers())

    run(scenario)


def test_a_live_history_stream_ends_when_the_caller_aborts(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as node:
            node.api.publish({"type": "post", "text": "one"})
            async with await Client.connect_local(node.config.socket_path) as ssb:
                stream = ssb.createHistoryStream({"id": node.id, "live": True})
                first = await anext(stream)
                await stream.aclose()
                assert first["value"]["sequence"] == 1
                assert await ssb.whoami() == {"id": node.id}  # the session is still fine

    run(scenario)


def test_unknown_methods_get_muxrpcs_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as node:
            ssb = await Client.connect_local(node.config.socket_path)
            async with ssb:
                with pytest.raises(RemoteError, match="no async:blobs,nothing"):
                    await ssb.session.call(["blobs", "nothing"])

    run(scenario)


def _cli(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ssbsync", "--path", str(folder), *args]


async def _run_cli(folder: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *_cli(folder, *args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode or 0, out.decode()


COMMANDS = [("log",), ("hist", "--id", "{id}"), ("feed", "--reverse"), ("getVectorClock",),
            ("latest",), ("latestSequence", "{id}"), ("messagesByType", "--type", "post"),
            ("whoami",)]  # fmt: skip


def test_the_cli_prints_the_same_through_the_node_as_from_the_store(tmp_path: Path) -> None:
    folder = tmp_path / "a"

    async def through_the_node() -> dict[tuple[str, ...], tuple[int, str]]:
        async with running(folder) as node:
            for text in ("one", "twö 🌊"):
                node.api.publish({"type": "post", "text": text})
            results = {}
            for command in COMMANDS:
                argv = [part.format(id=node.id) for part in command]
                results[command] = await _run_cli(folder, *argv)
            code, status = await _run_cli(folder, "status")
            assert code == 0 and json.loads(status)["messages"] == 2
            return results

    online = asyncio.run(through_the_node())
    my_id = json.loads(online[("whoami",)][1])["id"]
    for command, (code, out) in online.items():
        argv = [part.format(id=my_id) for part in command]
        offline = subprocess.run(_cli(folder, *argv), capture_output=True, text=True, timeout=60)
        assert (code, out) == (offline.returncode, offline.stdout), command
        assert code == 0 and out


def test_node_only_commands_say_no_node_is_running(tmp_path: Path) -> None:
    result = subprocess.run(
        _cli(tmp_path, "gossip.peers"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "no node is running" in result.stderr


def test_bad_history_options_are_refused_cleanly(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as node:
            ssb = await Client.connect_local(node.config.socket_path)
            async with ssb:
                for opts in (
                    {"id": "@nope"},
                    {"id": node.id, "seq": "x"},
                    {"id": node.id, "limit": []},
                ):
                    with pytest.raises(RemoteError, match="createHistoryStream"):
                        await collect(ssb.createHistoryStream(opts))
                assert await ssb.whoami() == {"id": node.id}

    run(scenario)


def test_import_and_export_go_through_a_running_node(tmp_path: Path) -> None:
    source, folder = tmp_path / "source", tmp_path / "node"
    export_file = tmp_path / "all.json"

    async def scenario() -> tuple[int, str, int, str]:
        async with running(source) as node:
            for i in range(30):
                node.api.publish({"type": "post", "text": f"m{i}"})
            code, text = await _run_cli(source, "export")
            assert code == 0
        records = [r for r in text.split("\n\n") if r.strip()]
        assert len(records) == 30
        # out of order, with a broken record: one ingest call still takes everything valid
        damaged = "\n\n".join([*records[15:], "{broken", *records[:15]])
        export_file.write_text(damaged)
        async with running(folder) as node:
            imported = await _run_cli(folder, "import", str(export_file))
            through_node = await _run_cli(folder, "export")
            assert (
                node.api.store.vector_clock().sequence(next(iter(node.api.store.vector_clock())))
                == 30
            )
        return (*imported, *through_node)

    code, summary, export_code, exported = asyncio.run(scenario())
    assert code == 1, summary  # the broken record is reported
    assert "30 accepted" in summary and "bad_json" in summary
    offline = subprocess.run(_cli(folder, "export"), capture_output=True, text=True, timeout=60)
    assert export_code == 0 and exported == offline.stdout


def test_two_nodes_replicate_over_ebt(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            for i in range(5):
                a.api.publish({"type": "post", "text": f"a{i}"})
            await b.connect(tcp_address(a))
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 5)
            assert b.replicator.has_session(a.id) and a.replicator.has_session(b.id)
            b.api.publish({"type": "post", "text": "from b"})  # b's feed flows back live
            await until(lambda: a.api.store.vector_clock().sequence(b.id) == 1)

    run(scenario)


def test_ebt_refuses_bad_notes_and_forged_messages(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as node:
            stranger = Keypair.from_seed(b"\x33" * 32)
            forged = message.create(stranger, None, {"type": "post", "text": "x"}, 1).value
            forged["content"] = {"type": "post", "text": "changed after signing"}
            key = node.config.network_key
            for bad in ([1, 2], forged):
                async with await Client.connect(tcp_address(node), stranger, key, 10, {}) as ssb:
                    duplex = await ssb.session.duplex(["ebt", "replicate"], {"version": 3})
                    first = await anext(aiter(duplex.incoming))  # the callee speaks first
                    assert isinstance(first, dict)
                    await duplex.send(bad)
                    await asyncio.sleep(0.5)
            assert node.api.store.vector_clock().sequence(stranger.id) == 0
            async with await Client.connect(tcp_address(node), stranger, key, 10, {}) as ssb:
                with pytest.raises(RemoteError, match="version: 3"):
                    duplex = await ssb.session.duplex(["ebt", "replicate"], {"version": 1})
                    await anext(aiter(duplex.incoming))

    run(scenario)


def test_follows_decide_what_flows_and_blocked_peers_are_refused(tmp_path: Path) -> None:
    """c follows a; b is connected to both and holds a's feed; c gets it from b (hops 1),
    answers friends.*, and once c blocks b, b's handshake is refused."""

    async def scenario() -> None:
        async with (
            running(tmp_path / "a") as a,
            running(tmp_path / "b") as b,
            running(tmp_path / "c") as c,
        ):
            a.api.publish({"type": "post", "text": "from a"})
            await b.connect(tcp_address(a))
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 1)
            c.api.publish({"type": "contact", "contact": a.id, "following": True})
            await c.connect(tcp_address(b))
            await until(lambda: c.api.store.vector_clock().sequence(a.id) == 1)
            async with await Client.connect_local(c.config.socket_path) as ssb:
                hops = await ssb.friends.hops()
                assert hops[c.id] == 0 and hops[a.id] == 1
                assert await ssb.friends.isFollowing({"source": c.id, "dest": a.id}) is True
                assert await ssb.friends.isBlocking({"source": c.id, "dest": b.id}) is False
            c.api.publish({"type": "contact", "contact": b.id, "blocking": True})
            await until(lambda: not c.peers())  # the blocked peer is dropped
            with pytest.raises(Exception, match=r"hung up|handshake"):
                await Client.connect(tcp_address(c), b.api.keys, c.config.network_key, 5, {})

    run(scenario)


def test_ebt_keeps_each_peers_clock_across_sessions(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            for i in range(3):
                a.api.publish({"type": "post", "text": f"a{i}"})
            await b.connect(tcp_address(a))
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 3)
            await b.disconnect(tcp_address(a))
            await until(lambda: not b.peers())
        stored = list((tmp_path / "b" / "ebt").glob("*.json"))
        assert len(stored) == 1
        assert json.loads(stored[0].read_text())[a.id] == 3
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            a.api.publish({"type": "post", "text": "after the restart"})
            await b.connect(tcp_address(a))
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 4)

    run(scenario)


def test_sync_replicates_until_complete_and_exits(tmp_path: Path) -> None:
    """`ssbsync sync ADDR` with no node running (it dials only), then through a running one."""

    async def scenario() -> None:
        async with running(tmp_path / "a") as a:
            for i in range(40):
                a.api.publish({"type": "post", "text": f"a{i}"})
            code, out = await _run_cli(tmp_path / "boat", "sync", tcp_address(a), "--timeout", "30")
            assert code == 0 and "complete: we hold 40 messages of 1 feeds" in out, out
            assert not (tmp_path / "boat" / "socket").exists()  # it listened nowhere
            a.api.publish({"type": "post", "text": "one more"})
            async with running(tmp_path / "boat") as boat:
                code, out = await _run_cli(boat.config.path, "sync", tcp_address(a))
                assert code == 0 and "complete: we hold 41 messages" in out, out
                assert a.id in [p["key"] for p in boat.peers()]  # type: ignore[index]

    run(scenario)


def test_crossed_dials_leave_one_session_and_replication_works(tmp_path: Path) -> None:
    """Both nodes dial each other at once (LAN peers hear each other's beacons in the same
    second): both keep the same one session, and EBT runs on it both ways."""

    async def scenario() -> None:
        async with running(tmp_path / "a") as a, running(tmp_path / "b") as b:
            a.api.publish({"type": "post", "text": "from a"})
            b.api.publish({"type": "post", "text": "from b"})
            await asyncio.gather(a.connect(tcp_address(b)), b.connect(tcp_address(a)))
            await until(lambda: len(a.peers()) == 1 and len(b.peers()) == 1)  # type: ignore[arg-type]
            await until(lambda: a.api.store.vector_clock().sequence(b.id) == 1)
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 1)
            kept_a, kept_b = a.peers()[0], b.peers()[0]  # type: ignore[index]
            assert kept_a["source"] != kept_b["source"]  # one session: a dialled it or b did
            smaller = a if a.id < b.id else b
            assert (kept_a if smaller is a else kept_b)["source"] == "dial"
            a.api.publish({"type": "post", "text": "live"})
            await until(lambda: b.api.store.vector_clock().sequence(a.id) == 2)

    run(scenario)
