"""What ``discquant train segment`` refuses before it writes anything, and how it treats
an output folder that holds an earlier run (no ../shared: a phantom labelled set)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from discquant.cli import app
from discquant.errors import InvalidInputError
from discquant.segment.train import LabelledSet, TrainConfig, train

TINY = """\
channels: [4, 8, 16]
patch: 64
batch_size: 2
steps: 20
data_root: null
patient_groups: []
labelled_sets:
  - root: {root}
    labelled: [disc]
"""


def _cli_error(config: Path, out: Path) -> str:
    """``train segment`` with ``config``: exit 2, one error line, ``out`` not made."""
    res = CliRunner().invoke(
        app, ["train", "segment", "--config", str(config), "--out", str(out), "--quiet"]
    )
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("discquant: error: "), res.stderr
    return lines[0]


def test_a_strictly_checked_configuration_still_reads_what_a_user_writes(
    labelled: Path, tmp_path: Path
) -> None:
    """Strict types (since 2026-12-06) keep integers for decimals, numbers with an exponent
    (text to PyYAML), null for an optional field and a mapping of seeds."""
    from discquant.segment.train import TrainConfig

    config = tmp_path / "c.yaml"
    config.write_text(
        TINY.format(root=labelled)
        + "lr: 1e-3\nweight_decay: 2.5E-5\nspacing_mm: 1\ntrain_subjects: null\n"
        + "phantom_train_seeds: {start: 0, stop: 2}\n"
    )
    read = TrainConfig.from_yaml(config, seed=7)
    assert (read.lr, read.weight_decay, read.spacing_mm) == (0.001, 2.5e-5, 1.0)
    assert read.train_subjects is None and read.phantom_train_seeds == [0, 1]
    assert read.seed == 7 and read.labelled_sets[0].labelled == ["disc"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # a typo inside a labelled set trained the default (whole vertebrae) silently
        ("    whole_vertebra: false\n", "labelled_sets[0]: unknown config keys ['whole_vertebra']"),
        ("    label: derivatives/phantom\n", "labelled_sets[0]: unknown config keys ['label']"),
        (
            "phantom_train_seeds: {start: 0, stop: 2, step: 1}\n",
            "phantom_train_seeds: unknown config keys ['step']",
        ),
        # tracebacks (exit 1), most after config.json and log.jsonl were written
        ("patch: 50\n", "patch is 50; it must be a positive multiple of 4"),
        ("patch: 0\n", "patch is 0; it must be a positive multiple of 4"),
        ("batch_size: 0\n", "batch_size is 0; it must be at least 1"),
        ("log_every: 0\n", "log_every is 0; it must be at least 1"),
        ("val_every: 0\n", "val_every is 0; it must be at least 1"),
        ("checkpoint_every: 0\n", "checkpoint_every is 0; it must be at least 1"),
        ("spacing_mm: 0\n", "spacing_mm is 0.0; it must be above 0"),
        ("lr: -0.001\n", "lr is -0.001; it must be above 0"),
        ("weight_decay: -1\n", "weight_decay is -1.0; it must be 0 or more"),
        ("threads: 0\n", "threads is 0; it must be at least 1"),
        ("channels: []\n", "channels is []; it needs 2 to 5 levels"),
        ("channels: [4, 8, 16, 32, 64, 128]\n", "channels is [4, 8, 16, 32, 64, 128]; it needs"),
        # accepted without a word
        ("context_mm: -2\n", "context_mm is -2.0; it must be 0 (none) or more"),
        ("ignore_above_label_mm: -5\n", "ignore_above_label_mm is -5.0; it must be 0 or more"),
        ("phantom_weight: 1.5\n", "phantom_weight is 1.5; it must be 0 to 1"),
        # a model without body trained, then crashed discquant segment ('body' is not in list)
        ("classes: [background, disc, sacrum]\n", "missing body"),
        ("classes: [backgound, body, disc]\n", "unknown backgound"),
        ("classes: [background, body, disc, disc]\n", "repeated disc"),
        # pydantic's lax mode trained these with seed 1 and lr 0.01 (an audit)
        ("seed: true\n", "seed: Input should be a valid integer"),
        ("lr: '0.01'\n", "lr: Input should be a valid number"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_file_and_field(
    labelled: Path, tmp_path: Path, change: str, expected: str
) -> None:
    text = TINY.format(root=labelled)
    if not change.startswith(" "):  # a top-level key replaces the file's own
        key = change.split(":")[0]
        text = "".join(ln for ln in text.splitlines(True) if not ln.startswith(f"{key}:"))
    config = tmp_path / "c.yaml"
    config.write_text(text + change)
    line = _cli_error(config, tmp_path / "run")
    assert line.startswith(f"discquant: error: {config}: "), line
    assert expected in line, line
    if "unknown config keys" in line:  # and which keys there are
        assert "(valid keys: root, labelled, whole_vertebrae" in line or "start, stop" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field", ["log_every", "batch_size", "threads"])
def test_a_configuration_built_in_code_is_checked_before_anything_is_written(
    labelled: Path, tmp_path: Path, field: str
) -> None:
    config = _tiny(labelled, **{field: 0})
    with pytest.raises(InvalidInputError, match=f"{field} is 0; it must be at least 1"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _tiny(labelled: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        channels=[4, 8, 16], patch=64, batch_size=2, steps=20, log_every=5, val_every=10,
        checkpoint_every=20, data_root=None, patient_groups=[],
        labelled_sets=[LabelledSet(root=str(labelled), labelled=["disc"])],
        val_subjects=["sub-01"],
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _killed_at(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Make the training loop stop (Ctrl-C, SIGKILL) at its ``call``-th loss."""
    import discquant.segment.train as train_mod

    real = train_mod.MarginalDiceCELoss
    calls = {"n": 0}

    class Killed(real):  # type: ignore[misc, valid-type]
        def __call__(self, *args: object, **kwargs: object) -> object:
            calls["n"] += 1
            if calls["n"] == call:
                raise KeyboardInterrupt
            return super().__call__(*args, **kwargs)

    monkeypatch.setattr(train_mod, "MarginalDiceCELoss", Killed)


