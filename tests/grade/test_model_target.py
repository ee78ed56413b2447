"""Model and threshold files given to `analyze` are checked before the run. A grading
model trained for another target (herniation) is refused where discs are
graded: it loaded without complaint, and the grading stage then failed on a numpy matmul
(two outputs against five grades) with exit 3 (a review)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from discquant.cli import app
from discquant.errors import ModelError
from discquant.grade.pfirrmann import (
    PfirrmannModel,
    build_network,
    grade_disc_crops,
    load_grading_model,
    load_pfirrmann_model,
    save_pfirrmann_model,
)


@pytest.fixture(scope="module")
def herniation_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-output network saved as ``discquant train grade`` with ``target: herniation``
    saves one."""
    shipped = load_pfirrmann_model()
    meta = {"arch": shipped.metadata.get("arch"), "target": "herniation", "seed": 0}
    model = PfirrmannModel(build_network(meta["arch"], num_classes=2), dict(shipped.crop), meta)
    path = tmp_path_factory.mktemp("model") / "herniation.pt"
    save_pfirrmann_model(model, path)
    return path


def test_a_herniation_model_loads_for_evaluation_but_not_for_grading(
    herniation_model: Path,
) -> None:
    model = load_pfirrmann_model(herniation_model)  # evaluate/train read it as it is
    assert model.target == "herniation"
    assert load_pfirrmann_model().target == "pfirrmann"
    with pytest.raises(ModelError) as err:
        load_grading_model(herniation_model)
    assert err.value.path == herniation_model
    assert "a herniation model" in str(err.value)
    crops = np.zeros((1, 3, 60, 80), np.float32)
    with pytest.raises(ModelError):
        grade_disc_crops(crops, model=model)
    assert grade_disc_crops(crops)[0].grade in range(1, 6)  # the shipped model grades


def test_analyze_refuses_a_herniation_model_before_the_run(
    herniation_model: Path, tmp_path: Path
) -> None:
    t2 = tmp_path / "t2.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((64, 64, 3), np.float32), np.eye(4)), t2)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["analyze", "--t2", str(t2), "--grading-model", str(herniation_model), "-o", str(out)]
    )
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines == [
        f"discquant: error: {herniation_model}: a herniation model (trained with target: "
        "herniation); discs are graded by a Pfirrmann model (target: pfirrmann)"
    ]
    assert not out.exists()


def test_analyze_refuses_unreadable_adc_thresholds_before_the_run(tmp_path: Path) -> None:
    """``--adc-thresholds`` (a site's ADC classes) is checked as the other files are."""
    t2 = tmp_path / "t2.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((64, 64, 3), np.float32), np.eye(4)), t2)
    bad = tmp_path / "site.yaml"
    bad.write_text(  # the last class not open
        "unit: um2_per_ms\nclasses:\n  - {name: wet, upper: 1.5}\n  - {name: dry, upper: 2.5}\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["analyze", "--t2", str(t2), "--adc-thresholds", str(bad), "-o", str(out)]
    )
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"discquant: error: {bad}: ADC class bounds")
    assert not out.exists()
