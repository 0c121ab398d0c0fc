"""Configuration, read in one place, in one documented order.

Order (first wins):

1. ``CMF_DISABLED`` is checked first: when true, integrations record nothing.
2. Explicit arguments to :func:`load_settings` (this includes orchestrator-native options such as
   Airflow's ``[cmf]`` section, which each adapter's ``conf.py`` reads and passes in).
3. ``CMF_*`` environment variables (``CMF_STORE_URL``, ``CMF_SITE``, ...).
4. The TOML file named by ``CMF_CONFIG``, else ``./cmf.toml`` when present.
5. The CMF home's own ``cmf.toml`` (``cmf init --site`` writes the site there).
6. Defaults: an embedded SQLite store under the CMF home.

The CMF home is ``CMF_HOME`` when set, else the nearest ``.cmf/`` folder in the current directory or
one of its parents (``cmf init`` creates one), else ``~/.cmf``. One spelling per key; unknown keys
(in the file or as ``CMF_*`` variables) are errors.
"""

from __future__ import annotations

import os
import socket
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from cmf_core.errors import ConfigError
from cmf_core.task_values import hide_password

ENV_PREFIX = "CMF_"
HOME_DIRNAME = ".cmf"


def _default_site() -> str:
    return socket.gethostname().split(".")[0] or "local"


class Settings(BaseSettings):
    """All cmf-foundation settings. Each field is ``CMF_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True,
                                      allow_inf_nan=False)

    disabled: bool = Field(False, description="Record nothing (kill switch for integrations).")
    config: Path | None = Field(
        None, description="Path of a TOML config file (default ./cmf.toml)."
    )
    home: Path | None = Field(
        None, description="CMF home folder holding the embedded store and the spool."
    )
    store_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the store: sqlite:///path.db (default: <home>/cmf.db) or "
        "postgresql://user@host/db.",
    )
    site: str = Field(
        default_factory=_default_site,
        description="Id of this site (store); every record carries the site that created it. "
        "Set it in containers: a pod's host name changes with every pod.",
    )
    durability: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite fsync policy. 'normal': an ended execution survives a killed process "
        "(kill -9) but the last writes may be lost on power loss; 'full': fsync on every "
        "put, survives power loss, slower.",
    )
    journal_companion: bool = Field(
        True,
        description="SQLite: a process that records faster than 2,048 executions a second "
        "hands the applying of its journal to a companion process on another core (false: "
        "it applies in its own thread).",
    )
    # energy and carbon
    energy: bool = Field(True, description="Measure energy around each recorded task.")
    energy_sample_hz: float = Field(1.0, gt=0, le=100, description="Energy sampling rate.")
    pue: float = Field(
        1.0,
        ge=1.0,
        le=5.0,
        description="Power usage effectiveness of this site's facility. Default 1.0 (no facility "
        "overhead counted); the Uptime Institute 2023 survey average is 1.58.",
    )
    carbon_region: str = Field(
        "WORLD", description="Grid region for carbon intensity: ISO country code or cloud region."
    )
    carbon_intensity: float | None = Field(
        None, ge=0, description="Override grid carbon intensity in gCO2e/kWh."
    )
    renewable_share: float | None = Field(
        None, ge=0, le=1, description="Override the grid's renewable share (0..1)."
    )
    cpu_watts_per_core: float | None = Field(
        None, gt=0, description="Override modelled CPU power per busy core, in watts."
    )
    ram_watts_per_gb: float = Field(
        0.375, ge=0, description="Modelled RAM power per GB in use (3 W per 8 GB)."
    )
    # server / remote
    server_url: str | None = Field(
        None, description="URL of a CMF server to send events to (http:// or https://)."
    )
    server_token: str | None = Field(None, description="Bearer token for the CMF server.")
    serve_host: str = Field("127.0.0.1", description="Address `cmf serve` binds.")
    serve_port: int = Field(8080, ge=0, le=65535, description="Port `cmf serve` binds.")
    serve_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names `cmf serve` answers to besides loopback ones (a reverse proxy's "
        "name; `*`: any). Checked when it binds a loopback address or this is set.",
    )
    serve_root_path: str = Field(
        "", description="Path prefix under which a reverse proxy publishes `cmf serve` "
        "(`/cmf` for https://portal.example.org/cmf/), whether the proxy strips it or not.",
    )
    token: str | None = Field(
        None, description="Bearer token `cmf serve` requires for writes (required off loopback)."
    )
    spool_dir: Path | None = Field(
        None, description="Folder where events that could not be recorded wait for retry."
    )
    # federation
    federation_share_pipelines: list[str] | None = Field(
        None, description="Pipelines this site serves to and pushes to peers (None: all)."
    )
    federation_peer_pipelines: dict[str, list[str]] = Field(
        default_factory=dict, description="Per-peer pipeline allow-lists, by peer name."
    )
    federation_peer_tokens: dict[str, str] = Field(
        default_factory=dict,
        description="Server side: peer name -> the token that peer presents.",
    )
    federation_tokens: dict[str, str] = Field(
        default_factory=dict, description="Client side: peer URL -> the token to send."
    )
    federation_artifact_roots: list[Path] = Field(
        default_factory=list,
        description="Folders whose files this site serves by digest (empty: refuse).",
    )
    hook_timeout_s: float = Field(
        5.0, gt=0, le=3600,
        description="Longest time a tracking hook may take inside a user's task (at most 3600 s).",
    )
    digest_max_mb: float = Field(
        1024.0, ge=0,
        description="Local files and folders up to this size (MiB, all files of a folder "
                    "together) are identified by a sha256 of their content; larger ones by "
                    "path, size and modification time (the Python API logs a warning). Every "
                    "route uses it: the Python API, the Prefect adapter, the Airflow listener "
                    "(unless `[cmf] digest_max_mb` is set) and `CmfTransport` (unless its "
                    "`digest_max_mb` key is set), so one file is one artifact whichever "
                    "recorded it.",
    )

    @field_validator("site")
    @classmethod
    def _check_site(cls, value: str) -> str:
        if not value or len(value) > 128 or any(c.isspace() or c in "/\\" for c in value):
            raise ValueError(
                f"site id {value!r} must be 1-128 characters without spaces or slashes"
            )
        return value

    @field_validator("serve_root_path")
    @classmethod
    def _check_root_path(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "/"):
            return ""
        if "://" in value or not value.startswith("/") or any(c in value for c in "?#\\ "):
            raise ValueError(f"root path {value!r} must be the path part of the public URL, "
                             "starting with '/' (e.g. '/cmf' for https://portal.example.org/cmf/)")
        return value.rstrip("/")

    @field_validator("server_url")
    @classmethod
    def _check_server_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parts = urllib.parse.urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as e:
            raise ValueError(f"server URL {hide_password(value)!r} is not a valid URL ({e})") \
                from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server URL {hide_password(value)!r} must be http:// or https:// "
                             "with a host")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        home = getattr(init_settings, "init_kwargs", {}).get("home")
        return (init_settings, _EnvSource(settings_cls), *_toml_sources(settings_cls, home))

    # derived values -------------------------------------------------------------------------
    @property
    def home_path(self) -> Path:
        return resolve_home(self.home)

    @property
    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{self.home_path / 'cmf.db'}"

    @property
    def spool_path(self) -> Path:
        return self.spool_dir.expanduser() if self.spool_dir else self.home_path / "spool"


class _EnvSource(EnvSettingsSource):
    """``CMF_*`` variables; a dict- or list-valued one that is not JSON is a :class:`ConfigError`
    naming the variable, the JSON it must be and where parsing stopped."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as e:
            if _admits_str(field.annotation):  # a plain string is valid too: leave it to pydantic
                raise
            # the value itself is not repeated: it may hold tokens (CMF_FEDERATION_TOKENS)
            raise ConfigError(
                f"{ENV_PREFIX}{field_name.upper()} must be {_json_kind(field.annotation)}, but "
                f"it is not valid JSON ({e})") from None


