"""The serializer must be byte-identical to V8 (PROTOCOL.md §5.2)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssbsync.core import jsonv8
from tests.conftest import load_fixture

V8_CASES = load_fixture("messages/v8_json.json")


@pytest.mark.parametrize("case", V8_CASES, ids=[c["name"] for c in V8_CASES])
def test_matches_node_json_stringify(case: dict[str, str]) -> None:
    value = jsonv8.parse(case["input_json"])
    assert jsonv8.stringify_pretty(value) == case["pretty"]
    assert jsonv8.stringify(value) == case["compact"]


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (123456789012345680000.0, "123456789012345680000"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-0.0, "0"),
        (5e-324, "5e-324"),
        (2**53 + 1, "9007199254740992"),
        (0.000001, "0.000001"),
        (1.5e300, "1.5e+300"),
        (100, "100"),
        (-3.25, "-3.25"),
        (10**400, "null"),
    ],
)
def test_number_formatting(number: float, text: str) -> None:
    assert jsonv8.format_number(number) == text


def test_integer_like_keys_come_first_in_numeric_order() -> None:
    value = {"b": 1, "10": 2, "2": 3, "01": 4, "4294967295": 5, "4294967294": 6, "-1": 7}
    keys = [k for k, _ in jsonv8.ordered_items(value)]
    assert keys == ["2", "10", "4294967294", "b", "01", "4294967295", "-1"]


def test_lone_surrogates_are_escaped_lowercase() -> None:
    assert jsonv8.stringify("\ud800x\udfff") == '"\\ud800x\\udfff"'
    assert jsonv8.stringify("😀") == '"😀"'


def test_control_characters_escape_lowercase_and_the_rest_stays_literal() -> None:
    assert jsonv8.stringify("\x00\x1f\x7f\u2028\b") == '"\\u0000\\u001f\x7f\u2028\\b"'


def test_latin1_transform_keeps_the_low_byte_of_each_utf16_unit() -> None:
    assert jsonv8.latin1_bytes("é€中😀") == bytes([0xE9, 0xAC, 0x2D, 0x3D, 0x00])
    assert jsonv8.utf16_length("é€中😀") == 5


def test_nan_and_infinity_are_not_json() -> None:
    for text in ("NaN", "[Infinity]", '{"a": -Infinity}'):
        with pytest.raises(jsonv8.JSONParseError):
            jsonv8.parse(text)


def test_duplicate_keys_keep_the_first_position_and_the_last_value() -> None:
    assert list(jsonv8.parse('{"a": 1, "b": 2, "a": 3}').items()) == [("a", 3), ("b", 2)]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.integers(0, 99).map(str), children, max_size=4)
    ),
    max_leaves=20,
)


def _as_js(value: object) -> object:
    """What JSON.parse(JSON.stringify(value)) gives: every number a double, -0 → 0."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return 0.0 if value == 0 else float(value)
    if isinstance(value, list):
        return [_as_js(v) for v in value]
    assert isinstance(value, dict)
    return {k: _as_js(v) for k, v in jsonv8.ordered_items(value)}


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_round_trip_keeps_values_and_key_order(value: object) -> None:
    compact = jsonv8.stringify(value)
    reparsed = jsonv8.parse(compact)
    assert _as_js(reparsed) == _as_js(value)
    if isinstance(value, dict):
        assert list(reparsed) == [k for k, _ in jsonv8.ordered_items(value)]
    assert jsonv8.stringify(reparsed) == compact
    assert jsonv8.parse(jsonv8.stringify_pretty(value)) == reparsed


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_round_trip_exactly(number: float) -> None:
    text = jsonv8.format_number(number)
    assert float(text) == number or (number == 0 and float(text) == 0)
    assert not text.endswith(".0")
    # ECMAScript switches to exponent form outside [1e-6, 1e21).
    uses_exponent = "e" in text
    assert uses_exponent == (number != 0 and not 1e-6 <= abs(number) < 1e21)


def test_the_standard_library_would_get_it_wrong() -> None:
    """Guards the reason this module exists (pyssb's bug, PROTOCOL.md §15.1)."""
    value = {"n": 1e16, "2": "é"}
    assert json.dumps(value, indent=2) != jsonv8.stringify_pretty(value)
