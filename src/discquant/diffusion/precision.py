"""How precisely any ADC fit can be: the Cramér–Rao lower bound of the mono-exponential model.

For magnitudes ``S_k = S0 · exp(−b_k · D)`` with independent Gaussian noise of standard
deviation ``σ_k`` (the high-SNR limit of Rician noise), the Fisher information of
``(ln S0, D)`` is ``Σ_k w_k · g_k g_kᵀ`` with ``g_k = (1, −b_k)`` and ``w_k = S_k² / σ_k²``.
The variance of *any* unbiased estimate of ``D`` is at least

    Var(D) ≥ Σw / (Σw · Σw b² − (Σw b)²),

which the weighted log-linear fit reaches at high SNR (tested). At low SNR magnitude
(Rician) data carry less information than this, and fits become biased and lose invalid
voxels, so a fit's spread can fall under the bound while its error does not: read the
bound as what an unbiased measurement can reach at best.

A b-value acquired ``n_k`` times and combined (a trace image, the geometric mean of three
directions, or NEX averages) has ``σ_k² / n_k`` as its noise variance in the bound.

Used by ``benchmarks/measure_phantoms.py`` to say, disc by disc, whether a 5 % accuracy
target is reachable at all at the phantom's SNR (docs/measurement.md).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def adc_sd_lower_bound_um2_per_ms(
    s0: npt.ArrayLike,
    adc_um2_per_ms: npt.ArrayLike,
    bvals_s_per_mm2: npt.ArrayLike,
    sigma: float,
    *,
    n_averages: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """Cramér–Rao lower bound on the standard deviation of a voxel's ADC estimate.

    Parameters
    ----------
    s0
        Noiseless b = 0 signal of each voxel (any shape), same units as ``sigma``.
    adc_um2_per_ms
        True ADC of each voxel (broadcast against ``s0``), µm²/ms.
    bvals_s_per_mm2
        The acquired b-values, one per image (repeats allowed), s/mm².
    sigma
        Noise standard deviation of one image (one real channel), same units as ``s0``.
    n_averages
        Independent acquisitions combined into each image (e.g. 3 for a three-direction
        trace image); default 1 for every image.

    Returns
    -------
    numpy.ndarray
        The bound in µm²/ms, shape of ``s0`` and ``adc_um2_per_ms`` broadcast; ``inf``
        where the signal is zero or fewer than two distinct b-values exist.

    Examples
    --------
    Two b-values, b = 0 and 1000 s/mm², ADC 1 µm²/ms, SNR 50 at b = 0:

    >>> float(adc_sd_lower_bound_um2_per_ms(50.0, 1.0, [0, 1000], 1.0).round(4))
    0.0579
    """
    b = np.asarray(bvals_s_per_mm2, dtype=np.float64) * 1e-3  # ms/µm²
    n = np.ones_like(b) if n_averages is None else np.asarray(n_averages, dtype=np.float64)
    if b.ndim != 1 or n.shape != b.shape:
        raise ValueError("bvals and n_averages must be 1-D and of the same length")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    s0_arr, d = np.broadcast_arrays(
        np.asarray(s0, dtype=np.float64), np.asarray(adc_um2_per_ms, dtype=np.float64)
    )
    signal = s0_arr[..., None] * np.exp(-b * d[..., None])
    w = signal**2 * n / sigma**2
    sw, swb, swbb = w.sum(-1), (w * b).sum(-1), (w * b * b).sum(-1)
    det = sw * swbb - swb**2
    if np.unique(b).size < 2:  # the determinant is then 0 only up to rounding
        return np.full(det.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(det > 0, sw / det, np.inf)
    return np.sqrt(var)


def pooled_sd_lower_bound(voxel_sd: npt.ArrayLike) -> float:
    """Lower bound on the SD of one ADC for a region of voxels sharing the same ADC.

    The information of independent voxels adds: ``1 / √(Σ 1/sd_i²)``.

    Parameters
    ----------
    voxel_sd
        Per-voxel bounds (:func:`adc_sd_lower_bound_um2_per_ms`); non-finite and
        non-positive values carry no information and are skipped.

    Returns
    -------
    float
        The pooled bound, same unit; ``inf`` when no voxel carries information.

    Examples
    --------
    >>> pooled_sd_lower_bound([0.2, 0.2, 0.2, 0.2])
    0.1
    """
    sd = np.asarray(voxel_sd, dtype=np.float64).ravel()
    info = np.sum(1.0 / sd[np.isfinite(sd) & (sd > 0)] ** 2)
    return float(1.0 / np.sqrt(info)) if info > 0 else float("inf")
