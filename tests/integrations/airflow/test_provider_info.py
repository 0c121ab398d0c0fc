"""The provider: listed by Airflow, with the [cmf] config section and the cmf connection type."""

from __future__ import annotations

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
