"""The per-disc table (``sub-<id>_discs.tsv``) and its BIDS data dictionary (``discs.json``).

One row per lumbar level, L1-L2 to L5-S1, always five rows: a level that was not found has
``found = false`` and ``n/a`` in every value column (the BIDS spelling of a missing value).
Every column is described, with its unit, in :data:`COLUMNS`; ``discs.json`` is written from
the same table so the two never disagree.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from discquant.results import LEVELS, AdcStats, DiscResult

N_GRADES = 5
"""Pfirrmann grades I to V."""

MISSING = "n/a"


@dataclass(frozen=True)
class Column:
    """One column of the disc table: its name, description and unit (``None``: unitless)."""

    name: str
    description: str
    units: str | None = None
    levels: dict[str, str] | None = None
    integer: bool = False
    """Whole numbers (a count, a grade): kept integers in tables where some are missing."""


def _adc_class_levels(
    classes: list[tuple[str, float | None]] | None = None,
) -> dict[str, str]:
    """Each ADC class's range and, for the packaged thresholds (``classes`` None), the
    grade it stands for (the mapping of ``config/adc_class.yaml``): the dictionary said
    "reference bands by grade", and a reader took "moderate" beside grade III for a
    contradiction. A site's own ``classes`` (name, upper bound) get their ranges only."""
    from discquant.grade.adc_class import load_adc_thresholds

    typical = {"normal": "grades I-II", "mild": "grade III", "moderate": "grade IV"}
    typical["severe"] = "grade V"
    if classes is not None:
        typical = {}
    levels: dict[str, str] = {}
    lower: float | None = None
    for name, upper in classes or load_adc_thresholds().classes:  # most degenerated first
        if lower is None:
            span = f"< {upper:.2f}"
        elif upper is None:
            span = f">= {lower:.2f}"
        else:
            span = f"{lower:.2f} to < {upper:.2f}"
        grade = f", typical of {typical[name]}" if name in typical else ""
        levels[name] = f"nucleus median ADC {span} um2/ms{grade}"
        lower = upper
    return levels


ADC_UNIT_SUFFIX = "_um2_per_ms"
"""Unit suffix of the ADC statistic columns (``adc_np_median_um2_per_ms``)."""

_ADC_STATS = ("mean", "median", "sd", "p10", "p90")
"""ADC statistics with a unit; ``n_voxels`` (a count) is spelled without one."""

RENAMED_COLUMNS: dict[str, str] = {
    f"{prefix}_{stat}": f"{prefix}_{stat}{ADC_UNIT_SUFFIX}"
    for prefix in ("adc_disc", "adc_np")
    for stat in _ADC_STATS
}
"""Old column name → current one, for tables written before 2026-12-05 (same values, same
unit: only the unit was added to the name). The cohort tables read old files through it."""


def _stats_columns(prefix: str, region: str) -> list[Column]:
    u = "um^2/ms"
    s = ADC_UNIT_SUFFIX
    return [
        Column(f"{prefix}_mean{s}", f"Mean ADC in the {region} (10^-3 mm^2/s).", u),
        Column(f"{prefix}_median{s}", f"Median ADC in the {region}.", u),
        Column(
            f"{prefix}_sd{s}",
            f"Standard deviation of ADC in the {region} (sample SD, n - 1).",
            u,
        ),
        Column(f"{prefix}_p10{s}", f"10th percentile of ADC in the {region}.", u),
        Column(f"{prefix}_p90{s}", f"90th percentile of ADC in the {region}.", u),
        Column(
            f"{prefix}_n_voxels", f"Number of DWI voxels in the {region}.", "voxels", integer=True
        ),
    ]


