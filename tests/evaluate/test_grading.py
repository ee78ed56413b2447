"""Grade agreement and Bland-Altman against values computed by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from discquant.cli import app
from discquant.errors import InvalidInputError
from discquant.evaluate.grading import (
    binary_agreement,
    bland_altman,
    bland_altman_plot,
    grade_agreement,
    read_table,
)

# Hand example: reference 1,1,2,2,3,3 vs predicted 1,2,2,3,3,3.
# Confusion (rows ref 1..3): [1,1,0], [0,1,1], [0,0,2].
# Linear weights |i-j|: observed disagreement 2/6; expected with row marginals 2,2,2 and
# column marginals 1,2,3 (over 6): (8+4+4)/36 * 2 = 8/9  ->  kappa = 1 - (1/3)/(8/9) = 0.625.
# Quadratic weights (i-j)^2: expected (14+4+6)/36 * 2 = 4/3  ->  kappa = 1 - (1/3)/(4/3) = 0.75.
REF = [1, 1, 2, 2, 3, 3]
PRED = [1, 2, 2, 3, 3, 3]


def _json_args(pred: Path, ref: Path, *more: str) -> list[str]:
    """``evaluate grade --json - --pred PRED --ref REF MORE…``: the JSON alone on stdout."""
    return ["evaluate", "grade", "--json", "-", "--pred", str(pred), "--ref", str(ref), *more]


def test_agreement_matches_hand_computation() -> None:
    a = grade_agreement(REF, PRED)
    assert a.n == 6
    assert a.exact_accuracy == pytest.approx(4 / 6)
    assert a.balanced_accuracy == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert a.kappa_linear == pytest.approx(0.625)
    assert a.kappa_quadratic == pytest.approx(0.75)
    assert a.within_one == pytest.approx(1.0)
    assert a.confusion[:3] == [[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 2, 0, 0]]
    assert a.confusion[3:] == [[0] * 5, [0] * 5]


def test_within_one_and_perfect_agreement() -> None:
    a = grade_agreement([1, 2, 3, 4, 5], [3, 2, 3, 4, 5])
    assert a.within_one == pytest.approx(0.8)
    perfect = grade_agreement([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert perfect.kappa_linear == pytest.approx(1.0)
    assert perfect.balanced_accuracy == pytest.approx(1.0)


def test_kappa_textbook_unweighted_equivalence() -> None:
    # With two classes linear = quadratic = unweighted kappa. Classic 2x2 table
    # (a=20 yes/yes, b=5, c=10, d=15; n=50): po = 0.7, pe = 0.5*0.6 + 0.5*0.4 = 0.5,
    # kappa = (0.7 - 0.5) / 0.5 = 0.4.
    ref = [1] * 25 + [2] * 25
    pred = [1] * 20 + [2] * 5 + [1] * 10 + [2] * 15
    a = grade_agreement(ref, pred)
    assert a.kappa_linear == pytest.approx(0.4)
    assert a.kappa_quadratic == pytest.approx(0.4)


def test_agreement_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="3 reference grades but 2"):
        grade_agreement([1, 2, 3], [1, 2])


def test_bland_altman_hand_values(tmp_path: Path) -> None:
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    mea = ref + np.array([0.1, -0.1, 0.3, 0.1])
    ba = bland_altman(ref, mea)
    sd = np.sqrt((0.0 + 0.04 + 0.04 + 0.0) / 3)
    assert ba.bias == pytest.approx(0.1)
    assert ba.sd == pytest.approx(sd)
    assert ba.loa_low == pytest.approx(0.1 - 1.96 * sd)
    assert ba.loa_high == pytest.approx(0.1 + 1.96 * sd)
    # relative errors 10 %, -5 %, 10 %, 2.5 %
    assert ba.bias_percent == pytest.approx((10 - 5 + 10 + 2.5) / 4)
    assert ba.within_5_percent == pytest.approx(0.5)
    assert ba.n_relative == 4
    # A reference of 0 has no relative error: it counts in n, not in n_relative.
    zero = bland_altman([0.0, 1.0, 2.0], [0.1, 1.1, 2.0])
    assert (zero.n, zero.n_relative) == (3, 2)
    assert zero.bias_percent == pytest.approx(5.0)
    png = tmp_path / "ba.png"
    assert bland_altman_plot(ref, mea, png).bias == pytest.approx(0.1)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_cli_evaluate_grade_json(tmp_path: Path) -> None:
    levels = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1", "L1-L2"]
    subj = ["s1"] * 5 + ["s2"]
    ref = _write(
        tmp_path / "ref.tsv",
        "subject\tlevel\tgrade",
        [f"{s}\t{lv}\t{g}" for s, lv, g in zip(subj, levels, REF, strict=True)]
        + ["s3\tL1-L2\t2"],  # unmatched: left out
    )
    pred = _write(
        tmp_path / "pred.csv",
        "subject,level,grade",
        [f"{s},{lv},{g}" for s, lv, g in zip(subj, levels, PRED, strict=True)],
    )
    res = CliRunner().invoke(
        app,
        _json_args(pred, ref, "--no-by-level"),
    )
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)  # --json -: the JSON alone on stdout
    assert js["n_matched"] == 6
    assert js["all"]["kappa_linear"] == pytest.approx(0.625)
    assert js["all"]["kappa_quadratic"] == pytest.approx(0.75)


@pytest.mark.parametrize("level", ["all", "n_matched"])
def test_a_level_named_as_a_result_of_the_report_is_refused(tmp_path: Path, level: str) -> None:
    """Each level's results sit beside the report's own keys: a level written "all"
    replaced the overall figures (and "n_matched" the count) with exit 0 (an audit)."""
    rows = [f"A\t{level}\t3", "B\tL4-L5\t2", "C\tL4-L5\t4"]
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", rows)
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade", rows)
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    assert res.exit_code == 2, res.output
    assert f"level '{level}' is a name of the report's own results" in res.output
    assert "ref.tsv" in res.output
    alone = CliRunner().invoke(
        app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref), "--no-by-level"]
    )
    assert alone.exit_code == 0, alone.output  # not grouped by level: nothing to confuse


def test_cli_evaluate_grade_prints_nothing_when_its_json_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A --json path that passes the early check but cannot be written (e.g. under /proc,
    # as root) printed the whole table and JSON, then failed with exit 2.
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3", "B\tL4-L5\t2"])
    target = tmp_path / "out.json"
    original = Path.write_text

    def refuse(self: Path, *args: object, **kwargs: object) -> int:
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", refuse)
    args = ["evaluate", "grade", "--pred", str(ref), "--ref", str(ref), "--json", str(target)]
    line = _one_line_error(CliRunner().invoke(app, args), "out.json")
    assert "Permission denied" in line and not target.exists()


def test_cli_evaluate_bland_altman(tmp_path: Path) -> None:
    ref = _write(
        tmp_path / "truth.tsv",
        "subject\tlevel\tadc_np_um2_per_ms",
        ["p1\tL4-L5\t1.0", "p1\tL5-S1\t2.0", "p2\tL4-L5\t3.0", "p2\tL5-S1\t4.0"],
    )
    pred = _write(
        tmp_path / "meas.tsv",
        "subject\tlevel\tadc_np_um2_per_ms",
        ["p1\tL4-L5\t1.1", "p1\tL5-S1\t1.9", "p2\tL4-L5\t3.3", "p2\tL5-S1\t4.1"],
    )
    png = tmp_path / "ba.png"
    args = _json_args(pred, ref, "--bland-altman")
    args += ["--column", "adc_np_um2_per_ms", "--plot", str(png), "--no-by-level"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)  # --json -: the JSON alone on stdout
    assert js["all"]["bias"] == pytest.approx(0.1)
    assert png.is_file()
    # the percentage is the mean of the relative errors (+10, -5, +10, +2.5 %), not the
    # bias over the mean: said, as "bias=+0.0005 (-0.25 %)" read as a contradiction
    assert "bias=+0.1000 (mean relative difference +4.37 %)" in res.stderr  # 4.375 in floats


def test_cli_evaluate_grade_bad_input(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.tsv", "subject\tgrade", ["s1\t2"])
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade", ["s1\tL1-L2\t2"])
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    assert res.exit_code == 2
    assert "ref.tsv" in res.output and "level" in res.output


def test_binary_agreement_by_hand() -> None:
    # ref 1,1,0,0,0,0 vs pred 1,0,0,0,1,0: TP 1, FN 1, TN 3, FP 1
    b = binary_agreement(
        [1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 1, 0], scores=[0.9, 0.4, 0.1, 0.2, 0.6, 0.3]
    )
    assert b.prevalence == pytest.approx(2 / 6)
    assert b.sensitivity == pytest.approx(0.5)
    assert b.specificity == pytest.approx(0.75)
    assert b.balanced_accuracy == pytest.approx(0.625)
    assert b.accuracy == pytest.approx(4 / 6)
    # positives' scores 0.9, 0.4 against negatives 0.1, 0.2, 0.6, 0.3: 7 of 8 pairs ordered
    assert b.auc == pytest.approx(7 / 8)
    assert b.confusion == [[3, 1], [1, 1]]
    none = binary_agreement([0, 0], [0, 1])
    assert np.isnan(none.sensitivity) and none.specificity == 0.5 and np.isnan(none.auc)
    assert np.isnan(none.balanced_accuracy)  # not the specificity alone
    with pytest.raises(ValueError, match="0 or 1"):
        binary_agreement([0, 2], [0, 1])


def test_cli_evaluate_binary(tmp_path: Path) -> None:
    rows = [("s1", "L4-L5", 1, 1, 0.9), ("s1", "L5-S1", 0, 0, 0.2), ("s2", "L4-L5", 0, 1, 0.7)]
    pred = _write(
        tmp_path / "pred.tsv",
        "subject\tlevel\therniation\tpredicted\tp_herniation",
        [f"{s}\t{lv}\t{r}\t{p}\t{q}" for s, lv, r, p, q in rows],
    )
    args = ["evaluate", "grade", "--json", "-", "--pred", str(pred), "--ref", str(pred), "--binary"]
    args += ["--column", "herniation", "--pred-column", "predicted"]
    args += ["--score-column", "p_herniation", "--no-by-level"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "sensitivity" in res.output
    js = json.loads(res.stdout)  # --json -: the JSON alone on stdout
    assert js["all"]["sensitivity"] == 1.0
    assert js["all"]["specificity"] == 0.5
    assert js["all"]["auc"] == 1.0


def test_evaluate_grade_with_text_grades_is_a_one_line_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from discquant.cli import app

    ref = tmp_path / "ref.tsv"
    ref.write_text("subject\tlevel\tgrade\ns1\tL4-L5\tthree\ns1\tL5-S1\t4\n")
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(ref), "--ref", str(ref)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "ref.tsv" in lines[0] and "1-5" in lines[0], res.output


def _kappa_by_hand(ref: list[int], pred: list[int], power: int) -> float:
    """Weighted κ over grades 1..5: 1 - sum(W * O) / sum(W * E), W = |i - j| ** power."""
    obs = np.zeros((5, 5))
    np.add.at(obs, (np.asarray(ref) - 1, np.asarray(pred) - 1), 1)
    exp = np.outer(obs.sum(1), obs.sum(0)) / obs.sum()
    i = np.arange(5)
    w = np.abs(i[:, None] - i[None, :]) ** power
    return float(1 - (w * obs).sum() / (w * exp).sum())


def test_weighted_kappa_uses_grade_distance_when_grades_are_absent() -> None:
    # Grades 3 and 4 occur in neither column: 2 vs 5 is 3 grades apart, not 1 rank.
    # Linear: observed mean distance (1 + 1 + 0 + 3 + 0) / 5 = 1; expected from the
    # marginals ref (1:1, 2:2, 5:2) and pred (1:1, 2:3, 5:1): sum r_i p_j |i - j| / 25
    # = (7 + 2*4 + 2*13) / 25 = 41/25, so κ = 1 - 25/41 = 16/41 = 0.390.
    # Quadratic: observed (1 + 1 + 0 + 9 + 0) / 5 = 2.2, expected (19 + 2*10 + 2*43) / 25
    # = 5, so κ = 1 - 2.2/5 = 0.56. (Ranks among present grades gave 0.211 and 0.400.)
    from sklearn.metrics import cohen_kappa_score

    ref, pred = [1, 2, 5, 5, 2], [2, 1, 5, 2, 2]
    a = grade_agreement(ref, pred)
    assert a.kappa_linear == pytest.approx(16 / 41)
    assert a.kappa_quadratic == pytest.approx(0.56)
    assert a.kappa_linear == pytest.approx(_kappa_by_hand(ref, pred, 1))
    assert a.kappa_quadratic == pytest.approx(_kappa_by_hand(ref, pred, 2))
    labels = [1, 2, 3, 4, 5]
    for ref, pred in (([1, 1, 2, 5, 5], [1, 2, 2, 5, 1]), ([2, 2, 5, 5, 1], [2, 5, 5, 2, 1])):
        a = grade_agreement(ref, pred)
        for w, got in (("linear", a.kappa_linear), ("quadratic", a.kappa_quadratic)):
            want = cohen_kappa_score(ref, pred, weights=w, labels=labels)
            assert got == pytest.approx(want)
            assert got == pytest.approx(_kappa_by_hand(ref, pred, 1 if w == "linear" else 2))


def test_weighted_kappa_uses_the_given_label_set() -> None:
    from sklearn.metrics import cohen_kappa_score

    ref, pred = [0, 0, 3, 3, 1], [1, 0, 3, 0, 1]  # 2 absent from both
    a = grade_agreement(ref, pred, labels=(0, 1, 2, 3))
    want = cohen_kappa_score(ref, pred, weights="quadratic", labels=[0, 1, 2, 3])
    assert a.kappa_quadratic == pytest.approx(want)
    assert a.confusion == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]]
    with pytest.raises(ValueError, match=r"\[6\] not among the labels"):
        grade_agreement([1, 6], [1, 2])


def _one_line_error(res: Result, name: str) -> str:
    out = res.output
    assert res.exit_code == 2, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0], out
    return lines[0]


@pytest.mark.parametrize("which", ["pred", "ref"])
def test_cli_evaluate_grade_rejects_duplicate_rows(tmp_path: Path, which: str) -> None:
    rows = ["A\tL4-L5\t3", "B\tL4-L5\t2", "B\tL5-S1\t4"]
    dup = rows[:1] + rows  # (A, L4-L5) twice: it would be counted twice
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade", dup if which == "pred" else rows)
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", dup if which == "ref" else rows)
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    line = _one_line_error(res, f"{which}.tsv")
    assert "duplicate" in line and "(A, L4-L5)" in line and "lines 2, 3" in line


def test_cli_evaluate_grade_matches_numeric_and_text_subjects(tmp_path: Path) -> None:
    # Subjects are text: "01" is not "1" (a numeric read made them one subject).
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["01\tL4-L5\t3", "2\tL4-L5\t2"])
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade", ["1\tL4-L5\t3", "2\tL4-L5\t4"])
    args = _json_args(pred, ref, "--no-by-level")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)  # --json -: the JSON alone on stdout
    assert js["n_matched"] == 1  # subject "2" only
    assert js["all"]["exact_accuracy"] == 0.0
    assert js["all"]["confusion"][1] == [0, 0, 0, 1, 0]  # reference 2, predicted 4


def test_cli_evaluate_grade_matches_subjects_by_bids_label(tmp_path: Path) -> None:
    """A cohort table writes subjects as BIDS labels (spider002, 00); a reference that
    says sub-spider002 matched nothing: "no (subject, level) row is in both tables"."""
    ref = _write(
        tmp_path / "ref.tsv",
        "subject\tlevel\tgrade",
        ["sub-spider002\tL4-L5\t3", "sub-spider_003\tL4-L5\t2", "sub-00\tL5-S1\t5"],
    )
    pred = _write(
        tmp_path / "cohort_discs.csv",
        "subject,level,pfirrmann_grade",
        ["spider002,L4-L5,3", "spider003,L4-L5,4", "00,L5-S1,5", "0,L5-S1,1"],
    )
    args = _json_args(pred, ref, "--no-by-level")
    res = CliRunner().invoke(app, [*args, "--pred-column", "pfirrmann_grade"])
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)  # --json -: the JSON alone on stdout
    assert js["n_matched"] == 3  # "0" stays apart from "00"
    assert js["all"]["exact_accuracy"] == pytest.approx(2 / 3)
    assert js["all"]["confusion"][1] == [0, 0, 0, 1, 0]  # spider003: reference 2, predicted 4
    assert js["all"]["confusion"][4] == [0, 0, 0, 0, 1]  # 00: 5 and 5, not 0's 1


def test_cli_evaluate_grade_matches_the_sessions_of_a_cohort_table(tmp_path: Path) -> None:
    """A cohort of a BIDS dataset with sessions writes subject ``01`` and session ``2``;
    matched on the subject alone, the two visits of one patient would be one (subject,
    level) pair twice. Each session matches a reference's ``sub-01_ses-2``."""
    ref = _write(
        tmp_path / "ref.tsv",
        "subject\tlevel\tgrade",
        ["sub-01_ses-1\tL4-L5\t2", "sub-01_ses-2\tL4-L5\t4", "sub-02\tL4-L5\t3"],
    )
    pred = _write(
        tmp_path / "cohort_discs.csv",
        "subject,session,level,pfirrmann_grade",
        ["01,1,L4-L5,2", "01,2,L4-L5,3", "02,,L4-L5,3", "01,3,L4-L5,1"],
    )
    args = _json_args(pred, ref, "--no-by-level")
    res = CliRunner().invoke(app, [*args, "--pred-column", "pfirrmann_grade"])
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)
    assert js["n_matched"] == 3  # session 3 has no reference
    assert js["all"]["confusion"][3] == [0, 0, 1, 0, 0]  # ses-2: reference 4, predicted 3
    assert [r["subject"] for r in js["unmatched_pred"]] == ["01_ses-3"]


