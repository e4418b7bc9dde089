"""The secret handshake (PROTOCOL.md §2): vectors, a two-party pump, damage and bounds.

The vectors stay in ../shared/vectors (GPL-3.0 transcriptions, and the MIT data.json of
auditdrivencrypto/test-secret-handshake); they are read through `load_shared_vector`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl import bindings

from ssbsync.core import shs
from ssbsync.core.boxstream import BoxStreamDecoder, BoxStreamEncoder
from ssbsync.core.errors import LocalProtocolError, Reason, RemoteProtocolError
from ssbsync.core.keys import Keypair
from ssbsync.core.shs import (
    MAIN_NETWORK_KEY,
    MAX_LEFTOVER,
    BoxKeys,
    ClientHandshake,
    HandshakeError,
    ServerHandshake,
    Session,
)
from tests.conftest import load_shared_vector

NET = MAIN_NETWORK_KEY
CLIENT = Keypair.from_seed(b"\x01" * 32)
SERVER = Keypair.from_seed(b"\x02" * 32)
CLIENT_EPH = bytes(range(32))
SERVER_EPH = bytes(range(32, 64))
LENGTHS = {1: 64, 2: 64, 3: 112, 4: 80}

Machine = ClientHandshake | ServerHandshake


def _pair(
    client_net: bytes = NET,
    server_net: bytes = NET,
    client: Keypair = CLIENT,
    server: Keypair = SERVER,
    authorize: Callable[[bytes], bool] | None = None,
) -> tuple[ClientHandshake, ServerHandshake]:
    c = ClientHandshake(client_net, client, server.public, CLIENT_EPH)
    if authorize is None:
        return c, ServerHandshake(server_net, server, SERVER_EPH)
    return c, ServerHandshake(server_net, server, SERVER_EPH, authorize)


def _feed(machine: Machine, data: bytes, chunk: int) -> None:
    for start in range(0, len(data), chunk):
        machine.receive_data(data[start : start + chunk])


def _pump(client: ClientHandshake, server: ServerHandshake, chunk: int = 1 << 20) -> int:
    """Move bytes both ways until nothing moves; return how many bytes travelled."""
    travelled = moved = -1
    while moved:
        moved = 0
        for sender, receiver in ((client, server), (server, client)):
            data = sender.data_to_send()
            _feed(receiver, data, chunk)
            moved += len(data)
        travelled += moved
    return travelled + 1


def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def _assert_agree(client: ClientHandshake, server: ServerHandshake) -> None:
    assert client.session is not None and server.session is not None
    assert client.session.send == server.session.receive
    assert client.session.receive == server.session.send
    assert client.session.remote_public == SERVER.public
    assert server.session.remote_public == server.client_public == CLIENT.public


# -- the deterministic vector (AljoschaMeyer/shs1-crypto-js, transcribed) --------------------


def _hex(obj: dict[str, Any], name: str) -> bytes:
    return bytes.fromhex(obj[name])


def _outcome(outcome: dict[str, Any], remote_public: bytes) -> Session:
    return Session(
        remote_public=remote_public,
        send=BoxKeys(_hex(outcome, "encryption_key"), _hex(outcome, "encryption_nonce")),
        receive=BoxKeys(_hex(outcome, "decryption_key"), _hex(outcome, "decryption_nonce")),
    )


def test_shs1_vector_full_run() -> None:
    v = load_shared_vector("shs1-handshake-vector.json")
    net = _hex(v, "network_identifier")
    alice = Keypair(_hex(v, "client_longterm_pk"), _hex(v, "client_longterm_sk"))
    bob = Keypair(_hex(v, "server_longterm_pk"), _hex(v, "server_longterm_sk"))
    client = ClientHandshake(net, alice, bob.public, _hex(v, "client_ephemeral_sk"))
    server = ServerHandshake(net, bob, _hex(v, "server_ephemeral_sk"))
    assert server.data_to_send() == b""
    msg1 = client.data_to_send()
    assert msg1 == _hex(v, "msg1")
    server.receive_data(msg1)
    msg2 = server.data_to_send()
    assert msg2 == _hex(v, "msg2")
    client.receive_data(msg2)
    msg3 = client.data_to_send()
    assert msg3 == _hex(v, "msg3")
    assert client.session is None
    server.receive_data(msg3)
    assert server.client_public == alice.public
    assert server.data_to_send() == _hex(v, "msg4")
    client.receive_data(_hex(v, "msg4"))
    assert client.data_to_send() == b""
    assert client.session == _outcome(v["client_outcome"], bob.public)
    assert server.session == _outcome(v["server_outcome"], alice.public)


def test_shs1_vector_intermediate_values() -> None:
    v = load_shared_vector("shs1-handshake-vector.json")
    mid = v["intermediate"]
    ab = shs._shared(_hex(v, "client_ephemeral_sk"), _hex(v, "server_ephemeral_pk"), "t")
    assert ab == _hex(mid, "shared_secret_ab")
    assert bindings.crypto_scalarmult_base(_hex(v, "client_ephemeral_sk")) == _hex(
        v, "client_ephemeral_pk"
    )
    session = shs._session(
        _hex(mid, "session_secret_double_sha256"),
        _hex(v, "client_longterm_pk"),
        _hex(v, "server_longterm_pk"),
        _hex(v, "msg1"),
        _hex(v, "msg2"),
    )
    assert session == _outcome(v["client_outcome"], _hex(v, "server_longterm_pk"))


# -- auditdrivencrypto/test-secret-handshake data.json (MIT), record by record ---------------
#
# Each record is one call of secret-handshake's crypto.js on a state object; `args` were
# captured after the call, so they already hold what the call computed. States with a `seed`
# member are the client's (Alice), the others the server's (Bob). A null result = rejected.

State = dict[str, Any]


@cache
def _records() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = load_shared_vector("test-secret-handshake-data.json")
    return data


def _b(state: State, *path: str) -> bytes:
    value: Any = state
    for name in path:
        value = value[name]
    return bytes.fromhex(value)


def _is_client(state: State) -> bool:
    return "seed" in state


def _local_keys(state: State) -> Keypair:
    return Keypair(_b(state, "local", "publicKey"), _b(state, "local", "secretKey"))


def _client_of(state: State) -> ClientHandshake:
    remote = _b(state, "remote", "publicKey")
    return ClientHandshake(
        _b(state, "app_key"), _local_keys(state), remote, _b(state, "local", "kx_sk")
    )


def _server_of(state: State) -> ServerHandshake:
    return ServerHandshake(_b(state, "app_key"), _local_keys(state), _b(state, "local", "kx_sk"))


def _own_challenge(state: State) -> bytes:
    return _b(state, "local", "app_mac") + _b(state, "local", "kx_pk")


def _remote_challenge(state: State) -> bytes:
    return _b(state, "remote", "app_mac") + _b(state, "remote", "kx_pk")


def _box(plain: bytes, key: bytes) -> bytes:
    box: bytes = bindings.crypto_secretbox_easy(plain, bytes(24), key)
    return box


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _assert_session_from(session: Session | None, state: State) -> None:
    """The box-stream keys protocol.js derives from the record's secret3 (§2)."""
    secret = _sha256(_b(state, "secret3"))
    remote, local = _b(state, "remote", "publicKey"), _b(state, "local", "publicKey")
    assert session == Session(
        remote_public=remote,
        send=BoxKeys(_sha256(secret + remote), _b(state, "remote", "app_mac")[:24]),
        receive=BoxKeys(_sha256(secret + local), _b(state, "local", "app_mac")[:24]),
    )


