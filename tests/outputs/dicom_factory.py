"""A tiny sagittal T2 DICOM series made with pydicom, with geometry written out by hand.

Sagittal slices: ImageOrientationPatient = [0, 1, 0, 0, 0, -1], i.e. columns run posterior
(LPS +y) and rows run inferior (LPS -z); slices step towards the patient's left (LPS +x).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

ROW_DIR_LPS = np.array([0.0, 1.0, 0.0])  # direction of increasing column index
COL_DIR_LPS = np.array([0.0, 0.0, -1.0])  # direction of increasing row index
SLICE_DIR_LPS = np.cross(ROW_DIR_LPS, COL_DIR_LPS)  # = +x (towards the left)

PHI = {
    "PatientName": "Doe^Jane",
    "PatientID": "PHI-12345",
    "PatientBirthDate": "19700101",
    "AccessionNumber": "ACC-98765",
}


def make_sagittal_t2_series(
    pixels: npt.NDArray[np.uint16],
    *,
    pixel_mm: float = 2.0,
    slice_mm: float = 4.0,
    origin_lps: tuple[float, float, float] = (-8.0, -60.0, 100.0),
) -> list[Dataset]:
    """One single-frame MR dataset per slice of ``pixels`` (shape: slices, rows, columns)."""
    n, rows, cols = pixels.shape
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        sop = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        for key, value in PHI.items():
            setattr(ds, key, value)
        ds.PatientSex = "F"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame_of_reference
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop
        ds.StudyID, ds.StudyDate, ds.StudyTime = "1", "20240101", "120000"
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.Manufacturer = "MR", "TestVendor"
        ds.SeriesNumber, ds.InstanceNumber = 3, k + 1
        ds.SeriesDescription = "T2 TSE SAG"
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ipp = np.asarray(origin_lps) + k * slice_mm * SLICE_DIR_LPS
        ds.ImagePositionPatient = [float(v) for v in ipp]
        ds.ImageOrientationPatient = [float(v) for v in (*ROW_DIR_LPS, *COL_DIR_LPS)]
        ds.PixelSpacing = [pixel_mm, pixel_mm]
        ds.SliceThickness = slice_mm
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(pixels[k], dtype=np.uint16).tobytes()
        out.append(ds)
    return out


def storage_affine_ras(
    *,
    pixel_mm: float = 2.0,
    slice_mm: float = 4.0,
    origin_lps: tuple[float, float, float] = (-8.0, -60.0, 100.0),
) -> npt.NDArray[np.float64]:
    """Voxel ``(column, row, slice)`` -> RAS+ mm for :func:`make_sagittal_t2_series`."""
    m = np.eye(4)
    m[:3, 0] = ROW_DIR_LPS * pixel_mm
    m[:3, 1] = COL_DIR_LPS * pixel_mm
    m[:3, 2] = SLICE_DIR_LPS * slice_mm
    m[:3, 3] = origin_lps
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ m


def lps_of_pixel(ds: Dataset, row: int, col: int) -> npt.NDArray[np.float64]:
    """Patient position (LPS mm) of one pixel centre, straight from PS3.3 C.7.6.2.1.1."""
    ipp = np.asarray(ds.ImagePositionPatient, dtype=float)
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    return ipp + iop[:3] * dc * col + iop[3:] * dr * row
