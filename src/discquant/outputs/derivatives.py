"""BIDS derivative layout: ``dataset_description.json``, file names, label maps and the ADC map.

Layout (BIDS 1.9 derivatives)::

    OUT/dataset_description.json
    OUT/sub-<label>/sub-<label>_dseg.nii.gz            segmentation on the T2 grid
    OUT/sub-<label>/sub-<label>_dseg.tsv               its look-up table (index, name, abbreviation)
    OUT/sub-<label>/sub-<label>_space-dwi_dseg.nii.gz  segmentation on the DWI grid
    OUT/sub-<label>/sub-<label>_adc.nii.gz (+ .json)   ADC, float32, um^2/ms (adc's writer)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from discquant import RESEARCH_DISCLAIMER, __version__
from discquant.diffusion.writer import AdcProvenance, write_adc_nifti
from discquant.io.nifti import set_scanner_space
from discquant.io.study import Volume

log = logging.getLogger(__name__)

BIDS_VERSION = "1.9.0"


def dataset_description() -> dict[str, Any]:
    """The derivative dataset's ``dataset_description.json`` content."""
    return {
        "Name": "discquant lumbar disc measurements",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "discquant",
                "Version": __version__,
                "Description": "Lumbar intervertebral disc ADC, geometry and Pfirrmann grades "
                "from MRI. " + RESEARCH_DISCLAIMER,
            }
        ],
    }


def write_dataset_description(path: Path) -> Path:
    """Write the BIDS ``dataset_description.json`` of the derivative dataset."""
    path.write_text(json.dumps(dataset_description(), indent=2) + "\n", encoding="utf-8")
    return path


def subject_file(subject_dir: Path, label: str, suffix: str, *, entities: str = "") -> Path:
    """``subject_dir/sub-<label>[_<entities>]_<suffix>``."""
    middle = f"_{entities}" if entities else ""
    return subject_dir / f"sub-{label}{middle}_{suffix}"


def _nifti(data: np.ndarray, affine: np.ndarray) -> Any:
    import nibabel as nib

    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    # The input's own codes are not carried (an input with only an aligned sform, code 2,
    # gets code 1 here: the same matrix, named scanner space); docs/outputs.md says so.
    return set_scanner_space(img)


def write_label_map(volume: Volume, path: Path) -> Path:
    """Write a label volume as an int16 NIfTI (labels are rounded, never interpolated)."""
    import nibabel as nib

    labels = np.rint(np.asarray(volume.data)).astype(np.int16)
    img = _nifti(labels, volume.affine)
    img.header.set_intent("label")
    nib.save(img, path)
    return path


def write_dseg_tsv(path: Path, *, present: set[int] | None = None) -> Path:
    """BIDS ``dseg.tsv``: index, name, abbreviation per label (only ``present`` ones if given).

    The text is :func:`discquant.results.dseg_tsv_text`, which ``discquant segment``
    writes too, so that both commands name the labels alike. (This called the
    segmentation stage's writer, whose import loaded PyTorch: 3 s for a 3-column table.)
    """
    from discquant.results import dseg_tsv_text

    path.write_text(dseg_tsv_text(present), encoding="utf-8")
    return path


def write_adc_map(volume: Volume, path: Path, provenance: AdcProvenance) -> tuple[Path, Path]:
    """Write the ADC map as float32 NIfTI in µm²/ms with its JSON sidecar next to it.

    The writer is ``discquant adc``'s own (:func:`discquant.diffusion.writer.write_adc_nifti`):
    one header, one sidecar schema for both commands. Returns the map's path and the
    sidecar's (the caller rebuilt the sidecar's name from the map's).
    """
    cause: OSError | None = None
    try:
        return write_adc_nifti(volume.data, volume.affine, path, provenance)
    except OSError as exc:
        # The writer names the map, here in the subject's temporary folder, which is gone
        # once the failure is reported: the error as raised (gzip's ENOSPC has no file
        # name), so that write_outputs names the subject folder instead.
        if not isinstance(exc.__cause__, OSError):
            raise
        cause = exc.__cause__
    # Raised here, not inside the handler: there the cause's context became the error
    # whose cause it is, a loop that Dask could not send to the cohort's client (the run
    # hung on a full disk: a cohort audit).
    assert cause is not None
    raise cause
