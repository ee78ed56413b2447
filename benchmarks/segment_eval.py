"""Accuracy figures of the segmentation model card (run by hand, not a test).

    .venv/bin/python benchmarks/segment_eval.py cv --runs runs --out runs/eval [--folds 3 4]
    .venv/bin/python benchmarks/segment_eval.py midsag --model MODEL --out /work/runs/eval
    .venv/bin/python benchmarks/segment_eval.py phantom --model MODEL --n 100 --out ...

``cv``: each fold's model (``RUNS/segment-cvK/model.pt``) segments its held-out real
subjects (the ``val_subjects`` of ``configs/segment-cvK.yaml``, K = 0..4: five folds split
by patient, one to four volumes each, since vb1x02/03 and vb1x06/07/08 are one patient
scanned with several sequences; the shipped model trains on all ten); the
predictions and the references (converted to SPINEPS labels) are then scored exactly as
``discquant evaluate segment --pred DIR --ref DIR`` does.
``midsag``: fraction of SPIDER / Sudirman mid-sagittal slices where L3-L4, L4-L5 and
L5-S1 are found and named (Sudirman: centres inside the annotated disc boxes, order).
``phantom``: unseen phantom studies (seeds 10_000 + i) scored against their truth.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from discquant.evaluate.segmentation import (
    convert_real_references,
    evaluate_case,
    evaluate_dirs,
    format_table,
    lumbar_only,
    midsag_check,
    read_boxes,
    summarise,
)
from discquant.io.study import Volume
from discquant.segment import load_segmentation_model, segment_spine, write_segmentation
from discquant.segment.data import load_nifti_volume

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def real_image_sets() -> dict[str, list[Path]]:
    """The real sets the naming rules are measured on: the SPIDER and Sudirman mid-sagittal
    slices, and the 10 labelled volumes (``lumbar-t2-discs`` and ``lumbar-t2-vertebrae``)."""
    return {
        "spider": sorted((DATA / "spider-midsag-t2").glob("sub-*_T2w.nii.gz")),
        "sudirman": sorted((DATA / "sudirman-midsag-t2").glob("sub-*_T2w.nii.gz")),
        "volumes": sorted((DATA / "lumbar-t2-discs").glob("sub-*_T2w.nii.gz"))
        + sorted((DATA / "lumbar-t2-vertebrae").glob("sub-*_mr.nii.gz")),
    }


def _image_path(sub: str) -> Path:
    for p in (
        DATA / "lumbar-t2-discs" / f"{sub}_T2w.nii.gz",
        DATA / "lumbar-t2-vertebrae" / f"{sub}_mr.nii.gz",
    ):
        if p.is_file():
            return p
    raise FileNotFoundError(sub)


def run_cv(runs: Path, out: Path, folds: list[int] | None = None) -> dict[str, Any]:
    """Score the fold models on their held-out subjects (``folds``: a subset, e.g. a rerun;
    the other folds' predictions already in ``out`` are scored with them).

    Only the held-out subjects of the fold configurations count: a prediction in ``out``
    of any other subject (an earlier split's) is left out, and the scored copies are made
    afresh (an audit: stale predictions were scored with the new ones)."""
    ref_dir = out / "ref"
    convert_real_references(DATA, ref_dir)
    pred_dir = out / "cv-pred"
    configs = sorted((ROOT / "configs").glob("segment-cv*.yaml"))
    held_out = {
        f"{sub}_dseg.nii.gz"
        for config in configs
        for sub in yaml.safe_load(config.read_text())["val_subjects"]
    }
    for config in configs:
        if folds is not None and int(config.stem.removeprefix("segment-cv")) not in folds:
            continue
        cfg = yaml.safe_load(config.read_text())
        model = load_segmentation_model(runs / config.stem / "model.pt")
        for sub in cfg["val_subjects"]:
            seg = segment_spine(load_nifti_volume(_image_path(sub)), model=model)
            write_segmentation(seg, pred_dir / f"{sub}_dseg.nii.gz")
            print(sub, [lv.name for lv in seg.levels], seg.flags, flush=True)
    res: dict[str, Any] = {}
    for name, prefix in (("discs", "sub-fcs"), ("vertebrae", "sub-vb")):
        sub_pred = out / f"cv-pred-{name}"
        sub_ref = out / f"ref-{name}"
        for d, src in ((sub_pred, pred_dir), (sub_ref, ref_dir)):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            for p in src.glob(f"{prefix}*_dseg.nii.gz"):
                if src is ref_dir or p.name in held_out:
                    (d / p.name).write_bytes(p.read_bytes())
        if not any(sub_pred.iterdir()):  # no fold of the selection holds this set
            continue
        res[name] = evaluate_dirs(sub_pred, sub_ref)
        print(f"\n== cross-validated, lumbar-t2-{name} ==")
        print(format_table(res[name]))
    (out / "cv.json").write_text(json.dumps(res, indent=2))
    return res


def run_midsag(model_path: Path | None, out: Path, limit: int | None = None) -> dict[str, Any]:
    model = load_segmentation_model(model_path)
    boxes = read_boxes(DATA / "sudirman-midsag-t2" / "boxes.tsv")
    result: dict[str, Any] = {}
    for name in ("spider-midsag-t2", "sudirman-midsag-t2"):
        rows = []
        t0 = time.time()
        for p in sorted((DATA / name).glob("sub-*_T2w.nii.gz"))[:limit]:
            sub = p.name.split("_")[0]
            vol = load_nifti_volume(p)
            seg = segment_spine(vol, model=model)
            r = midsag_check(sub, seg.levels, vol.affine, vol.shape, boxes.get(sub))
            rows.append({**r.__dict__, "flags": seg.flags, "n_discs": len(seg.levels)})
        n = len(rows)
        summary = {
            "n": n,
            "three_found": float(np.mean([r["three_found"] for r in rows])),
            "seconds_per_image": (time.time() - t0) / max(n, 1),
        }
        if name.startswith("sudirman"):
            summary["three_found_in_boxes_in_order"] = float(
                np.mean([bool(r["in_boxes"] and r["order_ok"]) for r in rows])
            )
            summary["strict_lowest_three_boxes"] = float(
                np.mean([bool(r["strict_ok"]) for r in rows])
            )
        else:
            summary["sacrum_not_in_fov"] = float(
                np.mean(["sacrum_not_in_fov" in r["flags"] for r in rows])
            )
        result[name] = {"summary": summary, "cases": rows}
        print(name, json.dumps(summary), flush=True)
    (out / "midsag.json").write_text(json.dumps(result, indent=2))
    return result


def phantom_case(seed: int, cache: Path | None) -> tuple[Volume, np.ndarray, np.ndarray]:
    """T2, label map and nucleus mask of the default phantom study ``seed`` (cached)."""
    f = None if cache is None else cache / f"study-{seed}.npz"
    if f is not None and f.is_file():
        z = np.load(f)
        return Volume(data=z["t2"], affine=z["affine"]), z["labels"], z["nucleus"]
    from discquant.phantom import generate_study

    study = generate_study(seed)
    t2 = study.t2
    labels = np.asarray(study.labels_t2.data).astype(np.int16)
    nucleus = np.asarray(study.nucleus_t2.data).astype(np.uint8)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(f, t2=t2.data, affine=t2.affine, labels=labels, nucleus=nucleus)
    return t2, labels, nucleus


def run_phantom(
    model_path: Path | None, n: int, out: Path, cache: Path | None = None
) -> dict[str, Any]:
    """Disc Dice/HD95/naming and nucleus Dice on unseen default phantom studies.

    Phantom vertebra labels cover body and posterior elements while the network's body
    class is the vertebral body only, so only discs (and the nucleus) are scored. The
    lumbar discs L1-L2 … L5-S1 (issue 5's figure, as ``evaluate segment --lumbar-only``)
    are scored apart from all discs in view (the phantom's T2 also holds T11-T12 and
    T12-L1): ``phantom.json``'s ``lumbar`` and the top level. Until 2026-12-07 only the
    second was printed, and quoted as the lumbar figure (an audit).
    """
    model = load_segmentation_model(model_path)
    cases = []
    lumbar = []
    nucleus_dice = []
    flags = []
    for i in range(n):
        t2, labels, nucleus = phantom_case(10_000 + i, cache)
        seg = segment_spine(t2, model=model)
        ref = np.where((labels >= 100) & (labels < 200), labels, 0)
        pred = seg.labels.data.astype(np.int32)
        cases.append(evaluate_case(pred, ref, t2.voxel_mm, case=str(10_000 + i)))
        lumbar.append(
            evaluate_case(lumbar_only(pred), lumbar_only(ref), t2.voxel_mm, case=str(10_000 + i))
        )
        if seg.nucleus is not None:
            a = seg.nucleus.data > 0
            b = nucleus > 0
            nucleus_dice.append(float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1)))
        flags.append(seg.flags)
        print(i, cases[-1].dice, cases[-1].levels_named, seg.flags, flush=True)
        if (i + 1) % 10 == 0 or i + 1 == n:
            _phantom_summary(cases, lumbar, nucleus_dice, flags, out)
    return _phantom_summary(cases, lumbar, nucleus_dice, flags, out)


def _phantom_summary(
    cases: list[Any],
    lumbar: list[Any],
    nucleus_dice: list[float],
    flags: list[list[str]],
    out: Path,
) -> dict[str, Any]:
    summary = summarise(cases)
    summary["lumbar"] = {
        **summarise(lumbar),
        "all_levels_named_fraction": float(np.mean([all(c.levels_named.values()) for c in lumbar])),
    }
    summary["nucleus_dice_mean"] = float(np.mean(nucleus_dice)) if nucleus_dice else None
    summary["all_levels_named_fraction"] = float(
        np.mean([all(c.levels_named.values()) for c in cases])
    )
    summary["flags"] = flags
    (out / "phantom.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "flags"}, indent=2), flush=True)
    return summary


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["cv", "midsag", "phantom", "phantom-cache"])
    ap.add_argument("--cache", type=Path, default=None, help="phantom: studies cache folder")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--limit", type=int, default=None, help="midsag: first N images per set")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "eval")
    ap.add_argument("--folds", type=int, nargs="+", default=None, help="cv: only these folds")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.what == "cv":
        run_cv(a.runs, a.out, a.folds)
    elif a.what == "midsag":
        run_midsag(a.model, a.out, a.limit)
    elif a.what == "phantom-cache":
        for i in range(a.n):
            phantom_case(10_000 + i, a.cache)
    else:
        run_phantom(a.model, a.n, a.out, a.cache)


if __name__ == "__main__":
    main()
