"""Training data for the Pfirrmann network: graded discs of the real sets, as crops.

Sudirman (``sudirman-midsag-t2``) grades L3-L4, L4-L5 and L5-S1 and gives disc boxes
(YOLO form, x = column, y = row, normalised) whose class names the finding, not the
level. Disc boxes are those of classes ``normal_ivd``, ``degenerative_disc_disease``,
``lumbar_disc_bulge`` and ``thoracic_disc_bulge``; boxes of one disc that overlap are
merged; sorted top to bottom, the lowest three are L3-L4, L4-L5 and L5-S1 (checked by eye
on rendered images, and by the ``degenerative_disc_disease`` boxes landing on the discs
graded 4-5, see docs/grading.md). The disc normal is taken from the line through the
neighbouring disc centres (the local spine axis), extrapolated at L5-S1.

SPIDER (``spider-midsag-t2``) has no disc boxes; its discs are located by the
segmentation model when one is installed (:func:`spider_discs`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from discquant.errors import InputNotFoundError, InvalidInputError
from discquant.grade.crops import DiscLocation, extract_disc_crop
from discquant.io.nifti import read_volume
from discquant.io.study import Volume
from discquant.results import DISC_LABELS

log = logging.getLogger(__name__)

DISC_BOX_CLASSES = (
    "normal_ivd",
    "degenerative_disc_disease",
    "lumbar_disc_bulge",
    "thoracic_disc_bulge",
)
SUDIRMAN_LEVELS = ("L3-L4", "L4-L5", "L5-S1")


@dataclass(frozen=True)
class GradedDisc:
    """One graded disc with where it is in its image."""

    subject: str
    level: str
    grade: int
    image_path: Path
    location: DiscLocation
    herniation: int | None = None
    """Disc herniation 0/1 where the source grades it (SPIDER), else None."""
    source: str = ""
    """The data set it comes from (``sudirman``, ``spider``); empty when not known."""


BOX_COLUMNS = ("subject", "class", "x_center", "y_center", "width", "height")
"""Columns of the Sudirman ``boxes.tsv`` (YOLO boxes, normalised to the image size)."""


def _read_boxes(path: Path) -> Any:
    """The disc boxes of ``boxes.tsv`` (other finding classes dropped), checked.

    Raises
    ------
    InvalidInputError
        Unreadable, a column missing, or a box coordinate that is not a number in 0-1 (the
        message names the file and the line).
    """
    import pandas as pd

    try:  # subjects as text, as read_gradings reads them: a numeric ID ("17") must match
        boxes = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read the disc boxes: {exc}", path=path) from exc
    boxes.columns = [str(c).strip() for c in boxes.columns]
    missing = [c for c in BOX_COLUMNS if c not in boxes.columns]
    if missing:
        raise InvalidInputError(f"disc boxes have no {', '.join(missing)} column", path=path)
    boxes = boxes.apply(lambda c: c.str.strip())
    boxes["line"] = np.arange(len(boxes)) + 2  # line 1 is the header
    for col in BOX_COLUMNS[2:]:
        values = pd.to_numeric(boxes[col], errors="coerce")
        bad = ~values.between(0.0, 1.0)
        if bad.any():
            row = boxes[bad].iloc[0]
            raise InvalidInputError(
                f"line {row['line']}: {col} {row[col][:20]!r} is not a number in 0-1", path=path
            )
        boxes[col] = values
    return boxes[boxes["class"].isin(DISC_BOX_CLASSES)]


def merge_disc_boxes(boxes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Merge overlapping boxes of one disc; rows (x, y, w, h) in pixels, sorted top→bottom.

    Two boxes are one disc when their centres are closer vertically than half the
    smaller box height and their horizontal extents overlap.
    """
    order = np.argsort(boxes[:, 1])
    merged: list[list[npt.NDArray[np.float64]]] = []
    for b in boxes[order]:
        for group in merged:
            m = np.mean(group, axis=0)
            close = abs(b[1] - m[1]) < 0.5 * min(b[3], m[3])
            overlap = abs(b[0] - m[0]) < 0.5 * (b[2] + m[2])
            if close and overlap:
                group.append(b)
                break
        else:
            merged.append([b])
    out = np.array([np.mean(g, axis=0) for g in merged])
    return out[np.argsort(out[:, 1], kind="stable")]


