"""Other ways to turn the Pfirrmann probabilities into a grade (run by hand, < 5 s).

    .venv/bin/python benchmarks/grade_decision_rules.py [--run runs/grade]

Reads a grading run's ``cv_predictions.tsv`` and ``holdout_predictions.tsv`` (written by
``discquant train grade``; columns reference_grade, p1 … p5; runs written before the
column was renamed, ``grade``) and scores, without retraining, five
decision rules on SPIDER CV, Sudirman CV and the held-out patients: argmax (shipped),
the median of the distribution (least expected absolute error), the rounded expected
grade, and post-hoc logit adjustment (argmax of p / prior^tau, Menon et al., ICLR 2021)
with tau 0.5 and 1, the prior being the grade frequencies of all CV discs. Prints
balanced accuracy / kappa linear / within ±1 per set (the table of the Pfirrmann model
card).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from discquant.evaluate.grading import grade_agreement
from discquant.grade.train import REFERENCE_COLUMN, read_predictions

ROOT = Path(__file__).resolve().parents[1]
PROBS = ["p1", "p2", "p3", "p4", "p5"]
GRADES = np.arange(1, 6)

Rule = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.int64]]


def rules(prior: npt.NDArray[np.float64]) -> dict[str, Rule]:
    """Decision rules from (n, 5) probabilities to grades 1–5."""
    return {
        "argmax (shipped)": lambda p: p.argmax(axis=1) + 1,
        "median": lambda p: (np.cumsum(p, axis=1) >= 0.5).argmax(axis=1) + 1,
        "expected, rounded": lambda p: np.clip(np.rint(p @ GRADES), 1, 5).astype(np.int64),
        "p / prior^0.5": lambda p: (p / prior**0.5).argmax(axis=1) + 1,
        "p / prior": lambda p: (p / prior).argmax(axis=1) + 1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "grade")
    args = ap.parse_args()
    cv = read_predictions(args.run / "cv_predictions.tsv")
    holdout = read_predictions(args.run / "holdout_predictions.tsv")
    spider = cv.subject.str.startswith("sub-spider")
    sets = {"SPIDER CV": cv[spider], "Sudirman CV": cv[~spider], "held-out": holdout}
    prior = np.bincount(cv[REFERENCE_COLUMN], minlength=6)[1:] / len(cv)
    print("rule | " + " | ".join(sets) + "   (balanced acc. / kappa linear / within ±1)")
    for name, rule in rules(prior).items():
        cells = []
        for frame in sets.values():
            p = frame[PROBS].to_numpy(dtype=np.float64)
            a = grade_agreement(frame[REFERENCE_COLUMN], rule(p / p.sum(axis=1, keepdims=True)))
            cells.append(f"{a.balanced_accuracy:.3f} / {a.kappa_linear:.3f} / {a.within_one:.3f}")
        print(f"{name} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
