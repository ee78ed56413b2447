"""Label transfer between grids and the per-disc shift refinement."""

from __future__ import annotations

import numpy as np
import pytest

from discquant.io.study import Volume
from discquant.measure.transfer import transfer_labels


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


def test_half_slice_offset_does_not_shift_the_disc() -> None:
    """T2 and DWI slices offset by half a slice: the transferred disc stays centred."""
    t2_aff = grid((0.6, 0.6, 4.0), (-30.0, -30.0, -20.0))
    t2_shape = (100, 100, 10)
    disc = ellipsoid(t2_shape, t2_aff, (-10.0, 0.0, 0.0), (12.0, 18.0, 6.0))  # R -22 … 2
    labels = Volume(np.where(disc, 122, 0).astype(np.int16), t2_aff)
    dwi_aff = grid((1.8, 1.8, 4.0), (-28.0, -29.1, -28.7))  # slices 2 mm off the T2 slices
    out = transfer_labels(labels, dwi_aff, (34, 34, 10))
    src = np.argwhere(disc).mean(axis=0)
    src_world = t2_aff[:3, :3] @ src + t2_aff[:3, 3]
    got = np.argwhere(out.labels.data == 122).mean(axis=0)
    got_world = dwi_aff[:3, :3] @ got + dwi_aff[:3, 3]
    np.testing.assert_allclose(got_world, src_world, atol=0.5)


def test_single_slice_t2_reaches_the_dwi_slice_it_covers() -> None:
    """Samples beyond the edge voxels' centres were dropped ("constant" mode): a
    single mid-sagittal T2 slice labelled no DWI voxel, so no disc got an ADC."""
    t2_aff = grid((0.6, 0.6, 4.0), (0.0, -30.0, -30.0))  # one 4 mm slice, R from -2 to 2
    t2_shape = (100, 100, 1)
    disc = ellipsoid(t2_shape, t2_aff, (0.0, 0.0, 0.0), (50.0, 12.0, 18.0))
    labels = Volume(np.where(disc, 122, 0).astype(np.int16), t2_aff)
    dwi_aff = grid((1.8, 1.8, 4.0), (-8.0, -29.1, -28.7))  # DWI slice 2 spans R -2 to 2
    out = transfer_labels(labels, dwi_aff, (34, 34, 5))
    per_slice = [(out.labels.data[..., k] == 122).sum() for k in range(5)]
    assert per_slice[2] * 1.8 * 1.8 == pytest.approx(disc.sum() * 0.36, rel=0.08)
    assert per_slice[:2] == [0, 0] and per_slice[3:] == [0, 0]


def test_edge_slices_keep_their_whole_thickness() -> None:
    """A disc that fills a 3-slice T2 (R -6 to 6 mm) fills the 12 mm of DWI slices it
    covers, not only the 8 mm between the edge slices' centres."""
    t2_aff = grid((0.6, 0.6, 4.0), (-4.0, -30.0, -30.0))
    labels = Volume(np.full((100, 100, 3), 122, np.int16), t2_aff)
    dwi_aff = grid((1.8, 1.8, 2.0), (-9.0, -29.1, -28.7))  # 2 mm slices at R -9 … 9
    out = transfer_labels(labels, dwi_aff, (30, 30, 10))
    covered = [k for k in range(10) if (out.labels.data[..., k] == 122).any()]
    assert covered == [2, 3, 4, 5, 6, 7]  # centres -5 … 5 mm


def test_a_single_slice_half_a_slice_off_labels_both_dwi_slices_it_overlaps() -> None:
    """T2 slice R -2…2 mm, DWI slices R -4…0 and 0…4: each DWI voxel is half in view.
    Counting the unseen halves as background lost every tie, so no label arrived."""
    t2_aff = grid((0.6, 0.6, 4.0), (0.0, -30.0, -30.0))
    disc = ellipsoid((100, 100, 1), t2_aff, (0.0, 0.0, 0.0), (50.0, 12.0, 18.0))
    labels = Volume(np.where(disc, 122, 0).astype(np.int16), t2_aff)
    dwi_aff = grid((1.8, 1.8, 4.0), (-6.0, -29.1, -28.7))  # centres R -6, -2, 2, 6
    out = transfer_labels(labels, dwi_aff, (34, 34, 4))
    per_slice = [int((out.labels.data[..., k] == 122).sum()) for k in range(4)]
    assert per_slice[0] == per_slice[3] == 0
    for n in per_slice[1:3]:
        assert n * 1.8 * 1.8 == pytest.approx(disc.sum() * 0.36, rel=0.08)
    assert out.purity[out.labels.data == 122].min() >= 0.5


@pytest.mark.parametrize(
    ("dwi_mm", "origin", "expected"), [(5.0, -7.5, [0, 1, 1, 0]), (4.0, -4.0, [0, 1, 0, 0])]
)
def test_a_t2_slice_thinner_than_the_dwi_slices_labels_the_ones_it_overlaps_most(
    dwi_mm: float, origin: float, expected: list[int]
) -> None:
    """A 3 mm T2 slice (R -1.5 … 1.5) against 5 mm DWI slices meeting at R 0 covers 30 %
    of each: under an "at least half in view" rule no DWI voxel was labelled and every
    disc read `disc_not_in_dwi`. Against a 4 mm slice centred on it (75 % covered) only
    that slice takes the label, not its neighbours (0 %)."""
    t2_aff = grid((0.6, 0.6, 3.0), (0.0, -30.0, -30.0))
    labels = np.zeros((100, 100, 1), np.int16)
    labels[30:70, 40:60, 0] = 122
    dwi_aff = grid((1.8, 1.8, dwi_mm), (origin, -29.1, -28.7))
    out = transfer_labels(Volume(labels, t2_aff), dwi_aff, (34, 34, 4))
    got = [int((out.labels.data[..., k] == 122).any()) for k in range(4)]
    assert got == expected
