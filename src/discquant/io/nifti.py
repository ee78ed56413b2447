"""Read NIfTI images with their BIDS sidecars (.json, .bval, .bvec), validated.

Used for explicit files, BIDS subject folders and dcm2niix's output alike, so every
image reaches role assignment through the same checks: finite values, one b-value per
volume, one gradient direction per volume.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from discquant.errors import InputNotFoundError, InvalidInputError, UnreadableImageError
from discquant.io.privacy import (
    header_description_tokens,
    identifier_tokens,
    redact_sidecar_descriptions,
    scrub_sidecar,
)
from discquant.io.study import SERIES_SKIPPED, Provenance, Volume

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass
class RawImage:
    """An image with what is known about it, before it gets a role.

    ``hint`` is a role the user or the file layout asserts (``"t2"``, ``"dwi"``, ``"adc"``
    from explicit arguments or BIDS suffixes); ``hint_reason`` says where it came from.
    """

    path: Path
    volume: Volume
    description: str
    sidecar: dict[str, Any] = field(default_factory=dict)
    bvals: npt.NDArray[np.float64] | None = None
    bvecs: npt.NDArray[np.float64] | None = None
    provenance: Provenance = field(default_factory=Provenance)
    hint: str | None = None
    hint_reason: str = ""
    notes: list[str] = field(default_factory=list)
    """Extra facts for the role's reason (e.g. merged dcm2niix outputs)."""
    warnings: list[str] = field(default_factory=list)
    """What the study's warnings must say about this file (e.g. :func:`header_warning`)."""
    identifiers: frozenset[str] = frozenset()
    """The patient's ID and name from the DICOM header, as label tokens, to keep them out
    of the subject label (:func:`discquant.io.privacy.label_holds_identifier`); in
    memory only."""


def is_nifti(path: Path) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``, any case)."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: Path) -> str:
    """File name without ``.nii`` / ``.nii.gz``."""
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def sibling(path: Path, ext: str) -> Path | None:
    """The sidecar ``<stem><ext>`` next to a NIfTI file, if it exists."""
    candidate = path.with_name(nifti_stem(path) + ext)
    return candidate if candidate.is_file() else None


SPACE_UNIT_TO_MM = {"mm": 1.0, "micron": 1e-3, "meter": 1e3}
"""NIfTI ``xyzt_units`` spatial codes and their size in mm."""


def affine_mm(img: Any) -> npt.NDArray[np.float64]:
    """A nibabel image's affine in mm, whatever its header's spatial unit.

    Units other than mm (``xyzt_units`` micron from microscopy-style converters, meter)
    were taken as mm: a 0.6 mm T2 read as 600 mm voxels. "unknown" is mm, as scanners
    write it.
    """
    affine = np.asarray(img.affine, dtype=np.float64)
    affine[:3, :] *= SPACE_UNIT_TO_MM.get(img.header.get_xyzt_units()[0], 1.0)
    return affine


FORMS_TOLERANCE_MM = 1.0
"""qform and sform placing a corner of the image further apart than this disagree."""


def header_warning(path: Path) -> str | None:
    """A warning about where a NIfTI's header places the image, or None.

    - qform and sform both set and placing the image differently: nibabel, and so
      discquant, uses the sform; ITK-based viewers (ITK-SNAP, 3D Slicer's ITK reader) use
      the qform. With a head-feet flip in the sform every level name was reversed (the
      real L5-S1 named T12-L1), exit 0, and nothing said why (a user trial). None when
      they agree within :data:`FORMS_TOLERANCE_MM`.
    - neither set (both codes 0): the image has no orientation; nibabel's fallback
      affine (voxel sizes only) read it as axial without a word (a user trial).
    """
    import nibabel as nib

    try:
        header = nib.load(path).header
        qform, q_code = header.get_qform(coded=True)  # type: ignore[attr-defined]
        sform, s_code = header.get_sform(coded=True)  # type: ignore[attr-defined]
    except Exception:  # read_volume reports a damaged file; this is only an extra check
        return None
    if not q_code and not s_code:
        return (
            f"{path.name}: its header gives no orientation (qform and sform codes 0): read "
            "with voxel sizes only, so its plane, orientation and level names are guesses"
        )
    if qform is None or sform is None or not q_code or not s_code:
        return None
    shape = [max(int(n), 1) for n in header.get_data_shape()[:3]]  # type: ignore[attr-defined]
    shape += [1] * (3 - len(shape))  # a 2-D slice (its traceback stopped the study: an audit)
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
         for k in (0, shape[2] - 1)]
    ).T  # fmt: skip
    apart = float(np.max(np.linalg.norm((qform @ corners - sform @ corners)[:3], axis=0)))
    if apart <= FORMS_TOLERANCE_MM:
        return None
    return (
        f"{path.name}: its qform and sform place the image differently (corners up to "
        f"{apart:.0f} mm apart); the sform is used, as nibabel does (ITK-based viewers use "
        "the qform): check the orientation and the level names"
    )


