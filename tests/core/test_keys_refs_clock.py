"""Identities (§1.1), refs (§1.2) and vector clocks / EBT notes (§7.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssbsync.core import refs
from ssbsync.core.clock import Note, VectorClock, decode_note, encode_note, notes_from_json
from ssbsync.core.errors import RemoteProtocolError
from ssbsync.core.keys import KeyFileError, Keypair, format_secret_file, parse_secret_file
from tests.conftest import FIXTURES, load_fixture

SECRET = load_fixture("keys/secret.json")


def test_reads_the_secret_file_ssb_keys_writes() -> None:
    keys = parse_secret_file((FIXTURES / "keys" / "secret").read_text(encoding="ascii"))
    assert keys.id == SECRET["id"]
    assert keys == Keypair.from_seed(bytes.fromhex(SECRET["seed_hex"]))


def test_writes_the_secret_file_ssb_keys_writes() -> None:
    keys = Keypair.from_seed(bytes.fromhex(SECRET["seed_hex"]))
    assert format_secret_file(keys) == (FIXTURES / "keys" / "secret").read_text(encoding="ascii")


def test_legacy_secret_file_with_only_the_private_key() -> None:
    keys = Keypair.from_seed(bytes(range(32)))
    private = format_secret_file(keys).split('"private": "')[1].split('"')[0]
    assert parse_secret_file(f"# comment\n{private}\n") == keys


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("# only comments\n", "no key"),
        ("{not json", "not valid JSON"),
        ('{"curve": "k256", "private": "x"}', "unsupported curve"),
        ('{"private": "AAAA.ed25519"}', "expected 64"),
        ('{"private": "!!!"}', "not base64"),
    ],
)
def test_bad_secret_files_say_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(KeyFileError, match=complaint):
        parse_secret_file(text)


def test_secret_with_mismatched_public_key_is_refused() -> None:
    text = format_secret_file(Keypair.from_seed(b"\x01" * 32))
    other = Keypair.from_seed(b"\x02" * 32).id
    with pytest.raises(KeyFileError, match="'public' does not match"):
        parse_secret_file(text.replace(text.split('"public": "')[1].split('"')[0], other[1:]))


def test_refs_require_canonical_base64() -> None:
    feed = SECRET["id"]
    assert refs.is_feed_id(feed) and not refs.is_msg_id(feed)
    non_canonical = feed[:43] + ("B" if feed[43] != "B" else "C") + feed[44:]
    assert not refs.is_feed_id(non_canonical)
    assert not refs.is_feed_id(feed.replace(".ed25519", ".sha256"))
    assert refs.is_link(feed) and not refs.is_link(feed + "x")
    assert refs.public_key(refs.parse_feed_id(feed)) == bytes.fromhex(SECRET["public_hex"])
    with pytest.raises(ValueError, match="not a feed id"):
        refs.parse_feed_id("@nope")


@pytest.mark.parametrize(
    ("value", "note"),
    [
        (0, Note(True, 0, True)),
        (1, Note(True, 0, False)),
        (2, Note(True, 1, True)),
        (3, Note(True, 1, False)),
        (450, Note(True, 225, True)),
        (-1, Note(False)),
    ],
)
def test_ebt_note_table(value: int, note: Note) -> None:
    assert decode_note(value) == note
    assert encode_note(note) == value


@given(st.integers(0, 2**30 - 1), st.booleans())
def test_notes_round_trip(sequence: int, receive: bool) -> None:
    note = Note(True, sequence, receive)
    assert decode_note(encode_note(note)) == note


def test_notes_accept_the_clock_wrapper_and_drop_non_feed_keys() -> None:
    feed = SECRET["id"]
    assert notes_from_json({"clock": {feed: 4, "junk": 2}}) == {feed: Note(True, 2, True)}
    with pytest.raises(RemoteProtocolError):
        notes_from_json([1, 2])


def test_vector_clock_comparison() -> None:
    a, b = SECRET["id"], Keypair.from_seed(b"\x07" * 32).id
    ours = VectorClock({a: 10, b: 3})
    theirs = VectorClock.from_json({a: 4})
    assert ours.ahead_of(theirs) == {a: (5, 10), b: (1, 3)}
    assert theirs.ahead_of(ours) == {}
    assert ours.merged({a: 12}).to_json() == {a: 12, b: 3}
    with pytest.raises(RemoteProtocolError):
        VectorClock.from_json({a: -1})
    with pytest.raises(RemoteProtocolError):
        VectorClock.from_json({"@x": 1})
