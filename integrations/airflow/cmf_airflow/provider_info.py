"""Provider information (entry point ``apache_airflow_provider``).

Airflow reads this to list cmf-foundation among its providers, to show the ``[cmf]`` options in
``airflow config list`` (with descriptions and defaults) and to offer the ``cmf`` connection type
(a remote CMF server: host, port, schema = http/https, password = bearer token). The plugin
(``cmf_airflow.plugin.CmfPlugin``) is also registered through the ``airflow.plugins`` entry point.
"""

from __future__ import annotations

from typing import Any

PACKAGE_NAME = "cmf-foundation"


def _option(description: str, type_: str, default: str | None, example: str | None = None,
            sensitive: bool = False) -> dict[str, Any]:
    option: dict[str, Any] = {
        "description": description,
        "version_added": "0.1.0",
        "type": type_,
        "example": example,
        "default": default,
    }
    if sensitive:
        option["sensitive"] = True
    return option


CONFIG: dict[str, Any] = {
    "cmf": {
        "description": "cmf-foundation: automatic lineage, energy and carbon of every task. Every "
                       "option is optional; an unset option falls back to the CMF_* environment "
                       "variable of the same name, then cmf.toml, then the default.\n",
        "options": {
            "disabled": _option("Record nothing (the cmf listener is not registered).",
                                "boolean", "False"),
            "store_url": _option("SQLAlchemy URL of the CMF store; default: an embedded SQLite "
                                 "store in the CMF home.", "string", "",
                                 "postgresql://cmf@db/cmf"),
            "site": _option("Id of this site; every record carries it. Default: host name.",
                            "string", "", "hpc-centre-a"),
            "home": _option("CMF home folder (embedded store and spool of unsent events).",
                            "string", "", "/opt/airflow/cmf"),
            "pue": _option("Power usage effectiveness of this site's facility (1.0 to 5.0).",
                           "float", "", "1.4"),
            "carbon_region": _option("Grid region for carbon intensity: ISO country code or "
                                     "cloud region.", "string", "", "FR"),
            "energy": _option("Measure energy and carbon of each task.", "boolean", "", "True"),
            "server_url": _option("Send events to this CMF server instead of the local store.",
                                  "string", "", "https://cmf.example.org"),
            "conn_id": _option("Airflow connection of type 'cmf' naming a CMF server to send "
                               "events to (host, port, schema, password = token).", "string", "",
                               "cmf_default"),
            "hook_timeout_s": _option("Longest time tracking may spend in one task hook.",
                                      "float", "", "5"),
            "lineage_source": _option(
                "'auto', 'listener' or 'openlineage'. 'openlineage': Airflow's OpenLineage "
                "provider (with the CmfTransport) records tasks and datasets and the cmf "
                "listener only adds energy, parameters and metrics to the same runs. 'auto' "
                "picks 'openlineage' when that provider is enabled with a CMF transport.",
                "string", "auto", "listener"),
            "digest_max_mb": _option("Local files up to this size (MiB) are content-digested; "
                                     "larger ones are identified by path, size and mtime. "
                                     "Default: CMF_DIGEST_MAX_MB, else 1024.", "float", "",
                                     "256"),
            "xcom_summary": _option("Record a summary (type, size, small values) of each "
                                    "task's XCom return value.", "boolean", "True"),
        },
    }
}


def get_provider_info() -> dict[str, Any]:
    """The provider's description, config section, connection type and plugin."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "CMF (Common Metadata Framework)",
        "description": "Automatic lineage, energy and carbon of Airflow tasks, recorded into a "
                       "CMF store, with recommend-seed and federated-sync operators.\n",
        "integrations": [{
            "integration-name": "CMF",
            "external-doc-url": "https://github.com/cmf-foundation/cmf-foundation",
            "tags": ["software"],
        }],
        "operators": [{"integration-name": "CMF", "python-modules": ["cmf_airflow.operators"]}],
        "hooks": [{"integration-name": "CMF", "python-modules": ["cmf_airflow.hooks"]}],
        "connection-types": [{
            "connection-type": "cmf",
            "hook-class-name": "cmf_airflow.hooks.CmfHook",
            "hook-name": "CMF server",
            "ui-field-behaviour": {
                "hidden-fields": ["login", "extra"],
                "relabeling": {"password": "Token", "schema": "Scheme (http or https)"},
                "placeholders": {"host": "cmf.example.org", "port": "8080", "schema": "https"},
            },
        }],
        "plugins": [{"name": "cmf", "plugin-class": "cmf_airflow.plugin.CmfPlugin"}],
        "config": CONFIG,
    }