def _log(out: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]


def _killed_before_its_first_checkpoint(
    labelled: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of :func:`_tiny` stopped at step 13: log lines of steps 5 and 10, the
    validation of step 10 and its best.pt, no last.pt (the checkpoint is at step 20)."""
    _killed_at(monkeypatch, 13)
    with pytest.raises(KeyboardInterrupt):
        train(_tiny(labelled), out)
    monkeypatch.undo()
    assert not (out / "last.pt").exists() and (out / "best.pt").is_file()
    assert [r["step"] for r in _log(out)] == [5, 10, 10]


def test_a_run_killed_before_its_first_checkpoint_starts_over(
    labelled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rerun appended to the old log: steps 5, 10 and the validation twice."""
    out = tmp_path / "run"
    _killed_before_its_first_checkpoint(labelled, out, monkeypatch)
    (out / "best.pt").write_bytes(b"stale")  # not this run's: it must not be left
    train(_tiny(labelled), out)
    assert [(r["step"], "loss" in r) for r in _log(out)] == [
        (5, True), (10, True), (10, False), (15, True), (20, True), (20, False),
    ]  # fmt: skip
    assert torch.load(out / "best.pt", weights_only=True)["meta"]["step"] in (10, 20)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"lr": 1e-7}, "with other settings (lr) and no checkpoint"),
        ({"steps": 40, "seed": 3}, "with other settings (seed, steps) and no checkpoint"),
    ],
)
def test_a_folder_with_an_earlier_run_of_other_settings_is_refused(
    labelled: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, object],
    expected: str,
) -> None:
    """Another configuration was accepted into the folder: two runs' lines in one log,
    and the old run's best.pt beside the new model."""
    out = tmp_path / "run"
    _killed_before_its_first_checkpoint(labelled, out, monkeypatch)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InvalidInputError, match=r"earlier run \(config.json, log.jsonl") as info:
        train(_tiny(labelled, **change), out)
    assert expected in str(info.value) and str(out / "config.json") in str(info.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    # through the command line: exit 2, one line
    config = tmp_path / "c.yaml"
    config.write_text(
        TINY.format(root=labelled) + "log_every: 5\nval_every: 10\ncheckpoint_every: 20\n"
        "val_subjects: [sub-01]\n" + "".join(f"{k}: {v}\n" for k, v in change.items())
    )
    config.write_text(config.read_text().replace("steps: 20\n", "", "steps" in change))
    line = _cli_error(config, out)
    assert expected in line and "use another --out folder" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # files of a run whose config.json is gone cannot be told apart: refused too
    (out / "config.json").unlink()
    with pytest.raises(InvalidInputError, match=r"without a readable config\.json"):
        train(_tiny(labelled), out)


def _data_root(labelled: Path, folder: Path, subjects: list[str]) -> Path:
    """A ``data_root`` whose lumbar-t2-discs set holds copies of phantom sub-00 as
    ``subjects`` (image and label map)."""
    discs = folder / "lumbar-t2-discs"
    discs.mkdir(parents=True)
    dseg = labelled / "derivatives" / "phantom" / "sub-00" / "anat" / "sub-00_dseg.nii.gz"
    for name in subjects:
        shutil.copy(
            labelled / "sub-00" / "anat" / "sub-00_T2w.nii.gz", discs / f"{name}_T2w.nii.gz"
        )
        shutil.copy(dseg, discs / f"{name}_dseg.nii.gz")
    return folder


def test_a_resume_on_other_subjects_is_refused(labelled: Path, tmp_path: Path) -> None:
    """data_root was left out of the resume check: a run resumed on other data trained
    its first steps on 3 subjects and the rest on 13, and config.json named only the new
    folder. The same subjects in a moved folder still resume."""
    first = _data_root(labelled, tmp_path / "a", ["sub-90"])
    out = tmp_path / "run"
    train(_tiny(labelled, data_root=str(first), max_steps_this_run=10), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    more = _data_root(labelled, tmp_path / "b", ["sub-90", "sub-91"])
    with pytest.raises(InvalidInputError) as info:
        train(_tiny(labelled, data_root=str(more)), out)
    message = str(info.value)
    assert message.startswith(f"{out / 'last.pt'}: this checkpoint was trained on other subjects")
    assert "train now also sub-91" in message and "\n" not in message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    moved = tmp_path / "moved"
    shutil.copytree(first, moved)
    train(_tiny(labelled, data_root=str(moved)), out)  # resumes: the same subjects
    assert (out / "model.pt").is_file()
    assert json.loads((out / "config.json").read_text())["data_root"] == str(moved)


def test_a_finished_run_without_its_checkpoint_is_not_started_over(
    labelled: Path, tmp_path: Path
) -> None:
    """A user who deleted the large last.pt after training and ran the command again lost
    model.pt, best.pt and the log without a word: the run "started over" (a review)."""
    out = tmp_path / "run"
    train(_tiny(labelled), out)
    (out / "last.pt").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(InvalidInputError, match=r"holds a finished run's model\.pt"):
        train(_tiny(labelled), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_nucleus_class_that_no_subject_labels_is_refused(labelled: Path, tmp_path: Path) -> None:
    """A user's label maps mark the whole disc: a model with a nucleus class and no
    phantoms to teach it called every disc voxel "nucleus", and `analyze` read the whole
    disc's ADC as the nucleus's, without a flag (an audit). Refused before anything is
    written; with phantoms, which label the nucleus, the same classes are accepted."""
    classes = ["background", "body", "disc", "sacrum", "nucleus", "canal"]
    sets = [LabelledSet(root=str(labelled), labelled=["disc", "body", "sacrum", "canal"])]
    config = _tiny(labelled, classes=classes, labelled_sets=sets)
    with pytest.raises(InvalidInputError, match=r"no training subject labels nucleus on its own"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    from discquant.segment.data import classes_taught_alone, load_labelled_set, phantom_subjects

    user = load_labelled_set(
        labelled, classes, labelled=["disc", "body", "sacrum", "canal"], spacing_mm=1.0,
        whole_vertebrae=True,
    )  # fmt: skip
    # a disc voxel is "disc or nucleus", a whole vertebra's "body or background": neither
    # disc, nucleus nor body is taught alone
    taught = {classes[i] for i in classes_taught_alone(user)}
    assert taught == {"background", "sacrum", "canal"}
    phantoms = phantom_subjects([0], classes, spacing_mm=1.0)
    # the phantom's vertebrae hold their posterior elements: "body or background" too
    assert {classes[i] for i in classes_taught_alone(phantoms)} == set(classes) - {"body"}


def test_a_declared_class_that_no_map_of_the_set_holds_is_refused(
    labelled: Path, tmp_path: Path
) -> None:
    """`labelled: [disc, sacrum]` on maps without a sacrum trained with exit 0, every
    sacrum taught "not a sacrum" (an audit): each map holds a disc, which was all the
    check per map asked."""
    import nibabel as nib
    import numpy as np

    copy = tmp_path / "nosacrum"
    shutil.copytree(labelled, copy)
    for dseg in copy.rglob("*_dseg.nii.gz"):
        img = nib.load(dseg)
        data = np.asarray(img.dataobj)
        assert (data == 26).any()  # the phantom's maps do hold a sacrum
        data = np.where(data == 26, 0, data).astype(data.dtype)
        nib.save(nib.Nifti1Image(data, img.affine, img.header), dseg)
    sets = [LabelledSet(root=str(copy), labelled=["disc", "sacrum"])]
    with pytest.raises(InvalidInputError, match=r"labelled declares sacrum, but no label map"):
        train(_tiny(copy, labelled_sets=sets), tmp_path / "run")
    assert not (tmp_path / "run").exists()
