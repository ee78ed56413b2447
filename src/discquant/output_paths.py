"""Checks that an output path can be written, made before the work that fills it.

Used by every command and by :func:`discquant.pipeline.run_study`, so that an output
folder under a file, or in a folder without write permission, is a one-line error before
any import or analysis rather than an OSError afterwards. Also the names of those paths:
study labels (:func:`bids_label`, :func:`split_study_label`, :func:`study_folder`) and the
reading of BIDS names (:func:`bids_subject_session`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from discquant.errors import InvalidInputError

__all__ = [
    "COHORT_STATE_DIR",
    "bids_label",
    "bids_prefix",
    "bids_subject_session",
    "check_not_an_input",
    "check_not_inside_inputs",
    "check_not_over_inputs",
    "check_output_file",
    "check_output_folder",
    "check_subject_folder_free",
    "generated_by_discquant",
    "sessions_inside",
    "split_study_label",
    "study_folder",
]

COHORT_STATE_DIR = ".discquant-cohort"
"""The bookkeeping folder ``discquant cohort`` keeps in its output folder: a folder that
holds it is a cohort's output folder (``cohort.records``, ``evaluate segment``)."""


SESSION_ENTITY = "_ses-"
"""Joins a subject label and a BIDS session label into one study label (``01_ses-2``)."""


def split_study_label(label: str) -> tuple[str, str | None]:
    """The subject and the session (or None) of a study label.

    >>> split_study_label("01_ses-2"), split_study_label("spider007")
    (('01', '2'), ('spider007', None))
    """
    subject, sep, session = label.rpartition(SESSION_ENTITY)
    return (subject, session) if sep and subject and session else (label, None)


_STUDY_LABEL = re.compile(rf"(.+){SESSION_ENTITY}([A-Za-z0-9]+)")
"""A subject identifier that ends in a BIDS session entity (the last one)."""


MAX_LABEL_CHARS = 64
"""Longest study label (:func:`bids_label`) written. The de-identified DICOM SEG and SR
carry it as PatientID (VR LO: at most 64 characters), and every output file name holds
it: a 300-character ``--subject`` ran the whole analysis, then failed on "File name too
long", naming a temporary folder, and left the output folder behind (an audit)."""


def check_label_length(label: str, *, path: Path | str | None = None) -> None:
    """Refuse a study label longer than :data:`MAX_LABEL_CHARS` (the label itself is not
    in the message: it may come from a folder named after the patient)."""
    if len(label) > MAX_LABEL_CHARS:
        raise InvalidInputError(
            f"the subject label is {len(label)} characters long; at most {MAX_LABEL_CHARS} "
            "(give a shorter --subject)",
            path=path,
        )


def bids_label(subject: str) -> str:
    """Turn a subject identifier into a study label: a BIDS subject label (letters and
    digits only), and for one session of a subject its session entity as well, whose
    outputs go to ``sub-<subject>/ses-<session>/`` (:func:`study_folder`).

    >>> bids_label("sub-demo_01"), bids_label("sub-01_ses-2"), bids_label("01_ses-pre")
    ('demo01', '01_ses-2', '01_ses-pre')
    >>> bids_label("sub-01_ses-2_ses-3")  # the last session entity only
    '01ses2_ses-3'
    """
    match = _STUDY_LABEL.fullmatch(subject)
    if match is not None:
        return f"{_subject_label(match.group(1))}{SESSION_ENTITY}{match.group(2)}"
    return _subject_label(subject)


def _subject_label(subject: str) -> str:
    """Letters and digits of ``subject`` without its ``sub-`` (``unknown`` when none)."""
    label = subject.removeprefix("sub-")
    label = re.sub(r"[^A-Za-z0-9]", "", label)
    return label or "unknown"


_BIDS_NAME = re.compile(r"sub-([A-Za-z0-9]+)(?:_ses-([A-Za-z0-9]+))?(?=[_.]|$)")
"""The leading ``sub-<label>[_ses-<label>]`` of a BIDS file or folder name."""


