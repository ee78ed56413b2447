"""Per-disc measurements: one :class:`~discquant.results.DiscResult` per lumbar level.

This module only assembles; the definitions live in :mod:`.regions` (masks),
:mod:`.stats` (summaries), :mod:`.geometry` and :mod:`.water`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from nibabel.affines import apply_affine

from discquant.grid import (
    left_right_axis,
    slices_spanned,
    touches_in_plane_edge,
    volume_withheld_flag,
)
from discquant.io.study import Volume
from discquant.measure import regions
from discquant.measure.geometry import (
    DiscFrame,
    DiscGeometry,
    adjacent_body_height_mm,
    disc_frame,
    disc_geometry,
    within_disc_depth,
)
from discquant.measure.stats import region_stats
from discquant.measure.water import (
    DEFAULT_REFERENCE_NP_ADC_UM2_PER_MS,
    WaterCalibration,
    water_index,
)
from discquant.results import (
    CANAL_LABEL,
    DISC_LABELS,
    DISC_OFFSET,
    LEVELS,
    SACRUM_LABEL,
    AdcStats,
    DiscResult,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasureConfig:
    """Options of the measurement stage (defaults documented in docs/measurement.md)."""

    min_core_voxels: int = 5
    """Fewer finite core voxels than this → the ADC value is withheld and flagged."""
    border_voxels: int = 1
    """Core = region eroded by this many voxels (excludes endplates and disc border)."""
    reference_np_adc_um2_per_ms: float = DEFAULT_REFERENCE_NP_ADC_UM2_PER_MS
    max_fit_rmse: float = 0.15
    """Median RMSE of the log-signal fit in a disc's core above this, and above
    :attr:`min_fit_rmse_over_noise` times what noise alone gives → ``poor_fit`` flag."""
    min_fit_rmse_over_noise: float = 1.5
    """The residual noise alone gives a mono-exponential disc
    (:func:`discquant.diffusion.precision.noise_fit_rmse_log`, at the core's median b≈0
    signal and ADC and the study's σ) times this is the least a ``poor_fit`` residual
    must reach, where σ is known. Noise-only discs read 0.8–1.1 times it on phantoms at
    b = 0/500/1000/1500 (σ from the background reads high, which lowers the ratio), and
    at SNR 20 every one of them was over 0.15 before (a user trial). Noise this large also
    hides a real misfit: a shell 30 % off read 1.1–1.5 times it (docs/measurement.md)."""
    min_shell_misfit_log: float = 0.05
    """With :attr:`min_shell_misfit_z`: a shell whose log-signal residual, averaged over
    the disc core, differs from what noise alone gives
    (:func:`discquant.diffusion.precision.noise_shell_residuals`) by more than this (5 %
    of its signal, after the fit took up its share) and by more than
    :attr:`min_shell_misfit_z` standard errors of that mean → ``poor_fit``. A shell off
    in every voxel (motion in one shell, a misstated b-value) moves the mean; noise,
    which the voxel residual above cannot see past at low SNR, averages out."""
    min_shell_misfit_z: float = 5.0
    """Standard errors (the core's voxel residual SD / √voxels) a shell's mean residual
    must lie from noise's. Five, not two: neighbouring voxels of a scanner's
    interpolated images share noise, so the voxels are fewer than they count, and every
    disc tests several shells."""
    max_shell_noise_residual: float = 0.02
    """The shell test looks only at shells whose mean residual from noise alone is at most
    this: where the noise floor shapes a shell's residual (b = 1500 at SNR 20), what it
    gives depends on σ, which the background estimate reads 1.2–1.4 times too high on
    phantoms, and on the spread of ADC in the disc, and mono-exponential phantom discs
    read up to 0.16 from it (docs/measurement.md)."""
    max_np_median_rel_se: float = 0.05
    """Relative standard error of the nucleus median ADC above this → ``adc_np_imprecise``.

    SE of a median ≈ 1.2533 · SD / √n (normal approximation). Small, heterogeneous nuclei
    (collapsed grade V discs: 5–50 DWI voxels with fluid clefts) carry it; on phantoms
    their median missed the truth by up to 30 % (docs/measurement.md)."""
    max_t2_np_csf_ratio: float = 1.0
    """With :attr:`min_t2_csf_body_ratio`: the T2 contrast check (``t2_contrast_implausible``
    when the median nucleus/CSF signal is above this and CSF/body below that;
    :mod:`discquant.measure.contrast`)."""
    min_t2_csf_body_ratio: float = 0.85
    max_noise_limited_error: float = 0.05
    """1.96 × the noise-limited SD of the nucleus median ADC (:data:`MEDIAN_SE_FACTOR` ×
    its Cramér–Rao bound), relative to it, above this → ``low_snr``: at the nucleus's
    signal, size and the study's noise the reported median could not be within this share
    of the truth for 95 % of such discs (docs/measurement.md)."""
    max_dropped_share: float = 0.05
    """Share of the disc core's voxels without an ADC (the fit dropped them: a
    diffusion-weighted signal above the b≈0 one, from noise) above this →
    ``adc_disc_voxels_dropped``. They are the lowest ADCs, so the median of the others
    reads high: +6.5 % to +14 % where 7–9 % were dropped on grade V phantom discs at
    SNR 20 (a user trial; docs/measurement.md)."""
    max_noise_floor_bias: float = 0.05
    """The nucleus median ADC's expected error from magnitude noise (the noise floor at
    high b, voxels the fit drops; :func:`discquant.diffusion.precision.noise_floor_bias`),
    relative, above this in size → ``adc_noise_floor_bias``. A bias that the variance
    bound behind ``low_snr`` does not see: 10–17 % low unflagged at b = 0/1500, SNR 20 (a
    user trial). The whole 5 % budget, not less: the study's σ, from the background, read
    1.2–1.4 times the truth on phantoms (:mod:`discquant.diffusion.noise`), and the
    expected bias grows with it (docs/measurement.md)."""


MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)
"""SD of a sample median / SD of the sample mean for normal data, √(π/2) ≈ 1.2533.

