"""Training on a user's own labelled volumes (``labelled_sets``), without ../shared.

The labelled set is what ``discquant phantom --out P`` writes: raw ``sub-X/anat/
sub-X_T2w.nii.gz`` beside ``derivatives/phantom/sub-X/anat/sub-X_dseg.nii.gz`` in the
VerSe/SPINEPS convention (whole vertebrae, sacrum 26, spinal cord 60, canal 61, discs
117-124), the layout of a BIDS dataset with another pipeline's or a rater's derivatives.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
    # keyed by the classes scored, not "sub-01/group1"
    # (a class with neither target nor predicted pixels in the validation slices has no score)
    keys = set(val[-1]["val"])
    assert "sub-01/disc" in keys
    assert keys <= {"sub-01/body", "sub-01/disc", "sub-01/sacrum"}
    from discquant.segment.infer import load_segmentation_model

    model = load_segmentation_model(final)
    assert model.classes == ["background", "body", "disc", "sacrum"]
    # what it was trained on, in its meta (it held the classes and the step alone: an audit)
    assert model.meta["subjects"] == {"train": ["sub-00"], "validation": ["sub-01"]}
    assert model.meta["labelled_sets"] == [str(labelled.resolve())]
    assert model.meta["data_root"] is None and model.meta["phantom_train_seeds"] == 0
    from discquant.segment.train import _resume_settings

    settings = json.dumps(_resume_settings(config), sort_keys=True, default=str)
    assert model.meta["settings_sha256"] == hashlib.sha256(settings.encode()).hexdigest()
    # what the weights depend on only: another thread count hashes alike
    threads = json.dumps(
        _resume_settings(dataclasses.replace(config, threads=2)), sort_keys=True, default=str
    )
    assert threads == settings
    assert not model.shipped and load_segmentation_model().shipped


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


def _flat_set(labelled: Path, folder: Path, names: dict[str, str]) -> Path:
    """A flat folder of ``<new>_T2w`` / ``<new>_dseg`` copies of the phantom subjects."""
    import shutil

    folder.mkdir(parents=True)
    for old, new in names.items():
        shutil.copy(labelled / old / "anat" / f"{old}_T2w.nii.gz", folder / f"{new}_T2w.nii.gz")
        dseg = labelled / "derivatives" / "phantom" / old / "anat" / f"{old}_dseg.nii.gz"
        shutil.copy(dseg, folder / f"{new}_dseg.nii.gz")
    return folder


def _tiny(root: Path | list[Path], **kw: object) -> TrainConfig:
    roots = root if isinstance(root, list) else [root]
    base: dict[str, object] = dict(
        channels=[4, 8, 16], patch=64, batch_size=2, steps=20, log_every=10, val_every=20,
        checkpoint_every=10, data_root=None,
        labelled_sets=[LabelledSet(root=str(r), labelled=["disc"]) for r in roots],
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_sessions_of_one_subject_are_one_patient(labelled: Path, tmp_path: Path) -> None:
    """sub-01_ses-1 held out while sub-01_ses-2 trained ran (a leak), and val_subjects
    [sub-01] was 'no real subject named sub-01'."""
    root = _flat_set(
        labelled, tmp_path / "S",
        {"sub-00": "sub-01_ses-1", "sub-01": "sub-01_ses-2"},
    )  # fmt: skip
    _flat_set(labelled, tmp_path / "S2", {"sub-00": "sub-02"})
    for f in (tmp_path / "S2").iterdir():
        f.rename(root / f.name)
    with pytest.raises(InvalidInputError, match="are one patient"):
        train(_tiny(root, val_subjects=["sub-01_ses-1"]), tmp_path / "a")
    assert not (tmp_path / "a").exists()
    train(_tiny(root, val_subjects=["sub-01"]), tmp_path / "b")
    rows = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    scored = {k.split("/")[0] for r in rows for k in r.get("val", {})}
    assert scored == {"sub-01_ses-1", "sub-01_ses-2"}  # both sessions held out


def test_bad_sets_are_one_line_errors(labelled: Path, tmp_path: Path) -> None:
    a = _flat_set(labelled, tmp_path / "A", {"sub-00": "sub-00"})
    b = _flat_set(labelled, tmp_path / "B", {"sub-01": "sub-00"})
    with pytest.raises(InvalidInputError, match="sub-00 also in another set"):
        train(_tiny([a, b]), tmp_path / "o1")
    with pytest.raises(InvalidInputError, match="at least one labelled class"):
        load_labelled_set(a, CLASSES, labelled=[], whole_vertebrae=True, spacing_mm=1.0)
    # no labelled set and no data_root: an error, not an IndexError
    # (it read "no real subject", naming the first set's folder, though every set is
    # searched and phantoms never are: an audit)
    with pytest.raises(InvalidInputError) as err:
        train(_tiny(a, labelled_sets=[], phantom_train_seeds=[0], val_subjects=["sub-01"]),
              tmp_path / "o2")  # fmt: skip
    assert str(err.value) == (
        "no subject named sub-01 (train_subjects/val_subjects) in no data set: subjects "
        "are labelled volumes, never phantoms"
    )
    c = _flat_set(labelled, tmp_path / "C", {"sub-01": "sub-05"})
    with pytest.raises(InvalidInputError) as err:
        train(_tiny([a, c], val_subjects=["sub-09"]), tmp_path / "o3")
    assert f"no subject named sub-09 (train_subjects/val_subjects) in {a}, {c}:" in str(err.value)
    # a float label map: 25.9999 was read as 25 (the sacrum a vertebra)
    img = nib.load(a / "sub-00_dseg.nii.gz")
    data = np.asarray(img.dataobj).astype(np.float32)
    data[data == 26] = 25.9999
    nib.save(nib.Nifti1Image(data, img.affine), a / "sub-00_dseg.nii.gz")
    with pytest.raises(InvalidInputError, match="non-integer values"):
        load_labelled_set(a, CLASSES, labelled=["disc"], whole_vertebrae=True, spacing_mm=1.0)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_one_pipelines_labels_and_the_image_of_the_same_acquisition(
    labelled: Path, tmp_path: Path
) -> None:
    """Two pipelines' label maps under one root had no way to choose one; an image per
    acquisition (acq-ax, acq-sag) had none to pair the label map's acq-sag with."""
    import shutil

    from discquant.segment.data import labelled_set_pairs

    root = tmp_path / "P"
    shutil.copytree(labelled, root)
    manual = root / "derivatives" / "manual" / "sub-00" / "anat"
    manual.mkdir(parents=True)
    phantom_map = root / "derivatives/phantom/sub-00/anat/sub-00_dseg.nii.gz"
    shutil.copy(phantom_map, manual / "sub-00_desc-manual_dseg.nii.gz")
    with pytest.raises(InvalidInputError, match=r"two label maps for sub-00: .*\(labels: names"):
        labelled_set_pairs(root)
    pairs = labelled_set_pairs(root, labels="derivatives/manual")
    assert [(s, i.name, m.name) for s, i, m in pairs] == [
        ("sub-00", "sub-00_T2w.nii.gz", "sub-00_desc-manual_dseg.nii.gz")
    ]
    with pytest.raises(InvalidInputError, match="labels folder 'derivatives/nobody' not found"):
        labelled_set_pairs(root, labels="derivatives/nobody")
    # acquisitions: the label map's acq-sag picks the sagittal image
    anat = root / "sub-01" / "anat"
    (anat / "sub-01_T2w.nii.gz").rename(anat / "sub-01_acq-sag_T2w.nii.gz")
    shutil.copy(anat / "sub-01_acq-sag_T2w.nii.gz", anat / "sub-01_acq-ax_T2w.nii.gz")
    label = root / "derivatives/phantom/sub-01/anat/sub-01_dseg.nii.gz"
    label.rename(label.with_name("sub-01_acq-sag_dseg.nii.gz"))
    pairs = labelled_set_pairs(root, labels="derivatives/phantom")
    assert [(s, i.name) for s, i, _ in pairs] == [
        ("sub-00", "sub-00_T2w.nii.gz"),
        ("sub-01", "sub-01_acq-sag_T2w.nii.gz"),
    ]


