"""DICOM Segmentation (highdicom) of the discs and vertebrae, referencing the source T2 images.

The label map lives on a NIfTI grid (voxel -> RAS+ mm affine, as nibabel/dcm2niix give it);
the source DICOM images place each pixel in LPS mm from their own ImagePositionPatient,
ImageOrientationPatient and PixelSpacing. :func:`labels_on_source_frames` takes every source
pixel's LPS position, turns it into RAS (x and y change sign), maps it through the inverse of
the label affine and reads the nearest label voxel, so SEG frame ``i`` matches source image
``i`` pixel for pixel whatever the slice order or axis flips dcm2niix applied.

Codes (DICOM PS3.16, as bundled in :mod:`pydicom.sr.codedict`):

- category: SCT 91723000 "Anatomical Structure" (CID 7150);
- discs (CID 7604 "Spinal disc"): SCT 80064006 "L1/L2 disc", 67459009 "L2/L3 disc",
  62551000 "L3/L4 disc", 84020006 "L4/L5 disc", 715056000 "L5/S1 disc";
- thoracic levels at the top of the field of view: T1 … T11 vertebrae (CID 7603) and
  T1/T2 … T12/L1 discs (CID 7604), looked up in pydicom's bundled codes;
- vertebrae (CID 7603 "Vertebra"): SCT 23215003 "T12 vertebra", 66794005 "L1 vertebra",
  14293000 "L2 vertebra", 36470004 "L3 vertebra", 11994002 "L4 vertebra",
  49668003 "L5 vertebra", and SCT 54735007 "Sacrum" (CID 7151);
- spinal canal: SCT 61853006 "Vertebral canal";
- anatomic region: SCT 122496007 "Lumbar spine"; 122495006 "Thoracic spine" (T1-T12
  vertebrae, thoracic discs), 1217256009 "Thoraco-lumbar spine" (T12/L1 disc),
  1217253001 "Lumbo-sacral spine" (sacrum).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from discquant import __version__
from discquant.io.privacy import deidentify_dataset
from discquant.io.study import Volume
from discquant.outputs._dicom import with_type2_attributes
from discquant.results import (
    CANAL_LABEL,
    DISC_LABELS,
    LABEL_NAMES,
    VERTEBRA_LABELS,
    AnalysisResult,
    uncertain_label_values,
)

log = logging.getLogger(__name__)

SEG_SERIES_NUMBER = 9901
"""Series number of the SEG (high, so it sorts after the scanner's series)."""

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class SegmentConcept:
    """One segment: label value, SNOMED CT code, meaning, and a display colour."""

    label: int
    code: str
    meaning: str
    rgb: tuple[int, int, int]
    region: tuple[str, str] = ("122496007", "Lumbar spine")
    """Anatomic region (SCT code, meaning); T12 and the thoracic discs were "Lumbar spine"."""

    @property
    def name(self) -> str:
        """The segment's label, the name ``dseg.tsv`` gives its label value."""
        return LABEL_NAMES[self.label][0]


_THORACIC = ("122495006", "Thoracic spine")
_THORACOLUMBAR = ("1217256009", "Thoraco-lumbar spine")
_LUMBOSACRAL = ("1217253001", "Lumbo-sacral spine")


def _thoracic_concepts(kind: str) -> tuple[SegmentConcept, ...]:
    """T1 … T11 vertebrae (labels 8 … 18; ``kind`` "vertebrae") or the T1-T2 … T11-T12
    and T12-L1 discs (108 … 119; "discs"), which a lumbar field of view often shows at its
    top: CID 7603 and 7604 code them (from pydicom's bundled PS3.16), and the SEG left them
    out (an audit)."""
    from pydicom.sr.codedict import codes

    if kind == "vertebrae":
        return tuple(
            SegmentConcept(7 + k, c.value, c.meaning, (150, 170, 190), _THORACIC)
            for k in range(1, 12)
            for c in [getattr(codes.SCT, f"T{k}Vertebra")]
        )
    discs = [
        SegmentConcept(107 + k, c.value, c.meaning, (230, 220, 160), _THORACIC)
        for k in range(1, 12)
        for c in [getattr(codes.SCT, f"T{k}T{k + 1}Disc")]
    ]
    c = codes.SCT.T12L1Disc
    discs.append(SegmentConcept(119, c.value, c.meaning, (240, 225, 140), _THORACOLUMBAR))
    return tuple(discs)


SEGMENT_CONCEPTS: tuple[SegmentConcept, ...] = (  # vertebrae head to feet, then discs
    *_thoracic_concepts("vertebrae"),
    SegmentConcept(VERTEBRA_LABELS["T12"], "23215003", "T12 vertebra", (110, 160, 200), _THORACIC),
    SegmentConcept(VERTEBRA_LABELS["L1"], "66794005", "L1 vertebra", (78, 179, 211)),
    SegmentConcept(VERTEBRA_LABELS["L2"], "14293000", "L2 vertebra", (67, 162, 202)),
    SegmentConcept(VERTEBRA_LABELS["L3"], "36470004", "L3 vertebra", (43, 140, 190)),
    SegmentConcept(VERTEBRA_LABELS["L4"], "11994002", "L4 vertebra", (8, 104, 172)),
    SegmentConcept(VERTEBRA_LABELS["L5"], "49668003", "L5 vertebra", (8, 64, 129)),
    SegmentConcept(VERTEBRA_LABELS["S1"], "54735007", "Sacrum", (90, 90, 160), _LUMBOSACRAL),
    *_thoracic_concepts("discs"),
    SegmentConcept(DISC_LABELS["L1-L2"], "80064006", "L1/L2 disc", (255, 237, 111)),
    SegmentConcept(DISC_LABELS["L2-L3"], "67459009", "L2/L3 disc", (254, 217, 118)),
    SegmentConcept(DISC_LABELS["L3-L4"], "62551000", "L3/L4 disc", (254, 178, 76)),
    SegmentConcept(DISC_LABELS["L4-L5"], "84020006", "L4/L5 disc", (253, 141, 60)),
    SegmentConcept(DISC_LABELS["L5-S1"], "715056000", "L5/S1 disc", (240, 59, 32)),
    SegmentConcept(CANAL_LABEL, "61853006", "Vertebral canal", (180, 180, 180)),
)
"""Segments written to the SEG, in segment-number order (only those present are written)."""


def pixel_to_ras(
    position_lps: Sequence[float],
    orientation: Sequence[float],
    pixel_spacing: Sequence[float],
) -> npt.NDArray[np.float64]:
    """4×4 matrix mapping ``(column, row, 0, 1)`` of one image plane to RAS+ mm.

    DICOM PS3.3 C.7.6.2.1.1: the first three ImageOrientationPatient values are the direction
    of increasing column index, the last three of increasing row index; PixelSpacing is
    (row spacing, column spacing); ImagePositionPatient is the centre of the first pixel,
    in LPS. The third column is the unit plane normal (row cosines × column cosines).
    highdicom's :func:`~highdicom.spatial.create_affine_matrix_from_attributes` builds
    the LPS matrix; it raises ``ValueError`` for a spacing that is not positive.
    """
    from highdicom.spatial import create_affine_matrix_from_attributes

    lps = create_affine_matrix_from_attributes(
        [float(v) for v in position_lps],
        [float(v) for v in orientation],
        [float(v) for v in pixel_spacing],  # (row, column), as PixelSpacing
    )
    return np.asarray(_LPS_TO_RAS @ lps, dtype=np.float64)


def source_planes(source_datasets: Sequence[Any]) -> list[npt.NDArray[np.float64]]:
    """The pixel-to-RAS matrix of every source frame, in highdicom's frame order.

    A series of single-frame images gives one plane per dataset; one multi-frame (enhanced)
    image gives one plane per frame, from its functional groups.
    """
    if len(source_datasets) == 1 and int(getattr(source_datasets[0], "NumberOfFrames", 1)) > 1:
        ds = source_datasets[0]
        shared = ds.SharedFunctionalGroupsSequence[0]
        planes = []
        for frame in ds.PerFrameFunctionalGroupsSequence:

            def group(name: str, frame: Any = frame) -> Any:
                return getattr(frame, name, None) or getattr(shared, name)

            planes.append(
                pixel_to_ras(
                    group("PlanePositionSequence")[0].ImagePositionPatient,
                    group("PlaneOrientationSequence")[0].ImageOrientationPatient,
                    group("PixelMeasuresSequence")[0].PixelSpacing,
                )
            )
        return planes
    return [
        pixel_to_ras(ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing)
        for ds in source_datasets
    ]


def labels_on_source_frames(
    labels: Volume, source_datasets: Sequence[Any]
) -> npt.NDArray[np.int32]:
    """The label value at every pixel of every source frame, shape ``(frames, rows, columns)``.

    Nearest-neighbour lookup through the label affine; pixels outside the label grid get 0.
    """
    data = np.rint(np.asarray(labels.data)).astype(np.int32)
    if data.ndim == 4:
        data = data[..., 0]
    inv = np.linalg.inv(np.asarray(labels.affine, dtype=np.float64))
    rows, cols = int(source_datasets[0].Rows), int(source_datasets[0].Columns)
    planes = source_planes(source_datasets)
    out = np.zeros((len(planes), rows, cols), dtype=np.int32)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    pix = np.stack([c.ravel(), r.ravel(), np.zeros(c.size), np.ones(c.size)])
    for f, plane in enumerate(planes):
        # np.rint's tie rule; map_coordinates(order=0) breaks exact half-voxel ties
        # differently, which half-voxel grid offsets produce.
        ijk = np.rint((inv @ plane @ pix)[:3]).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.asarray(data.shape)[:, None]), axis=0)
        values = np.zeros(c.size, dtype=np.int32)
        values[inside] = data[ijk[0, inside], ijk[1, inside], ijk[2, inside]]
        out[f] = values.reshape(rows, cols)
    return out


