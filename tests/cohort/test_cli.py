"""`discquant cohort` refuses options every study would fail on before it writes anything.

A model file the user names must be used or the run refused: never replaced, silently, by
the shipped one (on the client before the cluster starts, and on each worker).
"""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from tests.cohort import standin
from typer.testing import CliRunner

from discquant.cli import app
from discquant.cohort import CohortOptions, pipeline_study, read_cohort
from discquant.cohort import records as rec
from discquant.cohort.worker import process_study
from discquant.errors import ModelError
from discquant.pipeline import StudyInputs


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    for i in range(2):
        standin.make_study(data / f"sub-s{i:02d}", [1.0, 1.1, 1.2, 1.3, 1.4])
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    return data


def _refused(args: list[str], out: Path) -> str:
    """Run the command; require exit 2, one error line, and no output folder."""
    result = CliRunner().invoke(app, ["cohort", *args, "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1, result.stderr
    assert not out.exists()
    return errors[0]


@pytest.mark.parametrize(
    ("option", "name", "problem"),
    [
        ("--grading-model", "missing.pt", "Pfirrmann model file not found"),
        ("--grading-model", "junk.pt", "not a discquant Pfirrmann model"),
        ("--segmentation-model", "missing.pt", "segmentation model file not found"),
        ("--segmentation-model", "junk.pt", "not a discquant segmentation model"),
    ],
)
def test_a_model_that_does_not_load_is_refused_before_the_run(
    cohort: Path, tmp_path: Path, option: str, name: str, problem: str
) -> None:
    model = tmp_path / name
    line = _refused([str(cohort), option, str(model)], tmp_path / "out")
    assert line.startswith(f"discquant: error: {model}: {problem}")


@pytest.mark.parametrize(
    ("name", "problem"),
    [("missing.json", "calibration file not found"), ("junk.pt", "not a water calibration file")],
)
def test_a_calibration_that_does_not_load_is_refused_before_the_run(
    cohort: Path, tmp_path: Path, name: str, problem: str
) -> None:
    calibration = tmp_path / name
    line = _refused([str(cohort), "--calibration", str(calibration)], tmp_path / "out")
    assert line.startswith(f"discquant: error: {calibration}: {problem}"), line


def test_the_calibration_reaches_every_study_as_an_absolute_path(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cohort` had no --calibration: its water_percent always came from the phantom line."""
    import discquant.cohort

    (tmp_path / "cal.json").write_text(
        '{"intercept_percent": 40.0, "slope_percent_per_um2_per_ms": 20.0, '
        '"adc_range_um2_per_ms": [0.5, 2.5], "label": "site", "n_pairs": 9, "r2": 0.9}'
    )
    seen: list[CohortOptions] = []

    def fake_run(studies: Any, out: Path, *, options: CohortOptions, **kwargs: Any) -> Any:
        seen.append(options)
        raise KeyboardInterrupt  # stop here: the options are what this test is about

    monkeypatch.setattr(discquant.cohort, "run_cohort", fake_run)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["cohort", str(cohort), "--out", "out", "--calibration", "cal.json", "--quiet"]
    )
    assert result.exit_code == 130, result.output
    assert seen[0].config.calibration == tmp_path / "cal.json"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--method", "cubic"], "unknown ADC method 'cubic'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_an_unusable_method_or_device_is_refused_before_the_run(
    cohort: Path, tmp_path: Path, args: list[str], problem: str
) -> None:
    assert problem in _refused([str(cohort), *args], tmp_path / "out")


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_fewer_than_one_worker_is_refused(cohort: Path, tmp_path: Path, workers: str) -> None:
    result = CliRunner().invoke(
        app, ["cohort", str(cohort), "--out", str(tmp_path / "out"), "--workers", workers]
    )
    assert result.exit_code == 2, result.output
    assert "--workers" in result.output
    assert not (tmp_path / "out").exists()


def test_run_cohort_checks_options_too(cohort: Path, tmp_path: Path) -> None:
    from discquant.cohort import run_cohort
    from discquant.errors import InvalidInputError
    from discquant.pipeline import AnalysisConfig

    studies = read_cohort(cohort)
    with pytest.raises(InvalidInputError, match="--workers must be 1 or more"):
        run_cohort(studies, tmp_path / "a", workers=-1, study_fn=standin.standin_study)
    bad = CohortOptions(config=AnalysisConfig(adc_method="cubic"))
    with pytest.raises(InvalidInputError, match="unknown ADC method"):
        run_cohort(studies, tmp_path / "b", options=bad, study_fn=standin.standin_study)
    with pytest.raises(ModelError, match="not found"):
        run_cohort(
            studies,
            tmp_path / "c",
            options=CohortOptions(pfirrmann_model=tmp_path / "missing.pt"),
            study_fn=standin.standin_study,
        )
    assert not any((tmp_path / d).exists() for d in "abc")


def test_a_worker_without_the_given_model_fails_the_study(cohort: Path, tmp_path: Path) -> None:
    """On a worker that cannot load the user's weights (a path it does not see), the study
    fails with the loader's reason; the shipped model is not used in their place. Outputs
    of an earlier run of the study are removed with it."""
    missing = tmp_path / "missing.pt"
    options = CohortOptions(pfirrmann_model=missing)
    inputs = StudyInputs(path=cohort / "sub-s00", subject="s00")
    with pytest.raises(ModelError, match=r"grading model .* did not load on this worker"):
        pipeline_study(inputs, tmp_path / "tmp", options)

    out = tmp_path / "out"
    study = read_cohort(cohort)[0]
    earlier = rec.subject_dir(out, study.subject)
    earlier.mkdir(parents=True)  # outputs of an earlier run, with the shipped model
    (earlier / f"sub-{study.subject}_discs.tsv").write_text("level\n")
    outcome = process_study(study, str(out), options)
    assert outcome.status == "failed"
    assert str(missing) in outcome.error and "not found" in outcome.error
    record = rec.read_record(out, study.subject)
    assert record is not None and record["status"] == "failed"
    assert record["where"] == "model" and record["error_type"] == "ModelError"
    assert not earlier.exists()


@pytest.mark.parametrize("scheduler", ["sched.json", "bad.json"])
def test_a_scheduler_that_cannot_be_reached_is_refused_before_the_run(
    cohort: Path, tmp_path: Path, scheduler: str
) -> None:
    """A misspelt scheduler file (read as an address) or one that is not JSON gave a
    traceback and exit 1, after the output folder had been made."""
    (tmp_path / "bad.json").write_text("not json")
    path = tmp_path / scheduler
    line = _refused([str(cohort), "--scheduler", str(path)], tmp_path / "out")
    if scheduler == "bad.json":
        assert f"cannot connect to the Dask scheduler '{path}'" in line
    else:  # it said "missing port number in address", as if a file name were an address
        assert line.endswith(f"{path}: scheduler file not found"), line


def test_an_output_folder_at_the_bids_root_is_refused(cohort: Path) -> None:
    """The raw subject folders were replaced by their outputs."""
    before = sorted(cohort.rglob("*"))
    result = CliRunner().invoke(app, ["cohort", str(cohort), "--out", str(cohort), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "holds or lies inside the inputs of study s00" in result.stderr
    assert sorted(cohort.rglob("*")) == before


def test_studies_left_without_a_record_are_not_a_success(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers that write their records elsewhere (not sharing OUT) left every study
    'not run' in the tables, and the command exited 0."""
    from discquant.cohort.run import CohortRun

    def run_elsewhere(studies: list, out: Path, **kwargs: object) -> CohortRun:  # type: ignore[type-arg]
        run = CohortRun(out, total=2, done=2, partial=0, skipped=0, failed=0, wall_s=1.0,
                        workers=1, scheduler="tcp://remote:8786", outcomes=[])  # fmt: skip
        run.cohort_status = {"not run": 2}
        return run

    monkeypatch.setattr("discquant.cohort.run_cohort", run_elsewhere)
    result = CliRunner().invoke(app, ["cohort", str(cohort), "--out", str(tmp_path / "out")])
    assert result.exit_code == 3, result.output
    assert "2 studies have no record" in result.stderr


@pytest.fixture
def port_8787_taken() -> Iterator[None]:
    """Port 8787 held, as by another Dask or Jupyter dashboard (or already held by one)."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    except OSError:  # something else holds it already: just as good
        pass
    try:
        yield
    finally:
        holder.close()


def _run_cli(
    cohort: Path, out: Path, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> tuple[Result, list[warnings.WarningMessage]]:
    """Run `discquant cohort` on one local worker with the stand-in study function."""
    from discquant.cohort.run import run_cohort as real  # not the patched one of a call before

    def run_standin(studies: list, out: Path, **kwargs: Any) -> Any:  # type: ignore[type-arg]
        kwargs["workers"] = 1
        return real(studies, out, study_fn=standin.standin_study, **kwargs)

    monkeypatch.setattr("discquant.cohort.run_cohort", run_standin)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["cohort", str(cohort), "--out", str(out), *extra])
    return result, caught


@pytest.mark.usefixtures("port_8787_taken")
def test_quiet_prints_nothing_when_port_8787_is_taken(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local cluster's scheduler served HTTP on port 8787 (``dashboard_address=None``
    does not disable it): with another dashboard there, distributed warned, under --quiet,
    "Port 8787 is already in use. Perhaps you already have a cluster running?"."""
    result, caught = _run_cli(cohort, tmp_path / "out", monkeypatch, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.output == ""
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "8787" in m or "already in use" in m], messages


def test_the_summary_lists_every_table_written(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cohort_discs.csv, the table to pass to `discquant evaluate grade`, was not listed."""
    out = tmp_path / "out"
    result, _ = _run_cli(cohort, out, monkeypatch)
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("tables: "))
    listed = line.removeprefix("tables: ").split(", ")
    tables = [*out.glob("cohort_*.csv"), *out.glob("cohort_*.parquet")]
    written = sorted(p.name for p in tables)
    assert sorted(Path(p).name for p in listed) == written
    assert {"cohort_discs.csv", "cohort_discs.parquet", "cohort_failures.csv"} <= set(written)
    assert all(Path(p).parent == out for p in listed)


def test_a_file_that_is_not_a_manifest_names_every_manifest_extension(
    tmp_path: Path,
) -> None:
    """The error said "must be a .csv or .tsv manifest"; .tab and .txt manifests are read too."""
    image = tmp_path / "t2.nii.gz"
    image.write_bytes(b"not a manifest")
    line = _refused([str(image)], tmp_path / "out")
    assert line.startswith(f"discquant: error: {image}: a cohort file must be a manifest")
    assert ".csv, .tsv, .tab or .txt" in line


@pytest.mark.parametrize("suffix", [".tab", ".txt", ".TSV"])
def test_every_manifest_extension_the_error_names_is_read(tmp_path: Path, suffix: str) -> None:
    standin.make_study(tmp_path / "data" / "s00", [1.0, 1.1, 1.2, 1.3, 1.4])
    manifest = tmp_path / f"cohort{suffix}"
    manifest.write_text("subject\tdicom\ns00\tdata/s00\n")
    assert [s.subject for s in read_cohort(manifest)] == ["s00"]


def test_a_full_disk_stops_the_run_and_keeps_the_earlier_results(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-run (--no-resume) on a full disk retried every study, recorded each failed with
    a traceback per attempt, and removed each study's outputs of the earlier run (an
    audit). The run stops with one error line naming the output folder, exit 2; the
    earlier results stay as they were."""
    out = tmp_path / "out"
    first, _ = _run_cli(cohort, out, monkeypatch, "--quiet")
    assert first.exit_code == 0, first.output
    records = {s: rec.read_record(out, s) for s in ("s00", "s01")}
    files = {p: p.read_bytes() for p in out.glob("sub-*/**/*") if p.is_file()}
    attempts = tmp_path / "attempts"
    for study in ("sub-s00", "sub-s01"):
        (cohort / study / "full_disk").write_text(str(attempts))

    result, _ = _run_cli(cohort, out, monkeypatch, "--quiet", "--no-resume", "--retries", "2")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith(f"discquant: error: {out}: cannot write the outputs (No space left")
    assert "run the same command again to resume" in line
    tried = attempts.read_text().split()
    assert tried and len(tried) == len(set(tried)), tried  # none retried
    assert {s: rec.read_record(out, s) for s in records} == records  # none recorded failed
    assert {p: p.read_bytes() for p in out.glob("sub-*/**/*") if p.is_file()} == files


def test_the_summary_says_what_its_throughput_counts(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary line counted failed studies in its rate; it counts analysed ones and
    says so."""
    from discquant.cohort.run import CohortRun

    def failed_only(studies: list, out: Path, **kwargs: object) -> CohortRun:  # type: ignore[type-arg]
        run = CohortRun(out, total=2, done=0, partial=0, skipped=0, failed=2, wall_s=5.7,
                        workers=1, scheduler="none", outcomes=[])  # fmt: skip
        run.cohort_status = {"failed": 2}
        return run

    monkeypatch.setattr("discquant.cohort.run_cohort", failed_only)
    result = CliRunner().invoke(app, ["cohort", str(cohort), "--out", str(tmp_path / "out")])
    assert result.exit_code == 3, result.output
    assert "0 analysed (0 partial), 0 skipped, 2 failed in 5.7 s (0.0 studies analysed/min)" in (
        result.stdout
    )


def test_an_unusable_option_is_refused_before_the_manifest_is_read(tmp_path: Path) -> None:
    """--method foo printed the manifest's warnings (a column not read, a row whose input
    is missing) before its one error line: the docs say the options are checked before a
    study is read (an audit)."""
    standin.make_study(tmp_path / "data" / "s00", [1.0, 1.1, 1.2, 1.3, 1.4])
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("subject,path,age\ns00,data/s00,61\ns01,data/gone,63\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["cohort", str(manifest), "--out", str(out), "--method", "foo"]
    )
    assert result.exit_code == 2, result.output
    (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith("discquant: error: ") and "unknown ADC method 'foo'" in line
    assert not out.exists()


@pytest.fixture
def logging_kept() -> Iterator[None]:
    """The root logger's handlers and the levels the command sets, put back after."""
    import logging

    from discquant.cohort.run import INTERRUPT_NOISE_LOGGERS

    names = ["", *INTERRUPT_NOISE_LOGGERS, "highdicom", "numba", "matplotlib", "PIL"]
    levels = {name: logging.getLogger(name).level for name in names}
    handlers = list(logging.getLogger().handlers)
    try:
        yield
    finally:
        logging.getLogger().handlers[:] = handlers
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("logging_kept")
def test_verbose_keeps_the_closing_clusters_messages_after_ctrl_c(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docs said "--verbose shows them" of the messages held back after Ctrl-C, but
    the command had no --verbose (an audit)."""
    import logging

    from discquant.cohort.run import INTERRUPT_NOISE_LOGGERS, _silence_interrupted_cluster

    levels: list[dict[str, int]] = []

    def interrupted(studies: list, out: Path, **kwargs: object) -> None:  # type: ignore[type-arg]
        levels.append({n: logging.getLogger(n).level for n in INTERRUPT_NOISE_LOGGERS})
        _silence_interrupted_cluster()  # as run_cohort does on Ctrl-C
        levels.append({n: logging.getLogger(n).level for n in INTERRUPT_NOISE_LOGGERS})
        raise KeyboardInterrupt

    monkeypatch.setattr("discquant.cohort.run_cohort", interrupted)
    out = str(tmp_path / "out")
    result = CliRunner().invoke(app, ["cohort", str(cohort), "--out", out, "--verbose"])
    assert result.exit_code == 130, result.output
    before, after = levels
    assert after == before and before["distributed"] < logging.WARNING
    both = CliRunner().invoke(app, ["cohort", str(cohort), "--out", out, "--quiet", "--verbose"])
    assert both.exit_code == 2 and "exclude each other" in both.stderr


STANDIN_CLI = """
import discquant.cohort
from discquant.cli import app
from discquant.cohort.run import run_cohort
from tests.cohort import standin

def run_standin(studies, out, **kwargs):
    kwargs["workers"] = 1
    return run_cohort(studies, out, study_fn=standin.standin_study, **kwargs)

discquant.cohort.run_cohort = run_standin
app(prog_name="discquant")
"""
"""`discquant` with the stand-in study function, for a subprocess: what the workers print
reaches its stderr, not CliRunner's."""


def test_quiet_counts_every_failure_alike_and_each_is_said_once(tmp_path: Path) -> None:
    """Under --quiet a worker's line named a study that failed on bad input and nothing
    named a manifest row that failed, one whose input was missing or one whose t2 was a
    folder; without it the worker's line printed, unprefixed, beside the progress line of
    the same study (an audit)."""
    import subprocess
    import sys

    from tests.cohort.conftest import REPO

    for name in ("s00", "s01", "s03"):
        standin.make_study(tmp_path / "data" / name, [1.0, 1.1, 1.2, 1.3, 1.4])
    (tmp_path / "data" / "s01" / "values.json").write_text("{broken")
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(
        "subject,path,t2\ns00,data/s00,\ns01,data/s01,\ns02,data/gone,\ns-00,data/s00,\n"
        "s03,,data/s03\n"
    )
    out = tmp_path / "out"

    def cohort(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", STANDIN_CLI, "cohort", str(manifest), "--out", str(out)]
        return subprocess.run(
            [*command, *extra], cwd=REPO, capture_output=True, text=True, timeout=240
        )

    quiet = cohort("--quiet")
    assert quiet.returncode == 3, quiet.stderr
    assert quiet.stdout == ""
    assert quiet.stderr.splitlines() == [
        f"discquant: 4 failed of 5 studies: see {out / 'cohort_failures.csv'} and "
        f"{out / 'cohort_report.html'}"
    ]
    loud = cohort()
    assert loud.returncode == 3, loud.stderr
    said = [ln for ln in loud.stderr.splitlines() if "not a stand-in study" in ln]
    assert len(said) == 1 and "sub-s01: failed" in said[0], loud.stderr
    said = [ln for ln in loud.stderr.splitlines() if "is a folder, not a file" in ln]
    assert len(said) == 1 and "sub-s03: failed" in said[0], loud.stderr


def test_quiet_prints_a_crashing_studys_traceback_once_per_attempt(tmp_path: Path) -> None:
    """Under --quiet a study that crashed printed its traceback twice per attempt:
    discquant's "sub-X crashed:" block and Dask's "Compute Failed" block, which also
    printed the task's arguments, the study's paths (an audit). Dask's is held back
    unless --verbose; the failure row and the summary line stay."""
    import subprocess
    import sys

    import pandas as pd
    from tests.cohort.conftest import REPO

    data = tmp_path / "data"
    standin.make_study(data / "sub-s00", [1.0, 1.1, 1.2, 1.3, 1.4])
    (standin.make_study(data / "sub-s01", [1.0, 1.1, 1.2, 1.3, 1.4]) / "error").write_text("")
    out = tmp_path / "out"
    command = [sys.executable, "-c", STANDIN_CLI, "cohort", str(data), "--out", str(out)]
    quiet = subprocess.run(
        [*command, "--quiet", "--retries", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert quiet.returncode == 3, quiet.stderr
    assert quiet.stderr.count("sub-s01 crashed:") == 2, quiet.stderr  # two attempts
    assert quiet.stderr.count("RuntimeError: a bug in the analysis") == 2, quiet.stderr
    assert "Compute Failed" not in quiet.stderr
    assert quiet.stderr.splitlines()[-1] == (
        f"discquant: 1 failed of 2 studies: see {out / 'cohort_failures.csv'} and "
        f"{out / 'cohort_report.html'}"
    )
    failures = pd.read_csv(out / "cohort_failures.csv")
    assert failures[["subject", "where", "error_type"]].values.tolist() == [
        ["s01", "worker", "RuntimeError"]
    ]


def test_verbose_lets_the_workers_log_dasks_compute_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers hold back Dask's "Compute Failed" block unless the cluster was made
    for --verbose (the nannies hand the configuration to their workers)."""
    import logging

    import dask

    from discquant.cohort import run as cohort_run
    from discquant.cohort.worker import COMPUTE_FAILED_CONFIG, ComputeFailedFilter, dask_setup

    made: list[object] = []
    monkeypatch.setattr(
        "distributed.LocalCluster",
        lambda **kw: made.append(dask.config.get(COMPUTE_FAILED_CONFIG)),
    )
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.DEBUG)
        cohort_run.local_cluster(1)  # --verbose: the root logger at DEBUG
        root.setLevel(logging.ERROR)
        cohort_run.local_cluster(1)  # --quiet
        cohort_run.local_cluster(1, verbose=True)
    finally:
        root.setLevel(level)
    assert made == [True, False, True]

    logger = logging.getLogger("distributed.worker")
    monkeypatch.setattr(logger, "filters", [])
    failed = logging.makeLogRecord({"name": logger.name, "msg": "Compute Failed\nKey: %s"})
    other = logging.makeLogRecord({"name": logger.name, "msg": "Run out-of-band function"})
    monkeypatch.setattr("signal.signal", lambda *args: None)  # not this process's SIGINT
    with dask.config.set({COMPUTE_FAILED_CONFIG: True}):
        dask_setup(None)
    assert logger.filter(failed) and logger.filter(other)
    with dask.config.set({COMPUTE_FAILED_CONFIG: False}):
        dask_setup(None)
        dask_setup(None)
    assert not logger.filter(failed) and logger.filter(other)
    assert sum(isinstance(f, ComputeFailedFilter) for f in logger.filters) == 1
