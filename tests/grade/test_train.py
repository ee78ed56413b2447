"""Training pieces: splits, class weights, a tiny CPU run that learns, model round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from discquant.errors import InvalidInputError, ModelError
from discquant.grade import grade_disc_crops, load_pfirrmann_model
from discquant.grade.pfirrmann import PfirrmannModel, save_pfirrmann_model
from discquant.grade.train import (
    class_weights,
    patient_splits,
    run_training,
    train_network,
)
from discquant.grade.train_config import AugmentConfig, GradeTrainConfig, load_config

REPO = Path(__file__).resolve().parents[2]


def test_patient_splits_are_disjoint_and_balanced() -> None:
    subjects = [f"s{i:03d}" for i in range(103) for _ in range(3)]  # 3 discs each
    held, fold = patient_splits(subjects, seed=1, holdout=13, folds=5)
    assert len(held) == 13
    assert not set(held) & set(fold)
    assert set(held) | set(fold) == set(subjects)
    sizes = np.bincount(list(fold.values()))
    assert sizes.tolist() == [18, 18, 18, 18, 18]
    assert patient_splits(subjects, seed=1, holdout=13, folds=5) == (held, fold)


def test_class_weights_by_hand() -> None:
    grades = np.array([2, 2, 2, 2, 3])
    # counts 4 and 1; power 1: raw 1/4, 1 -> mean over samples (4*0.25 + 1)/5 = 0.4
    w = class_weights(grades, 1.0)
    assert w[1] == pytest.approx(0.25 / 0.4)
    assert w[2] == pytest.approx(1.0 / 0.4)
    assert w[0] == 0.0 and w[3] == 0.0 and w[4] == 0.0


def _synthetic_crops(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bright-nucleus discs graded 2, dark thin discs graded 4."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:24, 0:32]
    grades = np.where(np.arange(n) % 2 == 0, 2, 4)
    crops = np.empty((n, 3, 24, 32), np.float32)
    for i, g in enumerate(grades):
        half_h = 4.0 if g == 2 else 2.0
        level = 1.0 if g == 2 else 0.3
        ell = ((cols - 16) / 11.0) ** 2 + ((rows - 12) / half_h) ** 2 <= 1
        img = 0.3 + (level - 0.3) * ell + rng.normal(0, 0.05, ell.shape)
        crops[i] = img[None].astype(np.float32)
    return crops, grades


def test_tiny_training_reduces_loss_and_learns() -> None:
    crops, grades = _synthetic_crops(64, seed=0)
    cfg = GradeTrainConfig(
        epochs=5, batch_size=16, lr=3e-3, arch={"block_inplanes": [8, 8, 16, 16]}
    )
    net, losses = train_network(crops, grades, cfg, seed=0)
    assert len(losses) == 5
    assert losses[-1] < 0.6 * losses[0]
    model = PfirrmannModel(net, {"slices": 3, "shape": (24, 32)}, {"arch": cfg.arch})
    test_crops, test_grades = _synthetic_crops(20, seed=1)
    pred = np.array([g.grade for g in grade_disc_crops(test_crops, model=model)])
    assert np.mean(pred == test_grades) >= 0.9
    # deterministic for a seed
    short = cfg.model_copy(update={"max_steps": 6})
    _, first = train_network(crops, grades, short, seed=3)
    _, again = train_network(crops, grades, short, seed=3)
    assert len(first) == 2
    np.testing.assert_allclose(again, first, rtol=1e-6)


def test_model_round_trip_and_outputs(tmp_path: Path) -> None:
    import torch

    from discquant.grade.pfirrmann import build_network

    torch.manual_seed(0)
    arch = {"block_inplanes": [8, 8, 16, 16]}
    model = PfirrmannModel(build_network(arch), {"slices": 3, "shape": (24, 32)}, {"arch": arch})
    path = tmp_path / "m.pt"
    save_pfirrmann_model(model, path)
    loaded = load_pfirrmann_model(path)
    assert loaded.source == "m.pt"  # recorded in each study's provenance
    assert load_pfirrmann_model().source == "shipped"
    crops, _ = _synthetic_crops(4, seed=2)
    a = grade_disc_crops(crops, model=model)
    b = grade_disc_crops(crops, model=loaded)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.probabilities, y.probabilities, atol=1e-6)
        assert x.probabilities.shape == (5,)
        assert x.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert x.expected_grade == pytest.approx(float(x.probabilities @ np.arange(1, 6)))
        assert x.grade == int(np.argmax(x.probabilities)) + 1
    with pytest.raises(InvalidInputError, match="expects"):
        grade_disc_crops(np.zeros((2, 3, 10, 10), np.float32), model=model)
    with pytest.raises(ModelError, match="not found"):
        load_pfirrmann_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"junk\.pt"):
        load_pfirrmann_model(tmp_path / "junk.pt")


def test_repository_config_is_valid() -> None:
    cfg = load_config(REPO / "configs" / "grade.yaml")
    assert cfg.crop.shape == (60, 80)
    assert cfg.holdout_patients == 50
    spider = load_config(REPO / "configs" / "grade-spider.yaml")
    hern = load_config(REPO / "configs" / "grade-herniation.yaml")
    assert spider.sudirman is None and spider.spider is not None
    assert hern.target == "herniation" and not hern.train_final
    for c in (spider, hern):  # the same network, loss and crop as the shipped model
        same = ("crop", "augment", "arch", "epochs", "lr", "ordinal_weight", "tta_shifts")
        assert c.model_dump(include=set(same)) == cfg.model_dump(include=set(same))


def test_herniation_cv_and_external_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Yes/no target: patient-level CV on two outputs, binary metrics, then a test model."""
    import discquant.grade.train as train_mod
    from discquant.grade.crops import DiscLocation
    from discquant.grade.data import GradedDisc

    crops, grades = _synthetic_crops(80, seed=5)  # grade 4 discs stand in for herniations
    loc = DiscLocation((0.0, 0.0, 0.0))
    discs = [
        GradedDisc(f"p{i // 2:02d}", ("L4-L5", "L5-S1")[i % 2], 3, tmp_path, loc, int(g == 4))
        for i, g in enumerate(grades)
    ]
    discs.append(GradedDisc("p99", "L4-L5", 3, tmp_path, loc, None))  # not graded: left out
    monkeypatch.setattr(train_mod, "collect_discs", lambda cfg, base: discs)
    _patch_crops(monkeypatch, discs, np.concatenate([crops, crops[:1]]))
    arch = {"block_inplanes": [8, 8, 16, 16]}
    cfg = GradeTrainConfig(
        target="herniation", holdout_patients=0, folds=2, train_final=False, epochs=12,
        batch_size=8, lr=3e-3, arch=arch, tta_shifts=[(0, 0)], augment=AugmentConfig(prob=0.0),
    )  # fmt: skip
    summary = run_training(cfg, tmp_path / "cv")
    cv = summary["cv"]["all"]
    assert cv["n"] == 80 and cv["prevalence"] == pytest.approx(0.5)
    assert cv["balanced_accuracy"] >= 0.9, cv
    header = (tmp_path / "cv" / "cv_predictions.tsv").read_text().splitlines()[0]
    assert header.split("\t") == ["subject", "level", "herniation", "predicted", "p_herniation"]
    model_path = tmp_path / "cv" / "checkpoints" / "fold0.pt"
    test = cfg.model_copy(update={"cross_validate": False, "test_model": str(model_path)})
    summary = run_training(test, tmp_path / "test")
    # fold 0's network trained on fold 1's patients: only fold 0's are a test
    splits = json.loads((tmp_path / "cv" / "splits.json").read_text())
    fold0 = {s for s, k in splits["folds"].items() if k == 0}
    assert summary["test"]["all"]["n"] == 2 * len(fold0) == 40
    assert summary["test"]["training_overlap"] == {
        "known": True, "left_out_patients": 20, "left_out_discs": 40,
    }  # fmt: skip
    tested = pd.read_csv(tmp_path / "test" / "test_predictions.tsv", sep="\t")
    assert set(tested["subject"]) == fold0
    metrics = json.loads((tmp_path / "test" / "test_metrics.json").read_text())
    assert metrics["training_overlap"]["left_out_patients"] == 20
    wrong = test.model_copy(update={"target": "pfirrmann"})
    with pytest.raises(InvalidInputError, match="outputs"):
        run_training(wrong, tmp_path / "wrong")


