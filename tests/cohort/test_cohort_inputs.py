"""What a cohort's input becomes: sidecars in the fingerprint, manifest line numbers, blank
rows, folders of a BIDS root that are not ``sub-*``, absolute paths for remote workers, and
the run summary ``cohort_run.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.cohort import standin

from discquant.cohort import CohortStudy, input_fingerprint, read_cohort, run_cohort
from discquant.cohort import run as cohort_run
from discquant.cohort.manifest import input_files
from discquant.cohort.tables import DISCS_PARQUET, write_cohort_tables
from discquant.errors import InvalidInputError
from discquant.pipeline import StudyInputs

ADC = [2.0, 1.9, 1.8, 1.7, 1.6]


def _nifti_study(folder: Path, adc: list[float]) -> Path:
    """T2 and DWI "images" with the sidecars the import would read next to them.

    The stand-in never opens the images; only their bytes and names matter here.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sub-a_T2w.nii.gz").write_bytes(b"t2 image")
    (folder / "sub-a_T2w.json").write_text('{"SeriesDescription": "T2"}')
    (folder / "sub-a_dwi.nii.gz").write_bytes(b"dwi image")
    (folder / "sub-a_dwi.bval").write_text("0 800\n")
    (folder / "sub-a_dwi.bvec").write_text("0 1\n0 0\n0 0\n")
    (folder / "sub-a_dwi.json").write_text(json.dumps({"adc": adc}))
    return folder


# 1. sidecars next to a named NIfTI file are fingerprinted


def test_sidecars_of_named_nifti_files_are_in_the_fingerprint(tmp_path: Path) -> None:
    data = _nifti_study(tmp_path / "data", ADC)
    inputs = StudyInputs(t2=data / "sub-a_T2w.nii.gz", dwi=data / "sub-a_dwi.nii.gz")
    roles = [role for role, _ in input_files(inputs)]
    assert roles == ["t2", "dwi", "t2.json", "dwi.bval", "dwi.bvec", "dwi.json"]
    digest, n_files = input_fingerprint(inputs)
    assert n_files == 6
    (data / "sub-a_dwi.bval").write_text("0 1000\n")
    changed, _ = input_fingerprint(inputs)
    assert changed != digest
    (data / "sub-a_dwi.bvec").write_text("0 0\n0 1\n0 0\n")
    assert input_fingerprint(inputs)[0] != changed
    # a sidecar named in its own column is hashed once, under that column
    named = StudyInputs(dwi=data / "sub-a_dwi.nii.gz", bval=data / "sub-a_dwi.bval")
    assert [role for role, _ in input_files(named)] == ["dwi", "bval", "dwi.bvec", "dwi.json"]


def test_resume_redoes_a_study_whose_sidecar_changed(tmp_path: Path) -> None:
    data = _nifti_study(tmp_path / "data", ADC)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("subject,t2,dwi\na,data/sub-a_T2w.nii.gz,data/sub-a_dwi.nii.gz\n")
    out = tmp_path / "out"
    studies = read_cohort(manifest)
    first = run_cohort(studies, out, workers=1, study_fn=standin.sidecar_study)
    assert first.done == 1
    new = [round(v - 0.5, 4) for v in ADC]
    (data / "sub-a_dwi.json").write_text(json.dumps({"adc": new}))  # not a manifest column
    second = run_cohort(studies, out, workers=1, study_fn=standin.sidecar_study)
    assert [(o.subject, o.status) for o in second.outcomes] == [("a", "complete")]
    assert second.skipped == 0
    discs = pd.read_csv(out / "cohort_discs.csv")
    assert discs["adc_np_median_um2_per_ms"].tolist() == pytest.approx(new)


# 3. manifest line numbers after blank lines


