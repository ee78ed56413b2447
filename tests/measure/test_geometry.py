"""Disc geometry against shapes whose heights are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from discquant.measure.geometry import disc_geometry


def sagittal_affine(spacing_mm: float, slice_mm: float = 4.0) -> np.ndarray:
    """Voxel axes (A, S, R): a sagittal grid, slices along left-right."""
    return np.array(
        [
            [0.0, 0.0, slice_mm, 0.0],
            [spacing_mm, 0.0, 0.0, -40.0],
            [0.0, spacing_mm, 0.0, -40.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def wedge_disc(
    spacing_mm: float, *, depth_mm: float, h_ant: float, h_post: float, tilt_deg: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """A wedge-shaped disc (heights varying linearly from posterior to anterior), tilted."""
    n = int(80 / spacing_mm)
    affine = sagittal_affine(spacing_mm)
    a, s = np.meshgrid(
        np.arange(n) * spacing_mm - 40, np.arange(n) * spacing_mm - 40, indexing="ij"
    )
    t = np.deg2rad(tilt_deg)
    u = np.cos(t) * a + np.sin(t) * s  # along the disc (anterior +)
    v = -np.sin(t) * a + np.cos(t) * s  # across the disc (superior +)
    frac = (u + depth_mm / 2) / depth_mm  # 0 posterior, 1 anterior
    height = h_post + (h_ant - h_post) * frac
    inside = (np.abs(u) <= depth_mm / 2) & (np.abs(v) <= height / 2)
    mask = np.repeat(inside[:, :, None], 5, axis=2)
    mask[:, :, [0, 4]] = False  # a smaller lateral extent, so slice 2 is the largest
    mask[:, :, 1] &= np.abs(v) < height / 4
    return mask, affine


@pytest.mark.parametrize(
    ("spacing", "tilt"), [(0.25, 0.0), (0.25, 12.0), (0.25, -20.0), (0.6, 4.0), (0.6, -7.0)]
)
def test_heights_and_depth_of_a_wedge(spacing: float, tilt: float) -> None:
    mask, affine = wedge_disc(spacing, depth_mm=32.0, h_ant=14.0, h_post=8.0, tilt_deg=tilt)
    geom = disc_geometry(mask, affine)
    assert geom is not None
    assert geom.mid_slice == 2
    # Heights at 10 %, 50 %, 90 % of depth from the anterior edge: 13.4, 11.0, 8.6 mm.
    assert geom.height_anterior_mm == pytest.approx(13.4, abs=0.5)
    assert geom.height_middle_mm == pytest.approx(11.0, abs=0.5)
    assert geom.height_posterior_mm == pytest.approx(8.6, abs=0.5)
    assert geom.ap_depth_mm == pytest.approx(32.0, abs=0.6)


def test_volume_is_voxel_count_times_voxel_volume() -> None:
    mask, affine = wedge_disc(0.5, depth_mm=30.0, h_ant=12.0, h_post=10.0)
    geom = disc_geometry(mask, affine)
    assert geom is not None
    assert geom.volume_mm3 == pytest.approx(mask.sum() * 0.5 * 0.5 * 4.0)


def test_empty_mask_has_no_geometry() -> None:
    assert disc_geometry(np.zeros((4, 4, 4), bool), sagittal_affine(1.0)) is None
