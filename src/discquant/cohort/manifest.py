"""A cohort's input: a BIDS root, a folder of DICOM studies, or a CSV/TSV manifest → studies.

Every study gets a BIDS subject label (letters and digits, :func:`bids_label`), which names
its output folder ``DIR/sub-<label>/``. A manifest row that cannot become a study (a path
that does not exist, a duplicate subject, no input column) is kept as a study with an
``error``: the runner records it as a failure for that row only and goes on with the rest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from discquant.cohort.records import STATE_DIR
from discquant.errors import InputNotFoundError, InvalidInputError
from discquant.output_paths import bids_label, split_study_label
from discquant.pipeline import StudyInputs

log = logging.getLogger(__name__)

FILE_COLUMNS: tuple[str, ...] = ("t2", "dwi", "bval", "bvec", "adc")
"""Manifest columns naming one file each (relative paths are relative to the manifest)."""

FOLDER_COLUMNS: tuple[str, ...] = ("dicom", "path")
"""Manifest columns naming a study folder (a DICOM folder tree or a BIDS subject folder)."""

READ_COLUMNS: tuple[str, ...] = ("subject", "session", *FILE_COLUMNS, *FOLDER_COLUMNS)
"""Every column a manifest's rows are read from (names match ignoring case and blanks)."""

SIDECAR_SUFFIXES: tuple[str, ...] = (".bval", ".bvec", ".json")
"""Files next to a NIfTI image (same stem) that the import reads with it."""

BIDS_NON_SUBJECT_FOLDERS: frozenset[str] = frozenset(
    {"derivatives", "code", "sourcedata", "stimuli", "phenotype", "models"}
)
"""Folders of a BIDS root that hold no subject and are no study (BIDS specification)."""


@dataclass(frozen=True)
class CohortStudy:
    """One study of a cohort: where its inputs are and which subject label it gets."""

    subject: str
    """BIDS label (no ``sub-`` prefix); the outputs go to ``DIR/sub-<subject>/``."""
    inputs: StudyInputs
    source: str
    """Where the study came from, for tables and messages (a path or ``manifest.tsv row 3``)."""
    error: str | None = None
    """Why the study cannot run (set by the manifest reader); None when it can."""
    input_missing: bool = False
    """The row's error is that a path it names is not there (``input not found``): the
    share may be unmounted, so the runner keeps the study's record and outputs of an
    earlier run rather than removing them as for other manifest errors."""
    root: Path | None = None
    """The folder of studies or BIDS root ``source`` lies under, or a manifest's folder
    (its relative paths are relative to it): the cohort's tables give ``source`` and the
    paths in an error relative to it (:func:`table_source`); None: as they are."""
    place: str = ""
    """Where the study is in the cohort input without its name: the manifest's line
    (``cohort.csv line 3``) or its number among the study folders (``study folder 2 of
    5``). A study refused because its label holds the patient's ID or name is recorded
    under it (:func:`withheld_name`)."""


WITHHELD = "(withheld)"
"""The subject and source of a study whose label holds an identifier, as single-study
outputs show a folder name that holds one."""


def withheld_name(study: CohortStudy) -> str:
    """How tables, records and messages name a study whose label holds the patient's ID or
    name: its :attr:`~CohortStudy.place`, or ``(withheld)`` without one."""
    return study.place or WITHHELD


def table_source(study: CohortStudy) -> str:
    """The study's ``source`` for the cohort's tables: relative to its
    :attr:`~CohortStudy.root` (``P001``, ``sub-01/ses-2``) when it lies under it, else as
    it is (a manifest's ``cohort.csv line 3``). Absolute paths named the user's folders
    above the cohort (a home folder, a share) in a table meant to be passed on."""
    if study.root is not None:
        try:
            return Path(study.source).relative_to(study.root).as_posix()
        except ValueError:
            pass
    return study.source