def _check_sources(source_datasets: Sequence[Any], out_path: Path) -> list[Any]:
    from discquant.errors import InvalidInputError

    if not source_datasets:
        raise InvalidInputError("no source T2 DICOM images were given", path=out_path)
    series = {str(ds.SeriesInstanceUID) for ds in source_datasets}
    if len(series) != 1:
        raise InvalidInputError(
            f"source images come from {len(series)} series; a SEG needs exactly one",
            path=out_path,
        )
    return with_type2_attributes(source_datasets)


def write_dicom_seg(
    result: AnalysisResult,
    source_t2_datasets: Sequence[Any],
    out_path: Path,
    *,
    deidentify_as: str | None = None,
) -> Path:
    """Write a binary DICOM SEG of the discs and vertebrae on the source T2 images.

    Parameters
    ----------
    result
        Analysis result with ``labels_t2`` (segmentation on the T2 grid).
    source_t2_datasets
        The source T2 images as pydicom datasets (pixel data need not be loaded).
    out_path
        The ``.dcm`` file to write.
    deidentify_as
        When given, the patient module copied from the source is replaced with this
        subject label and the source's study description and equipment details are
        removed (:func:`discquant.io.privacy.deidentify_dataset`) before writing.

    Notes
    -----
    A source without some type 2 patient or study attribute (PatientID, StudyDate, ...,
    as anonymisers leave them) is given to highdicom as a copy with them empty; the
    source datasets themselves are not modified.

    Raises
    ------
    InvalidInputError
        No segmentation, no source images, or no labelled pixel on them.
    """
    import highdicom as hd
    from pydicom.sr.coding import Code

    from discquant.errors import InvalidInputError

    if result.labels_t2 is None:
        raise InvalidInputError("no T2 segmentation to write as DICOM SEG", path=out_path)
    sources = _check_sources(source_t2_datasets, out_path)
    frames = labels_on_source_frames(result.labels_t2, sources)
    present = set(np.unique(frames).tolist())
    concepts = [c for c in SEGMENT_CONCEPTS if c.label in present]
    if not concepts:
        raise InvalidInputError(
            "the segmentation has no disc or vertebra on the source T2 images", path=out_path
        )
    segment_map = np.zeros_like(frames, dtype=np.uint8)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="discquant",
        family=Code("123110", "DCM", "Artificial Intelligence"),
        version=__version__,
    )
    uncertain = uncertain_label_values(result)
    descriptions = []
    for number, concept in enumerate(concepts, start=1):
        segment_map[frames == concept.label] = number
        doubt = concept.label in uncertain
        description = hd.seg.SegmentDescription(
            segment_number=number,
            # Viewers show the label, rarely the description: a doubtful name said only
            # in the description read as certain in OHIF and Slicer (an audit).
            segment_label=f"{concept.name} (level uncertain)" if doubt else concept.name,
            segmented_property_category=Code("91723000", "SCT", "Anatomical Structure"),
            segmented_property_type=Code(concept.code, "SCT", concept.meaning),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=hd.UID(),
            tracking_id=concept.name,
            anatomic_regions=[Code(concept.region[0], "SCT", concept.region[1])],
            display_color=hd.color.CIELabColor.from_rgb(*concept.rgb),
        )
        if doubt:
            # Segment Description (0062,0006, type 3; highdicom has no argument for it). The
            # tracking ID stays "<level> disc": the SR's groups join on it.
            description.SegmentDescription = f"{concept.name} (level uncertain)"
        descriptions.append(description)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=segment_map,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="discquant",
        manufacturer_model_name="discquant",
        software_versions=__version__,
        device_serial_number="none",
        series_description="discquant discs and vertebrae",
        content_label="DISCS",
        content_description="Lumbar discs and vertebrae (research use only)",
    )
    if deidentify_as is not None:
        deidentify_dataset(seg, subject=deidentify_as)
    # Content Creator's Name (0070,0084) is type 2 in the Segmentation Image module: present,
    # empty for software. highdicom writes it only when given one (validators said missing).
    seg.ContentCreatorName = ""
    seg.save_as(out_path)
    log.debug("wrote DICOM SEG %s with %d segments", out_path, len(concepts))
    return out_path
