"""Training data: real partially labelled volumes and phantom samples as 2D slices.

Every training subject is stored on the network grid (reoriented, normalised, resampled
in-plane) with a *group* map: each pixel holds the index of the group of network
classes it may belong to (see :class:`~discquant.segment.network.MarginalDiceCELoss`).

Real sets (``../shared/data``; cite as in the model card):

- ``lumbar-t2-discs`` (Menezes-Reis et al. 2016): disc masks 1..5 → group {disc,
  nucleus}; everything else → "not a disc", except what lies above the highest labelled
  disc (the unlabelled T12-L1 disc is there): ignored (:func:`unlabelled_above`).
- ``lumbar-t2-vertebrae`` (Chu et al. 2015 ``vb1x*``; Zukić et al. 2014 ``vb2x*``):
  vertebral-body instances numbered from the most inferior. In every ``vb1x*`` volume
  the lowest labelled body is the first sacral segment (it sits on the sacrum below the
  L5-S1 disc; checked by eye on all six), so it is the group {sacrum}; for ``vb2x*`` the
  lowest is L5 (the source says so). Unlabelled pixels → "not a body" (discs, canal and
  the rest of the sacrum are free there), except above the highest labelled body, where
  the next, unlabelled body is: ignored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from discquant.errors import InvalidInputError
from discquant.grid import reordered_onto
from discquant.io.nifti import read_volume
from discquant.io.study import Volume
from discquant.output_paths import bids_prefix
from discquant.results import (
    CANAL_LABEL,
    DISC_OFFSET,
    ENDPLATE_OFFSET,
    SACRUM_LABEL,
    SPINE_LABEL_VALUES,
)
from discquant.segment.levels import label_runs
from discquant.segment.network import IGNORE
from discquant.segment.preprocess import reorient, to_network_grid

logger = logging.getLogger(__name__)

Groups = list[tuple[int, ...]]


@dataclass
class TrainSubject:
    """One subject on the network grid.

    Attributes
    ----------
    name
        Subject id (``sub-fcs11`` …); the validation split is by this id.
    image
        ``(slices, rows, cols)`` float32, normalised.
    target
        ``(slices, rows, cols)`` uint8 group index (:data:`IGNORE` = unknown).
    groups
        Class-index groups for the target values.
    slices
        Slice indices worth sampling (those with labels, plus a margin).
    slice_mm
        Distance between slices (for the 2.5D context of :func:`~discquant.segment.
        preprocess.context_offset`).
    """

    name: str
    dataset: str
    image: npt.NDArray[np.float32]
    target: npt.NDArray[np.uint8]
    groups: Groups
    slices: list[int]
    slice_mm: float = 1.0


def load_nifti_volume(path: Path) -> Volume:
    """A NIfTI file as a float32 :class:`Volume`, with the importer's one-line errors
    (:func:`discquant.io.nifti.read_volume`) for missing or unreadable files."""
    return read_volume(path)


def _group_index(classes: Sequence[str], members: Sequence[str]) -> tuple[int, ...]:
    return tuple(classes.index(m) for m in members if m in classes)


def _others(classes: Sequence[str], excluded: Sequence[str]) -> tuple[int, ...]:
    return tuple(i for i, c in enumerate(classes) if c not in excluded)


def _label_to_grid(labels: npt.NDArray[np.integer], vol: Volume, spacing_mm: float) -> npt.NDArray:
    """Nearest-neighbour resampling of a label map exactly like the image's slices."""
    lab_vol = Volume(data=labels.astype(np.float32), affine=vol.affine)
    ro = reorient(lab_vol)
    stack = torch.from_numpy(np.moveaxis(ro.data, 2, 0)[:, None])
    from discquant.segment.preprocess import inplane_size

    sp = ro.spacing_mm
    size = inplane_size(ro.data.shape[:2], (sp[0], sp[1]), spacing_mm)
    if tuple(stack.shape[2:]) != size:
        # "nearest-exact" samples at pixel centres, as the image's bilinear resampling
        # (align_corners=False) does; plain "nearest" takes floor(i * scale) and put the
        # labels up to one input pixel before the image (tests/segment/test_data.py).
        stack = torch.nn.functional.interpolate(stack, size=size, mode="nearest-exact")
    return stack[:, 0].numpy().astype(np.int32)


