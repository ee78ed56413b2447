"""How many discs the network names touch the image's in-plane edge? (run by hand, ~3 min)

    .venv/bin/python benchmarks/disc_edge.py [--model MODEL]

Segments the real mid-sagittal slices (SPIDER, Sudirman) with the shipped (or given)
model and counts, per set, the named lumbar discs whose mask touches the in-plane edge of
the image (:func:`discquant.grid.touches_in_plane_edge`, the test behind the `partial_fov`
flag): `analyze` withholds their heights, depth and Pfirrmann grade
(`pfirrmann_withheld_partial_fov`, docs/measurement.md).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

from discquant.grid import touches_in_plane_edge
from discquant.results import DISC_LABELS
from discquant.segment import load_segmentation_model, segment_spine
from discquant.segment.data import load_nifti_volume

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from segment_eval import real_image_sets

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    model = load_segmentation_model(args.model)
    for name, paths in real_image_sets().items():
        if name == "volumes":  # the mid-sagittal slices only
            continue
        named = 0
        cut: collections.Counter[str] = collections.Counter()
        for path in paths:
            seg = segment_spine(load_nifti_volume(path), model=model)
            labels = np.asarray(seg.labels.data)
            for level, label in DISC_LABELS.items():
                disc = labels == label
                if disc.any():
                    named += 1
                    cut[level] += touches_in_plane_edge(disc, seg.labels.affine)
        print(f"{name}: {len(paths)} images, {named} named lumbar discs, "
              f"{sum(cut.values())} touch the edge {dict(+cut)}")  # fmt: skip


if __name__ == "__main__":
    main()
