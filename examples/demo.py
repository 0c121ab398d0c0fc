"""`make demo`: the three scenarios, then a report a person would want to read.

1. HEP trajectory reconstruction across three sites (examples/hep/): ``hpc`` trains with
   Airflow, ``edge`` fine-tunes with Prefect, ``cloud`` evaluates with Kubeflow Pipelines; each
   site has its own store, data folder and ``cmf serve``; federated sync merges the metadata.
2. AIOps anomaly detection (examples/aiops/), reduced size: the recommender seeds the search
   for a new series from past anomaly-detection tasks.
3. Telco churn (examples/telco/), reduced size: the recommender's seeds versus a cold Bayesian
   search on the real data.

The report: the cross-site lineage tree of the fine-tuned model, energy and carbon per stage and
site with a chart, the recommendations with their reasons, and where to open the web page.

    .venv/bin/python examples/demo.py [--out demo-output] [--keep-serving] [--small]
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES))

NEEDS = {  # module -> what provides it
    "airflow": "apache-airflow (extra: airflow)", "cmf_airflow": "cmf-foundation[airflow]",
    "prefect": "prefect (extra: prefect)", "cmf_prefect": "cmf-foundation[prefect]",
    "kfp": "kfp (extra: kubeflow)", "cmf_kubeflow": "cmf-foundation[kubeflow]",
    "optuna": "optuna (extra: recommend)", "sklearn": "scikit-learn (extra: recommend)",
    "matplotlib": "matplotlib (extra: plot)", "uvicorn": "uvicorn (extra: server)",
    "cmf_core.federation.peer": "cmf-foundation federation", "cmf_core.server.app":
    "cmf-foundation[server]", "cmf_core.carbon.rollup": "cmf-foundation carbon roll-ups",
    "cmf_core.recommend": "cmf-foundation[recommend]"}
RULE = "=" * 100
OUTPUTS = ("carbon.png", "cmf.db", "raw.csv", "train.csv", "model.txt")


def check_environment() -> None:
    """Fail loudly, naming what is missing, before anything runs."""
    missing = []
    for module, what in NEEDS.items():
        try:
            importlib.import_module(module)
        except Exception as e:  # ImportError, or an integration that does not import yet
            missing.append(f"  {module:<26} ({what}): {type(e).__name__}: {e}")
    if missing:
        sys.exit("The demo cannot run; these parts are missing or broken:\n" + "\n".join(missing)
                 + "\nRun `make demo` (it creates .venv with every extra) or fix the part named.")


def section(title: str) -> None:
    print(f"\n{RULE}\n{title}\n{RULE}")


def cmf_cli(store_url: str, *args: str) -> str:
    """The output of ``cmf ARGS --store STORE`` (the real command line, 110 columns)."""
    from hep.scenario import CLI

    env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
    env.update(COLUMNS="110", NO_COLOR="1", TERM="dumb")
    proc = subprocess.run([sys.executable, "-c", CLI, *args, "--store", store_url],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"`cmf {' '.join(args)}` failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def _milli(kilo: float) -> str:
    """A kWh or kgCO2e amount in mWh or mgCO2e (x 1e6): the demo's tasks use milliwatt-hours,
    which in kWh read as 3.7e-06."""
    return f"{kilo * 1e6:.3f}"


def stage_table(site: Any, chart: Path) -> str:
    """Energy and carbon per stage (the roll-up of `cmf carbon --by stage`, compact, in mWh and
    mgCO2e), and its chart (`cmf carbon --by stage --plot`: CO2e per stage, coloured by
    site)."""
    from cmf_core.carbon.rollup import plot, rollup

    with site.open_store() as store:
        r = rollup(store, by="stage")
    plot(r, chart, title="Emissions per stage and site (kgCO2e), HEP scenario")
    lines = ["Per stage (all sites, largest first; in mWh and mgCO2e: 1 mWh = 1e-6 kWh; "
             "`cmf carbon --by stage` has the inputs behind each number):",
             f"  {'stage':<46} {'site':<6} {'execs':>5} {'mWh':>9} {'mgCO2e':>9}  phase"]
    unrecorded = False
    for g in sorted(r.groups, key=lambda g: (-g.co2e_kg, g.key)):
        phases = ", ".join(f"{p}{'*' if s.inferred else ''}" for p, s in g.phases.items())
        if g.with_energy:
            amounts = f"{_milli(g.energy_kwh):>9} {_milli(g.co2e_kg):>9}"
        else:  # not a measured zero: nothing was recorded
            amounts, unrecorded = f"{'-':>9} {'-':>9}", True
        lines.append(f"  {g.key:<46} {', '.join(g.sites):<6} {g.executions:>5} {amounts}  "
                     f"{phases}")
    lines.append(f"  {'total':<46} {'':<6} {r.total.executions:>5} "
                 f"{_milli(r.total.energy_kwh):>9} {_milli(r.total.co2e_kg):>9}")
    lines.append("  (* phase inferred from the stage name" + (
        "; - no energy record: the run of a whole DAG or flow, whose tasks have theirs)"
        if unrecorded else ")"))
    return "\n".join(lines)


def energy_context(site: Any) -> str:
    """What the energy and carbon numbers rest on (measured or modelled, which grid), and their
    scale, from the records themselves."""
    from cmf_core.carbon.rollup import rollup

    with site.open_store() as store:
        total = rollup(store, by="site").total
    inputs = total.inputs
    methods = {m for ms in inputs.methods.values() for m in ms}
    how = ("estimated, not measured: no power counter (RAPL, NVML) could be read here, so each "
           "task's energy is modelled from its CPU time and memory (docs/energy.md)"
           if methods <= {"model"} else f"from {inputs.methods_text()}")
    grid = " / ".join(f"{g:g}" for g in inputs.intensity_g_per_kwh) or "?"
    regions = ", ".join(inputs.regions) or "?"
    seconds_at_10w = total.energy_kwh * 3.6e6 / 10.0
    return (f"Energy is {how}; carbon = energy x PUE {', '.join(f'{p:g}' for p in inputs.pue)}"
            f" x {grid} gCO2e/kWh (the {regions} grid average; set CMF_CARBON_REGION or "
            f"CMF_CARBON_INTENSITY for your own).\nFor scale: {_milli(total.energy_kwh)} mWh "
            f"is what a 10 W laptop draws in {seconds_at_10w:.0f} s; these tasks are small "
            "on purpose.")


def curve_table(results: dict[str, list[Any]], n_trials: int, metric: str) -> str:
    from aiops.search import summary

    marks = tuple(sorted({1, 3, 5, n_trials} & set(range(1, n_trials + 1))))
    head = f"  {'search':<8}" + "".join(f"{'after ' + str(n):>11}" for n in marks)
    lines = [f"  best {metric} so far (mean of {len(next(iter(results.values())))} "
             "sampler seed(s)):", head]
    rows = dict(summary(results, marks))
    for kind, values in rows.items():
        lines.append(f"  {kind:<8}" + "".join(f"{v:>11.4f}" for v in values))
    if {"seeded", "cold"} <= rows.keys():
        ahead = [n for n, s, c in zip(marks, rows["seeded"], rows["cold"], strict=True) if s > c]
        behind = [n for n, s, c in zip(marks, rows["seeded"], rows["cold"], strict=True) if s < c]
        said = [f"seeded ahead after {', '.join(map(str, ahead))}" if ahead else "",
                f"cold ahead after {', '.join(map(str, behind))}" if behind else ""]
        lines.append("  reading: " + ("; ".join(x for x in said if x) or "level throughout")
                     + (" (benchmarks/RESULTS.md compares over 40 tasks, slowdowns included)"
                        if behind else ""))
    return "\n".join(lines)


def report(hep: Any, aiops: Any, telco: Any, sizes: dict[str, Any], out: Path,
           keep_serving: bool, started: float) -> None:
    from hep import scenario

    site = hep.report_site
    section("cmf-foundation demo: report")
    print(f"Output folder: {out}   (one folder per site: {', '.join(hep.sites)}; each with "
          ".cmf/cmf.db, data/, logs/)")
    print("\nSites (each its own store and `cmf serve`; data never left its site except the "
          "model files fetched by digest):")
    with site.open_store() as store:
        counts: dict[str, int] = {}
        for e in store.list_executions():
            counts[e.site] = counts.get(e.site, 0) + 1
    roles = {"hpc": "Airflow 3: trains the tracking models",
             "edge": "Prefect 3: fine-tunes the classifier on local data",
             "cloud": "Kubeflow Pipelines (kfp.local): evaluates the chain"}
    for name, s in hep.sites.items():
        print(f"  {name:<6} {roles[name]:<52} {counts.get(name, 0):>3} executions  {s.store_url}")
    for key, how in hep.fetched.items():
        print(f"  fetched {key}: {how}")
    for line in hep.syncs:
        print(f"  sync {line}")

    section("1. Lineage of the final model (the classifier fine-tuned at edge), from the hpc "
            "store after sync")
    print(cmf_cli(site.store_url, "lineage", hep.final_model).rstrip())
    up = scenario.upstream_sites(site, hep.final_model)
    down = scenario.downstream_sites(site, hep.final_model)
    print("\nUpstream executions by site: " + "; ".join(
        f"{s}: {', '.join(stages)}" for s, stages in up.items()))
    print("Downstream (used by): " + "; ".join(
        f"{s}: {', '.join(stages)}" for s, stages in down.items()))
    ev = hep.evaluation.get("evaluate-tracks", {})
    print(f"Evaluation at cloud ({sizes['test_events']} unseen edge-like events): tracking "
          f"efficiency {ev.get('tracking_efficiency', float('nan')):.3f}, fake rate "
          f"{ev.get('fake_rate', float('nan')):.3f}, "
          f"{int(ev.get('track_candidates', 0))} track candidates for "
          f"{int(ev.get('reconstructable_particles', 0))} reconstructable particles")
    print(finetune_reading(hep.edge_scores))

    section("2. Energy and carbon per site and per stage (all sites, from the merged hpc store)")
    chart = out / "carbon.png"
    print(cmf_cli(site.store_url, "carbon", "--by", "site").rstrip())
    print(stage_table(site, chart))
    kwh, kwh_sum, co2, co2_sum = scenario.energy_check(site)
    with site.open_store() as store:
        n_records = len(store.energy())
    same = (kwh, co2) == (kwh_sum, co2_sum)
    print(f"\nTotal {_milli(kwh)} mWh, {_milli(co2)} mgCO2e ({kwh:.4g} kWh, {co2:.4g} kgCO2e): "
          + (f"equal to the sum of the {n_records} per-execution energy records" if same else
             f"NOT EQUAL to the sum of the {n_records} per-execution energy records "
             f"({kwh_sum!r} kWh, {co2_sum!r} kgCO2e)"))
    print(energy_context(site))
    print(f"Chart (CO2e per stage, coloured by site): {chart}")

    section("3. Recommendations with their reasons")
    rec = hep.recommendation
    print("HEP hit classifier (hpc, CmfRecommendSeedOperator in the Airflow DAG):")
    print(_indent(rec.get("explain", "")))
    if rec.get("recorded_configs") is not None:
        print("  (the same configurations as the DAG's recommend_seed step returned)"
              if rec.get("matches_recorded") else
              "  (NOT the configurations the DAG's recommend_seed step returned: "
              f"{rec['recorded_configs']})")
    print(f"\nAIOps anomaly detection on a new series '{aiops.task.get('name')}' "
          f"(site {aiops_site()}, {aiops.past_trials} past trials in its store):")
    print(_indent(aiops.explain))
    print(_indent(adaptive_seeds(aiops.results)))
    print(curve_table(aiops.results, sizes["aiops_trials"], "ROC AUC"))
    print(f"\nTelco churn, real data ({telco.rows} customers sampled; the knowledge base's own "
          f"Telco tasks left out: {', '.join(telco.left_out) or 'none'}):")
    print(_indent(telco.explain))
    print(_indent(adaptive_seeds(telco.results)))
    print(curve_table(telco.results, sizes["telco_trials"], "ROC AUC (3-fold CV)"))

    section("4. The web page, and what to look at next")
    cmf = cmf_command()
    if keep_serving:
        for name, s in hep.sites.items():
            print(f"  {name:<6} {s.url}/   (API docs: {s.url}/docs)")
        print("  The servers keep running until you press Ctrl-C.")
    else:
        print(f"  {cmf} serve --store {site.store_url} --port 8080\n"
              "  then open http://127.0.0.1:8080/ (lineage, runs, energy and carbon of all three "
              "sites).\n  Or rerun with --keep-serving to keep each site's server up.")
    print(f"\n  Every store answers the `cmf` commands (docs/cli.md), e.g.:\n"
          f"  {cmf} lineage hit-classifier-edge.pkl --store {site.store_url}\n"
          f"  {cmf} carbon --by stage --store {site.store_url}\n"
          f"  {cmf} executions --store {aiops.store_url}     (AIOps, site {aiops_site()})\n"
          f"  {cmf} executions --store {telco.store_url}     (Telco, site crm)")
    notes = list(hep.notes)
    if notes:
        print("\nNotes:")
        for n in notes:
            print(f"  - {n}")
    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s.")


def finetune_reading(scores: dict[str, float]) -> str:
    """The edge's before/after validation AUC, saying so when fine-tuning did not help."""
    base = scores.get("auc_base", float("nan"))
    tuned = scores.get("auc_finetuned", float("nan"))
    line = (f"Fine-tuning at edge: local validation ROC AUC {base:.4f} (hpc model) -> "
            f"{tuned:.4f} (fine-tuned)")
    if tuned < base:
        line += ("\n  lower: on these few noisy local events fine-tuning did not help; the demo "
                 "evaluates the fine-tuned model at cloud anyway, to show its lineage (a real "
                 "pipeline would keep the better model)")
    return line


