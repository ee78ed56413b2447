"""Odd files in a DICOM tree: a private transfer syntax, float Parametric Maps, and
files whose header fails a check cost that file (or its series) with a warning, never
the study."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID, generate_uid
from tests.io.dicom_factory import WrittenSeries, WrittenStudy, write_lumbar_study
from typer.testing import CliRunner

import discquant.io.dicom as dicom
from discquant.cli import app
from discquant.io.load import load_study
from discquant.io.study import SeriesRole, Study

PHILIPS_PRIVATE_TS = "1.3.46.670589.33.1.4.1"
PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"


def _study(tmp_path: Path) -> WrittenStudy:
    return write_lumbar_study(tmp_path / "study", dwi_slices=5)


def _assert_t2_and_dwi(study: Study) -> None:
    assert study.t2 is not None and study.t2.description == "T2_TSE_SAG"
    assert study.dwi is not None and study.dwi.bvals_s_per_mm2 is not None
    np.testing.assert_allclose(study.dwi.bvals_s_per_mm2, [0.0, 400.0, 800.0], atol=1e-6)


def _as_parametric_map(series: WrittenSeries, keyword: str) -> np.ndarray:
    """Re-save ``series`` (the scanner ADC, integers in 10⁻⁶ mm²/s) as Parametric Map
    Storage with float pixels in mm²/s; returns the floats written, all slices."""
    dtype, bits = {"FloatPixelData": (np.float32, 32), "DoubleFloatPixelData": (np.float64, 64)}[
        keyword
    ]
    uid = generate_uid()
    written = []
    for f in series.files:
        ds = pydicom.dcmread(f)
        values = (ds.pixel_array.astype(np.float64) * 1e-6).astype(dtype)
        del ds.PixelData
        for kw in ("PixelRepresentation", "RescaleSlope", "RescaleIntercept"):
            if kw in ds:
                del ds[kw]
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(PARAMETRIC_MAP)
        ds.SeriesInstanceUID = uid
        ds.BitsAllocated = ds.BitsStored = bits
        ds.HighBit = bits - 1
        setattr(ds, keyword, values.tobytes())
        ds.save_as(f)
        written.append(values)
    return np.stack(written)


def test_private_transfer_syntax_file_is_passed_to_dcm2niix(tmp_path: Path) -> None:
    """pydicom 3 raised "UID is not a transfer syntax." on the size check and the import
    crashed; the file is now its own series, which dcm2niix cannot convert: skipped with a
    warning naming it."""
    written = _study(tmp_path)
    ds = pydicom.dcmread(written.series["adc"].files[0])
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 99
    ds.file_meta.TransferSyntaxUID = UID(PHILIPS_PRIVATE_TS)
    odd = written.root / "extra_private_ts.dcm"
    ds.save_as(odd, enforce_file_format=False)

    study = load_study(written.root)
    _assert_t2_and_dwi(study)
    assert study.adc is not None and study.adc.adc_scale_to_um2_per_ms == pytest.approx(1e-3)
    warned = [w for w in study.warnings if w.startswith("extra_private_ts.dcm: ")]
    assert len(warned) == 1, study.warnings
    assert "dcm2niix converted nothing from series 99" in warned[0]
    assert warned[0].endswith("series skipped")

    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["inspect", str(written.root)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "warning: extra_private_ts.dcm: dcm2niix converted nothing" in result.output


def test_header_check_failure_skips_only_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception while checking one header (here KeyError from the geometry) costs
    that file's series with a warning naming the file, not the study."""
    written = _study(tmp_path)
    victim = written.series["adc"].files[1]  # the middle slice: its series breaks
    geometry = dicom._geometry

    def failing(ds: object, path: Path) -> list[tuple[Path, dicom._Slice]]:
        if path == victim:
            raise KeyError("odd vendor header")
        return geometry(ds, path)

    monkeypatch.setattr(dicom, "_geometry", failing)
    study = load_study(written.root)
    _assert_t2_and_dwi(study)
    assert study.adc is None
    assert [w for w in study.warnings if "header could not be checked" in w] == [
        f"{victim.relative_to(written.root)}: header could not be checked "
        "(KeyError: 'odd vendor header'); its series is incomplete without it; series skipped"
    ]


