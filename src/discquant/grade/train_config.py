"""The settings of ``discquant train grade`` (``configs/grade.yaml``), validated on load.

:class:`GradeTrainConfig` mirrors the YAML file; :func:`load_config` reads it with a
one-line error naming the file; :func:`fold_config_sha256` hashes the settings a
cross-validation fold's networks depend on, so that a fold checkpoint is reused only by a
run with the same settings (``discquant.grade.train``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from discquant.errors import InvalidInputError, validation_summary
from discquant.grade.crops import CROP_SHAPE, CROP_SIZE_MM, CROP_SLICES


class CropConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slices: int = CROP_SLICES
    size_mm: tuple[float, float] = CROP_SIZE_MM
    shape: tuple[int, int] = CROP_SHAPE
    normalise: str = "image"


class AugmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prob: float = 0.8
    rotate_deg: float = 10.0
    scale: float = 0.1
    translate_px: float = 3.0
    gamma: tuple[float, float] = (0.8, 1.25)
    intensity_scale: float = 0.1
    intensity_shift: float = 0.05
    noise_std: float = 0.02


class GradeTrainConfig(BaseModel):
    """``configs/grade.yaml``."""

    model_config = ConfigDict(extra="forbid")
    seed: int = Field(default=0, ge=0)
    target: Literal["pfirrmann", "herniation"] = "pfirrmann"
    """What the network learns: the Pfirrmann grade (5 classes) or herniation yes/no."""
    sudirman: Path | None = None
    """The Sudirman set (``../shared/data/sudirman-midsag-t2`` in configs/grade.yaml);
    null: not used."""
    spider: Path | None = None
    graded_sets: list[Path] = Field(default_factory=list)
    """A user's own graded sets, each a folder of ``<subject>_T2w.nii.gz`` images and a
    ``gradings.tsv`` (``subject``, ``level``, ``pfirrmann_grade``), discs located by the
    segmentation model (:func:`discquant.grade.data.graded_discs`); subjects must differ
    from those of the other sets (folds and held-out patients are split by subject)."""
    sudirman_locate: Literal["boxes", "masks"] = "boxes"
    """Where Sudirman crops are placed: by the annotated boxes, or as ``analyze`` places
    them, by the segmentation model's disc (``discquant.grade.data.sudirman_discs``)."""
    segment_model: Path | None = None
    """Segmentation ``model.pt`` that locates the SPIDER discs (and Sudirman's with
    ``sudirman_locate: masks``); None: the shipped one. The shipped grader's crops were
    placed by segmentation v1 (see its model card for the command that reproduces it)."""
    holdout_patients: int = Field(default=50, ge=0)
    folds: int = Field(default=5, ge=2)
    cross_validate: bool = True
    cv_folds: list[int] | None = None
    """Run only these folds (to spread cross-validation over processes); None = all."""
    seeds_per_fold: int = Field(default=1, ge=1)
    """Networks trained per fold, each from its own seed; the fold's CV predictions are
    their mean, and ``ship: folds`` ships every one of them."""
    train_final: bool = True
    epochs: int = Field(default=40, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    class_weight_power: float = 1.0
    ordinal_weight: float = 0.5
    soft_labels_phi: float = 0.0
    """0: cross-entropy against the reference grade. > 0: against soft ordinal labels
    (SORD, Díaz & Marathe, CVPR 2019), ``softmax(-phi × (k - grade)²)`` over the grades
    k, which tells the network that a neighbouring grade is a smaller mistake."""
    num_threads: int = 1
    phantoms_train: int = Field(default=0, ge=0)
    """Phantom studies (5 lumbar discs each, random grades) added to the final training
    (and to each fold's with ``phantoms_in_folds``)."""
    phantoms_in_folds: bool = False
    """Add the phantom training studies to every cross-validation fold's training too
    (phantoms are not patients, so nothing leaks into the scored folds)."""
    ship: Literal["final", "folds"] = "final"
    """The model written to ``pfirrmann.pt``: ``final``, one network trained on every
    non-held-out patient; ``folds``, the mean probability of the cross-validation fold
    networks (as nnU-Net ships its five folds; needs all folds)."""
    phantoms_test: int = Field(default=0, ge=0)
    """Unseen phantom studies to measure the shipped model's exact accuracy on."""
    phantom_train_seed0: int = 1000
    phantom_test_seed0: int = 5000
    tta_shifts: list[tuple[int, int]] = [(0, 0), (1, 0), (-1, 0), (0, 2), (0, -2)]
    """Test-time crop shifts (rows, columns) whose probabilities are averaged."""
    test_model: str | None = None
    """A trained model file (or ``shipped``) to grade every configured disc with."""
    init_model: str | None = None
    """Fine-tuning: a trained model file (or ``shipped``) whose weights every network
    starts from instead of random ones (network j of each fold from the model's network
    j, cycling when it has fewer; the final network from its first). Its crop and network
    must be this config's; patients it was trained on may not be scored (held out or in
    a cross-validation fold). ``lr`` and ``epochs`` are usually lowered with it."""
    max_steps: int | None = None
    """Stop each training after this many optimiser steps (tests, smoke runs)."""
    crop: CropConfig = Field(default_factory=CropConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    arch: dict[str, Any] = Field(default_factory=dict)

    @property
    def phantom_train_seeds(self) -> range:
        """Seeds of the phantom training studies."""
        return range(self.phantom_train_seed0, self.phantom_train_seed0 + self.phantoms_train)

    @property
    def phantom_test_seeds(self) -> range:
        """Seeds of the unseen phantom test studies."""
        return range(self.phantom_test_seed0, self.phantom_test_seed0 + self.phantoms_test)

    @model_validator(mode="after")
    def _consistent(self) -> GradeTrainConfig:
        problem = config_problem(self)
        if problem:
            raise ValueError(problem)
        return self


def config_problem(cfg: GradeTrainConfig) -> str | None:
    """Why ``cfg`` cannot run as written, or None (checked on load and before training)."""
    every_fold = cfg.cv_folds is None or sorted(cfg.cv_folds) == list(range(cfg.folds))
    if cfg.ship == "folds" and not (cfg.cross_validate and every_fold):
        return "ship: folds needs cross_validate on and every fold run"
    if not (cfg.cross_validate or cfg.train_final or cfg.test_model):  # ran, did nothing
        return "cross_validate, train_final and test_model are all off: nothing would run"
    if cfg.init_model is not None and not (cfg.cross_validate or cfg.train_final):
        return "init_model is set but nothing trains (cross_validate and train_final are off)"
    if cfg.target != "pfirrmann" and (cfg.phantoms_train > 0 or cfg.phantoms_test > 0):
        return "phantom studies carry Pfirrmann grades only: set phantoms_train/test to 0"
    if cfg.cv_folds is not None and (
        not cfg.cv_folds or any(not 0 <= k < cfg.folds for k in cfg.cv_folds)
    ):
        return f"cv_folds must name folds 0..{cfg.folds - 1}"
    if cfg.cv_folds is not None and len(set(cfg.cv_folds)) < len(cfg.cv_folds):
        # [0, 0] trained fold 0 twice, the second run over the first's log (an audit)
        twice = next(k for k in cfg.cv_folds if cfg.cv_folds.count(k) > 1)
        return f"cv_folds names fold {twice} twice"
    if cfg.segment_model is not None and not uses_segmentation(cfg):
        return (
            "segment_model is set but places no crop (no spider, no graded_sets, and no "
            "sudirman or sudirman_locate: boxes)"
        )
    if set(cfg.phantom_train_seeds) & set(cfg.phantom_test_seeds):
        return "the unseen test phantoms share seeds with the training phantoms"
    rows, cols = cfg.crop.shape
    if any(abs(r) >= rows or abs(c) >= cols for r, c in cfg.tta_shifts):
        return f"a test-time shift is as large as the {rows}×{cols} crop"
    return None


def load_config(path: Path) -> GradeTrainConfig:
    """Read and validate a YAML config; relative data paths are kept as written."""
    from discquant.config import read_yaml

    return _validated(read_yaml(path), path)


def _validated(raw: dict[str, Any], path: Path) -> GradeTrainConfig:
    """``raw`` as a checked config, or a one-line error naming ``path``."""
    from pydantic import ValidationError

    try:
        # strict, on the file's JSON form (so that lists may fill tuples and text paths):
        # pydantic's lax mode took seed: true as 1 and cross_validate: "yes" as True
        # (an audit)
        return GradeTrainConfig.model_validate_json(json.dumps(raw, default=str), strict=True)
    except ValidationError as exc:
        why = validation_summary(exc)
        raise InvalidInputError(f"invalid grade config: {why}", path=path) from exc


_NOT_IN_FOLD_NETWORKS = {
    "cv_folds", "num_threads", "cross_validate", "train_final", "ship", "phantoms_test",
    "phantom_test_seed0", "test_model", "tta_shifts",
}  # fmt: skip


def fold_config_sha256(
    cfg: GradeTrainConfig, locator_sha256: str | None = None, init_sha256: str | None = None
) -> str:
    """Hash of the settings a cross-validation fold's networks depend on.

    Which folds run, thread count, test-time shifts and what is shipped do not change a
    fold's networks, so runs that differ only in those share fold checkpoints.
    ``locator_sha256`` is the hash of the segmentation weights that place the crops
    (:func:`uses_segmentation`) and ``init_sha256`` that of the ``init_model`` weights:
    the files, not their paths, decide where the crops lie and where training starts.
    """
    paths = {"segment_model", "init_model"}
    blob = cfg.model_dump(mode="json", exclude=_NOT_IN_FOLD_NETWORKS | paths)
    if not blob["graded_sets"]:  # as fold checkpoints made before the key existed
        del blob["graded_sets"]
    blob["locator_sha256"] = locator_sha256
    if init_sha256 is not None:  # absent otherwise, as before the key existed
        blob["init_sha256"] = init_sha256
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def uses_segmentation(cfg: GradeTrainConfig) -> bool:
    """Whether the segmentation places any training crop (SPIDER, a user's graded set, or
    Sudirman by masks)."""
    return (
        cfg.spider is not None
        or bool(cfg.graded_sets)
        or (cfg.sudirman is not None and cfg.sudirman_locate == "masks")
    )


def validated_update(cfg: GradeTrainConfig, update: dict[str, Any], path: Path) -> GradeTrainConfig:
    """``cfg`` with command-line overrides, checked as the file was (``model_copy`` is not)."""
    return _validated({**cfg.model_dump(), **update}, path)
