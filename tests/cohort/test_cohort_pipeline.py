"""Cohorts through the real pipeline on small phantom studies (the issue's tests).

Twelve phantom studies (a reduced grid so that the whole module stays near a minute on two
cores), two with every image truncated. An uninterrupted run is the reference; a second
run is killed (client and workers, SIGKILL) once about half the studies have records, then
resumed: its tables must equal the reference's, row for row and value for value.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from tests.cohort import standin

from discquant.cohort import CohortOptions, local_cluster, read_cohort, run_cohort
from discquant.cohort import records as rec

N_STUDIES = 12
CORRUPTED = ("p03", "p08")
SMALL = {
    "t2_voxel_mm": (1.2, 1.2, 4.0),
    "t2_matrix": (240, 200),
    "t2_slices": 5,
    "dwi_voxel_mm": (2.4, 2.4, 4.0),
    "dwi_matrix": (120, 96),
    "dwi_slices": 5,
    "t2_sub": (1, 1, 2),
    "dwi_sub": (2, 2, 2),
}
"""The full field of view on coarser grids: the real pipeline, at a fraction of the cost."""

RUN_COLUMNS = ("finished_at",)
"""Columns that differ between two runs by design."""


def _models_or_skip() -> None:
    from discquant.errors import ModelError
    from discquant.segment import load_segmentation_model

    try:
        load_segmentation_model()
    except ModelError as exc:
        pytest.skip(f"the shipped segmentation model is not available: {exc}")


@pytest.fixture(scope="module")
def cohort_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _models_or_skip()
    from discquant.phantom import PhantomConfig, generate_study, write_study

    root = tmp_path_factory.mktemp("cohort") / "bids"
    config = PhantomConfig(**SMALL)  # type: ignore[arg-type]
    for i in range(N_STUDIES):
        write_study(generate_study(100 + i, config), root, subject=f"p{i:02d}")
    for subject in CORRUPTED:  # truncate every image: the study cannot be read at all
        for image in (root / f"sub-{subject}").rglob("*.nii.gz"):
            image.write_bytes(image.read_bytes()[:3000])
    return root


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """Two workers shared by the in-process runs (one start, models loaded once)."""
    _models_or_skip()
    with local_cluster(2) as c:
        yield c.scheduler_address


@pytest.fixture(scope="module")
def reference(cohort_root: Path, cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    run = run_cohort(read_cohort(cohort_root), out, scheduler=cluster)
    assert (run.done, run.failed, run.skipped) == (N_STUDIES - 2, 2, 0)
    return out


def test_local_workers_ignore_ctrl_c_and_drop_shutdown_warnings(cluster: str) -> None:
    """Ctrl-C reaches the workers too: they printed KeyboardInterrupt tracebacks and
    "ended with CancelledError" warnings after discquant's "interrupted" line."""
    from distributed import Client

    def probe() -> tuple[bool, bool, bool, bool, str]:
        import logging
        import signal as worker_signal
        import subprocess as worker_subprocess
        import sys as worker_sys

        def passes(name: str, message: str) -> bool:
            logger = logging.getLogger(name)
            return bool(logger.filter(logging.makeLogRecord({"name": name, "msg": message})))

        handler = worker_signal.getsignal(worker_signal.SIGINT)
        # a program the worker starts (dcm2niix) still stops on Ctrl-C: with SIG_IGN in
        # the worker it inherited the ignored signal and outlived the worker
        child = worker_subprocess.run(
            [worker_sys.executable, "-c", "import signal; print(signal.getsignal(2))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return (
            callable(handler) and handler is not worker_signal.default_int_handler,
            passes(
                "distributed.worker.state_machine",
                "Async instruction for <T> ended with CancelledError",
            ),
            passes("distributed.nanny", "Worker process still alive after 4.0 seconds, killing"),
            passes("distributed.worker.state_machine", "Something else went wrong"),
            child,
        )

    with Client(cluster) as client:
        results = client.run(probe)
    assert len(results) == 2
    for ignored, cancelled_passes, alive_passes, other_passes, child in results.values():
        assert ignored
        assert child == "<built-in function default_int_handler>", child
        assert not cancelled_passes and not alive_passes
        assert other_passes


def test_local_workers_keep_library_warnings_off_the_terminal(cluster: str) -> None:
    """A damaged header's pydicom warnings and Python warnings (raw lines naming no file)
    are debug lines in the workers, as in the CLI; pydicom's errors still pass."""
    from distributed import Client

    def probe() -> tuple[bool, bool, str]:
        import logging
        import warnings

        def passes(level: int) -> bool:  # pydicom's pixel modules log on child loggers
            return logging.getLogger("pydicom.pixels.utils").isEnabledFor(level)

        return passes(logging.WARNING), passes(logging.ERROR), warnings.showwarning.__module__

    with Client(cluster) as client:
        results = client.run(probe)
    assert len(results) == 2
    for warning_passes, error_passes, shown_by in results.values():
        assert not warning_passes and error_passes
        assert shown_by == "discquant.library_logs"


def _tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    discs = pd.read_parquet(out / "cohort_discs.parquet").drop(columns=list(RUN_COLUMNS))
    failures = pd.read_csv(out / "cohort_failures.csv")
    return discs, failures


def test_reference_run_tables(reference: Path) -> None:
    discs, failures = _tables(reference)
    assert len(discs) == 10 * 5
    assert not discs.duplicated(["subject", "level"]).any()
    assert discs.groupby("subject")["found"].sum().eq(5).all()  # five discs in every study
    # the CSV spells booleans as the subjects' TSVs do (it wrote True/False)
    csv = pd.read_csv(reference / "cohort_discs.csv", dtype=str, keep_default_na=False)
    assert set(csv["found"]) == {"true"}
    # a nucleus value is either measured or withheld with its reason, never silently missing
    measured = discs["adc_np_median_um2_per_ms"].notna()
    withheld = discs["flags"].str.contains("adc_withheld_too_few_voxels")
    assert (measured | withheld).all()
    assert measured.sum() >= 40, measured.sum()  # measured 42 of 50 on 2.4 mm DWI (2026-11-29)
    assert set(discs["status"]) == {"complete"}
    # the models column holds the digests the studies' results record
    models = json.loads(pd.read_parquet(reference / "cohort_discs.parquet")["models"].iloc[0])
    doc = json.loads((reference / "sub-p05" / "sub-p05_results.json").read_text())
    for name in ("segmentation", "pfirrmann"):
        key = f"{name}_weights_sha256"
        assert models[key] == doc["provenance"]["models"][key], name
    # JSON's own types: the column and cohort_run.json read "True" (a review)
    assert models["segmentation_shipped"] is True
    run_json = json.loads((reference / "cohort_run.json").read_text())
    assert run_json["models"]["segmentation_shipped"] is True
    assert list(failures["subject"]) == list(CORRUPTED)
    assert failures["error_type"].eq("UnreadableImageError").all()  # an InvalidInputError
    assert failures["error"].str.contains("not a readable NIfTI").all()
    # every row equals the study's own table
    one = pd.read_csv(reference / "sub-p05" / "sub-p05_discs.tsv", sep="\t", na_values=["n/a"])
    mine = discs[discs["subject"] == "p05"].reset_index(drop=True)
    pd.testing.assert_series_equal(
        mine["adc_np_median_um2_per_ms"],
        one["adc_np_median_um2_per_ms"],
        check_names=False,
        check_dtype=False,
    )


def test_interrupted_then_resumed_equals_uninterrupted(
    cohort_root: Path, cluster: str, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    records = rec.state_dir(out) / "records"
    command = [
        sys.executable, "-c", "from discquant.cli import main; main()",
        "cohort", str(cohort_root), "--out", str(out), "--workers", "2", "--quiet",
    ]  # fmt: skip
    client = subprocess.Popen(command, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and client.poll() is None:
        if records.is_dir() and len(list(records.glob("*.json"))) >= N_STUDIES // 2:
            break
        time.sleep(0.2)
    assert client.poll() is None, "the run ended before it could be interrupted"
    os.killpg(client.pid, signal.SIGKILL)  # the client, its scheduler and its workers
    client.wait()
    n_before = len(list(records.glob("*.json")))
    assert N_STUDIES // 2 <= n_before < N_STUDIES
    assert not (out / "cohort_discs.parquet").exists()

    run = run_cohort(read_cohort(cohort_root), out, scheduler=cluster)
    assert run.skipped >= n_before - len(CORRUPTED)  # finished studies are not redone
    assert run.skipped + run.done == N_STUDIES - 2 and run.failed == 2
    discs, failures = _tables(out)
    ref_discs, ref_failures = _tables(reference)
    pd.testing.assert_frame_equal(discs, ref_discs)
    assert list(failures["subject"]) == list(ref_failures["subject"]) == list(CORRUPTED)
    assert not any((rec.state_dir(out) / "tmp").iterdir())


def test_killed_worker_retried_and_missing_manifest_path(
    cohort_root: Path, cluster: str, reference: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(
        "subject,path\n"
        f"p00,{cohort_root / 'sub-p00'}\n"
        f"p01,{cohort_root / 'sub-p01'}\n"
        f"p99,{cohort_root / 'sub-p99'}\n"
    )
    marker = tmp_path / "crashed"
    study_fn = functools.partial(standin.crash_first_attempt, subject="p01", marker=marker)
    out = tmp_path / "out"
    run = run_cohort(
        read_cohort(manifest), out, scheduler=cluster, study_fn=study_fn, preload_models=True
    )
    assert marker.exists()  # the first attempt at p01 did kill its worker
    assert (run.done, run.failed) == (2, 1)
    discs, failures = _tables(out)
    ref = _tables(reference)[0]
    cols = ["subject", "level", "adc_np_median_um2_per_ms", "height_middle_mm", "pfirrmann_grade"]
    pd.testing.assert_frame_equal(
        discs[cols], ref[ref["subject"].isin(["p00", "p01"])][cols].reset_index(drop=True)
    )
    assert list(failures["subject"]) == ["p99"]
    assert failures.loc[0, "where"] == "manifest"
    assert "input not found" in failures.loc[0, "error"]


def test_each_disc_row_carries_its_studys_own_flags(reference: Path) -> None:
    """The study flags of each study's results.json, on each of its disc rows (they were
    in no cohort table: an audit), kept in its record (the tables read no results.json)."""
    discs = pd.read_parquet(reference / "cohort_discs.parquet")
    for subject, rows in discs.groupby("subject"):
        doc = json.loads((reference / f"sub-{subject}" / f"sub-{subject}_results.json").read_text())
        expected = ",".join(doc["flags"]) or None
        assert list(rows["study_flags"]) == [expected] * len(rows), subject
        record = json.loads(
            (reference / ".discquant-cohort" / "records" / f"sub-{subject}.json").read_text()
        )
        assert record["study_flags"] == doc["flags"], subject


def test_dicom_with_nifti_studies_says_once_that_no_seg_or_sr_was_written(
    cohort_root: Path, cluster: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """--dicom with NIfTI rows wrote no DICOM SEG/SR and the cohort said nothing: only
    each study's results.json warned (an audit)."""
    import logging

    manifest = tmp_path / "cohort.csv"
    manifest.write_text(f"subject,path\np00,{cohort_root / 'sub-p00'}\n")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="discquant.cohort"):
        run = run_cohort(read_cohort(manifest), out, scheduler=cluster,
                         options=CohortOptions(dicom=True))  # fmt: skip
    assert run.done == 1
    assert run.dicom_not_written == {"the T2 was not read from DICOM": 1}
    # carried from the pipeline in the study's record, not read back from its warning
    record = json.loads((out / ".discquant-cohort" / "records" / "sub-p00.json").read_text())
    assert record["dicom_not_written"] == "the T2 was not read from DICOM"
    written = json.loads((out / "cohort_run.json").read_text())
    assert written["dicom_not_written"] == run.dicom_not_written
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("--dicom")]
    assert said == [
        "--dicom: 1 of 1 finished studies have no DICOM SEG/SR (1: the T2 was not read from "
        "DICOM); each study's results.json says why (skipped_outputs)"
    ]
    assert not list((out / "sub-p00").glob("*.dcm"))
