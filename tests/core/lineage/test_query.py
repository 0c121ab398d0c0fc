"""Lineage queries: provenance, trees, stage DAGs, fan-in and shared datasets."""

from __future__ import annotations

import pytest

from cmf_core.errors import InvalidInputError, NotFoundError
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


def test_execution_by_unique_id_prefix(store: Store) -> None:
    ids = ["01a221a9-3db5-7c33-aa7f-e87f33f5d528", "01a221a9-3db5-7c39-8000-000000000001",
           "01a221a9-3db5-7c3a-8000-000000000002", "01a221b2-0000-7000-8000-000000000003"]
    store.put([Pipeline("p", "site-a"), Stage("p", "s", "site-a"),
               *[Execution(pipeline="p", stage="s", site="site-a", id=i) for i in ids]])
    q = Query(store)
    for i in ids:
        assert q.execution(i).id == i
        assert q.execution(i.upper()).id == i
    assert q.execution("01a221a9-3db5-7c33").id == ids[0]
    assert q.execution("01a221a9-3db5-7c39").id == ids[1]  # not 7c3a: "9" < ":" < "a"
    assert q.execution("01a221b").id == ids[3]
    assert [e.id for e in q.execution_matches("01a221a9-")] == ids[:3]
    with pytest.raises(InvalidInputError, match=f"ambiguous: it matches execution {ids[0]} "
                                                f"\\(p/s\\); execution {ids[1]}"):
        q.execution("01a2")
    with pytest.raises(NotFoundError, match="at least 4 hex characters"):
        q.execution("01a")
    with pytest.raises(NotFoundError, match="no execution with id '01a3'"):
        q.execution("01a3")


def test_resolve_artifact_by_short_prefix_and_path_basename(store: Store) -> None:
    arts = [Artifact(id=remote_digest(f"s3://b/{n}", "1"), type="Model", name=n,
                     uri=f"s3://b/{n}", site="site-a")
            for n in ("/tmp/a/model.pkl", "/tmp/b/model.pkl", "/tmp/a/data_1.csv",
                      "/tmp/a/data%1.csv")]
    store.put(arts)
    q = Query(store)
    for a in arts:
        hexpart = a.id.split(":", 1)[1]
        assert q.resolve_artifact(f"version:{hexpart[:4]}").id == a.id
        assert q.resolve_artifact(hexpart[:6].upper()).id == a.id
    # an absolute path (as Airflow and Prefect record them) answers to its last part
    assert q.resolve_artifact("data_1.csv").id == arts[2].id
    assert q.resolve_artifact("data%1.csv").id == arts[3].id  # LIKE wildcards are literal
    with pytest.raises(InvalidInputError, match=r"/tmp/a/model\.pkl.*/tmp/b/model\.pkl"):
        q.resolve_artifact("model.pkl")
    with pytest.raises(NotFoundError, match="no artifact"):
        q.resolve_artifact("MODEL.PKL")
    with pytest.raises(NotFoundError, match="at least 4 hex characters"):
        q.resolve_artifact("version:" + arts[0].id.split(":", 1)[1][:3])


def chain(store: Store, steps: int) -> list[Artifact]:
    """a0 -> step -> a1 -> step -> ... -> a<steps>, written in one put."""
    arts = [A(f"a{i}") for i in range(steps + 1)]
    records: list[object] = [Pipeline("p", "site-a"), Stage("p", "step", "site-a"), *arts]
    for i in range(steps):
        ex = Execution(pipeline="p", stage="step", site="site-a").ended()
        records += [ex, Event(ex.id, arts[i].id, "INPUT"), Event(ex.id, arts[i + 1].id, "OUTPUT")]
    store.put(records)
    return arts


def test_tree_of_a_chain_deeper_than_the_recursion_limit(store: Store) -> None:
    """A long history (a model retrained from the previous one, 1200 times) is a tree 2400
    nodes deep: built and turned into JSON data without Python's recursion limit (1000)."""
    arts = chain(store, 1200)
    node = Query(store).lineage_tree(arts[-1].id)
    data = node.to_dict()
    names = []
    while True:
        names.append(node.record.name)
        assert data["id"] == node.record.id
        if not node.children:
            break
        [ex] = node.children
        [data] = data["children"]
        assert data["kind"] == "execution"
        [node] = ex.children
        [data] = data["children"]
    assert names == [f"a{i}" for i in range(1200, -1, -1)]
