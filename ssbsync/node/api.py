"""NodeAPI: what the CLI (and later the TUI and the RPC server) call.

Method names and result shapes follow ssb-db 20 as ssb-server 16 serves them (PROTOCOL.md
§13): streams yield `{key, value, timestamp}` by default, `keys: false` gives bare values,
`values: false` bare keys; `gt/gte/lt/lte`, `limit` and `reverse` bound the ranges.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from ssbsync.core import jsonv8
from ssbsync.core import message as msgs
from ssbsync.core.errors import LocalProtocolError
from ssbsync.core.jsonv8 import JSONValue, RawJSON
from ssbsync.core.keys import Keypair
from ssbsync.core.message import FeedState
from ssbsync.core.refs import FeedId, is_feed_id, is_msg_id
from ssbsync.node import identity, private
from ssbsync.node.ingest import Ingester, IngestReport, OnCommit, Progress
from ssbsync.node.store import Range, Store, StoredMessage, StoreError

Options = Mapping[str, JSONValue]


class ApiError(Exception):
    """A call that cannot be answered; the text is what ssb-server would say where it says one."""


def call_options(args: list[JSONValue], *names: str) -> dict[str, JSONValue]:
    """A call's options object (muxrpc args): the trailing object, with any positional
    arguments before it named in order (`hist @feed 5` = `{id: @feed, seq: 5}`), as ssb-db."""
    has_object = bool(args) and isinstance(args[-1], dict)
    opts: dict[str, JSONValue] = dict(args[-1]) if has_object else {}
    for name, value in zip(names, args[:-1] if has_object else args, strict=False):
        opts.setdefault(name, value)
    return opts


def _flag(opts: Options, name: str, default: bool) -> bool:
    value = opts.get(name, default)
    return bool(value) if value is not None else default


def _number(opts: Options, name: str) -> float | None:
    value = opts.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(f"option {name} must be a number, got {value!r}")
    return value


def _window(opts: Options) -> Range:
    limit = _number(opts, "limit")
    return Range(
        gt=_number(opts, "gt"),
        gte=_number(opts, "gte"),
        lt=_number(opts, "lt"),
        lte=_number(opts, "lte"),
        limit=None if limit is None or limit < 0 else int(limit),
        reverse=_flag(opts, "reverse", False),
    )


def _formatted(
    rows: Iterable[StoredMessage], opts: Options, raw: bool = False
) -> Iterator[JSONValue]:
    """Items as ssb-db shapes them; `raw`: as JSON text for the wire (nothing re-encoded)."""
    keys, values = _flag(opts, "keys", True), _flag(opts, "values", True)
    for row in rows:
        if keys and values:
            yield row.as_raw_kvt() if raw else row.as_kvt()
        elif keys:
            yield row.key
        elif values:
            yield RawJSON(row.value_json) if raw else jsonv8.parse(row.value_json)


def _feed_option(opts: Options, name: str = "id") -> FeedId:
    feed = opts.get(name)
    if not is_feed_id(feed):
        raise ApiError(f"{name} must be a feed id (@…=.ed25519), got {feed!r}")
    return FeedId(str(feed))


class NodeAPI:
    """One node's identity and store. Opens the store on first use; `close()` when done."""

    def __init__(
        self,
        folder: Path,
        *,
        hmac_key: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self.keys: Keypair = identity.load_or_create(folder)
        self._hmac_key = hmac_key
        self._clock = clock
        self._store: Store | None = None
        self._private: private.PrivateMessages | None = None
        self._ingester: Ingester | None = None
        self._closed = False
        self._listeners: list[OnCommit] = []
        # One ingest at a time (the node calls in from several threads): the Ingester keeps
        # per-call state, and two publishes must not both take the same next sequence.
        self._ingest_lock = threading.Lock()

    def close(self) -> None:
        self._closed = True
        if self._private is not None:
            self._private.close()
            self._private = None
        if self._ingester is not None:
            self._ingester.close()
        if self._store is not None:
            self._store.close()
            self._store = None
            self._ingester = None

    def __enter__(self) -> NodeAPI:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def store(self) -> Store:
        if self._closed:
            raise StoreError(f"the store of {self.folder} was closed")
        if self._store is None:
            self._store = Store(self.folder / identity.DATABASE)
            self._private = private.PrivateMessages(self._store.path, self.keys)
            self._private.index_new()  # what a crash left untried (PROTOCOL.md §9)
        return self._store

    @property
    def private_messages(self) -> private.PrivateMessages:
        """The private messages we opened (opened with the store)."""
        self.store  # noqa: B018 - opens both
        assert self._private is not None
        return self._private

    @property
    def ingester(self) -> Ingester:
        if self._ingester is None:
            self._ingester = Ingester(
                self.store, self._hmac_key, clock=self._clock, on_commit=self._committed
            )
        return self._ingester

    def subscribe(self, listener: OnCommit) -> None:
        """Call `listener(new_heads)` after every commit (from the committing thread)."""
        self._listeners.append(listener)

    def _committed(self, heads: dict[FeedId, FeedState]) -> None:
        self.private_messages.index_new()  # before the listeners: they may read it
        for listener in self._listeners:
            listener(heads)

    # -- writing ---------------------------------------------------------------------------

    def publish(self, content: JSONValue) -> JSONValue:
        """Sign `content` as our next message and store it durably; `{key, value, timestamp}`."""
        try:  # content.recps: box it (ssb-db 20 autobox, PROTOCOL.md §9)
            content = private.autobox(content, self.keys.id)
        except ValueError as err:
            raise ApiError(str(err)) from None
        with self._ingest_lock:
            return self._publish(content)

    def _publish(self, content: JSONValue) -> JSONValue:
        state = self.store.feed_state(self.keys.id)
        now = int(self._clock() * 1000)
        if state is not None and type(state.timestamp) in (int, float):
            now = max(now, int(state.timestamp) + 1)
        try:
            message = msgs.create(self.keys, state, content, now, self._hmac_key)
        except LocalProtocolError as err:
            raise ApiError(str(err)) from None
        report = self.ingester.add([message.value], durable=True)
        if report.accepted != 1:
            detail = report.examples[0].detail if report.examples else "not stored"
            raise ApiError(f"could not store the new message: {detail}")
        return self._kvt(message.key)

    def add(self, value: JSONValue) -> JSONValue:
        """ssb-db `add`: store someone's signed message if it is valid and next in its feed."""
        with self._ingest_lock:
            report = self.ingester.add([value])
        if report.rejected_total:
            raise ApiError(f"invalid message: {report.examples[0].detail}")
        key = msgs.prepare(value, self._hmac_key).message.key
        return self._kvt(key)

    def import_messages(
        self,
        values: Iterable[JSONValue],
        progress: Progress | None = None,
        *,
        parallel: bool = False,
    ) -> IngestReport:
        """Bulk import; `parallel` uses every core (see `Ingester.add` for the caveat)."""
        with self._ingest_lock:
            return self.ingester.add(values, progress, parallel=parallel)

    # -- reading ---------------------------------------------------------------------------

    def whoami(self) -> JSONValue:
        return {"id": self.keys.id}

    def get(self, key: JSONValue) -> JSONValue:
        """ssb-db `get(id | {id, private, unbox, meta})`; `private: true` (or a
        `%id?unbox=…` link) shows a private message opened (§9), `meta` gives the kvt."""
        opts = private.get_options(key)
        key = opts.get("id")
        if not is_msg_id(key):
            raise ApiError(f"get expects a message id (%…=.sha256), got {key!r}")
        row = self.store.get(str(key))
        if row is None:
            raise ApiError(f"Key not found in database [{key}]")
        if opts.get("private") is True:
            try:
                row = self.private_messages.shown_one(row, opts.get("unbox"))
            except ValueError as err:
                raise ApiError(str(err)) from None
        item = row.as_kvt()
        return item if private.truthy(opts.get("meta")) else item["value"]

    def _shown(self, rows: Iterable[StoredMessage], opts: Options) -> Iterable[StoredMessage]:
        """ssb-db's `private: true` stream option: what we could open, shown opened (§9)."""
        return self.private_messages.shown(rows) if opts.get("private") is True else rows

    def _kvt(self, key: str) -> JSONValue:
        row = self.store.get(key)
        assert row is not None, "a message just stored must be readable"
        return row.as_kvt()

    def create_history_stream(self, opts: Options, *, raw: bool = False) -> Iterator[JSONValue]:
        feed = _feed_option(opts)
        start = _number(opts, "sequence") or _number(opts, "seq") or 0
        limit = _number(opts, "limit")
        window = Range(gte=start, limit=None if limit is None or limit < 0 else int(limit))
        return _formatted(self.store.history(feed, window), opts, raw)

    def create_user_stream(self, opts: Options, *, raw: bool = False) -> Iterator[JSONValue]:
        rows = self.store.history(_feed_option(opts), _window(opts))
        return _formatted(self._shown(rows, opts), opts, raw)

    def create_log_stream(self, opts: Options, *, raw: bool = False) -> Iterator[JSONValue]:
        return _formatted(self._shown(self.store.log(_window(opts)), opts), opts, raw)

    def create_feed_stream(self, opts: Options, *, raw: bool = False) -> Iterator[JSONValue]:
        # ssb-db maps the bounds onto index keys `[rts, author]` with `[X, null]`, so `gt`
        # behaves as `gte` and `lte` as `lt`; scripts rely on what ssb-server returns.
        window = _window(opts)
        lower = window.gte if window.gt is None else window.gt
        upper = window.lt if window.lte is None else window.lte
        window = Range(gte=lower, lt=upper, limit=window.limit, reverse=window.reverse)
        return _formatted(self._shown(self.store.by_feed_time(window), opts), opts, raw)

    def messages_by_type(self, opts: Options, *, raw: bool = False) -> Iterator[JSONValue]:
        kind = opts.get("type")
        if not isinstance(kind, str):
            raise ApiError("must provide {type: string} to messagesByType")
        window = _window(opts)  # opened private messages count by their type, as in ssb-db
        rows = self.private_messages.with_type(self.store.by_type(kind, window), kind, window)
        return _formatted(self._shown(rows, opts), opts, raw)

    def latest(self) -> Iterator[JSONValue]:
        for feed, sequence, ts in self.store.latest():
            yield {"id": feed, "sequence": sequence, "ts": ts}

    def latest_sequence(self, feed: JSONValue) -> int:
        state = self.store.feed_state(_feed_option({"id": feed}))
        if state is None:
            raise ApiError(f"not found:{feed}")
        return state.sequence

    def get_latest(self, feed: JSONValue) -> JSONValue:
        state = self.store.feed_state(_feed_option({"id": feed}))
        if state is None:
            return None
        return {"key": state.id, "value": self.get(state.id)}

    def get_vector_clock(self) -> JSONValue:
        return self.store.vector_clock().to_json()

    def links(self, opts: Options) -> Iterator[JSONValue]:
        """ssb-db `links`: `{source, dest, rel, key}` (+ `value` with `values: true`)."""
        source, dest, rel = (opts.get(k) for k in ("source", "dest", "rel"))
        for name, given in (("source", source), ("dest", dest), ("rel", rel)):
            if given is not None and not isinstance(given, str):
                raise ApiError(f"links option {name} must be a string")
        window = Range(limit=_window(opts).limit, reverse=_flag(opts, "reverse", False))
        with_values, with_keys = _flag(opts, "values", False), _flag(opts, "keys", True)
        for row in self.store.links(
            str(source) if source else None,
            str(dest) if dest else None,
            str(rel) if rel else None,
            window,
        ):
            item: dict[str, JSONValue] = {"source": row.source, "rel": row.rel, "dest": row.dest}
            if with_keys:
                item["key"] = row.key
            if with_values:
                item["value"] = self.get(row.key)
            yield item

    def export(self, feed: FeedId | None = None) -> Iterator[JSONValue]:
        """Every message (or one feed's) as `{key, value, timestamp}`, in an importable order."""
        if feed is None:
            return _formatted(self.store.log(Range()), {})
        return _formatted(self.store.history(feed, Range()), {})
