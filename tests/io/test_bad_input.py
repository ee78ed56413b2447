"""Every kind of bad input: a typed exception naming the file, one line and exit 2 on the CLI."""

from __future__ import annotations

import gzip
import json
import re
import warnings
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
from discquant.io.study import SeriesRole

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


def _axial_series(folder: Path, n_slices: int, description: str, **kwargs: Any) -> WrittenSeries:
    """An axial T2 series beside the sagittal one (series 8, its own study and frame)."""
    return write_series(
        folder,
        np.random.default_rng(2).integers(100, 1000, size=(32, 32, n_slices)),
        description=description,
        series_number=8,
        study_uid=generate_uid(),
        frame_uid=generate_uid(),
        iop=AXIAL_IOP,
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


def test_truncated_dicom_skips_only_its_series(tmp_path: Path) -> None:
    """Another series broken by a file cut short is skipped; the T2 is still read."""
    study_uid, frame_uid = generate_uid(), generate_uid()
    rng = np.random.default_rng(2)
    kw: dict[str, Any] = {"study_uid": study_uid, "frame_uid": frame_uid}
    write_series(tmp_path / "t2", rng.integers(100, 1000, size=(32, 32, 5)),
                 description="T2_TSE_SAG", series_number=3, **kw)  # fmt: skip
    extra = write_series(tmp_path / "extra", rng.integers(100, 1000, size=(32, 32, 5)),
                         description="T1_TSE_SAG", series_number=4, echo_ms=10.0,
                         repetition_ms=500.0, **kw)  # fmt: skip
    victim = extra.files[2]
    victim.write_bytes(victim.read_bytes()[:-700])
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.description == "T2_TSE_SAG"
    warned = [w for w in study.warnings if "truncated" in w]
    assert len(warned) == 1
    assert warned[0].startswith(f"{victim.relative_to(tmp_path)}: ")
    assert warned[0].endswith("its series is incomplete without it; series skipped")


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


@pytest.mark.parametrize(("shift_mm", "refused"), [(0.5, True), (0.02, False)])
def test_a_sheared_stack_is_refused_with_the_slice_that_lies_off(
    tmp_path: Path, shift_mm: float, refused: bool
) -> None:
    """Slices moved along their columns, 0.5 mm more each: dcm2niix placed the stack as
    if unsheared (the first slice's in-plane position for all), and the masks and the
    DICOM SEG lay up to 7 mm off the anatomy without a word (an audit). A drift within
    the tolerance (rounding in a header) is read."""
    import pydicom

    written = _t2_series(tmp_path / "s3")
    for k, f in enumerate(written.files):
        ds = pydicom.dcmread(f)
        column = np.asarray(ds.ImageOrientationPatient[3:], dtype=float)
        ds.ImagePositionPatient = list(np.asarray(ds.ImagePositionPatient) + k * shift_mm * column)
        ds.save_as(f)
    if not refused:
        assert load_study(tmp_path).t2 is not None
        return
    with pytest.raises(InvalidInputError) as err:
        load_study(tmp_path)
    msg = str(err.value)
    assert str(written.files[1]) in msg  # the first slice off the stack by 0.5 mm
    assert "are not stacked along their normal: this one lies 0.50 mm off" in msg


def test_an_unusable_series_beside_a_good_one_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """Axial T2 stacks in blocks (irregular gaps) are common in lumbar protocols; one such
    series stopped the whole import. Now it is skipped, named in a warning, and the
    sagittal T2 is read."""
    good = _t2_series(tmp_path / "sag")
    blocks = _axial_series(
        tmp_path / "ax", 6, "T2_TSE_TRA_blocks",
        slice_positions_mm=[0.0, 4.0, 8.0, 22.0, 26.0, 30.0],
    )  # fmt: skip
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


def test_an_adc_map_reads_nan_as_no_value_and_still_refuses_inf(tmp_path: Path) -> None:
    # discquant's own ADC maps (`discquant adc`, analyze's sub-X_adc) mark voxels with no
    # fit NaN; given back as --adc they were refused ("replace them before import").
    rng = np.random.default_rng(0)
    adc = rng.uniform(0.5, 2.5, (16, 16, 3)).astype(np.float32)
    adc[:4] = np.nan
    t2 = _nifti(tmp_path / "t2.nii.gz", rng.uniform(100, 900, (16, 16, 3)))
    path = _nifti(tmp_path / "my_map.nii.gz", adc)
    for given in ({"adc": path}, {"path": _nifti(tmp_path / "sub-01_adc.nii.gz", adc)}):
        study = load_study(t2=t2, **given) if "adc" in given else load_study(given["path"])
        assert study.adc is not None
        got = study.adc.image.data
        assert (got == 0).sum() == 4 * 16 * 3  # the scanners' "no value"
        # the fitted voxels kept as they are (µm²/ms)
        np.testing.assert_allclose(np.sort(got[got > 0]), np.sort(adc[4:].ravel()), rtol=1e-6)
    adc[5, 5, 1] = np.inf
    with pytest.raises(InvalidInputError, match="0 NaN and 1 Inf"):
        load_study(t2=t2, adc=_nifti(tmp_path / "inf_adc.nii.gz", adc))


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


def test_a_dicom_folder_given_as_t2_says_how_to_give_it(tmp_path: Path) -> None:
    """`--t2 DICOM_FOLDER` read "not a readable NIfTI image (Cannot work out file type of
    ...)" (an audit)."""
    folder = tmp_path / "T2_TSE_SAG"
    folder.mkdir()
    out = tmp_path / "O"
    line = _cli_error(["analyze", "--t2", str(folder), "--out", str(out)])
    assert line == (
        f"discquant: error: {folder}: a folder, where a NIfTI file is expected: give a DICOM "
        "folder as the input (discquant analyze FOLDER), not with --t2/--dwi/--adc"
    )
    assert not out.exists()


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


def test_one_file_for_two_roles_and_a_dwi_given_as_adc(tmp_path: Path) -> None:
    # The T2 as --adc too was read as an ADC map in 10⁻⁶ mm²/s: every disc "severe", exit 0.
    t2 = _nifti(tmp_path / "t2.nii.gz", np.full((8, 8, 2), 900.0))
    out = tmp_path / "O"
    line = _cli_error(["analyze", "--t2", str(t2), "--adc", str(tmp_path / "." / "t2.nii.gz"),
                       "--out", str(out)])  # fmt: skip
    assert "t2.nii.gz: given as both --t2 and --adc" in line
    assert not out.exists()
    # A DWI given as --adc became the DWI (its .bval beside it won over the option).
    dwi = _nifti(tmp_path / "dwi.nii.gz", np.ones((8, 8, 2, 3)))
    (tmp_path / "dwi.bval").write_text("0 500 1000\n")
    with pytest.raises(InvalidInputError) as err:
        load_study(adc=dwi)
    assert f"{dwi}: given as --adc but has 3 volumes" in str(err.value)


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


def test_unreadable_extra_image_in_a_bids_folder_is_skipped(tmp_path: Path) -> None:
    """A damaged T1w next to the T2 is skipped with a warning; a damaged T2 is an error."""
    anat = tmp_path / "sub-01" / "anat"
    anat.mkdir(parents=True)
    _nifti(anat / "sub-01_T2w.nii.gz", np.ones((8, 8, 3)))
    t1 = _nifti(anat / "sub-01_T1w.nii.gz", np.ones((8, 8, 3)))
    t1.write_bytes(t1.read_bytes()[:40])
    study = load_study(tmp_path / "sub-01")
    assert study.t2 is not None and study.t2.image.shape == (8, 8, 3)
    assert len(study.warnings) == 1
    assert study.warnings[0].startswith("anat/sub-01_T1w.nii.gz: not a readable NIfTI image")
    assert study.warnings[0].endswith("; series skipped")
    t2 = anat / "sub-01_T2w.nii.gz"
    t2.write_bytes(t2.read_bytes()[:40])
    with pytest.raises(InvalidInputError) as err:
        load_study(tmp_path / "sub-01")
    assert str(t2) in str(err.value)


def test_unreadable_extra_image_in_a_nifti_folder_is_skipped(tmp_path: Path) -> None:
    _nifti(tmp_path / "t2_sag.nii.gz", np.ones((8, 8, 3)))
    (tmp_path / "localiser.nii.gz").write_bytes(b"\x1f\x8b not really")
    study = load_study(tmp_path)
    assert study.t2 is not None
    assert [w.split(":")[0] for w in study.warnings] == ["localiser.nii.gz"]


def test_a_damaged_t2_in_a_nifti_folder_is_named_as_the_reason_for_no_t2(
    tmp_path: Path,
) -> None:
    """A plain NIfTI folder's skipped files ended "; skipped", not the DICOM import's
    "; series skipped" that the pipeline counts, so a study whose T2 was damaged was said
    to hold "only diffusion series" (a review)."""
    from discquant.pipeline import _why_no_t2

    bvals = [0.0, 400.0, 800.0]
    _nifti(tmp_path / "p7_dwi.nii.gz", np.stack([np.full((8, 8, 3), 100.0)] * 3, -1))
    (tmp_path / "p7_dwi.bval").write_text(" ".join(map(str, bvals)) + "\n")
    (tmp_path / "p7_dwi.bvec").write_text("0 1 0\n0 0 1\n0 0 0\n")
    t2 = _nifti(tmp_path / "p7_T2w.nii.gz", np.ones((8, 8, 3)))
    t2.write_bytes(t2.read_bytes()[:40])
    study = load_study(tmp_path)
    assert study.t2 is None and study.dwi is not None
    assert _why_no_t2(study) == "1 series skipped on import (see the warnings), the rest diffusion"


def test_sidecar_series_number_that_is_not_finite(tmp_path: Path) -> None:
    image = _nifti(tmp_path / "t2.nii.gz", np.ones((8, 8, 3)))
    (tmp_path / "t2.json").write_text('{"SeriesNumber": NaN, "SeriesDescription": "T2"}')
    study = load_study(t2=image)
    assert study.t2 is not None and study.t2.provenance.series_number is None


def test_error_messages_of_other_libraries_are_one_line(tmp_path: Path) -> None:
    """nibabel's message for a truncated uncompressed NIfTI spans two lines."""
    image = _nifti(tmp_path / "t2.nii", np.ones((16, 16, 8)))
    image.write_bytes(image.read_bytes()[:600])
    with pytest.raises(InvalidInputError) as err:
        load_study(t2=image)
    assert "\n" not in str(err.value) and str(image) in str(err.value)
    assert str(image) in _cli_error(["inspect", "--t2", str(image)])


def test_empty_bval_file_is_one_line(tmp_path: Path) -> None:
    dwi = _nifti(tmp_path / "dwi.nii.gz", np.ones((8, 8, 3, 3)))
    (tmp_path / "dwi.bval").write_text("")
    with warnings.catch_warnings(record=True) as caught:  # numpy's would print 2 more lines
        warnings.simplefilter("always")
        line = _cli_error(["inspect", "--dwi", str(dwi), "--bval", str(tmp_path / "dwi.bval")])
    assert "has 0 b-values" in line
    assert not [w for w in caught if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize("label", ["", "sub-", " -_"])
def test_subject_label_without_letters_or_digits(tmp_path: Path, label: str) -> None:
    t2 = _nifti(tmp_path / "t2.nii.gz", np.ones((8, 8, 3)))
    with pytest.raises(InvalidInputError, match="has no letter or digit"):
        load_study(t2=t2, subject=label)
    out = tmp_path / "O"
    line = _cli_error(["analyze", "--t2", str(t2), "--subject", label, "--out", str(out)])
    assert "has no letter or digit" in line and not out.exists()


def test_bval_without_dwi_is_named_before_the_missing_input(tmp_path: Path) -> None:
    bval = tmp_path / "x.bval"
    bval.write_text("0 800\n")
    assert "--bval/--bvec given without --dwi" in _cli_error(["inspect", "--bval", str(bval)])


def _jpeg_series(folder: Path) -> Path:
    """A one-slice series whose pixel data dcm2niix cannot decode (JPEG, 16-bit)."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    written = write_series(
        folder, np.full((16, 16, 1), 500), description="T1_SAG_JPEG", series_number=9,
        study_uid=generate_uid(), frame_uid=generate_uid(),
    )  # fmt: skip
    path = written.files[0]
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8not a jpeg\xff\xd9"])
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_series_dcm2niix_cannot_convert_gives_its_reason(tmp_path: Path) -> None:
    victim = _jpeg_series(tmp_path / "jpeg")
    with pytest.raises(InvalidInputError) as err:  # alone: the error says why
        load_study(tmp_path)
    assert str(victim) in str(err.value) and "dcm2niix converted nothing" in str(err.value)
    assert "Transfer Syntax" in str(err.value)
    _t2_series(tmp_path / "t2")  # with a good T2: skipped, the reason in the warnings
    study = load_study(tmp_path)
    assert study.t2 is not None
    warned = [w for w in study.warnings if "converted nothing" in w]
    assert len(warned) == 1 and "Transfer Syntax" in warned[0]


def test_a_dwi_with_the_wrong_b_value_count_in_a_nifti_folder_is_still_an_error(
    tmp_path: Path,
) -> None:
    """Only files that cannot be opened are skipped: a DWI whose .bval does not match it
    must not be dropped (the study would run without ADC and exit 0)."""
    _nifti(tmp_path / "t2.nii.gz", np.ones((8, 8, 3)))
    _nifti(tmp_path / "dwi.nii.gz", np.ones((8, 8, 3, 3)))
    (tmp_path / "dwi.bval").write_text("0 500\n")
    with pytest.raises(InvalidInputError) as err:
        load_study(tmp_path)
    assert str(tmp_path / "dwi.bval") in str(err.value) and "has 2 b-values" in str(err.value)


def test_a_huge_integer_series_number_is_read(tmp_path: Path) -> None:
    image = _nifti(tmp_path / "t2.nii.gz", np.ones((8, 8, 3)))
    (tmp_path / "t2.json").write_text('{"SeriesNumber": ' + "9" * 30 + "}")
    study = load_study(t2=image)
    assert study.t2 is not None and study.t2.provenance.series_number == int("9" * 30)


@pytest.mark.parametrize(
    ("tag", "value", "problem"),
    [
        ("ImagePositionPatient", None, "invalid plane geometry"),
        ("ImagePositionPatient", [-60.0, -60.0], "invalid plane geometry"),
        ("SeriesNumber", ["7", "8"], None),  # not one number: read as no number
    ],
)
def test_a_damaged_header_value_in_another_series_does_not_stop_the_import(
    tmp_path: Path, tag: str, value: Any, problem: str | None
) -> None:
    """An empty or two-valued ImagePositionPatient, or a two-valued SeriesNumber, in an
    irrelevant axial series raised TypeError/IndexError: a traceback, exit 1."""
    import pydicom

    good = _t2_series(tmp_path / "sag")
    axial = _axial_series(tmp_path / "ax", 4, "T2_TSE_TRA")
    for path in axial.files:
        ds = pydicom.dcmread(path)
        setattr(ds, tag, value)
        ds.save_as(path, enforce_file_format=True)
    study = load_study(tmp_path)
    assert study.t2 is not None and study.t2.provenance.source_paths[0] == good.files[0]
    skipped = [w for w in study.warnings if "series skipped" in w]
    if problem is None:
        assert not skipped and len(study.series) == 2
    else:
        assert len(skipped) == 1 and problem in skipped[0]
        assert skipped[0].startswith(str(axial.files[0].relative_to(tmp_path)))


def test_inspect_prints_brackets_in_names_as_text(tmp_path: Path) -> None:
    """Descriptions went through rich markup: "[/tra]" raised MarkupError (a traceback,
    exit 1) and "[fs]" vanished from the table."""
    _nifti(tmp_path / "t2.nii.gz", np.ones((8, 8, 3)))
    (tmp_path / "t2.json").write_text('{"SeriesDescription": "T2 sag [fs] [/tra]"}')
    result = CliRunner().invoke(app, ["inspect", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "T2 sag [fs] [/tra]" in result.stdout


def test_a_folder_of_two_patients_is_refused(tmp_path: Path) -> None:
    # One patient's T2 masks were laid over the other's ADC map, with exit 0 and only a
    # frame-of-reference warning.
    from tests.io.dicom_factory import PHI, write_lumbar_study

    write_lumbar_study(tmp_path / "both" / "p1")
    other = {**PHI, "PatientID": "PIDX-OTHER-2", "PatientName": "Other^Person"}
    write_lumbar_study(tmp_path / "both" / "p2", phi=other, seed=1)
    with pytest.raises(InvalidInputError, match="image series of 2 patients") as err:
        load_study(tmp_path / "both")
    assert "PIDX" not in str(err.value) and "Other" not in str(err.value)  # no identifiers
    # one patient's two studies (another StudyInstanceUID) are still one study folder
    write_lumbar_study(tmp_path / "same" / "visit1")
    write_lumbar_study(tmp_path / "same" / "visit2", seed=1)
    assert load_study(tmp_path / "same").t2 is not None


@pytest.mark.parametrize("name", ["ANONYMIZED", "PHANTOM^SYNTHETIC", "Anonymous^Patient"])
def test_two_patients_sharing_a_placeholder_name_are_refused(tmp_path: Path, name: str) -> None:
    """An export that wrote one placeholder name for every patient (IDs kept, each its own
    study) was read as one patient: one's T2 masks on the other's ADC map, exit 0 (a
    user trial)."""
    from tests.io.dicom_factory import PHI, write_lumbar_study

    for i in (1, 2):
        phi = {**PHI, "PatientID": f"SUBJ00{i}", "PatientName": name}
        write_lumbar_study(tmp_path / "both" / f"p{i}", phi=phi, seed=i)
    with pytest.raises(InvalidInputError, match="image series of 2 patients"):
        load_study(tmp_path / "both")


def test_the_diffusion_of_the_t2s_visit_is_used(tmp_path: Path) -> None:
    """One patient's two visits, each a T2 and a DWI: the first visit's T2 was measured on
    the second visit's DWI (more b-values won; a user trial). The DWI and the scanner ADC
    map of the T2's own study are used, whatever their size."""
    from tests.io.dicom_factory import write_lumbar_study

    first = write_lumbar_study(tmp_path / "pt" / "visit1", t2_slices=6)
    write_lumbar_study(tmp_path / "pt" / "visit2", t2_slices=5, bvals=(0, 200, 400, 800), seed=1)
    study = load_study(tmp_path / "pt")
    assert study.t2 is not None and study.dwi is not None and study.adc is not None
    assert study.t2.provenance.source_paths[0] in first.series["t2"].files
    assert study.dwi.provenance.source_paths[0] in first.series["dwi"].files
    assert study.adc.provenance.source_paths[0] in first.series["adc"].files
    assert len(study.dwi.bvals_s_per_mm2) == 3  # not the other visit's 4 b-values
    (said,) = [w for w in study.warnings if "series of 2 studies" in w]
    assert "analyse each study's folder on its own" in said


def test_the_adc_map_of_the_t2s_visit_goes_before_another_visits_dwi(tmp_path: Path) -> None:
    """The T2's visit has its scanner's ADC map but no DWI, the other visit a DWI: the
    T2's discs were measured on the other visit's DWI, flagged frames_of_reference_differ
    (an audit). The ADC map of the T2's own visit is used; a DWI given explicitly stays."""
    import shutil
    from dataclasses import replace

    from tests.io.dicom_factory import write_lumbar_study

    from discquant.io.roles import set_aside_other_visits_dwi

    first = write_lumbar_study(tmp_path / "pt" / "visit1", t2_slices=6)
    second = write_lumbar_study(tmp_path / "pt" / "visit2", t2_slices=5, seed=1)
    shutil.rmtree(first.series["dwi"].folder)
    study = load_study(tmp_path / "pt")
    assert study.t2 is not None and study.adc is not None
    assert study.t2.provenance.source_paths[0] in first.series["t2"].files
    assert study.adc.provenance.source_paths[0] in first.series["adc"].files
    assert study.dwi is None
    (other,) = [
        s for s in study.series if s.provenance.source_paths[0] in second.series["dwi"].files
    ]
    assert other.role is SeriesRole.OTHER and other.reason.startswith("DWI of another study")
    (said,) = [w for w in study.warnings if "not used, a DWI of another visit" in w]
    assert said.startswith("visit2/")
    # Given explicitly (--dwi), the user's DWI is kept.
    series = [replace(s, role=SeriesRole.DWI) if s is other else s for s in study.series]
    for given in (False, True):
        explicit = [s.role is SeriesRole.DWI and given for s in series]
        kept = set_aside_other_visits_dwi(series, explicit=explicit)
        assert [s.role for s in kept].count(SeriesRole.DWI) == int(given)


def test_a_series_file_withholds_folder_names_that_hold_the_patients_identifiers(
    tmp_path: Path,
) -> None:
    """`file` in inspect and in the results' provenance kept the folders below the input:
    an export's NAME_MRN folder put the patient's ID into results.json (a review)."""
    from tests.io.dicom_factory import write_lumbar_study

    write_lumbar_study(tmp_path / "export" / "PIDX-8675309-Q_ZYXWVUT")
    study = load_study(tmp_path / "export")
    assert study.t2 is not None
    file = study.series_file(study.t2)
    assert file.startswith("(withheld)/a/b/s0003/") and "PIDX" not in file


@pytest.mark.parametrize("json_out", [False, True])
def test_inspect_lists_the_series_of_each_patient_then_refuses(
    tmp_path: Path, json_out: bool
) -> None:
    """`inspect` refused a folder of two patients like every other command, without
    saying which series were whose: it now lists them by patient number and folder."""
    from tests.io.dicom_factory import PHI, write_lumbar_study

    write_lumbar_study(tmp_path / "both" / "p1")
    other = {**PHI, "PatientID": "PIDX-OTHER-2", "PatientName": "Other^Person"}
    write_lumbar_study(tmp_path / "both" / "p2", phi=other, seed=1)
    args = ["inspect", str(tmp_path / "both"), *(["--json"] if json_out else [])]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and "image series of 2 patients" in errors[0], result.stderr
    assert "PIDX" not in result.output and "Other" not in result.output  # no identifiers
    if json_out:
        listed = json.loads(result.stdout)
        assert listed["patients"] == 2
        by_patient = {p: {r["folder"].split("/")[0] for r in listed["series"] if r["patient"] == p}
                      for p in (1, 2)}  # fmt: skip
        assert by_patient == {1: {"p1"}, 2: {"p2"}} or by_patient == {1: {"p2"}, 2: {"p1"}}
        assert all(r["files"] > 0 for r in listed["series"])
    else:
        # words, not lines: rich wraps the title where the temporary path is long
        shown = " ".join(result.stdout.split())
        assert "series of 2 patients" in shown
        assert "p1" in shown and "p2" in shown


def test_one_patient_anonymised_series_by_series_is_one_patient(tmp_path: Path) -> None:
    # An anonymiser that emptied the PatientID of one series (the name kept), or gave a
    # series an ID of its own in the same study, made the folder "2 patients".
    import pydicom
    from tests.io.dicom_factory import write_lumbar_study

    written = write_lumbar_study(tmp_path / "anon")
    for key, patient_id in (("dwi", ""), ("adc", "ANON-7f3a9c")):
        for f in written.series[key].files:
            ds = pydicom.dcmread(f)
            ds.PatientID = patient_id
            if key == "adc":
                ds.PatientName = "Anon^Series"
            ds.save_as(f)
    study = load_study(tmp_path / "anon")
    assert study.t2 is not None and study.dwi is not None and study.adc is not None


def test_a_bids_dataset_root_is_refused(tmp_path: Path) -> None:
    # Its subjects' DICOM beside them (a phantom's dicom/ folder) was read as one study.
    from tests.io.dicom_factory import write_lumbar_study

    for sub in ("sub-01", "sub-02"):
        (tmp_path / "ds" / sub / "anat").mkdir(parents=True)
        img = nib.Nifti1Image(np.ones((4, 4, 3), np.float32), np.eye(4))
        nib.save(img, tmp_path / "ds" / sub / "anat" / f"{sub}_T2w.nii.gz")
    write_lumbar_study(tmp_path / "ds" / "dicom")
    res = CliRunner().invoke(app, ["analyze", str(tmp_path / "ds"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert "a BIDS dataset with 2 subject folder(s)" in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("name", "compress", "rename"),
    [("x_T2w.nii", True, "x_T2w.nii.gz"), ("x_T2w.nii.gz", False, "x_T2w.nii")],
)
def test_a_nifti_whose_name_and_compression_disagree_says_what_to_rename_it_to(
    tmp_path: Path, name: str, compress: bool, rename: str
) -> None:
    """nibabel goes by the name: a gzip file named .nii was "Cannot work out file type"
    (a user trial)."""
    from discquant.errors import UnreadableImageError
    from discquant.io.nifti import read_volume

    plain = tmp_path / "plain.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 3), np.float32), np.eye(4)), str(plain))
    data = plain.read_bytes()
    (tmp_path / name).write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(UnreadableImageError, match=f"rename it to {rename}$"):
        read_volume(tmp_path / name)
    (tmp_path / rename).write_bytes((tmp_path / name).read_bytes())
    assert read_volume(tmp_path / rename).data.shape == (4, 4, 3)  # renamed as said, it reads


def test_a_damaged_gzip_stream_is_one_unreadable_image_error(tmp_path: Path) -> None:
    """The renaming hint read the stream and let zlib.error out: a traceback, exit 1,
    where the file had been a one-line error (a review)."""
    from discquant.errors import UnreadableImageError
    from discquant.io.nifti import read_volume

    plain = tmp_path / "plain.nii"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 3), np.float32), np.eye(4)), str(plain))
    packed = bytearray(gzip.compress(plain.read_bytes()))
    packed[20:40] = b"\xff" * 20  # the deflate stream, not its header
    damaged = tmp_path / "x_T2w.nii.gz"
    damaged.write_bytes(bytes(packed))
    with pytest.raises(UnreadableImageError, match="not a readable NIfTI image"):
        read_volume(damaged)


