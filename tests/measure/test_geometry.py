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


def partial_volume_disc(
    spacing_mm: float, *, height_mm: float, tilt_deg: float, supersample: int = 24
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A parallel-sided disc (32 mm deep) on a coarse grid: the mask of voxels more than
    half disc, each voxel's disc fraction (what a perfect segmentation's probability
    would be) and the affine."""
    fine, _ = wedge_disc(
        spacing_mm / supersample,
        depth_mm=32.0,
        h_ant=height_mm,
        h_post=height_mm,
        tilt_deg=tilt_deg,
    )
    n = fine.shape[0] // supersample
    blocks = fine[: n * supersample, : n * supersample].reshape(
        n, supersample, n, supersample, fine.shape[2]
    )
    probability = blocks.mean(axis=(1, 3))
    return probability > 0.5, probability, sagittal_affine(spacing_mm)


def test_partial_volume_heights_are_sub_voxel() -> None:
    """On 1.2 mm voxels a mask's heights are off by up to a voxel (measured: 1.0 mm); the disc
    fraction of the border voxels recovers them to within half the 0.1 mm sampling step
    of the caliper lines (plus the 1/24-voxel resolution of the fractions here)."""
    soft_errors, mask_errors = [], []
    for tilt in (0.0, 9.0, -15.0, 30.0):
        for height in (10.7, 7.3):
            mask, probability, affine = partial_volume_disc(1.2, height_mm=height, tilt_deg=tilt)
            for prob, errors in ((probability, soft_errors), (None, mask_errors)):
                g = disc_geometry(mask, affine, probability=prob)
                assert g is not None
                hs = (g.height_anterior_mm, g.height_middle_mm, g.height_posterior_mm)
                errors += [abs(h - height) for h in hs if h is not None]
            assert disc_geometry(mask, affine, probability=probability).volume_mm3 == (  # type: ignore[union-attr]
                pytest.approx(mask.sum() * 1.2 * 1.2 * 4.0)  # the volume is still the mask's
            )
    assert len(soft_errors) == len(mask_errors) == 24
    assert max(soft_errors) <= 0.06
    assert max(mask_errors) >= 0.5  # the case is one where partial volume matters


def test_partial_volume_height_ignores_the_next_disc() -> None:
    """Disc probability more than two voxels from the mask (the next disc, met by the
    long caliper line) is not part of this disc's height."""
    mask, probability, affine = partial_volume_disc(1.0, height_mm=10.7, tilt_deg=0.0)
    alone = disc_geometry(mask, affine, probability=probability)
    neighbour = probability.copy()
    neighbour[:, 62:70] = 1.0  # a band 22-30 mm above this disc's centre
    with_neighbour = disc_geometry(mask, affine, probability=neighbour)
    assert alone is not None and with_neighbour is not None
    assert alone.height_middle_mm == pytest.approx(10.7, abs=0.06)
    assert with_neighbour.height_middle_mm == pytest.approx(alone.height_middle_mm)


def elliptic_disc_on_oblique_grid(tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """An elliptic disc (left-right 44 mm, AP 34 mm, height 10 mm, centred at the world
    origin) on a sagittal grid rotated by ``tilt_deg`` about the superior axis (voxel
    axes: R, A, S; 3.5 × 0.6 × 0.6 mm). As in a real field of view the disc lies far
    (96 mm) from the slices' first voxel."""
    t = np.deg2rad(tilt_deg)
    rot = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    shape = (13, 200, 40)
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([3.5, 0.6, 0.6])
    affine[:3, 3] = -affine[:3, :3] @ np.array([6.0, 160.0, 19.5])
    ijk = np.indices(shape).reshape(3, -1)
    x, y, z = affine[:3, :3] @ ijk + affine[:3, 3:4]
    inside = ((x / 22) ** 2 + (y / 17) ** 2 <= 1) & (np.abs(z) < 5)
    return inside.reshape(shape), affine


@pytest.mark.parametrize("tilt", [0.0, 4.0, 8.0, 20.0])
def test_oblique_sagittal_grid_measures_in_the_slice_plane(tilt: float) -> None:
    # The caliper lines once ran along world A at the x of voxel (0, 0) of the slice:
    # on this grid tilted by 4° the depth read 0 mm and no height was found.
    mask, affine = elliptic_disc_on_oblique_grid(tilt)
    g = disc_geometry(mask, affine)
    assert g is not None and g.height_middle_mm is not None and g.ap_depth_mm is not None
    # The central slice cuts the ellipse along its own anterior axis, at ``tilt`` to
    # world A: that chord (34 mm untilted, 34.8 mm at 20°), up to the 0.6 mm pixels; the
    # height is 10 mm up to them too.
    t = np.deg2rad(tilt)
    chord = 2 / np.hypot(np.sin(t) / 22, np.cos(t) / 17)
    assert g.ap_depth_mm == pytest.approx(chord, abs=0.7)
    assert g.height_middle_mm == pytest.approx(10.0, abs=0.7)


def test_too_few_voxels_give_no_depth() -> None:
    mask = np.zeros((10, 10, 3), dtype=bool)
    mask[4, 4:6, 1] = True
    g = disc_geometry(mask, sagittal_affine(1.0))
    assert g is not None and g.ap_depth_mm is None and g.volume_mm3 == pytest.approx(2 * 4.0)
