"""Hypothesis strategies for federation tests: random records of every kind."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from hypothesis import strategies as st

from cmf_core.identity import uuid7
from cmf_core.model import (
    Artifact,
    EnergyRecord,
    Event,
    Execution,
    Metric,
    Pipeline,
    Record,
    Stage,
)

_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
text = st.text(_chars, min_size=1, max_size=12).filter(lambda s: s.strip() != "")
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | floats | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8)
props = st.dictionaries(text, json_values, max_size=4)
times = st.floats(0, 2e9, allow_nan=False)


@st.composite
def record_sets(draw: st.DrawFn) -> list[Record]:
    tag = uuid.uuid4().hex[:8]
    site = draw(text)
    pipe = Pipeline(f"p-{tag}-{draw(text)}", site, draw(times), draw(props), draw(props))
    stage = Stage(pipe.name, draw(text), site, draw(times), draw(props), draw(props))
    arts = [Artifact(id="sha256:" + hashlib.sha256(f"{tag}{i}".encode()).hexdigest(),
                     type=draw(st.sampled_from(["Dataset", "Model", "Metrics"])),
                     name=draw(text), uri=draw(text), site=site, created_at=draw(times),
                     properties=draw(props), custom_properties=draw(props))
            for i in range(draw(st.integers(1, 3)))]
    ex = Execution(pipe.name, stage.name, site, id=uuid7(),
                   status=draw(st.sampled_from(["running", "completed", "failed"])),
                   started_at=(start := draw(times)),
                   ended_at=draw(st.none() | st.floats(start, 2e9, allow_nan=False)),
                   params=draw(props), properties=draw(props), custom_properties=draw(props),
                   error=draw(st.none() | text))
    events = [Event(ex.id, a.id, draw(st.sampled_from(["INPUT", "OUTPUT"]))) for a in arts]
    metrics = [Metric(ex.id, f"m{i}", draw(floats), step=draw(st.none() | st.integers(0, 99)),
                      timestamp=draw(times)) for i in range(draw(st.integers(0, 3)))]
    amounts = st.floats(0, allow_infinity=False, allow_nan=False)
    energy = [EnergyRecord(ex.id, site, draw(amounts), draw(amounts), draw(props))]
    return [pipe, stage, *arts, ex, *events, *metrics, *energy]


def key(r: Record) -> tuple[Any, ...]:
    if isinstance(r, Event):
        return ("event", r.execution_id, r.artifact_id, r.type.value)
    if isinstance(r, Metric):
        return ("metric", r.execution_id, r.name, r.step)
    if isinstance(r, EnergyRecord):
        return ("energy", r.execution_id)
    if isinstance(r, Stage):
        return ("stage", r.pipeline, r.name)
    if isinstance(r, Pipeline):
        return ("pipeline", r.name)
    return (type(r).__name__.lower(), r.id)


