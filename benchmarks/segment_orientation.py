"""Where does the network put the canal and the sacrum, with the header right and mirrored?
(run by hand: about 10 min on 2 cores; 12 min with --mirrored 1000 on 2026-12-07)

    .venv/bin/python benchmarks/segment_orientation.py [--model MODEL] [--mirrored N]
        [--stored-only]

Segments the real images (the 10 labelled volumes, the SPIDER and Sudirman mid-sagittal
slices) and unseen phantoms with the shipped (or given) model, and prints the
distribution of ``segment.orientation.canal_behind_bodies_mm`` (how far the spinal canal
lies behind the vertebral bodies, mm) with the count that ``header_looks_mirrored`` calls
mirrored front to back; and of the head-feet check of ``segment.levels`` (how much of the
network's sacrum lies beyond the top disc, as a share of a typical vertebral body, and
how many images it calls mirrored: more beyond the top than beyond the lowest disc and at
least ``MIN_SACRUM_ABOVE_BODY_FRACTION``), naming the images as stored that it calls
mirrored. Then the same for the first N images of each set (default 20) with the header
mirrored two ways: x and y negated (front and back swapped), and z negated (head and feet
swapped). These figures set the limits in ``results.MIN_CANAL_BEHIND_BODIES_MM`` and
``segment/levels.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

from discquant.io.study import Volume
from discquant.results import FLAG_HEADER_MIRRORED
from discquant.segment import load_segmentation_model
from discquant.segment.data import load_nifti_volume
from discquant.segment.infer import predict_probabilities
from discquant.segment.levels import (
    _disc_chain,
    _spine_tangents,
    _typical_body_voxels,
    name_levels,
    sacrum_beyond_ends,
)
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
    ap.add_argument("--stored-only", action="store_true", help="the images as stored only")
    args = ap.parse_args()
    model = load_segmentation_model(args.model)
    cache = ROOT / "runs" / "phantom-eval-cache"
    files = {
        "volumes": sorted((DATA / "lumbar-t2-discs").glob("sub-*_T2w.nii.gz"))
        + sorted((DATA / "lumbar-t2-vertebrae").glob("sub-*_mr.nii.gz")),
        "spider": sorted((DATA / "spider-midsag-t2").glob("sub-*_T2w.nii.gz")),
        "sudirman": sorted((DATA / "sudirman-midsag-t2").glob("sub-*_T2w.nii.gz")),
    }
    sets: dict[str, tuple[list[str], list[Volume]]] = {
        name: ([p.name.split("_")[0] for p in paths], [load_nifti_volume(p) for p in paths])
        for name, paths in files.items()
    }
    seeds = [10_000 + i for i in range(args.phantoms)]
    sets["phantoms"] = ([f"phantom {s}" for s in seeds], [phantom_case(s, cache)[0] for s in seeds])

    def offsets(volume: Volume) -> tuple[float | None, float | None, bool]:
        prob, ro = predict_probabilities(volume, model)
        cls = prob.argmax(axis=-1)
        classes = model.classes
        naming = np.where(cls == classes.index("nucleus"), classes.index("disc"), cls)
        named = name_levels(
            naming,
            ro.affine,
            body_class=classes.index("body"),
            disc_class=classes.index("disc"),
            sacrum_class=classes.index("sacrum"),
        )
        return (
            canal_behind_bodies_mm(cls, ro.affine, classes),
            _sacrum_above_share(naming, ro.affine, classes),
            FLAG_HEADER_MIRRORED in named.flags,
        )

    for mirror, flip in MIRRORS.items():
        if args.stored_only and mirror != "as stored":
            continue
        for name, (paths, volumes) in sets.items():
            chosen = volumes if mirror == "as stored" else volumes[: args.mirrored]
            found = [offsets(Volume(v.data, flip @ v.affine)) for v in chosen]
            _report(f"{mirror:13s} {name:9s}", found)
            if mirror == "as stored":
                called = [p for p, (_, _, m) in zip(paths, found, strict=True) if m]
                rest = [s for _, s, m in found if not m and s is not None]
                print(
                    f"  called head-feet mirrored as stored: {', '.join(called) or 'none'}; "
                    f"the others' sacrum above the discs: at most {max(rest, default=0):.3f} "
                    "of a body",
                    flush=True,
                )


def _sacrum_above_share(
    naming: npt.NDArray[np.integer], affine: npt.NDArray[np.float64], classes: list[str]
) -> float | None:
    """The network's sacrum beyond the top disc (pieces by their centroids, along the
    spine there), as a share of a typical vertebral body; None without a disc chain."""
    discs, centroids = _disc_chain(
        naming,
        affine,
        body_class=classes.index("body"),
        disc_class=classes.index("disc"),
        sacrum_class=classes.index("sacrum"),
        min_fraction=0.15,
    )
    if not discs:
        return None
    pts = np.array(centroids)
    sacrum = naming == classes.index("sacrum")
    above, _ = sacrum_beyond_ends(sacrum, affine, pts, _spine_tangents(pts))
    typical = _typical_body_voxels(naming == classes.index("body"))
    return above / typical if typical else None


def _report(name: str, found: list[tuple[float | None, float | None, bool]]) -> None:
    def summary(values: list[float | None], digits: int = 1) -> str:
        v = np.array([x for x in values if x is not None])
        if v.size == 0:
            return "none"
        p1, p50, p99 = np.percentile(v, [1, 50, 99])
        return (
            f"min {v.min():.{digits}f}, p1 {p1:.{digits}f}, p50 {p50:.{digits}f}, "
            f"p99 {p99:.{digits}f}, max {v.max():.{digits}f} ({v.size})"
        )

    canal = [c for c, _, _ in found]
    print(
        f"{name} {len(found):3d} images; canal behind bodies mm: {summary(canal)}, "
        f"{sum(header_looks_mirrored(c) for c in canal):3d} called mirrored front-back; "
        f"sacrum above the discs / body: {summary([s for _, s, _ in found], 3)}, "
        f"{sum(m for _, _, m in found):3d} called mirrored head-feet",
        flush=True,
    )


if __name__ == "__main__":
    main()
