"""Segmentation metrics: Dice per class and per level, HD95, level-naming accuracy.

Label maps follow the SPINEPS convention (bodies 17..25, sacrum 26, discs 100 + the
vertebra above). A class or level is scored only where the reference labels it, so that
partially labelled references (discs only, bodies only, lumbar levels only) are fair:

- a class (disc, body, sacrum) is scored in a case only when the reference has it, and
  its Dice and HD95 count only the predicted voxels whose label the case's reference
  uses (a predicted T12-L1 disc, 119, is left out when the reference labels only
  120-124; :attr:`CaseResult.unscored_labels` lists what was left out). Labels are
  otherwise ignored within a class, so a disc predicted with the name of another
  reference disc still counts. A prediction whose names are all shifted by one level
  loses the voxels of its label the reference does not use; the per-level scores show
  the shift.
- a level (one label) is scored when the reference has it: Dice of that label alone, and
  whether it was named correctly.

Dice and the 95th percentile Hausdorff distance are MONAI's (``monai.metrics``): HD95 is
the larger of the two directed 95th-percentile distances between the surface voxels of
prediction and reference, in mm on the reference's voxel spacing, the image border
counted as background; a single slice (an axis of length 1) is scored as a 2-D image.
HD95 is NaN when the prediction has none of the (scored) class, and the summary counts
such cases apart (``hd95_missing``) rather than averaging them in.

Also here: the mid-sagittal checks on sets without masks (SPIDER: which levels exist;
Sudirman: disc bounding boxes) and the conversion of the real reference masks in
``../shared/data`` to the SPINEPS convention.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from discquant.grid import reordered_onto
from discquant.jsonfiles import dumps_strict
from discquant.output_paths import bids_prefix
from discquant.results import DISC_OFFSET, LABEL_NAMES, SACRUM_LABEL, SPINE_LABEL_VALUES

logger = logging.getLogger(__name__)

#: Label ranges (inclusive) of each class; a body is C1 … L6 (1-25) or T13 (28).
CLASS_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "disc": ((100, 199),),
    "body": ((1, 25), (28, 28)),
    "sacrum": ((26, 26),),
}
#: Disc labels that name a level: 100 + the vertebra above (C1 … L6, and T13 = 128).
DISC_LEVELS = (101, 125)
#: The labels discquant writes, as said when a reference uses another convention.
SPINEPS_LABELS = "vertebrae 17-26 (T10 to sacrum), discs 117-124 (T10-T11 to L5-S1)"
#: Largest difference (mm) between a prediction's and its reference's affine entries.
AFFINE_TOLERANCE_MM = 1e-3
#: What the class scores count (written with every :func:`evaluate_dirs` result).
NOTE = (
    "class Dice/HD95 count only predicted voxels whose label the case's reference uses "
    "(levels the reference does not label, e.g. a predicted T12-L1 disc against lumbar "
    "references, are left out: see unscored_labels); hd95_mm means leave out cases "
    "without a predicted voxel of the class (hd95_missing)"
)


@dataclass
class CaseResult:
    """Metrics of one case."""

    case: str
    dice: dict[str, float] = field(default_factory=dict)
    hd95_mm: dict[str, float] = field(default_factory=dict)
    level_dice: dict[str, float] = field(default_factory=dict)
    levels_named: dict[str, bool] = field(default_factory=dict)
    unscored_labels: dict[str, list[int]] = field(default_factory=dict)
    """Per class, predicted labels absent from the reference (left out of its scores)."""


def _class_mask(labels: npt.NDArray, name: str) -> npt.NDArray[np.bool_]:
    mask = np.zeros(labels.shape, dtype=bool)
    for lo, hi in CLASS_RANGES[name]:
        mask |= (labels >= lo) & (labels <= hi)
    return mask


def _dice_hd95(
    pred: npt.NDArray[np.bool_], ref: npt.NDArray[np.bool_], spacing: Sequence[float]
) -> tuple[float, float]:
    """Dice and HD95 (mm) of two boolean masks of one grid, ``spacing`` in mm per axis.

    HD95 is MONAI's: the larger of the two directed 95th-percentile distances between
    the masks' surface voxels (a mask voxel with a background neighbour, the image border
    counted as background). Axes of length 1 are dropped first, with their spacings, so
    that a single slice (X×Y×1 or 1×Y×Z) is scored as a 2-D image: kept as 3-D, every
    voxel of the slice lies on the border, is a surface voxel, and HD95 is not the
    distance between the outlines. NaN when either mask is empty.
    """
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance

    keep = [i for i, n in enumerate(pred.shape) if n > 1]
    if 2 <= len(keep) < pred.ndim:
        flat = tuple(n for n in pred.shape if n > 1)
        pred, ref = pred.reshape(flat), ref.reshape(flat)
        spacing = [spacing[i] for i in keep]
    p = torch.from_numpy(pred[None, None].astype(np.float32))
    r = torch.from_numpy(ref[None, None].astype(np.float32))
    dice = float(compute_dice(p, r, include_background=True)[0, 0])
    if pred.any() and ref.any():
        with warnings.catch_warnings():
            # MONAI 1.5+ passes its own deprecated argument internally; the warning is for
            # MONAI, and on stderr it read as a problem with the user's files.
            warnings.filterwarnings("ignore", ".*always_return_as_numpy", FutureWarning)
            hd = float(
                compute_hausdorff_distance(
                    p,
                    r,
                    include_background=True,
                    percentile=95,
                    spacing=[float(v) for v in spacing],  # MONAI refuses mixed int/float
                )[0, 0]
            )
    else:
        hd = float("nan")
    return dice, hd


#: VerSe numbers the cervical vertebrae C1 … C7 as 1 … 7; the first thoracic one is 8.
FIRST_THORACIC_LABEL = 8


def check_reference_labels(ref: npt.NDArray[np.integer], *, case: str = "") -> None:
    """Refuse a reference label map in another labelling than discquant's.

    discquant writes VerSe/SPINEPS labels (:data:`discquant.results.LABEL_NAMES`: bodies
    T1 … L6 as 8 … 25, the sacrum 26, discs 100 + the vertebra above, L1-L2 … L5-S1 as
    120 … 124, the canal 61). A reference none of whose labels is one of them, or whose
    labels are all below 8 (read as the cervical vertebrae C1 … C7), uses another
    convention: the ``lumbar-t2-discs`` set numbers its discs 1 … 5, which
    :func:`evaluate_case` scored Dice 0 at "C1" … "C5" without a word (an audit; mapped
    to 120 … 124 the same prediction read disc Dice 0.906). A reference of background
    alone passes (nothing is scored).

    Parameters
    ----------
    ref
        The reference label map (integers; 0 background).
    case
        The case's name, for the message.

    Raises
    ------
    InvalidInputError
        The reference shares no label with :data:`~discquant.results.LABEL_NAMES`,
        holds only labels 1 … 7, or holds labels 1 … 7 beside lumbar or sacral labels
        with no thoracic level between them.
    """
    from discquant.errors import InvalidInputError
    from discquant.segment.levels import label_runs

    values = {int(v) for v in np.unique(np.asarray(ref).astype(np.int64)) if v != 0}
    cervical = {v for v in values if 1 <= v < FIRST_THORACIC_LABEL}
    others = values - cervical
    if cervical and others and not others & _THORACIC_LABELS:
        # Labels 1-7 beside others (lumbar, sacral, the canal) with no thoracic level
        # are no spine in VerSe's numbering: another convention's 1-5 with some label
        # that happens to be discquant's (26, 61). Such a reference passed before.
        where = f"{case}: " if case else ""
        raise InvalidInputError(
            f"{where}the reference mixes labels {label_runs(sorted(cervical))}, which "
            "VerSe reads as cervical vertebrae, with others and no thoracic level: it "
            "is not in the VerSe/SPINEPS labels discquant writes; map its labels "
            "first, e.g. lumbar-t2-discs' discs 1-5 to 120-124 as "
            "discquant.evaluate.segmentation.convert_real_references does"
        )
    if not values or (values & set(LABEL_NAMES) and max(values) >= FIRST_THORACIC_LABEL):
        return
    shown = _some_labels(sorted(values))
    read_as = (
        f", which VerSe reads as cervical C{min(values)}-C{max(values)}"
        if min(values) >= 1 and max(values) < FIRST_THORACIC_LABEL
        else ""
    )
    where = f"{case}: " if case else ""
    raise InvalidInputError(
        f"{where}the reference holds none of the VerSe/SPINEPS labels discquant writes "
        f"(it holds {shown}{read_as}; discquant writes bodies 8-26, discs "
        f"{label_runs([v for v in LABEL_NAMES if v >= DISC_OFFSET])}, canal 61): map its "
        "labels first, e.g. lumbar-t2-discs' discs 1-5 to 120-124 as "
        "discquant.evaluate.segmentation.convert_real_references does"
    )


_THORACIC_LABELS = frozenset(
    {*range(FIRST_THORACIC_LABEL, 20), 28, *(DISC_OFFSET + v for v in (*range(7, 20), 28))}
)
"""Thoracic bodies T1 … T12 and T13 (8 … 19, 28) and the discs C7-T1 … T13-L1 (107 …
119, 128): a spine in VerSe's numbering passes them between its cervical and lumbar
labels."""


def evaluate_case(
    pred: npt.NDArray[np.integer],
    ref: npt.NDArray[np.integer],
    spacing_mm: Sequence[float],
    *,
    case: str = "",
) -> CaseResult:
    """Dice/HD95 per class present in ``ref``; Dice and naming per reference level.

    Both maps must use discquant's VerSe/SPINEPS labels
    (:data:`discquant.results.LABEL_NAMES`): vertebral bodies 8 … 25 (T1 … L6), the
    sacrum 26, discs 100 + the vertebra above (L1-L2 = 120 … L5-S1 = 124), the canal 61.
    A reference in another labelling is refused (:func:`check_reference_labels`): map
    it first (:func:`convert_real_references` does so for the project's real sets).

    A class is scored on the predicted voxels whose label ``ref`` uses somewhere (other
    predicted labels of the class are listed in ``unscored_labels``), against all of
    the class in ``ref``; HD95 is NaN when none is predicted.

    A reference level counts as *named correctly* when the prediction labels (with any
    non-background label) at least 10 % of its voxels and, among those predicted voxels,
    the most frequent label is the level's own.

    Levels are keyed by name; when ``ref`` holds an L6 (label 25 or its disc 125), disc
    124 is ``"L5-L6"`` and 125 ``"L6-S1"``, otherwise 124 is ``"L5-S1"``; when it holds a
    T13 (28 or its disc 128), disc 119 is ``"T12-T13"`` and 128 ``"T13-L1"``.

    Parameters
    ----------
    pred, ref
        Prediction and reference label maps of one grid (integers, 0 background).
    spacing_mm
        Voxel size along each axis of the grid, in mm (for HD95).
    case
        The case's name (kept in the result).

    Returns
    -------
    CaseResult
        Dice and HD95 (mm) per class, Dice and naming per reference level.

    Raises
    ------
    ValueError
        The two maps differ in shape.
    InvalidInputError
        The reference uses another labelling (:func:`check_reference_labels`).

    Examples
    --------
    >>> ref = np.zeros((20, 10, 3), np.int16)
    >>> ref[4:8, 2:8] = 123  # the L4-L5 disc
    >>> evaluate_case(ref.copy(), ref, (1.0, 1.0, 1.0)).dice
    {'disc': 1.0}
    >>> evaluate_case(ref.copy(), (ref > 0).astype(np.int16), (1.0, 1.0, 1.0))
    Traceback (most recent call last):
    ...
    discquant.errors.InvalidInputError: the reference holds none of the VerSe/SPINEPS ...
    """
    check_reference_labels(ref, case=case)
    return _score_case(pred, ref, spacing_mm, case=case)  # checks the shapes


def _score_case(
    pred: npt.NDArray[np.integer],
    ref: npt.NDArray[np.integer],
    spacing_mm: Sequence[float],
    *,
    case: str = "",
) -> CaseResult:
    """:func:`evaluate_case` without the check of the reference's labels:
    :func:`evaluate_dirs` scores such a case with a warning when other cases share
    labels, and refuses the folder when none does."""
    if pred.shape != ref.shape:
        raise ValueError(f"{case}: prediction shape {pred.shape} != reference {ref.shape}")
    res = CaseResult(case=case)
    for name in CLASS_RANGES:
        r = _class_mask(ref, name)
        if not r.any():
            continue
        ref_labels = np.unique(ref[r])
        p_class = _class_mask(pred, name)
        p = p_class & np.isin(pred, ref_labels)
        extra = np.unique(pred[p_class & ~p])
        if extra.size:
            res.unscored_labels[name] = [int(v) for v in extra]
        d, h = _dice_hd95(p, r, spacing_mm)
        res.dice[name] = d
        res.hd95_mm[name] = h
    from discquant.segment.levels import L6, T13, disc_name, vertebra_name

    ref_levels = [int(v) for v in np.unique(ref) if _is_level(int(v))]
    # With a sixth lumbar vertebra (or its disc) in the reference, disc 124 is L5-L6;
    # with a thirteenth thoracic one, 119 is T12-T13.
    has_l6 = L6 in ref_levels or DISC_OFFSET + L6 in ref_levels
    has_t13 = T13 in ref_levels or DISC_OFFSET + T13 in ref_levels
    for lab in ref_levels:
        r = ref == lab
        if lab >= DISC_OFFSET:
            key = disc_name(lab, has_l6=has_l6, has_t13=has_t13)
        else:
            key = vertebra_name(lab)
        p = pred == lab
        # By hand, not compute_dice: that copies the volume to float32 tensors per level
        # and rounds the Dice to float32; here r is never empty, so there is no 0/0.
        res.level_dice[key] = float(2 * (p & r).sum() / (p.sum() + r.sum()))
        under = pred[r]
        under = under[under > 0]
        if under.size < 0.1 * r.sum():
            res.levels_named[key] = False
            continue
        vals, counts = np.unique(under, return_counts=True)
        res.levels_named[key] = bool(vals[np.argmax(counts)] == lab)
    return res


def _is_level(label: int) -> bool:
    """A vertebra (1-25, T13 28), the sacrum (26) or a disc (101-125, 128): the levels.
    Others in a SPINEPS map (spinal cord 60, canal 61, endplates 2xx) are not; they
    were scored as levels "V60", "V123-V124" and lowered the naming fraction."""
    from discquant.segment.levels import T13

    return (
        1 <= label <= SACRUM_LABEL
        or DISC_LEVELS[0] <= label <= DISC_LEVELS[1]
        or label in (T13, DISC_OFFSET + T13)
    )


def _subject_of(path: Path) -> str:
    """``sub-<label>`` of a file name, with its ``_ses-<label>`` when there is one."""
    return bids_prefix(path.name) or path.name.split(".")[0]


#: Binary masks beside a label map (discquant's ``*_nucleus``/``*_canal``, BIDS
#: ``*_label-<name>_mask`` as the phantom's truth writes them) and copies on the DWI grid
#: (``*_space-dwi_*``, which discquant and the phantom write beside the T2-grid map).
_NOT_A_LABEL_MAP = re.compile(r"_(nucleus|canal)\.|_mask\.nii|_space-dwi_")
#: A BIDS label map (``*_dseg.nii[.gz]``): the only files taken from subfolders.
_DSEG = re.compile(r"_dseg\.nii(\.gz)?$")
#: A subject's NIfTI file (``sub-*.nii``, ``sub-*.nii.gz``, ...), as the search globs it.
_SUBJECT_NIFTI = re.compile(r"^sub-.*\.nii")
#: The phantom's mask of the posterior elements, read beside a ``*_dseg`` reference.
_POSTERIOR_MASK = re.compile(r"_label-posterior_mask\.nii(\.gz)?$")


def _is_label_map_name(rel: Path) -> bool:
    """Whether a file at ``rel`` (relative to the searched folder) is taken as a label map:
    ``sub-*.nii[.gz]`` directly in the folder, ``sub-*_dseg.nii[.gz]`` in a subfolder, not a
    mask or a DWI-grid copy, not in a hidden folder."""
    name = rel.name
    if not _SUBJECT_NIFTI.match(name) or _NOT_A_LABEL_MAP.search(name):
        return False
    if any(part.startswith(".") for part in rel.parts[:-1]):
        return False
    return len(rel.parts) == 1 or bool(_DSEG.search(name))


def _holds_discquant_outputs(folder: Path) -> bool:
    """A folder of discquant's own outputs: ``<root>/derivatives/discquant`` (where the docs
    put a cohort's or an analysis's outputs), a cohort's output folder (it holds
    ``.discquant-cohort``) or any folder with discquant's ``dataset_description.json``
    (a derivative dataset generated by discquant, as ``analyze`` and ``cohort`` write it)."""
    if folder.name == "discquant" and folder.parent.name == "derivatives":
        return True
    from discquant.output_paths import COHORT_STATE_DIR, generated_by_discquant

    if (folder / COHORT_STATE_DIR).is_dir():
        return True
    description = folder / "dataset_description.json"
    if not description.is_file():
        return False
    try:
        doc = json.loads(description.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return generated_by_discquant(doc)


def _search(folder: Path, *, references: bool) -> tuple[list[Path], list[Path], int]:
    """The files under ``folder`` taken as label maps (sorted), the subfolders that hold
    discquant's own outputs (:func:`_holds_discquant_outputs`), and how many label maps
    outside them were passed over (predictions only).

    Searching ``references``, those subfolders are passed over. Searching predictions, when
    there are such subfolders, only the files inside them are taken: ``--pred P`` on a BIDS
    root whose ``derivatives/discquant`` holds the outputs and ``derivatives/phantom`` the
    truth scores discquant's outputs (it found two label maps per subject).
    """
    files: list[Path] = []
    own: list[Path] = []
    for here, dirs, names in os.walk(folder):
        top = Path(here)
        kept = []
        for d in sorted(dirs):
            sub = top / d
            if d.startswith("."):
                continue
            if _holds_discquant_outputs(sub):
                own.append(sub)
                if references:
                    continue
            kept.append(d)
        dirs[:] = kept
        for name in names:
            path = top / name
            if _is_label_map_name(path.relative_to(folder)) and path.is_file():
                files.append(path)
    dropped = 0
    if own and not references:
        theirs = [f for f in files if any(f.is_relative_to(o) for o in own)]
        dropped, files = len(files) - len(theirs), theirs
    return sorted(files), own, dropped


def _label_maps(
    folder: Path, *, references: bool = False, announce: bool = False
) -> dict[str, Path]:
    """The label map of each subject (session) in ``folder``.

    Directly in ``folder``: ``sub-*.nii[.gz]`` files. In its subfolders, at any depth:
    ``sub-*_dseg.nii[.gz]`` files, so that discquant's own layouts are found:
    ``discquant analyze/cohort --out OUT`` writes ``OUT/sub-X/sub-X_dseg.nii.gz`` and
    ``discquant phantom --out P`` its truth as
    ``P/derivatives/phantom/sub-X/anat/sub-X_dseg.nii.gz`` (beside the study's
    ``P/sub-X/anat/sub-X_T2w.nii.gz``, which is not a ``_dseg`` and is passed over).
    Binary masks (``*_nucleus``, ``*_canal``, ``*_mask``), DWI-grid copies
    (``*_space-dwi_*``) and hidden folders are left out. With ``references``, so are the
    subfolders that hold discquant's own outputs (:func:`_holds_discquant_outputs`):
    with a cohort's outputs in ``P/derivatives/discquant``, as docs/cohort.md
    recommends, ``--ref P`` found two label maps per subject. Without, when ``folder``
    holds such subfolders, only their label maps are taken (``--pred P`` alike).

    Raises
    ------
    InvalidInputError
        Two files for one subject (e.g. ``sub-01_dseg.nii.gz`` and ``sub-01_T2w.nii.gz``):
        which one is the label map cannot be guessed (the later one was silently used).
    """
    from discquant.errors import InvalidInputError

    found: dict[str, Path] = {}
    files, own, dropped = _search(folder, references=references)
    if own and not references and announce:
        where = ", ".join(str(o.relative_to(folder)) for o in own)
        logger.info(
            "predictions: discquant's outputs in %s (%d other label map%s passed over)",
            where,
            dropped,
            "" if dropped == 1 else "s",
        )
    for path in files:
        rel = path.relative_to(folder)
        subject = _subject_of(path)
        if subject in found:
            where = "in this folder" if len(rel.parts) == 1 else "under this folder"
            raise InvalidInputError(
                f"two files for {subject}: {found[subject].relative_to(folder)} and {rel}; "
                f"keep only the label map {where}",
                path=folder,
            )
        found[subject] = path
    return found


def _posterior_mask_path(ref_path: Path) -> Path | None:
    """The phantom's ``*_label-posterior_mask`` (``.nii.gz`` or ``.nii``) beside a
    ``*_dseg`` reference, when there is one."""
    for suffix in (".nii.gz", ".nii"):  # a gunzipped tree holds .nii masks
        name = _DSEG.sub(f"_label-posterior_mask{suffix}", ref_path.name)
        path = ref_path.with_name(name)
        if name != ref_path.name and path.is_file():
            return path
    return None


def check_outputs_not_inputs(pred: Path, ref: Path, outputs: dict[str, Path]) -> None:
    """Refuse an output file that :func:`evaluate_dirs` reads, before anything is read or
    written.

    ``outputs`` maps each output option (``"--json"``) to its path. An output may not be
    ``pred`` or ``ref`` themselves (when one is a file), a label map found in them or a
    reference's ``*_label-posterior_mask``, nor lie inside ``pred``/``ref`` under a name
    that would be taken for one (``sub-*.nii*`` directly in the folder, ``*_dseg.nii*``
    in a subfolder, a posterior mask under ``ref``): ``--json segs/sub-01_dseg.nii.gz``
    replaced that prediction with the metrics (exit 0). ``pred``/``ref`` that are missing
    are passed over (the caller says so).

    Raises
    ------
    InvalidInputError
        Naming the output file and the input it would replace or pose as.
    """
    from discquant.errors import InvalidInputError
    from discquant.output_paths import check_not_an_input

    def real(p: Path) -> Path:
        return p.expanduser().absolute().resolve()

    targets = {option: real(out) for option, out in outputs.items()}
    for what, given in (("--pred", pred), ("--ref", ref)):
        if given.is_file():
            for option, target in targets.items():
                if real(given) == target:
                    raise InvalidInputError(
                        f"the {option} file is the {what} input; write it elsewhere",
                        path=outputs[option],
                    )
                # a hard link to the input anywhere else (the shared rule)
                check_not_an_input(outputs[option], [(f"the {what} input", given)], option=option)
            continue
        if not given.is_dir():
            continue
        folder = real(given)
        maps = list(_label_maps(given, references=what == "--ref").values())
        if what == "--ref":
            maps += [m for p in maps if (m := _posterior_mask_path(p)) is not None]
        inside = {o: t for o, t in targets.items() if folder in t.parents}
        read = {real(p) for p in maps}
        for option, target in inside.items():
            rel = target.relative_to(folder)
            if target in read:
                problem, advice = "is an input this command reads", "write it elsewhere"
            elif _is_label_map_name(rel) or (
                what == "--ref" and _POSTERIOR_MASK.search(rel.name) is not None
            ):
                problem = "has a name this command reads as an input"
                advice = "write it elsewhere or under another name"
            else:
                continue
            raise InvalidInputError(
                f"the {option} file {problem} (in the {what} folder {given}); {advice}",
                path=outputs[option],
            )
        for option in outputs:
            # An existing output that is a hard link to an input, wherever it lies,
            # would be written through (a prediction became the metrics JSON).
            check_not_an_input(
                outputs[option], [(f"a {what} input", p) for p in maps], option=option
            )


LUMBAR_LABELS: frozenset[int] = frozenset(
    {20, 21, 22, 23, 24, 25, 26, 120, 121, 122, 123, 124, 125}
)
"""The labels ``--lumbar-only`` scores: the vertebrae L1-L5 (and an L6), the sacrum and the
discs L1-L2 … L5-S1 (and L6-S1); T12-L1 (119) and above are thoracolumbar or thoracic."""


#: How many unknown labels a message lists before it gives their count and range.
_LISTED_LABELS = 12


def _some_labels(labels: Sequence[int]) -> str:
    """``labels`` for a message: their runs (:func:`~discquant.segment.levels.label_runs`),
    or their count and range when there are more than :data:`_LISTED_LABELS` (an image
    given as a label map holds thousands).

    >>> _some_labels([1000, 1001, 1003]), _some_labels(list(range(-20, 1000, 7)))
    ('1000-1001, 1003', '146 values from -20 to 995')
    """
    from discquant.segment.levels import label_runs

    if len(labels) > _LISTED_LABELS:
        return f"{len(labels)} values from {min(labels)} to {max(labels)}"
    return label_runs(labels)


MAX_UNKNOWN_LABELS = 100
"""A label map holding more distinct non-zero values than this that are no VerSe/SPINEPS
label is refused as an image: SPINEPS's subregion labels (41 … 50) are ten such values,
an MR image's intensities hundreds."""


