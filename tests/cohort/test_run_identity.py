"""What a resumed or partial run may keep: records of other code or configuration, inputs
on a share that is not mounted, the files the fingerprint covers, how studies are counted,
and the ETA of the progress line.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tests.cohort import standin
from typer.testing import CliRunner

from discquant.cohort import CohortOptions, input_fingerprint, read_cohort, run_cohort
from discquant.cohort import records as rec
from discquant.cohort.manifest import input_files
from discquant.cohort.worker import process_study
from discquant.errors import InputNotFoundError
from discquant.pipeline import AnalysisConfig, StudyInputs

ADC = [2.0, 1.9, 1.8, 1.7, 1.6]


def _run(studies, out: Path, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("workers", 1)
    return run_cohort(studies, out, study_fn=standin.standin_study, **kw)


def _bids(root: Path, n: int) -> Path:
    for i in range(n):
        standin.make_study(root / f"sub-s{i:02d}", [v - 0.01 * i for v in ADC])
    return root


# 1. the code identity is part of the resume key


def test_the_code_hash_covers_source_and_shipped_files_not_weights(tmp_path: Path) -> None:
    from discquant.cohort.worker import package_code_sha256

    package = tmp_path / "pkg"
    files = {
        "__init__.py": "x = 1\n",
        "config/adc_class.yaml": "a: 1\n",
        "outputs/schema/results.schema.json": "{}",
        "outputs/report/template.html": "<html>",
        "models/model.pt": "weights",
        "models/MODEL_CARD.md": "card",
        "__pycache__/mod.cpython-311.pyc": "bytecode",
        ".mypy_cache/x.json": "{}",
    }
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    digest = package_code_sha256(package)
    assert len(digest) == 64
    assert package_code_sha256(shutil.copytree(package, tmp_path / "elsewhere")) == digest
    for name in ("models/model.pt", "models/MODEL_CARD.md", "__pycache__/mod.cpython-311.pyc"):
        (package / name).write_text("changed")
        assert package_code_sha256(package) == digest, name
    for name in ("__init__.py", "config/adc_class.yaml", "outputs/report/template.html"):
        before = package_code_sha256(package)
        (package / name).write_text("changed")
        assert package_code_sha256(package) != before, name


def test_a_record_written_by_other_code_is_redone_on_resume(tmp_path: Path) -> None:
    """The software version stayed 0.1.0 over hundreds of commits: resume kept the
    results of old code whenever the inputs and weights were unchanged."""
    from discquant.cohort.worker import code_sha256

    studies = read_cohort(_bids(tmp_path / "data", 2))
    out = tmp_path / "out"
    assert _run(studies, out).done == 2
    record = rec.read_record(out, "s00")
    assert record is not None
    assert record["key"]["code_sha256"] == code_sha256()
    assert record["software"]["code_sha256"] == code_sha256()
    discs = pd.read_csv(out / "cohort_discs.csv")
    assert set(discs["code_sha256"]) == {code_sha256()}
    assert discs["config_sha256"].str.len().eq(64).all()

    record["key"]["code_sha256"] = "0" * 64  # as written by another version of the code
    rec.write_record(out, "s00", record)
    second = _run(studies, out)
    assert {o.subject: o.status for o in second.outcomes} == {"s00": "complete", "s01": "skipped"}
    redone = rec.read_record(out, "s00")
    assert redone is not None and redone["key"]["code_sha256"] == code_sha256()


# 2. a record of another configuration is never listed complete


def test_a_cancelled_run_lists_records_of_another_configuration_as_outdated(
    tmp_path: Path,
) -> None:
    """Run 1 with wls; run 2 with ols loses its scheduler after one study: the studies it
    did not run kept their wls records and were listed complete."""
    data = _bids(tmp_path / "data", 3)
    out = tmp_path / "out"
    wls = CohortOptions(config=AnalysisConfig(adc_method="wls"))
    assert _run(read_cohort(data), out, options=wls).done == 3
    (data / "sub-s00" / "cancel_others").write_text("")
    ols = CohortOptions(config=AnalysisConfig(adc_method="ols"))
    run = _run(read_cohort(data), out, options=ols)
    assert (run.done, run.failed) == (1, 2)
    assert run.cohort_status == {"complete": 1, "outdated": 2}
    failures = pd.read_csv(out / "cohort_failures.csv").set_index("subject")
    assert list(failures.index) == ["s01", "s02"]
    assert set(failures["where"]) == {"outdated"}
    assert failures["error"].str.contains("not run with this configuration or code").all()
    assert failures["error"].str.contains(r"differs in config\)").all()
    discs = pd.read_csv(out / "cohort_discs.csv")
    assert set(discs["subject"]) == {"s00"} and set(discs["status"]) == {"complete"}
    for subject in ("s01", "s02"):  # kept as they were, for a run with wls again
        record = rec.read_record(out, subject)
        assert record is not None and record["status"] == "complete"
        assert record["key"]["config"]["analysis"]["adc_method"] == "wls"
        assert (out / f"sub-{subject}").is_dir()


# 3. inputs on a share that is not mounted


def _share_cohort(tmp_path: Path, n: int) -> tuple[Path, Path]:
    share = tmp_path / "share"
    for i in range(n):
        standin.make_study(share / f"P{i:03d}", ADC)
    manifest = tmp_path / "cohort.csv"
    rows = "".join(f"P{i:03d},share/P{i:03d}\n" for i in range(n))
    manifest.write_text("subject,dicom\n" + rows)
    return share, manifest


def _state(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): p.read_text()
        for p in sorted(out.rglob("*"))
        if p.is_file() and "tmp" not in p.parts and p.name != "run.lock"
    }


def test_an_unmounted_share_is_refused_and_nothing_is_removed(tmp_path: Path) -> None:
    """Every manifest row's input missing (the share not mounted): every finished
    study's outputs were deleted."""
    from discquant.cli import app

    share, manifest = _share_cohort(tmp_path, 3)
    out = tmp_path / "out"
    studies = read_cohort(manifest)
    assert _run(studies, out).done == 3
    before = _state(out)
    os.rename(share, tmp_path / "unmounted")
    with pytest.raises(InputNotFoundError, match="none of the inputs of the 3 studies exists"):
        read_cohort(manifest)
    with pytest.raises(InputNotFoundError, match="is the share that holds them mounted"):
        _run(studies, out)  # read before the share went away
    result = CliRunner().invoke(app, ["cohort", str(manifest), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "none of the inputs" in lines[0], result.stderr
    assert _state(out) == before


def test_a_missing_input_keeps_the_studys_outputs_and_record(tmp_path: Path) -> None:
    share, manifest = _share_cohort(tmp_path, 3)
    out = tmp_path / "out"
    assert _run(read_cohort(manifest), out).done == 3
    record = rec.read_record(out, "P001")
    os.rename(share / "P001", tmp_path / "P001-away")
    run = _run(read_cohort(manifest), out)
    assert (run.skipped, run.failed) == (2, 1)
    assert rec.read_record(out, "P001") == record
    assert (out / "sub-P001" / "sub-P001_discs.tsv").is_file()
    assert run.cohort_status == {"complete": 2, "failed": 1}
    failures = pd.read_csv(out / "cohort_failures.csv")
    assert list(failures["subject"]) == ["P001"]
    assert failures.loc[0, "error"].startswith("input not found: dicom=")
    assert set(pd.read_csv(out / "cohort_discs.csv")["subject"]) == {"P000", "P002"}


def test_an_input_gone_after_the_cohort_was_read_keeps_outputs_too(tmp_path: Path) -> None:
    """The share goes away between reading the cohort and a study's task (on a worker)."""
    data = _bids(tmp_path / "data", 2)
    out = tmp_path / "out"
    studies = read_cohort(data)
    assert _run(studies, out).done == 2
    record = rec.read_record(out, "s01")
    os.rename(data / "sub-s01", tmp_path / "away")
    run = _run(studies, out)
    outcome = next(o for o in run.outcomes if o.subject == "s01")
    assert (outcome.status, outcome.where) == ("failed", "input")
    assert rec.read_record(out, "s01") == record
    assert (out / "sub-s01").is_dir()
    failures = pd.read_csv(out / "cohort_failures.csv")
    assert list(failures["subject"]) == ["s01"] and failures.loc[0, "where"] == "input"
    assert run.cohort_status == {"complete": 1, "failed": 1}


# 4. the fingerprint covers what the import reads


def test_sidecars_of_a_nifti_given_as_path_are_fingerprinted(tmp_path: Path) -> None:
    image = tmp_path / "P001_dwi.nii.gz"
    image.write_bytes(b"dwi image")
    for suffix, text in ((".bval", "0 800\n"), (".bvec", "0 1\n0 0\n0 0\n"), (".json", "{}")):
        image.with_name("P001_dwi" + suffix).write_text(text)
    inputs = StudyInputs(path=image)
    assert [role for role, _ in input_files(inputs)] == [
        "path", "path.bval", "path.bvec", "path.json",
    ]  # fmt: skip
    digest, n_files = input_fingerprint(inputs)
    assert n_files == 4
    image.with_name("P001_dwi.bval").write_text("0 1000\n")
    assert input_fingerprint(inputs)[0] != digest


def test_the_fingerprint_reads_a_study_folder_as_the_import_does(tmp_path: Path) -> None:
    """The DICOM reader walks hidden folders (it skips hidden file names only); the
    fingerprint skipped any path with a hidden part, so a changed file there kept the
    study's old result on resume."""
    study = standin.make_study(tmp_path / "P001", ADC)
    (study / ".series").mkdir()
    (study / ".series" / "IM0001").write_bytes(b"dicom 1")
    (study / ".DS_Store").write_bytes(b"finder")
    (study / ".hidden_T2w.nii.gz").write_bytes(b"a NIfTI the folder reader takes")
    inputs = StudyInputs(path=study)
    roles = [role for role, _ in input_files(inputs)]
    assert roles == ["path/.hidden_T2w.nii.gz", "path/.series/IM0001", "path/values.json"]
    digest, _ = input_fingerprint(inputs)
    (study / ".series" / "IM0001").write_bytes(b"dicom 2")
    changed, _ = input_fingerprint(inputs)
    assert changed != digest
    (study / ".DS_Store").write_bytes(b"finder, touched")
    assert input_fingerprint(inputs)[0] == changed


# 5. a study is counted once, as analysed, when its task is re-run


def test_a_record_of_this_run_found_on_the_skip_path_counts_as_analysed(tmp_path: Path) -> None:
    """A worker killed after a study's record was written loses the task's result; Dask
    re-runs the task, which found the record and reported the study ``skipped``: the run
    counted it skipped, not done, and left it out of studies_per_min."""
    data = _bids(tmp_path / "data", 1)
    study = read_cohort(data)[0]
    out = tmp_path / "out"
    fn = standin.standin_study
    first = process_study(study, str(out), CohortOptions(), fn, run_token="run-a")
    assert first.status == "complete"
    record = rec.read_record(out, study.subject)
    assert record is not None and record["run_token"] == "run-a"
    again = process_study(study, str(out), CohortOptions(), fn, run_token="run-a")
    assert again.status == "complete"  # the re-run attempt of the same run
    no_resume = CohortOptions(resume=False)
    assert process_study(study, str(out), no_resume, fn, run_token="run-a").status == "complete"
    assert rec.read_record(out, study.subject) == record  # not analysed again
    later = process_study(study, str(out), CohortOptions(), fn, run_token="run-b")
    assert later.status == "skipped"  # a later run


def test_the_retries_help_says_what_it_governs() -> None:
    from discquant.cli import app

    result = CliRunner().invoke(app, ["cohort", "--help"], terminal_width=200)
    text = " ".join(result.output.replace("│", " ").split())
    assert "unexpected error" in text and "worker process dies" in text
    assert "whatever --retries says" in text and "KilledWorker" in text


# 6. the ETA beyond 24 hours


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "00:00:00"),
        (59.6, "00:01:00"),
        (3 * 3600 + 5 * 60 + 7, "03:05:07"),
        (41.6 * 3600, "41:36:00"),
        (41 * 3600 + 35 * 60, "41:35:00"),
        (125 * 3600 + 1, "125:00:01"),
    ],
)
def test_the_eta_counts_hours_beyond_a_day(seconds: float, text: str) -> None:
    from discquant.cli.cohort import format_duration

    assert format_duration(seconds) == text


