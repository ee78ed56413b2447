"""Cohort tables, rebuilt from the per-study files at the end of every run (never appended).

``cohort_discs.parquet`` / ``.csv``: one row per disc level per finished study, the columns
of ``sub-<id>_discs.tsv`` after ``subject`` and the study's status, the study's own flags
(``study_flags``, those of its ``sub-<id>_results.json``, which its record keeps), and
provenance columns (source, input fingerprint, software and model versions, failed stages)
from its record.
``cohort_failures.csv``: one row per study without a current result, with the reason
(it failed, has not run, its input was not found, or its record is from another
configuration or code). Only the studies of the current cohort input are included; a
study is in exactly one table.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from discquant.cohort import records
from discquant.cohort.manifest import WITHHELD, CohortStudy, table_source, withheld_name
from discquant.cohort.worker import StudyOutcome, failure_record, json_scalar
from discquant.output_paths import split_study_label
from discquant.outputs.tables import COLUMN_NAMES, INTEGER_COLUMNS, RENAMED_COLUMNS

log = logging.getLogger(__name__)

FAILURE_COLUMNS: tuple[str, ...] = (
    "subject",
    "session",
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
    "config_sha256",
    "software_version",
    "code_sha256",
    "models",
    "failed_stages",
    "finished_at",
)
"""Columns appended to each disc row from the study's record."""

STUDY_COLUMNS: tuple[str, ...] = ("subject", "session", "status")
"""Columns put before each disc row's own (those of ``sub-<id>_discs.tsv``)."""

STUDY_FLAGS = "study_flags"
"""Column after the disc row's own: the study's flags (``flags`` of its
``sub-<id>_results.json``: ``sacrum_not_in_fov``, ``csf_adc_implausible``, ...; read from its
record, :func:`record_study_flags`), joined with commas, on each of its disc rows. They
were in no cohort table: a study whose CSF read far below free water (b-values ten times
off) listed its discs' ADCs with nothing to tell them apart (an audit)."""

TEXT_COLUMNS: frozenset[str] = frozenset(
    {*STUDY_COLUMNS, "level", "adc_class", "flags", STUDY_FLAGS, *PROVENANCE_COLUMNS}
)
"""Columns of ``cohort_discs`` that hold text; ``found`` holds booleans, the others numbers."""

DISCS_PARQUET = "cohort_discs.parquet"
DISCS_CSV = "cohort_discs.csv"
FAILURES_CSV = "cohort_failures.csv"
TABLE_FILES = (DISCS_PARQUET, DISCS_CSV, FAILURES_CSV)
"""The files :func:`write_cohort_tables` writes in the cohort folder, in that order."""

OUTDATED = "outdated"
"""Status of a study whose record was not written with this run's configuration or code
(its task did not run: a cancelled run); listed in ``cohort_failures.csv``."""

NOT_THIS_CONFIGURATION = (
    "not run with this configuration or code: its record is from an earlier run "
    "(it differs in {parts}); run the same command again to redo it"
)


@dataclass
class CohortTables:
    discs: pd.DataFrame
    failures: pd.DataFrame
    studies: pd.DataFrame
    """One row per study: subject, status, seconds, worker, failed stages (for the report)."""
    models: dict[str, Any] = field(default_factory=dict)
    """The models of the finished studies (with disc rows or not), from their records
    (:func:`models_in_use`)."""


def _read_discs(path: Path) -> pd.DataFrame:
    """A study's disc table, its columns under their current names.

    A disc table written before the ADC columns got their unit (2026-12-05) has
    ``adc_np_median`` for ``adc_np_median_um2_per_ms``. A resumed run never keeps one: the
    code that wrote it has another :func:`~discquant.cohort.worker.code_sha256`, so the
    study is redone, and the tables of a run list a record of other code as outdated. It
    is read only when the tables are rebuilt by hand (:func:`write_cohort_tables` without
    ``run_key``) over an earlier version's folder: its columns are renamed here (same
    values, same unit), so that the cohort tables have one column per quantity.
    """
    frame = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    return frame.rename(columns=RENAMED_COLUMNS)


