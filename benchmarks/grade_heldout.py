"""The shipped Pfirrmann model on its 50 held-out patients, the SPIDER crops placed as
analyze places them, the Sudirman crops by their annotated boxes (run by hand; needs
../shared).

    .venv/bin/python benchmarks/grade_heldout.py

The 42 Sudirman patients' crops are placed by their annotated disc boxes, the 8 SPIDER
patients' by the shipped segmentation (SPIDER has no boxes), exactly as
``tests/grade/test_pfirrmann_shipped.py`` scores them. Prints exact accuracy, balanced
accuracy, κ linear and quadratic and within ±1 for all 166 discs and for each set, and
with ``--discs`` every SPIDER disc's grade and crop placement (to compare two versions
of the code).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from discquant.evaluate.grading import grade_agreement
from discquant.grade import grade_disc_crops, load_pfirrmann_model
from discquant.grade.data import build_crops, spider_discs, sudirman_discs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--discs", action="store_true", help="print each SPIDER disc")
    a = ap.parse_args()
    model = load_pfirrmann_model()
    held = set(model.metadata["holdout_subjects"])
    sudirman = [d for d in sudirman_discs(DATA / "sudirman-midsag-t2") if d.subject in held]
    spider = spider_discs(DATA / "spider-midsag-t2", subjects=held)
    discs = sudirman + spider
    pred = [g.grade for g in grade_disc_crops(build_crops(discs, **model.crop), model=model)]
    ref = [d.grade for d in discs]
    n = len(sudirman)
    print("set | discs | exact | balanced accuracy | κ linear | κ quadratic | within ±1")
    for name, part in (("all", slice(None)), ("Sudirman", slice(0, n)), ("SPIDER", slice(n, None))):
        g = grade_agreement(ref[part], pred[part])
        print(
            f"{name} | {len(ref[part])} | {g.exact_accuracy:.3f} | {g.balanced_accuracy:.3f} | "
            f"{g.kappa_linear:.3f} | {g.kappa_quadratic:.3f} | {g.within_one:.3f}"
        )
    if a.discs:
        for d, p in zip(spider, pred[n:], strict=True):
            print(d.subject, d.level, "reference", d.grade, "graded", p, d.location)


if __name__ == "__main__":
    main()
