"""Real scanner DICOM (../shared/data/dwi-dicom): b-values, directions and shape as dcm2niix's
reference conversion gives them.

Siemens Prisma: sagittal mosaic DWI, b = 0 + 20 directions at 2000. Philips Ingenia: 544
gzip'd classic slices with scrambled instance numbers (17 volumes × 32 slices). ``Ref/``
holds dcm2niix's own .bval/.bvec/.json made by the data's authors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from discquant.io.load import load_study
from discquant.io.study import SeriesRole, Study

CASES = {
    "siemens-prisma-sag": "4_DWI_SagAPmosaic",
    "philips-ingenia": "701_DTI_Biobank_2mm_MB3S2_EPI_cl",
}

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest, shared_data: Path) -> tuple[Path, Study]:
    folder = shared_data / "dwi-dicom" / request.param
    return folder / "Ref" / CASES[request.param], load_study(folder)


def test_one_dwi_series(case: tuple[Path, Study]) -> None:
    _, study = case
    assert [s.role for s in study.series] == [SeriesRole.DWI]


def test_bvals_and_bvecs_equal_reference(case: tuple[Path, Study]) -> None:
    ref, study = case
    dwi = study.dwi
    assert dwi is not None and dwi.bvals_s_per_mm2 is not None and dwi.bvecs is not None
    ref_bvals = np.loadtxt(ref.with_suffix(".bval"))
    ref_bvecs = np.loadtxt(ref.with_suffix(".bvec")).T
    np.testing.assert_allclose(dwi.bvals_s_per_mm2, ref_bvals, rtol=0, atol=1e-6)
    np.testing.assert_allclose(dwi.bvecs, ref_bvecs, rtol=0, atol=1e-6)


def test_shape_and_spacing_match_reference(case: tuple[Path, Study]) -> None:
    ref, study = case
    dwi = study.dwi
    assert dwi is not None
    meta = json.loads(ref.with_suffix(".json").read_text())
    n_vols = len(np.loadtxt(ref.with_suffix(".bval")))
    n_files = len(dwi.provenance.sop_instance_uids)
    if "SliceTiming" in meta:  # Siemens: one slice time per slice, one mosaic per volume
        n_slices = len(meta["SliceTiming"])
        assert n_files == n_vols
    else:  # Philips classic: one file per slice and volume
        assert n_files % n_vols == 0
        n_slices = n_files // n_vols
    matrix = meta["ReconMatrixPE"]
    assert dwi.image.shape == (matrix, matrix, n_slices, n_vols)
    assert dwi.image.voxel_mm[2] == pytest.approx(meta["SpacingBetweenSlices"], abs=1e-3)
    assert dwi.provenance.series_number == meta["SeriesNumber"]
    # The plane named from the affine agrees with the DICOM orientation in the reference.
    iop = np.asarray(meta["ImageOrientationPatientDICOM"])
    normal = np.abs(np.cross(iop[:3], iop[3:]))
    assert dwi.orientation == ("sagittal", "coronal", "axial")[int(np.argmax(normal))]


def test_file_names_holding_uids_are_shown_without_them(case: tuple[Path, Study]) -> None:
    """Siemens names files after the SOP Instance UID, which holds the scanner's serial
    number (67060) and the acquisition date and time: the name reached the results JSON,
    the report and inspect (trial C). Philips' names hold no UID and are kept."""
    ref, study = case
    assert study.dwi is not None
    shown = study.series_file(study.dwi)
    first = study.dwi.provenance.source_paths[0]
    if "siemens" in str(ref):
        assert first.name.startswith("0001_1.3.12.2.1107.5.2.43.67060.")
        assert shown == "In/4_DWI_SagAPmosaic/0001_[uid].dcm"
    else:
        assert shown.endswith(first.name) and "[uid]" not in shown


def test_a_missing_mosaic_volume_is_said(shared_data: Path, tmp_path: Path) -> None:
    """One file of the Siemens mosaic DWI deleted (one volume): 20 volumes were read
    without a word, a direction lost (an audit). The gap in the instance numbers is now
    said; the series is used with the volumes it has."""
    import shutil

    src = shared_data / "dwi-dicom" / "siemens-prisma-sag" / "In"
    shutil.copytree(src, tmp_path / "in")
    full = load_study(tmp_path / "in")
    assert not [w for w in full.warnings if "instance numbers jump" in w]
    (gone,) = (tmp_path / "in" / "4_DWI_SagAPmosaic").glob("0009_*.dcm")
    gone.unlink()
    study = load_study(tmp_path / "in")
    assert study.dwi is not None and study.dwi.image.data.shape[3] == 20
    (said,) = [w for w in study.warnings if "instance numbers jump" in w]
    assert said.startswith("4_DWI_SagAPmosaic/0010_[uid].dcm: series 4")
    assert "jump from 8 to 10 before this file: 1 volume(s) missing?" in said
