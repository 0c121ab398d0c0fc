"""Airflow's ``[cmf]`` section, read in one place.

Each option is ``[cmf] <name>`` in ``airflow.cfg`` or ``AIRFLOW__CMF__<NAME>`` in the environment,
has one typed accessor below (its docstring names the option), and is optional: an empty or
missing value means "not set here", so the ``CMF_*`` variables, the ``cmf.toml`` file and the
defaults decide (see :mod:`cmf_core.config`). The values that are set are passed to
:func:`cmf_core.config.load_settings` as explicit arguments, so they win over ``CMF_*``.

A value of the wrong type raises :class:`~cmf_core.errors.ConfigError` naming the option; the
listener turns that into one warning (tracking is then off for the task, never the task itself).

:func:`openlineage_sends_to_cmf` reads the OpenLineage provider's own configuration, to tell
whether the provider already records into CMF (``[cmf] lineage_source = auto``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cmf_core.errors import ConfigError

if TYPE_CHECKING:
    from cmf_core.config import Settings

SECTION = "cmf"
TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
LINEAGE_SOURCES = ("auto", "listener", "openlineage")


def _conf() -> Any:
    from airflow.sdk.configuration import conf

    return conf


def _get(option: str, section: str = SECTION) -> str | None:
    """The raw text of ``[section] option`` (env var, then airflow.cfg), ``None`` when unset."""
    try:
        value = _conf().get(section, option, fallback="")
    except Exception:  # an unreadable airflow.cfg: fall back to the environment only
        value = os.environ.get(f"AIRFLOW__{section.upper()}__{option.upper()}", "")
    value = (value or "").strip()
    return value or None


def _bool(option: str, raw: str | None) -> bool | None:
    if raw is None:
        return None
    low = raw.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise ConfigError(f"[cmf] {option} = {raw!r} is not a boolean; use true or false")


def _float(option: str, raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"[cmf] {option} = {raw!r} is not a number") from None


# options ------------------------------------------------------------------------------------
def is_disabled() -> bool:
    """[cmf] disabled (also true when ``CMF_DISABLED`` is set): record nothing."""
    from cmf_core.config import is_disabled as cmf_disabled

    if cmf_disabled():
        return True
    try:
        return bool(_bool("disabled", _get("disabled")))
    except ConfigError:
        return False


def store_url() -> str | None:
    """[cmf] store_url: SQLAlchemy URL of the CMF store (default: embedded SQLite)."""
    return _get("store_url")


def site() -> str | None:
    """[cmf] site: id of this site; every record carries it."""
    return _get("site")


def home() -> str | None:
    """[cmf] home: CMF home folder (embedded store and spool)."""
    return _get("home")


def pue() -> float | None:
    """[cmf] pue: power usage effectiveness of this site's facility (1.0-5.0)."""
    return _float("pue", _get("pue"))


def carbon_region() -> str | None:
    """[cmf] carbon_region: grid region (ISO country code or cloud region)."""
    return _get("carbon_region")


def energy() -> bool | None:
    """[cmf] energy: measure energy and carbon of each task."""
    return _bool("energy", _get("energy"))


def server_url() -> str | None:
    """[cmf] server_url: send events to this CMF server instead of a local store."""
    return _get("server_url")


def conn_id() -> str | None:
    """[cmf] conn_id: Airflow connection (type ``cmf``) of the CMF server to send events to."""
    return _get("conn_id")


def hook_timeout_s() -> float | None:
    """[cmf] hook_timeout_s: longest time tracking may spend in one hook."""
    return _float("hook_timeout_s", _get("hook_timeout_s"))


def lineage_source() -> str:
    """[cmf] lineage_source: ``auto`` (default), ``listener`` or ``openlineage``.

    ``listener``: the cmf listener records everything. ``openlineage``: Airflow's OpenLineage
    provider (with the CmfTransport) records tasks and datasets; the cmf listener only adds what
    it cannot (energy, parameters, XCom summary, metrics) to the same runs. ``auto``:
    ``openlineage`` when the provider is enabled with a CMF transport, else ``listener``.
    """
    value = (_get("lineage_source") or "auto").lower()
    if value not in LINEAGE_SOURCES:
        raise ConfigError(
            f"[cmf] lineage_source = {value!r} is not one of {', '.join(LINEAGE_SOURCES)}"
        )
    return value


def digest_max_mb() -> float | None:
    """[cmf] digest_max_mb: local files up to this size (MiB) are content-digested.

    Larger files (and files that cannot be read in time) get a digest of their path, size and
    modification time instead, so tracking never reads gigabytes inside a task. Unset, CMF's
    own ``digest_max_mb`` decides (``CMF_DIGEST_MAX_MB``, ``cmf.toml``, default 1024), the
    limit every other route (Prefect, ``CmfTransport``, ``Cmf.log_dataset``) uses, so a file
    is one artifact whichever route records it.
    """
    return _float("digest_max_mb", _get("digest_max_mb"))


def xcom_summary() -> bool:
    """[cmf] xcom_summary: record a summary of each task's XCom return value (default true)."""
    value = _bool("xcom_summary", _get("xcom_summary"))
    return True if value is None else value


def openlineage_namespace() -> str:
    """[openlineage] namespace (else ``OPENLINEAGE_NAMESPACE``, else ``default``).

    The OpenLineage job namespace, read exactly as Airflow's OpenLineage provider reads it, so
    that both derive the same run ids and job names.
    """
    return _get("namespace", "openlineage") or os.getenv("OPENLINEAGE_NAMESPACE", "default")