def _admits_str(annotation: Any) -> bool:
    """Whether a value of type ``annotation`` may be a plain string."""
    if annotation is str:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_admits_str(a) for a in typing.get_args(annotation))
    return False


def _json_kind(annotation: Any) -> str:
    """What JSON a complex setting takes, with an example."""
    kinds = {typing.get_origin(a) or a for a in (typing.get_args(annotation)
                                                  if typing.get_origin(annotation) in
                                                  (typing.Union, types.UnionType)
                                                  else (annotation,))}
    if dict in kinds:
        return 'a JSON object, e.g. {"name": "value"}'
    if list in kinds:
        return 'a JSON array, e.g. ["a", "b"]'
    return "JSON"


def _config_file() -> Path | None:
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"CMF_CONFIG points to {path}, which is not a file")
        return path
    local = Path("cmf.toml")
    return local if local.is_file() else None


def home_config_file(home: Path | str | None = None) -> Path:
    """The CMF home's own config file, ``<home>/cmf.toml`` (read after ``./cmf.toml``)."""
    return resolve_home(Path(home) if home else None) / "cmf.toml"


def _config_files(home: Path | str | None) -> list[Path | None]:
    """The config file (``CMF_CONFIG`` or ``./cmf.toml``, None if neither), then the home's
    ``cmf.toml`` when it exists and is another file. The home is ``home``, else ``CMF_HOME``,
    else ``home`` in the config file (the home the settings name: its ``cmf.toml`` holds the
    site ``cmf init --site`` wrote), else the home found from the current folder."""
    home = home or os.environ.get(f"{ENV_PREFIX}HOME") or None
    first = _config_file()
    if home is None and first is not None:
        home = _home_in(first)
    try:
        second = home_config_file(home)
    except ConfigError:  # no home can be found: it has no file (said when the home is needed)
        return [first]
    same = first is not None and second.resolve() == first.resolve()
    return [first] + ([second] if second.is_file() and not same else [])


