"""Segmentation metrics against hand-computed values."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from discquant.cli import app
from discquant.errors import InvalidInputError
from discquant.evaluate.segmentation import (
    evaluate_case,
    evaluate_dirs,
    format_table,
    midsag_check,
    read_boxes,
    summarise,
)
from discquant.segment.levels import DiscLevel


def test_dice_hd95_and_naming_on_known_shift() -> None:
    ref = np.zeros((40, 40, 10), dtype=np.int16)
    ref[5:15, 5:25, 2:8] = 123  # L4-L5, 10 rows
    ref[20:30, 5:25, 2:8] = 124  # L5-S1
    pred = np.zeros_like(ref)
    pred[7:17, 5:25, 2:8] = 123  # shifted 2 rows: overlap 8/10
    pred[20:30, 5:25, 2:8] = 123  # right place, wrong name
    res = evaluate_case(pred, ref, (1.0, 1.0, 1.0), case="x")
    # pred 123 covers 20 rows (10 shifted + 10 misnamed), 8 of them on the 10 reference rows
    assert np.isclose(res.level_dice["L4-L5"], 2 * 8 / (20 + 10))
    assert res.level_dice["L5-S1"] == 0.0
    assert res.levels_named == {"L4-L5": True, "L5-S1": False}
    # Class "disc" ignores names:
    inter = ((pred > 0) & (ref > 0)).sum()
    assert np.isclose(res.dice["disc"], 2 * inter / ((pred > 0).sum() + (ref > 0).sum()))
    assert np.isclose(res.hd95_mm["disc"], 2.0)
    assert "body" not in res.dice  # the reference has no bodies: not scored


def test_hd95_leaves_out_a_small_far_island() -> None:
    """HD95 is the 95th percentile of the surface distances, not their maximum. The
    prediction is the reference disc (a 20 x 20 x 20 block: 20**3 - 18**3 = 2168 surface
    voxels) plus a 2 x 2 x 2 island (8 surface voxels, 0.4 % of the prediction's 2176)
    whose nearest voxel lies 11 rows below the block's last row. Every other surface
    voxel of either mask lies on the other's surface: HD95 = 0 mm, while the Hausdorff
    distance (the maximum) is the island's far row to the block's bottom face, 12 mm."""
    ref = np.zeros((48, 30, 30), dtype=np.int16)
    ref[5:25, 5:25, 5:25] = 123  # rows 5 … 24
    pred = ref.copy()
    pred[35:37, 14:16, 14:16] = 123  # rows 35-36: 11 and 12 rows below row 24
    res = evaluate_case(pred, ref, (1.0, 1.0, 1.0))
    assert res.hd95_mm["disc"] == pytest.approx(0.0, abs=1e-9)
    assert res.dice["disc"] == pytest.approx(2 * 8000 / (8008 + 8000))


def test_hd95_is_the_95th_percentile_of_spread_surface_distances() -> None:
    """Every other HD95 case here has distances of one or two values, so that any
    percentile from about 85 to 99 passed them (an audit changed MONAI's ``percentile``
    to 90 and to 99: no test failed). Here a block grows a staircase of 20 columns 1 … 20
    rows deep below it, so the surface distances spread, and the 90th, 95th and 99th
    percentiles differ. The reference value is computed here without MONAI: the surface
    is the mask less its erosion (a cross), distances from scipy's exact Euclidean
    transform in mm, each direction's 95th percentile by numpy, the larger of the two."""
    from scipy import ndimage

    ref = np.zeros((60, 40), dtype=np.int16)
    ref[10:30, 10:30] = 124
    pred = ref.copy()
    for j in range(20):
        pred[30 : 31 + j, 10 + j] = 124  # column 10 + j reaches j + 1 rows below
    spacing = (0.8, 1.0)

    def surface(mask: np.ndarray) -> np.ndarray:
        return mask & ~ndimage.binary_erosion(mask)

    def directed(a: np.ndarray, b: np.ndarray, q: float) -> float:
        to_b = ndimage.distance_transform_edt(~surface(b), sampling=spacing)
        return float(np.percentile(to_b[surface(a)], q))

    def hd(q: float) -> float:
        return max(directed(pred > 0, ref > 0, q), directed(ref > 0, pred > 0, q))

    res = evaluate_case(pred[:, :, None], ref[:, :, None], (*spacing, 3.0))
    assert res.hd95_mm["disc"] == pytest.approx(hd(95), rel=1e-5)
    assert hd(90) < hd(95) - 1.0 and hd(99) > hd(95) + 1.0  # the percentile matters here


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_hd95_of_a_single_slice_is_the_2d_outline_distance() -> None:
    # One sagittal slice: two 20 x 14 rectangles 3 rows apart, rows 0.5 mm, columns 2 mm.
    # Every outline pixel of either lies at most 3 rows (1.5 mm) from the other's outline,
    # and the 14 pixels of the far edge (22 % of the 64 outline pixels) exactly 1.5 mm:
    # HD95 = 1.5 mm. Kept 3-D, every pixel of the slice touched the image border, counted
    # as a surface voxel, and HD95 read 1.02 mm.
    ref2d = np.zeros((40, 30), dtype=np.int16)
    ref2d[10:30, 8:22] = 124
    pred2d = np.zeros_like(ref2d)
    pred2d[13:33, 8:22] = 124
    res = evaluate_case(pred2d[:, :, None], ref2d[:, :, None], (0.5, 2.0, 4.0))
    assert res.hd95_mm["disc"] == pytest.approx(1.5)
    assert res.dice["disc"] == pytest.approx(2 * 17 / 40)  # unchanged by the 2-D scoring
    # The same as MONAI on the 2-D arrays, and as the slice stored 1 x N x M.
    import torch
    from monai.metrics import compute_hausdorff_distance

    as_2d = compute_hausdorff_distance(
        torch.from_numpy((pred2d > 0)[None, None].astype(np.float32)),
        torch.from_numpy((ref2d > 0)[None, None].astype(np.float32)),
        include_background=True,
        percentile=95,
        spacing=[0.5, 2.0],
    )
    assert res.hd95_mm["disc"] == pytest.approx(float(as_2d[0, 0]))
    res_x = evaluate_case(pred2d[None], ref2d[None], (4.0, 0.5, 2.0))
    assert res_x.hd95_mm == res.hd95_mm and res_x.dice == res.dice


def _stacked_levels(shape: tuple[int, int, int], rows: list[tuple[int, int, int]]) -> np.ndarray:
    """A label map whose levels are row bands ``(first, stop, label)``, columns 5-14."""
    ref = np.zeros(shape, dtype=np.int16)
    for first, stop, label in rows:
        ref[first:stop, 5:15] = label
    return ref


def test_a_reference_with_l6_keys_discs_l5_l6_and_l6_s1() -> None:
    # rows: L4-L5, L5, L5-L6, L6, L6-S1, sacrum
    ref = _stacked_levels(
        (60, 20, 4),
        [(5, 10, 123), (10, 20, 24), (20, 25, 124), (25, 35, 25), (35, 40, 125), (40, 55, 26)],
    )
    pred = ref.copy()
    pred[20:25, 5:15] = 24  # L5-L6 missed, taken for body L5
    pred[22:27, 5:15] = 124  # ... and painted 2 rows low: 3 of its 5 rows right
    pred[35:40, 5:15] = 124  # L6-S1 found, but named as the disc above
    res = evaluate_case(pred, ref, (1.0, 1.0, 1.0))
    assert set(res.level_dice) == {"L4-L5", "L5-L6", "L6-S1", "L5", "L6", "S"}
    assert res.level_dice["L4-L5"] == 1.0
    # pred 124: 5 rows at 22:27 and 5 at 35:40 (10 rows), 3 on the reference's 5 rows.
    assert res.level_dice["L5-L6"] == pytest.approx(2 * 3 / (10 + 5))
    assert res.level_dice["L6-S1"] == 0.0
    assert res.levels_named == {
        "L4-L5": True,
        "L5-L6": True,
        "L6-S1": False,
        "L5": True,
        "L6": True,
        "S": True,
    }
    # A discs-only reference holding 125 is an L6 spine too; without 25 / 125, 124 is L5-S1.
    discs = np.where(ref >= 100, ref, 0)
    assert set(evaluate_case(discs, discs, (1.0, 1.0, 1.0)).level_dice) == {
        "L4-L5",
        "L5-L6",
        "L6-S1",
    }
    five = np.where(np.isin(ref, (25, 125)), 0, ref)
    assert set(evaluate_case(five, five, (1.0, 1.0, 1.0)).level_dice) == {
        "L4-L5",
        "L5-S1",
        "L5",
        "S",
    }


def test_a_reference_with_t13_scores_it_as_a_body_and_keys_t12_t13() -> None:
    # VerSe's T13 is 28 and its disc 128; before, 28 was no body (its voxels were left
    # out of the body Dice) and no level, and disc 119 was keyed T12-L1.
    # rows: T12, T12-T13, T13, T13-L1, L1
    ref = _stacked_levels(
        (50, 20, 3), [(0, 10, 19), (10, 15, 119), (15, 25, 28), (25, 30, 128), (30, 40, 20)]
    )
    pred = ref.copy()
    pred[15:25, 5:15] = 0  # T13 body missed
    res = evaluate_case(pred, ref, (1.0, 1.0, 1.0))
    assert set(res.level_dice) == {"T12", "T12-T13", "T13", "T13-L1", "L1"}
    assert res.level_dice["T13"] == 0.0 and not res.levels_named["T13"]
    assert res.levels_named["T12-T13"] and res.levels_named["T13-L1"]
    assert res.dice["body"] == pytest.approx(2 * 20 / (20 + 30))  # 2 of 3 bodies found
    assert res.dice["disc"] == 1.0


def test_midsag_box_check() -> None:
    aff = np.eye(4)
    shape = (100, 100, 1)
    boxes = [(0.5, 0.3, 0.2, 0.06), (0.5, 0.5, 0.2, 0.06), (0.5, 0.7, 0.2, 0.06)]
    levels = [
        DiscLevel(122, "L3-L4", (30.0, 50.0, 0.0), 1.0, 1.0),
        DiscLevel(123, "L4-L5", (50.0, 51.0, 0.0), 1.0, 1.0),
        DiscLevel(124, "L5-S1", (70.0, 49.0, 0.0), 1.0, 1.0),
    ]
    r = midsag_check("s", levels, aff, shape, boxes)
    assert r.three_found and r.in_boxes and r.order_ok and r.strict_ok
    shifted = [
        DiscLevel(lv.label, lv.name, (lv.centroid_mm[0] - 20, 50.0, 0.0), 1, 1) for lv in levels
    ]
    r2 = midsag_check("s", shifted, aff, shape, boxes)
    assert r2.three_found and r2.in_boxes is False and not r2.strict_ok


def test_evaluate_segment_with_a_damaged_file_is_a_one_line_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from discquant.cli import app

    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    good = nib.Nifti1Image(np.zeros((4, 4, 2), np.int16), np.eye(4))
    nib.save(good, str(ref / "sub-01_dseg.nii.gz"))
    (pred / "sub-01_dseg.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    res = CliRunner().invoke(app, ["evaluate", "segment", "--pred", str(pred), "--ref", str(ref)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "sub-01_dseg.nii.gz" in lines[0], res.output


def test_class_scores_leave_out_levels_the_reference_does_not_label() -> None:
    ref = np.zeros((40, 20, 4), dtype=np.int16)
    ref[10:20, 5:15, :] = 120  # L1-L2 only (lumbar reference)
    pred = np.zeros_like(ref)
    pred[10:20, 5:15, :] = 120  # exact
    pred[0:5, 5:15, :] = 119  # T12-L1: not labelled in the reference, left out
    pred[30:35, 2:4, :] = 20  # a body, but the reference has no bodies: not scored
    res = evaluate_case(pred, ref, (1.0, 1.0, 1.0))
    # Counting the 119 voxels (200 more) would give Dice 2*400/(600+400) = 0.8.
    assert res.dice == {"disc": 1.0}
    assert res.hd95_mm == {"disc": 0.0}
    assert res.unscored_labels == {"disc": [119]}
    assert res.level_dice == {"L1-L2": 1.0}
    # Predicted reference labels in the wrong place still count against the class.
    pred[30:35, 5:15, :] = 120  # 200 false-positive voxels
    res = evaluate_case(pred, ref, (1.0, 1.0, 1.0))
    assert res.dice["disc"] == pytest.approx(2 * 400 / (600 + 400))
    assert res.level_dice["L1-L2"] == pytest.approx(2 * 400 / (600 + 400))


def test_hd95_summary_counts_cases_without_a_prediction() -> None:
    ref = np.zeros((20, 20, 5), dtype=np.int16)
    ref[2:6, 2:10, :] = 122
    perfect = evaluate_case(ref.copy(), ref, (1.0, 1.0, 1.0), case="a")
    missed = evaluate_case(np.zeros_like(ref), ref, (1.0, 1.0, 1.0), case="b")
    assert np.isnan(missed.hd95_mm["disc"])
    s = summarise([perfect, missed])
    assert s["dice"]["disc"] == pytest.approx(0.5)
    assert s["hd95_mm"]["disc"] == 0.0  # mean of the one defined value ...
    assert s["hd95_n"]["disc"] == 1  # ... over one case
    assert s["hd95_missing"]["disc"] == 1  # the other had no predicted disc
    from dataclasses import asdict

    table = format_table({"cases": [asdict(perfect), asdict(missed)], "summary": s})
    assert "disc 0.0 (n=1; 1 without a prediction)" in table


def test_levels_named_rule_counts_any_predicted_label_towards_10_percent() -> None:
    ref = np.zeros((10, 10, 1), dtype=np.int16)
    ref[:, :, 0] = 123  # 100 voxels
    pred = np.zeros_like(ref)
    pred[0, :6, 0] = 123  # 6 % with its own label
    pred[1, :5, 0] = 124  # 5 % with another: 11 % labelled, 123 the most frequent
    assert evaluate_case(pred, ref, (1.0, 1.0, 1.0)).levels_named == {"L4-L5": True}
    pred[1, :5, 0] = 0  # 6 % labelled: below 10 %
    assert evaluate_case(pred, ref, (1.0, 1.0, 1.0)).levels_named == {"L4-L5": False}
    pred[0, :, 0] = 124  # 10 % labelled, but by another level
    assert evaluate_case(pred, ref, (1.0, 1.0, 1.0)).levels_named == {"L4-L5": False}


def _pair(tmp_path: Path, pred: np.ndarray, ref: np.ndarray, pred_affine: np.ndarray) -> tuple:
    pdir, rdir = tmp_path / "pred", tmp_path / "ref"
    pdir.mkdir()
    rdir.mkdir()
    nib.save(nib.Nifti1Image(ref.astype(np.int16), np.eye(4)), str(rdir / "sub-01_dseg.nii.gz"))
    nib.save(nib.Nifti1Image(pred.astype(np.int16), pred_affine), str(pdir / "sub-01_dseg.nii.gz"))
    return pdir, rdir


def test_evaluate_segment_shape_mismatch_is_a_one_line_error(tmp_path: Path) -> None:
    ref = np.zeros((20, 20, 5))
    ref[2:6, 2:10] = 122
    pdir, rdir = _pair(tmp_path, ref[:19], ref, np.eye(4))
    res = CliRunner().invoke(app, ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"discquant: error: {pdir}"), res.output
    assert "(19, 20, 5)" in lines[0] and "(20, 20, 5)" in lines[0]


def test_evaluate_segment_rejects_a_different_affine(tmp_path: Path) -> None:
    ref = np.zeros((20, 20, 5))
    ref[2:6, 2:10] = 122
    shifted = np.eye(4)
    shifted[0, 3] = 2.0  # 2 mm off
    pdir, rdir = _pair(tmp_path, ref, ref, shifted)
    json_out = tmp_path / "out.json"
    args = ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir)]
    res = CliRunner().invoke(app, [*args, "--json", str(json_out)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"discquant: error: {pdir}"), res.output
    assert "affine" in lines[0] and not json_out.exists()


def test_evaluate_dirs_tolerates_rounding_and_notes_what_classes_count(tmp_path: Path) -> None:
    ref = np.zeros((20, 20, 5))
    ref[2:6, 2:10] = 122
    pred = ref.copy()
    pred[10:14, 2:10] = 121  # a level the reference does not label
    nudged = np.eye(4)
    nudged[0, 3] = 1e-5
    pdir, rdir = _pair(tmp_path, pred, ref, nudged)
    result = evaluate_dirs(pdir, rdir)
    assert result["cases"][0]["dice"] == {"disc": 1.0}
    assert result["cases"][0]["unscored_labels"] == {"disc": [121]}
    assert "reference uses" in result["note"]
    assert json.loads(json.dumps(result))["summary"]["hd95_n"] == {"disc": 1}
    assert "note:" in format_table(result)


def test_evaluate_segment_lists_unmatched_cases_and_writes_strict_json(tmp_path: Path) -> None:
    """A reference without a prediction was dropped without a word (raising the mean);
    an empty prediction's HD95 was written as a bare NaN, which is not JSON."""
    ref = np.zeros((20, 20, 5))
    ref[2:6, 2:10] = 122
    pdir, rdir = _pair(tmp_path, np.zeros_like(ref), ref, np.eye(4))  # predicts nothing
    nib.save(nib.Nifti1Image(ref.astype(np.int16), np.eye(4)), str(rdir / "sub-02_dseg.nii.gz"))
    json_out = tmp_path / "out.json"
    args = ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir), "--json", str(json_out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(json_out.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert doc["unmatched"] == {
        "reference_without_prediction": ["sub-02"],
        "prediction_without_reference": [],
        "reference_without_labels": [],
    }
    assert doc["summary"]["hd95_mm"] == {"disc": None}
    assert doc["summary"]["dice"] == {"disc": 0.0}
    assert "reference without prediction, not scored: sub-02" in res.output


def test_evaluate_segment_refuses_two_files_for_one_subject(tmp_path: Path) -> None:
    """sub-01_T2w.nii.gz beside sub-01_dseg.nii.gz silently replaced the label map (Dice
    0.011 instead of 1); sessions are kept apart."""
    ref = np.zeros((20, 20, 5))
    ref[2:6, 2:10] = 122
    pdir, rdir = _pair(tmp_path, ref, ref, np.eye(4))
    nib.save(
        nib.Nifti1Image(np.full(ref.shape, 7, np.int16), np.eye(4)), str(pdir / "sub-01_T2w.nii.gz")
    )
    args = ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "two files for sub-01: sub-01_T2w.nii.gz and sub-01_dseg.nii.gz" in res.output
    (pdir / "sub-01_T2w.nii.gz").unlink()
    for folder in (pdir, rdir):
        (folder / "sub-01_dseg.nii.gz").rename(folder / "sub-01_ses-1_dseg.nii.gz")
        nib.save(
            nib.Nifti1Image(ref.astype(np.int16), np.eye(4)),
            str(folder / "sub-01_ses-2_dseg.nii.gz"),
        )
    assert [c["case"] for c in evaluate_dirs(pdir, rdir)["cases"]] == [
        "sub-01_ses-1",
        "sub-01_ses-2",
    ]


def test_labels_that_are_not_levels_are_not_scored_as_levels(tmp_path: Path) -> None:
    """Canal (61), cord (60) and endplates (2xx) in a SPINEPS reference were scored as
    levels "V61", "V123-V124" (0/3 named, disc level Dice 0.5 for a perfect disc)."""
    ref = np.zeros((40, 20, 4), np.int16)
    ref[10:20, 5:15] = 123
    ref[20:22, 5:15] = 223
    ref[5:10, 5:15] = 60
    ref[22:30, 5:15] = 61
    pred = np.where(np.isin(ref, (60, 61, 223)), 0, ref)
    case = evaluate_case(pred, ref, (1.0, 1.0, 1.0))
    assert case.levels_named == {"L4-L5": True}
    assert case.level_dice == {"L4-L5": 1.0}
    # The phantom's truth folder as --ref: its *_label-<name>_mask files are not label maps.
    pdir, rdir = _pair(tmp_path, pred, ref, np.eye(4))
    mask = nib.Nifti1Image((ref == 123).astype(np.uint8), np.eye(4))
    nib.save(mask, str(rdir / "sub-01_label-nucleus_mask.nii.gz"))
    summary = evaluate_dirs(pdir, rdir)["summary"]
    assert summary["levels_named"] == "1/1" and summary["mean_disc_level_dice"] == 1.0


def test_a_reference_without_labels_is_listed_not_scored(tmp_path: Path) -> None:
    """An empty reference was counted in n_cases with no score and its prediction's
    voxels never counted against anything."""
    ref = np.zeros((20, 20, 5))
    ref[2:6, 2:10] = 122
    pdir, rdir = _pair(tmp_path, ref, ref, np.eye(4))
    nib.save(
        nib.Nifti1Image(np.zeros((20, 20, 5), np.int16), np.eye(4)),
        str(rdir / "sub-02_dseg.nii.gz"),
    )
    nib.save(nib.Nifti1Image(ref.astype(np.int16), np.eye(4)), str(pdir / "sub-02_dseg.nii.gz"))
    result = evaluate_dirs(pdir, rdir)
    assert result["summary"]["n_cases"] == 1
    assert result["unmatched"]["reference_without_labels"] == ["sub-02"]
    assert "reference without labels, not scored: sub-02" in format_table(result)
    (rdir / "sub-01_dseg.nii.gz").unlink()
    with pytest.raises(InvalidInputError, match="labels a disc or vertebra"):
        evaluate_dirs(pdir, rdir)


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``discquant phantom --out P --n 1`` writes (the study and its truth)."""
    root = tmp_path_factory.mktemp("phantom") / "P"
    res = CliRunner().invoke(app, ["phantom", "--out", str(root), "--n", "1"])
    assert res.exit_code == 0, res.output
    return root


def _analyze_like(out: Path, phantom: Path) -> Path:
    """The label-map files of ``discquant analyze/cohort --out OUT``, by their names:
    ``OUT/sub-00/sub-00_dseg.nii.gz`` beside its DWI-grid copy, the ADC map and masks,
    and a cohort's hidden working folder; the label maps are the phantom's truth."""
    import shutil

    truth = phantom / "derivatives" / "phantom" / "sub-00"
    sub = out / "sub-00"
    sub.mkdir(parents=True)
    # the truth's vertebrae cut to their bodies, as discquant labels them
    dseg = nib.load(truth / "anat" / "sub-00_dseg.nii.gz")
    posterior = np.asarray(nib.load(truth / "anat" / "sub-00_label-posterior_mask.nii.gz").dataobj)
    labels = np.asarray(dseg.dataobj)
    # the sacrum whole (the network labels its posterior elements too)
    cut = (posterior > 0) & (labels < 100) & (labels != 26)
    bodies = np.where(cut, 0, labels).astype(labels.dtype)
    nib.save(nib.Nifti1Image(bodies, dseg.affine, dseg.header), sub / "sub-00_dseg.nii.gz")
    shutil.copy(
        truth / "dwi" / "sub-00_space-dwi_dseg.nii.gz", sub / "sub-00_space-dwi_dseg.nii.gz"
    )
    shutil.copy(phantom / "sub-00" / "dwi" / "sub-00_ADC.nii.gz", sub / "sub-00_adc.nii.gz")
    shutil.copy(truth / "anat" / "sub-00_label-nucleus_mask.nii.gz", sub / "sub-00_nucleus.nii.gz")
    hidden = out / ".discquant-cohort" / "tmp"
    hidden.mkdir(parents=True)
    shutil.copy(truth / "anat" / "sub-00_dseg.nii.gz", hidden / "sub-00_dseg.nii.gz")
    (out / "cohort_discs.csv").write_text("subject,level\n00,L4-L5\n")
    return out


def test_evaluate_segment_finds_label_maps_in_discquants_own_layouts(
    tmp_path: Path, phantom_root: Path
) -> None:
    """Only flat folders were searched: an analyze/cohort --out folder against the
    phantom's --out folder gave "no matching sub-* NIfTI files"."""
    out = _analyze_like(tmp_path / "OUT", phantom_root)
    for ref in (phantom_root, phantom_root / "derivatives" / "phantom"):
        js = tmp_path / "seg.json"
        args = ["evaluate", "segment", "--pred", str(out), "--ref", str(ref)]
        res = CliRunner().invoke(app, [*args, "--json", str(js)])
        assert res.exit_code == 0, res.output
        doc = json.loads(js.read_text())
        # The truth against itself: the T2-grid map was taken on both sides, not the
        # DWI-grid copy (another grid), the T2w/ADC images or the masks.
        assert [c["case"] for c in doc["cases"]] == ["sub-00"]
        # The phantom labels whole vertebrae: scored against them, these bodies read
        # Dice 0.57 without a word; the reference is cut to the bodies, and says so.
        assert doc["cases"][0]["dice"] == {"disc": 1.0, "body": 1.0, "sacrum": 1.0}
        assert doc["posterior_elements_removed"] == ["sub-00"]
        assert "references cut to the vertebral bodies" in res.output
        assert doc["summary"]["levels_named_fraction"] == 1.0
        assert doc["no_shared_level_label"] == {}
        assert not any(doc["unmatched"].values())


def test_whole_vertebra_references_without_their_mask_are_said(
    tmp_path: Path, phantom_root: Path
) -> None:
    """The phantom's *_dseg files copied into a folder without their posterior masks:
    the bodies were scored against whole vertebrae (Dice 0.58 for the shipped model)
    without a word (a user trial). The ratio of the vertebrae is said; with the mask it
    is not."""
    out = _analyze_like(tmp_path / "OUT", phantom_root)
    truth = phantom_root / "derivatives" / "phantom" / "sub-00" / "anat"
    ref = tmp_path / "ref"
    ref.mkdir()
    shutil.copy(truth / "sub-00_dseg.nii.gz", ref / "sub-00_dseg.nii.gz")
    js = tmp_path / "seg.json"
    args = ["evaluate", "segment", "--pred", str(out), "--ref", str(ref), "--json", str(js)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(js.read_text())
    whole = nib.load(truth / "sub-00_dseg.nii.gz").get_fdata()
    bodies = nib.load(out / "sub-00" / "sub-00_dseg.nii.gz").get_fdata()
    vertebrae = [v for v in np.unique(whole) if 0 < v < 26 or v == 28]  # not the sacrum
    expected = np.isin(whole, vertebrae).sum() / np.isin(bodies, vertebrae).sum()
    assert 1.55 < expected < 1.75  # the phantom's vertebrae over their bodies
    assert doc["reference_vertebrae_larger"] == {"sub-00": pytest.approx(expected, abs=0.01)}
    assert doc["cases"][0]["dice"]["body"] < 0.85
    assert "whole vertebrae with posterior elements" in res.output
    shutil.copy(truth / "sub-00_label-posterior_mask.nii.gz", ref)
    assert CliRunner().invoke(app, args).exit_code == 0
    assert json.loads(js.read_text())["reference_vertebrae_larger"] == {}


def test_evaluate_segment_cuts_gunzipped_phantom_references_and_checks_their_mask(
    tmp_path: Path, phantom_root: Path
) -> None:
    # A .nii reference tree was scored whole without a word (the mask was sought as .nii.gz).
    out = _analyze_like(tmp_path / "OUT", phantom_root)
    ref = tmp_path / "ref"
    ref.mkdir()
    truth = phantom_root / "derivatives" / "phantom" / "sub-00" / "anat"
    for name in ("sub-00_dseg", "sub-00_label-posterior_mask"):
        img = nib.load(truth / f"{name}.nii.gz")
        nib.save(img, ref / f"{name}.nii")
    js = tmp_path / "seg.json"
    args = ["evaluate", "segment", "--pred", str(out), "--ref", str(ref), "--json", str(js)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(js.read_text())
    assert doc["cases"][0]["dice"]["body"] == 1.0
    assert doc["posterior_elements_removed"] == ["sub-00"]
    # a mask on another grid is an error, not a silent whole-vertebra score
    small = nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4))
    nib.save(small, ref / "sub-00_label-posterior_mask.nii")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "differs from its reference's" in res.output, res.output


def test_evaluate_segment_refuses_two_label_maps_for_a_subject_in_subfolders(
    tmp_path: Path, phantom_root: Path
) -> None:
    import shutil

    out = _analyze_like(tmp_path / "OUT", phantom_root)
    (out / "old").mkdir()
    shutil.copy(out / "sub-00" / "sub-00_dseg.nii.gz", out / "old" / "sub-00_dseg.nii.gz")
    args = ["evaluate", "segment", "--pred", str(out), "--ref", str(phantom_root)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert "two files for sub-00: old/sub-00_dseg.nii.gz and sub-00/sub-00_dseg.nii.gz" in lines[0]


def _cases(tmp_path: Path, pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[Path, Path]:
    pdir, rdir = tmp_path / "pred", tmp_path / "ref"
    pdir.mkdir()
    rdir.mkdir()
    for sub, (pred, ref) in pairs.items():
        nib.save(nib.Nifti1Image(ref.astype(np.int16), np.eye(4)), str(rdir / f"{sub}_dseg.nii.gz"))
        nib.save(
            nib.Nifti1Image(pred.astype(np.int16), np.eye(4)), str(pdir / f"{sub}_dseg.nii.gz")
        )
    return pdir, rdir


def _discs(offset: int) -> np.ndarray:
    """Five discs on a 40 x 10 x 3 grid, labelled ``offset + 1`` … ``offset + 5``."""
    vol = np.zeros((40, 10, 3), np.int16)
    for k in range(5):
        vol[4 + 7 * k : 8 + 7 * k, 2:8] = offset + 1 + k
    return vol


def test_evaluate_segment_refuses_a_reference_in_another_label_convention(
    tmp_path: Path,
) -> None:
    """lumbar-t2-discs labels its discs 1-5: a discquant prediction (120-124) scored
    Dice 0.000 at "V1" … "V5", named 0/5, exit 0."""
    pdir, rdir = _cases(tmp_path, {"sub-01": (_discs(119), _discs(0))})
    js = tmp_path / "out.json"
    args = ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir), "--json", str(js)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"discquant: error: {rdir}"), res.output
    assert "reference 1-5, prediction 120-124" in lines[0]
    assert "label conventions differ" in lines[0] and "discs 117-124" in lines[0]
    assert not js.exists()


def test_evaluate_segment_warns_of_a_case_that_shares_no_level_label(tmp_path: Path) -> None:
    pairs = {
        "sub-01": (_discs(119), _discs(119)),
        "sub-02": (_discs(119), _discs(0)),  # another convention
        "sub-03": (np.zeros((40, 10, 3)), _discs(119)),  # predicts nothing: not that
    }
    pdir, rdir = _cases(tmp_path, pairs)
    js = tmp_path / "out.json"
    args = ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir), "--json", str(js)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(js.read_text())
    assert doc["no_shared_level_label"] == {"sub-02": {"reference": "1-5", "prediction": "120-124"}}
    assert "sub-02: the prediction shares no level label with its reference" in res.output
    assert [c["case"] for c in doc["cases"]] == ["sub-01", "sub-02", "sub-03"]  # still scored
    # Partial references that share some labels raise nothing: discs only, bodies only.
    bodies = np.zeros((40, 10, 3), np.int16)
    bodies[:4, 2:8] = 23
    with_bodies = np.where(bodies > 0, bodies, _discs(119))
    for ref in (_discs(119), bodies):
        d = tmp_path / f"partial{int(ref.max())}"
        d.mkdir()
        p, r = _cases(d, {"sub-01": (with_bodies, ref)})
        assert evaluate_dirs(p, r)["no_shared_level_label"] == {}


def test_evaluate_segment_refuses_a_prediction_without_a_spineps_label(tmp_path: Path) -> None:
    """A prediction of values >= 1000 (or negative ones) was scored Dice 0 at every level,
    exit 0, while the same map given as the reference was refused. A prediction of nothing
    is still scored; unknown labels beside known ones are scored and warned of."""
    ref = _discs(119)
    cases = {"large": (ref + 1000) * (ref > 0), "negative": -ref}
    for name, pred in cases.items():
        (tmp_path / name).mkdir()
        pdir, rdir = _cases(tmp_path / name, {"sub-01": (pred, ref)})
        js = tmp_path / name / "out.json"
        args = ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir), "--json", str(js)]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        line = _one_error_line(res.output)
        assert line.startswith(f"discquant: error: {pdir / 'sub-01_dseg.nii.gz'}: "), line
        values = "1120-1124" if name == "large" else "-124--120"
        assert f"holds no VerSe/SPINEPS label ({values})" in line and not js.exists()
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    pdir, rdir = _cases(nothing, {"sub-01": (np.zeros_like(ref), ref)})
    res = CliRunner().invoke(app, ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir)])
    assert res.exit_code == 0, res.output
    assert evaluate_dirs(pdir, rdir)["cases"][0]["dice"] == {"disc": 0.0}
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    pred = ref.copy()
    pred[38:40] = 1500
    pdir, rdir = _cases(mixed, {"sub-01": (pred, ref)})
    res = CliRunner().invoke(app, ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir)])
    assert res.exit_code == 0, res.output
    assert f"{pdir / 'sub-01_dseg.nii.gz'}: the prediction holds labels that are not" in res.output
    assert "VerSe/SPINEPS ones: 1500" in res.output
    assert evaluate_dirs(pdir, rdir)["cases"][0]["dice"] == {"disc": 1.0}


