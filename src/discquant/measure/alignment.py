"""Does the T2's segmentation, moved to the DWI grid, lie on the DWI's discs?

The T2 masks are brought to the DWI in world coordinates (:mod:`discquant.measure.transfer`),
which assumes the patient did not move between the two series. A user trial moved the
T2 4.8 mm (a patient who shifted, or a repeated T2 of another position): the nucleus ADC
of every disc moved by up to −40 % without a flag. This module measures the shift from
the discs themselves: the segmentation network also segments the DWI b≈0 image (it is
trained for that, for studies without a T2), and the median offset from each transferred
T2 disc to the nearest b≈0 disc estimates the displacement in the sagittal plane.

A correlation of the T2 image with the b≈0 image was measured earlier as a per-disc
refinement and made the ADC worse (T2 TSE and fat-suppressed EPI differ in marrow and fat
contrast; docs/measurement.md); matching the network's discs in both images does not
depend on those contrasts. The estimate is used only when it exceeds about one DWI
voxel, which the nucleus core's border erosion absorbs (docs/measurement.md, "Patient
movement between the T2 and the DWI").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from nibabel.affines import apply_affine, voxel_sizes

from discquant.io.study import Volume

MATCH_RADIUS_MM = 15.0
"""A b≈0 disc farther than this (in the sagittal plane) from a T2 disc is not its match
(about half the distance between two lumbar discs' centres): a disc the b≈0 segmentation
missed must not pull the estimate towards its neighbour."""

MIN_MATCHED_DISCS = 2
"""Fewer matched discs give no estimate."""


@dataclass(frozen=True)
class DiscOffset:
    """The displacement from the T2's discs to the DWI's, in the sagittal plane.

    Attributes
    ----------
    offset_mm
        World (RAS) vector in mm, from the T2 discs' position on the DWI grid to the DWI's
        own discs: the median over matched discs of each component; the left-right
        component is 0 (the slab's lateral coverage sets it, not the patient).
    n_discs
        Discs matched.
    spread_mm
        The largest distance of one disc's offset from the median (mm): small when the
        whole spine moved as one.
    """

    offset_mm: npt.NDArray[np.float64]
    n_discs: int
    spread_mm: float

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(self.offset_mm))


def _disc_centres(labels: Volume, labels_from: int) -> dict[int, npt.NDArray[np.float64]]:
    """World centre of each disc label ``labels_from`` … 199 (VerSe discs are 100 + the
    vertebra above)."""
    data = np.asarray(labels.data)
    out: dict[int, npt.NDArray[np.float64]] = {}
    for value in np.unique(data):
        if labels_from <= value < 200:
            out[int(value)] = apply_affine(labels.affine, np.argwhere(data == value).mean(axis=0))
    return out


def count_discs(labels: Volume, *, lumbar: bool = False) -> int:
    """Disc labels present: the lumbar ones (120–124) or any (100–199)."""
    return len(_disc_centres(labels, 120 if lumbar else 100))


def estimate_disc_offset(transferred: Volume, own: Volume) -> DiscOffset | None:
    """Median offset from the transferred T2 lumbar discs to the nearest discs segmented on
    the DWI b≈0 image itself.

    Parameters
    ----------
    transferred
        The T2 segmentation on the DWI grid (VerSe labels; lumbar discs 120–124 used).
    own
        The segmentation of the b≈0 image (any disc label counts: its level names may
        differ where its field of view ends).

    Returns
    -------
    DiscOffset or None
        None when fewer than :data:`MIN_MATCHED_DISCS` discs match within
        :data:`MATCH_RADIUS_MM`.
    """
    ours = np.array(list(_disc_centres(own, 100).values()))
    if ours.size == 0:
        return None
    offsets = []
    for centre in _disc_centres(transferred, 120).values():
        d = ours - centre
        d[:, 0] = 0.0  # sagittal plane: anterior-posterior and superior-inferior
        k = int(np.argmin(np.linalg.norm(d, axis=1)))
        if np.linalg.norm(d[k]) <= MATCH_RADIUS_MM:
            offsets.append(d[k])
    if len(offsets) < MIN_MATCHED_DISCS:
        return None
    stacked = np.array(offsets)
    median = np.median(stacked, axis=0)
    spread = float(np.max(np.linalg.norm(stacked - median, axis=1)))
    return DiscOffset(offset_mm=median, n_discs=len(offsets), spread_mm=spread)


def in_plane_voxel_mm(affine: npt.NDArray[np.float64]) -> float:
    """Mean voxel size (mm) of the two voxel axes closest to the sagittal plane (the axis
    closest to left-right is the slice axis of a sagittal DWI)."""
    sizes = voxel_sizes(affine)
    directions = np.abs(np.asarray(affine)[:3, :3] / sizes)
    slice_axis = int(np.argmax(directions[0]))
    return float(np.mean([s for i, s in enumerate(sizes) if i != slice_axis]))


def shifted(volume: Volume, offset_mm: npt.NDArray[np.float64]) -> Volume:
    """``volume`` moved by ``offset_mm`` in world coordinates (its data unchanged)."""
    affine = np.array(volume.affine, dtype=np.float64)
    affine[:3, 3] += offset_mm
    return Volume(volume.data, affine)
