"""The plane of an image does not depend on the order its voxels are stored in."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, inv_ornt_aff, ornt_transform

from discquant.io.roles import orientation_from_affine, slice_axis

# A 1 mm crop of a sagittal lumbar volume: 100 mm superior-inferior, 221 mm anterior-
# posterior, 67 mm (slices) left-right, stored as scanners store it (I, P, R).
IPR = np.array([[0, 0, 1.0, -33], [0, -1.0, 0, 110], [-1.0, 0, 0, 40], [0, 0, 0, 1]])
SHAPE = (100, 221, 67)


def _stored_as(codes: str, data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """The same image with its array and affine transformed together to voxel order
    ``codes`` (e.g. ``"RAS"``)."""
    img = nib.Nifti1Image(data, affine)
    now = nib.io_orientation(affine)
    want = nib.orientations.axcodes2ornt(tuple(codes))
    t = ornt_transform(now, want)
    out = apply_orientation(np.asarray(img.dataobj), t)
    return nib.Nifti1Image(out, affine @ inv_ornt_aff(t, data.shape))


@pytest.mark.parametrize("codes", ["IPR", "PIR", "RAS", "RIP", "LPS", "SAR"])
def test_an_isotropic_sagittal_crop_is_sagittal_in_every_storage_order(codes: str) -> None:
    """Left-right is clearly (≤ 0.75 ×) the shortest extent: sagittal whatever the
    storage order. (Compared as voxel counts, only for isotropic voxels; a first version
    of the rule fell back on the third stored axis for 1.6 × 1.6 × 1 mm voxels, below.)"""
    img = _stored_as(codes, np.zeros(SHAPE, np.float32), IPR)
    assert "".join(nib.aff2axcodes(img.affine)) == codes
    assert orientation_from_affine(img.affine, img.shape) == "sagittal"
    # the slice axis is the stored axis that runs left-right
    assert nib.aff2axcodes(img.affine)[slice_axis(img.affine, img.shape)] in "LR"


def test_isotropic_orders_all_agree_on_the_plane() -> None:
    data = np.zeros(SHAPE, np.float32)
    planes = set()
    for codes in ("".join(p) for p in itertools.permutations("RAS")):
        img = _stored_as(codes, data, IPR)
        planes.add(orientation_from_affine(img.affine, img.shape))
    assert planes == {"sagittal"}


def test_thin_slices_resampled_in_plane_are_still_sagittal() -> None:
    """1 mm sagittal slices resampled in plane to 1.6 mm (1.6 × 1.6 × 1.0) were "axial":
    the largest spacing was taken for the slice axis, and the first of the two in-plane
    axes sharing it won."""
    affine = IPR.copy()
    affine[:3, :2] *= 1.6
    shape = (138, 138, 67)
    assert slice_axis(affine, shape) == 2
    assert orientation_from_affine(affine, shape) == "sagittal"
    for codes in ("RAS", "PIR", "RIP"):
        img = _stored_as(codes, np.zeros(shape, np.float32), affine)
        assert orientation_from_affine(img.affine, img.shape) == "sagittal", codes


def test_a_single_coarsest_axis_is_still_the_slice_axis() -> None:
    # 0.6 × 0.7 mm pixels (not square) and 4 mm slices: the slices are the 4 mm axis
    affine = np.diag([0.6, 0.7, 4.0, 1.0])
    assert slice_axis(affine, (320, 300, 15)) == 2
    assert orientation_from_affine(affine, (320, 300, 15)) == "axial"
    # a near-cube gives no clue: the third axis, as scanners store
    iso = np.eye(4)
    assert slice_axis(iso, (64, 62, 64)) == 2
    assert slice_axis(iso, (240, 240, 256)) == 2


@pytest.mark.parametrize("si_mm", [60, 85, 120])
def test_a_crop_without_a_clearly_shortest_extent_keeps_the_scanners_order(si_mm: int) -> None:
    """A sagittal crop 60 (S-I) × 221 (A-P) × 67 (L-R) mm is shorter from top to bottom
    than from side to side: taking the shortest extent (at 0.9 ×) read it "axial" in every
    storage order, flagging every level. With no clearly shortest extent the third stored
    axis decides, which in the scanner's order is the slice axis."""
    shape = (si_mm, 221, 67)
    assert slice_axis(IPR, shape) == 2
    assert orientation_from_affine(IPR, shape) == "sagittal"
