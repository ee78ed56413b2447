"""ADC maps on disk: from a DWI file or DICOM folder to a float32 NIfTI with a JSON sidecar.

The NIfTI keeps the DWI's affine and stores ADC in µm²/ms (10⁻³ mm²/s) as float32, NaN
where the voxel is invalid. The sidecar (same name, ``.json``) says what the numbers are:
unit, who computed the map, method, shells used, noise correction, source series,
discquant version. :func:`write_adc_nifti` is the one writer of ADC maps, for
``discquant adc`` and ``analyze`` alike (one sidecar schema, :data:`ADC_SIDECAR_KEYS`).
Both files are written to temporary names and renamed, so a failure never leaves a
half-written map.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from discquant.diffusion.adc import AdcFit, AdcModel, BvecLengthError, why_no_valid_voxel
from discquant.diffusion.shells import directional_shells
from discquant.errors import InputNotFoundError, InvalidInputError
from discquant.io.nifti import set_scanner_space
from discquant.jsonfiles import finite_or_null

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class AdcMapResult:
    """What :func:`compute_and_write_adc` wrote."""

    output: Path
    sidecar: Path
    method: str
    n_valid: int
    n_fitted: int
    bvals_used: tuple[float, ...]
    series: str
    """The fitted series' description (which of a folder's DWI series was taken)."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    raise InvalidInputError("output must be a NIfTI file ending in .nii or .nii.gz", path=path)


def _files_read(sources: Any) -> list[Path]:
    """The source files of a series and, for NIfTI ones, their .json/.bval/.bvec."""
    from discquant.io.nifti import is_nifti, nifti_stem

    read: list[Path] = []
    for source in map(Path, sources or ()):
        read.append(source)
        if is_nifti(source):
            read += [source.with_name(nifti_stem(source) + e) for e in (".json", ".bval", ".bvec")]
    return read


def temporary_paths(output: Path) -> tuple[Path, Path]:
    """Where :func:`write_adc_nifti` writes the map and its sidecar before renaming them.

    The names carry the output's name, cut to 40 characters, and a hash of the whole
    name: the whole name made a legal 249-character name too long; the pid alone
    collided between two writers that share a pid (one per container) in one folder; a
    cut name alone collided for long names that differ only at their end (…_run-01_ADC,
    …_run-02_ADC).
    """
    suffix = _suffix(output)
    tag = f"{output.name[: -len(suffix)][:40]}-{hashlib.sha1(output.name.encode()).hexdigest()[:8]}"
    stem = f".{tag}.discquant-{os.getpid()}.partial"
    return output.with_name(stem + suffix), output.with_name(stem + ".json")


def sidecar_path(output: Path) -> Path:
    """``adc.nii.gz`` → ``adc.json``."""
    return output.with_name(output.name[: -len(_suffix(output))] + ".json")


def parse_noise_sigma(value: str | float | None) -> float | Literal["auto"] | None:
    """``None``, ``"auto"`` or a non-negative number (command-line text accepted)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        sigma = float(value)  # text from the command line, or an int or float from Python
    except ValueError:
        raise InvalidInputError(f"noise sigma must be a number or 'auto', got {value!r}") from None
    if not np.isfinite(sigma) or sigma < 0:
        raise InvalidInputError(f"noise sigma must be finite and ≥ 0, got {value!r}")
    return sigma


ADC_SIDECAR_KEYS: tuple[str, ...] = (
    "Description",
    "AdcSource",
    "Quantity",
    "Units",
    "UnitsDescription",
    "UnitsNote",
    "InvalidValue",
    "Method",
    "BValuesUsed_s_per_mm2",
    "VolumesPerShell",
    "BMin_s_per_mm2",
    "BMax_s_per_mm2",
    "RicianNoiseSigma",
    "Masked",
    "ValidVoxels",
    "SnrEstimate",
    "SourceSeries",
    "GeneratedBy",
    "Software",
    "SoftwareVersion",
)
"""Every key of an ADC map's sidecar, in the order written, whoever wrote the map
(``discquant adc`` or ``analyze``); a value that does not apply is ``null``. ``Source``
follows them only when a Python caller names the input (:class:`AdcProvenance`).
docs/outputs.md ("The ADC map and its sidecar") describes each."""

SOURCE_SERIES_KEYS: tuple[str, ...] = (
    "Role",
    "Description",
    "File",
    "StoredUnit",
    "ScaleToUm2PerMs",
)
"""The keys of the sidecar's ``SourceSeries`` (the last two ``null`` but for a scanner map)."""

