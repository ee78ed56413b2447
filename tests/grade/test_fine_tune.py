"""``init_model``: training that starts from a trained grading model's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.grade.test_train import _patch_graded_discs, _synthetic_crops

from discquant.errors import InvalidInputError
from discquant.grade import load_pfirrmann_model
from discquant.grade.crops import DiscLocation
from discquant.grade.data import GradedDisc
from discquant.grade.ensemble import GradeEnsemble
from discquant.grade.pfirrmann import PfirrmannModel, build_network, save_pfirrmann_model
from discquant.grade.train import model_training_subjects, run_training, train_network
from discquant.grade.train_config import AugmentConfig, GradeTrainConfig, fold_config_sha256

ARCH = {"block_inplanes": [8, 8, 16, 16]}
CROP = {"slices": 3, "size_mm": (48.0, 64.0), "shape": (24, 32), "normalise": "image"}


def _cfg(**kw: object) -> GradeTrainConfig:
    """Two folds, two networks each, four held-out patients, no augmentation."""
    base: dict[str, object] = dict(
        holdout_patients=4, folds=2, seeds_per_fold=2, train_final=False, batch_size=8,
        arch=ARCH, tta_shifts=[(0, 0)], augment=AugmentConfig(prob=0.0),
        crop=CROP,
    )  # fmt: skip
    return GradeTrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def _trained_on_other_patients(path: Path, *, members: int = 1, seed: int = 0) -> None:
    """A model that grades the synthetic discs well, trained on patients the runs never use."""
    crops, grades = _synthetic_crops(64, seed=100)
    cfg = GradeTrainConfig(epochs=5, batch_size=16, lr=3e-3, arch=ARCH)
    nets = [train_network(crops, grades, cfg, seed=seed + j)[0] for j in range(members)]
    net = nets[0] if members == 1 else GradeEnsemble(nets)
    meta = {"arch": ARCH, "train_subjects": [f"other{i:02d}" for i in range(32)]}
    save_pfirrmann_model(PfirrmannModel(net, CROP, meta), path)


def test_fine_tuning_starts_from_the_model_and_keeps_what_it_learned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two optimiser steps from random weights grade at chance; the same two steps from a
    trained model grade as it does. Network j of each fold starts from member j."""
    _patch_graded_discs(monkeypatch, tmp_path, 80, seed=6)
    init = tmp_path / "init.pt"
    _trained_on_other_patients(init, members=2)
    short = _cfg(max_steps=2, lr=1e-3)
    scratch = run_training(short, tmp_path / "scratch")
    tuned = run_training(short.model_copy(update={"init_model": str(init)}), tmp_path / "tuned")
    assert scratch["cv"]["all"]["exact_accuracy"] <= 0.7, scratch["cv"]["all"]
    assert tuned["cv"]["all"]["exact_accuracy"] >= 0.95, tuned["cv"]["all"]

    # at a vanishing learning rate the convolution weights stay the init member's own
    still = _cfg(max_steps=2, lr=1e-12, init_model=str(init))
    run_training(still, tmp_path / "still")
    members = load_pfirrmann_model(init).network.members
    for k in (0, 1):
        fold = load_pfirrmann_model(tmp_path / "still" / "checkpoints" / f"fold{k}.pt")
        assert fold.metadata["init_model"]["source"] == "init.pt"
        assert (
            fold.metadata["init_model"]["weights_sha256"]
            == load_pfirrmann_model(init).weights_sha256
        )
        for j in (0, 1):
            got = fold.network.members[j].conv1.weight
            torch.testing.assert_close(got, members[j].conv1.weight, atol=1e-6, rtol=0)
        # member 0 did not start from member 1's weights: the mapping is by position
        gap = (fold.network.members[0].conv1.weight - members[1].conv1.weight).abs().max().detach()
        assert float(gap) > 1e-3


def test_a_single_network_seeds_every_member_and_the_final_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _patch_graded_discs(monkeypatch, tmp_path, 40, seed=2)
    init = tmp_path / "one.pt"
    _trained_on_other_patients(init, members=1)
    cfg = _cfg(max_steps=1, lr=1e-12, init_model=str(init), train_final=True)
    run_training(cfg, tmp_path / "run")
    start = load_pfirrmann_model(init).network.conv1.weight
    final = load_pfirrmann_model(tmp_path / "run" / "checkpoints" / "final.pt").network
    torch.testing.assert_close(final.conv1.weight, start, atol=1e-6, rtol=0)
    fold1 = load_pfirrmann_model(tmp_path / "run" / "checkpoints" / "fold1.pt").network
    torch.testing.assert_close(fold1.members[1].conv1.weight, start, atol=1e-6, rtol=0)