def test_manifest_sources_give_the_real_line_after_blank_lines(tmp_path: Path) -> None:
    t2 = _nifti_study(tmp_path / "data", ADC) / "sub-a_T2w.nii.gz"
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(
        "subject,t2,dwi\n"  # line 1
        f"A1,{t2},\n"  # line 2
        "\n"  # line 3: blank
        f'"B 2","{t2}",\n'  # line 4
        "\n\n"  # lines 5 and 6: blank
        "C3,missing.nii.gz,\n"  # line 7
    )
    studies = read_cohort(manifest)
    assert [(s.subject, s.source) for s in studies] == [
        ("A1", "cohort.csv line 2"),
        ("B2", "cohort.csv line 4"),
        ("C3", "cohort.csv line 7"),
    ]
    out = tmp_path / "out"
    out.mkdir()
    write_cohort_tables(out, studies)  # A1 and B2 never ran: listed as "not run"
    failures = pd.read_csv(out / "cohort_failures.csv").set_index("subject")
    assert failures["source"].to_dict() == {
        "A1": "cohort.csv line 2",
        "B2": "cohort.csv line 4",
        "C3": "cohort.csv line 7",
    }
    assert failures.loc["C3", "where"] == "manifest"


# 4. rows of bare separators


def test_rows_of_bare_separators_are_skipped(tmp_path: Path) -> None:
    from discquant.errors import InvalidInputError

    t2 = _nifti_study(tmp_path / "data", ADC) / "sub-a_T2w.nii.gz"
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(
        "subject,t2,dwi,bval,bvec\n"
        ",,,,\n"  # line 2: bare separators (spreadsheet export)
        f"A1,{t2},,,\n"  # line 3
        ",,,,\n"
        " , ,\t, ,\n"  # whitespace only
        ",,,,,,\n"  # more separators than columns
    )
    studies = read_cohort(manifest)
    assert [(s.subject, s.source, s.error) for s in studies] == [("A1", "cohort.csv line 3", None)]
    out = tmp_path / "out"
    out.mkdir()
    tables = write_cohort_tables(out, studies)
    assert tables.failures["where"].tolist() == ["not run"]  # no "no subject" failure
    manifest.write_text("subject,t2\n,\n\n , \n")
    with pytest.raises(InvalidInputError, match="manifest has no rows"):
        read_cohort(manifest)


@pytest.mark.parametrize("parts", [("anat", "dwi"), ("ses-1", "ses-2")])
def test_one_subjects_folder_is_not_a_folder_of_studies(
    tmp_path: Path, parts: tuple[str, str]
) -> None:
    """A subject folder given as the cohort input made its anat/ and dwi/ two subjects,
    a T2 alone and a DWI alone, both complete, exit 0 (a user trial)."""
    for part in parts:
        standin.make_study(tmp_path / "sub-01" / part, ADC)
    with pytest.raises(InvalidInputError, match=r"is one subject's folder \(.*/\), not a folder"):
        read_cohort(tmp_path / "sub-01")
    assert len(read_cohort(tmp_path)) >= 1  # its parent is a cohort


# 5. folders of a BIDS root that are not sub-*


def test_non_subject_folders_of_a_bids_root_are_failed_studies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "bids"
    standin.make_study(root / "sub-p00", ADC)
    for name in ("P001", "P002", "derivatives", "code", "sourcedata", ".git"):
        (root / name).mkdir()
    (root / "README").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="discquant.cohort"):
        studies = read_cohort(root)
    assert [(s.subject, s.error is None) for s in studies] == [
        ("p00", True),
        ("P001", False),
        ("P002", False),
    ]
    assert studies[1].source == str(root / "P001")
    assert "does not start with 'sub-'" in (studies[1].error or "")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and all("not a BIDS subject folder" in m for m in warned)
    assert str(root / "P002") in warned[1]

    out = tmp_path / "out"
    run = run_cohort(studies, out, workers=1, study_fn=standin.standin_study)
    assert (run.total, run.done, run.failed) == (3, 1, 2)
    failures = pd.read_csv(out / "cohort_failures.csv")
    assert failures["subject"].tolist() == ["P001", "P002"]
    # relative to the BIDS root, as a subject folder's: the absolute path named the
    # folders above the cohort in a table meant to be passed on (an audit)
    assert failures["source"].tolist() == ["P001", "P002"]
    assert failures["error"].str.contains("not a BIDS subject folder").all()
    assert set(pd.read_csv(out / "cohort_discs.csv")["subject"]) == {"p00"}
    for name in ("cohort_failures.csv", "cohort_report.html"):
        assert str(tmp_path) not in (out / name).read_text(), name


