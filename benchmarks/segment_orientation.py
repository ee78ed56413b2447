"""Where does the network put the canal and the sacrum, with the header right and mirrored?
(run by hand, about 10 min on 2 cores)

    .venv/bin/python benchmarks/segment_orientation.py [--model MODEL] [--mirrored N]

Segments the real images (the 10 labelled volumes, the SPIDER and Sudirman mid-sagittal
slices) and unseen phantoms with the shipped (or given) model, and prints the
distribution of ``segment.orientation.canal_behind_bodies_mm`` (how far the spinal canal
lies behind the vertebral bodies, mm) with the count that ``header_looks_mirrored`` calls
mirrored; and of a check that was tried and left out: how far the largest "sacrum" piece
lies below the discs (mm, RAS z; below 0 would have been called mirrored). Then the same
for the first N images of each set (default 20) with the header mirrored two ways: x and
y negated (front and back swapped), and z negated (head and feet swapped). These figures
set the limit in ``segment/orientation.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
from nibabel.affines import apply_affine
from scipy import ndimage

from discquant.io.study import Volume
from discquant.segment import load_segmentation_model
from discquant.segment.data import load_nifti_volume
from discquant.segment.infer import predict_probabilities
from discquant.segment.orientation import canal_behind_bodies_mm, header_looks_mirrored

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))

MIRRORS = {
    "as stored": np.eye(4),
    "x, y negated": np.diag([-1.0, -1.0, 1.0, 1.0]),
    "z negated": np.diag([1.0, 1.0, -1.0, 1.0]),
}


def main() -> None:
    from segment_eval import phantom_case

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--phantoms", type=int, default=20)
    ap.add_argument("--mirrored", type=int, default=20, help="images per set mirrored")
    args = ap.parse_args()
    model = load_segmentation_model(args.model)
    cache = ROOT / "runs" / "phantom-eval-cache"
    sets: dict[str, list[Volume]] = {
        "volumes": [
            load_nifti_volume(p)
            for p in sorted((DATA / "lumbar-t2-discs").glob("sub-*_T2w.nii.gz"))
            + sorted((DATA / "lumbar-t2-vertebrae").glob("sub-*_mr.nii.gz"))
        ],
        "spider": [
            load_nifti_volume(p)
            for p in sorted((DATA / "spider-midsag-t2").glob("sub-*_T2w.nii.gz"))
        ],
        "sudirman": [
            load_nifti_volume(p)
            for p in sorted((DATA / "sudirman-midsag-t2").glob("sub-*_T2w.nii.gz"))
        ],
        "phantoms": [phantom_case(10_000 + i, cache)[0] for i in range(args.phantoms)],
    }

    def offsets(volume: Volume) -> tuple[float | None, float | None]:
        prob, ro = predict_probabilities(volume, model)
        cls = prob.argmax(axis=-1)
        return (
            canal_behind_bodies_mm(cls, ro.affine, model.classes),
            _sacrum_below_discs_mm(cls, ro.affine, model.classes),
        )

    for mirror, flip in MIRRORS.items():
        for name, volumes in sets.items():
            chosen = volumes if mirror == "as stored" else volumes[: args.mirrored]
            found = [offsets(Volume(v.data, flip @ v.affine)) for v in chosen]
            _report(f"{mirror:13s} {name:9s}", found)


def _sacrum_below_discs_mm(
    cls: npt.NDArray[np.integer], affine: npt.NDArray[np.float64], classes: list[str]
) -> float | None:
    """The discs' (and nuclei's) centroid minus the largest sacrum piece's, RAS z (mm)."""
    pieces, n = ndimage.label(cls == classes.index("sacrum"))
    discs = np.argwhere(np.isin(cls, [classes.index("disc"), classes.index("nucleus")]))
    if n == 0 or len(discs) == 0:
        return None
    largest = 1 + int(np.argmax(ndimage.sum_labels(pieces > 0, pieces, range(1, n + 1))))
    z_sacrum = apply_affine(affine, np.argwhere(pieces == largest).mean(axis=0))[2]
    return float(apply_affine(affine, discs.mean(axis=0))[2] - z_sacrum)


def _report(name: str, found: list[tuple[float | None, float | None]]) -> None:
    def summary(values: list[float | None]) -> str:
        v = np.array([x for x in values if x is not None])
        if v.size == 0:
            return "none"
        p1, p50 = np.percentile(v, [1, 50])
        return f"min {v.min():6.1f}, p1 {p1:6.1f}, p50 {p50:6.1f}, max {v.max():6.1f} ({v.size})"

    canal = [c for c, _ in found]
    sacrum = [s for _, s in found]
    print(
        f"{name} {len(found):3d} images; canal behind bodies mm: {summary(canal)}, "
        f"{sum(header_looks_mirrored(c) for c in canal):3d} called mirrored; sacrum below "
        f"discs mm (left out): {summary(sacrum)}, "
        f"{sum(s is not None and s < 0 for s in sacrum):3d} below 0",
        flush=True,
    )


if __name__ == "__main__":
    main()
