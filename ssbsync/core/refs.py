"""Scuttlebutt references: feed, message and blob ids (PROTOCOL.md §1.2).

Every id is a sigil, the canonical base64 of 32 bytes, and a suffix. "Canonical" means the
unused low bits of the last base64 character are zero, which the JS regexes enforce by
allowing only `[AEIMQUYcgkosw048]` as the 43rd character. We accept only the exact suffixes
(the JS feed-id regex has an unescaped dot; §1.2 says not to emit such ids, and they never
verify anyway).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import NewType

FeedId = NewType("FeedId", str)
MsgId = NewType("MsgId", str)
BlobId = NewType("BlobId", str)

_B64_32 = r"[A-Za-z0-9/+]{42}[AEIMQUYcgkosw048]="
_FEED_RE = re.compile(rf"@{_B64_32}\.ed25519")
_MSG_RE = re.compile(rf"%{_B64_32}\.sha256")
_BLOB_RE = re.compile(rf"&{_B64_32}\.sha256")


def is_feed_id(value: object) -> bool:
    return isinstance(value, str) and _FEED_RE.fullmatch(value) is not None


def is_msg_id(value: object) -> bool:
    return isinstance(value, str) and _MSG_RE.fullmatch(value) is not None


def is_blob_id(value: object) -> bool:
    return isinstance(value, str) and _BLOB_RE.fullmatch(value) is not None


_LINK_RE = re.compile(rf"(?:@{_B64_32}\.ed25519|[%&]{_B64_32}\.sha256)")


def is_link(value: object) -> bool:
    """Any of the three reference kinds (what ssb-ref's `isLink` accepts, minus query parts)."""
    return (
        isinstance(value, str)
        and len(value) in (52, 53)
        and value[0] in "@%&"
        and _LINK_RE.fullmatch(value) is not None
    )


def feed_id(public_key: bytes) -> FeedId:
    return FeedId("@" + base64.b64encode(public_key).decode("ascii") + ".ed25519")


def msg_id(digest: bytes) -> MsgId:
    return MsgId("%" + binascii.b2a_base64(digest, newline=False).decode("ascii") + ".sha256")


def blob_id(digest: bytes) -> BlobId:
    return BlobId("&" + base64.b64encode(digest).decode("ascii") + ".sha256")


def parse_feed_id(value: object) -> FeedId:
    """Return `value` as a FeedId, or raise ValueError naming what was wrong."""
    if not is_feed_id(value):
        raise ValueError(f"not a feed id (expected @<base64 of 32 bytes>.ed25519): {value!r}")
    return FeedId(str(value))


@functools.lru_cache(maxsize=4096)
def public_key(feed: FeedId) -> bytes:
    """The 32-byte Ed25519 public key inside a feed id (cached: few authors, many messages)."""
    return binascii.a2b_base64(feed[1:45])


def canonical_b64decode(text: str) -> bytes | None:
    """Decode standard base64 only if `text` is exactly the canonical encoding of the result.

    This is the rule of is-canonical-base64 (padding required, zero trailing bits).
    """
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return raw if binascii.b2a_base64(raw, newline=False).decode("ascii") == text else None


def decode_key32(text: object) -> bytes:
    """A 32-byte key given as standard base64 (an address's key, a network key, a sign cap).

    Raises ValueError saying what is wrong; callers prefix where the value came from.
    """
    if not isinstance(text, str):
        raise ValueError("must be a base64 string of 32 bytes")
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"is not base64: {text!r}") from None
    if len(raw) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(raw)}")
    return raw
