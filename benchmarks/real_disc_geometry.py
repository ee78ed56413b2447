"""Disc volume and heights of the CNN against the real manual masks (by hand).

    .venv/bin/python benchmarks/segment_eval.py cv --runs runs --out runs/eval   # first
    .venv/bin/python benchmarks/real_disc_geometry.py --eval runs/eval

The ten discs of ``lumbar-t2-discs`` (two subjects) are the only real discs here with
manual masks. ``segment_eval.py cv`` writes each subject's prediction by the
cross-validation fold that never saw it (``EVAL/cv-pred-discs``) beside its converted
reference (``EVAL/ref-discs``). Both are measured with the same code the analysis uses
(:func:`discquant.measure.geometry.disc_geometry`, mask chords on both sides: the saved
predictions carry no probability map, so the partial-volume heights ``analyze`` reports
are not what is scored here). The reference volume is also checked against the source's
own table (``disc_volumes_mm3.tsv``). The CNN volume is given whole and cut to the
sagittal slices the reference labels (its masks stop abruptly at their lateral ends,
``benchmarks/segment_reference_extent.py``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
from segment_reference_extent import cv_disc_predictions, lr_axis

from discquant.measure.geometry import disc_geometry
from discquant.results import DISC_LABELS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "lumbar-t2-discs"


def _pct(a: float, b: float) -> float:
    return 100.0 * (a - b) / b


def main() -> None:
    eval_dir, preds = cv_disc_predictions(__doc__)
    with open(DATA / "disc_volumes_mm3.tsv") as fh:
        published = {(r["subject"], r["level"]): float(r["volume_mm3"])
                     for r in csv.DictReader(fh, delimiter="\t")}  # fmt: skip
    print("subject\tlevel\tpublished mm3\tref mm3\tcnn mm3\tcnn err %\tcnn in ref slices err %"
          "\tref h_mid mm\tcnn h_mid mm\th_mid err mm\tref depth mm\tcnn depth mm")  # fmt: skip
    vol_err, vol_in_err, h_err, d_err = [], [], [], []
    for pred_path in preds:
        subject = pred_path.name.split("_")[0]
        ref_img = nib.load(eval_dir / "ref-discs" / pred_path.name)
        pred = np.asarray(nib.load(pred_path).dataobj)
        ref = np.asarray(ref_img.dataobj)
        affine = ref_img.affine
        voxel = float(abs(np.linalg.det(affine[:3, :3])))
        ax = lr_axis(ref_img)
        other = tuple(i for i in range(3) if i != ax)
        for level, label in DISC_LABELS.items():
            r, p = ref == label, pred == label
            if not r.any() or not p.any():
                missing = "reference" if not r.any() else "prediction"
                print(f"{subject}\t{level}\tmissing in {missing}")
                continue
            slices = np.flatnonzero(r.sum(axis=other))
            keep = np.zeros(pred.shape[ax], bool)
            keep[slices.min() : slices.max() + 1] = True
            p_in = p & np.expand_dims(keep, other)
            gr, gp = disc_geometry(r, affine), disc_geometry(p, affine)
            assert gr is not None and gp is not None
            v_ref, v_cnn, v_in = r.sum() * voxel, p.sum() * voxel, p_in.sum() * voxel
            vol_err.append(_pct(v_cnn, v_ref))
            vol_in_err.append(_pct(v_in, v_ref))
            h_err.append(gp.height_middle_mm - gr.height_middle_mm)
            d_err.append(gp.ap_depth_mm - gr.ap_depth_mm)
            print(
                f"{subject}\t{level}\t{published.get((subject, level), float('nan')):.0f}"
                f"\t{v_ref:.0f}\t{v_cnn:.0f}\t{vol_err[-1]:+.1f}\t{vol_in_err[-1]:+.1f}"
                f"\t{gr.height_middle_mm:.2f}\t{gp.height_middle_mm:.2f}\t{h_err[-1]:+.2f}"
                f"\t{gr.ap_depth_mm:.1f}\t{gp.ap_depth_mm:.1f}"
            )
    n = len(vol_err)
    print(f"\n{n} discs")
    for name, values, unit in (
        ("volume error", vol_err, "%"),
        ("volume error, CNN cut to the reference's slices", vol_in_err, "%"),
        ("middle height error", h_err, "mm"),
        ("AP depth error", d_err, "mm"),
    ):
        v = np.asarray(values)
        print(f"{name}: mean {v.mean():+.2f} {unit}, mean |error| {np.abs(v).mean():.2f} {unit}, "
              f"max |error| {np.abs(v).max():.2f} {unit}")  # fmt: skip


if __name__ == "__main__":
    main()
