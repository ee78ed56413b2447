"""Write a phantom study as BIDS-style NIfTI (and, via :mod:`.dicom`, as DICOM).

Layout (``sub-XX`` = ``sub-`` + ``subject``)::

    dataset_description.json
    sub-XX/anat/sub-XX_T2w.nii.gz (+ .json)
    sub-XX/dwi/sub-XX_dwi.nii.gz (+ .bval, .bvec, .json)
    sub-XX/dwi/sub-XX_ADC.nii.gz            scanner-style ADC, µm²/ms (if computed)
    derivatives/phantom/dataset_description.json
    derivatives/phantom/dseg.tsv            label index → name
    derivatives/phantom/sub-XX/anat/sub-XX_dseg.nii.gz, sub-XX_label-nucleus_mask.nii.gz,
        sub-XX_label-posterior_mask.nii.gz (posterior elements of the vertebrae)
    derivatives/phantom/sub-XX/dwi/sub-XX_space-dwi_dseg.nii.gz,
        sub-XX_space-dwi_label-nucleus_mask.nii.gz, sub-XX_space-dwi_adctrue.nii.gz
    derivatives/phantom/sub-XX/sub-XX_truth.json

With ``format="dicom"`` the images are DICOM under ``dicom/sub-XX/`` and the
``derivatives/phantom/`` truth is written as above (NIfTI, in the same world space).

Files are written to a temporary folder and moved into place at the end, so a failure
leaves nothing half-written.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from discquant.io.study import Volume
from discquant.jsonfiles import dumps_strict
from discquant.phantom import tissue as T
from discquant.phantom.anatomy import ALL_DISCS, CORD_LABEL, VERTEBRA_LABELS, disc_label
from discquant.phantom.study import PhantomStudy
from discquant.results import CANAL_LABEL, SACRUM_LABEL


def dseg_rows() -> list[tuple[int, str]]:
    """Label index and name of every label the phantom can produce (VerSe/SPINEPS)."""
    rows = [(v, k) for k, v in VERTEBRA_LABELS.items()]
    rows.append((SACRUM_LABEL, "S"))
    rows.append((CORD_LABEL, "spinal_cord"))
    rows.append((CANAL_LABEL, "spinal_canal"))
    rows += [(disc_label(lvl), lvl) for lvl in ALL_DISCS]
    return sorted(rows)


def _nifti(vol: Volume, path: Path, dtype: type) -> None:
    import nibabel as nib

    data = np.asarray(vol.data)
    if np.issubdtype(dtype, np.integer) and np.issubdtype(data.dtype, np.floating):
        # scanner-like integer storage with an exact power-of-two slope
        top = float(np.nanmax(np.abs(data))) if data.size else 1.0
        slope = 2.0 ** np.ceil(np.log2(max(top, 1e-6) / 30000.0))
        stored = np.round(np.nan_to_num(data) / slope).astype(dtype)
        img = nib.Nifti1Image(stored, vol.affine)
        img.header.set_slope_inter(slope, 0.0)
    else:
        img = nib.Nifti1Image(data.astype(dtype), vol.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(vol.affine, code=1)
    img.header.set_sform(vol.affine, code=1)
    img.to_filename(str(path))


def _json(obj: Any, path: Path) -> None:
    """Strict JSON: NaN (a region the phantom does not have) is written as null."""
    path.write_text(dumps_strict(obj, indent=2, sort_keys=True) + "\n")


def _sidecar(study: PhantomStudy, kind: str) -> dict[str, Any]:
    base = {
        "Manufacturer": "discquant",
        "ManufacturersModelName": "lumbar phantom",
        "MagneticFieldStrength": 1.5,
        "ImageOrientation": "sagittal",
        "PhaseEncodingDirection": "j",
        "PhantomSeed": study.seed,
    }
    if kind == "t2":
        base.update(
            SeriesDescription="T2 TSE SAG (phantom)",
            RepetitionTime=T.T2_TR_MS / 1000.0,
            EchoTime=T.T2_TE_MS / 1000.0,
            SliceThickness=study.t2.voxel_mm[2],
        )
    else:
        base.update(
            SeriesDescription="DWI EPI SAG (phantom)",
            RepetitionTime=T.DWI_TR_MS / 1000.0,
            EchoTime=T.DWI_TE_MS / 1000.0,
            SliceThickness=study.dwi.voxel_mm[2],
            DiffusionScheme=study.config.diffusion,
            FatSuppression=True,
        )
    return base


def write_nifti(
    study: PhantomStudy, out_dir: str | Path, *, subject: str = "01", images: bool = True
) -> list[Path]:
    """Write the BIDS-style NIfTI form of ``study`` under ``out_dir``; returns the paths.

    The truth (label maps, nucleus masks, true ADC, ``*_truth.json``) goes under
    ``derivatives/phantom/``; with ``images=False`` only the truth is written (beside a
    study written as DICOM)."""
    out = Path(out_dir)
    sub = f"sub-{subject}"
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".phantom-", dir=out))
    try:
        written = _write_nifti_tree(study, tmp, sub, images=images)
        final = []
        for rel in written:
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).replace(dst)
            final.append(dst)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_nifti_tree(study: PhantomStudy, root: Path, sub: str, *, images: bool) -> list[Path]:
    rels: list[Path] = []

    def p(*parts: str) -> Path:
        rel = Path(*parts)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        rels.append(rel)
        return root / rel

    if images:
        _write_images(study, sub, p)
    _write_truth(study, sub, p)
    return rels


def _write_images(study: PhantomStudy, sub: str, p: Callable[..., Path]) -> None:
    _json(
        {"Name": "discquant lumbar phantom", "BIDSVersion": "1.9.0", "DatasetType": "raw"},
        p("dataset_description.json"),
    )
    _nifti(study.t2, p(sub, "anat", f"{sub}_T2w.nii.gz"), np.int16)
    _json(_sidecar(study, "t2"), p(sub, "anat", f"{sub}_T2w.json"))
    _nifti(study.dwi, p(sub, "dwi", f"{sub}_dwi.nii.gz"), np.int16)
    _json(_sidecar(study, "dwi"), p(sub, "dwi", f"{sub}_dwi.json"))
    p(sub, "dwi", f"{sub}_dwi.bval").write_text(" ".join(f"{b:g}" for b in study.bvals) + "\n")
    bvec = np.asarray(study.bvecs, dtype=float).T
    p(sub, "dwi", f"{sub}_dwi.bvec").write_text(
        "\n".join(" ".join(f"{v:g}" for v in row) for row in bvec) + "\n"
    )
    if study.adc_scanner is not None:
        _nifti(study.adc_scanner, p(sub, "dwi", f"{sub}_ADC.nii.gz"), np.float32)


def _write_truth(study: PhantomStudy, sub: str, p: Callable[..., Path]) -> None:
    d = ("derivatives", "phantom")
    _json(
        {
            "Name": "discquant phantom truth",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "discquant.phantom"}],
        },
        p(*d, "dataset_description.json"),
    )
    p(*d, "dseg.tsv").write_text("index\tname\n" + "".join(f"{i}\t{n}\n" for i, n in dseg_rows()))
    _nifti(study.labels_t2, p(*d, sub, "anat", f"{sub}_dseg.nii.gz"), np.int16)
    _nifti(study.nucleus_t2, p(*d, sub, "anat", f"{sub}_label-nucleus_mask.nii.gz"), np.uint8)
    if study.posterior_t2 is not None:
        _nifti(
            study.posterior_t2, p(*d, sub, "anat", f"{sub}_label-posterior_mask.nii.gz"), np.uint8
        )
    _nifti(study.labels_dwi, p(*d, sub, "dwi", f"{sub}_space-dwi_dseg.nii.gz"), np.int16)
    _nifti(
        study.nucleus_dwi, p(*d, sub, "dwi", f"{sub}_space-dwi_label-nucleus_mask.nii.gz"), np.uint8
    )
    _nifti(study.adc_true_dwi, p(*d, sub, "dwi", f"{sub}_space-dwi_adctrue.nii.gz"), np.float32)
    _json(study.truth.to_dict(), p(*d, sub, f"{sub}_truth.json"))


def subject_folders(out_dir: str | Path, subject: str) -> list[Path]:
    """Every folder :func:`write_study` may write a subject's files in, whatever the
    format: its NIfTI images, its truth and its DICOM (alone or as source data)."""
    out, sub = Path(out_dir), f"sub-{subject}"
    return [
        out / sub,
        out / "derivatives" / "phantom" / sub,
        out / "dicom" / sub,
        out / "sourcedata" / "dicom" / sub,
    ]


def write_study(
    study: PhantomStudy, out_dir: str | Path, *, subject: str = "01", format: str = "nifti"
) -> list[Path]:
    """Write ``study`` as BIDS-style NIfTI, DICOM, or both.

    Parameters
    ----------
    study
        From :func:`~discquant.phantom.generate_study`.
    out_dir
        Root folder (created). NIfTI goes in the BIDS tree, the truth under
        ``derivatives/phantom/`` (with every format). DICOM goes under
        ``dicom/sub-XX/``, or with ``"both"`` under ``sourcedata/dicom/sub-XX/``, where
        BIDS keeps a dataset's source data (a ``dicom/`` folder beside the subjects
        became a failed study of ``discquant cohort``).
    subject
        BIDS subject label (letters and digits).
    format
        ``"nifti"``, ``"dicom"`` or ``"both"``.

    Returns
    -------
    list of Path
        Every file written.
    """
    if format not in ("nifti", "dicom", "both"):
        raise ValueError(f"format must be nifti, dicom or both, got {format!r}")
    if not subject.isalnum():
        raise ValueError(f"subject label must be alphanumeric, got {subject!r}")
    paths: list[Path] = []
    if format in ("nifti", "both"):
        paths += write_nifti(study, out_dir, subject=subject)
    if format in ("dicom", "both"):
        from discquant.phantom.dicom import write_dicom

        root = Path(out_dir) / ("sourcedata" if format == "both" else "") / "dicom"
        paths += write_dicom(study, root / f"sub-{subject}", subject=subject)
        if format == "dicom":  # the truth, as NIfTI (its label maps are in world space)
            paths += write_nifti(study, out_dir, subject=subject, images=False)
    return paths
