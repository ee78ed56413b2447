"""The cohort runner's plumbing with a light stand-in for the pipeline (tests/cohort/standin.py).

Known values go in (each stand-in study names its five nucleus ADCs); the cohort tables
must hold exactly those values, once each, and the failures exactly the bad studies.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from tests.cohort import standin

from discquant.cohort import CohortOptions, read_cohort, run_cohort
from discquant.cohort import records as rec
from discquant.results import LEVELS


def _adc(i: int) -> list[float]:
    return [round(2.0 - 0.1 * j - 0.01 * i, 4) for j in range(5)]


def _run(studies, out: Path, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("workers", 2)
    return run_cohort(studies, out, study_fn=standin.standin_study, **kw)


def _two_finished(tmp_path: Path) -> tuple[list, Path]:  # type: ignore[type-arg]
    """Two stand-in studies under ``tmp_path/data``, analysed into ``tmp_path/out``."""
    data = tmp_path / "data"
    for i in range(2):
        standin.make_study(data / f"sub-s{i:02d}", _adc(i))
    out = tmp_path / "out"
    studies = read_cohort(data)
    assert _run(studies, out, workers=1).done == 2
    return studies, out


def _in_process(studies: list, out: Path, options: CohortOptions | None = None) -> None:  # type: ignore[type-arg]
    """Analyse stand-in studies into ``out`` in this process, as a worker would (no
    cluster to start: a second instead of several)."""
    from discquant.cohort.worker import process_study

    for study in studies:
        outcome = process_study(study, str(out), options or CohortOptions(), standin.standin_study)
        assert outcome.status == "complete", outcome


def _analysed(tmp_path: Path, n: int, options: CohortOptions | None = None) -> tuple[list, Path]:  # type: ignore[type-arg]
    """``n`` stand-in studies under ``tmp_path/data``, analysed in this process into
    ``tmp_path/out`` (:func:`_in_process`); their studies and the cohort folder."""
    data = tmp_path / "data"
    for i in range(n):
        standin.make_study(data / f"sub-s{i:02d}", _adc(i))
    studies = read_cohort(data)
    out = tmp_path / "out"
    _in_process(studies, out, options)
    return studies, out


def _expected(n: int, skip: set[int] = frozenset()) -> pd.DataFrame:  # type: ignore[assignment]
    rows = [
        {"subject": f"s{i:02d}", "level": lv, "adc_np_median_um2_per_ms": v}
        for i in range(n)
        if i not in skip
        for lv, v in zip(LEVELS, _adc(i), strict=True)
    ]
    return pd.DataFrame(rows)


def test_manifest_missing_path_fails_that_row_only(tmp_path: Path) -> None:
    for i in range(3):
        standin.make_study(tmp_path / "data" / f"s{i:02d}", _adc(i))
    manifest = tmp_path / "cohort.tsv"
    manifest.write_text(
        "subject\tdicom\n"
        "s00\tdata/s00\n"
        "s01\tdata/does-not-exist\n"
        "s02\tdata/s02\n"
        "s-02\tdata/s02\n"  # the same label as s02 after BIDS cleaning: a clash
    )
    studies = read_cohort(manifest)
    assert [s.error is None for s in studies] == [True, False, True, False]
    out = tmp_path / "out"
    shown: dict[str, str] = {}  # the progress line's error of each study, as said

    def progress(state):  # type: ignore[no-untyped-def]
        shown[state.last.name] = state.last_error

    run = _run(studies, out, progress=progress)
    assert (run.done, run.failed, run.skipped) == (2, 2, 0)
    assert run.cohort_status == {"complete": 2, "failed": 2}
    # the progress line gave the absolute path (a review); the table's relative one now
    assert "input not found: dicom=data/does-not-exist" in shown.values()
    assert not any(str(tmp_path) in error for error in shown.values())
    discs = pd.read_csv(out / "cohort_discs.csv")
    got = discs[["subject", "level", "adc_np_median_um2_per_ms"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _expected(3, skip={1}), check_dtype=False)
    failures = pd.read_csv(out / "cohort_failures.csv")
    assert list(failures["subject"]) == ["s01", "s02"]
    # as the manifest names it: the absolute path named the folders above the cohort in
    # a table meant to be passed on (an audit)
    assert failures.loc[0, "error"] == "input not found: dicom=data/does-not-exist"
    for name in ("cohort_failures.csv", "cohort_report.html"):
        assert str(tmp_path) not in (out / name).read_text(), name
    assert failures.loc[0, "source"] == "cohort.tsv line 3"
    assert "already used by cohort.tsv line 4" in failures.loc[1, "error"]
    assert set(failures["where"]) == {"manifest"}
    parquet = pd.read_parquet(out / "cohort_discs.parquet")
    assert len(parquet) == 10 and parquet["input_fingerprint_sha256"].str.len().eq(64).all()


def test_killed_worker_is_retried_and_bad_input_is_recorded(tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    data = tmp_path / "data"
    for i in range(4):
        standin.make_study(data / f"sub-s{i:02d}", _adc(i), crash_marker=marker if i == 1 else None)
    (data / "sub-s03" / "values.json").write_text("{not json")  # corrupted input
    always = standin.make_study(data / "sub-s04", _adc(4))
    (always / "crash").write_text("always")  # kills every worker it lands on
    out = tmp_path / "out"
    run = _run(read_cohort(data), out, allowed_failures=1)
    assert marker.read_text() == "crashed"  # s01's first attempt did kill its worker
    assert (run.done, run.failed) == (3, 2)
    record = rec.read_record(out, "s01")
    assert record is not None and record["status"] == "complete"
    discs = pd.read_csv(out / "cohort_discs.csv")
    got = discs[["subject", "level", "adc_np_median_um2_per_ms"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _expected(3), check_dtype=False)
    failures = pd.read_csv(out / "cohort_failures.csv").set_index("subject")
    assert failures.loc["s03", "error_type"] == "InvalidInputError"
    assert failures.loc["s03", "where"] == "import"
    assert failures.loc["s04", "error_type"] == "KilledWorker"
    assert failures.loc["s04", "where"] == "worker"
    assert not any((out / ".discquant-cohort" / "tmp").iterdir())  # dead workers' leftovers removed
    report = (out / "cohort_report.html").read_text()
    assert report.count("data:image/png;base64,") == 3
    assert "KilledWorker" in report and "InvalidInputError" in report


def test_resume_skips_done_redoes_changed_partial_and_failed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i in range(4):
        standin.make_study(data / f"sub-s{i:02d}", _adc(i))
    (data / "sub-s03" / "values.json").write_text("{broken")
    out = tmp_path / "out"
    studies = read_cohort(data)
    first = _run(studies, out, workers=1)
    assert (first.done, first.failed) == (3, 1)
    before = {s: rec.read_record(out, s) for s in ("s00", "s01", "s02")}

    # s00 unchanged; s01's input changes; s02 was "interrupted" between move and record;
    # s03 gets fixed; a stale temporary folder from a killed run lies around.
    (data / "sub-s01" / "values.json").write_text(json.dumps({"adc": _adc(11)}))
    rec.record_path(out, "s02").unlink()
    (data / "sub-s03" / "values.json").write_text(json.dumps({"adc": _adc(3)}))
    stale = out / ".discquant-cohort" / "tmp" / "sub-s00-dead"
    stale.mkdir(parents=True)
    second = _run(studies, out, workers=1)
    by_subject = {o.subject: o.status for o in second.outcomes}
    assert by_subject == {"s00": "skipped", "s01": "complete", "s02": "complete", "s03": "complete"}
    # why a finished study was analysed again is said (a user trial read it as a failed
    # resume); s02 had no record and s03 had failed: nothing to say
    redone = {o.subject: o.redone for o in second.outcomes}
    assert redone == {"s00": "", "s01": "input_fingerprint_sha256", "s02": "", "s03": ""}
    assert second.cohort_status == {"complete": 4}  # s00 counted although skipped
    assert rec.read_record(out, "s00") == before["s00"]
    assert not stale.exists()
    discs = pd.read_csv(out / "cohort_discs.csv")
    assert len(discs) == 20 and not discs.duplicated(["subject", "level"]).any()
    s01 = discs.loc[discs["subject"] == "s01", "adc_np_median_um2_per_ms"].tolist()
    assert s01 == pytest.approx(_adc(11))
    assert pd.read_csv(out / "cohort_failures.csv").empty

    third = _run(studies, out, workers=1, options=CohortOptions(resume=False))
    assert third.skipped == 0 and third.done == 4


def test_a_disc_table_written_before_the_adc_columns_had_units(tmp_path: Path) -> None:
    """A study finished by an earlier version has a ``sub-<id>_discs.tsv`` with the old
    ADC names (``adc_np_median``, renamed 2026-12-05) and a record of other code: resume
    redoes it (the table gets the current names), and the tables of a run list such a
    record as outdated. Tables rebuilt by hand over that folder read it under the current
    names, so each ADC statistic is one column for every study."""
    from discquant.cohort import write_cohort_tables
    from discquant.cohort.worker import run_key
    from discquant.outputs.tables import RENAMED_COLUMNS

    studies, out = _two_finished(tmp_path)
    tsv = out / "sub-s00" / "sub-s00_discs.tsv"
    new_header, rest = tsv.read_text().split("\n", 1)
    new_to_old = {new: old for old, new in RENAMED_COLUMNS.items()}
    old_header = [new_to_old.get(c, c) for c in new_header.split("\t")]
    assert "adc_np_median" in old_header and "adc_np_n_voxels" in old_header

    def make_old() -> None:  # as an earlier version left the study
        tsv.write_text("\t".join(old_header) + "\n" + rest)
        record = rec.read_record(out, "s00")
        assert record is not None
        record["key"].pop("code_sha256")
        rec.write_record(out, "s00", record)

    make_old()
    second = _run(studies, out, workers=1)
    assert {o.subject: o.status for o in second.outcomes} == {"s00": "complete", "s01": "skipped"}
    assert tsv.read_text().split("\n", 1)[0] == new_header  # redone

    make_old()
    outdated = write_cohort_tables(out, studies, run_key=run_key(CohortOptions()))
    assert dict(zip(outdated.studies["subject"], outdated.studies["status"], strict=True)) == {
        "s00": "outdated", "s01": "complete",
    }  # fmt: skip
    assert "code_sha256" in outdated.failures.loc[0, "error"]

    by_hand = write_cohort_tables(out, studies)  # the records taken as they are
    discs = by_hand.discs
    assert not set(RENAMED_COLUMNS) & set(discs.columns)
    got = discs[["subject", "level", "adc_np_median_um2_per_ms"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _expected(2), check_dtype=False)
    assert discs["adc_np_p90_um2_per_ms"].notna().all()


def test_integer_columns_stay_integers_when_a_study_lacks_them(tmp_path: Path) -> None:
    """One study without grades (its table says n/a) turned every study's grades into
    floats in the cohort tables: the CSV read 3.0, the Parquet column was double (a user
    trial). They stay integers, the missing ones empty."""
    from discquant.cohort import write_cohort_tables

    studies, out = _two_finished(tmp_path)
    tsv = out / "sub-s00" / "sub-s00_discs.tsv"
    table = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    table["pfirrmann_grade"] = "n/a"  # as a study without a T2 writes it
    table.to_csv(tsv, sep="\t", index=False)
    other = out / "sub-s01" / "sub-s01_discs.tsv"  # and one grade withheld in the other
    table = pd.read_csv(other, sep="\t", dtype=str, keep_default_na=False)
    table.loc[4, "pfirrmann_grade"] = "n/a"
    table.to_csv(other, sep="\t", index=False)
    discs = write_cohort_tables(out, studies).discs
    assert str(discs["pfirrmann_grade"].dtype) == "Int64"
    assert str(discs["adc_np_n_voxels"].dtype) == "Int64"
    grades = discs.set_index("subject")["pfirrmann_grade"]
    assert grades["s00"].isna().all() and list(grades["s01"][:4]) == [1, 2, 3, 4]
    csv = pd.read_csv(out / "cohort_discs.csv", dtype=str, keep_default_na=False)
    assert list(csv.loc[csv["subject"] == "s01", "pfirrmann_grade"]) == ["1", "2", "3", "4", ""]
    assert str(pd.read_parquet(out / "cohort_discs.parquet")["pfirrmann_grade"].dtype) == "Int64"


def test_sessions_of_one_subject_are_one_subject_in_the_tables(tmp_path: Path) -> None:
    """Two visits of one patient read ``01ses1`` and ``01ses2`` in the subject column and
    lay in ``sub-01ses1/``: nothing said they were one patient. Each session now has its
    BIDS folder and the tables a ``session`` column beside the subject."""
    data = tmp_path / "data"
    for i, name in enumerate(("v1", "v2", "other")):
        standin.make_study(data / name, _adc(i))
    manifest = tmp_path / "cohort.csv"
    rows = "sub-01_ses-2,data/v2\nsub-01_ses-1,data/v1\n02,data/other\nsub-01_ses-3,data/gone\n"
    # a study of the subject without a session would replace sub-01/ with its sessions in it
    manifest.write_text("subject,path\n01,data/other\n" + rows)
    out = tmp_path / "out"
    assert _run(read_cohort(manifest), out, workers=1).done == 3
    failures = pd.read_csv(out / "cohort_failures.csv", dtype=str, keep_default_na=False)
    assert failures[["subject", "session"]].values.tolist() == [["01", ""], ["01", "3"]]
    assert "has no session, but sessions of that subject" in failures["error"][0]
    assert (out / "sub-01" / "ses-1" / "sub-01_ses-1_discs.tsv").is_file()
    assert (out / "sub-01" / "ses-2" / "sub-01_ses-2_discs.tsv").is_file()
    assert rec.read_record(out, "01_ses-2")["status"] == "complete"
    discs = pd.read_csv(out / "cohort_discs.csv", dtype={"subject": str, "session": str})
    assert list(discs.columns[:4]) == ["subject", "session", "status", "level"]
    by_study = discs.groupby(["subject", "session"], dropna=False)["adc_np_median_um2_per_ms"]
    got = {(s, "" if pd.isna(v) else v): list(x) for (s, v), x in by_study}
    assert got == {("01", "1"): _adc(0), ("01", "2"): _adc(1), ("02", ""): _adc(2)}
    # sorted by subject, then session, each study in its level order
    assert list(discs["session"].fillna("-")[::5]) == ["1", "2", "-"]
    assert list(discs["level"][:5]) == list(LEVELS)
    # resumed: the refused study without a session did not remove sub-01/ with the
    # sessions' outputs in it (they were analysed again on every resume, a review found)
    again = _run(read_cohort(manifest), out, workers=1)
    assert (again.done, again.skipped) == (0, 3)
    # another manifest on the folder with the subject alone: refused, the sessions kept
    other = tmp_path / "other.csv"
    other.write_text("subject,path\n01,data/other\n")
    alone = _run(read_cohort(other), out, workers=1)
    assert (alone.done, alone.failed) == (0, 1)
    assert sorted(p.name for p in (out / "sub-01").iterdir()) == ["ses-1", "ses-2"]
    assert (out / "sub-01" / "ses-1" / "sub-01_ses-1_discs.tsv").is_file()


def test_second_run_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    from discquant.cohort.run import _exclusive
    from discquant.errors import InvalidInputError

    standin.make_study(tmp_path / "data" / "sub-s00", _adc(0))
    out = tmp_path / "out"
    out.mkdir()
    with _exclusive(out), pytest.raises(InvalidInputError, match="another discquant cohort run"):
        _run(read_cohort(tmp_path / "data"), out)
    assert not (out / "sub-s00").exists()


def test_a_manifest_that_is_not_utf8_is_bad_input(tmp_path: Path) -> None:
    from discquant.errors import InvalidInputError

    manifest = tmp_path / "cohort.csv"
    manifest.write_bytes("subject,dicom\nMüller,studies/m\n".encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"cohort\.csv: manifest is not UTF-8"):
        read_cohort(manifest)


def test_a_study_that_fails_now_loses_its_earlier_outputs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed study is in cohort_failures.csv and has no DIR/sub-<id>/: outputs of an
    earlier run no longer match its inputs and would be read as current. The runner says
    so once, in its own log (the worker's warning printed beside the progress line, and
    under --quiet: an audit)."""
    import logging

    data = tmp_path / "data"
    for i in range(3):
        standin.make_study(data / f"sub-s{i:02d}", _adc(i))
    out = tmp_path / "out"
    studies = read_cohort(data)
    first = _run(studies, out, workers=1)
    assert first.done == 3 and (out / "sub-s02").is_dir()
    (data / "sub-s01" / "values.json").write_text(json.dumps({"adc": _adc(11)}))  # redone
    (data / "sub-s02" / "values.json").write_text("{broken")  # now fails
    with caplog.at_level(logging.WARNING, logger="discquant.cohort"):
        second = _run(studies, out, workers=1)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == ["sub-s02: removed its outputs of an earlier run (it failed now)"]
    assert {o.subject: o.status for o in second.outcomes} == {
        "s00": "skipped", "s01": "complete", "s02": "failed",
    }  # fmt: skip
    assert not (out / "sub-s02").exists()
    assert sorted(p.name for p in out.glob("sub-*")) == ["sub-s00", "sub-s01"]
    failures = pd.read_csv(out / "cohort_failures.csv")
    assert list(failures["subject"]) == ["s02"]
    assert set(pd.read_csv(out / "cohort_discs.csv")["subject"]) == {"s00", "s01"}


