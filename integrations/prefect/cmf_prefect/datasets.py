"""What a Prefect task read and wrote, as OpenLineage datasets.

=========================================  ================================================
Prefect                                    dataset (namespace, name) and identity
=========================================  ================================================
task run ``R`` completed or failed        ``prefect``, ``task-run/<R>/result``; identified by
                                           its name (ingest's unversioned digest), so every
                                           route computes the same artifact from the id alone;
                                           role ``task_value`` (folded by ``cmf lineage``)
``task_inputs`` naming upstream run ``U``  input ``prefect``, ``task-run/<U>/result``: the
                                           lineage edge between the two executions
a parameter or return value that is the    ``file``, the absolute path; ``cmf_artifact`` with
path of an existing local file or folder   the content digest (``Model`` for model files)
``@materialize`` asset / ``asset_deps``    named from the asset key (``s3://b/k`` ->
                                           ``s3://b``, ``k``) and identified by it (Prefect
                                           re-materializes an asset under one key; both routes
                                           see the key, only one could read the bytes)
=========================================  ================================================

Files and folders are identified by :func:`cmf_core.openlineage.local.local_identity`, as by every
other route (the Airflow listener, ``CmfTransport``, ``Cmf.log_dataset``), with the same size
limit: ``digest_max_mb`` of the CMF settings the route records with (``CMF_DIGEST_MAX_MB``, default
1024 MiB, all files of a folder together). Its content digests are cached per process by each
file's inode, size, modification and status change times (not one changed in the last second), so a
file written by one task and read by a later one is read once. A file or folder above that limit,
or one that is not hashed within :data:`HASH_BUDGET_S` inside a task's hook, is identified by its
path, size and modification time instead (property ``digest_method = "stat"``; an overrun hash goes
on in the background and is cached for the next reader), and so is one that cannot be read (gone
meanwhile, unreadable) or a folder of more than ``cmf_core.openlineage.local.MAX_WALK_FILES``
files; a file system root, the home or working directory (or a parent of them) is never read, only
named.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_NAMESPACE = "prefect"
INLINE_HASH_BYTES = 8 << 20
HASH_BUDGET_S = 2.0
MAX_PATHS = 50
MODEL_SUFFIXES = frozenset({".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".pkl", ".pickle",
                            ".joblib", ".h5", ".keras", ".tflite", ".gguf", ".pb", ".model"})


@dataclass(frozen=True, slots=True)
class Dataset:
    """One OpenLineage dataset: namespace, name and dataset facets (``cmf_artifact``)."""

    namespace: str
    name: str
    facets: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


def result_dataset(task_run_id: Any) -> Dataset:
    """The result of task run ``task_run_id``: an output of that run, an input of its children.

    Its ``cmf_artifact`` facet gives the id ingest would give it anyway (the unversioned digest
    of its URI) and the role ``task_value`` (``cmf_core.model.TASK_VALUE``): a value passed
    between tasks in memory, which ``cmf lineage`` folds into the edge between the two runs.
    """
    from cmf_core.model.artifact import ROLE_PROPERTY, TASK_VALUE
    from cmf_core.openlineage.facets import ArtifactDatasetFacet
    from cmf_core.openlineage.ingest import unversioned_digest
    from cmf_core.openlineage.naming import dataset_uri

    name = f"task-run/{task_run_id}/result"
    facet = ArtifactDatasetFacet(digest=unversioned_digest(dataset_uri(RESULT_NAMESPACE, name)),
                                 type="Dataset", properties={ROLE_PROPERTY: TASK_VALUE})
    return Dataset(RESULT_NAMESPACE, name, {"cmf_artifact": facet})


def upstream_run_ids(task_inputs: Mapping[str, Iterable[Any]] | None) -> list[str]:
    """Ids of the upstream task runs named in ``task_inputs`` (objects or their JSON form).

    Every input kind that names a task run counts (data passed between tasks and ``wait_for``);
    ``__parents__`` (the task that called this one) is not an upstream.
    """
    ids: list[str] = []
    for key, inputs in (task_inputs or {}).items():
        if key == "__parents__":
            continue
        for item in inputs or ():
            if isinstance(item, Mapping):
                kind, run_id = item.get("input_type"), item.get("id")
            else:
                kind, run_id = getattr(item, "input_type", None), getattr(item, "id", None)
            if kind == "task_run" and run_id is not None and str(run_id) not in ids:
                ids.append(str(run_id))
    return sorted(ids)


# local files ---------------------------------------------------------------------------------
def default_max_bytes() -> float:
    """``digest_max_mb`` of the CMF settings read now, in bytes (the routes pass their own
    recorder's); the core default if the settings cannot be read."""
    from cmf_core.config import load_settings
    from cmf_core.errors import ConfigError
    from cmf_core.openlineage.local import DEFAULT_DIGEST_MAX_BYTES

    try:
        return load_settings().digest_max_mb * 2**20
    except ConfigError:
        return DEFAULT_DIGEST_MAX_BYTES


def _identity(path: Path, max_bytes: float, budget_s: float | None, inline: bool
              ) -> tuple[str, str] | None:
    """(digest, method) of a file or folder by the rules of
    ``cmf_core.openlineage.local.local_identity`` (content up to ``max_bytes`` and
    ``MAX_WALK_FILES`` files, else path, size and mtime; its cache), within ``budget_s``
    seconds unless ``inline``; None for a root, home or working directory. An overrun hash
    goes on in the background and is cached for the next reader."""
    from cmf_core.guard import Timeout, run_bounded
    from cmf_core.openlineage.local import local_identity, local_stat_identity

    if budget_s is None or inline:
        return local_identity(str(path), max_bytes)
    try:
        return run_bounded(lambda: local_identity(str(path), max_bytes), budget_s,
                           f"hashing {path}")
    except Timeout:
        return local_stat_identity(str(path))


def artifact_type(path: Path) -> str:
    """``Model`` for a model file (by suffix) or a folder holding one, else ``Dataset``."""
    if path.suffix.lower() in MODEL_SUFFIXES:
        return "Model"
    if path.is_dir():
        try:
            with os.scandir(path) as it:
                for i, entry in enumerate(it):
                    if i > 200:
                        break
                    if os.path.splitext(entry.name)[1].lower() in MODEL_SUFFIXES:
                        return "Model"
        except OSError:
            return "Dataset"
    return "Dataset"


def path_dataset(path: str | os.PathLike[str], kind: str | None = None,
                 budget_s: float | None = HASH_BUDGET_S,
                 max_bytes: float | None = None) -> Dataset | None:
    """The dataset of an existing local file or folder, with its content digest; else None.

    Hashing a file above :data:`INLINE_HASH_BYTES`, or a folder, gets ``budget_s`` seconds
    (None: no limit). Above ``max_bytes`` (default :func:`default_max_bytes`) it is identified
    by path, size and mtime. A file system root, the home or working directory (or a parent of
    them) has no digest: it is identified by its path.
    """
    from cmf_core.openlineage.facets import ArtifactDatasetFacet
    from cmf_core.openlineage.naming import dataset_naming

    try:
        p = Path(os.fspath(path)).expanduser().resolve()
        st = p.stat()
    except (OSError, ValueError, TypeError):
        return None
    namespace, name = dataset_naming(str(p))
    if not (p.is_dir() or p.is_file()):
        return None
    limit = default_max_bytes() if max_bytes is None else max_bytes
    inline = p.is_file() and st.st_size <= INLINE_HASH_BYTES
    found = _identity(p, limit, budget_s, inline)
    if found is None:
        return Dataset(namespace, name)
    digest, method = found
    props = {"digest_method": method} if method != "sha256" else {}
    facet = ArtifactDatasetFacet(digest=digest, type=kind or artifact_type(p), properties=props)
    return Dataset(namespace, name, {"cmf_artifact": facet})


def _looks_like_path(value: str) -> bool:
    return 0 < len(value) < 4096 and "\n" not in value and (
        os.sep in value or value.startswith(("~", ".")) or bool(os.path.splitext(value)[1]))


def _unchanged_since(path: Any, when: float) -> bool:
    try:
        return os.stat(os.fspath(path)).st_mtime <= when
    except (OSError, TypeError, ValueError):
        return False


def value_datasets(value: Any, unchanged_since: float | None = None,
                   max_bytes: float | None = None) -> list[Dataset]:
    """Datasets for the existing local paths in ``value`` (a path, or a list/dict of paths);
    with ``unchanged_since``, only paths not modified after that Unix time. ``max_bytes``: the
    size limit of content digests (default :func:`default_max_bytes`)."""
    found: list[Dataset] = []
    limit = max_bytes

    def visit(v: Any, depth: int) -> None:
        if len(found) >= MAX_PATHS or depth > 2:
            return
        if isinstance(v, os.PathLike) or (isinstance(v, str) and _looks_like_path(v)):
            if unchanged_since is not None and not _unchanged_since(v, unchanged_since):
                return
            nonlocal limit
            if limit is None:  # read once, and only when a value looks like a path
                limit = default_max_bytes()
            ds = path_dataset(v, max_bytes=limit)
            if ds is not None and ds.key not in {d.key for d in found}:
                found.append(ds)
        elif isinstance(v, Mapping):
            for item in list(v.values())[:MAX_PATHS]:
                visit(item, depth + 1)
        elif isinstance(v, (list, tuple)):
            for item in v[:MAX_PATHS]:
                visit(item, depth + 1)

    visit(value, 0)
    return found


def asset_dataset(key: str) -> Dataset:
    """The dataset of a Prefect asset key (a URI), identified by that key."""
    from cmf_core.openlineage.naming import dataset_naming

    namespace, name = dataset_naming(key)
    return Dataset(namespace, name)
