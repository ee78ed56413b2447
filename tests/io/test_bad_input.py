"""Every kind of bad input: a typed exception naming the file, one line and exit 2 on the CLI."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from pydicom.uid import generate_uid
from tests.io.dicom_factory import AXIAL_IOP, WrittenSeries, write_series
from typer.testing import CliRunner

from discquant.cli import app
from discquant.errors import InputNotFoundError, InvalidInputError
from discquant.io.load import load_study

SAG_AFFINE = np.array(
    [[0.0, 0.0, 4.0, 0.0], [0.0, -1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


def _cli_error(args: list[str]) -> str:
    """Run the CLI, require exit 2, and return the one stderr line."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("discquant: error: ")
    assert "Traceback" not in result.output
    return lines[0]


def _t2_series(folder: Path, **kwargs: Any) -> WrittenSeries:
    rng = np.random.default_rng(1)
    return write_series(
        folder,
        rng.integers(100, 1000, size=(32, 32, 5)),
        description="T2_TSE_SAG",
        series_number=3,
        study_uid=generate_uid(),
        frame_uid=generate_uid(),
        **kwargs,
    )


def _nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), SAG_AFFINE), path)
    return path


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-study"
    with pytest.raises(InputNotFoundError) as err:
        load_study(missing)
    assert str(missing) in str(err.value) and "does not exist" in str(err.value)
    line = _cli_error(["inspect", str(missing)])
    assert str(missing) in line


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError) as err:
        load_study(tmp_path)
    assert str(tmp_path) in str(err.value) and "empty" in str(err.value)
    assert str(tmp_path) in _cli_error(["inspect", str(tmp_path)])


def test_folder_without_dicom(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "IM0001").write_bytes(b"\x00" * 400)
    with pytest.raises(InputNotFoundError) as err:
        load_study(tmp_path)
    assert str(tmp_path) in str(err.value) and "no DICOM" in str(err.value)


def test_truncated_dicom_breaking_its_series(tmp_path: Path) -> None:
    written = _t2_series(tmp_path / "s3")
    victim = written.files[2]  # a middle slice: without it the slices have a gap
    victim.write_bytes(victim.read_bytes()[:-700])
    with pytest.raises(InvalidInputError) as err:
        load_study(tmp_path)
    assert str(victim) in str(err.value) and "truncated" in str(err.value)
    assert str(victim) in _cli_error(["inspect", str(tmp_path)])


@pytest.mark.parametrize("keep_bytes", [300, -500], ids=["in-header", "in-pixels"])
def test_truncated_dicom_skipped_when_series_stays_complete(
    tmp_path: Path, keep_bytes: int
) -> None:
    # A single-slice DWI: each file is a whole volume, so losing one b = 800 repeat
    # leaves a complete series with b = 0/400/800.
    signal = np.stack([np.full((32, 32, 1), v) for v in (1000, 700, 500, 500)], axis=-1)
    written = write_series(
        tmp_path / "dwi",
        signal,
        description="DWI",
        series_number=5,
        study_uid=generate_uid(),
        frame_uid=generate_uid(),
        bvals=[0, 400, 800, 800],
    )
    victim = written.files[3]
    victim.write_bytes(victim.read_bytes()[:keep_bytes])
    study = load_study(tmp_path)
    assert study.dwi is not None and study.dwi.bvals_s_per_mm2 is not None
    np.testing.assert_allclose(study.dwi.bvals_s_per_mm2, [0, 400, 800])
    # named relative to the input folder (outputs carry the warnings)
    assert len(study.warnings) == 1
    assert study.warnings[0].startswith(f"{victim.relative_to(tmp_path)}: ")
    assert victim not in study.dwi.provenance.source_paths


def test_inconsistent_slice_spacing(tmp_path: Path) -> None:
    written = _t2_series(tmp_path / "s3", slice_positions_mm=[0.0, 4.0, 8.0, 16.0, 20.0])
    with pytest.raises(InvalidInputError) as err:
        load_study(tmp_path)
    msg = str(err.value)
    assert str(written.files[3]) in msg  # the slice after the 8 mm gap
    assert "inconsistent slice spacing" in msg and "8.00 mm" in msg and "4.00 mm" in msg
    assert str(written.files[3]) in _cli_error(["inspect", str(tmp_path)])


