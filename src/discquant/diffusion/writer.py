"""ADC maps on disk: from a DWI file or DICOM folder to a float32 NIfTI with a JSON sidecar.

The NIfTI keeps the DWI's affine and stores ADC in µm²/ms (10⁻³ mm²/s) as float32, NaN
where the voxel is invalid. The sidecar (same name, ``.json``) says what the numbers are:
unit, method, shells used, noise correction, discquant version. Both files are written
to temporary names and renamed, so a failure never leaves a half-written map.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from discquant.diffusion.adc import AdcFit, AdcModel
from discquant.errors import InputNotFoundError, InvalidInputError
from discquant.io.nifti import set_scanner_space

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


def write_adc_nifti(
    fit: AdcFit,
    affine: npt.ArrayLike,
    output: str | Path,
    *,
    source: str | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``fit.adc_um2_per_ms`` as float32 NIfTI with the given affine, plus sidecar.

    Parameters
    ----------
    fit
        The ADC fit.
    affine
        4×4 voxel-to-RAS+ mm transform of the DWI the map was fitted from.
    output
        ``.nii`` or ``.nii.gz`` path; the sidecar goes next to it as ``.json``.
    source
        A name for the input to record in the sidecar. The command line leaves it out:
        file and folder names can carry patient names.
    settings
        Extra keys for the sidecar (``BMin_s_per_mm2``, ...).

    Returns
    -------
    (Path, Path)
        The NIfTI and sidecar paths.
    """
    import nibabel as nib

    from discquant import __version__

    out = Path(output)
    side = sidecar_path(out)  # also refuses a name that is not .nii/.nii.gz
    aff = np.asarray(affine, dtype=np.float64)
    img = nib.Nifti1Image(np.asarray(fit.adc_um2_per_ms, dtype=np.float32), aff)
    set_scanner_space(img)
    img.header["descrip"] = b"ADC um2/ms (1e-3 mm2/s)"
    meta: dict[str, Any] = {
        "Quantity": "apparent diffusion coefficient of the trace (mean over directions)",
        "Units": "um^2/ms",  # as the analyze outputs (BIDS/CMIXF style)
        "UnitsNote": "µm²/ms = 1e-3 mm²/s; multiply by 1000 for the 1e-6 mm²/s of scanner maps",
        "InvalidValue": "NaN",
        "Method": fit.method,
        "BValuesUsed_s_per_mm2": [round(b, 6) for b in fit.bvals_used_s_per_mm2],
        "VolumesPerShell": list(fit.volumes_per_shell),
        "RicianNoiseSigma": fit.noise_sigma,
        "ValidVoxels": fit.n_valid,
        "Software": "discquant",
        "SoftwareVersion": __version__,
    }
    if source is not None:
        meta["Source"] = source
    meta.update(settings or {})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_img, tmp_side = temporary_paths(out)
    try:
        nib.save(img, tmp_img)
        tmp_side.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
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
    return np.asarray(data != 0)


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
        raise InvalidInputError(exc.reason, path=src) from exc
    settings: dict[str, Any] = {
        "BMin_s_per_mm2": b_min_s_per_mm2,
        "BMax_s_per_mm2": b_max_s_per_mm2,
        "Masked": mask is not None,
        # the series as analyze's sidecar and results name it: its description and file
        # (relative to the folder read, patient names and UIDs withheld)
        "SourceSeries": {
            "Role": series.role.value,
            "Description": series.description,
            "File": study.series_file(series),
        },
    }
    written, side = write_adc_nifti(fit, series.image.affine, out, settings=settings)
    n_fitted = int(np.prod(data.shape[:3]) if mask_arr is None else mask_arr.sum())
    return AdcMapResult(written, side, fit.method, fit.n_valid, n_fitted, fit.bvals_used_s_per_mm2)
