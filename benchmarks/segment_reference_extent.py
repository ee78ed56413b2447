"""How much of the real disc Dice gap lies beyond the references' lateral extent? (by hand)

    .venv/bin/python benchmarks/segment_reference_extent.py --eval runs/eval

Reads the cross-validated predictions and the converted references that
``benchmarks/segment_eval.py cv --runs runs --out runs/eval`` writes
(``EVAL/cv-pred-discs``, ``EVAL/ref-discs``). The two ``lumbar-t2-discs`` references were
drawn on thick sagittal slices and resampled to 1 mm by their source: every disc's mask
starts and stops with a full cross-section (tens of voxels) on the same few slices, where
a disc's true lateral edge tapers off. Prints, per disc, the Dice as scored and the Dice
with the prediction cut to the sagittal slices that the reference labels for that disc
(what lies beyond is unknown to the reference, not background), and the mean per subject.
This is an analysis of the reference, not the scoring of the model card's targets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DISC_LABELS = {120: "L1-L2", 121: "L2-L3", 122: "L3-L4", 123: "L4-L5", 124: "L5-S1"}


def lr_axis(img: nib.Nifti1Image) -> int:
    """The array axis that runs left-right (the sagittal slice axis)."""
    return next(i for i, c in enumerate(nib.aff2axcodes(img.affine)) if c in "LR")


def cv_disc_predictions(doc: str | None) -> tuple[Path, list[Path]]:
    """``--eval`` from the command line and the CV disc predictions in it (exits with a
    hint when there are none). Shared with ``real_disc_geometry.py``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--eval", type=Path, default=ROOT / "runs" / "eval")
    eval_dir = ap.parse_args().eval
    preds = sorted((eval_dir / "cv-pred-discs").glob("*_dseg.nii.gz"))
    if not preds:
        raise SystemExit(f"no predictions in {eval_dir / 'cv-pred-discs'}: run segment_eval.py cv")
    return eval_dir, preds


def main() -> None:
    eval_dir, preds = cv_disc_predictions(__doc__)
    print("subject\tlevel\tref slices\tdice\tdice in ref slices\tpred voxels beyond")
    for pred_path in preds:
        ref_img = nib.load(eval_dir / "ref-discs" / pred_path.name)
        pred = np.asarray(nib.load(pred_path).dataobj)
        ref = np.asarray(ref_img.dataobj)
        ax = lr_axis(ref_img)
        other = tuple(i for i in range(3) if i != ax)
        whole, inside = [], []
        for label, level in DISC_LABELS.items():
            p, r = pred == label, ref == label
            if not r.any():
                continue
            slices = np.flatnonzero(r.sum(axis=other))
            keep = np.zeros(pred.shape[ax], bool)
            keep[slices.min() : slices.max() + 1] = True
            p_in = p & np.expand_dims(keep, other)
            d = 2 * (p & r).sum() / (p.sum() + r.sum())
            d_in = 2 * (p_in & r).sum() / (p_in.sum() + r.sum())
            whole.append(d)
            inside.append(d_in)
            print(
                f"{pred_path.name.split('_')[0]}\t{level}\t{slices.min()}-{slices.max()}"
                f"\t{d:.3f}\t{d_in:.3f}\t{int(p.sum() - p_in.sum())}"
            )
        print(f"mean\t\t\t{np.mean(whole):.3f}\t{np.mean(inside):.3f}")


if __name__ == "__main__":
    main()
