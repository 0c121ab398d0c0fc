"""Dataset naming: an artifact URI <-> an OpenLineage dataset (namespace, name).

Follows the OpenLineage naming conventions (https://openlineage.io/docs/spec/naming):

==============================  ==========================  ===================
artifact URI                    namespace                   name
==============================  ==========================  ===================
``/data/train.csv``             ``file``                    ``/data/train.csv``
``file:///data/train.csv``      ``file``                    ``/data/train.csv``
``file://host/data/x.csv``      ``file://host``             ``/data/x.csv``
``s3://bucket/key/x.csv``       ``s3://bucket``             ``key/x.csv``
``gs://bucket/key``             ``gs://bucket``             ``key``
``hdfs://nn:8020/warehouse/t``  ``hdfs://nn:8020``          ``/warehouse/t``
``abfss://c@acct.dfs...``/p     ``abfss://c@acct.dfs...``   ``p``
``postgres://h:5432/db.s.t``    ``postgres://h:5432``       ``db.s.t``
==============================  ==========================  ===================

A URI without ``://`` is a local path (relative paths are kept as given). Local and HDFS-like
file systems keep the leading ``/`` of the path; object stores and databases drop it.

Going back (:func:`dataset_uri`): namespace ``file`` gives the name (a path); a namespace with
``://`` gives ``<namespace>/<name>``; any other namespace (``bigquery``,
``arn:aws:glue:<region>:<account>``) gives ``<namespace>:<name>``.
"""

from __future__ import annotations

from cmf_core.errors import InvalidInputError

PATH_SCHEMES = frozenset({"file", "hdfs", "webhdfs", "viewfs", "dbfs"})
"""Schemes whose dataset name is the absolute path (leading ``/`` kept)."""


def dataset_naming(uri: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) of the artifact at ``uri``."""
    if not isinstance(uri, str) or not uri:
        raise InvalidInputError(f"artifact uri {uri!r} must be a non-empty string")
    if "://" not in uri:
        return "file", uri
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    authority, slash, path = rest.partition("/")
    if scheme == "file" and authority in ("", "localhost"):
        return "file", "/" + path
    namespace = f"{scheme}://{authority}"
    if scheme in PATH_SCHEMES:
        return namespace, "/" + path
    if not path:
        return namespace, slash or "/"
    return namespace, path


def dataset_uri(namespace: str, name: str) -> str:
    """The artifact URI of OpenLineage dataset (``namespace``, ``name``)."""
    if namespace == "file":
        return name
    if "://" in namespace:
        return f"{namespace.rstrip('/')}/{name.lstrip('/')}"
    return f"{namespace}:{name}"


def dataset_uris(namespace: str, name: str) -> list[str]:
    """The artifact URIs whose :func:`dataset_naming` is (``namespace``, ``name``): the one
    :func:`dataset_uri` gives, then the ones naming leaves the same (``file://`` and
    ``file://localhost`` before a local path, a bucket without its ``/``). Not other spellings
    of a scheme (``S3://``)."""
    uris = [dataset_uri(namespace, name)]
    if namespace == "file" and name.startswith("/"):
        uris += ["file://" + name, "file://localhost" + name]
    elif "://" in namespace and name == "/":
        uris.append(namespace.rstrip("/"))
    return uris
