"""Config in ssb-config's shape; a bad value is an error that names the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ssbsync.node import config


def _load(tmp_path: Path, raw: Any, **overrides: Any) -> config.Config:
    (tmp_path / "config").write_text(json.dumps(raw) if not isinstance(raw, str) else raw)
    return config.load(tmp_path, overrides)


def test_defaults_are_ssb_servers(tmp_path: Path) -> None:
    loaded = config.load(tmp_path)
    net = loaded.net_listener()
    assert net is not None and (net.host, net.port, net.transform) == (None, 8008, "shs")
    assert loaded.network_key.hex().startswith("d4a1cb88a66f02f8")
    assert loaded.sign_cap is None and loaded.masters == ()
    assert loaded.socket_path == tmp_path / "socket"


def test_ssb_config_shape_and_overrides(tmp_path: Path) -> None:
    loaded = _load(
        tmp_path,
        {
            "connections": {
                "incoming": {
                    "net": [{"host": "127.0.0.1", "port": 9000, "scope": "public",
                             "transform": "shs", "external": "example.org"}],
                    "ws": [{"port": 8989}],
                    "unix": [{"scope": "device", "transform": "noauth"}],
                }
            },
            "master": "@" + "A" * 43 + "=.ed25519",
            "timers": {"handshake": 2000},
        },
        **{"logging.level": "info"},
    )  # fmt: skip
    net = loaded.net_listener()
    assert net is not None and (net.port, net.external, net.scope) == (
        9000,
        "example.org",
        ("public",),
    )
    assert [listener.kind for listener in loaded.listeners] == ["net", "unix"]
    assert loaded.log_level == "info" and loaded.handshake_timeout == 2.0
    assert len(loaded.masters) == 1


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"port": "eighty"}, "port"),
        ({"port": 70000}, "port"),
        ({"caps": {"shs": "short"}}, "caps.shs"),
        ({"caps": {"sign": 5}}, "caps.sign"),
        ({"master": ["@nope"]}, "master"),
        ({"logging": {"level": "loud"}}, "logging.level"),
        ({"timers": {"inactivity": -1}}, "timers.inactivity"),
        ({"friends": {"hops": -1}}, "friends.hops"),
        ({"connections": {"incoming": {"net": [{"transform": "tls"}]}}}, "transform"),
        ({"connections": {"incoming": {"net": {"port": 1}}}}, "connections.incoming.net"),
        ("{not json", "not readable JSON"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, raw: Any, field: str) -> None:
    with pytest.raises(config.ConfigError, match=field.replace(".", r"\.")):
        _load(tmp_path, raw)