def read_study_document(path: Path) -> dict[str, Any] | None:
    """A study's ``sub-<id>_results.json``, or None when it is not there.

    Parameters
    ----------
    path
        The document's path.

    Returns
    -------
    dict or None
        The document; None when there is no such file (a study written by a stand-in
        study function, or before the cohort read it) or it cannot be read or parsed as a
        JSON object: then a WARNING names the file (not for a missing one). The study's
        rows then have an empty :data:`STUDY_FLAGS` cell, as a study without flags has:
        the WARNING is what tells the two apart.
    """
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot be read (%s); its study's flags are not in the tables", path, exc)
        return None
    if not isinstance(document, dict):
        log.warning("%s: not a results document; its study's flags are not in the tables", path)
        return None
    return document


def study_flags(document: Mapping[str, Any] | None) -> str | None:
    """The study's flags as the tables spell them: joined with commas, as ``flags``.

    Parameters
    ----------
    document
        The study's results document (:func:`read_study_document`), or None.

    Returns
    -------
    str or None
        ``"sacrum_not_in_fov,transitional_anatomy_suspected"``; an empty string when the
        study has none, None when its document was not read.
    """
    if document is None:
        return None
    flags = document.get("flags")
    if not isinstance(flags, list):
        return None
    return ",".join(str(f) for f in flags)


def record_study_flags(out_dir: Path, subject: str, record: Mapping[str, Any]) -> str | None:
    """A finished study's flags as the tables spell them (:func:`study_flags`), from its
    record.

    Parameters
    ----------
    out_dir
        The cohort folder.
    subject
        The study's label.
    record
        Its record, whose ``study_flags`` the worker wrote from the analysis
        (:attr:`~discquant.cohort.worker.StudyReport.study_flags`).

    Returns
    -------
    str or None
        As :func:`study_flags`. Until 2026-12-07 every rebuild of the tables read each
        study's ``sub-<id>_results.json`` for them, one more file per study. A record
        without them (null: a study function that does not report them; missing: written
        before) is still read that way (:func:`read_study_document`): a run lists the
        records of earlier code as outdated, but tables rebuilt by hand over such a
        folder read them.
    """
    flags = record.get("study_flags")
    if isinstance(flags, list):
        return study_flags({"flags": flags})
    return study_flags(read_study_document(records.results_json_path(out_dir, subject)))


DICOM_NOT_WRITTEN = "no_dicom"
"""Column of :attr:`CohortTables.studies`: why a finished study of a run with ``--dicom``
has no DICOM SEG or SR, its record's ``dicom_not_written``
(:func:`~discquant.cohort.worker.no_dicom_reason`); missing where it has both, or where
``--dicom`` was not asked. Until 2026-12-07 it was recovered from the text of the study's
``--dicom:`` warning in its results.json. A record written before does not hold it: it is
of other code (its key's ``code_sha256``), which a run lists as outdated and does not
count; the reason is missing only in tables rebuilt by hand, whose files lack this column."""


def empty_discs() -> pd.DataFrame:
    """``cohort_discs`` without a row: its documented columns, in order, each typed.

    Returns
    -------
    pandas.DataFrame
        :data:`STUDY_COLUMNS`, the disc table's columns, :data:`STUDY_FLAGS` and
        :data:`PROVENANCE_COLUMNS`;
        text as objects, ``found`` boolean, the integer columns ``Int64``, the rest float.
        When no study finished, ``cohort_discs.csv`` was one empty line (pandas could not
        read it) and the Parquet file had no column (an audit).
    """
    names = (*STUDY_COLUMNS, *COLUMN_NAMES, STUDY_FLAGS, *PROVENANCE_COLUMNS)

    def dtype(name: str) -> str:
        if name in TEXT_COLUMNS:
            return "object"
        if name == "found":
            return "bool"
        return "Int64" if name in INTEGER_COLUMNS else "float64"

    return pd.DataFrame({name: pd.Series(dtype=dtype(name)) for name in names})


