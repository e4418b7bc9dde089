"""Private messages (PROTOCOL.md §9) with ssb-server 16, both ways: a box one side publishes
for the other replicates as a normal message, and the recipient reads it opened."""

from __future__ import annotations

import json

import pytest

from .conftest import StartRefPeer, StartSsbsync
from .helpers import wait_for
from .refpeer import Installation, feed_refpeer

pytestmark = pytest.mark.interop

TEXT = "a secret for you, é€ 🙂"


def test_ssb_server_sends_ssbsync_a_private_message(
    start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync
) -> None:
    ref, ours = start_refpeer(), start_ssbsync()
    content = {"type": "post", "text": TEXT, "recps": [ours.id]}
    published = ref.cli("publish", ".", stdin=json.dumps(content))
    assert isinstance(published["value"]["content"], str)  # ssb-server boxed it
    ours.cli("replicate.request", ref.id)
    ours.cli("gossip.connect", ref.address)
    wait_for(
        lambda: ours.cli("getVectorClock"),
        lambda clock: isinstance(clock, dict) and clock.get(ref.id) == 1,
        "ssbsync to replicate ssb-server's private message",
        timeout=60,
    )
    key = published["key"]
    # stored and served exactly as ssb-server signed it
    assert ours.cli("get", key) == published["value"]
    shown = ours.cli("get", "--id", key, "--private")
    assert shown["content"] == content
    assert shown["private"] is True and shown["meta"]["private"] is True
    assert shown["meta"]["original"]["content"] == published["value"]["content"]
    # ssb-server boxes for exactly content.recps: its author cannot read it back
    assert (
        ref.cli("get", ".", stdin=json.dumps({"id": key, "private": True})) == (published["value"])
    )
    by_type = ours.cli_stream("messagesByType", "--type", "post", "--private")
    assert [m["value"]["content"] for m in by_type] == [content]
    assert ours.cli("private.unbox", published["value"]["content"]) == content


def test_ssbsync_sends_ssb_server_a_private_message(
    refpeer_install: Installation, start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync
) -> None:
    ref, ours = start_refpeer(), start_ssbsync()
    published = ours.cli("publish", "--type", "post", "--text", TEXT, "--recps", ref.id)
    assert isinstance(published["value"]["content"], str)
    feed_refpeer(refpeer_install, ref, {"want": [ours.id]})
    ref.cli("gossip.connect", ours.address)
    wait_for(
        lambda: ref.cli("getVectorClock"),
        lambda clock: isinstance(clock, dict) and clock.get(ours.id) == 1,
        "ssb-server to replicate ssbsync's private message",
        timeout=60,
    )
    key = published["key"]
    assert ref.cli("get", key) == published["value"]  # it verified and stored the box
    shown = ref.cli("get", ".", stdin=json.dumps({"id": key, "private": True}))
    expected = {"type": "post", "text": TEXT, "recps": [ref.id]}
    assert shown["content"] == expected
    assert shown["private"] is True
    # ssbsync boxed for itself too: it shows its sent message exactly as ssb-server shows
    # the received one (same fields, order, and unbox key: one body key, N = 2 slots)
    assert ours.cli("get", "--id", key, "--private") == shown
    assert list(ours.cli("get", "--id", key, "--private")) == list(shown)
