"""`discquant evaluate grade` from a user's walkthrough: outputs over inputs, level
spellings and unmatched rows, European and capitalised tables, the terminal summary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from discquant.cli import app

LEVELS = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _one_line_error(res: Result, name: str) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0], res.output
    return lines[0]


def _grade(*args: str) -> Result:
    return CliRunner().invoke(app, ["evaluate", "grade", *args])


def _tables(tmp_path: Path) -> tuple[Path, Path]:
    ref = _write(
        tmp_path / "ref.tsv",
        "subject\tlevel\tgrade",
        [
            f"{s}\t{lv}\t{g}"
            for s in ("A", "B")
            for lv, g in zip(LEVELS, [1, 2, 3, 4, 5], strict=True)
        ],
    )
    pred = _write(
        tmp_path / "pred.csv",
        "subject,level,grade",
        [
            f"{s},{lv},{g}"
            for s in ("A", "B")
            for lv, g in zip(LEVELS, [1, 2, 3, 4, 4], strict=True)
        ],
    )
    return pred, ref


@pytest.mark.parametrize("which", ["pred", "ref", "ref-dot-slash", "ref-symlink", "pred-hard-link"])
def test_json_naming_an_input_table_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """--json pred.csv replaced the predictions with the metrics JSON, exit 0."""
    monkeypatch.chdir(tmp_path)
    pred, ref = _tables(tmp_path)
    before = {p: p.read_bytes() for p in (pred, ref)}
    target = {"pred": "pred.csv", "ref": "ref.tsv", "ref-dot-slash": "./ref.tsv"}.get(which)
    if which == "ref-symlink":
        os.symlink("ref.tsv", tmp_path / "link.tsv")
        target = "link.tsv"
    elif which == "pred-hard-link":
        os.link(pred, tmp_path / "hard.csv")
        target = "hard.csv"
    assert target is not None
    res = _grade("--pred", "pred.csv", "--ref", "ref.tsv", "--json", target)
    line = _one_line_error(res, target.removeprefix("./"))
    assert "the output would replace the input" in line
    assert ("--pred" in line) == which.startswith("pred")
    assert {p: p.read_bytes() for p in (pred, ref)} == before


def test_plot_naming_an_input_table_is_refused(tmp_path: Path) -> None:
    """A table whose name ends in .png passed the plot's suffix check and was drawn over."""
    rows = ["A\tL4-L5\t1.2", "A\tL5-S1\t1.0", "B\tL4-L5\t1.4"]
    table = _write(tmp_path / "values.png", "subject\tlevel\tadc", rows)
    before = table.read_bytes()
    args = ["--pred", str(table), "--ref", str(table), "--bland-altman", "--column", "adc"]
    line = _one_line_error(_grade(*args, "--plot", str(table)), "values.png")
    assert "the output would replace the input" in line and "--plot" in line
    assert table.read_bytes() == before


@pytest.mark.parametrize(
    "spelling", ["L4/L5", "L4_L5", "L4L5", "l4-l5", "L4 - L5", "l4/l5", "L4-L5"]
)
def test_level_spellings_match_l4_l5(tmp_path: Path, spelling: str) -> None:
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3", "A\tL5-S1\t4"])
    pred = _write(
        tmp_path / "pred.tsv", "subject\tlevel\tgrade", [f"A\t{spelling}\t3", "A\tL5S1\t4"]
    )
    res = _grade("--pred", str(pred), "--ref", str(ref), "--json", "-")
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)
    assert js["n_matched"] == 2 and js["unmatched_pred"] == [] and js["unmatched_ref"] == []
    assert set(js) >= {"L4-L5", "L5-S1"}  # per level, under the level's one spelling
    assert "warning" not in res.output


