"""DICOM SEG and SR written from a pydicom-made T2 series and read back with highdicom."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from tests.outputs.conftest import FOUND_LEVELS, GRADES, Synthetic
from tests.outputs.dicom_factory import lps_of_pixel

from discquant import __version__
from discquant.errors import InvalidInputError
from discquant.outputs.dicom_seg import labels_on_source_frames, pixel_to_ras, write_dicom_seg
from discquant.outputs.dicom_sr import write_dicom_sr
from discquant.results import DISC_LABELS, VERTEBRA_LABELS, AnalysisResult, DiscResult


def test_label_voxels_land_on_the_right_frame_and_pixel(synthetic: Synthetic) -> None:
    """Each source pixel's LPS position, computed from the DICOM attributes, holds the label of
    the voxel of the (RAS-canonical) label volume at that position."""
    labels = synthetic.result.labels_t2
    assert labels is not None
    frames = labels_on_source_frames(labels, synthetic.datasets)
    # Storage order (column, row, slice) is the DICOM order, so the truth is a transpose.
    np.testing.assert_array_equal(frames, np.transpose(synthetic.storage_labels, (2, 1, 0)))
    # And one voxel by hand: the L4-L5 disc voxel nearest the middle of the disc.
    ras_to_vox = np.linalg.inv(labels.affine)
    ds = synthetic.datasets[2]
    lps = lps_of_pixel(ds, row=58, col=30)
    ijk = np.rint(ras_to_vox @ np.array([-lps[0], -lps[1], lps[2], 1.0]))[:3].astype(int)
    assert labels.data[tuple(ijk)] == DISC_LABELS["L4-L5"]
    assert frames[2, 58, 30] == DISC_LABELS["L4-L5"]
    assert frames[0, 58, 30] != DISC_LABELS["L4-L5"]  # discs only in slices 1..3


def test_seg_reads_back_with_segments_references_and_pixels(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    path = write_dicom_seg(synthetic.result, synthetic.datasets, tmp_path / "seg.dcm")
    seg = hd.seg.segread(path)
    labels = {seg.get_segment_description(n).segment_label: n for n in seg.get_segment_numbers()}
    assert {f"{lv} disc" for lv in FOUND_LEVELS} <= set(labels)
    bodies = {f"L{i} vertebral body" for i in range(1, 6)}  # the mask holds the body only
    assert bodies | {"sacrum", "spinal canal"} <= set(labels)
    assert "L5-S1 disc" not in labels
    l45 = seg.get_segment_description(labels["L4-L5 disc"])
    assert l45.segmented_property_type.value == "84020006"
    assert l45.segmented_property_type.scheme_designator == "SCT"
    # Frames reference the source instances.
    source_uids = [str(ds.SOPInstanceUID) for ds in synthetic.datasets]
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    assert referenced == set(source_uids)
    assert seg.StudyInstanceUID == synthetic.datasets[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == synthetic.datasets[0].FrameOfReferenceUID
    # The L4-L5 disc's pixels are where the label volume put them.
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=source_uids,
        segment_numbers=[labels["L4-L5 disc"]],
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )
    truth = np.transpose(synthetic.storage_labels, (2, 1, 0)) == DISC_LABELS["L4-L5"]
    np.testing.assert_array_equal(pixels > 0, truth)


def _content_items(dataset: pydicom.Dataset) -> list[pydicom.Dataset]:
    items = []
    for item in getattr(dataset, "ContentSequence", []):
        items.append(item)
        items.extend(_content_items(item))
    return items


def _groups_by_disc(sr: pydicom.Dataset) -> dict[str, list[pydicom.Dataset]]:
    groups: dict[str, list[pydicom.Dataset]] = {}
    for item in _content_items(sr):
        if item.ConceptNameCodeSequence[0].CodeValue == "125007":  # Measurement Group
            children = _content_items(item)
            tracking = next(
                c.TextValue
                for c in children
                if c.ConceptNameCodeSequence[0].CodeValue == "112039"  # Tracking Identifier
            )
            groups[tracking] = children
    return groups


def _code(item: pydicom.Dataset) -> str:
    """A CODE item's value as ``CodeValue (scheme) meaning``."""
    c = item.ConceptCodeSequence[0]
    return f"{c.CodeValue} ({c.CodingSchemeDesignator}) {c.CodeMeaning}"


