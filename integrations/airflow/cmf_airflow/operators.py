"""Two steps users add where they want them: recommend-seed and federated-sync.

* :class:`CmfRecommendSeedOperator` describes a task (category, modality, and a dataset path or
  ready meta-features), asks the recommender (:func:`cmf_core.recommend.recommend`, with the runs
  recorded in this site's store) for the top-``k`` model + hyperparameter configurations of the
  most similar past tasks, and pushes them to XCom for a downstream search task: the return value
  is the list of configurations (``{"model": ..., param: value}``, best first); key
  ``optuna_params`` holds them ready for ``study.enqueue_trial``, key ``task`` the task
  description (pass it to :func:`cmf_airflow.decorators.log_task` in the training step), key
  ``recommendation`` the whole recommendation (neighbours, evidence, message) with the adaptive
  seeder's state: ``AdaptiveSeeder.from_dict(ti.xcom_pull(task_ids=..., key="recommendation"))``
  in the search task gives seeds chosen after the scores of the previous ones
  (:mod:`cmf_core.recommend.adaptive`; fewer trials than the static list in our benchmark).
* :class:`CmfFederatedSyncOperator` exchanges this site's metadata with a peer site's
  ``cmf serve`` (:func:`cmf_core.federation.peer.sync`); the peer is an Airflow connection of
  type ``cmf`` (host, port, scheme, token as password). It returns the sync report.

Both read the ``[cmf]`` settings (store, site) like the listener, which records them as
executions like any other task.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from cmf_core.errors import InvalidInputError


class MissingPeer(enum.StrEnum):
    """What the sync step does when its connection is not defined."""

    FAIL = "fail"  # the task fails, naming the connection to define
    SKIP = "skip"  # the task is skipped (e.g. an example DAG run without a peer)


def _settings() -> Any:
    from cmf_airflow import conf

    return conf.settings()


class CmfRecommendSeedOperator(BaseOperator):
    """Push the top-``k`` seed configurations for a task description to XCom.

    :param category: ``classification``, ``regression``, ``anomaly_detection``, ``clustering``
        or ``forecasting``.
    :param modality: ``tabular`` (default), ``time_series``, ``image`` or ``text``.
    :param dataset_path: a CSV file to describe (``target`` names the label column).
    :param meta_features: ready meta-features (name -> value in [0, 1]) instead of a dataset,
        or a whole task description dict (``TaskDescription.to_dict()``).
    :param k: how many configurations.
    :param models: the model families your search space has (e.g. ``["rf", "hgb"]``, templated):
        seeds of those alone. A family with no recorded runs is said in the recommendation's
        ``message``; none with runs gives no seeds, and says why.
    :param use_store: also learn from the runs recorded in this site's CMF store.
    :param strict: raise on a bad description or an unreadable store; by default the step
        succeeds (:mod:`cmf_core.recommend.step`): no seeds for a task it cannot describe (the
        search then starts cold), the shipped knowledge base alone for a store it cannot read,
        and the recommendation says why.
    """

    template_fields: Sequence[str] = ("category", "modality", "dataset_path", "target",
                                      "task_name", "meta_features", "models")
    ui_color = "#d9ead3"

    def __init__(self, *, category: str, modality: str = "tabular",
                 dataset_path: str | None = None, target: str | None = None,
                 meta_features: Mapping[str, Any] | None = None, task_name: str | None = None,
                 k: int = 5, models: Sequence[str] | str | None = None,
                 use_store: bool = True, strict: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if dataset_path is None and meta_features is None:
            raise InvalidInputError(
                f"{self.task_id}: give dataset_path (a CSV file) or meta_features to describe "
                "the task")
        self.category = category
        self.modality = modality
        self.dataset_path = dataset_path
        self.target = target
        self.meta_features = meta_features
        self.task_name = task_name
        self.k = k
        self.models = models
        self.use_store = use_store
        self.strict = strict

    def describe(self) -> Any:
        """The :class:`~cmf_core.recommend.TaskDescription` of the task to seed."""
        from cmf_core.recommend import TaskDescription, describe_csv

        name = self.task_name or f"{self.dag_id}.{self.task_id}"
        if self.dataset_path:
            return describe_csv(self.dataset_path, category=self.category,
                                modality=self.modality, target=self.target, name=name)
        features = dict(self.meta_features or {})
        if "meta_features" in features or "category" in features:
            return TaskDescription.from_dict(features)
        return TaskDescription.from_dict({"name": name, "category": self.category,
                                          "modality": self.modality,
                                          "meta_features": features})

    def cmf_inputs(self) -> list[str]:
        """The data file this step describes: recorded as its execution's input."""
        return [self.dataset_path] if self.dataset_path else []

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from cmf_core.recommend.step import recommend_step

        def store() -> Any:
            from cmf_core.store import open_store

            return open_store(settings=_settings())

        rec = recommend_step(self.describe, k=self.k, store=store if self.use_store else None,
                             strict=self.strict, logger=self.log, models=self.models)
        self.log.info("%s", rec.explain())
        ti = context["ti"]
        ti.xcom_push(key="task", value=rec.task.to_dict())
        ti.xcom_push(key="optuna_params", value=rec.optuna_params())
        ti.xcom_push(key="recommendation", value=rec.to_dict(seeder=True))
        return rec.configs()


