"""The hidden folders a subject's outputs pass through, and those a killed run left.

:func:`discquant.outputs.write.write_outputs` writes a subject into
``.sub-<label>.tmp-<host>-<pid>-<random>`` beside its final folder and moves an existing
subject folder aside into ``.sub-<label>.old-<host>-<pid>-<random>`` while it swaps the
two. A run killed by a signal that cannot be caught (SIGKILL, the out-of-memory killer, a
node lost) leaves them behind; a user trial found partial result files piling up in
hidden folders of a cluster's output folder, one per timed-out job. The writing process
holds an advisory lock (``flock``) on each of its folders while it runs, which the
kernel drops when the process dies however it dies: :func:`clear_stale` removes the
folders of this host that no process holds, and first puts back a previous subject
folder that a kill caught between the two moves. Where locks are not available (no
``fcntl``, a file system without them) the process id in the name decides, on this host
only (a review: a container sharing the host name but not the process ids had a live
run's folder removed by the process-id test alone). A folder of another host is left
alone: its run may still be going, and its lock may not be visible from here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


def _host() -> str:
    """This machine's name as it appears in staging folder names (letters, digits, ``_``)."""
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


def owner_tag() -> str:
    """``<host>-<pid>`` of this process, the owner part of a staging folder's name."""
    return f"{_host()}-{os.getpid()}"


def staging_folder(final: Path, kind: str) -> Path:
    """A new, unique name beside ``final`` for its ``kind`` (``tmp`` or ``old``) folder.

    >>> name = staging_folder(Path("out/sub-01"), "tmp").name
    >>> name.startswith(".sub-01.tmp-") and name.split("-")[-2].isdigit()
    True
    """
    return final.parent / f".{final.name}.{kind}-{owner_tag()}-{uuid.uuid4().hex}"


def make_held(final: Path, kind: str) -> tuple[Path, int | None]:
    """Create a new staging folder of ``final`` and lock it for this process.

    Returns
    -------
    (Path, int or None)
        The folder, and the open descriptor that holds its lock (None where locks are
        not available); give it to :func:`release` when the folder's work is done.
    """
    folder = staging_folder(final, kind)
    folder.mkdir()  # follows the umask (tempfile.mkdtemp would make it owner-only)
    try:
        import fcntl
    except ImportError:  # Windows: the process id decides
        return folder, None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # no locks on this file system
        os.close(fd)
        return folder, None
    return folder, fd


def release(*held: int | None) -> None:
    """Drop the locks :func:`make_held` took (closing the descriptors)."""
    for fd in held:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _held(path: Path) -> bool | None:
    """Whether a process holds ``path``'s lock; None where it cannot be told."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clear_stale(final: Path) -> list[Path]:
    """Remove the staging folders of ``final`` that no process of this host holds.

    A previous subject folder that a killed run had moved aside (``final`` missing, an
    ``old`` folder holding it) is moved back first, so the results are never lost.

    Parameters
    ----------
    final
        A subject's output folder (``OUT/sub-01`` or ``OUT/sub-01/ses-2``).

    Returns
    -------
    list of Path
        The folders removed (or emptied by the move back).
    """
    if not final.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(tmp|old)-(.+)-(\d+)-[A-Za-z0-9_]+$")
    stale: list[tuple[str, Path]] = []
    for path in final.parent.iterdir():
        match = pattern.match(path.name)
        if match is None or not path.is_dir():
            continue
        kind, host, pid = match.group(1), match.group(2), int(match.group(3))
        if host != _host():
            continue
        held = _held(path)
        if held is False or (held is None and not _pid_alive(pid)):
            stale.append((kind, path))
    for kind, path in sorted(stale, key=lambda s: s[0] != "old"):  # the old ones first
        kept = path / "old"
        if kind == "old" and kept.is_dir() and not final.exists():
            os.replace(kept, final)
            log.warning("%s: restored from %s, left by a run that was killed", final, path.name)
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by a run that was killed", path)
    return [path for _, path in stale]
