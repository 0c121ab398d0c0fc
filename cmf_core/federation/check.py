"""``cmf store check`` and ``cmf store repair``: the rows of a store that a peer would refuse.

A store can hold rows that today's import refuses: an older release stored energy records
with a negative, infinite or NaN ``energy_kwh`` or ``co2e_kg``, and wrote names, ids or times
that later releases check. A bundle holding one such row is refused whole (the import is all
or nothing), so every sync from that site fails at the page that holds it.

:func:`check_store` reads the store as an export does, page by page, turns each row into the
line a peer would receive and asks :func:`cmf_core.federation.merge.line_problem` whether the
import would take it: the import's own checks, not a copy of its rules.

:func:`repair_plan` and :func:`apply_repair` fix what can be fixed without losing anything:
an energy record whose amounts are refused becomes a record saying nothing was measured
(``details["measured"] = False``, both amounts 0, roll-ups leave it out) that keeps the
original amounts and the reason under ``details["cmf.repair"]`` and names the repair first in
``details["notes"]``. The repaired row is a new version of this store, so the next sync sends
it. The repair is deterministic (no time in the record): two stores repairing the same old
row make the same record, so their syncs agree. Other refused rows are listed, not changed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cmf_core import jsonutil
from cmf_core.errors import InvalidInputError
from cmf_core.federation.export import DEFAULT_PAGE, FORMATTERS, VERSION_KEY
from cmf_core.federation.merge import line_problem
from cmf_core.model import EnergyRecord
from cmf_core.model.energy import MEASURED_KEY, check_amount
from cmf_core.records import record_to_dict
from cmf_core.store import Store
from cmf_core.store.base import EXPORT_FIELDS

REPAIR_KEY = "cmf.repair"  # details key of a repaired energy record: what it held, and why
REPAIR_LOG = "store:repair:"  # cmf_state keys of the repairs made, one per run (by time)
_AMOUNTS = ("energy_kwh", "co2e_kg")


@dataclass(frozen=True)
class Problem:
    """A row a peer would refuse: its kind, its key, why, and its local ``seq``."""

    kind: str
    key: str
    problem: str
    seq: int
    row: tuple[Any, ...]
    repair: EnergyRecord | None = None  # the repaired record, where one can be made

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "key": self.key, "problem": self.problem,
                               "seq": self.seq, "repairable": self.repair is not None}
        if self.repair is not None:
            out["repair"] = {k: v for k, v in record_to_dict(self.repair).items()
                             if k in ("energy_kwh", "co2e_kg", "details")}
        return out


def _key(kind: str, row: tuple[Any, ...]) -> str:
    """The record's global id as the CLI shows it."""
    if kind == "stage":
        return f"{row[0]}/{row[1]}"
    if kind == "location":
        return f"{row[0]} @{row[1]} {row[2]}"
    if kind == "event":
        return f"{row[0]} {row[2]} {row[1]}"
    if kind == "metric":
        return f"{row[0]}/{row[1]}" + ("" if row[2] is None or row[2] < 0 else f"@{row[2]}")
    return str(row[0])


def _line(kind: str, row: tuple[Any, ...]) -> tuple[str | None, str | None]:
    """The bundle line a peer would get for ``row``, or why none can be written."""
    try:
        return FORMATTERS[kind](row), None
    except (ValueError, TypeError) as e:  # a stored object column that is not JSON
        return None, f"cannot be exported: {e}"


def check_store(store: Store, *, page_size: int = DEFAULT_PAGE) -> Iterator[Problem]:
    """Every row of ``store`` that an import of its export would refuse, in seq order within
    each page (bounded memory: one export page at a time)."""
    since = 0
    while True:
        page = store.export_page(since, page_size)
        for kind in EXPORT_FIELDS:
            for row in page.rows.get(kind, ()):
                line, problem = _line(kind, row)
                if line is not None:
                    problem = line_problem(line)
                if problem is not None:
                    yield Problem(kind, _key(kind, row), problem, int(row[-1]), row,
                                  _repaired(kind, row, line))
        if not page.more:
            return
        since = page.end


def _plain(value: Any) -> Any:
    """An amount as JSON can hold it: a finite number as it is, anything else as text."""
    if type(value) in (int, float) and math.isfinite(value):
        return value
    return str(value)


def _repaired(kind: str, row: tuple[Any, ...], line: str | None) -> EnergyRecord | None:
    """The repaired energy record for a refused energy row whose amounts are what is refused,
    if the import takes the result; else ``None``."""
    if kind != "energy" or line is None:
        return None
    data = json.loads(line)
    eid, site, details = data["execution_id"], data["site"], data["details"]
    bad = []
    for name in _AMOUNTS:
        try:
            check_amount(row[EXPORT_FIELDS["energy"].index(name)], name, str(eid))
        except InvalidInputError as e:
            bad.append(str(e))
    if not bad or type(details) is not dict or REPAIR_KEY in details:
        return None
    notes = details.get("notes")
    note = (f"repaired by cmf store repair: {'; '.join(bad)}; the amounts were set to 0 and "
            f"the record marked not measured (the originals are in details.{REPAIR_KEY})")
    fixed = {**details, MEASURED_KEY: False,
             "notes": [note, *(notes if type(notes) is list else
                               [] if notes is None else [notes])],
             REPAIR_KEY: {"energy_kwh": _plain(row[2]), "co2e_kg": _plain(row[3]),
                          "measured": details.get(MEASURED_KEY, True), "problems": bad}}
    candidate = {"kind": "energy", "execution_id": eid, "site": site, "energy_kwh": 0.0,
                 "co2e_kg": 0.0, "details": fixed, VERSION_KEY: data[VERSION_KEY]}
    if line_problem(jsonutil.dumps(candidate)) is not None:
        return None  # something else about it is refused too: listed, not changed
    return EnergyRecord(execution_id=eid, site=site, energy_kwh=0.0, co2e_kg=0.0,
                        details=fixed)


def apply_repair(store: Store, problems: list[Problem]) -> int:
    """Write the repairs of ``problems`` (those that have one) in one transaction, and note
    what was done in the store's state (``store:repair:<time>``). Returns how many rows were
    replaced; a row changed since it was checked is left as it is (run the check again)."""
    fixes = [(p.repair, p.seq) for p in problems if p.repair is not None]
    done = store.replace_energy(fixes)
    if done:
        at = time.time()
        store.set_state(f"{REPAIR_LOG}{at:017.6f}", jsonutil.dumps({
            "at": at, "replaced": done,
            "records": [{"kind": p.kind, "key": p.key, "problem": p.problem,
                         "before": {"energy_kwh": _plain(p.row[2]),
                                    "co2e_kg": _plain(p.row[3])}}
                        for p in problems if p.repair is not None]}))
    return done
