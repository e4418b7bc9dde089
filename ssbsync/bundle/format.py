"""The bundle format: constants, the header and trailer maps, and their signatures.

A bundle is `MAGIC`, then one zstd frame holding a CBOR sequence (RFC 8742) of records; the
byte-level description is docs/bundle-format.md. This module turns the two signed maps into
dataclasses and back, validating every field strictly: a header or trailer comes from a file
someone handed us, so anything unexpected is an error that names the field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from nacl import bindings
from nacl.exceptions import CryptoError

from ssbsync.core.clock import VectorClock
from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId, is_blob_id, is_feed_id, public_key

FORMAT_VERSION: int = 1
MAGIC_PREFIX = b"SSBSYNC"
MAGIC: bytes = MAGIC_PREFIX + bytes((FORMAT_VERSION,))
FORMAT_NAME = "ssbsync-bundle"

# Record types: the first item of every record array.
RECORD_HEADER = 0
RECORD_MESSAGE = 1
RECORD_BLOB = 2
RECORD_TRAILER = 3

MAX_RECORD_BYTES = 256 * 1024  # any record but the header
MAX_CHUNK_BYTES = 64 * 1024  # one blob chunk
MAX_FEEDS = 1_000_000  # feeds in the header's ranges or clock
MAX_BLOBS = 1_000_000  # blobs listed in the header
# The header carries the writer's whole clock, so it may be far bigger than a record: a million
# feeds in both `clock` and `feeds` is about 150 MB of CBOR.
MAX_HEADER_BYTES = 256 * 1024 * 1024
_MAX_INT = 2**53 - 1  # sequences, sizes and times stay exact in JavaScript too

HEADER_DOMAIN = b"ssbsync-bundle-header\x00"
TRAILER_DOMAIN = b"ssbsync-bundle-trailer\x00"
_HEADER_FIELDS = frozenset(
    ("format", "version", "network", "writer", "created", "clock", "feeds", "blobs")
)
_TRAILER_FIELDS = frozenset(("messages", "blobs", "blobBytes", "sha256"))


class BundleError(ValueError):
    """Not a bundle, or a bundle whose header is unusable; the message names what is wrong."""


def network_fingerprint(network_key: bytes) -> bytes:
    """The 8 bytes that tell bundles of different networks apart without revealing the key."""
    return hashlib.sha256(network_key).digest()[:8]


@dataclass(frozen=True, slots=True)
class FeedRange:
    """Messages `first..last` (inclusive) of one feed, in the bundle in that order."""

    feed: FeedId
    first: int
    last: int

    def __post_init__(self) -> None:
        if not 1 <= self.first <= self.last:
            raise ValueError(f"bad range {self.first}..{self.last} for {self.feed}")

    def __len__(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Header:
    """The signed first record: who wrote the bundle, for which network, and what it holds."""

    network: bytes
    writer: FeedId
    created_ms: int
    clock: VectorClock  # the writer's whole clock when it wrote the bundle
    feeds: tuple[FeedRange, ...]
    blobs: tuple[tuple[str, int], ...] = ()
    version: int = FORMAT_VERSION

    @property
    def message_count(self) -> int:
        return sum(len(r) for r in self.feeds)

    @property
    def blob_bytes(self) -> int:
        return sum(size for _, size in self.blobs)

    def covered_by(self, clock: Mapping[FeedId, int]) -> bool:
        """Whether `clock` already holds every message of this bundle."""
        return all(r.last <= clock.get(r.feed, 0) for r in self.feeds)


@dataclass(frozen=True, slots=True)
class Trailer:
    """The signed last record: what the bundle held, and the sha256 of everything before it."""

    messages: int
    blobs: int
    blob_bytes: int
    digest: bytes


def canonical(value: object) -> bytes:
    return cbor2.dumps(value, canonical=True)


def header_to_map(header: Header) -> dict[str, Any]:
    result: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": header.version,
        "network": header.network,
        "writer": str(header.writer),
        "created": header.created_ms,
        "clock": {str(feed): seq for feed, seq in header.clock.items() if seq > 0},
        "feeds": [[str(r.feed), r.first, r.last] for r in header.feeds],
        "blobs": [[blob, size] for blob, size in header.blobs],
    }
    return result


def trailer_to_map(trailer: Trailer) -> dict[str, Any]:
    return {
        "messages": trailer.messages,
        "blobs": trailer.blobs,
        "blobBytes": trailer.blob_bytes,
        "sha256": trailer.digest,
    }


def _count(value: object, field: str, *, minimum: int = 0) -> int:
    if type(value) is not int or not minimum <= value <= _MAX_INT:
        raise BundleError(f"{field} must be an integer >= {minimum}: {value!r:.60}")
    return value


def _fields(value: object, what: str, required: frozenset[str], optional: frozenset[str]) -> None:
    if type(value) is not dict:
        raise BundleError(f"the {what} must be a CBOR map, not {type(value).__name__}")
    for key in value:
        if key not in required and key not in optional:
            raise BundleError(f"the {what} has an unknown field {key!r:.60}")
    for key in sorted(required):
        if key not in value:
            raise BundleError(f"the {what} has no {key!r}")


def check_version(version: object) -> int:
    if type(version) is not int:
        raise BundleError(f"header 'version' must be an integer: {version!r:.60}")
    if version > FORMAT_VERSION:
        raise BundleError(f"bundle format {version} is newer than this ssbsync ({FORMAT_VERSION})")
    if version != FORMAT_VERSION:
        raise BundleError(f"bundle format {version} is not supported (only {FORMAT_VERSION})")
    return version


def _feed(value: object, field: str) -> FeedId:
    if not is_feed_id(value):
        raise BundleError(f"{field} is not a feed id: {value!r:.80}")
    return FeedId(str(value))


def _clock(value: object) -> VectorClock:
    if type(value) is not dict:
        raise BundleError("header 'clock' must be a map of feed id to sequence")
    if len(value) > MAX_FEEDS:
        raise BundleError(f"header 'clock' has {len(value)} feeds, more than {MAX_FEEDS}")
    seqs: dict[FeedId, int] = {}
    for feed, seq in value.items():
        seqs[_feed(feed, "a header 'clock' key")] = _count(
            seq, f"header 'clock' sequence of {feed}", minimum=1
        )
    return VectorClock(seqs)


def _ranges(value: object) -> tuple[FeedRange, ...]:
    if type(value) is not list:
        raise BundleError("header 'feeds' must be a list of [feed, first, last]")
    if len(value) > MAX_FEEDS:
        raise BundleError(f"header 'feeds' has {len(value)} ranges, more than {MAX_FEEDS}")
    ranges: list[FeedRange] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        where = f"header 'feeds' item {index}"
        if type(item) is not list or len(item) != 3:
            raise BundleError(f"{where} must be [feed, first, last]")
        feed = _feed(item[0], where)
        first = _count(item[1], f"{where} first", minimum=1)
        last = _count(item[2], f"{where} last", minimum=first)
        if feed in seen:
            raise BundleError(f"{where} lists {feed} a second time")
        seen.add(feed)
        ranges.append(FeedRange(feed, first, last))
    return tuple(ranges)


def _blob_list(value: object) -> tuple[tuple[str, int], ...]:
    if type(value) is not list:
        raise BundleError("header 'blobs' must be a list of [blob id, size]")
    if len(value) > MAX_BLOBS:
        raise BundleError(f"header 'blobs' has {len(value)} blobs, more than {MAX_BLOBS}")
    blobs: list[tuple[str, int]] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        where = f"header 'blobs' item {index}"
        if type(item) is not list or len(item) != 2 or not is_blob_id(item[0]):
            raise BundleError(f"{where} must be [blob id, size]: {item!r:.80}")
        if item[0] in seen:
            raise BundleError(f"{where} lists {item[0]} a second time")
        seen.add(item[0])
        blobs.append((item[0], _count(item[1], f"{where} size")))
    return tuple(blobs)


def header_from_map(value: object) -> Header:
    """A validated Header, or BundleError naming the first field that is wrong."""
    _fields(value, "header", _HEADER_FIELDS, frozenset())
    assert type(value) is dict  # checked by _fields; for the type checker
    if value["format"] != FORMAT_NAME:
        raise BundleError(f"header 'format' is {value['format']!r:.60}, not {FORMAT_NAME!r}")
    version = check_version(value["version"])
    network = value["network"]
    if type(network) is not bytes or len(network) != 8:
        raise BundleError("header 'network' must be 8 bytes (sha256 of the network key)")
    return Header(
        network=network,
        writer=_feed(value["writer"], "header 'writer'"),
        created_ms=_count(value["created"], "header 'created'"),
        clock=_clock(value["clock"]),
        feeds=_ranges(value["feeds"]),
        blobs=_blob_list(value["blobs"]),
        version=version,
    )


def trailer_from_map(value: object) -> Trailer:
    """A validated Trailer, or BundleError naming the field that is wrong."""
    _fields(value, "trailer", _TRAILER_FIELDS, frozenset())
    assert type(value) is dict
    digest = value["sha256"]
    if type(digest) is not bytes or len(digest) != 32:
        raise BundleError("trailer 'sha256' must be 32 bytes")
    return Trailer(
        messages=_count(value["messages"], "trailer 'messages'"),
        blobs=_count(value["blobs"], "trailer 'blobs'"),
        blob_bytes=_count(value["blobBytes"], "trailer 'blobBytes'"),
        digest=digest,
    )


def sign_map(keys: Keypair, domain: bytes, value: Mapping[str, Any]) -> bytes:
    """Ed25519 over the domain tag and the canonical CBOR (RFC 8949 §4.2.1) of the map."""
    return keys.sign(domain + canonical(value))


def verify_map(writer: FeedId, domain: bytes, value: Mapping[str, Any], signature: object) -> bool:
    if type(signature) is not bytes or len(signature) != 64:
        return False
    try:
        bindings.crypto_sign_open(signature + domain + canonical(value), public_key(writer))
    except (CryptoError, ValueError):
        return False
    return True
