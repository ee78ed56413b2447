"""Fixtures of the segmentation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from discquant.cli import app


@pytest.fixture(scope="session")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled set of two phantom subjects (``discquant phantom --out P --n 2``): raw
    ``sub-0X/anat/sub-0X_T2w.nii.gz`` beside ``derivatives/phantom/.../sub-0X_dseg.nii.gz``
    in the VerSe/SPINEPS convention."""
    root = tmp_path_factory.mktemp("labelled") / "P"
    res = CliRunner().invoke(app, ["phantom", "--out", str(root), "--n", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    return root