def config_sha256(config: Any) -> str | None:
    """SHA-256 of a record's configuration (``key["config"]``, canonical JSON), or None.

    Parameters
    ----------
    config
        The configuration document of a record's key.

    Returns
    -------
    str or None
        The hex digest; None when the record holds no configuration.
    """
    if config is None:
        return None
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def models_in_use(models: Iterable[Any]) -> dict[str, Any]:
    """The models of a cohort's finished studies, from their records.

    Parameters
    ----------
    models
        Each finished study's record's ``models`` (``segmentation_weights_sha256``,
        ``pfirrmann``: the grading weights' file, ...); one that is not a mapping is
        left out.

    Returns
    -------
    dict
        Each key with its value when every study that has it agrees, else the sorted
        list of their values (workers on nodes that read different files); empty without
        a study. Until 2026-12-07 they were parsed back from the JSON text of the
        ``models`` column of ``cohort_discs``, which left out a finished study without a
        disc row.
    """
    values: dict[str, set[Any]] = {}
    for study in models:
        if isinstance(study, Mapping):
            for name, value in study.items():
                values.setdefault(str(name), set()).add(json_scalar(value))
    return {
        name: next(iter(seen)) if len(seen) == 1 else sorted(seen, key=str)
        for name, seen in sorted(values.items())
    }


PATH_START = r"(?:^|(?<=[\s'\"(\[=]))"
"""Where a path begins in an error message: its start, after a blank, a quote, a bracket,
or ``=`` (``input not found: dicom=/data/in/P001``)."""


def shareable_error(error: str, *, root: Path | None = None, out: Path | None = None) -> str:
    """An error message without the folders above the cohort, for the tables.

    Parameters
    ----------
    error
        The message, as recorded.
    root
        The cohort input's folder (:attr:`~discquant.cohort.manifest.CohortStudy.root`):
        paths under it are given relative to it, as the study's ``source``.
    out
        The cohort folder: paths under it are given relative to it; a study's temporary
        folder (``DIR/.discquant-cohort/tmp/study-<n>/``) is left out, so that the path
        reads as the study's own outputs (``sub-11/sub-11_report.html``).

    Returns
    -------
    str
        The message, each path stripped only where it begins: a folder's name inside
        another path (``/mnt/backup/data/in/...``) stays whole (a review).
    """
    sep = re.escape(os.sep)
    tmp = re.escape(f"{records.STATE_DIR}{os.sep}tmp{os.sep}")
    error = re.sub(rf"{PATH_START}[^\s'\"]*?{tmp}[^\s'\"{sep}]+{sep}", "", error)
    for folder in (root, out):
        if folder is not None:
            error = re.sub(rf"{PATH_START}{re.escape(f'{folder}{os.sep}')}", "", error)
    return error


def _failure(
    study: CohortStudy,
    record: dict[str, Any] | None,
    why: str = "",
    *,
    out: Path | None = None,
    withhold: bool = False,
) -> dict[str, Any]:
    """A row of ``cohort_failures.csv``; a withheld record's (the study's label holds an
    identifier: :func:`~discquant.cohort.worker.failure_record`), or one with
    ``withhold``, names neither its subject and session nor its folder. Its error names
    paths relative to the cohort input or the cohort folder ``out``
    (:func:`shareable_error`)."""
    record = record or {}
    subject, session = split_study_label(study.subject)
    source = table_source(study)
    error = shareable_error(str(record.get("error", why)), root=study.root, out=out)
    if record.get("withheld") or withhold:
        subject, session, source = WITHHELD, None, withheld_name(study)
    return {
        "subject": subject,
        "session": session,
        "source": source,
        "where": record.get("where", "not run"),
        "error_type": record.get("error_type", ""),
        "error": error,
        "finished_at": record.get("finished_at", ""),
    }


