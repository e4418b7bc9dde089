"""How values read on screen: short ids, sizes, times, one-line summaries of messages.

Pure functions (the clock comes in as `now`), so every screen and snapshot is repeatable.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from ssbsync.node.browse import CarryFeed, FeedSummary, MessageView

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def short_id(ref: str, length: int = 8) -> str:
    """`@AbCdEfGh…` — enough of an id to tell feeds apart on an 80-column screen."""
    return ref[: length + 1] + "…" if len(ref) > length + 1 else ref


def feed_label(feed: str, names: Mapping[str, str]) -> str:
    return names.get(feed) or short_id(feed)


def size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def ago(ms: float | None, now: float) -> str:
    """A claimed timestamp (ms) relative to `now` (s): `5m`, `3h`, `12d`, or a date."""
    if ms is None or ms <= 0:
        return "—"
    seconds = now - ms / 1000
    if seconds < 0:
        return "future"
    if seconds < HOUR:
        return f"{int(seconds // MINUTE)}m ago"
    if seconds < DAY:
        return f"{int(seconds // HOUR)}h ago"
    if seconds < 60 * DAY:
        return f"{int(seconds // DAY)}d ago"
    return date(ms)


def date(ms: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


def relation(feed: FeedSummary, me: str) -> str:
    if feed.id == me:
        return "you"
    if feed.blocking:
        return "blocked"
    return "follow" if feed.following else ""


def hops(feed: FeedSummary | CarryFeed) -> str:
    if feed.hops is None:
        return "—"
    return str(feed.hops) if feed.hops >= 0 else "x"


def summary(view: MessageView, names: Mapping[str, str]) -> str:
    """One line for a message that is not a post: what it says, in words."""
    content = view.content
    if not isinstance(content, dict):
        return "a private message (not for us)"
    kind = view.type or "?"
    if kind == "vote":
        vote = content.get("vote")
        link = vote.get("link") if isinstance(vote, dict) else None
        expression = vote.get("expression") if isinstance(vote, dict) else None
        return f"{expression or 'voted'} on {short_id(str(link))}"
    if kind == "contact":
        target = feed_label(str(content.get("contact")), names)
        if content.get("blocking"):
            return f"blocks {target}"
        return f"follows {target}" if content.get("following") else f"unfollows {target}"
    if kind == "about":
        about = feed_label(str(content.get("about")), names)
        changes = [f"{k} = {content[k]!s:.40}" for k in ("name", "description") if k in content]
        return f"about {about}: {', '.join(changes) or 'details'}"
    return f"a {kind} message"


def preview(text: str, limit: int = 320) -> str:
    """The start of a post for lists: cut at a word, marked when cut."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"
