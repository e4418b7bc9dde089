"""private-box "box1" as ssb-keys 7.2.2 / private-box 0.3.1 compute it (PROTOCOL.md §9)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssbsync.core import jsonv8
from ssbsync.core import privatebox as pb
from ssbsync.core.keys import Keypair
from tests.conftest import load_fixture

VECTOR = load_fixture("vectors/private-box-vector.GENERATED.json")
RECIPIENTS = [Keypair.from_seed(bytes.fromhex(r["seed"])) for r in VECTOR["recipients"]]
OUTSIDER = Keypair.from_seed(bytes.fromhex(VECTOR["non_recipient"]["seed"]))
VECTOR_RANDOMNESS = pb.BoxRandomness(
    bytes.fromhex(VECTOR["nonce"]),
    bytes.fromhex(VECTOR["body_key"]),
    bytes.fromhex(VECTOR["ephemeral_curve25519_sk"]),
)
KEYS = [Keypair.from_seed(bytes([i]) * 32) for i in range(1, 10)]


def _secret(keys: Keypair) -> bytes:
    return pb.curve_secret_key(keys.secret)


def _randomness(seed: int) -> pb.BoxRandomness:
    return pb.BoxRandomness(bytes([seed]) * 24, bytes([seed + 1]) * 32, bytes([seed + 2]) * 32)


# -- the vector (built in Python, opened by real ssb-keys, and ssb-keys' own box matched it) --


def test_the_vector_recipients_are_the_keys_from_their_seeds() -> None:
    assert [k.id for k in RECIPIENTS] == [r["id"] for r in VECTOR["recipients"]]
    assert OUTSIDER.id == VECTOR["non_recipient"]["id"]


def test_box_with_the_vectors_randomness_is_byte_identical() -> None:
    plaintext = VECTOR["plaintext_utf8"].encode("utf-8")
    ciphertext = pb.box(plaintext, [k.public for k in RECIPIENTS], VECTOR_RANDOMNESS)
    assert ciphertext.hex() == VECTOR["ciphertext_hex"]
    assert ciphertext[24:56].hex() == VECTOR["ephemeral_curve25519_pk"]
    assert len(ciphertext) == 56 + 49 * 3 + 16 + len(plaintext)


def test_box_content_gives_the_vectors_content_string() -> None:
    content = jsonv8.parse(VECTOR["plaintext_utf8"])
    assert isinstance(content, dict)
    boxed = pb.box_content(content, [k.id for k in RECIPIENTS], VECTOR_RANDOMNESS)
    assert boxed == VECTOR["content_string"]


@pytest.mark.parametrize("index", range(3))
def test_every_recipient_opens_the_vector(index: int) -> None:
    opened = pb.open_content(VECTOR["content_string"], _secret(RECIPIENTS[index]))
    assert opened is not None
    assert opened.content == jsonv8.parse(VECTOR["plaintext_utf8"])
    assert opened.unbox_key_text == VECTOR["unbox_key_b64"]
    ciphertext = bytes.fromhex(VECTOR["ciphertext_hex"])
    assert pb.unbox(ciphertext, _secret(RECIPIENTS[index])) == VECTOR["plaintext_utf8"].encode()


def test_an_outsider_cannot_open_the_vector() -> None:
    assert pb.open_content(VECTOR["content_string"], _secret(OUTSIDER)) is None
    assert pb.unbox(bytes.fromhex(VECTOR["ciphertext_hex"]), _secret(OUTSIDER)) is None


def test_a_shared_unbox_key_opens_the_body_for_anyone() -> None:
    key = pb.parse_unbox_key(VECTOR["unbox_key_b64"])
    opened = pb.open_content_with_key(VECTOR["content_string"], key)
    assert opened is not None and opened.content["text"] == "hello private world é€"
    # as in a `%id?unbox=` link after a query parser turned '+' into spaces
    assert pb.parse_unbox_key(VECTOR["unbox_key_b64"].replace("+", " ")) == key


# -- recipients (ssb-db autobox + ssb-private1) ------------------------------------------------


def test_recps_rules() -> None:
    one = KEYS[0].id
    assert pb.recipients_of({"type": "post"}) is None
    assert pb.recipients_of({"type": "post", "recps": None}) is None
    assert pb.recipients_of({"type": "post", "recps": one}) == [one]
    assert pb.recipients_of({"type": "post", "recps": [k.id for k in KEYS[:7]]}) is not None
    bad: list[tuple[Any, str]] = [
        ([], "at least one recipient"),
        ({"a": one}, "expects an array"),
        ([one, "%notafeed"], "must be feed ids.*%notafeed"),
        ([one, 5], "must be feed ids"),
        ([k.id for k in KEYS[:8]], "at most 7 recipients, got 8"),
    ]
    for recps, message in bad:
        with pytest.raises(pb.PrivateBoxError, match=message):
            pb.recipients_of({"type": "post", "recps": recps})


def test_box_refuses_zero_or_too_many_recipients() -> None:
    with pytest.raises(pb.PrivateBoxError, match="1 to 7"):
        pb.box(b"x", [], _randomness(1))
    with pytest.raises(pb.PrivateBoxError, match="1 to 7"):
        pb.box(b"x", [k.public for k in KEYS[:8]], _randomness(1))


def test_randomness_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="nonce must be 24 bytes"):
        pb.BoxRandomness(b"\0" * 23, b"\0" * 32, b"\0" * 32)
    drawn = pb.BoxRandomness.draw(lambda n: b"\x07" * n)
    assert (len(drawn.nonce), len(drawn.body_key)) == (24, 32)


def test_seven_recipients_each_open_and_the_eighth_slot_is_tried() -> None:
    content = {"type": "post", "text": "to seven"}
    boxed = pb.box_content(content, [k.id for k in KEYS[:7]], _randomness(3))
    for keys in KEYS[:7]:
        opened = pb.open_content(boxed, _secret(keys))
        assert opened is not None and opened.content == content
        assert opened.unbox_key[0] == 7
    assert pb.open_content(boxed, _secret(KEYS[8])) is None


def test_only_box_strings_are_opened() -> None:
    boxed = pb.box_content({"type": "x"}, [KEYS[0].id], _randomness(5))
    secret = _secret(KEYS[0])
    assert pb.open_content(boxed, secret) is not None
    for other in (boxed[:-4], boxed[:-4] + ".box2", {"type": "x"}, None, 5, "", ".box"):
        assert pb.open_content(other, secret) is None


def test_a_box_of_something_other_than_an_object_is_not_shown() -> None:
    ciphertext = pb.box(b"[1,2]", [KEYS[0].public], _randomness(7))
    text = base64.b64encode(ciphertext).decode() + ".box"
    assert pb.unbox(ciphertext, _secret(KEYS[0])) == b"[1,2]"
    assert pb.open_content(text, _secret(KEYS[0])) is None
    not_json = base64.b64encode(pb.box(b"{", [KEYS[0].public], _randomness(7))).decode()
    assert pb.open_content(not_json + ".box", _secret(KEYS[0])) is None


def test_malformed_unbox_keys_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="not base64"):
        pb.parse_unbox_key("!!!")
    with pytest.raises(ValueError, match="33 bytes"):
        pb.parse_unbox_key(base64.b64encode(b"\0" * 32).decode())
    with pytest.raises(ValueError, match="base64 string"):
        pb.parse_unbox_key(33)


# -- properties ----------------------------------------------------------------------------


contents = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.text(max_size=40), st.integers(-(2**40), 2**40), st.booleans(), st.none()),
    max_size=6,
).map(lambda d: {"type": "test", **d})


@settings(max_examples=60, deadline=None)
@given(
    content=contents,
    count=st.integers(1, 7),
    seed=st.integers(0, 200),
    data=st.data(),
)
def test_round_trip_for_every_recipient_and_nobody_else(
    content: dict[str, Any], count: int, seed: int, data: st.DataObject
) -> None:
    recipients = data.draw(st.permutations(KEYS))[:count]
    boxed = pb.box_content(content, [k.id for k in recipients], _randomness(seed))
    expected = jsonv8.parse(jsonv8.stringify(content))
    for keys in recipients:
        opened = pb.open_content(boxed, _secret(keys))
        assert opened is not None and opened.content == expected
    for keys in KEYS:
        if keys not in recipients:
            assert pb.open_content(boxed, _secret(keys)) is None


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, 400), junk=st.binary(max_size=64))
def test_truncated_or_extended_boxes_never_raise(cut: int, junk: bytes) -> None:
    ciphertext = bytes.fromhex(VECTOR["ciphertext_hex"])
    secret = _secret(RECIPIENTS[0])
    for damaged in (ciphertext[:cut], ciphertext[:cut] + junk):
        intact = damaged == ciphertext
        assert (pb.unbox(damaged, secret) is not None) == intact
        text = base64.b64encode(damaged).decode() + ".box"
        assert (pb.open_content(text, secret) is not None) == intact


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=600), text=st.text(max_size=80))
def test_garbage_is_never_for_us_and_never_raises(garbage: bytes, text: str) -> None:
    secret = _secret(KEYS[0])
    assert pb.unbox(garbage, secret) is None
    assert pb.open_body(garbage, garbage[:33]) is None
    assert pb.open_content(text + ".box", secret) is None
    assert pb.open_content(base64.b64encode(garbage).decode() + ".box", secret) is None


@settings(max_examples=150, deadline=None)
@given(flip=st.integers(0, 8 * 300 - 1))
def test_a_flipped_bit_stops_it_opening_unless_it_is_in_anothers_slot(flip: int) -> None:
    ciphertext = bytearray(bytes.fromhex(VECTOR["ciphertext_hex"]))
    flip %= len(ciphertext) * 8
    byte, bit = divmod(flip, 8)
    ciphertext[byte] ^= 1 << bit
    # Recipient 0 uses slot 0; X25519 ignores the top bit of the ephemeral key (byte 55).
    still_opens = 56 + 49 <= byte < 56 + 49 * 3 or (byte, bit) == (55, 7)
    opened = pb.unbox(bytes(ciphertext), _secret(RECIPIENTS[0]))
    assert (opened is not None) == still_opens
