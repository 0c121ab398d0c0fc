"""Inlets and outlets of any URI scheme -> datasets, with the identity ingest would give them."""

from __future__ import annotations

from pathlib import Path

from cmf_airflow.datasets import (
    ASSET_NAMESPACE,
    _alias_refs,
    digests,
    identify,
    ref_from_object,
    ref_from_uri,
    refs,
)

from cmf_core.identity import dir_digest, file_digest, remote_digest
from cmf_core.openlineage.ingest import unversioned_digest


def test_assets_of_any_scheme_are_named_as_openlineage_names_them() -> None:
    from airflow.sdk import Asset, AssetAlias

    found = refs([Asset("file:///data/x.csv"), Asset("s3://bucket/key/x.csv"),
                  Asset("gs://b/k"), Asset("postgres://db:5432/sales.public.orders"),
                  Asset("features"), AssetAlias("later"), "/data/y.csv",
                  Asset("file:///data/x.csv")])  # the duplicate is kept once
    assert [(r.namespace, r.name, r.local_path) for r in found] == [
        ("file", "/data/x.csv", "/data/x.csv"),
        ("s3://bucket", "key/x.csv", None),
        ("gs://b", "k", None),
        ("postgres://db:5432", "sales.public.orders", None),
        (ASSET_NAMESPACE, "features", None),
        ("file", "/data/y.csv", "/data/y.csv"),
    ]


def test_local_files_and_directories_are_content_digested(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("1,2\n")
    d = tmp_path / "model"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"\0" * 10)
    found = refs([f"file://{f}", str(d), str(tmp_path / "missing.csv")])
    ids = digests(found, max_bytes=2**20)
    assert ids == {str(f): (file_digest(f), "sha256"), str(d): (dir_digest(d), "sha256")}
    f.write_text("1,2\n3,4\n")  # a changed file is digested again, not served from the cache
    assert digests(found[:1], 2**20)[str(f)][0] == file_digest(f)


def test_files_over_the_size_limit_get_a_stat_digest(tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    f.write_bytes(b"x" * 2048)
    ((_, (digest, method)),) = digests(refs([str(f)]), max_bytes=1024).items()
    assert method == "stat" and digest.startswith("version:") and digest != file_digest(f)


def test_identity_matches_what_ingest_derives() -> None:
    from airflow.sdk import Asset

    versioned = ref_from_object(Asset("s3://bucket/m.pkl", extra={"etag": "abc123"}))
    assert identify(versioned, {}) == (remote_digest("s3://bucket/m.pkl", "abc123"), "version")
    model = ref_from_object(Asset("s3://bucket/m2.pkl", extra={"cmf_type": "Model"}))
    assert model.artifact_type == "Model"
    assert identify(model, {}) == (unversioned_digest("s3://bucket/m2.pkl"), "unversioned")
    assert identify(ref_from_uri("s3://bucket/plain.csv"), {}) is None  # left to ingest


def _event(id_: int, uri: str, run: str | None, extra: dict, asset_extra: dict | None = None
           ) -> object:
    """An asset event as the task runner gets it for an alias inlet (Airflow's own model)."""
    import datetime as dt

    from airflow.sdk.api.datamodels._generated import AssetResponse
    from airflow.sdk.execution_time.comms import AssetEventResult

    return AssetEventResult(
        id=id_, timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), extra=extra,
        asset=AssetResponse(name=uri, uri=uri, group="asset", extra=asset_extra or {}),
        created_dagruns=[], source_dag_id="w" if run else None, source_run_id=run,
        source_task_id="write" if run else None, source_map_index=-1)


def test_an_alias_inlet_is_the_assets_of_its_latest_events_dag_run() -> None:
    """Newest first: the latest event's DAG run's assets, each at its newest event's version
    (the asset's extra, then the event's); an event of no DAG run (posted through the API)
    stands alone."""
    newest_first = [
        _event(5, "s3://b/run2/a.csv", "run2", {"etag": "a2"}),
        _event(4, "s3://b/run2/m.pkl", "run2", {"version": "1"}, {"cmf_type": "Model"}),
        _event(3, "s3://b/run2/a.csv", "run2", {"etag": "a1"}),
        _event(2, "s3://b/run1/a.csv", "run1", {"etag": "a0"}),
    ]
    assert [(r.uri, r.version, r.artifact_type) for r in _alias_refs(newest_first)] == [
        ("s3://b/run2/a.csv", "a2", "Dataset"), ("s3://b/run2/m.pkl", "1", "Model")]
    posted = [_event(9, "s3://b/manual.csv", None, {"etag": "m"}), *newest_first]
    assert [(r.uri, r.version) for r in _alias_refs(posted)] == [("s3://b/manual.csv", "m")]
    assert _alias_refs([]) == []
