"""JSON exactly as V8 (Node.js) reads and writes it (PROTOCOL.md §5.2, §5.5, §5.6).

Signatures cover `JSON.stringify(msg, null, 2)` and ids hash it, so a single differing byte
makes every message of a feed unverifiable. What V8 does that Python's `json` does not:

* Object keys that are array indices ("0", "1", … up to 2**32-2, no leading zeros) come first
  in numeric order, at every level; other keys keep their insertion (received) order.
* Every number is an IEEE double, printed with ECMAScript Number::toString: `1e+21`, `1e-7`,
  `100000000000000000000`, `0.000001`; `-0` prints as `0`.
* Strings escape only `"`, `\\`, and code units below 0x20 (lowercase `\\u00xx`); lone
  surrogates print as `\\udxxx` (Node >= 12).

Parsed values: dicts keep key order (duplicates: last value at the first position, as JS);
integers stay Python ints (they are converted to doubles when printed, which is exactly what
JS would have done when parsing); `NaN`/`Infinity` are rejected as JS rejects them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

JSONValue = Any  # dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None

encode_string: Callable[[str], str] = encode_basestring  # C code; lowercase \u00xx escapes
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_ARRAY_INDEX = 4294967294
_SAFE_INT = 2**53


class JSONParseError(ValueError):
    """The text is not JSON that JS's JSON.parse would accept."""


def _reject_constant(name: str) -> None:
    raise JSONParseError(f"{name} is not valid JSON")


def _parse_float(text: str) -> int | float:
    # JS has one number type: 1.0, 1e2 and -0.0 are the integers 1, 100 and 0. Keeping them
    # as ints makes every later printing (and Python's own encoder) agree with V8.
    value = float(text)
    if value.is_integer() and abs(value) <= _SAFE_INT:
        return int(value)
    return value


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float)


def parse(text: str | bytes) -> JSONValue:
    """Parse one JSON text the way JS `JSON.parse` does (bytes are UTF-8, bad bytes replaced)."""
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8", errors="replace")
    try:
        return _decoder.decode(text)
    except (ValueError, RecursionError) as err:
        raise JSONParseError(str(err)) from None


def parse_at(text: str, pos: int) -> tuple[JSONValue, int]:
    """Parse the JSON value that starts at `text[pos]`; return it and where it ends."""
    try:
        value, end = _decoder.raw_decode(text, pos)
    except (ValueError, RecursionError) as err:
        raise JSONParseError(str(err)) from None
    return value, end


def format_number(value: int | float) -> str:
    """ECMAScript Number::toString of `value` converted to a double."""
    if type(value) is int and -_SAFE_INT <= value <= _SAFE_INT:
        return str(value)
    try:
        x = float(value)
    except OverflowError:  # a JS parse of such a literal gives Infinity
        return "null"
    if x != x or x in (float("inf"), float("-inf")):
        return "null"
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) <= _SAFE_INT:
        return str(int(x))
    return _format_shortest(repr(x))


def _format_shortest(text: str) -> str:
    """Lay out Python's shortest round-trip digits the way ECMAScript does."""
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    point = mantissa.find(".")
    digits = mantissa.replace(".", "")
    n = (len(mantissa) if point < 0 else point) + (int(exp_text) if exp_text else 0)
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exponent = ("e+" if e >= 0 else "e-") + str(abs(e))
    if k == 1:
        return sign + digits + exponent
    return sign + digits[0] + "." + digits[1:] + exponent


def _is_array_index(key: str) -> bool:
    if key == "0":
        return True
    return (
        key[:1] in "123456789" and key.isascii() and key.isdigit() and int(key) <= _MAX_ARRAY_INDEX
    )


def ordered_items(obj: dict[str, JSONValue]) -> list[tuple[str, JSONValue]]:
    """Items in V8 property order: array-index keys ascending, then insertion order."""
    items = list(obj.items())
    for key, _ in items:
        if key and key[0] in "0123456789":
            break
    else:
        return items
    index_items = sorted(((k, v) for k, v in items if _is_array_index(k)), key=lambda i: int(i[0]))
    if not index_items:
        return items
    return index_items + [(k, v) for k, v in items if not _is_array_index(k)]


