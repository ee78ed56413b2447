"""Training of the Pfirrmann network: patient-level splits, cross-validation, shipped model.

``run_training(config, out)`` writes to ``out``:

- ``splits.json``: the held-out test patients (never trained on by any network) and
  the cross-validation fold of every other patient;
- ``log.jsonl``: one line per epoch (fold, epoch, loss, learning rate);
- ``cv_predictions.tsv`` (subject, level, reference_grade, predicted, expected,
  p1..p5; :func:`read_predictions` reads it) and ``cv_metrics.json`` when
  cross-validation is on. The reference is not in a column named ``grade``: that is
  ``discquant evaluate grade``'s default column, which then compared the reference with
  itself;
- ``pfirrmann.pt`` (the shipped model: with ``ship: final`` one network trained on every
  non-held-out patient; with ``ship: folds`` the mean of the cross-validation fold
  networks), ``holdout_predictions.tsv`` and ``holdout_metrics.json``;
- ``checkpoints/``: the model after each fold and the final one. A fold checkpoint
  already in ``out`` that was trained with the same settings (its ``config_sha256``) on
  the same patients (its sorted ``train_subjects``, ``validation_subjects`` and
  ``holdout_subjects``) is reused rather than retrained, so an interrupted run resumes at
  the fold it stopped in, and folds run in separate processes (``cv_folds``) can be
  gathered into one ``ship: folds`` run by copying their checkpoints into its ``out``;
  one trained on other settings or another split is refused;
- with ``init_model`` set, every network starts from that model's weights (fine-tuning;
  refused when it was trained on a patient the run scores), recorded in the metadata;
- with ``test_model`` set: ``test_predictions.tsv`` and ``test_metrics.json``, that
  model's grades of the configured discs of every patient it was not trained on (an
  external test, e.g. the shipped model on SPIDER). Patients it was trained on (its
  metadata's ``train_subjects``, or for the shipped model every patient of its data sets
  outside ``holdout_subjects``) are left out with a WARNING and counted under
  ``training_overlap`` in ``test_metrics.json``.

Every model written records the patients it trained on (``train_subjects``). The data
(gradings 1-5, images, the test model) is read and checked before ``out`` is created.

``target: herniation`` trains the same network with two outputs on SPIDER's
``disc_herniation`` (0/1) instead of the grade; its predictions hold ``herniation``,
``predicted`` and ``p_herniation`` and its metrics are binary (sensitivity,
specificity, balanced accuracy, prevalence; :func:`~discquant.evaluate.grading.
binary_agreement`).

Runs are deterministic for a seed on one CPU thread.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from discquant.errors import DiscquantError, InvalidInputError, ModelError
from discquant.grade.lineage import (
    check_init_patients,
    check_init_phantoms,
    model_training_subjects,
    read_init_model,
)
from discquant.grade.train_config import (
    AugmentConfig,
    GradeTrainConfig,
    config_problem,
    fold_config_sha256,
    uses_segmentation,
)
from discquant.jsonfiles import dumps_strict, keep_jsonl_lines

log = logging.getLogger(__name__)


SPLIT_KEYS = ("train_subjects", "validation_subjects", "holdout_subjects")
"""Metadata of a fold checkpoint naming its patients (sorted): part of the reuse check."""
PROJECT_SETS = ("sudirman", "spider")
"""The source names of the project's graded sets (``GradedDisc.source``)."""
LABELS_KEY = "train_labels_sha256"
"""Metadata of a fold checkpoint: SHA-256 of its training labels (subject, level, grade)."""


