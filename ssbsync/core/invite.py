"""Pub invite codes (PROTOCOL.md §10): parse them, format them, derive the invite key pair.

Two forms exist, both read as ssb-ref 2.x `parseInvite` reads them:

* legacy, what ssb-invite 2.1.4 `invite.create` returns by default:
  `HOST:PORT:@PUBKEY.ed25519~SEED`
* multiserver, the seed being a third data field of the `shs` element:
  `net:HOST:PORT~shs:PUBKEY:SEED` (also `onion:`; `;`-separated alternatives allowed)

Either may end in a `#…` redirect (kept, never used) and may come wrapped in double quotes, as
the ssb-server CLI prints it. The SEED is 32 bytes; the guest uses
`crypto_sign_seed_keypair(SEED)` as its long-term key for the secret handshake with the pub.
Pure: the caller supplies the random seed when making a code.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass

from ssbsync.core.keys import Keypair
from ssbsync.core.refs import FeedId, decode_key32, feed_id, is_feed_id

_SEED_RE = re.compile(r"[A-Za-z0-9/+]{43}=")  # ssb-ref's legacyInviteRegex: 32 bytes
_DOMAIN_RE = re.compile(
    r"(?=.{1,253}\Z)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?"
)
TRANSPORTS = ("net", "onion")  # ssb-ref also reads ws/wss (as ws://host); nobody dials those


class InviteError(ValueError):
    """Not an invite code; the message says which part is wrong."""


@dataclass(frozen=True, slots=True)
class Invite:
    transport: str  # "net" or "onion"
    host: str
    port: int
    key: bytes  # the pub's public key
    seed: bytes  # 32 bytes: the invite key pair's seed
    redirect: str | None = None  # the `#…` suffix, if any

    @property
    def pub_id(self) -> FeedId:
        return feed_id(self.key)

    @property
    def keypair(self) -> Keypair:
        """The key pair the guest authenticates with (§10 step 2)."""
        return Keypair.from_seed(self.seed)

    @property
    def invite_id(self) -> FeedId:
        """The id the pub stores the invite under: the invite key pair's public id."""
        return self.keypair.id

    @property
    def remote(self) -> str:
        """The pub's multiserver address (ssb-ref `parseInvite(…).remote`)."""
        key = base64.b64encode(self.key).decode()
        return f"{self.transport}:{self.host}:{self.port}~shs:{key}"

    @property
    def pub_address(self) -> dict[str, str | int]:
        """`{host, port, key}`: the `address` of the guest's `pub` message (ssb-invite 2.1.4)."""
        return {"host": self.host, "port": self.port, "key": self.pub_id}

    def multiserver(self) -> str:
        """The multiserver form, which ssb-invite's `accept` converts every code to."""
        return f"{self.remote}:{base64.b64encode(self.seed).decode()}"

    def legacy(self) -> str:
        """The legacy form: what ssb-invite 2.1.4's `invite.create` returns by default."""
        return format_legacy(self.host, self.port, self.key, self.seed)


def format_legacy(host: str, port: int, pub_key: bytes, seed: bytes) -> str:
    """`HOST:PORT:@PUBKEY.ed25519~SEED` (ssb-invite 2.1.4 `create`, §10)."""
    if len(pub_key) != 32 or len(seed) != 32:
        raise ValueError("an invite needs a 32-byte public key and a 32-byte seed")
    return f"{host}:{port}:{feed_id(pub_key)}~{base64.b64encode(seed).decode()}"


def parse_invite(code: object) -> Invite:
    """Read an invite code in either form; InviteError says what is wrong with it."""
    if not isinstance(code, str):
        raise InviteError(f"an invite code is a string, got {type(code).__name__}")
    text = code.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]  # as printed by the CLI (ssb-invite's accept strips them too)
    text, hash_sign, rest = text.partition("#")
    redirect = hash_sign + rest if hash_sign else None
    if not text:
        raise InviteError("the invite code is empty")
    parts = text.split("~")
    if len(parts) == 1 and not _is_multiserver(text):
        raise InviteError(f"not an invite code (it has no ~SEED part): {text!r}")
    if len(parts) == 2 and ":" in parts[0] and not _is_multiserver(parts[0]):
        return _parse_legacy(parts[0], parts[1], redirect)
    return _parse_multiserver(text, redirect)


def _is_multiserver(where: str) -> bool:
    return where.split(":", 1)[0] in (*TRANSPORTS, "ws", "wss", "unix")


def _parse_legacy(address: str, seed: str, redirect: str | None) -> Invite:
    location, _, key_text = address.rpartition(":")
    if not is_feed_id(key_text):
        raise InviteError(f"the invite's pub key is not a feed id (@…=.ed25519): {key_text!r}")
    host, port = _split_host_port(location, what="legacy invite")
    transport = "onion" if host.endswith(".onion") else "net"
    return Invite(transport, host, port, _key(key_text[1:45], "pub key"), _seed(seed), redirect)


def _parse_multiserver(text: str, redirect: str | None) -> Invite:
    problems: list[str] = []
    for alternative in text.split(";"):
        try:
            return _parse_multiserver_one(alternative.strip(), redirect)
        except InviteError as err:
            problems.append(str(err))
    raise InviteError("not an invite code: " + "; ".join(problems))


def _parse_multiserver_one(text: str, redirect: str | None) -> Invite:
    where, _, transform = text.partition("~")
    transport, _, location = where.partition(":")
    if transport not in TRANSPORTS:
        raise InviteError(
            f"unsupported transport {transport!r} in {text!r} "
            "(expected net:HOST:PORT~shs:KEY:SEED or HOST:PORT:@KEY.ed25519~SEED)"
        )
    host, port = _split_host_port(location, what=f"{transport} address")
    fields = transform.split(":")
    if fields[0] != "shs" or len(fields) < 2:
        raise InviteError(f"the invite has no shs:KEY part: {text!r}")
    if len(fields) < 3 or not fields[2]:
        raise InviteError(f"the address has no invite seed (shs:KEY:SEED): {text!r}")
    return Invite(transport, host, port, _key(fields[1], "pub key"), _seed(fields[2]), redirect)


def _split_host_port(text: str, *, what: str) -> tuple[str, int]:
    """`HOST:PORT` (the host may itself hold colons: IPv6) → (host, port)."""
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise InviteError(f"the {what} needs HOST:PORT, got {text!r}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InviteError(f"the {what} has no valid port (1-65535): {port!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not is_host(host):
        raise InviteError(f"the {what} has no valid host (IP address or domain name): {host!r}")
    return host, int(port)


def is_host(host: str) -> bool:
    """An IP address, a domain name or `localhost` (ssb-ref `isHost`)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return _DOMAIN_RE.fullmatch(host) is not None


def _key(text: str, what: str) -> bytes:
    try:
        return decode_key32(text)
    except ValueError as err:
        raise InviteError(f"the invite's {what} {err}") from None


def _seed(text: str) -> bytes:
    if not _SEED_RE.fullmatch(text):
        raise InviteError(f"the invite seed must be base64 of 32 bytes (44 characters): {text!r}")
    return _key(text, "seed")
