"""The secret handshake, SHS v1 (PROTOCOL.md §2), as two sans-IO machines.

The client knows the server's long-term key in advance; the server learns the client's in msg3.
Each side feeds what it read to `receive_data()` and writes out what `data_to_send()` returns:

    client                                  server
    msg1  hmac(N, a_pk) ‖ a_pk         →                     (64 bytes)
                                       ←    msg2  hmac(N, b_pk) ‖ b_pk   (64 bytes)
    msg3  secretbox(sig_A ‖ A_pk)      →                     (112 bytes)
                                       ←    msg4  secretbox(sig_B)       (80 bytes)

Once the last message is in, `session` holds the box-stream keys for both directions
(§2 "Session keys"). Randomness comes in as the ephemeral X25519 secret; nothing here reads a
clock or a socket.

Invariants of both machines:
* `_steps` lists the messages still expected from the peer, as (length, handler) pairs. A
  handler runs once its whole message is buffered; it may queue output and must raise
  `HandshakeError` (never another exception) when the message is bad.
* When `_steps` is empty the handshake is complete, `session` is set, and every byte received
  since is leftover (the peer's first box-stream bytes), drained by `leftover()`.
* Bytes held never exceed what the remaining steps need plus `MAX_LEFTOVER`; more is a
  `RemoteProtocolError(Reason.LIMIT)`. Feed at most `MAX_LEFTOVER` bytes per call and drain
  `leftover()` after completion, and a well-behaved peer never hits this bound.
* The first error is final: every later `receive_data()`, `data_to_send()` or `leftover()`
  raises it again, and nothing queued is ever handed out (a failed handshake sends nothing
  more, §2 "Verification steps").
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from nacl import bindings
from nacl.exceptions import CryptoError

from ssbsync.core.errors import LocalProtocolError, Reason, RemoteProtocolError
from ssbsync.core.keys import Keypair

# caps.shs of the main network (ssb-caps `1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s=`, §1.3).
MAIN_NETWORK_KEY = bytes.fromhex("d4a1cb88a66f02f8db635ce26441cc5dac1b08420ceaac230839b755845a9ffb")

CHALLENGE_LENGTH = 64  # msg1, msg2
CLIENT_AUTH_LENGTH = 112  # msg3: 16-byte MAC + 64-byte signature + 32-byte public key
SERVER_ACCEPT_LENGTH = 80  # msg4: 16-byte MAC + 64-byte signature
MAX_LEFTOVER = 64 * 1024  # bytes past the handshake held until `leftover()` drains them

_ZERO_NONCE = bytes(24)  # every box of the handshake uses the all-zero nonce (§2)


@dataclass(frozen=True, slots=True)
class BoxKeys:
    """One direction of a box-stream (§3): key and starting nonce (the key stays out of repr)."""

    key: bytes = field(repr=False)  # 32
    nonce: bytes  # 24


@dataclass(frozen=True, slots=True)
class Session:
    """What a completed handshake yields."""

    remote_public: bytes  # the peer's long-term Ed25519 public key (32)
    send: BoxKeys  # what we encrypt with
    receive: BoxKeys  # what we decrypt with


class HandshakeError(RemoteProtocolError):
    """The peer's handshake message failed a check; `detail` says which step."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.BAD_HANDSHAKE, detail)


# -- the crypto steps (§2), pure functions --------------------------------------------------


def _auth(key: bytes, data: bytes) -> bytes:
    """`crypto_auth`: HMAC-SHA-512 truncated to 32 bytes."""
    return hmac.new(key, data, hashlib.sha512).digest()[:32]


def _sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _challenge(network_key: bytes, ephemeral_public: bytes) -> bytes:
    """msg1 / msg2: `hmac(N, eph_pk) ‖ eph_pk`."""
    return _auth(network_key, ephemeral_public) + ephemeral_public


def _open_challenge(network_key: bytes, challenge: bytes, which: str) -> bytes:
    """The peer's ephemeral public key from msg1 / msg2, if its hmac is right."""
    mac, ephemeral_public = challenge[:32], challenge[32:]
    if not hmac.compare_digest(mac, _auth(network_key, ephemeral_public)):
        raise HandshakeError(f"{which}: the hmac does not match (another network key?)")
    return ephemeral_public


def _shared(secret: bytes, public: bytes, which: str) -> bytes:
    """X25519; libsodium refuses a low-order public key (an all-zero result)."""
    try:
        result: bytes = bindings.crypto_scalarmult(secret, public)
    except CryptoError:
        raise HandshakeError(f"{which}: unusable Curve25519 key") from None
    return result


