"""Errors a user can cause, as typed exceptions.

The command line turns every :class:`DiscquantError` into one line on stderr and exit
code 2. An analysis that ran but found no lumbar disc exits 3: ``analyze`` flags the result
``no_lumbar_discs_found`` (:func:`discquant.cli._summary.exit_code_for`), ``segment``
exits 3 itself.
Each message names the file and the problem, so the user knows what to fix.
"""

from __future__ import annotations

from pathlib import Path


class DiscquantError(Exception):
    """Base class of every error discquant raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        message = one_line(message)  # messages of other libraries (nibabel, YAML) span lines
        self.reason = message  # the problem without the path, to restate about another file
        super().__init__(f"{path}: {message}" if path is not None else message)


class InputNotFoundError(DiscquantError):
    """A path the user named does not exist, or a folder holds nothing usable."""


class InvalidInputError(DiscquantError):
    """A file exists but cannot be used: truncated, inconsistent, NaN-filled, ..."""


class IdentifyingLabelError(InvalidInputError):
    """A subject label holds the patient's ID, name or another identifier of the DICOM
    header (:func:`discquant.io.privacy.label_holds_identifier`), refused without
    ``keep_phi``. A cohort records such a study by its place in the cohort, not by its
    label or folder (:func:`discquant.cohort.worker.failure_record`)."""


class UnreadableImageError(InvalidInputError):
    """A file cannot be opened as an image at all (damaged, truncated, not an image)."""


class DicomConversionError(InvalidInputError):
    """dcm2niix failed or produced no volume for a DICOM series."""


class ConversionStoppedError(DiscquantError):
    """A converter (dcm2niix) was stopped by a signal: Ctrl-C reaches every process of
    the terminal's process group. The study must be read again, not analysed without the
    series (a cohort records it failed, so its next run redoes it)."""

    exit_code = 130


class NoDiscsFoundError(DiscquantError):
    """The analysis ran but found no lumbar intervertebral disc.

    For a user's segmenter to raise (:data:`discquant.pipeline.Segmenter`): ``analyze``
    records it as the segmentation stage's failure and flags the result
    ``no_lumbar_discs_found``, as it does when the shipped segmenter finds no disc (that
    case returns an empty segmentation, it does not raise). Should it reach the command
    line, it exits 3.
    """

    exit_code = 3


class OutputNotWritableError(DiscquantError):
    """The output folder cannot be written: its disk is full, a quota is reached, it is
    read-only or this user may not write it. Every study would fail alike, so a cohort
    run stops on it (exit 2) without recording failures or removing earlier outputs
    (:func:`discquant.cohort.worker.output_storage_error`)."""


class ModelError(DiscquantError):
    """A shipped or user-given model file is missing or does not fit the code."""


def one_line(text: object) -> str:
    """``text`` (an exception's message, say) on one line: every run of whitespace,
    newlines included, becomes one space. YAML, torch and pandas messages span lines."""
    return " ".join(str(text).split())


def validation_summary(exc: Exception) -> str:
    """A pydantic ``ValidationError`` as one line: ``field: problem; field: problem``.

    pydantic's own message spans several lines per field, with links.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return one_line(exc)
    parts = []
    for e in errors():
        where = ".".join(str(p) for p in e.get("loc", ())) or "config"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)
