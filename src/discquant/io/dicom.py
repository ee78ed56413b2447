"""DICOM folder → NIfTI + sidecars with dcm2niix, keeping per-series provenance.

The conversion itself (vendor b-value conventions, mosaics, enhanced multi-frame,
Philips volume order) is dcm2niix's, called as the binary shipped in the ``dcm2niix``
PyPI wheel. What this module adds around it:

1. a pydicom header pass over the whole tree (any depth, any file names), which groups
   files by SeriesInstanceUID, keeps the UIDs that DICOM outputs must reference, finds
   truncated files, and checks slice spacing along the slice normal;
2. staging: each series' files are linked (or, when gzip'd, decompressed: dcm2niix does
   not read gzip'd DICOM, it reports "Unable to find any DICOM images") into a folder
   of their own in a temporary directory, and dcm2niix converts one series per call, so
   every output maps back to exactly one source series;
3. merging the pieces dcm2niix splits one diffusion series into (b = 0 ``ORIGINAL``
   images and ``DERIVED\\TRACEW`` images at b > 0 end up in separate files).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from discquant.errors import (
    ConversionStoppedError,
    DicomConversionError,
    DiscquantError,
    InputNotFoundError,
    InvalidInputError,
)
from discquant.io.dicom_check import misplaced_image
from discquant.io.nifti import RawImage, is_nifti, load_nifti, merge_diffusion_pieces
from discquant.io.privacy import (
    header_description_tokens,
    identifier_tokens,
    is_placeholder,
    redact_identifiers,
    redact_sidecar_descriptions,
    shown_path,
    withhold_uids,
)
from discquant.io.study import SERIES_SKIPPED, Provenance

log = logging.getLogger(__name__)

_SIDECAR_EXTS = (".json", ".bval", ".bvec")
_DOCUMENT_EXTS = frozenset(
    {".txt", ".md", ".pdf", ".htm", ".html", ".xml", ".csv", ".tsv", ".log", ".yaml",
     ".yml", ".ini", ".inf", ".exe", ".dll", ".bat", ".sh", ".js", ".css", ".jpg",
     ".jpeg", ".png", ".gif", ".bmp", ".ico", ".svg"}
)  # fmt: skip
"""Suffixes of files that are plainly no DICOM (a CD's README, viewer and autorun, an
earlier analysis' report): passed by without a word. Any other file without the DICM
prefix is counted in one warning (:func:`_report_not_dicom`)."""
_ARCHIVE_SUFFIXES = (".zip", ".7z", ".rar", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")
"""Archives, which may hold the study's images: not read, and said (a zip beside the T2
holding the DWI was passed by without a word, as a document; an audit)."""
_GZIP_MAGIC = b"\x1f\x8b"
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."
_PARAMETRIC_MAP_NAME = "Parametric Map Storage"
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
"""The elements that hold an image's pixels: integers, or 32/64-bit floats (Parametric
Map Storage, e.g. a scanner's ADC map in mm²/s)."""
_FLOAT_BITS = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}
_NON_IMAGE_FAMILIES = frozenset({"9", "11", "66", "88", "104", "481"})
"""Storage SOP class families (the component after ``1.2.840.10008.5.1.4.1.1.``) that
hold no image: waveforms, presentation states, segmentations/registrations/raw data,
structured reports and key-object selections, encapsulated documents, RT objects. Used
for classes newer than pydicom's dictionary (e.g. Label Map Segmentation)."""
SPACING_TOLERANCE_MM = 0.05
SPACING_TOLERANCE_REL = 0.05
"""A gap between neighbouring slice positions differing from the median gap by more
than max(0.05 mm, 5 %) makes the spacing inconsistent (a missing slice is +100 %)."""

SHEAR_TOLERANCE_MM = 0.1
"""Slices whose positions drift more than this in their own plane (along the rows or
columns), from the first slice of the stack, are not stacked along their normal: a
sheared stack, which dcm2niix places as if unsheared (its affine takes the first
slice's in-plane position for all), so that the masks and the DICOM SEG lay up to 7 mm
off the anatomy (an audit)."""


def dcm2niix_binary() -> str:
    """Path of the dcm2niix executable shipped in the ``dcm2niix`` wheel."""
    try:
        import dcm2niix

        path = Path(dcm2niix.bin)
        if path.is_file():
            return str(path)
    except ImportError:  # pragma: no cover - it is a hard dependency
        pass
    import shutil
    import sys

    found = shutil.which("dcm2niix", path=str(Path(sys.executable).parent)) or shutil.which(
        "dcm2niix"
    )
    if found is None:  # pragma: no cover
        raise DicomConversionError("dcm2niix executable not found; reinstall discquant")
    return found


@dataclass
class _Slice:
    orientation: tuple[float, ...]
    position: tuple[float, float, float]
    matrix: tuple[int, int] | None = None
    """Rows and Columns of the file's images; None where the header lacks them."""


@dataclass
class _DicomSeries:
    uid: str
    number: int | None
    description: str
    study_uid: str | None
    frame_uid: str | None
    sop_class: str | None
    files: list[Path] = field(default_factory=list)
    """Original paths."""
    readable: list[Path] = field(default_factory=list)
    """What dcm2niix reads: the original, or its decompressed copy."""
    sops: list[str] = field(default_factory=list)
    slices: list[tuple[Path, _Slice]] = field(default_factory=list)
    mosaic: bool = False
    instances: list[int | None] = field(default_factory=list)
    """InstanceNumber of each file, as ``files`` (None where absent)."""
    identifiers: frozenset[str] = frozenset()
    """The patient's ID, name, accession number, other IDs and birth date as label tokens
    (:func:`privacy.identifier_tokens`)."""
    withheld: frozenset[str] = frozenset()
    """What its description withholds: ``identifiers``, the institution's name and the
    header's dates (:func:`privacy.header_description_tokens`)."""
    patient: frozenset[str] = frozenset()
    """Digests of the PatientID and PatientName that are not empty, to tell two patients
    apart without keeping either."""
    accession_number: str = ""
    """The header's own AccessionNumber, for ``--keep-phi`` (dcm2niix's sidecar gives the
    one nested in RequestAttributesSequence where both are present: an audit)."""
    utf8: bool = False
    """Its text is UTF-8 (SpecificCharacterSet ``ISO_IR 192``): see :func:`_undo_double_utf8`."""