def input_files(inputs: StudyInputs) -> list[tuple[str, Path]]:
    """The files a study's import reads, as ``(role, path)``: explicit files, every file in
    ``path`` and the sidecars of each NIfTI file among them.

    The ``.bval``/``.bvec``/``.json`` files next to a NIfTI file, named in a file column or
    given as ``path``, are included (role ``dwi.bval``, ``path.json`` etc.): the import
    reads them with the image (:func:`discquant.io.nifti.sibling`), so a changed sidecar
    must change the fingerprint. In a study folder, the rule is the DICOM reader's
    (:func:`discquant.io.dicom.load_dicom`, which walks every folder, hidden ones too, and
    skips hidden file names): files with a hidden name (``.DS_Store``) are left out, files
    in hidden folders are not; a NIfTI file with a hidden name is kept, since the NIfTI
    folder readers take every ``*.nii``/``*.nii.gz``. Raises :class:`InputNotFoundError`
    when a named path does not exist, :class:`InvalidInputError` when a file column
    names a folder (it said the file did not exist, with the path's ``..`` as given).
    """
    from discquant.io.nifti import is_nifti

    files: list[tuple[str, Path]] = []
    for role in FILE_COLUMNS:
        value = getattr(inputs, role)
        if value is None:
            continue
        path = Path(value)
        if path.is_dir():
            raise InvalidInputError(
                f"the {role} input is a folder, not a file: name its image file (a DICOM "
                "folder goes in the dicom column)",
                path=os.path.normpath(path),
            )
        if not path.is_file():
            raise InputNotFoundError(f"--{role} file does not exist", path=path)
        files.append((role, path))
    if inputs.path is not None:
        root = Path(inputs.path)
        if root.is_file():
            files.append(("path", root))
        elif root.is_dir():
            found = sorted(
                p
                for p in root.rglob("*")
                if p.is_file() and (not p.name.startswith(".") or is_nifti(p))
            )
            files.extend((f"path/{p.relative_to(root).as_posix()}", p) for p in found)
        else:
            raise InputNotFoundError("study path does not exist", path=root)
    files += _sidecars(files)
    if not files:
        if inputs.path is not None:
            raise InputNotFoundError("the study folder holds no input file", path=inputs.path)
        raise InputNotFoundError("the study names no input file")
    return files


def missing_inputs(inputs: StudyInputs) -> list[str]:
    """The paths a study names that are not there, as ``role=path``.

    Parameters
    ----------
    inputs
        The study's inputs.

    Returns
    -------
    list of str
        ``dicom=/share/P001``, ``t2=...``, in column order; empty when every named path
        exists.
    """
    named = (("dicom", inputs.path), *((role, getattr(inputs, role)) for role in FILE_COLUMNS))
    return [
        f"{role}={path}" for role, path in named if path is not None and not Path(path).exists()
    ]


def check_inputs_reachable(
    studies: Sequence[CohortStudy], *, where: str | Path | None = None
) -> None:
    """Refuse a cohort none of whose studies' inputs exists (an unmounted share).

    Each row would fail ``input not found``; nothing is gained by running, and a
    one-line error says more than a table of identical failures.

    Parameters
    ----------
    studies
        The cohort's studies.
    where
        The cohort input (a manifest), named in the error; None: none named.

    Raises
    ------
    InputNotFoundError
        When the studies name input paths and none of them exists.
    """
    named = [p for s in studies for p in s.inputs.named_paths()]
    if not named or any(Path(p).exists() for p in named):  # stops at the first one there
        return
    raise InputNotFoundError(
        f"none of the inputs of the {len(studies)} studies exists (is the share that holds "
        "them mounted?); nothing was run or removed",
        path=where,
    )


