"""The LAN party (issue 6): five ssbsync nodes and one ssb-server 16 on a segment of network
namespaces find each other by LAN beacons alone and converge to the same vector clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..interop.refpeer import RefPeerUnavailable, install
from .lanparty import LanParty
from .netns import require_namespaces

pytestmark = pytest.mark.system
NODES = 5
MESSAGES = 20
CONVERGE_WITHIN = 120.0  # seconds; beacons go out every second, dials follow


def test_five_nodes_and_ssb_server_converge_by_beacons_alone(
    tmp_path: Path, record_property: pytest.RecordProperty, capsys: pytest.CaptureFixture[str]
) -> None:
    require_namespaces()
    try:
        installation = install()
    except RefPeerUnavailable as err:
        pytest.skip(f"the reference peer (ssb-server 16.0.1) is not available: {err}")
    with LanParty(tmp_path, NODES, MESSAGES, installation) as party:
        seconds = party.wait_converged(CONVERGE_WITHIN)
        assert len(party.expected) == NODES + 1
    record_property("converge_seconds", round(seconds, 1))
    with capsys.disabled():
        print(f"\nLAN party: {NODES} ssbsync + 1 ssb-server converged in {seconds:.1f} s")
