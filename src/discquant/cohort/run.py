"""Run a cohort on dask.distributed: one task per study, nothing lost, nothing done twice.

The client submits one task per study (:func:`~discquant.cohort.worker.process_study`) to
a ``LocalCluster`` of single-threaded worker processes or to an existing scheduler, then
collects outcomes as they finish. Work survives the client: every task writes its study's
outputs and record itself, so a killed run resumes where it stopped. A task whose worker
dies is re-run on another worker by the scheduler (up to ``allowed_failures`` times,
whatever ``retries`` says); a task that raises is retried ``retries`` times; what still
fails is recorded and the others go on. A study whose result was lost with a killed worker
after it was written is counted once, as analysed in this run (its record carries the
run's token). The cohort tables and report are rebuilt from the per-study files at the end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from discquant.cohort import records
from discquant.cohort.manifest import (
    CohortStudy,
    absolute_study,
    check_inputs_reachable,
    check_outputs_apart,
)
from discquant.cohort.worker import (
    COMPUTE_FAILED_CONFIG,
    CohortOptions,
    StudyFunction,
    StudyOutcome,
    bare_os_error,
    file_stamps,
    output_storage_error,
    path_inside,
    process_study,
    quiet_shutdown_noise,
    record_failure,
    run_key,
    worker_model_versions,
)
from discquant.errors import InvalidInputError, OutputNotWritableError, one_line
from discquant.output_paths import split_study_label
from discquant.outputs.write import check_dataset_description, ensure_dataset_description

log = logging.getLogger(__name__)


@dataclass
class CohortProgress:
    """Counts so far, passed to the progress callback after each study."""

    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    started: float = field(default_factory=time.perf_counter)
    last: StudyOutcome | None = None
    last_error: str = ""
    """``last``'s error without the folders above the cohort
    (:func:`~discquant.cohort.tables.shareable_error`), as the failures table gives it."""

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed

    @property
    def remaining(self) -> int:
        return self.total - self.finished

    @property
    def rate_per_min(self) -> float:
        """Studies analysed per minute, for the progress line and its ETA; 0 before the
        first. Failed and skipped ones are not counted: a manifest row whose path is
        missing fails in microseconds, and counting it read 1501163.3/min (a user trial)."""
        elapsed = time.perf_counter() - self.started
        return 60.0 * self.done / elapsed if elapsed > 0 and self.done else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.rate_per_min
        return 60.0 * self.remaining / rate if rate > 0 else None


ProgressCallback = Callable[[CohortProgress], None]


@dataclass
class CohortRun:
    """What a cohort run did (also written to ``DIR/cohort_run.json``)."""

    out_dir: Path
    total: int
    done: int
    partial: int
    skipped: int
    failed: int
    wall_s: float
    workers: int
    scheduler: str
    outcomes: list[StudyOutcome]
    cohort_status: dict[str, int] = field(default_factory=dict)
    """Studies per status over the whole cohort after the run (``complete``, ``partial``,
    ``failed``, ...), skipped ones counted with their earlier status; empty when the tables
    were not rebuilt."""
    configuration: dict[str, Any] = field(default_factory=dict)
    """The run's analysis options (:func:`run_configuration`)."""
    models: dict[str, Any] = field(default_factory=dict)
    """The models of the cohort's finished studies, from their records
    (:func:`~discquant.cohort.tables.models_in_use`); empty when the tables were not
    rebuilt or no study finished."""
    dicom_not_written: dict[str, int] | None = None
    """With ``--dicom``: how many finished studies have no DICOM SEG or SR, per reason
    (:func:`~discquant.cohort.tables.dicom_not_written`); None without ``--dicom`` or
    when the tables were not rebuilt."""

    @property
    def studies_per_min(self) -> float:
        """Studies analysed (complete or partial) per minute of the run's wall time.

        Failed and skipped studies are not counted: a run that analysed none and failed two
        manifest rows that never ran read "21.1 studies/min" (an audit)."""
        return 60.0 * self.done / self.wall_s if self.wall_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "done": self.done,
            "partial": self.partial,
            "skipped": self.skipped,
            "failed": self.failed,
            "wall_s": round(self.wall_s, 3),
            "workers": self.workers,
            "scheduler": self.scheduler,
            "studies_per_min": round(self.studies_per_min, 3),
            "cohort_status": dict(self.cohort_status),
            "configuration": dict(self.configuration),
            "models": dict(self.models),
            "dicom_not_written": (
                None if self.dicom_not_written is None else dict(self.dicom_not_written)
            ),
            "finished_at": records.now_iso(),
        }