def _refuse_an_image(labels: npt.NDArray[Any], path: Path) -> list[int]:
    """Refuse a "label map" that is an image (:data:`MAX_UNKNOWN_LABELS`); its non-zero
    values otherwise.

    A T2 lying in ``--ref`` was scored as the reference, its intensities read as labels:
    52 "levels" (C1-C2 … L6-S1) at Dice 0, exit 0, without a word; as the prediction it
    was scored with a warning only (an audit).
    """
    from discquant.errors import InvalidInputError

    values = [int(v) for v in np.unique(labels.astype(np.int64)) if v != 0]
    unknown = [v for v in values if v not in SPINE_LABEL_VALUES]
    if len(unknown) > MAX_UNKNOWN_LABELS:
        raise InvalidInputError(
            f"holds {len(unknown)} distinct values that are no VerSe/SPINEPS label "
            f"({min(unknown)} … {max(unknown)}): an image, not a label map?",
            path=path,
        )
    return values


def _check_prediction_labels(values: Sequence[int], path: Path) -> None:
    """Refuse a prediction none of whose labels is a VerSe/SPINEPS one; warn of some.

    A reference that labels no level is not scored (and refused when no reference
    does); a prediction of values ≥ 1000 or negative ones was scored Dice 0 at every
    level without a word: another convention, or not a label map. A prediction of
    background alone (the model found nothing) is scored. Unknown labels beside known
    ones are scored as before (no class or level counts them as its own), and said.

    ``values``: the prediction's non-zero values (:func:`_refuse_an_image`).

    Raises
    ------
    InvalidInputError
        ``values`` are not empty and none is one of
        :data:`~discquant.results.SPINE_LABEL_VALUES`.
    """
    from discquant.errors import InvalidInputError

    unknown = [v for v in values if v not in SPINE_LABEL_VALUES]
    if not unknown:
        return
    if len(unknown) == len(values):
        raise InvalidInputError(
            f"the prediction holds no VerSe/SPINEPS label ({_some_labels(unknown)}): another "
            f"label convention, or not a label map? discquant writes {SPINEPS_LABELS}",
            path=path,
        )
    logger.warning(
        "%s: the prediction holds labels that are not VerSe/SPINEPS ones: %s",
        path,
        _some_labels(unknown),
    )


