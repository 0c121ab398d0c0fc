"""cmf-foundation for Airflow 3: every task try recorded into CMF, with no change to DAGs.

Registered by the ``airflow.plugins`` entry point (:mod:`cmf_airflow.plugin`, which only adds
the listener) and the ``apache_airflow_provider`` entry point (:mod:`cmf_airflow.provider_info`:
the ``[cmf]`` config section and the ``cmf`` connection type). Modules:

* :mod:`~cmf_airflow.listener`: the ``@hookimpl`` routing, each hook guarded;
* :mod:`~cmf_airflow.adapter`: task instances -> OpenLineage RunEvents with CMF facets, emitted;
* :mod:`~cmf_airflow.ids`, :mod:`~cmf_airflow.facts`, :mod:`~cmf_airflow.datasets`,
  :mod:`~cmf_airflow.values`, :mod:`~cmf_airflow.dagrun`, :mod:`~cmf_airflow.worker`: what the
  adapter reads and how it records;
* :mod:`~cmf_airflow.conf`: the ``[cmf]`` options, passed to ``cmf_core.config.load_settings``;
* :mod:`~cmf_airflow.operators`: ``CmfRecommendSeedOperator``, ``CmfFederatedSyncOperator``;
* :mod:`~cmf_airflow.decorators`: ``@cmf_task`` and ``log_metric``/``log_model``/... helpers;
* :mod:`~cmf_airflow.hooks`: ``CmfHook`` for ``cmf`` connections.

See docs/airflow.md.
"""
