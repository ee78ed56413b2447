"""Small helpers shared by the output writers: PHI scrubbing, JSON-safe values."""

from __future__ import annotations

import dataclasses
import math
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from discquant.io.privacy import is_phi_key as removed_on_import

PHI_KEYS: frozenset[str] = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "AccessionNumber",
        "OtherPatientIDs",
        "OtherPatientNames",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "PatientMotherBirthName",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "InstitutionAddress",
    }
)
"""Keys that identify a person; dropped from every output unless ``keep_phi`` is set (the
import's :data:`discquant.io.privacy.PHI_KEYS` is the list it removes from sidecars, with
every ``Patient*`` key).

The first four are the ones the project rule names; the rest are the obvious companions
(DICOM PS3.15 Annex E lists them under the Basic Application Level Confidentiality Profile).
"""

SOURCE_KEYS: frozenset[str] = frozenset(
    {
        "series_instance_uid",
        "SeriesInstanceUID",
        "StudyInstanceUID",
        "InstitutionName",
        "InstitutionalDepartmentName",
        "StationName",
        "DeviceSerialNumber",
    }
)
"""Keys that name the source's site, scanner or scan time (a Siemens series UID holds the
scanner's serial number and the date-time of the scan): dropped with :data:`PHI_KEYS`.
The DICOM SEG and SR still reference their source series, as they must."""

_PHI_KEYS_LOWER = frozenset(k.lower() for k in PHI_KEYS | SOURCE_KEYS) | frozenset(
    {"patient_name", "patient_id", "patient_birth_date", "accession_number"}
)


def is_phi_key(key: str) -> bool:
    """Whether a key may identify the patient, the site or the scan time: one of
    :data:`PHI_KEYS` or :data:`SOURCE_KEYS` (any case), or one the import removes from
    sidecars (:func:`discquant.io.privacy.is_phi_key`: every ``Patient*`` key but
    ``PatientPosition``, study dates and descriptions). One rule for both: the outputs'
    list had missed ``PatientSex``, ``PatientAge`` and ``StudyDate`` (a review)."""
    return key.lower() in _PHI_KEYS_LOWER or removed_on_import(key)


def scrub_phi(value: Any) -> Any:
    """Return a copy of nested dicts/lists without the keys in :data:`PHI_KEYS`."""
    if isinstance(value, dict):
        return {k: scrub_phi(v) for k, v in value.items() if not is_phi_key(str(k))}
    if isinstance(value, list | tuple):
        return [scrub_phi(v) for v in value]
    return value


def phi_strings(value: Any) -> list[str]:
    """Every non-empty string stored under a PHI key anywhere in ``value`` (for tests/checks)."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if is_phi_key(str(k)) and v not in (None, ""):
                found.append(str(v))
            else:
                found.extend(phi_strings(v))
    elif isinstance(value, list | tuple):
        for v in value:
            found.extend(phi_strings(v))
    return found


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses, numpy scalars/arrays, paths, enums and tuples to JSON types.

    Non-finite floats become ``None`` (JSON has no NaN), so a missing value reads as null.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if value is None or isinstance(value, str):
        return value
    return str(value)