_PATH_KEYS = ("calibration", "adc_class_thresholds")
"""The analysis settings that name a file (their SHA-256 beside them says which)."""


def _file_names(value: Any, key: str = "") -> Any:
    """``value`` (JSON-ready) with each path reduced to its file's name: absolute ones
    anywhere, and the files of :data:`_PATH_KEYS` however given (a relative
    ``sites/hospX/water.json`` from Python kept its folders; a review)."""
    if isinstance(value, dict):
        return {k: _file_names(v, k) for k, v in value.items()}
    if isinstance(value, str) and (key in _PATH_KEYS or os.path.isabs(value)):
        return Path(value).name
    return value


def run_configuration(options: CohortOptions) -> dict[str, Any]:
    """The run's options as ``cohort_run.json`` and the report give them.

    Parameters
    ----------
    options
        The run's options.

    Returns
    -------
    dict
        ``config_sha256`` (as the column of ``cohort_discs``: SHA-256 of the configuration
        in each study's resume key), ``analysis`` (ADC method, device, calibration and ADC
        class thresholds with their SHA-256, the measurement settings), ``dicom``,
        ``keep_phi``, ``resume``, and the ``segmentation_model`` and ``grading_model`` (a
        file's name, ``shipped`` for the packaged one). Files by their names only: the
        folders above them (a home folder, a share) stay out of a file meant to be passed
        on, as they stay out of the tables' ``source``. The options were only in
        ``config_sha256`` (an audit).
    """
    from discquant.cohort.tables import config_sha256

    config = run_key(options)["config"]  # as the records hold it
    document = _file_names(config)
    return {
        "config_sha256": config_sha256(config),
        "analysis": document["analysis"],
        "dicom": options.dicom,
        "keep_phi": options.keep_phi,
        "resume": options.resume,
        "segmentation_model": _model_name(options.segmentation_model, "segment", "model.pt"),
        "grading_model": _model_name(options.pfirrmann_model, "pfirrmann", "pfirrmann.pt"),
    }


def _model_name(path: Path | None, folder: str, shipped_file: str) -> str:
    """A model file's name, ``shipped`` for the packaged model (None), and ``<name> (the
    shipped weights)`` for a byte copy of it, which the studies' records call the shipped
    model (the run named it as a user's: a review). ``folder`` and ``shipped_file``: where
    the package holds the shipped file (``discquant/models/<folder>/<shipped_file>``)."""
    if path is None:
        return "shipped"
    from importlib import resources

    from discquant.models import is_shipped_file

    packaged = resources.files("discquant") / "models" / folder / shipped_file
    name = Path(path).name
    return f"{name} (the shipped weights)" if is_shipped_file(path, packaged) else name


RUN_FILE = "cohort_run.json"
"""What the last run did (:meth:`CohortRun.to_json`), in the cohort folder."""

NOT_RUN_CANCELLED = (
    "not run: its task was cancelled (the connection to the Dask scheduler was lost?); "
    "run the same command again to resume"
)


