"""A DICOM study written with pydicom is imported with the right roles, values and UIDs."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.io.dicom_factory import WrittenStudy
from typer.testing import CliRunner

from discquant.cli import app
from discquant.io.load import load_study
from discquant.io.study import SeriesRole, Study


def test_roles_and_order(lumbar_study: Study) -> None:
    roles = [s.role for s in lumbar_study.series]
    assert roles == [
        SeriesRole.T2,
        SeriesRole.DWI,
        SeriesRole.ADC,
        SeriesRole.OTHER,
        SeriesRole.OTHER,
    ]
    others = {s.description: s.reason for s in lumbar_study.series if s.role is SeriesRole.OTHER}
    assert "axial" in others["T2_TSE_TRA"]
    assert "localizer" in others["localizer"]


def test_t2_geometry_and_values(lumbar_dicom: WrittenStudy, lumbar_study: Study) -> None:
    t2 = lumbar_study.t2
    assert t2 is not None
    assert t2.orientation == "sagittal"
    assert t2.image.shape == (32, 32, 5)
    assert t2.image.voxel_mm == pytest.approx((1.0, 1.0, 4.0), abs=1e-4)
    # The slice normal of the written IOP is along L-R: the third voxel axis is R or L.
    assert t2.image.axcodes[2] in ("R", "L")
    written = lumbar_dicom.series["t2"].stored
    assert written is not None
    # dcm2niix may flip/transpose the in-plane axes; the multiset of values is invariant.
    np.testing.assert_array_equal(np.sort(t2.image.data.ravel()), np.sort(written.ravel()))


def test_dwi_bvals_and_decay(lumbar_study: Study) -> None:
    dwi, adc = lumbar_study.dwi, lumbar_study.adc
    assert dwi is not None and adc is not None
    assert dwi.bvals_s_per_mm2 is not None and dwi.bvecs is not None
    np.testing.assert_allclose(dwi.bvals_s_per_mm2, [0.0, 400.0, 800.0], atol=1e-6)
    assert dwi.bvecs.shape == (3, 3)
    assert "trace-weighted" in dwi.reason
    assert dwi.image.shape == (32, 32, 3, 3)
    # Volumes are in b-value order: ln(S0/S800)/800 reproduces the written ADC map
    # (signals are rounded integers near 280, so ±0.5/280/800 mm²/s ≈ 0.003 µm²/ms).
    s0, s800 = dwi.image.data[..., 0], dwi.image.data[..., 2]
    adc_from_dwi = np.log(s0 / s800) / 800.0 * 1e3
    np.testing.assert_allclose(adc_from_dwi, adc.image.data, atol=5e-3)


def test_adc_converted_to_um2_per_ms(lumbar_dicom: WrittenStudy, lumbar_study: Study) -> None:
    adc = lumbar_study.adc
    assert adc is not None
    assert adc.adc_scale_to_um2_per_ms == pytest.approx(1e-3)
    assert "10⁻⁶ mm²/s" in adc.reason
    truth_um2_per_ms = np.sort(lumbar_dicom.adc_mm2_per_s.ravel() * 1e3)
    np.testing.assert_allclose(np.sort(adc.image.data.ravel()), truth_um2_per_ms, atol=1e-6)
    assert float(adc.image.data.max()) == pytest.approx(1.6, abs=1e-6)  # disc-like region


def test_provenance_keeps_source_uids(lumbar_dicom: WrittenStudy, lumbar_study: Study) -> None:
    for role, key in ((SeriesRole.T2, "t2"), (SeriesRole.DWI, "dwi"), (SeriesRole.ADC, "adc")):
        series = lumbar_study.first(role)
        assert series is not None
        prov, written = series.provenance, lumbar_dicom.series[key]
        assert prov.series_instance_uid == written.series_instance_uid
        assert prov.study_instance_uid == lumbar_dicom.study_instance_uid
        assert prov.frame_of_reference_uid == lumbar_dicom.frame_of_reference_uid
        assert prov.sop_class_uid == "1.2.840.10008.5.1.4.1.1.4"
        assert sorted(prov.sop_instance_uids) == sorted(written.sop_instance_uids)
        assert prov.series_number == written.series_number
        assert set(prov.source_paths) == set(written.files)


def test_gzipped_dicom_gives_the_same_study(
    lumbar_dicom: WrittenStudy, lumbar_study: Study, tmp_path: Path
) -> None:
    # dcm2niix cannot read gzip'd DICOM itself; the importer decompresses them first.
    for src in lumbar_dicom.root.rglob("*"):
        if src.is_file():
            dst = tmp_path / "gz" / src.relative_to(lumbar_dicom.root)
            dst = dst.with_name(dst.name + ".gz")
            dst.parent.mkdir(parents=True, exist_ok=True)
            with src.open("rb") as fin, gzip.open(dst, "wb") as fout:
                shutil.copyfileobj(fin, fout)
    study = load_study(tmp_path / "gz")
    assert [s.role for s in study.series] == [s.role for s in lumbar_study.series]
    assert study.adc is not None and lumbar_study.adc is not None
    np.testing.assert_array_equal(study.adc.image.data, lumbar_study.adc.image.data)


def test_inspect_json(lumbar_dicom: WrittenStudy) -> None:
    result = CliRunner().invoke(app, ["inspect", "--json", str(lumbar_dicom.root)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert list(doc) == ["series", "warnings"] and doc["warnings"] == []
    first = doc["series"][0]
    assert {"role", "bvals", "shape", "voxel_mm", "description", "reason"} <= set(first)
    by_role = {s["role"]: s for s in reversed(doc["series"])}
    assert by_role["dwi"]["bvals"] == [0.0, 400.0, 800.0]
    # the directions as read, one per volume (they were not shown: an audit)
    study = load_study(lumbar_dicom.root)
    assert study.dwi is not None and study.dwi.bvecs is not None
    assert by_role["dwi"]["bvecs"] == np.round(study.dwi.bvecs, 6).tolist()
    assert len(by_role["dwi"]["bvecs"]) == 3 and by_role["t2"]["bvecs"] == []
    assert by_role["t2"]["shape"] == [32, 32, 5]
    assert by_role["t2"]["voxel_mm"] == pytest.approx([1.0, 1.0, 4.0])
    assert by_role["adc"]["adc_scale_to_um2_per_ms"] == pytest.approx(1e-3)


def test_non_image_dicom_objects_are_ignored_and_listed(tmp_path: Path) -> None:
    """A DICOM SEG and SR from an earlier analysis, stored in the study folder, are not
    image series: the SEG, named like a T2 with more slices, must not outrank the T2."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ComprehensiveSRStorage,
        ExplicitVRLittleEndian,
        SegmentationStorage,
        generate_uid,
    )
    from tests.io.dicom_factory import write_series

    study_uid, frame_uid = generate_uid(), generate_uid()
    rng = np.random.default_rng(2)
    t2 = write_series(
        tmp_path / "T2_TSE_SAG",
        rng.integers(100, 1000, size=(32, 32, 5)),
        description="T2_TSE_SAG",
        series_number=3,
        study_uid=study_uid,
        frame_uid=frame_uid,
    )
    seg = write_series(
        tmp_path / "derived",
        rng.integers(0, 2, size=(32, 32, 9)),
        description="T2 discs",
        series_number=900,
        study_uid=study_uid,
        frame_uid=frame_uid,
        file_prefix="SEG",
    )
    for f in seg.files:
        ds = pydicom.dcmread(f)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SegmentationStorage
        ds.save_as(f)
    sr = Dataset()
    sr.SOPClassUID, sr.SOPInstanceUID = ComprehensiveSRStorage, generate_uid()
    sr.StudyInstanceUID, sr.SeriesInstanceUID = study_uid, generate_uid()
    sr.Modality, sr.SeriesDescription = "SR", "T2 disc measurements"
    sr.file_meta = FileMetaDataset()
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr_path = tmp_path / "derived" / "report_sr.dcm"
    sr.save_as(sr_path, enforce_file_format=True)

    study = load_study(tmp_path)
    assert [s.provenance.series_instance_uid for s in study.series] == [t2.series_instance_uid]
    assert study.t2 is not None
    seg_first = sorted(seg.files)[0].relative_to(tmp_path)
    assert study.warnings == (
        f"{seg_first}: Segmentation Storage object, not an image; ignored (and 8 more like it)",
        f"{sr_path.relative_to(tmp_path)}: Comprehensive SR Storage object, not an image; ignored",
    )
    # discquant's own SEG and SR (an output folder inside the study folder) are passed
    # by without a warning: every rerun warned about them (a user trial)
    for f in [*seg.files, sr_path]:
        ds = pydicom.dcmread(f)
        ds.Manufacturer = "discquant"
        ds.save_as(f)
    again = load_study(tmp_path)
    assert again.warnings == () and again.t2 is not None


