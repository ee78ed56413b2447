"""``cohort_report.html``: one self-contained page summarising a cohort run.

ADC by level and by Pfirrmann grade (box plots), the grade distribution by level, the
disc flags, counts, failures with their reasons, run time and throughput. What is shown by
level leaves out the discs whose level names are uncertain (flag ``level_uncertain``: a
field of view without the sacrum, transitional anatomy), and says how many: one such
study's "L5-S1", really L4-L5, had gone into the L5-S1 box without a mark (a user trial).
Both ADC figures leave out the discs whose ADC the pipeline marks as suspect
(:data:`ADC_SUSPECT_FLAGS`, on the disc or its study), and say how many and why: a study
whose b-values were ten times too large (nucleus ADC 0.10-0.18 µm²/ms, flagged
``csf_adc_implausible``) had gone into the boxes as any other (an audit). Figures are
matplotlib PNGs inlined as base64, so the file opens offline and can be mailed as it is.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from discquant import RESEARCH_DISCLAIMER, __version__
from discquant.cohort.tables import CohortTables, FileWrite, replace_together
from discquant.results import LEVELS

log = logging.getLogger(__name__)

ADC_COLUMN = "adc_np_median_um2_per_ms"
"""The ADC shown in the box plots: median nucleus-pulposus ADC (µm²/ms)."""

_GRADE_NAMES = ("I", "II", "III", "IV", "V")


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _found(discs: pd.DataFrame) -> pd.DataFrame:
    if discs.empty or "found" not in discs:
        return discs
    found = discs["found"].astype(str).str.lower().isin(("true", "1"))
    return discs[found]


def _flag_lists(discs: pd.DataFrame, column: str = "flags") -> pd.Series:
    """Each disc's flags (or its study's: ``study_flags``) as a list (the tables join them
    with commas; none in tables without the column)."""
    if column not in discs:
        return pd.Series([[] for _ in range(len(discs))], index=discs.index, dtype=object)
    return discs[column].map(lambda text: str(text).split(",") if pd.notna(text) else [])


def _counts_with_meanings(flags: pd.Series, name: str) -> pd.DataFrame:
    """How many rows carry each flag of the lists ``flags`` (most frequent first): columns
    ``name``, ``discs`` and ``meaning``."""
    from discquant.results import FLAG_MEANINGS

    counts = flags.explode().dropna().value_counts()
    return pd.DataFrame(
        {
            name: counts.index.astype(str),
            "discs": counts.to_numpy(dtype=np.int64),
            "meaning": [FLAG_MEANINGS.get(str(f), "") for f in counts.index],
        }
    )


ADC_SUSPECT_FLAGS: dict[str, str] = {
    "csf_adc_implausible": "csf_adc_implausible",
    "adc_class_withheld_csf_adc_implausible": "csf_adc_implausible",
    "adc_class_withheld_implausible_adc": "adc_class_withheld_implausible_adc",
    "dwi_t2_misaligned": "dwi_t2_misaligned",
    "dwi_overlay_unconfirmed": "dwi_overlay_unconfirmed",
}
"""Flags that make a disc's ADC suspect (on the disc, in ``flags``, or on its study, in
``study_flags``), each to the reason the report gives: the CSF's ADC far below free water
(the b-values or the map's unit off; the discs carry it as their ADC class withheld), an
ADC outside the range of tissue (a unit mistake), T2 and DWI discs that disagree, and an
overlay of the masks on the diffusion images that nothing confirmed. The pipeline keeps
these values and flags them; the cohort's ADC figures leave them out."""


def adc_suspect_reasons(discs: pd.DataFrame) -> pd.Series:
    """Why each disc's ADC is suspect: the reasons of :data:`ADC_SUSPECT_FLAGS` its flags
    and its study's flags hold, sorted (an empty list: not suspect).

    Parameters
    ----------
    discs
        Rows of ``cohort_discs``.

    Returns
    -------
    pandas.Series
        A list of reasons per row, on the rows' index.
    """
    both = _flag_lists(discs) + _flag_lists(discs, "study_flags")
    return both.map(
        lambda flags: sorted({ADC_SUSPECT_FLAGS[f] for f in flags if f in ADC_SUSPECT_FLAGS})
    )


def _adc_trusted(discs: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``discs`` whose ADC is not suspect (:func:`adc_suspect_reasons`)."""
    if discs.empty:
        return discs
    return discs[adc_suspect_reasons(discs).map(len) == 0]


def _measured_suspect(discs: pd.DataFrame) -> pd.Series:
    """:func:`adc_suspect_reasons` of the found discs that have a nucleus ADC."""
    found = _found(discs)
    if found.empty or ADC_COLUMN not in found:
        return pd.Series([], dtype=object)
    measured = found[pd.to_numeric(found[ADC_COLUMN], errors="coerce").notna()]
    return adc_suspect_reasons(measured)


def left_out_of_adc(discs: pd.DataFrame) -> tuple[int, pd.DataFrame]:
    """The found discs with a nucleus ADC that the ADC figures leave out, and why.

    Parameters
    ----------
    discs
        Rows of ``cohort_discs``.

    Returns
    -------
    (int, pandas.DataFrame)
        How many discs are left out, and per reason (a flag of
        :data:`ADC_SUSPECT_FLAGS`) ``reason``, ``discs`` (how many carry it: a disc with
        two reasons counts in both) and ``meaning``, most frequent first.
    """
    reasons = _measured_suspect(discs)
    return int(reasons.map(len).gt(0).sum()), _counts_with_meanings(reasons, "reason")


def _named(discs: pd.DataFrame) -> pd.DataFrame:
    """The found discs whose level names are not flagged ``level_uncertain``."""
    found = _found(discs)
    if found.empty:
        return found
    return found[~_flag_lists(found).map(lambda flags: "level_uncertain" in flags)]


def flag_counts(discs: pd.DataFrame) -> pd.DataFrame:
    """Found discs per flag (most frequent first), with the flag's meaning."""
    return _counts_with_meanings(_flag_lists(_found(discs)), "flag")


def _boxplot(groups: list[tuple[str, np.ndarray]], *, xlabel: str, title: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(name, v[np.isfinite(v)]) for name, v in groups]
    if not any(v.size for _, v in groups):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.boxplot([v if v.size else [np.nan] for _, v in groups], showfliers=True)
    ax.set_xticks(range(1, len(groups) + 1))
    ax.set_xticklabels([f"{name}\n(n={v.size})" for name, v in groups])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("nucleus ADC, median (µm²/ms)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def adc_by_level_figure(discs: pd.DataFrame) -> str | None:
    """Box plots of nucleus ADC per level (base64 PNG) of the discs whose level names are
    certain and whose ADC is not suspect (:func:`adc_suspect_reasons`); None without
    values."""
    found = _adc_trusted(_named(discs))
    if found.empty or ADC_COLUMN not in found:
        return None
    groups = [
        (lv, found.loc[found["level"] == lv, ADC_COLUMN].to_numpy(dtype=float)) for lv in LEVELS
    ]
    return _boxplot(groups, xlabel="disc level", title="Nucleus ADC by level")


def adc_by_grade_figure(discs: pd.DataFrame) -> str | None:
    """Box plots of nucleus ADC per Pfirrmann grade (base64 PNG) of the discs whose ADC is
    not suspect (:func:`adc_suspect_reasons`); None without values."""
    found = _adc_trusted(_found(discs))
    if found.empty or ADC_COLUMN not in found or "pfirrmann_grade" not in found:
        return None
    grades = pd.to_numeric(found["pfirrmann_grade"], errors="coerce")
    groups = [
        (_GRADE_NAMES[g - 1], found.loc[grades == g, ADC_COLUMN].to_numpy(dtype=float))
        for g in range(1, 6)
    ]
    return _boxplot(groups, xlabel="Pfirrmann grade (CNN)", title="Nucleus ADC by grade")


def grade_distribution(discs: pd.DataFrame) -> pd.DataFrame:
    """Counts of discs per level (rows) and Pfirrmann grade (columns I–V), of the discs
    whose level names are certain.

    A value that is not one of the grades 1–5 (missing, 2.7, 6) is left out, as it is
    from the box plots by grade.
    """
    found = _named(discs)
    counts = pd.DataFrame(0, index=list(LEVELS), columns=list(_GRADE_NAMES))
    if found.empty or "pfirrmann_grade" not in found:
        return counts
    grades = pd.to_numeric(found["pfirrmann_grade"], errors="coerce")
    ok = grades.isin(range(1, 6)) & found["level"].isin(LEVELS)
    names = grades[ok].map(dict(enumerate(_GRADE_NAMES, start=1)))
    table = pd.crosstab(found.loc[ok, "level"], names)
    return (
        table.reindex(index=counts.index, columns=counts.columns, fill_value=0)
        .rename_axis(index=None, columns=None)
        .astype(np.int64)
    )


def grade_distribution_figure(discs: pd.DataFrame) -> str | None:
    """Stacked bars of the grade counts per level (base64 PNG); None without grades."""
    counts = grade_distribution(discs)
    if counts.to_numpy().sum() == 0:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bottom = np.zeros(len(counts))
    colours = plt.get_cmap("viridis_r")(np.linspace(0.1, 0.9, 5))
    for grade, colour in zip(counts.columns, colours, strict=True):
        values = counts[grade].to_numpy(dtype=float)
        ax.bar(counts.index, values, bottom=bottom, label=f"grade {grade}", color=colour)
        bottom += values
    ax.set_ylabel("discs")
    ax.set_title("Pfirrmann grade distribution by level")
    ax.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    return _png(fig)


def _table(frame: pd.DataFrame, *, index: bool = False) -> str:
    """An HTML table: a missing number reads ``n/a``, a missing text (a study without a
    session) an empty cell, as in the CSV tables (it read ``None``)."""
    if frame.empty:
        return "<p>None.</p>"
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    frame = frame.assign(
        **{str(c): frame[c].astype(object).where(frame[c].notna(), "") for c in text}
    )
    return frame.to_html(index=index, border=0, classes="t", na_rep="n/a", escape=True)


def _figure(b64: str | None, alt: str) -> str:
    if b64 is None:
        return f"<p class='muted'>{html.escape(alt)}: no data.</p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"


def _file_and_sha(name: Any, sha: Any, default: str) -> str:
    """``name (SHA-256 sha)``, or ``default`` without a file."""
    if not name:
        return default
    return f"{name} (SHA-256 {sha})" if sha else str(name)


def configuration_rows(run: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows of the report's Run table with the run's options and models.

    Parameters
    ----------
    run
        ``cohort_run.json``'s document: its ``configuration``
        (:func:`~discquant.cohort.run.run_configuration`) and ``models``.

    Returns
    -------
    list of (str, str)
        ADC method, device, water calibration, ADC class thresholds, ``--dicom`` (with
        the finished studies that have no SEG/SR, ``dicom_not_written``), ``--keep-phi``,
        each model with its weights' SHA-256, the other analysis settings and the
        configuration's SHA-256 (as ``cohort_discs``' ``config_sha256``); none
        without a configuration (tables rebuilt by hand). The Run table named the version
        only (an audit).
    """
    config = run.get("configuration") or {}
    if not config:
        return []
    analysis = dict(config.get("analysis") or {})
    models = run.get("models") or {}
    shown = {"adc_method", "device", "calibration", "calibration_sha256",
             "adc_class_thresholds", "adc_class_thresholds_sha256"}  # fmt: skip
    others = {k: v for k, v in analysis.items() if k not in shown}

    def model(option: str, key: str) -> str:
        sha = models.get(f"{key}_weights_sha256")
        name = str(config.get(option, "shipped"))
        if isinstance(sha, list):  # studies of this cohort differ
            return f"{name} (weights SHA-256: {', '.join(sha)})"
        return f"{name} (weights SHA-256 {sha})" if sha else name

    def yes(value: Any) -> str:
        return "yes" if value else "no"

    missing = run.get("dicom_not_written")
    dicom = yes(config.get("dicom"))
    if config.get("dicom") and isinstance(missing, dict) and missing:
        why = "; ".join(f"{n}: {reason}" for reason, n in missing.items())
        dicom += f", but {sum(missing.values())} finished studies have none ({why})"
    return [
        ("ADC method", str(analysis.get("adc_method", ""))),
        ("device", str(analysis.get("device", ""))),
        ("water calibration (--calibration)", _file_and_sha(
            analysis.get("calibration"), analysis.get("calibration_sha256"),
            "packaged default (the phantom's forward model)")),
        ("ADC class thresholds (--adc-thresholds)", _file_and_sha(
            analysis.get("adc_class_thresholds"), analysis.get("adc_class_thresholds_sha256"),
            "packaged (config/adc_class.yaml)")),
        ("DICOM SEG and SR (--dicom)", dicom),
        ("identifiers kept (--keep-phi)", yes(config.get("keep_phi"))),
        ("segmentation model", model("segmentation_model", "segmentation")),
        ("grading model", model("grading_model", "pfirrmann")),
        ("other analysis settings", json.dumps(others, sort_keys=True)),
        ("configuration SHA-256 (config_sha256)", str(config.get("config_sha256", ""))),
    ]  # fmt: skip


def render_cohort_report(tables: CohortTables, run: dict[str, Any]) -> str:
    """The report's HTML text."""
    studies = tables.studies
    status_counts = (
        studies["status"].value_counts().rename_axis("status").reset_index(name="studies")
        if not studies.empty
        else pd.DataFrame(columns=["status", "studies"])
    )
    found = _found(tables.discs)
    seconds = pd.to_numeric(studies.get("seconds", pd.Series(dtype=float)), errors="coerce")
    run_rows = [
        ("studies in the cohort", str(run.get("total", len(studies)))),
        ("analysed this run", str(run.get("done", ""))),
        ("skipped (already done)", str(run.get("skipped", ""))),
        ("failed", str(len(tables.failures))),
        ("discs found", str(len(found))),
        ("wall time this run", f"{float(run.get('wall_s', 0.0)):.1f} s"),
        ("throughput this run (studies analysed)",
         f"{float(run.get('studies_per_min', 0.0)):.2f} studies/min"),
        ("workers", str(run.get("workers", ""))),
        ("median time per study (in worker)", f"{seconds.median():.1f} s"
         if seconds.notna().any() else "n/a"),
        ("discquant version", __version__),
        *configuration_rows(run),
    ]  # fmt: skip
    run_table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in run_rows
    )
    partial = studies[studies["status"] == "partial"] if not studies.empty else studies
    uncertain = len(found) - len(_named(tables.discs))
    by_level_note = (
        f"<p class='muted'>By level: {len(found) - uncertain} discs; {uncertain} disc"
        f"{'' if uncertain == 1 else 's'} whose level names are uncertain "
        "(<code>level_uncertain</code>) left out here and counted by grade only.</p>"
    )
    n_suspect, suspect = left_out_of_adc(tables.discs)
    adc_note = (
        f"<p class='muted'>Nucleus ADC: {n_suspect} disc{'' if n_suspect == 1 else 's'} "
        "whose ADC the pipeline marks as suspect left out of both ADC figures (kept in "
        "<code>cohort_discs</code> with their flags), by reason:</p>" + _table(suspect)
        if n_suspect
        else "<p class='muted'>Nucleus ADC: no disc's ADC is marked as suspect.</p>"
    )
    figures = "\n".join(
        [
            _figure(adc_by_level_figure(tables.discs), "nucleus ADC by level"),
            _figure(adc_by_grade_figure(tables.discs), "nucleus ADC by grade"),
            _figure(grade_distribution_figure(tables.discs), "grade distribution by level"),
        ]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>discquant cohort report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
table.t, table.run {{ border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1.5em; }}
.t th, .t td, .run th, .run td {{ border-bottom: 1px solid #ddd; padding: 0.25em 0.6em;
  text-align: left; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0 1.5em; }}
.muted {{ color: #777; }} .disclaimer {{ font-size: 0.85em; color: #555; }}
</style></head><body>
<h1>discquant cohort report</h1>
<h2>Run</h2><table class="run">{run_table}</table>
<h2>Studies by status</h2>{_table(status_counts)}
<h2>Nucleus ADC and grades</h2>{by_level_note}{adc_note}{figures}
<h3>Grade distribution by level (discs)</h3>{_table(grade_distribution(tables.discs), index=True)}
<h2>Disc flags</h2>
<p class="muted">Found discs carrying each flag; a withheld value's reason is among them
(each study's report and tables say which disc).</p>{_table(flag_counts(tables.discs))}
<h2>Failures ({len(tables.failures)})</h2>{_table(tables.failures)}
<h2>Partial studies ({len(partial)})</h2>
<p class="muted">Some stages failed; the outputs hold what succeeded
(see each study's report).</p>{_table(partial)}
<p class="disclaimer">{html.escape(RESEARCH_DISCLAIMER)}</p>
</body></html>
"""


REPORT_FILE = "cohort_report.html"
"""The report's name in the cohort folder."""


def report_write(out_dir: Path, tables: CohortTables, run: dict[str, Any]) -> FileWrite:
    """The write of ``out_dir/cohort_report.html``, for
    :func:`~discquant.cohort.tables.replace_together` (the report is rendered here)."""
    text = render_cohort_report(tables, run)
    return Path(out_dir) / REPORT_FILE, lambda path: path.write_text(text, encoding="utf-8")


def write_cohort_report(out_dir: Path, tables: CohortTables, run: dict[str, Any]) -> Path:
    """Write ``out_dir/cohort_report.html`` through a temporary file and ``os.replace``.

    A failed write leaves no temporary file and raises an :class:`OSError` naming the
    report (:func:`~discquant.cohort.tables.replace_together`); ``.cohort_report.html.tmp``
    was left behind (an audit).
    """
    path, write = report_write(out_dir, tables, run)
    replace_together([(path, write)])
    log.info("wrote %s", path)
    return path