def storage_stop(error: OSError, out: Path, analysed: int) -> OutputNotWritableError:
    """The error that stops a run whose output folder cannot be written.

    Parameters
    ----------
    error
        The storage error (:func:`~discquant.cohort.worker.output_storage_error`).
    out
        The cohort folder (absolute).
    analysed
        Studies analysed in this run before it stopped (kept).

    Returns
    -------
    OutputNotWritableError
        Naming ``out`` (not the temporary folder a study was written to), or the file
        the error names when that lies elsewhere, and the system's reason.
    """
    named = [n for n in (error.filename, error.filename2) if n is not None]
    folder = Path(os.path.normpath(out))
    path: Path = folder
    if named and not any(path_inside(n, folder) for n in named):
        path = Path(os.path.normpath(Path(os.fsdecode(named[-1])).absolute()))
    reason = one_line(error.strerror or error)
    return OutputNotWritableError(
        f"cannot write the outputs ({reason}): the run stopped, with {analysed} studies "
        "analysed (kept); no study was recorded failed and no earlier output removed. Make "
        "room (or make the folder writable) and run the same command again to resume",
        path=path,
    )


def _task_key(number: int, token: str) -> str:
    """The Dask key of the run's ``number``-th study: not its label, which the dashboard
    and the scheduler's log would show before a label that holds an identifier is
    refused (a review)."""
    return f"discquant-study-{number}-{token}"


LOCAL_HOST = "127.0.0.1"
"""The interface the local cluster's scheduler (and its HTTP server) listens on."""


def local_cluster(
    workers: int = 1, *, allowed_failures: int = 2, verbose: bool | None = None
) -> Any:
    """A ``LocalCluster`` of single-threaded worker processes set up for cohort tasks.

    ``run_cohort`` makes one when given no scheduler; pass ``cluster.scheduler_address`` to
    several ``run_cohort`` calls to share one (and its loaded models) between them.

    Parameters
    ----------
    workers
        Worker processes, one thread each.
    allowed_failures
        Times a task may lose its worker before it fails with ``KilledWorker``.
    verbose
        Let the workers log Dask's "Compute Failed" block of a study that raised
        (:class:`~discquant.cohort.worker.ComputeFailedFilter`); None: when this process
        logs DEBUG (``--verbose``).

    Returns
    -------
    distributed.LocalCluster
        The started cluster.
    """
    import dask
    from distributed import LocalCluster

    # A task whose worker dies is re-run on another worker up to ``allowed-failures``
    # times, then fails with KilledWorker. A worker-saturation of 1.0 gives each
    # single-threaded worker one study at a time: no study waits in a worker's queue, so
    # none is blamed (and counted towards KilledWorker) when a study running before it
    # kills the worker. Studies last seconds, so prefetching gains nothing.
    # Dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers to return freed memory to the
    # OS early; for a study's large, short-lived arrays that makes glibc unmap and re-map
    # memory all the time and the pipeline ran 1.8x slower (benchmarks/cohort.py, docs).
    # Leave glibc's dynamic default instead (a value the user exported still wins).
    settings = {
        "distributed.scheduler.allowed-failures": allowed_failures,
        "distributed.scheduler.worker-saturation": 1.0,
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
        # Workers ignore Ctrl-C and drop the warnings of being stopped mid-study (the
        # main process closes them): worker.dask_setup.
        "distributed.worker.preload": ["discquant.cohort.worker"],
        COMPUTE_FAILED_CONFIG: (
            logging.getLogger().isEnabledFor(logging.DEBUG) if verbose is None else verbose
        ),
    }
    quiet_shutdown_noise()  # the nannies run in this process
    # The scheduler always serves HTTP (health and metrics routes), on port 8787 when
    # given no address (``dashboard_address=None`` does not turn it off): with another
    # Dask or Jupyter dashboard on that port, distributed warned "Port 8787 is already in
    # use" even under --quiet. Bind any free port on the loopback interface instead, and
    # start no Bokeh dashboard (``dashboard=False``; the address alone would enable it).
    with dask.config.set(settings):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host=LOCAL_HOST,
            dashboard_address=f"{LOCAL_HOST}:0",
            scheduler_kwargs={"dashboard": False},
            silence_logs=logging.WARNING,
        )


