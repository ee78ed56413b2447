"""What the outputs say about where things came from: the ADC map's origin, the patient."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pydicom
import pytest

from discquant.diffusion.writer import ADC_SIDECAR_KEYS
from discquant.io.study import Series, SeriesRole, Study, Volume
from discquant.outputs import write_outputs
from discquant.phantom import PhantomConfig, generate_study, write_study
from discquant.pipeline import StudyInputs, analyze, run_study

AFFINE = np.diag([-1.5, 1.5, 3.0, 1.0])


def _no_discs(image: Volume) -> Any:
    """A segmenter that finds nothing (the analysis then stops after segmentation)."""
    empty = Volume(np.zeros(image.shape[:3], np.int16), image.affine)
    return SimpleNamespace(labels=empty, nucleus=None, canal=None, levels=[], flags=[])


def _adc_sidecar(study: Study, out: Path) -> dict[str, Any]:
    result = analyze(study, segmenter=_no_discs)
    paths = write_outputs(result, out)
    assert paths.adc_json is not None
    sidecar: dict[str, Any] = json.loads(paths.adc_json.read_text())
    assert list(sidecar) == list(ADC_SIDECAR_KEYS)  # `discquant adc`'s schema
    return sidecar


def test_adc_sidecar_of_an_adc_only_study_names_the_scanner(tmp_path: Path) -> None:
    adc = Volume(np.full((8, 8, 4), 1.7, np.float32), AFFINE)
    study = Study("adconly", (Series(SeriesRole.ADC, "test", "ADC", adc, "sagittal"),))
    sidecar = _adc_sidecar(study, tmp_path)
    assert "fitted by discquant" not in sidecar["Description"].replace("not fitted", "")
    assert "computed by the scanner" in sidecar["Description"]
    assert sidecar["AdcSource"] == "scanner"
    assert sidecar["Units"] == "um^2/ms"
    # not fitted by discquant: the fit's keys are there, null
    for key in ("Method", "BValuesUsed_s_per_mm2", "VolumesPerShell", "RicianNoiseSigma"):
        assert sidecar[key] is None, key
    assert sidecar["Masked"] is None and sidecar["ValidVoxels"] == 8 * 8 * 4
    assert sidecar["SourceSeries"]["Role"] == "adc"


def test_adc_sidecar_of_a_dwi_study_says_discquant_fitted_it(tmp_path: Path) -> None:
    bvals = np.array([0.0, 500.0, 1000.0])
    signal = 1000.0 * np.exp(-bvals * 1.5e-3)  # ADC 1.5 µm²/ms
    data = np.broadcast_to(signal, (8, 8, 4, 3)).astype(np.float32).copy()
    bvecs = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    dwi = Series(
        SeriesRole.DWI, "test", "DWI", Volume(data, AFFINE), "sagittal",
        bvals_s_per_mm2=bvals, bvecs=bvecs,
    )  # fmt: skip
    sidecar = _adc_sidecar(Study("dwi", (dwi,)), tmp_path)
    assert sidecar["Description"].startswith("Apparent diffusion coefficient (trace) fitted")
    assert "(wls fit)" in sidecar["Description"]
    assert sidecar["AdcSource"] == "discquant"
    assert sidecar["Method"] == "wls" and sidecar["BValuesUsed_s_per_mm2"] == [0, 500, 1000]
    assert sidecar["VolumesPerShell"] == [1, 1, 1] and sidecar["Masked"] is False
    assert sidecar["RicianNoiseSigma"] is None  # analyze corrects no noise floor


PATIENT = {
    "PatientName": "PHANTOM^kp",
    "PatientID": "PHANTOM-kp",
    "PatientBirthDate": "19610203",
    "AccessionNumber": "ACCPH77",
}


@pytest.fixture(scope="module")
def phantom_dicom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom DICOM study with a patient name and ID, a birth date and an accession
    number."""
    root = tmp_path_factory.mktemp("phantom-phi")
    study = generate_study(3, PhantomConfig(noise=False, epi_distortion=False))
    write_study(study, root, subject="kp", format="dicom")
    folder = root / "dicom" / "sub-kp"
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientName = PATIENT["PatientName"]
        ds.PatientID = PATIENT["PatientID"]
        ds.PatientBirthDate = PATIENT["PatientBirthDate"]
        ds.AccessionNumber = PATIENT["AccessionNumber"]
        ds.save_as(path)
    return folder


