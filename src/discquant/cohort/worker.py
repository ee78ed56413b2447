"""What runs inside a Dask worker: the per-worker model cache and one study's task.

Models load once per worker process: :func:`worker_models` is cached in the process, and
:class:`~discquant.cohort.preload.PreloadModels` (a Dask ``WorkerPlugin``) calls it when a
worker starts, so the first study does not pay for it and a worker that joins later (or
replaces a killed one) loads them too. Dask is imported only inside the functions that
use it, so that ``import discquant.cohort`` does not pay for it.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from discquant import __version__
from discquant.cohort import records
from discquant.cohort.manifest import (
    WITHHELD,
    CohortStudy,
    input_fingerprint,
    missing_inputs,
    withheld_name,
)
from discquant.errors import (
    DiscquantError,
    IdentifyingLabelError,
    InputNotFoundError,
    InvalidInputError,
    ModelError,
)
from discquant.output_paths import sessions_inside
from discquant.outputs.write import NO_SOURCE_DICOM, OutputPaths
from discquant.pipeline import AnalysisConfig, StudyInputs
from discquant.results import AnalysisResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortOptions:
    """What every study of a cohort shares (recorded with each study)."""

    config: AnalysisConfig = field(default_factory=AnalysisConfig)
    dicom: bool = False
    keep_phi: bool = False
    resume: bool = True
    segmentation_model: Path | None = None
    """Segmentation weights to use instead of the shipped ones (a path every worker can read)."""
    pfirrmann_model: Path | None = None
    """Grading weights to use instead of the shipped ones."""


def json_scalar(value: Any) -> bool | int | float | str:
    """``value`` as JSON keeps it where it is a scalar, else its text: a model's
    ``segmentation_shipped`` was recorded, and shown in cohort_run.json, as "True" (a
    review)."""
    return value if isinstance(value, bool | int | float | str) else str(value)


@dataclass(frozen=True)
class StudyReport:
    """What a study function tells the runner besides the files it wrote."""

    failed_stages: tuple[str, ...] = ()
    models: dict[str, Any] = field(default_factory=dict)
    n_discs_found: int = 0
    study_flags: tuple[str, ...] | None = None
    """The study's own flags, ``flags`` of its results.json (``sacrum_not_in_fov``, ...).
    The record keeps them, so that the cohort tables need not read that file; None: not
    reported (the tables then read it)."""
    dicom_not_written: str | None = None
    """Why a study analysed with ``--dicom`` has no DICOM SEG or SR
    (:func:`no_dicom_reason`); None when it has both, or none was asked. The record
    keeps it, and the cohort counts studies by it. A study function of one's own that
    leaves it None is counted as having both (unlike ``study_flags``, nothing falls back
    to reading its outputs): set it from :func:`no_dicom_reason`, as
    :func:`pipeline_study` does."""


DICOM_WRITER_REFUSED = "a SEG or SR writer did not write it (the study's results.json says why)"
"""The reason :func:`no_dicom_reason` gives for a SEG or SR whose writer refused or failed."""


def no_dicom_reason(result: AnalysisResult, paths: OutputPaths) -> str | None:
    """Why a study analysed with ``--dicom`` has no DICOM SEG or SR, or None.

    Parameters
    ----------
    result
        The study's result, as :func:`discquant.pipeline.run_study` returned it.
    paths
        Its written outputs, from the same call.

    Returns
    -------
    str or None
        None when both were written; :data:`DICOM_WRITER_REFUSED` for a writer that
        refused or failed (its reason in ``paths.skipped``); else why there was no source
        DICOM T2 (:attr:`~discquant.results.AnalysisResult.dicom_not_written`: ``the T2
        was not read from DICOM``, ``no T2 series was used``, ...), without the study's
        details, so that studies count together; the writers' own reason,
        ``no source DICOM T2 images``, when run_study gave none. Until 2026-12-07 the
        cohort tables recovered it from the text of the study's ``--dicom:`` warning.
    """
    if paths.dicom_seg is not None and paths.dicom_sr is not None:
        return None
    reason = paths.skipped.get("dicom_seg") or paths.skipped.get("dicom_sr")
    if reason not in (None, NO_SOURCE_DICOM):
        return DICOM_WRITER_REFUSED
    return result.dicom_not_written or NO_SOURCE_DICOM


StudyFunction = Callable[[StudyInputs, Path, CohortOptions], StudyReport]
"""``fn(inputs, out_dir, options)`` writes ``out_dir/sub-<inputs.subject>/`` and reports.

