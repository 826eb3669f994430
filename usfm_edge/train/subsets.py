"""Label-fraction subsets: seeded and stratified, so 20 % of the labels keeps the class mix."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np


def stratified_subset(strata: Sequence[Hashable], fraction: float, seed: int) -> list[int]:
    """Indices of a ``fraction`` of the samples, drawn per stratum (at least one from each)."""
    if fraction >= 1.0:
        return list(range(len(strata)))
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, stratum in enumerate(strata):
        groups[stratum].append(index)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for key in sorted(groups, key=str):
        members = groups[key]
        take = max(1, round(len(members) * fraction))
        chosen.extend(rng.choice(members, size=take, replace=False).tolist())
    return sorted(chosen)
