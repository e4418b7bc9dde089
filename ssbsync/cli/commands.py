"""The ssb-server command set, mapped onto NodeAPI (PROTOCOL.md §13).

Each command receives muxrpcli's argument list (positional arguments, then the options object
if any option was given) and is either `async` (one result, printed as
`JSON.stringify(result, null, 2)`) or `source` (each item printed the same way, followed by a
blank line), exactly as ssb-server's CLI prints them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ssbsync.node import private
from ssbsync.node.api import ApiError, NodeAPI, call_options


@dataclass(frozen=True)
class Command:
    kind: Literal["async", "source"]
    run: Callable[[NodeAPI, list[Any]], Any]
    usage: str


def _first(args: list[Any], what: str) -> Any:
    if not args:
        raise ApiError(f"missing argument: {what}")
    return args[0]


def _publish(api: NodeAPI, args: list[Any]) -> Any:
    content = _first(args, "the content (e.g. --type post --text hello)")
    return api.publish(content)


def _history(api: NodeAPI, args: list[Any]) -> Iterator[Any]:
    return api.create_history_stream(call_options(args, "id", "seq"))


def _by_type(api: NodeAPI, args: list[Any]) -> Iterator[Any]:
    return api.messages_by_type(call_options(args, "type"))


def _unbox(api: NodeAPI, args: list[Any]) -> Any:
    try:
        return private.unbox_call(api.keys, _first(args, "a ciphertext (…=.box) or a message"))
    except ValueError as err:
        raise ApiError(str(err)) from None


COMMANDS: dict[str, Command] = {
    "whoami": Command("async", lambda api, _: api.whoami(), "whoami"),
    "publish": Command("async", _publish, "publish --type post --text TEXT [--key value …]"),
    "add": Command("async", lambda api, a: api.add(_first(a, "a message")), "add MSG"),
    "get": Command("async", lambda api, a: api.get(_first(a, "a message id")), "get MSGID"),
    "getLatest": Command(
        "async", lambda api, a: api.get_latest(_first(a, "a feed id")), "getLatest FEED"
    ),
    "latestSequence": Command(
        "async", lambda api, a: api.latest_sequence(_first(a, "a feed id")), "latestSequence FEED"
    ),
    "getVectorClock": Command("async", lambda api, _: api.get_vector_clock(), "getVectorClock"),
    "createHistoryStream": Command("source", _history, "hist --id FEED [--seq N] [--limit N]"),
    "createUserStream": Command(
        "source",
        lambda api, a: api.create_user_stream(call_options(a, "id")),
        "createUserStream --id FEED [--gt N] [--lt N] [--limit N] [--reverse]",
    ),
    "createLogStream": Command(
        "source",
        lambda api, a: api.create_log_stream(call_options(a)),
        "log [--gt MS] [--lt MS] [--limit N] [--reverse] [--keys false] [--values false]",
    ),
    "createFeedStream": Command(
        "source",
        lambda api, a: api.create_feed_stream(call_options(a)),
        "feed [--gt MS] [--lt MS] [--limit N] [--reverse]",
    ),
    "messagesByType": Command(
        "source", _by_type, "messagesByType --type TYPE [--gt MS] [--lt MS] [--limit N] [--reverse]"
    ),
    "latest": Command("source", lambda api, _: api.latest(), "latest"),
    "links": Command(
        "source",
        lambda api, a: api.links(call_options(a)),
        "links [--source FEED] [--dest ID] [--rel REL] [--values] [--limit N] [--reverse]",
    ),
    "private.unbox": Command("async", _unbox, "private.unbox CIPHERTEXT"),
}

# ssb-server's CLI aliases (ssb-server/lib/cli-cmd-aliases.js).
ALIASES = {
    "feed": "createFeedStream",
    "history": "createHistoryStream",
    "hist": "createHistoryStream",
    "log": "createLogStream",
    "logt": "messagesByType",
}