AdcSource = Literal["discquant", "scanner", "unknown"]


@dataclass(frozen=True)
class AdcProvenance:
    """Where an ADC map came from: what its sidecar says besides the constant keys.

    The fit's fields (``method`` … ``masked``) are for a map that discquant fitted
    (``adc_source="discquant"``); for a scanner's map they stay ``None`` (``null``).

    Attributes
    ----------
    adc_source
        ``"discquant"`` (fitted from the DWI), ``"scanner"`` (the scanner's own map, rescaled
        to µm²/ms) or ``"unknown"`` (not recorded).
    method
        The fit method (``wls``, ...).
    bvals_used_s_per_mm2, volumes_per_shell
        The shells fitted (ascending) and the DWI volumes averaged into each.
    b_min_s_per_mm2, b_max_s_per_mm2
        The b-value limits asked for (``None``: none).
    rician_noise_sigma
        The Rician σ removed from the signals before the fit (``None``: no correction).
    masked
        Whether the fit was restricted to a mask.
    snr_estimate
        The b≈0 image's SNR (95th percentile over the noise σ), where estimated.
    source_series
        ``Role``, ``Description``, ``File`` (and for a scanner map ``StoredUnit``,
        ``ScaleToUm2PerMs``) of the series the map comes from.
    source
        A name for the input (Python callers only: the command line leaves it out, as file
        and folder names can carry patient names); written as ``Source`` when given.
    not_trace_bvals_s_per_mm2
        The shells whose gradient directions cannot form a trace
        (:func:`~discquant.diffusion.shells.directional_shells`): the map is then the ADC
        along those directions, and ``Quantity`` says so.
    """

    adc_source: AdcSource
    method: str | None = None
    bvals_used_s_per_mm2: tuple[float, ...] | None = None
    volumes_per_shell: tuple[int, ...] | None = None
    b_min_s_per_mm2: float | None = None
    b_max_s_per_mm2: float | None = None
    rician_noise_sigma: float | None = None
    masked: bool | None = None
    snr_estimate: float | None = None
    source_series: Mapping[str, Any] | None = None
    source: str | None = None
    not_trace_bvals_s_per_mm2: tuple[float, ...] = ()

    @classmethod
    def of_fit(cls, fit: AdcFit, **fields: Any) -> AdcProvenance:
        """A discquant fit's provenance: method, shells and noise σ from ``fit``, the
        other fields (limits, mask, series, ...) as given."""
        return cls(
            adc_source="discquant",
            method=fit.method,
            bvals_used_s_per_mm2=tuple(fit.bvals_used_s_per_mm2),
            volumes_per_shell=tuple(fit.volumes_per_shell),
            rician_noise_sigma=fit.noise_sigma,
            **fields,
        )


def adc_description(adc_source: str, method: str | None = None) -> str:
    """The sidecar's ``Description``: who computed the map (and the fit method)."""
    if adc_source == "scanner":
        return (
            "Apparent diffusion coefficient (trace) map computed by the scanner, taken from "
            "the input as it is (not fitted by discquant); values converted to um^2/ms."
        )
    if adc_source == "discquant":
        how = f" ({method} fit)" if method else ""
        return (
            "Apparent diffusion coefficient (trace) fitted by discquant from the "
            f"diffusion-weighted images{how}."
        )
    return "Apparent diffusion coefficient (trace); where it was computed was not recorded."


