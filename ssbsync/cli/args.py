"""Command-line arguments the way ssb-server's CLI reads them (minimist, via muxrpcli).

`--key value` becomes an option; dotted keys nest (`--a.b 1` → {a: {b: 1}}); a repeated flag
makes a list; a bare flag is `true`, `--no-x` is `false`; anything that looks like a number
(`12`, `-3.5`, `1e3`, `0x10`) becomes one, in options and positional arguments alike.
"""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?")
_HEX = re.compile(r"0x[0-9a-f]+", re.IGNORECASE)
_FLAG_LIKE = re.compile(r"(-|--)[^-]")


def _coerce(text: str) -> Any:
    if _HEX.fullmatch(text):
        return int(text, 16)
    if _NUMBER.fullmatch(text):
        number = float(text)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return text


def _set(options: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    target = options
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    current = target.get(last)
    if current is None or isinstance(current, bool):
        target[last] = value
    elif isinstance(current, list):
        current.append(value)
    else:
        target[last] = [current, value]


def parse_args(argv: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """(positional arguments, options) as minimist would produce them."""
    positional: list[Any] = []
    options: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional.extend(_coerce(a) for a in argv[i + 1 :])
            break
        if arg.startswith("--") and len(arg) > 2:
            i += _long_option(arg[2:], argv[i + 1] if i + 1 < len(argv) else None, options)
        elif arg.startswith("-") and len(arg) > 1:
            i += _short_options(arg[1:], argv[i + 1] if i + 1 < len(argv) else None, options)
        else:
            positional.append(_coerce(arg))
        i += 1
    return positional, options


def _long_option(body: str, following: str | None, options: dict[str, Any]) -> int:
    """Apply one `--…` argument; return how many following arguments it consumed."""
    if "=" in body:
        key, _, value = body.partition("=")
        _set(options, key, _coerce(value))
        return 0
    if body.startswith("no-"):
        _set(options, body[3:], False)
        return 0
    if following is not None and not _FLAG_LIKE.match(following):
        _set(options, body, _coerce(following))  # minimist keeps "true" a string here
        return 1
    _set(options, body, True)
    return 0


def _short_options(letters: str, following: str | None, options: dict[str, Any]) -> int:
    for letter in letters[:-1]:
        _set(options, letter, True)
    return _long_option(letters[-1], following, options)