@pytest.mark.parametrize("which", ["pred", "ref"])
def test_cli_evaluate_grade_refuses_rows_that_are_one_subject_by_bids_label(
    tmp_path: Path, which: str
) -> None:
    rows = ["A\tL4-L5\t3", "B\tL4-L5\t2"]
    dup = ["sub-A\tL4-L5\t3", *rows]  # sub-A and A: one subject, counted twice
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade", dup if which == "pred" else rows)
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", dup if which == "ref" else rows)
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    line = _one_line_error(res, f"{which}.tsv")
    assert "duplicate (subject, level) row (A, L4-L5) on lines 2, 3" in line
    assert "'sub-A', 'A'" in line and "BIDS label" in line


def test_cli_evaluate_grade_says_which_subjects_each_side_has(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["sub-99\tL4-L5\t3"])
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade", ["00\tL4-L5\t3"])
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    line = _one_line_error(res, "pred.tsv")
    assert "no (subject, level) row is in both tables" in line
    assert "--pred has subjects 00 at levels L4-L5" in line
    assert "--ref has subjects 99 at levels L4-L5" in line


def _cohort_like(n_subjects: int = 2) -> Any:
    """A table as ``discquant cohort`` writes it: BIDS-label subjects, pfirrmann_grade."""
    import pandas as pd

    levels = ["L3-L4", "L4-L5", "L5-S1"]
    return pd.DataFrame(
        {
            "subject": [f"{i:02d}" for i in range(n_subjects) for _ in levels],
            "status": "complete",
            "level": levels * n_subjects,
            "adc_np_median_um2_per_ms": [1.8, 1.5, 1.2] * n_subjects,
            "pfirrmann_grade": [3, 4, 5] * n_subjects,
        }
    )