@pytest.mark.parametrize("name", ["cohort.txt", "cohort.csv"])
def test_a_tab_separated_manifest_is_read_whatever_its_extension(tmp_path: Path, name: str) -> None:
    standin.make_study(tmp_path / "data" / "s00", _adc(0))
    manifest = tmp_path / name
    manifest.write_text("subject\tpath\ns00\tdata/s00\n")
    studies = read_cohort(manifest)
    assert [(s.subject, s.error) for s in studies] == [("s00", None)]
    assert studies[0].inputs.path == tmp_path / "data" / "s00"
    comma = tmp_path / "comma.txt"
    comma.write_text("subject,path\ns00,data/s00\n")
    assert read_cohort(comma)[0].inputs.path == tmp_path / "data" / "s00"


def test_a_manifest_without_subject_column_says_what_it_found(tmp_path: Path) -> None:
    from discquant.errors import InvalidInputError

    manifest = tmp_path / "cohort.csv"
    manifest.write_text("patient,path\nP1,x\n")
    with pytest.raises(InvalidInputError, match=r"no 'subject' column .*'patient', 'path'"):
        read_cohort(manifest)


def test_an_empty_study_folder_fails_with_its_path(tmp_path: Path) -> None:
    from discquant.cohort import input_fingerprint
    from discquant.errors import InputNotFoundError

    standin.make_study(tmp_path / "data" / "sub-s00", _adc(0))
    empty = tmp_path / "data" / "sub-s01"
    empty.mkdir()
    studies = read_cohort(tmp_path / "data")
    with pytest.raises(InputNotFoundError, match=f"{empty}: the study folder holds no input"):
        input_fingerprint(studies[1].inputs)
    run = _run(studies, tmp_path / "out", workers=1)
    assert (run.done, run.failed) == (1, 1)
    failures = pd.read_csv(tmp_path / "out" / "cohort_failures.csv")
    # named relative to the folder of studies: the folders above it (a home folder, a
    # share) stay out of a table meant to be passed on (a review)
    assert failures.loc[0, "error"] == "sub-s01: the study folder holds no input file"
    assert failures.loc[0, "source"] == "sub-s01"
    for name in ("cohort_failures.csv", "cohort_report.html"):
        assert str(tmp_path) not in (tmp_path / "out" / name).read_text(), name


