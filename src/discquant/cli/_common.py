"""What every command shares: logging set-up and turning errors into one line + exit code."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar

import typer

from discquant.library_logs import quiet_libraries

T = TypeVar("T")

# The analysis options `analyze` and `cohort` share, defined once so that both commands
# spell and explain them alike.
DicomOption = Annotated[bool, typer.Option(help="Also write DICOM SEG and SR (DICOM input).")]
DeviceOption = Annotated[str, typer.Option(help="cpu or cuda.")]
MethodOption = Annotated[str, typer.Option(help="ADC fit: two-point, ols, wls, nlls.")]
CalibrationOption = Annotated[
    Path | None,
    typer.Option(help="Water calibration (discquant calibrate); default: phantom model."),
]
AdcThresholdsOption = Annotated[
    Path | None,
    typer.Option(
        "--adc-thresholds",
        help="ADC class thresholds (YAML as discquant/config/adc_class.yaml); default: the "
        "packaged, literature-derived ones.",
    ),
]
KeepPhiOption = Annotated[
    bool, typer.Option(help="Keep patient-identifying DICOM fields in the outputs.")
]
SegmentationModelOption = Annotated[
    Path | None,
    typer.Option(
        help="Segmentation weights (discquant train segment) instead of the shipped ones."
    ),
]
GradingModelOption = Annotated[
    Path | None,
    typer.Option(
        help="Pfirrmann grading weights (discquant train grade) instead of the shipped ones."
    ),
]


def output_file(value: str) -> Path:
    """Typer parser of an option naming an output file: a name ending in ``/`` is refused
    (exit 2, naming the option and the value) before the command runs. pathlib drops the
    ``/``, so ``calibrate -o results/`` wrote a file named ``results``."""
    if value.endswith(("/", os.sep)):
        raise typer.BadParameter(f"{value!r} ends with '/': name a file, not a folder")
    if Path(value).name.startswith("."):  # segment -o out/.nii.gz wrote .nii.gz, _levels.json
        raise typer.BadParameter(f"{value!r} has no name before its suffix")
    return Path(value)


def output_folder(value: str | Path) -> Path:
    """Typer parser of an option naming an output folder: an empty value (an unset shell
    variable, ``--out "$OUT"``) is refused before the command runs; pathlib reads it as
    ``.``, and ``train segment --out ""`` wrote its model and checkpoints into the
    current folder (an audit). A default value comes as a Path."""
    if not str(value).strip():
        raise typer.BadParameter("an empty path: name the output folder")
    return Path(value)


@contextmanager
def about_config(config: Path) -> Iterator[None]:
    """Name ``config`` in a training run's errors that name no file: the split, the
    ``steps`` and the data a configuration asks for ("holdout_patients 50 leaves 3 of 53
    patients to train on") said no file. Errors about a data file keep their path."""
    from discquant.errors import DiscquantError

    try:
        yield
    except DiscquantError as exc:
        if exc.path is not None:
            raise
        raise type(exc)(exc.reason, path=config) from exc


def setup_logging(
    *, quiet: bool = False, verbose: bool = False, default_level: int = logging.INFO
) -> None:
    """Log to stderr: rich on a terminal, plain lines otherwise.

    ``default_level`` is the level without ``--quiet`` or ``--verbose``: WARNING for
    commands whose stage table already says what ran (``analyze``, ``demo``), where the
    INFO lines ("segmentation: started") repeated it before the summary.
    """
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else default_level)
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries' own progress (highdicom copies attributes module by module, distributed
    # announces every connection) only at --verbose.
    for name in ("highdicom", "distributed", "numba", "matplotlib", "PIL"):
        logging.getLogger(name).setLevel(level if verbose else max(level, logging.WARNING))
    quiet_libraries(verbose=verbose)


INTERRUPTED = "discquant: interrupted"
"""What Ctrl-C prints (:func:`user_errors`)."""
INTERRUPTED_RESUME = "discquant: interrupted; run the same command again to resume."
"""What Ctrl-C prints where a rerun resumes (cohort, segmentation training, a grading
cross-validation)."""


@contextmanager
def user_errors(interrupted: str = INTERRUPTED) -> Iterator[None]:
    """Turn a user's error into one stderr line and its exit code.

    A :class:`~discquant.errors.DiscquantError` exits with its own code (2, or 3 for
    :class:`~discquant.errors.NoDiscsFoundError`). An :class:`OSError` about a named
    file (an output folder that is a file, an output file that is a folder, no
    permission, ...) exits 2 with the path and the system's reason. Ctrl-C exits 130
    with the line ``interrupted``, SIGTERM 143 with the same line, after the clean-up
    that an exception runs (temporary files and folders removed).
    """
    from discquant.errors import DiscquantError

    # SIGTERM (`timeout`, a batch system's time limit, a shutdown) killed the process
    # without its clean-up: half-written outputs stayed in hidden folders (a user trial).
    # As an exception it unwinds like Ctrl-C. Signal handlers live in the main thread only.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        yield
    except DiscquantError as exc:
        typer.echo(f"discquant: error: {exc}", err=True)
        raise typer.Exit(code=exc.exit_code) from None
    except KeyboardInterrupt as exc:  # Ctrl-C exited 130 without a word
        typer.echo(interrupted, err=True)
        raise typer.Exit(code=143 if isinstance(exc, Terminated) else 130) from None
    except OSError as exc:
        if exc.filename is None:  # not about a file: a genuine failure, keep the traceback
            raise
        # os.replace(tmp, dest) and friends: the second name is the one the user gave.
        name = exc.filename2 if exc.filename2 is not None else exc.filename
        reason = exc.strerror or type(exc).__name__
        typer.echo(f"discquant: error: {os.fsdecode(name)}: {reason}", err=True)
        raise typer.Exit(code=2) from None
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that it unwinds and cleans up as after
    Ctrl-C; :func:`user_errors` exits 143 (128 + 15), as the signal itself would."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


def help_text(command: Callable[..., object]) -> str:
    """``command``'s docstring with each paragraph on one line, for ``--help``.

    Typer's rich help keeps a docstring's line breaks and then wraps to the terminal, so
    the docstring's own wrapping showed as ragged lines ("some stages failed (what⏎
    succeeded"). Paragraphs (blank-line separated) stay apart.
    """
    import inspect

    doc = inspect.getdoc(command) or ""
    return "\n\n".join(" ".join(p.split()) for p in doc.split("\n\n") if p.strip())