def _compression_hint(path: Path) -> str | None:
    """What to rename an unreadable file to when its name and its compression disagree:
    nibabel goes by the name, and said only "Cannot work out file type" of a gzip file
    named ``.nii`` (a user trial)."""
    import gzip

    def nifti_header(first: bytes) -> bool:  # sizeof_hdr: 348 (NIfTI-1) or 540 (NIfTI-2)
        return len(first) >= 4 and any(
            int.from_bytes(first[:4], order) in (348, 540) for order in ("little", "big")
        )

    try:
        with open(path, "rb") as fh:
            start = fh.read(4)
        gzipped = start[:2] == b"\x1f\x8b"
        if gzipped:
            with gzip.open(path, "rb") as unzipped:
                start = unzipped.read(4)
    except Exception:  # a damaged gzip stream raises zlib.error: no hint, nibabel's error
        return None
    if not nifti_header(start):  # not a NIfTI file whatever its name: no renaming helps
        return None
    named_gz = path.name.lower().endswith(".gz")
    if gzipped and not named_gz:
        return f"the file is gzip-compressed but not named .gz: rename it to {path.name}.gz"
    if named_gz and not gzipped:
        return f"the file is not gzip-compressed but named .gz: rename it to {path.name[:-3]}"
    return None


def read_volume(path: Path, *, nan_as_zero: bool = False) -> Volume:
    """Load a NIfTI file as a float32 :class:`Volume`; reject NaN/Inf and empty images.

    With ``nan_as_zero`` (ADC maps), NaN voxels are read as 0, the value scanners store
    where no ADC was fitted: discquant's own ADC maps mark such voxels NaN. Inf is still
    refused.
    """
    import nibabel as nib

    if not path.exists():
        if path.is_symlink():  # skipped like a damaged file where it has no role
            raise UnreadableImageError(
                "broken symbolic link (its target does not exist)", path=path
            )
        raise InputNotFoundError("file does not exist", path=path)
    if path.is_dir():  # --t2 DICOM_FOLDER read "Cannot work out file type" (an audit)
        raise UnreadableImageError(
            "a folder, where a NIfTI file is expected: give a DICOM folder as the input "
            "(discquant analyze FOLDER), not with --t2/--dwi/--adc",
            path=path,
        )
    try:
        img = nib.load(path)
        if not isinstance(img, nib.Nifti1Pair):  # Nifti1/2 images and pairs
            # nibabel reads Analyze, MGH, MINC, ...: their headers lack NIfTI's spatial
            # units, and a .mgz or Analyze .img ended in a traceback (an audit)
            kind = (
                "Analyze"
                if isinstance(img, nib.AnalyzeImage)
                else type(img).__name__.removesuffix("Image") or "another"
            )
            raise UnreadableImageError(
                f"{kind} format, not NIfTI: convert it to NIfTI (.nii.gz)", path=path
            )
        complex_valued = np.issubdtype(img.get_data_dtype(), np.complexfloating)
        if not complex_valued:
            data = np.asarray(img.get_fdata(dtype=np.float32))
    except UnreadableImageError:
        raise
    except Exception as exc:  # nibabel raises many types for damaged files
        hint = _compression_hint(path)
        raise UnreadableImageError(
            hint or f"not a readable NIfTI image ({exc})", path=path
        ) from exc
    if complex_valued:
        # get_fdata keeps the real part with only a ComplexWarning: ADCs of the real part
        # of phase-rotated signals were wrong (2.16 for 1.39 µm²/ms) and exited 0.
        # Unreadable: an extra complex image in a folder is skipped like a damaged one.
        raise UnreadableImageError("image is complex-valued; give the magnitude images", path=path)
    affine = affine_mm(img)
    if data.ndim == 2:  # a bare 2D slice: make the slice axis explicit
        data = data[:, :, None]
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim not in (3, 4) or data.size == 0:
        raise InvalidInputError(f"image has shape {data.shape}; expected 3D or 4D", path=path)
    if nan_as_zero:
        nan = np.isnan(data)
        if nan.any():
            log.info("%s: %d NaN voxels (no ADC fitted) read as 0", path.name, int(nan.sum()))
            data[nan] = 0.0
    bad = ~np.isfinite(data)
    if bad.any():
        n_nan = int(np.isnan(data).sum())
        n_inf = int(bad.sum()) - n_nan
        raise InvalidInputError(
            f"image contains {n_nan} NaN and {n_inf} Inf voxels; "
            "replace them (e.g. with 0) before import",
            path=path,
        )
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InvalidInputError("image affine is singular or not finite", path=path)
    return Volume(data=data, affine=affine)


