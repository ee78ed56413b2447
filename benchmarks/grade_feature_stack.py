"""Do measured T2 and shape features add to the Pfirrmann CNN? (run by hand)

    .venv/bin/python benchmarks/grade_feature_stack.py --run runs/grade-v2

For every graded real disc (SPIDER and Sudirman mid-sagittal slices; Sudirman discs matched
to their annotated boxes as ``sudirman_discs(locate="masks")`` does) the shipped
segmentation is run and ``measure_discs`` gives what the analysis reports: nucleus T2
over CSF and over marrow, nucleus heterogeneity, disc height index, middle height,
anterior/posterior height ratio, AP depth, and the nucleus share of the disc. Three
multinomial logistic regressions are then scored by patient (the run's folds): the
features alone, and the features plus the log-probabilities of the CNN's out-of-fold
predictions of the grade run ``RUN`` (``cv_predictions.tsv``), against the CNN alone. The
held-out patients (``holdout_predictions.tsv``) are scored with models fitted on all
cross-validation discs. Results in docs/grading.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from discquant.evaluate.grading import grade_agreement
from discquant.grade import data as gd
from discquant.grade.train import REFERENCE_COLUMN, read_predictions
from discquant.io.nifti import read_volume
from discquant.measure.discs import MeasureInputs, measure_discs
from discquant.pipeline import _with_canal
from discquant.results import DISC_LABELS
from discquant.segment import segment_spine

LEVELS = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]


def _features(vol: Any, seg: Any, wanted: dict[str, int]) -> dict[str, dict[str, float | None]]:
    seg.labels = _with_canal(seg)  # as analyze does: the CSF reference needs the canal
    results = measure_discs(
        MeasureInputs(labels=seg.labels, anatomy=vol, nucleus=seg.nucleus,
                      disc_probability=seg.disc_probability)
    )  # fmt: skip
    by_label = {DISC_LABELS[r.level]: r for r in results}
    out = {}
    for level, label in wanted.items():
        r = by_label.get(label)
        if r is None or not r.found:
            continue
        disc = seg.labels.data == label
        nucleus = disc & (seg.nucleus.data > 0) if seg.nucleus is not None else disc & False
        out[level] = {
            "t2_csf": r.t2_np_csf_ratio, "t2_ref": r.t2_np_reference_ratio,
            "het": r.t2_np_heterogeneity, "dhi": r.disc_height_index,
            "h_ant": r.height_anterior_mm, "h_mid": r.height_middle_mm,
            "h_post": r.height_posterior_mm, "depth": r.ap_depth_mm,
            "nuc_frac": float(nucleus.sum() / max(int(disc.sum()), 1)),
        }  # fmt: skip
    return out


def disc_features(root: Path) -> pd.DataFrame:
    rows = []
    spider = root / "spider-midsag-t2"
    grades = gd.read_gradings(spider / "gradings.tsv", ("pfirrmann_grade", "pfirrman_grade"),
                              levels=tuple(gd.DISC_LABELS))  # fmt: skip
    for subject, g in grades.groupby("subject"):
        vol = read_volume(spider / f"{subject}_T2w.nii.gz")
        f = _features(vol, segment_spine(vol), {lv: gd.DISC_LABELS[lv] for lv in g.level})
        rows += [{"subject": subject, "level": lv, **f[lv]} for lv in g.level if lv in f]
    sud = root / "sudirman-midsag-t2"
    grades = gd.read_gradings(sud / "gradings.tsv", ("pfirrmann_grade",), levels=gd.SUDIRMAN_LEVELS)
    boxes = gd._read_boxes(sud / "boxes.tsv")
    for subject, _ in grades.groupby("subject"):
        vol = read_volume(sud / f"{subject}_T2w.nii.gz")
        n_rows, n_cols = vol.data.shape[:2]
        b = boxes[boxes["subject"] == subject]
        px = np.column_stack([b.x_center * n_cols, b.y_center * n_rows,
                              b.width * n_cols, b.height * n_rows]).astype(float)  # fmt: skip
        merged = gd.merge_disc_boxes(px) if len(px) else px
        if len(merged) < 3:
            continue
        seg = segment_spine(vol)
        wanted = {}
        for k, level in enumerate(gd.SUDIRMAN_LEVELS):
            mask = gd.disc_in_box(seg.labels.data, merged[len(merged) - 3 + k])
            if mask is not None:
                wanted[level] = int(np.unique(seg.labels.data[mask])[0])
        f = _features(vol, seg, wanted)
        rows += [{"subject": subject, "level": lv, **v} for lv, v in f.items()]
    return pd.DataFrame(rows)


def _x(d: pd.DataFrame, median: pd.Series | None, with_cnn: bool) -> tuple[pd.DataFrame, pd.Series]:
    x = pd.DataFrame({
        "log_t2_csf": np.log(d.t2_csf.clip(lower=0.02)),
        "log_t2_ref": np.log(d.t2_ref.clip(lower=0.02)),
        "het": d.het, "dhi": d.dhi, "h_mid": d.h_mid,
        "h_ratio": d.h_ant / d.h_post.clip(lower=0.5), "nuc_frac": d.nuc_frac, "depth": d.depth,
    })  # fmt: skip
    for level in LEVELS:
        x[level] = (d.level == level).astype(float)
    median = x.median() if median is None else median
    x = x.fillna(median)
    if with_cnn:
        p = np.log(d[["p1", "p2", "p3", "p4", "p5"]].to_numpy().clip(1e-4))
        x = pd.concat(
            [x, pd.DataFrame(p, columns=[f"lp{k}" for k in range(1, 6)], index=d.index)], axis=1
        )
    return x, median


def _line(name: str, d: pd.DataFrame, pred: np.ndarray) -> str:
    parts = [f"{name:<14}"]
    for source in ("spider", "sudirman"):
        m = (d.src == source).to_numpy()
        a = grade_agreement(d[REFERENCE_COLUMN][m], pred[m])
        parts.append(f"{source} {a.exact_accuracy:.3f}/{a.balanced_accuracy:.3f}/"
                     f"{a.kappa_linear:.3f}/{a.within_one:.3f}")  # fmt: skip
    return "  ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True, help="a grade run folder")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--features", type=Path, default=None, help="cache of the features (TSV)")
    args = ap.parse_args()
    if args.features is not None and args.features.is_file():
        feats = pd.read_csv(args.features, sep="\t")
    else:
        feats = disc_features(args.data)
        if args.features is not None:
            feats.to_csv(args.features, sep="\t", index=False)
    folds = json.loads((args.run / "splits.json").read_text())["folds"]
    frames = {}
    for name in ("cv", "holdout"):
        d = read_predictions(args.run / f"{name}_predictions.tsv")
        d = d.merge(feats, on=["subject", "level"], how="left")
        d["src"] = np.where(d.subject.str.startswith("sub-spider"), "spider", "sudirman")
        frames[name] = d
    cv, ho = frames["cv"], frames["holdout"]
    cv["fold"] = cv.subject.map(folds)
    print("exact / balanced accuracy / kappa linear / within 1")
    print(_line("CNN, CV", cv, cv.predicted.to_numpy()))
    for with_cnn, name in ((False, "features"), (True, "features+CNN")):
        pred = np.zeros(len(cv), int)
        for k in sorted(cv.fold.unique()):
            tr, te = (cv.fold != k).to_numpy(), (cv.fold == k).to_numpy()
            x_tr, median = _x(cv[tr], None, with_cnn)
            x_te, _ = _x(cv[te], median, with_cnn)
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            pred[te] = model.fit(x_tr, cv[REFERENCE_COLUMN][tr]).predict(x_te)
        print(_line(f"{name}, CV", cv, pred))
    print(_line("CNN, held out", ho, ho.predicted.to_numpy()))
    for with_cnn, name in ((False, "features"), (True, "features+CNN")):
        x_tr, median = _x(cv, None, with_cnn)
        x_te, _ = _x(ho, median, with_cnn)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        print(_line(f"{name}, held out", ho, model.fit(x_tr, cv[REFERENCE_COLUMN]).predict(x_te)))


if __name__ == "__main__":
    main()