def test_evaluate_segment_against_the_real_lumbar_t2_discs_reference(
    tmp_path: Path, shared_data: Path
) -> None:
    """The walkthrough's case: sub-fcs11_dseg.nii.gz (discs 1-5) against a prediction in
    discquant's labels (here its own discs relabelled 120-124)."""
    import shutil

    src = shared_data / "lumbar-t2-discs" / "sub-fcs11_dseg.nii.gz"
    if not src.is_file():
        pytest.skip(f"{src} is absent")
    pdir, rdir = tmp_path / "pred", tmp_path / "ref"
    pdir.mkdir()
    rdir.mkdir()
    shutil.copy(src, rdir / src.name)
    img = nib.load(str(src))
    ref = np.asarray(img.dataobj).astype(np.int16)
    pred = np.where(ref > 0, ref + 119, 0).astype(np.int16)
    nib.save(nib.Nifti1Image(pred, img.affine), str(pdir / src.name))
    with pytest.raises(InvalidInputError, match="reference 1-5, prediction 120-124"):
        evaluate_dirs(pdir, rdir)


def test_evaluate_segment_says_a_file_is_not_a_folder(tmp_path: Path) -> None:
    ref = np.zeros((20, 20, 5))
    ref[2:6, 2:10] = 122
    pdir, rdir = _pair(tmp_path, ref, ref, np.eye(4))
    for option in ("--pred", "--ref"):
        paths = {"--pred": str(pdir), "--ref": str(rdir)}
        paths[option] = str(pdir / "sub-01_dseg.nii.gz")
        args = ["evaluate", "segment", "--pred", paths["--pred"], "--ref", paths["--ref"]]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2, res.output
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "sub-01_dseg.nii.gz: not a folder" in lines[0], res.output
    args = ["evaluate", "segment", "--pred", str(tmp_path / "nope"), "--ref", str(rdir)]
    assert "folder not found" in CliRunner().invoke(app, args).output


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_evaluate_segment_never_writes_its_json_over_what_it_reads(tmp_path: Path) -> None:
    """``--json segs/sub-01_dseg.nii.gz`` replaced that prediction with the metrics, exit 0."""
    ref = np.zeros((20, 20, 5))
    ref[2:6, 2:10] = 122
    pdir, rdir = _pair(tmp_path, ref, ref, np.eye(4))
    nib.save(nib.load(rdir / "sub-01_dseg.nii.gz"), str(rdir / "sub-01_dseg.nii"))  # .nii too
    (rdir / "sub-01_dseg.nii.gz").unlink()
    mask = nib.Nifti1Image(np.zeros((20, 20, 5), np.uint8), np.eye(4))
    nib.save(mask, str(rdir / "sub-01_label-posterior_mask.nii.gz"))
    before = {p: p.read_bytes() for d in (pdir, rdir) for p in d.iterdir()}
    pred_file = pdir / "sub-01_dseg.nii.gz"
    refused = [
        (pred_file, "is an input this command reads"),  # the prediction found
        (rdir / "sub-01_dseg.nii", "is an input this command reads"),  # the reference
        (rdir / "sub-01_label-posterior_mask.nii.gz", "is an input"),  # its mask
        # spelt otherwise: through another folder
        (tmp_path / "ref" / ".." / "pred" / "sub-01_dseg.nii.gz", "is an input"),
        # names read on the next run
        (pdir / "sub-02_dseg.nii.gz", "has a name this command reads"),
        (pdir / "sub-02.nii", "has a name this command reads"),
        (rdir / "sub-03" / "anat" / "sub-03_dseg.nii.gz", "has a name this command reads"),
        (rdir / "sub-02_label-posterior_mask.nii", "has a name this command reads"),
    ]
    for out, problem in refused:
        args = ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir)]
        res = CliRunner().invoke(app, [*args, "--json", str(out)])
        assert res.exit_code == 2, res.output
        line = _one_error_line(res.output)
        assert line.startswith(f"discquant: error: {out}: the --json file "), line
        assert problem in line, line
    # the --pred/--ref file itself (refused whatever the folder check says)
    for option, given in (("--pred", pred_file), ("--ref", rdir / "sub-01_dseg.nii")):
        paths = {"--pred": str(pdir), "--ref": str(rdir), option: str(given)}
        args = ["evaluate", "segment", "--pred", paths["--pred"], "--ref", paths["--ref"]]
        res = CliRunner().invoke(app, [*args, "--json", str(given)])
        assert res.exit_code == 2, res.output
        assert f"the --json file is the {option} input" in _one_error_line(res.output)
    # a hard link to an input, outside the folders, is that input (it was written through)
    for i, (given, what) in enumerate(((pred_file, "--pred"), (rdir / "sub-01_dseg.nii", "--ref"))):
        link = tmp_path / f"metrics-{i}.json"
        os.link(given, link)
        args = ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir)]
        res = CliRunner().invoke(app, [*args, "--json", str(link)])
        assert res.exit_code == 2, res.output
        line = _one_error_line(res.output)
        assert line.startswith(f"discquant: error: {link}: the output would replace the input: "
                               f"--json is a {what} input"), line  # fmt: skip
    assert {p: p.read_bytes() for d in (pdir, rdir) for p in d.iterdir()} == before
    assert not (rdir / "sub-03").exists()
    # Other names inside the folders are fine: they are not read.
    for out in (pdir / "metrics.json", pdir / "sub-01_metrics.json", rdir / "sub-01" / "x.json"):
        args = ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir)]
        res = CliRunner().invoke(app, [*args, "--json", str(out), "--quiet"])
        assert res.exit_code == 0, res.output
        assert json.loads(out.read_text())["cases"][0]["dice"] == {"disc": 1.0}