def unlabelled_above(
    labels: npt.NDArray[np.integer],
    *,
    margin_px: int,
    window_px: int,
) -> npt.NDArray[np.bool_]:
    """Pixels superior to the highest labelled instance, on (slices, rows, cols) network
    slices whose rows run superior → inferior; ``labels`` holds instance numbers (0 = none).

    The real sets label some levels only (discs L1-L2 … L5-S1; bodies up to the top one
    annotated), so the disc or body above the highest labelled one is there in the image
    but carries the "not a disc" / "not a body" label. Those pixels are marked to be
    ignored instead. The highest instance (smallest mean row) is projected over the
    slices; in each column, every row more than ``margin_px`` above its highest pixel in
    the columns within ``window_px`` (which follows a tilted endplate) is ignored, in
    every slice; columns farther from it use its highest row.
    """
    from scipy.ndimage import minimum_filter1d

    values = [int(v) for v in np.unique(labels) if v > 0]
    if not values:
        return np.zeros(labels.shape, dtype=bool)
    highest = min(values, key=lambda v: float(np.nonzero(labels == v)[1].mean()))
    n_rows = labels.shape[1]
    rows = np.arange(n_rows)[:, None]
    projected = (labels == highest).any(axis=0)  # (rows, cols)
    top = np.where(projected, rows, n_rows).min(axis=0)  # n_rows = not in this column
    edge = minimum_filter1d(top, size=2 * window_px + 1, mode="nearest")
    edge = np.where(edge == n_rows, top.min(), edge)
    above = rows < (edge - margin_px)[None, :]
    return np.broadcast_to(above, labels.shape).copy()


def _subject(
    name: str,
    dataset: str,
    image_path: Path,
    target_of_label: dict[int, int] | Callable[[int], int],
    label_path: Path,
    groups: Groups,
    spacing_mm: float,
    margin: int = 3,
    ignore_above_mm: float | None = 2.0,
    values_problem: Callable[[list[int]], str | None] | None = None,
) -> TrainSubject:
    """One subject on the network grid; ``values_problem`` (of the label values found,
    sorted) says why a label map is in another convention (a one-line error naming it)."""
    vol = load_nifti_volume(image_path)
    label = read_volume(label_path)
    data = np.asarray(label.data)
    if np.issubdtype(data.dtype, np.floating) and not np.array_equal(data, np.rint(data)):
        # int() of 25.9999 made the sacrum (26) a vertebra (25), as evaluate refuses too
        raise InvalidInputError("label map holds non-integer values", path=label_path)
    raw = np.rint(data).astype(np.int32)
    # the image's grid stored in another voxel order (axes permuted or flipped, the
    # affine saying so) was refused on its shape, where evaluate reorders it (an audit)
    reordered = reordered_onto(raw, label.affine, vol.data.shape[:3], vol.affine)
    if reordered is not None:
        raw, label = reordered, Volume(reordered, vol.affine)
    if raw.shape[:3] != vol.data.shape[:3]:
        raise InvalidInputError(
            f"label map is not on the grid of {image_path.name} "
            f"(shape {raw.shape} against {vol.data.shape})",
            path=label_path,
        )
    if not np.allclose(label.affine, vol.affine, atol=1e-3):
        shift = float(np.abs(label.affine - vol.affine).max())
        raise InvalidInputError(
            f"label map is not on the grid of {image_path.name} (same shape, but the affines "
            f"differ by up to {shift:.3g} mm)",
            path=label_path,
        )
    values = [int(v) for v in np.unique(raw)]
    problem = values_problem(values) if values_problem is not None else None
    if problem:
        raise InvalidInputError(problem, path=label_path)
    if not (raw > 0).any():
        raise InvalidInputError("label map holds no labels", path=label_path)
    if callable(target_of_label):  # a rule per label value present (one read of the map)
        target_of_label = {int(v): target_of_label(int(v)) for v in np.unique(raw) if v > 0}
    ro = reorient(vol)
    image = to_network_grid(ro, spacing_mm=spacing_mm)[:, 0].numpy()
    lab = _label_to_grid(raw, vol, spacing_mm)
    target = np.zeros(lab.shape, dtype=np.uint8)
    for value, group in target_of_label.items():
        target[lab == value] = group
    if ignore_above_mm is not None:
        above = unlabelled_above(
            lab,
            margin_px=round(ignore_above_mm / spacing_mm),
            window_px=round(10.0 / spacing_mm),
        )
        target[above] = IGNORE
    has = np.nonzero((lab > 0).reshape(lab.shape[0], -1).any(axis=1))[0]
    lo, hi = max(int(has.min()) - margin, 0), min(int(has.max()) + margin, lab.shape[0] - 1)
    return TrainSubject(
        name=name,
        dataset=dataset,
        image=image.astype(np.float32),
        target=target,
        groups=groups,
        slices=list(range(lo, hi + 1)),
        slice_mm=ro.spacing_mm[2],
    )