def spine_normals(centres_rc: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Disc normals (row, col) pointing up, from centres sorted top→bottom.

    Inner discs: the line through both neighbours. End discs: the end segment's
    direction, turned on by half the curvature between the last two segments (the
    lordosis keeps bending at L5-S1).
    """
    n = len(centres_rc)
    normals = np.zeros((n, 2))
    if n < 2:
        normals[:] = (-1.0, 0.0)
        return normals
    seg = centres_rc[:-1] - centres_rc[1:]  # from lower to upper disc: points up
    ang = np.arctan2(seg[:, 1], -seg[:, 0])  # angle from "up" (negative row)
    for i in range(n):
        if 0 < i < n - 1:
            d = centres_rc[i - 1] - centres_rc[i + 1]
            a = float(np.arctan2(d[1], -d[0]))
        elif i == 0:
            a = float(ang[0] - (0.5 * (ang[1] - ang[0]) if n > 2 else 0.0))
        else:
            a = float(ang[-1] + (0.5 * (ang[-1] - ang[-2]) if n > 2 else 0.0))
        normals[i] = (-np.cos(a), np.sin(a))
    return normals


def _data_folder(root: Path, what: str, key: str) -> None:
    """``root`` must be a folder; else an error naming ``what`` and the configuration's
    ``key`` that gave it (``sudirman``, ``spider``, ``graded_sets``)."""
    if not root.is_dir():
        raise InputNotFoundError(
            f"{what} data folder not found (relative to the folder the command runs in; "
            f"the training configuration's {key} names it)",
            path=root,
        )


def _image_of(root: Path, subject: str) -> Path:
    """``<subject>_T2w.nii.gz``, or ``.nii`` when only that exists."""
    image = root / f"{subject}_T2w.nii.gz"
    plain = root / f"{subject}_T2w.nii"
    return plain if not image.is_file() and plain.is_file() else image


def _check_images(root: Path, subjects: Any) -> None:
    """Every graded subject has its ``<subject>_T2w.nii[.gz]`` (checked before any is read)."""
    for subject in subjects:
        image = _image_of(root, str(subject))
        if not image.is_file():
            raise InputNotFoundError("image of a graded subject not found", path=image)


def read_gradings(
    path: Path,
    grade_columns: tuple[str, ...],
    *,
    levels: tuple[str, ...] | None = None,
    strict_levels: bool = False,
) -> Any:
    """A ``gradings.tsv`` as a DataFrame (text cells), its grades checked and made integers.

    Parameters
    ----------
    path
        The table (tab-separated; commas and semicolons are recognised too): ``subject``,
        ``level`` and a grade column.
    grade_columns
        Accepted names of the grade column, the first one present is used; its values
        become the integer column ``grade``.
    levels
        Only rows of these levels are kept (and checked); None keeps every row.
    strict_levels
        Level spellings such as ``L4/L5`` or ``L4_L5`` are read as ``L4-L5``, and a row of
        any other level is refused (a user's table: an unknown spelling was dropped
        without a word), instead of leaving out the rows of other levels.

    Raises
    ------
    InputNotFoundError
        No such file.
    InvalidInputError
        Unreadable, a row with more or fewer fields than the header (its line), a
        column missing, a kept row whose grade is not 1-5 (the message names the file,
        the line and the value), or a kept (subject, level) on two lines.
    """
    import pandas as pd

    from discquant.delimited import data_row_lines, sniff_delimiter

    if not path.is_file():
        raise InputNotFoundError("gradings file not found", path=path)
    # A table saved with commas was read as one column ("no subject, level, ... column"),
    # and a row with a field too many shifted its columns ("level '3'"): the separator is
    # found and every row's field count checked, with its line, before pandas reads it.
    sep = sniff_delimiter(path, prefer="\t")
    lines = data_row_lines(path, sep)
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read the gradings: {exc}", path=path) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    col = next((c for c in grade_columns if c in frame.columns), None)
    missing = [c for c in ("subject", "level") if c not in frame.columns]
    if col is None:
        missing.append(" or ".join(grade_columns))
    if missing:
        raise InvalidInputError(f"gradings have no {', '.join(missing)} column", path=path)
    frame = frame.apply(lambda c: c.str.strip())
    blank = (frame == "").all(axis=1).to_numpy()  # ",," rows a spreadsheet exports
    frame["line"] = lines  # physical lines (blank lines skipped by pandas counted)
    frame = frame[~blank]
    if levels is not None and strict_levels:
        from discquant.results import normalise_level

        frame = frame.assign(level=frame["level"].map(normalise_level))
        other = frame[~frame["level"].isin(levels)]
        if len(other):
            row = other.iloc[0]
            raise InvalidInputError(
                f"line {row['line']} ({row['subject'] or 'no subject'}): level "
                f"{row['level']!r} is not one of {', '.join(levels)}",
                path=path,
            )
    elif levels is not None:
        frame = frame[frame["level"].isin(levels)]
    grades: list[int] = []
    for line, subject, raw in zip(frame["line"], frame["subject"], frame[col], strict=True):
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if value not in (1.0, 2.0, 3.0, 4.0, 5.0):
            raise InvalidInputError(
                f"line {line} ({subject or 'no subject'}): Pfirrmann grade {raw!r} in "
                f"column {col} is not one of 1-5",
                path=path,
            )
        grades.append(int(value))
    twice = frame[frame.duplicated(["subject", "level"], keep=False)]
    if len(twice):  # two grades for one disc: the last one silently won
        first = twice.iloc[0]
        on = ", ".join(str(v) for v in twice[twice["subject"] == first["subject"]]["line"])
        raise InvalidInputError(
            f"{first['subject']} {first['level']} is graded on more than one line ({on})",
            path=path,
        )
    return frame.assign(grade=np.array(grades, dtype=int))


def sudirman_discs(
    root: Path, locate: Literal["boxes", "masks"] = "boxes", *, segment_model: Path | None = None
) -> list[GradedDisc]:
    """Graded Sudirman discs, located by their boxes or by the segmentation model.

    The annotated boxes say which disc is which level (the lowest three are L3-L4, L4-L5,
    L5-S1; subjects with < 3 disc boxes are skipped). ``locate`` says where each crop is
    placed:

    - ``boxes``: the box centre, oriented along the line through the neighbouring box
      centres (extrapolated at L5-S1);
    - ``masks``: as ``discquant analyze`` places it (``DiscLocation.from_mask``), from the
      disc of the segmentation (:func:`discquant.segment.segment_spine`) with the most
      voxels inside the box; the box placement is kept when no segmented disc has 10
      voxels in the box (counted in the log). Training on these crops removes the
      difference between training and analysis crops (13 degrees at L5-S1 on average,
      ``benchmarks/grade_crop_sources.py``). ``segment_model``: a segmentation
      ``model.pt`` to use instead of the shipped one.

    Raises
    ------
    InputNotFoundError
        The folder, ``gradings.tsv``, ``boxes.tsv`` or a graded subject's image is missing.
    InvalidInputError
        A grade of L3-L4, L4-L5 or L5-S1 that is not 1-5 (:func:`read_gradings`).
    """

    _data_folder(root, "Sudirman", "sudirman")
    grades = read_gradings(root / "gradings.tsv", ("pfirrmann_grade",), levels=SUDIRMAN_LEVELS)
    if not (root / "boxes.tsv").is_file():
        raise InputNotFoundError("disc boxes file not found", path=root / "boxes.tsv")
    boxes = _read_boxes(root / "boxes.tsv")
    _check_images(root, grades["subject"].unique())
    segment = (
        _segmenter("Sudirman discs located by masks", segment_model) if locate == "masks" else None
    )
    out: list[GradedDisc] = []
    skipped = kept_box = 0
    for subject, g in grades.groupby("subject"):
        path = _image_of(root, str(subject))
        b = boxes[boxes["subject"] == subject]
        img = read_volume(path)
        rows, cols = img.shape[:2]
        px = np.column_stack(
            [b.x_center * cols, b.y_center * rows, b.width * cols, b.height * rows]
        ).astype(float)
        if len(px) == 0:
            skipped += 1
            continue
        merged = merge_disc_boxes(px)
        if len(merged) < 3:
            skipped += 1
            continue
        centres_rc = merged[:, [1, 0]]
        normals = spine_normals(centres_rc)
        vol = Volume(np.zeros((1, 1, 1), np.float32), np.asarray(img.affine, np.float64))
        labels = segment(img).labels.data if segment is not None else None
        grade_by_level = dict(zip(g.level, g.grade, strict=True))
        for k, level in enumerate(SUDIRMAN_LEVELS):
            i = len(merged) - 3 + k
            if level not in grade_by_level:
                continue
            r, c = centres_rc[i]
            nr, nc = normals[i]
            loc = DiscLocation.from_voxel(vol, (r, c, 0.0), normal_ijk=(nr, nc, 0.0))
            if labels is not None:
                mask = disc_in_box(labels, merged[i])
                if mask is None:
                    kept_box += 1
                else:
                    loc = DiscLocation.from_mask(img, mask)
            out.append(
                GradedDisc(
                    str(subject), level, int(grade_by_level[level]), path, loc, source="sudirman"
                )
            )
    log.info("Sudirman: %d graded discs located, %d subjects skipped", len(out), skipped)
    if segment is not None:
        log.info("Sudirman: %d discs kept their box placement (no segmented disc)", kept_box)
    return out


def disc_in_box(
    labels: npt.NDArray[Any], box_xywh_px: npt.NDArray[np.float64], min_voxels: int = 10
) -> npt.NDArray[np.bool_] | None:
    """The segmented disc (label 100-199) with most voxels in a box, or None.

    ``box_xywh_px`` is (column centre, row centre, width, height) in pixels of the
    image's first two axes; a disc counts only with ``min_voxels`` inside the box. The
    whole disc's mask is returned (also its voxels outside the box).
    """
    x, y, w, h = box_xywh_px
    r0, r1 = max(0, int(np.floor(y - h / 2))), int(np.ceil(y + h / 2))
    c0, c1 = max(0, int(np.floor(x - w / 2))), int(np.ceil(x + w / 2))
    inside = labels[r0:r1, c0:c1]
    values, counts = np.unique(inside[(inside >= 100) & (inside < 200)], return_counts=True)
    if len(values) == 0 or counts.max() < min_voxels:
        return None
    return np.asarray(labels == values[np.argmax(counts)])


def _segmenter(purpose: str, model_path: Path | None = None) -> Any:
    """:func:`discquant.segment.segment_spine` with the shipped model (or the one at
    ``model_path``), or a one-line error naming ``purpose``."""
    try:
        from discquant.segment import load_segmentation_model, segment_spine
    except ImportError as exc:
        raise InvalidInputError(
            f"{purpose} need the segmentation model (discquant.segment.segment_spine), "
            "which is not available in this installation"
        ) from exc
    if model_path is None:
        return segment_spine
    return functools.partial(segment_spine, model=load_segmentation_model(model_path))


def build_crops(discs: list[GradedDisc], **crop_kw: object) -> npt.NDArray[np.float32]:
    """Crops for a list of discs, each image read once."""
    crops: list[npt.NDArray[np.float32] | None] = [None] * len(discs)
    by_path: dict[Path, list[int]] = {}
    for i, d in enumerate(discs):
        by_path.setdefault(d.image_path, []).append(i)
    for path, idx in by_path.items():
        vol = read_volume(path)
        for i in idx:
            crops[i] = extract_disc_crop(vol, discs[i].location, **crop_kw)  # type: ignore[arg-type]
    return np.stack([c for c in crops if c is not None])


def spider_discs(
    root: Path, subjects: set[str] | None = None, *, segment_model: Path | None = None
) -> list[GradedDisc]:
    """Graded SPIDER discs located by the segmentation model (:func:`graded_discs` of the
    ``spider-midsag-t2`` folder, source ``spider``; its disc 1 is L5-S1 in ``gradings.tsv``).

    Parameters
    ----------
    root
        The ``spider-midsag-t2`` folder (images and ``gradings.tsv``).
    subjects
        Only these subjects (e.g. a model's held-out patients); None for all.
    segment_model
        A segmentation ``model.pt`` to locate the discs with; None: the shipped one.
    """
    return graded_discs(
        root, "spider", subjects, segment_model=segment_model, strict=False, config_key="spider"
    )


def graded_discs(
    root: Path,
    source: str,
    subjects: set[str] | None = None,
    *,
    segment_model: Path | None = None,
    strict: bool = True,
    config_key: str = "graded_sets",
) -> list[GradedDisc]:
    """Graded discs of a folder of ``<subject>_T2w.nii[.gz]`` images and a ``gradings.tsv``
    (``subject``, ``level`` L1-L2 … L5-S1, ``pfirrmann_grade``; optional
    ``disc_herniation`` 0/1, empty when not graded, any other value refused), located by
    the segmentation model: the SPIDER layout, and that of a user's own graded set
    (``graded_sets`` of the grading configuration).

    Each image (of ``subjects`` only, when given) is segmented with
    :func:`discquant.segment.segment_spine`; a graded level whose disc label is missing
    from the segmentation is skipped (logged).

    Parameters
    ----------
    root
        The folder.
    source
        The set's name, kept in :attr:`GradedDisc.source`.
    subjects
        Only these subjects; None for all.
    segment_model
        A segmentation ``model.pt`` to locate the discs with; None: the shipped one.
    strict
        Level spellings normalised and other levels refused
        (:func:`read_gradings`'s ``strict_levels``); False for SPIDER, whose table also
        grades levels discquant does not name, left out.
    config_key
        The training configuration's key that named ``root``, for the error when it is
        missing (a graded set named ``Spider`` was said to come from ``spider``).
    """
    segment_spine = _segmenter(f"{source} discs", segment_model)
    _data_folder(root, source, config_key)
    # SPIDER's source spells the column "pfirrman_grade"
    grades = read_gradings(
        root / "gradings.tsv",
        ("pfirrmann_grade", "pfirrman_grade"),
        levels=tuple(DISC_LABELS),
        strict_levels=strict,
    )
    if "disc_herniation" not in grades.columns:
        grades = grades.assign(disc_herniation="")  # not graded
    _check_herniation(grades, root / "gradings.tsv")  # before any image is segmented
    if subjects is not None:
        grades = grades[grades["subject"].isin(subjects)]
    _check_images(root, grades["subject"].unique())
    out: list[GradedDisc] = []
    missing: list[str] = []
    uncertain: list[str] = []
    for subject, g in grades.groupby("subject"):
        path = _image_of(root, str(subject))
        vol = read_volume(path)
        segmentation = segment_spine(vol)
        labels = segmentation.labels.data
        if "level_uncertain" in segmentation.flags:
            uncertain.append(str(subject))
        for level, grade, hern in zip(g.level, g.grade, g.disc_herniation, strict=True):
            mask = labels == DISC_LABELS[level]
            if mask.sum() < 10:
                missing.append(f"{subject} {level}")
                continue
            loc = DiscLocation.from_mask(vol, mask)
            h = _herniation(hern)
            out.append(GradedDisc(str(subject), str(level), int(grade), path, loc, h, source))
    log.info("%s: %d graded discs located", source, len(out))
    # Said as warnings (they were INFO, hidden by --quiet): a disc the segmentation does
    # not find is neither trained on nor scored, and a level name the segmentation is
    # unsure of may attach a grade to the neighbouring disc (a user trial).
    if missing:
        log.warning(
            "%s: %d graded levels not found by the segmentation, left out of training and "
            "scoring: %s",
            source,
            len(missing),
            _first_few(missing),
        )
    if uncertain:
        log.warning(
            "%s: the level names of %d images are uncertain (level_uncertain), so a grade "
            "may sit on the neighbouring disc: %s",
            source,
            len(uncertain),
            _first_few(uncertain),
        )
    return out


def _first_few(names: list[str], most: int = 5) -> str:
    """``a, b, c`` and ``and N more`` beyond ``most``."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


NOT_GRADED = ("", "n/a")
"""``disc_herniation`` cells of a disc not graded for it (empty, or BIDS' ``n/a``)."""


def _herniation(raw: str) -> int | None:
    """0/1 from a ``disc_herniation`` cell; None when it is anything else (not graded:
    :func:`_check_herniation` has refused every other value)."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if value in (0.0, 1.0) else None


def _check_herniation(grades: Any, path: Path) -> None:
    """Refuse a ``disc_herniation`` cell that is neither 0, 1 nor empty (``yes``, ``2``):
    its disc was dropped from herniation training without a word.

    Raises
    ------
    InvalidInputError
        Naming the file, the line, the subject and the value.
    """
    cells = zip(grades["line"], grades["subject"], grades["disc_herniation"], strict=True)
    for line, subject, raw in cells:
        if _herniation(raw) is None and raw.lower() not in NOT_GRADED:
            raise InvalidInputError(
                f"line {line} ({subject or 'no subject'}): disc_herniation {raw!r} is not "
                "0 (no), 1 (yes) or empty (not graded)",
                path=path,
            )


def phantom_crops(
    seeds: list[int], *, snr: float = 20.0, **crop_kw: object
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int_], list[tuple[str, str, int]]]:
    """Crops of the five lumbar discs of phantom studies with random grades.

    Each seed draws five grades uniformly from 1-5 and renders a phantom T2 study (5
    sagittal slices; the DWI is rendered small, with the offset and EPI distortion on,
    because grading reads only the T2). Discs are located from the phantom's true labels.

    Returns
    -------
    crops, grades, rows
        ``rows`` are ``(subject, level, grade)`` with subject ``phantom-<seed>``.
    """
    from discquant.phantom import PhantomConfig, generate_study

    crops, grades, rows = [], [], []
    for seed in seeds:
        rng = np.random.default_rng([seed, 77])
        g5 = tuple(int(g) for g in rng.integers(1, 6, size=5))
        cfg = PhantomConfig(
            grades=g5,  # type: ignore[arg-type]
            snr=snr,
            t2_slices=5,
            dwi_matrix=(48, 40),
            dwi_slices=3,
            epi_distortion=True,
        )
        study = generate_study(seed, cfg)
        for level, grade in zip(SUDIRMAN_LEVELS_ALL, g5, strict=True):
            mask = study.labels_t2.data == DISC_LABELS[level]
            crops.append(extract_disc_crop(study.t2, mask, **crop_kw))  # type: ignore[arg-type]
            grades.append(grade)
            rows.append((f"phantom-{seed}", level, grade))
    return np.stack(crops), np.array(grades), rows


SUDIRMAN_LEVELS_ALL = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
