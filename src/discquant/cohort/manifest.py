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
from dataclasses import dataclass
from pathlib import Path

from discquant.errors import InputNotFoundError, InvalidInputError
from discquant.outputs._common import bids_label
from discquant.pipeline import StudyInputs

log = logging.getLogger(__name__)

FILE_COLUMNS: tuple[str, ...] = ("t2", "dwi", "bval", "bvec", "adc")
"""Manifest columns naming one file each (relative paths are relative to the manifest)."""

FOLDER_COLUMNS: tuple[str, ...] = ("dicom", "path")
"""Manifest columns naming a study folder (a DICOM folder tree or a BIDS subject folder)."""


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


def input_files(inputs: StudyInputs) -> list[tuple[str, Path]]:
    """The files a study reads, as ``(role, path)``: explicit files and every file in ``path``.

    Hidden files (``.DS_Store``, ...) are left out. Raises :class:`InputNotFoundError` when a
    named path does not exist.
    """
    files: list[tuple[str, Path]] = []
    for role in FILE_COLUMNS:
        value = getattr(inputs, role)
        if value is None:
            continue
        path = Path(value)
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
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(root).parts)
            )
            files.extend((f"path/{p.relative_to(root).as_posix()}", p) for p in found)
        else:
            raise InputNotFoundError("study path does not exist", path=root)
    if not files:
        if inputs.path is not None:
            raise InputNotFoundError("the study folder holds no input file", path=inputs.path)
        raise InputNotFoundError("the study names no input file")
    return files


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


def _is_bids_root(folder: Path) -> bool:
    return (folder / "dataset_description.json").is_file() or any(
        p.is_dir() for p in folder.glob("sub-*")
    )


def _dedupe(studies: list[CohortStudy]) -> list[CohortStudy]:
    """Mark the second and later studies with the same label as failures (outputs would clash)."""
    seen: dict[str, str] = {}
    out: list[CohortStudy] = []
    for study in studies:
        if study.error is None and study.subject in seen:
            study = CohortStudy(
                study.subject,
                study.inputs,
                study.source,
                error=f"subject label '{study.subject}' already used by {seen[study.subject]}",
            )
        elif study.error is None:
            seen[study.subject] = study.source
        out.append(study)
    return out


def studies_from_folder(folder: Path) -> list[CohortStudy]:
    """A BIDS root (``sub-*`` folders) or a folder whose subfolders are studies (DICOM trees)."""
    folder = Path(folder)
    from discquant.io.nifti import bids_sessions

    found: list[tuple[Path, str]] = []  # (study folder, subject label)
    if _is_bids_root(folder):
        for sub in sorted(p for p in folder.glob("sub-*") if p.is_dir()):
            sessions = bids_sessions(sub)
            if len(sessions) > 1:  # one study per session (sub-01/ses-2 → label 01ses2)
                found += [(ses, bids_label(f"{sub.name}_{ses.name}")) for ses in sessions]
            else:
                found.append((sub, bids_label(sub.name)))
    else:
        found = [
            (p, bids_label(p.name))
            for p in sorted(folder.iterdir())
            if p.is_dir() and not p.name.startswith(".")
        ]
    if not found:
        raise InputNotFoundError("no study folders (sub-* or subfolders) found", path=folder)
    studies = [CohortStudy(label, StudyInputs(path=p, subject=label), str(p)) for p, label in found]
    return _dedupe(studies)


def _cell(row: dict[str, str | None], key: str) -> str | None:
    value = (row.get(key) or "").strip()
    return None if value in ("", "n/a", "NA") else value


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
    or a ``dicom`` (or ``path``) folder, one study per row.

    Relative paths are resolved against the manifest's folder. A row with a missing path,
    no input column or a repeated subject becomes a study with ``error`` set.
    """
    manifest = Path(manifest)
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"manifest is not UTF-8 text ({exc.reason})", path=manifest
        ) from exc
    delimiter = manifest_delimiter(manifest, text)
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        columns = [c.strip() for c in reader.fieldnames or []]
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
        rows = list(reader)
    base = manifest.parent
    studies: list[CohortStudy] = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
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
        inputs = StudyInputs(path=folder, subject=subject, **files)
        error: str | None = None
        if raw_subject is None:
            error = "no subject in this row"
        elif (
            folder is None
            and files["t2"] is None
            and files["dwi"] is None
            and (files["adc"] is None)
        ):
            error = "no input (t2, dwi, adc or dicom) in this row"
        else:
            missing = [
                f"{key}={path}"
                for key, path in (("dicom", folder), *files.items())
                if path is not None and not path.exists()
            ]
            if missing:
                error = "missing path: " + ", ".join(missing)
        if error:
            log.warning("%s: %s", source, error)
        studies.append(CohortStudy(subject, inputs, source, error=error))
    if not studies:
        raise InvalidInputError("manifest has no rows", path=manifest)
    return _dedupe(studies)


def read_cohort(source: Path) -> list[CohortStudy]:
    """The studies of a cohort: from a CSV/TSV manifest, a BIDS root, or a folder of studies.

    Raises
    ------
    InputNotFoundError
        When ``source`` does not exist or holds no study.
    InvalidInputError
        When a manifest lacks its required columns.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise InputNotFoundError("cohort input does not exist", path=source)
    if source.is_file():
        if source.suffix.lower() not in (".csv", ".tsv", ".tab", ".txt"):
            raise InvalidInputError("a cohort file must be a .csv or .tsv manifest", path=source)
        return studies_from_manifest(source)
    return studies_from_folder(source)
