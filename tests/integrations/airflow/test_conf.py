"""[cmf] options: typed, optional, passed to cmf_core's settings as explicit arguments."""

from __future__ import annotations

import json

import pytest
from cmf_airflow import conf
from cmf_airflow.conf import is_cmf_transport, openlineage_sends_to_cmf

from cmf_core.errors import ConfigError
from tests.integrations.airflow.helpers import clear_provider_cache


def test_unset_options_leave_cmf_settings_to_decide(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CMF_SITE", "from-cmf-env")
    assert conf.explicit_settings() == {}
    assert conf.settings().site == "from-cmf-env"


def test_airflow_options_win_over_cmf_variables(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CMF_SITE", "from-cmf-env")
    monkeypatch.setenv("AIRFLOW__CMF__SITE", "hpc-a")
    monkeypatch.setenv("AIRFLOW__CMF__PUE", "1.4")
    monkeypatch.setenv("AIRFLOW__CMF__STORE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("AIRFLOW__CMF__ENERGY", "off")
    s = conf.settings()
    assert (s.site, s.pue, s.energy) == ("hpc-a", 1.4, False)
    assert s.resolved_store_url == f"sqlite:///{tmp_path / 'x.db'}"


@pytest.mark.parametrize(("option", "value", "message"), [
    ("pue", "high", "[cmf] pue = 'high' is not a number"),
    ("energy", "maybe", "[cmf] energy = 'maybe' is not a boolean"),
    ("lineage_source", "both", "[cmf] lineage_source = 'both' is not one of"),
])
def test_wrong_types_name_the_option(monkeypatch, option: str, value: str, message: str
                                     ) -> None:
    monkeypatch.setenv(f"AIRFLOW__CMF__{option.upper()}", value)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        conf.snapshot()


def test_out_of_range_values_are_config_errors(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__CMF__PUE", "0.5")
    with pytest.raises(ConfigError, match="pue"):
        conf.settings()


def test_kill_switches(monkeypatch) -> None:
    assert not conf.is_disabled()
    monkeypatch.setenv("AIRFLOW__CMF__DISABLED", "true")
    assert conf.is_disabled()
    monkeypatch.delenv("AIRFLOW__CMF__DISABLED")
    monkeypatch.setenv("CMF_DISABLED", "1")
    assert conf.is_disabled()


def test_openlineage_namespace_is_read_as_the_provider_reads_it(monkeypatch) -> None:
    assert conf.openlineage_namespace() == "default"
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "from-env")
    assert conf.openlineage_namespace() == "from-env"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "from-airflow")
    assert conf.openlineage_namespace() == "from-airflow"


@pytest.mark.parametrize(("config", "expected"), [
    ({"type": "cmf_core.openlineage.transport.cmf.CmfTransport"}, True),
    ({"type": "cmf"}, True),
    ({"type": "http", "url": "http://marquez:5000"}, False),
    ({"type": "composite", "transports": {"a": {"type": "console"},
                                          "b": {"type": "cmf"}}}, True),
    ({"type": "composite", "transports": [{"type": "console"}]}, False),
])
def test_cmf_transports_are_recognised(config: dict, expected: bool) -> None:
    assert is_cmf_transport(config) is expected


def test_the_provider_route_is_detected_from_its_configuration(monkeypatch) -> None:
    from airflow.providers.openlineage import conf as ol_conf

    def clear() -> None:
        clear_provider_cache(ol_conf.transport, ol_conf.config_path, ol_conf.is_disabled)

    clear()
    try:
        assert openlineage_sends_to_cmf() is False  # disabled in these tests
        monkeypatch.delenv("AIRFLOW__OPENLINEAGE__DISABLED")
        monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "console"}))
        clear()
        assert openlineage_sends_to_cmf() is False
        monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(
            {"type": "cmf_core.openlineage.transport.cmf.CmfTransport"}))
        clear()
        assert openlineage_sends_to_cmf() is True
    finally:
        monkeypatch.undo()
        clear()


def test_digest_max_mb_falls_back_to_cmf_digest_max_mb(monkeypatch) -> None:
    """Unset, ``[cmf] digest_max_mb`` is CMF's own (``CMF_DIGEST_MAX_MB``), the limit of every
    other route; Airflow's option wins when set, and a bad one is an error naming it."""
    assert conf.digest_max_mb() is None  # Airflow's provider default does not shadow CMF's
    assert conf.settings().digest_max_mb == 1024.0
    monkeypatch.setenv("CMF_DIGEST_MAX_MB", "0.5")
    assert conf.settings().digest_max_mb == 0.5
    monkeypatch.setenv("AIRFLOW__CMF__DIGEST_MAX_MB", "2")
    assert conf.settings().digest_max_mb == 2.0
    monkeypatch.setenv("AIRFLOW__CMF__DIGEST_MAX_MB", "-1")
    with pytest.raises(ConfigError, match="digest_max_mb"):
        conf.settings()
    monkeypatch.setenv("AIRFLOW__CMF__DIGEST_MAX_MB", "lots")
    with pytest.raises(ConfigError, match=r"\[cmf\] digest_max_mb = 'lots' is not a number"):
        conf.snapshot()
