"""Disc geometry on the T2 grid: heights, AP depth, volume, disc height index.

Method (docs/measurement.md): on the sagittal slice where the disc's area is largest, the
disc's voxel centres are taken to world millimetres in the sagittal (anterior, superior)
plane. Their principal axes give the disc's AP direction (major axis, oriented
anteriorly) and its height direction (minor axis). Lengths are caliper chords: the part
of a world line inside the mask, sampled every 0.1 mm. The AP depth is the chord along
the AP axis through the centroid; the anterior, middle and posterior heights are the
median chords along the height axis of lines every 0.25 mm in 2 mm bands centred at
10 %, 50 % and 90 % of the depth from the anterior edge. Chords follow the disc's own
axes, so a tilted or wedge-shaped disc is measured the same as an upright one. All of
this is done on the largest connected piece of the mask on that slice, so that stray
voxels of the label (a segmentation's islands) move neither the axes nor the edges; the
volume still counts every voxel of the label.

The vertebral bodies of the disc height index are measured along the disc's own height
axis, on the rays of the disc's middle band (:func:`adjacent_body_height_mm`): the body
sits on the disc, so these rays cross it at its middle whether or not the vertebra's
label also holds its posterior elements.

When the segmentation's disc probability is given, the height chords are
partial-volume chords: the integral of the probability (linearly interpolated, kept
within two voxels of the disc's mask) along the line, instead of the count of mask
samples. A border voxel then adds the part of it that is disc rather than all or
nothing; on 50 unseen phantoms this cut the 95th percentile of the middle-height error
from 1.02 to 0.76 mm (docs/measurement.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
from nibabel.affines import apply_affine
from scipy import ndimage

from discquant.grid import left_right_axis

PARTIAL_VOLUME_VOXELS = 2
"""Disc probability further than this from the disc's mask is not counted in a height
(it may belong to the next disc along a long caliper line)."""

ENDPLATE_VOXELS = 5
"""A vertebral body's voxels within this many pixels of the disc (on the measurement
slice) are its endplate, whose AP extent bounds the disc space (:func:`disc_frame`). Not
2: a segmentation's bodies end short of their rounded corners, and the voxels within 2
pixels spanned less than the disc; on 10 validation phantoms the CNN's AP depth read
−1.17 mm (p95 2.90) with 2, +0.10 mm (p95 1.80) with 5, +0.33 mm (2.85) without the
disc space (benchmarks/measure_phantoms.py)."""

BEYOND_MARGIN_MM = 2.0
"""How far the disc label may reach beyond the adjacent bodies' endplates along the AP
axis before the part beyond is left out of the measurement frame: an annulus bulges a
little past the margins, a herniation further (a posterior herniation 7 mm deep had put
the posterior height inside the herniation, 2.6 mm behind the disc space: an audit)."""


@dataclass(frozen=True)
class DiscGeometry:
    """Geometry of one disc (mm, mm³)."""

    height_anterior_mm: float | None
    height_middle_mm: float | None
    height_posterior_mm: float | None
    ap_depth_mm: float | None
    volume_mm3: float
    mid_slice: int


def _sagittal_points(
    mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64], lr_axis: int, slice_index: int
) -> npt.NDArray[np.float64]:
    """World (RAS mm) coordinates ``(n, 3)`` of the mask's voxels on one sagittal slice."""
    idx = np.argwhere(np.take(mask, slice_index, axis=lr_axis))
    vox = np.insert(idx.astype(np.float64), lr_axis, slice_index, axis=1)
    return apply_affine(affine, vox)


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
    return apply_affine(np.linalg.inv(affine), world.T).T


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
    values = ndimage.map_coordinates(probability, line, order=1, mode="grid-constant", cval=0.0)
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
    crop_affine[:3, 3] = apply_affine(affine, lo)
    return np.where(near, probability[box], 0.0).astype(np.float64), crop_affine


@dataclass(frozen=True)
class DiscFrame:
    """A mask's measurement frame on its measurement slice (world mm, unit vectors).

    ``region`` is the mask's largest 2-D connected piece on that slice (a 3-D array, empty
    off the slice); axes, edges, chords and bands are all taken on it."""

    slice_index: int
    region: npt.NDArray[np.bool_]
    origin: npt.NDArray[np.float64]
    ap: npt.NDArray[np.float64]
    height: npt.NDArray[np.float64]
    reach_mm: float
    depth_mm: float
    anterior_edge_mm: float
    posterior_edge_mm: float


