"""Geometry of masks on a voxel grid: which voxel axis is the sagittal slice axis, how
many sagittal slices a mask spans, and whether the slab's end slices or the in-plane edge
of the field of view cut it (and so whether its voxel count is a volume).

A leaf module: every stage may import it; it imports no stage, only numpy (and
nibabel's orientation helpers, in :func:`reordered_onto`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def left_right_axis(affine: npt.NDArray[np.float64]) -> int:
    """Index of the voxel axis closest to the world left–right (x) axis: the sagittal
    slice axis."""
    # The axis with the largest x cosine; nibabel's io_orientation assigns axes
    # differently beyond ~40° obliquity.
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return int(np.argmax(np.abs(directions[0])))


def slices_spanned(mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]) -> int:
    """Number of sagittal slices (voxel axis nearest left-right) that hold part of ``mask``."""
    axis = left_right_axis(affine)
    other = tuple(a for a in range(mask.ndim) if a != axis)
    return int(np.count_nonzero(mask.any(axis=other)))


LATERAL_CUT_SHARE = 0.5
"""A structure whose area on the first or last sagittal slice is at least this share of
its largest slice area is cut by the slab (a lateral speck of the segmentation on an end
slice, as the CNN left on one of 20 phantom discs, is not)."""


def cut_laterally(mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]) -> bool:
    """True when the first or last sagittal slice of a multi-slice image cuts the mask
    through its body (:data:`LATERAL_CUT_SHARE`): its volume is then a part."""
    axis = left_right_axis(affine)
    if mask.shape[axis] <= 1:
        return False
    area = mask.sum(axis=tuple(a for a in range(mask.ndim) if a != axis))
    return bool(max(area[0], area[-1]) >= LATERAL_CUT_SHARE * area.max() > 0)


def touches_in_plane_edge(mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]) -> bool:
    """True when the mask reaches the in-plane edge of the field of view (a partial field of
    view: the disc's outline there is the image's edge, not the disc's).

    Touching the first or last sagittal slice (the voxel axis nearest left-right) is not
    a partial field of view: lateral disc edges often lie beyond a narrow slab."""
    slice_axis = left_right_axis(affine)
    for axis in range(mask.ndim):
        if axis == slice_axis or mask.shape[axis] <= 1:
            continue
        if np.take(mask, 0, axis=axis).any() or np.take(mask, -1, axis=axis).any():
            return True
    return False


def volume_withheld_flag(
    mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]
) -> str | None:
    """Why the voxel count of ``mask`` is no volume, as a flag, or None: on one sagittal
    slice, area × slice thickness (``volume_withheld_single_slice``); cut by the slab's
    first or last slice, a part (``volume_withheld_lateral_fov``); cut by the in-plane
    edge of the field of view, a part too (``volume_withheld_partial_fov``: a T2 cut
    through the front of its discs read their volumes 31-32 % low with only the
    ``partial_fov`` flag; a user trial). ``analyze`` and ``discquant segment`` withhold
    such volumes alike."""
    if slices_spanned(mask, affine) < 2:
        return "volume_withheld_single_slice"
    if cut_laterally(mask, affine):
        return "volume_withheld_lateral_fov"
    if touches_in_plane_edge(mask, affine):
        return "volume_withheld_partial_fov"
    return None


def reordered_onto(
    data: npt.NDArray[Any],
    affine: npt.NDArray[np.float64],
    ref_shape: tuple[int, ...],
    ref_affine: npt.NDArray[np.float64],
    tolerance_mm: float = 1e-3,
) -> npt.NDArray[Any] | None:
    """``data`` reordered onto the reference grid, when its grid is the reference's with
    the voxel axes permuted and/or flipped (the reoriented affine within ``tolerance_mm``
    of the reference's, the shapes equal); None otherwise.

    A prediction converted from DICOM and a reference written as NIfTI can store one grid
    with the axes in another order, e.g. (400, 480, 15) and (480, 15, 400); so can a
    user's label map and its image (``discquant evaluate segment`` and training read
    both).
    """
    from nibabel.orientations import (
        apply_orientation,
        inv_ornt_aff,
        io_orientation,
        ornt_transform,
    )

    if data.ndim != 3 or len(ref_shape) != 3:
        return None
    try:
        transform = ornt_transform(io_orientation(affine), io_orientation(ref_affine))
    except ValueError:  # a degenerate affine: no axis order to speak of
        return None
    moved = apply_orientation(data, transform)
    moved_affine = affine @ inv_ornt_aff(transform, data.shape)
    if tuple(moved.shape) != tuple(ref_shape):
        return None
    if float(np.abs(moved_affine - ref_affine).max()) > tolerance_mm:
        return None
    return np.ascontiguousarray(moved)
