"""The read queries a person browsing the store needs (the TUI): feeds with their names,
a feed page by page, a thread with its replies and votes (issue 7).

Everything here reads; nothing writes. Values are frozen dataclasses with `to_json` /
`from_json`, so the same answers travel over the local socket (`browse.*`, master only) and
come back whole (the Carry screen's values live in `ssbsync.node.carrying` and are
re-exported here). Names and descriptions come from `about` messages, read incrementally
through the type index: a feed's own latest `about` naming itself wins (ssb-about's
self-assigned name; others' names for a feed are ignored). Hops and follow/block state are
the follow graph's (`ssbsync.core.friends`, PROTOCOL.md §6). Private messages addressed to
us are shown opened (§9): the node's private index already holds their content.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from typing import Any

from ssbsync.core import jsonv8
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import FeedId, is_blob_id, is_feed_id, is_msg_id
from ssbsync.node.api import ApiError, NodeAPI
from ssbsync.node.carrying import MAX_CARRY_HOPS as MAX_CARRY_HOPS
from ssbsync.node.carrying import BundleWritten as BundleWritten
from ssbsync.node.carrying import CarryFeed as CarryFeed
from ssbsync.node.carrying import CarrySpec as CarrySpec
from ssbsync.node.carrying import CarryTarget as CarryTarget
from ssbsync.node.carrying import Place as Place
from ssbsync.node.carrying import Progress as Progress
from ssbsync.node.carrying import bundle_options as bundle_options
from ssbsync.node.carrying import bundle_problem as bundle_problem
from ssbsync.node.carrying import carry_list_problem as carry_list_problem
from ssbsync.node.carrying import carry_target as carry_target
from ssbsync.node.carrying import offline_place as offline_place
from ssbsync.node.carrying import progress_from_json as progress_from_json
from ssbsync.node.carrying import write_bundle as write_bundle
from ssbsync.node.carrying import write_carry as write_carry
from ssbsync.node.session import Method
from ssbsync.node.social import SocialGraph
from ssbsync.node.store import Range, StoredMessage, key_hash
from ssbsync.node.wrapping import sync

SHOWN_HOPS = 3  # hop distances shown beyond the replication range (friends.hops is 2)
PAGE_LIMIT = 500  # the most messages one page call returns


@dataclass(frozen=True, slots=True)
class FeedSummary:
    """One feed we hold, as the Feeds screen lists it."""

    id: str
    name: str | None
    description: str | None
    messages: int
    bytes: int
    last_activity: float | None  # the latest message's claimed timestamp, ms
    hops: int | None  # from us; negative: blocked or unfollowed (ssb-friends); None: far
    following: bool  # we follow it
    blocking: bool  # we block it

    def to_json(self) -> dict[str, JSONValue]:
        return asdict(self)

    @classmethod
    def from_json(cls, item: Any) -> FeedSummary:
        return cls(**_fields(cls, item))


@dataclass(frozen=True, slots=True)
class Mention:
    """A link in `content.mentions`: a feed, a message or a blob (with the name and size
    the author gave, as ssb clients publish them)."""

    link: str
    name: str | None = None
    size: int | None = None
    kind: str = "msg"  # feed, msg or blob

    def to_json(self) -> dict[str, JSONValue]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MessageView:
    """One message as shown: content opened when it is a private message to us."""

    key: str
    author: str
    sequence: int
    timestamp: float  # claimed, ms
    type: str | None
    text: str | None  # content.text, when it is a string
    content: JSONValue  # the (opened) content; a string when it is a box we cannot open
    private: bool = False  # a private message (shown opened if `content` is an object)
    root: str | None = None
    mentions: tuple[Mention, ...] = ()
    votes: tuple[str, ...] = ()  # feeds whose latest vote on this message is positive

    def to_json(self) -> dict[str, JSONValue]:
        item = asdict(self)
        item["mentions"] = [m.to_json() for m in self.mentions]
        item["votes"] = list(self.votes)
        return item

    @classmethod
    def from_json(cls, item: Any) -> MessageView:
        fields = _fields(cls, item)
        fields["mentions"] = tuple(Mention(**_fields(Mention, m)) for m in item["mentions"])
        fields["votes"] = tuple(item["votes"])
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class Thread:
    """A root message (None if we do not hold it) and its replies in feed order."""

    root_key: str
    root: MessageView | None
    replies: tuple[MessageView, ...] = field(default=())

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "root_key": self.root_key,
            "root": None if self.root is None else self.root.to_json(),
            "replies": [r.to_json() for r in self.replies],
        }

    @classmethod
    def from_json(cls, item: Any) -> Thread:
        root = item["root"]
        return cls(
            str(item["root_key"]),
            None if root is None else MessageView.from_json(root),
            tuple(MessageView.from_json(r) for r in item["replies"]),
        )


def number(value: object) -> float | None:
    """A JSON number as a float (not a bool, which Python counts as an int)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fields(cls: type, item: Any) -> dict[str, Any]:
    """The dataclass fields of `cls` out of a JSON object (a bad answer fails here, named)."""
    if not isinstance(item, dict):
        raise ValueError(f"expected an object for {cls.__name__}, got {item!r}")
    names = cls.__dataclass_fields__  # type: ignore[attr-defined]
    missing = [n for n in names if n not in item and n not in ("mentions", "votes")]
    if missing:
        raise ValueError(f"{cls.__name__} without {', '.join(missing)}")
    return {n: item[n] for n in names if n in item}