def bids_subject_session(name: str) -> tuple[str, str | None] | None:
    """The subject and session labels that a BIDS file or folder name begins with (the
    first ``ses-`` entity, right after the subject), or None when it does not begin with
    a ``sub-`` entity. The one reading of BIDS names: the import, the trainers' patient
    split and the evaluation's pairing of files use it.

    >>> bids_subject_session("sub-01_ses-2_T2w.nii.gz"), bids_subject_session("sub-fcs11_T2w")
    (('01', '2'), ('fcs11', None))
    >>> bids_subject_session("sub-01_ses-2_ses-3_T2w"), bids_subject_session("p7_dwi")
    (('01', '2'), None)
    """
    match = _BIDS_NAME.match(name)
    return None if match is None else (match.group(1), match.group(2))


def bids_prefix(name: str) -> str | None:
    """``sub-<subject>[_ses-<session>]`` of a BIDS name (:func:`bids_subject_session`).

    >>> bids_prefix("sub-01_ses-2_dseg.nii.gz"), bids_prefix("sub-01_dseg"), bids_prefix("x")
    ('sub-01_ses-2', 'sub-01', None)
    """
    found = bids_subject_session(name)
    if found is None:
        return None
    subject, session = found
    return f"sub-{subject}" + (f"_ses-{session}" if session is not None else "")


def study_folder(root: Path, label: str) -> Path:
    """A study's output folder: ``root/sub-<subject>``, or ``root/sub-<subject>/ses-<session>``
    for one session of a subject (the BIDS derivatives layout), from its label.

    >>> study_folder(Path("out"), "01_ses-2").as_posix(), study_folder(Path("out"), "7").as_posix()
    ('out/sub-01/ses-2', 'out/sub-7')
    """
    subject, session = split_study_label(label)
    folder = Path(root) / f"sub-{subject}"
    return folder / f"ses-{session}" if session is not None else folder


def sessions_inside(out_dir: Path, label: str) -> list[str]:
    """The ``ses-*`` output folders inside the folder of a study without a session
    (``out_dir/sub-<id>/ses-*``), which its own outputs would replace; [] for a session."""
    if split_study_label(label)[1] is not None:
        return []
    folder = study_folder(out_dir, label)
    return sorted(p.name for p in folder.glob("ses-*") if p.is_dir()) if folder.is_dir() else []


def generated_by_discquant(description: object) -> bool:
    """True when ``description`` (a parsed ``dataset_description.json``) is a derivative
    dataset's description that names discquant in ``GeneratedBy`` (what
    ``outputs.derivatives.dataset_description`` writes, whatever its version, Name or
    added fields)."""
    if not isinstance(description, dict) or description.get("DatasetType") != "derivative":
        return False
    generated_by = description.get("GeneratedBy")
    return isinstance(generated_by, list) and any(
        isinstance(entry, dict) and entry.get("Name") == "discquant" for entry in generated_by
    )


def _check_folder_above(folder: Path, *, output: Path) -> None:
    """The nearest existing folder at or above ``folder`` must be a writable folder."""
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
    if path.exists() and not path.is_dir():
        raise InvalidInputError("output path exists and is not a folder", path=path)
    _check_folder_above(path, output=path)


def check_not_over_inputs(subject_dir: Path, inputs: list[Path]) -> None:
    """Refuse a subject output folder that is, or holds, one of the study's inputs.

    The outputs replace ``subject_dir`` whole: ``discquant analyze bids/sub-00 -o bids``
    deleted the raw ``bids/sub-00`` and left its outputs in its place (exit 0).

    Raises
    ------
    InvalidInputError
        Naming the output folder and the input inside it.
    """
    target = subject_dir.expanduser().absolute().resolve()
    for path in inputs:
        p = path.expanduser().absolute().resolve()
        if p == target or target in p.parents:
            raise InvalidInputError(
                f"the outputs would replace the input {path}; write them elsewhere, e.g. "
                "<BIDS root>/derivatives/discquant",
                path=subject_dir,
            )


