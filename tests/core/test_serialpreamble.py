"""The serial link preamble's markers (ssbsync/core/serialpreamble.py; docs/serial-link.md):
found among garbage fed in any pieces, in bounded memory."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from ssbsync.core.serialpreamble import MARKER_LEN, PREFIX, MarkerScanner, marker

NONCE = "0123456789abcdef"
OLD = "fedcba9876543210"


def test_markers_are_found_among_garbage_fed_in_any_pieces() -> None:
    line = b"noise\x16\x16ssbsync" + marker("SYNC", NONCE) + b"\x00" * 50 + marker("ACK", OLD)
    for size in (1, 3, 7, len(line)):
        scanner = MarkerScanner()
        found = []
        for i in range(0, len(line), size):
            scanner.feed(line[i : i + size])
            found += list(scanner.markers())
        assert found == [("SYNC", NONCE), ("ACK", OLD)]
        assert scanner.rest() == b""


def test_what_follows_a_marker_is_kept_and_malformed_markers_are_skipped() -> None:
    bad_kind = marker("SYNC", NONCE).replace(b"SYNC ", b"HELLO")
    bad_nonce = marker("SYNC", NONCE).replace(NONCE.encode(), b"0123456789ABCDEF")
    scanner = MarkerScanner()
    scanner.feed(bad_kind + bad_nonce + marker("START", NONCE) + b"shs bytes")
    assert next(scanner.markers()) == ("START", NONCE)  # stop there: what follows is kept
    assert scanner.rest() == b"shs bytes"
    assert scanner.discarded == 2 * MARKER_LEN


def test_the_scanner_keeps_no_more_than_a_marker_of_garbage() -> None:
    scanner, noise = MarkerScanner(), random.Random(7)
    for _ in range(256):
        scanner.feed(noise.randbytes(4096))
        assert list(scanner.markers()) == []
        assert len(scanner._buffer) < MARKER_LEN
    scanner.feed(b"\x16ssbsync-li")  # a prefix cut by a read is kept
    assert list(scanner.markers()) == []
    scanner.feed(marker("READY", NONCE)[11:])
    assert list(scanner.markers()) == [("READY", NONCE)]


@given(st.binary(max_size=500), st.binary(max_size=500), st.integers(1, 100))
def test_a_marker_in_any_garbage_is_found_and_what_follows_kept(
    before: bytes, after: bytes, piece: int
) -> None:
    while PREFIX in before:  # garbage, not a marker of its own
        before = before.replace(PREFIX, b"")
    line = before + marker("READY", NONCE) + after
    scanner, found = MarkerScanner(), None
    for i in range(0, len(line), piece):
        scanner.feed(line[i : i + piece])
        found = next(scanner.markers(), None)
        if found is not None:
            break
        assert len(scanner._buffer) < MARKER_LEN  # bounded while nothing is found
    assert found == ("READY", NONCE)
    assert scanner.rest() + line[i + piece :] == after