def _view(row: StoredMessage, opened: dict[str, JSONValue] | None = None) -> MessageView:
    value = jsonv8.parse(row.value_json)
    assert isinstance(value, dict)
    content = value.get("content")
    boxed = isinstance(content, str)
    if opened is not None:
        content = opened
    body = content if isinstance(content, dict) else {}
    text, kind, root = body.get("text"), body.get("type"), body.get("root")
    timestamp = value.get("timestamp")
    return MessageView(
        key=row.key,
        author=str(value.get("author")),
        sequence=int(value.get("sequence") or 0),
        timestamp=number(timestamp) or 0.0,
        type=kind if isinstance(kind, str) else None,
        text=text if isinstance(text, str) else None,
        content=content,
        private=boxed,
        root=root if is_msg_id(root) else None,
        mentions=_mentions(body.get("mentions")),
    )


def _mentions(raw: JSONValue) -> tuple[Mention, ...]:
    found: list[Mention] = []
    for item in raw if isinstance(raw, list) else []:
        link = item.get("link") if isinstance(item, dict) else item
        if not isinstance(link, str):
            continue
        details = item if isinstance(item, dict) else {}
        name, size = details.get("name"), details.get("size")
        kind = "blob" if is_blob_id(link) else "feed" if is_feed_id(link) else "msg"
        found.append(
            Mention(
                link,
                name if isinstance(name, str) else None,
                size if type(size) is int and size >= 0 else None,
                kind,
            )
        )
    return tuple(found)


