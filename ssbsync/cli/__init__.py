"""The `ssbsync` command line: ssb-server's commands, plus key, import, export and check.

Talks only to NodeAPI (ARCHITECTURE.md, "One rule of direction").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ssbsync import __version__
from ssbsync.cli.args import parse_args
from ssbsync.cli.blobs import run_blobs
from ssbsync.cli.commands import ALIASES, COMMANDS
from ssbsync.cli.output import print_items, print_result
from ssbsync.cli.running import (
    call_running_node,
    import_through_node,
    node_is_running,
    run_start,
    run_sync,
)
from ssbsync.cli.sneakernet import SNEAKERNET, run_sneakernet
from ssbsync.cli.transfer import run_export, run_import
from ssbsync.core import jsonv8
from ssbsync.core.refs import is_feed_id
from ssbsync.node import config as node_config
from ssbsync.node import identity
from ssbsync.node.api import ApiError, NodeAPI
from ssbsync.node.config import ConfigError
from ssbsync.node.session import RemoteError
from ssbsync.node.store import StoreError

# Commands only a running node can answer.
NODE_COMMANDS = {
    "gossip.connect", "gossip.disconnect", "gossip.peers", "status", "manifest", "progress",
    "replicate.request", "friends.hops", "friends.isFollowing", "friends.isBlocking",
    "gossip.add", "gossip.remove", "gossip.get", "gossip.changes", "gossip.enable",
    "gossip.disable",
    "invite.create", "invite.accept",
}  # fmt: skip

OWN_COMMANDS = {
    "start [--logging.level=info] [--port N]": "run the node until Ctrl-C or SIGTERM",
    "gossip.connect ADDR": "connect the running node to a peer (net:HOST:PORT~shs:KEY)",
    "sync ADDR [--timeout S]": "replicate with a peer until nothing is outstanding, then exit",
    "gossip.peers | status | manifest": "ask the running node",
    "gossip.add ADDR | gossip.remove ADDR": "a peer for the node to dial by itself, or not",
    "replicate.request FEED": "replicate this feed too (running node)",
    "friends.hops | friends.isFollowing": "the follow graph (running node)",
    "invite.create [N | --uses N --note T]": "make a pub invite code (running node)",
    "invite.accept CODE": "redeem a pub's invite code: it follows us, we follow it",
    "blobs.add FILE | blobs.get ID": "store a file as a blob / write one to stdout (running node)",
    "clock export FILE|-": "write our vector clock, for a `bundle export --for` elsewhere",
    "bundle export OUT [--for CLOCKFILE | --for-peer FEED]": "write what a destination lacks"
    " [--feeds FEED,… | --hops N] [--blobs]",
    "bundle import FILE | bundle verify FILE": "import a bundle / check one without importing",
    "stick init DIR [--carry FEED,… | --hops N]": "make a mounted folder a stick"
    " [--max-size BYTES] [--blobs]",
    "stick carry DIR [same options]": "change what a stick carries (a folder becomes one)",
    "stick sync DIR | stick status DIR": "sync with a stick both ways / show what it holds",
    "usb watch": "sync every stick plugged in, then unmount it (no network node)",
    "key import FILE": "make the identity in FILE (e.g. ~/.ssb/secret) this node's identity",
    "import FILE|-": "add messages from a JSON stream (as `log` prints them, or JSON lines)",
    "export [--id FEED]": "print all messages (or one feed's) as a JSON stream",
    "check": "check the store's consistency",
    "tui": "the terminal UI: feeds, threads, compose, sync (running node or store)",
    "version": "print the version",
}


def _take_path(argv: list[str]) -> tuple[str | None, list[str]]:
    """Remove the global `--path DIR` (anywhere on the line) from argv."""
    rest, path, i = [], None, 0
    while i < len(argv):
        if argv[i] == "--path" and i + 1 < len(argv):
            path, i = argv[i + 1], i + 2
        elif argv[i].startswith("--path="):
            path, i = argv[i].partition("=")[2], i + 1
        else:
            rest.append(argv[i])
            i += 1
    return path, rest


def _usage(out: TextIO) -> None:
    out.write("usage: ssbsync [--path DIR] COMMAND [ARGS]\n\nssb-server commands:\n")
    for command in COMMANDS.values():
        out.write(f"  {command.usage}\n")
    out.write("\nssbsync commands:\n")
    for usage, what in OWN_COMMANDS.items():
        out.write(f"  {usage:<40} {what}\n")
    out.write("\nThe data folder is --path, else $SSBSYNC_PATH, else ~/.ssbsync.\n")


def _offline_api(folder: Path) -> NodeAPI:
    """The store opened directly (no node running), with the network's sign cap if any."""
    return NodeAPI(folder, hmac_key=node_config.load(folder).sign_cap)