It raises :class:`~discquant.errors.DiscquantError` for bad input (the study fails, not
retried); any other exception is retried by Dask and then recorded as a failure.
"""


@dataclass(frozen=True)
class StudyOutcome:
    """The result of one study's task, as the client sees it."""

    subject: str
    status: str
    """``complete``, ``partial`` (some stages failed), ``skipped`` (resume) or ``failed``."""
    seconds: float = 0.0
    error: str = ""
    worker: str = ""
    where: str = ""
    """Where a failure happened when it left no failure record: ``input`` (the study's
    input paths were not found; its record and outputs of an earlier run are kept)."""
    redone: str = ""
    """For a study finished by an earlier run and analysed again: the parts of its resume
    key that changed (``code_sha256``, ``config``, ...), comma-separated."""
    withheld: str = ""
    """For a study refused because its label holds the patient's ID or name: how messages
    name it instead of ``sub-<label>`` (:func:`~discquant.cohort.manifest.withheld_name`)."""
    removed_outputs: bool = False
    """The study's outputs of an earlier run were removed as its failure was recorded
    (:func:`record_failure`); the runner says so, once, in the client's log."""
    storage_error: OSError | None = None
    """Set when the study could not be written because the output folder cannot be
    (:func:`output_storage_error`): not a failure of the study, which is neither recorded
    nor has its earlier outputs removed; the runner stops the run on it."""

    @property
    def name(self) -> str:
        """``sub-<label>``, or :attr:`withheld` when it is set."""
        return self.withheld or f"sub-{self.subject}"


_LOAD_ERRORS: dict[tuple[str, Path | None], BaseException] = {}
"""Why a model did not load in this process, by (model, weight file)."""


FileStamp = tuple[int, int] | None
"""(modification time in ns, size) of a weight file; None for the shipped model or a
file that is not there."""


def file_stamps(segmentation: Path | None, pfirrmann: Path | None) -> tuple[FileStamp, FileStamp]:
    """The stamps of two weight files, part of the model cache's key: a file replaced in
    place is loaded again. Keyed on the path alone, a long-lived worker kept the old
    weights, and resume skipped the study by their hash."""

    def stamp(path: Path | None) -> FileStamp:
        try:
            st = Path(path).stat() if path is not None else None
        except OSError:
            return None
        return None if st is None else (st.st_mtime_ns, st.st_size)

    return stamp(segmentation), stamp(pfirrmann)


@functools.lru_cache(maxsize=4)
def worker_models(
    segmentation: Path | None = None,
    pfirrmann: Path | None = None,
    stamps: tuple[FileStamp, FileStamp] | None = None,
) -> dict[str, Any]:
    """The models, loaded once per process (a model that cannot load is left out and its
    error kept: a shipped model's stage then fails with the loader's message, and a study
    that asked for its own weights fails, see :func:`options_models`).

    Parameters
    ----------
    segmentation, pfirrmann
        Weight files; None: the shipped models.
    stamps
        :func:`file_stamps` of the two files: only a cache key.
    """
    models: dict[str, Any] = {}
    try:
        from discquant.grade.pfirrmann import load_grading_model

        models["pfirrmann"] = load_grading_model(pfirrmann)
    except Exception as exc:  # the study's grading stage reports it
        _LOAD_ERRORS["pfirrmann", pfirrmann] = exc
        log.warning("pfirrmann model not preloaded: %s", exc)
    try:
        from discquant.segment import load_segmentation_model

        models["segmentation"] = load_segmentation_model(segmentation)
    except Exception as exc:  # the study's segmentation stage reports it
        _LOAD_ERRORS["segmentation", segmentation] = exc
        log.warning("segmentation model not preloaded: %s", exc)
    return models


