"""Disc geometry on the T2 grid: heights, AP depth, volume, disc height index.

Method (docs/measurement.md): on the sagittal slice where the disc's area is largest, the
disc's voxel centres are taken to world millimetres in the sagittal (anterior, superior)
plane. Their principal axes give the disc's AP direction (major axis, oriented
anteriorly) and its height direction (minor axis). Lengths are caliper chords: the part
of a world line inside the mask, sampled every 0.1 mm. The AP depth is the chord along
the AP axis through the centroid; the anterior, middle and posterior heights are the
median chords along the height axis of lines every 0.25 mm in 2 mm bands centred at
10 %, 50 % and 90 % of the depth from the anterior edge. Chords follow the disc's own
axes, so a tilted or wedge-shaped disc is measured the same as an upright one.

When the segmentation's disc probability is given, the height chords are
partial-volume chords: the integral of the probability (linearly interpolated, kept
within two voxels of the disc's mask) along the line, instead of the count of mask
samples. A border voxel then adds the part of it that is disc rather than all or
nothing; on 50 unseen phantoms this cut the 95th percentile of the middle-height error
from 1.02 to 0.76 mm (docs/measurement.md)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
from scipy import ndimage

PARTIAL_VOLUME_VOXELS = 2
"""Disc probability further than this from the disc's mask is not counted in a height
(it may belong to the next disc along a long caliper line)."""


@dataclass(frozen=True)
class DiscGeometry:
    """Geometry of one disc (mm, mm³)."""

    height_anterior_mm: float | None
    height_middle_mm: float | None
    height_posterior_mm: float | None
    ap_depth_mm: float | None
    volume_mm3: float
    mid_slice: int


def left_right_axis(affine: npt.NDArray[np.float64]) -> int:
    """Index of the voxel axis closest to the world left–right (x) axis."""
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return int(np.argmax(np.abs(directions[0])))


def _sagittal_points(
    mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64], lr_axis: int, slice_index: int
) -> npt.NDArray[np.float64]:
    """World (RAS mm) coordinates ``(n, 3)`` of the mask's voxels on one sagittal slice."""
    idx = np.argwhere(np.take(mask, slice_index, axis=lr_axis))
    vox = np.insert(idx.astype(np.float64), lr_axis, slice_index, axis=1)
    return vox @ affine[:3, :3].T + affine[:3, 3]