# 2. relative input and output paths reach the workers absolute


class _Submitted(Exception):
    """Raised by the fake client once the tasks are submitted (nothing runs)."""


class _FakeClient:
    """Stands in for a ``distributed.Client`` on a remote scheduler: records what it is sent."""

    def __init__(self) -> None:
        self.scheduler = type("Scheduler", (), {"address": "tcp://remote:8786"})()
        self.sent: dict[str, Any] = {}

    def map(self, fn: Any, studies: list[CohortStudy], **kwargs: Any) -> list[Any]:
        self.sent = {"studies": list(studies), **kwargs}
        raise _Submitted

    def close(self) -> None:
        pass


def test_relative_inputs_and_out_dir_are_sent_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.make_study(tmp_path / "data" / "s00", ADC)
    _nifti_study(tmp_path / "nifti", ADC)
    (tmp_path / "cohort.csv").write_text(
        "subject,dicom,t2,dwi\ns00,data/s00,,\ns01,,nifti/sub-a_T2w.nii.gz,nifti/sub-a_dwi.nii.gz\n"
    )
    monkeypatch.chdir(tmp_path)
    client = _FakeClient()
    monkeypatch.setattr(cohort_run, "connect_scheduler", lambda scheduler: client)
    studies = read_cohort(Path("cohort.csv"))
    assert studies[0].inputs.path == tmp_path / "data" / "s00"
    assert studies[1].inputs.dwi == tmp_path / "nifti" / "sub-a_dwi.nii.gz"
    by_hand = CohortStudy("s02", StudyInputs(path=Path("data/s00"), subject="s02"), "by hand")
    with pytest.raises(_Submitted):
        run_cohort(
            [*studies, by_hand],
            Path("out"),
            scheduler="tcp://remote:8786",
            study_fn=standin.standin_study,
        )
    assert client.sent["out_dir"] == str(tmp_path / "out")
    sent = client.sent["studies"]
    assert [s.subject for s in sent] == ["s00", "s01", "s02"]
    paths = [
        getattr(s.inputs, role)
        for s in sent
        for role in ("path", "t2", "dwi")
        if getattr(s.inputs, role) is not None
    ]
    assert len(paths) == 4 and all(p.is_absolute() for p in paths)
    assert sent[2].inputs.path == tmp_path / "data" / "s00"


# 6. cohort_run.json holds the cohort's status counts


def test_cohort_run_json_has_the_cohort_status(tmp_path: Path) -> None:
    for i in range(2):
        standin.make_study(tmp_path / "data" / f"s{i:02d}", ADC)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("subject,path\ns00,data/s00\ns01,data/s01\ns02,data/gone\n")
    out = tmp_path / "out"
    run = run_cohort(read_cohort(manifest), out, workers=1, study_fn=standin.standin_study)
    assert run.cohort_status == {"complete": 2, "failed": 1}
    written = json.loads((out / "cohort_run.json").read_text())
    assert written["cohort_status"] == {"complete": 2, "failed": 1}
    assert (written["total"], written["done"], written["failed"]) == (3, 2, 1)


def test_a_manifest_cell_over_the_csv_field_limit_is_one_error(tmp_path: Path) -> None:
    """csv refuses fields over 131,072 characters: was a csv.Error traceback."""
    from discquant.errors import InvalidInputError

    manifest = tmp_path / "cohort.csv"
    manifest.write_text("subject,t2\nA1,x.nii.gz\n" + "B2," + "y" * 200_000 + "\n")
    with pytest.raises(InvalidInputError, match=r"after line 2: field larger than field limit"):
        read_cohort(manifest)