def _labels_sha256(rows: list[tuple[str, str, int]]) -> str:
    """SHA-256 of (subject, level, label) rows, sorted: a corrected gradings.tsv changes it."""
    text = "\n".join(f"{s}\t{lv}\t{g}" for s, lv, g in sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()


def _reusable_fold(path: Path, sha256: str, split: dict[str, Any]) -> list[Any] | None:
    """The member networks of a fold checkpoint trained with the same settings on the
    same patients, or None when there is no checkpoint.

    ``split`` holds the fold's sorted ``train_subjects``, ``validation_subjects`` and
    ``holdout_subjects``, and the hash of its training labels (``train_labels_sha256``):
    the settings hash does not cover which patients the data holds, and when the subject
    list changes the seeded split moves patients between folds, so a reused network
    would score patients it trained on; nor does it cover their grades.
    """
    from discquant.grade.ensemble import GradeEnsemble
    from discquant.grade.pfirrmann import load_pfirrmann_model

    if not path.is_file():
        return None
    model = load_pfirrmann_model(path)
    if model.metadata.get("config_sha256") != sha256:
        raise InvalidInputError(
            "fold checkpoint was trained with other settings; use a new --out directory",
            path=path,
        )
    if any(key not in model.metadata for key in SPLIT_KEYS):
        raise InvalidInputError(
            "fold checkpoint does not record which patients it was trained and validated "
            "on, so it cannot be reused safely; use a new --out directory",
            path=path,
        )
    for key in SPLIT_KEYS:
        if sorted(model.metadata[key]) != split[key]:
            what = key.removesuffix("_subjects").replace("_", " ")
            raise InvalidInputError(
                f"fold checkpoint was trained on another split of the patients (its {what} "
                "patients differ: the data's subject list changed); reusing it would score "
                "patients it trained on; use a new --out directory",
                path=path,
            )
    if model.metadata.get(LABELS_KEY) != split[LABELS_KEY]:
        # the settings and patients were checked, the grades were not: a corrected
        # gradings.tsv reused networks trained on the old grades
        raise InvalidInputError(
            "fold checkpoint was trained on other labels (the grades changed, or it predates "
            "the labels check); use a new --out directory",
            path=path,
        )
    net = model.network
    return list(net.members) if isinstance(net, GradeEnsemble) else [net]


def _refuse_other_folds(out: Path, sha256: str) -> None:
    """Refuse an ``out`` whose fold checkpoints were trained with other settings: a run
    without cross-validation would leave them and their ``cv_*`` results beside its own
    model, one folder describing two trainings."""
    from discquant.grade.pfirrmann import load_pfirrmann_model

    for path in sorted((out / "checkpoints").glob("fold*.pt")):
        if load_pfirrmann_model(path).metadata.get("config_sha256") != sha256:
            raise InvalidInputError(
                "the output folder holds cross-validation networks trained with other "
                "settings; use a new --out directory",
                path=path,
            )


def settings_problem(cfg: GradeTrainConfig) -> str | None:
    """Why ``cfg``'s values cannot train, or None: the first field out of its range.

    The types are checked when the file is read (:mod:`discquant.grade.train_config`);
    these ranges are checked by :func:`check_settings` before any image is segmented
    or file written (an unknown ``crop.normalise`` failed after segmenting every image, a
    negative ``lr`` after the output folder was made, ``augment.prob: 1.5`` ran).

    Returns
    -------
    str or None
        ``"<field> is <value>; <what it must be>"``.
    """
    crop, aug = cfg.crop, cfg.augment
    checks: list[tuple[str, Any, bool, str]] = [
        ("crop.slices", crop.slices, crop.slices >= 1 and crop.slices % 2 == 1,
         "it must be a positive odd number (the middle slice and as many on either side)"),
        ("crop.size_mm", crop.size_mm, min(crop.size_mm) > 0, "both must be above 0"),
        ("crop.shape", crop.shape, min(crop.shape) >= 1, "both must be at least 1"),
        ("crop.normalise", crop.normalise, crop.normalise in ("image", "crop"),
         "it must be image or crop"),
        ("augment.prob", aug.prob, 0 <= aug.prob <= 1, "it must be 0 to 1"),
        ("augment.rotate_deg", aug.rotate_deg, aug.rotate_deg >= 0, "it must be 0 or more"),
        ("augment.scale", aug.scale, 0 <= aug.scale < 1, "it must be 0 to below 1"),
        ("augment.translate_px", aug.translate_px, aug.translate_px >= 0, "it must be 0 or more"),
        ("augment.gamma", aug.gamma, 0 < aug.gamma[0] <= aug.gamma[1],
         "it must be [low, high] with 0 < low <= high"),
        ("augment.intensity_scale", aug.intensity_scale, aug.intensity_scale >= 0,
         "it must be 0 or more"),
        ("augment.intensity_shift", aug.intensity_shift, aug.intensity_shift >= 0,
         "it must be 0 or more"),
        ("augment.noise_std", aug.noise_std, aug.noise_std >= 0, "it must be 0 or more"),
        ("lr", cfg.lr, cfg.lr > 0, "it must be above 0"),
        ("weight_decay", cfg.weight_decay, cfg.weight_decay >= 0, "it must be 0 or more"),
        ("class_weight_power", cfg.class_weight_power, cfg.class_weight_power >= 0,
         "it must be 0 or more"),
        ("ordinal_weight", cfg.ordinal_weight, cfg.ordinal_weight >= 0, "it must be 0 or more"),
        ("soft_labels_phi", cfg.soft_labels_phi, cfg.soft_labels_phi >= 0,
         "it must be 0 (off) or more"),
        ("num_threads", cfg.num_threads, cfg.num_threads >= 1, "it must be at least 1"),
        ("max_steps", cfg.max_steps, cfg.max_steps is None or cfg.max_steps >= 1,
         "it must be at least 1 (or null)"),
    ]  # fmt: skip
    for name, value, ok, allowed in checks:
        if not ok:
            return f"{name} is {value!r}; {allowed}"
    return arch_problem(cfg.arch)


def arch_problem(arch: dict[str, Any]) -> str | None:
    """Why ``arch`` (the config's network settings) cannot build the grading network, or
    None. An unknown key was stored in the model's metadata as if it had been applied
    (``layerz`` trained the default network)."""
    from discquant.grade.pfirrmann import DEFAULT_ARCH

    unknown = sorted(str(k) for k in arch if k not in DEFAULT_ARCH)
    if unknown:
        return f"arch: unknown keys {unknown} (valid keys: {', '.join(DEFAULT_ARCH)})"
    a = {**DEFAULT_ARCH, **arch}
    for key, default in DEFAULT_ARCH.items():
        value, wants_list = a[key], isinstance(default, list)
        items = value if isinstance(value, list) else [value]
        if (
            isinstance(value, list) != wants_list
            or not items
            or any(type(v) is not int or v < 1 for v in items)
        ):
            kind = "a list of integers, each" if wants_list else "an integer"
            return f"arch.{key} is {value!r}; it must be {kind} at least 1"
    if len(a["layers"]) != 4 or len(a["block_inplanes"]) != 4:
        # MONAI's ResNet has four stages: three entries raised IndexError after this check
        # passed, and a fifth was dropped but stored in the metadata as applied (a review)
        return "arch.layers and arch.block_inplanes need one entry for each of the 4 stages"
    return None


def check_settings(cfg: GradeTrainConfig, path: Path | None = None) -> None:
    """Refuse a config that cannot run (:func:`config_problem`) or holds a value out of
    its range (:func:`settings_problem`): one line naming ``path`` (the config file, when
    known) and the field.

    Raises
    ------
    InvalidInputError
        The first problem found.
    """
    problem = config_problem(cfg) or settings_problem(cfg)
    if problem:
        raise InvalidInputError(f"invalid grade config: {problem}", path=path)


def subject_splits(
    subjects: list[str], *, seed: int, holdout: int, folds: int
) -> tuple[list[str], dict[str, int], list[str], int]:
    """:func:`patient_splits` over patients, given back by subject: the held-out subjects,
    each other subject's fold, the held-out patients and the number of patients left.

    The sessions of a subject (``sub-X_ses-Y``, :func:`discquant.io.load.patient_of`) are
    one patient, so
    they fall on one side together (one session held out and another trained on leaked).
    Names without a session split exactly as :func:`patient_splits` splits them.
    """
    from discquant.io.load import patient_of

    held_patients, fold_of_patient = patient_splits(
        [patient_of(s) for s in subjects], seed=seed, holdout=holdout, folds=folds
    )
    held_set = set(held_patients)
    held = sorted({s for s in subjects if patient_of(s) in held_set})
    fold_of = {
        s: fold_of_patient[patient_of(s)] for s in subjects if patient_of(s) in fold_of_patient
    }
    return held, fold_of, held_patients, len(fold_of_patient)


def patient_splits(
    subjects: list[str], *, seed: int, holdout: int, folds: int
) -> tuple[list[str], dict[str, int]]:
    """Held-out patients and a fold number (0..folds-1) for each other patient."""
    uniq = sorted(set(subjects))
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    held = sorted(order[:holdout])
    rest = order[holdout:]
    return held, {s: i % folds for i, s in enumerate(rest)}


def _augmenter(cfg: AugmentConfig, seed: int) -> Any:
    """MONAI random transforms (no flips: the A-P and S-I directions are anatomical)."""
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandAffine,
        RandGaussianNoise,
        RandScaleIntensity,
        RandShiftIntensity,
    )

    rot = np.deg2rad(cfg.rotate_deg)
    t = Compose(
        [
            RandAffine(
                prob=cfg.prob,
                rotate_range=(rot,),
                scale_range=(cfg.scale, cfg.scale),
                translate_range=(cfg.translate_px, cfg.translate_px),
                padding_mode="border",
            ),
            RandAdjustContrast(prob=cfg.prob / 2, gamma=cfg.gamma),
            RandScaleIntensity(prob=cfg.prob / 2, factors=cfg.intensity_scale),
            RandShiftIntensity(prob=cfg.prob / 2, offsets=cfg.intensity_shift),
            RandGaussianNoise(prob=cfg.prob / 2, std=cfg.noise_std),
        ]
    )
    t.set_random_state(seed=seed)
    return t