The nucleus ADC is reported as the median of its voxels, which spreads this much more
than an efficient estimator of the common ADC (the Cramér–Rao bound). On 40 voxels at
SNR 15 a simulation gave 1.22 (median) and 0.99 (mean):
``benchmarks/measure_definitions.py``, part 5."""


def median_rel_se(stats: AdcStats) -> float:
    """Standard error of a region's median ADC relative to the median: 1.2533·SD/(√n·median)."""
    if stats.n_voxels < 1 or not stats.median > 0:
        return float("inf")
    return MEDIAN_SE_FACTOR * stats.sd / (math.sqrt(stats.n_voxels) * stats.median)


@dataclass
class MeasureInputs:
    """Everything the measurement stage reads; any part may be missing.

    ``anatomy`` is the image that was segmented (the T2, or the DWI b≈0 when no T2
    exists, then ``anatomy_is_t2`` is False and no T2 measures are made).
    ``disc_probability`` (the segmentation's, on the ``labels`` grid) makes the disc
    heights partial-volume chords (:func:`~discquant.measure.geometry.disc_geometry`).
    """

    labels: Volume | None = None
    anatomy: Volume | None = None
    anatomy_is_t2: bool = True
    nucleus: Volume | None = None
    adc: Volume | None = None
    labels_dwi: Volume | None = None
    nucleus_dwi: Volume | None = None
    fit_rmse: Volume | None = None
    fit_shell_residuals: Volume | None = None
    """Each fitted shell's log-signal residual (4-D, lowest b first), for ``poor_fit``'s
    test of a shell that misses the fit in the whole disc."""
    level_flags: dict[str, list[str]] = field(default_factory=dict)
    disc_probability: Volume | None = None
    b0_dwi: Volume | None = None
    noise_sigma: float | None = None
    fit_bvals_s_per_mm2: tuple[float, ...] | None = None
    """One b-value per DWI volume the ADC fit used; with ``b0_dwi`` (the mean b≈0 image)
    and ``noise_sigma`` (σ of one DWI volume) they give each disc's ``snr_np_b0`` and
    its ``low_snr`` flag."""
    b0_bval_s_per_mm2: float = 0.0
    """The b-value of ``b0_dwi``: the study's lowest shell, which the fit may have left out
    (``b_min_s_per_mm2``) or which may lie above 0 (b = 50); its signal is taken back to
    b = 0 with the disc's ADC wherever a b = 0 signal is meant."""
    fit_n_averages: tuple[int, ...] | None = None
    """Acquisitions combined into each fitted volume (3 for a trace image); None: 1 each."""
    fit_method: str = "wls"
    """The ADC fit (:data:`discquant.diffusion.adc.METHODS`), for the noise-floor check."""


def _centre_outside_slab(
    centre_ras_mm: npt.NDArray[np.float64],
    mask: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
) -> bool:
    """True when a point (a disc's T2 centroid) lies beyond the first or last sagittal slice
    of an image (the DWI): a slab that misses the disc's middle. With part of the disc in
    the image, the slab then ends inside the disc, also for a single-slice DWI."""
    axis = left_right_axis(affine)
    lr = float(apply_affine(np.linalg.inv(affine), centre_ras_mm)[axis])
    return not -0.5 <= lr <= mask.shape[axis] - 0.5


def _thin_middle(
    source: npt.NDArray[np.bool_],
    source_affine: npt.NDArray[np.float64],
    on_dwi: npt.NDArray[np.bool_],
    dwi_affine: npt.NDArray[np.float64],
) -> bool:
    """Whether a structure's region on the DWI grid (``on_dwi``) is its middle in fewer than
    three sagittal slices, to be eroded in-plane only: the segmentation (``source``, on its
    own grid) saw it in fewer than three slices (a mid-sagittal T2), or the DWI image is a
    slab of one or two sagittal slices whose extent holds the structure's centre (a thin
    DWI slab through the middle; a narrow canal in two slices of a thick DWI is not one).
    False for an empty ``source``."""
    if not source.any():
        return False
    if slices_spanned(source, source_affine) < 3:
        return True
    centre_ras_mm = apply_affine(source_affine, np.argwhere(source).mean(axis=0))
    return (
        bool(on_dwi.any())
        and on_dwi.shape[left_right_axis(dwi_affine)] < 3
        and not _centre_outside_slab(centre_ras_mm, on_dwi, dwi_affine)
    )