def _curve_public(ed25519_public: bytes, which: str) -> bytes:
    try:
        result: bytes = bindings.crypto_sign_ed25519_pk_to_curve25519(ed25519_public)
    except CryptoError:
        raise HandshakeError(f"{which}: the long-term key is not a usable Ed25519 key") from None
    return result


def _curve_secret(local: Keypair) -> bytes:
    result: bytes = bindings.crypto_sign_ed25519_sk_to_curve25519(local.secret)
    return result


def _verify(signature: bytes, data: bytes, public: bytes) -> bool:
    try:
        bindings.crypto_sign_open(signature + data, public)
    except CryptoError:
        return False
    return True


def _open_box(box: bytes, key: bytes, which: str) -> bytes:
    try:
        plain: bytes = bindings.crypto_secretbox_open_easy(box, _ZERO_NONCE, key)
    except CryptoError:
        raise HandshakeError(f"{which}: the box does not open (wrong keys or tampered)") from None
    return plain


def _seal_box(plain: bytes, key: bytes) -> bytes:
    box: bytes = bindings.crypto_secretbox_easy(plain, _ZERO_NONCE, key)
    return box


def _session(
    session_secret: bytes,
    local_public: bytes,
    remote_public: bytes,
    local_challenge: bytes,
    remote_challenge: bytes,
) -> Session:
    """Box-stream keys from `S = sha256(sha256(N ‖ ab ‖ aB ‖ Ab))` (§2 "Session keys").

    We encrypt with sha256(S ‖ remote pk) from the remote's hmac[0:24]; we decrypt with
    sha256(S ‖ own pk) from our own hmac[0:24].
    """
    return Session(
        remote_public=remote_public,
        send=BoxKeys(_sha256(session_secret, remote_public), remote_challenge[:24]),
        receive=BoxKeys(_sha256(session_secret, local_public), local_challenge[:24]),
    )


def _check_length(value: bytes, length: int, name: str) -> None:
    if len(value) != length:
        raise LocalProtocolError(f"{name} must be {length} bytes, got {len(value)}")


# -- the machines ---------------------------------------------------------------------------

_Step = tuple[int, Callable[[bytes], None]]


class _Handshake:
    """Buffering, output, completion and failure shared by both sides (see module docstring)."""

    def __init__(self, network_key: bytes, local: Keypair, ephemeral_secret: bytes) -> None:
        _check_length(network_key, 32, "network_key")
        _check_length(ephemeral_secret, 32, "ephemeral_secret")
        self._network_key = network_key
        self._local = local
        self._eph_secret = ephemeral_secret
        eph_public: bytes = bindings.crypto_scalarmult_base(ephemeral_secret)
        self._own_challenge = _challenge(network_key, eph_public)
        self._steps: list[_Step] = []
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._session: Session | None = None
        self._error: RemoteProtocolError | None = None

    @property
    def session(self) -> Session | None:
        """The box-stream keys, once the handshake completed (None before and after a failure)."""
        return self._session

    def data_to_send(self) -> bytes:
        """Drain the bytes to write to the peer."""
        self._raise_if_failed()
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def receive_data(self, data: bytes) -> None:
        """Buffer `data` and handle every handshake message it completes."""
        self._raise_if_failed()
        if len(self._buffer) + len(data) > self._still_expected() + MAX_LEFTOVER:
            self._fail(RemoteProtocolError(Reason.LIMIT, "too many bytes during the handshake"))
        self._buffer += data
        while self._steps and len(self._buffer) >= self._steps[0][0]:
            length, handler = self._steps.pop(0)
            message = bytes(self._buffer[:length])
            del self._buffer[:length]
            try:
                handler(message)
            except RemoteProtocolError as err:
                self._fail(err)
            except BaseException:  # e.g. from `authorize`: no half-finished state survives it
                self._mark_failed(HandshakeError("interrupted by an exception"))
                raise

    def leftover(self) -> bytes:
        """Drain the bytes received after the handshake (the first box-stream bytes)."""
        self._raise_if_failed()
        if self._steps:
            return b""
        out = bytes(self._buffer)
        self._buffer.clear()
        return out

    def _still_expected(self) -> int:
        return sum(length for length, _ in self._steps)

    def _with_ephemeral(self, remote_public: bytes, which: str) -> bytes:
        """X25519 of our ephemeral secret with a remote Curve25519 public key."""
        return _shared(self._eph_secret, remote_public, which)

    def _mark_failed(self, err: RemoteProtocolError) -> None:
        self._error = err
        self._steps.clear()
        self._buffer.clear()
        self._outgoing.clear()
        self._session = None

    def _fail(self, err: RemoteProtocolError) -> NoReturn:
        self._mark_failed(err)
        raise err

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error.with_traceback(None)


