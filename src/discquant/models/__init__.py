"""The shipped model weights (``segment/``, ``pfirrmann/``, each with its model card) and
the one reader that every model loader uses for weight files."""

from __future__ import annotations

import filecmp
import hashlib
import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from discquant.errors import ModelError, one_line


def read_torch_file(path: Path, *, what: str) -> Any:
    """Read a PyTorch weight file as data.

    ``weights_only=True``: a model file that a user names is unpickled as tensors,
    containers, numbers and strings only, never run as code.

    Parameters
    ----------
    path
        The ``.pt`` file.
    what
        What it should be, for the error message (``"segmentation model"``).

    Raises
    ------
    ModelError
        The file is not a PyTorch file of plain data (the message names the file).
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises pickle, zip, Index, ... errors on foreign files
        raise not_a_model(path, what, exc) from exc


def missing_model_file(path: Path, what: str) -> ModelError | None:
    """The one-line error for a model ``path`` that is not a file, or None when it is.

    A folder (a training run's ``--out``, its ``checkpoints/``) read "file not found"
    (an audit): the message names what to give instead.
    """
    if path.is_file():
        return None
    if path.is_dir():
        return ModelError(f"a folder, not a {what} file: give its model.pt", path=path)
    return ModelError(f"{what} file not found", path=path)


def training_checkpoint_error(path: Path, blob: Any, what: str) -> ModelError | None:
    """The one-line error for a resumable training checkpoint given as a model, or None.

    ``last.pt`` (weights, optimiser and random states) read "not a discquant segmentation
    model (KeyError: 'meta')" (an audit).
    """
    if isinstance(blob, dict) and "opt" in blob and "model" in blob:
        return ModelError(
            f"a training checkpoint, not a {what}: give model.pt (or best.pt) of its run",
            path=path,
        )
    return None


def not_a_model(path: Path, what: str, exc: Exception) -> ModelError:
    """The one-line error for a weight file that is not a discquant ``what``.

    The reason is ``exc``'s lines joined and cut at 160 characters: torch's messages (a
    state dict that does not fit the network lists every missing key) run to pages.
    """
    reason = one_line(exc)
    if len(reason) > 160:
        reason = reason[:159] + "…"
    return ModelError(f"not a discquant {what} ({type(exc).__name__}: {reason})", path=path)


def save_torch_file(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file beside ``path`` and a rename.

    A run interrupted while saving (a resumable checkpoint is rewritten every few
    hundred steps) leaves the previous file whole, never a truncated one.
    """
    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def weights_sha256(network: Any) -> str:
    """SHA-256 of a network's weights: its state dict, keys sorted, tensors as float32.

    Hashing the tensors rather than a file name or a version string identifies the weights
    themselves, wherever and however they were loaded (a float16 file and its float32
    copy hash alike). The results' provenance and the cohort's resume key both use it.
    """
    import numpy as np

    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.detach().cpu().float().numpy()).tobytes())
    return digest.hexdigest()


def is_shipped_file(path: str | Path, shipped: Traversable) -> bool:
    """Whether ``path`` holds the shipped weights: the packaged file itself or a
    byte-identical copy of it (a copy given as ``--segmentation-model`` read as a user's
    model, and a copy of the shipped grader lost the list of its training patients).

    Parameters
    ----------
    path
        A model file.
    shipped
        The packaged file (``importlib.resources``).

    Returns
    -------
    bool
        False also when either file is missing.
    """
    with resources.as_file(shipped) as packaged:
        a, b = Path(path), Path(packaged)
        if not (a.is_file() and b.is_file()):
            return False
        return a.resolve() == b.resolve() or filecmp.cmp(a, b, shallow=False)
