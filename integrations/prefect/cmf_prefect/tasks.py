"""Prefect tasks for the two steps users add to their flows: recommend-seed and federated-sync.

    from cmf_prefect.tasks import federated_sync, recommend_seed

    @flow
    def tune(data: str):
        rec = recommend_seed(data=data, category="classification", target="label", k=5)
        study = optuna.create_study(direction="maximize")
        seeder = AdaptiveSeeder.from_dict(rec)    # each seed chosen after the previous scores
        seeder.enqueue_first(study)               # (static list: rec["optuna_params"])
        study.optimize(objective, n_trials=50, callbacks=[seeder.optuna_callback()])
        federated_sync("https://cmf.hpc.example.org", token=..., pipeline="tune")

Both return plain JSON-ready dicts (Prefect can persist them, the lineage routes record them)
and read the CMF configuration from a :class:`~cmf_prefect.blocks.CmfConnection` block when one
is given, else from ``CMF_*`` / ``cmf.toml``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger, task

from cmf_prefect.blocks import CmfConnection, CmfPeer

if TYPE_CHECKING:
    from cmf_core.config import Settings

DIRECTIONS = ("pull", "push", "both")


def _settings(connection: CmfConnection | None) -> Settings:
    from cmf_core.config import load_settings

    return connection.settings() if connection is not None else load_settings()


@task(name="recommend-seed")
def recommend_seed(
    task_description: Mapping[str, Any] | Any | None = None,
    *,
    data: str | None = None,
    category: str | None = None,
    target: str | None = None,
    modality: str = "tabular",
    k: int = 5,
    models: list[str] | None = None,
    use_store: bool = True,
    connection: CmfConnection | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Seed configurations for a search, from the runs of the most similar past tasks.

    Describe the task with ``task_description`` (a ``TaskDescription`` or its dict form) or
    let the task describe a CSV file: ``data`` with ``category`` (and ``target`` for
    classification and regression). ``models``: the model families the search's space has
    (e.g. ``["rf", "hgb"]``), so that every seed is one the search can run. The knowledge base
    is the shipped one plus the runs in the CMF store (``use_store``). Returns
    ``Recommendation.to_dict(seeder=True)`` with ``configs`` and ``optuna_params`` (for
    ``Study.enqueue_trial``) added, best first; the search task can
    instead pass the whole result to ``AdaptiveSeeder.from_dict`` for adaptive seeds (each
    chosen after the scores of the previous ones, :mod:`cmf_core.recommend.adaptive`). By
    default the task never fails the flow (:mod:`cmf_core.recommend.step`): data that cannot
    be described (a missing, empty or degenerate file) gives no seeds, a store that cannot be
    read gives seeds from the shipped knowledge base alone, and ``message`` and ``error`` say
    why; ``strict=True`` raises instead.
    """
    from cmf_core.errors import InvalidInputError
    from cmf_core.recommend import describe_csv
    from cmf_core.recommend.step import recommend_step

    if (data is None) == (task_description is None):
        raise InvalidInputError(
            "recommend_seed needs either task_description or data (a CSV path), not both")
    if data is not None and category is None:
        raise InvalidInputError(
            f"recommend_seed(data={data!r}) needs category= (classification, regression, ...)")

    def describe() -> Any:
        if data is not None:
            return describe_csv(data, category=str(category), target=target, modality=modality)
        return task_description

    def store() -> Any:
        from cmf_core.store import open_store

        return open_store(settings=_settings(connection))

    rec = recommend_step(describe, k=k, store=store if use_store else None, strict=strict,
                         logger=get_run_logger(), models=models)
    get_run_logger().info("cmf recommend-seed: %s", rec.explain())
    out = rec.to_dict(seeder=True)
    out["configs"] = rec.configs()
    out["optuna_params"] = rec.optuna_params()
    return out


def _plain(value: Any) -> Any:
    from cmf_core import jsonutil

    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return jsonutil.clean(value)


@task(name="federated-sync")
def federated_sync(
    peer: CmfPeer | str,
    *,
    token: str | None = None,
    direction: str = "both",
    pipeline: str | None = None,
    connection: CmfConnection | None = None,
) -> dict[str, Any]:
    """Exchange metadata with a peer site's ``cmf serve`` (``pull``, ``push`` or ``both``).

    ``peer`` is a :class:`~cmf_prefect.blocks.CmfPeer` block or the peer's URL (then ``token``
    is its bearer token). ``pipeline`` limits the exchange to one pipeline. Only metadata moves;
    artifacts stay where they are. Returns the sync summary as a dict. A failure (peer
    unreachable, bad token) raises, so Prefect's retries apply.
    """
    from cmf_core.errors import InvalidInputError
    from cmf_core.federation.peer import sync
    from cmf_core.task_values import hide_password

    if direction not in DIRECTIONS:
        raise InvalidInputError(
            f"federated_sync direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    from cmf_core.federation.peer import TokenSource

    given = "the token= argument"
    if isinstance(peer, CmfPeer):
        url = peer.url
        if not token and peer.token:
            token, given = peer.token.get_secret_value(), "the token of the CmfPeer block"
    else:
        url = str(peer)
    settings = _settings(connection)
    source = TokenSource(given, "give the CmfPeer block a token, or pass token=", who="task")
    from cmf_core.store import open_store

    store = open_store(settings=settings)
    try:
        result = sync(url, token, direction, pipeline, store=store, settings=settings,
                      token_source=source)
    finally:
        store.close()
    summary = _plain(result)
    get_run_logger().info("cmf federated-sync with %s (%s): %s", hide_password(url), direction,
                          summary)
    return summary if isinstance(summary, dict) else {"result": summary}