class ClientHandshake(_Handshake):
    """The dialling side (Alice). msg1 is ready in `data_to_send()` as soon as it exists."""

    def __init__(
        self,
        network_key: bytes,
        local: Keypair,
        server_public: bytes,
        ephemeral_secret: bytes,
    ) -> None:
        super().__init__(network_key, local, ephemeral_secret)
        _check_length(server_public, 32, "server_public")
        try:
            server_curve = _curve_public(server_public, "server_public")
            self._aB = _shared(ephemeral_secret, server_curve, "server_public")
        except HandshakeError as err:
            raise LocalProtocolError(err.detail) from None
        self._server_public = server_public
        self._steps = [(CHALLENGE_LENGTH, self._on_msg2), (SERVER_ACCEPT_LENGTH, self._on_msg4)]
        self._outgoing += self._own_challenge

    def _on_msg2(self, msg2: bytes) -> None:
        server_ephemeral = _open_challenge(self._network_key, msg2, "msg2")
        self._msg2 = msg2
        self._ab = self._with_ephemeral(server_ephemeral, "msg2")
        self._Ab = _shared(_curve_secret(self._local), server_ephemeral, "msg2")
        signed = self._network_key + self._server_public + _sha256(self._ab)
        self._hello = self._local.sign(signed) + self._local.public
        key = _sha256(self._network_key, self._ab, self._aB)
        self._outgoing += _seal_box(self._hello, key)

    def _on_msg4(self, msg4: bytes) -> None:
        secret3 = _sha256(self._network_key, self._ab, self._aB, self._Ab)
        signature = _open_box(msg4, secret3, "msg4")
        signed = self._network_key + self._hello + _sha256(self._ab)
        if not _verify(signature, signed, self._server_public):
            raise HandshakeError("msg4: the server's signature does not verify")
        self._session = _session(
            _sha256(secret3),
            self._local.public,
            self._server_public,
            self._own_challenge,
            self._msg2,
        )


def _allow_any(client_public: bytes) -> bool:
    return True


class ServerHandshake(_Handshake):
    """The listening side (Bob). Says nothing until a valid msg1 arrived."""

    def __init__(
        self,
        network_key: bytes,
        local: Keypair,
        ephemeral_secret: bytes,
        authorize: Callable[[bytes], bool] = _allow_any,
    ) -> None:
        super().__init__(network_key, local, ephemeral_secret)
        self._authorize = authorize
        self._client_public: bytes | None = None
        self._steps = [(CHALLENGE_LENGTH, self._on_msg1), (CLIENT_AUTH_LENGTH, self._on_msg3)]

    @property
    def client_public(self) -> bytes | None:
        """The client's long-term key once msg3 verified (kept if `authorize` then refused)."""
        return self._client_public

    def _on_msg1(self, msg1: bytes) -> None:
        client_ephemeral = _open_challenge(self._network_key, msg1, "msg1")
        self._msg1 = msg1
        self._ab = self._with_ephemeral(client_ephemeral, "msg1")
        self._aB = _shared(_curve_secret(self._local), client_ephemeral, "msg1")
        self._outgoing += self._own_challenge

    def _on_msg3(self, msg3: bytes) -> None:
        hello = _open_box(msg3, _sha256(self._network_key, self._ab, self._aB), "msg3")
        signature, client_public = hello[:64], hello[64:]
        signed = self._network_key + self._local.public + _sha256(self._ab)
        if not _verify(signature, signed, client_public):
            raise HandshakeError("msg3: the client's signature does not verify")
        client_curve = _curve_public(client_public, "msg3")
        Ab = self._with_ephemeral(client_curve, "msg3")
        self._client_public = client_public
        if not self._authorize(client_public):
            raise HandshakeError("client not authorized")
        secret3 = _sha256(self._network_key, self._ab, self._aB, Ab)
        accept = self._local.sign(self._network_key + hello + _sha256(self._ab))
        self._outgoing += _seal_box(accept, secret3)
        self._session = _session(
            _sha256(secret3), self._local.public, client_public, self._own_challenge, self._msg1
        )