def _nucleus_mask(
    disc: npt.NDArray[np.bool_],
    nucleus: Volume | None,
    *,
    border_voxels: int,
    slice_axis: int | None = None,
) -> npt.NDArray[np.bool_]:
    """The network's nucleus inside the disc core, or the central core of the disc core.

    Always inside the disc core: a disc too thin to have one (a collapsed disc two DWI
    voxels thick) has no nucleus region, and its statistics are withheld, not taken from
    voxels on the endplates."""
    disc_core = regions.core(disc, border_voxels=border_voxels, slice_axis=slice_axis)
    if nucleus is not None:
        np_mask = disc_core & (nucleus.data > 0)
        if np_mask.any():
            return np_mask
    return regions.central_core(disc_core)


def _adc_regions(
    label: int, inputs: MeasureInputs, config: MeasureConfig
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]] | None:
    """The disc core and the nucleus core of disc ``label`` on the DWI grid (the regions
    of ``adc_disc`` and ``adc_np``), or None when the disc is not on that grid."""
    assert inputs.labels_dwi is not None
    disc = inputs.labels_dwi.data == label
    if not disc.any():
        return None
    # Erode across DWI slices unless the disc's region is fewer than three sagittal slices
    # thick and lies in the disc's middle: the segmentation itself saw it so (a
    # mid-sagittal T2), or a DWI slab of one or two slices holds the disc's centre (3-D
    # erosion emptied such a slab: every ADC withheld, a user trial). A DWI slab that
    # catches only a disc's lateral tip is eroded in 3-D and withheld: in-plane only, its
    # annulus read 8-14 % low as `adc_np`.
    source = inputs.labels if inputs.labels is not None else inputs.labels_dwi
    thin = _thin_middle(source.data == label, source.affine, disc, inputs.labels_dwi.affine)
    lr_axis = left_right_axis(inputs.labels_dwi.affine) if thin else None
    disc_core = regions.core(disc, border_voxels=config.border_voxels, slice_axis=lr_axis)
    np_mask = _nucleus_mask(
        disc, inputs.nucleus_dwi, border_voxels=config.border_voxels, slice_axis=lr_axis
    )
    return disc_core, np_mask


def nucleus_core_labels(
    inputs: MeasureInputs, discs: list[DiscResult], *, config: MeasureConfig | None = None
) -> Volume | None:
    """The nucleus cores that the reported ``adc_np`` statistics were measured over, as a
    label map on the DWI grid (each voxel the label of its disc, 120 for L1-L2; 0
    elsewhere). Written beside the ADC map so that the nucleus figures, the water index
    and the ADC class can be reproduced (a user trial could not: the region was in no
    output). A disc whose ``adc_np`` is withheld has no voxel here; the region's finite
    ADC voxels are the ones counted.

    Parameters
    ----------
    inputs
        The inputs :func:`measure_discs` measured.
    discs
        Its results (which discs have a nucleus ADC).
    config
        The options it measured with.

    Returns
    -------
    Volume or None
        None without an ADC map on a DWI grid.
    """
    config = config or MeasureConfig()
    if inputs.adc is None or inputs.labels_dwi is None:
        return None
    out = np.zeros(inputs.labels_dwi.shape[:3], dtype=np.int16)
    for disc in discs:
        if disc.adc_np is None:
            continue
        found = _adc_regions(DISC_LABELS[disc.level], inputs, config)
        if found is not None:
            out[found[1]] = DISC_LABELS[disc.level]
    return Volume(out, inputs.labels_dwi.affine)


def _adc_measures(result: DiscResult, inputs: MeasureInputs, config: MeasureConfig) -> None:
    label = DISC_LABELS[result.level]
    assert inputs.adc is not None and inputs.labels_dwi is not None
    found = _adc_regions(label, inputs, config)
    if found is None:
        result.flags.append("disc_not_in_dwi")
        return
    disc_core, np_mask = found
    adc = inputs.adc.data
    result.adc_disc = region_stats(adc, disc_core, min_voxels=config.min_core_voxels)
    result.adc_np = region_stats(adc, np_mask, min_voxels=config.min_core_voxels)
    if result.adc_disc is None or result.adc_np is None:
        result.flags.append("adc_withheld_too_few_voxels")
    # Each value that is reported is checked, also when the other was withheld: a whole
    # disc with 6 % of its core unfitted beside a withheld nucleus had no flag (an audit).
    if (
        result.adc_disc is not None
        and 1.0 - result.adc_disc.n_voxels / int(disc_core.sum()) > config.max_dropped_share
    ):
        result.flags.append("adc_disc_voxels_dropped")
    if result.adc_np is not None and median_rel_se(result.adc_np) > config.max_np_median_rel_se:
        result.flags.append("adc_np_imprecise")
    if (inputs.fit_rmse is not None and _poor_fit(result, disc_core, inputs, config)) or (
        _shell_misfit(result, disc_core, inputs, config)
    ):
        result.flags.append("poor_fit")
    if result.adc_np is not None:
        result.water_index = water_index(
            result.adc_np.median, reference_um2_per_ms=config.reference_np_adc_um2_per_ms
        )
        _noise_measures(result, result.adc_np.median, np_mask, inputs, config)


