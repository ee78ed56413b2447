"""Segmentation metrics against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from discquant.evaluate.segmentation import evaluate_case, midsag_check
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
