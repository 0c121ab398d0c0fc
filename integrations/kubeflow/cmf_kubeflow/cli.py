"""``cmf kubeflow ...``: track a compiled pipeline, import kfp.local and cluster runs.

Registered through the ``cmf.commands`` entry point (``kubeflow = "cmf_kubeflow.cli:register"``);
each command is a few lines over :mod:`cmf_kubeflow.tracking` or :mod:`cmf_kubeflow.importer`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from cmf_core.errors import ConfigError, InvalidInputError

# as cmf_core.cli.common's (imported from there, cmf_core.cli would load this plugin half-made)
StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL (default: CMF_STORE_URL "
                                              "or the embedded SQLite store).")]

kubeflow = typer.Typer(name="kubeflow", help="Kubeflow Pipelines: track pipelines, import runs.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``kubeflow`` command group to the ``cmf`` app."""
    app.add_typer(kubeflow, name="kubeflow")


def _pairs(values: list[str] | None, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"{what} {item!r} must be KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _echo(result: Any) -> None:
    typer.echo(json.dumps({"run": result.run_key, "pipeline": result.pipeline,
                           "executions": result.executions, "events_sent": result.sent,
                           "events_spooled": result.spooled, "notes": result.notes,
                           "run_execution": result.run_execution},
                          indent=2, sort_keys=True))


@kubeflow.command("track")
def track_cmd(
    source: Annotated[Path, typer.Argument(help="Compiled pipeline (IR YAML).")],
    destination: Annotated[Path, typer.Argument(help="Where to write the tracked pipeline.")],
    site: Annotated[str | None, typer.Option(help="CMF_SITE of the executors.")] = None,
    store_url: Annotated[str | None, typer.Option(help="CMF_STORE_URL of the executors.")]
    = None,
    server_url: Annotated[str | None, typer.Option(help="CMF_SERVER_URL of the executors.")]
    = None,
    secret: Annotated[str | None, typer.Option(
        help="Kubernetes secret whose 'token' key becomes CMF_SERVER_TOKEN.")] = None,
    setting: Annotated[list[str] | None, typer.Option(
        "--set", help="Another CMF setting for the executors, e.g. --set pue=1.3.")] = None,
) -> None:
    """Write a copy of a compiled pipeline whose Python components record into CMF.

    Example: cmf kubeflow track pipeline.yaml tracked.yaml --site hpc-a --secret cmf-server
    """
    try:
        import kfp  # noqa: F401  (the tracked copy is written with kfp's own compiler)
    except ImportError as e:
        # without it: a ModuleNotFoundError traceback from deep inside track_file
        raise ConfigError(f"cmf kubeflow track needs the kubeflow extra ({e.name} is missing): "
                          "pip install 'cmf-foundation[kubeflow]'") from None
    from cmf_kubeflow.tracking import track_file

    report = track_file(source, destination, site=site, store_url=store_url,
                        server_url=server_url, secret=secret,
                        settings=_pairs(setting, "--set"))
    typer.echo(f"tracked {len(report.tracked)} executor(s) into {destination}")
    for label, why in sorted(report.untracked.items()):
        typer.echo(f"not tracked: {label} ({why})")


@kubeflow.command("import-local")
def import_local_cmd(
    run_dir: Annotated[Path, typer.Argument(help="kfp.local run folder "
                                                 "(<pipeline_root>/<pipeline>-<timestamp>).")],
    pipeline: Annotated[Path | None, typer.Option(
        help="Compiled pipeline that ran (for inputs, parameters and artifact types).")] = None,
    arg: Annotated[list[str] | None, typer.Option(
        "--arg", help="A pipeline argument of that run, e.g. --arg rows=40.")] = None,
    store: StoreOpt = None,
) -> None:
    """Record a finished kfp.local run into the CMF store (safe to repeat).

    Example: cmf kubeflow import-local local_outputs/hep-2024-05-01-12-00-00-000001 --arg n=3
    """
    from cmf_kubeflow.importer import import_local_run

    _echo(import_local_run(run_dir, pipeline=pipeline, arguments=_pairs(arg, "--arg"),
                           settings=_settings(store)))


@kubeflow.command("import-run")
def import_run_cmd(
    run_id: Annotated[str, typer.Argument(help="KFP run id.")],
    host: Annotated[str, typer.Option(help="KFP API endpoint, e.g. http://ml-pipeline-ui.kubeflow")],
    token_env: Annotated[str, typer.Option(
        help="Environment variable holding the KFP API bearer token.")] = "KFP_API_TOKEN",
    download_max_bytes: Annotated[int, typer.Option(
        help="Download artifacts up to this size to digest their bytes (0: never).")]
    = 64 << 20,
    ui_host: Annotated[str | None, typer.Option(
        help="Where the KFP UI is served, for each execution's link to the run "
             "(default: $KF_PIPELINES_UI_ENDPOINT, else --host).")] = None,
    store: StoreOpt = None,
) -> None:
    """Record a run of a KFP cluster into the CMF store, via the v2beta1 REST API.

    Example: KFP_API_TOKEN=... cmf kubeflow import-run 3f6a9d2e-... --host https://kfp.example
    """
    from cmf_kubeflow.importer import KfpRunReader

    with KfpRunReader(host, token=os.environ.get(token_env) or None,
                      download_max_bytes=download_max_bytes, ui_host=ui_host) as reader:
        _echo(reader.import_run(run_id, settings=_settings(store)))


def _settings(store: str | None) -> Any:
    """The settings to record with: with --store, into that store (not CMF_SERVER_URL)."""
    from cmf_core.config import load_settings

    settings = load_settings(store_url=store)
    return settings.model_copy(update={"server_url": None}) if store else settings
