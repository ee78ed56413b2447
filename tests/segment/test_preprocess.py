"""Reorientation and resampling round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from discquant.io.study import Volume
from discquant.segment.preprocess import (
    back_to_input,
    context_offset,
    from_network_grid,
    normalise_intensity,
    reorient,
    to_network_grid,
    with_context,
)

# A few input orientations: (permutation of axes, flips), as scanners write them.
CASES = [((0, 1, 2), (1, 1, 1)), ((2, 0, 1), (1, -1, 1)), ((1, 2, 0), (-1, 1, -1))]


def _volume(perm: tuple[int, int, int], flips: tuple[int, int, int]) -> Volume:
    rng = np.random.default_rng(0)
    data = rng.random((7, 9, 11)).astype(np.float32)
    aff = np.zeros((4, 4))
    for vox_axis, world_axis in enumerate(perm):
        aff[world_axis, vox_axis] = flips[vox_axis] * (0.5 + vox_axis)
    aff[:3, 3] = (10.0, -20.0, 30.0)
    aff[3, 3] = 1
    return Volume(data=data, affine=aff)


@pytest.mark.parametrize(("perm", "flips"), CASES)
def test_reorient_round_trip(perm: tuple[int, int, int], flips: tuple[int, int, int]) -> None:
    vol = _volume(perm, flips)
    ro = reorient(vol)
    assert sorted(ro.data.shape) == sorted(vol.shape)
    # The reoriented affine maps every voxel to the same world point as the input.
    idx = np.array([[1, 2, 3], [6, 8, 10]])
    for i, j, k in idx:
        world = vol.affine @ [i, j, k, 1]
        v = np.linalg.inv(ro.affine) @ world
        vi, vj, vk = np.round(v[:3]).astype(int)
        assert ro.data[vi, vj, vk] == vol.data[i, j, k]
    # Axis codes are the canonical ones: rows point inferior, columns posterior.
    import nibabel as nib

    assert nib.aff2axcodes(ro.affine) == ("I", "P", "R")
    back = back_to_input(ro.data, ro)
    np.testing.assert_array_equal(back, vol.data)


def test_back_to_input_inverts_every_axis_order_and_flip() -> None:
    import itertools

    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((1, -1), repeat=3):
            vol = _volume(perm, flips)  # type: ignore[arg-type]
            ro = reorient(vol)
            # With trailing channels, as the network's class probabilities come back.
            stacked = np.stack([ro.data, -ro.data], axis=-1)
            back = back_to_input(stacked, ro)
            np.testing.assert_array_equal(back[..., 0], vol.data)
            np.testing.assert_array_equal(back[..., 1], -vol.data)


def test_resampling_round_trip_keeps_shape_and_values() -> None:
    """The block comes back where it was: a 30 x 30-voxel block (rows 30-59, columns
    20-49) taken to the 1 mm network grid and back (0.6 mm pixels, bilinear both ways)
    is the input block wherever a voxel lies more than 2 voxels (1.2 mm, above one
    network pixel) from its edge, and its Dice with the input is above 0.95. The grid
    is already in the reoriented order (rows I, columns P, slices R), so the input grid
    and the network's slices share their rows: flipped superior-inferior, the block
    would lie on rows 40-69 (Dice 2 * 20 / 60 = 0.67)."""
    # rows I, cols P, slices R
    aff = np.array([[0, 0, 4.0, 0], [0, -0.6, 0, 0], [-0.6, 0, 0, 0], [0, 0, 0, 1]])
    data = np.zeros((100, 80, 3), dtype=np.float32)
    data[30:60, 20:50, :] = 1.0
    ro = reorient(Volume(data=data, affine=aff))
    np.testing.assert_array_equal(ro.data, data)  # already in the reoriented order
    x = to_network_grid(ro, spacing_mm=1.0)
    assert tuple(x.shape) == (3, 1, 60, 48)
    prob = torch.cat([x, 1 - x], dim=1)
    back = from_network_grid(prob, ro).numpy()
    assert back.shape == (100, 80, 3, 2)
    fg = back[..., 0] > 0.5
    truth = data > 0.5
    assert abs(int(fg.sum()) - int(truth.sum())) <= 0.05 * truth.sum()
    dice = float(2 * (fg & truth).sum() / (fg.sum() + truth.sum()))
    assert dice > 0.95, f"Dice {dice:.3f} with the input block"
    in_plane = np.ones((5, 5, 1), dtype=bool)  # 2 voxels either way, within a slice
    inner = ndimage.binary_erosion(truth, in_plane)
    outer = ndimage.binary_dilation(truth, in_plane)
    assert inner.sum() == 26 * 26 * 3 and (~outer).sum() == 100 * 80 * 3 - 34 * 34 * 3
    assert fg[inner].all() and not fg[~outer].any()
    np.testing.assert_allclose(back[..., 0] + back[..., 1], 1.0, atol=1e-5)


def test_normalisation_is_bit_depth_invariant() -> None:
    rng = np.random.default_rng(1)
    img = rng.gamma(2.0, 100.0, size=(64, 64, 2))
    eight = np.clip(img / img.max() * 255, 0, 255).round()
    sixteen = np.clip(img / img.max() * 4095, 0, 4095).round()
    np.testing.assert_allclose(normalise_intensity(eight), normalise_intensity(sixteen), atol=0.01)


def test_training_labels_sit_where_the_resampled_image_puts_them() -> None:
    """Labels resampled for training must not be shifted against the bilinear image.

    A step edge at each of 60 sub-pixel positions (0.6 mm pixels, network grid 1 mm):
    the label edge on the network grid lies on average where the image crosses 0.5.
    PyTorch's plain "nearest" put it 0.4 mm later, which taught the network to shift
    every boundary of a resampled phantom by about that much.
    """
    from discquant.segment.data import _label_to_grid

    aff = np.array([[0, 0, 4.0, 0], [0, -0.6, 0, 0], [-0.6, 0, 0, 0], [0, 0, 0, 1]])
    offsets = []
    for k in range(100, 160):
        labels = np.zeros((240, 40, 1), dtype=np.int32)
        labels[k:, :, :] = 1  # rows run inferior; the edge lies between rows k-1 and k
        vol = Volume(data=labels.astype(np.float32), affine=aff)
        image = to_network_grid(reorient(vol), spacing_mm=1.0)[0, 0, :, 20].numpy()
        lab = _label_to_grid(labels, vol, 1.0)[0, :, 20]
        image_edge = float(np.interp(0.5, image, np.arange(image.size)))
        label_edge = float(np.argmax(lab > 0)) - 0.5
        offsets.append(label_edge - image_edge)
    assert abs(np.mean(offsets)) < 0.05  # network pixels (1 mm); "nearest" gave +0.4
    assert np.max(np.abs(offsets)) <= 0.5 + 1e-6  # never more than half a pixel


def test_context_offset_is_physical() -> None:
    assert context_offset(1.0, 4.0) == 4  # 1 mm isotropic: the slice 4 mm away
    assert context_offset(4.0, 4.0) == 1
    assert context_offset(6.0, 4.0) == 1  # never the slice itself


def test_with_context_stacks_neighbours_and_repeats_edges() -> None:
    stack = torch.arange(5, dtype=torch.float32).reshape(5, 1, 1, 1).expand(5, 1, 2, 3)
    x = with_context(stack.contiguous(), 2)
    assert x.shape == (5, 3, 2, 3)
    assert x[:, 0, 0, 0].tolist() == [0, 0, 0, 1, 2]
    assert x[:, 1, 0, 0].tolist() == [0, 1, 2, 3, 4]
    assert x[:, 2, 0, 0].tolist() == [2, 3, 4, 4, 4]
    one = with_context(stack[:1].contiguous(), 1)  # a single slice: three equal channels
    assert one[0, :, 0, 0].tolist() == [0, 0, 0]
