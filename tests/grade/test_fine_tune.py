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
from discquant.grade.lineage import model_training_subjects
from discquant.grade.pfirrmann import PfirrmannModel, build_network, save_pfirrmann_model
from discquant.grade.train import run_training, train_network
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
        assert fold.metadata["init_model"]["source"] == str(init)  # as configured
        assert fold.metadata["init_model"]["train_subjects"][0] == "other00"
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
    with pytest.raises(InvalidInputError, match="trained on 1 of the subjects this run scores"):
        run_training(_cfg(init_model=str(leaky)), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # without cross-validation or held-out patients nothing is scored: fine-tuning on
    # the model's own patients is allowed (a final network only)
    own = _cfg(init_model=str(leaky), cross_validate=False, train_final=True,
               holdout_patients=0, max_steps=1)  # fmt: skip
    run_training(own, tmp_path / "own")
    assert (tmp_path / "own" / "checkpoints" / "final.pt").is_file()


@pytest.mark.parametrize(
    ("meta", "crop", "message"),
    [
        ({"arch": ARCH}, {**CROP, "normalise": "crop"},
         "crop normalise 'crop' (config: 'image')"),
        ({"arch": {"block_inplanes": [16, 32, 64, 128]}}, CROP,
         "arch block_inplanes [16, 32, 64, 128] (config: [8, 8, 16, 16])"),
        ({"arch": ARCH, "target": "herniation"}, CROP,
         "target 'herniation' (config: 'pfirrmann')"),
        ({"arch": {"block_inplanes": [16, 32, 64, 128]}}, {**CROP, "shape": (60, 80)},
         "arch block_inplanes [16, 32, 64, 128] (config: [8, 8, 16, 16]), "
         "crop shape [60, 80] (config: [24, 32])"),
    ],
)  # fmt: skip
def test_a_model_of_other_settings_is_refused_before_the_data_is_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    meta: dict,
    crop: dict,
    message: str,  # type: ignore[type-arg]
) -> None:
    """Every differing setting is named, in one line."""
    import discquant.grade.train as train_mod

    def no_data(cfg: object, base: object) -> None:
        raise AssertionError("the data was read (minutes of segmentation) before the model")

    monkeypatch.setattr(train_mod, "collect_discs", no_data)
    other = tmp_path / "other.pt"
    n_out = 2 if meta.get("target") == "herniation" else 5
    net = build_network(meta["arch"], num_classes=n_out)
    save_pfirrmann_model(PfirrmannModel(net, crop, meta), other)
    with pytest.raises(InvalidInputError) as err:
        run_training(_cfg(init_model=str(other)), tmp_path / "out")
    assert (
        str(err.value)
        == f"init_model {other} was trained with other settings than the config: {message}"
    )
    assert not (tmp_path / "out").exists()