def _down_one_row(crops: np.ndarray) -> np.ndarray:
    """Crops (N, C, H, W) moved one row down, the top row repeated."""
    return np.concatenate([crops[:, :, :1], crops[:, :, :-1]], axis=2)


@pytest.mark.parametrize("rows, cols", [(1, 0), (-1, 0), (0, 2), (0, -2), (2, -3)])
def test_test_time_shifts_repeat_the_border_instead_of_wrapping(rows: int, cols: int) -> None:
    """Training fills uncovered edges with the border (RandAffine ``padding_mode="border"``);
    the test-time shifts used ``torch.roll``, which put the far edge there instead."""
    import torch

    from discquant.grade.ensemble import shift_crops

    x = np.random.default_rng(0).normal(size=(2, 3, 6, 7)).astype(np.float32)
    h, w = x.shape[-2:]
    padded = np.pad(
        x, ((0, 0), (0, 0), (max(rows, 0), max(-rows, 0)), (max(cols, 0), max(-cols, 0))),
        mode="edge",
    )  # fmt: skip
    expected = padded[..., max(-rows, 0) : max(-rows, 0) + h, max(-cols, 0) : max(-cols, 0) + w]
    got = shift_crops(torch.from_numpy(x), rows, cols).numpy()
    np.testing.assert_array_equal(got, expected)
    # the content moved the right way: pixel (r, c) lands at (r + rows, c + cols)
    assert got[0, 0, 3 + rows, 3 + cols] == x[0, 0, 3, 3]
    with pytest.raises(ValueError, match="leaves nothing"):
        shift_crops(torch.from_numpy(x), 6, 0)


def test_ensemble_averages_members_and_survives_half_storage(tmp_path: Path) -> None:
    import torch

    from discquant.grade.ensemble import GradeEnsemble
    from discquant.grade.pfirrmann import build_network, predict_probabilities

    torch.manual_seed(0)
    arch = {"block_inplanes": [8, 8, 16, 16]}
    nets = [build_network(arch).eval() for _ in range(2)]
    ens = GradeEnsemble(nets, [(0, 0), (1, 0)])
    crops, _ = _synthetic_crops(3, seed=4)
    p = predict_probabilities(ens, crops)
    shifted = _down_one_row(crops)
    by_hand = np.mean([predict_probabilities(n, c) for n in nets for c in (crops, shifted)], axis=0)
    np.testing.assert_allclose(p, by_hand, atol=1e-5)
    path = tmp_path / "ens.pt"
    save_pfirrmann_model(
        PfirrmannModel(ens, {"slices": 3, "shape": (24, 32)}, {"arch": arch}), path, half=True
    )
    loaded = load_pfirrmann_model(path)
    assert loaded.metadata["members"] == 2
    np.testing.assert_allclose(predict_probabilities(loaded.network, crops), p, atol=2e-3)


