"""Private messages: private-box "box1" as ssb-keys 7.2.2 / private-box 0.3.1 (PROTOCOL.md §9).

Ciphertext = nonce(24) ‖ ephemeral Curve25519 pk(32) ‖ one 49-byte slot per recipient
(`secretbox([N] ‖ body_key, nonce, scalarmult(e_sk, recipient_curve_pk))`) ‖
`secretbox(plaintext, nonce, body_key)`. The 33 bytes `[N] ‖ body_key` are the "unbox key"
(ssb-db's `meta.unbox`, the `?unbox=` of a message link).

Sans-IO: the randomness (nonce, body key, ephemeral secret) comes in as `BoxRandomness`.
Opening never raises for bad input: anything that is not a box for us is `None`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nacl import bindings
from nacl.exceptions import CryptoError

from ssbsync.core import jsonv8
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId, is_feed_id, public_key

MAX_RECIPIENTS = 7  # private-box's default `max` (§9)
SUFFIX = ".box"
NONCE_BYTES = 24
KEY_BYTES = 32
MAC_BYTES = 16
UNBOX_KEY_BYTES = 1 + KEY_BYTES  # [N] ‖ body_key
SLOT_BYTES = UNBOX_KEY_BYTES + MAC_BYTES  # 49
HEADER_BYTES = NONCE_BYTES + KEY_BYTES  # 56: nonce ‖ ephemeral pk


class PrivateBoxError(ValueError):
    """Content that cannot be boxed as asked (bad recipients, too many); the text says why."""


@dataclass(frozen=True, slots=True)
class BoxRandomness:
    """The three random inputs of one box (private-box draws them with `randombytes`)."""

    nonce: bytes  # 24 bytes
    body_key: bytes  # 32 bytes
    ephemeral_secret: bytes  # 32-byte Curve25519 secret; its public key is derived

    def __post_init__(self) -> None:
        sizes = (("nonce", self.nonce, 24), ("body_key", self.body_key, 32))
        for name, value, size in (*sizes, ("ephemeral_secret", self.ephemeral_secret, 32)):
            if len(value) != size:
                raise ValueError(f"{name} must be {size} bytes, got {len(value)}")

    @classmethod
    def draw(cls, random_bytes: Callable[[int], bytes]) -> BoxRandomness:
        """Fresh inputs from the caller's source of randomness (e.g. `os.urandom`)."""
        return cls(random_bytes(NONCE_BYTES), random_bytes(KEY_BYTES), random_bytes(KEY_BYTES))


@dataclass(frozen=True, slots=True)
class Unboxed:
    """A private message's content, opened, and the key that opened its body."""

    content: dict[str, JSONValue]
    unbox_key: bytes  # 33 bytes: [N] ‖ body_key

    @property
    def unbox_key_text(self) -> str:
        """As ssb-db shows it in `meta.unbox`: standard base64 of the 33 bytes."""
        return base64.b64encode(self.unbox_key).decode("ascii")


# -- bytes level (private-box multibox / multibox_open_key / multibox_open_body) ----------------


def curve_secret_key(ed25519_secret: bytes) -> bytes:
    """Our Ed25519 secret (64 bytes) as the Curve25519 secret that opens boxes (§9)."""
    secret: bytes = bindings.crypto_sign_ed25519_sk_to_curve25519(ed25519_secret)
    return secret


def box(plaintext: bytes, recipients: Sequence[bytes], randomness: BoxRandomness) -> bytes:
    """Encrypt `plaintext` to 1..7 recipients, each given as a 32-byte Ed25519 public key."""
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise PrivateBoxError(
            f"a private message needs 1 to {MAX_RECIPIENTS} recipients, got {len(recipients)}"
        )
    nonce, body_key = randomness.nonce, randomness.body_key
    ephemeral_public = bindings.crypto_scalarmult_base(randomness.ephemeral_secret)
    header = bytes([len(recipients)]) + body_key  # the count comes first (§9)
    slots = [
        bindings.crypto_secretbox_easy(header, nonce, _shared_key(randomness, recipient))
        for recipient in recipients
    ]
    body = bindings.crypto_secretbox_easy(plaintext, nonce, body_key)
    return b"".join([nonce, ephemeral_public, *slots, body])


def _shared_key(randomness: BoxRandomness, recipient: bytes) -> bytes:
    try:
        curve_public = bindings.crypto_sign_ed25519_pk_to_curve25519(recipient)
        shared: bytes = bindings.crypto_scalarmult(randomness.ephemeral_secret, curve_public)
    except (CryptoError, RuntimeError, ValueError, TypeError):
        raise PrivateBoxError("a recipient's key is not a usable Ed25519 public key") from None
    return shared


def open_key(ciphertext: bytes, curve_secret: bytes) -> bytes | None:
    """The unbox key (`[N] ‖ body_key`) if one of the slots is ours, else None.

    Tries slots 0..MAX_RECIPIENTS while a whole slot and the body's MAC still fit, as
    private-box's `multibox_open_key` does (so up to 8 slots).
    """
    if len(ciphertext) < HEADER_BYTES + SLOT_BYTES + MAC_BYTES:
        return None
    nonce = ciphertext[:NONCE_BYTES]
    try:
        shared = bindings.crypto_scalarmult(curve_secret, ciphertext[NONCE_BYTES:HEADER_BYTES])
    except (CryptoError, RuntimeError, ValueError, TypeError):
        return None  # a low-order ephemeral key: no one can open this
    for index in range(MAX_RECIPIENTS + 1):
        start = HEADER_BYTES + SLOT_BYTES * index
        if start + SLOT_BYTES > len(ciphertext) - MAC_BYTES:
            return None
        opened = _secretbox_open(ciphertext[start : start + SLOT_BYTES], nonce, shared)
        if opened is not None:
            return opened
    return None


