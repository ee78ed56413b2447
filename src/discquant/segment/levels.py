"""Instances, order along the spine and level names.

Conventions (VerSe / SPINEPS, as the phantom uses them): vertebrae C1 … C7 = 1 … 7,
T1 … T12 = 8 … 19, L1 … L5 = 20 … 24, a sixth lumbar vertebra L6 = 25, sacrum = 26, a
thirteenth thoracic vertebra T13 = 28; a disc is 100 + the label of the vertebra above
it (L1-L2 = 120 … L5-S1 = 124; with an L6, 124 is L5-L6 and 125 is L6-S1). The
pipeline names L1-L2 … L5-S1 only: it flags transitional anatomy rather than naming an
L6.

Naming works on class maps (background / body / disc / sacrum) on the reoriented grid
(rows superior→inferior, columns anterior→posterior, slices left→right):

1. disc instances = 3D connected components of the disc class (small fragments dropped,
   pieces of one disc split across slices merged);
2. discs are ordered along the spine, i.e. by their position along a curve through the
   disc centroids (for a lumbar spine this is the superior→inferior order of centroids);
3. the sacrum anchors the names: when sacrum voxels lie below the lowest disc, that disc
   is L5-S1 and the names go upwards. Without a sacrum (or with too little of it in view
   to tell it from a vertebra cut by the image's edge) the lowest disc is still called
   L5-S1 but flagged ``sacrum_not_in_fov`` and ``level_uncertain``;
4. a link between neighbouring discs about twice as long as its neighbours
   (:data:`MAX_GAP_RATIO`) says a disc was missed there: the names above it are kept
   but flagged ``disc_possibly_missed`` and ``level_uncertain``;
5. every body voxel goes to the vertebra above or below its nearest disc (its side is
   the sign of its offset along the local spine direction), which splits bodies that
   touch and names them from the discs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from nibabel.affines import apply_affine, voxel_sizes
from scipy import ndimage

from discquant.results import (
    DISC_OFFSET,
    FLAG_DISC_MISSED,
    FLAG_HEADER_MIRRORED,
    FLAG_L5S1_SUSPECT,
    FLAG_LEVEL_UNCERTAIN,
    FLAG_NO_DISCS,
    FLAG_NO_SACRUM,
    FLAG_TRANSITIONAL,
    SACRUM_LABEL,
    VERTEBRA_LABELS,
)

logger = logging.getLogger(__name__)

SACRUM = SACRUM_LABEL
L5 = VERTEBRA_LABELS["L5"]

_VERTEBRA_NAMES = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{16 - i: f"T{9 - i}" for i in range(9)},
    17: "T10",
    18: "T11",
    19: "T12",
    20: "L1",
    21: "L2",
    22: "L3",
    23: "L4",
    24: "L5",
    25: "L6",
    26: "S",
    28: "T13",
}
T12 = VERTEBRA_LABELS["T12"]
L6 = VERTEBRA_LABELS["L6"]
T13 = 28  # VerSe's label of a thirteenth thoracic vertebra


def vertebra_name(label: int) -> str:
    """``20`` → ``"L1"``, ``26`` → ``"S"``, ``1`` → ``"C1"``, ``28`` → ``"T13"``."""
    return _VERTEBRA_NAMES.get(int(label), f"V{label}")


def disc_name(label: int, *, has_l6: bool = False, has_t13: bool = False) -> str:
    """``120`` → ``"L1-L2"``, ``124`` → ``"L5-S1"``, ``125`` → ``"L6-S1"``.

    A disc is 100 + the label of the vertebra above it, so the name of the vertebra below
    depends on the spine: with a sixth lumbar vertebra (``has_l6``, label 25) disc 124 is
    ``"L5-L6"``, without one ``"L5-S1"``. Likewise with a thirteenth thoracic vertebra
    (``has_t13``, label 28) disc 119 is ``"T12-T13"``; the disc below T13 (128) is
    ``"T13-L1"``.
    """
    upper = int(label) - DISC_OFFSET
    if upper == T12 and has_t13:
        lower_name = "T13"
    elif upper == T13:
        lower_name = "L1"
    elif upper == L6 or (upper == L5 and not has_l6):
        lower_name = "S1"
    else:
        lower_name = vertebra_name(upper + 1)
    return f"{vertebra_name(upper)}-{lower_name}"


#: Disc labels :func:`disc_label` knows: C1-C2 (101) … L6-S1 (125), T13-L1 (128).
_DISC_LABELS = (*range(DISC_OFFSET + 1, DISC_OFFSET + L6 + 1), DISC_OFFSET + T13)


def disc_label(name: str) -> int:
    """``"L4-L5"`` → ``123`` (inverse of :func:`disc_name`, whatever its keywords:
    ``"L5-S1"`` and ``"L5-L6"`` → ``124``, ``"L6-S1"`` → ``125``, ``"T12-T13"`` → ``119``)."""
    for has_l6, has_t13 in ((False, False), (True, False), (False, True)):
        for label in _DISC_LABELS:
            if disc_name(label, has_l6=has_l6, has_t13=has_t13) == name:
                return label
    raise ValueError(f"unknown disc level name {name!r}")


@dataclass(frozen=True)
class DiscLevel:
    """One disc found in the image.

    Attributes
    ----------
    label
        SPINEPS disc label (120 … 124 for L1-L2 … L5-S1).
    name
        Level name, e.g. ``"L4-L5"``.
    centroid_mm
        Centroid in RAS millimetres.
    volume_mm3
        Volume of the disc instance.
    confidence
        Mean network probability of the disc class inside the instance, times 0.5 when
        the level names are not anchored on a sacrum or the disc lies above a link that
        says a disc was missed (``disc_possibly_missed``).
    """

    label: int
    name: str
    centroid_mm: tuple[float, float, float]
    volume_mm3: float
    confidence: float


@dataclass
class NamedLevels:
    """Result of :func:`name_levels`: an instance label map plus the levels and flags."""

    labels: npt.NDArray[np.int16]
    levels: list[DiscLevel] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def _components(mask: npt.NDArray[np.bool_], min_fraction: float) -> list[npt.NDArray[np.bool_]]:
    """3D connected components larger than ``min_fraction`` of the largest one."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel())[1:]
    keep = [i + 1 for i, s in enumerate(sizes) if s >= min_fraction * sizes.max()]
    return [lab == i for i in keep]


