"""The only place where errors inside orchestrator hooks are swallowed.

Hook boundaries wrap their bodies with :func:`never_raise` (a decorator) or call
:func:`run_bounded` (a time cap). A failure gets one WARNING saying the task is unaffected, the
traceback at DEBUG, and a counter (:data:`FAILURES`) that tests and ``cmf doctor`` can read.
Library code elsewhere raises normally.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("cmf")

FAILURES: Counter[str] = Counter()
T = TypeVar("T")


def exception_text(exc: BaseException) -> str:
    """``"Type: message"`` (``"Type"`` when it has none) of a user's exception; never raises,
    though its ``__str__`` may (the message is then ``<exception str() failed>``, as Python's
    own traceback says)."""
    try:
        text = str(exc)
    except Exception:
        text = "<exception str() failed>"
    # a message-less exception (KeyboardInterrupt from a notebook's stop button) is its name
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def report(where: str, exc: BaseException, outcome: str = "") -> None:
    """Log and count a failure at ``where``; ``outcome`` says what became of the record (e.g.
    "the event is spooled for retry"), and only then is anything said about it."""
    FAILURES[where] += 1
    log.warning("cmf: %s failed (%s: %s). This has no impact on the task itself%s.", where,
                type(exc).__name__, exc, f"; {outcome}" if outcome else "")
    log.debug("cmf: %s traceback", where, exc_info=exc)


class Repeats:
    """The problem last said at WARNING, per kind: the same again is a repeat, to be counted
    and logged at DEBUG rather than flood a log (once per event, per request), until it is
    forgotten (the problem went away) or ``again_after_s`` passed since it was said."""

    def __init__(self, again_after_s: float = math.inf) -> None:
        self.again_after_s = again_after_s
        self._said: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def seen(self, kind: str, text: str = "") -> bool:
        """Whether ``text`` repeats what was last said for ``kind``; if not, it is now that."""
        now = time.monotonic()
        with self._lock:
            last = self._said.get(kind)
            if last is not None and last[0] == text and now - last[1] < self.again_after_s:
                return True
            self._said[kind] = (text, now)
            return False

    def forget(self, *kinds: str) -> None:
        """The problems of ``kinds`` went away: the next one is said again."""
        with self._lock:
            for kind in kinds:
                self._said.pop(kind, None)


def never_raise(where: str, default: Any = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: call the function, log and count any Exception, return ``default``."""

    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                report(where, e)
                return default

        return wrapper

    return deco


class Timeout(Exception):
    """A bounded call did not finish in time (it keeps running in its daemon thread)."""


def run_bounded(fn: Callable[[], T], timeout: float, where: str) -> T:
    """Run ``fn`` in a daemon thread and wait at most ``timeout`` seconds.

    Raises :class:`Timeout` when it overruns (the thread is left to finish on its own; it is a
    daemon so it never keeps the process alive) and re-raises whatever ``fn`` raised.
    """
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as e:  # our own worker thread: never let anything escape
            error.append(e)

    t = threading.Thread(target=target, name=f"cmf-{where}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise Timeout(f"{where} took longer than {timeout:.1f} s")
    if error:
        raise error[0]
    return result[0]


def renew_after_fork(obj: Any, renew: Callable[[Any], None]) -> None:
    """Call ``renew(obj)`` in every child forked from this process while ``obj`` lives: a
    background worker's thread does not follow a fork, a lock its thread held then is never
    released, and jobs queued for the parent are the parent's to run."""
    ref = weakref.ref(obj)

    def after() -> None:
        alive = ref()
        if alive is not None:
            renew(alive)

    os.register_at_fork(after_in_child=after)
