"""Links a message's content makes to other ids, for the links index (PROTOCOL.md §13).

Follows ssb-msgs `indexLinks` as ssb-db 20 uses it: every top-level content field whose value
is an id, an object with an id in `link`, or an array of those, is a link with `rel` = the
field name (`contact`, `vote`, `root`, `branch`, `mentions`, …). Unlike ssb-server we skip odd
elements (null, numbers) instead of failing to index the message.
"""

from __future__ import annotations

from ssbsync.core.jsonv8 import JSONValue
from ssbsync.core.refs import is_link


def _target(value: JSONValue) -> str | None:
    if isinstance(value, str):
        return value if is_link(value) else None
    if isinstance(value, dict):
        link = value.get("link")
        return link if is_link(link) else None
    return None


def content_links(content: JSONValue) -> list[tuple[str, str]]:
    """(rel, dest) pairs, in content order, without repeats."""
    if not isinstance(content, dict):
        return []
    found: list[tuple[str, str]] = []
    for rel, value in content.items():
        for item in value if isinstance(value, list) else [value]:
            dest = _target(item)
            if dest is not None and (rel, dest) not in found:
                found.append((rel, dest))
    return found