@dataclass
class _Scan:
    series: dict[str, _DicomSeries] = field(default_factory=dict)
    truncated: list[tuple[Path, str, str | None]] = field(default_factory=list)
    """Files that cannot be used (truncated, no pixel data, a header that fails a check):
    (file, problem, SeriesInstanceUID if the header got that far)."""
    non_image: dict[str, list[Path]] = field(default_factory=dict)
    """Files of SOP classes that hold no image (SEG, SR, KOS, ...), by class name."""
    duplicates: dict[str, list[tuple[Path, Path]]] = field(default_factory=dict)
    """Files whose SOP Instance UID an earlier file of their series has, by series UID:
    (the copy, the file kept)."""
    first_of: dict[tuple[str, str], Path] = field(default_factory=dict)
    """The first file of each (series UID, SOP Instance UID)."""
    not_dicom: list[Path] = field(default_factory=list)
    """Files without the DICM prefix that could have been images (no document suffix)."""
    archives: list[Path] = field(default_factory=list)
    """Archives (:data:`_ARCHIVE_SUFFIXES`), not read."""
    identifiers: frozenset[str] = frozenset()
    """The identifiers (:func:`_header_identifiers`) of every header read, those of
    unusable files too: a truncated file's name may hold them."""
    n_files: int = 0


def non_image_class(sop_class: str | None) -> str | None:
    """The name of ``sop_class`` when it is a DICOM class that holds no image, else None.

    Image storage classes (MR, enhanced MR, secondary capture, ... "Image Storage") and
    Parametric Map Storage (float maps such as ADC) are images; so are files without a
    SOP class and private classes, which are left for dcm2niix to judge. Everything else
    pydicom knows (Segmentation, SR, presentation states, Key Object Selection, RT
    structures, encapsulated PDF, raw data, ...) is not.
    """
    from pydicom.uid import UID

    if not sop_class:
        return None
    uid = UID(str(sop_class))
    name = uid.name
    if name != str(uid):  # in pydicom's dictionary
        return None if is_image_class(uid) else name
    if str(uid).startswith(_STORAGE_ROOT):
        family = str(uid)[len(_STORAGE_ROOT) :].split(".")[0]
        if family in _NON_IMAGE_FAMILIES:
            return f"non-image SOP class {uid}"
    return None


def is_image_class(sop_class: str | None) -> bool:
    """Whether ``sop_class`` is a DICOM image storage class or Parametric Map Storage.

    Files of these classes must hold pixel data; one without is reported, not ignored.
    Private classes and files without a SOP class are not counted (False).
    """
    from pydicom.uid import UID

    if not sop_class:
        return False
    name = UID(str(sop_class)).name
    return "Image Storage" in name or name == _PARAMETRIC_MAP_NAME


def _head(path: Path) -> tuple[bytes, bool]:
    """The first 132 bytes (decompressed if gzip'd) and whether the file is gzip'd."""
    with path.open("rb") as fh:
        head = fh.read(65536)
    if not head.startswith(_GZIP_MAGIC):
        return head[:132], False
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 132), True
    except zlib.error:
        return b"", True


