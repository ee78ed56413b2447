"""Test-time shifts and through-plane smoothing on the real cross-validation (run by hand).

    TTA=none  .venv/bin/python benchmarks/segment_tta_cv.py cv --runs runs --out runs/tta/none
    TTA=shift .venv/bin/python benchmarks/segment_tta_cv.py cv --runs runs --out runs/tta/shift
    TTA=z     .venv/bin/python benchmarks/segment_tta_cv.py cv --runs runs --out runs/tta/z

Runs ``benchmarks/segment_eval.py`` (any of its commands and options) with
``predict_probabilities`` replaced: ``shift`` averages the softmax over the input shifted
by (0, 0), (0, 8), (8, 0) and (8, 8) network pixels (a U-Net with four stride-2 levels is
not shift-invariant below 16 pixels; the one-pixel shifts of ``segment_averaging.py``
barely change its output); ``z`` smooths the class probabilities across neighbouring
sagittal slices (weights 1/4, 1/2, 1/4) where slices are at most 1.5 mm apart; ``none``
is the shipped computation. Results in docs/segmentation.md.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from discquant.io.study import Volume
from discquant.segment import infer
from discquant.segment.preprocess import (
    context_offset,
    from_network_grid,
    pad_to_multiple,
    reorient,
    to_network_grid,
    with_context,
)

MODE = os.environ.get("TTA", "none")
SHIFTS = [(0, 0), (0, 8), (8, 0), (8, 8)] if MODE == "shift" else [(0, 0)]


def predict_probabilities(
    image: Volume, model: Any, *, device: str = "cpu", batch: int = 4
) -> tuple[np.ndarray, Any]:
    ro = reorient(image)
    x = to_network_grid(ro, spacing_mm=model.spacing_mm)
    if model.context_mm > 0:
        x = with_context(x, context_offset(ro.spacing_mm[2], model.context_mm))
    h, w = x.shape[-2:]
    net = model.net.to(device)
    total = None
    with torch.inference_mode():
        for dy, dx in SHIFTS:
            xs, _ = pad_to_multiple(F.pad(x, (dx, 0, dy, 0)), 16)
            parts = [
                torch.softmax(net(xs[i : i + batch].to(device)).float(), dim=1)
                for i in range(0, xs.shape[0], batch)
            ]
            p = torch.cat(parts)[:, :, dy : dy + h, dx : dx + w].cpu()
            total = p if total is None else total + p
    assert total is not None
    prob = from_network_grid(total / len(SHIFTS), ro).numpy()
    if MODE == "z" and prob.shape[2] >= 3 and ro.spacing_mm[2] <= 1.5:
        smooth = prob.copy()
        smooth[:, :, 1:-1] = 0.25 * prob[:, :, :-2] + 0.5 * prob[:, :, 1:-1] + 0.25 * prob[:, :, 2:]
        prob = smooth
    return prob, ro


if __name__ == "__main__":
    infer.predict_probabilities = predict_probabilities  # segment_spine looks it up per call
    sys.argv = ["segment_eval.py", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("segment_eval.py")), run_name="__main__")
