"""CMF facets are OpenLineage custom facets: producer, versioned schema URL, schema beside them."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from openlineage.client.generated.base import DatasetFacet, RunFacet

from cmf_core.errors import InvalidEventError
from cmf_core.openlineage import facets
from cmf_core.openlineage.convert import event_to_dict
from cmf_core.openlineage.validate import FacetLocation, known_facets, validate_facet

EXAMPLES = {
    "cmf_params": facets.ParamsRunFacet(params={"lr": 0.1, "layers": [3, 2]}),
    "cmf_metrics": facets.MetricsRunFacet(metrics=[facets.MetricPoint("acc", 0.9),
                                                   facets.MetricPoint("loss", 0.3, 2, 1.5)]),
    "cmf_energy": facets.EnergyRunFacet(energy_kwh=0.5, co2e_kg=0.1, details={"pue": 1.3}),
    "cmf_site": facets.SiteRunFacet(name="hpc-a"),
    "cmf_execution": facets.ExecutionRunFacet(status="completed", pipeline="p", stage="s"),
    "cmf_artifact": facets.ArtifactDatasetFacet(digest="sha256:" + "a" * 64, type="Model"),
}


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_facet_has_producer_and_its_own_versioned_schema(key: str) -> None:
    facet = EXAMPLES[key]
    cls = type(facet)
    name = cls.__name__
    data = event_to_dict(facet)
    assert data["_producer"] == facets.PRODUCER
    assert data["_schemaURL"] == cls._get_schema() == (
        f"https://cmf-foundation.dev/spec/facets/1-0-0/{name}.json#/$defs/{name}")
    schema = json.loads(resources.files("cmf_core.openlineage.facets")
                        .joinpath(f"{name}.json").read_text(encoding="utf-8"))
    assert schema["$id"] == cls._get_schema().split("#")[0]
    assert schema["properties"] == {key: {"$ref": f"#/$defs/{name}"}}
    base = DatasetFacet if key == "cmf_artifact" else RunFacet
    assert issubclass(cls, base)
    where = FacetLocation.DATASET if key == "cmf_artifact" else FacetLocation.RUN
    assert key in known_facets(where)
    validate_facet(where, key, data)


def test_registries_list_every_facet() -> None:
    assert set(facets.CMF_RUN_FACETS) | set(facets.CMF_DATASET_FACETS) == set(EXAMPLES)
    assert [f.name for f in facets.schema_files()] == sorted(
        f"{type(f).__name__}.json" for f in EXAMPLES.values())


def test_explicit_producer_is_kept() -> None:
    assert event_to_dict(facets.SiteRunFacet(name="a", producer="https://x.org/p"))[
        "_producer"] == "https://x.org/p"


@pytest.mark.parametrize(("key", "bad", "field"), [
    ("cmf_energy", {"energy_kwh": -1, "co2e_kg": 0}, "energy_kwh: -1 is less than the minimum"),
    ("cmf_energy", {"energy_kwh": 1}, "co2e_kg: required field is missing"),
    ("cmf_metrics", {"metrics": [{"name": "x", "value": "high"}]}, "metrics[0].value: 'high'"),
    ("cmf_metrics", {"metrics": [{"name": "x", "value": 1, "step": -2}]}, "metrics[0].step"),
    ("cmf_execution", {"status": "done", "pipeline": "p", "stage": "s"}, "status: 'done' is not"),
    ("cmf_params", {"params": [1, 2]}, "params: [1, 2] is not of type 'object'"),
])
def test_bad_cmf_facets_are_rejected_naming_the_field(key: str, bad: dict[str, object],
                                                      field: str) -> None:
    facet = {"_producer": facets.PRODUCER, "_schemaURL": "https://x.org/s.json", **bad}
    with pytest.raises(InvalidEventError, match=f"run facet {key}.{field}".replace("[", r"\[")
                       .replace("]", r"\]")):
        validate_facet("run", key, facet)


def test_artifact_digest_must_be_a_cmf_digest() -> None:
    facet = event_to_dict(facets.ArtifactDatasetFacet(digest="md5:abc", type="Dataset"))
    with pytest.raises(InvalidEventError, match=r"dataset facet cmf_artifact.digest: 'md5:abc'"):
        validate_facet("dataset", "cmf_artifact", facet)