def test_a_series_stored_twice_is_read_once_with_a_warning(tmp_path: Path) -> None:
    """The T2's files copied into a second folder (exported twice) went to dcm2niix and
    the SEG writer twice: no warning, and the SEG failed ("Plane positions must not
    contain duplicates", naming no file). Each image is kept once, the copies named."""
    import shutil

    written = _study(tmp_path)
    t2 = written.series["t2"]
    shutil.copytree(t2.folder, written.root / "zz_copy")  # read after the original
    study = load_study(written.root)
    _assert_t2_and_dwi(study)
    assert study.t2 is not None
    assert list(study.t2.provenance.sop_instance_uids) == t2.sop_instance_uids
    assert len(study.t2.provenance.source_paths) == len(t2.files)
    assert study.t2.image.shape[2] == len(t2.files)
    first = sorted(t2.files)[0].name
    assert [w for w in study.warnings if "the same image" in w] == [
        f"zz_copy/{first}: the same image (SOP Instance UID) as "
        f"{t2.folder.relative_to(written.root)}/{first} in series {t2.series_number} "
        f"'{t2.description}'; the copy is ignored (and {len(t2.files) - 1} more copies)"
    ]


@pytest.mark.parametrize("damage", ["missing", "garbage-header"])
def test_a_dwi_missing_one_image_is_skipped_naming_the_file(tmp_path: Path, damage: str) -> None:
    """One DWI file removed, or its header overwritten with noise after the DICM prefix:
    dcm2niix converted nothing ("Recompiling with '-DmyInstanceNumberOrderIsNotSpatial'
    might help"), the warning named the series' intact first file, and the damaged file
    was passed by without a word (trial C)."""
    written = _study(tmp_path)
    files = sorted(written.series["dwi"].files)
    victim = files[7]
    if damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:132] + np.random.default_rng(0).bytes(3000))
    study = load_study(written.root)
    assert study.dwi is None and study.t2 is not None
    skipped = [w for w in study.warnings if w.endswith("series skipped")]
    assert len(skipped) == 1, study.warnings
    assert "Recompiling" not in skipped[0]
    # inspect --json says so too: the series was simply absent, stderr empty
    result = CliRunner().invoke(app, ["inspect", "--json", str(written.root)])
    assert result.exit_code == 0 and result.stderr == ""
    doc = json.loads(result.stdout)
    assert doc["warnings"] == list(study.warnings)
    assert "dwi" not in {s["role"] for s in doc["series"]}
    if damage == "missing":
        # named: a file at the slice position left with fewer images
        named = written.root / skipped[0].split(":")[0]
        assert named in files and named != files[0]
        assert "has 2 image(s) at this file's slice position and 3 at most others" in skipped[0]
    else:
        assert skipped[0].startswith(
            f"{victim.relative_to(written.root)}: damaged DICOM header (no SOP class, series "
            "or pixel data); series 5 "
        ), skipped[0]


def test_a_screen_save_without_plane_geometry_does_not_stop_the_import(tmp_path: Path) -> None:
    """A secondary capture with no ImagePositionPatient/ImageOrientationPatient has no
    slice positions: the check for missing DWI images raised "max() arg is an empty
    sequence", a traceback that failed the whole study (a review)."""
    written = _study(tmp_path)
    ds = pydicom.dcmread(written.series["t2"].files[0])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesNumber = 99
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient"):
        del ds[keyword]
    (written.root / "screen").mkdir()
    ds.save_as(written.root / "screen" / "SC0001.dcm")
    _assert_t2_and_dwi(load_study(written.root))


@pytest.mark.parametrize("keyword", ["FloatPixelData", "DoubleFloatPixelData"])
def test_parametric_map_adc_is_read(tmp_path: Path, keyword: str) -> None:
    """A float ADC map in mm²/s (Parametric Map Storage) was dropped without a word."""
    written = _study(tmp_path)
    floats = _as_parametric_map(written.series["adc"], keyword)
    study = load_study(written.root)
    _assert_t2_and_dwi(study)
    adc = study.adc
    assert adc is not None and adc.role is SeriesRole.ADC
    assert adc.description == "ep2d_diff_tra_sag_ADC"
    assert adc.provenance is not None and adc.provenance.sop_class_uid == PARAMETRIC_MAP
    assert adc.adc_scale_to_um2_per_ms == pytest.approx(1e3)
    assert adc.image.shape == (32, 32, 5)
    # 1.6 µm²/ms in the disc-like region, 0.5 elsewhere (float32: within 1e-6 relative)
    np.testing.assert_allclose(
        np.sort(adc.image.data.ravel()), np.sort(floats.ravel() * 1e3), rtol=1e-6
    )
    np.testing.assert_allclose(
        np.sort(adc.image.data.ravel()),
        np.sort(written.adc_mm2_per_s.ravel() * 1e3),
        rtol=1e-6,
    )
    assert not study.warnings, study.warnings


def test_truncated_float_pixel_data_is_reported(tmp_path: Path) -> None:
    """The size check counts 4 bytes per float; the cut file is named in a warning."""
    written = _study(tmp_path)
    _as_parametric_map(written.series["adc"], "FloatPixelData")
    victim = written.series["adc"].files[-1]  # an end slice: the rest stays regular
    victim.write_bytes(victim.read_bytes()[:-1000])
    study = load_study(written.root)
    _assert_t2_and_dwi(study)
    assert study.adc is not None and study.adc.image.shape == (32, 32, 4)
    assert list(study.warnings) == [
        f"{victim.relative_to(written.root)}: truncated DICOM file: 3096 of 4096 "
        "pixel-data bytes; skipped (the rest of its series is complete)"
    ]