def _quantity(not_trace_bvals_s_per_mm2: Sequence[float]) -> str:
    """The sidecar's ``Quantity``: the trace's ADC, unless some shell's directions could
    not form one."""
    if not not_trace_bvals_s_per_mm2:
        return "apparent diffusion coefficient of the trace (mean over directions)"
    shells = ", ".join(f"{b:g}" for b in not_trace_bvals_s_per_mm2)
    return (
        "apparent diffusion coefficient along the DWI's gradient directions, not the trace: "
        f"the directions at b = {shells} s/mm² do not span space"
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def adc_sidecar(adc_um2_per_ms: npt.ArrayLike, provenance: AdcProvenance) -> dict[str, Any]:
    """The sidecar of an ADC map: every key of :data:`ADC_SIDECAR_KEYS` (and ``Source``
    when ``provenance.source`` is given); NaN and ±inf are ``None``."""
    from discquant import __version__

    p = provenance
    series = None
    if p.source_series is not None:
        series = {key: p.source_series.get(key) for key in SOURCE_SERIES_KEYS}
    meta: dict[str, Any] = {
        "Description": adc_description(p.adc_source, p.method),
        "AdcSource": p.adc_source,
        "Quantity": _quantity(p.not_trace_bvals_s_per_mm2),
        "Units": "um^2/ms",  # BIDS/CMIXF style
        "UnitsDescription": "micrometre^2 per millisecond = 10^-3 mm^2/s",
        "UnitsNote": "µm²/ms = 1e-3 mm²/s; multiply by 1000 for the 1e-6 mm²/s of scanner maps",
        "InvalidValue": "NaN",
        "Method": p.method,
        "BValuesUsed_s_per_mm2": None
        if p.bvals_used_s_per_mm2 is None
        else [round(float(b), 6) for b in p.bvals_used_s_per_mm2],
        "VolumesPerShell": None
        if p.volumes_per_shell is None
        else [int(n) for n in p.volumes_per_shell],
        "BMin_s_per_mm2": _float(p.b_min_s_per_mm2),
        "BMax_s_per_mm2": _float(p.b_max_s_per_mm2),
        "RicianNoiseSigma": _float(p.rician_noise_sigma),
        "Masked": p.masked,
        "ValidVoxels": int(np.count_nonzero(np.isfinite(np.asarray(adc_um2_per_ms)))),
        "SnrEstimate": _float(p.snr_estimate),
        "SourceSeries": series,
        "GeneratedBy": [{"Name": "discquant", "Version": __version__}],
        "Software": "discquant",
        "SoftwareVersion": __version__,
    }
    assert tuple(meta) == ADC_SIDECAR_KEYS
    if p.source is not None:
        meta["Source"] = p.source
    cleaned: dict[str, Any] = finite_or_null(meta)
    return cleaned


def write_adc_nifti(
    adc_um2_per_ms: npt.ArrayLike,
    affine: npt.ArrayLike,
    output: str | Path,
    provenance: AdcProvenance,
) -> tuple[Path, Path]:
    """Write an ADC map as float32 NIfTI with the given affine, plus its JSON sidecar.

    The one writer of ADC maps: ``discquant adc`` (:func:`compute_and_write_adc`) and
    ``analyze`` (:func:`discquant.outputs.derivatives.write_adc_map`) both call it, so
    their files have one header and one sidecar schema (:func:`adc_sidecar`).

    Parameters
    ----------
    adc_um2_per_ms
        ADC in µm²/ms, NaN where invalid.
    affine
        4×4 voxel-to-RAS+ mm transform of the DWI the map was fitted from.
    output
        ``.nii`` or ``.nii.gz`` path; the sidecar goes next to it as ``.json``.
    provenance
        Where the map came from (:class:`AdcProvenance`).

    Returns
    -------
    (Path, Path)
        The NIfTI and sidecar paths.
    """
    import nibabel as nib

    out = Path(output)
    side = sidecar_path(out)  # also refuses a name that is not .nii/.nii.gz
    data = np.asarray(adc_um2_per_ms, dtype=np.float32)
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    set_scanner_space(img)  # qform/sform code 1 (sform only when sheared), units mm
    # NIfTI has no code for this unit: said in the header text, for a map read without
    # its sidecar (a user trial)
    img.header["descrip"] = b"ADC um2/ms (1e-3 mm2/s)"
    # NaN or inf is null: a bare NaN is not JSON and the BIDS validator rejects it
    text = json.dumps(adc_sidecar(data, provenance), indent=2, ensure_ascii=False, allow_nan=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_img, tmp_side = temporary_paths(out)
    try:
        nib.save(img, tmp_img)
        tmp_side.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp_img, out)
        os.replace(tmp_side, side)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(out)) from exc
    finally:
        for tmp in (tmp_img, tmp_side):
            if not tmp.is_dir():  # not ours: unlinking it hid the write's own error
                tmp.unlink(missing_ok=True)
    return out, side