def check_not_inside_inputs(out_dir: Path, inputs: list[Path]) -> None:
    """Refuse an analysis output folder that lies inside one of the study's input folders.

    ``analyze bids/sub-00 -o bids/sub-00`` wrote into the raw subject folder, and its
    next analysis read the outputs as inputs (``cohort`` refused it already). The caller
    passes the input folders whose import would read the outputs back.

    Raises
    ------
    InvalidInputError
        Naming the output folder and the input folder around it.
    """
    target = out_dir.expanduser().absolute().resolve()
    for path in inputs:
        p = path.expanduser().absolute().resolve()
        if p.is_dir() and (p == target or p in target.parents):
            raise InvalidInputError(
                f"the output folder lies inside the input folder {path}; write it "
                "elsewhere, e.g. <BIDS root>/derivatives/discquant",
                path=out_dir,
            )


def check_subject_folder_free(
    out_dir: Path, label: str, subject: str, key: Callable[[str], str]
) -> None:
    """Refuse to replace the outputs of another subject that shares the folder's label.

    Output folders are named by the label's letters and digits, so ``P-1`` and ``P_1``
    both write ``sub-P1``: the second analysis replaced the first's outputs without a
    word. A rerun of the same subject replaces its own outputs, as before. ``key`` gives
    one spelling of a subject named as a folder or as a label (``sub-01`` and ``01``):
    :func:`discquant.io.load.subject_from_name`. A subject's folder that holds its
    sessions' outputs (``sub-01/ses-2/``) is not replaced by an analysis without a session.

    Raises
    ------
    InvalidInputError
        The study's folder (:func:`study_folder`) holds a results document of a different
        subject label, or session folders that an analysis without a session would delete.
    """
    import json

    folder = study_folder(out_dir, label)
    if sessions := sessions_inside(out_dir, label):
        raise InvalidInputError(
            f"it holds the outputs of the subject's sessions ({', '.join(sessions)}), "
            "which outputs without a session would replace; analyse one session's "
            "folder (sub-X/ses-Y), or write elsewhere",
            path=folder,
        )
    document = folder / f"sub-{label}_results.json"
    # The writer replaces the whole folder: one that holds no results document of
    # discquant's (a user's notes, a plain file of that name) was deleted without a word
    # (a review).
    if folder.is_file() or (folder.is_dir() and not document.is_file() and any(folder.iterdir())):
        raise InvalidInputError(
            f"it holds files that are not discquant's outputs (no {document.name}), which "
            "the outputs would replace; remove it, or write elsewhere",
            path=folder,
        )
    try:
        previous = json.loads(document.read_text(encoding="utf-8")).get("subject")
    except (OSError, ValueError, AttributeError):
        return  # no readable results there: nothing of another subject to keep
    if isinstance(previous, str) and key(previous) != key(subject):
        raise InvalidInputError(
            f"it holds the outputs of subject {previous!r}, whose label is also "
            f"{label!r}; give another --subject, or remove that folder",
            path=folder,
        )


def check_not_an_input(output: Path, inputs: Sequence[tuple[str, Path]], *, option: str) -> None:
    """Refuse an output file that is one of the command's input files.

    ``calibrate pairs.csv -o pairs.csv`` and ``evaluate grade --json pred.csv`` replaced
    the table they read with their JSON (exit 0). The paths are compared resolved
    (symbolic links, ``./x`` and ``x``) and, when both exist, as one file
    (:func:`os.path.samefile`: a hard link).

    Parameters
    ----------
    output
        The output file the user named.
    inputs
        ``(what it is, path)`` of each input, e.g. ``("the --pred table", p)``.
    option
        How the command line names the output, e.g. ``--json``.

    Raises
    ------
    InvalidInputError
        Naming the output, the option and the input it would replace.
    """
    target = output.expanduser().absolute().resolve()
    for name, path in inputs:
        same = path.expanduser().absolute().resolve() == target
        if not same and output.exists() and path.exists():
            try:
                same = os.path.samefile(output, path)
            except OSError:
                same = False
        if same:
            raise InvalidInputError(
                f"the output would replace the input: {option} is {name} {path}; "
                "write it to another file",
                path=output,
            )


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing
