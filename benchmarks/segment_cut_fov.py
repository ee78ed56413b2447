"""Level naming when the field of view ends above the sacrum (run by hand; needs ../shared).

    .venv/bin/python benchmarks/segment_cut_fov.py

Each real labelled volume of ``lumbar-t2-discs`` and four of ``lumbar-t2-vertebrae`` is
cut through the L4 and through the L5 body (from its own labels), so no sacrum is in
view; the shipped model must then flag ``sacrum_not_in_fov`` rather than name the
lowest visible disc L5-S1 silently. Prints each crop's last two names and flags, and
how many crops went unflagged.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from discquant.io.study import Volume
from discquant.segment import load_segmentation_model, segment_spine

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CASES = [  # (image, labels, kind)
    ("lumbar-t2-discs/sub-fcs11_T2w.nii.gz", "lumbar-t2-discs/sub-fcs11_dseg.nii.gz", "disc"),
    ("lumbar-t2-discs/sub-fcs20_T2w.nii.gz", "lumbar-t2-discs/sub-fcs20_dseg.nii.gz", "disc"),
    *(
        (f"lumbar-t2-vertebrae/sub-{s}_mr.nii.gz", f"lumbar-t2-vertebrae/sub-{s}_vbseg.nii.gz", k)
        for s, k in (("vb2x02", "vb2"), ("vb2x04", "vb2"), ("vb1x02", "vb1"), ("vb1x06", "vb1"))
    ),
]


def cut_rows(labels: np.ndarray, kind: str) -> list[int]:
    """Rows (superior→inferior axis 0) through the L4 and the L5 body."""
    if kind == "disc":  # labels 1..5 = L1-L2 … L5-S1: 12 mm below L3-L4 and below L4-L5
        lowest = [int(np.nonzero((labels == k).any(axis=(1, 2)))[0].max()) for k in (3, 4)]
        return [r + 12 for r in lowest]
    first = 2 if kind == "vb1" else 1  # body instances from the lowest: vb1 starts at S1
    rows = [np.nonzero((labels == inst).any(axis=(1, 2)))[0] for inst in (first, first + 1)]
    return [int(r.mean()) for r in rows if len(r)]


def main() -> None:
    model = load_segmentation_model()
    total = unflagged = 0
    for image, labels, kind in CASES:
        img = nib.load(str(DATA / image))
        data = np.asarray(img.dataobj, np.float32)
        ref = np.asarray(nib.load(str(DATA / labels)).dataobj).astype(int)
        for row in cut_rows(ref, kind):
            seg = segment_spine(Volume(np.ascontiguousarray(data[:row]), img.affine), model=model)
            flagged = "sacrum_not_in_fov" in seg.flags
            total += 1
            unflagged += not flagged
            names = [lv.name for lv in seg.levels][-2:]
            print(f"{Path(image).name:28s} cut at row {row:3d}: {names} {seg.flags}")
    print(f"crops without a sacrum left unflagged: {unflagged} of {total}")


if __name__ == "__main__":
    main()
