"""Local dataset digests (``cmf_core.openlineage.local.local_identity``): a folder of many small
files read once and then re-identified from the per-process cache; and a file digested right
after it was written, as by a producer task's end and the next task's start.

    PYTHONPATH=<tree> .venv/bin/python benchmarks/local_digest.py folder [--files 20000]
    PYTHONPATH=<tree> .venv/bin/python benchmarks/local_digest.py handoff [--mb 256]

``folder`` builds (once) a folder of ``--files`` files of ~100 bytes in 20 subfolders under
``--dir`` and prints, as JSON, the first identification (walk + content read; the files are in
the page cache after the first run) and the median of 9 cached ones, wall and CPU seconds.
``handoff`` writes a file of ``--mb`` MiB of random bytes, identifies it at once, again 50 ms
later and again 1.2 s later, and prints each time and how many times its content was read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def folder(root: Path, files: int) -> dict:
    from cmf_core.openlineage.local import local_identity

    if not root.is_dir():
        per = max(files // 20, 1)
        for i in range(0, files, per):
            sub = root / f"part{i // per:02d}"
            sub.mkdir(parents=True)
            for j in range(min(per, files - i)):
                (sub / f"f{j:05d}.txt").write_text(f"row {i} {j}\n" * 8)
        time.sleep(1.1)  # older than the cache's one-second window
    w, c = time.perf_counter(), time.process_time()
    first = local_identity(str(root))
    out = {"first_wall_s": time.perf_counter() - w, "first_cpu_s": time.process_time() - c}
    walls, cpus = [], []
    for _ in range(9):
        w, c = time.perf_counter(), time.process_time()
        again = local_identity(str(root))
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        assert again == first, (again, first)
    out.update(cached_wall_s=statistics.median(walls), cached_cpu_s=statistics.median(cpus),
               id=first)
    return out


def handoff(path: Path, mb: int) -> dict:
    from cmf_core.openlineage import local

    reads = 0
    digest = local.path_digest

    def counted(p: str) -> str:
        nonlocal reads
        reads += 1
        return digest(p)

    local.path_digest = counted
    path.write_bytes(os.urandom(mb * 2**20))
    out: dict = {}
    try:
        for label, pause in (("producer_end", 0.0), ("consumer_start", 0.05),
                             ("consumer_end", 1.2)):
            time.sleep(pause)
            t = time.perf_counter()
            local.local_identity(str(path))
            out[label + "_s"] = time.perf_counter() - t
    finally:
        path.unlink()
        local.path_digest = digest
    out["content_reads"] = reads
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["folder", "handoff"])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/cmf-local-digest-bench"))
    args = ap.parse_args()
    if args.mode == "folder":
        result = folder(args.dir / f"folder-{args.files}", args.files)
    else:
        args.dir.mkdir(parents=True, exist_ok=True)
        result = handoff(args.dir / "handoff.bin", args.mb)
    import cmf_core

    result["cmf_core"] = os.path.dirname(cmf_core.__file__)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