def test_labels_that_differ_only_in_case_clash(tmp_path: Path) -> None:
    """S01 and s01 name one folder on macOS and Windows: the second is refused."""
    for name in ("S01", "s01"):
        standin.make_study(tmp_path / "data" / name, ADC)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("subject,dicom\nS01,data/S01\ns01,data/s01\n")
    studies = read_cohort(manifest)
    assert studies[0].error is None
    assert studies[1].error is not None and "differ only in case" in studies[1].error


def test_a_cohort_into_a_raw_root_is_refused_and_its_own_description_is_kept(
    tmp_path: Path,
) -> None:
    """The cohort runner wrote its dataset_description.json over whatever was there (a
    raw BIDS root's Name, Authors, License)."""
    from discquant.errors import InvalidInputError
    from discquant.outputs.derivatives import dataset_description

    folder = standin.make_study(tmp_path / "s1", [1.5, 1.4, 1.3, 1.2, 1.1])
    studies = [CohortStudy("s1", StudyInputs(path=folder, subject="s1"), "by hand")]
    raw = tmp_path / "raw"
    raw.mkdir()
    description = {"Name": "Lumbar cohort", "BIDSVersion": "1.9.0", "DatasetType": "raw"}
    (raw / "dataset_description.json").write_text(json.dumps(description))
    with pytest.raises(InvalidInputError, match="raw BIDS dataset"):
        run_cohort(studies, raw, workers=1, study_fn=standin.standin_study)
    assert sorted(p.name for p in raw.iterdir()) == ["dataset_description.json"]
    assert json.loads((raw / "dataset_description.json").read_text()) == description
    # discquant's own, with a note a user added: kept byte for byte
    ours = tmp_path / "ours"
    ours.mkdir()
    text = json.dumps({**dataset_description(), "Acknowledgements": "thanks"}, indent=1)
    (ours / "dataset_description.json").write_text(text)
    run = run_cohort(studies, ours, workers=1, study_fn=standin.standin_study)
    assert [o.status for o in run.outcomes] == ["complete"]
    assert (ours / "dataset_description.json").read_text() == text


def test_a_manifest_row_with_a_field_beyond_the_header_fails_that_study(tmp_path: Path) -> None:
    # The header lacks the dwi column: csv.DictReader dropped the row's DWI path unread,
    # and the study would have run as T2-only without a word.
    t2 = _nifti_study(tmp_path / "data", ADC) / "sub-a_T2w.nii.gz"
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"subject,t2\nA1,{t2},{t2}\nB2,{t2},,\n")
    studies = read_cohort(manifest)
    assert [(s.subject, s.source) for s in studies] == [
        ("A1", "cohort.csv line 2"),
        ("B2", "cohort.csv line 3"),
    ]
    assert "1 non-empty field(s) beyond the header's 2 columns" in (studies[0].error or "")
    assert studies[1].error is None  # empty trailing fields are harmless


# manifest columns: spelling, covariates, sessions


@pytest.mark.parametrize(
    ("column", "meant"),
    [("t2w", "t2"), ("T2w", "t2"), ("bvals", "bval"), ("dwi_file", "dwi"), ("sesion", "session"),
     ("ses", "session"), ("t2 path", "t2")],
)  # fmt: skip
def test_a_manifest_column_meant_as_an_input_is_refused(
    tmp_path: Path, column: str, meant: str
) -> None:
    """`t2w` was dropped without a word: every study ran from its DWI alone, reported
    complete with exit 0 (a user trial)."""
    data = _nifti_study(tmp_path / "data", ADC)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"subject,{column},dicom\na,x,{data}\n")
    with pytest.raises(InvalidInputError) as err:
        read_cohort(manifest)
    assert str(err.value) == (
        f"{manifest}: manifest column {column!r} is not read: did you mean {meant!r}? "
        "(columns read: subject, session, t2, dwi, bval, bvec, adc, dicom, path)"
    )


