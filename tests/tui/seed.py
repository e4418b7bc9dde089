"""A small store with everything the screens show, the same on every run.

Synthetic feeds (names, follows, votes, replies with mentions), plus our own feed — an
identity from a fixed seed — that names itself and follows two feeds, a post mentioning a
blob, and a private message to us whose box is made with fixed randomness.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from ssbsync.core import privatebox as pb
from ssbsync.core import synthetic
from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.keys import Keypair, format_secret_file
from ssbsync.core.message import FeedState, Message, create
from ssbsync.node import identity
from ssbsync.node.api import NodeAPI

START_MS = 1_600_000_000_000
NOW = START_MS / 1000 + 3 * 86400  # the clock the screens are shown at: 3 days later
ME = Keypair.from_seed(hashlib.sha256(b"ssbsync-tui-test-me").digest())
AUTHORS = synthetic.author_keys(6, seed=7)
BLOB = "&" + base64.b64encode(hashlib.sha256(b"harbour.jpg").digest()).decode() + ".sha256"
PRIVATE_TEXT = "Meet at the **harbour** at noon; bring the stick."


def _fixed_bytes(count: int) -> bytes:
    return hashlib.sha256(f"box-{count}".encode()).digest()[:count].ljust(count, b"\0")


class _Feed:
    def __init__(self, keys: Keypair, state: FeedState | None, clock_ms: int) -> None:
        self.keys, self.state, self.clock_ms = keys, state, clock_ms
        self.messages: list[Message] = []

    def add(self, content: JSONValue) -> Message:
        self.clock_ms += 60_000
        message = create(self.keys, self.state, content, self.clock_ms)
        self.state = message.state()
        self.messages.append(message)
        return message


def seed_store(folder: Path) -> dict[str, str]:
    """Fill `folder` (identity and store); returns the keys of the handmade messages."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "seed-secret").write_text(format_secret_file(ME))
    identity.import_secret(folder, folder / "seed-secret", lambda _: False)
    generated = list(synthetic.generate(6, 240, seed=7, start_ms=START_MS))
    heads: dict[str, FeedState] = {}
    for message in generated:
        heads[str(message.value["author"])] = message.state()  # type: ignore[index]
    last_ms = START_MS + 240 * 1000
    me = _Feed(ME, None, last_ms)
    friend = _Feed(AUTHORS[0], heads[AUTHORS[0].id], last_ms + 600_000)
    describer = _Feed(AUTHORS[2], heads[AUTHORS[2].id], last_ms)
    me.add({"type": "about", "about": ME.id, "name": "me-on-the-boat"})
    me.add({"type": "contact", "contact": AUTHORS[0].id, "following": True})
    me.add({"type": "contact", "contact": AUTHORS[3].id, "blocking": True})
    photo = me.add(
        {
            "type": "post",
            "text": "# Harbour map\n\nThe *new* map of the harbour, see the photo.",
            "mentions": [
                {"link": BLOB, "name": "harbour.jpg", "size": 48213, "type": "image/jpeg"}
            ],
        }
    )
    reply = friend.add(
        {"type": "post", "text": "Lovely map!", "root": photo.key, "branch": photo.key}
    )
    friend.add({"type": "vote", "vote": {"link": photo.key, "value": 1, "expression": "Like"}})
    secret = {"type": "post", "text": PRIVATE_TEXT, "recps": [ME.id, AUTHORS[0].id]}
    boxed = pb.box_content(secret, [ME.id, AUTHORS[0].id], pb.BoxRandomness.draw(_fixed_bytes))
    private = friend.add(boxed)
    describer.add({"type": "about", "about": AUTHORS[2].id, "description": "fishing co-op"})
    with NodeAPI(folder) as api:
        values = [m.value for m in generated + me.messages + friend.messages + describer.messages]
        report = api.import_messages(values)
        assert report.accepted == len(values), report
    return {"photo": photo.key, "reply": reply.key, "private": private.key}
