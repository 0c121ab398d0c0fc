"""P1 reference: the same workload through ml-metadata's own API into its SQLite store.

Runs in a separate environment (ml-metadata pins attrs<24/protobuf<5 and cannot share ours):
    make env-mlmd && .venv-mlmd/bin/python benchmarks/mlmd_p1.py --n 500   # ml-metadata 1.15
or, for ml-metadata 1.17.1:
    uv venv /tmp/mlmd-venv --python 3.11
    uv pip install --python /tmp/mlmd-venv ml-metadata==1.17.1
    /tmp/mlmd-venv/bin/python benchmarks/mlmd_p1.py --n 500
Per execution: 2 input datasets (reused), 1 output model, 3 params, 3 metrics, one
``put_execution`` call (MLMD's own atomic unit), as cmflib records them.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import ml_metadata
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    n = ap.parse_args().n
    path = tempfile.mktemp(suffix=".db")
    cfg = pb.ConnectionConfig()
    cfg.sqlite.filename_uri = path
    cfg.sqlite.connection_mode = 3  # READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(cfg)
    ds_t = pb.ArtifactType(name="Dataset")
    ds_t.id = store.put_artifact_type(ds_t)
    m_t = pb.ArtifactType(name="Model")
    m_t.id = store.put_artifact_type(m_t)
    mt_t = pb.ArtifactType(name="Metrics")
    mt_t.id = store.put_artifact_type(mt_t)
    ex_t = pb.ExecutionType(name="train")
    ex_t.id = store.put_execution_type(ex_t)
    ctx_t = pb.ContextType(name="Pipeline_Stage")
    ctx_t.id = store.put_context_type(ctx_t)
    ctx = pb.Context(type_id=ctx_t.id, name="p1/train")
    [ctx.id] = store.put_contexts([ctx])
    inputs = []
    for name in ("train.parquet", "labels.parquet"):
        a = pb.Artifact(type_id=ds_t.id, uri=f"s3://data/{name}", name=name)
        [a.id] = store.put_artifacts([a])
        inputs.append(a)
    t0 = time.perf_counter()
    for i in range(n):
        ex = pb.Execution(type_id=ex_t.id, name=f"train-{i}")
        for k, v in (("lr", 0.01 * (i % 10)), ("depth", i % 7)):
            ex.custom_properties[k].double_value = float(v)
        ex.custom_properties["model"].string_value = "rf"
        model = pb.Artifact(type_id=m_t.id, uri=f"s3://models/m{i}.pkl", name=f"m{i}")
        metrics = pb.Artifact(type_id=mt_t.id, uri=f"cmf://metrics/{i}", name=f"eval-{i}")
        for k, v in (("auc", 0.8), ("f1", 0.7), ("loss", 0.3)):
            metrics.custom_properties[k].double_value = v
        events = [(a, pb.Event(type=pb.Event.INPUT)) for a in inputs]
        events += [(model, pb.Event(type=pb.Event.OUTPUT)),
                   (metrics, pb.Event(type=pb.Event.OUTPUT))]
        store.put_execution(ex, events, [ctx])
    dt = time.perf_counter() - t0
    print(json.dumps({"benchmark": "P1-mlmd", "library": f"ml-metadata {ml_metadata.__version__}",
                      "executions": n,
                      "seconds": round(dt, 3), "executions_per_s": round(n / dt, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                           / 1024, 1)}))


if __name__ == "__main__":
    main()