def test_cli_evaluate_grade_reads_the_cohort_parquet(tmp_path: Path) -> None:
    """cohort_discs.parquet, which discquant cohort prints, failed with "cannot read
    table: 'utf-8' codec can't decode byte 0x8a"."""
    table = tmp_path / "cohort_discs.parquet"
    _cohort_like().to_parquet(table, index=False)  # as cohort/tables.py writes it
    ref = _write(
        tmp_path / "ref.tsv",
        "subject\tlevel\tgrade",
        ["sub-00\tL4-L5\t4", "sub-00\tL5-S1\t4", "sub-01\tL3-L4\t3"],
    )
    args = _json_args(table, ref, "--no-by-level")
    res = CliRunner().invoke(app, [*args, "--pred-column", "pfirrmann_grade"])
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)  # --json -: the JSON alone on stdout
    assert (js["n_pred"], js["n_matched"]) == (6, 3)
    assert js["all"]["exact_accuracy"] == pytest.approx(2 / 3)  # L5-S1: 5 against 4


def test_read_table_checks_a_parquet_table_and_names_its_rows(tmp_path: Path) -> None:
    import pandas as pd

    from discquant.output_paths import bids_label

    path = tmp_path / "t.parquet"
    df = _cohort_like(1)
    df.loc[2, "subject"] = "sub-00"  # the same subject as rows 1 and 2 by BIDS label
    df.loc[2, "level"] = "L3-L4"
    df.to_parquet(path, index=False)
    assert list(read_table(path)["subject"]) == ["00", "00", "sub-00"]
    with pytest.raises(InvalidInputError, match=r"\(00, L3-L4\) in data rows 1, 3 \(written"):
        read_table(path, subject_key=bids_label)
    df = _cohort_like(1)
    df["subject"] = pd.array([7, None, 9], dtype="Int64")  # numbers are read as text
    df.to_parquet(path, index=False)
    with pytest.raises(InvalidInputError, match=r"empty subject in data row 2$"):
        read_table(path)
    df.loc[1, "subject"] = 8
    df.to_parquet(path, index=False)
    assert list(read_table(path)["subject"]) == ["7", "8", "9"]
    df.drop(columns="level").to_parquet(path, index=False)
    with pytest.raises(InvalidInputError, match=r"missing column\(s\) \['level'\]"):
        read_table(path)
    path.write_bytes(b"PAR1 and then nothing")
    with pytest.raises(InvalidInputError, match="cannot read Parquet table"):
        read_table(path)


