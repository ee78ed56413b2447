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

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from discquant.diffusion.adc import AdcFit, AdcModel


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


def noise_floor_bias(
    s0: float,
    adc_um2_per_ms: float,
    bvals_s_per_mm2: npt.ArrayLike,
    sigma: float,
    *,
    n_averages: npt.ArrayLike | None = None,
    method: str = "wls",
    n_samples: int = 4000,
    seed: int = 0,
) -> float:
    """Relative error of the median fitted ADC of a region whose voxels share one ADC,
    from magnitude (Rician) noise: the noise floor at high b (low) and the voxels the fit
    drops (high).

    The bound above holds for unbiased fits; magnitude images are not. Where a shell's
    signal nears the noise (σ to 2σ in a nucleus at b = 1500 and SNR 20 at b = 0) its
    magnitude keeps a floor of about σ·√(π/2), and the ADC reads low (−12 % to −16 % on
    phantom nuclei at b = 0/1500, a user trial); a variance bound does not see it, since
    a bias does not shrink with the number of voxels. Simulated, not approximated:
    ``n_samples`` voxels of the signal ``S0·exp(−b·ADC)`` with Rician noise (a volume of
    ``n`` acquisitions is their geometric mean, as a scanner's trace image), fitted by
    :class:`~discquant.diffusion.adc.AdcModel` with ``method``, so its weights and its
    rules for dropping voxels are the measurement's. A fixed ``seed`` gives the same
    answer each time (±0.3 % sampling error at 4000 voxels and a per-voxel spread of 15 %).

    Parameters
    ----------
    s0
        The region's signal at b ≈ 0 (median), signal units.
    adc_um2_per_ms
        The true ADC of the region.
    bvals_s_per_mm2
        One b-value per fitted volume.
    sigma
        Noise SD of one acquisition (one real channel), signal units.
    n_averages
        Acquisitions combined into each volume (3 for a trace image); default 1 each.
    method
        The fit (:data:`discquant.diffusion.adc.METHODS`).
    n_samples, seed
        Simulated voxels and the seed of their noise.

    Returns
    -------
    float
        Median fitted ADC / true ADC − 1 (NaN when every simulated voxel was dropped).

    Examples
    --------
    Nucleus-like, at b = 0 and 1500 s/mm² (trace), S0/σ = 8.8: about −14 %; at b = 0, 400
    and 800 with S0/σ = 20: within 1 %.

    >>> round(noise_floor_bias(8.8, 1.44, [0, 1500], 1.0, n_averages=[1, 3]), 2)
    -0.14
    >>> abs(noise_floor_bias(20.0, 1.44, [0, 400, 800], 1.0, n_averages=[1, 3, 3])) < 0.01
    True
    """
    _, _, fit = _simulated_fit(
        s0, adc_um2_per_ms, bvals_s_per_mm2, sigma, n_averages, method, n_samples, seed
    )
    adc = np.asarray(fit.adc_um2_per_ms, dtype=np.float64)
    adc = adc[np.isfinite(adc)]
    return float(np.median(adc) / adc_um2_per_ms - 1) if adc.size else float("nan")


def noise_fit_rmse_log(
    s0: float,
    adc_um2_per_ms: float,
    bvals_s_per_mm2: npt.ArrayLike,
    sigma: float,
    *,
    n_averages: npt.ArrayLike | None = None,
    method: str = "wls",
    n_samples: int = 4000,
    seed: int = 0,
) -> float:
    """Median log-signal fit residual (``AdcFit.rmse_log``) that noise alone gives a region
    whose voxels follow the mono-exponential model exactly.

    A fit's residual measures misfit *and* noise: in the log domain a shell's noise is
    about ``σ / S``, so where the signal at high b nears the noise (a nucleus at
    b = 1500 and SNR 20) a perfectly mono-exponential disc has a residual of 0.2–0.3, above
    any fixed "poor fit" limit (a user trial). This is the residual to compare with.
    Simulated as :func:`noise_floor_bias` (same voxels, noise, fit and seed).

    Parameters
    ----------
    s0, adc_um2_per_ms, bvals_s_per_mm2, sigma, n_averages, method, n_samples, seed
        As :func:`noise_floor_bias`.

    Returns
    -------
    float
        Median ``rmse_log`` of the simulated voxels the fit kept (NaN when it kept none;
        0 for two b-values, which every fit passes through exactly).

    Examples
    --------
    b = 0, 500, 1000 and 1500 s/mm² (trace images), nucleus-like at S0/σ = 10 and 100:

    >>> b, n = [0, 500, 1000, 1500], [1, 3, 3, 3]
    >>> round(noise_fit_rmse_log(10.0, 1.4, b, 1.0, n_averages=n), 2)
    0.15
    >>> round(noise_fit_rmse_log(100.0, 1.4, b, 1.0, n_averages=n), 3)
    0.017
    """
    _, _, fit = _simulated_fit(
        s0, adc_um2_per_ms, bvals_s_per_mm2, sigma, n_averages, method, n_samples, seed
    )
    rmse = np.asarray(fit.rmse_log, dtype=np.float64)
    rmse = rmse[np.isfinite(rmse)]
    return float(np.median(rmse)) if rmse.size else float("nan")


