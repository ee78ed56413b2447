"""A zero-padded field of view is segmented like the image without the padding."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from discquant.io.study import Volume
from discquant.phantom import PhantomConfig, generate_study
from discquant.segment import SpineSegmentation, segment_spine
from discquant.segment.preprocess import reorient

ROWS_MM, COLS_MM = 240, 60
"""Zero rows above and zero columns in front and behind."""


@pytest.fixture(scope="module")
def plain() -> tuple[Volume, SpineSegmentation]:
    t2 = generate_study(5, PhantomConfig(epi_distortion=False)).t2
    assert nib.aff2axcodes(t2.affine) == ("I", "P", "R")
    assert np.asarray(t2.data).min() > 0, "the phantom's noise keeps every line above zero"
    return t2, segment_spine(t2)


def _canonical(volume: Volume) -> np.ndarray:
    return reorient(volume).data


@pytest.mark.parametrize("stored", ["I P R", "axes swapped, one flipped"])
def test_a_zero_padded_field_of_view_keeps_its_discs(plain, stored: str) -> None:  # type: ignore[no-untyped-def]
    """A phantom T2 (0.6 mm pixels, I-P-R) padded with 240 mm of zero rows above and 60 mm
    of zero columns in front and behind, stored as generated or with its in-plane axes
    swapped and one flipped (as some DICOM exports are): the same labels and disc
    probability, voxel for voxel, and background in the padding. Before the crop, the
    padding entered the intensity window and the network's feature normalisation, which
    on a real volume lost discs and grew the others by up to 54 %
    (benchmarks/segment_padding.py)."""
    t2, seg_plain = plain
    data = np.asarray(t2.data)
    spacing = nib.affines.voxel_sizes(t2.affine)
    rows, cols = round(ROWS_MM / spacing[0]), round(COLS_MM / spacing[1])
    shift = np.eye(4)
    shift[:2, 3] = [-rows, -cols]
    img = nib.Nifti1Image(np.pad(data, ((rows, 0), (cols, cols), (0, 0))), t2.affine @ shift)
    if stored != "I P R":
        img = img.as_reoriented(np.array([[1, -1], [0, 1], [2, 1]]))
        assert nib.aff2axcodes(img.affine) != ("I", "P", "R")
    seg = segment_spine(Volume(np.asarray(img.dataobj), img.affine))
    assert [lv.name for lv in seg.levels] == [lv.name for lv in seg_plain.levels]
    assert [lv.name for lv in seg.levels][-5:] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert seg.flags == seg_plain.flags
    for padded, unpadded in [
        (seg.labels, seg_plain.labels),
        (seg.disc_probability, seg_plain.disc_probability),
    ]:
        assert padded is not None and unpadded is not None
        whole = _canonical(padded)
        inside = whole[rows:, cols : cols + data.shape[1]]
        np.testing.assert_array_equal(inside, _canonical(unpadded))
        assert np.count_nonzero(whole) == np.count_nonzero(inside)  # padding: background
