"""Helpers shared by the DICOM SEG and SR writers: source attributes and de-identification.

highdicom copies the Patient and General Study modules of the source images into a SEG or
SR, and reads each of their type 2 attributes unconditionally: a source from which an
anonymiser removed, say, PatientID makes it fail. :func:`with_type2_attributes` gives it
copies of such sources with the missing attributes present and empty, as DICOM allows for
type 2 (the originals are never modified).

:func:`deidentify_output` applies :func:`discquant.io.privacy.deidentify_dataset` and then
removes what that leaves of the source's identifying text: the study description (often
the patient's name or the reason for the visit) and, anywhere in nested sequences (the
source's acquisition equipment in ContributingEquipmentSequence), the institution
address, station name, device serial number and people's names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from discquant.io import privacy
from discquant.outputs._common import PHI_KEYS

SOURCE_TYPE2_KEYWORDS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
)
"""Type 2 attributes of the Patient and General Study modules that highdicom copies."""

_EQUIPMENT_KEYWORDS: frozenset[str] = frozenset(
    {"InstitutionAddress", "StationName", "DeviceSerialNumber", "InstitutionalDepartmentName"}
)
"""Identify the site or the scanner of the source; removed from nested sequences."""

_TOP_LEVEL_REMOVED: tuple[str, ...] = ("InstitutionAddress", "StationName")
"""Removed from the output itself (its DeviceSerialNumber is discquant's, not the source's)."""


def _copy(ds: Any) -> Any:
    """A new dataset holding the same elements as ``ds``; adding to it leaves ``ds`` alone.

    (``copy.copy`` of a pydicom dataset shares its element dictionary.)
    """
    from pydicom.dataset import Dataset

    out = Dataset()
    for elem in ds:
        out.add(elem)
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        out.file_meta = file_meta
    return out


def with_type2_attributes(datasets: Sequence[Any]) -> list[Any]:
    """The source datasets, each with every :data:`SOURCE_TYPE2_KEYWORDS` attribute present.

    A dataset that lacks some is replaced by a copy in which they are empty; complete ones
    are returned as they are. The given datasets are never modified.
    """
    out = []
    for ds in datasets:
        missing = [k for k in SOURCE_TYPE2_KEYWORDS if k not in ds]
        if missing:
            ds = _copy(ds)
            for keyword in missing:
                setattr(ds, keyword, "")
        out.append(ds)
    return out


def _scrub_nested(items: Iterable[Any]) -> None:
    for item in items:
        for elem in list(item):
            if elem.keyword in _EQUIPMENT_KEYWORDS or elem.keyword in PHI_KEYS or elem.VR == "PN":
                del item[elem.tag]
            elif elem.VR == "SQ":
                _scrub_nested(elem.value)


def deidentify_output(ds: Any, *, subject: str) -> None:
    """De-identify a SEG or SR before it is written (without ``keep_phi``).

    :func:`discquant.io.privacy.deidentify_dataset` replaces the patient and study
    identifiers; then StudyDescription is emptied, the source's InstitutionAddress and
    StationName are removed, and every nested sequence loses its InstitutionAddress,
    StationName, DeviceSerialNumber, InstitutionalDepartmentName, person names and the
    keys of :data:`discquant.outputs._common.PHI_KEYS`.
    """
    privacy.deidentify_dataset(ds, subject=subject)
    ds.StudyDescription = ""
    for keyword in _TOP_LEVEL_REMOVED:
        if keyword in ds:
            delattr(ds, keyword)
    for elem in list(ds):
        if elem.VR == "SQ":
            _scrub_nested(elem.value)


def phi_values(datasets: Sequence[Any]) -> set[str]:
    """Identifying values of the source datasets (to keep them out of error messages).

    Every non-empty value of at least three characters of a ``Patient*`` attribute (except
    PatientPosition and PatientIdentityRemoved), a person name, or an attribute listed in
    :data:`discquant.io.privacy.PHI_KEYS` or :data:`discquant.outputs._common.PHI_KEYS`.
    """
    found: set[str] = set()
    for ds in datasets[:1]:  # the patient and study modules are the same in every image
        for elem in ds:
            keyword = elem.keyword
            if elem.VR == "SQ" or keyword in ("PatientPosition", "PatientIdentityRemoved"):
                continue
            if (
                keyword.startswith("Patient")
                or keyword in PHI_KEYS
                or keyword in privacy.PHI_KEYS
                or keyword in _EQUIPMENT_KEYWORDS
                or keyword == "StudyDescription"
                or elem.VR == "PN"
            ):
                text = str(elem.value).strip()
                if len(text) >= 3:
                    found.add(text)
    return found


def redact(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` replaced by ``<removed>`` (longest first)."""
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "<removed>")
    return text
