"""write_outputs: the BIDS derivative layout, NIfTI round trips, partial results, atomicity."""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
from tests.outputs.conftest import Synthetic, partial_result

from discquant import __version__
from discquant.outputs import OutputPaths, write_outputs
from discquant.outputs.results_json import validate_results
from discquant.results import LEVELS, AnalysisResult


@pytest.fixture(scope="module")
def written(synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory) -> OutputPaths:
    out = tmp_path_factory.mktemp("deriv")
    return write_outputs(synthetic.result, out, source_t2_datasets=synthetic.datasets)


def test_layout_and_dataset_description(written: OutputPaths) -> None:
    sub = written.subject_dir
    assert sub == written.root / "sub-demo01"
    names = sorted(p.name for p in sub.iterdir())
    assert names == sorted(
        [
            "sub-demo01_dseg.nii.gz",
            "sub-demo01_dseg.tsv",
            "sub-demo01_space-dwi_dseg.nii.gz",
            "sub-demo01_space-dwi_desc-nucleuscore_dseg.nii.gz",
            "sub-demo01_adc.nii.gz",
            "sub-demo01_adc.json",
            "sub-demo01_discs.tsv",
            "sub-demo01_discs.json",
            "sub-demo01_results.json",
            "sub-demo01_report.html",
            "sub-demo01_desc-discs_seg.dcm",
            "sub-demo01_desc-discs_sr.dcm",
        ]
    )
    assert set(written.files().values()) == {*sub.iterdir(), written.dataset_description}
    assert written.skipped == {}
    desc = json.loads(written.dataset_description.read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "discquant"
    assert desc["GeneratedBy"][0]["Version"] == __version__
    assert [p.name for p in written.root.iterdir() if p.name.startswith(".")] == []


def test_nifti_outputs_round_trip(written: OutputPaths, synthetic: Synthetic) -> None:
    r = synthetic.result
    adc = nib.load(written.adc)
    assert adc.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(adc.dataobj), r.adc_map.data)
    np.testing.assert_allclose(adc.affine, r.adc_map.affine)
    assert json.loads(written.adc_json.read_text())["Units"] == "um^2/ms"
    dseg = nib.load(written.dseg)
    np.testing.assert_array_equal(np.asarray(dseg.dataobj), r.labels_t2.data)
    np.testing.assert_allclose(dseg.affine, r.labels_t2.affine)
    dwi = nib.load(written.dwi_dseg)
    np.testing.assert_array_equal(np.asarray(dwi.dataobj), r.labels_dwi.data)
    for img in (adc, dseg, dwi):  # scanner space in both forms, in mm (units were unset)
        assert (int(img.header["qform_code"]), int(img.header["sform_code"])) == (1, 1)
        assert img.header.get_xyzt_units()[0] == "mm"
    with written.dseg_tsv.open() as fh:
        table = {int(row["index"]): row["name"] for row in csv.DictReader(fh, delimiter="\t")}
    assert table[123] == "L4-L5 disc" and table[26] == "sacrum" and table[61] == "spinal canal"
    assert 124 not in table  # L5-S1 is not in this segmentation


def test_results_json_lists_the_files(written: OutputPaths) -> None:
    doc = json.loads(written.results_json.read_text())
    validate_results(doc)
    assert doc["files"]["report_html"] == "sub-demo01_report.html"
    assert doc["files"]["dicom_seg"] == "sub-demo01_desc-discs_seg.dcm"
    assert doc["subject"] == "sub-demo_01"


def test_partial_result_writes_what_it_can(tmp_path: Path) -> None:
    paths = write_outputs(partial_result(), tmp_path)
    assert paths.adc is None and paths.dseg is None and paths.dicom_seg is None
    assert set(paths.skipped) == {
        "dseg",
        "dwi_dseg",
        "nucleus_core",
        "adc",
        "dicom_seg",
        "dicom_sr",
    }
    with paths.discs_tsv.open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["level"] for r in rows] == list(LEVELS) and {r["found"] for r in rows} == {"false"}
    doc = json.loads(paths.results_json.read_text())
    assert doc["skipped_outputs"]["adc"] == "no ADC map"
    assert "no lumbar discs found" in paths.report_html.read_text()