def _numbers(items: list[pydicom.Dataset]) -> dict[tuple[str, ...], tuple[float, str]]:
    """A group's NUM items (TID 1419 measurements), each keyed by its concept name (code
    value, meaning), its derivation and its measurement method (code values, "" when absent),
    as (value, ``UCUM``-scheme unit code)."""
    out: dict[tuple[str, ...], tuple[float, str]] = {}
    for item in (i for i in items if i.ValueType == "NUM"):
        name = item.ConceptNameCodeSequence[0]
        modifiers = {
            c.ConceptNameCodeSequence[0].CodeValue: c.ConceptCodeSequence[0].CodeValue
            for c in getattr(item, "ContentSequence", [])
            if c.ValueType == "CODE"
        }
        key = (
            str(name.CodeValue),
            str(name.CodeMeaning),
            modifiers.get("121401", ""),  # Derivation
            modifiers.get("370129005", ""),  # Measurement Method
        )
        assert key not in out, f"measurement {key} written twice"
        value = item.MeasuredValueSequence[0]
        unit = value.MeasurementUnitsCodeSequence[0]
        out[key] = (float(value.NumericValue), f"{unit.CodeValue} ({unit.CodingSchemeDesignator})")
    return out


SITE_CODES = {"L1-L2": "80064006", "L2-L3": "67459009", "L3-L4": "62551000", "L4-L5": "84020006"}
"""SNOMED CT concepts of the lumbar discs (CID 7604)."""


def _expected_numbers(disc: DiscResult) -> dict[tuple[str, ...], tuple[float, str]]:
    """Every measurement the SR holds for ``disc``, from the fixture's values: ADC mean
    (SCT 373098007) and median (SCT 373099004) in the nucleus and in the disc core, in
    um2/ms as in the fixture; volume in mm3; middle height in mm; each region's DWI voxel
    count; the Pfirrmann grade's probability and the expected grade."""
    assert disc.adc_np is not None and disc.adc_disc is not None
    assert disc.volume_mm3 is not None and disc.height_middle_mm is not None
    adc, um2_ms = ("113041", "Apparent Diffusion Coefficient"), "um2/ms (UCUM)"
    mean, median = "373098007", "373099004"
    voxels = ("VOXEL_COUNT", "Number of DWI voxels in the ADC region")
    grade_numbers: dict[tuple[str, ...], tuple[float, str]] = {}
    if disc.pfirrmann_grade is not None and disc.pfirrmann_probabilities is not None:
        key = ("PFIRRMANN_PROB", "Probability of the Pfirrmann grade", "", "")
        grade_numbers[key] = (disc.pfirrmann_probabilities[disc.pfirrmann_grade - 1], "1 (UCUM)")
    if disc.pfirrmann_grade is not None and disc.pfirrmann_expected is not None:
        key = ("PFIRRMANN_EXP", "Expected Pfirrmann grade", "", "")
        grade_numbers[key] = (disc.pfirrmann_expected, "1 (UCUM)")
    return {
        (*adc, mean, "NP_REGION"): (disc.adc_np.mean, um2_ms),
        (*adc, median, "NP_REGION"): (disc.adc_np.median, um2_ms),
        (*adc, mean, "DISC_REGION"): (disc.adc_disc.mean, um2_ms),
        (*adc, median, "DISC_REGION"): (disc.adc_disc.median, um2_ms),
        ("118565006", "Volume", "", ""): (disc.volume_mm3, "mm3 (UCUM)"),
        ("121207", "Height", "", "MIDDLE_HEIGHT"): (disc.height_middle_mm, "mm (UCUM)"),
        # how many DWI voxels each region's ADC rests on (an audit: not in the SR before)
        (*voxels, "", "NP_REGION"): (disc.adc_np.n_voxels, "{voxels} (UCUM)"),
        (*voxels, "", "DISC_REGION"): (disc.adc_disc.n_voxels, "{voxels} (UCUM)"),
        **grade_numbers,
    }


