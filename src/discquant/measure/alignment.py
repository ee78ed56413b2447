"""Does the T2's segmentation, moved to the DWI grid, lie on the DWI's discs?

The T2 masks are brought to the DWI in world coordinates (:mod:`discquant.measure.transfer`),
which assumes the patient did not move between the two series. A user trial moved the
T2 4.8 mm (a patient who shifted, or a repeated T2 of another position) and the nucleus
ADCs changed without a flag (on 10 phantoms: median error 18 %, p95 49 %,
``benchmarks/dwi_alignment.py``). This module measures the shift from
the discs themselves: the segmentation network also segments the DWI b≈0 image (it is
trained for that, for studies without a T2), and the median offset from each transferred
T2 disc to the nearest b≈0 disc estimates the displacement in the sagittal plane.

A correlation of the T2 image with the b≈0 image was measured earlier as a per-disc
refinement and made the ADC worse (T2 TSE and fat-suppressed EPI differ in marrow and fat
contrast; docs/measurement.md); matching the network's discs in both images does not
depend on those contrasts. The estimate is used only when it exceeds about one DWI
voxel, which the nucleus core's border erosion absorbs (docs/measurement.md, "Patient
movement between the T2 and the DWI"), and only when it can be trusted
(:func:`decide_offset`, which the pipeline follows).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from nibabel.affines import apply_affine, voxel_sizes

from discquant.grid import left_right_axis
from discquant.io.study import Volume
from discquant.results import DISC_LABELS, DISC_OFFSET, ENDPLATE_OFFSET

MATCH_RADIUS_MM = 15.0
"""A b≈0 disc farther than this (in the sagittal plane) from a T2 disc is not its match
(about half the distance between two lumbar discs' centres): a disc the b≈0 segmentation
missed must not pull the estimate towards its neighbour."""

MIN_MATCHED_DISCS = 2
"""Fewer matched discs give no estimate."""

MAX_CORRECTED_MM = 10.0
"""Larger offsets are flagged, never corrected: lumbar discs lie 26-37 mm apart on the
phantoms, so a T2 moved by more than about a third of that can meet the neighbouring disc
on the b≈0 image (a review moved phantom 5000's T2 16-18 mm: matched to the neighbours,
"corrected" by +12-13 mm)."""


@dataclass(frozen=True)
class DiscOffset:
    """The displacement from the T2's discs to the DWI's, in the sagittal plane.

    Attributes
    ----------
    offset_mm
        World (RAS) vector in mm, from the T2 discs' position on the DWI grid to the DWI's
        own discs: the median over matched discs of each component, projected onto the
        plane of the DWI's slices (no component along their normal: the slab's lateral
        coverage sets that, not the patient).
    n_discs
        Discs matched (each b≈0 disc to one T2 disc at most).
    n_t2_discs
        Lumbar discs of the T2 on the DWI grid.
    spread_mm
        The largest distance of one disc's offset from the median (mm): small when the
        whole spine moved as one.
    same_names
        Whether every matched b≈0 disc has the level name of its T2 disc (a match onto
        the neighbouring disc has not, where the b≈0 image's names are right).
    """

    offset_mm: npt.NDArray[np.float64]
    n_discs: int
    n_t2_discs: int
    spread_mm: float
    same_names: bool

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.offset_mm))


def _disc_centres(labels: Volume, labels_from: int) -> dict[int, npt.NDArray[np.float64]]:
    """World centre of each disc label ``labels_from`` … 199 (VerSe discs are 100 + the
    vertebra above, endplates from 200 on)."""
    data = np.asarray(labels.data)
    out: dict[int, npt.NDArray[np.float64]] = {}
    for value in np.unique(data):
        if labels_from <= value < ENDPLATE_OFFSET:
            out[int(value)] = apply_affine(labels.affine, np.argwhere(data == value).mean(axis=0))
    return out


def count_discs(labels: Volume, *, lumbar: bool = False, cut: Collection[int] = ()) -> int:
    """Disc labels present, those in ``cut`` left out: the lumbar ones (120–124) or any
    (100–199)."""
    first = DISC_LABELS["L1-L2"] if lumbar else DISC_OFFSET
    last = DISC_LABELS["L5-S1"] if lumbar else ENDPLATE_OFFSET - 1
    return len({v for v in _disc_centres(labels, first) if v <= last} - set(cut))


def _slice_normal(affine: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Unit world vector of the grid's axis closest to left-right (a sagittal slice's
    normal)."""
    axes = np.asarray(affine, dtype=np.float64)[:3, :3]
    normal = axes[:, left_right_axis(np.asarray(affine))]
    return np.asarray(normal / np.linalg.norm(normal), dtype=np.float64)


def match_discs(
    transferred: Volume, own: Volume, *, cut: Collection[int] = ()
) -> list[tuple[int, int, npt.NDArray[np.float64]]]:
    """Each transferred T2 lumbar disc matched one to one with the nearest b≈0 disc within
    :data:`MATCH_RADIUS_MM` in the sagittal plane, nearest pairs first.

    T2 discs that the T2's own in-plane field of view cuts (labels in ``cut``) take no
    part: the centre of the part in view is not the disc's, while the b≈0 image shows the
    whole disc, and a T2 cut through the front of its discs read as a 2.6 mm "movement"
    and moved the masks (a user trial). Discs that the DWI grid's edge cuts stay: both
    images are cut there alike (on a DWI whose field of view cuts the front of every
    disc, leaving them out had turned the check off and a 4.8 mm movement went
    uncorrected and unflagged; a review).

    Returns
    -------
    list of (T2 label, b≈0 label, offset in mm)
        The offset goes from the T2 disc's centre to its match's (world coordinates, in
        the plane of the DWI's slices: no component along their normal).
    """
    b0_centres = _disc_centres(own, DISC_OFFSET)
    t2_centres = _disc_centres(transferred, DISC_LABELS["L1-L2"])
    # lumbar discs 120–124 only, as n_t2_discs counts them: an L5-L6 disc (125) took part
    # and read "3 of its 2 discs" (an audit)
    last = DISC_LABELS["L5-S1"]
    t2_centres = {k: v for k, v in t2_centres.items() if k not in cut and k <= last}
    # The slices' normal (the grid's left-right axis): a centre moves along it when the
    # two images cover the disc's width differently. Zeroing world x instead left part
    # of that in "anterior" on an oblique slab, and a T2 covering 6 of 11 slices tilted
    # 15° about head-feet read a 2.6 mm movement and was moved (an audit of obliquity).
    normal = _slice_normal(own.affine)
    candidates = []  # (distance, T2 label, b0 label, offset)
    for t2_label, centre in t2_centres.items():
        for own_label, own_centre in b0_centres.items():
            d = own_centre - centre
            d -= (d @ normal) * normal  # in the slice plane: anterior and superior
            if np.linalg.norm(d) <= MATCH_RADIUS_MM:
                candidates.append((float(np.linalg.norm(d)), t2_label, own_label, d))
    pairs: list[tuple[int, int, npt.NDArray[np.float64]]] = []
    used_t2: set[int] = set()
    used_own: set[int] = set()
    for _, t2_label, own_label, d in sorted(candidates, key=lambda c: c[0]):
        if t2_label not in used_t2 and own_label not in used_own:  # nearest first, once each
            pairs.append((t2_label, own_label, d))
            used_t2.add(t2_label)
            used_own.add(own_label)
    return pairs


def estimate_disc_offset(
    transferred: Volume, own: Volume, *, cut: Collection[int] = ()
) -> DiscOffset | None:
    """Median offset from the transferred T2 lumbar discs to the discs segmented on the
    DWI b≈0 image itself, each matched one to one with the nearest (:func:`match_discs`).

    Parameters
    ----------
    transferred
        The T2 segmentation on the DWI grid (VerSe labels; lumbar discs 120–124 used).
    own
        The segmentation of the b≈0 image (any disc label counts: its level names may
        differ where its field of view ends).
    cut
        Labels of T2 discs cut by the T2's own in-plane field of view: left out
        (:func:`match_discs`).

    Returns
    -------
    DiscOffset or None
        None when fewer than :data:`MIN_MATCHED_DISCS` discs match within
        :data:`MATCH_RADIUS_MM`.
    """
    pairs = match_discs(transferred, own, cut=cut)
    if len(pairs) < MIN_MATCHED_DISCS:
        return None
    stacked = np.array([d for _, _, d in pairs])
    median = np.median(stacked, axis=0)
    # Each offset lies in the slice plane; their component-wise median does not when the
    # plane is oblique about two axes (up to 0.46 mm along the normal: an audit).
    normal = _slice_normal(own.affine)
    median -= (median @ normal) * normal
    return DiscOffset(
        offset_mm=median,
        n_discs=len(pairs),
        n_t2_discs=count_discs(transferred, lumbar=True, cut=cut),
        spread_mm=float(np.max(np.linalg.norm(stacked - median, axis=1))),
        same_names=all(t == o for t, o, _ in pairs),
    )


def in_plane_voxel_mm(affine: npt.NDArray[np.float64]) -> float:
    """Mean voxel size (mm) of the two voxel axes closest to the sagittal plane (the axis
    closest to left-right is the slice axis of a sagittal DWI)."""
    sizes = voxel_sizes(affine)
    slice_axis = left_right_axis(np.asarray(affine))
    return float(np.mean([s for i, s in enumerate(sizes) if i != slice_axis]))


def shifted(volume: Volume, offset_mm: npt.NDArray[np.float64]) -> Volume:
    """``volume`` moved by ``offset_mm`` in world coordinates (its data unchanged)."""
    affine = np.array(volume.affine, dtype=np.float64)
    affine[:3, 3] += offset_mm
    return Volume(volume.data, affine)


@dataclass(frozen=True)
class OffsetDecision:
    """What the alignment check concludes for one study (:func:`decide_offset`).

    Attributes
    ----------
    record
        For the analysis's provenance (``dwi_offset``): ``checked``, ``corrected``,
        ``discs_matched`` and, with an estimate, the offset, its spread and the limit (mm);
        with ``checked`` False, ``why``.
    offset_mm
        The shift (world mm) to give the T2 masks, or None: within the limit, not to be
        trusted, or not checked.
    misaligned
        Whether the T2 and DWI discs disagree and nothing may be corrected.
    message
        What the user is told, without the advice the caller adds: where the discs lie
        and, when ``misaligned``, why the shift is not corrected. None when all is well.
    """

    record: dict[str, Any]
    offset_mm: npt.NDArray[np.float64] | None = None
    misaligned: bool = False
    message: str | None = None


def decide_offset(
    transferred: Volume, own: Volume, limit_mm: float, *, cut: Collection[int] = ()
) -> OffsetDecision:
    """Whether to move the T2 masks onto the discs of the DWI b≈0 image, and by how much.

    Within ``limit_mm`` nothing is done. Beyond, the offset is returned only when the whole
    spine moved as one and the matches can be trusted: every matched disc agrees with the
    median within ``limit_mm``, most of the T2's discs are matched (at least
    :data:`MIN_MATCHED_DISCS` and 60 %), each onto the b≈0 disc of its own level name, and
    the offset is at most :data:`MAX_CORRECTED_MM`; otherwise the study is ``misaligned``
    and nothing is moved. Discs on both images of which fewer than
    :data:`MIN_MATCHED_DISCS` match are ``misaligned`` too; too few discs on either image
    leave the study unchecked.

    Parameters
    ----------
    transferred
        The T2 segmentation on the DWI grid (:func:`estimate_disc_offset`).
    own
        The segmentation of the b≈0 image.
    limit_mm
        The largest offset left uncorrected, in mm (the pipeline's
        ``max_dwi_offset_voxels`` × :func:`in_plane_voxel_mm` of the DWI).
    cut
        Labels of T2 discs cut by the T2's in-plane field of view (:func:`match_discs`).

    Returns
    -------
    OffsetDecision

    Examples
    --------
    Two discs, each 5 mm higher on the b≈0 image, and a limit of 2.5 mm: moved.

    >>> data = np.zeros((3, 40, 60), np.int16)
    >>> data[1, 10:30, 10:14], data[1, 10:30, 40:44] = 123, 124
    >>> t2 = Volume(data, np.eye(4))
    >>> b0 = shifted(t2, np.array([0.0, 0.0, 5.0]))
    >>> decision = decide_offset(t2, b0, 2.5)
    >>> decision.offset_mm.tolist(), decision.misaligned, decision.record["corrected"]
    ([0.0, 0.0, 5.0], False, True)
    """
    estimate = estimate_disc_offset(transferred, own, cut=cut)
    if estimate is None:
        on_t2 = count_discs(transferred, lumbar=True, cut=cut)
        on_b0 = count_discs(own)
        if min(on_t2, on_b0) < MIN_MATCHED_DISCS:
            where = " and ".join(
                name
                for name, n in (
                    ("on the T2 (whole, within the DWI's field of view)", on_t2),
                    ("on the b≈0 image", on_b0),
                )
                if n < MIN_MATCHED_DISCS
            )
            why = f"fewer than {MIN_MATCHED_DISCS} discs found {where}"
            return OffsetDecision({"checked": False, "why": why})
        # Discs on both, fewer than MIN_MATCHED_DISCS of them within MATCH_RADIUS_MM of a
        # b≈0 disc: moved by more than that, or the two images disagree on the discs.
        matched = len(match_discs(transferred, own, cut=cut))
        which = "no disc" if not matched else f"only {matched} of the {on_t2} discs"
        return OffsetDecision(
            {"checked": True, "corrected": False, "discs_matched": matched},
            misaligned=True,
            message=f"{which} of the T2 lies within {MATCH_RADIUS_MM:.0f} mm of a disc found "
            "on the DWI b≈0 image",
        )
    moved = estimate.length_mm > limit_mm
    doubts = [
        why
        for why, doubtful in (
            (
                f"they disagree on it by up to {estimate.spread_mm:.1f} mm",
                estimate.spread_mm > limit_mm,
            ),
            (
                f"only {estimate.n_discs} of its {estimate.n_t2_discs} discs were matched",
                estimate.n_discs < max(MIN_MATCHED_DISCS, 0.6 * estimate.n_t2_discs),
            ),
            ("they were matched to b≈0 discs of other level names", not estimate.same_names),
            (
                f"more than {MAX_CORRECTED_MM:.0f} mm, which can reach the neighbouring disc",
                estimate.length_mm > MAX_CORRECTED_MM,
            ),
        )
        if doubtful
    ]
    record = {
        "checked": True,
        "offset_anterior_mm": round(float(estimate.offset_mm[1]), 2),
        "offset_superior_mm": round(float(estimate.offset_mm[2]), 2),
        "discs_matched": estimate.n_discs,
        "spread_mm": round(estimate.spread_mm, 2),
        "limit_mm": round(limit_mm, 2),
        "corrected": moved and not doubts,
    }
    if not moved:
        return OffsetDecision(record)
    where = (
        f"the discs of the T2 lie {estimate.length_mm:.1f} mm from the discs of the DWI b≈0 "
        f"image (anterior {estimate.offset_mm[1]:+.1f} mm, superior "
        f"{estimate.offset_mm[2]:+.1f} mm; limit {limit_mm:.1f} mm)"
    )
    if doubts:
        return OffsetDecision(
            record, misaligned=True, message=f"{where}, not corrected: {'; '.join(doubts)}"
        )
    return OffsetDecision(record, offset_mm=estimate.offset_mm, message=where)
