"""A light stand-in for the pipeline, for tests of the cohort plumbing (not of the analysis).

A stand-in study is a folder with ``values.json``: ``{"adc": [five nucleus ADCs]}``. The
stand-in writes the real per-disc table (``outputs.tables.write_discs_tsv``) with those
values, so the cohort tables can be compared with known numbers. With ``"results"`` in it
(``{"flags": [...], ...}``: part of a results document) it writes that as the study's
``sub-<id>_results.json`` too, and reports its flags; without, neither. With
``"dicom_not_written"`` (a reason), a run with ``--dicom`` reports it, as the pipeline
reports why it wrote no DICOM SEG/SR (:func:`discquant.cohort.worker.no_dicom_reason`). A
``crash`` file makes the worker process die (``os._exit``) on the first attempt; its
content names a marker file that records that the crash happened (later attempts see it and
run normally), or is ``always`` (every attempt dies). A ``cancel_others`` file makes the
study cancel every other task of the run. An ``error`` file makes the study raise a
``RuntimeError`` (a bug, not bad input: retried, then recorded) on every attempt. A
``full_disk`` file makes the study's writing fail as on a full disk (``OSError`` ENOSPC
naming its temporary folder); each attempt appends a line to the file its content names.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import time
from pathlib import Path
from typing import Any

from discquant.cohort import CohortOptions, StudyReport
from discquant.errors import InvalidInputError
from discquant.output_paths import study_folder
from discquant.pipeline import StudyInputs
from discquant.results import LEVELS, AdcStats, DiscResult


def make_study(
    folder: Path,
    adc: list[float],
    *,
    crash_marker: Path | None = None,
    results: dict[str, object] | None = None,
    dicom_not_written: str | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {"adc": adc}
    if results is not None:
        values["results"] = results
    if dicom_not_written is not None:
        values["dicom_not_written"] = dicom_not_written
    (folder / "values.json").write_text(json.dumps(values))
    if crash_marker is not None:
        (folder / "crash").write_text(str(crash_marker))
    return folder


def standin_study(inputs: StudyInputs, out_dir: Path, options: CohortOptions) -> StudyReport:
    assert inputs.path is not None and inputs.subject is not None
    folder = Path(inputs.path)
    crash = folder / "crash"
    if crash.is_file():
        target = crash.read_text()
        if target == "always":
            os._exit(17)  # the worker process dies mid-task, every time
        marker = Path(target)
        if not marker.exists():
            marker.write_text("crashed")
            os._exit(17)  # the worker process dies mid-task, first attempt only
    if (folder / "error").is_file():
        raise RuntimeError("a bug in the analysis")
    if (folder / "cancel_others").is_file():
        _cancel_other_tasks()
    if (folder / "full_disk").is_file():
        with Path((folder / "full_disk").read_text()).open("a") as attempts:
            attempts.write(f"{inputs.subject}\n")
        written = study_folder(out_dir, inputs.subject)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(written))
    values = folder / "values.json"
    report = _write_study(_values(values), inputs.subject, out_dir, _values(values, "results"))
    no_dicom = _values(values, "dicom_not_written") if options.dicom else None
    return dataclasses.replace(report, dicom_not_written=no_dicom) if no_dicom else report


def label_checked_study(inputs: StudyInputs, out_dir: Path, options: CohortOptions) -> StudyReport:
    """The stand-in for a stand-in study; a folder without ``values.json`` (a DICOM study)
    goes through :func:`discquant.pipeline.run_study` up to its subject-label check, which
    refuses a label that holds the patient's ID or name before the (slow) analysis."""
    assert inputs.path is not None
    if (Path(inputs.path) / "values.json").is_file():
        return standin_study(inputs, out_dir, options)
    from discquant.pipeline import run_study

    run_study(inputs, out_dir, keep_phi=options.keep_phi)
    raise AssertionError(f"{inputs.path} was not refused")


def _cancel_other_tasks() -> None:
    """Cancel every other task of the run, as when the client loses its scheduler."""
    from distributed import Future, get_client, get_worker

    client = get_client()
    own = get_worker().get_current_task()
    keys = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))
    others = [Future(k, client) for k in keys if k != own]
    client.cancel(others, force=True)


def sidecar_study(inputs: StudyInputs, out_dir: Path, options: CohortOptions) -> StudyReport:
    """A stand-in for explicit files: the ADCs come from the ``.json`` sidecar next to
    ``dwi`` (found by name, as the import finds it; the manifest does not name it)."""
    from discquant.io.nifti import sibling

    assert inputs.dwi is not None and inputs.subject is not None
    sidecar = sibling(Path(inputs.dwi), ".json")
    assert sidecar is not None
    return _write_study(_values(sidecar), inputs.subject, out_dir)


def _values(path: Path, key: str = "adc") -> Any:
    """``key`` of a stand-in's ``values.json``: its ADCs, or (``results``,
    ``dicom_not_written``) what else it names (None when it names none)."""
    try:
        document = json.loads(path.read_text())
        return document["adc"] if key == "adc" else document.get(key)
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidInputError(f"not a stand-in study: {exc}", path=path) from exc


def _write_study(
    values: list[float], subject: str, out_dir: Path, results: object = None
) -> StudyReport:
    from discquant.outputs.tables import write_discs_tsv

    time.sleep(0.05)
    discs = [
        DiscResult(
            level=level,
            found=True,
            adc_np=AdcStats(mean=v, median=v, sd=0.1, p10=v - 0.1, p90=v + 0.1, n_voxels=50),
            pfirrmann_grade=1 + i % 5,
        )
        for i, (level, v) in enumerate(zip(LEVELS, values, strict=True))
    ]
    sub = study_folder(out_dir, subject)  # sub-<id>/, or sub-<id>/ses-<session>/
    sub.mkdir(parents=True)
    write_discs_tsv(discs, sub / f"sub-{subject}_discs.tsv")
    report = StudyReport(models={"standin": "1"}, n_discs_found=len(discs))
    if results is not None:
        (sub / f"sub-{subject}_results.json").write_text(json.dumps(results))
        flags = results.get("flags") if isinstance(results, dict) else None
        if flags is not None:  # reported as pipeline_study reports them (the record keeps them)
            report = dataclasses.replace(report, study_flags=tuple(flags))
    return report


def crash_first_attempt(
    inputs: StudyInputs, out_dir: Path, options: CohortOptions, *, subject: str, marker: Path
) -> StudyReport:
    """The real pipeline, except that the first attempt at ``subject`` kills its worker
    process after writing its outputs (mid-task: before the runner moves them into place).

    Use as ``functools.partial(crash_first_attempt, subject=..., marker=...)``.
    """
    from discquant.cohort import pipeline_study

    report = pipeline_study(inputs, out_dir, options)
    if inputs.subject == subject and not marker.exists():
        marker.write_text("crashed")
        os._exit(17)
    return report
