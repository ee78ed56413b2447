"""The training sampler's 2.5D input: the right neighbours, and single slices sometimes."""

from __future__ import annotations

import numpy as np

from discquant.segment.data import TrainSubject
from discquant.segment.train import SliceSampler


def _subject(slice_mm: float) -> TrainSubject:
    n, size = 9, 48
    image = np.repeat(np.arange(n, dtype=np.float32)[:, None, None] / 20, size, 1)
    image = np.repeat(image, size, 2)  # slice k holds k / 20 everywhere (≤ 0.4)
    target = np.zeros((n, size, size), dtype=np.uint8)
    target[:, 20:28, 20:28] = 1
    return TrainSubject(
        name="s",
        dataset="test",
        image=image,
        target=target,
        groups=[(0,), (1,)],
        slices=list(range(n)),
        slice_mm=slice_mm,
    )


def test_context_samples_hold_the_slices_context_mm_away() -> None:
    sampler = SliceSampler([_subject(2.0)], patch=32, seed=1, phantom_weight=0.3, context_mm=4.0)
    sampler.augment = lambda d: d  # intensities untouched: each channel names its slice
    single = 0
    for _ in range(400):
        x, _, _ = sampler.sample()
        assert x.shape == (3, 44, 44)  # the pre-crop, not augmented to the patch here
        vals = x[:, 0, 0].numpy()
        if vals[1] > 0.5:  # contrast inversion (1 - value), sometimes
            vals = 1.0 - vals
        a, k, c = (round(float(v) * 20) for v in vals)
        if a == c == k:
            single += 1
            continue
        assert (a, c) == (max(k - 2, 0), min(k + 2, 8))  # 4 mm at 2 mm slices
    assert 0.05 < single / 400 < 0.2  # about SINGLE_SLICE_SHARE, plus the edges' repeats


def test_single_slice_sampler_keeps_one_channel() -> None:
    sampler = SliceSampler([_subject(2.0)], patch=32, seed=1, phantom_weight=0.3)
    x, y, _ = sampler.sample()
    assert x.shape == (1, 32, 32) and y.shape == (32, 32)
