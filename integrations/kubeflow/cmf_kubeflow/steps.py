"""What the two CMF components do, as plain functions (no kfp import, tested directly).

The bodies of :data:`cmf_kubeflow.components.recommend_seed` and
:data:`cmf_kubeflow.components.federated_sync` only import this module and call
:func:`run_recommend_seed` / :func:`run_federated_sync`; it must import inside an executor,
where ``kfp.dsl`` is the reduced runtime package (``_KFP_RUNTIME=true``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cmf_core.errors import ConfigError, InvalidInputError
from cmf_core.task_values import hide_password

DIRECTIONS = ("push", "pull", "both")


def run_recommend_seed(task: Mapping[str, Any], k: int = 5, store_url: str = "",
                       path: str | None = None, strict: bool = False,
                       models: Sequence[str] | str | None = None
                       ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Top-``k`` seed configurations for ``task`` and the JSON-ready recommendation.

    ``store_url``: the CMF store whose recorded runs join the shipped knowledge base; empty
    means ``$CMF_STORE_URL`` when set, else the shipped knowledge base alone; ``"none"`` means
    the shipped one alone. ``models``: the model families the search's space has (seeds of
    those alone; a list with none of the known families gives no seeds, and says why).
    ``path``: where to write the recommendation as JSON, with the adaptive seeder's state
    under ``seeder`` (``AdaptiveSeeder.from_dict`` of the file's JSON).
    By default nothing raises (:mod:`cmf_core.recommend.step`): a bad description gives no
    seeds, a store that cannot be read the shipped knowledge base alone, and the
    recommendation's ``message`` and ``error`` say why; ``strict=True`` raises instead.
    """
    import logging

    from cmf_core.recommend.step import recommend_step

    url = store_url or os.environ.get("CMF_STORE_URL", "")
    store = None
    if url and url.lower() != "none":
        def store() -> Any:
            from cmf_core.store import open_store

            return open_store(url)

    logger = logging.getLogger("cmf_kubeflow.recommend_seed")
    rec = recommend_step(dict(task) if isinstance(task, Mapping) else task, k=k, store=store,
                         strict=strict, logger=logger, models=models)
    body = rec.to_dict(seeder=True)
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=2, sort_keys=True)
    return rec.configs(), body


def run_federated_sync(peer_url: str = "", direction: str = "both", pipeline: str = "",
                       token_env: str = "CMF_SERVER_TOKEN", strict: bool = True
                       ) -> dict[str, Any]:
    """Sync this site's CMF store with a peer; returns a JSON-ready summary.

    ``peer_url`` defaults to ``$CMF_SERVER_URL``; the token is ``$<token_env>``. With
    ``strict=False`` a failure is returned in the summary (``error``) instead of raised.
    """
    if direction not in DIRECTIONS:
        raise InvalidInputError(
            f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    peer = peer_url or os.environ.get("CMF_SERVER_URL", "")
    if not peer:
        raise ConfigError(
            "no peer to sync with: pass peer_url= or set CMF_SERVER_URL in the component's "
            "environment (e.g. with use_cmf_secret)")
    token = os.environ.get(token_env) or None
    summary: dict[str, Any] = {"peer": hide_password(peer), "direction": direction,
                               "pipeline": pipeline or None}
    try:
        from cmf_kubeflow.conf import in_cluster_pod

        if in_cluster_pod() and not os.environ.get("CMF_STORE_URL"):
            # the pod's default store is a new, empty SQLite file that goes with the pod: a
            # sync of it "succeeds" and shares nothing of the site's
            raise ConfigError(
                "federated_sync runs in a KFP pod without CMF_STORE_URL: it would sync the "
                "pod's own empty store, thrown away with it; set CMF_STORE_URL to this site's "
                "store (its PostgreSQL) in the component's environment")
        from cmf_core.federation.peer import TokenSource, sync

        source = TokenSource(f"${token_env}", f"${token_env} is not set in the component's "
                             "environment (e.g. use_cmf_secret)")
        result = sync(peer, token, direction, pipeline or None, token_source=source)
    except Exception as e:
        if strict:
            raise
        summary["error"] = f"{type(e).__name__}: {e}"
        return summary
    summary["result"] = _plain(result)
    return summary


def _plain(value: Any) -> Any:
    """A JSON-ready form of whatever ``sync`` returns (dataclass, object with to_dict, ...)."""
    import dataclasses

    from cmf_core import jsonutil

    if hasattr(value, "to_dict") and callable(value.to_dict):
        value = value.to_dict()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return jsonutil.clean(value)
