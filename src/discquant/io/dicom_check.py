"""Check dcm2niix's stacking of a multi-volume DICOM series against its source images.

dcm2niix orders the images of a multi-volume series (a DWI stored one file per slice) by
their volume and instance numbers. Where those numbers do not follow the acquisition (an
interleaved slice order, instance numbers that restart at 1 for each b-value, as some
exports write them) it stacks the images out of place and says so only in its console
text ("Instance Number (0020,0013) order is not spatial", "Check sorted order"), which it
also prints for series it stacks correctly (an audit: files numbered slice by slice, or
renamed at random). So the result is checked, not the text: a few source images are read
with pydicom and looked up in the converted NIfTI at their own world position, and, where
the header gives their b-value, in a volume of that b-value. Each must be there, exactly
up to a linear rescaling (dcm2niix may apply Philips' precise scaling instead of the
display scaling pydicom applies).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from discquant.io.nifti import RawImage

log = logging.getLogger(__name__)

SAMPLED_FILES = 8
"""How many source images of a series are looked up (spread over its files)."""

MAX_RELATIVE_RESIDUAL = 1e-3
"""A source image matches a NIfTI slice when the NIfTI values are a linear function of its
values to within this share of their range (float32 storage and rounding of the scaling)."""

VOXEL_TOLERANCE = 0.3
"""A source pixel lies on the NIfTI grid when its voxel coordinates are this close to whole
numbers (an image stacked at another position lands between voxels, half a slice off in an
interleaved stack, or on another slice, whose pixels then differ). Wider than the slice
drift the importer lets pass (0.1 mm in plane: 0.125 of a 0.8 mm pixel) and the
unevenness of its gaps (5 %)."""


def _b_value(ds: Any) -> float | None:
    """The b-value (s/mm²) in the standard DiffusionBValue attribute, or None."""
    value = getattr(ds, "DiffusionBValue", None)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _pixel_world_ras(ds: Any, points: npt.NDArray[np.intp]) -> npt.NDArray[np.float64] | None:
    """World (RAS, mm) positions of the pixel centres ``points`` (row, column) of a
    single-frame image; None without a usable plane geometry."""
    try:
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64)
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=np.float64)
        row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        return None
    if iop.size != 6 or ipp.size != 3:
        return None
    lps = (
        ipp[None, :]
        + points[:, 1:2] * col_mm * iop[None, :3]  # along a row: the column index
        + points[:, 0:1] * row_mm * iop[None, 3:]  # down a column: the row index
    )
    return lps * np.array([-1.0, -1.0, 1.0])


def _found_in(
    values: npt.NDArray[np.float64],
    world: npt.NDArray[np.float64],
    b_value: float | None,
    images: Sequence[RawImage],
) -> bool:
    """Whether some volume of ``images`` holds ``values`` at ``world`` (of ``b_value``)."""
    design = np.column_stack([values, np.ones_like(values)])
    for raw in images:
        data = np.asarray(raw.volume.data)
        vox = np.linalg.solve(raw.volume.affine, np.column_stack([world, np.ones(len(world))]).T)
        ijk = vox[:3].T
        index = np.rint(ijk).astype(int)
        if np.abs(ijk - index).max() > VOXEL_TOLERANCE:
            continue
        if (index < 0).any() or (index >= np.asarray(data.shape[:3])).any():
            continue
        stack = data.reshape(*data.shape[:3], -1)
        for t in range(stack.shape[3]):
            if b_value is not None and raw.bvals is not None:
                b = float(raw.bvals[t])
                if abs(b - b_value) > 5.0 + 0.02 * b_value:
                    continue
            got = stack[index[:, 0], index[:, 1], index[:, 2], t].astype(float)
            coef, *_ = np.linalg.lstsq(design, got, rcond=None)
            span = float(np.ptp(got))
            if span > 0 and np.abs(design @ coef - got).max() <= MAX_RELATIVE_RESIDUAL * span:
                return True
    return False


def misplaced_image(
    files: Sequence[Path], readable: Sequence[Path], images: Sequence[RawImage]
) -> tuple[Path, float | None] | None:
    """A source image of a multi-volume series that dcm2niix stacked out of place.

    Parameters
    ----------
    files, readable
        The series' files as found and as dcm2niix read them (decompressed copies).
    images
        What dcm2niix made of them (diffusion pieces joined).

    Returns
    -------
    (file, b-value) or None
        The first sampled file whose image is not at its own position (in a volume of its
        b-value, where the header gives one), or None when every sampled image is.
    """
    import pydicom

    picks = np.unique(np.linspace(0, len(files) - 1, min(SAMPLED_FILES, len(files))).astype(int))
    for k in picks:
        try:
            ds = pydicom.dcmread(readable[k])
            pixels = np.asarray(ds.pixel_array, dtype=float)
        except Exception as exc:  # a codec pydicom lacks: dcm2niix read it, so do not judge
            log.debug("not checked against %s: %s", files[k], exc)
            continue
        if pixels.ndim != 2 or np.ptp(pixels) == 0:  # a multi-frame or colour file; a blank
            continue
        rows, cols = pixels.shape
        step = max(1, int(np.sqrt(rows * cols / 400)))
        grid = np.stack(np.meshgrid(np.arange(0, rows, step), np.arange(0, cols, step)), -1)
        points = grid.reshape(-1, 2)
        world = _pixel_world_ras(ds, points)
        if world is None:
            continue
        values = pixels[points[:, 0], points[:, 1]]
        if np.ptp(values) == 0:
            continue
        b_value = _b_value(ds)
        if not _found_in(values, world, b_value, images):
            return files[k], b_value
    return None
