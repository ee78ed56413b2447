"""The cohort report's tables (cohort/report.py)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

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


def test_discs_whose_adc_is_suspect_are_left_out_of_the_adc_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ADC box plots took every measured disc: a study whose b-values were ten times
    too large (nucleus ADC 0.10-0.18 µm²/ms, its study flagged csf_adc_implausible) went
    into the boxes as any other, and so did discs flagged dwi_t2_misaligned or
    dwi_overlay_unconfirmed (an audit). They are left out, counted by reason."""
    from discquant.cohort import report
    from discquant.cohort.report import CohortTables, render_cohort_report
    from discquant.results import FLAG_MEANINGS

    discs = pd.DataFrame(
        {
            "subject": list("aabbcdefgh"),
            "level": ["L4-L5", "L5-S1", "L4-L5", "L5-S1", "L4-L5", "L4-L5", "L4-L5",
                      "L4-L5", "L3-L4", "L4-L5"],
            "found": [True] * 10,
            "pfirrmann_grade": [3, 4, 2, 2, 3, 3, 3, 3, 2, 4],
            "adc_np_median_um2_per_ms": [1.5, 1.3, 0.12, 0.15, 1.7, 1.6, 0.01, 0.11, 1.8, 1.4],
            "flags": [np.nan, np.nan, "adc_class_withheld_csf_adc_implausible",
                      "adc_class_withheld_csf_adc_implausible,poor_fit", "dwi_t2_misaligned",
                      "dwi_overlay_unconfirmed", "adc_class_withheld_implausible_adc",
                      np.nan, "partial_fov_dwi", "level_uncertain"],
            # f: its discs lack the class flag (no class computed): the study's flag tells
            "study_flags": [np.nan, np.nan, "csf_adc_implausible", "csf_adc_implausible",
                            "dwi_t2_misaligned", "dwi_overlay_unconfirmed", np.nan,
                            "sacrum_not_in_fov,csf_adc_implausible", np.nan, np.nan],
        }
    )  # fmt: skip
    plotted: dict[str, dict[str, list[float]]] = {}

    def boxplot(groups: list[tuple[str, np.ndarray]], *, xlabel: str, title: str) -> str:
        plotted[title] = {name: [float(v) for v in values] for name, values in groups}
        return "png"

    monkeypatch.setattr(report, "_boxplot", boxplot)
    studies = pd.DataFrame({"subject": list("abcdefgh"), "status": ["complete"] * 8})
    page = render_cohort_report(CohortTables(discs, pd.DataFrame(), studies), {"total": 8})
    by_level = plotted["Nucleus ADC by level"]
    assert by_level == {"L1-L2": [], "L2-L3": [], "L3-L4": [1.8], "L4-L5": [1.5], "L5-S1": [1.3]}
    by_grade = plotted["Nucleus ADC by grade"]  # h's uncertain level name counts by grade
    assert by_grade == {"I": [], "II": [1.8], "III": [1.5], "IV": [1.3, 1.4], "V": []}
    assert "Nucleus ADC: 6 discs whose ADC the pipeline marks as suspect left out" in page
    note = page.split("Nucleus ADC: 6 discs", 1)[1].split("</table>", 1)[0]
    assert dict(re.findall(r"<td>(\w+)</td>\s*<td>(\d+)</td>", note)) == {
        "csf_adc_implausible": "3",  # b's two discs and f's, by their study's flag
        "adc_class_withheld_implausible_adc": "1",
        "dwi_t2_misaligned": "1",
        "dwi_overlay_unconfirmed": "1",
    }
    assert "CSF's ADC far from free water or below a nucleus" in note  # each reason explained
    assert set(report.ADC_SUSPECT_FLAGS) <= set(FLAG_MEANINGS)  # the pipeline's own flags


def test_a_report_without_suspect_adcs_says_so() -> None:
    from discquant.cohort.report import CohortTables, render_cohort_report

    discs = pd.DataFrame(
        {"subject": ["a"], "level": ["L4-L5"], "found": [True], "pfirrmann_grade": [3],
         "adc_np_median_um2_per_ms": [1.5], "flags": ["dwi_offset_corrected"]}
    )  # fmt: skip
    studies = pd.DataFrame({"subject": ["a"], "status": ["complete"]})
    page = render_cohort_report(CohortTables(discs, pd.DataFrame(), studies), {"total": 1})
    assert "Nucleus ADC: no disc's ADC is marked as suspect." in page
