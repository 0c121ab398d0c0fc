"""Scenario 1 end to end, reduced: Airflow at hpc, Prefect at edge, Kubeflow at cloud, sync."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cmf_core.identity import file_digest
from cmf_core.store import ExecutionFilter

pytestmark = pytest.mark.slow


def test_hep_across_three_sites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hep import scenario

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    lines: list[str] = []
    result = scenario.run(tmp_path / "hep", events=6, edge_events=4, test_events=3,
                          progress=lines.append)
    assert next(line for line in lines if line.startswith("[")).startswith("[1/5] all:")
    assert all(s.server is None and s.prefect is None for s in result.sites.values())  # stopped

    # every site's tasks completed and were recorded by its own orchestrator's integration
    for site, pipeline in scenario.PIPELINES.items():
        with result.sites[site].open_store() as store:
            runs = store.list_executions(ExecutionFilter(pipeline=pipeline))
        assert runs and all(e.status.value == "completed" for e in runs), site
        assert {e.site for e in runs} == {site}

    # the final model is the edge's fine-tuned file, and only the model files moved
    edge, cloud = result.sites["edge"], result.sites["cloud"]
    tuned = edge.data / "hit-classifier-edge.pkl"
    assert result.final_model == file_digest(tuned)
    assert file_digest(cloud.data / "hit-classifier-edge.pkl") == result.final_model
    assert file_digest(edge.data / "hit-classifier.pkl") == result.base_model
    assert not (edge.data / "hits.csv").exists() and not (cloud.data / "edge-hits.csv").exists()

    # after sync, every store shows the chain across sites upstream of the fine-tuned model
    for site in result.sites.values():
        up = scenario.upstream_sites(site, result.final_model)
        assert {"hpc", "edge"} <= set(up), (site.name, up)
        assert "hep-hpc-training/train_classifier" in up["hpc"]
        assert "hep-edge-finetune/fine_tune" in up["edge"]
        down = scenario.downstream_sites(site, result.final_model)
        assert "hep-evaluation/classify-hits" in down.get("cloud", [])
        assert scenario.sites_in(site) == ["cloud", "edge", "hpc"]

    # carbon: the roll-up over the merged store is the sum of the per-execution records
    for site in result.sites.values():
        kwh, kwh_sum, co2, co2_sum = scenario.energy_check(site)
        assert kwh > 0 and co2 > 0
        assert kwh == kwh_sum and co2 == co2_sum
    from cmf_core.carbon.rollup import rollup

    with result.report_site.open_store() as store:
        by_site = rollup(store, by="site")
        per_site = {g.key: g.energy_kwh for g in by_site.groups}
        assert set(per_site) == {"hpc", "edge", "cloud"}
        assert math.fsum(per_site.values()) == pytest.approx(by_site.total.energy_kwh,
                                                             rel=1e-12)
        for name in per_site:
            ids = [e.id for e in store.list_executions(ExecutionFilter(site=name))]
            assert per_site[name] == math.fsum(r.energy_kwh for r in store.energy(ids))

    # what `make demo` prints of them: readable units (mWh, mgCO2e, not 3.7e-06 kWh), and no
    # made-up zero for the runs of a whole DAG or flow, which have no energy record
    import demo

    table = demo.stage_table(result.report_site, tmp_path / "carbon.png").splitlines()
    rows = {line.split()[0]: line.split() for line in table[2:-2]}
    assert rows["hep-hpc-training/hep-hpc-training"][3:5] == ["-", "-"]
    assert rows["hep-hpc-training/train_classifier"][3] not in ("-", "0.000")
    assert "e-0" not in "\n".join(table) and "no energy record" in table[-1]
    assert float(table[-2].split()[2]) == pytest.approx(by_site.total.energy_kwh * 1e6,
                                                        abs=1e-3)
    context = demo.energy_context(result.report_site)
    assert "gCO2e/kWh" in context and "mWh" in context

    # the recommendation that seeded the classifier, with its reasons
    rec = result.recommendation
    assert rec["seeds"] and rec["message"]
    assert all(seed["evidence"] for seed in rec["seeds"])
    assert rec["matches_recorded"] is True
    with result.sites["hpc"].open_store() as store:
        [train] = store.list_executions(ExecutionFilter(stage="train_classifier", site="hpc"))
    assert train.params["model"] in {s["config"]["model"] for s in rec["seeds"]}
    assert "cmf.task" in train.properties

    # the evaluation ran on the fetched models and measured something sensible
    ev = result.evaluation["evaluate-tracks"]
    assert 0.0 < ev["tracking_efficiency"] <= 1.0
    assert set(result.edge_scores) == {"auc_base", "auc_finetuned"}
