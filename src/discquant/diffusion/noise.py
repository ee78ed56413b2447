"""Rician noise: the magnitude-image noise floor and its correction.

A magnitude image of a signal ``A`` with Gaussian noise of standard deviation ``σ`` in each
of the real and imaginary channels follows a Rice distribution; where ``A`` is small
(high b-values, fast diffusion) its mean lies above ``A`` and the fitted ADC falls. The
correction ``A ≈ √(M² − σ²)`` (Gudbjartsson & Patz 1995, MRM 34:910) removes most of this
floor; values with ``M ≤ σ`` become 0, which the ADC engine then treats as an unusable
signal (the voxel becomes invalid) rather than clipping it to something plausible.

Estimator of ``σ`` from the background (:func:`estimate_noise_sigma`): in air the signal
is pure noise and the magnitude is Rayleigh distributed with mode ``σ`` and
``E[M²] = 2σ²``. The estimator

1. takes the non-zero voxels below the image median (zero-filled voxels outside the
   reconstructed field are not noise and are skipped; more than a fifth of the image
   exactly 0 is a masked background, and no estimate is made),
2. finds the mode of their histogram (the Rayleigh peak of the background), ``σ₀``,
3. returns ``σ = √(mean(M² | M < 3σ₀) / (2 · 0.9494))``: the Rayleigh second moment of the
   background voxels, divided by its known truncation factor at ``3σ``
   (``E[Z | Z < 4.5] = 1 − 4.5·e^{−4.5}/(1 − e^{−4.5}) = 0.9494`` for ``Z = M²/2σ²``, an
   exponential variable).

It assumes a single-coil-like Rician background (no parallel-imaging noise amplification
that varies in space) and enough air that the lowest histogram peak is the background
(roughly a tenth of the image or more).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from discquant.errors import InvalidInputError

log = logging.getLogger(__name__)

_TRUNC = 3.0
_TRUNC_FACTOR = 1.0 - (_TRUNC**2 / 2) * np.exp(-(_TRUNC**2) / 2) / (1.0 - np.exp(-(_TRUNC**2) / 2))
_MIN_BACKGROUND = 100
_MAX_ZERO_SHARE = 0.2
"""Largest share of exact zeros accepted (a zero-filled edge outside the reconstructed
field); more is a masked background."""
_MAX_RAYLEIGH_SHAPE = 0.95
"""Largest mean/RMS of the background voxels accepted as Rayleigh noise (0.893 below 3σ)."""


def rician_correct(magnitude: npt.ArrayLike, sigma: float) -> npt.NDArray[np.floating]:
    """Noise-floor corrected magnitude ``√(max(M² − σ², 0))`` (Gudbjartsson & Patz 1995).

    Parameters
    ----------
    magnitude
        Magnitude image(s), any shape; float32 stays float32.
    sigma
        Noise standard deviation of one real channel, same units as ``magnitude``.

    Examples
    --------
    >>> rician_correct([5.0, 1.0, 0.5, -5.0], 3.0).tolist()
    [4.0, 0.0, 0.0, 0.0]
    """
    m = np.asarray(magnitude)
    if m.dtype != np.float32:
        m = m.astype(np.float64)
    if not np.isfinite(sigma) or sigma < 0:
        raise InvalidInputError(f"noise sigma must be finite and ≥ 0, got {sigma}")
    out = np.square(m)
    out -= m.dtype.type(sigma) ** 2
    np.maximum(out, 0, out=out)
    np.sqrt(out, out=out)
    np.copyto(out, 0, where=m <= 0)  # a negative M is no signal, not |M|
    return out


def estimate_noise_sigma_of_images(images: Iterable[npt.ArrayLike]) -> float:
    """The median of :func:`estimate_noise_sigma` over several magnitude images, each on
    its own (the b≈0 volumes of a series: the background of their mean is not Rayleigh
    distributed).

    Raises
    ------
    InvalidInputError
        As :func:`estimate_noise_sigma`, for any of the images, or when none is given.
    """
    sigmas = [estimate_noise_sigma(image) for image in images]
    if not sigmas:
        raise InvalidInputError("no image to estimate the noise level from")
    return float(np.median(sigmas))


def estimate_noise_sigma(image: npt.ArrayLike) -> float:
    """Estimate the Rician ``σ`` from the background of a magnitude image (see module doc).

    Parameters
    ----------
    image
        One magnitude image, e.g. a b≈0 volume; any shape. Not an average of several
        images: the background of an average is no longer Rayleigh distributed.

    Returns
    -------
    float
        ``σ`` in the units of the image.

    Raises
    ------
    InvalidInputError
        When fewer than 100 background voxels are found (the image has no air to measure).
    """
    m = np.asarray(image, dtype=np.float64).ravel()
    m = m[np.isfinite(m)]
    if m.size == 0:
        raise InvalidInputError("the image has no finite voxel to estimate the noise level")
    zero_share = float(np.mean(m == 0))
    if zero_share > _MAX_ZERO_SHARE:
        # Rician magnitudes are exactly 0 only by rounding; this much zero is air masked
        # by the scanner (a real Philips DWI: 38 %), and what noise is left in view is not
        # the background's.
        raise InvalidInputError(
            f"{zero_share:.0%} of the voxels are exactly 0 (a zero-filled background): "
            "cannot estimate the noise level"
        )
    m = m[m > 0]
    if m.size < _MIN_BACKGROUND:
        raise InvalidInputError("too few non-zero voxels to estimate the noise level")
    low = m[m < np.median(m)]
    if low.size < _MIN_BACKGROUND:
        raise InvalidInputError("no background (air) found to estimate the noise level")
    hist, edges = np.histogram(low, bins=min(256, max(16, low.size // 50)))
    k = int(np.argmax(hist))
    sigma0 = 0.5 * (edges[k] + edges[k + 1])
    background = m[m < _TRUNC * sigma0]
    if background.size < _MIN_BACKGROUND:
        raise InvalidInputError("no background (air) found to estimate the noise level")
    # Rayleigh noise below 3σ has mean / RMS = 0.893; tissue (what is left when a scanner
    # or converter zero-fills the air) is far narrower (≈ 0.99). Without this check a
    # zero-filled image gave σ 40 times too large, and every tissue voxel invalid.
    shape = float(background.mean() / np.sqrt(np.mean(background**2)))
    if shape > _MAX_RAYLEIGH_SHAPE:
        raise InvalidInputError(
            "the darkest voxels are not Rayleigh noise (zero-filled background?): "
            "cannot estimate the noise level"
        )
    sigma = float(np.sqrt(np.mean(background**2) / (2.0 * _TRUNC_FACTOR)))
    log.debug(
        "noise sigma %.4g from %d background voxels (mode %.4g)", sigma, background.size, sigma0
    )
    return sigma