def class_weights(
    grades: npt.NDArray[np.int_], power: float, n_classes: int = 5
) -> npt.NDArray[np.float32]:
    """Weights ∝ count^-power over classes 1..n_classes, normalised to mean 1 over the samples."""
    counts = np.bincount(grades - 1, minlength=n_classes).astype(float)
    w = np.where(counts > 0, np.maximum(counts, 1.0) ** -power, 0.0)
    w = w / (w[grades - 1].mean())
    return w.astype(np.float32)


def soft_ordinal_targets(n_classes: int, phi: float) -> npt.NDArray[np.float32]:
    """SORD targets: row ``r`` is ``softmax_k(-phi × (k - r)²)``, the soft label of class r."""
    from scipy.special import softmax

    k = np.arange(n_classes, dtype=np.float64)
    return softmax(-phi * (k[None, :] - k[:, None]) ** 2, axis=1).astype(np.float32)


def train_network(
    crops: npt.NDArray[np.float32],
    grades: npt.NDArray[np.int_],
    cfg: GradeTrainConfig,
    *,
    seed: int,
    log_file: Path | None = None,
    tag: str = "final",
    init_state: dict[str, Any] | None = None,
    n_classes: int = 5,
) -> tuple[Any, list[float]]:
    """Train a network (from random weights, or from ``init_state`` when fine-tuning);
    returns it and the mean loss of each epoch.

    Loss: class-weighted cross-entropy plus ``ordinal_weight`` × the absolute error of the
    expected grade (penalises predictions far from the reference more than near ones).
    ``grades`` are classes 1..``n_classes`` (5 for Pfirrmann, 2 for a yes/no target,
    where the second term is the error of the "yes" probability).
    """
    import torch

    from discquant.grade.pfirrmann import build_network

    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    net = build_network(cfg.arch, in_channels=cfg.crop.slices, num_classes=n_classes)
    if init_state is not None:  # fine-tuning from trained weights
        net.load_state_dict(init_state)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = int(np.ceil(len(crops) / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total, 1))
    w = torch.from_numpy(class_weights(grades, cfg.class_weight_power, n_classes))
    gvals = torch.arange(1, n_classes + 1, dtype=torch.float32)
    aug = _augmenter(cfg.augment, seed)
    rng = np.random.default_rng(seed)
    y_all = torch.from_numpy(grades.astype(np.int64) - 1)
    soft = None
    if cfg.soft_labels_phi > 0:
        soft = torch.from_numpy(soft_ordinal_targets(n_classes, cfg.soft_labels_phi))
    losses: list[float] = []
    step = 0
    t0 = time.time()
    for epoch in range(cfg.epochs):
        net.train()
        order = rng.permutation(len(crops))
        tot, n = 0.0, 0
        for b in range(steps_per_epoch):
            if step >= total:
                break
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = torch.stack([torch.as_tensor(aug(crops[i])) for i in idx]).float()
            y = y_all[idx]
            logits = net(x)
            if soft is None:
                ce = torch.nn.functional.cross_entropy(logits, y, weight=w)
            else:  # weighted mean, as cross_entropy's weight= does for hard labels
                nll = -(soft[y] * torch.log_softmax(logits, 1)).sum(1)
                ce = (w[y] * nll).sum() / w[y].sum()
            expected = torch.softmax(logits, 1) @ gvals
            ordinal = (w[y] * (expected - (y + 1).float()).abs()).mean()
            loss = ce + cfg.ordinal_weight * ordinal
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            tot += float(loss.detach()) * len(idx)
            n += len(idx)
        if n == 0:
            break
        losses.append(tot / n)
        rec = {
            "tag": tag,
            "epoch": epoch,
            "loss": round(tot / n, 5),
            "lr": float(sched.get_last_lr()[0]),
            "steps": step,
            "seconds": round(time.time() - t0, 1),
        }
        log.info("%s", rec)
        if log_file is not None:
            with log_file.open("a") as f:
                f.write(json.dumps(rec) + "\n")
    net.eval()
    return net, losses


