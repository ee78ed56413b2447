"""`discquant calibrate`: an output over its own table, and European number formats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from discquant.cli import app
from discquant.measure.water import WaterCalibration

PAIRS = "adc,water\n1.0,60\n1.5,70\n2.0,80\n2.5,90\n"


def _one_line_error(res: Result, name: str) -> str:
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0], res.output
    return lines[0]


@pytest.mark.parametrize("spelling", ["same", "dot-slash", "symlink", "hard-link"])
def test_calibrate_refuses_to_write_over_its_own_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    """`calibrate pairs.csv -o pairs.csv` replaced the table with the JSON, exit 0."""
    monkeypatch.chdir(tmp_path)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(PAIRS)
    table, out = "pairs.csv", "pairs.csv"
    if spelling == "dot-slash":
        out = "./pairs.csv"
    elif spelling == "symlink":
        os.symlink("pairs.csv", tmp_path / "link.csv")
        table = "link.csv"
    elif spelling == "hard-link":
        os.link(pairs, tmp_path / "hard.csv")
        out = "hard.csv"
    line = _one_line_error(CliRunner().invoke(app, ["calibrate", table, "-o", out]), "pairs.csv")
    assert "the output would replace the input" in line
    assert pairs.read_text() == PAIRS  # nothing written


def test_calibrate_writes_next_to_its_table(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(PAIRS)
    res = CliRunner().invoke(app, ["calibrate", str(pairs), "-o", str(tmp_path / "cal.json")])
    assert res.exit_code == 0, res.output
    assert WaterCalibration.load(tmp_path / "cal.json").water_percent(1.75) == pytest.approx(75.0)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        # a European export: semicolons and decimal commas
        (
            "adc;water\n1,664;60\n1,5;70\n2,0;80\n",
            "non-numeric value '1,664' on line 2, column 'adc' (decimal comma? use a point)",
        ),
        (
            "adc\twater\n1.6\t60\n\n1.5\t70,5\n2.0\t80\n",
            "non-numeric value '70,5' on line 4, column 'water' (decimal comma? use a point)",
        ),
        # text is no number, and no decimal comma either
        ("adc,water\n1.0,60\n1.5,sixty\n", "non-numeric value 'sixty' on line 3, column 'water'"),
    ],
)
def test_calibrate_names_the_line_and_column_of_a_value_that_is_no_number(
    tmp_path: Path, content: str, problem: str
) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(content)
    out = tmp_path / "cal.json"
    line = _one_line_error(
        CliRunner().invoke(app, ["calibrate", str(pairs), "-o", str(out)]), str(pairs)
    )
    assert problem in line
    assert ("decimal comma" in line) == ("decimal comma" in problem)
    assert not out.exists()


def test_calibrate_splits_a_tsv_at_its_tabs_when_a_column_name_holds_a_comma(
    tmp_path: Path,
) -> None:
    """The separator is the one giving the most header fields (csv.Sniffer chose ',')."""
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("adc (µm², median)\twater\n1.0\t60\n1.5\t70\n2.0\t80\n")
    out = tmp_path / "cal.json"
    args = ["calibrate", str(pairs), "-o", str(out), "--adc-column", "adc (µm², median)"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "(n = 3," in res.output


def test_calibrate_reads_column_names_whatever_their_case(tmp_path: Path) -> None:
    """`ADC;Water` from a spreadsheet said "missing column(s) ['adc', 'water']", as
    `evaluate grade` did before it read header names ignoring case and blanks."""
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\ufeffADC ; Water\n1.0;60\n1.5;70\n2.0;80\n2.5;90\n")
    out = tmp_path / "cal.json"
    res = CliRunner().invoke(app, ["calibrate", str(pairs), "-o", str(out)])
    assert res.exit_code == 0, res.output
    cal = WaterCalibration.load(out)
    assert cal.water_percent(1.75) == pytest.approx(75.0)  # water = 40 + 20 × ADC
    # a name that is not there lists the columns found
    res = CliRunner().invoke(
        app, ["calibrate", str(pairs), "-o", str(out), "--water-column", "h2o"]
    )
    line = _one_line_error(res, str(pairs))
    assert "missing column(s) ['h2o'] (found ['ADC ', ' Water'])" in line, line


def test_calibrate_refuses_one_column_for_both_and_names_a_parquet_table(tmp_path: Path) -> None:
    """`--water-column adc` fitted the ADC against itself: "R² = 1.000", exit 0; a
    Parquet table gave the codec's "can't decode byte 0x80" (an audit)."""
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(PAIRS)
    out = tmp_path / "cal.json"
    args = ["calibrate", str(pairs), "-o", str(out)]
    line = _one_line_error(CliRunner().invoke(app, [*args, "--water-column", "ADC"]), "pairs.csv")
    assert line.endswith("--adc-column and --water-column name the same column 'adc'")
    table = tmp_path / "pairs.parquet"
    table.write_bytes(b"PAR1\x15\x04\x15\x80\x01" + bytes(64))
    line = _one_line_error(CliRunner().invoke(app, ["calibrate", str(table), "-o", str(out)]), "")
    assert line.endswith("pairs.parquet: not a CSV/TSV text table (a Parquet table: give the rows "
                         "as CSV or TSV)")  # fmt: skip
    assert not out.exists()


def test_calibrate_prints_a_falling_line_with_a_minus_sign(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("adc,water\n1.0,85\n1.5,72.5\n2.0,60\n")
    res = CliRunner().invoke(app, ["calibrate", str(pairs), "-o", str(tmp_path / "cal.json")])
    assert res.exit_code == 0, res.output
    assert "water % = 110.00 − 25.00 × ADC (n = 3, R² = 1.000)" in res.output  # not "+ -25.00"
    assert "the reverse of disc tissue: check the columns" in res.output


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"adc_range_um2_per_ms": "12"}, "the ADC range must be a list [low, high]"),
        ({"adc_range_um2_per_ms": [1000, 2000]}, "its ADC range 1000-2000 lies outside 0.05-5"),
        ({"adc_range_um2_per_ms": [-5, 1]}, "its ADC range -5-1 lies outside 0.05-5 µm²/ms"),
        ({"n_pairs": 0}, "n_pairs a count of at least 3"),
        ({"extra": 1}, "unknown key(s) ['extra']"),
        ({"label": None}, "label must be text"),
    ],
)
def test_a_calibration_file_is_held_to_what_calibrate_writes(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    """A range in 10⁻⁶ mm²/s ([1000, 2000]) was used: every disc's water % withheld and
    no study flag; the text "12" was read as the range [1, 2]; n_pairs 0 passed; an
    unknown key gave Python's "__init__() got an unexpected keyword argument" (an audit)."""
    import json

    from discquant.errors import InvalidInputError

    body = {"intercept_percent": 40.0, "slope_percent_per_um2_per_ms": 20.0,
            "adc_range_um2_per_ms": [1.0, 2.0], "label": "t", "n_pairs": 3, "r2": 0.9}  # fmt: skip
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({**body, **change}))
    with pytest.raises(InvalidInputError) as err:
        WaterCalibration.load(cal)
    assert problem in str(err.value) and str(cal) in str(err.value)
    cal.write_text(json.dumps(body))
    assert WaterCalibration.load(cal).water_percent(1.5) == pytest.approx(70.0)
    with pytest.raises(InvalidInputError, match="a folder, not a calibration file"):
        WaterCalibration.load(tmp_path)  # it said "calibration file not found"
