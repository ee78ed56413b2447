"""Level naming when the field of view ends above the sacrum (run by hand; needs ../shared).

    .venv/bin/python benchmarks/segment_cut_fov.py [--model M] [--limit N] [--out F.json]
        [--min-sacrum-reach R]    # R = 0 switches the reach rule off (the ablation)

Two sets of crops, each segmented and named with no sacrum (or only part of it) in view:

1. ``volumes``: each real labelled volume of ``lumbar-t2-discs`` and four of
   ``lumbar-t2-vertebrae``, cut through the L4 and through the L5 body (from their own
   labels). Every crop must be flagged ``sacrum_not_in_fov``.
2. ``midsag``: the 605 real mid-sagittal slices of ``spider-midsag-t2`` and
   ``sudirman-midsag-t2``, cut at six heights placed from the model's own names on the
   whole slice (its L3-L4, L4-L5 and L5-S1 centres; ``d`` = the L4-L5 → L5-S1 distance):
   through the L4 body, through the L5 body, 0.3 d / 0.2 d / 0.1 d above the L5-S1
   centre (the lower L5 body, its endplate, the top of the disc), and 0.5 d below it
   (in S1). A crop's lowest disc is *misnamed* when it is not the disc the whole slice
   calls L5-S1 (nearest centre; it is always named L5-S1), *unflagged* when that happens
   without ``sacrum_not_in_fov``. Only slices whose whole image is named from a sacrum
   (no flag, an L5-S1 found) are cut; the others are counted. Crops above S1 hold no
   sacrum, so a flag on them is right even where the names are; on S1 crops it is the
   rule's cost. Crops that cannot be made (reference disc missing, cut outside the
   image, field of view too small to segment) are counted as skipped.

Prints a table per crop height and the totals; the level-naming rule it measures is
``discquant.segment.levels._reaches_below``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np

from discquant.errors import InvalidInputError
from discquant.io.study import Volume
from discquant.segment import levels, load_segmentation_model, segment_spine
from discquant.segment.data import load_nifti_volume
from discquant.segment.infer import SegmentationModel

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CASES = [  # (image, labels, kind)
    ("lumbar-t2-discs/sub-fcs11_T2w.nii.gz", "lumbar-t2-discs/sub-fcs11_dseg.nii.gz", "disc"),
    ("lumbar-t2-discs/sub-fcs20_T2w.nii.gz", "lumbar-t2-discs/sub-fcs20_dseg.nii.gz", "disc"),
    *(
        (f"lumbar-t2-vertebrae/sub-{s}_mr.nii.gz", f"lumbar-t2-vertebrae/sub-{s}_vbseg.nii.gz", k)
        for s, k in (("vb2x02", "vb2"), ("vb2x04", "vb2"), ("vb1x02", "vb1"), ("vb1x06", "vb1"))
    ),
]
NO_SACRUM = "sacrum_not_in_fov"
# Crop heights on a mid-sagittal slice: (name, reference disc, fraction of d below it).
# Negative fractions lie above the reference disc's centre.
HEIGHTS = [
    ("L4 body", "L3-L4", 0.5),
    ("L5 body", "L4-L5", 0.5),
    ("0.3 d above L5-S1", "L5-S1", -0.3),
    ("0.2 d above L5-S1", "L5-S1", -0.2),
    ("0.1 d above L5-S1", "L5-S1", -0.1),
    ("S1 (0.5 d below L5-S1)", "L5-S1", 0.5),
]


def cut_rows(labels: np.ndarray, kind: str) -> list[int]:
    """Rows (superior→inferior axis 0) through the L4 and the L5 body."""
    if kind == "disc":  # labels 1..5 = L1-L2 … L5-S1: 12 mm below L3-L4 and below L4-L5
        lowest = [int(np.nonzero((labels == k).any(axis=(1, 2)))[0].max()) for k in (3, 4)]
        return [r + 12 for r in lowest]
    first = 2 if kind == "vb1" else 1  # body instances from the lowest: vb1 starts at S1
    rows = [np.nonzero((labels == inst).any(axis=(1, 2)))[0] for inst in (first, first + 1)]
    return [int(r.mean()) for r in rows if len(r)]


def run_volumes(model: SegmentationModel) -> dict[str, int]:
    total = unflagged = 0
    for image, labels, kind in CASES:
        img = nib.load(str(DATA / image))
        data = np.asarray(img.dataobj, np.float32)
        ref = np.asarray(nib.load(str(DATA / labels)).dataobj).astype(int)
        for row in cut_rows(ref, kind):
            seg = segment_spine(Volume(np.ascontiguousarray(data[:row]), img.affine), model=model)
            total += 1
            unflagged += NO_SACRUM not in seg.flags
            names = [lv.name for lv in seg.levels][-2:]
            print(f"{Path(image).name:28s} cut at row {row:3d}: {names} {seg.flags}")
    print(f"volume crops without a sacrum left unflagged: {unflagged} of {total}\n")
    return {"crops": total, "unflagged": unflagged}


def _row(vol: Volume, centre_mm: np.ndarray) -> float:
    return float((np.linalg.inv(vol.affine) @ np.append(centre_mm, 1.0))[0])


def run_midsag(model: SegmentationModel, limit: int | None) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {name: Counter() for name, _, _ in HEIGHTS}
    whole: Counter[str] = Counter()
    paths = [
        p
        for name in ("spider-midsag-t2", "sudirman-midsag-t2")
        for p in sorted((DATA / name).glob("sub-*_T2w.nii.gz"))[:limit]
    ]
    for p in paths:
        vol = load_nifti_volume(p)
        seg = segment_spine(vol, model=model)
        whole["slices"] += 1
        centres = {lv.name: np.array(lv.centroid_mm) for lv in seg.levels}
        if NO_SACRUM in seg.flags or "L5-S1" not in centres:
            whole["flagged or no L5-S1"] += 1
            continue
        whole["named from a sacrum"] += 1
        d = _row(vol, centres["L5-S1"]) - _row(vol, centres["L4-L5"])
        data = np.asarray(vol.data)
        for name, ref, fraction in HEIGHTS:
            c = counts[name]
            row = round(_row(vol, centres[ref]) + fraction * d) if ref in centres else -1
            if not 0 < row < data.shape[0] - 2:
                c["skipped"] += 1
                continue
            try:
                crop = segment_spine(
                    Volume(np.ascontiguousarray(data[:row]), vol.affine), model=model
                )
            except InvalidInputError as exc:  # a field of view too small to segment
                print(f"{p.name}: {name}: {exc}")
                c["skipped"] += 1
                continue
            c["crops"] += 1
            flagged = NO_SACRUM in crop.flags
            c["flagged"] += flagged
            if not crop.levels:
                c["no discs"] += 1
                continue
            low = np.array(crop.levels[-1].centroid_mm)
            nearest = min(centres, key=lambda k: float(np.linalg.norm(centres[k] - low)))
            off = nearest != "L5-S1"
            c["misnamed"] += off
            c["misnamed, unflagged"] += off and not flagged
            c["named right, flagged"] += flagged and not off
    print(f"whole slices: {dict(whole)}")
    keys = ["crops", "skipped", "no discs", "misnamed", "misnamed, unflagged"]
    keys += ["named right, flagged"]
    print(f"{'crop height':24s}" + "".join(f"{k:>21s}" for k in keys))
    for name, c in counts.items():
        print(f"{name:24s}" + "".join(f"{c[k]:>21d}" for k in keys))
    total = sum(counts.values(), Counter())
    print(f"{'all':24s}" + "".join(f"{total[k]:>21d}" for k in keys))
    return {"whole": whole, **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model.pt (default: the shipped one)")
    parser.add_argument("--limit", type=int, default=None, help="slices per mid-sagittal set")
    parser.add_argument("--out", type=Path, default=None, help="write the counts as JSON")
    parser.add_argument(
        "--min-sacrum-reach", type=float, default=levels.MIN_SACRUM_REACH,
        help="disc spacings a sacrum cut by the image edge must reach (0: rule off)",
    )  # fmt: skip
    args = parser.parse_args()
    levels.MIN_SACRUM_REACH = args.min_sacrum_reach
    model = load_segmentation_model(args.model)
    result = {"volumes": run_volumes(model), "midsag": run_midsag(model, args.limit)}
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