def noise_shell_residuals(
    s0: npt.ArrayLike,
    adc_um2_per_ms: float,
    bvals_s_per_mm2: npt.ArrayLike,
    sigma: float,
    *,
    n_averages: npt.ArrayLike | None = None,
    method: str = "wls",
    n_samples: int = 4000,
    seed: int = 0,
) -> npt.NDArray[np.float64]:
    """Mean log-signal residual of each shell that noise alone gives voxels that follow
    the mono-exponential model exactly
    (:func:`~discquant.diffusion.residuals.shell_residuals` of simulated voxels).

    Not zero: at low signal the noise floor lifts the high shells' magnitudes and the
    logarithm bends the rest, the same way in every voxel, so a region's mean residual
    is read against this, not against zero.

    Parameters
    ----------
    s0
        Noiseless b = 0 signal: one value, or the values of a region's voxels (the
        simulated voxels cycle through them, so a region's spread of signal, whose low
        voxels carry most of the floor, is kept).
    adc_um2_per_ms, bvals_s_per_mm2, sigma, n_averages, method, n_samples, seed
        As :func:`noise_floor_bias`.

    Returns
    -------
    numpy.ndarray
        One mean residual per shell of the fit, lowest b first (NaN where the fit kept
        no simulated voxel).

    Examples
    --------
    Nucleus-like at b = 0, 500, 1000 and 1500 s/mm² (trace images): at S0/σ = 10 the
    floor lifts the b = 1500 shell, whose signal is 1.2 σ, 0.1 above the line; at 1000
    the residuals vanish.

    >>> b, n = [0, 500, 1000, 1500], [1, 3, 3, 3]
    >>> np.round(noise_shell_residuals(10.0, 1.4, b, 1.0, n_averages=n), 2)
    array([ 0.02, -0.01, -0.04,  0.1 ])
    >>> bool(np.all(abs(noise_shell_residuals(1000.0, 1.4, b, 1.0, n_averages=n)) < 1e-3))
    True
    """
    from discquant.diffusion.residuals import shell_residuals

    model, volumes, fit = _simulated_fit(
        s0, adc_um2_per_ms, bvals_s_per_mm2, sigma, n_averages, method, n_samples, seed
    )
    residuals = shell_residuals(model, volumes, fit).astype(np.float64)
    kept = residuals[np.all(np.isfinite(residuals), axis=1)]
    if not kept.size:
        return np.full(residuals.shape[1], np.nan)
    return np.asarray(kept.mean(axis=0))


def _simulated_fit(
    s0: npt.ArrayLike,
    adc_um2_per_ms: float,
    bvals_s_per_mm2: npt.ArrayLike,
    sigma: float,
    n_averages: npt.ArrayLike | None,
    method: str,
    n_samples: int,
    seed: int,
) -> tuple[AdcModel, npt.NDArray[np.float64], AdcFit]:
    """``n_samples`` voxels of ``s0·exp(−b·ADC)`` with Rician noise, fitted as a study is
    (``s0`` one value or several, cycled through); the model, the images and the fit."""
    from discquant.diffusion.adc import AdcModel

    b = np.asarray(bvals_s_per_mm2, dtype=np.float64).ravel()
    n = np.ones(b.size, dtype=int) if n_averages is None else np.asarray(n_averages, dtype=int)
    if n.shape != b.shape:
        raise ValueError("bvals and n_averages must be 1-D and of the same length")
    rng = np.random.default_rng(seed)
    s0_voxels = np.resize(np.asarray(s0, dtype=np.float64).ravel(), n_samples)
    signal = s0_voxels[:, None] * np.exp(-b * 1e-3 * adc_um2_per_ms)
    volumes = np.empty((n_samples, b.size))
    for v, count in enumerate(n):
        noise = rng.normal(0.0, sigma, (2, n_samples, int(count)))
        magnitude = np.hypot(signal[:, v, None] + noise[0], noise[1])
        volumes[:, v] = np.exp(np.log(magnitude).mean(axis=1))  # geometric mean
    # The fit groups volumes as the measurement's did: a trace volume (3 acquisitions)
    # has no direction, the others one each (their directions do not change an isotropic
    # signal).
    bvecs = np.zeros((b.size, 3))
    bvecs[n == 1] = np.eye(3)[np.arange(int((n == 1).sum())) % 3]
    model = AdcModel(b, bvecs, method=method)
    return model, volumes, model.fit(volumes, n_threads=1)
