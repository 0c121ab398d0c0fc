"""Task results (values one task hands the next in memory, e.g. Prefect's ``task-run/<id>/result``,
marked ``cmf.role`` = ``task_value``) in the lineage graph: by default folded into a dashed
"via task result" edge between the two executions, as ``cmf lineage`` folds them; "show task
results" draws them as nodes again. The API gives each such artifact its ``role``. Its own store
(recorded with ``Cmf`` as the Prefect adapter records a flow: load -> scale -> fit, each result
read by the next task, fit's read by none), a real ``cmf serve`` process and Chromium."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from cmf_core.logger import Cmf, ExecutionHandle
from cmf_core.model import ROLE_PROPERTY, TASK_VALUE
from cmf_core.openlineage.ingest import unversioned_digest
from tests.ui.conftest import cmf_serve

ROLE = {ROLE_PROPERTY: TASK_VALUE}


@dataclass
class Flow:
    url: str  # the cmf serve URL
    runs: dict[str, str]  # stage -> execution id
    results: dict[str, str]  # stage -> the id of the task result it returned
    files: dict[str, str]  # file name -> artifact id


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("ui-task-values")
    store = f"sqlite:///{root / 'cmf.db'}"
    raw, model = root / "raw.csv", root / "model.pkl"
    raw.write_text("x\n1\n2\n3\n")
    runs: dict[str, str] = {}
    results: dict[str, str] = {}
    files: dict[str, str] = {}

    def result(handle: ExecutionHandle, task_run: str, event: str) -> str:
        # the URI and id the Prefect adapter gives a task run's result (cmf_prefect.datasets)
        name = f"task-run/{task_run}/result"
        uri = f"prefect:{name}"
        return handle.log_artifact(uri, event, name=name, digest=unversioned_digest(uri),
                                   properties=ROLE).id

    task_runs = {stage: str(uuid.uuid4()) for stage in ("load", "scale", "fit")}
    with Cmf(pipeline_name="churn-flow", store=store, site="lab", measure_energy=False) as cmf:
        with cmf.create_execution("load") as ex:
            runs["load"] = ex.id
            files["raw.csv"] = ex.log_dataset(str(raw), "input").id
            results["load"] = result(ex, task_runs["load"], "output")
        with cmf.create_execution("scale") as ex:
            runs["scale"] = ex.id
            result(ex, task_runs["load"], "input")
            results["scale"] = result(ex, task_runs["scale"], "output")
        with cmf.create_execution("fit") as ex:
            runs["fit"] = ex.id
            result(ex, task_runs["scale"], "input")
            ex.log_dataset(str(raw), "input")
            model.write_bytes(b"model")
            files["model.pkl"] = ex.log_model(str(model), "output").id
            results["fit"] = result(ex, task_runs["fit"], "output")  # read by no task
    with Cmf(pipeline_name="plain", store=store, site="lab", measure_energy=False) as cmf:
        cmf.create_execution("copy").log_dataset(str(raw), "input")
    with cmf_serve(store, root) as url:
        yield Flow(url, runs, results, files)


def test_the_api_gives_each_task_result_its_role(flow: Flow) -> None:
    """``role`` is in every artifact the API returns, so the page need not know the property."""
    graph = httpx.get(f"{flow.url}/api/v1/graph", params={"pipeline": "churn-flow"}).json()
    roles = {a["id"]: a.get("role") for a in graph["artifacts"]}
    assert roles == {**{v: "task_value" for v in flow.results.values()},
                     **{f: None for f in flow.files.values()}}
    one = httpx.get(f"{flow.url}/api/v1/artifacts/{flow.results['load']}").json()
    assert one["role"] == "task_value" and one["properties"][ROLE_PROPERTY] == TASK_VALUE
    assert "role" not in httpx.get(f"{flow.url}/api/v1/artifacts/{flow.files['raw.csv']}").json()
    scale = httpx.get(f"{flow.url}/api/v1/executions/{flow.runs['scale']}").json()
    assert [a.get("role") for a in scale["inputs"]] == ["task_value"]
