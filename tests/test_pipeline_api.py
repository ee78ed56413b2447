"""The pipeline used wrongly from Python: clear errors instead of AttributeError or a
check that never fires (an audit of discquant in a notebook)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from discquant.errors import InvalidInputError
from discquant.io.study import Series, SeriesRole, Study, Volume
from discquant.measure.discs import MeasureConfig
from discquant.pipeline import AnalysisConfig, StudyInputs, check_config, run_study


def test_run_study_given_a_path_says_what_it_takes(tmp_path: Path) -> None:
    """run_study("out/sub-01", "res") failed with AttributeError: 'str' object has no
    attribute 'path'."""
    out = tmp_path / "res"
    with pytest.raises(TypeError) as err:
        run_study("out/sub-01", out)  # type: ignore[arg-type]
    assert str(err.value) == (
        "run_study takes StudyInputs, not str: use "
        "run_study(StudyInputs(path='out/sub-01'), out_dir)"
    )
    with pytest.raises(TypeError, match="not PosixPath: use run_study"):
        run_study(Path("study"), out)  # type: ignore[arg-type]
    image = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4))
    study = Study("01", (Series(SeriesRole.T2, "test", "T2", image, "sagittal"),))
    with pytest.raises(TypeError, match=r"not a Study: use analyze\(study\), then "):
        run_study(study, out)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"out_dir is the derivatives folder .* not int"):
        run_study(StudyInputs(path=tmp_path), 5)  # type: ignore[arg-type]
    assert not out.exists()  # refused before anything was made


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scanner_adc_tolerance": 5}, "scanner_adc_tolerance must be a fraction between 0"),
        ({"scanner_adc_tolerance": 1.0}, "got 1.0"),
        ({"scanner_adc_tolerance": 0}, "got 0"),
        ({"scanner_adc_tolerance": "0.05"}, "got '0.05'"),
        ({"scanner_adc_tolerance": float("nan")}, "got nan"),
        ({"max_dwi_offset_voxels": -1}, "max_dwi_offset_voxels must be a finite number"),
        ({"max_dwi_offset_voxels": float("inf")}, "got inf"),
        ({"max_dwi_offset_voxels": True}, "got True"),
        ({"b_min_s_per_mm2": "200"}, "b_min_s_per_mm2 must be None or a finite b-value"),
        ({"b_min_s_per_mm2": -50.0}, "got -50.0"),
        ({"device": 0}, "device must be a string"),
        # the measurement's: 0 raised ZeroDivisionError mid-analysis, -2 gave water
        # indices below 0 without a flag (an audit)
        ({"measure": MeasureConfig(reference_np_adc_um2_per_ms=0)}, "reference_np_adc.* got 0"),
        ({"measure": MeasureConfig(reference_np_adc_um2_per_ms=-2.0)}, "got -2.0"),
        ({"measure": MeasureConfig(border_voxels=-1)}, "border_voxels must be a whole .* ≥ 0"),
        ({"measure": MeasureConfig(min_core_voxels=0)}, "min_core_voxels must be .* ≥ 1, got 0"),
        ({"measure": MeasureConfig(min_core_voxels=2.5)}, "got 2.5"),  # type: ignore[arg-type]
    ],
)
def test_check_config_refuses_options_out_of_range(options: dict[str, Any], message: str) -> None:
    """scanner_adc_tolerance=5 (500 %) never warned, max_dwi_offset_voxels=-1 and
    b_min_s_per_mm2="200" were accepted."""
    with pytest.raises(InvalidInputError, match=message) as err:
        check_config(AnalysisConfig(**options))
    assert "\n" not in str(err.value)


def test_check_config_accepts_options_in_range() -> None:
    for options in (
        {},
        {"scanner_adc_tolerance": 0.2, "max_dwi_offset_voxels": 0, "b_min_s_per_mm2": 0},
        {"scanner_adc_tolerance": np.float32(0.05), "b_min_s_per_mm2": np.int64(200)},
        {"max_dwi_offset_voxels": 3, "b_min_s_per_mm2": 200.0},
        {"measure": MeasureConfig(reference_np_adc_um2_per_ms=1.8, border_voxels=0)},
        {"measure": MeasureConfig(border_voxels=np.int64(2), min_core_voxels=np.int32(8))},  # type: ignore[arg-type]
    ):
        check_config(AnalysisConfig(**options))  # type: ignore[arg-type]