REFERENCE_COLUMN = "reference_grade"
"""Column of the reference grade in the ``*_predictions.tsv`` files (``predicted`` holds
the network's grade). Files written before it was named so call it ``grade``."""


def _write_predictions(
    path: Path, rows: list[tuple[str, str, int]], probs: npt.NDArray[np.float32]
) -> None:
    """A Pfirrmann predictions table: subject, level, the reference grade
    (:data:`REFERENCE_COLUMN`), the predicted one, the expected grade and p1..p5."""
    grades = np.arange(1, 6)
    with path.open("w") as f:
        header = ["subject", "level", REFERENCE_COLUMN, "predicted", "expected"]
        f.write("\t".join(header + [f"p{g}" for g in grades]) + "\n")
        for (s, lev, g), p in zip(rows, probs, strict=True):
            pr = "\t".join(f"{v:.4f}" for v in p)
            f.write(f"{s}\t{lev}\t{g}\t{int(np.argmax(p)) + 1}\t{float(p @ grades):.3f}\t{pr}\n")


def read_predictions(path: Path) -> Any:
    """A ``*_predictions.tsv`` of :func:`run_training` as a DataFrame, the reference grade
    in :data:`REFERENCE_COLUMN` also for files written when it was called ``grade``."""
    import pandas as pd

    frame = pd.read_csv(path, sep="\t")
    if REFERENCE_COLUMN not in frame.columns and {"grade", "predicted"} <= set(frame.columns):
        frame = frame.rename(columns={"grade": REFERENCE_COLUMN})
    return frame


def _write_binary_predictions(
    path: Path, rows: list[tuple[str, str, int]], probs: npt.NDArray[np.float32]
) -> None:
    """Yes/no predictions; ``rows`` hold the class 1 (no) or 2 (yes)."""
    with path.open("w") as f:
        f.write("subject\tlevel\therniation\tpredicted\tp_herniation\n")
        for (s, lev, c), p in zip(rows, probs, strict=True):
            f.write(f"{s}\t{lev}\t{c - 1}\t{int(np.argmax(p))}\t{float(p[1]):.4f}\n")


def _metrics(
    rows: list[tuple[str, str, int]], probs: npt.NDArray[np.float32], *, binary: bool = False
) -> dict[str, Any]:
    """Agreement overall and per level (grades 1-5, or yes/no classes 1-2 when ``binary``)."""
    from discquant.evaluate.grading import binary_agreement, grade_agreement

    ref = np.array([r[2] for r in rows])
    pred = probs.argmax(1) + 1

    def agree(m: npt.NDArray[np.bool_]) -> dict[str, Any]:
        if binary:
            return binary_agreement(ref[m] - 1, pred[m] - 1, scores=probs[m, 1]).to_dict()
        return grade_agreement(ref[m], pred[m]).to_dict()

    out: dict[str, Any] = {"all": agree(np.ones(len(rows), bool))}
    levels = sorted({r[1] for r in rows})
    for lev in levels:
        out[lev] = agree(np.array([r[1] == lev for r in rows]))
    return out


