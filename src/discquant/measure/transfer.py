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
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

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
    full_shape = target_shape
    box = _target_box(labels, target_affine, target_shape, margin_mm=_max_shift(shifts_mm))
    if box is None:
        empty = np.zeros(full_shape, dtype=np.int16)
        return LabelTransfer(
            Volume(empty, np.asarray(target_affine, dtype=np.float64)),
            np.ones(full_shape, dtype=np.float32),
            {},
        )
    # Only the target voxels that can see a label are sampled (the spine is a small part
    # of a DWI field of view); the rest is background.
    lo, target_shape = box
    box_affine = target_affine.copy()
    box_affine[:3, 3] = target_affine[:3, :3] @ lo + target_affine[:3, 3]
    offsets = _subsample_offsets(supersample)
    world = _target_points_world(box_affine, target_shape, offsets)  # (S, 3, N)
    n_sub = world.shape[0]
    shifts_mm = {k: v for k, v in (shifts_mm or {}).items() if any(v)}
    samples = np.stack([_sample_labels(labels, world[s], np.zeros(3)) for s in range(n_sub)])
    if shifts_mm:
        # A shifted label is re-sampled with its own translation and replaces its
        # unshifted samples: a disc moves, its neighbours stay. Only the target voxels
        # near the label are re-sampled.
        base = samples
        samples = np.where(np.isin(base, list(shifts_mm)), 0, base).astype(np.int16)
        reach = float(np.abs(target_affine[:3, :3]).sum(axis=0).max())
        for label, shift in shifts_mm.items():
            near = _near_label(base == label, target_shape, shift, target_affine, reach)
            if not near.any():
                continue
            moved = np.stack(
                [_sample_labels(labels, world[s][:, near], np.asarray(shift)) for s in range(n_sub)]
            )
            sub = samples[:, near]
            samples[:, near] = np.where((moved == label) & (sub == 0), moved, sub)
    values = np.unique(samples)
    counts = np.stack([(samples == v).sum(axis=0) for v in values])  # (L, N)
    inside = tuple(slice(int(a), int(a) + n) for a, n in zip(lo, target_shape, strict=True))
    majority = np.zeros(full_shape, dtype=np.int16)
    purity = np.ones(full_shape, dtype=np.float32)
    majority[inside] = values[counts.argmax(axis=0)].astype(np.int16).reshape(target_shape)
    purity[inside] = (counts.max(axis=0) / n_sub).astype(np.float32).reshape(target_shape)
    return LabelTransfer(
        labels=Volume(majority, np.asarray(target_affine, dtype=np.float64)),
        purity=purity,
        shifts_mm={k: (float(v[0]), float(v[1]), float(v[2])) for k, v in shifts_mm.items()},
    )


def _max_shift(shifts_mm: dict[int, tuple[float, float, float]] | None) -> float:
    return max((float(np.linalg.norm(v)) for v in (shifts_mm or {}).values()), default=0.0)


def _target_box(
    labels: Volume,
    target_affine: npt.NDArray[np.float64],
    target_shape: tuple[int, int, int],
    *,
    margin_mm: float,
) -> tuple[npt.NDArray[np.int64], tuple[int, int, int]] | None:
    """Target-grid box (start index, shape) covering the labels' non-zero voxels + margin."""
    idx = np.argwhere(labels.data != 0)
    if idx.size == 0:
        return None
    lo, hi = idx.min(axis=0) - 1, idx.max(axis=0) + 1
    corners = np.array(
        [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])]
    )
    world = corners @ labels.affine[:3, :3].T + labels.affine[:3, 3]
    inv = np.linalg.inv(target_affine)
    tvox = world @ inv[:3, :3].T + inv[:3, 3]
    zooms = np.sqrt((target_affine[:3, :3] ** 2).sum(axis=0))
    pad = np.ceil(margin_mm / zooms).astype(int) + 1
    start = np.maximum(np.floor(tvox.min(axis=0)).astype(int) - pad, 0)
    stop = np.minimum(np.ceil(tvox.max(axis=0)).astype(int) + pad + 1, np.asarray(target_shape))
    if np.any(stop <= start):
        return None
    shape = (int(stop[0] - start[0]), int(stop[1] - start[1]), int(stop[2] - start[2]))
    return start.astype(np.int64), shape


def _near_label(
    hits: npt.NDArray[np.bool_],
    target_shape: tuple[int, int, int],
    shift: tuple[float, float, float],
    target_affine: npt.NDArray[np.float64],
    reach_mm: float,
) -> npt.NDArray[np.bool_]:
    """Flat mask of target voxels within the shift (+ one voxel) of the label's samples."""
    mask = hits.any(axis=0).reshape(target_shape)
    if not mask.any():
        return mask.ravel()
    zooms = np.sqrt((target_affine[:3, :3] ** 2).sum(axis=0))
    grow = int(np.ceil((np.linalg.norm(shift) + reach_mm) / zooms.min()))
    grown = ndimage.binary_dilation(mask, iterations=max(grow, 1))
    return np.asarray(grown.ravel())


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


def _shift_score(
    t2: Volume,
    affine: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    target: npt.NDArray[np.float32],
    dy: float,
    dz: float,
) -> float:
    """NCC of the T2 moved by (0, dy, dz) mm, sampled on a sub-grid, with the target."""
    return _ncc(resample_image(t2, affine, shape, shift_mm=(0.0, dy, dz)), target)


def _grid_search(
    score: Callable[[float, float], float], candidates: list[tuple[float, float]]
) -> tuple[float, float, float]:
    """(best score, dy, dz); candidates are tried from the smallest shift outwards, so on
    a tie the smaller shift wins and noise alone does not move a disc."""
    best = (-2.0, 0.0, 0.0)
    for dy, dz in sorted(candidates, key=lambda c: c[0] ** 2 + c[1] ** 2):
        value = score(dy, dz)
        if value > best[0] + 1e-6:
            best = (value, dy, dz)
    return best


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
    axes) within ±``search_mm``, first on a grid of 2 × ``step_mm``, then ``step_mm`` around
    the best, scoring the normalised
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
    coarse = np.arange(-search_mm, search_mm + 1e-9, 2 * step_mm)
    candidates = [(float(dy), float(dz)) for dy in coarse for dz in coarse]
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
        sub_shape = (int(hi[0] - lo[0]), int(hi[1] - lo[1]), int(hi[2] - lo[2]))
        target = b0.data[box].astype(np.float32)

        score = partial(_shift_score, t2, sub_affine, sub_shape, target)
        best = _grid_search(score, candidates)
        fine = [
            (best[1] + dy, best[2] + dz)
            for dy in (-step_mm, 0.0, step_mm)
            for dz in (-step_mm, 0.0, step_mm)
            if abs(best[1] + dy) <= search_mm and abs(best[2] + dz) <= search_mm
        ]
        best = _grid_search(score, fine)
        shifts[label] = (0.0, best[1], best[2])
        log.debug("disc %d: shift %s mm (NCC %.3f)", label, shifts[label], best[0])
    return shifts
