"""Vector clocks: what a node (or a stick, or a bundle's destination) holds of each feed.

One type for every medium (PROTOCOL.md §7.4): the plain `{feed: latest sequence}` form that
`getVectorClock` returns, and the EBT note encoding of §7.2 that `ebt.replicate` sends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ssbsync.core.errors import Reason, RemoteProtocolError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId, is_feed_id

_MAX_NOTE_SEQUENCE = 2**30 - 1  # JS encodes notes with 32-bit shifts (§7.2)


@dataclass(frozen=True, slots=True)
class Note:
    """One feed's entry in an EBT vector clock (§7.2, version 3)."""

    replicate: bool  # False: "I do not replicate this feed" (-1)
    sequence: int = 0  # the sender's latest sequence of that feed
    receive: bool = True  # "please send me messages after `sequence`"


def encode_note(note: Note) -> int:
    if not note.replicate:
        return -1
    if not 0 <= note.sequence <= _MAX_NOTE_SEQUENCE:
        raise ValueError(f"sequence {note.sequence} does not fit an EBT note")
    return (note.sequence << 1) | (0 if note.receive else 1)


def decode_note(value: JSONValue) -> Note:
    if type(value) is not int and not (type(value) is float and value.is_integer()):
        raise RemoteProtocolError(Reason.BAD_SHAPE, f"an EBT note must be an integer: {value!r}")
    number = int(value)
    if number < 0:
        return Note(replicate=False)
    return Note(replicate=True, sequence=number >> 1, receive=(number & 1) == 0)


class VectorClock(Mapping[FeedId, int]):
    """An immutable map from feed id to the latest sequence held (0 or absent: nothing)."""

    __slots__ = ("_seqs",)

    def __init__(self, seqs: Mapping[FeedId, int] | None = None) -> None:
        self._seqs: dict[FeedId, int] = {f: s for f, s in (seqs or {}).items() if s > 0}

    def __getitem__(self, feed: FeedId) -> int:
        return self._seqs[feed]

    def __iter__(self) -> Iterator[FeedId]:
        return iter(self._seqs)

    def __len__(self) -> int:
        return len(self._seqs)

    def __repr__(self) -> str:
        return f"VectorClock({self._seqs!r})"

    def sequence(self, feed: FeedId) -> int:
        return self._seqs.get(feed, 0)

    def merged(self, other: Mapping[FeedId, int]) -> VectorClock:
        """The element-wise maximum: what is known to exist somewhere."""
        seqs = dict(self._seqs)
        for feed, seq in other.items():
            if seq > seqs.get(feed, 0):
                seqs[feed] = seq
        return VectorClock(seqs)

    def ahead_of(self, other: Mapping[FeedId, int]) -> dict[FeedId, tuple[int, int]]:
        """For each feed where we hold more than `other`: the inclusive sequence range it lacks."""
        return {
            feed: (other.get(feed, 0) + 1, seq)
            for feed, seq in self._seqs.items()
            if seq > other.get(feed, 0)
        }

    def to_json(self) -> dict[str, int]:
        """The plain form of `getVectorClock`."""
        return {str(feed): seq for feed, seq in self._seqs.items()}

    @classmethod
    def from_json(cls, value: JSONValue) -> VectorClock:
        """Read the plain form; anything but `{feed id: non-negative integer}` is an error."""
        if not isinstance(value, dict):
            raise RemoteProtocolError(Reason.BAD_SHAPE, "a vector clock must be a JSON object")
        seqs: dict[FeedId, int] = {}
        for feed, seq in value.items():
            if not is_feed_id(feed):
                raise RemoteProtocolError(Reason.BAD_AUTHOR, f"not a feed id in clock: {feed!r}")
            if type(seq) is not int or seq < 0:
                raise RemoteProtocolError(Reason.BAD_SEQUENCE, f"bad sequence for {feed}: {seq!r}")
            seqs[FeedId(feed)] = seq
        return cls(seqs)


def notes_from_json(value: JSONValue) -> dict[FeedId, Note]:
    """Decode received EBT notes; JS accepts `{clock: {...}}` too and drops non-feed keys."""
    if isinstance(value, dict) and isinstance(value.get("clock"), dict):
        value = value["clock"]
    if not isinstance(value, dict):
        raise RemoteProtocolError(Reason.BAD_SHAPE, "EBT notes must be a JSON object")
    return {FeedId(f): decode_note(n) for f, n in value.items() if is_feed_id(f)}
