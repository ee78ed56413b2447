"""Summary statistics of a map inside a mask."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from discquant.results import AdcStats


def region_stats(
    values: npt.NDArray[np.floating], mask: npt.NDArray[np.bool_], *, min_voxels: int
) -> AdcStats | None:
    """Mean, median, SD, 10th/90th percentile and count of finite ``values`` in ``mask``.

    Returns None when fewer than ``min_voxels`` finite values remain: the caller then
    withholds the value and flags it rather than reporting a guess.
    """
    v = values[mask]
    v = v[np.isfinite(v)]
    if v.size < max(min_voxels, 1):
        return None
    p10, median, p90 = np.percentile(v, [10, 50, 90])
    return AdcStats(
        mean=float(v.mean()),
        median=float(median),
        sd=float(v.std(ddof=1)) if v.size > 1 else 0.0,
        p10=float(p10),
        p90=float(p90),
        n_voxels=int(v.size),
    )
