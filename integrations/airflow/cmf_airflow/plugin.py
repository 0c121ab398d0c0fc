"""The Airflow plugin (entry point ``airflow.plugins``): it only registers the cmf listener.

The listener module is imported only when tracking is not disabled (``[cmf] disabled`` /
``AIRFLOW__CMF__DISABLED`` / ``CMF_DISABLED``), so a disabled install costs one config read.
"""

from __future__ import annotations

from airflow.sdk.plugins_manager import AirflowPlugin

from cmf_airflow import conf

if not conf.is_disabled():
    from cmf_airflow.listener import get_listener


class CmfPlugin(AirflowPlugin):
    """Records every task instance into CMF (lineage, parameters, energy and carbon)."""

    name = "cmf"
    listeners = [] if conf.is_disabled() else [get_listener()]