def n_volumes(volume: Volume) -> int:
    return volume.shape[3] if len(volume.shape) == 4 else 1


MAX_B_S_PER_MM2 = 1e5
"""Larger b-values are taken for another unit (s/m²) and refused, here and by
:class:`discquant.diffusion.adc.AdcModel`: research DWI goes to about 10,000 s/mm², the
same b-values in s/m² are 10⁶ times larger."""


def bvalue_too_large(top: float) -> str | None:
    """Why a largest b-value of ``top`` cannot be in s/mm², or None when it can be.

    Above :data:`MAX_B_S_PER_MM2` it is another unit: s/m² (×10⁶) from 10⁷ on, for any
    diffusion-weighted shell (b ≥ 50 s/mm²) reads 5×10⁷ and more there. The one check of
    the b-value files (:func:`read_bvals`) and of :class:`discquant.diffusion.adc.AdcModel`.

    >>> bvalue_too_large(800.0) is None
    True
    >>> bvalue_too_large(8e8)
    'largest b-value is 8e+08, beyond any diffusion protocol in s/mm²: s/m²? divide by 10⁶'
    """
    if top <= MAX_B_S_PER_MM2:
        return None
    unit = "s/m²? divide by 10⁶" if top >= 1e7 else "another unit?"
    return f"largest b-value is {top:.3g}, beyond any diffusion protocol in s/mm²: {unit}"


MIN_WEIGHTED_B_S_PER_MM2 = 20.0
"""A largest b-value below this (and above a b≈0 of 0.05) is taken for ms/µm² and refused."""