def _gunzip(path: Path, dest: Path) -> str | None:
    """Decompress ``path`` to ``dest``; a problem string when the stream is damaged.

    zlib's incremental decompressor (not :func:`gzip.open`) so that a truncated stream
    still yields what it holds: the header may name the series the file belonged to.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        with path.open("rb") as fin, dest.open("wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(inflater.decompress(chunk))
            fout.write(inflater.flush())
    except zlib.error as exc:
        return f"gzip stream is damaged ({exc})"
    if not inflater.eof:
        return "gzip stream is truncated (ends before its end marker)"
    return None


def _series_uid_of_partial(path: Path) -> str | None:
    """SeriesInstanceUID from what is left of a damaged file, if its header survived."""
    import pydicom

    try:
        uid = pydicom.dcmread(path, stop_before_pixels=True).get("SeriesInstanceUID")
    except Exception:  # whatever is left may not parse at all
        return None
    return None if uid is None else str(uid)


def _is_dicom(head: bytes) -> bool:
    # Part-10 files carry "DICM" after a 128-byte preamble. Raw data sets without it
    # exist but are rare today; treating them as non-DICOM keeps random files out.
    return len(head) >= 132 and head[128:132] == b"DICM"


def _pixel_keyword(ds: object) -> str | None:
    """The element of ``ds`` that holds its pixels (see ``_PIXEL_KEYWORDS``), if any."""
    import pydicom

    assert isinstance(ds, pydicom.Dataset)
    return next((kw for kw in _PIXEL_KEYWORDS if kw in ds), None)


def _expected_pixel_bytes(ds: object, keyword: str = "PixelData") -> int | None:
    """Bytes the native pixel element ``keyword`` of ``ds`` must hold; None if unknown.

    Unknown when the data may be compressed (an encapsulated transfer syntax) or the
    transfer syntax is private or unknown to pydicom (e.g. Philips'
    ``1.3.46.670589.33.1.4.1``, for which pydicom 3's ``UID.is_compressed`` raises
    ValueError): dcm2niix then judges the file. Float pixel data hold 32 bits
    (FloatPixelData) or 64 bits (DoubleFloatPixelData) per sample; YBR_FULL_422 holds two
    samples per pixel (a complete such file was reported truncated).

    By hand rather than pydicom's ``get_expected_length``, which gives the same sizes on
    complete headers but needs SamplesPerPixel and PhotometricInterpretation (a header
    without them was no longer checked) and logs a warning per file for a NumberOfFrames
    of 0 (a whole series of such files printed one line each).
    """
    import pydicom
    from pydicom.uid import UID

    assert isinstance(ds, pydicom.Dataset)
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None:
        return None
    ts = UID(str(ts))
    if not ts.is_transfer_syntax or ts.is_compressed:
        return None
    try:
        bits = _FLOAT_BITS.get(keyword) or int(ds.BitsAllocated)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        if keyword not in _FLOAT_BITS and ds.get("PhotometricInterpretation") == "YBR_FULL_422":
            samples = 2  # Y for every pixel, Cb and Cr for every second one
        n = int(ds.Rows) * int(ds.Columns) * samples
        n *= int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    return (n * bits + 7) // 8


def _matrix(ds: object) -> tuple[int, int] | None:
    """Rows and Columns of ``ds``; None when either is missing or not a number."""
    import pydicom

    assert isinstance(ds, pydicom.Dataset)
    try:
        return int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        return None


def _geometry(ds: object, path: Path) -> list[tuple[Path, _Slice]]:
    """One entry per frame: (file, orientation, position), classic or enhanced."""
    import pydicom

    assert isinstance(ds, pydicom.Dataset)

    def _plane(item: pydicom.Dataset | None, name: str, attr: str) -> list[float] | None:
        if item is None or name not in item or not item[name].value:
            return None
        value = getattr(item[name].value[0], attr, None)
        return None if value is None else [float(v) for v in value]

    out: list[tuple[Path, _Slice]] = []
    if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
        iop = tuple(round(float(v), 4) for v in ds.ImageOrientationPatient or ())
        ipp = tuple(float(v) for v in ds.ImagePositionPatient or ())
        if len(iop) != 6 or len(ipp) != 3:
            raise ValueError(
                f"ImageOrientationPatient has {len(iop)} values and ImagePositionPatient "
                f"{len(ipp)} (6 and 3 expected)"
            )
        out.append((path, _Slice(iop, (ipp[0], ipp[1], ipp[2]))))
        return _finite(out)
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    shared_iop = _plane(shared, "PlaneOrientationSequence", "ImageOrientationPatient")
    for frame in ds.get("PerFrameFunctionalGroupsSequence", []):
        iop_l = _plane(frame, "PlaneOrientationSequence", "ImageOrientationPatient") or shared_iop
        ipp_l = _plane(frame, "PlanePositionSequence", "ImagePositionPatient")
        if iop_l is None or ipp_l is None:
            continue
        iop = tuple(round(v, 4) for v in iop_l)
        out.append((path, _Slice(iop, (ipp_l[0], ipp_l[1], ipp_l[2]))))
    return _finite(out)


def _finite(slices: list[tuple[Path, _Slice]]) -> list[tuple[Path, _Slice]]:
    """``slices`` when every orientation and position value is a finite number.

    Raises
    ------
    ValueError
        A value is NaN or infinite (a DS of ``nan`` or ``1e999``): the spacing check
        passed NaN by, and numpy warned of overflow on stderr.
    """
    for _, sl in slices:
        if not np.all(np.isfinite([*sl.orientation, *sl.position])):
            raise ValueError("ImageOrientationPatient or ImagePositionPatient is not finite")
    return slices


class _Unusable(Exception):
    """A DICOM file that cannot be used: the problem, and its SeriesInstanceUID if known."""

    def __init__(self, problem: str, uid: str | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.uid = uid


def _scan(paths: list[Path], staging: Path) -> _Scan:
    """Read every DICOM header under ``paths``; stage gzip'd files decompressed.

    A file that fails a check here (truncated, no pixel data, a header value that cannot
    be read) goes to ``_Scan.truncated`` with the problem: it costs that file, or its
    series when the series is incomplete without it, never the whole study.
    """
    import pydicom

    scan = _Scan()
    gz_dir = staging / "gunzip"
    n_gz = 0
    for path in paths:
        if is_nifti(path) or path.suffix.lower() in _SIDECAR_EXTS:
            continue
        scan.n_files += 1
        if path.name.lower().endswith(_ARCHIVE_SUFFIXES):
            scan.archives.append(path)
            continue
        try:
            head, gzipped = _head(path)
        except OSError as exc:  # no permission, a broken link: it may be a slice
            scan.truncated.append((path, f"cannot be read ({exc.strerror or exc})", None))
            continue
        if not head and not gzipped and path.suffix.lower() not in _DOCUMENT_EXTS:
            scan.truncated.append((path, "empty file (0 bytes)", None))  # a failed copy?
            continue
        if not _is_dicom(head):
            if path.suffix.lower() in _DOCUMENT_EXTS:
                log.debug("skipping %s: not DICOM", path)
            else:
                scan.not_dicom.append(path)
            continue
        readable = path
        if gzipped:
            # dcm2niix does not read gzip'd DICOM ("Unable to find any DICOM images"),
            # so they are decompressed into the temporary folder first.
            gz_dir.mkdir(parents=True, exist_ok=True)
            readable = gz_dir / f"{n_gz:06d}.dcm"
            n_gz += 1
            problem = _gunzip(path, readable)
            if problem is not None:
                scan.truncated.append((path, problem, _series_uid_of_partial(readable)))
                continue
        try:
            ds = pydicom.dcmread(readable)
        except Exception as exc:  # pydicom raises many types on damaged files
            scan.truncated.append((path, f"unreadable DICOM header ({exc})", None))
            continue
        not_image: str | None = None
        entry: _DicomSeries | None = None
        try:
            scan.identifiers |= _header_identifiers(ds)
            meta_class = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
            sop_class = ds.get("SOPClassUID", meta_class)
            if sop_class == _DICOMDIR_CLASS:
                continue
            not_image = non_image_class(sop_class)
            if not_image is None:
                entry = _file_series(ds, path, readable, sop_class)
        except _Unusable as exc:
            scan.truncated.append((path, exc.problem, exc.uid))
            continue
        except Exception as exc:  # an odd header costs this file, not the study
            problem = f"header could not be checked ({type(exc).__name__}: {exc})"
            scan.truncated.append((path, problem, _series_uid_or_none(ds)))
            continue
        if not_image is not None:
            # e.g. a DICOM SEG or SR from an earlier analysis stored in the study folder:
            # never an image series (one with "T2" in its description could outrank the
            # real T2). discquant's own are passed by without a word: an output folder
            # inside the study folder warned about them on every rerun (a user trial).
            if ds.get("Manufacturer") != "discquant":
                scan.non_image.setdefault(not_image, []).append(path)
            continue
        if entry is None:
            if sop_class is None and _series_uid_or_none(ds) is None:
                # the DICM prefix but neither a SOP class nor a series: a damaged header
                # (it had been passed by without a word, its series then failing)
                problem = "damaged DICOM header (no SOP class, series or pixel data)"
                scan.truncated.append((path, problem, None))
            continue
        # One image stored twice (a series exported twice, a DICOMDIR's copy beside the
        # loose files): kept once. Both copies reached dcm2niix and the SEG writer, whose
        # "Plane positions must not contain duplicates" failed the SEG, naming no file.
        sop = entry.sops[0]
        if sop:
            kept = scan.first_of.setdefault((entry.uid, sop), path)
            if kept != path:
                scan.duplicates.setdefault(entry.uid, []).append((path, kept))
                continue
        series = scan.series.setdefault(entry.uid, entry)
        if series is not entry:
            series.files.extend(entry.files)
            series.readable.extend(entry.readable)
            series.sops.extend(entry.sops)
            series.slices.extend(entry.slices)
            series.mosaic = series.mosaic or entry.mosaic
            series.instances.extend(entry.instances)
    return scan


def _series_uid_or_none(ds: object) -> str | None:
    """SeriesInstanceUID of ``ds`` as a string; None when absent or unreadable."""
    try:
        uid = getattr(ds, "SeriesInstanceUID", None)
    except Exception:  # a malformed value raises when pydicom converts it
        return None
    return None if uid is None else str(uid)


def _file_series(
    ds: object, path: Path, readable: Path, sop_class: str | None
) -> _DicomSeries | None:
    """The image file ``path`` (read from ``readable``) as a series of that one file.

    Parameters
    ----------
    ds
        The file's pydicom dataset, pixel data included.
    path, readable
        The original file and what dcm2niix reads (its decompressed copy when gzip'd).
    sop_class
        The file's SOP Class UID, already known not to be a non-image class.

    Returns
    -------
    _DicomSeries or None
        None for a file without pixel data that need not have any (no SOP class, or a
        private class).

    Raises
    ------
    _Unusable
        An image-class file without pixel data, pixel data shorter or longer than the
        header implies, no SeriesInstanceUID, or an unreadable plane geometry.
    """
    import pydicom

    assert isinstance(ds, pydicom.Dataset)
    uid = _series_uid_or_none(ds)
    keyword = _pixel_keyword(ds)
    if keyword is None:
        if is_image_class(sop_class):
            raise _Unusable(
                "no pixel data (PixelData, FloatPixelData or DoubleFloatPixelData); "
                "the file may end before it",
                uid,
            )
        return None
    expected = _expected_pixel_bytes(ds, keyword)
    got = len(ds[keyword].value)
    if expected is not None and got < expected:
        raise _Unusable(f"truncated DICOM file: {got} of {expected} pixel-data bytes", uid)
    # Pixel data a little longer than the header implies is read: PS3.5 §8.1.1 lets a
    # sender pad it and pydicom trims the excess (four bytes of padding on every slice had
    # the whole study refused; a review). A row's worth or more is a wrong Rows, Columns
    # or NumberOfFrames: every slice of a series saying Rows 16 over 32 × 32 pixels was
    # read as 32 × 16 without a word (a review). A slice whose matrix differs from its
    # series' is refused by _matrix_problem too.
    rows = ds.get("Rows")
    row_bytes = expected // int(rows) if expected and isinstance(rows, int) and rows > 0 else 0
    full_ybr = ds.get("PhotometricInterpretation") == "YBR_FULL_422" and got in (
        expected * 3 // 2 if expected else -1,
        expected * 3 // 2 + 1 if expected else -1,
    )  # three full samples a pixel, as pydicom reads such files
    if expected is not None and row_bytes and got - expected >= row_bytes and not full_ybr:
        size = " × ".join(str(ds.get(k, "?")) for k in ("Rows", "Columns"))
        raise _Unusable(
            f"pixel data longer than the header implies: {got} bytes, {expected} for "
            f"Rows × Columns {size} (a wrong Rows or Columns?)",
            uid,
        )
    if uid is None:
        raise _Unusable("no SeriesInstanceUID in the header", None)
    try:  # a damaged plane geometry makes the file unusable, not the whole study
        geometry = _geometry(ds, path)
    except (TypeError, ValueError, IndexError) as exc:
        raise _Unusable(f"invalid plane geometry ({exc})", uid) from exc
    matrix = _matrix(ds)
    for _, sl in geometry:
        sl.matrix = matrix
    image_type = [str(t).upper() for t in ds.get("ImageType", [])]
    identifiers = _header_identifiers(ds)
    return _DicomSeries(
        uid=uid,
        number=_series_number(ds.get("SeriesNumber")),
        description=str(ds.get("SeriesDescription", "") or ""),
        study_uid=ds.get("StudyInstanceUID"),
        frame_uid=ds.get("FrameOfReferenceUID"),
        sop_class=None if sop_class is None else str(sop_class),
        files=[path],
        readable=[readable],
        sops=[str(ds.get("SOPInstanceUID", ""))],
        slices=geometry,
        mosaic="MOSAIC" in image_type,
        instances=[_series_number(ds.get("InstanceNumber"))],
        identifiers=identifiers,
        withheld=header_description_tokens(ds, identifiers),
        patient=_patient_digest(ds),
        accession_number=str(ds.get("AccessionNumber", "") or ""),
        utf8="ISO_IR 192" in _as_list(ds.get("SpecificCharacterSet")),
    )


def _header_identifiers(ds: Any) -> frozenset[str]:
    """:func:`~discquant.io.privacy.identifier_tokens` of a DICOM header, with the IDs
    nested in OtherPatientIDsSequence and the accession numbers of RequestAttributesSequence
    (a subject label holding either had passed the label check: an audit)."""

    def nested(sequence: str, keyword: str) -> list[object]:
        return [item.get(keyword) for item in ds.get(sequence, None) or () if keyword in item]

    return identifier_tokens(
        ds.get("PatientID"),
        ds.get("PatientName"),
        identity_removed=ds.get("PatientIdentityRemoved"),
        accession_number=[
            ds.get("AccessionNumber"),
            *nested("RequestAttributesSequence", "AccessionNumber"),
        ],
        other_patient_ids=[
            *_as_list(ds.get("OtherPatientIDs")),
            *nested("OtherPatientIDsSequence", "PatientID"),
        ],
        birth_date=ds.get("PatientBirthDate"),
    )


def _as_list(value: object) -> list[str]:
    """A DICOM value of multiplicity 1 or more as a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]  # type: ignore[attr-defined]