def test_a_manifest_row_that_cannot_run_now_keeps_or_loses_its_outputs(tmp_path: Path) -> None:
    """A row whose input is not found (a share not mounted now) keeps its outputs and
    record; a row whose label clashes with another's never touches that row's folder."""
    for i in range(2):
        standin.make_study(tmp_path / "data" / f"s{i:02d}", _adc(i))
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("subject,path\ns00,data/s00\ns01,data/s01\n")
    out = tmp_path / "out"
    assert _run(read_cohort(manifest), out, workers=1).done == 2
    record = rec.read_record(out, "s01")
    # s01's folder moved away; a new row clashes with s00's label (s00 keeps its outputs)
    manifest.write_text("subject,path\ns00,data/s00\ns01,data/gone\ns-00,data/s01\n")
    run = _run(read_cohort(manifest), out, workers=1)
    assert (run.skipped, run.failed) == (1, 2)
    assert sorted(p.name for p in out.glob("sub-*")) == ["sub-s00", "sub-s01"]
    assert rec.read_record(out, "s01") == record
    failures = pd.read_csv(out / "cohort_failures.csv")
    assert list(failures["subject"]) == ["s00", "s01"]
    assert failures.loc[1, "error"].startswith("input not found: dicom=")
    assert set(pd.read_csv(out / "cohort_discs.csv")["subject"]) == {"s00"}


def test_resume_key_follows_the_calibration_file_content(tmp_path: Path) -> None:
    """A calibration refitted in place (same path) must not let old water_percent stand."""
    from discquant.cohort.worker import record_key
    from discquant.pipeline import AnalysisConfig

    cal = tmp_path / "cal.json"
    cal.write_text('{"slope": 20}')
    options = CohortOptions(config=AnalysisConfig(calibration=cal))
    before = record_key("abc", options)
    assert record_key("abc", options) == before
    cal.write_text('{"slope": 5}')
    assert record_key("abc", options) != before


def test_an_output_folder_over_the_inputs_is_refused_and_never_a_study(tmp_path: Path) -> None:
    """OUT at the BIDS root replaced each raw sub-<label> folder with its outputs (the
    input data were deleted, exit 0); OUT inside a folder of studies became a study on
    the next run."""
    from discquant.errors import InvalidInputError

    bids = tmp_path / "bids"
    for i in range(2):
        standin.make_study(bids / f"sub-s{i:02d}", _adc(i))
    before = sorted(p.relative_to(bids) for p in bids.rglob("*"))
    for out in (bids, bids / "sub-s00", bids / "sub-s00" / "out"):
        with pytest.raises(InvalidInputError, match="study s00"):
            _run(read_cohort(bids), out, workers=1)
    assert sorted(p.relative_to(bids) for p in bids.rglob("*")) == before
    # subject folders that are links to a store elsewhere: the resolved paths alone
    # passed, and the raw dataset_description.json was overwritten
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "sub-s00").symlink_to(bids / "sub-s00", target_is_directory=True)
    (linked / "dataset_description.json").write_text('{"DatasetType": "raw"}')
    with pytest.raises(InvalidInputError, match="study s00"):
        _run(read_cohort(linked), linked, workers=1)
    assert (linked / "dataset_description.json").read_text() == '{"DatasetType": "raw"}'
    # beside the subjects in derivatives/, as BIDS puts them: allowed
    run = _run(read_cohort(bids), bids / "derivatives" / "discquant", workers=1)
    assert (run.done, run.failed) == (2, 0)

    studies = tmp_path / "studies"  # a folder of studies with its results inside
    for name in ("P001", "P002"):
        standin.make_study(studies / name, _adc(1))
    for _ in range(2):
        run = _run(read_cohort(studies), studies / "results", workers=1)
        assert run.total == 2 and run.failed == 0