def collect_tables(
    out_dir: Path,
    studies: Sequence[CohortStudy],
    *,
    run_key: Mapping[str, Any] | None = None,
    outcomes: Mapping[str, StudyOutcome] | None = None,
) -> CohortTables:
    """Read every study's record and disc table into the cohort tables.

    Parameters
    ----------
    out_dir
        The cohort folder.
    studies
        The studies of the current cohort input.
    run_key
        The run's key parts (:func:`~discquant.cohort.worker.run_key`, plus
        ``models_weights_sha256`` for the pipeline). A finished record that this run did
        not write or check (its task was cancelled) and whose key differs in one of these
        parts is listed as ``outdated`` in the failures, never as complete. None: records
        are taken as they are (tables rebuilt by hand).
    outcomes
        This run's outcome per subject: a study analysed, or skipped after its key was
        checked, is current; one whose input was not found (``where`` = ``input``) is a
        failure although its earlier record and outputs are kept.

    Returns
    -------
    CohortTables
        The disc rows, the failures, one row per study and the models of the finished
        studies (those without a disc row too).
    """
    out = Path(out_dir)
    outcomes = outcomes or {}
    disc_frames: list[pd.DataFrame] = []
    study_models: list[Any] = []  # each finished study's record's models
    failures: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    read = {s.subject: records.read_record(out, s.subject) for s in studies if s.error is None}
    # Subjects found to be the patient's ID or name: the other failed rows of the same
    # subject (a duplicate line, a session left out, an input not found) are withheld too
    # (they were tabled under the label: an audit).
    identifying = {
        split_study_label(label)[0].casefold()
        for label, record in read.items()
        if (record or {}).get("withheld")
    }
    for study in studies:
        withhold = split_study_label(study.subject)[0].casefold() in identifying
        if study.error is not None:  # the manifest row itself is bad: never ran
            refused = failure_record(study, study.error, where="manifest")
            failures.append(_failure(study, refused, out=out, withhold=withhold))
            subject = WITHHELD if withhold else study.subject
            rows.append({"subject": subject, "status": "failed", "seconds": None})
            continue
        record = read[study.subject]
        status = (record or {}).get("status", "not run")
        withhold = withhold and status not in records.DONE_STATUSES
        rows.append(
            {
                "subject": WITHHELD
                if (record or {}).get("withheld") or withhold
                else study.subject,
                "status": status,
                "seconds": (record or {}).get("seconds"),
                "worker": (record or {}).get("worker", ""),
                "failed_stages": ",".join((record or {}).get("failed_stages", [])),
            }
        )
        outcome = outcomes.get(study.subject)
        if outcome is not None and outcome.where == "input":  # record and outputs kept
            why = {"where": "input", "error_type": "InputNotFoundError", "error": outcome.error}
            failures.append(
                _failure(
                    study, {**why, "finished_at": records.now_iso()}, out=out, withhold=withhold
                )
            )
            rows[-1]["status"] = "failed"
            continue
        if record is None or status not in records.DONE_STATUSES:
            failures.append(
                _failure(
                    study,
                    record,
                    "no record: the study has not run yet",
                    out=out,
                    withhold=withhold,
                )
            )
            continue
        checked = outcome is not None and outcome.status in ("skipped", *records.DONE_STATUSES)
        old_key = record.get("key", {})
        differs = [] if run_key is None or checked else records.key_differences(old_key, run_key)
        if differs:
            error = NOT_THIS_CONFIGURATION.format(parts=", ".join(differs))
            failures.append(
                _failure(study, {"where": OUTDATED, "error_type": "", "error": error,
                                 "finished_at": record.get("finished_at", "")}, out=out)
            )  # fmt: skip
            rows[-1]["status"] = OUTDATED
            continue
        path = records.discs_tsv_path(out, study.subject)
        try:
            frame = _read_discs(path)
        except (OSError, ValueError) as exc:
            failures.append(
                _failure(study, {"where": "outputs", "error_type": type(exc).__name__,
                                 "error": f"{path}: {exc}"}, out=out)
            )  # fmt: skip
            rows[-1]["status"] = "failed"
            continue
        frame.insert(0, "status", status)
        subject, session = split_study_label(study.subject)
        frame.insert(0, "session", session)  # BIDS ses- label; missing without sessions
        frame.insert(0, "subject", subject)
        # a study without flags is an empty cell, as a disc without flags (``flags``)
        flags = record_study_flags(out, study.subject, record) or None
        frame[STUDY_FLAGS] = flags
        rows[-1][STUDY_FLAGS] = flags
        key = record.get("key") or {}
        if (key.get("config") or {}).get("dicom"):  # a run with --dicom
            rows[-1][DICOM_NOT_WRITTEN] = record.get("dicom_not_written")
        provenance = {
            "source": table_source(study),
            "input_fingerprint_sha256": key.get("input_fingerprint_sha256"),
            "config_sha256": config_sha256(key.get("config")),
            "software_version": key.get("software_version"),
            "code_sha256": key.get("code_sha256"),
            "models": json.dumps(record.get("models", {}), sort_keys=True),
            "failed_stages": ",".join(record.get("failed_stages", [])),
            "finished_at": record.get("finished_at"),
        }
        for column in PROVENANCE_COLUMNS:  # the documented columns, in their order
            frame[column] = provenance[column]
        disc_frames.append(frame)
        study_models.append(record.get("models", {}))
    discs = pd.concat(disc_frames, ignore_index=True) if disc_frames else empty_discs()
    # A grade withheld (n/a) made every grade a float (3.0): the integer columns of the
    # disc table stay integers, with missing values (Int64).
    for c in sorted(INTEGER_COLUMNS & set(discs.columns)):
        values = discs[c].dropna()
        if pd.api.types.is_numeric_dtype(discs[c]) and (values == values.round()).all():
            discs[c] = discs[c].astype("Int64")
    if not discs.empty:
        # sort by subject and session, keeping each study's level order (L1-L2 … L5-S1)
        discs["_order"] = discs.groupby(["subject", "session"], dropna=False).cumcount()
        by = ["subject", "session", "_order"]
        discs = discs.sort_values(by, kind="stable", na_position="first").drop(columns="_order")
        discs = discs.reset_index(drop=True)
    fails = pd.DataFrame(failures, columns=list(FAILURE_COLUMNS))
    by = ["subject", "session"]
    fails = fails.sort_values(by, kind="stable", na_position="first").reset_index(drop=True)
    return CohortTables(
        discs=discs, failures=fails, studies=pd.DataFrame(rows), models=models_in_use(study_models)
    )


