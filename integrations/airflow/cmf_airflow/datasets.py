"""Airflow inlets and outlets -> OpenLineage datasets that carry CMF's ``cmf_artifact`` facet.

Any URI scheme is accepted and named as :mod:`cmf_core.openlineage.naming` says
(``file:///data/x.csv`` -> ``file`` + ``/data/x.csv``; ``s3://bucket/key`` -> ``s3://bucket`` +
``key``). An Airflow asset that has only a name (``Asset("features")``) becomes namespace
``airflow.asset``. What identifies the artifact:

* a local file or directory (``file://`` or an absolute path) that exists: the ``sha256`` of its
  content (:func:`cmf_core.identity.path_digest`), or, above ``[cmf] digest_max_mb`` or when
  reading takes longer than the hook's time budget, a digest of its path, size and modification
  time (property ``digest_method = "stat"``);
* a remote object whose asset ``extra``, or the ``extra`` the task gave the asset's event (an
  output), or the ``extra`` of the asset's latest event when the try starts (an input:
  :func:`inlet_extras`), names a ``version``, ``etag``, ``digest`` or ``checksum``: the OpenLineage
  ``version`` facet (ingest turns it into
  :func:`cmf_core.identity.remote_digest`);
* anything else: no digest here; ingest identifies it by its URI (an *unversioned* artifact).

An ``AssetAlias`` inlet is the assets its latest writers attached to it (:func:`alias_inputs`),
identified as above by the ``extra`` of their events.

The artifact type is ``Dataset`` unless the asset's extra says ``{"cmf_type": "Model"}``.
Digests of unchanged files are cached per process (:mod:`cmf_core.openlineage.local`: by each
file's inode, size, modification and status change times), so a file written by one task and
read by a later one is read once. The size limit is ``[cmf] digest_max_mb``, else CMF's
``digest_max_mb`` (``CMF_DIGEST_MAX_MB``), the limit of every other route.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import Any

from cmf_core.openlineage.naming import dataset_naming

ASSET_NAMESPACE = "airflow.asset"
VERSION_KEYS = ("version", "etag", "digest", "checksum")
TYPE_KEY = "cmf_type"


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """One inlet or outlet: where it is, how it is named in OpenLineage, what it is."""

    namespace: str
    name: str
    uri: str
    local_path: str | None = None
    artifact_type: str = "Dataset"
    version: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


def ref_from_uri(uri: str, *, artifact_type: str = "Dataset", version: str | None = None,
                 properties: dict[str, Any] | None = None) -> DatasetRef:
    """A dataset reference for ``uri`` (a URI of any scheme, or a path)."""
    uri = os.fspath(uri)
    if "://" not in uri and not os.path.isabs(uri) and not uri.startswith("."):
        return DatasetRef(ASSET_NAMESPACE, uri, f"{ASSET_NAMESPACE}:{uri}",
                          artifact_type=artifact_type, version=version,
                          properties=dict(properties or {}))
    namespace, name = dataset_naming(uri)
    local = name if namespace == "file" else None
    if local is not None:
        local = os.path.abspath(local)
        if "://" not in uri:
            namespace, name = "file", local
    return DatasetRef(namespace, name, uri if "://" in uri else local or uri, local,
                      artifact_type, version, dict(properties or {}))


def ref_from_object(obj: Any) -> DatasetRef | None:
    """An Airflow ``Asset``, a legacy ``File``, an OpenLineage ``Dataset``, a path or a URI."""
    if isinstance(obj, (str, PurePath)):
        return ref_from_uri(os.fspath(obj))
    cls = type(obj).__name__
    if cls == "AssetAlias":  # resolved at run time: see runtime_outlets
        return None
    uri = getattr(obj, "uri", None) or getattr(obj, "url", None)
    if isinstance(uri, str) and uri:
        extra = getattr(obj, "extra", None) or {}
        version = next((str(extra[k]) for k in VERSION_KEYS if extra.get(k)), None)
        props: dict[str, Any] = {}
        name = getattr(obj, "name", None)
        if isinstance(name, str) and name and name != uri:
            props["airflow.asset_name"] = name
        return ref_from_uri(uri, artifact_type=str(extra.get(TYPE_KEY) or "Dataset"),
                            version=version, properties=props)
    namespace, name = getattr(obj, "namespace", None), getattr(obj, "name", None)
    if isinstance(namespace, str) and isinstance(name, str):  # an OpenLineage Dataset
        from cmf_core.openlineage.naming import dataset_uri

        return DatasetRef(namespace, name, dataset_uri(namespace, name),
                          name if namespace == "file" else None)
    return None


def refs(objects: Iterable[Any] | None) -> list[DatasetRef]:
    return _unique(ref_from_object(obj) for obj in objects or ())


def _unique(found: Iterable[DatasetRef | None]) -> list[DatasetRef]:
    """The first ref of each dataset (namespace, name), in order; ``None`` left out."""
    out: dict[tuple[str, str], DatasetRef] = {}
    for ref in found:
        if ref is not None:
            out.setdefault((ref.namespace, ref.name), ref)
    return list(out.values())


def event_extras(context: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The ``extra`` the task gave its outlets' asset events while it ran
    (``outlet_events[asset].extra[...] = ...``, ``yield Metadata(asset, extra)``), by dataset
    (namespace, name): where a run's version of an asset (``version``, ``etag``...) is given."""
    outlet_events = context.get("outlet_events") if context is not None else None
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key in outlet_events or ():
        ref = ref_from_object(key)
        extra = getattr(outlet_events[key], "extra", None) if ref is not None else None
        if ref is not None and isinstance(extra, dict) and extra:
            out[(ref.namespace, ref.name)] = extra
    return out


