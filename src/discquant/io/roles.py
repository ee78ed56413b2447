"""Give each image exactly one role, with the reason, and order them best first.

Rules (documented in docs/import.md):

* orientation comes from the affine: the slice normal is the slice axis (the voxel axis
  of a single slice, else the one with the largest spacing when the voxels are
  anisotropic, or the odd one out when two axes share it; else the one of clearly the
  shortest extent, else the third; see :func:`slice_axis`), and its dominant RAS
  component names the plane
  (x → sagittal, y → coronal, z → axial); ``oblique`` when no component exceeds 0.75
  (more than ~41° from every plane);
* ``adc``: ImageType contains ``ADC`` or the file is named ``*_ADC``, and it holds no
  b-values of two shells (which make it a DWI) and one volume (several: ``other``, with a
  warning); stored values are scaled to µm²/ms by a magnitude rule
  (:func:`adc_scale_to_um2_per_ms`);
* ``trace``: ImageType contains ``TRACEW`` and the images hold one b-value shell;
* ``dwi``: b-values with at least two distinct shells. A scanner series of b = 0 plus
  trace-weighted (TRACEW) images at b > 0 is ``dwi``: a trace image is the geometric
  mean over three orthogonal directions, so its mono-exponential decay gives the mean
  diffusivity, which is what the ADC engine fits;
* ``t2``: sagittal and T2-weighted (TE ≥ 60 ms and TR ≥ 1500 ms from the sidecar, no
  inversion pulse; or, without timing, a T2 hint in the description); not a phase image,
  and of a Dixon series only the water image;
* ``other``: everything else, with why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
from nibabel.affines import voxel_sizes

from discquant.errors import InvalidInputError
from discquant.io.nifti import RawImage, n_volumes
from discquant.io.study import Series, SeriesRole, Volume
from discquant.results import SPINE_LABEL_VALUES

T2_MIN_TE_MS = 60.0
T2_MIN_TR_MS = 1500.0
T1_MAX_TE_MS = 40.0
T1_MAX_TR_MS = 1000.0
ADC_MAP_VOLUMES = "an ADC map has one; not used"
"""Why an image that looks like an ADC map but holds several volumes (an exponential ADC
beside it, a map per b-value) is not used: which volume is the ADC cannot be told."""
NO_B_VALUES = "not used: their b-values cannot be told (private tags removed by an anonymiser?)"
"""Why diffusion volumes that all read b = 0 are not used: dcm2niix writes 0 for a b-value
it cannot find, and such a series was taken for a b = 0 "trace" image without a word (an
audit); a separate b = 0 series of several volumes reads the same."""
SHELL_TOLERANCE_S_PER_MM2 = 5.0
SHELL_RELATIVE_TOLERANCE = 0.05
"""b-values within max(5 s/mm², 5 %) of a shell's smallest member belong to it: Philips
writes b = 0.001 ... 0.004 for its b≈0 volumes, scanners round nominal b-values, and
per-volume b-values spread around a shell (995/1000/1016 were split into two shells,
and the fit then mixed one direction's ADC with the trace). Not 20 s/mm² (dipy's
default, used until 2026-12-07): IVIM protocols acquire 0/10/20/30/50/80/100, which it
merged into shells at b = 10, 40 and 90 that were never acquired (an audit)."""


def same_shell(shell_start: float, b: float, tol: float = SHELL_TOLERANCE_S_PER_MM2) -> bool:
    """Whether ``b`` (≥ ``shell_start``, the shell's smallest b-value) joins that shell."""
    return b - shell_start <= max(tol, SHELL_RELATIVE_TOLERANCE * b)


ADC_PLAUSIBLE_MEDIAN_UM2_PER_MS = (0.05, 10.0)
"""Median of the positive ADC voxels after scaling must fall here (tissue ADC is
0.3-3.2 µm²/ms; free water at 37 °C is 3.0). The window spans a factor 200, less than
the factor 1000 between candidate units, so at most one unit fits."""
ADC_MAX_IMPOSSIBLE_SHARE = 0.05
"""Share of the positive voxels that may lie above the plausible window in the unit
chosen (noise of the fit); tissue 1000× too high is far more than this."""
ADC_MIN_TISSUE_SHARE = 0.1
"""Share of the positive voxels that must lie in the plausible window in that unit."""
ADC_CANDIDATE_SCALES: tuple[tuple[float, str], ...] = (
    (1e-3, "10⁻⁶ mm²/s (the usual scanner ADC unit)"),
    (1.0, "10⁻³ mm²/s = µm²/ms"),
    (1e3, "mm²/s"),
    (1e9, "m²/s"),
)

_LOCALIZER = re.compile(r"(?<![a-z])loc|scout|survey|locali[sz]er|3-?plane|aahead", re.I)
_T2_HINT = re.compile(r"t2", re.I)
_T1_HINT = re.compile(r"t1", re.I)
_IR_HINT = re.compile(r"stir|tirm|flair|\bir\b", re.I)


ANISOTROPY = 1.5
"""Largest / smallest voxel spacing above which the voxels are anisotropic and the slice
axis is told by spacing (clinical slices are 3-5 mm against 0.3-1.2 mm in plane)."""
SAME_SPACING = 1.1
"""Two spacings within this factor are the same: the two in-plane axes of a series share
their pixel spacing, so when the two largest spacings are the same the third axis, the odd
one out, is the slice axis (1 mm slices resampled in plane to 1.6 mm)."""
SHORTER_EXTENT = 0.75
"""With isotropic voxels, an axis whose extent (mm) is at most this share of each other
axis's extent is the slice axis (the acquisition covered less along it). Nearer than
that, the extents do not tell: a sagittal crop 60 (S-I) × 221 (A-P) × 67 (L-R) mm is
shorter from top to bottom than from side to side, and a share of 0.9 read it as axial
in every storage order; the third stored axis, as scanners store, is taken instead."""


def slice_axis(affine: npt.NDArray[np.float64], shape: Sequence[int] | None = None) -> int:
    """The voxel axis that steps between slices.

    A single slice (an axis of length 1 in ``shape``) is its own answer. With anisotropic
    voxels (largest spacing over :data:`ANISOTROPY` × the smallest) it is the axis of the
    largest spacing (a sagittal series stored in RAS voxel order, as
    ``nibabel.as_closest_canonical`` or fslreorient2std write it, has its slices on the
    first axis), unless two axes share the largest spacing: a series' pixels are square,
    so those two are the in-plane axes and the third is the slice axis (1 mm slices
    resampled in plane to 1.6 mm were read as axial: the first in-plane axis had the
    largest spacing). With isotropic voxels it is the axis whose extent in mm is clearly
    (:data:`SHORTER_EXTENT`) the smallest: a 1 mm sagittal lumbar volume of
    221 × 221 × 67, or a crop of it of 100 (S-I) × 221 (A-P) × 67 (L-R) mm, in whatever
    voxel order it is stored. When no axis is clearly the shortest (a near-cube, or a
    crop of 85 or 60 mm S-I) the storage order decides: the third axis, as scanners store
    (such a crop re-stored in RAS order reads axial).
    """
    from nibabel.affines import voxel_sizes

    spacing = voxel_sizes(np.asarray(affine, dtype=float))
    n = None if shape is None else [int(v) for v in shape[:3]]
    if n is not None:
        singles = [i for i, v in enumerate(n) if v == 1]
        if len(singles) == 1:
            return singles[0]
    if spacing.max() > ANISOTROPY * spacing.min():
        by_spacing = np.argsort(spacing)  # smallest … largest
        largest, second = spacing[by_spacing[2]], spacing[by_spacing[1]]
        if largest <= SAME_SPACING * second:
            return int(by_spacing[0])
        return int(by_spacing[2])
    if n is not None and len(n) == 3:
        extent = np.asarray(n, dtype=float) * spacing
        shortest = int(np.argmin(extent))
        others = [float(e) for i, e in enumerate(extent) if i != shortest]
        if extent[shortest] <= SHORTER_EXTENT * min(others):
            return shortest
    return 2


def orientation_from_affine(
    affine: npt.NDArray[np.float64], shape: Sequence[int] | None = None
) -> str:
    """``sagittal``/``coronal``/``axial``/``oblique`` from the slice normal
    (:func:`slice_axis`; ``shape`` lets a single slice name its own axis)."""
    normal = np.asarray(affine, dtype=float)[:3, slice_axis(affine, shape)]
    normal = normal / np.linalg.norm(normal)
    axis = int(np.argmax(np.abs(normal)))
    if abs(normal[axis]) < 0.75:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def shells(bvals: npt.NDArray[np.float64]) -> list[float]:
    """Distinct b-value shells (mean of each cluster), ascending."""
    out: list[list[float]] = []
    for b in sorted(float(x) for x in bvals):
        if out and same_shell(out[-1][0], b):
            out[-1].append(b)
        else:
            out.append([b])
    return [float(np.mean(c)) for c in out]


def adc_scale_to_um2_per_ms(data: npt.NDArray[np.float32], *, path: object) -> tuple[float, str]:
    """Factor that converts stored ADC values to µm²/ms, and the unit it assumed.

    The unit is not in the DICOM header of scanner ADC maps, so it is decided from the
    values: the largest candidate unit in which at most
    :data:`ADC_MAX_IMPOSSIBLE_SHARE` of the positive voxels lie above the plausible
    window (:data:`ADC_PLAUSIBLE_MEDIAN_UM2_PER_MS`) and at least
    :data:`ADC_MIN_TISSUE_SHARE` inside it. When no unit passes (a map whose noisy
    background reaches far above free water), the unit in which the median positive
    voxel lands in the window.
    """
    positive = data[np.isfinite(data) & (data > 0)]
    if positive.size == 0:
        raise InvalidInputError("ADC map has no positive voxels", path=str(path))
    lo, hi = ADC_PLAUSIBLE_MEDIAN_UM2_PER_MS
    # Values far below tissue are common (masked or noisy background, 1-9 in
    # 10⁻⁶ mm²/s around the body); values far above free water are not. So the unit is
    # the largest in which the map is not largely impossible: one unit larger would put
    # the whole tissue share, 1000× too high, above the window. A median-only rule read
    # a map of mostly background as µm²/ms (its median, about 5, passed for 5 µm²/ms);
    # a whole-number rule that guarded against that failed once the map had been
    # resampled (interpolated values are not whole).
    for scale, unit in reversed(ADC_CANDIDATE_SCALES):
        scaled = positive * scale
        if float(np.mean(scaled > hi)) > ADC_MAX_IMPOSSIBLE_SHARE:
            continue
        if float(np.mean((scaled >= lo) & (scaled <= hi))) >= ADC_MIN_TISSUE_SHARE:
            return scale, unit
        break  # the largest possible unit leaves too little tissue: fall back below
    median = float(np.median(positive))
    for scale, unit in ADC_CANDIDATE_SCALES:
        if lo <= median * scale <= hi:
            return scale, unit
    raise InvalidInputError(
        f"ADC map median {median:.3g} fits no known unit (10⁻⁶ mm²/s, µm²/ms, mm²/s, m²/s)",
        path=str(path),
    )


def _timing_ms(raw: RawImage, key: str) -> float | None:
    value = raw.sidecar.get(key)
    if isinstance(value, int | float):
        return float(value) * 1000.0  # BIDS sidecars give seconds
    return None


def _image_type(raw: RawImage) -> list[str]:
    value = raw.sidecar.get("ImageType")
    if isinstance(value, str):
        value = value.split("\\")
    if not isinstance(value, list | tuple):  # absent, null, or a number: no image type
        return []
    return [str(v).upper() for v in value]


def _scanning_sequence(raw: RawImage) -> list[str]:
    """The sidecar's ``ScanningSequence`` (``SE``, ``GR``, ``EP``, ``IR`` …), upper case."""
    value = raw.sidecar.get("ScanningSequence")
    if isinstance(value, list | tuple):
        value = "_".join(str(v) for v in value)
    if not isinstance(value, str):
        return []
    # DICOM joins values with "\\"; dcm2niix writes them joined with "_" ("SE_EP")
    return [v for v in re.split(r"[\\_,\s]+", value.upper()) if v]


_DIXON_NOT_WATER = frozenset({"FAT", "F", "IN_PHASE", "IP", "OUT_PHASE", "OPP_PHASE", "OP"})


def validate_dwi(raw: RawImage) -> None:
    """An image asserted to be DWI must have b-values with at least two shells."""
    if raw.bvals is None:
        raise InvalidInputError(
            "DWI image has no b-values (no .bval next to it and none given)", path=raw.path
        )
    found = shells(raw.bvals)
    if len(found) < 2:
        raise InvalidInputError(
            f"DWI has a single b-value ({found[0]:g} s/mm²); ADC needs at least two",
            path=raw.path,
        )


def validate_t2(raw: RawImage) -> None:
    """An image asserted to be T2 (``--t2``, BIDS ``anat/*_T2w``) must be one volume.

    A 4D image given as T2 is most often a DWI passed to the wrong option; grading its
    first volume as if it were T2 would give wrong numbers without a word.

    Raises
    ------
    InvalidInputError
        The image has more than one volume.
    """
    nv = n_volumes(raw.volume)
    if nv > 1:
        where = f"{raw.hint_reason} but " if raw.hint_reason else ""
        raise InvalidInputError(
            f"{where}has {nv} volumes; a T2 series has one (a DWI? give it as --dwi)",
            path=raw.path,
        )


def _classify(raw: RawImage, *, assume_t2: bool) -> tuple[SeriesRole, str]:
    orient = orientation_from_affine(raw.volume.affine, raw.volume.shape)
    itype = _image_type(raw)
    desc = raw.description
    if raw.hint == "dwi":
        validate_dwi(raw)
    if raw.hint == "t2":
        validate_t2(raw)
    has_shells = raw.bvals is not None and len(shells(raw.bvals)) >= 2
    # A name ending in ADC, or ADC in the ImageType, is only a hint: a DWI protocol named
    # "DWI_ADC" holds b-values, and a sidecar's ImageType that says ADC over a DWI of
    # three shells had its signal reported as the discs' ADC (an audit).
    if (raw.hint == "adc" or "ADC" in itype) and not has_shells:
        # dcm2niix names the ADC part it splits off a Philips/GE DWI series "*_ADC".
        why = "ImageType contains ADC" if "ADC" in itype else raw.hint_reason
        if (nv := n_volumes(raw.volume)) > 1:  # pooled, two maps read as one (an audit)
            return SeriesRole.OTHER, f"{why}, but {nv} volumes: {ADC_MAP_VOLUMES}"
        return SeriesRole.ADC, why
    if raw.hint == "other":
        return SeriesRole.OTHER, raw.hint_reason
    if raw.hint == "t2":
        note = "" if orient == "sagittal" else f" (note: {orient} by the affine)"
        return SeriesRole.T2, f"{raw.hint_reason}{note}"
    if "FA" in itype or "TENSOR" in itype or "EXP" in itype or "CALC_BVALUE" in itype:
        derived = next(t for t in ("FA", "TENSOR", "EXP", "CALC_BVALUE") if t in itype)
        return SeriesRole.OTHER, f"derived diffusion map (ImageType {derived})"
    if raw.bvals is not None:
        found = shells(raw.bvals)
        bs = "/".join(f"{b:.0f}" for b in found)
        if len(found) >= 2:
            why = raw.hint_reason + ": " if raw.hint == "dwi" else ""
            why += f"{n_volumes(raw.volume)} volumes at {len(found)} b-value shells ({bs} s/mm²)"
            if "TRACEW" in itype or (raw.bvecs is not None and not np.any(raw.bvecs)):
                why += (
                    "; b>0 images are trace-weighted (direction-averaged), "
                    "usable for a mono-exponential ADC"
                )
            elif raw.bvecs is None:
                why += "; no gradient directions (.bvec) given"
            return SeriesRole.DWI, "; ".join([why, *raw.notes])
        scanner_diffusion = bool({"TRACEW", "DIFFUSION"} & set(itype))  # not a BIDS b0 run
        if scanner_diffusion and (nv := n_volumes(raw.volume)) > 1 and max(found) < 1.0:
            return SeriesRole.OTHER, f"{nv} diffusion volumes, all at b = 0; {NO_B_VALUES}"
        if "TRACEW" in itype:
            return SeriesRole.TRACE, f"ImageType TRACEW at a single b-value ({bs} s/mm²)"
        return SeriesRole.OTHER, f"diffusion images at a single b-value ({bs} s/mm²)"
    if {"TRACEW", "DIFFUSION"} & set(itype) and (nv := n_volumes(raw.volume)) > 1:
        return SeriesRole.OTHER, f"{nv} diffusion volumes without b-values; {NO_B_VALUES}"
    if "TRACEW" in itype:
        return SeriesRole.TRACE, "ImageType TRACEW"
    if "DIFFUSION" in itype:
        return SeriesRole.OTHER, "diffusion image without b-values"
    if "LOCALIZER" in itype or _LOCALIZER.search(desc):
        return SeriesRole.OTHER, "localizer"
    if "P" in itype or "PHASE" in itype:
        return SeriesRole.OTHER, "phase image (ImageType P/PHASE), not magnitude"
    if "DIXON" in itype and (part := next((t for t in itype if t in _DIXON_NOT_WATER), None)):
        return SeriesRole.OTHER, f"Dixon {part} image (ImageType), not the water image"
    if len(raw.volume.shape) == 4:
        return SeriesRole.OTHER, f"{raw.volume.shape[3]} volumes without b-values"
    if "EP" in _scanning_sequence(raw):
        # long TE and TR as a T2, but distorted, coarse: a DWI's b=0 or single-band
        # reference (BIDS dwi/*_sbref) outranked the real T2 on its slice count
        return SeriesRole.OTHER, "echo-planar (ScanningSequence EP), not an anatomical T2"
    te, tr = _timing_ms(raw, "EchoTime"), _timing_ms(raw, "RepetitionTime")
    ti = _timing_ms(raw, "InversionTime")
    # TI 0 is "no inversion" (some converters write it for every sequence)
    if (ti is not None and ti > 0) or _IR_HINT.search(desc):
        return SeriesRole.OTHER, "inversion recovery (STIR/TIRM/FLAIR), not plain T2"
    if te is not None and tr is not None:
        timing = f"TE {te:.0f} ms, TR {tr:.0f} ms"
        if te >= T2_MIN_TE_MS and tr >= T2_MIN_TR_MS:
            if orient != "sagittal":
                return SeriesRole.OTHER, f"T2-weighted ({timing}) but {orient} by the affine"
            return SeriesRole.T2, f"sagittal by the affine, T2-weighted ({timing})"
        if te <= T1_MAX_TE_MS and tr <= T1_MAX_TR_MS:
            return SeriesRole.OTHER, f"T1-weighted ({timing})"
        return SeriesRole.OTHER, f"neither T2- nor T1-weighted ({timing})"
    if _T1_HINT.search(desc) and not _T2_HINT.search(desc):
        return SeriesRole.OTHER, "description says T1"
    if _T2_HINT.search(desc) or assume_t2:
        why = "description says T2" if _T2_HINT.search(desc) else "single anatomical image"
        if orient != "sagittal":
            return SeriesRole.OTHER, f"{why} but {orient} by the affine"
        return SeriesRole.T2, f"sagittal by the affine, {why} (no TE/TR in a sidecar)"
    return SeriesRole.OTHER, "weighting unknown (no TE/TR and no description hint)"


def to_series(raw: RawImage, *, assume_t2: bool = False) -> Series:
    """Give ``raw`` its role and reason; convert ADC values to µm²/ms.

    Raises
    ------
    InvalidInputError
        An image asserted to be DWI has one b-value, one asserted to be T2 has more than
        one volume, or an ADC map has no known unit.
    """
    role, reason = _classify(raw, assume_t2=assume_t2)
    image = raw.volume
    scale: float | None = None
    if role is SeriesRole.ADC:
        scale, unit = adc_scale_to_um2_per_ms(image.data, path=raw.path)
        reason = f"{reason}; stored in {unit}, ×{scale:g} to µm²/ms"
        scaled = (image.data * np.float32(scale)).astype(np.float32)
        image = Volume(data=scaled, affine=image.affine)
    is_dwi = role is SeriesRole.DWI
    bvecs = raw.bvecs
    if is_dwi and bvecs is None and raw.bvals is not None:
        bvecs = np.zeros((raw.bvals.size, 3))
    return Series(
        role=role,
        reason=reason,
        description=raw.description,
        image=image,
        orientation=orientation_from_affine(image.affine, image.shape),
        # A trace image keeps its b-value: without raw DWI it stands in for the b≈0 image,
        # and the pipeline warns when that b-value is not ≈0.
        bvals_s_per_mm2=raw.bvals if is_dwi or role is SeriesRole.TRACE else None,
        bvecs=bvecs if is_dwi else None,
        adc_scale_to_um2_per_ms=scale,
        provenance=raw.provenance,
    )


_ROLE_ORDER = {r: i for i, r in enumerate(SeriesRole)}


def _slices_and_in_plane_area_mm2(volume: Volume) -> tuple[int, float]:
    """Number of slices and in-plane voxel area, on the slice axis of
    :func:`slice_axis` (a sagittal series in RAS voxel order has its slices first)."""
    axis = slice_axis(volume.affine, volume.shape)
    vx = volume.voxel_mm
    in_plane = [vx[i] for i in range(3) if i != axis]
    # rounded: two repeats of one protocol at other obliquities differ by 1e-8 mm², which
    # chose the earlier one as "finer" (a review); alike, the later acquisition goes first
    return int(volume.shape[axis]), round(float(in_plane[0] * in_plane[1]), 3)


def _quality_key(series: Series, explicit: bool, asserted: bool) -> tuple[float, ...]:
    img = series.image
    n_slices, area = _slices_and_in_plane_area_mm2(img)
    if series.role is SeriesRole.DWI and series.bvals_s_per_mm2 is not None:
        n_shells = len(shells(series.bvals_s_per_mm2))
        # A sagittal DWI goes before an axial one, as for the T2: it holds every lumbar
        # disc, an axial stack often a few (an axial DWI of more shells had won; an audit).
        sagittal = series.orientation == "sagittal"
        return (not explicit, not asserted, not sagittal, -n_shells, -img.shape[3], area)
    # A T2 named by its file (BIDS anat/*_T2w) may be axial: a sagittal one goes first.
    return (not explicit, series.orientation != "sagittal", not asserted, -n_slices, area)


def acquisition_number(series: Series) -> tuple[int, int]:
    """(the BIDS ``run-`` number of the series' file, its DICOM SeriesNumber), each 0 when
    absent: of two series alike, the higher is the later acquisition (a repeat is usually
    made because the first was spoiled). Compared as a pair, run first, so that a run
    number and a series number are never compared with each other."""
    first = series.provenance.source_paths[0].name if series.provenance.source_paths else ""
    match = re.search(r"_run-0*(\d+)_", first)
    return (int(match[1]) if match else 0, series.provenance.series_number or 0)


def _later_first(series: Series) -> tuple[int, int, str]:
    """Sort key: the later acquisition first, then the first source file's path (so that
    the choice between series alike in every respect does not depend on UIDs)."""
    run, number = acquisition_number(series)
    first = series.provenance.source_paths[0] if series.provenance.source_paths else ""
    return (-run, -number, str(first))


_Candidate = tuple[Series, bool, bool]
"""A series, whether the user gave it explicitly, and whether its file asserts its role."""


def order_series(
    series: Sequence[Series], *, explicit: Sequence[bool], asserted: Sequence[bool] | None = None
) -> tuple[Series, ...]:
    """Roles in the order t2, dwi, adc, trace, other; best first within each role.

    Best: given explicitly by the user; then, for the diffusion series (DWI, ADC map,
    trace), those in the frame of reference and study of the best T2 (another visit's
    DWI does not overlay this T2); then for DWI the role its file asserts (``asserted``:
    BIDS ``dwi/*_dwi``) before one found by its contents, more shells and more volumes;
    for the others sagittal before any other orientation, then the asserted role (BIDS
    ``anat/*_T2w``: an EPI ``dwi/*_sbref`` with long TE and TR has more slices but is
    no anatomical T2), then more slices; then finer in-plane voxels (smaller area); then
    the later acquisition (:func:`acquisition_number`); then the first file's path.
    """
    candidates = _candidates(series, explicit, asserted)
    rank = _ranker(candidates)
    ordered = sorted(candidates, key=lambda c: (*rank(c), *_later_first(c[0])))
    return tuple(s for s, _, _ in ordered)


def set_aside_other_visits_dwi(
    series: Sequence[Series], *, explicit: Sequence[bool], asserted: Sequence[bool] | None = None
) -> list[Series]:
    """``series`` with every DWI of another visit than the best T2 made ``OTHER``, where
    the T2's own study (and frame of reference) has a scanner ADC map but no DWI.

    :func:`order_series` ranks a DWI of the T2's visit first, but only among DWIs, and a
    raw DWI goes before an ADC map: a folder of two visits, the T2's with only its
    scanner's ADC map, had that T2's discs measured on the other visit's DWI, flagged
    ``frames_of_reference_differ`` (an audit). The map of the T2's own visit overlays it.
    A DWI given explicitly (``--dwi``) is kept. Unknown UIDs (NIfTI) count as the same
    visit, as in :func:`order_series`.
    """
    best = _best_t2(_candidates(series, explicit, asserted))
    if best is None:
        return list(series)
    t2 = best[0]

    def own(role: SeriesRole) -> bool:
        return any(s.role is role and not any(_other_visit(t2, s)) for s in series)

    if not own(SeriesRole.ADC) or own(SeriesRole.DWI):
        return list(series)
    out = []
    for s, given in zip(series, explicit, strict=True):
        frame, study = _other_visit(t2, s)
        if s.role is SeriesRole.DWI and not given and (frame or study):
            other = "study" if study else "frame of reference"
            s = replace(
                s,
                role=SeriesRole.OTHER,
                reason=f"DWI of another {other} than the T2, whose own study has an ADC map (used)",
            )
        out.append(s)
    return out


def tied_with_best(
    series: Sequence[Series], *, explicit: Sequence[bool], asserted: Sequence[bool] | None = None
) -> list[tuple[list[Series], bool]]:
    """For the T2 and the DWI, where several are as good by every rule of
    :func:`order_series` but the acquisition number: those series, best first, and
    whether the acquisition number told the best from the second (False: the first file's
    path did)."""
    found = []
    for _, mine, rank in _ranked_t2_and_dwi(series, explicit, asserted):
        tied = [c[0] for c in mine if rank(c) == rank(mine[0])]
        if len(tied) > 1:
            found.append((tied, acquisition_number(tied[0]) != acquisition_number(tied[1])))
    return found


def _ranked_t2_and_dwi(
    series: Sequence[Series], explicit: Sequence[bool], asserted: Sequence[bool] | None
) -> list[tuple[SeriesRole, list[_Candidate], Callable[[_Candidate], tuple[object, ...]]]]:
    """The T2 and the DWI candidates, each role's in :func:`order_series`' order, with the
    rank key (the order but the acquisition number)."""
    candidates = _candidates(series, explicit, asserted)
    rank = _ranker(candidates)
    return [
        (
            role,
            sorted(
                (c for c in candidates if c[0].role is role),
                key=lambda c: (*rank(c), *_later_first(c[0])),
            ),
            rank,
        )
        for role in (SeriesRole.T2, SeriesRole.DWI)
    ]


_WHY_FIRST = {
    SeriesRole.T2: (None, "given explicitly", "in the frame of reference of the T2",
                    "of the T2's study", "sagittal", "named a T2 by its file (BIDS)",
                    "more slices", "finer in-plane voxels"),
    SeriesRole.DWI: (None, "given explicitly", "in the frame of reference of the T2",
                     "of the T2's study", "named a DWI by its file (BIDS)", "sagittal",
                     "more b-value shells", "more volumes", "finer in-plane voxels"),
}  # fmt: skip
"""What each place of the :func:`_ranker` key says of the series that won on it."""


def chosen_over(
    series: Sequence[Series], *, explicit: Sequence[bool], asserted: Sequence[bool] | None = None
) -> list[tuple[Series, list[Series], str]]:
    """For the T2 and the DWI, where :func:`order_series` chose between series that are
    not alike: the series used, the others, and why it went first (the rule that told it
    from the second). Two BIDS T2w of other acquisitions (``acq-hires``, ``acq-lores``)
    were used without a word on which or why (a user trial); series alike are
    :func:`tied_with_best`'s."""
    found = []
    for role, mine, rank in _ranked_t2_and_dwi(series, explicit, asserted):
        if len(mine) < 2 or rank(mine[0]) == rank(mine[1]):
            continue
        first, second = rank(mine[0]), rank(mine[1])
        place = next(i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)
        why = _WHY_FIRST[role][place] if place < len(_WHY_FIRST[role]) else None
        if why == "sagittal" and role is SeriesRole.T2:  # an axial T2w: no choice to tell
            continue
        found.append((mine[0][0], [c[0] for c in mine[1:]], why or "ranked first"))
    return found


def _candidates(
    series: Sequence[Series], explicit: Sequence[bool], asserted: Sequence[bool] | None
) -> list[_Candidate]:
    asserted = [False] * len(series) if asserted is None else asserted
    return list(zip(series, explicit, asserted, strict=True))


def _best_t2(candidates: list[_Candidate]) -> _Candidate | None:
    """The T2 that :func:`order_series` puts first (None without a T2)."""
    t2s = [c for c in candidates if c[0].role is SeriesRole.T2]
    return min(t2s, key=lambda c: (_quality_key(*c), _later_first(c[0])), default=None)


def _ranker(candidates: list[_Candidate]) -> Callable[[_Candidate], tuple[object, ...]]:
    """The order of :func:`order_series` but the acquisition number, as a key."""
    best_t2 = _best_t2(candidates)

    def rank(c: _Candidate) -> tuple[object, ...]:
        quality = _quality_key(*c)
        visit = (False, False) if best_t2 is None else _other_visit(best_t2[0], c[0])
        return (_ROLE_ORDER[c[0].role], quality[0], *visit, *quality[1:])

    return rank


_DIFFUSION_ROLES = (SeriesRole.DWI, SeriesRole.ADC, SeriesRole.TRACE)


def _other_visit(t2: Series, series: Series) -> tuple[bool, bool]:
    """(another frame of reference, another study) than the chosen T2, for a diffusion
    series; unknown UIDs (NIfTI) count as the same.

    A folder of one patient's two visits, each with its T2 and DWI, had the first visit's
    T2 masks measured on the second visit's ADC map (the larger DWI won)."""
    if series.role not in _DIFFUSION_ROLES:
        return (False, False)
    a, b = t2.provenance.study_instance_uid, series.provenance.study_instance_uid
    return (frames_differ(t2, series), a is not None and b is not None and a != b)


def frames_differ(a: Series, b: Series) -> bool:
    """Whether two series carry different DICOM frames of reference (unknown, as for
    NIfTI, counts as the same)."""
    fa, fb = a.provenance.frame_of_reference_uid, b.provenance.frame_of_reference_uid
    return fa is not None and fb is not None and fa != fb


def frames_known_same(a: Series, b: Series) -> bool:
    """Whether two series carry the same DICOM frame of reference (False when either is
    unknown, as for NIfTI)."""
    fa, fb = a.provenance.frame_of_reference_uid, b.provenance.frame_of_reference_uid
    return fa is not None and fa == fb


MIN_T2_DISTINCT_VALUES = 17
"""An image taken for the T2 with fewer distinct values is a label map or a mask, not an
MR image (an 8-bit export holds hundreds; a label map of five discs and their vertebrae
about a dozen)."""


def refuse_label_map(image: Volume, path: object) -> None:
    """Raise :class:`InvalidInputError` naming ``path`` when the image to segment is a label
    map or a mask: fewer than :data:`MIN_T2_DISTINCT_VALUES` values, or only spine labels
    (a whole-spine map has 20; a review). Given as the T2 (``--t2 sub-01_dseg.nii.gz``) one
    was segmented and graded, two grade I "discs" with exit 0 (a user trial); ``discquant
    segment`` named its levels (a docs trial)."""
    data = np.asarray(image.data).ravel()
    sample = np.unique(data[: 1 << 20])  # an MR image shows itself at once
    if sample.size >= MIN_T2_DISTINCT_VALUES and not _spine_labels_only(sample):
        return
    values = np.unique(data[np.isfinite(data)])
    labels_only = _spine_labels_only(values)
    if values.size < MIN_T2_DISTINCT_VALUES or labels_only:
        raise InvalidInputError(
            f"the image taken for the T2 holds only {values.size} distinct values"
            + (" (spine labels)" if labels_only else "")
            + ": a label map or a mask, not an MR image",
            path=str(path),
        )


MIN_FIELD_OF_VIEW_MM = 64.0
"""Smallest sagittal in-plane extent (mm) of an image the network segments: its four
stride-2 levels need 32 network pixels; a lumbar field of view has hundreds."""


def sagittal_field_of_view_mm(image: Volume) -> tuple[float, float]:
    """Extent (mm) of ``image`` along its voxel axes closest to head-feet and to
    front-back: what the segmentation network sees of each sagittal slice."""
    shape = np.asarray(image.data).shape[:3]
    world = nib.orientations.io_orientation(image.affine)[:, 0]
    sizes = voxel_sizes(image.affine)
    extent = {int(w): n * float(sp) for n, sp, w in zip(shape, sizes, world, strict=False)}
    return extent.get(2, 0.0), extent.get(1, 0.0)


def refuse_small_field_of_view(image: Volume, path: object = None) -> None:
    """Raise :class:`InvalidInputError` naming ``path`` when the image to segment has a
    sagittal field of view under :data:`MIN_FIELD_OF_VIEW_MM`. ``analyze`` checks a T2
    without diffusion series before anything runs: it had written a whole output folder
    of "not found" discs with exit 3, where ``discquant segment`` refused it (an audit).
    With a DWI or an ADC map, the ADC map is still made and the segmentation fails."""
    fov = sagittal_field_of_view_mm(image)
    if min(fov) < MIN_FIELD_OF_VIEW_MM:
        raise InvalidInputError(
            f"the sagittal field of view is {fov[0]:.0f} × {fov[1]:.0f} mm; at least "
            f"{MIN_FIELD_OF_VIEW_MM:.0f} mm is needed to segment a disc and its vertebrae",
            path=None if path is None else str(path),
        )


def _spine_labels_only(values: npt.NDArray[Any]) -> bool:
    """Whether sorted distinct ``values`` are 0 and :data:`SPINE_LABEL_VALUES` alone."""
    finite = values[np.isfinite(values)]
    if finite.size < 3 or not np.all(finite == np.round(finite)):
        return False
    return set(finite.astype(np.int64).tolist()) - {0} <= SPINE_LABEL_VALUES
