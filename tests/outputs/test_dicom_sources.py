"""DICOM SEG/SR from anonymised, gzip'd or otherwise awkward sources, and when writing fails."""

from __future__ import annotations

import copy
import dataclasses
import errno
import gzip
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from tests.outputs.conftest import Synthetic

from discquant.cli._summary import exit_code_for
from discquant.io.study import Provenance, Series, SeriesRole, Study, Volume
from discquant.outputs import write_outputs
from discquant.pipeline import source_adc_datasets, source_t2_datasets
from discquant.results import LEVELS, AnalysisResult, DiscResult

ANONYMISED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
)


def _own_result(synthetic: Synthetic) -> AnalysisResult:
    """A copy of the shared result whose stage list a test may change."""
    return dataclasses.replace(synthetic.result, stages=list(synthetic.result.stages))


def _all_items(ds: pydicom.Dataset) -> list[pydicom.Dataset]:
    """``ds`` and every item of every sequence in it, at any depth."""
    out = [ds]
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                out.extend(_all_items(item))
    return out


@pytest.mark.parametrize("keep_phi", [False, True])
def test_anonymised_sources_give_seg_and_sr_with_empty_type2_attributes(
    synthetic: Synthetic, tmp_path: Path, keep_phi: bool
) -> None:
    """Sources without the patient/study attributes anonymisers remove: SEG and SR are
    written (they crashed in highdicom), those attributes are present and empty, and the
    sources are not modified."""
    sources = [copy.deepcopy(ds) for ds in synthetic.datasets]
    for ds in sources:
        for keyword in ANONYMISED:
            delattr(ds, keyword)
    result = _own_result(synthetic)
    paths = write_outputs(result, tmp_path, source_t2_datasets=sources, keep_phi=keep_phi)
    assert paths.skipped == {}
    assert exit_code_for(result) == 0
    assert paths.dicom_seg is not None and paths.dicom_sr is not None
    for path in (paths.dicom_seg, paths.dicom_sr):
        ds = pydicom.dcmread(path)
        patient = "" if keep_phi else "demo01"
        assert (str(ds.PatientName), ds.PatientID) == (patient, patient)
        for keyword in ANONYMISED[2:]:
            assert ds[keyword].value in ("", None), (path.name, keyword)
        assert ds.StudyInstanceUID == sources[0].StudyInstanceUID
    seg = hd.seg.segread(paths.dicom_seg)
    labels = {seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()}
    assert "L4-L5 disc" in labels
    # The SR still references the SEG (written first) as evidence.
    sr = pydicom.dcmread(paths.dicom_sr)
    evidence = {
        i.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for i in series.ReferencedSOPSequence
    }
    assert seg.SOPInstanceUID in evidence
    for ds in sources:
        assert [k for k in ANONYMISED if k in ds] == []


def _device_observer_uids(ds: pydicom.Dataset) -> list[str]:
    """Values of every "Device Observer UID" (DCM 121012) item in the SR content tree."""
    return [
        str(item.UID)
        for item in _all_items(ds)
        if "ConceptNameCodeSequence" in item
        and item.ConceptNameCodeSequence[0].CodeValue == "121012"
    ]


