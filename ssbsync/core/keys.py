"""Ed25519 identities and the ssb-keys `secret` file format (PROTOCOL.md §1.1, §1.3).

Pure functions: the caller reads and writes the file and supplies the random seed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from nacl import bindings

from ssbsync.core.refs import FeedId, feed_id

_COMMENT = re.compile(r"\s*#[^\n]*")

# The wording ssb-keys 7.2.2 writes (storage.js `constructKeys`), so that a file we create reads
# the same to a Scuttlebutt user as one ssb-server created.
_SECRET_HEADER = """# WARNING: Never show this to anyone.
# WARNING: Never edit it or use it on multiple devices at once.
#
# This is your SECRET, it gives you magical powers. With your secret you can
# sign your messages so that your friends can verify that the messages came
# from you. If anyone learns your secret, they can use it to impersonate you.
#
# If you use this secret on more than one device you will create a fork and
# your friends will stop replicating your content.
#
"""

_SECRET_FOOTER = """
#
# The only part of this file that's safe to share is your public name:
#
#   {id}"""


class KeyFileError(ValueError):
    """A secret file that cannot be read as an ssb-keys identity; says what is wrong."""


@dataclass(frozen=True)
class Keypair:
    public: bytes  # 32 bytes
    secret: bytes  # 64 bytes: libsodium's seed || public

    @property
    def id(self) -> FeedId:
        return feed_id(self.public)

    @classmethod
    def from_seed(cls, seed: bytes) -> Keypair:
        """`crypto_sign_seed_keypair(seed)`; the caller supplies 32 random bytes."""
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        public, secret = bindings.crypto_sign_seed_keypair(seed)
        return cls(public=public, secret=secret)

    def sign(self, data: bytes) -> bytes:
        """Detached Ed25519 signature (64 bytes)."""
        signed: bytes = bindings.crypto_sign(data, self.secret)
        return signed[:64]


def sign_cap_digest(sign_cap: bytes | None, data: bytes) -> bytes:
    """What is actually signed: the data, or HMAC-SHA-512-256 of it under a sign cap (§1.3)."""
    if sign_cap is None:
        return data
    return hmac.new(sign_cap, data, hashlib.sha512).digest()[:32]


def format_secret_file(keys: Keypair) -> str:
    """The text ssb-keys writes to `~/.ssb/secret`: comments, pretty JSON, comments."""
    body = {
        "curve": "ed25519",
        "public": base64.b64encode(keys.public).decode() + ".ed25519",
        "private": base64.b64encode(keys.secret).decode() + ".ed25519",
        "id": keys.id,
    }
    return _SECRET_HEADER + json.dumps(body, indent=2) + _SECRET_FOOTER.format(id=keys.id)


def parse_secret_file(text: str) -> Keypair:
    """Read an ssb-keys secret file (JSON form or the legacy bare `private` string)."""
    stripped = "".join(_COMMENT.sub("", line) for line in text.splitlines()).strip()
    if not stripped:
        raise KeyFileError("the secret file holds no key (only comments or nothing)")
    private: object
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as err:
            raise KeyFileError(f"the secret file is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise KeyFileError("the secret file does not hold a JSON object")
        if data.get("curve", "ed25519") != "ed25519":
            raise KeyFileError(f"unsupported curve {data.get('curve')!r} (only ed25519)")
        private = data.get("private")
    else:
        private = stripped
    keys = _keypair_from_private(private)
    if stripped.startswith("{"):
        _check_public_matches(data, keys)
    return keys


def _keypair_from_private(private: object) -> Keypair:
    if not isinstance(private, str):
        raise KeyFileError("the secret file has no 'private' key string")
    b64 = private.removesuffix(".ed25519")
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        raise KeyFileError("'private' is not base64") from None
    if len(raw) != 64:
        raise KeyFileError(f"'private' decodes to {len(raw)} bytes, expected 64")
    keys = Keypair.from_seed(raw[:32])
    if keys.secret != raw:
        raise KeyFileError("'private' is inconsistent: its public half does not match its seed")
    return keys


def _check_public_matches(data: dict[str, object], keys: Keypair) -> None:
    public = data.get("public")
    if public is not None and public != base64.b64encode(keys.public).decode() + ".ed25519":
        raise KeyFileError("'public' does not match 'private'")
    claimed = data.get("id")
    if claimed is not None and str(claimed).lstrip("@") != keys.id.lstrip("@"):
        raise KeyFileError("'id' does not match 'private'")
