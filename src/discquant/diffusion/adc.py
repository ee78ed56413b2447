"""The ADC engine: ``AdcModel(bvals, method=...).fit(dwi, mask=...) -> AdcFit``.

Model: the trace signal of shell ``s`` is ``S(b_s) = S0 · exp(−b_s · ADC)``. Directional
images of one shell are combined into a geometric-mean trace and several b≈0 images are
averaged (:mod:`discquant.diffusion.shells`), as scanners do, before the fit.

Methods
-------
``two-point``
    ``ADC = ln(S_lo / S_hi) / (b_hi − b_lo)`` from the lowest and highest used shells only.
``ols``
    Unweighted least squares of ``ln S`` on ``b`` over the shells (the scanner's fit).
``wls``
    Weighted least squares of ``ln S`` with weights ``n_s · Ŝ_s²`` where ``Ŝ`` is the OLS
    prediction (as dipy's WLS tensor fit; ``n_s`` is the number of acquisitions averaged into
    the shell, whose log-signal variance is ``σ² / (n_s S²)``: one per volume, three for a
    scanner's trace image, :func:`~discquant.diffusion.shells.acquisitions_per_volume`).
``nlls``
    Levenberg–Marquardt on ``Σ n_s (S_s − S0 e^{−b_s ADC})²`` in the signal domain, with
    ``ADC ≥ 0``, warm-started from WLS, at most :data:`NLLS_MAX_ITER` iterations, stopping
    when every voxel's ADC step is below ``1e-4`` (float32) / ``1e-10`` (float64) relative
    (Gauss–Newton converges only linearly on noisy data; at SNR 30 the float32 result is
    within 1e-6 (median) of the float64 optimum).

Invalid voxels (``valid`` False, ADC, S0 and RMSE NaN; never clipped):

1. a used signal is ≤ 0 or not finite: a b≈0 image, or any image of a diffusion-weighted
   shell (its geometric mean is then 0 or undefined); after Rician correction, a signal
   at or below the noise level counts as 0;
2. a diffusion-weighted shell's trace signal is above the reference signal ``S0`` (the
   lowest used shell, normally b≈0);
3. fewer than two usable b-values: per voxel this cannot happen without rule 1, so a model
   with fewer than two shells in ``[b_min_s_per_mm2, b_max_s_per_mm2]`` is refused when it is built;
4. the fit itself fails: ADC ≤ 0 (possible with three or more shells even when rule 2
   holds), or ADC or S0 not finite;

plus every voxel outside ``mask``.

Implementation (hand-written rather than dipy because dipy fits a 7-parameter tensor per
voxel and clips signals; this fit has two parameters with a closed form): the volume is
processed in chunks of a few tens of thousands of voxels that stay in the L2 cache, on a
small pool of threads (numpy releases the GIL in its loops). Within a chunk every signal is
divided by the voxel's reference signal and the logarithm (base 2: numpy's fastest) is
taken once; OLS is then one
small matrix product with precomputed coefficients, WLS one more exponential per shell and
one matrix product of running sums per voxel (``Σw, Σwx, Σwx², Σwy, Σwxy``), solved in
closed form. b-values are used in ms/µm² relative to the reference shell, so the slope is
the ADC in µm²/ms and float32 arithmetic keeps the precision of float32 input. float32 input is
computed in float32, float64 input in float64. Peak memory: the input, the four output
maps, and a few chunk buffers per thread.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

from discquant.diffusion._kernel import NLLS_MAX_ITER, Kernel, make_plan
from discquant.diffusion.noise import estimate_noise_sigma_of_images
from discquant.diffusion.shells import (
    NO_DIRECTION_MAX_NORM,
    SHELL_TOLERANCE_S_PER_MM2,
    TRACE_MIN_B_S_PER_MM2,
    Shell,
    acquisitions_per_volume,
    group_shells,
)
from discquant.errors import InvalidInputError
from discquant.io.nifti import bvalue_too_large
from discquant.io.study import Volume

__all__ = ["METHODS", "NLLS_MAX_ITER", "AdcFit", "AdcModel", "Method"]

log = logging.getLogger(__name__)

Method = Literal["two-point", "ols", "wls", "nlls"]
METHODS: tuple[str, ...] = ("two-point", "ols", "wls", "nlls")

_CHUNK_BYTES = 1 << 19  # input bytes per chunk; with the buffers it stays near the L2 size
_MAX_THREADS = 8
_MAX_CHUNK = 1 << 15  # voxels; larger chunks spill the buffers out of L2


@dataclass(frozen=True)
class AdcFit:
    """The result of :meth:`AdcModel.fit`; every map has the DWI's spatial shape.

    Attributes
    ----------
    adc_um2_per_ms
        float32 ADC in µm²/ms (= 10⁻³ mm²/s); NaN where ``valid`` is False.
    s0
        float32 fitted signal at b = 0 (extrapolated when b≈0 is not used); NaN where invalid.
    rmse_log
        float32 root-mean-square residual of the natural-log trace signal over the used
        shells, ``√(Σ_s (ln S_s − ln Ŝ_s)² / S)`` (0 for two shells); NaN where invalid.
    valid
        bool map, see the module docstring for the rules.
    bvals_used_s_per_mm2
        The shells the fit used, ascending (mean b-value of each shell).
    volumes_per_shell
        Number of DWI volumes averaged into each used shell.
    method
        The fit method.
    noise_sigma
        The Rician ``σ`` removed from the signals, or None when no correction was made.
    """

    adc_um2_per_ms: npt.NDArray[np.float32]
    s0: npt.NDArray[np.float32]
    rmse_log: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]
    bvals_used_s_per_mm2: tuple[float, ...]
    volumes_per_shell: tuple[int, ...]
    method: str
    noise_sigma: float | None = None

    @property
    def n_valid(self) -> int:
        return int(np.count_nonzero(self.valid))


class AdcModel:
    """Mono-exponential ADC model of a diffusion acquisition (see the module docstring).

    Parameters
    ----------
    bvals
        One b-value per DWI volume, s/mm².
    bvecs
        Optional ``(N, 3)`` gradient directions (FSL's ``(3, N)`` is accepted). The trace
        does not depend on them, but the fit weights do: a diffusion-weighted shell of one
        volume without a direction is a scanner's trace image, three acquisitions
        averaged, and weighs three times one direction in ``"wls"``/``"nlls"``
        (:func:`discquant.diffusion.shells.acquisitions_per_volume`).
    method
        ``"two-point"``, ``"ols"``, ``"wls"`` (default) or ``"nlls"``.
    b_min_s_per_mm2, b_max_s_per_mm2
        Use only shells with ``b_min_s_per_mm2 ≤ b ≤ b_max_s_per_mm2``; 200 as the lower
        limit drops the perfusion-weighted low b-values, for example.
    noise_sigma
        Rician ``σ`` of one acquisition (signal units) to correct the noise floor with
        ``√(M² − σ²/n)`` before the fit (``n`` acquisitions in the image: 3 for a
        scanner's trace image, :meth:`noise_variances`); ``"auto"`` estimates it from the
        background of the b≈0 image(s)
        (:func:`discquant.diffusion.noise.estimate_noise_sigma_of_images`); None (default)
        corrects nothing.
    shell_tol_s_per_mm2
        Tolerance for grouping b-values into shells.

    Examples
    --------
    >>> import numpy as np
    >>> b = np.array([0.0, 400.0, 800.0])
    >>> dwi = 1000.0 * np.exp(-b * 1.7e-3)  # ADC 1.7 µm²/ms
    >>> fit = AdcModel(b, method="ols").fit(dwi[None, :])
    >>> round(float(fit.adc_um2_per_ms[0]), 5), bool(fit.valid[0])
    (1.7, True)
    """

    def __init__(
        self,
        bvals: npt.ArrayLike,
        bvecs: npt.ArrayLike | None = None,
        *,
        method: Method | str = "wls",
        b_min_s_per_mm2: float | None = None,
        b_max_s_per_mm2: float | None = None,
        noise_sigma: float | Literal["auto"] | None = None,
        shell_tol_s_per_mm2: float = SHELL_TOLERANCE_S_PER_MM2,
    ) -> None:
        if method not in METHODS:
            raise InvalidInputError(f"unknown ADC method {method!r}; choose one of {METHODS}")
        self.method = cast(Method, method)
        self.bvals = np.asarray(bvals, dtype=np.float64).ravel()
        _check_bvalue_unit(self.bvals)
        self.shells = group_shells(self.bvals, tol=shell_tol_s_per_mm2)
        self.bvecs = None
        if bvecs is not None:
            vecs = np.asarray(bvecs, dtype=np.float64)
            n = self.bvals.size
            if vecs.shape == (3, n) and vecs.shape != (n, 3):  # FSL .bvec layout
                vecs = vecs.T  # (with 3 volumes both read alike: the documented (N, 3) wins)
            if vecs.shape != (self.bvals.size, 3):
                raise InvalidInputError(
                    f"bvecs must have shape ({self.bvals.size}, 3), got {vecs.shape}"
                )
            _check_unit_directions(self.bvals, vecs)
            self.bvecs = vecs
        if isinstance(noise_sigma, str):
            if noise_sigma != "auto":
                raise InvalidInputError(
                    f"noise_sigma must be a number, 'auto' or None, got {noise_sigma!r}"
                )
        elif noise_sigma is not None and (not np.isfinite(noise_sigma) or noise_sigma < 0):
            raise InvalidInputError(f"noise_sigma must be finite and ≥ 0, got {noise_sigma}")
        self.noise_sigma = noise_sigma
        lo = -np.inf if b_min_s_per_mm2 is None else float(b_min_s_per_mm2)
        hi = np.inf if b_max_s_per_mm2 is None else float(b_max_s_per_mm2)
        used = [s for s in self.shells if lo <= s.bval_s_per_mm2 <= hi]
        if len(used) < 2:
            largest = max(float(np.max(self.bvals)), 0.0) if self.bvals.size else 0.0
            # b = 0, 0.4, 0.8 in ms/µm² (1000 times too small) fall into one shell
            hint = (
                "; b-values are in s/mm² (e.g. 0, 400, 800), these look like ms/µm²"
                if 0 < largest < 20
                else ""
            )
            raise InvalidInputError(
                "fewer than two b-value shells to fit: shells "
                f"{[round(s.bval_s_per_mm2, 3) for s in self.shells]} s/mm², "
                f"allowed range [{lo}, {hi}]{hint}"
            )
        if self.method == "two-point":
            used = [used[0], used[-1]]
        self.used_shells: tuple[Shell, ...] = tuple(used)
        counts = acquisitions_per_volume(used, self.bvecs)
        volumes = [v for s in used for v in s.volumes]
        self._acquisitions = np.ones(self.bvals.size)
        self._acquisitions[volumes] = counts
        per_volume = iter(counts)
        self._plan = make_plan(used, [sum(next(per_volume) for _ in s.volumes) for s in used])

    @property
    def n_volumes(self) -> int:
        return int(self.bvals.size)

    def fit(
        self,
        dwi: npt.ArrayLike,
        mask: npt.ArrayLike | None = None,
        *,
        n_threads: int | None = None,
    ) -> AdcFit:
        """Fit every voxel.

        Parameters
        ----------
        dwi
            ``(..., N)`` array, N volumes last, in the order of ``bvals``; float32 is
            computed in float32, float64 in float64, integers are converted per chunk.
        mask
            Optional boolean array of the spatial shape; voxels outside are invalid.
        n_threads
            Worker threads; default: the CPUs this process may use (at most 8).

        Returns
        -------
        AdcFit

        Raises
        ------
        TypeError
            ``dwi`` or ``mask`` is not an array: a :class:`~discquant.io.study.Volume`
            (pass its ``.data``), a nibabel image (pass ``img.get_fdata()``) or anything
            else that is not numbers.
        InvalidInputError
            The DWI is complex, or its volumes or the mask's shape do not match.
        """
        _check_array(dwi, "DWI", "series.image.data")
        if mask is not None:
            _check_array(mask, "mask", "mask.data")
        arr = np.asarray(dwi)
        if arr.dtype.kind not in "biufc":
            raise TypeError(
                f"AdcModel.fit takes the DWI as a numeric array (..., N), volumes last; "
                f"got {type(dwi).__name__} of dtype {arr.dtype}"
            )
        if np.iscomplexobj(arr):  # its real part alone read ADC 2.32 for 1.0 (a user trial)
            raise InvalidInputError(
                "the DWI is complex: give magnitude images (np.abs), as scanners reconstruct"
            )
        if arr.ndim < 1 or arr.shape[-1] != self.n_volumes:
            raise InvalidInputError(
                f"the DWI has {arr.shape[-1] if arr.ndim else 0} volumes but "
                f"{self.n_volumes} b-values were given"
            )
        spatial = arr.shape[:-1]
        order: Literal["C", "F"] = "C"
        if not arr.flags.c_contiguous:
            if arr.flags.f_contiguous:
                order = "F"
            else:
                arr = np.ascontiguousarray(arr)
        x2d = arr.reshape(-1, self.n_volumes, order=order)
        n_vox = x2d.shape[0]
        # any 8-byte float (also big-endian '>f8') is computed in float64
        ftype = np.float64 if arr.dtype.kind == "f" and arr.dtype.itemsize == 8 else np.float32

        mask_flat = None
        if mask is not None:
            m = np.asarray(mask)
            if m.shape != spatial:
                raise InvalidInputError(
                    f"mask shape {m.shape} does not match the DWI's spatial shape {spatial}"
                )
            mask_flat = m.astype(bool, copy=False).reshape(-1, order=order)

        sigma = self._resolve_sigma(x2d)

        adc = np.empty(spatial, dtype=np.float32, order=order)
        s0 = np.empty(spatial, dtype=np.float32, order=order)
        rmse = np.empty(spatial, dtype=np.float32, order=order)
        valid = np.empty(spatial, dtype=bool, order=order)
        outs = tuple(o.reshape(-1, order=order) for o in (adc, s0, rmse, valid))

        chunk = int(np.clip(_CHUNK_BYTES // (4 * max(self.n_volumes, 4)), 1024, _MAX_CHUNK))
        starts = range(0, n_vox, chunk)
        sigma2 = None if sigma is None else self.noise_variances(sigma)
        kernel = Kernel(self._plan, self.method, ftype, sigma2, chunk)

        def run(start: int) -> None:
            stop = min(start + chunk, n_vox)
            kernel.run(
                x2d[start:stop],
                None if mask_flat is None else mask_flat[start:stop],
                tuple(o[start:stop] for o in outs),
            )

        threads = _n_threads(n_threads)
        if threads <= 1 or len(starts) <= 1:
            for start in starts:
                run(start)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, starts))
        fit = AdcFit(
            adc_um2_per_ms=adc,
            s0=s0,
            rmse_log=rmse,
            valid=valid,
            bvals_used_s_per_mm2=tuple(s.bval_s_per_mm2 for s in self.used_shells),
            volumes_per_shell=tuple(s.n_volumes for s in self.used_shells),
            method=self.method,
            noise_sigma=sigma,
        )
        log.debug("ADC %s fit: %d of %d voxels valid", self.method, fit.n_valid, n_vox)
        return fit

    def noise_variances(self, sigma: float) -> npt.NDArray[np.float64]:
        """The Rician noise variance of each DWI volume, given one acquisition's σ.

        A scanner's trace image is the geometric mean of three acquisitions
        (:func:`~discquant.diffusion.shells.acquisitions_per_volume`), so its variance is
        about σ²/3 where the signal is well above the noise (near σ, the floor of a
        geometric mean of three images stays near σ: there σ²/3 under-corrects).
        Correcting it by σ² (an audit) read ADC 3.0 +5.8 % by OLS at SNR 20 and
        invalidated 3.6 % of voxels; by σ²/3, +0.8 %.
        """
        return float(sigma) ** 2 / self._acquisitions

    def _resolve_sigma(self, x2d: npt.NDArray[np.generic]) -> float | None:
        if self.noise_sigma is None:
            return None
        if self.noise_sigma != "auto":
            return float(self.noise_sigma)
        # Each b≈0 image on its own (an average of magnitudes is no longer Rayleigh
        # distributed in the background), then the median over the images.
        try:
            sigma = estimate_noise_sigma_of_images(x2d[:, v] for v in self.shells[0].volumes)
        except InvalidInputError as exc:
            raise InvalidInputError(
                f"{exc.reason}; give the noise σ as a number (--noise-sigma)"
            ) from exc
        log.info("Rician noise sigma estimated from the background: %.4g", sigma)
        return sigma


def _check_array(value: object, what: str, volume_hint: str) -> None:
    """Refuse an image object where :meth:`AdcModel.fit` wants its array.

    ``fit(volume)`` and ``fit(nib_img)`` were read as a 0-d object array and refused as
    "the DWI has 0 volumes but 3 b-values were given" (an audit): say what to pass.
    """
    if isinstance(value, Volume):
        raise TypeError(
            f"AdcModel.fit takes the {what} as an array, not a Volume: pass its .data "
            f"({volume_hint})"
        )
    if hasattr(value, "get_fdata"):
        raise TypeError(
            f"AdcModel.fit takes the {what} as an array, not a {type(value).__name__}: "
            "pass img.get_fdata()"
        )


def _check_bvalue_unit(bvals: npt.NDArray[np.float64]) -> None:
    """Refuse b-values too large for s/mm² (:func:`discquant.io.nifti.bvalue_too_large`).

    Given in s/m², b = 0/400/800 fitted a median ADC of 1.5e-06 µm²/ms without an error
    (an audit); the b-value files were already refused so.
    """
    finite = bvals[np.isfinite(bvals)]
    if too_large := bvalue_too_large(float(finite.max(initial=0.0))):
        raise InvalidInputError(f"{too_large} (b-values are in s/mm², e.g. 0, 400, 800)")


def _n_threads(requested: int | None) -> int:
    if requested is not None:
        return max(1, int(requested))
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    return max(1, min(available, _MAX_THREADS))


UNIT_DIRECTION_TOLERANCE = 0.1
"""A diffusion-weighted volume's b-vector must be of length 1 within this (text files
round to 4-6 digits; scanners' own directions differ from 1 by less than 1e-3), or 0 for
an image without a direction (a scanner's trace, :data:`NO_DIRECTION_MAX_NORM`)."""


class BvecLengthError(InvalidInputError):
    """B-vectors of diffusion-weighted volumes not of length 1 (:func:`_check_unit_directions`):
    the file to blame is the .bvec, where there is one."""


def _check_unit_directions(bvals: npt.NDArray[np.float64], bvecs: npt.NDArray[np.float64]) -> None:
    """Refuse b-vectors of another length than 1 on diffusion-weighted volumes.

    Some tools encode the b-value in the vector's length (b × |g|², MRtrix's b-value
    scaling); read as unit vectors, three of length √0.5 at b = 1000 fitted ADC 1.125
    for 1.5 µm²/ms (an audit). Which convention a file follows is not written in it, so
    it is refused rather than guessed.
    """
    norms = np.linalg.norm(bvecs, axis=1)
    weighted = bvals > TRACE_MIN_B_S_PER_MM2  # IVIM's b = 10 … 50 are fitted as weighted
    bad = np.flatnonzero(
        weighted
        & np.isfinite(norms)
        & (norms > NO_DIRECTION_MAX_NORM)
        & (np.abs(norms - 1.0) > UNIT_DIRECTION_TOLERANCE)
    )
    if bad.size:
        first = int(bad[0])
        raise BvecLengthError(
            f"the b-vectors of {bad.size} diffusion-weighted volume(s) are not of length 1 "
            f"(volume {first}: length {norms[first]:.3g} at b = {bvals[first]:g} s/mm²): "
            "normalise them, with the b-values scaled by their squared length if that is "
            "the file's convention"
        )


def why_no_valid_voxel(
    data: npt.NDArray[np.floating],
    model: AdcModel,
    fit: AdcFit,
    mask: npt.NDArray[np.generic] | None = None,
) -> str:
    """Why a fit left no voxel valid (``fit.n_valid == 0``), in one line.

    An empty mask; a used volume without positive signal (each voxel of its shell's
    geometric mean is then 0: one b = 800 volume of zeros, or of NaN); else the
    invalid-voxel rules in general.

    Parameters
    ----------
    data
        The DWI that was fitted, volumes last.
    model, fit
        The model and its fit.
    mask
        The mask the fit was restricted to, if any.
    """
    if mask is not None and not mask.any():
        return "no voxel could be fitted: the mask selects none"
    for shell in model.used_shells:
        for v in shell.volumes:
            image = data[..., v]
            if not np.any(np.isfinite(image) & (image > 0)):
                return (
                    f"no voxel could be fitted: volume {v} (b = {model.bvals[v]:g} s/mm²) "
                    "has no positive signal; leave it out of the DWI"
                )
    low, high = model.used_shells[0], model.used_shells[-1]
    with np.errstate(invalid="ignore"):
        falls = data[..., list(high.volumes)].mean(-1) < data[..., list(low.volumes)].mean(-1)
    if mask is not None:
        falls &= mask.astype(bool)
    if not falls.any():  # a constant DWI had been told its signals were 0 or rose (an audit)
        return (
            f"no voxel could be fitted: in none does the signal fall from b = "
            f"{low.bval_s_per_mm2:.0f} to b = {high.bval_s_per_mm2:.0f} s/mm², so no ADC is "
            "above 0 (one image repeated for every b-value, or b-values that do not belong "
            "to this DWI?)"
        )
    sigma = "" if not fit.noise_sigma else f", or at the noise σ ({fit.noise_sigma:.4g})"
    return (
        "no voxel could be fitted: in each, a signal is 0 or less, a diffusion-weighted "
        f"signal lies above its b≈0 signal{sigma}, or the fitted ADC is 0 or less "
        "(docs/adc.md, the invalid-voxel rules)"
    )
