"""Write a phantom study as classic DICOM MR Image Storage series (one file per slice).

Three series share one StudyInstanceUID and FrameOfReferenceUID: the sagittal T2 TSE,
the DWI (b-value in (0018,9087) DiffusionBValue, (0018,9075) DiffusionDirectionality
NONE / ISOTROPIC / DIRECTIONAL, and for directional images the (0018,9076)
DiffusionGradientDirectionSequence with (0018,9089) DiffusionGradientOrientation in
patient LPS), and the scanner-style ADC map (ImageType ``DERIVED\\PRIMARY\\DIFFUSION\\ADC``,
integers in 10⁻⁶ mm²/s). Only standard tags are used, so dcm2niix reads them without a
vendor rule. UIDs are derived from the seed and subject, so the files are byte-identical
for the same seed. Patient data are synthetic (``PHANTOM^SYNTHETIC``, ID ``PH`` + a
checksum of the subject label).
"""

from __future__ import annotations

import shutil
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from discquant.io.study import Volume
from discquant.phantom import tissue as T
from discquant.phantom.study import PhantomStudy

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["discquant-phantom", *(str(p) for p in parts)])


def _study_key(study: PhantomStudy) -> str:
    """Seed and configuration: two studies of one seed with different settings (SNR,
    diffusion mode, ...) hold different pixels and must not share UIDs."""
    return f"{study.seed}:{study.config!r}"


def _geometry(vol: Volume) -> tuple[list[float], list[float], list[list[float]]]:
    """ImageOrientationPatient, PixelSpacing and per-slice ImagePositionPatient (LPS)."""
    a = vol.affine
    col_dir = RAS_TO_LPS @ a[:3, 1]  # along a row: increasing column index (axis 1)
    row_dir = RAS_TO_LPS @ a[:3, 0]  # down a column: increasing row index (axis 0)
    dc, dr = float(np.linalg.norm(col_dir)), float(np.linalg.norm(row_dir))
    iop = [round(float(v), 6) for v in (*(col_dir / dc), *(row_dir / dr))]
    ipps = []
    for k in range(vol.shape[2]):
        ras = a @ np.array([0.0, 0.0, float(k), 1.0])
        ipps.append([round(float(v), 4) for v in RAS_TO_LPS @ ras[:3]])
    return iop, [round(dr, 6), round(dc, 6)], ipps