MAX_DISC_LENGTH_MM = 80.0
"""A disc-class component longer than this (:func:`disc_length_mm`) says the image is not
a lumbar spine: no disc is named.

Lumbar discs are about 30–35 mm deep and, like their vertebral bodies, 40–50 mm wide
(../shared/docs/science.md). The longest disc the shipped network names on the real
images is 69.2 mm (a thoracolumbar volume, sub-vb2x02; 65.9 mm on the SPIDER slices,
46.6 mm on Sudirman's, 58.8 mm on 100 unseen phantoms). In the real sagittal brain DWI it
paints "discs" up to 167 mm long, and with the one zero edge row and column cropped
away four of 25, 88, 119 and 182 mm, which the chain rule (:func:`spine_like`) took
for L2-L3 … L5-S1. Dropping only the long ones let the rest of the brain pass as
L3-L4 … L5-S1, so one refuses the chain (``benchmarks/disc_extent.py --phantoms 100``,
2026-12-07: the limit changes none of the real images or phantoms)."""


def disc_length_mm(mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]) -> float:
    """Length (mm) of a disc component along its longest principal axis.

    The span of the voxel centres of ``mask``, in world mm through ``affine``, projected
    on the first principal axis of their positions; 0 for an empty mask.
    """
    idx = np.argwhere(mask)
    if len(idx) < 2:
        return 0.0
    pts = apply_affine(affine, idx)
    pts -= pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts, full_matrices=False)
    proj = pts @ vt[0]
    return float(proj.max() - proj.min())


