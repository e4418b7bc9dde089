"""Classic signed feed messages: create, id, check, verify (PROTOCOL.md §5).

Validation is split in three stages so the ingest path can run them where they are cheapest:

1. `prepare(value)`: every rule that needs only the message itself (shape, key order, size,
   content, signature format). Pure Python, runs on the ingest thread.
2. `verify_signature(prepared)`: Ed25519 over the signing bytes. PyNaCl releases the GIL, so
   the ingest path runs these in a thread pool.
3. `check_chain(state, message)`: the rules that need the author's latest stored message
   (sequence, previous, the first message's fields).

`validate()` runs all three in order, as ssb-validate 4.1.4 `append` does (§5.7).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from nacl import bindings
from nacl.exceptions import BadSignatureError

from ssbsync.core import jsonv8
from ssbsync.core.errors import LocalProtocolError, Reason, RemoteProtocolError
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.keys import Keypair, sign_cap_digest
from ssbsync.core.refs import FeedId, MsgId, canonical_b64decode, is_feed_id, msg_id, public_key

MAX_MESSAGE_LENGTH = 8192  # UTF-16 code units of the signed pretty JSON (§5.6)

_ORDER_AUTHOR_FIRST = (
    "previous",
    "author",
    "sequence",
    "timestamp",
    "hash",
    "content",
    "signature",
)
_ORDER_SEQUENCE_FIRST = (
    "previous", "sequence", "author", "timestamp", "hash", "content", "signature",
)  # fmt: skip
# is-canonical-base64 followed by ssb-validate 4.1.4's `\.box.*` suffix. JS `.` stops at line
# terminators and `$` is end of input, hence the explicit class and \Z.
_B64_ANY = r"(?:[a-zA-Z0-9/+]{4})*(?:[a-zA-Z0-9/+](?:[AQgw]==|[a-zA-Z0-9/+][AEIMQUYcgkosw048]=))?"
_ENCRYPTED = re.compile(_B64_ANY + r"\.box[^\n\r\u2028\u2029]*\Z")
_SIGNATURE_SUFFIX = ".sig.ed25519"


@dataclass(frozen=True, slots=True)
class FeedState:
    """What validation needs to know of a feed: its latest message."""

    id: MsgId
    sequence: int
    timestamp: JSONValue


@dataclass(frozen=True, slots=True)
class Message:
    key: MsgId
    author: FeedId
    sequence: int
    previous: JSONValue
    timestamp: JSONValue  # claimed by the author; any JSON value after the first message
    value: dict[str, JSONValue]
    signed: str  # V8 `JSON.stringify(value, null, 2)`: what the id hashes
    json: str  # V8 `JSON.stringify(value)`: the wire form (§5.4), what the store keeps

    @property
    def content(self) -> JSONValue:
        return self.value["content"]

    def compact_json(self) -> str:
        return self.json

    def state(self) -> FeedState:
        return FeedState(self.key, self.sequence, self.timestamp)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message that passed every stateless rule, with what its signature covers."""

    message: Message
    signed_bytes: bytes
    signature: bytes


class ChainLink(Protocol):
    """What the chain rules look at (a Message, or the ingest path's flatter record)."""

    @property
    def sequence(self) -> int: ...
    @property
    def previous(self) -> JSONValue: ...
    @property
    def timestamp(self) -> JSONValue: ...


class ChainPosition(enum.Enum):
    NEXT = "next"  # extends the feed: store it
    AHEAD = "ahead"  # later than the next message: something is missing in between
    BEHIND = "behind"  # at or before the latest stored sequence: duplicate or fork


def is_encrypted(content: object) -> bool:
    """A private message's content string (`<canonical base64>.box…`, ssb-validate 4.1.4)."""
    return isinstance(content, str) and _ENCRYPTED.match(content) is not None


def _is_int32(n: object) -> bool:
    # JS `~~n === n`: a number equal to its int32 truncation.
    if type(n) is int:
        return -(2**31) <= n < 2**31
    return type(n) is float and n.is_integer() and -(2**31) <= n < 2**31


