"""Scenario 1, end to end: three sites, three orchestrators, one lineage.

* ``hpc`` trains the tracking models with **Airflow** (``hpc_train_dag.py``, ``dag.test()`` in a
  subprocess with its own ``AIRFLOW_HOME``);
* ``edge`` pulls the HPC site's metadata, fetches the hit classifier by digest from the HPC
  site's server (``cmf artifact fetch``), and fine-tunes it on its own data with **Prefect**
  (``edge_finetune_flow.py``, in-process route), then pushes its metadata to ``hpc``;
* ``cloud`` pulls from both, fetches the fine-tuned classifier (from ``edge``) and the refiner
  (from ``hpc``), and evaluates the chain as a **Kubeflow** pipeline (``eval_pipeline.py``,
  ``kfp.local``);
* the sites sync with each other (``cmf sync``) until each store holds the whole chain.

Each site is a folder ``<out>/<site>/`` with its own CMF home (``.cmf/cmf.db``), its own data
(``data/``, never copied elsewhere except the model files fetched by digest) and its own
``cmf serve`` on a free loopback port; the edge also runs its own Prefect server (API only),
started at the outset so that it is ready by the time the flow runs. :func:`run` returns a
:class:`HepResult`; ``examples/demo.py`` prints its report, ``tests/examples/test_hep_scenario.py``
checks it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmf_core.errors import CmfError

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent
PY = sys.executable
SITES = ("hpc", "edge", "cloud")
PIPELINES = {"hpc": "hep-hpc-training", "edge": "hep-edge-finetune", "cloud": "hep-evaluation"}

# `cmf` with the federation commands registered even where cmf_core/cli does not list them yet
CLI = """
import sys
from cmf_core import cli
names = {c.name for c in cli.app.registered_commands} | {g.name for g in cli.app.registered_groups}
if "serve" not in names:
    from cmf_core.cli import serve_cmds
    serve_cmds.register(cli.app)
if "sync" not in names:
    from cmf_core.cli import sync_cmds
    sync_cmds.register(cli.app)