def cmf_command() -> str:
    """How to type `cmf` here: plain ``cmf`` when it is on PATH, else the script beside this
    interpreter (``.venv/bin/cmf`` after `make demo`), else ``python -m cmf_core``."""
    here = Path(sys.executable).parent / "cmf"
    found = shutil.which("cmf")
    if found and here.is_file() and Path(found).resolve() == here.resolve():
        return "cmf"
    if here.is_file():
        rel = os.path.relpath(here)
        return rel if not rel.startswith("..") else str(here)
    return f"{sys.executable} -m cmf_core"


def aiops_site() -> str:
    from aiops.scenario import SITE

    return SITE


def adaptive_seeds(results: dict[str, list[Any]]) -> str:
    """The seeds the first seeded search was given (the adaptive seeder's, each chosen after
    the scores before it) and why."""
    from cmf_core.recommend.space import config_label

    run = results["seeded"][0]
    lines = ["The seeded search started with (adaptive seeds, each after the scores before it):"]
    for i, (config, why) in enumerate(zip(run.seeds, run.seed_reasons, strict=True), 1):
        lines.append(f"{i}. {config_label(config)}\n     why: {why}")
    return "\n".join(lines)


def _indent(text: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP (``kill``, a closed terminal, a CI timeout) leave like Ctrl-C does,
    through the ``finally`` that stops each site's servers: they run in their own sessions, and
    Python's default for these signals (die at once) left them running, holding their ports."""
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _exit_on_signal)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--keep-serving", action="store_true",
                        help="leave each site's `cmf serve` running after the report")
    parser.add_argument("--small", action="store_true", help="the smallest sizes (a smoke run)")
    args = parser.parse_args(argv)
    stop_on_signals()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: no thread oversubscription
    started = time.perf_counter()
    check_environment()
    from aiops import scenario as aiops_scenario
    from hep import scenario as hep_scenario
    from telco import scenario as telco_scenario

    sizes = ({"events": 8, "edge_events": 6, "test_events": 4, "aiops_length": 800,
              "aiops_past": 4, "aiops_trials": 6, "telco_rows": 600, "telco_trials": 6,
              "repeats": 1} if args.small else
             {"events": 16, "edge_events": 12, "test_events": 8, "aiops_length": 1500,
              "aiops_past": 8, "aiops_trials": 10, "telco_rows": 1500, "telco_trials": 10,
              "repeats": 2})
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:  # what an earlier demo left (the scenarios empty their own folders)
        path = out / name
        if path.is_file():
            path.unlink()
    print(f"cmf-foundation demo: 3 sites, 3 orchestrators, 3 scenarios -> {out}")
    steps = hep_scenario.Steps(7, print, {})
    hep = hep_scenario.run(out / "hep", events=sizes["events"], edge_events=sizes["edge_events"],
                           test_events=sizes["test_events"], steps=steps,
                           keep_serving=args.keep_serving)
    try:
        with steps("ops", "AIOps: recommender-seeded anomaly-detector search for a new "
                          "series (reduced size)"):
            aiops = aiops_scenario.run(out / "aiops", length=sizes["aiops_length"],
                                       past_trials=sizes["aiops_past"],
                                       n_trials=sizes["aiops_trials"],
                                       repeats=sizes["repeats"], progress=print)
        with steps("crm", "Telco churn: recommender seeds versus a cold Bayesian search "
                          "(reduced size)"):
            telco = telco_scenario.run(out / "telco", rows=sizes["telco_rows"],
                                       n_trials=sizes["telco_trials"],
                                       repeats=sizes["repeats"], progress=print)
        report(hep, aiops, telco, sizes, out, args.keep_serving, started)
        if args.keep_serving:
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        hep_scenario.stop(hep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
