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
            "on_dag_run_failed", "on_starting", "before_stopping"} == set(hooks)
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


# an Airflow job (the scheduler) starting in a fresh interpreter, as `airflow scheduler` does
_JOB_STARTS = """
import json, sys
from airflow.jobs.job import Job
from cmf_airflow.warm import MODULES

before = [m for m in MODULES if m in sys.modules]
Job()  # calls every listener's on_starting(component=the job), ours through the plugin
print(json.dumps({"before": before, "after": [m for m in MODULES if m in sys.modules]}))
"""


def test_a_starting_airflow_job_imports_what_task_processes_need() -> None:
    """Under a real scheduler each task try is a process forked from the scheduler's
    LocalExecutor workers, forked when the scheduler starts: what the scheduler imported by
    then, every try inherits. Without it each try imported OpenLineage's client and CMF's
    emitter itself (5-9 s on a loaded 2-core host; benchmarks/airflow_e2e.py), which its end
    hook waited for, and a deferring try's process outlived its trigger: Airflow failed it."""
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _JOB_STARTS], env=dict(os.environ),
                         capture_output=True, text=True, timeout=120, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    from cmf_airflow.warm import MODULES

    assert "openlineage.client.event_v2" not in found["before"]
    assert found["after"] == list(MODULES)


def test_only_airflow_jobs_warm_the_imports() -> None:
    from cmf_airflow.warm import forks_tasks

    class Job:  # stands for airflow.jobs.job.Job, by name
        pass

    assert forks_tasks(Job())
    assert not forks_tasks(object())