def test_parametric_map_without_pixel_data_is_reported(tmp_path: Path) -> None:
    written = _study(tmp_path)
    _as_parametric_map(written.series["adc"], "FloatPixelData")
    victim = written.series["adc"].files[1]
    ds = pydicom.dcmread(victim)
    del ds.FloatPixelData
    ds.save_as(victim)
    study = load_study(written.root)
    _assert_t2_and_dwi(study)
    assert study.adc is None
    warned = [w for w in study.warnings if "no pixel data" in w]
    assert len(warned) == 1, study.warnings
    assert warned[0].startswith(f"{victim.relative_to(written.root)}: no pixel data ")
    assert warned[0].endswith("its series is incomplete without it; series skipped")


def test_uncompressed_ybr_full_422_file_is_not_truncated(tmp_path: Path) -> None:
    """YBR_FULL_422 stores 2 bytes per 3 samples (PS3.5 8.2.1): a complete 10 × 10
    8-bit file holds 200 pixel-data bytes, not 300, and is no truncated file."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = uid = generate_uid()
    ds.Rows = ds.Columns = 10
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(200)
    path = tmp_path / "ybr.dcm"
    ds.save_as(path, enforce_file_format=True)

    scan = dicom._scan([path], tmp_path / "staging")
    assert scan.truncated == []
    assert list(scan.series) == [uid]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"BitsAllocated": 16}, 200),  # no SamplesPerPixel, no PhotometricInterpretation: 1
        ({"BitsAllocated": 16, "NumberOfFrames": "0"}, 200),  # 0 frames read as one
        ({"BitsAllocated": 16, "NumberOfFrames": 3, "SamplesPerPixel": 1}, 600),
        ({"BitsAllocated": 8, "SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"}, 300),
        (
            {"BitsAllocated": 8, "SamplesPerPixel": 3, "PhotometricInterpretation": "YBR_FULL_422"},
            200,
        ),
        ({"BitsAllocated": 1}, 13),  # bit-packed, rounded up to whole bytes
    ],
)
def test_expected_pixel_bytes_of_a_header(
    header: dict[str, object], expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The size a complete file's pixel data has, also for headers pydicom's
    get_expected_length cannot size (no SamplesPerPixel: the truncation check stopped)
    or warns about in the log, once per file (NumberOfFrames 0)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows = ds.Columns = 10
    for key, value in header.items():
        setattr(ds, key, value)
    with caplog.at_level(logging.DEBUG):
        assert dicom._expected_pixel_bytes(ds) == expected
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]


def test_linked_series_folders_are_read_and_a_link_loop_is_walked_once(tmp_path: Path) -> None:
    """Archives and DataLad checkouts link series folders: a linked DWI folder beside a
    T2 was passed over without a word, and a folder of links read "folder is empty" (an
    audit)."""
    written = _study(tmp_path)
    links = tmp_path / "links"
    links.mkdir()
    for role in ("t2", "dwi"):
        (links / role).symlink_to(written.series[role].files[0].parent, target_is_directory=True)
    (links / "dwi" / "loop").symlink_to(links, target_is_directory=True)  # in the source
    (links / "up").symlink_to(tmp_path, target_is_directory=True)  # above the input
    (links / ".git").mkdir()  # a DataLad checkout's annex holds copies of the files
    (links / ".git" / "t2").symlink_to(written.series["t2"].files[0].parent)
    try:
        study = load_study(links)
    finally:
        (written.series["dwi"].files[0].parent / "loop").unlink()
    _assert_t2_and_dwi(study)
    assert dicom._files_under(links) == sorted(
        links / role / f.name for role in ("t2", "dwi") for f in written.series[role].files
    )


def test_a_nifti_file_in_a_dicom_folder_is_said_not_read(tmp_path: Path) -> None:
    """A NIfTI T2 beside a DICOM DWI was left out without a word, and the study analysed
    without a T2 (an audit). It is not read with the DICOM (a converted copy would be the
    same series twice): a warning says how to give it."""
    import shutil

    import nibabel as nib

    written = _study(tmp_path)
    folder = tmp_path / "mixed"
    shutil.copytree(written.series["dwi"].files[0].parent, folder / "dwi")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), folder / "t2.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), folder / "x.nii")
    study = load_study(folder)
    assert study.t2 is None and study.dwi is not None
    (said,) = [w for w in study.warnings if "NIfTI" in w]
    assert said == (
        "t2.nii.gz: a NIfTI file in a DICOM folder, not read (and 1 more); give it with "
        "--t2, --dwi or --adc"
    )
