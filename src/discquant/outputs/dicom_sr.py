"""DICOM Structured Report (TID 1500 Measurement Report, Comprehensive 3D SR) per disc.

One measurement group per disc that was found, tracked by its level name, with:

- finding site: the SNOMED CT concept of the disc (CID 7604, see :mod:`.dicom_seg`);
- ADC, DCM 113041 "Apparent Diffusion Coefficient", UCUM ``um2/ms`` (1 µm²/ms =
  10⁻³ mm²/s), mean (SCT 373098007) and median (SCT 373099004) in the nucleus pulposus
  region and in the whole disc, the region named by the measurement method, with the
  number of DWI voxels in each region;
- volume, SCT 118565006 "Volume", UCUM ``mm3``; middle height, DCM 121207 "Height", ``mm``;
- the Pfirrmann grade and the ADC class as qualitative evaluations, with the grade's
  probability and the expected grade;
- each of the disc's flags (``level_uncertain``, ``low_snr``, ``partial_fov``, the
  ``*_withheld_*`` reasons, ...) as a qualitative evaluation ``99DISCQUANT FLAG``, its
  value coded by the flag's name, so a reader sees e.g. an L4-L5 ADC together with the
  doubt on its level name. A withheld value is absent from the group, never 0.

The study's flags (``AnalysisResult.flags``) are coded the same way in the report's
document-level "Qualitative Evaluations" container (TID 1500, UMLS C0034375). Its free-text
warnings are not copied: they may name input files and series descriptions, which the
de-identified SR must not carry; the results JSON holds them.

No standard code exists for the Pfirrmann grade or for discquant's regions, so they use a
private coding scheme, ``99DISCQUANT`` (PS3.16 allows local schemes prefixed "99").
When ``seg_path`` is given, every group also references its disc's segment in that SEG
(TID 1411 volumetric ROI), so a viewer can show the region the numbers come from. The
diffusion images the ADC values were computed from are listed in the SR's evidence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from discquant import __version__
from discquant.io.privacy import deidentify_dataset
from discquant.outputs._dicom import with_type2_attributes
from discquant.outputs.dicom_seg import SEGMENT_CONCEPTS
from discquant.results import DISC_LABELS, FLAG_MEANINGS, AnalysisResult, DiscResult

log = logging.getLogger(__name__)

SR_SERIES_NUMBER = 9902
LOCAL_SCHEME = "99DISCQUANT"
GRADE_NAMES = ("I", "II", "III", "IV", "V")

_DISC_CODE = {c.label: (c.code, c.meaning) for c in SEGMENT_CONCEPTS}


def _local(value: str, meaning: str) -> Any:
    from pydicom.sr.coding import Code

    return Code(value, LOCAL_SCHEME, meaning)


def disc_site_code(level: str) -> Any:
    """The SNOMED CT concept of a lumbar disc level (e.g. L4-L5 -> SCT 84020006)."""
    from pydicom.sr.coding import Code

    code, meaning = _DISC_CODE[DISC_LABELS[level]]
    return Code(code, "SCT", meaning)


def _measurements(disc: DiscResult) -> list[Any]:
    import highdicom as hd
    from pydicom.sr.coding import Code

    adc = Code("113041", "DCM", "Apparent Diffusion Coefficient")
    um2_per_ms = Code("um2/ms", "UCUM", "um2/ms")
    mean = Code("373098007", "SCT", "Mean")
    median = Code("373099004", "SCT", "Median")
    out = []
    regions = (
        (disc.adc_np, _local("NP_REGION", "Nucleus pulposus region (discquant)")),
        (disc.adc_disc, _local("DISC_REGION", "Disc core region (discquant)")),
    )
    for stats, method in regions:
        if stats is None:
            continue
        for derivation, value in ((mean, stats.mean), (median, stats.median)):
            if not _finite(value):  # withheld, as the tables' n/a and the JSON's null
                continue
            out.append(
                hd.sr.Measurement(
                    name=adc,
                    value=_decimal(value),
                    unit=um2_per_ms,
                    derivation=derivation,
                    method=method,
                )
            )
        # The region is on the DWI grid and is not the SEG's disc segment the group
        # references: how many DWI voxels a value rests on (49 for a grade V nucleus)
        # was nowhere in the SR (an audit).
        out.append(
            hd.sr.Measurement(
                name=_local("VOXEL_COUNT", "Number of DWI voxels in the ADC region"),
                value=int(stats.n_voxels),
                unit=Code("{voxels}", "UCUM", "voxels"),
                method=method,
            )
        )
    if disc.volume_mm3 is not None and _finite(disc.volume_mm3):
        out.append(
            hd.sr.Measurement(
                name=Code("118565006", "SCT", "Volume"),
                value=_decimal(disc.volume_mm3),
                unit=Code("mm3", "UCUM", "mm3"),
            )
        )
    if disc.height_middle_mm is not None and _finite(disc.height_middle_mm):
        out.append(
            hd.sr.Measurement(
                name=Code("121207", "DCM", "Height"),
                value=_decimal(disc.height_middle_mm),
                unit=Code("mm", "UCUM", "mm"),
                method=_local("MIDDLE_HEIGHT", "Disc height at mid-depth (discquant)"),
            )
        )
    return out


def _decimal(value: float) -> float:
    """``value`` to the 6 significant digits the disc table writes (``1.23457``): the SR
    wrote every digit of a float (``1.2345678912345``), a precision no measurement has,
    and the SR and the TSV then showed one value two ways (an audit)."""
    from discquant.outputs.tables import format_cell

    return float(format_cell(float(value)))


def _finite(value: float | None) -> bool:
    """A value the SR can encode: DICOM decimal strings have no NaN or infinity, and one
    such value made highdicom refuse the whole report."""
    return value is not None and math.isfinite(value)


def _evaluations(disc: DiscResult) -> list[Any]:
    import highdicom as hd

    out = []
    if disc.pfirrmann_grade is not None:
        roman = GRADE_NAMES[disc.pfirrmann_grade - 1]
        out.append(
            hd.sr.QualitativeEvaluation(
                name=_local("PFIRRMANN", "Pfirrmann grade"),
                value=_local(f"PFIRRMANN_{roman}", f"Pfirrmann grade {roman}"),
            )
        )
    if disc.adc_class is not None:
        out.append(
            hd.sr.QualitativeEvaluation(
                name=_local("ADC_CLASS", "Nucleus ADC class"),
                value=_local(f"ADCC_{disc.adc_class.upper()}"[:16], disc.adc_class),
            )
        )
    return out


def _grade_measurements(disc: DiscResult) -> list[Any]:
    """The grader's confidence beside its grade: the probability of the grade given and
    the expected grade (the grade was a bare code; an audit)."""
    import highdicom as hd
    from pydicom.sr.coding import Code

    out: list[Any] = []
    if disc.pfirrmann_grade is None:  # withheld: no confidence in a grade not given
        return out
    if (probabilities := disc.pfirrmann_probabilities) is not None:
        p = probabilities[disc.pfirrmann_grade - 1]
        if _finite(p):
            out.append(
                hd.sr.Measurement(
                    name=_local("PFIRRMANN_PROB", "Probability of the Pfirrmann grade"),
                    value=_decimal(p),
                    unit=Code("1", "UCUM", "no units"),
                )
            )
    if _finite(disc.pfirrmann_expected):
        out.append(
            hd.sr.Measurement(
                name=_local("PFIRRMANN_EXP", "Expected Pfirrmann grade"),
                value=_decimal(disc.pfirrmann_expected),  # type: ignore[arg-type]
                unit=Code("1", "UCUM", "no units"),
            )
        )
    return out


DEVICE_OBSERVER_UID = "2.25.133867343367038360348727868062648925697"
"""The Device Observer UID of every SR: discquant as one device (it was a new UID on every
run, so a PACS could not group the reports of one device). A UUID-derived OID (``2.25.``,
PS3.5 B.2), made once with
``pydicom.uid.generate_uid(prefix=None, entropy_srcs=["discquant"])``."""

FLAG_CONCEPT = ("FLAG", "discquant flag")


def flag_code(flag: str) -> Any:
    """The ``99DISCQUANT`` code of a flag: the flag's name is the code value (as in the
    tables and the JSON; highdicom writes one over 16 characters as a Long Code Value)."""
    meaning = FLAG_MEANINGS.get(flag, flag.replace("_", " "))
    return _local(flag, meaning[:64])


def _flag_evaluations(flags: Sequence[str]) -> list[Any]:
    import highdicom as hd

    return [
        hd.sr.QualitativeEvaluation(name=_local(*FLAG_CONCEPT), value=flag_code(flag))
        for flag in dict.fromkeys(flags)  # once each, in order
    ]


def _study_flags_container(flags: Sequence[str]) -> Any:
    """TID 1500's document-level "Qualitative Evaluations" container (UMLS C0034375) with
    the study's flags; highdicom's MeasurementReport has no argument for it."""
    import highdicom as hd

    container = hd.sr.ContainerContentItem(
        name=hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations"),
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = hd.sr.ContentSequence(
        [item for evaluation in _flag_evaluations(flags) for item in evaluation]
    )
    return container


def _segments(seg: Any) -> dict[str, tuple[int, str]]:
    """Tracking ID (e.g. ``L4-L5 disc``) -> (segment number, tracking UID) in a SEG. Not
    the segment label, which says "(level uncertain)" where the name is in doubt.

    The SR's measurement group of a disc takes its segment's tracking UID, so that the
    disc is one tracked finding across the SEG and the SR (DICOM PS3.3 C.8.20.4: the
    Tracking UID identifies a finding "potentially across multiple reporting objects").
    """
    return {
        str(item.TrackingID): (int(item.SegmentNumber), str(item.TrackingUID))
        for item in seg.SegmentSequence
    }


def referenced_segment(seg: Any, number: int) -> Any:
    """TID 1411's reference to segment ``number`` of ``seg`` and to its source images.

    Parameters
    ----------
    seg
        The DICOM SEG (pydicom dataset).
    number
        The segment's number in ``seg``.

    Returns
    -------
    highdicom.sr.ReferencedSegment
        The segment, and every source image (with the frames of a multi-frame one) that
        a frame of the segment was derived from.

    Raises
    ------
    ValueError
        ``seg`` has no frame of segment ``number``.

    Notes
    -----
    highdicom's ``ReferencedSegment.from_segmentation`` (0.28) reads each frame's segment
    number from the per-frame functional groups only, while highdicom writes it in the
    shared ones when the SEG has a single segment (a disc-only label map): the SR failed
    then. Here each functional group is looked up in the frame's item first, then in the
    shared item (DICOM PS3.3 C.7.6.16.1.1). A SEG whose frames name no source image
    references the source series (as highdicom does).
    """
    import highdicom as hd
    from pydicom.multival import MultiValue

    shared = seg.SharedFunctionalGroupsSequence[0]

    def group(frame: Any, name: str) -> Any:
        return frame.get(name) or shared.get(name) or []

    images: dict[str, tuple[str, list[int]]] = {}  # instance UID -> class UID, frames
    has_frames = False
    for frame in seg.PerFrameFunctionalGroupsSequence:
        identification = group(frame, "SegmentIdentificationSequence")
        if not identification or int(identification[0].ReferencedSegmentNumber) != number:
            continue
        has_frames = True
        for derivation in group(frame, "DerivationImageSequence"):
            for image in derivation.get("SourceImageSequence", []):
                uid = str(image.ReferencedSOPInstanceUID)
                _, frames = images.setdefault(uid, (str(image.ReferencedSOPClassUID), []))
                value = image.get("ReferencedFrameNumber")
                if value is not None:
                    values = value if isinstance(value, MultiValue) else [value]
                    frames.extend(int(v) for v in values)
    if not has_frames:
        raise ValueError(f"the DICOM SEG has no frame of segment {number}")
    if not images:
        return hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=number,
            source_series=hd.sr.SourceSeriesForSegmentation(
                seg.ReferencedSeriesSequence[0].SeriesInstanceUID
            ),
        )
    return hd.sr.ReferencedSegment(
        sop_class_uid=seg.SOPClassUID,
        sop_instance_uid=seg.SOPInstanceUID,
        segment_number=number,
        source_images=[
            hd.sr.SourceImageForSegmentation(
                referenced_sop_class_uid=class_uid,
                referenced_sop_instance_uid=uid,
                referenced_frame_numbers=sorted(set(frames)) or None,
            )
            for uid, (class_uid, frames) in images.items()
        ],
    )


def write_dicom_sr(
    result: AnalysisResult,
    source_t2_datasets: Sequence[Any],
    out_path: Path,
    *,
    seg_path: Path | None = None,
    adc_datasets: Sequence[Any] | None = None,
    deidentify_as: str | None = None,
) -> Path:
    """Write the per-disc measurement report as a Comprehensive 3D SR.

    Its evidence is the T2 images, the SEG (``seg_path``) and ``adc_datasets``, the DICOM
    images the ADC values come from (raw DWI or the scanner's ADC map; headers suffice):
    those of the T2's study are listed in the Current Requested Procedure Evidence
    Sequence, those of another study in the Pertinent Other Evidence Sequence.

    ``deidentify_as``, when given, replaces the patient module copied from the evidence
    with that subject label and removes the source's study description and equipment
    details before writing (:func:`discquant.io.privacy.deidentify_dataset`). Sources
    without some type 2 patient or study attribute are used through copies with them
    empty; the given datasets are not modified.

    Raises
    ------
    InvalidInputError
        No source images, or no lumbar disc with a value to report.
    """
    import highdicom as hd
    import pydicom
    from highdicom.coding_schemes import CodingSchemeIdentificationItem
    from pydicom.sr.coding import Code

    from discquant.errors import InvalidInputError

    if not source_t2_datasets:
        raise InvalidInputError("no source T2 DICOM images were given", path=out_path)
    seg = pydicom.dcmread(seg_path) if seg_path is not None else None
    segments = _segments(seg) if seg is not None else {}
    device = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=DEVICE_OBSERVER_UID,
            name="discquant",
            model_name=f"discquant {__version__}",
        ),
    )
    algorithm = hd.sr.AlgorithmIdentification(name="discquant", version=__version__)
    groups: list[Any] = []
    with_values = 0
    for disc in result.discs:
        if not disc.found or disc.level not in DISC_LABELS:
            continue
        measurements = _measurements(disc) + _grade_measurements(disc)
        evaluations = _evaluations(disc)
        if measurements or evaluations:
            with_values += 1
        # a disc whose every value was withheld still shows why (its flags)
        evaluations += _flag_evaluations(disc.flags)
        if not measurements and not evaluations:
            continue
        site = hd.sr.FindingSite(anatomic_location=disc_site_code(disc.level))
        number, tracking_uid = segments.get(f"{disc.level} disc", (None, hd.UID()))
        common: dict[str, Any] = {
            "tracking_identifier": hd.sr.TrackingIdentifier(
                uid=tracking_uid, identifier=f"{disc.level} disc"
            ),
            "finding_type": Code("91723000", "SCT", "Anatomical Structure"),
            "algorithm_id": algorithm,
            "finding_sites": [site],
            "measurements": measurements or None,
            "qualitative_evaluations": evaluations or None,
        }
        if seg is not None and number is not None:
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    referenced_segment=referenced_segment(seg, number),
                    **common,
                )
            )
        else:
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(**common))
    if not with_values:
        raise InvalidInputError(
            "no lumbar disc with a value to report in a DICOM SR", path=out_path
        )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=Code("363679005", "SCT", "Imaging procedure"),
        imaging_measurements=groups,
    )
    if result.flags:
        report[0].ContentSequence.append(_study_flags_container(result.flags))
    evidence = [
        *with_type2_attributes(source_t2_datasets),
        *([seg] if seg is not None else []),
        *(adc_datasets or []),
    ]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="discquant",
        series_description="discquant disc measurements (research use only)",
        # the local scheme declared (PS3.3 C.12.1.1.2.1; it was not: an audit). dciodvfy
        # still warns on its codes: it knows the registered schemes only.
        coding_schemes=[
            CodingSchemeIdentificationItem(
                designator=LOCAL_SCHEME,
                name="discquant local codes (Pfirrmann grade, regions, flags)",
                responsible_organization="discquant project",
            )
        ],
    )
    # highdicom's SR takes no software version (its SEG does): set as the SEG has them, so
    # a PACS can tell which discquant wrote the measurements (a user trial).
    sr.ManufacturerModelName = "discquant"
    sr.SoftwareVersions = __version__
    if deidentify_as is not None:
        deidentify_dataset(sr, subject=deidentify_as)
    sr.save_as(out_path)
    log.debug("wrote DICOM SR %s with %d disc groups", out_path, len(groups))
    return out_path
