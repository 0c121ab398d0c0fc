"""The cmf connection type: a CMF server (or federation peer) from an Airflow connection."""

from __future__ import annotations

import json

import pytest
from cmf_airflow.hooks import CmfHook

from cmf_core.errors import ConfigError


@pytest.mark.parametrize(("conn", "url"), [
    ({"host": "peer.example.org", "port": 8080}, "https://peer.example.org:8080"),
    ({"host": "127.0.0.1", "port": 8080}, "http://127.0.0.1:8080"),
    ({"host": "peer", "schema": "http"}, "http://peer"),
    ({"host": "::1", "port": 8080}, "http://[::1]:8080"),  # Airflow parses cmf://[::1]:8080 so
    ({"host": "fd00::7", "port": 8080, "schema": "http"}, "http://[fd00::7]:8080"),
    ({"host": "ignored", "extra": json.dumps({"url": "https://cmf.example.org/site-b/"})},
     "https://cmf.example.org/site-b"),
])
def test_peer_url_and_token(monkeypatch, conn: dict, url: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CMF_TEST", json.dumps(
        {"conn_type": "cmf", "password": "tok", **conn}))
    assert CmfHook("cmf_test").get_peer() == (url, "tok")


def test_a_connection_without_host_names_the_fix(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CMF_TEST", json.dumps({"conn_type": "cmf"}))
    with pytest.raises(ConfigError, match="has no host"):
        CmfHook("cmf_test").get_peer()


def test_the_listener_sends_to_the_server_of_conn_id(monkeypatch) -> None:
    from cmf_airflow import conf
    from cmf_airflow.adapter import CmfAdapter

    monkeypatch.setenv("AIRFLOW_CONN_CMF_SERVER", json.dumps(
        {"conn_type": "cmf", "host": "cmf.example.org", "password": "s3cret"}))
    monkeypatch.setenv("AIRFLOW__CMF__CONN_ID", "cmf_server")
    settings = CmfAdapter().settings(conf.snapshot())
    assert settings.server_url == "https://cmf.example.org"
    assert settings.server_token == "s3cret"


def test_a_connection_uri_with_a_path_says_to_use_the_url_extra(monkeypatch) -> None:
    """cmf://:TOKEN@portal.example.org/cmf (a server published under a prefix): Airflow makes
    the path the connection's schema, which was refused as "scheme 'cmf' must be http or
    https" with nothing on how to give a path; the message now names the url extra, and that
    form works."""
    monkeypatch.setenv("AIRFLOW_CONN_CMF_TEST", "cmf://:tok@portal.example.org/cmf?scheme=https")
    with pytest.raises(ConfigError) as info:
        CmfHook("cmf_test").get_peer()
    message = str(info.value)
    assert "scheme 'cmf' must be http or https" in message
    example = message.split("AIRFLOW_CONN_CMF_TEST='", 1)[1].rstrip("'")
    assert json.loads(example)["extra"] == {"url": "https://portal.example.org/cmf"}
    monkeypatch.setenv("AIRFLOW_CONN_CMF_TEST", example.replace("<token>", "tok"))
    assert CmfHook("cmf_test").get_peer() == ("https://portal.example.org/cmf", "tok")
