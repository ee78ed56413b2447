"""Keep patient-identifying fields out of sidecars, logs and outputs.

dcm2niix already anonymises BIDS sidecars by default (``-ba y``: no names, IDs, birth
date, sex, age, accession number or dates); :func:`scrub_sidecar` applies the same rule
to every sidecar the importer reads, including hand-made JSON next to NIfTI files, so the
guarantee does not depend on where a sidecar came from.

What is removed (unless the user passes ``keep_phi``): every key that starts with
``Patient`` except ``PatientPosition`` (an acquisition setting: head/feet first), the
accession number, other patient IDs, people's names (referring/performing physician,
operator), calendar dates and date-times, and the study and procedure descriptions
(free text that often holds a name or the reason for the visit). Sex and age are removed
too: they are quasi-identifiers, and dcm2niix drops them as well. Kept in the imported
sidecars: scanner, sequence and timing parameters, institution name (not a patient
identifier), UIDs (needed to reference the source images; they are not personal data on
their own). The written results JSON and report drop more, the UIDs and the site and
scanner names too (:data:`discquant.outputs._common.SOURCE_KEYS`, beside that module's
own :data:`~discquant.outputs._common.PHI_KEYS`), unless ``keep_phi``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PHI_KEYS: frozenset[str] = frozenset(
    {
        "AccessionNumber",
        "OtherPatientIDs",
        "OtherPatientNames",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "NameOfPhysiciansReadingStudy",
        "OperatorsName",
        "RequestingPhysician",
        "StudyID",
        "AcquisitionDateTime",
        "AcquisitionDate",
        "StudyDate",
        "SeriesDate",
        "ContentDate",
        "InstanceCreationDate",
        # free text that often holds the patient's name or the reason for the visit
        # (the real Siemens test series has "Rorden^Rorden_Prisma", a person name, in both)
        "StudyDescription",
        "ProcedureStepDescription",
        "RequestedProcedureDescription",
        # free text a technologist types per image (dcm2niix copies it into the sidecar;
        # an audit's "IMGCOMMENTX Zorblatt" reached Provenance.sidecar), and the site's
        # street address
        "ImageComments",
        "InstitutionAddress",
    }
)
"""Identifying keys removed besides every ``Patient*`` key (``PatientPosition`` stays)."""

PATIENT_SUMMARY_KEYS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "AccessionNumber",
)
"""The identifying fields shown with ``--keep-phi`` (results JSON, report, ``inspect``)."""


def patient_summary(sidecar: dict[str, object]) -> dict[str, object]:
    """The :data:`PATIENT_SUMMARY_KEYS` a sidecar holds (non-empty ones only)."""
    return {k: sidecar[k] for k in PATIENT_SUMMARY_KEYS if sidecar.get(k) not in (None, "")}


_KEEP_PATIENT_KEYS = frozenset({"PatientPosition"})


def is_phi_key(key: str) -> bool:
    """Whether a sidecar key may identify the patient (see the module docstring)."""
    if key in _KEEP_PATIENT_KEYS:
        return False
    return key.startswith("Patient") or key in PHI_KEYS


def scrub_sidecar(sidecar: dict[str, Any], *, keep_phi: bool = False) -> dict[str, Any]:
    """A copy of ``sidecar`` without identifying keys (unchanged copy if ``keep_phi``)."""
    if keep_phi:
        return dict(sidecar)
    return {k: v for k, v in sidecar.items() if not is_phi_key(k)}


_DICOM_EMPTIED = (
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",  # often the patient's name or the reason for the visit
)
"""Type 2 attributes of the Patient and General Study modules: kept, but empty."""

_DICOM_REMOVED = (
    "OtherPatientIDsSequence",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "AdditionalPatientHistory",
    "Occupation",
    "ResponsibleOrganization",
    "EthnicGroup",
    "MedicalAlerts",
    "Allergies",
    "SmokingStatus",
    "PregnancyStatus",
    "MilitaryRank",
    "BranchOfService",
    "CountryOfResidence",
    "RegionOfResidence",
    "MedicalRecordLocator",
    "LastMenstrualDate",  # a calendar date (Patient Study module)
    "EthnicGroupCodeSequence",  # EthnicGroup, coded
    "ReferencedPatientPhotoSequence",
    "InstitutionAddress",
    "StationName",
    # the visit and the people around it (Patient Study and General Study modules)
    "AdmissionID",
    "IssuerOfAdmissionIDSequence",
    "ServiceEpisodeID",
    "ServiceEpisodeDescription",
    "IssuerOfServiceEpisodeIDSequence",
    "ReasonForVisit",
    "ReasonForVisitCodeSequence",
    "ReasonForTheRequestedProcedure",
    "RequestingService",
    "RequestingServiceCodeSequence",
    "IssuerOfAccessionNumberSequence",
    "ReferringPhysicianIdentificationSequence",
    "PhysiciansOfRecordIdentificationSequence",
    "PhysiciansReadingStudyIdentificationSequence",
    "RequestingPhysicianIdentificationSequence",
)
"""Type 3 attributes that describe the patient or the visit: removed (besides every
keyword starting with one of :data:`_REMOVED_PREFIXES`)."""

_REMOVED_PREFIXES = ("Patient", "ClinicalTrial", "Admitting")
"""Patient module, Clinical Trial Subject/Study/Series modules, admitting diagnoses."""


EQUIPMENT_KEYS: frozenset[str] = frozenset(
    {
        "InstitutionName",
        "InstitutionAddress",
        "StationName",
        "DeviceSerialNumber",
        "InstitutionalDepartmentName",
    }
)
"""Identify the source's site or scanner (e.g. in ContributingEquipmentSequence)."""

