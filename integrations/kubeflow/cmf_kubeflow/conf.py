"""What the tracked executor reads from its environment, in one place.

CMF settings themselves are ordinary ``CMF_*`` variables read by :mod:`cmf_core.config`
(``CMF_STORE_URL``, ``CMF_SITE``, ``CMF_SERVER_URL``, ``CMF_SERVER_TOKEN``, ...). On a cluster
they come from the container's ``env`` or a Kubernetes secret; :func:`cmf_kubeflow.track`
writes both. The variables below say *which task run* the executor is; :func:`cmf_kubeflow.track`
writes them into the executor's command, because the ``kfp.local`` runners of kfp 2.16 ignore a
container's ``env``. They are not ``CMF_*`` names: cmf_core rejects unknown ``CMF_*`` settings.

==========================  ==================================================================
variable                    meaning
==========================  ==================================================================
``KFP_CMF_PIPELINE``        pipeline name (``pipelineInfo.name``), fixed when tracking
``KFP_CMF_TASK``            task name, fixed when tracking (empty if the executor is shared)
``KFP_CMF_LOOP``            ``1`` when the task runs more than once per run under its name:
                            inside a ``ParallelFor``, with retries, or under a name tasks of
                            several DAGs share (:func:`~cmf_kubeflow.spec.repeated_names`)
``KFP_CMF_JOB``             ``{{$.pipeline_job_name}}``: resolved by ``kfp.local`` to the run
                            folder name; left as written by a cluster's launcher
``KFP_CMF_JOB_TASK``        ``{{$.pipeline_task_name}}``: resolved by ``kfp.local`` only
``KFP_RUN_ID``              the KFP run id on a cluster, from the pod label ``pipeline/runid``
                            (``fieldPathAsEnv`` in the Kubernetes platform spec)
``KFP_POD_NAME``            set by the KFP backend on every executor pod
==========================  ==================================================================

``KF_PIPELINES_UI_ENDPOINT`` (``kfp.Client``'s own variable) says where the KFP UI is served:
with ``KFP_RUN_ID``, each execution links to its run's page there (``cmf.run_url``); unset, no
link is recorded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

PIPELINE_ENV = "KFP_CMF_PIPELINE"
TASK_ENV = "KFP_CMF_TASK"
LOOP_ENV = "KFP_CMF_LOOP"
JOB_ENV = "KFP_CMF_JOB"
JOB_TASK_ENV = "KFP_CMF_JOB_TASK"
RUN_ID_ENV = "KFP_RUN_ID"
POD_NAME_ENV = "KFP_POD_NAME"

UI_ENDPOINT_ENV = "KF_PIPELINES_UI_ENDPOINT"

RUN_ID_FIELD_PATH = "metadata.labels['pipeline/runid']"
"""The pod label holding the KFP run id (exposed as ``KFP_RUN_ID`` via the downward API)."""

_LOCAL_RUN = re.compile(
    r"^(?P<pipeline>.+)-[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{6}\Z")
"""``kfp.local`` run folder: ``<pipeline name>-%Y-%m-%d-%H-%M-%S-%f``."""


def _resolved(value: str | None) -> str | None:
    """``value`` unless empty or a placeholder nobody substituted (``{{$....}}``)."""
    if not value or "{{$" in value:
        return None
    return value


def in_cluster_pod(env: dict[str, str] | None = None) -> bool:
    """True inside an executor pod of a KFP cluster (the backend sets ``KFP_POD_NAME``)."""
    return _resolved((os.environ if env is None else env).get(POD_NAME_ENV)) is not None


def ui_endpoint(explicit: str | None = None, env: Mapping[str, str] | None = None
                ) -> str | None:
    """Where the KFP UI is served: ``explicit``, else ``KF_PIPELINES_UI_ENDPOINT`` (the variable
    ``kfp.Client`` reads to link its runs); None when neither is an http(s) URL."""
    from cmf_core.model import web_url

    env = os.environ if env is None else env
    return web_url((explicit or env.get(UI_ENDPOINT_ENV) or "").strip().rstrip("/"))


def run_link(ui_host: str | None, run_id: str | None) -> dict[str, str]:
    """``{"cmf.run_url": "<ui_host>/#/runs/details/<run id>"}``, the page ``kfp.Client`` links a
    run to; nothing without a UI host or a KFP run id (``kfp.local`` has neither)."""
    from urllib.parse import quote

    from cmf_core.model import RUN_URL_PROPERTY

    if not ui_host or not run_id:
        return {}
    return {RUN_URL_PROPERTY: f"{ui_host.rstrip('/')}/#/runs/details/{quote(run_id, safe='')}"}


def local_run_pipeline(run_folder: str) -> str | None:
    """Pipeline name of a ``kfp.local`` run folder name, if it has that shape."""
    m = _LOCAL_RUN.match(run_folder)
    return m.group("pipeline") if m else None


@dataclass(frozen=True, slots=True)
class TaskIdentity:
    """Which task run an executor is, and how that was found out."""

    pipeline: str
    run_key: str
    task: str
    source: str
    """``kfp.local`` (run folder), ``cluster`` (``KFP_RUN_ID``) or ``pod`` (pod name only)."""
    scope: str = ""
    """Which iteration of a loop: the kfp.local group folders (``for-loop-2-iteration-0``),
    or on a cluster ``pod:<pod name>``; empty outside loops."""


def task_identity(env: Mapping[str, str] | None = None, *, function: str = "task",
                  output_file: str | None = None) -> TaskIdentity:
    """The task run this executor is, from its environment (see the module docs).

    kfp.local resolves ``KFP_CMF_JOB`` (its nested control-flow folders give
    ``<run>/<group>...``: the run is the first part, the rest is the scope). A cluster leaves it
    unresolved; the run is then ``KFP_RUN_ID``, else the pod name (unique per task run, but an
    importer cannot find it again), else the executor output file's folder; inside a loop the
    pod name is the scope.
    """
    env = os.environ if env is None else env
    job = _resolved(env.get(JOB_ENV))
    task = _resolved(env.get(JOB_TASK_ENV)) or _resolved(env.get(TASK_ENV)) or function
    pipeline = _resolved(env.get(PIPELINE_ENV))
    scope = ""
    if job:
        run_key, _, scope = job.partition("/")
        source = "kfp.local"
    elif _resolved(env.get(RUN_ID_ENV)):
        run_key, source = str(env[RUN_ID_ENV]), "cluster"
    elif _resolved(env.get(POD_NAME_ENV)):
        run_key, source = f"pod:{env[POD_NAME_ENV]}", "pod"
    else:
        run_key, source = f"path:{os.path.dirname(output_file or '') or os.getcwd()}", "pod"
    if source != "kfp.local" and env.get(LOOP_ENV) and _resolved(env.get(POD_NAME_ENV)):
        scope = f"pod:{env[POD_NAME_ENV]}"
    if pipeline is None:
        pipeline = (local_run_pipeline(run_key) if source == "kfp.local" else None) or "kfp"
    return TaskIdentity(pipeline=pipeline, run_key=run_key, task=task, source=source,
                        scope=scope)
