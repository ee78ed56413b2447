"""The T2-to-DWI disc offset estimate (discquant.measure.alignment) on label maps whose
shift is known."""

from __future__ import annotations

import numpy as np
import pytest

from discquant.io.study import Volume
from discquant.measure.alignment import (
    MAX_CORRECTED_MM,
    count_discs,
    decide_offset,
    estimate_disc_offset,
    in_plane_voxel_mm,
    match_discs,
    shifted,
)


def _discs(shift_vox: tuple[int, int, int] = (0, 0, 0), *, drop: int | None = None) -> Volume:
    """Five box discs (labels 120-124) 30 voxels apart along axis 2 (superior), on a
    1 mm grid whose axes are R, A, S; moved by ``shift_vox``; ``drop`` leaves one out."""
    data = np.zeros((30, 60, 200), dtype=np.int16)
    for k in range(5):
        if k != drop:
            x, y, z = (10 + shift_vox[0], 20 + shift_vox[1], 30 + 30 * k + shift_vox[2])
            data[x : x + 10, y : y + 20, z : z + 8] = 124 - k
    return Volume(data, np.eye(4))


def test_a_shift_of_the_whole_spine_is_measured_in_the_sagittal_plane() -> None:
    est = estimate_disc_offset(_discs(), _discs((0, -2, 5)))
    assert est is not None
    assert est.offset_mm == pytest.approx([0.0, -2.0, 5.0])
    assert est.n_discs == 5 and est.spread_mm == pytest.approx(0.0)
    assert est.length_mm == pytest.approx(np.hypot(2.0, 5.0))


def test_left_right_is_not_measured() -> None:
    """The slab's lateral coverage, not the patient, sets a disc's left-right centre."""
    est = estimate_disc_offset(_discs(), _discs((7, 0, 0)))
    assert est is not None and est.offset_mm == pytest.approx([0.0, 0.0, 0.0])