def _pretty(value: JSONValue, indent: str) -> str:
    kind = type(value)
    if kind is str:
        return encode_string(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = indent + "  "
        parts = [encode_string(k) + ": " + _pretty(v, inner) for k, v in ordered_items(value)]
        return "{\n" + inner + (",\n" + inner).join(parts) + "\n" + indent + "}"
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        inner = indent + "  "
        parts = [_pretty(v, inner) for v in value]
        return "[\n" + inner + (",\n" + inner).join(parts) + "\n" + indent + "]"
    return _scalar(value)


def _pretty_and_compact(value: JSONValue, indent: str) -> tuple[str, str]:
    """Both layouts in one walk (the ingest path needs both; sharing the walk and the string
    escaping costs a third of doing them apart)."""
    kind = type(value)
    if kind is str:
        text = encode_string(value)
        return text, text
    if kind is dict:
        if not value:
            return "{}", "{}"
        inner = indent + "  "
        pretty, compact = [], []
        for key, item in ordered_items(value):
            name = encode_string(key)
            p, c = _pretty_and_compact(item, inner)
            pretty.append(name + ": " + p)
            compact.append(name + ":" + c)
        return (
            "{\n" + inner + (",\n" + inner).join(pretty) + "\n" + indent + "}",
            "{" + ",".join(compact) + "}",
        )
    if kind is list or kind is tuple:
        if not value:
            return "[]", "[]"
        inner = indent + "  "
        pairs = [_pretty_and_compact(item, inner) for item in value]
        return (
            "[\n" + inner + (",\n" + inner).join([p for p, _ in pairs]) + "\n" + indent + "]",
            "[" + ",".join([c for _, c in pairs]) + "]",
        )
    text = _scalar(value)
    return text, text


def _compact(value: JSONValue) -> str:
    kind = type(value)
    if kind is str:
        return encode_string(value)
    if kind is dict:
        parts = [encode_string(k) + ":" + _compact(v) for k, v in ordered_items(value)]
        return "{" + ",".join(parts) + "}"
    if kind is list or kind is tuple:
        return "[" + ",".join([_compact(v) for v in value]) + "]"
    return _scalar(value)


def _scalar(value: JSONValue) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return format_number(value)
    raise TypeError(f"not a JSON value: {type(value).__name__}")


# Both layouts of `value` as a member at a given indent, lone surrogates NOT yet escaped: for
# the message signer/verifier, which assembles a document from parts and then passes it
# through `escape_lone_surrogates`. An alias, not a wrapper: it is on the ingest hot path.
pretty_and_compact_fragment: Callable[[JSONValue, str], tuple[str, str]] = _pretty_and_compact


def escape_lone_surrogates(text: str) -> str:
    if text.isascii() or _LONE_SURROGATE.search(text) is None:
        return text
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def stringify_pretty(value: JSONValue) -> str:
    """`JSON.stringify(value, null, 2)` as V8 prints it."""
    return escape_lone_surrogates(_pretty(value, ""))


def stringify(value: JSONValue) -> str:
    """`JSON.stringify(value)` (compact) as V8 prints it."""
    return escape_lone_surrogates(_compact(value))


class RawJSON(str):
    """JSON text that is already exactly what V8 would print: sent as it is, never re-encoded."""

    __slots__ = ()


def utf16_length(text: str) -> int:
    """`text.length` in JS: UTF-16 code units (astral characters count twice)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def utf16_length_and_latin1(text: str) -> tuple[int, bytes]:
    """Both of the above from one UTF-16 encoding (the ingest hot path needs both)."""
    if text.isascii():
        return len(text), text.encode("ascii")
    units = text.encode("utf-16-le", errors="surrogatepass")
    return len(units) // 2, units[::2]


def latin1_bytes(text: str) -> bytes:
    """Node's `Buffer.from(text, "binary")`: the low byte of every UTF-16 code unit (§5.5)."""
    if text.isascii():
        return text.encode("ascii")
    return text.encode("utf-16-le", errors="surrogatepass")[::2]


def utf8_bytes(text: str) -> bytes:
    """Node's `Buffer.from(text)`: UTF-8, with lone surrogates replaced by U+FFFD."""
    if text.isascii():
        return text.encode("ascii")
    return _LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")
