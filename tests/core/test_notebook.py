"""What a data scientist sees in a notebook: the logger, its executions, records, provenance
and lineage as a notebook shows them, runs as rows (and a DataFrame), a stopped cell, and the
kernel's running event loop.

IPython is not installed here (and is no dependency of CMF): its display calls
``_repr_pretty_`` on the first class of an object's MRO whose own ``__dict__`` has
``_repr_pretty_`` or ``__repr__``, and ``_repr_html_`` when present; the tests check both the
way IPython looks them up and what they return, with a stand-in for its printer's ``text``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from cmf_core import Cmf
from cmf_core.errors import InvalidInputError
from cmf_core.identity import remote_digest
from cmf_core.lineage import Query
from cmf_core.lineage.query import TREE_LINES
from cmf_core.model import (
    Artifact,
    ArtifactLocation,
    EnergyRecord,
    Event,
    Execution,
    ExecutionStatus,
    Metric,
    Pipeline,
    Stage,
)
from cmf_core.store import Store


class Printer:
    """Stands in for IPython's RepresentationPrinter: collects what ``text`` is given."""

    def __init__(self) -> None:
        self.out = ""

    def text(self, s: str) -> None:
        self.out += s


def notebook_text(obj: Any) -> str:
    """What IPython shows as text/plain: the first class of the MRO with ``_repr_pretty_`` or
    ``__repr__`` in its own ``__dict__`` decides (IPython.lib.pretty)."""
    for cls in type(obj).__mro__:
        if "_repr_pretty_" in cls.__dict__:
            p = Printer()
            obj._repr_pretty_(p, False)
            return p.out
        if cls is not object and "__repr__" in cls.__dict__:
            return repr(obj)
    return repr(obj)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.csv").write_text("a,b\n1,2\n")
    (tmp_path / "model.pkl").write_bytes(b"model")
    return tmp_path


def train(cmf: Cmf, lr: float = 0.1, auc: float = 0.91) -> Execution:
    with cmf.create_execution("train", params={"lr": lr, "epochs": 10}) as run:
        run.log_dataset("train.csv", "input")
        run.log_model("model.pkl", "output", model_framework="sklearn")
        for step in range(3):
            run.log_metrics("loss", {"train": 1.0 / (step + 1)})
        run.log_execution_metrics("eval", {"auc": auc})
    return cmf.query.execution(run.id)


def test_records_show_a_summary_line_not_every_field(workdir: Path) -> None:
    cmf = Cmf(workdir / "cmf.db", pipeline_name="churn", measure_energy=False)
    ex = train(cmf)
    art = cmf.query.resolve_artifact("model.pkl")
    metrics = cmf.query.metrics([ex.id])
    for text in (str(ex), notebook_text(ex)):
        assert text.startswith(f"Execution churn/train {ex.id} @")
        assert "completed in" in text and "lr=0.1" in text and "epochs=10" in text
        assert "mappingproxy" not in text and "cmf.process" not in text  # no wall of fields
    for text in (str(art), notebook_text(art)):
        assert text == f"Artifact Model model.pkl {art.id[:19]} @{art.site} ({art.uri})"
    assert notebook_text(metrics[-1]) == (f"Metric loss.train = {1 / 3!r} step 2 (execution "
                                          f"{ex.id})")
    assert notebook_text(metrics[0]) == f"Metric auc = 0.91 (execution {ex.id})"
    # repr() stays every field, for debugging
    assert repr(ex).startswith("Execution(pipeline='churn', stage='train'")
    cmf.close()


@pytest.mark.parametrize("record", [
    Pipeline("p", "s"), Stage("p", "st", "s"),
    Execution(pipeline="p", stage="st", site="s"),
    Artifact(id=remote_digest("s3://b/x", "1"), type="Dataset", name="x", uri="s3://b/x",
             site="s"),
    ArtifactLocation(artifact_id=remote_digest("s3://b/x", "1"), site="s", uri="s3://b/x"),
    Event("01900000-0000-7000-8000-000000000000", remote_digest("s3://b/x", "1"), "INPUT"),
    Metric("01900000-0000-7000-8000-000000000000", "auc", 0.5),
    EnergyRecord("01900000-0000-7000-8000-000000000000", "s", 0.002, 0.001),
], ids=lambda r: type(r).__name__)
def test_every_record_class_is_shown_by_its_summary_in_a_notebook(record: Any) -> None:
    """IPython takes the dataclass ``__repr__`` unless ``_repr_pretty_`` is in the record
    class's own ``__dict__``: a mixin's alone is never reached."""
    assert "_repr_pretty_" in type(record).__dict__
    text = notebook_text(record)
    assert text == str(record)
    assert text.startswith(type(record).__name__ + " ") and "=" not in text.split(" ")[0]
    assert "mappingproxy" not in text and "(" + "execution_id=" not in text