def _check_initialize(state: State, args: list[Any], result: Any) -> None:
    kx_sk, kx_pk = _b(state, "local", "kx_sk"), _b(state, "local", "kx_pk")
    # JS's ephemeral secret (a converted Ed25519 seed key) works as our `ephemeral_secret`.
    assert bindings.crypto_scalarmult_base(kx_sk) == kx_pk
    assert shs._challenge(_b(state, "app_key"), kx_pk) == _own_challenge(state)
    if state.get("seed"):
        assert Keypair.from_seed(_b(state, "seed")) == _local_keys(state)
    if _is_client(state):
        assert _client_of(state).data_to_send() == _own_challenge(state)


def _check_create_challenge(state: State, args: list[Any], result: Any) -> None:
    if _is_client(state):
        assert _client_of(state).data_to_send() == bytes.fromhex(result)
        return
    server = _server_of(state)
    server.receive_data(_remote_challenge(state))
    assert server.data_to_send() == bytes.fromhex(result)


def _check_verify_challenge(state: State, args: list[Any], result: Any) -> None:
    challenge = bytes.fromhex(args[0])
    machine: Machine = _client_of(state) if _is_client(state) else _server_of(state)
    machine.data_to_send()
    if result is None:
        with pytest.raises(HandshakeError, match="hmac does not match"):
            machine.receive_data(challenge)
        return
    machine.receive_data(challenge)
    assert machine.data_to_send()  # msg2 from the server, msg3 from the client
    remote_kx = shs._open_challenge(_b(state, "app_key"), challenge, "t")
    assert remote_kx == _b(result, "remote", "kx_pk")
    assert shs._shared(_b(state, "local", "kx_sk"), remote_kx, "t") == _b(result, "secret")


