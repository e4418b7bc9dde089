"""Wire interop with the reference peer, ssb-server 16.0.1 (the issue's four proofs).

1. ssbsync dials ssb-server: the handshake holds, both sides list the session, and our client
   reads ssb-server's feed with createHistoryStream; every message verifies and has the id
   ssb-server gave it.
2. ssb-server dials ssbsync and replicates our feed by legacy createHistoryStream (§6).
3. The JS ssb-client talks to ssbsync: as its owner (whoami, publish, createLogStream) and as a
   stranger (anonymous: publish denied with muxrpc's text, createHistoryStream served).
4. A different network key (caps.shs): neither side gets a session, in either direction, and
   both go on serving everyone else.

Each test starts its own nodes on free loopback ports in its temporary folder; the fixtures stop
them by PID. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ssbsync.core.keys import Keypair
from ssbsync.core.message import FeedState, Message, validate
from ssbsync.node.client import Client, collect

from .conftest import StartRefPeer, StartSsbsync
from .helpers import wait_for
from .refpeer import Installation, RefPeer, run_js_client
from .ssbsync_node import SsbsyncNode

pytestmark = pytest.mark.interop

T = TypeVar("T")

MAIN_NETWORK = base64.b64decode("1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s=")  # PROTOCOL §1.3
OTHER_NETWORK = base64.b64encode(hashlib.sha256(b"ssbsync interop: another network").digest())
# Plain, then non-ASCII in every UTF-8 length (Latin-1, BMP, astral: a UTF-16 surrogate pair).
TEXTS = ("first post", "zweite Nachricht: grüße, 東京, 🐢 ✓", "third post")
FROM_SSB_CLIENT = {"type": "post", "text": "from ssb-client"}
CALL_TIMEOUT = 30.0  # seconds for one whole client conversation


def run(coroutine: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, CALL_TIMEOUT)

    return asyncio.run(bounded())


async def read_feed(address: str, keys: Keypair, network_key: bytes, feed: str) -> list[Any]:
    """createHistoryStream({id: feed, keys: false}) over SHS, as `keys`."""
    client = await Client.connect(address, keys, network_key)
    try:
        return await collect(client.createHistoryStream({"id": feed, "keys": False}))
    finally:
        await client.close()


async def whoami(address: str, keys: Keypair, network_key: bytes) -> Any:
    client = await Client.connect(address, keys, network_key)
    try:
        return await client.whoami()
    finally:
        await client.close()


def validate_in_order(values: list[Any]) -> list[Message]:
    """Verify a feed from its first message: signatures, chain, ids."""
    state: FeedState | None = None
    messages = []
    for value in values:
        message = validate(state, None, value)
        messages.append(message)
        state = message.state()
    return messages


def stranger() -> Keypair:
    return Keypair.from_seed(os.urandom(32))


def add_to_gossip_table(ref: RefPeer, node: SsbsyncNode) -> None:
    """ssb-server's gossip.peers lists only peers in its table; the object form of gossip.add
    is the one ssb-gossip 1.1.1 takes. As JSON on stdin: `--port` on the command line would
    also reach ssb-config and clash with the configured port."""
    peer = {"host": "127.0.0.1", "port": node.port, "key": node.id}
    ref.cli("gossip.add", ".", stdin=json.dumps(peer))


def connected(peers: Any, key: str) -> bool:
    return any(p.get("key") == key and p.get("state") == "connected" for p in peers)


def publish_texts(publish: Any) -> list[dict[str, Any]]:
    return [publish("publish", "--type", "post", "--text", text) for text in TEXTS]


# -- 1. ssbsync dials ssb-server --------------------------------------------------------------


def test_ssbsync_dials_ssb_server(start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync) -> None:
    ref, ours = start_refpeer(), start_ssbsync()
    published = publish_texts(ref.cli)
    add_to_gossip_table(ref, ours)

    answer = ours.cli("gossip.connect", ref.address)

    assert answer["id"] == ref.id
    wait_for(
        lambda: ours.cli("gossip.peers"),
        lambda peers: connected(peers, ref.id),
        "ssbsync's gossip.peers to show ssb-server connected",
        timeout=10,
    )
    wait_for(
        lambda: ref.cli("gossip.peers"),
        lambda peers: connected(peers, ours.id),
        "ssb-server's gossip.peers to show ssbsync connected",
        timeout=15,
    )

    # Any key may read a feed: a stranger's (anonymous permissions on ssb-server).
    values = run(read_feed(ref.address, stranger(), MAIN_NETWORK, ref.id))

    messages = validate_in_order(values)
    keys = [m.key for m in messages]
    assert keys == [p["key"] for p in published]
    assert keys == [m["key"] for m in ref.cli_stream("hist", "--id", ref.id)]
    logged = [m["key"] for m in ref.cli_stream("log") if m["value"]["author"] == ref.id]
    assert keys == logged
    assert [m.value["content"]["text"] for m in messages] == list(TEXTS)


def test_ssbsync_replicates_ssb_server_feed_over_ebt_when_it_dials(
    start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync
) -> None:
    """The dialler calls ebt.replicate (PROTOCOL.md §7.1); ssb-server 16 (ssb-ebt 5) answers."""
    ref, ours = start_refpeer(), start_ssbsync()
    published = publish_texts(ref.cli)

    ours.cli("gossip.connect", ref.address)

    wait_for(
        lambda: ours.cli("getVectorClock"),
        lambda clock: clock.get(ref.id) == len(TEXTS),
        f"ssbsync to hold ssb-server's {len(TEXTS)} messages",
        timeout=30,
    )
    held = ours.cli_stream("hist", "--id", ref.id)
    assert [m["key"] for m in held] == [p["key"] for p in published]
    assert [m["value"] for m in held] == [p["value"] for p in published]
    assert f"EBT replication with {ref.id} (we called)" in ours.log()
    # live: a message ssb-server publishes now arrives over the open session
    ref.cli("publish", "--type", "post", "--text", "live from ssb-server")
    wait_for(
        lambda: ours.cli("getVectorClock"),
        lambda clock: clock.get(ref.id) == len(TEXTS) + 1,
        "ssbsync to receive ssb-server's new message live",
        timeout=30,
    )


# -- 2. ssb-server dials ssbsync --------------------------------------------------------------


def test_ssb_server_dials_ssbsync_and_replicates_our_feed(
    start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync
) -> None:
    ref, ours = start_refpeer(), start_ssbsync()
    published = publish_texts(ours.cli)
    assert ref.manifest()["replicate"]["request"] == "sync"
    ref.cli("replicate.request", ours.id)  # ssb-server wants our feed

    ref.cli("gossip.connect", ours.address)

    wait_for(
        lambda: ours.cli("gossip.peers"),
        lambda peers: any(p["key"] == ref.id and p["source"] == "incoming" for p in peers),
        "ssbsync's gossip.peers to show ssb-server's incoming connection",
        timeout=10,
    )
    # ssb-server calls ebt.replicate on us ({version: 3}, PROTOCOL.md §7.1); we speak first,
    # it asks for our feed, we send it.
    wait_for(
        lambda: ref.cli("getVectorClock"),
        lambda clock: clock.get(ours.id) == len(TEXTS),
        f"ssb-server to replicate our {len(TEXTS)} messages (its getVectorClock)",
        timeout=30,
    )
    held = ref.cli_stream("hist", "--id", ours.id)
    assert [m["key"] for m in held] == [p["key"] for p in published]
    assert [m["value"]["content"]["text"] for m in held] == list(TEXTS)
    assert f"EBT replication with {ref.id} (it called)" in ours.log()
    # live: our next message reaches ssb-server over the open session
    ours.cli("publish", "--type", "post", "--text", "live from ssbsync")
    wait_for(
        lambda: ref.cli("getVectorClock"),
        lambda clock: clock.get(ours.id) == len(TEXTS) + 1,
        "ssb-server to receive our new message live",
        timeout=30,
    )


# -- 3. the JS ssb-client ---------------------------------------------------------------------


def js_client(
    installation: Installation, node: SsbsyncNode, secret: Path | None, **spec: Any
) -> dict[str, Any]:
    base = {
        "host": "127.0.0.1",
        "port": node.port,
        "key": node.id,
        "caps": base64.b64encode(node.network_key).decode(),
        "secret": None if secret is None else str(secret),
    }
    return run_js_client(installation, {**base, **spec}, node.folder)


def test_ssb_client_with_our_key_is_the_owner(
    refpeer_install: Installation, start_ssbsync: StartSsbsync
) -> None:
    ours = start_ssbsync()
    earlier = ours.cli("publish", "--type", "post", "--text", TEXTS[1])

    report = js_client(
        refpeer_install,
        ours,
        ours.folder / "secret",
        calls=[
            {"name": "whoami", "type": "async"},
            {
                "name": "publish",
                "type": "async",
                "args": [{"type": "post", "text": "from ssb-client"}],
            },
            {"name": "createLogStream", "type": "source", "args": [{}]},
        ],
    )

    assert report["connect"] == {"ok": ours.id}, report
    whoami_result, publish_result, log_result = report["results"]
    assert whoami_result == {"ok": {"id": ours.id}}
    message = publish_result["ok"]
    assert message["value"]["author"] == ours.id
    assert message["value"]["content"] == FROM_SSB_CLIENT
    assert message["value"]["previous"] == earlier["key"]
    assert message["key"] in [m["key"] for m in ours.cli_stream("log")]
    assert [m["key"] for m in log_result["ok"]] == [earlier["key"], message["key"]]
    # What ssb-client received verifies: the non-ASCII message and the one it published.
    verified = validate_in_order([m["value"] for m in log_result["ok"]])
    assert [m.key for m in verified] == [earlier["key"], message["key"]]


def stranger_calls(ours: SsbsyncNode) -> list[dict[str, Any]]:
    return [
        {"name": "publish", "type": "async", "args": [{"type": "post", "text": "not mine"}]},
        {"name": "createHistoryStream", "type": "source", "args": [{"id": ours.id}]},
    ]


def check_stranger_report(report: dict[str, Any], ours: SsbsyncNode, published: list[Any]) -> None:
    assert report["id"] != ours.id
    assert report["connect"] == {"ok": ours.id}, report
    publish_result, history_result = report["results"]
    assert publish_result == {"error": "method:publish is not in list of allowed methods"}
    assert [m["key"] for m in history_result["ok"]] == [p["key"] for p in published]
    assert [m["key"] for m in ours.cli_stream("log")] == [p["key"] for p in published]


def test_ssb_client_stranger_is_anonymous(
    refpeer_install: Installation, start_ssbsync: StartSsbsync
) -> None:
    """With our manifest given, so that only the permissions are under test."""
    ours = start_ssbsync()
    published = publish_texts(ours.cli)

    report = js_client(
        refpeer_install,
        ours,
        None,
        manifest=str(ours.folder / "manifest.json"),
        calls=stranger_calls(ours),
    )

    check_stranger_report(report, ours, published)


def test_ssb_client_stranger_with_default_options(
    refpeer_install: Installation, start_ssbsync: StartSsbsync
) -> None:
    """ssb-client's default: it first asks for the manifest, which secret-stack lets anonymous
    peers call (`permissions.anonymous.allow = ['manifest']`; ssb-server answers it)."""
    ours = start_ssbsync()
    published = publish_texts(ours.cli)

    report = js_client(refpeer_install, ours, None, calls=stranger_calls(ours))

    check_stranger_report(report, ours, published)


# -- 4. a different network key ----------------------------------------------------------------


def test_other_network_key_is_refused_both_ways(
    start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync
) -> None:
    ref = start_refpeer()
    ours = start_ssbsync(caps_shs=OTHER_NETWORK.decode())
    assert ours.network_key != MAIN_NETWORK
    ref_post = ref.cli("publish", "--type", "post", "--text", TEXTS[1])
    our_post = ours.cli("publish", "--type", "post", "--text", TEXTS[1])
    add_to_gossip_table(ref, ours)  # so that a session would show in its gossip.peers

    dialled = ours.run_cli("gossip.connect", ref.address)

    assert dialled.returncode != 0, dialled.stdout
    assert "could not connect" in dialled.stderr

    dialling = ref.run_cli("gossip.connect", ours.address)

    assert dialling.returncode != 0, dialling.stdout
    assert "shs" in dialling.stderr  # "shs.client: error when expecting server to accept …"
    wait_for(
        ours.log,
        lambda text: "incoming connection refused" in text,
        "ssbsync to log the refused handshake",
        timeout=10,
    )
    assert ours.cli("gossip.peers") == []
    assert not [p for p in ref.cli("gossip.peers") if p.get("state") == "connected"]

    # Both go on serving their own networks.
    assert run(whoami(ours.address, ours.keys, ours.network_key)) == {"id": ours.id}
    on_our_network = run(read_feed(ours.address, stranger(), ours.network_key, ours.id))
    assert [m.key for m in validate_in_order(on_our_network)] == [our_post["key"]]
    assert ref.cli("whoami") == {"id": ref.id}
    values = run(read_feed(ref.address, stranger(), MAIN_NETWORK, ref.id))
    assert [m.key for m in validate_in_order(values)] == [ref_post["key"]]
    assert ours.process is not None and ours.process.poll() is None
    assert ref.process is not None and ref.process.poll() is None
