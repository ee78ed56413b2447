"""Libraries' own messages kept off the terminal unless asked for (``--verbose``).

The CLI (:func:`discquant.cli._common.setup_logging`) and each cohort worker process
(:func:`discquant.cohort.worker.dask_setup`) call :func:`quiet_libraries`: a damaged
header should reach the user as discquant's one line naming the file, not as the
libraries' lines that name none.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TextIO

__all__ = ["quiet_libraries"]


def quiet_libraries(*, verbose: bool = False) -> None:
    """Route nibabel's, pydicom's and Python's warnings through discquant's logging.

    - nibabel reports each header fix of a damaged NIfTI through its own stderr handler
      and again through ours (eight lines before the one-line error, ``--quiet`` or not;
      a user trial). Its errors become discquant's one-line error; the fixes show at
      ``--verbose``, once.
    - pydicom logs each header value it tolerates ("The PN component length (80) exceeds
      the maximum allowed length of 64") once per file, naming none, and warns it again
      through Python's warnings; numpy's RuntimeWarnings on damaged values came as raw
      ``file.py:440: UserWarning: ...`` pairs of lines. What makes a file unusable the
      importer reports itself; these show at ``--verbose``. A filter, not a level:
      importing pydicom sets its logger's level to WARNING.

    Parameters
    ----------
    verbose
        Let the libraries' messages through (pydicom's warnings, nibabel's header fixes;
        Python's warnings as debug lines of ``py.warnings``).
    """
    nibabel_log = logging.getLogger("nibabel.global")
    if verbose:
        import nibabel.imageglobals

        for own in list(nibabel.imageglobals.logger.handlers):
            nibabel.imageglobals.logger.removeHandler(own)
    else:
        nibabel_log.setLevel(logging.CRITICAL)
    pydicom_log = logging.getLogger("pydicom")
    for old in [f for f in pydicom_log.filters if isinstance(f, _AtLeast)]:
        pydicom_log.removeFilter(old)
    pydicom_log.addFilter(_AtLeast(logging.WARNING if verbose else logging.ERROR))
    warnings.showwarning = _log_warning


class _AtLeast(logging.Filter):
    """Pass a logger's records of ``level`` and above only."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is at least as severe as ``level``."""
        return record.levelno >= self.level


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """:func:`warnings.showwarning` for discquant: a library's Python warning as one
    debug line of the ``py.warnings`` logger (shown at ``--verbose``), not two raw lines
    on stderr.

    Parameters
    ----------
    message, category, filename, lineno, file, line
        As :func:`warnings.showwarning` receives them; ``file`` and ``line`` are unused.
    """
    text = " ".join(str(message).split())
    logging.getLogger("py.warnings").debug(
        "%s: %s (%s:%d)", category.__name__, text, Path(filename).name, lineno
    )