@pytest.mark.parametrize("numbering", ["interleaved", "shuffled"])
def test_a_dwi_that_dcm2niix_stacks_out_of_place_is_set_aside(
    tmp_path: Path, numbering: str
) -> None:
    """Instance numbers in an interleaved acquisition order, or in no order: dcm2niix
    stacked the slices out of place (the second: each volume mixing b-values) and the
    scrambled DWI was measured, exit 0, no warning (an audit). Its
    console said "order is not spatial", as it does for series it stacks correctly; the
    converted volumes are now checked against the source images."""
    import pydicom
    from tests.io.dicom_factory import write_lumbar_study

    n = 5
    written = write_lumbar_study(tmp_path / "study", dwi_slices=n)
    acquired = [*range(0, n, 2), *range(1, n, 2)]  # slices 0, 2, 4, 1, 3
    shuffled = np.random.default_rng(1).permutation(3 * n)
    for i, path in enumerate(written.series["dwi"].files):  # volume by volume, then slice
        volume, k = divmod(i, n)
        ds = pydicom.dcmread(path)
        ds.PixelData = (ds.pixel_array + 40 * k).astype(np.uint16).tobytes()  # slices differ
        ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]  # one piece, not two
        if numbering == "interleaved":
            ds.InstanceNumber = volume * n + acquired.index(k) + 1
        else:  # numbered in no order at all (no two alike: dcm2niix's ties vary by run)
            ds.InstanceNumber = int(shuffled[i]) + 1
        ds.save_as(path)
    study = load_study(written.root)
    assert study.dwi is None
    assert study.adc is not None and study.adc.description == "ep2d_diff_tra_sag_ADC"
    (said,) = [w for w in study.warnings if "out of place" in w]
    named = re.match(
        r"a/s0005/IM(\d{4}): dcm2niix stacked series 5 'ep2d_diff_tra_sag b0 400 800' out of "
        r"place: this file's image \(b = (\d+) s/mm²\) is not at its own position",
        said,
    )
    assert named is not None, said
    # the file named and its own b-value (files are written volume by volume)
    assert float(named[2]) == written.series["dwi"].bvals[(int(named[1]) - 1) // n]
    assert said.endswith("series skipped")


def test_an_archive_in_a_dicom_folder_is_said_not_passed_by(tmp_path: Path) -> None:
    """A zip beside the T2 that held the DWI was passed by without a word, as a document
    (the study went on as a T2 alone); a folder holding only a zip read "no DICOM files
    found (looked at 1 files, any depth)" (an audit)."""
    import zipfile

    from tests.io.dicom_factory import write_lumbar_study

    written = write_lumbar_study(tmp_path / "study")
    archive = tmp_path / "study" / "dwi.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in written.series["dwi"].files:
            z.write(path, path.name)
            path.unlink()
    study = load_study(written.root)
    assert study.dwi is None and study.t2 is not None
    assert "dwi.zip: an archive, not read; unpack it to use its images" in study.warnings
    alone = tmp_path / "alone"
    alone.mkdir()
    archive.rename(alone / "dwi.zip")
    with pytest.raises(InputNotFoundError, match=r"1 archive\(s\) not read: unpack them"):
        load_study(alone)
    with pytest.raises(InvalidInputError, match="an archive: unpack it and give its folder"):
        load_study(alone / "dwi.zip")


@pytest.mark.parametrize("stripped", ["b-value tags removed", "b-values read as 0"])
def test_diffusion_volumes_without_b_values_are_named_not_taken_for_a_trace(
    tmp_path: Path, stripped: str
) -> None:
    """An anonymiser that strips the b-value tags leaves a DWI whose b-values dcm2niix
    cannot find (none, or 0 for each volume): the series became a b = 0 "trace" image,
    and the study went on without its DWI and without a word (an audit)."""
    import pydicom
    from tests.io.dicom_factory import write_lumbar_study

    written = write_lumbar_study(tmp_path / "study")
    for path in written.series["dwi"].files:
        ds = pydicom.dcmread(path)
        if stripped == "b-value tags removed":
            del ds[0x0018, 0x9087]
            del ds[0x0018, 0x9075]
        else:
            ds[0x0018, 0x9087].value = 0.0
        ds.ImageType = ["DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"]
        ds.save_as(path)
    study = load_study(written.root)
    assert study.dwi is None and not [s for s in study.series if s.role is SeriesRole.TRACE]
    assert study.adc is not None  # the scanner's map is used, as the study has one
    # dcm2niix writes no .bval here either way (it wrote 0 0 0 for the audit's phantom)
    assert (
        "a/s0005/IM0001: 3 diffusion volumes without b-values; not used: their b-values "
        "cannot be told (private tags removed by an anonymiser?)"
    ) in study.warnings
    from discquant.io.nifti import RawImage
    from discquant.io.roles import to_series
    from discquant.io.study import Volume

    raw = RawImage(
        path=tmp_path / "dwi.nii.gz",
        volume=Volume(np.ones((4, 4, 2, 3), np.float32), np.eye(4)),
        description="DWI",
        sidecar={"ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"]},
        bvals=np.zeros(3),
    )
    assert to_series(raw).reason == (
        "3 diffusion volumes, all at b = 0; not used: their b-values cannot be told (private "
        "tags removed by an anonymiser?)"
    )
    raw.sidecar = {}  # a BIDS b = 0 run (dir-PA), no scanner's ImageType: no such guess
    assert "private tags" not in to_series(raw).reason


