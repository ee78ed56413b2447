"""Real DWI studies loaded once per session for the diffusion tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def siemens_dwi(shared_data: Path):
    """(folder, data, bvals, bvecs) of the Siemens Prisma DWI (b = 0 + 20 × 2000)."""
    from discquant.io.load import load_study

    folder = shared_data / "dwi-dicom" / "siemens-prisma-sag"
    study = load_study(folder)
    assert study.dwi is not None
    s = study.dwi
    assert s.bvals_s_per_mm2 is not None and s.bvecs is not None
    return folder, s.image, s.bvals_s_per_mm2, s.bvecs
