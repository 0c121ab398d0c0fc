"""Reading a bundle with one very long line: the line splitter before and after the fix.

``cmf import`` and ``POST /api/v1/federation/bundle`` read a bundle in 64 KiB chunks and split
it into lines (``cmf_core.federation.bundle._lines``). Until 2026-11-29 each chunk re-copied the
part of the line read so far, so one line of n bytes cost time quadratic in n; a pushed bundle
of one long line (the push limit is 1 GiB) held a server worker for minutes to hours. This
script times both splitters on the same one-line streams of several sizes, interleaved, and
prints the median of ``--repeats`` runs of each. The old splitter is copied here (plain streams
only), as the reference.

Usage:
    python benchmarks/long_line.py [--sizes 12.5,25,50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmf_core.federation.bundle import CHUNK, _lines


def old_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The splitter before the fix (plain streams): the line so far joined to every chunk."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from (line + b"\n" for line in lines)
    if rest:
        yield rest


def chunks_of(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for at in range(0, len(data), CHUNK):
        yield bytes(view[at:at + CHUNK])


def timed(split: object, data: bytes) -> float:
    started = time.perf_counter()
    got = list(split(chunks_of(data)))  # type: ignore[operator]
    elapsed = time.perf_counter() - started
    assert got == [data], "the splitter changed the line"
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12.5,25,50", help="line lengths in MB (10**6 bytes)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'MB':>6} {'new s (median)':>15} {'old s (median)':>15} {'old/new':>8}")
    for mb in (float(x) for x in args.sizes.split(",")):
        data = b'{"kind":"' + b"a" * int(mb * 1e6)
        new, old = [], []
        for _ in range(args.repeats):  # interleaved: the machine's noise falls on both
            new.append(timed(_lines, data))
            old.append(timed(old_lines, data))
        n, o = statistics.median(new), statistics.median(old)
        print(f"{mb:>6g} {n:>15.3f} {o:>15.3f} {o / n:>7.0f}x")


if __name__ == "__main__":
    main()