_NESTED_REMOVED = EQUIPMENT_KEYS | frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "PatientMotherBirthName",
        "AccessionNumber",
        "OtherPatientIDs",
        "OtherPatientNames",
        # highdicom copies the source's AcquisitionDateTime into its item of
        # ContributingEquipmentSequence
        "ContributionDateTime",
    }
)
"""Removed from every item of every nested sequence, with every person name."""


_REMOVED_SUFFIXES = ("PhysicianIdentificationSequence", "PhysiciansIdentificationSequence")
"""Every physician's identification (name, institution, telephone): referring,
consulting, requesting, performing, of record, reading."""


def is_removed_dicom_keyword(keyword: str) -> bool:
    """Whether :func:`deidentify_dataset` deletes this attribute (person names aside)."""
    return (
        keyword.startswith(_REMOVED_PREFIXES)
        or keyword.endswith(_REMOVED_SUFFIXES)
        or keyword in _DICOM_REMOVED
    )


def _removed_nested(elem: Any) -> bool:
    return bool(elem.keyword in _NESTED_REMOVED or elem.VR == "PN")


def _needs_scrub(items: Any) -> bool:
    """Whether some item of a sequence, at any depth, holds what :func:`_scrub_nested`
    removes."""
    return any(
        _removed_nested(elem) or (elem.VR == "SQ" and _needs_scrub(elem.value))
        for item in items
        for elem in item
    )


def _scrub_nested(items: Any) -> None:
    for item in items:
        for elem in list(item):
            if _removed_nested(elem):
                del item[elem.tag]
            elif elem.VR == "SQ":
                _scrub_nested(elem.value)


def _set_new(ds: Any, keyword: str, value: Any) -> None:
    """Give ``ds`` a new ``keyword`` element holding ``value``.

    ``setattr`` on an attribute ``ds`` already holds changes its element in place, and
    highdicom adds the source's own element objects to a SEG or SR: the source would
    change with it.
    """
    if keyword in ds:
        del ds[keyword]
    setattr(ds, keyword, value)