def _axis_offset_mm(
    point: npt.NDArray[np.float64], axis: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Sagittal-plane (A, S) distance from ``point`` to the polyline ``axis`` (K × 3), its
    end segments extended, and how far beyond the axis ends the point lies (0 within).

    Left-right is ignored: a lateral piece of a disc (a foraminal bulge) is that disc.
    """
    p, ax = point[1:], axis[:, 1:]
    k = len(ax) - 1
    best, beyond = np.inf, 0.0
    for i in range(k):
        a, ab = ax[i], ax[i + 1] - ax[i]
        length = max(float(np.linalg.norm(ab)), 1e-9)
        t = float((p - a) @ ab) / length**2
        lo = -np.inf if i == 0 else 0.0
        hi = np.inf if i == k - 1 else 1.0
        tc = min(max(t, lo), hi)
        d = float(np.linalg.norm(p - (a + tc * ab)))
        if d < best:
            best = d
            beyond = (
                max(-t, t - 1.0, 0.0) * length
                if (i == 0 and t < 0) or (i == k - 1 and t > 1)
                else 0.0
            )
    return best, beyond


def _on_spine_axis(
    discs: list[npt.NDArray[np.bool_]], affine: npt.NDArray[np.float64], max_mm: float = 20.0
) -> list[npt.NDArray[np.bool_]]:
    """Drop small disc components lying off the axis through the large ones.

    The axis is the polyline through the centroids of the components at least half the
    largest (three or more needed). A component whose centroid lies 20 mm or more from
    it in the sagittal plane is not an intervertebral disc (a disc is 35–45 mm deep, so
    its centroid sits on the axis): on unseen phantoms a bright blob against the
    posterior elements (a facet joint) took a level name and shifted the names above it
    (3 of 100 studies; docs/segmentation.md). Above the axis the thoracic spine curves
    away from the extended line, so there the tolerance grows by half the distance beyond
    the end. Below it, it does not: on the 505 Sudirman slices small remnant discs under
    L5-S1 otherwise took its name (L3-L4 … L5-S1 named within the annotated boxes: 96.6 %
    with this rule, 95.6 % with no limit below the axis). A collapsed L5-S1 under a
    collapsed L4-L5 on a strong lordosis can then be dropped; the missed-disc flag
    reports it.
    """
    sizes = [int(d.sum()) for d in discs]
    if sum(n >= 0.5 * max(sizes) for n in sizes) < 3:
        return discs
    centroids = [_centroid_mm(d, affine) for d in discs]
    axis = np.array(
        sorted((c for c, n in zip(centroids, sizes, strict=True) if n >= 0.5 * max(sizes)),
               key=lambda c: -c[2])
    )  # fmt: skip
    kept = []
    for d, c in zip(discs, centroids, strict=True):
        offset, beyond = _axis_offset_mm(c, axis)
        above_top = c[2] > axis[0][2]
        if offset < max_mm + (0.5 * beyond if above_top else 0.0):
            kept.append(d)
    return kept


def _merge_close(
    comps: list[npt.NDArray[np.bool_]], centroids: list[npt.NDArray[np.float64]], tol_mm: float
) -> tuple[list[npt.NDArray[np.bool_]], list[npt.NDArray[np.float64]]]:
    """Merge components whose centroids lie within ``tol_mm`` along superior-inferior.

    A disc seen on several sagittal slices can break into pieces (e.g. a herniation on
    a lateral slice); two real discs are always more than a disc height apart.
    """
    order = np.argsort([c[2] for c in centroids])[::-1]  # superior (large S) first
    merged: list[npt.NDArray[np.bool_]] = []
    merged_c: list[npt.NDArray[np.float64]] = []
    for i in order:
        if merged_c and abs(merged_c[-1][2] - centroids[i][2]) < tol_mm:
            merged[-1] = merged[-1] | comps[i]
            continue
        merged.append(comps[i])
        merged_c.append(centroids[i])
    return merged, merged_c


def _touches_bone(
    comp: npt.NDArray[np.bool_],
    bone: npt.NDArray[np.bool_],
    spacing: npt.NDArray[np.float64],
    radius_mm: float,
    min_ratio: float,
) -> bool:
    """Whether bone (body or sacrum) fills at least ``min_ratio`` × the component's size
    within ``radius_mm`` of it: a real disc lies between two vertebrae, a bright blob in
    the soft tissue or the canal does not."""
    r = np.maximum(np.ceil(radius_mm / spacing).astype(int), 1)
    idx = np.argwhere(comp)
    lo = np.maximum(idx.min(axis=0) - r, 0)
    hi = np.minimum(idx.max(axis=0) + r + 1, comp.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    grid = np.ogrid[tuple(slice(-int(k), int(k) + 1) for k in r)]
    ball = sum((g * sp / radius_mm) ** 2 for g, sp in zip(grid, spacing, strict=True)) <= 1.0
    shell = ndimage.binary_dilation(comp[box], structure=ball) & ~comp[box]
    return bool((shell & bone[box]).sum() >= min_ratio * comp.sum())


def _body_below_lowest(
    body: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    pts: npt.NDArray[np.float64],
    tangents: list[npt.NDArray[np.float64]],
    sacrum: npt.NDArray[np.bool_],
) -> bool:
    """Whether a body as big as half a typical body lies between the lowest disc and the
    top of the sacrum.

    Only body-class voxels above the sacrum's top (its 5th percentile along the spine
    direction at the lowest disc) count: the network often calls the upper S1 "body"
    beside its "sacrum" voxels, which is not a missed disc (it flagged 9 of 20 phantoms,
    all named correctly, before this rule; 0 of 20 after, see docs/segmentation.md).
    """
    idx = np.argwhere(body)
    if len(idx) == 0 or not sacrum.any():
        return False
    xyz = apply_affine(affine, idx)
    nearest = np.linalg.norm(xyz[:, None, :] - pts[None, :, :], axis=2).argmin(axis=1)
    side = np.einsum("ij,ij->i", xyz - pts[nearest], np.array(tangents)[nearest])
    n = len(pts)
    between = [
        int(((nearest == i) & (side > 0)).sum() + ((nearest == i + 1) & (side < 0)).sum())
        for i in range(n - 1)
    ]
    s_idx = np.argwhere(sacrum)
    s_xyz = apply_affine(affine, s_idx)
    sacrum_top = float(np.percentile((s_xyz - pts[-1]) @ tangents[-1], 5))
    below = int(((nearest == n - 1) & (side > 0) & (side < sacrum_top)).sum())
    typical = float(np.median(between)) if between else 0.0
    return typical > 0 and below >= 0.5 * typical  # no bodies between discs: nothing to compare


def chain_geometry(
    centroids: list[npt.NDArray[np.float64]],
) -> tuple[list[float], list[float]]:
    """Turning angles (degrees) and link-length ratios (longer / shorter) along a chain.

    A link joins two neighbouring discs; each three consecutive discs give the angle
    between their two links and the ratio of the longer link to the shorter. A spine is a
    smooth chain of near-equal links.

    Parameters
    ----------
    centroids
        Disc centroids in mm, in spine order.

    Returns
    -------
    angles_deg, ratios
        One value per three consecutive discs (empty for fewer than three).

    Examples
    --------
    >>> a, r = chain_geometry([np.array([0.0, 0, 0]), np.array([0.0, 0, -40]),
    ...                        np.array([0.0, 40, -80])])
    >>> [round(x, 1) for x in a], [round(x, 2) for x in r]
    ([45.0], [1.41])
    """
    pts = np.asarray(centroids, dtype=np.float64)
    if len(pts) < 3:
        return [], []
    links = np.diff(pts, axis=0)
    lengths = np.linalg.norm(links, axis=1)
    cos = np.einsum("ij,ij->i", links[:-1], links[1:]) / np.maximum(
        lengths[:-1] * lengths[1:], 1e-9
    )
    angles = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    ratios = np.maximum(lengths[:-1], lengths[1:]) / np.maximum(
        np.minimum(lengths[:-1], lengths[1:]), 1e-9
    )
    return [float(a) for a in angles], [float(r) for r in ratios]


MAX_TURN_DEG = 45.0
"""Largest turn between the two links of a regular disc triple (see :func:`spine_like`)."""
MAX_LINK_RATIO = 2.0
"""Largest ratio of the longer to the shorter link of a regular triple (four discs or more)."""
MAX_LR_STEP_MM = 30.0
"""Largest left-right step between neighbouring discs of a spine (real volumes: ≤ 10.9 mm
with the shipped model, 11.3 mm with an earlier one)."""


def spine_like(centroids: list[npt.NDArray[np.float64]]) -> bool:
    """Whether a chain of disc centroids (in spine order) can be a spine.

    Neighbouring discs of a spine lie at most 30 mm apart left-right (the largest step on
    the 10 real volumes is 10.9 mm; a sagittal slice shows no lateral step): a chain in
    which every step is larger is refused, as were the two "discs", 60 mm apart
    left-right, that the shipped network found in a real sagittal brain DWI. Then some
    three consecutive discs must form a piece of spine: their two links turn by at
    most 45° and, when four or more discs were found, differ in length by at most a
    factor 2. With three discs the one triple has only its turn checked: a disc missed in
    between doubles a link but keeps the chain straight.

    Along real spines the median turn is 5–6° and the median ratio 1.04–1.05, but single
    triples reach 137° and ×3.7 where a disc is missed or a small blob joins the chain
    (``benchmarks/spine_geometry.py``, shipped model v2, 2026-12-04: 99th percentiles
    49.8° and ×1.99 on SPIDER, 25.5° and ×1.18 on Sudirman, 23.5° and ×1.15 on the real
    volumes), so odd triples are tolerated and only a chain with no regular triple at all
    is refused: one real image is (the SPIDER slice sub-spider207). Five "discs" that an
    earlier network found in a real sagittal brain DWI turned by 80–128° at every triple.

    Parameters
    ----------
    centroids
        Disc centroids in mm, superior to inferior.

    Returns
    -------
    bool
        False when every left-right step is too large, or when three or more discs hold
        no regular triple; True otherwise (a single disc is judged elsewhere).
    """
    pts = np.asarray(centroids, dtype=np.float64)
    if len(pts) >= 2 and np.all(np.abs(np.diff(pts[:, 0])) > MAX_LR_STEP_MM):
        return False
    angles, ratios = chain_geometry(centroids)
    if not angles:
        return True
    max_ratio = MAX_LINK_RATIO if len(centroids) >= 4 else np.inf
    return any(a <= MAX_TURN_DEG and r <= max_ratio for a, r in zip(angles, ratios, strict=True))


MAX_GAP_RATIO = 1.75
"""A link between two named discs at least this many times the mean of its neighbouring
links (:func:`link_gap_ratios`) says a disc is missing in between: the names above it are
flagged (``disc_possibly_missed``, ``level_uncertain``), not changed. Measured with the
shipped model v2 (``benchmarks/segment_level_gaps.py``, docs/segmentation.md): the
largest ratio per image is at most 1.07 on the 10 real volumes and 10 phantoms, 1.36 on
101 Sudirman slices and 1.69 on SPIDER slices named without a missed disc; a disc missed
gives 1.89–3.53 on SPIDER and 1.97 on the audit's volume resampled to 1.1 mm."""


