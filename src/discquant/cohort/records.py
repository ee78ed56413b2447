"""Per-study records of a cohort run, and the atomic moves that make outputs appear whole.

Layout inside the cohort folder ``DIR``::

    DIR/sub-<id>/                         outputs of one study (as ``discquant analyze``)
    DIR/.discquant-cohort/records/sub-<id>.json   what happened to the study, last run
    DIR/.discquant-cohort/records/withheld-<digest>.json   the same, of a study refused
                                          because its label holds an identifier
    DIR/.discquant-cohort/withheld-key    the random key of those digests
    DIR/.discquant-cohort/tmp/            outputs being written (never read)

A study's outputs are written under ``tmp/`` and renamed into ``DIR/sub-<id>/`` (one
``rename`` on the same file system); its record is written next (to a temporary file,
then ``os.replace``). Only a study with a ``complete``/``partial`` record whose key
(input fingerprint, configuration, software version) matches is skipped on resume: a crash
between the two steps leaves a folder without record, which is redone.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discquant.output_paths import COHORT_STATE_DIR, sessions_inside, study_folder

STATE_DIR = COHORT_STATE_DIR
DONE_STATUSES = ("complete", "partial")
"""Record statuses of studies whose outputs exist (``partial``: some stages failed)."""


log = logging.getLogger(__name__)


def state_dir(out_dir: Path) -> Path:
    """The cohort's bookkeeping folder inside ``out_dir`` (records, locks, scheduler files)."""
    return Path(out_dir) / STATE_DIR


def record_path(out_dir: Path, subject: str) -> Path:
    """Where the completion record of one study lives."""
    return state_dir(out_dir) / "records" / f"sub-{subject}.json"


def withheld_record_path(out_dir: Path, subject: str) -> Path | None:
    """Where the record of a study refused because its label holds an identifier lives
    (``"withheld": true`` in it): named by a keyed digest of the label, not the label.

    A plain hash would not hide it: a medical record number has few enough values that a
    guessed one could be confirmed against the name. The key is random, made once per
    cohort folder (:func:`ensure_record_key`), so the name says nothing without it. None
    when the folder has no key (so no such record) or it cannot be read.
    """
    path = _key_path(out_dir)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # another user's cohort folder: as a record that cannot be read
        log.debug("%s: cannot be read (%s)", path, exc)
        return None
    if len(key) != KEY_BYTES:  # an empty key names records that anyone can compute
        log.debug("%s: %d bytes, not a key of %d", path, len(key), KEY_BYTES)
        return None
    digest = hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()
    return state_dir(out_dir) / "records" / f"withheld-{digest[:16]}.json"


KEY_BYTES = 32
"""Length of the key of :func:`withheld_record_path` (random bytes)."""


def _key_path(out_dir: Path) -> Path:
    return state_dir(out_dir) / "withheld-key"


def ensure_record_key(out_dir: Path) -> None:
    """Make the cohort folder's random key for :func:`withheld_record_path` unless it has
    one. The runner calls it before the studies start, so workers only read it. Asked
    readable by its owner and group (a group-shared cohort folder is resumed by its
    members), the umask permitting. Written whole under another name and linked into
    place: a process killed while writing it leaves no empty key, which would name the
    records as a plain hash does (a review)."""
    path = _key_path(out_dir)
    with contextlib.suppress(OSError):
        if path.stat().st_size == KEY_BYTES:
            return
    try:
        _write_key(path)
    except OSError as exc:  # the records of refused studies are then not written
        log.warning("%s: cannot be made (%s)", path, exc)


def _write_key(path: Path) -> None:
    """Write a new key to ``path`` (:func:`ensure_record_key`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".withheld-key-{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        if path.exists():  # not a key (a kill while writing one): replaced
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)  # the first key written stays
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def subject_dir(out_dir: Path, subject: str) -> Path:
    """A study's output folder: ``DIR/sub-<id>``, or ``DIR/sub-<id>/ses-<session>``."""
    return study_folder(out_dir, subject)


def discs_tsv_path(out_dir: Path, subject: str) -> Path:
    """A study's disc table, ``DIR/sub-<id>/sub-<id>_discs.tsv``: what the cohort tables read."""
    return subject_dir(out_dir, subject) / f"sub-{subject}_discs.tsv"


def results_json_path(out_dir: Path, subject: str) -> Path:
    """A study's results document, ``DIR/sub-<id>/sub-<id>_results.json`` (its study flags,
    the outputs it wrote and why others were not)."""
    return subject_dir(out_dir, subject) / f"sub-{subject}_results.json"


def output_sizes(out_dir: Path, subject: str) -> dict[str, int]:
    """``{name relative to the study's folder: size in bytes}`` of every file in it.

    Parameters
    ----------
    out_dir
        The cohort folder.
    subject
        The study's label.

    Returns
    -------
    dict of str to int
        POSIX names in sorted order; empty when the folder is not there.
    """
    folder = subject_dir(out_dir, subject)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in files}


