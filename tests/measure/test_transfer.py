"""Label transfer between grids and the per-disc shift refinement."""

from __future__ import annotations

import numpy as np
import pytest

from discquant.io.study import Volume
from discquant.measure.transfer import refine_disc_shifts, resample_image, transfer_labels


def grid(spacing: tuple[float, float, float], origin: tuple[float, float, float]) -> np.ndarray:
    """Axes (A, S, R) with the given spacing and world origin."""
    aff = np.zeros((4, 4))
    aff[1, 0], aff[2, 1], aff[0, 2] = spacing
    aff[:3, 3] = origin
    aff[3, 3] = 1
    return aff


def ellipsoid(shape, affine, centre, radii) -> np.ndarray:  # type: ignore[no-untyped-def]
    idx = np.indices(shape).reshape(3, -1).astype(float)
    world = affine[:3, :3] @ idx + affine[:3, 3:4]
    d = sum(((world[i] - centre[i]) / radii[i]) ** 2 for i in range(3))
    return (d <= 1).reshape(shape)


def test_transfer_preserves_volume_and_position() -> None:
    fine = grid((0.5, 0.5, 1.0), (-30.0, -30.0, -20.0))
    fine_shape = (120, 120, 40)
    disc = ellipsoid(fine_shape, fine, (0.0, 0.0, 0.0), (10.0, 20.0, 6.0))  # (R, A, S) radii
    labels = Volume(np.where(disc, 123, 0).astype(np.int16), fine)
    coarse = grid((1.8, 1.8, 4.0), (-29.3, -28.9, -18.5))  # offset grid, as DWI is
    out = transfer_labels(labels, coarse, (34, 34, 10))
    true_volume = disc.sum() * 0.25 * 1.0
    got_volume = (out.labels.data == 123).sum() * 1.8 * 1.8 * 4.0
    assert got_volume == pytest.approx(true_volume, rel=0.08)
    centre_vox = np.argwhere(out.labels.data == 123).mean(axis=0)
    centre_world = coarse[:3, :3] @ centre_vox + coarse[:3, 3]
    np.testing.assert_allclose(centre_world, [0.0, 0.0, 0.0], atol=1.0)
    assert out.purity[out.labels.data == 123].min() >= 0.5


def test_refinement_recovers_a_known_shift() -> None:
    fine = grid((0.6, 0.6, 4.0), (-30.0, -30.0, -16.0))
    shape = (100, 100, 9)
    rng = np.random.default_rng(0)
    disc = ellipsoid(shape, fine, (0.0, 0.0, 0.0), (18.0, 15.0, 5.0))
    body_above = ellipsoid(shape, fine, (0.0, 0.0, 18.0), (18.0, 16.0, 11.0))
    body_below = ellipsoid(shape, fine, (0.0, -1.0, -18.0), (18.0, 16.0, 11.0))
    image = 100.0 + 600.0 * disc + 250.0 * (body_above | body_below)
    t2 = Volume(image.astype(np.float32), fine)
    labels = Volume(np.where(disc, 123, 0).astype(np.int16), fine)
    # The "DWI" sees the anatomy moved by (0, +2.5, -1.5) mm: a b0 that equals the T2
    # sampled at world − shift.
    shift = np.array([0.0, 2.5, -1.5])
    dwi_aff = grid((1.8, 1.8, 4.0), (-28.0, -28.0, -16.0))
    dwi_shape = (32, 32, 9)
    b0 = resample_image(t2, dwi_aff, dwi_shape, shift_mm=tuple(-shift))  # type: ignore[arg-type]
    b0 += rng.normal(0, 5, b0.shape).astype(np.float32)
    found = refine_disc_shifts(t2, labels, Volume(b0, dwi_aff), [123])
    np.testing.assert_allclose(found[123], -shift, atol=0.51)
