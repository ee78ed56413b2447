"""Cohort tables, rebuilt from the per-study files at the end of every run (never appended).

``cohort_discs.parquet`` / ``.csv``: one row per disc level per finished study, the columns
of ``sub-<id>_discs.tsv`` after ``subject`` and the study's status, and provenance columns
(source, input fingerprint, software and model versions, failed stages) from its record.
``cohort_failures.csv``: one row per study that produced no outputs, with the reason.
Only the studies of the current cohort input are included; a study is in exactly one table.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from discquant.cohort import records
from discquant.cohort.manifest import CohortStudy
from discquant.cohort.worker import failure_record
from discquant.outputs.tables import RENAMED_COLUMNS

log = logging.getLogger(__name__)

FAILURE_COLUMNS: tuple[str, ...] = (
    "subject",
    "source",
    "where",
    "error_type",
    "error",
    "finished_at",
)
"""Columns of ``cohort_failures.csv``."""

PROVENANCE_COLUMNS: tuple[str, ...] = (
    "source",
    "input_fingerprint_sha256",
    "software_version",
    "models",
    "failed_stages",
    "finished_at",
)
"""Columns appended to each disc row from the study's record."""


@dataclass
class CohortTables:
    discs: pd.DataFrame
    failures: pd.DataFrame
    studies: pd.DataFrame
    """One row per study: subject, status, seconds, worker, failed stages (for the report)."""


def discs_tsv_path(out_dir: Path, subject: str) -> Path:
    return records.subject_dir(out_dir, subject) / f"sub-{subject}_discs.tsv"


def _read_discs(path: Path) -> pd.DataFrame:
    """A study's disc table, its columns under their current names.

    A study finished before the ADC columns got their unit (2026-12-05) and skipped on
    resume keeps its old ``sub-<id>_discs.tsv`` (``adc_np_median``); its columns are renamed
    here (same values, same unit), so the cohort tables have one column per quantity.
    """
    frame = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    return frame.rename(columns=RENAMED_COLUMNS)


def _failure(study: CohortStudy, record: dict[str, Any] | None, why: str = "") -> dict[str, Any]:
    record = record or {}
    return {
        "subject": study.subject,
        "source": study.source,
        "where": record.get("where", "not run"),
        "error_type": record.get("error_type", ""),
        "error": record.get("error", why),
        "finished_at": record.get("finished_at", ""),
    }


def collect_tables(out_dir: Path, studies: Sequence[CohortStudy]) -> CohortTables:
    """Read every study's record and disc table into the cohort tables."""
    out = Path(out_dir)
    disc_frames: list[pd.DataFrame] = []
    failures: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for study in studies:
        if study.error is not None:  # the manifest row itself is bad: never ran
            failures.append(_failure(study, failure_record(study, study.error, where="manifest")))
            rows.append({"subject": study.subject, "status": "failed", "seconds": None})
            continue
        record = records.read_record(out, study.subject)
        status = (record or {}).get("status", "not run")
        rows.append(
            {
                "subject": study.subject,
                "status": status,
                "seconds": (record or {}).get("seconds"),
                "worker": (record or {}).get("worker", ""),
                "failed_stages": ",".join((record or {}).get("failed_stages", [])),
            }
        )
        if record is None or status not in records.DONE_STATUSES:
            failures.append(_failure(study, record, "no record: the study has not run yet"))
            continue
        path = discs_tsv_path(out, study.subject)
        try:
            frame = _read_discs(path)
        except (OSError, ValueError) as exc:
            failures.append(
                _failure(study, {"where": "outputs", "error_type": type(exc).__name__,
                                 "error": f"{path}: {exc}"})
            )  # fmt: skip
            rows[-1]["status"] = "failed"
            continue
        frame.insert(0, "status", status)
        frame.insert(0, "subject", study.subject)
        key = record.get("key", {})
        frame["source"] = study.source
        frame["input_fingerprint_sha256"] = key.get("input_fingerprint_sha256")
        frame["software_version"] = key.get("software_version")
        frame["models"] = json.dumps(record.get("models", {}), sort_keys=True)
        frame["failed_stages"] = ",".join(record.get("failed_stages", []))
        frame["finished_at"] = record.get("finished_at")
        disc_frames.append(frame)
    discs = pd.concat(disc_frames, ignore_index=True) if disc_frames else pd.DataFrame()
    if not discs.empty:
        # sort by subject, keeping each study's level order (L1-L2 … L5-S1)
        discs["_order"] = discs.groupby("subject").cumcount()
        discs = discs.sort_values(["subject", "_order"], kind="stable").drop(columns="_order")
        discs = discs.reset_index(drop=True)
    fails = pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))
    fails = fails.sort_values("subject", kind="stable").reset_index(drop=True)
    return CohortTables(discs=discs, failures=fails, studies=pd.DataFrame(rows))


def _replace(path: Path, write: Any) -> None:
    """Write through a temporary file and ``os.replace`` so readers never see half a table."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_cohort_tables(out_dir: Path, studies: Sequence[CohortStudy]) -> CohortTables:
    """Rebuild ``cohort_discs.parquet``/``.csv`` and ``cohort_failures.csv`` in ``out_dir``."""
    out = Path(out_dir)
    tables = collect_tables(out, studies)
    _replace(out / "cohort_discs.parquet", lambda p: tables.discs.to_parquet(p, index=False))
    _replace(out / "cohort_discs.csv", lambda p: tables.discs.to_csv(p, index=False))
    _replace(out / "cohort_failures.csv", lambda p: tables.failures.to_csv(p, index=False))
    log.info(
        "cohort tables: %d disc rows from %d studies, %d failures",
        len(tables.discs),
        tables.discs["subject"].nunique() if not tables.discs.empty else 0,
        len(tables.failures),
    )
    return tables
