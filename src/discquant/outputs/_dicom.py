"""Helpers shared by the DICOM SEG and SR writers: source attributes and de-identification.

highdicom copies the Patient and General Study modules of the source images into a SEG or
SR, and reads each of their type 2 attributes unconditionally: a source from which an
anonymiser removed, say, PatientID makes it fail. :func:`with_type2_attributes` gives it
copies of such sources with the missing attributes present and empty, as DICOM allows for
type 2 (the originals are never modified).

:func:`phi_values` and :func:`redact` keep the source's identifying values out of error
messages; the outputs themselves are de-identified by
:func:`discquant.io.privacy.deidentify_dataset`.
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


def phi_values(datasets: Sequence[Any]) -> set[str]:
    """Identifying values of the source datasets (to keep them out of error messages).

    Every non-empty value of at least three characters, at any depth and each value of a
    multi-valued attribute apart, of a ``Patient*`` attribute (except PatientPosition and
    PatientIdentityRemoved), a person name, an attribute that
    :func:`discquant.io.privacy.deidentify_dataset` removes (with everything inside it
    when it is a sequence), or one listed in :data:`discquant.io.privacy.PHI_KEYS`,
    :data:`~discquant.io.privacy.EQUIPMENT_KEYS` or
    :data:`discquant.outputs._common.PHI_KEYS`.
    """
    from pydicom.multival import MultiValue

    found: set[str] = set()

    def identifying(keyword: str, vr: str) -> bool:
        if keyword in ("PatientPosition", "PatientIdentityRemoved"):
            return False
        return (
            keyword.startswith("Patient")
            or privacy.is_removed_dicom_keyword(keyword)
            or keyword in PHI_KEYS
            or keyword in privacy.PHI_KEYS
            or keyword in privacy.EQUIPMENT_KEYS
            or keyword == "StudyDescription"
            or vr == "PN"
        )

    def walk(ds: Any, inside_identifying: bool) -> None:
        for elem in ds:
            hit = inside_identifying or identifying(elem.keyword, elem.VR)
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item, hit)
            elif hit and elem.value is not None:
                values = elem.value if isinstance(elem.value, MultiValue) else [elem.value]
                found.update(t for v in values if len(t := str(v).strip()) >= 3)

    for ds in datasets[:1]:  # the patient and study modules are the same in every image
        walk(ds, False)
    return found


def redact(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` replaced by ``<removed>`` (longest first)."""
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "<removed>")
    return text