def test_series_numbers_of_two_visits_are_not_called_the_later_acquisition(
    tmp_path: Path,
) -> None:
    """Two visits' T2s alike but for their series numbers, which restart in each study:
    the one of the higher number was used as "the later acquisition", though the other
    visit was the later one (an audit)."""
    import pydicom
    from tests.io.dicom_factory import write_lumbar_study

    write_lumbar_study(tmp_path / "pt" / "visit1")
    later = write_lumbar_study(tmp_path / "pt" / "visit2")
    for path in later.series["t2"].files:  # the later visit's T2 is its series 2
        ds = pydicom.dcmread(path)
        ds.SeriesNumber = 2
        ds.save_as(path)
    study = load_study(tmp_path / "pt")
    (said,) = [w for w in study.warnings if w.startswith("2 T2 series are alike")]
    assert (
        "the higher series number, though they are of different studies, whose numbers do "
        "not say which visit is later"
    ) in said
    assert "the later acquisition" not in said


def test_a_sagittal_dwi_goes_before_an_axial_one_of_more_shells(tmp_path: Path) -> None:
    """An axial DWI of four shells beside the sagittal DWI of three was measured, with a
    warning (an audit): an axial stack often holds a few discs, a sagittal one all."""
    from tests.io.dicom_factory import write_lumbar_study

    written = write_lumbar_study(tmp_path / "study")
    dwi = np.stack(
        [np.full((32, 32, 3), 1000.0 * np.exp(-b * 1e-3)) for b in (0, 200, 400, 800)], -1
    )
    write_series(
        tmp_path / "study" / "ax",
        np.rint(dwi).astype(np.uint16),
        description="ep2d_diff_tra b0 200 400 800",
        series_number=9,
        study_uid=written.study_instance_uid,
        frame_uid=written.frame_of_reference_uid,
        iop=AXIAL_IOP,
        origin_lps=(-60.0, -60.0, 0.0),
        pixel_mm=2.0,
        bvals=(0.0, 200.0, 400.0, 800.0),
    )
    study = load_study(written.root)
    assert study.dwi is not None and study.dwi.description == "ep2d_diff_tra_sag b0 400 800"
    (said,) = [w for w in study.warnings if w.startswith("2 DWI series: used")]
    assert said.startswith("2 DWI series: used a/s0005/IM0001 (sagittal; not ax/IM0001)")


@pytest.mark.parametrize(("suffix", "kind"), [(".img", "Analyze"), (".mgz", "MGH")])
def test_an_image_nibabel_reads_that_is_not_nifti_is_refused_in_one_line(
    tmp_path: Path, suffix: str, kind: str
) -> None:
    """An Analyze .img or a FreeSurfer .mgz ended in a traceback (exit 1) in `segment`:
    their headers have no NIfTI spatial units (an audit)."""
    data = np.ones((8, 8, 3), np.int16)
    src = tmp_path / f"t2{suffix}"
    image_type: Any = nib.Spm2AnalyzeImage if kind == "Analyze" else nib.MGHImage
    nib.save(image_type(data, np.eye(4)), src)
    out = tmp_path / "seg.nii.gz"
    result = CliRunner().invoke(app, ["segment", str(src), "-o", str(out)])
    assert result.exit_code == 2, result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.strip()]
    message = f"discquant: error: {src}: {kind} format, not NIfTI: convert it to NIfTI (.nii.gz)"
    assert errors == [message] and not out.exists()