def deidentify_dataset(ds: Any, *, subject: str) -> None:
    """Replace the patient and study identifiers copied from the source in a DICOM output.

    highdicom copies the source's Patient and General Study modules into a SEG or SR, as
    DICOM requires for objects of the same study. Without ``keep_phi``: patient name and
    ID become the subject label; birth date, sex, accession number, referring physician,
    study ID, date and time are emptied (type 2: present, empty); every other ``Patient*``
    attribute, every ``ClinicalTrial*`` and ``Admitting*`` one, every other person name
    (VR PN: physicians, operators, responsible person) and the patient- and
    visit-describing attributes in ``_DICOM_REMOVED`` (admission ID, last menstrual date,
    physicians' identification sequences, the source's institution address and station
    name) are deleted; the study description is emptied;
    every nested sequence (the source's equipment in ContributingEquipmentSequence) loses
    its person names, patient identifiers, :data:`EQUIPMENT_KEYS` and contribution
    date-time (the source's acquisition date and time); and
    PatientIdentityRemoved/DeidentificationMethod say so. UIDs stay, so that the SEG and
    SR still reference their source images (DeidentificationMethodCodeSequence: DCM
    113110 "Retain UIDs Option"); a vendor's UID may encode the scanner's serial number
    and the acquisition time. The output's own DeviceSerialNumber (top
    level, discquant's) stays.

    highdicom shares element objects, sequences included, with the source datasets: an
    element is never changed in place but replaced by a new one, and a sequence is
    scrubbed in a deep copy, so the source datasets are not modified.
    """
    for elem in list(ds):  # everything identifying goes; name, ID and type 2 come back below
        if is_removed_dicom_keyword(elem.keyword) or elem.VR == "PN":
            del ds[elem.tag]
    _set_new(ds, "PatientName", subject)
    _set_new(ds, "PatientID", subject)
    for keyword in _DICOM_EMPTIED:
        _set_new(ds, keyword, "")
    for elem in list(ds):
        if elem.VR == "SQ" and _needs_scrub(elem.value):
            scrubbed = copy.deepcopy(elem)
            _scrub_nested(scrubbed.value)
            ds[elem.tag] = scrubbed
    _set_new(ds, "PatientIdentityRemoved", "YES")
    _set_new(
        ds, "DeidentificationMethod", "discquant: patient and study identifiers replaced or removed"
    )
    _set_new(ds, "DeidentificationMethodCodeSequence", [_retain_uids_code()])


def _retain_uids_code() -> Any:
    """DCM 113110 "Retain UIDs Option": the de-identified SEG and SR keep the source's
    UIDs (to reference its images), and a vendor's UID can hold the scanner's serial
    number and the acquisition date and time (:func:`withhold_uids`): said in the object,
    not only in the docs (a review)."""
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes

    code = codes.DCM.RetainUidsOption
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


MIN_IDENTIFIER_CHARS = 4
"""Identifier pieces shorter than this (a patient ID "7", a name part "Li") are not
compared with labels and file names, where they are looked for inside words: they would
match by chance."""

MIN_NAME_WORD_CHARS = 2
"""Name words this long (``Li``, ``Ng``, ``Wu``) are still withheld from series
descriptions (:func:`redact_identifiers`), which compares whole words: the short names
of many families were shown."""

PROTOCOL_WORDS = frozenset(
    {"ax", "cor", "sag", "tra", "tse", "fse", "se", "ir", "ep", "dwi", "adc", "loc", "fat",
     "sat", "fs", "t1", "t2", "b0", "mr", "mri"}
)  # fmt: skip
"""Short words of series descriptions (``T2_TSE_SAG``, ``3-plane LOC``) that a name word of
2-3 letters (the surname Tse, the given name Loc) does not withhold: they name the
sequence, and the importer reads descriptions to tell series apart."""


def _alnum(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


PLACEHOLDER_IDENTIFIERS = frozenset(
    {"anon", "anonym", "anonymous", "anonymized", "anonymised", "unknown", "patient",
     "phantom", "synthetic", "test", "none", "removed", "deidentified"}
)  # fmt: skip
"""Values anonymisers and test data put in PatientName/PatientID: not identifying, and a
label may well contain them (``anonymized03``, ``phantom01``)."""


def is_placeholder(value: str) -> bool:
    """Whether a PatientName or PatientID holds only placeholders
    (:data:`PLACEHOLDER_IDENTIFIERS`: ``ANONYMIZED``, ``PHANTOM^SYNTHETIC``), which many
    patients share: no evidence that two series are one patient.

    >>> is_placeholder("Anonymous^Patient"), is_placeholder("ANON0042")
    (True, False)
    """
    parts = [_alnum(p) for p in re.split(r"[\s^]+", value)]
    return all(not p or p in PLACEHOLDER_IDENTIFIERS for p in parts)


def _values(value: object) -> list[str]:
    """A DICOM value as strings: one per item of a multi-valued one (pydicom's
    ``MultiValue``, a list, or a raw ``A\\B`` string)."""
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str) or not isinstance(value, Iterable):
        return str(value).split("\\")
    return [str(v) for v in value if v is not None]