def _small_cv(**kw: object) -> GradeTrainConfig:
    """Two folds and four held-out patients of a small network, no augmentation."""
    base: dict[str, object] = dict(
        holdout_patients=4, folds=2, batch_size=8, arch={"block_inplanes": [8, 8, 16, 16]},
        tta_shifts=[(0, 0)], augment=AugmentConfig(prob=0.0),
    )  # fmt: skip
    return GradeTrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def _patch_graded_discs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, n: int, *, seed: int
) -> np.ndarray:
    """Make run_training read ``n`` synthetic graded discs (2 per patient); their crops."""
    import discquant.grade.train as train_mod
    from discquant.grade.crops import DiscLocation
    from discquant.grade.data import GradedDisc

    crops, grades = _synthetic_crops(n, seed=seed)
    loc = DiscLocation((0.0, 0.0, 0.0))
    discs = [
        GradedDisc(f"p{i // 2:02d}", ("L4-L5", "L5-S1")[i % 2], int(g), tmp_path, loc)
        for i, g in enumerate(grades)
    ]
    monkeypatch.setattr(train_mod, "collect_discs", lambda cfg, base: discs)
    _patch_crops(monkeypatch, discs, crops)
    return crops


def _patch_crops(monkeypatch: pytest.MonkeyPatch, discs: list, crops: np.ndarray) -> None:  # type: ignore[type-arg]
    """``build_crops`` returns each disc's own synthetic crop (also for a subset of discs)."""
    import discquant.grade.data as data_mod

    index = {(d.subject, d.level): i for i, d in enumerate(discs)}
    monkeypatch.setattr(
        data_mod, "build_crops", lambda d, **kw: crops[[index[x.subject, x.level] for x in d]]
    )


def test_ship_folds_is_the_mean_of_the_fold_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ship: folds``: pfirrmann.pt averages the fold checkpoints and is scored on held-out."""
    from discquant.grade.pfirrmann import predict_probabilities

    crops = _patch_graded_discs(monkeypatch, tmp_path, 120, seed=6)
    cfg = GradeTrainConfig(
        holdout_patients=6, folds=2, train_final=False, ship="folds", epochs=10, batch_size=8,
        lr=3e-3, arch={"block_inplanes": [8, 8, 16, 16]}, tta_shifts=[(0, 0), (1, 0)],
        augment=AugmentConfig(prob=0.0),
    )  # fmt: skip
    summary = run_training(cfg, tmp_path / "run")
    shipped = load_pfirrmann_model(tmp_path / "run" / "pfirrmann.pt")
    assert shipped.metadata["members"] == 2
    assert "mean of 2 folds" in shipped.metadata["trained_on"]
    held = summary["holdout"]["all"]
    assert held["n"] == 12  # 6 patients x 2 discs, never in a fold
    assert held["exact_accuracy"] >= 0.9, held
    # the shipped probabilities are the mean over fold networks and shifts, by hand
    folds = [load_pfirrmann_model(tmp_path / "run" / "checkpoints" / f"fold{k}.pt") for k in (0, 1)]
    x = crops[:4]
    by_hand = np.mean(
        [predict_probabilities(f.network, c) for f in folds for c in (x, _down_one_row(x))],
        axis=0,
    )
    np.testing.assert_allclose(predict_probabilities(shipped.network, x), by_hand, atol=1e-5)
    assert [f.metadata["seed"] for f in folds] == [1, 2]
    with pytest.raises(InvalidInputError, match="every fold"):
        run_training(cfg.model_copy(update={"cv_folds": [0]}), tmp_path / "part")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("seed: true", "seed"),
        ("cross_validate: 'yes'", "cross_validate"),
        ("epochs: '3'", "epochs"),
    ],
)
def test_config_values_of_another_type_are_refused(tmp_path, line: str, problem: str) -> None:
    """pydantic's lax mode took seed: true as 1 and "yes" as True (an audit)."""
    from discquant.grade.train_config import load_config

    path = tmp_path / "g.yaml"
    path.write_text(line + "\n")
    with pytest.raises(InvalidInputError, match=f"invalid grade config: .*{problem}"):
        load_config(path)
    path.write_text(  # YAML 1.2's float (text to PyYAML), lists for tuples, text paths
        "lr: 1e-3\nseed: 3\nweight_decay: 1\ncrop: {size_mm: [48, 64]}\n"
        "tta_shifts: [[0, 0], [1, 0]]\nsudirman: data/sud\nspider: null\n"
    )
    read = load_config(path)
    assert (read.lr, read.weight_decay, read.crop.size_mm) == (0.001, 1.0, (48.0, 64.0))
    assert read.tta_shifts == [(0, 0), (1, 0)] and read.spider is None
    assert read.sudirman == Path("data/sud")
    from discquant.grade.train_config import validated_update

    model = tmp_path / "m.pt"  # the command line's Path, for a field of text
    assert validated_update(read, {"test_model": model}, path).test_model == str(model)


def test_config_refuses_what_cannot_run() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="every fold"):
        GradeTrainConfig(ship="folds", cross_validate=False)
    with pytest.raises(ValidationError, match="Pfirrmann grades only"):
        GradeTrainConfig(target="herniation", phantoms_train=10)
    with pytest.raises(ValidationError, match="nothing would run"):  # --no-cv --no-final
        GradeTrainConfig(cross_validate=False, train_final=False)
    assert GradeTrainConfig(ship="folds", folds=3, cv_folds=[2, 0, 1]).ship == "folds"


def test_soft_ordinal_targets_by_hand() -> None:
    from discquant.grade.train import soft_ordinal_targets

    t = soft_ordinal_targets(5, 2.0)
    z = 1 + 2 * np.exp(-2.0) + 2 * np.exp(-8.0)  # grade 3: distances 0, ±1, ±2
    np.testing.assert_allclose(t[2], [np.exp(-8) / z, np.exp(-2) / z, 1 / z, np.exp(-2) / z,
                                      np.exp(-8) / z], rtol=1e-6)  # fmt: skip
    z1 = 1 + np.exp(-2.0) + np.exp(-8.0) + np.exp(-18.0) + np.exp(-32.0)  # grade 1
    assert t[0, 0] == pytest.approx(1 / z1) and t[0, 1] == pytest.approx(np.exp(-2) / z1)
    np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(soft_ordinal_targets(5, 50.0), np.eye(5), atol=1e-12)


