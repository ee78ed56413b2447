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
      importer reports itself; these show at ``--verbose``. The level is set on the
      ``pydicom`` logger after pydicom is imported (importing it sets that level), so
      its child loggers (``pydicom.pixels.*``) follow it.
    - Python's warnings become debug lines of ``py.warnings`` (:func:`_log_warning`).
      :func:`logging.captureWarnings` would log them at WARNING, on the terminal again.

    Parameters
    ----------
    verbose
        Let the libraries' messages through (pydicom's warnings, nibabel's header fixes;
        Python's warnings as debug lines of ``py.warnings``).
    """
    import pydicom  # noqa: F401  (its import sets the level set below)

    nibabel_log = logging.getLogger("nibabel.global")
    if verbose:
        import nibabel.imageglobals

        for own in list(nibabel.imageglobals.logger.handlers):
            nibabel.imageglobals.logger.removeHandler(own)
        nibabel_log.setLevel(logging.NOTSET)
    else:
        nibabel_log.setLevel(logging.CRITICAL)
    logging.getLogger("pydicom").setLevel(logging.WARNING if verbose else logging.ERROR)
    for handler in logging.getLogger().handlers:  # a handler's: highdicom logs by module
        if not any(isinstance(f, _UidsWithheld) for f in handler.filters):
            handler.addFilter(_UidsWithheld())
    warnings.showwarning = _log_warning


class _UidsWithheld(logging.Filter):
    """highdicom's messages with DICOM UIDs withheld
    (:func:`discquant.io.privacy.withhold_uids`): at ``--verbose`` it logs the source's
    SOP Instance UID as it copies the patient module ("copy Patient-related attributes
    from dataset ..."), and a vendor UID can hold the scanner's serial number and the
    scan time (an audit)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] == "highdicom":
            from discquant.io.privacy import withhold_uids

            record.msg, record.args = withhold_uids(record.getMessage()), None
        return True


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