def identifier_tokens(
    patient_id: object,
    patient_name: object,
    *,
    identity_removed: object = None,
    accession_number: object = None,
    other_patient_ids: object = None,
    birth_date: object = None,
) -> frozenset[str]:
    """The patient's ID and name, and each ``^`` component of the name, the accession
    number, every other patient ID (multi-valued) and the birth date (``YYYYMMDD``, only
    when it is a full 8-digit date), in lower-case letters and digits (the form of a BIDS
    label), for :func:`label_holds_identifier`. Kept in memory only, never written.

    None when the header says the identity was removed (PatientIdentityRemoved ``YES``):
    a pseudonymised dataset often carries the subject code as its PatientID, which is
    no identifier; its accession number and birth date, if any, are replaced or shifted
    as well, so the same rule covers them. Placeholders (:data:`PLACEHOLDER_IDENTIFIERS`)
    and pieces shorter than :data:`MIN_IDENTIFIER_CHARS` are left out, but for the
    letters-only words of the name, kept from :data:`MIN_NAME_WORD_CHARS` (the short ones
    serve :func:`redact_identifiers` alone).
    """
    if str(identity_removed or "").strip().upper() == "YES":
        return frozenset()
    pieces = [str(patient_id or ""), str(patient_name or "")]
    components = str(patient_name or "").split("^")
    # and each word of a component: "Ann Marie^Smith" is typed as "Ann Marie" too
    words = {_alnum(w) for c in components for w in c.split()}
    pieces += components + list(words)
    pieces += _values(accession_number)
    pieces += _values(other_patient_ids)
    birth = str(birth_date or "").strip()
    if re.fullmatch(r"\d{8}", birth):  # a partial date (year only) would match by chance
        pieces.append(birth)
    return frozenset(
        t
        for t in map(_alnum, pieces)
        if t not in PLACEHOLDER_IDENTIFIERS
        and (
            len(t) >= MIN_IDENTIFIER_CHARS
            or (
                t in words
                and t.isalpha()
                and len(t) >= MIN_NAME_WORD_CHARS
                and t not in PROTOCOL_WORDS
            )
        )
    )


SITE_WORDS_KEPT = PROTOCOL_WORDS | frozenset(
    {"spine", "spinal", "lumbar", "imaging", "diffusion", "neuro", "body", "scan",
     "magnetic", "resonance", "tomography", "stir", "tirm", "flair", "scout", "survey",
     "localizer", "localiser"}
)  # fmt: skip
"""Words of an institution's name (``Spine Imaging Center``) that series descriptions use
for the sequence or the body part: not withheld on their own (:func:`description_tokens`),
as the importer reads descriptions to tell series apart (``STIR``, ``SCOUT``: the hints
of :mod:`discquant.io.roles`)."""

MIN_SITE_CHARS = 3
"""An institution's name, or a word of it, this long (``MGH``, ``Basel``) is withheld from
series descriptions; shorter ones (``St``, ``of``) would match by chance."""

SITE_STOPWORDS = frozenset(
    {"for", "the", "and", "of", "at", "in", "on", "und", "der", "die", "das", "den", "dem",
     "de", "la", "le", "les", "du", "des", "del", "della", "di", "da", "do", "dos", "et",
     "en", "het", "van", "von", "zu", "zum", "zur", "am", "im", "st", "ste", "saint",
     "sainte", "sankt", "san", "santa", "santo"}
)  # fmt: skip
"""Function words of an institution's name (``Hospital for Special Surgery``, ``Klinikum
der Universitat``, ``Saint Mary``): not withheld on their own (:func:`description_tokens`;
``T2 SAG for disc`` read ``T2 SAG [withheld] disc``), only as part of the whole name."""

WHOLE_PART_MARK = "="
"""Marks a token of :func:`description_tokens` (a site word holding letters and digits,
``=mr1`` of ``MR1 Zentrum``) that :func:`redact_identifiers` withholds only as a whole
part of a description, never inside a longer word (``dwi_mr1x`` stays)."""

