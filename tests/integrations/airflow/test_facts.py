"""What a task try is: its error, as the execution's error and the raw event's stack trace."""

from __future__ import annotations

from cmf_airflow.facts import error_text


def test_error_text_keeps_type_message_and_traceback() -> None:
    try:
        raise ValueError("bad input: 42")
    except ValueError as e:
        message, stack = error_text(e)
    assert message == "ValueError: bad input: 42"
    assert stack is not None and "raise ValueError" in stack
    assert error_text("killed by the scheduler") == ("killed by the scheduler", None)
