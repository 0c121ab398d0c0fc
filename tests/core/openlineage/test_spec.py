"""The OpenLineage spec is vendored as package data and found without ../shared or a network."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from cmf_core.openlineage import validate

SHARED = Path(__file__).resolve().parents[4] / "shared" / "openlineage-spec"
SPEC = resources.files("cmf_core.openlineage").joinpath("spec")


def test_spec_files_are_package_data_with_license_and_notice() -> None:
    names = {f.name for f in validate.spec_files()}
    assert "OpenLineage.json" in names
    assert {"ParentRunFacet.json", "ErrorMessageRunFacet.json", "SchemaDatasetFacet.json"} <= names
    assert "Apache License" in SPEC.joinpath("LICENSE").read_text(encoding="utf-8")
    readme = SPEC.joinpath("README.md").read_text(encoding="utf-8")
    assert "2-0-2" in readme and "github.com/OpenLineage/OpenLineage" in readme
    assert "OpenLineage" in SPEC.joinpath("NOTICE").read_text(encoding="utf-8")


def test_vendored_spec_is_version_2_0_2() -> None:
    doc = json.loads(SPEC.joinpath("OpenLineage.json").read_text(encoding="utf-8"))
    assert doc["$id"] == validate.SPEC_URL == "https://openlineage.io/spec/2-0-2/OpenLineage.json"


@pytest.mark.skipif(not SHARED.is_dir(), reason="the upstream copy exists only in the dev tree")
def test_vendored_files_are_unchanged_copies_of_upstream() -> None:
    upstream = sorted(p.relative_to(SHARED).as_posix() for p in SHARED.rglob("*.json"))
    for rel in upstream:
        assert SPEC.joinpath(rel).read_bytes() == (SHARED / rel).read_bytes(), rel
    assert SPEC.joinpath("LICENSE").read_bytes() == (SHARED / "LICENSE").read_bytes()


def test_every_schema_ref_resolves_inside_the_package() -> None:
    """No $ref points outside the vendored spec and CMF facet files (so nothing is fetched)."""
    from cmf_core.openlineage.facets import schema_files

    docs = [json.loads(f.read_text(encoding="utf-8"))
            for f in [*validate.spec_files(), *schema_files()]]
    ids = {d["$id"] for d in docs}
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref" and isinstance(v, str):
                    refs.append(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(docs)
    external = {r.split("#")[0] for r in refs if not r.startswith("#")}
    assert external and external <= ids
