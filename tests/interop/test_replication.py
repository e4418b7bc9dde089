"""Bulk replication with ssb-server 16, both ways, over EBT and legacy (the replication
issue's data set): 1,000 messages of 20 authors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssbsync.core import synthetic

from .conftest import StartRefPeer, StartSsbsync
from .helpers import wait_for
from .refpeer import Installation, feed_refpeer

pytestmark = pytest.mark.interop

MESSAGES, AUTHORS = 1000, 20


def _dataset(folder: Path) -> tuple[Path, dict[str, int]]:
    messages = list(synthetic.generate(AUTHORS, MESSAGES, seed=11))
    heads: dict[str, int] = {}
    for m in messages:
        heads[m.author] = m.sequence
    file = folder / "dataset.jsonl"
    file.write_text("".join(m.compact_json() + "\n" for m in messages), encoding="utf-8")
    return file, heads


def _holds(clock: object, heads: dict[str, int]) -> bool:
    return isinstance(clock, dict) and all(clock.get(f) == s for f, s in heads.items())


# Over EBT, and with ssbsync's EBT off: legacy replication, createHistoryStream only (§6).
PROTOCOLS = {"ebt": {}, "legacy": {"replicate": {"ebt": False}}}


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_ssbsync_replicates_20_feeds_from_ssb_server(
    refpeer_install: Installation,
    start_refpeer: StartRefPeer,
    start_ssbsync: StartSsbsync,
    tmp_path: Path,
    protocol: str,
) -> None:
    """ssbsync dials; with EBT off it pulls every wanted feed by createHistoryStream."""
    file, heads = _dataset(tmp_path)
    ref, ours = start_refpeer(), start_ssbsync(config=PROTOCOLS[protocol])
    # a holder that does not want a feed does not send it over EBT (refpeer README)
    assert feed_refpeer(refpeer_install, ref, {"file": str(file), "want": list(heads)}) == {
        "added": MESSAGES,
        "wanted": AUTHORS,
    }
    for feed in heads:
        ours.cli("replicate.request", feed)
    ours.cli("gossip.connect", ref.address)
    wait_for(
        lambda: ours.cli("getVectorClock"),
        lambda clock: _holds(clock, heads),
        f"ssbsync to hold all {MESSAGES} messages of {AUTHORS} feeds ({protocol})",
        timeout=60,
    )
    used_ebt = f"EBT replication with {ref.id} (we called)" in ours.log()
    assert used_ebt == (protocol == "ebt")


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_ssb_server_replicates_20_feeds_from_ssbsync(
    refpeer_install: Installation,
    start_refpeer: StartRefPeer,
    start_ssbsync: StartSsbsync,
    tmp_path: Path,
    protocol: str,
) -> None:
    """ssb-server dials; when ssbsync refuses its ebt.replicate it falls back to legacy
    replication and pulls every feed it wants once ssbsync has called createHistoryStream."""
    file, heads = _dataset(tmp_path)
    ref, ours = start_refpeer(), start_ssbsync(config=PROTOCOLS[protocol])
    imported = ours.cli("import", str(file))  # through the running node
    assert f"{MESSAGES} accepted" in str(imported)
    feed_refpeer(refpeer_install, ref, {"want": list(heads)})
    ref.cli("gossip.connect", ours.address)
    wait_for(
        lambda: ref.cli("getVectorClock"),
        lambda clock: _holds(clock, heads),
        f"ssb-server to hold all {MESSAGES} messages of {AUTHORS} feeds ({protocol})",
        timeout=60,
    )
    used_ebt = f"EBT replication with {ref.id} (it called)" in ours.log()
    assert used_ebt == (protocol == "ebt")