def _fail(reason: Reason, detail: str) -> RemoteProtocolError:
    return RemoteProtocolError(reason, detail)


def parse_hmac_key(hmac_key: object) -> bytes | None:
    """The sign cap as bytes; None when there is none. Rules of ssb-validate 4.1.4 (§5.7 7)."""
    if hmac_key is None:
        return None
    if isinstance(hmac_key, bytes):
        raw = hmac_key
    elif isinstance(hmac_key, str):
        decoded = canonical_b64decode(hmac_key)
        if decoded is None:
            raise _fail(Reason.BAD_HMAC_KEY, "the HMAC key is not canonical base64")
        raw = decoded
    else:
        raise _fail(Reason.BAD_HMAC_KEY, "the HMAC key must be a base64 string")
    if len(raw) != 32:
        raise _fail(Reason.BAD_HMAC_KEY, f"the HMAC key is {len(raw)} bytes, expected 32")
    return raw


def _check_content_type(content: JSONValue) -> None:
    if is_encrypted(content):
        return
    kind = content.get("type") if isinstance(content, dict) else None
    if not isinstance(kind, str) or not 3 <= jsonv8.utf16_length(kind) <= 52:
        raise _fail(Reason.BAD_TYPE, "content.type must be a string of 3 to 52 characters")


def _signature_bytes(signature: JSONValue) -> bytes:
    if not isinstance(signature, str) or len(signature) != 88 + len(_SIGNATURE_SUFFIX):
        raise _fail(Reason.BAD_SIGNATURE_FORMAT, "signature must be <88 base64>.sig.ed25519")
    raw = canonical_b64decode(signature[:88])
    if raw is None or len(raw) != 64 or signature[88:] != _SIGNATURE_SUFFIX:
        raise _fail(Reason.BAD_SIGNATURE_FORMAT, "signature must be <88 base64>.sig.ed25519")
    return raw


def _check_key_order(value: dict[str, JSONValue]) -> None:
    keys = tuple(value)
    if keys != _ORDER_SEQUENCE_FIRST and keys != _ORDER_AUTHOR_FIRST:
        raise _fail(Reason.BAD_KEY_ORDER, f"message keys must be in an allowed order, got {keys}")


def _serialize(members: list[tuple[str, JSONValue]], signature: str) -> tuple[str, str, str]:
    """(signing string, signed string, compact form) of a message (§5.2–5.4)."""
    encode, both = jsonv8.encode_string, jsonv8.pretty_and_compact_fragment
    parts = [(encode(k), *both(v, "  ")) for k, v in members]
    body = ",\n  ".join([name + ": " + pretty for name, pretty, _ in parts])
    unsigned = jsonv8.escape_lone_surrogates("{\n  " + body + "\n}")
    signature_json = encode(signature)
    signed = unsigned[:-2] + ',\n  "signature": ' + signature_json + "\n}"
    compact = ",".join([name + ":" + flat for name, _, flat in parts])
    compact = "{" + compact + ',"signature":' + signature_json + "}"
    return unsigned, signed, jsonv8.escape_lone_surrogates(compact)


def prepare(value: JSONValue, hmac_key: bytes | None = None) -> Prepared:
    """Apply every rule that needs only the message itself; raise if one fails."""
    if not isinstance(value, dict):
        raise _fail(Reason.BAD_SHAPE, "a message must be a JSON object")
    author = value.get("author")
    if not is_feed_id(author):
        raise _fail(Reason.BAD_AUTHOR, f"author is not a feed id: {author!r}")
    signature = _signature_bytes(value.get("signature"))
    _check_key_order(value)
    sequence = value["sequence"]
    if not _is_int32(sequence):
        raise _fail(Reason.BAD_SEQUENCE, f"sequence must be an integer, got {sequence!r}")
    content = value["content"]
    if not (isinstance(content, dict | list) or is_encrypted(content)):
        raise _fail(Reason.BAD_CONTENT, "content must be an object or an encrypted string")
    if value["hash"] != "sha256":
        raise _fail(Reason.BAD_HASH, f"hash must be 'sha256', got {value['hash']!r}")
    unsigned, signed, compact = _serialize(list(value.items())[:6], value["signature"])
    length, hash_input = jsonv8.utf16_length_and_latin1(signed)
    if length > MAX_MESSAGE_LENGTH:
        raise _fail(Reason.TOO_LARGE, f"message is {length} UTF-16 units, limit is 8192")
    _check_content_type(content)
    message = Message(
        key=msg_id(hashlib.sha256(hash_input).digest()),
        author=FeedId(str(author)),
        sequence=int(sequence),
        previous=value["previous"],
        timestamp=value["timestamp"],
        value=value,
        signed=signed,
        json=compact,
    )
    # `unsigned` has its lone surrogates escaped already, so plain UTF-8 is Node's encoding.
    signed_bytes = sign_cap_digest(hmac_key, unsigned.encode("utf-8"))
    return Prepared(message, signed_bytes, signature)