def test_the_seg_names_no_creator_and_the_sr_one_device(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """The SEG lacked Content Creator's Name (type 2: present, empty for software), and
    each SR named a new device (a fresh Device Observer UID per run): a user trial."""
    from discquant.outputs.dicom_sr import DEVICE_OBSERVER_UID

    uids = []
    for run in ("a", "b"):
        paths = write_outputs(
            _own_result(synthetic), tmp_path / run, source_t2_datasets=synthetic.datasets
        )
        assert paths.dicom_seg is not None and paths.dicom_sr is not None
        seg = pydicom.dcmread(paths.dicom_seg)
        assert "ContentCreatorName" in seg and str(seg.ContentCreatorName) == ""
        uids += _device_observer_uids(pydicom.dcmread(paths.dicom_sr))
    assert len(uids) >= 2 and set(uids) == {DEVICE_OBSERVER_UID}


def test_a_session_carries_its_subject_as_the_patient(synthetic: Synthetic, tmp_path: Path) -> None:
    """Each visit of one patient (``sub-01/ses-2``) named a different patient in PACS
    (``01ses2``): the de-identified SEG and SR carry the subject, the same for every
    session, and lie in the session's folder."""
    result = dataclasses.replace(_own_result(synthetic), subject="sub-01_ses-2")
    paths = write_outputs(result, tmp_path, source_t2_datasets=synthetic.datasets)
    assert paths.dicom_seg is not None and paths.dicom_sr is not None
    for path in (paths.dicom_seg, paths.dicom_sr):
        assert path.parent == tmp_path / "sub-01" / "ses-2"
        ds = pydicom.dcmread(path)
        assert (str(ds.PatientName), ds.PatientID) == ("01", "01")


@pytest.mark.parametrize("keep_phi", [False, True])
def test_study_description_and_source_equipment_only_with_keep_phi(
    synthetic: Synthetic, tmp_path: Path, keep_phi: bool
) -> None:
    """StudyDescription and the source's equipment (copied by highdicom into
    ContributingEquipmentSequence) identify the patient or the site: gone without keep_phi."""
    sources = [copy.deepcopy(ds) for ds in synthetic.datasets]
    for ds in sources:
        ds.StudyDescription = "LSPINE Doe"
        ds.InstitutionName = "General Hospital"
        ds.InstitutionAddress = "99 Hospital Rd Springfield"
        ds.StationName = "STATIONQQ"
        ds.DeviceSerialNumber = "SN55555"
    paths = write_outputs(
        _own_result(synthetic), tmp_path, source_t2_datasets=sources, keep_phi=keep_phi
    )
    for path in (paths.dicom_seg, paths.dicom_sr):
        assert path is not None
        ds = pydicom.dcmread(path)
        source_equipment = ds.ContributingEquipmentSequence[0]
        assert source_equipment.Manufacturer == "TestVendor"  # type 1: kept
        if keep_phi:
            assert ds.StudyDescription == "LSPINE Doe"
            assert source_equipment.InstitutionName == "General Hospital"
            assert source_equipment.InstitutionAddress == "99 Hospital Rd Springfield"
            assert source_equipment.StationName == "STATIONQQ"
            assert source_equipment.DeviceSerialNumber == "SN55555"
            continue
        assert ds.StudyDescription == ""
        for item in _all_items(ds):
            for keyword in ("InstitutionName", "InstitutionAddress", "StationName"):
                assert keyword not in item, (path.name, keyword)
        nested = _all_items(ds)[1:]
        assert [i.DeviceSerialNumber for i in nested if "DeviceSerialNumber" in i] == []
        text = str(ds)
        for value in ("Doe", "General Hospital", "Hospital Rd", "STATIONQQ", "SN55555"):
            assert value not in text, (path.name, value)
    if not keep_phi:
        assert paths.dicom_seg is not None
        seg = hd.seg.segread(paths.dicom_seg)  # still a valid SEG
        assert seg.DeviceSerialNumber == "none"  # discquant's own (type 1), not the source's


def test_a_failing_seg_writer_skips_the_seg_and_fails_the_analysis(
    synthetic: Synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """highdicom refusing the sources: every other file is written, the SR without the
    SEG, the SEG is listed as skipped with a one-line reason free of patient values, and
    the analysis counts as partly failed (exit 3)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValueError("Value 'Doe^Jane' of PatientName is invalid\nmore detail")

    monkeypatch.setattr("highdicom.seg.Segmentation", refuse)
    result = _own_result(synthetic)
    paths = write_outputs(result, tmp_path, source_t2_datasets=synthetic.datasets)
    assert paths.dicom_seg is None
    assert paths.dicom_sr is not None and paths.report_html.exists() and paths.adc is not None
    why = "ValueError: Value '<removed>' of PatientName is invalid"
    assert paths.skipped == {"dicom_seg": why}
    assert [(s.name, s.message) for s in result.failed_stages] == [("dicom_seg", why)]
    assert exit_code_for(result) == 3
    names = sorted(p.name for p in paths.subject_dir.iterdir())
    assert "sub-demo01_desc-discs_seg.dcm" not in names and len(names) == 11
    doc = json.loads(paths.results_json.read_text())
    assert doc["skipped_outputs"] == {"dicom_seg": why}
    assert doc["failed_stages"] == ["dicom_seg"]
    assert doc["files"]["dicom_seg"] is None
    html = paths.report_html.read_text()
    assert "Doe^Jane" not in html and "dicom_seg" in html and "PatientName is invalid" in html
    sr = pydicom.dcmread(paths.dicom_sr)
    assert "ReferencedSegmentNumber" not in str(sr)


def test_a_half_written_sr_is_removed_and_reported(
    synthetic: Synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SR writer that fails on the sources (not on the disk) after writing part of the
    file: the part is removed, the other outputs are kept, and the reason names the file
    by its name in the subject folder, not by its path in the temporary folder."""

    def half(_result: Any, _sources: Any, out_path: Path, **kwargs: Any) -> Path:
        out_path.write_bytes(b"DICM half")
        raise ValueError(f"{out_path}: cannot encode ContentSequence")

    monkeypatch.setattr("discquant.outputs.dicom_sr.write_dicom_sr", half)
    result = _own_result(synthetic)
    paths = write_outputs(result, tmp_path, source_t2_datasets=synthetic.datasets)
    assert paths.dicom_seg is not None and paths.dicom_sr is None
    why = "ValueError: sub-demo01_desc-discs_sr.dcm: cannot encode ContentSequence"
    assert paths.skipped == {"dicom_sr": why}
    assert json.loads(paths.results_json.read_text())["skipped_outputs"] == {"dicom_sr": why}
    assert not list(paths.subject_dir.glob("*_sr.dcm"))
    assert [(s.name, s.message) for s in result.failed_stages] == [("dicom_sr", why)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset_description.json", "sub-demo01"]
    # Writing again with a working writer clears the earlier failure.
    monkeypatch.undo()
    again = write_outputs(result, tmp_path, source_t2_datasets=synthetic.datasets)
    assert again.skipped == {} and result.failed_stages == []


@pytest.mark.parametrize(
    "writer",
    ["discquant.outputs.dicom_seg.write_dicom_seg", "discquant.outputs.dicom_sr.write_dicom_sr"],
)
def test_disk_full_while_writing_seg_or_sr_fails_the_subject(
    synthetic: Synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    """An OSError (disk full) while writing the SEG or SR was taken for a writer refusing
    the sources: the subject folder was written without that file and replaced the
    previous, complete one. It fails the whole subject, as for every other file: the
    error is raised and the previous folder is left as it was."""
    first = write_outputs(_own_result(synthetic), tmp_path, source_t2_datasets=synthetic.datasets)
    assert first.dicom_seg is not None and first.dicom_sr is not None
    before = {p.name: p.read_bytes() for p in first.subject_dir.iterdir()}

    def full(_result: Any, _sources: Any, out_path: Path, **kwargs: Any) -> Path:
        out_path.write_bytes(b"DICM half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer, full)
    result = _own_result(synthetic)
    with pytest.raises(OSError, match="No space left on device"):
        write_outputs(result, tmp_path, source_t2_datasets=synthetic.datasets)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset_description.json", "sub-demo01"]
    assert {p.name: p.read_bytes() for p in first.subject_dir.iterdir()} == before
    assert result.failed_stages == []


def test_nothing_to_encode_is_reported_without_the_temporary_path(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """No disc found: the SEG and SR writers have nothing to write and say so with a
    DiscquantError, whose message starts with the file's path. That path, inside the
    temporary folder that is gone afterwards and under the user's own folders, reached
    ``skipped_outputs``; the reason alone is kept."""
    result = _own_result(synthetic)
    assert result.labels_t2 is not None
    result.labels_t2 = dataclasses.replace(
        result.labels_t2, data=np.zeros(result.labels_t2.shape, dtype=np.int16)
    )
    result.discs = [DiscResult(level) for level in LEVELS]
    paths = write_outputs(result, tmp_path, source_t2_datasets=synthetic.datasets)
    assert paths.dicom_seg is None and paths.dicom_sr is None
    skipped = json.loads(paths.results_json.read_text())["skipped_outputs"]
    assert skipped == paths.skipped
    assert set(skipped) == {"dicom_seg", "dicom_sr"}
    for why in skipped.values():
        assert ".tmp-" not in why and str(tmp_path) not in why and "/" not in why, why
    assert skipped["dicom_seg"] == (
        "the segmentation has no disc or vertebra on the source T2 images"
    )
    assert skipped["dicom_sr"] == "no lumbar disc with a value to report in a DICOM SR"
    assert result.failed_stages == []  # nothing to write is not a failure


def test_keyboard_interrupt_while_writing_dicom_is_not_swallowed(
    synthetic: Synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("highdicom.seg.Segmentation", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(_own_result(synthetic), tmp_path, source_t2_datasets=synthetic.datasets)
    assert list(tmp_path.iterdir()) == []


def _dicom_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def test_gzipped_source_without_gz_suffix_is_read_back(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """Archives keep gzip'd DICOM under names like IM0200001: found by their signature."""
    paths = []
    for k, ds in enumerate(synthetic.datasets):
        path = tmp_path / f"IM020000{k + 1}"
        raw = _dicom_bytes(ds)
        path.write_bytes(gzip.compress(raw) if k % 2 == 0 else raw)  # plain ones too
        paths.append(path)
    assert paths[0].read_bytes()[:2] == b"\x1f\x8b"
    series = Series(
        SeriesRole.T2,
        "test",
        "T2 TSE SAG",
        synthetic.result.labels_t2,  # type: ignore[arg-type]
        "sagittal",
        provenance=Provenance(
            source_paths=tuple(paths),
            sop_instance_uids=tuple(str(ds.SOPInstanceUID) for ds in synthetic.datasets),
        ),
    )
    datasets = source_t2_datasets(Study("gz", (series,)))
    assert datasets is not None
    assert [str(ds.SOPInstanceUID) for ds in datasets] == [
        str(ds.SOPInstanceUID) for ds in synthetic.datasets
    ]
    assert datasets[2].PixelData == synthetic.datasets[2].PixelData


def test_visit_and_clinical_trial_attributes_do_not_reach_seg_or_sr(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """highdicom copies the Patient Study and Clinical Trial modules and the study's
    physician and issuer sequences from the source; without keep_phi none of their values
    reaches the SEG or the SR (admission ID, diagnoses and a trial subject ID did)."""
    values = {
        "AdmissionID": "ADM-777123",
        "AdmittingDiagnosesDescription": "DIAG sciatica left",
        "ClinicalTrialSubjectID": "CTSUBJ-991",
        "ClinicalTrialSponsorName": "SPONSORQQ",
        "ClinicalTrialSiteName": "SITEQQ",
        "ReasonForTheRequestedProcedure": "REASONQQ",
        "RequestingService": "RADSVC-XYZ",
    }
    sources = [copy.deepcopy(ds) for ds in synthetic.datasets]
    for ds in sources:
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.IssuerOfAccessionNumberSequence = [_item(LocalNamespaceEntityID="ISSUERACCQQ")]
        ds.ReferringPhysicianIdentificationSequence = [_item(PersonTelephoneNumbers="555-0199")]
        ds.ConsultingPhysicianIdentificationSequence = [_item(PersonTelephoneNumbers="555-XYZ")]
    paths = write_outputs(
        _own_result(synthetic), tmp_path, source_t2_datasets=sources, keep_phi=False
    )
    assert paths.skipped == {}
    for path in (paths.dicom_seg, paths.dicom_sr):
        assert path is not None
        raw = path.read_bytes()
        for value in [*values.values(), "ISSUERACCQQ", "555-0199", "555-XYZ"]:
            assert value.encode() not in raw, (path.name, value)


def test_highdicom_warnings_are_logged_without_the_patient_name(
    synthetic: Synthetic, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """highdicom warns about a source PatientName without '^' and quotes it; the warning
    reaches the log with the name removed, and is not re-raised as a Python warning."""
    # A CLI test run earlier in this process (--quiet) may have left the root logger at
    # ERROR, which drops the warning before caplog sees it.
    caplog.set_level(logging.WARNING)
    sources = [copy.deepcopy(ds) for ds in synthetic.datasets]
    for ds in sources:
        ds.PatientName = "John Doe Smithers"
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        paths = write_outputs(
            _own_result(synthetic), tmp_path, source_t2_datasets=sources, keep_phi=False
        )
    assert paths.dicom_seg is not None and paths.dicom_sr is not None
    logged = [r.getMessage() for r in caplog.records if "unlikely to represent" in r.getMessage()]
    assert logged, "highdicom's person-name warning should be logged"
    assert all("<removed>" in m and "Smithers" not in m for m in logged)
    assert not any("Smithers" in str(w.message) for w in raised)


def test_identifying_values_for_redaction_include_nested_and_multiple_values() -> None:
    """Error messages are redacted with these values: they once came from the top level
    only, with a multi-valued attribute as one "['A', 'B']" string."""
    from discquant.outputs._dicom import phi_values

    ds = pydicom.Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientPosition = "HFS"
    ds.SeriesDescription = "T2 TSE SAG"
    ds.OtherPatientIDs = ["OPID-111", "OPID-222"]
    ds.OtherPatientIDsSequence = [_item(PatientID="NESTED-PID")]
    ds.IssuerOfAccessionNumberSequence = [_item(LocalNamespaceEntityID="ISSUER-ACC")]
    ds.AdmissionID = "ADM-777"
    assert phi_values([ds]) == {
        "Doe^Jane", "OPID-111", "OPID-222", "NESTED-PID", "ISSUER-ACC", "ADM-777"
    }  # fmt: skip


def _item(**attributes: str) -> pydicom.Dataset:
    """A sequence item holding ``attributes``."""
    item = pydicom.Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def test_sr_lists_the_adc_source_of_another_study_as_other_evidence(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """The images the ADC came from go to the SR's evidence: those of the T2's study in
    the Current Requested Procedure Evidence, a DWI of another study (a repeat visit's
    diffusion sent with the T2) in the Pertinent Other Evidence, never dropped."""
    dwi = []
    for k, ds in enumerate(synthetic.datasets[:3]):
        copy_ = copy.deepcopy(ds)
        copy_.StudyInstanceUID = "1.2.3.4.99"
        copy_.SeriesInstanceUID = "1.2.3.4.99.1"
        copy_.SOPInstanceUID = f"1.2.3.4.99.1.{k + 1}"
        dwi.append(copy_)
    paths = write_outputs(
        _own_result(synthetic),
        tmp_path,
        source_t2_datasets=synthetic.datasets,
        source_adc_datasets=dwi,
    )
    assert paths.dicom_sr is not None
    sr = pydicom.dcmread(paths.dicom_sr)
    other = sr.PertinentOtherEvidenceSequence
    assert [s.StudyInstanceUID for s in other] == ["1.2.3.4.99"]
    items = other[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert [i.ReferencedSOPInstanceUID for i in items] == [f"1.2.3.4.99.1.{k}" for k in (1, 2, 3)]
    current = {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert {str(ds.SOPInstanceUID) for ds in synthetic.datasets} < current


def _series(role: SeriesRole, uids: tuple[str, ...], paths: tuple[Path, ...]) -> Series:
    image = Volume(np.zeros((2, 2, 2), np.float32), np.eye(4))
    provenance = Provenance(source_paths=paths, sop_instance_uids=uids)
    return Series(role, "test", role.value, image, "sagittal", provenance=provenance)


@pytest.mark.parametrize(
    ("adc_source", "has_map", "expected"),
    [("discquant", True, "dwi"), ("scanner", True, "adc"), ("discquant", False, None)],
)
def test_source_adc_datasets_are_the_series_the_adc_came_from(
    synthetic: Synthetic, tmp_path: Path, adc_source: str, has_map: bool, expected: str | None
) -> None:
    """Raw DWI fitted by discquant, or the scanner's ADC map used as it is; none without
    an ADC map (the diffusion stage failed): the SR must not claim a source it did not use."""
    files = {}
    for role in ("dwi", "adc"):
        path = tmp_path / f"{role}.dcm"
        ds = copy.deepcopy(synthetic.datasets[0])
        ds.SOPInstanceUID = f"1.2.3.{len(files) + 1}"
        path.write_bytes(_dicom_bytes(ds))
        files[role] = (str(ds.SOPInstanceUID), path)
    study = Study(
        "s",
        tuple(
            _series(role, (files[key][0],), (files[key][1],))
            for role, key in ((SeriesRole.DWI, "dwi"), (SeriesRole.ADC, "adc"))
        ),
    )
    result = dataclasses.replace(
        synthetic.result,
        adc_map=synthetic.result.adc_map if has_map else None,
        provenance={**synthetic.result.provenance, "adc_source": adc_source},
    )
    datasets = source_adc_datasets(study, result)
    if expected is None:
        assert datasets is None
    else:
        assert datasets is not None
        assert [str(ds.SOPInstanceUID) for ds in datasets] == [files[expected][0]]
        assert "PixelData" not in datasets[0]  # headers only
