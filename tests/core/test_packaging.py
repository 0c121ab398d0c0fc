"""The wheel a user installs: built from this checkout with uv, checked for the files the
product reads at run time, then installed with the base dependencies only (no extras) into a
fresh virtual environment and used the way a new user starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TELCO = ROOT / "examples" / "data" / "telco-churn" / "Telco-Customer-Churn.csv"
#: the package folders of the wheel (pyproject's [tool.hatch.build.targets.wheel] packages)
PACKAGES = ("cmf_core", "integrations/airflow/cmf_airflow", "integrations/airflow/cmf_foundation",
            "integrations/prefect/cmf_prefect", "integrations/kubeflow/cmf_kubeflow")


def _uv() -> str:
    """uv as the Makefile finds it: on PATH, else the copy `make` bootstraps into .tools/."""
    found = shutil.which("uv") or (ROOT / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.fail("these tests build the wheel with uv: run them with `make test`, which "
                    "installs it")
    return str(found)


def _run(args: Sequence[str], cwd: Path = ROOT, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([_uv(), "build", "--wheel", "--quiet", "-o", str(out)])
    (found,) = out.glob("cmf_foundation-*.whl")
    return found


@pytest.fixture(scope="module")
def base_install(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel and its base dependencies, at the versions
    of uv.lock (so uv's cache serves them); returns its bin/ folder."""
    where = tmp_path_factory.mktemp("base-install")
    pins = where / "constraints.txt"
    pins.write_text(_run([_uv(), "export", "--frozen", "--no-emit-project", "--no-hashes",
                          "--no-header", "--quiet"]).stdout)
    venv = where / "venv"
    _run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)])
    _run([_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
          "-c", str(pins), str(wheel)])
    return venv / "bin"


def test_the_wheel_holds_every_data_file_and_entry_point(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = _run(["git", "ls-files", *PACKAGES]).stdout.split()
    data = [p for p in tracked if not p.endswith(".py")]
    # the shipped knowledge base, the web page, the carbon and TDP tables, the OpenLineage
    # schemas with their licence, the facet schemas: all read at run time
    assert {"cmf_core/recommend/data/kb.json.gz", "cmf_core/server/static/index.html",
            "cmf_core/openlineage/spec/LICENSE"} <= set(data)
    in_wheel = {p: p.split("/", 2)[-1] if p.startswith("integrations/") else p for p in data}
    assert [p for p, w in in_wheel.items() if w not in names] == []
    # Airflow imports the provider's package-name, cmf_foundation, to look for example DAGs
    assert "cmf_foundation/__init__.py" in names
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    # the licence the metadata declares (Apache-2.0) comes with its text, as section 4(a) asks
    assert f"{dist_info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata and "License-File: LICENSE" in metadata
    assert b"Apache License" in zipfile.ZipFile(wheel).read(f"{dist_info}/licenses/LICENSE")
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    for line in ("cmf = cmf_core.script:main", "cmf = cmf_airflow.plugin:CmfPlugin",
                 "provider_info = cmf_airflow.provider_info:get_provider_info",
                 "cmf = cmf_prefect.plugin", "kubeflow = cmf_kubeflow.cli:register",
                 "prefect = cmf_prefect.cli:register"):
        assert line in entry_points, entry_points


def test_the_sdist_holds_the_tracked_files_but_not_the_recorded_benchmark_data(
        tmp_path: Path) -> None:
    _run([_uv(), "build", "--sdist", "--quiet", "-o", str(tmp_path)])
    (sdist,) = tmp_path.glob("cmf_foundation-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    tracked = _run(["git", "ls-files"]).stdout.split()
    recorded = {p for p in tracked if "/results/" in p and p.endswith((".json", ".png"))}
    assert recorded, "the benchmarks' recorded outputs moved: update pyproject's sdist exclude"
    # everything else a user or a packager needs is there: the code, tests, the lock file, the
    # benchmark scripts and their tables
    assert [p for p in tracked if p not in recorded and p not in names] == []
    assert names.isdisjoint(recorded)
    assert sdist.stat().st_size < 4_000_000


def test_a_base_install_records_recommends_and_names_missing_extras(base_install: Path,
                                                                    tmp_path: Path) -> None:
    env = {"PATH": f"{base_install}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "CMF_HOME": str(tmp_path / ".cmf-home"), "COLUMNS": "200"}
    cmf = str(base_install / "cmf")
    # really a base install: no extra is there
    probe = _run([str(base_install / "python"), "-c", "import sklearn"], env=env, check=False)
    assert "No module named 'sklearn'" in probe.stderr
    assert "Initialised CMF store at .cmf/cmf.db" in _run([cmf, "init", "."], tmp_path,
                                                           env).stdout
    script = ("from cmf_core import Cmf\n"
              "with Cmf(pipeline_name='p', measure_energy=False) as cmf:\n"
              "    with cmf.create_execution('train', params={'lr': 0.1}):\n"
              "        cmf.log_execution_metrics('eval', {'auc': 0.9})\n")
    _run([str(base_install / "python"), "-c", script], tmp_path, env)
    rows = json.loads(_run([cmf, "executions", "--json"], tmp_path, env).stdout)
    assert [(r["stage"], r["params"]) for r in rows] == [("train", {"lr": 0.1})]
    # the shipped knowledge base comes with the wheel; without scikit-learn the seeds come
    # from the similar tasks' runs, and the recommendation says what it did without
    rec = json.loads(_run([cmf, "recommend", str(TELCO), "--category", "classification",
                           "--target", "Churn", "-k", "3", "--json"], tmp_path, env).stdout)
    assert len(rec["seeds"]) == 3 and rec["knowledge_tasks"] >= 20
    assert "not ranked with a meta-model, which needs scikit-learn" in rec["message"]
    served = _run([cmf, "serve", "--port", "0"], tmp_path, env, check=False)
    assert served.returncode == 1
    assert served.stderr.strip().startswith("Error: cmf serve needs the server extra")


def test_a_base_install_names_the_extra_an_integration_command_needs(base_install: Path,
                                                                     tmp_path: Path) -> None:
    """`cmf prefect` and `cmf kubeflow` are listed without their extras (their commands that
    only read files or HTTP work without them); those that need the orchestrator's library say
    which extra to install, instead of a traceback (or, for the watcher, retrying forever)."""
    env = {"PATH": f"{base_install}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "CMF_HOME": str(tmp_path / ".cmf-home"), "COLUMNS": "200"}
    cmf = str(base_install / "cmf")
    probe = _run([str(base_install / "python"), "-c", "import prefect"], env=env, check=False)
    assert "No module named 'prefect'" in probe.stderr
    # --once: without it the watcher of the unfixed code never returned
    watch = _run([cmf, "prefect", "watch", "--once", "--api", "http://127.0.0.1:9/api"],
                 tmp_path, env, check=False)
    assert (watch.returncode, watch.stderr.strip()) == (
        1, "Error: cmf prefect watch needs the prefect extra (prefect is missing): "
           "pip install 'cmf-foundation[prefect]'")
    (tmp_path / "pipeline.yaml").write_text("pipelineInfo: {name: p}\n")
    track = _run([cmf, "kubeflow", "track", "pipeline.yaml", "tracked.yaml"], tmp_path, env,
                 check=False)
    assert (track.returncode, track.stderr.strip()) == (
        1, "Error: cmf kubeflow track needs the kubeflow extra (kfp is missing): "
           "pip install 'cmf-foundation[kubeflow]'")
    assert not (tmp_path / "tracked.yaml").exists()