def _sidecars(files: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """The existing sidecars of the NIfTI files among ``files``, not already in ``files``.

    Parameters
    ----------
    files
        Named input files as ``(role, path)``.

    Returns
    -------
    list of (str, Path)
        ``(f"{role}{suffix}", sidecar)`` for each ``.bval``/``.bvec``/``.json`` found next
        to a NIfTI file, each path once.
    """
    from discquant.io.nifti import is_nifti, sibling

    seen = {path.absolute() for _, path in files}
    found: list[tuple[str, Path]] = []
    for role, path in files:
        if not is_nifti(path):
            continue
        for suffix in SIDECAR_SUFFIXES:
            side = sibling(path, suffix)
            if side is not None and side.absolute() not in seen:
                seen.add(side.absolute())
                found.append((f"{role}{suffix}", side))
    return found


def input_fingerprint(inputs: StudyInputs) -> tuple[str, int]:
    """SHA-256 over the roles, relative names and bytes of a study's input files.

    Returns the hex digest and the number of files. Moving a cohort to another disk keeps
    the fingerprint (names are relative to the study folder); changing a byte changes it.
    """
    digest = hashlib.sha256()
    files = input_files(inputs)
    for role, path in files:
        digest.update(role.encode())
        digest.update(b"\0")
        digest.update(str(path.stat().st_size).encode())
        digest.update(b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest(), len(files)


def absolute_study(study: CohortStudy) -> CohortStudy:
    """``study`` with its input paths made absolute against the current working directory.

    Parameters
    ----------
    study
        A study whose inputs may hold relative paths (e.g. built by hand).

    Returns
    -------
    CohortStudy
        The same study, every path of its :class:`StudyInputs` absolute (user ``~``
        expanded), for workers that run in another working directory.
    """

    def absolute(value: Path | None) -> Path | None:
        return None if value is None else Path(value).expanduser().absolute()

    inputs = study.inputs
    return replace(
        study,
        inputs=replace(
            inputs,
            path=absolute(inputs.path),
            t2=absolute(inputs.t2),
            dwi=absolute(inputs.dwi),
            bval=absolute(inputs.bval),
            bvec=absolute(inputs.bvec),
            adc=absolute(inputs.adc),
        ),
    )


def _is_bids_root(folder: Path) -> bool:
    return (folder / "dataset_description.json").is_file() or any(
        p.is_dir() for p in folder.glob("sub-*")
    )


def _dedupe(studies: list[CohortStudy]) -> list[CohortStudy]:
    """Mark the second and later studies with the same label as failures (outputs would clash),
    and a subject's study without a session when studies of its sessions are in the cohort
    (its folder ``sub-<id>/`` holds theirs, ``sub-<id>/ses-*/``).

    Labels that differ only in case (``S01``, ``s01``) clash too: on the case-insensitive
    file systems of macOS and Windows they name one output folder and one record.
    """
    seen: dict[str, tuple[str, str]] = {}  # casefolded label -> (label, source)
    with_sessions: dict[str, str] = {}  # casefolded subject -> source of one of its sessions
    for study in studies:
        subject, session = split_study_label(study.subject)
        if study.error is None and session is not None:
            with_sessions.setdefault(subject.casefold(), study.source)
    out: list[CohortStudy] = []
    for study in studies:
        key = study.subject.casefold()
        if study.error is None and key in with_sessions:
            # its outputs, sub-<id>/, would replace the sessions' sub-<id>/ses-*/ folders
            study = replace(
                study,
                error="its subject label has no session, but sessions of that subject are "
                f"studies too ({with_sessions[key]}): give it a session label "
                "(sub-<id>_ses-<session>)",
            )
        elif study.error is None and key in seen:
            label, source = seen[key]
            study = replace(
                study,
                error=f"its subject label is already used by {source}"
                + ("" if label == study.subject else " (the labels differ only in case)"),
            )
        elif study.error is None:
            seen[key] = (study.subject, study.source)
        out.append(study)
    return out


def _stray_folder_study(folder: Path) -> CohortStudy:
    """A failed study for a folder of a BIDS root that is not named ``sub-<label>``; its
    ``source`` is given relative to the root in the tables (its absolute path named the
    folders above the cohort in them, an audit)."""
    label = bids_label(folder.name)
    error = (
        "not a BIDS subject folder (the name does not start with 'sub-'): rename it "
        "sub-<label> to analyse it, or move it out of the BIDS root"
    )
    log.warning("%s: %s", folder, error)
    inputs = StudyInputs(path=folder, subject=label)
    return CohortStudy(label, inputs, str(folder), error=error, root=folder.parent)


def _stray_folders(root: Path) -> list[Path]:
    """Folders of a BIDS root that are neither ``sub-*``, hidden nor a BIDS non-subject folder.

    Parameters
    ----------
    root
        A BIDS dataset root.

    Returns
    -------
    list of Path
        Sorted by name; ``derivatives``, ``code``, ``sourcedata``, ``stimuli``,
        ``phenotype`` and ``models`` are left out.
    """
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir()
        and not p.name.startswith((".", "sub-"))
        and p.name not in BIDS_NON_SUBJECT_FOLDERS
    )


def studies_from_folder(folder: Path) -> list[CohortStudy]:
    """A BIDS root (``sub-*`` folders) or a folder whose subfolders are studies (DICOM trees).

    In a BIDS root, every other non-hidden folder (except the BIDS non-subject folders
    ``derivatives``, ``code``, ``sourcedata``, ``stimuli``, ``phenotype``, ``models``) becomes
    a failed study with a warning, so that a folder misnamed ``P001`` is not silently dropped.
    A cohort's output folder (it holds ``.discquant-cohort``) is never a study:
    ``studies/results`` inside a folder of studies became study ``results`` on the next
    run. Paths are made absolute (workers may run in another working directory).
    """
    folder = Path(folder).expanduser().absolute()
    from discquant.io.nifti import bids_sessions

    found: list[tuple[Path, str]] = []  # (study folder, subject label)
    stray: list[CohortStudy] = []
    if _is_bids_root(folder):
        for sub in sorted(p for p in folder.glob("sub-*") if p.is_dir()):
            sessions = bids_sessions(sub)
            if sessions:  # one study per session (sub-01/ses-2 → label 01_ses-2), one too:
                # its outputs are sub-01/ses-2/ and a second visit added later sits beside it
                found += [(ses, bids_label(f"{sub.name}_{ses.name}")) for ses in sessions]
            else:
                found.append((sub, bids_label(sub.name)))
        stray = [
            _stray_folder_study(p) for p in _stray_folders(folder) if not (p / STATE_DIR).is_dir()
        ]
    else:
        found = [
            (p, bids_label(p.name))
            for p in sorted(folder.iterdir())
            if p.is_dir() and not p.name.startswith(".")
        ]
        if parts := sorted(p.name + "/" for p, _ in found if _is_bids_part(p.name)):
            # Its anat/ and dwi/ became two studies, "anat" a T2 alone and "dwi" a DWI
            # alone, both complete, exit 0 (a user trial).
            remedy = (
                "give the folder that holds it (each session becomes a study)"
                if any(p.startswith("ses-") for p in parts)
                else "analyse it with `discquant analyze`, or give the folder that holds "
                "the subject folders"
            )
            raise InvalidInputError(
                f"is one subject's folder ({', '.join(parts)}), not a folder of studies: " + remedy,
                path=folder,
            )
    found = [(p, label) for p, label in found if not (p / STATE_DIR).is_dir()]
    if not found and not stray:
        raise InputNotFoundError("no study folders (sub-* or subfolders) found", path=folder)
    studies = [
        CohortStudy(
            label,
            StudyInputs(path=p, subject=label),
            str(p),
            root=folder,
            place=f"study folder {k} of {len(found)}",
        )
        for k, (p, label) in enumerate(found, start=1)
    ]
    return _dedupe(studies + stray)


BIDS_SUBJECT_PARTS = ("anat", "dwi", "func", "fmap", "perf")
"""BIDS data-type folders: inside a subject (or session) folder, never studies."""


def _is_bids_part(name: str) -> bool:
    return name in BIDS_SUBJECT_PARTS or name.startswith("ses-")


def _meant_column(name: str) -> str | None:
    """The read column an unknown header name was probably meant as, or None: one a
    spelling away (``t2w``, ``bvals``, ``sesion``) or one of its words (``dwi_file``,
    ``t2 path``). Such a column was dropped without a word: a manifest with ``t2w`` ran
    every study from its DWI alone, reported complete (a user trial)."""
    import difflib
    import re

    key = name.strip().casefold()
    if key == "ses":  # BIDS's own abbreviation
        return "session"
    near = [c for c in READ_COLUMNS if len(key) <= len(c) + 2]  # not subject_age
    close = difflib.get_close_matches(key, near, n=1, cutoff=0.8)
    if close:
        return close[0]
    # an input's name with words that say "a path" (dwi_file, t2 path); an input's name
    # beside other words is a covariate (adc_ref, t2_grade, dwi_date): left alone
    words = [w for w in re.split(r"[^0-9a-z]+", key) if w]
    inputs = [w for w in words if w in (*FILE_COLUMNS, "dicom")]
    if len(inputs) == 1 and all(w in _PATH_WORDS for w in words if w != inputs[0]):
        return inputs[0]
    return None


_PATH_WORDS = frozenset(
    {"file", "files", "path", "paths", "filename", "nii", "gz", "image", "img", "folder",
     "dir", "directory", "series", "input"}
)  # fmt: skip
"""Words that, beside an input column's name, make a header name a path (``dwi_file``)."""


def _read_columns(header: list[str], manifest: Path) -> list[str]:
    """The header with each read column's name in its canonical spelling (``T2``,
    `` Subject`` → ``t2``, ``subject``); other columns (a study's own covariates) keep
    theirs and are named in one warning, and a column that looks meant as a read one is
    refused, naming the column it resembles."""
    canonical = []
    ignored = []
    for name in header:
        key = name.strip().casefold()
        if key in READ_COLUMNS:
            canonical.append(key)
            continue
        meant = _meant_column(name)
        if meant is not None:
            raise InvalidInputError(
                f"manifest column {name.strip()!r} is not read: did you mean {meant!r}? "
                f"(columns read: {', '.join(READ_COLUMNS)})",
                path=manifest,
            )
        canonical.append(name.strip())
        if name.strip():
            ignored.append(name.strip())
    twice = sorted({c for c in canonical if c in READ_COLUMNS and canonical.count(c) > 1})
    if twice:
        raise InvalidInputError(
            f"manifest column(s) {twice} appear more than once (names match ignoring case)",
            path=manifest,
        )
    if ignored:
        log.warning(
            "%s: column(s) %s not read (columns read: %s)",
            manifest.name,
            ", ".join(repr(c) for c in ignored),
            ", ".join(READ_COLUMNS),
        )
    return canonical


def _with_session(subject: str, session: str | None, folder: Path | None) -> tuple[str, str | None]:
    """The study label of a row: its subject, with its session (the ``session`` column, or
    the name of a ``ses-*`` folder it names) as BIDS labels ``01_ses-2``; or why not."""
    import re

    named = []  # (where, session)
    if session is not None:
        named.append(("the session column", session[4:] if session.startswith("ses-") else session))
    if folder is not None and folder.name.startswith("ses-"):
        # a BIDS session folder keeps its session, as in analyze
        named.append((f"the folder {folder.name}", folder.name[4:]))
    given = split_study_label(subject)[1]
    if given is not None:
        named.append(("the subject", given))
    if not named:
        return subject, None
    for where, value in named:  # each: a folder ses-2024-01-05 made sub-01/ses-2024-01-05
        if not re.fullmatch(r"[A-Za-z0-9]+", value):
            return subject, f"{where}: session {value!r} is not a BIDS label (letters and digits)"
    (where, label), *others = named
    for other, value in others:
        if value != label:
            return subject, f"{where} names session {label!r} and {other} {value!r}"
    return f"{split_study_label(subject)[0]}_ses-{label}", None


def _cell(row: dict[str, str | None], key: str) -> str | None:
    value = (row.get(key) or "").strip()
    return None if value in ("", "n/a", "NA") else value


def _is_blank(row: dict[str | None, str | list[str] | None]) -> bool:
    """Whether every cell of a manifest row is empty or whitespace (``,,,,`` lines)."""
    cells: list[str | None] = []
    for value in row.values():
        cells += value if isinstance(value, list) else [value]
    return all(not (cell or "").strip() for cell in cells)


def manifest_delimiter(manifest: Path, text: str) -> str:
    """Tab or comma: what the header line uses, else by extension (``.tsv``/``.tab``: tab).

    A header with tabs and no comma is tab-separated, one with commas and no tab
    comma-separated, whatever the extension (a tab-separated ``.txt`` or a ``.csv``
    saved as TSV reads as written).
    """
    header = text.splitlines()[0] if text else ""
    tabs, commas = header.count("\t"), header.count(",")
    if tabs and not commas:
        return "\t"
    if commas and not tabs:
        return ","
    return "\t" if manifest.suffix.lower() in (".tsv", ".tab") else ","


def studies_from_manifest(manifest: Path) -> list[CohortStudy]:
    """Read a CSV/TSV manifest: ``subject`` plus ``t2``/``dwi``/``bval``/``bvec``/``adc`` files
    or a ``dicom`` (or ``path``) folder, one study per row, and an optional ``session``.

    Column names match ignoring case and surrounding blanks. A column not read (a
    covariate such as ``age``) is named in a warning; one that looks meant as a read
    column (``t2w``, ``bvals``, ``dwi_file``) is refused. A row's session (the ``session``
    column, ``sub-01_ses-2`` in the subject cell, or a ``ses-*`` folder it names) gives
    the study label ``01_ses-2``, written to ``DIR/sub-01/ses-2/``.

    Relative paths are resolved against the manifest's folder and made absolute (workers may
    run in another working directory). A row with a missing path (``input not found``,
    :attr:`CohortStudy.input_missing`), no input column or a repeated subject becomes a
    study with ``error`` set; rows whose cells are all empty
    (``,,,,`` at the end of spreadsheet exports) are skipped. ``source`` names the row's line
    in the file (blank lines counted).

    Raises
    ------
    InvalidInputError
        The manifest is not UTF-8, lacks its required columns or has no rows.
    InputNotFoundError
        No row's input exists (:func:`check_inputs_reachable`).
    """
    manifest = Path(manifest).expanduser().absolute()
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"manifest is not UTF-8 text ({exc.reason})", path=manifest
        ) from exc
    delimiter = manifest_delimiter(manifest, text)
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        columns = _read_columns(list(reader.fieldnames or []), manifest)
        reader.fieldnames = columns
        if "subject" not in columns:
            found = ", ".join(repr(c) for c in columns) if columns else "none: the file is empty"
            sep = "tab" if delimiter == "\t" else "comma"
            raise InvalidInputError(
                f"manifest has no 'subject' column ({sep}-separated; columns found: {found})",
                path=manifest,
            )
        if not any(c in columns for c in (*FILE_COLUMNS, *FOLDER_COLUMNS)):
            raise InvalidInputError(
                "manifest needs t2/dwi/bval/bvec/adc file columns or a dicom column",
                path=manifest,
            )
        # csv skips blank lines: reader.line_num (lines read so far) is the row's own line
        try:
            rows = [(reader.line_num, row) for row in reader if not _is_blank(row)]
        except csv.Error as exc:  # a cell over the csv module's field size limit, ...
            raise InvalidInputError(
                f"not a readable manifest (after line {reader.line_num}: {exc})", path=manifest
            ) from exc
    base = manifest.parent
    studies: list[CohortStudy] = []
    for number, row in rows:
        source = f"{manifest.name} line {number}"
        raw_subject = _cell(row, "subject")
        subject = bids_label(raw_subject) if raw_subject else f"row{number}"

        def resolve(value: str | None) -> Path | None:
            if value is None:
                return None
            path = Path(value).expanduser()
            return path if path.is_absolute() else base / path

        folder = resolve(_cell(row, "dicom") or _cell(row, "path"))
        files = {key: resolve(_cell(row, key)) for key in FILE_COLUMNS}
        subject, session_problem = _with_session(subject, _cell(row, "session"), folder)
        inputs = StudyInputs(path=folder, subject=subject, **files)
        error: str | None = None
        missing = missing_inputs(inputs)
        # csv.DictReader puts fields beyond the header under the key None and reads them
        # nowhere: a path in one (a shifted row) would be lost without a word. Empty ones
        # (trailing separators of a spreadsheet export) are harmless.
        overflow = [v for v in row.get(None, []) or [] if v.strip()]
        if overflow:
            error = (
                f"{len(overflow)} non-empty field(s) beyond the header's {len(columns)} "
                f"columns (first: {overflow[0]!r}); is a separator missing from the header?"
            )
        elif raw_subject is None:
            error = "no subject in this row"
        elif session_problem is not None:
            error = session_problem
        elif (
            folder is None
            and files["t2"] is None
            and files["dwi"] is None
            and (files["adc"] is None)
        ):
            error = "no input (t2, dwi, adc or dicom) in this row"
        elif missing:
            error = "input not found: " + ", ".join(missing)
        if error:  # the progress line says it, once (docs/cohort.md; a review)
            log.debug("%s: %s", source, error)
        input_missing = error is not None and error.startswith("input not found")
        studies.append(
            CohortStudy(
                subject,
                inputs,
                source,
                error=error,
                input_missing=input_missing,
                root=base,
                place=source,
            )
        )
    if not studies:
        raise InvalidInputError("manifest has no rows", path=manifest)
    check_inputs_reachable(studies, where=manifest)
    return _dedupe(studies)


