"""Would knowing the new task's best model family close the gap? Bounds over the knowledge base.

For every task of the knowledge base, its group left out: the seeds are the configurations of
one model family, in a static order learned from the other tasks (most other tasks hit first,
then the mean normalised score). The family is chosen three ways:

* ``oracle``: the family with the highest share of the task's own hitting configurations (what
  no recommender can know);
* ``family medians``: the family with the best median score over the task's whole grid (an
  upper bound on any landmark meta-feature that fits each family on the task: it costs the full
  grid);
* ``top configurations``: the family whose first configuration in that order scores best on
  the task (one full evaluation per family).

Also the expected hits when the k seeds are drawn at random from the oracle family. Reported:
how many tasks are hit within k = 1, 3, 5, 10 seeds (normalised score >= 0.95, the benchmark's
target) and how often each choice names the oracle family. No model is fitted; the shipped
knowledge base's scores are read.

    .venv/bin/python benchmarks/recommender/family_bound.py
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cmf_core.recommend import knowledge  # noqa: E402
from cmf_core.recommend.calibrate import HIT  # noqa: E402

KS = (1, 3, 5, 10)
CHOICES = ("oracle", "family medians", "top configurations")


def family_bounds(kb: knowledge.KnowledgeBase) -> dict[str, dict[str, float]]:
    """Hits within each k (and oracle agreement) per way of choosing the family."""
    out = {c: {**{f"k={k}": 0.0 for k in KS}, "names the oracle family": 0.0}
           for c in (*CHOICES, "oracle family, random order")}
    for category in kb.categories():
        table = kb.table(category)
        families = np.array([c["model"] for c in table.configs])
        names = sorted(set(families))
        for i, task_id in enumerate(table.task_ids):
            group = kb.tasks[task_id].group
            others = [j for j, o in enumerate(table.task_ids)
                      if j != i and (group is None or kb.tasks[o].group != group)]
            past = table.normalised[others]
            order = np.lexsort((-np.nanmean(past, axis=0), -np.nansum(past >= HIT, axis=0)))
            in_family = {f: [j for j in order if families[j] == f] for f in names}
            own = table.normalised[i]
            ran = np.isfinite(own)
            hit = ran & (own >= HIT)
            share = {f: hit[families == f].sum() / max(1, (ran & (families == f)).sum())
                     for f in names}
            chosen = {
                "oracle": max(names, key=share.__getitem__),
                "family medians": max(names, key=lambda f: np.nanmedian(
                    table.scores[i, families == f])),
                "top configurations": max(names, key=lambda f: table.scores[i, in_family[f][0]]),
            }
            for choice, family in chosen.items():
                seq = in_family[family]
                first = next((p + 1 for p, j in enumerate(seq) if hit[j]), math.inf)
                for k in KS:
                    out[choice][f"k={k}"] += first <= k
                out[choice]["names the oracle family"] += family == chosen["oracle"]
            pool = [j for j in in_family[chosen["oracle"]] if ran[j]]
            n, h = len(pool), int(hit[pool].sum())
            for k in KS:
                miss = math.comb(n - h, k) / math.comb(n, k) if k <= n else 0.0
                out["oracle family, random order"][f"k={k}"] += 1.0 - miss
            out["oracle family, random order"]["names the oracle family"] += 1
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kb", type=Path, help="knowledge base file (default: the shipped one)")
    args = ap.parse_args(argv)
    kb = knowledge.load(args.kb) if args.kb else knowledge.shipped()
    rows = family_bounds(kb)
    cols = [*(f"k={k}" for k in KS), "names the oracle family"]
    print(f"{len(kb)} tasks; hits within k seeds of one family (in-family order from the "
          "other tasks)\n")
    print("| family chosen by | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for choice, row in rows.items():
        print(f"| {choice} | " + " | ".join(f"{row[c]:.1f}" if choice.endswith("order")
                                            else f"{row[c]:.0f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
