"""Segmentation of a zero-padded field of view (run by hand).

    .venv/bin/python benchmarks/segment_padding.py [--skip-sudirman]

Scanners and converters pad a field of view with zeros: a tall matrix holding a short
spine, a rectangular field stored square (47 of the 100 SPIDER slices carry more than
16 mm of it on a side). The zeros are not anatomy, but the network normalises its
features over the whole slice and the intensity window is a percentile of the whole
volume, so they change what it paints. The segmentation does not crop them (a crop was
tried on 2026-12-07 and reverted: docs/segmentation.md, "Zero-padded fields of view (open)").

1. A real 1 mm T2 volume with manual disc masks (``../shared/data/lumbar-t2-discs/
   sub-fcs11``) with zero rows above (380 mm, a whole-spine field of view) and zero
   columns in front and behind (100 mm each): disc Dice against the mask, discs named,
   and each disc's volume against the unpadded run. sub-fcs11 is one of the volumes the
   shipped model was trained on, so the Dice is optimistic: read the change against the
   unpadded row.
2. The 505 Sudirman mid-sagittal slices (never trained on), as stored and with 100 mm of
   zero rows above and 50 mm of zero columns on each side: the share whose L3-L4, L4-L5
   and L5-S1 are found, named and inside the annotated disc boxes in order (the
   criterion of ``benchmarks/segment_eval.py midsag``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

from discquant.evaluate.segmentation import evaluate_case, midsag_check, read_boxes
from discquant.io.study import Volume
from discquant.segment import infer, load_segmentation_model
from discquant.segment.data import load_nifti_volume
from discquant.segment.levels import disc_label

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
LABELS = {lv: disc_label(lv) for lv in LEVELS}


def _padded(
    data: np.ndarray, affine: np.ndarray, *, rows_before: int, cols_each_side: int
) -> tuple[np.ndarray, np.ndarray]:
    """``data`` with zero rows (first voxel axis) before it and zero columns (second axis)
    on both sides; the affine moved so that the anatomy keeps its world position."""
    out = np.pad(data, ((rows_before, 0), (cols_each_side, cols_each_side), (0, 0)))
    shift = np.eye(4)
    shift[:3, 3] = [-rows_before, -cols_each_side, 0]
    return out, affine @ shift


def real_volume(model: infer.SegmentationModel) -> None:
    folder = DATA / "lumbar-t2-discs"
    img = nib.load(str(folder / "sub-fcs11_T2w.nii.gz"))
    t2 = np.asarray(img.dataobj, dtype=np.float32)
    mask = np.asarray(nib.load(str(folder / "sub-fcs11_dseg.nii.gz")).dataobj).astype(np.int16)
    assert nib.aff2axcodes(img.affine) == ("I", "P", "R"), "rows before = above"
    cases = {
        "none": (0, 0),
        "380 mm above": (380, 0),
        "100 mm front and back": (0, 100),
        "both": (380, 100),
    }
    voxel_mm3 = float(np.prod(nib.affines.voxel_sizes(img.affine)))
    volumes: dict[str, dict[str, float]] = {}
    print("1. sub-fcs11, 1 mm; padding | disc Dice | named | volume vs unpadded run, %")
    for name, (above, side) in cases.items():
        data, aff = _padded(t2, img.affine, rows_before=above, cols_each_side=side)
        ref, _ = _padded(mask, img.affine, rows_before=above, cols_each_side=side)
        pred = np.asarray(infer.segment_spine(Volume(data, aff), model=model).labels.data)
        ref_labels = np.where(ref > 0, ref + LABELS["L1-L2"] - 1, 0)  # 1..5 -> 120..124
        scores = evaluate_case(pred.astype(np.int32), ref_labels.astype(np.int32), (1, 1, 1))
        dice, named = scores.dice["disc"], sum(scores.levels_named.values())
        volumes[name] = {lv: float((pred == LABELS[lv]).sum()) * voxel_mm3 for lv in LEVELS}
        change = [f"{100 * (volumes[name][lv] / volumes['none'][lv] - 1):+.1f}" for lv in LEVELS]
        print(f"{name} | {dice:.3f} | {named}/5 | {' '.join(change)}", flush=True)


def sudirman(model: infer.SegmentationModel) -> None:
    folder = DATA / "sudirman-midsag-t2"
    boxes = read_boxes(folder / "boxes.tsv")
    ok = {"as stored": 0, "padded": 0}
    changed = 0
    files = sorted(folder.glob("sub-*_T2w.nii.gz"))
    for path in files:
        sub = path.name.split("_")[0]
        vol = load_nifti_volume(path)
        assert nib.aff2axcodes(vol.affine) == ("I", "P", "R"), f"{path}: rows before = above"
        spacing = nib.affines.voxel_sizes(vol.affine)
        data, aff = _padded(
            np.asarray(vol.data),
            vol.affine,
            rows_before=round(100 / spacing[0]),
            cols_each_side=round(50 / spacing[1]),
        )
        names = []
        for how, image in (("as stored", vol), ("padded", Volume(data, aff))):
            seg = infer.segment_spine(image, model=model)
            r = midsag_check(sub, seg.levels, vol.affine, vol.shape, boxes.get(sub))
            ok[how] += int(bool(r.in_boxes and r.order_ok))
            names.append([lv.name for lv in seg.levels])
        changed += int(names[0] != names[1])
    n = len(files)
    print(
        f"2. Sudirman, {n} slices: L3-S1 found, named, in the boxes in order: as stored "
        f"{100 * ok['as stored'] / n:.1f} %, padded {100 * ok['padded'] / n:.1f} %; "
        f"{changed} slices with other disc names when padded"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-sudirman", action="store_true")
    a = ap.parse_args()
    model = load_segmentation_model()
    real_volume(model)
    if not a.skip_sudirman:
        sudirman(model)


if __name__ == "__main__":
    main()
