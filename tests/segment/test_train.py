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
    final = train(_config(shared_data), out)
    steps_losses = _losses(out)
    assert [s for s, _ in steps_losses] == [10, 20, 30, 40]  # resumed at 15, not restarted
    # The same as a run never interrupted: data order, augmentation and weights.
    whole = train(_config(shared_data), tmp_path / "whole")
    assert dict(_losses(tmp_path / "whole"))[40] == dict(steps_losses)[40]
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
    from discquant.errors import ModelError

    out = tmp_path / "run"
    train(_config(shared_data, steps=20, max_steps_this_run=5), out)
    config_json = (out / "config.json").read_text()
    with pytest.raises(ModelError) as info:  # a wider network cannot take these weights
        train(_config(shared_data, steps=20, channels=[8, 16, 32]), out)
    message = str(info.value)
    assert "\n" not in message and str(out / "last.pt") in message
    assert "training checkpoint for this configuration" in message
    assert (out / "config.json").read_text() == config_json  # not overwritten by the refused one
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
