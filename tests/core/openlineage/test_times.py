from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmf_core.errors import InvalidInputError
from cmf_core.openlineage.times import format_time, is_date_time, parse_time


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-01T12:00:00Z", 1714564800.0),
    ("2024-05-01T12:00:00.25Z", 1714564800.25),
    ("2024-05-01T14:00:00.250000+02:00", 1714564800.25),
    ("2024-05-01t11:30:00-00:30", 1714564800.0),
    ("2024-05-01T12:00:00.123456789Z", 1714564800.123456),  # nanoseconds truncated
])
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", [
    "2024-05-01", "2024-05-01T12:00:00", "2024-05-01T12:00Z", "2024-02-30T12:00:00Z",
    "2024-05-01T24:00:00Z", "2024-05-01 12:00:00Z", "yesterday", "",
    # only ASCII digits, and nothing after the offset (not even the newline "$" allowed)
    "\u0662\u0660\u0662\u0664-01-01T00:00:00Z", "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",
    "2024-01-01T00:00:00Z\n", "2024-01-01T00:00:00+01:00\n",
])
def test_rejects_what_rfc3339_rejects(text: str) -> None:
    assert not is_date_time(text)
    with pytest.raises(InvalidInputError, match=r"eventTime: .* needs a date, a time and a UTC"):
        parse_time(text)


@pytest.mark.parametrize("text", [
    "0000-01-01T00:00:00Z", "0000-02-29T12:00:00Z", "0001-01-01T00:00:00+00:01",
    "9999-12-31T23:59:59-00:01", "9999-12-31T23:59:59.999999Z",
])
def test_times_outside_years_1_to_9999_are_named(text: str) -> None:
    """RFC 3339 allows year 0 (and offsets past either end); a datetime does not, and
    format_time could not write them back."""
    assert is_date_time(text)
    with pytest.raises(InvalidInputError, match=r"^after: .* is out of range; a time must be "
                                                 "from 0001-01-01T00:00:00Z"):
        parse_time(text, "after")
    assert format_time(parse_time("0001-01-01T00:00:00Z")).startswith("0001-01-01T00:00:00")
    assert format_time(parse_time("9999-12-31T23:59:59Z")).startswith("9999-12-31T23:59:59")


@given(st.integers(min_value=0, max_value=4_102_444_800 * 1_000_000))
def test_whole_microseconds_survive_a_round_trip(micros: int) -> None:
    ts = micros / 1_000_000
    text = format_time(ts)
    assert is_date_time(text)
    assert parse_time(text) == ts