@pytest.mark.parametrize("degrees", [0.0, 10.0, 20.0])
def test_lateral_coverage_is_not_movement_on_an_oblique_grid(degrees: float) -> None:
    """A T2 slab covering fewer sagittal slices than the b≈0 image, on a grid turned
    about head-feet: zeroing world x left part of the lateral difference in "anterior"
    (2.6 mm at 15°, and the masks were moved; an audit of obliquity). The normal of the
    slices is removed instead; a real movement in the slice plane is still measured."""
    t = np.deg2rad(degrees)
    turn = np.eye(4)
    turn[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    affine = turn @ _discs().affine
    b0 = Volume(_discs().data, affine)
    t2 = np.asarray(_discs().data).copy()
    t2[:15] = 0  # the slab reaches half the discs' width (slices 15-19 of 10-19)
    est = estimate_disc_offset(Volume(t2, affine), b0)
    assert est is not None and est.offset_mm == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    moved = estimate_disc_offset(Volume(t2, affine), Volume(_discs((0, -2, 5)).data, affine))
    assert moved is not None
    expected = affine[:3, :3] @ np.array([0.0, -2.0, 5.0])  # 2 voxels back, 5 up, turned
    assert moved.offset_mm == pytest.approx(expected, abs=1e-9)


def test_a_disc_missed_on_the_b0_does_not_pull_the_estimate_to_its_neighbour() -> None:
    """The T2 disc whose match is missing is 30 mm from the next b0 disc: not matched."""
    est = estimate_disc_offset(_discs(), _discs((0, 0, 3), drop=2))
    assert est is not None
    assert est.n_discs == 4 and est.offset_mm == pytest.approx([0.0, 0.0, 3.0])


def test_one_disc_that_disagrees_shows_in_the_spread_not_the_median() -> None:
    own = _discs((0, 0, 4))
    data = np.array(own.data)
    moved = data == 122
    data[moved] = 0
    data[np.roll(moved, -8, axis=2)] = 122  # this disc 8 voxels from the others' shift
    est = estimate_disc_offset(_discs(), Volume(data, own.affine))
    assert est is not None
    assert est.offset_mm == pytest.approx([0.0, 0.0, 4.0])
    assert est.spread_mm == pytest.approx(8.0)


def test_too_few_matched_discs_give_no_estimate() -> None:
    one = np.where(_discs().data == 122, 122, 0).astype(np.int16)
    two = np.where(np.isin(_discs().data, (122, 123)), _discs().data, 0).astype(np.int16)
    assert estimate_disc_offset(_discs(), Volume(two, np.eye(4))) is not None  # 2 matched
    assert estimate_disc_offset(_discs(), Volume(one, np.eye(4))) is None  # 1 is not enough
    assert estimate_disc_offset(Volume(one, np.eye(4)), _discs()) is None
    assert estimate_disc_offset(_discs(), Volume(np.zeros((5, 5, 5)), np.eye(4))) is None
    assert [(t2, own) for t2, own, _ in match_discs(_discs(), Volume(one, np.eye(4)))] == [
        (122, 122)
    ]


def test_in_plane_voxel_size_of_a_sagittal_grid_and_a_shifted_volume() -> None:
    # storage axes I, P, R (as the phantom's DWI): 1.8 mm in plane, 4 mm slices
    affine = np.array([[0, 0, 4.0, -30], [0, -1.8, 0, 80], [-1.8, 0, 0, 120], [0, 0, 0, 1]])
    assert in_plane_voxel_mm(affine) == pytest.approx(1.8)
    moved = shifted(Volume(np.zeros((2, 2, 2)), affine), np.array([0.0, 1.0, -2.0]))
    assert moved.affine[:3, 3] == pytest.approx([-30, 81, 118])
    assert moved.affine[:3, :3] == pytest.approx(affine[:3, :3])


def test_each_b0_disc_matches_one_t2_disc_and_names_are_compared() -> None:
    """Moved 18 voxels (spacing 30), two T2 discs met one b0 disc each way; matched one to
    one, nearest first. A match onto the neighbouring level's disc says so (same_names)."""
    est = estimate_disc_offset(_discs(), _discs((0, 0, 12)))
    assert est is not None and est.same_names and est.n_t2_discs == 5
    assert est.offset_mm == pytest.approx([0.0, 0.0, 12.0])
    # 18 voxels: each T2 disc is nearer the b0 disc of the level above (12 voxels away)
    est = estimate_disc_offset(_discs(), _discs((0, 0, 18)))
    assert est is not None and not est.same_names
    assert est.offset_mm == pytest.approx([0.0, 0.0, -12.0])
    assert est.n_discs == 4  # the top T2 disc's neighbour is its own match's: one to one


def _relabelled(volume: Volume, mapping: dict[int, int]) -> Volume:
    data = np.array(volume.data)
    out = data.copy()
    for old, new in mapping.items():
        out[data == old] = new
    return Volume(out, volume.affine)


@pytest.mark.parametrize(
    ("shift", "limit_mm", "expected_mm"),
    [
        ((0, 0, 2), 2.5, None),
        ((0, 0, 3), 2.5, [0.0, 0.0, 3.0]),
        ((0, 3, 4), 4.9, [0.0, 3.0, 4.0]),
        ((0, 3, 4), 5.1, None),
    ],
)
def test_the_offset_is_corrected_only_beyond_the_limit(
    shift: tuple[int, int, int], limit_mm: float, expected_mm: list[float] | None
) -> None:
    """The limit applies to the length of the shift (5 mm for (3, 4)), not to a component."""
    decision = decide_offset(_discs(), _discs(shift), limit_mm)
    assert not decision.misaligned
    if expected_mm is None:
        assert decision.offset_mm is None and decision.message is None
    else:
        assert decision.offset_mm == pytest.approx(expected_mm)
        length = f"lie {np.hypot(shift[1], shift[2]):.1f} mm from"
        assert decision.message is not None and length in decision.message
    assert decision.record["corrected"] is (expected_mm is not None)
    assert decision.record["discs_matched"] == 5 and decision.record["limit_mm"] == limit_mm
    assert decision.record["offset_superior_mm"] == shift[2]


def test_a_shift_with_any_doubt_is_flagged_not_corrected() -> None:
    """Each doubt alone keeps the masks where they are and says why."""
    t2 = _discs()
    spread = np.array(_discs((0, 0, 4)).data)
    moved = spread == 122
    spread[moved] = 0
    spread[np.roll(moved, 4, axis=2)] = 122  # one disc 4 mm beyond the others' 4 mm
    cases = {
        "disagree on it by up to 4.0 mm": Volume(spread, np.eye(4)),
        "only 2 of its 5 discs": Volume(
            np.where(np.isin(_discs((0, 0, 4)).data, (120, 121)), _discs((0, 0, 4)).data, 0),
            np.eye(4),
        ),
        "other level names": _relabelled(_discs((0, 0, 4)), {120: 121, 121: 120}),
        f"more than {MAX_CORRECTED_MM:.0f} mm": _discs((0, 0, 12)),
    }
    for why, own in cases.items():
        decision = decide_offset(t2, own, 2.5)
        assert decision.misaligned and decision.offset_mm is None, why
        assert decision.record["corrected"] is False
        assert decision.message is not None and why in decision.message
        assert decision.message.count(";") == 1  # the limit's "; limit", no other doubt


def test_discs_on_both_images_that_do_not_match_are_misaligned() -> None:
    """Discs on both, none within 15 mm of the other's: moved too far, or wrong discs."""
    decision = decide_offset(_discs(), _discs((0, 16, 0)), 2.5)
    assert decision.misaligned and decision.offset_mm is None
    assert decision.record == {"checked": True, "corrected": False, "discs_matched": 0}
    assert decision.message is not None and decision.message.startswith("no disc of the T2")


def test_too_few_discs_on_one_image_leave_the_study_unchecked() -> None:
    one = Volume(np.where(_discs().data == 122, 122, 0).astype(np.int16), np.eye(4))
    decision = decide_offset(_discs(), one, 2.5)
    assert not decision.misaligned and decision.offset_mm is None
    assert decision.record == {
        "checked": False,
        "why": "fewer than 2 discs found on the b≈0 image",
    }
    cut = decide_offset(_discs(), _discs(), 2.5, cut={120, 121, 122, 123})
    assert cut.record["why"].startswith("fewer than 2 discs found on the T2")


def test_the_lumbar_disc_count_takes_l1_l2_to_l5_s1_only() -> None:
    """`count_discs(lumbar=True)` counted every label from 120 to 199 (an L6-S1 disc, 125,
    or a user's label 150), though it says L1-L2 … L5-S1; the match rule compares it with
    the matched discs."""
    data = np.zeros((4, 4, 8), np.int16)
    for k, value in enumerate((119, 120, 124, 125, 150)):
        data[0, 0, k] = value
    labels = Volume(data, np.eye(4))
    assert count_discs(labels, lumbar=True) == 2
    assert count_discs(labels, lumbar=True, cut=(124,)) == 1
    assert count_discs(labels) == 5


def test_an_l6_disc_is_neither_matched_nor_counted() -> None:
    """An L5-L6 disc (125) was matched but not counted among the T2's lumbar discs: "3
    matched of its 2 discs" (an audit). Both now take L1-L2 … L5-S1 alone."""
    data = np.zeros((3, 40, 120), np.int16)
    for z, value in ((10, 123), (40, 124), (70, 125)):
        data[1, 10:30, z : z + 4] = value
    t2 = Volume(data, np.eye(4))
    est = estimate_disc_offset(t2, shifted(t2, np.array([0.0, 0.0, 5.0])))
    assert est is not None and (est.n_discs, est.n_t2_discs) == (2, 2)
    assert {t for t, _, _ in match_discs(t2, shifted(t2, np.array([0.0, 0.0, 5.0])))} == {
        123,
        124,
    }


def test_the_offset_of_a_doubly_oblique_slab_lies_in_its_slices() -> None:
    """Each disc's offset lies in the slice plane, but the median of each world component
    of five different offsets does not where the slices are turned about two axes (an
    audit: up to 0.46 mm along the normal); the median is projected back."""
    turn = np.eye(4)
    a, b = np.deg2rad(20.0), np.deg2rad(15.0)
    about_s = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_a = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    turn[:3, :3] = about_a @ about_s
    t2 = _discs().data
    b0 = np.zeros_like(t2)
    shifts = ((0, 0), (3, 1), (-1, 4), (2, -3), (5, 2))
    for k, (dy, dz) in enumerate(shifts):
        moved = np.roll(np.roll(t2 == 124 - k, dy, axis=1), dz, axis=2)
        b0[moved] = 124 - k
    est = estimate_disc_offset(Volume(t2, turn), Volume(b0, turn))
    assert est is not None and est.n_discs == 5
    normal = turn[:3, 0]  # voxel axis 0, the slices' normal
    assert abs(float(est.offset_mm @ normal)) < 1e-9
    # as documented: the median of each world component of the five known movements,
    # without its part along the normal
    world = np.array([turn[:3, :3] @ np.array([0.0, dy, dz]) for dy, dz in shifts])
    median = np.median(world, axis=0)
    assert abs(float(median @ normal)) > 0.05  # what was reported before
    assert est.offset_mm == pytest.approx(median - (median @ normal) * normal, abs=1e-9)