def test_l5_slash_s1_matches_l5_s1(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.csv", "subject,level,grade", ["A,L5-S1,3", "B,L5-S1,2"])
    pred = _write(tmp_path / "pred.csv", "subject,level,grade", ["A,L5/S1,3", "B,l5s1,2"])
    res = _grade("--pred", str(pred), "--ref", str(ref), "--json", "-")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_matched"] == 2


def test_unmatched_rows_are_named_in_a_warning(tmp_path: Path) -> None:
    """Predictions that matched nothing were dropped with only 'matched 6 of 9'."""
    ref = _write(
        tmp_path / "ref.tsv",
        "subject\tlevel\tgrade",
        [f"{s}\t{lv}\t3" for s in ("A", "B") for lv in LEVELS[2:]] + ["C\tL4-L5\t3"],
    )
    pred_rows = [f"{s},{lv},3" for s in ("A", "B") for lv in LEVELS[2:]]
    # L4-5 is not one of the spellings read as L4-L5; 'b' is not subject B
    pred_rows += ["A,L4-5,3", "b,L4-L5,3"] + [f"D,{lv},3" for lv in LEVELS]
    pred = _write(tmp_path / "pred.csv", "subject,level,grade", pred_rows)
    res = _grade("--pred", str(pred), "--ref", str(ref), "--json", str(tmp_path / "m.json"))
    assert res.exit_code == 0, res.output
    warn = [line for line in res.stderr.splitlines() if "warning" in line]
    assert len(warn) == 2, res.stderr
    assert str(pred) in warn[0] and "7 prediction row(s) match no reference row" in warn[0]
    assert "A L4-5 (line 8)" in warn[0] and "b L4-L5 (line 9)" in warn[0]
    assert "and 2 more" in warn[0]  # five named, then a count
    assert str(ref) in warn[1] and "1 reference row(s) match no prediction row" in warn[1]
    assert "C L4-L5 (line 8)" in warn[1]
    doc = json.loads((tmp_path / "m.json").read_text())
    assert len(doc["unmatched_pred"]) == 7
    assert doc["unmatched_pred"][0] == {"subject": "A", "level": "L4-5", "line": 8}
    assert doc["unmatched_ref"] == [{"subject": "C", "level": "L4-L5", "line": 8}]


def test_two_spellings_of_one_level_are_duplicates(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3"])
    pred = _write(tmp_path / "pred.tsv", "subject\tlevel\tgrade", ["A\tL4/L5\t3", "A\tL4-L5\t2"])
    line = _one_line_error(_grade("--pred", str(pred), "--ref", str(ref)), "pred.tsv")
    assert "duplicate (subject, level) row (A, L4-L5) on lines 2, 3" in line
    assert "'L4/L5', 'L4-L5'" in line


@pytest.mark.parametrize(
    "content",
    [
        "subject;level;grade\nA;L4-L5;3\nA;L5-S1;4\n",
        '\ufeff"subject";"level";"grade"\n"A";"L4-L5";"3"\n"A";"L5-S1";"4"\n',
        "Subject,Level,Grade\nA,L4-L5,3\nA,L5-S1,4\n",
        "\ufeff SUBJECT ;Level; Grade\nA;L4-L5;3\nA;L5-S1;4\n",
        "subject\tlevel\tgrade\nA\tL4-L5\t3\nA\tL5-S1\t4\n",
    ],
    ids=["semicolon", "semicolon-bom-quotes", "capitalised", "bom-blanks-semicolon", "tab-csv"],
)
def test_semicolon_tables_and_capitalised_headers_are_read(tmp_path: Path, content: str) -> None:
    """These said only "missing column(s) ['level', 'subject']"."""
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3", "A\tL5-S1\t5"])
    pred = tmp_path / "pred.csv"
    pred.write_text(content, encoding="utf-8")
    res = _grade("--pred", str(pred), "--ref", str(ref), "--json", "-")
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout)
    assert js["n_matched"] == 2 and js["all"]["exact_accuracy"] == 0.5


def test_subject_numbers_stay_text_under_a_capitalised_header(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.csv", "Subject,Level,Grade", ["01,L4-L5,3", "1,L5-S1,2"])
    pred = _write(tmp_path / "pred.csv", "subject,level,grade", ["01,L4-L5,3", "01,L5-S1,2"])
    res = _grade("--pred", str(pred), "--ref", str(ref), "--json", "-")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_matched"] == 1  # "01" is not "1"


def test_missing_columns_name_the_columns_found_and_the_separator(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.tsv", "subject\tlevel\tgrade", ["A\tL4-L5\t3"])
    pred = _write(tmp_path / "pred.csv", "patient;disc;grade", ["A;L4-L5;3"])
    line = _one_line_error(_grade("--pred", str(pred), "--ref", str(ref)), "pred.csv")
    assert "missing column(s) ['level', 'subject']" in line
    assert "found ['patient', 'disc', 'grade'], read as semicolon-separated" in line
    pred = _write(tmp_path / "pred.csv", "subject;level;score", ["A;L4-L5;3"])
    line = _one_line_error(_grade("--pred", str(pred), "--ref", str(ref)), "pred.csv")
    assert "no column 'grade'" in line and "read as semicolon-separated" in line


def test_a_decimal_comma_in_a_compared_value_is_named(tmp_path: Path) -> None:
    ref = _write(tmp_path / "ref.csv", "subject;level;adc", ["A;L4-L5;1.6", "A;L5-S1;1.4"])
    pred = _write(tmp_path / "pred.csv", "subject;level;adc", ["A;L4-L5;1,62", "A;L5-S1;1.4"])
    args = ["--pred", str(pred), "--ref", str(ref), "--bland-altman", "--column", "adc"]
    line = _one_line_error(_grade(*args), "pred.csv")
    assert "'1,62'" in line and "decimal comma? use a point" in line


def test_the_terminal_shows_a_compact_summary_and_n_a_for_an_undefined_kappa(
    tmp_path: Path,
) -> None:
    """κ of a level with one grade printed 'nan', and ~300 lines of JSON followed."""
    ref = _write(
        tmp_path / "ref.csv",
        "subject,level,grade",
        [f"s{i},{lv},{g}" for i in range(4) for g, lv in enumerate(LEVELS, 1)],
    )
    # each level holds one grade, the same on both sides: κ is undefined per level
    pred = _write(tmp_path / "pred.csv", "subject,level,grade", ref.read_text().splitlines()[1:])
    res = _grade("--pred", str(pred), "--ref", str(ref))
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "{" not in out and "nan" not in out
    assert len(out.splitlines()) <= 15, out
    per_level = [line for line in out.splitlines() if line.startswith(("all", "L"))]
    assert len(per_level) == 6 and "n/a" not in per_level[0]
    assert all(line.count("n/a") == 2 for line in per_level[1:]), out
    # the JSON is all there with --json FILE (null for κ) and --json - (on stdout alone)
    res = _grade("--pred", str(pred), "--ref", str(ref), "--json", str(tmp_path / "m.json"))
    assert res.exit_code == 0 and "{" not in res.stdout
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["L4-L5"]["kappa_linear"] is None and len(doc["L4-L5"]["confusion"]) == 5
    res = _grade("--pred", str(pred), "--ref", str(ref), "--json", "-")
    assert res.exit_code == 0
    assert json.loads(res.stdout) == doc and "kappa lin" in res.stderr
