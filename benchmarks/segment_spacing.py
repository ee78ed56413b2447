"""Segmentation and disc sizes against the in-plane spacing of the T2 (run by hand).

    .venv/bin/python benchmarks/segment_spacing.py

Makes 4 mm sagittal slices from a real 1 mm T2 volume with manual disc masks
(``../shared/data/lumbar-t2-discs/sub-fcs11``; each 4 mm slice the mean of four 1 mm
ones), resamples them in-plane to each spacing (Gaussian anti-aliasing when coarser,
bilinear; the mask by nearest neighbour) and runs ``analyze`` on the T2 alone. Prints,
per spacing, the disc Dice of the segmentation against the mask on the same grid, and each
disc's reported volume and middle height against the volume of the 1 mm mask and the
result at 1 mm. sub-fcs11 is one of the volumes the shipped model was trained on, so
the Dice is optimistic: read the trend with spacing. Checks the
``inplane_spacing_coarse`` flag (coarser than 1.2 mm).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from discquant.io.study import Series, SeriesRole, Study, Volume
from discquant.pipeline import analyze

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lumbar-t2-discs"
LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


def _resample(
    data: np.ndarray, affine: np.ndarray, spacing_mm: float, *, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (rows, cols, slices at 1 x 1 x 4 mm) resampled in-plane to ``spacing_mm``."""
    f = np.array([spacing_mm, spacing_mm, 1.0])
    shape = [max(1, round(n / fi)) for n, fi in zip(data.shape, f, strict=True)]
    src = data
    if order > 0 and spacing_mm > 1:  # anti-aliasing, as a scanner's coarser matrix
        src = ndi.gaussian_filter(data, [(spacing_mm - 1) / 2.355] * 2 + [0])
    offset = (f - 1) / 2  # voxel centres of the new grid in old voxel coordinates
    out = ndi.affine_transform(
        src, np.diag(f), offset=offset, output_shape=shape, order=order, mode="nearest"
    )
    step = np.eye(4)
    step[:3, :3], step[:3, 3] = np.diag(f), offset
    return out, affine @ step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spacings", default="0.3,1.0,1.2,1.5,2.0")
    a = ap.parse_args()
    img = nib.load(str(DATA / "sub-fcs11_T2w.nii.gz"))
    t2 = np.asarray(img.dataobj, dtype=np.float32)
    mask = np.asarray(nib.load(str(DATA / "sub-fcs11_dseg.nii.gz")).dataobj).astype(np.int16)
    mask_mm3 = {lv: float((mask == k + 1).sum()) for k, lv in enumerate(LEVELS)}  # 1 mm³
    slice_axis = 2  # (I, P, R): slices left-right
    starts = np.arange(0, t2.shape[slice_axis] - 3, 4)
    thick = np.stack([t2[..., s : s + 4].mean(axis=-1) for s in starts], axis=-1)
    thick_mask = mask[..., starts + 2]
    affine = img.affine.copy()
    affine[:3, 3] = img.affine[:3, :3] @ [0, 0, 1.5] + img.affine[:3, 3]  # slab centres
    affine[:3, 2] *= 4
    rows = []
    for spacing in (float(s) for s in a.spacings.split(",")):
        data, aff = _resample(thick, affine, spacing, order=1)
        ref, _ = _resample(thick_mask, affine, spacing, order=0)
        study = Study("fcs11", (Series(SeriesRole.T2, "bench", "T2", Volume(data, aff), "sag"),))
        res = analyze(study)
        pred = res.labels_t2.data if res.labels_t2 is not None else np.zeros_like(ref)
        p, r = pred >= 120, ref > 0
        dice = 2 * (p & r).sum() / max(p.sum() + r.sum(), 1)
        discs = {d.level: d for d in res.discs}
        named = 0  # reference discs whose most frequent predicted label is their own
        for k in range(5):
            votes = pred[(ref == k + 1) & (pred > 0)]
            named += int(votes.size > 0 and np.bincount(votes).argmax() == 120 + k)
        rows.append((spacing, dice, discs, named, "inplane_spacing_coarse" in res.flags))
    base = next((d for s, _, d, _, _ in rows if abs(s - 1.0) < 1e-6), None)
    print(f"sub-fcs11, 4 mm slices; mask volumes (1 mm): {mask_mm3}")
    print("spacing mm | disc Dice | named | volume vs mask, % | height vs 1 mm | flag")
    for spacing, dice, discs, named, flagged in rows:
        vol = [
            f"{100 * ((discs[lv].volume_mm3 or np.nan) / mask_mm3[lv] - 1):+.0f}" for lv in LEVELS
        ]
        height = [
            f"{(discs[lv].height_middle_mm or np.nan) - (base[lv].height_middle_mm or np.nan):+.1f}"
            if base
            else "?"
            for lv in LEVELS
        ]
        print(
            f"{spacing:.1f} | {dice:.3f} | {named}/5 | {' '.join(vol)} | {' '.join(height)} "
            f"| {flagged}"
        )


if __name__ == "__main__":
    main()
