"""Zero-change tracking of a KFP pipeline: :func:`track` rewrites its executors, not its code.

Why not a decorator: ``@dsl.component`` compiles the *source text* of the function into the
container command, so anything wrapped around the function object is silently dropped. The
place every component run goes through is its executor's container spec, so that is what
:func:`track` changes, for every lightweight (and containerized) Python component:

* **command**: ``python3 -m kfp.dsl.executor_main ...`` becomes ``python3 -m
  cmf_kubeflow.bootstrap -m kfp.dsl.executor_main ...`` (:mod:`cmf_kubeflow.bootstrap`), after a
  short shell preamble that (a) names the pipeline and task (:mod:`cmf_kubeflow.conf`),
  (b) exports CMF settings given to :func:`track` as *defaults* (set only when the environment
  has no value), and (c) checks that ``cmf_kubeflow`` is importable in the
  image, else runs the executor untracked with one line on stderr. The ``kfp.local``
  ``SubprocessRunner`` runs this command as is (kfp 2.16 ignores ``env`` there), so the preamble
  is what configures local runs.
* **env** (clusters): the same CMF settings as container ``env`` entries.
* **Kubernetes platform spec** (clusters): ``KFP_RUN_ID`` from the pod label ``pipeline/runid``
  (``fieldPathAsEnv``), so the execution ids are the ones
  :class:`~cmf_kubeflow.importer.KfpRunReader` derives; and, with ``secret=``,
  ``CMF_SERVER_TOKEN`` (and ``CMF_SERVER_URL`` when the secret has a ``url`` key mapped) from a
  Kubernetes secret (``secretAsEnv``). Tokens never go into the spec as plain values.

Container components (arbitrary images and commands) and importers are left as they are; their
runs can be imported afterwards (:mod:`cmf_kubeflow.importer`). Tracking is idempotent: tracking a
tracked pipeline replaces the preamble. The command changes once, so KFP caching keeps working
(no per-run value is added to the task inputs).
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmf_core.config import ENV_PREFIX, Settings
from cmf_core.errors import ConfigError, InvalidInputError
from cmf_kubeflow.conf import (
    JOB_ENV,
    JOB_TASK_ENV,
    LOOP_ENV,
    PIPELINE_ENV,
    RUN_ID_ENV,
    RUN_ID_FIELD_PATH,
    TASK_ENV,
)
from cmf_kubeflow.spec import executor_tasks, load_documents, repeated_names

log = logging.getLogger("cmf")

EXECUTOR_MODULE = "kfp.dsl.executor_main"
HOOK_MODULE = "cmf_kubeflow.bootstrap"
HOOK_VAR = "KFP_CMF_HOOK"
BEGIN_MARK = "# cmf-foundation tracking: begin (cmf_kubeflow.track)"
END_MARK = "# cmf-foundation tracking: end"
_EXECUTOR_CALL = re.compile(
    r"python3(\s+\$" + HOOK_VAR + r")?\s+-m\s+" + re.escape(EXECUTOR_MODULE))
_BLOCK = re.compile(re.escape(BEGIN_MARK) + r".*?" + re.escape(END_MARK) + r"\n", re.S)
_SECRET_SETTINGS = frozenset({"server_token", "token"})
DEFAULT_SECRET_KEYS: Mapping[str, str] = {"token": "CMF_SERVER_TOKEN"}
"""Keys of the Kubernetes secret named by ``secret=`` -> environment variables."""


@dataclass(frozen=True, slots=True)
class TrackingOptions:
    """How tracked executors find their CMF store (see :func:`track`)."""

    settings: Mapping[str, str] = field(default_factory=dict)
    """``CMF_*`` variables (already prefixed and upper-case) with their values."""
    secret: str | None = None
    secret_keys: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SECRET_KEYS))
    run_id_env: bool = True

    @classmethod
    def build(cls, *, store_url: str | None = None, site: str | None = None,
              server_url: str | None = None, settings: Mapping[str, Any] | None = None,
              secret: str | None = None, secret_keys: Mapping[str, str] | None = None,
              run_id_env: bool = True) -> TrackingOptions:
        given: dict[str, Any] = dict(settings or {})
        for key, value in (("store_url", store_url), ("site", site), ("server_url", server_url)):
            if value is not None:
                given[key] = value
        env: dict[str, str] = {}
        known = set(Settings.model_fields)
        for key, value in given.items():
            name = key.lower().removeprefix(ENV_PREFIX.lower())
            if name not in known:
                raise ConfigError(
                    f"unknown CMF setting {key!r} for tracked executors; known settings are: "
                    f"{', '.join(sorted(known))}"
                )
            if name in _SECRET_SETTINGS:
                raise ConfigError(
                    f"{key!r} is a secret and would be written into the pipeline spec; pass it "
                    "through a Kubernetes secret (track(..., secret='<name>')) or the executor's "
                    "environment instead"
                )
            if value is None:
                continue
            env[f"{ENV_PREFIX}{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value))
        keys = dict(DEFAULT_SECRET_KEYS if secret_keys is None else secret_keys)
        for var in keys.values():
            if not var.startswith(ENV_PREFIX) or var[len(ENV_PREFIX):].lower() not in known:
                raise ConfigError(
                    f"secret key mapped to {var!r}, which is not a CMF_* setting; map secret keys "
                    "to e.g. CMF_SERVER_TOKEN or CMF_SERVER_URL"
                )
        return cls(settings=env, secret=secret, secret_keys=keys, run_id_env=run_id_env)


@dataclass(slots=True)
class TrackingReport:
    """Which executors :func:`track` changed, and which it could not."""

    tracked: list[str] = field(default_factory=list)
    untracked: dict[str, str] = field(default_factory=dict)


# the IR, as plain dicts ------------------------------------------------------------------------
def _preamble(pipeline: str, task: str, in_loop: bool, options: TrackingOptions) -> str:
    q = shlex.quote
    lines = [
        BEGIN_MARK,
        f"{PIPELINE_ENV}={q(pipeline)}",
        f"{TASK_ENV}={q(task)}",
        f"{LOOP_ENV}={'1' if in_loop else ''}",
        f"{JOB_ENV}='{{{{$.pipeline_job_name}}}}'",
        f"{JOB_TASK_ENV}='{{{{$.pipeline_task_name}}}}'",
        f"export {PIPELINE_ENV} {TASK_ENV} {LOOP_ENV} {JOB_ENV} {JOB_TASK_ENV}",
    ]
    for name, value in sorted(options.settings.items()):  # a default: the environment wins
        lines.append(f'if [ -z "${{{name}:-}}" ]; then {name}={q(value)}; fi; export {name}')
    lines += [
        f"if python3 -c 'import {HOOK_MODULE}' >/dev/null 2>&1; then "
        f"{HOOK_VAR}='-m {HOOK_MODULE}'; else {HOOK_VAR}=''; "
        "echo 'cmf: cmf-foundation is not installed in this image; the task runs untracked' >&2; "
        "fi",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def _rewrite_command(command: list[str], preamble: str) -> list[str] | None:
    """The tracked command, or ``None`` when this is not a Python-function executor."""
    for i, part in enumerate(command):
        if isinstance(part, str) and _EXECUTOR_CALL.search(part) and "\n" in part:
            body = _BLOCK.sub("", part)
            body = _EXECUTOR_CALL.sub(f"python3 ${HOOK_VAR} -m {EXECUTOR_MODULE}", body, count=1)
            return [*command[:i], preamble + body, *command[i + 1:]]
    if list(command[:3]) == ["python3", "-m", EXECUTOR_MODULE]:  # containerized component
        script = preamble + f'exec python3 ${HOOK_VAR} -m {EXECUTOR_MODULE} "$@"\n'
        return ["sh", "-ec", script, "kfp-executor", *command[3:]]
    return None


def _merge_env(container: dict[str, Any], values: Mapping[str, str]) -> None:
    env = [e for e in container.get("env") or [] if e.get("name") not in values]
    env += [{"name": k, "value": v} for k, v in sorted(values.items())]
    if env:
        container["env"] = env


def _platform_executor(platform: dict[str, Any], label: str) -> dict[str, Any]:
    k8s = platform.setdefault("platforms", {}).setdefault("kubernetes", {})
    return k8s.setdefault("deploymentSpec", {}).setdefault("executors", {}).setdefault(label, {})


def _add_platform(platform: dict[str, Any], label: str, options: TrackingOptions) -> None:
    if options.run_id_env:
        cfg = _platform_executor(platform, label)
        entries = [e for e in cfg.get("fieldPathAsEnv") or [] if e.get("name") != RUN_ID_ENV]
        cfg["fieldPathAsEnv"] = [*entries, {"name": RUN_ID_ENV, "fieldPath": RUN_ID_FIELD_PATH}]
    if options.secret:
        cfg = _platform_executor(platform, label)
        entries = [e for e in cfg.get("secretAsEnv") or []
                   if e.get("secretName") != options.secret]
        key_to_env = [{"secretKey": k, "envVar": v} for k, v in sorted(options.secret_keys.items())]
        cfg["secretAsEnv"] = [*entries, {"secretName": options.secret, "keyToEnv": key_to_env}]


def track_spec(spec: Mapping[str, Any], platform: Mapping[str, Any] | None = None,
               options: TrackingOptions | None = None
               ) -> tuple[dict[str, Any], dict[str, Any], TrackingReport]:
    """Tracked copies of an IR pipeline spec and its platform spec (camelCase JSON dicts)."""
    options = options or TrackingOptions()
    spec = copy.deepcopy(dict(spec))
    platform = copy.deepcopy(dict(platform or {}))
    if "deploymentSpec" not in spec or "root" not in spec:
        raise InvalidInputError(
            "this is not a compiled KFP pipeline (no deploymentSpec/root); pass a @dsl.pipeline "
            "function, a compiled pipeline YAML file or its PipelineSpec"
        )
    pipeline = (spec.get("pipelineInfo") or {}).get("name") or "kfp"
    tasks = executor_tasks(spec)
    repeated = repeated_names(spec)
    report = TrackingReport()
    for label, executor in sorted((spec["deploymentSpec"].get("executors") or {}).items()):
        container = executor.get("container")
        if container is None:
            report.untracked[label] = "not a container executor (importer or resolver)"
            continue
        runs = tasks.get(label, [])
        task = runs[0].name if len({t.name for t in runs}) == 1 else ""
        in_loop = any(t.name in repeated for t in runs)
        tracked = _rewrite_command(list(container.get("command") or []),
                                   _preamble(pipeline, task, in_loop, options))
        if tracked is None:
            report.untracked[label] = "container component: its command is not a KFP executor"
            continue
        container["command"] = tracked
        _merge_env(container, options.settings)
        _add_platform(platform, label, options)
        report.tracked.append(label)
    for label, why in report.untracked.items():
        log.info("cmf: executor %s is not tracked: %s", label, why)
    return spec, platform, report


# public entry points ---------------------------------------------------------------------------
def _to_dict(message: Any) -> dict[str, Any]:
    from google.protobuf import json_format

    return json_format.MessageToDict(message)


def _spec_protos(spec: Mapping[str, Any], platform: Mapping[str, Any]) -> tuple[Any, Any]:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    return (json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec()),
            json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec()))


def track(pipeline: Any, *, store_url: str | None = None, site: str | None = None,
          server_url: str | None = None, settings: Mapping[str, Any] | None = None,
          secret: str | None = None, secret_keys: Mapping[str, str] | None = None,
          run_id_env: bool = True) -> Any:
    """Return ``pipeline`` with every Python component run recorded into CMF.

    ``pipeline`` is a ``@dsl.pipeline`` function (or any component with a graph: the result is
    of the same kind, runnable with ``kfp.local`` and compilable with ``kfp.compiler``), a
    ``PipelineSpec`` (a tracked copy is returned), a compiled IR dict (ditto), or the path of a
    compiled IR YAML file (a loaded component is returned; see :func:`track_file` to write one).

    ``store_url``, ``site``, ``server_url`` and ``settings`` (any other CMF setting, e.g.
    ``{"pue": 1.3}``) become the executors' ``CMF_*`` defaults; ``secret`` names a Kubernetes
    secret whose keys (``secret_keys``, default ``{"token": "CMF_SERVER_TOKEN"}``) become
    environment variables; ``run_id_env`` adds ``KFP_RUN_ID`` from the pod label
    ``pipeline/runid``. The component code is not changed; see the module docs for how.
    """
    options = TrackingOptions.build(store_url=store_url, site=site, server_url=server_url,
                                    settings=settings, secret=secret, secret_keys=secret_keys,
                                    run_id_env=run_id_env)
    if isinstance(pipeline, (str, os.PathLike)):
        spec, platform = load_documents(Path(pipeline))
        new_spec, new_platform, _ = track_spec(spec, platform, options)
        return _component_from_dicts(new_spec, new_platform)
    if isinstance(pipeline, Mapping):
        return track_spec(pipeline, None, options)[0]
    from kfp.dsl import base_component
    from kfp.pipeline_spec import pipeline_spec_pb2

    if isinstance(pipeline, pipeline_spec_pb2.PipelineSpec):
        spec, _, _ = track_spec(_to_dict(pipeline), None, options)
        return _spec_protos(spec, {})[0]
    if isinstance(pipeline, base_component.BaseComponent):
        graph = pipeline.component_spec.implementation.graph
        if graph is None:
            raise InvalidInputError(
                f"{pipeline.name!r} is a single component, not a pipeline; call it inside a "
                "@dsl.pipeline function and track that pipeline"
            )
        spec, platform, _ = track_spec(_to_dict(graph), _to_dict(pipeline.platform_spec), options)
        spec_pb, platform_pb = _spec_protos(spec, platform)
        tracked = copy.copy(pipeline)
        tracked.component_spec = copy.deepcopy(pipeline.component_spec)
        tracked.component_spec.implementation.graph = spec_pb
        tracked.component_spec.platform_spec = platform_pb
        return tracked
    raise InvalidInputError(
        f"cannot track a {type(pipeline).__name__}; pass a @dsl.pipeline function, a compiled "
        "pipeline YAML path, a PipelineSpec or its dict"
    )


def _component_from_dicts(spec: dict[str, Any], platform: dict[str, Any]) -> Any:
    import yaml
    from kfp import components

    docs = [spec] + ([platform] if platform else [])
    return components.load_component_from_text(yaml.safe_dump_all(docs, sort_keys=True))


def track_file(source: str | os.PathLike[str], destination: str | os.PathLike[str],
               **options: Any) -> TrackingReport:
    """Write a tracked copy of the compiled pipeline ``source`` to ``destination`` (IR YAML).

    ``options`` are those of :func:`track`. The result loads with
    ``kfp.components.load_component_from_file`` and submits like the original.
    """
    from kfp.compiler import pipeline_spec_builder

    opts = TrackingOptions.build(**options)
    spec, platform = load_documents(Path(source))
    new_spec, new_platform, report = track_spec(spec, platform, opts)
    spec_pb, platform_pb = _spec_protos(new_spec, new_platform)
    pipeline_spec_builder.write_pipeline_spec_to_file(
        pipeline_spec=spec_pb, pipeline_description=None, platform_spec=platform_pb,
        package_path=str(destination))
    return report