def options_models(options: CohortOptions) -> dict[str, Any]:
    """The models these options need, loaded once per worker process.

    Raises
    ------
    ModelError
        When weights the options name (``segmentation_model``, ``pfirrmann_model``) did
        not load in this process: the study fails rather than running with the shipped
        model in their place.
    """
    models = worker_models(
        options.segmentation_model,
        options.pfirrmann_model,
        file_stamps(options.segmentation_model, options.pfirrmann_model),
    )
    for name, path, what in (
        ("segmentation", options.segmentation_model, "segmentation"),
        ("pfirrmann", options.pfirrmann_model, "grading"),
    ):
        if path is None or name in models:
            continue
        exc = _LOAD_ERRORS.get((name, path))
        reason = str(exc) if exc is not None else "it did not load"
        if isinstance(exc, DiscquantError) and exc.path is not None:
            reason = reason.removeprefix(f"{exc.path}: ")
        raise ModelError(
            f"the {what} model given for this cohort did not load on this worker ({reason}); "
            "the shipped one is not used in its place",
            path=path,
        )
    return models


@functools.lru_cache(maxsize=4)
def worker_model_versions(
    segmentation: Path | None = None,
    pfirrmann: Path | None = None,
    stamps: tuple[FileStamp, FileStamp] | None = None,
) -> dict[str, str]:
    """``{model: sha256 of its weights}`` of this worker's models (part of the resume key)."""
    models = worker_models(segmentation, pfirrmann, stamps)
    return {name: model.weights_sha256 for name, model in sorted(models.items())}


def pipeline_study(inputs: StudyInputs, out_dir: Path, options: CohortOptions) -> StudyReport:
    """The real study function: :func:`discquant.pipeline.run_study` with cached models,
    on one PyTorch thread (each worker has one). Set here, where a study runs, not where
    the models load: the runner loads them in the user's process too, to check a record
    left by a cancelled task, and left a notebook's PyTorch on one thread (an audit)."""
    import torch

    from discquant.pipeline import run_study

    torch.set_num_threads(1)

    models = options_models(options)
    segmenter = None
    if "segmentation" in models:
        from discquant.segment import make_segmenter

        segmenter = make_segmenter(models["segmentation"], device=options.config.device)
    result, paths = run_study(
        inputs,
        out_dir,
        config=options.config,
        keep_phi=options.keep_phi,
        dicom=options.dicom,
        segmenter=segmenter,
        pfirrmann_model=models.get("pfirrmann"),
    )
    shas = worker_model_versions(
        options.segmentation_model,
        options.pfirrmann_model,
        file_stamps(options.segmentation_model, options.pfirrmann_model),
    )
    versions = {f"{k}_weights_sha256": v for k, v in shas.items()}
    versions.update({k: json_scalar(v) for k, v in result.provenance.get("models", {}).items()})
    return StudyReport(
        failed_stages=tuple(s.name for s in result.failed_stages),
        models=versions,
        n_discs_found=sum(1 for d in result.discs if d.found),
        study_flags=tuple(result.flags),
        dicom_not_written=no_dicom_reason(result, paths) if options.dicom else None,
    )