def _base(study: PhantomStudy, subject: str, *, series: int, description: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = "discquant"
    ds.ManufacturerModelName = "lumbar phantom"
    ds.InstitutionName = "synthetic"
    # Synthetic, and apart from the subject label: `analyze` refuses a label that holds
    # the patient's name or ID (as a real one named after the patient would).
    ds.PatientName = "PHANTOM^SYNTHETIC"
    ds.PatientID = f"PH{zlib.crc32(subject.encode()):010d}"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.AccessionNumber = ""
    ds.StudyInstanceUID = _uid(_study_key(study), subject, "study")
    ds.SeriesInstanceUID = _uid(_study_key(study), subject, "series", series)
    ds.FrameOfReferenceUID = _uid(_study_key(study), subject, "frame")
    ds.StudyDate = "20000101"
    ds.SeriesDate = "20000101"
    ds.StudyTime = "120000"
    ds.SeriesTime = f"12{series:02d}00"
    ds.StudyID = "1"
    ds.SeriesNumber = series
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.BodyPartExamined = "LSPINE"
    ds.PatientPosition = "HFS"
    ds.MagneticFieldStrength = 1.5
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.MRAcquisitionType = "2D"
    return ds


def _save(ds: Dataset, path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
    meta.ImplementationVersionName = "DISCQUANT"
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)


def _write_series(
    study: PhantomStudy,
    subject: str,
    folder: Path,
    vol: Volume,
    stored: np.ndarray,
    *,
    series: int,
    description: str,
    image_type: Sequence[str],
    slope: float,
    te_ms: float,
    tr_ms: float,
    bvals: Sequence[float] | None = None,
    bvecs_lps: np.ndarray | None = None,
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    iop, spacing, ipps = _geometry(vol)
    data = stored if stored.ndim == 4 else stored[..., None]
    n_slices, n_vols = data.shape[2], data.shape[3]
    normal = np.cross(iop[:3], iop[3:])
    paths = []
    inst = 0
    for v in range(n_vols):
        for k in range(n_slices):
            inst += 1
            ds = _base(study, subject, series=series, description=description)
            ds.SOPInstanceUID = _uid(_study_key(study), subject, "sop", series, v, k)
            ds.InstanceNumber = inst
            ds.AcquisitionNumber = v + 1
            ds.ImageType = list(image_type)
            ds.ImageOrientationPatient = iop
            ds.ImagePositionPatient = ipps[k]
            ds.SliceLocation = round(float(np.dot(normal, ipps[k])), 4)
            ds.PixelSpacing = spacing
            ds.SliceThickness = round(vol.voxel_mm[2], 6)
            ds.SpacingBetweenSlices = round(vol.voxel_mm[2], 6)
            ds.Rows, ds.Columns = int(data.shape[0]), int(data.shape[1])
            ds.EchoTime = te_ms
            ds.RepetitionTime = tr_ms
            ds.ScanningSequence = "SE" if bvals is None else ["SE", "EP"]
            ds.SequenceVariant = "SK"
            ds.RescaleIntercept = 0
            ds.RescaleSlope = slope
            ds.InPlanePhaseEncodingDirection = "ROW"  # anterior-posterior
            ds.FlipAngle = 90
            ds.NumberOfAverages = 1
            ds.ImagingFrequency = 63.87
            ds.ImagedNucleus = "1H"
            if bvals is not None:
                b = float(bvals[v])
                ds.add_new((0x0018, 0x9087), "FD", b)
                vec = None if bvecs_lps is None else bvecs_lps[v]
                if b <= 0:
                    ds.add_new((0x0018, 0x9075), "CS", "NONE")
                elif vec is None or not np.any(vec):
                    ds.add_new((0x0018, 0x9075), "CS", "ISOTROPIC")
                else:
                    ds.add_new((0x0018, 0x9075), "CS", "DIRECTIONAL")
                    item = Dataset()
                    item.add_new((0x0018, 0x9089), "FD", [float(x) for x in vec])
                    ds.add_new((0x0018, 0x9076), "SQ", DicomSequence([item]))
            ds.PixelData = np.ascontiguousarray(data[:, :, k, v], dtype=np.uint16).tobytes()
            path = folder / f"IM{series:02d}{inst:05d}.dcm"
            _save(ds, path)
            paths.append(path)
    return paths


def _to_uint16(data: np.ndarray) -> tuple[np.ndarray, float]:
    """Stored integers and the RescaleSlope (a power of two) for non-negative data."""
    top = float(np.nanmax(data)) if data.size else 1.0
    slope = float(2.0 ** np.ceil(np.log2(max(top, 1e-6) / 60000.0)))
    return np.clip(np.round(np.nan_to_num(data) / slope), 0, 65535).astype(np.uint16), slope


def write_dicom(study: PhantomStudy, out_dir: str | Path, *, subject: str = "01") -> list[Path]:
    """Write T2, DWI and (if present) ADC series under ``out_dir``; returns the files.

    The files are written to a temporary folder first and moved into place, so nothing
    half-written is left behind on failure.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dicom-", dir=out))
    try:
        written: list[Path] = []
        t2_stored, t2_slope = _to_uint16(np.asarray(study.t2.data))
        written += _write_series(
            study, subject, tmp / "T2_TSE_SAG", study.t2, t2_stored,
            series=2, description="T2 TSE SAG", image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
            slope=t2_slope, te_ms=T.T2_TE_MS, tr_ms=T.T2_TR_MS,
        )  # fmt: skip
        dwi_stored, dwi_slope = _to_uint16(np.asarray(study.dwi.data))
        # bvecs are along the voxel axes (I, P, R): map them to patient LPS directions
        a = study.dwi.affine[:3, :3]
        dirs = a / np.linalg.norm(a, axis=0)
        bvecs_lps = np.asarray(
            [RAS_TO_LPS @ (dirs @ np.asarray(v, dtype=float)) for v in study.bvecs]
        )
        trace = study.config.diffusion == "trace"
        written += _write_series(
            study, subject, tmp / "DWI_EPI_SAG", study.dwi, dwi_stored,
            series=3, description="DWI EPI SAG" + (" TRACEW" if trace else ""),
            image_type=("ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW" if trace else "NONE"),
            slope=dwi_slope, te_ms=T.DWI_TE_MS, tr_ms=T.DWI_TR_MS,
            bvals=[float(b) for b in study.bvals], bvecs_lps=bvecs_lps,
        )  # fmt: skip
        if study.adc_scanner is not None and study.adc_scanner_stored is not None:
            written += _write_series(
                study, subject, tmp / "DWI_EPI_SAG_ADC", study.adc_scanner,
                study.adc_scanner_stored, series=4, description="DWI EPI SAG_ADC",
                image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"),
                slope=1.0, te_ms=T.DWI_TE_MS, tr_ms=T.DWI_TR_MS,
            )  # fmt: skip
        final = []
        for p in written:
            dst = out / p.relative_to(tmp)
            dst.parent.mkdir(parents=True, exist_ok=True)
            p.replace(dst)
            final.append(dst)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