def _metrics_json(metrics: Any) -> str:
    """A metrics file: NaN (a level without a positive herniation case has no
    sensitivity) as null, since a bare NaN is not JSON."""
    return dumps_strict(metrics, indent=1)


def _drop_log_lines(path: Path, tag: str) -> None:
    """Remove the lines of network ``tag`` (and its ``tag-seedN`` members) from a
    log.jsonl before that network is trained again: a rerun appended a second copy."""

    def other(record: dict[str, Any]) -> bool:
        own = str(record.get("tag", ""))
        return own != tag and not own.startswith(f"{tag}-")

    keep_jsonl_lines(path, other)


def _member_seed(seed: int, fold: int, member: int) -> int:
    """Seed of a fold's ``member``-th network (member 0: the single-network seed)."""
    return seed + 1 + fold + 100 * member


def _with_tta(net: Any, cfg: GradeTrainConfig) -> Any:
    """Wrap a trained network so that it averages over the test-time shifts."""
    from discquant.grade.ensemble import GradeEnsemble

    if [tuple(s) for s in cfg.tta_shifts] in ([], [(0, 0)]):
        return net
    return GradeEnsemble([net], [(int(r), int(c)) for r, c in cfg.tta_shifts])


def _phantom_set(
    cache: Path, seeds: list[int], crop_kw: dict[str, Any]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int_], list[tuple[str, str, int]]]:
    """Phantom crops for ``seeds``, read from ``cache`` when it holds exactly those seeds."""
    from discquant.grade.data import phantom_crops

    if cache.is_file():
        try:
            z = np.load(cache, allow_pickle=False)
            if z["seeds"].tolist() == seeds and json.loads(str(z["crop"])) == json.loads(
                json.dumps(crop_kw)
            ):
                rows = [(str(s), str(lv), int(g)) for s, lv, g in z["rows"].tolist()]
                return z["crops"], z["grades"], rows
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            # a run killed while writing it left it cut short: made again
            log.warning("%s: unreadable phantom cache (%s); rendering it again", cache, exc)
    crops, grades, rows = phantom_crops(seeds, **crop_kw)
    tmp = cache.with_name(cache.stem + ".tmp.npz")  # renamed whole, never left half-written
    np.savez(
        tmp,
        crops=crops,
        grades=grades,
        rows=np.array(rows, dtype=str),
        seeds=np.array(seeds),
        crop=json.dumps(crop_kw),
    )
    tmp.replace(cache)
    return crops, grades, rows


def _locator_sha256(cfg: GradeTrainConfig, base: Path) -> str | None:
    """sha256 of the segmentation weights that place the crops; None when none does."""
    if not uses_segmentation(cfg):
        return None
    if cfg.segment_model is not None:
        return hashlib.sha256((base / cfg.segment_model).resolve().read_bytes()).hexdigest()
    from discquant.segment.infer import shipped_model_file

    return hashlib.sha256(shipped_model_file().read_bytes()).hexdigest()


def collect_discs(cfg: GradeTrainConfig, *, base: Path) -> list[Any]:
    """Graded discs from the configured sets (paths relative to ``base``)."""
    from discquant.grade.data import graded_discs, spider_discs, sudirman_discs

    seg = None if cfg.segment_model is None else (base / cfg.segment_model).resolve()
    names: set[str] = set()
    for folder in cfg.graded_sets:  # before any image is read
        root = (base / folder).resolve()
        if root.name in PROJECT_SETS:
            raise InvalidInputError(
                f"a graded set may not be named {root.name!r}, as the project's set is: "
                "models record their training sets by name, so its subjects would count "
                "as that set's patients; rename the folder",
                path=root,
            )
        if root.name in names:
            raise InvalidInputError(
                f"two sets named {root.name!r}: a graded set is named by its folder; "
                "rename one folder",
                path=root,
            )
        names.add(root.name)
    discs = []
    if cfg.sudirman is not None:
        discs += sudirman_discs(
            (base / cfg.sudirman).resolve(), locate=cfg.sudirman_locate, segment_model=seg
        )
    if cfg.spider is not None:
        discs += spider_discs((base / cfg.spider).resolve(), segment_model=seg)
    for folder in cfg.graded_sets:
        root = (base / folder).resolve()
        here = graded_discs(root, root.name, segment_model=seg)
        seen = {d.subject: d.source for d in discs}
        if clash := sorted({d.subject for d in here if d.subject in seen}):
            raise InvalidInputError(
                f"{', '.join(clash[:3])} also in {seen[clash[0]]}: subject names must differ "
                "between sets (folds and held-out patients are drawn by name)",
                path=root,
            )
        discs += here
    if not discs:
        named = [(base / f).resolve() for f in (cfg.sudirman, cfg.spider, *cfg.graded_sets) if f]
        if len(named) == 1:  # it blamed the config, which did name a set (an audit)
            raise InvalidInputError("no graded disc in this set", path=named[0])
        if named:
            raise InvalidInputError(
                "no graded disc in the sets it names: " + ", ".join(map(str, named))
            )
        raise InvalidInputError("the grade config names no training data")
    return discs


