"""Event times: RFC 3339 text on the wire, Unix seconds (float) in CMF records.

Times travel at microsecond precision: :func:`format_time` then :func:`parse_time` gives back
any Unix time that is a whole number of microseconds exactly; digits past the microsecond
(Java producers send nanoseconds) are truncated.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re

from cmf_core.errors import InvalidInputError

_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))\Z"  # ASCII digits only; \Z: no trailing newline
)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_FIRST = -62135596800  # 0001-01-01T00:00:00Z, the first second a datetime can hold
_END = 253402300800  # 10000-01-01T00:00:00Z


def _fields(text: str) -> tuple[int, ...] | None:
    return _parsed(text) if isinstance(text, str) else None


@functools.lru_cache(maxsize=4096)  # each event's time is checked, then parsed; bursts share
def _parsed(text: str) -> tuple[int, ...] | None:
    m = _RFC3339.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]
            and hour <= 23 and minute <= 59 and second <= 59):
        return None
    micros = int((m.group(7) or "0")[:6].ljust(6, "0"))
    offset = 0
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        offset = (oh * 60 + om) * 60 * (1 if m.group(9) == "+" else -1)
    return year, month, day, hour, minute, second, micros, offset


def is_date_time(text: str) -> bool:
    """True if ``text`` is an RFC 3339 date-time: a date, a time and a UTC offset."""
    return _fields(text) is not None


def parse_time(text: str, what: str = "eventTime") -> float:
    """Unix seconds of an RFC 3339 date-time, or :class:`InvalidInputError` naming ``what``
    (also for a time outside years 1 to 9999 in UTC, which :func:`is_date_time` accepts)."""
    f = _fields(text)
    if f is None:
        raise InvalidInputError(
            f"{what}: {text!r} is not an RFC 3339 date-time; it needs a date, a time and a UTC "
            "offset, e.g. '2024-05-01T12:00:00Z'"
        )
    year, month, day, hour, minute, second, micros, offset = f
    ts = float(_END)  # year 0: RFC 3339 allows it, datetime does not
    if year >= 1:
        days = dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL
        seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset
        ts = (seconds * 1_000_000 + micros) / 1_000_000
    if not _FIRST <= ts < _END:
        raise InvalidInputError(
            f"{what}: {text!r} is out of range; a time must be from 0001-01-01T00:00:00Z to "
            "9999-12-31T23:59:59Z"
        )
    return ts


_SPACE_OFFSET = re.compile(r"([0-9]) ([0-9]{2}:[0-9]{2})\Z")


def parse_query_time(text: str | None, what: str) -> float | None:
    """:func:`parse_time` of a URL query parameter (``None`` stays ``None``). An unencoded
    ``+`` of a UTC offset (``?since=2024-05-01T12:00:00+05:30``, as curl sends what was typed)
    reaches the server as a space, which is read as the ``+`` it was."""
    if text is None:
        return None
    return parse_time(_SPACE_OFFSET.sub(r"\1+\2", text), what)


def format_time(ts: float) -> str:
    """RFC 3339 text (UTC, microseconds) of Unix seconds ``ts``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds")
