"""What every command shares: logging set-up and turning errors into one line + exit code."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import typer

T = TypeVar("T")


def setup_logging(*, quiet: bool = False, verbose: bool = False) -> None:
    """Log to stderr: rich on a terminal, plain lines otherwise."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.INFO)
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


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user's error into one stderr line and its exit code.

    A :class:`~discquant.errors.DiscquantError` exits with its own code (2, or 3 for
    :class:`~discquant.errors.NoDiscsFoundError`). An :class:`OSError` about a named
    file (an output folder that is a file, an output file that is a folder, no
    permission, ...) exits 2 with the path and the system's reason.
    """
    from discquant.errors import DiscquantError

    try:
        yield
    except DiscquantError as exc:
        typer.echo(f"discquant: error: {exc}", err=True)
        raise typer.Exit(code=exc.exit_code) from None
    except OSError as exc:
        if exc.filename is None:  # not about a file: a genuine failure, keep the traceback
            raise
        # os.replace(tmp, dest) and friends: the second name is the one the user gave.
        name = exc.filename2 if exc.filename2 is not None else exc.filename
        reason = exc.strerror or type(exc).__name__
        typer.echo(f"discquant: error: {os.fsdecode(name)}: {reason}", err=True)
        raise typer.Exit(code=2) from None


def _check_folder_above(folder: Path, *, output: Path) -> None:
    """The nearest existing folder at or above ``folder`` must be a writable folder."""
    from discquant.errors import InvalidInputError

    existing = folder
    while not existing.exists() and not existing.is_symlink() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise InvalidInputError(
            f"cannot write here: {existing} is a file, not a folder", path=output
        )
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInputError(
            f"cannot write here: no permission to write in {existing}", path=output
        )


def check_output_file(path: Path) -> None:
    """Fail early when ``path`` cannot become an output file (before any work is done).

    Parameters
    ----------
    path
        The output file the user named; missing parent folders are fine (created later).

    Raises
    ------
    InvalidInputError
        ``path`` is an existing folder, a folder above it is a file, or the nearest
        existing folder above it is not writable.
    """
    from discquant.errors import InvalidInputError

    if path.is_dir():
        raise InvalidInputError("output path is an existing folder; name a file", path=path)
    _check_folder_above(path.parent, output=path)


def check_output_folder(path: Path) -> None:
    """Fail early when ``path`` cannot become (or be) an output folder.

    Parameters
    ----------
    path
        The output folder the user named; it may exist or not.

    Raises
    ------
    InvalidInputError
        ``path`` or a folder above it is a file, or it is not writable.
    """
    from discquant.errors import InvalidInputError

    if path.exists() and not path.is_dir():
        raise InvalidInputError("output path exists and is not a folder", path=path)
    _check_folder_above(path, output=path)


def not_yet(stage: str) -> Callable[..., None]:
    """A placeholder command body for a stage that has not landed yet."""

    def _cmd(*_: object, **__: object) -> None:
        typer.echo(f"discquant: '{stage}' is not implemented yet in this version.", err=True)
        raise typer.Exit(code=2)

    return _cmd