def _check_client_verify_challenge(state: State, args: list[Any], result: Any) -> None:
    client = _client_of(state)
    client.data_to_send()
    if result is None:
        with pytest.raises(HandshakeError, match="msg2"):
            client.receive_data(bytes.fromhex(args[0]))
        return
    client.receive_data(bytes.fromhex(args[0]))
    hello, secret2 = _b(result, "local", "hello"), _b(result, "secret2")
    assert client.data_to_send() == _box(hello, secret2)


def _check_client_create_auth(state: State, args: list[Any], result: Any) -> None:
    client = _client_of(state)
    client.data_to_send()
    client.receive_data(_remote_challenge(state))
    assert client.data_to_send() == bytes.fromhex(result)


def _check_server_verify_auth(state: State, args: list[Any], result: Any) -> None:
    server = _server_of(state)
    server.receive_data(_remote_challenge(state))
    server.data_to_send()
    if result is None:
        with pytest.raises(HandshakeError, match="msg3"):
            server.receive_data(bytes.fromhex(args[0]))
        assert server.client_public is None and server.session is None
        return
    server.receive_data(bytes.fromhex(args[0]))
    assert server.client_public == _b(result, "remote", "publicKey")
    _assert_session_from(server.session, result)


def _check_server_create_accept(state: State, args: list[Any], result: Any) -> None:
    server = _server_of(state)
    server.receive_data(_remote_challenge(state))
    server.receive_data(_box(_b(state, "remote", "hello"), _b(state, "secret2")))
    assert server.data_to_send() == _own_challenge(state) + bytes.fromhex(result)


def _check_client_verify_accept(state: State, args: list[Any], result: Any) -> None:
    client = _client_of(state)
    client.receive_data(_remote_challenge(state))
    client.data_to_send()
    if result is None:
        with pytest.raises(HandshakeError, match="msg4"):
            client.receive_data(bytes.fromhex(args[0]))
        return
    client.receive_data(bytes.fromhex(args[0]))
    _assert_session_from(client.session, result)


def _check_clean(state: State, args: list[Any], result: Any) -> None:
    # After clean() only S = sha256(secret3) is left in `secret`.
    local_mac, remote_mac = _b(state, "local", "app_mac"), _b(state, "remote", "app_mac")
    session = shs._session(
        _b(state, "secret"),
        _b(state, "local", "publicKey"),
        _b(state, "remote", "publicKey"),
        local_mac,
        remote_mac,
    )
    assert session.send == BoxKeys(_b(result, "encryptKey"), remote_mac[:24])
    assert session.receive == BoxKeys(_b(result, "decryptKey"), local_mac[:24])


def _check_to_keys(seed: Any, args: list[Any], result: Any) -> None:
    if not isinstance(seed, str):
        return  # JS-only convenience: a key object passes through unchanged
    keys = Keypair.from_seed(bytes.fromhex(seed))
    assert keys == Keypair(_b(result, "publicKey"), _b(result, "secretKey"))


_CHECKS: dict[str, Callable[[Any, list[Any], Any], None]] = {
    "initialize": _check_initialize,
    "createChallenge": _check_create_challenge,
    "verifyChallenge": _check_verify_challenge,
    "clientVerifyChallenge": _check_client_verify_challenge,
    "clientCreateAuth": _check_client_create_auth,
    "serverVerifyAuth": _check_server_verify_auth,
    "serverCreateAccept": _check_server_create_accept,
    "clientVerifyAccept": _check_client_verify_accept,
    "clean": _check_clean,
    "toKeys": _check_to_keys,
}


def test_secret_handshake_data_has_only_known_calls() -> None:
    names = [record["name"] for record in _records()]
    assert len(names) == 159
    assert set(names) == set(_CHECKS)


@pytest.mark.parametrize("name", sorted(_CHECKS))
def test_secret_handshake_data_records(name: str) -> None:
    checked = 0
    for index, record in enumerate(_records()):
        if record["name"] != name:
            continue
        state, *args = record["args"]
        try:
            _CHECKS[name](state, args, record["result"])
        except AssertionError as err:
            raise AssertionError(f"record {index} ({name}) does not match") from err
        checked += 1
    assert checked > 0


# -- two parties ------------------------------------------------------------------------------


def test_main_network_key_is_ssb_caps_shs() -> None:
    caps_shs = "1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s="  # ssb-caps caps.json (§1.3)
    assert base64.b64decode(caps_shs) == MAIN_NETWORK_KEY


