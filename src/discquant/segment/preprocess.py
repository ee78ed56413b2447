"""Reorientation, in-plane resampling and intensity normalisation for the 2D network.

The network sees sagittal slices with rows running superior→inferior and columns
anterior→posterior (the radiological way a sagittal spine image is shown), resampled to
a fixed in-plane spacing. :func:`to_network_grid` gets there from any input grid and
:func:`from_network_grid` maps class probabilities back onto the input's own grid.

Resampling is done with ``torch.nn.functional.interpolate`` on the whole stack of
slices at once rather than MONAI's ``Spacing``: the slices keep their own positions
(no resampling across slices, which are often 4 mm apart) and the inverse map is the
same call with the original size, which keeps the round trip exact to half a voxel.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from discquant.io.study import Volume

#: Voxel axes after reorientation: rows inferior, columns posterior, slices left→right.
CANONICAL_AXCODES = ("I", "P", "R")


@dataclass(frozen=True)
class Reoriented:
    """An image reoriented to :data:`CANONICAL_AXCODES`.

    Attributes
    ----------
    data
        Array ``(rows, cols, slices)`` (superior→inferior, anterior→posterior, L→R).
    affine
        Voxel → RAS mm affine of ``data``.
    transform
        The nibabel orientation transform from the input grid to ``data``.
    input_shape
        Spatial shape of the input volume.
    """

    data: npt.NDArray[np.float32]
    affine: npt.NDArray[np.float64]
    transform: npt.NDArray[np.float64]
    input_shape: tuple[int, int, int]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        zooms = nib.affines.voxel_sizes(self.affine)
        return (float(zooms[0]), float(zooms[1]), float(zooms[2]))


def reorient(volume: Volume) -> Reoriented:
    """Reorient a 3D volume (or the first of a 4D stack) to sagittal slices.

    Parameters
    ----------
    volume
        Any 3D volume; a single slice has one axis of length 1.
    """
    data = np.asarray(volume.data, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    src = nib.orientations.io_orientation(volume.affine)
    dst = nib.orientations.axcodes2ornt(CANONICAL_AXCODES)
    transform = nib.orientations.ornt_transform(src, dst)
    out = nib.orientations.apply_orientation(data, transform)
    affine = volume.affine @ nib.orientations.inv_ornt_aff(transform, data.shape)
    return Reoriented(
        data=np.ascontiguousarray(out, dtype=np.float32),
        affine=affine,
        transform=transform,
        input_shape=(int(data.shape[0]), int(data.shape[1]), int(data.shape[2])),
    )


def back_to_input(array: npt.NDArray[np.generic], reoriented: Reoriented) -> npt.NDArray:
    """Map an array on the reoriented grid (optionally with trailing channels) back."""
    back = _invert_transform(reoriented.transform)
    return np.ascontiguousarray(nib.orientations.apply_orientation(array, back))


def _invert_transform(transform: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Inverse of a nibabel orientation transform (axis permutation + flips).

    ``transform`` read as an orientation gives each input axis's axis (and flip) on the
    reoriented grid, so the transform from the reoriented grid's own (identity)
    orientation to it is the inverse.
    """
    identity = np.column_stack([np.arange(len(transform)), np.ones(len(transform))])
    return np.asarray(nib.orientations.ornt_transform(identity, transform), dtype=np.float64)