class ShutdownNoiseFilter(logging.Filter):
    """Drops distributed's warnings about stopping a worker in the middle of a study.

    When a cohort is interrupted (Ctrl-C, SIGTERM) its local cluster closes while studies
    run: each busy worker logged "Async instruction ... ended with CancelledError" and its
    nanny "Worker process still alive after 4.0 seconds, killing" after discquant had
    already said "interrupted; run the same command again to resume". Both are expected
    then, and say nothing the user can act on; every other message passes.
    """

    MESSAGES: tuple[str, ...] = (
        "ended with CancelledError",
        "Worker process still alive after",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(part in message for part in self.MESSAGES)


SHUTDOWN_NOISE_LOGGERS: tuple[str, ...] = ("distributed.worker.state_machine", "distributed.nanny")
"""The loggers (worker process, nanny) that :class:`ShutdownNoiseFilter` is put on."""


def quiet_shutdown_noise() -> None:
    """Put one :class:`ShutdownNoiseFilter` on each of ``SHUTDOWN_NOISE_LOGGERS`` (idempotent)."""
    for name in SHUTDOWN_NOISE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ShutdownNoiseFilter) for f in logger.filters):
            logger.addFilter(ShutdownNoiseFilter())


COMPUTE_FAILED_CONFIG = "discquant.cohort-compute-failed-log"
"""Dask configuration key: True lets the workers of a cohort's local cluster log Dask's own
"Compute Failed" block of a study that raised (``--verbose``); off by default
(:class:`ComputeFailedFilter`). :func:`~discquant.cohort.run.local_cluster` sets it; the
nannies pass the configuration on to their workers."""


