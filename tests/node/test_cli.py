"""The `ssbsync` command line: in-process through `ssbsync.cli.main`, and as `python -m ssbsync`
where the process boundary matters (exit status, stderr, the environment)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ssbsync.cli import main
from ssbsync.core import jsonv8
from ssbsync.node import identity

from .conftest import REPO_ROOT, ssbsync_env
from .helpers import make_feeds, tampered

FIXTURE_SECRET = REPO_ROOT / "fixtures" / "keys" / "secret"
FIXTURE_ID = json.loads((REPO_ROOT / "fixtures" / "keys" / "secret.json").read_text())["id"]
FEED_ID = re.compile(r"@[A-Za-z0-9+/]{43}=\.ed25519")

RunSsbsync = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


@pytest.fixture
def node(tmp_path: Path) -> Path:
    return tmp_path / "node"


@pytest.fixture
def cli(node: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """`ssbsync --path <node> ARGS…` in this process; its exit status and captured output."""

    def run(*args: str, path: Path | None = None) -> Result:
        code = main(["--path", str(path or node), *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def pretty_items(out: str) -> list[Any]:
    """Items of a stream command: each `JSON.stringify(item, null, 2)` then a blank line."""
    assert out.endswith("}\n\n")
    blocks = out[:-2].split("\n\n")
    for block in blocks:
        lines = block.split("\n")
        assert lines[0] == "{" and lines[-1] == "}", block
        assert all(line.startswith("  ") for line in lines[1:-1]), block
        assert block == jsonv8.stringify_pretty(jsonv8.parse(block))
    return [json.loads(block) for block in blocks]


def publish(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli("publish", *args)
    assert result.code == 0, result.err
    kvt: dict[str, Any] = result.json()
    return kvt


def my_id(cli: Cli) -> str:
    feed: str = cli("whoami").json()["id"]
    return feed


# -- whoami ----------------------------------------------------------------------------------


def test_whoami_creates_a_private_secret_and_prints_the_id(
    run_ssbsync: RunSsbsync, tmp_path: Path
) -> None:
    result = run_ssbsync("whoami")

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r'\{\n  "id": "(@[^"]+)"\n\}\n', result.stdout)
    assert FEED_ID.fullmatch(json.loads(result.stdout)["id"])
    secret = tmp_path / "node" / identity.SECRET
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert json.loads(result.stdout)["id"] in secret.read_text()


def test_whoami_twice_prints_the_same_id(cli: Cli) -> None:
    first, second = cli("whoami"), cli("whoami")

    assert first.code == second.code == 0
    assert first.out == second.out
    assert FEED_ID.fullmatch(first.json()["id"])


def test_different_folders_have_different_identities(cli: Cli, tmp_path: Path) -> None:
    assert cli("whoami").out != cli("whoami", path=tmp_path / "other").out


# -- publish, get ----------------------------------------------------------------------------


def test_publish_builds_the_content_from_the_options(cli: Cli) -> None:
    kvt = publish(
        cli, "--type", "post", "--text", "hi", "--a.b", "1", "--r", "1", "--r", "2", "--flag"
    )

    content = kvt["value"]["content"]
    assert json.dumps(content, separators=(",", ":")) == (
        '{"type":"post","text":"hi","a":{"b":1},"r":[1,2],"flag":true}'
    )


def test_publish_prints_the_new_message_of_this_feed(cli: Cli) -> None:
    me = my_id(cli)
    first = publish(cli, "--type", "post", "--text", "one")
    second = publish(cli, "--type", "post", "--text", "two")

    assert set(first) == {"key", "value", "timestamp"}
    assert (first["value"]["author"], first["value"]["sequence"]) == (me, 1)
    assert first["value"]["previous"] is None
    assert (second["value"]["sequence"], second["value"]["previous"]) == (2, first["key"])


def test_get_prints_the_stored_value(cli: Cli) -> None:
    kvt = publish(cli, "--type", "post", "--text", "hi")

    result = cli("get", kvt["key"])

    assert result.code == 0
    assert result.json() == kvt["value"]
    assert result.out == jsonv8.stringify_pretty(kvt["value"]) + "\n"


def test_get_of_an_unknown_id_fails_on_stderr(run_ssbsync: RunSsbsync) -> None:
    unknown = "%" + "A" * 43 + "=.sha256"

    result = run_ssbsync("get", unknown)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert unknown in result.stderr


def test_get_of_something_that_is_not_an_id_fails(cli: Cli) -> None:
    result = cli("get", "hello")

    assert result.code == 1
    assert result.out == ""
    assert "message id" in result.err


# -- streams and queries ---------------------------------------------------------------------


@pytest.fixture
def three_posts(cli: Cli) -> list[dict[str, Any]]:
    return [publish(cli, "--type", "post", "--text", f"post {n}") for n in (1, 2, 3)]


@pytest.mark.parametrize("command", ["log", "feed", "createLogStream", "createFeedStream"])
def test_stream_commands_print_pretty_items_each_followed_by_a_blank_line(
    cli: Cli, three_posts: list[dict[str, Any]], command: str
) -> None:
    result = cli(command)

    assert result.code == 0
    items = pretty_items(result.out)
    assert sorted(i["key"] for i in items) == sorted(p["key"] for p in three_posts)
    assert all({"key", "value", "timestamp"} <= set(item) for item in items)


def test_log_lists_messages_in_receive_order(cli: Cli, three_posts: list[dict[str, Any]]) -> None:
    assert pretty_items(cli("log").out) == three_posts


@pytest.mark.parametrize("command", ["hist", "history", "createHistoryStream"])
def test_hist_lists_one_feed_in_sequence_order(
    cli: Cli, three_posts: list[dict[str, Any]], command: str
) -> None:
    result = cli(command, "--id", my_id(cli))

    assert result.code == 0
    assert [i["value"]["sequence"] for i in pretty_items(result.out)] == [1, 2, 3]


def test_hist_starts_at_seq(cli: Cli, three_posts: list[dict[str, Any]]) -> None:
    items = pretty_items(cli("hist", "--id", my_id(cli), "--seq", "2").out)

    assert [i["key"] for i in items] == [p["key"] for p in three_posts[1:]]


def test_hist_of_a_feed_we_do_not_have_prints_nothing(cli: Cli) -> None:
    result = cli("hist", "--id", "@" + "A" * 43 + "=.ed25519")

    assert (result.code, result.out) == (0, "")


def test_latest_sequence_prints_the_number(cli: Cli, three_posts: list[dict[str, Any]]) -> None:
    result = cli("latestSequence", my_id(cli))

    assert (result.code, result.out) == (0, "3\n")


def test_get_vector_clock_prints_every_feed(cli: Cli, three_posts: list[dict[str, Any]]) -> None:
    result = cli("getVectorClock")

    assert result.code == 0
    assert result.json() == {my_id(cli): 3}
    assert result.out == jsonv8.stringify_pretty({my_id(cli): 3}) + "\n"


def test_links_dest_lists_the_messages_linking_to_it(cli: Cli) -> None:
    me = my_id(cli)
    target = publish(cli, "--type", "post", "--text", "target")["key"]
    vote = publish(cli, "--type", "vote", "--vote.link", target, "--vote.value", "1")["key"]
    reply = publish(cli, "--type", "post", "--text", "re", "--root", target)["key"]
    publish(cli, "--type", "post", "--text", "unrelated")

    result = cli("links", "--dest", target)

    assert result.code == 0
    assert sorted(pretty_items(result.out), key=lambda i: i["rel"]) == [
        {"source": me, "rel": "root", "dest": target, "key": reply},
        {"source": me, "rel": "vote", "dest": target, "key": vote},
    ]


def test_messages_by_type_lists_only_that_type(cli: Cli) -> None:
    publish(cli, "--type", "post", "--text", "a post")
    vote = publish(cli, "--type", "vote", "--vote.link", my_id(cli), "--vote.value", "1")
    publish(cli, "--type", "post", "--text", "another post")

    result = cli("messagesByType", "--type", "vote")

    assert result.code == 0
    assert pretty_items(result.out) == [vote]


# -- import and export -----------------------------------------------------------------------


FEEDS = make_feeds(authors=3, messages=30, seed=5)


def write_lines(file: Path, lines: list[str]) -> Path:
    file.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return file


def test_import_of_another_stores_export(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "source"
    jsonl = write_lines(tmp_path / "feeds.jsonl", [m.compact_json() for m in FEEDS.messages])
    assert cli("import", str(jsonl), path=source).code == 0
    publish_here = cli("publish", "--type", "post", "--text", "mine", path=source)
    assert publish_here.code == 0
    export = cli("export", path=source)
    assert export.code == 0
    exported = tmp_path / "export.json"
    exported.write_text(export.out, encoding="utf-8")
    total = len(FEEDS.messages) + 1

    result = cli("import", str(exported))

    assert result.code == 0, result.out
    assert f"{total} accepted" in result.out
    assert result.out.startswith(f"{total} messages read: {total} accepted, 0 duplicates")
    assert cli("getVectorClock").json() == cli("getVectorClock", path=source).json()
    assert cli("check").code == 0


def test_importing_the_same_file_twice_gives_duplicates_and_success(
    cli: Cli, tmp_path: Path
) -> None:
    jsonl = write_lines(tmp_path / "feeds.jsonl", [m.compact_json() for m in FEEDS.messages])
    cli("import", str(jsonl))

    result = cli("import", str(jsonl))

    assert result.code == 0
    total = len(FEEDS.messages)
    assert result.out.startswith(f"{total} messages read: 0 accepted, {total} duplicates")


def _last_of_a_feed() -> int:
    """Index (in FEEDS.messages) of a message that is the last of its feed."""
    last = FEEDS.by_author[FEEDS.messages[0].author][-1]
    return FEEDS.messages.index(last)


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        pytest.param(lambda text: text[: len(text) // 2], "bad_json", id="truncated"),
        pytest.param(lambda text: text.replace('"sha256"', '"sha512"'), "bad_hash", id="hash"),
        pytest.param(lambda text: None, "bad_signature", id="tampered"),
    ],
)
def test_import_with_one_corrupted_line_imports_the_rest_and_fails(
    cli: Cli, tmp_path: Path, corrupt: Callable[[str], str | None], reason: str
) -> None:
    lines = [m.compact_json() for m in FEEDS.messages]
    bad = _last_of_a_feed()
    corrupted = corrupt(lines[bad])
    lines[bad] = corrupted or json.dumps(tampered(FEEDS.messages[bad]), ensure_ascii=False)
    jsonl = write_lines(tmp_path / "damaged.jsonl", lines)
    total = len(lines)

    result = cli("import", str(jsonl))

    assert result.code == 1
    assert result.out.startswith(f"{total} messages read: {total - 1} accepted, 0 duplicates, 1")
    assert f"rejected 1: {reason}" in result.out
    assert sum(cli("getVectorClock").json().values()) == total - 1
    assert cli("check").code == 0


def test_import_reads_standard_input(run_ssbsync: RunSsbsync) -> None:
    text = "".join(m.compact_json() + "\n" for m in FEEDS.messages)

    result = run_ssbsync("import", "-", input=text)

    assert result.returncode == 0, result.stderr
    assert f"{len(FEEDS.messages)} accepted" in result.stdout


def test_import_of_a_missing_file_fails(cli: Cli, tmp_path: Path) -> None:
    result = cli("import", str(tmp_path / "nothing-here.jsonl"))

    assert result.code == 1
    assert result.err.startswith("Error: ")


# -- key import ------------------------------------------------------------------------------


def test_key_import_makes_whoami_print_the_imported_id(cli: Cli, node: Path) -> None:
    result = cli("key", "import", str(FIXTURE_SECRET))

    assert result.code == 0, result.err
    assert result.json() == {"id": FIXTURE_ID}
    assert cli("whoami").json() == {"id": FIXTURE_ID}
    assert stat.S_IMODE((node / identity.SECRET).stat().st_mode) == 0o600


def test_key_import_keeps_an_unused_identity_aside(cli: Cli, node: Path) -> None:
    unused = my_id(cli)

    assert cli("key", "import", str(FIXTURE_SECRET)).code == 0

    aside = [f for f in node.iterdir() if f.name.startswith(identity.SECRET + ".unused-")]
    assert len(aside) == 1
    assert unused in aside[0].read_text()


def test_key_import_of_the_current_identity_changes_nothing(cli: Cli, node: Path) -> None:
    cli("key", "import", str(FIXTURE_SECRET))
    before = sorted(f.name for f in node.iterdir())

    result = cli("key", "import", str(FIXTURE_SECRET))

    assert (result.code, result.json()) == (0, {"id": FIXTURE_ID})
    assert sorted(f.name for f in node.iterdir()) == before


def test_key_import_refuses_to_replace_an_identity_that_has_published(
    run_ssbsync: RunSsbsync, tmp_path: Path
) -> None:
    assert run_ssbsync("publish", "--type", "post", "--text", "hello").returncode == 0
    published_as = json.loads(run_ssbsync("whoami").stdout)["id"]

    result = run_ssbsync("key", "import", str(FIXTURE_SECRET))

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert published_as in result.stderr
    assert "published" in result.stderr and "never replaced" in result.stderr
    assert json.loads(run_ssbsync("whoami").stdout)["id"] == published_as


def test_key_import_of_a_file_that_is_not_a_secret_fails(cli: Cli, tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_text("# only a comment\n")

    result = cli("key", "import", str(junk))

    assert result.code == 1
    assert "no key" in result.err


# -- the data folder -------------------------------------------------------------------------


def test_the_data_folder_can_come_from_ssbsync_path(
    run_ssbsync: RunSsbsync, tmp_path: Path
) -> None:
    folder, home = tmp_path / "from-env", tmp_path / "home"
    home.mkdir()
    env = ssbsync_env(SSBSYNC_PATH=str(folder), HOME=str(home))

    first = run_ssbsync("whoami", path=None, env=env)

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["id"] in (folder / identity.SECRET).read_text()
    assert list(home.iterdir()) == []
    assert run_ssbsync("whoami", path=None, env=env).stdout == first.stdout


def test_path_wins_over_ssbsync_path(run_ssbsync: RunSsbsync, tmp_path: Path) -> None:
    from_env, explicit = tmp_path / "from-env", tmp_path / "explicit"
    env = ssbsync_env(SSBSYNC_PATH=str(from_env))

    result = run_ssbsync("whoami", path=explicit, env=env)

    assert result.returncode == 0, result.stderr
    assert (explicit / identity.SECRET).exists()
    assert not from_env.exists()


def test_path_may_come_after_the_command_and_with_equals(cli: Cli, node: Path) -> None:
    code = main(["whoami", f"--path={node}"])

    assert code == 0
    assert (node / identity.SECRET).exists()


def test_unknown_command_fails(cli: Cli) -> None:
    result = cli("nonsense")

    assert result.code == 1
    assert "unknown command" in result.err


def test_check_reports_a_consistent_store(cli: Cli, three_posts: list[dict[str, Any]]) -> None:
    assert cli("check") == Result(0, "the store is consistent\n", "")


def test_export_of_an_empty_store_prints_nothing(cli: Cli) -> None:
    assert cli("export") == Result(0, "", "")
