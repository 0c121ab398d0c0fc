"""The provider: listed by Airflow, with the [cmf] config section and the cmf connection type."""

from __future__ import annotations

import pytest
from cmf_airflow.provider_info import get_provider_info


def test_provider_info_passes_airflows_schema() -> None:
    from airflow.providers_manager import _create_provider_info_schema_validator

    _create_provider_info_schema_validator().validate(get_provider_info())


def test_airflow_lists_the_provider_and_its_connection_type() -> None:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    pm = ProvidersManagerTaskRuntime()
    assert "cmf-foundation" in pm.providers
    hook = pm.hooks["cmf"]
    assert hook is not None
    assert hook.hook_class_name == "cmf_airflow.hooks.CmfHook"
    assert hook.connection_id_attribute_name == "cmf_conn_id"


def test_config_section_defaults_are_known_to_airflow() -> None:
    from airflow.configuration import conf

    assert conf.get("cmf", "lineage_source") == "auto"
    assert conf.getboolean("cmf", "disabled") is False
    assert conf.get("cmf", "store_url") == ""
    options = get_provider_info()["config"]["cmf"]["options"]
    assert {"store_url", "site", "pue", "disabled", "server_url", "conn_id"} <= set(options)


def test_every_option_has_an_accessor() -> None:
    from cmf_airflow import conf

    for option in get_provider_info()["config"]["cmf"]["options"]:
        accessor = getattr(conf, "is_disabled" if option == "disabled" else option)
        assert f"[cmf] {option}" in (accessor.__doc__ or ""), option


def test_example_dag_discovery_finds_the_provider_module(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """With [core] load_examples on (Airflow's default; the tests turn it off), Airflow imports
    each provider's package-name, `-` as `_`, to look for example DAGs: `airflow dags test` of
    the README's example logged an error with a traceback, no module named 'cmf_foundation'."""
    import importlib
    import logging

    module = get_provider_info()["package-name"].replace("-", "_")
    assert importlib.import_module(module).__name__ == "cmf_foundation"
    manager = pytest.importorskip("airflow.dag_processing.bundles.manager")
    if not hasattr(manager, "_add_provider_example_dags_to_bundle"):
        pytest.skip("this Airflow does not look for providers' example DAGs")
    with caplog.at_level(logging.ERROR):
        bundles: list = []
        manager._add_provider_example_dags_to_bundle(bundles)
    assert not [r for r in caplog.records if "cmf_foundation" in r.getMessage()]
    assert not [b for b in bundles if "cmf" in str(b)]