cli.main(sys.argv[1:])
"""


class ScenarioError(CmfError):
    """A step of a scenario failed; the message names the step and where its log is."""


Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """A progress callback that prints nothing."""


def cli_notes() -> list[str]:
    """What the scenario had to wire itself because the product does not (yet)."""
    from cmf_core import cli

    names = {c.name for c in cli.app.registered_commands}
    return [] if "serve" in names else [
        "`cmf serve` is not registered in cmf_core/cli/__init__.py; the demo registered it from "
        "cmf_core.cli.serve_cmds itself"]


def _die_with_parent() -> Callable[[], None] | None:
    """For a server's ``preexec_fn``: on Linux, ask the kernel to send the child SIGTERM when
    the process that started it dies, however it dies (SIGKILL, a crash), so that a killed demo
    or test leaves no `cmf serve` or Prefect server running (they are in their own session, out
    of reach of the terminal's Ctrl-C). Elsewhere None: there the demo's own signal handlers
    and :func:`stop` are all there is. ``prctl`` is looked up here, in the parent: the child
    of a process with threads must not load anything between fork and exec. (Strictly, the
    kernel watches the thread that started the child: the scenario starts them from its own.)"""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    term = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(1, term, 0, 0, 0)  # PR_SET_PDEATHSIG

    return preexec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_answers(proc: subprocess.Popen[bytes] | None, url: str, what: str, log: Path,
                  timeout: float) -> None:
    """Wait until ``url`` answers 200; raise :class:`ScenarioError` if ``proc`` exits first or
    the time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is None or proc.poll() is not None:
            raise ScenarioError(f"{what} exited; see {log}:\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise ScenarioError(f"{what} did not answer on {url} within {timeout:.0f} s; see {log}")


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Site:
    """One site: its folder, CMF home, data folder and server."""

    name: str
    root: Path
    port: int = 0
    server: subprocess.Popen[bytes] | None = None
    prefect: subprocess.Popen[bytes] | None = None  # the edge's Prefect server
    prefect_port: int = 0

    @property
    def home(self) -> Path:
        return self.root / ".cmf"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.home / 'cmf.db'}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: Any) -> dict[str, str]:
        """The environment of this site's processes: its CMF settings and nothing else's."""
        from cmf_core.config import Settings

        env = {k: v for k, v in os.environ.items() if not k.startswith("CMF_")}
        env.update(CMF_HOME=str(self.home), CMF_STORE_URL=self.store_url, CMF_SITE=self.name,
                   OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join(p for p in (str(EXAMPLES),
                                                          os.environ.get("PYTHONPATH")) if p))
        if "federation_artifact_roots" in Settings.model_fields:
            env["CMF_FEDERATION_ARTIFACT_ROOTS"] = json.dumps([str(self.data)])
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run(self, args: list[str], step: str, log: str, timeout: float = 600,
            **env: Any) -> str:
        """Run a command as this site; raise :class:`ScenarioError` with the log's tail."""
        path = self.root / "logs" / log
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            try:
                proc = subprocess.run(args, stdout=fh, stderr=subprocess.STDOUT,
                                      env=self.env(**env), cwd=self.root, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise ScenarioError(f"{self.name}: {step} ran over {timeout:.0f} s; see "
                                    f"{path}:\n{_tail(path)}") from None
        if proc.returncode != 0:
            raise ScenarioError(f"{self.name}: {step} failed (exit {proc.returncode}); see "
                                f"{path}:\n{_tail(path)}")
        return path.read_text(errors="replace")

    def cmf(self, *args: str, step: str | None = None, log: str = "cmf.log") -> str:
        """``cmf ARGS`` as this site; returns its output."""
        return self.run([PY, "-c", CLI, *args], step or f"cmf {' '.join(args[:2])}", log)

    def start_server(self) -> None:
        self.port = free_port()
        log = self.root / "logs" / "serve.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        fh = log.open("wb")
        self.server = subprocess.Popen(
            [PY, "-c", CLI, "serve", "--port", str(self.port), "--log-level", "warning"],
            stdout=fh, stderr=subprocess.STDOUT, env=self.env(), cwd=self.root,
            start_new_session=True, preexec_fn=_die_with_parent())
        fh.close()

    def wait_ready(self, timeout: float = 90.0) -> None:
        _wait_answers(self.server, self.url + "/api/v1/federation/info", f"{self.name}: "
                      "`cmf serve`", self.root / "logs" / "serve.log", timeout)

    def start_prefect(self) -> None:
        """Start this site's Prefect server (API only): it sets itself up while the other
        sites work, instead of a temporary one starting when the flow runs."""
        self.prefect_port = free_port()
        log = self.root / "logs" / "prefect-server.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as fh:
            self.prefect = subprocess.Popen(
                [PY, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                 str(self.prefect_port), "--no-services", "--no-ui"],
                stdout=fh, stderr=subprocess.STDOUT, env=self.env(**_prefect_env(self)),
                cwd=self.root, start_new_session=True, preexec_fn=_die_with_parent())

    @property
    def prefect_api(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    def wait_prefect(self, timeout: float = 180.0) -> None:
        _wait_answers(self.prefect, self.prefect_api + "/health", f"{self.name}: the Prefect "
                      "server", self.root / "logs" / "prefect-server.log", timeout)

    def stop_server(self) -> None:
        """Stop this site's servers (`cmf serve`, and Prefect's where it runs one)."""
        _terminate(self.server)
        self.server = None
        self.stop_prefect()

    def stop_prefect(self) -> None:
        """Stop this site's Prefect server (once its flow has run, nothing else uses it)."""
        _terminate(self.prefect)
        self.prefect = None

    def settings(self) -> Any:
        from cmf_core.config import load_settings

        return load_settings(home=self.home, store_url=self.store_url, site=self.name)

    def open_store(self) -> Any:
        from cmf_core.store import open_store

        return open_store(self.store_url, self.name)


@dataclass
class HepResult:
    out: Path
    sites: dict[str, Site]
    final_model: str = ""                      # digest of the fine-tuned classifier
    base_model: str = ""                       # digest of the HPC classifier
    refiner: str = ""
    fetched: dict[str, str] = field(default_factory=dict)   # file -> how it got there
    recommendation: dict[str, Any] = field(default_factory=dict)
    edge_scores: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, dict[str, float]] = field(default_factory=dict)
    syncs: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def report_site(self) -> Site:
        return self.sites["hpc"]


class Steps:
    """Numbered progress lines with timings: ``[2/6] hpc: training with Airflow ... 41.2 s``."""

    def __init__(self, total: int, progress: Progress, timings: dict[str, float]) -> None:
        self.total, self.progress, self.timings, self.n = total, progress, timings, 0

    def __call__(self, site: str, what: str) -> _Step:
        self.n += 1
        return _Step(self, f"[{self.n}/{self.total}] {site}: {what}")


class _Step:
    def __init__(self, steps: Steps, title: str) -> None:
        self.steps, self.title = steps, title

    def __enter__(self) -> _Step:
        self.t0 = time.perf_counter()
        self.steps.progress(f"{self.title} ...")
        return self

    def note(self, text: str) -> None:
        self.steps.progress(f"      {text}")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        dt = time.perf_counter() - self.t0
        self.steps.timings[self.title] = dt
        if exc_type is None:
            self.steps.progress(f"      done in {dt:.1f} s")


# the steps --------------------------------------------------------------------------------
def _latest_artifact(site: Site, suffix: str, origin: str | None = None) -> str:
    with site.open_store() as store:
        found = [a for a in store.find_artifacts(type="Model")
                 if a.uri.endswith(suffix) and (origin is None or a.site == origin)]
    if not found:
        raise ScenarioError(f"{site.name}: no Model artifact *{suffix} in the store; the step "
                            "that writes it recorded nothing (is the integration's tracking on?)")
    return max(found, key=lambda a: a.created_at).id


def _fetch(site: Site, digest: str, out: Path, owner: Site, result: HepResult) -> None:
    """``cmf artifact fetch DIGEST --from OWNER`` (:func:`cmf_core.federation.peer.fetch_artifact`,
    digest verified); a plain copy, said so, when the owner's server does not serve bytes."""
    from cmf_core.federation.peer import fetch_artifact

    out.parent.mkdir(parents=True, exist_ok=True)
    key = f"{site.name}:{out.name}"
    try:
        with site.open_store() as store:
            fetch_artifact(digest, out, peer_url=owner.url, store=store,
                           settings=site.settings(), force=True)
        result.fetched[key] = (f"cmf artifact fetch {digest[:19]}... --from {owner.name} "
                               "(digest verified)")
        return
    except CmfError as e:
        reason = str(e).rsplit(": ", 1)[-1]
    from cmf_core.identity import file_digest

    with owner.open_store() as store:
        paths = [Path(loc.uri.removeprefix("file://")) for loc in store.artifact_locations(digest)
                 if loc.site == owner.name]
    src = next((p for p in paths if p.is_file()), None)
    if src is None:
        raise ScenarioError(f"{site.name}: cannot fetch {digest} from {owner.name} ({reason}) "
                            f"and no local file of it exists to copy")
    shutil.copyfile(src, out)
    if file_digest(out) != digest:
        raise ScenarioError(f"{site.name}: the copy of {src} does not match {digest}")
    result.fetched[key] = (f"plain copy from {owner.name}, digest checked: `cmf artifact fetch` "
                           f"was refused ({reason})")


def _sync(site: Site, peer: Site, result: HepResult, direction: str = "both") -> None:
    """``cmf sync PEER_URL [--pull|--push|--both]`` (:func:`cmf_core.federation.peer.sync`)."""
    from cmf_core.federation.peer import sync

    with site.open_store() as store:
        rep = sync(peer.url, direction=direction, store=store,  # type: ignore[arg-type]
                   settings=site.settings())
    moved = []
    if direction in ("both", "pull"):
        moved.append(f"pulled {rep.pulled.records} records")
    if direction in ("both", "push"):
        moved.append(f"pushed {rep.pushed.records} records")
    result.syncs.append(f"{site.name} <- {peer.name} ({direction}): {', '.join(moved)}, "
                        f"{rep.bytes:,} bytes, {len(rep.conflicts)} conflicts")


def _airflow(site: Site, events: int, seed: int) -> subprocess.Popen[bytes]:
    """Start ``airflow db migrate`` for this site (the slow part of Airflow's set-up)."""
    home = site.root / "airflow"
    (home / "dags").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "hpc_train_dag.py", home / "dags" / "hpc_train_dag.py")
    log = site.root / "logs" / "airflow-migrate.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        return subprocess.Popen([PY, "-m", "airflow", "db", "migrate"], stdout=fh,
                                stderr=subprocess.STDOUT, cwd=site.root,
                                env=site.env(**_airflow_env(site, events, seed)))


