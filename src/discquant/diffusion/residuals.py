"""Each shell's log-signal residual from a fitted mono-exponential: where a fit misses.

A voxel's ``rmse_log`` (:class:`~discquant.diffusion.adc.AdcFit`) says how far its signals
lie from the fitted line, but not which shell, nor whether the misses of many voxels agree.
Noise scatters a voxel's residuals around zero; one shell whose signal is wrong in every
voxel (motion or a vibration artefact in one shell, a b-value the header misstates, a
shell scaled apart from the others) moves that shell's residual the same way in all of
them, so its mean over a region stands out from noise that a single voxel cannot
(:func:`discquant.measure.discs` uses it for ``poor_fit``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from discquant.diffusion.adc import AdcFit, AdcModel

__all__ = ["shell_residuals"]


def shell_residuals(model: AdcModel, dwi: npt.ArrayLike, fit: AdcFit) -> npt.NDArray[np.float32]:
    """``ln S_s − (ln S0 − b_s · ADC)`` for every used shell ``s``, per voxel.

    ``S_s`` is the shell's signal as the fit saw it: the arithmetic mean of b≈0 images,
    the geometric mean (trace) of a diffusion-weighted shell's images, after the fit's
    Rician correction when it made one.

    Parameters
    ----------
    model
        The model that made ``fit``.
    dwi
        The ``(..., N)`` images ``fit`` was made from.
    fit
        ``model.fit(dwi)``.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., S)``, one residual per used shell (lowest b first); NaN where the
        fit is invalid. Their root-mean-square over the shells is the fit's ``rmse_log``.

    Examples
    --------
    A voxel whose b = 500 signal is 10 % low (``d = ln 0.9``): the unweighted line through
    the four shells takes up part of it, so shell ``s`` reads ``d · (δ_s1 − h_s1)``, with
    the hat matrix column ``h_·1 = (0.4, 0.3, 0.2, 0.1)`` of b = 0, 500, 1000, 1500:

    >>> from discquant.diffusion.adc import AdcModel
    >>> b = np.array([0.0, 500.0, 1000.0, 1500.0])
    >>> signal = 100.0 * np.exp(-b * 1e-3 * 1.2) * np.array([1.0, 0.9, 1.0, 1.0])
    >>> model = AdcModel(b, method="ols")
    >>> fit = model.fit(signal[None])
    >>> residuals = shell_residuals(model, signal[None], fit)
    >>> np.round(residuals[0], 3)
    array([ 0.042, -0.074,  0.021,  0.011], dtype=float32)
    >>> bool(np.isclose(np.sqrt(np.mean(residuals**2)), fit.rmse_log[0], atol=1e-6))
    True
    """
    data = np.asarray(dwi)  # each shell's images in float64 in turn, not all at once
    sigma2 = None if not fit.noise_sigma else model.noise_variances(fit.noise_sigma)
    adc = np.asarray(fit.adc_um2_per_ms, dtype=np.float64)
    log_s0 = np.log(np.asarray(fit.s0, dtype=np.float64))
    out = np.empty((*adc.shape, len(model.used_shells)), dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, shell in enumerate(model.used_shells):
            images = data[..., list(shell.volumes)].astype(np.float64)
            if sigma2 is not None:  # as the fit's kernel corrects (Gudbjartsson & Patz)
                var = sigma2[list(shell.volumes)]
                images = np.where(images > 0, np.sqrt(np.maximum(images**2 - var, 0)), 0)
            if shell.is_b0:
                log_signal = np.log(images.mean(axis=-1))
            else:
                log_signal = np.log(images).mean(axis=-1)
            predicted = log_s0 - shell.bval_s_per_mm2 * 1e-3 * adc
            out[..., k] = np.where(fit.valid, log_signal - predicted, np.nan)
    return out