def _poor_fit(
    result: DiscResult,
    disc_core: npt.NDArray[np.bool_],
    inputs: MeasureInputs,
    config: MeasureConfig,
) -> bool:
    """Whether the disc core's median log-signal residual is above
    :attr:`MeasureConfig.max_fit_rmse` and, where σ is known, above
    :attr:`MeasureConfig.min_fit_rmse_over_noise` times the residual that noise alone
    gives a mono-exponential disc of the same signal and ADC."""
    from discquant.diffusion.precision import noise_fit_rmse_log

    assert inputs.fit_rmse is not None
    rmse = _finite_values(inputs.fit_rmse.data, disc_core)
    if not rmse.size:
        return False
    median_rmse = float(np.median(rmse))
    if median_rmse <= config.max_fit_rmse:
        return False
    s0 = _core_s0(result, disc_core, inputs)
    if s0 is None:
        return True  # no σ: the fixed limit alone, as before the noise check
    assert result.adc_disc is not None and inputs.fit_bvals_s_per_mm2 is not None
    assert inputs.noise_sigma is not None
    noise_rmse = noise_fit_rmse_log(
        float(np.median(s0)),
        result.adc_disc.median,
        inputs.fit_bvals_s_per_mm2,
        inputs.noise_sigma,
        n_averages=inputs.fit_n_averages,
        method=inputs.fit_method,
    )
    # NaN (the simulated fit kept no voxel): noise swamps the fit, nothing to compare.
    return bool(median_rmse > config.min_fit_rmse_over_noise * noise_rmse)


def _core_s0(
    result: DiscResult, disc_core: npt.NDArray[np.bool_], inputs: MeasureInputs
) -> npt.NDArray[np.floating] | None:
    """The disc core's b≈0 signals (finite, above 0) taken back to b = 0 with the disc's
    ADC, for the noise simulations of the fit checks; None when σ, the b≈0 image on the
    core's grid, the fitted b-values or the disc's ADC are missing."""
    sigma = inputs.noise_sigma
    if (
        result.adc_disc is None
        or not result.adc_disc.median > 0
        or inputs.b0_dwi is None
        or inputs.fit_bvals_s_per_mm2 is None
        or sigma is None
        or not sigma > 0
        or inputs.b0_dwi.shape[:3] != disc_core.shape
    ):
        return None
    s0 = _finite_values(inputs.b0_dwi.data, disc_core)
    s0 = s0[s0 > 0]
    return s0 * _to_b0(inputs, result.adc_disc.median) if s0.size else None


def _shell_misfit(
    result: DiscResult,
    disc_core: npt.NDArray[np.bool_],
    inputs: MeasureInputs,
    config: MeasureConfig,
) -> bool:
    """Whether one fitted shell misses the mono-exponential in the whole disc core: its
    residual's mean over the core lies :attr:`MeasureConfig.min_shell_misfit_z` standard
    errors and :attr:`MeasureConfig.min_shell_misfit_log` from the mean noise alone gives
    voxels of the core's b≈0 signals and the disc's ADC. Needs σ (else False); shells
    whose residual the noise floor shapes are not tested
    (:attr:`MeasureConfig.max_shell_noise_residual`)."""
    from discquant.diffusion.precision import noise_shell_residuals

    residuals = inputs.fit_shell_residuals
    s0 = _core_s0(result, disc_core, inputs)
    if residuals is None or residuals.shape[:3] != disc_core.shape or s0 is None:
        return False
    assert result.adc_disc is not None and inputs.fit_bvals_s_per_mm2 is not None
    assert inputs.noise_sigma is not None
    per_voxel = np.asarray(residuals.data, dtype=np.float64)[disc_core]
    per_voxel = per_voxel[np.all(np.isfinite(per_voxel), axis=1)]
    if per_voxel.shape[0] < max(config.min_core_voxels, 2):
        return False
    expected = noise_shell_residuals(
        s0,
        result.adc_disc.median,
        inputs.fit_bvals_s_per_mm2,
        inputs.noise_sigma,
        n_averages=inputs.fit_n_averages,
        method=inputs.fit_method,
    )
    if expected.shape != per_voxel.shape[1:]:
        return False
    # Shells the noise floor shapes are not tested (NaN: noise swamps the simulated fit).
    tested = np.abs(expected) <= config.max_shell_noise_residual
    mean = per_voxel.mean(axis=0)
    standard_error = per_voxel.std(axis=0, ddof=1) / math.sqrt(per_voxel.shape[0])
    off = np.abs(mean - expected)
    with np.errstate(divide="ignore", invalid="ignore"):  # noise-free residuals: inf, NaN
        in_standard_errors = np.round(off / standard_error, 1).tolist()
    log.debug(
        "%s: shell residual minus noise's %s, in standard errors %s, tested %s",
        result.level,
        np.round(mean - expected, 3).tolist(),
        in_standard_errors,
        tested.tolist(),
    )
    return bool(
        np.any(
            tested
            & (off > config.min_shell_misfit_log)
            & (off > config.min_shell_misfit_z * standard_error)
        )
    )


