"""Enhanced (multi-frame) DICOM: converted like classic files, geometry checked per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid
from tests.io.dicom_factory import write_enhanced, write_series

from discquant.errors import InvalidInputError
from discquant.io.load import load_study
from discquant.io.study import SeriesRole


def _enhanced_t2(tmp_path: Path, positions: list[float] | None = None) -> tuple[Path, np.ndarray]:
    stored = np.random.default_rng(3).integers(100, 1000, size=(32, 32, 5))
    classic = write_series(
        tmp_path / "classic",
        stored,
        description="T2_TSE_SAG",
        series_number=3,
        study_uid=generate_uid(),
        frame_uid=generate_uid(),
        pixel_mm=0.8,
        slice_positions_mm=positions,
    )
    return write_enhanced(tmp_path / "enhanced", classic), stored


def test_enhanced_multiframe_t2(tmp_path: Path) -> None:
    path, stored = _enhanced_t2(tmp_path)
    study = load_study(path.parent)
    t2 = study.t2
    assert [s.role for s in study.series] == [SeriesRole.T2]
    assert t2 is not None and t2.image.shape == (32, 32, 5)
    assert t2.image.voxel_mm == pytest.approx((0.8, 0.8, 4.0), abs=1e-4)
    assert t2.provenance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.4.4"  # legacy enhanced MR
    assert t2.provenance.source_paths == (path,)
    np.testing.assert_array_equal(np.sort(t2.image.data.ravel()), np.sort(stored.ravel()))


def test_enhanced_inconsistent_spacing_is_rejected(tmp_path: Path) -> None:
    path, _ = _enhanced_t2(tmp_path, positions=[0.0, 4.0, 8.0, 12.0, 20.0])
    with pytest.raises(InvalidInputError, match="inconsistent slice spacing") as err:
        load_study(path.parent)
    assert str(path) in str(err.value)
