"""Range of the grader's normalised crops (before clipping) on real and phantom discs.

``grade.crops.CROP_CLIP`` clips the normalised crops; this prints the largest and smallest
value the unclipped normalisation gives on real data, so that the clip is seen to leave the
shipped grader's inputs unchanged, and what one saturated voxel does to a disc's grade with
and without it. Run by hand::

    python benchmarks/grade_crop_range.py --n 600 --spider 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from discquant.grade import crops as crop_module
from discquant.grade.data import build_crops, sudirman_discs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600, help="Sudirman discs (boxes place the crops)")
    ap.add_argument("--spider", type=int, default=20, help="SPIDER slices (segmented)")
    a = ap.parse_args()
    clip = crop_module.CROP_CLIP
    crop_module.CROP_CLIP = (-np.inf, np.inf)  # the normalisation alone
    try:
        discs = sudirman_discs(DATA / "sudirman-midsag-t2", locate="boxes")[: a.n]
        values = np.asarray(build_crops(discs, slices=3, normalise="crop"))
        print(f"Sudirman, {len(discs)} discs: normalised crop values "
              f"{values.min():.3f} to {values.max():.3f} (clip {clip})")  # fmt: skip
        # SPIDER slices and a phantom, their discs placed by the segmentation as analyze does
        from discquant.io.nifti import read_volume
        from discquant.phantom import generate_study
        from discquant.segment import segment_spine

        images = [
            read_volume(p)
            for p in sorted((DATA / "spider-midsag-t2").glob("sub-*_T2w.nii.gz"))[: a.spider]
        ]
        images.append(generate_study(0).t2)
        lo, hi = np.inf, -np.inf
        for image in images:
            labels = segment_spine(image).labels.data
            for value in range(120, 125):
                if (labels == value).any():
                    crop = crop_module.extract_disc_crop(
                        image, labels == value, slices=3, normalise="crop"
                    )
                    lo, hi = min(lo, float(crop.min())), max(hi, float(crop.max()))
        print(f"SPIDER ({a.spider} slices) and phantom seed 0, segmented discs: "
              f"{lo:.3f} to {hi:.3f}")  # fmt: skip
    finally:
        crop_module.CROP_CLIP = clip
    # one saturated voxel inside L3-L4 of a real volume (trial F), through analyze
    from discquant.io.load import load_study
    from discquant.io.study import Series, Study, Volume
    from discquant.pipeline import analyze

    study = load_study(t2=DATA / "lumbar-t2-discs" / "sub-fcs11_T2w.nii.gz")
    assert study.t2 is not None
    spiked = study.t2.image.data.copy()
    spiked[102, 78, 32] = 65535.0
    t2_spiked = Series(**{**vars(study.t2), "image": Volume(spiked, study.t2.image.affine)})
    for clipped in (True, False):
        crop_module.CROP_CLIP = clip if clipped else (-np.inf, np.inf)
        for name, series in (("clean", study.t2), ("one voxel 65535", t2_spiked)):
            disc = analyze(Study("fcs11", (series,))).discs[2]  # L3-L4
            print(f"clip {'on ' if clipped else 'off'} {disc.level} {name:>16s}: grade "
                  f"{disc.pfirrmann_grade}, expected {disc.pfirrmann_expected:.2f}")  # fmt: skip
    crop_module.CROP_CLIP = clip


if __name__ == "__main__":
    main()