def empty_slices(data: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """Which slices (last axis) of a 3-D array hold one value only (zero padding, a blank
    edge slice), non-finite voxels ignored; an all-NaN slice is empty too."""
    flat = np.where(np.isfinite(data), data, np.nan).reshape(-1, data.shape[-1])
    with warnings.catch_warnings():  # all-NaN slices
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(~(np.nanmax(flat, axis=0) > np.nanmin(flat, axis=0)))


def normalise_intensity(
    data: npt.NDArray[np.floating],
    *,
    low_pct: float = 0.5,
    high_pct: float = 99.5,
    empty: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float32]:
    """Map intensities to about [0, 1] with robust percentiles over the whole volume.

    Percentiles (not min/max) make 8-bit, 12-bit and 16-bit inputs look alike. They are
    taken over the volume rather than per slice because lateral slices hold little
    tissue and their own percentiles would be unstable. Slices (last axis) that hold one
    value only, such as zero padding, are left out: 60 padded slices on each side moved
    the 99.5th percentile from 167 to 138 and lost two levels of a real volume.
    ``empty``: :func:`empty_slices` of ``data`` when the caller has it already.
    """
    finite = np.isfinite(data)
    informative = finite.copy()
    if data.ndim == 3:
        constant = empty_slices(data) if empty is None else empty
        if not constant.all():
            informative &= ~constant[None, None, :]
    values = data[informative]
    if values.size == 0:
        return np.zeros(data.shape, dtype=np.float32)
    lo, hi = np.percentile(values, [low_pct, high_pct])
    if hi <= lo:
        hi = lo + 1.0
    out = (np.where(finite, data, lo) - lo) / (hi - lo)
    return np.clip(out, -0.5, 1.5).astype(np.float32)


def inplane_size(
    shape: tuple[int, int], spacing: tuple[float, float], target_mm: float
) -> tuple[int, int]:
    """Rows and columns of a slice after resampling to ``target_mm`` pixels."""
    return (
        max(1, round(shape[0] * spacing[0] / target_mm)),
        max(1, round(shape[1] * spacing[1] / target_mm)),
    )


def to_network_grid(
    reoriented: Reoriented, *, spacing_mm: float, empty: npt.NDArray[np.bool_] | None = None
) -> torch.Tensor:
    """Normalised slices ``(slices, 1, rows, cols)`` at ``spacing_mm`` in-plane
    (``empty``: passed to :func:`normalise_intensity`)."""
    data = normalise_intensity(reoriented.data, empty=empty)
    sp = reoriented.spacing_mm
    size = inplane_size(data.shape[:2], (sp[0], sp[1]), spacing_mm)
    stack = torch.from_numpy(np.moveaxis(data, 2, 0)[:, None])
    if tuple(stack.shape[2:]) == size:
        return stack.contiguous()
    return F.interpolate(stack, size=size, mode="bilinear", align_corners=False)


def from_network_grid(prob: torch.Tensor, reoriented: Reoriented) -> torch.Tensor:
    """Class probabilities ``(slices, C, h, w)`` back to ``(rows, cols, slices, C)``."""
    rows, cols = reoriented.data.shape[:2]
    if tuple(prob.shape[2:]) != (rows, cols):
        prob = F.interpolate(prob, size=(rows, cols), mode="bilinear", align_corners=False)
    return prob.permute(2, 3, 0, 1)


def context_offset(slice_mm: float, context_mm: float) -> int:
    """Slices between a slice and its neighbours in the network input (at least 1).

    ``context_mm`` is a physical distance, so a 1 mm isotropic volume and a 4 mm
    clinical series give the network neighbours about as far apart.
    """
    return max(1, round(context_mm / slice_mm))


def neighbour_slices(k: int, n: int, offset: int) -> list[int]:
    """Slices ``k - offset``, ``k``, ``k + offset`` of ``n``, repeating the edge slice past
    either end: the three channels of slice ``k`` in a 2.5D input."""
    return [min(max(k - offset, 0), n - 1), k, min(k + offset, n - 1)]


def with_context(stack: torch.Tensor, offset: int) -> torch.Tensor:
    """``(slices, 1, rows, cols)`` → ``(slices, 3, rows, cols)``: each slice between its
    neighbours ``offset`` slices to either side (:func:`neighbour_slices`; 2.5D input).

    A single slice gives three identical channels (the network is trained on such
    inputs too).
    """
    n = stack.shape[0]
    idx = torch.tensor([neighbour_slices(k, n, offset) for k in range(n)])  # (slices, 3)
    return stack[idx.reshape(-1), 0].reshape(n, 3, *stack.shape[2:])


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad the last two axes up to a multiple (bottom/right); return the old size."""
    # Pads a whole (N, C, H, W) batch; MONAI's DivisiblePad works per sample.
    h, w = x.shape[-2:]
    ph = (-h) % multiple
    pw = (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)
