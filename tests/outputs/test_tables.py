"""The five-row disc table and its data dictionary."""

from __future__ import annotations

import csv
from collections.abc import Callable
from itertools import combinations
from operator import attrgetter
from pathlib import Path

import numpy as np
import pytest
from tests.outputs.conftest import Synthetic

from discquant.outputs.results_json import build_results_document
from discquant.outputs.tables import (
    COLUMN_NAMES,
    RENAMED_COLUMNS,
    data_dictionary,
    disc_rows,
    format_cell,
    write_discs_tsv,
)
from discquant.results import LEVELS, AnalysisResult, DiscResult

REQUIRED = (
    "level found adc_disc_mean_um2_per_ms adc_disc_median_um2_per_ms adc_np_mean_um2_per_ms "
    "adc_np_median_um2_per_ms water_index "
    "t2_np_csf_ratio height_anterior_mm height_middle_mm height_posterior_mm volume_mm3 "
    "pfirrmann_grade pfirrmann_probability adc_class flags"
).split()


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _probability(grade: int | None) -> Callable[[DiscResult], object]:
    """The fixture's CNN probability of ``grade`` (None: of the disc's own grade)."""

    def get(d: DiscResult) -> object:
        assert d.pfirrmann_probabilities is not None and d.pfirrmann_grade is not None
        return d.pfirrmann_probabilities[(grade or d.pfirrmann_grade) - 1]

    return get


def _centroid(axis: int) -> Callable[[DiscResult], object]:
    return lambda d: None if d.centroid_ras_mm is None else d.centroid_ras_mm[axis]


TRUTH: dict[str, Callable[[DiscResult], object]] = {
    # ADC statistics: um2/ms in the DiscResult and in the table, no conversion
    **{
        f"{region}_{stat}_um2_per_ms": attrgetter(f"{region}.{stat}")
        for region in ("adc_disc", "adc_np")
        for stat in ("mean", "median", "sd", "p10", "p90")
    },
    "adc_disc_n_voxels": attrgetter("adc_disc.n_voxels"),
    "adc_np_n_voxels": attrgetter("adc_np.n_voxels"),
    **{
        name: attrgetter(name)
        for name in (
            "snr_np_b0 adc_np_noise_bias_percent water_index water_index_csf water_percent "
            "t2_np_csf_ratio "
            "t2_np_reference_ratio t2_np_heterogeneity height_anterior_mm height_middle_mm "
            "height_posterior_mm disc_height_index ap_depth_mm volume_mm3 pfirrmann_grade "
            "pfirrmann_expected"
        ).split()
    },
    "centroid_r_mm": _centroid(0),
    "centroid_a_mm": _centroid(1),
    "centroid_s_mm": _centroid(2),
    "pfirrmann_probability": _probability(None),
    **{f"pfirrmann_p{g}": _probability(g) for g in range(1, 6)},
}
"""Each numeric column of the disc table -> the fixture's value it holds (same unit)."""


def _differ(a: object, b: object) -> bool:
    """Two fixture values the table's 6 significant digits tell apart."""
    return a != pytest.approx(b, rel=1e-5)


def test_tsv_has_one_row_per_level_with_known_values(synthetic: Synthetic, tmp_path: Path) -> None:
    """Every numeric cell of every found level is the fixture's value of that level and
    quantity (6 significant digits, integers exact). Any two columns differ on some level of
    the fixture, so a writer that swaps two columns fails."""
    rows = _read(write_discs_tsv(synthetic.result.discs, tmp_path / "discs.tsv"))
    assert [r["level"] for r in rows] == list(LEVELS)
    assert [r["found"] for r in rows] == ["true"] * 4 + ["false"]
    assert set(REQUIRED) <= set(rows[0])
    text = {"level", "found", "adc_class", "flags"}
    assert set(TRUTH) == set(rows[0]) - text  # every numeric column is checked
    found = synthetic.result.discs[:4]
    assert [d.level for d in found] == [r["level"] for r in rows[:4]]
    for a, b in combinations(TRUTH, 2):  # a swap of any two columns is visible
        assert any(_differ(TRUTH[a](d), TRUTH[b](d)) for d in found), (a, b)
    for row, disc in zip(rows[:4], found, strict=True):
        wrong = {}
        for column, truth in TRUTH.items():
            value = truth(disc)
            if isinstance(value, int):
                ok = row[column] == str(value)
            else:
                assert isinstance(value, float), column
                ok = row[column] != "n/a" and float(row[column]) == pytest.approx(value, rel=1e-5)
            if not ok:
                wrong[column] = f"{row[column]} (fixture: {value})"
        assert not wrong, f"{disc.level}: {wrong}"
    assert [r["adc_class"] for r in rows[:4]] == [d.adc_class for d in found]
    assert [r["flags"] for r in rows] == ["n/a", "n/a", "n/a", "poor_fit", "partial_fov"]
    l4 = rows[3]
    assert l4["pfirrmann_grade"] == "4"
    assert float(l4["pfirrmann_probability"]) == pytest.approx(0.92)
    assert float(l4["pfirrmann_p4"]) == pytest.approx(0.92)
    assert float(l4["height_anterior_mm"]) == pytest.approx(14.0)
    assert float(l4["volume_mm3"]) == pytest.approx(5580.0)
    assert float(l4["centroid_s_mm"]) == pytest.approx(50.0 - 28.0 * 3)
    assert l4["adc_class"] == "moderate"
    # The level that was not found: every value column is n/a, its flag stays.
    l5 = rows[4]
    assert all(l5[c] == "n/a" for c in COLUMN_NAMES if c not in ("level", "found", "flags"))