def _home_in(path: Path) -> str | None:
    """The ``home`` key of the config file ``path`` (None: not set, or not a string; a file
    that cannot be read is reported when it is read as a source)."""
    try:
        home = tomllib.loads(path.read_text(encoding="utf-8")).get("home")
    except (OSError, ValueError):  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return home if isinstance(home, str) and home else None


def _toml_sources(settings_cls: type[BaseSettings], home: Path | str | None
                  ) -> list[TomlConfigSettingsSource]:
    """The config file (``CMF_CONFIG`` or ``./cmf.toml``), then the home's ``cmf.toml``."""
    return [_toml_source(settings_cls, path) for path in _config_files(home)]


def _toml_source(settings_cls: type[BaseSettings], path: Path | None
                 ) -> TomlConfigSettingsSource:
    try:
        return TomlConfigSettingsSource(settings_cls, path)
    except tomllib.TOMLDecodeError as e:  # its message ends "(at line L, column C)"
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {e.start}); TOML files "
                          "are UTF-8") from None


def resolve_home(home: Path | None = None) -> Path:
    """The CMF home: explicit, else nearest ``.cmf/`` upwards from cwd, else ``~/.cmf``."""
    if home is not None:
        return Path(home).expanduser()
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        candidate = folder / HOME_DIRNAME
        if candidate.is_dir():
            return candidate
    try:
        return Path.home() / HOME_DIRNAME
    except (RuntimeError, KeyError):  # no HOME and no passwd entry (a container's arbitrary uid)
        raise ConfigError(
            f"cannot tell where the CMF home is: CMF_HOME is not set, there is no {HOME_DIRNAME} "
            f"folder in {cwd} or above, and the user's home folder is unknown (HOME is not set "
            f"and user id {os.getuid()} has no entry in the user database, as for a container "
            "run as an arbitrary user); set CMF_HOME to a writable folder (a mounted volume, "
            "or /tmp/cmf)") from None


def _check_unknown_env() -> None:
    known = {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}
    unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k.upper() not in known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)}; known CMF_* settings are: "
            f"{', '.join(sorted(known))}"
        )


def is_disabled() -> bool:
    """``CMF_DISABLED`` kill switch, read before anything else."""
    return os.environ.get(f"{ENV_PREFIX}DISABLED", "").strip().lower() in {"1", "true", "yes", "on"}


def load_settings(*, named: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings in the documented order; ``None`` overrides are ignored. ``named`` says
    what the user called an override, for the error that a bad value gives (a command's option:
    ``{"serve_port": "--port"}``); any other is reported as "an argument"."""
    _check_unknown_env()
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except SettingsError as e:  # a source could not read a value (ours name it themselves)
        cause = f" ({e.__cause__})" if e.__cause__ else ""
        raise ConfigError(f"invalid cmf configuration: {e}{cause}") from e
    except ValidationError as e:
        problems = "; ".join(_problem(err, given, named or {}) for err in e.errors())
        if any(err["type"] == "extra_forbidden" for err in e.errors()):
            problems += f"; known keys are: {', '.join(sorted(Settings.model_fields))}"
        raise ConfigError(f"invalid cmf configuration: {problems}") from e


def _problem(err: Any, given: dict[str, Any], named: Mapping[str, str]) -> str:
    """One validation error as ``key: what is wrong (where it came from)``: an argument (by its
    name in ``named``, a command's option), a ``CMF_*`` variable or the config file that has it
    (pydantic said neither, and only "Extra inputs are not permitted" for an unknown key)."""
    key = ".".join(str(p) for p in err["loc"]) or "config"
    top = str(err["loc"][0]) if err["loc"] else ""
    files = [p for p in _config_files(given.get("home")) if p is not None]
    if top in given:
        where = f" (from {named[top]})" if top in named else " (an argument)"
    elif err["type"] != "extra_forbidden" and f"{ENV_PREFIX}{top.upper()}" in os.environ:
        where = f" (from {ENV_PREFIX}{top.upper()})"
    else:
        having = [f for f in files if top in _keys_of(f)]
        shown = having or files
        where = (f" in {shown[0]}" if len(shown) == 1
                 else f" in one of {', '.join(map(str, shown))}" if shown else "")
    if err["type"] != "extra_forbidden":
        return f"{key}: {err['msg']}{where}"
    return f"{key}: unknown key{where}"


def _keys_of(path: Path) -> set[str]:
    """The top-level keys of the TOML file ``path`` (none if it cannot be read)."""
    try:
        return set(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return set()
