"""AdcModel used wrongly from Python: what to pass instead, and b-values in another unit
(an audit of discquant in a notebook)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from discquant.diffusion.adc import AdcModel
from discquant.errors import InvalidInputError
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


def test_b_values_in_s_per_m2_are_refused_with_the_unit() -> None:
    """b = 0/400/800 s/mm² given in s/m² (x 1e6) fitted a median ADC of 1.5e-06, silently."""
    with pytest.raises(InvalidInputError, match=r"largest b-value is 8e\+08.*s/m²\? divide by 10⁶"):
        AdcModel(B * 1e6)
    with pytest.raises(InvalidInputError, match=r"1\.6e\+05,.* another unit\?"):
        AdcModel(B * 200)  # 160,000: no protocol, whatever unit it is
    # up to the bound every b-value is fitted, e.g. a research protocol at 10,000 s/mm²
    high = np.array([0.0, 5_000.0, 10_000.0])
    fit = AdcModel(high).fit(1000.0 * np.exp(-high * 0.5e-3)[None])
    assert fit.adc_um2_per_ms[0] == pytest.approx(0.5, rel=1e-5)
    AdcModel([0.0, 50_000.0, 100_000.0])  # at the bound: accepted