def test_every_column_with_a_unit_names_it() -> None:
    dictionary = data_dictionary()
    adc = [c for c, e in dictionary.items() if e.get("Units") == "um^2/ms"]
    assert len(adc) == 10 and all(c.endswith("_um2_per_ms") for c in adc)
    assert "adc_np_n_voxels" in dictionary and dictionary["adc_np_n_voxels"]["Units"] == "voxels"
    # the columns renamed on 2026-12-05, old name -> current one
    assert RENAMED_COLUMNS["adc_np_median"] == "adc_np_median_um2_per_ms"
    assert sorted(RENAMED_COLUMNS.values()) == sorted(adc)
    assert not set(RENAMED_COLUMNS) & set(COLUMN_NAMES)


def test_levels_missing_from_the_result_still_get_rows() -> None:
    rows = disc_rows([DiscResult(level="L3-L4", found=True, volume_mm3=1.0)])
    assert [r["level"] for r in rows] == list(LEVELS)
    assert [r["found"] for r in rows] == [False, False, True, False, False]


def test_data_dictionary_describes_every_column_with_units() -> None:
    dictionary = data_dictionary()
    assert list(dictionary) == list(COLUMN_NAMES)
    assert all(entry["Description"] for entry in dictionary.values())
    assert dictionary["adc_np_mean_um2_per_ms"]["Units"] == "um^2/ms"
    assert dictionary["height_middle_mm"]["Units"] == "mm"
    assert dictionary["volume_mm3"]["Units"] == "mm^3"
    assert set(dictionary["level"]["Levels"]) == set(LEVELS)
    # the ADC classes with their ranges and the grade each stands for: "against the
    # reference bands by grade" let "moderate" beside grade III read as a contradiction
    # (a user trial); each range is that of the class a value inside it gets
    from discquant.grade import adc_class

    classes = dictionary["adc_class"]["Levels"]
    assert classes["moderate"] == "nucleus median ADC 1.25 to < 1.55 um2/ms, typical of grade IV"
    assert classes["normal"] == "nucleus median ADC >= 1.80 um2/ms, typical of grades I-II"
    assert [adc_class(v) for v in (1.0, 1.25, 1.549, 1.55, 1.8)] == [
        "severe", "moderate", "moderate", "mild", "normal",
    ]  # fmt: skip
    assert "not published or validated" in dictionary["adc_class"]["Description"]


def test_numpy_scalars_are_spelled_as_in_the_results_json(tmp_path: Path) -> None:
    """Measurements can be numpy scalars: np.float32('nan') was written ``nan`` and
    np.bool_(True) ``True``, where the results JSON has null and true and BIDS wants
    ``n/a`` and the table's own ``true``/``false``."""
    disc = DiscResult(
        level="L3-L4",
        found=np.bool_(True),  # type: ignore[arg-type]
        water_index=np.float32("nan"),  # type: ignore[arg-type]
        t2_np_heterogeneity=np.float32("inf"),  # type: ignore[arg-type]
        volume_mm3=np.float32(1234.5),  # type: ignore[arg-type]
        pfirrmann_grade=np.int64(3),  # type: ignore[arg-type]
    )
    rows = _read(write_discs_tsv([disc], tmp_path / "discs.tsv"))
    l3 = rows[2]
    assert l3["found"] == "true" and rows[0]["found"] == "false"
    assert l3["water_index"] == "n/a" and l3["t2_np_heterogeneity"] == "n/a"
    assert (l3["volume_mm3"], l3["pfirrmann_grade"]) == ("1234.5", "3")
    doc = build_results_document(AnalysisResult(subject="x", discs=[disc]))["discs"][2]
    assert (doc["found"], doc["water_index"], doc["volume_mm3"]) == (True, None, 1234.5)
    assert [format_cell(v) for v in (np.bool_(False), np.float64("nan"), np.int32(7))] == [
        "false",
        "n/a",
        "7",
    ]