def _through_running_node(
    folder: Path,
    name: str,
    positional: list[Any],
    options: dict[str, Any],
    args: list[Any],
    out: TextIO,
) -> int | None:
    """Run the command on the running node (it holds the store); None when none runs."""
    rpc_name = ALIASES.get(name, name)
    if rpc_name in COMMANDS or rpc_name in NODE_COMMANDS:
        # Through the running node when there is one: it holds the store.
        result = call_running_node(folder, rpc_name, args, out)
        if result is not None:
            return result
        if rpc_name in NODE_COMMANDS:
            raise ApiError(f"{name}: no node is running (start one with `ssbsync start`)")
    elif name == "import" and len(positional) == 1:
        result = import_through_node(folder, str(positional[0]), out)
        if result is not None:
            return result
    elif name == "export":
        feed = options.get("id")
        if feed is not None and not is_feed_id(feed):
            raise ApiError(f"--id must be a feed id, got {feed!r}")
        # Through the node, export is createLogStream / createHistoryStream, printed alike.
        method, opts = (
            ("createLogStream", {}) if feed is None else ("createHistoryStream", {"id": feed})
        )
        result = call_running_node(folder, method, [opts], out)
        if result is not None:
            return result
    elif name in ("check", "key") and node_is_running(folder):
        raise ApiError(f"{name}: the node is running and holds the store; stop it first")
    return None


def _run(folder: Path, argv: list[str], out: TextIO) -> int:
    name, rest = argv[0], argv[1:]
    if name == "tui":  # imported here: other commands need not load Textual
        from ssbsync.tui.app import run_tui

        return run_tui(folder, lambda: _offline_api(folder))
    if name == "start":
        return run_start(folder, parse_args(rest)[1])
    if name == "sync":
        positional, options = parse_args(rest)
        if len(positional) != 1:
            raise ApiError("usage: ssbsync sync ADDRESS [--timeout SECONDS]")
        timeout = options.get("timeout", 600)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ApiError(f"--timeout must be a number of seconds, got {timeout!r}")
        return run_sync(folder, str(positional[0]), float(timeout), out)
    if name == "key" and rest[:1] == ["import"] and len(rest) == 2:
        with _offline_api(folder) as api:
            keys = identity.import_secret(
                folder, Path(rest[1]), lambda k: api.store.feed_state(k.id) is not None
            )
        print_result(out, {"id": keys.id})
        return 0
    positional, options = parse_args(rest)
    args = positional + ([options] if options else [])
    if positional[:1] == ["."] and not sys.stdin.isatty():
        args = [jsonv8.parse(sys.stdin.read())]  # muxrpcli's stdin mode, e.g. `add . < msg.json`
    if name.startswith("blobs."):
        return run_blobs(folder, name, args, out)
    if name in SNEAKERNET:
        return run_sneakernet(folder, name, positional, options, out)
    through_node = _through_running_node(folder, name, positional, options, args, out)
    if through_node is not None:
        return through_node
    with _offline_api(folder) as api:
        if name == "import" and len(positional) == 1:
            return run_import(api, str(positional[0]), out)
        if name == "export":
            return run_export(api, options.get("id"), out)
        if name == "check":
            problems = api.store.check()
            out.write("".join(f"{p}\n" for p in problems) or "the store is consistent\n")
            return 1 if problems else 0
        command = COMMANDS.get(ALIASES.get(name, name))
        if command is None:
            raise ApiError(f"unknown command: {name} (see `ssbsync help`)")
        result = command.run(api, args)
        (print_result if command.kind == "async" else print_items)(out, result)
    return 0


def main(argv: list[str] | None = None) -> int:
    path, argv = _take_path(list(sys.argv[1:] if argv is None else argv))
    out = sys.stdout
    if hasattr(out, "reconfigure"):
        out.reconfigure(encoding="utf-8")
    if not argv or argv[0] in ("help", "--help", "-h"):
        _usage(out)
        return 0 if argv else 1
    if argv[0] in ("version", "--version"):
        print_result(out, {"version": __version__})
        return 0
    try:
        return _run(identity.data_folder(path), argv, out)
    except BrokenPipeError:  # e.g. `ssbsync log | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ApiError, StoreError, identity.IdentityError, ConfigError, RemoteError, OSError) as err:
        sys.stderr.write(f"Error: {err}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
