"""Training mode: replayable domain-randomised samples with consistent labels."""

from __future__ import annotations

import json

import numpy as np

from discquant.phantom import draw_training_params, render_training, training_sample


def test_training_sample_is_replayable_from_seed_and_params() -> None:
    a = training_sample(11)
    b = render_training(json.loads(json.dumps(draw_training_params(11))))
    assert a.params == b.params
    assert np.array_equal(a.image.data, b.image.data)
    assert np.array_equal(a.labels.data, b.labels.data)
    assert np.array_equal(a.nucleus.data, b.nucleus.data)
    assert not np.array_equal(a.image.data, training_sample(12).image.data[: a.image.shape[0]])


def test_training_samples_span_the_randomised_ranges() -> None:
    params = [draw_training_params(s) for s in range(300)]
    inplane = [p["inplane_mm"] for p in params]
    slices = [p["n_slices"] for p in params]
    assert 0.3 <= min(inplane) < 0.4 and 1.1 < max(inplane) <= 1.2
    assert min(slices) == 1 and max(slices) == 25
    assert 0.1 < np.mean([p["invert"] for p in params]) < 0.3
    assert 0.4 < np.mean([p["flip_lr"] for p in params]) < 0.6
    assert max(abs(p["rotation_deg"]) for p in params) <= 15.0


def test_training_sample_labels_and_image() -> None:
    for seed in (3, 4):
        s = training_sample(seed)
        p = s.params
        assert s.image.shape == (*p["matrix"], p["n_slices"])
        assert np.allclose(s.image.voxel_mm, (p["inplane_mm"], p["inplane_mm"], p["slice_mm"]))
        assert s.image.data.dtype == np.float32
        assert 0.0 <= float(s.image.data.min()) and float(s.image.data.max()) <= 1.0
        assert s.labels.data.dtype == np.int16 and s.nucleus.data.dtype == np.uint8
        assert np.all(s.labels.data[s.nucleus.data > 0] >= 100)
        discs = {int(v) for v in np.unique(s.labels.data) if v >= 100}
        assert len(discs) >= 3