def _loadtxt(path: Path, *, ndmin: Literal[1, 2]) -> npt.NDArray[np.float64]:
    """``numpy.loadtxt`` without its warning on an empty file (which would add lines to a
    one-line error: the empty file is reported by the count check of the caller)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return np.loadtxt(path, dtype=np.float64, ndmin=ndmin)


def read_bvals(path: Path, *, image: Path, n_vols: int) -> npt.NDArray[np.float64]:
    """FSL/BIDS .bval: one row of b-values in s/mm², one per volume of ``image``."""
    if not path.is_file():
        raise InputNotFoundError("b-value file does not exist", path=path)
    try:
        bvals = _loadtxt(path, ndmin=1).ravel()
    except ValueError as exc:
        raise InvalidInputError(f"not a b-value file ({exc})", path=path) from exc
    if bvals.size != n_vols:
        raise InvalidInputError(
            f"has {bvals.size} b-values but {image.name} has {n_vols} volumes", path=path
        )
    if not np.isfinite(bvals).all() or (bvals < 0).any():
        raise InvalidInputError("b-values must be finite and non-negative", path=path)
    top = float(bvals.max(initial=0.0))
    # Clinical b-values are 50-10,000 s/mm²; the same numbers in another unit are off by
    # 10⁶ (s/m²) or 10³ (ms/µm²), and fitting them gives ADCs off by that factor.
    if too_large := bvalue_too_large(top):
        raise InvalidInputError(f"{too_large} (discquant reads s/mm²)", path=path)
    if MIN_WEIGHTED_B_S_PER_MM2 > top > 0.05:  # above Philips' b≈0 of 0.001-0.004
        raise InvalidInputError(
            f"largest b-value is {top:g}: ms/µm²? discquant reads s/mm² (multiply by 1000)",
            path=path,
        )
    return bvals


def read_bvecs(
    path: Path,
    *,
    image: Path,
    n_vols: int,
    bvals: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """FSL/BIDS .bvec (3 rows × N) returned as ``(N, 3)``.

    NaN directions of b ≈ 0 volumes (b ≤ 50 s/mm², given ``bvals``), as some converters
    and dipy's ``small_64D`` write them, carry no direction and are read as zeros.
    """
    if not path.is_file():
        raise InputNotFoundError("gradient-direction file does not exist", path=path)
    try:
        bvecs = _loadtxt(path, ndmin=2)
    except ValueError as exc:
        raise InvalidInputError(f"not a b-vector file ({exc})", path=path) from exc
    if bvecs.shape == (n_vols, 3) and n_vols != 3:
        bvecs = bvecs.T  # tolerate the transposed (N × 3) layout
    if bvecs.shape != (3, n_vols):
        raise InvalidInputError(
            f"has shape {bvecs.shape}; expected 3 rows of {n_vols} values for {image.name}",
            path=path,
        )
    if bvals is not None:
        b0 = bvals <= 50.0
        bvecs[:, b0] = np.where(np.isfinite(bvecs[:, b0]), bvecs[:, b0], 0.0)
    if not np.isfinite(bvecs).all():
        raise InvalidInputError(
            "b-vectors must be finite (NaN on a diffusion-weighted volume)", path=path
        )
    return np.ascontiguousarray(bvecs.T)


class SidecarError(InvalidInputError):
    """A JSON sidecar that cannot be read as JSON (:func:`load_nifti` reads its image
    without it, with a warning)."""


def _read_json_object(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is no error
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise SidecarError(f"not a readable JSON sidecar ({exc})", path=path) from exc
    if not isinstance(raw, dict):
        raise InvalidInputError("JSON sidecar is not an object", path=path)
    return raw


def sidecar_identifiers(sidecar: dict[str, Any]) -> frozenset[str]:
    """The patient identifiers a sidecar holds before scrubbing (dcm2niix ``-ba n`` writes
    PatientName, PatientID, AccessionNumber, PatientBirthDate), as
    :func:`~discquant.io.privacy.identifier_tokens` gives them for DICOM headers.

    dcm2niix writes the birth date as ``YYYY-MM-DD``; it is compared as ``YYYYMMDD``.
    """
    birth = str(sidecar.get("PatientBirthDate") or "")
    digits = re.sub(r"\D", "", birth)
    return identifier_tokens(
        sidecar.get("PatientID"),
        sidecar.get("PatientName"),
        identity_removed=sidecar.get("PatientIdentityRemoved"),
        accession_number=sidecar.get("AccessionNumber"),
        other_patient_ids=sidecar.get("OtherPatientIDs"),
        birth_date=digits if len(digits) == 8 else birth,
    )


def load_nifti(
    path: Path,
    *,
    bval: Path | None = None,
    bvec: Path | None = None,
    keep_phi: bool = False,
    hint: str | None = None,
    hint_reason: str = "",
) -> RawImage:
    """Load one NIfTI file with its sidecars (given, or found next to it by name).

    Raises
    ------
    InputNotFoundError
        ``path`` (or a given ``bval``/``bvec``) does not exist.
    InvalidInputError
        NaN/Inf voxels, b-value or b-vector count differs from the number of volumes.
    """
    path = Path(path)
    if hint is None and nifti_stem(path).lower().endswith("adc"):
        hint, hint_reason = "adc", "file name ends in ADC"
    volume = read_volume(path, nan_as_zero=hint == "adc")
    nv = n_volumes(volume)
    bval = Path(bval) if bval is not None else sibling(path, ".bval")
    bvec = Path(bvec) if bvec is not None else sibling(path, ".bvec")
    bvals = read_bvals(bval, image=path, n_vols=nv) if bval is not None else None
    bvecs = read_bvecs(bvec, image=path, n_vols=nv, bvals=bvals) if bvec is not None else None
    sidecar_path = sibling(path, ".json")
    file_warnings = [w for w in (header_warning(path),) if w is not None]
    try:
        raw_sidecar = _read_json_object(sidecar_path)
    except SidecarError as exc:
        # The image is read without it: a T1's sidecar with a trailing comma stopped the
        # whole study, and skipping the image lost a T2 whose role the sidecar would have
        # told (the file name or the layout may still tell it; a user trial, a review).
        raw_sidecar = {}
        file_warnings.append(
            f"{exc.path.name if exc.path else path.name}: {exc.reason}; "
            f"{path.name} read without it (no echo or repetition time)"
        )
        sidecar_path = None
    sidecar = scrub_sidecar(raw_sidecar, keep_phi=keep_phi)
    identifiers = sidecar_identifiers(raw_sidecar)
    if not keep_phi:  # a hand-made or dcm2niix -ba n sidecar's description, as DICOM's
        redact_sidecar_descriptions(sidecar, header_description_tokens(raw_sidecar, identifiers))
    description = str(sidecar.get("SeriesDescription") or nifti_stem(path))
    sources = tuple(p for p in (path, bval, bvec, sidecar_path) if p is not None)
    series_number = sidecar.get("SeriesNumber")
    provenance = Provenance(
        source_paths=sources,
        series_number=int(series_number)
        if isinstance(series_number, int)
        or (isinstance(series_number, float) and math.isfinite(series_number))
        else None,
        sidecar=sidecar,
        bvec_path=bvec,
    )
    log.debug("read %s: shape %s", path.name, volume.shape)
    return RawImage(
        path=path,
        volume=volume,
        description=description,
        sidecar=sidecar,
        bvals=bvals,
        bvecs=bvecs,
        provenance=provenance,
        hint=hint,
        hint_reason=hint_reason,
        identifiers=identifiers,
        warnings=file_warnings,
    )


def _bids_hint(path: Path) -> tuple[str | None, str]:
    stem = nifti_stem(path)
    suffix = stem.rsplit("_", 1)[-1]
    folder = path.parent.name
    if folder == "anat" and suffix == "T2w":
        return "t2", "BIDS anat/*_T2w"
    if folder == "dwi" and suffix == "dwi":
        return "dwi", "BIDS dwi/*_dwi"
    if folder == "dwi" and suffix == "sbref":
        return "other", "BIDS dwi/*_sbref (the DWI's single-band reference)"
    if suffix.lower() == "adc" or stem.lower().endswith("_adc"):
        return "adc", f"BIDS {folder}/*_{suffix}"
    return None, ""


def holds_nifti(folder: Path) -> bool:
    """Whether ``folder`` is a folder with a NIfTI file directly in it."""
    return folder.is_dir() and any(is_nifti(p) for p in folder.iterdir())


def is_bids_subject(folder: Path) -> bool:
    """A folder with ``anat/`` or ``dwi/`` (directly or under ``ses-*/``) holding NIfTI."""
    for sub in ("anat", "dwi"):
        for cand in [folder / sub, *sorted(folder.glob(f"ses-*/{sub}"))]:
            if holds_nifti(cand):
                return True
    return False


def bids_sessions(folder: Path) -> list[Path]:
    """The ``ses-*`` folders of a BIDS subject that hold NIfTI in ``anat/`` or ``dwi/``."""
    return [
        ses
        for ses in sorted(folder.glob("ses-*"))
        if any(
            (ses / sub).is_dir() and any(is_nifti(p) for p in (ses / sub).iterdir())
            for sub in ("anat", "dwi")
        )
    ]


def load_bids_subject(folder: Path, *, keep_phi: bool = False) -> tuple[list[RawImage], list[str]]:
    """All NIfTI images in a BIDS subject's (or session's) ``anat/`` and ``dwi/`` folders,
    and the warnings of the files skipped (:func:`_load_images`).

    ``anat/*_T2w`` is asserted T2, ``dwi/*_dwi`` asserted DWI (and then validated),
    ``*_ADC`` asserted ADC; other files (T1w, ...) are kept and classified as usual.

    Raises
    ------
    InvalidInputError
        The subject holds several sessions: one study is one session (a T2 of one visit
        and a DWI of another would otherwise be measured together); give the session
        folder (``discquant cohort`` on a BIDS root runs each session as its own study).
    """
    sessions = bids_sessions(folder)
    if len(sessions) > 1:
        names = ", ".join(s.name for s in sessions)
        raise InvalidInputError(
            f"holds {len(sessions)} sessions ({names}); analyse one session folder at a "
            f"time, e.g. {sessions[0]}",
            path=folder,
        )
    paths = [
        path
        for sub in ("anat", "dwi")
        for cand in [folder / sub, *sorted(folder.glob(f"ses-*/{sub}"))]
        if cand.is_dir()
        for path in sorted(p for p in cand.iterdir() if is_nifti(p))
    ]
    return _load_images(paths, folder, keep_phi=keep_phi, hints=_bids_hint)


