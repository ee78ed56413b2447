"""A phantom study's repr leaves its images out (an audit: it was 23,000 characters)."""

from __future__ import annotations

import dataclasses

from discquant.io.study import Volume
from discquant.phantom import generate_study


def test_phantom_study_repr_is_short_and_keeps_the_truth() -> None:
    study = generate_study(0)
    text = repr(study)
    assert len(text) < 8000, len(text)
    assert "array(" not in text.replace("bvals=array([  0., 400., 800.])", "")
    assert text.startswith("PhantomStudy(bvals=array([  0., 400., 800.]), truth=PhantomTruth(")
    assert "seed=0" in text and "np_adc_um2_per_ms=" in text
    # every image field is out of the repr, and no field holding an image is left in
    shown = {f.name for f in dataclasses.fields(study) if f.repr}
    assert shown == {"bvals", "truth", "config", "seed"}
    assert not any(isinstance(getattr(study, name), Volume) for name in shown)
    # The imported study's images print as their shape, not their voxels.
    as_study = repr(study.as_study())
    assert len(as_study) < 2000, len(as_study)
    assert "image=Volume(shape=(480, 400, 15), dtype=float32, voxel_mm=(0.6, 0.6, 4)" in as_study