DESCRIPTION_DATE_KEYS: tuple[str, ...] = (
    "PatientBirthDate",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "AcquisitionDateTime",
)
"""The header's dates that :func:`description_tokens` withholds from series descriptions
(a date-time counts by its date)."""


def _date_token(value: object) -> str | None:
    """A DICOM date (``YYYYMMDD``), date-time or ISO date (``YYYY-MM-DD``, as dcm2niix
    writes one) as ``YYYYMMDD``; None for anything else (a year alone, an empty value).

    >>> _date_token("20240102"), _date_token("2024-01-02T10:15:00"), _date_token("1958")
    ('20240102', '20240102', None)
    """
    text = str(value or "").strip()
    found = re.match(r"(\d{4})-?(\d{2})-?(\d{2})", text)
    if found is None:
        return None
    year, month, day = (int(g) for g in found.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and year >= 1800):
        return None
    return "".join(found.groups())


def description_tokens(
    identifiers: frozenset[str],
    *,
    institution_name: object = None,
    dates: Iterable[object] = (),
) -> frozenset[str]:
    """What :func:`redact_identifiers` withholds from a series description: the patient's
    ``identifiers`` (:func:`identifier_tokens`), the institution's name and each of its
    words, and the header's ``dates`` (:data:`DESCRIPTION_DATE_KEYS`) as ``YYYYMMDD``.

    A technologist may type the site or the day into a description (``T2 SAG Mercy
    2024-03-15``) as well as the patient's name. The site and the study's dates are not
    the patient's identifiers: they are not sought in subject labels and folder names
    (:func:`label_holds_identifier`), where a folder named after the study's date is
    common, and they are withheld even where the identity was removed (a pseudonymised
    header keeps its site, and its dates shifted or not). Words of the institution's name
    shorter than :data:`MIN_SITE_CHARS` or in :data:`SITE_WORDS_KEPT` or
    :data:`SITE_STOPWORDS` are left out; one of letters and digits (``MR1``) is marked
    with :data:`WHOLE_PART_MARK`, as it counts only as a whole part of a description.

    >>> site, dates = "St Mary's Spine Center", ["20240315", "", "2024-03-16T10:00:00"]
    >>> sorted(description_tokens(frozenset({"doe"}), institution_name=site, dates=dates))
    ['20240315', '20240316', 'center', 'doe', 'marys', 'stmarysspinecenter']
    >>> sorted(description_tokens(frozenset(), institution_name="MR1 Zentrum der Stadt"))
    ['=mr1', '=mr1zentrumderstadt', 'stadt', 'zentrum']
    """
    tokens = set(identifiers)
    for name in _values(institution_name):
        whole = _alnum(name)
        words = [_alnum(w) for w in re.split(r"[\s^,;/()&+-]+", name)]
        site = {
            t
            for t in (whole, *words)
            if len(t) >= MIN_SITE_CHARS
            and t not in SITE_WORDS_KEPT
            and not t.isdigit()
            and t not in SITE_STOPWORDS
        }
        # letters and digits: an ID's rule (inside any word) would take dwi_mr1x for MR1
        tokens.update(t if t.isalpha() else WHOLE_PART_MARK + t for t in site)
    tokens.update(t for t in map(_date_token, dates) if t is not None)
    return frozenset(tokens)


def header_description_tokens(header: Any, identifiers: frozenset[str]) -> frozenset[str]:
    """:func:`description_tokens` of a DICOM header (a pydicom dataset) or of a sidecar
    (a dict, read before :func:`scrub_sidecar`): ``identifiers``, its InstitutionName
    and its :data:`DESCRIPTION_DATE_KEYS`; for the DICOM and the NIfTI importer alike.

    >>> sorted(header_description_tokens({"InstitutionName": "Mercy", "StudyDate": "20240315"},
    ...                                  frozenset({"doe"})))
    ['20240315', 'doe', 'mercy']
    """
    return description_tokens(
        identifiers,
        institution_name=header.get("InstitutionName"),
        dates=[header.get(key) for key in DESCRIPTION_DATE_KEYS],
    )


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)


