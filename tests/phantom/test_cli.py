"""`discquant phantom` writes studies and rejects bad options with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from discquant.cli import app


def test_phantom_command_writes_bids_with_requested_grades(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["phantom", "--out", str(tmp_path), "--seed", "4", "--grades", "1,1,2,3,4",
              "--bvals", "0,600", "--snr", "25"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "derivatives/phantom/sub-04/sub-04_truth.json").read_text())
    grades = {d["level"]: d["grade"] for d in truth["discs"]}
    assert [grades[x] for x in ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")] == [1, 1, 2, 3, 4]
    assert truth["snr"] == 25.0
    assert (tmp_path / "sub-04/dwi/sub-04_dwi.bval").read_text().split() == ["0", "600"]


def test_phantom_command_rejects_bad_grades(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path), "--grades", "2,3,6"])
    assert res.exit_code == 2
    assert not any(tmp_path.iterdir())