class ComputeFailedFilter(logging.Filter):
    """Drops ``distributed.worker``'s "Compute Failed" block of a task that raised.

    A study that crashes (an unexpected exception) logs ``sub-<id> crashed:`` with its
    traceback on the worker (:func:`process_study`); Dask then logged the same traceback
    again in its own block, with the task's arguments (the study's paths), on every
    attempt and under ``--quiet`` (an audit). Its failure row and the command's summary
    line do not come from this log, and every other message passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def quiet_compute_failed() -> None:
    """Put one :class:`ComputeFailedFilter` on ``distributed.worker`` (idempotent)."""
    logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, ComputeFailedFilter) for f in logger.filters):
        logger.addFilter(ComputeFailedFilter())


def dask_setup(worker: Any) -> None:
    """Dask preload hook, run in each worker process of a cohort's local cluster.

    ``local_cluster`` names this module in ``distributed.worker.preload``. Ctrl-C in a
    terminal reaches every process of its group: the workers took it as their own
    KeyboardInterrupt and printed tracebacks beside discquant's "interrupted" line. The
    workers now pass over SIGINT instead; the main process closes them. A Python handler
    that does nothing, not ``SIG_IGN``: an ignored signal stays ignored across exec, so a
    dcm2niix started by the worker outlived Ctrl-C. The shutdown warnings are dropped too
    (:func:`quiet_shutdown_noise`), the libraries' messages about a damaged header
    (:func:`discquant.library_logs.quiet_libraries`), and, unless :data:`COMPUTE_FAILED_CONFIG`
    (``--verbose``), Dask's "Compute Failed" block (:func:`quiet_compute_failed`).
    """
    import dask

    if threading.current_thread() is threading.main_thread():  # signal() needs it
        signal.signal(signal.SIGINT, _pass_over_interrupt)
    quiet_shutdown_noise()
    if not dask.config.get(COMPUTE_FAILED_CONFIG, default=False):
        quiet_compute_failed()
    # nibabel's header fixes of a damaged NIfTI printed through its own handler beside
    # the study's one-line failure; pydicom's and Python's warnings likewise
    from discquant.library_logs import quiet_libraries

    quiet_libraries()


def _pass_over_interrupt(signum: int, frame: object) -> None:
    """SIGINT handler of a cohort worker: nothing (see :func:`dask_setup`)."""


CODE_SUFFIXES: tuple[str, ...] = (".py", ".json", ".yaml", ".yml", ".html")
"""Files of the installed package that make up :func:`code_sha256`: the source, the
shipped configuration (ADC classes, water calibration), the results schema and the report
template. Model weights (``.pt``) are left out: :func:`worker_model_versions` hashes them."""


def _code_files(package: Path) -> Iterator[tuple[str, Path]]:
    """``(relative POSIX name, path)`` of the package's code files, sorted by name.

    Parameters
    ----------
    package
        The folder of the installed ``discquant`` package.

    Yields
    ------
    tuple of (str, Path)
        Files whose name ends in one of :data:`CODE_SUFFIXES`; hidden files and folders
        (editor backups, ``.mypy_cache``) and ``__pycache__`` are left out.
    """
    found = []
    for path in package.rglob("*"):
        parts = path.relative_to(package).parts
        if any(p.startswith(".") or p == "__pycache__" for p in parts):
            continue
        if path.suffix.lower() in CODE_SUFFIXES and path.is_file():
            found.append((path.relative_to(package).as_posix(), path))
    yield from sorted(found)


def package_code_sha256(package: Path) -> str:
    """SHA-256 over the code files of a package folder (:func:`_code_files`).

    Parameters
    ----------
    package
        A package folder.

    Returns
    -------
    str
        The hex digest over each file's relative name, size and bytes, in name order:
        the same for two copies of the same code wherever they are installed.
    """
    digest = hashlib.sha256()
    for name, path in _code_files(package):
        data = path.read_bytes()
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(str(len(data)).encode())
        digest.update(b"\0")
        digest.update(data)
    return digest.hexdigest()


@functools.cache
def code_sha256() -> str:
    """SHA-256 of the installed ``discquant`` package's code (computed once per process).

    The software version alone (``__version__``) stays the same across many commits, so
    resume kept results of old code; this identity changes with any source file, the
    shipped configuration, the results schema or the report template
    (:data:`CODE_SUFFIXES`), and is part of each study's resume key (:func:`run_key`).
    Names are relative to the package folder, so two installations of the same code (a
    client and its remote workers) agree.

    Returns
    -------
    str
        :func:`package_code_sha256` of the folder ``discquant`` is imported from.
    """
    import discquant

    return package_code_sha256(Path(discquant.__file__).parent)


def run_key(options: CohortOptions) -> dict[str, Any]:
    """The parts of a study's resume key that every study of a run shares.

    That is :func:`record_key` without the input fingerprint (and without the model
    weights, which the worker adds): the analysis configuration, the software version and
    :func:`code_sha256`. The cohort tables compare a record's key with it
    (:func:`discquant.cohort.tables.collect_tables`).

    Parameters
    ----------
    options
        The run's options.

    Returns
    -------
    dict
        JSON-ready, as it reads back from a record.
    """
    key = {
        "config": config_document(options),
        "software_version": __version__,
        "code_sha256": code_sha256(),
    }
    return dict(json.loads(json.dumps(key, default=str)))  # as it reads back from the record


def record_key(fingerprint: str, options: CohortOptions) -> dict[str, Any]:
    """What must match for a finished study to be skipped on resume: the input
    fingerprint and :func:`run_key` (configuration, software version, code identity)."""
    return {"input_fingerprint_sha256": fingerprint, **run_key(options)}


def config_document(options: CohortOptions) -> dict[str, Any]:
    """The analysis configuration as JSON-ready data (part of each study's fingerprint record)."""
    raw = asdict(options.config)
    calibration = options.config.calibration
    raw["calibration"] = str(calibration) if calibration else None
    # The file's content, not only its path: a calibration refitted in place changes
    # every water_percent (as the models are keyed by their weights).
    raw["calibration_sha256"] = (
        hashlib.sha256(Path(calibration).read_bytes()).hexdigest()
        if calibration and Path(calibration).is_file()
        else None
    )
    thresholds = options.config.adc_class_thresholds  # the same for the ADC classes
    raw["adc_class_thresholds"] = str(thresholds) if thresholds else None
    raw["adc_class_thresholds_sha256"] = (
        hashlib.sha256(Path(thresholds).read_bytes()).hexdigest()
        if thresholds and Path(thresholds).is_file()
        else None
    )
    return {"analysis": raw, "dicom": options.dicom, "keep_phi": options.keep_phi}


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return socket.gethostname()


def failure_record(study: CohortStudy, error: BaseException | str, *, where: str) -> dict[str, Any]:
    """The record of a failed study (``where``: manifest, import, worker, ...).

    A study refused because its label holds the patient's ID or name
    (:class:`~discquant.errors.IdentifyingLabelError`, never raised with ``keep_phi``)
    is recorded by its place in the cohort (:func:`~discquant.cohort.manifest.withheld_name`)
    as subject and source, ``(withheld)`` where it has none, and the error without its
    path; ``"withheld": true`` says so (:func:`~discquant.cohort.records.write_record`).
    """
    subject, source, withheld = study.subject, study.source, {}
    if isinstance(error, IdentifyingLabelError):
        subject, source, withheld = WITHHELD, withheld_name(study), {"withheld": True}
        error_type, message = type(error).__name__, error.reason
    elif isinstance(error, BaseException):
        error_type, message = type(error).__name__, str(error) or repr(error)
    else:
        error_type, message = "ManifestError", error
    return {
        "status": "failed",
        "subject": subject,
        "source": source,
        **withheld,
        "where": where,
        "error_type": error_type,
        "error": message,
        "software": {"name": "discquant", "version": __version__, "code_sha256": code_sha256()},
        "finished_at": records.now_iso(),
    }


STORAGE_ERRNOS: frozenset[int] = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
"""Errors of the storage itself (full, over quota, file too large, read-only): every
study written there would fail alike."""

PERMISSION_ERRNOS: frozenset[int] = frozenset({errno.EACCES, errno.EPERM})
"""Errors that are the output folder's when the file they name lies inside it."""


def path_inside(name: object, folder: Path) -> bool:
    """Whether the file name of an :class:`OSError` (str, bytes or None) lies in ``folder``
    (an absolute, normalised path) or is ``folder`` itself."""
    if not isinstance(name, str | bytes | os.PathLike):
        return False
    path = Path(os.path.normpath(Path(os.fsdecode(name)).absolute()))
    return path == folder or folder in path.parents


def output_storage_error(error: BaseException, out: Path) -> OSError | None:
    """The error in ``error``'s chain (itself, its cause or context) that says the cohort
    folder cannot be written, or None.

    Such an error is not the study's: a full disk failed every study of a re-run, each
    retried and recorded failed, and each study's outputs of the earlier run were removed
    (an audit). The runner stops the run on it instead.

    Parameters
    ----------
    error
        What a study's task raised.
    out
        The cohort folder.

    Returns
    -------
    OSError or None
        An :class:`OSError` of :data:`STORAGE_ERRNOS` (also as pydicom reports it, without
        an errno, ``[Errno 28]`` in its message), or of :data:`PERMISSION_ERRNOS` about a
        file inside ``out``; None for any other error (a study's own failure).
    """
    folder = Path(os.path.normpath(Path(out).absolute()))
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            if current.errno in STORAGE_ERRNOS or (
                current.errno is None
                and any(f"[Errno {n}]" in str(current) for n in STORAGE_ERRNOS)
            ):
                return current
            if current.errno in PERMISSION_ERRNOS and (
                path_inside(current.filename, folder) or path_inside(current.filename2, folder)
            ):
                return current
        current = current.__cause__ or current.__context__
    return None


def bare_os_error(error: OSError) -> OSError:
    """A copy of ``error`` (its errno, reason and file names) without its traceback, cause
    and context, to send from a worker to the client.

    A real full disk's error came with a chain that loops (the ADC writer re-raises the
    cause of the error it handles), which Dask could not pickle: the task's result was
    lost and the run hung (a trial of :func:`output_storage_error`).

    Parameters
    ----------
    error
        The error as raised.

    Returns
    -------
    OSError
        A new, never raised :class:`OSError` (its errno's subclass, as ``OSError(errno,
        ...)`` makes it); one without an errno keeps its arguments.
    """
    if error.errno is None:
        return OSError(*error.args)
    return OSError(error.errno, error.strerror, error.filename, None, error.filename2)


def record_failure(
    out: Path, study: CohortStudy, error: BaseException | str, *, where: str
) -> bool:
    """Record a study as failed and remove its outputs of an earlier run.

    Those outputs no longer match the study's record (its inputs, configuration or
    models changed, or it failed where it once succeeded), so ``DIR/sub-<id>/`` exists
    only for studies listed in the cohort tables as complete or partial. The record is
    written first: when it cannot be (a full disk), nothing is removed.

    Returns
    -------
    bool
        Whether there were outputs, and they were removed (the caller says so: a worker's
        own warning printed beside the progress line, and under ``--quiet``, an audit).
    """
    record = failure_record(study, error, where=where)
    records.write_record(out, study.subject, record)
    return records.remove_outputs(out, study.subject)


def process_study(
    study: CohortStudy,
    out_dir: str,
    options: CohortOptions,
    study_fn: StudyFunction | None = None,
    run_token: str = "",
) -> StudyOutcome:
    """One cohort task: fingerprint, skip if already done, analyse into a temporary folder,
    move it into place, write the record.

    A :class:`DiscquantError` (bad input) is recorded as a failure and returned; any other
    exception propagates so that Dask retries the task (the client records it when the
    retries are spent). A study whose named input paths are not there (an unmounted
    share) fails without a record: its record and outputs of an earlier run are kept. An
    error of the output folder's storage (:func:`output_storage_error`: disk full,
    read-only, ...) is returned in :attr:`StudyOutcome.storage_error`, neither retried nor
    recorded, the study's earlier outputs kept: the runner stops the run on it.

    Parameters
    ----------
    study, out_dir, options, study_fn
        The study, the cohort folder, the run's options and the per-study function
        (None: :func:`pipeline_study`).
    run_token
        Identifies the run; written into the record. A record that already carries it was
        written by an earlier attempt of this very task (its result was lost with a killed
        worker and Dask re-ran it): the study is reported with that record's status, as
        analysed in this run, not as ``skipped`` and not analysed again.
    """
    out = Path(out_dir)
    start = time.perf_counter()
    try:
        return _process_study(study, out, options, study_fn, run_token, start)
    except Exception as exc:
        storage = output_storage_error(exc, out)
        if storage is None:
            raise
        seconds = time.perf_counter() - start
        bare = bare_os_error(storage)  # picklable: the chain as raised may loop
        return StudyOutcome(
            study.subject, "failed", seconds, str(bare), _worker_name(), storage_error=bare
        )


def _process_study(
    study: CohortStudy,
    out: Path,
    options: CohortOptions,
    study_fn: StudyFunction | None,
    run_token: str,
    start: float,
) -> StudyOutcome:
    """:func:`process_study`'s work; an error of the output folder's storage propagates."""
    worker = _worker_name()
    fn = study_fn or pipeline_study
    try:
        fingerprint, n_files = input_fingerprint(study.inputs)
    except DiscquantError as exc:
        missing = missing_inputs(study.inputs)
        if isinstance(exc, InputNotFoundError) and missing:
            error = "input not found: " + ", ".join(missing)
            # said by the runner (the progress line): a worker's warning printed beside it,
            # unprefixed, and under --quiet too (an audit)
            log.info("sub-%s: %s (its earlier outputs are kept)", study.subject, error)
            seconds = time.perf_counter() - start
            return StudyOutcome(study.subject, "failed", seconds, error, worker, where="input")
        removed = record_failure(out, study, exc, where="import")
        seconds = time.perf_counter() - start
        log.info("sub-%s failed: %s", study.subject, exc)
        return StudyOutcome(
            study.subject, "failed", seconds, str(exc), worker, removed_outputs=removed
        )
    key = record_key(fingerprint, options)
    if study_fn is None:  # new weights make old results stale
        key["models_weights_sha256"] = dict(
            worker_model_versions(
                options.segmentation_model,
                options.pfirrmann_model,
                file_stamps(options.segmentation_model, options.pfirrmann_model),
            )
        )
    old = records.read_record(out, study.subject) or {}
    done = old.get("status") in records.DONE_STATUSES
    # its outputs as recorded, not its folder alone: a removed disc table was never redone
    intact = done and records.outputs_intact(out, study.subject, old)
    if intact and old.get("key") == key:
        seconds = time.perf_counter() - start
        if run_token and old.get("run_token") == run_token:
            return StudyOutcome(study.subject, str(old["status"]), seconds, "", worker)
        if options.resume:
            return StudyOutcome(study.subject, "skipped", seconds, "", worker)
    redone = ""
    if done and options.resume:
        # A resumed run that redid every study after an update said only "complete" (a
        # user trial took it for a failed resume).
        changed = records.key_differences(old.get("key", {}), key)
        redone = ", ".join(changed + ([] if intact else ["outputs"]))
    if sessions := sessions_inside(out, study.subject):
        # another run's sessions of this subject: outputs without a session would replace
        # sub-<id>/ and them with it (two manifests on one folder)
        refused = InvalidInputError(
            f"{records.subject_dir(out, study.subject)} holds the outputs of this subject's "
            f"sessions ({', '.join(sessions)}), which outputs without a session would replace; "
            "give the study a session label (sub-<id>_ses-<session>)",
            path=study.source,
        )
        removed = record_failure(out, study, refused, where="outputs")
        seconds = time.perf_counter() - start
        return StudyOutcome(
            study.subject, "failed", seconds, str(refused), worker, removed_outputs=removed
        )
    tmp = records.new_tmp_dir(out)
    try:
        inputs = StudyInputs(**{**asdict(study.inputs), "subject": study.subject})
        try:
            report = fn(inputs, tmp, options)
        except DiscquantError as exc:
            if output_storage_error(exc, out) is not None:  # not the study's failure
                raise
            where = "model" if isinstance(exc, ModelError) else "import"
            removed = record_failure(out, study, exc, where=where)
            seconds = time.perf_counter() - start
            if isinstance(exc, IdentifyingLabelError):  # neither its label nor its folder
                name = withheld_name(study)
                log.info("%s failed: %s", name, exc.reason)
                return StudyOutcome(
                    study.subject, "failed", seconds, exc.reason, worker, withheld=name,
                    removed_outputs=removed,
                )  # fmt: skip
            log.info("sub-%s failed: %s", study.subject, exc)  # the runner says it
            return StudyOutcome(
                study.subject, "failed", seconds, str(exc), worker, removed_outputs=removed
            )
        written = records.subject_dir(tmp, study.subject)
        if not written.is_dir():
            raise RuntimeError(f"the study function wrote no {written.name} folder")
        records.remove_record(out, study.subject)  # from here on the old result is invalid
        records.move_into_place(written, out, study.subject)
        seconds = time.perf_counter() - start
        status = "partial" if report.failed_stages else "complete"
        records.write_record(
            out,
            study.subject,
            {
                "status": status,
                "subject": study.subject,
                "source": study.source,
                "key": key,
                "run_token": run_token,
                "input_files": n_files,
                "outputs": records.output_sizes(out, study.subject),
                "failed_stages": list(report.failed_stages),
                "n_discs_found": report.n_discs_found,
                "study_flags": None if report.study_flags is None else list(report.study_flags),
                "dicom_not_written": report.dicom_not_written,
                "software": {
                    "name": "discquant",
                    "version": __version__,
                    "code_sha256": code_sha256(),
                    "python": platform.python_version(),
                },
                "models": report.models,
                "seconds": round(seconds, 3),
                "worker": worker,
                "finished_at": records.now_iso(),
            },
        )
        return StudyOutcome(study.subject, status, seconds, "", worker, redone=redone)
    except DiscquantError:
        raise
    except Exception as exc:
        if output_storage_error(exc, out) is None:  # that one is the runner's to report
            log.error("sub-%s crashed:\n%s", study.subject, traceback.format_exc())
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
