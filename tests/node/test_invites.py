"""Invites between two ssbsync nodes in one process over loopback (PROTOCOL.md §10)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ssbsync.core.invite import parse_invite
from ssbsync.node import config as node_config
from ssbsync.node.client import Client, collect
from ssbsync.node.invites import create_options, is_private_host
from ssbsync.node.server import Node
from ssbsync.node.session import CallError, RemoteError

from .nodes import TIMEOUT, config_in, run, running, until

GUEST_MANIFEST = {
    "invite": {"use": "async"},
    "getAddress": "async",
    "whoami": "async",
    "createHistoryStream": "source",
}


async def owner_call(node: Node, name: str, *args: Any) -> Any:
    async with await Client.connect_local(node.config.socket_path) as ssb:
        return await ssb.session.call(name.split("."), *args)


def _contents(node: Node, kind: str) -> list[dict[str, Any]]:
    """The contents of type `kind` that `node` itself published."""
    stream = node.api.messages_by_type({"type": kind})
    values = [item["value"] for item in stream]  # type: ignore[index]
    return [v["content"] for v in values if v["author"] == node.id]  # type: ignore[index]


def _port(node: Node) -> int:
    return int(next(a for a in node.addresses if a.startswith("net:")).split("~")[0].split(":")[2])


def test_a_guest_redeems_a_code_and_both_replicate(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running(tmp_path / "pub", allowPrivate=True) as pub,
            running(tmp_path / "guest") as guest,
        ):
            pub.api.publish({"type": "post", "text": "from the pub"})
            guest.api.publish({"type": "post", "text": "from the guest"})
            code = await owner_call(pub, "invite.create", 1)
            # ssb-invite 2.x's default form: HOST:PORT:@KEY.ed25519~SEED
            assert code.startswith(f"127.0.0.1:{_port(pub)}:{pub.id}~")
            contact, announced = await owner_call(guest, "invite.accept", code)
            assert contact["value"]["content"] == {
                "type": "contact",
                "following": True,
                "autofollow": True,
                "contact": pub.id,
            }
            assert announced["value"]["content"] == {
                "type": "pub",
                "address": {"host": "127.0.0.1", "port": _port(pub), "key": pub.id},
            }
            assert _contents(pub, "contact") == [
                {"type": "contact", "contact": guest.id, "following": True, "pub": True}
            ]
            # The guest dialled the pub as itself: each now holds the other's feed.
            await until(lambda: guest.api.store.vector_clock().sequence(pub.id) == 2)
            await until(lambda: pub.api.store.vector_clock().sequence(guest.id) == 3)

    run(scenario)


def test_a_used_up_code_is_refused_and_uses_are_counted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            running(tmp_path / "pub", allowPrivate=True) as pub,
            running(tmp_path / "a") as a,
            running(tmp_path / "b") as b,
            running(tmp_path / "c") as c,
        ):
            code = await owner_call(pub, "invite.create", {"uses": 2, "note": "for friends"})
            await owner_call(a, "invite.accept", code)
            await owner_call(b, "invite.accept", f'"{code}"')  # quoted, as the CLI prints it
            with pytest.raises(RemoteError, match="invite not accepted: invite has expired"):
                await owner_call(c, "invite.accept", code)
            follows = _contents(pub, "contact")
            assert [f["contact"] for f in follows] == [a.id, b.id]
            assert all(f["note"] == "for friends" and f["pub"] is True for f in follows)
            assert _contents(c, "contact") == []  # nothing published for a refused code

    run(scenario)


def test_an_invite_key_may_call_only_invite_use_and_get_address(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "pub", allowPrivate=True) as pub:
            invite = parse_invite(await owner_call(pub, "invite.create", 1))
            key = pub.config.network_key
            async with await Client.connect(
                invite.remote, invite.keypair, key, 10, GUEST_MANIFEST
            ) as guest:
                for call in (guest.whoami(), collect(guest.createHistoryStream({"id": pub.id}))):
                    with pytest.raises(RemoteError, match="is not in list of allowed methods"):
                        await call
                assert (await guest.getAddress()).startswith(f"net:127.0.0.1:{_port(pub)}~shs:")
                with pytest.raises(RemoteError, match="feed to follow is missing"):
                    await guest.invite.use({})
                with pytest.raises(RemoteError, match="feed must be a feed id"):
                    await guest.invite.use({"feed": "@nonsense"})
                pub.api.publish({"type": "contact", "contact": pub.id, "following": True})
                await until(lambda: pub.social.graph.is_following(pub.id, pub.id))
                with pytest.raises(RemoteError, match=r"^already following$"):
                    await guest.invite.use({"feed": pub.id})
            # the owner is not a guest: invite.use is for invite keys
            with pytest.raises(RemoteError, match="not made with one of our invite keys"):
                await owner_call(pub, "invite.use", {"feed": pub.id})

    run(scenario)


def test_an_invite_stays_valid_across_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "pub", allowPrivate=True, port=0) as pub:
            code = await owner_call(pub, "invite.create", 1)
            port = _port(pub)
        async with (
            running(tmp_path / "pub", allowPrivate=True, port=port) as pub,
            running(tmp_path / "guest") as guest,
        ):
            await owner_call(guest, "invite.accept", code)
            await until(lambda: pub.social.graph.is_following(pub.id, guest.id))

    run(scenario)


def test_create_needs_a_public_address_unless_allow_private(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "pub") as pub:
            with pytest.raises(RemoteError, match="Server has no public ip address"):
                await owner_call(pub, "invite.create", 1)
            code = await owner_call(pub, "invite.create", {"external": "pub.example.com"})
            assert code.startswith(f"pub.example.com:{_port(pub)}:{pub.id}~")
            options = {"modern": True, "external": "1.2.3.4"}
            modern_code = await owner_call(pub, "invite.create", options)
            assert modern_code.startswith(f"net:1.2.3.4:{_port(pub)}~shs:")  # multiserver form
            modern = parse_invite(modern_code)
            assert (modern.host, modern.pub_id) == ("1.2.3.4", pub.id)
            with pytest.raises(RemoteError, match="uses must be a whole number"):
                await owner_call(pub, "invite.create", {"uses": -1, "external": "1.2.3.4"})

    run(scenario)


def test_accept_says_what_is_wrong(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "guest") as guest:
            with pytest.raises(RemoteError, match=r"invite\.accept: .*no ~SEED part"):
                await owner_call(guest, "invite.accept", "pub.example.com:8008")
            seed = "Kgede2kFE6z0ntSOIjoTgt+cwr6B134gYyDEx+Pe1QM="
            key = "mCCALwRCeM0ACxpj60yMW3+hr8bgjEqsd6+32Qdbopk="
            # nothing listens on port 1 of loopback
            with pytest.raises(RemoteError, match="could not connect to server"):
                await owner_call(guest, "invite.accept", f"net:127.0.0.1:1~shs:{key}:{seed}")
            with pytest.raises(RemoteError, match="only net: addresses"):
                await owner_call(guest, "invite.accept", f"onion:x.onion:1~shs:{key}:{seed}")
            assert _contents(guest, "contact") == []

    run(scenario)


def test_create_options_read_as_ssb_invite_reads_them() -> None:
    assert create_options([]).uses == 1
    assert create_options([3]).uses == 3
    assert create_options([0]).uses == 1  # `+opts.uses || 1`
    assert create_options([{"uses": 5, "modern": True}]).uses == 1
    opts = create_options([{"uses": 2, "note": "hi", "external": "pub.example.com"}])
    assert (opts.uses, opts.note, opts.external, opts.modern) == (2, "hi", "pub.example.com", False)
    for bad, what in (
        (["x"], "number of uses or an options object"),
        ([{"uses": 1.5}], "whole number"),
        ([{"uses": float("inf")}], "whole number"),
        ([{"uses": 2**60}], "whole number"),
        ([{"uses": True}], "whole number"),
        ([{"note": 5}], "note must be a string"),
        ([{"external": "not a host!"}], "external must be a host"),
    ):
        with pytest.raises(CallError, match=what):
            create_options(bad)


def test_allow_private_is_read_from_theconfig_in(tmp_path: Path) -> None:
    assert config_in(tmp_path / "a").allow_private is False
    assert config_in(tmp_path / "b", allowPrivate=True).allow_private is True
    with pytest.raises(node_config.ConfigError, match="allowPrivate must be true or false"):
        config_in(tmp_path / "c", allowPrivate="yes")


@pytest.mark.parametrize(
    ("host", "private"),
    [("localhost", True), ("", True), ("127.0.0.1", True), ("10.1.2.3", True),
     ("192.168.1.1", True), ("::1", True), ("fe80::1", True), ("0.0.0.0", True),
     ("1.2.3.4", False), ("pub.example.com", False), ("2001:4860::8888", False)],
)  # fmt: skip
def test_private_hosts_are_those_ssb_invite_refuses(host: str, private: bool) -> None:
    assert is_private_host(host) is private


def test_the_cli_creates_a_code_through_the_running_node(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path / "pub", allowPrivate=True) as pub:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ssbsync", "--path", str(pub.config.path),
                "invite.create", "1",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert process.returncode == 0, err.decode()
            printed = out.decode()
            assert printed.startswith('"127.0.0.1:') and printed.endswith('"\n')  # a JSON string
            assert parse_invite(json.loads(printed)).pub_id == pub.id

    run(scenario)
