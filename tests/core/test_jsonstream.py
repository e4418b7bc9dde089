"""Reading JSON streams: whole, byte by byte, and with damage (ARCHITECTURE.md, Tests)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ssbsync.core.jsonstream import BadJSON, JSONStreamReader

LOG_OUTPUT = '{\n  "key": "%a",\n  "value": {\n    "x": 1\n  }\n}\n\n{\n  "key": "%b"\n}\n\n'


def _read(text: str, step: int) -> list[object]:
    reader = JSONStreamReader()
    out: list[object] = []
    for i in range(0, len(text), step):
        out += reader.feed(text[i : i + step])
    return out + reader.close()


def test_pretty_objects_separated_by_blank_lines() -> None:
    expected = [{"key": "%a", "value": {"x": 1}}, {"key": "%b"}]
    assert _read(LOG_OUTPUT, len(LOG_OUTPUT)) == expected
    assert _read(LOG_OUTPUT, 1) == expected


def test_json_lines_and_concatenated_values() -> None:
    assert _read('{"a":1}\n{"b":2}{"c":3} 42', 5) == [{"a": 1}, {"b": 2}, {"c": 3}, 42]


def test_damage_is_reported_and_reading_resumes_at_the_next_object() -> None:
    out = _read('{"a":1}\n{"broken": \n{"c":3}\n{"d": NaN}\n{"e":5}', 4)
    assert out[0] == {"a": 1} and out[2] == {"c": 3} and out[4] == {"e": 5}
    assert isinstance(out[1], BadJSON) and isinstance(out[3], BadJSON)


def test_truncated_tail_is_reported_at_close() -> None:
    out = _read('{"a":1}\n{"b": [1, 2', 3)
    assert out[0] == {"a": 1} and isinstance(out[1], BadJSON)


@given(st.text(max_size=200), st.integers(1, 17))
def test_any_text_gives_values_or_bad_json_never_an_exception(text: str, step: int) -> None:
    items = _read(text, step)
    assert items == _read(text, len(text) or 1)  # chunking never changes the result
    for item in items:
        if isinstance(item, BadJSON):
            assert item.detail