def test_manifest_columns_match_ignoring_case_and_covariates_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`T2`, `DWI` were dropped as `t2w` was, while `Subject` was refused; a covariate
    column (age) is a study's own business: named once, not refused."""
    data = _nifti_study(tmp_path / "data", ADC)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(
        "Subject, T2 ,DWI,age,adc_ref,t2_grade\n"
        "a,data/sub-a_T2w.nii.gz,data/sub-a_dwi.nii.gz,61,1.4,3\n"
    )
    with caplog.at_level(logging.WARNING):
        (study,) = read_cohort(manifest)
    assert study.error is None
    assert study.inputs.t2 == data / "sub-a_T2w.nii.gz"
    assert study.inputs.dwi == data / "sub-a_dwi.nii.gz"
    # an input's name beside other words than "file", "path", ... is a covariate (a review)
    assert "cohort.csv: column(s) 'age', 'adc_ref', 't2_grade' not read" in caplog.text


def test_a_manifest_session_column_gives_each_visit_its_own_study(tmp_path: Path) -> None:
    """A `session` column was ignored: the second visit failed as a repeated subject."""
    first = _nifti_study(tmp_path / "v1", ADC)
    second = _nifti_study(tmp_path / "v2", ADC)
    ses3 = _nifti_study(tmp_path / "bids" / "sub-c" / "ses-3", ADC)
    dated = _nifti_study(tmp_path / "bids" / "sub-f" / "ses-2024-01-05", ADC)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(
        "subject,session,dicom\n"
        f"a,1,{first}\n"
        f"a,ses-2,{second}\n"
        f"b_ses-4,5,{second}\n"  # two sessions for one row
        f"c,,{ses3}\n"  # a BIDS session folder keeps its session
        f"d,x-1,{first}\n"
        f"e_ses-2,,{ses3}\n"  # the subject's session against the folder's
        f"f,,{dated}\n"  # a folder's session is a label too
    )
    studies = read_cohort(manifest)
    assert [(s.subject, s.error) for s in studies] == [
        ("a_ses-1", None),
        ("a_ses-2", None),
        ("b_ses-4", "the session column names session '5' and the subject '4'"),
        ("c_ses-3", None),
        ("d", "the session column: session 'x-1' is not a BIDS label (letters and digits)"),
        ("e_ses-2", "the folder ses-3 names session '3' and the subject '2'"),
        ("f", "the folder ses-2024-01-05: session '2024-01-05' is not a BIDS label (letters "
              "and digits)"),
    ]  # fmt: skip


# privacy: a study whose label holds the patient's ID, and the disc table's source


def test_a_study_refused_for_an_identifying_label_is_recorded_without_it(tmp_path: Path) -> None:
    """A study folder named after the patient's ID was refused (as ``discquant analyze``
    refuses it), and then listed under that label and its absolute path in
    cohort_failures.csv, the report and its record (named after the label). The disc
    table's source held absolute paths."""
    from tests.io.dicom_factory import PHI, write_lumbar_study

    root = tmp_path / "studies"
    standin.make_study(root / "s01", ADC)
    write_lumbar_study(root / PHI["PatientID"], size=16)  # PIDX-8675309-Q
    out = tmp_path / "out"
    run = run_cohort(read_cohort(root), out, workers=1, study_fn=standin.label_checked_study)
    assert (run.total, run.done, run.failed) == (2, 1, 1)
    failures = pd.read_csv(out / "cohort_failures.csv", keep_default_na=False)
    assert failures[["subject", "session", "source"]].values.tolist() == [
        ["(withheld)", "", "study folder 1 of 2"]
    ]
    assert failures.loc[0, "error"].startswith("the subject label")
    assert "holds the patient's ID or name" in failures.loc[0, "error"]
    withheld = next(o for o in run.outcomes if o.status == "failed")  # the progress line's
    assert withheld.name == "study folder 1 of 2" and "PIDX" not in withheld.error
    (record_file,) = (out / ".discquant-cohort" / "records").glob("withheld-*.json")
    record = json.loads(record_file.read_text())
    assert record["withheld"] is True and record["subject"] == "(withheld)"
    # named by a keyed digest: a plain hash of a guessed ID would confirm it
    plain = {
        hashlib.sha256(x.encode()).hexdigest()[:16] for x in ("PIDX8675309Q", PHI["PatientID"])
    }
    assert record_file.stem.removeprefix("withheld-") not in plain
    key = out / ".discquant-cohort" / "withheld-key"
    assert len(key.read_bytes()) == 32 and key.stat().st_mode & 0o007 == 0  # no others
    written = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}
    for name, path in written.items():
        text = name + (path.read_text(errors="replace") if path.suffix != ".parquet" else "")
        for needle in ("pidx", "8675309"):
            assert needle not in text.lower(), (needle, name)
    for name in ("cohort_discs.csv", "cohort_failures.csv", "cohort_report.html"):
        assert str(tmp_path) not in (out / name).read_text(), name
    discs = pd.read_csv(out / "cohort_discs.csv")
    assert set(discs["source"]) == {"s01"}  # relative to the folder of studies
    assert pd.read_parquet(out / DISCS_PARQUET)["source"].tolist() == ["s01"] * len(ADC)


