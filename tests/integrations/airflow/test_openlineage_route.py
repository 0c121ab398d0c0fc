"""The other route: Airflow's OpenLineage provider with the CmfTransport gives the same lineage.

The provider registers its listener only when it is configured at start-up, so this route runs
in a child process (the provider forking per event, its default), on the same Airflow database
and into the same CMF store as the listener route it is compared with:

* ``churn_ol``: the provider alone (the cmf listener disabled);
* ``churn_both``: the provider and the cmf plugin together (``lineage_source = auto``): the
  provider records the tasks and datasets, the listener adds energy and parameters to the same
  runs, and nothing is recorded twice;
* ``churn_listener`` (this process): the cmf listener alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cmf_core.model import EventType, ExecutionStatus
from tests.integrations.airflow.helpers import by_stage
from tests.integrations.airflow.sources import CHURN

TASKS = ("prepare", "train", "evaluate")
CHILD = '''
import json, os, sys
from airflow.dag_processing.dagbag import DagBag

out = {}
# (the plugin is loaded with the first run, while tracking is on; the switch is read per hook)
for dag_id, cmf_disabled in (("churn_both", "False"), ("churn_ol", "True")):
    os.environ["AIRFLOW__CMF__DISABLED"] = cmf_disabled
    dag = DagBag(dag_folder=os.path.join(sys.argv[1], dag_id + ".py")).get_dag(dag_id)
    dr = dag.test()
    out[dag_id] = {"state": str(dr.state), "logical_date": dr.logical_date.isoformat()}
print("RESULT " + json.dumps(out))
'''


def lineage(store: Any, pipeline: str) -> dict[str, Any]:
    """Per stage: status, inputs and outputs by URI, params, energy."""
    out = {}
    for stage, ex in by_stage(store, pipeline).items():
        events = store.events([ex.id])
        arts = {ev.artifact_id: store.get_artifact(ev.artifact_id) for ev in events}
        out[stage] = {
            "id": ex.id,
            "status": ex.status,
            "inputs": sorted(arts[e.artifact_id].uri for e in events if e.type is EventType.INPUT),
            "outputs": sorted(arts[e.artifact_id].uri for e in events
                              if e.type is EventType.OUTPUT),
            "artifact_ids": {arts[e.artifact_id].uri: e.artifact_id for e in events},
            "params": dict(ex.params),
            "energy": len(store.energy([ex.id])),
            "run_facets": dict(ex.properties.get("openlineage.run_facets") or {}),
        }
    return out


@pytest.mark.slow  # a second Airflow process: ~12 s on an idle machine, ~100 s under load
def test_openlineage_provider_route_gives_the_same_lineage(
        run_dag, write_dag, dags_folder: Path, cmf_store, tmp_path: Path) -> None:
    from airflow.providers.openlineage.utils.utils import (
        build_dag_run_ol_run_id,
        build_task_instance_ol_run_id,
    )

    data = tmp_path / "data"
    data.mkdir()
    (data / "raw.csv").write_text("x,y\n" + "\n".join(f"{i},{i % 2}" for i in range(40)))
    for dag_id in ("churn_ol", "churn_both"):
        write_dag(CHURN, dag_id, data=data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__OPENLINEAGE__")}
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "cmf_core.openlineage.transport.cmf.CmfTransport"})
    env["PYTHONPATH"] = os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")])
    # a fresh interpreter compiles Airflow (~10 s) unless it may keep bytecode somewhere
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(Path(".pytest_cache", "pycache").resolve()))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(dags_folder)], env=env, text=True,
                          capture_output=True, timeout=240)
    result = next((json.loads(line[7:]) for line in proc.stdout.splitlines()
                   if line.startswith("RESULT ")), None)
    assert result is not None, proc.stderr[-3000:]
    listener_run = run_dag(CHURN, "churn_listener", data=data)

    store = cmf_store()
    routes = {"churn_ol": lineage(store, "churn_ol"), "churn_both": lineage(store, "churn_both"),
              "churn_listener": lineage(store, "churn_listener")}
    dates = {k: dt.datetime.fromisoformat(v["logical_date"]) for k, v in result.items()}
    dates["churn_listener"] = listener_run.logical_date
    for dag_id, stages in routes.items():
        # every task try, and the DAG run itself, with the provider's deterministic ids
        assert set(stages) == {*TASKS, dag_id}, dag_id
        assert stages[dag_id]["id"] == build_dag_run_ol_run_id(dag_id, dates[dag_id], 0)
        for stage, rec in stages.items():
            assert rec["status"] is ExecutionStatus.COMPLETED, (dag_id, stage)
            if stage != dag_id:
                assert rec["id"] == build_task_instance_ol_run_id(
                    dag_id=dag_id, task_id=stage, try_number=1, logical_date=dates[dag_id],
                    map_index=-1)
    # the provider only translates assets whose scheme has a converter (file here); s3 has
    # none without the amazon provider, so the report output is the listener's alone
    for stage in TASKS:
        for key in ("inputs", "outputs"):
            expected = [u for u in routes["churn_listener"][stage][key] if not u.startswith("s3")]
            assert routes["churn_ol"][stage][key] == expected, (stage, key)
            assert routes["churn_both"][stage][key] == expected, (stage, key)
    assert routes["churn_listener"]["evaluate"]["outputs"] == ["s3://reports/churn/eval.json"]

    # the provider's own facets arrived (it recorded the runs) ...
    for name in TASKS:
        stage = routes["churn_ol"][name]
        assert "airflow" in stage["run_facets"] and stage["energy"] == 0 and not stage["params"]
    # ... and with the plugin on, the listener added energy and parameters to the same runs,
    # without a second execution or a second artifact for any dataset
    for name in TASKS:
        stage = routes["churn_both"][name]
        assert "airflow" in stage["run_facets"]
        assert stage["energy"] == 1, name
        assert len(stage["artifact_ids"]) == len(stage["inputs"]) + len(stage["outputs"])
    # the listener's OTHER event also carries the parameters: the store merges them into the
    # provider's run, so both routes together give the listener's parameters
    for name in TASKS:
        assert routes["churn_both"][name]["params"] == routes["churn_listener"][name]["params"]
        assert routes["churn_both"][name]["params"], name