@pytest.mark.parametrize("bvals", [(0.0, 800.0), (0.0, 400.0, 800.0)])
def test_a_dcm2niix_output_folder_keeps_its_dwi(tmp_path: Path, bvals: tuple[float, ...]) -> None:
    """dcm2niix writes a b=0 (ORIGINAL) + TRACEW series as two files with one b-value
    each; read as a NIfTI folder the DWI was lost (0/800: a TRACE and an 'other') or lost
    its b=0 (0/400/800), while the same DICOM read by discquant joined them."""
    import subprocess

    from tests.io.dicom_factory import write_lumbar_study

    from discquant.io.dicom import dcm2niix_binary

    written = write_lumbar_study(tmp_path / "dicom", size=16, bvals=bvals)
    out = tmp_path / "nifti"
    out.mkdir()
    subprocess.run(
        [dcm2niix_binary(), "-b", "y", "-ba", "y", "-z", "y", "-o", str(out), str(written.root)],
        check=True,
        capture_output=True,
    )
    assert len(list(out.glob("*.bval"))) == 2  # the two pieces this test is about
    from_dicom, from_nifti = load_study(written.root), load_study(out)
    assert from_nifti.dwi is not None and from_dicom.dwi is not None
    np.testing.assert_allclose(np.unique(from_nifti.dwi.bvals_s_per_mm2), bvals)
    np.testing.assert_array_equal(from_nifti.dwi.bvals_s_per_mm2, from_dicom.dwi.bvals_s_per_mm2)
    np.testing.assert_array_equal(from_nifti.dwi.image.data, from_dicom.dwi.image.data)
    assert len(from_nifti.dwi.provenance.source_paths) >= 2  # both files were read