def connect_scheduler(scheduler: str) -> Any:
    """A client of a running scheduler: its address, or the JSON file that
    ``dask scheduler --scheduler-file`` writes.

    Raises
    ------
    InvalidInputError
        The scheduler cannot be reached or the file is not a scheduler file (these were
        tracebacks, after the output folder had been made).
    """
    from distributed import Client

    if "://" not in scheduler and Path(scheduler).suffix.lower() == ".json":
        # A scheduler file's name, not an address: "missing port number in address"
        # did not say that the file was not there.
        if not Path(scheduler).is_file():
            raise InvalidInputError("scheduler file not found", path=scheduler)
    try:
        if Path(scheduler).is_file():
            return Client(scheduler_file=scheduler)
        return Client(scheduler)
    except Exception as exc:  # OSError (timeout), ValueError (no port), bad JSON, ...
        raise InvalidInputError(
            f"cannot connect to the Dask scheduler {scheduler!r} "
            f"({type(exc).__name__}: {one_line(exc)})"
        ) from exc


INTERRUPT_NOISE_LOGGERS: tuple[str, ...] = ("distributed", "tornado", "asyncio")
"""Loggers of the main process that report the cluster's interrupted tasks and closed
connections as it shuts down after Ctrl-C, SIGTERM or a full output disk."""