SHARED_DATA_PATIENT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("sub-vb1x02", "sub-vb1x03"),
    ("sub-vb1x06", "sub-vb1x07", "sub-vb1x08"),
)
"""Volumes of ``lumbar-t2-vertebrae`` that are one patient, scanned with several
sequences: their masks agree at Dice 0.90–0.95 and the images side by side are the same
spine (checked by eye on 2026-12-04; the data's README does not say). The segmentation
trainer keeps each group on one side of its validation split."""


def real_subject_names(root: Path) -> set[str]:
    """Names of the labelled real volumes under ``root``, without reading them."""
    discs = (p.name.split("_")[0] for p in (root / "lumbar-t2-discs").glob("sub-*_T2w.nii.gz"))
    bodies = (p.name.split("_")[0] for p in (root / "lumbar-t2-vertebrae").glob("sub-*_mr.nii.gz"))
    return {*discs, *bodies}


def load_real_subjects(
    root: Path,
    classes: Sequence[str],
    *,
    spacing_mm: float,
    names: Sequence[str] | None = None,
    ignore_above_mm: float | None = 2.0,
) -> list[TrainSubject]:
    """Load the real disc and vertebra sets from ``root`` (``../shared/data``).

    ``ignore_above_mm``: ignore what lies this far above the highest labelled instance
    (:func:`unlabelled_above`); None teaches it as "not a disc" / "not a body", as the
    previous model (v1) was trained.
    """
    subjects: list[TrainSubject] = []
    disc_dir = root / "lumbar-t2-discs"
    disc_groups: Groups = [
        _others(classes, ("disc", "nucleus")),
        _group_index(classes, ("disc", "nucleus")),
    ]
    for img in sorted(disc_dir.glob("sub-*_T2w.nii.gz")):
        sub = img.name.split("_")[0]
        if names is not None and sub not in names:
            continue
        subjects.append(
            _subject(
                sub,
                "lumbar-t2-discs",
                img,
                dict.fromkeys(range(1, 6), 1),
                img.with_name(f"{sub}_dseg.nii.gz"),
                disc_groups,
                spacing_mm,
                ignore_above_mm=ignore_above_mm,
            )
        )
    vb_dir = root / "lumbar-t2-vertebrae"
    for img in sorted(vb_dir.glob("sub-*_mr.nii.gz")):
        sub = img.name.split("_")[0]
        if names is not None and sub not in names:
            continue
        seg = img.with_name(f"{sub}_vbseg.nii.gz")
        n_labels = int(read_volume(seg).data.max())
        lowest_is_s1 = sub.startswith("sub-vb1x")
        groups: Groups = [_others(classes, ("body",)), _group_index(classes, ("body",))]
        mapping = dict.fromkeys(range(1, n_labels + 1), 1)
        if lowest_is_s1 and "sacrum" in classes:
            groups.append(_group_index(classes, ("sacrum",)))
            mapping[1] = 2
        elif lowest_is_s1:
            mapping[1] = IGNORE
        subjects.append(
            _subject(
                sub, "lumbar-t2-vertebrae", img, mapping, seg, groups, spacing_mm,
                ignore_above_mm=ignore_above_mm,
            )
        )  # fmt: skip
    logger.info("loaded %d real subjects from %s", len(subjects), root)
    return subjects