def test_cancelled_tasks_are_not_run_and_keep_earlier_outputs(tmp_path: Path) -> None:
    """A lost scheduler cancels every pending task: each was recorded as a failure of its
    study, which removed the outputs an earlier run had completed."""
    data = tmp_path / "data"
    for i in range(3):
        standin.make_study(data / f"sub-s{i:02d}", _adc(i))
    out = tmp_path / "out"
    assert _run(read_cohort(data), out, workers=1).done == 3
    (data / "sub-s00" / "cancel_others").write_text("")
    run = _run(read_cohort(data), out, workers=1, options=CohortOptions(resume=False))
    assert (run.done, run.failed) == (1, 2)
    for subject in ("s01", "s02"):
        outcome = next(o for o in run.outcomes if o.subject == subject)
        assert outcome.error.startswith("not run: its task was cancelled")
        record = rec.read_record(out, subject)
        assert record is not None and record["status"] == "complete"
        assert (out / f"sub-{subject}" / f"sub-{subject}_discs.tsv").is_file()


def test_the_progress_rate_counts_analysed_studies_only() -> None:
    """A failure without work (a missing manifest path) counted in the rate: the first
    progress line read 1501163.3/min (a user trial)."""
    from discquant.cohort.run import CohortProgress

    progress = CohortProgress(total=10, failed=3, skipped=4)
    assert progress.rate_per_min == 0.0 and progress.eta_s is None
    progress.started -= 60.0  # one minute ago
    progress.done = 2
    assert progress.rate_per_min == pytest.approx(2.0, rel=0.01)
    assert progress.eta_s == pytest.approx(30.0, rel=0.01)  # one study left at 2/min


def test_ctrl_c_removes_the_half_written_folders_of_its_local_workers(tmp_path: Path) -> None:
    """After Ctrl-C (exit 130) a study's half-written outputs stayed in
    .discquant-cohort/tmp/ until the next run, although the docs say they are removed at
    the end of each run (trial D). The local cluster is closed first, so nothing writes
    there any more."""
    data = tmp_path / "data"
    for i in range(2):
        standin.make_study(data / f"sub-s{i:02d}", _adc(i))
    out = tmp_path / "out"
    half = rec.state_dir(out) / "tmp" / "sub-s01-x" / ".sub-s01.tmp-x"

    def interrupt(state: object) -> None:
        half.mkdir(parents=True)
        (half / "sub-s01_dseg.nii.gz").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(read_cohort(data), out, workers=1, progress=interrupt)
    assert list((rec.state_dir(out) / "tmp").iterdir()) == []


def test_ctrl_c_holds_back_the_closing_clusters_messages(tmp_path: Path) -> None:
    """The local cluster closing under running tasks printed ~30 lines of CommClosedError
    and asyncio tracebacks beside the one line "interrupted" (a user trial, 2 of 6 tries)."""
    import logging

    from discquant.cohort.run import INTERRUPT_NOISE_LOGGERS

    data = tmp_path / "data"
    standin.make_study(data / "sub-s00", _adc(0))
    levels = {name: logging.getLogger(name).level for name in INTERRUPT_NOISE_LOGGERS}

    def interrupt(state: object) -> None:
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            _run(read_cohort(data), tmp_path / "out", workers=1, progress=interrupt)
        for name in INTERRUPT_NOISE_LOGGERS:
            assert logging.getLogger(name).level == logging.CRITICAL, name
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_a_withheld_record_needs_a_whole_key_and_never_takes_the_labels_name(
    tmp_path: Path,
) -> None:
    """An empty key (a kill while writing it) named the record by HMAC with an empty key,
    which anyone can compute; an unreadable key raised in the worker, and a retry
    recorded the study under ``sub-<label>.json`` (a review)."""
    import hashlib
    import hmac

    out = tmp_path / "out"
    key = rec.state_dir(out) / "withheld-key"
    key.parent.mkdir(parents=True)
    key.write_bytes(b"")
    assert rec.withheld_record_path(out, "MRN0012345") is None  # not a key
    record = {"subject": "(withheld)", "withheld": True, "status": "failed"}
    assert rec.write_record(out, "MRN0012345", record) is not None  # made anew, then used
    assert len(key.read_bytes()) == rec.KEY_BYTES
    (written,) = (rec.state_dir(out) / "records").iterdir()
    empty_keyed = hmac.new(b"", b"MRN0012345", hashlib.sha256).hexdigest()[:16]
    assert written.name.startswith("withheld-") and empty_keyed not in written.name
    assert rec.read_record(out, "MRN0012345") == record
    # a key that cannot be read: no record rather than one under the label's name
    key.unlink()
    key.mkdir()
    assert rec.read_record(out, "MRN0012345") is None
    assert rec.write_record(out, "MRN0012345", record) is None
    assert not rec.record_path(out, "MRN0012345").exists()


def test_failure_errors_lose_the_folders_above_input_only_where_a_path_begins() -> None:
    from discquant.cohort.manifest import CohortStudy
    from discquant.cohort.tables import _failure
    from discquant.pipeline import StudyInputs

    root = Path("/data/in")
    study = CohortStudy("P1", StudyInputs(path=root / "P1"), str(root / "P1"), root=root)
    error = "/data/in/P1/x.dcm: truncated; copied from /mnt/backup/data/in/P1 ('/data/in/P1')"
    row = _failure(study, {"error": error, "where": "import"})
    assert row["source"] == "P1"
    assert row["error"] == "P1/x.dcm: truncated; copied from /mnt/backup/data/in/P1 ('P1')"


def test_errors_of_the_output_folders_storage_are_told_from_a_studys_own(tmp_path: Path) -> None:
    """A full disk, a quota, a read-only folder or no permission to write in the cohort
    folder fails every study alike: it stops the run (output_storage_error) rather than
    failing the study; a study's own errors do not."""
    import errno

    from discquant.cohort.worker import output_storage_error
    from discquant.errors import InvalidInputError

    out = tmp_path / "out"
    inside = out / ".discquant-cohort" / "tmp" / "study-1" / "sub-01"
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        error = OSError(code, "storage", str(tmp_path / "elsewhere"))
        assert output_storage_error(error, out) is error
    pydicom = OSError("[Errno 28] No space left on device")  # its own, without an errno
    assert output_storage_error(pydicom, out) is pydicom
    denied = PermissionError(errno.EACCES, "Permission denied", str(inside))
    assert output_storage_error(denied, out) is denied
    an_input = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "in"))
    assert output_storage_error(an_input, out) is None
    assert output_storage_error(FileNotFoundError(errno.ENOENT, "gone", str(inside)), out) is None
    assert output_storage_error(InvalidInputError("truncated", path=inside), out) is None
    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise full
        except OSError as exc:
            raise InvalidInputError("could not write the SEG") from exc
    except InvalidInputError as wrapped:
        assert output_storage_error(wrapped, out) is full


