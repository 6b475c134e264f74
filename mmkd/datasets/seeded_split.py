"""One seeded draw of a held-out part, shared by the datasets that split by id (Kvasir-SEG
images, MSI tiles' patients): the same ids, ratio and seed give the same part anywhere."""
from typing import Sequence, Set

import numpy as np


def seeded_subset(ids: Sequence[str], ratio: float, seed: int) -> Set[str]:
    """``round(ratio * n)`` of the sorted unique ids, drawn with
    ``numpy.random.default_rng(seed)``; at least one in each part when there are ≥ 2 ids."""
    unique = sorted(set(ids))
    num = int(round(ratio * len(unique)))
    if len(unique) >= 2:
        num = min(max(num, 1), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[i] for i in order[:num]}
