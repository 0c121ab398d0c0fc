"""Replaying an adaptive seeder against a deterministic stand-in score, as the orchestrator
tests' search tasks do (the DAG and KFP component bodies spell the same formula out: they run
as user code)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from cmf_core.recommend import AdaptiveSeeder
from cmf_core.recommend.space import config_key


def stand_in_score(config: Mapping[str, Any]) -> float:
    """A deterministic stand-in for fit-and-score, in [0, 1)."""
    return zlib.crc32(config_key(config).encode()) / 2**32


def adaptive_seeds(seeder: AdaptiveSeeder) -> list[str]:
    """Every seed ``seeder`` gives when each one scores :func:`stand_in_score`, as config
    keys, in order."""
    observations: dict[str, float] = {}
    while (config := seeder.next_config(observations)) is not None:
        observations[config_key(config)] = stand_in_score(config)
    return [config_key(c) for c in seeder.given]