def test_a_failure_record_that_a_full_disk_refuses_removes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A study failing on bad input while the disk is full: its failure record cannot be
    written, so its earlier outputs must stay (they were removed after the record only by
    luck of order), and the task reports the storage error instead of raising."""
    import errno

    from discquant.cohort.worker import process_study

    studies, out = _two_finished(tmp_path)
    (tmp_path / "data" / "sub-s00" / "values.json").write_text("{broken")
    before = rec.read_record(out, "s00")

    def full(path: Path, document: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(rec, "write_json_atomic", full)
    outcome = process_study(studies[0], str(out), CohortOptions(), standin.standin_study)
    assert outcome.status == "failed" and outcome.storage_error is not None
    assert outcome.storage_error.errno == errno.ENOSPC
    assert (out / "sub-s00" / "sub-s00_discs.tsv").is_file()
    assert rec.read_record(out, "s00") == before
    assert not any((rec.state_dir(out) / "tmp").iterdir())


def test_resume_redoes_a_study_whose_outputs_are_gone_or_damaged(tmp_path: Path) -> None:
    """Resume skipped a study whose folder was there although its disc table had been
    removed: every run said "skipped" and listed it in the failures (where = outputs),
    exit 3, and none repaired it (an audit). Its record now lists its files and sizes."""
    studies, out = _two_finished(tmp_path)
    record = rec.read_record(out, "s01")
    size = (out / "sub-s01" / "sub-s01_discs.tsv").stat().st_size
    assert record is not None and record["outputs"] == {"sub-s01_discs.tsv": size}
    (out / "sub-s00" / "sub-s00_discs.tsv").unlink()
    tsv = out / "sub-s01" / "sub-s01_discs.tsv"
    tsv.write_bytes(tsv.read_bytes()[:-40])  # cut short
    run = _run(studies, out, workers=1)
    assert {o.subject: (o.status, o.redone) for o in run.outcomes} == {
        "s00": ("complete", "outputs"), "s01": ("complete", "outputs"),
    }  # fmt: skip
    assert run.cohort_status == {"complete": 2}
    assert pd.read_csv(out / "cohort_failures.csv").empty
    discs = pd.read_csv(out / "cohort_discs.csv")
    got = discs[["subject", "level", "adc_np_median_um2_per_ms"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _expected(2), check_dtype=False)


def test_the_runs_throughput_counts_analysed_studies_only() -> None:
    """A run that analysed none and failed two manifest rows that never ran said
    "0 analysed ... 2 failed in 5.7 s (21.1 studies/min)", in its summary, its
    cohort_run.json and its report (an audit)."""
    from discquant.cohort.run import CohortRun

    def run(done: int, failed: int, skipped: int) -> CohortRun:
        return CohortRun(Path("out"), total=done + failed + skipped, done=done, partial=0,
                         skipped=skipped, failed=failed, wall_s=60.0, workers=1,
                         scheduler="none", outcomes=[])  # fmt: skip

    assert run(done=0, failed=2, skipped=0).studies_per_min == 0.0
    assert run(done=3, failed=5, skipped=7).studies_per_min == pytest.approx(3.0)
    assert run(done=3, failed=5, skipped=7).to_json()["studies_per_min"] == 3.0


def test_the_disc_table_of_a_cohort_without_a_finished_study_has_its_columns(
    tmp_path: Path,
) -> None:
    """When no study finished, cohort_discs.csv was one empty line (pandas raised
    EmptyDataError on it) and the Parquet file had no column (an audit): both have the
    columns of a table with rows, and none."""
    from discquant.cohort import write_cohort_tables
    from discquant.cohort.report import write_cohort_report
    from discquant.cohort.worker import process_study

    standin.make_study(tmp_path / "data" / "sub-s00", _adc(0))
    standin.make_study(tmp_path / "data" / "sub-s01", _adc(1))
    (tmp_path / "data" / "sub-s01" / "values.json").write_text("{broken")
    studies = read_cohort(tmp_path / "data")
    out = tmp_path / "out"
    for study in studies:
        process_study(study, str(out), CohortOptions(), standin.standin_study)
    with_rows = write_cohort_tables(out, studies).discs
    assert len(with_rows) == 5

    empty = write_cohort_tables(out, studies[1:]).discs  # the failed study alone
    assert empty.empty and list(empty.columns) == list(with_rows.columns)
    csv = pd.read_csv(out / "cohort_discs.csv")
    assert csv.empty and list(csv.columns) == list(with_rows.columns)
    parquet = pd.read_parquet(out / "cohort_discs.parquet")
    assert parquet.empty and list(parquet.columns) == list(with_rows.columns)
    assert str(parquet["pfirrmann_grade"].dtype) == "Int64"
    assert str(parquet["adc_np_median_um2_per_ms"].dtype) == "float64"
    tables = write_cohort_tables(out, studies[1:])
    assert "Failures (1)" in write_cohort_report(out, tables, {}).read_text()


def test_failure_errors_name_the_cohort_folders_files_relative_to_it(tmp_path: Path) -> None:
    """An error about a study's outputs named the cohort folder's absolute path, and one
    raised while the study was written its temporary folder's (an audit)."""
    from discquant.cohort.manifest import CohortStudy
    from discquant.cohort.tables import _failure
    from discquant.pipeline import StudyInputs

    out = tmp_path / "out"
    study = CohortStudy("11", StudyInputs(path=tmp_path / "in" / "11"), "11", root=tmp_path / "in")
    written = out / ".discquant-cohort" / "tmp" / "study-3fa274ab58ed" / "sub-11"
    error = f"[Errno 5] Input/output error: '{written}/sub-11_report.html'"
    row = _failure(study, {"error": error, "where": "worker"}, out=out)
    assert row["error"] == "[Errno 5] Input/output error: 'sub-11/sub-11_report.html'"
    tsv = out / "sub-11" / "sub-11_discs.tsv"
    row = _failure(study, {"error": f"{tsv}: No columns to parse", "where": "outputs"}, out=out)
    assert row["error"] == "sub-11/sub-11_discs.tsv: No columns to parse"


def _looping_enospc(inputs: object, out_dir: Path, options: object) -> object:
    """Fails as a real full disk did in the ADC writer: the cause of the error handled is
    raised again, so that the chain loops (each is the other's cause or context)."""
    import errno

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(out_dir / "sub-s00")) from exc
    except OSError as named:
        assert isinstance(named.__cause__, OSError)
        raise named.__cause__ from None


def test_a_storage_error_whose_chain_loops_reaches_the_client(tmp_path: Path) -> None:
    """On a real full disk the task's outcome could not be pickled (its error's chain
    loops): Dask lost the result and the run hung. The outcome carries a bare copy."""
    import errno

    from distributed.protocol.pickle import dumps, loads

    from discquant.cohort.worker import output_storage_error, process_study

    standin.make_study(tmp_path / "data" / "sub-s00", _adc(0))
    (study,) = read_cohort(tmp_path / "data")
    out = tmp_path / "out"
    outcome = process_study(study, str(out), CohortOptions(), _looping_enospc)  # type: ignore[arg-type]
    error = outcome.storage_error
    assert error is not None and error.errno == errno.ENOSPC
    assert error.__cause__ is None and error.__context__ is None
    assert loads(dumps(outcome)).storage_error.errno == errno.ENOSPC
    assert rec.read_record(out, "s00") is None  # not recorded failed
    try:
        _looping_enospc(None, out, None)
    except OSError as looping:  # the chain walk ends
        assert output_storage_error(looping, out) is looping


def test_a_task_that_raised_is_recorded_unless_the_output_folder_is_to_blame(
    tmp_path: Path,
) -> None:
    """The client recorded every task that raised as the study's failure and removed its
    earlier outputs, a full disk's ENOSPC too (an audit)."""
    import errno

    from discquant.cohort.run import _task_failure

    studies, out = _two_finished(tmp_path)
    before = rec.read_record(out, "s00")
    full = OSError(errno.ENOSPC, "No space left on device", str(out / "x"))
    outcome = _task_failure(out, studies[0], full)
    assert outcome.storage_error is not None and outcome.storage_error.errno == errno.ENOSPC
    assert rec.read_record(out, "s00") == before and (out / "sub-s00").is_dir()

    outcome = _task_failure(out, studies[1], RuntimeError("segfault in a library"))
    assert (outcome.status, outcome.error) == ("failed", "RuntimeError: segfault in a library")
    assert outcome.removed_outputs and not (out / "sub-s01").exists()
    record = rec.read_record(out, "s01")
    assert record is not None and (record["status"], record["where"]) == ("failed", "worker")


