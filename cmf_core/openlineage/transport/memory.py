"""MemoryTransport: validate events and keep them in a list (for tests of producers).

Like openlineage-python's test ``NoOutputTransport``, with validation: an invalid event raises
:class:`~cmf_core.errors.InvalidEventError`, as it would against ``cmf serve``. Select it as
``type: cmf_core.openlineage.transport.memory.MemoryTransport``; ``validate: false`` keeps
invalid events too. Read what was emitted with ``client.transport.events`` or
:meth:`MemoryTransport.pop_events`.
"""

from __future__ import annotations

import threading
from typing import Any

import attr
from openlineage.client.transport.transport import Config, Transport

from cmf_core.errors import ConfigError
from cmf_core.openlineage.convert import event_to_dict
from cmf_core.openlineage.validate import validate_event

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@attr.define
class MemoryConfig(Config):
    validate: bool = True

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> MemoryConfig:
        given = {k: v for k, v in params.items() if k not in ("type", "name", "priority")}
        unknown = sorted(set(given) - {"validate"})
        if unknown:
            raise ConfigError(f"unknown MemoryTransport setting(s) {', '.join(unknown)}; "
                              "the only setting is: validate")
        value = given.get("validate", True)
        if isinstance(value, str):
            if value.lower() not in _TRUE | _FALSE:
                raise ConfigError(f"MemoryTransport validate {value!r} must be true or false")
            value = value.lower() in _TRUE
        return cls(validate=bool(value))


class MemoryTransport(Transport):
    """Keep emitted events (as plain JSON dicts) in :attr:`events`."""

    kind = "cmf_memory"
    config_class = MemoryConfig

    def __init__(self, config: MemoryConfig | None = None) -> None:
        self.config = config or MemoryConfig()
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def emit(self, event: Any) -> None:
        data = event_to_dict(event)
        if self.config.validate:
            validate_event(data)
        with self._lock:
            self.events.append(data)

    def pop_events(self) -> list[dict[str, Any]]:
        """The events emitted so far; the list is emptied."""
        with self._lock:
            out, self.events = self.events, []
        return out

    def reset(self) -> None:
        with self._lock:
            self.events.clear()

    def close(self, timeout: float = -1) -> bool:
        return True
