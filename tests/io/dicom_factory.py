"""Write small, fully known DICOM MR studies with pydicom, for import tests.

The study imitates a clinical lumbar protocol on a 32×32 grid: a sagittal T2 TSE, a
sagittal diffusion series with trace-weighted images at b = 0/400/800 s/mm², the
scanner's ADC map (``DERIVED\\PRIMARY\\DIFFUSION\\ADC``, integers in 10⁻⁶ mm²/s), and
optionally an axial T2 and a 3-plane localizer. Only standard (vendor-independent)
tags are used: diffusion weighting is in (0018,9087) DiffusionBValue and
(0018,9075) DiffusionDirectionality, so the files test the importer, not a vendor quirk.

Every value written is returned in :class:`WrittenStudy` so tests compare against
truth. Patient fields are set to distinctive strings so privacy tests can search for
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

PHI = {
    "PatientName": "Zyxwvut^Qpfrmlk",
    "PatientID": "PIDX-8675309-Q",
    "PatientBirthDate": "19230417",
    "AccessionNumber": "ACCX-5551234",
}
"""Distinctive identifying values written into every file (searched for by privacy tests)."""

SAGITTAL_IOP = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
"""Rows run anterior→posterior, columns superior→inferior: slice normal along L-R."""
AXIAL_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL_IOP = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


@dataclass
class WrittenSeries:
    """What one written series holds, for comparison with the importer's result."""

    folder: Path
    files: list[Path]
    series_number: int
    description: str
    series_instance_uid: str
    sop_instance_uids: list[str]
    shape: tuple[int, int, int]
    """Rows, columns, slices of one volume."""
    bvals: list[float] = field(default_factory=list)
    stored: npt.NDArray[np.int64] | None = None
    """Stored integer pixel values, (rows, cols, slices[, volumes])."""


@dataclass
class WrittenStudy:
    root: Path
    study_instance_uid: str
    frame_of_reference_uid: str
    series: dict[str, WrittenSeries]
    adc_mm2_per_s: npt.NDArray[np.float64]
    """True ADC on the DWI grid (rows, cols, slices), in mm²/s."""


def _base_dataset(
    *,
    study_uid: str,
    series_uid: str,
    frame_uid: str,
    series_number: int,
    description: str,
    phi: dict[str, str],
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = "DiscquantTest"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.StudyDate = "20240102"
    ds.SeriesDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.MagneticFieldStrength = 1.5
    ds.BodyPartExamined = "LSPINE"
    ds.PatientSex = "F"
    ds.PatientAge = "047Y"
    for key, value in phi.items():
        setattr(ds, key, value)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    return ds


def _write_file(ds: Dataset, path: Path) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def write_series(
    folder: Path,
    images: npt.NDArray[np.integer],
    *,
    description: str,
    series_number: int,
    study_uid: str,
    frame_uid: str,
    iop: Sequence[float] = SAGITTAL_IOP,
    origin_lps: Sequence[float] = (-20.0, -60.0, 60.0),
    pixel_mm: float = 4.0,
    slice_mm: float = 4.0,
    slice_positions_mm: Sequence[float] | None = None,
    echo_ms: float = 100.0,
    repetition_ms: float = 4000.0,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "M", "ND"),
    bvals: Sequence[float] | None = None,
    image_type_per_volume: Sequence[Sequence[str]] | None = None,
    phi: dict[str, str] | None = None,
    file_prefix: str = "IM",
) -> WrittenSeries:
    """Write one classic (one file per slice) MR series.

    Parameters
    ----------
    images
        Unsigned integers, shape ``(rows, cols, slices)`` or ``(rows, cols, slices, volumes)``.
    slice_positions_mm
        Offsets along the slice normal; default ``slice_mm * arange(slices)``. Give uneven
        offsets to write a series with inconsistent slice spacing.
    bvals
        One b-value per volume: written as (0018,9087) DiffusionBValue, with
        DiffusionDirectionality ``NONE`` at b = 0 and ``ISOTROPIC`` (trace) otherwise.
    """
    data = np.asarray(images)
    if data.ndim == 3:
        data = data[..., None]
    rows, cols, n_slices, n_vols = data.shape
    iop_arr = np.asarray(iop, dtype=float)
    normal = np.cross(iop_arr[:3], iop_arr[3:])
    offsets = (
        np.arange(n_slices) * slice_mm
        if slice_positions_mm is None
        else np.asarray(slice_positions_mm, dtype=float)
    )
    series_uid = generate_uid()
    files: list[Path] = []
    sops: list[str] = []
    instance = 0
    for v in range(n_vols):
        for k in range(n_slices):
            instance += 1
            ds = _base_dataset(
                study_uid=study_uid,
                series_uid=series_uid,
                frame_uid=frame_uid,
                series_number=series_number,
                description=description,
                phi=PHI if phi is None else phi,
            )
            ds.SOPInstanceUID = generate_uid()
            ds.InstanceNumber = instance
            ds.AcquisitionNumber = 1
            ds.ImageOrientationPatient = [float(x) for x in iop_arr]
            pos = np.asarray(origin_lps, dtype=float) + offsets[k] * normal
            ds.ImagePositionPatient = [round(float(x), 4) for x in pos]
            ds.SliceLocation = round(float(offsets[k]), 4)
            ds.PixelSpacing = [pixel_mm, pixel_mm]
            ds.SliceThickness = slice_mm
            ds.SpacingBetweenSlices = slice_mm
            ds.Rows = rows
            ds.Columns = cols
            ds.EchoTime = echo_ms
            ds.RepetitionTime = repetition_ms
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "SK"
            ds.MRAcquisitionType = "2D"
            types = image_type if image_type_per_volume is None else image_type_per_volume[v]
            ds.ImageType = list(types)
            if bvals is not None:
                ds.add_new((0x0018, 0x9087), "FD", float(bvals[v]))
                ds.add_new((0x0018, 0x9075), "CS", "NONE" if bvals[v] == 0 else "ISOTROPIC")
                ds.AcquisitionNumber = v + 1
            ds.PixelData = np.ascontiguousarray(data[:, :, k, v], dtype=np.uint16).tobytes()
            path = folder / f"{file_prefix}{instance:04d}"
            _write_file(ds, path)
            files.append(path)
            sops.append(ds.SOPInstanceUID)
    return WrittenSeries(
        folder=folder,
        files=files,
        series_number=series_number,
        description=description,
        series_instance_uid=series_uid,
        sop_instance_uids=sops,
        shape=(rows, cols, n_slices),
        bvals=[] if bvals is None else [float(b) for b in bvals],
        stored=data.astype(np.int64),
    )


