"""MemoryTransport: validates and keeps events, loaded by dotted path."""

from __future__ import annotations

from typing import Any

import pytest
from openlineage.client import OpenLineageClient

from cmf_core.errors import ConfigError, InvalidEventError
from cmf_core.openlineage.convert import to_run_events
from cmf_core.openlineage.transport import MEMORY_TRANSPORT
from cmf_core.openlineage.transport.memory import MemoryConfig, MemoryTransport


def test_keeps_valid_events_from_the_client(make_lineage: Any) -> None:
    client = OpenLineageClient(config={"transport": {"type": MEMORY_TRANSPORT}})
    transport = client.transport
    assert isinstance(transport, MemoryTransport)
    lineage = make_lineage()
    for event in to_run_events(lineage):
        client.emit(event)
    events = transport.pop_events()
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert events[0]["run"]["runId"] == lineage.execution.id
    assert transport.events == [] and transport.close()


def test_rejects_invalid_events_unless_told_not_to(make_airflow_events: Any) -> None:
    event = make_airflow_events()[0]
    event["eventTime"] = "2024-05-01"
    strict = MemoryTransport()
    with pytest.raises(InvalidEventError, match="eventTime"):
        strict.emit(event)
    assert strict.events == []
    lax = MemoryTransport(MemoryConfig.from_dict({"validate": "false"}))
    lax.emit(event)
    assert lax.events == [event]
    lax.reset()
    assert lax.events == []


def test_bad_config_is_named() -> None:
    with pytest.raises(ConfigError, match="the only setting is: validate"):
        MemoryConfig.from_dict({"validat": True})
    with pytest.raises(ConfigError, match="must be true or false"):
        MemoryConfig.from_dict({"validate": "maybe"})