@pytest.mark.parametrize(
    ("relabel", "expected"),
    [
        # disc maps left in their source convention (1-5) under labelled: [disc]: every
        # disc was taught "not a disc", without a word
        ({117: 1, 118: 2, 119: 3, 120: 4, 121: 5, 122: 0, 123: 0, 124: 0},
         "label map holds 1-5, 17-24, 26, 60-61 but no value of its declared classes "
         "(discs 100-128)"),
        ({122: 1000}, "label map holds 1000, outside the VerSe/SPINEPS convention"),
        ({122: -5}, "label map holds -5, outside the VerSe/SPINEPS convention"),
    ],
)  # fmt: skip
def test_a_label_map_in_another_convention_is_refused(
    labelled: Path, tmp_path: Path, relabel: dict[int, int], expected: str
) -> None:
    root = _flat_set(labelled, tmp_path / "A", {"sub-00": "sub-00"})
    dseg = root / "sub-00_dseg.nii.gz"
    img = nib.load(dseg)
    data = np.asarray(img.dataobj).astype(np.int32)
    out = data.copy()
    for old, new in relabel.items():
        out[data == old] = new
    nib.save(nib.Nifti1Image(out, img.affine), dseg)
    config = tmp_path / "c.yaml"
    config.write_text(
        "channels: [4, 8, 16]\npatch: 64\nbatch_size: 2\nsteps: 20\ndata_root: null\n"
        f"patient_groups: []\nlabelled_sets:\n  - root: {root}\n    labelled: [disc]\n"
    )
    args = ["train", "segment", "--config", str(config), "--out", str(tmp_path / "run")]
    res = CliRunner().invoke(app, [*args, "--quiet"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith(f"discquant: error: {dseg}: "), lines
    assert expected in lines[0] and "relabel it" in lines[0]
    assert not (tmp_path / "run").exists()


def test_values_of_undeclared_classes_are_still_accepted(labelled: Path) -> None:
    """A full SPINEPS map under labelled: [disc] holds vertebrae, cord, canal and
    endplates beside the discs: those are ignored, as documented, not refused."""
    from discquant.segment.data import label_values_problem

    assert label_values_problem([0, 20, 26, 28, 60, 61, 120, 201], ["disc"]) is None
    assert label_values_problem([0, 20, 26], ["disc", "sacrum"]) is None
    # VerSe's coccyx (27) too: it was refused as outside the convention (a review)
    assert label_values_problem([0, 20, 26, 27, 120, 121], ["disc", "body"]) is None
    assert "no value of its declared classes (discs 100-128, sacrum 26)" in str(
        label_values_problem([0, 20], ["disc", "sacrum"])
    )


def test_the_label_convention_is_one_set_of_values() -> None:
    """A user's label map is checked against the same values the T2 import takes for a
    spine label map (results.SPINE_LABEL_VALUES): discs 129-199 and endplates 229-299 were
    accepted by one and unknown to the other (a review)."""
    from discquant.results import SPINE_LABEL_VALUES
    from discquant.segment.data import convention_class, label_values_problem

    assert {v for v in range(0, 1000) if convention_class(v) is not None} == SPINE_LABEL_VALUES
    assert [convention_class(v) for v in (20, 26, 28, 61, 62, 100, 124, 128, 201)] == [
        "body", "sacrum", "", "canal", "", "disc", "disc", "disc", "",
    ]  # fmt: skip
    problem = label_values_problem([0, 20, 150], ["disc", "body"])
    assert problem is not None and "150" in problem


def test_a_label_map_stored_in_another_voxel_order_is_read_onto_its_image(
    labelled: Path, tmp_path: Path
) -> None:
    """The image's grid with the axes stored in another order (the affine saying so) was
    refused: "shape (67, 221, 221) against (221, 221, 67)", where `evaluate segment`
    reorders such maps (an audit). The targets are those of the map as stored first."""
    import shutil

    from nibabel.orientations import apply_orientation, inv_ornt_aff

    copy = tmp_path / "P"
    shutil.copytree(labelled, copy)
    dseg = next(copy.rglob("sub-00_dseg.nii.gz"))
    img = nib.load(dseg)
    data = np.asarray(img.dataobj)
    ornt = np.array([[2, 1], [0, -1], [1, 1]])  # axes permuted, one flipped
    moved = apply_orientation(data, ornt)
    affine = img.affine @ inv_ornt_aff(ornt, data.shape)
    nib.save(nib.Nifti1Image(moved, affine), dseg)
    assert moved.shape != data.shape
    kwargs = dict(labelled=["disc", "sacrum"], whole_vertebrae=True, spacing_mm=1.0)
    (before,) = load_labelled_set(labelled, CLASSES, names=["sub-00"], **kwargs)  # type: ignore[arg-type]
    (after,) = load_labelled_set(copy, CLASSES, names=["sub-00"], **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(after.target, before.target)
    assert after.groups == before.groups