def _years(year: str) -> list[str]:
    """A written year as four digits: a two-digit one (``24``, ``58``) may be of either
    century."""
    return [year] if len(year) == 4 else [f"19{year}", f"20{year}"]


def _dates_in(text: str) -> list[tuple[int, int, set[str]]]:
    """The spans of written dates in ``text`` and what each may mean as ``YYYYMMDD``: with
    the year first (``20240315``, a date-time ``20240315103000``, ``2024-03-15``,
    ``2024.3.15``, ``2024_03_15``, ``2024 03 15``), last (``15.03.2024``, ``3/15/2024``,
    ``15_03_2024``, ``15.03.24``: day or month first, a two-digit year of either century)
    or with the month's English name (``15-Mar-2024``, ``15Mar2024``, ``Mar 15 2024``,
    ``March 15, 2024``, ``2024-Mar-15``).

    >>> [sorted(m) for _, _, m in _dates_in("T2 2024_03_15 20240316103000 17-Mar-24")]
    [['20240315'], ['20240316'], ['19240317', '20240317']]
    """
    found = []
    pos = 0
    while (match := _DATE_IN_TEXT.search(text, pos)) is not None:
        # from the next character, not the match's end: a match that is no date of the
        # header (``2-15-03`` of ``T2-15-03-2024``) hid the real one inside it (a review)
        pos = match.start() + 1
        g = match.groupdict()
        if g["compact"]:
            meant = {g["compact"]}
        elif g["y1"]:
            meant = {f"{g['y1']}{int(g['m1']):02d}{int(g['d1']):02d}"}
        elif g["a"]:
            a, b = int(g["a"]), int(g["b"])
            meant = {
                f"{y}{m:02d}{d:02d}"
                for y in _years(g["y2"] or g["yy"])
                for m, d in ((b, a), (a, b))
            }
        else:
            month = _MONTHS.index((g["n3"] or g["n4"] or g["n5"]).lower()[:3]) + 1
            day = int(g["d3"] or g["d4"] or g["d5"])
            meant = {f"{y}{month:02d}{day:02d}" for y in _years(g["y3"] or g["y4"] or g["y5"])}
        found.append((match.start(), match.end(), meant))
    return found


_DATE_IN_TEXT = re.compile(
    r"(?<!\d)(?:"
    # YYYYMMDD, alone or beginning a DICOM date-time (YYYYMMDDHHMM[SS][.FFFFFF])
    r"(?P<compact>\d{8})(?:\d{4}(?:\d{2}(?:\.\d{1,6})?)?)?"
    r"|(?P<y1>\d{4})(?P<s1>[-./_ ])(?P<m1>\d{1,2})(?P=s1)(?P<d1>\d{1,2})"
    # day or month first; a two-digit year not after a blank (``DWI 5 10 15``, ``T2 Mar 15``)
    r"|(?P<a>\d{1,2})(?P<s2>[-./_ ])(?P<b>\d{1,2})(?P=s2)(?:(?P<y2>\d{4})|(?<! )(?P<yy>\d{2}))"
    rf"|(?P<d3>\d{{1,2}})(?P<s3>[-./_ ]?)(?P<n3>{_MONTH})(?P=s3)(?P<y3>\d{{4}}|(?<! )\d{{2}})"
    rf"|(?<![a-z])(?P<n4>{_MONTH})(?P<s4>[-./_ ]?)(?P<d4>\d{{1,2}})(?:(?P=s4)|, ?)(?P<y4>\d{{4}})"
    rf"|(?P<y5>\d{{4}})(?P<s5>[-./_ ]?)(?P<n5>{_MONTH})(?P=s5)(?P<d5>\d{{1,2}})"
    r")(?!\d)",
    re.IGNORECASE,
)


WITHHELD_WORD = "[withheld]"


