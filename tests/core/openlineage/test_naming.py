from __future__ import annotations

import pytest

from cmf_core.errors import InvalidInputError
from cmf_core.openlineage.naming import dataset_naming, dataset_uri, dataset_uris

CASES = [
    ("/data/train.csv", "file", "/data/train.csv"),
    ("data/train.csv", "file", "data/train.csv"),
    ("file:///data/train.csv", "file", "/data/train.csv"),
    ("file://nas01/data/x.csv", "file://nas01", "/data/x.csv"),
    ("s3://bucket/key/x.csv", "s3://bucket", "key/x.csv"),
    ("gs://bucket/key", "gs://bucket", "key"),
    ("hdfs://nn:8020/warehouse/t", "hdfs://nn:8020", "/warehouse/t"),
    ("abfss://c@acct.dfs.core.windows.net/p/q", "abfss://c@acct.dfs.core.windows.net", "p/q"),
    ("postgres://db:5432/shop.public.orders", "postgres://db:5432", "shop.public.orders"),
]


@pytest.mark.parametrize(("uri", "namespace", "name"), CASES)
def test_naming_follows_openlineage_conventions(uri: str, namespace: str, name: str) -> None:
    assert dataset_naming(uri) == (namespace, name)


@pytest.mark.parametrize(("uri", "namespace", "name"), CASES)
def test_uri_comes_back_from_namespace_and_name(uri: str, namespace: str, name: str) -> None:
    back = dataset_uri(namespace, name)
    assert dataset_naming(back) == (namespace, name)
    if not uri.startswith("file:///"):
        assert back == uri


@pytest.mark.parametrize(("namespace", "name", "more"), [
    ("file", "/data/x.csv", ["file:///data/x.csv", "file://localhost/data/x.csv"]),
    ("file", "data/x.csv", []),
    ("s3://bucket", "/", ["s3://bucket"]),
    ("s3://bucket", "key/x.csv", []),
])
def test_every_spelling_of_a_dataset_names_it(namespace: str, name: str, more: list[str]) -> None:
    uris = dataset_uris(namespace, name)
    assert uris == [dataset_uri(namespace, name), *more]
    assert {dataset_naming(u) for u in uris} == {(namespace, name)}


def test_namespaces_without_scheme_use_a_colon() -> None:
    assert dataset_uri("bigquery", "proj.ds.t") == "bigquery:proj.ds.t"
    assert dataset_uri("arn:aws:glue:eu-west-1:123", "table/db/t") == \
        "arn:aws:glue:eu-west-1:123:table/db/t"


def test_empty_uri_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="artifact uri ''"):
        dataset_naming("")
