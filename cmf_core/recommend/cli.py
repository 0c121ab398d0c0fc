"""``cmf recommend``: seed configurations for a dataset or a task description.

Wire it into the ``cmf`` app with ``app.command("recommend")(recommend_command)``. Errors are
:class:`~cmf_core.errors.CmfError` and become one line and exit code 1 in ``cmf_core.cli.main``.
"""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated, Any

import typer

from cmf_core.errors import InvalidInputError


def _open_store(url: str | None) -> Any:
    """The store named by ``url``, else the configured one if it is set or already exists;
    ``None`` when there is none (recommendations then use the shipped knowledge base only)."""
    from cmf_core.config import load_settings
    from cmf_core.store import open_store

    settings = load_settings(store_url=url)
    resolved = settings.resolved_store_url
    if url or settings.store_url:
        return open_store(settings=settings, create=False)
    if resolved.startswith("sqlite:///") and Path(resolved[len("sqlite:///"):]).is_file():
        return open_store(settings=settings, create=False)
    return None


def recommend_command(
    dataset: Annotated[Path | None, typer.Argument(
        help="CSV file of the new task's data (header row; see docs/recommender.md).")] = None,
    task: Annotated[Path | None, typer.Option(
        "--task", help="JSON file with a task description instead of a dataset.")] = None,
    category: Annotated[str | None, typer.Option(
        help="classification, regression, anomaly_detection, clustering or forecasting.")] = None,
    modality: Annotated[str, typer.Option(
        help="tabular, time_series, image or text.")] = "tabular",
    target: Annotated[str | None, typer.Option(help="Label column of the CSV.")] = None,
    time_column: Annotated[str | None, typer.Option(
        help="Time column of a time-series CSV (left out of the values).")] = None,
    landmarks: Annotated[bool, typer.Option(
        "--landmarks", help="Also compute landmark meta-features (a few quick model fits).")
    ] = False,
    k: Annotated[int, typer.Option("-k", "--k", help="How many seeds.")] = 5,
    models: Annotated[str | None, typer.Option(
        "--models", help="The model families your search space has, comma-separated (e.g. "
        "rf,hgb): seeds of those alone.")] = None,
    threshold: Annotated[float | None, typer.Option(
        min=0.0, max=1.0,
        help="Similarity threshold, 0 to 1 (default: the knowledge base's calibrated one).")]
    = None,
    store: Annotated[str | None, typer.Option(
        "--store", help="Store URL whose recorded runs join the knowledge base (default: the "
        "configured store, if any).")] = None,
    no_shipped: Annotated[bool, typer.Option(
        "--no-shipped", help="Leave out the knowledge base shipped with cmf.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    seeder: Annotated[Path | None, typer.Option(
        "--seeder", help="Also write the adaptive seeder's state to this JSON file, for a "
        "search run elsewhere (a batch job): AdaptiveSeeder.from_dict(json.load(f)).")] = None,
) -> None:
    """Recommend model + hyperparameter seeds for a new task from the most similar past tasks.

    Each seed is scored against past runs: +1 = as good as a task's best run, 0 = its median
    run, below 0 = worse than its median run ("past tasks": its weighted mean on the past tasks
    behind it; "meta-model": predicted for this task). --json gives the same numbers as
    "expected" and "predicted", and the scale as "score_scale".

    Example: cmf recommend churn.csv --category classification --target Churn -k 5
    """
    if (dataset is None) == (task is None):
        raise InvalidInputError("give either a dataset CSV path or --task FILE.json (one of them)")
    # here, not at import: NumPy and the recommender would slow every other cmf command
    from cmf_core.recommend.recommender import recommend
    from cmf_core.recommend.task import ALL_GROUPS, DEFAULT_GROUPS, TaskDescription, describe_csv

    if task is not None:
        try:
            desc = TaskDescription.from_dict(jsonlib.loads(Path(task).read_text()))
        except FileNotFoundError:
            raise InvalidInputError(f"task file {task} does not exist") from None
        except OSError as e:  # a directory, no permission
            raise InvalidInputError(f"task file {task} cannot be read: {e}") from None
        except ValueError as e:
            raise InvalidInputError(f"task file {task} is not valid JSON: {e}") from None
    else:
        if category is None:
            raise InvalidInputError(
                "--category is required with a dataset (e.g. --category classification)"
            )
        desc = describe_csv(dataset, category=category, modality=modality, target=target,
                            time_column=time_column,
                            groups=ALL_GROUPS if landmarks else DEFAULT_GROUPS)
    opened = _open_store(store)
    try:
        rec = recommend(desc, k=k, store=opened, include_shipped=not no_shipped,
                        threshold=threshold, models=None if models is None else
                        [m.strip() for m in models.split(",") if m.strip()])
    finally:
        if opened is not None:
            opened.close()
    if seeder is not None:
        try:
            seeder.write_text(jsonlib.dumps({"seeder": rec.seeder_state()}, allow_nan=False))
        except OSError as e:
            raise InvalidInputError(f"cannot write the seeder to {seeder}: {e}") from None
    if json:
        from cmf_core.cli.common import print_json

        print_json(rec.to_dict())
    else:
        typer.echo(rec.explain())