def _undo_double_utf8(value: Any) -> Any:
    """Text of a UTF-8 DICOM series as it was in the header (strings in nested lists and
    dicts too).

    dcm2niix (v1.0.20260724) writes the sidecar text of an ``ISO_IR 192`` series encoded
    twice: a name ``Müller^Jürgen`` became ``MÃ¼ller^JÃ¼rgen`` in the results JSON and
    the report of ``--keep-phi`` (a user trial; pydicom reads the header right). A string
    whose characters are all Latin-1 and whose bytes are valid UTF-8 is decoded once
    more; any other is left as it is.
    """
    if isinstance(value, str):
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return value
    if isinstance(value, list):
        return [_undo_double_utf8(v) for v in value]
    if isinstance(value, dict):
        return {k: _undo_double_utf8(v) for k, v in value.items()}
    return value


def _patient_digest(ds: object) -> frozenset[str]:
    """SHA-256 digests of the file's PatientID and PatientName, each when not empty and
    not an anonymiser's placeholder (:func:`~discquant.io.privacy.is_placeholder`:
    ``ANONYMIZED`` for every patient of an export made two patients one)."""
    found = set()
    for keyword in ("PatientID", "PatientName"):
        value = str(getattr(ds, keyword, "") or "").strip()
        if value and not is_placeholder(value):
            found.add(hashlib.sha256(f"{keyword}={value}".encode()).hexdigest())
    return frozenset(found)


def _series_number(value: object) -> int | None:
    """SeriesNumber as an integer; None when absent or not one number (``7\\8``)."""
    try:
        return None if value in (None, "") else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _along_normal(sl: _Slice) -> float:
    """A slice's position (mm) along the normal of its plane (ImageOrientationPatient)."""
    iop = np.asarray(sl.orientation, dtype=float)
    return float(np.dot(np.cross(iop[:3], iop[3:]), sl.position))