def link_gap_ratios(centroids: list[npt.NDArray[np.float64]]) -> list[float]:
    """Each link's length over the mean length of its neighbouring links.

    A link joins two neighbouring discs (centroids in mm, in spine order); its neighbours
    are the link above and the link below (one at either end of the chain). A disc
    missed between two others leaves one link about twice its neighbours.

    Examples
    --------
    >>> [round(r, 2) for r in link_gap_ratios([np.array([0.0, 0, -z]) for z in
    ...                                         (0, 30, 60, 120, 150)])]
    [1.0, 0.67, 2.0, 0.5]
    """
    pts = np.asarray(centroids, dtype=np.float64)
    if len(pts) < 3:
        return []
    lengths = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    ratios = []
    for i, length in enumerate(lengths):
        nb = [lengths[j] for j in (i - 1, i + 1) if 0 <= j < len(lengths)]
        ratios.append(float(length / max(float(np.mean(nb)), 1e-9)))
    return ratios


MIN_SACRUM_REACH = 1.2
"""How far below the lowest disc's centre, in disc spacings, a sacrum cut by the image's
lower edge must reach to anchor the names (see :func:`_reaches_below`)."""


def _reaches_below(
    sacrum: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    pts: npt.NDArray[np.float64],
    tangent: npt.NDArray[np.float64],
) -> bool:
    """Whether a sacrum-class region is the sacrum as far as geometry can tell.

    A region the image's lower edge does not cut is taken as it is. A cut one must reach
    at least :data:`MIN_SACRUM_REACH` disc spacings (the median distance between
    neighbouring disc centres over the lowest three gaps) below the lowest disc's
    centre, i.e. past the S1 body: when the field of view ends in or just below the L5
    body, the network can call that body "sacrum", and it then reaches about one spacing
    at most. Measured on 602 real mid-sagittal slices, each cut at six heights from the
    L4 body to the S1 body (``benchmarks/segment_cut_fov.py``; the shipped network v2):
    crops whose lowest disc was misnamed without a flag fell from 552 of 3,612 to 26, and
    volume crops from 5 of 12 to 0. None of the 605 uncut slices and none of 100 unseen
    phantoms gained a flag (the smallest reach of a cut sacrum there: 1.27 and 1.56
    spacings). The cost: crops cut within S1, named right, are flagged (576 of 602,
    against 44), and so is ``sub-fcs20``, whose sacrum in view ends 38 mm below its
    L5-S1 centre.

    Parameters
    ----------
    sacrum
        Sacrum-class voxels below the lowest disc.
    affine
        Voxel → RAS mm affine.
    pts
        Disc centroids (mm), superior to inferior; two or more.
    tangent
        Unit spine direction (pointing inferior) at the lowest disc.
    """
    axes = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    along = axes.T @ tangent  # cosine of each voxel axis with the spine direction
    axis = int(np.argmax(np.abs(along)))
    edge = sacrum.shape[axis] - 1 if along[axis] > 0 else 0
    if not np.take(sacrum, edge, axis=axis).any():
        return True
    idx = np.argwhere(sacrum)
    xyz = apply_affine(affine, idx)
    reach_mm = float(((xyz - pts[-1]) @ tangent).max())
    # The lowest three gaps: thoracic discs lie closer together, and with several in view
    # a median over all gaps shrank the spacing until a cut L5 body passed for the sacrum.
    spacing_mm = float(np.median(np.linalg.norm(np.diff(pts[-4:], axis=0), axis=1)))
    return reach_mm >= MIN_SACRUM_REACH * spacing_mm


