"""Water index, calibration and the withholding rule."""

from __future__ import annotations

import numpy as np
import pytest

from discquant.errors import InvalidInputError
from discquant.measure.stats import region_stats
from discquant.measure.water import WaterCalibration, fit_calibration, water_index


def test_water_index_is_relative_to_reference() -> None:
    assert water_index(1.5, reference_um2_per_ms=2.0) == pytest.approx(0.75)


def test_calibration_recovers_a_known_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    adc = rng.uniform(0.8, 2.2, 200)
    water = 40.0 + 20.0 * adc + rng.normal(0, 0.5, 200)
    cal = fit_calibration(adc, water, label="test pairs")
    assert cal.slope_percent_per_um2_per_ms == pytest.approx(20.0, abs=0.3)
    assert cal.intercept_percent == pytest.approx(40.0, abs=0.5)
    assert cal.r2 > 0.99
    path = tmp_path / "cal.json"
    cal.save(path)
    again = WaterCalibration.load(path)
    assert again.water_percent(1.5) == pytest.approx(cal.water_percent(1.5))
    assert again.water_percent(3.0) is None  # outside the calibrated range: withheld


def test_a_calibration_applies_a_little_beyond_its_pairs() -> None:
    """Pairs over 1.0–2.0 µm²/ms: a nucleus at 2.005 (a grade I disc measured 0.3 % above
    the default's range end, a user trial) gets the line's value, within 5 % of either end;
    further out the line would be extrapolated and the value is withheld."""
    cal = fit_calibration([1.0, 1.5, 2.0], [60.0, 70.0, 80.0], label="three pairs")
    assert cal.adc_range_um2_per_ms == (1.0, 2.0)
    assert cal.water_percent(2.005) == pytest.approx(80.1)
    assert cal.water_percent(2.09) == pytest.approx(81.8)
    assert cal.water_percent(0.96) == pytest.approx(59.2)
    assert cal.water_percent(2.11) is None
    assert cal.water_percent(0.94) is None
    assert cal.provenance()["adc_range_margin"] == 0.05


def test_calibration_needs_spread() -> None:
    with pytest.raises(InvalidInputError):
        fit_calibration([1.0, 1.0, 1.0], [50, 60, 70], label="x")


def test_stats_withheld_below_min_voxels() -> None:
    values = np.array([1.0, 2.0, np.nan, 3.0])
    mask = np.ones(4, bool)
    assert region_stats(values, mask, min_voxels=4) is None
    stats = region_stats(values, mask, min_voxels=3)
    assert stats is not None
    assert stats.n_voxels == 3
    assert stats.mean == pytest.approx(2.0)
    assert stats.median == pytest.approx(2.0)
    assert stats.sd == pytest.approx(1.0)


