"""AdcModel used wrongly from Python: what to pass instead (an audit of discquant in a
notebook)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from discquant.diffusion.adc import AdcModel
from discquant.io.study import Volume

B = np.array([0.0, 400.0, 800.0])


def _signal(adc: float = 1.5) -> np.ndarray:
    """A 4 x 4 x 2 DWI of one ADC (µm²/ms), S0 1000, volumes last."""
    return np.broadcast_to(1000.0 * np.exp(-B * adc * 1e-3), (4, 4, 2, 3)).astype(np.float32)


def test_fit_of_a_volume_or_a_nibabel_image_says_what_to_pass() -> None:
    """Both were read as a 0-d object array: "the DWI has 0 volumes but 3 b-values"."""
    data = _signal()
    model = AdcModel(B)
    with pytest.raises(TypeError, match=r"not a Volume: pass its \.data"):
        model.fit(Volume(data, np.eye(4)))
    with pytest.raises(TypeError, match=r"not a Nifti1Image: pass img\.get_fdata\(\)"):
        model.fit(nib.Nifti1Image(data, np.eye(4)))
    with pytest.raises(TypeError, match="mask as an array, not a Volume"):
        model.fit(data, mask=Volume(np.ones((4, 4, 2), np.uint8), np.eye(4)))
    with pytest.raises(TypeError, match=r"a numeric array .* got str of dtype <U"):
        model.fit("dwi.nii.gz")
    # what they hint at works
    img = nib.Nifti1Image(data, np.eye(4))
    fit = model.fit(img.get_fdata(), mask=np.ones((4, 4, 2), bool))
    assert np.allclose(fit.adc_um2_per_ms, 1.5, rtol=1e-5)