def inlet_extras(inlets: Iterable[Any], context: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The ``extra`` of the latest asset event of each inlet that is neither a local file nor
    versioned by its own ``extra``, by dataset (namespace, name): the version of it the try
    reads, as the task itself sees it (``inlet_events[asset][-1].extra``), so the input is the
    artifact the producing try recorded as its output (which a version given to its asset
    event identifies). One request per such inlet (the latest event only); none where Airflow
    cannot ask for the latest alone. An inlet whose events cannot be read is left out."""
    accessors = context.get("inlet_events") if context is not None else None
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if accessors is None:
        return out
    for obj in inlets or ():
        if type(obj).__name__ not in ("Asset", "AssetUriRef"):
            continue
        ref = ref_from_object(obj)
        if ref is None or ref.local_path or ref.version is not None:
            continue
        try:
            events = accessors[obj]
            if not (hasattr(events, "ascending") and hasattr(events, "limit")):
                continue  # would read every event of the asset
            latest = list(events.ascending(False).limit(1))
        except Exception:
            continue
        extra = getattr(latest[0], "extra", None) if latest else None
        if isinstance(extra, dict) and extra:
            out[(ref.namespace, ref.name)] = extra
    return out


ALIAS_EVENTS = 100
"""The latest asset events of an ``AssetAlias`` inlet read at most (in one request)."""


def alias_inputs(inlets: Iterable[Any], context: Any) -> list[DatasetRef]:
    """The assets each ``AssetAlias`` inlet points at when the try starts: those the alias's
    latest asset event and the other events of the same DAG run attached to it (a run's
    writers, mapped instances included), each at the version its latest event there gives
    (the asset's ``extra``, then the event's), so the input is the artifact the writer
    recorded as its output. An event of no DAG run (posted through the API) stands alone.
    One request per alias (its :data:`ALIAS_EVENTS` latest events); an alias whose events
    cannot be read, or that has none, gives nothing."""
    accessors = context.get("inlet_events") if context is not None else None
    found: list[DatasetRef] = []
    if accessors is None:
        return found
    for obj in inlets or ():
        if type(obj).__name__ != "AssetAlias":
            continue
        try:
            events = accessors[obj]
            if not (hasattr(events, "ascending") and hasattr(events, "limit")):
                continue  # would read every event of the alias
            latest = list(events.ascending(False).limit(ALIAS_EVENTS))
        except Exception:
            continue
        found += _alias_refs(latest)
    return _unique(found)


def _alias_refs(latest: list[Any]) -> list[DatasetRef]:
    """The refs of the events (newest first) of the newest event's DAG run, one per asset
    (its newest event)."""
    def source(event: Any) -> tuple[Any, Any]:
        return getattr(event, "source_dag_id", None), getattr(event, "source_run_id", None)

    run = source(latest[0]) if latest else (None, None)
    chosen = latest[:1] if not all(run) else [e for e in latest if source(e) == run]
    out: list[DatasetRef] = []
    for event in chosen:
        asset = getattr(event, "asset", None)
        ref = ref_from_object(asset) if asset is not None else None
        if ref is not None:
            extra = {**(getattr(asset, "extra", None) or {}), **(getattr(event, "extra", None)
                                                                  or {})}
            out.append(with_event_extra(ref, extra))
    return _unique(out)  # the first, the newest event, of each asset


def with_event_extra(ref: DatasetRef, extra: dict[str, Any] | None) -> DatasetRef:
    """``ref`` with the version and type its asset event's ``extra`` gives, if any."""
    if not extra:
        return ref
    version = next((str(extra[k]) for k in VERSION_KEYS if extra.get(k)), ref.version)
    kind = str(extra.get(TYPE_KEY) or ref.artifact_type)
    return replace(ref, version=version, artifact_type=kind)


def runtime_outlets(context: Any) -> list[DatasetRef]:
    """Assets a task attached to an ``AssetAlias`` while it ran (``outlet_events[alias].add``)."""
    outlet_events = context.get("outlet_events") if context is not None else None
    if outlet_events is None:
        return []
    found: list[DatasetRef] = []
    for key in outlet_events:
        if type(key).__name__ != "AssetAlias":
            continue
        for event in getattr(outlet_events[key], "asset_alias_events", None) or []:
            dest = getattr(event, "dest_asset_key", None)
            ref = ref_from_object(dest) if getattr(dest, "uri", None) else None
            if ref is not None:  # the asset's extra, then the event's (a version, a type)
                extra = {**(getattr(event, "dest_asset_extra", None) or {}),
                         **(getattr(event, "extra", None) or {})}
                found.append(with_event_extra(ref, extra))
    return _unique(found)


# digests (the same rules as CmfTransport's, in cmf_core.openlineage.local) -------------------
def local_digest(path: str, max_bytes: float) -> tuple[str, str] | None:
    """``(digest, method)`` of a local file or directory; ``None`` if it does not exist."""
    from cmf_core.openlineage.local import local_identity

    return local_identity(path, max_bytes)


def digests(refs_: Iterable[DatasetRef], max_bytes: float) -> dict[str, tuple[str, str]]:
    """Digest of every existing local dataset, by local path."""
    out: dict[str, tuple[str, str]] = {}
    for ref in refs_:
        if ref.local_path and ref.local_path not in out:
            found = local_digest(ref.local_path, max_bytes)
            if found is not None:
                out[ref.local_path] = found
    return out


def stat_digests(refs_: Iterable[DatasetRef]) -> dict[str, tuple[str, str]]:
    """The fallback when content digests overran the time budget."""
    from cmf_core.openlineage.local import local_stat_identity

    out: dict[str, tuple[str, str]] = {}
    for ref in refs_:
        if ref.local_path:
            found = local_stat_identity(ref.local_path)
            if found is not None:
                out[ref.local_path] = found
    return out


# OpenLineage --------------------------------------------------------------------------------
def identify(ref: DatasetRef, local: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """``(artifact id, method)`` of ``ref``, or ``None`` to let ingest identify it by its URI.

    The ids are those ingest itself derives (``remote_digest`` of the dataset URI and version,
    ``unversioned_digest`` of the URI), so a dataset seen through Airflow's OpenLineage provider
    and through this listener is one artifact.
    """
    if ref.local_path and ref.local_path in local:
        return local[ref.local_path]
    if ref.version is None and ref.artifact_type == "Dataset":
        return None
    from cmf_core.openlineage.naming import dataset_uri

    uri = dataset_uri(ref.namespace, ref.name)
    if ref.version is not None:
        from cmf_core.identity import remote_digest

        return remote_digest(uri, ref.version), "version"
    from cmf_core.openlineage.ingest import unversioned_digest

    return unversioned_digest(uri), "unversioned"


def to_openlineage(ref: DatasetRef, identity: tuple[str, str] | None, output: bool,
                   producer: str) -> Any:
    """The ``InputDataset`` / ``OutputDataset`` of ``ref`` (see :func:`identify`)."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import dataset_version_dataset

    from cmf_core.openlineage.facets import ArtifactDatasetFacet

    facets: dict[str, Any] = {}
    if identity is not None:
        props = dict(ref.properties)
        props["digest_method"] = identity[1]
        facets["cmf_artifact"] = ArtifactDatasetFacet(
            digest=identity[0], type=ref.artifact_type, properties=props, producer=producer)
    if ref.version is not None:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=ref.version, producer=producer)
    cls = OutputDataset if output else InputDataset
    return cls(namespace=ref.namespace, name=ref.name, facets=facets)
