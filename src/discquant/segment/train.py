"""Training loop for the segmentation network (CPU or GPU).

``discquant train segment --config configs/segment.yaml --out DIR`` calls :func:`train`.
It writes ``DIR/log.jsonl`` (one line per logging step and per validation),
``DIR/last.pt`` (model, optimiser, RNG states, step: resumable) and ``DIR/best.pt``;
``DIR/model.pt`` is the final weights in the shipped format (float16 state dict + meta).
A run that finds ``DIR/last.pt`` resumes from it when it was trained with the same
settings on the same subjects (refused otherwise). A folder holding an earlier run's
files but no checkpoint is refused when that run's ``config.json`` differs, and started
over (its log and ``best.pt`` removed) when it is the same configuration. The split is
by patient (``TrainConfig.patient_groups``: volumes of one patient stay on one side).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from discquant.errors import InputNotFoundError, InvalidInputError
from discquant.jsonfiles import keep_jsonl_lines
from discquant.models import not_a_model, read_torch_file, save_torch_file
from discquant.segment.data import (
    SHARED_DATA_PATIENT_GROUPS,
    TrainSubject,
    classes_taught_alone,
    labelled_set_pairs,
    load_labelled_set,
    load_real_subjects,
    phantom_subjects,
    real_subject_names,
)
from discquant.segment.network import (
    IGNORE,
    MarginalDiceCELoss,
    build_network,
    classes_problem,
    dice_groups,
    dice_pixels,
)
from discquant.segment.preprocess import (
    context_offset,
    neighbour_slices,
    pad_to_multiple,
    with_context,
)

logger = logging.getLogger(__name__)

MIN_STEPS = 20
"""Fewest training steps: the one-cycle schedule needs two warm-up steps (10 %)."""


@dataclass
class LabelledSet:
    """A user's own labelled volumes (``labelled_sets`` of :class:`TrainConfig`): every
    ``sub-*_dseg.nii[.gz]`` under ``root`` with its ``sub-*_T2w.nii[.gz]``, labels in the
    VerSe/SPINEPS convention (:func:`~discquant.segment.data.load_labelled_set`)."""

    root: str
    #: The classes the maps label everywhere in view (of disc, body, sacrum, canal).
    labelled: list[str]
    #: Vertebra labels hold the posterior elements too (VerSe, SPINEPS, the phantom);
    #: False: they are the vertebral bodies alone.
    whole_vertebrae: bool = True
    image_suffix: str = "_T2w"
    #: The folder under ``root`` whose label maps to take (``derivatives/manual``) when
    #: several pipelines' lie under it; None: every label map under ``root``.
    labels: str | None = None


@dataclass
class TrainConfig:
    """Everything a training run depends on (the YAML file mirrors these fields)."""

    seed: int = 0
    classes: list[str] = field(default_factory=lambda: ["background", "body", "disc", "sacrum"])
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    num_res_units: int = 1
    spacing_mm: float = 1.0
    #: > 0: the network also sees the slices this far (mm) to either side (2.5D input).
    context_mm: float = 0.0
    patch: int = 192
    batch_size: int = 8
    steps: int = 2000
    lr: float = 2e-3
    weight_decay: float = 1e-5
    log_every: int = 25
    val_every: int = 250
    checkpoint_every: int = 100
    threads: int = 1
    #: The folder holding the project's real sets (lumbar-t2-discs, lumbar-t2-vertebrae;
    #: ``../shared/data`` in configs/segment.yaml); null: none (a user's own labelled_sets).
    data_root: str | None = None
    #: A user's own labelled volumes, each set sampled like one real set.
    labelled_sets: list[LabelledSet] = field(default_factory=list)
    train_subjects: list[str] | None = None
    val_subjects: list[str] = field(default_factory=list)
    #: Volumes that are one patient: a group is never split between training and
    #: validation (the run is refused). The default holds the groups of ../shared/data.
    patient_groups: list[list[str]] = field(
        default_factory=lambda: [list(g) for g in SHARED_DATA_PATIENT_GROUPS]
    )
    phantom_train_seeds: list[int] = field(default_factory=list)
    phantom_weight: float = 0.3
    phantom_cache: str | None = None
    max_steps_this_run: int | None = None
    #: Dice only on pixels whose label is certain about the group (network.dice_pixels);
    #: False: every pixel outside the group is a negative (v1, the previous model).
    dice_certain_pixels: bool = True
    #: Ignore real pixels this far (mm) above the highest labelled instance
    #: (data.unlabelled_above); None: teach them as "not a disc"/"not a body" (v1).
    ignore_above_label_mm: float | None = 2.0

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> TrainConfig:
        """Read a YAML file; keys (nested ones too), value types and ranges are checked
        (:func:`settings_problem`): a one-line error naming the file and the field."""
        from pydantic import TypeAdapter, ValidationError

        from discquant.config import read_yaml
        from discquant.errors import validation_summary

        raw = read_yaml(Path(path))
        if not isinstance(raw, dict):
            raise InvalidInputError("a training configuration is a mapping of keys", path=path)
        raw.update({k: v for k, v in overrides.items() if v is not None})
        _refuse_unknown_keys(raw, list(cls.__dataclass_fields__), "", path)
        for k, entry in enumerate(raw.get("labelled_sets") or []):
            # pydantic drops a dataclass's unknown keys: whole_vertebra: false trained
            # whole vertebrae
            _refuse_unknown_keys(
                entry, list(LabelledSet.__dataclass_fields__), f"labelled_sets[{k}]: ", path
            )
        seeds = raw.get("phantom_train_seeds")
        if isinstance(seeds, dict):
            _refuse_unknown_keys(seeds, ["start", "stop"], "phantom_train_seeds: ", path)
            try:
                raw["phantom_train_seeds"] = list(range(int(seeds["start"]), int(seeds["stop"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInputError(
                    "phantom_train_seeds as a mapping needs integer start and stop", path=path
                ) from exc
        try:  # pydantic checks the dataclass's annotated types ("many" steps is refused),
            # strictly on the file's JSON form: lax, it took seed: true as 1 and lr: "0.01"
            # as a number (an audit)
            config = TypeAdapter(cls).validate_json(json.dumps(raw, default=str), strict=True)
        except ValidationError as exc:
            raise InvalidInputError(
                f"invalid training configuration: {validation_summary(exc)}", path=path
            ) from exc
        problem = settings_problem(config)
        if problem:
            raise InvalidInputError(f"invalid training configuration: {problem}", path=path)
        return config


def _refuse_unknown_keys(raw: Any, valid: list[str], where: str, path: Path) -> None:
    """Refuse the keys of the mapping ``raw`` that are not ``valid`` (one line naming the
    file, ``where`` they are, the unknown keys and the valid ones); anything but a mapping
    is left to the type check."""
    if not isinstance(raw, dict):
        return
    unknown = sorted(str(k) for k in raw if k not in valid)
    if unknown:
        raise InvalidInputError(
            f"{where}unknown config keys {unknown} (valid keys: {', '.join(valid)})", path=path
        )


def settings_problem(config: TrainConfig) -> str | None:
    """Why ``config``'s values cannot train, or None: the first field out of its range.

    Checked when the file is read (:meth:`TrainConfig.from_yaml`) and again by
    :func:`train` before anything is read or written, so that a bad value is one line
    (exit 2), not a traceback from PyTorch or MONAI after the output folder was made.
    ``steps`` (at least :data:`MIN_STEPS`) is checked by :func:`train` alone, as before.

    Returns
    -------
    str or None
        ``"<field> is <value>; <what it must be>"``.
    """
    levels = len(config.channels)
    multiple = 2 ** max(levels - 1, 0)
    checks: list[tuple[str, bool, str]] = [
        ("seed", 0 <= config.seed < 2**32, "it must be 0 to 2**32 - 1"),
        ("channels", 2 <= levels <= 5, "it needs 2 to 5 levels (inference pads to 16 pixels)"),
        ("channels", all(c >= 1 for c in config.channels), "each must be at least 1"),
        ("num_res_units", config.num_res_units >= 0, "it must be at least 0"),
        ("spacing_mm", config.spacing_mm > 0, "it must be above 0"),
        ("context_mm", config.context_mm >= 0, "it must be 0 (none) or more"),
        ("patch", config.patch > 0 and config.patch % multiple == 0,
         f"it must be a positive multiple of {multiple} (2 ** (levels of channels - 1))"),
        ("batch_size", config.batch_size >= 1, "it must be at least 1"),
        ("lr", config.lr > 0, "it must be above 0"),
        ("weight_decay", config.weight_decay >= 0, "it must be 0 or more"),
        ("log_every", config.log_every >= 1, "it must be at least 1"),
        ("val_every", config.val_every >= 1, "it must be at least 1"),
        ("checkpoint_every", config.checkpoint_every >= 1, "it must be at least 1"),
        ("threads", config.threads >= 1, "it must be at least 1"),
        ("phantom_train_seeds", all(0 <= s < 2**32 for s in config.phantom_train_seeds),
         "each must be 0 to 2**32 - 1"),
        ("phantom_weight", 0 <= config.phantom_weight <= 1, "it must be 0 to 1"),
        ("max_steps_this_run", config.max_steps_this_run is None or config.max_steps_this_run >= 1,
         "it must be at least 1 (or null)"),
        ("ignore_above_label_mm",
         config.ignore_above_label_mm is None or config.ignore_above_label_mm >= 0,
         "it must be 0 or more (or null)"),
    ]  # fmt: skip
    for name, ok, allowed in checks:
        if not ok:
            return f"{name} is {getattr(config, name)!r}; {allowed}"
    problem = classes_problem(config.classes)
    return f"classes {config.classes}: {problem}" if problem else None


def make_augment(patch: int, seed: int) -> Any:
    """MONAI dictionary transforms for one 2D sample (``image`` (1,H,W), ``label`` (1,H,W)).

    The label is shifted by +1 before the spatial transform so that the zero padding
    it brings in becomes "ignore", not background.
    """
    from monai.transforms import (
        Compose,
        RandAdjustContrastd,
        RandAffined,
        RandBiasFieldd,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandScaleIntensityd,
        RandSpatialCropd,
        SpatialPadd,
    )

    t = Compose(
        [
            SpatialPadd(keys=["image", "label"], spatial_size=(patch, patch), mode="constant"),
            RandSpatialCropd(keys=["image", "label"], roi_size=(patch, patch), random_size=False),
            RandAffined(
                keys=["image", "label"],
                prob=0.8,
                rotate_range=(0.3,),
                scale_range=(0.25, 0.25),
                shear_range=(0.05, 0.05),
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            RandGaussianSmoothd(keys=["image"], prob=0.3, sigma_x=(0.3, 1.2), sigma_y=(0.3, 1.2)),
            RandBiasFieldd(keys=["image"], prob=0.4, coeff_range=(0.1, 0.4)),
            RandAdjustContrastd(keys=["image"], prob=0.5, gamma=(0.6, 1.7)),
            RandScaleIntensityd(keys=["image"], prob=0.3, factors=0.2),
            RandGaussianNoised(keys=["image"], prob=0.4, std=0.05),
        ]
    )
    t.set_random_state(seed=seed)
    return t


def _random_state_objects(transform: Any) -> list[np.random.RandomState]:
    """Every NumPy RandomState inside a MONAI transform (nested ones included), in the
    fixed order of their attributes."""
    found: list[np.random.RandomState] = []
    seen: set[int] = set()

    def walk(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, np.random.RandomState):
            found.append(obj)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item)
        elif type(obj).__module__.startswith("monai") and hasattr(obj, "__dict__"):
            for _, value in sorted(vars(obj).items()):
                walk(value)

    walk(transform)
    return found


def random_states(transform: Any) -> list[list[Any]]:
    """The augmentation's random states as plain lists (storable with weights_only)."""
    states = []
    for r in _random_state_objects(transform):
        name, keys, pos, has_gauss, cached = r.get_state(legacy=True)
        states.append([name, np.asarray(keys).tolist(), pos, has_gauss, cached])
    return states


