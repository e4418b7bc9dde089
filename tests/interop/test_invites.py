"""Invites with ssb-server 16 (ssb-invite 2.1.4), both ways (PROTOCOL.md §10): a code one side
creates with its CLI is redeemed by the other's `invite.accept`; the pub then follows the
guest, the guest follows the pub, and both feeds replicate."""

from __future__ import annotations

from typing import Any

import pytest

from ssbsync.core.invite import parse_invite

from .conftest import StartRefPeer, StartSsbsync
from .helpers import wait_for

pytestmark = pytest.mark.interop


def _holds(clock: Any, feed: str, sequence: int) -> bool:
    return isinstance(clock, dict) and clock.get(feed, 0) >= sequence


def _contacts(messages: list[Any], author: str) -> list[dict[str, Any]]:
    return [
        m["value"]["content"]
        for m in messages
        if m["value"]["author"] == author and m["value"]["content"].get("type") == "contact"
    ]


def test_ssbsync_redeems_an_ssb_server_invite(
    start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync
) -> None:
    ref, ours = start_refpeer(), start_ssbsync()
    code = ref.cli("invite.create", "1")
    assert code.startswith(f"127.0.0.1:{ref.port}:{ref.id}~")  # ssb-invite 2.x's default form
    assert parse_invite(code).pub_id == ref.id
    contact, announced = ours.cli("invite.accept", code)
    assert contact["value"]["content"]["contact"] == ref.id
    assert announced["value"]["content"]["address"] == {
        "host": "127.0.0.1",
        "port": ref.port,
        "key": ref.id,
    }
    # ssb-server followed us, as a pub does
    followed = _contacts(ref.cli_stream("createUserStream", "--id", ref.id), ref.id)
    assert followed == [{"type": "contact", "contact": ours.id, "following": True, "pub": True}]
    # the code is used up now: ssb-server lets the key in as anonymous only
    done = ours.run_cli("invite.accept", code)
    assert done.returncode != 0 and "invite not accepted" in done.stderr
    # ssbsync dialled ssb-server as itself: both feeds flow
    ours.cli("publish", "--type", "post", "--text", "hello from the guest")
    ref.cli("publish", "--type", "post", "--text", "hello from the pub")
    wait_for(lambda: ref.cli("getVectorClock"), lambda c: _holds(c, ours.id, 3), "our feed there")
    wait_for(lambda: ours.cli("getVectorClock"), lambda c: _holds(c, ref.id, 2), "its feed here")


def test_ssb_server_redeems_an_ssbsync_invite(
    start_refpeer: StartRefPeer, start_ssbsync: StartSsbsync
) -> None:
    ours = start_ssbsync(config={"allowPrivate": True})
    ref = start_refpeer()
    code = ours.cli("invite.create", "1")
    assert code.startswith(f"127.0.0.1:{ours.port}:{ours.id}~")
    accepted = ref.cli("invite.accept", code)
    assert isinstance(accepted, list) and accepted[0]["value"]["content"]["contact"] == ours.id
    followed = _contacts(ours.cli_stream("createUserStream", "--id", ours.id), ours.id)
    assert followed == [{"type": "contact", "contact": ref.id, "following": True, "pub": True}]
    # the same guest again: "already following" (checked first, as ssb-invite does)
    again = ref.run_cli("invite.accept", code)
    assert again.returncode != 0 and "already following" in again.stderr
    # another guest: the single-use code is used up
    late = start_refpeer().run_cli("invite.accept", code)
    assert late.returncode != 0 and "invite has expired" in late.stderr
    ours.cli("publish", "--type", "post", "--text", "hello from the pub")
    ref.cli("publish", "--type", "post", "--text", "hello from the guest")
    ours.cli("gossip.connect", ref.address)
    wait_for(lambda: ref.cli("getVectorClock"), lambda c: _holds(c, ours.id, 2), "our feed there")
    wait_for(lambda: ours.cli("getVectorClock"), lambda c: _holds(c, ref.id, 3), "its feed here")