def test_a_table_whose_write_fails_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The disk filling while the cohort tables were written left `.cohort_discs.csv.<hex>
    .tmp` beside them, and the error named that file, not the table (an audit)."""
    import errno

    from discquant.cohort.tables import replace_together

    table = tmp_path / "cohort_discs.csv"
    table.write_text("old\n")

    def full(path: Path) -> None:
        path.write_text("half a ta")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with pytest.raises(OSError) as err:
        replace_together([(table, full)])
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(table)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort_discs.csv"]
    assert table.read_text() == "old\n"  # the earlier table kept whole


def test_a_parquet_write_error_without_errno_names_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PyArrow's I/O errors have no errno and name the file they write in the message:
    the temporary one, with a traceback. Now one line that names the table (exit 2)."""
    import pyarrow as pa
    import typer

    from discquant.cli._common import user_errors
    from discquant.cohort.tables import replace_together

    table = tmp_path / "cohort_discs.parquet"

    def fails(path: Path) -> None:
        raise pa.ArrowIOError(f"Failed to open local file '{path}'. Detail: [errno 28] full")

    with pytest.raises(typer.Exit) as ended, user_errors():
        replace_together([(table, fails)])
    assert ended.value.exit_code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"discquant: error: {table}: Failed to open local file '{table}'")
    assert ".tmp" not in line
    assert list(tmp_path.iterdir()) == []


def _edit_record(out: Path, subject: str, **fields: object) -> None:
    """Set ``fields`` in a study's record, as a worker of this version writes them."""
    record = rec.read_record(out, subject)
    assert record is not None
    rec.write_record(out, subject, {**record, **fields})


