"""Bring the T2-grid segmentation onto the DWI grid.

DWI and T2 differ in resolution and slice positions. The transfer is done in world
coordinates (both affines map voxels to RAS mm), each DWI voxel sampled at
``supersample`` points (4 × 4 × 4 by default); a DWI voxel takes the label that covers
the largest share of it (the most frequent label among its points, background included):
real partial volume, not nearest-neighbour luck at one centre point. Points beyond the
source's field of view are not counted: a DWI voxel with at least half the view of the
best-covered one (a whole voxel, except for a T2 slab thinner than a DWI slice) takes the
majority of its part in view; with less it stays background. A mid-sagittal T2 slice thus
labels the DWI slice(s) it overlaps most.

EPI distortion is not modelled here. A per-disc registration refinement (translation
maximising the correlation of T2 or of the disc mask with the b≈0 image) was measured on
phantoms with distortion on and made the nucleus ADC worse, not better (docs/measurement.md),
so it is not used.

nibabel's ``resample_from_to`` does nearest-neighbour or spline resampling of one image;
it has no partial-volume label transfer, which is why this is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from nibabel.affines import apply_affine
from scipy import ndimage

from discquant.io.study import Volume

NOT_SEEN = -1
"""Sample value beyond the source grid's extent (label maps hold labels ≥ 0)."""


@dataclass(frozen=True)
class LabelTransfer:
    """Labels on a target grid.

    Attributes
    ----------
    labels
        Majority label of each target voxel (int16).
    purity
        Fraction of the voxel's sub-samples in the source's field of view that carry
        the majority label (0–1).
    """

    labels: Volume
    purity: npt.NDArray[np.float32]


def _subsample_offsets(supersample: tuple[int, int, int]) -> npt.NDArray[np.float64]:
    """Offsets (voxel units) of sub-sample points inside a voxel centred on 0."""
    axes = [(np.arange(n) + 0.5) / n - 0.5 for n in supersample]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return grid.reshape(-1, 3)


def _target_box(
    labels: Volume, target_affine: npt.NDArray[np.float64], target_shape: tuple[int, int, int]
) -> tuple[npt.NDArray[np.int64], tuple[int, int, int]] | None:
    """Target-grid box (start index, shape) covering the labels' non-zero voxels."""
    idx = np.argwhere(labels.data != 0)
    if idx.size == 0:
        return None
    lo, hi = idx.min(axis=0) - 1, idx.max(axis=0) + 1
    corners = np.array(
        [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
    )
    world = apply_affine(labels.affine, corners)
    tvox = apply_affine(np.linalg.inv(target_affine), world)
    start = np.maximum(np.floor(tvox.min(axis=0)).astype(int) - 1, 0)
    stop = np.minimum(np.ceil(tvox.max(axis=0)).astype(int) + 2, np.asarray(target_shape))
    if np.any(stop <= start):
        return None
    shape = (int(stop[0] - start[0]), int(stop[1] - start[1]), int(stop[2] - start[2]))
    return start.astype(np.int64), shape


def transfer_labels(
    labels: Volume,
    target_affine: npt.NDArray[np.float64],
    target_shape: tuple[int, int, int],
    *,
    supersample: tuple[int, int, int] = (4, 4, 4),
) -> LabelTransfer:
    """Majority-vote label transfer from ``labels``' grid to a target grid.

    Parameters
    ----------
    labels
        Integer label map (e.g. the segmentation on the T2 grid).
    target_affine, target_shape
        The grid to transfer to (e.g. the DWI's first three axes).
    supersample
        Sub-samples per target voxel along each axis. Even counts keep every sample off
        the voxel centre, where a source grid offset by half a voxel (common between
        T2 and DWI slices) would put it exactly on a source boundary and bias the
        rounding to one side (measured: 1.4 mm lateral shift of a disc with 3 × 3 × 3).

    Returns
    -------
    LabelTransfer
        Majority labels and their purity; voxels that no label reaches, or with less
        than half the view of the best-covered voxel, are 0 with purity 1.
    """
    target_affine = np.asarray(target_affine, dtype=np.float64)
    majority = np.zeros(target_shape, dtype=np.int16)
    purity = np.ones(target_shape, dtype=np.float32)
    box = _target_box(labels, target_affine, target_shape)
    if box is None:
        return LabelTransfer(Volume(majority, target_affine), purity)
    # Only the target voxels that can see a label are sampled (the spine is a small part
    # of a DWI field of view); the rest stays background.
    start, shape = box
    idx = np.indices(shape, dtype=np.float64).reshape(3, -1) + start[:, None]
    inv = np.linalg.inv(labels.affine) @ target_affine  # target voxel -> source voxel
    source = labels.data.astype(np.int16)
    samples = np.stack(
        [
            ndimage.map_coordinates(
                source,
                apply_affine(inv, (idx + off[:, None]).T).T,
                order=0,
                # A sample belongs to the source voxel whose extent holds it, edge voxels
                # included ("constant" gave 0 beyond the edge voxels' centres); beyond the
                # source's extent it is NOT_SEEN, not background.
                mode="grid-constant",
                cval=NOT_SEEN,
            )
            for off in _subsample_offsets(supersample)
        ]
    )
    values = np.unique(samples[samples != NOT_SEEN])
    if values.size == 0:
        return LabelTransfer(Volume(majority, target_affine), purity)
    counts = np.stack([(samples == v).sum(axis=0) for v in values])  # (L, N)
    seen = counts.sum(axis=0)
    # The vote is among the samples the source saw: a target voxel half outside the
    # source's field of view takes the label of the half inside. A mid-sagittal T2
    # slice offset by half a slice from the DWI's covers half of two DWI slices; as
    # background the unseen halves won every tie, and no disc reached the DWI.
    # A voxel with less than half the view of the best-covered voxel stays background:
    # its label would be a guess about a part the source never imaged. "The best-covered
    # voxel" is a whole one in any ordinary transfer; for a T2 slab thinner than a DWI
    # slice (one 3 mm slice, 5 mm DWI slices) no voxel is half in view, and the DWI
    # slices that overlap the slab most take its labels.
    in_view = (seen > 0) & (2 * seen >= seen.max())
    # A tie goes to the lower label value (argmax takes the first of the sorted values):
    # background before the disc, "not nucleus" before the nucleus. Conservative for the
    # ADC cores, and measured so: ties to the higher label, or to the label at the voxel's
    # centre, let annulus into nuclei (docs/measurement.md, "Ties go to the lower label").
    best = np.where(in_view, values[counts.argmax(axis=0)], 0)
    share = np.where(in_view, counts.max(axis=0) / np.maximum(seen, 1), 1.0)
    inside = tuple(slice(int(a), int(a) + n) for a, n in zip(start, shape, strict=True))
    majority[inside] = best.reshape(shape)
    purity[inside] = share.reshape(shape)
    return LabelTransfer(Volume(majority, target_affine), purity)
