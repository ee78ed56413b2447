"""AnalysisResult used from Python: its repr and its disc table as a DataFrame (an audit
of discquant in a notebook)."""

from __future__ import annotations

import copy
import csv
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.outputs.conftest import Synthetic, partial_result

from discquant.io.study import Volume
from discquant.outputs import write_outputs
from discquant.outputs.tables import INTEGER_COLUMNS
from discquant.results import LEVELS


def test_result_repr_leaves_the_images_out(synthetic: Synthetic) -> None:
    """Eight images printed as arrays made repr(result) 42,000 characters long."""
    result = synthetic.result
    text = repr(result)
    assert len(text) < 10_000, len(text)
    assert text.startswith("AnalysisResult(subject='sub-demo_01', discs=[DiscResult(")
    assert "array(" not in text and "Volume(" not in text
    assert "adc_np=AdcStats(mean=2.01" in text and "snr_estimate=24.5" in text
    images = {
        f.name for f in dataclasses.fields(result) if isinstance(getattr(result, f.name), Volume)
    }
    assert images == {
        "t2",
        "labels_t2",
        "b0",
        "adc_map",
        "adc_fit_rmse",
        "labels_dwi",
        "nucleus_core_dwi",
    }
    hidden = {f.name for f in dataclasses.fields(result) if not f.repr}
    assert hidden == images | {"adc_fit_shell_residuals"}


def test_to_frame_is_the_written_disc_table(synthetic: Synthetic, tmp_path: Path) -> None:
    """AnalysisResult.to_frame gives the rows and columns of sub-<label>_discs.tsv, to
    the TSV's 6 significant digits (outputs.tables.disc_rows was the undocumented way)."""
    result = copy.deepcopy(synthetic.result)  # write_outputs may add failed stages
    paths = write_outputs(result, tmp_path / "deriv")
    frame = result.to_frame()
    with paths.discs_tsv.open(encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh, delimiter="\t"))
    assert list(frame.columns) == header
    assert len(rows) == len(frame) == 5
    for i, row in enumerate(rows):
        for name, cell in zip(header, row, strict=True):
            value = frame.loc[i, name]
            if pd.isna(value):
                assert cell == "n/a", (i, name)
            elif isinstance(value, bool | np.bool_):
                assert cell == ("true" if value else "false"), (i, name)
            elif isinstance(value, str):
                assert cell == value, (i, name)
            else:
                assert float(cell) == pytest.approx(float(value), rel=5e-6), (i, name)
    # the values are the result's own, typed: float, Int64 counts and grades, bool found
    assert list(frame["level"]) == list(LEVELS)
    assert frame.loc[0, "adc_np_median_um2_per_ms"] == pytest.approx(2.02)  # 2.01 + 0.01
    assert frame.loc[3, "pfirrmann_grade"] == 4 and frame.loc[3, "flags"] == "poor_fit"
    assert frame.loc[2, "centroid_s_mm"] == pytest.approx(50.0 - 28.0 * 2)
    assert frame["adc_np_median_um2_per_ms"].dtype == np.float64
    assert str(frame["pfirrmann_grade"].dtype) == "Int64"
    assert str(frame["adc_np_n_voxels"].dtype) == "Int64"
    assert frame["found"].dtype == bool and list(frame["found"]) == [True] * 4 + [False]
    missing = frame.loc[4].drop(["level", "found", "flags"])  # L5-S1, not found
    assert missing.isna().all() and frame.loc[4, "flags"] == "partial_fov"
    # pandas reads the TSV back to the same table (its integers with gaps as Int64, as
    # the cohort tables do)
    read = pd.read_csv(paths.discs_tsv, sep="\t", na_values=["n/a"], keep_default_na=False)
    read = read.astype(dict.fromkeys(INTEGER_COLUMNS, "Int64"))
    pd.testing.assert_frame_equal(frame, read, check_dtype=False, rtol=5e-6)


def test_to_frame_of_a_result_without_discs_has_five_typed_empty_rows() -> None:
    frame = partial_result().to_frame()
    assert list(frame["level"]) == list(LEVELS) and not frame["found"].any()
    assert frame["volume_mm3"].dtype == np.float64 and frame["volume_mm3"].isna().all()
    assert str(frame["pfirrmann_grade"].dtype) == "Int64"