def _noise_measures(
    result: DiscResult,
    adc_um2_per_ms: float,
    np_mask: npt.NDArray[np.bool_],
    inputs: MeasureInputs,
    config: MeasureConfig,
) -> None:
    """``snr_np_b0`` and the ``low_snr`` flag of one nucleus.

    The flag compares the pooled Cramér–Rao bound of the nucleus ADC
    (:mod:`discquant.diffusion.precision`: each core voxel's b≈0 signal, the nucleus
    median ADC, the fit's b-values and averages, the study's σ) with
    :attr:`MeasureConfig.max_noise_limited_error`, scaled by :data:`MEDIAN_SE_FACTOR` since
    the value reported is the voxels' median. It says what noise alone allows; the
    measured spread (``adc_np_imprecise``) also holds the nucleus's own heterogeneity.
    """
    from discquant.diffusion.precision import (
        adc_sd_lower_bound_um2_per_ms,
        pooled_sd_lower_bound,
    )

    sigma = inputs.noise_sigma
    s0: npt.NDArray[np.floating] = np.empty(0)
    if (
        inputs.b0_dwi is not None
        and inputs.fit_bvals_s_per_mm2 is not None
        and sigma is not None
        and sigma > 0
        and inputs.b0_dwi.shape[:3] == np_mask.shape
        and adc_um2_per_ms > 0
    ):
        s0 = _finite_values(inputs.b0_dwi.data, np_mask)
        s0 = s0[s0 > 0]
    if not s0.size:
        # No σ (no background found), no raw DWI (a scanner's ADC map): the check was not
        # made. Silence here read as "noise is not a problem".
        result.flags.append("snr_not_estimated")
        return
    assert sigma is not None and inputs.fit_bvals_s_per_mm2 is not None
    result.snr_np_b0 = float(np.median(s0)) / sigma
    voxel_sd = adc_sd_lower_bound_um2_per_ms(
        s0 * _to_b0(inputs, adc_um2_per_ms),
        adc_um2_per_ms,
        inputs.fit_bvals_s_per_mm2,
        sigma,
        n_averages=inputs.fit_n_averages,
    )
    bound_rel = pooled_sd_lower_bound(voxel_sd) / adc_um2_per_ms
    # The bound is for an efficient estimator; the value reported is the voxels' median.
    if 1.96 * MEDIAN_SE_FACTOR * bound_rel > config.max_noise_limited_error:
        result.flags.append("low_snr")
    bias = _noise_floor_bias(float(np.median(s0)), adc_um2_per_ms, sigma, inputs)
    # the size and the sign: the flag alone did not say which way the value reads (an audit)
    result.adc_np_noise_bias_percent = 100.0 * bias if math.isfinite(bias) else None
    if not abs(bias) <= config.max_noise_floor_bias:  # NaN too
        result.flags.append("adc_noise_floor_bias")


def _to_b0(inputs: MeasureInputs, adc_um2_per_ms: float) -> float:
    """The factor that takes a signal of ``inputs.b0_dwi`` (at ``b0_bval_s_per_mm2``) back
    to b = 0 for a region of this ADC."""
    return math.exp(inputs.b0_bval_s_per_mm2 * 1e-3 * adc_um2_per_ms)


def _noise_floor_bias(
    s0: float, measured_um2_per_ms: float, sigma: float, inputs: MeasureInputs
) -> float:
    """The expected relative error of a nucleus median ADC from magnitude noise
    (:func:`~discquant.diffusion.precision.noise_floor_bias`) at the true ADC that would
    read as ``measured_um2_per_ms``: the measured value is itself biased, and the bias
    grows as the ADC does (less signal at high b). Fixed-point steps until the bias moves
    by less than 0.2 % (at most eight); NaN when every simulated voxel is dropped (no
    ADC can be trusted then: flagged). ``s0`` is the signal of ``inputs.b0_dwi`` (at
    ``b0_bval_s_per_mm2``: b = 50 where the study has no b = 0); the simulation starts from
    the b = 0 signal of the true ADC. (It started from the fit's lowest b-value, which is
    not the image's when ``b_min_s_per_mm2`` leaves the b = 0 shell out: S0 read 25 % high
    at b_min 200 and 1.1 µm²/ms, and the bias a third too small, a review.)"""
    from discquant.diffusion.precision import noise_floor_bias

    bvals = inputs.fit_bvals_s_per_mm2
    assert bvals is not None
    bias = 0.0
    for _ in range(8):
        true_um2_per_ms = measured_um2_per_ms / (1.0 + bias)
        step = noise_floor_bias(
            s0 * _to_b0(inputs, true_um2_per_ms),
            true_um2_per_ms,
            bvals,
            sigma,
            n_averages=inputs.fit_n_averages,
            method=inputs.fit_method,
        )
        if not math.isfinite(step) or step <= -1.0:
            return float("nan")
        converged = abs(step - bias) < 0.002
        bias = step
        if converged:
            break
    return bias


