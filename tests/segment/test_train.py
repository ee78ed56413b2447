"""A tiny CPU training run: the loss goes down and the checkpoint resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from discquant.segment.infer import load_segmentation_model
from discquant.segment.train import TrainConfig, train

pytestmark = pytest.mark.shared


def _config(root: Path, **kw: object) -> TrainConfig:
    base = dict(
        seed=0,
        channels=[4, 8, 16],
        patch=64,
        batch_size=2,
        steps=40,
        lr=0.01,
        log_every=10,
        val_every=40,
        checkpoint_every=10,
        data_root=str(root),
        train_subjects=["sub-fcs11"],
        val_subjects=["sub-fcs20"],
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _losses(out: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def test_tiny_training_decreases_loss_and_resumes(shared_data: Path, tmp_path: Path) -> None:
    import torch

    out = tmp_path / "run"
    # Interrupted after 15 of 40 steps (between checkpoints): a resumable checkpoint at
    # step 15, no final model yet.
    train(_config(shared_data, max_steps_this_run=15), out)
    assert (out / "last.pt").is_file() and not (out / "model.pt").exists()
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 15
    assert [s for s, _ in _losses(out)] == [10]
    stopped_after_s = torch.load(out / "last.pt", weights_only=True)["elapsed_s"]
    final = train(_config(shared_data), out)
    steps_losses = _losses(out)
    # elapsed_s counts the whole run: it restarted from 0 after the resume (step 20 read
    # the time of 5 steps, less than step 10's)
    elapsed = [
        r["elapsed_s"]
        for r in map(json.loads, (out / "log.jsonl").read_text().split("\n")[:-1])
        if "loss" in r
    ]
    assert elapsed == sorted(elapsed) and elapsed[1] >= stopped_after_s >= elapsed[0]
    assert [s for s, _ in steps_losses] == [10, 20, 30, 40]  # resumed at 15, not restarted
    # The same as a run never interrupted: data order, augmentation and weights.
    whole = train(_config(shared_data), tmp_path / "whole")
    # every logged loss, also the first after the resume (it averaged steps 16-20 only)
    assert _losses(tmp_path / "whole") == steps_losses
    a = torch.load(final, weights_only=True)["state_dict"]
    b = torch.load(whole, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [v for _, v in steps_losses]
    assert np.mean(losses[2:]) < losses[0]
    model = load_segmentation_model(final)
    assert model.classes == ["background", "body", "disc", "sacrum"]
    vals = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("val_dice_mean" in v for v in vals)


def test_context_model_trains_and_segments_any_slice_count(
    shared_data: Path, tmp_path: Path
) -> None:
    from discquant.io.study import Volume
    from discquant.segment import segment_spine
    from discquant.segment.data import load_nifti_volume

    final = train(_config(shared_data, steps=20, val_every=20, context_mm=4.0), tmp_path / "r")
    model = load_segmentation_model(final)
    assert model.context_mm == 4.0
    first = next(p for p in model.net.parameters() if p.ndim == 4)
    assert first.shape[1] == 3  # the slice and its two neighbours
    vol = load_nifti_volume(shared_data / "lumbar-t2-discs" / "sub-fcs20_T2w.nii.gz")
    mid = vol.data.shape[2] // 2
    for data in (vol.data[:, :, mid - 8 : mid + 8], vol.data[:, :, mid : mid + 1]):
        seg = segment_spine(Volume(data=data, affine=vol.affine), model=model)
        assert seg.labels.data.shape == data.shape


def test_a_checkpoint_of_another_configuration_is_a_one_line_error(
    shared_data: Path, tmp_path: Path
) -> None:
    from discquant.errors import InvalidInputError, ModelError

    out = tmp_path / "run"
    train(_config(shared_data, steps=20, max_steps_this_run=5), out)
    config_json = (out / "config.json").read_text()
    # A wider network cannot take these weights; another step count would keep the old
    # one-cycle schedule and crash past its end (step 21 of 20) with a traceback.
    for changed, setting in ((dict(channels=[8, 16, 32]), "channels"), (dict(steps=40), "steps")):
        with pytest.raises(InvalidInputError) as info:
            train(_config(shared_data, **{"steps": 20, **changed}), out)
        message = str(info.value)
        assert "\n" not in message and str(out / "last.pt") in message
        assert f"other settings ({setting})" in message
        assert (out / "config.json").read_text() == config_json  # not overwritten
    # a checkpoint saved before the settings were stored: its schedule length is checked
    import torch

    ck = torch.load(out / "last.pt", weights_only=True)
    del ck["settings"]
    torch.save(ck, out / "last.pt")
    with pytest.raises(InvalidInputError, match=r"other settings \(steps\)"):
        train(_config(shared_data, steps=40), out)
    ck["model"] = {k: v[:1] for k, v in ck["model"].items()}  # weights that do not fit
    torch.save(ck, out / "last.pt")
    with pytest.raises(ModelError, match="training checkpoint for this configuration"):
        train(_config(shared_data, steps=20), out)
    (out / "last.pt").write_bytes(b"PK\x03\x04 truncated")  # a save cut short
    with pytest.raises(ModelError, match=r"last\.pt"):
        train(_config(shared_data, steps=20), out)


def test_too_few_steps_are_refused_before_anything_is_written(
    shared_data: Path, tmp_path: Path
) -> None:
    from discquant.errors import InvalidInputError

    # 10 steps crashed inside PyTorch's one-cycle schedule (ZeroDivisionError).
    with pytest.raises(InvalidInputError, match="at least 20"):
        train(_config(shared_data, steps=10), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_misnamed_subjects_and_a_missing_data_folder_are_refused(
    shared_data: Path, tmp_path: Path
) -> None:
    """A mistyped held-out subject was trained on ("validating on []"), and a data_root
    relative to another folder trained on phantoms alone; both ran to the end, rc 0."""
    from discquant.errors import InputNotFoundError, InvalidInputError

    with pytest.raises(InvalidInputError, match="no subject named sub-FCS20"):
        train(_config(shared_data, val_subjects=["sub-FCS20"]), tmp_path / "a")
    with pytest.raises(InputNotFoundError, match=r"not found .*data_root: null trains on"):
        train(_config(tmp_path / "nowhere"), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("problem", ["other grid", "no labels", "truncated"])
def test_a_bad_label_map_is_a_one_line_error_naming_it(
    shared_data: Path, tmp_path: Path, problem: str
) -> None:
    """A label map on another grid trained misaligned (rc 0); an empty one and a
    truncated file gave tracebacks."""
    import nibabel as nib

    from discquant.errors import InvalidInputError

    root = tmp_path / "data"
    (root / "lumbar-t2-discs").mkdir(parents=True)
    src = shared_data / "lumbar-t2-discs"
    (root / "lumbar-t2-discs" / "sub-fcs11_T2w.nii.gz").symlink_to(src / "sub-fcs11_T2w.nii.gz")
    label = root / "lumbar-t2-discs" / "sub-fcs11_dseg.nii.gz"
    img = nib.load(src / "sub-fcs11_dseg.nii.gz")
    data = np.asarray(img.dataobj)
    if problem == "other grid":
        nib.save(nib.Nifti1Image(data[:-8], img.affine), label)
    elif problem == "no labels":
        nib.save(nib.Nifti1Image(np.zeros_like(data), img.affine), label)
    else:
        label.write_bytes((src / "sub-fcs11_dseg.nii.gz").read_bytes()[:5000])
    with pytest.raises(InvalidInputError) as info:
        train(_config(root, train_subjects=["sub-fcs11"], val_subjects=[]), tmp_path / "run")
    assert str(label) in str(info.value) and "\n" not in str(info.value)


def test_a_run_killed_between_checkpoints_logs_each_step_once(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines logged after the last checkpoint were logged again by the resumed run."""
    import discquant.segment.train as train_mod

    calls = {"n": 0}
    real = train_mod.MarginalDiceCELoss

    class Killed(real):  # type: ignore[misc, valid-type]
        def __call__(self, *args: object, **kwargs: object) -> object:
            calls["n"] += 1
            if calls["n"] == 28:  # after the line of step 25, before the checkpoint at 30
                raise KeyboardInterrupt
            return super().__call__(*args, **kwargs)

    monkeypatch.setattr(train_mod, "MarginalDiceCELoss", Killed)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(_config(shared_data, log_every=5), out)
    monkeypatch.setattr(train_mod, "MarginalDiceCELoss", real)
    train(_config(shared_data, log_every=5), out)
    assert [s for s, _ in _losses(out)] == list(range(5, 45, 5))
