"""Would averaging help the segmentation? Disc Dice on unseen phantoms (run by hand).

    .venv/bin/python benchmarks/segment_averaging.py --n 20 --runs runs \
        --cache runs/phantom-eval-cache

Scores four ways of predicting on the same unseen phantom studies (seeds 10000 + i):
the shipped network; the shipped network averaged over five in-plane shifts of its
input (0 and ±1 pixel on the network grid, test-time augmentation); the mean of the five
cross-validation fold networks (``RUNS/segment-cvK/model.pt``); and those five plus the
shipped one. Probabilities are averaged, then everything after the network (instances,
level names) runs as in ``segment_spine``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from discquant.evaluate.segmentation import evaluate_case, summarise
from discquant.segment import load_segmentation_model, segment_spine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from segment_eval import phantom_case

SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


class MeanProbability(torch.nn.Module):
    """Log of the mean softmax over networks and input shifts (shifted back before averaging)."""

    def __init__(self, nets: list[torch.nn.Module], shifts: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.nets = torch.nn.ModuleList(nets)
        self.shifts = shifts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = []
        for net in self.nets:
            for dr, dc in self.shifts:
                p = torch.softmax(net(torch.roll(x, (dr, dc), (2, 3))), dim=1)
                probs.append(torch.roll(p, (-dr, -dc), (2, 3)))
        return torch.log(torch.stack(probs).mean(0).clamp_min(1e-8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--runs", type=Path, default=Path("runs"))
    ap.add_argument("--cache", type=Path, default=None, help="phantom studies cache folder")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_segmentation_model()
    shipped = model.net
    folds = [
        load_segmentation_model(args.runs / f"segment-cv{k}" / "model.pt").net for k in range(5)
    ]
    variants = {
        "shipped": shipped,
        "shipped, 5 shifts": MeanProbability([shipped], SHIFTS),
        "5 fold networks": MeanProbability(folds, ((0, 0),)),
        "5 folds + shipped": MeanProbability([*folds, shipped], ((0, 0),)),
    }
    studies = [phantom_case(10_000 + i, args.cache) for i in range(args.n)]
    for name, net in variants.items():
        model.net = net
        cases = []
        for i, (t2, labels, _) in enumerate(studies):
            seg = segment_spine(t2, model=model)
            ref = np.where((labels >= 100) & (labels < 200), labels, 0)
            pred = seg.labels.data.astype(np.int32)
            cases.append(evaluate_case(pred, ref, t2.voxel_mm, case=str(10_000 + i)))
        s = summarise(cases)
        lumbar = {k: round(v, 3) for k, v in s["level_dice"].items() if k.startswith("L")}
        print(f"{name:20s} disc Dice {s['dice']['disc']:.4f}  {lumbar}  named {s['levels_named']}")
    model.net = shipped


if __name__ == "__main__":
    main()
