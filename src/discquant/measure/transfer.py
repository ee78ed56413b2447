"""Bring the T2-grid segmentation onto the DWI grid.

DWI and T2 differ in resolution, slice positions and EPI distortion. The transfer is done
in world coordinates (both affines map voxels to RAS mm), each DWI voxel sampled at
``supersample`` points so that a label covers a DWI voxel only when most of the voxel
lies inside it (real partial volume, not nearest-neighbour luck). An optional
refinement then searches, per disc, the in-plane translation that best aligns the T2
image with the b≈0 image around that disc (normalised cross-correlation), which absorbs
the local shift that EPI distortion adds along the phase-encode axis.

nibabel's ``resample_from_to`` does nearest-neighbour or spline resampling of one image;
it has no partial-volume label transfer, which is why the label part is written here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from discquant.io.study import Volume

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelTransfer:
    """Labels on a target grid.

    Attributes
    ----------
    labels
        Majority label of each target voxel (int16).
    purity
        Fraction of the voxel's sub-samples that carry the majority label (0–1).
    shifts_mm
        Per label, the world translation (RAS mm) applied by the refinement.
    """

    labels: Volume
    purity: npt.NDArray[np.float32]
    shifts_mm: dict[int, tuple[float, float, float]]


def _subsample_offsets(supersample: tuple[int, int, int]) -> npt.NDArray[np.float64]:
    """Offsets (voxel units) of sub-sample points inside a voxel centred on 0."""
    axes = [(np.arange(n) + 0.5) / n - 0.5 for n in supersample]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return grid.reshape(-1, 3)


def _target_points_world(
    affine: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    offsets: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """World coordinates of every sub-sample point, shape (n_offsets, 3, *shape)."""
    idx = np.indices(shape, dtype=np.float64).reshape(3, -1)
    pts = []
    for off in offsets:
        vox = idx + off[:, None]
        pts.append(affine[:3, :3] @ vox + affine[:3, 3:4])
    return np.stack(pts)


def _sample_labels(
    labels: Volume, world_pts: npt.NDArray[np.float64], shift_mm: npt.NDArray[np.float64]
) -> npt.NDArray[np.int16]:
    """Nearest-neighbour label at world points (+ shift), 0 outside the source grid."""
    inv = np.linalg.inv(labels.affine)
    shifted = world_pts + shift_mm[:, None]
    vox = inv[:3, :3] @ shifted + inv[:3, 3:4]
    out: npt.NDArray[np.int16] = ndimage.map_coordinates(
        labels.data.astype(np.int16), vox, order=0, mode="constant", cval=0
    ).astype(np.int16)
    return out


def transfer_labels(
    labels: Volume,
    target_affine: npt.NDArray[np.float64],
    target_shape: tuple[int, int, int],
    *,
    supersample: tuple[int, int, int] = (3, 3, 3),
    shifts_mm: dict[int, tuple[float, float, float]] | None = None,
) -> LabelTransfer:
    """Majority-vote label transfer from ``labels``' grid to a target grid.

    Parameters
    ----------
    labels
        Integer label map (e.g. the segmentation on the T2 grid).
    target_affine, target_shape
        The grid to transfer to (e.g. the DWI's first three axes).
    supersample
        Sub-samples per target voxel along each axis.
    shifts_mm
        Optional per-label world translation: a target voxel samples label ``l`` at
        ``world + shifts_mm[l]``. Labels not listed are not shifted.

    Returns
    -------
    LabelTransfer
        Majority labels, their purity and the shifts used.
    """
    offsets = _subsample_offsets(supersample)
    world = _target_points_world(target_affine, target_shape, offsets)  # (S, 3, N)
    n_sub, _, n_vox = world.shape
    shifts_mm = dict(shifts_mm or {})
    base = np.stack([_sample_labels(labels, world[s], np.zeros(3)) for s in range(n_sub)])
    samples = base
    if shifts_mm:
        # Each shifted label is re-sampled with its own translation and replaces the
        # unshifted samples of that label: a disc moves, its neighbours stay.
        samples = np.where(np.isin(base, list(shifts_mm)), 0, base).astype(np.int16)
        for label, shift in shifts_mm.items():
            moved = np.stack(
                [_sample_labels(labels, world[s], np.asarray(shift)) for s in range(n_sub)]
            )
            samples = np.where((moved == label) & (samples == 0), moved, samples)
    values = np.unique(samples)
    counts = np.stack([(samples == v).sum(axis=0) for v in values])  # (L, N)
    best = counts.argmax(axis=0)
    majority = values[best].astype(np.int16).reshape(target_shape)
    purity = (counts.max(axis=0) / n_sub).astype(np.float32).reshape(target_shape)
    del n_vox
    return LabelTransfer(
        labels=Volume(majority, np.asarray(target_affine, dtype=np.float64)),
        purity=purity,
        shifts_mm={k: (float(v[0]), float(v[1]), float(v[2])) for k, v in shifts_mm.items()},
    )


def resample_image(
    image: Volume,
    target_affine: npt.NDArray[np.float64],
    target_shape: tuple[int, int, int],
    *,
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    order: int = 1,
) -> npt.NDArray[np.float32]:
    """Sample a 3D image at the target grid's voxel centres (+ a world shift)."""
    inv = np.linalg.inv(image.affine)
    idx = np.indices(target_shape, dtype=np.float64).reshape(3, -1)
    world = target_affine[:3, :3] @ idx + target_affine[:3, 3:4] + np.asarray(shift_mm)[:, None]
    vox = inv[:3, :3] @ world + inv[:3, 3:4]
    out = ndimage.map_coordinates(
        image.data.astype(np.float32), vox, order=order, mode="constant", cval=0.0
    )
    return out.reshape(target_shape).astype(np.float32)


def _ncc(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else -1.0


def refine_disc_shifts(
    t2: Volume,
    labels_t2: Volume,
    b0: Volume,
    disc_labels: list[int],
    *,
    search_mm: float = 4.0,
    step_mm: float = 0.5,
    margin_mm: float = 8.0,
) -> dict[int, tuple[float, float, float]]:
    """Per-disc in-plane translation that best aligns T2 with b≈0 around each disc.

    The search covers the sagittal plane (anterior–posterior and superior–inferior world
    axes) on a grid of ``step_mm`` within ±``search_mm``, scoring the normalised
    cross-correlation between the T2 image resampled onto the DWI grid and the b≈0
    image inside the disc's bounding box grown by ``margin_mm``. Both images are
    T2-weighted, so the bright nucleus and dark endplates drive the match.

    Returns
    -------
    dict
        ``{disc_label: (0, dy_mm, dz_mm)}`` in RAS mm, for discs present on the T2 grid.
    """
    b0_shape = b0.shape[:3]
    transfer = transfer_labels(labels_t2, b0.affine, (b0_shape[0], b0_shape[1], b0_shape[2]))
    steps = np.arange(-search_mm, search_mm + 1e-9, step_mm)
    candidates = [(float(dy), float(dz)) for dy in steps for dz in steps]
    shifts: dict[int, tuple[float, float, float]] = {}
    zooms = np.asarray(b0.voxel_mm)
    for label in disc_labels:
        mask = transfer.labels.data == label
        if mask.sum() < 4:
            continue
        lo = np.argwhere(mask).min(axis=0)
        hi = np.argwhere(mask).max(axis=0) + 1
        grow = np.ceil(margin_mm / zooms).astype(int)
        lo = np.maximum(lo - grow, 0)
        hi = np.minimum(hi + grow, np.asarray(b0_shape))
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        sub_affine = b0.affine.copy()
        sub_affine[:3, 3] = b0.affine[:3, :3] @ lo + b0.affine[:3, 3]
        sub_shape = tuple(int(h - lo_) for lo_, h in zip(lo, hi, strict=True))
        target = b0.data[box].astype(np.float32)
        best = (-2.0, (0.0, 0.0, 0.0))
        # Candidates from the smallest shift outwards: on a tie the smaller shift wins,
        # so that noise alone does not move a disc.
        for dy, dz in sorted(candidates, key=lambda c: c[0] ** 2 + c[1] ** 2):
            shift = (0.0, float(dy), float(dz))
            moving = resample_image(t2, sub_affine, sub_shape, shift_mm=shift)  # type: ignore[arg-type]
            score = _ncc(moving, target)
            if score > best[0] + 1e-6:
                best = (score, shift)
        shifts[label] = best[1]
        log.debug("disc %d: shift %s mm (NCC %.3f)", label, best[1], best[0])
    return shifts