def test_a_model_older_than_a_crop_setting_reads_as_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models written before ``normalise`` existed crop as ``image`` does: not refused."""
    _patch_graded_discs(monkeypatch, tmp_path, 40, seed=2)
    old = tmp_path / "old.pt"
    crop = {k: v for k, v in CROP.items() if k != "normalise"}
    meta = {"arch": ARCH, "train_subjects": ["other00"]}
    save_pfirrmann_model(PfirrmannModel(build_network(ARCH), crop, meta), old)
    run_training(_cfg(init_model=str(old), max_steps=1), tmp_path / "out")
    assert (tmp_path / "out" / "cv_metrics.json").is_file()


def test_a_model_that_cannot_tell_its_patients_is_refused_when_anyone_is_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _patch_graded_discs(monkeypatch, tmp_path, 40, seed=2)
    silent = tmp_path / "silent.pt"
    save_pfirrmann_model(PfirrmannModel(build_network(ARCH), CROP, {"arch": ARCH}), silent)
    with pytest.raises(InvalidInputError, match="records neither train_subjects nor holdout"):
        run_training(_cfg(init_model=str(silent)), tmp_path / "cv")
    # held-out patients alone are scored too
    held_only = _cfg(init_model=str(silent), cross_validate=False, train_final=True)
    with pytest.raises(InvalidInputError, match="records neither train_subjects nor holdout"):
        run_training(held_only, tmp_path / "held")
    assert not (tmp_path / "cv").exists() and not (tmp_path / "held").exists()
    nobody = held_only.model_copy(update={"holdout_patients": 0, "max_steps": 1})
    run_training(nobody, tmp_path / "final")  # nothing scored: nothing to overstate
    assert (tmp_path / "final" / "checkpoints" / "final.pt").is_file()


def test_a_held_out_patient_the_model_trained_on_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import discquant.grade.train as train_mod

    _patch_graded_discs(monkeypatch, tmp_path, 40, seed=2)
    cfg = _cfg(cross_validate=False, train_final=True, max_steps=1)
    discs = train_mod.collect_discs(cfg, base=Path("."))
    held, *_ = train_mod.subject_splits(
        [d.subject for d in discs], seed=cfg.seed, holdout=cfg.holdout_patients, folds=cfg.folds
    )
    leaky = tmp_path / "leaky.pt"
    meta = {"arch": ARCH, "train_subjects": [held[0]]}
    save_pfirrmann_model(PfirrmannModel(build_network(ARCH), CROP, meta), leaky)
    with pytest.raises(InvalidInputError, match=f"trained on 1 of the subjects .*e.g. {held[0]}"):
        run_training(cfg.model_copy(update={"init_model": str(leaky)}), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_shipped_model_names_its_training_patients() -> None:
    """Its weights file names the 50 held-out patients only; the list beside it names the
    others, so that a copy of SPIDER in a folder of another name is still recognised."""
    shipped = load_pfirrmann_model()
    trained = set(shipped.metadata["train_subjects"])
    held = set(shipped.metadata["holdout_subjects"])
    assert len(held) == 50 and not trained & held
    loc = DiscLocation((0.0, 0.0, 0.0))
    names = ("sub-spider002", "sub-sud0001", sorted(held)[0], "sub-mine01")
    renamed = [GradedDisc(s, "L4-L5", 2, Path("."), loc, source="copy") for s in names]
    assert model_training_subjects(shipped.metadata, renamed) == {"sub-spider002", "sub-sud0001"}


@pytest.mark.shared
def test_the_shipped_models_patients_are_its_sets_but_the_held_out(shared_data: Path) -> None:
    import pandas as pd

    shipped = load_pfirrmann_model()
    every = set()
    for folder in ("sudirman-midsag-t2", "spider-midsag-t2"):
        every |= set(pd.read_csv(shared_data / folder / "gradings.tsv", sep="\t")["subject"])
    held = set(shipped.metadata["holdout_subjects"])
    assert set(shipped.metadata["train_subjects"]) == every - held
    assert len(every) == 605


def test_a_missing_model_is_named_as_the_init_model(tmp_path: Path) -> None:
    from discquant.errors import ModelError

    with pytest.raises(ModelError) as err:
        run_training(_cfg(init_model=str(tmp_path / "no.pt")), tmp_path / "out")
    assert str(err.value) == f"{tmp_path / 'no.pt'}: init_model: Pfirrmann model file not found"


def test_a_chain_of_fine_tunes_remembers_every_patient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trained on p00-p19; B fine-tuned from A on other patients. B may neither start a
    cross-validation of p00-p19 nor be tested on them: its weights came from A."""
    _patch_graded_discs(monkeypatch, tmp_path, 40, seed=2)  # patients p00 ... p19
    final_only = dict(cross_validate=False, train_final=True, holdout_patients=0, max_steps=1)
    run_training(_cfg(**final_only), tmp_path / "A")
    a = tmp_path / "A" / "checkpoints" / "final.pt"
    b = tmp_path / "B.pt"  # B: trained elsewhere, on q00..., starting from A
    model_a = load_pfirrmann_model(a)
    meta = {"arch": ARCH, "train_subjects": ["q00"], "init_model": {"source": str(a), **{
        k: model_a.metadata[k] for k in ("train_subjects", "trained_on")}}}  # fmt: skip
    save_pfirrmann_model(PfirrmannModel(build_network(ARCH), CROP, meta), b)
    with pytest.raises(InvalidInputError, match="trained on 20 of the subjects this run scores"):
        run_training(_cfg(init_model=str(b)), tmp_path / "cv")  # 4 held out + 16 in folds
    assert not (tmp_path / "cv").exists()
    # as a test model: every patient was A's, so nothing is left to test it on
    test_b = _cfg(cross_validate=False, holdout_patients=0, test_model=str(b))
    with pytest.raises(InvalidInputError, match=r"trained on every patient .*\(20 patients\)"):
        run_training(test_b, tmp_path / "test")
    # and a real fine-tune writes that chain itself
    run_training(_cfg(**final_only, init_model=str(b)), tmp_path / "C")
    c = load_pfirrmann_model(tmp_path / "C" / "checkpoints" / "final.pt").metadata
    assert c["init_model"]["source"] == str(b)
    assert c["init_model"]["init_model"]["source"] == str(a)
    assert c["init_model"]["init_model"]["train_subjects"] == [f"p{i:02d}" for i in range(20)]