def test_calibrate_command_writes_a_usable_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from discquant.cli import app

    pairs = tmp_path / "pairs.csv"
    pairs.write_text("adc,water\n1.0,60\n1.5,70\n2.0,80\n2.5,90\n")
    out = tmp_path / "cal.json"
    res = CliRunner().invoke(app, ["calibrate", str(pairs), "-o", str(out)])
    assert res.exit_code == 0, res.output
    cal = WaterCalibration.load(out)
    assert cal.water_percent(1.75) == pytest.approx(75.0)
    assert cal.label == "fitted from pairs.csv"
    nested = tmp_path / "new" / "folder" / "cal.json"  # missing folders are created
    res = CliRunner().invoke(app, ["calibrate", str(pairs), "-o", str(nested)])
    assert res.exit_code == 0, res.output
    assert WaterCalibration.load(nested).water_percent(1.75) == pytest.approx(75.0)
    tsv = tmp_path / "pairs.tsv"  # tab-separated, an empty value and an NA: fitted on 4
    tsv.write_text("adc\twater\n1.0\t60\n1.5\t70\n1.7\t\n2.0\t80\nNA\t85\n2.5\t90\n")
    res = CliRunner().invoke(app, ["calibrate", str(tsv), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "(n = 4," in res.output and "2 row(s) with an empty or NA value left out" in res.output
    assert WaterCalibration.load(out).water_percent(1.75) == pytest.approx(75.0)
    bad = CliRunner().invoke(app, ["calibrate", str(pairs), "-o", str(out), "--adc-column", "x"])
    assert bad.exit_code == 2
    assert "missing column" in bad.output


def test_median_standard_error_matches_monte_carlo() -> None:
    from discquant.measure.discs import median_rel_se
    from discquant.results import AdcStats

    rng = np.random.default_rng(3)
    n, sd, centre = 25, 0.3, 1.5
    medians = np.median(rng.normal(centre, sd, size=(20000, n)), axis=1)
    stats = AdcStats(mean=centre, median=centre, sd=sd, p10=0.0, p90=0.0, n_voxels=n)
    # The asymptotic formula is within a few % of the spread of real medians at n = 25.
    assert median_rel_se(stats) == pytest.approx(medians.std() / centre, rel=0.06)
    # √(π/2) · 0.2 / √4 = 0.125331...
    assert median_rel_se(AdcStats(1.0, 1.0, 0.2, 0.0, 0.0, 4)) == pytest.approx(0.1253314)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("adc,water\n1.0,sixty\n1.5,70\n2.0,80\n", "non-numeric"),
        ("", "not a CSV"),
        ("adc,water\n1.0,60\n1.0,70\n", "at least 3 pairs"),
        # 10⁻⁶ mm²/s: fitted, then never applied by analyze (outside its range), silently
        ("adc,water\n1000,80\n1500,75\n2000,70\n", "another unit? (10⁻⁶ mm²/s: divide by 1000)"),
        # mm²/s: the hint had been "divide by 1000" too (an audit)
        ("adc,water\n0.001,70\n0.0015,78\n0.002,80\n", "another unit? (mm²/s: multiply by 1000)"),
        ("adc,water\n1.0,800\n1.5,75\n2.0,-70\n", "outside 0-100 %"),
        # water as a fraction: "water % = 0.57 + 0.13 × ADC" was fitted and applied
        ("adc,water\n1.0,0.70\n1.4,0.75\n1.8,0.80\n", "a fraction? (give percent"),
        # a short row was read as an empty water value and left out without a word
        ("adc,water\n1.0,60\n\n1.5\n2.0,80\n2.5,90\n", "line 4 has 1 field(s), the header has 2"),
        ("adc\twater\n1.0\t60\n1.5\t70\t\n2.0\t80\n2.5\t90\n", "line 3 has 3 field(s)"),
        # a line of only "" is a short row to pandas, not a blank line to skip
        ('adc,water\n1.0,60\n""\n2.0,80\n2.5,90\n', "line 3 has 1 field(s), the header has 2"),
        # "inf" parses as a number: it was counted as "an empty value left out"
        ("adc,water\n1.0,60\n1.5,inf\n2.0,80\n\n-inf,90\n", "infinite value on line(s) 3, 6"),
        # spaces are no separator: the message had been "missing column(s)"
        ("adc water\n1.0 60\n1.5 70\n2.0 80\n", "separate the columns with a comma"),
    ],
)
def test_calibrate_command_bad_tables_are_one_line_errors(
    tmp_path, content: str, problem: str
) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from discquant.cli import app

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(content)
    out = tmp_path / "cal.json"
    res = CliRunner().invoke(app, ["calibrate", str(pairs), "-o", str(out)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(pairs) in lines[0] and problem in lines[0], res.output
    assert not out.exists()


def test_a_calibration_of_constant_water_is_refused() -> None:
    """Water all alike was fitted by a flat line and written with R² 1.000, a perfect
    fit (an audit): R² is 0/0 there, and the ADC predicts nothing. One value off the
    flat line is a fit again, with an R² that says how little it explains."""
    adc = np.array([1.0, 1.5, 2.0])
    with pytest.raises(InvalidInputError, match=r"the water values are all 80 %: nothing to fit"):
        fit_calibration(adc, [80.0, 80.0, 80.0], label="flat")
    cal = fit_calibration(adc, [80.0, 80.0, 81.0], label="almost flat")
    assert cal.r2 == pytest.approx(0.75)  # 1 - (1/6) / (2/3)
    assert cal.slope_percent_per_um2_per_ms == pytest.approx(1.0)


def test_a_calibration_counts_the_rows_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    """ "needs at least 3 pairs" for a table of three rows, one of them empty (an audit);
    and a line on which water falls with the ADC is fitted with a warning."""
    with pytest.raises(InvalidInputError, match=r"\(got 2; 1 row\(s\) with an empty or NA"):
        fit_calibration([1.0, 1.5, 2.0], [60.0, np.nan, 85.0], label="t")
    with caplog.at_level("WARNING"):
        cal = fit_calibration([1.0, 1.5, 2.0], [85.0, 72.5, 60.0], label="reversed")
    assert cal.slope_percent_per_um2_per_ms == pytest.approx(-25.0)
    assert "water falls as the ADC rises in these pairs (slope -25.00 % per" in caplog.text