def run_training(cfg: GradeTrainConfig, out: Path, *, base: Path = Path(".")) -> dict[str, Any]:
    """Splits, optional cross-validation, final model and held-out evaluation (see module doc)."""
    import torch

    from discquant.grade.data import build_crops
    from discquant.grade.ensemble import GradeEnsemble
    from discquant.grade.pfirrmann import (
        PfirrmannModel,
        predict_probabilities,
        save_pfirrmann_model,
    )

    check_settings(cfg)  # again: the CLI's overrides and configs built in code skip it
    torch.set_num_threads(cfg.num_threads)
    # Everything that reads the user's data (gradings, images, the test model) runs before
    # ``out`` is created: bad input leaves no half-written run behind.
    binary = cfg.target == "herniation"
    init = read_init_model(cfg, base=base)
    discs = collect_discs(cfg, base=base)
    if binary:
        discs = [d for d in discs if d.herniation is not None]
        if not discs:
            raise InvalidInputError("target herniation needs discs graded for it (SPIDER)")
    n_classes = 2 if binary else 5
    grades = np.array([(d.herniation or 0) + 1 if binary else d.grade for d in discs])
    crop_kw = cfg.crop.model_dump()
    crops = build_crops(discs, **crop_kw)
    rows = [(d.subject, d.level, int(g)) for d, g in zip(discs, grades, strict=True)]
    write_predictions = _write_binary_predictions if binary else _write_predictions
    subjects = [d.subject for d in discs]
    held, fold_of, held_patients, left = subject_splits(
        subjects, seed=cfg.seed, holdout=cfg.holdout_patients, folds=cfg.folds
    )
    if (cfg.cross_validate and left < cfg.folds) or (cfg.train_final and left < 1):
        # A fold with nobody to score (or a final network with nobody to train on) would
        # be trained and reported on nothing.
        raise InvalidInputError(
            f"holdout_patients {cfg.holdout_patients} leaves {left} of "
            f"{left + len(held_patients)} patients to train on"
            + (f", fewer than the {cfg.folds} folds" if cfg.cross_validate else "")
            + ": lower holdout_patients (or folds)"
        )
    test = None
    if cfg.test_model is not None:
        test = _test_model(cfg, discs, rows, base=base, n_classes=n_classes)
    held_set = set(held)
    is_held = np.array([s in held_set for s in subjects])
    fold = np.array([fold_of.get(s, -1) for s in subjects])
    run_folds = list(range(cfg.folds)) if cfg.cv_folds is None else list(cfg.cv_folds)
    if init is not None:
        cv_scored = (
            {s for s, k in fold_of.items() if k in run_folds} if cfg.cross_validate else set()
        )
        check_init_patients(init, discs, held_set | cv_scored)
        check_init_phantoms(init, cfg)
    sha256 = fold_config_sha256(
        cfg, _locator_sha256(cfg, base), init.weights_sha256 if init else None
    )
    splits: dict[int, dict[str, Any]] = {}
    reused: dict[int, list[Any] | None] = {}
    if cfg.cross_validate:  # checkpoints of another run are refused before out is touched
        for k in run_folds:
            tr, te = (~is_held) & (fold != k), (~is_held) & (fold == k)
            splits[k] = {
                "train_subjects": sorted({s for s, t in zip(subjects, tr, strict=True) if t}),
                "validation_subjects": sorted({s for s, t in zip(subjects, te, strict=True) if t}),
                "holdout_subjects": list(held),
                "train_labels_sha256": _labels_sha256(
                    [r for r, t in zip(rows, tr, strict=True) if t]
                ),
            }
            reused[k] = _reusable_fold(out / "checkpoints" / f"fold{k}.pt", sha256, splits[k])
    else:  # this run leaves them, with their cv_* results, beside what it writes
        _refuse_other_folds(out, sha256)

    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    (out / "config.json").write_text(cfg.model_dump_json(indent=2))
    log_file = out / "log.jsonl"
    (out / "splits.json").write_text(json.dumps({"holdout": held, "folds": fold_of}, indent=1))
    summary: dict[str, Any] = {"n_discs": len(discs), "n_holdout_discs": int(is_held.sum())}
    sets = " + ".join(
        [n for n, p in (("sudirman", cfg.sudirman), ("spider", cfg.spider)) if p]
        + [(base / folder).resolve().name for folder in cfg.graded_sets]
    )
    train_subjects = sorted({s for s, h in zip(subjects, is_held, strict=True) if not h})
    meta = {
        "arch": cfg.arch or None, "seed": cfg.seed, "trained_on": sets, "target": cfg.target,
        "train_subjects": train_subjects,
    }  # fmt: skip
    if cfg.phantoms_train > 0:  # so that a later fine-tune does not test on them
        meta["phantom_train_seeds"] = [cfg.phantom_train_seed0, cfg.phantoms_train]
    if init is not None:  # provenance: what the networks were fine-tuned from
        meta["init_model"] = init.provenance

    if test is not None:
        summary["test"] = test.write(out)

    @functools.cache
    def phantom_train_set() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int_]]:
        """The phantom training crops, rendered (or read from the cache) once per run."""
        seeds = list(cfg.phantom_train_seeds)
        px, py, _ = _phantom_set(out / "phantoms_train.npz", seeds, crop_kw)
        return px, py

    def with_phantoms(
        x: npt.NDArray[np.float32], y: npt.NDArray[np.int_]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int_]]:
        """Training crops plus the phantom training studies."""
        if cfg.phantoms_train <= 0:
            return x, y
        px, py = phantom_train_set()
        return np.concatenate([x, px]), np.concatenate([y, py])

    with_phantoms_note = f"{sets} + {cfg.phantoms_train} phantom studies"

    fold_nets: list[tuple[Any, str]] = []  # (network, what it was trained on)
    if cfg.cross_validate:
        probs = np.zeros((len(discs), n_classes), np.float32)
        for k in run_folds:
            tr = (~is_held) & (fold != k)
            te = (~is_held) & (fold == k)
            x_tr, y_tr = crops[tr], grades[tr]
            fold_meta = {**meta, "seed": cfg.seed + 1 + k, "config_sha256": sha256, **splits[k]}
            if cfg.phantoms_in_folds and cfg.phantoms_train > 0:
                fold_meta["trained_on"] = with_phantoms_note
            ckpt = out / "checkpoints" / f"fold{k}.pt"
            members = reused[k]
            if members is not None:
                log.info("fold %d: reusing the networks in %s", k, ckpt)
            else:
                _drop_log_lines(log_file, f"fold{k}")  # of a run that stopped in this fold
                if cfg.phantoms_in_folds and cfg.phantoms_train > 0:
                    x_tr, y_tr = with_phantoms(x_tr, y_tr)
                members = [
                    train_network(
                        x_tr,
                        y_tr,
                        cfg,
                        seed=_member_seed(cfg.seed, k, j),
                        log_file=log_file,
                        tag=f"fold{k}" if j == 0 else f"fold{k}-seed{j}",
                        init_state=init.state(j) if init else None,
                        n_classes=n_classes,
                    )[0]
                    for j in range(cfg.seeds_per_fold)
                ]
            net = members[0] if len(members) == 1 else GradeEnsemble(members)
            probs[te] = predict_probabilities(_with_tta(net, cfg), crops[te])
            save_pfirrmann_model(PfirrmannModel(net, crop_kw, fold_meta), ckpt)
            fold_nets += [(m, str(fold_meta["trained_on"])) for m in members]
        cv = (~is_held) & np.isin(fold, run_folds)
        cv_rows = [r for r, c in zip(rows, cv, strict=True) if c]
        write_predictions(out / "cv_predictions.tsv", cv_rows, probs[cv])
        summary["cv"] = _metrics(cv_rows, probs[cv], binary=binary)
        (out / "cv_metrics.json").write_text(_metrics_json(summary["cv"]))

    shipped = None
    if cfg.train_final:
        x_tr, y_tr = with_phantoms(crops[~is_held], grades[~is_held])
        final_meta = {**meta, "trained_on": with_phantoms_note if cfg.phantoms_train else sets}
        _drop_log_lines(log_file, "final")  # of an earlier run in this folder
        net, losses = train_network(
            x_tr, y_tr, cfg, seed=cfg.seed, log_file=log_file, tag="final",
            init_state=init.state(0) if init else None, n_classes=n_classes,
        )  # fmt: skip
        summary["final_losses"] = losses
        save_pfirrmann_model(
            PfirrmannModel(_with_tta(net, cfg), crop_kw, final_meta),
            out / "checkpoints" / "final.pt",
        )
        if cfg.ship == "final":
            shipped, meta = _with_tta(net, cfg), final_meta
    if cfg.ship == "folds" and fold_nets:
        shifts = [(int(r), int(c)) for r, c in cfg.tta_shifts] or [(0, 0)]
        shipped = GradeEnsemble([net for net, _ in fold_nets], shifts)
        n_folds = len(fold_nets) // cfg.seeds_per_fold
        seeds = f" x {cfg.seeds_per_fold} seeds" if cfg.seeds_per_fold > 1 else ""
        meta = {**meta, "trained_on": f"mean of {n_folds} folds{seeds}: {fold_nets[0][1]}"}
    if shipped is not None:
        save_pfirrmann_model(
            PfirrmannModel(shipped, crop_kw, {**meta, "holdout_subjects": held}),
            out / "pfirrmann.pt",
        )
        summary.update(_test_shipped(cfg, shipped, crops, rows, is_held, out, binary=binary))
    return summary


