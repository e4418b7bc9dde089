"""Bundles and sticks: Scuttlebutt feeds carried as files (docs/bundle-format.md).

This layer reads and writes files only; it speaks no network and knows no store. The node
exports from its store through `BundleWriter` and imports what `BundleReader` yields through
its one ingest path.
"""

from ssbsync.bundle.format import (
    FORMAT_VERSION,
    MAGIC,
    BundleError,
    FeedRange,
    Header,
    Trailer,
    network_fingerprint,
)
from ssbsync.bundle.reader import BlobChunk, BundleReader, MessageRecord, read_header
from ssbsync.bundle.stick import (
    MARKER,
    CarrySpec,
    NotAStick,
    SegmentInfo,
    Stick,
    StickError,
)
from ssbsync.bundle.writer import BundleWriter

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "MARKER",
    "BlobChunk",
    "BundleError",
    "BundleReader",
    "BundleWriter",
    "CarrySpec",
    "FeedRange",
    "Header",
    "MessageRecord",
    "NotAStick",
    "SegmentInfo",
    "Stick",
    "StickError",
    "Trailer",
    "network_fingerprint",
    "read_header",
]