def test_soft_label_training_learns() -> None:
    crops, grades = _synthetic_crops(64, seed=0)
    cfg = GradeTrainConfig(
        epochs=5, batch_size=16, lr=3e-3, arch={"block_inplanes": [8, 8, 16, 16]},
        soft_labels_phi=2.0,
    )  # fmt: skip
    net, losses = train_network(crops, grades, cfg, seed=0)
    assert losses[-1] < 0.7 * losses[0]
    model = PfirrmannModel(net, {"slices": 3, "shape": (24, 32)}, {"arch": cfg.arch})
    test_crops, test_grades = _synthetic_crops(20, seed=1)
    pred = np.array([g.grade for g in grade_disc_crops(test_crops, model=model)])
    assert np.mean(pred == test_grades) >= 0.9


def test_seeds_per_fold_averages_each_folds_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two networks per fold: CV predictions are their mean; member 0 is the 1-seed network."""
    import pandas as pd

    from discquant.grade.pfirrmann import predict_probabilities

    crops = _patch_graded_discs(monkeypatch, tmp_path, 48, seed=7)
    one = _small_cv(train_final=False, ship="folds", max_steps=4)
    two = one.model_copy(update={"seeds_per_fold": 2})
    run_training(one, tmp_path / "one")
    run_training(two, tmp_path / "two")
    shipped = load_pfirrmann_model(tmp_path / "two" / "pfirrmann.pt")
    assert shipped.metadata["members"] == 4
    fold0_one = load_pfirrmann_model(tmp_path / "one" / "checkpoints" / "fold0.pt").network
    fold0_two = load_pfirrmann_model(tmp_path / "two" / "checkpoints" / "fold0.pt").network
    from discquant.grade.ensemble import GradeEnsemble

    assert isinstance(fold0_two, GradeEnsemble)
    members = list(fold0_two.members)
    assert len(members) == 2
    x = crops[:6]
    p_first = predict_probabilities(members[0], x)
    np.testing.assert_allclose(p_first, predict_probabilities(fold0_one, x), atol=1e-6)
    p_second = predict_probabilities(members[1], x)
    assert np.abs(p_second - p_first).max() > 1e-4  # another seed, another network
    np.testing.assert_allclose(
        predict_probabilities(fold0_two, x), (p_first + p_second) / 2, atol=1e-5
    )
    cv = pd.read_csv(tmp_path / "two" / "cv_predictions.tsv", sep="\t")
    assert len(cv) == 48 - 8  # every disc outside the 4 held-out patients, once


def test_fold_checkpoints_are_reused_only_with_the_same_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folds run apart (cv_folds) gather into one ship: folds run without retraining."""
    import shutil

    import discquant.grade.train as train_mod

    _patch_graded_discs(monkeypatch, tmp_path, 48, seed=8)
    cfg = _small_cv(train_final=False, ship="folds", max_steps=4)
    whole = run_training(cfg, tmp_path / "whole")
    for k in (0, 1):  # each fold in its own run, as two processes would
        part = cfg.model_copy(update={"cv_folds": [k], "ship": "final"})
        run_training(part, tmp_path / f"part{k}")
    gathered = tmp_path / "gathered" / "checkpoints"
    gathered.mkdir(parents=True)
    for k in (0, 1):
        shutil.copy(tmp_path / f"part{k}" / "checkpoints" / f"fold{k}.pt", gathered)
    trained: list[str] = []
    real_train = train_mod.train_network
    monkeypatch.setattr(
        train_mod,
        "train_network",
        lambda *a, **kw: trained.append(kw["tag"]) or real_train(*a, **kw),
    )
    again = run_training(cfg, tmp_path / "gathered")
    assert trained == []  # both folds came from their checkpoints
    # one thread, same seeds: the gathered run scores exactly as the one-process run
    assert again["cv"]["all"] == whole["cv"]["all"]
    assert again["holdout"]["all"] == whole["holdout"]["all"]
    # another setting (epochs) refuses the old checkpoints instead of mixing networks
    with pytest.raises(InvalidInputError, match="other settings"):
        run_training(cfg.model_copy(update={"max_steps": 5}), tmp_path / "gathered")