def _silence_interrupted_cluster() -> None:
    """After an interrupt, only errors at CRITICAL from :data:`INTERRUPT_NOISE_LOGGERS`
    (unless ``--verbose``): the local cluster closing under running tasks printed ~30
    lines of ``CommClosedError`` and "Future exception was never retrieved" tracebacks
    beside the one line "interrupted" in 2 of 6 tries (a user trial). The levels stay
    for the rest of the process, which the command ends; a notebook that calls
    :func:`run_cohort` again after an interrupt and wants those messages sets them back."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    for name in INTERRUPT_NOISE_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _start_local_client(*, workers: int | None, allowed_failures: int) -> tuple[Any, Any]:
    from distributed import Client

    cluster = local_cluster(workers or 1, allowed_failures=allowed_failures)
    return Client(cluster), cluster


def run_cohort(
    studies: Sequence[CohortStudy],
    out_dir: Path,
    *,
    options: CohortOptions | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    study_fn: StudyFunction | None = None,
    retries: int = 1,
    allowed_failures: int = 2,
    preload_models: bool | None = None,
    progress: ProgressCallback | None = None,
    build_outputs: bool = True,
    options_checked: bool = False,
) -> CohortRun:
    """Analyse every study of a cohort on Dask and rebuild the cohort tables and report.

    Parameters
    ----------
    studies
        From :func:`~discquant.cohort.manifest.read_cohort`; studies with an ``error``
        are recorded as failures without being submitted.
    out_dir
        The cohort folder: ``sub-<id>/`` per study, ``cohort_discs.parquet``/``.csv``,
        ``cohort_failures.csv``, ``cohort_report.html``. It and the studies' relative input
        paths are made absolute here, against this process's working directory, before any
        task is sent (the workers may run elsewhere).
    options
        Analysis configuration and ``resume`` (skip studies finished with the same inputs,
        configuration and software version).
    workers
        Worker processes of the local cluster (one thread each); ignored with ``scheduler``.
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``), or the JSON file written by
        ``dask scheduler --scheduler-file``, instead of a local cluster.
    study_fn
        The per-study function (default: the full pipeline with per-worker cached models);
        tests and benchmarks pass a light stand-in.
    retries
        Re-runs of a task that raised an unexpected exception (bad input is not retried).
        It does not govern a task whose worker process dies: see ``allowed_failures``.
    allowed_failures
        Times a task may lose its worker (killed, out of memory, node lost) and be re-run
        on another before it is failed with ``KilledWorker``, whatever ``retries`` says
        (local cluster only; an external scheduler uses its own ``allowed-failures``).
    preload_models
        Load the models in each worker at start-up (default: when ``study_fn`` is None).
    progress
        Called after each finished study with the counts so far.
    build_outputs
        Rebuild the cohort tables and report at the end.
    options_checked
        The caller has run :func:`check_options` with these arguments (the command line
        does, before it reads the cohort): not run again, which loaded a user's model
        files twice.

    Raises
    ------
    InvalidInputError
        When another run holds ``out_dir``, ``out_dir`` overlaps a study's inputs
        (:func:`~discquant.cohort.manifest.check_outputs_apart`), or an option is unusable
        (see :func:`check_options`); nothing is written then.
    InputNotFoundError
        When no study's input exists (an unmounted share:
        :func:`~discquant.cohort.manifest.check_inputs_reachable`); nothing is written.
    ModelError
        When a model file named in ``options`` is missing or does not load.
    OutputNotWritableError
        When a study cannot be written because ``out_dir``'s storage refuses it (full,
        over quota, read-only, no permission: :func:`storage_stop`); the run stops, its
        other tasks are cancelled, no failure is recorded and no earlier output removed.
    """
    options = options or CohortOptions()
    if not options_checked:
        check_options(options, workers=workers, scheduler=scheduler, retries=retries)
    out = Path(out_dir).expanduser().absolute()  # workers may run in another directory
    studies = [absolute_study(s) for s in studies]
    check_inputs_reachable(studies)
    check_outputs_apart(out, studies)
    # A raw BIDS root's or another pipeline's description is never replaced: refused
    # here, before the cluster starts and anything is written.
    check_dataset_description(out)
    # Reached before anything is written: an unreachable scheduler is bad input.
    client = connect_scheduler(scheduler) if scheduler else None
    try:
        out.mkdir(parents=True, exist_ok=True)
        with _exclusive(out):
            records.ensure_record_key(out)  # before the workers, which only read it
            return _run_locked(
                studies, out, options=options, workers=workers, client=client,
                study_fn=study_fn, retries=retries, allowed_failures=allowed_failures,
                preload_models=preload_models, progress=progress, build_outputs=build_outputs,
            )  # fmt: skip
    finally:
        if client is not None:
            client.close()


def check_options(
    options: CohortOptions,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    retries: int = 1,
) -> None:
    """Refuse, before anything starts or is written, options every study would fail on.

    Checks the analysis configuration (ADC method, device, calibration:
    :func:`discquant.pipeline.check_config`; with ``scheduler`` the device is checked by
    name only, since the workers, not this machine, need the GPU), the worker count and
    retries, and loads each model file the options name (a study must never run with the
    shipped model in place of the one asked for).

    Raises
    ------
    InvalidInputError
        An unknown ADC method or device, no CUDA here (local cluster), fewer than one
        worker, negative retries.
    ModelError
        A segmentation or grading model file that is missing or does not load.
    """
    from dataclasses import replace

    from discquant.pipeline import check_config

    if workers is not None and workers < 1:
        raise InvalidInputError(f"--workers must be 1 or more, not {workers}")
    if retries < 0:
        raise InvalidInputError(f"--retries must be 0 or more, not {retries}")
    config = options.config
    if scheduler and config.device != "cpu":
        device = config.device
        if device != "cuda" and not device.startswith("cuda:"):
            raise InvalidInputError(f"unknown device {device!r}; use cpu or cuda")
        config = replace(config, device="cpu")  # the workers' GPUs, not this machine's
    check_config(config)
    from discquant.grade.pfirrmann import load_grading_model
    from discquant.segment import load_segmentation_model

    for path, load in (
        (options.segmentation_model, load_segmentation_model),
        (options.pfirrmann_model, load_grading_model),
    ):
        if path is not None:
            load(path)  # a one-line ModelError naming the file when missing or unreadable


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold an advisory lock on ``DIR`` so that two runs never share (and clean) one folder.

    The operating system drops the lock when the process dies, so a killed run never
    leaves a stale lock behind.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one run per folder is the user's care
        yield
        return
    path = records.state_dir(out) / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InvalidInputError(
                "another discquant cohort run is using this output folder", path=out
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _run_locked(
    studies: Sequence[CohortStudy],
    out: Path,
    *,
    options: CohortOptions,
    workers: int | None,
    client: Any,
    study_fn: StudyFunction | None,
    retries: int,
    allowed_failures: int,
    preload_models: bool | None,
    progress: ProgressCallback | None,
    build_outputs: bool,
) -> CohortRun:
    from distributed import as_completed

    from discquant.cohort.tables import shareable_error

    records.clean_tmp(out)
    ensure_dataset_description(out)
    start = time.perf_counter()
    state = CohortProgress(total=len(studies))
    outcomes: list[StudyOutcome] = []

    def finish(outcome: StudyOutcome, study: CohortStudy) -> None:
        outcomes.append(outcome)
        if outcome.removed_outputs:  # said here, once: not by a worker beside the progress
            log.warning("%s: removed its outputs of an earlier run (it failed now)", outcome.name)
        if outcome.status == "failed":
            state.failed += 1
        elif outcome.status == "skipped":
            state.skipped += 1
        else:
            state.done += 1
        state.last = outcome
        # the progress line had the input's absolute path ("input not found:
        # dicom=/data/in/P2"), which the failures table gives relative (a review)
        state.last_error = (
            shareable_error(outcome.error, root=study.root, out=out) if outcome.error else ""
        )
        if progress:
            progress(state)

    todo: list[CohortStudy] = []
    # casefolded: a label clashing in case only (S01, s01) names the runnable study's
    # folder on macOS and Windows, whose outputs must not be removed for it
    runnable = {s.subject.casefold() for s in studies if s.error is None}
    # ... and a subject whose sessions run: its folder sub-<id>/ holds theirs
    runnable |= {split_study_label(label)[0] for label in runnable}
    for study in studies:
        if study.error is not None:  # reported from the manifest itself, no record (the
            # label may clash with another row's; an input not found may be on a share
            # that is not mounted now: its record and outputs are kept)
            clashes = study.subject.casefold() in runnable
            keep = clashes or study.input_missing
            if not keep and records.remove_outputs(out, study.subject):
                log.warning("sub-%s: removed its outputs of an earlier run", study.subject)
            # Named by its place (a manifest line): the label of a row refused before its
            # import may hold the patient's ID, which only another row's import finds (a
            # duplicate of a withheld label was logged and tabled under it: an audit).
            finish(
                StudyOutcome(study.subject, "failed", 0.0, study.error, withheld=study.place),
                study,
            )
        else:
            todo.append(study)

    n_workers = 0
    address = "none"
    import uuid

    token = uuid.uuid4().hex[:8]  # names the tasks, and marks the records of this run
    if todo:
        cluster = None
        if client is None:
            client, cluster = _start_local_client(
                workers=workers, allowed_failures=allowed_failures
            )
        try:
            address = str(client.scheduler.address)
            if preload_models if preload_models is not None else study_fn is None:
                from discquant.cohort.preload import PreloadModels  # imports Dask

                client.register_plugin(PreloadModels(options))
            futures = client.map(
                process_study,
                todo,
                out_dir=str(out),
                options=options,
                study_fn=study_fn,
                run_token=token,
                key=[_task_key(k, token) for k in range(len(todo))],
                pure=False,
                retries=retries,
            )
            by_key = {f.key: s for f, s in zip(futures, todo, strict=True)}
            n_workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
            for future, value in as_completed(futures, with_results=True, raise_errors=False):
                if not isinstance(value, StudyOutcome):  # the task raised
                    study = by_key[future.key]
                    error = _task_error(future, value)
                    if isinstance(error, CancelledError) or future.cancelled():
                        # The client lost its scheduler (or someone cancelled the task):
                        # the study was not run here, and may still be running on a
                        # worker. It is not a failure of the study: recording one removed
                        # outputs that an earlier run had completed. The progress line
                        # says it (with --quiet, the command's summary).
                        log.debug("sub-%s not run: its task was cancelled", study.subject)
                        value = StudyOutcome(study.subject, "failed", 0.0, NOT_RUN_CANCELLED)
                    else:
                        value = _task_failure(out, study, error)
                    future.release()
                if value.storage_error is not None:
                    client.cancel(futures)  # every other study would fail alike
                    # The cluster then closes under running tasks, as after Ctrl-C: a
                    # tornado "Stream is closed" traceback came before the one error line
                    # (1 in a full suite on 2 cores, tests/cohort/test_cli.py full-disk test).
                    _silence_interrupted_cluster()
                    raise storage_stop(value.storage_error, out, state.done)
                finish(value, by_key[future.key])
        except KeyboardInterrupt:
            _silence_interrupted_cluster()
            raise
        finally:
            if cluster is not None:  # a scheduler's client is closed by run_cohort
                client.close()
                cluster.close()
                # its workers are gone: their half-written folders are removed on Ctrl-C
                # too (they were left until the next run, against the docs; a user trial)
                records.clean_tmp(out)
        records.clean_tmp(out)  # folders of tasks whose worker died

    run = CohortRun(
        out_dir=out,
        total=len(studies),
        done=sum(o.status in ("complete", "partial") for o in outcomes),
        partial=sum(o.status == "partial" for o in outcomes),
        skipped=state.skipped,
        failed=state.failed,
        wall_s=time.perf_counter() - start,
        workers=n_workers,
        scheduler=address,
        outcomes=outcomes,
        configuration=run_configuration(options),
    )
    if build_outputs:
        write_run_outputs(out, studies, run, options=options, study_fn=study_fn)
    else:
        records.write_json_atomic(out / RUN_FILE, run.to_json())
    return run


def write_run_outputs(
    out: Path,
    studies: Sequence[CohortStudy],
    run: CohortRun,
    *,
    options: CohortOptions,
    study_fn: StudyFunction | None = None,
) -> None:
    """Rebuild the cohort tables and report and write ``cohort_run.json``: all, or none.

    Parameters
    ----------
    out
        The cohort folder.
    studies
        The cohort's studies.
    run
        What the run did; its ``cohort_status`` is filled from the tables here.
    options, study_fn
        The run's options and study function (:func:`_current_key`).

    Raises
    ------
    OSError
        One of the files cannot be written (a full disk, a folder in its place), naming
        it: no file of this run is then written, those of the last run stay as they were
        (:func:`~discquant.cohort.tables.replace_together`). A table or report that could
        not be written left the files of two runs side by side (an audit).
    """
    from discquant.cohort.report import report_write
    from discquant.cohort.tables import (
        collect_tables,
        dicom_not_written,
        log_tables,
        replace_together,
        table_writes,
        write_json,
    )

    outcome_of = {o.subject: o for o in run.outcomes}
    current = _current_key(out, studies, outcome_of, options=options, study_fn=study_fn)
    tables = collect_tables(out, studies, run_key=current, outcomes=outcome_of)
    if not tables.studies.empty:
        counts = tables.studies["status"].value_counts()
        run.cohort_status = {str(k): int(v) for k, v in counts.items()}
    run.models = tables.models
    if options.dicom:
        run.dicom_not_written = dicom_not_written(tables.studies)
        if missing := sum(run.dicom_not_written.values()):
            # said once for the cohort: a cohort of NIfTI rows with --dicom wrote no
            # SEG/SR and said so only in each study's own warnings (an audit)
            finished = sum(run.cohort_status.get(k, 0) for k in records.DONE_STATUSES)
            why = "; ".join(f"{n}: {reason}" for reason, n in run.dicom_not_written.items())
            log.warning(
                "--dicom: %d of %d finished studies have no DICOM SEG/SR (%s); each "
                "study's results.json says why (skipped_outputs)",
                missing, finished, why,
            )  # fmt: skip
    document = run.to_json()  # after the tables, which fill run.cohort_status
    replace_together(
        [
            *table_writes(out, tables),
            report_write(out, tables, document),
            (out / RUN_FILE, write_json(document)),
        ]
    )
    log_tables(tables)


def _current_key(
    out: Path,
    studies: Sequence[CohortStudy],
    outcomes: dict[str, StudyOutcome],
    *,
    options: CohortOptions,
    study_fn: StudyFunction | None,
) -> dict[str, Any]:
    """This run's key parts, to tell current records from those of another configuration.

    Parameters
    ----------
    out
        The cohort folder.
    studies
        The cohort's studies.
    outcomes
        This run's outcome per subject.
    options, study_fn
        The run's options and study function.

    Returns
    -------
    dict
        :func:`~discquant.cohort.worker.run_key`; with the pipeline (``study_fn`` None)
        also the weights' SHA-256, computed here (loading the models) only when a
        finished record was neither written nor checked by this run (a cancelled task).
    """
    key = run_key(options)
    if study_fn is not None:
        return key
    unchecked = [
        s.subject
        for s in studies
        if s.error is None
        and outcomes.get(s.subject, StudyOutcome(s.subject, "failed")).status == "failed"
        and (records.read_record(out, s.subject) or {}).get("status") in records.DONE_STATUSES
    ]
    if unchecked:  # the models load in the user's process (pipeline_study sets threads)
        seg, grading = options.segmentation_model, options.pfirrmann_model
        versions = worker_model_versions(seg, grading, file_stamps(seg, grading))
        key["models_weights_sha256"] = dict(versions)
    return key


def _task_failure(out: Path, study: CohortStudy, error: BaseException) -> StudyOutcome:
    """Record the failure of a study whose task raised (after its retries), and its outcome.

    Parameters
    ----------
    out
        The cohort folder.
    study
        The study.
    error
        What its task raised (``KilledWorker`` when its workers kept dying).

    Returns
    -------
    StudyOutcome
        Failed, with the error; when the error is the output folder's storage, or the
        failure record cannot be written for it
        (:func:`~discquant.cohort.worker.output_storage_error`), nothing recorded or
        removed and the error in ``storage_error``, on which the run stops.
    """
    storage = output_storage_error(error, out)
    removed = False
    try:
        if storage is None:  # a full disk is no failure of the study
            removed = record_failure(out, study, error, where="worker")
    except OSError as exc:  # the failure record itself cannot be written
        storage = output_storage_error(exc, out)
        if storage is None:
            raise
    if storage is not None:
        return StudyOutcome(study.subject, "failed", storage_error=bare_os_error(storage))
    message = f"{type(error).__name__}: {error}"
    # The progress line says it (with --quiet, the command's summary): an ERROR here
    # printed it twice, and alone of all failures under --quiet (an audit).
    log.debug("sub-%s failed: %s", study.subject, message)
    return StudyOutcome(study.subject, "failed", 0.0, message, removed_outputs=removed)


def _task_error(future: Any, value: Any) -> BaseException:
    """The exception of a failed task (``KilledWorker`` when its workers kept dying)."""
    try:
        exc = future.exception(timeout=5)
    except Exception as err:  # cancelled, or the scheduler is gone
        exc = err
    if isinstance(exc, BaseException):
        return exc
    return value if isinstance(value, BaseException) else RuntimeError(repr(value))
