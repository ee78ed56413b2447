"""The diffusion stage of the analysis: the ADC map, the b≈0 image and the noise.

:func:`run_diffusion` is what :func:`discquant.pipeline.analyze` runs as its
``diffusion`` stage: it fits the ADC map from the study's raw DWI
(:class:`~discquant.diffusion.adc.AdcModel`) with its residuals, the mean b≈0 image and
the noise σ and SNR, and compares it with the scanner's own map when the study has one;
without a raw DWI it takes the scanner's map. :func:`lowest_bval` is the b-value of that
b≈0 image, which the measurement stage records.

The ADC engine and the noise estimator are imported inside the functions, as in the
pipeline, so that importing this module loads neither.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from discquant.errors import DiscquantError, InvalidInputError
from discquant.io.privacy import shown_path
from discquant.io.study import Series, Study, Volume
from discquant.results import AnalysisResult

__all__ = ["lowest_bval", "run_diffusion"]


def run_diffusion(
    study: Study,
    result: AnalysisResult,
    *,
    adc_method: str,
    b_min_s_per_mm2: float | None,
    scanner_adc_tolerance: float,
) -> None:
    """The ADC map into ``result``: fitted from the raw DWI (with its residual map, the
    fitted b-values and averages, the mean b≈0 image, the noise σ and SNR, and a
    comparison with the scanner's map when the study has one), or, without a raw DWI,
    the scanner's map itself (its trace image standing in for b≈0).

    The diffusion stage of :func:`discquant.pipeline.analyze`, which passes the values of
    its ``AnalysisConfig`` (so this module does not import the pipeline).

    Parameters
    ----------
    study
        The imported study; it must hold a DWI (``study.dwi``) or a scanner's ADC map
        (``study.adc``).
    result
        Filled in place: ``adc_map``, ``b0``, and from a raw DWI also ``adc_fit_rmse``
        (when the method gives one), ``adc_fit_shell_residuals``,
        ``adc_fit_bvals_s_per_mm2``, ``adc_fit_n_averages``, ``noise_sigma`` and
        ``snr_estimate``; ``warnings``, ``flags`` (``adc_not_trace``) and ``provenance``
        are appended to.
    adc_method
        The fit (``"two-point"``, ``"ols"``, ``"wls"`` or ``"nlls"``; see
        :class:`~discquant.diffusion.adc.AdcModel`).
    b_min_s_per_mm2
        Shells below this b-value are left out of the fit; None keeps them all.
    scanner_adc_tolerance
        Warn when this fit's OLS map and the scanner's map differ by more (median
        relative difference inside the body).

    Raises
    ------
    DiscquantError
        When the DWI has no b-values, or no voxel could be fitted (or the scanner's map,
        used alone, holds no positive value).
    InvalidInputError
        When :class:`~discquant.diffusion.adc.AdcModel` refuses the b-values or the
        method; b-vectors not of length 1 name the .bvec file, as ``adc`` does.
    """
    from discquant.diffusion.adc import AdcModel, BvecLengthError, why_no_valid_voxel
    from discquant.diffusion.residuals import shell_residuals
    from discquant.diffusion.shells import (
        B0_MAX_S_PER_MM2,
        acquisitions_per_volume,
        directional_shells,
    )

    dwi = study.dwi
    if dwi is None:
        assert study.adc is not None
        scanner = study.adc.image
        # Scanners write 0 (or less) where they fitted nothing (background, too little
        # signal); as numbers they entered the disc statistics (a nucleus median of 0 at
        # low SNR). Here, as in discquant's own maps, a voxel without an ADC is NaN.
        data = np.where(scanner.data > 0, scanner.data, np.nan).astype(np.float32)
        trace = study.trace
        result.b0 = trace.image if trace is not None else None
        if not np.isfinite(data).any():  # as for a fit without a valid voxel, below
            raise DiscquantError(
                f"the scanner's ADC map {study.adc.description!r} holds no positive value"
            )
        result.adc_map = Volume(data, scanner.affine)
        result.warnings.append(
            "no raw DWI: the scanner's ADC map is used (its voxels ≤ 0, not fitted, as NaN)"
        )
        b = None if trace is None or trace.bvals_s_per_mm2 is None else trace.bvals_s_per_mm2
        if b is not None and np.size(b) and float(np.min(b)) > B0_MAX_S_PER_MM2:
            # It stands in for the b≈0 image (segmentation without a T2, the report's
            # figures); said, since everything downstream calls that image "b≈0".
            result.warnings.append(
                f"no raw DWI: the scanner's trace image (b = {float(np.min(b)):g} s/mm²) "
                "stands in for the b≈0 image"
            )
        return
    if dwi.bvals_s_per_mm2 is None:
        raise DiscquantError(f"DWI series {dwi.description!r} has no b-values")
    try:
        model = AdcModel(
            dwi.bvals_s_per_mm2,
            dwi.bvecs,
            method=adc_method,
            b_min_s_per_mm2=b_min_s_per_mm2,
        )
    except BvecLengthError as exc:  # the file to fix is the .bvec (an audit: named none)
        bvec = dwi.provenance.bvec_path
        if bvec is None:
            raise
        raise InvalidInputError(
            exc.reason, path=shown_path(bvec, study.source, study.identifiers)
        ) from exc
    fit = model.fit(dwi.image.data)
    if fit.n_valid == 0:
        # an all-NaN map went on: the stage "ok", a blank report panel, and each disc
        # "too few voxels" (an audit: the b > 0 volumes NaN). The b≈0 image is kept: a
        # study without a T2 is segmented on it (a review).
        result.b0 = mean_b0(dwi)
        raise DiscquantError(why_no_valid_voxel(dwi.image.data, model, fit))
    affine = dwi.image.affine
    result.adc_map = Volume(np.asarray(fit.adc_um2_per_ms, dtype=np.float32), affine)
    rmse = getattr(fit, "rmse_log", None)
    if rmse is not None:
        result.adc_fit_rmse = Volume(np.asarray(rmse, dtype=np.float32), affine)
    result.adc_fit_shell_residuals = Volume(shell_residuals(model, dwi.image.data, fit), affine)
    result.adc_fit_bvals_s_per_mm2 = tuple(
        float(shell.bval_s_per_mm2) for shell in model.used_shells for _ in shell.volumes
    )
    result.adc_fit_n_averages = acquisitions_per_volume(model.used_shells, model.bvecs)
    # the ADC depends on them: they were in the map's sidecar only (an audit)
    result.provenance["adc_fit"] = {
        "method": model.method,
        "bvals_s_per_mm2": [float(shell.bval_s_per_mm2) for shell in model.used_shells],
        "n_volumes": len(result.adc_fit_bvals_s_per_mm2),
    }
    if directional := directional_shells(model.used_shells, model.bvecs):
        # One gradient direction per shell was fitted as if it were a trace, silently (a
        # user trial): one phantom direction read the nucleus ADC -8 % to +12 % off.
        result.warnings.append(
            f"the DWI's gradient directions at b = {', '.join(f'{b:g}' for b in directional)} "
            "s/mm² do not span space (one, two or coplanar directions): the ADC is along those "
            "directions, not the trace (mean diffusivity) a scanner reports"
        )
        result.flags.append("adc_not_trace")
        result.provenance["adc_not_trace_bvals_s_per_mm2"] = list(directional)
    result.b0 = mean_b0(dwi)
    result.noise_sigma = _noise_sigma(dwi, result.warnings)
    if result.noise_sigma is not None:
        data = result.b0.data[np.isfinite(result.b0.data)]
        if data.size:
            result.snr_estimate = float(np.percentile(data, 95)) / result.noise_sigma
    if study.adc is not None:
        # Scanners fit the trace by unweighted log-linear least squares: compare like with
        # like. Against the default WLS map, noise alone made the median differ by 5.2–6.0 %
        # in the body of three phantoms whose OLS maps matched the scanner's to 0.02 %.
        same_fit = adc_method == "ols" and b_min_s_per_mm2 is None
        ols = (
            fit
            if same_fit
            else AdcModel(dwi.bvals_s_per_mm2, dwi.bvecs, method="ols").fit(dwi.image.data)
        )
        result.provenance["scanner_adc_comparison"] = _compare_with_scanner(
            Volume(np.asarray(ols.adc_um2_per_ms, dtype=np.float32), affine),
            study.adc.image,
            result.b0,
            scanner_adc_tolerance,
            result.warnings,
        )


def lowest_bval(series: Series | None) -> float:
    """The b-value of :func:`mean_b0`'s image (0 without a DWI)."""
    if series is None or series.bvals_s_per_mm2 is None:
        return 0.0
    from discquant.diffusion.shells import group_shells

    return float(group_shells(np.asarray(series.bvals_s_per_mm2))[0].bval_s_per_mm2)


def _noise_sigma(dwi: Series, warnings: list[str]) -> float | None:
    """Noise σ of one DWI volume, for the study's SNR estimate (the 95th percentile of
    the b≈0 signal, bright tissue, over σ) and each disc's ``snr_np_b0`` and ``low_snr``.

    σ is :func:`~discquant.diffusion.noise.estimate_noise_sigma_of_images` of the b≈0
    volumes, as the ADC engine's ``noise_sigma="auto"`` measures it.
    On phantoms (SNR 8–40, 9 studies) it reads σ 1.20–1.37 times the truth (1.27–1.68
    before the estimator's fix of 2026-12-05), so SNRs read low: tissue of little signal
    mixes into the background. The mean of the darkest 10 %
    of voxels used before read σ 0.38–0.61 times the truth (SNR 1.6–2.6 times too high;
    tests/test_pipeline.py, docs/measurement.md). None, with a warning, where no
    background is found.
    """
    from discquant.diffusion.noise import estimate_noise_sigma_of_images

    assert dwi.bvals_s_per_mm2 is not None  # a DWI series
    try:
        low = _b0_volumes(dwi.bvals_s_per_mm2)
        sigma = estimate_noise_sigma_of_images(dwi.image.data[..., k] for k in low)
    except InvalidInputError as exc:
        warnings.append(f"SNR not estimated: {exc}")
        return None
    return float(sigma) if sigma > 0 else None


def _b0_volumes(bvals_s_per_mm2: npt.ArrayLike) -> npt.NDArray[np.intp]:
    """Indices of the volumes of the lowest shell, as the ADC engine groups them (b≈0, or
    the least diffusion-weighted when none is ≈0)."""
    from discquant.diffusion.shells import group_shells

    return np.asarray(group_shells(np.asarray(bvals_s_per_mm2, dtype=float))[0].volumes)


def mean_b0(series: Series) -> Volume:
    """The mean of a DWI series' b≈0 volumes (:func:`_b0_volumes`): the image ``analyze``
    segments when there is no T2, and the report's b≈0."""
    assert series.bvals_s_per_mm2 is not None
    return lowest_shell_mean(series.image, series.bvals_s_per_mm2)


def lowest_shell_mean(dwi: Volume, bvals_s_per_mm2: npt.ArrayLike) -> Volume:
    """:func:`mean_b0` of a 4-D image and its b-values (``discquant segment`` of a DWI)."""
    low = _b0_volumes(bvals_s_per_mm2)
    return Volume(dwi.data[..., low].mean(axis=-1).astype(np.float32), dwi.affine)


def _compare_with_scanner(
    adc: Volume, scanner: Volume, b0: Volume, tolerance: float, warnings: list[str]
) -> dict[str, object]:
    """Warn when the engine's ADC and the scanner's ADC map disagree in the body, and
    return the comparison's record for the provenance (the measured difference was kept
    only in a warning, when over the tolerance: an audit).

    The two are compared voxel by voxel in world coordinates: the scanner's map is
    resampled onto the DWI grid (nearest neighbour) unless it is stored on that grid. A
    map of the same shape stored in another voxel order (flipped anterior-posterior, its
    affine saying so) had been compared voxel index by index: "differs by 35.5 %", for a
    map in the right place; one on a grid of another shape was not compared at all (an
    audit)."""
    on_grid = _on_grid(scanner, adc)
    body = b0.data > np.percentile(b0.data, 75) * 0.25
    ok = body & np.isfinite(adc.data) & (on_grid > 0)
    if ok.sum() < 10:
        return {"compared": False, "why": "fewer than 10 body voxels on both maps"}
    rel = np.abs(adc.data[ok] - on_grid[ok]) / on_grid[ok]
    median = float(np.median(rel))
    if median > tolerance:
        warnings.append(
            f"the scanner's ADC map differs from discquant's by {100 * median:.1f} % "
            f"(median) inside the body; check the b-values and the scanner's fit"
        )
    return {
        "compared": True,
        "method": "ols",
        "median_relative_difference": round(median, 6),
        "tolerance": tolerance,
        "n_voxels": int(ok.sum()),
    }


def _on_grid(image: Volume, grid: Volume) -> npt.NDArray[np.float32]:
    """``image``'s values on ``grid``'s voxels (world coordinates; nearest neighbour, 0
    outside its field of view): its own data where it is stored on that grid."""
    shape3 = (grid.shape[0], grid.shape[1], grid.shape[2])
    same_affine = np.allclose(image.affine, grid.affine, atol=1e-3)
    if image.shape[:3] == shape3 and same_affine:
        return np.asarray(image.data, dtype=np.float32)
    import nibabel as nib
    from nibabel.processing import resample_from_to

    source = nib.Nifti1Image(np.asarray(image.data, dtype=np.float32), image.affine)
    moved = resample_from_to(source, (shape3, grid.affine), order=0, cval=0.0)
    return np.asarray(moved.dataobj, dtype=np.float32)
