"""Scenario 2, reduced: past anomaly-detection searches in the store seed a new one."""

from __future__ import annotations

import json
import math
from pathlib import Path

from cmf_core.carbon.rollup import rollup
from cmf_core.lineage import Query
from cmf_core.store import open_store


def test_aiops_recommender_seeds_from_past_tasks(tmp_path: Path) -> None:
    from aiops import scenario

    result = scenario.run(tmp_path / "aiops", length=400, past_trials=3, n_trials=4, k=3,
                          progress=lambda _: None)

    # recommendations: from similar anomaly-detection tasks, this site's own among them
    rec = result.recommendation
    assert rec["strategy"] == "similar_tasks" and rec["seeds"]
    assert all(s["config"]["model"] in {"iforest", "lof", "ocsvm"} for s in rec["seeds"])
    assert all(s["evidence"] for s in rec["seeds"])
    past = {p[0] for p in scenario.PAST}
    assert past & {n["name"] for n in rec["neighbours"]}
    assert "similar" in result.explain and "score" in result.explain
    assert result.past_trials == 3 * len(scenario.PAST)

    # the seeded search starts with the adaptive seeds: the top recommendation, then each
    # next one chosen after the scores so far
    seeded = result.results["seeded"][0]
    assert len(seeded.seeds) == len(rec["seeds"]) == 3
    assert seeded.configs[:3] == seeded.seeds and seeded.seeds[0] == rec["seeds"][0]["config"]
    assert len({str(c) for c in seeded.seeds}) == 3
    assert len(seeded.seed_reasons) == 3 and seeded.seed_reasons[1].startswith("after 1 score")
    # the seeded search's recorded output says where it started and why
    best = json.loads((tmp_path / "aiops" / "data" / "best-config-seeded.json").read_text())
    assert best["seeds"] == [{"config": c, "why": w} for c, w in
                             zip(seeded.seeds, seeded.seed_reasons, strict=True)]
    import demo  # what `make demo` prints of them

    printed = demo.adaptive_seeds(result.results)
    assert [line.split("why: ")[1] for line in printed.splitlines() if "why: " in line] == \
        seeded.seed_reasons
    assert len(seeded.scores) == len(result.results["cold"][0].scores) == 4
    table = demo.curve_table(result.results, 4, "ROC AUC").splitlines()
    means = {row.split()[0]: [float(v) for v in row.split()[1:]] for row in table[2:4]}
    ahead = [n for n, s, c in zip((1, 3, 4), means["seeded"], means["cold"], strict=True)
             if s > c]
    reading = table[-1]
    assert reading.startswith("  reading: ")
    assert (f"seeded ahead after {', '.join(map(str, ahead))}" in reading) == bool(ahead)

    with open_store(result.store_url) as store:
        # lineage: the best configuration <- seeded search <- seeds <- recommend <- describe
        prov = Query(store).provenance(result.best_model)
        stages = {e.stage for e in prov.executions}
        assert {"search_seeded", "recommend", "describe"} <= stages
        assert all(e.site == scenario.SITE for e in prov.executions)
        # carbon: totals are the sums of the per-execution records
        r = rollup(store, pipeline=scenario.PIPELINE, by="stage")
        records = store.energy([e.id for e in store.list_executions()
                                if e.pipeline == scenario.PIPELINE])
        assert records and r.total.energy_kwh == math.fsum(x.energy_kwh for x in records)
        assert r.total.co2e_kg == math.fsum(x.co2e_kg for x in records)
        assert {g.key for g in r.groups} == {f"{scenario.PIPELINE}/{s}" for s in
                                             ("describe", "recommend", "search_seeded",
                                              "search_cold")}