def shown_path(path: Path, root: Path | None, identifiers: frozenset[str] = frozenset()) -> str:
    """``path`` as outputs and logs name it: relative to ``root`` (the folder the study
    was read from) when under it, else its file name alone (folder names above the input
    often carry a patient's name); each part that holds one of the patient's
    ``identifiers`` (:func:`label_holds_identifier`; exports name folders ``NAME_MRN``)
    reads ``(withheld)``, and a DICOM UID in a name ``[uid]`` (:func:`withhold_uids`).

    Parts are compared whole, as a path holds them, so a folder named "DOE JOHN 12345"
    or "O'BRIEN" is withheld too (an earlier search of the finished message text for
    path-like words missed both: a review).

    >>> t = identifier_tokens("MRN12345", "DOE^JOHN")
    >>> shown_path(Path("/in/DOE JOHN MRN12345/T2/x.raw"), Path("/in"), t)
    '(withheld)/T2/x.raw'
    >>> shown_path(Path("/elsewhere/a/x.dcm"), Path("/in"), t)
    'x.dcm'
    """
    parts: tuple[str, ...] = (path.name,)
    if root is not None:
        try:
            # a study read from the file itself: its name (`inspect dwi.nii.gz` gave "")
            parts = path.relative_to(root).parts or parts
        except ValueError:
            pass
    return withhold_uids(
        "/".join("(withheld)" if label_holds_identifier(p, identifiers) else p for p in parts)
    )


def redact_identifiers(text: str, tokens: frozenset[str]) -> str:
    """``text`` with the patient's identifiers (``tokens``, :func:`identifier_tokens`)
    replaced by ``[withheld]``.

    For series descriptions: a technologist may type the patient's name into one (a user
    trial's ``T2 TSE SAG Janeqz`` reached the results JSON, the report and ``inspect``;
    PS3.15's basic profile removes the attribute). The rest of the description stays, as
    it names the sequence. A name or an all-digit ID counts as a whole part between
    punctuation (``Gitta`` is not withheld from ``SAGITTAL``, ID ``1000`` not from
    ``b1000``) and only that part is withheld (``t2-tse-sag-[withheld]``); an ID of letters
    and digits (``MRN-0012345``) withholds the word (between blanks and underscores) that
    holds it anywhere.

    >>> t = identifier_tokens("MRN-0012345", "JANEQZ^MARY")
    >>> redact_identifiers("T2_TSE_SAG Janeqz", t), redact_identifiers("DWI MRN-0012345", t)
    ('T2_TSE_SAG [withheld]', 'DWI [withheld]')
    >>> redact_identifiers("t2-tse-sag-Mary b1000", identifier_tokens("1000", "GITTA^MARY"))
    't2-tse-sag-[withheld] b1000'
    >>> redact_identifiers("T2 SAG LI Wei", identifier_tokens("P7", "LI^WEI"))
    'T2 SAG [withheld] [withheld]'

    A site word of letters and digits (marked ``=mr1``: :func:`description_tokens`) counts
    as a whole part only, as names do.

    A date among ``tokens`` (``YYYYMMDD``: the birth date, or the study's from
    :func:`description_tokens`) is withheld as written in ``text`` (:func:`_dates_in`:
    ``20240315``, ``2024-03-15``, ``2024_03_15``, ``15.03.2024``, ``03/15/24``,
    ``15Mar2024``, ...), inside a word too.

    >>> t = description_tokens(frozenset(), institution_name="Mercy", dates=["20240315"])
    >>> redact_identifiers("t2-sag-15.03.2024 MERCY", t), redact_identifiers("DWI_2024-03-16", t)
    ('t2-sag-[withheld] [withheld]', 'DWI_2024-03-16')
    >>> redact_identifiers("T2_SAG_2024_03_15 DWI 15Mar2024 t1 20240315103000", t)
    'T2_SAG_[withheld] DWI [withheld] t1 [withheld]'
    """
    if not tokens:
        return text
    spans: list[tuple[int, int]] = []  # the header's dates, the first of overlapping ones
    for start, end, meant in _dates_in(text):
        if meant & tokens and (not spans or start >= spans[-1][1]):
            spans.append((start, end))
    for start, end in reversed(spans):
        text = text[:start] + WITHHELD_WORD + text[end:]
    marked = {t for t in tokens if t.startswith(WHOLE_PART_MARK)}
    ids = {t for t in tokens - marked if not (t.isalpha() or t.isdigit())}
    whole = (tokens - marked - ids) | {t[len(WHOLE_PART_MARK) :] for t in marked}

    def word(match: re.Match[str]) -> str:
        flat = _alnum(match.group(0))
        if flat in whole or any(t in flat for t in ids):
            return WITHHELD_WORD
        return re.sub(
            r"[A-Za-z0-9]+",
            lambda part: WITHHELD_WORD if part.group(0).lower() in whole else part.group(0),
            match.group(0),
        )

    return re.sub(r"[^\s_]+", word, text)


