"""Deterministic synthetic feeds with realistic content, for benchmarks, tests and demos.

Seeded: the same arguments always give the same signed messages. Content mixes what real
feeds hold: posts of varied length (some non-ASCII), replies with root/branch/mentions,
votes, follows, and `about` messages, so every index gets exercised.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.keys import Keypair
from ssbsync.core.message import FeedState, Message, create

_WORDS = (
    "boat island harbour signal mesh radio stick village farm weather tide net solar battery "
    "bread garden river bridge school market fish wind rain road map letter ünïcödé café "
    "naïve 島 海 ☀ 🌊 €"
).split(" ")


def author_keys(count: int, seed: int = 0) -> list[Keypair]:
    return [
        Keypair.from_seed(hashlib.sha256(f"ssbsync-synthetic-{seed}-{i}".encode()).digest())
        for i in range(count)
    ]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 200)))


def _content(rng: random.Random, me: Keypair, authors: list[Keypair], seen: list[str]) -> JSONValue:
    roll = rng.random()
    if roll < 0.04 or not seen:
        return {"type": "about", "about": me.id, "name": f"node-{me.id[1:7]}"}
    if roll < 0.12:
        return {"type": "contact", "contact": rng.choice(authors).id, "following": True}
    if roll < 0.30:
        link = rng.choice(seen)
        return {"type": "vote", "vote": {"link": link, "value": 1, "expression": "Like"}}
    if roll < 0.50:
        root = rng.choice(seen)
        return {
            "type": "post",
            "text": _text(rng),
            "root": root,
            "branch": rng.choice(seen),
            "mentions": [{"link": rng.choice(authors).id, "name": "friend"}],
        }
    return {"type": "post", "text": _text(rng), "channel": rng.choice(["boats", "mesh", "farm"])}


def generate(
    authors: int, messages: int, seed: int = 0, start_ms: int = 1_600_000_000_000
) -> Iterator[Message]:
    """`messages` messages spread round-robin-ish over `authors` feeds, each feed in order."""
    rng = random.Random(seed)
    keys = author_keys(authors, seed)
    heads: dict[int, FeedState | None] = dict.fromkeys(range(authors))
    seen: list[str] = []
    for n in range(messages):
        who = rng.randrange(authors)
        me = keys[who]
        msg: Message = create(me, heads[who], _content(rng, me, keys, seen), start_ms + n * 1000)
        heads[who] = msg.state()
        seen.append(msg.key)
        if len(seen) > 500:
            del seen[: len(seen) - 500]
        yield msg