class Browser:
    """The browse queries over one NodeAPI.

    `social`: the follow graph to read hops from. A running node passes its own (which it
    keeps current itself); with `refresh_social` we bring it up to date before each answer
    (the TUI without a node). Call from one thread at a time: the `about` cache is not
    locked.
    """

    def __init__(self, api: NodeAPI, social: SocialGraph, *, refresh_social: bool) -> None:
        self.api = api
        self.social = social
        self._refresh_social = refresh_social
        self._abouts: dict[str, tuple[str | None, str | None]] = {}
        self._abouts_read_up_to: int = 0  # rowid of the last about message read

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """One read on a connection of its own, closed at once: nothing to leak or share
        between threads, and a fresh snapshot of what is committed (WAL)."""
        with closing(sqlite3.connect(f"file:{self.api.store.path}?mode=ro", uri=True)) as db:
            db.execute("PRAGMA busy_timeout = 30000")
            return db.execute(sql, params).fetchall()

    # -- feeds -----------------------------------------------------------------------------

    def feeds(self) -> list[FeedSummary]:
        """Every feed we hold, in the order the store first saw them."""
        self._read_abouts()
        rows = self._query(
            "SELECT f.author, f.sequence, f.latest_timestamp, coalesce(b.bytes, 0)"
            " FROM feeds f LEFT JOIN feed_bytes b ON b.feed = f.id"
            " WHERE f.sequence > 0 ORDER BY f.id"
        )
        if self._refresh_social:
            self.social.refresh()
        me = self.social.me
        hops = self.social.graph.hops(me, SHOWN_HOPS)
        graph = self.social.graph
        summaries = []
        for author, sequence, latest, size in rows:
            name, description = self._abouts.get(author, (None, None))
            timestamp = jsonv8.parse(latest)
            summaries.append(
                FeedSummary(
                    id=author,
                    name=name,
                    description=description,
                    messages=sequence,
                    bytes=size,
                    last_activity=number(timestamp),
                    hops=hops.get(FeedId(author)),
                    following=graph.is_following(me, FeedId(author)),
                    blocking=graph.is_blocking(me, FeedId(author)),
                )
            )
        return summaries

    def carry_feeds(self) -> list[CarryFeed]:
        """Every feed we hold with its stored bytes and its hops out to MAX_CARRY_HOPS (the
        farthest "within N hops" the Carry screen offers)."""
        summaries = self.feeds()
        far = self.social.graph.hops(self.social.me, MAX_CARRY_HOPS)
        return [
            CarryFeed(f.id, f.name, f.messages, f.bytes, far.get(FeedId(f.id))) for f in summaries
        ]

    def _read_abouts(self) -> None:
        """Take in the `about` messages stored since the last call (receive order is each
        feed's own order, so the last one read is the author's latest)."""
        rows = self._query(
            "SELECT m.rowid, m.value FROM messages m WHERE m.type = 'about' AND m.rowid > ?"
            " ORDER BY m.rowid",
            (self._abouts_read_up_to,),
        )
        for rowid, value_json in rows:
            self._abouts_read_up_to = rowid
            value = jsonv8.parse(value_json)
            content = value.get("content") if isinstance(value, dict) else None
            if not isinstance(content, dict) or content.get("about") != value.get("author"):
                continue  # only what a feed says about itself names it
            name, description = self._abouts.get(content["about"], (None, None))
            new_name, new_description = content.get("name"), content.get("description")
            self._abouts[content["about"]] = (
                new_name.strip() or name if isinstance(new_name, str) else name,
                new_description if isinstance(new_description, str) else description,
            )

    # -- a feed's messages -------------------------------------------------------------------

    def feed_page(
        self, feed: JSONValue, before: JSONValue = None, limit: JSONValue = 50
    ) -> list[MessageView]:
        """Up to `limit` messages of `feed`, newest first, with sequence below `before`."""
        if not is_feed_id(feed):
            raise ApiError(f"browse.feed needs a feed id, got {feed!r}")
        if before is not None and (type(before) is not int or before < 1):
            raise ApiError(f"before must be a sequence number, got {before!r}")
        if type(limit) is not int or not 0 < limit <= PAGE_LIMIT:
            raise ApiError(f"limit must be a whole number from 1 to {PAGE_LIMIT}, got {limit!r}")
        window = Range(lt=before, limit=limit, reverse=True)
        return self._views(self.api.store.history(FeedId(str(feed)), window))

    def message(self, key: JSONValue) -> MessageView | None:
        if not is_msg_id(key):
            raise ApiError(f"expected a message id (%…=.sha256), got {key!r}")
        row = self.api.store.get(str(key))
        return None if row is None else self._views([row])[0]

    def _views(self, rows: Iterable[StoredMessage]) -> list[MessageView]:
        views = []
        for row in rows:
            opened = None
            if '"content":"' in row.value_json:  # a box: opened if it was for us (§9)
                found = self.api.private_messages.lookup(row.key)
                opened = found.content if found is not None else None
            views.append(_view(row, opened))
        return views

    # -- threads ---------------------------------------------------------------------------

    def thread(self, key: JSONValue) -> Thread:
        """The thread `key` belongs to: its root (a reply's `root`, else `key` itself) and
        every stored message whose `content.root` links it, in feed order, with votes."""
        found = self.message(key)
        root_key = found.root if found is not None and found.root else str(key)
        root = found if root_key == key else self.message(root_key)
        replies = self._views(self._linking(root_key, "root")) + self._private_replies(root_key)
        replies.sort(key=lambda view: (view.timestamp, view.key))
        with_votes = [self._with_votes(v) for v in ([root] if root else []) + replies]
        return Thread(
            root_key,
            with_votes[0] if root is not None else None,
            tuple(with_votes[1:] if root else with_votes),
        )

    def _linking(self, dest: str, rel: str) -> list[StoredMessage]:
        rows = self._query(
            "SELECT m.key, m.value, m.rowid / 1000.0 FROM links l"
            " JOIN messages m ON m.rowid = l.message"
            " WHERE l.dest_hash = ? AND l.dest = ? AND l.rel = ? ORDER BY m.rowid",
            (key_hash(dest), dest, rel),
        )
        return [StoredMessage(*row) for row in rows]

    def _private_replies(self, root: str) -> list[MessageView]:
        """Replies sent privately to us: the links index holds only public content, so
        these are found in the opened content of the private index (§9)."""
        rows = self._query(
            "SELECT m.key, m.value, m.rowid / 1000.0, p.content FROM private_messages p"
            " JOIN messages m ON m.rowid = p.message WHERE instr(p.content, ?) > 0",
            (f'"root":"{root}"',),
        )
        views = []
        for key, value, received, opened in rows:
            content = jsonv8.parse(opened)
            if isinstance(content, dict) and content.get("root") == root:
                views.append(_view(StoredMessage(key, value, received), content))
        return views

    def _with_votes(self, view: MessageView) -> MessageView:
        """ssb's votes: each feed's latest vote on the message counts, if its value is > 0."""
        latest: dict[str, bool] = {}
        for row in self._linking(view.key, "vote"):
            value = jsonv8.parse(row.value_json)
            assert isinstance(value, dict)
            content = value.get("content")
            vote = content.get("vote") if isinstance(content, dict) else None
            amount = vote.get("value") if isinstance(vote, dict) else None
            latest[str(value.get("author"))] = (number(amount) or 0) > 0
        voters = tuple(author for author, positive in latest.items() if positive)
        return MessageView(**{**_shallow(view), "votes": voters})