def set_random_states(transform: Any, states: list[list[Any]]) -> None:
    """Restore what :func:`random_states` saved (a resumed run then draws the same
    augmentations as one never interrupted)."""
    objects = _random_state_objects(transform)
    if len(objects) != len(states):
        raise ValueError(
            f"checkpoint has {len(states)} augmentation states, expected {len(objects)}"
        )
    for r, (name, keys, pos, has_gauss, cached) in zip(objects, states, strict=True):
        r.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


class SliceSampler:
    """Draws augmented 2D training samples from the subjects, seeded.

    With ``context_mm`` > 0 a sample has three channels, the slice between its
    neighbours (as :func:`~discquant.segment.preprocess.with_context` builds them at
    inference); one sample in ten repeats the slice instead, as a single-slice input does.
    """

    #: Share of 2.5D samples whose neighbours are the slice itself (single-slice inputs).
    SINGLE_SLICE_SHARE = 0.1

    def __init__(
        self,
        subjects: Sequence[TrainSubject],
        *,
        patch: int,
        seed: int,
        phantom_weight: float,
        context_mm: float = 0.0,
    ) -> None:
        self.subjects = list(subjects)
        self.patch = patch
        self.context_mm = context_mm
        self.rng = np.random.default_rng(seed)
        self.augment = make_augment(patch, seed)
        has_phantom = any(s.dataset == "phantom" for s in self.subjects)
        w = np.array(
            [
                (phantom_weight if s.dataset == "phantom" else 1.0 - phantom_weight)
                if has_phantom
                else 1.0
                for s in self.subjects
            ],
            dtype=float,
        )
        # Each dataset gets its share; within a dataset, subjects are equally likely.
        counts: dict[str, int] = {}
        for s in self.subjects:
            counts[s.dataset] = counts.get(s.dataset, 0) + 1
        w = w / np.array([counts[s.dataset] for s in self.subjects])
        self.p = w / w.sum()

    def sample(self) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, ...]]]:
        s = self.subjects[int(self.rng.choice(len(self.subjects), p=self.p))]
        k = int(self.rng.choice(s.slices))
        img = s.image[k][None]
        if self.context_mm > 0:
            off = context_offset(s.slice_mm, self.context_mm)
            if self.rng.random() < self.SINGLE_SLICE_SHARE:
                off = 0
            img = s.image[neighbour_slices(k, s.image.shape[0], off)]
        tgt = s.target[k].astype(np.int32)
        # Pre-crop around a labelled pixel most of the time, so that small discs are seen.
        big = int(self.patch * 1.4)
        fg = np.argwhere((tgt > 0) & (tgt != IGNORE))
        if len(fg) and self.rng.random() < 0.8:
            cy, cx = fg[int(self.rng.integers(len(fg)))]
        else:
            cy, cx = self.rng.integers(tgt.shape[0]), self.rng.integers(tgt.shape[1])
        y0 = int(np.clip(cy - big // 2, 0, max(tgt.shape[0] - big, 0)))
        x0 = int(np.clip(cx - big // 2, 0, max(tgt.shape[1] - big, 0)))
        img = img[:, y0 : y0 + big, x0 : x0 + big]
        tgt = tgt[y0 : y0 + big, x0 : x0 + big]
        if self.rng.random() < 0.15:  # contrast inversion (T1/T2 robustness)
            img = 1.0 - img
        d = self.augment(
            {"image": img.astype(np.float32), "label": (tgt[None] + 1).astype(np.float32)}
        )
        lab = torch.as_tensor(np.asarray(d["label"]))[0].round().long()
        lab = torch.where(lab == 0, torch.full_like(lab, IGNORE), lab - 1)
        return torch.as_tensor(np.asarray(d["image"])).float(), lab, s.groups

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, list[list[tuple[int, ...]]]]:
        items = [self.sample() for _ in range(n)]
        return (
            torch.stack([i[0] for i in items]),
            torch.stack([i[1] for i in items]),
            [i[2] for i in items],
        )


def _set_seeds(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - libraries that draw from the global state
    torch.manual_seed(seed)


def save_model(net: torch.nn.Module, config: TrainConfig, path: Path, **extra: Any) -> None:
    """Write weights in the shipped format: float16 state dict plus ``meta``."""
    meta = {
        "classes": list(config.classes),
        "channels": list(config.channels),
        "num_res_units": config.num_res_units,
        "spacing_mm": config.spacing_mm,
        "context_mm": config.context_mm,
        "format": "discquant-segment-v1",
        **extra,
    }
    state = {k: v.detach().half() for k, v in net.state_dict().items()}
    save_torch_file({"meta": meta, "state_dict": state}, path)


def validate(
    net: torch.nn.Module,
    subjects: Sequence[TrainSubject],
    class_names: Sequence[str],
    *,
    context_mm: float = 0.0,
) -> dict[str, float]:
    """Dice of each labelled group (not background) over each validation subject, on the
    pixels whose label is certain about the group (``network.dice_pixels``), keyed
    ``subject/classes`` (``sub-fcs20/disc``; a group of several classes joins their names
    with ``+``). The keys were ``sub-fcs20/group1``: which class that was depended on the
    set's labelled classes."""
    net.eval()
    out: dict[str, float] = {}
    with torch.no_grad():
        for s in subjects:
            idx = s.slices
            x = torch.from_numpy(s.image[:, None])
            if context_mm > 0:
                x = with_context(x, context_offset(s.slice_mm, context_mm))
            x, (h, w) = pad_to_multiple(x[idx], 16)
            probs = []
            for i in range(0, x.shape[0], 8):
                probs.append(torch.softmax(net(x[i : i + 8]), dim=1)[:, :, :h, :w])
            p = torch.cat(probs)
            pred = p.argmax(1).numpy()
            tgt = s.target[idx]
            for gi in dice_groups(s.groups):
                pos, neg = dice_pixels(s.groups, gi)
                counted = np.isin(tgt, pos + neg)  # pixels whose label is certain about gi
                pm = np.isin(pred, s.groups[gi]) & counted
                tm = np.isin(tgt, pos)
                # not monai's compute_dice: both empty gives no score here, NaN or 1.0 there
                denom = pm.sum() + tm.sum()
                if denom:
                    group = "+".join(class_names[c] for c in s.groups[gi])
                    out[f"{s.name}/{group}"] = float(2 * (pm & tm).sum() / denom)
    net.train()
    return out


# data_root is a path relative to where the command runs (and data move): a resume is
# checked against the subjects found instead (_subjects_problem).
_NOT_IN_THE_WEIGHTS = ("threads", "log_every", "val_every", "checkpoint_every",
                       "max_steps_this_run", "data_root", "phantom_cache",
                       "patient_groups")  # fmt: skip
_RUN_FILES = ("config.json", "log.jsonl", "best.pt", "model.pt")
"""What a run writes beside its checkpoint ``last.pt``."""


def _resume_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings a checkpoint's weights, optimiser and schedule depend on (without
    ``labelled_sets`` when there are none, as checkpoints made before it existed)."""
    settings = {k: v for k, v in asdict(config).items() if k not in _NOT_IN_THE_WEIGHTS}
    if not settings["labelled_sets"]:
        del settings["labelled_sets"]
    return settings


def _checkpoint_settings(ck: Any) -> dict[str, Any] | None:
    """The settings a checkpoint was trained with; for checkpoints that did not store
    them, the schedule's length at least (OneCycleLR keeps ``total_steps``)."""
    if not isinstance(ck, dict):
        return None
    if isinstance(ck.get("settings"), dict):
        return dict(ck["settings"])
    total = ck.get("sched", {}).get("total_steps") if isinstance(ck.get("sched"), dict) else None
    return None if total is None else {"steps": int(total)}


def _changed_settings(earlier: dict[str, Any], config: TrainConfig) -> list[str]:
    """The settings of ``config`` that differ from ``earlier`` (a checkpoint's stored
    settings, or an earlier run's config.json); only the keys ``earlier`` holds count
    (older checkpoints stored fewer)."""
    current = _resume_settings(config)
    return sorted(k for k in current if k in earlier and earlier[k] != current[k])


def _subjects_problem(earlier: dict[str, list[str]], now: dict[str, list[str]]) -> str | None:
    """Why a checkpoint trained on the subjects ``earlier`` may not go on with ``now``
    (``{"train": [...], "validation": [...]}``), or None when they are the same."""

    def first_few(names: set[str]) -> str:
        shown = sorted(names)[:3]
        return ", ".join(shown) + (" ..." if len(names) > len(shown) else "")

    parts = []
    for side in ("train", "validation"):
        before, after = set(earlier.get(side, [])), set(now.get(side, []))
        if after - before:
            parts.append(f"{side} now also {first_few(after - before)}")
        if before - after:
            parts.append(f"{side} no longer {first_few(before - after)}")
    if not parts:
        return None
    return (
        f"this checkpoint was trained on other subjects ({'; '.join(parts)}): the data "
        "(data_root, labelled_sets) changed; resume on the same data or use another --out folder"
    )


def _refuse_an_earlier_run(out_dir: Path, config: TrainConfig) -> None:
    """Refuse an ``out_dir`` without a checkpoint that holds an earlier run's files
    (:data:`_RUN_FILES`) of another configuration, or of a configuration its missing or
    unreadable config.json cannot tell: the new run would mix its log and ``best.pt``
    with that run's. An earlier run of the same configuration (killed before its first
    checkpoint) is started over by :func:`train`."""
    found = [name for name in _RUN_FILES if (out_dir / name).exists()]
    if not found:
        return
    if "model.pt" in found:  # a finished run whose last.pt was removed: not started over
        raise InvalidInputError(
            "the output folder holds a finished run's model.pt without its checkpoint "
            "last.pt; use another --out folder (or remove model.pt to train it again)",
            path=out_dir / "model.pt",
        )
    saved = out_dir / "config.json"
    try:
        earlier = json.loads(saved.read_text())
    except (OSError, ValueError):
        earlier = None
    if not isinstance(earlier, dict):
        raise InvalidInputError(
            f"the output folder holds an earlier run's {', '.join(found)} without a readable "
            "config.json saying how it was trained; use another --out folder",
            path=out_dir,
        )
    changed = _changed_settings(earlier, config)
    if changed:
        raise InvalidInputError(
            f"the output folder holds an earlier run ({', '.join(found)}) with other settings "
            f"({', '.join(changed)}) and no checkpoint; use another --out folder",
            path=saved,
        )


def check_patient_split(config: TrainConfig, available: set[str]) -> None:
    """Refuse a split that puts one patient's volumes on both sides.

    ``available``: the real volumes under ``data_root``; without ``train_subjects`` the
    training side is every available volume not held out. A volume named in two groups
    is refused too. Raises :class:`~discquant.errors.InvalidInputError`.
    """
    seen: dict[str, int] = {}
    for k, group in enumerate(config.patient_groups):
        for name in group:
            if seen.setdefault(name, k) != k:
                raise InvalidInputError(f"patient_groups names {name} in two groups")
    val = set(config.val_subjects)
    trained = set(config.train_subjects) if config.train_subjects is not None else available
    trained = trained - val
    for group in config.patient_groups:
        held_out = sorted(val.intersection(group))
        trained_on = sorted(trained.intersection(group))
        if held_out and trained_on:
            raise InvalidInputError(
                f"{', '.join(held_out)} (validation) and {', '.join(trained_on)} (training) "
                "are one patient (patient_groups): put them on one side"
            )


def _with_session_groups(config: TrainConfig, available: set[str]) -> TrainConfig:
    """``config`` with the sessions of one subject (``sub-X_ses-*``) as one patient in
    ``patient_groups``, and ``sub-X`` in ``val_subjects``/``train_subjects`` standing for
    all its sessions (one patient's sessions on both sides of the split leaked)."""
    from discquant.io.load import patient_of

    sessions: dict[str, list[str]] = {}
    for name in sorted(available):
        if patient_of(name) != name:
            sessions.setdefault(patient_of(name), []).append(name)
    if not sessions:
        return config

    def expand(names: list[str]) -> list[str]:
        return [m for n in names for m in (sessions.get(n, [n]) if n not in available else [n])]

    groups = [list(g) for g in config.patient_groups]
    grouped = {n for g in groups for n in g}
    groups += [names for names in sessions.values() if len(names) > 1 and not grouped & set(names)]
    return replace(
        config,
        patient_groups=groups,
        val_subjects=expand(list(config.val_subjects)),
        train_subjects=None if config.train_subjects is None else expand(config.train_subjects),
    )


def train(config: TrainConfig, out_dir: Path) -> Path:
    """Train (or resume) and return the path of the final ``model.pt``.

    Nothing is written to ``out_dir`` before the data are loaded and a checkpoint found
    there (``last.pt``) is known to fit ``config``.
    """
    problem = settings_problem(config)  # again: a config built in code was not checked
    if problem:
        raise InvalidInputError(f"invalid training configuration: {problem}")
    if config.steps < MIN_STEPS:
        # OneCycleLR warms up over the first 10 % of the steps and divides by their count.
        raise InvalidInputError(f"steps is {config.steps}; a run needs at least {MIN_STEPS}")
    torch.set_num_threads(config.threads)
    _set_seeds(config.seed)
    root = Path(config.data_root) if config.data_root is not None else None
    if root is not None and not root.is_dir():
        raise InputNotFoundError(
            "real-data folder not found (data_root is relative to the folder the command "
            "runs in; data_root: null trains on labelled_sets alone)",
            path=root,
        )
    available = real_subject_names(root) if root is not None else set()
    set_pairs = []  # each labelled set's (subject, image, label map), found once
    for labelled in config.labelled_sets:
        if not Path(labelled.root).is_dir():
            raise InputNotFoundError(
                "labelled set folder not found (root is relative to the folder the command "
                "runs in)",
                path=Path(labelled.root),
            )
        pairs = labelled_set_pairs(Path(labelled.root), labelled.image_suffix, labelled.labels)
        set_pairs.append(pairs)
        names_here = {subject for subject, _, _ in pairs}
        if clash := sorted(available & names_here):
            raise InvalidInputError(
                f"{', '.join(clash[:3])} also in another set: subject names must differ "
                "between sets (the split and the validation scores go by name)",
                path=Path(labelled.root),
            )
        available |= names_here
    config = _with_session_groups(config, available)
    check_patient_split(config, available)
    names = None
    if config.train_subjects is not None:
        names = list(config.train_subjects) + list(config.val_subjects)
    real = []
    if root is not None:
        real = load_real_subjects(
            root,
            config.classes,
            spacing_mm=config.spacing_mm,
            names=names,
            ignore_above_mm=config.ignore_above_label_mm,
        )
    for labelled, pairs in zip(config.labelled_sets, set_pairs, strict=True):
        real += load_labelled_set(
            Path(labelled.root),
            config.classes,
            labelled=labelled.labelled,
            whole_vertebrae=labelled.whole_vertebrae,
            spacing_mm=config.spacing_mm,
            pairs=pairs,
            names=names,
            ignore_above_mm=config.ignore_above_label_mm,
        )
    unknown = sorted(set(names or config.val_subjects) - {s.name for s in real})
    if unknown:
        # a mistyped held-out subject would silently be trained on. Not "real", nor the
        # first set's folder alone: the subject is looked for in every set (an audit)
        where = [str(root)] if root is not None else []
        where += [str(ls.root) for ls in config.labelled_sets]
        raise InvalidInputError(
            f"no subject named {', '.join(unknown)} (train_subjects/val_subjects) in "
            f"{', '.join(where) or 'no data set'}: subjects are labelled volumes, never "
            "phantoms"
        )
    val = [s for s in real if s.name in config.val_subjects]
    train_set = [s for s in real if s.name not in config.val_subjects]
    if config.phantom_train_seeds:
        train_set += phantom_subjects(
            config.phantom_train_seeds,
            config.classes,
            spacing_mm=config.spacing_mm,
            cache_dir=Path(config.phantom_cache) if config.phantom_cache else None,
        )
    if not train_set:
        raise InvalidInputError("no training subjects found", path=root)
    taught = classes_taught_alone(train_set)
    untaught = [c for i, c in enumerate(config.classes) if c != "background" and i not in taught]
    # The nucleus and the canal are measured through (nucleus ADC, CSF ratios): never
    # taught, they are drawn anywhere and the values read wrong without a flag, so the
    # run is refused. The others show in the level naming's flags: said, not refused.
    measured = [c for c in untaught if c in ("nucleus", "canal")]
    if measured:
        raise InvalidInputError(
            f"no training subject labels {', '.join(measured)} on its own (a user's label "
            "maps mark the whole disc, not its nucleus; the phantoms label the nucleus and "
            "the canal): add phantom_train_seeds, or leave it out of classes"
        )
    if untaught:
        # the phantoms' vertebrae hold their posterior elements ("body or background"),
        # so more phantoms never teach the body (a review)
        logger.warning(
            "no training subject labels %s on its own: the model will not learn it%s",
            ", ".join(untaught),
            "; label vertebral bodies alone (a labelled set with whole_vertebrae: false) "
            "or keep the project's sets (data_root), whose lumbar-t2-vertebrae does"
            if "body" in untaught
            else "",
        )
    logger.info(
        "training on %d subjects (%s), validating on %s",
        len(train_set),
        ", ".join(s.name for s in train_set[:12]),
        [s.name for s in val],
    )
    net = build_network(
        n_classes=len(config.classes),
        channels=config.channels,
        num_res_units=config.num_res_units,
        in_channels=3 if config.context_mm > 0 else 1,
    )
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.1
    )
    loss_fn = MarginalDiceCELoss(certain_pixels=config.dice_certain_pixels)
    sampler = SliceSampler(
        train_set,
        patch=config.patch,
        seed=config.seed,
        phantom_weight=config.phantom_weight,
        context_mm=config.context_mm,
    )
    step = 0
    best = -1.0
    resumed_running: list[float] = []
    elapsed_before_s = 0.0  # the training time of the runs this one resumes
    subjects = {
        "train": sorted(s.name for s in train_set),
        "validation": sorted(s.name for s in val),
    }
    # What a user's model was trained on, in its meta: it held the classes and the step
    # alone, so nothing told which volumes it had seen (an audit).
    lineage = {
        "subjects": subjects,
        "data_root": None if root is None else str(root.resolve()),
        "labelled_sets": [str(Path(ls.root).resolve()) for ls in config.labelled_sets],
        "phantom_train_seeds": len(config.phantom_train_seeds),
        # the settings the weights depend on (not threads nor a run's step budget, so
        # that best.pt and model.pt of a resumed run carry one hash: a review)
        "settings_sha256": hashlib.sha256(
            json.dumps(_resume_settings(config), sort_keys=True, default=str).encode()
        ).hexdigest(),
    }
    last = out_dir / "last.pt"
    resumed = last.exists()
    if resumed:
        ck = read_torch_file(last, what="training checkpoint")
        changed = _changed_settings(_checkpoint_settings(ck) or {}, config)
        if changed:
            raise InvalidInputError(
                f"this checkpoint was trained with other settings ({', '.join(changed)}); "
                "resume with the same configuration or use another --out folder",
                path=last,
            )
        # checkpoints made before the subjects were stored are not checked
        stored = ck.get("subjects") if isinstance(ck, dict) else None
        problem = _subjects_problem(stored, subjects) if isinstance(stored, dict) else None
        if problem:
            raise InvalidInputError(problem, path=last)
        try:
            net.load_state_dict(ck["model"])
            opt.load_state_dict(ck["opt"])
            sched.load_state_dict(ck["sched"])
            step = int(ck["step"])
            best = float(ck.get("best", -1.0))
            resumed_running = [float(v) for v in ck.get("running", [])]
            elapsed_before_s = float(ck.get("elapsed_s", 0.0))
            sampler.rng.bit_generator.state = ck["sampler_rng"]
            torch.set_rng_state(ck["torch_rng"])
            if "augment_rng" in ck:
                set_random_states(sampler.augment, ck["augment_rng"])
            else:  # a checkpoint from before the states were saved: reseeded, not identical
                sampler.augment.set_random_state(seed=config.seed + step)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            # another configuration's checkpoint (other network, other optimiser)
            raise not_a_model(last, "training checkpoint for this configuration", exc) from exc
        logger.info("resumed from %s at step %d", last, step)
        # Lines logged after that checkpoint by the run that stopped are logged again
        # now: they were kept, and the log held steps 25, 25, 30 ...
        keep_jsonl_lines(
            out_dir / "log.jsonl", lambda r: not isinstance(r.get("step"), int) or r["step"] <= step
        )
    else:
        _refuse_an_earlier_run(out_dir, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resumed:  # the same configuration, killed before its first checkpoint: anew
        for name in _RUN_FILES:
            (out_dir / name).unlink(missing_ok=True)
    (out_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    log = (out_dir / "log.jsonl").open("a")
    t0 = time.time() - elapsed_before_s  # elapsed_s counts the whole run, not this part
    run_steps = 0
    # the losses since the last log line, kept in the checkpoint: the first line after a
    # resume averaged only the steps run since
    running: list[float] = resumed_running
    net.train()

    def checkpoint() -> None:
        save_torch_file(
            {
                "model": net.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "step": step,
                "best": best,
                "sampler_rng": sampler.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "augment_rng": random_states(sampler.augment),
                "settings": _resume_settings(config),
                "subjects": subjects,
                "running": list(running),
                "elapsed_s": time.time() - t0,
            },
            last,
        )

    while step < config.steps:
        if config.max_steps_this_run is not None and run_steps >= config.max_steps_this_run:
            checkpoint()  # so that the next run starts here, not at the last multiple
            break
        x, y, groups = sampler.batch(config.batch_size)
        loss = loss_fn(net(x), y, groups)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        run_steps += 1
        running.append(loss.item())
        if step % config.log_every == 0 or step == config.steps:
            rec = {
                "step": step,
                "loss": float(np.mean(running)),
                "lr": sched.get_last_lr()[0],
                "elapsed_s": round(time.time() - t0, 1),
            }
            log.write(json.dumps(rec) + "\n")
            log.flush()
            logger.info("step %d loss %.4f", step, rec["loss"])
            running = []
        if val and (step % config.val_every == 0 or step == config.steps):
            scores = validate(net, val, config.classes, context_mm=config.context_mm)
            mean = float(np.mean(list(scores.values()))) if scores else 0.0
            log.write(json.dumps({"step": step, "val_dice_mean": mean, "val": scores}) + "\n")
            log.flush()
            if mean > best:
                best = mean
                save_model(net, config, out_dir / "best.pt", step=step, val_dice=mean, **lineage)
        if step % config.checkpoint_every == 0 or step == config.steps:
            checkpoint()
    log.close()
    final = out_dir / "model.pt"
    if step >= config.steps:
        save_model(net, config, final, step=step, **lineage)
    return final
