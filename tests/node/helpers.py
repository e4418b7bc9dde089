"""Plain helpers shared by the node tests: synthetic feeds, forks, tampering, store snapshots."""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ssbsync.core import jsonv8, synthetic
from ssbsync.core.keys import Keypair
from ssbsync.core.message import FeedState, Message, create, validate
from ssbsync.core.refs import FeedId
from ssbsync.node.store import Range, Store


@dataclass(frozen=True)
class Feeds:
    """Signed synthetic messages, in generation order and grouped by author (each in order)."""

    messages: tuple[Message, ...]
    by_author: dict[FeedId, list[Message]]
    keys: dict[FeedId, Keypair]

    @property
    def clock(self) -> dict[FeedId, int]:
        return {author: len(feed) for author, feed in self.by_author.items()}

    def longest(self) -> list[Message]:
        return max(self.by_author.values(), key=len)


def make_feeds(authors: int, messages: int, seed: int) -> Feeds:
    generated = tuple(synthetic.generate(authors, messages, seed))
    by_author: dict[FeedId, list[Message]] = defaultdict(list)
    for msg in generated:
        by_author[msg.author].append(msg)
    keys = {k.id: k for k in synthetic.author_keys(authors, seed)}
    return Feeds(generated, dict(by_author), keys)


def fork_of(feeds: Feeds, original: Message, text: str = "a fork") -> Message:
    """A validly signed message with `original`'s author, sequence and previous, other content."""
    feed = feeds.by_author[original.author]
    predecessor = feed[original.sequence - 2].state() if original.sequence > 1 else None
    timestamp = original.timestamp
    assert isinstance(timestamp, int | float)
    fork = create(
        feeds.keys[original.author], predecessor, {"type": "post", "text": text}, timestamp
    )
    assert (fork.author, fork.sequence, fork.previous) == (
        original.author,
        original.sequence,
        original.previous,
    )
    assert fork.key != original.key
    return fork


def tampered(original: Message) -> dict[str, Any]:
    """`original`'s value with its content changed after signing (the signature no longer fits)."""
    value = copy.deepcopy(original.value)
    value["content"] = {"type": "post", "text": "words the author never signed"}
    return value


def with_field(original: Message, name: str, new: Any) -> dict[str, Any]:
    value = copy.deepcopy(original.value)
    value[name] = new
    return value


def stored_keys(store: Store, author: FeedId) -> list[str]:
    return [row.key for row in store.history(author, Range())]


def snapshot(store: Store) -> tuple[dict[FeedId, int], int]:
    """What a rejected message must not change: the vector clock and the message count."""
    return dict(store.vector_clock()), store.count_messages()


def assert_chains_verify(store: Store) -> None:
    """Every stored feed re-validates from scratch: signatures, ids, sequence and previous."""
    for author in store.vector_clock():
        state: FeedState | None = None
        for row in store.history(author, Range()):
            message = validate(state, None, jsonv8.parse(row.value_json))
            assert message.key == row.key
            state = message.state()


def assert_store_holds_exactly(store: Store, expected: dict[FeedId, list[Message]]) -> None:
    """The store holds exactly these feeds (each a list of messages from seq 1), and is sound."""
    assert store.check() == []
    wanted = {author: len(feed) for author, feed in expected.items() if feed}
    assert dict(store.vector_clock()) == wanted
    for author, feed in expected.items():
        assert stored_keys(store, author) == [m.key for m in feed]
    assert store.count_messages() == sum(wanted.values())
    assert_chains_verify(store)
