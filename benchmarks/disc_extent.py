"""How long are the discs the network finds? (run by hand, ~3 min)

    .venv/bin/python benchmarks/disc_extent.py [--model MODEL] [--phantoms 20]

Segments the real mid-sagittal slices (SPIDER, Sudirman), the 10 real labelled volumes,
unseen phantoms and the real sagittal brain DWI (``dwi-dicom/siemens-prisma-sag``, its
b≈0 image as stored and with its one zero edge row and column cropped away) with the
shipped (or given) model. For every named disc it takes the length of the disc along
its longest principal axis (:func:`discquant.segment.levels.disc_length_mm`, voxel
centres in mm), and prints its distribution per set, the three longest and the images
with a disc above the limit :data:`discquant.segment.levels.MAX_DISC_LENGTH_MM`. Each image is
segmented twice: with the limit switched off, for the lengths the network paints, and
with it, to count the images whose named labels or flags the limit changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from discquant.diffusion.stage import mean_b0
from discquant.io.load import load_study
from discquant.io.study import Volume
from discquant.segment import levels, load_segmentation_model, segment_spine
from discquant.segment.data import load_nifti_volume
from discquant.segment.levels import DISC_OFFSET, disc_length_mm

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))


def _lengths(seg: object) -> list[float]:
    lab = np.asarray(seg.labels.data)  # type: ignore[attr-defined]
    affine = seg.labels.affine  # type: ignore[attr-defined]
    return [disc_length_mm(lab == v, affine) for v in np.unique(lab) if v > DISC_OFFSET]


def _segment_both(vol: Volume, model: object) -> tuple[object, bool]:
    """The segmentation without the length limit, and whether the limit changes it."""
    limit = levels.MAX_DISC_LENGTH_MM
    levels.MAX_DISC_LENGTH_MM = np.inf
    try:
        off = segment_spine(vol, model=model)  # type: ignore[arg-type]
    finally:
        levels.MAX_DISC_LENGTH_MM = limit
    on = segment_spine(vol, model=model)  # type: ignore[arg-type]
    same = np.array_equal(off.labels.data, on.labels.data) and off.flags == on.flags
    return off, not same


def _report(name: str, runs: list[tuple[object, bool]], names: list[str]) -> None:
    segs = [seg for seg, _ in runs]
    per_image = [_lengths(s) for s in segs]
    every = np.array([x for xs in per_image for x in xs])
    if every.size == 0:
        print(f"{name}: {len(segs)} images, no discs named", flush=True)
        return
    print(
        f"{name}: {len(segs)} images, {every.size} named discs; length p50 "
        f"{np.median(every):.1f}, p99 {np.percentile(every, 99):.1f}, max {every.max():.1f} "
        f"mm; images with a disc over {levels.MAX_DISC_LENGTH_MM:g} mm: "
        f"{sum(max(xs, default=0) > levels.MAX_DISC_LENGTH_MM for xs in per_image)}; "
        f"images the limit changes: {sum(changed for _, changed in runs)}",
        flush=True,
    )
    for n, xs in sorted(zip(names, per_image, strict=True), key=lambda t: -max(t[1], default=0))[
        :3
    ]:
        print(f"  longest: {n} {max(xs, default=0):.1f} mm", flush=True)


def _brain_b0() -> Volume:
    """The b≈0 image of the real sagittal brain DWI, as ``analyze`` segments it."""
    study = load_study(DATA / "dwi-dicom" / "siemens-prisma-sag")
    assert study.dwi is not None
    return mean_b0(study.dwi)


def _without_zero_edges(vol: Volume) -> Volume:
    """``vol`` without its edge rows and columns (first two axes) that hold only zeros."""
    data = np.asarray(vol.data)
    keep = []
    for axis in (0, 1):
        lines = np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)
        full = np.flatnonzero(np.any(lines != 0, axis=1))
        keep.append((int(full[0]), int(full[-1]) + 1))
    (r0, r1), (c0, c1) = keep
    shift = np.eye(4)
    shift[:2, 3] = [r0, c0]
    return Volume(data=np.ascontiguousarray(data[r0:r1, c0:c1]), affine=vol.affine @ shift)


def main() -> None:
    from segment_eval import phantom_case, real_image_sets

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--phantoms", type=int, default=20)
    args = ap.parse_args()
    model = load_segmentation_model(args.model)
    for name, paths in real_image_sets().items():
        runs = [_segment_both(load_nifti_volume(p), model) for p in paths]
        _report(name, runs, [p.name.split("_")[0] for p in paths])
    cache = ROOT / "runs" / "phantom-eval-cache"
    seeds = [10_000 + i for i in range(args.phantoms)]
    runs = [_segment_both(phantom_case(s, cache)[0], model) for s in seeds]
    _report("phantoms", runs, [f"seed {s}" for s in seeds])
    b0 = _brain_b0()
    for name, vol in (("brain b0 as stored", b0), ("brain b0 cropped", _without_zero_edges(b0))):
        off, _ = _segment_both(vol, model)
        on = segment_spine(vol, model=model)
        print(
            f"{name}: without the limit discs {_names(off)} {[round(x, 1) for x in _lengths(off)]}"
            f" mm long; with it {_names(on)}",
            flush=True,
        )


def _names(seg: object) -> list[str]:
    return [lv.name for lv in seg.levels]  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
