"""`discquant phantom` writes studies and rejects bad options with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from discquant.cli import app


def test_phantom_command_writes_bids_with_requested_grades(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["phantom", "--out", str(tmp_path), "--seed", "4", "--grades", "1,1,2,3,4",
              "--bvals", "0,600", "--snr", "25"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.stdout == f"sub-04: 17 files under {tmp_path}\n"
    truth = json.loads((tmp_path / "derivatives/phantom/sub-04/sub-04_truth.json").read_text())
    grades = {d["level"]: d["grade"] for d in truth["discs"]}
    assert [grades[x] for x in ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")] == [1, 1, 2, 3, 4]
    assert truth["snr"] == 25.0
    assert (tmp_path / "sub-04/dwi/sub-04_dwi.bval").read_text().split() == ["0", "600"]


def test_phantom_command_rejects_bad_grades(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path), "--grades", "2,3,6"])
    assert res.exit_code == 2
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["--grades", "2.7,3,3,4,5.9"],  # was cut to 2,3,3,4,5 without a word
        ["--seed", "-1"],  # was a ValueError traceback from numpy
        ["--bvals", "0,0"],  # was a LinAlgError traceback
        # NaN passed every check and crashed the generator; an SNR of 1e-40 or NaN
        # crashed the NIfTI writer (NaN after making the output folder)
        ["--bvals", "0,nan"],
        ["--bvals", "0,inf"],
        ["--snr", "nan"],
        ["--snr", "1e-40"],
        ["--grades", "nan,3,3,4,5"],
        # written, then refused by `analyze` as another unit (ms/µm², s/m²)
        ["--bvals", "0,0.8"],
        ["--bvals", "0,1e6"],
    ],
)
def test_phantom_command_rejects_values_it_cannot_honour(tmp_path: Path, args: list[str]) -> None:
    res = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "out"), *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and not (tmp_path / "out").exists()


def test_phantom_verbose_logs_each_step(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "o"), "--verbose"])
    assert res.exit_code == 0, res.output
    steps = [s for s in ("anatomy", "T2 TSE image", "DWI, b =", "scanner ADC map", "truth")]
    assert all(f"phantom 0: {s}" in res.stderr for s in steps), res.stderr


def test_phantom_quiet_prints_nothing(tmp_path: Path) -> None:
    """--quiet, as every other command has (it was "No such option: --quiet")."""
    res = CliRunner().invoke(app, ["phantom", "--out", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.stdout == "" and res.stderr == ""
    assert (tmp_path / "o/sub-00/anat/sub-00_T2w.nii.gz").is_file()


def test_phantom_command_refuses_to_write_over_an_earlier_subject(tmp_path: Path) -> None:
    """`phantom -o st` then `phantom -o st --format dicom --grades 1,1,1,1,1` left the first
    run's NIfTI images (grades 2-5) beside a truth that said grade 1, exit 0 (an audit)."""
    out = tmp_path / "st"
    res = CliRunner().invoke(app, ["phantom", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    truth = out / "derivatives/phantom/sub-00/sub-00_truth.json"
    before = truth.read_bytes()
    args = ["phantom", "--out", str(out), "--format", "dicom", "--grades", "1,1,1,1,1"]
    res = CliRunner().invoke(app, [*args, "--n", "2", "--seed", "0"])
    assert res.exit_code == 2
    assert res.output == (
        f"discquant: error: {out / 'sub-00'}: already holds a phantom subject of this label; "
        "remove it or give another --out or --seed (its truth would no longer match its "
        "images)\n"
    )
    assert truth.read_bytes() == before and not (out / "dicom").exists()
    res = CliRunner().invoke(app, [*args, "--seed", "1", "--quiet"])  # another subject: written
    assert res.exit_code == 0, res.output
    new = json.loads((out / "derivatives/phantom/sub-01/sub-01_truth.json").read_text())
    grades = {d["level"]: d["grade"] for d in new["discs"]}
    assert [grades[x] for x in ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")] == [1] * 5
