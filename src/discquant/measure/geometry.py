"""Disc geometry on the T2 grid: heights, AP depth, volume, disc height index.

Method (docs/measurement.md): on the sagittal slice where the disc's area is largest,
the disc's voxel centres are taken to world millimetres and projected on the sagittal
(anterior, superior) plane. Their principal axes give the disc's AP direction (major
axis, oriented anteriorly) and its height direction (minor axis). The AP depth is the
extent along the AP axis; the anterior, middle and posterior heights are the extents
along the height axis, the median over the pixel-wide columns of a 2 mm band centred at
10 %, 50 % and 90 % of the depth from the anterior edge. Extents are edge to edge: the
centre-to-centre extent plus one pixel's width projected on that axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from discquant.io.study import Volume


@dataclass(frozen=True)
class DiscGeometry:
    """Geometry of one disc (mm, mm³)."""

    height_anterior_mm: float | None
    height_middle_mm: float | None
    height_posterior_mm: float | None
    ap_depth_mm: float
    volume_mm3: float
    mid_slice: int


def left_right_axis(affine: npt.NDArray[np.float64]) -> int:
    """Index of the voxel axis closest to the world left–right (x) axis."""
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return int(np.argmax(np.abs(directions[0])))


def _sagittal_points(
    mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64], lr_axis: int, slice_index: int
) -> npt.NDArray[np.float64]:
    """World (A, S) coordinates of the mask's voxels on one sagittal slice."""
    idx = np.argwhere(np.take(mask, slice_index, axis=lr_axis))
    vox = np.insert(idx.astype(np.float64), lr_axis, slice_index, axis=1)
    world = vox @ affine[:3, :3].T + affine[:3, 3]
    return world[:, 1:3]


def _pixel_width_along(
    direction: npt.NDArray[np.float64], affine: npt.NDArray[np.float64], lr_axis: int
) -> float:
    """Width of one in-plane pixel projected on a unit (A, S) direction."""
    inplane = [a for a in range(3) if a != lr_axis]
    return float(sum(abs(affine[1:3, a] @ direction) for a in inplane))


def disc_geometry(
    mask: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    *,
    band_mm: float = 2.0,
    positions: tuple[float, float, float] = (0.1, 0.5, 0.9),
) -> DiscGeometry | None:
    """Heights, depth and volume of one disc mask on a sagittal grid.

    Parameters
    ----------
    mask
        Boolean disc mask on the T2 grid.
    affine
        Voxel-to-RAS mm affine of that grid.
    band_mm
        Width of the bands in which heights are measured.
    positions
        Fractions of the AP depth, from the anterior edge, of the anterior, middle
        and posterior height bands.

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
    areas = mask.sum(axis=other)
    mid = int(np.argmax(areas))
    pts = _sagittal_points(mask, affine, lr, mid)
    if len(pts) < 3:
        return DiscGeometry(None, None, None, 0.0, volume, mid)
    centred = pts - pts.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov(centred.T))
    ap_dir = vecs[:, 1]  # largest eigenvalue: the disc's long (AP) axis
    if ap_dir[0] < 0:  # point anteriorly (+A)
        ap_dir = -ap_dir
    height_dir = np.array([-ap_dir[1], ap_dir[0]])
    if height_dir[1] < 0:  # point superiorly
        height_dir = -height_dir
    u = centred @ ap_dir
    v = centred @ height_dir
    px_u = _pixel_width_along(ap_dir, affine, lr)
    px_v = _pixel_width_along(height_dir, affine, lr)
    depth = float(u.max() - u.min() + px_u)
    anterior_edge = u.max() + px_u / 2
    heights = [
        _band_height(u, v, anterior_edge - frac * depth, band_mm, px_u, px_v) for frac in positions
    ]
    return DiscGeometry(heights[0], heights[1], heights[2], depth, volume, mid)


def _band_height(
    u: npt.NDArray[np.float64],
    v: npt.NDArray[np.float64],
    centre: float,
    band_mm: float,
    px_u: float,
    px_v: float,
) -> float | None:
    """Median over the band's pixel-wide columns of each column's edge-to-edge height.

    Taking each column separately keeps a wedge's slope or a concave endplate from
    inflating the height the way one max − min over the whole band would.
    """
    band = np.abs(u - centre) <= max(band_mm / 2, px_u / 2)
    if not band.any():
        return None
    columns = np.floor((u[band] - centre) / px_u).astype(int)
    vb = v[band]
    per_column = [
        vb[columns == c].max() - vb[columns == c].min() + px_v for c in np.unique(columns)
    ]
    return float(np.median(per_column))


def body_height_mm(mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]) -> float | None:
    """Middle height of a vertebral body (same method as a disc's middle height)."""
    geom = disc_geometry(mask, affine)
    return None if geom is None else geom.height_middle_mm


def volume_of(labels: Volume, label: int) -> float:
    """Volume (mm³) of one label: voxel count × voxel volume."""
    return float((labels.data == label).sum()) * labels.voxel_volume_mm3
