"""Pfirrmann agreement with crops placed as in training (boxes) or as in analyze (masks).

    .venv/bin/python benchmarks/grade_crop_sources.py      # about 1 minute

The shipped grader was trained (and its held-out figures scored) on Sudirman crops placed
by the annotated disc boxes: centre of the box, orientation from the line through the
neighbouring box centres, extrapolated at L5-S1. ``discquant analyze`` places each crop by
the segmentation mask instead (centroid and principal axis,
``DiscLocation.from_mask``). This script grades the held-out Sudirman patients of the
shipped model (its ``holdout_subjects``) both ways and prints, per level, the mean angle
between the two orientations and the agreement with the reference grades (exact,
balanced accuracy, κ linear, within ±1). A disc counts only when the segmentation has a
disc component whose mask holds the box centre (the same disc in both).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from discquant.evaluate.grading import grade_agreement
from discquant.grade.crops import DiscLocation, extract_disc_crop
from discquant.grade.data import sudirman_discs
from discquant.grade.pfirrmann import grade_disc_crops, load_pfirrmann_model
from discquant.io.nifti import read_volume
from discquant.segment import load_segmentation_model, segment_spine

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sudirman-midsag-t2"


def main(data: Path = DATA) -> None:
    grader = load_pfirrmann_model()
    crop_args = grader.crop_kwargs()
    held = set(grader.metadata["holdout_subjects"])
    discs = [d for d in sudirman_discs(data) if d.subject in held]
    seg_model = load_segmentation_model()
    rows: list[tuple[str, int, float, np.ndarray, np.ndarray]] = []
    for subject in sorted({d.subject for d in discs}):
        mine = [d for d in discs if d.subject == subject]
        image = read_volume(mine[0].image_path)
        labels = segment_spine(image, model=seg_model).labels.data
        for d in mine:
            r, c, k = np.rint(
                np.linalg.inv(image.affine)[:3] @ [*d.location.centre_ras_mm, 1.0]
            ).astype(int)
            inside = 0 <= r < labels.shape[0] and 0 <= c < labels.shape[1]
            label = int(labels[r, c, k]) if inside else 0
            if not 100 <= label < 200:
                continue
            mask_loc = DiscLocation.from_mask(image, labels == label)
            n1, n2 = (np.asarray(n, float) for n in (mask_loc.normal_ras, d.location.normal_ras))
            cos = abs(float(n1 @ n2)) / float(np.linalg.norm(n1) * np.linalg.norm(n2))
            angle = float(np.degrees(np.arccos(min(1.0, cos))))
            box_crop = extract_disc_crop(image, d.location, **crop_args)
            mask_crop = extract_disc_crop(image, mask_loc, **crop_args)
            rows.append((d.level, d.grade, angle, box_crop, mask_crop))
    n_all = len(discs)
    print(f"{len({d.subject for d in discs})} held-out Sudirman patients, {n_all} graded discs, "
          f"{len(rows)} with the box centre inside a segmented disc")  # fmt: skip
    box_grades = [g.grade for g in grade_disc_crops([r[3] for r in rows], model=grader)]
    mask_grades = [g.grade for g in grade_disc_crops([r[4] for r in rows], model=grader)]
    ref = np.array([r[1] for r in rows])
    for level in ("all", "L3-L4", "L4-L5", "L5-S1"):
        sel = np.array([level == "all" or r[0] == level for r in rows])
        angles = np.array([r[2] for r in rows])[sel]
        line = f"{level:>6}  n={sel.sum():3d}  angle box vs mask: mean {angles.mean():4.1f}°, " \
            f"p90 {np.percentile(angles, 90):4.1f}°"  # fmt: skip
        for name, pred in (("boxes", box_grades), ("masks", mask_grades)):
            a = grade_agreement(ref[sel], np.array(pred)[sel])
            line += (f" | {name}: exact {a.exact_accuracy:.3f} BA {a.balanced_accuracy:.3f} "
                     f"κlin {a.kappa_linear:.3f} ±1 {a.within_one:.3f}")  # fmt: skip
        print(line)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", type=Path, default=DATA, help="sudirman-midsag-t2 folder (default: %(default)s)"
    )
    main(ap.parse_args().data)
