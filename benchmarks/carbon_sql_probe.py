"""Would a SQL ``GROUP BY`` make the carbon roll-up cheaper than the streaming fold, with the
same exact results? A probe on a big SQLite store (``big_store.py build``), read only.

    cd /tmp && PYTHONPATH=<tree> .venv/bin/python \
        <tree>/benchmarks/carbon_sql_probe.py /tmp/bigstore/cmf.db

Times, interleaved, median of 3 (wall clock, in process):

* ``fold``: what the UI's carbon page costs today, ``rollups(store, ["stage", "day"])``.
* ``sql-json``: one aggregate that does in SQL what the fold does per row: the rows without a
  ``cmf.phase`` candidate, whose details are plain JSON and measured, and whose amounts split
  exactly (below), grouped by (pipeline, stage, site, day, the four inputs, the components'
  methods) with counts and exact sums. Only the SQL: no merge in Python, no leftover rows.
* ``sql-stored-key``: the same with the inputs and methods read from a column computed once
  (a TEMP copy of ``energy`` with the key, what a migration would add), so no JSON per row.
* ``sql-float``: the stored key, grouped, with SQL's own float ``SUM`` (not exact): the floor.

Exact sums in SQL: an amount ``x`` (``|x| < 2**32``) is split into its integer part and three
52-bit chunks of its fraction (``CAST`` and exact subtractions/multiplications by 2**52), each
chunk summed as two 26-bit halves (SQLite's integer ``sum`` raises on overflow); a row whose
fourth remainder is not zero (a value under ~2**-104) is not exact this way.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import time

from cmf_core.carbon.rollup import rollups
from cmf_core.store import open_store

DAY = "CAST(e.started_at / 86400 AS INTEGER)"
S = "4503599627370496.0"  # 2**52


def chunks(x: str) -> tuple[list[str], str]:
    t0 = f"CAST({x} AS INTEGER)"
    r1 = f"(({x}) - {t0}) * {S}"
    t1 = f"CAST({r1} AS INTEGER)"
    r2 = f"(({r1}) - {t1}) * {S}"
    t2 = f"CAST({r2} AS INTEGER)"
    r3 = f"(({r2}) - {t2}) * {S}"
    t3 = f"CAST({r3} AS INTEGER)"
    return [t0, t1, t2, t3], f"({r3}) = {t3}"


def sums(energy: str) -> tuple[str, str]:
    kt, kok = chunks(f"{energy}.energy_kwh")
    ct, cok = chunks(f"{energy}.co2e_kg")
    exact = (f"abs({energy}.energy_kwh) < 4294967296.0 AND abs({energy}.co2e_kg) < "
             f"4294967296.0 AND {kok} AND {cok}")
    return ", ".join(f"sum(({t}) >> 26), sum(({t}) & 67108863)" for t in kt + ct), exact


NO_LABEL = ("instr(e.properties, 'phase') = 0 AND instr(e.custom_properties, 'phase') = 0 "
            "AND instr(e.properties, '\\u') = 0 AND instr(e.custom_properties, '\\u') = 0 "
            f"AND (e.started_at - {DAY} * 86400) >= 1 AND (e.started_at - {DAY} * 86400) < 86399")
KEY = ("json_array(n.details -> '$.pue', n.details -> '$.intensity_g_per_kwh', "
       "n.details -> '$.intensity_source', n.details -> '$.region', (SELECT json_group_array("
       "json_array(key, CASE WHEN type = 'object' THEN value -> '$.method' END)) "
       "FROM json_each(n.details, '$.components')))")


def queries() -> dict[str, str]:
    summed, exact = sums("n")
    plain = (f"CASE WHEN {NO_LABEL} THEN CASE WHEN n.details IS NULL THEN 1 "
             "WHEN instr(n.details, '\\u') = 0 AND instr(n.details, 'NaN') = 0 "
             "AND instr(n.details, 'Infinity') = 0 AND json_valid(n.details) "
             "AND json_type(n.details) = 'object' "
             "AND coalesce(json_type(n.details, '$.measured'), '') <> 'false' "
             f"AND {exact} THEN 1 ELSE 0 END ELSE 0 END")
    cells = f"e.pipeline, e.stage, e.site, {DAY}"
    join = "FROM executions e LEFT JOIN {t} n ON n.execution_id = e.id"
    return {
        "sql-json": f"SELECT {cells}, {KEY} AS k, count(*), count(n.details), {summed} "
                    f"{join.format(t='energy')} WHERE {plain} = 1 GROUP BY {cells}, k",
        "sql-stored-key": f"SELECT {cells}, n.ikey, count(*), count(n.ikey), {summed} "
                          f"{join.format(t='energy_k')} WHERE {NO_LABEL} AND "
                          f"(n.execution_id IS NULL OR ({exact})) GROUP BY {cells}, n.ikey",
        "sql-float": f"SELECT {cells}, n.ikey, count(*), count(n.ikey), sum(n.energy_kwh), "
                     f"sum(n.co2e_kg) {join.format(t='energy_k')} WHERE {NO_LABEL} "
                     f"GROUP BY {cells}, n.ikey",
    }


def main(path: str) -> None:
    store = open_store(f"sqlite:///{path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.execute(f"CREATE TEMP TABLE energy_k AS SELECT n.*, {KEY} AS ikey FROM energy n")
    db.execute("CREATE UNIQUE INDEX temp.ix_energy_k ON energy_k (execution_id)")
    times: dict[str, list[float]] = {"fold": []}
    for _ in range(3):
        t = time.perf_counter()
        folded = rollups(store, ["stage", "day"])
        times["fold"].append(time.perf_counter() - t)
        for name, sql in queries().items():
            t = time.perf_counter()
            rows = db.execute(sql).fetchall()
            times.setdefault(name, []).append(time.perf_counter() - t)
            times.setdefault(f"{name} rows", []).append(len(rows))
    print(f"{folded['stage'].total.executions} executions, {len(folded['day'].groups)} days")
    for name, ts in times.items():
        if name.endswith(" rows"):
            print(f"{name:22s} {ts[0]}")
        else:
            print(f"{name:22s} median {statistics.median(ts):5.2f} s  "
                  f"({' '.join(f'{x:.2f}' for x in ts)})")


if __name__ == "__main__":
    main(sys.argv[1])
