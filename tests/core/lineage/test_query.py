"""Lineage queries: provenance, trees, stage DAGs, fan-in and shared datasets."""

from __future__ import annotations

import pytest

from cmf_core.errors import NotFoundError
from cmf_core.identity import remote_digest
from cmf_core.lineage import Query
from cmf_core.model import Artifact, Event, Execution, Pipeline, Stage
from cmf_core.store import Store


def A(name: str, type: str = "Dataset") -> Artifact:  # noqa: N802
    return Artifact(id=remote_digest(f"s3://b/{name}", "1"), type=type, name=name,
                    uri=f"s3://b/{name}", site="site-a")


def run(store: Store, stage: str, ins: list[Artifact], outs: list[Artifact],
        pipeline: str = "p", **params: object) -> Execution:
    ex = Execution(pipeline=pipeline, stage=stage, site="site-a", params=params).ended()
    store.put([Pipeline(pipeline, "site-a"), Stage(pipeline, stage, "site-a"), *ins, *outs, ex,
               *[Event(ex.id, a.id, "INPUT") for a in ins],
               *[Event(ex.id, a.id, "OUTPUT") for a in outs]])
    return ex


@pytest.fixture
def diamond(store: Store) -> dict[str, Artifact]:
    """raw -> clean -> {feat_a, feat_b} -> train(+ shared labels) -> model -> eval."""
    a = {n: A(n) for n in ["raw", "clean", "feat_a", "feat_b", "labels"]}
    a["model"] = A("model", "Model")
    a["report"] = A("report", "Metrics")
    run(store, "clean", [a["raw"]], [a["clean"]])
    run(store, "fa", [a["clean"]], [a["feat_a"]])
    run(store, "fb", [a["clean"]], [a["feat_b"]])
    run(store, "train", [a["feat_a"], a["feat_b"], a["labels"]], [a["model"]], lr=0.1)
    run(store, "eval", [a["model"], a["labels"]], [a["report"]])
    return a


def test_parents_children_one_hop(store: Store, diamond: dict[str, Artifact]) -> None:
    q = Query(store)
    assert {x.name for x in q.parents(diamond["model"].id)} == {"feat_a", "feat_b", "labels"}
    assert {x.name for x in q.children(diamond["clean"].id)} == {"feat_a", "feat_b"}


def test_transitive(store: Store, diamond: dict[str, Artifact]) -> None:
    q = Query(store)
    assert {x.name for x in q.ancestors(diamond["report"].id)} == {
        "raw", "clean", "feat_a", "feat_b", "labels", "model"}
    assert {x.name for x in q.descendants(diamond["raw"].id)} == {
        "clean", "feat_a", "feat_b", "model", "report"}
    assert {x.name for x in q.ancestors(diamond["report"].id, max_depth=2)} == {
        "model", "labels", "feat_a", "feat_b"}


def test_provenance(store: Store, diamond: dict[str, Artifact]) -> None:
    prov = Query(store).provenance(diamond["model"].id)
    assert sorted(e.stage for e in prov.executions) == ["clean", "fa", "fb", "train"]
    assert {a.name for a in prov.inputs} == {"raw", "clean", "feat_a", "feat_b", "labels"}
    train = next(e for e in prov.executions if e.stage == "train")
    assert train.params == {"lr": 0.1}


def test_tree_marks_shared_upstream(store: Store, diamond: dict[str, Artifact]) -> None:
    tree = Query(store).lineage_tree("model").to_dict()
    [train] = tree["children"]
    assert train["stage"] == "train"
    names = [c["name"] for c in train["children"]]
    assert names == sorted(names) or len(names) == 3
    flat = str(tree)
    assert flat.count("'seen': True") == 1  # "clean" is reached twice, shown once


def test_stage_dag(store: Store, diamond: dict[str, Artifact]) -> None:
    g = Query(store).stage_dag("p")
    assert set(g.edges) == {("clean", "fa"), ("clean", "fb"), ("fa", "train"),
                            ("fb", "train"), ("train", "eval")}
    with pytest.raises(NotFoundError):
        Query(store).stage_dag("nope")


def test_resolve_artifact(store: Store, diamond: dict[str, Artifact]) -> None:
    q = Query(store)
    digest = diamond["raw"].id
    assert q.resolve_artifact(digest[:20]).name == "raw"
    assert q.resolve_artifact("raw").id == digest
    with pytest.raises(NotFoundError, match="no artifact"):
        q.resolve_artifact("zzz")
