"""Installing the package is all it takes: Airflow finds the plugin and the provider by itself."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points


def test_entry_points_are_declared() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    assert plugins["cmf"] == "cmf_airflow.plugin:CmfPlugin"
    providers = [ep.value for ep in entry_points(group="apache_airflow_provider")]
    assert "cmf_airflow.provider_info:get_provider_info" in providers


def test_airflow_loads_the_plugin_and_registers_its_listener() -> None:
    from airflow.sdk.listener import get_listener_manager
    from airflow.sdk.plugins_manager import _get_plugins
    from cmf_airflow.listener import CmfListener, get_listener

    plugins, errors = _get_plugins()
    assert not errors
    (cmf,) = [p for p in plugins if p.name == "cmf"]
    assert cmf.listeners == [get_listener()]
    # pluggy validated every hookimpl against Airflow's hookspecs when registering it
    registered = get_listener_manager().pm.get_plugins()
    assert any(isinstance(p, CmfListener) for p in registered)


def test_no_hook_declares_session() -> None:
    from cmf_airflow.listener import CmfListener

    hooks = [name for name, fn in inspect.getmembers(CmfListener, inspect.isfunction)
             if hasattr(fn, "airflow_impl")]
    assert {"on_task_instance_running", "on_task_instance_success", "on_task_instance_failed",
            "on_task_instance_skipped", "on_dag_run_running", "on_dag_run_success",
            "on_dag_run_failed", "before_stopping"} == set(hooks)
    for name in hooks:
        assert "session" not in inspect.signature(getattr(CmfListener, name)).parameters


def test_disabled_plugin_registers_no_listener(monkeypatch) -> None:
    import importlib

    import cmf_airflow.plugin

    monkeypatch.setenv("AIRFLOW__CMF__DISABLED", "True")
    try:
        assert importlib.reload(cmf_airflow.plugin).CmfPlugin.listeners == []
    finally:
        monkeypatch.delenv("AIRFLOW__CMF__DISABLED")
        assert importlib.reload(cmf_airflow.plugin).CmfPlugin.listeners != []