def test_fold_checkpoints_of_another_patient_split_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings hash does not cover the patients: a changed subject list reshuffles the
    seeded split, and a reused fold network would score patients it trained on."""
    import shutil

    import discquant.grade.train as train_mod

    _patch_graded_discs(monkeypatch, tmp_path, 48, seed=8)
    cfg = _small_cv(train_final=False, max_steps=2)
    run_training(cfg, tmp_path / "run")
    shutil.copytree(tmp_path / "run", tmp_path / "again")

    # one patient fewer (say, a withdrawn consent): same settings, another split
    discs = train_mod.collect_discs(cfg, base=Path("."))
    monkeypatch.setattr(
        train_mod, "collect_discs", lambda c, base: [d for d in discs if d.subject != "p23"]
    )
    before = (tmp_path / "run" / "splits.json").read_text()
    with pytest.raises(InvalidInputError, match="another split of the patients"):
        run_training(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "splits.json").read_text() == before  # the run is left as it was

    fold0 = load_pfirrmann_model(tmp_path / "run" / "checkpoints" / "fold0.pt").metadata
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert fold0["validation_subjects"] == sorted(s for s, k in splits["folds"].items() if k == 0)
    assert fold0["train_subjects"] == sorted(s for s, k in splits["folds"].items() if k == 1)
    assert fold0["holdout_subjects"] == splits["holdout"]
    monkeypatch.setattr(train_mod, "collect_discs", lambda c, base: discs)
    run_training(cfg, tmp_path / "again")  # the same patients: reused, no complaint

    # a checkpoint that does not say which patients it saw is not reused either
    old = load_pfirrmann_model(tmp_path / "again" / "checkpoints" / "fold1.pt")
    meta = {k: v for k, v in old.metadata.items() if k not in train_mod.SPLIT_KEYS}
    save_pfirrmann_model(
        PfirrmannModel(old.network, old.crop, meta), tmp_path / "again" / "checkpoints" / "fold1.pt"
    )
    monkeypatch.setattr(train_mod, "collect_discs", lambda c, base: discs)
    with pytest.raises(InvalidInputError, match="does not record which patients"):
        run_training(cfg, tmp_path / "again")


def test_test_model_skips_the_patients_it_was_trained_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A model that only names its held-out patients (as the shipped one does) is tested on
    those alone when the data is its training set; one that says nothing is tested on all,
    with a warning in the log and in test_metrics.json."""
    import logging

    import torch

    import discquant.grade.train as train_mod
    from discquant.grade.crops import DiscLocation
    from discquant.grade.data import GradedDisc
    from discquant.grade.pfirrmann import build_network

    crops, grades = _synthetic_crops(40, seed=9)
    loc = DiscLocation((0.0, 0.0, 0.0))
    discs = [  # of unknown data set: counted as the model's own
        GradedDisc(f"p{i // 2:02d}", ("L4-L5", "L5-S1")[i % 2], int(g), tmp_path, loc)
        for i, g in enumerate(grades)
    ]
    monkeypatch.setattr(train_mod, "collect_discs", lambda cfg, base: discs)
    _patch_crops(monkeypatch, discs, crops)
    torch.manual_seed(0)
    arch = {"block_inplanes": [8, 8, 16, 16]}
    crop = {"slices": 3, "shape": (24, 32)}
    held = ["p03", "p11", "p17"]
    shipped_like = tmp_path / "shipped-like.pt"
    meta = {"arch": arch, "trained_on": "sudirman + spider", "holdout_subjects": held}
    save_pfirrmann_model(PfirrmannModel(build_network(arch), crop, meta), shipped_like)
    cfg = GradeTrainConfig(
        cross_validate=False, train_final=False, test_model=str(shipped_like), arch=arch
    )
    with caplog.at_level(logging.WARNING, logger="discquant.grade.train"):
        summary = run_training(cfg, tmp_path / "test")
    assert summary["test"]["all"]["n"] == 6  # the 3 held-out patients' discs
    assert summary["test"]["training_overlap"] == {
        "known": True, "left_out_patients": 17, "left_out_discs": 34,
    }  # fmt: skip
    tested = pd.read_csv(tmp_path / "test" / "test_predictions.tsv", sep="\t")
    assert sorted(set(tested["subject"])) == held
    assert "trained on 17 of the 20 test patients" in caplog.text
    written = json.loads((tmp_path / "test" / "test_metrics.json").read_text())
    assert written["training_overlap"]["left_out_discs"] == 34

    # another data set (its patients are not the model's): every disc is a test
    other = [GradedDisc(d.subject, d.level, d.grade, d.image_path, d.location,
                        source="other") for d in discs]  # fmt: skip
    monkeypatch.setattr(train_mod, "collect_discs", lambda cfg, base: other)
    _patch_crops(monkeypatch, other, crops)
    summary = run_training(cfg, tmp_path / "other")
    assert summary["test"]["all"]["n"] == 40
    assert summary["test"]["training_overlap"]["left_out_patients"] == 0

    # no record of its training patients: all scored, the doubt said
    silent = tmp_path / "silent.pt"
    save_pfirrmann_model(PfirrmannModel(build_network(arch), crop, {"arch": arch}), silent)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="discquant.grade.train"):
        summary = run_training(
            cfg.model_copy(update={"test_model": str(silent)}), tmp_path / "silent"
        )
    assert summary["test"]["all"]["n"] == 40
    assert summary["test"]["training_overlap"]["known"] is False
    assert "cannot tell whether it was trained on the test patients" in caplog.text

    # trained on every test patient: nothing to test, nothing written
    every = tmp_path / "every.pt"
    meta = {"arch": arch, "train_subjects": sorted({d.subject for d in discs})}
    save_pfirrmann_model(PfirrmannModel(build_network(arch), crop, meta), every)
    monkeypatch.setattr(train_mod, "collect_discs", lambda cfg, base: discs)
    with pytest.raises(InvalidInputError, match="trained on every patient"):
        run_training(cfg.model_copy(update={"test_model": str(every)}), tmp_path / "every")
    assert not (tmp_path / "every").exists()


def _sudirman_like(root: Path, grades: list[str]) -> Path:
    """A Sudirman-shaped folder: gradings.tsv with these grades (no images needed to fail)."""
    root.mkdir(parents=True)
    lines = ["subject\tlevel\tpfirrmann_grade"]
    lines += [f"sub-sud{i // 3:04d}\t{('L3-L4', 'L4-L5', 'L5-S1')[i % 3]}\t{g}"
              for i, g in enumerate(grades)]  # fmt: skip
    (root / "gradings.tsv").write_text("\n".join(lines) + "\n")
    (root / "boxes.tsv").write_text("subject\tclass\tx_center\ty_center\twidth\theight\n")
    return root


