"""AnalysisResult used from Python: its repr (an audit of discquant in a notebook)."""

from __future__ import annotations

import dataclasses

from tests.outputs.conftest import Synthetic

from discquant.io.study import Volume


def test_result_repr_leaves_the_images_out(synthetic: Synthetic) -> None:
    """Eight images printed as arrays made repr(result) 42,000 characters long."""
    result = synthetic.result
    text = repr(result)
    assert len(text) < 10_000, len(text)
    assert text.startswith("AnalysisResult(subject='sub-demo_01', discs=[DiscResult(")
    assert "array(" not in text and "Volume(" not in text
    assert "adc_np=AdcStats(mean=2.01" in text and "snr_estimate=24.5" in text
    images = {
        f.name for f in dataclasses.fields(result) if isinstance(getattr(result, f.name), Volume)
    }
    assert images == {
        "t2",
        "labels_t2",
        "b0",
        "adc_map",
        "adc_fit_rmse",
        "labels_dwi",
        "nucleus_core_dwi",
    }
    hidden = {f.name for f in dataclasses.fields(result) if not f.repr}
    assert hidden == images | {"adc_fit_shell_residuals"}
