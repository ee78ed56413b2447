"""Volume and Series: their checks on construction and their short reprs (an audit)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from discquant.io.study import Series, SeriesRole, Volume

AFFINE = np.array(
    [[0.0, 0.0, -4.0, 30.0], [-0.5, 0.0, 0.0, 100.0], [0.0, -0.5, 0.0, 80.0], [0, 0, 0, 1]]
)  # voxel axes: posterior, inferior, left (a sagittal DICOM's storage order)


def test_repr_says_shape_dtype_voxel_size_and_axes_not_the_array() -> None:
    """The dataclass repr printed the array: a 15 x 512 x 512 T2 ran to thousands of
    characters, repr(result) to 42,000."""
    vol = Volume(np.ones((512, 512, 15), np.float32), AFFINE)
    assert repr(vol) == (
        "Volume(shape=(512, 512, 15), dtype=float32, voxel_mm=(0.5, 0.5, 4), axcodes=PIL)"
    )
    dwi = Volume(np.ones((128, 128, 15, 3), np.int16), AFFINE)
    assert repr(dwi).startswith("Volume(shape=(128, 128, 15, 3), dtype=int16, ")


def test_a_nibabel_image_is_refused_with_what_to_pass() -> None:
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), AFFINE)
    with pytest.raises(TypeError, match=r"not Nifti1Image: use Volume\(img.get_fdata\(\), img.af"):
        Volume(img, AFFINE)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"must be a numpy array, not list: use np\.asarray"):
        Volume([[1.0, 2.0]], AFFINE)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Series image must be a Volume, not Nifti1Image: use"):
        Series(SeriesRole.T2, "given", "T2", img, "sagittal")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("affine", "error", "message"),
    [
        (np.eye(3), ValueError, r"must be 4×4, got shape \(3, 3\)"),
        (np.where(np.eye(4) == 1, np.nan, 0.0), ValueError, "not finite"),
        (np.array([[np.inf] * 4] * 4), ValueError, "not finite"),
        ("eye", TypeError, "must be a 4×4 numeric array, not str"),
        (np.full((4, 4), "a"), TypeError, "must be numeric"),
    ],
)
def test_an_affine_that_is_not_a_finite_4x4_is_refused(
    affine: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Volume(np.zeros((2, 2, 2), np.float32), affine)  # type: ignore[arg-type]


def test_an_affine_given_as_nested_lists_is_kept_as_an_array() -> None:
    vol = Volume(np.zeros((2, 2, 2), np.float32), AFFINE.tolist())  # type: ignore[arg-type]
    assert isinstance(vol.affine, np.ndarray) and vol.affine.dtype == np.float64
    assert vol.voxel_mm == (0.5, 0.5, 4.0)