@pytest.mark.parametrize("bad", ["6", "0", "n/a", "", "2.5"])
def test_train_grade_refuses_bad_grades_before_writing(tmp_path: Path, bad: str) -> None:
    from typer.testing import CliRunner

    from discquant.cli import app

    data = _sudirman_like(tmp_path / "sud", ["2", "3", "4", bad, "5"])
    config = tmp_path / "grade.yaml"
    config.write_text(f"sudirman: {data}\nspider: null\nholdout_patients: 0\nfolds: 2\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "grade", "--config", str(config), "-o", str(out)])
    assert result.exit_code == 2, result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("discquant: error")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert f"{data / 'gradings.tsv'}: line 5 (sub-sud0001)" in errors[0]
    assert f"grade {bad!r}" in errors[0] and "not one of 1-5" in errors[0]
    assert not out.exists()


def test_train_grade_with_a_missing_data_folder_writes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from discquant.cli import app

    config = tmp_path / "grade.yaml"
    config.write_text(f"sudirman: {tmp_path / 'nowhere'}\nspider: null\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "grade", "--config", str(config), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'nowhere'}: Sudirman data folder not found" in result.stderr
    assert "the training configuration's sudirman names it" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("option", ["--test-model", "--init-model"])
def test_a_model_file_that_does_not_exist_is_found_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    from typer.testing import CliRunner

    from discquant.cli import app

    _patch_graded_discs(monkeypatch, tmp_path, 20, seed=3)  # the data reads fine
    config = tmp_path / "grade.yaml"
    config.write_text("spider: null\nholdout_patients: 2\nfolds: 2\n")
    out = tmp_path / "run"
    missing = tmp_path / "no.pt"
    result = CliRunner().invoke(
        app, ["train", "grade", "--config", str(config), "-o", str(out), option, str(missing)]
    )
    assert result.exit_code == 2, result.output
    key = option.removeprefix("--").replace("-", "_")
    assert f"{missing}: {key}: Pfirrmann model file not found" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "bad",
    [
        {"folds": 1}, {"folds": 0}, {"epochs": 0}, {"batch_size": 0}, {"seeds_per_fold": 0},
        {"seed": -1}, {"holdout_patients": -5}, {"cv_folds": [7]}, {"cv_folds": []},
        {"cv_folds": [0, 0]},  # trained fold 0 twice, the second over the first's log
        {"phantoms_train": 80, "phantoms_test": 50, "phantom_test_seed0": 1000},
        {"tta_shifts": [(0, 0), (60, 0)]},
    ],
)  # fmt: skip
def test_settings_that_cannot_train_are_refused_on_load(bad: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """These trained on nothing and reported metrics, shipped an untrained network, tested
    on training phantoms, or crashed with a traceback (some after a whole fold)."""
    import yaml

    from discquant.grade.train_config import load_config

    path = tmp_path / "grade.yaml"
    path.write_text(yaml.safe_dump({k: [list(v) for v in val] if k == "tta_shifts" else val
                                    for k, val in bad.items()}))  # fmt: skip
    with pytest.raises(InvalidInputError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_command_line_overrides_are_checked_like_the_file(tmp_path: Path) -> None:
    from discquant.grade.train_config import load_config, validated_update

    path = tmp_path / "grade.yaml"
    path.write_text("folds: 5\n")
    cfg = load_config(path)
    with pytest.raises(InvalidInputError, match="cv_folds"):
        validated_update(cfg, {"cv_folds": [9]}, path)
    path.write_bytes(b"# caf\xe9\n")  # not UTF-8
    with pytest.raises(InvalidInputError, match="not UTF-8 text"):
        load_config(path)


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"holdout_patients": 9, "folds": 2}, "leaves 1 of 10 patients to train on, fewer than"),
        ({"holdout_patients": 10, "cross_validate": False}, "leaves 0 of 10 patients to train on:"),
    ],
)  # fmt: skip
def test_a_holdout_that_leaves_a_fold_empty_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, update: dict[str, object], message: str
) -> None:
    # 10 patients: holding out 9 left one patient for two folds, so one fold trained on
    # nobody (or the final network on nobody) and its figures were of nothing.
    _patch_graded_discs(monkeypatch, tmp_path, 20, seed=3)
    cfg = GradeTrainConfig(arch={"block_inplanes": [8, 8, 16, 16]}, epochs=1, **update)
    with pytest.raises(InvalidInputError, match=message):
        run_training(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_no_crops_give_as_many_columns_as_the_network_has_outputs() -> None:
    from discquant.grade.pfirrmann import build_network, predict_probabilities

    arch = {"block_inplanes": [8, 8, 16, 16]}
    for n in (2, 5):
        net = build_network(arch, num_classes=n)
        assert predict_probabilities(net, np.zeros((0, 3, 24, 32), np.float32)).shape == (0, n)


def test_fold_hash_follows_the_locator_weights_not_their_path(tmp_path: Path) -> None:
    # Fold checkpoints are reused only under the same hash: a locator retrained into the
    # same path (or the shipped one replaced) places other crops, so it must change it.
    import hashlib

    from discquant.grade.train import _locator_sha256
    from discquant.grade.train_config import fold_config_sha256
    from discquant.segment.infer import shipped_model_file

    cfg = GradeTrainConfig(spider=Path("spider"), segment_model=Path("seg.pt"))
    moved = cfg.model_copy(update={"segment_model": Path("elsewhere/seg.pt")})
    assert fold_config_sha256(cfg, "a") == fold_config_sha256(moved, "a")
    assert fold_config_sha256(cfg, "a") != fold_config_sha256(cfg, "b")
    (tmp_path / "seg.pt").write_bytes(b"one")
    first = _locator_sha256(cfg, tmp_path)
    (tmp_path / "seg.pt").write_bytes(b"two")
    assert _locator_sha256(cfg, tmp_path) != first
    no_path = cfg.model_copy(update={"segment_model": None})
    shipped = hashlib.sha256(shipped_model_file().read_bytes()).hexdigest()
    assert _locator_sha256(no_path, tmp_path) == shipped
    boxes_only = GradeTrainConfig(spider=None, sudirman_locate="boxes")
    assert _locator_sha256(boxes_only, tmp_path) is None


def test_a_segment_model_that_places_no_crop_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="segment_model is set but places no crop"):
        GradeTrainConfig(spider=None, sudirman_locate="boxes", segment_model=Path("seg.pt"))
    GradeTrainConfig(
        sudirman=Path("sud"), spider=None, sudirman_locate="masks", segment_model=Path("seg.pt")
    )
    with pytest.raises(ValidationError, match="segment_model is set but places no crop"):
        GradeTrainConfig(spider=None, sudirman_locate="masks", segment_model=Path("seg.pt"))


