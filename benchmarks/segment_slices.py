"""Where the phantom disc Dice is lost: Dice by sagittal slice offset (run by hand).

    .venv/bin/python benchmarks/segment_slices.py --n 10 --cache runs/phantom-eval-cache

For each disc L1-L2 … L5-S1 of the first ``n`` unseen phantoms (seeds 10000+, as
``segment_eval.py phantom``), the slices are numbered from the disc's largest reference
slice (0) outwards; prints the Dice over all discs at each offset and the share of the
wrong voxels (false positives + false negatives) found there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
from segment_eval import phantom_case  # benchmarks/

from discquant.segment import load_segmentation_model, segment_spine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=None)
    a = ap.parse_args()
    model = load_segmentation_model(a.model)
    totals: dict[int, np.ndarray] = {}  # offset -> (reference, predicted, overlap) voxels
    for i in range(a.n):
        t2, labels, _ = phantom_case(10_000 + i, a.cache)
        pred = segment_spine(t2, model=model).labels.data
        codes = nib.aff2axcodes(t2.affine)
        sag = next(k for k, c in enumerate(codes) if c in "LR")
        for lev in range(120, 125):
            ref_l, pred_l = np.moveaxis(labels == lev, sag, 0), np.moveaxis(pred == lev, sag, 0)
            per_slice = np.array(
                [(r.sum(), p.sum(), (r & p).sum()) for r, p in zip(ref_l, pred_l, strict=True)]
            )
            centre = int(np.argmax(per_slice[:, 0]))
            for s, row in enumerate(per_slice):
                if row[:2].sum():
                    totals.setdefault(s - centre, np.zeros(3))[:] += row
    wrong_all = sum(t[0] + t[1] - 2 * t[2] for t in totals.values())
    print(f"{a.n} phantoms; offset, Dice, share of wrong voxels")
    for off in sorted(totals):
        r, p, o = totals[off]
        print(f"{off:+3d}  {2 * o / (r + p):.3f}  {(r + p - 2 * o) / wrong_all:.3f}")


if __name__ == "__main__":
    main()