def test_a_list_of_executions_is_one_line_each_with_a_failed_ones_error() -> None:
    ok = Execution(pipeline="p", stage="train", site="s", params={"lr": 0.1}).ended()
    bad = Execution(pipeline="p", stage="train", site="s", started_at=1000.0).ended(
        ExecutionStatus.FAILED, error="ValueError: bad input\nTraceback ...", ended_at=1002.5)
    running = Execution(pipeline="p", stage="train", site="s",
                        params={f"p{i}": i for i in range(10)})
    assert str(bad).endswith("failed in 2.50 s: ValueError: bad input...")
    assert "running since" in str(running) and ", ... 6 more)" in str(running)
    assert "\n" not in str(ok) + str(bad) + str(running)


def test_the_logger_and_a_handle_say_what_runs_without_reading_the_store(workdir: Path
                                                                          ) -> None:
    cmf = Cmf(workdir / "cmf.db", pipeline_name="churn", measure_energy=False)
    assert notebook_text(cmf) == (f"<Cmf pipeline='churn' store='sqlite:///{workdir}/cmf.db' "
                                  f"site='{cmf.site}' running: none>")
    first = cmf.create_execution("train")
    assert f"running: train {first.id}>" in repr(cmf)
    assert notebook_text(first) == f"<ExecutionHandle churn/train {first.id} running>"
    second = cmf.create_execution("train")  # the cell run again: the first is aborted
    assert repr(first).startswith(f"<ExecutionHandle churn/train {first.id} was ended as "
                                  f"aborted when create_execution('train') started")
    second.finalize()
    assert repr(second).endswith(f"{second.id} ended (completed)>")
    cmf.close()
    # its store is closed: a repr that read it would fail
    assert repr(cmf).endswith(" closed>")
    assert repr(cmf.query).startswith("Query(store='sqlite:///")


def test_provenance_shows_executions_params_metrics_and_inputs(workdir: Path) -> None:
    cmf = Cmf(workdir / "cmf.db", pipeline_name="churn", measure_energy=False)
    ex = train(cmf)
    prov = cmf.query.provenance("model.pkl")
    text = notebook_text(prov)
    assert text.splitlines()[0] == f"Provenance of {prov.artifact}"
    assert f"churn/train {ex.id}" in text and "metrics: auc=0.91" in text
    assert "1 input:" in text and "Dataset train.csv sha256:" in text
    html = prov._repr_html_()
    assert "<table>" in html and f"<td>{ex.id}</td>" in html and "<td>auc=0.91</td>" in html
    assert "<td>epochs=10, lr=0.1</td>" in html and "<td>train.csv</td>" in html
    cmf.close()


def test_provenance_html_escapes_recorded_text(store: Store) -> None:
    art = Artifact(id=remote_digest("s3://b/m", "1"), type="Model", name="<b>m</b>",
                   uri="s3://b/m", site="s")
    ex = Execution(pipeline="p", stage="<script>", site="s",
                   params={"q": "<img src=x onerror=alert(1)>"}).ended()
    store.put([Pipeline("p", "s"), Stage("p", "<script>", "s"), art, ex,
               Event(ex.id, art.id, "OUTPUT")])
    html = Query(store).provenance(art.id)._repr_html_()
    assert "<script>" not in html and "<img" not in html and "<b>m</b>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;m&lt;/b&gt;" in html


def test_a_lineage_tree_is_shown_as_indented_lines_and_a_long_one_is_cut(store: Store
                                                                         ) -> None:
    arts = [Artifact(id=remote_digest(f"s3://b/{i}", "1"), type="Dataset", name=f"d{i}",
                     uri=f"s3://b/{i}", site="s") for i in range(TREE_LINES)]
    records: list[Any] = [Pipeline("p", "s"), Stage("p", "step", "s"), *arts]
    for i in range(1, len(arts)):  # a chain: d0 -> step -> d1 -> ... (deeper than recursion)
        ex = Execution(pipeline="p", stage="step", site="s").ended()
        records += [ex, Event(ex.id, arts[i - 1].id, "INPUT"), Event(ex.id, arts[i].id,
                                                                     "OUTPUT")]
    store.put(records)
    short = Query(store).lineage_tree(arts[1].id)
    lines = notebook_text(short).splitlines()
    assert lines[0].startswith("Artifact Dataset d1 ")
    assert lines[1].startswith("<-- Execution p/step ")
    assert lines[2].startswith("    <-- Artifact Dataset d0 ")
    assert len(lines) == 3
    tree = Query(store).lineage_tree(arts[-1].id)
    lines = str(tree).splitlines()
    assert len(lines) == TREE_LINES + 1
    assert lines[-1].startswith(f"... {2 * TREE_LINES - 1 - TREE_LINES} more nodes")