DESCRIPTION_KEYS: tuple[str, ...] = ("SeriesDescription", "ProtocolName")
"""The free-text sidecar keys that name a series, kept in sidecars and withheld of
identifiers by :func:`redact_sidecar_descriptions`."""


def redact_sidecar_descriptions(sidecar: dict[str, Any], tokens: frozenset[str]) -> None:
    """Withhold ``tokens`` (:func:`redact_identifiers`) from the :data:`DESCRIPTION_KEYS`
    of ``sidecar`` that hold text, in place; for the DICOM and the NIfTI importer alike.

    >>> sidecar = {"SeriesDescription": "T2 Doe", "ProtocolName": "t2_doe", "EchoTime": 0.1}
    >>> redact_sidecar_descriptions(sidecar, frozenset({"doe"}))
    >>> sidecar
    {'SeriesDescription': 'T2 [withheld]', 'ProtocolName': 't2_[withheld]', 'EchoTime': 0.1}
    """
    for key in DESCRIPTION_KEYS:
        value = sidecar.get(key)
        if isinstance(value, str):
            sidecar[key] = redact_identifiers(value, tokens)


_UID_IN_TEXT = re.compile(r"(?<!\d)(?<!\d\.)\d+(?:\.\d+){4,}(?!\.?\d)")
_STANDARD_UID_ROOT = "1.2.840.10008."
"""DICOM's own UIDs (SOP classes, transfer syntaxes) identify no one and name the problem
in a warning ("Unsupported transfer syntax '1.2.840.10008.1.2.4.90'"): kept."""
UID_WITHHELD = "[uid]"


def withhold_uids(text: str) -> str:
    """``text`` with every DICOM UID in it (five or more dot-separated numbers) read
    ``[uid]``.

    Exports (Siemens, Orthanc, dcm4che) name files after the SOP Instance UID, and a
    Siemens UID holds the device serial number and the acquisition date and time
    (``1.3.12.2.1107.5.2.43.67060.2024100913450581287107065``): such a file name reached the
    results JSON, the report and ``inspect`` (a user trial), whose UIDs are otherwise
    dropped.

    >>> withhold_uids("4_DWI/0001_1.3.12.2.1107.5.2.43.67060.20241009134505812.dcm")
    '4_DWI/0001_[uid].dcm'
    >>> withhold_uids("IM0001.dcm, b1000, v1.2.3")
    'IM0001.dcm, b1000, v1.2.3'
    >>> withhold_uids("MR.1.3.12.2.1107.5.2.43.67060.2024.dcm (syntax 1.2.840.10008.1.2.4.90)")
    'MR.[uid].dcm (syntax 1.2.840.10008.1.2.4.90)'
    """

    def uid(match: re.Match[str]) -> str:
        found = match.group(0)
        return found if found.startswith(_STANDARD_UID_ROOT) else UID_WITHHELD

    return _UID_IN_TEXT.sub(uid, text)


def label_holds_identifier(label: str, tokens: frozenset[str]) -> bool:
    """Whether a subject label contains the patient's ID, name, accession number, other
    IDs or birth date (any of ``tokens``, from :func:`identifier_tokens`).

    Examples
    --------
    >>> tokens = identifier_tokens("MRN-0012345", "DOE^JOHN")
    >>> label_holds_identifier("sub-MRN0012345", tokens), label_holds_identifier("P001", tokens)
    (True, False)
    """
    flat = _alnum(label)
    long_enough = (t for t in tokens if len(t) >= MIN_IDENTIFIER_CHARS)  # "li" in "lumbar"
    # An all-digit ID counts only as a whole number: ID 0001 is not in label 00012.
    return any(
        re.search(rf"(?<!\d){t}(?!\d)", flat) if t.isdigit() else t in flat for t in long_enough
    )
