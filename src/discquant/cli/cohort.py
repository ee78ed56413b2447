"""`discquant cohort`: analyse a cohort on dask.distributed, resumable, nothing lost."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from discquant.cli._common import (
    INTERRUPTED_RESUME,
    AdcThresholdsOption,
    CalibrationOption,
    DeviceOption,
    DicomOption,
    GradingModelOption,
    KeepPhiOption,
    MethodOption,
    SegmentationModelOption,
    output_folder,
    setup_logging,
    user_errors,
)
from discquant.output_paths import check_output_folder

if TYPE_CHECKING:
    from discquant.cohort.run import CohortRun


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` with as many hours as it takes (``41:35:00``, not wrapped at 24 h).

    Parameters
    ----------
    seconds
        A duration, e.g. the remaining time of a cohort run; rounded to whole seconds.

    Returns
    -------
    str
        Hours (at least two digits), minutes and seconds; ``time.strftime`` on
        ``gmtime`` gave 17:35:00 for 41.6 h.
    """
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


class _CohortProgressDisplay:
    """Rich progress bar (done / failed / remaining, rate, ETA) on a terminal, log lines off it."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self._tty = sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None
        self._last_log = 0.0

    def __enter__(self) -> _CohortProgressDisplay:
        if self.enabled and self._tty:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]cohort[/bold]"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("[green]{task.fields[done]} done[/green]"),
                TextColumn("[dim]{task.fields[skipped]} skipped[/dim]"),
                TextColumn("[red]{task.fields[failed]} failed[/red]"),
                TextColumn("{task.fields[remaining]} left"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA {task.fields[eta]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                "cohort", total=self.total, done=0, skipped=0, failed=0,
                remaining=self.total, rate="–", eta="–",
            )  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def __call__(self, state: Any) -> None:
        if not self.enabled:
            return
        rate = f"{state.rate_per_min:.1f}/min" if state.rate_per_min else "–"
        eta = format_duration(state.eta_s) if state.eta_s else "–"
        if self._progress is not None:
            self._progress.update(
                self._task, completed=state.finished, done=state.done, skipped=state.skipped,
                failed=state.failed, remaining=state.remaining, rate=rate, eta=eta,
            )  # fmt: skip
            last = state.last
            if last is not None and last.status == "failed":  # said once, above the bar
                # (on a terminal a failure was said nowhere until the tables: a review)
                self._progress.console.print(
                    f"{last.name}: failed {state.last_error}".rstrip(), markup=False
                )
            return
        import logging

        last = state.last
        logging.getLogger("discquant.cohort").info(
            "%d/%d (%d done, %d skipped, %d failed, %s, ETA %s)%s",
            state.finished, state.total, state.done, state.skipped, state.failed, rate, eta,
            f" {last.name}: {last.status}"
            + (f" {state.last_error}" if state.last_error else "")
            + (f" (analysed again: its {last.redone} changed)" if last.redone else "")
            if last else "",
        )  # fmt: skip


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def cohort_cmd(
    input: Annotated[
        Path,
        typer.Argument(
            help="A BIDS dataset root, a folder whose subfolders are DICOM studies, or a "
            "CSV/TSV manifest (subject, and t2/dwi/bval/bvec/adc files or a dicom folder)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", parser=output_folder, help="Cohort output folder.")
    ] = Path("discquant-cohort"),
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Local worker processes, one thread each (default: CPU count)."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="A running Dask scheduler: address (tcp://host:8786) or scheduler file."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Skip studies already finished with the same inputs and config.")
    ] = True,
    retries: Annotated[
        int,
        typer.Option(
            min=0,
            help="Retries of a study whose analysis raised an unexpected error (bad input is "
            "not retried). A study whose worker process dies (killed, out of memory) is "
            "re-run on another worker up to 2 times whatever --retries says (the "
            "scheduler's allowed-failures), then fails with KilledWorker.",
        ),
    ] = 1,
    dicom: DicomOption = False,
    device: DeviceOption = "cpu",
    method: MethodOption = "wls",
    calibration: CalibrationOption = None,
    adc_thresholds: AdcThresholdsOption = None,
    keep_phi: KeepPhiOption = False,
    segmentation_model: SegmentationModelOption = None,
    grading_model: GradingModelOption = None,
    quiet: Annotated[
        bool,
        typer.Option(
            help="Print nothing but errors: when not every study is complete, one line "
            "that counts them."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            help="Log each step, Dask's own messages, and after Ctrl-C those of the closing "
            "cluster."
        ),
    ] = False,
) -> None:
    """Analyse every study of a cohort on Dask; rebuild the cohort tables and report.

    Each study's outputs are those of `discquant analyze` in OUT/sub-<id>/; the cohort
    tables (cohort_discs.parquet/.csv, cohort_failures.csv) and cohort_report.html are
    rebuilt from them. Interrupt at any time and run again to resume.
    Exit codes: 0 every study done; 2 bad cohort input or options (an unknown --method or
    --device, a model, calibration or thresholds file that is missing or does not load, an output
    folder over the inputs, a scheduler that cannot be reached: nothing is written; an
    output folder that cannot be written, disk full or read-only: the run stops, nothing
    recorded failed or removed); 3
    some studies failed, are partial or have no record (not run); 130 interrupted (Ctrl-C:
    run the same command again to resume), 143 stopped by SIGTERM (a batch system's time
    limit: the same).
    """
    if quiet and verbose:
        typer.echo("discquant: error: --quiet and --verbose exclude each other", err=True)
        raise typer.Exit(code=2)
    setup_logging(quiet=quiet, verbose=verbose)
    import logging

    import distributed  # noqa: F401  (configures its loggers on import; quieten them after)

    # Dask's own INFO lines (nannies starting and closing) would drown the progress; its
    # DEBUG lines (every message between the processes) would drown --verbose too.
    logging.getLogger("distributed").setLevel(logging.INFO if verbose else logging.WARNING)
    from discquant.cohort import CohortOptions, read_cohort, run_cohort
    from discquant.cohort.run import NOT_RUN_CANCELLED, check_options
    from discquant.pipeline import AnalysisConfig

    options = CohortOptions(
        # resolved: every worker reads it, whatever its working folder
        config=AnalysisConfig(
            adc_method=method,
            device=device,
            calibration=calibration.resolve() if calibration else None,
            adc_class_thresholds=adc_thresholds.resolve() if adc_thresholds else None,
        ),
        dicom=dicom,
        keep_phi=keep_phi,
        resume=resume,
        segmentation_model=segmentation_model.resolve() if segmentation_model else None,
        pfirrmann_model=grading_model.resolve() if grading_model else None,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)  # close the cluster on SIGTERM too
    try:
        with user_errors(interrupted=INTERRUPTED_RESUME):
            check_output_folder(out)
            n_workers = workers or os.cpu_count() or 1
            # Options every study would fail on (--method, --device, --workers, a
            # --segmentation-model/--grading-model file that is missing or does not load:
            # never replaced by the shipped one) are refused before the cohort is read: the
            # manifest's warnings printed before the one error line (an audit).
            check_options(options, workers=n_workers, scheduler=scheduler, retries=retries)
            studies = read_cohort(input)
            with _CohortProgressDisplay(len(studies), enabled=not quiet) as progress:
                run = run_cohort(
                    studies,
                    out,
                    options=options,
                    workers=n_workers,
                    scheduler=scheduler,
                    retries=retries,
                    progress=progress,
                    options_checked=True,
                )
    except KeyboardInterrupt:
        typer.echo(INTERRUPTED_RESUME, err=True)
        raise typer.Exit(code=130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not quiet:
        _echo_summary(run, out)
    status = run.cohort_status
    cancelled = any(o.error == NOT_RUN_CANCELLED for o in run.outcomes)
    if status.get("not run") and run.done and not cancelled:
        # Analysed, and yet no record in OUT: remote workers that write elsewhere.
        typer.echo(
            f"discquant: {status['not run']} studies have no record in {out}; do the "
            "workers see this folder at the same path?",
            err=True,
        )
    if any(k != "complete" for k in status) or run.failed:  # "not run" exited 0
        if quiet:
            typer.echo(incomplete_line(run, out), err=True)
        raise typer.Exit(code=3)


def _echo_summary(run: CohortRun, out: Path) -> None:
    """What a run did and wrote, and why finished studies were analysed again (stdout)."""
    from collections import Counter

    from discquant.cohort.tables import TABLE_FILES

    typer.echo(
        f"{run.total} studies: {run.done} analysed ({run.partial} partial), "
        f"{run.skipped} skipped, {run.failed} failed in {run.wall_s:.1f} s "
        f"({run.studies_per_min:.1f} studies analysed/min)\n"
        f"cohort: {', '.join(f'{n} {k}' for k, n in sorted(run.cohort_status.items()))}\n"
        f"tables: {', '.join(str(out / name) for name in TABLE_FILES)}\n"
        f"report: {out / 'cohort_report.html'}"
    )
    for why, n in sorted(Counter(o.redone for o in run.outcomes if o.redone).items()):
        typer.echo(f"{n} studies finished before were analysed again: their {why} changed")


def incomplete_line(run: CohortRun, out: Path) -> str:
    """The one line ``--quiet`` prints when not every study of the cohort is complete.

    Parameters
    ----------
    run
        The run, with its ``cohort_status``.
    out
        The cohort folder, as the user named it.

    Returns
    -------
    str
        ``discquant: 1 partial, 2 failed of 5 studies: see OUT/cohort_failures.csv and
        OUT/cohort_report.html``; every kind of failure counted alike (under ``--quiet``
        a worker's line named some failed studies and nothing the others, an audit).
    """
    counts = {k: n for k, n in sorted(run.cohort_status.items()) if k != "complete"}
    listed = ", ".join(f"{n} {k}" for k, n in counts.items()) or f"{run.failed} not run"
    return (
        f"discquant: {listed} of {run.total} studies: see {out / 'cohort_failures.csv'} "
        f"and {out / 'cohort_report.html'}"
    )