def test_a_model_whose_start_cannot_tell_makes_its_patients_unknown(tmp_path: Path) -> None:
    loc = DiscLocation((0.0, 0.0, 0.0))
    discs = [GradedDisc("sub-02", "L4-L5", 2, tmp_path, loc)]
    meta = {"train_subjects": ["sub-01"], "init_model": {"source": "x.pt"}}
    assert model_training_subjects(meta, discs) is None


def test_fine_tuning_into_a_folder_of_other_networks_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without cross-validation the old fold networks and cv_* results stayed beside the
    new model, one folder describing two trainings."""
    _patch_graded_discs(monkeypatch, tmp_path, 40, seed=2)
    init = tmp_path / "init.pt"
    _trained_on_other_patients(init)
    out = tmp_path / "run"
    run_training(_cfg(max_steps=1), out)
    before = (out / "config.json").read_text()
    tuned = _cfg(max_steps=1, init_model=str(init), cross_validate=False, train_final=True)
    with pytest.raises(InvalidInputError, match="holds cross-validation networks trained with"):
        run_training(tuned, out)
    assert (out / "config.json").read_text() == before
    assert not (out / "checkpoints" / "final.pt").exists()
    # the same settings without cross-validation (a final network beside its folds): fine
    run_training(_cfg(max_steps=1, cross_validate=False, train_final=True), out)
    assert (out / "checkpoints" / "final.pt").is_file()


def test_init_model_with_nothing_to_train_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="init_model is set but nothing trains"):
        _cfg(init_model="x.pt", cross_validate=False, train_final=False, test_model="y.pt")


@pytest.mark.parametrize("name", ["spider", "sudirman"])
def test_a_graded_set_named_like_a_project_set_is_refused(tmp_path: Path, name: str) -> None:
    """Models record their sets by name: a user's folder called spider counted as the
    shipped model's training patients."""
    from discquant.grade.train import collect_discs

    (tmp_path / name).mkdir()
    cfg = GradeTrainConfig(sudirman=None, graded_sets=[tmp_path / name])
    with pytest.raises(InvalidInputError, match=f"may not be named {name!r}"):
        collect_discs(cfg, base=tmp_path)


def test_fold_hash_follows_the_init_weights_and_is_unchanged_without_them() -> None:
    # sudirman: the default until configs without data paths stopped reaching for it
    cfg = GradeTrainConfig(sudirman=Path("../shared/data/sudirman-midsag-t2"))
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


def test_test_phantoms_the_init_model_trained_on_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its phantom accuracy would be measured on its own training studies."""
    _patch_graded_discs(monkeypatch, tmp_path, 40, seed=2)
    start = tmp_path / "start.pt"
    meta = {"arch": ARCH, "train_subjects": ["other00"], "phantom_train_seeds": [5000, 10]}
    save_pfirrmann_model(PfirrmannModel(build_network(ARCH), CROP, meta), start)
    child = tmp_path / "child.pt"  # fine-tuned from it elsewhere, without phantoms
    meta = {"arch": ARCH, "train_subjects": ["other01"], "init_model": meta}
    save_pfirrmann_model(PfirrmannModel(build_network(ARCH), CROP, meta), child)
    cfg = _cfg(init_model=str(child), phantoms_test=3, phantom_test_seed0=5008)
    with pytest.raises(
        InvalidInputError, match=r"2 of this run's unseen test phantom studies \(seeds 5008-5009\)"
    ):
        run_training(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert load_pfirrmann_model().metadata["phantom_train_seeds"] == [1000, 80]


def test_a_model_records_the_phantom_studies_it_trained_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import discquant.grade.train as train_mod

    crops = _patch_graded_discs(monkeypatch, tmp_path, 40, seed=2)
    asked: list[list[int]] = []

    def tiny_phantoms(path: Path, seeds: list[int], crop_kw: dict) -> tuple:  # type: ignore[type-arg]
        asked.append(seeds)  # stands in for rendering the studies
        return crops[:10], np.full(10, 3), []

    monkeypatch.setattr(train_mod, "_phantom_set", tiny_phantoms)
    cfg = _cfg(cross_validate=False, train_final=True, holdout_patients=0, max_steps=1,
               phantoms_train=2, phantom_train_seed0=1200)  # fmt: skip
    run_training(cfg, tmp_path / "run")
    assert asked == [[1200, 1201]]
    meta = load_pfirrmann_model(tmp_path / "run" / "checkpoints" / "final.pt").metadata
    assert meta["phantom_train_seeds"] == [1200, 2]
