"""Segmentation metrics: Dice per class and per level, HD95, level-naming accuracy.

Label maps follow the SPINEPS convention (bodies 17..25, sacrum 26, discs 100 + the
vertebra above). A class or level is scored only where the reference labels it, so that
partially labelled references (discs only, bodies only) are fair. Dice and the 95th
percentile Hausdorff distance are MONAI's (``monai.metrics``).

Also here: the mid-sagittal checks on sets without masks (SPIDER: which levels exist;
Sudirman: disc bounding boxes) and the conversion of the real reference masks in
``../shared/data`` to the SPINEPS convention.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

CLASS_RANGES: dict[str, tuple[int, int]] = {
    "disc": (100, 199),
    "body": (1, 25),
    "sacrum": (26, 26),
}
LUMBAR_DISCS = (120, 121, 122, 123, 124)
LUMBAR_BODIES = (20, 21, 22, 23, 24)


@dataclass
class CaseResult:
    """Metrics of one case."""

    case: str
    dice: dict[str, float] = field(default_factory=dict)
    hd95_mm: dict[str, float] = field(default_factory=dict)
    level_dice: dict[str, float] = field(default_factory=dict)
    levels_named: dict[str, bool] = field(default_factory=dict)


def _class_mask(labels: npt.NDArray, name: str) -> npt.NDArray[np.bool_]:
    lo, hi = CLASS_RANGES[name]
    return (labels >= lo) & (labels <= hi)


def _dice_hd95(
    pred: npt.NDArray[np.bool_], ref: npt.NDArray[np.bool_], spacing: Sequence[float]
) -> tuple[float, float]:
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance

    p = torch.from_numpy(pred[None, None].astype(np.float32))
    r = torch.from_numpy(ref[None, None].astype(np.float32))
    dice = float(compute_dice(p, r, include_background=True)[0, 0])
    if pred.any() and ref.any():
        hd = float(
            compute_hausdorff_distance(
                p, r, include_background=True, percentile=95, spacing=list(spacing)
            )[0, 0]
        )
    else:
        hd = float("nan")
    return dice, hd


def evaluate_case(
    pred: npt.NDArray[np.integer],
    ref: npt.NDArray[np.integer],
    spacing_mm: Sequence[float],
    *,
    case: str = "",
) -> CaseResult:
    """Dice/HD95 per class present in ``ref``; Dice and naming per reference level.

    A reference level counts as *named correctly* when the predicted label that covers
    most of it is the same label (and it covers at least 10 % of it).
    """
    if pred.shape != ref.shape:
        raise ValueError(f"{case}: prediction shape {pred.shape} != reference {ref.shape}")
    res = CaseResult(case=case)
    for name in CLASS_RANGES:
        r = _class_mask(ref, name)
        if not r.any():
            continue
        d, h = _dice_hd95(_class_mask(pred, name), r, spacing_mm)
        res.dice[name] = d
        res.hd95_mm[name] = h
    from discquant.segment.levels import disc_name, vertebra_name

    for lab in (int(v) for v in np.unique(ref) if v > 0):
        r = ref == lab
        key = disc_name(lab) if lab >= 100 else vertebra_name(lab)
        p = pred == lab
        res.level_dice[key] = float(2 * (p & r).sum() / (p.sum() + r.sum()))
        under = pred[r]
        under = under[under > 0]
        if under.size < 0.1 * r.sum():
            res.levels_named[key] = False
            continue
        vals, counts = np.unique(under, return_counts=True)
        res.levels_named[key] = bool(vals[np.argmax(counts)] == lab)
    return res


def _subject_of(path: Path) -> str:
    m = re.match(r"(sub-[A-Za-z0-9]+)", path.name)
    return m.group(1) if m else path.name.split(".")[0]


def evaluate_dirs(pred_dir: Path, ref_dir: Path) -> dict[str, Any]:
    """Match ``sub-*`` NIfTI files in two folders and score every pair.

    Returns a JSON-ready dict with ``cases`` and ``summary`` (means per class and level,
    fraction of levels named correctly).
    """

    from discquant.errors import InputNotFoundError
    from discquant.io.nifti import read_volume

    refs = {
        _subject_of(p): p
        for p in sorted(ref_dir.glob("sub-*.nii*"))
        if not re.search(r"_(nucleus|canal)\.", p.name)
    }
    preds = {
        _subject_of(p): p
        for p in sorted(pred_dir.glob("sub-*.nii*"))
        if not re.search(r"_(nucleus|canal)\.", p.name)
    }
    common = sorted(set(refs) & set(preds))
    if not common:
        raise InputNotFoundError(f"no matching sub-* NIfTI files in {pred_dir} and {ref_dir}")
    cases = []
    for sub in common:
        ref_vol, pred_vol = read_volume(refs[sub]), read_volume(preds[sub])
        if not np.allclose(ref_vol.affine, pred_vol.affine, atol=1e-3):
            logger.warning("%s: prediction and reference affines differ", sub)
        cases.append(
            evaluate_case(
                pred_vol.data.astype(np.int32),
                ref_vol.data.astype(np.int32),
                list(ref_vol.voxel_mm),
                case=sub,
            )
        )
    return {"cases": [asdict(c) for c in cases], "summary": summarise(cases)}


def summarise(cases: Sequence[CaseResult]) -> dict[str, Any]:
    """Means over cases of class Dice/HD95 and per-level Dice; naming accuracy."""
    out: dict[str, Any] = {"n_cases": len(cases), "dice": {}, "hd95_mm": {}, "level_dice": {}}
    for attr in ("dice", "hd95_mm", "level_dice"):
        keys = sorted({k for c in cases for k in getattr(c, attr)})
        for k in keys:
            vals = [getattr(c, attr)[k] for c in cases if k in getattr(c, attr)]
            vals = [v for v in vals if np.isfinite(v)]
            out[attr][k] = float(np.mean(vals)) if vals else float("nan")
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
    lines.append("mean HD95 (mm): " + ", ".join(f"{k} {v:.1f}" for k, v in s["hd95_mm"].items()))
    lines.append("per level Dice: " + ", ".join(f"{k} {v:.3f}" for k, v in s["level_dice"].items()))
    lines.append(f"levels named correctly: {s['levels_named']} ({s['levels_named_fraction']:.1%})")
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
            if lab != 26:
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

    Only boxes of ``classes`` are kept (all when ``None``).
    """
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    ix = [header.index(k) for k in ("subject", "x_center", "y_center", "width", "height")]
    ic = header.index("class")
    for line in lines[1:]:
        f = line.split("\t")
        if classes is not None and f[ic] not in classes:
            continue
        out.setdefault(f[ix[0]], []).append(tuple(float(f[i]) for i in ix[1:]))  # type: ignore[arg-type]
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
    inv = np.linalg.inv(affine)
    rows, cols = shape[0], shape[1]
    centres: dict[str, tuple[float, float]] = {}
    for w in found:
        v = inv @ np.append(np.array(named[w].centroid_mm), 1.0)
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
    """Write a result dict as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
