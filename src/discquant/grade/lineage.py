"""Which patients and phantom studies a grading model was trained on, and the model a
fine-tune starts from (``init_model``).

A grading run's scored figures (cross-validation, held-out patients, unseen phantoms, an
external test model) are overstated when a model behind them saw those patients. Models
written by :func:`discquant.grade.train.run_training` record their training patients
(``train_subjects``), phantom seeds (``phantom_train_seeds``) and, when fine-tuned, the
metadata of the model they started from (``init_model``), so the chain can be followed
back; the shipped model's are filled in on loading (:mod:`discquant.grade.pfirrmann`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discquant.errors import DiscquantError, InvalidInputError, ModelError
from discquant.grade.train_config import CropConfig, GradeTrainConfig

__all__ = [
    "InitModel",
    "check_init_patients",
    "check_init_phantoms",
    "model_training_subjects",
    "read_init_model",
]


def model_training_subjects(metadata: dict[str, Any], discs: list[Any]) -> set[str] | None:
    """The patients among ``discs`` that a grading model was (or may have been) trained on.

    From the model's metadata: ``train_subjects`` (written by :func:`run_training` since
    it records them) is exact, by patient (another session of a patient it trained on
    counts as seen, :func:`discquant.io.load.patient_of`). Otherwise ``holdout_subjects``
    (the shipped model): every patient of a data set its ``trained_on`` names, except the
    held-out ones, counts as trained on (a disc of unknown data set too). None when the
    metadata says neither. A fine-tuned model (``init_model`` in its metadata, written by
    :func:`run_training`) also counts the patients of the model it started from, and so on
    back; None when any model of that chain cannot tell.
    """
    own = _own_training_subjects(metadata, discs)
    parent = metadata.get("init_model")
    if not isinstance(parent, dict):
        return own
    inherited = model_training_subjects(parent, discs)  # fine-tuned: its start's patients too
    return None if own is None or inherited is None else own | inherited


def _own_training_subjects(metadata: dict[str, Any], discs: list[Any]) -> set[str] | None:
    """:func:`model_training_subjects` of the model's own training, not its start's."""
    from discquant.io.load import patient_of

    if metadata.get("train_subjects") is not None:
        trained = {patient_of(s) for s in metadata["train_subjects"]}
        return {d.subject for d in discs if patient_of(d.subject) in trained}
    if metadata.get("holdout_subjects") is not None:
        held = set(metadata["holdout_subjects"])
        named = str(metadata.get("trained_on", ""))
        return {
            d.subject
            for d in discs
            if d.subject not in held
            # exact names ("sudirman + spider + 80 phantom studies" after "mean of ...: ");
            # a substring test took a set named "studies" as trained on
            and (not getattr(d, "source", "") or d.source in named.rsplit(": ", 1)[-1].split(" + "))
        }
    return None


@dataclass(frozen=True)
class InitModel:
    """The weights fine-tuning starts from (``init_model``), read before the data."""

    states: list[dict[str, Any]]
    """One state dict per network of the model (an ensemble's members, in order)."""
    weights_sha256: str
    name: str
    """How messages name it: its path, or "the shipped model"."""
    provenance: dict[str, Any]
    """Written to the new model's metadata as ``init_model``: the file as configured, its
    weights' SHA-256 and the patients it was trained on (its ``train_subjects`` or
    ``holdout_subjects`` with ``trained_on``, and its own ``init_model``), so that
    :func:`model_training_subjects` follows a chain of fine-tunes back to every patient."""

    def state(self, member: int) -> dict[str, Any]:
        """Network ``member`` of a fold starts from the model's network ``member`` (cycled)."""
        return self.states[member % len(self.states)]


_TRAINED_ON_KEYS = (
    "train_subjects", "holdout_subjects", "trained_on", "init_model", "phantom_train_seeds",
)  # fmt: skip
"""Metadata that says which patients (:func:`model_training_subjects`) and phantom studies
(``phantom_train_seeds``: first seed, count) a model was trained on."""


def _init_phantom_seeds(provenance: dict[str, Any]) -> set[int]:
    """Seeds of the phantom studies an init model and the models it started from trained on."""
    seeds: set[int] = set()
    while isinstance(provenance, dict):
        if provenance.get("phantom_train_seeds") is not None:
            first, count = (int(v) for v in provenance["phantom_train_seeds"])
            seeds |= set(range(first, first + count))
        provenance = provenance.get("init_model")  # type: ignore[assignment]
    return seeds


def read_init_model(cfg: GradeTrainConfig, *, base: Path) -> InitModel | None:
    """Read ``cfg.init_model`` and check that it fits the config, or None when training
    starts from random weights. Runs before the data is read (which may take minutes).

    Raises
    ------
    ModelError
        The file is missing or not a grading model.
    InvalidInputError
        Its target, network or crop differs from the config's (every difference named).
    """
    if cfg.init_model is None:
        return None
    from discquant.grade.ensemble import GradeEnsemble
    from discquant.grade.pfirrmann import DEFAULT_ARCH, load_pfirrmann_model

    path = None if cfg.init_model == "shipped" else (base / cfg.init_model).absolute()
    name = "the shipped model" if path is None else str(path)
    try:
        model = load_pfirrmann_model(path)
    except DiscquantError as exc:
        raise ModelError(f"init_model: {exc.reason}", path=exc.path) from exc

    target = str(model.metadata.get("target", "pfirrmann"))
    differences = [f"target {target!r} (config: {cfg.target!r})"] if target != cfg.target else []
    have = {**DEFAULT_ARCH, **(model.metadata.get("arch") or {})}
    differences += [f"arch {d}" for d in _differences(have, {**DEFAULT_ARCH, **cfg.arch})]
    crop = {**CropConfig().model_dump(), **model.crop}  # old models lack later crop keys
    differences += [f"crop {d}" for d in _differences(crop, cfg.crop.model_dump())]
    if differences:  # their weights would not fit, or would read other crops
        raise InvalidInputError(
            f"init_model {name} was trained with other settings than the config: "
            + ", ".join(differences)
        )
    net = model.network
    states = [m.state_dict() for m in (net.members if isinstance(net, GradeEnsemble) else [net])]
    meta = dict(model.metadata)
    provenance = {"source": cfg.init_model, "weights_sha256": model.weights_sha256}
    provenance |= {k: meta[k] for k in _TRAINED_ON_KEYS if meta.get(k) is not None}
    return InitModel(states, model.weights_sha256, name, provenance)


def _differences(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """``key model-value (config: config-value)`` for each setting that differs
    (tuples and lists compare equal)."""

    def plain(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    return [
        f"{k} {plain(have.get(k))!r} (config: {plain(want.get(k))!r})"
        for k in sorted(set(have) | set(want))
        if plain(have.get(k)) != plain(want.get(k))
    ]


def check_init_patients(init: InitModel, discs: list[Any], scored: set[str]) -> None:
    """Refuse an ``init_model`` trained on a patient this run scores (held out or in a
    cross-validation fold), or one that cannot tell, when the run scores anyone: those
    figures would be overstated. Patients are matched by subject name
    (:func:`model_training_subjects`).

    Raises
    ------
    InvalidInputError
        Naming how many subjects and one of them.
    """
    seen = model_training_subjects(init.provenance, [d for d in discs if d.subject in scored])
    if seen:
        raise InvalidInputError(
            f"init_model {init.name} was trained on {len(seen)} of the subjects this run "
            f"scores (e.g. {sorted(seen)[0]}; matched by name): their cross-validation or "
            "held-out figures would be overstated; score other patients (rename subjects "
            "that are other people), or start from another model"
        )
    if seen is None and scored:
        raise InvalidInputError(
            f"init_model {init.name} records neither train_subjects nor holdout_subjects: "
            "cannot tell whether it was trained on the patients this run scores; start "
            "from a model written by discquant train grade, or score nobody "
            "(cross_validate: false, holdout_patients: 0)"
        )


def check_init_phantoms(init: InitModel, cfg: GradeTrainConfig) -> None:
    """Refuse unseen test phantoms that the ``init_model`` (or its start) trained on: its
    phantom accuracy would be overstated.

    Raises
    ------
    InvalidInputError
        Naming how many test studies and their seeds.
    """
    if shared := sorted(_init_phantom_seeds(init.provenance) & set(cfg.phantom_test_seeds)):
        raise InvalidInputError(
            f"init_model {init.name} was trained on {len(shared)} of this run's unseen "
            f"test phantom studies (seeds {shared[0]}-{shared[-1]}): its phantom "
            "accuracy would be overstated; move phantom_test_seed0"
        )
