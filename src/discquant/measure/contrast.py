"""Is the image given as T2 T2-weighted? A check on the measured signal ratios.

On a T2-weighted lumbar image CSF is the brightest tissue: a nucleus reaches it at best
and vertebral marrow stays below it. On a T1-weighted image CSF is dark, below both. A T1
taken for a T2 (a lone NIfTI file, or a series whose name says T2) was segmented and
graded as a T2 without a word. The check uses the medians over the study's discs of the
nucleus/CSF ratio and the CSF/vertebral-body ratio (the same nucleus signal divided out
of ``t2_np_reference_ratio`` and ``t2_np_csf_ratio``); it is made only with at least
:data:`MIN_DISCS` discs carrying both. Thresholds and their measurement on real T2 images:
docs/measurement.md ("T2 contrast check") and ``benchmarks/t2_contrast.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from discquant.results import DiscResult

FLAG_T2_CONTRAST = "t2_contrast_implausible"
MIN_DISCS = 3


@dataclass(frozen=True)
class T2ContrastCheck:
    """Outcome of :func:`check_t2_contrast`.

    Attributes
    ----------
    np_csf
        Median over the discs of nucleus/CSF signal (None: fewer than ``MIN_DISCS``).
    csf_body
        Median over the same discs of CSF/vertebral-body signal.
    plausible
        False when the nuclei are brighter than CSF and CSF darker than marrow (T1-like);
        True also when the check could not be made.
    """

    np_csf: float | None
    csf_body: float | None
    plausible: bool


def check_t2_contrast(
    discs: Sequence[DiscResult], *, max_np_csf: float, min_csf_body: float
) -> T2ContrastCheck:
    """Whether the discs' T2 ratios look T2-weighted.

    Implausible when the median nucleus/CSF ratio exceeds ``max_np_csf`` *and* the median
    CSF/vertebral-body ratio is below ``min_csf_body``; each alone occurs on real T2
    images (bright young nuclei; fatty marrow on fast spin echo).

    Examples
    --------
    >>> from discquant.results import DiscResult
    >>> t1_like = [DiscResult(level=lv, found=True, t2_np_csf_ratio=1.6,
    ...            t2_np_reference_ratio=0.6) for lv in ("L3-L4", "L4-L5", "L5-S1")]
    >>> check_t2_contrast(t1_like, max_np_csf=1.0, min_csf_body=0.85).plausible
    False
    """
    pairs = [
        (d.t2_np_csf_ratio, d.t2_np_reference_ratio / d.t2_np_csf_ratio)
        for d in discs
        if d.t2_np_csf_ratio and d.t2_np_reference_ratio
    ]
    if len(pairs) < MIN_DISCS:
        return T2ContrastCheck(None, None, True)
    np_csf = float(np.median([p[0] for p in pairs]))
    csf_body = float(np.median([p[1] for p in pairs]))
    return T2ContrastCheck(np_csf, csf_body, not (np_csf > max_np_csf and csf_body < min_csf_body))