def test_outputs_not_on_the_dwi_grid_say_why(synthetic: Synthetic, tmp_path: Path) -> None:
    """A study whose segmentation found no disc wrote its ADC map, and said of the DWI
    label maps "no segmentation on the DWI grid" and "no ADC map on the DWI grid" (an
    audit); a DWI-only study's dseg is itself on the DWI grid."""
    from discquant.results import StageStatus

    failed = dataclasses.replace(
        synthetic.result,
        labels_dwi=None,
        nucleus_core_dwi=None,
        stages=[StageStatus("segmentation", False, 0.0, "no lumbar discs found")],
    )
    skipped = write_outputs(failed, tmp_path / "failed").skipped
    assert skipped["dwi_dseg"] == "the segmentation failed (no lumbar discs found)"
    assert skipped["nucleus_core"] == (
        "no nucleus ADC measured: the segmentation failed (no lumbar discs found)"
    )
    on_b0 = dataclasses.replace(failed, stages=[], flags=["segmented_on_dwi_b0"], labels_dwi=None)
    skipped = write_outputs(on_b0, tmp_path / "b0").skipped
    assert skipped["dwi_dseg"] == "the segmentation is on the DWI grid itself (dseg)"
    no_adc = dataclasses.replace(failed, stages=[], adc_map=None)
    skipped = write_outputs(no_adc, tmp_path / "t2").skipped
    assert skipped["dwi_dseg"] == "no diffusion images"
    assert skipped["nucleus_core"] == "no nucleus ADC measured: no ADC map"
    # a DWI refused by the diffusion stage (b-vectors not of length 1: a review)
    stage = StageStatus("diffusion", False, 0.0, "InvalidInputError: b-vectors")
    refused = dataclasses.replace(no_adc, stages=[stage])
    skipped = write_outputs(refused, tmp_path / "refused").skipped
    assert skipped["dwi_dseg"] == "the diffusion failed (InvalidInputError: b-vectors)"
    assert skipped["nucleus_core"] == (
        "no nucleus ADC measured: the diffusion failed (InvalidInputError: b-vectors)"
    )
    # the DWI label map written, the ADC withheld: its reason is not the label map's
    discs = copy.deepcopy(synthetic.result.discs)
    for d in discs:
        d.flags.append("adc_withheld_frames_differ")
    withheld = dataclasses.replace(synthetic.result, nucleus_core_dwi=None, discs=discs)
    paths = write_outputs(withheld, tmp_path / "withheld")
    assert "dwi_dseg" not in paths.skipped
    assert paths.skipped["nucleus_core"] == (
        "no nucleus ADC measured: the discs' ADC was withheld (adc_withheld_frames_differ)"
    )