def test_the_progress_line_prints_an_eta_beyond_a_day(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from discquant.cli.cohort import _CohortProgressDisplay
    from discquant.cohort.run import CohortProgress

    class Slow(CohortProgress):
        @property
        def eta_s(self) -> float | None:
            return 41.6 * 3600

    display = _CohortProgressDisplay(10, enabled=True)
    display._tty = False
    with caplog.at_level(logging.INFO, logger="discquant.cohort"):
        display(Slow(total=10, done=1))
    assert "ETA 41:36:00" in caplog.text


def test_json_key_parts_read_back_equal() -> None:
    """The key compared on resume is the one a record reads back as (JSON round trip)."""
    from discquant.cohort.worker import record_key, run_key

    options = CohortOptions()
    key = record_key("abc", options)
    assert json.loads(json.dumps(key)) == key
    assert {k: v for k, v in key.items() if k != "input_fingerprint_sha256"} == run_key(options)


def test_the_progress_bar_says_a_failed_study_above_it(capsys: pytest.CaptureFixture[str]) -> None:
    """On a terminal the bar only counted failures: a manifest row's "input not found"
    was said nowhere until the tables (a review). It is printed once, above the bar."""
    from discquant.cli.cohort import _CohortProgressDisplay
    from discquant.cohort.run import CohortProgress
    from discquant.cohort.worker import StudyOutcome

    display = _CohortProgressDisplay(2, enabled=True)
    display._tty = True
    state = CohortProgress(total=2, failed=1)
    state.last = StudyOutcome("p2", "failed", 0.0, "/abs/in/P2 missing")
    state.last_error = "input not found: dicom=nope/P2 [x]"
    with display:
        display(state)
        state.last, state.last_error = StudyOutcome("p1", "complete", 1.0), ""
        display(state)
    err = capsys.readouterr().err
    assert err.count("p2: failed input not found: dicom=nope/P2 [x]") == 1
    assert "/abs/in" not in err and "p1: " not in err