def outputs_intact(out_dir: Path, subject: str, record: Mapping[str, Any]) -> bool:
    """Whether a finished study's outputs are as its record lists them.

    Parameters
    ----------
    out_dir
        The cohort folder.
    subject
        The study's label.
    record
        Its record, whose ``outputs`` (:func:`output_sizes` when it was written) name
        every file of its folder.

    Returns
    -------
    bool
        The disc table (:func:`discs_tsv_path`) is there and every file the record lists
        is there with its size; a record without the list (written before 2026-12-06)
        needs the disc table only. Resume skips a study only then: with its folder alone
        required, a removed or truncated disc table was never redone, and the tables
        listed the study as a failure on every run (an audit).
    """
    if not discs_tsv_path(out_dir, subject).is_file():
        return False
    listed = record.get("outputs")
    if not isinstance(listed, Mapping):
        return True
    folder = subject_dir(out_dir, subject)
    for name, size in listed.items():
        try:
            if (folder / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def read_record(out_dir: Path, subject: str) -> dict[str, Any] | None:
    """The study's record (:func:`record_path`, else :func:`withheld_record_path`), or None
    when there is none (or it cannot be read)."""
    plain = record_path(out_dir, subject)
    path = plain if plain.exists() else withheld_record_path(out_dir, subject)
    if path is None:
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def json_text(document: Any) -> str:
    """The text of a cohort JSON file (records, ``cohort_run.json``): indented, UTF-8."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_json_atomic(path: Path, document: Any) -> Path:
    """Write JSON to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json_text(document), encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_record(out_dir: Path, subject: str, record: dict[str, Any]) -> Path | None:
    """Write one study's completion record atomically, under :func:`withheld_record_path`
    when it says ``"withheld": true``, and remove the other; return its path (None: a
    withheld record whose key cannot be read is not written, never under the label)."""
    plain = record_path(out_dir, subject)
    if record.get("withheld"):
        ensure_record_key(out_dir)  # made by the runner already; here for tables by hand
    withheld = withheld_record_path(out_dir, subject)
    if record.get("withheld"):
        plain.unlink(missing_ok=True)
        if withheld is None:  # never under the label's name: not written, the study redone
            log.warning(
                "%s cannot be read: the record of a study refused for its label is not "
                "written (it is redone next time)",
                _key_path(out_dir),
            )
            return None
        return write_json_atomic(withheld, record)
    if withheld is not None:
        withheld.unlink(missing_ok=True)
    return write_json_atomic(plain, record)


def remove_record(out_dir: Path, subject: str) -> None:
    """Forget a study's record (it will be redone)."""
    record_path(out_dir, subject).unlink(missing_ok=True)
    withheld = withheld_record_path(out_dir, subject)
    if withheld is not None:
        withheld.unlink(missing_ok=True)


def new_tmp_dir(out_dir: Path) -> Path:
    """A fresh folder under ``DIR/.discquant-cohort/tmp`` (same file system as ``DIR``).

    Named without the study's label: it is made before the label is checked, and a study
    refused because its label holds an identifier must leave it nowhere, also where a
    killed worker leaves its folder behind (a review)."""
    path = state_dir(out_dir) / "tmp" / f"study-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    return path


def move_into_place(written: Path, out_dir: Path, subject: str) -> Path:
    """Rename a finished ``sub-<id>`` folder into ``DIR``, replacing an older one.

    The old folder (a partial or outdated result) is first renamed aside and deleted after,
    so ``DIR/sub-<id>`` is at every moment either absent or a complete folder.
    """
    target = subject_dir(out_dir, subject)
    target.parent.mkdir(parents=True, exist_ok=True)  # sub-<id>/ of a session's folder
    for _ in range(5):  # another writer may slip in between the two renames
        if target.exists():
            aside = state_dir(out_dir) / "tmp" / f"old-{uuid.uuid4().hex[:12]}"
            os.replace(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.rename(written, target)
            return target
        except OSError:
            if not target.exists():
                raise
    raise OSError(f"could not move {written} to {target}")


def remove_outputs(out_dir: Path, subject: str) -> bool:
    """Remove ``DIR/sub-<id>/`` (outputs of an earlier run of a study that has now failed).

    The folder is renamed aside first and deleted after, so it is at every moment whole or
    absent. Returns whether there was one. A subject's folder that holds its sessions'
    outputs (:func:`~discquant.output_paths.sessions_inside`) is not removed for a study
    without a session.
    """
    target = subject_dir(out_dir, subject)
    if not target.exists() or sessions_inside(out_dir, subject):
        return False
    aside = state_dir(out_dir) / "tmp" / f"stale-{uuid.uuid4().hex[:12]}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(target, aside)
    except FileNotFoundError:  # another writer removed it first
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


def clean_tmp(out_dir: Path) -> None:
    """Delete leftovers of interrupted runs (call only when no other run uses ``DIR``).

    The emptied ``tmp/`` is made again where it can be (:func:`new_tmp_dir` makes it
    otherwise): on a full or read-only disk the clean-up after a stopped run raised in
    place of the error that stopped it."""
    shutil.rmtree(state_dir(out_dir) / "tmp", ignore_errors=True)
    with contextlib.suppress(OSError):
        (state_dir(out_dir) / "tmp").mkdir(parents=True, exist_ok=True)


def key_differences(key: Mapping[str, Any], run_key: Mapping[str, Any]) -> list[str]:
    """The parts of ``run_key`` that a record's ``key`` does not equal (``config``,
    ``code_sha256``, ...): why a finished study is outdated, or was analysed again."""
    return [name for name, value in run_key.items() if key.get(name) != value]
