"""The cohort report's tables (cohort/report.py)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from discquant.cohort.report import grade_distribution
from discquant.results import LEVELS


def test_grade_distribution_counts_only_whole_grades_one_to_five() -> None:
    """A value that is no Pfirrmann grade (2.7, 5.5, 0.5, 6, missing) is left out, as a
    missing grade is: 2.7 was counted as grade II, 5.5 as V."""
    discs = pd.DataFrame(
        {
            "subject": list("abcdefghi"),
            "level": ["L4-L5"] * 7 + ["L5-S1", "T12-L1"],
            "pfirrmann_grade": [2.7, 5.5, 0.5, 6, np.nan, 3, "4", 2.0, 3],
            "found": [True] * 8 + ["True"],
        }
    )
    counts = grade_distribution(discs)
    assert list(counts.index) == list(LEVELS)
    assert list(counts.columns) == ["I", "II", "III", "IV", "V"]
    assert counts.loc["L4-L5"].to_dict() == {"I": 0, "II": 0, "III": 1, "IV": 1, "V": 0}
    assert counts.loc["L5-S1"].to_dict() == {"I": 0, "II": 1, "III": 0, "IV": 0, "V": 0}
    assert int(counts.to_numpy().sum()) == 3  # T12-L1 is no lumbar level of the table
    assert (counts.dtypes == np.int64).all()


def test_a_missing_text_is_an_empty_cell_and_a_missing_number_n_a() -> None:
    """The failures table read `None` for a study without a session (trial D)."""
    from discquant.cohort.report import _table

    frame = pd.DataFrame(
        {"subject": ["01", "02"], "session": ["2", None], "seconds": [1.5, float("nan")]}
    )
    cells = re.findall(r"<td>(.*?)</td>", _table(frame))
    assert cells == ["01", "2", "1.5", "02", "", "n/a"]


def test_discs_with_uncertain_level_names_are_left_out_by_level_and_flags_counted() -> None:
    """A study cut above the sacrum (every disc ``level_uncertain``, named one level off)
    had its "L5-S1" counted in the L5-S1 grades and ADC box without a mark, and the
    report showed no flags at all (a user trial)."""
    from discquant.cohort.report import CohortTables, flag_counts, render_cohort_report

    discs = pd.DataFrame(
        {
            "subject": ["a", "a", "b", "b"],
            "level": ["L4-L5", "L5-S1", "L4-L5", "L5-S1"],
            "found": [True, True, True, True],
            "pfirrmann_grade": [3, 4, 2, 4],
            "adc_np_median_um2_per_ms": [1.5, 1.3, 1.9, 1.4],
            "flags": [np.nan, "poor_fit", "level_uncertain", "level_uncertain,poor_fit"],
        }
    )
    counts = grade_distribution(discs)
    assert counts.loc["L4-L5"].to_dict() == {"I": 0, "II": 0, "III": 1, "IV": 0, "V": 0}
    assert counts.loc["L5-S1"].to_dict() == {"I": 0, "II": 0, "III": 0, "IV": 1, "V": 0}
    flags = flag_counts(discs)
    assert flags[["flag", "discs"]].to_dict("list") == {
        "flag": ["poor_fit", "level_uncertain"],
        "discs": [2, 2],
    }
    assert flags["meaning"].str.len().gt(0).all()  # every flag explained
    studies = pd.DataFrame({"subject": ["a", "b"], "status": ["done", "done"]})
    page = render_cohort_report(CohortTables(discs, pd.DataFrame(), studies), {"total": 2})
    assert "By level: 2 discs; 2 discs whose level names are uncertain" in page
    assert re.search(r"<td>level_uncertain</td>\s*<td>2</td>", page)