def test_an_unusable_series_beside_a_good_one_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """Axial T2 stacks in blocks (irregular gaps) are common in lumbar protocols; one such
    series stopped the whole import. Now it is skipped, named in a warning, and the
    sagittal T2 is read."""
    good = _t2_series(tmp_path / "sag")
    blocks = write_series(
        tmp_path / "ax",
        np.random.default_rng(2).integers(100, 1000, size=(32, 32, 6)),
        description="T2_TSE_TRA_blocks",
        series_number=8,
        study_uid=generate_uid(),
        frame_uid=generate_uid(),
        iop=AXIAL_IOP,
        slice_positions_mm=[0.0, 4.0, 8.0, 22.0, 26.0, 30.0],
    )
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.provenance.source_paths[0] == good.files[0]
    (warning,) = [w for w in study.warnings if "series skipped" in w]
    assert "inconsistent slice spacing" in warning and "T2_TSE_TRA_blocks" in warning
    assert warning.startswith(str(blocks.files[3].relative_to(tmp_path)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nifti_with_nan_or_inf(tmp_path: Path, bad: float) -> None:
    data = np.ones((16, 16, 1))
    data[3, 4, 0] = bad
    path = _nifti(tmp_path / "t2.nii.gz", data)
    with pytest.raises(InvalidInputError) as err:
        load_study(path)
    assert str(path) in str(err.value)
    assert ("1 NaN" if np.isnan(bad) else "1 Inf") in str(err.value)
    assert str(path) in _cli_error(["inspect", "--t2", str(path)])


def test_bval_count_mismatch(tmp_path: Path) -> None:
    dwi = _nifti(tmp_path / "dwi.nii.gz", np.ones((8, 8, 2, 3)))
    bval = tmp_path / "dwi.bval"
    bval.write_text("0 400 800 800\n")
    with pytest.raises(InvalidInputError) as err:
        load_study(dwi=dwi)  # finds dwi.bval next to it
    msg = str(err.value)
    assert str(bval) in msg and "4 b-values" in msg and "3 volumes" in msg
    assert str(bval) in _cli_error(["inspect", "--dwi", str(dwi), "--bval", str(bval)])


def test_dwi_with_single_bvalue(tmp_path: Path) -> None:
    dwi = _nifti(tmp_path / "dwi.nii.gz", np.ones((8, 8, 2, 3)))
    (tmp_path / "b.bval").write_text("800 800 800\n")
    with pytest.raises(InvalidInputError) as err:
        load_study(dwi=dwi, bval=tmp_path / "b.bval")
    assert str(dwi) in str(err.value) and "single b-value (800" in str(err.value)


def test_truncated_gzipped_dicom(tmp_path: Path) -> None:
    written = _t2_series(tmp_path / "src")
    for f in written.files:
        data = gzip.compress(f.read_bytes())
        if f == written.files[2]:
            data = data[: len(data) // 2]  # the gzip stream ends early
        (tmp_path / "gz").mkdir(exist_ok=True)
        (tmp_path / "gz" / (f.name + ".gz")).write_bytes(data)
    victim = tmp_path / "gz" / (written.files[2].name + ".gz")
    with pytest.raises(InvalidInputError) as err:
        load_study(tmp_path / "gz")
    assert str(victim) in str(err.value) and "gzip stream is truncated" in str(err.value)


def test_4d_image_given_as_t2(tmp_path: Path) -> None:
    dwi = _nifti(tmp_path / "dwi4d.nii.gz", np.ones((8, 8, 2, 3)))
    with pytest.raises(InvalidInputError) as err:
        load_study(t2=dwi)
    assert str(dwi) in str(err.value) and "has 3 volumes; a T2 series has one" in str(err.value)
    out = tmp_path / "O"
    line = _cli_error(["analyze", "--t2", str(dwi), "--out", str(out)])
    assert f"{dwi}: given as --t2 but has 3 volumes" in line
    assert not out.exists()
    # the same for a BIDS anat/*_T2w file
    (tmp_path / "sub-01" / "anat").mkdir(parents=True)
    bids_t2 = _nifti(tmp_path / "sub-01" / "anat" / "sub-01_T2w.nii.gz", np.ones((8, 8, 2, 2)))
    with pytest.raises(InvalidInputError) as err:
        load_study(tmp_path / "sub-01")
    assert str(bids_t2) in str(err.value) and "has 2 volumes" in str(err.value)


@pytest.mark.parametrize(
    ("bvals", "unit"),
    [
        ("0 0 4e8 8e8", "s/m²"),  # was fitted: ADC 1.5e-06 µm²/ms, "1000 of 1000 voxels valid"
        ("0 0 0.4 0.8", "ms/µm²"),  # was "a single b-value (0.3 s/mm²)"
    ],
)
def test_bvalues_in_another_unit_are_refused(tmp_path: Path, bvals: str, unit: str) -> None:
    dwi = _nifti(tmp_path / "dwi.nii.gz", np.ones((8, 8, 2, 4)))
    bval = tmp_path / "dwi.bval"
    bval.write_text(bvals + "\n")
    line = _cli_error(["adc", str(dwi), "-o", str(tmp_path / "adc.nii.gz")])
    assert line.startswith(f"discquant: error: {bval}: largest b-value") and unit in line