def test_inspect_table_keeps_reasons_whole_at_80_columns(lumbar_dicom: WrittenStudy) -> None:
    # At 80 columns (rich's width whenever the output is piped) the reason column was 8
    # characters wide: "trace-we|ighted". The reasons are now listed under the table.
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["inspect", str(lumbar_dicom.root)])
    assert result.exit_code == 0, result.output
    doc = json.loads(CliRunner().invoke(app, ["inspect", "--json", str(lumbar_dicom.root)]).stdout)
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for number, series in enumerate(doc["series"], start=1):
        first_words = f"{number:>2d} {series['role']}: {series['reason']}"[:60]
        assert any(line.startswith(first_words) for line in lines), (first_words, lines)


def test_a_dcm2niix_killed_by_a_signal_stops_the_import(
    lumbar_dicom: WrittenStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a cohort reached dcm2niix (the workers ignore it; their children did
    not): its killed conversion read as "converted nothing, series skipped", the study
    was analysed without that series and recorded complete, and resume never redid it (a
    user trial). A killed converter now stops the study's import (exit 130 on the CLI;
    a cohort records the study failed, so its next run redoes it)."""
    from discquant.errors import ConversionStoppedError

    converted = _first_conversion_ends(monkeypatch, -2)  # SIGINT
    with pytest.raises(ConversionStoppedError, match="stopped by signal 2") as err:
        load_study(lumbar_dicom.root)
    assert err.value.exit_code == 130
    assert len(converted) == 1  # no later series was converted after it


def test_a_dcm2niix_crash_on_one_series_skips_that_series(
    lumbar_dicom: WrittenStudy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segfault (dcm2niix has crashed on odd data) is the series' fault, not a stop from
    outside: that series is skipped with a warning and the others are read (a review of
    the fix above: every signal had stopped the study)."""
    _first_conversion_ends(monkeypatch, -11)  # SIGSEGV
    study = load_study(lumbar_dicom.root)
    (warning,) = [w for w in study.warnings if "crashed (signal 11)" in w]
    assert warning.endswith("series skipped") and len(study.series) >= 2


def _first_conversion_ends(monkeypatch: pytest.MonkeyPatch, returncode: int) -> list[str]:
    """Make the first dcm2niix run return ``returncode`` (negative: killed by that signal)
    without converting; later runs are real. Returns the folders converted, as they go."""
    import subprocess

    real_run = subprocess.run
    converted: list[str] = []

    def first_ends(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        converted.append(cmd[-1])
        if len(converted) == 1:
            return subprocess.CompletedProcess(cmd, returncode, "", "")
        return real_run(cmd, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "run", first_ends)
    return converted


def test_a_trace_series_keeps_its_b_value(tmp_path: Path) -> None:
    """A scanner's TRACEW series at one b-value (no b=0 series beside it) is the trace
    and keeps b = 800: the pipeline warns that it stands in for the b≈0 image only when it
    knows that b-value, and the import had dropped it (read as None)."""
    from tests.io.dicom_factory import write_lumbar_study

    written = write_lumbar_study(tmp_path, size=16, bvals=(800.0,))
    study = load_study(written.root)
    assert study.dwi is None and study.trace is not None and study.adc is not None
    assert study.trace.bvals_s_per_mm2 is not None
    np.testing.assert_array_equal(study.trace.bvals_s_per_mm2, [800.0])