def _largest_piece(
    mask: npt.NDArray[np.bool_], lr_axis: int, slice_index: int
) -> npt.NDArray[np.bool_]:
    """The largest 8-connected piece of the mask on one sagittal slice, as a 3-D mask.

    Stray voxels of the same label (a segmentation's islands, a few voxels painted in
    front of a disc) are other pieces and drop out."""
    plane = np.take(mask, slice_index, axis=lr_axis)
    pieces, n = ndimage.label(plane, structure=np.ones((3, 3), dtype=bool))
    out = np.zeros_like(mask, dtype=bool)
    if n == 0:
        return out
    largest = int(np.argmax(np.bincount(pieces.ravel())[1:])) + 1
    index: list[slice | int] = [slice(None)] * 3
    index[lr_axis] = slice_index
    out[tuple(index)] = pieces == largest
    return out


def _measurement_frame(
    mask: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    slice_index: int,
    *,
    step_mm: float,
) -> DiscFrame | None:
    """Principal axes, AP depth and edges of the mask's largest piece on ``slice_index``;
    None when that piece has fewer than 3 voxels."""
    lr = left_right_axis(affine)
    region = _largest_piece(mask, lr, slice_index)
    world = _sagittal_points(region, affine, lr, slice_index)
    if len(world) < 3:
        return None
    # 2-D coordinates in the slice's own plane (world A and S on a true sagittal grid).
    plane = np.stack(_slice_plane_axes(affine, lr), axis=1)  # (3, 2)
    origin = world.mean(axis=0)
    pts = (world - origin) @ plane
    _, vecs = np.linalg.eigh(np.cov(pts.T))
    ap_dir = vecs[:, 1]  # largest eigenvalue: the long (AP) axis
    if ap_dir[0] < 0:  # point anteriorly
        ap_dir = -ap_dir
    ap3 = plane @ ap_dir
    h3 = plane @ np.array([-ap_dir[1], ap_dir[0]])  # superior (ap_dir[0] > 0)
    reach = float(np.ptp(pts, axis=0).max()) + 5.0
    depth = _chord_mm(region, affine, origin, ap3, reach_mm=reach, step_mm=step_mm)
    u = pts @ ap_dir
    half_pixel = 0.5 * _pixel_width_along(ap3, affine, lr)
    return DiscFrame(
        slice_index,
        region,
        origin,
        ap3,
        h3,
        reach,
        depth,
        float(u.max()) + half_pixel,
        float(u.min()) - half_pixel,
    )


def _band_origins(
    frame: DiscFrame, fraction: float, band_mm: float
) -> list[npt.NDArray[np.float64]]:
    """Points, every 0.25 mm across a band ``band_mm`` wide centred at ``fraction`` of the
    depth from the anterior edge, on the frame's AP axis through its centroid."""
    at = frame.anterior_edge_mm - fraction * frame.depth_mm
    offsets = np.arange(-band_mm / 2, band_mm / 2 + 1e-9, 0.25)
    return [frame.origin + frame.ap * (at + o) for o in offsets]


