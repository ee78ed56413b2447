"""No patient name, ID, birth date or accession number in sidecars, logs or output."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from tests.io.dicom_factory import PHI, WrittenStudy
from typer.testing import CliRunner

from discquant.cli import app
from discquant.io.load import load_study
from discquant.io.privacy import scrub_sidecar

# dcm2niix writes the birth date as 1923-04-17; search for both spellings.
NEEDLES = [*PHI.values(), "1923-04-17", "Zyxwvut", "Qpfrmlk"]


def _assert_clean(text: str, where: str) -> None:
    for needle in NEEDLES:
        assert needle not in text, f"{needle!r} leaked into {where}"


def test_inspect_output_and_logs_hold_no_phi(lumbar_dicom: WrittenStudy) -> None:
    for args in (["--json"], ["--verbose"]):
        # A wide console, so the table does not wrap (a wrapped needle would hide).
        result = CliRunner(env={"COLUMNS": "400"}).invoke(
            app, ["inspect", *args, str(lumbar_dicom.root)]
        )
        assert result.exit_code == 0, result.output
        assert "T2_TSE_SAG" in result.stdout  # the listing is really there
        _assert_clean(result.stdout, f"inspect {args} stdout")
        _assert_clean(result.stderr, f"inspect {args} stderr")
    # --verbose really logged the import (so the stderr check above saw the log)
    assert "series imported" in result.stderr


def test_load_study_sidecars_and_log_hold_no_phi(
    lumbar_dicom: WrittenStudy, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        study = load_study(lumbar_dicom.root)
    assert any("dcm2niix" in r.getMessage() for r in caplog.records)  # debug log captured
    _assert_clean(caplog.text, "the log")
    for series in study.series:
        sidecar = series.provenance.sidecar
        assert sidecar["SeriesDescription"] == series.description
        assert not {"PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"} & set(
            sidecar
        )
        _assert_clean(json.dumps(sidecar, ensure_ascii=False), f"{series.description} sidecar")
        _assert_clean(series.reason + series.description, "reason/description")
    _assert_clean(" ".join(study.warnings) + study.subject, "warnings/subject")


def test_keep_phi_keeps_identifiers_in_sidecar(lumbar_dicom: WrittenStudy) -> None:
    study = load_study(lumbar_dicom.root, keep_phi=True)
    assert study.t2 is not None
    sidecar = study.t2.provenance.sidecar
    assert sidecar["PatientName"] == PHI["PatientName"]
    assert sidecar["PatientID"] == PHI["PatientID"]
    assert sidecar["AccessionNumber"] == PHI["AccessionNumber"]


def test_inspect_shows_the_patient_only_with_keep_phi(lumbar_dicom: WrittenStudy) -> None:
    """--keep-phi was accepted and showed nothing."""
    args = ["inspect", "--json", "--keep-phi", str(lumbar_dicom.root)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    t2 = next(s for s in json.loads(result.stdout)["series"] if s["role"] == "t2")
    assert t2["patient"]["PatientName"] == PHI["PatientName"]
    assert t2["patient"]["PatientID"] == PHI["PatientID"]
    table = CliRunner(env={"COLUMNS": "400"}).invoke(app, args[:1] + args[2:])
    assert PHI["PatientID"] in table.stdout


def test_nifti_sidecar_is_scrubbed_too(tmp_path: Path) -> None:
    path = tmp_path / "sub-01_T2w.nii.gz"
    affine = np.array([[0, 0, 4.0, 0], [0, -1.0, 0, 0], [-1.0, 0, 0, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.ones((8, 8, 1), np.float32), affine), path)
    sidecar = {
        "EchoTime": 0.1,
        "RepetitionTime": 4.0,
        "PatientPosition": "HFS",
        "StudyDescription": "Rorden^Rorden_Prisma",  # free text: a name, in real data
        "ProcedureStepDescription": "LSPINE Doe",
        **PHI,
    }
    (tmp_path / "sub-01_T2w.json").write_text(json.dumps(sidecar))
    study = load_study(path)
    assert study.t2 is not None
    kept = study.t2.provenance.sidecar
    assert kept == {"EchoTime": 0.1, "RepetitionTime": 4.0, "PatientPosition": "HFS"}
    assert scrub_sidecar(sidecar, keep_phi=True) == sidecar


def test_a_subject_label_holding_the_patient_id_is_refused(
    lumbar_dicom: WrittenStudy, tmp_path: Path
) -> None:
    """A folder named after the patient (its MRN) named every output, and the
    de-identified SEG/SR carried it as their patient ID."""
    import shutil

    from discquant.errors import InvalidInputError
    from discquant.pipeline import StudyInputs, run_study

    folder = tmp_path / f"{PHI['PatientID']}_lumbar"
    shutil.copytree(lumbar_dicom.root, folder)
    assert load_study(folder).identifiers  # read from the header, never written
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError, match="holds the patient's ID or name") as err:
        run_study(StudyInputs(path=folder), out)
    assert PHI["PatientID"] not in str(err.value).split(": ", 1)[1]  # the path aside
    assert not out.exists()
    surname = PHI["PatientName"].split("^")[0]
    with pytest.raises(InvalidInputError, match="holds the patient's ID or name"):
        run_study(StudyInputs(path=lumbar_dicom.root, subject=f"x{surname}"), out)


@pytest.mark.parametrize(
    ("patient_id", "name", "removed", "label"),
    [
        ("P0001", "ANONYMOUS", "YES", "P0001"),  # pseudonymised: the ID is the subject code
        ("0001", "ANON", None, "sub-00012"),  # placeholders and a short ID
        ("ANON", "Anonymized", None, "anonymized03"),
        ("PH0123456789", "PHANTOM^SYNTHETIC", None, "phantom01"),  # the project's phantom
    ],
)
def test_pseudonyms_and_placeholders_are_not_identifiers(
    patient_id: str, name: str, removed: str | None, label: str
) -> None:
    """Ordinary labels were refused as holding the patient's ID or name."""
    from discquant.io.privacy import identifier_tokens, label_holds_identifier

    tokens = identifier_tokens(patient_id, name, identity_removed=removed)
    assert not label_holds_identifier(label, tokens)
    assert label_holds_identifier("x" + patient_id, identifier_tokens(patient_id, "DOE^JOHN")) == (
        len(patient_id) >= 4 and patient_id.lower() not in {"anon"}
    )