def _airflow_env(site: Site, events: int, seed: int) -> dict[str, str]:
    home = site.root / "airflow"
    return {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "HEP_DATA_DIR": str(site.data),
            "HEP_EVENTS": str(events), "HEP_SEED": str(seed)}


def _check_completed(site: Site, pipeline: str, step: str, log: str) -> None:
    from cmf_core.store import ExecutionFilter

    with site.open_store() as store:
        runs = store.list_executions(ExecutionFilter(pipeline=pipeline))
    if not runs:
        raise ScenarioError(f"{site.name}: {step} recorded nothing in {site.store_url}; is the "
                            f"integration installed and on? See {site.root / 'logs' / log}")
    bad = [f"{e.stage}={e.status.value}" for e in runs if e.status.value != "completed"]
    if bad:
        raise ScenarioError(f"{site.name}: {step}: not every task completed ({', '.join(bad)}); "
                            f"see {site.root / 'logs' / log}:\n"
                            f"{_tail(site.root / 'logs' / log)}")


def _result_line(output: str) -> Any:
    for line in reversed(output.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return None


def run(out: str | Path, *, events: int = 16, edge_events: int = 12, test_events: int = 10,
        progress: Progress = print, steps: Steps | None = None,
        keep_serving: bool = False) -> HepResult:
    """Run scenario 1 into ``out`` (emptied first), in 5 numbered steps (``steps`` numbers
    them within a longer run). The servers stop at the end unless ``keep_serving``; then
    :func:`stop` stops them."""
    out = Path(out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    sites = {name: Site(name, out / name) for name in SITES}
    result = HepResult(out=out, sites=sites, notes=cli_notes())
    hpc, edge, cloud = sites["hpc"], sites["edge"], sites["cloud"]
    step = steps or Steps(5, progress, {})
    result.timings = step.timings
    try:
        with step("all", "one CMF home, data folder and `cmf serve` per site; the edge's "
                         "Prefect server"):
            migrate = _airflow(hpc, events, seed=1)  # runs while the rest starts
            for s in sites.values():
                s.data.mkdir(parents=True)
                s.home.mkdir(parents=True)
                s.open_store().close()  # what `cmf init --site NAME` does
                s.start_server()
            edge.start_prefect()  # sets itself up while hpc trains
            for s in sites.values():
                s.wait_ready()
                step.progress(f"      {s.name:<5} store {s.store_url}  server {s.url}")

        with step("hpc", f"training with Airflow ({events} events: geometric filter, "
                         "recommender-seeded classifier, track refiner)") as st:
            if migrate.wait(600) != 0:
                raise ScenarioError(f"hpc: `airflow db migrate` failed; see "
                                    f"{hpc.root / 'logs' / 'airflow-migrate.log'}:\n"
                                    f"{_tail(hpc.root / 'logs' / 'airflow-migrate.log')}")
            hpc.run([PY, str(hpc.root / "airflow" / "dags" / "hpc_train_dag.py")],
                    "the Airflow DAG (dag.test)", "airflow-dag.log",
                    **_airflow_env(hpc, events, seed=1))
            _check_completed(hpc, PIPELINES["hpc"], "the Airflow DAG", "airflow-dag.log")
            result.base_model = _latest_artifact(hpc, "hit-classifier.pkl")
            result.refiner = _latest_artifact(hpc, "track-refiner.json")
            result.recommendation = _recommendation(hpc)
            st.note(f"classifier {result.base_model[:19]}...  refiner {result.refiner[:19]}...")

        with step("edge", f"fine-tuning with Prefect on local data ({edge_events} noisier "
                          "events)") as st:
            _sync(edge, hpc, result, "pull")
            base = edge.data / "hit-classifier.pkl"
            _fetch(edge, result.base_model, base, hpc, result)
            st.note(result.fetched[f"edge:{base.name}"])
            edge.wait_prefect()
            output = edge.run(
                [PY, "-c", PREFECT_LAUNCH, str(HERE / "edge_finetune_flow.py"),
                 "--base-model", str(base), "--data-dir", str(edge.data),
                 "--events", str(edge_events), "--hpc-url", hpc.url],
                "the Prefect flow", "prefect-flow.log", **_prefect_env(edge),
                PREFECT_API_URL=edge.prefect_api)
            _check_completed(edge, PIPELINES["edge"], "the Prefect flow", "prefect-flow.log")
            edge.stop_prefect()  # its flow has run (with --keep-serving only `cmf serve` stays)
            result.edge_scores = _result_line(output) or {}
            result.final_model = _latest_artifact(edge, "hit-classifier-edge.pkl", "edge")
            st.note(f"fine-tuned classifier {result.final_model[:19]}...; local validation "
                    f"AUC {result.edge_scores.get('auc_base', float('nan')):.4f} (base) -> "
                    f"{result.edge_scores.get('auc_finetuned', float('nan')):.4f}")

        with step("cloud", f"evaluating with Kubeflow Pipelines ({test_events} events, "
                           "kfp.local)") as st:
            _sync(cloud, edge, result, "pull")
            _sync(cloud, hpc, result, "pull")
            clf, ref = cloud.data / "hit-classifier-edge.pkl", cloud.data / "track-refiner.json"
            _fetch(cloud, result.final_model, clf, edge, result)
            _fetch(cloud, result.refiner, ref, hpc, result)
            output = cloud.run(
                [PY, str(HERE / "eval_pipeline.py"), "--classifier", str(clf), "--refiner",
                 str(ref), "--events", str(test_events), "--output", str(cloud.root / "kfp")],
                "the Kubeflow pipeline", "kfp-pipeline.log")
            _check_completed(cloud, PIPELINES["cloud"], "the Kubeflow pipeline",
                             "kfp-pipeline.log")
            result.evaluation = _result_line(output) or {}
            ev = result.evaluation.get("evaluate-tracks", {})
            st.note(f"tracking efficiency {ev.get('tracking_efficiency', float('nan')):.3f}, "
                    f"fake rate {ev.get('fake_rate', float('nan')):.3f}")

        with step("all", "federated sync (metadata only; data stays at each site)"):
            _sync(cloud, edge, result)
            _sync(edge, hpc, result)
            _sync(cloud, hpc, result)
            for line in result.syncs:
                step.progress(f"      {line}")
    except BaseException:
        stop(result)
        raise
    if not keep_serving:
        stop(result)
    return result


def stop(result: HepResult) -> None:
    for s in result.sites.values():
        s.stop_server()


# Prefect is imported first: with PREFECT_PLUGINS_ENABLED=true and cmf's `prefect.plugins` entry
# point installed, that import installs the in-process route; install() again is a no-op then,
# and installs it where the entry point is not there.
PREFECT_LAUNCH = """
import runpy, sys
import prefect
import cmf_prefect
if not cmf_prefect.install():
    sys.exit("cmf_prefect.install() refused to install the in-process route (see above)")
path = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(path, run_name="__main__")
"""


def _prefect_env(site: Site) -> dict[str, str]:
    return {"PREFECT_HOME": str(site.root / "prefect"), "PREFECT_PLUGINS_ENABLED": "true",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_LEVEL": "WARNING"}


def _recommendation(site: Site) -> dict[str, Any]:
    """The recommend-seed step's recommendation with its reasons: recomputed from the same
    description and the shipped knowledge base (the fresh hpc store had no runs yet), checked
    against the configurations the step returned (recorded by the listener from its XCom)."""
    from cmf_core.recommend import describe_csv, recommend
    from cmf_core.store import ExecutionFilter

    task = describe_csv(site.data / "hit-features.csv", category="classification",
                        target="label", name="hep-hit-classification")
    rec = recommend(task, k=3)
    with site.open_store() as store:
        runs = store.list_executions(ExecutionFilter(pipeline=PIPELINES["hpc"],
                                                     stage="recommend_seed"))
    recorded = runs[-1].properties.get("airflow.xcom_return") if runs else None
    value = recorded.get("value") if isinstance(recorded, dict) else None
    return rec.to_dict() | {"explain": rec.explain(), "recorded_configs": value,
                            "matches_recorded": value == rec.configs() if value else None}


# reading the merged stores ----------------------------------------------------------------
def upstream_sites(site: Site, digest: str) -> dict[str, list[str]]:
    """Site -> ``pipeline/stage`` of every execution upstream of ``digest`` in ``site``'s store."""
    from cmf_core.lineage import Query

    out: dict[str, list[str]] = {}
    with site.open_store() as store:
        prov = Query(store).provenance(digest)
        for e in prov.executions:
            out.setdefault(e.site, []).append(f"{e.pipeline}/{e.stage}")
    return {k: sorted(v) for k, v in sorted(out.items())}


def downstream_sites(site: Site, digest: str) -> dict[str, list[str]]:
    from cmf_core.lineage import Query

    out: dict[str, list[str]] = {}
    with site.open_store() as store:
        q = Query(store)
        seen: set[str] = set()
        frontier = [digest]
        while frontier:
            aid = frontier.pop()
            for e in q.consumers(aid):
                if e.id in seen:
                    continue
                seen.add(e.id)
                out.setdefault(e.site, []).append(f"{e.pipeline}/{e.stage}")
                frontier += [ev.artifact_id for ev in store.events([e.id])
                             if ev.type.value == "OUTPUT"]
    return {k: sorted(v) for k, v in sorted(out.items())}


def energy_check(site: Site) -> tuple[float, float, float, float]:
    """(rolled-up kWh, sum of per-execution kWh, rolled-up kgCO2e, sum of per-execution kgCO2e)
    over the whole merged store."""
    import math

    from cmf_core.carbon.rollup import rollup

    with site.open_store() as store:
        r = rollup(store, by="site")
        records = store.energy()
    return (r.total.energy_kwh, math.fsum(x.energy_kwh for x in records),
            r.total.co2e_kg, math.fsum(x.co2e_kg for x in records))


def sites_in(site: Site) -> Iterable[str]:
    with site.open_store() as store:
        return sorted({e.site for e in store.list_executions()})