@pytest.mark.parametrize("chunk", [1, 3, 63, 64, 65, 1000])
def test_pair_completes_and_agrees_whatever_the_chunking(chunk: int) -> None:
    client, server = _pair()
    assert _pump(client, server, chunk) == 64 + 64 + 112 + 80
    _assert_agree(client, server)
    assert client.leftover() == server.leftover() == b""


def test_sessions_carry_a_box_stream_both_ways() -> None:
    client, server = _pair()
    _pump(client, server)
    assert client.session is not None and server.session is not None
    for send, receive in (
        (client.session.send, server.session.receive),
        (server.session.send, client.session.receive),
    ):
        decoder = BoxStreamDecoder(receive)
        decoder.receive_data(BoxStreamEncoder(send).encode(b"hello"))
        assert decoder.next_event() == b"hello"


def test_same_key_pair_on_both_sides() -> None:
    # ssb-client / the CLI connect to the local server with the server's own key pair (§2).
    client = ClientHandshake(NET, SERVER, SERVER.public, CLIENT_EPH)
    server = ServerHandshake(NET, SERVER, SERVER_EPH)
    _pump(client, server)
    assert client.session is not None and server.session is not None
    assert client.session.send == server.session.receive
    assert client.session.send.nonce != client.session.receive.nonce


def test_wrong_network_key_fails_on_both_sides() -> None:
    other = bytes(32)
    client, server = _pair(client_net=NET, server_net=other)
    with pytest.raises(HandshakeError, match="msg1: the hmac"):
        server.receive_data(client.data_to_send())
    # ...and a server of the other network is rejected by the client at msg2.
    _, foreign = _pair(client_net=other, server_net=other)
    foreign.receive_data(ClientHandshake(other, CLIENT, SERVER.public, CLIENT_EPH).data_to_send())
    with pytest.raises(HandshakeError, match="msg2: the hmac"):
        client.receive_data(foreign.data_to_send())
    assert client.session is None and server.session is None


def test_client_expecting_another_server_key_is_rejected_at_msg3() -> None:
    client = ClientHandshake(NET, CLIENT, CLIENT.public, CLIENT_EPH)
    server = ServerHandshake(NET, SERVER, SERVER_EPH)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    with pytest.raises(HandshakeError, match="msg3: the box does not open"):
        server.receive_data(client.data_to_send())


@pytest.mark.parametrize("which", [1, 2, 3, 4])
def test_a_flipped_bit_anywhere_fails_on_the_receiving_side(which: int) -> None:
    for position in range(LENGTHS[which]):
        client, server = _pair()
        for step in range(1, which + 1):
            sender, receiver = (client, server) if step % 2 else (server, client)
            message = sender.data_to_send()
            assert len(message) == LENGTHS[step]
            if step < which:
                receiver.receive_data(message)
                continue
            with pytest.raises(HandshakeError, match=f"msg{which}"):
                receiver.receive_data(_flip(message, position))
            assert receiver.session is None
            with pytest.raises(HandshakeError):
                receiver.data_to_send()


def test_low_order_ephemeral_key_is_rejected() -> None:
    # Right hmac, but an all-zero X25519 key: libsodium refuses the shared secret.
    server = ServerHandshake(NET, SERVER, SERVER_EPH)
    with pytest.raises(HandshakeError, match="msg1: unusable"):
        server.receive_data(shs._challenge(NET, bytes(32)))


def test_refused_client_gets_no_msg4() -> None:
    seen: list[bytes] = []

    def refuse(client_public: bytes) -> bool:
        seen.append(client_public)
        return False

    client, server = _pair(authorize=refuse)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    with pytest.raises(HandshakeError, match="client not authorized") as info:
        server.receive_data(client.data_to_send())
    assert info.value.reason is Reason.BAD_HANDSHAKE
    assert seen == [CLIENT.public]
    assert server.client_public == CLIENT.public  # known, for the log line
    assert server.session is None
    with pytest.raises(HandshakeError, match="client not authorized"):
        server.data_to_send()  # msg4 is never handed out


def test_authorize_sees_the_client_and_may_accept() -> None:
    seen: list[bytes] = []

    def accept(client_public: bytes) -> bool:
        seen.append(client_public)
        return True

    client, server = _pair(authorize=accept)
    _pump(client, server)
    _assert_agree(client, server)
    assert seen == [CLIENT.public]


def test_authorize_raising_fails_the_handshake() -> None:
    def broken(client_public: bytes) -> bool:
        raise KeyError("database gone")

    client, server = _pair(authorize=broken)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    with pytest.raises(KeyError):
        server.receive_data(client.data_to_send())
    with pytest.raises(HandshakeError, match="interrupted"):
        server.data_to_send()
    assert server.session is None