def lumbar_only(labels: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``labels`` with the levels outside :data:`LUMBAR_LABELS` set to 0; classes that
    are no level (the canal, the spinal cord) are kept.

    >>> lumbar_only(np.array([19, 20, 119, 120, 124, 26, 61])).tolist()
    [0, 20, 0, 120, 124, 26, 61]
    """
    dropped = [v for v in np.unique(labels).tolist() if _is_level(v) and v not in LUMBAR_LABELS]
    return np.where(np.isin(labels, dropped), 0, labels)


def evaluate_dirs(pred_dir: Path, ref_dir: Path, *, lumbar: bool = False) -> dict[str, Any]:
    """Match ``sub-*`` NIfTI files in two folders and score every pair.

    ``lumbar`` scores the lumbar levels alone (:func:`lumbar_only` on both maps), as the
    segmentation model card does: a phantom's T10-T11 disc at the top of its image, which
    the network does not label, lowered the naming fraction to 93.8 % and raised the mean
    disc HD95 to 9.2 mm (a user trial), figures not comparable with the card's.

    Label maps are found as :func:`_label_maps` says (flat folders, and discquant's
    analyze/cohort/phantom layouts; under ``ref_dir`` not in subfolders of discquant's own
    outputs). Returns a JSON-ready dict with ``cases``, ``summary`` (means per class and
    level, fraction of levels named correctly), ``unmatched``, ``no_shared_level_label``
    (per case whose prediction labels levels but none of its reference's: the reference's
    and the prediction's level labels; such a case is scored, and warned of),
    ``posterior_elements_removed`` (references cut to the vertebral bodies),
    ``reference_vertebrae_larger`` (per case whose reference vertebrae hold over
    :data:`WHOLE_VERTEBRA_RATIO` times the predicted voxels, where no posterior mask
    cut them: the ratio), ``predictions_reoriented`` (predictions that stored their
    reference's grid with the axes permuted or flipped, reoriented onto it) and ``note``
    (what the class scores count).

    Raises
    ------
    InvalidInputError
        A prediction whose grid (shape or affine, beyond 0.001 mm) differs from its
        reference's other than by the order and direction of the axes, a label map that
        is not 3D or holds non-integer values, a prediction holding no VerSe/SPINEPS label
        but other non-zero values (:func:`_check_prediction_labels`), or no prediction
        sharing a level label with its reference (another label convention, e.g. discs
        1-5).
    """

    from discquant.errors import InputNotFoundError, InvalidInputError
    from discquant.io.nifti import read_volume
    from discquant.segment.levels import SACRUM, label_runs

    refs, preds = _label_maps(ref_dir, references=True), _label_maps(pred_dir, announce=True)
    common = sorted(set(refs) & set(preds))
    if not common:
        passed_over = _search(ref_dir, references=True)[1]
        raise InputNotFoundError(
            f"no matching sub-* NIfTI files in {pred_dir} and {ref_dir}"
            + (
                f" (discquant's own outputs in {passed_over[0]} are not taken as references)"
                if passed_over
                else ""
            )
        )
    unmatched = {
        "reference_without_prediction": sorted(set(refs) - set(preds)),
        "prediction_without_reference": sorted(set(preds) - set(refs)),
        "reference_without_labels": [],
    }
    for what, subjects in unmatched.items():
        if subjects:  # a missing prediction would otherwise raise the mean without a word
            logger.warning("%s: %s (not scored)", what.replace("_", " "), ", ".join(subjects))
    cases = []
    # Cases whose prediction labels levels, none of them the reference's, and the number
    # of cases whose prediction shares at least one.
    not_shared: dict[str, dict[str, str]] = {}
    n_sharing = 0
    bodies_only: list[str] = []  # references cut to the vertebral bodies
    larger: dict[str, float] = {}  # reference vertebrae / predicted, where suspiciously many
    reoriented: list[str] = []  # predictions reoriented onto their reference's grid
    for sub in common:
        ref_vol, pred_vol = read_volume(refs[sub]), read_volume(preds[sub])
        values = []  # the non-zero values of the reference, then of the prediction
        for vol, path in ((ref_vol, refs[sub]), (pred_vol, preds[sub])):
            if vol.data.ndim != 3:
                raise InvalidInputError(
                    f"label map has shape {vol.data.shape}; expected 3D", path=path
                )
            if not np.array_equal(vol.data, np.round(vol.data)):
                raise InvalidInputError("label map holds non-integer values", path=path)
            values.append(_refuse_an_image(vol.data, path))
        _check_prediction_labels(values[1], preds[sub])
        grid_differs = pred_vol.data.shape != ref_vol.data.shape or (
            float(np.abs(pred_vol.affine - ref_vol.affine).max()) > AFFINE_TOLERANCE_MM
        )
        on_ref = (
            reordered_onto(
                pred_vol.data,
                pred_vol.affine,
                ref_vol.data.shape,
                ref_vol.affine,
                AFFINE_TOLERANCE_MM,
            )
            if grid_differs
            else None
        )
        if on_ref is not None:
            # A DICOM-derived prediction against the phantom's NIfTI truth: the same voxels
            # stored with the axes in another order (or flipped) were refused.
            pred_vol = replace(pred_vol, data=on_ref, affine=ref_vol.affine)
            reoriented.append(sub)
        if pred_vol.data.shape != ref_vol.data.shape:
            raise InvalidInputError(
                f"shape {pred_vol.data.shape} differs from the reference's "
                f"{ref_vol.data.shape} ({refs[sub]}); resample it onto the reference grid",
                path=preds[sub],
            )
        diff = float(np.abs(pred_vol.affine - ref_vol.affine).max())
        if diff > AFFINE_TOLERANCE_MM:
            raise InvalidInputError(
                f"affine differs from the reference's ({refs[sub]}) by up to {diff:.3g} "
                "mm; resample it onto the reference grid",
                path=preds[sub],
            )
        posterior = _posterior_mask(refs[sub], ref_vol.data.shape)
        if posterior is not None:
            # The phantom's vertebra labels hold the posterior elements too, the network's
            # the bodies only: scored whole, a perfect body read Dice 0.57 without a word.
            # The sacrum stays whole: the network labels it so.
            posterior &= ref_vol.data != SACRUM
            ref_vol = replace(
                ref_vol, data=np.where(posterior & (ref_vol.data < 100), 0, ref_vol.data)
            )
            bodies_only.append(sub)
        elif (ratio := _vertebra_volume_ratio(pred_vol.data, ref_vol.data)) is not None:
            if ratio > WHOLE_VERTEBRA_RATIO:
                # A folder of the phantom's *_dseg files without their posterior masks:
                # body Dice 0.58 against whole vertebrae, without a word (a user trial).
                larger[sub] = round(ratio, 2)
                logger.warning(
                    "%s: the reference's vertebrae are %.2fx the predicted ones: whole "
                    "vertebrae (with posterior elements), or bodies under-segmented? "
                    "discquant labels vertebral bodies; body Dice are against the "
                    "reference as given",
                    sub, ratio,
                )  # fmt: skip
        if lumbar:
            ref_vol = replace(ref_vol, data=lumbar_only(ref_vol.data.astype(np.int32)))
            pred_vol = replace(pred_vol, data=lumbar_only(pred_vol.data.astype(np.int32)))
        ref_levels = [int(v) for v in np.unique(ref_vol.data.astype(np.int32))]
        ref_levels = [v for v in ref_levels if _is_level(v)]
        if not ref_levels:
            # Nothing to score it on: it was counted in n_cases with no score at all.
            unmatched["reference_without_labels"].append(sub)
            # with --lumbar-only, said so: "labels no level" of a reference of T11 and
            # T12 read as if it labelled nothing (an audit)
            which = "no lumbar level (--lumbar-only)" if lumbar else "no level"
            logger.warning("%s: the reference labels %s (not scored)", sub, which)
            continue
        pred_levels = [int(v) for v in np.unique(pred_vol.data.astype(np.int32))]
        pred_levels = [v for v in pred_levels if _is_level(v)]
        if pred_levels and not set(pred_levels) & set(ref_levels):
            # Another label convention (lumbar-t2-discs: discs 1-5) scored Dice 0 at every
            # level without a word. A prediction of nothing is a prediction, not this.
            not_shared[sub] = {
                "reference": label_runs(ref_levels),
                "prediction": label_runs(pred_levels),
            }
        elif pred_levels:
            n_sharing += 1
        cases.append(
            _score_case(
                pred_vol.data.astype(np.int32),
                ref_vol.data.astype(np.int32),
                list(ref_vol.voxel_mm),
                case=sub,
            )
        )
    if not cases:
        which = "a lumbar disc or vertebra (--lumbar-only)" if lumbar else "a disc or vertebra"
        raise InvalidInputError(f"no reference in {ref_dir} labels {which}")
    if not_shared and not n_sharing:
        labels = next(iter(not_shared.values()))
        raise InvalidInputError(
            "no prediction shares a level label with its reference (e.g. "
            f"{next(iter(not_shared))}: reference {labels['reference']}, prediction "
            f"{labels['prediction']}): the label conventions differ; discquant writes "
            f"VerSe/SPINEPS labels, {SPINEPS_LABELS}: relabel the references",
            path=ref_dir,
        )
    for sub, labels in not_shared.items():
        logger.warning(
            "%s: the prediction shares no level label with its reference (reference %s, "
            "prediction %s): another label convention? Its level Dice are 0",
            sub,
            labels["reference"],
            labels["prediction"],
        )
    return {
        "cases": [asdict(c) for c in cases],
        "summary": summarise(cases),
        "unmatched": unmatched,
        "no_shared_level_label": not_shared,
        "posterior_elements_removed": bodies_only,
        "reference_vertebrae_larger": larger,
        "predictions_reoriented": reoriented,
        "lumbar_only": lumbar,
        "note": NOTE,
    }


WHOLE_VERTEBRA_RATIO = 1.4
"""Reference vertebrae above this multiple of the predicted ones (voxels, over the
vertebrae both label, sacrum left out) are said to be whole vertebrae, or the bodies
under-segmented: in the phantom's T2 slab a vertebra with its posterior elements is
1.61-1.68 times its body (seeds 0-2; ``benchmarks/measure_definitions.py``, part 8)."""


def _vertebra_volume_ratio(pred: npt.NDArray[Any], ref: npt.NDArray[Any]) -> float | None:
    """Voxels of the reference's vertebrae over the prediction's, over the vertebra labels
    (1-25, 28; not the sacrum) both hold; None when they share none."""
    from discquant.segment.levels import SACRUM

    shared = [
        v for v in set(np.unique(ref).astype(int)) & set(np.unique(pred).astype(int))
        if _is_level(v) and v < 100 and v != SACRUM
    ]  # fmt: skip
    if not shared:
        return None
    n_pred = int(np.isin(pred, shared).sum())
    return int(np.isin(ref, shared).sum()) / n_pred if n_pred else None


def _posterior_mask(ref_path: Path, shape: tuple[int, ...]) -> npt.NDArray[np.bool_] | None:
    """The phantom's ``*_label-posterior_mask`` beside a ``*_dseg`` reference, if any.

    ``discquant phantom`` labels whole vertebrae (body and posterior elements) and marks
    the posterior elements in that mask; discquant's body class is the vertebral body.

    Raises
    ------
    InvalidInputError
        The mask is not on the reference's grid.
    """
    from discquant.errors import InvalidInputError
    from discquant.io.nifti import read_volume

    path = _posterior_mask_path(ref_path)
    if path is None:
        return None
    mask = read_volume(path).data
    if mask.shape != shape:
        raise InvalidInputError(
            f"shape {mask.shape} differs from its reference's {shape} ({ref_path.name})",
            path=path,
        )
    return mask > 0


def summarise(cases: Sequence[CaseResult]) -> dict[str, Any]:
    """Means over cases of class Dice/HD95 and per-level Dice; naming accuracy.

    HD95 is undefined for a case whose prediction has none of the class: its mean is
    over the other cases, ``hd95_n`` counts the cases averaged and ``hd95_missing`` those
    left out for that reason (per class).
    """
    out: dict[str, Any] = {"n_cases": len(cases), "dice": {}, "hd95_mm": {}, "level_dice": {}}
    out["hd95_n"] = {}
    out["hd95_missing"] = {}
    for attr in ("dice", "hd95_mm", "level_dice"):
        keys = sorted({k for c in cases for k in getattr(c, attr)})
        for k in keys:
            vals = [getattr(c, attr)[k] for c in cases if k in getattr(c, attr)]
            finite = [v for v in vals if np.isfinite(v)]
            out[attr][k] = float(np.mean(finite)) if finite else float("nan")
            if attr == "hd95_mm":
                out["hd95_n"][k] = len(finite)
                out["hd95_missing"][k] = len(vals) - len(finite)
    named = [v for c in cases for v in c.levels_named.values()]
    out["levels_named_fraction"] = float(np.mean(named)) if named else float("nan")
    out["levels_named"] = f"{int(np.sum(named))}/{len(named)}"
    disc_means: list[float] = []
    for c in cases:
        vals = [v for k, v in c.level_dice.items() if "-" in k]
        if vals:
            disc_means.append(float(np.mean(vals)))
    out["mean_disc_level_dice"] = float(np.mean(disc_means)) if disc_means else float("nan")
    return out


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of one :func:`evaluate_dirs` result."""
    lines = ["case            " + "  ".join(f"{k:>12}" for k in ("disc", "body", "sacrum"))]
    for c in result["cases"]:
        cells = [
            f"{c['dice'][k]:12.3f}" if k in c["dice"] else f"{'-':>12}"
            for k in ("disc", "body", "sacrum")
        ]
        named = sum(c["levels_named"].values())
        lines.append(
            f"{c['case']:<16}" + "  ".join(cells) + f"   named {named}/{len(c['levels_named'])}"
        )
    s = result["summary"]
    lines.append("")
    lines.append("mean Dice: " + ", ".join(f"{k} {v:.3f}" for k, v in s["dice"].items()))
    hd = []
    for k, v in s["hd95_mm"].items():
        n, miss = s.get("hd95_n", {}).get(k), s.get("hd95_missing", {}).get(k)
        counts = (
            "" if n is None else f" (n={n}" + (f"; {miss} without a prediction)" if miss else ")")
        )
        hd.append(f"{k} {v:.1f}{counts}")
    lines.append("mean HD95 (mm): " + ", ".join(hd))
    lines.append("per level Dice: " + ", ".join(f"{k} {v:.3f}" for k, v in s["level_dice"].items()))
    lines.append(f"levels named correctly: {s['levels_named']} ({s['levels_named_fraction']:.1%})")
    left = sorted(
        {v for c in result["cases"] for vs in c.get("unscored_labels", {}).values() for v in vs}
    )
    if left:
        lines.append(f"predicted labels not in the reference, left out of class scores: {left}")
    for what, subjects in result.get("unmatched", {}).items():
        if subjects:
            lines.append(f"{what.replace('_', ' ')}, not scored: {', '.join(subjects)}")
    for case, labels in result.get("no_shared_level_label", {}).items():
        lines.append(
            f"{case}: the prediction shares no level label with its reference (reference "
            f"{labels['reference']}, prediction {labels['prediction']}); another label "
            "convention?"
        )
    cut = result.get("posterior_elements_removed", [])
    if cut:
        lines.append(
            f"references cut to the vertebral bodies (their *_label-posterior_mask "
            f"removed): {', '.join(cut)}"
        )
    larger = result.get("reference_vertebrae_larger", {})
    if larger:
        lines.append(
            f"reference vertebrae over {WHOLE_VERTEBRA_RATIO}x the predicted ones (whole "
            "vertebrae with posterior elements, or bodies under-segmented? discquant labels "
            "vertebral bodies): "
            + ", ".join(f"{case} {ratio:.2f}x" for case, ratio in larger.items())
        )
    turned = result.get("predictions_reoriented", [])
    if turned:
        lines.append(
            "predictions stored with their axes in another order than their reference's, "
            f"reoriented onto its grid: {', '.join(turned)}"
        )
    if "note" in result:
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Real references in ../shared/data → SPINEPS convention


def convert_real_references(data_root: Path, out_dir: Path) -> list[Path]:
    """Write the real masks as SPINEPS label maps (``sub-*_dseg.nii.gz``) in ``out_dir``.

    ``lumbar-t2-discs``: 1..5 → 120..124. ``lumbar-t2-vertebrae``: instances → body
    labels (``vb1x*``: instance 1 is S1 and is left out, since only its first segment of
    the sacrum is outlined; ``vb2x*``: instance 1 is L5).
    """
    import nibabel as nib

    from discquant.segment.data import vertebra_truth_labels

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for p in sorted((data_root / "lumbar-t2-discs").glob("sub-*_dseg.nii.gz")):
        img: Any = nib.load(str(p))
        d = np.asarray(img.dataobj).astype(np.int16)
        out = np.where(d > 0, d + 119, 0).astype(np.int16)
        dest = out_dir / p.name
        nib.save(nib.Nifti1Image(out, img.affine), str(dest))
        written.append(dest)
    for p in sorted((data_root / "lumbar-t2-vertebrae").glob("sub-*_vbseg.nii.gz")):
        img = nib.load(str(p))
        d = np.asarray(img.dataobj).astype(np.int16)
        sub = p.name.split("_")[0]
        mapping = vertebra_truth_labels(sub, int(d.max()))
        out = np.zeros(d.shape, dtype=np.int16)
        for k, lab in mapping.items():
            if lab != SACRUM_LABEL:
                out[d == k] = lab
        dest = out_dir / f"{sub}_dseg.nii.gz"
        nib.save(nib.Nifti1Image(out, img.affine), str(dest))
        written.append(dest)
    return written


# ---------------------------------------------------------------------------------------
# Mid-sagittal slices without masks


@dataclass
class MidsagResult:
    """Whether L3-L4, L4-L5 and L5-S1 were found (and, with boxes, placed right)."""

    case: str
    found: list[str]
    three_found: bool
    in_boxes: bool | None = None
    order_ok: bool | None = None
    strict_ok: bool | None = None


#: Box classes in Sudirman's ``boxes.tsv`` that outline a disc (the others, spinal
#: stenosis and spondylolisthesis, outline the canal or a slipped segment).
DISC_BOX_CLASSES = (
    "normal_ivd",
    "degenerative_disc_disease",
    "lumbar_disc_bulge",
    "thoracic_disc_bulge",
)


def read_boxes(
    path: Path, *, classes: Sequence[str] | None = DISC_BOX_CLASSES
) -> dict[str, list[tuple[float, float, float, float]]]:
    """Sudirman ``boxes.tsv``: per subject ``(x, y, w, h)`` normalised (x column, y row).

    Only boxes of ``classes`` are kept (all when ``None``). Subjects are read as text (a
    numeric ID such as ``007`` keeps its zeros); blank lines and a UTF-8 byte-order mark
    are ignored.
    """
    import pandas as pd

    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    if classes is not None:
        table = table[table["class"].isin(list(classes))]
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for subject, x, y, w, h in table[
        ["subject", "x_center", "y_center", "width", "height"]
    ].itertuples(index=False):
        out.setdefault(str(subject), []).append((float(x), float(y), float(w), float(h)))
    return out


def midsag_check(
    case: str,
    levels: Sequence[Any],
    affine: npt.NDArray[np.float64],
    shape: tuple[int, ...],
    boxes: Sequence[tuple[float, float, float, float]] | None = None,
) -> MidsagResult:
    """Check one mid-sagittal prediction (``levels``: :class:`DiscLevel` list).

    With ``boxes`` (normalised, x = column = voxel axis 1, y = row = voxel axis 0):
    ``in_boxes`` = each of the three named discs' centres lies in a box; ``order_ok`` =
    their rows increase L3-L4 → L4-L5 → L5-S1; ``strict_ok`` = additionally L5-S1,
    L4-L5 and L3-L4 sit in the lowest, second and third lowest boxes.
    """
    want = ("L3-L4", "L4-L5", "L5-S1")
    named = {lv.name: lv for lv in levels}
    found = [w for w in want if w in named]
    res = MidsagResult(case=case, found=found, three_found=len(found) == 3)
    if boxes is None:
        return res
    from nibabel.affines import apply_affine

    inv = np.linalg.inv(affine)
    rows, cols = shape[0], shape[1]
    centres: dict[str, tuple[float, float]] = {}
    for w in found:
        v = apply_affine(inv, np.asarray(named[w].centroid_mm, dtype=float))
        centres[w] = (float(v[0]) / rows, float(v[1]) / cols)  # (row, col) normalised

    def box_of(rc: tuple[float, float]) -> int | None:
        for i, (x, y, bw, bh) in enumerate(boxes):
            if abs(rc[1] - x) <= bw / 2 and abs(rc[0] - y) <= bh / 2:
                return i
        return None

    hits = {w: box_of(centres[w]) for w in found}
    res.in_boxes = res.three_found and all(h is not None for h in hits.values())
    res.order_ok = res.three_found and (
        centres["L3-L4"][0] < centres["L4-L5"][0] < centres["L5-S1"][0]
    )
    # Rank boxes from the lowest up; a disc with two findings has two boxes with nearly
    # the same centre, which share a rank.
    rank: dict[int, int] = {}
    last_y: float | None = None
    for i in sorted(range(len(boxes)), key=lambda i: -boxes[i][1]):
        if last_y is None or abs(last_y - boxes[i][1]) >= 0.5 * boxes[i][3]:
            last_y = boxes[i][1]
            rank[i] = len(set(rank.values()))
        else:
            rank[i] = max(rank.values())
    ranks = {w: (rank[h] if h is not None else None) for w, h in hits.items()}
    res.strict_ok = bool(
        res.in_boxes
        and ranks.get("L5-S1") == 0
        and ranks.get("L4-L5") == 1
        and ranks.get("L3-L4") == 2
    )
    return res


def write_result(result: dict[str, Any], path: Path) -> None:
    """Write a result dict as indented JSON (strict: an undefined value is ``null``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_strict(result, indent=2))