def test_reruns_neither_reuse_networks_of_old_grades_nor_log_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrected gradings.tsv silently reused fold networks trained on the old grades;
    every rerun appended a second copy of the lines of the networks it trained again; a
    phantom cache cut short by a kill stopped every later run (BadZipFile)."""
    import dataclasses

    import discquant.grade.train as train_mod

    _patch_graded_discs(monkeypatch, tmp_path, 48, seed=8)
    cfg = _small_cv(train_final=True, max_steps=2)
    out = tmp_path / "run"
    run_training(cfg, out)
    run_training(cfg, out)  # folds reused, the final network trained again
    tags = [json.loads(line)["tag"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert sorted(set(tags)) == ["final", "fold0", "fold1"]
    assert len(tags) == 3 * len([t for t in tags if t == "final"])  # each network's epochs once

    discs = train_mod.collect_discs(cfg, base=Path("."))
    regraded = [dataclasses.replace(d, grade=5 if d.grade == 4 else d.grade) for d in discs]
    monkeypatch.setattr(train_mod, "collect_discs", lambda c, base: regraded)
    with pytest.raises(InvalidInputError, match="trained on other labels"):
        run_training(cfg, out)


def test_a_phantom_cache_cut_short_is_rendered_again(tmp_path: Path) -> None:
    from discquant.grade.train import _phantom_set

    cache = tmp_path / "phantoms_train.npz"
    crop_kw = {"slices": 3, "size_mm": [48.0, 64.0], "shape": [24, 32], "normalise": "crop"}
    crops, grades, _ = _phantom_set(cache, [1000], crop_kw)
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])  # killed mid-write
    again, grades2, _ = _phantom_set(cache, [1000], crop_kw)
    np.testing.assert_array_equal(again, crops)
    np.testing.assert_array_equal(grades2, grades)
    assert np.load(cache)["crops"].shape == crops.shape  # written whole this time


def test_metrics_files_are_strict_json() -> None:
    """A level without a positive herniation case has NaN sensitivity and AUC: the metrics
    files held a bare NaN, which strict parsers refuse."""
    from discquant.grade.train import _metrics_json

    text = _metrics_json({"L1-L2": {"sensitivity": float("nan"), "auc": float("inf"), "n": 3}})
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert doc == {"L1-L2": {"sensitivity": None, "auc": None, "n": 3}}


def test_soft_ordinal_targets_documented_values() -> None:
    """At phi = 2 (configs/grade.yaml) grade 3's target is 0.79 on itself and 0.11 on each
    neighbour; grades 1 and 5 put 0.88 on themselves and 0.12 on their one neighbour."""
    from discquant.grade.train import soft_ordinal_targets

    t = soft_ordinal_targets(5, 2.0)
    assert t.dtype == np.float32 and t.shape == (5, 5)
    np.testing.assert_allclose(t[2, 1:4], [0.11, 0.79, 0.11], atol=0.005)
    np.testing.assert_allclose(t[0, :2], [0.88, 0.12], atol=0.005)
    np.testing.assert_allclose(t[4, 3:], [0.12, 0.88], atol=0.005)


def test_sessions_of_one_patient_fall_on_one_side_of_every_split() -> None:
    """sub-01_ses-1 held out while sub-01_ses-2 was in a training fold (a leak); names
    without sessions split as before."""
    from discquant.grade.train import patient_splits, subject_splits

    plain = [f"sub-{i:02d}" for i in range(20)]
    held, folds, held_p, left = subject_splits(plain, seed=3, holdout=4, folds=5)
    assert (held, folds) == patient_splits(plain, seed=3, holdout=4, folds=5)
    assert held_p == held and left == 16
    with_sessions = [f"{s}_ses-{k}" for s in plain for k in (1, 2)]
    held, folds, held_p, left = subject_splits(with_sessions, seed=3, holdout=4, folds=5)
    assert len(held_p) == 4 and left == 16 and len(held) == 8
    for s in plain:
        a, b = f"{s}_ses-1", f"{s}_ses-2"
        assert (a in held) == (b in held)
        assert folds.get(a) == folds.get(b)


def test_evaluate_grade_on_the_trainers_predictions_gives_the_true_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference grade sat in column ``grade``, evaluate grade's default column, so
    ``evaluate grade --pred holdout_predictions.tsv --ref REF`` scored the reference
    against itself: every figure 1.000."""
    from sklearn.metrics import cohen_kappa_score
    from typer.testing import CliRunner

    from discquant.cli import app
    from discquant.grade.train import REFERENCE_COLUMN, read_predictions

    _patch_graded_discs(monkeypatch, tmp_path, 48, seed=9)
    run_training(_small_cv(train_final=True, max_steps=1), tmp_path / "run")  # barely trained
    for name in ("cv_predictions.tsv", "holdout_predictions.tsv"):
        pred = tmp_path / "run" / name
        header = pred.read_text().splitlines()[0].split("\t")
        assert header[:5] == ["subject", "level", REFERENCE_COLUMN, "predicted", "expected"]
        assert "grade" not in header
        table = read_predictions(pred)
        ref = tmp_path / f"ref-{name}"  # the user's reference table: subject, level, grade
        table[["subject", "level", REFERENCE_COLUMN]].rename(
            columns={REFERENCE_COLUMN: "grade"}
        ).to_csv(ref, sep="\t", index=False)
        truth = table[REFERENCE_COLUMN].to_numpy()
        predicted = table["predicted"].to_numpy()
        exact = float(np.mean(truth == predicted))
        kappa = cohen_kappa_score(truth, predicted, weights="linear", labels=[1, 2, 3, 4, 5])
        assert exact < 1.0  # so that a self-comparison could not pass
        runner = CliRunner()
        # the default column is no longer the reference: refused, not a perfect score
        res = runner.invoke(app, ["evaluate", "grade", "--pred", str(pred), "--ref", str(ref)])
        assert res.exit_code == 2 and "grade" in res.stderr, res.output
        for args in (
            ["--ref", str(ref), "--pred-column", "predicted"],
            ["--ref", str(pred), "--column", REFERENCE_COLUMN, "--pred-column", "predicted"],
        ):
            out = tmp_path / "ev.json"
            res = runner.invoke(
                app, ["evaluate", "grade", "--pred", str(pred), *args, "--json", str(out)]
            )
            assert res.exit_code == 0, res.output
            overall = json.loads(out.read_text())["all"]
            assert overall["n"] == len(table)
            assert overall["exact_accuracy"] == pytest.approx(exact)
            assert overall["kappa_linear"] == pytest.approx(kappa)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        # failed only after every image had been segmented (a traceback)
        ("crop: {normalise: Crop}", "crop.normalise is 'Crop'; it must be image or crop"),
        ("crop: {slices: 0}", "crop.slices is 0; it must be a positive odd number"),
        ("crop: {slices: 2}", "crop.slices is 2; it must be a positive odd number"),
        # tracebacks after checkpoints/, config.json and splits.json were written
        ("lr: -0.001", "lr is -0.001; it must be above 0"),
        ("weight_decay: -1", "weight_decay is -1.0; it must be 0 or more"),
        # accepted without a word
        ("crop: {size_mm: [-48, 64]}", "crop.size_mm is (-48.0, 64.0); both must be above 0"),
        ("augment: {prob: 1.5}", "augment.prob is 1.5; it must be 0 to 1"),
        ("num_threads: 0", "num_threads is 0; it must be at least 1"),
        # trained the default network and stored layerz in the model as if applied
        ("arch: {layerz: [1, 1, 1, 1]}",
         "arch: unknown keys ['layerz'] (valid keys: layers, block_inplanes, conv1_t_size"),
        ("arch: {layers: [1, 1, 1]}",
         "arch.layers and arch.block_inplanes need one entry for each of the 4 stages"),
        ("arch: {layers: [1, 1, 1, 1, 1], block_inplanes: [8, 8, 8, 8, 8]}",
         "each of the 4 stages"),
        ("arch: {conv1_t_size: 0}", "arch.conv1_t_size is 0; it must be an integer at least 1"),
    ],
)  # fmt: skip
def test_a_bad_grade_setting_is_one_line_before_any_image_is_read(
    tmp_path: Path, setting: str, expected: str
) -> None:
    from typer.testing import CliRunner

    from discquant.cli import app

    graded = tmp_path / "mine"  # its images would be segmented first: there are none
    graded.mkdir()
    (graded / "gradings.tsv").write_text("subject\tlevel\tpfirrmann_grade\nsub-a\tL4-L5\t3\n")
    config = tmp_path / "g.yaml"
    config.write_text(f"sudirman: null\ngraded_sets: [{graded}]\n{setting}\n")
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["train", "grade", "--config", str(config), "--out", str(out), "--quiet"]
    )
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"discquant: error: {config}: invalid grade config: ")
    assert expected in lines[0], lines[0]
    assert not out.exists()
    # the same check in run_training, for a configuration built in code
    cfg = load_config(config)
    with pytest.raises(InvalidInputError, match="invalid grade config: "):
        run_training(cfg, out, base=tmp_path)
    assert not out.exists()