def open_body(ciphertext: bytes, unbox_key: bytes) -> bytes | None:
    """The plaintext, given the unbox key (ours from `open_key`, or one someone shared)."""
    if len(unbox_key) != UNBOX_KEY_BYTES or len(ciphertext) < HEADER_BYTES:
        return None
    start = HEADER_BYTES + SLOT_BYTES * unbox_key[0]
    return _secretbox_open(ciphertext[start:], ciphertext[:NONCE_BYTES], unbox_key[1:])


def unbox(ciphertext: bytes, curve_secret: bytes) -> bytes | None:
    """The plaintext if this box is addressed to `curve_secret`'s owner, else None."""
    key = open_key(ciphertext, curve_secret)
    return None if key is None else open_body(ciphertext, key)


def _secretbox_open(boxed: bytes, nonce: bytes, key: bytes) -> bytes | None:
    if len(boxed) < MAC_BYTES:
        return None
    try:
        opened: bytes = bindings.crypto_secretbox_open_easy(boxed, nonce, key)
    except (CryptoError, ValueError, TypeError):
        return None
    return opened


# -- content level (ssb-db 20 autobox + ssb-private1 box1) --------------------------------------


def recipients_of(content: JSONValue) -> list[FeedId] | None:
    """`content.recps` as the list of feeds to box for, or None when the content is public.

    ssb-db's autobox: a string is one recipient; an array must be non-empty; ssb-private1
    boxes only when every recipient is a feed id; private-box takes at most 7 (§9).
    """
    if not isinstance(content, dict) or content.get("recps") is None:
        return None
    recps = content["recps"]
    if isinstance(recps, str):
        recps = [recps]
    if not isinstance(recps, list):
        raise PrivateBoxError('private message field "recps" expects an array of recipients')
    if not recps:
        raise PrivateBoxError('private message field "recps" requires at least one recipient')
    bad = [r for r in recps if not is_feed_id(r)]
    if bad:
        raise PrivateBoxError(
            f"private message recipients must be feed ids (@…=.ed25519); not one: {bad[0]!r}"
        )
    if len(recps) > MAX_RECIPIENTS:
        raise PrivateBoxError(
            f"a private message can have at most {MAX_RECIPIENTS} recipients, got {len(recps)}"
        )
    return [FeedId(str(r)) for r in recps]


def box_content(
    content: dict[str, JSONValue], recipients: Sequence[FeedId], randomness: BoxRandomness
) -> str:
    """`base64(box(JSON.stringify(content))) + ".box"`: a private message's content string."""
    for feed in recipients:
        if not is_feed_id(feed):
            raise PrivateBoxError(f"not a feed id: {feed!r}")
    plaintext = jsonv8.utf8_bytes(jsonv8.stringify(content))
    ciphertext = box(plaintext, [public_key(feed) for feed in recipients], randomness)
    return base64.b64encode(ciphertext).decode("ascii") + SUFFIX


def ciphertext_of(content: object) -> bytes | None:
    """The box inside a content string ending in ".box" (as ssb-private1), else None.

    ssb-keys decodes the base64 before the first dot; validated messages hold canonical
    base64 there, so strict decoding loses nothing.
    """
    if not isinstance(content, str) or not content.endswith(SUFFIX):
        return None
    encoded = content[: content.index(".")]
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def open_content(content: object, curve_secret: bytes) -> Unboxed | None:
    """A content string's plaintext content (a JSON object) if it is a box for us."""
    ciphertext = ciphertext_of(content)
    key = None if ciphertext is None else open_key(ciphertext, curve_secret)
    return None if key is None else open_content_with_key(content, key)


def open_content_with_key(content: object, unbox_key: bytes) -> Unboxed | None:
    """The same with a given unbox key (`get({id, private: true, unbox})`, `?unbox=` links)."""
    ciphertext = ciphertext_of(content)
    plaintext = None if ciphertext is None else open_body(ciphertext, unbox_key)
    if plaintext is None:
        return None
    try:  # JS: JSON.parse('' + buffer), undecodable bytes become U+FFFD
        value = jsonv8.parse(plaintext.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None
    # ssb-db would show any truthy JSON value; content is an object everywhere else, and
    # only objects are worth showing or indexing.
    return Unboxed(value, bytes(unbox_key)) if isinstance(value, dict) else None


def parse_unbox_key(text: object) -> bytes:
    """An unbox key given as base64 text (whitespace read as '+', as ssb-db does for links)."""
    if not isinstance(text, str):
        raise ValueError(f"an unbox key is a base64 string, got {text!r}")
    try:
        raw = binascii.a2b_base64(re.sub(r"\s", "+", text), strict_mode=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the unbox key is not base64: {text!r}") from None
    if len(raw) != UNBOX_KEY_BYTES:
        raise ValueError(f"an unbox key is {UNBOX_KEY_BYTES} bytes, this one is {len(raw)}")
    return raw
