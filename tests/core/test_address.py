"""Multiserver addresses (PROTOCOL.md §11, §13)."""

from __future__ import annotations

import pytest

from ssbsync.core.address import AddressError, parse_one

KEY = "1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s="


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"net:127.0.0.1:8008~shs:{KEY}", ("net", "127.0.0.1", 8008, "shs")),
        (f"ws://x:1~shs:{KEY};net:h:9~shs:{KEY}", ("net", "h", 9, "shs")),
        (f"h.example:8008:@{KEY}.ed25519", ("net", "h.example", 8008, "shs")),
        ("unix:/tmp/x/socket~noauth", ("unix", "/tmp/x/socket", 0, "noauth")),
        (f"net:[::1]:8008~shs:{KEY}", ("net", "::1", 8008, "shs")),
        (f"net:one.butt.nz:8008~shs:{KEY}:{KEY}", ("net", "one.butt.nz", 8008, "shs")),
        (f"serial:/dev/rfcomm0~shs:{KEY}", ("serial", "/dev/rfcomm0", 0, "shs")),
        (f"serial:/tmp/a b/tty:1~shs:{KEY}", ("serial", "/tmp/a b/tty:1", 0, "shs")),
        (f"x:1~shs:{KEY};serial:/dev/ttyUSB0~shs:{KEY}", ("serial", "/dev/ttyUSB0", 0, "shs")),
    ],
)
def test_parses(text: str, expected: tuple[str, str, int, str]) -> None:
    address = parse_one(text)
    assert (address.kind, address.host, address.port, address.transform) == expected
    if address.transform == "shs":
        assert address.feed == f"@{KEY}.ed25519"
        assert parse_one(str(address)) == address


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "not an address"),
        ("net:host~shs:" + KEY, "host:port"),
        ("net:h:99999~shs:" + KEY, "port"),
        ("net:h:1~shs:abc", "base64|32 bytes"),
        ("onion:x:1~shs:" + KEY, "unsupported transport"),
        ("net:h:1~tls", "unsupported transform"),
        ("serial:~shs:" + KEY, "device path"),
        ("serial:rfcomm0~shs:" + KEY, "device path"),
        ("serial:/dev/rfcomm0~tls", "unsupported transform"),
    ],
)
def test_bad_addresses_say_why(text: str, complaint: str) -> None:
    with pytest.raises(AddressError, match=complaint):
        parse_one(text)


def test_a_serial_address_prints_as_it_was_written() -> None:
    text = f"serial:/dev/rfcomm0~shs:{KEY}"
    assert str(parse_one(text)) == text