def test_cli_evaluate_grade_refuses_binary_files_in_one_line(tmp_path: Path) -> None:
    import gzip

    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3"])
    nifti = tmp_path / "sub-A_dseg.nii.gz"
    nifti.write_bytes(gzip.compress(b"\x5c\x01\x00\x00" + bytes(344)))
    args = ["evaluate", "grade", "--pred", str(nifti), "--ref", str(ref)]
    line = _one_line_error(CliRunner().invoke(app, args), "sub-A_dseg.nii.gz")
    assert "not a CSV/TSV text table (gzip-compressed" in line and "codec" not in line
    raw = tmp_path / "image.csv"
    raw.write_bytes(b"subject,level\x00\x00\x01")
    args = ["evaluate", "grade", "--pred", str(raw), "--ref", str(ref)]
    assert "not a CSV/TSV text table (binary data)" in _one_line_error(
        CliRunner().invoke(app, args), "image.csv"
    )
    latin = tmp_path / "latin.tsv"
    latin.write_bytes(
        "subject\tlevel\tgrade\nA\tL4-L5\t3\nM\u00fcller\tL4-L5\t2\n".encode("latin-1")
    )
    args = ["evaluate", "grade", "--pred", str(latin), "--ref", str(ref)]
    line = _one_line_error(CliRunner().invoke(app, args), "latin.tsv")
    assert "in UTF-8 (byte 0xfc on line 3)" in line and "codec" not in line