def _with_discquant_outputs(root: Path, phantom: Path, how: str) -> Path:
    """A copy of the phantom's --out folder ``root`` with discquant's label maps of its
    subjects in a folder of its own, as a cohort or analysis writes them."""
    import shutil

    from discquant.outputs.derivatives import write_dataset_description

    shutil.copytree(phantom, root)
    folder = root / "derivatives" / ("discquant" if how != "description" else "results")
    _analyze_like(folder, root)  # it holds .discquant-cohort
    if how == "description":  # e.g. analyze -o P/derivatives/results: its description only
        shutil.rmtree(folder / ".discquant-cohort")
        write_dataset_description(folder / "dataset_description.json")
    elif how == "name":  # derivatives/discquant without a marker
        shutil.rmtree(folder / ".discquant-cohort")
    return folder


@pytest.mark.parametrize("how", ["cohort", "description", "name"])
def test_evaluate_segment_ref_root_leaves_out_discquants_own_outputs(
    tmp_path: Path, phantom_root: Path, how: str
) -> None:
    """docs/cohort.md puts a cohort's outputs in <root>/derivatives/discquant, and
    docs/segmentation.md says --ref P: together, "two files for sub-00", exit 2."""
    root = tmp_path / "P"
    out = _with_discquant_outputs(root, phantom_root, how)
    for ref in (root, root / "derivatives" / "phantom"):
        js = tmp_path / f"{ref.name}.json"
        args = ["evaluate", "segment", "--pred", str(out), "--ref", str(ref), "--json", str(js)]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        doc = json.loads(js.read_text())
        # scored against the phantom's truth (whole vertebrae, cut by its posterior mask)
        assert [c["case"] for c in doc["cases"]] == ["sub-00"]
        assert doc["posterior_elements_removed"] == ["sub-00"]
        assert doc["cases"][0]["dice"] == {"disc": 1.0, "body": 1.0, "sacrum": 1.0}
    # Explicitly, discquant's outputs are references all the same.
    args = ["evaluate", "segment", "--pred", str(out), "--ref", str(out), "--quiet"]
    assert CliRunner().invoke(app, args).exit_code == 0


