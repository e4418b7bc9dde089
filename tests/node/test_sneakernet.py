"""Bundles and sticks against real stores: export what a destination lacks, import through the
one ingest path, damage and forgery, blobs, and the stick as an offline peer both ways."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssbsync.bundle import (
    BundleError,
    BundleWriter,
    CarrySpec,
    FeedRange,
    Header,
    Stick,
    StickError,
    network_fingerprint,
)
from ssbsync.core import jsonv8
from ssbsync.core.clock import VectorClock
from ssbsync.core.errors import Reason
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import blob_id
from ssbsync.node import bundles, peerclocks, sticks
from ssbsync.node.api import NodeAPI
from ssbsync.node.blobs import BlobStore
from ssbsync.node.bundle_verify import verify_bundle

from .helpers import Feeds, fork_of, make_feeds, tampered

NETWORK = bytes(range(32))
NOW = 1_700_000_000_000
CARRIER = Keypair.from_seed(b"a carrier who signs bundles....."[:32])


@pytest.fixture(scope="module")
def many() -> Feeds:
    return make_feeds(authors=6, messages=600, seed=5)


def _node(folder: Path, feeds: Feeds | None = None) -> NodeAPI:
    api = NodeAPI(folder)
    if feeds is not None:
        report = api.import_messages([m.value for m in feeds.messages])
        assert report.accepted == len(feeds.messages)
    return api


@pytest.fixture
def source(tmp_path: Path, many: Feeds) -> Iterator[NodeAPI]:
    with _node(tmp_path / "source", many) as api:
        yield api


def _export(api: NodeAPI, **kwargs: object) -> bytes:
    out = io.BytesIO()
    bundles.export_bundle(api, out, network_key=NETWORK, now_ms=NOW, **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


def _import(api: NodeAPI, data: bytes, blobs: BlobStore | None = None) -> bundles.ImportSummary:
    return bundles.import_bundle(api, io.BytesIO(data), network_key=NETWORK, blobs=blobs)


def test_everything_moves_to_an_empty_node(tmp_path: Path, source: NodeAPI, many: Feeds) -> None:
    data = _export(source)
    with _node(tmp_path / "dest") as dest:
        summary = _import(dest, data)
        assert summary.ok and summary.report.accepted == len(many.messages)
        assert dict(dest.store.vector_clock()) == many.clock
        assert dest.store.check() == []
        again = _import(dest, data)  # a second import changes nothing
        assert again.report.accepted == 0 and again.report.duplicates == len(many.messages)


def test_only_what_the_destination_lacks(tmp_path: Path, source: NodeAPI, many: Feeds) -> None:
    half = {feed: len(msgs) // 2 for feed, msgs in many.by_author.items()}
    with _node(tmp_path / "dest") as dest:
        dest.import_messages([m.value for m in many.messages if m.sequence <= half[m.author]])
        data = _export(source, destination=dest.store.vector_clock())
        summary = _import(dest, data)
        lacking = sum(len(msgs) - half[feed] for feed, msgs in many.by_author.items())
        assert summary.report.accepted == lacking and summary.report.duplicates == 0
        assert dict(dest.store.vector_clock()) == many.clock
        # up to date: the bundle for it is empty
        assert bundles.plan(source, dest.store.vector_clock(), None, None) == ([], [])


def test_feeds_filter_and_a_budget_cut_keep_feeds_prefix_valid(source: NodeAPI) -> None:
    feed = sorted(source.store.vector_clock())[0]
    ranges, left = bundles.plan(source, {}, [feed], None)
    assert [r.feed for r in ranges] == [feed] and left == []
    budget = bundles.stored_bytes(source, ranges) // 3
    fitting, left = bundles.plan(source, {}, [feed], budget)
    assert fitting[0].first == 1 and left[0].first == fitting[0].last + 1
    assert bundles.stored_bytes(source, fitting) <= budget


def test_a_truncated_bundle_imports_its_prefix_and_says_so(
    tmp_path: Path, source: NodeAPI, many: Feeds
) -> None:
    data = _export(source)
    with _node(tmp_path / "dest") as dest:
        summary = _import(dest, data[: len(data) // 2])
        assert summary.damage is not None and not summary.ok
        assert 0 < summary.report.accepted < len(many.messages)
        assert summary.report.rejected_total == 0  # nothing bad, only missing
        assert dest.store.check() == []
        for feed, seq in dest.store.vector_clock().items():  # prefixes of the real feeds
            assert dest.store.key_at(feed, seq) == many.by_author[feed][seq - 1].key
        rest = _import(dest, data)  # the whole bundle later completes it
        assert rest.ok and dict(dest.store.vector_clock()) == many.clock


def _bundle_of(values: list[dict[str, object]]) -> bytes:
    """A bundle written by hand (any content, even invalid), with an honest header."""
    author, first = values[0]["author"], values[0]["sequence"]
    feeds = (FeedRange(author, first, first + len(values) - 1),)  # type: ignore[arg-type, operator]
    header = Header(network_fingerprint(NETWORK), CARRIER.id, NOW, VectorClock(), feeds)
    out = io.BytesIO()
    writer = BundleWriter(out, CARRIER, header)
    for value in values:
        writer.add_message(jsonv8.stringify(value))  # type: ignore[arg-type]
    writer.finish()
    return out.getvalue()


def test_forged_and_forked_records_are_rejected_by_reason(tmp_path: Path, feeds: Feeds) -> None:
    feed = feeds.longest()
    with _node(tmp_path / "dest") as dest:
        dest.import_messages([m.value for m in feed[:5]])
        before = dest.store.vector_clock()
        forged = tampered(feed[5])
        fork = fork_of(feeds, feed[2])
        records = [fork.value, feed[3].value, feed[4].value, forged, feed[6].value]
        data = _bundle_of(records)  # seq 3 (a fork), 4, 5 (held already), 6 (forged), 7
        summary = _import(dest, data)
        assert summary.report.accepted == 0 and summary.report.duplicates == 2
        assert summary.report.rejected[Reason.FORK] == 1
        assert summary.report.rejected[Reason.BAD_SIGNATURE] == 1
        assert summary.report.rejected[Reason.GAP] == 1  # seq 7 without a good seq 6
        assert dest.store.vector_clock() == before and dest.store.check() == []


def test_another_networks_bundle_is_refused(tmp_path: Path, source: NodeAPI) -> None:
    data = _export(source)
    with _node(tmp_path / "dest") as dest, pytest.raises(BundleError, match="network"):
        bundles.import_bundle(dest, io.BytesIO(data), network_key=bytes(32))
    with pytest.raises(BundleError):
        bundles.import_bundle(source, io.BytesIO(b"hello, not a bundle"), network_key=NETWORK)


def _with_blob(api: NodeAPI, blobs: BlobStore, data: bytes) -> str:
    blob = blobs.add(data)
    api.publish({"type": "post", "text": "a picture", "mentions": [{"link": blob}]})
    return blob


def test_linked_blobs_travel_and_are_hashed(tmp_path: Path, source: NodeAPI) -> None:
    blobs = BlobStore(tmp_path / "source", 5 * 1024 * 1024)
    picture = bytes(range(256)) * 1000  # several chunks
    blob = _with_blob(source, blobs, picture)
    data = _export(source, blobs=blobs)
    with _node(tmp_path / "dest") as dest:
        dest_blobs = BlobStore(tmp_path / "dest", 5 * 1024 * 1024)
        summary = _import(dest, data, dest_blobs)
        assert summary.ok and summary.blobs_stored == 1
        assert b"".join(dest_blobs.read(blob)) == picture  # type: ignore[arg-type]
        assert _import(dest, data, dest_blobs).blobs_known == 1


def test_a_blob_whose_content_does_not_match_its_id_is_rejected(
    tmp_path: Path, feeds: Feeds
) -> None:
    fake_id = blob_id(b"\x00" * 32)
    fingerprint = network_fingerprint(NETWORK)
    header = Header(fingerprint, CARRIER.id, NOW, VectorClock(), (), ((fake_id, 5),))
    out = io.BytesIO()
    writer = BundleWriter(out, CARRIER, header)
    writer.add_blob(fake_id, 5, [b"hello"])
    writer.finish()
    with _node(tmp_path / "dest") as dest:
        store = BlobStore(tmp_path / "dest", 1024)
        summary = _import(dest, out.getvalue(), store)
        assert summary.blobs_stored == 0 and len(summary.blob_problems) == 1
        assert not store.has(fake_id)  # type: ignore[arg-type]
        result = verify_bundle(io.BytesIO(out.getvalue()), network_key=NETWORK, hmac_key=None)
        assert not result.ok and "does not match" in result.problems[0]


def test_verify_finds_what_import_would_reject(feeds: Feeds, source: NodeAPI) -> None:
    data = _export(source)
    assert verify_bundle(io.BytesIO(data), network_key=NETWORK, hmac_key=None).ok
    feed = feeds.longest()
    bad = _bundle_of([feed[0].value, tampered(feed[1]), feed[3].value])  # 1, 2 (forged), 4
    result = verify_bundle(io.BytesIO(bad), network_key=NETWORK, hmac_key=None)
    assert not result.ok
    assert any("signature" in p for p in result.problems)
    assert any("does not follow" in p for p in result.problems)
    damaged = verify_bundle(io.BytesIO(data[:-40]), network_key=NETWORK, hmac_key=None)
    assert damaged.damage is not None and not damaged.ok


def test_export_to_file_is_whole_or_absent(tmp_path: Path, source: NodeAPI) -> None:
    target = tmp_path / "out.bundle"

    def failing(out: object) -> bundles.ExportSummary:
        raise OSError("disk full")

    with pytest.raises(OSError):
        bundles.export_to_file(target, failing)
    assert not target.exists() and list(tmp_path.glob("*.partial")) == []


def test_clock_files(tmp_path: Path, source: NodeAPI) -> None:
    clock = source.store.vector_clock()
    path = tmp_path / "clock.json"
    path.write_text(json.dumps(bundles.clock_file(source.keys.id, NETWORK, clock, NOW)))
    assert bundles.read_clock_file(path) == clock
    path.write_text(json.dumps(clock.to_json()))  # getVectorClock's output works too
    assert bundles.read_clock_file(path) == clock
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"clock\.json"):
        bundles.read_clock_file(path)


# -- sticks ---------------------------------------------------------------------------------


def _sync(api: NodeAPI, volume: Path) -> sticks.StickSummary:
    return sticks.sync_stick(api, volume, network_key=NETWORK, blobs=None, now_ms=NOW)


def _publish(api: NodeAPI, count: int) -> None:
    for n in range(count):
        api.publish({"type": "post", "text": f"from {api.keys.id[:8]} #{n}"})


def test_a_stick_carries_both_ways_between_two_places(tmp_path: Path, many: Feeds) -> None:
    volume = tmp_path / "stick"
    volume.mkdir()
    sticks.init_stick(volume, network_key=NETWORK, carry=CarrySpec(), max_size=None, now_ms=NOW)
    with _node(tmp_path / "a", many) as a, _node(tmp_path / "b") as b:
        _publish(a, 3)
        _publish(b, 4)
        first = _sync(a, volume)  # A gives everything it has
        assert first.given is not None and first.given.messages == len(many.messages) + 3
        second = _sync(b, volume)  # B takes it all and gives its own feed
        assert second.taken.accepted == len(many.messages) + 3
        assert second.given is not None and second.given.messages == 4
        assert second.places == 1  # it learned of A
        third = _sync(a, volume)
        assert third.taken.accepted == 4 and third.given is None
        assert a.store.vector_clock() == b.store.vector_clock()
        assert peerclocks.known(b.store.path, a.keys.id) is not None
        stick = Stick.open(volume, NETWORK)
        assert set(stick.node_clocks()) == {a.keys.id, b.keys.id}
        # every segment is held by both known places now
        assert len(stick.prunable()) == len(stick.segments()) == 2


def test_a_full_stick_prunes_what_every_place_holds_and_reports_the_rest(
    tmp_path: Path, many: Feeds
) -> None:
    volume = tmp_path / "stick"
    volume.mkdir()
    with _node(tmp_path / "a", many) as a:
        size = bundles.stored_bytes(a, bundles.plan(a, {}, None, None)[0])
        sticks.init_stick(
            volume, network_key=NETWORK, carry=CarrySpec(), max_size=size // 2, now_ms=NOW
        )
        summary = _sync(a, volume)
        assert summary.given is not None and summary.given.left_out
        assert any("did not fit" in p for p in summary.problems)
        assert Stick.open(volume).used_bytes() <= size // 2
        # A holds everything on the stick: the next sync may prune that segment for room
        again = _sync(a, volume)
        assert again.pruned == 1 and again.given is not None


def test_a_stick_carrying_chosen_feeds_carries_only_those(tmp_path: Path, many: Feeds) -> None:
    volume = tmp_path / "stick"
    volume.mkdir()
    chosen = sorted(many.by_author)[:2]
    carry = CarrySpec(tuple(chosen))
    sticks.init_stick(volume, network_key=NETWORK, carry=carry, max_size=None, now_ms=NOW)
    with _node(tmp_path / "a", many) as a:
        summary = _sync(a, volume)
        assert summary.given is not None
        assert summary.given.messages == sum(len(many.by_author[f]) for f in chosen)
        assert set(Stick.open(volume).clock()) == set(chosen)


def test_a_damaged_segment_gives_its_prefix_and_the_sync_goes_on(
    tmp_path: Path, many: Feeds
) -> None:
    volume = tmp_path / "stick"
    volume.mkdir()
    sticks.init_stick(volume, network_key=NETWORK, carry=CarrySpec(), max_size=None, now_ms=NOW)
    with _node(tmp_path / "a", many) as a, _node(tmp_path / "b") as b:
        _sync(a, volume)
        (segment,) = Stick.open(volume).segments()
        data = segment.path.read_bytes()
        segment.path.write_bytes(data[: len(data) * 2 // 3])  # pulled mid-copy, say
        summary = _sync(b, volume)
        assert 0 < summary.taken.accepted < len(many.messages)
        assert summary.problems and b.store.check() == []


def test_not_a_stick(tmp_path: Path, source: NodeAPI) -> None:
    with pytest.raises(StickError):
        _sync(source, tmp_path)
