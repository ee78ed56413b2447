"""`discquant segment`: a phantom T2 through the command line, and a bad output name."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from discquant.cli import app
from discquant.phantom import PhantomConfig, generate_study, write_study


def test_segment_command_writes_named_levels_on_the_input_grid(tmp_path: Path) -> None:
    write_study(generate_study(12, PhantomConfig(noise=False)), tmp_path, subject="s")
    t2 = tmp_path / "sub-s" / "anat" / "sub-s_T2w.nii.gz"
    out = tmp_path / "seg" / "s_seg.nii.gz"
    res = CliRunner().invoke(app, ["segment", str(t2), "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    img, seg = nib.load(t2), nib.load(out)
    assert seg.shape == img.shape
    np.testing.assert_allclose(seg.affine, img.affine)
    labels = set(np.unique(np.asarray(seg.dataobj)).tolist())
    assert {120, 121, 122, 123, 124, 26} <= labels
    levels = json.loads((out.parent / "s_seg_levels.json").read_text())
    names = [lv["name"] for lv in levels["levels"]]
    assert names[-5:] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert (out.parent / "dseg.tsv").is_file()


def test_segment_command_rejects_a_non_nifti_output_before_running(tmp_path: Path) -> None:
    image = tmp_path / "t2.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 2), np.float32), np.eye(4)), image)
    res = CliRunner().invoke(app, ["segment", str(image), "-o", str(tmp_path / "seg.txt")])
    assert res.exit_code == 2
    assert "seg.txt" in res.output and ".nii.gz" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t2.nii.gz"]