def _centroid_mm(
    mask: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    idx = np.argwhere(mask).mean(axis=0)
    return apply_affine(affine, idx)


def _typical_body_voxels(body: npt.NDArray[np.bool_]) -> float:
    """Median size (voxels) of the large vertebral-body components (those at least half
    the largest); 0 when there is no body."""
    lab, n = ndimage.label(body)
    if n == 0:
        return 0.0
    sizes = np.bincount(lab.ravel())[1:]
    return float(np.median(sizes[sizes >= 0.5 * sizes.max()]))


def name_levels(
    classes: npt.NDArray[np.integer],
    affine: npt.NDArray[np.float64],
    *,
    body_class: int = 1,
    disc_class: int = 2,
    sacrum_class: int | None = None,
    disc_prob: npt.NDArray[np.floating] | None = None,
    min_fraction: float = 0.15,
) -> NamedLevels:
    """Split a class map into named discs, vertebral bodies and the sacrum.

    Parameters
    ----------
    classes
        Integer class map, any voxel order (the affine gives the geometry).
    affine
        Voxel → RAS mm affine of ``classes``.
    body_class, disc_class, sacrum_class
        Class indices in ``classes``; ``sacrum_class`` ``None`` when the network has none.
    disc_prob
        Disc-class probability map (same shape) for the per-level confidence.
    min_fraction
        Components smaller than this fraction of the largest of their class are dropped.

    Returns
    -------
    NamedLevels
        ``labels`` (int16, same shape), the disc levels from superior to inferior, flags.
    """
    out = np.zeros(classes.shape, dtype=np.int16)
    flags: list[str] = []
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    discs, centroids = _disc_chain(
        classes,
        affine,
        body_class=body_class,
        disc_class=disc_class,
        sacrum_class=sacrum_class,
        min_fraction=min_fraction,
    )
    if not discs:
        return NamedLevels(labels=out, levels=[], flags=[FLAG_NO_DISCS])
    n = len(discs)
    pts = np.array(centroids)
    tangents = _spine_tangents(pts)

    sacrum = _find_sacrum(classes, affine, body_class, sacrum_class, pts, tangents[-1])
    sacrum_found = sacrum is not None
    if sacrum is not None:
        out[sacrum] = SACRUM
    else:
        flags += [FLAG_NO_SACRUM, FLAG_LEVEL_UNCERTAIN]
    if _sacrum_above_chain(classes, affine, body_class, sacrum_class, pts, tangents):
        logger.warning(
            "the sacrum the network found lies above the discs, not below them: the image "
            "header's head-feet direction looks mirrored, check the levels"
        )
        flags += [FLAG_HEADER_MIRRORED, FLAG_LEVEL_UNCERTAIN]

    # Rudimentary lowest disc (much smaller than the others) suggests a transitional
    # lumbosacral segment (sacralised L5 / lumbarised S1): flag it, keep the names.
    volumes = [float(d.sum()) * voxel_mm3 for d in discs]
    if n >= 3 and volumes[-1] < 0.35 * float(np.median(volumes[:-1])):
        flags.append(FLAG_TRANSITIONAL)

    # A whole vertebral body (body class, not sacrum) below the lowest disc, with the
    # sacrum further down, suggests a missed L5-S1 disc (thin, degenerated, dark on T1)
    # or an S1 taken for a body. Which of the two cannot be told here, so it is flagged
    # and the names are kept (shifting them was measured to do more harm than good).
    if (
        sacrum_found
        and n >= 3
        and _body_below_lowest(classes == body_class, affine, pts, tangents, out == SACRUM)
    ):
        flags += [FLAG_L5S1_SUSPECT, FLAG_LEVEL_UNCERTAIN]
    disc_labels = [DISC_OFFSET + L5 - (n - 1 - i) for i in range(n)]
    # Names are counted up from the lowest disc, so a disc missed in between (too small,
    # too dark, or dropped as a blob) renames every disc above it. The names stay; a link
    # about twice its neighbours flags them (a missed T11-T12 renamed T10-T11 … T9-T10 of
    # a real volume resampled to 1.1 mm without a flag).
    ratios = link_gap_ratios(centroids)
    gaps = [i for i, r in enumerate(ratios) if r >= MAX_GAP_RATIO]
    above_gap = gaps[-1] if gaps else -1  # discs 0 … above_gap lie above the lowest gap
    if gaps:
        flags += [FLAG_DISC_MISSED, FLAG_LEVEL_UNCERTAIN]
        for i in gaps:
            logger.warning(
                "a disc may be missing between the discs named %s and %s (%.0f mm apart, "
                "%.1f times the neighbouring links): the names above are uncertain",
                disc_name(disc_labels[i]) if disc_labels[i] > DISC_OFFSET else "?",
                disc_name(disc_labels[i + 1]) if disc_labels[i + 1] > DISC_OFFSET else "?",
                float(np.linalg.norm(pts[i + 1] - pts[i])),
                ratios[i],
            )
    levels: list[DiscLevel] = []
    for i, (d, c, lab, vol) in enumerate(zip(discs, centroids, disc_labels, volumes, strict=True)):
        out[d] = lab
        conf = float(disc_prob[d].mean()) if disc_prob is not None else 1.0
        if not sacrum_found or i <= above_gap:
            conf *= 0.5
        if lab <= DISC_OFFSET:
            continue
        levels.append(
            DiscLevel(
                label=lab,
                name=disc_name(lab),
                centroid_mm=(float(c[0]), float(c[1]), float(c[2])),
                volume_mm3=vol,
                confidence=conf,
            )
        )
    _name_bodies(out, classes == body_class, affine, pts, tangents, disc_labels, sacrum_found)
    return NamedLevels(labels=out, levels=levels, flags=sorted(set(flags)))


def _disc_chain(
    classes: npt.NDArray[np.integer],
    affine: npt.NDArray[np.float64],
    *,
    body_class: int,
    disc_class: int,
    sacrum_class: int | None,
    min_fraction: float,
) -> tuple[list[npt.NDArray[np.bool_]], list[npt.NDArray[np.float64]]]:
    """The disc components of a class map and their centroids (mm), superior to inferior;
    empty when they do not form a lumbar spine (:func:`name_levels`)."""
    spacing = voxel_sizes(affine)
    bone = classes == body_class
    if sacrum_class is not None:
        bone = bone | (classes == sacrum_class)
    # Large components (at least half the largest) are discs; smaller ones must lie
    # against bone (a bright blob in the soft tissue or canal does not).
    candidates = _components(classes == disc_class, min_fraction * 0.5)
    largest = max((int(d.sum()) for d in candidates), default=0)
    discs = [
        d
        for d in candidates
        if d.sum() >= 0.5 * largest or _touches_bone(d, bone, spacing, radius_mm=3.0, min_ratio=0.3)
    ]
    if discs:
        sizes = [int(d.sum()) for d in discs]
        discs = [d for d, n in zip(discs, sizes, strict=True) if n >= min_fraction * max(sizes)]
        discs = _on_spine_axis(discs, affine)
    if not discs:
        return [], []
    centroids = [_centroid_mm(d, affine) for d in discs]
    discs, centroids = _merge_close(discs, centroids, tol_mm=6.0)
    # A disc longer than any lumbar disc (pieces merged included) says the image is not
    # a lumbar spine: dropping it alone let the other blobs the network painted in a
    # brain pass as one (MAX_DISC_LENGTH_MM).
    lengths = [disc_length_mm(d, affine) for d in discs]
    if max(lengths) > MAX_DISC_LENGTH_MM:
        logger.info(
            "a disc-like component %.0f mm long, longer than a lumbar disc: not taken for a "
            "lumbar spine",
            max(lengths),
        )
        return [], []
    centroids = [_centroid_mm(d, affine) for d in discs]
    if len(discs) < 2:
        # A lone disc-like blob has no neighbour to order or name it by, and every lumbar
        # field of view holds at least two discs. The network found one in a real sagittal
        # brain DWI (../shared/data/dwi-dicom/siemens-prisma-sag): it is not a spine.
        logger.info("one disc-like component only: not taken for a lumbar spine")
        return [], []
    # Ordered superior → inferior: RAS z decreases down the spine. Along a lumbar spine
    # (lordosis < 90° between neighbours) this is the order along the curve.
    order = np.argsort([-c[2] for c in centroids])
    discs = [discs[i] for i in order]
    centroids = [centroids[i] for i in order]
    if not spine_like(centroids):
        logger.info("disc-like components do not form a spine: not taken for a lumbar spine")
        return [], []
    return discs, centroids


def _spine_tangents(pts: npt.NDArray[np.float64]) -> list[npt.NDArray[np.float64]]:
    """The local spine direction (unit, pointing inferior) at each disc centre of ``pts``
    (superior to inferior): from the disc above to the disc below."""
    n = len(pts)
    tangents = []
    for i in range(n):
        a = pts[max(i - 1, 0)]
        b = pts[min(i + 1, n - 1)]
        t = b - a if n > 1 else np.array([0.0, 0.0, -1.0])
        tangents.append(t / (np.linalg.norm(t) + 1e-9))
    return tangents


def _find_sacrum(
    classes: npt.NDArray[np.integer],
    affine: npt.NDArray[np.float64],
    body_class: int,
    sacrum_class: int | None,
    pts: npt.NDArray[np.float64],
    lowest_tangent: npt.NDArray[np.float64],
) -> npt.NDArray[np.bool_] | None:
    """The sacrum: sacrum-class voxels below the lowest disc, together at least half the
    size of a typical vertebral body and reaching far enough below it; None otherwise.

    With the sacrum out of view the network leaves a few small "sacrum" fragments at the
    lower edge (164-449 voxels against ~20,000 for a body in real volumes cut through L4
    or L5); taken for the sacrum, they named every disc one level off without a flag.
    """
    if sacrum_class is None:
        return None
    sac = classes == sacrum_class
    if not sac.any():
        return None
    below = [
        comp
        for comp in _components(sac, 0.3)
        if float((_centroid_mm(comp, affine) - pts[-1]) @ lowest_tangent) > 0
    ]
    if not below:
        return None
    union = np.logical_or.reduce(below)
    # With no body in view there is no size to compare with: any sacrum below counts.
    if int(union.sum()) < 0.5 * _typical_body_voxels(classes == body_class):
        return None
    return union if _reaches_below(union, affine, pts, lowest_tangent) else None


MIN_SACRUM_ABOVE_BODY_FRACTION = 0.05
"""Sacrum-class voxels beyond the top disc, at least this share of a typical vertebral
body and more than those beyond the lowest disc, say that the header swaps head and feet
(:func:`_sacrum_above_chain`). ``benchmarks/segment_orientation.py --mirrored 1000``
(2026-12-07, and ``--stored-only``): as stored, the sacrum above the chain reached 0.002
of a body in the 10 real volumes, 0.000 in the SPIDER slices, 0 in the 505 Sudirman
slices and 0.004 in 20 phantoms (a margin of 12 to the limit), except on sub-spider057,
which is stored head-feet mirrored (its pelvis lies at the top of the image in patient
coordinates; docs/segmentation.md). With no vertebral body in view there is no size to
compare, and nothing is said."""


def sacrum_beyond_ends(
    sacrum: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    pts: npt.NDArray[np.float64],
    tangents: list[npt.NDArray[np.float64]],
) -> tuple[float, float]:
    """Sacrum voxels beyond the top disc and beyond the lowest one (``pts``, superior to
    inferior, with their :func:`_spine_tangents`): each connected piece counted whole by
    its centroid, along the spine's direction at that end. For
    :func:`_sacrum_above_chain` and ``benchmarks/segment_orientation.py``."""
    pieces, n = ndimage.label(sacrum)
    if n == 0:
        return 0.0, 0.0
    # sizes and centroids from the sacrum's voxels alone (ndimage.center_of_mass took
    # 141 ms over a 221 x 221 x 67 grid with 134 pieces; this a few)
    where = np.nonzero(pieces)
    piece = pieces[where]
    sizes = np.bincount(piece, minlength=n + 1)[1:].astype(np.float64)
    voxel_centres = np.stack(
        [np.bincount(piece, weights=axis, minlength=n + 1)[1:] / sizes for axis in where], axis=1
    )
    centres = apply_affine(affine, voxel_centres)
    above = float(sizes[(centres - pts[0]) @ -tangents[0] > 0].sum())
    below = float(sizes[(centres - pts[-1]) @ tangents[-1] > 0].sum())
    return above, below


def _sacrum_above_chain(
    classes: npt.NDArray[np.integer],
    affine: npt.NDArray[np.float64],
    body_class: int,
    sacrum_class: int | None,
    pts: npt.NDArray[np.float64],
    tangents: list[npt.NDArray[np.float64]],
) -> bool:
    """Whether more of the network's sacrum lies beyond the top disc than beyond the lowest
    one (each connected piece by its centroid, along the spine's direction there), and
    enough of it: :data:`MIN_SACRUM_ABOVE_BODY_FRACTION` of a typical body.

    In patient coordinates the sacrum lies below the lumbar discs whatever the patient's
    position, so a header with head and feet swapped puts it above them; the canal check
    (:mod:`discquant.segment.orientation`) cannot see that swap. Without a sacrum-like
    piece at the top (the network paints none on some mirrored images) it says nothing.
    """
    if sacrum_class is None:
        return False
    above, below = sacrum_beyond_ends(classes == sacrum_class, affine, pts, tangents)
    if not above > below:  # upright: the body's size is not needed
        return False
    typical = _typical_body_voxels(classes == body_class)
    # no body in view: one stray "sacrum" voxel above the chain would have said it (a review)
    return typical > 0 and above >= MIN_SACRUM_ABOVE_BODY_FRACTION * typical


def _name_bodies(
    out: npt.NDArray[np.int16],
    body: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    pts: npt.NDArray[np.float64],
    tangents: list[npt.NDArray[np.float64]],
    disc_labels: list[int],
    sacrum_found: bool,
) -> None:
    """Label the body voxels in ``out`` (where it is still 0): each joins the vertebra above
    or below its nearest disc (below the lowest disc: the sacrum when one was found, else
    left unnamed)."""
    if not body.any():
        return
    idx = np.argwhere(body)
    xyz = apply_affine(affine, idx)
    dist = np.linalg.norm(xyz[:, None, :] - pts[None, :, :], axis=2)
    nearest = dist.argmin(axis=1)
    side = np.einsum("ij,ij->i", xyz - pts[nearest], np.array(tangents)[nearest])
    upper = np.array(disc_labels)[nearest] - DISC_OFFSET
    vert = np.where(side < 0, upper, upper + 1)
    vert = np.where(vert > L5, SACRUM if sacrum_found else 0, vert)
    # Too far from every disc (e.g. a body half outside the FOV above the top disc
    # is kept; stray bright blobs 6 cm away are not).
    vert = np.where(dist.min(axis=1) > 60.0, 0, vert)
    out[tuple(idx.T)] = np.where(out[tuple(idx.T)] == 0, vert, out[tuple(idx.T)])


def label_runs(labels: Sequence[int]) -> str:
    """Sorted labels in words, runs of consecutive values as ranges (for messages).

    >>> label_runs([26, 3, 1, 2, 1000, 117, 118])
    '1-3, 26, 117-118, 1000'
    """
    runs: list[list[int]] = []
    for v in sorted(labels):
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
