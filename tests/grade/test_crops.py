"""Crop geometry on synthetic sagittal images with a bright ellipse at a known place."""

from __future__ import annotations

import numpy as np
import pytest

from discquant.errors import InvalidInputError
from discquant.grade import DiscLocation, extract_disc_crop
from discquant.io.study import Volume

# Voxel axes (S→I, A→P, L→R) as in the shared real data; 0.5 mm in-plane, 4 mm slices.
AFFINE = np.array(
    [[0, 0, 4.0, -8.0], [0, -0.5, 0, 50.0], [-0.5, 0, 0, 60.0], [0, 0, 0, 1.0]], dtype=float
)


def _ellipse_volume(
    centre_rc: tuple[float, float],
    *,
    tilt_deg: float = 0.0,
    n_slices: int = 5,
    semi_ap_px: float = 30.0,
    semi_si_px: float = 8.0,
) -> tuple[Volume, np.ndarray]:
    rows, cols = np.mgrid[0:200, 0:240].astype(float)
    t = np.deg2rad(tilt_deg)
    dr, dc = rows - centre_rc[0], cols - centre_rc[1]
    a = dc * np.cos(t) + dr * np.sin(t)
    b = -dc * np.sin(t) + dr * np.cos(t)
    ell = (a / semi_ap_px) ** 2 + (b / semi_si_px) ** 2 <= 1.0
    data = np.full((200, 240, n_slices), 100.0, np.float32)
    data[ell] = 1000.0
    for k in range(n_slices):
        data[:5, :5, k] = 10.0 * (k + 1)  # tags each slice, far from the disc
    mask = np.repeat(ell[:, :, None], n_slices, axis=2)
    return Volume(data, AFFINE.copy()), mask


def _centroid(img2d: np.ndarray) -> tuple[float, float]:
    w = np.clip(img2d - img2d.min(), 0, None)
    r, c = np.mgrid[0 : img2d.shape[0], 0 : img2d.shape[1]]
    return float((w * r).sum() / w.sum()), float((w * c).sum() / w.sum())


@pytest.mark.parametrize("centre_rc", [(100.0, 120.0), (70.5, 150.0)])
def test_crop_is_centred_on_the_disc(centre_rc: tuple[float, float]) -> None:
    vol, _ = _ellipse_volume(centre_rc, n_slices=1)
    loc = DiscLocation.from_voxel(vol, (centre_rc[0], centre_rc[1], 0.0))
    crop = extract_disc_crop(vol, loc, size_mm=(40.0, 60.0), shape=(40, 60))
    assert crop.shape == (3, 40, 60)
    r, c = _centroid(crop[1])
    assert abs(r - 19.5) < 0.3 and abs(c - 29.5) < 0.3
    # ellipse: 30 px = 15 mm semi-axis along A-P, 4 mm along S-I at 1 mm crop pixels
    bright = crop[1] > 0.5
    assert 28 <= bright.sum(axis=1).max() <= 32
    assert 7 <= bright.sum(axis=0).max() <= 9
    # single slice: the mid slice is repeated
    np.testing.assert_array_equal(crop[0], crop[1])
    np.testing.assert_array_equal(crop[2], crop[1])


def test_row_zero_is_superior_and_column_zero_anterior() -> None:
    vol, _ = _ellipse_volume((100.0, 120.0), n_slices=1)
    vol.data[60:90, :, :] = 2000.0  # superior to the disc (smaller row = superior)
    vol.data[:, 50:70, :] = 3000.0  # anterior (smaller column = anterior)
    loc = DiscLocation.from_voxel(vol, (100.0, 120.0, 0.0))
    # (a window that keeps the values within CROP_CLIP, -1 ... 2)
    crop = extract_disc_crop(vol, loc, size_mm=(40.0, 60.0), shape=(40, 60), window=(0, 2000))
    assert crop[1, 2, 30] == pytest.approx(1.0)  # superior
    assert crop[1, 38, 30] == pytest.approx(0.05)
    assert crop[1, 20, 1] == pytest.approx(1.5)  # anterior
    assert crop[1, 30, 58] == pytest.approx(0.05)


def test_mask_gives_centre_normal_and_aligned_crop() -> None:
    vol, mask = _ellipse_volume((100.0, 120.0), tilt_deg=20.0, n_slices=5)
    loc = DiscLocation.from_mask(vol, mask)
    centre = vol.affine @ np.array([100.0, 120.0, 2.0, 1.0])
    np.testing.assert_allclose(loc.centre_ras_mm, centre[:3], atol=0.05)
    assert loc.normal_ras is not None
    # the normal is 20° from superior within the sagittal (y-z) plane
    n = np.asarray(loc.normal_ras)
    assert abs(n[0]) < 1e-6
    assert np.degrees(np.arccos(abs(n[2]))) == pytest.approx(20.0, abs=0.5)
    aligned = extract_disc_crop(vol, mask, size_mm=(40.0, 80.0), shape=(40, 80))
    plain = extract_disc_crop(vol, mask, size_mm=(40.0, 80.0), shape=(40, 80), align=False)
    # aligned: the ellipse lies flat (4 mm semi-axis: about 8 rows of 1 mm); unaligned
    # its vertical extent is 2 * sqrt(15² sin² 20° + 4² cos² 20°) = 12.7 mm
    assert (aligned[1] > 0.5).any(axis=1).sum() <= 9
    assert (plain[1] > 0.5).any(axis=1).sum() >= 12
    # five slices: channels are slices 1, 2, 3 (tags in the corner differ)
    assert aligned.shape == (3, 40, 80)