def test_evaluate_segment_pred_root_takes_discquants_own_outputs(
    tmp_path: Path, phantom_root: Path
) -> None:
    """``--pred P --ref P`` on a root with the outputs in derivatives/discquant and the
    truth in derivatives/phantom scores the outputs against the truth (it stopped with
    "two files for sub-00": the truth was also read as a prediction)."""
    root = tmp_path / "P"
    out = _with_discquant_outputs(root, phantom_root, "cohort")
    # the prediction misses the L1-L2 disc, so it cannot be mistaken for the truth
    dseg = nib.load(out / "sub-00" / "sub-00_dseg.nii.gz")
    labels = np.asarray(dseg.dataobj)
    missed = int((labels == 120).sum())
    discs = int(((labels >= 100) & (labels < 200)).sum())  # every disc label
    assert missed > 0
    nib.save(
        nib.Nifti1Image(np.where(labels == 120, 0, labels).astype(labels.dtype), dseg.affine),
        out / "sub-00" / "sub-00_dseg.nii.gz",
    )
    js = tmp_path / "m.json"
    args = ["evaluate", "segment", "--pred", str(root), "--ref", str(root), "--json", str(js)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    case = json.loads(js.read_text())["cases"]
    assert [c["case"] for c in case] == ["sub-00"]
    # Dice of the disc class: 2 |P ∩ R| / (|P| + |R|) with P = R minus one disc
    expected = 2 * (discs - missed) / ((discs - missed) + discs)
    assert case[0]["dice"]["disc"] == pytest.approx(expected, abs=1e-6)
    said = (
        "predictions: discquant's outputs in derivatives/discquant (1 other label map passed over)"
    )
    assert res.output.count(said) == 1  # the phantom's truth; said once (it was twice)


def test_evaluate_segment_ref_root_still_refuses_two_other_label_maps(
    tmp_path: Path, phantom_root: Path
) -> None:
    """Another pipeline's derivatives are references like the phantom's: two label maps
    for a subject stay an error, and a folder of discquant's outputs alone is named."""
    import shutil

    root = tmp_path / "P"
    out = _with_discquant_outputs(root, phantom_root, "cohort")
    other = root / "derivatives" / "spineps"
    shutil.copytree(root / "derivatives" / "phantom", other)
    (other / "dataset_description.json").write_text(
        '{"Name": "x", "DatasetType": "derivative", "GeneratedBy": [{"Name": "spineps"}]}'
    )
    args = ["evaluate", "segment", "--pred", str(out), "--ref", str(root)]
    line = _one_error_line(CliRunner().invoke(app, args).output)
    assert "two files for sub-00: derivatives/phantom/" in line, line
    assert "derivatives/spineps/" in line and "derivatives/discquant" not in line, line
    shutil.rmtree(other)
    shutil.rmtree(root / "derivatives" / "phantom")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    line = _one_error_line(res.output)
    assert f"discquant's own outputs in {out} are not taken as references" in line, line


def test_evaluate_segment_reorients_a_prediction_stored_with_permuted_axes(
    tmp_path: Path,
) -> None:
    """A DICOM-derived prediction (e.g. 400 x 480 x 15) against the phantom's NIfTI
    truth (480 x 15 x 400) on the same grid was refused: "shape ... differs"."""
    ref = np.zeros((24, 5, 20), np.int16)  # superior-inferior, left-right, anterior-posterior
    ref[2:6, 1:4, 3:12] = 122
    ref[8:12, 1:4, 3:12] = 123
    ref[14:20, 1:4, 3:12] = 23
    ref_affine = np.array(
        [[0.0, 0.0, -0.8, 40.0], [0.0, 4.0, 0.0, -10.0], [-0.8, 0.0, 0.0, 30.0], [0, 0, 0, 1]]
    )
    ref_img = nib.Nifti1Image(ref, ref_affine)
    # the same voxels with the axes in another order and one of them flipped
    pred_img = ref_img.as_reoriented(np.array([[2, 1], [0, -1], [1, 1]]))
    assert pred_img.shape == (5, 20, 24)
    pred_data = np.asarray(pred_img.dataobj)
    pdir, rdir = tmp_path / "pred", tmp_path / "ref"
    pdir.mkdir()
    rdir.mkdir()
    nib.save(ref_img, str(rdir / "sub-01_dseg.nii.gz"))
    nib.save(nib.Nifti1Image(pred_data, pred_img.affine), str(pdir / "sub-01_dseg.nii.gz"))
    js = tmp_path / "out.json"
    args = ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir), "--json", str(js)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(js.read_text())
    assert doc["predictions_reoriented"] == ["sub-01"]
    assert "reoriented onto its grid: sub-01" in res.output
    case = doc["cases"][0]  # voxel for voxel the reference
    assert case["dice"] == {"disc": 1.0, "body": 1.0}
    assert case["level_dice"] == {"L4": 1.0, "L3-L4": 1.0, "L4-L5": 1.0}
    # Not the same grid up to the axis order: a 2 mm shift, or another voxel size, is
    # still refused.
    for affine in (pred_img.affine + np.array([[0, 0, 0, 2.0]] + [[0] * 4] * 3), None):
        if affine is None:
            affine = pred_img.affine.copy()
            affine[:3, :3] *= 1.01
        nib.save(nib.Nifti1Image(pred_data, affine), str(pdir / "sub-01_dseg.nii.gz"))
        res = CliRunner().invoke(app, args[:-2])
        assert res.exit_code == 2, res.output
        assert "resample it onto the reference grid" in _one_error_line(res.output)


