"""`cmf lineage` of what a real Prefect flow recorded: the results passed between tasks are
folded (they are values held in memory, not the user's datasets), and --all / --json show them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, task
from typer.testing import CliRunner

from cmf_core.cli import app

runner = CliRunner()


def test_task_results_are_folded_in_the_lineage_tree(auto_route: Any, cmf_store: Any,
                                                     cmf_settings: Any, tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_text("x\n1\n2\n3\n")
    model = tmp_path / "model.pkl"

    @task
    def load(path: str) -> list[int]:
        return [int(v) for v in Path(path).read_text().split()[1:]]

    @task
    def scale(values: list[int]) -> list[float]:
        return [v / 3 for v in values]

    @task
    def fit(values: list[float], raw_path: str) -> str:
        model.write_bytes(repr(sum(values)).encode())
        return str(model)

    @flow
    def churn_flow() -> str:
        values = load(str(raw))
        return fit(scale(values), str(raw))

    assert churn_flow() == str(model)
    runs = {e.stage: e for e in cmf_store.list_executions()}
    load_id, scale_id, fit_id = (runs[s].id for s in ("load", "scale", "fit"))
    url = cmf_settings.resolved_store_url

    def lineage(*args: str) -> str:
        out = runner.invoke(app, ["lineage", "model.pkl", "--store", url, *args],
                            env={"COLUMNS": "250"})
        assert out.exit_code == 0, out.output
        return out.output

    lines = lineage().splitlines()
    # model <- fit <- (raw.csv, scale's result <- scale <- load's result <- load <- raw.csv):
    # the two results are folded into the edges they make
    assert [line.split(" @")[0].split(" sha256:")[0] for line in lines] == [
        f"Model {model}",
        f"└── churn-flow/fit {fit_id}",
        f"    ├── Dataset {raw}",
        f"    └── via task result: churn-flow/scale {scale_id}",
        f"        └── via task result: churn-flow/load {load_id}",
        f"            └── Dataset {raw}",
        "2 task results (values passed between tasks in memory) folded into 'via task "
        "result'; --all shows them",
    ]
    assert "task-run/" not in "\n".join(lines)

    full = lineage("--all")
    for run_id in (scale_id, load_id):
        assert f"Dataset task-run/{run_id}/result" in full
    assert "via task result" not in full and "--all shows them" not in full
    assert "(task result: a value passed between tasks in memory)" in full

    # --json keeps everything, each result marked with its role
    tree = json.loads(lineage("--json"))
    fit_inputs = {c["name"]: c for c in tree["children"][0]["children"]}
    result = fit_inputs[f"task-run/{scale_id}/result"]
    assert result["role"] == "task_value" and "role" not in fit_inputs[str(raw)]
    assert result["children"][0]["id"] == scale_id

    # folding is display only: the closure still holds the results
    from cmf_core.lineage import Query

    model_id = cmf_store.find_artifacts(name=str(model))[-1].id
    upstream = {a.name for a in Query(cmf_store).ancestors(model_id)}
    assert upstream == {str(raw), f"task-run/{scale_id}/result", f"task-run/{load_id}/result"}