def test_neighbouring_slices_are_channels() -> None:
    vol, _ = _ellipse_volume((100.0, 120.0), n_slices=5)
    for k in range(5):
        vol.data[:, :, k] += 10.0 * k
    loc = DiscLocation.from_voxel(vol, (100.0, 120.0, 0.0))  # first slice: edge repeats
    crop = extract_disc_crop(vol, loc, window=(0.0, 1000.0), slices=5)  # within CROP_CLIP
    base = crop[2, 0, 0]
    np.testing.assert_allclose(crop[:, 0, 0] - base, [0, 0, 0, 0.01, 0.02], atol=1e-6)


def test_8_bit_and_16_bit_give_the_same_crop() -> None:
    vol, _ = _ellipse_volume((100.0, 120.0), n_slices=1)
    rng = np.random.default_rng(0)
    img8 = np.clip(vol.data / 1000.0 * 200 + rng.normal(0, 5, vol.data.shape), 0, 255)
    img8 = np.round(img8).astype(np.uint8).astype(np.float32)
    img16 = (img8 * 257.0).astype(np.uint16).astype(np.float32)
    loc = DiscLocation.from_voxel(vol, (100.0, 120.0, 0.0))
    c8 = extract_disc_crop(Volume(img8, AFFINE), loc)
    c16 = extract_disc_crop(Volume(img16, AFFINE), loc)
    np.testing.assert_allclose(c8, c16, atol=1e-5)


def test_non_sagittal_image_is_rejected() -> None:
    # axial slices (R, A, S): the left-right axis is in-plane, not the slice axis
    axial = Volume(np.ones((50, 50, 5), np.float32), np.diag([0.5, 0.5, 4.0, 1.0]))
    with pytest.raises(InvalidInputError, match="not sagittal"):
        extract_disc_crop(axial, DiscLocation((0.0, 0.0, 0.0)))


def test_the_same_anatomy_stored_right_to_left_gives_the_same_crop() -> None:
    """The slice channels followed the voxel index: an image stored right-to-left (the
    same anatomy, the slice axis and the affine's x column flipped) reversed them."""
    vol, mask = _ellipse_volume((100.0, 120.0), n_slices=5)
    for k in range(5):
        vol.data[:, :, k] += 10.0 * k  # a left-to-right gradient across the slices
    flipped_affine = vol.affine.copy()
    flipped_affine[:, 2] *= -1
    flipped_affine[:3, 3] = vol.affine[:3, :3] @ [0, 0, 4] + vol.affine[:3, 3]  # voxel 4 first
    flipped = Volume(np.ascontiguousarray(vol.data[:, :, ::-1]), flipped_affine)
    a = extract_disc_crop(vol, mask, slices=3)
    b = extract_disc_crop(flipped, mask[:, :, ::-1], slices=3)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert a[2].mean() > a[0].mean()  # channel 2 is the right-hand slice in both


@pytest.mark.parametrize("centre_rc", [(-100.0, 50.0), (50.0, 130.0), (1000.0, 1000.0)])
def test_a_disc_centre_outside_the_image_is_refused(centre_rc: tuple[float, float]) -> None:
    """Edge padding made every row a copy of the border row, and the crop was graded
    (grade 5 on a real slice); far outside it failed with a message about normalising."""
    img = Volume(np.ones((100, 100, 1), np.float32), AFFINE)
    loc = DiscLocation.from_voxel(img, (*centre_rc, 0.0))
    with pytest.raises(InvalidInputError, match="lies outside the image of shape"):
        extract_disc_crop(img, loc)
    inside = DiscLocation.from_voxel(img, (0.0, 99.0, 0.0))  # at the corner: still cropped
    assert extract_disc_crop(img, inside).shape == (3, 60, 80)


def test_nan_voxels_around_the_disc_are_refused_and_far_ones_ignored() -> None:
    """NaN voxels in the crop gave NaN probabilities, which argmax read as grade I."""
    from discquant.grade.pfirrmann import grade_disc_crops

    vol, mask = _ellipse_volume((100.0, 120.0), n_slices=3)
    vol.data[:3, :3, :] = np.nan  # far corner, outside the crop: no harm
    crop = extract_disc_crop(vol, mask, slices=3)
    assert np.isfinite(crop).all()
    vol.data[100, 120, 1] = np.nan  # the disc's centre
    with pytest.raises(InvalidInputError, match="NaN or infinite voxels around the disc"):
        extract_disc_crop(vol, mask, slices=3)
    bad = crop.copy()
    bad[1, 30, 40] = np.nan
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        grade_disc_crops([bad])


@pytest.mark.parametrize("normalise", ["crop", "image"])
def test_one_saturated_voxel_is_clipped_and_the_rest_of_the_crop_kept(normalise: str) -> None:
    """One voxel at 65535 in a 16-bit image reached about 100 at the grader's input and
    moved a disc's expected grade from 1.92 to 2.75 (a user trial): the normalised crop is
    clipped to CROP_CLIP, and every other pixel keeps its value."""
    from discquant.grade.crops import CROP_CLIP

    vol, _ = _ellipse_volume((100.0, 120.0), n_slices=1)
    loc = DiscLocation.from_voxel(vol, (100.0, 120.0, 0.0))
    clean = extract_disc_crop(vol, loc, normalise=normalise)
    spiked = vol.data.copy()
    spiked[100, 120, 0] = 65535.0  # the crop's centre
    crop = extract_disc_crop(Volume(spiked, AFFINE), loc, normalise=normalise)
    assert float(crop.max()) == CROP_CLIP[1] == 2.0 and float(clean.max()) < CROP_CLIP[1]
    changed = ~np.isclose(crop, clean, atol=1e-5)
    assert 0 < changed.sum() <= 3 * 4  # the pixels that sample the voxel, per channel