def load_nifti_folder(folder: Path, *, keep_phi: bool = False) -> tuple[list[RawImage], list[str]]:
    """Every NIfTI file directly in ``folder`` (e.g. a dcm2niix output folder), and the
    warnings of the files that could not be read (:func:`_load_images`).

    Images whose sidecars give the same ``SeriesNumber`` are one series: their diffusion
    pieces are joined (:func:`merge_diffusion_pieces`), as when discquant converts the
    DICOM itself.
    """
    paths = sorted(p for p in folder.iterdir() if is_nifti(p))
    images, skipped = _load_images(paths, folder, keep_phi=keep_phi, hints=lambda p: (None, ""))
    series: dict[object, list[RawImage]] = {}
    for i, image in enumerate(images):
        number = image.provenance.series_number
        series.setdefault(("series", number) if number is not None else ("file", i), []).append(
            image
        )
    return [m for group in series.values() for m in merge_diffusion_pieces(group)], skipped


def merge_diffusion_pieces(pieces: list[RawImage]) -> list[RawImage]:
    """Join dcm2niix's pieces of one diffusion series that share a grid into one DWI.

    dcm2niix writes a series whose b=0 images are ``ORIGINAL`` and whose b>0 images are
    ``TRACEW`` (Siemens) as two files (``…_5`` and ``…_5a``), each with one b-value:
    alone, neither is a DWI. ``pieces`` are the images of one series.
    """
    diff = [p for p in pieces if p.bvals is not None]
    rest = [p for p in pieces if p.bvals is None]
    if len(diff) < 2:
        return pieces
    ref = diff[0].volume
    same_grid = all(
        p.volume.shape[:3] == ref.shape[:3] and np.allclose(p.volume.affine, ref.affine, atol=1e-3)
        for p in diff
    )
    if not same_grid:
        return pieces
    diff.sort(key=lambda p: float(np.min(p.bvals)) if p.bvals is not None else 0.0)
    datas = [p.volume.data if p.volume.data.ndim == 4 else p.volume.data[..., None] for p in diff]
    bvals = np.concatenate([p.bvals for p in diff if p.bvals is not None])
    bvecs = np.concatenate(
        [p.bvecs if p.bvecs is not None else np.zeros((n_volumes(p.volume), 3)) for p in diff]
    )
    top = diff[-1]  # highest b: carries the TRACEW ImageType when there is one
    merged = replace(
        top,
        volume=Volume(data=np.concatenate(datas, axis=3).astype(np.float32), affine=ref.affine),
        bvals=bvals,
        bvecs=bvecs,
        notes=[*top.notes, f"joined the {len(diff)} parts dcm2niix wrote separately"],
        provenance=replace(
            top.provenance,
            source_paths=tuple(dict.fromkeys(sp for p in diff for sp in p.provenance.source_paths)),
            bvec_path=None,  # the volume numbers of an error count through every part
        ),
    )
    return [merged, *rest]