def _read_mask(path: Path, shape: tuple[int, ...], affine: npt.NDArray[np.float64]) -> np.ndarray:
    import nibabel as nib

    if not path.is_file():
        from discquant.errors import InputNotFoundError

        raise InputNotFoundError("mask file does not exist", path=path)
    try:
        img = nib.load(path)
        data = np.asarray(img.dataobj)  # type: ignore[attr-defined]
    except Exception as exc:  # nibabel raises many types for damaged files
        raise InvalidInputError(f"not a readable NIfTI mask ({exc})", path=path) from exc
    if data.ndim == len(shape) + 1 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.shape != shape:
        raise InvalidInputError(
            f"mask shape {data.shape} does not match the DWI's {shape}", path=path
        )
    from discquant.io.nifti import affine_mm

    # in mm, as the DWI's (a mask saved with the DWI's micron header was refused)
    if not np.allclose(affine_mm(img), affine, atol=1e-3):
        raise InvalidInputError("mask is not on the DWI's grid (affines differ)", path=path)
    # NaN != 0: an all-NaN mask selected every voxel, and the sidecar said "Masked" (an
    # audit). An empty one was refused naming the DWI.
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(finite.size - finite.sum())
        raise InvalidInputError(
            f"mask holds {bad} voxels that are not finite (NaN or inf); a mask is 0 outside "
            "and non-zero inside",
            path=path,
        )
    inside = np.asarray(data != 0)
    if not inside.any():
        raise InvalidInputError("mask selects no voxel (all 0)", path=path)
    return inside