COLUMNS: tuple[Column, ...] = (
    Column("level", "Disc level, cranial to caudal.", levels={lv: f"{lv} disc" for lv in LEVELS}),
    Column(
        "found",
        "Whether the disc was segmented; when false every value column is n/a.",
        levels={"true": "disc found", "false": "disc not found in the image"},
    ),
    *_stats_columns(
        "adc_disc",
        "disc core on the DWI grid (the disc's voxels whose 3x3x3 neighbourhood is all disc: "
        "at least one DWI voxel from its border and endplates)",
    ),
    *_stats_columns(
        "adc_np",
        "nucleus core on the DWI grid (the network's nucleus inside the disc core, else the "
        "disc core's central half; written as space-dwi_desc-nucleuscore_dseg.nii.gz)",
    ),
    Column(
        "snr_np_b0",
        "Signal-to-noise of the nucleus: its median b~0 signal over the noise SD of one DWI "
        "volume, estimated from the image background (reads low on phantoms, where tissue "
        "of little signal mixes into the background; docs/measurement.md). "
        "Empty for a scanner's ADC map.",
    ),
    Column(
        "adc_np_noise_bias_percent",
        "Expected error of the nucleus median ADC from magnitude noise, in percent of the "
        "value, simulated at the nucleus's b~0 signal and ADC with the study's noise and "
        "b-values: negative where the noise floor at high b makes it read low, positive "
        "where the voxels the fit drops make it read high; beyond +-5 % the disc is flagged "
        "adc_noise_floor_bias. It errs large (the noise SD from the background reads high: "
        "-18 % to -27 % predicted where phantom nuclei read 12 % to 18 % low), so it is a "
        "warning and a direction, not a correction. Empty for a scanner's ADC map, where "
        "the noise was not estimated, or where every simulated voxel was dropped (then "
        "flagged adc_noise_floor_bias: no ADC can be trusted).",
        "%",
    ),
    Column(
        "water_index",
        "Relative water index: nucleus median ADC over the reference nucleus ADC of healthy "
        "young adults (2.0 um^2/ms by default; 1.0 = like a grade I disc). Not a water "
        "fraction.",
    ),
    Column(
        "water_index_csf",
        "Nucleus median ADC over the subject's own CSF median ADC (free water), when CSF is "
        "in the field (flag water_index_csf_withheld_no_csf otherwise).",
    ),
    Column(
        "water_percent",
        "Water content from the water calibration named in results.json "
        "(provenance.water_calibration): by default the phantom's forward model, a synthetic "
        "calibration, not one measured on real discs; n/a more than 5 % beyond the calibrated "
        "ADC range or outside 0-100 % (flag water_withheld_outside_calibration).",
        "%",
    ),
    Column(
        "t2_np_csf_ratio",
        "Mean T2 signal of the nucleus over the median T2 signal of CSF (flag "
        "t2_csf_ratio_withheld_no_csf when the canal holds too little).",
    ),
    Column(
        "t2_np_reference_ratio",
        "Mean T2 signal of the nucleus over the median signal of the vertebral marrow (the "
        "cores of the study's lumbar vertebral bodies, one value per study), for fields of "
        "view without CSF (flag t2_reference_ratio_withheld_no_marrow when none is found).",
    ),
    Column(
        "t2_np_heterogeneity",
        "Coefficient of variation of the T2 signal in the nucleus (SD / mean).",
    ),
    Column(
        "height_anterior_mm", "Disc height at 10 % of the AP depth from the anterior edge.", "mm"
    ),
    Column("height_middle_mm", "Disc height at 50 % of the AP depth.", "mm"),
    Column(
        "height_posterior_mm", "Disc height at 90 % of the AP depth from the anterior edge.", "mm"
    ),
    Column(
        "disc_height_index",
        "Middle disc height over the mean middle height of the adjacent vertebral bodies "
        "(for L5-S1 the L5 body only).",
    ),
    Column(
        "ap_depth_mm", "Anteroposterior depth of the disc on its largest sagittal section.", "mm"
    ),
    Column(
        "volume_mm3",
        "Disc volume on the grid that was segmented (the T2; the DWI b≈0 in a DWI-only study).",
        "mm^3",
    ),
    Column("centroid_r_mm", "Disc centroid, right coordinate (RAS+, scanner space).", "mm"),
    Column("centroid_a_mm", "Disc centroid, anterior coordinate (RAS+).", "mm"),
    Column("centroid_s_mm", "Disc centroid, superior coordinate (RAS+).", "mm"),
    Column(
        "pfirrmann_grade",
        "Pfirrmann grade from the CNN (Pfirrmann 2001, Spine 26:1873): the most probable grade.",
        levels={str(g): f"grade {r}" for g, r in enumerate(("I", "II", "III", "IV", "V"), 1)},
        integer=True,
    ),
    Column("pfirrmann_probability", "CNN probability of the reported grade.", "probability"),
    *(
        Column(f"pfirrmann_p{g}", f"CNN probability of Pfirrmann grade {g}.", "probability")
        for g in range(1, N_GRADES + 1)
    ),
    Column("pfirrmann_expected", "Probability-weighted mean grade (1 to 5)."),
    Column(
        "adc_class",
        "ADC class of the nucleus median ADC, between midpoints of the typical nucleus ADC of "
        "adjacent Pfirrmann grades (discquant's derivation, not published or validated "
        "cut-offs; within a grade the ADC spreads as much as between grades).",
        levels=_adc_class_levels(),
    ),
    Column(
        "flags",
        "Comma-separated notes for the reader (partial_fov, poor_fit, low_snr, "
        "level_uncertain, adc_withheld_too_few_voxels, adc_np_imprecise, ...); "
        "n/a when none.",
    ),
)
"""Every column of ``sub-<id>_discs.tsv``, in order."""

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
INTEGER_COLUMNS: frozenset[str] = frozenset(c.name for c in COLUMNS if c.integer)


def _stats_values(prefix: str, stats: AdcStats | None) -> dict[str, Any]:
    out = {
        f"{prefix}_{n}{ADC_UNIT_SUFFIX}": (None if stats is None else getattr(stats, n))
        for n in _ADC_STATS
    }
    out[f"{prefix}_n_voxels"] = None if stats is None else stats.n_voxels
    return out