def _t2_measures(
    result: DiscResult,
    disc: npt.NDArray[np.bool_],
    inputs: MeasureInputs,
    csf_signal: float | None,
    marrow_signal: float | None,
    config: MeasureConfig,
) -> None:
    assert inputs.anatomy is not None
    np_mask = _nucleus_mask(
        disc,
        inputs.nucleus,
        border_voxels=config.border_voxels,
        slice_axis=left_right_axis(inputs.anatomy.affine),
    )
    values = _finite_values(inputs.anatomy.data, np_mask)
    if values.size < max(config.min_core_voxels, 1):
        result.flags.append("t2_withheld_too_few_voxels")
        return
    mean = float(values.mean())
    if not mean > 0:  # a zero or negative nucleus signal (a masked or signed image)
        result.flags.append("t2_withheld_no_signal")
        return
    result.t2_np_heterogeneity = float(values.std() / mean)
    # Withheld with a reason, as every value is (a label map without a canal, a field of
    # view without the vertebral bodies' cores).
    if csf_signal is not None and csf_signal > 0:
        result.t2_np_csf_ratio = mean / csf_signal
    else:
        result.flags.append("t2_csf_ratio_withheld_no_csf")
    if marrow_signal is not None and marrow_signal > 0:
        result.t2_np_reference_ratio = mean / marrow_signal
    else:
        result.flags.append("t2_reference_ratio_withheld_no_marrow")


def _finite_values(
    image: npt.NDArray[np.floating], mask: npt.NDArray[np.bool_]
) -> npt.NDArray[np.floating]:
    """The finite values of ``image`` in ``mask`` (NaN and ±inf voxels drop out)."""
    values = np.asarray(image[mask])
    return values[np.isfinite(values)]


def _reference_signal(
    image: npt.NDArray[np.floating], mask: npt.NDArray[np.bool_], *, min_voxels: int
) -> float | None:
    """Median of the finite values of ``image`` in ``mask``; None with fewer than
    ``min_voxels`` of them."""
    values = _finite_values(image, mask)
    if values.size < max(min_voxels, 1):
        return None
    return float(np.median(values))


def measure_discs(
    inputs: MeasureInputs,
    *,
    config: MeasureConfig | None = None,
    calibration: WaterCalibration | None = None,
    csf_adc: float | Literal["measure"] | None = "measure",
) -> list[DiscResult]:
    """Measure every lumbar level that the segmentation found.

    Parameters
    ----------
    inputs
        Segmentation, images and ADC map (any may be missing).
    config
        Measurement options.
    calibration
        Water calibration for ``water_percent``; None leaves it empty.
    csf_adc
        The CSF's ADC of ``water_index_csf`` when the caller has measured it
        (:func:`csf_adc_um2_per_ms`, which the pipeline also records); ``"measure"``
        measures it here.

    Returns
    -------
    list of DiscResult
        Exactly one per level L1-L2 … L5-S1, cranial to caudal; ``found`` is False
        for a level the segmentation did not find.
    """
    config = config or MeasureConfig()
    results = [DiscResult(level=level) for level in LEVELS]
    labels = inputs.labels
    if labels is None:
        return results
    lab = labels.data
    disc_probability = None
    if inputs.disc_probability is not None:
        if on_label_grid(inputs.disc_probability, labels):
            disc_probability = np.asarray(inputs.disc_probability.data)
        else:
            log.warning("disc probability is not on the label grid: heights from the mask")
    # Each disc's measurement frame once: the adjacent bodies' heights and the marrow
    # reference are measured along it.
    frames = {
        label: frame
        for label in DISC_LABELS.values()
        if (frame := disc_frame(lab == label, labels.affine, bodies=_bodies(lab, label)))
        is not None
    }
    csf_signal, marrow_signal = _t2_references(inputs, labels, frames, config)
    if csf_adc == "measure":
        csf_adc = csf_adc_um2_per_ms(inputs, config)
    for result in results:
        label = DISC_LABELS[result.level]
        disc = lab == label
        if not disc.any():
            continue
        result.found = True
        result.flags.extend(inputs.level_flags.get(result.level, []))
        _geometry_measures(result, disc, labels, disc_probability, frames.get(label))
        world = apply_affine(labels.affine, np.argwhere(disc).mean(axis=0))
        result.centroid_ras_mm = (float(world[0]), float(world[1]), float(world[2]))
        if inputs.anatomy is not None and inputs.anatomy_is_t2:
            _t2_measures(result, disc, inputs, csf_signal, marrow_signal, config)
        if inputs.adc is not None and inputs.labels_dwi is not None:
            _dwi_measures(result, world, inputs, config, csf_adc, calibration)
    _flag_missing_levels(results, labels)
    return results