def _connected_to(
    mask: npt.NDArray[np.bool_], seed: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """The 26-connected 3-D pieces of ``mask`` that contain a voxel of ``seed``."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    pieces, _ = ndimage.label(mask[box], structure=np.ones((3, 3, 3), dtype=bool))
    keep = np.unique(pieces[seed[box]])
    out = np.zeros_like(mask, dtype=bool)
    out[box] = np.isin(pieces, keep[keep > 0])
    return out


def disc_geometry(
    mask: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    *,
    probability: npt.NDArray[np.floating] | None = None,
    band_mm: float = 2.0,
    positions: tuple[float, float, float] = (0.1, 0.5, 0.9),
    step_mm: float = 0.1,
    frame: DiscFrame | None = None,
) -> DiscGeometry | None:
    """Heights, depth and volume of one disc mask on a sagittal grid.

    Axes, depth, edges and heights are measured on the largest connected piece of the
    mask on the measurement slice (8-connected in the slice), so stray voxels of the
    label elsewhere do not move them. The volume counts every voxel of the mask, islands
    included: it is the volume the segmentation gives the disc.

    Parameters
    ----------
    mask
        Boolean disc mask on the T2 grid.
    affine
        Voxel-to-RAS mm affine of that grid.
    probability
        The segmentation's disc probability on the same grid (0–1), or None. When
        given, heights are partial-volume chords of it near the mask (near the 3-D piece
        of the mask that holds the measured piece); the AP depth, the band positions and
        the volume still come from the mask.
    band_mm
        Width of the bands in which heights are measured.
    positions
        Fractions of the AP depth, from the anterior edge, of the anterior, middle
        and posterior height bands.
    step_mm
        Sampling step along each caliper line.
    frame
        The disc's :func:`disc_frame` (with the adjacent bodies, so that a herniation
        is left out of the depth and the bands), when the caller has it; else the
        frame of the whole mask.

    Returns
    -------
    DiscGeometry or None
        None when the mask is empty.
    """
    if not mask.any():
        return None
    voxel_volume = float(abs(np.linalg.det(affine[:3, :3])))
    volume = float(mask.sum()) * voxel_volume
    if frame is None:
        mid = measurement_slice(mask, affine)
        frame = _measurement_frame(mask, affine, mid, step_mm=step_mm)
    else:
        mid = frame.slice_index
    if frame is None:
        return DiscGeometry(None, None, None, None, volume, mid)
    mask_chord = partial(_chord_mm, frame.region, affine, reach_mm=frame.reach_mm, step_mm=step_mm)
    soft_chord = None
    if probability is not None:
        piece = _connected_to(mask, frame.region)
        near, near_affine = _near_mask(probability, piece, affine, voxels=PARTIAL_VOLUME_VOXELS)
        soft_chord = partial(
            _soft_chord_mm, near, near_affine, reach_mm=frame.reach_mm, step_mm=step_mm
        )
    heights: list[float | None] = []
    for frac in positions:
        lines = _band_origins(frame, frac, band_mm)
        crossing = [(p, c) for p in lines if (c := mask_chord(p, frame.height)) > 0]
        # Only lines that cross the mask count (a line past the disc's end would add
        # the small probabilities of the margin around it).
        if soft_chord is None:
            chords = [c for _, c in crossing]
        else:
            chords = [soft_chord(p, frame.height) for p, _ in crossing]
        heights.append(float(np.median(chords)) if chords else None)
    return DiscGeometry(heights[0], heights[1], heights[2], frame.depth_mm, volume, mid)


def disc_frame(
    disc: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    *,
    step_mm: float = 0.1,
    bodies: Sequence[npt.NDArray[np.bool_]] = (),
) -> DiscFrame | None:
    """A disc's measurement frame (axes, edges, depth on its largest slice), or None.

    Computed once per disc by the caller and passed to :func:`disc_geometry`,
    :func:`adjacent_body_height_mm` and :func:`within_disc_depth`, which would otherwise
    each compute it again.

    With ``bodies`` (masks of the vertebrae above and below, on the same grid), the frame
    is that of the disc space: where the disc's piece reaches more than
    :data:`BEYOND_MARGIN_MM` beyond the AP extent of the bodies' endplates (a herniation
    behind them, a protrusion in front), that part is left out and the axes, depth and
    edges are taken again on the rest. Unless both bodies have their endplate on the
    slice, the frame is the whole piece's.
    """
    if not disc.any():
        return None
    frame = _measurement_frame(disc, affine, measurement_slice(disc, affine), step_mm=step_mm)
    if frame is None or not bodies:
        return frame
    margins = _endplate_extent(frame, bodies, affine)
    if margins is None:
        return frame
    posterior, anterior = margins[0] - BEYOND_MARGIN_MM, margins[1] + BEYOND_MARGIN_MM
    idx = np.argwhere(disc)
    u = (apply_affine(affine, idx) - frame.origin) @ frame.ap
    keep = (u >= posterior) & (u <= anterior)
    if keep.all() or keep.sum() < 3:
        return frame
    inside = np.zeros_like(disc, dtype=bool)
    inside[tuple(idx[keep].T)] = True
    # The slice where the disc's area between the endplates is largest: a paracentral
    # herniation had also moved the measurement slice to its own side, where the disc's
    # area was largest with it (and with the part of it within the margin above).
    between = np.zeros_like(disc, dtype=bool)
    between[tuple(idx[(u >= margins[0]) & (u <= margins[1])].T)] = True
    mid = measurement_slice(between if between.any() else inside, affine)
    return _measurement_frame(inside, affine, mid, step_mm=step_mm) or frame


def _endplate_extent(
    frame: DiscFrame, bodies: Sequence[npt.NDArray[np.bool_]], affine: npt.NDArray[np.float64]
) -> tuple[float, float] | None:
    """The most posterior and most anterior positions (mm along ``frame.ap``, from its
    origin) of the bodies' endplates: the voxels of each body's largest piece on the
    frame's slice within :data:`ENDPLATE_VOXELS` pixels of the disc. None unless both
    bodies have 3 such voxels: with one alone, the disc of a vertebra slipped 8 mm forward
    read 24 mm deep for 30, its back cut as if herniated (a review)."""
    lr = left_right_axis(affine)
    plane = np.take(frame.region, frame.slice_index, axis=lr)
    near = ndimage.binary_dilation(plane, iterations=ENDPLATE_VOXELS)
    index: list[slice | int] = [slice(None)] * 3
    index[lr] = frame.slice_index
    extents = []
    for body in bodies:
        endplate = _largest_piece(body, lr, frame.slice_index)  # on the slice only
        endplate[tuple(index)] &= near
        if endplate.sum() < 3:
            continue
        u = (_sagittal_points(endplate, affine, lr, frame.slice_index) - frame.origin) @ frame.ap
        extents.append((float(u.min()), float(u.max())))
    if len(extents) < 2:  # one body alone: a slipped vertebra's disc would read cut
        return None
    return min(e[0] for e in extents), max(e[1] for e in extents)


def measurement_slice(mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]) -> int:
    """The sagittal slice (index along the voxel axis nearest left-right) where the mask's
    area is largest; among equal areas the one nearest the middle of the mask's slices
    (the first of them was a box-shaped disc's lateral edge, where partial-volume heights
    read 7.5 mm for 10).

    Examples
    --------
    >>> m = np.zeros((4, 4, 5), bool); m[1:3, 1:3, :] = True
    >>> measurement_slice(m, np.diag([1.0, 1.0, 1.0, 1.0])[[2, 1, 0, 3]])
    2
    """
    lr = left_right_axis(affine)
    other = tuple(a for a in range(3) if a != lr)
    area = mask.sum(axis=other)
    largest = np.flatnonzero(area == area.max())
    spanned = np.flatnonzero(area)
    middle = (spanned[0] + spanned[-1]) / 2 if spanned.size else 0.0
    return int(largest[np.argmin(np.abs(largest - middle))])


def adjacent_body_height_mm(
    vertebra: npt.NDArray[np.bool_],
    disc: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    *,
    above: bool,
    band_mm: float = 2.0,
    step_mm: float = 0.1,
    frame: DiscFrame | None = None,
) -> float | None:
    """Middle height of the vertebral body that sits on a disc, along the disc's axes.

    On the disc's measurement slice, the lines of the disc's middle band (every 0.25 mm
    in ``band_mm`` at 50 % of the disc's depth) are followed from the disc along its
    height axis, up for the body above (``above``) or down for the one below; the
    body's middle height is the median length of those rays inside the vertebra's
    largest connected piece on that slice. The rays stay within the disc's AP extent,
    so a vertebra label that also holds the posterior elements (pedicles, laminae,
    spinous process: VerSe/SPINEPS labels, the phantom's) is measured at its body, and
    islands of the label elsewhere on the slice do not count.

    Parameters
    ----------
    vertebra
        Boolean mask of the vertebra (body, with or without its posterior elements).
    disc
        Boolean mask of the disc it borders, on the same grid.
    affine
        Voxel-to-RAS mm affine of that grid.
    above
        True for the vertebra above the disc, False for the one below.
    band_mm, step_mm
        As in :func:`disc_geometry`.
    frame
        The disc's :func:`disc_frame`, when the caller has it already.

    Returns
    -------
    float or None
        None when the disc has no measurement frame or no ray meets the vertebra.
    """
    if not vertebra.any():
        return None
    frame = frame if frame is not None else disc_frame(disc, affine, step_mm=step_mm)
    if frame is None or frame.depth_mm <= 0:
        return None
    lr = left_right_axis(affine)
    body = _largest_piece(vertebra, lr, frame.slice_index)
    if not body.any():
        return None
    world = _sagittal_points(body, affine, lr, frame.slice_index)
    reach = float(np.linalg.norm(world - frame.origin, axis=1).max()) + 5.0
    direction = frame.height if above else -frame.height
    chords = []
    for p in _band_origins(frame, 0.5, band_mm):
        # The ray from p: a line centred half its length further on.
        centre = p + direction * (reach / 2)
        c = _chord_mm(body, affine, centre, direction, reach_mm=reach / 2, step_mm=step_mm)
        if c > 0:
            chords.append(c)
    return float(np.median(chords)) if chords else None


def within_disc_depth(
    vertebra: npt.NDArray[np.bool_],
    disc: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    *,
    frame: DiscFrame | None = None,
) -> npt.NDArray[np.bool_]:
    """The voxels of ``vertebra`` (3-D) whose position along the disc's AP axis lies
    within the disc's AP extent on its measurement slice: the vertebral body that sits on
    the disc, without the posterior elements behind the canal.

    Empty when the disc has no measurement frame. ``frame``: the disc's
    :func:`disc_frame`, when the caller has it already."""
    out = np.zeros_like(vertebra, dtype=bool)
    if not vertebra.any():
        return out
    frame = frame if frame is not None else disc_frame(disc, affine)
    if frame is None:
        return out
    idx = np.argwhere(vertebra)
    world = apply_affine(affine, idx)
    u = (world - frame.origin) @ frame.ap
    keep = (u >= frame.posterior_edge_mm) & (u <= frame.anterior_edge_mm)
    out[tuple(idx[keep].T)] = True
    return out


def _pixel_width_along(
    direction: npt.NDArray[np.float64], affine: npt.NDArray[np.float64], lr_axis: int
) -> float:
    """Width of one in-plane pixel projected on a unit world direction in the slice."""
    inplane = [a for a in range(3) if a != lr_axis]
    return float(sum(abs(affine[:3, a] @ direction) for a in inplane))