def test_the_study_flags_are_a_column_of_the_disc_tables(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A study's own flags (sacrum_not_in_fov, csf_adc_implausible, ...) were in no cohort
    table: a study whose CSF read far below free water listed its disc ADCs as any other
    (an audit). Each disc row now carries its study's flags, which its record keeps; a
    record without them (written before 2026-12-07) is read through its results.json."""
    import logging

    from discquant.cohort import write_cohort_tables
    from discquant.cohort.tables import DISCS_CSV, DISCS_PARQUET, PROVENANCE_COLUMNS, empty_discs

    data = tmp_path / "data"
    flagged = {"flags": ["sacrum_not_in_fov", "csf_adc_implausible"]}
    standin.make_study(data / "sub-s00", _adc(0), results=flagged)
    standin.make_study(data / "sub-s01", _adc(1), results={"flags": []})
    standin.make_study(data / "sub-s02", _adc(2), results={"flags": ["x"]})
    standin.make_study(data / "sub-s03", _adc(3), results={"flags": ["dwi_t2_misaligned"]})
    out = tmp_path / "out"
    studies = read_cohort(data)
    _in_process(studies, out)
    for subject in ("s00", "s01"):  # from their records, not their results.json
        rec.results_json_path(out, subject).unlink()
    for subject in ("s02", "s03"):  # records of an earlier version: no study_flags
        record = rec.read_record(out, subject)
        assert record is not None and "study_flags" in record
        del record["study_flags"]
        rec.write_record(out, subject, record)
    rec.results_json_path(out, "s02").write_text("{broken")
    with caplog.at_level(logging.WARNING, logger="discquant.cohort"):
        write_cohort_tables(out, studies)
    assert "sub-s02_results.json: cannot be read" in caplog.text
    for table in (
        pd.read_parquet(out / DISCS_PARQUET),
        pd.read_csv(out / DISCS_CSV, dtype={"session": str}),
    ):
        by_study = table.groupby("subject")["study_flags"].agg(lambda v: list(v.fillna("")))
        assert by_study.to_dict() == {
            "s00": ["sacrum_not_in_fov,csf_adc_implausible"] * 5,
            "s01": [""] * 5,  # no flags: an empty cell, as a disc without flags
            "s02": [""] * 5,  # its results.json could not be read (the WARNING above)
            "s03": ["dwi_t2_misaligned"] * 5,  # read from its results.json
        }
        # after the disc table's own columns (flags last), before the provenance
        columns = list(table.columns)
        assert columns.index("study_flags") == columns.index("flags") + 1
        assert columns[columns.index("study_flags") + 1 :] == list(PROVENANCE_COLUMNS)
    assert list(empty_discs().columns) == columns


def test_the_tables_take_the_study_flags_from_the_record(tmp_path: Path) -> None:
    """Every rebuild of the tables read each study's results.json for its flags, one more
    file per study; the record keeps them now, and no results.json is opened (here each
    says no flag, so that reading one would show)."""
    from unittest import mock

    from discquant.cohort import collect_tables

    studies, out = _analysed(tmp_path, 2)
    for subject in ("s00", "s01"):
        rec.results_json_path(out, subject).write_text('{"flags": []}')
    _edit_record(out, "s00", study_flags=["sacrum_not_in_fov", "csf_adc_implausible"])
    _edit_record(out, "s01", study_flags=[])
    opened: list[str] = []
    real_read_text = Path.read_text

    def read_text(path: Path, *args: object, **kwargs: object) -> str:
        opened.append(path.name)
        return real_read_text(path, *args, **kwargs)  # type: ignore[arg-type]

    with mock.patch.object(Path, "read_text", read_text):
        tables = collect_tables(out, studies)
    flags = tables.discs.groupby("subject")["study_flags"].agg(lambda v: list(v.fillna("")))
    assert flags.to_dict() == {"s00": ["sacrum_not_in_fov,csf_adc_implausible"] * 5,
                               "s01": [""] * 5}  # fmt: skip
    assert [n for n in opened if n.endswith("_results.json")] == []


@pytest.mark.parametrize("taken", ["cohort_discs.csv", "cohort_report.html", "cohort_run.json"])
def test_files_of_a_run_that_cannot_all_be_written_are_none_of_them_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], taken: str
) -> None:
    """With cohort_discs.csv a folder, cohort_discs.parquet was rewritten by the new run
    while the failures, the report and cohort_run.json stayed the last run's; with the
    report a folder, the tables were rewritten, cohort_run.json not, and
    .cohort_report.html.tmp left behind (an audit). Now all of a run's files or none,
    one error line naming the file, and no temporary file."""
    import typer

    from discquant.cli._common import user_errors
    from discquant.cohort.run import CohortRun, write_run_outputs

    data = tmp_path / "data"
    for i in range(2):
        standin.make_study(data / f"sub-s{i:02d}", _adc(i))
    out = tmp_path / "out"
    studies = read_cohort(data)

    def write(done: int) -> None:
        run = CohortRun(out, total=2, done=done, partial=0, skipped=0, failed=2 - done,
                        wall_s=1.0, workers=1, scheduler="none", outcomes=[])  # fmt: skip
        fn = standin.standin_study
        write_run_outputs(out, studies, run, options=CohortOptions(), study_fn=fn)

    def files() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    _in_process(studies[:1], out)
    write(1)
    before = files()
    assert {"cohort_discs.parquet", "cohort_failures.csv", taken} <= set(before)
    _in_process(studies[1:], out)  # the next run analyses the second study
    (out / taken).unlink()
    (out / taken).mkdir()  # and cannot write this file
    capsys.readouterr()  # what the first write logged
    with pytest.raises(typer.Exit) as ended, user_errors():
        write(2)
    assert ended.value.exit_code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"discquant: error: {out / taken}: Is a directory"
    ]
    del before[taken]
    assert files() == before  # the last run's files, each as it was; no temporary file
    (out / taken).rmdir()
    write(2)
    assert len(pd.read_parquet(out / "cohort_discs.parquet")) == 10
    assert json.loads((out / "cohort_run.json").read_text())["done"] == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.is_file()]


def test_a_write_that_fails_midway_renames_no_file_and_removes_every_temporary(
    tmp_path: Path,
) -> None:
    """The disk filling while the second of three files is written: the first, already
    written to its temporary file, is not renamed into place either."""
    import errno

    from discquant.cohort.tables import replace_together

    first, second, third = (tmp_path / n for n in ("a.parquet", "b.csv", "c.html"))
    first.write_text("old a\n")

    def full(path: Path) -> None:
        path.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with pytest.raises(OSError) as err:
        replace_together(
            [(first, lambda p: p.write_text("new a\n")), (second, full), (third, full)]
        )
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(second))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet"]
    assert first.read_text() == "old a\n"


def test_the_runs_options_are_in_cohort_run_json_and_the_report(tmp_path: Path) -> None:
    """cohort_run.json held counts, timing, workers and scheduler, and the report's Run
    table the version only: the ADC method, calibration, ADC thresholds, --dicom and
    --keep-phi were only an opaque config_sha256 (an audit). They are both places now,
    files by their names (the folders above them stay out of a file to pass on)."""
    import hashlib
    import html

    from discquant.cohort.run import CohortRun, run_configuration, write_run_outputs
    from discquant.pipeline import AnalysisConfig

    site = tmp_path / "site"
    site.mkdir()
    (site / "water.json").write_text('{"fitted": "here"}')
    (site / "classes.yaml").write_text("classes: []\n")
    options = CohortOptions(
        config=AnalysisConfig(adc_method="ols", calibration=site / "water.json",
                              adc_class_thresholds=site / "classes.yaml"),
        dicom=True, keep_phi=True,
        segmentation_model=site / "seg.pt", pfirrmann_model=None,
    )  # fmt: skip
    data = tmp_path / "data"
    standin.make_study(data / "sub-s00", _adc(0))
    out = tmp_path / "out"
    studies = read_cohort(data)
    _in_process(studies, out, options)
    configuration = run_configuration(options)
    run = CohortRun(out, total=1, done=1, partial=0, skipped=0, failed=0, wall_s=1.0, workers=1,
                    scheduler="none", outcomes=[], configuration=configuration)  # fmt: skip
    write_run_outputs(out, studies, run, options=options, study_fn=standin.standin_study)

    written = json.loads((out / "cohort_run.json").read_text())
    config = written["configuration"]
    water_sha = hashlib.sha256((site / "water.json").read_bytes()).hexdigest()
    assert config["analysis"]["adc_method"] == "ols"
    assert config["analysis"]["calibration"] == "water.json"
    assert config["analysis"]["calibration_sha256"] == water_sha
    assert config["analysis"]["adc_class_thresholds"] == "classes.yaml"
    assert config["analysis"]["measure"]["min_core_voxels"] == 5
    assert (config["dicom"], config["keep_phi"], config["resume"]) == (True, True, True)
    assert (config["segmentation_model"], config["grading_model"]) == ("seg.pt", "shipped")
    # the same configuration as the tables' config_sha256 names
    discs = pd.read_parquet(out / "cohort_discs.parquet")
    assert set(discs["config_sha256"]) == {config["config_sha256"]}
    assert written["models"] == {"standin": "1"}  # the studies' records' models
    page = (out / "cohort_report.html").read_text()
    rows = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", html.unescape(page)))
    assert rows["ADC method"] == "ols"
    assert rows["water calibration (--calibration)"] == f"water.json (SHA-256 {water_sha})"
    assert rows["ADC class thresholds (--adc-thresholds)"].startswith("classes.yaml (SHA-256 ")
    assert rows["DICOM SEG and SR (--dicom)"] == "yes"
    assert rows["identifiers kept (--keep-phi)"] == "yes"
    assert (rows["segmentation model"], rows["grading model"]) == ("seg.pt", "shipped")
    assert rows["configuration SHA-256 (config_sha256)"] == config["config_sha256"]
    for text in ((out / "cohort_run.json").read_text(), page):
        assert str(tmp_path) not in text


def test_the_models_of_the_cohort_are_read_from_its_studies_records() -> None:
    from discquant.cohort.report import configuration_rows
    from discquant.cohort.tables import models_in_use

    one = {"segmentation_weights_sha256": "aa", "pfirrmann": "mine.pt"}
    other = {"segmentation_weights_sha256": "bb", "pfirrmann": "mine.pt"}
    models = models_in_use([one, one, other])
    assert models == {"pfirrmann": "mine.pt", "segmentation_weights_sha256": ["aa", "bb"]}
    assert models_in_use([]) == {}
    # JSON's types kept: cohort_run.json read segmentation_shipped "True" (a review)
    assert models_in_use([{"segmentation_shipped": True}]) == {"segmentation_shipped": True}
    assert models_in_use([{"step": 3}, {"step": "3a"}]) == {"step": [3, "3a"]}
    run = {"configuration": {"grading_model": "mine.pt"},
           "models": {**models, "pfirrmann_weights_sha256": "cc"}}  # fmt: skip
    rows = dict(configuration_rows(run))
    assert rows["segmentation model"] == "shipped (weights SHA-256: aa, bb)"
    assert rows["grading model"] == "mine.pt (weights SHA-256 cc)"


def test_the_models_in_cohort_run_json_are_those_of_the_finished_studies_records(
    tmp_path: Path,
) -> None:
    """cohort_run.json's models were parsed back from the JSON text of the disc table's
    ``models`` column, so a finished study without a disc row (a disc table of its header
    only) left its models out; they come from the records now."""
    from discquant.cohort.run import CohortRun, run_configuration, write_run_outputs

    studies, out = _analysed(tmp_path, 3)
    _edit_record(out, "s00", models={"segmentation_weights_sha256": "aa"})
    _edit_record(out, "s01", models={"segmentation_weights_sha256": "bb"})
    _edit_record(out, "s02", models={"segmentation_weights_sha256": "aa", "pfirrmann": "x.pt"})
    table = rec.discs_tsv_path(out, "s01")
    table.write_text(table.read_text().splitlines()[0] + "\n")  # no disc row
    run = CohortRun(out, total=3, done=3, partial=0, skipped=0, failed=0, wall_s=1.0, workers=1,
                    scheduler="none", outcomes=[],
                    configuration=run_configuration(CohortOptions()))  # fmt: skip
    write_run_outputs(out, studies, run, options=CohortOptions(), study_fn=standin.standin_study)
    written = json.loads((out / "cohort_run.json").read_text())
    assert written["models"] == run.models == {
        "pfirrmann": "x.pt", "segmentation_weights_sha256": ["aa", "bb"]
    }  # fmt: skip
    assert len(pd.read_parquet(out / "cohort_discs.parquet")) == 10  # s01 has no disc row


def test_studies_that_dicom_could_not_give_a_seg_and_sr_are_counted_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """--dicom with NIfTI rows wrote no DICOM SEG/SR and the cohort said nothing: only
    each study's own results.json warned (an audit). One WARNING counts them, by reason,
    and cohort_run.json and the report say it too. The reasons come from the records
    (:func:`~discquant.cohort.worker.no_dicom_reason`): the tables parsed them out of the
    text of each results.json's ``--dicom:`` warning, which these studies do not have."""
    import logging

    from discquant.cohort.run import CohortRun, run_configuration, write_run_outputs

    reasons = [
        None,  # SEG and SR written
        "the T2 was not read from DICOM",
        "the T2 was not read from DICOM",
        "the T2's source DICOM files could not be read again",
        "no T2 series was used",
    ]
    data = tmp_path / "data"
    for i, reason in enumerate(reasons):
        standin.make_study(data / f"sub-s{i:02d}", _adc(i), dicom_not_written=reason)
    studies = read_cohort(data)
    for dicom in (False, True):
        out = tmp_path / f"out-{dicom}"
        options = CohortOptions(dicom=dicom)
        _in_process(studies, out, options)
        run = CohortRun(out, total=5, done=5, partial=0, skipped=0, failed=0, wall_s=1.0,
                        workers=1, scheduler="none", outcomes=[],
                        configuration=run_configuration(options))  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="discquant.cohort"):
            write_run_outputs(out, studies, run, options=options, study_fn=standin.standin_study)
        said = [r.getMessage() for r in caplog.records if "--dicom" in r.getMessage()]
        written = json.loads((out / "cohort_run.json").read_text())["dicom_not_written"]
        page = (out / "cohort_report.html").read_text()
        if not dicom:  # not asked: nothing to say
            assert (said, written, run.dicom_not_written) == ([], None, None)
            continue
        expected = {"the T2 was not read from DICOM": 2, reasons[3]: 1,
                    "no T2 series was used": 1}  # fmt: skip
        assert run.dicom_not_written == written == expected
        assert said == [
            "--dicom: 4 of 5 finished studies have no DICOM SEG/SR (2: the T2 was not read "
            f"from DICOM; 1: {reasons[3]}; 1: no T2 series was used); each study's "
            "results.json says why (skipped_outputs)"
        ]
        assert "yes, but 4 finished studies have none (2: the T2 was not read from DICOM" in page


