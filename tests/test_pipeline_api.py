"""The pipeline used wrongly from Python: clear errors instead of AttributeError (an
audit of discquant in a notebook)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from discquant.io.study import Series, SeriesRole, Study, Volume
from discquant.pipeline import StudyInputs, run_study


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
