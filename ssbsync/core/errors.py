"""The two error families of the protocol code (ARCHITECTURE.md, "Protocol code").

`LocalProtocolError`: our own caller misused an API (a bug here).
`RemoteProtocolError`: input from outside (a peer, a file, a stick) was malformed; it carries a
machine-readable `reason` so that callers can count and report rejections by kind.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Why a message (or other remote input) was rejected."""

    BAD_JSON = "bad_json"
    BAD_SHAPE = "bad_shape"
    BAD_AUTHOR = "bad_author"
    BAD_KEY_ORDER = "bad_key_order"
    BAD_SEQUENCE = "bad_sequence"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_HASH = "bad_hash"
    BAD_CONTENT = "bad_content"
    BAD_TYPE = "bad_type"
    TOO_LARGE = "too_large"
    BAD_SIGNATURE_FORMAT = "bad_signature_format"
    BAD_SIGNATURE = "bad_signature"
    BAD_HMAC_KEY = "bad_hmac_key"
    WRONG_PREVIOUS = "wrong_previous"
    WRONG_SEQUENCE = "wrong_sequence"
    FORK = "fork"
    GAP = "gap"
    # the wire (PROTOCOL.md §2–4)
    BAD_HANDSHAKE = "bad_handshake"
    BAD_BOX = "bad_box"
    BAD_PACKET = "bad_packet"
    BAD_RPC = "bad_rpc"
    LIMIT = "limit"


class LocalProtocolError(Exception):
    """Our caller used an API wrongly (e.g. publishing content that cannot be valid)."""


class RemoteProtocolError(Exception):
    """Input from outside was invalid. `reason` says which rule it broke."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