def test_the_tables_take_why_no_dicom_was_written_from_the_record(tmp_path: Path) -> None:
    """The reason was parsed out of the text of the results.json's ``--dicom:`` warning;
    it is the record's now: a study without a results.json still counts by it."""
    from discquant.cohort import collect_tables
    from discquant.cohort.tables import DICOM_NOT_WRITTEN, dicom_not_written

    studies, out = _analysed(tmp_path, 3, CohortOptions(dicom=True))  # no results.json
    _edit_record(out, "s00", dicom_not_written="the T2 was not read from DICOM")
    _edit_record(out, "s01", dicom_not_written="no T2 series was used")
    _edit_record(out, "s02", dicom_not_written=None)  # SEG and SR written
    tables = collect_tables(out, studies)
    assert list(tables.studies[DICOM_NOT_WRITTEN].fillna("")) == [
        "the T2 was not read from DICOM", "no T2 series was used", ""
    ]  # fmt: skip
    assert dicom_not_written(tables.studies) == {
        "the T2 was not read from DICOM": 1, "no T2 series was used": 1
    }  # fmt: skip


@pytest.mark.parametrize(
    ("written", "skipped", "cause", "expected"),
    [
        (True, "", None, None),
        (False, "no source DICOM T2 images", "the T2 was not read from DICOM",
         "the T2 was not read from DICOM"),
        (False, "no source DICOM T2 images", "no T2 series was used", "no T2 series was used"),
        (False, "no disc found", None, "writer"),  # the SEG writer refused
        (False, "no source DICOM T2 images", None, "no source DICOM T2 images"),
    ],
)  # fmt: skip
def test_why_a_study_has_no_dicom_seg_or_sr_is_read_from_its_result(
    tmp_path: Path, written: bool, skipped: str, cause: str | None, expected: str | None
) -> None:
    """The reason the cohort counts is the pipeline's own (run_study's result and written
    outputs), not text recovered from the study's ``--dicom:`` warning (an audit)."""
    from discquant.cohort.worker import DICOM_WRITER_REFUSED, no_dicom_reason
    from discquant.outputs.write import OutputPaths
    from discquant.results import AnalysisResult

    sub = tmp_path / "sub-s00"
    names = ("dicom_seg", "dicom_sr")
    dicom = {n: sub / f"{n}.dcm" for n in names} if written else {}
    paths = OutputPaths(
        root=tmp_path, subject_dir=sub, dataset_description=tmp_path / "d.json",
        discs_tsv=sub / "d.tsv", discs_json=sub / "d.json", results_json=sub / "r.json",
        report_html=None, skipped={} if written else dict.fromkeys(names, skipped), **dicom,
    )  # fmt: skip
    result = AnalysisResult("s00", [], warnings=["--dicom: something else; no SEG/SR written"])
    result.dicom_not_written = cause
    reason = no_dicom_reason(result, paths)
    assert reason == (DICOM_WRITER_REFUSED if expected == "writer" else expected)


def test_checking_a_finished_record_leaves_the_callers_pytorch_threads(tmp_path: Path) -> None:
    """A record left by a cancelled task is checked against the weights' digests in the
    user's process, through the workers' model loader, which set PyTorch to one thread:
    a notebook's thread count was changed by a cohort run (an audit of the Python API).
    The key then holds the shipped models' digests."""
    import torch

    from discquant.cohort.manifest import CohortStudy
    from discquant.cohort.run import _current_key
    from discquant.pipeline import StudyInputs

    study = CohortStudy("11", StudyInputs(path=tmp_path / "in" / "11"), "11", root=tmp_path)
    rec.write_record(tmp_path, "11", {"subject": "11", "status": "complete"})
    from discquant.cohort import worker

    worker.worker_models.cache_clear()  # loaded here, not by an earlier test
    worker.worker_model_versions.cache_clear()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        key = _current_key(tmp_path, [study], {}, options=CohortOptions(), study_fn=None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert set(key["models_weights_sha256"]) == {"pfirrmann", "segmentation"}
    assert all(len(v) == 64 for v in key["models_weights_sha256"].values())


def test_the_runs_configuration_names_a_relative_calibration_by_its_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only absolute paths were reduced to their names: a calibration given from Python
    as `sites/hospX/water.json` kept its folders in cohort_run.json (a review)."""
    from discquant.cohort.run import run_configuration
    from discquant.pipeline import AnalysisConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sites" / "hospX").mkdir(parents=True)
    (tmp_path / "sites" / "hospX" / "water.json").write_text("{}")
    options = CohortOptions(config=AnalysisConfig(calibration=Path("sites/hospX/water.json")))
    analysis = run_configuration(options)["analysis"]
    assert analysis["calibration"] == "water.json"
    assert analysis["adc_method"] == "wls"  # other settings as they are
    assert "hospX" not in json.dumps(run_configuration(options))


def test_the_run_names_a_copy_of_the_shipped_grader_as_the_shipped_weights(
    tmp_path: Path,
) -> None:
    """The studies' records call a byte copy of the shipped grader "shipped"; the run's
    configuration named it as a user's model (a review). A file of its own keeps its name."""
    import shutil
    from importlib import resources

    from discquant.cohort.run import run_configuration

    with resources.as_file(
        resources.files("discquant") / "models" / "pfirrmann" / "pfirrmann.pt"
    ) as shipped:
        shutil.copy(shipped, tmp_path / "copy.pt")
    (tmp_path / "mine.pt").write_bytes(b"not the shipped weights")
    names = run_configuration(CohortOptions(pfirrmann_model=tmp_path / "copy.pt"))
    assert names["grading_model"] == "copy.pt (the shipped weights)"
    assert names["segmentation_model"] == "shipped"
    mine = run_configuration(CohortOptions(segmentation_model=tmp_path / "mine.pt"))
    assert mine["segmentation_model"] == "mine.pt"


def test_a_study_runs_on_one_pytorch_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker has one thread: its study runs on one PyTorch thread (set where the
    study runs since the models also load in the user's process)."""
    import torch

    import discquant.pipeline
    from discquant.cohort.worker import pipeline_study
    from discquant.pipeline import StudyInputs

    seen: list[int] = []

    def fake_run_study(*args: object, **kwargs: object) -> None:
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop here")

    monkeypatch.setattr(discquant.pipeline, "run_study", fake_run_study)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="stop here"):
            pipeline_study(StudyInputs(path=tmp_path), tmp_path / "out", CohortOptions())
    finally:
        torch.set_num_threads(before)
    assert seen == [1]