def vertebra_truth_labels(subject: str, n_labels: int) -> dict[int, int]:
    """SPINEPS label of each instance of a ``lumbar-t2-vertebrae`` mask.

    ``vb1x*``: instance 1 is S1 (sacrum, 26) and 2 is L5; ``vb2x*``: instance 1 is L5.
    """
    if subject.startswith("sub-vb1x"):
        return {1: 26, **{k: 24 - (k - 2) for k in range(2, n_labels + 1)}}
    return {k: 24 - (k - 1) for k in range(1, n_labels + 1)}


LABELLED_CLASSES = ("disc", "body", "sacrum", "canal")
"""Classes a user's label maps can label, in the VerSe/SPINEPS convention discquant writes:
discs 100-128 (the nucleus inside them is not labelled apart), vertebrae 1-25, the sacrum
26, the spinal canal 61."""
LABEL_VALUES = {"disc": "discs 100-128", "body": "vertebrae 1-25", "sacrum": "sacrum 26",
                "canal": "canal 61"}  # fmt: skip
"""The label values of each of :data:`LABELLED_CLASSES`, in words."""
CONVENTION = (
    "vertebrae 1-25 (T13 28), sacrum 26, coccyx 27, spinal cord 60, canal 61, 62, "
    "discs 100-128, endplates 200-228"
)
"""Every value of the VerSe/SPINEPS convention a label map may hold (0: unlabelled):
:data:`discquant.results.SPINE_LABEL_VALUES`."""


def convention_class(value: int) -> str | None:
    """What a VerSe/SPINEPS label value stands for: one of :data:`LABELLED_CLASSES`;
    ``""`` for a value of the convention that no network class has (coccyx 27, T13 28,
    whose level the network does not name; spinal cord 60, 62; endplates 200-228); None
    for 0 and for a value outside the convention (:data:`CONVENTION`; until 2026-12-06
    discs 129-199 and endplates 229-299 passed here while the T2 import's label-map check
    did not know them, a review)."""
    if value not in SPINE_LABEL_VALUES:
        return None
    if 1 <= value <= 25:
        return "body"
    if DISC_OFFSET <= value < ENDPLATE_OFFSET:
        return "disc"
    return {SACRUM_LABEL: "sacrum", CANAL_LABEL: "canal"}.get(value, "")


def label_values_problem(values: Sequence[int], labelled: Sequence[str]) -> str | None:
    """Why a label map of a labelled set holding ``values`` (0 included) is not in the
    VerSe/SPINEPS convention for the classes ``labelled``, or None.

    A value outside the convention (negative, 1000), or a map without a voxel of any
    declared class (disc maps labelled 1-5, the source convention of lumbar-t2-discs,
    under ``labelled: [disc]``: every disc would be taught "not a disc"), is refused, as
    ``discquant evaluate segment`` refuses references in another convention.
    """
    outside = [v for v in values if v != 0 and convention_class(v) is None]
    expected = ", ".join(LABEL_VALUES[c] for c in labelled if c in LABEL_VALUES)
    if outside:
        return (
            f"label map holds {label_runs(outside)}, outside the VerSe/SPINEPS convention "
            f"({CONVENTION}); relabel it (labelled: {', '.join(labelled)} expects {expected})"
        )
    if not any(convention_class(v) in labelled for v in values):
        found = label_runs([v for v in values if v != 0]) or "0 only"
        return (
            f"label map holds {found} but no value of its declared classes ({expected}): "
            "another label convention? relabel it to VerSe/SPINEPS, or declare the classes "
            "it labels (labelled)"
        )
    return None


