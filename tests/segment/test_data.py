"""Training targets of the real, partially labelled sets."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from discquant.segment.data import _label_to_grid, _subject, load_nifti_volume, unlabelled_above
from discquant.segment.network import IGNORE


def test_the_unlabelled_level_above_the_highest_labelled_one_is_ignored() -> None:
    """Two labelled bodies (instances 1 below, 2 above) whose upper endplates are tilted
    (8 rows from front to back), and an unlabelled body above them, a 6-row disc between:
    every pixel of the unlabelled body is ignored, no labelled pixel is, rows just above
    the highest endplate are kept, and nothing is ignored beside the lower body."""
    labels = np.zeros((2, 90, 80), dtype=np.int16)
    upper = np.zeros(labels.shape, dtype=bool)
    for c in range(10, 40):
        top = 30 + (c - 10) * 8 // 30  # the endplate sinks towards the back
        labels[0, top : top + 20, c] = 2
        upper[0, top - 26 : top - 6, c] = True
    labels[0, 60:80, 25:75] = 1  # the lower body reaches farther back than the upper
    ignored = unlabelled_above(labels, margin_px=2, window_px=10)
    assert ignored[0][upper[0]].all()
    assert not ignored[labels > 0].any()
    assert not ignored[0, 28:30, 10].any()  # the 2 rows above the endplate stay
    # every slice is cut at the same edge; far from the highest body, at its highest row
    np.testing.assert_array_equal(ignored[1], ignored[0])
    assert ignored[0, :28, 70].all() and not ignored[0, 28:, 70].any()
    assert not unlabelled_above(np.zeros((1, 5, 5), np.int16), margin_px=2, window_px=3).any()


@pytest.mark.shared
def test_the_t12_l1_disc_of_the_disc_set_is_not_taught_as_not_a_disc(shared_data: Path) -> None:
    """The disc set labels L1-L2 … L5-S1; its T12-L1 disc (the shipped model finds 3429
    voxels of it in sub-fcs11) was in the "not a disc" group."""
    from discquant.segment import segment_spine

    root = shared_data / "lumbar-t2-discs"
    image = root / "sub-fcs11_T2w.nii.gz"
    vol = load_nifti_volume(image)
    t12_l1 = segment_spine(vol).labels.data == 119
    assert t12_l1.sum() > 1000
    on_grid = _label_to_grid(t12_l1.astype(np.int32), vol, 1.0) > 0
    subject = _subject(
        "sub-fcs11", "lumbar-t2-discs", image, dict.fromkeys(range(1, 6), 1),
        root / "sub-fcs11_dseg.nii.gz", [(0, 1, 3, 5), (2, 4)], 1.0,
    )  # fmt: skip
    assert np.mean(subject.target[on_grid] == IGNORE) > 0.99
    # the labelled discs are all kept, and the lower spine is not ignored at all
    labelled = subject.target == 1
    assert labelled.sum() > 10000
    raw = np.asarray(nib.load(root / "sub-fcs11_dseg.nii.gz").dataobj).astype(np.int32)
    grid = _label_to_grid(raw, vol, 1.0)
    rows = np.nonzero(grid.any(axis=(0, 2)))[0]
    highest = min(range(1, 6), key=lambda v: np.nonzero(grid == v)[1].mean())
    below_it = int(np.nonzero((grid == highest).any(axis=(0, 2)))[0].max())
    assert rows.max() - below_it > 100  # four more discs below it
    assert not (subject.target[:, below_it:] == IGNORE).any()


def test_phantom_samples_are_rendered_once_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import discquant.phantom as phantom
    from discquant.segment.data import phantom_subjects

    classes = ["background", "body", "disc", "sacrum", "nucleus", "canal"]
    first = phantom_subjects([3], classes, spacing_mm=2.0, cache_dir=tmp_path)
    # one finished file per seed, no temporary left beside it (two training runs share
    # this folder, each writing through its own temporary name)
    assert [p.name for p in tmp_path.iterdir()] == ["phantom-3-2.0-v2.npz"]

    def no_rendering(seed: int) -> None:
        raise AssertionError(f"seed {seed} rendered again")

    monkeypatch.setattr(phantom, "training_sample", no_rendering)
    again = phantom_subjects([3], classes, spacing_mm=2.0, cache_dir=tmp_path)
    np.testing.assert_array_equal(again[0].image, first[0].image)
    np.testing.assert_array_equal(again[0].target, first[0].target)
    # every group painted: background, vertebra, sacrum, disc, nucleus, canal
    assert np.unique(first[0].target).tolist() == list(range(len(first[0].groups)))
