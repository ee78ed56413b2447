"""Would re-weighting the class probabilities move the real cross-validated Dice? (by hand)

    .venv/bin/python benchmarks/segment_class_bias.py --runs runs --out runs/eval-bias

Each fold model of ``configs/segment-cvK.yaml`` (``RUNS/segment-cvK/model.pt``) predicts
its held-out real volumes once; then the body or the disc (and nucleus) probability is
multiplied by a weight before the arg-max, and everything after the network (instances,
names) and the scoring run as in ``benchmarks/segment_eval.py cv``. A weight above 1
grows the class at its borders, below 1 shrinks it: a systematic over- or
under-segmentation of the real references would show as a Dice that peaks away from 1.
Prints the disc Dice (mean of levels) per disc subject and the body class Dice per body
subject, for each weight.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import discquant.segment.infer as infer
from discquant.evaluate.segmentation import convert_real_references, evaluate_case
from discquant.io.nifti import read_volume
from discquant.segment import load_segmentation_model, segment_spine
from discquant.segment.data import load_nifti_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from segment_eval import DATA, ROOT, _image_path  # benchmarks/: the same real volumes

WEIGHTS = (0.5, 0.7, 0.85, 1.0, 1.2, 1.4, 2.0)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, default=ROOT / "runs")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "eval-bias")
    a = ap.parse_args()
    refs = convert_real_references(DATA, a.out / "ref")
    ref_of = {p.name.split("_")[0]: p for p in refs}
    original = infer.predict_probabilities
    rows: list[tuple[str, str, float, float]] = []
    for config in sorted((ROOT / "configs").glob("segment-cv*.yaml")):
        model_path = a.runs / config.stem / "model.pt"
        if not model_path.is_file():
            print(f"{config.stem}: no model at {model_path}, skipped")
            continue
        model = load_segmentation_model(model_path)
        classes = model.classes
        for sub in yaml.safe_load(config.read_text())["val_subjects"]:
            image = load_nifti_volume(_image_path(sub))
            prob, ro = original(image, model)
            ref_vol = read_volume(ref_of[sub])
            ref = np.asarray(ref_vol.data).astype(np.int32)
            what = "disc" if sub.startswith("sub-fcs") else "body"
            targets = [classes.index("disc"), classes.index("nucleus")] if what == "disc" else [
                classes.index("body")
            ]  # fmt: skip
            for w in WEIGHTS:
                adjusted = prob.copy()
                adjusted[..., targets] *= w

                def fixed(*_: Any, _p: np.ndarray = adjusted, _ro: Any = ro, **__: Any) -> Any:
                    return _p, _ro

                infer.predict_probabilities = fixed  # type: ignore[assignment]
                seg = segment_spine(image, model=model)
                res = evaluate_case(seg.labels.data.astype(np.int32), ref, ref_vol.voxel_mm)
                if what == "disc":
                    vals = [v for k, v in res.level_dice.items() if "-" in k]
                    score = float(np.mean(vals))
                else:
                    score = float(res.dice["body"])
                named = sum(res.levels_named.values())
                rows.append((sub, what, w, score))
                print(f"{sub} {what} weight {w:4.2f}: Dice {score:.4f}, named {named}", flush=True)
            infer.predict_probabilities = original
    print("\nmean over subjects")
    for what in ("disc", "body"):
        for w in WEIGHTS:
            vals = [r[3] for r in rows if r[1] == what and r[2] == w]
            if vals:
                print(f"{what} weight {w:4.2f}: {np.mean(vals):.4f} (n={len(vals)})")


if __name__ == "__main__":
    main()