def _spacing_problem(series: _DicomSeries) -> tuple[Path, str] | None:
    """A sheared stack (:func:`_shear_problem`), else the first irregular gap between
    slice positions along the normal, if any."""
    if series.mosaic:  # one file per volume: slice positions are inside dcm2niix's reach
        return None
    if (sheared := _shear_problem(series)) is not None:
        return sheared
    groups: dict[tuple[float, ...], list[tuple[float, Path]]] = {}
    for path, sl in series.slices:
        groups.setdefault(sl.orientation, []).append((_along_normal(sl), path))
    for entries in groups.values():
        entries.sort(key=lambda e: e[0])
        distinct: list[tuple[float, Path]] = []
        for d, p in entries:
            if not distinct or d - distinct[-1][0] > 0.01:
                distinct.append((d, p))
        if len(distinct) < 3:
            continue
        with np.errstate(over="ignore", invalid="ignore"):  # positions of 1e308 mm
            gaps = np.diff([d for d, _ in distinct])
            median = float(np.median(gaps))
        tol = max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE_REL * median)
        bad = np.flatnonzero(np.abs(gaps - median) > tol)
        if bad.size:
            i = int(bad[0])
            after, before = distinct[i + 1][1], distinct[i][1]
            return after, (
                f"inconsistent slice spacing in series {series.number} "
                f"'{series.description}': gap of {_mm(gaps[i])} mm between this slice and "
                f"{_beside(before, after)}, median {_mm(median)} mm (missing or extra slice?)"
            )
    return None


def _shear_problem(series: _DicomSeries) -> tuple[Path, str] | None:
    """The first slice that lies off its stack in its own plane (:data:`SHEAR_TOLERANCE_MM`),
    with the reason, or None."""
    first: dict[tuple[float, ...], npt.NDArray[np.float64]] = {}
    for path, sl in sorted(series.slices, key=lambda e: _along_normal(e[1])):
        iop = np.asarray(sl.orientation, dtype=float)
        position = np.asarray(sl.position, dtype=float)
        origin = first.setdefault(sl.orientation, position)
        with np.errstate(over="ignore", invalid="ignore"):  # positions of 1e308 mm
            drift = np.abs([np.dot(iop[:3], position - origin), np.dot(iop[3:], position - origin)])
        if np.nanmax(drift) > SHEAR_TOLERANCE_MM:
            return path, (
                f"slices of series {series.number} '{series.description}' are not stacked "
                f"along their normal: this one lies {_mm(float(np.nanmax(drift)))} mm off the "
                "first in its own plane (a sheared or tilted stack, which would be placed "
                "as if it were not)"
            )
    return None


def _beside(other: Path, named: Path) -> str:
    """``other`` relative to the folder of ``named``, the file a message starts with.

    The message names ``named`` in full (made relative to the input folder where it is
    kept); a second full path would carry the folders above the input, which often hold
    a patient's name. Only the first named the slice after a gap, which read as the same
    file twice where the two sat at one position.
    """
    return os.path.relpath(other, named.parent)


def _mm(value: float) -> str:
    """A distance for a message: two decimals, or three significant digits when huge (a
    damaged ImagePositionPatient of 1e308 printed 300 digits)."""
    return f"{value:.2f}" if abs(value) < 1e6 else f"{value:.3g}"


def _matrix_problem(series: _DicomSeries) -> tuple[Path, str] | None:
    """A slice whose Rows × Columns differ from the other slices of its orientation.

    Slices of mixed matrix sizes do not stack into one volume: dcm2niix split such a
    series and stacked the rest across the gap left. A 3-plane localizer may hold other
    sizes in other planes; within one plane the size that most slices have is the
    series', and the first other slice (along the slice normal) is named.
    """
    groups: dict[tuple[float, ...], list[tuple[float, Path, tuple[int, int]]]] = {}
    for path, sl in series.slices:
        if sl.matrix is not None:
            groups.setdefault(sl.orientation, []).append((_along_normal(sl), path, sl.matrix))
    for entries in groups.values():
        sizes = [m for _, _, m in entries]
        usual = max(sorted(set(sizes)), key=sizes.count)
        odd = sorted((e for e in entries if e[2] != usual), key=lambda e: (e[0], e[1]))
        if odd:
            _, path, (rows, cols) = odd[0]
            return path, (
                f"series {series.number} '{series.description}' mixes matrix sizes: this "
                f"slice is {rows} × {cols} (Rows × Columns), {sizes.count(usual)} others "
                f"{usual[0]} × {usual[1]}; its slices do not stack into one volume"
            )
    return None


def _several_volumes_a_file_a_slice(series: _DicomSeries) -> bool:
    """Several images at each slice position (a DWI), in classic single-frame files of one
    plane each (not a mosaic or a multi-frame file)."""
    one_a_file = not series.mosaic and len(series.slices) == len(series.files)
    return one_a_file and len(series.files) > len({sl.position for _, sl in series.slices})


def _incomplete(series: _DicomSeries) -> bool:
    """After dropping files: do the slice positions still hold equal numbers of images?"""
    if series.mosaic:
        return False
    counts: dict[tuple[float, ...], int] = {}
    for _, sl in series.slices:
        key = (*sl.orientation, *(round(v, 2) for v in sl.position))
        counts[key] = counts.get(key, 0) + 1
    return len(set(counts.values())) > 1


def _missing_mosaic(series: _DicomSeries) -> tuple[Path, str] | None:
    """A Siemens mosaic series (one file a volume) whose instance numbers skip one: a
    volume's file is missing. The series is converted without it (its other volumes are
    whole); said, since a DWI had lost a direction without a word (an audit)."""
    if not series.mosaic or len(series.files) < 2 or None in series.instances:
        return None
    instances = cast(list[int], series.instances)  # none is None here
    numbered = sorted(zip(instances, series.files, strict=True))
    for (a, _), (b, path) in pairwise(numbered):
        if b - a > 1:
            return path, (
                f"series {series.number} '{series.description}': instance numbers jump from "
                f"{a} to {b} before this file: {b - a - 1} volume(s) missing? The series is "
                "used with the volumes it has"
            )
    return None


def _missing_images(series: _DicomSeries) -> tuple[Path, str] | None:
    """A series whose slice positions hold unequal numbers of images.

    A multi-volume series (DWI) with a file missing: dcm2niix then converted nothing
    ("Recompiling with '-DmyInstanceNumberOrderIsNotSpatial' might help"), and the
    warning named the series' first file; a file at the position with the fewest images
    is named. A position with more images than the others (two slices 0 mm apart):
    dcm2niix stacked them all into a volume of uneven spacing; a file there beyond the
    usual number is named, with the first.
    """
    if series.mosaic or not series.slices:  # a screen save has no plane geometry
        return None
    at: dict[tuple[float, ...], list[Path]] = {}
    for path, sl in series.slices:
        at.setdefault((*sl.orientation, *(round(v, 2) for v in sl.position)), []).append(path)
    counts = [len(paths) for paths in at.values()]
    usual = max(set(counts), key=counts.count)
    fewest = min(at.values(), key=len)
    if usual >= 2 and len(fewest) < usual:
        return sorted(fewest)[0], (
            f"series {series.number} '{series.description}' has {len(fewest)} image(s) at "
            f"this file's slice position and {usual} at most others: a file is missing (or "
            "damaged and left out)"
        )
    most = sorted(next(paths for paths in at.values() if len(paths) == max(counts)))
    if len(most) > usual:  # two slices 0 mm apart: dcm2niix stacked both, without a word
        return most[usual], (
            f"series {series.number} '{series.description}' has {len(most)} images at this "
            f"file's slice position (with {_beside(most[0], most[usual])}) and {usual} at "
            "most others: an extra image, 0 mm from its neighbour"
        )
    return None