def _slice_plane_axes(
    affine: npt.NDArray[np.float64], lr_axis: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Unit world vectors spanning a sagittal slice's plane: the one closest to anterior
    and, perpendicular to it, the one closest to superior.

    For a true sagittal grid they are world A and S; on an oblique one they stay in the
    slice, so caliper lines do not leave it (a line along world A at a fixed x would).
    """
    a, b = (affine[:3, k] for k in range(3) if k != lr_axis)
    normal = np.cross(a, b)
    normal /= np.linalg.norm(normal)
    anterior = np.array([0.0, 1.0, 0.0]) - normal[1] * normal
    anterior /= np.linalg.norm(anterior)
    superior = np.cross(normal, anterior)
    if superior[2] < 0:
        superior = -superior
    return anterior, superior


def _line_voxels(
    affine: npt.NDArray[np.float64],
    origin: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
    *,
    reach_mm: float,
    step_mm: float,
) -> npt.NDArray[np.float64]:
    """Voxel coordinates (3 × n) of points every ``step_mm`` along a world line through
    ``origin``, ``reach_mm`` to either side."""
    t = np.arange(-reach_mm, reach_mm + step_mm / 2, step_mm)
    world = origin[:, None] + direction[:, None] * t[None, :]
    inv = np.linalg.inv(affine)
    return inv[:3, :3] @ world + inv[:3, 3:4]


def _chord_mm(
    mask: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    origin: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
    *,
    reach_mm: float,
    step_mm: float,
) -> float:
    """Length (mm) of the part of a world line inside the mask (nearest-neighbour samples)."""
    line = _line_voxels(affine, origin, direction, reach_mm=reach_mm, step_mm=step_mm)
    vox = np.rint(line).astype(int)
    inside = np.all((vox >= 0) & (vox < np.asarray(mask.shape)[:, None]), axis=0)
    hits = np.zeros(vox.shape[1], dtype=bool)
    hits[inside] = mask[tuple(vox[:, inside])]
    return float(hits.sum() * step_mm)


def _soft_chord_mm(
    probability: npt.NDArray[np.floating],
    affine: npt.NDArray[np.float64],
    origin: npt.NDArray[np.float64],
    direction: npt.NDArray[np.float64],
    *,
    reach_mm: float,
    step_mm: float,
) -> float:
    """Integral (mm) of a probability map along a world line (linear interpolation)."""
    line = _line_voxels(affine, origin, direction, reach_mm=reach_mm, step_mm=step_mm)
    values = ndimage.map_coordinates(probability, line, order=1, mode="constant", cval=0.0)
    return float(values.sum() * step_mm)


def _near_mask(
    probability: npt.NDArray[np.floating],
    mask: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    *,
    voxels: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The probability within ``voxels`` of the mask (zero elsewhere), cropped to the
    mask's bounding box plus that margin, and the affine of the crop.

    "Within" is ``voxels`` steps of 6-connected (face-neighbour) dilation in 3-D, so it
    reaches across sagittal slices as well as in-plane."""
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - voxels, 0)
    hi = np.minimum(idx.max(axis=0) + voxels + 1, mask.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    near = ndimage.binary_dilation(mask[box], iterations=voxels)
    crop_affine = affine.copy()
    crop_affine[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
    return np.where(near, probability[box], 0.0).astype(np.float64), crop_affine


def disc_geometry(
    mask: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    *,
    probability: npt.NDArray[np.floating] | None = None,
    band_mm: float = 2.0,
    positions: tuple[float, float, float] = (0.1, 0.5, 0.9),
    step_mm: float = 0.1,
) -> DiscGeometry | None:
    """Heights, depth and volume of one disc mask on a sagittal grid.

    Parameters
    ----------
    mask
        Boolean disc mask on the T2 grid.
    affine
        Voxel-to-RAS mm affine of that grid.
    probability
        The segmentation's disc probability on the same grid (0–1), or None. When
        given, heights are partial-volume chords of it near the mask; the AP depth,
        the band positions and the volume still come from the mask.
    band_mm
        Width of the bands in which heights are measured.
    positions
        Fractions of the AP depth, from the anterior edge, of the anterior, middle
        and posterior height bands.
    step_mm
        Sampling step along each caliper line.

    Returns
    -------
    DiscGeometry or None
        None when the mask is empty.
    """
    if not mask.any():
        return None
    voxel_volume = float(abs(np.linalg.det(affine[:3, :3])))
    volume = float(mask.sum()) * voxel_volume
    lr = left_right_axis(affine)
    other = tuple(a for a in range(3) if a != lr)
    mid = int(np.argmax(mask.sum(axis=other)))
    world = _sagittal_points(mask, affine, lr, mid)
    if len(world) < 3:
        return DiscGeometry(None, None, None, None, volume, mid)
    # 2-D coordinates in the slice's own plane (world A and S on a true sagittal grid).
    plane = np.stack(_slice_plane_axes(affine, lr), axis=1)  # (3, 2)
    origin = world.mean(axis=0)
    pts = (world - origin) @ plane
    _, vecs = np.linalg.eigh(np.cov(pts.T))
    ap_dir = vecs[:, 1]  # largest eigenvalue: the disc's long (AP) axis
    if ap_dir[0] < 0:  # point anteriorly
        ap_dir = -ap_dir
    ap3 = plane @ ap_dir
    h3 = plane @ np.array([-ap_dir[1], ap_dir[0]])
    reach = float(np.ptp(pts, axis=0).max()) + 5.0
    depth = _chord_mm(mask, affine, origin, ap3, reach_mm=reach, step_mm=step_mm)
    u = pts @ ap_dir
    anterior_edge = float(u.max()) + 0.5 * _pixel_width_along(ap3, affine, lr)
    mask_chord = partial(_chord_mm, mask, affine, reach_mm=reach, step_mm=step_mm)
    soft_chord = None
    if probability is not None:
        near, near_affine = _near_mask(probability, mask, affine, voxels=PARTIAL_VOLUME_VOXELS)
        soft_chord = partial(_soft_chord_mm, near, near_affine, reach_mm=reach, step_mm=step_mm)
    heights: list[float | None] = []
    for frac in positions:
        at = anterior_edge - frac * depth
        offsets = np.arange(-band_mm / 2, band_mm / 2 + 1e-9, 0.25)
        lines = [origin + ap3 * (at + o) for o in offsets]
        crossing = [(p, c) for p in lines if (c := mask_chord(p, h3)) > 0]
        # Only lines that cross the mask count (a line past the disc's end would add
        # the small probabilities of the margin around it).
        if soft_chord is None:
            chords = [c for _, c in crossing]
        else:
            chords = [soft_chord(p, h3) for p, _ in crossing]
        heights.append(float(np.median(chords)) if chords else None)
    return DiscGeometry(heights[0], heights[1], heights[2], depth, volume, mid)


def _pixel_width_along(
    direction: npt.NDArray[np.float64], affine: npt.NDArray[np.float64], lr_axis: int
) -> float:
    """Width of one in-plane pixel projected on a unit world direction in the slice."""
    inplane = [a for a in range(3) if a != lr_axis]
    return float(sum(abs(affine[:3, a] @ direction) for a in inplane))


def body_height_mm(mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]) -> float | None:
    """Middle height of a vertebral body (same method as a disc's middle height)."""
    geom = disc_geometry(mask, affine)
    return None if geom is None else geom.height_middle_mm