def _test_shipped(
    cfg: GradeTrainConfig,
    net: Any,
    crops: npt.NDArray[np.float32],
    rows: list[tuple[str, str, int]],
    is_held: npt.NDArray[np.bool_],
    out: Path,
    *,
    binary: bool,
) -> dict[str, Any]:
    """Scores of the shipped network on the held-out patients and on unseen phantoms."""
    from discquant.grade.pfirrmann import predict_probabilities

    write_predictions = _write_binary_predictions if binary else _write_predictions
    result: dict[str, Any] = {}
    if is_held.any():
        hp = predict_probabilities(net, crops[is_held])
        h_rows = [r for r, h in zip(rows, is_held, strict=True) if h]
        write_predictions(out / "holdout_predictions.tsv", h_rows, hp)
        result["holdout"] = _metrics(h_rows, hp, binary=binary)
        (out / "holdout_metrics.json").write_text(_metrics_json(result["holdout"]))
    if cfg.phantoms_test > 0:
        crop_kw = cfg.crop.model_dump()
        pc, _, p_rows = _phantom_set(
            out / "phantoms_test.npz", list(cfg.phantom_test_seeds), crop_kw
        )
        pp = predict_probabilities(net, pc)
        _write_predictions(out / "phantom_predictions.tsv", p_rows, pp)
        result["phantom_test"] = _metrics(p_rows, pp)
        (out / "phantom_metrics.json").write_text(_metrics_json(result["phantom_test"]))
    return result