class CmfFederatedSyncOperator(BaseOperator):
    """Push and/or pull this site's metadata to/from the peer named by a ``cmf`` connection.

    :param cmf_conn_id: Airflow connection of type ``cmf`` (the peer's ``cmf serve``).
    :param direction: ``both`` (default), ``push`` or ``pull``.
    :param pipeline: only this pipeline (e.g. ``"{{ dag.dag_id }}"``); default: everything
        this site shares with the peer.
    :param missing_peer: ``fail`` (default) or ``skip`` when the connection is not defined.
    :param timeout: seconds per HTTP request.
    """

    template_fields: Sequence[str] = ("cmf_conn_id", "direction", "pipeline")
    ui_color = "#cfe2f3"

    def __init__(self, *, cmf_conn_id: str = "cmf_default", direction: str = "both",
                 pipeline: str | None = None, missing_peer: MissingPeer | str = MissingPeer.FAIL,
                 timeout: float = 120.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cmf_conn_id = cmf_conn_id
        self.direction = direction
        self.pipeline = pipeline
        try:
            self.missing_peer = MissingPeer(str(missing_peer).lower())
        except ValueError:
            raise InvalidInputError(
                f"missing_peer {missing_peer!r} must be one of: "
                f"{', '.join(m.value for m in MissingPeer)}") from None
        self.timeout = timeout

    def peer(self) -> tuple[str, str | None]:
        """``(url, token)`` of the peer, from the connection."""
        from cmf_airflow.hooks import CmfHook

        return CmfHook(self.cmf_conn_id).get_peer()

    def execute(self, context: Any) -> dict[str, Any]:
        if self.direction not in ("both", "push", "pull"):
            raise InvalidInputError(
                f"direction {self.direction!r} must be 'both', 'push' or 'pull'")
        from airflow.sdk.exceptions import AirflowNotFoundException, AirflowSkipException

        try:
            url, token = self.peer()
        except AirflowNotFoundException as e:
            if self.missing_peer is MissingPeer.SKIP:
                raise AirflowSkipException(
                    f"connection {self.cmf_conn_id!r} is not defined; define it (e.g. "
                    f"AIRFLOW_CONN_{self.cmf_conn_id.upper()}='cmf://:TOKEN@peer:8080') to "
                    "sync") from e
            raise
        from cmf_core.federation.peer import TokenSource, sync

        source = TokenSource(f"the password of connection {self.cmf_conn_id!r}",
                             f"connection {self.cmf_conn_id!r} has no password; set the "
                             "peer's token as its password")
        report = sync(url, token, self.direction, self.pipeline or None,  # type: ignore[arg-type]
                      settings=_settings(), timeout=self.timeout, token_source=source)
        self.log.info("synced with %s (%s): pulled %d records, pushed %d records, %d bytes, "
                      "%d conflict(s)", report.peer_url, report.peer_site,
                      report.pulled.records, report.pushed.records, report.bytes,
                      len(report.conflicts))
        for conflict in report.conflicts[:10]:
            self.log.warning("conflict: %s", conflict)
        return report.to_dict()
