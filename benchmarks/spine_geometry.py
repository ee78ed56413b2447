"""How regular is the chain of disc centroids along real spines? (run by hand, ~2 min)

    .venv/bin/python benchmarks/spine_geometry.py [--model MODEL]

Segments the real mid-sagittal slices (SPIDER, Sudirman), the 10 real labelled volumes
and 20 unseen phantoms with the shipped (or given) model and, for every three consecutive
named discs, prints the distribution of the turning angle between the two links (disc
centroid to disc centroid) and of the ratio of the longer link to the shorter. These
figures set the limits of ``segment.levels.spine_like``. The rule is switched off while
the script runs, so the figures describe the raw chains the network gives, and the
script counts the images whose chain the rule refuses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from discquant.segment import levels, load_segmentation_model, segment_spine
from discquant.segment.data import load_nifti_volume
from discquant.segment.levels import chain_geometry, spine_like

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from segment_eval import phantom_case, real_image_sets

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--phantoms", type=int, default=20)
    args = ap.parse_args()
    model = load_segmentation_model(args.model)
    levels.spine_like = lambda centroids: True  # measure the raw chains (see the docstring)
    for name, paths in real_image_sets().items():
        _report(name, [segment_spine(load_nifti_volume(p), model=model) for p in paths])
    cache = ROOT / "runs" / "phantom-eval-cache"
    segs = [
        segment_spine(phantom_case(10_000 + i, cache)[0], model=model) for i in range(args.phantoms)
    ]
    _report("phantoms", segs)


def _report(name: str, segs: list) -> None:
    angles: list[float] = []
    ratios: list[float] = []
    lr_steps: list[float] = []
    refused = no_discs = 0
    for seg in segs:
        a, r = chain_geometry([np.array(lv.centroid_mm) for lv in seg.levels])
        angles += a
        ratios += r
        x = [lv.centroid_mm[0] for lv in seg.levels]
        lr_steps += [abs(float(d)) for d in np.diff(x)]
        no_discs += not seg.levels
        refused += not spine_like([np.array(lv.centroid_mm) for lv in seg.levels])
    a, r = np.asarray(angles), np.asarray(ratios)
    print(
        f"{name}: {len(segs)} images ({no_discs} without discs, {refused} chains the "
        f"spine rule refuses), {a.size} disc "
        f"triples; turning angle p50 {np.median(a):.1f}, "
        f"p99 {np.percentile(a, 99):.1f}, max {a.max():.1f} deg; link ratio p50 "
        f"{np.median(r):.2f}, p99 {np.percentile(r, 99):.2f}, max {r.max():.2f}; "
        f"left-right step between neighbours p99 {np.percentile(lr_steps, 99):.1f}, "
        f"max {max(lr_steps):.1f} mm",
        flush=True,
    )


if __name__ == "__main__":
    main()