def test_other_failed_rows_of_an_identifying_subject_are_withheld_too(tmp_path: Path) -> None:
    """A manifest row whose label is the patient's ID was withheld, but a second row with
    the same label (refused as a duplicate), one without its session and one whose input
    was missing were tabled, reported and logged under the label (an audit)."""
    from tests.io.dicom_factory import PHI, write_lumbar_study

    label = "PIDX8675309Q"  # the letters and digits of PHI["PatientID"]
    study = write_lumbar_study(tmp_path / "dicom" / "p1", size=16).root
    ok = standin.make_study(tmp_path / "s01", ADC)
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(
        "subject,session,dicom\n"
        f"{label},1,{study}\n"
        f"{label},1,{study}\n"  # the same label again
        f"{label},,{study}\n"  # no session, beside the subject's sessions
        f"{label},3,{tmp_path / 'missing'}\n"
        f"s01,,{ok}\n"
    )
    out = tmp_path / "out"
    run = run_cohort(read_cohort(manifest), out, workers=1, study_fn=standin.label_checked_study)
    assert (run.total, run.done, run.failed) == (5, 1, 4)
    failures = pd.read_csv(out / "cohort_failures.csv", keep_default_na=False)
    assert failures[["subject", "source"]].values.tolist() == [
        ["(withheld)", f"cohort.csv line {n}"] for n in (2, 3, 4, 5)
    ]
    assert failures.loc[1, "error"] == "its subject label is already used by cohort.csv line 2"
    assert sorted(o.name for o in run.outcomes if o.status == "failed") == [
        f"cohort.csv line {n}" for n in (2, 3, 4, 5)
    ]
    for o in run.outcomes:
        assert "8675309" not in o.error, o
    written = [p for p in out.rglob("*") if p.is_file() and p.suffix != ".parquet"]
    for path in written:
        text = path.relative_to(out).as_posix() + path.read_text(errors="replace")
        assert "8675309" not in text, path
    assert PHI["PatientID"].replace("-", "") == label


def test_a_folder_in_a_file_column_is_named_a_folder(tmp_path: Path) -> None:
    """A folder in a manifest's t2 column failed with "--t2 file does not exist" (it
    exists: it is a folder) and the path as given, ``man/../data`` (an audit)."""
    folder = tmp_path / "data" / "s00"
    standin.make_study(folder, ADC)
    (tmp_path / "man").mkdir()
    manifest = tmp_path / "man" / "cohort.csv"
    manifest.write_text("subject,t2\ns00,../data/s00\n")
    (study,) = read_cohort(manifest)
    assert study.error is None
    with pytest.raises(InvalidInputError) as raised:
        input_fingerprint(study.inputs)
    assert str(raised.value) == (
        f"{folder}: the t2 input is a folder, not a file: name its image file (a DICOM "
        "folder goes in the dicom column)"
    )