def _t2_references(
    inputs: MeasureInputs,
    labels: Volume,
    frames: dict[int, DiscFrame],
    config: MeasureConfig,
) -> tuple[float | None, float | None]:
    """The study's CSF and vertebral-marrow T2 signals (medians), the T2 ratios'
    denominators; None each without a T2 or without enough voxels."""
    if inputs.anatomy is None or not inputs.anatomy_is_t2:
        return None, None
    t2, lab = inputs.anatomy.data, labels.data
    csf = regions.csf_mask(lab, canal_label=CANAL_LABEL)
    marrow = regions.marrow_mask(lab, labels.affine, frames=frames)
    return (
        _reference_signal(t2, csf, min_voxels=config.min_core_voxels),
        _reference_signal(t2, marrow, min_voxels=config.min_core_voxels),
    )


def csf_adc_um2_per_ms(inputs: MeasureInputs, config: MeasureConfig | None = None) -> float | None:
    """The median ADC of the canal's core on the DWI grid.

    ``water_index_csf``'s denominator, and the study's check of the ADC map's unit
    (:data:`discquant.measure.water.MIN_CSF_ADC_UM2_PER_MS`).

    Returns
    -------
    float or None
        In µm²/ms; None without an ADC map, a segmentation on the DWI grid or enough
        CSF voxels.
    """
    config = config or MeasureConfig()
    if inputs.adc is None or inputs.labels_dwi is None:
        return None
    # As for the discs: a canal in fewer than three sagittal slices (a mid-sagittal
    # T2, a thin DWI slab) lies in one or two DWI slices, which a 3-D erosion
    # emptied; `water_index_csf` was then missing on every disc without a word.
    source = inputs.labels if inputs.labels is not None else inputs.labels_dwi
    thin = _thin_middle(
        source.data == CANAL_LABEL,
        source.affine,
        inputs.labels_dwi.data == CANAL_LABEL,
        inputs.labels_dwi.affine,
    )
    csf_dwi = regions.csf_mask(
        inputs.labels_dwi.data,
        canal_label=CANAL_LABEL,
        slice_axis=left_right_axis(inputs.labels_dwi.affine) if thin else None,
    )
    stats = region_stats(inputs.adc.data, csf_dwi, min_voxels=config.min_core_voxels)
    return stats.median if stats is not None else None


def _bodies(lab: npt.NDArray[Any], label: int) -> list[npt.NDArray[np.bool_]]:
    """Masks of the vertebrae above and below a disc (the sacrum below L5-S1, or L6
    where the labels hold one) that the labels hold: they bound the disc space
    (:func:`~discquant.measure.geometry.disc_frame`)."""
    above = label - DISC_OFFSET
    masks = [lab == above, lab == above + 1]  # L6 (25) below L5 on a spine that has one
    if label == DISC_LABELS["L5-S1"] and not masks[1].any():
        masks[1] = lab == SACRUM_LABEL
    return [m for m in masks if m.any()]


def _geometry_measures(
    result: DiscResult,
    disc: npt.NDArray[np.bool_],
    labels: Volume,
    disc_probability: npt.NDArray[np.floating] | None,
    frame: DiscFrame | None,
) -> None:
    """Heights, AP depth, volume and disc height index of one disc, with the flags of a
    field of view that cuts it."""
    cut = touches_in_plane_edge(disc, labels.affine)
    if cut:
        result.flags.append("partial_fov")
    geom = disc_geometry(disc, labels.affine, probability=disc_probability, frame=frame)
    if geom is None:
        return
    result.height_anterior_mm = geom.height_anterior_mm
    result.height_middle_mm = geom.height_middle_mm
    result.height_posterior_mm = geom.height_posterior_mm
    result.ap_depth_mm = geom.ap_depth_mm
    # one sagittal slice: area × slice thickness is not the disc's volume; the slab
    # or the field of view ends inside the disc: what is counted is a part of it
    withheld = volume_withheld_flag(disc, labels.affine)
    if withheld is not None:
        result.flags.append(withheld)
    else:
        result.volume_mm3 = geom.volume_mm3
    if cut:  # the depth of the part in view, whatever else withheld the volume
        result.ap_depth_mm = None
        # Heights too: the image's edge moves the disc's middle and ends (a phantom cut
        # through L5-S1 read its middle height 5.5 mm for 7.0 mm, above its anterior and
        # posterior heights; docs/measurement.md). An audit of the DICOM SR found it.
        result.height_anterior_mm = result.height_middle_mm = None
        result.height_posterior_mm = None
        result.flags.append("heights_withheld_partial_fov")
        return
    label = DISC_LABELS[result.level]
    result.disc_height_index = _disc_height_index(labels.data, labels.affine, label, geom, frame)


