"""CmfTransport: an openlineage-python transport that records events into the local CMF store.

Select it by dotted path, so any producer built on openlineage-python (Airflow's OpenLineage
provider, dbt-ol, your own code) feeds CMF with configuration only::

    transport:
      type: cmf_core.openlineage.transport.cmf.CmfTransport
      store_url: postgresql://cmf@db/cmf   # optional; else CMF_STORE_URL / cmf.toml / default
      site: hpc-a                          # optional; else CMF_SITE / host name
      on_failure: spool                    # or "raise"; default spool
      digest_max_mb: 1024                  # optional; else CMF_DIGEST_MAX_MB / cmf.toml / 1024

Keys (one spelling each; environment variables ``OPENLINEAGE__TRANSPORT__<KEY>`` arrive in
lower case and so match): ``store_url``, ``site``, ``home``, ``on_failure``,
``digest_max_mb``. An unknown key is an error naming the known ones. Unset keys come from
CMF's own configuration (:func:`cmf_core.config.load_settings`): an unset ``digest_max_mb`` is
``CMF_DIGEST_MAX_MB`` (or ``cmf.toml``, default 1024), the limit of every other route.

``emit(event)`` validates the event first: an invalid event raises
:class:`~cmf_core.errors.InvalidEventError` naming the bad field, and nothing is stored (the
caller's mistake surfaces). Its datasets that are local files or directories on this host get
the content digest the in-process adapters (the Airflow listener) give them
(:func:`cmf_core.openlineage.local.with_local_digests`; files over ``digest_max_mb`` a digest
of path, size and modification time), so a file is one artifact whichever route recorded it.
The event then goes through
:func:`cmf_core.openlineage.ingest.ingest`, the same code as the Python API and ``cmf serve``,
so all three give identical records. When the store cannot be written, ``on_failure: spool``
(the default) puts the event in CMF's spool folder (nothing is lost, nothing raises into the
producer): a transport replays the events waiting there for its store after the first event it
records, as the other routes' emitters do at start-up (``cmf spool retry`` records them at
once); ``on_failure: raise`` raises the :class:`~cmf_core.errors.StoreError` instead.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attr
from openlineage.client.transport.transport import Config, Transport

from cmf_core.config import Settings, load_settings
from cmf_core.errors import ConfigError
from cmf_core.openlineage.convert import event_to_dict
from cmf_core.openlineage.emit import Emitter, StoreSink
from cmf_core.openlineage.local import with_local_digests
from cmf_core.openlineage.validate import validate_event

if TYPE_CHECKING:
    from cmf_core.store.base import Store


class OnFailure(enum.StrEnum):
    """What ``emit`` does when the store cannot be written."""

    SPOOL = "spool"  # keep the event in the spool folder for retry; do not raise
    RAISE = "raise"  # raise the StoreError to the producer


@attr.define
class CmfConfig(Config):
    """Configuration of :class:`CmfTransport`; every key is optional."""

    store_url: str | None = None
    site: str | None = None
    home: str | None = None
    on_failure: OnFailure = OnFailure.SPOOL
    digest_max_mb: float | None = None  # None: the CMF settings' digest_max_mb

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> CmfConfig:
        known = {f.name for f in attr.fields(cls)}
        given = {k: v for k, v in params.items() if k not in ("type", "name", "priority")}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(
                f"unknown CmfTransport setting(s) {', '.join(unknown)}; known settings are: "
                f"{', '.join(sorted(known))}")
        if "on_failure" in given:
            try:
                given["on_failure"] = OnFailure(str(given["on_failure"]).lower())
            except ValueError:
                raise ConfigError(
                    f"CmfTransport on_failure {given['on_failure']!r} must be one of: "
                    f"{', '.join(m.value for m in OnFailure)}") from None
        if given.get("digest_max_mb") in ("", None):  # unset: CMF's own setting decides
            given.pop("digest_max_mb", None)
        if "digest_max_mb" in given:
            try:
                given["digest_max_mb"] = float(given["digest_max_mb"])
            except (TypeError, ValueError):
                given["digest_max_mb"] = -1.0
            if not given["digest_max_mb"] >= 0:
                raise ConfigError(
                    f"CmfTransport digest_max_mb {params['digest_max_mb']!r} must be a number "
                    ">= 0 (megabytes; 0 digests local files by path, size and time only)")
        for key in ("store_url", "site", "home"):
            if key in given:
                given[key] = str(given[key]) if given[key] not in ("", None) else None
        return cls(**given)

    def settings(self) -> Settings:
        """CMF settings with this config's keys taking precedence."""
        return load_settings(store_url=self.store_url, site=self.site,
                             home=Path(self.home) if self.home else None,
                             digest_max_mb=self.digest_max_mb)


class CmfTransport(Transport):
    """Record OpenLineage events into the local CMF store (see the module docs)."""

    kind = "cmf"
    config_class = CmfConfig

    def __init__(self, config: CmfConfig) -> None:
        self.config = config
        self.settings = config.settings()
        self._sink = StoreSink(self.settings)
        self._emitter = Emitter(self.settings, sink=self._sink)
        # what earlier producers spooled for this store is replayed after the first event this
        # one records (bounded, as every replay), not only by `cmf spool retry`
        self._emitter.replay_after_next_send()

    @property
    def store(self) -> Store:
        """The store events are recorded into (opened on first use)."""
        return self._sink.store()

    def emit(self, event: Any) -> bool:
        """Validate and record ``event``; True if recorded now, False if spooled for retry.

        Raises :class:`~cmf_core.errors.InvalidEventError` for an invalid event (nothing is
        stored or spooled), and :class:`~cmf_core.errors.StoreError` when the store fails and
        ``on_failure`` is ``raise``.
        """
        data = event_to_dict(event)
        validate_event(data)
        data = with_local_digests(data, self.settings.digest_max_mb * 2**20)
        if self.config.on_failure is OnFailure.RAISE:
            self._sink.send(data)
            return True
        return self._emitter.emit(data)

    def spooled(self) -> list[Path]:
        """Events waiting in the spool folder (oldest first)."""
        return self._emitter.spooled_files()

    def retry_spool(self, limit: int | None = None) -> tuple[int, int]:
        """Record spooled events again; returns (recorded, still spooled)."""
        return self._emitter.retry_spool(limit)

    def close(self, timeout: float = -1) -> bool:
        return self._emitter.close(timeout if timeout >= 0 else 60.0)

    def __str__(self) -> str:
        import sqlalchemy as sa

        from cmf_core.task_values import hide_password

        url = sa.engine.make_url(self.settings.resolved_store_url)
        shown = hide_password(url.render_as_string(hide_password=True))  # also ?password=
        return f"<CmfTransport(store={shown}, site={self.settings.site})>"