def test_read_boxes_ignores_a_byte_order_mark_and_a_trailing_blank_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "boxes.tsv"
    path.write_text(
        "\ufeffsubject\tclass\tx_center\ty_center\twidth\theight\n"
        "007\tnormal_ivd\t0.5\t0.25\t0.1\t0.05\n"
        "007\tspinal_stenosis\t0.4\t0.3\t0.1\t0.1\n"
        "sub-2\tlumbar_disc_bulge\t0.6\t0.7\t0.2\t0.1\n"
        "\n",
        encoding="utf-8",
    )
    assert read_boxes(path) == {
        "007": [(0.5, 0.25, 0.1, 0.05)],
        "sub-2": [(0.6, 0.7, 0.2, 0.1)],
    }
    assert read_boxes(path, classes=None)["007"] == [
        (0.5, 0.25, 0.1, 0.05),
        (0.4, 0.3, 0.1, 0.1),
    ]


def test_lumbar_only_leaves_out_the_thoracic_levels_of_both_maps(tmp_path: Path) -> None:
    """A phantom's T10-T11 disc at the top of its image, which the network does not
    label, read "levels named 45/48" beside a model card scoring L1-L2 … L5-S1 (trial D):
    --lumbar-only scores as the card does."""
    ref = _stacked_levels(
        (60, 20, 3), [(2, 6, 110), (8, 12, 119), (14, 18, 120), (20, 24, 121), (26, 30, 20)]
    )
    pred = np.where(ref == 110, 0, ref)  # the thoracic disc missed
    pred[8:12, 5:15] = 0  # and T12-L1 too
    pdir, rdir = _pair(tmp_path, pred, ref, np.eye(4))
    every = evaluate_dirs(pdir, rdir)
    assert every["summary"]["levels_named"] == "3/5" and every["lumbar_only"] is False
    lumbar = evaluate_dirs(pdir, rdir, lumbar=True)
    assert lumbar["summary"]["levels_named"] == "3/3" and lumbar["lumbar_only"] is True
    assert set(lumbar["cases"][0]["level_dice"]) == {"L1-L2", "L2-L3", "L1"}
    out = tmp_path / "e.json"
    res = CliRunner().invoke(
        app,
        ["evaluate", "segment", "--pred", str(pdir), "--ref", str(rdir), "--lumbar-only",
         "--json", str(out), "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["summary"]["levels_named"] == "3/3"


@pytest.mark.parametrize("side", ["ref", "pred"])
def test_an_image_given_as_a_label_map_is_refused(tmp_path: Path, side: str) -> None:
    """A T2 in --ref was scored as the reference, its intensities read as 52 "levels"
    at Dice 0, exit 0; as the prediction it was scored with a warning (an audit)."""
    seg = _stacked_levels((60, 20, 3), [(14, 18, 120), (20, 24, 121), (26, 30, 20)])
    image = np.random.default_rng(0).integers(0, 900, seg.shape)  # an MR image's values
    pred, ref = (seg, image) if side == "ref" else (image, seg)
    pdir, rdir = _pair(tmp_path, pred, ref, np.eye(4))
    with pytest.raises(InvalidInputError, match="an image, not a label map") as err:
        evaluate_dirs(pdir, rdir)
    assert str(err.value).startswith(str((rdir if side == "ref" else pdir) / "sub-01"))
    # a SPINEPS map with subregions (41 … 50, unknown here) and endplates is no image
    spineps = seg.copy()
    spineps[0, 0, :] = [41, 45, 50]
    spineps[1, :, 0] = np.arange(201, 221)
    (tmp_path / "sp").mkdir()
    pdir, rdir = _pair(tmp_path / "sp", spineps, seg, np.eye(4))
    assert evaluate_dirs(pdir, rdir)["summary"]["n_cases"] == 1


def test_lumbar_only_says_a_reference_of_thoracic_levels_lost_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With --lumbar-only a reference of T11 and T12 read "labels no level", then "no
    reference labels a disc or vertebra", though it did (an audit)."""
    ref = _stacked_levels((60, 20, 3), [(2, 6, 18), (8, 12, 19)])
    pdir, rdir = _pair(tmp_path, ref, ref, np.eye(4))
    with (
        caplog.at_level(logging.WARNING),  # an earlier CLI test's --quiet set the root to ERROR
        pytest.raises(InvalidInputError, match=r"labels a lumbar disc or vertebra \(--lumbar"),
    ):
        evaluate_dirs(pdir, rdir, lumbar=True)
    assert "the reference labels no lumbar level (--lumbar-only)" in caplog.text