@pytest.mark.parametrize("keep_phi", [False, True])
def test_keep_phi_shows_the_patient_of_a_dicom_study(
    phantom_dicom: Path, tmp_path: Path, keep_phi: bool
) -> None:
    """On a real import (not a hand-made provenance), --keep-phi puts name, ID and birth
    date at the top of the report and into the results JSON; without it neither holds them."""
    result, paths = run_study(
        StudyInputs(path=phantom_dicom, subject="kp"),
        tmp_path,
        keep_phi=keep_phi,
        segmenter=_no_discs,
    )
    html = paths.report_html.read_text()
    doc = json.loads(paths.results_json.read_text())
    # The series UID (a scanner's holds its serial number and the scan's date-time)
    # only with keep_phi.
    uid = pydicom.dcmread(next(phantom_dicom.rglob("*.dcm"))).SeriesInstanceUID
    assert (str(uid) in html, str(uid) in json.dumps(doc)) == (keep_phi, keep_phi)
    if not keep_phi:
        assert "patient" not in result.provenance
        for value in ("PHANTOM^kp", "PHANTOM-kp", "19610203", "1961-02-03", "ACCPH77"):
            assert value not in html and value not in json.dumps(doc), value
        assert '<div class="patient">' not in html
        return
    patient = doc["provenance"]["patient"]
    assert patient["PatientName"] == "PHANTOM^kp"
    assert patient["PatientID"] == "PHANTOM-kp"
    assert patient["AccessionNumber"] == "ACCPH77"
    assert patient["PatientBirthDate"] in ("19610203", "1961-02-03")  # dcm2niix's spelling
    block = html[html.index('<div class="patient">') :]
    block = block[: block.index("</div>")]
    assert "PatientName: <strong>PHANTOM^kp</strong>" in block
    assert "PatientID: <strong>PHANTOM-kp</strong>" in block
    assert f"PatientBirthDate: <strong>{patient['PatientBirthDate']}</strong>" in block
    # At the top: before the summary.
    assert html.index('<div class="patient">') < html.index('id="summary"')


def test_keep_phi_gives_the_patient_of_a_utf8_study_as_written(
    phantom_dicom: Path, tmp_path: Path
) -> None:
    """dcm2niix writes the sidecar text of a UTF-8 (ISO_IR 192) series encoded twice: the
    results JSON and the report of --keep-phi read ``MÃ¼ller^JÃ¼rgen`` (a user trial). And
    a DICOM study analysed without --dicom said its SEG/SR were not written for lack of
    "source DICOM T2 images"."""
    import shutil

    folder = tmp_path / "utf8"
    shutil.copytree(phantom_dicom, folder)
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = "Müller^Jürgen"
        ds.PatientID = "ÄÖÜ-77"
        if "T2" in str(ds.SeriesDescription):
            ds.SeriesDescription = "T2 Wirbelsäule sag"
        ds.save_as(path, enforce_file_format=True)
    _, paths = run_study(
        StudyInputs(path=folder, subject="kp"), tmp_path / "out", keep_phi=True, segmenter=_no_discs
    )
    doc = json.loads(paths.results_json.read_text(encoding="utf-8"))
    assert doc["provenance"]["patient"]["PatientName"] == "Müller^Jürgen"
    assert doc["provenance"]["patient"]["PatientID"] == "ÄÖÜ-77"
    t2 = next(s for s in doc["provenance"]["series"] if s["role"] == "t2")
    assert t2["description"] == "T2 Wirbelsäule sag"
    assert "PatientName: <strong>Müller^Jürgen</strong>" in paths.report_html.read_text()
    assert doc["skipped_outputs"]["dicom_seg"] == "not requested (--dicom writes them)"


def test_only_text_encoded_twice_is_decoded_again() -> None:
    from discquant.io.dicom import _undo_double_utf8

    assert _undo_double_utf8({"a": ["MÃ¼ller", 3], "b": "Müller"}) == {
        "a": ["Müller", 3],
        "b": "Müller",
    }
    assert _undo_double_utf8("plain ASCII") == "plain ASCII"
    assert _undo_double_utf8("Zürich 東京") == "Zürich 東京"  # not Latin-1 only: as it is