def _load_images(
    paths: list[Path],
    folder: Path,
    *,
    keep_phi: bool,
    hints: Callable[[Path], tuple[str | None, str]],
) -> tuple[list[RawImage], list[str]]:
    """Load each image; one without an asserted role (a T1w, a localiser) that cannot be
    opened at all is skipped with a warning naming it relative to ``folder``, as a DICOM
    series is: it must not keep the T2 and the DWI from being analysed. Content errors
    (b-values that do not match, NaN voxels) stay errors, as does a file with a role or
    every file failing."""
    images: list[RawImage] = []
    skipped: list[str] = []
    first_error: UnreadableImageError | None = None
    for path in paths:
        hint, why = hints(path)
        try:
            images.append(load_nifti(path, keep_phi=keep_phi, hint=hint, hint_reason=why))
        except UnreadableImageError as exc:
            if hint is not None:
                raise
            first_error = first_error or exc
            msg = f"{path.relative_to(folder)}: {exc.reason}{SERIES_SKIPPED}"
            log.warning(msg)
            skipped.append(msg)
    if not images and first_error is not None:
        raise first_error
    return images, skipped


QFORM_TOLERANCE_MM = 1e-4
"""Largest difference between the quaternion form and the affine for a qform to be set."""


def set_scanner_space(img: Any) -> Any:
    """Give a ``nibabel.Nifti1Image`` its affine as scanner space (code 1) in mm.

    Both the sform and the qform get the affine, so that every viewer places the image
    the same way; a sheared affine (possible in a NIfTI input) has no quaternion, and
    nibabel approximated the qform silently (0.15 mm off on one seen) under the same
    code: such an image gets the sform only (qform code 0). Returns ``img``.
    """
    affine = np.asarray(img.affine, dtype=np.float64)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if not np.allclose(img.get_qform(), affine, rtol=0.0, atol=QFORM_TOLERANCE_MM):
        img.set_qform(None, code=0)
    img.header.set_xyzt_units(xyz="mm")
    return img
