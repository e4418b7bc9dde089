"""Box-stream: the bulk encryption after the handshake (PROTOCOL.md §3), sans-IO.

Each direction has its own key `K` and running nonce `n` (from `shs.Session`). A chunk `m` of
1..4096 bytes goes on the wire as

    secretbox(uint16_be(len(m)) ‖ body_mac, n, K)   34-byte header (18 plaintext + 16 MAC)
    body_ct                                         len(m) bytes, body_mac ‖ body_ct =
                                                    secretbox(m, n+1, K)

and then `n += 2`. The nonce is a 24-byte big-endian counter wrapping at 2**192. The stream
ends cleanly with a header whose 18 plaintext bytes are all zero (the goodbye).

Decoder invariants: `receive_data()` only buffers (at most `max_buffer` bytes); `next_event()`
opens at most one header and one body per call, keeps an opened header until its body is
complete, and after the first error raises that error on every call.
"""

from __future__ import annotations

from typing import NoReturn

from nacl import bindings
from nacl.exceptions import CryptoError

from ssbsync.core.errors import LocalProtocolError, Reason, RemoteProtocolError
from ssbsync.core.events import GOODBYE, NEED_DATA, Sentinel
from ssbsync.core.shs import BoxKeys

MAX_BODY = 4096  # pull-box-stream splits writes at 4096; go-ssb rejects longer bodies
HEADER_LENGTH = 34  # encrypted: 2-byte length + 16-byte body MAC + 16-byte header MAC
_MAC_LENGTH = 16
_GOODBYE_PLAIN = bytes(18)
_NONCE_MODULUS = 1 << 192


def _nonce_bytes(nonce: int) -> bytes:
    return (nonce % _NONCE_MODULUS).to_bytes(24, "big")


def _check_keys(keys: BoxKeys) -> None:
    if len(keys.key) != 32 or len(keys.nonce) != 24:
        raise LocalProtocolError("box-stream keys are a 32-byte key and a 24-byte nonce")


def _seal(plain: bytes, nonce: int, key: bytes) -> bytes:
    box: bytes = bindings.crypto_secretbox_easy(plain, _nonce_bytes(nonce), key)
    return box


def _open(box: bytes, nonce: int, key: bytes, what: str) -> bytes:
    try:
        plain: bytes = bindings.crypto_secretbox_open_easy(box, _nonce_bytes(nonce), key)
    except CryptoError:
        raise RemoteProtocolError(Reason.BAD_BOX, f"{what} fails authentication") from None
    return plain


class BoxStreamEncoder:
    """Our sending direction: plaintext in, boxes out."""

    def __init__(self, keys: BoxKeys) -> None:
        _check_keys(keys)
        self._key = keys.key
        self._nonce = int.from_bytes(keys.nonce, "big")
        self._ended = False

    def encode(self, data: bytes) -> bytes:
        """Boxes for `data`, split into chunks of at most MAX_BODY; b"" for empty data."""
        if self._ended:
            raise LocalProtocolError("encode() after goodbye()")
        return b"".join(
            self._box(data[start : start + MAX_BODY]) for start in range(0, len(data), MAX_BODY)
        )

    def goodbye(self) -> bytes:
        """The 34-byte goodbye header that ends this direction cleanly."""
        if self._ended:
            raise LocalProtocolError("goodbye() was already sent")
        self._ended = True
        return _seal(_GOODBYE_PLAIN, self._nonce, self._key)

    def _box(self, chunk: bytes) -> bytes:
        body = _seal(chunk, self._nonce + 1, self._key)
        header_plain = len(chunk).to_bytes(2, "big") + body[:_MAC_LENGTH]
        header = _seal(header_plain, self._nonce, self._key)
        self._nonce = (self._nonce + 2) % _NONCE_MODULUS
        return header + body[_MAC_LENGTH:]


class BoxStreamDecoder:
    """The peer's sending direction: bytes in, decrypted chunks and GOODBYE out."""

    def __init__(self, keys: BoxKeys, max_buffer: int = 1 << 20) -> None:
        _check_keys(keys)
        if max_buffer < HEADER_LENGTH + MAX_BODY:
            raise LocalProtocolError(f"max_buffer must hold one box ({HEADER_LENGTH + MAX_BODY})")
        self._key = keys.key
        self._nonce = int.from_bytes(keys.nonce, "big")
        self._max_buffer = max_buffer
        self._buffer = bytearray()
        self._header: tuple[int, bytes] | None = None  # (body length, body MAC) awaiting a body
        self._ended = False
        self._error: RemoteProtocolError | None = None

    def receive_data(self, data: bytes) -> None:
        """Buffer `data`; a peer that outruns `next_event()` past max_buffer is an error."""
        self._raise_if_failed()
        if len(self._buffer) + len(data) > self._max_buffer:
            self._fail(Reason.LIMIT, f"more than {self._max_buffer} undecoded bytes buffered")
        self._buffer += data

    def next_event(self) -> bytes | Sentinel:
        """One decrypted chunk, NEED_DATA, or GOODBYE (then GOODBYE again on every call)."""
        self._raise_if_failed()
        if self._ended:
            if self._buffer:
                self._fail(Reason.BAD_BOX, "data after the goodbye")
            return GOODBYE
        try:
            return self._next()
        except RemoteProtocolError as err:
            self._error = err
            raise

    def _next(self) -> bytes | Sentinel:
        if self._header is None:
            if len(self._buffer) < HEADER_LENGTH:
                return NEED_DATA
            header = self._open_header(self._take(HEADER_LENGTH))
            if header is None:
                return GOODBYE
            self._header = header
        length, mac = self._header
        if len(self._buffer) < length:
            return NEED_DATA
        body = _open(mac + self._take(length), self._nonce + 1, self._key, "a body")
        self._header = None
        self._nonce = (self._nonce + 2) % _NONCE_MODULUS
        return body

    def _open_header(self, box: bytes) -> tuple[int, bytes] | None:
        plain = _open(box, self._nonce, self._key, "a header")
        if plain == _GOODBYE_PLAIN:
            self._ended = True
            return None
        length = int.from_bytes(plain[:2], "big")
        if not 0 < length <= MAX_BODY:
            raise RemoteProtocolError(Reason.BAD_BOX, f"body length {length} outside 1..4096")
        return length, plain[2:]

    def _take(self, length: int) -> bytes:
        out = bytes(self._buffer[:length])
        del self._buffer[:length]
        return out

    def _fail(self, reason: Reason, detail: str) -> NoReturn:
        self._error = RemoteProtocolError(reason, detail)
        raise self._error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error.with_traceback(None)
