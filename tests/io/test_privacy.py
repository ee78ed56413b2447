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
from discquant.errors import DiscquantError
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


def test_a_name_in_a_series_description_stays_out_of_the_debug_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """dcm2niix named its files after the series description ("%s_%d"), and the debug
    log printed them: 'read 2_T2_TSE_SAG_Zyxwvut.nii.gz' with the description shown as
    'T2_TSE_SAG [withheld]' everywhere else (a user trial following docs/import.md)."""
    import pydicom
    from tests.io.dicom_factory import write_lumbar_study

    written = write_lumbar_study(tmp_path / "study", size=16)
    for path in written.series["t2"].files:
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = "T2_TSE_SAG Zyxwvut"
        ds.save_as(path)
    with caplog.at_level(logging.DEBUG):
        study = load_study(written.root)
    assert study.t2 is not None and study.t2.description == "T2_TSE_SAG [withheld]"
    assert "read " in caplog.text  # the converted files' names were logged
    _assert_clean(caplog.text, "the debug log")


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


def _t2_with_sidecar(folder: Path, sidecar: dict[str, object]) -> Path:
    """A one-slice sagittal ``sub-01_T2w.nii.gz`` with ``sidecar`` after a T2's timing."""
    path = folder / "sub-01_T2w.nii.gz"
    affine = np.array([[0, 0, 4.0, 0], [0, -1.0, 0, 0], [-1.0, 0, 0, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.ones((8, 8, 1), np.float32), affine), path)
    timing = {"EchoTime": 0.1, "RepetitionTime": 4.0}
    (folder / "sub-01_T2w.json").write_text(json.dumps({**timing, **sidecar}))
    return path


def test_nifti_sidecar_is_scrubbed_too(tmp_path: Path) -> None:
    sidecar = {
        "PatientPosition": "HFS",
        "StudyDescription": "Rorden^Rorden_Prisma",  # free text: a name, in real data
        "ProcedureStepDescription": "LSPINE Doe",
        **PHI,
    }
    path = _t2_with_sidecar(tmp_path, sidecar)
    study = load_study(path)
    assert study.t2 is not None
    kept = study.t2.provenance.sidecar
    assert kept == {"EchoTime": 0.1, "RepetitionTime": 4.0, "PatientPosition": "HFS"}
    assert scrub_sidecar(sidecar, keep_phi=True) == sidecar


def test_a_subject_label_holding_the_patient_id_is_refused(
    lumbar_dicom: WrittenStudy, tmp_path: Path, caplog: pytest.LogCaptureFixture
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
    with caplog.at_level(logging.DEBUG):  # the import's log had shown the refused label
        with pytest.raises(InvalidInputError, match="holds the patient's ID or name"):
            run_study(StudyInputs(path=lumbar_dicom.root, subject=f"x{surname}"), out)
    assert "series imported" in caplog.text
    _assert_clean(caplog.text, "the log of a refused label")


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


def test_identifier_tokens_hold_accession_other_ids_and_birth_date() -> None:
    """Only the patient's ID and name were tokens: a label holding the accession number,
    another patient ID or the birth date passed."""
    from pydicom.dataset import Dataset

    from discquant.io.privacy import identifier_tokens, label_holds_identifier

    ds = Dataset()
    ds.OtherPatientIDs = ["OPID-4242", "X7"]  # multi-valued; "X7" is too short to count
    tokens = identifier_tokens(
        "P0001",
        "DOE^JOHN",
        accession_number="ACC-55512",
        other_patient_ids=ds.get("OtherPatientIDs"),
        birth_date="19580312",
    )
    assert {"acc55512", "opid4242", "19580312"} <= tokens and "x7" not in tokens
    for label in ("ACC55512", "sub-opid4242", "1958-03-12", "p19580312x"):
        assert label_holds_identifier(label, tokens), label
    assert not label_holds_identifier("195803120", tokens)  # an all-digit token: whole only
    # a raw backslash-separated value is split like pydicom's MultiValue
    assert "abcd5" in identifier_tokens(None, None, other_patient_ids="ZZ\\ABCD-5")
    # a partial birth date (year only) or a placeholder accession would match by chance
    assert identifier_tokens(None, None, birth_date="1958", accession_number="ANON") == set()
    # a pseudonymised dataset's accession and birth date are replaced too: nothing counts
    removed = identifier_tokens(
        "P0001",
        "DOE^JOHN",
        identity_removed="YES",
        accession_number="ACC-55512",
        other_patient_ids="OPID-4242",
        birth_date="19580312",
    )
    assert removed == set()
    # the old two-argument call still works ("doe", 3 letters, for descriptions only)
    assert identifier_tokens("P0001", "DOE^JOHN") == {"p0001", "doejohn", "john", "doe"}


def _analyze_refused(folder: Path, out: Path) -> None:
    result = CliRunner().invoke(app, ["analyze", str(folder), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "holds the patient's ID or name" in result.output
    assert not out.exists()  # nothing written: no output named after the identifier


def test_series_folders_named_after_the_patient_stay_out_of_the_debug_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Exports name series folders NAME_MRN: the importer's debug line gave the folder's
    own name ('Zyxwvut_T2 -> t2') while every output showed it as '(withheld)' (a
    review)."""
    from tests.io.dicom_factory import write_lumbar_study

    written = write_lumbar_study(tmp_path / "study", size=16)
    for role in ("t2", "dwi"):
        folder = written.series[role].files[0].parent
        assert folder != written.root  # each series in a folder of its own
        folder.rename(folder.with_name(f"{PHI['PatientName'].split('^')[0]}_{role}"))
    with caplog.at_level(logging.DEBUG):
        study = load_study(written.root)
    assert study.t2 is not None and study.dwi is not None
    _assert_clean(caplog.text, "the debug log")
    assert "(withheld)" in caplog.text  # the series were logged, their folders withheld


@pytest.mark.parametrize(
    "folder", ["PIDX-8675309-Q_ZYXWVUT", "Zyxwvut Qpfrmlk 8675309", "O'Zyxwvut"]
)
def test_import_warnings_withhold_folders_named_after_the_patient(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, folder: str
) -> None:
    """A stray file in an export's NAME_MRN folder: the warning that skips it named the
    folder in the log (with the absolute path above the input), the results JSON and the
    report, while the series' own file names read '(withheld)' (an audit). A search of
    the finished text for path-like words then missed folders with spaces or quotes in
    their names (a review): each part of the path is compared whole."""
    from tests.io.dicom_factory import write_lumbar_study

    phi = {**PHI, "PatientName": "O'Zyxwvut^Qpfrmlk"} if "'" in folder else PHI
    written = write_lumbar_study(tmp_path / "export" / folder, phi=phi)
    series_folder = written.series["t2"].files[0].parent
    (series_folder / "junk.raw").write_bytes(b"not an image" * 20)
    # a top-level file named after the patient: counted in the same warning
    (tmp_path / "export" / "Zyxwvut_notes.raw").write_bytes(b"not an image" * 20)
    with caplog.at_level(logging.WARNING):
        study = load_study(tmp_path / "export")
    (said,) = [w for w in study.warnings if "not a DICOM file" in w]
    assert said.startswith("(withheld): not a DICOM file") or said.startswith("(withheld)/")
    logged = [r.getMessage() for r in caplog.records if "not a DICOM file" in r.getMessage()]
    assert logged == [said]  # not the absolute path
    for text in (*study.warnings, caplog.text):
        assert "PIDX" not in text and "ZYXWVUT" not in text.upper(), text


def test_import_warnings_name_files_relative_to_the_input_and_are_logged_on_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The input folder's name was cut wherever it stood in a warning ("st/old_st/x.raw"
    read "old_x.raw"), and a warning made before the import failed was never logged (a
    review)."""
    from tests.io.dicom_factory import write_lumbar_study

    root = tmp_path / "st"
    write_lumbar_study(root)
    (root / "old_st").mkdir()
    (root / "old_st" / "junk.raw").write_bytes(b"not an image" * 20)
    study = load_study(root)
    assert [w for w in study.warnings if "junk.raw" in w] == [
        "old_st/junk.raw: not a DICOM file (no DICM prefix); skipped"
    ]
    broken = tmp_path / "broken"
    (broken / "old_st").mkdir(parents=True)
    (broken / "old_st" / "junk.raw").write_bytes(b"not an image" * 20)
    (broken / "x.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")  # cut short
    with caplog.at_level(logging.WARNING), pytest.raises(DiscquantError):
        load_study(broken)
    assert "old_st/junk.raw: not a DICOM file" in caplog.text


def test_inspect_withholds_a_study_folder_named_after_the_patient(
    lumbar_dicom: WrittenStudy, tmp_path: Path
) -> None:
    """`analyze` refuses a folder named NAME_MRN; `inspect` printed its name as the
    table's title (an audit)."""
    import shutil

    folder = tmp_path / f"{PHI['PatientName'].split('^')[0]}_{PHI['PatientID']}"
    shutil.copytree(lumbar_dicom.root, folder)
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["inspect", str(folder)])
    assert result.exit_code == 0, result.output
    assert "(withheld): 5 series" in result.stdout
    _assert_clean(result.stdout, "inspect's table")


@pytest.mark.parametrize("field", ["AccessionNumber", "PatientBirthDate"])
def test_a_folder_named_after_the_accession_or_birth_date_is_refused(
    lumbar_dicom: WrittenStudy, tmp_path: Path, field: str
) -> None:
    """A folder named after the accession number or the birth date named every output
    file and the DICOM SEG/SR."""
    import shutil

    folder = tmp_path / PHI[field]
    shutil.copytree(lumbar_dicom.root, folder)
    _analyze_refused(folder, tmp_path / "out")


def test_a_folder_named_after_another_patient_id_is_refused(tmp_path: Path) -> None:
    """A folder named after one of the OtherPatientIDs (multi-valued) was accepted."""
    from tests.io.dicom_factory import write_lumbar_study

    folder = tmp_path / "OPIDX-777777"
    write_lumbar_study(
        folder, size=16, phi={**PHI, "OtherPatientIDs": "OPIDX-424242\\OPIDX-777777"}
    )
    _analyze_refused(folder, tmp_path / "out")


@pytest.mark.parametrize(
    "name", [PHI["PatientID"], "Zyxwvut_Qpfrmlk", "19230417", PHI["AccessionNumber"]]
)
def test_a_nifti_named_after_its_sidecars_patient_is_refused(tmp_path: Path, name: str) -> None:
    """dcm2niix -ba n -f %n_%i names files after the patient and keeps the identifiers in
    the sidecar; the sidecar was scrubbed before they were read, so the label passed."""
    path = tmp_path / f"{name}_T2.nii.gz"
    affine = np.array([[0, 0, 4.0, 0], [0, -1.0, 0, 0], [-1.0, 0, 0, 0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.ones((64, 64, 1), np.float32), affine), path)
    sidecar = {"EchoTime": 0.1, "RepetitionTime": 4.0, **PHI, "PatientBirthDate": "1923-04-17"}
    (tmp_path / f"{name}_T2.json").write_text(json.dumps(sidecar))
    study = load_study(path)
    assert study.t2 is not None and "PatientID" not in study.t2.provenance.sidecar
    _analyze_refused(path, tmp_path / "out")


def test_deidentifying_an_output_leaves_the_elements_it_shares_with_the_source() -> None:
    """highdicom adds the source's own element objects (sequences included) to a SEG or SR;
    de-identifying the output emptied the source's StudyDate, accession number, study ID
    and description, and removed the names and equipment inside the shared sequences."""
    import copy

    from pydicom.dataset import Dataset

    from discquant.io.privacy import deidentify_dataset

    referenced = Dataset()
    referenced.ReferencedSOPInstanceUID = "1.2.3.4"
    referenced.InstitutionName = "General Hospital"
    referenced.PerformingPhysicianName = "House^Gregory"
    source = Dataset()
    source.PatientName, source.PatientID = "Doe^Jane", "PHI-12345"
    source.StudyDate, source.StudyTime, source.StudyID = "20240101", "120000", "7"
    source.AccessionNumber, source.StudyDescription = "ACC-98765", "LSPINE Doe"
    source.DeidentificationMethod = "site pseudonymisation"
    source.LastMenstrualDate = "20231020"
    ethnic = Dataset()
    ethnic.CodeValue, ethnic.CodingSchemeDesignator, ethnic.CodeMeaning = "X1", "99X", "Qx"
    source.EthnicGroupCodeSequence = [ethnic]
    source.ReferencedStudySequence = [referenced]
    before = copy.deepcopy(source)
    output = Dataset()
    for elem in source:  # as highdicom's copy of the patient and study modules does
        output.add(elem)
    deidentify_dataset(output, subject="demo01")
    assert source == before
    assert source.ReferencedStudySequence[0] == before.ReferencedStudySequence[0]
    assert (output.StudyDate, output.StudyTime, output.StudyID) == ("", "", "")
    assert (output.AccessionNumber, output.StudyDescription) == ("", "")
    assert (str(output.PatientName), output.PatientID) == ("demo01", "demo01")
    assert output.DeidentificationMethod.startswith("discquant")
    assert "LastMenstrualDate" not in output and "EthnicGroupCodeSequence" not in output
    item = output.ReferencedStudySequence[0]
    assert item.ReferencedSOPInstanceUID == "1.2.3.4"  # UIDs stay
    assert "InstitutionName" not in item and "PerformingPhysicianName" not in item


def test_a_patient_name_typed_into_a_series_description_is_withheld(
    lumbar_dicom: WrittenStudy, tmp_path: Path
) -> None:
    """A technologist's ``T2_TSE_SAG Zyxwvut`` (the patient's name) reached the results
    JSON, the report and ``inspect`` (a user trial). The word is withheld; the rest still
    names the sequence, and the series is still the T2. Kept with keep_phi."""
    import shutil

    import pydicom

    folder = tmp_path / "study"
    shutil.copytree(lumbar_dicom.root, folder)
    for path in (p for p in folder.rglob("*") if p.is_file()):
        path.chmod(0o644)
        ds = pydicom.dcmread(path)
        if ds.SeriesDescription == "T2_TSE_SAG":
            ds.SeriesDescription = "T2_TSE_SAG Zyxwvut"
            ds.save_as(path)
    study = load_study(folder)
    assert study.t2 is not None and study.t2.description == "T2_TSE_SAG [withheld]"
    assert study.t2.provenance.sidecar["SeriesDescription"] == "T2_TSE_SAG [withheld]"
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["inspect", "--json", str(folder)])
    assert result.exit_code == 0, result.output
    assert "T2_TSE_SAG [withheld]" in result.stdout
    _assert_clean(result.stdout + result.stderr, "inspect")
    kept = load_study(folder, keep_phi=True)
    assert kept.t2 is not None and kept.t2.description == "T2_TSE_SAG Zyxwvut"


def test_redaction_takes_whole_name_parts_and_each_word_of_a_name() -> None:
    """A review: "Ann Marie^Smith" typed as "Ann Marie" leaked (only ^ components were
    tokens); "Doe^Gitta" withheld SAGITTAL and ID 1000 withheld "b1000" (substrings)."""
    from discquant.io.privacy import identifier_tokens, redact_identifiers

    ann = identifier_tokens("P-77", "Ann Marie^Smith")
    # every word of it: "Ann" (3 letters) was kept until names under 4 letters counted
    assert redact_identifiers("T2 SAG Ann Marie Smith", ann) == (
        "T2 SAG [withheld] [withheld] [withheld]"
    )
    assert redact_identifiers("T2_TSE_SAGITTAL", identifier_tokens("X", "Doe^Gitta")) == (
        "T2_TSE_SAGITTAL"
    )
    assert redact_identifiers("ep2d_diff_b50_b1000", identifier_tokens("1000", "Q")) == (
        "ep2d_diff_b50_b1000"
    )
    assert redact_identifiers("DWI 1000", identifier_tokens("1000", "Q")) == "DWI [withheld]"
    sagi = identifier_tokens("X", "Sagi^Tal")
    assert redact_identifiers("t2-tse-sag-Sagi", sagi) == "t2-tse-sag-[withheld]"


def test_short_names_are_withheld_from_descriptions_but_not_sought_in_labels() -> None:
    """Names under 4 letters (Li, Ng, Wu, Tan) stayed in series descriptions. They are
    compared as whole words there; inside labels and file names (substrings) they would
    match by chance ("li" in "lumbar"), so labels still skip them."""
    from discquant.io.privacy import identifier_tokens, label_holds_identifier, redact_identifiers

    li = identifier_tokens("MRN-0012345", "LI^WEI")
    assert redact_identifiers("T2 TSE SAG Li Wei", li) == "T2 TSE SAG [withheld] [withheld]"
    assert redact_identifiers("t2_sag_li", li) == "t2_sag_[withheld]"
    assert redact_identifiers("T2 SAG LIMITED FOV", li) == "T2 SAG LIMITED FOV"  # whole words
    assert not label_holds_identifier("sub-lumbar01", li)
    assert not label_holds_identifier("sub-wei", li)  # under 4 letters: not in labels
    assert label_holds_identifier("sub-mrn0012345", li)
    # an ID under 4 characters and a one-letter name part stay out everywhere
    assert identifier_tokens("X7", "A^NG") == frozenset({"ng"})
    # a short name that is a sequence word keeps the description readable (a review:
    # "T2_TSE_SAG" read "T2_[withheld]_SAG" for the surname Tse, "3-plane LOC" for Loc)
    assert redact_identifiers("T2_TSE_SAG", identifier_tokens("X", "TSE^KA MING")) == "T2_TSE_SAG"
    assert redact_identifiers("3-plane LOC", identifier_tokens("X", "VAN^LOC")) == "3-plane LOC"


def test_the_site_and_the_dates_are_withheld_from_descriptions() -> None:
    """Only the patient's name and IDs were withheld: ``T2 SAG Mercy 2024-03-15`` (the
    institution and the study's date, typed by a technologist) passed into every output."""
    from discquant.io.privacy import description_tokens, identifier_tokens, redact_identifiers

    tokens = description_tokens(
        identifier_tokens("P-77", "DOE^JANE", birth_date="19580312"),
        institution_name="Qzmercy Spine Imaging Center",
        dates=["20240315", "20240316", None, "2024-03-17T09:30:00"],
    )
    withheld = {
        "T2 SAG Qzmercy 2024-03-15": "T2 SAG [withheld] [withheld]",
        "T2_SAG_QZMERCY_20240316": "T2_SAG_[withheld]_[withheld]",
        "t2-sag-15.03.2024": "t2-sag-[withheld]",
        "DWI 03/17/2024": "DWI [withheld]",
        "DWI 17.3.2024": "DWI [withheld]",
        "T2 Qzmercy Spine Imaging Center": "T2 [withheld] Spine Imaging [withheld]",
        "T2 QzmercySpineImagingCenter": "T2 [withheld]",
        "T2 SAG 12.03.1958": "T2 SAG [withheld]",  # the birth date as written, too
    }
    for text, expected in withheld.items():
        assert redact_identifiers(text, tokens) == expected, text
    # no false positives: sequence words, numbers and other dates stay
    for text in (
        "T2_TSE_SAG",
        "3D T2 SPACE 2D",
        "ep2d_diff_b50_b800_b1000",
        "L-SPINE T2 SAG",
        "Imaging 2024-03-18",
        "v1.2.2024",
        "T2 20240314",
    ):
        assert redact_identifiers(text, tokens) == text, text
    # the site and the study's dates are not sought in labels, and count where the
    # identity was removed (they are no pseudonym)
    from discquant.io.privacy import label_holds_identifier

    assert not label_holds_identifier("sub-20240315qzmercy", identifier_tokens("P-77", "DOE"))
    removed = description_tokens(
        identifier_tokens("P-77", "DOE", identity_removed="YES"),
        institution_name="Qzmercy",
        dates=["20240315"],
    )
    assert removed == {"qzmercy", "20240315"}


def test_a_site_and_a_date_typed_into_a_dicom_description_are_withheld(
    lumbar_dicom: WrittenStudy, tmp_path: Path
) -> None:
    """The study's date and the institution's name in a series description reached the
    results JSON, the report and ``inspect``. Kept with keep_phi."""
    import shutil

    import pydicom

    folder = tmp_path / "study"
    shutil.copytree(lumbar_dicom.root, folder)
    for path in (p for p in folder.rglob("*") if p.is_file()):
        path.chmod(0o644)
        ds = pydicom.dcmread(path)
        ds.InstitutionName = "Qzmercy General Hospital"
        if ds.SeriesDescription == "T2_TSE_SAG":  # the factory's StudyDate is 20240102
            ds.SeriesDescription = "T2_TSE_SAG Qzmercy 02.01.2024"
        ds.save_as(path)
    study = load_study(folder)
    expected = "T2_TSE_SAG [withheld] [withheld]"
    assert study.t2 is not None and study.t2.description == expected
    assert study.t2.provenance.sidecar["SeriesDescription"] == expected
    result = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["inspect", "--json", str(folder)])
    assert result.exit_code == 0, result.output
    assert expected in result.stdout
    for needle in ("Qzmercy", "02.01.2024"):
        assert needle not in result.stdout + result.stderr
    kept = load_study(folder, keep_phi=True)
    assert kept.t2 is not None and kept.t2.description == "T2_TSE_SAG Qzmercy 02.01.2024"


@pytest.mark.parametrize(
    ("sidecar", "description", "protocol"),
    [
        # the patient's name, the site and the date reached every output as written
        (
            {
                "SeriesDescription": "T2_SAG Zyxwvut Qzmercy 2024-01-02",
                "ProtocolName": "T2_SAG_Qzmercy",
                "InstitutionName": "Qzmercy",
                "AcquisitionDateTime": "2024-01-02T10:15:00.000000",
                **PHI,
            },
            "T2_SAG [withheld] [withheld] [withheld]",
            "T2_SAG_[withheld]",
        ),
        # ``20240102101500`` (the date-time, written out) was kept, and ``MR1`` of the site
        # withheld the protocol's ``mr1x``
        (
            {
                "SeriesDescription": "T2_SAG 20240102101500 MR1",
                "ProtocolName": "T2_SAG_mr1x",
                "InstitutionName": "MR1 Zentrum",
                "AcquisitionDateTime": "2024-01-02T10:15:00.000000",
            },
            "T2_SAG [withheld] [withheld]",
            "T2_SAG_mr1x",
        ),
    ],
    ids=["patient-site-date", "date-time-and-site-word"],
)
def test_a_nifti_sidecars_description_is_withheld_of_the_patient_site_and_dates(
    tmp_path: Path, sidecar: dict[str, str], description: str, protocol: str
) -> None:
    """A NIfTI's sidecar description was shown as it was (two audits' cases)."""
    path = _t2_with_sidecar(tmp_path, sidecar)
    study = load_study(path)
    assert study.t2 is not None
    assert study.t2.description == description
    assert study.t2.provenance.sidecar["ProtocolName"] == protocol
    kept = load_study(path, keep_phi=True)
    assert kept.t2 is not None and kept.t2.description == sidecar["SeriesDescription"]


def test_more_written_forms_of_the_headers_dates_are_withheld() -> None:
    """A review: ``T2 SAG 2024_03_15`` (scanners turn blanks into underscores), ``2024 03
    15``, a date-time ``20240315103000``, a two-digit year (``15.03.24``) and a month's
    name (``15-Mar-2024``, ``Mar 15 2024``) passed with StudyDate 20240315 in the header."""
    from discquant.io.privacy import description_tokens, identifier_tokens, redact_identifiers

    tokens = description_tokens(
        identifier_tokens("P-77", "DOE^JANE", birth_date="19580312"),
        dates=["20240315", "2024-03-16T10:00:00"],
    )
    withheld = {
        "T2 SAG 2024_03_15": "T2 SAG [withheld]",
        "T2_SAG_2024_03_15": "T2_SAG_[withheld]",
        "T2 SAG 2024 03 15": "T2 SAG [withheld]",
        "T2 SAG 15_03_2024": "T2 SAG [withheld]",
        "DWI 20240315103000": "DWI [withheld]",
        "DWI_202403151030": "DWI_[withheld]",
        "DWI 20240316103000.123": "DWI [withheld]",
        "t2 15.03.24": "t2 [withheld]",
        "t2 15-03-24": "t2 [withheld]",
        "t2 03/15/24": "t2 [withheld]",
        "t2 16.3.24 SAG": "t2 [withheld] SAG",
        "T2 15-Mar-2024": "T2 [withheld]",
        "T2 15Mar2024": "T2 [withheld]",
        "T2_15MAR24": "T2_[withheld]",
        "T2 Mar 15 2024": "T2 [withheld]",
        "T2 March 16, 2024": "T2 [withheld]",
        "T2 2024-Mar-15": "T2 [withheld]",
        "T2 SAG 12.03.58": "T2 SAG [withheld]",  # the birth date, two-digit year
        "T2 SAG 12 Mar 1958": "T2 SAG [withheld]",
        # a match that is no header date began on the 2 of T2 and hid the date behind it
        "T2-15-03-2024": "T2-[withheld]",
        "T2.15.03.2024": "T2.[withheld]",
        "T1/03/15/2024": "T1/[withheld]",
        "T2_15_03_2024": "T2_[withheld]",
        "T1_MAR_2024_03_15": "T1_MAR_[withheld]",
        "T2 MAR 2024 03 15": "T2 MAR [withheld]",
        "T2 SAG 1 2 2024_03_15": "T2 SAG 1 2 [withheld]",
        "b1000 Mar 15 2024": "b1000 [withheld]",
    }
    for text, expected in withheld.items():
        assert redact_identifiers(text, tokens) == expected, text
    # no false positives: sequence words, numbers, versions and other dates stay
    for text in (
        "ep2d_diff_b50_b800_b1000",
        "3D T2 SPACE 2D",
        "v1.2.3 b1000",
        "T2 SAG 2024_03_14",
        "t2 14.03.24",
        "T2 14-Mar-2024 Mar 17 2024",
        "DWI 20240314103000",
        "DWI 2024031510300",  # 13 digits: no date-time
        "T2 SAG 3 15 24",  # a two-digit year after a blank: numbers, not a date
        "Summary 15 2024 mar15",
    ):
        assert redact_identifiers(text, tokens) == text, text


def test_site_words_are_withheld_whole_and_without_function_words() -> None:
    """A review: InstitutionName "Hospital for Special Surgery" turned ``T2 SAG for disc``
    into ``T2 SAG [withheld] disc``, and "MR1 Zentrum" withheld ``dwi_mr1x`` (a site
    word of letters and digits was sought inside words, as a patient's ID is)."""
    from discquant.io.privacy import description_tokens, identifier_tokens, redact_identifiers

    hss = description_tokens(frozenset(), institution_name="Hospital for Special Surgery")
    assert redact_identifiers("T2 SAG for disc", hss) == "T2 SAG for disc"
    assert redact_identifiers("T2 SAG Special", hss) == "T2 SAG [withheld]"
    assert redact_identifiers("T2 HospitalForSpecialSurgery", hss) == "T2 [withheld]"
    for site, text in (
        ("Klinikum der Stadt und des Landes", "T2 der und des Landes"),
        ("Saint Mary of the Lake", "T2 SAG of the Saint"),
    ):
        tokens = description_tokens(frozenset(), institution_name=site)
        assert redact_identifiers(text, tokens) == text.replace(site.split()[-1], "[withheld]")

    mr1 = description_tokens(
        identifier_tokens("AB1234", "DOE^JANE"), institution_name="MR1 Zentrum"
    )
    for text in ("dwi_mr1x", "DWI XMR1", "t2-mr12-sag"):
        assert redact_identifiers(text, mr1) == text, text
    assert redact_identifiers("dwi_mr1", mr1) == "dwi_[withheld]"
    assert redact_identifiers("t2-MR1-sag", mr1) == "t2-[withheld]-sag"
    assert redact_identifiers("T2 MR1-Zentrum", mr1) == "T2 [withheld]"
    # the patient's ID of letters and digits is still withheld inside a word
    assert redact_identifiers("dwi_xab1234y", mr1) == "dwi_[withheld]"


def test_one_function_gives_both_importers_the_tokens_and_the_redaction() -> None:
    """The description's tokens and the sidecar's redaction were written out twice, in
    the DICOM and the NIfTI importer."""
    import pydicom

    from discquant.io.privacy import header_description_tokens, redact_sidecar_descriptions

    ds = pydicom.Dataset()
    ds.InstitutionName = "MR1 Zentrum"
    ds.StudyDate = "20240315"
    ds.AcquisitionDateTime = "20240316101500"
    sidecar = {"InstitutionName": "MR1 Zentrum", "StudyDate": "2024-03-15",
               "AcquisitionDateTime": "2024-03-16T10:15:00"}  # fmt: skip
    tokens = header_description_tokens(ds, frozenset({"doe"}))
    assert tokens == header_description_tokens(sidecar, frozenset({"doe"}))
    assert {"doe", "20240315", "20240316", "zentrum"} <= tokens
    described = {
        "SeriesDescription": "T2 Doe 15Mar2024 MR1",
        "ProtocolName": "t2_zentrum_mr1x",
        "EchoTime": 0.1,
    }
    redact_sidecar_descriptions(described, tokens)
    assert described == {
        "SeriesDescription": "T2 [withheld] [withheld] [withheld]",
        "ProtocolName": "t2_[withheld]_mr1x",
        "EchoTime": 0.1,
    }


def test_a_dicom_description_keeps_function_words_and_loses_an_underscored_date(
    lumbar_dicom: WrittenStudy, tmp_path: Path
) -> None:
    """``T2_TSE_SAG_for_2024_01_02`` (the factory's StudyDate, underscored) kept its date,
    and lost the ``for`` of "Hospital for Special Surgery"."""
    import shutil

    import pydicom

    folder = tmp_path / "study"
    shutil.copytree(lumbar_dicom.root, folder)
    for path in (p for p in folder.rglob("*") if p.is_file()):
        path.chmod(0o644)
        ds = pydicom.dcmread(path)
        ds.InstitutionName = "Hospital for Special Surgery"
        if ds.SeriesDescription == "T2_TSE_SAG":
            ds.SeriesDescription = "T2_TSE_SAG_for_2024_01_02"
        ds.save_as(path)
    study = load_study(folder)
    expected = "T2_TSE_SAG_for_[withheld]"
    assert study.t2 is not None and study.t2.description == expected
    assert study.t2.provenance.sidecar["SeriesDescription"] == expected


def test_a_truncated_file_named_after_the_patient_is_withheld_from_the_error(
    tmp_path: Path,
) -> None:
    """The study's only series cut short, its files named after the patient: the one-line
    error (and through it a cohort's failure table and report) gave the patient's name,
    while the same file beside a usable series was named '(withheld)' (an audit)."""
    from tests.io.dicom_factory import write_lumbar_study

    written = write_lumbar_study(tmp_path / "export")
    broken = tmp_path / "broken" / "T2"
    broken.mkdir(parents=True)
    surname = PHI["PatientName"].split("^")[0]
    for f in written.series["t2"].files:
        data = f.read_bytes()
        (broken / f"{surname}_{PHI['PatientID']}_{f.name}").write_bytes(data[: len(data) - 64])
    with pytest.raises(DiscquantError, match="truncated DICOM file") as err:
        load_study(tmp_path / "broken")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'broken' / 'T2' / '(withheld)'}: "), message
    _assert_clean(message, "the error")


def test_inspect_withholds_identifiers_in_the_series_of_several_patients(tmp_path: Path) -> None:
    """`inspect`'s list of a folder of two patients gave a description holding the
    patient's name and a folder NAME_MRN as they were (an audit)."""
    import pydicom
    from tests.io.dicom_factory import write_lumbar_study

    write_lumbar_study(tmp_path / "both" / "p1")
    other = {**PHI, "PatientID": "PIDX-OTHER-2", "PatientName": "Wqxjv^Person"}
    written = write_lumbar_study(tmp_path / "both" / "Wqxjv_PIDX-OTHER-2", phi=other, seed=1)
    for f in written.series["t2"].files:
        ds = pydicom.dcmread(f)
        ds.SeriesDescription = "T2 SAG Wqxjv"
        ds.save_as(f)
    result = CliRunner().invoke(app, ["inspect", "--json", str(tmp_path / "both")])
    assert result.exit_code == 2, result.output
    listed = json.loads(result.stdout)["series"]
    assert "T2 SAG [withheld]" in {r["description"] for r in listed}
    assert {r["folder"].split("/")[0] for r in listed} == {"p1", "(withheld)"}
    assert "PIDX" not in result.output and "wqxjv" not in result.output.lower()
    kept = CliRunner().invoke(app, ["inspect", "--json", "--keep-phi", str(tmp_path / "both")])
    assert "T2 SAG Wqxjv" in {r["description"] for r in json.loads(kept.stdout)["series"]}


def test_identifiers_nested_in_sequences_are_refused_in_labels(
    lumbar_dicom: WrittenStudy, tmp_path: Path
) -> None:
    """An ID in OtherPatientIDsSequence and an accession number in RequestAttributesSequence
    passed the label check, and --keep-phi showed the nested accession number for the
    header's own (dcm2niix's sidecar takes the nested one; an audit)."""
    import shutil

    import pydicom
    from pydicom.dataset import Dataset

    from discquant.errors import InvalidInputError
    from discquant.pipeline import StudyInputs, run_study

    folder = tmp_path / "study"
    shutil.copytree(lumbar_dicom.root, folder)
    for f in (f for f in folder.rglob("*") if f.is_file()):
        ds = pydicom.dcmread(f)
        other, request = Dataset(), Dataset()
        other.PatientID = "NESTID7731"
        request.AccessionNumber = "NESTACC8842"
        request.RequestedProcedureID = "RP1"
        ds.OtherPatientIDsSequence = [other]
        ds.RequestAttributesSequence = [request]
        ds.save_as(f)
    for label in ("NESTID7731", "NESTACC8842"):
        with pytest.raises(InvalidInputError, match="holds the patient's ID or name"):
            run_study(StudyInputs(path=folder, subject=label), tmp_path / "out")
    t2 = load_study(folder, keep_phi=True).t2
    assert t2 is not None and t2.provenance.sidecar["AccessionNumber"] == PHI["AccessionNumber"]


def test_image_comments_and_the_site_address_are_scrubbed_from_sidecars() -> None:
    """dcm2niix copies ImageComments into its sidecar: an audit's "IMGCOMMENTX Zorblatt"
    (the patient's name) and the InstitutionAddress reached Provenance.sidecar."""
    sidecar = {"ImageComments": "IMGCOMMENTX Zorblatt", "InstitutionAddress": "1 Main St",
               "EchoTime": 0.1, "InstitutionName": "Mercy"}  # fmt: skip
    assert scrub_sidecar(sidecar) == {"EchoTime": 0.1, "InstitutionName": "Mercy"}
    assert scrub_sidecar(sidecar, keep_phi=True) == sidecar


def test_highdicom_lines_at_verbose_withhold_uids(capsys: pytest.CaptureFixture[str]) -> None:
    """At --verbose highdicom logged the source's SOP Instance UID as it copied the
    patient module; a vendor UID holds the scanner's serial number and the scan time (an
    audit)."""
    from discquant.cli._common import setup_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("highdicom").level)
    try:
        setup_logging(verbose=True)
        uid = "1.3.12.2.1107.5.2.43.67060.2024100913450581287107065"
        logging.getLogger("highdicom.base").info(
            'copy Patient-related attributes from dataset "%s"', uid
        )
        logging.getLogger("discquant.outputs").info("kept: %s", "1.2.3.4.5.6")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("highdicom").setLevel(saved[2])
    err = capsys.readouterr().err
    assert 'copy Patient-related attributes from dataset "[uid]"' in err
    assert uid not in err and "kept: 1.2.3.4.5.6" in err  # discquant's own lines untouched