def disc_row(disc: DiscResult) -> dict[str, Any]:
    """Flatten one :class:`DiscResult` into the table's columns (None where missing)."""
    probs = disc.pfirrmann_probabilities
    grade_prob: float | None = None
    if probs is not None and disc.pfirrmann_grade is not None:
        if 1 <= disc.pfirrmann_grade <= len(probs):
            grade_prob = probs[disc.pfirrmann_grade - 1]
    centroid = disc.centroid_ras_mm
    row: dict[str, Any] = {
        "level": disc.level,
        "found": disc.found,
        **_stats_values("adc_disc", disc.adc_disc),
        **_stats_values("adc_np", disc.adc_np),
        "snr_np_b0": disc.snr_np_b0,
        "adc_np_noise_bias_percent": disc.adc_np_noise_bias_percent,
        "water_index": disc.water_index,
        "water_index_csf": disc.water_index_csf,
        "water_percent": disc.water_percent,
        "t2_np_csf_ratio": disc.t2_np_csf_ratio,
        "t2_np_reference_ratio": disc.t2_np_reference_ratio,
        "t2_np_heterogeneity": disc.t2_np_heterogeneity,
        "height_anterior_mm": disc.height_anterior_mm,
        "height_middle_mm": disc.height_middle_mm,
        "height_posterior_mm": disc.height_posterior_mm,
        "disc_height_index": disc.disc_height_index,
        "ap_depth_mm": disc.ap_depth_mm,
        "volume_mm3": disc.volume_mm3,
        "centroid_r_mm": None if centroid is None else centroid[0],
        "centroid_a_mm": None if centroid is None else centroid[1],
        "centroid_s_mm": None if centroid is None else centroid[2],
        "pfirrmann_grade": disc.pfirrmann_grade,
        "pfirrmann_probability": grade_prob,
        **{
            f"pfirrmann_p{g}": (probs[g - 1] if probs is not None and g <= len(probs) else None)
            for g in range(1, N_GRADES + 1)
        },
        "pfirrmann_expected": disc.pfirrmann_expected,
        "adc_class": disc.adc_class,
        "flags": ",".join(disc.flags) if disc.flags else None,
    }
    assert tuple(row) == COLUMN_NAMES, "disc_row and COLUMNS disagree"
    return row


def disc_rows(discs: list[DiscResult]) -> list[dict[str, Any]]:
    """One row per level in :data:`LEVELS` order; levels absent from ``discs`` get an empty row.

    Discs at other levels (T12-L1, L6) are not part of the lumbar table and are left out.
    """
    by_level = {d.level: d for d in discs}
    return [disc_row(by_level.get(level, DiscResult(level=level))) for level in LEVELS]


def format_cell(value: Any) -> str:
    """The TSV spelling of a value: ``n/a`` if missing, ``true``/``false``, 6 significant digits.

    A numpy scalar (``np.float32``, ``np.bool_``, ``np.int64``) is spelled as the Python
    value it holds, so ``np.float32('nan')`` is ``n/a`` and ``np.bool_(True)`` is ``true``,
    as in the results JSON and the report.
    """
    if isinstance(value, np.number | np.bool_):
        value = value.item()
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return MISSING if not math.isfinite(value) else f"{value:.6g}"
    return str(value)


def write_discs_tsv(discs: list[DiscResult], path: Path) -> Path:
    """Write the five-row disc table as tab-separated values."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMN_NAMES)
        for row in disc_rows(discs):
            writer.writerow([format_cell(row[c]) for c in COLUMN_NAMES])
    return path


def data_dictionary(
    water_calibration: str | None = None,
    *,
    adc_class_thresholds: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The BIDS data dictionary of the disc table: ``{column: {Description, Units, Levels}}``.

    ``water_calibration``, the label of the calibration used, is added to the description
    of ``water_percent``, so that the table's own sidecar says where the numbers come from;
    ``adc_class_thresholds`` (the results' provenance entry,
    :func:`~discquant.grade.adc_class.thresholds_provenance`) gives ``adc_class`` the
    levels of a site's own thresholds.
    """
    site = adc_class_thresholds or {}
    own = site.get("file", "packaged default") != "packaged default"
    out: dict[str, dict[str, Any]] = {}
    for col in COLUMNS:
        entry: dict[str, Any] = {"Description": col.description}
        if col.name == "water_percent" and water_calibration:
            entry["Description"] += f" Calibration used: {water_calibration}."
        if col.units is not None:
            entry["Units"] = col.units
        if col.levels is not None:
            entry["Levels"] = col.levels
        if col.name == "adc_class" and own:
            name = Path(site["file"]).name
            entry["Description"] = (
                f"ADC class of the nucleus median ADC, by the thresholds of {name} "
                f"({site.get('source') or 'no source given'})."
            )
            entry["Levels"] = _adc_class_levels([(n, u) for n, u in site["classes"]])
        out[col.name] = entry
    return out


def write_data_dictionary(
    path: Path,
    *,
    water_calibration: str | None = None,
    adc_class_thresholds: dict[str, Any] | None = None,
) -> Path:
    """Write the BIDS data dictionary (``discs.json``) of the disc table."""
    dictionary = data_dictionary(water_calibration, adc_class_thresholds=adc_class_thresholds)
    text = json.dumps(dictionary, indent=2, ensure_ascii=False)
    path.write_text(text + "\n", "utf-8")
    return path