def _check_b_range(b_min_s_per_mm2: float | None, b_max_s_per_mm2: float | None) -> None:
    """Finite, non-negative limits, the lower one not above the upper one (checked before
    the import: they were refused only after it, as 'fewer than two shells' with range
    [nan, inf])."""
    for name, value in (("lowest", b_min_s_per_mm2), ("highest", b_max_s_per_mm2)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise InvalidInputError(
                f"the {name} b-value to use must be finite and ≥ 0 s/mm², got {value}"
            )
    lo, hi = b_min_s_per_mm2, b_max_s_per_mm2
    if lo is not None and hi is not None and lo > hi:
        raise InvalidInputError(
            f"the lowest b-value to use ({lo:g} s/mm²) is above the highest ({hi:g} s/mm²)"
        )


def compute_and_write_adc(
    input_path: str | Path,
    output: str | Path,
    *,
    bval: str | Path | None = None,
    bvec: str | Path | None = None,
    method: str = "wls",
    mask: str | Path | None = None,
    b_min_s_per_mm2: float | None = None,
    b_max_s_per_mm2: float | None = None,
    noise_sigma: str | float | None = None,
    threads: int | None = None,
) -> AdcMapResult:
    """Load a DWI (NIfTI + bval/bvec, or a DICOM/BIDS folder), fit ADC, write it.

    Parameters
    ----------
    input_path
        A DWI NIfTI file or a folder :func:`discquant.io.load.load_study` understands.
    output
        ``.nii``/``.nii.gz`` path of the ADC map.
    bval, bvec
        FSL files for a NIfTI input (default: next to it with the same stem).
    method, b_min_s_per_mm2, b_max_s_per_mm2, noise_sigma
        As :class:`~discquant.diffusion.adc.AdcModel` (``noise_sigma`` may be text).
    mask
        Optional NIfTI mask on the DWI grid.
    threads
        Worker threads of the fit.
    """
    from discquant.diffusion.adc import METHODS
    from discquant.io.load import load_study
    from discquant.output_paths import check_not_over_inputs, check_output_file

    src = Path(input_path)
    out = Path(output)
    # Fail before the (slow) import: a bad output name, a sidecar that cannot be written
    # (the map would be left without it), a bad method or thread count.
    _suffix(out)
    check_output_file(out)
    check_output_file(sidecar_path(out))
    if method not in METHODS:
        raise InvalidInputError(f"unknown ADC method {method!r}; choose one of {METHODS}")
    if threads is not None and threads < 1:
        raise InvalidInputError(f"threads must be at least 1, got {threads}")
    sigma = parse_noise_sigma(noise_sigma)
    _check_b_range(b_min_s_per_mm2, b_max_s_per_mm2)
    if mask is not None and not Path(mask).is_file():
        raise InputNotFoundError("mask file not found", path=mask)
    if not src.exists():
        raise InputNotFoundError("input does not exist", path=src)
    # The map would replace its own input (`adc dwi.nii.gz -o dwi.nii.gz` overwrote the DWI).
    named = [p for p in (src, bval, bvec, mask) if p is not None]
    for dest in (out, sidecar_path(out)):
        check_not_over_inputs(dest, [Path(p) for p in named])
    if src.is_dir():
        if bval is not None or bvec is not None:
            raise InvalidInputError("--bval/--bvec apply to a NIfTI input, not a folder", path=src)
        study = load_study(src)
    else:
        study = load_study(dwi=src, bval=bval, bvec=bvec)
    series = study.dwi
    if series is None or series.bvals_s_per_mm2 is None:
        # say why a diffusion series was not taken (e.g. its only b=0 file was truncated
        # and skipped, leaving one shell): the bare message hid it
        why = next((s.reason for s in study.series if "b-value" in s.reason), None)
        raise InvalidInputError(
            "no diffusion-weighted series with b-values found" + (f" ({why})" if why else ""),
            path=src,
        )
    log.info(
        "DWI: %s, %s, b = %s",
        series.description,
        series.image.shape,
        sorted({round(float(b)) for b in series.bvals_s_per_mm2}),
    )
    # ... nor any file the import read: `adc bids/sub-00 -o bids/sub-00/dwi/sub-00_dwi.nii.gz`
    # replaced the raw DWI (and its .json) with the map, exit 0; `-o FOLDER/t2.nii.gz`
    # replaced the T2 beside it.
    read = [f for s in study.series for f in _files_read(s.provenance.source_paths)]
    for dest in (out, sidecar_path(out)):
        check_not_over_inputs(dest, read)
    data = series.image.data
    if data.ndim != 4:
        raise InvalidInputError(f"the DWI must be 4D, got shape {data.shape}", path=src)
    mask_arr = None if mask is None else _read_mask(Path(mask), data.shape[:3], series.image.affine)
    try:
        model = AdcModel(
            series.bvals_s_per_mm2,
            series.bvecs,
            method=method,
            b_min_s_per_mm2=b_min_s_per_mm2,
            b_max_s_per_mm2=b_max_s_per_mm2,
            noise_sigma=sigma,
        )
        fit = model.fit(data, mask_arr, n_threads=threads)
    except InvalidInputError as exc:  # about this DWI (its shells, its background)
        if exc.path is not None:
            raise
        where = src
        if isinstance(exc, BvecLengthError):  # the .bvec, not the DWI (an audit)
            where = series.provenance.bvec_path or src
        raise InvalidInputError(exc.reason, path=where) from exc
    if fit.n_valid == 0:  # an all-NaN map written with exit 0 (an audit)
        raise InvalidInputError(why_no_valid_voxel(data, model, fit, mask_arr), path=src)
    not_trace = directional_shells(model.used_shells, model.bvecs)
    if not_trace:  # a single direction was written as "the trace", silently (an audit)
        log.warning("%s", _quantity(not_trace))
    provenance = AdcProvenance.of_fit(
        fit,
        b_min_s_per_mm2=b_min_s_per_mm2,
        b_max_s_per_mm2=b_max_s_per_mm2,
        masked=mask is not None,
        not_trace_bvals_s_per_mm2=not_trace,
        # the series as analyze's sidecar and results name it: its description and file
        # (relative to the folder read, patient names and UIDs withheld)
        source_series={
            "Role": series.role.value,
            "Description": series.description,
            "File": study.series_file(series),
        },
    )
    written, side = write_adc_nifti(fit.adc_um2_per_ms, series.image.affine, out, provenance)
    n_fitted = int(np.prod(data.shape[:3]) if mask_arr is None else mask_arr.sum())
    return AdcMapResult(
        written,
        side,
        fit.method,
        fit.n_valid,
        n_fitted,
        fit.bvals_used_s_per_mm2,
        series.description,
    )
