"""Arguments as minimist 1.2.8 parses them for ssb-server's CLI (recorded with node)."""

from __future__ import annotations

from ssbsync.cli.args import parse_args


def test_matches_minimist() -> None:
    argv = [
        "publish", "--type", "post", "--text", "123", "--a.b", "1", "--a.c", "x",
        "--r", "1", "--r", "2", "--f", "--following", "true", "--no-x", "--n", "-5",
        "--h", "0x10", "-abc", "v", "--e", "1e3", "007", "--s=4",
    ]  # fmt: skip
    positional, options = parse_args(argv)
    # Recorded: node -e "console.log(JSON.stringify(require('minimist')(argv)))"
    assert positional == ["publish", 7]
    assert options == {
        "type": "post", "text": 123, "a": [{"b": 1, "c": "x"}, True], "r": [1, 2],
        "f": True, "following": "true", "x": False, "n": True, "5": True, "h": 16,
        "b": True, "c": "v", "e": 1000, "s": 4,
    }  # fmt: skip


def test_double_dash_ends_options() -> None:
    assert parse_args(["get", "--", "--not-an-option"]) == (["get", "--not-an-option"], {})


def test_strings_that_are_not_numbers_stay_strings() -> None:
    _, options = parse_args(["--text", "1.2.3", "--id", "@abc=.ed25519", "--z", "1e"])
    assert options == {"text": "1.2.3", "id": "@abc=.ed25519", "z": "1e"}
