"""Invite codes (PROTOCOL.md §10): parsing as ssb-ref 2.16 `parseInvite`, formatting as
ssb-invite 2.1.4 `create`, and the invite key pair from the seed.

The codes below were printed by the real ssb-server 16.0.1 (`invite.create 1`, and with
`{uses: 3, note, external}`); each expected `remote`, `key` and invite id was computed by
ssb-ref 2.16.0 `parseInvite` and ssb-keys 7.2.2 `generate('ed25519', seed)` under Node 20.
"""

from __future__ import annotations

import pytest

from ssbsync.core.invite import InviteError, format_legacy, parse_invite
from ssbsync.core.refs import public_key

PUB = "@mCCALwRCeM0ACxpj60yMW3+hr8bgjEqsd6+32Qdbopk=.ed25519"
PUB_B64 = PUB[1:45]
SEED = "Kgede2kFE6z0ntSOIjoTgt+cwr6B134gYyDEx+Pe1QM="
SEED_ID = "@mHDOcdb9dkq9BZWXWClyH3KN7NOL2Gu2rR+v3XovbUo=.ed25519"

# (code, remote, invite key id) — from ssb-server, ssb-ref and ssb-keys as described above
VECTORS = [
    (
        f"127.0.0.1:58455:{PUB}~eeyVMK0buD173yzCZ1t0/oBtMrODTj66emsRzyCU2wo=",
        f"net:127.0.0.1:58455~shs:{PUB_B64}",
        "@4AZwNVW7PZqcUCyRB3bl8H7VQFAn1f1zz2S9/zxyq8c=.ed25519",
    ),
    (
        f"pub.example.com:58455:{PUB}~{SEED}",
        f"net:pub.example.com:58455~shs:{PUB_B64}",
        SEED_ID,
    ),
    (
        f"net:pub.example.com:8008~shs:{PUB_B64}:{SEED}",
        f"net:pub.example.com:8008~shs:{PUB_B64}",
        SEED_ID,
    ),
    (f"::1:8008:{PUB}~{SEED}", f"net:::1:8008~shs:{PUB_B64}", SEED_ID),
    (
        f"onion:abc.onion:8008~shs:{PUB_B64}:{SEED}",
        f"onion:abc.onion:8008~shs:{PUB_B64}",
        SEED_ID,
    ),
]


@pytest.mark.parametrize(("code", "remote", "invite_id"), VECTORS)
def test_codes_parse_as_ssb_ref_and_ssb_keys_read_them(
    code: str, remote: str, invite_id: str
) -> None:
    invite = parse_invite(code)
    assert invite.remote == remote
    assert invite.pub_id == PUB
    assert invite.invite_id == invite_id
    assert invite.keypair.public == public_key(invite_id)  # type: ignore[arg-type]
    assert invite.redirect is None
    # both forms say the same thing
    assert parse_invite(invite.legacy()) == invite
    assert parse_invite(invite.multiserver()) == invite


def test_the_legacy_form_is_what_ssb_invite_2_creates() -> None:
    code = VECTORS[1][0]
    invite = parse_invite(code)
    assert invite.legacy() == code
    assert format_legacy("pub.example.com", 58455, public_key(PUB), invite.seed) == code  # type: ignore[arg-type]
    assert invite.multiserver() == f"net:pub.example.com:58455~shs:{PUB_B64}:{SEED}"
    assert invite.pub_address == {"host": "pub.example.com", "port": 58455, "key": PUB}


def test_quotes_whitespace_and_redirects_are_stripped() -> None:
    plain = parse_invite(VECTORS[1][0])
    for wrapped in (f'"{VECTORS[1][0]}"', f"  {VECTORS[1][0]}\n"):
        assert parse_invite(wrapped) == plain
    redirected = parse_invite(VECTORS[1][0] + "#@other")
    assert redirected.redirect == "#@other" and redirected.remote == plain.remote
    multi = parse_invite(VECTORS[2][0] + "#xyz")
    assert multi.redirect == "#xyz" and multi.seed == plain.seed


def test_the_first_usable_of_several_multiserver_addresses_is_taken() -> None:
    code = f"ws:pub.example.com:8989~shs:{PUB_B64}:{SEED};net:10.0.0.1:8008~shs:{PUB_B64}:{SEED}"
    assert parse_invite(code).remote == f"net:10.0.0.1:8008~shs:{PUB_B64}"


@pytest.mark.parametrize(
    ("code", "complaint"),
    [
        (42, "is a string"),
        ("", "empty"),
        ('""', "empty"),
        (f"pub.example.com:8008:{PUB}", "no ~SEED part"),
        (f"pub.example.com:99999:{PUB}~{SEED}", "port"),
        (f"pub.example.com:0:{PUB}~{SEED}", "port"),
        (f"pub.example.com:{PUB}~{SEED}", "HOST:PORT"),
        (f"bad host!:8008:{PUB}~{SEED}", "host"),
        (f"pub.example.com:8008:@abc.ed25519~{SEED}", "not a feed id"),
        (f"pub.example.com:8008:{PUB}~short=", "seed must be base64 of 32 bytes"),
        (f"pub.example.com:8008:{PUB}~{SEED}~{SEED}", "unsupported transport"),
        (f"net:pub.example.com:8008~shs:{PUB_B64}", "no invite seed"),
        ("net:pub.example.com:8008~noauth", "no shs:KEY part"),
        (f"net:pub.example.com:8008~shs:abc=:{SEED}", "pub key must decode to 32 bytes"),
        (f"net:pub.example.com:8008~shs:a*c:{SEED}", "pub key is not base64"),
        (f"net:pub.example.com:8008~shs:{PUB_B64}:{SEED[:-2]}", "seed must be base64"),
        (f"unix:/tmp/socket~shs:{PUB_B64}:{SEED}", "unsupported transport 'unix'"),
        ("garbage", "no ~SEED part"),
    ],
)
def test_bad_codes_say_what_is_wrong(code: object, complaint: str) -> None:
    with pytest.raises(InviteError, match=complaint):
        parse_invite(code)


def test_format_refuses_wrong_key_sizes() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        format_legacy("h", 1, b"x" * 31, b"y" * 32)