def test_train_grade_prints_strict_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary printed on stdout had bare NaN (a κ undefined in a fold), which no
    JSON reader accepts (a docs trial); it reads null now, as in the metrics files."""
    import json

    from typer.testing import CliRunner

    import discquant.grade.train as train
    from discquant.cli import app

    monkeypatch.setattr(train, "run_training", lambda cfg, out: {"kappa": float("nan"), "n": 3})
    config = Path(__file__).parents[2] / "configs" / "grade.yaml"
    res = CliRunner().invoke(app, ["train", "grade", "--config", str(config), "-o",
                                   str(tmp_path / "run"), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"kappa": None, "n": 3}


def test_train_grade_prints_one_line_per_scored_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --json, the figures over all levels and the file with the rest (the whole
    summary was about 400 lines of JSON, a user's audit)."""
    from typer.testing import CliRunner

    import discquant.grade.train as train
    from discquant.cli import app
    from discquant.evaluate.grading import grade_agreement

    cv = grade_agreement([1, 2, 3, 4, 5, 3], [1, 2, 4, 4, 5, 1]).to_dict()
    summary = {"n_discs": 6, "cv": {"all": cv, "L4-L5": cv}, "final_losses": [0.3]}
    monkeypatch.setattr(train, "run_training", lambda cfg, out: summary)
    config = Path(__file__).parents[2] / "configs" / "grade.yaml"
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "grade", "--config", str(config), "-o", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "6 discs"
    # 4 of 6 exact; within ±1: 5 of 6 (3 -> 1 is two grades off)
    assert lines[1].startswith("cv: 6 discs, exact 0.667, balanced accuracy ")
    assert "within ±1 83.3 %" in lines[1] and f"{out / 'cv_metrics.json'}" in lines[1]
    assert f"kappa linear {cv['kappa_linear']:.3f}" in lines[1]
    assert len(lines) == 2


def test_a_missing_graded_set_named_like_a_project_set_names_graded_sets(tmp_path: Path) -> None:
    """A missing graded set at /data/Spider was said to come from the configuration's
    ``spider`` (a review): the key is the caller's, not guessed from the folder name."""
    from discquant.errors import InputNotFoundError
    from discquant.grade.train import collect_discs

    cfg = GradeTrainConfig(graded_sets=[tmp_path / "Spider"], phantoms_train=0, phantoms_test=0)
    with pytest.raises(InputNotFoundError) as err:
        collect_discs(cfg, base=tmp_path)
    assert "the training configuration's graded_sets names it" in str(err.value)
    assert str(tmp_path / "Spider") in str(err.value)