FileWrite = tuple[Path, Callable[[Path], Any]]
"""A file to write and how: ``(path, write)``, where ``write(tmp)`` writes its content to
the temporary file ``tmp`` (:func:`replace_together`)."""


def _named_error(exc: OSError, tmp: Path, path: Path) -> OSError:
    """``exc`` as an :class:`OSError` naming ``path``, not its temporary file ``tmp``.

    PyArrow's I/O errors carry no errno, their reason only in the message, which named
    the temporary file: the table's name in its place.
    """
    reason = exc.strerror if exc.errno is not None else str(exc).replace(str(tmp), str(path))
    return OSError(exc.errno, reason, str(path))


def replace_together(writes: Sequence[FileWrite]) -> None:
    """Write every file to a temporary file beside it, then rename them all into place.

    Parameters
    ----------
    writes
        The files and their writers (:data:`FileWrite`), renamed in this order.

    Raises
    ------
    OSError
        A write failed, or a file's place is taken by a folder: naming that file (not its
        temporary one, with the system's reason), before any file is renamed, so that the
        earlier files all stay as they were. Every temporary file is removed.

    Notes
    -----
    Readers never see half a file (``os.replace``), and a failure leaves no file of
    this run beside those of the last: with ``cohort_discs.csv`` a folder, the Parquet
    table was already rewritten while the failures, the report and ``cohort_run.json``
    stayed the last run's; with the report a folder, the tables were rewritten and its
    temporary file left behind (an audit). A temporary file was left too when the disk
    filled, and the error named it rather than the table (an audit).
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for path, write in writes:
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            temps.append((tmp, path))
            try:
                write(tmp)
            except OSError as exc:
                raise _named_error(exc, tmp, path) from None
        for _, path in temps:  # what os.replace refuses, before the first file is renamed
            if path.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        for tmp, path in temps:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise _named_error(exc, tmp, path) from None
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)


def write_json(document: Any) -> Callable[[Path], Any]:
    """A writer of ``document`` as indented UTF-8 JSON, for :func:`replace_together`."""
    text = records.json_text(document)
    return lambda path: path.write_text(text, encoding="utf-8")


def _csv_spelling(table: Any) -> Any:
    """``table`` with its boolean columns as ``true``/``false``, as the subjects'
    ``*_discs.tsv`` spell them (pandas writes ``True``; it reads both)."""
    flags = [c for c in table.columns if table[c].dtype == bool]
    return table.assign(**{c: table[c].map({True: "true", False: "false"}) for c in flags})


def table_writes(out_dir: Path, tables: CohortTables) -> list[FileWrite]:
    """The writes of :data:`TABLE_FILES` in ``out_dir``, for :func:`replace_together`.

    Parameters
    ----------
    out_dir
        The cohort folder.
    tables
        The tables (:func:`collect_tables`).

    Returns
    -------
    list of FileWrite
        ``cohort_discs.parquet``, ``cohort_discs.csv`` and ``cohort_failures.csv``.
    """
    out = Path(out_dir)
    return [
        (out / DISCS_PARQUET, lambda p: tables.discs.to_parquet(p, index=False)),
        (out / DISCS_CSV, lambda p: _csv_spelling(tables.discs).to_csv(p, index=False)),
        (out / FAILURES_CSV, lambda p: _csv_spelling(tables.failures).to_csv(p, index=False)),
    ]


def dicom_not_written(studies: pd.DataFrame) -> dict[str, int]:
    """How many finished studies have no DICOM SEG or SR, per reason (most first).

    Parameters
    ----------
    studies
        :attr:`CohortTables.studies`.

    Returns
    -------
    dict of str to int
        Reason (:func:`~discquant.cohort.worker.no_dicom_reason`) to number of studies;
        empty when every finished study of a ``--dicom`` run has both, or none was
        analysed with ``--dicom``.
    """
    if studies.empty or DICOM_NOT_WRITTEN not in studies:
        return {}
    done = studies[studies["status"].isin(records.DONE_STATUSES)]
    counts = done[DICOM_NOT_WRITTEN].dropna().value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def log_tables(tables: CohortTables) -> None:
    """Say (INFO) how many rows the tables written hold."""
    log.info(
        "cohort tables: %d disc rows from %d studies, %d failures",
        len(tables.discs),
        len(tables.discs.groupby(["subject", "session"], dropna=False)) if len(tables.discs) else 0,
        len(tables.failures),
    )


def write_cohort_tables(
    out_dir: Path,
    studies: Sequence[CohortStudy],
    *,
    run_key: Mapping[str, Any] | None = None,
    outcomes: Mapping[str, StudyOutcome] | None = None,
) -> CohortTables:
    """Rebuild ``cohort_discs.parquet``/``.csv`` and ``cohort_failures.csv`` in ``out_dir``.

    ``run_key`` and ``outcomes`` are those of the run that just ended (see
    :func:`collect_tables`); without them the records are taken as they are. The three
    are written together (:func:`replace_together`): all, or, when one cannot be, none.
    """
    out = Path(out_dir)
    tables = collect_tables(out, studies, run_key=run_key, outcomes=outcomes)
    replace_together(table_writes(out, tables))
    log_tables(tables)
    return tables