def labelled_set_pairs(
    root: Path, image_suffix: str = "_T2w", labels: str | None = None
) -> list[tuple[str, Path, Path]]:
    """``(subject, image, label map)`` for every ``sub-*_dseg.nii[.gz]`` under ``root`` (or
    under ``root/labels`` only, e.g. ``derivatives/manual``, when several pipelines' label
    maps lie under ``root``).

    The image is the file under ``root`` named ``<subject>_…<image_suffix>.nii[.gz]``
    (``<subject>`` is ``sub-X`` or ``sub-X_ses-Y``), so a BIDS dataset whose label maps lie
    in ``derivatives/<pipeline>`` beside the raw ``sub-X/anat/sub-X_T2w.nii.gz`` pairs up,
    as does ``discquant phantom --out``'s. When several images match, the one carrying
    every other entity of the label map (``acq-sag`` …, not ``desc-``) is taken. Label maps
    on another grid (``*_space-*``) and hidden folders are passed over.

    Raises
    ------
    InvalidInputError
        A label map without exactly one image, two label maps for one subject, or a
        ``labels`` folder that does not exist.
    """
    import re

    def visible(path: Path) -> bool:
        rel = path.relative_to(root)
        return not any(part.startswith(".") for part in rel.parts) and "_space-" not in path.name

    nifti = re.compile(r"\.nii(\.gz)?$")
    files = [f for f in sorted(root.rglob("sub-*.nii*")) if nifti.search(f.name) and visible(f)]
    label_root = root if labels is None else root / labels
    if not label_root.is_dir():
        raise InvalidInputError(f"labels folder {labels!r} not found under the set", path=root)
    pairs: dict[str, tuple[Path, Path]] = {}
    for label in (f for f in files if nifti.sub("", f.name).endswith("_dseg")):
        if not label.is_relative_to(label_root):
            continue
        entities = nifti.sub("", label.name).split("_")
        subject = bids_prefix(label.name) or entities[0]
        images = [
            f for f in files
            if f.name.startswith(f"{subject}_") and nifti.sub("", f.name).endswith(image_suffix)
        ]  # fmt: skip
        if len(images) > 1:  # the one with the label map's other entities (acq-sag, run-2)
            wanted = [e for e in entities[:-1] if "-" in e and not e.startswith("desc-")]
            images = [f for f in images if all(f"_{e}_" in f"_{f.name}" for e in wanted)]
        if len(images) != 1:
            found = ", ".join(str(f.relative_to(root)) for f in images) or "none"
            raise InvalidInputError(
                f"{subject}: needs exactly one {subject}_*{image_suffix}.nii[.gz] image for its "
                f"label map, found {found}",
                path=label,
            )
        if subject in pairs:
            raise InvalidInputError(
                f"two label maps for {subject}: {pairs[subject][1].relative_to(root)} and "
                f"{label.relative_to(root)} (labels: names the folder of one of them)",
                path=root,
            )
        pairs[subject] = (images[0], label)
    return [(sub, img, lab) for sub, (img, lab) in sorted(pairs.items())]


