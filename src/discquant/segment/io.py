"""Writing a :class:`~discquant.segment.infer.SpineSegmentation` to disk."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from discquant.grid import volume_withheld_flag
from discquant.io.nifti import nifti_stem, set_scanner_space
from discquant.io.study import Volume
from discquant.results import dseg_tsv_text
from discquant.segment.infer import SpineSegmentation
from discquant.segment.levels import DiscLevel

log = logging.getLogger(__name__)


def write_dseg_tsv(path: Path, *, present: Collection[int] | None = None) -> Path:
    """Write the BIDS look-up table of the labels (``discquant segment``'s ``<stem>.tsv``;
    ``discquant analyze``'s ``_dseg.tsv`` has the same text,
    :func:`discquant.results.dseg_tsv_text`).

    Parameters
    ----------
    path
        The ``.tsv`` file.
    present
        Only these label values; None: every label (:func:`dseg_tsv_text`).

    Returns
    -------
    Path
        ``path``.
    """
    path.write_text(dseg_tsv_text(present), encoding="utf-8")
    return path


def _nifti_path(path: Path, suffix: str) -> Path:
    """``a.nii.gz`` + ``_nucleus`` → ``a_nucleus.nii.gz`` (``.nii.gz`` for other names)."""
    stem = nifti_stem(path)
    ext = path.name[len(stem) :] or ".nii.gz"
    return path.with_name(stem + suffix + ext)


def segmentation_paths(path: str | Path, *, nucleus: bool = True, canal: bool = True) -> list[Path]:
    """Every file :func:`write_segmentation` writes for the label map ``path``: the map,
    ``<stem>_nucleus`` and ``<stem>_canal`` (when the model has them), ``<stem>.tsv`` and
    ``<stem>_levels.json``; for checks made before the work."""
    path = Path(path)
    stem = nifti_stem(path)
    masks = [name for name, on in (("_nucleus", nucleus), ("_canal", canal)) if on]
    return [
        path,
        *(_nifti_path(path, name) for name in masks),
        path.with_name(stem + ".tsv"),
        path.with_name(stem + "_levels.json"),
    ]


def write_segmentation(
    seg: SpineSegmentation, path: str | Path, *, two_d: bool = False
) -> list[Path]:
    """Write the label map (``path``), ``<stem>.tsv`` (BIDS look-up table of the labels
    present, as ``discquant analyze`` writes it: :func:`write_dseg_tsv`;
    ``sub-01_dseg.nii.gz`` → ``sub-01_dseg.tsv``) and ``<stem>_levels.json`` next to it.
    ``two_d``: the input was a 2-D image (one slice, read as 3-D with one slice); its
    maps are written 2-D too, on the input's own grid.

    The nucleus and canal masks, when the model has them, go to ``<stem>_nucleus`` and
    ``<stem>_canal``. Returns the written paths. Every file is written to a temporary
    name first and renamed only when all are written, so that a failure (one of the
    names taken by a folder) leaves none of them behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dests = segmentation_paths(path, nucleus=seg.nucleus is not None, canal=seg.canal is not None)
    label_map, *masks, dseg, levels = dests
    staged: list[tuple[Path, Path]] = []

    def stage(dest: Path) -> Path:
        tmp = dest.with_name(".tmp-" + dest.name)
        staged.append((tmp, dest))
        return tmp

    def save(data: np.ndarray, affine: np.ndarray, dest: Path, dtype: type, intent: str) -> None:
        array: np.ndarray = np.asarray(data, dtype=dtype)
        if two_d:  # a 2-D input's maps were written 3-D, one slice (an audit)
            if array.ndim != 3 or array.shape[2] != 1:
                raise ValueError(f"a 2-D input's map has shape {array.shape}")
            array = array[:, :, 0]
        img = nib.Nifti1Image(array, affine)
        img.header.set_data_dtype(dtype)
        img.header.set_intent(intent)  # "label" as analyze's dseg (a review: it had none)
        set_scanner_space(img)  # scanner coordinates, as the input's
        nib.save(img, str(stage(dest)))

    try:
        save(seg.labels.data, seg.labels.affine, label_map, np.int16, "label")
        for vol, dest in zip(
            [v for v in (seg.nucleus, seg.canal) if v is not None], masks, strict=True
        ):
            save(vol.data, vol.affine, dest, np.uint8, "none")
        # Exactly the labels in this map (none: a header only), in a file of its own: one
        # dseg.tsv per folder listed every label for an empty map and was overwritten by
        # the next output.
        present = sorted(int(v) for v in np.unique(seg.labels.data) if v > 0)
        write_dseg_tsv(stage(dseg), present=present)
        document = {
            "model": seg.model,
            "flags": seg.flags,
            "levels": [_level_entry(lv, seg.labels) for lv in seg.levels],
        }
        stage(levels).write_text(json.dumps(document, indent=2))
        for dest in dests:
            if dest.is_dir():
                raise IsADirectoryError(21, "a folder has this name", str(dest))
        for tmp, dest in staged:
            tmp.replace(dest)
        # A mask this model does not make, left by an earlier run beside the map, would
        # read as this run's (a review)
        for old in set(segmentation_paths(path)) - set(dests):
            if old.is_file():
                old.unlink()
                log.info("%s: removed, from an earlier run (this model makes none)", old)
    except BaseException as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        final = {tmp: dest for tmp, dest in staged}
        if isinstance(exc, OSError) and exc.filename is not None:
            # An error about a temporary name ("/proc/.tmp-seg.nii.gz") names the output
            # the user gave instead.
            given = final.get(Path(os.fsdecode(exc.filename)))
            if given is not None:
                raise type(exc)(exc.errno, exc.strerror, str(given)) from exc
        raise
    return dests


def _level_entry(level: DiscLevel, labels: Volume) -> dict[str, Any]:
    """A disc of the levels file: its volume withheld with its reason as ``analyze``
    withholds it (one sagittal slice, a slab that cuts it): on a mid-sagittal slice it
    was the area times the slice thickness, on a 21-slice slab half the disc, unflagged
    (a user trial)."""
    withheld = volume_withheld_flag(labels.data == level.label, labels.affine)
    return {
        "label": level.label,
        "name": level.name,
        "centroid_mm": [round(c, 2) for c in level.centroid_mm],
        "volume_mm3": None if withheld else round(level.volume_mm3, 1),
        "confidence": round(level.confidence, 3),
        "flags": [withheld] if withheld else [],
    }
