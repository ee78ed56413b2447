"""Does the anatomy the network found agree with the directions the image header gives?

A header that mirrors the image front to back (a NIfTI written by hand with x and y
negated) turns the spine round before the network sees it. The network still finds
discs, but the level names, the anterior and posterior heights and the volumes come out
wrong with little to say so (a user trial: levels shifted by one, anterior and posterior
heights swapped). In patient coordinates the spinal canal lies behind the vertebral
bodies whatever the patient's position, so where the network puts the two classes checks
the header.

Head and feet swapped leave the canal behind the bodies; the sacrum above the discs says
it instead (:func:`discquant.segment.levels.name_levels`, the same flag;
``benchmarks/segment_orientation.py``, docs/segmentation.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from nibabel.affines import apply_affine

from discquant.results import MIN_CANAL_BEHIND_BODIES_MM

__all__ = ["MIN_CANAL_BEHIND_BODIES_MM", "canal_behind_bodies_mm", "header_looks_mirrored"]


def canal_behind_bodies_mm(
    classes_map: npt.NDArray[np.integer],
    affine: npt.NDArray[np.float64],
    classes: Sequence[str],
) -> float | None:
    """How far the spinal canal lies behind the vertebral bodies, in patient coordinates.

    For each image row (the first axis) holding both classes, the bodies' mean RAS y
    minus the canal's (anterior is +y); the median over those rows. A row-by-row median,
    not the classes' centroids: a canal fragment elsewhere (a SPIDER slice's, 100 mm off)
    moved a centroid past the limit.

    Parameters
    ----------
    classes_map
        The network's class per voxel (an index into ``classes``), 3-D.
    affine
        The class map's voxel-to-RAS affine (mm).
    classes
        The class names; ``body`` and ``canal`` are used.

    Returns
    -------
    float or None
        Positive when the canal lies behind the bodies (mm); None when no row holds both
        (or the model has no such class).

    Examples
    --------
    >>> cls = np.zeros((1, 4, 3), np.int8)
    >>> cls[0, 0], cls[0, 3] = 1, 2  # body at y = 0 mm, canal at y = 30 mm: in front
    >>> canal_behind_bodies_mm(cls, np.diag([1.0, 10.0, 1.0, 1.0]), ["bg", "body", "canal"])
    -30.0
    """
    if "body" not in classes or "canal" not in classes:
        return None
    body, canal = classes.index("body"), classes.index("canal")
    offsets = []
    for row in range(classes_map.shape[0]):
        b = np.argwhere(classes_map[row] == body)
        c = np.argwhere(classes_map[row] == canal)
        if len(b) and len(c):
            y_body = apply_affine(affine, np.r_[row, b.mean(axis=0)])[1]
            y_canal = apply_affine(affine, np.r_[row, c.mean(axis=0)])[1]
            offsets.append(y_body - y_canal)
    return float(np.median(offsets)) if offsets else None


def header_looks_mirrored(canal_behind_mm: float | None) -> bool:
    """Whether the canal lies less than :data:`MIN_CANAL_BEHIND_BODIES_MM` behind the
    bodies (False when it could not be measured)."""
    return canal_behind_mm is not None and canal_behind_mm < MIN_CANAL_BEHIND_BODIES_MM