def test_a_model_trained_on_a_scored_patient_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _patch_graded_discs(monkeypatch, tmp_path, 40, seed=2)  # patients p00 ... p19
    leaky = tmp_path / "leaky.pt"
    meta = {"arch": ARCH, "train_subjects": ["p07"]}
    save_pfirrmann_model(PfirrmannModel(build_network(ARCH), CROP, meta), leaky)
    with pytest.raises(InvalidInputError, match="trained on 1 of the patients this run scores"):
        run_training(_cfg(init_model=str(leaky)), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # without cross-validation or held-out patients nothing is scored: fine-tuning on
    # the model's own patients is allowed (a final network only)
    own = _cfg(init_model=str(leaky), cross_validate=False, train_final=True,
               holdout_patients=0, max_steps=1)  # fmt: skip
    run_training(own, tmp_path / "own")
    assert (tmp_path / "own" / "checkpoints" / "final.pt").is_file()


@pytest.mark.parametrize(
    ("arch", "crop", "message"),
    [
        (ARCH, {**CROP, "normalise": "crop"}, "trained on crops"),
        ({"block_inplanes": [16, 32, 64, 128]}, CROP, "not the config's arch"),
    ],
)
def test_a_model_of_another_crop_or_network_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    arch: dict,
    crop: dict,
    message: str,  # type: ignore[type-arg]
) -> None:
    _patch_graded_discs(monkeypatch, tmp_path, 40, seed=2)
    other = tmp_path / "other.pt"
    save_pfirrmann_model(PfirrmannModel(build_network(arch), crop, {"arch": arch}), other)
    with pytest.raises(InvalidInputError, match=message) as err:
        run_training(_cfg(init_model=str(other)), tmp_path / "out")
    assert "other.pt" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_fold_hash_follows_the_init_weights_and_is_unchanged_without_them() -> None:
    cfg = GradeTrainConfig()
    tuned = cfg.model_copy(update={"init_model": "a/init.pt"})
    moved = cfg.model_copy(update={"init_model": "b/init.pt"})
    assert fold_config_sha256(tuned, None, "w1") == fold_config_sha256(moved, None, "w1")
    assert fold_config_sha256(tuned, None, "w1") != fold_config_sha256(tuned, None, "w2")
    assert fold_config_sha256(tuned, None, "w1") != fold_config_sha256(cfg)
    # the hash of a config without init_model is the one fold checkpoints already carry
    # (computed by the code before init_model existed, commit 5b6719f)
    old = "53b9b4aac05569105486ef5bb7951dfb80d27cf50b77c9ec65eb32b041c70c8a"
    assert fold_config_sha256(cfg) == old


def test_training_patients_are_matched_by_patient_not_session(tmp_path: Path) -> None:
    """A model trained on sub-01_ses-1 has seen sub-01_ses-2's spine."""
    loc = DiscLocation((0.0, 0.0, 0.0))
    discs = [GradedDisc(s, "L4-L5", 2, tmp_path, loc) for s in ("sub-01_ses-2", "sub-02")]
    seen = model_training_subjects({"train_subjects": ["sub-01_ses-1"]}, discs)
    assert seen == {"sub-01_ses-2"}
    assert model_training_subjects({"train_subjects": ["sub-03"]}, discs) == set()


def test_crops_of_the_synthetic_set_are_graded_by_the_trained_init(tmp_path: Path) -> None:
    """The init model of these tests does grade the synthetic discs (else the fine-tuning
    test above would prove nothing)."""
    from discquant.grade import grade_disc_crops

    init = tmp_path / "init.pt"
    _trained_on_other_patients(init)
    crops, grades = _synthetic_crops(40, seed=6)
    pred = np.array([g.grade for g in grade_disc_crops(crops, model=load_pfirrmann_model(init))])
    assert np.mean(pred == grades) >= 0.95