def load_labelled_set(
    root: Path,
    classes: Sequence[str],
    *,
    labelled: Sequence[str],
    whole_vertebrae: bool,
    spacing_mm: float,
    image_suffix: str = "_T2w",
    labels: str | None = None,
    pairs: list[tuple[str, Path, Path]] | None = None,
    names: Sequence[str] | None = None,
    ignore_above_mm: float | None = 2.0,
) -> list[TrainSubject]:
    """A user's own labelled volumes (VerSe/SPINEPS labels, :func:`labelled_set_pairs`).

    ``labelled``: which of :data:`LABELLED_CLASSES` the maps label everywhere in view; a
    voxel of value 0 is taught as none of them (it may be any other class), a voxel of a
    class not listed, or of a value no class has (e.g. SPINEPS' spinal cord 60), is
    ignored; a value outside the convention, or a map without a voxel of any class in
    ``labelled``, is refused (:func:`label_values_problem`). ``whole_vertebrae``: vertebra
    labels hold the posterior elements too (VerSe, SPINEPS, the phantom), so a vertebra
    voxel may be "body" or background; otherwise they are the vertebral bodies, as the
    network labels them. ``pairs``: the set's
    :func:`labelled_set_pairs`, when the caller has them (else found from ``root``,
    ``image_suffix`` and ``labels``).

    Raises
    ------
    InvalidInputError
        A class in ``labelled`` that is not a labelled class or not a network class, or a
        label map that is not usable (:func:`labelled_set_pairs`, :func:`_subject`) or in
        another convention (:func:`label_values_problem`).
    """
    if not labelled:
        raise InvalidInputError("a labelled set needs at least one labelled class", path=root)
    unknown = [c for c in labelled if c not in LABELLED_CLASSES or c not in classes]
    if unknown:
        raise InvalidInputError(
            f"labelled classes {unknown}: each must be one of {list(LABELLED_CLASSES)} and a "
            f"class of the network ({list(classes)})",
            path=root,
        )
    covered = list(labelled) + (["nucleus"] if "disc" in labelled else [])
    groups: Groups = [_others(classes, covered)]  # value 0: none of the labelled classes

    def group(members: Sequence[str]) -> int:
        members_in = _group_index(classes, members)
        if members_in not in groups:
            groups.append(members_in)
        return groups.index(members_in)

    if pairs is None:  # the trainer passes the pairs it found already
        pairs = labelled_set_pairs(root, image_suffix, labels)
    if not pairs:
        raise InvalidInputError("no sub-*_dseg.nii[.gz] label maps found", path=root)
    subjects: list[TrainSubject] = []
    dataset = f"labelled:{root}"

    members = {
        "disc": ("disc", "nucleus"),
        "body": ("body", "background") if whole_vertebrae else ("body",),
        "sacrum": ("sacrum",),
        "canal": ("canal",),
    }

    def target(v: int) -> int:
        """The group of a label value (VerSe/SPINEPS), IGNORE for what is not declared."""
        what = convention_class(v)
        return group(members[what]) if what and what in labelled else IGNORE

    def values_problem(values: list[int]) -> str | None:
        return label_values_problem(values, labelled)

    for subject, image, label in pairs:
        if names is not None and subject not in names:
            continue
        subjects.append(
            _subject(
                subject, dataset, image, target, label, groups, spacing_mm,
                ignore_above_mm=ignore_above_mm, values_problem=values_problem,
            )
        )  # fmt: skip
    for what in labelled if subjects else ():
        # A declared class that no map holds was taught "not <class>" everywhere, with
        # exit 0 (an audit): the check per map (label_values_problem) asks for any one.
        index = _group_index(classes, members[what])
        if index not in groups or not any(
            (s.target == groups.index(index)).any() for s in subjects
        ):
            chosen = " selected (train_subjects, val_subjects)" if names is not None else ""
            raise InvalidInputError(
                f"labelled declares {what}, but no label map of the set's subjects{chosen} "
                f"holds a {what} voxel ({LABEL_VALUES[what]}): every {what} would be taught "
                f"as none; leave {what} out of labelled",
                path=root,
            )
    logger.info("loaded %d labelled volumes from %s", len(subjects), root)
    return subjects