def _dwi_measures(
    result: DiscResult,
    centre_ras_mm: npt.NDArray[np.float64],
    inputs: MeasureInputs,
    config: MeasureConfig,
    csf_adc: float | None,
    calibration: WaterCalibration | None,
) -> None:
    """ADC values, noise checks and water measures of one disc (its T2 centre
    ``centre_ras_mm``)."""
    assert inputs.labels_dwi is not None
    # The DWI's field of view is often smaller than the T2's: a disc cut by it
    # gets its ADC from the part inside, which a reader should know.
    # A DWI slab that ends beside the disc's middle (its T2 centroid) measures
    # only a lateral part, not the nucleus.
    disc_dwi = inputs.labels_dwi.data == DISC_LABELS[result.level]
    dwi_affine = inputs.labels_dwi.affine
    if disc_dwi.any() and (
        touches_in_plane_edge(disc_dwi, dwi_affine)
        or _centre_outside_slab(centre_ras_mm, disc_dwi, dwi_affine)
    ):
        result.flags.append("partial_fov_dwi")
    _adc_measures(result, inputs, config)
    if result.adc_np is None:
        return
    if csf_adc:
        result.water_index_csf = result.adc_np.median / csf_adc
    else:  # said, as the other withheld values are
        result.flags.append("water_index_csf_withheld_no_csf")
    if calibration is not None:
        result.water_percent = calibration.water_percent(result.adc_np.median)
        if result.water_percent is None:  # it was left empty without a word
            result.flags.append("water_withheld_outside_calibration")


EDGE_MARGIN_MM = 4.0
"""Half a lumbar disc's height (8-13 mm, science.md): a level whose expected centre lies
this close to the image's edge, or beyond it, is not whole in the field of view."""


def _flag_missing_levels(results: list[DiscResult], labels: Volume) -> None:
    """Say why a level has no disc: ``not_in_fov`` when its expected centre lies beyond the
    image's edge or within :data:`EDGE_MARGIN_MM` of it, else ``not_found``. The expected
    centre is extrapolated (or interpolated) along the spine from the two nearest discs
    found, one disc spacing per level; with fewer than two discs found nothing is said.
    A user trial could not tell a level cut off by the field of view from one the network
    missed."""
    found = [(i, np.asarray(r.centroid_ras_mm)) for i, r in enumerate(results) if r.found]
    if len(found) < 2:
        return
    to_voxel = np.linalg.inv(labels.affine)
    in_plane = [a for a in range(3) if a != left_right_axis(labels.affine)]
    spacing = np.linalg.norm(labels.affine[:3, :3], axis=0)
    for i, result in enumerate(results):
        if result.found:
            continue
        (i0, c0), (i1, c1) = sorted(found, key=lambda f: (abs(f[0] - i), f[0]))[:2]
        expected = c0 + (c1 - c0) * (i - i0) / (i1 - i0)
        voxel = apply_affine(to_voxel, expected)
        # a disc whose centre lies within half a disc of the edge is cut by it: a half
        # disc the network missed read "not_found" with its centre 4 rows inside (an audit)
        margin = [EDGE_MARGIN_MM / spacing[a] for a in range(3)]
        inside = all(
            margin[a] - 0.5 <= voxel[a] <= labels.shape[a] - 0.5 - margin[a] for a in in_plane
        )
        result.flags.append("not_found" if inside else "not_in_fov")


def on_label_grid(probability: Volume | None, labels: Volume) -> bool:
    """Whether a disc probability exists and lies on the label grid (partial-volume
    heights); otherwise heights come from the mask."""
    return (
        probability is not None
        and probability.shape == labels.shape
        and bool(np.allclose(probability.affine, labels.affine, atol=1e-4))
    )


def _disc_height_index(
    lab: npt.NDArray[Any],
    affine: npt.NDArray[np.float64],
    label: int,
    geom: DiscGeometry,
    frame: DiscFrame | None = None,
) -> float | None:
    """Middle disc height over the mean middle height of the adjacent vertebral bodies.

    The body above is label − 100 (e.g. L4 = 23 for L4-L5); the body below is the next
    vertebra, except the sacrum, whose S1 body is not measured like a lumbar body. A vertebra
    whose body (the part within the disc's AP depth) reaches the in-plane edge of the
    image is left out (cut, it reads short). Each
    body is measured along the disc's height axis on the rays of the disc's middle band
    (:func:`~discquant.measure.geometry.adjacent_body_height_mm`), so a vertebra label
    that includes the posterior elements still gives the body's height.
    """
    if geom.height_middle_mm is None:
        return None
    disc = lab == label
    above = label - DISC_OFFSET
    neighbours = [(above, True)]
    if label != DISC_LABELS["L5-S1"]:  # below L5 the sacrum: not a lumbar body
        neighbours.append((above + 1, False))
    # A body the image's edge cuts reads short (L1 cut at the top: 17 mm for 24 mm).
    # Only the body counts (the label within the disc's AP depth): a spinous process
    # at the posterior edge of a tight field of view dropped an intact body.
    heights = [
        adjacent_body_height_mm(body, disc, affine, above=is_above, frame=frame)
        for v, is_above in neighbours
        if not touches_in_plane_edge(
            (body := lab == v) & within_disc_depth(body, disc, affine, frame=frame), affine
        )
    ]
    valid = [h for h in heights if h]
    return float(geom.height_middle_mm / np.mean(valid)) if valid else None
