"""Each network of a grade training run, and their mean, on the held-out patients (run by hand).

    .venv/bin/python benchmarks/grade_members.py runs/grade

Reads RUN/splits.json (the held-out patients), RUN/checkpoints/fold*.pt (and final.pt when
the run trained one) and RUN/phantoms_test.npz, and prints for each fold network alone,
for the mean of the fold networks and for that mean plus the final network: balanced
accuracy, κ and within ±1 on the held-out discs (both sets, then each set) and exact
accuracy on the unseen phantom studies (when the run made them). Every network is
averaged over the run's test-time shifts, as the shipped model is. This is how the
averaged model of MODEL_CARD.md was chosen. Run from the folder the training ran in: the
data paths of the run's config are relative to it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from discquant.evaluate.grading import grade_agreement
from discquant.grade.data import build_crops, spider_discs, sudirman_discs
from discquant.grade.ensemble import GradeEnsemble
from discquant.grade.pfirrmann import load_pfirrmann_model, predict_probabilities
from discquant.grade.train_config import load_config


def _line(
    name: str, ref: np.ndarray, pred: np.ndarray, spider: np.ndarray, phantom: float | None
) -> str:
    a = grade_agreement(ref, pred)
    parts = [
        f"{name:18s} held-out n={ref.size}: BA {a.balanced_accuracy:.3f} "
        f"kL {a.kappa_linear:.3f} kQ {a.kappa_quadratic:.3f} ±1 {a.within_one:.3f}"
    ]
    for label, m in (("sudirman", ~spider), ("spider", spider)):
        b = grade_agreement(ref[m], pred[m])
        parts.append(f"{label} BA {b.balanced_accuracy:.3f} kL {b.kappa_linear:.3f}")
    if phantom is not None:
        parts.append(f"phantom exact {phantom:.3f}")
    return " | ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="output folder of `discquant train grade`")
    args = ap.parse_args()
    cfg = load_config(args.run / "config.json")  # JSON is YAML
    held = set(json.loads((args.run / "splits.json").read_text())["holdout"])
    discs = []
    seg = None if cfg.segment_model is None else cfg.segment_model.resolve()
    if cfg.sudirman is not None:  # placed as the run placed them
        located = sudirman_discs(cfg.sudirman.resolve(), cfg.sudirman_locate, segment_model=seg)
        discs += [d for d in located if d.subject in held]
    if cfg.spider is not None:
        discs += spider_discs(cfg.spider.resolve(), subjects=held, segment_model=seg)
    crops = build_crops(discs, **cfg.crop.model_dump())
    ref = np.array([d.grade for d in discs])
    spider = np.array([d.subject.startswith("sub-spider") for d in discs])
    phantom_file = args.run / "phantoms_test.npz"
    phantoms = np.load(phantom_file) if phantom_file.is_file() else None
    shifts = [(int(r), int(c)) for r, c in cfg.tta_shifts] or [(0, 0)]

    def network(path: Path) -> torch.nn.Module:
        net = load_pfirrmann_model(path).network
        return net.members[0] if isinstance(net, GradeEnsemble) else net

    nets = {p.stem: network(p) for p in sorted((args.run / "checkpoints").glob("fold*.pt"))}
    final = args.run / "checkpoints" / "final.pt"
    groups = {name: [net] for name, net in nets.items()}
    groups["mean of folds"] = list(nets.values())
    if final.is_file():
        groups["final"] = [network(final)]
        groups["folds + final"] = [*nets.values(), groups["final"][0]]
    for name, members in groups.items():
        ensemble = GradeEnsemble(members, shifts)
        pred = predict_probabilities(ensemble, crops).argmax(1) + 1
        exact = None
        if phantoms is not None:
            p_pred = predict_probabilities(ensemble, phantoms["crops"]).argmax(1) + 1
            exact = float(np.mean(p_pred == phantoms["grades"]))
        print(_line(name, ref, pred, spider, exact))


if __name__ == "__main__":
    main()