def ui_base_url() -> str | None:
    """Airflow's ``[api] base_url`` (``AIRFLOW__API__BASE_URL``): where its UI is served, read as
    Airflow reads it for its own log links. None when unset or not an http(s) URL (Airflow then
    assumes localhost; CMF records no link rather than guess one)."""
    from cmf_core.model import web_url

    return web_url(_get("base_url", "api"))


# the other route ------------------------------------------------------------------------------
def openlineage_sends_to_cmf() -> bool:
    """True when Airflow's OpenLineage provider is enabled with a transport into CMF.

    Reads the provider's own configuration (``[openlineage] transport``, the YAML file of
    ``[openlineage] config_path`` / ``OPENLINEAGE_CONFIG``, ``OPENLINEAGE__TRANSPORT__TYPE``);
    composite transports are searched. A ``cmf`` type or a dotted path to ``CmfTransport`` counts.
    """
    try:
        from airflow.providers.openlineage import conf as ol_conf
    except ImportError:
        return False
    if ol_conf.is_disabled():
        return False
    configs: list[Any] = []
    if transport := ol_conf.transport():
        configs.append(transport)
    path = ol_conf.config_path(True)
    if path and os.path.isfile(path):
        import yaml

        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        if isinstance(data, dict) and data.get("transport"):
            configs.append(data["transport"])
    if env_type := os.getenv("OPENLINEAGE__TRANSPORT__TYPE"):
        configs.append({"type": env_type})
    return any(is_cmf_transport(c) for c in configs)


def is_cmf_transport(config: Any) -> bool:
    """True for an OpenLineage transport config that records into CMF (``type: cmf`` or a
    dotted path to ``CmfTransport``), also inside a composite transport."""
    if not isinstance(config, dict):
        return False
    kind = str(config.get("type", ""))
    if kind == "cmf" or kind.endswith("CmfTransport") or kind.startswith("cmf_core."):
        return True
    inner = config.get("transports")
    if isinstance(inner, dict):
        inner = list(inner.values())
    return isinstance(inner, list) and any(is_cmf_transport(c) for c in inner)


# one read per task try -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every option a task try needs, read once when it starts."""

    explicit: tuple[tuple[str, Any], ...]
    conn_id: str | None
    lineage_source: str
    xcom_summary: bool
    namespace: str
    ui_base_url: str | None = None


_SNAPSHOTS: dict[tuple[tuple[str, str], ...], Snapshot] = {}
_ENV_PREFIXES = ("AIRFLOW__CMF__", "AIRFLOW__OPENLINEAGE__", "OPENLINEAGE", "CMF_",
                 "AIRFLOW__API__BASE_URL")


def snapshot() -> Snapshot:
    """The ``[cmf]`` options (and the OpenLineage namespace, ``[api] base_url``), read once per
    process and again whenever a variable that can change them (``AIRFLOW__CMF__*``,
    ``CMF_*``, ...) changes."""
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)))
    found = _SNAPSHOTS.get(key)
    if found is None:
        if len(_SNAPSHOTS) > 64:
            _SNAPSHOTS.clear()
        found = _SNAPSHOTS[key] = read_snapshot()
    return found


def read_snapshot() -> Snapshot:
    """Read the ``[cmf]`` options (and the OpenLineage namespace) now."""
    return Snapshot(
        explicit=tuple(sorted(explicit_settings().items())),
        conn_id=conn_id(),
        lineage_source=lineage_source(),
        xcom_summary=xcom_summary(),
        namespace=openlineage_namespace(),
        ui_base_url=ui_base_url(),
    )


# settings -----------------------------------------------------------------------------------
def explicit_settings() -> dict[str, Any]:
    """The ``[cmf]`` values that are set, as :func:`cmf_core.config.load_settings` arguments."""
    values: dict[str, Any] = {
        "store_url": store_url(),
        "site": site(),
        "home": home(),
        "pue": pue(),
        "carbon_region": carbon_region(),
        "energy": energy(),
        "server_url": server_url(),
        "hook_timeout_s": hook_timeout_s(),
        "digest_max_mb": digest_max_mb(),
    }
    return {k: v for k, v in values.items() if v is not None}


_SETTINGS: dict[tuple[tuple[str, Any], ...], Settings] = {}
_LOCK = threading.Lock()


def settings(snap: Snapshot | None = None,
             connection: tuple[str, str | None] | None = None) -> Settings:
    """:class:`~cmf_core.config.Settings` with the ``[cmf]`` values as explicit arguments.

    ``connection`` is ``(server_url, token)`` read from the ``[cmf] conn_id`` connection.
    Built once per distinct set of values and ``CMF_*`` variables (building costs ~ms).
    """
    from cmf_core.config import load_settings

    explicit = dict((snap or snapshot()).explicit)
    if connection is not None:
        explicit.setdefault("server_url", connection[0])
        if connection[1]:
            explicit["server_token"] = connection[1]
    key = (*sorted(explicit.items()),
           *sorted((k, v) for k, v in os.environ.items() if k.startswith("CMF_")))
    with _LOCK:
        found = _SETTINGS.get(key)
        if found is None:
            found = _SETTINGS[key] = load_settings(**explicit)
        return found