def _shallow(view: MessageView) -> dict[str, Any]:
    return {name: getattr(view, name) for name in view.__dataclass_fields__}


def direct_browser(api: NodeAPI) -> Browser:
    """A Browser for a store opened without a node: it keeps its own follow graph."""
    return Browser(api, SocialGraph(api, api.keys.id, SHOWN_HOPS), refresh_social=True)


def methods(make_browser: Callable[[], Browser]) -> dict[tuple[str, ...], Method]:
    """browse.* for the running node's master (the TUI over the local socket). The Browser
    is made at the first call: the node builds its follow graph after its method table."""
    made: list[Browser] = []

    def browser() -> Browser:
        if not made:
            made.append(make_browser())
        return made[0]

    def page(args: list[Any]) -> JSONValue:
        opts = args[0] if args and isinstance(args[0], dict) else {"id": args[0] if args else None}
        views = browser().feed_page(opts.get("id"), opts.get("before"), opts.get("limit", 50))
        return [v.to_json() for v in views]

    return {
        ("browse", "feeds"): sync(lambda _: [f.to_json() for f in browser().feeds()]),
        ("browse", "feed"): sync(page),
        ("browse", "thread"): sync(lambda a: browser().thread(a[0] if a else None).to_json()),
        ("browse", "carry"): sync(lambda _: [f.to_json() for f in browser().carry_feeds()]),
    }
