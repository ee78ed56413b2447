"""Masks derived from the segmentation: disc core, nucleus core, CSF.

Definitions (documented in docs/measurement.md):

- **core** of a region: its voxels whose full 3×3×3 neighbourhood lies inside the region,
  i.e. voxels at least one voxel away from the endplates and the disc border, so that
  partial volume with bone, CSF or fat does not enter the statistics.
- **central core** (the nucleus when the network gives none): the voxels of the disc core
  within the central half of the core's own bounding box along each in-plane axis and
  across slices.
- **CSF**: the spinal-canal label (61) eroded by one voxel.
- **marrow** (the T2 reference): the cores of the lumbar vertebral bodies L1–L5, each
  vertebra label cut to the AP extent of the disc(s) it borders, so that posterior
  elements in the label (VerSe/SPINEPS labels, the phantom's) do not count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from discquant.measure.geometry import DiscFrame, within_disc_depth
from discquant.results import CANAL_LABEL, DISC_OFFSET, LUMBAR_VERTEBRA_LABELS

BoolArray = npt.NDArray[np.bool_]


def core(mask: BoolArray, *, border_voxels: int = 1, slice_axis: int | None = None) -> BoolArray:
    """Erode ``mask`` by ``border_voxels`` with a full 3×3×3 neighbourhood.

    Along an axis of length 1, and along ``slice_axis`` (the sagittal slice axis) where
    the region spans fewer than ``2 · border_voxels + 1`` slices, the erosion is in-plane
    only: such a region has no interior across slices. A mid-sagittal T2 brought onto a
    DWI grid lies in one or two DWI slices, and a 3 × 3 × 3 erosion withheld every value
    of it; the lateral disc border is ~20 mm from those slices, so there is no partial
    volume across them to exclude. Callers pass ``slice_axis`` only where the region is
    known to be the disc's middle (:mod:`discquant.measure.discs`), not a lateral tip.
    In-plane (endplates, anterior and posterior borders) the erosion stays: a collapsed
    disc two voxels high still has no core.

    Examples
    --------
    >>> m = np.zeros((5, 5, 5), bool); m[1:4, 1:4, 1:4] = True
    >>> int(core(m).sum())
    1
    >>> m = np.zeros((5, 5, 5), bool); m[1:4, 1:4, 2] = True  # one slice of a 5-slice grid
    >>> int(core(m).sum()), int(core(m, slice_axis=2).sum())
    (0, 1)
    """
    if border_voxels <= 0:
        return mask.copy()
    flat_axes = {axis for axis, n in enumerate(mask.shape) if n == 1}
    if slice_axis is not None and mask.any():
        others = tuple(a for a in range(mask.ndim) if a != slice_axis)
        if np.count_nonzero(mask.any(axis=others)) < 2 * border_voxels + 1:
            flat_axes.add(slice_axis)
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    for axis in flat_axes:
        structure = np.take(structure, [1], axis=axis)
    eroded: BoolArray = ndimage.binary_erosion(
        mask, structure=structure, iterations=border_voxels, border_value=0
    )
    return eroded


def central_core(mask: BoolArray, *, fraction: float = 0.5) -> BoolArray:
    """The voxels of ``mask`` inside the central ``fraction`` of its bounding box per axis."""
    out = np.zeros_like(mask)
    idx = np.argwhere(mask)
    if idx.size == 0:
        return out
    lo = idx.min(axis=0).astype(float)
    hi = idx.max(axis=0).astype(float)
    centre = (lo + hi) / 2
    half = np.maximum((hi - lo + 1) * fraction / 2, 0.5)
    keep = np.all(np.abs(idx - centre) <= half, axis=1)
    sel = idx[keep]
    out[tuple(sel.T)] = True
    return out


def csf_mask(
    labels: npt.NDArray[Any], *, canal_label: int = CANAL_LABEL, slice_axis: int | None = None
) -> BoolArray:
    """The spinal canal label eroded by one voxel (in-plane for single slices, and along
    ``slice_axis`` where the canal spans fewer than three slices: see :func:`core`)."""
    return core(labels == canal_label, border_voxels=1, slice_axis=slice_axis)


def marrow_mask(
    labels: npt.NDArray[Any],
    affine: npt.NDArray[np.float64],
    *,
    border_voxels: int = 1,
    frames: Mapping[int, DiscFrame] | None = None,
) -> BoolArray:
    """Cores of the lumbar vertebral bodies: each vertebra L1–L5 cut to the AP extent of
    the disc(s) present above (label + 99) and below (label + 100) it, then eroded.

    A vertebra without an adjacent disc in ``labels`` is left out: without a disc there
    is no telling its body from its posterior elements. ``frames`` maps disc labels to
    their :func:`~discquant.measure.geometry.disc_frame` when the caller has them.
    """
    frames = frames or {}
    bodies = np.zeros(labels.shape, dtype=bool)
    for v in LUMBAR_VERTEBRA_LABELS:
        vertebra = labels == v
        if not vertebra.any():
            continue
        above_below = (v - 1 + DISC_OFFSET, v + DISC_OFFSET)  # the discs above and below
        discs = [(d, disc) for d in above_below if (disc := labels == d).any()]
        if not discs:
            continue
        body = vertebra
        for d, disc in discs:
            body = body & within_disc_depth(vertebra, disc, affine, frame=frames.get(d))
        bodies |= body
    return core(bodies, border_voxels=border_voxels)