MANIFEST_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")
"""The file extensions of a cohort manifest (any case)."""


def read_cohort(source: Path) -> list[CohortStudy]:
    """The studies of a cohort: from a CSV/TSV manifest, a BIDS root, or a folder of studies.

    Raises
    ------
    InputNotFoundError
        When ``source`` does not exist or holds no study, or no manifest row's input
        exists (an unmounted share).
    InvalidInputError
        When a manifest lacks its required columns.
    """
    source = Path(source).expanduser().absolute()  # workers may run in another directory
    if not source.exists():
        raise InputNotFoundError("cohort input does not exist", path=source)
    if source.is_file():
        if source.suffix.lower() not in MANIFEST_SUFFIXES:
            raise InvalidInputError(
                "a cohort file must be a manifest: "
                + ", ".join(MANIFEST_SUFFIXES[:-1])
                + f" or {MANIFEST_SUFFIXES[-1]} (or give a BIDS root or a folder of studies)",
                path=source,
            )
        return studies_from_manifest(source)
    return studies_from_folder(source)


def check_outputs_apart(out: Path, studies: Sequence[CohortStudy]) -> None:
    """Refuse an output folder that holds a study's inputs or lies inside a study folder.

    Each study's outputs replace ``OUT/sub-<label>/`` whole, and a failed study's are
    removed: with ``OUT`` at a BIDS root, that was the raw subject folder, deleted after
    its analysis. An output folder inside a study would be read as its input next time.

    Raises
    ------
    InvalidInputError
        Naming the first study whose inputs overlap ``out``.
    """
    out_abs = Path(out).expanduser().absolute()
    for study in studies:
        for path in study.inputs.named_paths():
            p_abs = path.expanduser().absolute()
            # As written and with links resolved: a BIDS root whose subject folders are
            # links to elsewhere passed the resolved comparison alone.
            if any(
                p == root or root in p.parents or (p.is_dir() and p in root.parents)
                for p, root in ((p_abs, out_abs), (p_abs.resolve(), out_abs.resolve()))
            ):
                raise InvalidInputError(
                    f"the output folder holds or lies inside the inputs of study "
                    f"{study.subject} ({path}); choose a folder apart, e.g. "
                    "<BIDS root>/derivatives/discquant",
                    path=out,
                )