@pytest.mark.parametrize(("which", "option"), [("pred", "--pred-column"), ("ref", "--column")])
def test_cli_evaluate_grade_hints_at_pfirrmann_grade(
    tmp_path: Path, which: str, option: str
) -> None:
    """The default --column grade failed on discquant's own tables (pfirrmann_grade)
    without saying which column to give."""
    ours = _write(tmp_path / "ours.csv", "subject,level,pfirrmann_grade", ["A,L4-L5,3"])
    theirs = _write(tmp_path / "theirs.csv", "subject,level,grade", ["A,L4-L5,3"])
    pred, ref = (ours, theirs) if which == "pred" else (theirs, ours)
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    line = _one_line_error(res, "ours.csv")
    assert f"no column 'grade'; discquant's tables call it pfirrmann_grade: add {option} " in line
    other = _write(tmp_path / "other.csv", "subject,level,score", ["A,L4-L5,3"])
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(other), "--ref", str(ref)])
    assert "pfirrmann" not in _one_line_error(res, "other.csv").split("(has")[0]


def test_cli_evaluate_grade_says_a_folder_is_not_a_table(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3"])
    out = tmp_path / "cohort"
    out.mkdir()
    args = ["evaluate", "grade", "--pred", str(out), "--ref", str(ref)]
    line = _one_line_error(CliRunner().invoke(app, args), "cohort")
    assert "a folder, not a table file" in line and "not found" not in line
    _cohort_like().to_csv(out / "cohort_discs.csv", index=False)
    line = _one_line_error(CliRunner().invoke(app, args), "cohort")
    assert "it holds cohort_discs.csv: give that" in line


def test_cli_evaluate_grade_counts_empty_values(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3", "B\tL4-L5\t2"])
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t", "B\tL4-L5\t2"])
    args = _json_args(pred, ref, "--no-by-level")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)  # --json -: the JSON alone on stdout
    assert (js["n_matched"], js["n_empty"], js["all"]["n"]) == (1, 1, 1)


def test_cli_evaluate_bland_altman_with_text_is_a_one_line_error(tmp_path: Path) -> None:
    header = "subject\tlevel\tadc"
    ref = _write(tmp_path / "ref.tsv", header, ["A\tL4-L5\t1.2", "A\tL5-S1\t1.0"])
    pred = _write(tmp_path / "pred.tsv", header, ["A\tL4-L5\t1.1", "A\tL5-S1\tabc"])
    args = ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref), "--bland-altman"]
    res = CliRunner().invoke(app, [*args, "--column", "adc"])
    line = _one_line_error(res, "pred.tsv")
    assert "'abc'" in line and "L5-S1" in line


@pytest.mark.parametrize("extra", [[], ["--binary", "--score-column", "p"]])
def test_cli_evaluate_with_an_infinite_value_is_a_one_line_error(
    tmp_path: Path, extra: list[str]
) -> None:
    """inf was dropped from Bland-Altman without a word (n 3 of 4 matched), and as a
    score it gave a traceback."""
    header = "subject\tlevel\th\tp"
    ref = _write(
        tmp_path / "ref.tsv", header, ["A\tL4-L5\t1\t0.5", "A\tL5-S1\t0\t0.5", "B\tL4-L5\t1\t0.5"]
    )
    pred = _write(
        tmp_path / "pred.tsv", header, ["A\tL4-L5\t1\t0.9", "A\tL5-S1\t0\t0.1", "B\tL4-L5\t1\tinf"]
    )
    column = ["--column", "p", "--bland-altman"] if not extra else ["--column", "h", *extra]
    args = ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref), *column]
    line = _one_line_error(CliRunner().invoke(app, args), "pred.tsv")
    assert "'inf'" in line and "subject B, level L4-L5" in line


def test_cli_evaluate_score_column_must_not_be_the_compared_column(tmp_path: Path) -> None:
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\th", ["A\tL4-L5\t0", "A\tL5-S1\t1"])
    args = ["evaluate", "grade", "--pred", str(pred), "--ref", str(pred), "--binary"]
    res = CliRunner().invoke(app, [*args, "--column", "h", "--score-column", "h"])
    assert "compared column" in _one_line_error(res, "pred.tsv")


def test_cli_evaluate_binary_with_an_empty_score_is_a_one_line_error(tmp_path: Path) -> None:
    pred = _write(
        tmp_path / "pred.tsv",
        "subject\tlevel\th\tp",
        ["A\tL4-L5\t0\t0.3", "A\tL5-S1\t1\t0.6", "B\tL4-L5\t0\t", "B\tL5-S1\t1\t0.9"],
    )
    args = ["evaluate", "grade", "--pred", str(pred), "--ref", str(pred), "--binary"]
    res = CliRunner().invoke(app, [*args, "--column", "h", "--score-column", "p"])
    line = _one_line_error(res, "pred.tsv")
    assert "empty" in line and "'p'" in line and "subject B, level L4-L5" in line


def test_cli_evaluate_grade_checks_every_output_before_writing(tmp_path: Path) -> None:
    header = "subject\tlevel\tadc"
    table = _write(tmp_path / "t.tsv", header, ["A\tL4-L5\t1.2", "A\tL5-S1\t1.0"])
    png = tmp_path / "ba.png"
    folder = tmp_path / "afolder"
    folder.mkdir()
    args = ["evaluate", "grade", "--pred", str(table), "--ref", str(table), "--bland-altman"]
    args += ["--column", "adc", "--plot", str(png), "--json", str(folder)]
    line = _one_line_error(CliRunner().invoke(app, args), "afolder")
    assert "folder" in line
    assert not png.exists()  # nothing half-written


def test_cli_evaluate_grade_writes_null_for_an_undefined_kappa(tmp_path: Path) -> None:
    """Every grade 3 on both sides: κ is undefined; the JSON said NaN, which is not JSON."""
    rows = [f"s{i},L4-L5,3" for i in range(4)]
    ref = _write(tmp_path / "ref.csv", "subject,level,grade", rows)
    pred = _write(tmp_path / "pred.csv", "subject,level,grade", rows)
    out = tmp_path / "out.json"
    args = ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref), "--json", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert doc["all"]["kappa_linear"] is None and doc["all"]["exact_accuracy"] == 1.0


def test_cli_bland_altman_names_the_column_and_says_which_levels_it_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plot's axes said "ADC (µm²/ms)" whatever the column; a level with one pair was
    missing from the output without a note."""
    import matplotlib.axes

    labels: list[str] = []
    real = matplotlib.axes.Axes.set_xlabel
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "set_xlabel",
        lambda ax, t, *a, **k: (labels.append(t), real(ax, t, *a, **k))[1],
    )
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\theight_mm",
                 ["a\tL4-L5\t10.0", "b\tL4-L5\t11.0", "a\tL5-S1\t9.0"])  # fmt: skip
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\theight_mm",
                  ["a\tL4-L5\t10.5", "b\tL4-L5\t11.5", "a\tL5-S1\t9.5"])  # fmt: skip
    png = tmp_path / "ba.png"
    args = _json_args(pred, ref, "--bland-altman")
    res = CliRunner().invoke(app, [*args, "--column", "height_mm", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert labels == ["mean of measured and reference\nheight_mm"]
    js = json.loads(res.stdout)  # --json -: the JSON alone on stdout
    assert js["L5-S1"] == {"n": 1, "note": "fewer than 2 pairs: not computed"}
    assert js["all"]["bias"] == pytest.approx(0.5) and js["plot"] == str(png)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ba.png", "pred.tsv", "ref.tsv"]


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--plot", "x.png"], "add --bland-altman"),
        (["--score-column", "p"], "add --binary"),
        (["--binary", "--bland-altman"], "exclude each other"),
    ],
)
def test_cli_evaluate_grade_refuses_options_that_do_nothing(
    tmp_path: Path, extra: list[str], problem: str
) -> None:
    rows = ["s1,L4-L5,3", "s2,L4-L5,4"]
    ref = _write(tmp_path / "ref.csv", "subject,level,grade", rows)
    pred = _write(tmp_path / "pred.csv", "subject,level,grade", rows)
    res = CliRunner().invoke(
        app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref), *extra]
    )
    assert problem in _one_line_error(res, problem)
    assert not (tmp_path / "x.png").exists()


def test_cli_bland_altman_leaves_no_plot_when_the_json_cannot_be_written(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tv", ["a\tL4-L5\t1.0", "b\tL4-L5\t2.0"])
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tv", ["a\tL4-L5\t1.1", "b\tL4-L5\t2.1"])
    dangling = tmp_path / "out.json"
    dangling.symlink_to(tmp_path / "missing" / "out.json")
    args = ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref), "--bland-altman"]
    args += ["--column", "v", "--plot", str(tmp_path / "ba.png"), "--json", str(dangling)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "pred.tsv", "ref.tsv"]


@pytest.mark.parametrize("column", ["level", "subject"])
def test_comparing_the_disc_key_columns_is_bad_input(tmp_path: Path, column: str) -> None:
    """``--column level`` crashed with KeyError('level') (exit 1)."""
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["s1\tL4-L5\t3", "s1\tL5-S1\t4"])
    res = CliRunner().invoke(
        app, ["evaluate", "grade", "--pred", str(ref), "--ref", str(ref), "--column", column]
    )
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"'{column}' names the disc" in lines[0], res.output


def test_fractional_grades_are_refused_not_rounded_down() -> None:
    """2.7 was read as 2 (exact accuracy 1.0 for [2.7, 3] against [2, 3])."""
    from discquant.evaluate.grading import binary_agreement

    with pytest.raises(ValueError, match=r"whole numbers, got 2\.7"):
        grade_agreement([2.7, 3], [2, 3])
    with pytest.raises(ValueError, match=r"whole numbers, got 0\.6"):
        binary_agreement([0.6, 1, 0], [1, 1, 0])
    assert grade_agreement([3.0, 2.0], [3, 2]).exact_accuracy == 1.0  # "3.0" is a grade


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("B\tL5-S1\t4\t", "line 4 has 4 field(s), the header has 3"),  # a trailing tab
        ("B\tL5-S1", "line 4 has 2 field(s), the header has 3"),  # a grade left out
    ],
)
def test_cli_evaluate_grade_refuses_a_row_with_another_field_count(
    tmp_path: Path, bad_row: str, problem: str
) -> None:
    # pandas alone shifted every column of a row with one field too many (the subject
    # became the index, the message then blamed the level) and read a short row as an
    # empty grade, left out with exit 0. The blank line 3 must not shift the line number.
    rows = ["A\tL4-L5\t3", "", bad_row, "C\tL4-L5\t2"]
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade", rows)
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3", "B\tL5-S1\t4"])
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    assert problem in _one_line_error(res, "pred.tsv")


def test_cli_evaluate_grade_error_lines_count_blank_lines(tmp_path: Path) -> None:
    # Physical line numbers: header 1, blank 2 and 4 (one of spaces only), rows 3, 5, 6.
    text = "subject,level,grade\n\nA,L4-L5,3\n   \nB,L4-L5,2\nA,L4-L5,4\n"
    (tmp_path / "ref.csv").write_text(text)
    pred = _write(tmp_path / "pred.csv", "subject,level,grade", ["A,L4-L5,3"])
    args = ["evaluate", "grade", "--pred", str(pred), "--ref", str(tmp_path / "ref.csv")]
    line = _one_line_error(CliRunner().invoke(app, args), "ref.csv")
    assert "(A, L4-L5) on lines 3, 6" in line
    (tmp_path / "ref.csv").write_text("subject,level,grade\n\nA,L4-L5,3\n\n,L5-S1,4\n")
    assert "empty subject on line 5" in _one_line_error(CliRunner().invoke(app, args), "ref.csv")


def test_cli_evaluate_grade_names_a_table_with_no_data_rows(tmp_path: Path) -> None:
    # The "no row in both tables" message had listed the empty side's subjects as "".
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade", [])
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3"])
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    assert "--pred has no data rows" in _one_line_error(res, "pred.tsv")
    args = ["evaluate", "grade", "--pred", str(ref), "--ref", str(pred)]
    assert "--ref has no data rows" in _one_line_error(CliRunner().invoke(app, args), "pred.tsv")


def test_cli_evaluate_grade_reads_a_quoted_empty_line_as_a_short_row(tmp_path: Path) -> None:
    # pandas reads a line of only "" as a row; the checker had skipped it as blank, and
    # the mismatch surfaced as "N rows read but M lines with data", naming no line.
    pred = _write(tmp_path / "pred.csv", "subject,level,grade", ["A,L4-L5,3", '""'])
    ref = _write(tmp_path / "ref.csv", "subject,level,grade", ["A,L4-L5,3"])
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    assert "line 3 has 1 field(s), the header has 3" in _one_line_error(res, "pred.csv")


def test_cli_evaluate_grade_refuses_a_repeated_column_name(tmp_path: Path) -> None:
    # pandas renamed the second "grade" to "grade.1": the comparison silently used the first.
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade\tgrade", ["A\tL4-L5\t3\t4"])
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3"])
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    assert "['grade'] appear more than once" in _one_line_error(res, "pred.tsv")


def test_read_table_keeps_quoted_multiline_fields_and_their_lines(tmp_path: Path) -> None:
    # A quoted note spanning two lines is one row to both readers; the next row's line is 4.
    path = tmp_path / "t.csv"
    path.write_text('subject,level,note\nA,L4-L5,"two\nlines"\n,L5-S1,x\n')
    with pytest.raises(InvalidInputError, match="empty subject on line 4"):
        read_table(path)
    path.write_text('subject,level,note\nA,L4-L5,"two\nlines"\nB,L5-S1,x\n')
    df = read_table(path)
    assert list(df["subject"]) == ["A", "B"] and df["note"].iloc[0] == "two\nlines"


def test_cli_evaluate_grade_refuses_a_subject_without_letters_or_digits(tmp_path: Path) -> None:
    # Both became the BIDS label "unknown": one patient's prediction was scored against
    # another patient's reference, exit 0.
    pred = _write(tmp_path / "pred.csv", "subject,level,grade", ["患者一,L4-L5,2"])
    ref = _write(tmp_path / "ref.csv", "subject,level,grade", ["A1,L4-L5,3", "患者二,L4-L5,5"])
    res = CliRunner().invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
    assert "has no letter or digit" in _one_line_error(res, "pred.csv")


def test_trailing_empty_header_columns_are_not_a_repeated_name(tmp_path: Path) -> None:
    # A spreadsheet export ends every line with ",,": two blank names, not a duplicate.
    path = tmp_path / "t.csv"
    path.write_text("subject,level,grade,,\nA,L4-L5,3,,\nB,L5-S1,4,,\n")
    assert list(read_table(path)["grade"]) == [3, 4]


def test_cli_bland_altman_plot_with_a_long_name_and_its_folder_after_a_failure(
    tmp_path: Path,
) -> None:
    """A legal 248-character --plot failed "File name too long" on its temporary name,
    which the error named; a failed --json left the plot's new folder behind (an audit)."""
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tv", ["a\tL4-L5\t1.0", "b\tL4-L5\t2.0"])
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tv", ["a\tL4-L5\t1.1", "b\tL4-L5\t2.1"])
    args = ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref), "--bland-altman"]
    args += ["--column", "v"]
    long = tmp_path / ("a" * 248 + ".png")
    res = CliRunner().invoke(app, [*args, "--plot", str(long)])
    assert res.exit_code == 0, res.output
    assert long.read_bytes().startswith(b"\x89PNG")
    dangling = tmp_path / "out.json"
    dangling.symlink_to(tmp_path / "missing" / "out.json")
    res = CliRunner().invoke(app, [*args, "--plot", str(tmp_path / "new/ba.png"), "--json",
                                   str(dangling)])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "new").exists()
    unwritable = Path("/proc/discquant-test.png")  # a folder no one may write in
    res = CliRunner().invoke(app, [*args, "--plot", str(unwritable)])
    assert res.exit_code == 2
    assert res.output.startswith(f"discquant: error: {unwritable}"), res.output