def write_lumbar_study(
    root: Path,
    *,
    size: int = 32,
    t2_slices: int = 5,
    dwi_slices: int = 3,
    bvals: Sequence[float] = (0.0, 400.0, 800.0),
    with_axial: bool = False,
    with_localizer: bool = False,
    phi: dict[str, str] | None = None,
    seed: int = 0,
) -> WrittenStudy:
    """Write a small lumbar study under ``root`` (nested folders, opaque file names).

    The disc-like region in the middle of the DWI grid has ADC 1.6×10⁻³ mm²/s, the rest
    0.5×10⁻³ mm²/s (bone-like); b = 0 signal 1000 plus noise-free decay, so the ADC map's
    stored integers are ``round(ADC·10⁶)``.
    """
    rng = np.random.default_rng(seed)
    study_uid = generate_uid()
    frame_uid = generate_uid()
    written: dict[str, WrittenSeries] = {}

    t2 = rng.integers(100, 1500, size=(size, size, t2_slices))
    written["t2"] = write_series(
        root / "a" / "b" / "s0003",
        t2,
        description="T2_TSE_SAG",
        series_number=3,
        study_uid=study_uid,
        frame_uid=frame_uid,
        pixel_mm=1.0,
        slice_mm=4.0,
        echo_ms=100.0,
        repetition_ms=4000.0,
        phi=phi,
    )

    adc = np.full((size, size, dwi_slices), 0.5e-3)
    c = size // 2
    adc[c - 4 : c + 4, c - 8 : c + 8, :] = 1.6e-3
    s0 = 1000.0
    dwi = np.stack([np.rint(s0 * np.exp(-b * adc)) for b in bvals], axis=-1)
    types = [
        ("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE")
        if b == 0
        else ("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW")
        for b in bvals
    ]
    written["dwi"] = write_series(
        root / "a" / "s0005",
        dwi,
        description="ep2d_diff_tra_sag b0 400 800",
        series_number=5,
        study_uid=study_uid,
        frame_uid=frame_uid,
        pixel_mm=2.0,
        slice_mm=4.0,
        echo_ms=70.0,
        repetition_ms=3000.0,
        bvals=bvals,
        image_type_per_volume=types,
        phi=phi,
    )
    written["adc"] = write_series(
        root / "c" / "s0006",
        np.rint(adc * 1e6),
        description="ep2d_diff_tra_sag_ADC",
        series_number=6,
        study_uid=study_uid,
        frame_uid=frame_uid,
        pixel_mm=2.0,
        slice_mm=4.0,
        echo_ms=70.0,
        repetition_ms=3000.0,
        image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"),
        phi=phi,
    )
    if with_axial:
        written["axial"] = write_series(
            root / "c" / "s0007",
            rng.integers(100, 1500, size=(size, size, 3)),
            description="T2_TSE_TRA",
            series_number=7,
            study_uid=study_uid,
            frame_uid=frame_uid,
            iop=AXIAL_IOP,
            origin_lps=(-60.0, -60.0, 0.0),
            pixel_mm=1.0,
            slice_mm=4.0,
            phi=phi,
        )
    if with_localizer:
        written["localizer"] = write_series(
            root / "loc",
            rng.integers(100, 1500, size=(size, size, 1)),
            description="localizer",
            series_number=1,
            study_uid=study_uid,
            frame_uid=frame_uid,
            iop=CORONAL_IOP,
            origin_lps=(-60.0, 0.0, 60.0),
            pixel_mm=4.0,
            slice_mm=8.0,
            echo_ms=2.0,
            repetition_ms=8.0,
            phi=phi,
        )
    return WrittenStudy(
        root=root,
        study_instance_uid=study_uid,
        frame_of_reference_uid=frame_uid,
        series=written,
        adc_mm2_per_s=adc,
    )


def write_enhanced(folder: Path, classic: WrittenSeries, *, series_number: int = 90) -> Path:
    """Re-encode a classic series as one Legacy Converted Enhanced MR multi-frame file.

    highdicom builds the per-frame functional groups (positions, orientation) from the
    classic files, so the multi-frame object has the same geometry and pixel values.
    """
    import highdicom as hd
    import pydicom

    datasets = [pydicom.dcmread(f) for f in classic.files]
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        datasets,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "multiframe"
    enhanced.save_as(path)
    return path