def test_failure_is_final() -> None:
    client, server = _pair()
    with pytest.raises(HandshakeError):
        server.receive_data(bytes(64))
    for call in (lambda: server.receive_data(b""), server.data_to_send, server.leftover):
        with pytest.raises(HandshakeError, match="msg1"):
            call()
    client.data_to_send()
    with pytest.raises(HandshakeError):
        client.receive_data(bytes(64))
    with pytest.raises(HandshakeError, match="msg2"):
        client.receive_data(b"")


def test_bytes_after_msg4_are_the_clients_leftover() -> None:
    client, server = _pair()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    msg4 = server.data_to_send()
    assert client.leftover() == b""  # not complete yet: nothing is leftover
    client.receive_data(msg4[:50])
    assert client.leftover() == b""
    client.receive_data(msg4[50:] + b"first box bytes")
    assert client.session is not None
    assert client.leftover() == b"first box bytes"
    assert client.leftover() == b""
    client.receive_data(b"more")
    assert client.leftover() == b"more"


def test_bytes_after_msg3_are_the_servers_leftover() -> None:
    client, server = _pair()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send() + b"\x00" * 10)
    assert server.session is not None
    assert server.leftover() == b"\x00" * 10
    assert len(server.data_to_send()) == 80


def _completed_client() -> ClientHandshake:
    client, server = _pair()
    _pump(client, server)
    return client


def test_leftover_is_bounded_until_drained() -> None:
    client = _completed_client()
    client.receive_data(bytes(MAX_LEFTOVER))
    with pytest.raises(RemoteProtocolError) as info:
        client.receive_data(b"\x00")
    assert info.value.reason is Reason.LIMIT
    assert not isinstance(info.value, HandshakeError)
    drained = _completed_client()
    for _ in range(10):
        drained.receive_data(bytes(MAX_LEFTOVER))
        assert len(drained.leftover()) == MAX_LEFTOVER


def test_megabytes_before_completion_hit_the_limit() -> None:
    server = ServerHandshake(NET, SERVER, SERVER_EPH)
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(bytes(1 << 20))
    assert info.value.reason is Reason.LIMIT
    with pytest.raises(RemoteProtocolError):
        server.data_to_send()
    client = ClientHandshake(NET, CLIENT, SERVER.public, CLIENT_EPH)
    client.receive_data(bytes(63))  # not a whole msg2 yet
    with pytest.raises(RemoteProtocolError, match="limit"):
        client.receive_data(bytes(64 + 80 + MAX_LEFTOVER))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ClientHandshake(bytes(31), CLIENT, SERVER.public, CLIENT_EPH),
        lambda: ClientHandshake(NET, CLIENT, SERVER.public[:31], CLIENT_EPH),
        lambda: ClientHandshake(NET, CLIENT, SERVER.public, bytes(33)),
        lambda: ClientHandshake(NET, CLIENT, bytes(32), CLIENT_EPH),  # a low-order point
        lambda: ServerHandshake(NET, SERVER, b""),
    ],
)
def test_bad_arguments_are_local_errors(make: Callable[[], object]) -> None:
    with pytest.raises(LocalProtocolError):
        make()


# -- any bytes at all -------------------------------------------------------------------------

_MSG1 = ClientHandshake(NET, CLIENT, SERVER.public, CLIENT_EPH).data_to_send()
_MSG2 = shs._challenge(NET, bindings.crypto_scalarmult_base(SERVER_EPH))


def _feed_tolerating_remote_errors(machine: Machine, data: bytes, chunk: int) -> None:
    try:
        _feed(machine, data, chunk)
        machine.data_to_send()
        machine.leftover()
    except RemoteProtocolError:
        pass


@given(st.booleans(), st.binary(max_size=400), st.integers(1, 150))
def test_random_bytes_into_a_server_only_raise_remote_errors(
    valid_msg1: bool, junk: bytes, chunk: int
) -> None:
    server = ServerHandshake(NET, SERVER, SERVER_EPH)
    _feed_tolerating_remote_errors(server, (_MSG1 if valid_msg1 else b"") + junk, chunk)
    assert server.session is None


@given(st.booleans(), st.binary(max_size=400), st.integers(1, 150))
def test_random_bytes_into_a_client_only_raise_remote_errors(
    valid_msg2: bool, junk: bytes, chunk: int
) -> None:
    client = ClientHandshake(NET, CLIENT, SERVER.public, CLIENT_EPH)
    client.data_to_send()
    _feed_tolerating_remote_errors(client, (_MSG2 if valid_msg2 else b"") + junk, chunk)
    assert client.session is None