def test_runs_are_rows_of_params_and_metrics_to_compare(workdir: Path) -> None:
    cmf = Cmf(workdir / "cmf.db", pipeline_name="churn", measure_energy=False)
    first = train(cmf, lr=0.1, auc=0.8)
    second = train(cmf, lr=0.01, auc=0.9)
    with cmf.create_execution("eval", params={"k": 5}) as ev:
        ev.log_metrics("", {"acc": 0.7}, step=4)
        ev.log_metrics("", {"acc": 0.6}, step=2)  # logged later, an earlier step
    rows = cmf.query.runs(stage="train")
    assert [r["id"] for r in rows] == [first.id, second.id]
    assert rows[1]["params.lr"] == 0.01 and rows[1]["metrics.auc"] == 0.9
    assert rows[0]["metrics.loss.train"] == 1 / 3  # a stepped metric: its last step's value
    assert rows[0]["status"] == "completed" and rows[0]["duration_s"] >= 0
    (eval_row,) = cmf.query.runs(stage="eval")
    assert eval_row["metrics.acc"] == 0.7 and eval_row["params.k"] == 5
    assert "metrics.auc" not in eval_row
    prov_rows = cmf.query.provenance("model.pkl").runs()
    # the same model.pkl bytes: both executions produced it
    assert sorted(r["metrics.auc"] for r in prov_rows) == [0.8, 0.9]
    cmf.close()


def test_runs_frame_without_pandas_says_how_to_get_it(workdir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # pandas not installed
    cmf = Cmf(workdir / "cmf.db", pipeline_name="churn", measure_energy=False)
    train(cmf)
    with pytest.raises(InvalidInputError, match=r"pip install pandas.*runs\(\)"):
        cmf.query.runs_frame()
    cmf.close()


def test_runs_frame_is_a_dataframe_of_the_same_rows(workdir: Path) -> None:
    pd = pytest.importorskip("pandas")  # no dependency of CMF: checked where installed
    cmf = Cmf(workdir / "cmf.db", pipeline_name="churn", measure_energy=False)
    train(cmf, lr=0.1, auc=0.8)
    train(cmf, lr=0.01, auc=0.9)
    frame = cmf.query.runs_frame(stage="train")
    assert list(frame.columns[:9]) == ["id", "pipeline", "stage", "site", "status",
                                       "started_at", "ended_at", "duration_s", "error"]
    assert frame.sort_values("metrics.auc")["params.lr"].tolist() == [0.1, 0.01]
    assert str(frame["started_at"].dt.tz) == "UTC"
    assert pd.api.types.is_datetime64_any_dtype(frame["ended_at"])
    empty = cmf.query.runs_frame(stage="nothing")
    assert len(empty) == 0 and "status" in empty.columns
    cmf.close()


def test_a_stopped_cell_records_its_execution_as_failed_by_keyboard_interrupt(
        workdir: Path) -> None:
    """The notebook's stop button raises KeyboardInterrupt in the cell."""
    cmf = Cmf(workdir / "cmf.db", pipeline_name="churn", measure_energy=False)
    with pytest.raises(KeyboardInterrupt), cmf.create_execution("train") as run:
        run.log_dataset("train.csv", "input")
        raise KeyboardInterrupt
    ex = cmf.query.execution(run.id)
    assert ex.status is ExecutionStatus.FAILED
    assert ex.error == "KeyboardInterrupt"  # not "KeyboardInterrupt: "
    assert [a.name for a in cmf.query.artifacts()] == ["train.csv"]
    cmf.close()


def test_the_logger_works_inside_a_running_event_loop(workdir: Path) -> None:
    """ipykernel runs cells inside its asyncio event loop: nothing of the logger may call
    ``asyncio.run`` (which refuses to run there) or need a loop of its own."""
    async def cell() -> Execution:
        cmf = Cmf(workdir / "cmf.db", pipeline_name="churn", measure_energy=False)
        try:
            ex = train(cmf)
            assert cmf.query.provenance("model.pkl").executions == [ex]
            return ex
        finally:
            cmf.close()

    ex = asyncio.run(cell())
    assert ex.status is ExecutionStatus.COMPLETED
