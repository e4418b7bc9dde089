"""An incremental reader of a stream of JSON values (sans-IO).

Reads what `ssb-server log` prints (pretty objects separated by blank lines), JSON lines, or
values simply concatenated. Text goes in with `feed()`, complete values come out. A value that
cannot be parsed comes out as `BadJSON` and reading resumes at the next line that starts a
new object, so one damaged record does not lose the rest of a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ssbsync.core.jsonv8 import JSONParseError, JSONValue, parse_at

MAX_VALUE_CHARS = 1 << 20  # far above any message (8192 UTF-16 units, pretty-printed)
_NEXT_OBJECT = re.compile(r"\n(?=\{)")
_SPACE = re.compile(r"[ \t\r\n]*")


@dataclass(frozen=True, slots=True)
class BadJSON:
    text: str  # the unreadable text (truncated)
    detail: str


class JSONStreamReader:
    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> list[JSONValue | BadJSON]:
        self._buffer += text
        return self._drain(final=False)

    def close(self) -> list[JSONValue | BadJSON]:
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[JSONValue | BadJSON]:
        out: list[JSONValue | BadJSON] = []
        buffer, pos = self._buffer, 0
        while True:
            match = _SPACE.match(buffer, pos)
            pos = match.end() if match else pos
            if pos >= len(buffer):
                break
            try:
                value, end = parse_at(buffer, pos)
            except JSONParseError as err:
                resync = _NEXT_OBJECT.search(buffer, pos + 1)
                if resync is None and not final and len(buffer) - pos < MAX_VALUE_CHARS:
                    break  # probably incomplete: wait for more text
                stop = resync.end() if resync else len(buffer)
                out.append(BadJSON(buffer[pos:stop][:200], str(err)))
                pos = stop
                continue
            if end == len(buffer) and not final and buffer[pos] not in '{["':
                break  # a bare number may continue in the next chunk
            out.append(value)
            pos = end
        self._buffer = buffer[pos:]
        return out