def verify_signature(prepared: Prepared) -> bool:
    """Ed25519 check of a prepared message (thread-safe, releases the GIL)."""
    try:
        bindings.crypto_sign_open(
            prepared.signature + prepared.signed_bytes, public_key(prepared.message.author)
        )
    except BadSignatureError:
        return False
    return True


def check_chain(state: FeedState | None, message: ChainLink) -> ChainPosition:
    """Where `message` falls relative to its feed's latest stored message (§5.7 rule 3).

    Raises for a message that can never be valid after `state`: a fork at the next sequence,
    or a first message with a non-null previous or a non-number timestamp.
    """
    if state is None:
        if message.sequence != 1:
            return ChainPosition.AHEAD
        if message.previous is not None:
            raise _fail(Reason.WRONG_PREVIOUS, "the first message must have previous: null")
        if type(message.timestamp) not in (int, float):
            raise _fail(Reason.BAD_TIMESTAMP, "the first message must have a number timestamp")
        return ChainPosition.NEXT
    if message.sequence > state.sequence + 1:
        return ChainPosition.AHEAD
    if message.sequence <= state.sequence:
        return ChainPosition.BEHIND
    if message.previous != state.id:
        raise _fail(Reason.FORK, f"previous is not {state.id} (seq {state.sequence})")
    return ChainPosition.NEXT


def validate(state: FeedState | None, hmac_key: object, value: JSONValue) -> Message:
    """ssb-validate 4.1.4 `append` for one message: return it if valid, else raise."""
    prepared = prepare(value, parse_hmac_key(hmac_key))
    position = check_chain(state, prepared.message)
    if position is not ChainPosition.NEXT:
        expected = 1 if state is None else state.sequence + 1
        raise _fail(
            Reason.WRONG_SEQUENCE,
            f"expected sequence {expected}, got {prepared.message.sequence}",
        )
    if not verify_signature(prepared):
        raise _fail(Reason.BAD_SIGNATURE, "the signature does not verify")
    return prepared.message


def create(
    keys: Keypair,
    state: FeedState | None,
    content: JSONValue,
    timestamp: int | float,
    hmac_key: bytes | None = None,
) -> Message:
    """Sign a new message after `state`, in ssb-server 16's key order (§5.1).

    `timestamp` must increase along the feed (ssb-validate `create`); the caller passes
    a clock reading already adjusted for that.
    """
    if state is not None and type(state.timestamp) in (int, float) and timestamp <= state.timestamp:
        raise LocalProtocolError("timestamp must be greater than the previous message's")
    members: list[tuple[str, JSONValue]] = [
        ("previous", state.id if state else None),
        ("sequence", state.sequence + 1 if state else 1),
        ("author", keys.id),
        ("timestamp", timestamp),
        ("hash", "sha256"),
        ("content", content),
    ]
    unsigned, _, _ = _serialize(members, "")
    signature = keys.sign(sign_cap_digest(hmac_key, jsonv8.utf8_bytes(unsigned)))
    value = dict(members)
    value["signature"] = base64.b64encode(signature).decode("ascii") + _SIGNATURE_SUFFIX
    try:
        return prepare(value, hmac_key).message
    except RemoteProtocolError as err:
        raise LocalProtocolError(f"cannot publish this content: {err}") from None