_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL})
"""Signals that stop a conversion from outside (Ctrl-C, a job's end, a closed terminal, a
killed worker): the study must be read again. Any other (SIGSEGV) is the series' crash."""


def _run_dcm2niix(src: Path, out: Path, *, keep_phi: bool, series: _DicomSeries) -> str:
    cmd = [
        dcm2niix_binary(),
        "-b", "y",
        "-ba", "n" if keep_phi else "y",
        "-z", "y",
        # The series number only: "%d" (the description) put a name typed into it into
        # the file names, which the debug log prints (a user trial).
        "-f", "%s",
        "-o", str(out),
        str(src),
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DicomConversionError(
            f"dcm2niix did not finish series {series.number} within 900 s", path=series.files[0]
        ) from exc
    if -done.returncode in _STOP_SIGNALS:  # what it wrote says nothing of the series
        raise ConversionStoppedError(
            f"dcm2niix was stopped by signal {-done.returncode} while converting series "
            f"{series.number} '{series.description}'; read the study again",
            path=series.files[0],
        )
    if done.returncode < 0:  # a crash on this series (dcm2niix has segfaulted on odd data)
        raise DicomConversionError(
            f"dcm2niix crashed (signal {-done.returncode}) converting series {series.number} "
            f"'{series.description}'",
            path=series.files[0],
        )
    text = (done.stdout or "") + (done.stderr or "")
    for line in text.splitlines():
        if line.startswith(("Warning", "Error")):
            log.debug("dcm2niix (series %s): %s", series.number, line)
    return text


def load_dicom(path: Path, *, keep_phi: bool = False) -> tuple[list[RawImage], list[str]]:
    """Convert every DICOM series under ``path`` (a folder tree or one file).

    Returns
    -------
    images, warnings
        One :class:`RawImage` per dcm2niix output (diffusion pieces of one series joined),
        and human-readable warnings for skipped files and series.

    Raises
    ------
    InputNotFoundError
        The folder is empty or holds no DICOM file.
    InvalidInputError
        No series is usable: the error of the first one skipped (a truncated file that
        leaves it incomplete, inconsistent slice spacing, nothing dcm2niix could convert;
        the message names the file). A series with such a problem among usable ones is
        skipped with a warning.
    DicomConversionError
        dcm2niix produced no image and no series reported why.
    ConversionStoppedError
        dcm2niix was killed by a signal (Ctrl-C in the terminal reaches it too).
    """
    if path.is_dir():
        files = _files_under(path)
        if not files:
            raise InputNotFoundError("folder is empty", path=path)
    else:
        files = [path]
    with tempfile.TemporaryDirectory(prefix="discquant-dicom-") as tmp:
        staging = Path(tmp)
        scan = _scan(files, staging)
        if path.is_file() and scan.archives:
            raise InvalidInputError("an archive: unpack it and give its folder", path=path)
        if not scan.series and not scan.truncated and path.is_file() and not scan.non_image:
            raise InputNotFoundError("not a DICOM or NIfTI file", path=path)
        if not scan.series and not scan.truncated:
            n_other = sum(len(v) for v in scan.non_image.values())
            other = f"; {n_other} non-image DICOM files ignored" if n_other else ""
            # NIfTI files in a subfolder: "looked at 0 files" read as an empty folder (an
            # audit). The subfolder is not named: its name may be the patient's.
            n_nifti = sum(1 for f in files if is_nifti(f))
            if scan.archives:  # "looked at 1 files" for a folder holding one zip (an audit)
                other += f"; {len(scan.archives)} archive(s) not read: unpack them"
            if n_nifti:
                other += (
                    f"; {n_nifti} NIfTI file(s) lie in subfolders: give the folder that holds them"
                )
            raise InputNotFoundError(
                f"no DICOM files found (looked at {scan.n_files} files, any depth{other})",
                path=path,
            )
        _check_one_patient(scan, path, keep_phi=keep_phi)
        if not keep_phi:  # before any warning or image carries the description
            for series in scan.series.values():
                series.description = redact_identifiers(series.description, series.withheld)
        identifiers = frozenset() if keep_phi else scan.identifiers
        said = _Said(path if path.is_dir() else path.parent, identifiers)
        _report_non_image(scan, said)
        _report_not_dicom(scan, said)
        _report_nifti(files, said)
        _report_duplicates(scan, said)
        broken = _check_truncated(scan, said)
        images: list[RawImage] = []
        # a truncated file whose series is unknown, with no series to skip for it
        skipped: list[tuple[Path, str]] = [v for k, v in broken.items() if k not in scan.series]
        for i, series in enumerate(
            sorted(scan.series.values(), key=lambda s: (s.number or 0, s.uid))
        ):
            # A series that cannot be used is skipped, not fatal: lumbar protocols hold
            # axial T2 stacks in separate blocks (irregular gaps), screen saves and files
            # cut short, and one such series must not keep the sagittal T2 and the DWI
            # from being read.
            if series.uid in broken:
                skipped.append(broken[series.uid])
                continue
            problem = _matrix_problem(series) or _spacing_problem(series) or _missing_images(series)
            if problem is not None:
                skipped.append(problem)
                continue
            if (gap := _missing_mosaic(series)) is not None:
                said.add(f"{said.path(gap[0])}: {gap[1]}")
            try:
                images.extend(_convert_series(series, staging, i, keep_phi=keep_phi))
            except ConversionStoppedError:
                raise  # not the series' fault: a cohort whose Ctrl-C killed dcm2niix
                # had recorded the study complete without its T2, and never redid it
            except DiscquantError as exc:
                # the file it names (a misplaced image), else the series' first
                skipped.append((exc.path or series.files[0], exc.reason))
    if not images and skipped:  # nothing usable: the (first) series' own error, one line
        more = f" (and {len(skipped) - 1} more series skipped)" if len(skipped) > 1 else ""
        where, why = skipped[0]
        if path.is_dir() and not keep_phi:
            # The folder as the user typed it, the rest as a warning names it: a truncated
            # file named ZORBLATT_QUENTIN_IM01.dcm put the patient's name into the error,
            # and through it into a cohort's failure table and report (an audit).
            where = path / said.path(where)
            why = withhold_uids(redact_identifiers(why, identifiers))
        raise InvalidInputError(f"{why}{more}", path=where)
    if not images:
        raise DicomConversionError("dcm2niix produced no image from any series", path=path)
    for where, why in skipped:
        said.add(f"{said.path(where)}: {why}{SERIES_SKIPPED}")
    # The warnings travel into the log, the results JSON and the report. Files are named
    # relative to the input folder (folder names above it often carry a patient's name),
    # a part that holds the patient's ID or name withheld (a stray file in NAME_MRN/
    # reached all three: an audit), and without the UIDs exports name files after (a
    # Siemens UID holds the scanner's serial number and the acquisition time): also in
    # the reasons, which may quote another file.
    warnings = said.messages
    if path.is_dir():
        prefix = f"{path}{os.sep}"
        warnings = [w.replace(prefix, "", 1) if w.startswith(prefix) else w for w in warnings]
    if not keep_phi:
        warnings = [withhold_uids(w) for w in warnings]
    return images, warnings


@dataclass(frozen=True)
class PatientSeries:
    """One image series of a folder that holds several patients (:class:`SeveralPatientsError`)."""

    patient: int
    """1, 2, ...: which patient, by the order of their first series; never an identifier."""
    series_number: int | None
    description: str
    n_files: int
    folder: str
    """The folder holding the series' files, relative to the folder given ("." for itself)."""


class SeveralPatientsError(InvalidInputError):
    """A DICOM folder holds image series of more than one patient; ``series`` says which
    series belongs to which (numbered) patient, for ``discquant inspect`` to list."""

    def __init__(self, message: str, *, path: Path, series: list[PatientSeries]) -> None:
        super().__init__(message, path=path)
        self.series = series


def _series_folder(series: _DicomSeries, root: Path, identifiers: frozenset[str]) -> str:
    """The deepest folder holding all of ``series``' files, relative to ``root``, parts
    holding one of ``identifiers`` withheld (:func:`~discquant.io.privacy.shown_path`)."""
    common = Path(os.path.commonpath([str(f.parent) for f in series.files]))
    if not root.is_dir() or common == root:
        return "."
    return shown_path(common, root, identifiers)


def _check_one_patient(scan: _Scan, path: Path, *, keep_phi: bool = False) -> None:
    """Refuse image series of more than one patient.

    A folder of two patients' studies was analysed as one: one patient's T2 masks laid
    over the other's ADC map, with only a frame-of-reference warning. Two series belong
    to one patient when they share a PatientID, a PatientName, a StudyInstanceUID or a
    FrameOfReferenceUID, directly or through other series: an anonymiser that emptied
    the ID of some series, or gave each series its own ID, leaves them one patient.
    Series with neither an ID nor a name (or only placeholders, ``ANONYMIZED``) are not
    counted.
    """
    from scipy.cluster.hierarchy import DisjointSet

    series = list(scan.series.values())
    keys = [
        {*s.patient, *(f"{kind}={uid}" for kind, uid in (("study", s.study_uid),
                                                          ("frame", s.frame_uid)) if uid)}
        for s in series
    ]  # fmt: skip
    group = DisjointSet(range(len(series)))  # series joined by shared keys; group[i]: root
    owner: dict[str, int] = {}
    for i, ks in enumerate(keys):
        for k in ks:
            if k in owner:
                group.merge(i, owner[k])
            else:
                owner[k] = i
    patients = {group[i] for i, s in enumerate(series) if s.patient}
    if len(patients) > 1:
        # `inspect` lists the series: descriptions and folders with every patient's
        # identifiers withheld (a folder YQUARDLE_ROSALIND_MRN5550001 and a description
        # "ADC Yquardle" were listed as they were: an audit)
        identifiers = frozenset() if keep_phi else scan.identifiers
        order = sorted(range(len(series)), key=lambda i: (series[i].number or 0, series[i].uid))
        numbers: dict[int, int] = {}
        listed = []
        for i in order:
            if series[i].patient:  # series without ID or name belong to nobody in particular
                number = numbers.setdefault(group[i], len(numbers) + 1)
                listed.append(
                    PatientSeries(
                        number,
                        series[i].number,
                        series[i].description
                        if keep_phi
                        else redact_identifiers(
                            series[i].description, series[i].withheld | identifiers
                        ),
                        len(series[i].files),
                        _series_folder(series[i], path, identifiers),
                    )
                )
        listed.sort(key=lambda r: (r.patient, r.series_number or 0))
        raise SeveralPatientsError(
            f"holds image series of {len(patients)} patients (no PatientID, PatientName, "
            "study or frame of reference in common): give one patient's folder, or a "
            "folder of patient folders to `discquant cohort`",
            path=path,
            series=listed,
        )


@dataclass
class _Said:
    """The import's warnings: each logged when it is made (also when the import fails
    after it) and kept for the study. Files are named by :meth:`path`."""

    root: Path
    identifiers: frozenset[str]
    messages: list[str] = field(default_factory=list)

    def path(self, path: Path) -> str:
        """``path`` relative to the folder read, parts holding the patient's ID or name
        and UIDs withheld (:func:`discquant.io.privacy.shown_path`)."""
        return shown_path(path, self.root, self.identifiers)

    def add(self, message: str) -> None:
        log.warning(message)
        self.messages.append(message)


def _report_non_image(scan: _Scan, said: _Said) -> None:
    """One warning per non-image SOP class found: its first file and how many."""
    for name, paths in scan.non_image.items():
        more = f" (and {len(paths) - 1} more like it)" if len(paths) > 1 else ""
        said.add(f"{said.path(paths[0])}: {name} object, not an image; ignored{more}")


def _files_under(folder: Path) -> list[Path]:
    """Every file under ``folder`` but hidden ones, sorted, following linked folders
    (research archives and DataLad checkouts link series folders: a linked DWI folder
    was passed over without a word, and a folder of links read "folder is empty", an
    audit); a link back to a folder already walked is not followed again."""
    seen: set[str] = set()
    top = os.path.realpath(folder)
    files: list[Path] = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        # a loop, a second link to one folder, or a link to a folder above the input
        # (which would read other patients' folders beside it: a review)
        if real in seen or (root != str(folder) and Path(top).is_relative_to(real)):
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # .git/annex: copies
        files.extend(Path(root) / name for name in names if not name.startswith("."))
    return sorted(files)


def _report_nifti(files: list[Path], said: _Said) -> None:
    """One warning for NIfTI files in a folder read as DICOM: they are not read with it
    (a converted copy beside its DICOM would be the same series twice). A NIfTI T2 beside
    a DICOM DWI was left out without a word, and the study analysed without a T2 (an
    audit)."""
    nifti = [f for f in files if is_nifti(f)]
    if nifti:
        more = f" (and {len(nifti) - 1} more)" if len(nifti) > 1 else ""
        said.add(
            f"{said.path(nifti[0])}: a NIfTI file in a DICOM folder, not read{more}; give it "
            "with --t2, --dwi or --adc"
        )


def _report_not_dicom(scan: _Scan, said: _Said) -> None:
    """One warning for the files skipped as not DICOM: the first and how many more.

    A slice saved without the DICM prefix (a raw data set, an ACR-NEMA file) was passed
    by without a word, its series then failing on a gap that named another file.
    Documents (``_DOCUMENT_EXTS``), hidden files and DICOMDIR are not counted.
    """
    for archive in scan.archives:
        said.add(f"{said.path(archive)}: an archive, not read; unpack it to use its images")
    if not scan.not_dicom:
        return
    more = f" (and {len(scan.not_dicom) - 1} more like it)" if len(scan.not_dicom) > 1 else ""
    said.add(f"{said.path(scan.not_dicom[0])}: not a DICOM file (no DICM prefix); skipped{more}")


def _report_duplicates(scan: _Scan, said: _Said) -> None:
    """One warning per series with files stored twice: the first copy, the file it
    repeats, and how many copies were left out."""
    for uid, copies in scan.duplicates.items():
        series = scan.series[uid]
        copy, kept = copies[0]
        more = f" (and {len(copies) - 1} more copies)" if len(copies) > 1 else ""
        said.add(
            f"{said.path(copy)}: the same image (SOP Instance UID) as {said.path(kept)} in "
            f"series {series.number} '{series.description}'; the copy is ignored{more}"
        )


def _check_truncated(scan: _Scan, said: _Said) -> dict[str | None, tuple[Path, str]]:
    """Truncated files: dropped with a warning where their series stays complete.

    Returns the series that are incomplete without them, by UID, with the file and the
    reason (to be skipped). A file whose header ended before its series could be known
    is blamed on every incomplete series; with no series at all it is returned under
    None (the study then has nothing usable, and that file is the reason).
    """
    broken: dict[str | None, tuple[Path, str]] = {}
    for path, problem, uid in scan.truncated:
        series = scan.series.get(uid) if uid is not None else None
        if uid is None and not scan.series:
            broken.setdefault(None, (path, f"{problem}; no complete series remains"))
            continue
        if uid is None:
            suspects = [
                s for s in scan.series.values() if _incomplete(s) or _spacing_problem(s) is not None
            ]
            for s in suspects:
                why = f"{problem}; series {s.number} '{s.description}' may be incomplete without it"
                broken.setdefault(s.uid, (path, why))
            if suspects:
                continue
        elif series is None or _incomplete(series) or _spacing_problem(series) is not None:
            broken.setdefault(uid, (path, f"{problem}; its series is incomplete without it"))
            continue
        kept = (
            "no series is incomplete without it"
            if uid is None
            else ("the rest of its series is complete")
        )
        said.add(f"{said.path(path)}: {problem}; skipped ({kept})")
    return broken


def _convert_series(
    series: _DicomSeries, staging: Path, index: int, *, keep_phi: bool
) -> list[RawImage]:
    src = staging / "in" / f"{index:04d}"
    out = staging / "out" / f"{index:04d}"
    src.mkdir(parents=True)
    out.mkdir(parents=True)
    for j, readable in enumerate(series.readable):
        (src / f"{j:06d}.dcm").symlink_to(readable.resolve())
    text = _run_dcm2niix(src, out, keep_phi=keep_phi, series=series)
    outputs = sorted(p for p in out.iterdir() if is_nifti(p))
    if not outputs:  # the caller skips the series with this reason (or reports it)
        last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "no output")
        raise DicomConversionError(
            f"dcm2niix converted nothing from series {series.number} "
            f"'{series.description}' ({last.strip()})",
            path=series.files[0],
        )
    provenance = Provenance(
        source_paths=tuple(series.files),
        series_instance_uid=series.uid,
        study_instance_uid=series.study_uid,
        frame_of_reference_uid=series.frame_uid,
        sop_class_uid=series.sop_class,
        sop_instance_uids=tuple(series.sops),
        series_number=series.number,
    )
    pieces: list[RawImage] = []
    for nii in outputs:
        try:
            raw = load_nifti(nii, keep_phi=keep_phi)
        except DiscquantError as exc:  # name the series, not the temporary NIfTI
            raise InvalidInputError(
                f"series {series.number} '{series.description}': {exc.reason}",
                path=series.files[0],
            ) from exc
        number = raw.sidecar.get("SeriesNumber")
        if series.number is not None and number is not None and int(number) != series.number:
            log.warning(
                "dcm2niix output %s reports series %s, expected %s", nii.name, number, series.number
            )
        raw.identifiers = series.identifiers
        if keep_phi:
            raw.sidecar.pop("AccessionNumber", None)
            if series.accession_number:
                raw.sidecar["AccessionNumber"] = series.accession_number
        if series.utf8:  # the description was read from the sidecar too
            raw.sidecar = _undo_double_utf8(raw.sidecar)
            raw.description = _undo_double_utf8(raw.description)
        if not keep_phi:
            raw.description = redact_identifiers(raw.description, series.withheld)
            redact_sidecar_descriptions(raw.sidecar, series.withheld)
        pieces.append(raw)
    images = merge_diffusion_pieces(pieces)
    if _several_volumes_a_file_a_slice(series):  # dcm2niix's stacking order is checked
        misplaced = misplaced_image(series.files, series.readable, images)
        if misplaced is not None:
            where, b = misplaced
            raise DicomConversionError(
                f"dcm2niix stacked series {series.number} '{series.description}' out of "
                f"place: this file's image{'' if b is None else f' (b = {b:g} s/mm²)'} is "
                "not at its own position in the converted volumes (instance numbers that do "
                "not follow the slice order?)",
                path=where,
            )
    for raw in images:
        # Errors about this image name the source folder, not the temporary NIfTI.
        raw.path = series.files[0].parent if len(series.files) > 1 else series.files[0]
        raw.provenance = replace(provenance, sidecar=raw.sidecar)
        if "SeriesDescription" not in raw.sidecar and series.description:
            raw.description = series.description
    return images


def read_source_datasets(paths: Sequence[Path], *, pixels: bool = True) -> list[Any] | None:
    """The source DICOM datasets of a series, read again with pydicom, for writers that
    must reference them (DICOM SEG and SR); None when none can be read. ``pixels=False``
    reads the headers only (an SR lists the diffusion images it used by their UIDs).

    A file that cannot be read is left out with a warning (the SEG/SR reference the
    others). gzip'd DICOM, as some archives keep them, often without a ``.gz`` suffix, is
    recognised by the gzip signature, as the importer does.
    """
    import gzip

    import pydicom

    datasets = []
    for path in paths:
        try:
            with path.open("rb") as raw:
                gzipped = raw.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
            if gzipped:
                with gzip.open(path) as fh:
                    datasets.append(pydicom.dcmread(fh, stop_before_pixels=not pixels))
            else:
                datasets.append(pydicom.dcmread(path, stop_before_pixels=not pixels))
        except Exception as exc:  # unreadable source: SEG/SR cannot reference it
            # the file name only: folders above it may name the patient
            log.warning("cannot re-read source DICOM %s: %s", path.name, exc)
    return datasets or None