def test_failure_leaves_nothing_half_written(
    synthetic: Synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_outputs(partial_result(), tmp_path)  # subject p1
    before = {p.name: p.read_bytes() for p in first.subject_dir.iterdir()}

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("discquant.outputs.report.render.write_report", boom)
    with pytest.raises(OSError, match="No space left"):
        write_outputs(partial_result(), tmp_path)
    with pytest.raises(OSError, match="No space left"):
        write_outputs(synthetic.result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset_description.json", "sub-p1"]
    assert {p.name: p.read_bytes() for p in first.subject_dir.iterdir()} == before


def test_an_interrupt_between_the_two_moves_puts_the_previous_folder_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or SIGTERM) after the previous subject folder was moved aside and before
    the new one was moved in: only an OSError put it back, so the subject's results sat
    in a hidden folder until that subject was analysed again (an audit)."""
    import os

    first = write_outputs(partial_result(), tmp_path)
    marker = first.subject_dir / "mine.txt"
    marker.write_text("the user's file")
    before = {p.name: p.read_bytes() for p in first.subject_dir.iterdir()}
    replace = os.replace

    def interrupted(src: Any, dst: Any) -> None:
        if ".tmp-" in Path(src).name:  # moving the new folder in
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(partial_result(), tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset_description.json", "sub-p1"]
    assert {p.name: p.read_bytes() for p in first.subject_dir.iterdir()} == before


def test_an_interrupt_after_the_swap_leaves_no_hidden_copy_of_the_old_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupt while the previous folder was being removed, the new one in place,
    left a full copy of the previous results in a hidden folder (an audit)."""
    import shutil

    first = write_outputs(partial_result(), tmp_path)
    (first.subject_dir / "stale.txt").write_text("old")
    rmtree = shutil.rmtree
    calls: list[str] = []

    def interrupted(path: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(Path(path).name)
        if ".old-" in Path(path).name and len(calls) == 1:
            raise KeyboardInterrupt
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(partial_result(), tmp_path)
    monkeypatch.undo()
    assert len(calls) == 2 and calls[0] == calls[1]  # removed again after the interrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset_description.json", "sub-p1"]
    assert not (first.subject_dir / "stale.txt").exists()  # the new folder is in place
    assert (first.subject_dir / "sub-p1_discs.tsv").is_file()


def test_a_write_error_names_the_users_file_not_the_hidden_staging_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "out/.sub-00.tmp-vm-9751-4bf9…/sub-00_discs.json: Operation not permitted" named
    a folder that is gone once the error is shown (an audit)."""

    def refused(discs: object, path: Path) -> Path:
        raise PermissionError(1, "Operation not permitted", str(path))

    monkeypatch.setattr("discquant.outputs.tables.write_discs_tsv", refused)
    with pytest.raises(PermissionError) as err:
        write_outputs(partial_result(), tmp_path)
    assert err.value.filename == str(tmp_path / "sub-p1" / "sub-p1_discs.tsv")
    assert err.value.strerror == "Operation not permitted"
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_finds_its_subject_written_by_another_run_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs writing one subject at the same moment: the loser's error read
    "sub-p1: Directory not empty", as if its input were bad (an audit)."""
    import os

    first = write_outputs(partial_result(), tmp_path)
    before = {p.name: p.read_bytes() for p in first.subject_dir.iterdir()}
    replace = os.replace

    def raced(src: Any, dst: Any) -> None:
        if ".tmp-" in Path(src).name:  # the other run's folder lands first
            first.subject_dir.mkdir()
            (first.subject_dir / "theirs.txt").write_text("the other run's")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", raced)
    with pytest.raises(OSError, match="another run wrote this subject's folder") as err:
        write_outputs(partial_result(), tmp_path)
    monkeypatch.undo()
    assert err.value.filename == str(first.subject_dir)
    assert [p.name for p in first.subject_dir.iterdir()] == ["theirs.txt"]
    # the previous results are never removed for what another run left (unchecked: a
    # review made a session's staging folder appear there), but kept under their own name
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("sub-p1.previous-")]
    assert f"the previous results are kept in {kept.name}" in str(err.value)
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["dataset_description.json", "sub-p1", kept.name]


def test_outputs_follow_the_umask_not_owner_only(tmp_path: Path) -> None:
    """The subject folder came from tempfile.mkdtemp (0700) and dataset_description.json
    from mkstemp (0600): moved into place as they were, the group could not read them."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        paths = write_outputs(partial_result(), tmp_path)
    finally:
        os.umask(old)
    mode = stat.S_IMODE
    assert mode(paths.subject_dir.stat().st_mode) == 0o755
    assert mode((tmp_path / "dataset_description.json").stat().st_mode) == 0o644
    assert {mode(p.stat().st_mode) for p in paths.subject_dir.iterdir() if p.is_file()} == {0o644}


def test_rewrite_replaces_the_subject_folder(tmp_path: Path) -> None:
    first = write_outputs(partial_result(), tmp_path)
    stale = first.subject_dir / "stale.txt"
    stale.write_text("old")
    again = write_outputs(partial_result(), tmp_path)
    assert again.subject_dir == first.subject_dir and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset_description.json", "sub-p1"]


@pytest.mark.parametrize("keep_phi", [False, True])
def test_dicom_outputs_carry_the_patient_only_with_keep_phi(
    synthetic: Synthetic, tmp_path: Path, keep_phi: bool
) -> None:
    import copy

    import pydicom
    from pydicom.dataset import Dataset

    sources = [copy.deepcopy(ds) for ds in synthetic.datasets]
    for ds in sources:  # more of what clinical images carry
        other = Dataset()
        other.PatientID = "OTHER-555"
        ds.OtherPatientIDsSequence = [other]
        ds.AdditionalPatientHistory = "back pain since 2019"
        ds.PhysiciansOfRecord = "House^Gregory"
        ds.PatientAddress = "1 Main Street"
        # highdicom copies the acquisition date-time into ContributingEquipmentSequence
        ds.AcquisitionDateTime = "20231114093015"
        ds.LastMenstrualDate = "20231020"
    source = sources[0]
    paths = write_outputs(synthetic.result, tmp_path, source_t2_datasets=sources, keep_phi=keep_phi)
    for path in (paths.dicom_seg, paths.dicom_sr):
        assert path is not None
        ds = pydicom.dcmread(path)
        assert ds.StudyInstanceUID == source.StudyInstanceUID  # still the source's study
        if keep_phi:
            assert (str(ds.PatientName), ds.PatientID) == ("Doe^Jane", "PHI-12345")
            assert ds.LastMenstrualDate == "20231020"
            continue
        assert (str(ds.PatientName), ds.PatientID) == ("demo01", "demo01")
        assert ds.PatientBirthDate == "" and ds.AccessionNumber == "" and ds.PatientSex == ""
        assert ds.PatientIdentityRemoved == "YES"
        # the source's UIDs are kept (they may hold a serial number and a date): coded
        [method] = ds.DeidentificationMethodCodeSequence
        assert (method.CodeValue, method.CodingSchemeDesignator) == ("113110", "DCM")
        import highdicom as hd

        if path == paths.dicom_seg:  # still a valid SEG for highdicom
            assert len(hd.seg.segread(path).SegmentSequence) >= 5
        text = str(ds)
        for value in ("Doe", "PHI-12345", "19700101", "ACC-98765", "OTHER-555", "back pain",
                      "House", "Main Street", "20231114", "20231020"):  # fmt: skip
            assert value not in text, (path.name, value)
            assert value.encode() not in path.read_bytes(), (path.name, value)
        assert "LastMenstrualDate" not in ds
        nested = [i for e in ds if e.VR == "SQ" for i in e.value]
        assert all("ContributionDateTime" not in i for i in nested), path.name


def _encoded(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds)
    return buffer.getvalue()


def test_a_deidentified_write_leaves_the_sources_as_they_were(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """highdicom puts the sources' own elements into the SEG and SR: de-identifying them
    emptied the caller's StudyDate, accession number, study ID and description, and a
    keep_phi write of the same sources afterwards carried them empty."""
    sources = [copy.deepcopy(ds) for ds in synthetic.datasets]
    for ds in sources:
        ds.StudyDescription = "LSPINE Doe"
        ds.ReferringPhysicianName = "Ref^Doctor"
        ds.AcquisitionDateTime = "20231114093015"
        ds.LastMenstrualDate = "20231020"
    before = [_encoded(ds) for ds in sources]
    result = dataclasses.replace(synthetic.result, stages=list(synthetic.result.stages))
    deidentified = write_outputs(result, tmp_path / "deid", source_t2_datasets=sources)
    assert deidentified.dicom_seg is not None and deidentified.dicom_sr is not None
    assert [_encoded(ds) for ds in sources] == before
    kept = write_outputs(result, tmp_path / "phi", keep_phi=True, source_t2_datasets=sources)
    expected = {
        "StudyDate": "20240101",
        "StudyTime": "120000",
        "AccessionNumber": "ACC-98765",
        "StudyID": "1",
        "StudyDescription": "LSPINE Doe",
        "ReferringPhysicianName": "Ref^Doctor",
        "PatientBirthDate": "19700101",
        "PatientSex": "F",
        "LastMenstrualDate": "20231020",
    }
    for path in (kept.dicom_seg, kept.dicom_sr):
        assert path is not None
        ds = pydicom.dcmread(path)
        assert {k: str(ds.get(k)) for k in expected} == expected, path.name
        acquisition = ds.ContributingEquipmentSequence[0]
        assert str(acquisition.ContributionDateTime) == "20231114093015", path.name


def test_the_shared_synthetic_sources_are_unchanged_by_the_module_write(
    written: OutputPaths, synthetic: Synthetic
) -> None:
    """The module's de-identified write (``written``) uses the session's sources."""
    assert written.dicom_seg is not None
    for ds in synthetic.datasets:
        assert (ds.StudyDate, ds.StudyTime, ds.StudyID) == ("20240101", "120000", "1")
        assert (ds.AccessionNumber, str(ds.PatientName)) == ("ACC-98765", "Doe^Jane")


def test_an_unestimated_snr_is_null_in_the_adc_sidecar(tmp_path: Path) -> None:
    """It was a bare NaN, which is not JSON (results.json wrote null)."""
    from discquant.io.study import Volume
    from discquant.results import DiscResult

    result = AnalysisResult(subject="nan", discs=[DiscResult(level=lv) for lv in LEVELS])
    result.adc_map = Volume(np.ones((4, 4, 4), np.float32), np.eye(4))
    result.snr_estimate = float("nan")
    paths = write_outputs(result, tmp_path)
    assert paths.adc is not None
    sidecar = paths.adc.with_name(paths.adc.name.removesuffix(".nii.gz") + ".json")
    meta = json.loads(sidecar.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert meta["SnrEstimate"] is None
    assert meta["AdcSource"] == "unknown" and meta["SourceSeries"] is None


def test_a_sheared_affine_is_left_to_the_sform(tmp_path: Path) -> None:
    """A quaternion holds no shear: the qform was an approximation (0.15 mm off here)
    with the same code as the exact sform, so viewers placed the map differently."""
    from discquant.io.study import Volume
    from discquant.outputs.derivatives import write_label_map

    sheared = np.array([[0, 0, 4, -28], [-0.6, 0, 0.3, 101.8], [0, 0.6, 0, -55], [0, 0, 0, 1.0]])
    from discquant.segment.infer import SpineSegmentation
    from discquant.segment.io import write_segmentation

    def via_segment(vol: Volume, path: Path) -> Path:  # `discquant segment` writes its own
        return write_segmentation(SpineSegmentation(labels=vol, nucleus=None, canal=None), path)[0]

    cases = [(writer, affine, qcode) for writer in (write_label_map, via_segment)
             for affine, qcode in ((sheared, 0), (np.diag([0.6, 0.6, 4.0, 1.0]), 1))]  # fmt: skip
    for writer, affine, qcode in cases:
        path = writer(Volume(np.ones((4, 5, 6), np.int16), affine), tmp_path / "d.nii.gz")
        img = nib.load(path)
        assert img.header.get_sform(coded=True)[1] == 1
        np.testing.assert_allclose(img.header.get_sform(), affine, atol=1e-6)
        assert img.header.get_qform(coded=True)[1] == qcode
        np.testing.assert_allclose(img.affine, affine, atol=1e-6)


def test_a_report_that_cannot_be_rendered_keeps_the_other_outputs(
    synthetic: Synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A figure error in the report removed every output of the subject."""
    import copy

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("cannot draw the figure")

    monkeypatch.setattr("discquant.outputs.report.render.write_report", broken)
    result = copy.deepcopy(synthetic.result)
    paths = write_outputs(result, tmp_path, source_t2_datasets=synthetic.datasets)
    assert paths.report_html is None and paths.dicom_seg is not None and paths.adc is not None
    assert not list(paths.subject_dir.glob("*.html"))
    doc = json.loads(paths.results_json.read_text())
    assert doc["skipped_outputs"]["report_html"] == "ValueError: cannot draw the figure"
    assert doc["files"]["report_html"] is None
    report = [s for s in result.stages if s.name == "report"]
    assert len(report) == 1 and not report[0].ok


def test_a_report_error_naming_its_file_does_not_show_the_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error message that holds the report's path put the temporary folder, gone once
    the outputs are written and under the user's own folders, into the results JSON."""

    def broken(_result: object, path: Path, **kwargs: object) -> None:
        raise ValueError(f"cannot write {path} in {path.parent}")

    monkeypatch.setattr("discquant.outputs.report.render.write_report", broken)
    result = partial_result()
    paths = write_outputs(result, tmp_path)
    why = "ValueError: cannot write sub-p1_report.html in the subject folder"
    assert json.loads(paths.results_json.read_text())["skipped_outputs"]["report_html"] == why
    assert [s.message for s in result.failed_stages if s.name == "report"] == [why]


def test_the_label_table_is_written_without_loading_pytorch(tmp_path: Path) -> None:
    """The outputs' dseg.tsv called the segmentation stage's writer, whose import loaded
    PyTorch (3 s) for a three-column table; the text is the same as `segment` writes."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; "
        "from discquant.outputs.derivatives import write_dseg_tsv; "
        f"write_dseg_tsv(Path({str(tmp_path / 'a.tsv')!r}), present={{20, 120, 61}}); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert (tmp_path / "a.tsv").read_text() == (
        "index\tname\tabbreviation\n20\tL1 vertebral body\tL1\n61\tspinal canal\tcanal\n"
        "120\tL1-L2 disc\tL1-L2\n"
    )


def test_a_full_disk_names_the_subject_folder_and_leaves_no_folder_it_made(
    synthetic: Synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gzip (nibabel) and pydicom raise ENOSPC without a file name, which the CLI showed
    as a 60-line traceback; a failed run also left the output folder it had created,
    empty (a user trial)."""

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("discquant.outputs.derivatives.write_adc_map", full)
    out = tmp_path / "new" / "out"
    with pytest.raises(OSError) as info:
        write_outputs(synthetic.result, out)
    assert info.value.errno == 28 and info.value.strerror == "No space left on device"
    assert info.value.filename == str(out / "sub-demo01")
    assert list(tmp_path.iterdir()) == []

    def reset(*args: object, **kwargs: object) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    # another OSError without a file keeps its type (and the CLI its traceback)
    monkeypatch.setattr("discquant.outputs.derivatives.write_adc_map", reset)
    with pytest.raises(ConnectionResetError) as other:
        write_outputs(synthetic.result, out)
    assert other.value.filename is None


def test_folders_a_killed_run_left_are_cleared_and_its_moved_results_put_back(
    tmp_path: Path,
) -> None:
    """SIGKILL (or a lost node) during the writing left `.sub-p1.tmp-*` folders of partial
    files that no later run removed (a user trial), or, between the two moves, the
    previous results in `.sub-p1.old-*` and no `sub-p1`."""
    import os
    import subprocess
    import sys

    from discquant.outputs import _staging

    first = write_outputs(partial_result(), tmp_path)  # sub-p1
    before = {p.name: p.read_bytes() for p in first.subject_dir.iterdir()}
    host = _staging.owner_tag().rsplit("-", 1)[0]
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(ended.stdout)
    half = tmp_path / f".sub-p1.tmp-{host}-{dead}-0a1b"
    half.mkdir()
    (half / "sub-p1_adc.nii.gz").write_bytes(b"partial")
    moved = tmp_path / f".sub-p1.old-{host}-{dead}-2c3d"
    moved.mkdir()
    os.replace(first.subject_dir, moved / "old")
    # a live writer's folder (it holds the lock), and one of another machine
    running, held = _staging.make_held(first.subject_dir, "tmp")
    elsewhere = tmp_path / f".sub-p1.tmp-otherhost-{dead}-6a7b"
    elsewhere.mkdir()
    # a folder named with a live process id but held by none: a process of another pid
    # namespace (a container sharing the host name) had died; the lock decides, not the
    # id (a review: the id alone kept such folders, and removed live ones of a container)
    unheld = tmp_path / f".sub-p1.tmp-{host}-{os.getpid()}-8c9d"
    unheld.mkdir()
    try:
        removed = _staging.clear_stale(first.subject_dir)
        assert sorted(removed) == sorted([half, moved, unheld])
        assert {p.name: p.read_bytes() for p in first.subject_dir.iterdir()} == before
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["dataset_description.json", "sub-p1", running.name, elsewhere.name]
        )
        # and write_outputs clears them itself
        half.mkdir()
        write_outputs(partial_result(), tmp_path)
        assert not half.exists() and running.exists() and elsewhere.exists()
    finally:
        _staging.release(held)


def test_a_failed_write_keeps_the_dataset_description_of_an_existing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clean-up removed the description whenever it had been missing when the run
    began: with a second run finishing in the meantime, its subject was left without
    one (a review). Only an output folder the failed call created, holding nothing else,
    loses it."""
    from discquant.outputs.report import render

    out = tmp_path / "out"
    out.mkdir()
    real = render.write_report
    calls = []

    def another_run_finishes_then_the_disk_is_full(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # this run's report: another run writes its subject first
            write_outputs(dataclasses.replace(partial_result(), subject="p2"), out)
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "write_report", another_run_finishes_then_the_disk_is_full)
    with pytest.raises(OSError, match="No space left"):
        write_outputs(partial_result(), out)
    assert sorted(p.name for p in out.iterdir()) == ["dataset_description.json", "sub-p2"]
