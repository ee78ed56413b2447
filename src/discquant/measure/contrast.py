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
import numpy.typing as npt

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


FLAG_T2_OFFSET = "t2_intensity_offset"
FLAG_T2_SIGNED = "t2_signed_intensities"
MAX_BASELINE_SHARE = 0.4
"""The T2's 0.5th percentile above this share of its 99th → :data:`FLAG_T2_OFFSET`. On
the 615 real T2 images of ../shared/data it is at most 0.227 (a low-contrast 8-bit volume,
sub-vb2x04; ``benchmarks/t2_baseline.py``); sub-fcs11's T2 with 20,000 added is flagged."""
MAX_NEGATIVE_SHARE = 0.05
"""The T2's 0.5th percentile below minus this share of its 99th →
:data:`FLAG_T2_SIGNED`. No real image of ../shared/data has a negative voxel; resampling
rings a few voxels slightly negative, far from this."""


@dataclass(frozen=True)
class T2BaselineCheck:
    """Outcome of :func:`check_t2_baseline`: the T2's 0.5th and 99th percentiles, and the
    flag they call for (None: a magnitude image's baseline near 0)."""

    low: float
    high: float
    flag: str | None


def check_t2_baseline(data: npt.NDArray[np.floating]) -> T2BaselineCheck:
    """Whether the T2's darkest voxels (air, zero-fill) lie near 0, as on a magnitude image.

    T2 signal ratios (nucleus/CSF, nucleus/marrow) and heterogeneity are ratios of
    signals: a constant added to the image pulls them towards 1 and 0 (nucleus/CSF read
    0.99 instead of 0.40–0.59 with 20,000 added), and the segmentation and the grader,
    which normalise intensities, do not notice. Negative values (a signed or shifted
    image) also move the grader's crops, which are windowed on the positive voxels: the
    expected grades of an image with 300 subtracted rose by about one grade (an audit).

    Parameters
    ----------
    data
        The T2 image's voxels (any shape; non-finite ones are ignored).

    Returns
    -------
    T2BaselineCheck
        :data:`FLAG_T2_OFFSET` when the 0.5th percentile is above
        :data:`MAX_BASELINE_SHARE` of the 99th, :data:`FLAG_T2_SIGNED` when it is below
        minus :data:`MAX_NEGATIVE_SHARE` of it (or the 99th is not positive).

    Examples
    --------
    >>> image = np.zeros((40, 40)); image[10:30, 10:30] = 100.0
    >>> check_t2_baseline(image).flag is None, check_t2_baseline(image + 500).flag
    (True, 't2_intensity_offset')
    >>> check_t2_baseline(image - 30).flag
    't2_signed_intensities'
    """
    flat = np.asarray(data).ravel()
    # every k-th voxel of a large image: the percentiles of a regular sample of millions
    values = flat[:: max(1, flat.size // 1_000_000)].astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return T2BaselineCheck(float("nan"), float("nan"), None)
    low, high = (float(v) for v in np.percentile(values, [0.5, 99.0]))
    if low < 0 and low < -MAX_NEGATIVE_SHARE * max(high, 0.0):
        return T2BaselineCheck(low, high, FLAG_T2_SIGNED)
    if low > MAX_BASELINE_SHARE * high:
        return T2BaselineCheck(low, high, FLAG_T2_OFFSET)
    return T2BaselineCheck(low, high, None)