@pytest.mark.parametrize("with_seg", [False, True])
def test_sr_has_each_disc_adc_and_grade(
    synthetic: Synthetic, tmp_path: Path, with_seg: bool
) -> None:
    """Each found disc has one group, tracked by its level name and at its SNOMED CT site,
    holding every value the fixture gives that disc: the four ADCs, the volume and the
    middle height, each with its UCUM unit (and nothing else numeric), the Pfirrmann grade
    and the ADC class. The fixture's values differ, so a value written under another
    quantity, disc or unit fails."""
    seg_path = None
    if with_seg:
        seg_path = write_dicom_seg(synthetic.result, synthetic.datasets, tmp_path / "seg.dcm")
    path = write_dicom_sr(
        synthetic.result, synthetic.datasets, tmp_path / "sr.dcm", seg_path=seg_path
    )
    sr = hd.sr.srread(path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.SeriesDescription.endswith("(research use only)")  # as the SEG says (an audit)
    # which discquant wrote it, as the SEG says (the SR had no SoftwareVersions)
    assert (sr.Manufacturer, sr.SoftwareVersions) == ("discquant", __version__)
    # the private scheme of its codes is declared (it was not: an audit)
    assert [s.CodingSchemeDesignator for s in sr.CodingSchemeIdentificationSequence] == [
        "99DISCQUANT"
    ]
    groups = _groups_by_disc(sr)
    assert set(groups) == {f"{lv} disc" for lv in FOUND_LEVELS}
    fixture = {d.level: d for d in synthetic.result.discs}
    for level in FOUND_LEVELS:
        disc = fixture[level]
        items = groups[f"{level} disc"]
        sites = [
            i.ConceptCodeSequence[0]
            for i in items
            if i.ConceptNameCodeSequence[0].CodeValue == "363698007"  # Finding Site
        ]
        assert [(s.CodeValue, s.CodingSchemeDesignator) for s in sites] == [
            (SITE_CODES[level], "SCT")
        ], level
        expected = _expected_numbers(disc)
        values = [v for v, _ in expected.values()]
        assert len(set(values)) == len(values)  # the fixture tells the quantities apart
        assert _numbers(items) == {
            key: (pytest.approx(value, abs=1e-6), unit) for key, (value, unit) in expected.items()
        }, level
        evaluations = {
            name: [_code(i) for i in items if i.ConceptNameCodeSequence[0].CodeValue == name]
            for name in ("PFIRRMANN", "ADC_CLASS")
        }
        roman = ("I", "II", "III", "IV", "V")[GRADES[level] - 1]
        assert disc.adc_class is not None
        assert evaluations == {
            "PFIRRMANN": [f"PFIRRMANN_{roman} (99DISCQUANT) Pfirrmann grade {roman}"],
            "ADC_CLASS": [f"ADCC_{disc.adc_class.upper()} (99DISCQUANT) {disc.adc_class}"],
        }, level
        referenced_segment = [
            i
            for i in items
            if i.ValueType == "IMAGE"
            and hasattr(i.ReferencedSOPSequence[0], "ReferencedSegmentNumber")
        ]
        assert bool(referenced_segment) == with_seg
        if with_seg:  # every disc is on the three middle slices (DISC_SLICES) only
            on_disc = {str(ds.SOPInstanceUID): None for ds in synthetic.datasets[1:4]}
            assert _referenced_segments(items)["sources"] == on_disc, level
    # one disc is one tracked finding across SEG and SR: the same tracking UID
    group_uids = _tracking_uids_by_disc(sr)
    assert len(set(group_uids.values())) == len(FOUND_LEVELS)
    if with_seg:
        seg = pydicom.dcmread(seg_path)
        segment_uids = {str(s.TrackingID): str(s.TrackingUID) for s in seg.SegmentSequence}
        for name, uid in group_uids.items():
            assert segment_uids[name] == uid, name


def _tracking_uids_by_disc(sr: pydicom.Dataset) -> dict[str, str]:
    out = {}
    for item in _content_items(sr):
        if item.ConceptNameCodeSequence[0].CodeValue == "125007":  # Measurement Group
            children = {c.ConceptNameCodeSequence[0].CodeValue: c for c in _content_items(item)}
            # Tracking Identifier (112039) and Tracking Unique Identifier (112040)
            out[str(children["112039"].TextValue)] = str(children["112040"].UID)
    return out


def test_seg_without_segmentation_is_a_typed_error(synthetic: Synthetic, tmp_path: Path) -> None:
    result = AnalysisResult(subject="x", discs=synthetic.result.discs)
    with pytest.raises(InvalidInputError, match="no T2 segmentation"):
        write_dicom_seg(result, synthetic.datasets, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()
    with pytest.raises(InvalidInputError, match="no lumbar disc"):
        write_dicom_sr(
            AnalysisResult(subject="x", discs=[]), synthetic.datasets, tmp_path / "sr.dcm"
        )


def _enhanced(synthetic: Synthetic) -> hd.legacy.LegacyConvertedEnhancedMRImage:
    """The synthetic T2 slices as one enhanced (multi-frame) MR image."""
    return hd.legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=synthetic.datasets,
        series_instance_uid=hd.UID(),
        series_number=4,
        sop_instance_uid=hd.UID(),
        instance_number=1,
    )


def test_seg_on_an_enhanced_multiframe_source(synthetic: Synthetic, tmp_path: Path) -> None:
    """One enhanced MR image (frames from functional groups) works like the single frames."""
    enhanced = _enhanced(synthetic)
    labels = synthetic.result.labels_t2
    assert labels is not None
    # The converter may reorder frames; compute the truth frame by frame from each position.
    positions = [
        [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]
        for f in enhanced.PerFrameFunctionalGroupsSequence
    ]
    by_position = {
        tuple(float(v) for v in ds.ImagePositionPatient): k
        for k, ds in enumerate(synthetic.datasets)
    }
    truth = np.transpose(synthetic.storage_labels, (2, 1, 0))
    expected = np.stack([truth[by_position[tuple(p)]] for p in positions])
    np.testing.assert_array_equal(labels_on_source_frames(labels, [enhanced]), expected)
    path = write_dicom_seg(synthetic.result, [enhanced], tmp_path / "seg.dcm")
    seg = hd.seg.segread(path)
    assert {uid for _, _, uid in seg.get_source_image_uids()} == {enhanced.SOPInstanceUID}
    number = next(
        n
        for n in seg.get_segment_numbers()
        if seg.get_segment_description(n).segment_label == "L3-L4 disc"
    )
    pixels = seg.get_pixels_by_source_frame(
        source_sop_instance_uid=enhanced.SOPInstanceUID,
        source_frame_numbers=list(range(1, len(positions) + 1)),
        segment_numbers=[number],
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )
    np.testing.assert_array_equal(pixels > 0, expected == DISC_LABELS["L3-L4"])


def test_a_non_finite_value_is_left_out_of_the_sr_not_the_whole_sr(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """One NaN volume made highdicom refuse the SR of every disc."""
    import dataclasses

    discs = [
        dataclasses.replace(d, volume_mm3=float("nan")) if d.level == "L1-L2" else d
        for d in synthetic.result.discs
    ]
    result = dataclasses.replace(synthetic.result, discs=discs)
    sr = hd.sr.srread(write_dicom_sr(result, synthetic.datasets, tmp_path / "sr.dcm"))
    groups = _groups_by_disc(sr)
    assert set(groups) == {f"{lv} disc" for lv in FOUND_LEVELS}
    volumes = {
        level: [i for i in groups[f"{level} disc"]
                if i.ValueType == "NUM" and i.ConceptNameCodeSequence[0].CodeValue == "118565006"]
        for level in FOUND_LEVELS
    }  # fmt: skip
    assert volumes["L1-L2"] == [] and all(len(volumes[lv]) == 1 for lv in FOUND_LEVELS[1:])


def test_sr_values_carry_the_tables_six_significant_digits(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """The SR wrote every digit of a float (``1.2345678912345``): its numbers now read as
    the disc table's (``tables.format_cell``), 6 significant digits."""
    import dataclasses

    from discquant.outputs.tables import format_cell

    long_values = {"volume_mm3": 5280.123456789, "height_middle_mm": 8.87654321987}
    discs = [
        dataclasses.replace(d, **long_values) if d.level == "L1-L2" else d
        for d in synthetic.result.discs
    ]
    result = dataclasses.replace(synthetic.result, discs=discs)
    sr = hd.sr.srread(write_dicom_sr(result, synthetic.datasets, tmp_path / "sr.dcm"))
    written = {
        str(i.ConceptNameCodeSequence[0].CodeMeaning): str(i.MeasuredValueSequence[0].NumericValue)
        for i in _groups_by_disc(sr)["L1-L2 disc"]
        if i.ValueType == "NUM"
        and i.ConceptNameCodeSequence[0].CodeValue in ("118565006", "121207")
    }
    assert written == {"Volume": "5280.12", "Height": "8.87654"}
    assert written == {
        "Volume": format_cell(long_values["volume_mm3"]),
        "Height": format_cell(long_values["height_middle_mm"]),
    }


def _flags(items: list[pydicom.Dataset]) -> list[str]:
    """Code values of a group's (or container's) ``99DISCQUANT FLAG`` evaluations."""
    codes = [
        i.ConceptCodeSequence[0]
        for i in items
        if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "FLAG"
    ]
    # a value over 16 characters is a Long Code Value (PS3.3 8.9)
    return [str(c.get("LongCodeValue") or c.CodeValue) for c in codes]


@pytest.mark.parametrize("with_seg", [False, True])
def test_sr_carries_each_disc_flags_and_the_study_flags(
    synthetic: Synthetic, tmp_path: Path, with_seg: bool
) -> None:
    """A PACS reader saw an ADC without the doubt on its level name or its noise."""
    import dataclasses

    flagged = {"L2-L3": ["level_uncertain", "low_snr"], "L3-L4": ["adc_withheld_too_few_voxels"]}
    discs = [
        dataclasses.replace(
            d,
            flags=flagged.get(d.level, d.flags),
            adc_np=None if d.level == "L3-L4" else d.adc_np,
            adc_disc=None if d.level == "L3-L4" else d.adc_disc,
        )
        for d in synthetic.result.discs
    ]
    result = dataclasses.replace(
        synthetic.result, discs=discs, flags=["sacrum_not_in_fov", "level_uncertain"]
    )
    seg_path = None
    if with_seg:
        seg_path = write_dicom_seg(result, synthetic.datasets, tmp_path / "seg.dcm")
    sr = hd.sr.srread(
        write_dicom_sr(result, synthetic.datasets, tmp_path / "sr.dcm", seg_path=seg_path)
    )
    groups = _groups_by_disc(sr)
    assert _flags(groups["L2-L3 disc"]) == ["level_uncertain", "low_snr"]
    assert _flags(groups["L1-L2 disc"]) == []  # unflagged
    assert _flags(groups["L4-L5 disc"]) == ["poor_fit"]
    meanings = {
        i.ConceptCodeSequence[0].CodeMeaning
        for i in groups["L2-L3 disc"]
        if i.ConceptNameCodeSequence[0].CodeValue == "FLAG"
    }
    assert meanings == {
        "Level name uncertain: it may be one level off",
        "Nucleus ADC noise-limited (low SNR)",
    }
    # a withheld ADC is absent (not 0), and the group says why
    adc_items = [
        i
        for i in groups["L3-L4 disc"]
        if i.ValueType == "NUM" and i.ConceptNameCodeSequence[0].CodeValue == "113041"
    ]
    assert adc_items == []
    assert _flags(groups["L3-L4 disc"]) == ["adc_withheld_too_few_voxels"]
    # the study's flags: TID 1500's document-level Qualitative Evaluations container
    containers = [
        i
        for i in sr.ContentSequence
        if i.ValueType == "CONTAINER" and i.ConceptNameCodeSequence[0].CodeValue == "C0034375"
    ]
    assert len(containers) == 1
    assert _flags(list(containers[0].ContentSequence)) == ["sacrum_not_in_fov", "level_uncertain"]
    # highdicom reads the flags back as the groups' qualitative evaluations
    parsed = {
        str(g.tracking_identifier): [str(e.value.value) for e in g.get_qualitative_evaluations()]
        for g in sr.content.get_volumetric_roi_measurement_groups()
        + sr.content.get_planar_roi_measurement_groups()
        + sr.content.get_image_measurement_groups()
    }
    assert "level_uncertain" in parsed["L2-L3 disc"] and "low_snr" in parsed["L2-L3 disc"]
    assert "level_uncertain" not in parsed["L1-L2 disc"]


def test_a_disc_with_every_value_withheld_keeps_its_flags_in_the_sr(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    import dataclasses

    empty = {"adc_np": None, "adc_disc": None, "volume_mm3": None, "height_middle_mm": None}
    discs = [
        dataclasses.replace(
            d, **empty, pfirrmann_grade=None, adc_class=None, flags=["disc_not_in_dwi"]
        )
        if d.level == "L1-L2"
        else d
        for d in synthetic.result.discs
    ]
    result = dataclasses.replace(synthetic.result, discs=discs)
    sr = hd.sr.srread(write_dicom_sr(result, synthetic.datasets, tmp_path / "sr.dcm"))
    items = _groups_by_disc(sr)["L1-L2 disc"]
    assert _flags(items) == ["disc_not_in_dwi"]
    assert not [i for i in items if i.ValueType == "NUM"]
    # flags alone are not a value to report
    only_flags = dataclasses.replace(result, discs=[d for d in discs if d.level == "L1-L2"])
    with pytest.raises(InvalidInputError, match="no lumbar disc"):
        write_dicom_sr(only_flags, synthetic.datasets, tmp_path / "sr2.dcm")


def test_seg_describes_a_segment_whose_level_is_uncertain(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    import dataclasses

    discs = [
        dataclasses.replace(d, flags=["level_uncertain"]) if d.level == "L2-L3" else d
        for d in synthetic.result.discs
    ]
    result = dataclasses.replace(synthetic.result, discs=discs, flags=[])

    def described(result: AnalysisResult, name: str) -> dict[str, str | None]:
        seg = pydicom.dcmread(write_dicom_seg(result, synthetic.datasets, tmp_path / name))
        for s in seg.SegmentSequence:  # the label a viewer shows says it as well (an audit)
            doubt = " (level uncertain)" if s.get("SegmentDescription") else ""
            assert str(s.SegmentLabel) == f"{s.TrackingID}{doubt}"
        return {str(s.TrackingID): s.get("SegmentDescription") for s in seg.SegmentSequence}

    by_label = described(result, "seg.dcm")
    assert by_label["L2-L3 disc"] == "L2-L3 disc (level uncertain)"
    assert by_label["L1-L2 disc"] is None and by_label["L2 vertebral body"] is None
    # the SR's group of the doubtful disc still joins its segment (by tracking ID)
    seg_path = tmp_path / "seg.dcm"
    sr = pydicom.dcmread(
        write_dicom_sr(result, synthetic.datasets, tmp_path / "sr.dcm", seg_path=seg_path)
    )
    seg = pydicom.dcmread(seg_path)
    uids = {str(s.TrackingID): str(s.TrackingUID) for s in seg.SegmentSequence}
    assert _tracking_uids_by_disc(sr)["L2-L3 disc"] == uids["L2-L3 disc"]
    # a study whose naming had no anchor: every disc and vertebra, not the canal, and
    # not the sacrum, which is found by its shape (the report's figures leave it plain)
    by_label = described(dataclasses.replace(result, flags=["level_uncertain"]), "seg2.dcm")
    assert by_label["L1-L2 disc"] == "L1-L2 disc (level uncertain)"
    assert by_label["L2 vertebral body"] == "L2 vertebral body (level uncertain)"
    assert by_label.get("spinal canal") is None
    assert by_label["sacrum"] is None
    # transitional anatomy comes without level_uncertain: every name is in doubt all the
    # same, the L5/S1 naming first (vertebrae were left plain: a review)
    by_label = described(
        dataclasses.replace(result, flags=["transitional_anatomy_suspected"]), "seg3.dcm"
    )
    assert by_label["L5 vertebral body"] == "L5 vertebral body (level uncertain)"
    assert by_label["L1-L2 disc"] == "L1-L2 disc (level uncertain)"


def _referenced_segments(items: list[pydicom.Dataset]) -> dict[str, object]:
    """A group's segment reference: the segment number and the source images with their
    frames (TID 1411 "Referenced Segment", DCM 121191, and "Source image for
    segmentation", DCM 121233)."""
    segment = [i for i in items if i.ConceptNameCodeSequence[0].CodeValue == "121191"]
    sources = {
        str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID): i.ReferencedSOPSequence[0].get(
            "ReferencedFrameNumber"
        )
        for i in items
        if i.ConceptNameCodeSequence[0].CodeValue == "121233"
    }
    return {
        "segments": [int(i.ReferencedSOPSequence[0].ReferencedSegmentNumber) for i in segment],
        "sources": sources,
    }


def test_sr_references_the_segment_of_a_one_segment_seg(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """A SEG with one segment (a disc-only label map) has its segment number in the shared
    functional groups, where highdicom's ReferencedSegment.from_segmentation did not look:
    the SR failed and the analysis with it."""
    import dataclasses

    from discquant.io.study import Volume

    labels = synthetic.result.labels_t2
    assert labels is not None
    data = np.where(labels.data == DISC_LABELS["L4-L5"], labels.data, 0)
    result = dataclasses.replace(
        synthetic.result, labels_t2=Volume(data.astype(np.float32), labels.affine)
    )
    seg_path = write_dicom_seg(result, synthetic.datasets, tmp_path / "seg.dcm")
    seg = pydicom.dcmread(seg_path)
    assert [(int(s.SegmentNumber), str(s.SegmentLabel)) for s in seg.SegmentSequence] == [
        (1, "L4-L5 disc")
    ]
    assert "SegmentIdentificationSequence" in seg.SharedFunctionalGroupsSequence[0]
    sr = hd.sr.srread(
        write_dicom_sr(result, synthetic.datasets, tmp_path / "sr.dcm", seg_path=seg_path)
    )
    groups = _groups_by_disc(sr)
    assert set(groups) == {f"{lv} disc" for lv in FOUND_LEVELS}
    # the disc is on the three middle slices (DISC_SLICES) of the series only
    on_disc = {str(ds.SOPInstanceUID): None for ds in synthetic.datasets[1:4]}
    assert _referenced_segments(groups["L4-L5 disc"]) == {"segments": [1], "sources": on_disc}
    # the other discs have no segment: plain measurement groups
    assert _referenced_segments(groups["L1-L2 disc"]) == {"segments": [], "sources": {}}
    volumetric = sr.content.get_volumetric_roi_measurement_groups()
    assert [str(g.tracking_identifier) for g in volumetric] == ["L4-L5 disc"]


def test_sr_references_the_frames_of_an_enhanced_source_with_one_segment(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """Of one multi-frame source, every frame holding the segment is referenced."""
    import dataclasses

    from discquant.io.study import Volume

    enhanced = _enhanced(synthetic)
    labels = synthetic.result.labels_t2
    assert labels is not None
    data = np.where(labels.data == DISC_LABELS["L3-L4"], labels.data, 0)
    disc_only = Volume(data.astype(np.float32), labels.affine)
    result = dataclasses.replace(synthetic.result, labels_t2=disc_only)
    frames = labels_on_source_frames(disc_only, [enhanced])
    holding = [f + 1 for f in range(len(frames)) if (frames[f] == DISC_LABELS["L3-L4"]).any()]
    assert len(holding) == 3
    seg_path = write_dicom_seg(result, [enhanced], tmp_path / "seg.dcm")
    sr = hd.sr.srread(write_dicom_sr(result, [enhanced], tmp_path / "sr.dcm", seg_path=seg_path))
    reference = _referenced_segments(_groups_by_disc(sr)["L3-L4 disc"])
    assert reference["segments"] == [1]
    assert reference["sources"] == {str(enhanced.SOPInstanceUID): holding}


def test_a_segment_reference_without_source_images_names_the_source_series(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    from discquant.outputs.dicom_sr import referenced_segment

    seg = pydicom.dcmread(write_dicom_seg(synthetic.result, synthetic.datasets, tmp_path / "s"))
    for frame in seg.PerFrameFunctionalGroupsSequence:
        del frame.DerivationImageSequence
    reference = referenced_segment(seg, 1)
    assert not reference.has_source_images()
    assert reference[1].UID == synthetic.datasets[0].SeriesInstanceUID
    with pytest.raises(ValueError, match="no frame of segment 99"):
        referenced_segment(seg, 99)


def test_pixel_to_ras_on_oblique_non_square_pixels() -> None:
    """Row and column spacings are not swapped, and the third column is the unit normal."""
    ds = pydicom.Dataset()
    c, s = np.cos(0.3), np.sin(0.3)
    ds.ImageOrientationPatient = [0.0, c, s, 0.0, -s, c]  # columns anterior-ish, rows down
    ds.ImagePositionPatient = [12.5, -40.0, 80.0]
    ds.PixelSpacing = [0.7, 1.9]  # (row spacing, column spacing)
    m = pixel_to_ras(ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing)
    for row, col in [(0, 0), (3, 0), (0, 5), (17, 9)]:
        lps = lps_of_pixel(ds, row=row, col=col)
        np.testing.assert_allclose(m @ [col, row, 0, 1], [-lps[0], -lps[1], lps[2], 1])
    normal_lps = np.cross([0.0, c, s], [0.0, -s, c])
    np.testing.assert_allclose(m[:3, 2], normal_lps * [-1, -1, 1])


def test_thoracic_levels_in_view_are_segments_with_their_codes_and_regions(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """A lumbar field of view often shows T11, T11-T12 and T12-L1 at its top: the label
    map held them and the SEG left them out, though CID 7603/7604 code them; T12 and the
    sacrum were in the region "Lumbar spine" (an audit)."""
    import dataclasses

    from discquant.io.study import Volume

    labels = synthetic.result.labels_t2
    assert labels is not None
    # L1 as T11, the L1-L2 disc as T11-T12, the L2-L3 disc as T12-L1: new segments
    relabel = {VERTEBRA_LABELS["L1"]: 18, DISC_LABELS["L1-L2"]: 118, DISC_LABELS["L2-L3"]: 119}
    data = labels.data.copy()
    for old, new in relabel.items():
        data[labels.data == old] = new
    result = dataclasses.replace(synthetic.result, labels_t2=Volume(data, labels.affine), discs=[])
    seg = hd.seg.segread(write_dicom_seg(result, synthetic.datasets, tmp_path / "seg.dcm"))
    found = {}
    for n in seg.get_segment_numbers():
        d = seg.get_segment_description(n)
        found[d.segment_label] = (
            d.segmented_property_type.value,
            d.anatomic_regions[0].meaning,
        )
    order = list(found)  # in segment-number order: bodies head to feet, then discs
    assert order.index("T11 vertebral body") < order.index("sacrum") < order.index("T11-T12 disc")
    assert order.index("T12-L1 disc") < order.index("L3-L4 disc") < order.index("spinal canal")
    assert found["T11 vertebral body"] == ("12989004", "Thoracic spine")
    assert found["T11-T12 disc"] == ("1537001", "Thoracic spine")
    assert found["T12-L1 disc"] == ("76206002", "Thoraco-lumbar spine")
    assert found["sacrum"] == ("54735007", "Lumbo-sacral spine")
    assert found["L3-L4 disc"] == ("62551000", "Lumbar spine")
    # their pixels are where the label map has them
    pixels = seg.get_volume(combine_segments=True).array  # frames × rows × columns
    numbers = {seg.get_segment_description(n).segment_label: n for n in seg.get_segment_numbers()}
    storage = np.transpose(synthetic.storage_labels, (2, 1, 0))
    np.testing.assert_array_equal(pixels == numbers["T12-L1 disc"], storage == DISC_LABELS["L2-L3"])
    # counted from the sacrum as the lumbar names are: in doubt with them
    doubtful = dataclasses.replace(result, flags=["level_uncertain"])
    seg = hd.seg.segread(write_dicom_seg(doubtful, synthetic.datasets, tmp_path / "seg2.dcm"))
    labels_shown = {seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()}
    assert {
        "T11-T12 disc (level uncertain)",
        "T11 vertebral body (level uncertain)",
    } <= labels_shown
    assert "sacrum" in labels_shown