def classes_taught_alone(subjects: Sequence[TrainSubject]) -> set[int]:
    """The class indices that some voxel of ``subjects`` is taught as on its own (a
    target group of one class). A class that is only ever part of a group (the nucleus
    within "disc or nucleus" of a user's map) is never learnt apart: a user's model
    called every disc voxel nucleus, and the nucleus ADC read the whole disc's (an
    audit)."""
    taught: set[int] = set()
    for s in subjects:
        counts = np.bincount(np.asarray(s.target, dtype=np.uint8).ravel(), minlength=256)
        for index, group in enumerate(s.groups):
            if len(group) == 1 and index != IGNORE and counts[index] > 0:
                taught.add(group[0])
    return taught


def phantom_subjects(
    seeds: Sequence[int],
    classes: Sequence[str],
    *,
    spacing_mm: float,
    cache_dir: Path | None = None,
) -> list[TrainSubject]:
    """Domain-randomised phantom samples (:func:`discquant.phantom.training_sample`).

    Groups: background is certain; a phantom vertebra (20..24, body *and* posterior
    elements in one label) may be body or background for this network, whose "body"
    class is the vertebral body only (as in the real masks); sacrum, disc, nucleus and
    canal are their own classes. ``cache_dir`` keeps rendered samples (``.npz``) so
    that several runs (cross-validation folds) render each seed once.
    """
    from discquant.phantom import training_sample
    from discquant.phantom.randomize import draw_training_params

    present = {
        "bg": _group_index(classes, ("background",)),
        "vertebra": _group_index(classes, ("background", "body")),
        "sacrum": _group_index(classes, ("sacrum",)),
        "disc": _group_index(classes, ("disc",)),
        "nucleus": _group_index(classes, ("nucleus",)) or _group_index(classes, ("disc",)),
        "canal": _group_index(classes, ("canal",)) or _group_index(classes, ("background",)),
    }
    names = list(present)
    groups: Groups = [present[n] for n in names]
    out: list[TrainSubject] = []
    for seed in seeds:
        # "-v2": samples rendered since the label resampling was centre-aligned
        name = f"phantom-{seed}-{spacing_mm}-v2.npz"
        cached = None if cache_dir is None else cache_dir / name
        if cached is not None and cached.is_file():
            z = np.load(cached)
            image, target = z["image"], z["target"]
        else:
            sample = training_sample(int(seed))
            lab = np.asarray(sample.labels.data).astype(np.int32)
            grp = np.zeros(lab.shape, dtype=np.int32)
            grp[(lab >= 1) & (lab < SACRUM_LABEL)] = names.index("vertebra")
            grp[lab == SACRUM_LABEL] = names.index("sacrum")
            grp[(lab >= DISC_OFFSET) & (lab < 2 * DISC_OFFSET)] = names.index("disc")
            grp[lab == CANAL_LABEL] = names.index("canal")
            grp[np.asarray(sample.nucleus.data) > 0] = names.index("nucleus")
            vol = sample.image
            image = to_network_grid(reorient(vol), spacing_mm=spacing_mm)[:, 0].numpy()
            target = _label_to_grid(grp, vol, spacing_mm).astype(np.uint8)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                # the pid in the name: two training runs (two cores, two folds) share
                # one cache and may render the same sample at once
                tmp = cached.with_name(f".tmp-{os.getpid()}-{cached.name}")
                try:
                    with tmp.open("wb") as fh:
                        np.savez_compressed(fh, image=image, target=target)
                    tmp.replace(cached)
                finally:
                    tmp.unlink(missing_ok=True)
        out.append(
            TrainSubject(
                name=f"phantom-{seed}",
                dataset="phantom",
                image=image.astype(np.float32),
                target=target.astype(np.uint8),
                groups=groups,
                slices=list(range(image.shape[0])),
                slice_mm=float(draw_training_params(int(seed))["slice_mm"]),
            )
        )
    logger.info("loaded %d phantom training samples", len(out))
    return out
