"""Training on a user's own labelled volumes (``labelled_sets``), without ../shared.

The labelled set is what ``discquant phantom --out P`` writes: raw ``sub-X/anat/
sub-X_T2w.nii.gz`` beside ``derivatives/phantom/sub-X/anat/sub-X_dseg.nii.gz`` in the
VerSe/SPINEPS convention (whole vertebrae, sacrum 26, spinal cord 60, canal 61, discs
117-124), the layout of a BIDS dataset with another pipeline's or a rater's derivatives.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from discquant.cli import app
from discquant.errors import InvalidInputError
from discquant.segment.data import load_labelled_set
from discquant.segment.network import IGNORE
from discquant.segment.train import LabelledSet, TrainConfig, train

CLASSES = ["background", "body", "disc", "sacrum", "nucleus", "canal"]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("labelled") / "P"
    res = CliRunner().invoke(app, ["phantom", "--out", str(root), "--n", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    return root


def test_each_label_teaches_its_class_and_unknown_ones_are_ignored(labelled: Path) -> None:
    subjects = load_labelled_set(
        labelled, CLASSES, labelled=["disc", "body", "sacrum"], whole_vertebrae=True,
        spacing_mm=1.0, ignore_above_mm=None,
    )  # fmt: skip
    assert [s.name for s in subjects] == ["sub-00", "sub-01"]
    s = subjects[0]
    raw = nib.load(labelled / "derivatives/phantom/sub-00/anat/sub-00_dseg.nii.gz")

    def group_of(value: int) -> set[str]:
        groups = {int(t) for t in np.unique(s.target[_on_grid(s, raw, value)])}
        assert len(groups) == 1, (value, groups)
        g = groups.pop()
        return {"ignored"} if g == IGNORE else {CLASSES[i] for i in s.groups[g]}

    assert group_of(122) == {"disc", "nucleus"}  # a disc: the nucleus is not drawn apart
    assert group_of(22) == {"body", "background"}  # a whole vertebra: body or posterior
    assert group_of(26) == {"sacrum"}
    assert group_of(61) == {"ignored"}  # the canal is labelled, but not declared labelled
    assert group_of(60) == {"ignored"}  # the spinal cord: no class of the network
    # Unlabelled voxels are none of the declared classes: background, nucleus or canal
    # (the nucleus, being inside a disc, is excluded too).
    assert group_of(0) == {"background", "canal"}


def _on_grid(subject: object, raw: nib.Nifti1Image, value: int) -> np.ndarray:
    """Voxels of ``value`` on the subject's network grid (through the training code's own
    resampling, so the comparison is exact)."""
    from discquant.io.study import Volume
    from discquant.segment.data import _label_to_grid

    data = np.asarray(raw.dataobj).astype(np.int32)
    grid = _label_to_grid(data, Volume(data.astype(np.float32), raw.affine), 1.0)
    return np.asarray(grid == value)


def test_a_bad_labelled_set_is_a_one_line_error(labelled: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"labelled classes \['nucleus'\]"):
        load_labelled_set(labelled, CLASSES, labelled=["nucleus"], whole_vertebrae=True,
                          spacing_mm=1.0)  # fmt: skip
    # a label map whose image is missing is named, with what was looked for
    import shutil

    copy = tmp_path / "P"
    shutil.copytree(labelled, copy)
    (copy / "sub-01" / "anat" / "sub-01_T2w.nii.gz").unlink()
    with pytest.raises(InvalidInputError) as info:
        load_labelled_set(copy, CLASSES, labelled=["disc"], whole_vertebrae=True, spacing_mm=1.0)
    message = str(info.value)
    assert "sub-01_dseg.nii.gz" in message and "sub-01_*_T2w.nii[.gz] image" in message
    assert "found none" in message and "\n" not in message


def test_tiny_training_on_a_labelled_set_alone(labelled: Path, tmp_path: Path) -> None:
    """No ../shared (data_root: null): the user's volumes are the real data."""
    config = TrainConfig(
        seed=0, channels=[4, 8, 16], patch=64, batch_size=2, steps=40, lr=0.01, log_every=10,
        val_every=40, checkpoint_every=20, data_root=None,
        labelled_sets=[LabelledSet(root=str(labelled), labelled=["disc", "body", "sacrum"])],
        train_subjects=["sub-00"], val_subjects=["sub-01"],
    )  # fmt: skip
    final = train(config, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 4 and np.mean(losses[2:]) < losses[0]
    val = [r for r in rows if "val_dice_mean" in r]
    assert val and all(k.startswith("sub-01/") for k in val[-1] if "/" in k)
    from discquant.segment.infer import load_segmentation_model

    assert load_segmentation_model(final).classes == ["background", "body", "disc", "sacrum"]


def test_labelled_sets_from_yaml(labelled: Path, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"data_root: null\nlabelled_sets:\n  - root: {labelled}\n    labelled: [disc]\n"
        "    whole_vertebrae: false\n"
    )
    config = TrainConfig.from_yaml(path)
    assert config.data_root is None
    assert config.labelled_sets == [
        LabelledSet(root=str(labelled), labelled=["disc"], whole_vertebrae=False)
    ]
    path.write_text(f"labelled_sets:\n  - root: {labelled}\n    labelled: disc\n")
    with pytest.raises(InvalidInputError, match="invalid training configuration"):
        TrainConfig.from_yaml(path)