@dataclass
class _TestRun:
    """A test model's predictions and metrics, computed before the run writes anything."""

    rows: list[tuple[str, str, int]]
    probs: npt.NDArray[np.float32]
    metrics: dict[str, Any]
    binary: bool

    def write(self, out: Path) -> dict[str, Any]:
        """Write ``test_predictions.tsv`` and ``test_metrics.json``; return the metrics."""
        (_write_binary_predictions if self.binary else _write_predictions)(
            out / "test_predictions.tsv", self.rows, self.probs
        )
        (out / "test_metrics.json").write_text(_metrics_json(self.metrics))
        return self.metrics


def _test_model(
    cfg: GradeTrainConfig,
    discs: list[Any],
    rows: list[tuple[str, str, int]],
    *,
    base: Path,
    n_classes: int,
) -> _TestRun:
    """Grade the configured discs with ``cfg.test_model`` (its own crop settings).

    Only patients the model was not trained on are scored: a test on its own training
    patients would overstate its accuracy. The patients left out (found from the model's
    ``train_subjects`` or ``holdout_subjects`` metadata, :func:`model_training_subjects`)
    are logged as a WARNING and listed under ``training_overlap`` in ``test_metrics.json``;
    when the metadata cannot tell, every disc is scored, with a WARNING and
    ``training_overlap.known: false``.

    Parameters
    ----------
    cfg
        The run's config; ``test_model`` is a ``.pt`` file (relative to ``base``) or
        ``shipped`` for the packaged weights.
    discs, rows
        The configured discs and their prediction rows (subject, level, reference class).
    base
        Directory that relative paths are read from.
    n_classes
        Outputs the target needs (5 grades, or 2 for yes/no).

    Returns
    -------
    _TestRun
        Predictions and metrics (overall, per level, ``training_overlap``), to be written
        to ``test_predictions.tsv`` and ``test_metrics.json`` by its ``write(out)``.

    Raises
    ------
    InvalidInputError
        The model's outputs do not fit the target, or it was trained on every patient of
        the test data (nothing left to test).
    """
    from discquant.grade.data import build_crops
    from discquant.grade.pfirrmann import load_pfirrmann_model, predict_probabilities

    path = None if cfg.test_model == "shipped" else base / str(cfg.test_model)
    name = "the shipped model" if path is None else str(path)
    try:
        model = load_pfirrmann_model(path)
    except DiscquantError as exc:  # say which of the config's models it is
        raise ModelError(f"test_model: {exc.reason}", path=exc.path) from exc
    seen = model_training_subjects(dict(model.metadata), discs)
    overlap: dict[str, Any]
    if seen is None:
        log.warning(
            "test model %s records neither train_subjects nor holdout_subjects: cannot tell "
            "whether it was trained on the test patients; every disc is scored",
            name,
        )
        overlap = {"known": False, "left_out_patients": 0, "left_out_discs": 0}
        keep = [True] * len(discs)
    else:
        keep = [d.subject not in seen for d in discs]
        n_left = len(discs) - sum(keep)
        overlap = {"known": True, "left_out_patients": len(seen), "left_out_discs": n_left}
        if not any(keep):
            raise InvalidInputError(
                f"test model {name} was trained on every patient of the configured data "
                f"({len(seen)} patients); nothing is left to test it on",
                path=path,
            )
        if seen:
            log.warning(
                "test model %s was trained on %d of the %d test patients: their %d discs are "
                "left out of test_predictions.tsv and test_metrics.json (training_overlap)",
                name, len(seen), len({d.subject for d in discs}), n_left,
            )  # fmt: skip
    test_discs = [d for d, k in zip(discs, keep, strict=True) if k]
    test_rows = [r for r, k in zip(rows, keep, strict=True) if k]
    probs = predict_probabilities(model.network, build_crops(test_discs, **model.crop))
    if probs.shape[1] != n_classes:
        raise InvalidInputError(
            f"test model has {probs.shape[1]} outputs, target {cfg.target} needs {n_classes}",
            path=path,
        )
    binary = n_classes == 2
    metrics = _metrics(test_rows, probs, binary=binary)
    metrics["training_overlap"] = overlap
    return _TestRun(test_rows, probs, metrics, binary)
